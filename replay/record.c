/*
 * record.c - krewind record: one run of QEMU into one recording directory.
 *
 * QEMU runs with the directory as its working directory and relative file
 * names, so the recording is self-contained. The run ends when the guest
 * exits (isa-debug-exit), powers off ("exit"), resets (a triple fault under
 * -no-reboot: "reset"), panics ("panic": QEMU's GUEST_PANICKED, or the
 * kernel's panic function in the trace, with its text), makes no
 * progress for hang_after seconds (no serial output, and no trace events but
 * the interrupt bookkeeping of trace_progress),
 * runs past the timeout, or krewind gets a signal. In the last three cases
 * krewind stops QEMU with QMP "quit", which closes the replay log properly.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "db/db.h"
#include "replay/internal.h"

/* Fewer instructions than this since the last progress, and the vCPU in
 * hlt: the CPU is halted (or only services interrupts), not busy. */
#define HALTED_INSNS 10000000ull

/* Whether the vCPU sits in hlt now (QEMU's "HLT=1" in `info registers`).
 * Few instructions alone do not say so: QEMU starved by a loaded host runs
 * few instructions of a busy loop too. */
static int cpu_in_hlt(struct qmp *q)
{
	char *out = NULL;
	int h = q && qmp_hmp(q, "info registers", &out, NULL) == 0 && out && strstr(out, "HLT=1");

	free(out);
	return h;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int replay_copy_file(const char *from, const char *to, char **err)
{
	char buf[65536];
	int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, rc = 0;
	ssize_t n;

	if (in < 0)
		return replay_set_err(err, REPLAY_E_IO, "cannot read %s: %s", from, strerror(errno));
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0) {
		rc = replay_set_err(err, REPLAY_E_IO, "cannot create %s: %s", to, strerror(errno));
		goto out;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			rc = replay_set_err(err, REPLAY_E_IO, "cannot write %s: %s", to, strerror(errno));
			goto out;
		}
	if (n < 0)
		rc = replay_set_err(err, REPLAY_E_IO, "cannot read %s: %s", from, strerror(errno));
out:
	close(in);
	if (out >= 0 && close(out) < 0 && rc == 0)
		rc = replay_set_err(err, REPLAY_E_IO, "cannot write %s: %s", to, strerror(errno));
	return rc;
}

/* argv builder */
struct argv {
	char **v;
	size_t n, cap;
	int oom;
};

static void add(struct argv *a, const char *s)
{
	if (a->oom)
		return;
	if (a->n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 32;
		char **nv = realloc(a->v, cap * sizeof(char *));
		if (!nv) {
			a->oom = 1;
			return;
		}
		a->v = nv;
		a->cap = cap;
	}
	if (!(a->v[a->n] = strdup(s))) {
		a->oom = 1;
		return;
	}
	a->v[++a->n] = NULL;
}

static void addf(struct argv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void addf(struct argv *a, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		a->oom = 1;
		return;
	}
	add(a, s);
	free(s);
}

static int64_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

/*
 * Forward progress in the trace so far. With a probe, that is events other
 * than interrupt bookkeeping (trap, iret, eoi, irql): a CPU that only services
 * the clock while its threads spin on a lock, or wait forever, makes none.
 * Without a probe the interrupts are all there is, so every event counts.
 * Sets *total to all events and *stuck to 1 when a probed acquire has not
 * returned (more lock_try than lock_acq and lock_fail: a thread spins) or a
 * wait has not ended; returns -1 if the trace cannot be read yet. Reads the
 * per-kind counters, not the events.
 */
static int64_t trace_progress(struct db_reader **rd, const char *db_path, int probed, int64_t *total, int *stuck)
{
	int64_t counts[DB_KIND_MAX + 1];
	char *e = NULL;

	if (!*rd && db_reader_open(db_path, rd, &e) < 0) {
		free(e);
		*rd = NULL;
		return -1;
	}
	if (db_count_by_kind(*rd, counts, &e) < 0) {
		free(e);
		return -1;
	}
	*total = counts[0];
	*stuck = counts[DB_LOCK_TRY] > counts[DB_LOCK_ACQ] + counts[DB_LOCK_FAIL] || counts[DB_WAIT] > counts[DB_WAIT_END];
	if (!probed)
		return counts[0];
	return counts[0] - counts[DB_TRAP] - counts[DB_IRET] - counts[DB_EOI] - counts[DB_IRQL];
}

