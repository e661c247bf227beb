/*
 * core.c - the per-event state machines.
 *
 * Each event updates the state of its vCPU (IRQL = last CR8 value seen,
 * current thread), of its thread (held locks, open trap frames, a pending
 * spinlock try or dispatcher wait, the IRQL it was switched out at), of the
 * lock it names (holder) and of the lock classes (lock-order edges, the IRQLs
 * they were taken at). Rules that can be decided at the event report there;
 * the rest is decided at the end (finish.c).
 *
 * Interrupts run on the interrupted thread's stack, so trap frames belong to
 * threads and travel with them across context switches: a thread switched out
 * inside an interrupt still has that frame open when it resumes.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/internal.h"

/* ---------------------------------------------------------------- helpers */

int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 8;
	while (ncap < need)
		ncap *= 2;
	void *p = realloc(*arr, ncap * elem);
	if (!p)
		return ANALYSIS_E_NOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

static size_t slot_of(uint64_t key, size_t cap)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdULL;
	key ^= key >> 33;
	return (size_t)key & (cap - 1);
}

int u64map_get(const struct u64map *m, uint64_t key, uint32_t *val)
{
	if (!m->cap)
		return 0;
	for (size_t i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (m->vals[i] == UINT32_MAX)
			return 0;
		if (m->keys[i] == key) {
			*val = m->vals[i];
			return 1;
		}
	}
}

int u64map_put(struct u64map *m, uint64_t key, uint32_t val)
{
	if ((m->n + 1) * 4 > m->cap * 3) {
		size_t ncap = m->cap ? m->cap * 2 : 64;
		uint64_t *keys = malloc(ncap * sizeof(*keys));
		uint32_t *vals = malloc(ncap * sizeof(*vals));
		if (!keys || !vals) {
			free(keys);
			free(vals);
			return ANALYSIS_E_NOMEM;
		}
		memset(vals, 0xff, ncap * sizeof(*vals));
		for (size_t i = 0; i < m->cap; i++) {
			if (m->vals[i] == UINT32_MAX)
				continue;
			size_t j = slot_of(m->keys[i], ncap);
			while (vals[j] != UINT32_MAX)
				j = (j + 1) & (ncap - 1);
			keys[j] = m->keys[i];
			vals[j] = m->vals[i];
		}
		free(m->keys);
		free(m->vals);
		m->keys = keys;
		m->vals = vals;
		m->cap = ncap;
	}
	size_t i = slot_of(key, m->cap);
	while (m->vals[i] != UINT32_MAX && m->keys[i] != key)
		i = (i + 1) & (m->cap - 1);
	if (m->vals[i] == UINT32_MAX)
		m->n++;
	m->keys[i] = key;
	m->vals[i] = val;
	return 0;
}

