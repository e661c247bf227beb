/*
 * report.c - findings: creation and deduplication while the trace streams,
 * naming of their steps, ranking, JSON rendering, and freeing.
 *
 * Allocation failures while feeding are sticky (a->error, as SQLite's
 * mallocFailed): the helpers here then do nothing and analysis_finish
 * reports ANALYSIS_E_NOMEM.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/internal.h"

static const char *const kind_names[ANALYSIS_KIND_MAX + 1] = {
	[ANALYSIS_HANG] = "hang",
	[ANALYSIS_LOCK_ORDER] = "lock-order",
	[ANALYSIS_IRQ_UNSAFE_LOCK] = "irq-unsafe-lock",
	[ANALYSIS_EOI_BEFORE_SWITCH] = "eoi-before-switch",
	[ANALYSIS_MISSING_EOI] = "missing-eoi",
	[ANALYSIS_NESTED_VECTOR] = "nested-vector",
	[ANALYSIS_RECURSIVE_SPINLOCK] = "recursive-spinlock",
	[ANALYSIS_IRQL_LOWER_RAISES] = "irql-lower-raises",
	[ANALYSIS_IRQL_RAISE_LOWERS] = "irql-raise-lowers",
	[ANALYSIS_IRQL_LEAK_SWITCH] = "irql-leak-across-switch",
	[ANALYSIS_SPINLOCK_ABOVE_DISPATCH] = "spinlock-above-dispatch",
	[ANALYSIS_SPINLOCK_BELOW_DISPATCH] = "spinlock-below-dispatch",
	[ANALYSIS_WAIT_AT_DISPATCH] = "wait-at-dispatch",
	[ANALYSIS_RELEASE_NOT_OWNER] = "release-not-owner",
	[ANALYSIS_RELEASE_NOT_HELD] = "release-not-held",
	[ANALYSIS_LOCK_HELD_AT_EXIT] = "lock-held-at-exit",
	[ANALYSIS_WAIT_NEVER_SATISFIED] = "wait-never-satisfied",
	[ANALYSIS_CRASH] = "crash",
	[ANALYSIS_IRQ_LOCK_ORDER] = "irq-lock-order",
	[ANALYSIS_RECURSIVE_LOCKING] = "recursive-locking",
	[ANALYSIS_SLEEP_IN_ATOMIC] = "sleep-in-atomic",
	[ANALYSIS_SPINLOCK_ACROSS_SWITCH] = "spinlock-across-switch",
	[ANALYSIS_SPINLOCK_RELEASE_IRQL] = "spinlock-release-irql",
	[ANALYSIS_SPINLOCK_RESTORE] = "spinlock-restore-mismatch",
	[ANALYSIS_SPINLOCK_HELD_BELOW_DISPATCH] = "spinlock-held-below-dispatch",
	[ANALYSIS_IRET_STATE] = "iret-state-mismatch",
	[ANALYSIS_IRQL_LOWERED_BEFORE_EOI] = "irql-lowered-before-eoi",
	[ANALYSIS_SWITCH_BEFORE_EOI] = "switch-before-eoi",
	[ANALYSIS_LOST_DEFERRED] = "lost-deferred-work",
};

static const enum analysis_severity kind_severity[ANALYSIS_KIND_MAX + 1] = {
	[ANALYSIS_HANG] = ANALYSIS_SEV_ERROR,
	[ANALYSIS_LOCK_ORDER] = ANALYSIS_SEV_ERROR,
	[ANALYSIS_IRQ_UNSAFE_LOCK] = ANALYSIS_SEV_ERROR,
	[ANALYSIS_EOI_BEFORE_SWITCH] = ANALYSIS_SEV_ERROR,
	[ANALYSIS_MISSING_EOI] = ANALYSIS_SEV_ERROR,
	[ANALYSIS_NESTED_VECTOR] = ANALYSIS_SEV_ERROR,
	[ANALYSIS_RECURSIVE_SPINLOCK] = ANALYSIS_SEV_ERROR,
	[ANALYSIS_IRQL_LOWER_RAISES] = ANALYSIS_SEV_ERROR,
	[ANALYSIS_IRQL_RAISE_LOWERS] = ANALYSIS_SEV_ERROR,
	[ANALYSIS_IRQL_LEAK_SWITCH] = ANALYSIS_SEV_ERROR,
	[ANALYSIS_SPINLOCK_ABOVE_DISPATCH] = ANALYSIS_SEV_WARNING,
	[ANALYSIS_SPINLOCK_BELOW_DISPATCH] = ANALYSIS_SEV_WARNING,
	[ANALYSIS_WAIT_AT_DISPATCH] = ANALYSIS_SEV_WARNING,
	[ANALYSIS_RELEASE_NOT_OWNER] = ANALYSIS_SEV_ERROR,
	[ANALYSIS_RELEASE_NOT_HELD] = ANALYSIS_SEV_ERROR,
	[ANALYSIS_LOCK_HELD_AT_EXIT] = ANALYSIS_SEV_NOTE,
	[ANALYSIS_WAIT_NEVER_SATISFIED] = ANALYSIS_SEV_NOTE,
	[ANALYSIS_CRASH] = ANALYSIS_SEV_ERROR,
	[ANALYSIS_IRQ_LOCK_ORDER] = ANALYSIS_SEV_ERROR,
	[ANALYSIS_RECURSIVE_LOCKING] = ANALYSIS_SEV_ERROR,
	[ANALYSIS_SLEEP_IN_ATOMIC] = ANALYSIS_SEV_ERROR,
	[ANALYSIS_SPINLOCK_ACROSS_SWITCH] = ANALYSIS_SEV_ERROR,
	[ANALYSIS_SPINLOCK_RELEASE_IRQL] = ANALYSIS_SEV_ERROR,
	[ANALYSIS_SPINLOCK_RESTORE] = ANALYSIS_SEV_ERROR,
	[ANALYSIS_SPINLOCK_HELD_BELOW_DISPATCH] = ANALYSIS_SEV_ERROR,
	[ANALYSIS_IRET_STATE] = ANALYSIS_SEV_ERROR,
	[ANALYSIS_IRQL_LOWERED_BEFORE_EOI] = ANALYSIS_SEV_ERROR,
	[ANALYSIS_SWITCH_BEFORE_EOI] = ANALYSIS_SEV_ERROR,
	[ANALYSIS_LOST_DEFERRED] = ANALYSIS_SEV_ERROR,
};

/* Lower is more important: a hang, then deadlocks and the protocol breaks
 * that cause crashes, the crash itself (usually their consequence), then
 * rules that may not have hurt, then exit state. */
