/*
 * check_gen.c - writes the synthetic trace of bench/check_mix.h (N events)
 * through db_writer for bench/check_scale.sh.
 *
 * Usage: check_gen PATH N
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench/check_mix.h"

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

static int to_writer(void *ctx, const struct db_event *ev)
{
	for (;;) {
		int rc = db_writer_push(ctx, ev);
		if (rc != DB_E_FULL)
			return rc;
		nanosleep(&(struct timespec){0, 200000}, NULL);
	}
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: check_gen PATH N\n");
		return 2;
	}
	struct gen g = {.target = strtoull(argv[2], NULL, 10), .rng = 0x2545f4914f6cdd1dULL, .sink = to_writer};
	struct db_writer *w = NULL;
	char *err = NULL;
	if (db_writer_open(argv[1], NULL, NULL, &w, &err)) {
		fprintf(stderr, "check_gen: %s\n", err ? err : "cannot open");
		free(err);
		return 1;
	}
	int rc = 0;
	for (size_t i = 0; i < sizeof(symbols) / sizeof(symbols[0]) && !rc; i++)
		rc = db_writer_add_symbol(w, symbols[i].addr, 0x100, symbols[i].name);
	for (int i = 0; i < N_LOCKS && !rc; i++) {
		char name[32];
		snprintf(name, sizeof(name), "BenchLock%02d", i);
		rc = db_writer_name(w, 1, LOCK(i), name);
		/* static locks: their symbol is their class */
		rc = rc ? rc : db_writer_add_symbol(w, LOCK(i), 8, name);
	}
	for (int i = 0; i < N_THREADS && !rc; i++) {
		char name[32];
		snprintf(name, sizeof(name), "Worker%d", i);
		rc = db_writer_name(w, 0, THREAD(i), name);
	}
	rc = rc ? rc : db_writer_name(w, 1, DISPATCHER_LOCK, "KiDispatcherLock");
	rc = rc ? rc : db_writer_add_symbol(w, DISPATCHER_LOCK, 8, "KiDispatcherLock");
	rc = rc ? rc : db_writer_set_meta(w, "outcome", "completed");
	g.ctx = w;
	rc = rc ? rc : mix_run(&g);
	int crc = db_writer_close(w, &err);
	if (rc || crc) {
		fprintf(stderr, "check_gen: %s\n", err ? err : "writing the trace failed");
		free(err);
		return 1;
	}
	return 0;
}
