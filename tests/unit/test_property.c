/*
 * test_property.c - seeded random event streams with known ground truth.
 *
 * A generator plays a small NT-like machine: threads on one CPU switching at
 * DISPATCH_LEVEL (the switch restoring each thread's IRQL), spinlocks taken
 * in one global order (raising and at-DISPATCH acquires, as the probe
 * declares them), interrupts that nest by priority and take only their own
 * interrupt locks, mutexes in order, raise/lower pairs, waits, reverse-order
 * trylocks (which order nothing), and dynamic locks classed by their call
 * site, nested with a subclass. Half of the cases carry schema-2 context
 * and IF (hardirq inside interrupts, IF on) so irq usage is judged from ctx,
 * the other half only IRQL (the legacy view). Into that clean stream it
 * plants problems at random points: a lock-order inversion, a lower call
 * raising, a raise call lowering, an interrupt lock held below its
 * interrupt's IRQL, an interrupt lock ordered before a lock held at
 * DISPATCH (irq-safe -> irq-unsafe), two instances of one class nested, an
 * IRQL leaked across a switch, a wait at DISPATCH_LEVEL; a quarter of the
 * runs end hung on a recursive spinlock. The analyses must find exactly the
 * planted kinds, with the planted lock classes, and nothing else.
 *
 * KREWIND_SEED=N picks the seed (default fixed); KREWIND_CASES=N the number of
 * cases. A failure prints the seed and case to reproduce it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "analysis/analysis.h"

enum {
	PC_LOWER = 0x1000, PC_RAISE = 0x1100, PC_SPIN = 0x1200, PC_SPINDPC = 0x1300, PC_REL = 0x1400,
	PC_SWAP = 0x1500, PC_WAIT = 0x1600, PC_MUTEX = 0x1700, PC_MUTREL = 0x1800, PC_ISR = 0x1900,
	PC_EOI = 0x1a00, PC_WORK = 0x2000,
};
static const struct {
	uint64_t addr;
	const char *name;
} syms[] = {
	{PC_LOWER, "KeLowerIrql"}, {PC_RAISE, "KeRaiseIrql"}, {PC_SPIN, "KeAcquireSpinLockRaiseToDpc"},
	{PC_SPINDPC, "KeAcquireSpinLockAtDpcLevel"}, {PC_REL, "KeReleaseSpinLock"}, {PC_SWAP, "KiSwapContext"},
	{PC_WAIT, "KeWaitForSingleObject"}, {PC_MUTEX, "KiSatisfyMutexWait"}, {PC_MUTREL, "KeReleaseMutex"},
	{PC_ISR, "KiInterrupt"}, {PC_EOI, "HalEndOfInterrupt"}, {PC_WORK, "Worker"},
};

#define N_SPIN 6
#define N_MUTEX 3
#define SPIN_ADDR(i) (0x5000u + 0x10u * (unsigned)(i))
#define ISR_ADDR(i) (0x6000u + 0x10u * (unsigned)(i))
#define MUTEX_ADDR(i) (0x7000u + 0x10u * (unsigned)(i))
#define EVENT_ADDR 0x8000u
#define DYN_SITES 3
#define DYN_PER_SITE 3
/* Dynamic locks: no name; each instance is first taken at its site's call
 * site, so its class is that site. */
#define DYN_ADDR(site, k) (0x9000u + 0x100u * (unsigned)(site) + 0x10u * (unsigned)(k))
#define DYN_CALLER(site) (PC_WORK + 0x10u * ((unsigned)(site) + 1))
#define RAISE_OP DB_LOCKOP(DB_LF_SPIN, DB_LI_RAISE_DISPATCH, 0)
#define ATDPC_OP DB_LOCKOP(DB_LF_SPIN, DB_LI_AT_DISPATCH, 0)
#define THREAD_ADDR(i) (0x100u * ((unsigned)(i) + 1))
#define MAX_THREADS 4

/* Interrupt vectors and the interrupt lock each one takes. */
static const int vectors[2] = {0xb1, 0xd1};

static char *symbolize(void *ctx, uint64_t pc, char *buf, size_t size)
{
	(void)ctx;
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++)
		if (pc >= syms[i].addr && pc < syms[i].addr + 0x100) {
			snprintf(buf, size, "%s+0x%x", syms[i].name, (unsigned)(pc - syms[i].addr));
			return buf;
		}
	snprintf(buf, size, "0x%llx", (unsigned long long)pc);
	return buf;
}

