/*
 * cmd_gdb.c - `krewind gdb REC --at EVENT`: replays to the event and hands
 * the stopped machine to the system gdb (QEMU's gdbstub, the kernel's
 * symbols, krewind's kr-* commands). replay/krewind-gdb.py makes it behave
 * like `rr replay`: reverse execution done by krewind over replays, a pause
 * at the end of the recording, `run` back to the start.
 *
 * A recording with several vCPUs (mode "reexec") has no replay log: it is
 * re-executed to the event and the plugin holds the machine there and serves
 * gdb itself (tracer/gdbstub.c). Going back re-executes from the start:
 * krewind-gdb.py disconnects and asks on a control socket (KREWIND_SMP_CTL)
 * for another count; this process, which owns every QEMU it starts, replaces
 * the held one and answers.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
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
	"On a recording with several vCPUs (record --smp N) QEMU re-executes it and\n"
	"krewind's plugin holds the machine and serves gdb: one thread per vCPU,\n"
	"registers of the held one, read-only; going back re-executes from the start.\n"
	"--batch FILE runs the gdb script FILE non-interactively and exits with gdb;\n"
	"with --json its output comes back in one JSON document.\n"
	"Environment: KREWIND_GDB (the gdb binary), KREWIND_WAIT (seconds one move in\n"
	"time may take, default 600), TMPDIR (where its temporary files go).";

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

/* SMP: one request on the control socket, "goto N\n": the held QEMU (gdb
 * left it) is released and a new one held at N; the answer is "ok\n", or
 * "error: ...\n" and the machine is held again at *at. */
static void serve_ctl(int lfd, const struct replay_recording *r, const char *dir, struct qemu_guard *g,
		      struct qemu_proc **held, uint64_t *at)
{
	char line[128] = "", *err = NULL, *reply = NULL;
	struct pollfd p;
	uint64_t n;
	size_t len = 0;
	int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (c < 0)
		return;
	p.fd = c;
	p.events = POLLIN;
	while (len + 1 < sizeof(line) && !memchr(line, '\n', len) && poll(&p, 1, 5000) == 1) {
		ssize_t k = read(c, line + len, sizeof(line) - 1 - len);

		if (k <= 0)
			break;
		len += (size_t)k;
		line[len] = 0;
	}
	if (sscanf(line, "goto %" SCNu64, &n) != 1) {
		reply = strdup("error: krewind: expected goto N\n");
	} else {
		replay_smp_release(*held);
		*held = NULL;
		if (replay_smp_hold(r, n, dir, g, held, &err) == 0) {
			*at = n;
			reply = strdup("ok\n");
		} else {
			char *again = NULL;

			if (replay_smp_hold(r, *at, dir, g, held, &again) < 0 &&
			    asprintf(&reply, "error: krewind: %s; and back at icount %" PRIu64 ": %s\n", err, *at,
				     again) < 0)
				reply = NULL;
			if (!reply && asprintf(&reply, "error: krewind: %s (still at icount %" PRIu64 ")\n", err,
					       *at) < 0)
				reply = NULL;
			free(again);
		}
	}
	if (reply && write(c, reply, strlen(reply)) < 0)
		cli_warning("cannot answer krewind-gdb.py: %s", strerror(errno));
	free(reply);
	free(err);
	close(c);
}

