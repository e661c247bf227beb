/*
 * irqusage.c - irq usage per lock class and its rules (lockdep's "irq
 * state" half, Documentation/locking/lockdep-design.rst, "State" and
 * "Single-lock state rules" / "Multi-lock dependency rules").
 *
 * Usage bits, per class, for write (exclusive) and read (shared) holds:
 *   USED_IN_HARDIRQ   acquired in hardirq context (the event's ctx); for an
 *                     IRQL kernel at the IRQL it ran at;
 *   USED_IN_SOFTIRQ   acquired in softirq / DPC context;
 *   ENABLED_HARDIRQ   held with interrupts enabled (IF set at the acquire, or
 *                     a later event of the holder with IF set); for an IRQL
 *                     kernel at the IRQL held, so that only interrupts above
 *                     it can arrive;
 *   ENABLED_SOFTIRQ   held in process context with IF set, softirqs not
 *                     disabled (no _bh acquire held, DB_F_DEFER_OFF clear)
 *                     and below DISPATCH_LEVEL when the IRQL is known.
 * A trylock does not mark USED_IN (it cannot wait in the interrupt), as in
 * lockdep. Sleeping locks have no irq usage.
 * Rules:
 *   - inconsistent state: USED_IN_x and ENABLED_x on one class (below the
 *     level of use): the interrupt can arrive while its own CPU holds the
 *     lock and spin forever ("inconsistent {IN-HARDIRQ-W} -> {HARDIRQ-ON-W}
 *     usage"). Read usage in the interrupt conflicts only with write holds.
 *   - propagation: a class used in x that is held while a class enabled in
 *     x is acquired, anywhere in the dependency graph ("HARDIRQ-safe ->
 *     HARDIRQ-unsafe lock order detected"): CPU 1 holds the unsafe lock with
 *     x enabled, x arrives and spins on the safe lock held by CPU 0, which
 *     waits for the unsafe one.
 * Traces without IF and ctx (schema 1) use the legacy view: interrupt
 * context = inside an interrupt frame above DISPATCH_LEVEL, and a lock held
 * at an IRQL is enabled for interrupts above it.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/internal.h"

static void mark(struct lock_class *c, int view, int idx, int level, int highest, const struct site *s)
{
	struct usage *u = &c->use[view][idx];
	if (u->set && (highest ? level <= u->level : level >= u->level))
		return;
	u->set = 1;
	u->level = level;
	u->site = *s;
	u->site.irql = (int8_t)(level == IRQL_ANY ? IRQL_UNKNOWN : level);
}

static int softirq_enabled(const struct thread *t, const struct db_event *ev, int irql)
{
	return ev->ctx == DB_CTX_PROCESS && (ev->flags & DB_F_IF) && !(ev->flags & DB_F_DEFER_OFF) &&
	       t->bh_depth == 0 && (irql == IRQL_UNKNOWN || irql < IRQL_DISPATCH);
}

static void used_in(struct lock_class *c, struct thread *t, const struct db_event *ev, int r, int irql,
		    const struct site *s)
{
	int used_level = irql == IRQL_UNKNOWN ? IRQL_ANY : irql;
	if (ev->ctx == DB_CTX_HARDIRQ)
		mark(c, VIEW_CTX, USAGE(USED_IN_HARDIRQ, r), used_level, 1, s);
	else if (ev->ctx == DB_CTX_SOFTIRQ)
		mark(c, VIEW_CTX, USAGE(USED_IN_SOFTIRQ, r), used_level, 1, s);
	if (in_interrupt(t) && (irql == IRQL_UNKNOWN || irql > IRQL_DISPATCH))
		mark(c, VIEW_LEGACY, USAGE(USED_IN_HARDIRQ, r), used_level, 1, s);
}

/* A blocking attempt marks USED_IN already (as lockdep does before it
 * spins): an interrupt that never gets the lock used it all the same. */
void usage_attempt(struct analysis *a, struct thread *t, uint32_t cls, const struct db_event *ev, int irql,
		   const struct site *s)
{
	int fl = DB_LOCKOP_FLAVOR(ev->lockop);
	if (!is_sleeping_flavor(fl))
		used_in(&a->classes[cls], t, ev, fl == DB_LF_READ || fl == DB_LF_RWSEM_READ, irql, s);
}

void usage_acquire(struct analysis *a, struct thread *t, struct held *h, const struct db_event *ev, int irql)
{
	if (is_sleeping_flavor(h->flavor))
		return;
	struct lock_class *c = &a->classes[h->cls];
	int r = h->shared;
	int on_level = irql; /* IRQL_UNKNOWN (-1): below any level of use */
	if (!h->trylock)
		used_in(c, t, ev, r, irql, &h->acq);
	if (ev->flags & DB_F_IF) {
		mark(c, VIEW_CTX, USAGE(ENABLED_HARDIRQ, r), on_level, 0, &h->acq);
		h->hard_on = 1;
	}
	if (softirq_enabled(t, ev, irql))
		mark(c, VIEW_CTX, USAGE(ENABLED_SOFTIRQ, r), on_level, 0, &h->acq);
	if (irql != IRQL_UNKNOWN)
		mark(c, VIEW_LEGACY, USAGE(ENABLED_HARDIRQ, r), irql, 0, &h->acq);
}

