/*
 * hang.c - what the end of a run says: crashes (a bugcheck or panic event, a
 * guest reset), the hang diagnosis (spinners, the wait-for graph through
 * locks, sleeping locks and events/completions, the causal chain), the
 * state left at exit, and analysis_finish, which runs every end-of-trace
 * check of the rule families.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/internal.h"

/* ---------------------------------------------------------------- crash */

/* Event kind names for the crash story (db_kind_name is in db/, which the
 * in-memory drivers of this module do not link). */
static const char *kind_word(int kind)
{
	static const char *const words[DB_KIND_MAX + 1] = {
		[DB_TRAP] = "trap", [DB_IRET] = "iret", [DB_IRQL] = "irql", [DB_LOCK_TRY] = "lock_try",
		[DB_LOCK_ACQ] = "lock_acq", [DB_LOCK_REL] = "lock_rel", [DB_WAIT] = "wait",
		[DB_WAIT_END] = "wait_end", [DB_MUTEX_ACQ] = "mutex_acq", [DB_MUTEX_REL] = "mutex_rel",
		[DB_SIGNAL] = "signal", [DB_SWITCH] = "switch", [DB_EOI] = "eoi", [DB_MARKER] = "marker",
		[DB_BUGCHECK] = "bugcheck", [DB_LOCK_INIT] = "lock_init", [DB_LOCK_FAIL] = "lock_fail",
		[DB_DEFER_QUEUE] = "defer_queue", [DB_DEFER_RUN] = "defer_run", [DB_SLEEP] = "sleep",
		[DB_SYSCALL] = "syscall",
	};
	return kind > 0 && kind <= DB_KIND_MAX && words[kind] ? words[kind] : "event";
}

struct story_event {
	struct site s;
	uint8_t kind;
};

static int story_cmp(const void *x, const void *y)
{
	const struct story_event *p = x, *q = y;
	return p->s.id < q->s.id ? -1 : p->s.id > q->s.id;
}

/* The exception that came before (its pc: the faulting instruction when the
 * tracer records the interrupted pc as the trap's caller, else the handler). */
static void exception_text(struct analysis *a, const struct site *x, char *buf, size_t size)
{
	char w[256];
	where_of(a, x, w, sizeof(w));
	if (x->caller)
		snprintf(buf, size, "exception %d at %s", x->vector, w);
	else
		snprintf(buf, size, "exception %d (handler %s)", x->vector, w);
}

/* The last exception on the crashing CPU and the last events of every CPU,
 * in event order. */
static void crash_story(struct analysis *a, struct analysis_finding *f, const struct vcpu *cv)
{
	struct story_event *all = malloc((a->n_vcpus * LAST_EVENTS + 1) * sizeof(*all));
	if (!all) {
		fail(a, ANALYSIS_E_NOMEM);
		return;
	}
	size_t n = 0;
	int64_t xid = cv ? cv->last_exception.id : 0;
	if (xid)
		all[n++] = (struct story_event){cv->last_exception, DB_TRAP};
	for (size_t i = 0; i < a->n_vcpus; i++) {
		const struct vcpu *v = &a->vcpus[i];
		size_t k0 = v->ring_n < LAST_EVENTS ? 0 : v->ring_n - LAST_EVENTS;
		for (size_t k = k0; k < v->ring_n; k++) {
			const struct site *s = &v->ring[k % LAST_EVENTS];
			if (s->id != a->crash_site.id && s->id != xid)
				all[n++] = (struct story_event){*s, v->ring_kind[k % LAST_EVENTS]};
		}
	}
	qsort(all, n, sizeof(*all), story_cmp);
	for (size_t k = 0; k < n; k++) {
		char w[300];
		if (xid && all[k].s.id == xid) {
			exception_text(a, &all[k].s, w, sizeof(w));
			finding_step(a, f, "trap", &all[k].s, "%s", w);
		} else {
			finding_step(a, f, "last", &all[k].s, "cpu%u: %s at %s", (unsigned)all[k].s.vcpu,
				     kind_word(all[k].kind), where_of(a, &all[k].s, w, sizeof(w)));
		}
	}
	free(all);
}

