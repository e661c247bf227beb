/*
 * test_analysis.c - the checks of analysis/ on synthetic event sequences: one
 * test per rule (each broken scenario of our kernel reproduced as events) and
 * one per false-positive guard, with exact assertions on kinds, event ids and
 * lock classes.
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

/* ---------------------------------------------------------------- fixture */

/* Code addresses of the functions the rules recognise, and others. */
enum {
	PC_LOWER = 0x1000,   /* KeLowerIrql */
	PC_RAISE = 0x1100,   /* KeRaiseIrql */
	PC_SPIN = 0x1200,    /* KeAcquireSpinLockRaiseToDpc */
	PC_SPINDPC = 0x1300, /* KeAcquireSpinLockAtDpcLevel */
	PC_REL = 0x1400,     /* KeReleaseSpinLock */
	PC_SWAP = 0x1500,    /* KiSwapContext */
	PC_WAIT = 0x1600,    /* KeWaitForSingleObject */
	PC_MUTEX = 0x1700,   /* KiSatisfyMutexWait */
	PC_MUTREL = 0x1800,  /* KeReleaseMutex */
	PC_ISR = 0x1900,     /* KiClockInterrupt */
	PC_WORK = 0x2000,    /* Worker */
	PC_EOI = 0x1a00,     /* HalEndOfInterrupt */
};

static const struct {
	uint64_t addr;
	const char *name;
} syms[] = {
	{PC_LOWER, "KeLowerIrql"}, {PC_RAISE, "KeRaiseIrql"}, {PC_SPIN, "KeAcquireSpinLockRaiseToDpc"},
	{PC_SPINDPC, "KeAcquireSpinLockAtDpcLevel"}, {PC_REL, "KeReleaseSpinLock"}, {PC_SWAP, "KiSwapContext"},
	{PC_WAIT, "KeWaitForSingleObject"}, {PC_MUTEX, "KiSatisfyMutexWait"}, {PC_MUTREL, "KeReleaseMutex"},
	{PC_ISR, "KiClockInterrupt"}, {PC_EOI, "HalEndOfInterrupt"}, {PC_WORK, "Worker"},
};

enum {
	LOCK_A = 0xa000, LOCK_B = 0xb000, LOCK_C = 0xc000, LOCK_DISP = 0xd000, LOCK_A2 = 0xa100,
	MUTEX_1 = 0xe000, MUTEX_2 = 0xe100, EVENT_1 = 0xf000,
};
enum { T_IDLE = 0x100, T_W1 = 0x200, T_W2 = 0x300 };
#define CLOCK 0xd1

static const char *lock_class(void *ctx, uint64_t lock)
{
	(void)ctx;
	switch (lock) {
	case LOCK_A: return "ScenarioLockA";
	case LOCK_A2: return "ScenarioLockA"; /* a second instance of A's class */
	case LOCK_B: return "ScenarioLockB";
	case LOCK_C: return "ScenarioLockC";
	case LOCK_DISP: return "KiDispatcherLock";
	case MUTEX_1: return "ScenarioMutex1";
	case MUTEX_2: return "ScenarioMutex2";
	}
	return NULL;
}

static const char *thread_name(void *ctx, uint64_t t)
{
	(void)ctx;
	switch (t) {
	case T_IDLE: return "idle";
	case T_W1: return "worker1";
	case T_W2: return "worker2";
	}
	return "";
}

static char *symbolize(void *ctx, uint64_t pc, char *buf, size_t size)
{
	(void)ctx;
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		if (pc >= syms[i].addr && pc < syms[i].addr + 0x100) {
			if (pc == syms[i].addr)
				snprintf(buf, size, "%s", syms[i].name);
			else
				snprintf(buf, size, "%s+0x%x", syms[i].name, (unsigned)(pc - syms[i].addr));
			return buf;
		}
	}
	snprintf(buf, size, "0x%llx", (unsigned long long)pc);
	return buf;
}

static const struct analysis_names names = {
	.lock_class = lock_class, .thread_name = thread_name, .symbolize = symbolize,
};

struct trace {
	struct db_event ev[256];
	size_t n;
	uint16_t vcpu;
};

/* Appends an event with a lockop; returns its id (1-based). */
static int64_t evop(struct trace *t, int kind, uint64_t thread, uint64_t pc, uint64_t obj, int64_t a, int64_t b,
		    uint16_t lockop)
{
	assert_true(t->n < sizeof(t->ev) / sizeof(t->ev[0]));
	struct db_event *e = &t->ev[t->n++];
	memset(e, 0, sizeof(*e));
	e->id = (int64_t)t->n;
	e->icount = 100 * t->n;
	e->kind = (uint8_t)kind;
	e->thread = thread;
	e->pc = pc;
	e->obj = obj;
	e->a = a;
	e->b = b;
	e->vcpu = t->vcpu;
	e->lockop = lockop;
	e->preempt = -1;
	e->tid = -1;
	return e->id;
}
static int64_t ev(struct trace *t, int kind, uint64_t thread, uint64_t pc, uint64_t obj, int64_t a, int64_t b)
{
	return evop(t, kind, thread, pc, obj, a, b, 0);
}

/* An IRQL change: the probe declares PC_LOWER a lower call and PC_RAISE a
 * raise call (obj 2 / 1); anything else is a bare CR8 write. */
static int64_t irql(struct trace *t, uint64_t th, uint64_t pc, int from, int to)
{
	uint64_t kind = pc >= PC_LOWER && pc < PC_LOWER + 0x100 ? 2 : pc >= PC_RAISE && pc < PC_RAISE + 0x100 ? 1 : 0;
	return ev(t, DB_IRQL, th, pc, kind, from, to);
}
#define RAISE_OP DB_LOCKOP(DB_LF_SPIN, DB_LI_RAISE_DISPATCH, 0)
#define ATDPC_OP DB_LOCKOP(DB_LF_SPIN, DB_LI_AT_DISPATCH, 0)
/* A raising acquire (irq=raise-dispatch) from IRQL `at`: try, raise to
 * DISPATCH, acquired. Returns the acq id. */
static int64_t spin_acquire(struct trace *t, uint64_t th, uint64_t lock, int at)
{
	evop(t, DB_LOCK_TRY, th, PC_SPIN, lock, at, 0, RAISE_OP);
	if (at < 2)
		irql(t, th, PC_SPIN + 0x10, at, 2);
	return evop(t, DB_LOCK_ACQ, th, PC_SPIN + 0x20, lock, at < 2 ? 2 : at, 5, RAISE_OP);
}
/* Its release, restoring `to`. */
static int64_t spin_release(struct trace *t, uint64_t th, uint64_t lock, int to)
{
	int64_t id = evop(t, DB_LOCK_REL, th, PC_REL, lock, 2, to, RAISE_OP);
	if (to < 2)
		irql(t, th, PC_REL + 0x10, 2, to);
	return id;
}
/* An at-dispatch acquire (irq=at-dispatch). */
static int64_t dpc_acquire(struct trace *t, uint64_t th, uint64_t lock, int at)
{
	evop(t, DB_LOCK_TRY, th, PC_SPINDPC, lock, at, 0, ATDPC_OP);
	return evop(t, DB_LOCK_ACQ, th, PC_SPINDPC + 0x20, lock, at, 5, ATDPC_OP);
}
static int64_t trap(struct trace *t, uint64_t th, int vec)
{
	return ev(t, DB_TRAP, th, PC_ISR, 0, vec, 0);
}
static int64_t iret(struct trace *t, uint64_t th, int vec)
{
	return ev(t, DB_IRET, th, PC_ISR + 0x80, 0, vec, 0);
}
static int64_t eoi(struct trace *t, uint64_t th)
{
	return ev(t, DB_EOI, th, PC_EOI, 0, 1, 0);
}
static int64_t sw(struct trace *t, uint64_t from, uint64_t to)
{
	return ev(t, DB_SWITCH, from, PC_SWAP, 0, (int64_t)from, (int64_t)to);
}

/* A clock interrupt handled correctly on thread th running at `at`. */
static void clock_tick(struct trace *t, uint64_t th, int at)
{
	trap(t, th, CLOCK);
	irql(t, th, PC_ISR + 0x8, at, 13);
	eoi(t, th);
	irql(t, th, PC_ISR + 0x70, 13, at);
	iret(t, th, CLOCK);
}

static struct analysis_report *analyse(const struct trace *t, const char *outcome)
{
	struct analysis *a = NULL;
	char *err = NULL;
	assert_int_equal(analysis_new(&names, &a, &err), 0);
	for (size_t i = 0; i < t->n; i++)
		assert_int_equal(analysis_feed(a, &t->ev[i]), 0);
	struct analysis_report *rep = NULL;
	assert_int_equal(analysis_finish(a, outcome, &rep, &err), 0);
	analysis_free(a);
	assert_non_null(rep);
	return rep;
}

static size_t count_kind(const struct analysis_report *rep, int kind)
{
	size_t n = 0;
	for (size_t i = 0; i < rep->n_findings; i++)
		n += rep->findings[i].kind == (enum analysis_kind)kind;
	return n;
}

static const struct analysis_finding *find_kind(const struct analysis_report *rep, int kind)
{
	for (size_t i = 0; i < rep->n_findings; i++)
		if (rep->findings[i].kind == (enum analysis_kind)kind)
			return &rep->findings[i];
	fail_msg("no finding of kind %s", analysis_kind_name(kind));
	return NULL;
}

