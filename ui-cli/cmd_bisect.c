/*
 * cmd_bisect.c - `krewind bisect REC --until PRED`: the first event at which
 * PRED turns true. sql:COND is answered by the trace itself; gdb:EXPR (a gdb
 * expression over the guest: registers, memory, the kernel's symbols) by a
 * binary search over replays in one QEMU (replay/krewind-bisect.py): forward
 * steps replay the segment from the current point, backward steps seek from
 * the start snapshot. The answer is checked (false just before, true at it)
 * and earlier candidates are sampled: a predicate true before the answer is
 * not monotone, and bisect says so. Every evaluation is bounded: gdb that
 * reports nothing for KREWIND_WAIT + 60 s is stopped with an error.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "replay/replay.h"
#include "ui-cli/cli.h"

static const char synopsis[] = "krewind bisect REC --until sql:COND|gdb:EXPR [--kind K[,K...]] [--json] [-q]";
static const char description[] =
	"Finds the first event at which a predicate turns true, the last event before\n"
	"it, and the replay command for each.\n"
	"  sql:COND   an SQL condition over the events view (krewind sql), e.g.\n"
	"             \"sql:kind = 'irql' AND b >= 13\": the trace answers, no replay.\n"
	"  gdb:EXPR   a gdb expression over the guest, evaluated just before each\n"
	"             candidate event, e.g. \"gdb:$cr8 >= 13\" or \"gdb:SomeCounter > 3\";\n"
	"             binary search over replays (assumes it stays true once true),\n"
	"             then the boundary is evaluated again and earlier candidates are\n"
	"             sampled: a warning says when the predicate is not monotone.\n"
	"--kind limits the candidate events (default: all events). Exit 0 when the\n"
	"predicate turned true, 1 when it never did, 130 when interrupted.";

enum { OPT_UNTIL = 1, OPT_KIND, OPT_JSON, OPT_QUIET };
static const struct cli_option options[] = {
	{OPT_UNTIL, "until", 0, "PRED", "sql:COND or gdb:EXPR"},
	{OPT_KIND, "kind", 'k', "K[,K...]", "candidate events of these kinds only"},
	{OPT_JSON, "json", 0, NULL, "print JSON"},
	{OPT_QUIET, "quiet", 'q', NULL, "no progress line"},
	{0},
};

/* What the gdb bisection found besides the answer. */
struct bisect_check {
	int verified;      /* -1: not checked; 0/1: the boundary held again */
	int sampled;       /* earlier candidates evaluated */
	int64_t also_true; /* an earlier event where the predicate holds, or 0 */
};

struct cands {
	int64_t *id;
	uint64_t *icount;
	size_t n, cap;
};

static int cands_add(struct cands *c, int64_t id, uint64_t icount)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		int64_t *ni = realloc(c->id, cap * sizeof(*ni));
		uint64_t *nc;
		if (!ni)
			return -1;
		c->id = ni;
		nc = realloc(c->icount, cap * sizeof(*nc));
		if (!nc)
			return -1;
		c->icount = nc;
		c->cap = cap;
	}
	c->id[c->n] = id;
	c->icount[c->n++] = icount;
	return 0;
}

static int parse_kinds(const char *s, uint32_t *mask)
{
	char *copy = strdup(s), *tok, *save = NULL;
	int rc = 0;

	if (!copy)
		return -1;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int k = db_kind_from_name(tok);
		if (!k) {
			rc = -1;
			break;
		}
		*mask |= 1u << k;
	}
	free(copy);
	return rc;
}

static int first_row(void *ctx, int ncols, const char *const *names, const char *const *values)
{
	(void)names;
	if (ncols > 0 && values[0] && *(int64_t *)ctx == 0)
		*(int64_t *)ctx = strtoll(values[0], NULL, 10);
	return 0;
}

