/*
 * session.c - one replay of a recording: QEMU in rr=replay mode, paused at
 * start, driven over QMP to exact instruction counts.
 *
 * Forward: replay-break N + cont, then wait for STOP. Backward: replay-seek N,
 * which loads the start snapshot ("init", the only one in snap.qcow2) and
 * replays forward to N, then stops. Either way query-replay must then say
 * icount N, or the step failed. A session may instead start from a snapshot
 * taken while recording (replay/snapshot.c: the drive is snapshots/N.qcow2,
 * rrsnapshot=kr-N); QEMU cannot seek in it, so it refuses to go back.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "replay/internal.h"

#define WATCH_QUERY_MS 2000 /* for one query-replay while QEMU replays */

struct replay_session {
	struct qemu_proc *qemu;
	struct qmp *qmp;
	struct qemu_guard *guard;
	char *tmpdir, *qmp_sock, *gdb_sock, *qmp2_sock;
	char *shutdown_reason;
	uint64_t last_icount;
	uint64_t snapshot; /* started from snapshots/N.qcow2, or 0 */
	int ended;
	int stall_ms;
	void (*progress)(void *ctx, uint64_t icount, uint64_t target);
	void *progress_ctx;
};

/* Points argv's snapshot drive and rrsnapshot at snapshots/N.qcow2, kr-N. */
static int from_snapshot(char **argv, uint64_t n, char **err)
{
	size_t i;
	int done = 0;

	for (i = 1; argv[i]; i++) {
		char *v = NULL, *p;
		if (strcmp(argv[i - 1], "-drive") == 0 && strstr(argv[i], "id=rrsnap") &&
		    strncmp(argv[i], "file=", 5) == 0) {
			p = strchr(argv[i], ',');
			if (asprintf(&v, "file=snapshots/%" PRIu64 ".qcow2%s", n, p ? p : "") < 0)
				return replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
			done |= 1;
		} else if (strcmp(argv[i - 1], "-icount") == 0 && (p = strstr(argv[i], "rrsnapshot="))) {
			const char *rest = strchr(p, ',');
			if (asprintf(&v, "%.*srrsnapshot=kr-%" PRIu64 "%s", (int)(p - argv[i]), argv[i], n,
				     rest ? rest : "") < 0)
				return replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
			done |= 2;
		}
		if (v) {
			free(argv[i]);
			argv[i] = v;
		}
	}
	return done == 3 ? 0 : replay_set_err(err, REPLAY_E_FORMAT, "the recording's QEMU arguments have no snapshot drive");
}

int replay_session_start(const struct replay_recording *r, const struct replay_session_opts *o,
			 struct replay_session **out, char **err)
{
	struct replay_session *s = calloc(1, sizeof(*s));
	char tmpl[] = "/tmp/krewind-replay.XXXXXX", *extra[16] = { 0 }, *owned[4] = { 0 }, **argv = NULL, *qlog = NULL;
	struct qemu_spawn_opts so = { .own_group = 1 };
	int rc = 0, n = 0, n_owned = 0;
	size_t i;

