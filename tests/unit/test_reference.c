/*
 * test_reference.c - the reference suite: lockdep's documented cases
 * (Documentation/locking/lockdep-design.rst and lib/locking-selftest.c: the
 * usage rules, recursive reads, trylock, nesting) and Driver Verifier's IRQL
 * and spinlock rules, each a small event script with its expected verdict,
 * fed through analysis_new/analysis_feed_text/analysis_finish.
 *
 * The verdict is the exact set of error and warning kinds (notes, the state
 * left at exit, are not part of it); "clean" is the empty set. Each case
 * names the rule it exercises, in our words; docs/checks.md lists the rules.
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

enum { T1 = 0x100, T2 = 0x200, T3 = 0x300 };
enum { A = 0xa0, B = 0xb0, C = 0xc0, X = 0xd0, Y = 0xe0, Z = 0xf0, D1 = 0x5010, D2 = 0x5020, M1 = 0x700,
       M2 = 0x710, EV = 0x800, DPC1 = 0x900, DPC2 = 0x910 };
/* Dynamic locks first taken at two call sites: E1, E3 at SITE1, E2, E4 at SITE2. */
enum { E1 = 0x6010, E2 = 0x6020, E3 = 0x6030, E4 = 0x6040 };
enum { SITE = 0x3040, PC = 0x3000, SITE1 = 0x3100, SITE2 = 0x3108 };

static const char *lock_class(void *ctx, uint64_t lock)
{
	(void)ctx;
	switch (lock) {
	case A: return "A";
	case B: return "B";
	case C: return "C";
	case X: return "X";
	case Y: return "Y";
	case Z: return "Z";
	case M1: return "M1";
	case M2: return "M2";
	}
	return NULL; /* dynamic: classed by the call site */
}

static char *symbolize(void *ctx, uint64_t pc, char *buf, size_t size)
{
	(void)ctx;
	if (pc >= PC && pc < PC + 0x100)
		snprintf(buf, size, "worker+0x%x", (unsigned)(pc - PC));
	else if (pc >= SITE1 && pc < SITE1 + 0x100)
		snprintf(buf, size, "walker+0x%x", (unsigned)(pc - SITE1));
	else
		snprintf(buf, size, "0x%llx", (unsigned long long)pc);
	return buf;
}

/* One event of a script. a = IRQL (-1: not known, as on a kernel without
 * CR8); preempt 0 in the table means "not declared". */
struct step {
	uint8_t kind;
	uint64_t thread, obj;
	int64_t a, b;
	uint16_t lockop;
	uint8_t ctx, flags;
	int32_t preempt;
	const char *text;
};

