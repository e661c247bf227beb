/*
 * atomic.c - IRQL and atomic-context rules: Driver Verifier's IRQL and
 * spinlock rules, lockdep's "sleeping in atomic context", lock ownership.
 *
 * In our words (docs/checks.md gives the sources):
 *  - a probed lower call must not raise, a probed raise must not lower;
 *  - a DISPATCH spinlock (lockop irq=raise-dispatch: raises to DISPATCH_LEVEL
 *    and its release lowers to the value it is given; irq=at-dispatch: the
 *    caller is at DISPATCH_LEVEL already) is acquired at IRQL <= DISPATCH
 *    (raise) or >= DISPATCH (at-dispatch), held at DISPATCH or above,
 *    released at DISPATCH (raise) and its release restores the IRQL the
 *    acquire raised from. Traces without lockop (schema 1) count an acquire
 *    that the IRQL shows raising from below DISPATCH to DISPATCH as a raise
 *    spinlock, and the thread's first lower call, or CR8 write lowering to
 *    another level than DISPATCH, after its release as its restore;
 *  - nothing sleeps (a sleep point, a wait that may block, a sleeping lock)
 *    with a spinlock held, in interrupt context, with interrupts disabled,
 *    with preemption disabled, or at IRQL >= DISPATCH (the interrupt and
 *    preemption rules from the first context switch on: before it the
 *    kernel is booting, as Linux's sleeping-function check exempts early boot);
 *  - nothing is switched out holding a spinlock, except the dispatcher's own
 *    hand-off: a lock the outgoing thread took before the switch that the
 *    thread switched in releases before the next switch on that CPU;
 *  - only the owner releases an exclusive lock (the same hand-off excepted);
 *  - a thread resumes at the IRQL it was switched out at.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/internal.h"

static int is_dispatch_op(int irqop)
{
	return irqop == DB_LI_RAISE_DISPATCH || irqop == DB_LI_AT_DISPATCH;
}

/* ---------------------------------------------------------------- IRQL calls */

static void irql_call_rule(struct analysis *a, struct vcpu *v, const struct db_event *ev, const struct site *s)
{
	enum analysis_kind kind;
	if (ev->obj == IRQL_EV_LOWER && ev->b > ev->a)
		kind = ANALYSIS_IRQL_LOWER_RAISES;
	else if (ev->obj == IRQL_EV_RAISE && ev->b < ev->a)
		kind = ANALYSIS_IRQL_RAISE_LOWERS;
	else
		return;
	/* A probed call and the CR8 write inside it are two events for one call. */
	uint32_t fn = function_of(a, ev->pc);
	int same_call = v->irql_violation_id && v->irql_violation_id == v->last_irql_id &&
			v->irql_violation_fn == fn && v->irql_violation_a == ev->a && v->irql_violation_b == ev->b;
	v->irql_violation_id = s->id;
	v->irql_violation_fn = fn;
	v->irql_violation_a = ev->a;
	v->irql_violation_b = ev->b;
	if (same_call)
		return;
	int is_new;
	struct analysis_finding *f = finding_get(a, kind, hash_mix(fn, 0), &is_new);
	if (!f)
		return;
	f->count++;
	if (!is_new)
		return;
	const char *name = a->functions[fn].name;
	char *who = thread_label(a, s->thread, s->tid);
	char w[256];
	finding_target(f, s);
	finding_step(a, f, "irql", s, "%s changed IRQL %" PRId64 " -> %" PRId64 " on %s, called from %s", name, ev->a,
		     ev->b, who ? who : "", where_of(a, s, w, sizeof(w)));
	if (kind == ANALYSIS_IRQL_LOWER_RAISES) {
		finding_title(a, f, "lower call %s raised IRQL %" PRId64 " -> %" PRId64, name, ev->a, ev->b);
		finding_explain(a, f,
				"%s (declared a lower in the probe) was asked for an IRQL above the current one and "
				"raised it from %" PRId64 " to %" PRId64 ". A lower must never raise (NT bugchecks "
				"IRQL_NOT_LESS_OR_EQUAL; Driver Verifier flags it): the caller restores an IRQL it never "
				"saved, usually a stale or swapped old-IRQL value. Pass the value the raise returned.",
				name, ev->a, ev->b);
	} else {
		finding_title(a, f, "raise call %s lowered IRQL %" PRId64 " -> %" PRId64, name, ev->a, ev->b);
		finding_explain(a, f,
				"%s (declared a raise in the probe) was asked for an IRQL below the current one and "
				"lowered it from %" PRId64 " to %" PRId64 ". A raise must never lower (NT bugchecks "
				"IRQL_NOT_GREATER_OR_EQUAL; Driver Verifier flags it): code that relied on the raised "
				"level now runs interruptible. Lower with the lower call; raise only upwards.",
				name, ev->a, ev->b);
	}
	free(who);
}

