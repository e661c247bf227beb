/*
 * progress.c - one progress line on stderr for commands that take a while.
 *
 * Drawn only when stderr is a terminal and the command was not asked to be
 * quiet (-q); redrawn at most ten times a second, so a caller may update it
 * on every event; erased by cli_progress_end, so what follows starts on a
 * clean line. Nothing is printed when stderr is a file or a pipe: logs and
 * tests see only the command's own output.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "ui-cli/cli.h"

struct cli_progress {
	const char *what;
	double last;  /* when the line was last drawn (monotonic seconds) */
	double start;
	int drawn;
	uint64_t total; /* cli_progress_total */
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct cli_progress *cli_progress_start(const char *what, int quiet)
{
	struct cli_progress *p;

	if (quiet || !isatty(STDERR_FILENO) || !(p = calloc(1, sizeof(*p))))
		return NULL;
	p->what = what;
	p->start = p->last = now();
	return p;
}

void cli_progress_update(struct cli_progress *p, uint64_t done, uint64_t total, const char *unit)
{
	double t;

	if (!p || (t = now()) - p->last < 0.1)
		return;
	p->last = t;
	p->drawn = 1;
	if (total > 0)
		fprintf(stderr, "\r\033[K%s: %llu/%llu %s (%.0f%%, %.0f s)", p->what, (unsigned long long)done,
			(unsigned long long)total, unit, 100.0 * (double)done / (double)total, t - p->start);
	else
		fprintf(stderr, "\r\033[K%s: %llu %s (%.0f s)", p->what, (unsigned long long)done, unit,
			t - p->start);
}

void cli_progress_note(struct cli_progress *p, const char *fmt, ...)
{
	va_list ap;

	if (!p)
		return;
	p->last = now();
	p->drawn = 1;
	fprintf(stderr, "\r\033[K%s: ", p->what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

void cli_progress_end(struct cli_progress *p)
{
	if (!p)
		return;
	if (p->drawn)
		fputs("\r\033[K", stderr);
	free(p);
}

void cli_progress_total(struct cli_progress *p, uint64_t total)
{
	if (p)
		p->total = total;
}

void cli_progress_icount(void *ctx, uint64_t icount, uint64_t target)
{
	struct cli_progress *p = ctx;

	if (p)
		cli_progress_update(p, icount, target ? target : p->total, "instructions");
}
