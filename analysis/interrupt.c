/*
 * interrupt.c - the interrupt protocol: trap frames, EOI, nesting, what an
 * interrupt returns to, context switches inside interrupts, deferred work.
 *
 * In our words (docs/checks.md gives the sources):
 *  - every delivery of an interrupt that is EOI'd on some path is EOI'd on
 *    all paths (missing-eoi); until then the APIC blocks it and all below;
 *  - a handler does not lower the IRQL below its vector's level before its
 *    EOI (irql-lowered-before-eoi);
 *  - nothing switches threads inside an interrupt before its EOI
 *    (switch-before-eoi: the vector stays in service while another thread
 *    runs) or after its EOI while still above DISPATCH_LEVEL
 *    (eoi-before-switch: the vector can nest on the unfinished handler);
 *  - a vector is not delivered again while its own handler is open at a
 *    device level (nested-vector);
 *  - an interrupt or exception returns at the IRQL and interrupt flag it
 *    interrupted (iret-state-mismatch);
 *  - deferred work that is queued runs: an item still queued at the end
 *    after its CPU dropped below DISPATCH_LEVEL (where an IRQL kernel drains
 *    its DPCs first) was lost (lost-deferred-work). Kernels without IRQL
 *    (Linux: timers and softirqs run later by design) are not judged.
 * Software traps (int N, syscall: DB_F_SOFT) are frames, not interrupts.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/internal.h"

static int hardware(const struct frame *fr)
{
	return fr->vector >= FIRST_INTERRUPT_VECTOR && fr->vector != SPURIOUS_VECTOR && !fr->soft;
}

static void nested_rule(struct analysis *a, struct thread *t, int vector, const struct site *outer,
			const struct site *outer_eoi, const struct site *s, int irql)
{
	int is_new;
	struct analysis_finding *f = finding_get(a, ANALYSIS_NESTED_VECTOR, hash_mix((uint64_t)vector, outer->pc), &is_new);
	if (!f)
		return;
	f->count++;
	if (!is_new)
		return;
	char *who = thread_label(a, t->addr, t->tid), *owner = thread_label(a, outer->thread, outer->tid);
	int same = outer->thread == t->addr;
	finding_target(f, s);
	finding_step(a, f, "trap", outer, "vector 0x%x entered on %s", vector, owner ? owner : "");
	if (outer_eoi && outer_eoi->id)
		finding_step(a, f, "eoi", outer_eoi, "EOI sent for vector 0x%x", vector);
	finding_step(a, f, "trap", s, "vector 0x%x delivered again on %s at IRQL %d before the first returned", vector,
		     who ? who : "", irql);
	finding_title(a, f, "interrupt 0x%x delivered again while its handler on %s had not returned", vector,
		      owner ? owner : "");
	if (same)
		finding_explain(a, f,
				"Vector 0x%x was delivered while its own handler was still running on the same stack "
				"(trap event %" PRId64 " not yet returned), at IRQL %d. The handler sent its EOI and "
				"lowered the IRQL below the vector's class %d but above DISPATCH_LEVEL, so it is still "
				"doing interrupt work when the next interrupt arrives: handlers are rarely reentrant. "
				"Keep the IRQL at the vector's level until the iretq (dropping to DISPATCH_LEVEL for "
				"DPCs on the way out is fine).",
				vector, outer->id, irql, vector >> 4);
	else
		finding_explain(a, f,
				"Vector 0x%x was delivered on %s while the handler of an earlier delivery (trap event "
				"%" PRId64 ") is still open on %s, which was switched out inside it after its EOI at "
				"raised IRQL (see eoi-before-switch). The first handler has not finished, its state "
				"is shared with the second, and the CPU now runs the same handler twice. Finish the "
				"handler (or drop to DISPATCH_LEVEL) before switching.",
				vector, who ? who : "", outer->id, owner ? owner : "");
	free(who);
	free(owner);
}

void on_trap(struct analysis *a, struct vcpu *v, struct thread *t, const struct db_event *ev, struct site *s)
{
	int vec = (int)(ev->a & 0xff);
	int soft = (ev->flags & DB_F_SOFT) != 0;
	s->vector = (int16_t)vec;
	if (vec < FIRST_INTERRUPT_VECTOR && !soft)
		v->last_exception = *s;
	if (vec >= FIRST_INTERRUPT_VECTOR && vec != SPURIOUS_VECTOR && !soft) {
		/* On this thread's stack: a bug only if the open handler dropped to
		 * a device level; at DISPATCH_LEVEL or below it is running DPCs or
		 * dispatching on its way out. */
		int irql = v->irql;
		for (size_t i = t->n_frames; i-- > 0;) {
			const struct frame *fr = &t->frames[i];
			if (fr->vector == vec) {
				if (irql > IRQL_DISPATCH)
					nested_rule(a, t, vec, &fr->trap, &fr->eoi_site, s, irql);
				break;
			}
		}
		/* Left open at raised IRQL by a thread switched out inside it. */
		for (size_t i = 0; i < v->n_stale; i++) {
			if (v->stale[i].vector == vec && v->stale[i].trap.thread != t->addr) {
				nested_rule(a, t, vec, &v->stale[i].trap, &v->stale[i].eoi, s, irql);
				break;
			}
		}
		a->vectors[vec].last_trap = *s;
	}
	if (grow((void **)&t->frames, &t->cap_frames, t->n_frames + 1, sizeof(*t->frames))) {
		fail(a, ANALYSIS_E_NOMEM);
		return;
	}
	struct frame *fr = &t->frames[t->n_frames++];
	memset(fr, 0, sizeof(*fr));
	fr->vector = vec;
	fr->soft = soft;
	fr->irql = v->irql;
	fr->if_on = (ev->flags & DB_F_IF) != 0;
	s->vector = (int16_t)vec;
	fr->trap = *s;
	fr->saved_try = t->has_try;
	fr->saved_try_lock = t->try_lock;
	fr->saved_try_site = t->try_site;
	t->has_try = 0;
}