static void simple_finding(struct analysis *a, enum analysis_kind kind, uint64_t key, const struct site *target,
			   const char *title, const char *why, const struct site *s1, const char *role1,
			   const char *text1, const struct site *s2, const char *role2, const char *text2)
{
	int is_new;
	struct analysis_finding *f = finding_get(a, kind, key, &is_new);
	if (!f)
		return;
	f->count++;
	if (!is_new)
		return;
	finding_target(f, target);
	if (s1)
		finding_step(a, f, role1, s1, "%s", text1);
	if (s2)
		finding_step(a, f, role2, s2, "%s", text2);
	finding_title(a, f, "%s", title);
	finding_explain(a, f, "%s", why);
}

/* The IRQL dropped below DISPATCH while t holds a DISPATCH spinlock. */
static void held_below(struct analysis *a, struct thread *t, const struct site *s, int now)
{
	int64_t ctx = context_of(t);
	for (size_t i = 0; i < t->n_held; i++) {
		struct held *h = &t->held[i];
		if (!h->dispatch || h->ctx != ctx)
			continue;
		h->dispatch = 0; /* its release at the wrong IRQL is this finding's consequence */
		const char *cn = class_name(a, h->cls);
		char w1[256], w2[256];
		char *title = xasprintf(a, "spinlock %s held at IRQL %d, below DISPATCH_LEVEL", cn, now);
		char *why = xasprintf(a,
				      "%s was acquired at %s, which raised to DISPATCH_LEVEL, and the IRQL then "
				      "dropped to %d at %s while the lock was still held. Below DISPATCH the holder "
				      "can be preempted; a thread then spinning on the lock on this CPU never lets "
				      "it run again (Driver Verifier: a spinlock must be held at DISPATCH_LEVEL). "
				      "Do not lower the IRQL while holding a spinlock; release it first.",
				      cn, where_of(a, &h->acq, w1, sizeof(w1)), now, where_of(a, s, w2, sizeof(w2)));
		char *t1 = xasprintf(a, "%s acquired at %s", cn, w1);
		char *t2 = xasprintf(a, "IRQL lowered to %d while %s is held", now, cn);
		if (title && why && t1 && t2)
			simple_finding(a, ANALYSIS_SPINLOCK_HELD_BELOW_DISPATCH, hash_mix(h->cls, s->pc), s, title, why,
				       &h->acq, "held", t1, s, "irql", t2);
		free(title);
		free(why);
		free(t1);
		free(t2);
		return;
	}
}

static void restore_rule(struct analysis *a, uint32_t cls, const struct site *acq, const struct site *rel,
			 int want, int got)
{
	const char *cn = class_name(a, cls);
	char w[256];
	char *title = xasprintf(a, "release of %s restores IRQL %d, the acquire raised from %d", cn, got, want);
	char *why = xasprintf(a,
			      "%s was acquired at IRQL %d (raising to DISPATCH_LEVEL) and its release at %s sets "
			      "the IRQL to %d instead of restoring %d. The caller passed the wrong old IRQL (a "
			      "swapped or stale variable, another lock's value): the code after it runs %s "
			      "(Driver Verifier: IRQL_NOT_LESS_OR_EQUAL / the spinlock release rules). Pass the "
			      "value the acquire returned.",
			      cn, want, where_of(a, rel, w, sizeof(w)), got, want,
			      got > want ? "at a raised IRQL it never asked for" : "below the IRQL it relies on");
	char *t1 = xasprintf(a, "%s acquired at IRQL %d", cn, want);
	char *t2 = xasprintf(a, "%s released, restoring IRQL %d", cn, got);
	if (title && why && t1 && t2)
		simple_finding(a, ANALYSIS_SPINLOCK_RESTORE, hash_mix(cls, rel->pc), rel, title, why, acq, "held", t1,
			       rel, "release", t2);
	free(title);
	free(why);
	free(t1);
	free(t2);
}

