/*
 * run.c - analysis_finish, and analysis_run: the driver that streams a trace
 * from db/ through the state machines with one cursor, naming through the
 * reader.
 */
#include <stdlib.h>
#include <string.h>

#include "analysis/internal.h"

int analysis_finish(struct analysis *a, const char *outcome, struct analysis_report **out, char **err)
{
	if (!a || !out) {
		if (err)
			*err = strdup("analysis_finish: bad argument");
		return ANALYSIS_E_ARG;
	}
	*out = NULL;
	struct analysis_report *rep = calloc(1, sizeof(*rep));
	int hung = 0;
	int rc = rep ? a->error : ANALYSIS_E_NOMEM;
	if (!rc)
		rc = finish_checks(a, outcome, &hung);
	if (!rc && !(rep->outcome = strdup(outcome ? outcome : "")))
		rc = ANALYSIS_E_NOMEM;
	if (!rc)
		rc = report_build(a, rep);
	if (rc) {
		if (err)
			*err = strdup(rc == ANALYSIS_E_NOMEM ? "out of memory while analysing the trace"
							     : "analysis failed");
		analysis_report_free(rep);
		return rc;
	}
	rep->hung = hung;
	rep->events = a->events;
	rep->last_event_id = a->last_id;
	rep->lock_classes = a->n_classes;
	rep->lock_order_edges = a->n_edges;
	rep->threads = a->n_threads;
	*out = rep;
	return 0;
}

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

static char *r_symbolize(void *ctx, uint64_t pc, char *buf, size_t size)
{
	return db_symbolize(ctx, pc, buf, size);
}

int analysis_run(struct db_reader *r, struct analysis_report **out, char **err)
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
	int got;
	while ((got = db_cursor_next(c, &ev, &text)) == 1) {
		if ((rc = analysis_feed(a, &ev)) != 0)
			break;
	}
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
