/*
 * walk.c - the one event walk: analysis_new/feed/free and the per-event
 * state machine every rule family reads.
 *
 * Each event updates its vCPU (IRQL = the last value seen, current thread,
 * its last events) and its thread (held locks, open trap frames, a pending
 * lock attempt or wait, the IRQL it was switched out at), then hands the
 * event to the rule families (lockgraph.c, irqusage.c, atomic.c,
 * interrupt.c, hang.c). Rules decided at the event report there; the rest
 * is decided when the trace ends (hang.c: analysis_finish).
 *
 * Interrupts run on the interrupted thread's stack, so trap frames belong to
 * threads and travel with them across context switches.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/internal.h"

int analysis_new(const struct analysis_names *names, struct analysis **out, char **err)
{
	if (!out) {
		if (err)
			*err = strdup("analysis_new: out is NULL");
		return ANALYSIS_E_ARG;
	}
	struct analysis *a = calloc(1, sizeof(*a));
	if (!a) {
		if (err)
			*err = strdup("out of memory");
		return ANALYSIS_E_NOMEM;
	}
	if (names)
		a->names = *names;
	*out = a;
	return 0;
}

void analysis_free(struct analysis *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n_threads; i++) {
		free(a->threads[i].held);
		free(a->threads[i].frames);
	}
	free(a->threads);
	u64map_free(&a->thread_map);
	free(a->locks);
	u64map_free(&a->lock_map);
	u64map_free(&a->sleep_map);
	for (size_t i = 0; i < a->n_classes; i++)
		free(a->classes[i].name);
	free(a->classes);
	u64map_free(&a->class_map);
	free(a->edges);
	u64map_free(&a->edge_map);
	for (size_t i = 0; i < a->n_functions; i++)
		free(a->functions[i].name);
	free(a->functions);
	u64map_free(&a->pc_map);
	u64map_free(&a->signal_map);
	free(a->nestings);
	u64map_free(&a->nesting_map);
	free(a->defers);
	u64map_free(&a->defer_map);
	free(a->vcpus);
	for (size_t i = 0; i < a->n_findings; i++)
		finding_free(&a->findings[i]);
	free(a->findings);
	free(a->lost);
	free(a->cap_steps);
	u64map_free(&a->finding_map);
	free(a);
}

/* ---------------------------------------------------------------- locks */

/* Whether a lock event is about a sleeping lock. */
static int ev_sleeping(const struct db_event *ev)
{
	return ev->kind == DB_MUTEX_ACQ || ev->kind == DB_MUTEX_REL || is_sleeping_flavor(DB_LOCKOP_FLAVOR(ev->lockop));
}

static void note_flavor(struct lock *l, const struct db_event *ev)
{
	if (DB_LOCKOP_FLAVOR(ev->lockop) == DB_LF_SEM)
		l->owned = 0;
}

static void on_lock_try(struct analysis *a, struct thread *t, const struct db_event *ev, const struct site *s,
			int irql)
{
	if (ev->flags & DB_F_TRY)
		return; /* a trylock's attempt: it never waits */
	struct lock *l = lock_get(a, ev->obj, ev_sleeping(ev), s);
	if (!l)
		return;
	note_flavor(l, ev);
	atomic_attempt(a, t, l, ev, s, irql);
	if (l->sleeping)
		atomic_sleep(a, t, ev, s, irql, "acquires a sleeping lock");
	graph_attempt(a, t, l, ev, s);
	usage_attempt(a, t, held_class(a, l, ev), ev, irql, s);
	t->has_try = 1;
	t->try_lock = (uint32_t)(l - a->locks);
	t->try_site = *s;
}

/* l stops being held by thread index h - 1 (an acquisition we did not see
 * released: the release is missing from the trace). */
static void drop_holder(struct analysis *a, struct lock *l)
{
	if (l->holder)
		held_remove(&a->threads[l->holder - 1], (uint32_t)(l - a->locks));
	l->holder = 0;
}