static const char *outcome_of_status(int status)
{
	switch (status) {
	case 33: return "pass";
	case 35: return "fail";
	case 37: return "bugcheck";
	case 39: return "completed";
	default: return NULL;
	}
}

/* The outcome of a run the guest ended itself, from QEMU's last event:
 * poweroff "exit", reset (a triple fault under -no-reboot, or a reboot)
 * "reset", a paravirtual panic "panic"; NULL for anything else. */
static const char *guest_end(const struct qmp_json *ev, char **detail)
{
	const char *what = qmp_json_get_str(ev, "event");
	const char *why = qmp_json_get_str(qmp_json_get(ev, "data"), "reason");

	if (what && strcmp(what, "GUEST_PANICKED") == 0) {
		*detail = strdup("the guest reported a panic");
		return "panic";
	}
	if (!why)
		return NULL;
	if (strcmp(why, "guest-shutdown") == 0) {
		*detail = strdup("the guest powered off");
		return "exit";
	}
	if (strcmp(why, "guest-reset") == 0) {
		*detail = strdup("the guest reset (a triple fault, or a reboot under -no-reboot)");
		return "reset";
	}
	if (strcmp(why, "guest-panic") == 0) {
		*detail = strdup("the guest reported a panic");
		return "panic";
	}
	return NULL;
}

/*
 * 1 if the kernel's panic function ran: a bugcheck event, which the probe's
 * panic (or bugcheck) line records with the panic's text, its format string.
 * *text gets "panic: " and that text, completed from the serial log when a
 * line there holds the format's literal start (the printed message).
 */
static int trace_panic(const char *db_path, const char *serial, char **text)
{
	struct db_filter f = { .kinds = 1u << DB_BUGCHECK, .limit = 1 };
	struct db_reader *rd = NULL;
	struct db_cursor *c = NULL;
	struct db_event ev;
	const char *t = NULL;
	char *e = NULL, *fmt = NULL, line[512];
	int found = 0;
	FILE *log;

	if (!db_path || db_reader_open(db_path, &rd, &e) < 0 || db_cursor_open(rd, &f, &c, &e) < 0) {
		free(e);
		db_reader_close(rd);
		return 0;
	}
	if (db_cursor_next(c, &ev, &t) == 1) {
		found = 1;
		fmt = strdup(t ? t : "");
	}
	db_cursor_close(c);
	db_reader_close(rd);
	if (!found)
		return 0;
	if (fmt) {
		fmt[strcspn(fmt, "%\n")] = 0;
		if (strlen(fmt) >= 8 && serial && (log = fopen(serial, "r"))) {
			while (fgets(line, sizeof(line), log)) {
				char *at = strstr(line, fmt);
				if (at) {
					at[strcspn(at, "\r\n")] = 0;
					free(fmt);
					fmt = strdup(at);
					break;
				}
			}
			fclose(log);
		}
	}
	if (asprintf(text, "panic: %s", fmt && *fmt ? fmt : "(no text)") < 0)
		*text = NULL;
	free(fmt);
	return 1;
}

/* Seconds of recording between two snapshots (replay/snapshot.c):
 * $KREWIND_SNAPSHOT_EVERY; unset or 0 takes none (on the Linux boot most
 * snapshots do not replay with QEMU 10.0.2, docs/replay.md). */
static double snapshot_every(void)
{
	const char *e = getenv("KREWIND_SNAPSHOT_EVERY");
	return e && *e ? atof(e) : 0;
}

/* Whether a snapshot is due at t; if so, schedules the next one. */
static int snapshot_due(double *next, double t)
{
	if (*next <= 0 || t < *next)
		return 0;
	*next = t + snapshot_every();
	return 1;
}