void u64map_free(struct u64map *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

static void fail(struct analysis *a, int rc)
{
	if (rc && !a->error)
		a->error = rc;
}

/* ---------------------------------------------------------------- naming */

static uint64_t hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

static enum fn_class classify(const char *fn)
{
	static const struct {
		const char *name;
		enum fn_class cls;
	} table[] = {
		{"KeLowerIrql", FN_LOWER_IRQL},
		{"KfLowerIrql", FN_LOWER_IRQL},
		{"KeRaiseIrql", FN_RAISE_IRQL},
		{"KfRaiseIrql", FN_RAISE_IRQL},
		{"KeRaiseIrqlToDpcLevel", FN_RAISE_IRQL},
		{"KeAcquireSpinLock", FN_SPIN_RAISE},
		{"KeAcquireSpinLockRaiseToDpc", FN_SPIN_RAISE},
		{"KfAcquireSpinLock", FN_SPIN_RAISE},
		{"KeAcquireInStackQueuedSpinLock", FN_SPIN_RAISE},
		{"KeAcquireSpinLockAtDpcLevel", FN_SPIN_DPC},
		{"KefAcquireSpinLockAtDpcLevel", FN_SPIN_DPC},
		{"KeAcquireInStackQueuedSpinLockAtDpcLevel", FN_SPIN_DPC},
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (strcmp(fn, table[i].name) == 0)
			return table[i].cls;
	size_t n = strlen(fn);
	if (n >= 11 && strcmp(fn + n - 11, "SwapContext") == 0)
		return FN_SWAP;
	return FN_OTHER;
}

/* Index of the function containing pc (by the symbol's name), interned. */
uint32_t function_of(struct analysis *a, uint64_t pc)
{
	uint32_t idx;
	if (u64map_get(&a->pc_map, pc, &idx))
		return idx;
	char buf[256], name[256];
	const char *sym = NULL;
	if (a->names.symbolize && pc)
		sym = a->names.symbolize(a->names.ctx, pc, buf, sizeof(buf));
	name[0] = 0;
	if (sym && strncmp(sym, "0x", 2) != 0) {
		size_t n = strcspn(sym, "+");
		if (n >= sizeof(name))
			n = sizeof(name) - 1;
		memcpy(name, sym, n);
		name[n] = 0;
	}
	for (idx = 0; idx < a->n_functions; idx++)
		if (strcmp(a->functions[idx].name, name) == 0)
			break;
	if (idx == a->n_functions) {
		if (grow((void **)&a->functions, &a->cap_functions, a->n_functions + 1, sizeof(*a->functions))) {
			fail(a, ANALYSIS_E_NOMEM);
			return 0;
		}
		char *copy = strdup(name);
		if (!copy) {
			fail(a, ANALYSIS_E_NOMEM);
			return 0;
		}
		a->functions[idx].name = copy;
		a->functions[idx].cls = *name ? classify(name) : FN_OTHER;
		a->n_functions++;
	}
	fail(a, u64map_put(&a->pc_map, pc, idx));
	return idx;
}

static enum fn_class class_of_pc(struct analysis *a, uint64_t pc)
{
	uint32_t fn = function_of(a, pc);
	return fn < a->n_functions ? a->functions[fn].cls : FN_OTHER;
}

static uint32_t class_intern(struct analysis *a, const char *name)
{
	uint64_t h = hash_str(name);
	uint32_t idx;
	while (u64map_get(&a->class_map, h, &idx)) {
		if (strcmp(a->classes[idx].name, name) == 0)
			return idx;
		h++;
	}
	if (grow((void **)&a->classes, &a->cap_classes, a->n_classes + 1, sizeof(*a->classes))) {
		fail(a, ANALYSIS_E_NOMEM);
		return 0;
	}
	char *copy = strdup(name);
	if (!copy) {
		fail(a, ANALYSIS_E_NOMEM);
		return 0;
	}
	idx = (uint32_t)a->n_classes;
	struct lock_class *c = &a->classes[idx];
	memset(c, 0, sizeof(*c));
	c->name = copy;
	c->irq_irql = -1;
	c->min_irql = 99;
	a->n_classes++;
	fail(a, u64map_put(&a->class_map, h, idx));
	return idx;
}

/* The lock at addr, created on first sight; NULL on allocation failure. */
static struct lock *lock_get(struct analysis *a, uint64_t addr)
{
	uint32_t idx;
	if (u64map_get(&a->lock_map, addr, &idx))
		return &a->locks[idx];
	char hex[32];
	const char *cname = a->names.lock_class ? a->names.lock_class(a->names.ctx, addr) : NULL;
	if (!cname || !*cname) {
		snprintf(hex, sizeof(hex), "0x%" PRIx64, addr);
		cname = hex;
	}
	uint32_t cls = class_intern(a, cname);
	if (a->error || grow((void **)&a->locks, &a->cap_locks, a->n_locks + 1, sizeof(*a->locks))) {
		fail(a, ANALYSIS_E_NOMEM);
		return NULL;
	}
	idx = (uint32_t)a->n_locks;
	struct lock *l = &a->locks[idx];
	memset(l, 0, sizeof(*l));
	l->addr = addr;
	l->cls = cls;
	if (u64map_put(&a->lock_map, addr, idx)) {
		fail(a, ANALYSIS_E_NOMEM);
		return NULL;
	}
	a->n_locks++;
	return l;
}

static uint32_t thread_index(struct analysis *a, uint64_t addr)
{
	uint32_t idx;
	if (u64map_get(&a->thread_map, addr, &idx))
		return idx;
	if (grow((void **)&a->threads, &a->cap_threads, a->n_threads + 1, sizeof(*a->threads))) {
		fail(a, ANALYSIS_E_NOMEM);
		return UINT32_MAX;
	}
	idx = (uint32_t)a->n_threads;
	struct thread *t = &a->threads[idx];
	memset(t, 0, sizeof(*t));
	t->addr = addr;
	t->out_irql = IRQL_UNKNOWN;
	if (u64map_put(&a->thread_map, addr, idx)) {
		fail(a, ANALYSIS_E_NOMEM);
		return UINT32_MAX;
	}
	a->n_threads++;
	return idx;
}

/* Events without a thread belong to a pseudo thread per vCPU. */
static uint64_t thread_key(uint64_t thread, uint16_t vcpu)
{
	return thread ? thread : 0xffffffffffff0000ULL | vcpu;
}

static struct vcpu *vcpu_get(struct analysis *a, uint16_t v)
{
	if (v >= a->n_vcpus) {
		size_t n = (size_t)v + 1;
		struct vcpu *p = realloc(a->vcpus, n * sizeof(*p));
		if (!p) {
			fail(a, ANALYSIS_E_NOMEM);
			return NULL;
		}
		for (size_t i = a->n_vcpus; i < n; i++) {
			memset(&p[i], 0, sizeof(p[i]));
			p[i].irql = IRQL_UNKNOWN;
		}
		a->vcpus = p;
		a->n_vcpus = n;
	}
	return &a->vcpus[v];
}

/* ---------------------------------------------------------------- contexts */

static int64_t context_of(const struct thread *t)
{
	return t->n_frames ? t->frames[t->n_frames - 1].trap.id : 0;
}

static int innermost_vector(const struct thread *t)
{
	return t->n_frames ? t->frames[t->n_frames - 1].vector : -1;
}

/* The IRQL the code runs at: the CR8 value, but inside an interrupt whose
 * EOI has not been sent at least the vector's priority class (vector >> 4):
 * the local APIC's processor priority is max(TPR, in-service class). */
int effective_irql(const struct analysis *a, const struct thread *t, int irql)
{
	(void)a;
	for (size_t i = 0; i < t->n_frames; i++) {
		int v = t->frames[i].vector;
		if (v >= FIRST_INTERRUPT_VECTOR && v != SPURIOUS_VECTOR && !t->frames[i].eoi && (v >> 4) > irql)
			irql = v >> 4;
	}
	return irql;
}

static int interrupt_depth(const struct thread *t)
{
	for (size_t i = t->n_frames; i-- > 0;)
		if (t->frames[i].vector >= FIRST_INTERRUPT_VECTOR)
			return 1;
	return 0;
}

/* ---------------------------------------------------------------- lifecycle */

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
	free(a->vcpus);
	for (size_t i = 0; i < a->n_findings; i++)
		finding_free(&a->findings[i]);
	free(a->findings);
	free(a->cap_steps);
	u64map_free(&a->finding_map);
	free(a);
}

/* ---------------------------------------------------------------- rules */

static void add_edges(struct analysis *a, struct thread *t, const struct lock *l, const struct site *s)
{
	int64_t ctx = context_of(t);
	for (size_t i = 0; i < t->n_held; i++) {
		const struct held *h = &t->held[i];
		if (h->ctx != ctx)
			continue;
		uint32_t from = a->locks[h->lock].cls;
		if (from == l->cls)
			continue;
		uint64_t key = (uint64_t)from << 32 | l->cls;
		uint32_t idx;
		if (u64map_get(&a->edge_map, key, &idx))
			continue;
		if (grow((void **)&a->edges, &a->cap_edges, a->n_edges + 1, sizeof(*a->edges))) {
			fail(a, ANALYSIS_E_NOMEM);
			return;
		}
		struct edge *e = &a->edges[a->n_edges];
		e->from = from;
		e->to = l->cls;
		e->held = h->acq;
		e->acq = *s;
		fail(a, u64map_put(&a->edge_map, key, (uint32_t)a->n_edges));
		a->n_edges++;
	}
}

static struct held *held_find(struct thread *t, uint32_t lock)
{
	for (size_t i = t->n_held; i-- > 0;)
		if (t->held[i].lock == lock)
			return &t->held[i];
	return NULL;
}

static void held_remove(struct thread *t, uint32_t lock)
{
	for (size_t i = t->n_held; i-- > 0;) {
		if (t->held[i].lock == lock) {
			memmove(&t->held[i], &t->held[i + 1], (t->n_held - i - 1) * sizeof(*t->held));
			t->n_held--;
			return;
		}
	}
}

static void held_add(struct analysis *a, struct thread *t, uint32_t lock, const struct site *s)
{
	if (grow((void **)&t->held, &t->cap_held, t->n_held + 1, sizeof(*t->held))) {
		fail(a, ANALYSIS_E_NOMEM);
		return;
	}
	struct held *h = &t->held[t->n_held++];
	h->lock = lock;
	h->ctx = context_of(t);
	h->acq = *s;
}

static void irql_call_rule(struct analysis *a, struct vcpu *v, const struct db_event *ev, const struct site *s)
{
	enum fn_class fc = class_of_pc(a, ev->pc);
	enum analysis_kind kind;
	if (fc == FN_LOWER_IRQL && ev->b > ev->a)
		kind = ANALYSIS_IRQL_LOWER_RAISES;
	else if (fc == FN_RAISE_IRQL && ev->b < ev->a)
		kind = ANALYSIS_IRQL_RAISE_LOWERS;
	else
		return;
	/* A probed call (at the function's entry) and the CR8 write inside it
	 * are two events for one call: count the call once. */
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
	struct analysis_finding *f = finding_get(a, kind, hash_mix(function_of(a, ev->pc), 0), &is_new);
	if (!f)
		return;
	f->count++;
	if (!is_new)
		return;
	const char *name = a->functions[fn].name;
	char *who = thread_label(a, s->thread);
	finding_target(f, s);
	finding_step(a, f, "irql", s, "%s changed IRQL %" PRId64 " -> %" PRId64 " on %s", name, ev->a, ev->b,
		     who ? who : "");
	if (kind == ANALYSIS_IRQL_LOWER_RAISES) {
		finding_title(a, f, "%s raised IRQL %" PRId64 " -> %" PRId64, name, ev->a, ev->b);
		finding_explain(a, f,
				"%s was asked for an IRQL above the current one and raised it from %" PRId64
				" to %" PRId64 ". A lower must never raise (NT bugchecks IRQL_NOT_LESS_OR_EQUAL; Driver "
				"Verifier flags it): the caller restores an IRQL it never saved, usually a stale or "
				"swapped old-IRQL value. Fix the caller to pass the value KeRaiseIrql returned.",
				name, ev->a, ev->b);
	} else {
		finding_title(a, f, "%s lowered IRQL %" PRId64 " -> %" PRId64, name, ev->a, ev->b);
		finding_explain(a, f,
				"%s was asked for an IRQL below the current one and lowered it from %" PRId64
				" to %" PRId64 ". A raise must never lower (NT bugchecks IRQL_NOT_GREATER_OR_EQUAL; "
				"Driver Verifier flags it): code that relied on the raised level now runs interruptible. "
				"Use KeLowerIrql to go down, and raise only to a level >= the current one.",
				name, ev->a, ev->b);
	}
	free(who);
}

static void on_irql(struct analysis *a, struct vcpu *v, const struct db_event *ev, const struct site *s)
{
	irql_call_rule(a, v, ev, s);
	v->last_irql_id = s->id;
	if (ev->b >= 0 && ev->b <= 15)
		v->irql = (int)ev->b;
}

/* A thread switched in settles the IRQL it resumes at with its first event
 * that is not the switch routine restoring CR8. */
static void settle_resume(struct analysis *a, struct thread *t, struct vcpu *v, const struct db_event *ev,
			  const struct site *s)
{
	/* Interrupts taken while resuming run at their own level. */
	if (ev->kind == DB_TRAP || t->n_frames > t->resume_frames)
		return;
	if (ev->kind == DB_IRQL) {
		uint32_t fn = function_of(a, ev->pc);
		enum fn_class fc = fn < a->n_functions ? a->functions[fn].cls : FN_OTHER;
		/* A thread that blocked in a wait returns through the scheduler,
		 * which restores the wait's IRQL: only the thread's own calls
		 * (KeRaiseIrql/KeLowerIrql) or other events end that path. A
		 * preempted thread is restored by the switch routine itself. */
		if (t->out_waited ? (fc != FN_LOWER_IRQL && fc != FN_RAISE_IRQL)
				  : (fn == t->resume_fn || fc == FN_SWAP))
			return;
	}
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
	char *who = thread_label(a, t->addr);
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
			"switch from whichever thread ran before. IRQL is per-thread state on NT: the switch must "
			"save the outgoing thread's IRQL and restore the incoming one's (or all switches must happen "
			"at one IRQL). A thread resuming higher cannot be preempted or take page faults; lower, it "
			"loses the protection it raised for.",
			who ? who : "", t->out_irql, now);
	free(who);
}