/* SMP: the control socket DIR/ctl.sock, non-blocking; -1 on error. */
static int ctl_listen(const char *dir)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd;

	if (snprintf(a.sun_path, sizeof(a.sun_path), "%s/ctl.sock", dir) >= (int)sizeof(a.sun_path))
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0 && (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1) < 0)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* SMP: the files a held re-run left in dir. */
static void smp_cleanup(const char *dir)
{
	static const char *const files[] = { "trace.db", "trace.db-wal", "trace.db-shm", "serial.log", "qemu.log",
					     "stop", "stop.tmp", "gdb.sock", "ctl.sock", NULL };
	size_t i;

	for (i = 0; files[i]; i++) {
		char *p = NULL;

		if (asprintf(&p, "%s/%s", dir, files[i]) >= 0)
			unlink(p);
		free(p);
	}
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

/* Starts gdb on the kernel's symbols, attached to target (ex_target), with
 * krewind-gdb.py (ex_source) and the --batch script; its output to out_path
 * when not NULL (--json). */
static int spawn_gdb(const struct replay_recording *r, const char *batch, const char *out_path, char *ex_file,
		     char *ex_target, char *ex_source, struct qemu_proc **gdbp)
{
	const char *gdb_bin = getenv("KREWIND_GDB");
	char *gv[24], *err = NULL;
	int n = 0;
	struct qemu_spawn_opts po = { .stdout_path = out_path ? out_path : "-",
				      .stderr_path = out_path ? out_path : "-", .stdin_inherit = !batch };

	gv[n++] = (char *)(gdb_bin && *gdb_bin ? gdb_bin : "gdb");
	gv[n++] = "-q";
	gv[n++] = "-nx";
	if (batch)
		gv[n++] = "-batch";
	gv[n++] = "-ex";
	gv[n++] = "set pagination off";
	gv[n++] = "-ex";
	gv[n++] = "set confirm off";
	if (r->kernel || r->symbols) {
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
	if (qemu_spawn(gv, &po, gdbp, &err) < 0)
		return cli_error_msg(CLI_FAIL, NULL, err);
	return CLI_OK;
}

int cmd_gdb(int argc, char **argv)
{
	struct cli_args a;
	struct cli_rec rec = { 0 };
	struct qemu_guard *g = NULL;
	struct replay_session *s = NULL;
	struct replay_session_opts so = { 0 };
	struct qemu_proc *gdbp = NULL, *held = NULL;
	struct db_event ev;
	const char *val, *spec = NULL, *at = NULL, *batch = NULL;
	char *err = NULL, *py = NULL, *ex_file = NULL, *ex_target = NULL, *ex_source = NULL;
	char tmpl[256], *tmp = NULL, *out_path = NULL, *sock = NULL, *ctl = NULL;
	const char *tmpdir = getenv("TMPDIR");
	struct cli_progress *prog = NULL;
	uint64_t icount, held_at; /* where gdb started; smp: where the machine is held now */
	int opt, rc, status = 0, json = 0, quiet = 0, smp, ctl_fd = -1;

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
	smp = replay_smp_is(rec.rec);
	/* $TMPDIR's if set; its sockets' paths must stay short (108 bytes) */
	snprintf(tmpl, sizeof(tmpl), "%s/krewind-gdb.XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
	if ((json || smp) && !(tmp = mkdtemp(tmpl))) {
		rc = cli_error(CLI_FAIL, "cannot create a temporary directory: %s", strerror(errno));
		goto out;
	}
	if (json && asprintf(&out_path, "%s/gdb.out", tmp) < 0) {
		rc = cli_error(CLI_FAIL, "out of memory");
		goto out;
	}
	so.guard = g;
	so.gdb = 1;
	so.stay_at_end = 1;
	prog = cli_progress_start(smp ? "re-executing" : "replaying", quiet);
	so.progress = cli_progress_icount;
	so.progress_ctx = prog;
	if (smp) /* the event's machine count: the plugin holds before its instruction */
		rc = replay_smp_hold(rec.rec, icount, tmp, g, &held, &err);
	else
		rc = replay_session_start(rec.rec, &so, &s, &err);
	if (!smp && rc == 0 && ev.id > 0 && ev.kind != DB_TRAP)
		rc = replay_session_land(s, icount, ev.pc, 16, &icount, &err);
	else if (!smp && rc == 0)
		rc = replay_session_goto(s, icount, &err);
	cli_progress_end(prog);
	if (rc < 0) {
		rc = cmd_replay_error(rc, err);
		goto out;
	}
	held_at = icount;
	if (smp && (asprintf(&ctl, "%s/ctl.sock", tmp) < 0 ||
		    asprintf(&sock, "%s/gdb.sock", tmp) < 0 || (ctl_fd = ctl_listen(tmp)) < 0)) {
		rc = cli_error(CLI_FAIL, "cannot listen on %s/ctl.sock", tmp);
		goto out;
	}
	if (asprintf(&ex_file, "file %s", rec.rec->symbols ? rec.rec->symbols : rec.rec->kernel) < 0 ||
	    asprintf(&ex_target, "target remote %s", smp ? sock : replay_session_gdb_socket(s)) < 0 ||
	    asprintf(&ex_source, "source %s", py) < 0) {
		rc = cli_error(CLI_FAIL, "out of memory");
		goto out;
	}
	setenv("KREWIND_DB", rec.rec->db_path, 1);
	setenv("KREWIND_QMP", smp ? "" : replay_session_gdb_qmp_socket(s), 1);
	setenv("KREWIND_GDB_SOCK", smp ? sock : replay_session_gdb_socket(s), 1);
	setenv("KREWIND_SMP_CTL", smp ? ctl : "", 1);
	if ((rc = cmd_gdb_env(rec.rec)) != CLI_OK)
		goto out;
	if ((rc = spawn_gdb(rec.rec, batch, json ? out_path : NULL, ex_file, ex_target, ex_source, &gdbp)) != CLI_OK)
		goto out;
	for (;;) {
		rc = qemu_proc_wait(gdbp, g, smp ? 100 : -1, &status);
		if (rc == 0)
			break;
		if (rc == REPLAY_E_TIMEOUT) { /* smp: krewind-gdb.py may ask to go back */
			serve_ctl(ctl_fd, rec.rec, tmp, g, &held, &held_at);
			continue;
		}
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
	qemu_proc_free(gdbp);
	replay_smp_release(held);
	if (ctl_fd >= 0)
		close(ctl_fd);
	if (out_path)
		unlink(out_path);
	if (tmp) {
		smp_cleanup(tmp);
		rmdir(tmp);
	}
	free(out_path);
	free(sock);
	free(ctl);
	replay_session_end(s);
	qemu_guard_end(g);
	cli_rec_close(&rec);
	free(py);
	free(ex_file);
	free(ex_target);
	free(ex_source);
	return rc;
}