struct names_ctx {
	char buf[32];
};

static const char *lock_class(void *ctx, uint64_t lock)
{
	struct names_ctx *n = ctx;
	if (lock >= 0x5000 && lock < 0x6000)
		snprintf(n->buf, sizeof(n->buf), "Spin%u", (unsigned)((lock - 0x5000) / 0x10));
	else if (lock >= 0x6000 && lock < 0x7000)
		snprintf(n->buf, sizeof(n->buf), "Isr%u", (unsigned)((lock - 0x6000) / 0x10));
	else if (lock >= 0x7000 && lock < 0x8000)
		snprintf(n->buf, sizeof(n->buf), "Mutex%u", (unsigned)((lock - 0x7000) / 0x10));
	else
		return NULL;
	return n->buf;
}

/* ---------------------------------------------------------------- generator */

struct gen {
	uint64_t rng;
	struct analysis *a;
	int64_t id;
	int cur;                   /* current thread */
	int n_threads;
	int irql;                  /* CR8 */
	int saved[MAX_THREADS];    /* IRQL each thread left at, -1 never ran */
	int waited[MAX_THREADS];   /* it left blocked in a wait (saved = the wait's IRQL) */
	int wait_end;              /* this case's tracer records wait_end events */
	int planted[ANALYSIS_KIND_MAX + 1];
	int order_i, order_j;      /* the inverted spinlock classes */
	int unsafe_isr;            /* the interrupt lock held too low */
	int safe_isr, unsafe_spin; /* the irq-safe -> irq-unsafe pair */
	int rec_site;              /* the class nested with itself */
	int schema2;               /* events carry ctx and IF */
	int in_irq;                /* interrupt nesting depth */
	uint16_t op;               /* lockop of the next lock events */
	uint64_t caller;           /* caller of the next lock events */
	uint8_t try_flag;          /* DB_F_TRY on the next lock events */
};

static uint32_t rnd(struct gen *g, uint32_t n)
{
	g->rng ^= g->rng << 13;
	g->rng ^= g->rng >> 7;
	g->rng ^= g->rng << 17;
	return (uint32_t)((g->rng >> 11) % n);
}

static int is_lock_kind(int kind)
{
	return kind == DB_LOCK_TRY || kind == DB_LOCK_ACQ || kind == DB_LOCK_REL || kind == DB_LOCK_FAIL;
}

static void emit(struct gen *g, int kind, uint64_t pc, uint64_t obj, int64_t a, int64_t b)
{
	/* The probe declares the raise and lower calls (obj 1 / 2). */
	if (kind == DB_IRQL)
		obj = pc >= PC_RAISE && pc < PC_RAISE + 0x100 ? 1 : pc >= PC_LOWER && pc < PC_LOWER + 0x100 ? 2 : 0;
	struct db_event e = {
		.id = ++g->id,
		.icount = (uint64_t)g->id * 7,
		.pc = pc,
		.thread = THREAD_ADDR(g->cur),
		.obj = obj,
		.a = a,
		.b = b,
		.kind = (uint8_t)kind,
		.preempt = -1,
		.tid = -1,
	};
	if (is_lock_kind(kind)) {
		e.lockop = kind == DB_LOCK_REL ? 0 : g->op;
		e.caller = g->caller;
		e.flags = g->try_flag;
	}
	if (g->schema2) {
		e.flags |= DB_F_IF;
		e.ctx = g->in_irq ? DB_CTX_HARDIRQ : DB_CTX_PROCESS;
	}
	assert_int_equal(analysis_feed(g->a, &e), 0);
	if (kind == DB_IRQL)
		g->irql = (int)b;
}

static void raise_to(struct gen *g, int to)
{
	emit(g, DB_IRQL, PC_RAISE + 8, 0, g->irql, to);
}

static void lower_to(struct gen *g, int to)
{
	emit(g, DB_IRQL, PC_LOWER + 8, 0, g->irql, to);
}