	if (!s)
		return replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
	s->guard = o ? o->guard : NULL;
	{
		const char *env = getenv("KREWIND_STALL");
		int stall = o && o->stall_s > 0 ? o->stall_s : env && atoi(env) > 0 ? atoi(env) : 60;
		s->stall_ms = stall * 1000;
	}
	if (o) {
		s->progress = o->progress;
		s->progress_ctx = o->progress_ctx;
	}
	if (replay_smp_is(r)) { /* several vCPUs: re-executed, not replayed (smp.c) */
		rc = replay_set_err(err, REPLAY_E_ARG,
				    "%s has %d vCPUs and no replay log: only verify, replay --to and gdb re-execute it "
				    "(docs/replay.md, SMP mode)", r->name, r->vcpus);
		goto fail;
	}
	if (!r->replay_log || access(r->replay_log, R_OK) < 0) {
		rc = replay_set_err(err, REPLAY_E_ARG, "%s has no replay log (recorded with --no-rr?)", r->name);
		goto fail;
	}
	if (!(s->tmpdir = mkdtemp(tmpl)) || !(s->tmpdir = strdup(tmpl))) {
		rc = replay_set_err(err, REPLAY_E_IO, "mkdtemp: %s", strerror(errno));
		goto fail;
	}
	if (asprintf(&s->qmp_sock, "%s/qmp.sock", s->tmpdir) < 0 || asprintf(&qlog, "%s/qemu.log", s->tmpdir) < 0) {
		rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
		goto fail;
	}
	extra[n++] = "-S";
	extra[n++] = "-qmp";
	if (asprintf(&owned[n_owned], "unix:%s,server=on,wait=off", s->qmp_sock) < 0)
		goto oom;
	extra[n++] = owned[n_owned++];
	if (o && o->gdb) {
		if (asprintf(&s->gdb_sock, "%s/gdb.sock", s->tmpdir) < 0)
			goto oom;
		extra[n++] = "-chardev";
		if (asprintf(&owned[n_owned], "socket,path=%s,server=on,wait=off,id=krgdb", s->gdb_sock) < 0)
			goto oom;
		extra[n++] = owned[n_owned++];
		extra[n++] = "-gdb";
		extra[n++] = "chardev:krgdb";
		/* A second monitor for the gdb commands (kr-goto seeks through it). */
		if (asprintf(&s->qmp2_sock, "%s/qmp-gdb.sock", s->tmpdir) < 0)
			goto oom;
		extra[n++] = "-qmp";
		if (asprintf(&owned[n_owned], "unix:%s,server=on,wait=off", s->qmp2_sock) < 0)
			goto oom;
		extra[n++] = owned[n_owned++];
	}
	if (o && o->stay_at_end) {
		extra[n++] = "-action";
		extra[n++] = "shutdown=pause";
	}
	if (o && o->plugin_db) {
		extra[n++] = "-plugin";
		if (asprintf(&owned[n_owned], "%s,db=%s%s%s,symbols=%s", o->plugin, o->plugin_db, r->probe ? ",probe=" : "",
			     r->probe ? r->probe : "", r->symbols ? r->symbols : r->kernel) < 0)
			goto oom;
		extra[n++] = owned[n_owned++];
	}
	if ((rc = replay_replay_argv(r, extra, &argv, err)) < 0)
		goto fail;
	if (o && o->start_near && replay_snapshot_nearest(r->dir, o->start_near, &s->snapshot) &&
	    (rc = from_snapshot(argv, s->snapshot, err)) < 0)
		goto fail;
	/* The replayed serial output must not overwrite the recorded one. */
	for (i = 0; argv[i]; i++)
		if (strcmp(argv[i], "-serial") == 0 && argv[i + 1]) {
			char *v = NULL;
			if (o && o->serial_path ? asprintf(&v, "file:%s", o->serial_path) < 0 : !(v = strdup("null")))
				goto oom;
			free(argv[i + 1]);
			argv[i + 1] = v;
		}
	so.cwd = r->dir;
	so.stderr_path = qlog;
	if ((rc = qemu_spawn(argv, &so, &s->qemu, err)) < 0)
		goto fail;
	if ((rc = qmp_connect(s->qmp_sock, s->qemu, s->guard, 15000, &s->qmp, err)) < 0) {
		char line[512] = "";
		FILE *f = fopen(qlog, "r");
		int status;
		if (f) {
			char buf[512];
			while (fgets(buf, sizeof(buf), f))
				if (buf[0] != '\n')
					strcpy(line, buf);
			fclose(f);
		}
		line[strcspn(line, "\n")] = 0;
		if (rc != REPLAY_E_INTERRUPTED && qemu_proc_wait(s->qemu, NULL, 1000, &status) == 0 && *line) {
			free(*err);
			*err = NULL;
			rc = replay_set_err(err, REPLAY_E_QEMU, "QEMU refused to replay: %s", line);
		}
		goto fail;
	}
	if (s->stall_ms > QMP_ANSWER_MS) /* a longer stall bound (KREWIND_STALL): answers may take as long */
		qmp_set_timeout(s->qmp, s->stall_ms);
	goto done;
oom:
	rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
fail:
	replay_session_end(s);
	s = NULL;
done:
	for (i = 0; i < (size_t)n_owned; i++)
		free(owned[i]);
	replay_argv_free(argv);
	if (qlog)
		unlink(qlog);
	free(qlog);
	if (s)
		*out = s;
	return rc;
}

struct qmp *replay_session_qmp(struct replay_session *s)
{
	return s->qmp;
}

struct qemu_proc *replay_session_proc(struct replay_session *s)
{
	return s->qemu;
}

const char *replay_session_gdb_socket(const struct replay_session *s)
{
	return s->gdb_sock;
}

const char *replay_session_gdb_qmp_socket(const struct replay_session *s)
{
	return s->qmp2_sock;
}

int replay_session_icount(struct replay_session *s, uint64_t *icount, char **err)
{
	int rc = qmp_replay_icount(s->qmp, icount, err);
	if (rc == 0)
		s->last_icount = *icount;
	return rc;
}