static void iret_state_rule(struct analysis *a, struct vcpu *v, struct thread *t, const struct frame *fr,
			    const struct db_event *ev, const struct site *s)
{
	int irql_bad = fr->irql != IRQL_UNKNOWN && v->irql != IRQL_UNKNOWN && fr->irql != v->irql;
	int if_now = (ev->flags & DB_F_IF) != 0;
	int if_bad = a->if_seen && fr->if_on != if_now && !(ev->flags & DB_F_NOFRAME);
	if (!irql_bad && !if_bad)
		return;
	int is_new;
	struct analysis_finding *f = finding_get(a, ANALYSIS_IRET_STATE,
						 hash_mix(hash_mix((uint64_t)fr->vector, s->pc), (uint64_t)irql_bad), &is_new);
	if (!f)
		return;
	f->count++;
	if (!is_new)
		return;
	char *who = thread_label(a, t->addr, t->tid);
	char what[96];
	if (irql_bad)
		snprintf(what, sizeof(what), "at IRQL %d; it interrupted IRQL %d", v->irql, fr->irql);
	else
		snprintf(what, sizeof(what), "with interrupts %s; it interrupted code with them %s",
			 if_now ? "enabled" : "disabled", fr->if_on ? "enabled" : "disabled");
	finding_target(f, s);
	finding_step(a, f, "trap", &fr->trap, "vector 0x%x entered on %s at IRQL %d", fr->vector, who ? who : "",
		     fr->irql);
	finding_step(a, f, "iret", s, "vector 0x%x returns %s", fr->vector, what);
	finding_title(a, f, "%s 0x%x returned %s", fr->vector < FIRST_INTERRUPT_VECTOR ? "exception" : "interrupt",
		      fr->vector, what);
	finding_explain(a, f,
			"The handler of vector 0x%x (entered at event %" PRId64 ") returned %s. An interrupt must be "
			"invisible to the code it interrupted: that code now runs %s than it set up, so it either "
			"loses its protection (interrupts/IRQL lower) or can no longer be preempted and blocks "
			"interrupts (higher). Restore the interrupted IRQL (and leave the saved flags alone) on "
			"every path out of the handler.",
			fr->vector, fr->trap.id, what,
			irql_bad ? (v->irql > fr->irql ? "at a higher IRQL" : "at a lower IRQL")
				 : (if_now ? "with interrupts on" : "with interrupts off"));
	free(who);
}