static const int kind_rank[ANALYSIS_KIND_MAX + 1] = {
	[ANALYSIS_HANG] = 1,
	[ANALYSIS_LOCK_ORDER] = 2,
	[ANALYSIS_RECURSIVE_LOCKING] = 2,
	[ANALYSIS_IRQ_UNSAFE_LOCK] = 3,
	[ANALYSIS_IRQ_LOCK_ORDER] = 3,
	[ANALYSIS_SLEEP_IN_ATOMIC] = 4,
	[ANALYSIS_SPINLOCK_ACROSS_SWITCH] = 4,
	[ANALYSIS_EOI_BEFORE_SWITCH] = 4,
	[ANALYSIS_SWITCH_BEFORE_EOI] = 4,
	[ANALYSIS_CRASH] = 5,
	[ANALYSIS_MISSING_EOI] = 5,
	[ANALYSIS_NESTED_VECTOR] = 6,
	[ANALYSIS_IRET_STATE] = 6,
	[ANALYSIS_IRQL_LOWERED_BEFORE_EOI] = 6,
	[ANALYSIS_RECURSIVE_SPINLOCK] = 7,
	[ANALYSIS_IRQL_LOWER_RAISES] = 8,
	[ANALYSIS_IRQL_RAISE_LOWERS] = 9,
	[ANALYSIS_IRQL_LEAK_SWITCH] = 10,
	[ANALYSIS_SPINLOCK_ABOVE_DISPATCH] = 11,
	[ANALYSIS_SPINLOCK_BELOW_DISPATCH] = 12,
	[ANALYSIS_SPINLOCK_RELEASE_IRQL] = 12,
	[ANALYSIS_SPINLOCK_RESTORE] = 12,
	[ANALYSIS_SPINLOCK_HELD_BELOW_DISPATCH] = 12,
	[ANALYSIS_WAIT_AT_DISPATCH] = 13,
	[ANALYSIS_LOST_DEFERRED] = 13,
	[ANALYSIS_RELEASE_NOT_OWNER] = 14,
	[ANALYSIS_RELEASE_NOT_HELD] = 15,
	[ANALYSIS_LOCK_HELD_AT_EXIT] = 16,
	[ANALYSIS_WAIT_NEVER_SATISFIED] = 17,
};

