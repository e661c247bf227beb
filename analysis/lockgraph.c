/*
 * lockgraph.c - held locks and the lock dependency graph (lockdep's
 * "lock-class dependency" half, Documentation/locking/lockdep-design.rst).
 *
 * Rules, in our words:
 *  - A blocking acquisition of class B while class A is held (in the same
 *    context: an interrupt handler's chain is its own) adds the dependency
 *    A -> B. A successful trylock adds none into its class (it cannot wait),
 *    but the class is held afterwards, so later blocking acquisitions depend
 *    on it; a failed trylock adds nothing and is no spinner.
 *  - Sleeping locks (mutex, rwsem, semaphore) are in the same graph as
 *    spinlocks from their first use on.
 *  - A cycle of dependencies is a possible deadlock ("possible circular
 *    locking dependency"), unless it can only close through recursive
 *    reads: a recursive read acquisition does not wait while readers hold
 *    the lock, so a cycle that enters a class by a recursive read and leaves
 *    it from a shared hold is not a deadlock (lockdep's "strong path" rule).
 *    A cycle through classes that are all guesses (named by the caller that
 *    first took one of their locks: no symbol, no init seen) is a note: a
 *    parent and a child of one real class, nested in a fixed order, would
 *    form one.
 *    A rwlock read (DB_LF_READ) is recursive in interrupt context only, as
 *    lockdep has it for queued rwlocks (in process context a reader queues
 *    behind a waiting writer); rwsem reads are never recursive.
 *  - Taking an instance of a class while holding another instance of the same
 *    class is "possible recursive locking", unless the acquisition declares
 *    a nesting subclass (which makes "class/n" a class of its own) or both
 *    are recursive reads. A kernel built without nesting annotations (no
 *    acquisition in the trace declares a subclass: a stock Linux without
 *    lockdep compiles them out) cannot say which nestings are ordered; there
 *    only two instances nested in both orders (an inversion between
 *    instances) are reported. Taking the same instance again is a
 *    self-deadlock (recursive-spinlock).
 * One finding per distinct inversion: cycles that share a dependency, or
 * that run through the same set of classes, are variants of one finding.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/internal.h"

/* ---------------------------------------------------------------- held locks */

uint32_t held_class(struct analysis *a, const struct lock *l, const struct db_event *ev)
{
	int sub = DB_LOCKOP_SUBCLASS(ev->lockop);
	if (!sub)
		return l->cls;
	char name[300];
	snprintf(name, sizeof(name), "%s/%d", class_name(a, l->cls), sub);
	uint32_t cls = class_intern(a, name, a->classes[l->cls].sleeping);
	if (!a->error)
		a->classes[cls].by_caller = a->classes[l->cls].by_caller;
	return cls;
}

void held_remove(struct thread *t, uint32_t lock)
{
	for (size_t i = t->n_held; i-- > 0;) {
		if (t->held[i].lock == lock) {
			memmove(&t->held[i], &t->held[i + 1], (t->n_held - i - 1) * sizeof(*t->held));
			t->n_held--;
			return;
		}
	}
}

void add_edges(struct analysis *a, struct thread *t, const struct lock *l, uint32_t cls, int rec_read,
	       const struct site *s)
{
	int64_t ctx = context_of(t);
	for (size_t i = 0; i < t->n_held; i++) {
		const struct held *h = &t->held[i];
		if (h->ctx != ctx || h->cls == cls || h->lock == (uint32_t)(l - a->locks))
			continue;
		uint64_t key = (uint64_t)h->cls << 32 | cls;
		uint8_t type = (uint8_t)EDGE_TYPE(h->shared, rec_read);
		uint32_t idx;
		if (u64map_get(&a->edge_map, key, &idx)) {
			a->edges[idx].types |= type;
			continue;
		}
		if (grow((void **)&a->edges, &a->cap_edges, a->n_edges + 1, sizeof(*a->edges))) {
			fail(a, ANALYSIS_E_NOMEM);
			return;
		}
		struct edge *e = &a->edges[a->n_edges];
		e->from = h->cls;
		e->to = cls;
		e->types = type;
		e->held = h->acq;
		e->acq = *s;
		fail(a, u64map_put(&a->edge_map, key, (uint32_t)a->n_edges));
		a->n_edges++;
	}
}