static void on_lock_acq(struct analysis *a, struct thread *t, const struct db_event *ev, const struct site *s,
			int irql, int prev_irql)
{
	struct lock *l = lock_get(a, ev->obj, ev_sleeping(ev), s);
	if (!l)
		return;
	note_flavor(l, ev);
	uint32_t li = (uint32_t)(l - a->locks);
	int tried = t->has_try && t->try_lock == li;
	int old_irql = tried ? t->try_site.irql : prev_irql;
	if (!tried && !(ev->flags & DB_F_TRY)) {
		/* No attempt event (a probe without one): the acquisition is the attempt. */
		atomic_attempt(a, t, l, ev, s, irql);
		if (l->sleeping)
			atomic_sleep(a, t, ev, s, irql, "acquires a sleeping lock");
		graph_attempt(a, t, l, ev, s);
	}
	if (tried)
		t->has_try = 0;
	int shared = DB_LOCKOP_FLAVOR(ev->lockop) == DB_LF_READ || DB_LOCKOP_FLAVOR(ev->lockop) == DB_LF_RWSEM_READ;
	if (!shared && l->holder)
		drop_holder(a, l);
	struct held *h = graph_hold(a, t, l, ev, s);
	if (!h)
		return;
	atomic_acquire(a, t, h, ev, s, old_irql);
	usage_acquire(a, t, h, ev, irql);
}

/* The thread holding l shared, other than t, or NULL. */
static struct thread *shared_holder(struct analysis *a, uint32_t li)
{
	for (size_t i = 0; i < a->n_threads; i++)
		for (size_t k = 0; k < a->threads[i].n_held; k++)
			if (a->threads[i].held[k].lock == li && a->threads[i].held[k].shared)
				return &a->threads[i];
	return NULL;
}

static void on_lock_rel(struct analysis *a, struct vcpu *v, struct thread *t, const struct db_event *ev,
			const struct site *s)
{
	struct lock *l = lock_get(a, ev->obj, ev_sleeping(ev), s);
	if (!l)
		return;
	uint32_t li = (uint32_t)(l - a->locks);
	uint32_t me = (uint32_t)(t - a->threads) + 1;
	struct held *h = held_find(t, li);
	struct thread *from = t;
	if (h && h->shared) {
		if (l->readers)
			l->readers--;
	} else if (l->holder == me) {
		l->holder = 0;
		l->depth = 0;
	} else if (l->holder) {
		from = &a->threads[l->holder - 1];
		h = held_find(from, li);
		/* The dispatcher's hand-off: taken by the thread switched out by
		 * this CPU's last switch, released by the thread it switched in. */
		int handoff = l->handoff_to == me && l->handoff_switch == v->handoff_switch.id;
		if (l->owned && !handoff)
			release_rule(a, ANALYSIS_RELEASE_NOT_OWNER, t, l, s);
		l->holder = 0;
		l->depth = 0;
	} else if (l->readers && (from = shared_holder(a, li)) != NULL) {
		h = held_find(from, li);
		l->readers--;
	} else {
		/* Sleeping locks have acquire variants a probe easily misses
		 * (killable, interruptible, trylock): only spinlocks are judged. */
		if (l->acquired_once && !l->sleeping)
			release_rule(a, ANALYSIS_RELEASE_NOT_HELD, t, l, s);
		return;
	}
	atomic_release(a, t, from, h, ev, s);
	held_remove(from, li);
}

/* The owner of a mutex granted by this event: b when the tracer filled it in
 * (the grant inside a wait names its thread), else the current thread unless
 * it does not wait for the mutex and another thread does (ownership granted
 * at release time to the oldest waiter). */
static struct thread *mutex_owner(struct analysis *a, struct thread *t, const struct db_event *ev)
{
	if (ev->b) {
		uint32_t oi = thread_index(a, (uint64_t)ev->b);
		return oi == UINT32_MAX ? NULL : &a->threads[oi];
	}
	if (t->has_wait && t->wait_obj == ev->obj)
		return t;
	struct thread *best = NULL;
	for (size_t i = 0; i < a->n_threads; i++) {
		struct thread *w = &a->threads[i];
		if (w->has_wait && w->wait_obj == ev->obj && (!best || w->wait_site.id < best->wait_site.id))
			best = w;
	}
	return best ? best : t;
}