/* While QEMU replays: the icount now (for progress), and whether it moved
 * within stall_ms. 0, or REPLAY_E_TIMEOUT for a stuck replay. */
static int watch_progress(struct replay_session *s, uint64_t target, uint64_t *last, int64_t *since)
{
	uint64_t ic;
	char *e = NULL;
	int old = qmp_set_timeout(s->qmp, WATCH_QUERY_MS), rc = qmp_replay_icount(s->qmp, &ic, &e);

	qmp_set_timeout(s->qmp, old);
	free(e);
	if (rc == REPLAY_E_TIMEOUT) /* alive but not answering (stopped, wedged): standing still */
		return replay_now_ms() - *since > s->stall_ms ? REPLAY_E_TIMEOUT : 0;
	if (rc < 0)
		return 0; /* QEMU exiting: the caller sees it next */
	if (s->progress)
		s->progress(s->progress_ctx, ic, target);
	if (ic != *last) {
		*last = ic;
		*since = replay_now_ms();
		return 0;
	}
	return replay_now_ms() - *since > s->stall_ms ? REPLAY_E_TIMEOUT : 0;
}

/* Waits for the VM to stop; REPLAY_E_ARG if QEMU exits first (end of log). */
static int wait_stop(struct replay_session *s, uint64_t target, char **err)
{
	uint64_t last = UINT64_MAX;
	int64_t since = replay_now_ms();
	int status = -1;

	for (;;) {
		char *e = NULL;
		int rc = qmp_wait_event(s->qmp, "STOP", 250, NULL, &e);

		if (rc == 0)
			return 0;
		if (rc == REPLAY_E_TIMEOUT) {
			free(e);
			if (watch_progress(s, target, &last, &since) < 0)
				return replay_set_err(err, REPLAY_E_TIMEOUT,
						      "the replay is stuck: icount %llu did not move for %d s (QEMU hung)",
						      (unsigned long long)last, s->stall_ms / 1000);
			continue;
		}
		if (rc == REPLAY_E_QEMU) {
			free(e);
			qemu_proc_wait(s->qemu, NULL, 2000, &status);
			s->ended = 1;
			return replay_set_err(err, REPLAY_E_ARG, "the replay ended (QEMU status %d) before icount %llu",
					      status, (unsigned long long)target);
		}
		if (err && !*err)
			*err = e;
		else
			free(e);
		return rc;
	}
}

int replay_session_goto(struct replay_session *s, uint64_t icount, char **err)
{
	char args[64];
	uint64_t now;
	int rc;

	if ((rc = replay_session_icount(s, &now, err)) < 0)
		return rc;
	if (now == icount)
		return 0;
	snprintf(args, sizeof(args), "{\"icount\":%llu}", (unsigned long long)icount);
	if (icount > now) {
		if ((rc = qmp_execute(s->qmp, "replay-break", args, NULL, err)) < 0)
			return rc;
		if ((rc = qmp_execute(s->qmp, "cont", NULL, NULL, err)) < 0)
			return rc;
	} else {
		if (s->snapshot)
			return replay_set_err(err, REPLAY_E_ARG,
					      "cannot go back to icount %llu in a replay started from the snapshot at %llu",
					      (unsigned long long)icount, (unsigned long long)s->snapshot);
		if ((rc = qmp_execute(s->qmp, "replay-seek", args, NULL, err)) < 0)
			return rc;
	}
	if ((rc = wait_stop(s, icount, err)) < 0)
		return rc;
	if ((rc = replay_session_icount(s, &now, err)) < 0)
		return rc;
	if (now != icount)
		return replay_set_err(err, REPLAY_E_QEMU, "QEMU stopped at icount %llu instead of %llu", (unsigned long long)now,
			       (unsigned long long)icount);
	return 0;
}

/* Linux's boot-time patching puts its events 3 instructions behind the trace
 * (docs/tracer.md "Instruction counts"). */
#define NEAR_BEHIND 3

/* Exact landing, forward only: the one long replay goes to icount - window,
 * then single steps look at each instruction's pc up to icount + window,
 * stopping at a match at most NEAR_BEHIND before icount or as soon as no
 * later instruction can be nearer than the best match. Only a nearer match
 * behind the position reached or none at all costs a seek back. */