static int has_class(const struct analysis_finding *f, const char *cls)
{
	for (size_t i = 0; i < f->n_lock_classes; i++)
		if (strcmp(f->lock_classes[i], cls) == 0)
			return 1;
	return 0;
}

static void print_findings(const struct analysis_report *rep)
{
	for (size_t i = 0; i < rep->n_findings; i++)
		print_message("# %s: %s\n", rep->findings[i].kind_name, rep->findings[i].title);
}

static void assert_only(const struct analysis_report *rep, const int *kinds, size_t n)
{
	size_t expected = 0;
	for (size_t i = 0; i < n; i++)
		expected += count_kind(rep, kinds[i]);
	if (expected != rep->n_findings || rep->n_findings < n)
		print_findings(rep);
	assert_int_equal(rep->n_findings, expected);
	for (size_t i = 0; i < n; i++)
		assert_true(count_kind(rep, kinds[i]) >= 1);
}

/* ---------------------------------------------------------------- clean */

/* A run that follows every rule: consistent lock order, IRQL restored across
 * switches by KiSwapContext, clock EOI before iretq, the dispatcher lock handed
 * across a switch, mutexes and waits that complete. */
static void build_clean(struct trace *t)
{
	irql(t, T_IDLE, PC_WORK, 0, 0);
	clock_tick(t, T_IDLE, 0);
	spin_acquire(t, T_IDLE, LOCK_DISP, 0);
	sw(t, T_IDLE, T_W1);
	spin_release(t, T_W1, LOCK_DISP, 0);
	spin_acquire(t, T_W1, LOCK_A, 0);
	spin_acquire(t, T_W1, LOCK_B, 2);
	spin_release(t, T_W1, LOCK_B, 2);
	spin_release(t, T_W1, LOCK_A, 0);
	clock_tick(t, T_W1, 0);
	ev(t, DB_WAIT, T_W1, PC_WAIT, MUTEX_1, 0, 0);
	ev(t, DB_MUTEX_ACQ, T_W1, PC_MUTEX, MUTEX_1, 0, 0);
	ev(t, DB_WAIT_END, T_W1, PC_WAIT + 0x40, MUTEX_1, 0, 0);
	ev(t, DB_MUTEX_REL, T_W1, PC_MUTREL, MUTEX_1, 0, 0);
	/* preempted at DISPATCH inside the clock interrupt, after lowering */
	trap(t, T_W1, CLOCK);
	irql(t, T_W1, PC_ISR + 0x8, 0, 13);
	eoi(t, T_W1);
	irql(t, T_W1, PC_ISR + 0x70, 13, 2);
	spin_acquire(t, T_W1, LOCK_DISP, 2);
	sw(t, T_W1, T_W2);
	spin_release(t, T_W2, LOCK_DISP, 0);
	spin_acquire(t, T_W2, LOCK_A, 0);
	spin_acquire(t, T_W2, LOCK_B, 2);
	spin_release(t, T_W2, LOCK_B, 2);
	spin_release(t, T_W2, LOCK_A, 0);
	ev(t, DB_WAIT, T_W2, PC_WAIT, EVENT_1, 0, -100000);
	ev(t, DB_SIGNAL, T_W2, PC_WORK, EVENT_1, 0, 0);
	ev(t, DB_WAIT_END, T_W2, PC_WAIT + 0x40, EVENT_1, 0, 0);
	/* back to worker1, which left at DISPATCH: KiSwapContext restores it */
	irql(t, T_W2, PC_RAISE, 0, 2);
	spin_acquire(t, T_W2, LOCK_DISP, 2);
	sw(t, T_W2, T_W1);
	irql(t, T_W1, PC_SWAP + 0x30, 2, 2);
	spin_release(t, T_W1, LOCK_DISP, 2);
	irql(t, T_W1, PC_ISR + 0x78, 2, 0);
	iret(t, T_W1, CLOCK);
	clock_tick(t, T_W1, 0);
}

static void test_clean_run_has_no_findings(void **state)
{
	(void)state;
	struct trace t = {0};
	build_clean(&t);
	struct analysis_report *rep = analyse(&t, "pass");
	print_findings(rep);
	assert_int_equal(rep->n_findings, 0);
	assert_int_equal(rep->hung, 0);
	assert_int_equal(rep->events, (int64_t)t.n);
	analysis_report_free(rep);
}

static void test_clean_run_with_unknown_outcome_is_not_a_hang(void **state)
{
	(void)state;
	struct trace t = {0};
	build_clean(&t);
	struct analysis_report *rep = analyse(&t, NULL);
	assert_int_equal(rep->n_findings, 0);
	assert_int_equal(rep->hung, 0);
	analysis_report_free(rep);
}

/* ---------------------------------------------------------------- lock order */

static void test_lockorder_reports_abba_cycle(void **state)
{
	(void)state;
	struct trace t = {0};
	int64_t a1 = spin_acquire(&t, T_W1, LOCK_A, 0);
	spin_acquire(&t, T_W1, LOCK_B, 2);
	int64_t ab = t.n - 0; /* the acq of B */
	spin_release(&t, T_W1, LOCK_B, 2);
	spin_release(&t, T_W1, LOCK_A, 0);
	sw(&t, T_W1, T_W2);
	int64_t b2 = spin_acquire(&t, T_W2, LOCK_B, 0);
	int64_t try_a = ev(&t, DB_LOCK_TRY, T_W2, PC_SPIN, LOCK_A, 2, 0);
	ev(&t, DB_LOCK_ACQ, T_W2, PC_SPIN + 0x20, LOCK_A, 2, 0);
	spin_release(&t, T_W2, LOCK_A, 2);
	spin_release(&t, T_W2, LOCK_B, 0);
	struct analysis_report *rep = analyse(&t, "completed");
	assert_only(rep, (int[]){ANALYSIS_LOCK_ORDER}, 1);
	const struct analysis_finding *f = find_kind(rep, ANALYSIS_LOCK_ORDER);
	assert_string_equal(f->kind_name, "lock-order");
	assert_string_equal(f->title, "possible circular locking dependency: ScenarioLockA -> ScenarioLockB -> ScenarioLockA");
	assert_int_equal(f->n_lock_classes, 2);
	assert_true(has_class(f, "ScenarioLockA") && has_class(f, "ScenarioLockB"));
	assert_int_equal(f->n_steps, 4);
	/* A -> B: A held (acq a1), B tried while holding it (the try before ab) */
	assert_int_equal(f->steps[0].event_id, a1);
	assert_string_equal(f->steps[1].role, "acquire");
	assert_int_equal(f->steps[1].event_id, ab - 1); /* the try of B, just before its acq */
	assert_int_equal(f->steps[2].event_id, b2);
	assert_int_equal(f->steps[3].event_id, try_a);
	assert_string_equal(f->steps[3].where, "KeAcquireSpinLockRaiseToDpc");
	assert_string_equal(f->steps[3].thread_name, "worker2");
	assert_int_equal(f->event_id, try_a);
	assert_int_equal(f->count, 1);
	assert_int_equal(rep->lock_order_edges, 2);
	analysis_report_free(rep);
}

static void test_lockorder_reports_three_lock_cycle_once(void **state)
{
	(void)state;
	struct trace t = {0};
	const uint64_t pairs[3][2] = {{LOCK_A, LOCK_B}, {LOCK_B, LOCK_C}, {LOCK_C, LOCK_A}};
	for (int i = 0; i < 3; i++) {
		spin_acquire(&t, T_W1, pairs[i][0], 0);
		spin_acquire(&t, T_W1, pairs[i][1], 2);
		spin_release(&t, T_W1, pairs[i][1], 2);
		spin_release(&t, T_W1, pairs[i][0], 0);
	}
	struct analysis_report *rep = analyse(&t, "pass");
	assert_only(rep, (int[]){ANALYSIS_LOCK_ORDER}, 1);
	const struct analysis_finding *f = find_kind(rep, ANALYSIS_LOCK_ORDER);
	assert_string_equal(f->title,
			    "possible circular locking dependency: ScenarioLockA -> ScenarioLockB -> ScenarioLockC -> ScenarioLockA");
	assert_int_equal(f->n_steps, 6);
	assert_int_equal(f->n_lock_classes, 3);
	analysis_report_free(rep);
}

static void test_lockorder_consistent_order_and_subclass_nesting_are_clean(void **state)
{
	(void)state;
	struct trace t = {0};
	for (int i = 0; i < 3; i++) {
		spin_acquire(&t, T_W1, LOCK_A, 0);
		/* same class, another instance, with a nesting subclass */
		evop(&t, DB_LOCK_TRY, T_W1, PC_SPIN, LOCK_A2, 2, 0, DB_LOCKOP(DB_LF_SPIN, DB_LI_RAISE_DISPATCH, 1));
		evop(&t, DB_LOCK_ACQ, T_W1, PC_SPIN + 0x20, LOCK_A2, 2, 0, DB_LOCKOP(DB_LF_SPIN, DB_LI_RAISE_DISPATCH, 1));
		spin_acquire(&t, T_W1, LOCK_B, 2);
		spin_release(&t, T_W1, LOCK_B, 2);
		spin_release(&t, T_W1, LOCK_A2, 2);
		spin_release(&t, T_W1, LOCK_A, 0);
	}
	struct analysis_report *rep = analyse(&t, "pass");
	assert_int_equal(rep->n_findings, 0);
	analysis_report_free(rep);
}

