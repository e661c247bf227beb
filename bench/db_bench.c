/*
 * db_bench.c - drives the trace writer as hard as it goes and reports its
 * throughput and the size of the result.
 *
 * Usage: db_bench EVENTS kernel|low PATH
 * Two producer threads (vCPU 0 and 1) push EVENTS in total with a realistic
 * mix of kinds; addresses are kernel-half (0xffffffff8xxxxxxx) or low
 * (0x1xxxxx). A producer whose push finds the ring full yields and retries,
 * so the time measured is the writer's. Prints one line of key=value:
 * events; ingest_s and ingest_events_per_s (until the writer has committed
 * everything); close_s; total_events_per_s; bytes and bytes_per_event (the
 * closed file); full_retries; and the writer thread's CPU time per event
 * with the rate that makes on one whole core (writer_cpu_ns_per_event,
 * writer_core_events_per_s): on a loaded machine the wall-clock rate shows
 * how much CPU the writer got, the CPU time what it costs.
 * Exit status: 0 ok, 1 the writer failed, 2 usage.
 */
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "db/db.h"

struct producer {
	struct db_writer *w;
	uint64_t n;
	uint16_t vcpu;
	uint64_t base; /* address base: kernel half or low */
	uint64_t retries;
};

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* A mix close to a kernel under test: IRQL changes and lock traffic
 * dominate, then traps/iret, EOIs and switches. */
static void make_event(struct producer *p, uint64_t *rnd, uint64_t *icount, struct db_event *ev)
{
	static const uint8_t mix[20] = { DB_IRQL, DB_IRQL, DB_IRQL, DB_IRQL, DB_LOCK_TRY, DB_LOCK_ACQ,
					 DB_LOCK_REL, DB_LOCK_TRY, DB_LOCK_ACQ, DB_LOCK_REL, DB_TRAP,
					 DB_IRET, DB_TRAP, DB_IRET, DB_EOI, DB_SWITCH, DB_WAIT,
					 DB_WAIT_END, DB_SIGNAL, DB_MUTEX_ACQ };
	uint64_t r = next_rand(rnd);

	memset(ev, 0, sizeof(*ev));
	*icount += 1 + (r >> 8) % 300;
	ev->icount = *icount;
	ev->vcpu = p->vcpu;
	ev->kind = mix[r % 20];
	ev->pc = p->base + 0x1000 + (r >> 20) % 0x40000;
	ev->thread = p->base + 0x200000 + ((r >> 40) % 8) * 0x400;
	switch (ev->kind) {
	case DB_IRQL:
		ev->a = (int64_t)((r >> 44) % 3);
		ev->b = (int64_t)((r >> 46) % 3);
		break;
	case DB_LOCK_TRY:
	case DB_LOCK_ACQ:
	case DB_LOCK_REL:
	case DB_WAIT:
	case DB_WAIT_END:
	case DB_SIGNAL:
	case DB_MUTEX_ACQ:
		ev->obj = p->base + 0x300000 + ((r >> 48) % 32) * 0x40;
		ev->a = 2;
		ev->b = ev->kind == DB_LOCK_ACQ ? (int64_t)((r >> 50) % 40) : 0;
		break;
	case DB_TRAP:
	case DB_IRET:
		ev->a = 0x20 + (int64_t)((r >> 44) % 4);
		break;
	case DB_EOI:
		ev->a = 1;
		break;
	case DB_SWITCH:
		ev->a = (int64_t)ev->thread;
		ev->b = (int64_t)(p->base + 0x200000 + ((r >> 52) % 8) * 0x400);
		break;
	}
	/* Schema 2, as the tracer writes them for our kernel: interrupts mostly
	 * on, a hardirq context now and then, the lock op and call site of lock
	 * and wait events, no preempt count or tid. */
	ev->flags = (r >> 56) % 8 ? DB_F_IF : 0;
	ev->ctx = (r >> 59) % 8 == 0 ? DB_CTX_HARDIRQ : DB_CTX_PROCESS;
	ev->preempt = ev->tid = -1;
	if (ev->obj) {
		ev->lockop = DB_LOCKOP(DB_LF_SPIN, DB_LI_RAISE_DISPATCH, 0);
		ev->caller = p->base + 0x1000 + (r >> 24) % 0x40000;
	}
}

