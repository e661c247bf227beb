/*
 * cmd_info.c - `krewind info REC`: what a recording is (manifest), how the
 * run went (trace metadata), and what it holds (events per kind, threads,
 * locks with their acquisitions).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "replay/replay.h"
#include "ui-cli/cli.h"

static const char synopsis[] = "krewind info REC [--json]";
static const char description[] =
	"Shows a recording: its manifest (scenario, outcome, QEMU, kernel, instructions),\n"
	"the trace's run metadata, the number of events of each kind, the threads and\n"
	"the locks with their acquisitions.";

enum { OPT_JSON = 1 };
static const struct cli_option options[] = {
	{OPT_JSON, "json", 0, NULL, "print JSON"},
	{0},
};

/* Metadata rows collected through db_sql (key, value). */
struct meta {
	char **keys, **values;
	size_t n, cap;
	int oom;
};

static int meta_row(void *ctx, int ncols, const char *const *names, const char *const *values)
{
	struct meta *m = ctx;
	char **k, **v;

	(void)names;
	if (ncols < 2 || m->oom)
		return 0;
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;

		k = realloc(m->keys, cap * sizeof(*k));
		if (k)
			m->keys = k;
		v = realloc(m->values, cap * sizeof(*v));
		if (v)
			m->values = v;
		if (k == NULL || v == NULL) {
			m->oom = 1;
			return 0;
		}
		m->cap = cap;
	}
	m->keys[m->n] = strdup(values[0] ? values[0] : "");
	m->values[m->n] = values[1] ? strdup(values[1]) : NULL;
	if (m->keys[m->n] == NULL || (values[1] && m->values[m->n] == NULL)) {
		free(m->keys[m->n]);
		free(m->values[m->n]);
		m->oom = 1;
		return 0;
	}
	m->n++;
	return 0;
}

static void meta_free(struct meta *m)
{
	size_t i;

	for (i = 0; i < m->n; i++) {
		free(m->keys[i]);
		free(m->values[i]);
	}
	free(m->keys);
	free(m->values);
}

struct info {
	struct cli_rec r;
	struct meta meta;
	int64_t counts[DB_KIND_MAX + 1];
	const struct db_thread_info *threads;
	size_t n_threads;
	const struct db_lock_info *locks;
	size_t n_locks;
};

static int load(struct info *in, char **err)
{
	int rc;

	rc = db_sql(in->r.db, "SELECT key, value FROM meta ORDER BY key", meta_row, &in->meta, err);
	if (rc != DB_OK)
		return rc;
	if (in->meta.oom)
		return DB_E_NOMEM;
	rc = db_count_by_kind(in->r.db, in->counts, err);
	if (rc != DB_OK)
		return rc;
	rc = db_threads(in->r.db, &in->threads, &in->n_threads, err);
	if (rc != DB_OK)
		return rc;
	return db_locks(in->r.db, &in->locks, &in->n_locks, err);
}

static const char *or_dash(const char *s)
{
	return s && *s ? s : "-";
}