/* Takes a snapshot (a failure only costs the snapshot: one warning line,
 * none when QEMU is ending or a signal came: a guest that powers off while
 * the snapshot is asked for closes QMP a moment before QEMU exits, so it
 * is given 2 s to exit); returns the seconds the VM was stopped for it. */
static double snapshot_now(struct qmp *q, struct qemu_proc *qemu, const char *dir, struct qemu_guard *g)
{
	double t = now_s();
	uint64_t at;
	char *e = NULL;
	int status;

	if (replay_snapshot_take(q, dir, g, &at, &e) < 0 && qemu_proc_wait(qemu, g, 2000, &status) == REPLAY_E_TIMEOUT &&
	    !qemu_guard_pending(g))
		fprintf(stderr, "krewind: warning: no snapshot taken: %s\n", e ? e : "?");
	free(e);
	return now_s() - t;
}

static void progress_line(double elapsed, uint64_t icount, int64_t events, int64_t serial)
{
	fprintf(stderr, "\r\033[Krecording: %5.1f s  %12llu instructions  %9lld events  %6lld bytes serial", elapsed,
		(unsigned long long)icount, (long long)(events < 0 ? 0 : events), (long long)(serial < 0 ? 0 : serial));
	fflush(stderr);
}

/* Fills r's counts and events_total from the finished trace. */
static void count_events(struct replay_recording *r)
{
	struct db_reader *rd = NULL;
	int64_t counts[DB_KIND_MAX + 1];
	char *e = NULL;
	int k;

	if (db_reader_open(r->db_path, &rd, &e) < 0) {
		free(e);
		return;
	}
	if (db_count_by_kind(rd, counts, &e) == 0) {
		r->counts = calloc(DB_KIND_MAX, sizeof(*r->counts));
		r->events_total = counts[0];
		for (k = 1; r->counts && k <= DB_KIND_MAX; k++) {
			const char *name = db_kind_name(k);
			if (!counts[k] || !name)
				continue;
			r->counts[r->n_counts].kind = strdup(name);
			r->counts[r->n_counts].n = counts[k];
			if (r->counts[r->n_counts].kind)
				r->n_counts++;
		}
	}
	free(e);
	db_reader_close(rd);
}

/* For runs the guest ended, QEMU exits before it can be asked for its
 * icount; the plugin's count at exit (meta icount_total) is the exact one. */
static void plugin_icount(struct replay_recording *r)
{
	struct db_reader *rd = NULL;
	const char *v;
	char *e = NULL;

	if (!r->db_path || db_reader_open(r->db_path, &rd, &e) < 0) {
		free(e);
		return;
	}
	if ((v = db_meta(rd, "icount_total")) && *v)
		r->icount_total = strtoull(v, NULL, 10);
	db_reader_close(rd);
}

static void rmdir_recording(const char *dir)
{
	static const char *const files[] = { "kernel.elf", "symbols.elf", "initrd.img", "probe", "snap.qcow2", "replay.bin",
					     "serial.log", "qemu.log", "trace.db", "trace.db-wal", "trace.db-shm",
					     "manifest.json", NULL };
	size_t i;

	for (i = 0; files[i]; i++) {
		char *p = replay_path_join(dir, files[i]);
		if (p)
			unlink(p);
		free(p);
	}
	replay_disks_remove(dir);
	rmdir(dir);
}

/* QEMU's first (up to 3) lines in its log that say something, each indented
 * on a line of its own, for the error message: the reason it refused to
 * start. A plugin's assertion noise after QEMU's own error is left out. */
