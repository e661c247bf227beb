/*
 * check_run.c - times the analyses for bench/check_scale.sh:
 *   check_run TRACE scan   only streams the events through a db cursor (the
 *                          floor set by SQLite);
 *   check_run TRACE check  runs analysis_run as `krewind check` does;
 *   check_run - feed N     feeds N events of the synthetic mix
 *                          (bench/check_mix.h) straight to analysis_feed, for
 *                          sizes no trace file should hold.
 * Prints "events findings seconds" on one line; feed adds the resident set
 * size (MiB) after each quarter of the events, to show memory stays flat.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "analysis/analysis.h"
#include "bench/check_mix.h"
#include "db/db.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Resident set size in MiB, from /proc/self/statm. */
static double rss_mib(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return (double)resident * 4096.0 / 1048576.0;
}

struct feed {
	struct analysis *a;
	uint64_t n, quarter;
	double rss[4];
	int q;
};

static int to_analysis(void *ctx, const struct db_event *ev)
{
	struct feed *f = ctx;
	int rc = analysis_feed(f->a, ev);
	if (++f->n % f->quarter == 0 && f->q < 4)
		f->rss[f->q++] = rss_mib();
	return rc;
}

static int feed(uint64_t n)
{
	struct feed f = {.quarter = n / 4 ? n / 4 : 1};
	struct gen g = {.target = n, .rng = 0x2545f4914f6cdd1dULL, .sink = to_analysis, .ctx = &f};
	struct analysis_report *rep = NULL;
	double t0 = now();
	int rc = analysis_new(NULL, &f.a, NULL);
	rc = rc ? rc : mix_run(&g);
	rc = rc ? rc : analysis_finish(f.a, "completed", &rep, NULL);
	double t1 = now();
	if (rc) {
		fprintf(stderr, "check_run: feeding the mix failed (%d)\n", rc);
		analysis_free(f.a);
		return 1;
	}
	printf("%llu %zu %.3f", (unsigned long long)rep->events, rep->n_findings, t1 - t0);
	for (int i = 0; i < f.q; i++)
		printf(" %.1f", f.rss[i]);
	printf("\n");
	analysis_report_free(rep);
	analysis_free(f.a);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[2], "feed") == 0)
		return feed(strtoull(argv[3], NULL, 10));
	if (argc != 3 || (strcmp(argv[2], "scan") != 0 && strcmp(argv[2], "check") != 0)) {
		fprintf(stderr, "usage: check_run TRACE scan|check | check_run - feed N\n");
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