void atomic_irql(struct analysis *a, struct vcpu *v, struct thread *t, const struct db_event *ev,
		 const struct site *s)
{
	irql_call_rule(a, v, ev, s);
	v->last_irql_id = s->id;
	int old = v->irql;
	if (ev->b < 0 || ev->b > 15)
		return;
	int now = (int)ev->b;
	v->irql = now;
	if (old >= IRQL_DISPATCH && now < IRQL_DISPATCH)
		v->dispatch_drops++;
	/* Schema 1: the release's restore is its first lower below DISPATCH (a
	 * release may pass through DISPATCH first, to run deferred work). */
	if (t->restore_pending &&
	    (ev->obj == IRQL_EV_LOWER || (ev->obj == IRQL_EV_CR8 && now < old && now != IRQL_DISPATCH))) {
		t->restore_pending = 0;
		if (now != t->restore_want)
			restore_rule(a, t->restore_cls, &t->restore_site, s, t->restore_want, now);
	}
	if (now < IRQL_DISPATCH && t->n_held)
		held_below(a, t, s, now);
}

/* ---------------------------------------------------------------- spinlocks */

void atomic_attempt(struct analysis *a, struct thread *t, struct lock *l, const struct db_event *ev,
		    const struct site *s, int irql)
{
	(void)t;
	int op = DB_LOCKOP_IRQ(ev->lockop);
	enum analysis_kind kind;
	if (op == DB_LI_RAISE_DISPATCH && irql > IRQL_DISPATCH)
		kind = ANALYSIS_SPINLOCK_ABOVE_DISPATCH;
	else if (op == DB_LI_AT_DISPATCH && irql >= 0 && irql < IRQL_DISPATCH)
		kind = ANALYSIS_SPINLOCK_BELOW_DISPATCH;
	else
		return;
	int is_new;
	struct analysis_finding *f = finding_get(a, kind, hash_mix(l->cls, s->caller ? s->caller : s->pc), &is_new);
	if (!f)
		return;
	f->count++;
	if (!is_new)
		return;
	const char *cn = class_name(a, l->cls);
	char *who = thread_label(a, s->thread, s->tid);
	char w[256];
	where_of(a, s, w, sizeof(w));
	finding_target(f, s);
	finding_step(a, f, "try", s, "%s acquires %s at %s at IRQL %d", who ? who : "", cn, w, irql);
	if (kind == ANALYSIS_SPINLOCK_ABOVE_DISPATCH) {
		finding_title(a, f, "raising spinlock %s acquired at IRQL %d > DISPATCH_LEVEL", cn, irql);
		finding_explain(a, f,
				"%s is acquired at %s with an acquire that raises to DISPATCH_LEVEL, but the caller "
				"runs at IRQL %d (Driver Verifier: IRQL_NOT_LESS_OR_EQUAL). The acquire lowers the IRQL "
				"while its caller relies on the higher one, letting the interrupt it runs in nest. At "
				"that IRQL take the lock with the at-DISPATCH acquire, or use an interrupt spinlock.",
				cn, w, irql);
	} else {
		finding_title(a, f, "at-DISPATCH spinlock %s acquired at IRQL %d < DISPATCH_LEVEL", cn, irql);
		finding_explain(a, f,
				"%s is acquired at %s with the acquire for callers already at DISPATCH_LEVEL, but the "
				"caller runs at IRQL %d. The holder can be preempted by the scheduler while it holds "
				"the lock, and a thread then trying the lock on this CPU spins forever. Use the raising "
				"acquire, which goes to DISPATCH_LEVEL first.",
				cn, w, irql);
	}
	free(who);
}