/* A raising acquire of addr from the current IRQL (<= DISPATCH). */
static void spin_acquire_op(struct gen *g, uint64_t addr, uint16_t op, uint64_t caller)
{
	g->op = op;
	g->caller = caller;
	emit(g, DB_LOCK_TRY, PC_SPIN, addr, g->irql, 0);
	if (g->irql < 2)
		emit(g, DB_IRQL, PC_SPIN + 0x10, 0, g->irql, 2);
	emit(g, DB_LOCK_ACQ, PC_SPIN + 0x20, addr, g->irql, 3);
	g->op = 0;
	g->caller = 0;
}

static void spin_acquire(struct gen *g, uint64_t addr)
{
	spin_acquire_op(g, addr, RAISE_OP, 0);
}

static void spin_release(struct gen *g, uint64_t addr, int to)
{
	emit(g, DB_LOCK_REL, PC_REL, addr, g->irql, 0);
	if (to != g->irql)
		emit(g, DB_IRQL, PC_REL + 0x10, 0, g->irql, to);
}

static void dpc_acquire(struct gen *g, uint64_t addr)
{
	g->op = ATDPC_OP;
	emit(g, DB_LOCK_TRY, PC_SPINDPC, addr, g->irql, 0);
	emit(g, DB_LOCK_ACQ, PC_SPINDPC + 0x20, addr, g->irql, 1);
	g->op = 0;
}

static void dpc_release(struct gen *g, uint64_t addr)
{
	emit(g, DB_LOCK_REL, PC_REL + 0x40, addr, g->irql, 0);
}

/* An interrupt of vectors[v] (if it can be delivered at the current IRQL),
 * possibly taking its interrupt lock, possibly nesting a higher one. */
static void interrupt(struct gen *g, int v, int depth)
{
	int level = vectors[v] >> 4;
	if (level <= g->irql)
		return;
	int before = g->irql;
	emit(g, DB_TRAP, PC_ISR, 0, vectors[v], 0);
	g->in_irq++;
	emit(g, DB_IRQL, PC_ISR + 8, 0, before, level);
	int take = rnd(g, 2);
	if (take)
		dpc_acquire(g, ISR_ADDR(v));
	if (depth < 2 && v + 1 < 2 && rnd(g, 3) == 0)
		interrupt(g, v + 1, depth + 1);
	if (take)
		dpc_release(g, ISR_ADDR(v));
	emit(g, DB_EOI, PC_EOI, 0, 1, 0);
	emit(g, DB_IRQL, PC_ISR + 0x70, 0, level, before);
	g->in_irq--;
	emit(g, DB_IRET, PC_ISR + 0x80, 0, vectors[v], 0);
}

static void maybe_interrupt(struct gen *g)
{
	if (rnd(g, 4) == 0)
		interrupt(g, (int)rnd(g, 2), 0);
}

/* Takes the spin classes in cls[0..n) in that order, then releases them. */
static void section(struct gen *g, const int *cls, int n)
{
	for (int i = 0; i < n; i++) {
		spin_acquire(g, SPIN_ADDR(cls[i]));
		maybe_interrupt(g);
	}
	for (int i = n; i-- > 0;)
		spin_release(g, SPIN_ADDR(cls[i]), i ? 2 : 0);
}

static void ordered_section(struct gen *g)
{
	int cls[3], n = 1 + (int)rnd(g, 3);
	int start = (int)rnd(g, N_SPIN);
	for (int i = 0; i < n; i++) {
		cls[i] = start;
		start += 1 + (int)rnd(g, 2);
		if (start >= N_SPIN) {
			n = i + 1;
			break;
		}
	}
	section(g, cls, n);
}

static void mutexes(struct gen *g)
{
	int first = (int)rnd(g, N_MUTEX), second = first + 1 + (int)rnd(g, N_MUTEX);
	int n = second < N_MUTEX && rnd(g, 2) ? 2 : 1;
	int m[2] = {first, second};
	for (int i = 0; i < n; i++) {
		emit(g, DB_WAIT, PC_WAIT, MUTEX_ADDR(m[i]), 0, 0);
		emit(g, DB_MUTEX_ACQ, PC_MUTEX, MUTEX_ADDR(m[i]), 0, 0);
		if (g->wait_end)
			emit(g, DB_WAIT_END, PC_WAIT + 0x40, MUTEX_ADDR(m[i]), 0, 0);
		maybe_interrupt(g);
	}
	for (int i = n; i-- > 0;)
		emit(g, DB_MUTEX_REL, PC_MUTREL, MUTEX_ADDR(m[i]), 0, 0);
}