/* Interrupts enabled while locks taken with them off are still held. */
void usage_event(struct analysis *a, struct thread *t, const struct db_event *ev, const struct site *s, int irql)
{
	if (!(ev->flags & DB_F_IF) || !t->n_held)
		return;
	int64_t ctx = context_of(t);
	for (size_t i = 0; i < t->n_held; i++) {
		struct held *h = &t->held[i];
		if (h->hard_on || h->ctx != ctx || is_sleeping_flavor(h->flavor))
			continue;
		h->hard_on = 1;
		struct site at = *s;
		at.lock = a->locks[h->lock].addr;
		mark(&a->classes[h->cls], VIEW_CTX, USAGE(ENABLED_HARDIRQ, h->shared), irql, 0,
		     &at);
	}
}

static const char *const exc_name[2] = {"HARDIRQ", "SOFTIRQ"};
static const char *const exc_word[2] = {"hardirq", "softirq"};

/* The enabled usage of class c that conflicts with use u (in exc, read
 * ur), or NULL: a write use conflicts with any hold, a read use only with
 * write holds, and only holds below the level of use. */
static const struct usage *conflict(const struct lock_class *c, int view, int exc, int ur, const struct usage *u)
{
	for (int hr = 0; hr < 2; hr++) {
		const struct usage *e = &c->use[view][USAGE(ENABLED_HARDIRQ + exc, hr)];
		if (!e->set || (ur && hr) || e->level >= u->level)
			continue;
		return e;
	}
	return NULL;
}

static void level_text(char *buf, size_t size, const char *what, int level)
{
	if (level == IRQL_ANY || level < 0)
		snprintf(buf, size, "%s", what);
	else
		snprintf(buf, size, "%s at IRQL %d", what, level);
}

static void inconsistent(struct analysis *a, uint32_t ci, int view)
{
	const struct lock_class *c = &a->classes[ci];
	for (int exc = 0; exc < 2; exc++) {
		for (int ur = 0; ur < 2; ur++) {
			const struct usage *u = &c->use[view][USAGE(USED_IN_HARDIRQ + exc, ur)];
			const struct usage *e = u->set ? conflict(c, view, exc, ur, u) : NULL;
			if (!e)
				continue;
			int er = e == &c->use[view][USAGE(ENABLED_HARDIRQ + exc, 1)];
			int is_new;
			struct analysis_finding *f = finding_get(a, ANALYSIS_IRQ_UNSAFE_LOCK, hash_mix(ci, (uint64_t)exc),
								 &is_new);
			if (!f)
				return;
			f->count = 1;
			char *in = thread_label(a, u->site.thread, u->site.tid), *out = thread_label(a, e->site.thread, e->site.tid);
			char w1[256], w2[256], l1[64], l2[64];
			level_text(l1, sizeof(l1), exc_word[exc], u->level);
			level_text(l2, sizeof(l2), exc ? "softirqs enabled" : "interrupts enabled", e->level);
			const struct site *first = u->site.id < e->site.id ? &u->site : &e->site;
			const struct site *second = first == &u->site ? &e->site : &u->site;
			for (int k = 0; k < 2; k++) {
				const struct site *s = k ? second : first;
				if (s == &u->site)
					finding_step(a, f, "acquire", s, "%s acquired in %s on %s at %s", c->name, l1,
						     in ? in : "", where_of(a, s, w1, sizeof(w1)));
				else
					finding_step(a, f, "acquire", s, "%s held with %s on %s at %s", c->name, l2,
						     out ? out : "", where_of(a, s, w2, sizeof(w2)));
			}
			finding_target(f, second);
			finding_title(a, f, "inconsistent {IN-%s-%c} -> {%s-ON-%c} usage of %s", exc_name[exc],
				      ur ? 'R' : 'W', exc_name[exc], er ? 'R' : 'W', c->name);
			finding_explain(a, f,
					"%s is acquired in %s and also held with %s. If the %s arrives on the CPU "
					"that holds the lock, its handler spins forever on a lock its own CPU holds "
					"(lockdep's 'inconsistent lock state'). Disable %s around every other "
					"acquisition (an irq-saving or bh-disabling acquire; on an IRQL kernel raise "
					"to the interrupt's IRQL), or keep the lock out of the handler (defer the work).",
					c->name, l1, l2, exc ? "softirq" : "interrupt",
					exc ? "softirqs" : "interrupts (to that IRQL)");
			free(in);
			free(out);
			return;
		}
	}
}

/* Forward BFS from class safe; for every class reached that is enabled in
 * exc below the level safe is used at, one finding per unsafe class. */