int analysis_kind_rank(int kind)
{
	return kind < 1 || kind > ANALYSIS_KIND_MAX ? -1 : kind_rank[kind];
}

const char *analysis_kind_name(int kind)
{
	if (kind < 1 || kind > ANALYSIS_KIND_MAX)
		return NULL;
	return kind_names[kind];
}

int analysis_kind_from_name(const char *name)
{
	if (!name)
		return 0;
	for (int k = 1; k <= ANALYSIS_KIND_MAX; k++)
		if (strcmp(kind_names[k], name) == 0)
			return k;
	return 0;
}

const char *analysis_severity_name(int severity)
{
	switch (severity) {
	case ANALYSIS_SEV_ERROR: return "error";
	case ANALYSIS_SEV_WARNING: return "warning";
	case ANALYSIS_SEV_NOTE: return "note";
	}
	return NULL;
}

uint64_t hash_mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	h *= 0xff51afd7ed558ccdULL;
	return h ^ (h >> 33);
}

char *xstrdup(struct analysis *a, const char *s)
{
	char *p = strdup(s ? s : "");
	if (!p && !a->error)
		a->error = ANALYSIS_E_NOMEM;
	return p;
}

static char *xvasprintf(struct analysis *a, const char *fmt, va_list ap)
{
	char *p = NULL;
	if (vasprintf(&p, fmt, ap) < 0) {
		p = NULL;
		if (!a->error)
			a->error = ANALYSIS_E_NOMEM;
	}
	return p;
}

char *xasprintf(struct analysis *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *p = xvasprintf(a, fmt, ap);
	va_end(ap);
	return p;
}

const char *class_name(const struct analysis *a, uint32_t cls)
{
	return cls < a->n_classes ? a->classes[cls].name : "";
}

static const char *raw_thread_name(struct analysis *a, uint64_t thread, int32_t tid)
{
	const char *n = NULL;
	uint32_t ti;
	if (tid < 0 && u64map_get(&a->thread_map, thread, &ti))
		tid = a->threads[ti].tid;
	if (!thread || thread >= 0xffffffffffff0000ULL)
		return "";
	if (tid >= 0 && a->names.thread_name_tid)
		n = a->names.thread_name_tid(a->names.ctx, thread, tid);
	else if (a->names.thread_name)
		n = a->names.thread_name(a->names.ctx, thread);
	return n ? n : "";
}

char *thread_label(struct analysis *a, uint64_t thread, int32_t tid)
{
	const char *n = raw_thread_name(a, thread, tid);
	if (*n)
		return xstrdup(a, n);
	if (thread >= 0xffffffffffff0000ULL)
		return xasprintf(a, "cpu%u (no thread)", (unsigned)(thread & 0xffff));
	return xasprintf(a, "thread 0x%" PRIx64, thread);
}