#define P DB_CTX_PROCESS
#define HI DB_CTX_HARDIRQ
#define SI DB_CTX_SOFTIRQ
#define IF DB_F_IF
#define OP(fl, irq, sub) DB_LOCKOP(DB_LF_##fl, DB_LI_##irq, sub)
/* Lock operations on a kernel without IRQL (Linux-like): acquire, release. */
#define ACQ(t, l, fl, ctx, f) {DB_LOCK_ACQ, t, l, -1, 0, OP(fl, NONE, 0), ctx, f, 0, NULL}
#define ACQN(t, l, fl, sub, ctx, f) {DB_LOCK_ACQ, t, l, -1, 0, OP(fl, NONE, sub), ctx, f, 0, NULL}
/* The same with the CR8 value 0 that a tracer reads on such a kernel. */
#define ACQ0(t, l, ctx, f) {DB_LOCK_ACQ, t, l, 0, 0, OP(SPIN, NONE, 0), ctx, f, 0, NULL}
#define REL0(t, l, ctx, f) {DB_LOCK_REL, t, l, 0, 0, 0, ctx, f, 0, NULL}
#define ACQBH(t, l) {DB_LOCK_ACQ, t, l, -1, 0, OP(SPIN, BH, 0), P, IF, 0, NULL}
#define TRY_OK(t, l, ctx, f) {DB_LOCK_ACQ, t, l, -1, 0, OP(SPIN, NONE, 0), ctx, (f) | DB_F_TRY, 0, NULL}
#define TRY_FAIL(t, l, ctx, f) {DB_LOCK_FAIL, t, l, -1, 0, OP(SPIN, NONE, 0), ctx, (f) | DB_F_TRY, 0, NULL}
#define REL(t, l, ctx, f) {DB_LOCK_REL, t, l, -1, 0, 0, ctx, f, 0, NULL}
#define RELF(t, l, fl, ctx, f) {DB_LOCK_REL, t, l, -1, 0, OP(fl, NONE, 0), ctx, f, 0, NULL}
#define RELBH(t, l) {DB_LOCK_REL, t, l, -1, 0, OP(SPIN, BH, 0), P, IF, 0, NULL}
#define SPIN_TRY(t, l) {DB_LOCK_TRY, t, l, -1, 0, OP(SPIN, NONE, 0), P, IF, 0, NULL}
#define EVT(k, t, ctx, f) {k, t, 0, -1, 0, 0, ctx, f, 0, NULL}
#define SLEEP(t, ctx, f, pre) {DB_SLEEP, t, 0, -1, 0, 0, ctx, f, pre, NULL}
/* NT-style: IRQL known. */
#define RAISE(t, from, to) {DB_IRQL, t, 1, from, to, 0, P, IF, 0, NULL}
#define LOWER(t, from, to) {DB_IRQL, t, 2, from, to, 0, P, IF, 0, NULL}
#define CR8(t, from, to) {DB_IRQL, t, 0, from, to, 0, P, IF, 0, NULL}
#define KTRY(t, l, irql, op) {DB_LOCK_TRY, t, l, irql, 0, op, P, IF, 0, NULL}
#define KACQ(t, l, irql, op) {DB_LOCK_ACQ, t, l, irql, 0, op, P, IF, 0, NULL}
#define KREL(t, l, irql, op, restore) {DB_LOCK_REL, t, l, irql, restore, op, P, IF, 0, NULL}
#define RD OP(SPIN, RAISE_DISPATCH, 0)
#define AD OP(SPIN, AT_DISPATCH, 0)
/* KeAcquireSpinLock-style from PASSIVE and its release back to PASSIVE. */
#define KLOCK(t, l) KTRY(t, l, 0, RD), CR8(t, 0, 2), KACQ(t, l, 2, RD)
#define KUNLOCK(t, l) KREL(t, l, 2, RD, 0), CR8(t, 2, 0)
#define TRAP(t, vec) {DB_TRAP, t, 0, vec, 0, 0, HI, IF, 0, NULL}
#define IRET(t, vec, f) {DB_IRET, t, 0, vec, 0, 0, P, f, 0, NULL}
#define EOI(t) {DB_EOI, t, 0, 1, 0, 0, HI, 0, 0, NULL}
#define SW(from, to) {DB_SWITCH, from, 0, from, to, 0, P, IF, 0, NULL}
#define WAIT(t, o, timeout) {DB_WAIT, t, o, -1, timeout, 0, P, IF, 0, NULL}
#define KWAIT(t, o, irql, timeout) {DB_WAIT, t, o, irql, timeout, 0, P, IF, 0, NULL}
#define MACQ(t, o) {DB_MUTEX_ACQ, t, o, -1, 0, OP(MUTEX, NONE, 0), P, IF, 0, NULL}
#define MREL(t, o) {DB_MUTEX_REL, t, o, -1, 0, 0, P, IF, 0, NULL}
#define SIGNAL(t, o) {DB_SIGNAL, t, o, -1, 0, 0, P, IF, 0, NULL}
#define QUEUE(t, o) {DB_DEFER_QUEUE, t, o, -1, 0, 0, HI, 0, 0, NULL}
#define RUN(t, o) {DB_DEFER_RUN, t, o, -1, 0, 0, SI, IF, 0, NULL}
#define BUGCHECK(t, code, text) {DB_BUGCHECK, t, 0, code, 0, 0, P, 0, 0, text}
/* A lock initialised (the kernel's init function, declared lock-init). */
#define INIT(t, l) {DB_LOCK_INIT, t, l, -1, 0, OP(SPIN, NONE, 0), P, IF, 0, NULL}
#define END {0, 0, 0, 0, 0, 0, 0, 0, 0, NULL}

struct ref_case {
	const char *name;
	const char *outcome;
	struct step steps[40];
	int want[6]; /* error/warning kinds, 0-terminated; {0} = clean */
};