void on_iret(struct analysis *a, struct vcpu *v, struct thread *t, const struct db_event *ev,
	     const struct site *s)
{
	if (!t->n_frames || (ev->flags & DB_F_NOFRAME))
		return; /* a frame built by hand (a new thread's first iretq, an iret to self) */
	struct frame *fr = &t->frames[--t->n_frames];
	if (fr->trap.vcpu < a->n_vcpus) {
		struct vcpu *fv = &a->vcpus[fr->trap.vcpu];
		for (size_t i = 0; i < fv->n_stale; i++) {
			if (fv->stale[i].trap.id == fr->trap.id) {
				fv->stale[i] = fv->stale[--fv->n_stale];
				break;
			}
		}
	}
	iret_state_rule(a, v, t, fr, ev, s);
	t->has_try = fr->saved_try;
	t->try_lock = fr->saved_try_lock;
	t->try_site = fr->saved_try_site;
	if (!hardware(fr))
		return;
	struct vector_stats *vs = &a->vectors[fr->vector];
	if (fr->eoi) {
		vs->with_eoi++;
		return;
	}
	if (!vs->without_eoi) {
		vs->first_noeoi_trap = fr->trap;
		vs->first_noeoi_iret = *s;
	}
	vs->without_eoi++;
	vs->last_noeoi_trap = fr->trap;
	vs->last_noeoi_iret = *s;
}

static void lowered_before_eoi(struct analysis *a, const struct frame *fr)
{
	const struct site *s = &fr->lowered_site;
	int is_new;
	struct analysis_finding *f = finding_get(a, ANALYSIS_IRQL_LOWERED_BEFORE_EOI,
						 hash_mix((uint64_t)fr->vector, s->pc), &is_new);
	if (!f)
		return;
	f->count++;
	if (!is_new)
		return;
	char w[256];
	where_of(a, s, w, sizeof(w));
	finding_target(f, s);
	finding_step(a, f, "trap", &fr->trap, "vector 0x%x entered", fr->vector);
	finding_step(a, f, "irql", s, "IRQL lowered %d -> %d at %s before the EOI", fr->lowered_from, fr->lowered_to, w);
	finding_step(a, f, "eoi", &fr->eoi_site, "EOI sent for vector 0x%x only now", fr->vector);
	finding_title(a, f, "interrupt 0x%x lowered IRQL to %d before its EOI", fr->vector, fr->lowered_to);
	finding_explain(a, f,
			"The handler of vector 0x%x lowered the IRQL from %d to %d at %s while the interrupt was "
			"still in service (its EOI came later). The code then believes it runs at IRQL %d while the "
			"APIC still blocks every vector up to class %d: work it starts at the lower level (a DPC, a "
			"switch) runs with the device's interrupts masked, and the handler's own invariant (its level "
			"until EOI) is broken. Send the EOI first, then lower.",
			fr->vector, fr->lowered_from, fr->lowered_to, w, fr->lowered_to, fr->vector >> 4);
}

void on_eoi(struct analysis *a, struct thread *t, const struct site *s)
{
	a->eoi_events++;
	for (size_t i = t->n_frames; i-- > 0;) {
		struct frame *fr = &t->frames[i];
		if (hardware(fr)) {
			if (!fr->eoi) {
				fr->eoi = 1;
				fr->eoi_site = *s;
				if (fr->lowered)
					lowered_before_eoi(a, fr);
			}
			return;
		}
	}
}