static void on_switch(struct analysis *a, struct vcpu *v, const struct db_event *ev, const struct site *s)
{
	uint64_t old_addr = thread_key(ev->a ? (uint64_t)ev->a : ev->thread, ev->vcpu);
	uint64_t new_addr = thread_key((uint64_t)ev->b, ev->vcpu);
	uint32_t oi = thread_index(a, old_addr);
	if (oi == UINT32_MAX)
		return;
	struct thread *old = &a->threads[oi];

	/* eoi-before-switch: an interrupt frame of the outgoing thread already
	 * sent its EOI and the CPU is still above DISPATCH_LEVEL. */
	for (size_t i = old->n_frames; i-- > 0;) {
		struct frame *fr = &old->frames[i];
		if (fr->vector < FIRST_INTERRUPT_VECTOR || !fr->eoi)
			continue;
		int irql = v->irql != IRQL_UNKNOWN ? v->irql : fr->vector >> 4;
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
		char *from = thread_label(a, old_addr), *to = thread_label(a, new_addr);
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

	/* Blocked in its wait only if the switch happens at the wait's level, not
	 * in an interrupt taken after a wait that had already returned. */
	old->out_waited = old->has_wait && old->n_frames == old->wait_frames;
	old->out_irql = old->out_waited ? old->wait_irql : v->irql;
	old->out_site = *s;
	old->running = 0;
	old->resuming = 0;

	uint32_t ni = thread_index(a, new_addr);
	if (ni == UINT32_MAX)
		return;
	struct thread *nt = &a->threads[ni];
	nt->running = 1;
	nt->seen = 1;
	nt->has_wait = 0; /* running again: whatever it waited for returned */
	nt->resume_frames = nt->n_frames;
	nt->in_site = *s;
	nt->in_site.thread = new_addr;
	if (nt->out_irql != IRQL_UNKNOWN) {
		nt->resuming = 1;
		nt->resume_fn = function_of(a, ev->pc);
	}
	v->thread = ni + 1;
	v->thread_addr = new_addr;
}

/* An attempt inside an interrupt above DISPATCH_LEVEL marks the class as
 * used in interrupts (as lockdep marks usage at acquire time). */
static void class_irq_usage(struct analysis *a, struct thread *t, struct lock *l, const struct site *s, int irql)
{
	struct lock_class *c = &a->classes[l->cls];
	if (interrupt_depth(t) && irql > IRQL_DISPATCH && irql > c->irq_irql) {
		c->irq_irql = irql;
		c->irq_site = *s;
		c->irq_site.irql = (int8_t)irql;
	}
}

static void class_irql(struct analysis *a, struct thread *t, struct lock *l, const struct site *s, int irql)
{
	struct lock_class *c = &a->classes[l->cls];
	class_irq_usage(a, t, l, s, irql);
	if (irql >= 0 && irql < c->min_irql) {
		c->min_irql = irql;
		c->min_site = *s;
		c->min_site.irql = (int8_t)irql;
	}
}

static void recursive_rule(struct analysis *a, struct thread *t, struct lock *l, const struct held *h,
			   const struct site *s)
{
	int is_new;
	struct analysis_finding *f =
		finding_get(a, ANALYSIS_RECURSIVE_SPINLOCK, hash_mix(hash_mix(l->cls, h->acq.pc), s->pc), &is_new);
	if (!f)
		return;
	f->count++;
	if (!is_new)
		return;
	char *who = thread_label(a, t->addr);
	const char *cn = class_name(a, l->cls);
	finding_target(f, s);
	finding_step(a, f, "held", &h->acq, "%s acquired %s", who ? who : "", cn);
	finding_step(a, f, "try", s, "%s tries %s again while holding it", who ? who : "", cn);
	finding_title(a, f, "recursive acquire of spinlock %s by %s", cn, who ? who : "");
	finding_explain(a, f,
			"%s tried to acquire spinlock %s, which it already holds (acquired at event %" PRId64
			"). Spinlocks are not recursive: the second acquire spins forever on the thread's own "
			"hold (Driver Verifier bugchecks 0xC4/0x0F). Release before re-acquiring, or split the "
			"function so the inner path runs with the lock already held.",
			who ? who : "", cn, h->acq.id);
	free(who);
}

static void spin_irql_rule(struct analysis *a, const struct db_event *ev, struct lock *l, const struct site *s,
			   int irql)
{
	enum fn_class fc = class_of_pc(a, ev->pc);
	enum analysis_kind kind;
	if (fc == FN_SPIN_RAISE && irql > IRQL_DISPATCH)
		kind = ANALYSIS_SPINLOCK_ABOVE_DISPATCH;
	else if (fc == FN_SPIN_DPC && irql >= 0 && irql < IRQL_DISPATCH)
		kind = ANALYSIS_SPINLOCK_BELOW_DISPATCH;
	else
		return;
	int is_new;
	struct analysis_finding *f = finding_get(a, kind, hash_mix(l->cls, function_of(a, ev->pc)), &is_new);
	if (!f)
		return;
	f->count++;
	if (!is_new)
		return;
	const char *fn = a->functions[function_of(a, ev->pc)].name;
	const char *cn = class_name(a, l->cls);
	char *who = thread_label(a, s->thread);
	finding_target(f, s);
	finding_step(a, f, "try", s, "%s calls %s(%s) at IRQL %d", who ? who : "", fn, cn, irql);
	if (kind == ANALYSIS_SPINLOCK_ABOVE_DISPATCH) {
		finding_title(a, f, "%s(%s) called at IRQL %d > DISPATCH_LEVEL", fn, cn, irql);
		finding_explain(a, f,
				"%s raises to DISPATCH_LEVEL and must be called at IRQL <= DISPATCH_LEVEL (Driver "
				"Verifier: IRQL_NOT_LESS_OR_EQUAL). Called at IRQL %d it effectively lowers the IRQL "
				"while holding %s, letting the interrupt it runs in nest. Code above DISPATCH_LEVEL "
				"must use a lock made for that level (KeAcquireSpinLockAtDpcLevel on a lock always "
				"taken at that IRQL, an interrupt spinlock).",
				fn, irql, cn);
	} else {
		finding_title(a, f, "%s(%s) called at IRQL %d < DISPATCH_LEVEL", fn, cn, irql);
		finding_explain(a, f,
				"%s does not raise the IRQL and must be called at IRQL >= DISPATCH_LEVEL. Called at "
				"IRQL %d the holder of %s can be preempted by the scheduler while it holds the lock; "
				"any thread then trying the lock on this CPU spins forever. Use KeAcquireSpinLock, "
				"which raises to DISPATCH_LEVEL first.",
				fn, irql, cn);
	}
	free(who);
}

static void on_lock_try(struct analysis *a, struct thread *t, const struct db_event *ev, struct site *s,
			int irql)
{
	struct lock *l = lock_get(a, ev->obj);
	if (!l)
		return;
	uint32_t li = (uint32_t)(l - a->locks);
	spin_irql_rule(a, ev, l, s, irql);
	class_irq_usage(a, t, l, s, irql);
	if (l->holder == (uint32_t)(t - a->threads) + 1) {
		struct held *h = held_find(t, li);
		if (h && h->ctx == context_of(t))
			recursive_rule(a, t, l, h, s);
	}
	add_edges(a, t, l, s);
	t->has_try = 1;
	t->try_lock = li;
	t->try_site = *s;
}

static void on_lock_acq(struct analysis *a, struct thread *t, const struct db_event *ev, struct site *s, int irql)
{
	struct lock *l = lock_get(a, ev->obj);
	if (!l)
		return;
	uint32_t li = (uint32_t)(l - a->locks);
	uint32_t me = (uint32_t)(t - a->threads) + 1;
	int tried = t->has_try && t->try_lock == li;
	if (!tried) {
		/* No try event (a probe without one): the acquisition is the attempt. */
		spin_irql_rule(a, ev, l, s, irql);
		if (l->holder == me) {
			struct held *h = held_find(t, li);
			if (h && h->ctx == context_of(t))
				recursive_rule(a, t, l, h, s);
		}
		add_edges(a, t, l, s);
	}
	t->has_try = 0;
	class_irql(a, t, l, s, irql);
	if (l->holder && l->holder != me)
		held_remove(&a->threads[l->holder - 1], li);
	else if (l->holder == me)
		held_remove(t, li);
	l->holder = me;
	l->depth = 1;
	l->acq = *s;
	held_add(a, t, li, s);
}

static void release_rule(struct analysis *a, enum analysis_kind kind, struct thread *t, struct lock *l,
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
	const char *what = l->is_mutex ? "mutex" : "spinlock";
	char *who = thread_label(a, t->addr);
	finding_target(f, s);
	if (kind == ANALYSIS_RELEASE_NOT_OWNER) {
		char *owner = thread_label(a, a->threads[l->holder - 1].addr);
		finding_step(a, f, "held", &l->acq, "%s acquired %s %s", owner ? owner : "", what, cn);
		finding_step(a, f, "release", s, "%s releases %s %s it does not hold", who ? who : "", what, cn);
		finding_title(a, f, "%s %s released by %s, held by %s", what, cn, who ? who : "", owner ? owner : "");
		finding_explain(a, f,
				"%s released %s %s while %s holds it (acquired at event %" PRId64
				"). Only the owner may release a lock (NT bugchecks MUTEX_NOT_OWNED or "
				"SPIN_LOCK_NOT_OWNED under Driver Verifier): the owner still believes it is "
				"protected while others now enter. Release on the path that acquired.",
				who ? who : "", what, cn, owner ? owner : "", l->acq.id);
		free(owner);
	} else {
		finding_step(a, f, "release", s, "%s releases %s %s, which nobody holds", who ? who : "", what, cn);
		finding_title(a, f, "%s %s released while not held", what, cn);
		finding_explain(a, f,
				"%s released %s %s, but the trace shows nobody holding it at that point: a double "
				"release, or a release on an error path that never acquired. The next acquirer and "
				"the releaser can both be inside the critical section. Pair every release with one "
				"acquire on the same path.",
				who ? who : "", what, cn);
	}
	free(who);
}

static void on_lock_rel(struct analysis *a, struct thread *t, const struct db_event *ev, const struct site *s)
{
	struct lock *l = lock_get(a, ev->obj);
	if (!l)
		return;
	uint32_t li = (uint32_t)(l - a->locks);
	uint32_t me = (uint32_t)(t - a->threads) + 1;
	if (l->holder == 0) {
		release_rule(a, ANALYSIS_RELEASE_NOT_HELD, t, l, s);
		return;
	}
	if (l->holder != me) {
		struct thread *owner = &a->threads[l->holder - 1];
		/* Handoff: the owner took the lock, switched away, and the thread
		 * switched in releases it (a dispatcher lock across a swap). */
		if (owner->running || owner->out_site.id < l->acq.id || owner->out_site.vcpu != s->vcpu)
			release_rule(a, ANALYSIS_RELEASE_NOT_OWNER, t, l, s);
		held_remove(owner, li);
	} else {
		held_remove(t, li);
	}
	l->holder = 0;
	l->depth = 0;
}

/* The owner of a mutex granted by this event: b when the tracer filled it in
 * (KiSatisfyMutexWait's thread), else the current thread unless it does not
 * wait for the mutex and another thread does (ownership granted at release
 * time to the oldest waiter). */
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

static void on_mutex_acq(struct analysis *a, struct thread *t, const struct db_event *ev, const struct site *s)
{
	struct thread *o = mutex_owner(a, t, ev);
	struct lock *l = lock_get(a, ev->obj);
	if (!l || !o)
		return;
	uint32_t li = (uint32_t)(l - a->locks);
	uint32_t oi = (uint32_t)(o - a->threads) + 1;
	l->is_mutex = 1;
	if (l->holder == oi) {
		if (o->has_wait && o->wait_obj == ev->obj)
			o->has_wait = 0;
		l->depth++;
		return;
	}
	struct site os = *s;
	os.thread = o->addr;
	if (o->has_wait && o->wait_obj == ev->obj)
		o->has_wait = 0; /* granted: the edges were added when it began waiting */
	else
		add_edges(a, o, l, &os);
	if (l->holder)
		held_remove(&a->threads[l->holder - 1], li);
	l->holder = oi;
	l->depth = 1;
	l->acq = os;
	held_add(a, o, li, &os);
}

static void on_mutex_rel(struct analysis *a, struct thread *t, const struct db_event *ev, const struct site *s)
{
	struct lock *l = lock_get(a, ev->obj);
	if (!l)
		return;
	uint32_t li = (uint32_t)(l - a->locks);
	uint32_t me = (uint32_t)(t - a->threads) + 1;
	l->is_mutex = 1;
	if (l->holder == 0) {
		release_rule(a, ANALYSIS_RELEASE_NOT_HELD, t, l, s);
		return;
	}
	if (l->holder != me) {
		release_rule(a, ANALYSIS_RELEASE_NOT_OWNER, t, l, s);
		held_remove(&a->threads[l->holder - 1], li);
		l->holder = 0;
		l->depth = 0;
		return;
	}
	if (--l->depth > 0)
		return;
	held_remove(t, li);
	l->holder = 0;
}

static void on_wait(struct analysis *a, struct thread *t, const struct db_event *ev, const struct site *s)
{
	t->has_wait = 1;
	t->wait_obj = ev->obj;
	t->wait_site = *s;
	t->wait_irql = ev->a >= 0 && ev->a <= 15 ? (int)ev->a : s->irql;
	t->wait_frames = t->n_frames;
	uint32_t li;
	if (u64map_get(&a->lock_map, ev->obj, &li) && a->locks[li].is_mutex &&
	    a->locks[li].holder != (uint32_t)(t - a->threads) + 1)
		add_edges(a, t, &a->locks[li], s);
	if (ev->a < IRQL_DISPATCH || ev->b == 0)
		return;
	int is_new;
	struct analysis_finding *f = finding_get(a, ANALYSIS_WAIT_AT_DISPATCH, hash_mix(s->pc, ev->obj), &is_new);
	if (!f)
		return;
	f->count++;
	if (!is_new)
		return;
	char *who = thread_label(a, t->addr);
	finding_target(f, s);
	finding_step(a, f, "wait", s, "%s waits on object 0x%" PRIx64 " at IRQL %" PRId64 ", timeout %" PRId64,
		     who ? who : "", ev->obj, ev->a, ev->b);
	finding_title(a, f, "wait at IRQL %" PRId64 " with a non-zero timeout", ev->a);
	finding_explain(a, f,
			"%s called KeWaitForSingleObject at IRQL %" PRId64 " (>= DISPATCH_LEVEL) with timeout %" PRId64
			". At DISPATCH_LEVEL and above the scheduler cannot run, so a wait that may block hangs the "
			"CPU (Driver Verifier: IRQL_NOT_LESS_OR_EQUAL). At that IRQL only a zero-timeout poll is "
			"allowed; wait at PASSIVE/APC level or poll with a zero timeout.",
			who ? who : "", ev->a, ev->b);
	free(who);
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
	char *who = thread_label(a, t->addr), *owner = thread_label(a, outer->thread);
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

static void on_trap(struct analysis *a, struct vcpu *v, struct thread *t, const struct db_event *ev, struct site *s)
{
	int vec = (int)(ev->a & 0xff);
	if (vec >= FIRST_INTERRUPT_VECTOR && vec != SPURIOUS_VECTOR) {
		/* On this thread's stack: a bug only if the open handler dropped to
		 * a device level; at DISPATCH_LEVEL or below it is running DPCs or
		 * dispatching on its way out, as NT does. */
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
	s->vector = (int16_t)vec;
	fr->trap = *s;
	fr->saved_try = t->has_try;
	fr->saved_try_lock = t->try_lock;
	fr->saved_try_site = t->try_site;
	t->has_try = 0;
}

static void on_iret(struct analysis *a, struct thread *t, const struct site *s)
{
	if (!t->n_frames)
		return; /* a frame built by hand (a new thread's first iretq) */
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
	t->has_try = fr->saved_try;
	t->try_lock = fr->saved_try_lock;
	t->try_site = fr->saved_try_site;
	if (fr->vector < FIRST_INTERRUPT_VECTOR || fr->vector == SPURIOUS_VECTOR)
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

static void on_eoi(struct thread *t, const struct site *s)
{
	for (size_t i = t->n_frames; i-- > 0;) {
		struct frame *fr = &t->frames[i];
		if (fr->vector >= FIRST_INTERRUPT_VECTOR) {
			if (!fr->eoi) {
				fr->eoi = 1;
				fr->eoi_site = *s;
			}
			return;
		}
	}
}

/* Whether ev, run by t at the level it waited at, shows t's wait returned.
 * Tracers need not emit wait_end: a thread that releases, signals, takes a
 * lock, prints, calls KeRaiseIrql/KeLowerIrql or waits again is no longer
 * blocked. A mutex_acq of the
 * object is not: ownership is granted inside the wait (possibly to another
 * thread). */
static int ends_wait(struct analysis *a, const struct db_event *ev, const struct thread *t)
{
	switch (ev->kind) {
	case DB_IRQL: {
		/* the thread's own KeRaiseIrql/KeLowerIrql: the wait path uses neither */
		enum fn_class fc = class_of_pc(a, ev->pc);
		return fc == FN_LOWER_IRQL || fc == FN_RAISE_IRQL;
	}
	case DB_WAIT_END:
		return ev->obj == t->wait_obj;
	case DB_LOCK_TRY:
	case DB_LOCK_ACQ:
	case DB_LOCK_REL:
	case DB_MUTEX_REL:
	case DB_SIGNAL:
	case DB_MARKER:
	case DB_BUGCHECK:
		return 1;
	case DB_MUTEX_ACQ:
		return ev->obj != t->wait_obj;
	default:
		return 0;
	}
}

int analysis_feed(struct analysis *a, const struct db_event *ev)
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
	if (ev->kind != DB_SWITCH) {
		v->thread = ti + 1;
		v->thread_addr = key;
		t->running = 1;
	}

	/* Lock and wait events carry the IRQL the tracer read: trust it. */
	if ((ev->kind == DB_LOCK_TRY || ev->kind == DB_LOCK_ACQ || ev->kind == DB_LOCK_REL ||
	     ev->kind == DB_MUTEX_ACQ || ev->kind == DB_WAIT) &&
	    ev->a >= 0 && ev->a <= 15)
		v->irql = (int)ev->a;

	struct site s = {
		.id = id,
		.icount = ev->icount,
		.pc = ev->pc,
		.thread = key,
		.lock = 0,
		.vcpu = ev->vcpu,
		.irql = (int8_t)v->irql,
		.vector = (int16_t)innermost_vector(t),
	};
	if (t->resuming && ev->kind != DB_SWITCH)
		settle_resume(a, t, v, ev, &s);
	if (t->has_wait && t->n_frames <= t->wait_frames && ends_wait(a, ev, t))
		t->has_wait = 0;

	int irql = effective_irql(a, t, v->irql);
	switch (ev->kind) {
	case DB_TRAP:
		on_trap(a, v, t, ev, &s);
		break;
	case DB_IRET:
		on_iret(a, t, &s);
		break;
	case DB_IRQL:
		on_irql(a, v, ev, &s);
		break;
	case DB_LOCK_TRY:
		s.lock = ev->obj;
		on_lock_try(a, t, ev, &s, irql);
		break;
	case DB_LOCK_ACQ:
		s.lock = ev->obj;
		on_lock_acq(a, t, ev, &s, irql);
		break;
	case DB_LOCK_REL:
		s.lock = ev->obj;
		on_lock_rel(a, t, ev, &s);
		break;
	case DB_WAIT:
		s.lock = ev->obj;
		on_wait(a, t, ev, &s);
		break;
	case DB_MUTEX_ACQ:
		s.lock = ev->obj;
		on_mutex_acq(a, t, ev, &s);
		break;
	case DB_MUTEX_REL:
		s.lock = ev->obj;
		on_mutex_rel(a, t, ev, &s);
		break;
	case DB_SWITCH:
		on_switch(a, v, ev, &s);
		break;
	case DB_EOI:
		a->eoi_events++;
		on_eoi(t, &s);
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
	return a->error;
}
