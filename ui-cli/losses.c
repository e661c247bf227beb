/*
 * losses.c - what a trace lost, said first and loudly: events the tracer's
 * queue refused (meta `dropped`; where, from the DB_MARK_LOST markers the
 * plugin writes when the queue takes events again) and a cut trace (its
 * writer never closed it: QEMU killed). record, check, info and report print
 * this before anything else (the analysis marks each finding whose events
 * come after a lost stretch: analysis_finding.lost).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "ui-cli/cli.h"

int cli_losses_read(struct db_reader *rd, struct cli_losses *l)
{
	struct db_filter f = { .kinds = 1u << DB_MARKER };
	struct db_cursor *c = NULL;
	struct db_event ev;
	const char *v, *text;
	char *err = NULL;
	int got;

	memset(l, 0, sizeof(*l));
	v = db_meta(rd, "dropped");
	l->dropped = v ? strtoull(v, NULL, 10) : 0;
	l->cut = db_meta(rd, "events_total") == NULL;
	if (db_cursor_open(rd, &f, &c, &err) != DB_OK) {
		free(err);
		return -1;
	}
	while ((got = db_cursor_next(c, &ev, &text)) == 1) {
		struct cli_loss *grown;
		if (ev.a != DB_MARK_LOST)
			continue;
		if (!(grown = realloc(l->at, (l->n + 1) * sizeof(*grown))))
			break;
		l->at = grown;
		l->at[l->n].n = ev.obj;
		l->at[l->n].from = (uint64_t)ev.b;
		l->at[l->n].to = ev.icount;
		l->at[l->n].event_id = ev.id;
		l->n++;
	}
	db_cursor_close(c);
	/* what the markers count is a floor: a marker can be lost too */
	for (size_t i = 0, sum = 0; i < l->n; i++)
		if ((sum += l->at[i].n) > l->dropped)
			l->dropped = sum;
	return got < 0 ? -1 : 0;
}

void cli_losses_free(struct cli_losses *l)
{
	free(l->at);
	l->at = NULL;
	l->n = 0;
}

int cli_losses_any(const struct cli_losses *l)
{
	return l->dropped > 0 || l->cut || l->n > 0;
}

void cli_losses_print(FILE *f, const struct cli_losses *l, const char *indent)
{
	size_t i, shown = l->n < 5 ? l->n : 5;

	if (l->dropped || l->n) {
		fprintf(f, "%sWARNING: this trace lost %" PRIu64 " event%s (the tracer's queue was full)", indent,
			l->dropped, l->dropped == 1 ? "" : "s");
		fprintf(f, l->n ? " in %zu stretch%s:\n" : "; where is not known\n", l->n, l->n == 1 ? "" : "es");
		for (i = 0; i < shown; i++)
			fprintf(f, "%s  %" PRIu64 " from icount %" PRIu64 " to %" PRIu64 " (event %" PRId64 " says so)\n",
				indent, l->at[i].n, l->at[i].from, l->at[i].to, l->at[i].event_id);
		if (l->n > shown)
			fprintf(f, "%s  ... and %zu more stretches (krewind events REC --kind marker)\n", indent,
				l->n - shown);
		fprintf(f, "%s  Lock, IRQL and interrupt state after a lost stretch is uncertain: findings after\n"
			   "%s  one are marked.\n", indent, indent);
	}
	if (l->cut)
		fprintf(f, "%sWARNING: this trace was cut: its tracer never closed it (QEMU was killed, or is still\n"
			   "%s  recording), so the last events before the cut may be missing.\n", indent, indent);
}

void cli_losses_json(struct cli_json *j, const struct cli_losses *l)
{
	cli_json_key(j, "lost");
	cli_json_array(j);
	for (size_t i = 0; i < l->n; i++) {
		cli_json_object(j);
		cli_json_kuint(j, "events", l->at[i].n);
		cli_json_kuint(j, "from_icount", l->at[i].from);
		cli_json_kuint(j, "to_icount", l->at[i].to);
		cli_json_kint(j, "event", l->at[i].event_id);
		cli_json_close(j);
	}
	cli_json_close(j);
}