void on_crash(struct analysis *a, struct vcpu *v, const struct db_event *ev, const struct site *s,
	      const char *raw)
{
	/* A panic's text is often its format string: one line, without its newline. */
	char text_buf[256];
	const char *text = NULL;
	if (raw) {
		size_t n = strcspn(raw, "\n");
		snprintf(text_buf, sizeof(text_buf), "%.*s", (int)(n < sizeof(text_buf) ? n : sizeof(text_buf) - 1), raw);
		text = text_buf;
	}
	int is_new;
	struct analysis_finding *f = finding_get(a, ANALYSIS_CRASH, hash_mix((uint64_t)ev->a, s->pc), &is_new);
	if (!f)
		return;
	f->count++;
	if (!is_new)
		return;
	a->have_crash = 1;
	a->crash_site = *s;
	char w[256], fw[300] = "";
	where_of(a, s, w, sizeof(w));
	const struct site *x = v->last_exception.id ? &v->last_exception : NULL;
	if (x)
		exception_text(a, x, fw, sizeof(fw));
	char *who = thread_label(a, s->thread, s->tid);
	finding_target(f, s);
	crash_story(a, f, v);
	finding_step(a, f, "crash", s, "%s 0x%" PRIx64 " (0x%" PRIx64 ")%s%s on %s at %s",
		     text ? "panic" : "bugcheck", (uint64_t)ev->a, (uint64_t)ev->b, text ? ": " : "", text ? text : "",
		     who ? who : "", w);
	if (text)
		finding_title(a, f, "crash: panic \"%s\" on %s%s%s", text, who ? who : "", x ? " after " : "", fw);
	else
		finding_title(a, f, "crash: bugcheck 0x%" PRIx64 " (0x%" PRIx64 ") on %s%s%s", (uint64_t)ev->a,
			      (uint64_t)ev->b, who ? who : "", x ? " after " : "", fw);
	finding_explain(a, f,
			"The kernel stopped itself at %s (%s code 0x%" PRIx64 ", parameter 0x%" PRIx64 "%s%s). %s "
			"The steps show the last events of every CPU before it; replay to the event to inspect the "
			"state that made it give up.",
			w, text ? "panic" : "bugcheck", (uint64_t)ev->a, (uint64_t)ev->b, text ? ", text: " : "",
			text ? text : "",
			x ? "An exception on that CPU came first: the crash is most likely its consequence (its "
			    "trap step is the faulting instruction when the trace records the interrupted pc, "
			    "else the handler; replay to it and look at the saved rip)."
			  : "");
	free(who);
}

/* A run that ended by resetting (triple fault) or by a panic the trace has
 * no event for. */
static void reset_crash(struct analysis *a, const char *outcome)
{
	struct vcpu *lv = NULL;
	for (size_t v = 0; v < a->n_vcpus; v++)
		if (a->vcpus[v].seen && (!lv || a->vcpus[v].last.id > lv->last.id))
			lv = &a->vcpus[v];
	if (!lv)
		return;
	int is_new;
	struct analysis_finding *f = finding_get(a, ANALYSIS_CRASH, 0, &is_new);
	if (!f || !is_new)
		return;
	f->count = 1;
	a->crash_site = lv->last;
	finding_target(f, &lv->last);
	crash_story(a, f, lv);
	char fw[300] = "";
	if (lv->last_exception.id)
		exception_text(a, &lv->last_exception, fw, sizeof(fw));
	finding_title(a, f, "crash: the guest %s%s%s", strcmp(outcome, "reset") == 0 ? "reset" : "panicked or reset",
		      *fw ? " after " : "", fw);
	finding_explain(a, f,
			"The run ended with outcome '%s' and no bugcheck event: the machine reset (a triple fault: an "
			"exception while delivering an exception, usually a broken stack, IDT or page table) or "
			"QEMU reported a guest panic. %s The last events of every CPU are below; replay to the last "
			"one to see the state.",
			outcome,
			*fw ? "The last exception's pc is the best guess for the faulting instruction." : "");
}

/* ---------------------------------------------------------------- hang */

struct chain {
	struct analysis_step_src {
		const char *role;
		struct site s;
		char *text;
	} *items;
	size_t n, cap;
};

static void chain_add(struct analysis *a, struct chain *c, const char *role, const struct site *s, char *text)
{
	if (!text || !s->id) {
		free(text);
		return;
	}
	for (size_t i = 0; i < c->n; i++) {
		if (c->items[i].s.id == s->id) {
			free(text);
			return;
		}
	}
	if (grow((void **)&c->items, &c->cap, c->n + 1, sizeof(*c->items))) {
		a->error = ANALYSIS_E_NOMEM;
		free(text);
		return;
	}
	c->items[c->n].role = role;
	c->items[c->n].s = *s;
	c->items[c->n].text = text;
	c->n++;
}