/* A long cycle through classes that otherwise form a long chain is found once
 * with every edge; the chain alone is not a cycle. */
static void test_lockorder_finds_a_long_cycle_once(void **state)
{
	(void)state;
	enum { N = 40 };
	for (int close = 0; close < 2; close++) {
		struct analysis *a = NULL;
		assert_int_equal(analysis_new(&names, &a, NULL), 0);
		int64_t id = 0;
		for (int i = 0; i + 1 < N + close; i++) {
			uint64_t first = 0x10000 + 0x10 * (uint64_t)i, second = 0x10000 + 0x10 * (uint64_t)((i + 1) % N);
			struct db_event e[] = {
				{.kind = DB_LOCK_ACQ, .thread = T_W1, .pc = PC_SPIN + 0x20, .obj = first, .a = 2},
				{.kind = DB_LOCK_ACQ, .thread = T_W1, .pc = PC_SPIN + 0x20, .obj = second, .a = 2},
				{.kind = DB_LOCK_REL, .thread = T_W1, .pc = PC_REL, .obj = second, .a = 2},
				{.kind = DB_LOCK_REL, .thread = T_W1, .pc = PC_REL, .obj = first, .a = 2},
			};
			for (size_t k = 0; k < 4; k++) {
				e[k].id = ++id;
				assert_int_equal(analysis_feed(a, &e[k]), 0);
			}
		}
		struct analysis_report *rep = NULL;
		assert_int_equal(analysis_finish(a, "pass", &rep, NULL), 0);
		analysis_free(a);
		if (!close) {
			assert_int_equal(rep->n_findings, 0);
		} else {
			assert_int_equal(rep->n_findings, 1);
			assert_int_equal(rep->findings[0].kind, ANALYSIS_LOCK_ORDER);
			assert_int_equal(rep->findings[0].n_steps, 2 * N);
			assert_int_equal(rep->findings[0].n_lock_classes, N);
			assert_int_equal(rep->lock_order_edges, N);
		}
		analysis_report_free(rep);
	}
}

/* A dense graph with one inversion (every pair of 12 classes nested in one
 * order, plus the last before the first) holds dozens of cycles, all through
 * the inverted dependency: one finding, its variants counted; a second,
 * independent AB-BA is a finding of its own. */
static void test_lockorder_dense_graph_is_one_finding_per_inversion(void **state)
{
	(void)state;
	enum { N = 12 };
	struct analysis *a = NULL;
	assert_int_equal(analysis_new(&names, &a, NULL), 0);
	int64_t id = 0;
	uint64_t pairs[N * N + 4][2];
	size_t n = 0;
	for (int i = 0; i < N; i++)
		for (int j = i + 1; j < N; j++) {
			pairs[n][0] = 0x10000 + 0x10 * (uint64_t)i;
			pairs[n++][1] = 0x10000 + 0x10 * (uint64_t)j;
		}
	pairs[n][0] = 0x10000 + 0x10 * (N - 1); /* the inversion */
	pairs[n++][1] = 0x10000;
	pairs[n][0] = LOCK_A; /* an independent AB-BA */
	pairs[n++][1] = LOCK_B;
	pairs[n][0] = LOCK_B;
	pairs[n++][1] = LOCK_A;
	for (size_t p = 0; p < n; p++) {
		struct db_event e[] = {
			{.kind = DB_LOCK_ACQ, .thread = T_W1, .pc = PC_SPIN + 0x20, .obj = pairs[p][0], .a = 2},
			{.kind = DB_LOCK_ACQ, .thread = T_W1, .pc = PC_SPIN + 0x20, .obj = pairs[p][1], .a = 2},
			{.kind = DB_LOCK_REL, .thread = T_W1, .pc = PC_REL, .obj = pairs[p][1], .a = 2},
			{.kind = DB_LOCK_REL, .thread = T_W1, .pc = PC_REL, .obj = pairs[p][0], .a = 2},
		};
		for (size_t k = 0; k < 4; k++) {
			e[k].id = ++id;
			assert_int_equal(analysis_feed(a, &e[k]), 0);
		}
	}
	struct analysis_report *rep = NULL;
	assert_int_equal(analysis_finish(a, "pass", &rep, NULL), 0);
	analysis_free(a);
	assert_int_equal(count_kind(rep, ANALYSIS_LOCK_ORDER), 2);
	assert_int_equal(rep->n_findings, 2);
	int dense = 0, abba = 0;
	for (size_t i = 0; i < rep->n_findings; i++) {
		const struct analysis_finding *f = &rep->findings[i];
		if (has_class(f, "ScenarioLockA")) {
			abba = 1;
			assert_int_equal(f->count, 1);
		} else {
			dense = 1;
			/* the shortest cycle first: the inverted pair itself */
			assert_int_equal(f->n_lock_classes, 2);
			assert_true(f->count > 10);
		}
	}
	assert_true(dense && abba);
	analysis_report_free(rep);
}

/* A lock taken by an interrupt handler while the interrupted code holds
 * another is not an ordering between them (lockdep's irq_context split). */
static void test_lockorder_ignores_locks_of_interrupted_context(void **state)
{
	(void)state;
	struct trace t = {0};
	irql(&t, T_W1, PC_RAISE, 0, 13);
	dpc_acquire(&t, T_W1, LOCK_A, 13);
	ev(&t, DB_LOCK_REL, T_W1, PC_REL, LOCK_A, 13, 0);
	irql(&t, T_W1, PC_LOWER, 13, 0);
	spin_acquire(&t, T_W1, LOCK_B, 0);
	trap(&t, T_W1, CLOCK);
	irql(&t, T_W1, PC_ISR + 8, 2, 13);
	dpc_acquire(&t, T_W1, LOCK_A, 13);
	ev(&t, DB_LOCK_REL, T_W1, PC_REL, LOCK_A, 13, 0);
	eoi(&t, T_W1);
	irql(&t, T_W1, PC_ISR + 0x70, 13, 2);
	iret(&t, T_W1, CLOCK);
	spin_release(&t, T_W1, LOCK_B, 0);
	irql(&t, T_W1, PC_RAISE, 0, 13);
	dpc_acquire(&t, T_W1, LOCK_A, 13);
	dpc_acquire(&t, T_W1, LOCK_B, 13);
	ev(&t, DB_LOCK_REL, T_W1, PC_REL, LOCK_B, 13, 0);
	ev(&t, DB_LOCK_REL, T_W1, PC_REL, LOCK_A, 13, 0);
	irql(&t, T_W1, PC_LOWER, 13, 0);
	struct analysis_report *rep = analyse(&t, "pass");
	/* No cycle: the interrupt's B -> A is not ordered against the thread's
	 * A -> B. But A is used in the clock interrupt at IRQL 13 and ordered
	 * before B, which is held at DISPATCH (interruptible by the clock):
	 * lockdep's irq-safe -> irq-unsafe rule. */
	assert_int_equal(count_kind(rep, ANALYSIS_LOCK_ORDER), 0);
	assert_only(rep, (int[]){ANALYSIS_IRQ_LOCK_ORDER}, 1);
	const struct analysis_finding *f = find_kind(rep, ANALYSIS_IRQ_LOCK_ORDER);
	assert_string_equal(f->title, "HARDIRQ-safe -> HARDIRQ-unsafe lock order detected: ScenarioLockA -> ScenarioLockB");
	analysis_report_free(rep);
}

static void test_lockorder_deadlock_on_mutexes_reports_cycle_and_hang(void **state)
{
	(void)state;
	struct trace t = {0};
	/* no wait_end events: as our tracer records waits */
	ev(&t, DB_WAIT, T_W1, PC_WAIT, MUTEX_1, 0, 0);
	int64_t m1 = ev(&t, DB_MUTEX_ACQ, T_W1, PC_MUTEX, MUTEX_1, 0, 0);
	sw(&t, T_W1, T_W2);
	ev(&t, DB_WAIT, T_W2, PC_WAIT, MUTEX_2, 0, 0);
	int64_t m2 = ev(&t, DB_MUTEX_ACQ, T_W2, PC_MUTEX, MUTEX_2, 0, 0);
	int64_t w21 = ev(&t, DB_WAIT, T_W2, PC_WAIT, MUTEX_1, 0, 0);
	sw(&t, T_W2, T_W1);
	int64_t w12 = ev(&t, DB_WAIT, T_W1, PC_WAIT, MUTEX_2, 0, 0);
	sw(&t, T_W1, T_IDLE);
	ev(&t, DB_IRQL, T_IDLE, PC_WORK, 0, 0, 0);
	struct analysis_report *rep = analyse(&t, "hang");
	assert_int_equal(rep->hung, 1);
	assert_only(rep, (int[]){ANALYSIS_HANG, ANALYSIS_LOCK_ORDER, ANALYSIS_LOCK_HELD_AT_EXIT,
				 ANALYSIS_WAIT_NEVER_SATISFIED},
		    4);
	assert_int_equal(rep->findings[0].kind, ANALYSIS_HANG); /* ranked first */
	const struct analysis_finding *h = find_kind(rep, ANALYSIS_HANG);
	assert_non_null(strstr(h->title, "hang: deadlock: "));
	assert_non_null(strstr(h->title, "worker1 waits for ScenarioMutex2 held by worker2"));
	assert_non_null(strstr(h->title, "worker2 waits for ScenarioMutex1 held by worker1"));
	/* the causal chain cites both acquisitions and both waits, in order */
	int64_t want[] = {m1, m2, w21, w12};
	size_t k = 0;
	for (size_t i = 0; i < h->n_steps && k < 4; i++)
		if (h->steps[i].event_id == want[k])
			k++;
	assert_int_equal(k, 4);
	const struct analysis_finding *lo = find_kind(rep, ANALYSIS_LOCK_ORDER);
	assert_true(has_class(lo, "ScenarioMutex1") && has_class(lo, "ScenarioMutex2"));
	assert_int_equal(count_kind(rep, ANALYSIS_LOCK_HELD_AT_EXIT), 2);
	assert_int_equal(count_kind(rep, ANALYSIS_WAIT_NEVER_SATISFIED), 2);
	analysis_report_free(rep);
}