void atomic_acquire(struct analysis *a, struct thread *t, struct held *h, const struct db_event *ev,
		    const struct site *s, int old_irql)
{
	(void)a;
	(void)t;
	h->old_irql = (int8_t)old_irql;
	if ((h->irqop == DB_LI_AT_DISPATCH && old_irql >= 0 && old_irql < IRQL_DISPATCH) ||
	    (h->irqop == DB_LI_RAISE_DISPATCH && old_irql > IRQL_DISPATCH))
		h->dispatch = 0; /* reported at the acquire already (below/above DISPATCH) */
	else if (is_dispatch_op(h->irqop))
		h->dispatch = 1;
	else if (!ev->lockop && old_irql >= 0 && old_irql < IRQL_DISPATCH && s->irql == IRQL_DISPATCH)
		h->dispatch = 1; /* schema 1: the acquire was seen raising to DISPATCH */
}

void atomic_release(struct analysis *a, struct thread *t, struct thread *owner, struct held *h,
		    const struct db_event *ev, const struct site *s)
{
	if (!h)
		return;
	if (h->irqop == DB_LI_BH && owner->bh_depth > 0)
		owner->bh_depth--;
	if (!h->dispatch)
		return;
	const char *cn = class_name(a, h->cls);
	int at = s->irql, op = DB_LOCKOP_IRQ(ev->lockop);
	int bad = h->irqop == DB_LI_AT_DISPATCH ? at >= 0 && at < IRQL_DISPATCH : at >= 0 && at != IRQL_DISPATCH;
	if (bad) {
		char w1[256], w2[256];
		char *title = xasprintf(a, "spinlock %s released at IRQL %d, not DISPATCH_LEVEL", cn, at);
		char *why = xasprintf(a,
				      "%s was acquired at %s (at DISPATCH_LEVEL) and is released at %s at IRQL %d. "
				      "Between the two the IRQL changed under the lock: %s (Driver Verifier's spinlock "
				      "rules: acquire and release at DISPATCH_LEVEL). Keep the IRQL at DISPATCH_LEVEL "
				      "for as long as the lock is held.",
				      cn, where_of(a, &h->acq, w1, sizeof(w1)), where_of(a, s, w2, sizeof(w2)), at,
				      at > IRQL_DISPATCH ? "something raised it and did not lower it back"
							 : "something lowered it while the lock was held");
		char *t1 = xasprintf(a, "%s acquired", cn);
		char *t2 = xasprintf(a, "%s released at IRQL %d", cn, at);
		if (title && why && t1 && t2)
			simple_finding(a, ANALYSIS_SPINLOCK_RELEASE_IRQL, hash_mix(h->cls, s->pc), s, title, why, &h->acq,
				       "held", t1, s, "release", t2);
		free(title);
		free(why);
		free(t1);
		free(t2);
	}
	if (t != owner)
		return; /* the hand-off: the releaser restores its own IRQL, not the acquirer's */
	if (op == DB_LI_RAISE_DISPATCH) {
		if (h->old_irql >= 0 && ev->b != h->old_irql)
			restore_rule(a, h->cls, &h->acq, s, h->old_irql, (int)ev->b);
	} else if (!ev->lockop && h->irqop == DB_LI_NONE && h->old_irql >= 0) {
		t->restore_pending = 1;
		t->restore_want = h->old_irql;
		t->restore_cls = h->cls;
		t->restore_site = h->acq;
	}
}

/* ---------------------------------------------------------------- sleeping */

