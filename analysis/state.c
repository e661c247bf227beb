/*
 * state.c - the tables the event walk keeps: open-addressing maps, growable
 * arrays, and the interning of threads, locks, lock classes and functions.
 *
 * Lock classes follow lockdep: a lock the namer can name by its static
 * symbol is that symbol's class (a static lock initialised at run time only
 * if it is a variable of its own); a dynamic lock is the class of its init
 * site (lock_init: "init@site"); a lock seen neither way is the class of
 * the call site of its first acquisition ("lock@site"), so the many
 * instances one code path creates (locks inside objects, freed memory
 * reused) share one class. A re-init of an address starts a new instance.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/internal.h"

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

void fail(struct analysis *a, int rc)
{
	if (rc && !a->error)
		a->error = rc;
}

uint64_t hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

/* Index of the function containing pc (by its symbol's name), interned. The
 * name only tells two pcs of one function apart; it never decides a rule. */
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
	} else {
		snprintf(name, sizeof(name), "0x%" PRIx64, pc);
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
		a->n_functions++;
	}
	fail(a, u64map_put(&a->pc_map, pc, idx));
	return idx;
}

uint32_t class_intern(struct analysis *a, const char *name, int sleeping)
{
	uint64_t h = hash_str(name) ^ (uint64_t)sleeping;
	uint32_t idx;
	while (u64map_get(&a->class_map, h, &idx)) {
		if (strcmp(a->classes[idx].name, name) == 0 && a->classes[idx].sleeping == sleeping)
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
	c->sleeping = sleeping;
	a->n_classes++;
	fail(a, u64map_put(&a->class_map, h, idx));
	return idx;
}

char *where_of(struct analysis *a, const struct site *s, char *buf, size_t size)
{
	uint64_t pc = s->caller ? s->caller : s->pc;
	const char *w = a->names.symbolize && pc ? a->names.symbolize(a->names.ctx, pc, buf, size) : NULL;
	if (!w)
		snprintf(buf, size, "0x%" PRIx64, pc);
	else if (w != buf)
		snprintf(buf, size, "%s", w);
	return buf;
}

/* The static name of a lock, or NULL when the namer has only an address or
 * an allocation site for it. A lock initialised at run time keeps a static
 * name only when it is a variable of its own (the symbol itself, no
 * offset); inside a bigger object its class is its init site. */
static const char *static_name(struct analysis *a, uint64_t addr, int inited)
{
	const char *n = a->names.lock_class ? a->names.lock_class(a->names.ctx, addr) : NULL;
	if (!n || !*n || strncmp(n, "0x", 2) == 0 || strncmp(n, "alloc@", 6) == 0 || (inited && strchr(n, '+')))
		return NULL;
	return n;
}

static uint32_t class_for(struct analysis *a, uint64_t addr, int sleeping, const char *prefix, const struct site *s)
{
	const char *n = static_name(a, addr, prefix && strcmp(prefix, "init") == 0);
	char buf[300], where[256];
	int by_caller = 0;
	if (!n && prefix && s && (s->caller || s->pc)) {
		snprintf(buf, sizeof(buf), "%s@%s", prefix, where_of(a, s, where, sizeof(where)));
		n = buf;
		by_caller = strcmp(prefix, "lock") == 0;
	}
	if (!n) {
		snprintf(buf, sizeof(buf), "0x%" PRIx64, addr);
		n = buf;
	}
	uint32_t cls = class_intern(a, n, sleeping);
	if (by_caller && !a->error)
		a->classes[cls].by_caller = 1;
	return cls;
}

int lock_find(const struct analysis *a, uint64_t addr, int sleeping, uint32_t *idx)
{
	return u64map_get(sleeping ? &a->sleep_map : &a->lock_map, addr, idx);
}

/* Classed by s, the acquisition, when it has a caller. */
struct lock *lock_get(struct analysis *a, uint64_t addr, int sleeping, const struct site *s)
{
	uint32_t idx;
	if (lock_find(a, addr, sleeping, &idx))
		return &a->locks[idx];
	uint32_t cls = class_for(a, addr, sleeping, s && s->caller ? "lock" : NULL, s);
	if (a->error || grow((void **)&a->locks, &a->cap_locks, a->n_locks + 1, sizeof(*a->locks))) {
		fail(a, ANALYSIS_E_NOMEM);
		return NULL;
	}
	idx = (uint32_t)a->n_locks;
	struct lock *l = &a->locks[idx];
	memset(l, 0, sizeof(*l));
	l->addr = addr;
	l->cls = cls;
	l->owned = 1;
	l->sleeping = (uint8_t)sleeping;
	if (u64map_put(sleeping ? &a->sleep_map : &a->lock_map, addr, idx)) {
		fail(a, ANALYSIS_E_NOMEM);
		return NULL;
	}
	a->n_locks++;
	return l;
}

/* lock_init: a new instance at obj, of the class of its init site (the
 * caller, or a for tracers that record the site there). */
void lock_init_event(struct analysis *a, const struct db_event *ev, const struct site *s)
{
	struct site init = *s;
	if (!init.caller)
		init.caller = (uint64_t)ev->a;
	int fl = DB_LOCKOP_FLAVOR(ev->lockop);
	struct lock *l = lock_get(a, ev->obj, is_sleeping_flavor(fl), &init);
	if (!l)
		return;
	uint32_t li = (uint32_t)(l - a->locks);
	if (l->holder)
		held_remove(&a->threads[l->holder - 1], li);
	l->cls = class_for(a, ev->obj, l->sleeping, "init", &init);
	l->inited = 1;
	l->gen++;
	l->holder = l->readers = l->depth = 0;
	l->handoff_to = 0;
	l->acquired_once = 0;
	l->owned = fl != DB_LF_SEM;
}

uint32_t thread_index(struct analysis *a, uint64_t addr)
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
	t->tid = -1;
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
uint64_t thread_key(uint64_t thread, uint16_t vcpu)
{
	return thread ? thread : NO_THREAD_BASE | vcpu;
}

struct vcpu *vcpu_get(struct analysis *a, uint16_t v)
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

int64_t context_of(const struct thread *t)
{
	return t->n_frames ? t->frames[t->n_frames - 1].trap.id : 0;
}

int innermost_vector(const struct thread *t)
{
	return t->n_frames ? t->frames[t->n_frames - 1].vector : -1;
}

int in_interrupt(const struct thread *t)
{
	for (size_t i = t->n_frames; i-- > 0;)
		if (t->frames[i].vector >= FIRST_INTERRUPT_VECTOR && !t->frames[i].soft)
			return 1;
	return 0;
}

/* The IRQL the code runs at: the CR8 value, but inside an interrupt whose
 * EOI has not been sent at least the vector's priority class (vector >> 4):
 * the local APIC's processor priority is max(TPR, in-service class). */
int effective_irql(const struct thread *t, int irql)
{
	if (irql == IRQL_UNKNOWN)
		return irql;
	for (size_t i = 0; i < t->n_frames; i++) {
		int v = t->frames[i].vector;
		if (v >= FIRST_INTERRUPT_VECTOR && v != SPURIOUS_VECTOR && !t->frames[i].soft && !t->frames[i].eoi &&
		    (v >> 4) > irql)
			irql = v >> 4;
	}
	return irql;
}

int is_sleeping_flavor(int flavor)
{
	return flavor == DB_LF_MUTEX || flavor == DB_LF_RWSEM_READ || flavor == DB_LF_RWSEM_WRITE ||
	       flavor == DB_LF_SEM;
}

struct held *held_find(struct thread *t, uint32_t lock)
{
	for (size_t i = t->n_held; i-- > 0;)
		if (t->held[i].lock == lock)
			return &t->held[i];
	return NULL;
}