/* ---------------------------------------------------------------- irq context */

/* spinlock-high-irql: the clock handler takes a lock a thread holds at DISPATCH. */
static void build_spinlock_high_irql(struct trace *t, int64_t *isr_acq, int64_t *held, int64_t *spin)
{
	trap(t, T_W1, CLOCK);
	irql(t, T_W1, PC_ISR + 8, 0, 13);
	*isr_acq = dpc_acquire(t, T_W1, LOCK_A, 13);
	ev(t, DB_LOCK_REL, T_W1, PC_REL, LOCK_A, 13, 0);
	eoi(t, T_W1);
	irql(t, T_W1, PC_ISR + 0x70, 13, 0);
	iret(t, T_W1, CLOCK);
	*held = spin_acquire(t, T_W1, LOCK_A, 0);
	trap(t, T_W1, CLOCK);
	irql(t, T_W1, PC_ISR + 8, 2, 13);
	*spin = ev(t, DB_LOCK_TRY, T_W1, PC_SPINDPC, LOCK_A, 13, 0);
}

static void test_irq_unsafe_lock_and_self_deadlock_hang(void **state)
{
	(void)state;
	struct trace t = {0};
	int64_t isr_acq, held, spin;
	build_spinlock_high_irql(&t, &isr_acq, &held, &spin);
	struct analysis_report *rep = analyse(&t, "hang");
	assert_only(rep, (int[]){ANALYSIS_HANG, ANALYSIS_IRQ_UNSAFE_LOCK, ANALYSIS_LOCK_HELD_AT_EXIT}, 3);
	assert_int_equal(count_kind(rep, ANALYSIS_RECURSIVE_SPINLOCK), 0);
	const struct analysis_finding *f = find_kind(rep, ANALYSIS_IRQ_UNSAFE_LOCK);
	assert_string_equal(f->title, "inconsistent {IN-HARDIRQ-W} -> {HARDIRQ-ON-W} usage of ScenarioLockA");
	assert_int_equal(f->n_steps, 2);
	assert_int_equal(f->steps[0].event_id, isr_acq - 1); /* the first attempt inside the interrupt */
	assert_int_equal(f->steps[0].vector, CLOCK);
	assert_int_equal(f->steps[1].event_id, held);
	assert_int_equal(f->steps[1].irql, 2);
	const struct analysis_finding *h = find_kind(rep, ANALYSIS_HANG);
	assert_string_equal(h->title, "hang: interrupt 0xd1 on worker1 spins on ScenarioLockA, which its own CPU holds");
	assert_int_equal(h->event_id, spin);
	analysis_report_free(rep);
}

/* spinlock-high-irql as our kernel shows it: the first use inside the clock
 * handler is the attempt that spins forever. */
static void test_irq_unsafe_lock_seen_from_the_hanging_attempt_alone(void **state)
{
	(void)state;
	struct trace t = {0};
	int64_t held = spin_acquire(&t, T_W1, LOCK_A, 0);
	trap(&t, T_W1, CLOCK);
	irql(&t, T_W1, PC_ISR + 8, 2, 13);
	int64_t spin = ev(&t, DB_LOCK_TRY, T_W1, PC_SPINDPC, LOCK_A, 13, 0);
	struct analysis_report *rep = analyse(&t, "hang");
	assert_only(rep, (int[]){ANALYSIS_HANG, ANALYSIS_IRQ_UNSAFE_LOCK, ANALYSIS_LOCK_HELD_AT_EXIT}, 3);
	const struct analysis_finding *f = find_kind(rep, ANALYSIS_IRQ_UNSAFE_LOCK);
	assert_int_equal(f->steps[0].event_id, held);
	assert_int_equal(f->steps[1].event_id, spin);
	assert_int_equal(f->event_id, spin);
	analysis_report_free(rep);
}

static void test_irq_lock_always_taken_at_interrupt_level_is_clean(void **state)
{
	(void)state;
	struct trace t = {0};
	trap(&t, T_W1, CLOCK);
	irql(&t, T_W1, PC_ISR + 8, 0, 13);
	dpc_acquire(&t, T_W1, LOCK_A, 13);
	ev(&t, DB_LOCK_REL, T_W1, PC_REL, LOCK_A, 13, 0);
	eoi(&t, T_W1);
	irql(&t, T_W1, PC_ISR + 0x70, 13, 0);
	iret(&t, T_W1, CLOCK);
	irql(&t, T_W1, PC_RAISE, 0, 13);
	dpc_acquire(&t, T_W1, LOCK_A, 13);
	ev(&t, DB_LOCK_REL, T_W1, PC_REL, LOCK_A, 13, 0);
	irql(&t, T_W1, PC_LOWER, 13, 0);
	struct analysis_report *rep = analyse(&t, "pass");
	assert_int_equal(rep->n_findings, 0);
	analysis_report_free(rep);
}

/* ---------------------------------------------------------------- interrupts */

static void test_eoi_then_switch_inside_interrupt_is_reported(void **state)
{
	(void)state;
	struct trace t = {0};
	clock_tick(&t, T_W1, 0);
	int64_t tr = trap(&t, T_W1, CLOCK);
	irql(&t, T_W1, PC_ISR + 8, 0, 13);
	int64_t e = eoi(&t, T_W1);
	int64_t s = sw(&t, T_W1, T_W2);
	irql(&t, T_W2, PC_SWAP + 0x30, 13, 0);
	ev(&t, DB_IRQL, T_W2, PC_WORK, 0, 0, 0);
	struct analysis_report *rep = analyse(&t, "pass");
	assert_only(rep, (int[]){ANALYSIS_EOI_BEFORE_SWITCH}, 1);
	const struct analysis_finding *f = find_kind(rep, ANALYSIS_EOI_BEFORE_SWITCH);
	assert_int_equal(f->n_steps, 3);
	assert_int_equal(f->steps[0].event_id, tr);
	assert_int_equal(f->steps[1].event_id, e);
	assert_int_equal(f->steps[2].event_id, s);
	assert_string_equal(f->steps[2].role, "switch");
	assert_int_equal(f->event_id, s);
	assert_string_equal(f->title, "EOI then context switch inside interrupt 0xd1 (IRQL 13)");
	analysis_report_free(rep);
}

/* eoi-before-switch as our kernel wedges: the next clock nests on the new
 * thread, whose handler spins on a lock the switched-out handler holds. */
static void test_eoi_before_switch_hang_has_causal_chain(void **state)
{
	(void)state;
	struct trace t = {0};
	trap(&t, T_W1, CLOCK);
	irql(&t, T_W1, PC_ISR + 8, 0, 13);
	int64_t held = dpc_acquire(&t, T_W1, LOCK_A, 13);
	int64_t e = eoi(&t, T_W1);
	int64_t s = sw(&t, T_W1, T_W2);
	irql(&t, T_W2, PC_SWAP + 0x30, 13, 0);
	int64_t tr = trap(&t, T_W2, CLOCK);
	irql(&t, T_W2, PC_ISR + 8, 0, 13);
	int64_t spin = ev(&t, DB_LOCK_TRY, T_W2, PC_SPINDPC, LOCK_A, 13, 0);
	struct analysis_report *rep = analyse(&t, "hang");
	assert_true(count_kind(rep, ANALYSIS_EOI_BEFORE_SWITCH) == 1);
	const struct analysis_finding *h = find_kind(rep, ANALYSIS_HANG);
	assert_int_equal(rep->findings[0].kind, ANALYSIS_HANG);
	assert_string_equal(h->title, "hang: worker2 spins on ScenarioLockA held by worker1");
	int64_t want[] = {held, e, s, tr, spin};
	for (size_t k = 0; k < 5; k++) {
		assert_true(k < h->n_steps);
		assert_int_equal(h->steps[k].event_id, want[k]);
	}
	assert_string_equal(h->steps[4].role, "spin");
	analysis_report_free(rep);
}