static void *produce(void *arg)
{
	struct producer *p = arg;
	uint64_t rnd = 0x9e3779b97f4a7c15ULL ^ (p->vcpu + 1), icount = 0;
	struct db_event ev;

	for (uint64_t i = 0; i < p->n; i++) {
		make_event(p, &rnd, &icount, &ev);
		while (db_writer_push(p->w, &ev) != DB_OK) {
			p->retries++;
			nanosleep(&(struct timespec){ 0, 200000 }, NULL);
		}
	}
	return NULL;
}

/* CPU time the writer thread ("krdb-writer") has run, in ns, from
 * /proc/self/task/TID/schedstat; 0 if not found. On a loaded machine the
 * wall-clock rate says how much CPU we got; this says what the writer costs. */
static uint64_t writer_cpu_ns(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	uint64_t ns = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char path[300], comm[32] = "";
		FILE *f;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		if (!fgets(comm, sizeof(comm), f))
			comm[0] = 0;
		fclose(f);
		if (strncmp(comm, "krdb-writer", 11) != 0)
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/schedstat", de->d_name);
		if ((f = fopen(path, "r"))) {
			if (fscanf(f, "%" SCNu64, &ns) != 1)
				ns = 0;
			fclose(f);
		}
	}
	closedir(d);
	return ns;
}

int main(int argc, char **argv)
{
	struct producer prod[2];
	pthread_t th[2];
	struct db_writer *w;
	struct db_writer_stats st;
	struct timespec t0, t_in, t1;
	struct stat sb;
	char *err = NULL;
	uint64_t n;

	if (argc != 4 || (strcmp(argv[2], "kernel") && strcmp(argv[2], "low")) ||
	    !(n = strtoull(argv[1], NULL, 10))) {
		fprintf(stderr, "usage: db_bench EVENTS kernel|low PATH\n");
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (db_writer_open(argv[3], NULL, NULL, &w, &err) != DB_OK) {
		fprintf(stderr, "db_bench: %s\n", err);
		free(err);
		return 1;
	}
	for (int i = 0; i < 2; i++) {
		prod[i] = (struct producer){ w, n / 2 + (i ? n % 2 : 0), (uint16_t)i,
					     strcmp(argv[2], "kernel") ? 0x100000 : 0xffffffff80000000ULL, 0 };
		pthread_create(&th[i], NULL, produce, &prod[i]);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	/* Ingest: until the writer thread has committed every event. */
	do {
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
		db_writer_stats(w, &st);
	} while (st.written + st.dropped < n);
	clock_gettime(CLOCK_MONOTONIC, &t_in);
	uint64_t cpu_ns = writer_cpu_ns();
	if (db_writer_close(w, &err) != DB_OK) {
		fprintf(stderr, "db_bench: %s\n", err);
		free(err);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (stat(argv[3], &sb) != 0) {
		perror(argv[3]);
		return 1;
	}
	double in = (double)(t_in.tv_sec - t0.tv_sec) + (double)(t_in.tv_nsec - t0.tv_nsec) / 1e9;
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("events=%" PRIu64 " ingest_s=%.3f ingest_events_per_s=%.0f close_s=%.3f "
	       "total_events_per_s=%.0f bytes=%lld bytes_per_event=%.1f full_retries=%" PRIu64
	       " writer_cpu_ns_per_event=%.0f writer_core_events_per_s=%.0f\n",
	       n, in, (double)n / in, s - in, (double)n / s, (long long)sb.st_size,
	       (double)sb.st_size / (double)n, prod[0].retries + prod[1].retries,
	       (double)cpu_ns / (double)n, cpu_ns ? 1e9 * (double)n / (double)cpu_ns : 0.0);
	return 0;
}