/* Two instances nested in both orders: an inversion between instances,
 * whatever the kernel's annotations. It is proven only when both are
 * instances the trace saw initialised (lock_init): an address never
 * initialised in the trace may be freed memory reused by another object
 * between the two nestings (a dentry tree walked parent before child,
 * its dentries freed and reallocated), so there it is a note, made at the
 * end unless the class is reported as possible recursive locking. */
static void inversion_finding(struct analysis *a, uint64_t thread, int32_t tid, uint32_t cls, const struct nesting *other,
			      const struct site *held, const struct site *s, int proven, uint32_t count)
{
	int is_new;
	struct analysis_finding *f = finding_get(a, ANALYSIS_RECURSIVE_LOCKING, hash_mix(cls, 1 + !proven), &is_new);
	if (!f)
		return;
	f->count += count;
	if (!is_new)
		return;
	if (!proven)
		f->severity = ANALYSIS_SEV_NOTE;
	const char *cn = class_name(a, cls);
	char *who = thread_label(a, thread, tid), *first = thread_label(a, other->outer.thread, other->outer.tid);
	char w1[256], w2[256], w3[256], w4[256];
	finding_target(f, s);
	finding_step(a, f, "held", &other->outer, "%s acquired one %s (0x%" PRIx64 ") at %s", first ? first : "", cn,
		     other->outer.lock, where_of(a, &other->outer, w1, sizeof(w1)));
	finding_step(a, f, "acquire", &other->inner, "then the other (0x%" PRIx64 ") at %s", other->inner.lock,
		     where_of(a, &other->inner, w2, sizeof(w2)));
	finding_step(a, f, "held", held, "%s acquired 0x%" PRIx64 " first at %s", who ? who : "", held->lock,
		     where_of(a, held, w3, sizeof(w3)));
	finding_step(a, f, "acquire", s, "then 0x%" PRIx64 " at %s: the opposite order", s->lock,
		     where_of(a, s, w4, sizeof(w4)));
	finding_title(a, f, "two instances of %s nested in both orders%s", cn,
		      proven ? "" : " (not proven: no init seen, their memory may have been reused)");
	finding_explain(a, f,
			"Two locks of class %s were nested one way (%s, then %s) and the other way (%s, then %s). "
			"Instances of one class have no order of their own: when both paths run at once each "
			"holds the lock the other wants, an AB-BA deadlock between instances (lockdep reports "
			"this as 'possible recursive locking'). Take instances in a fixed order (by address, "
			"parent before child) on every path.%s",
			cn, w1, w2, w3, w4,
			proven ? ""
			       : " Neither lock was seen initialised, so the two orders may belong to different "
				 "objects at one address: declare the kernel's lock init function in the probe "
				 "(lock-init) to tell instances apart.");
	free(who);
	free(first);
}

static void instance_inversion(struct analysis *a, struct thread *t, uint32_t cls, const struct nesting *other,
			       const struct held *h, uint32_t inner, const struct site *s)
{
	struct lock_class *c = &a->classes[cls];
	if (a->locks[h->lock].inited && a->locks[inner].inited) {
		c->self_reported = 1;
		inversion_finding(a, t->addr, t->tid, cls, other, &h->acq, s, 1, 1);
	} else if (!c->inv_unproven++) {
		c->inv_other = *other;
		c->inv_held = h->acq;
		c->inv_at = *s;
		c->inv_thread = t->addr;
		c->inv_tid = t->tid;
	}
}