/* An IRQL event inside an interrupt handler, before its EOI: a lowering
 * below the vector's level is judged when the EOI comes (without one, the
 * handler's bug is the missing EOI). */
void interrupt_irql(struct analysis *a, struct thread *t, const struct db_event *ev, const struct site *s)
{
	(void)a;
	if (!t->n_frames || ev->b < 0 || ev->b >= ev->a)
		return;
	struct frame *fr = &t->frames[t->n_frames - 1];
	if (!hardware(fr) || fr->vector < FIRST_DEVICE_VECTOR || fr->eoi || fr->lowered ||
	    ev->b >= (fr->vector >> 4) || ev->a < (fr->vector >> 4))
		return;
	fr->lowered = 1;
	fr->lowered_from = (int)ev->a;
	fr->lowered_to = (int)ev->b;
	fr->lowered_site = *s;
}

void interrupt_switch(struct analysis *a, struct vcpu *v, struct thread *old, uint64_t old_addr,
		      uint64_t new_addr, const struct site *s)
{
	/* switch-before-eoi: the outgoing thread has a device interrupt open
	 * that was not acknowledged. */
	for (size_t i = old->n_frames; i-- > 0;) {
		struct frame *fr = &old->frames[i];
		if (!hardware(fr) || fr->vector < FIRST_DEVICE_VECTOR || fr->eoi || !a->eoi_events)
			continue;
		int is_new;
		struct analysis_finding *f = finding_get(a, ANALYSIS_SWITCH_BEFORE_EOI,
							 hash_mix(hash_mix(fr->trap.pc, s->pc), (uint64_t)fr->vector), &is_new);
		if (!f)
			break;
		f->count++;
		if (!is_new)
			break;
		char *from = thread_label(a, old_addr, -1), *to = thread_label(a, new_addr, -1);
		finding_target(f, s);
		finding_step(a, f, "trap", &fr->trap, "interrupt vector 0x%x entered on %s", fr->vector, from ? from : "");
		finding_step(a, f, "switch", s, "switch %s -> %s before the EOI of vector 0x%x", from ? from : "",
			     to ? to : "", fr->vector);
		finding_title(a, f, "context switch inside interrupt 0x%x before its EOI", fr->vector);
		finding_explain(a, f,
				"The handler of vector 0x%x switched from %s to %s before sending its EOI. The vector "
				"stays in service in the APIC while %s runs: no interrupt of its priority class or "
				"below (the clock, the scheduler's tick) reaches this CPU until %s is scheduled again "
				"and finishes the handler, which may be never. EOI before anything that can switch, "
				"or defer the switch to the way out of the interrupt.",
				fr->vector, from ? from : "", to ? to : "", to ? to : "", from ? from : "");
		free(from);
		free(to);
		break;
	}
	/* eoi-before-switch: an interrupt frame of the outgoing thread already
	 * sent its EOI and the CPU is still above DISPATCH_LEVEL. */
	for (size_t i = old->n_frames; i-- > 0;) {
		struct frame *fr = &old->frames[i];
		if (fr->vector < FIRST_INTERRUPT_VECTOR || !fr->eoi)
			continue;
		/* An unknown IRQL (no CR8: Linux) is no evidence: preempting on
		 * the way out of an acknowledged interrupt is how Linux works. */
		int irql = v->irql;
		if (irql <= IRQL_DISPATCH)
			break;
		a->have_ebs = 1;
		a->ebs_eoi = fr->eoi_site;
		a->ebs_switch = *s;
		if (v->n_stale < MAX_STALE_FRAMES) {
			struct stale_frame *sf = &v->stale[v->n_stale++];
			sf->vector = fr->vector;
			sf->trap = fr->trap;
			sf->eoi = fr->eoi_site;
		}
		int is_new;
		uint64_t key = hash_mix(hash_mix(fr->trap.pc, fr->eoi_site.pc), s->pc);
		key = hash_mix(key, (uint64_t)fr->vector);
		struct analysis_finding *f = finding_get(a, ANALYSIS_EOI_BEFORE_SWITCH, key, &is_new);
		if (!f)
			break;
		f->count++;
		if (!is_new)
			break;
		char *from = thread_label(a, old_addr, -1), *to = thread_label(a, new_addr, -1);
		finding_target(f, s);
		finding_step(a, f, "trap", &fr->trap, "interrupt vector 0x%x entered on %s", fr->vector,
			     from ? from : "");
		finding_step(a, f, "eoi", &fr->eoi_site, "EOI sent for vector 0x%x", fr->vector);
		finding_step(a, f, "switch", s, "switch %s -> %s at IRQL %d, vector 0x%x still open", from ? from : "",
			     to ? to : "", irql, fr->vector);
		finding_title(a, f, "EOI then context switch inside interrupt 0x%x (IRQL %d)", fr->vector, irql);
		finding_explain(a, f,
				"The handler of vector 0x%x sent its EOI and then switched from %s to %s before "
				"returning from the interrupt, still at IRQL %d. The EOI re-arms the interrupt, the "
				"incoming thread restores its own lower IRQL, and the same interrupt can now be "
				"delivered again on top of a handler that never finished (nested delivery, lost "
				"state, hangs). Switch only after leaving interrupt level: request a DISPATCH_LEVEL "
				"software interrupt/DPC and switch when the IRQL drops, or switch before the EOI "
				"with the IRQL kept raised.",
				fr->vector, from ? from : "", to ? to : "", irql);
		free(from);
		free(to);
		break;
	}

}

