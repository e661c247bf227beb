/*
 * finish.c - the checks decided when the trace ends: lock-order cycles over
 * the class graph, irq-unsafe lock classes, missing EOIs per vector, the
 * hang diagnosis (spinners, wait-for cycles, causal chain), and the state
 * left at exit.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/internal.h"

/* ---------------------------------------------------------------- lock order */

struct graph {
	size_t *start; /* CSR: edges from class c are order[start[c] .. start[c+1]) */
	uint32_t *order;
};

static int graph_build(struct analysis *a, struct graph *g)
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

/* Shortest path of edges from class src to class dst (BFS inside their
 * component); writes edge indexes into path (from src), returns its length
 * or 0 if none. via must be all UINT32_MAX on entry and is left so. */
static size_t shortest_path(struct analysis *a, const struct graph *g, const uint32_t *comp, uint32_t src,
			    uint32_t dst, uint32_t *via, uint32_t *queue, uint32_t *path)
{
	size_t head = 0, tail = 0;
	queue[tail++] = src;
	via[src] = UINT32_MAX - 1;
	while (head < tail) {
		uint32_t c = queue[head++];
		if (c == dst)
			break;
		for (size_t k = g->start[c]; k < g->start[c + 1]; k++) {
			uint32_t e = g->order[k], n = a->edges[e].to;
			if (via[n] != UINT32_MAX || comp[n] != comp[src])
				continue;
			via[n] = e;
			queue[tail++] = n;
		}
	}
	size_t len = 0;
	if (via[dst] != UINT32_MAX) {
		for (uint32_t c = dst; c != src; c = a->edges[via[c]].from)
			len++;
		size_t i = len;
		for (uint32_t c = dst; c != src; c = a->edges[via[c]].from)
			path[--i] = via[c];
	}
	for (size_t i = 0; i < tail; i++)
		via[queue[i]] = UINT32_MAX;
	return len;
}

static void report_cycle(struct analysis *a, const uint32_t *cyc, size_t n)
{
	/* Canonical form: rotation starting at the smallest class. */
	size_t r = 0;
	for (size_t i = 1; i < n; i++)
		if (a->edges[cyc[i]].from < a->edges[cyc[r]].from)
			r = i;
	uint64_t key = 0;
	size_t last = 0;
	for (size_t i = 0; i < n; i++) {
		const struct edge *e = &a->edges[cyc[(r + i) % n]];
		key = hash_mix(key, e->from);
		if (e->acq.id > a->edges[cyc[last]].acq.id)
			last = (r + i) % n;
	}
	int is_new;
	struct analysis_finding *f = finding_get(a, ANALYSIS_LOCK_ORDER, key, &is_new);
	if (!f || !is_new)
		return;
	f->count = 1;
	size_t len = 1;
	for (size_t i = 0; i < n; i++)
		len += strlen(class_name(a, a->edges[cyc[i]].from)) + 4;
	char *chain = malloc(len + strlen(class_name(a, a->edges[cyc[r]].from)) + 1);
	if (!chain) {
		a->error = ANALYSIS_E_NOMEM;
		return;
	}
	chain[0] = 0;
	for (size_t i = 0; i < n; i++) {
		const struct edge *e = &a->edges[cyc[(r + i) % n]];
		strcat(chain, class_name(a, e->from));
		strcat(chain, " -> ");
		char *who = thread_label(a, e->acq.thread);
		char *held_by = thread_label(a, e->held.thread);
		finding_step(a, f, "held", &e->held, "%s acquired %s", held_by ? held_by : "", class_name(a, e->from));
		finding_step(a, f, "acquire", &e->acq, "%s asked for %s while holding %s (IRQL %d)", who ? who : "",
			     class_name(a, e->to), class_name(a, e->from), e->acq.irql);
		free(who);
		free(held_by);
	}
	strcat(chain, class_name(a, a->edges[cyc[r]].from));
	finding_target(f, &a->edges[cyc[last]].acq);
	finding_title(a, f, "lock order cycle: %s", chain);
	finding_explain(a, f,
			"The lock classes %s are acquired in an order that forms a cycle: each step above took "
			"the second lock while holding the first. If the threads involved run these paths at the "
			"same time each waits for a lock the next one holds and they deadlock, even though this run "
			"did not (lockdep's 'possible circular locking dependency'). Pick one global order for "
			"these locks and acquire them in that order on every path.",
			chain);
	free(chain);
}