/* Remembers that h's instance was held when s's instance of the same class
 * was asked for. A nesting of an older generation at the same addresses
 * (the memory re-initialised since: another object) is replaced, and only
 * the other order between these very instances is an inversion. */
static void note_nesting(struct analysis *a, struct thread *t, uint32_t cls, const struct held *h, uint32_t inner,
			 const struct site *s)
{
	struct lock_class *c = &a->classes[cls];
	if (!c->self_nested++) {
		c->self_outer = h->acq;
		c->self_inner = *s;
	}
	uint32_t og = a->locks[h->lock].gen, ig = a->locks[inner].gen;
	uint64_t key = (uint64_t)h->lock << 32 | inner, back = (uint64_t)inner << 32 | h->lock;
	uint32_t idx, bidx;
	int known = u64map_get(&a->nesting_map, key, &idx);
	if (known && a->nestings[idx].outer_gen == og && a->nestings[idx].inner_gen == ig)
		return;
	if (u64map_get(&a->nesting_map, back, &bidx) && a->nestings[bidx].outer_gen == ig &&
	    a->nestings[bidx].inner_gen == og)
		instance_inversion(a, t, cls, &a->nestings[bidx], h, inner, s);
	if (!known) {
		if (grow((void **)&a->nestings, &a->cap_nestings, a->n_nestings + 1, sizeof(*a->nestings))) {
			fail(a, ANALYSIS_E_NOMEM);
			return;
		}
		idx = (uint32_t)a->n_nestings++;
		fail(a, u64map_put(&a->nesting_map, key, idx));
	}
	struct nesting *n = &a->nestings[idx];
	n->outer = h->acq;
	n->inner = *s;
	n->outer_gen = og;
	n->inner_gen = ig;
}

static void recursive_rule(struct analysis *a, enum analysis_kind kind, struct thread *t,
			   const struct held *h, const struct site *s)
{
	int is_new;
	struct analysis_finding *f = finding_get(a, kind, hash_mix(hash_mix(h->cls, h->acq.pc), s->pc), &is_new);
	if (!f)
		return;
	f->count++;
	if (!is_new)
		return;
	char *who = thread_label(a, t->addr, t->tid);
	const char *cn = class_name(a, h->cls);
	char w1[256], w2[256];
	where_of(a, &h->acq, w1, sizeof(w1));
	where_of(a, s, w2, sizeof(w2));
	finding_target(f, s);
	finding_step(a, f, "held", &h->acq, "%s acquired %s at %s", who ? who : "", cn, w1);
	if (kind == ANALYSIS_RECURSIVE_SPINLOCK) {
		finding_step(a, f, "try", s, "%s tries the same lock again at %s while holding it", who ? who : "", w2);
		finding_title(a, f, "recursive acquire of spinlock %s by %s", cn, who ? who : "");
		finding_explain(a, f,
				"%s tried to acquire %s at %s, the very lock it already holds (acquired at %s, "
				"event %" PRId64 "). A spinlock is not recursive: the second acquire waits for its "
				"own thread forever (Driver Verifier bugchecks 0xC4/0x0F). Release before "
				"re-acquiring, or split the function so the inner path runs with the lock held.",
				who ? who : "", cn, w2, w1, h->acq.id);
	} else {
		finding_step(a, f, "acquire", s, "%s acquires another %s at %s while holding the first", who ? who : "",
			     cn, w2);
		finding_title(a, f, "possible recursive locking: two instances of %s nested by %s", cn, who ? who : "");
		finding_explain(a, f,
				"%s holds a lock of class %s (taken at %s) and takes a second lock of the same class at "
				"%s (lockdep's 'possible recursive locking detected'). Two instances of one class have "
				"no order between them: another path nesting them the other way round deadlocks "
				"with this one. Give the inner one a nesting subclass when a real order exists (a "
				"parent before its child), or take them in a fixed order (by "
				"address) and tell the checker so.",
				who ? who : "", cn, w1, w2);
	}
	free(who);
}