/* ---------------------------------------------------------------- deferred work */

void on_defer(struct analysis *a, struct vcpu *v, const struct db_event *ev, const struct site *s)
{
	uint32_t idx;
	int known = ev->obj && u64map_get(&a->defer_map, ev->obj, &idx);
	if (ev->kind == DB_DEFER_RUN) {
		if (ev->obj)
			a->defer_items_known = 1;
		if (known)
			a->defers[idx].pending = 0;
		return;
	}
	if (!ev->obj)
		return;
	if (!known) {
		if (grow((void **)&a->defers, &a->cap_defers, a->n_defers + 1, sizeof(*a->defers))) {
			fail(a, ANALYSIS_E_NOMEM);
			return;
		}
		idx = (uint32_t)a->n_defers++;
		a->defers[idx].item = ev->obj;
		a->defers[idx].pending = 0;
		fail(a, u64map_put(&a->defer_map, ev->obj, idx));
	}
	struct deferred *d = &a->defers[idx];
	if (d->pending)
		return; /* queued again while queued: one run serves both */
	d->pending = 1;
	d->queued = *s;
	d->drops_at_queue = v->dispatch_drops;
}

static void lost_deferred(struct analysis *a)
{
	if (!a->defer_items_known)
		return;
	for (size_t i = 0; i < a->n_defers && !a->error; i++) {
		const struct deferred *d = &a->defers[i];
		if (!d->pending || d->queued.vcpu >= a->n_vcpus)
			continue;
		const struct vcpu *v = &a->vcpus[d->queued.vcpu];
		if (v->dispatch_drops == d->drops_at_queue)
			continue; /* the CPU never went below DISPATCH since: it had no time to */
		int is_new;
		struct analysis_finding *f = finding_get(a, ANALYSIS_LOST_DEFERRED, hash_mix(d->item, d->queued.pc), &is_new);
		if (!f)
			return;
		f->count++;
		if (!is_new)
			continue;
		char w[256];
		finding_target(f, &d->queued);
		finding_step(a, f, "defer", &d->queued, "deferred item 0x%" PRIx64 " queued at %s", d->item,
			     where_of(a, &d->queued, w, sizeof(w)));
		finding_title(a, f, "deferred work 0x%" PRIx64 " queued and never run", d->item);
		finding_explain(a, f,
				"Item 0x%" PRIx64 " (a DPC or similar) was queued at %s and had not run when the trace "
				"ended, although its CPU afterwards dropped below DISPATCH_LEVEL, which it does only "
				"after draining its queue. Whatever the item completes (a request, a timer, a "
				"wake-up) is lost: its waiters hang. Check the queueing path (a queue that drops "
				"items, an item queued on a list that is never drained, an already-queued flag "
				"never cleared).",
				d->item, w);
	}
}