static const struct ref_case cases[] = {
	/* ---- lockdep: the dependency graph ---- */
	{"AB-BA between two threads is a possible deadlock", "pass",
	 {ACQ(T1, A, SPIN, P, IF), ACQ(T1, B, SPIN, P, IF), REL(T1, B, P, IF), REL(T1, A, P, IF),
	  ACQ(T2, B, SPIN, P, IF), ACQ(T2, A, SPIN, P, IF), REL(T2, A, P, IF), REL(T2, B, P, IF), END},
	 {ANALYSIS_LOCK_ORDER}},
	{"a three-lock cycle is one finding", "pass",
	 {ACQ(T1, A, SPIN, P, IF), ACQ(T1, B, SPIN, P, IF), REL(T1, B, P, IF), REL(T1, A, P, IF),
	  ACQ(T1, B, SPIN, P, IF), ACQ(T1, C, SPIN, P, IF), REL(T1, C, P, IF), REL(T1, B, P, IF),
	  ACQ(T1, C, SPIN, P, IF), ACQ(T1, A, SPIN, P, IF), REL(T1, A, P, IF), REL(T1, C, P, IF), END},
	 {ANALYSIS_LOCK_ORDER}},
	{"one order everywhere is clean", "pass",
	 {ACQ(T1, A, SPIN, P, IF), ACQ(T1, B, SPIN, P, IF), REL(T1, B, P, IF), REL(T1, A, P, IF),
	  ACQ(T2, A, SPIN, P, IF), ACQ(T2, B, SPIN, P, IF), REL(T2, B, P, IF), REL(T2, A, P, IF), END},
	 {0}},
	{"a reverse-order trylock that succeeds orders nothing", "pass",
	 {ACQ(T1, A, SPIN, P, IF), ACQ(T1, B, SPIN, P, IF), REL(T1, B, P, IF), REL(T1, A, P, IF),
	  ACQ(T2, B, SPIN, P, IF), TRY_OK(T2, A, P, IF), REL(T2, A, P, IF), REL(T2, B, P, IF), END},
	 {0}},
	{"a failed trylock adds nothing and is no spinner", "hang",
	 {ACQ(T1, A, SPIN, P, IF), ACQ(T1, B, SPIN, P, IF), REL(T1, B, P, IF), REL(T1, A, P, IF),
	  ACQ(T2, B, SPIN, P, IF), TRY_FAIL(T2, A, P, IF), REL(T2, B, P, IF), END},
	 {ANALYSIS_HANG}},
	{"a trylocked class is held: a blocking acquire under it is ordered", "pass",
	 {ACQ(T1, A, SPIN, P, IF), ACQ(T1, B, SPIN, P, IF), REL(T1, B, P, IF), REL(T1, A, P, IF),
	  TRY_OK(T2, B, P, IF), ACQ(T2, A, SPIN, P, IF), REL(T2, A, P, IF), REL(T2, B, P, IF), END},
	 {ANALYSIS_LOCK_ORDER}},
	{"two instances of one class nested, in a kernel that annotates nesting: possible recursive locking", "pass",
	 {ACQ(T1, A, SPIN, P, IF), ACQN(T1, B, SPIN, 1, P, IF), REL(T1, B, P, IF), REL(T1, A, P, IF),
	  ACQ(T1, D1, SPIN, P, IF), ACQ(T1, D2, SPIN, P, IF), REL(T1, D2, P, IF), REL(T1, D1, P, IF), END},
	 {ANALYSIS_RECURSIVE_LOCKING}},
	{"the same nesting in a kernel built without nesting annotations says nothing", "pass",
	 {ACQ(T1, D1, SPIN, P, IF), ACQ(T1, D2, SPIN, P, IF), REL(T1, D2, P, IF), REL(T1, D1, P, IF), END},
	 {0}},
	{"two initialised instances nested in both orders: an inversion between instances", "pass",
	 {INIT(T1, D1), INIT(T1, D2),
	  ACQ(T1, D1, SPIN, P, IF), ACQ(T1, D2, SPIN, P, IF), REL(T1, D2, P, IF), REL(T1, D1, P, IF),
	  ACQ(T2, D2, SPIN, P, IF), ACQ(T2, D1, SPIN, P, IF), REL(T2, D1, P, IF), REL(T2, D2, P, IF), END},
	 {ANALYSIS_RECURSIVE_LOCKING}},
	{"instances nested one way, re-initialised (new objects at the same addresses), then the other way: clean",
	 "pass",
	 {INIT(T1, D1), INIT(T1, D2),
	  ACQ(T1, D1, SPIN, P, IF), ACQ(T1, D2, SPIN, P, IF), REL(T1, D2, P, IF), REL(T1, D1, P, IF),
	  INIT(T2, D2), INIT(T2, D1),
	  ACQ(T2, D2, SPIN, P, IF), ACQ(T2, D1, SPIN, P, IF), REL(T2, D1, P, IF), REL(T2, D2, P, IF), END},
	 {0}},
	{"one instance re-initialised between the orders, the other not: still two other objects, clean", "pass",
	 {INIT(T1, D1), INIT(T1, D2),
	  ACQ(T1, D1, SPIN, P, IF), ACQ(T1, D2, SPIN, P, IF), REL(T1, D2, P, IF), REL(T1, D1, P, IF),
	  INIT(T2, D1),
	  ACQ(T2, D2, SPIN, P, IF), ACQ(T2, D1, SPIN, P, IF), REL(T2, D1, P, IF), REL(T2, D2, P, IF), END},
	 {0}},
	{"re-initialised instances nested in both orders again: an inversion between the new instances", "pass",
	 {INIT(T1, D1), INIT(T1, D2),
	  ACQ(T1, D1, SPIN, P, IF), ACQ(T1, D2, SPIN, P, IF), REL(T1, D2, P, IF), REL(T1, D1, P, IF),
	  INIT(T2, D2), INIT(T2, D1),
	  ACQ(T2, D2, SPIN, P, IF), ACQ(T2, D1, SPIN, P, IF), REL(T2, D1, P, IF), REL(T2, D2, P, IF),
	  ACQ(T1, D1, SPIN, P, IF), ACQ(T1, D2, SPIN, P, IF), REL(T1, D2, P, IF), REL(T1, D1, P, IF), END},
	 {ANALYSIS_RECURSIVE_LOCKING}},
	{"instances never seen initialised nested in both orders: only a note (the memory may be reused)", "pass",
	 {ACQ(T1, D1, SPIN, P, IF), ACQ(T1, D2, SPIN, P, IF), REL(T1, D2, P, IF), REL(T1, D1, P, IF),
	  ACQ(T2, D2, SPIN, P, IF), ACQ(T2, D1, SPIN, P, IF), REL(T2, D1, P, IF), REL(T2, D2, P, IF), END},
	 {0}},
	{"locks classed by their first callers, in both orders: only a note (a parent and a child of one class)", "pass",
	 {ACQ(T1, E1, SPIN, P, IF), ACQ(T1, E2, SPIN, P, IF), REL(T1, E2, P, IF), REL(T1, E1, P, IF),
	  ACQ(T2, E4, SPIN, P, IF), ACQ(T2, E3, SPIN, P, IF), REL(T2, E3, P, IF), REL(T2, E4, P, IF), END},
	 {0}},
	{"a static lock in a cycle with a class named by its caller: an inversion", "pass",
	 {ACQ(T1, A, SPIN, P, IF), ACQ(T1, E1, SPIN, P, IF), REL(T1, E1, P, IF), REL(T1, A, P, IF),
	  ACQ(T2, E3, SPIN, P, IF), ACQ(T2, A, SPIN, P, IF), REL(T2, A, P, IF), REL(T2, E3, P, IF), END},
	 {ANALYSIS_LOCK_ORDER}},
	{"a nesting subclass makes the inner instance a class of its own", "pass",
	 {ACQ(T1, D1, SPIN, P, IF), ACQN(T1, D2, SPIN, 1, P, IF), REL(T1, D2, P, IF), REL(T1, D1, P, IF), END},
	 {0}},
	{"the same instance twice spins on itself", "hang",
	 {ACQ(T1, A, SPIN, P, IF), SPIN_TRY(T1, A), END},
	 {ANALYSIS_HANG, ANALYSIS_RECURSIVE_SPINLOCK}},
	{"A -(ER)-> B -(SN)-> A with recursive reads (interrupt context) is no deadlock", "pass",
	 {ACQ(T1, A, WRITE, SI, 0), ACQ(T1, B, READ, SI, 0), REL(T1, B, SI, 0), REL(T1, A, SI, 0),
	  ACQ(T2, B, READ, SI, 0), ACQ(T2, A, WRITE, SI, 0), REL(T2, A, SI, 0), REL(T2, B, SI, 0), END},
	 {0}},
	{"the same with rwlock reads in process context (they queue behind writers) is", "pass",
	 {ACQ(T1, A, WRITE, P, 0), ACQ(T1, B, READ, P, 0), REL(T1, B, P, 0), REL(T1, A, P, 0),
	  ACQ(T2, B, READ, P, 0), ACQ(T2, A, WRITE, P, 0), REL(T2, A, P, 0), REL(T2, B, P, 0), END},
	 {ANALYSIS_LOCK_ORDER}},
	{"selftest 1: X -(ER)-> Y -(ER)-> Z -(ER)-> X is a deadlock", "pass",
	 {ACQ(T1, X, WRITE, SI, 0), ACQ(T1, Y, READ, SI, 0), REL(T1, Y, SI, 0), REL(T1, X, SI, 0),
	  ACQ(T1, Y, WRITE, SI, 0), ACQ(T1, Z, READ, SI, 0), REL(T1, Z, SI, 0), REL(T1, Y, SI, 0),
	  ACQ(T1, Z, WRITE, SI, 0), ACQ(T1, X, READ, SI, 0), REL(T1, X, SI, 0), REL(T1, Z, SI, 0), END},
	 {ANALYSIS_LOCK_ORDER}},
	{"selftest 2: X -(EN)-> Y -(SR)-> Z -(ER)-> X is a deadlock", "pass",
	 {ACQ(T1, X, WRITE, SI, 0), ACQ(T1, Y, WRITE, SI, 0), REL(T1, Y, SI, 0), REL(T1, X, SI, 0),
	  ACQ(T1, Y, READ, SI, 0), ACQ(T1, Z, READ, SI, 0), REL(T1, Z, SI, 0), REL(T1, Y, SI, 0),
	  ACQ(T1, Z, WRITE, SI, 0), ACQ(T1, X, READ, SI, 0), REL(T1, X, SI, 0), REL(T1, Z, SI, 0), END},
	 {ANALYSIS_LOCK_ORDER}},
	{"selftest 3: X -(EN)-> Y -(SR)-> Z -(SN)-> X is not", "pass",
	 {ACQ(T1, X, WRITE, SI, 0), ACQ(T1, Y, WRITE, SI, 0), REL(T1, Y, SI, 0), REL(T1, X, SI, 0),
	  ACQ(T1, Y, READ, SI, 0), ACQ(T1, Z, READ, SI, 0), REL(T1, Z, SI, 0), REL(T1, Y, SI, 0),
	  ACQ(T1, Z, READ, SI, 0), ACQ(T1, X, WRITE, SI, 0), REL(T1, X, SI, 0), REL(T1, Z, SI, 0), END},
	 {0}},
	{"selftest 4: X -(ER)-> Y -(SR)-> Z -(EN)-> X is not", "pass",
	 {ACQ(T1, X, WRITE, SI, 0), ACQ(T1, Y, READ, SI, 0), REL(T1, Y, SI, 0), REL(T1, X, SI, 0),
	  ACQ(T1, Y, READ, SI, 0), ACQ(T1, Z, READ, SI, 0), REL(T1, Z, SI, 0), REL(T1, Y, SI, 0),
	  ACQ(T1, Z, WRITE, SI, 0), ACQ(T1, X, WRITE, SI, 0), REL(T1, X, SI, 0), REL(T1, Z, SI, 0), END},
	 {0}},
	{"rwsem reads are never recursive", "pass",
	 {ACQ(T1, A, RWSEM_WRITE, P, IF), ACQ(T1, B, RWSEM_READ, P, IF), REL(T1, B, P, IF), REL(T1, A, P, IF),
	  ACQ(T2, B, RWSEM_READ, P, IF), ACQ(T2, A, RWSEM_WRITE, P, IF), REL(T2, A, P, IF), REL(T2, B, P, IF),
	  END},
	 {ANALYSIS_LOCK_ORDER}},
	{"mutexes are in the graph from their first use, already nested", "pass",
	 {MACQ(T1, M1), MACQ(T1, M2), MREL(T1, M2), MREL(T1, M1), MACQ(T2, M2), MACQ(T2, M1), MREL(T2, M1),
	  MREL(T2, M2), END},
	 {ANALYSIS_LOCK_ORDER}},
	{"a semaphore and its own spinlock at one address are two locks", "pass",
	 {ACQ(T1, A, SEM, P, IF), ACQ(T1, A, SPIN, P, 0), REL(T1, A, P, 0), ACQ(T1, B, SPIN, P, IF),
	  REL(T1, B, P, IF), RELF(T1, A, SEM, P, IF), ACQ(T2, B, SPIN, P, IF), ACQ(T2, A, SPIN, P, 0), REL(T2, A, P, 0),
	  REL(T2, B, P, IF), END},
	 {0}},
	{"without nesting annotations, a cycle through a self-nesting class is left out", "pass",
	 {ACQ(T1, D1, SPIN, P, IF), ACQ(T1, D2, SPIN, P, IF), ACQ(T1, A, SPIN, P, IF), REL(T1, A, P, IF),
	  REL(T1, D2, P, IF), REL(T1, D1, P, IF), ACQ(T2, A, SPIN, P, IF), ACQ(T2, D1, SPIN, P, IF),
	  REL(T2, D1, P, IF), REL(T2, A, P, IF), END},
	 {0}},
	{"with annotations the same cycle is reported", "pass",
	 {ACQ(T1, C, SPIN, P, IF), ACQN(T1, X, SPIN, 1, P, IF), REL(T1, X, P, IF), REL(T1, C, P, IF),
	  ACQ(T1, D1, SPIN, P, IF), ACQN(T1, D2, SPIN, 1, P, IF), ACQ(T1, A, SPIN, P, IF), REL(T1, A, P, IF),
	  REL(T1, D2, P, IF), REL(T1, D1, P, IF), ACQ(T2, A, SPIN, P, IF), ACQ(T2, D1, SPIN, P, IF),
	  REL(T2, D1, P, IF), REL(T2, A, P, IF), END},
	 {ANALYSIS_LOCK_ORDER}},
	/* ---- lockdep: irq usage ---- */
	{"{IN-HARDIRQ-W} -> {HARDIRQ-ON-W}: used in an interrupt, held elsewhere with IRQs on", "pass",
	 {ACQ(T1, A, SPIN, HI, 0), REL(T1, A, HI, 0), ACQ(T2, A, SPIN, P, IF), REL(T2, A, P, IF), END},
	 {ANALYSIS_IRQ_UNSAFE_LOCK}},
	{"the same where the tracer read CR8 = 0 (a kernel that never writes CR8 is not 'at IRQL 0')", "pass",
	 {ACQ0(T1, A, HI, 0), REL0(T1, A, HI, 0), ACQ0(T2, A, P, IF), REL0(T2, A, P, IF), END},
	 {ANALYSIS_IRQ_UNSAFE_LOCK}},
	{"the same lock held with IRQs off everywhere is irq-safe", "pass",
	 {ACQ(T1, A, SPIN, HI, 0), REL(T1, A, HI, 0), ACQ(T2, A, SPIN, P, 0), REL(T2, A, P, 0),
	  EVT(DB_MARKER, T2, P, IF), END},
	 {0}},
	{"IRQs enabled later while the lock is still held count as HARDIRQ-ON", "pass",
	 {ACQ(T1, A, SPIN, HI, 0), REL(T1, A, HI, 0), ACQ(T2, A, SPIN, P, 0), EVT(DB_MARKER, T2, P, IF),
	  REL(T2, A, P, IF), END},
	 {ANALYSIS_IRQ_UNSAFE_LOCK}},
	{"{IN-SOFTIRQ-W} -> {SOFTIRQ-ON-W}", "pass",
	 {ACQ(T1, A, SPIN, SI, IF), REL(T1, A, SI, IF), ACQ(T2, A, SPIN, P, IF), REL(T2, A, P, IF), END},
	 {ANALYSIS_IRQ_UNSAFE_LOCK}},
	{"a _bh acquire disables softirqs: softirq-safe", "pass",
	 {ACQ(T1, A, SPIN, SI, IF), REL(T1, A, SI, IF), ACQBH(T2, A), RELBH(T2, A), END},
	 {0}},
	{"read use in an interrupt and read holds with IRQs on do not conflict", "pass",
	 {ACQ(T1, A, READ, HI, 0), REL(T1, A, HI, 0), ACQ(T2, A, READ, P, IF), REL(T2, A, P, IF), END},
	 {0}},
	{"read use in an interrupt conflicts with a write hold with IRQs on", "pass",
	 {ACQ(T1, A, READ, HI, 0), REL(T1, A, HI, 0), ACQ(T2, A, WRITE, P, IF), REL(T2, A, P, IF), END},
	 {ANALYSIS_IRQ_UNSAFE_LOCK}},
	{"a trylock in an interrupt does not make the class used there", "pass",
	 {TRY_OK(T1, A, HI, 0), REL(T1, A, HI, 0), ACQ(T2, A, SPIN, P, IF), REL(T2, A, P, IF), END},
	 {0}},
	{"HARDIRQ-safe -> HARDIRQ-unsafe lock order", "pass",
	 {ACQ(T1, A, SPIN, HI, 0), REL(T1, A, HI, 0), ACQ(T2, A, SPIN, P, 0), ACQ(T2, B, SPIN, P, 0),
	  REL(T2, B, P, 0), REL(T2, A, P, 0), ACQ(T3, B, SPIN, P, IF), REL(T3, B, P, IF), END},
	 {ANALYSIS_IRQ_LOCK_ORDER}},
	{"IRQL kernel: used in an ISR at 13 and held at 13 elsewhere is safe", "pass",
	 {{DB_LOCK_ACQ, T1, A, 13, 0, AD, HI, IF, 0, NULL}, KREL(T1, A, 13, AD, 0), RAISE(T2, 0, 13),
	  KACQ(T2, A, 13, AD), KREL(T2, A, 13, AD, 0), LOWER(T2, 13, 0), END},
	 {0}},
	{"IRQL kernel: used in an ISR at 13, held at DISPATCH elsewhere", "pass",
	 {{DB_LOCK_ACQ, T1, A, 13, 0, AD, HI, IF, 0, NULL}, KREL(T1, A, 13, AD, 0), KLOCK(T2, A), KUNLOCK(T2, A),
	  END},
	 {ANALYSIS_IRQ_UNSAFE_LOCK}},
	/* ---- Driver Verifier: IRQL and spinlocks ---- */
	{"a raising acquire above DISPATCH_LEVEL", "pass",
	 {RAISE(T1, 0, 13), KTRY(T1, A, 13, RD), KACQ(T1, A, 13, RD), KREL(T1, A, 13, RD, 13), LOWER(T1, 13, 0),
	  END},
	 {ANALYSIS_SPINLOCK_ABOVE_DISPATCH}},
	{"an at-DISPATCH acquire below DISPATCH_LEVEL", "pass",
	 {KTRY(T1, A, 0, AD), KACQ(T1, A, 0, AD), KREL(T1, A, 0, AD, 0), END},
	 {ANALYSIS_SPINLOCK_BELOW_DISPATCH}},
	{"a spinlock released at another IRQL than DISPATCH", "pass",
	 {KLOCK(T1, A), RAISE(T1, 2, 13), KREL(T1, A, 13, RD, 0), CR8(T1, 13, 0), END},
	 {ANALYSIS_SPINLOCK_RELEASE_IRQL}},
	{"a release restoring another IRQL than the acquire raised from", "pass",
	 {KLOCK(T1, A), KREL(T1, A, 2, RD, 1), CR8(T1, 2, 1), LOWER(T1, 1, 0), END},
	 {ANALYSIS_SPINLOCK_RESTORE}},
	{"the IRQL dropped below DISPATCH while a spinlock is held", "pass",
	 {KLOCK(T1, A), LOWER(T1, 2, 0), KREL(T1, A, 0, RD, 0), END},
	 {ANALYSIS_SPINLOCK_HELD_BELOW_DISPATCH}},
	{"a lower call that raises; a raise call that lowers", "pass",
	 {LOWER(T1, 0, 2), RAISE(T1, 2, 0), END},
	 {ANALYSIS_IRQL_LOWER_RAISES, ANALYSIS_IRQL_RAISE_LOWERS}},
	{"a wait at DISPATCH_LEVEL with a timeout; a zero-timeout poll is fine", "pass",
	 {RAISE(T1, 0, 2), KWAIT(T1, EV, 2, 0), KWAIT(T1, EV, 2, -10000), LOWER(T1, 2, 0), END},
	 {ANALYSIS_WAIT_AT_DISPATCH}},
	{"a release by another thread than the owner", "pass",
	 {ACQ(T1, A, SPIN, P, IF), ACQ(T2, B, SPIN, P, IF), REL(T2, A, P, IF), REL(T2, B, P, IF), END},
	 {ANALYSIS_RELEASE_NOT_OWNER}},
	{"the dispatcher hand-off: taken before a switch, released by the thread switched in", "pass",
	 {ACQ(T1, A, SPIN, P, 0), SW(T1, T2), REL(T2, A, P, 0), END},
	 {0}},
	{"no hand-off: released by a third thread after another switch", "pass",
	 {ACQ(T1, A, SPIN, P, 0), SW(T1, T2), SW(T2, T3), REL(T3, A, P, 0), END},
	 {ANALYSIS_SPINLOCK_ACROSS_SWITCH, ANALYSIS_RELEASE_NOT_OWNER}},
	{"switched out holding a spinlock the incoming thread keeps its hands off", "pass",
	 {ACQ(T1, A, SPIN, P, 0), SW(T1, T2), EVT(DB_MARKER, T2, P, IF), SW(T2, T1), REL(T1, A, P, 0), END},
	 {ANALYSIS_SPINLOCK_ACROSS_SWITCH}},
	/* ---- atomic context ---- */
	{"sleeping with a spinlock held", "pass",
	 {ACQ(T1, A, SPIN, P, IF), SLEEP(T1, P, IF, 0), REL(T1, A, P, IF), END},
	 {ANALYSIS_SLEEP_IN_ATOMIC}},
	{"sleeping with interrupts disabled", "pass",
	 {SW(T2, T1), SLEEP(T1, P, 0, 0), END},
	 {ANALYSIS_SLEEP_IN_ATOMIC}},
	{"sleeping with preemption disabled", "pass", {SW(T2, T1), SLEEP(T1, P, IF, 1), END}, {ANALYSIS_SLEEP_IN_ATOMIC}},
	{"before the first context switch the kernel is booting: not judged", "pass",
	 {SLEEP(T1, P, IF, 1), SLEEP(T1, P, 0, 0), END},
	 {0}},
	{"x86's inverted need-resched bit alone is preempt count 0", "pass",
	 {SW(T2, T1), SLEEP(T1, P, IF, (int32_t)0x80000000), END},
	 {0}},
	{"sleeping in an interrupt (a kernel without a preemption count)", "pass", {SLEEP(T1, HI, 0, 0), END},
	 {ANALYSIS_SLEEP_IN_ATOMIC}},
	{"rescheduling on the way out of an interrupt, preemption count 0, is legal", "pass",
	 {SW(T2, T1), SLEEP(T1, HI, IF, (int32_t)0x80000000), END},
	 {0}},
	{"a mutex taken with a spinlock held", "pass",
	 {ACQ(T1, A, SPIN, P, IF), MACQ(T1, M1), MREL(T1, M1), REL(T1, A, P, IF), END},
	 {ANALYSIS_SLEEP_IN_ATOMIC}},
	/* ---- the interrupt protocol ---- */
	{"an interrupt returning at another IRQL than it interrupted", "pass",
	 {CR8(T1, 0, 0), TRAP(T1, 0xd1), CR8(T1, 0, 13), EOI(T1), CR8(T1, 13, 1), IRET(T1, 0xd1, IF), END},
	 {ANALYSIS_IRET_STATE}},
	{"an interrupt returning with IF changed", "pass",
	 {{DB_TRAP, T1, 0, 0xd1, 0, 0, HI, IF, 0, NULL}, EOI(T1), IRET(T1, 0xd1, 0), END},
	 {ANALYSIS_IRET_STATE}},
	{"a handler lowering its IRQL before its EOI", "pass",
	 {CR8(T1, 0, 0), TRAP(T1, 0xd1), CR8(T1, 0, 13), CR8(T1, 13, 2), EOI(T1), CR8(T1, 2, 0),
	  IRET(T1, 0xd1, IF), END},
	 {ANALYSIS_IRQL_LOWERED_BEFORE_EOI}},
	{"a switch inside an interrupt before its EOI", "pass",
	 {TRAP(T1, 0xd1), EOI(T1), IRET(T1, 0xd1, IF), TRAP(T1, 0xd1), SW(T1, T2),
	  EVT(DB_MARKER, T2, P, IF), END},
	 {ANALYSIS_SWITCH_BEFORE_EOI}},
	{"a DPC queued and never run although the CPU went below DISPATCH", "pass",
	 {CR8(T1, 0, 13), QUEUE(T1, DPC1), QUEUE(T1, DPC2), CR8(T1, 13, 2), RUN(T1, DPC2), CR8(T1, 2, 0), END},
	 {ANALYSIS_LOST_DEFERRED}},
	{"a DPC queued and run before the IRQL dropped", "pass",
	 {CR8(T1, 0, 13), QUEUE(T1, DPC1), CR8(T1, 13, 2), RUN(T1, DPC1), CR8(T1, 2, 0), END},
	 {0}},
	{"a timer queued on a kernel without IRQL runs later by design", "pass",
	 {QUEUE(T1, DPC1), QUEUE(T1, DPC2), RUN(T1, DPC2), END},
	 {0}},
	/* ---- hangs and crashes ---- */
	{"a completion deadlock: waiting for a completion whose signaller waits for our mutex", "hang",
	 {SIGNAL(T2, EV), MACQ(T1, M1), WAIT(T1, EV, -1), SW(T1, T2), WAIT(T2, M1, -1), SW(T2, T3), END},
	 {ANALYSIS_HANG}},
	{"a panic is a crash", "panic",
	 {EVT(DB_MARKER, T1, P, IF), BUGCHECK(T1, 0, "Kernel panic - not syncing: oops"), END},
	 {ANALYSIS_CRASH}},
	{"a reset without any bugcheck event is a crash", "panic", {EVT(DB_MARKER, T1, P, IF), END}, {ANALYSIS_CRASH}},
};

