/*
 * fuzz_trace.c: libFuzzer target for the trace reader (db/reader.c) and the
 * checks behind `krewind check` (analysis/), fed mutated trace databases.
 * The input is written to a file of its own (SQLite opens paths), opened with
 * db_reader_open and, when accepted, read the way `info`, `events` and
 * `check` read it: counts, threads, locks, every event, the analyses.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analysis/analysis.h"
#include "db/db.h"

static void remove_trace(const char *path)
{
	char side[80];
	unlink(path);
	snprintf(side, sizeof(side), "%s-wal", path);
	unlink(side);
	snprintf(side, sizeof(side), "%s-shm", path);
	unlink(side);
	snprintf(side, sizeof(side), "%s-journal", path);
	unlink(side);
}

static void read_all(struct db_reader *r)
{
	int64_t counts[DB_KIND_MAX + 1];
	const struct db_thread_info *th;
	const struct db_lock_info *lk;
	struct db_filter all = {0};
	struct db_cursor *c = NULL;
	struct analysis_report *rep = NULL;
	struct db_event ev;
	const char *text;
	char sym[128], *err = NULL;
	size_t n;
	int rc;

	(void)db_meta(r, "outcome");
	if (db_count_by_kind(r, counts, &err) != 0)
		goto out;
	if (db_threads(r, &th, &n, &err) == 0)
		for (size_t i = 0; i < n; i++)
			(void)db_thread_name(r, th[i].addr);
	free(err);
	err = NULL;
	if (db_locks(r, &lk, &n, &err) == 0)
		for (size_t i = 0; i < n; i++)
			(void)db_lock_class(r, lk[i].addr);
	free(err);
	err = NULL;
	if (db_cursor_open(r, &all, &c, &err) != 0)
		goto out;
	while ((rc = db_cursor_next(c, &ev, &text)) == 1)
		(void)db_symbolize(r, ev.pc, sym, sizeof(sym));
	db_cursor_close(c);
	if (analysis_run(r, &rep, &err) == 0)
		analysis_report_free(rep);
out:
	free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	struct db_reader *r = NULL;
	char *err = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/krewind-fuzz-trace.%d.db", (int)getpid());
	remove_trace(path);
	f = fopen(path, "wb");
	if (!f)
		return 0;
	if (fwrite(data, 1, size, f) != size || fclose(f) != 0) {
		remove_trace(path);
		return 0;
	}
	if (db_reader_open(path, &r, &err) == 0) {
		read_all(r);
		db_reader_close(r);
	} else if (!err || !*err || strchr(err, '\n')) {
		abort(); /* a refusal must come with one line saying why */
	}
	free(err);
	remove_trace(path);
	return 0;
}
