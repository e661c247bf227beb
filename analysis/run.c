/*
 * run.c - analysis_run: the driver that streams a trace from db/ through the
 * state machines with one cursor, naming through the reader. Kept apart so
 * that callers feeding events themselves do not link db/.
 */
#include <stdlib.h>
#include <string.h>

#include "analysis/internal.h"

/* A lock's static identity is what db_lock_class says: its symbol (+ offset
 * inside it) from the recorded symbols, or "alloc@site"/"0x.." for the
 * analysis to class by init site or first caller (state.c). */
static const char *r_lock_class(void *ctx, uint64_t lock)
{
	return db_lock_class(ctx, lock);
}

static const char *r_lock_name(void *ctx, uint64_t lock)
{
	return db_lock_name(ctx, lock);
}

static const char *r_thread_name(void *ctx, uint64_t thread)
{
	return db_thread_name(ctx, thread);
}

static const char *r_thread_name_tid(void *ctx, uint64_t thread, int32_t tid)
{
	return db_thread_name_tid(ctx, thread, tid);
}

static char *r_symbolize(void *ctx, uint64_t pc, char *buf, size_t size)
{
	return db_symbolize(ctx, pc, buf, size);
}

int analysis_run(struct db_reader *r, struct analysis_report **out, char **err)
{
	return analysis_run_progress(r, NULL, NULL, out, err);
}

int analysis_run_progress(struct db_reader *r, void (*progress)(void *ctx, uint64_t events, int read_all), void *ctx,
			  struct analysis_report **out, char **err)
{
	if (!r || !out) {
		if (err)
			*err = strdup("analysis_run: bad argument");
		return ANALYSIS_E_ARG;
	}
	*out = NULL;
	struct analysis_names names = {
		.ctx = r,
		.lock_class = r_lock_class,
		.lock_name = r_lock_name,
		.thread_name = r_thread_name,
		.thread_name_tid = r_thread_name_tid,
		.symbolize = r_symbolize,
	};
	struct analysis *a = NULL;
	struct db_cursor *c = NULL;
	struct db_filter f = {0};
	char *dberr = NULL;
	int rc = analysis_new(&names, &a, err);
	if (rc)
		goto out;
	if (db_cursor_open(r, &f, &c, &dberr)) {
		rc = ANALYSIS_E_DB;
		goto out;
	}
	struct db_event ev;
	const char *text;
	uint64_t done = 0;
	int got;
	while ((got = db_cursor_next(c, &ev, &text)) == 1) {
		if ((rc = analysis_feed_text(a, &ev, text)) != 0)
			break;
		if (progress && (++done & 4095) == 0)
			progress(ctx, done, 0);
	}
	if (progress && got == 0 && !rc)
		progress(ctx, done, 1);
	if (got < 0) {
		rc = ANALYSIS_E_DB;
		dberr = strdup("reading the trace's events failed (corrupt or truncated trace?)");
		goto out;
	}
	if (rc) {
		if (err)
			*err = strdup(rc == ANALYSIS_E_NOMEM ? "out of memory while analysing the trace"
							     : "events out of order in the trace");
		goto out;
	}
	rc = analysis_finish(a, db_meta(r, "outcome"), out, err);
	/* The writer records events_total when it closes the trace. */
	if (rc == ANALYSIS_OK) {
		(*out)->cut = db_meta(r, "events_total") == NULL;
		const char *dropped = db_meta(r, "dropped");
		uint64_t n = dropped ? strtoull(dropped, NULL, 10) : 0;
		if (n > (*out)->dropped)
			(*out)->dropped = n;
	}
out:
	if (rc == ANALYSIS_E_DB && err) {
		*err = dberr;
		dberr = NULL;
	}
	free(dberr);
	if (c)
		db_cursor_close(c);
	analysis_free(a);
	return rc;
}