static char *qemu_log_head(const char *dir)
{
	char *p = replay_path_join(dir, "qemu.log"), line[512], *out = NULL;
	FILE *f = p ? fopen(p, "r") : NULL;
	int n = 0;

	free(p);
	if (!f)
		return NULL;
	while (n < 3 && fgets(line, sizeof(line), f)) {
		char *t;
		line[strcspn(line, "\n")] = 0;
		if (!*line || strcmp(line, "**") == 0 || strncmp(line, "Bail out!", 9) == 0 ||
		    strncmp(line, "ERROR:", 6) == 0)
			continue;
		if (asprintf(&t, "%s%s  %s", out ? out : "", out ? "\n" : "", line) < 0)
			break;
		free(out);
		out = t;
		n++;
	}
	fclose(f);
	return out;
}

int replay_record(const struct replay_record_opts *o, struct replay_recording **out, char **err)
{
	const char *traces = o->traces_dir;
	struct replay_recording *r = NULL;
	struct argv a = { 0 };
	struct qemu_proc *qemu = NULL;
	struct qmp *q = NULL;
	struct db_reader *rd = NULL;
	struct qmp_json *end_ev = NULL;
	char *dir = NULL, *name = NULL, *sock_dir = NULL, *sock = NULL, *qlog = NULL, *append = NULL;
	char **disk_args = NULL, **rest_args = NULL;
	char tmpl[] = "/tmp/krewind-rec.XXXXXX";
	const char *outcome = NULL;
	double t0 = now_s(), last_progress_t, timeout = o->timeout_s > 0 ? o->timeout_s : 60;
	double hang_after = o->hang_after_s > 0 ? o->hang_after_s : 5, next_snapshot;
	uint64_t hang_insns = o->hang_insns > 0 ? o->hang_insns : REPLAY_HANG_INSNS;
	int64_t last_progress = -1, last_serial = -1;
	uint64_t icount = 0, progress_icount = 0;
	int stuck = 0;
	int rc = 0, status = -1, qemu_ran = 0, interrupted = 0, drawn = 0, krewind_stopped = 0, guest_ended = 0;
	int rr = !o->no_rr && o->smp <= 1; /* several vCPUs: re-executable instead (smp.c) */
	size_t i;

	if (!o->kernel && !o->image && !replay_args_have_disk(o->extra_args))
		return replay_set_err(err, REPLAY_E_ARG, "no kernel and no disk given");
	if (o->smp > 1 && replay_smp_refused_arg(o->extra_args))
		return replay_set_err(err, REPLAY_E_ARG,
				      "%s: a run with several vCPUs must be re-executable: no disk, network, input "
				      "or other clock (docs/replay.md, SMP mode)",
				      replay_smp_refused_arg(o->extra_args));
	if (o->kernel && access(o->kernel, R_OK) < 0)
		return replay_set_err(err, REPLAY_E_IO, "cannot read kernel %s: %s", o->kernel, strerror(errno));
	if (o->image && access(o->image, R_OK) < 0)
		return replay_set_err(err, REPLAY_E_IO, "cannot read disk image %s: %s", o->image, strerror(errno));
	if (o->symbols && access(o->symbols, R_OK) < 0)
		return replay_set_err(err, REPLAY_E_IO, "cannot read symbols %s: %s", o->symbols, strerror(errno));
	if (o->initrd && access(o->initrd, R_OK) < 0)
		return replay_set_err(err, REPLAY_E_IO, "cannot read initrd %s: %s", o->initrd, strerror(errno));
	if (o->probe && access(o->probe, R_OK) < 0)
		return replay_set_err(err, REPLAY_E_IO, "cannot read probe %s: %s", o->probe, strerror(errno));
	if (o->plugin && access(o->plugin, R_OK) < 0)
		return replay_set_err(err, REPLAY_E_IO, "cannot read the plugin %s: %s", o->plugin, strerror(errno));
	if (!traces)
		traces = getenv("KREWIND_TRACES");
	if (!traces || !*traces)
		traces = "traces";
	if (o->name) {
		name = strdup(o->name);
	} else if (o->scenario) {
		name = strdup(o->scenario);
	} else {
		const char *from = o->kernel ? o->kernel : o->image ? o->image : "disk";
		const char *b = strrchr(from, '/');
		name = strdup(b ? b + 1 : from);
		if (name && strchr(name, '.'))
			*strchr(name, '.') = 0;
	}
	if (!name)
		return replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
	if ((rc = replay_recording_mkdir(o->out_dir, traces, name, &dir, err)) < 0)
		goto out;

	r = replay_recording_new();
	if (!r) {
		rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
		goto out;
	}
	r->dir = strdup(dir);
	r->name = strdup(strrchr(dir, '/') + 1);
	r->db_path = replay_path_join(dir, "trace.db");
	if (o->kernel) {
		r->kernel = replay_path_join(dir, "kernel.elf");
		r->kernel_source = realpath(o->kernel, NULL);
	}
	r->serial_log = replay_path_join(dir, "serial.log");
	r->scenario = o->scenario ? strdup(o->scenario) : NULL;
	r->krewind_version = strdup(REPLAY_KREWIND_VERSION);
	r->qemu_version = qemu_version(qemu_binary());
	qlog = replay_path_join(dir, "qemu.log");
	if (!r->dir || !r->name || !r->db_path || (o->kernel && (!r->kernel || !r->kernel_source)) || !r->serial_log || !qlog ||
	    !r->krewind_version) {
		rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
		goto out;
	}
	{
		time_t t = time(NULL);
		struct tm tm;
		char buf[32];
		gmtime_r(&t, &tm);
		strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
		r->started_at = strdup(buf);
	}
	/* Inputs: copied when small, else linked or referenced (recording.c). */
	if (o->kernel) {
		if ((rc = replay_input_store(r, o->kernel, "kernel.elf", err)) < 0)
			goto out;
		r->kernel_sha256 = strdup(r->inputs[0].sha256);
	}
	if (o->initrd && (rc = replay_input_store(r, o->initrd, "initrd.img", err)) < 0)
		goto out;
	if (o->symbols) {
		r->symbols = replay_path_join(dir, "symbols.elf");
		if (!r->symbols || (rc = replay_input_store(r, o->symbols, "symbols.elf", err)) < 0)
			goto out;
	} else if (r->kernel) {
		r->symbols = strdup(r->kernel);
	}
	if (o->probe) {
		r->probe = replay_path_join(dir, "probe");
		if (!r->probe || (rc = replay_copy_file(o->probe, r->probe, err)) < 0)
			goto out;
	}
	if (o->scenario && o->append)
		rc = asprintf(&append, "scenario=%s %s", o->scenario, o->append);
	else if (o->scenario)
		rc = asprintf(&append, "scenario=%s", o->scenario);
	else if (o->append)
		append = strdup(o->append), rc = append ? 0 : -1;
	if (rc < 0) {
		rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
		goto out;
	}
	rc = 0;
	if (o->smp > 1) {
		char *smp_append = replay_smp_append(o->kernel, append);

		free(append);
		append = smp_append;
		r->mode = strdup(REPLAY_MODE_REEXEC);
	}
	r->vcpus = o->smp > 1 ? o->smp : 1;
	r->append = append ? strdup(append) : NULL;

	if (rr) {
		char *img_argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "snap.qcow2", "64M", NULL };
		struct qemu_spawn_opts so = { .cwd = dir, .stderr_path = qlog };
		struct qemu_proc *img = NULL;
		if ((rc = qemu_spawn(img_argv, &so, &img, err)) < 0)
			goto out;
		rc = qemu_proc_wait(img, o->guard, 30000, &status);
		qemu_proc_free(img);
		if (rc < 0 || status != 0) {
			rc = replay_set_err(err, rc < 0 ? rc : REPLAY_E_QEMU, "qemu-img create failed (see %s)", qlog);
			goto out;
		}
		r->snapshot_image = replay_path_join(dir, "snap.qcow2");
		r->replay_log = replay_path_join(dir, "replay.bin");
	}
	/* Disks: an overlay each and the blkreplay chain (disk.c). */
	if ((rc = replay_disks_rewrite(r, o->image, o->extra_args, o->guard, &disk_args, &rest_args, err)) < 0)
		goto out;
	rc = 0;

	/* The recorded command line: relative names, run in dir. */
	add(&a, qemu_binary());
	add(&a, "-cpu");
	add(&a, o->smp > 1 ? "max,-rdrand,-rdseed" : "max");
	add(&a, "-m");
	add(&a, "128M");
	add(&a, "-smp");
	addf(&a, "%d", o->smp > 1 ? o->smp : 1);
	if (o->kernel) {
		add(&a, "-kernel");
		add(&a, "kernel.elf");
	}
	if (o->initrd) {
		add(&a, "-initrd");
		add(&a, "initrd.img");
	}
	if (append) {
		add(&a, "-append");
		add(&a, append);
	}
	add(&a, "-serial");
	add(&a, "file:serial.log");
	add(&a, "-display");
	add(&a, "none");
	add(&a, "-monitor");
	add(&a, "none");
	add(&a, "-no-reboot");
	add(&a, "-device");
	add(&a, "isa-debug-exit,iobase=0xf4,iosize=0x04");
	add(&a, "-net");
	add(&a, "none");
	for (i = 0; o->smp > 1 && replay_smp_machine_args()[i]; i++)
		add(&a, replay_smp_machine_args()[i]);
	if (rr) {
		add(&a, "-icount");
		add(&a, "shift=auto,rr=record,rrfile=replay.bin,rrsnapshot=init");
		add(&a, "-drive");
		add(&a, "file=snap.qcow2,if=none,id=rrsnap");
	}
	for (i = 0; disk_args[i]; i++)
		add(&a, disk_args[i]);
	if (o->plugin) {
		add(&a, "-plugin");
		/* KREWIND_TRACE_QUEUE: the tracer's queue in events (tests and make
		 * bench make it overflow on purpose: docs/tracer.md) */
		const char *queue = getenv("KREWIND_TRACE_QUEUE");
		addf(&a, "%s,db=trace.db%s%s%s%s", o->plugin, o->probe ? ",probe=probe" : "",
		     o->symbols ? ",symbols=symbols.elf" : o->kernel ? ",symbols=kernel.elf" : "",
		     queue && *queue ? ",queue=" : "", queue && *queue ? queue : "");
	}
	for (i = 0; rest_args[i]; i++)
		add(&a, rest_args[i]);
	r->qemu_args = calloc(a.n + 1, sizeof(char *));
	if (!r->qemu_args || a.oom) {
		rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < a.n; i++)
		if (!(r->qemu_args[r->n_qemu_args++] = strdup(a.v[i]))) {
			rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
			goto out;
		}

	/* Runtime only: the QMP socket. */
	if (!(sock_dir = mkdtemp(tmpl))) {
		rc = replay_set_err(err, REPLAY_E_IO, "mkdtemp: %s", strerror(errno));
		goto out;
	}
	sock = replay_path_join(sock_dir, "qmp.sock");
	add(&a, "-qmp");
	addf(&a, "unix:%s,server=on,wait=off", sock ? sock : "");
	if (!sock || a.oom) {
		rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
		goto out;
	}
	{
		struct qemu_spawn_opts so = { .cwd = dir, .stderr_path = qlog, .stdout_path = qlog, .own_group = 1 };
		if ((rc = qemu_spawn(a.v, &so, &qemu, err)) < 0)
			goto out;
	}
	qemu_ran = 1;
	rc = qmp_connect(sock, qemu, o->guard, 15000, &q, err);
	if (rc == REPLAY_E_INTERRUPTED) {
		interrupted = 1;
		rc = 0;
	} else if (rc < 0) {
		/* QEMU refused the command line or the plugin its arguments: no
		 * guest ran, so nothing is kept; the user sees QEMU's own words. */
		if (qemu_proc_wait(qemu, NULL, 2000, &status) == 0) {
			char *head = qemu_log_head(dir);
			free(*err);
			*err = NULL;
			rc = replay_set_err(err, REPLAY_E_QEMU, "QEMU refused to start (exit status %d)%s%s%s", status,
					    head ? ":\n" : "", head ? head : "",
					    head && strstr(head, "PVH ELF Note")
						    ? "\n  (-kernel boots an ELF only with a PVH note or a multiboot header; a "
						      "kernel with its own bootloader boots from its disk: --image DISK "
						      "--symbols ELF)"
						    : "");
			free(head);
			qemu_ran = 0;
			goto out;
		}
		r->exit_status = status;
		outcome = "error";
		goto finish;
	}

	last_progress_t = now_s();
	next_snapshot = snapshot_every() > 0 ? last_progress_t + snapshot_every() : 0;
	while (!interrupted) {
		struct qmp_json *ev = NULL;
		double t = now_s();
		int64_t events = -1, progress, serial;

		if (qemu_proc_poll(qemu, &status) == 1)
			break;
		if (qemu_guard_pending(o->guard)) {
			interrupted = 1;
			break;
		}
		if (qmp_take_event(q, "GUEST_PANICKED", &ev) || qmp_take_event(q, "SHUTDOWN", &ev)) {
			end_ev = ev;
			break;
		}
		progress = trace_progress(&rd, r->db_path, o->probe != NULL, &events, &stuck);
		serial = file_size(r->serial_log);
		if (rr)
			qmp_replay_icount(q, &icount, NULL);
		if (progress != last_progress || serial != last_serial) {
			last_progress = progress;
			last_serial = serial;
			last_progress_t = t;
			progress_icount = icount;
		}
		if (o->progress) {
			progress_line(t - t0, icount, events, serial);
			drawn = 1;
		}
		if (rr && q && snapshot_due(&next_snapshot, t)) {
			double dt = snapshot_now(q, qemu, r->dir, o->guard);
			last_progress_t += dt; /* the VM was stopped meanwhile */
			continue;
		}
		/* A hang: no progress for hang_after seconds while a thread spins
		 * on a lock or waits, or the CPU is halted (few instructions, in hlt); a CPU busy in
		 * code the probes do not see (a long lock-free loop) gets
		 * hang_insns guest instructions as well. Without an icount (--no-rr)
		 * only the seconds count. */
		int halted = t - last_progress_t >= hang_after && rr && !stuck && icount - progress_icount < HALTED_INSNS &&
			     cpu_in_hlt(q);
		if (t - last_progress_t >= hang_after &&
		    (!rr || stuck || halted || icount - progress_icount >= hang_insns)) {
			char insns[64] = "";
			if (rr && !stuck && !halted)
				snprintf(insns, sizeof(insns), " and %llu instructions",
					 (unsigned long long)(icount - progress_icount));
			outcome = "hang";
			if (asprintf(&r->outcome_detail, "no progress for %g s%s%s: no serial output, no trace events%s",
				     hang_after, insns,
				     stuck ? " while a thread spins on a lock or waits" : halted ? " with the CPU halted" : "",
				     o->probe ? " besides interrupts" : "") < 0)
				r->outcome_detail = NULL;
			break;
		}
		if (t - t0 >= timeout) {
			outcome = "timeout";
			if (asprintf(&r->outcome_detail, "still running after %.0f s", timeout) < 0)
				r->outcome_detail = NULL;
			break;
		}
		{
			struct pollfd pfd = { qemu_guard_fd(o->guard), POLLIN, 0 };
			poll(&pfd, pfd.fd >= 0 ? 1 : 0, 200);
		}
	}
	if (drawn)
		fputc('\n', stderr);
	if (interrupted && !outcome) {
		outcome = "killed";
		r->outcome_detail = strdup("krewind was interrupted; QEMU was stopped");
	}
	if (qemu_proc_poll(qemu, &status) != 1) {
		krewind_stopped = 1;
		/* We end the run: stop the CPU first so the icount read is the
		 * last one, then quit over QMP so the replay log is complete. */
		if (q) {
			char *e = NULL;
			qmp_set_timeout(q, 5000); /* a wedged QEMU gets signals below */
			qmp_execute(q, "stop", NULL, NULL, &e);
			free(e);
		}
		if (q && rr)
			qmp_replay_icount(q, &icount, NULL);
		if (q) {
			char *e = NULL;
			qmp_execute(q, "quit", NULL, NULL, &e);
			free(e);
		}
		if (qemu_proc_wait(qemu, NULL, 5000, &status) < 0)
			status = qemu_proc_stop(qemu, 1000);
	}
	r->exit_status = status;
	if (!outcome)
		outcome = outcome_of_status(status);
	if (!end_ev && q && !krewind_stopped && !qmp_take_event(q, "GUEST_PANICKED", &end_ev))
		qmp_take_event(q, "SHUTDOWN", &end_ev);
	if (!outcome && end_ev)
		outcome = guest_end(end_ev, &r->outcome_detail);
	if (!outcome_of_status(status) && !interrupted) {
		char *text = NULL;
		if (trace_panic(r->db_path, r->serial_log, &text)) {
			outcome = "panic";
			free(r->outcome_detail);
			r->outcome_detail = text;
		}
	}
	if (!outcome) {
		outcome = "error";
		if (asprintf(&r->outcome_detail, "QEMU exited with status %d", status) < 0)
			r->outcome_detail = NULL;
	}
	r->icount_total = icount;
	/* The guest ended the run itself (its SHUTDOWN came, or its exit status
	 * says so) even when krewind then stopped a QEMU still exiting: the
	 * last icount polled is stale then (a loaded host polls seldom). */
	guest_ended = end_ev != NULL || outcome_of_status(status) != NULL;