static void on_mutex_acq(struct analysis *a, struct thread *t, const struct db_event *ev, const struct site *s,
			 int irql)
{
	struct thread *o = mutex_owner(a, t, ev);
	struct lock *l = lock_get(a, ev->obj, 1, s);
	if (!l || !o)
		return;
	uint32_t oi = (uint32_t)(o - a->threads) + 1;
	int waited = o->has_wait && o->wait_obj == ev->obj;
	if (waited)
		o->has_wait = 0;
	if (l->holder == oi) {
		l->depth++;
		return;
	}
	struct site os = waited ? o->wait_site : *s;
	os.thread = o->addr;
	os.lock = ev->obj;
	/* Lockdep's rule from the first use on: whatever the owner holds is
	 * ordered before this mutex, whether it waited for it or not. */
	add_edges(a, o, l, held_class(a, l, ev), 0, &os);
	if (!ev->b && !waited && o == t && is_sleeping_flavor(DB_LOCKOP_FLAVOR(ev->lockop)))
		atomic_sleep(a, t, ev, s, irql, "acquires a sleeping lock");
	drop_holder(a, l);
	struct db_event gev = *ev;
	gev.flags &= (uint8_t)~DB_F_TRY;
	if (!is_sleeping_flavor(DB_LOCKOP_FLAVOR(gev.lockop)))
		gev.lockop = DB_LOCKOP(DB_LF_MUTEX, DB_LOCKOP_IRQ(gev.lockop), DB_LOCKOP_SUBCLASS(gev.lockop));
	struct site gs = *s; /* held from the grant on; the dependency starts at the wait */
	gs.thread = o->addr;
	graph_hold(a, o, l, &gev, &gs);
}

static void on_mutex_rel(struct analysis *a, struct thread *t, const struct db_event *ev, const struct site *s)
{
	struct lock *l = lock_get(a, ev->obj, 1, s);
	if (!l)
		return;
	uint32_t li = (uint32_t)(l - a->locks);
	uint32_t me = (uint32_t)(t - a->threads) + 1;
	if (l->holder == 0) {
		if (l->acquired_once) /* granted in one place (the wait): reliable */
			release_rule(a, ANALYSIS_RELEASE_NOT_HELD, t, l, s);
		return;
	}
	if (l->holder != me) {
		if (l->owned)
			release_rule(a, ANALYSIS_RELEASE_NOT_OWNER, t, l, s);
		drop_holder(a, l);
		l->depth = 0;
		return;
	}
	if (--l->depth > 0)
		return;
	held_remove(t, li);
	l->holder = 0;
}

/* ---------------------------------------------------------------- waits, switches */

static void on_wait(struct analysis *a, struct thread *t, const struct db_event *ev, const struct site *s,
		    int irql)
{
	t->has_wait = 1;
	t->wait_obj = ev->obj;
	t->wait_site = *s;
	t->wait_irql = ev->a >= 0 && ev->a <= 15 ? (int)ev->a : s->irql;
	t->wait_frames = t->n_frames;
	uint32_t li;
	if (lock_find(a, ev->obj, 1, &li) &&
	    a->locks[li].holder != (uint32_t)(t - a->threads) + 1)
		add_edges(a, t, &a->locks[li], a->locks[li].cls, 0, s);
	if (ev->b != 0)
		atomic_sleep(a, t, ev, s, irql, "waits");
}

static void on_switch(struct analysis *a, struct vcpu *v, const struct db_event *ev, const struct site *s)
{
	a->sched_seen = 1;
	uint64_t old_addr = thread_key(ev->a ? (uint64_t)ev->a : ev->thread, ev->vcpu);
	uint64_t new_addr = thread_key((uint64_t)ev->b, ev->vcpu);
	uint32_t oi = thread_index(a, old_addr);
	if (oi == UINT32_MAX)
		return;
	interrupt_switch(a, v, &a->threads[oi], old_addr, new_addr, s);
	uint32_t ni = thread_index(a, new_addr);
	if (ni == UINT32_MAX)
		return;
	struct thread *old = &a->threads[oi];
	atomic_switch(a, v, old, ni, s);
	/* Blocked in its wait only if the switch happens at the wait's level. */
	old->out_waited = old->has_wait && old->n_frames == old->wait_frames;
	old->out_irql = old->out_waited ? old->wait_irql : v->irql;
	old->out_site = *s;
	old->running = 0;
	old->resuming = 0;

	struct thread *nt = &a->threads[ni];
	nt->running = 1;
	nt->seen = 1;
	nt->has_wait = 0; /* running again: whatever it waited for returned */
	nt->resume_frames = nt->n_frames;
	nt->in_site = *s;
	nt->in_site.thread = new_addr;
	nt->resuming = nt->out_irql != IRQL_UNKNOWN;
	nt->resume_fn = function_of(a, ev->pc);
	v->thread = ni + 1;
	v->thread_addr = new_addr;
}

