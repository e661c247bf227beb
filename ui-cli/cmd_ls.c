/*
 * cmd_ls.c - `krewind ls`: the recordings under traces/ (or --dir DIR),
 * oldest first so the newest is next to the prompt.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "replay/replay.h"
#include "ui-cli/cli.h"

static const char synopsis[] = "krewind ls [--dir DIR] [--json]";
static const char description[] =
	"Lists the recordings under DIR (default: $KREWIND_TRACES, else traces/): name,\n"
	"scenario, outcome, events, instructions and date, oldest first.";

enum { OPT_JSON = 1, OPT_DIR };
static const struct cli_option options[] = {
	{OPT_DIR, "dir", 'C', "DIR", "look for recordings in DIR"},
	{OPT_JSON, "json", 0, NULL, "print JSON"},
	{0},
};

struct entry {
	char *name, *path, *scenario, *outcome, *date;
	int64_t events;   /* -1 unknown */
	uint64_t icount;  /* 0 unknown */
	int has_manifest;
};

static void entry_free(struct entry *e)
{
	free(e->name);
	free(e->path);
	free(e->scenario);
	free(e->outcome);
	free(e->date);
}

static char *dup_or_null(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

/* Fills what the manifest lacks from the trace's metadata. */
static void fill_from_db(struct entry *e, const char *db_path)
{
	struct db_reader *r = NULL;
	char *err = NULL;
	const char *v;
	uint64_t n;

	if (db_reader_open(db_path, &r, &err) != DB_OK) {
		free(err);
		return;
	}
	if (e->outcome == NULL)
		e->outcome = dup_or_null(db_meta(r, "outcome"));
	if (e->date == NULL)
		e->date = dup_or_null(db_meta(r, "started_at"));
	if (e->scenario == NULL)
		e->scenario = dup_or_null(db_meta(r, "scenario"));
	v = db_meta(r, "events_total");
	if (e->events < 0 && v && cli_parse_u64(v, &n) == 0)
		e->events = (int64_t)n;
	v = db_meta(r, "icount_total");
	if (e->icount == 0 && v && cli_parse_u64(v, &n) == 0)
		e->icount = n;
	db_reader_close(r);
}

/* Returns 1 if path is a recording and fills *e, 0 if it is not one. */
static int load_entry(const char *dir, const char *name, struct entry *e)
{
	struct replay_recording *rec = NULL;
	char *path = NULL, *db = NULL, *err = NULL;
	struct stat st;
	char when[32];
	int found = 0;

	memset(e, 0, sizeof(*e));
	e->events = -1;
	if (asprintf(&path, "%s/%s", dir, name) < 0)
		return 0;
	if (asprintf(&db, "%s/trace.db", path) < 0)
		goto out;
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		goto out;
	if (replay_recording_open(path, &rec, &err) == REPLAY_OK) {
		e->has_manifest = cli_rec_has_manifest(rec);
		e->scenario = dup_or_null(rec->scenario);
		e->outcome = dup_or_null(rec->outcome);
		e->date = dup_or_null(rec->started_at);
		e->events = rec->qemu_args || rec->events_total ? rec->events_total : -1;
		e->icount = rec->icount_total;
		found = 1;
	} else if (access(db, R_OK) == 0) {
		found = 1;
	}
	free(err);
	if (!found)
		goto out;
	if (access(db, R_OK) == 0 && (e->outcome == NULL || e->date == NULL || e->events < 0 || e->icount == 0))
		fill_from_db(e, db);
	if (e->date == NULL) {
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&st.st_mtime));
		e->date = strdup(when);
	}
	e->name = strdup(name);
	e->path = path;
	path = NULL;
out:
	if (rec)
		replay_recording_free(rec);
	free(path);
	free(db);
	return found;
}

/* Natural order for NAME-N: by date, then name with numbers compared as numbers. */
static int compare_entries(const void *pa, const void *pb)
{
	const struct entry *a = pa, *b = pb;
	int c = strcmp(a->date, b->date);

	return c ? c : strverscmp(a->name, b->name);
}

static const char *or_dash(const char *s)
{
	return s && *s ? s : "-";
}