finish:
	r->wall_seconds = now_s() - t0;
	r->outcome = strdup(outcome ? outcome : "error");
	if (rd) {
		db_reader_close(rd);
		rd = NULL;
	}
	count_events(r);
	/* SMP: no query-replay, the plugin counts; nor when krewind was
	 * interrupted before QMP answered once (a loaded host): no icount read */
	if (!krewind_stopped || guest_ended || o->smp > 1 || !r->icount_total)
		plugin_icount(r);
	if (access(r->db_path, F_OK) == 0) {
		char *e = NULL;
		char buf[32];
		db_update_meta(r->db_path, "outcome", r->outcome, &e);
		free(e), e = NULL;
		if (r->qemu_version)
			db_update_meta(r->db_path, "qemu_version", r->qemu_version, &e);
		free(e), e = NULL;
		snprintf(buf, sizeof(buf), "%d", r->exit_status);
		db_update_meta(r->db_path, "exit_status", buf, &e);
		free(e);
	} else {
		free(r->db_path);
		r->db_path = NULL;
	}
	if (access(r->serial_log, F_OK) != 0) {
		free(r->serial_log);
		r->serial_log = NULL;
	}
	{
		char *e = NULL;
		int wrc = replay_manifest_write(r, &e);
		if (wrc < 0 && rc == 0)
			rc = replay_set_err(err, wrc, "%s", e ? e : "cannot write the manifest");
		free(e);
	}
	if (rc == 0 && interrupted)
		rc = replay_set_err(err, REPLAY_E_INTERRUPTED, "interrupted: recording stopped, kept in %s", dir);
out:
	if (rd)
		db_reader_close(rd);
	qmp_json_free(end_ev);
	qmp_close(q);
	qemu_proc_free(qemu);
	if (sock) {
		unlink(sock);
		free(sock);
	}
	if (sock_dir)
		rmdir(sock_dir);
	replay_argv_free(a.v);
	replay_argv_free(disk_args);
	replay_argv_free(rest_args);
	if (rc < 0 && rc != REPLAY_E_INTERRUPTED && !qemu_ran && dir && rc != REPLAY_E_EXISTS) {
		rmdir_recording(dir);
		replay_recording_free(r);
		r = NULL;
	}
	if (r && (rc == 0 || rc == REPLAY_E_INTERRUPTED || qemu_ran))
		*out = r;
	else
		replay_recording_free(r);
	free(dir);
	free(name);
	free(qlog);
	free(append);
	return rc;
}