static struct analysis_report *run(const struct ref_case *c)
{
	struct analysis_names names = {.lock_class = lock_class, .symbolize = symbolize};
	struct analysis *a = NULL;
	assert_int_equal(analysis_new(&names, &a, NULL), 0);
	for (size_t i = 0; c->steps[i].kind; i++) {
		const struct step *s = &c->steps[i];
		struct db_event e = {
			.icount = 10 * (i + 1),
			.pc = PC + 0x10 * (i % 8),
			.thread = s->thread,
			.obj = s->obj,
			.a = s->a,
			.b = s->b,
			.kind = s->kind,
			.ctx = s->ctx,
			.flags = s->flags,
			.lockop = s->lockop,
			.preempt = s->preempt ? s->preempt : -1,
			.tid = -1,
			/* both dynamic instances are first taken at one call site: one class */
			.caller = s->obj == D1 || s->obj == D2 ? SITE
				  : s->obj >= E1 && s->obj <= E4 ? (s->obj & 0x10 ? SITE1 : SITE2)
								  : PC + 0x80,
		};
		assert_int_equal(analysis_feed_text(a, &e, s->text), 0);
	}
	struct analysis_report *rep = NULL;
	assert_int_equal(analysis_finish(a, c->outcome, &rep, NULL), 0);
	analysis_free(a);
	return rep;
}