static int chain_cmp(const void *x, const void *y)
{
	const struct analysis_step_src *p = x, *q = y;
	return p->s.id < q->s.id ? -1 : p->s.id > q->s.id;
}

static void chain_flush(struct analysis *a, struct analysis_finding *f, struct chain *c, int sort)
{
	if (sort && c->n)
		qsort(c->items, c->n, sizeof(*c->items), chain_cmp);
	for (size_t i = 0; i < c->n; i++) {
		finding_step(a, f, c->items[i].role, &c->items[i].s, "%s", c->items[i].text);
		free(c->items[i].text);
	}
	free(c->items);
	memset(c, 0, sizeof(*c));
}

/* The thread t waits for, as index + 1 (0 if none): the holder of the lock
 * it spins on or of the sleeping lock it waits for; for an event or
 * completion, the thread that signalled it before (the one expected to
 * signal it again). */
static uint32_t waits_for(const struct analysis *a, const struct thread *t)
{
	if (t->has_try)
		return a->locks[t->try_lock].holder;
	if (!t->has_wait)
		return 0;
	uint32_t li;
	if (lock_find(a, t->wait_obj, 1, &li))
		return a->locks[li].holder;
	uint32_t by;
	if (u64map_get(&a->signal_map, t->wait_obj, &by) && by != (uint32_t)(t - a->threads) + 1)
		return by;
	return 0;
}

static int waits_on_completion(const struct analysis *a, const struct thread *t)
{
	uint32_t li;
	return !t->has_try && t->has_wait && !(lock_find(a, t->wait_obj, 1, &li));
}

/* " (IRQL 2)", " (interrupts on)" or "": what the level was at s, as far as
 * the trace knows it (a kernel without IRQL has only IF). */
static const char *level_at(const struct analysis *a, const struct site *s, char *buf, size_t size)
{
	if (s->irql >= 0)
		snprintf(buf, size, " (IRQL %d)", s->irql);
	else if (a->if_seen)
		snprintf(buf, size, " (interrupts %s)", s->flags & DB_F_IF ? "on" : "off");
	else
		buf[0] = '\0';
	return buf;
}

/* Adds to c why thread t is stuck: the acquisition of what it waits for and
 * the frames and switches that brought it there. */
static void explain_stuck(struct analysis *a, struct chain *c, struct thread *t)
{
	char *who = thread_label(a, t->addr, t->tid);
	const struct lock *l = NULL;
	uint32_t li;
	if (t->has_try)
		l = &a->locks[t->try_lock];
	else if (t->has_wait && lock_find(a, t->wait_obj, 1, &li))
		l = &a->locks[li];
	if (l && l->holder) {
		char *owner = thread_label(a, a->threads[l->holder - 1].addr, a->threads[l->holder - 1].tid);
		char lv[32];
		chain_add(a, c, "held", &l->acq,
			  xasprintf(a, "%s acquired %s%s", owner ? owner : "", class_name(a, l->cls),
				    level_at(a, &l->acq, lv, sizeof(lv))));
		free(owner);
	}
	for (size_t i = 0; i < t->n_frames; i++) {
		const struct frame *fr = &t->frames[i];
		chain_add(a, c, "trap", &fr->trap, xasprintf(a, "vector 0x%x delivered on %s", fr->vector, who ? who : ""));
		if (fr->eoi)
			chain_add(a, c, "eoi", &fr->eoi_site, xasprintf(a, "EOI sent for vector 0x%x", fr->vector));
	}
	if (t->in_site.id && (!l || t->in_site.id > l->acq.id))
		chain_add(a, c, "switch-in", &t->in_site, xasprintf(a, "%s switched in", who ? who : ""));
	char lv[32];
	if (t->has_try)
		chain_add(a, c, "spin", &t->try_site,
			  xasprintf(a, "%s spins on %s%s and never gets it", who ? who : "",
				    class_name(a, a->locks[t->try_lock].cls), level_at(a, &t->try_site, lv, sizeof(lv))));
	else if (t->has_wait)
		chain_add(a, c, "wait", &t->wait_site,
			  xasprintf(a, "%s waits on %s%s and never returns", who ? who : "", l ? "mutex " : "object ",
				    l ? class_name(a, l->cls) : ""));
	free(who);
}