int replay_session_land(struct replay_session *s, uint64_t icount, uint64_t pc, unsigned window, uint64_t *landed,
			char **err)
{
	struct replay_regs r;
	uint64_t i, from = icount > window ? icount - window : 0, best = icount, best_d = UINT64_MAX;
	int rc;

	*landed = icount;
	if ((rc = replay_session_goto(s, from, err)) < 0)
		return rc;
	for (i = from; i <= icount + window; i++) {
		uint64_t d = i > icount ? i - icount : icount - i;
		char *e = NULL;

		if (i > icount && d >= best_d)
			break; /* only farther ones are left */
		if (replay_session_goto(s, i, &e) < 0 || replay_session_registers(s, &r, &e) < 0) {
			free(e);
			if (i <= icount) /* the target itself is not there */
				return replay_session_goto(s, icount, err);
			break; /* past the end of the recording: stop looking */
		}
		if (r.rip == pc && d < best_d) {
			best = i;
			best_d = d;
			/* Exact, or a drift of up to 3 back (what boot-time patching
			 * gives): an exact match too would need a loop of at most
			 * that many instructions around the event's pc. */
			if (d <= NEAR_BEHIND)
				break;
		}
	}
	*landed = best;
	return replay_session_goto(s, best, err);
}

int replay_session_run_to_end(struct replay_session *s, double timeout_s, int *status, char **err)
{
	struct timespec t0, t;
	uint64_t ic, last = UINT64_MAX;
	int64_t since = replay_now_ms();
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((rc = qmp_execute(s->qmp, "cont", NULL, NULL, err)) < 0)
		return rc;
	for (;;) {
		struct qmp_json *ev = NULL;
		char *e = NULL;
		const char *name;
		int is_stop;

		rc = qmp_wait_event(s->qmp, NULL, 200, &ev, &e);
		free(e);
		name = rc == 0 ? qmp_json_get_str(ev, "event") : NULL;
		if (name && strcmp(name, "SHUTDOWN") == 0) {
			const char *reason = qmp_json_get_str(qmp_json_get(ev, "data"), "reason");
			free(s->shutdown_reason);
			s->shutdown_reason = strdup(reason ? reason : "?");
		}
		is_stop = name && strcmp(name, "STOP") == 0;
		qmp_json_free(ev);
		if (rc == 0 && !is_stop)
			continue;
		if (rc == 0) {
			/* Stopped with the log exhausted (a run krewind ended with a
			 * QMP quit) or paused by the replayed shutdown (stay_at_end):
			 * this is the recording's last instruction. */
			replay_session_icount(s, &ic, NULL);
			*status = -1;
			return 0;
		}
		if (rc == REPLAY_E_INTERRUPTED)
			return replay_set_err(err, rc, "interrupted");
		if (qemu_proc_poll(s->qemu, status) == 1 ||
		    (rc == REPLAY_E_QEMU && qemu_proc_wait(s->qemu, s->guard, 2000, status) == 0)) {
			s->ended = 1;
			return 0;
		}
		if (rc != REPLAY_E_QEMU && watch_progress(s, 0, &last, &since) < 0)
			return replay_set_err(err, REPLAY_E_TIMEOUT,
					      "the replay is stuck: icount %llu did not move for %d s (QEMU hung)",
					      (unsigned long long)last, s->stall_ms / 1000);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (timeout_s > 0 && (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 > timeout_s)
			return replay_set_err(err, REPLAY_E_TIMEOUT, "the replay did not finish in %.0f s", timeout_s);
	}
}

uint64_t replay_session_snapshot(const struct replay_session *s)
{
	return s->snapshot;
}

const char *replay_session_shutdown_reason(const struct replay_session *s)
{
	return s->shutdown_reason;
}

uint64_t replay_session_last_icount(const struct replay_session *s)
{
	return s->last_icount;
}

static int reg_value(const char *text, const char *name, uint64_t *out)
{
	const char *p = text;
	size_t n = strlen(name);

	while ((p = strstr(p, name))) {
		const char *q = p + n;
		while (*q == ' ') /* "R8 =..." is padded */
			q++;
		if ((p == text || p[-1] == ' ' || p[-1] == '\n' || p[-1] == '\r') && *q == '=') {
			*out = strtoull(q + 1, NULL, 16);
			return 0;
		}
		p += n;
	}
	return -1;
}

int replay_parse_registers(const char *text, struct replay_regs *r, char **err)
{
	static const char *const n64[] = { "RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "RSP",
					   "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15", "RIP", "RFL" };
	static const char *const n32[] = { "EAX", "EBX", "ECX", "EDX", "ESI", "EDI", "EBP", "ESP",
					   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "EIP", "EFL" };
	uint64_t *slots[] = { &r->rax, &r->rbx, &r->rcx, &r->rdx, &r->rsi, &r->rdi, &r->rbp, &r->rsp,
			      &r->r8, &r->r9, &r->r10, &r->r11, &r->r12, &r->r13, &r->r14, &r->r15, &r->rip, &r->rflags };
	const char *p;
	uint64_t v;
	size_t i;

	memset(r, 0, sizeof(*r));
	r->long_mode = reg_value(text, "RIP", &v) == 0;
	for (i = 0; i < sizeof(slots) / sizeof(slots[0]); i++) {
		const char *name = r->long_mode ? n64[i] : n32[i];
		if (name && reg_value(text, name, slots[i]) < 0)
			return replay_set_err(err, REPLAY_E_FORMAT, "no %s in QEMU's register dump", name);
	}
	reg_value(text, "CR0", &r->cr0);
	reg_value(text, "CR2", &r->cr2);
	reg_value(text, "CR3", &r->cr3);
	reg_value(text, "CR4", &r->cr4);
	reg_value(text, "EFER", &r->efer);
	if (reg_value(text, "CPL", &v) == 0)
		r->cpl = (int)v;
	if (reg_value(text, "HLT", &v) == 0)
		r->halted = (int)v;
	/* "GS =0000 0000000000000000 ffffffff 00c00000": selector, then base. */
	if ((p = strstr(text, "GS =")))
		r->gs_base = strtoull(p + 9, NULL, 16);
	if ((p = strstr(text, "FS =")))
		r->fs_base = strtoull(p + 9, NULL, 16);
	return 0;
}

int replay_session_registers(struct replay_session *s, struct replay_regs *r, char **err)
{
	char *text = NULL;
	int rc = qmp_hmp(s->qmp, "info registers", &text, err);

	if (rc == 0)
		rc = replay_parse_registers(text, r, err);
	free(text);
	return rc;
}

int replay_session_read(struct replay_session *s, uint64_t addr, uint8_t *buf, size_t len, char **err)
{
	size_t got = 0;

	while (got < len) {
		size_t chunk = len - got > 64 ? 64 : len - got, want = got + chunk;
		char cmd[64], *text = NULL, *p;
		int rc;

		snprintf(cmd, sizeof(cmd), "x/%zuxb 0x%llx", chunk, (unsigned long long)(addr + got));
		if ((rc = qmp_hmp(s->qmp, cmd, &text, err)) < 0)
			return rc;
		if (strstr(text, "Cannot access")) {
			free(text);
			return replay_set_err(err, REPLAY_E_ARG, "cannot read guest memory at 0x%llx",
				       (unsigned long long)(addr + got));
		}
		/* Lines "ADDR: 0x.. 0x..": every token after the colon. */
		for (p = text; *p && got < want;) {
			char *colon = strchr(p, ':'), *eol;
			if (!colon)
				break;
			eol = strchr(colon, '\n');
			for (p = colon + 1; (!eol || p < eol) && got < want;) {
				char *end;
				while (*p == ' ')
					p++;
				if (strncmp(p, "0x", 2) != 0)
					break;
				buf[got++] = (uint8_t)strtoul(p, &end, 16);
				p = end;
			}
			p = eol ? eol + 1 : p + strlen(p);
		}
		free(text);
		if (got != want)
			return replay_set_err(err, REPLAY_E_FORMAT, "short memory dump from QEMU at 0x%llx",
				       (unsigned long long)(addr + got));
	}
	return 0;
}

void replay_session_end(struct replay_session *s)
{
	int status;

	if (!s)
		return;
	if (s->qmp && s->qemu && qemu_proc_poll(s->qemu, &status) == 0) {
		char *e = NULL;
		qmp_set_timeout(s->qmp, 3000); /* a wedged QEMU gets signals below */
		qmp_execute(s->qmp, "quit", NULL, NULL, &e);
		free(e);
		if (qemu_proc_wait(s->qemu, NULL, 3000, &status) < 0)
			qemu_proc_stop(s->qemu, 500);
	}
	qmp_close(s->qmp);
	qemu_proc_free(s->qemu);
	if (s->qmp_sock)
		unlink(s->qmp_sock);
	if (s->gdb_sock)
		unlink(s->gdb_sock);
	if (s->qmp2_sock)
		unlink(s->qmp2_sock);
	free(s->qmp2_sock);
	free(s->shutdown_reason);
	if (s->tmpdir)
		rmdir(s->tmpdir);
	free(s->qmp_sock);
	free(s->gdb_sock);
	free(s->tmpdir);
	free(s);
}