static void test_switch_after_lowering_to_dispatch_in_interrupt_is_clean(void **state)
{
	(void)state;
	struct trace t = {0};
	trap(&t, T_W1, CLOCK);
	irql(&t, T_W1, PC_ISR + 8, 0, 13);
	eoi(&t, T_W1);
	irql(&t, T_W1, PC_ISR + 0x70, 13, 2);
	sw(&t, T_W1, T_W2);
	irql(&t, T_W2, PC_SWAP + 0x30, 2, 0);
	clock_tick(&t, T_W2, 0); /* the other thread takes the clock: no nesting */
	struct analysis_report *rep = analyse(&t, "pass");
	assert_int_equal(rep->n_findings, 0);
	analysis_report_free(rep);
}

static void test_missing_eoi_and_hang(void **state)
{
	(void)state;
	struct trace t = {0};
	clock_tick(&t, T_W1, 0);
	clock_tick(&t, T_W1, 0);
	int64_t tr = trap(&t, T_W1, CLOCK);
	irql(&t, T_W1, PC_ISR + 8, 0, 13);
	irql(&t, T_W1, PC_ISR + 0x70, 13, 0);
	int64_t ir = iret(&t, T_W1, CLOCK);
	ev(&t, DB_IRQL, T_W1, PC_WORK, 0, 0, 0);
	struct analysis_report *rep = analyse(&t, "hang");
	assert_only(rep, (int[]){ANALYSIS_HANG, ANALYSIS_MISSING_EOI}, 2);
	const struct analysis_finding *f = find_kind(rep, ANALYSIS_MISSING_EOI);
	assert_int_equal(f->count, 1);
	assert_int_equal(f->steps[0].event_id, tr);
	assert_int_equal(f->steps[1].event_id, ir);
	assert_string_equal(f->title, "interrupt 0xd1 returned without EOI (1 of 3 times); it never fired again");
	const struct analysis_finding *h = find_kind(rep, ANALYSIS_HANG);
	assert_string_equal(h->title, "hang: interrupt 0xd1 returned without EOI and never fired again");
	assert_int_equal(h->event_id, ir);
	analysis_report_free(rep);
}

static void test_vector_never_eoied_is_not_missing_eoi(void **state)
{
	(void)state;
	struct trace t = {0};
	clock_tick(&t, T_W1, 0);
	for (int i = 0; i < 3; i++) { /* a software interrupt: int 0x2f */
		trap(&t, T_W1, 0x2f);
		iret(&t, T_W1, 0x2f);
	}
	trap(&t, T_W1, 14); /* an exception: no EOI */
	iret(&t, T_W1, 14);
	struct analysis_report *rep = analyse(&t, "pass");
	assert_int_equal(rep->n_findings, 0);
	analysis_report_free(rep);
}

static void test_nested_same_vector_is_reported(void **state)
{
	(void)state;
	struct trace t = {0};
	int64_t outer = trap(&t, T_W1, CLOCK);
	irql(&t, T_W1, PC_ISR + 8, 0, 13);
	int64_t e = eoi(&t, T_W1);
	irql(&t, T_W1, PC_ISR + 0x70, 13, 5); /* still interrupt work, at a device level */
	int64_t inner = trap(&t, T_W1, CLOCK);
	irql(&t, T_W1, PC_ISR + 8, 5, 13);
	eoi(&t, T_W1);
	irql(&t, T_W1, PC_ISR + 0x70, 13, 5);
	iret(&t, T_W1, CLOCK);
	irql(&t, T_W1, PC_ISR + 0x78, 5, 0);
	iret(&t, T_W1, CLOCK);
	struct analysis_report *rep = analyse(&t, "pass");
	assert_only(rep, (int[]){ANALYSIS_NESTED_VECTOR}, 1);
	const struct analysis_finding *f = find_kind(rep, ANALYSIS_NESTED_VECTOR);
	assert_int_equal(f->n_steps, 3);
	assert_int_equal(f->steps[0].event_id, outer);
	assert_int_equal(f->steps[1].event_id, e);
	assert_int_equal(f->steps[2].event_id, inner);
	assert_int_equal(f->event_id, inner);
	analysis_report_free(rep);
}

/* Our clean kernel runs DPCs at DISPATCH_LEVEL on the way out of the clock
 * interrupt; the next clock interrupt may arrive then. That is NT's design. */
static void test_clock_during_the_dpc_tail_of_the_clock_is_clean(void **state)
{
	(void)state;
	struct trace t = {0};
	trap(&t, T_W1, CLOCK);
	irql(&t, T_W1, PC_ISR + 8, 0, 13);
	eoi(&t, T_W1);
	irql(&t, T_W1, PC_ISR + 0x70, 13, 2);
	clock_tick(&t, T_W1, 2);
	irql(&t, T_W1, PC_ISR + 0x78, 2, 0);
	iret(&t, T_W1, CLOCK);
	struct analysis_report *rep = analyse(&t, "pass");
	assert_int_equal(rep->n_findings, 0);
	analysis_report_free(rep);
}

/* eoi-before-switch, then the clock fires on the incoming thread while the
 * outgoing one still has its handler open. */
static void test_vector_delivered_again_after_eoi_before_switch_is_nested(void **state)
{
	(void)state;
	struct trace t = {0};
	int64_t outer = trap(&t, T_W1, CLOCK);
	irql(&t, T_W1, PC_ISR + 8, 0, 13);
	eoi(&t, T_W1);
	sw(&t, T_W1, T_W2);
	irql(&t, T_W2, PC_SWAP + 0x38, 13, 0);
	int64_t again = trap(&t, T_W2, CLOCK);
	irql(&t, T_W2, PC_ISR + 8, 0, 13);
	eoi(&t, T_W2);
	irql(&t, T_W2, PC_ISR + 0x70, 13, 0);
	iret(&t, T_W2, CLOCK);
	struct analysis_report *rep = analyse(&t, "bugcheck");
	assert_only(rep, (int[]){ANALYSIS_EOI_BEFORE_SWITCH, ANALYSIS_NESTED_VECTOR}, 2);
	const struct analysis_finding *f = find_kind(rep, ANALYSIS_NESTED_VECTOR);
	assert_int_equal(f->steps[0].event_id, outer);
	assert_string_equal(f->steps[0].thread_name, "worker1");
	assert_int_equal(f->event_id, again);
	assert_string_equal(f->title, "interrupt 0xd1 delivered again while its handler on worker1 had not returned");
	analysis_report_free(rep);
}

/* ---------------------------------------------------------------- IRQL rules */

static void test_irql_leaked_across_switch_is_reported(void **state)
{
	(void)state;
	struct trace t = {0};
	irql(&t, T_W1, PC_WORK, 0, 0);
	int64_t out = sw(&t, T_W1, T_W2); /* worker1 leaves at PASSIVE */
	irql(&t, T_W2, PC_RAISE, 0, 2);
	int64_t in = sw(&t, T_W2, T_W1); /* global IRQL: nothing restores worker1's */
	int64_t res = ev(&t, DB_LOCK_REL, T_W1, PC_WORK + 0x10, EVENT_1, -1, 0);
	(void)res;
	struct analysis_report *rep = analyse(&t, "pass");
	const struct analysis_finding *f = find_kind(rep, ANALYSIS_IRQL_LEAK_SWITCH);
	assert_string_equal(f->title, "worker1 resumed at IRQL 2 after leaving at IRQL 0");
	assert_int_equal(f->steps[0].event_id, out);
	assert_int_equal(f->steps[1].event_id, in);
	assert_int_equal(f->steps[2].event_id, res);
	assert_int_equal(f->event_id, in);
	assert_int_equal(count_kind(rep, ANALYSIS_IRQL_LEAK_SWITCH), 1);
	analysis_report_free(rep);
}

static void test_irql_restored_by_swap_context_is_clean(void **state)
{
	(void)state;
	struct trace t = {0};
	irql(&t, T_W1, PC_WORK, 0, 0);
	sw(&t, T_W1, T_W2);
	irql(&t, T_W2, PC_RAISE, 0, 2);
	sw(&t, T_W2, T_W1);
	irql(&t, T_W1, PC_SWAP + 0x30, 2, 0); /* KiSwapContext restores worker1's IRQL */
	irql(&t, T_W1, PC_LOWER, 0, 0);
	struct analysis_report *rep = analyse(&t, "pass");
	assert_int_equal(rep->n_findings, 0);
	analysis_report_free(rep);
}

static void test_lower_to_higher_and_raise_to_lower_are_reported(void **state)
{
	(void)state;
	struct trace t = {0};
	int64_t low = irql(&t, T_W1, PC_LOWER + 0x8, 0, 2);
	irql(&t, T_W1, PC_RAISE + 0x8, 2, 13);
	int64_t rai = irql(&t, T_W1, PC_RAISE + 0x8, 13, 2);
	irql(&t, T_W1, PC_LOWER + 0x8, 2, 0);
	struct analysis_report *rep = analyse(&t, "completed");
	assert_only(rep, (int[]){ANALYSIS_IRQL_LOWER_RAISES, ANALYSIS_IRQL_RAISE_LOWERS}, 2);
	const struct analysis_finding *f = find_kind(rep, ANALYSIS_IRQL_LOWER_RAISES);
	assert_int_equal(f->event_id, low);
	assert_string_equal(f->title, "lower call KeLowerIrql raised IRQL 0 -> 2");
	assert_string_equal(f->steps[0].where, "KeLowerIrql+0x8");
	f = find_kind(rep, ANALYSIS_IRQL_RAISE_LOWERS);
	assert_int_equal(f->event_id, rai);
	assert_string_equal(f->title, "raise call KeRaiseIrql lowered IRQL 13 -> 2");
	analysis_report_free(rep);
}