/* Whether a read acquisition is recursive (does not wait behind a waiting
 * writer). Lockdep's rule for queued rwlocks: a reader in interrupt context
 * always gets in while readers hold the lock; a reader in process context
 * queues behind a waiting writer like any other waiter. */
static int recursive_read(const struct thread *t, const struct db_event *ev)
{
	return DB_LOCKOP_FLAVOR(ev->lockop) == DB_LF_READ && (ev->ctx != DB_CTX_PROCESS || in_interrupt(t));
}

/* A blocking attempt: the recursion rules and the dependencies into l. */
void graph_attempt(struct analysis *a, struct thread *t, struct lock *l, const struct db_event *ev,
		   const struct site *s)
{
	int flavor = DB_LOCKOP_FLAVOR(ev->lockop);
	int rec_read = recursive_read(t, ev);
	uint32_t li = (uint32_t)(l - a->locks), cls = held_class(a, l, ev);
	int64_t ctx = context_of(t);
	for (size_t i = t->n_held; i-- > 0;) {
		const struct held *h = &t->held[i];
		if (h->ctx != ctx || h->cls != cls)
			continue;
		if (rec_read && h->shared)
			break; /* recursive read: readers do not wait for readers */
		if (h->lock == li) {
			if (!is_sleeping_flavor(flavor))
				recursive_rule(a, ANALYSIS_RECURSIVE_SPINLOCK, t, h, s);
		} else {
			note_nesting(a, t, cls, h, li, s);
		}
		break;
	}
	add_edges(a, t, l, cls, rec_read, s);
}

struct held *graph_hold(struct analysis *a, struct thread *t, struct lock *l, const struct db_event *ev,
			const struct site *s)
{
	if (grow((void **)&t->held, &t->cap_held, t->n_held + 1, sizeof(*t->held))) {
		fail(a, ANALYSIS_E_NOMEM);
		return NULL;
	}
	int flavor = DB_LOCKOP_FLAVOR(ev->lockop);
	struct held *h = &t->held[t->n_held++];
	memset(h, 0, sizeof(*h));
	h->lock = (uint32_t)(l - a->locks);
	h->cls = held_class(a, l, ev);
	h->ctx = context_of(t);
	h->flavor = (uint8_t)flavor;
	h->irqop = (uint8_t)DB_LOCKOP_IRQ(ev->lockop);
	h->shared = flavor == DB_LF_READ || flavor == DB_LF_RWSEM_READ;
	h->trylock = (ev->flags & DB_F_TRY) != 0;
	h->old_irql = IRQL_UNKNOWN;
	h->acq = *s;
	l->acquired_once = 1;
	if (h->shared) {
		l->readers++;
	} else {
		l->holder = (uint32_t)(t - a->threads) + 1;
		l->depth = 1;
		l->acq = *s;
	}
	if (h->irqop == DB_LI_BH)
		t->bh_depth++;
	return h;
}

/* Where the kernel declares nesting subclasses, any unannotated nesting of
 * two instances of one class is lockdep's "possible recursive locking";
 * elsewhere an unproven inversion between instances is a note. */
void recursive_locking_finish(struct analysis *a)
{
	for (uint32_t c = 0; c < a->n_classes && !a->error; c++) {
		struct lock_class *lc = &a->classes[c];
		if (lc->inv_unproven && !lc->self_reported && !a->subclass_seen)
			inversion_finding(a, lc->inv_thread, lc->inv_tid, c, &lc->inv_other, &lc->inv_held, &lc->inv_at, 0,
					  lc->inv_unproven);
		if (!a->subclass_seen || !lc->self_nested || lc->self_reported)
			continue;
		struct thread *t = NULL;
		uint32_t ti;
		if (u64map_get(&a->thread_map, lc->self_inner.thread, &ti))
			t = &a->threads[ti];
		if (!t)
			continue;
		struct held h = {.cls = c, .acq = lc->self_outer};
		recursive_rule(a, ANALYSIS_RECURSIVE_LOCKING, t, &h, &lc->self_inner);
		int is_new;
		struct analysis_finding *f = finding_get(a, ANALYSIS_RECURSIVE_LOCKING,
							 hash_mix(hash_mix(c, lc->self_outer.pc), lc->self_inner.pc), &is_new);
		if (f)
			f->count = lc->self_nested;
	}
}

