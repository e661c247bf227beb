/*
 * cmd_gdb.c - `krewind gdb REC --at EVENT`: replays to the event and hands
 * the stopped machine to the system gdb (QEMU's gdbstub, the kernel's
 * symbols, krewind's kr-* commands). replay/krewind-gdb.py makes it behave
 * like `rr replay`: reverse execution done by krewind over replays, a pause
 * at the end of the recording, `run` back to the start.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "replay/replay.h"
#include "ui-cli/cli.h"

static const char synopsis[] = "krewind gdb REC --at EVENT|icount:N|finding:N [--batch FILE [--json]] [-q]";
static const char description[] =
	"Replays REC to just before event EVENT (or to icount N), then runs gdb attached\n"
	"to QEMU's gdbstub with the kernel's ELF loaded, stopped at that instruction.\n"
	"As in rr: reverse-continue, reverse-step, reverse-next, reverse-finish,\n"
	"reverse-stepi and reverse-nexti go back to breakpoints, watchpoints and lines;\n"
	"at the end of the recording the replay pauses and stays usable; run goes\n"
	"back to the start. krewind's commands:\n"
	"  kr-events [N]   the trace's events around the current icount\n"
	"  kr-goto EVENT   move the replay to another event (icount:N, finding:N)\n"
	"  kr-locks        locks held now (from the trace)\n"
	"  kr-irql         CR8 and the trace's IRQL\n"
	"  kr-threads      threads of the trace, the current one marked\n"
	"  kr-icount       instructions retired so far\n"
	"--batch FILE runs the gdb script FILE non-interactively and exits with gdb;\n"
	"with --json its output comes back in one JSON document.\n"
	"Environment: KREWIND_GDB (the gdb binary), KREWIND_WAIT (seconds one move in\n"
	"time may take, default 600).";

enum { OPT_AT = 1, OPT_BATCH, OPT_JSON, OPT_QUIET };
static const struct cli_option options[] = {
	{OPT_AT, "at", 0, "EVENT|icount:N|finding:N", "where to stop"},
	{OPT_BATCH, "batch", 0, "FILE", "run this gdb script and exit"},
	{OPT_JSON, "json", 0, NULL, "with --batch: print the result and gdb's output as JSON"},
	{OPT_QUIET, "quiet", 'q', NULL, "no progress line"},
	{0},
};

/* The --json document of a batch run: where it started, gdb's status and output. */
static void print_json(const struct replay_recording *r, const struct db_event *ev, uint64_t icount, int status,
		       const char *out_path)
{
	struct cli_json j;
	char buf[4096];
	size_t n;
	FILE *f = fopen(out_path, "r");
	struct qmp_buf b = { 0 };

	while (f && (n = fread(buf, 1, sizeof(buf), f)) > 0)
		qmp_buf_add(&b, buf, n);
	if (f)
		fclose(f);
	cli_json_init(&j, stdout);
	cli_json_object(&j);
	cli_json_kstr(&j, "recording", r->dir);
	cli_json_kuint(&j, "icount", icount);
	if (ev->id > 0)
		cli_json_kint(&j, "event", ev->id);
	cli_json_kint(&j, "gdb_status", status);
	cli_json_key(&j, "output");
	cli_json_strn(&j, b.buf ? b.buf : "", b.len);
	cli_json_close(&j);
	cli_json_end(&j);
	free(b.buf);
}

int cmd_gdb_env(const struct replay_recording *r)
{
	char exe[4096], buf[32];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		return cli_error(CLI_FAIL, "cannot find the krewind binary (/proc/self/exe)");
	exe[n] = 0;
	setenv("KREWIND_BIN", exe, 1);
	setenv("KREWIND_REC", r->dir, 1);
	/* Runs krewind ended (hang, timeout, signal) end exactly at icount_total;
	 * for runs the guest ended it is the plugin's count, an upper bound. */
	snprintf(buf, sizeof(buf), "%" PRIu64, r->icount_total);
	if (r->outcome && strcmp(r->outcome, "killed") == 0)
		buf[0] = 0; /* read while the signal stopped QEMU: maybe stale */
	setenv("KREWIND_END", r->exit_status == 0 && r->icount_total ? buf : "", 1);
	setenv("KREWIND_ICOUNT_MAX", r->icount_total ? buf : "", 1);
	return CLI_OK;
}