static void test_cr8_write_outside_raise_lower_is_not_judged(void **state)
{
	(void)state;
	struct trace t = {0};
	irql(&t, T_W1, PC_ISR + 8, 0, 13); /* interrupt stub raising */
	irql(&t, T_W1, PC_ISR + 0x70, 13, 0);
	irql(&t, T_W1, 0x9999, 0, 5); /* unknown code */
	irql(&t, T_W1, 0x9999, 5, 0);
	struct analysis_report *rep = analyse(&t, "pass");
	assert_int_equal(rep->n_findings, 0);
	analysis_report_free(rep);
}

static void test_spinlock_acquire_above_dispatch_is_reported(void **state)
{
	(void)state;
	struct trace t = {0};
	irql(&t, T_W1, PC_RAISE, 0, 13);
	int64_t bad = evop(&t, DB_LOCK_TRY, T_W1, PC_SPIN, LOCK_B, 13, 0, RAISE_OP);
	evop(&t, DB_LOCK_ACQ, T_W1, PC_SPIN + 0x20, LOCK_B, 13, 0, RAISE_OP);
	ev(&t, DB_LOCK_REL, T_W1, PC_REL, LOCK_B, 13, 0);
	dpc_acquire(&t, T_W1, LOCK_C, 13); /* AtDpcLevel above DISPATCH: allowed */
	ev(&t, DB_LOCK_REL, T_W1, PC_REL, LOCK_C, 13, 0);
	irql(&t, T_W1, PC_LOWER, 13, 0);
	struct analysis_report *rep = analyse(&t, "pass");
	assert_only(rep, (int[]){ANALYSIS_SPINLOCK_ABOVE_DISPATCH}, 1);
	const struct analysis_finding *f = find_kind(rep, ANALYSIS_SPINLOCK_ABOVE_DISPATCH);
	assert_int_equal(f->event_id, bad);
	assert_string_equal(f->title, "raising spinlock ScenarioLockB acquired at IRQL 13 > DISPATCH_LEVEL");
	analysis_report_free(rep);
}

static void test_spinlock_at_dpc_level_below_dispatch_is_reported(void **state)
{
	(void)state;
	struct trace t = {0};
	irql(&t, T_W1, PC_WORK, 0, 0);
	int64_t acq = dpc_acquire(&t, T_W1, LOCK_B, 0);
	ev(&t, DB_LOCK_REL, T_W1, PC_REL, LOCK_B, 0, 0);
	struct analysis_report *rep = analyse(&t, "pass");
	assert_only(rep, (int[]){ANALYSIS_SPINLOCK_BELOW_DISPATCH}, 1);
	assert_int_equal(find_kind(rep, ANALYSIS_SPINLOCK_BELOW_DISPATCH)->event_id, acq - 1);
	analysis_report_free(rep);
}

static void test_wait_at_dispatch_with_timeout_is_reported_and_poll_is_not(void **state)
{
	(void)state;
	struct trace t = {0};
	irql(&t, T_W1, PC_RAISE, 0, 2);
	ev(&t, DB_WAIT, T_W1, PC_WAIT, EVENT_1, 2, 0); /* zero timeout: a poll */
	ev(&t, DB_WAIT_END, T_W1, PC_WAIT + 0x40, EVENT_1, 0x102, 0);
	int64_t w = ev(&t, DB_WAIT, T_W1, PC_WAIT, EVENT_1, 2, -10000);
	ev(&t, DB_WAIT_END, T_W1, PC_WAIT + 0x40, EVENT_1, 0x102, 0);
	struct analysis_report *rep = analyse(&t, "pass");
	assert_only(rep, (int[]){ANALYSIS_WAIT_AT_DISPATCH}, 1);
	const struct analysis_finding *f = find_kind(rep, ANALYSIS_WAIT_AT_DISPATCH);
	assert_int_equal(f->event_id, w);
	assert_int_equal(f->count, 1);
	analysis_report_free(rep);
}


/* global-irql as our kernel shows it: every switch happens at DISPATCH_LEVEL,
 * and the scheduler returns a thread to the IRQL it waited at; with one global
 * IRQL it returns it to another thread's. */
static void test_irql_leaked_to_a_thread_that_waited_is_reported(void **state)
{
	(void)state;
	struct trace t = {0};
	sw(&t, T_IDLE, T_W1);
	irql(&t, T_W1, PC_LOWER + 0x40, 2, 0);
	ev(&t, DB_WAIT, T_W1, PC_WAIT, EVENT_1, 0, INT64_MIN); /* waits at PASSIVE */
	irql(&t, T_W1, PC_WORK + 0x40, 0, 2);
	int64_t out = sw(&t, T_W1, T_W2);
	irql(&t, T_W2, PC_SWAP + 0x38, 2, 2);
	irql(&t, T_W2, PC_WORK + 0x60, 2, 0);
	irql(&t, T_W2, PC_RAISE, 0, 1);
	ev(&t, DB_SIGNAL, T_W2, PC_WORK, EVENT_1, 0, 0);
	ev(&t, DB_WAIT, T_W2, PC_WAIT, EVENT_1 + 8, 1, INT64_MIN);
	irql(&t, T_W2, PC_WORK + 0x40, 1, 2);
	int64_t in = sw(&t, T_W2, T_W1);
	irql(&t, T_W1, PC_SWAP + 0x38, 2, 2);
	irql(&t, T_W1, PC_WORK + 0x60, 2, 1); /* the scheduler "restores" worker2's IRQL */
	int64_t res = ev(&t, DB_MARKER, T_W1, PC_WORK, 0, DB_MARK_SERIAL, 0);
	irql(&t, T_W1, PC_WORK + 0x40, 1, 2);
	sw(&t, T_W1, T_W2);
	irql(&t, T_W2, PC_SWAP + 0x38, 2, 2);
	irql(&t, T_W2, PC_WORK + 0x60, 2, 1); /* worker2 waited at APC: right */
	irql(&t, T_W2, PC_LOWER, 1, 0);      /* and lowers itself: not a leak */
	ev(&t, DB_MARKER, T_W2, PC_WORK, 0, DB_MARK_SERIAL, 0);
	struct analysis_report *rep = analyse(&t, "completed");
	assert_only(rep, (int[]){ANALYSIS_IRQL_LEAK_SWITCH}, 1);
	const struct analysis_finding *f = find_kind(rep, ANALYSIS_IRQL_LEAK_SWITCH);
	assert_int_equal(f->count, 1);
	assert_string_equal(f->title, "worker1 resumed at IRQL 1 after leaving at IRQL 0");
	assert_int_equal(f->steps[0].event_id, out);
	assert_int_equal(f->steps[1].event_id, in);
	assert_int_equal(f->steps[2].event_id, res);
	analysis_report_free(rep);
}

/* missing-eoi as our kernel shows it: the very first clock interrupt returns
 * without EOI, the trace has no EOI at all, and the run hangs. */
static void test_first_interrupt_without_eoi_before_a_hang_is_reported(void **state)
{
	(void)state;
	struct trace t = {0};
	int64_t tr = trap(&t, T_IDLE, CLOCK);
	irql(&t, T_IDLE, PC_ISR + 8, 0, 13);
	irql(&t, T_IDLE, PC_ISR + 0x70, 13, 2);
	sw(&t, T_IDLE, T_W1); /* dispatch at DISPATCH_LEVEL inside the interrupt */
	irql(&t, T_W1, PC_SWAP + 0x38, 2, 2);
	irql(&t, T_W1, PC_WORK + 0x60, 2, 0);
	ev(&t, DB_MARKER, T_W1, PC_WORK, 0, DB_MARK_SERIAL, 0);
	irql(&t, T_W1, PC_WORK + 0x40, 0, 2);
	sw(&t, T_W1, T_IDLE);
	irql(&t, T_IDLE, PC_SWAP + 0x38, 2, 2);
	irql(&t, T_IDLE, PC_WORK + 0x60, 2, 0);
	int64_t ir = iret(&t, T_IDLE, CLOCK);
	struct analysis_report *rep = analyse(&t, "hang");
	assert_only(rep, (int[]){ANALYSIS_HANG, ANALYSIS_MISSING_EOI}, 2);
	assert_int_equal(find_kind(rep, ANALYSIS_MISSING_EOI)->steps[0].event_id, tr);
	const struct analysis_finding *h = find_kind(rep, ANALYSIS_HANG);
	assert_string_equal(h->title, "hang: interrupt 0xd1 returned without EOI and never fired again");
	assert_int_equal(h->event_id, ir);
	analysis_report_free(rep);
	rep = analyse(&t, "pass"); /* no EOI anywhere and no hang: the tracer may not see them */
	assert_int_equal(rep->n_findings, 0);
	analysis_report_free(rep);
}