static void print_text(const struct info *in)
{
	const struct replay_recording *rec = in->r.rec;
	const char *outcome = cli_rec_outcome(&in->r);
	int k, wn = 4, wc = 5;
	size_t i;

	struct cli_losses losses;

	if (cli_losses_read(in->r.db, &losses) == 0 && cli_losses_any(&losses)) {
		cli_losses_print(stdout, &losses, "");
		putchar('\n');
	}
	cli_losses_free(&losses);
	printf("recording   %s\n", or_dash(rec->dir));
	printf("trace       %s\n", or_dash(rec->db_path));
	if (cli_rec_has_manifest(rec)) {
		printf("scenario    %s\n", or_dash(rec->scenario));
		if (rec->append && *rec->append)
			printf("append      %s\n", rec->append);
		printf("outcome     %s (QEMU exit status %d)\n", or_dash(outcome), rec->exit_status);
		printf("started     %s\n", or_dash(rec->started_at));
		printf("wall time   %.1f s\n", rec->wall_seconds);
		printf("qemu        %s\n", or_dash(rec->qemu_version));
		printf("kernel      %s\n", or_dash(rec->kernel));
		if (rec->symbols && (rec->kernel == NULL || strcmp(rec->symbols, rec->kernel) != 0))
			printf("symbols     %s\n", rec->symbols);
		if (rec->probe)
			printf("probe       %s\n", rec->probe);
		if (replay_smp_is(rec)) /* several vCPUs: docs/replay.md, SMP mode */
			printf("replay log  none (re-executable: %d vCPUs, mode %s)\n", rec->vcpus, rec->mode);
		else
			printf("replay log  %s\n", rec->replay_log ? rec->replay_log : "none (recorded without rr)");
		printf("icount      %" PRIu64 "\n", rec->icount_total);
		printf("events      %" PRId64 "\n", in->counts[0]);
	} else {
		printf("manifest    none (a bare trace)\n");
		printf("outcome     %s\n", or_dash(outcome));
		printf("events      %" PRId64 "\n", in->counts[0]);
	}

	if (in->meta.n > 0) {
		printf("\nrun metadata (trace.db)\n");
		for (i = 0; i < in->meta.n; i++)
			printf("  %-18s %s\n", in->meta.keys[i], or_dash(in->meta.values[i]));
	}

	printf("\nevents by kind\n");
	for (k = 1; k <= DB_KIND_MAX; k++)
		if (in->counts[k] > 0)
			printf("  %-10s %12" PRId64 "\n", db_kind_name(k), in->counts[k]);
	printf("  %-10s %12" PRId64 "\n", "total", in->counts[0]);

	printf("\nthreads (%zu)\n", in->n_threads);
	for (i = 0; i < in->n_threads; i++)
		if ((int)strlen(or_dash(in->threads[i].name)) > wn)
			wn = strlen(or_dash(in->threads[i].name));
	if (in->n_threads > 0)
		printf("  %-*s  %-18s  %12s\n", wn, "NAME", "ADDRESS", "SWITCHES IN");
	for (i = 0; i < in->n_threads; i++)
		printf("  %-*s  0x%016" PRIx64 "  %12" PRId64 "\n", wn, or_dash(in->threads[i].name),
		       in->threads[i].addr, in->threads[i].switches_in);

	wn = 4;
	for (i = 0; i < in->n_locks; i++) {
		if ((int)strlen(or_dash(in->locks[i].name)) > wn)
			wn = strlen(or_dash(in->locks[i].name));
		if ((int)strlen(or_dash(in->locks[i].class_name)) > wc)
			wc = strlen(or_dash(in->locks[i].class_name));
	}
	printf("\nlocks and objects (%zu)\n", in->n_locks);
	if (in->n_locks > 0)
		printf("  %-*s  %-*s  %-8s  %-18s  %12s\n", wn, "NAME", wc, "CLASS", "TYPE", "ADDRESS", "ACQUIRED");
	for (i = 0; i < in->n_locks; i++)
		printf("  %-*s  %-*s  %-8s  0x%016" PRIx64 "  %12" PRId64 "\n", wn, or_dash(in->locks[i].name), wc,
		       or_dash(in->locks[i].class_name), or_dash(in->locks[i].type), in->locks[i].addr,
		       in->locks[i].acquisitions);
}