/* ---------------------------------------------------------------- cycles */

int graph_build(struct analysis *a, struct graph *g)
{
	g->start = calloc(a->n_classes + 1, sizeof(*g->start));
	g->order = malloc((a->n_edges + 1) * sizeof(*g->order));
	if (!g->start || !g->order)
		return ANALYSIS_E_NOMEM;
	for (size_t i = 0; i < a->n_edges; i++)
		g->start[a->edges[i].from + 1]++;
	for (size_t c = 0; c < a->n_classes; c++)
		g->start[c + 1] += g->start[c];
	size_t *fill = malloc((a->n_classes + 1) * sizeof(*fill));
	if (!fill)
		return ANALYSIS_E_NOMEM;
	memcpy(fill, g->start, (a->n_classes + 1) * sizeof(*fill));
	for (size_t i = 0; i < a->n_edges; i++)
		g->order[fill[a->edges[i].from]++] = (uint32_t)i;
	free(fill);
	return 0;
}

/* Strongly connected components (Tarjan, iterative): comp[c] for every
 * class. Only edges inside one component can be on a cycle. */
static int components(struct analysis *a, const struct graph *g, uint32_t *comp)
{
	size_t n = a->n_classes;
	uint32_t *index = malloc((n + 1) * sizeof(*index)), *low = malloc((n + 1) * sizeof(*low));
	uint32_t *stack = malloc((n + 1) * sizeof(*stack)), *cs_node = malloc((n + 1) * sizeof(*cs_node));
	size_t *cs_edge = malloc((n + 1) * sizeof(*cs_edge));
	uint8_t *on = calloc(n + 1, 1);
	int rc = (!index || !low || !stack || !cs_node || !cs_edge || !on) ? ANALYSIS_E_NOMEM : 0;
	uint32_t next = 0, ncomp = 0;
	size_t sp = 0, csp = 0;
	for (size_t c = 0; !rc && c < n; c++)
		index[c] = UINT32_MAX;
	for (uint32_t root = 0; !rc && root < n; root++) {
		if (index[root] != UINT32_MAX)
			continue;
		index[root] = low[root] = next++;
		stack[sp++] = root;
		on[root] = 1;
		cs_node[csp] = root;
		cs_edge[csp++] = g->start[root];
		while (csp) {
			uint32_t v = cs_node[csp - 1];
			size_t k = cs_edge[csp - 1];
			if (k < g->start[v + 1]) {
				cs_edge[csp - 1]++;
				uint32_t w = a->edges[g->order[k]].to;
				if (index[w] == UINT32_MAX) {
					index[w] = low[w] = next++;
					stack[sp++] = w;
					on[w] = 1;
					cs_node[csp] = w;
					cs_edge[csp++] = g->start[w];
				} else if (on[w] && index[w] < low[v]) {
					low[v] = index[w];
				}
				continue;
			}
			if (low[v] == index[v]) {
				uint32_t x;
				do {
					x = stack[--sp];
					on[x] = 0;
					comp[x] = ncomp;
				} while (x != v);
				ncomp++;
			}
			if (--csp && low[v] < low[cs_node[csp - 1]])
				low[cs_node[csp - 1]] = low[v];
		}
	}
	free(index);
	free(low);
	free(stack);
	free(cs_node);
	free(cs_edge);
	free(on);
	return rc;
}