/* A probed KeLowerIrql call and the CR8 write inside it are one call. */
static void test_probed_call_and_its_cr8_write_count_once(void **state)
{
	(void)state;
	struct trace t = {0};
	irql(&t, T_W1, PC_RAISE, 0, 2);
	irql(&t, T_W1, PC_RAISE + 0x1c, 0, 2);
	int64_t call = irql(&t, T_W1, PC_LOWER, 2, 13);
	irql(&t, T_W1, PC_LOWER + 0x2c, 2, 13);
	irql(&t, T_W1, PC_LOWER, 13, 0);
	irql(&t, T_W1, PC_LOWER + 0x2c, 13, 0);
	struct analysis_report *rep = analyse(&t, "completed");
	assert_only(rep, (int[]){ANALYSIS_IRQL_LOWER_RAISES}, 1);
	const struct analysis_finding *f = find_kind(rep, ANALYSIS_IRQL_LOWER_RAISES);
	assert_int_equal(f->count, 1);
	assert_int_equal(f->event_id, call);
	analysis_report_free(rep);
}

/* Mutex ownership granted at release time to the waiter (KiSatisfyMutexWait
 * runs in the releasing thread): the waiter's later release is its own. */
static void test_mutex_granted_to_a_waiter_by_the_releaser_is_clean(void **state)
{
	(void)state;
	struct trace t = {0};
	ev(&t, DB_WAIT, T_W1, PC_WAIT, MUTEX_1, 0, INT64_MIN);
	ev(&t, DB_MUTEX_ACQ, T_W1, PC_MUTEX, MUTEX_1, 0, 0);
	sw(&t, T_W1, T_W2);
	ev(&t, DB_WAIT, T_W2, PC_WAIT, MUTEX_1, 0, INT64_MIN); /* blocks */
	sw(&t, T_W2, T_W1);
	ev(&t, DB_MUTEX_REL, T_W1, PC_MUTREL, MUTEX_1, 0, 0);
	ev(&t, DB_MUTEX_ACQ, T_W1, PC_MUTEX, MUTEX_1, 0, 0); /* granted to worker2 */
	ev(&t, DB_WAIT, T_W1, PC_WAIT, EVENT_1, 0, INT64_MIN);
	sw(&t, T_W1, T_W2);
	ev(&t, DB_MUTEX_REL, T_W2, PC_MUTREL, MUTEX_1, 0, 0);
	ev(&t, DB_SIGNAL, T_W2, PC_WORK, EVENT_1, 0, 0);
	struct analysis_report *rep = analyse(&t, "pass");
	print_findings(rep);
	assert_int_equal(rep->n_findings, 0);
	analysis_report_free(rep);
}

/* ---------------------------------------------------------------- ownership */

static void test_recursive_spinlock_and_hang(void **state)
{
	(void)state;
	struct trace t = {0};
	int64_t first = spin_acquire(&t, T_W1, LOCK_A, 0);
	int64_t again = ev(&t, DB_LOCK_TRY, T_W1, PC_SPIN, LOCK_A, 2, 0);
	struct analysis_report *rep = analyse(&t, "hang");
	assert_only(rep, (int[]){ANALYSIS_HANG, ANALYSIS_RECURSIVE_SPINLOCK, ANALYSIS_LOCK_HELD_AT_EXIT}, 3);
	const struct analysis_finding *f = find_kind(rep, ANALYSIS_RECURSIVE_SPINLOCK);
	assert_int_equal(f->steps[0].event_id, first);
	assert_int_equal(f->steps[1].event_id, again);
	assert_string_equal(f->title, "recursive acquire of spinlock ScenarioLockA by worker1");
	assert_string_equal(find_kind(rep, ANALYSIS_HANG)->title, "hang: worker1 spins on ScenarioLockA, which it already holds");
	analysis_report_free(rep);
}

static void test_release_by_non_owner_is_reported(void **state)
{
	(void)state;
	struct trace t = {0};
	int64_t acq = spin_acquire(&t, T_W1, LOCK_A, 0);
	t.vcpu = 1;
	int64_t rel = ev(&t, DB_LOCK_REL, T_W2, PC_REL, LOCK_A, 2, 0);
	struct analysis_report *rep = analyse(&t, "pass");
	assert_only(rep, (int[]){ANALYSIS_RELEASE_NOT_OWNER}, 1);
	const struct analysis_finding *f = find_kind(rep, ANALYSIS_RELEASE_NOT_OWNER);
	assert_int_equal(f->steps[0].event_id, acq);
	assert_int_equal(f->steps[1].event_id, rel);
	assert_string_equal(f->title, "spinlock ScenarioLockA released by worker2, held by worker1");
	analysis_report_free(rep);
}

static void test_lock_handed_across_switch_is_not_a_foreign_release(void **state)
{
	(void)state;
	struct trace t = {0};
	spin_acquire(&t, T_W1, LOCK_DISP, 0);
	sw(&t, T_W1, T_W2);
	spin_release(&t, T_W2, LOCK_DISP, 0);
	struct analysis_report *rep = analyse(&t, "pass");
	assert_int_equal(rep->n_findings, 0);
	analysis_report_free(rep);
}

static void test_release_of_free_lock_is_reported(void **state)
{
	(void)state;
	struct trace t = {0};
	spin_acquire(&t, T_W1, LOCK_A, 0);
	spin_release(&t, T_W1, LOCK_A, 0);
	int64_t twice = ev(&t, DB_LOCK_REL, T_W1, PC_REL, LOCK_A, 0, 0);
	struct analysis_report *rep = analyse(&t, "pass");
	assert_only(rep, (int[]){ANALYSIS_RELEASE_NOT_HELD}, 1);
	assert_int_equal(find_kind(rep, ANALYSIS_RELEASE_NOT_HELD)->event_id, twice);
	analysis_report_free(rep);
}

static void test_mutex_recursion_by_owner_is_clean(void **state)
{
	(void)state;
	struct trace t = {0};
	for (int i = 0; i < 2; i++) {
		ev(&t, DB_WAIT, T_W1, PC_WAIT, MUTEX_1, 0, 0);
		ev(&t, DB_MUTEX_ACQ, T_W1, PC_MUTEX, MUTEX_1, 0, 0);
		ev(&t, DB_WAIT_END, T_W1, PC_WAIT + 0x40, MUTEX_1, 0, 0);
	}
	ev(&t, DB_MUTEX_REL, T_W1, PC_MUTREL, MUTEX_1, 0, 0);
	ev(&t, DB_MUTEX_REL, T_W1, PC_MUTREL, MUTEX_1, 0, 0);
	struct analysis_report *rep = analyse(&t, "hang");
	assert_int_equal(rep->n_findings, 1); /* only the hang itself: nothing is held or waiting */
	assert_int_equal(rep->findings[0].kind, ANALYSIS_HANG);
	assert_string_equal(rep->findings[0].title, "hang: no forward progress after event 8");
	analysis_report_free(rep);
}

static void test_spinlock_held_at_normal_exit_is_a_note(void **state)
{
	(void)state;
	struct trace t = {0};
	int64_t acq = spin_acquire(&t, T_W1, LOCK_B, 0);
	struct analysis_report *rep = analyse(&t, "pass");
	assert_only(rep, (int[]){ANALYSIS_LOCK_HELD_AT_EXIT}, 1);
	const struct analysis_finding *f = find_kind(rep, ANALYSIS_LOCK_HELD_AT_EXIT);
	assert_int_equal(f->severity, ANALYSIS_SEV_NOTE);
	assert_int_equal(f->event_id, acq);
	assert_int_equal(rep->hung, 0);
	analysis_report_free(rep);
}

/* ---------------------------------------------------------------- hang inference */

static void test_spinner_at_end_of_unknown_outcome_is_a_hang(void **state)
{
	(void)state;
	struct trace t = {0};
	spin_acquire(&t, T_W1, LOCK_A, 0);
	sw(&t, T_W1, T_W2); /* switched out holding it (no handoff release follows) */
	int64_t spin = ev(&t, DB_LOCK_TRY, T_W2, PC_SPIN, LOCK_A, 0, 0);
	struct analysis_report *rep = analyse(&t, NULL);
	assert_int_equal(rep->hung, 1);
	const struct analysis_finding *h = find_kind(rep, ANALYSIS_HANG);
	assert_int_equal(h->event_id, spin);
	assert_string_equal(h->title, "hang: worker2 spins on ScenarioLockA held by worker1");
	analysis_report_free(rep);
	rep = analyse(&t, "pass"); /* the run powered off: it did not hang */
	assert_int_equal(rep->hung, 0);
	assert_int_equal(count_kind(rep, ANALYSIS_HANG), 0);
	analysis_report_free(rep);
}

/* ---------------------------------------------------------------- dedup, API */

static void test_repeated_occurrences_merge_with_a_count(void **state)
{
	(void)state;
	struct trace t = {0};
	for (int i = 0; i < 3; i++) {
		spin_acquire(&t, T_W1, LOCK_A, 0);
		spin_acquire(&t, T_W1, LOCK_B, 2);
		spin_release(&t, T_W1, LOCK_B, 2);
		spin_release(&t, T_W1, LOCK_A, 0);
		spin_acquire(&t, T_W2, LOCK_B, 0);
		spin_acquire(&t, T_W2, LOCK_A, 2);
		spin_release(&t, T_W2, LOCK_A, 2);
		spin_release(&t, T_W2, LOCK_B, 0);
		irql(&t, T_W1, PC_LOWER, 0, 2);
		irql(&t, T_W1, PC_REL + 0x10, 2, 0);
	}
	struct analysis_report *rep = analyse(&t, "pass");
	assert_only(rep, (int[]){ANALYSIS_LOCK_ORDER, ANALYSIS_IRQL_LOWER_RAISES}, 2);
	assert_int_equal(count_kind(rep, ANALYSIS_LOCK_ORDER), 1);
	assert_int_equal(find_kind(rep, ANALYSIS_IRQL_LOWER_RAISES)->count, 3);
	assert_int_equal(rep->findings[0].kind, ANALYSIS_LOCK_ORDER);
	analysis_report_free(rep);
}