/* The interrupt lock of vectors[v] taken correctly at thread level. */
static void isr_lock_at_level(struct gen *g, int v)
{
	raise_to(g, vectors[v] >> 4);
	dpc_acquire(g, ISR_ADDR(v));
	dpc_release(g, ISR_ADDR(v));
	lower_to(g, 0);
}

/* The scheduler. A thread that yields raises to DISPATCH and leaves at it;
 * a thread that blocked (blocking_wait) left at its wait's IRQL. Resuming,
 * KiSwapContext restores a yielded thread's IRQL, and the scheduler's exit
 * path (internal code, not KeLowerIrql) returns a blocked one to its wait
 * IRQL; the thread then lowers to PASSIVE itself. With leak, nothing restores
 * the incoming thread's IRQL (the planted IRQL leak). */
static void switch_to(struct gen *g, int next, int leak, int blocked)
{
	if (next == g->cur)
		return;
	if (!blocked) {
		if (!leak)
			raise_to(g, 2);
		g->saved[g->cur] = g->irql;
	}
	g->waited[g->cur] = blocked;
	emit(g, DB_SWITCH, PC_SWAP, 0, THREAD_ADDR(g->cur), THREAD_ADDR(next));
	g->cur = next;
	if (g->waited[next]) {
		int want = leak ? g->saved[next] ^ 1 : g->saved[next];
		emit(g, DB_IRQL, PC_SWAP + 0x38, 0, g->irql, g->irql);
		emit(g, DB_IRQL, PC_WORK + 0x60, 0, g->irql, want);
		if (g->wait_end)
			emit(g, DB_WAIT_END, PC_WAIT + 0x40, EVENT_ADDR + 8, 0, 0);
		emit(g, DB_MARKER, PC_WORK + 0x80, 0, DB_MARK_SERIAL, 0); /* the thread runs again */
		g->waited[next] = 0;
	} else {
		int want = g->saved[next] < 0 ? 2 : g->saved[next];
		if (!leak && want != g->irql)
			emit(g, DB_IRQL, PC_SWAP + 0x30, 0, g->irql, want);
	}
	lower_to(g, 0); /* with leak, the first event that sees the leaked IRQL */
}

/* The current thread blocks on an event at PASSIVE or APC level. */
static void blocking_wait(struct gen *g)
{
	int next = (g->cur + 1 + (int)rnd(g, (uint32_t)g->n_threads - 1)) % g->n_threads;
	int w = (int)rnd(g, 2);
	if (w)
		raise_to(g, w);
	emit(g, DB_WAIT, PC_WAIT, EVENT_ADDR + 8, w, INT64_MIN);
	g->saved[g->cur] = w;
	emit(g, DB_IRQL, PC_WORK + 0x40, 0, w, 2); /* the dispatcher lock */
	switch_to(g, next, 0, 1);
}

/* Holding a higher spin class, a trylock of a lower one: legal in any
 * order (a trylock never waits), and a failed one orders nothing. */
static void reverse_trylock(struct gen *g)
{
	int lo = (int)rnd(g, N_SPIN - 1), hi = lo + 1 + (int)rnd(g, (uint32_t)(N_SPIN - 1 - lo));
	spin_acquire(g, SPIN_ADDR(hi));
	g->op = RAISE_OP;
	g->try_flag = DB_F_TRY;
	emit(g, DB_LOCK_TRY, PC_SPIN, SPIN_ADDR(lo), g->irql, 0);
	int got = (int)rnd(g, 2);
	if (got)
		emit(g, DB_LOCK_ACQ, PC_SPIN + 0x20, SPIN_ADDR(lo), g->irql, 0);
	else
		emit(g, DB_LOCK_FAIL, PC_SPIN + 0x20, SPIN_ADDR(lo), g->irql, 0);
	g->op = 0;
	g->try_flag = 0;
	maybe_interrupt(g);
	if (got)
		spin_release(g, SPIN_ADDR(lo), 2);
	spin_release(g, SPIN_ADDR(hi), 0);
}

/* Two instances of one dynamic class nested, the inner with subclass 1,
 * then (maybe) one of the next site's class: a consistent order. */