/* Whether ev, run by t at the level it waited at, shows t's wait returned.
 * Tracers need not emit wait_end: a thread that releases, signals, takes a
 * lock, prints, changes IRQL with a probed call or waits again is no longer
 * blocked. A mutex grant of the object is not: ownership is granted inside
 * the wait (possibly to another thread). */
static int ends_wait(const struct db_event *ev, const struct thread *t)
{
	switch (ev->kind) {
	case DB_IRQL:
		return ev->obj == IRQL_EV_RAISE || ev->obj == IRQL_EV_LOWER;
	case DB_WAIT_END:
		return ev->obj == t->wait_obj;
	case DB_LOCK_TRY:
	case DB_LOCK_ACQ:
	case DB_LOCK_REL:
	case DB_LOCK_FAIL:
	case DB_MUTEX_REL:
	case DB_SIGNAL:
	case DB_MARKER:
	case DB_BUGCHECK:
	case DB_SLEEP:
		return 1;
	case DB_MUTEX_ACQ:
		return ev->obj != t->wait_obj;
	default:
		return 0;
	}
}

static void ring_push(struct vcpu *v, const struct site *s, int kind)
{
	v->ring[v->ring_n % LAST_EVENTS] = *s;
	v->ring_kind[v->ring_n % LAST_EVENTS] = (uint8_t)kind;
	v->ring_n++;
}

int analysis_feed(struct analysis *a, const struct db_event *ev)
{
	return analysis_feed_text(a, ev, NULL);
}

