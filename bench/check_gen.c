/*
 * check_gen.c - writes a synthetic trace of N events through db_writer for
 * bench/check_scale.sh.
 *
 * The mix imitates our kernel under load: clock interrupts with EOI that
 * sometimes preempt (dispatcher lock handed across KiSwapContext), worker
 * threads taking spinlocks in a fixed order, raising and lowering IRQL,
 * waiting on events and owning mutexes. Near the end one worker takes two
 * locks in the opposite order, so `krewind check` has one lock-order cycle
 * to report whatever N is.
 *
 * Usage: check_gen PATH N
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "db/db.h"

enum {
	FN_LOWER = 0x100000, FN_RAISE = 0x100100, FN_SPIN = 0x100200, FN_REL = 0x100300, FN_SWAP = 0x100400,
	FN_WAIT = 0x100500, FN_MUTEX = 0x100600, FN_MUTREL = 0x100700, FN_ISR = 0x100800, FN_EOI = 0x100900,
	FN_WORK = 0x100a00, FN_DISP = 0x100b00, FN_SIGNAL = 0x100c00,
};
static const struct {
	uint64_t addr;
	const char *name;
} symbols[] = {
	{FN_LOWER, "KeLowerIrql"}, {FN_RAISE, "KeRaiseIrql"}, {FN_SPIN, "KeAcquireSpinLockRaiseToDpc"},
	{FN_REL, "KeReleaseSpinLock"}, {FN_SWAP, "KiSwapContext"}, {FN_WAIT, "KeWaitForSingleObject"},
	{FN_MUTEX, "KiSatisfyMutexWait"}, {FN_MUTREL, "KeReleaseMutex"}, {FN_ISR, "KiClockInterrupt"},
	{FN_EOI, "KiApicEndOfInterrupt"}, {FN_WORK, "BenchWorker"}, {FN_DISP, "KiAcquireDispatcherLock"},
	{FN_SIGNAL, "KeSetEvent"},
};

#define N_THREADS 8
#define N_LOCKS 16
#define LOCK(i) (0x200000u + 0x40u * (unsigned)(i))
#define DISPATCHER_LOCK 0x1fffc0u
#define MUTEX(i) (0x300000u + 0x40u * (unsigned)(i))
#define EVENT(i) (0x400000u + 0x40u * (unsigned)(i))
#define THREAD(i) (0x500000u + 0x1000u * (unsigned)(i))

struct gen {
	struct db_writer *w;
	uint64_t n, target, icount, rng;
	int cur, irql;
};

static uint32_t rnd(struct gen *g, uint32_t n)
{
	g->rng ^= g->rng << 13;
	g->rng ^= g->rng >> 7;
	g->rng ^= g->rng << 17;
	return (uint32_t)((g->rng >> 7) % n);
}

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
	};
	if (kind == DB_IRQL)
		g->irql = (int)b;
	for (;;) {
		int rc = db_writer_push(g->w, &ev);
		if (rc == 0)
			break;
		if (rc != DB_E_FULL)
			return rc;
		nanosleep(&(struct timespec){0, 200000}, NULL);
	}
	g->n++;
	return 0;
}

static int spin_section(struct gen *g, int first, int second)
{
	int rc = emit(g, DB_LOCK_TRY, FN_SPIN, LOCK(first), g->irql, 0);
	rc = rc ? rc : emit(g, DB_IRQL, FN_SPIN + 0x10, 0, g->irql, 2);
	rc = rc ? rc : emit(g, DB_LOCK_ACQ, FN_SPIN + 0x2e, LOCK(first), 2, 4);
	if (second >= 0) {
		rc = rc ? rc : emit(g, DB_LOCK_TRY, FN_SPIN, LOCK(second), 2, 0);
		rc = rc ? rc : emit(g, DB_LOCK_ACQ, FN_SPIN + 0x2e, LOCK(second), 2, 4);
		rc = rc ? rc : emit(g, DB_LOCK_REL, FN_REL, LOCK(second), 2, 0);
	}
	rc = rc ? rc : emit(g, DB_LOCK_REL, FN_REL, LOCK(first), 2, 0);
	return rc ? rc : emit(g, DB_IRQL, FN_REL + 0x20, 0, 2, 0);
}

/* A clock tick on the current thread; every fourth one preempts it. */
static int tick(struct gen *g, int preempt)
{
	int rc = emit(g, DB_TRAP, FN_ISR, 0, 0xd1, 0);
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
		rc = rc ? rc : emit(g, DB_LOCK_REL, FN_REL, DISPATCHER_LOCK, 2, 0);
	}
	rc = rc ? rc : emit(g, DB_IRQL, FN_ISR + 0x70, 0, 2, 0);
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

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: check_gen PATH N\n");
		return 2;
	}
	struct gen g = {.target = strtoull(argv[2], NULL, 10), .rng = 0x2545f4914f6cdd1dULL};
	char *err = NULL;
	if (db_writer_open(argv[1], NULL, NULL, &g.w, &err)) {
		fprintf(stderr, "check_gen: %s\n", err ? err : "cannot open");
		free(err);
		return 1;
	}
	int rc = 0;
	for (size_t i = 0; i < sizeof(symbols) / sizeof(symbols[0]) && !rc; i++)
		rc = db_writer_add_symbol(g.w, symbols[i].addr, 0x100, symbols[i].name);
	for (int i = 0; i < N_LOCKS && !rc; i++) {
		char name[32];
		snprintf(name, sizeof(name), "BenchLock%02d", i);
		rc = db_writer_name(g.w, 1, LOCK(i), name);
		/* static locks: their symbol is their class */
		rc = rc ? rc : db_writer_add_symbol(g.w, LOCK(i), 8, name);
	}
	for (int i = 0; i < N_THREADS && !rc; i++) {
		char name[32];
		snprintf(name, sizeof(name), "Worker%d", i);
		rc = db_writer_name(g.w, 0, THREAD(i), name);
	}
	rc = rc ? rc : db_writer_name(g.w, 1, DISPATCHER_LOCK, "KiDispatcherLock");
	rc = rc ? rc : db_writer_add_symbol(g.w, DISPATCHER_LOCK, 8, "KiDispatcherLock");
	rc = rc ? rc : db_writer_set_meta(g.w, "outcome", "completed");
	rc = rc ? rc : emit(&g, DB_IRQL, FN_WORK, 0, 0, 0);
	while (!rc && g.n + 16 < g.target)
		rc = work(&g);
	/* the one planted inversion: BenchLock03 -> BenchLock01 (the mix only goes up) */
	rc = rc ? rc : spin_section(&g, 3, 1);
	while (!rc && g.n < g.target)
		rc = emit(&g, DB_SIGNAL, FN_SIGNAL, EVENT(0), 0, 0);
	int crc = db_writer_close(g.w, &err);
	if (rc || crc) {
		fprintf(stderr, "check_gen: %s\n", err ? err : "writing the trace failed");
		free(err);
		return 1;
	}
	return 0;
}