static void test_events_out_of_order_and_after_finish_are_refused(void **state)
{
	(void)state;
	struct analysis *a = NULL;
	assert_int_equal(analysis_new(NULL, &a, NULL), 0);
	struct db_event e = {.id = 5, .kind = DB_IRQL, .a = 0, .b = 2};
	assert_int_equal(analysis_feed(a, &e), 0);
	e.id = 5;
	assert_int_equal(analysis_feed(a, &e), ANALYSIS_E_ARG);
	e.id = 0; /* 0: the next id */
	assert_int_equal(analysis_feed(a, &e), 0);
	assert_int_equal(analysis_feed(NULL, &e), ANALYSIS_E_ARG);
	struct analysis_report *rep = NULL;
	assert_int_equal(analysis_finish(a, NULL, &rep, NULL), 0);
	e.id = 0;
	assert_int_equal(analysis_feed(a, &e), ANALYSIS_E_ARG); /* finished: no more events */
	struct analysis_report *again = NULL;
	char *err = NULL;
	assert_int_equal(analysis_finish(a, NULL, &again, &err), ANALYSIS_E_ARG);
	assert_null(again);
	assert_non_null(err);
	free(err);
	analysis_report_free(rep);
	analysis_free(a);
}

static void test_kind_names_round_trip(void **state)
{
	(void)state;
	for (int k = 1; k <= ANALYSIS_KIND_MAX; k++) {
		const char *n = analysis_kind_name(k);
		assert_non_null(n);
		assert_int_equal(analysis_kind_from_name(n), k);
	}
	assert_null(analysis_kind_name(0));
	assert_null(analysis_kind_name(ANALYSIS_KIND_MAX + 1));
	assert_int_equal(analysis_kind_from_name("no-such-check"), 0);
	assert_string_equal(analysis_kind_name(ANALYSIS_LOCK_ORDER), "lock-order");
	assert_string_equal(analysis_severity_name(ANALYSIS_SEV_NOTE), "note");
}

static void test_json_has_the_documented_shape(void **state)
{
	(void)state;
	struct trace t = {0};
	spin_acquire(&t, T_W1, LOCK_A, 0);
	int64_t again = ev(&t, DB_LOCK_TRY, T_W1, PC_SPIN, LOCK_A, 2, 0);
	struct analysis_report *rep = analyse(&t, "hang");
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(analysis_report_json(rep, f), 0);
	fclose(f);
	char want[128];
	assert_non_null(strstr(buf, "{\"outcome\": \"hang\", \"hung\": true, \"cut\": false, \"events\": 4, \"dropped\": 0, \"lost\": [], \"findings\": ["));
	assert_non_null(strstr(buf, "\"kind\": \"recursive-spinlock\", \"kind_id\": 7, \"severity\": \"error\""));
	snprintf(want, sizeof(want), "\"role\": \"try\", \"text\": \"worker1 tries the same lock again at KeAcquireSpinLockRaiseToDpc while holding it\", \"event\": %lld",
		 (long long)again);
	assert_non_null(strstr(buf, want));
	assert_non_null(strstr(buf, "\"lock_classes\": [\"ScenarioLockA\"]"));
	assert_non_null(strstr(buf, "\"threads\": [{\"addr\": \"0x200\", \"name\": \"worker1\"}]"));
	assert_non_null(strstr(buf, "\"lost\": null, \"steps\": ["));
	assert_string_equal(buf + len - 3, "]}\n");
	free(buf);
	analysis_report_free(rep);
}

/* A lost stretch (a DB_MARK_LOST marker) is kept in the report, counted in
 * dropped, and marks the findings whose last event comes after it. */
static void test_lost_stretch_marks_the_findings_after_it(void **state)
{
	(void)state;
	struct trace t = {0};
	spin_acquire(&t, T_W1, LOCK_A, 0);
	ev(&t, DB_LOCK_TRY, T_W1, PC_SPIN, LOCK_A, 2, 0); /* recursive, before the loss */
	int64_t marker = ev(&t, DB_MARKER, T_W1, 0, 40, DB_MARK_LOST, (int64_t)(100 * t.n + 50));
	spin_acquire(&t, T_W2, LOCK_B, 0);
	ev(&t, DB_LOCK_TRY, T_W2, PC_SPIN, LOCK_B, 2, 0); /* recursive, after it */
	struct analysis_report *rep = analyse(&t, "fail");
	assert_int_equal(rep->n_lost, 1);
	assert_int_equal(rep->dropped, 40);
	assert_int_equal(rep->lost[0].event_id, marker);
	assert_int_equal(rep->lost[0].events, 40);
	assert_int_equal(rep->lost[0].to_icount, 100 * (uint64_t)marker);
	int before = 0, after = 0;
	for (size_t i = 0; i < rep->n_findings; i++) {
		const struct analysis_finding *f = &rep->findings[i];
		if (f->kind != ANALYSIS_RECURSIVE_SPINLOCK)
			continue;
		if (f->icount < rep->lost[0].from_icount) {
			before++;
			assert_null(f->lost);
		} else {
			after++;
			assert_ptr_equal(f->lost, &rep->lost[0]);
		}
	}
	assert_int_equal(before, 1);
	assert_int_equal(after, 1);
	analysis_report_free(rep);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean_run_has_no_findings),
		cmocka_unit_test(test_lost_stretch_marks_the_findings_after_it),
		cmocka_unit_test(test_clean_run_with_unknown_outcome_is_not_a_hang),
		cmocka_unit_test(test_lockorder_reports_abba_cycle),
		cmocka_unit_test(test_lockorder_reports_three_lock_cycle_once),
		cmocka_unit_test(test_lockorder_consistent_order_and_subclass_nesting_are_clean),
		cmocka_unit_test(test_lockorder_finds_a_long_cycle_once),
		cmocka_unit_test(test_lockorder_dense_graph_is_one_finding_per_inversion),
		cmocka_unit_test(test_lockorder_ignores_locks_of_interrupted_context),
		cmocka_unit_test(test_lockorder_deadlock_on_mutexes_reports_cycle_and_hang),
		cmocka_unit_test(test_irq_unsafe_lock_and_self_deadlock_hang),
		cmocka_unit_test(test_irq_unsafe_lock_seen_from_the_hanging_attempt_alone),
		cmocka_unit_test(test_irq_lock_always_taken_at_interrupt_level_is_clean),
		cmocka_unit_test(test_eoi_then_switch_inside_interrupt_is_reported),
		cmocka_unit_test(test_eoi_before_switch_hang_has_causal_chain),
		cmocka_unit_test(test_switch_after_lowering_to_dispatch_in_interrupt_is_clean),
		cmocka_unit_test(test_missing_eoi_and_hang),
		cmocka_unit_test(test_vector_never_eoied_is_not_missing_eoi),
		cmocka_unit_test(test_nested_same_vector_is_reported),
		cmocka_unit_test(test_clock_during_the_dpc_tail_of_the_clock_is_clean),
		cmocka_unit_test(test_vector_delivered_again_after_eoi_before_switch_is_nested),
		cmocka_unit_test(test_irql_leaked_across_switch_is_reported),
		cmocka_unit_test(test_irql_restored_by_swap_context_is_clean),
		cmocka_unit_test(test_irql_leaked_to_a_thread_that_waited_is_reported),
		cmocka_unit_test(test_first_interrupt_without_eoi_before_a_hang_is_reported),
		cmocka_unit_test(test_probed_call_and_its_cr8_write_count_once),
		cmocka_unit_test(test_mutex_granted_to_a_waiter_by_the_releaser_is_clean),
		cmocka_unit_test(test_lower_to_higher_and_raise_to_lower_are_reported),
		cmocka_unit_test(test_cr8_write_outside_raise_lower_is_not_judged),
		cmocka_unit_test(test_spinlock_acquire_above_dispatch_is_reported),
		cmocka_unit_test(test_spinlock_at_dpc_level_below_dispatch_is_reported),
		cmocka_unit_test(test_wait_at_dispatch_with_timeout_is_reported_and_poll_is_not),
		cmocka_unit_test(test_recursive_spinlock_and_hang),
		cmocka_unit_test(test_release_by_non_owner_is_reported),
		cmocka_unit_test(test_lock_handed_across_switch_is_not_a_foreign_release),
		cmocka_unit_test(test_release_of_free_lock_is_reported),
		cmocka_unit_test(test_mutex_recursion_by_owner_is_clean),
		cmocka_unit_test(test_spinlock_held_at_normal_exit_is_a_note),
		cmocka_unit_test(test_spinner_at_end_of_unknown_outcome_is_a_hang),
		cmocka_unit_test(test_repeated_occurrences_merge_with_a_count),
		cmocka_unit_test(test_events_out_of_order_and_after_finish_are_refused),
		cmocka_unit_test(test_kind_names_round_trip),
		cmocka_unit_test(test_json_has_the_documented_shape),
	};
	return cmocka_run_group_tests_name("analysis", tests, NULL, NULL);
}