struct analysis_finding *finding_get(struct analysis *a, enum analysis_kind kind, uint64_t key, int *is_new)
{
	uint32_t idx;
	*is_new = 0;
	if (a->error)
		return NULL;
	key = hash_mix(key, (uint64_t)kind);
	if (u64map_get(&a->finding_map, key, &idx))
		return &a->findings[idx];
	size_t cap = a->cap_findings;
	if (grow((void **)&a->findings, &a->cap_findings, a->n_findings + 1, sizeof(*a->findings)) ||
	    grow((void **)&a->cap_steps, &cap, a->n_findings + 1, sizeof(*a->cap_steps))) {
		a->error = ANALYSIS_E_NOMEM;
		return NULL;
	}
	idx = (uint32_t)a->n_findings;
	if (u64map_put(&a->finding_map, key, idx)) {
		a->error = ANALYSIS_E_NOMEM;
		return NULL;
	}
	struct analysis_finding *f = &a->findings[idx];
	memset(f, 0, sizeof(*f));
	a->cap_steps[idx] = 0;
	a->n_findings++;
	f->kind = kind;
	f->kind_name = kind_names[kind];
	f->severity = kind_severity[kind];
	f->rank = kind_rank[kind];
	*is_new = 1;
	return f;
}

void finding_target(struct analysis_finding *f, const struct site *s)
{
	f->event_id = s->id;
	f->icount = s->icount;
	f->vcpu = s->vcpu;
}

void finding_step(struct analysis *a, struct analysis_finding *f, const char *role, const struct site *s,
		  const char *fmt, ...)
{
	if (a->error || !f)
		return;
	size_t idx = (size_t)(f - a->findings);
	if (grow((void **)&f->steps, &a->cap_steps[idx], f->n_steps + 1, sizeof(*f->steps))) {
		a->error = ANALYSIS_E_NOMEM;
		return;
	}
	struct analysis_step *st = &f->steps[f->n_steps];
	memset(st, 0, sizeof(*st));
	st->role = role;
	st->event_id = s->id;
	st->icount = s->icount;
	st->pc = s->pc;
	st->vcpu = s->vcpu;
	st->thread = s->thread;
	st->lock = s->lock;
	st->irql = s->irql;
	st->vector = s->vector;

	va_list ap;
	va_start(ap, fmt);
	st->text = xvasprintf(a, fmt, ap);
	va_end(ap);

	st->caller = s->caller;
	char where[256];
	where_of(a, s, where, sizeof(where));
	st->where = xstrdup(a, where);
	st->thread_name = xstrdup(a, raw_thread_name(a, s->thread, s->tid));
	const char *cls = "";
	uint32_t li;
	if (s->lock && (lock_find(a, s->lock, 0, &li) || lock_find(a, s->lock, 1, &li)))
		cls = class_name(a, a->locks[li].cls);
	st->lock_class = xstrdup(a, cls);
	f->n_steps++; /* counted even when a string failed: finding_free copes with NULLs */
}

static void set_text(struct analysis *a, char **dst, const char *fmt, va_list ap)
{
	if (a->error)
		return;
	free(*dst);
	*dst = xvasprintf(a, fmt, ap);
}

void finding_title(struct analysis *a, struct analysis_finding *f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (f)
		set_text(a, &f->title, fmt, ap);
	va_end(ap);
}

void finding_explain(struct analysis *a, struct analysis_finding *f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (f)
		set_text(a, &f->explanation, fmt, ap);
	va_end(ap);
}

void finding_free(struct analysis_finding *f)
{
	for (size_t i = 0; i < f->n_steps; i++) {
		struct analysis_step *st = &f->steps[i];
		free(st->text);
		free(st->where);
		free(st->thread_name);
		free(st->lock_class);
	}
	free(f->steps);
	for (size_t i = 0; i < f->n_lock_classes; i++)
		free(f->lock_classes[i]);
	free(f->lock_classes);
	for (size_t i = 0; i < f->n_threads; i++)
		free(f->threads[i].name);
	free(f->threads);
	free(f->title);
	free(f->explanation);
}