static void dynamic_nesting(struct gen *g)
{
	int site = (int)rnd(g, DYN_SITES - 1), k = (int)rnd(g, DYN_PER_SITE - 1);
	spin_acquire_op(g, DYN_ADDR(site, k), RAISE_OP, DYN_CALLER(site));
	spin_acquire_op(g, DYN_ADDR(site, k + 1), DB_LOCKOP(DB_LF_SPIN, DB_LI_RAISE_DISPATCH, 1), DYN_CALLER(site));
	int next = rnd(g, 2);
	if (next)
		spin_acquire_op(g, DYN_ADDR(site + 1, 0), RAISE_OP, DYN_CALLER(site + 1));
	maybe_interrupt(g);
	if (next)
		spin_release(g, DYN_ADDR(site + 1, 0), 2);
	spin_release(g, DYN_ADDR(site, k + 1), 2);
	spin_release(g, DYN_ADDR(site, k), 0);
}

static void thread_op(struct gen *g)
{
	switch (rnd(g, 10)) {
	case 8: reverse_trylock(g); break;
	case 9: dynamic_nesting(g); break;
	case 0:
	case 1: ordered_section(g); break;
	case 2: mutexes(g); break;
	case 3: interrupt(g, (int)rnd(g, 2), 0); break;
	case 4: isr_lock_at_level(g, (int)rnd(g, 2)); break;
	case 5:
		emit(g, DB_WAIT, PC_WAIT, EVENT_ADDR, 0, -10000);
		emit(g, DB_SIGNAL, PC_WORK, EVENT_ADDR, 0, 0);
		if (g->wait_end)
			emit(g, DB_WAIT_END, PC_WAIT + 0x40, EVENT_ADDR, 0, 0);
		break;
	case 6: blocking_wait(g); break;
	default: switch_to(g, (int)rnd(g, (uint32_t)g->n_threads), 0, 0); break;
	}
}

/* Planted problems; each returns the kind it plants (0 if it could not). */
static int plant_order(struct gen *g)
{
	g->order_i = (int)rnd(g, N_SPIN - 1);
	g->order_j = g->order_i + 1 + (int)rnd(g, (uint32_t)(N_SPIN - 1 - g->order_i));
	int ij[2] = {g->order_i, g->order_j}, ji[2] = {g->order_j, g->order_i};
	section(g, ij, 2);
	for (int k = (int)rnd(g, 5); k > 0; k--)
		thread_op(g);
	section(g, ji, 2);
	return ANALYSIS_LOCK_ORDER;
}

static int plant_lower_raises(struct gen *g)
{
	raise_to(g, 2);
	lower_to(g, 13);
	lower_to(g, 0);
	return ANALYSIS_IRQL_LOWER_RAISES;
}

static int plant_raise_lowers(struct gen *g)
{
	raise_to(g, 13);
	raise_to(g, 2);
	lower_to(g, 0);
	return ANALYSIS_IRQL_RAISE_LOWERS;
}

/* An interrupt of vectors[v] at thread level 0 that takes its lock. */
static void isr_takes_lock(struct gen *g, int v)
{
	emit(g, DB_TRAP, PC_ISR, 0, vectors[v], 0);
	g->in_irq++;
	emit(g, DB_IRQL, PC_ISR + 8, 0, 0, vectors[v] >> 4);
	dpc_acquire(g, ISR_ADDR(v));
	dpc_release(g, ISR_ADDR(v));
	emit(g, DB_EOI, PC_EOI, 0, 1, 0);
	emit(g, DB_IRQL, PC_ISR + 0x70, 0, vectors[v] >> 4, 0);
	g->in_irq--;
	emit(g, DB_IRET, PC_ISR + 0x80, 0, vectors[v], 0);
}

/* irq-safe -> irq-unsafe: the interrupt lock, taken correctly at its level,
 * is held while a spin class is taken that is elsewhere held at DISPATCH. */