int analysis_feed_text(struct analysis *a, const struct db_event *ev, const char *text)
{
	if (!a || !ev || a->finished)
		return ANALYSIS_E_ARG;
	if (a->error)
		return a->error;
	int64_t id = ev->id ? ev->id : a->last_id + 1;
	if (id <= a->last_id)
		return ANALYSIS_E_ARG;
	a->last_id = id;
	a->events++;
	if (ev->flags & DB_F_IF)
		a->if_seen = 1;
	if (ev->ctx != DB_CTX_PROCESS)
		a->ctx_seen = 1;
	if (DB_LOCKOP_SUBCLASS(ev->lockop))
		a->subclass_seen = 1;
	if (ev->kind == DB_MARKER && ev->a == DB_MARK_LOST) {
		if (grow((void **)&a->lost, &a->cap_lost, a->n_lost + 1, sizeof(*a->lost))) {
			fail(a, ANALYSIS_E_NOMEM);
			return a->error;
		}
		a->lost[a->n_lost++] = (struct analysis_lost){
			.events = ev->obj, .from_icount = (uint64_t)ev->b, .to_icount = ev->icount, .event_id = id};
	}

	struct vcpu *v = vcpu_get(a, ev->vcpu);
	if (!v)
		return a->error;
	uint64_t key = thread_key(ev->thread, ev->vcpu);
	uint32_t ti;
	if (v->thread && v->thread_addr == key)
		ti = v->thread - 1;
	else if ((ti = thread_index(a, key)) == UINT32_MAX)
		return a->error;
	struct thread *t = &a->threads[ti];
	if (ev->tid >= 0 && ev->kind != DB_SWITCH)
		t->tid = ev->tid;
	if (ev->kind != DB_SWITCH) {
		v->thread = ti + 1;
		v->thread_addr = key;
		t->running = 1;
	}

	/* Lock and wait events carry the IRQL (CR8) the tracer read: trust it
	 * once the kernel has shown that it keeps an IRQL there (it wrote CR8,
	 * or some event ran above 0, or the probe declares lock operations in
	 * IRQL terms: raise-dispatch, at-dispatch). A kernel that never touches CR8 (Linux,
	 * most hobby kernels) runs "at 0" only nominally: its IRQL stays
	 * unknown, and the rules read interrupt state from IF and ctx. */
	int prev_irql = v->irql;
	if (ev->kind == DB_IRQL || DB_LOCKOP_IRQ(ev->lockop) == DB_LI_RAISE_DISPATCH ||
	    DB_LOCKOP_IRQ(ev->lockop) == DB_LI_AT_DISPATCH)
		a->irql_seen = 1;
	if ((ev->kind == DB_LOCK_TRY || ev->kind == DB_LOCK_ACQ || ev->kind == DB_LOCK_REL ||
	     ev->kind == DB_MUTEX_ACQ || ev->kind == DB_WAIT) &&
	    ev->a >= 0 && ev->a <= 15) {
		if (ev->a > 0)
			a->irql_seen = 1;
		if (a->irql_seen)
			v->irql = (int)ev->a;
	}

	struct site s = {
		.id = id,
		.icount = ev->icount,
		.pc = ev->pc,
		.caller = ev->caller,
		.thread = key,
		.lock = 0,
		.tid = t->tid,
		.vcpu = ev->vcpu,
		.irql = (int8_t)v->irql,
		.vector = (int16_t)innermost_vector(t),
		.ctx = ev->ctx,
		.flags = ev->flags,
	};
	if (t->resuming && ev->kind != DB_SWITCH)
		settle_resume(a, t, v, ev, &s);
	if (t->has_wait && t->n_frames <= t->wait_frames && ends_wait(ev, t))
		t->has_wait = 0;
	if (t->restore_pending && ev->kind != DB_IRQL && ev->kind != DB_TRAP && ev->kind != DB_IRET &&
	    ev->kind != DB_SWITCH && ev->kind != DB_EOI)
		t->restore_pending = 0;

	int irql = effective_irql(t, v->irql);
	usage_event(a, t, ev, &s, irql);
	switch (ev->kind) {
	case DB_TRAP:
		on_trap(a, v, t, ev, &s);
		break;
	case DB_IRET:
		on_iret(a, v, t, ev, &s);
		break;
	case DB_IRQL:
		interrupt_irql(a, t, ev, &s);
		atomic_irql(a, v, t, ev, &s);
		break;
	case DB_LOCK_TRY:
		s.lock = ev->obj;
		on_lock_try(a, t, ev, &s, irql);
		break;
	case DB_LOCK_ACQ:
		s.lock = ev->obj;
		on_lock_acq(a, t, ev, &s, irql, prev_irql);
		break;
	case DB_LOCK_FAIL:
		if (t->has_try && a->locks[t->try_lock].addr == ev->obj)
			t->has_try = 0;
		break;
	case DB_LOCK_REL:
		s.lock = ev->obj;
		on_lock_rel(a, v, t, ev, &s);
		break;
	case DB_LOCK_INIT:
		s.lock = ev->obj;
		lock_init_event(a, ev, &s);
		break;
	case DB_WAIT:
		s.lock = ev->obj;
		on_wait(a, t, ev, &s, irql);
		break;
	case DB_SLEEP:
		atomic_sleep(a, t, ev, &s, irql, "sleeps");
		break;
	case DB_MUTEX_ACQ:
		s.lock = ev->obj;
		on_mutex_acq(a, t, ev, &s, irql);
		break;
	case DB_MUTEX_REL:
		s.lock = ev->obj;
		on_mutex_rel(a, t, ev, &s);
		break;
	case DB_SIGNAL:
		if (ev->obj)
			fail(a, u64map_put(&a->signal_map, ev->obj, ti + 1));
		break;
	case DB_SWITCH:
		on_switch(a, v, ev, &s);
		break;
	case DB_EOI:
		on_eoi(a, t, &s);
		break;
	case DB_DEFER_QUEUE:
	case DB_DEFER_RUN:
		on_defer(a, v, ev, &s);
		break;
	case DB_BUGCHECK:
		on_crash(a, v, ev, &s, text);
		break;
	default:
		break;
	}
	/* The switch event is the old thread's last; t may have moved. */
	t = &a->threads[ti];
	t->last = s;
	t->seen = 1;
	v->last = s;
	v->seen = 1;
	ring_push(v, &s, ev->kind);
	return a->error;
}
