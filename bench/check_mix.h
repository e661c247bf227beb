/*
 * check_mix.h - the synthetic event mix of bench/check_scale.sh, shared by
 * check_gen (which writes it into a trace) and check_run feed (which feeds
 * it to the analysis directly, for sizes no trace file should hold).
 *
 * The mix imitates our kernel under load: clock interrupts with EOI that
 * sometimes preempt (dispatcher lock handed across the switch), worker
 * threads taking spinlocks in a fixed order, raising and lowering IRQL,
 * waiting on events and owning mutexes. Near the end one worker takes two
 * locks in the opposite order, so `krewind check` has one lock-order cycle
 * to report whatever N is.
 */
#ifndef KREWIND_BENCH_CHECK_MIX_H
#define KREWIND_BENCH_CHECK_MIX_H

#include <stdint.h>

#include "db/db.h"

enum {
	FN_LOWER = 0x100000, FN_RAISE = 0x100100, FN_SPIN = 0x100200, FN_REL = 0x100300, FN_SWAP = 0x100400,
	FN_WAIT = 0x100500, FN_MUTEX = 0x100600, FN_MUTREL = 0x100700, FN_ISR = 0x100800, FN_EOI = 0x100900,
	FN_WORK = 0x100a00, FN_DISP = 0x100b00, FN_SIGNAL = 0x100c00,
};

#define N_THREADS 8
#define N_LOCKS 16
#define LOCK(i) (0x200000u + 0x40u * (unsigned)(i))
#define DISPATCHER_LOCK 0x1fffc0u
#define MUTEX(i) (0x300000u + 0x40u * (unsigned)(i))
#define EVENT(i) (0x400000u + 0x40u * (unsigned)(i))
#define THREAD(i) (0x500000u + 0x1000u * (unsigned)(i))

/* Where the events go: the db writer (check_gen) or the analysis itself
 * (check_run feed). Returns 0 or a negative error. */
typedef int (*mix_sink)(void *ctx, const struct db_event *ev);

struct gen {
	mix_sink sink;
	void *ctx;
	uint64_t n, target, icount, rng;
	int cur, irql, in_irq;
};

static uint32_t rnd(struct gen *g, uint32_t n)
{
	g->rng ^= g->rng << 13;
	g->rng ^= g->rng >> 7;
	g->rng ^= g->rng << 17;
	return (uint32_t)((g->rng >> 7) % n);
}

/* Schema-2 fields as a probe declaring our kernel gives them: raise and
 * lower calls (obj 1 / 2), raising spinlocks, IF on (the IRQL gates),
 * hardirq context inside the clock interrupt, and the call site. */
#define RAISE_OP DB_LOCKOP(DB_LF_SPIN, DB_LI_RAISE_DISPATCH, 0)
static int emit(struct gen *g, int kind, uint64_t pc, uint64_t obj, int64_t a, int64_t b)
{
	struct db_event ev = {
		.icount = g->icount += 17 + rnd(g, 40),
		.pc = pc,
		.thread = THREAD(g->cur),
		.obj = obj,
		.a = a,
		.b = b,
		.kind = (uint8_t)kind,
		.ctx = g->in_irq ? DB_CTX_HARDIRQ : DB_CTX_PROCESS,
		.flags = DB_F_IF,
		.preempt = -1,
		.tid = -1,
	};
	if (kind == DB_IRQL) {
		g->irql = (int)b;
		if (pc == FN_RAISE)
			ev.obj = 1;
		else if (pc == FN_LOWER)
			ev.obj = 2;
	}
	if (kind == DB_LOCK_TRY || kind == DB_LOCK_ACQ) {
		ev.lockop = RAISE_OP;
		ev.caller = FN_WORK + 0x10 + 8 * (obj & 7);
	}
	int rc = g->sink(g->ctx, &ev);
	if (rc)
		return rc;
	g->n++;
	return 0;
}

/* A release restoring IRQL `to` (lock_rel b). */
static int release(struct gen *g, uint64_t lock, int to)
{
	struct db_event ev = {
		.icount = g->icount += 17 + rnd(g, 40),
		.pc = FN_REL,
		.thread = THREAD(g->cur),
		.obj = lock,
		.a = 2,
		.b = to,
		.kind = DB_LOCK_REL,
		.ctx = g->in_irq ? DB_CTX_HARDIRQ : DB_CTX_PROCESS,
		.flags = DB_F_IF,
		.lockop = RAISE_OP,
		.preempt = -1,
		.tid = -1,
		.caller = FN_WORK + 0x10 + 8 * (lock & 7),
	};
	int rc = g->sink(g->ctx, &ev);
	if (!rc)
		g->n++;
	return rc;
}