static int plant_irq_order(struct gen *g)
{
	g->safe_isr = 1; /* never the unsafe plant's: an inconsistent class subsumes its orders */
	g->unsafe_spin = (int)rnd(g, N_SPIN);
	int v = g->safe_isr;
	isr_takes_lock(g, v);
	spin_acquire(g, SPIN_ADDR(g->unsafe_spin));
	spin_release(g, SPIN_ADDR(g->unsafe_spin), 0);
	raise_to(g, vectors[v] >> 4);
	dpc_acquire(g, ISR_ADDR(v));
	dpc_acquire(g, SPIN_ADDR(g->unsafe_spin));
	dpc_release(g, SPIN_ADDR(g->unsafe_spin));
	dpc_release(g, ISR_ADDR(v));
	lower_to(g, 0);
	return ANALYSIS_IRQ_LOCK_ORDER;
}

/* Two instances of one dynamic class nested without a subclass, in both
 * orders (found whether or not the stream declares subclasses elsewhere). */
static int plant_recursive_locking(struct gen *g)
{
	g->rec_site = DYN_SITES - 1; /* the last site: never nested by dynamic_nesting */
	for (int k = 0; k < 2; k++) {
		spin_acquire_op(g, DYN_ADDR(g->rec_site, k), RAISE_OP, DYN_CALLER(g->rec_site));
		spin_acquire_op(g, DYN_ADDR(g->rec_site, 1 - k), RAISE_OP, DYN_CALLER(g->rec_site));
		spin_release(g, DYN_ADDR(g->rec_site, 1 - k), 2);
		spin_release(g, DYN_ADDR(g->rec_site, k), 0);
	}
	return ANALYSIS_RECURSIVE_LOCKING;
}

static int plant_irq_unsafe(struct gen *g)
{
	g->unsafe_isr = 0;
	int v = g->unsafe_isr;
	/* make sure the interrupt takes it at least once */
	isr_takes_lock(g, v);
	for (int k = (int)rnd(g, 4); k > 0; k--)
		thread_op(g);
	spin_acquire(g, ISR_ADDR(v)); /* at DISPATCH: the interrupt can arrive */
	spin_release(g, ISR_ADDR(v), 0);
	return ANALYSIS_IRQ_UNSAFE_LOCK;
}

static int plant_leak(struct gen *g)
{
	int next = -1;
	for (int t = 0; t < g->n_threads; t++)
		if (t != g->cur && g->saved[t] >= 0 && g->saved[t] != 13)
			next = t;
	if (next < 0)
		return 0;
	raise_to(g, 13);
	switch_to(g, next, 1, 0);
	return ANALYSIS_IRQL_LEAK_SWITCH;
}

static int plant_wait_dispatch(struct gen *g)
{
	raise_to(g, 2);
	emit(g, DB_WAIT, PC_WAIT, EVENT_ADDR, 2, -10000);
	if (g->wait_end)
		emit(g, DB_WAIT_END, PC_WAIT + 0x40, EVENT_ADDR, 0x102, 0);
	lower_to(g, 0);
	return ANALYSIS_WAIT_AT_DISPATCH;
}

static int (*const plants[])(struct gen *) = {
	plant_order, plant_lower_raises, plant_raise_lowers, plant_irq_unsafe, plant_leak, plant_wait_dispatch,
	plant_irq_order, plant_recursive_locking,
};
#define N_PLANTS (sizeof(plants) / sizeof(plants[0]))

/* Runs one case; returns 0 when the findings are exactly the planted ones,
 * else prints why and returns 1. */
