/*
 * cmd_sql.c - `krewind sql REC "SELECT ..."`: one read-only statement on the
 * trace (db_sql refuses anything that writes). People get an aligned table
 * (column widths taken from the first rows, then streamed); --json gets
 * {"columns": [...], "rows": [[...], ...]} with values as SQLite renders them.
 */
#include <stdlib.h>
#include <string.h>

#include "ui-cli/cli.h"

static const char synopsis[] = "krewind sql REC SQL [--json]\n"
			       "krewind sql REC - [--json]            (the statement from stdin)";
static const char description[] =
	"Runs one read-only SQL statement on the recording's trace.db. The view\n"
	"`events` has id, icount, vcpu, kind (text), pc, thread, obj, a, b,\n"
	"thread_name, lock_name, text; see docs/schema.md for every table.\n"
	"Example: krewind sql REC \"SELECT kind, count(*) FROM events GROUP BY kind\"";

enum { OPT_JSON = 1 };
static const struct cli_option options[] = {
	{OPT_JSON, "json", 0, NULL, "print JSON"},
	{0},
};

/* Rows kept to size the columns before the table starts streaming. */
#define SIZING_ROWS 1000
#define MAX_WIDTH 60

struct table {
	int json;
	struct cli_json j;
	int ncols;
	char **names;     /* ncols */
	int *width;       /* ncols */
	char ***rows;     /* buffered rows (SIZING_ROWS at most), each ncols values or NULL */
	size_t n_rows;
	int streaming;    /* the header was printed: print rows as they come */
	long long total;
	int oom;
};

static const char *shown(const char *v)
{
	return v ? v : "NULL";
}

static void print_row(const struct table *t, const char *const *values)
{
	int c;

	for (c = 0; c < t->ncols; c++)
		printf("%-*s%s", c + 1 < t->ncols ? t->width[c] : 0, shown(values[c]), c + 1 < t->ncols ? "  " : "");
	putchar('\n');
}

static void start_streaming(struct table *t)
{
	size_t r;
	int c;

	for (c = 0; c < t->ncols; c++)
		printf("%-*s%s", c + 1 < t->ncols ? t->width[c] : 0, t->names[c], c + 1 < t->ncols ? "  " : "");
	putchar('\n');
	for (c = 0; c < t->ncols; c++) {
		int i;

		for (i = 0; i < t->width[c]; i++)
			putchar('-');
		if (c + 1 < t->ncols)
			fputs("  ", stdout);
	}
	putchar('\n');
	for (r = 0; r < t->n_rows; r++)
		print_row(t, (const char *const *)t->rows[r]);
	t->streaming = 1;
}

static int first_row(struct table *t, int ncols, const char *const *names)
{
	int c;

	t->ncols = ncols;
	if (t->json) {
		cli_json_key(&t->j, "columns");
		cli_json_array_flat(&t->j);
		for (c = 0; c < ncols; c++)
			cli_json_str(&t->j, names[c]);
		cli_json_close(&t->j);
		cli_json_key(&t->j, "rows");
		cli_json_array(&t->j);
		return 0;
	}
	t->names = calloc(ncols, sizeof(*t->names));
	t->width = calloc(ncols, sizeof(*t->width));
	t->rows = calloc(SIZING_ROWS, sizeof(*t->rows));
	if (t->names == NULL || t->width == NULL || t->rows == NULL)
		return -1;
	for (c = 0; c < ncols; c++) {
		t->names[c] = strdup(names[c] ? names[c] : "");
		if (t->names[c] == NULL)
			return -1;
		t->width[c] = strlen(t->names[c]);
	}
	return 0;
}

static int on_row(void *ctx, int ncols, const char *const *names, const char *const *values)
{
	struct table *t = ctx;
	char **copy;
	int c, w;

	if (t->oom)
		return 0;
	if (t->total++ == 0 && first_row(t, ncols, names) != 0) {
		t->oom = 1;
		return 0;
	}
	if (t->json) {
		cli_json_array_flat(&t->j);
		for (c = 0; c < ncols; c++)
			cli_json_str(&t->j, values[c]);
		cli_json_close(&t->j);
		return 0;
	}
	if (t->streaming) {
		print_row(t, values);
		return 0;
	}
	copy = calloc(ncols, sizeof(*copy));
	if (copy == NULL) {
		t->oom = 1;
		return 0;
	}
	t->rows[t->n_rows++] = copy;
	for (c = 0; c < ncols; c++) {
		if (values[c] && (copy[c] = strdup(values[c])) == NULL) {
			t->oom = 1;
			return 0;
		}
		w = strlen(shown(values[c]));
		if (w > t->width[c])
			t->width[c] = w > MAX_WIDTH ? MAX_WIDTH : w;
	}
	if (t->n_rows == SIZING_ROWS)
		start_streaming(t);
	return 0;
}