void atomic_sleep(struct analysis *a, struct thread *t, const struct db_event *ev, const struct site *s,
		  int irql, const char *what)
{
	const struct held *spin = NULL;
	for (size_t i = 0; i < t->n_held && !spin; i++)
		if (!a->locks[t->held[i].lock].sleeping)
			spin = &t->held[i];
	/* -1: not declared. The top bit is a flag on x86 Linux (need-resched,
	 * inverted), not part of the count. */
	int preempt = ev->preempt != -1 ? ev->preempt & 0x7fffffff : 0;
	char reason[320], w[256], wh[256];
	uint64_t rkey;
	where_of(a, s, w, sizeof(w));
	if (spin) {
		snprintf(reason, sizeof(reason), "while holding spinlock %s (taken at %s)", class_name(a, spin->cls),
			 where_of(a, &spin->acq, wh, sizeof(wh)));
		rkey = 1 + ((uint64_t)spin->cls << 8);
	} else if (ev->preempt == -1 &&
		   (ev->ctx != DB_CTX_PROCESS || (!a->ctx_seen && !a->if_seen && in_interrupt(t)))) {
		/* Where the kernel declares its preemption count, that count (which
		 * includes its interrupt nesting) says whether it is atomic: the
		 * trap frame of an interrupt stays open on its way out, where
		 * rescheduling is legal. */
		snprintf(reason, sizeof(reason), "in %s context",
			 ev->ctx == DB_CTX_SOFTIRQ ? "softirq" : ev->ctx == DB_CTX_NMI ? "NMI" : "interrupt");
		rkey = 2;
	} else if (a->sched_seen && a->if_seen && !(ev->flags & DB_F_IF)) {
		snprintf(reason, sizeof(reason), "with interrupts disabled");
		rkey = 3;
	} else if (a->sched_seen && preempt > 0) {
		snprintf(reason, sizeof(reason), "with preemption disabled (preempt count %d)", preempt);
		rkey = 4;
	} else if (irql >= IRQL_DISPATCH) {
		if (ev->kind != DB_WAIT) {
			snprintf(reason, sizeof(reason), "at IRQL %d (>= DISPATCH_LEVEL)", irql);
			rkey = 5;
		} else {
			char *title = xasprintf(a, "wait at IRQL %d with a non-zero timeout", irql);
			char *why = xasprintf(a,
					      "A wait at %s runs at IRQL %d (>= DISPATCH_LEVEL) with timeout %" PRId64
					      ". At DISPATCH_LEVEL and above the scheduler cannot run, so a wait that may "
					      "block hangs the CPU (Driver Verifier: IRQL_NOT_LESS_OR_EQUAL). Only a "
					      "zero-timeout poll is allowed there; wait at PASSIVE/APC level.",
					      w, irql, ev->b);
			char *t1 = xasprintf(a, "waits on object 0x%" PRIx64 " at IRQL %d, timeout %" PRId64, ev->obj,
					     irql, ev->b);
			if (title && why && t1)
				simple_finding(a, ANALYSIS_WAIT_AT_DISPATCH, hash_mix(s->pc, ev->obj), s, title, why, s,
					       "wait", t1, NULL, NULL, NULL);
			free(title);
			free(why);
			free(t1);
			return;
		}
	} else {
		return;
	}
	char *who = thread_label(a, t->addr, t->tid);
	char *title = xasprintf(a, "sleeping in atomic context: %s %s %s", who ? who : "", what, reason);
	char *why = xasprintf(a,
			      "%s %s at %s %s. Sleeping there is a bug (lockdep: 'BUG: sleeping "
			      "function called from invalid context', 'scheduling while atomic'; NT: a wait at "
			      "DISPATCH_LEVEL): the CPU cannot schedule, or another thread spins on the held lock "
			      "until this one runs again. Release the lock / re-enable first, or use a non-sleeping "
			      "primitive here.",
			      who ? who : "", what, w, reason);
	char *t1 = xasprintf(a, "%s %s %s", who ? who : "", what, reason);
	if (title && why && t1)
		simple_finding(a, ANALYSIS_SLEEP_IN_ATOMIC, hash_mix(s->caller ? s->caller : s->pc, rkey), s, title, why,
			       spin ? &spin->acq : NULL, "held", "the spinlock was acquired here", s,
			       ev->kind == DB_WAIT ? "wait" : "acquire", t1);
	free(who);
	free(title);
	free(why);
	free(t1);
}

/* ---------------------------------------------------------------- ownership */

