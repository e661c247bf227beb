/*
 * check_run.c - times the analyses on a trace for bench/check_scale.sh:
 * `check_run TRACE scan` only streams the events through a db cursor (the
 * floor set by SQLite), `check_run TRACE check` runs analysis_run as
 * `krewind check` does. Prints "events findings seconds" on one line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "analysis/analysis.h"
#include "db/db.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[2], "scan") != 0 && strcmp(argv[2], "check") != 0)) {
		fprintf(stderr, "usage: check_run TRACE scan|check\n");
		return 2;
	}
	struct db_reader *r = NULL;
	char *err = NULL;
	if (db_reader_open(argv[1], &r, &err)) {
		fprintf(stderr, "check_run: %s\n", err ? err : "cannot open");
		free(err);
		return 2;
	}
	double t0 = now();
	long long events = 0, findings = 0;
	int rc = 0;
	if (strcmp(argv[2], "scan") == 0) {
		struct db_cursor *c = NULL;
		struct db_filter f = {0};
		struct db_event ev;
		const char *text;
		rc = db_cursor_open(r, &f, &c, &err);
		while (!rc && (rc = db_cursor_next(c, &ev, &text)) == 1)
			events++, rc = 0;
		if (c)
			db_cursor_close(c);
	} else {
		struct analysis_report *rep = NULL;
		rc = analysis_run(r, &rep, &err);
		if (!rc) {
			events = rep->events;
			findings = (long long)rep->n_findings;
		}
		analysis_report_free(rep);
	}
	double t1 = now();
	db_reader_close(r);
	if (rc < 0) {
		fprintf(stderr, "check_run: %s\n", err ? err : "failed");
		free(err);
		return 1;
	}
	printf("%lld %lld %.3f\n", events, findings, t1 - t0);
	return 0;
}