/* Collects the distinct lock classes and threads of f's steps. */
static int involved(struct analysis *a, struct analysis_finding *f)
{
	f->lock_classes = calloc(f->n_steps + 1, sizeof(*f->lock_classes));
	f->threads = calloc(f->n_steps + 1, sizeof(*f->threads));
	if (!f->lock_classes || !f->threads)
		return ANALYSIS_E_NOMEM;
	for (size_t i = 0; i < f->n_steps; i++) {
		const struct analysis_step *st = &f->steps[i];
		if (st->lock_class && *st->lock_class) {
			size_t j = 0;
			while (j < f->n_lock_classes && strcmp(f->lock_classes[j], st->lock_class) != 0)
				j++;
			if (j == f->n_lock_classes) {
				if (!(f->lock_classes[j] = strdup(st->lock_class)))
					return ANALYSIS_E_NOMEM;
				f->n_lock_classes++;
			}
		}
		if (st->thread) {
			size_t j = 0;
			char *name = st->thread_name && *st->thread_name ? xstrdup(a, st->thread_name)
									 : thread_label(a, st->thread, -1);
			if (!name)
				return ANALYSIS_E_NOMEM;
			/* one entry per thread: an address reused by another task is another thread */
			while (j < f->n_threads &&
			       (f->threads[j].addr != st->thread || strcmp(f->threads[j].name, name) != 0))
				j++;
			if (j == f->n_threads) {
				f->threads[j].addr = st->thread;
				f->threads[j].name = name;
				f->n_threads++;
			} else {
				free(name);
			}
		}
	}
	return 0;
}

static int finding_cmp(const void *x, const void *y)
{
	const struct analysis_finding *f = x, *g = y;
	if (f->rank != g->rank)
		return f->rank < g->rank ? -1 : 1;
	if (f->event_id != g->event_id)
		return f->event_id < g->event_id ? -1 : 1;
	return 0;
}

/* The last lost stretch that began before the finding's last event. */
static const struct analysis_lost *lost_before(const struct analysis_report *rep, const struct analysis_finding *f)
{
	const struct analysis_lost *lost = NULL;
	uint64_t last = f->icount;

	for (size_t i = 0; i < f->n_steps; i++)
		if (f->steps[i].icount > last)
			last = f->steps[i].icount;
	for (size_t i = 0; i < rep->n_lost && rep->lost[i].from_icount <= last; i++)
		lost = &rep->lost[i];
	return lost;
}

int report_build(struct analysis *a, struct analysis_report *rep)
{
	for (size_t i = 0; i < a->n_findings; i++) {
		int rc = involved(a, &a->findings[i]);
		if (rc)
			return rc;
		if (!a->findings[i].title || !a->findings[i].explanation)
			return ANALYSIS_E_NOMEM;
	}
	if (a->n_findings)
		qsort(a->findings, a->n_findings, sizeof(*a->findings), finding_cmp);
	rep->findings = a->findings;
	rep->n_findings = a->n_findings;
	a->findings = NULL;
	a->n_findings = a->cap_findings = 0;
	rep->lost = a->lost;
	rep->n_lost = a->n_lost;
	a->lost = NULL;
	a->n_lost = a->cap_lost = 0;
	for (size_t i = 0; i < rep->n_lost; i++)
		rep->dropped += rep->lost[i].events;
	for (size_t i = 0; i < rep->n_findings; i++)
		rep->findings[i].lost = lost_before(rep, &rep->findings[i]);
	return 0;
}

void analysis_report_free(struct analysis_report *rep)
{
	if (!rep)
		return;
	for (size_t i = 0; i < rep->n_findings; i++)
		finding_free(&rep->findings[i]);
	free(rep->findings);
	free(rep->lost);
	free(rep->outcome);
	free(rep);
}

/* ---------------------------------------------------------------- JSON */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		switch (*p) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		default:
			if (*p < 0x20)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}

static void json_small(FILE *f, int v)
{
	if (v < 0)
		fputs("null", f);
	else
		fprintf(f, "%d", v);
}

