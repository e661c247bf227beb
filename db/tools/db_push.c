/*
 * db_push.c - a test driver for the trace writer, used by tests/e2e/db_*.sh.
 *
 *   db_push push PATH LOG      push paced events until killed; every 10 ms
 *                              append "<ms since start> <events accepted>"
 *                              to LOG. Event n has icount n.
 *   db_push fill PATH          push until the writer refuses for 2 s (disk
 *                              full), then close; prints the close message.
 *   db_push count PATH         open with db_reader_open; print
 *                              "events=N max_icount=M" (M = -1 if none).
 *   db_push finish PATH        db_update_meta(PATH, "outcome", "killed").
 *
 * Exit status: 0 ok, 1 failure, 2 usage, 3 close reported disk full,
 * 4 the reader refused the file.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/db.h"

#define PUSH_RATE 100000 /* events per second: a tenth of the writer's pace */

static uint64_t now_ms(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)((int64_t)(t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000);
}

static struct db_event event_n(uint64_t n)
{
	struct db_event ev = { 0 };

	ev.icount = n;
	ev.kind = n % 7 ? DB_IRQL : DB_LOCK_ACQ;
	ev.pc = 0xffffffff80010000ULL + n % 4096;
	ev.thread = 0xffffffff80200000ULL + (n % 4) * 0x100;
	ev.obj = n % 7 ? 0 : 0xffffffff80300000ULL;
	ev.a = 2;
	return ev;
}

static int cmd_push(const char *path, const char *log_path)
{
	struct db_writer *w;
	struct timespec t0;
	char *err = NULL;
	uint64_t n = 0, last_log = 0;
	FILE *log = fopen(log_path, "w");

	if (!log) {
		perror(log_path);
		return 1;
	}
	if (db_writer_open(path, NULL, NULL, &w, &err) != DB_OK) {
		fprintf(stderr, "db_push: %s\n", err);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		uint64_t ms = now_ms(&t0);
		/* Catch up with the pace, then nap. */
		while (n < ms * (PUSH_RATE / 1000)) {
			struct db_event ev = event_n(n);
			if (db_writer_push(w, &ev) != DB_OK)
				break;
			n++;
		}
		if (ms >= last_log + 10) {
			fprintf(log, "%" PRIu64 " %" PRIu64 "\n", ms, n);
			fflush(log);
			last_log = ms;
		}
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
}

static int cmd_fill(const char *path)
{
	struct db_writer *w;
	struct timespec t0;
	char *err = NULL;
	uint64_t n = 0, refused_since = 0;
	int rc;

	if (db_writer_open(path, NULL, NULL, &w, &err) != DB_OK) {
		fprintf(stderr, "db_push: %s\n", err);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct db_event ev = event_n(n);
		if (db_writer_push(w, &ev) == DB_OK) {
			n++;
			refused_since = 0;
			continue;
		}
		if (!refused_since)
			refused_since = now_ms(&t0) + 1;
		else if (now_ms(&t0) + 1 - refused_since > 2000)
			break;
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
	rc = db_writer_close(w, &err);
	printf("accepted=%" PRIu64 "\n", n);
	if (rc != DB_OK) {
		fprintf(stderr, "db_push: %s\n", err);
		free(err);
		return rc == DB_E_FULL ? 3 : 1;
	}
	return 0;
}

static int cmd_count(const char *path)
{
	struct db_reader *r;
	struct db_cursor *c;
	struct db_filter f = { .limit = 1, .descending = 1 };
	int64_t counts[DB_KIND_MAX + 1];
	struct db_event ev;
	char *err = NULL;
	int64_t max = -1;

	if (db_reader_open(path, &r, &err) != DB_OK) {
		fprintf(stderr, "db_push: %s\n", err);
		free(err);
		return 4;
	}
	if (db_count_by_kind(r, counts, &err) != DB_OK || db_cursor_open(r, &f, &c, &err) != DB_OK) {
		fprintf(stderr, "db_push: %s\n", err);
		free(err);
		db_reader_close(r);
		return 1;
	}
	if (db_cursor_next(c, &ev, NULL) == 1)
		max = (int64_t)ev.icount;
	db_cursor_close(c);
	printf("events=%" PRId64 " max_icount=%" PRId64 "\n", counts[0], max);
	db_reader_close(r);
	return 0;
}

int main(int argc, char **argv)
{
	char *err = NULL;

	if (argc == 4 && !strcmp(argv[1], "push"))
		return cmd_push(argv[2], argv[3]);
	if (argc == 3 && !strcmp(argv[1], "fill"))
		return cmd_fill(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "count"))
		return cmd_count(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "finish")) {
		if (db_update_meta(argv[2], "outcome", "killed", &err) != DB_OK) {
			fprintf(stderr, "db_push: %s\n", err);
			free(err);
			return 1;
		}
		return 0;
	}
	fprintf(stderr, "usage: db_push push PATH LOG | fill PATH | count PATH | finish PATH\n");
	return 2;
}