static int run_case(uint64_t seed, unsigned n, size_t *events, unsigned *planted)
{
	struct names_ctx nc;
	struct analysis_names names = {.ctx = &nc, .lock_class = lock_class, .symbolize = symbolize};
	struct gen g;
	memset(&g, 0, sizeof(g));
	/* splitmix64 of (seed, case): distinct seeds give distinct streams */
	uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (n + 1);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	g.rng = (z ^ (z >> 31)) | 1;
	g.n_threads = 2 + (int)rnd(&g, MAX_THREADS - 1);
	g.wait_end = (int)rnd(&g, 2);
	g.schema2 = (int)rnd(&g, 2);
	for (int t = 0; t < MAX_THREADS; t++)
		g.saved[t] = -1;
	assert_int_equal(analysis_new(&names, &g.a, NULL), 0);
	emit(&g, DB_IRQL, PC_WORK, 0, 0, 0);

	int want_plant[N_PLANTS];
	for (size_t p = 0; p < N_PLANTS; p++)
		want_plant[p] = rnd(&g, 3) == 0;
	int ops = 20 + (int)rnd(&g, 60);
	for (int op = 0; op < ops; op++) {
		for (size_t p = 0; p < N_PLANTS; p++) {
			if (want_plant[p] && rnd(&g, (uint32_t)(ops - op)) == 0) {
				int k = plants[p](&g);
				if (k)
					g.planted[k] = 1;
				want_plant[p] = 0;
			}
		}
		thread_op(&g);
	}
	/* A quarter of the runs end in a planted hang: the current thread takes
	 * a spinlock twice. The run is then hung: the spinner, its lock and any
	 * thread still blocked in a wait are reported too. */
	const char *outcome = "pass";
	if (rnd(&g, 4) == 0) {
		spin_acquire(&g, SPIN_ADDR(N_SPIN - 1));
		emit(&g, DB_LOCK_TRY, PC_SPIN, SPIN_ADDR(N_SPIN - 1), g.irql, 0);
		g.planted[ANALYSIS_RECURSIVE_SPINLOCK] = g.planted[ANALYSIS_HANG] = 1;
		g.planted[ANALYSIS_LOCK_HELD_AT_EXIT] = 1;
		for (int t = 0; t < g.n_threads; t++)
			if (t != g.cur && g.waited[t])
				g.planted[ANALYSIS_WAIT_NEVER_SATISFIED] = 1;
		outcome = "hang";
	}
	*events += (size_t)g.id;
	for (int k = 1; k <= ANALYSIS_KIND_MAX; k++)
		planted[k] += (unsigned)g.planted[k];

	struct analysis_report *rep = NULL;
	assert_int_equal(analysis_finish(g.a, outcome, &rep, NULL), 0);
	analysis_free(g.a);
	int bad = 0;
	int found[ANALYSIS_KIND_MAX + 1] = {0};
	for (size_t i = 0; i < rep->n_findings; i++) {
		const struct analysis_finding *f = &rep->findings[i];
		found[f->kind]++;
		if (!g.planted[f->kind]) {
			print_message("# unexpected %s: %s\n", f->kind_name, f->title);
			bad = 1;
		}
		if (f->kind == ANALYSIS_LOCK_ORDER) {
			char ci[16], cj[16];
			snprintf(ci, sizeof(ci), "Spin%d", g.order_i);
			snprintf(cj, sizeof(cj), "Spin%d", g.order_j);
			int hi = 0, hj = 0;
			for (size_t c = 0; c < f->n_lock_classes; c++) {
				hi |= strcmp(f->lock_classes[c], ci) == 0;
				hj |= strcmp(f->lock_classes[c], cj) == 0;
			}
			if (!hi || !hj) {
				print_message("# lock-order cycle without the inverted pair %s/%s: %s\n", ci, cj, f->title);
				bad = 1;
			}
		}
		if (f->kind == ANALYSIS_IRQ_UNSAFE_LOCK) {
			char want[16];
			snprintf(want, sizeof(want), "Isr%d", g.unsafe_isr);
			if (f->n_lock_classes != 1 || strcmp(f->lock_classes[0], want) != 0) {
				print_message("# irq-unsafe-lock on the wrong class: %s\n", f->title);
				bad = 1;
			}
		}
		if (f->kind == ANALYSIS_IRQ_LOCK_ORDER) {
			char want[64];
			snprintf(want, sizeof(want), "lock order detected: Isr%d -> Spin%d", g.safe_isr, g.unsafe_spin);
			if (!strstr(f->title, want)) {
				print_message("# irq-lock-order on the wrong classes: %s\n", f->title);
				bad = 1;
			}
		}
		if (f->kind == ANALYSIS_RECURSIVE_LOCKING) {
			char want[64];
			snprintf(want, sizeof(want), "lock@Worker+0x%x", (unsigned)(DYN_CALLER(g.rec_site) - PC_WORK));
			if (f->n_lock_classes != 1 || strcmp(f->lock_classes[0], want) != 0) {
				print_message("# recursive-locking on the wrong class: %s (want %s)\n", f->title, want);
				bad = 1;
			}
		}
		if (f->kind == ANALYSIS_HANG && !strstr(f->title, "which it already holds")) {
			print_message("# the hang is not the planted recursive spin: %s\n", f->title);
			bad = 1;
		}
		if (f->kind != ANALYSIS_LOCK_ORDER && f->kind != ANALYSIS_WAIT_NEVER_SATISFIED && found[f->kind] > 1) {
			print_message("# %s reported twice: %s\n", f->kind_name, f->title);
			bad = 1;
		}
	}
	for (int k = 1; k <= ANALYSIS_KIND_MAX; k++) {
		if (g.planted[k] && !found[k]) {
			print_message("# planted %s not found\n", analysis_kind_name(k));
			bad = 1;
		}
	}
	for (size_t i = 0; bad && i < rep->n_findings; i++)
		print_message("#   found %s: %s (event %lld)\n", rep->findings[i].kind_name, rep->findings[i].title,
			      (long long)rep->findings[i].event_id);
	analysis_report_free(rep);
	return bad;
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *s = getenv(name);
	return s && *s ? strtoull(s, NULL, 0) : def;
}

