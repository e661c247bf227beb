/*
 * smp.c - runs with several vCPUs, made re-executable instead of recorded.
 *
 * QEMU 10's record/replay refuses more than one vCPU. A machine whose only
 * inputs are fixed is deterministic anyway in single-threaded TCG: with a
 * fixed -icount shift and sleep=off, virtual time is the instruction count,
 * the round-robin scheduler switches vCPUs at instruction counts, and every
 * timer fires at one. What remains is removed here: host entropy (RDRAND,
 * RDSEED, and Linux trusting them), the host's clock (-rtc clock=vm from a
 * fixed date), disks, networks and input devices (refused). A recording in
 * this mode ("reexec" in the manifest) has no replay log: verify, and a stop
 * at an event, run it again (replay_smp_rerun) and the plugin counts the
 * machine's instructions (tracer/plugin.c "Several vCPUs"). Only the end
 * differs between runs: after a guest's ACPI power-off request, QEMU's main
 * loop acts at a moment the host decides, so replay_smp_compare compares up to
 * the guest's last serial line and asks one run to be a prefix of the other.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db.h"
#include "replay/internal.h"
#include "replay/replay.h"

int replay_smp_is(const struct replay_recording *r)
{
	return r && r->mode && strcmp(r->mode, REPLAY_MODE_REEXEC) == 0;
}

const char *const *replay_smp_machine_args(void)
{
	static const char *const args[] = {
		"-icount", "shift=0,sleep=off",
		"-rtc", "base=2020-01-01T00:00:00,clock=vm",
		NULL,
	};
	return args;
}

/* Options whose device or backend brings input from the host. */
static int refused_device(const char *v)
{
	static const char *const bad[] = { "usb", "virtio-blk", "virtio-net", "virtio-input", "virtio-keyboard",
					   "virtio-mouse", "virtio-tablet", "virtio-scsi", "e1000", "rtl8139", "ne2k",
					   "pcnet", "vmxnet", "ide-", "scsi-", "nvme", "ahci", "sdhci", "floppy",
					   "kbd", "mouse", "tablet", "keyboard", "serial", "virtconsole", "vhost",
					   "vfio", "ivshmem", "i8042", NULL };
	size_t i;

	for (i = 0; bad[i]; i++)
		if (strstr(v, bad[i]))
			return 1;
	return 0;
}

const char *replay_smp_refused_arg(char *const *extra)
{
	static const char *const opts[] = { "-drive", "-hda", "-hdb", "-hdc", "-hdd", "-cdrom", "-fda", "-fdb",
					    "-blockdev", "-sd", "-mtdblock", "-pflash", "-netdev", "-nic", "-usb",
					    "-usbdevice", "-icount", "-rtc", "-accel", "-enable-kvm", "-machine",
					    "-M", "-cpu", "-smp", "-incoming", "-loadvm", "-chardev", "-serial",
					    "-virtfs", "-fsdev", NULL };
	size_t i, k;

	for (i = 0; extra && extra[i]; i++) {
		const char *a = extra[i][0] == '-' && extra[i][1] == '-' ? extra[i] + 1 : extra[i];

		for (k = 0; opts[k]; k++)
			if (strcmp(a, opts[k]) == 0)
				return extra[i];
		if (strcmp(a, "-net") == 0 && !(extra[i + 1] && strcmp(extra[i + 1], "none") == 0))
			return extra[i];
		if (strcmp(a, "-device") == 0 && extra[i + 1] && refused_device(extra[i + 1]))
			return extra[i + 1];
	}
	return NULL;
}

/* A Linux bzImage has "HdrS" at 0x202 (the boot protocol header). */
static int is_bzimage(const char *path)
{
	FILE *f = fopen(path, "rb");
	char magic[4] = { 0 };
	int yes = 0;

	if (!f)
		return 0;
	if (fseek(f, 0x202, SEEK_SET) == 0 && fread(magic, 1, 4, f) == 4)
		yes = memcmp(magic, "HdrS", 4) == 0;
	fclose(f);
	return yes;
}