/* Threads neither holding nor waiting shown at a hang: the most recent ones. */
#define LAST_IDLE_THREADS 4

static int cmp_last(const void *x, const void *y)
{
	const struct thread *const *p = x, *const *q = y;
	return (*p)->last.id > (*q)->last.id ? -1 : (*p)->last.id < (*q)->last.id;
}

static void last_events(struct analysis *a, struct chain *c)
{
	for (size_t v = 0; v < a->n_vcpus; v++)
		if (a->vcpus[v].seen)
			chain_add(a, c, "last", &a->vcpus[v].last, xasprintf(a, "last event on cpu%zu", v));
	struct thread **order = malloc((a->n_threads + 1) * sizeof(*order));
	if (!order) {
		a->error = ANALYSIS_E_NOMEM;
		return;
	}
	/* The threads that hold, spin or wait first (they are the story), then
	 * the few that ran last; not every process that ever ran. */
	size_t n = 0, idle = 0;
	for (size_t i = 0; i < a->n_threads; i++)
		if (a->threads[i].last.id)
			order[n++] = &a->threads[i];
	qsort(order, n, sizeof(*order), cmp_last);
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n; i++) {
			const struct thread *t = order[i];
			int involved = t->n_held || t->has_try || t->has_wait;
			if (involved != !pass || (pass && idle++ >= LAST_IDLE_THREADS))
				continue;
			char *who = thread_label(a, t->addr, t->tid);
			chain_add(a, c, "last", &t->last, xasprintf(a, "last event of %s", who ? who : ""));
			free(who);
		}
	free(order);
}

static int is_outcome(const char *outcome, const char *const *list)
{
	for (; outcome && *list; list++)
		if (strcmp(outcome, *list) == 0)
			return 1;
	return 0;
}