static void test_reference_cases(void **state)
{
	(void)state;
	int failed = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct ref_case *c = &cases[i];
		struct analysis_report *rep = run(c);
		int got[ANALYSIS_KIND_MAX + 1] = {0}, want[ANALYSIS_KIND_MAX + 1] = {0};
		for (size_t k = 0; k < rep->n_findings; k++)
			if (rep->findings[k].severity != ANALYSIS_SEV_NOTE)
				got[rep->findings[k].kind] = 1;
		for (size_t k = 0; c->want[k]; k++)
			want[c->want[k]] = 1;
		int bad = memcmp(got, want, sizeof(got)) != 0;
		print_message("# %s %s\n", bad ? "FAIL" : "ok  ", c->name);
		if (bad) {
			failed++;
			for (int k = 1; k <= ANALYSIS_KIND_MAX; k++)
				if (want[k] != got[k])
					print_message("#   %s %s\n", want[k] ? "missing" : "unexpected", analysis_kind_name(k));
			for (size_t k = 0; k < rep->n_findings; k++)
				print_message("#   found %s: %s\n", rep->findings[k].kind_name, rep->findings[k].title);
		}
		analysis_report_free(rep);
	}
	assert_int_equal(failed, 0);
}

/* The completion deadlock is named as one. */
static void test_completion_deadlock_is_named(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!strstr(cases[i].name, "completion deadlock"))
			continue;
		struct analysis_report *rep = run(&cases[i]);
		assert_true(rep->n_findings > 0);
		assert_int_equal(rep->findings[0].kind, ANALYSIS_HANG);
		assert_non_null(strstr(rep->findings[0].title, "deadlock"));
		assert_non_null(strstr(rep->findings[0].title, "completion"));
		analysis_report_free(rep);
		return;
	}
	fail_msg("no completion deadlock case");
}