static void print_point(struct cli_rec *rec, const char *label, int64_t id, struct cli_json *j)
{
	struct cli_names names;
	struct db_event ev;
	char *err = NULL, desc[512], sym[160];

	cli_names_from_db(&names, rec->db);
	if (id <= 0 || db_event_by_id(rec->db, id, &ev, &err) != 1) {
		free(err);
		if (j) {
			cli_json_key(j, label);
			cli_json_null(j);
		} else {
			printf("%-10s none\n", label);
		}
		return;
	}
	cli_describe_event(&ev, NULL, &names, desc, sizeof(desc));
	db_symbolize(rec->db, ev.pc, sym, sizeof(sym));
	if (j) {
		cli_json_key(j, label);
		cli_json_object(j);
		cli_json_kint(j, "event", ev.id);
		cli_json_kuint(j, "icount", ev.icount);
		cli_json_kstr(j, "kind", db_kind_name(ev.kind));
		cli_json_khex(j, "pc", ev.pc);
		cli_json_kstr(j, "symbol", sym);
		cli_json_kstr(j, "description", desc);
		cli_json_close(j);
		return;
	}
	printf("%-10s event %" PRId64 " at icount %#" PRIx64 " (%s): %s at %s\n", label, ev.id, ev.icount,
	       db_kind_name(ev.kind), desc, sym);
	printf("           krewind replay %s --to %" PRId64 "\n", rec->rec->dir, ev.id);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the gdb bisection; fills *bad / *good (event ids, 0 = none) and *replays. */
static int bisect_gdb(struct cli_rec *rec, const struct cands *c, const char *expr, int quiet, int64_t *bad,
		      int64_t *good, int *replays, struct bisect_check *chk)
{
	char tmpl[] = "/tmp/krewind-bisect.XXXXXX", *tmp = mkdtemp(tmpl);
	char *job = NULL, *out = NULL, *py = NULL, *bpy = NULL, *err = NULL;
	char *ex_file = NULL, *ex_target = NULL, *ex_src1 = NULL, *ex_src2 = NULL, line[4096];
	struct qemu_guard *g = NULL;
	struct replay_session *s = NULL;
	struct replay_session_opts so = { 0 };
	struct qemu_proc *gdbp = NULL;
	struct qmp_buf b = { 0 };
	FILE *f = NULL;
	int rc = CLI_FAIL, status = -1, done = 0;
	struct cli_progress *prog = NULL;
	const char *wait_env = getenv("KREWIND_WAIT");
	int64_t quiet_ms = ((wait_env && atoi(wait_env) > 0 ? atoi(wait_env) : 600) + 60) * (int64_t)1000, last_line;
	long pos = 0;
	size_t i;

	if (!tmp || asprintf(&job, "%s/job.json", tmp) < 0 || asprintf(&out, "%s/gdb.out", tmp) < 0)
		return cli_error(CLI_FAIL, "cannot create a temporary directory");
	py = replay_find_file("KREWIND_GDB_PY", "replay/krewind-gdb.py");
	/* krewind-bisect.py lives next to krewind-gdb.py. */
	if (py && strrchr(py, '/') && asprintf(&bpy, "%.*s/krewind-bisect.py", (int)(strrchr(py, '/') - py), py) < 0)
		bpy = NULL;
	if (!py || !bpy || access(bpy, R_OK) < 0) {
		rc = cli_error(CLI_FAIL, "cannot find replay/krewind-gdb.py and krewind-bisect.py next to krewind");
		goto out;
	}
	if (!rec->rec->snapshot_image) {
		rc = cli_error(CLI_USAGE, "%s has no snapshot image (recorded with --no-rr?)", rec->rec->name);
		goto out;
	}
	qmp_buf_add(&b, "{\"expr\": ", 9);
	qmp_buf_str(&b, expr);
	qmp_buf_add(&b, ", \"candidates\": [", 17);
	for (i = 0; i < c->n; i++)
		qmp_buf_printf(&b, "%s[%" PRId64 ", %" PRIu64 "]", i ? ", " : "", c->id[i], c->icount[i]);
	qmp_buf_add(&b, "]}\n", 3);
	f = fopen(job, "w");
	if (b.oom || !f || fwrite(b.buf, 1, b.len, f) != b.len || fclose(f) != 0) {
		f = NULL;
		rc = cli_error(CLI_FAIL, "cannot write %s", job);
		goto out;
	}
	f = NULL;
	if (qemu_guard_begin(&g, &err) < 0) {
		rc = cli_error_msg(CLI_FAIL, NULL, err);
		goto out;
	}
	so.guard = g;
	so.gdb = 1;
	so.stay_at_end = 1;
	if ((rc = replay_session_start(rec->rec, &so, &s, &err)) < 0) {
		rc = cmd_replay_error(rc, err);
		goto out;
	}
	if (asprintf(&ex_file, "file %s", rec->rec->symbols ? rec->rec->symbols : rec->rec->kernel) < 0 ||
	    asprintf(&ex_target, "target remote %s", replay_session_gdb_socket(s)) < 0 ||
	    asprintf(&ex_src1, "source %s", py) < 0 || asprintf(&ex_src2, "source %s", bpy) < 0) {
		rc = cli_error(CLI_FAIL, "out of memory");
		goto out;
	}
	setenv("KREWIND_DB", rec->rec->db_path, 1);
	setenv("KREWIND_QMP", replay_session_gdb_qmp_socket(s), 1);
	setenv("KREWIND_GDB_SOCK", replay_session_gdb_socket(s), 1);
	setenv("KREWIND_BISECT", job, 1);
	if ((rc = cmd_gdb_env(rec->rec)) != CLI_OK)
		goto out;
	{
		const char *gdb_bin = getenv("KREWIND_GDB");
		char *gv[] = { (char *)(gdb_bin && *gdb_bin ? gdb_bin : "gdb"), "-q", "-nx", "-batch",
			       "-ex", "set pagination off", "-ex", ex_file, "-ex", "set architecture i386:x86-64",
			       "-ex", "set remotetimeout 30", "-ex", ex_target, "-ex", ex_src1, "-ex", ex_src2, NULL };
		struct qemu_spawn_opts po = { .stdout_path = out, .stderr_path = out };
		if (qemu_spawn(gv, &po, &gdbp, &err) < 0) {
			rc = cli_error_msg(CLI_FAIL, NULL, err);
			goto out;
		}
	}
	/* Wait for gdb, drawing each evaluation; a gdb silent for longer than
	 * one bounded move in time is stuck. */
	prog = cli_progress_start("bisecting", quiet);
	last_line = now_ms();
	for (;;) {
		int wrc = qemu_proc_wait(gdbp, g, 250, &status);
		FILE *lf;

		if (wrc == 0)
			break;
		if (wrc == REPLAY_E_INTERRUPTED) {
			cli_progress_end(prog);
			prog = NULL;
			rc = cli_error(CLI_INTERRUPTED, "interrupted: gdb and QEMU stopped");
			goto out;
		}
		if ((lf = fopen(out, "r"))) {
			fseek(lf, pos, SEEK_SET);
			while (fgets(line, sizeof(line), lf)) {
				struct qmp_json *m = NULL;
				uint64_t step = 0, event = 0;

				if (line[strlen(line) - 1] != '\n')
					break; /* half a line: read it next time */
				pos = ftell(lf);
				last_line = now_ms();
				if (strncmp(line, "KRBISECT ", 9) != 0 ||
				    qmp_json_parse(line + 9, strlen(line + 9), &m, NULL, NULL) < 0)
					continue;
				if (qmp_json_get_u64(m, "step", &step) == 0 && qmp_json_get_u64(m, "event", &event) == 0)
					cli_progress_note(prog, "%llu replays, event %llu: %s (%s)", (unsigned long long)step,
							  (unsigned long long)event,
							  qmp_json_get(m, "value") && qmp_json_get(m, "value")->boolean ? "true"
															: "false",
							  qmp_json_get_str(m, "phase") ?: "search");
				qmp_json_free(m);
			}
			fclose(lf);
		}
		if (now_ms() - last_line > quiet_ms) {
			cli_progress_end(prog);
			prog = NULL;
			rc = cli_error(CLI_FAIL, "the gdb bisection made no progress for %lld s: gdb and QEMU stopped (log: %s)",
				       (long long)(quiet_ms / 1000), out);
			out[0] = 0;
			goto keep;
		}
	}
	cli_progress_end(prog);
	prog = NULL;
	f = fopen(out, "r");
	while (f && fgets(line, sizeof(line), f)) {
		struct qmp_json *m = NULL;
		const char *e;
		uint64_t v;

		if (strncmp(line, "KRBISECT ", 9) != 0 || qmp_json_parse(line + 9, strlen(line + 9), &m, NULL, NULL) < 0)
			continue;
		if ((e = qmp_json_get_str(m, "error"))) {
			rc = cli_error(CLI_USAGE, "%s", e);
			qmp_json_free(m);
			goto out;
		}
		if (qmp_json_get(m, "replays")) {
			const struct qmp_json *ver = qmp_json_get(m, "verified");
			qmp_json_get_u64(m, "replays", &v);
			*replays = (int)v;
			*bad = qmp_json_get_u64(m, "first_bad", &v) == 0 ? c->id[v] : 0;
			*good = qmp_json_get_u64(m, "last_good", &v) == 0 ? c->id[v] : 0;
			chk->verified = ver ? ver->boolean : -1;
			chk->sampled = qmp_json_get_u64(m, "sampled", &v) == 0 ? (int)v : 0;
			chk->also_true = qmp_json_get_u64(m, "also_true", &v) == 0 ? c->id[v] : 0;
			done = 1;
		}
		qmp_json_free(m);
	}
	if (!done) {
		rc = cli_error(CLI_FAIL, "the gdb bisection did not finish (gdb status %d; see %s)", status, out);
		out[0] = 0; /* keep the log for the user */
		goto keep;
	}
	rc = CLI_OK;
out:
	if (out)
		unlink(out);
keep:
	cli_progress_end(prog);
	if (f)
		fclose(f);
	qemu_proc_free(gdbp);
	replay_session_end(s);
	qemu_guard_end(g);
	if (job)
		unlink(job);
	if (tmp && rc == CLI_OK)
		rmdir(tmp);
	free(b.buf);
	free(job);
	free(out);
	free(py);
	free(bpy);
	free(ex_file);
	free(ex_target);
	free(ex_src1);
	free(ex_src2);
	return rc;
}

int cmd_bisect(int argc, char **argv)
{
	struct cli_args a;
	struct cli_rec rec = { 0 };
	struct cands c = { 0 };
	struct db_filter f = { 0 };
	struct db_cursor *cur = NULL;
	struct db_event ev;
	const char *val, *spec = NULL, *pred = NULL, *text;
	char *err = NULL, *sql = NULL;
	int64_t bad = 0, good = 0;
	int opt, json = 0, quiet = 0, rc, replays = 0, is_sql;
	struct bisect_check chk = { -1, 0, 0 };

	cli_args_init(&a, "bisect", argc, argv);
	while ((opt = cli_next_opt(&a, options, &val)) != CLI_OPT_END) {
		if ((rc = cli_common_opt(&a, opt, val, &spec, synopsis, description, options)) >= 0)
			return rc;
		switch (opt) {
		case OPT_UNTIL: pred = val; break;
		case OPT_KIND:
			if (parse_kinds(val, &f.kinds) < 0)
				return cli_usage_error("bisect", "unknown event kind in '%s'", val);
			break;
		case OPT_JSON: json = 1; break;
		case OPT_QUIET: quiet = 1; break;
		}
	}
	if (!spec)
		return cli_usage_error("bisect", "no recording given");
	if (!pred || (strncmp(pred, "sql:", 4) != 0 && strncmp(pred, "gdb:", 4) != 0) || !pred[4])
		return cli_usage_error("bisect", "--until wants sql:COND or gdb:EXPR");
	is_sql = pred[0] == 's';
	if ((rc = cli_rec_open(spec, &rec)) != CLI_OK)
		return rc;
	if (db_cursor_open(rec.db, &f, &cur, &err) < 0) {
		rc = cli_error_msg(CLI_USAGE, NULL, err);
		goto out;
	}
	while (db_cursor_next(cur, &ev, &text) == 1)
		if (cands_add(&c, ev.id, ev.icount) < 0) {
			rc = cli_error(CLI_FAIL, "out of memory");
			goto out;
		}
	if (c.n == 0) {
		rc = cli_error(CLI_USAGE, "%s has no candidate events", rec.rec->name);
		goto out;
	}
	if (is_sql) {
		struct qmp_buf kinds = { 0 };
		int k;
		for (k = 1; f.kinds && k <= DB_KIND_MAX; k++)
			if (f.kinds & (1u << k))
				qmp_buf_printf(&kinds, "%s'%s'", kinds.len ? "," : "", db_kind_name(k));
		if (asprintf(&sql, "SELECT id FROM events WHERE (%s)%s%s%s ORDER BY id LIMIT 1", pred + 4,
			     kinds.len ? " AND kind IN (" : "", kinds.len ? kinds.buf : "", kinds.len ? ")" : "") < 0) {
			free(kinds.buf);
			rc = cli_error(CLI_FAIL, "out of memory");
			goto out;
		}
		free(kinds.buf);
		if (db_sql(rec.db, sql, first_row, &bad, &err) < 0) {
			rc = cli_error_msg(CLI_USAGE, "bad sql predicate", err);
			goto out;
		}
		if (bad) {
			size_t i;
			for (i = 0; i < c.n && c.id[i] < bad; i++)
				good = c.id[i];
		} else {
			good = c.id[c.n - 1];
		}
	} else if ((rc = bisect_gdb(&rec, &c, pred + 4, quiet, &bad, &good, &replays, &chk)) != CLI_OK) {
		goto out;
	}
	if (chk.verified == 0)
		cli_warning("the predicate did not give the same values on a second replay of the boundary "
			    "(it depends on something the replay does not reproduce): the answer is not reliable");
	if (chk.also_true)
		cli_warning("the predicate is not monotone: it also holds before event %" PRId64 ", earlier than the "
			    "first bad event %" PRId64 " the binary search found; the first event where it holds may be "
			    "earlier (narrow the candidates with --kind, or use sql:)",
			    chk.also_true, bad);
	if (json) {
		struct cli_json j;
		cli_json_init(&j, stdout);
		cli_json_object(&j);
		cli_json_kstr(&j, "recording", rec.rec->dir);
		cli_json_kstr(&j, "predicate", pred);
		print_point(&rec, "first_bad", bad, &j);
		print_point(&rec, "last_good", good, &j);
		cli_json_kint(&j, "replays", replays);
		cli_json_kint(&j, "candidates", (int64_t)c.n);
		if (!is_sql) {
			cli_json_key(&j, "verified");
			if (chk.verified < 0)
				cli_json_null(&j);
			else
				cli_json_bool(&j, chk.verified);
			cli_json_kint(&j, "sampled", chk.sampled);
			cli_json_key(&j, "monotone");
			cli_json_bool(&j, chk.also_true == 0);
			cli_json_key(&j, "also_true_before");
			if (chk.also_true)
				cli_json_int(&j, chk.also_true);
			else
				cli_json_null(&j);
		}
		cli_json_close(&j);
		cli_json_end(&j);
	} else {
		printf("bisect %s --until %s\n", rec.rec->name, pred);
		print_point(&rec, "first bad", bad, NULL);
		print_point(&rec, "last good", good, NULL);
		if (is_sql)
			printf("replays: 0 (the trace answers sql predicates; %zu candidate events)\n", c.n);
		else
			printf("replays: %d (binary search over %zu candidate events, the boundary checked again, %d earlier "
			       "sampled%s)\n",
			       replays, c.n, chk.sampled, chk.also_true ? ": NOT monotone" : "");
		if (!bad)
			printf("the predicate never turned true\n");
	}
	rc = bad ? CLI_OK : CLI_FAIL;
out:
	db_cursor_close(cur);
	cli_rec_close(&rec);
	free(c.id);
	free(c.icount);
	free(sql);
	return rc;
}