static void hang(struct analysis *a, int explicit_hang, int *hung)
{
	/* Wait-for graph: each thread has at most one outgoing edge. */
	uint32_t *mark = calloc(a->n_threads + 1, sizeof(*mark));
	uint32_t *cycle = malloc((a->n_threads + 1) * sizeof(*cycle));
	if (!mark || !cycle) {
		a->error = ANALYSIS_E_NOMEM;
		goto out;
	}
	size_t n_cycle = 0;
	for (size_t i = 0; i < a->n_threads && !n_cycle; i++) {
		uint32_t cur = (uint32_t)i;
		while (mark[cur] == 0) {
			mark[cur] = (uint32_t)i + 1;
			uint32_t next = waits_for(a, &a->threads[cur]);
			if (!next)
				break;
			cur = next - 1;
			if (mark[cur] == (uint32_t)i + 1) {
				uint32_t k = cur;
				do {
					cycle[n_cycle++] = k;
					k = waits_for(a, &a->threads[k]) - 1;
				} while (k != cur);
				break;
			}
		}
	}
	struct thread *spinner = NULL, *waiter = NULL;
	for (size_t i = 0; i < a->n_threads; i++) {
		struct thread *t = &a->threads[i];
		if (t->has_try && (!spinner || t->try_site.id > spinner->try_site.id))
			spinner = t;
		if (t->has_wait && waits_for(a, t) && (!waiter || t->wait_site.id > waiter->wait_site.id))
			waiter = t;
	}
	if (!explicit_hang && !spinner && !n_cycle)
		goto out;
	*hung = 1;

	int is_new;
	struct analysis_finding *f = finding_get(a, ANALYSIS_HANG, 0, &is_new);
	if (!f)
		goto out;
	f->count = 1;
	struct chain c = {0};
	char *title = NULL, *why = NULL;
	if (a->have_ebs) {
		chain_add(a, &c, "eoi", &a->ebs_eoi, xasprintf(a, "EOI sent inside an interrupt"));
		chain_add(a, &c, "switch", &a->ebs_switch, xasprintf(a, "context switch before that interrupt returned"));
	}
	for (int v = FIRST_INTERRUPT_VECTOR; v < 256; v++) {
		const struct vector_stats *vs = &a->vectors[v];
		if (needs_eoi(a, v, explicit_hang) && vs->last_trap.id == vs->last_noeoi_trap.id) {
			chain_add(a, &c, "trap", &vs->last_noeoi_trap, xasprintf(a, "vector 0x%x delivered", v));
			chain_add(a, &c, "iret", &vs->last_noeoi_iret,
				  xasprintf(a, "vector 0x%x returned without EOI; never delivered again", v));
			if (!title) {
				title = xasprintf(a, "hang: interrupt 0x%x returned without EOI and never fired again", v);
				why = xasprintf(a,
						"The run stopped making progress. The last delivery of vector 0x%x returned "
						"without an EOI (event %" PRId64 "), so the local APIC kept it in service and "
						"never delivered it, or anything of lower priority, again: the clock and "
						"the scheduler stopped. Send the EOI on every path out of the handler.",
						v, vs->last_noeoi_iret.id);
				finding_target(f, &vs->last_noeoi_iret);
			}
		}
	}
	struct thread *focus = n_cycle ? &a->threads[cycle[0]] : spinner ? spinner : waiter;
	if (n_cycle) {
		for (size_t k = 0; k < n_cycle; k++)
			explain_stuck(a, &c, &a->threads[cycle[k]]);
	} else if (focus) {
		explain_stuck(a, &c, focus);
	}
	if (focus && !a->error) {
		char *who = thread_label(a, focus->addr, focus->tid);
		const struct lock *l = NULL;
		uint32_t li;
		if (focus->has_try)
			l = &a->locks[focus->try_lock];
		else if (focus->has_wait && lock_find(a, focus->wait_obj, 1, &li))
			l = &a->locks[li];
		const char *cn = l ? class_name(a, l->cls) : "";
		const struct site *target = focus->has_try ? &focus->try_site : &focus->wait_site;
		free(title);
		free(why);
		if (n_cycle == 1 && focus->has_try) {
			const struct held *h = NULL;
			for (size_t i = 0; i < focus->n_held; i++)
				if (focus->held[i].lock == focus->try_lock)
					h = &focus->held[i];
			int vec = focus->n_frames ? focus->frames[focus->n_frames - 1].vector : -1;
			int64_t ctx = focus->n_frames ? focus->frames[focus->n_frames - 1].trap.id : 0;
			if (h && h->ctx != ctx && vec >= FIRST_INTERRUPT_VECTOR) {
				title = xasprintf(a, "hang: interrupt 0x%x on %s spins on %s, which its own CPU holds", vec,
						  who ? who : "", cn);
				char lv[32];
				why = xasprintf(a,
						"%s held %s%s (event %" PRId64 ") when interrupt 0x%x arrived; "
						"its handler tried the same lock and spins forever, because the holder it "
						"waits for is the code it interrupted on the same CPU. A lock taken in an "
						"interrupt handler must be held elsewhere only at that interrupt's IRQL or "
						"higher (see the irq-unsafe-lock finding).",
						who ? who : "", cn, level_at(a, &h->acq, lv, sizeof(lv)), h->acq.id, vec);
			} else {
				title = xasprintf(a, "hang: %s spins on %s, which it already holds", who ? who : "", cn);
				why = xasprintf(a,
						"%s tries to acquire %s a second time while holding it: a spinlock is not "
						"recursive, so it spins on itself forever. See the recursive-spinlock "
						"finding for both acquisition sites.",
						who ? who : "", cn);
			}
		} else if (n_cycle) {
			size_t len = 64;
			for (size_t k = 0; k < n_cycle; k++)
				len += 192;
			char *desc = calloc(1, len * 2);
			if (!desc) {
				a->error = ANALYSIS_E_NOMEM;
				free(who);
				chain_flush(a, f, &c, 1);
				goto out;
			}
			for (size_t k = 0; k < n_cycle; k++) {
				struct thread *t = &a->threads[cycle[k]];
				struct thread *o = &a->threads[waits_for(a, t) - 1];
				const struct lock *tl = t->has_try ? &a->locks[t->try_lock] : NULL;
				if (!tl && lock_find(a, t->wait_obj, 1, &li))
					tl = &a->locks[li];
				char *tn = thread_label(a, t->addr, t->tid), *on = thread_label(a, o->addr, o->tid);
				size_t at = strlen(desc);
				if (waits_on_completion(a, t))
					snprintf(desc + at, len * 2 - at,
						 "%s%s waits for completion/event 0x%" PRIx64 " that %s signalled before",
						 k ? ", " : "", tn ? tn : "", t->wait_obj, on ? on : "");
				else
					snprintf(desc + at, len * 2 - at, "%s%s waits for %s held by %s", k ? ", " : "",
						 tn ? tn : "", tl ? class_name(a, tl->cls) : "?", on ? on : "");
				free(tn);
				free(on);
			}
			title = xasprintf(a, "hang: deadlock: %s", desc);
			why = xasprintf(a,
					"The run hung in a wait-for cycle: %s. None of them can proceed until another "
					"releases, so none ever does. The lock-order finding (if shown) gives the "
					"acquisition paths that built the cycle; acquire these locks in one global order.",
					desc);
			free(desc);
		} else if (l && l->holder) {
			char *owner = thread_label(a, a->threads[l->holder - 1].addr, a->threads[l->holder - 1].tid);
			const struct thread *ot = &a->threads[l->holder - 1];
			title = xasprintf(a, "hang: %s %s on %s held by %s", who ? who : "",
					  focus->has_try ? "spins" : "waits", cn, owner ? owner : "");
			why = xasprintf(a,
					"%s %s on %s, held by %s since event %" PRId64 "%s. The holder never released "
					"it before the run stopped: find why it cannot run (the last events below) or "
					"why it keeps the lock.",
					who ? who : "", focus->has_try ? "spins" : "waits", cn, owner ? owner : "", l->acq.id,
					ot->running ? "" : ", and the holder is switched out");
			free(owner);
		} else {
			title = xasprintf(a, "hang: %s %s on %s at the end of the trace", who ? who : "",
					  focus->has_try ? "spins" : "waits", *cn ? cn : "an object");
			why = xasprintf(a,
					"The run stopped while %s was %s on %s, which the trace shows no one holding; "
					"the release or the acquisition may be missing from the trace (a path the "
					"probe does not cover).",
					who ? who : "", focus->has_try ? "spinning" : "waiting", *cn ? cn : "an object");
		}
		finding_target(f, target);
		free(who);
	}
	if (!title) {
		title = xasprintf(a, "hang: no forward progress after event %" PRId64, a->last_id);
		why = xasprintf(a,
				"The run was stopped as hung (outcome %s) and the trace shows no thread spinning on a "
				"lock or waiting in a cycle. The last events of each CPU and thread below show where "
				"execution stopped (an idle loop with interrupts masked, a halt, a busy loop the probes "
				"do not see).",
				explicit_hang ? "hang/timeout" : "unknown");
		struct vcpu *lv = NULL;
		for (size_t v = 0; v < a->n_vcpus; v++)
			if (a->vcpus[v].seen && (!lv || a->vcpus[v].last.id > lv->last.id))
				lv = &a->vcpus[v];
		if (lv)
			finding_target(f, &lv->last);
	}
	finding_title(a, f, "%s", title ? title : "hang");
	finding_explain(a, f, "%s", why ? why : "");
	free(title);
	free(why);
	chain_flush(a, f, &c, 1);
	last_events(a, &c);
	chain_flush(a, f, &c, 1);
out:
	free(mark);
	free(cycle);
}