static int print_json(const struct info *in)
{
	const struct replay_recording *rec = in->r.rec;
	struct cli_json j;
	size_t i;
	int k;

	cli_json_init(&j, stdout);
	cli_json_object(&j);
	cli_json_kstr(&j, "name", rec->name);
	cli_json_kstr(&j, "dir", rec->dir);
	cli_json_kstr(&j, "trace", rec->db_path);
	cli_json_kstr(&j, "outcome", cli_rec_outcome(&in->r));
	{
		struct cli_losses losses;
		if (cli_losses_read(in->r.db, &losses) == 0) {
			cli_json_kuint(&j, "dropped", losses.dropped);
			cli_json_key(&j, "cut");
			cli_json_bool(&j, losses.cut);
			cli_losses_json(&j, &losses);
		}
		cli_losses_free(&losses);
	}
	cli_json_key(&j, "manifest");
	if (cli_rec_has_manifest(rec)) {
		cli_json_object(&j);
		cli_json_kstr(&j, "scenario", rec->scenario);
		cli_json_kstr(&j, "append", rec->append);
		cli_json_kstr(&j, "outcome", rec->outcome);
		cli_json_kint(&j, "exit_status", rec->exit_status);
		cli_json_kstr(&j, "started_at", rec->started_at);
		cli_json_key(&j, "wall_seconds");
		cli_json_double(&j, rec->wall_seconds);
		cli_json_kstr(&j, "qemu_version", rec->qemu_version);
		cli_json_kstr(&j, "kernel", rec->kernel);
		cli_json_kstr(&j, "symbols", rec->symbols);
		cli_json_kstr(&j, "probe", rec->probe);
		cli_json_kstr(&j, "replay_log", rec->replay_log);
		cli_json_kstr(&j, "snapshot_image", rec->snapshot_image);
		cli_json_kuint(&j, "icount_total", rec->icount_total);
		cli_json_kint(&j, "events_total", rec->events_total);
		cli_json_key(&j, "qemu_args");
		cli_json_array_flat(&j);
		for (i = 0; rec->qemu_args && rec->qemu_args[i]; i++)
			cli_json_str(&j, rec->qemu_args[i]);
		cli_json_close(&j);
		cli_json_close(&j);
	} else {
		cli_json_null(&j);
	}
	cli_json_key(&j, "meta");
	cli_json_object(&j);
	for (i = 0; i < in->meta.n; i++)
		cli_json_kstr(&j, in->meta.keys[i], in->meta.values[i]);
	cli_json_close(&j);
	cli_json_key(&j, "counts");
	cli_json_object(&j);
	cli_json_kint(&j, "total", in->counts[0]);
	for (k = 1; k <= DB_KIND_MAX; k++)
		cli_json_kint(&j, db_kind_name(k), in->counts[k]);
	cli_json_close(&j);
	cli_json_key(&j, "threads");
	cli_json_array(&j);
	for (i = 0; i < in->n_threads; i++) {
		cli_json_object(&j);
		cli_json_khex(&j, "addr", in->threads[i].addr);
		cli_json_kstr(&j, "name", in->threads[i].name);
		cli_json_kint(&j, "switches_in", in->threads[i].switches_in);
		cli_json_close(&j);
	}
	cli_json_close(&j);
	cli_json_key(&j, "locks");
	cli_json_array(&j);
	for (i = 0; i < in->n_locks; i++) {
		cli_json_object(&j);
		cli_json_khex(&j, "addr", in->locks[i].addr);
		cli_json_kstr(&j, "name", in->locks[i].name);
		cli_json_kstr(&j, "class", in->locks[i].class_name);
		cli_json_kstr(&j, "type", in->locks[i].type);
		cli_json_kint(&j, "acquisitions", in->locks[i].acquisitions);
		cli_json_close(&j);
	}
	cli_json_close(&j);
	cli_json_close(&j);
	return cli_json_end(&j) == 0 ? CLI_OK : CLI_FAIL;
}

int cmd_info(int argc, char **argv)
{
	struct cli_args a;
	struct info in;
	const char *v, *spec = NULL;
	char *err = NULL;
	int json = 0, opt, rc;

	cli_args_init(&a, "info", argc, argv);
	while ((opt = cli_next_opt(&a, options, &v)) != CLI_OPT_END) {
		if ((rc = cli_common_opt(&a, opt, v, &spec, synopsis, description, options)) >= 0)
			return rc;
		switch (opt) {
		case OPT_JSON: json = 1; break;
		}
	}
	memset(&in, 0, sizeof(in));
	rc = cli_rec_open_arg("info", spec, &in.r);
	if (rc != CLI_OK)
		return rc;
	rc = load(&in, &err);
	if (rc != DB_OK) {
		rc = cli_error_msg(rc == DB_E_CORRUPT || rc == DB_E_SCHEMA ? CLI_USAGE : CLI_FAIL, "info",
				   err ? err : strdup("out of memory"));
		goto out;
	}
	rc = json ? print_json(&in) : (print_text(&in), CLI_OK);
out:
	meta_free(&in.meta);
	cli_rec_close(&in.r);
	return rc;
}