static void json_step(FILE *f, const struct analysis_step *st)
{
	fputs("{\"role\": ", f);
	json_str(f, st->role);
	fputs(", \"text\": ", f);
	json_str(f, st->text);
	fprintf(f,
		", \"event\": %" PRId64 ", \"icount\": %" PRIu64 ", \"vcpu\": %u, \"pc\": \"0x%" PRIx64
		"\", \"caller\": \"0x%" PRIx64 "\", \"where\": ",
		st->event_id, st->icount, (unsigned)st->vcpu, st->pc, st->caller);
	json_str(f, st->where);
	fprintf(f, ", \"thread\": \"0x%" PRIx64 "\", \"thread_name\": ", st->thread);
	json_str(f, st->thread_name);
	fprintf(f, ", \"lock\": \"0x%" PRIx64 "\", \"lock_class\": ", st->lock);
	json_str(f, st->lock_class);
	fputs(", \"irql\": ", f);
	json_small(f, st->irql);
	fputs(", \"vector\": ", f);
	json_small(f, st->vector);
	fputc('}', f);
}

static void json_lost(FILE *f, const struct analysis_lost *l)
{
	fprintf(f, "{\"events\": %" PRIu64 ", \"from_icount\": %" PRIu64 ", \"to_icount\": %" PRIu64
		   ", \"event\": %" PRId64 "}",
		l->events, l->from_icount, l->to_icount, l->event_id);
}

int analysis_report_json(const struct analysis_report *rep, FILE *f)
{
	if (!rep || !f)
		return ANALYSIS_E_ARG;
	fputs("{\"outcome\": ", f);
	json_str(f, rep->outcome);
	fprintf(f, ", \"hung\": %s, \"cut\": %s, \"events\": %" PRId64 ", \"dropped\": %" PRIu64 ", \"lost\": [",
		rep->hung ? "true" : "false", rep->cut ? "true" : "false", rep->events, rep->dropped);
	for (size_t i = 0; i < rep->n_lost; i++) {
		if (i)
			fputs(", ", f);
		json_lost(f, &rep->lost[i]);
	}
	fputs("], \"findings\": [", f);
	for (size_t i = 0; i < rep->n_findings; i++) {
		const struct analysis_finding *fd = &rep->findings[i];
		fputs(i ? ",\n  {" : "\n  {", f);
		fputs("\"kind\": ", f);
		json_str(f, fd->kind_name);
		fprintf(f, ", \"kind_id\": %d, \"severity\": \"%s\", \"rank\": %d, \"title\": ", (int)fd->kind,
			analysis_severity_name(fd->severity), fd->rank);
		json_str(f, fd->title);
		fputs(", \"explanation\": ", f);
		json_str(f, fd->explanation);
		fprintf(f, ", \"count\": %" PRIu64 ", \"event\": %" PRId64 ", \"icount\": %" PRIu64 ", \"vcpu\": %u",
			fd->count, fd->event_id, fd->icount, (unsigned)fd->vcpu);
		fputs(", \"lock_classes\": [", f);
		for (size_t j = 0; j < fd->n_lock_classes; j++) {
			if (j)
				fputs(", ", f);
			json_str(f, fd->lock_classes[j]);
		}
		fputs("], \"threads\": [", f);
		for (size_t j = 0; j < fd->n_threads; j++) {
			fprintf(f, "%s{\"addr\": \"0x%" PRIx64 "\", \"name\": ", j ? ", " : "", fd->threads[j].addr);
			json_str(f, fd->threads[j].name);
			fputc('}', f);
		}
		fputs("], \"lost\": ", f);
		if (fd->lost)
			json_lost(f, fd->lost);
		else
			fputs("null", f);
		fputs(", \"steps\": [", f);
		for (size_t j = 0; j < fd->n_steps; j++) {
			fputs(j ? ",\n    " : "\n    ", f);
			json_step(f, &fd->steps[j]);
		}
		fputs("]}", f);
	}
	fputs(rep->n_findings ? "\n]}\n" : "]}\n", f);
	return ferror(f) ? ANALYSIS_E_IO : 0;
}
