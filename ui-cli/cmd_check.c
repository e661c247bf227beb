/*
 * cmd_check.c - `krewind check REC`: runs the analyses (analysis/analysis.h)
 * and prints their findings, most important first, each with what happened,
 * where, and the command that replays the run to the culprit event.
 * Exit status: 0 no findings, 1 findings, 2 input error.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/analysis.h"
#include "replay/replay.h"
#include "ui-cli/cli.h"

static const char synopsis[] = "krewind check REC [--json] [-q]";
static const char description[] =
	"Checks a recording the way lockdep and Driver Verifier would: lock-order\n"
	"cycles between lock classes, irq-unsafe locks and irq-safe -> irq-unsafe\n"
	"orders, recursive locking, IRQL and spinlock rules, sleeping in atomic\n"
	"context, the interrupt protocol (EOI, nesting, returns, deferred work),\n"
	"crashes, hangs and their causal chain. Prints the findings ranked, each\n"
	"with its events, call sites and the command to replay to it. Exit status:\n"
	"0 no findings, 1 findings. docs/checks.md describes every rule. On a terminal a progress\n"
	"line counts the events checked (not with -q).";

enum { OPT_JSON = 1, OPT_QUIET };
static const struct cli_option options[] = {
	{OPT_JSON, "json", 0, NULL, "print JSON (the shape is in docs/cli.md)"},
	{OPT_QUIET, "quiet", 'q', NULL, "no progress line"},
	{0},
};

struct style {
	const char *bold, *red, *yellow, *dim, *reset;
};

/* Prints text as a paragraph wrapped at width columns, each line indented. */
static void print_wrapped(const char *text, int indent, int width)
{
	const char *p = text, *word;
	int col = 0, len;

	while (*p) {
		while (*p == ' ' || *p == '\n' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		word = p;
		while (*p && *p != ' ' && *p != '\n' && *p != '\t')
			p++;
		len = p - word;
		if (col > 0 && col + 1 + len > width) {
			putchar('\n');
			col = 0;
		}
		if (col == 0) {
			printf("%*s%.*s", indent, "", len, word);
			col = indent + len;
		} else {
			printf(" %.*s", len, word);
			col += 1 + len;
		}
	}
	if (col > 0)
		putchar('\n');
}

/* Prints s quoted for a POSIX shell when it needs it. */
static void print_shell_word(const char *s)
{
	const char *p;

	if (*s && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=@+,%") ==
			  strlen(s)) {
		fputs(s, stdout);
		return;
	}
	putchar('\'');
	for (p = s; *p; p++) {
		if (*p == '\'')
			fputs("'\\''", stdout);
		else
			putchar(*p);
	}
	putchar('\'');
}

static const char *severity_color(const struct style *st, int severity)
{
	return severity == ANALYSIS_SEV_ERROR ? st->red : severity == ANALYSIS_SEV_WARNING ? st->yellow : st->dim;
}

static void print_finding(const struct analysis_finding *f, size_t index, const char *spec,
			  const struct style *st)
{
	size_t i;

	printf("%s%zu. %s%s%s %s%s%s", st->bold, index, st->reset, severity_color(st, f->severity),
	       analysis_severity_name(f->severity), st->reset, st->bold, f->kind_name);
	printf(": %s%s", f->title, st->reset);
	if (f->count > 1 && (f->kind == ANALYSIS_LOCK_ORDER || f->kind == ANALYSIS_IRQ_LOCK_ORDER))
		printf(" (+%" PRIu64 " variant%s)", f->count - 1, f->count == 2 ? "" : "s");
	else if (f->count > 1)
		printf(" (%" PRIu64 " times)", f->count);
	putchar('\n');
	if (f->explanation && *f->explanation)
		print_wrapped(f->explanation, 3, 79);
	if (f->n_steps > 0) {
		printf("   %-10s %8s %14s %3s %-16s %-32s %s\n", "", "EVENT", "ICOUNT", "CPU", "THREAD", "WHERE",
		       "WHAT");
		for (i = 0; i < f->n_steps; i++) {
			const struct analysis_step *s = &f->steps[i];
			char id[24];

			if (s->event_id > 0)
				snprintf(id, sizeof(id), "%" PRId64, s->event_id);
			else
				snprintf(id, sizeof(id), "-");
			printf("   %-10s %8s %14" PRIu64 " %3u %-16s %-32s %s\n", s->role, id, s->icount, s->vcpu,
			       s->thread_name && *s->thread_name ? s->thread_name : "-",
			       s->where && *s->where ? s->where : "-", s->text ? s->text : "");
		}
	}
	if (f->n_lock_classes > 0) {
		printf("   locks:");
		for (i = 0; i < f->n_lock_classes; i++)
			printf("%s %s", i ? "," : "", f->lock_classes[i]);
		putchar('\n');
	}
	if (f->n_threads > 0) {
		printf("   threads:");
		for (i = 0; i < f->n_threads; i++)
			printf("%s %s", i ? "," : "",
			       f->threads[i].name && *f->threads[i].name ? f->threads[i].name : "?");
		putchar('\n');
	}
	if (f->lost)
		printf("   %sLOST%s: %" PRIu64 " events from icount %" PRIu64 " to %" PRIu64
		       " before this finding's last event: it may be an artifact of the loss\n",
		       st->bold, st->reset, f->lost->events, f->lost->from_icount, f->lost->to_icount);
	if (f->event_id > 0) {
		printf("   replay to event %" PRId64 " (icount %" PRIu64 ", cpu %u): %skrewind replay ", f->event_id,
		       f->icount, f->vcpu, st->bold);
		print_shell_word(spec);
		printf(" --to %" PRId64 "%s\n", f->event_id, st->reset);
	}
}

static void print_text(const struct analysis_report *rep, const char *spec, const struct style *st,
		       const struct cli_losses *losses)
{
	size_t i, errors = 0, warnings = 0, notes = 0;

	/* Losses first: every finding below is read in their light. */
	if (losses->dropped || losses->n) {
		cli_losses_print(stdout, losses, "");
		putchar('\n');
	}
	for (i = 0; i < rep->n_findings; i++) {
		if (i > 0)
			putchar('\n');
		print_finding(&rep->findings[i], i + 1, spec, st);
		switch (rep->findings[i].severity) {
		case ANALYSIS_SEV_ERROR: errors++; break;
		case ANALYSIS_SEV_WARNING: warnings++; break;
		default: notes++; break;
		}
	}
	if (rep->cut)
		printf("%sthe trace was cut%s: its tracer never closed it (QEMU was killed, or is still\n"
		       "recording), so events from the last moments before the cut may be missing.\n\n",
		       st->bold, st->reset);
	if (rep->n_findings == 0) {
		printf("no findings (%" PRId64 " events checked, outcome %s)\n", rep->events,
		       rep->outcome && *rep->outcome ? rep->outcome : "unknown");
		return;
	}
	printf("\n%zu finding%s: %zu error%s, %zu warning%s, %zu note%s (%" PRId64 " events checked, outcome %s%s)\n",
	       rep->n_findings, rep->n_findings == 1 ? "" : "s", errors, errors == 1 ? "" : "s", warnings,
	       warnings == 1 ? "" : "s", notes, notes == 1 ? "" : "s", rep->events,
	       rep->outcome && *rep->outcome ? rep->outcome : "unknown", rep->hung ? ", hung" : "");
}

struct check_progress {
	struct cli_progress *pr;
	uint64_t total;
};

static void check_progress(void *ctx, uint64_t done, int read_all)
{
	struct check_progress *p = ctx;
	if (read_all)
		cli_progress_note(p->pr, "%" PRIu64 " events read, building the report", done);
	else
		cli_progress_update(p->pr, done, p->total, "events");
}

/* analysis_run with a progress line counting events against the trace's
 * total. Returns an ANALYSIS_ code; *err set on failure. */
static int run_checks(struct db_reader *db, int quiet, struct analysis_report **out, char **err)
{
	int64_t counts[DB_KIND_MAX + 1] = {0};
	struct check_progress p = {cli_progress_start("check", quiet), 0};
	if (p.pr && db_count_by_kind(db, counts, NULL) == DB_OK)
		p.total = (uint64_t)counts[0];
	int rc = analysis_run_progress(db, p.pr ? check_progress : NULL, &p, out, err);
	cli_progress_end(p.pr);
	return rc;
}

int cmd_check(int argc, char **argv)
{
	struct analysis_report *rep = NULL;
	struct cli_args a;
	struct cli_rec r;
	struct style st = {"", "", "", "", ""};
	struct cli_losses losses;
	const char *v, *spec = NULL;
	char *err = NULL;
	int json = 0, quiet = 0, opt, rc;

	cli_args_init(&a, "check", argc, argv);
	while ((opt = cli_next_opt(&a, options, &v)) != CLI_OPT_END) {
		if ((rc = cli_common_opt(&a, opt, v, &spec, synopsis, description, options)) >= 0)
			return rc;
		switch (opt) {
		case OPT_JSON: json = 1; break;
		case OPT_QUIET: quiet = 1; break;
		}
	}
	rc = cli_rec_open_arg("check", spec, &r);
	if (rc != CLI_OK)
		return rc;
	rc = run_checks(r.db, quiet, &rep, &err);
	if (rc != ANALYSIS_OK) {
		rc = cli_error_msg(rc == ANALYSIS_E_DB ? CLI_USAGE : CLI_FAIL, "check",
				   err ? err : strdup("the analysis failed"));
		goto out;
	}
	if (json) {
		if (analysis_report_json(rep, stdout) != ANALYSIS_OK) {
			rc = cli_error(CLI_FAIL, "check: writing the JSON report failed");
			goto out;
		}
	} else {
		if (cli_use_color(stdout)) {
			st.bold = "\033[1m";
			st.red = "\033[31m";
			st.yellow = "\033[33m";
			st.dim = "\033[2m";
			st.reset = "\033[0m";
		}
		cli_losses_read(r.db, &losses);
		print_text(rep, spec, &st, &losses);
		cli_losses_free(&losses);
	}
	/* Notes (a lock still held when the trace ended, ...) are facts, not bugs. */
	rc = CLI_OK;
	for (size_t i = 0; i < rep->n_findings; i++)
		if (rep->findings[i].severity != ANALYSIS_SEV_NOTE)
			rc = CLI_FAIL;
out:
	if (rep)
		analysis_report_free(rep);
	cli_rec_close(&r);
	return rc;
}