static int propagate(struct analysis *a, const struct graph *g, int view, int exc, uint32_t safe, uint32_t *via,
		     uint32_t *queue)
{
	const struct lock_class *sc = &a->classes[safe];
	for (int ur = 0; ur < 2; ur++) {
		const struct usage *u = &sc->use[view][USAGE(USED_IN_HARDIRQ + exc, ur)];
		if (!u->set)
			continue;
		size_t head = 0, tail = 0;
		queue[tail++] = safe;
		via[safe] = UINT32_MAX - 1;
		int64_t first = -1; /* the finding of the nearest unsafe class: the others are its variants */
		while (head < tail) {
			uint32_t c = queue[head++];
			const struct usage *e = c != safe ? conflict(&a->classes[c], view, exc, ur, u) : NULL;
			if (e && !conflict(sc, view, exc, ur, u)) {
				if (first >= 0) {
					a->findings[first].count++;
					continue;
				}
				int is_new;
				struct analysis_finding *f = finding_get(a, ANALYSIS_IRQ_LOCK_ORDER,
									 hash_mix(c, (uint64_t)exc), &is_new);
				if (!f)
					break;
				first = f - a->findings;
				f->count++;
				if (is_new) {
					const char *un = class_name(a, c);
					char w[256], l1[64];
					level_text(l1, sizeof(l1), exc_word[exc], u->level);
					finding_step(a, f, "acquire", &u->site, "%s acquired in %s at %s", sc->name, l1,
						     where_of(a, &u->site, w, sizeof(w)));
					uint32_t path[64];
					size_t n = 0;
					for (uint32_t x = c; x != safe && n < 64; x = a->edges[via[x]].from)
						path[n++] = via[x];
					while (n--) {
						const struct edge *ed = &a->edges[path[n]];
						char wh[256], wa[256];
						finding_step(a, f, "held", &ed->held, "%s held (taken at %s)",
							     class_name(a, ed->from), where_of(a, &ed->held, wh, sizeof(wh)));
						finding_step(a, f, "acquire", &ed->acq, "%s acquired while holding %s at %s",
							     class_name(a, ed->to), class_name(a, ed->from),
							     where_of(a, &ed->acq, wa, sizeof(wa)));
					}
					finding_step(a, f, "held", &e->site, "%s held with %s enabled at %s", un,
						     exc ? "softirqs" : "interrupts", where_of(a, &e->site, w, sizeof(w)));
					finding_target(f, &a->edges[via[c]].acq);
					finding_title(a, f, "%s-safe -> %s-unsafe lock order detected: %s -> %s",
						      exc_name[exc], exc_name[exc], sc->name, un);
					finding_explain(a, f,
							"%s is taken in %s (%s-safe) and is held while %s is acquired; "
							"%s is held elsewhere with %s enabled (%s-unsafe). CPU 0 holds "
							"%s with %s on; CPU 1 holds %s and waits for %s; the %s on "
							"CPU 0 then waits for %s: deadlock. Make %s %s-safe (disable %s "
							"around it everywhere) or stop taking it under %s. count also "
							"counts the other %s-unsafe classes ordered after this pair.",
							sc->name, l1, exc_word[exc], un, un, exc ? "softirqs" : "interrupts",
							exc_word[exc], un, exc ? "softirqs" : "interrupts", sc->name, un,
							exc ? "softirq" : "interrupt", sc->name, un, exc_word[exc],
							exc ? "softirqs" : "interrupts", sc->name, exc_word[exc]);
				}
			}
			for (size_t k = g->start[c]; k < g->start[c + 1]; k++) {
				uint32_t ed = g->order[k], d = a->edges[ed].to;
				if (via[d] != UINT32_MAX)
					continue;
				via[d] = ed;
				queue[tail++] = d;
			}
		}
		for (size_t q = 0; q < tail; q++)
			via[queue[q]] = UINT32_MAX;
		break; /* the write use (or else the read use) tells the story */
	}
	return a->error;
}

void irq_usage_checks(struct analysis *a)
{
	int view = a->if_seen || a->ctx_seen ? VIEW_CTX : VIEW_LEGACY;
	for (uint32_t c = 0; c < a->n_classes && !a->error; c++)
		inconsistent(a, c, view);
	if (!a->n_edges || a->error)
		return;
	struct graph g = {0};
	uint32_t *via = malloc((a->n_classes + 1) * sizeof(*via));
	uint32_t *queue = malloc((a->n_classes + 1) * sizeof(*queue));
	if (!via || !queue || graph_build(a, &g)) {
		fail(a, ANALYSIS_E_NOMEM);
	} else {
		for (size_t c = 0; c < a->n_classes; c++)
			via[c] = UINT32_MAX;
		for (int exc = 0; exc < 2 && !a->error; exc++)
			for (uint32_t c = 0; c < a->n_classes && !a->error; c++)
				propagate(a, &g, view, exc, c, via, queue);
	}
	free(g.start);
	free(g.order);
	free(via);
	free(queue);
}