static int lock_order_cycles(struct analysis *a)
{
	if (!a->n_edges)
		return 0;
	struct graph g = {0};
	uint32_t *via = malloc((a->n_classes + 1) * sizeof(*via));
	uint32_t *queue = malloc((a->n_classes + 1) * sizeof(*queue));
	uint32_t *path = malloc((a->n_classes + 2) * sizeof(*path));
	uint32_t *comp = malloc((a->n_classes + 1) * sizeof(*comp));
	int rc = (!via || !queue || !path || !comp) ? ANALYSIS_E_NOMEM : graph_build(a, &g);
	if (!rc)
		rc = components(a, &g, comp);
	for (size_t c = 0; !rc && c < a->n_classes; c++)
		via[c] = UINT32_MAX;
	for (size_t i = 0; !rc && i < a->n_edges && !a->error; i++) {
		const struct edge *e = &a->edges[i];
		if (comp[e->from] != comp[e->to])
			continue;
		/* Cycle through edge i: i, then the shortest way back. */
		size_t n = shortest_path(a, &g, comp, e->to, e->from, via, queue, path + 1);
		if (!n)
			continue;
		path[0] = (uint32_t)i;
		report_cycle(a, path, n + 1);
	}
	free(g.start);
	free(g.order);
	free(via);
	free(queue);
	free(path);
	free(comp);
	return rc ? rc : a->error;
}

/* ---------------------------------------------------------------- irq safety */

static void irq_unsafe_classes(struct analysis *a)
{
	for (uint32_t c = 0; c < a->n_classes && !a->error; c++) {
		const struct lock_class *lc = &a->classes[c];
		if (lc->irq_irql <= IRQL_DISPATCH || lc->min_irql >= lc->irq_irql)
			continue;
		int is_new;
		struct analysis_finding *f = finding_get(a, ANALYSIS_IRQ_UNSAFE_LOCK, c, &is_new);
		if (!f)
			return;
		f->count = 1;
		char *in = thread_label(a, lc->irq_site.thread), *out = thread_label(a, lc->min_site.thread);
		finding_target(f, lc->irq_site.id > lc->min_site.id ? &lc->irq_site : &lc->min_site);
		const struct site *first = lc->irq_site.id < lc->min_site.id ? &lc->irq_site : &lc->min_site;
		const struct site *second = first == &lc->irq_site ? &lc->min_site : &lc->irq_site;
		for (int k = 0; k < 2; k++) {
			const struct site *s = k ? second : first;
			if (s == &lc->irq_site)
				finding_step(a, f, "acquire", s, "%s acquired in interrupt 0x%x at IRQL %d on %s", lc->name,
					     s->vector, lc->irq_irql, in ? in : "");
			else
				finding_step(a, f, "acquire", s, "%s acquired at IRQL %d on %s", lc->name, lc->min_irql,
					     out ? out : "");
		}
		finding_title(a, f, "%s taken in an interrupt at IRQL %d and elsewhere at IRQL %d", lc->name,
			      lc->irq_irql, lc->min_irql);
		finding_explain(a, f,
				"%s is acquired inside an interrupt handler at IRQL %d and also held elsewhere at IRQL "
				"%d, which that interrupt can preempt. If the interrupt arrives on the CPU that holds "
				"the lock, its handler spins forever on a lock its own CPU holds (lockdep's "
				"'inconsistent {IN-HARDIRQ} -> {HARDIRQ-ON} usage'). Every acquisition outside the "
				"handler must first raise to IRQL %d (an interrupt spinlock / KeSynchronizeExecution), "
				"or the handler must not take the lock (queue a DPC instead).",
				lc->name, lc->irq_irql, lc->min_irql, lc->irq_irql);
		free(in);
		free(out);
	}
}

/* ---------------------------------------------------------------- EOI */

/* Whether vector v's returns without EOI are a bug. Vectors 0x20-0x2f are
 * where NT puts its software interrupts (APC, DPC), raised with `int` and
 * never EOI'd; a vector EOI'd on other deliveries needs one on all; a
 * device-range vector (>= 0x30) needs one when the tracer shows it sees
 * EOIs at all, or when the run hung right after it returned without one. */