/* ---------------------------------------------------------------- at exit */

static void at_exit(struct analysis *a, int normal_end, int hung)
{
	for (size_t i = 0; i < a->n_locks && !a->error; i++) {
		const struct lock *l = &a->locks[i];
		if (!l->holder || (l->sleeping && normal_end))
			continue;
		int is_new;
		struct analysis_finding *f =
			finding_get(a, ANALYSIS_LOCK_HELD_AT_EXIT, hash_mix(l->cls, l->acq.pc), &is_new);
		if (!f)
			return;
		f->count++;
		if (!is_new)
			continue;
		char *owner = thread_label(a, a->threads[l->holder - 1].addr, a->threads[l->holder - 1].tid);
		const char *what = l->sleeping ? "mutex" : "spinlock";
		finding_target(f, &l->acq);
		finding_step(a, f, "held", &l->acq, "%s acquired %s %s", owner ? owner : "", what, class_name(a, l->cls));
		finding_title(a, f, "%s %s still held by %s when the trace ended", what, class_name(a, l->cls),
			      owner ? owner : "");
		finding_explain(a, f,
				"%s acquired %s %s at event %" PRId64 " and had not released it when the trace ended%s. "
				"Either a release is missing on some path, or the holder was stuck (see the hang "
				"finding, if any).",
				owner ? owner : "", what, class_name(a, l->cls), l->acq.id,
				normal_end ? " although the run finished normally" : "");
		free(owner);
	}
	if (!hung)
		return;
	for (size_t i = 0; i < a->n_threads && !a->error; i++) {
		const struct thread *t = &a->threads[i];
		if (!t->has_wait)
			continue;
		int is_new;
		struct analysis_finding *f =
			finding_get(a, ANALYSIS_WAIT_NEVER_SATISFIED, hash_mix(t->wait_site.pc, t->wait_obj), &is_new);
		if (!f)
			return;
		f->count++;
		if (!is_new)
			continue;
		char *who = thread_label(a, t->addr, t->tid);
		uint32_t li;
		const char *cn = lock_find(a, t->wait_obj, 1, &li) ? class_name(a, a->locks[li].cls) : "";
		finding_target(f, &t->wait_site);
		finding_step(a, f, "wait", &t->wait_site, "%s waits on object 0x%" PRIx64 "%s%s", who ? who : "",
			     t->wait_obj, *cn ? " " : "", cn);
		finding_title(a, f, "%s waits on 0x%" PRIx64 "%s%s%s forever", who ? who : "", t->wait_obj,
			      *cn ? " (" : "", cn, *cn ? ")" : "");
		finding_explain(a, f,
				"%s began waiting on dispatcher object 0x%" PRIx64 " at event %" PRId64
				" and the wait never returned before the run hung: nobody signalled or released it.",
				who ? who : "", t->wait_obj, t->wait_site.id);
		free(who);
	}
}