/* A class whose instances nest in each other in a kernel without nesting
 * annotations (a tree of objects locked parent before child: device locks,
 * page-table locks): which instance comes first is unknown, so a cycle
 * through it may be no cycle between instances. Lockdep only knows through
 * the annotations such a kernel compiled out; we leave those cycles out. */
static int hierarchical(const struct analysis *a, uint32_t cls)
{
	return !a->subclass_seen && a->classes[cls].self_nested;
}

/* BFS state: class * 2 + (arrived by a recursive-read acquisition). */
struct search {
	uint32_t *via_edge, *via_prev, *queue;
	uint32_t *path;
};

/* The shortest cycle closing edge i (in i's component) that is not broken by
 * a recursive read; writes its edges (i first) into s->path, returns the
 * length or 0. */
static size_t shortest_cycle(struct analysis *a, const struct graph *g, const uint32_t *comp, struct search *s,
			     uint32_t i)
{
	const struct edge *first = &a->edges[i];
	size_t best = 0;
	for (int t0 = 0; t0 < 4; t0++) {
		if (!(first->types & (1u << t0)))
			continue;
		int fs0 = t0 >> 1, tr0 = t0 & 1;
		uint32_t start = first->to * 2 + (uint32_t)tr0, goal = UINT32_MAX;
		size_t head = 0, tail = 0;
		s->queue[tail++] = start;
		s->via_edge[start] = UINT32_MAX - 1;
		while (head < tail && goal == UINT32_MAX) {
			uint32_t st = s->queue[head++], c = st / 2, r = st % 2;
			for (size_t k = g->start[c]; k < g->start[c + 1] && goal == UINT32_MAX; k++) {
				uint32_t e = g->order[k];
				const struct edge *ed = &a->edges[e];
				if (comp[ed->to] != comp[first->from] || hierarchical(a, ed->to))
					continue;
				for (int ty = 0; ty < 4; ty++) {
					int fs = ty >> 1, tr = ty & 1;
					if (!(ed->types & (1u << ty)) || (r && fs))
						continue;
					uint32_t ns = ed->to * 2 + (uint32_t)tr;
					if (s->via_edge[ns] != UINT32_MAX)
						continue;
					s->via_edge[ns] = e;
					s->via_prev[ns] = st;
					s->queue[tail++] = ns;
					if (ed->to == first->from && !(tr && fs0)) {
						goal = ns;
						break;
					}
				}
			}
		}
		if (goal != UINT32_MAX) {
			size_t len = 1;
			for (uint32_t st = goal; st != start; st = s->via_prev[st])
				len++;
			if (!best || len < best) {
				best = len;
				s->path[0] = i;
				size_t at = len;
				for (uint32_t st = goal; st != start; st = s->via_prev[st])
					s->path[--at] = s->via_edge[st];
			}
		}
		for (size_t q = 0; q < tail; q++)
			s->via_edge[s->queue[q]] = UINT32_MAX;
	}
	return best;
}

struct cycle {
	size_t off, len;
	int64_t last; /* the newest acquisition of the cycle: its culprit */
};

static int cycle_cmp(const void *x, const void *y)
{
	const struct cycle *p = x, *q = y;
	if (p->len != q->len)
		return p->len < q->len ? -1 : 1;
	return p->last < q->last ? -1 : p->last > q->last;
}

static int u32_cmp(const void *x, const void *y)
{
	uint32_t p = *(const uint32_t *)x, q = *(const uint32_t *)y;
	return p < q ? -1 : p > q;
}

/* A key for the set of x[0..n): sorted, hashed. */
static uint64_t set_key(uint32_t *tmp, const uint32_t *x, size_t n)
{
	memcpy(tmp, x, n * sizeof(*x));
	qsort(tmp, n, sizeof(*tmp), u32_cmp);
	uint64_t key = n;
	for (size_t i = 0; i < n; i++)
		key = hash_mix(key, tmp[i]);
	return key;
}