/* Whether vector v's returns without EOI are a bug. Vectors 0x20-0x2f are
 * where NT puts its software interrupts (APC, DPC), raised with `int` and
 * never EOI'd; a vector EOI'd on other deliveries needs one on all; a
 * device-range vector (>= 0x30) needs one when the tracer shows it sees
 * EOIs at all, or when the run hung right after it returned without one. */
int needs_eoi(const struct analysis *a, int v, int hung)
{
	const struct vector_stats *vs = &a->vectors[v];
	if (!vs->without_eoi)
		return 0;
	/* EOI'd on other deliveries: a bug if it happened twice, or if the
	 * vector stopped (a single miss that the next EOI of another vector
	 * cleared, or one acknowledged where the tracer cannot see, such as a
	 * legacy PIC, is no evidence). */
	if (vs->with_eoi)
		return vs->without_eoi > 1 || vs->last_trap.id == vs->last_noeoi_trap.id;
	if (v < 0x30 || v == SPURIOUS_VECTOR)
		return 0;
	return a->eoi_events > 0 || (hung && vs->last_trap.id == vs->last_noeoi_trap.id);
}

static void missing_eoi(struct analysis *a, int hung)
{
	for (int v = FIRST_INTERRUPT_VECTOR; v < 256 && !a->error; v++) {
		const struct vector_stats *vs = &a->vectors[v];
		if (!needs_eoi(a, v, hung))
			continue;
		int is_new;
		struct analysis_finding *f = finding_get(a, ANALYSIS_MISSING_EOI, (uint64_t)v, &is_new);
		if (!f)
			return;
		f->count = vs->without_eoi;
		char *who = thread_label(a, vs->first_noeoi_trap.thread, vs->first_noeoi_trap.tid);
		finding_target(f, &vs->first_noeoi_iret);
		finding_step(a, f, "trap", &vs->first_noeoi_trap, "vector 0x%x entered on %s", v, who ? who : "");
		finding_step(a, f, "iret", &vs->first_noeoi_iret, "vector 0x%x returned without an EOI", v);
		if (vs->without_eoi > 1 && vs->last_noeoi_trap.id != vs->first_noeoi_trap.id) {
			finding_step(a, f, "trap", &vs->last_noeoi_trap, "vector 0x%x entered (last time without EOI)", v);
			finding_step(a, f, "iret", &vs->last_noeoi_iret, "vector 0x%x returned without an EOI", v);
		}
		int stopped = vs->last_trap.id == vs->last_noeoi_trap.id;
		finding_title(a, f, "interrupt 0x%x returned without EOI (%" PRIu64 " of %" PRIu64 " times)%s", v,
			      vs->without_eoi, vs->without_eoi + vs->with_eoi,
			      stopped ? "; it never fired again" : "");
		finding_explain(a, f,
				"Vector 0x%x returned from its handler %" PRIu64 " time(s) without writing the local "
				"APIC's EOI register (%" PRIu64 " other deliveries did). Until the EOI the "
				"APIC keeps the vector in service and blocks it and every lower-priority vector%s. "
				"Send the EOI on every path out of the handler (early returns included).",
				v, vs->without_eoi, vs->with_eoi,
				stopped ? ": here the vector was never delivered again after the first return without "
					  "EOI, so whatever depends on it (the clock, the scheduler) stopped"
					: "");
		free(who);
	}
}

void interrupt_finish(struct analysis *a, int hung)
{
	missing_eoi(a, hung);
	lost_deferred(a);
}