static void print_table(const struct entry *es, size_t n)
{
	int wn = 4, ws = 8, wo = 7;
	char ev[32], ic[32];
	size_t i;

	for (i = 0; i < n; i++) {
		if ((int)strlen(es[i].name) > wn)
			wn = strlen(es[i].name);
		if ((int)strlen(or_dash(es[i].scenario)) > ws)
			ws = strlen(or_dash(es[i].scenario));
		if ((int)strlen(or_dash(es[i].outcome)) > wo)
			wo = strlen(or_dash(es[i].outcome));
	}
	printf("%-*s  %-*s  %-*s  %10s  %14s  %s\n", wn, "NAME", ws, "SCENARIO", wo, "OUTCOME", "EVENTS", "ICOUNT",
	       "DATE");
	for (i = 0; i < n; i++) {
		if (es[i].events >= 0)
			snprintf(ev, sizeof(ev), "%" PRId64, es[i].events);
		else
			snprintf(ev, sizeof(ev), "-");
		if (es[i].icount > 0)
			snprintf(ic, sizeof(ic), "%" PRIu64, es[i].icount);
		else
			snprintf(ic, sizeof(ic), "-");
		printf("%-*s  %-*s  %-*s  %10s  %14s  %s\n", wn, es[i].name, ws, or_dash(es[i].scenario), wo,
		       or_dash(es[i].outcome), ev, ic, es[i].date);
	}
}

static int print_json(const char *dir, const struct entry *es, size_t n)
{
	struct cli_json j;
	size_t i;

	cli_json_init(&j, stdout);
	cli_json_object(&j);
	cli_json_kstr(&j, "dir", dir);
	cli_json_key(&j, "recordings");
	cli_json_array(&j);
	for (i = 0; i < n; i++) {
		cli_json_object(&j);
		cli_json_kstr(&j, "name", es[i].name);
		cli_json_kstr(&j, "path", es[i].path);
		cli_json_kstr(&j, "scenario", es[i].scenario);
		cli_json_kstr(&j, "outcome", es[i].outcome);
		cli_json_key(&j, "events");
		if (es[i].events >= 0)
			cli_json_int(&j, es[i].events);
		else
			cli_json_null(&j);
		cli_json_kuint(&j, "icount", es[i].icount);
		cli_json_kstr(&j, "date", es[i].date);
		cli_json_key(&j, "manifest");
		cli_json_bool(&j, es[i].has_manifest);
		cli_json_close(&j);
	}
	cli_json_close(&j);
	cli_json_close(&j);
	return cli_json_end(&j) == 0 ? CLI_OK : CLI_FAIL;
}

int cmd_ls(int argc, char **argv)
{
	struct cli_args a;
	const char *v, *dir = NULL;
	struct entry *es = NULL, *grown;
	size_t n = 0, cap = 0, i;
	struct dirent *d;
	DIR *dp = NULL;
	int json = 0, opt, rc = CLI_OK, explicit_dir;

	cli_args_init(&a, "ls", argc, argv);
	while ((opt = cli_next_opt(&a, options, &v)) != CLI_OPT_END) {
		switch (opt) {
		case OPT_JSON: json = 1; break;
		case OPT_DIR: dir = v; break;
		case CLI_OPT_HELP:
			cli_print_usage(stdout, synopsis, description, options);
			return CLI_OK;
		case CLI_OPT_ARG: return cli_usage_error("ls", "unexpected argument '%s'", v);
		default: return CLI_USAGE;
		}
	}
	explicit_dir = dir != NULL;
	if (dir == NULL)
		dir = getenv("KREWIND_TRACES") && *getenv("KREWIND_TRACES") ? getenv("KREWIND_TRACES") : "traces";
	dp = opendir(dir);
	if (dp == NULL) {
		if (errno == ENOENT && !explicit_dir)
			return json ? print_json(dir, NULL, 0) : CLI_OK; /* no recordings yet */
		return cli_error(CLI_USAGE, "ls: cannot read directory '%s': %s", dir, strerror(errno));
	}
	while ((d = readdir(dp)) != NULL) {
		if (d->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			grown = realloc(es, cap * sizeof(*es));
			if (grown == NULL) {
				rc = cli_error(CLI_FAIL, "ls: out of memory");
				goto out;
			}
			es = grown;
		}
		if (load_entry(dir, d->d_name, &es[n]))
			n++;
	}
	for (i = 0; i < n; i++)
		if (es[i].name == NULL || es[i].date == NULL) {
			rc = cli_error(CLI_FAIL, "ls: out of memory");
			goto out;
		}
	if (n > 1)
		qsort(es, n, sizeof(*es), compare_entries);
	if (json)
		rc = print_json(dir, es, n);
	else if (n > 0)
		print_table(es, n);
	else if (cli_use_color(stderr))
		fprintf(stderr, "no recordings under %s/\n", dir);
out:
	for (i = 0; i < n; i++)
		entry_free(&es[i]);
	free(es);
	closedir(dp);
	return rc;
}