static void test_analyses_find_exactly_the_planted_problems(void **state)
{
	(void)state;
	uint64_t seed = env_u64("KREWIND_SEED", 20261127);
	unsigned cases = (unsigned)env_u64("KREWIND_CASES", 3000);
	size_t events = 0;
	unsigned failed = 0, planted[ANALYSIS_KIND_MAX + 1] = {0};
	for (unsigned n = 0; n < cases; n++) {
		if (run_case(seed, n, &events, planted)) {
			print_message("# case %u failed: reproduce with KREWIND_SEED=%llu (case %u)\n", n,
				      (unsigned long long)seed, n);
			if (++failed >= 5)
				break;
		}
	}
	print_message("# seed %llu: %u cases, %zu events, %u failed; planted:", (unsigned long long)seed, cases,
		      events, failed);
	for (int k = 1; k <= ANALYSIS_KIND_MAX; k++)
		if (planted[k])
			print_message(" %s %u", analysis_kind_name(k), planted[k]);
	print_message("\n");
	/* every plant must have been exercised, or the run proves little */
	static const int kinds[] = {ANALYSIS_LOCK_ORDER,	    ANALYSIS_IRQL_LOWER_RAISES, ANALYSIS_IRQL_RAISE_LOWERS,
				    ANALYSIS_IRQ_UNSAFE_LOCK,   ANALYSIS_IRQL_LEAK_SWITCH,	ANALYSIS_WAIT_AT_DISPATCH,
				    ANALYSIS_HANG,		    ANALYSIS_WAIT_NEVER_SATISFIED, ANALYSIS_IRQ_LOCK_ORDER,
				    ANALYSIS_RECURSIVE_LOCKING};
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]) && cases >= 100; k++)
		assert_true(planted[kinds[k]] > 0);
	assert_int_equal(failed, 0);
}

/* The generator is not vacuous: without plants every kind stays silent, and
 * each plant alone is found (checked on the same seed stream). */
static void test_each_plant_alone_is_found(void **state)
{
	(void)state;
	struct names_ctx nc;
	struct analysis_names names = {.ctx = &nc, .lock_class = lock_class, .symbolize = symbolize};
	for (size_t p = 0; p < N_PLANTS; p++) {
		struct gen g;
		memset(&g, 0, sizeof(g));
		g.rng = 0x1234567 + p;
		g.n_threads = 3;
		for (int t = 0; t < MAX_THREADS; t++)
			g.saved[t] = -1;
		assert_int_equal(analysis_new(&names, &g.a, NULL), 0);
		emit(&g, DB_IRQL, PC_WORK, 0, 0, 0);
		for (int t = 1; t < 3; t++)
			switch_to(&g, t, 0, 0);
		switch_to(&g, 0, 0, 0);
		int k = plants[p](&g);
		assert_true(k > 0);
		struct analysis_report *rep = NULL;
		assert_int_equal(analysis_finish(g.a, "pass", &rep, NULL), 0);
		analysis_free(g.a);
		assert_int_equal(rep->n_findings, 1);
		assert_int_equal(rep->findings[0].kind, k);
		analysis_report_free(rep);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_plant_alone_is_found),
		cmocka_unit_test(test_analyses_find_exactly_the_planted_problems),
	};
	return cmocka_run_group_tests_name("property", tests, NULL, NULL);
}