void release_rule(struct analysis *a, enum analysis_kind kind, struct thread *t, struct lock *l,
		  const struct site *s)
{
	int is_new;
	struct analysis_finding *f = finding_get(a, kind, hash_mix(l->cls, s->pc), &is_new);
	if (!f)
		return;
	f->count++;
	if (!is_new)
		return;
	const char *cn = class_name(a, l->cls);
	const char *what = l->sleeping ? "sleeping lock" : "spinlock";
	char *who = thread_label(a, t->addr, t->tid);
	char w[256];
	where_of(a, s, w, sizeof(w));
	finding_target(f, s);
	if (kind == ANALYSIS_RELEASE_NOT_OWNER) {
		char *owner = thread_label(a, a->threads[l->holder - 1].addr, a->threads[l->holder - 1].tid);
		finding_step(a, f, "held", &l->acq, "%s acquired %s %s", owner ? owner : "", what, cn);
		finding_step(a, f, "release", s, "%s releases %s %s at %s; it does not hold it", who ? who : "", what, cn,
			     w);
		finding_title(a, f, "%s %s released by %s, held by %s", what, cn, who ? who : "", owner ? owner : "");
		finding_explain(a, f,
				"%s released %s %s at %s while %s holds it (acquired at event %" PRId64 "), and no "
				"context switch handed it over. Only the owner may release a lock (NT bugchecks "
				"MUTEX_NOT_OWNED / SPIN_LOCK_NOT_OWNED under Driver Verifier; lockdep: 'bad unlock "
				"balance'): the owner still believes it is protected while others enter. Release on "
				"the path that acquired.",
				who ? who : "", what, cn, w, owner ? owner : "", l->acq.id);
		free(owner);
	} else {
		finding_step(a, f, "release", s, "%s releases %s %s at %s; nobody holds it", who ? who : "", what, cn, w);
		finding_title(a, f, "%s %s released while not held", what, cn);
		finding_explain(a, f,
				"%s released %s %s at %s, but the trace shows nobody holding it: it was acquired and "
				"released before, so this is a double release or a release on a path that never "
				"acquired (lockdep: 'bad unlock balance detected'). The next acquirer and the releaser "
				"can both be inside the critical section. Pair every release with one acquire.",
				who ? who : "", what, cn, w);
	}
	free(who);
}

/* ---------------------------------------------------------------- switches */

void atomic_switch(struct analysis *a, struct vcpu *v, struct thread *old, uint32_t new_index,
		   const struct site *s)
{
	/* The previous switch's hand-offs that the incoming thread did not take. */
	for (size_t k = 0; k < v->n_handoff; k++) {
		struct lock *l = &a->locks[v->handoff[k]];
		if (l->holder != v->handoff_owner[k] || l->acq.id != v->handoff_acq[k])
			continue;
		const char *cn = class_name(a, l->cls);
		char *owner = thread_label(a, a->threads[l->holder - 1].addr, a->threads[l->holder - 1].tid);
		char w[256];
		char *title = xasprintf(a, "%s switched out holding spinlock %s", owner ? owner : "", cn);
		char *why = xasprintf(a,
				      "%s acquired spinlock %s at %s and was switched out at event %" PRId64
				      " still holding it; the thread switched in did not release it either (that "
				      "would be the dispatcher's hand-off). Every thread on any CPU that wants %s now "
				      "spins until the holder is scheduled again, and on its own CPU it never is "
				      "('scheduling while atomic'; NT: a wait or switch at DISPATCH_LEVEL). Release "
				      "spinlocks before anything that can switch.",
				      owner ? owner : "", cn, where_of(a, &l->acq, w, sizeof(w)), v->handoff_switch.id, cn);
		char *t1 = xasprintf(a, "%s acquired %s", owner ? owner : "", cn);
		char *t2 = xasprintf(a, "switched out holding %s", cn);
		if (title && why && t1 && t2)
			simple_finding(a, ANALYSIS_SPINLOCK_ACROSS_SWITCH, hash_mix(l->cls, l->acq.pc), &v->handoff_switch,
				       title, why, &l->acq, "held", t1, &v->handoff_switch, "switch-out", t2);
		free(owner);
		free(title);
		free(why);
		free(t1);
		free(t2);
	}
	v->n_handoff = 0;
	v->handoff_switch = *s;
	if (old->addr >= NO_THREAD_BASE)
		return;
	uint32_t me = (uint32_t)(old - a->threads) + 1;
	for (size_t i = 0; i < old->n_held && v->n_handoff < MAX_HANDOFF; i++) {
		struct lock *l = &a->locks[old->held[i].lock];
		if (l->sleeping || l->holder != me)
			continue;
		l->handoff_to = new_index + 1;
		l->handoff_switch = s->id;
		v->handoff[v->n_handoff] = old->held[i].lock;
		v->handoff_owner[v->n_handoff] = me;
		v->handoff_acq[v->n_handoff] = l->acq.id;
		v->n_handoff++;
	}
}