static int needs_eoi(const struct analysis *a, int v, int hung)
{
	const struct vector_stats *vs = &a->vectors[v];
	if (!vs->without_eoi)
		return 0;
	if (vs->with_eoi)
		return 1;
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
		char *who = thread_label(a, vs->first_noeoi_trap.thread);
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

/* The thread t waits for (holder of the lock it spins on, or of the mutex it
 * waits for), as index + 1; 0 if none. */
static uint32_t waits_for(const struct analysis *a, const struct thread *t)
{
	if (t->has_try)
		return a->locks[t->try_lock].holder;
	uint32_t li;
	if (t->has_wait && u64map_get(&a->lock_map, t->wait_obj, &li) && a->locks[li].is_mutex)
		return a->locks[li].holder;
	return 0;
}

/* Adds to c why thread t is stuck: the acquisition of what it waits for and
 * the frames and switches that brought it there. */
static void explain_stuck(struct analysis *a, struct chain *c, struct thread *t)
{
	char *who = thread_label(a, t->addr);
	const struct lock *l = NULL;
	uint32_t li;
	if (t->has_try)
		l = &a->locks[t->try_lock];
	else if (t->has_wait && u64map_get(&a->lock_map, t->wait_obj, &li))
		l = &a->locks[li];
	if (l && l->holder) {
		char *owner = thread_label(a, a->threads[l->holder - 1].addr);
		chain_add(a, c, "held", &l->acq,
			  xasprintf(a, "%s acquired %s (IRQL %d)", owner ? owner : "", class_name(a, l->cls), l->acq.irql));
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
	if (t->has_try)
		chain_add(a, c, "spin", &t->try_site,
			  xasprintf(a, "%s spins on %s (IRQL %d) and never gets it", who ? who : "",
				    class_name(a, a->locks[t->try_lock].cls), t->try_site.irql));
	else if (t->has_wait)
		chain_add(a, c, "wait", &t->wait_site,
			  xasprintf(a, "%s waits on %s%s and never returns", who ? who : "", l ? "mutex " : "object ",
				    l ? class_name(a, l->cls) : ""));
	free(who);
}

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
	size_t n = 0;
	for (size_t i = 0; i < a->n_threads; i++)
		if (a->threads[i].last.id)
			order[n++] = &a->threads[i];
	qsort(order, n, sizeof(*order), cmp_last);
	for (size_t i = 0; i < n && i < 16; i++) {
		char *who = thread_label(a, order[i]->addr);
		chain_add(a, c, "last", &order[i]->last, xasprintf(a, "last event of %s", who ? who : ""));
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
		char *who = thread_label(a, focus->addr);
		const struct lock *l = NULL;
		uint32_t li;
		if (focus->has_try)
			l = &a->locks[focus->try_lock];
		else if (focus->has_wait && u64map_get(&a->lock_map, focus->wait_obj, &li))
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
				why = xasprintf(a,
						"%s held %s at IRQL %d (event %" PRId64 ") when interrupt 0x%x arrived; "
						"its handler tried the same lock and spins forever, because the holder it "
						"waits for is the code it interrupted on the same CPU. A lock taken in an "
						"interrupt handler must be held elsewhere only at that interrupt's IRQL or "
						"higher (see the irq-unsafe-lock finding).",
						who ? who : "", cn, h->acq.irql, h->acq.id, vec);
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
				len += 128;
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
				if (!tl && u64map_get(&a->lock_map, t->wait_obj, &li))
					tl = &a->locks[li];
				char *tn = thread_label(a, t->addr), *on = thread_label(a, o->addr);
				size_t at = strlen(desc);
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
			char *owner = thread_label(a, a->threads[l->holder - 1].addr);
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
		if (!l->holder || (l->is_mutex && normal_end))
			continue;
		int is_new;
		struct analysis_finding *f =
			finding_get(a, ANALYSIS_LOCK_HELD_AT_EXIT, hash_mix(l->cls, l->acq.pc), &is_new);
		if (!f)
			return;
		f->count++;
		if (!is_new)
			continue;
		char *owner = thread_label(a, a->threads[l->holder - 1].addr);
		const char *what = l->is_mutex ? "mutex" : "spinlock";
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
		char *who = thread_label(a, t->addr);
		uint32_t li;
		const char *cn = u64map_get(&a->lock_map, t->wait_obj, &li) ? class_name(a, a->locks[li].cls) : "";
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

int finish_checks(struct analysis *a, const char *outcome, int *hung)
{
	static const char *const normal[] = {"pass", "fail", "bugcheck", "completed", NULL};
	static const char *const hanging[] = {"hang", "timeout", NULL};
	int normal_end = is_outcome(outcome, normal);
	*hung = 0;
	int rc = lock_order_cycles(a);
	if (rc)
		return rc;
	irq_unsafe_classes(a);
	missing_eoi(a, is_outcome(outcome, hanging));
	if (!normal_end)
		hang(a, is_outcome(outcome, hanging), hung);
	at_exit(a, normal_end, *hung);
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