int cmd_gdb(int argc, char **argv)
{
	struct cli_args a;
	struct cli_rec rec = { 0 };
	struct qemu_guard *g = NULL;
	struct replay_session *s = NULL;
	struct replay_session_opts so = { 0 };
	struct qemu_proc *gdbp = NULL;
	struct db_event ev;
	const char *val, *spec = NULL, *at = NULL, *batch = NULL, *gdb_bin = getenv("KREWIND_GDB");
	char *err = NULL, *py = NULL, *ex_file = NULL, *ex_target = NULL, *ex_source = NULL;
	char tmpl[] = "/tmp/krewind-gdb.XXXXXX", *tmp = NULL, *out_path = NULL;
	struct cli_progress *prog = NULL;
	uint64_t icount;
	int opt, rc, status = 0, json = 0, quiet = 0;

	cli_args_init(&a, "gdb", argc, argv);
	while ((opt = cli_next_opt(&a, options, &val)) != CLI_OPT_END) {
		if ((rc = cli_common_opt(&a, opt, val, &spec, synopsis, description, options)) >= 0)
			return rc;
		switch (opt) {
		case OPT_AT: at = val; break;
		case OPT_BATCH: batch = val; break;
		case OPT_JSON: json = 1; break;
		case OPT_QUIET: quiet = 1; break;
		}
	}
	if (json && !batch)
		return cli_usage_error("gdb", "--json needs --batch (an interactive session has no JSON to give)");
	if (!spec)
		return cli_usage_error("gdb", "no recording given");
	if (!at)
		return cli_usage_error("gdb", "--at EVENT|icount:N is required");
	if (batch && access(batch, R_OK) < 0)
		return cli_error(CLI_USAGE, "cannot read gdb script %s", batch);
	if ((rc = cli_rec_open(spec, &rec)) != CLI_OK)
		return rc;
	if ((rc = cmd_replay_target(&rec, at, &ev, &icount)) != CLI_OK)
		goto out;
	py = replay_find_file("KREWIND_GDB_PY", "replay/krewind-gdb.py");
	if (!py) {
		rc = cli_error(CLI_FAIL, "cannot find replay/krewind-gdb.py next to krewind (set KREWIND_GDB_PY)");
		goto out;
	}
	if (qemu_guard_begin(&g, &err) < 0) {
		rc = cli_error_msg(CLI_FAIL, NULL, err);
		goto out;
	}
	so.guard = g;
	so.gdb = 1;
	so.stay_at_end = 1;
	prog = cli_progress_start("replaying", quiet);
	so.progress = cli_progress_icount;
	so.progress_ctx = prog;
	rc = replay_session_start(rec.rec, &so, &s, &err);
	if (rc == 0 && ev.id > 0 && ev.kind != DB_TRAP)
		rc = replay_session_land(s, icount, ev.pc, 16, &icount, &err);
	else if (rc == 0)
		rc = replay_session_goto(s, icount, &err);
	cli_progress_end(prog);
	if (rc < 0) {
		rc = cmd_replay_error(rc, err);
		goto out;
	}
	if (json && (!(tmp = mkdtemp(tmpl)) || asprintf(&out_path, "%s/gdb.out", tmp) < 0)) {
		rc = cli_error(CLI_FAIL, "cannot create a temporary directory");
		goto out;
	}
	if (asprintf(&ex_file, "file %s", rec.rec->symbols ? rec.rec->symbols : rec.rec->kernel) < 0 ||
	    asprintf(&ex_target, "target remote %s", replay_session_gdb_socket(s)) < 0 ||
	    asprintf(&ex_source, "source %s", py) < 0) {
		rc = cli_error(CLI_FAIL, "out of memory");
		goto out;
	}
	setenv("KREWIND_DB", rec.rec->db_path, 1);
	setenv("KREWIND_QMP", replay_session_gdb_qmp_socket(s), 1);
	setenv("KREWIND_GDB_SOCK", replay_session_gdb_socket(s), 1);
	if ((rc = cmd_gdb_env(rec.rec)) != CLI_OK)
		goto out;
	{
		char *gv[24];
		int n = 0;
		struct qemu_spawn_opts po = { .stdout_path = json ? out_path : "-", .stderr_path = json ? out_path : "-",
					      .stdin_inherit = !batch };

		gv[n++] = (char *)(gdb_bin && *gdb_bin ? gdb_bin : "gdb");
		gv[n++] = "-q";
		gv[n++] = "-nx";
		if (batch)
			gv[n++] = "-batch";
		gv[n++] = "-ex";
		gv[n++] = "set pagination off";
		gv[n++] = "-ex";
		gv[n++] = "set confirm off";
		if (rec.rec->kernel || rec.rec->symbols) {
			gv[n++] = "-ex";
			gv[n++] = ex_file;
		}
		/* qemu-system-x86_64's stub always describes an x86-64 CPU; a
		 * 32-bit (multiboot) ELF would make gdb pick i386 and refuse it. */
		gv[n++] = "-ex";
		gv[n++] = "set architecture i386:x86-64";
		/* gdb gives the stub 2 s to answer by default; a loaded host
		 * replaying a busy guest can take longer (bisect under load). */
		gv[n++] = "-ex";
		gv[n++] = "set remotetimeout 30";
		gv[n++] = "-ex";
		gv[n++] = ex_target;
		gv[n++] = "-ex";
		gv[n++] = ex_source;
		if (batch) {
			gv[n++] = "-x";
			gv[n++] = (char *)batch;
		}
		gv[n] = NULL;
		if ((rc = qemu_spawn(gv, &po, &gdbp, &err)) < 0) {
			rc = cli_error_msg(CLI_FAIL, NULL, err);
			goto out;
		}
	}
	for (;;) {
		rc = qemu_proc_wait(gdbp, g, -1, &status);
		if (rc == 0)
			break;
		/* Interactive gdb takes Ctrl-C for itself (it is in our process
		 * group); anything else ends the session. */
		if (rc == REPLAY_E_INTERRUPTED && !batch && qemu_guard_pending(g) == SIGINT) {
			qemu_guard_clear(g);
			continue;
		}
		rc = cli_error(CLI_INTERRUPTED, "interrupted: gdb and QEMU stopped");
		goto out;
	}
	if (json)
		print_json(rec.rec, &ev, icount, status, out_path);
	rc = status == 0 ? CLI_OK : cli_error(CLI_FAIL, "gdb exited with status %d", status);
out:
	if (out_path)
		unlink(out_path);
	if (tmp)
		rmdir(tmp);
	free(out_path);
	qemu_proc_free(gdbp);
	replay_session_end(s);
	qemu_guard_end(g);
	cli_rec_close(&rec);
	free(py);
	free(ex_file);
	free(ex_target);
	free(ex_source);
	return rc;
}