void atomic_finish(struct analysis *a)
{
	/* A hand-off still pending at the end is judged like at a switch. */
	for (size_t i = 0; i < a->n_vcpus && !a->error; i++) {
		struct vcpu *v = &a->vcpus[i];
		for (size_t k = 0; k < v->n_handoff; k++) {
			const struct lock *l = &a->locks[v->handoff[k]];
			if (l->holder != v->handoff_owner[k] || l->acq.id != v->handoff_acq[k])
				continue;
			/* Unless the owner is running again: then the switch was
			 * its own and the end of the trace came first. */
			if (a->threads[l->holder - 1].running)
				v->handoff_owner[k] = 0;
		}
		struct thread dummy = {.addr = NO_THREAD_BASE};
		atomic_switch(a, v, &dummy, 0, &v->last);
	}
}

/* A thread switched in settles the IRQL it resumes at with its first event
 * of its own: not an interrupt taken meanwhile, not the switch restoring CR8
 * (a CR8 write in the function of the switch event) and, for a thread that
 * blocked in a wait, not the wait path restoring it (any bare CR8 write: the
 * thread's own code changes IRQL with the probed raise and lower calls). */
void settle_resume(struct analysis *a, struct thread *t, struct vcpu *v, const struct db_event *ev,
		   const struct site *s)
{
	if (ev->kind == DB_TRAP || t->n_frames > t->resume_frames)
		return;
	if (ev->kind == DB_IRQL && ev->obj == IRQL_EV_CR8 && (t->out_waited || function_of(a, ev->pc) == t->resume_fn))
		return;
	t->resuming = 0;
	int now = v->irql;
	if (t->out_irql == IRQL_UNKNOWN || now == IRQL_UNKNOWN || now == t->out_irql)
		return;
	int is_new;
	uint64_t key = hash_mix(hash_mix(t->out_site.pc, t->in_site.pc), (uint64_t)(t->out_irql * 16 + now));
	struct analysis_finding *f = finding_get(a, ANALYSIS_IRQL_LEAK_SWITCH, key, &is_new);
	if (!f)
		return;
	f->count++;
	if (!is_new)
		return;
	char *who = thread_label(a, t->addr, t->tid);
	finding_target(f, &t->in_site);
	struct site at = *s;
	at.irql = (int8_t)now;
	finding_step(a, f, "switch-out", &t->out_site, "%s switched out at IRQL %d%s", who ? who : "", t->out_irql,
		     t->out_waited ? " (the IRQL it called the wait at)" : "");
	finding_step(a, f, "switch-in", &t->in_site, "%s switched back in", who ? who : "");
	finding_step(a, f, "resume", &at, "%s runs again at IRQL %d", who ? who : "", now);
	finding_title(a, f, "%s resumed at IRQL %d after leaving at IRQL %d", who ? who : "", now, t->out_irql);
	finding_explain(a, f,
			"%s was switched out at IRQL %d and resumed at IRQL %d: the IRQL leaked across the context "
			"switch from whichever thread ran before. IRQL is per-thread state: the switch must save "
			"the outgoing thread's IRQL and restore the incoming one's (or all switches must happen at "
			"one IRQL). A thread resuming higher cannot be preempted or take page faults; lower, it "
			"loses the protection it raised for.",
			who ? who : "", t->out_irql, now);
	free(who);
}