char *replay_smp_append(const char *kernel, const char *append)
{
	char *s = NULL;

	if (!is_bzimage(kernel) || (append && strstr(append, "random.trust_cpu=")))
		return append ? strdup(append) : NULL;
	if (asprintf(&s, "%s%srandom.trust_cpu=off", append ? append : "", append && *append ? " " : "") < 0)
		return NULL;
	return s;
}

/* ------------------------------------------------------------ re-running */

/* r's command line with the plugin writing db (and stopping), the serial
 * port writing serial; NULL-terminated, malloc'd. */
static char **rerun_argv(const struct replay_recording *r, const struct replay_smp_run *o)
{
	char **v = calloc(r->n_qemu_args + 1, sizeof(char *));
	size_t i;

	if (!v)
		return NULL;
	for (i = 0; i < r->n_qemu_args; i++) {
		const char *a = r->qemu_args[i], *prev = i ? r->qemu_args[i - 1] : "";
		char *s = NULL;

		if (strcmp(prev, "-plugin") == 0) {
			/* PLUGIN,db=trace.db,...: another .so and db, the rest kept */
			const char *comma = strchr(a, ','), *db = strstr(a, ",db=");
			const char *after = db ? strchr(db + 1, ',') : NULL;
			int so_len = o->plugin ? (int)strlen(o->plugin) : comma ? (int)(comma - a) : (int)strlen(a);
			char stop[64] = "", *gdb = NULL;
			int stopping = o->stop_at || o->gdb_sock;

			if (stopping)
				snprintf(stop, sizeof(stop), ",stop=%" PRIu64 ",stopfile=", o->stop_at);
			if (o->gdb_sock && (o->gdb_end ? asprintf(&gdb, ",gdb=%s,gdbend=%" PRIu64, o->gdb_sock, o->gdb_end)
						       : asprintf(&gdb, ",gdb=%s", o->gdb_sock)) < 0)
				gdb = NULL;
			if ((o->gdb_sock && !gdb) ||
			    asprintf(&s, "%.*s,db=%s%s%s%s%s", so_len, o->plugin ? o->plugin : a, o->db_path,
				     after ? after : "", stop, stopping ? o->stopfile : "", gdb ? gdb : "") < 0)
				s = NULL;
			free(gdb);
		} else if (strcmp(prev, "-serial") == 0) {
			if (asprintf(&s, "file:%s", o->serial_path) < 0)
				s = NULL;
		} else {
			s = strdup(a);
		}
		if (!s) {
			replay_argv_free(v);
			return NULL;
		}
		v[i] = s;
	}
	return v;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;

	if (!f)
		return NULL;
	if (getdelim(&buf, &len, '\0', f) < 0) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

int replay_smp_rerun(const struct replay_recording *r, struct replay_smp_run *o, char **err)
{
	struct qemu_spawn_opts so = { .cwd = r->dir, .own_group = 1 };
	struct qemu_proc *p = NULL;
	char **argv = NULL;
	int64_t t0 = replay_now_ms(), limit = (int64_t)(o->timeout_s > 0 ? o->timeout_s : 600) * 1000;
	int rc;

	o->status = -1;
	o->stop = NULL;
	if (!replay_smp_is(r))
		return replay_set_err(err, REPLAY_E_ARG, "%s was not recorded with several vCPUs", r->name);
	if (!(argv = rerun_argv(r, o)))
		return replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
	if ((rc = qemu_spawn(argv, &so, &p, err)) < 0)
		goto out;
	for (;;) {
		int64_t left = limit - (replay_now_ms() - t0);

		if (o->stop_at && access(o->stopfile, F_OK) == 0) {
			o->stop = slurp(o->stopfile);
			unlink(o->stopfile); /* releases the held vCPU thread: QEMU exits */
			if (qemu_proc_wait(p, NULL, 5000, &o->status) < 0)
				o->status = qemu_proc_stop(p, 500);
			rc = o->stop ? 0 : replay_set_err(err, REPLAY_E_IO, "cannot read the stop report");
			break;
		}
		if (left <= 0) {
			qemu_proc_stop(p, 500);
			rc = replay_set_err(err, REPLAY_E_TIMEOUT, "the re-run did not end within %.0f s",
					    (double)limit / 1000);
			break;
		}
		rc = qemu_proc_wait(p, o->guard, o->stop_at ? 100 : (int)(left < 250 ? left : 250), &o->status);
		if (rc == REPLAY_E_INTERRUPTED) {
			qemu_proc_stop(p, 500);
			replay_set_err(err, rc, "interrupted");
			break;
		}
		if (rc == 0 && o->stop_at && access(o->stopfile, F_OK) != 0) {
			rc = replay_set_err(err, REPLAY_E_QEMU,
					    "the re-run ended (QEMU status %d) before instruction %" PRIu64, o->status,
					    o->stop_at);
			break;
		}
		if (rc == 0 && !o->stop_at)
			break;
		rc = 0;
	}
out:
	qemu_proc_free(p);
	replay_argv_free(argv);
	return rc;
}

/* ------------------------------------------------------------ comparing */

static int same_event(const struct db_event *a, const struct db_event *b)
{
	return a->kind == b->kind && a->icount == b->icount && a->vcpu == b->vcpu && a->pc == b->pc &&
	       a->thread == b->thread && a->obj == b->obj && a->a == b->a && a->b == b->b;
}

/* The recording's last serial line: the guest's last word before it ended. */
static int last_serial(struct db_reader *rd, int64_t *id, uint64_t *icount, char **err)
{
	struct db_cursor *c = NULL;
	struct db_filter f = { 0 };
	struct db_event e;
	const char *text;
	int n;

	*id = 0;
	*icount = 0;
	if (db_cursor_open(rd, &f, &c, err) < 0)
		return -1;
	while ((n = db_cursor_next(c, &e, &text)) > 0)
		if (e.kind == DB_MARKER && e.a == DB_MARK_SERIAL) {
			*id = e.id;
			*icount = e.icount;
		}
	db_cursor_close(c);
	return n < 0 ? -1 : 0;
}

int replay_smp_compare(const char *rec_db, const char *run_db, struct replay_smp_cmp *c, char **err)
{
	struct db_reader *ra = NULL, *rb = NULL;
	struct db_cursor *ca = NULL, *cb = NULL;
	struct db_filter f = { 0 };
	struct db_event ea, eb;
	const char *ta, *tb;
	int na = 1, nb = 1, diverged = 0, rc = REPLAY_E_IO;

	memset(c, 0, sizeof(*c));
	if (db_reader_open(rec_db, &ra, err) < 0 || db_reader_open(run_db, &rb, err) < 0 ||
	    last_serial(ra, &c->cut_id, &c->cut_icount, err) < 0 || db_cursor_open(ra, &f, &ca, err) < 0 ||
	    db_cursor_open(rb, &f, &cb, err) < 0)
		goto out;
	for (;;) {
		if (na > 0 && (na = db_cursor_next(ca, &ea, &ta)) > 0)
			c->rec_events++;
		if (nb > 0 && (nb = db_cursor_next(cb, &eb, &tb)) > 0)
			c->run_events++;
		if (na < 0 || nb < 0) {
			rc = replay_set_err(err, REPLAY_E_IO, "cannot read the traces");
			goto out;
		}
		if (na == 0 && nb == 0)
			break;
		if (!diverged && na > 0 && nb > 0 && same_event(&ea, &eb)) {
			c->same++;
			continue;
		}
		if (!diverged && na > 0 && nb > 0 && c->same < c->cut_id)
			snprintf(c->detail, sizeof(c->detail),
				 "event %" PRId64 " differs: recorded %s on vCPU %u at icount %" PRIu64 " pc %#" PRIx64
				 ", re-run %s on vCPU %u at icount %" PRIu64 " pc %#" PRIx64,
				 ea.id, db_kind_name(ea.kind), ea.vcpu, ea.icount, ea.pc, db_kind_name(eb.kind), eb.vcpu,
				 eb.icount, eb.pc);
		diverged = 1; /* count the rest */
	}
	if (!c->detail[0] && c->same < c->cut_id)
		snprintf(c->detail, sizeof(c->detail), "the %s ended after %" PRId64 " events, before the guest's last serial line (event %" PRId64 ")",
			 c->rec_events < c->run_events ? "recording" : "re-run", c->same, c->cut_id);
	c->ok = !c->detail[0];
	if (c->ok)
		snprintf(c->detail, sizeof(c->detail),
			 "%" PRId64 " events identical (kind, icount, vCPU, pc, thread, operands) through the guest's "
			 "last serial line (event %" PRId64 ", icount %" PRIu64 "); after it %" PRId64 " recorded and %" PRId64
			 " re-run events differ or are missing (where a run ends is the host's moment)",
			 c->same, c->cut_id, c->cut_icount, c->rec_events - c->same, c->run_events - c->same);
	rc = 0;
out:
	db_cursor_close(ca);
	db_cursor_close(cb);
	db_reader_close(ra);
	db_reader_close(rb);
	return rc;
}

/* ------------------------------------------------------------ stopping */

/* A trace and its SQLite companions. */
static void unlink_db(const char *db)
{
	char *p = NULL;

	unlink(db);
	if (asprintf(&p, "%s-wal", db) >= 0)
		unlink(p);
	free(p);
	p = NULL;
	if (asprintf(&p, "%s-shm", db) >= 0)
		unlink(p);
	free(p);
}

static void stop_field(const char *name, uint64_t v, struct replay_regs *g)
{
	static const char *const gpr[] = { "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
					   "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15" };
	uint64_t *slot[] = { &g->rax, &g->rbx, &g->rcx, &g->rdx, &g->rsi, &g->rdi, &g->rbp, &g->rsp,
			     &g->r8,  &g->r9,  &g->r10, &g->r11, &g->r12, &g->r13, &g->r14, &g->r15 };
	size_t i;

	for (i = 0; i < 16; i++)
		if (strcmp(name, gpr[i]) == 0)
			*slot[i] = v;
	if (strcmp(name, "pc") == 0)
		g->rip = v; /* the plugin's: the instruction held, whatever QEMU synced */
	else if (strcmp(name, "eflags") == 0)
		g->rflags = v;
	else if (strcmp(name, "cs") == 0)
		g->cpl = (int)(v & 3);
	else if (strcmp(name, "cr0") == 0)
		g->cr0 = v;
	else if (strcmp(name, "cr2") == 0)
		g->cr2 = v;
	else if (strcmp(name, "cr3") == 0)
		g->cr3 = v;
	else if (strcmp(name, "cr4") == 0)
		g->cr4 = v;
	else if (strcmp(name, "efer") == 0)
		g->efer = v, g->long_mode = (v >> 10) & 1;
	else if (strcmp(name, "gs_base") == 0)
		g->gs_base = v;
	else if (strcmp(name, "fs_base") == 0)
		g->fs_base = v;
}

int replay_smp_stop(const struct replay_recording *r, uint64_t icount, struct qemu_guard *g, struct replay_regs *regs,
		    int *vcpu, uint8_t code[16], int *have_code, char **err)
{
	char tmpl[] = "/tmp/krewind-smp.XXXXXX", *tmp = mkdtemp(tmpl), *line, *save = NULL;
	char *db = NULL, *serial = NULL, *stopfile = NULL;
	struct replay_smp_run run = { 0 };
	int rc;

	memset(regs, 0, sizeof(*regs));
	*vcpu = -1;
	*have_code = 0;
	if (!tmp)
		return replay_set_err(err, REPLAY_E_IO, "mkdtemp: %s", strerror(errno));
	db = replay_path_join(tmp, "trace.db");
	serial = replay_path_join(tmp, "serial.log");
	stopfile = replay_path_join(tmp, "stop");
	if (!db || !serial || !stopfile) {
		rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
		goto out;
	}
	run.plugin = replay_find_file("KREWIND_PLUGIN", "tracer/libkrewind.so");
	run.db_path = db;
	run.serial_path = serial;
	run.stop_at = icount;
	run.stopfile = stopfile;
	run.timeout_s = 600 + 30 * r->wall_seconds;
	run.guard = g;
	rc = replay_smp_rerun(r, &run, err);
	for (line = run.stop ? strtok_r(run.stop, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
		char name[32];
		char hex[40];
		uint64_t v;

		if (sscanf(line, "code %32s", hex) == 1 && strlen(hex) == 32) {
			for (int i = 0; i < 16; i++) {
				unsigned b;
				sscanf(hex + 2 * i, "%2x", &b);
				code[i] = (uint8_t)b;
			}
			*have_code = 1;
		} else if (sscanf(line, "vcpu %d", vcpu) == 1) {
			continue;
		} else if (sscanf(line, "%31s %" SCNx64, name, &v) == 2) {
			stop_field(name, v, regs);
		}
	}
	free(run.stop);
	free((char *)run.plugin);
out:
	if (db)
		unlink_db(db);
	if (serial)
		unlink(serial);
	if (stopfile) {
		char *p = NULL;
		unlink(stopfile);
		if (asprintf(&p, "%s.tmp", stopfile) >= 0)
			unlink(p);
		free(p);
	}
	rmdir(tmp);
	free(db);
	free(serial);
	free(stopfile);
	return rc;
}

/* ------------------------------------------------------------ held for gdb */

int replay_smp_hold(const struct replay_recording *r, uint64_t icount, const char *dir, struct qemu_guard *g,
		    struct qemu_proc **out, char **err)
{
	char *db = replay_path_join(dir, "trace.db"), *serial = replay_path_join(dir, "serial.log");
	char *stopfile = replay_path_join(dir, "stop"), *sock = replay_path_join(dir, "gdb.sock");
	char *log = replay_path_join(dir, "qemu.log"), **argv = NULL;
	struct replay_smp_run run = { 0 };
	struct qemu_spawn_opts so = { .cwd = r->dir, .own_group = 1 };
	struct qemu_proc *p = NULL;
	int64_t t0 = replay_now_ms(), limit = (int64_t)(600 + 30 * r->wall_seconds) * 1000;
	int rc, status;

	*out = NULL;
	if (!db || !serial || !stopfile || !sock || !log) {
		rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
		goto out;
	}
	unlink_db(db);
	unlink(stopfile);
	run.plugin = replay_find_file("KREWIND_PLUGIN", "tracer/libkrewind.so");
	run.db_path = db;
	run.serial_path = serial;
	run.stop_at = icount;
	run.stopfile = stopfile;
	run.gdb_sock = sock;
	run.gdb_end = r->icount_total;
	so.stderr_path = log;
	if (!(argv = rerun_argv(r, &run))) {
		rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = qemu_spawn(argv, &so, &p, err)) < 0)
		goto out;
	for (;;) {
		if (access(stopfile, F_OK) == 0) {
			*out = p;
			p = NULL;
			rc = 0;
			break;
		}
		if (replay_now_ms() - t0 > limit) {
			rc = replay_set_err(err, REPLAY_E_TIMEOUT, "the re-run did not reach instruction %" PRIu64
					    " within %.0f s", icount, (double)limit / 1000);
			break;
		}
		rc = qemu_proc_wait(p, g, 100, &status);
		if (rc == REPLAY_E_INTERRUPTED) {
			replay_set_err(err, rc, "interrupted");
			break;
		}
		if (rc == 0) {
			rc = replay_set_err(err, REPLAY_E_QEMU, "the re-run ended (QEMU status %d) before instruction %"
					    PRIu64 " (see %s)", status, icount, log);
			break;
		}
	}
out:
	if (p)
		qemu_proc_stop(p, 500);
	qemu_proc_free(p);
	replay_argv_free(argv);
	free((char *)run.plugin);
	free(db);
	free(serial);
	free(stopfile);
	free(sock);
	free(log);
	return rc;
}

void replay_smp_release(struct qemu_proc *p)
{
	int status;

	if (!p)
		return;
	if (qemu_proc_wait(p, NULL, 5000, &status) != 0)
		qemu_proc_stop(p, 500);
	qemu_proc_free(p);
}