static struct analysis_finding *report_cycle(struct analysis *a, const uint32_t *cyc, size_t n, uint64_t key)
{
	/* Told from the oldest acquisition's class on, like lockdep's chain. */
	size_t r = 0, last = 0;
	for (size_t i = 1; i < n; i++) {
		if (a->edges[cyc[i]].held.id < a->edges[cyc[r]].held.id)
			r = i;
		if (a->edges[cyc[i]].acq.id > a->edges[cyc[last]].acq.id)
			last = i;
	}
	int is_new;
	struct analysis_finding *f = finding_get(a, ANALYSIS_LOCK_ORDER, key, &is_new);
	if (!f || !is_new)
		return f;
	f->count = 1;
	size_t len = 1;
	int guessed = 1;
	for (size_t i = 0; i < n; i++) {
		len += strlen(class_name(a, a->edges[cyc[i]].from)) + 4;
		guessed &= a->classes[a->edges[cyc[i]].from].by_caller;
	}
	if (guessed)
		f->severity = ANALYSIS_SEV_NOTE;
	char *chain = malloc(len + strlen(class_name(a, a->edges[cyc[r]].from)) + 1);
	if (!chain) {
		fail(a, ANALYSIS_E_NOMEM);
		return NULL;
	}
	chain[0] = 0;
	for (size_t i = 0; i < n; i++) {
		const struct edge *e = &a->edges[cyc[(r + i) % n]];
		strcat(chain, class_name(a, e->from));
		strcat(chain, " -> ");
		char *who = thread_label(a, e->acq.thread, e->acq.tid), *held_by = thread_label(a, e->held.thread, e->held.tid);
		char w1[256], w2[256];
		finding_step(a, f, "held", &e->held, "%s acquired %s at %s", held_by ? held_by : "",
			     class_name(a, e->from), where_of(a, &e->held, w1, sizeof(w1)));
		finding_step(a, f, "acquire", &e->acq, "%s then asked for %s at %s while holding %s", who ? who : "",
			     class_name(a, e->to), where_of(a, &e->acq, w2, sizeof(w2)), class_name(a, e->from));
		free(who);
		free(held_by);
	}
	strcat(chain, class_name(a, a->edges[cyc[r]].from));
	finding_target(f, &a->edges[cyc[last]].acq);
	finding_title(a, f, "possible circular locking dependency: %s%s", chain,
		      guessed ? " (not proven: classes named by their first callers, no init seen)" : "");
	finding_explain(a, f,
			"The lock classes %s are acquired in orders that form a cycle: each step above took the "
			"second lock while holding the first. When these paths run at the same time each waits for "
			"a lock the next one holds and they deadlock, even if this run did not (lockdep's 'possible "
			"circular locking dependency'). Pick one order for these locks and take them in that order "
			"on every path. count says how many other cycles through the same dependencies (variants "
			"of this inversion) the graph holds.%s",
			chain,
			guessed ? " None of these locks has a symbol or was seen initialised, so each class is only "
				  "the call site that first took one of its locks: one real class can be split in two "
				  "(a parent and a child object of one kind, nested in a fixed order, look like an "
				  "inversion) and unrelated locks taken at one site merged. Declare the kernel's lock "
				  "init function in the probe (lock-init) to name the classes by init site."
				: "");
	free(chain);
	return f;
}