static void table_free(struct table *t)
{
	size_t r;
	int c;

	for (r = 0; r < t->n_rows; r++) {
		for (c = 0; c < t->ncols; c++)
			free(t->rows[r][c]);
		free(t->rows[r]);
	}
	for (c = 0; t->names && c < t->ncols; c++)
		free(t->names[c]);
	free(t->rows);
	free(t->names);
	free(t->width);
}

/* Reads all of stdin into a malloc'd string. */
static char *read_stdin(void)
{
	size_t len = 0, cap = 4096, got;
	char *buf = malloc(cap), *grown;

	while (buf && (got = fread(buf + len, 1, cap - len - 1, stdin)) > 0) {
		len += got;
		if (cap - len - 1 == 0) {
			grown = realloc(buf, cap * 2);
			if (grown == NULL) {
				free(buf);
				return NULL;
			}
			buf = grown;
			cap *= 2;
		}
	}
	if (buf)
		buf[len] = '\0';
	return buf;
}

int cmd_sql(int argc, char **argv)
{
	struct cli_args a;
	struct cli_rec r;
	struct table t;
	const char *v, *spec = NULL, *sql = NULL;
	char *from_stdin = NULL, *err = NULL;
	int json = 0, opt, rc;

	cli_args_init(&a, "sql", argc, argv);
	while ((opt = cli_next_opt(&a, options, &v)) != CLI_OPT_END) {
		if ((rc = cli_common_opt(&a, opt, v, NULL, synopsis, description, options)) >= 0)
			return rc;
		switch (opt) {
		case OPT_JSON: json = 1; break;
		case CLI_OPT_ARG:
			if (spec == NULL)
				spec = v;
			else if (sql == NULL)
				sql = v;
			else
				return cli_usage_error("sql", "unexpected argument '%s' (quote the SQL statement)", v);
			break;
		}
	}
	if (spec == NULL)
		return cli_usage_error("sql", "missing the recording (REC)");
	if (sql == NULL)
		return cli_usage_error("sql", "missing the SQL statement");
	if (strcmp(sql, "-") == 0) {
		from_stdin = read_stdin();
		if (from_stdin == NULL)
			return cli_error(CLI_FAIL, "sql: cannot read the statement from stdin");
		sql = from_stdin;
	}
	if (strspn(sql, " \t\r\n") == strlen(sql)) {
		free(from_stdin);
		return cli_usage_error("sql", "the SQL statement is empty");
	}
	rc = cli_rec_open(spec, &r);
	if (rc != CLI_OK) {
		free(from_stdin);
		return rc;
	}
	memset(&t, 0, sizeof(t));
	t.json = json;
	if (json) {
		cli_json_init(&t.j, stdout);
		cli_json_object(&t.j);
	}
	rc = db_sql(r.db, sql, on_row, &t, &err);
	if (rc != DB_OK) {
		rc = cli_error_msg(rc == DB_E_NOMEM || rc == DB_E_IO ? CLI_FAIL : CLI_USAGE, "sql",
				   err ? err : strdup("the statement failed"));
		goto out;
	}
	if (t.oom) {
		rc = cli_error(CLI_FAIL, "sql: out of memory");
		goto out;
	}
	if (json) {
		if (t.total == 0) {
			cli_json_key(&t.j, "columns");
			cli_json_array_flat(&t.j);
			cli_json_close(&t.j);
			cli_json_key(&t.j, "rows");
			cli_json_array(&t.j);
		}
		cli_json_close(&t.j); /* rows */
		cli_json_close(&t.j);
		rc = cli_json_end(&t.j) == 0 ? CLI_OK : CLI_FAIL;
	} else {
		if (t.total > 0 && !t.streaming)
			start_streaming(&t);
		rc = CLI_OK;
	}
out:
	table_free(&t);
	free(from_stdin);
	cli_rec_close(&r);
	return rc;
}