/* A thread that ends blocked on a sleeping lock held by another depends on
 * it: the dependency exists even though the grant never happened. */
static void pending_wait_edges(struct analysis *a)
{
	for (size_t i = 0; i < a->n_threads && !a->error; i++) {
		struct thread *t = &a->threads[i];
		uint32_t li;
		if (!t->has_wait || !lock_find(a, t->wait_obj, 1, &li))
			continue;
		struct lock *l = &a->locks[li];
		if (l->sleeping && l->holder && l->holder != (uint32_t)i + 1)
			add_edges(a, t, l, l->cls, 0, &t->wait_site);
	}
}

int finish_checks(struct analysis *a, const char *outcome, int *hung)
{
	static const char *const normal[] = {"pass", "fail", "bugcheck", "completed", "exit", "panic", "reset", NULL};
	static const char *const hanging[] = {"hang", "timeout", NULL};
	static const char *const resets[] = {"panic", "reset", NULL};
	int normal_end = is_outcome(outcome, normal);
	*hung = 0;
	pending_wait_edges(a);
	int rc = lock_order_cycles(a);
	if (rc)
		return rc;
	recursive_locking_finish(a);
	irq_usage_checks(a);
	atomic_finish(a);
	interrupt_finish(a, is_outcome(outcome, hanging));
	if (!a->have_crash && is_outcome(outcome, resets))
		reset_crash(a, outcome);
	if (!normal_end)
		hang(a, is_outcome(outcome, hanging), hung);
	at_exit(a, normal_end && !a->have_crash, *hung);
	return a->error;
}

int analysis_finish(struct analysis *a, const char *outcome, struct analysis_report **out, char **err)
{
	if (!a || !out || a->finished) {
		if (err)
			*err = strdup("analysis_finish: bad argument or already finished");
		return ANALYSIS_E_ARG;
	}
	*out = NULL;
	a->finished = 1;
	struct analysis_report *rep = calloc(1, sizeof(*rep));
	int hung = 0;
	int rc = rep ? a->error : ANALYSIS_E_NOMEM;
	if (!rc)
		rc = finish_checks(a, outcome, &hung);
	if (!rc && !(rep->outcome = strdup(outcome ? outcome : "")))
		rc = ANALYSIS_E_NOMEM;
	if (!rc)
		rc = report_build(a, rep);
	if (rc) {
		if (err)
			*err = strdup(rc == ANALYSIS_E_NOMEM ? "out of memory while analysing the trace"
							     : "analysis failed");
		analysis_report_free(rep);
		return rc;
	}
	rep->hung = hung;
	rep->events = a->events;
	rep->last_event_id = a->last_id;
	rep->lock_classes = a->n_classes;
	rep->lock_order_edges = a->n_edges;
	rep->threads = a->n_threads;
	*out = rep;
	return 0;
}