/* A cycle through classes named by their first callers is still shown, as
 * a note that says why it is not proven, with both class names. */
static void test_caller_classes_cycle_is_a_note(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (strncmp(cases[i].name, "locks classed by their first callers", 36) != 0)
			continue;
		struct analysis_report *rep = run(&cases[i]);
		const struct analysis_finding *f = NULL;
		for (size_t k = 0; k < rep->n_findings; k++)
			if (rep->findings[k].kind == ANALYSIS_LOCK_ORDER)
				f = &rep->findings[k];
		assert_non_null(f);
		assert_int_equal(f->severity, ANALYSIS_SEV_NOTE);
		assert_non_null(strstr(f->title, "lock@walker+0x0"));
		assert_non_null(strstr(f->title, "lock@walker+0x8"));
		assert_non_null(strstr(f->title, "not proven"));
		analysis_report_free(rep);
		return;
	}
	fail_msg("no caller-class cycle case");
}

/* A crash carries its code, its text and the last events. */
static void test_panic_names_its_text_and_exits_as_error(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (strcmp(cases[i].name, "a panic is a crash") != 0)
			continue;
		struct analysis_report *rep = run(&cases[i]);
		assert_int_equal(rep->n_findings, 1);
		const struct analysis_finding *f = &rep->findings[0];
		assert_int_equal(f->severity, ANALYSIS_SEV_ERROR);
		assert_int_equal(f->rank, analysis_kind_rank(ANALYSIS_CRASH));
		assert_non_null(strstr(f->title, "Kernel panic - not syncing: oops"));
		assert_int_equal(f->event_id, 2);
		assert_true(f->n_steps >= 2); /* the last event before, then the crash */
		assert_string_equal(f->steps[f->n_steps - 1].role, "crash");
		analysis_report_free(rep);
		return;
	}
	fail_msg("no panic case");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reference_cases),
		cmocka_unit_test(test_completion_deadlock_is_named),
		cmocka_unit_test(test_caller_classes_cycle_is_a_note),
		cmocka_unit_test(test_panic_names_its_text_and_exits_as_error),
	};
	return cmocka_run_group_tests_name("reference", tests, NULL, NULL);
}