static int spin_section(struct gen *g, int first, int second)
{
	int rc = emit(g, DB_LOCK_TRY, FN_SPIN, LOCK(first), g->irql, 0);
	rc = rc ? rc : emit(g, DB_IRQL, FN_SPIN + 0x10, 0, g->irql, 2);
	rc = rc ? rc : emit(g, DB_LOCK_ACQ, FN_SPIN + 0x2e, LOCK(first), 2, 4);
	if (second >= 0) {
		rc = rc ? rc : emit(g, DB_LOCK_TRY, FN_SPIN, LOCK(second), 2, 0);
		rc = rc ? rc : emit(g, DB_LOCK_ACQ, FN_SPIN + 0x2e, LOCK(second), 2, 4);
		rc = rc ? rc : release(g, LOCK(second), 2);
	}
	rc = rc ? rc : release(g, LOCK(first), 0);
	return rc ? rc : emit(g, DB_IRQL, FN_REL + 0x20, 0, 2, 0);
}

/* A clock tick on the current thread; every fourth one preempts it. */
static int tick(struct gen *g, int preempt)
{
	int rc = emit(g, DB_TRAP, FN_ISR, 0, 0xd1, 0);
	g->in_irq = 1;
	rc = rc ? rc : emit(g, DB_IRQL, FN_ISR + 0x8, 0, g->irql, 13);
	rc = rc ? rc : emit(g, DB_EOI, FN_EOI + 0x9, 0, 1, 0);
	rc = rc ? rc : emit(g, DB_IRQL, FN_ISR + 0x40, 0, 13, 2);
	if (preempt) {
		int next = (g->cur + 1 + (int)rnd(g, N_THREADS - 1)) % N_THREADS;
		rc = rc ? rc : emit(g, DB_LOCK_TRY, FN_SPIN, DISPATCHER_LOCK, 2, 0);
		rc = rc ? rc : emit(g, DB_LOCK_ACQ, FN_SPIN + 0x2e, DISPATCHER_LOCK, 2, 2);
		rc = rc ? rc : emit(g, DB_SWITCH, FN_SWAP, 0, THREAD(g->cur), THREAD(next));
		g->cur = next;
		rc = rc ? rc : emit(g, DB_IRQL, FN_SWAP + 0x38, 0, 2, 2);
		rc = rc ? rc : release(g, DISPATCHER_LOCK, 2);
	}
	rc = rc ? rc : emit(g, DB_IRQL, FN_ISR + 0x70, 0, 2, 0);
	g->in_irq = 0;
	return rc ? rc : emit(g, DB_IRET, FN_ISR + 0x90, 0, 0xd1, 0);
}

static int work(struct gen *g)
{
	int rc = 0;
	switch (rnd(g, 6)) {
	case 0:
	case 1: {
		int first = (int)rnd(g, N_LOCKS - 1);
		int second = rnd(g, 2) ? first + 1 + (int)rnd(g, (uint32_t)(N_LOCKS - 1 - first)) : -1;
		rc = spin_section(g, first, second);
		break;
	}
	case 2:
		rc = emit(g, DB_IRQL, FN_RAISE, 0, g->irql, 2);
		rc = rc ? rc : emit(g, DB_IRQL, FN_LOWER, 0, 2, 0);
		break;
	case 3: {
		int m = (int)rnd(g, 4);
		rc = emit(g, DB_WAIT, FN_WAIT, MUTEX(m), 0, INT64_MIN);
		rc = rc ? rc : emit(g, DB_MUTEX_ACQ, FN_MUTEX, MUTEX(m), 2, 0);
		rc = rc ? rc : emit(g, DB_IRQL, FN_DISP + 0x60, 0, 2, 0);
		rc = rc ? rc : emit(g, DB_MUTEX_REL, FN_MUTREL, MUTEX(m), 0, 0);
		break;
	}
	case 4:
		rc = emit(g, DB_SIGNAL, FN_SIGNAL, EVENT(rnd(g, 4)), 0, 0);
		break;
	default:
		rc = tick(g, rnd(g, 4) == 0);
		break;
	}
	return rc;
}

/* The whole mix: N events with one planted inversion near the end. */
static int mix_run(struct gen *g)
{
	int rc = emit(g, DB_IRQL, FN_WORK, 0, 0, 0);
	while (!rc && g->n + 16 < g->target)
		rc = work(g);
	/* the one planted inversion: BenchLock03 -> BenchLock01 (the mix only goes up) */
	rc = rc ? rc : spin_section(g, 3, 1);
	while (!rc && g->n < g->target)
		rc = emit(g, DB_SIGNAL, FN_SIGNAL, EVENT(0), 0, 0);
	return rc;
}

#endif