int lock_order_cycles(struct analysis *a)
{
	if (!a->n_edges)
		return 0;
	size_t n = a->n_classes;
	struct graph g = {0};
	struct search s = {0};
	struct cycle *cycles = NULL;
	uint32_t *buf = NULL, *tmp = NULL, *owner = NULL, *found = NULL;
	size_t n_cycles = 0, cap_cycles = 0, n_buf = 0, cap_buf = 0;
	struct u64map seen = {0}, sets = {0};
	uint32_t *comp = malloc((n + 1) * sizeof(*comp));
	s.via_edge = malloc((2 * n + 2) * sizeof(*s.via_edge));
	s.via_prev = malloc((2 * n + 2) * sizeof(*s.via_prev));
	s.queue = malloc((2 * n + 2) * sizeof(*s.queue));
	s.path = malloc((2 * n + 2) * sizeof(*s.path));
	tmp = malloc((2 * n + 2) * sizeof(*tmp));
	owner = calloc(a->n_edges, sizeof(*owner));
	int rc = (!comp || !s.via_edge || !s.via_prev || !s.queue || !s.path || !tmp || !owner) ? ANALYSIS_E_NOMEM
												 : graph_build(a, &g);
	if (!rc)
		rc = components(a, &g, comp);
	for (size_t c = 0; !rc && c < 2 * n + 2; c++)
		s.via_edge[c] = UINT32_MAX;
	/* Every edge inside a component: its shortest cycle, once per distinct cycle. */
	for (uint32_t i = 0; !rc && i < a->n_edges; i++) {
		const struct edge *e = &a->edges[i];
		if (comp[e->from] != comp[e->to] || hierarchical(a, e->from) || hierarchical(a, e->to))
			continue;
		size_t len = shortest_cycle(a, &g, comp, &s, i);
		if (!len)
			continue;
		uint64_t key = set_key(tmp, s.path, len);
		uint32_t dummy;
		if (u64map_get(&seen, key, &dummy))
			continue;
		if (u64map_put(&seen, key, 1) || grow((void **)&buf, &cap_buf, n_buf + len, sizeof(*buf)) ||
		    grow((void **)&cycles, &cap_cycles, n_cycles + 1, sizeof(*cycles))) {
			rc = ANALYSIS_E_NOMEM;
			break;
		}
		struct cycle *cy = &cycles[n_cycles++];
		cy->off = n_buf;
		cy->len = len;
		cy->last = 0;
		for (size_t k = 0; k < len; k++) {
			buf[n_buf + k] = s.path[k];
			if (a->edges[s.path[k]].acq.id > cy->last)
				cy->last = a->edges[s.path[k]].acq.id;
		}
		n_buf += len;
	}
	if (!rc && n_cycles)
		qsort(cycles, n_cycles, sizeof(*cycles), cycle_cmp);
	found = calloc(n_cycles + 1, sizeof(*found));
	if (!found)
		rc = ANALYSIS_E_NOMEM;
	/* Shortest first; a cycle sharing a dependency or its class set with one
	 * already reported is a variant of it. */
	size_t n_found = 0;
	for (size_t c = 0; !rc && c < n_cycles && !a->error; c++) {
		const uint32_t *cyc = buf + cycles[c].off;
		size_t len = cycles[c].len;
		uint32_t of = 0;
		for (size_t k = 0; k < len && !of; k++)
			of = owner[cyc[k]];
		for (size_t k = 0; k < len; k++)
			tmp[k] = a->edges[cyc[k]].from;
		uint64_t ckey = set_key(tmp + len, tmp, len);
		if (!of && u64map_get(&sets, ckey, &of))
			of++;
		if (of) {
			a->findings[found[of - 1]].count++;
			continue;
		}
		struct analysis_finding *f = report_cycle(a, cyc, len, ckey);
		if (!f)
			break;
		found[n_found++] = (uint32_t)(f - a->findings);
		for (size_t k = 0; k < len; k++)
			owner[cyc[k]] = (uint32_t)n_found;
		if (u64map_put(&sets, ckey, (uint32_t)n_found - 1))
			rc = ANALYSIS_E_NOMEM;
	}
	free(g.start);
	free(g.order);
	free(comp);
	free(s.via_edge);
	free(s.via_prev);
	free(s.queue);
	free(s.path);
	free(tmp);
	free(owner);
	free(found);
	free(cycles);
	free(buf);
	u64map_free(&seen);
	u64map_free(&sets);
	return rc ? rc : a->error;
}
