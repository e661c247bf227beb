/*
 * cmd_verify.c - `krewind verify REC`: replays the whole recording and checks
 * that it is deterministic: same end (final icount, or the guest's own
 * shutdown), same serial output, and, with the plugin running during the
 * replay, the same event stream (kind, icount, pc of every event).
 *
 * The replay runs with stay_at_end, so QEMU pauses at the end of the log and
 * the icount there is the recording's real end. An interrupted recording
 * (outcome killed) may have a manifest icount read while QEMU was being
 * stopped and events the plugin wrote past the log's end: it is compared up
 * to the real end, and the difference is reported.
 *
 * A run the guest ended (poweroff, reset) has a tail no replay promises:
 * after the guest's shutdown request QEMU's main loop stops the vCPU at a
 * host-dependent moment, in the recording (the log keeps those instructions)
 * and again in the replay (paused by the replayed request, possibly before
 * the log's last instructions ran). The replay can only stop at or after the
 * request, so everything before its stop is compared and the recording's
 * instructions after it are reported, not failed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db.h"
#include "replay/replay.h"
#include "ui-cli/cli.h"

static const char synopsis[] = "krewind verify REC [--no-plugin] [--json] [-q]";
static const char description[] =
	"Replays all of REC and checks that the replay is the recording: the run ends at\n"
	"the same icount (runs krewind stopped: hang, timeout) or with the same QEMU exit\n"
	"status (runs the guest ended), the serial output is byte for byte the same and,\n"
	"with the tracer plugin loaded into the replay, every event has the same kind,\n"
	"icount and pc; an icount that differs where kind and pc agree is reported as\n"
	"drift. Interrupted recordings are compared up to the end of their replay log.\n"
	"Exit 0 when deterministic, 1 when not, 130 when interrupted.";

enum { OPT_JSON = 1, OPT_NOPLUGIN, OPT_QUIET };
static const struct cli_option options[] = {
	{OPT_NOPLUGIN, "no-plugin", 0, NULL, "do not trace the replay (compare the end and serial only)"},
	{OPT_JSON, "json", 0, NULL, "print JSON"},
	{OPT_QUIET, "quiet", 'q', NULL, "no progress line"},
	{0},
};

struct check {
	const char *name;
	int ran, ok;
	char detail[320];
	int64_t drift; /* icounts: replayed - recorded (end), or the largest event drift */
	int64_t drifted; /* events whose icount differs while kind and pc agree */
};

static int files_equal(const char *a, const char *b, long *size)
{
	FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
	int ca, cb, eq = 1;

	*size = 0;
	if (!fa || !fb) {
		eq = !fa && !fb;
		goto out;
	}
	do {
		ca = getc(fa);
		cb = getc(fb);
		if (ca != cb) {
			eq = 0;
			break;
		}
		if (ca != EOF)
			(*size)++;
	} while (ca != EOF);
out:
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return eq;
}

/* Compares the two traces event by event, up to icount upto (0: all), which
 * is where the replay ended for the reason upto_why. */
static void compare_traces(const char *orig, const char *replayed, uint64_t upto, const char *upto_why,
			   struct cli_progress *prog, int64_t total, struct check *c)
{
	struct db_reader *ra = NULL, *rb = NULL;
	struct db_cursor *ca = NULL, *cb = NULL;
	struct db_filter f = { 0 };
	struct db_event ea, eb;
	const char *ta, *tb;
	char *err = NULL;
	int64_t n = 0, first_drift = 0;
	int na, nb;

	c->ran = 1;
	f.to_icount = upto;
	if (db_reader_open(orig, &ra, &err) < 0 || db_reader_open(replayed, &rb, &err) < 0 ||
	    db_cursor_open(ra, &f, &ca, &err) < 0 || db_cursor_open(rb, &f, &cb, &err) < 0) {
		snprintf(c->detail, sizeof(c->detail), "cannot read the traces: %s", err ? err : "?");
		goto out;
	}
	for (;;) {
		na = db_cursor_next(ca, &ea, &ta);
		nb = db_cursor_next(cb, &eb, &tb);
		if (na < 0 || nb < 0) {
			snprintf(c->detail, sizeof(c->detail), "cannot read the traces");
			goto out;
		}
		if (na == 0 && nb == 0)
			break;
		if (na == 0 || nb == 0) {
			snprintf(c->detail, sizeof(c->detail), "%s has more events: the first %" PRId64 " agree",
				 na ? "the recording" : "the replay", n);
			goto out;
		}
		if (ea.kind != eb.kind || ea.pc != eb.pc) {
			snprintf(c->detail, sizeof(c->detail),
				 "event %" PRId64 " differs: recorded %s at icount %" PRIu64 " pc %#" PRIx64
				 ", replayed %s at icount %" PRIu64 " pc %#" PRIx64,
				 ea.id, db_kind_name(ea.kind), ea.icount, ea.pc, db_kind_name(eb.kind), eb.icount, eb.pc);
			goto out;
		}
		if (ea.icount != eb.icount) {
			int64_t d = (int64_t)(eb.icount - ea.icount);
			if (!c->drifted++)
				first_drift = ea.id;
			if ((d < 0 ? -d : d) > (c->drift < 0 ? -c->drift : c->drift))
				c->drift = d;
		}
		n++;
		cli_progress_update(prog, (uint64_t)n, (uint64_t)total, "events compared");
	}
	if (c->drifted) {
		snprintf(c->detail, sizeof(c->detail),
			 "icount drift: %" PRId64 " of %" PRId64 " events (kind and pc agree) replayed at another icount, "
			 "the first event %" PRId64 ", by up to %+" PRId64 " instructions",
			 c->drifted, n, first_drift, c->drift);
		goto out;
	}
	c->ok = 1;
	snprintf(c->detail, sizeof(c->detail), "%" PRId64 " events identical (kind, icount, pc)%s%s", n,
		 upto ? " up to " : "", upto ? upto_why : "");
out:
	free(err);
	db_cursor_close(ca);
	db_cursor_close(cb);
	db_reader_close(ra);
	db_reader_close(rb);
}

/* A recording with several vCPUs (manifest mode "reexec") has no replay log:
 * it is run again with the plugin and the two traces and serial logs compared
 * (replay/smp.c; docs/replay.md "SMP mode and its limits"). */
static int guest_ended(const char *outcome);

static int verify_smp(const struct replay_recording *r, const char *tmp, struct qemu_guard *g, int json)
{
	struct replay_smp_run run = { 0 };
	struct replay_smp_cmp cmp;
	char *db = NULL, *serial = NULL, *stop = NULL, *err = NULL;
	long n = 0;
	int rc, serial_ok, ok;

	if (asprintf(&db, "%s/trace.db", tmp) < 0 || asprintf(&serial, "%s/serial.log", tmp) < 0 ||
	    asprintf(&stop, "%s/stop", tmp) < 0)
		return cli_error(CLI_FAIL, "out of memory");
	/* A run krewind ended (hang, timeout) is re-run to the same instruction. */
	if (!guest_ended(r->outcome) && r->exit_status == 0 && r->icount_total) {
		run.stop_at = r->icount_total;
		run.stopfile = stop;
	}
	run.plugin = replay_find_file("KREWIND_PLUGIN", "tracer/libkrewind.so");
	run.db_path = db;
	run.serial_path = serial;
	run.timeout_s = 600 + 30 * r->wall_seconds;
	run.guard = g;
	rc = replay_smp_rerun(r, &run, &err);
	if (rc == 0)
		rc = replay_smp_compare(r->db_path, db, &cmp, &err);
	if (rc < 0) {
		rc = rc == REPLAY_E_INTERRUPTED ? CLI_INTERRUPTED : cli_error_msg(CLI_FAIL, NULL, err);
		err = NULL;
		goto out;
	}
	serial_ok = files_equal(r->serial_log, serial, &n);
	ok = cmp.ok && serial_ok;
	if (json) {
		struct cli_json j;
		cli_json_init(&j, stdout);
		cli_json_object(&j);
		cli_json_kstr(&j, "recording", r->dir);
		cli_json_kstr(&j, "mode", r->mode);
		cli_json_key(&j, "deterministic");
		cli_json_bool(&j, ok);
		cli_json_key(&j, "serial");
		cli_json_object(&j);
		cli_json_key(&j, "ok");
		cli_json_bool(&j, serial_ok);
		cli_json_kint(&j, "bytes", n);
		cli_json_close(&j);
		cli_json_key(&j, "events");
		cli_json_object(&j);
		cli_json_key(&j, "ok");
		cli_json_bool(&j, cmp.ok);
		cli_json_kstr(&j, "detail", cmp.detail);
		cli_json_kint(&j, "identical", cmp.same);
		cli_json_kint(&j, "recorded", cmp.rec_events);
		cli_json_kint(&j, "rerun", cmp.run_events);
		cli_json_kint(&j, "last_serial_event", cmp.cut_id);
		cli_json_close(&j);
		cli_json_close(&j);
		cli_json_end(&j);
	} else {
		printf("verify %s: %s (re-executed: %d vCPUs, no replay log)\n", r->name,
		       ok ? "deterministic" : "NOT deterministic", r->vcpus);
		printf("  %-6s %-4s %s\n", "serial", serial_ok ? "ok" : "FAIL",
		       serial_ok ? "serial output identical" : "serial output differs");
		printf("  %-6s %-4s %s\n", "events", cmp.ok ? "ok" : "FAIL", cmp.detail);
	}
	rc = ok ? CLI_OK : CLI_FAIL;
out:
	free(err);
	free(run.stop);
	unlink(stop);
	free(stop);
	unlink(serial);
	unlink(db);
	free(serial);
	if (asprintf(&serial, "%s-wal", db) >= 0)
		unlink(serial);
	free(serial);
	free(db);
	free((char *)run.plugin);
	return rc;
}

/* The guest ended the recorded run itself (poweroff, reset, panic), though
 * QEMU's exit status is 0 as when krewind stops it. */
static int guest_ended(const char *outcome)
{
	return outcome && (strcmp(outcome, "exit") == 0 || strcmp(outcome, "reset") == 0 ||
			   strcmp(outcome, "panic") == 0);
}

int cmd_verify(int argc, char **argv)
{
	struct cli_args a;
	struct replay_recording *r = NULL;
	struct qemu_guard *g = NULL;
	struct replay_session *s = NULL;
	struct replay_session_opts so = { 0 };
	struct check end = { "end" }, serial = { "serial" }, events = { "events" };
	struct check *checks[] = { &end, &serial, &events };
	const char *val, *spec = NULL;
	char *err = NULL, *plugin = NULL, tmpl[] = "/tmp/krewind-verify.XXXXXX", *tmp = NULL;
	char *serial_out = NULL, *db_out = NULL;
	int opt, json = 0, no_plugin = 0, quiet = 0, rc, status = -1, ok = 1, krewind_ended, interrupted;
	struct cli_progress *prog = NULL;
	uint64_t upto = 0;
	const char *upto_why = "the end of the replay log";
	size_t i;

	cli_args_init(&a, "verify", argc, argv);
	while ((opt = cli_next_opt(&a, options, &val)) != CLI_OPT_END) {
		if ((rc = cli_common_opt(&a, opt, val, &spec, synopsis, description, options)) >= 0)
			return rc;
		switch (opt) {
		case OPT_JSON: json = 1; break;
		case OPT_NOPLUGIN: no_plugin = 1; break;
		case OPT_QUIET: quiet = 1; break;
		}
	}
	if (!spec)
		return cli_usage_error("verify", "no recording given");
	if (replay_recording_open(spec, &r, &err) < 0)
		return cli_error_msg(CLI_USAGE, NULL, err);
	if (r->db_path && access(r->db_path, F_OK) == 0) {
		/* A trace this krewind cannot read (damaged, newer schema) is
		 * refused before the replay, not reported as non-determinism after. */
		struct db_reader *rd;

		if (db_reader_open(r->db_path, &rd, &err) < 0) {
			rc = cli_error_msg(CLI_USAGE, NULL, err);
			goto out;
		}
		db_reader_close(rd);
	}
	if (!(tmp = mkdtemp(tmpl))) {
		rc = cli_error(CLI_FAIL, "cannot create a temporary directory");
		goto out;
	}
	if (asprintf(&serial_out, "%s/serial.log", tmp) < 0 || asprintf(&db_out, "%s/trace.db", tmp) < 0) {
		rc = cli_error(CLI_FAIL, "out of memory");
		goto out;
	}
	if (!no_plugin && r->db_path && access(r->db_path, R_OK) == 0)
		plugin = replay_find_file("KREWIND_PLUGIN", "tracer/libkrewind.so");
	if (qemu_guard_begin(&g, &err) < 0) {
		rc = cli_error_msg(CLI_FAIL, NULL, err);
		goto out;
	}
	if (replay_smp_is(r)) {
		rc = verify_smp(r, tmp, g, json);
		goto out;
	}
	so.guard = g;
	so.serial_path = serial_out;
	so.stay_at_end = 1;
	krewind_ended = r->exit_status == 0 && r->icount_total > 0 && !guest_ended(r->outcome);
	interrupted = r->outcome && (strcmp(r->outcome, "interrupted") == 0 || strcmp(r->outcome, "killed") == 0);
	if (plugin) {
		so.plugin = plugin;
		so.plugin_db = db_out;
	}
	prog = cli_progress_start("verifying", quiet);
	so.progress = cli_progress_icount;
	so.progress_ctx = prog;
	if ((rc = replay_session_start(r, &so, &s, &err)) < 0) {
		rc = cmd_replay_error(rc, err);
		goto out;
	}
	end.ran = 1;
	cli_progress_total(prog, r->icount_total);
	rc = replay_session_run_to_end(s, 600 + 30 * r->wall_seconds, &status, &err);
	cli_progress_end(prog);
	prog = NULL;
	if (rc < 0) {
		rc = cmd_replay_error(rc, err);
		goto out;
	}
	{
		const char *why = replay_session_shutdown_reason(s);
		uint64_t at = replay_session_last_icount(s);
		int guest_end = why && (strcmp(why, "guest-shutdown") == 0 || strcmp(why, "guest-reset") == 0 ||
					strcmp(why, "guest-panic") == 0);

		end.drift = status == -1 ? (int64_t)(at - r->icount_total) : 0;
		upto = krewind_ended && status == -1 ? at : 0;
		if (krewind_ended) {
			/* krewind stopped this run (hang, timeout, signal) at
			 * icount_total: the log must end exactly there. */
			end.ok = status == -1 && at == r->icount_total;
			if (end.ok)
				snprintf(end.detail, sizeof(end.detail), "reached the final icount %" PRIu64 " exactly",
					 r->icount_total);
			else if (status == -1 && interrupted) {
				/* The manifest's icount was read while the signal
				 * stopped QEMU; the log's end is the real one. */
				end.ok = 1;
				snprintf(end.detail, sizeof(end.detail),
					 "the replay log ends at icount %" PRIu64 "; the interrupted recording's manifest "
					 "says %" PRIu64 " (%+" PRId64 "): compared up to the log's end",
					 at, r->icount_total, end.drift);
			} else if (status == -1)
				snprintf(end.detail, sizeof(end.detail),
					 "the replay ended at icount %" PRIu64 ", not at the final icount %" PRIu64, at,
					 r->icount_total);
			else
				snprintf(end.detail, sizeof(end.detail), "QEMU exited (status %d) before the final icount %" PRIu64,
					 status, r->icount_total);
		} else {
			/* The guest ended the recorded run (isa-debug-exit, reset):
			 * the replay must end with the guest's own shutdown. Its
			 * exit status is not replayed reliably by QEMU 10. */
			end.ok = guest_end;
			if (guest_end && status == -1 && at + 16 < r->icount_total) {
				/* Paused by the replayed request before the log's
				 * last instructions ran (see the top of the file). */
				snprintf(end.detail, sizeof(end.detail),
					 "the replay ended with %s at icount %" PRIu64 ", %" PRIu64 " instructions before "
					 "the recording's end %" PRIu64 ": QEMU stops the vCPU at a host-dependent moment "
					 "after the guest's shutdown request; compared up to the replay's end",
					 why, at, r->icount_total - at, r->icount_total);
				upto = at;
				upto_why = "the replay's end (after the guest's shutdown request)";
			} else
				snprintf(end.detail, sizeof(end.detail),
					 "the replay ended with %s at icount %" PRIu64 " (recorded %s, status %d; the "
					 "plugin counted %" PRIu64 ")",
					 why ? why : "no shutdown", at, r->outcome ? r->outcome : "?", r->exit_status,
					 r->icount_total);
		}
	}
	replay_session_end(s); /* quit: the plugin writes its last events */
	s = NULL;
	if (r->serial_log) {
		long n;
		serial.ran = 1;
		serial.ok = files_equal(r->serial_log, serial_out, &n);
		if (serial.ok)
			snprintf(serial.detail, sizeof(serial.detail), "serial output identical (%ld bytes)", n);
		else
			snprintf(serial.detail, sizeof(serial.detail), "serial output differs from %s", r->serial_log);
	}
	if (plugin) {
		prog = cli_progress_start("comparing", quiet);
		compare_traces(r->db_path, db_out, upto, upto_why, prog, r->events_total, &events);
		cli_progress_end(prog);
		prog = NULL;
	}
	for (i = 0; i < 3; i++)
		if (checks[i]->ran && !checks[i]->ok)
			ok = 0;
	if (json) {
		struct cli_json j;
		cli_json_init(&j, stdout);
		cli_json_object(&j);
		cli_json_kstr(&j, "recording", r->dir);
		cli_json_key(&j, "deterministic");
		cli_json_bool(&j, ok);
		for (i = 0; i < 3; i++) {
			if (!checks[i]->ran)
				continue;
			cli_json_key(&j, checks[i]->name);
			cli_json_object(&j);
			cli_json_key(&j, "ok");
			cli_json_bool(&j, checks[i]->ok);
			cli_json_kstr(&j, "detail", checks[i]->detail);
			if (checks[i] == &end)
				cli_json_kint(&j, "icount_drift", checks[i]->drift);
			if (checks[i] == &events) {
				cli_json_kint(&j, "drifted_events", checks[i]->drifted);
				cli_json_kint(&j, "icount_drift", checks[i]->drift);
			}
			cli_json_close(&j);
		}
		cli_json_close(&j);
		cli_json_end(&j);
	} else {
		printf("verify %s: %s\n", r->name, ok ? "deterministic" : "NOT deterministic");
		for (i = 0; i < 3; i++)
			if (checks[i]->ran)
				printf("  %-6s %-4s %s\n", checks[i]->name, checks[i]->ok ? "ok" : "FAIL", checks[i]->detail);
		if (!events.ran)
			printf("  events skip %s\n", no_plugin ? "--no-plugin" : "no plugin or no trace to compare with");
	}
	rc = ok ? CLI_OK : CLI_FAIL;
out:
	cli_progress_end(prog);
	replay_session_end(s);
	qemu_guard_end(g);
	replay_recording_free(r);
	if (serial_out)
		unlink(serial_out);
	if (db_out) {
		char *p = NULL;
		unlink(db_out);
		if (asprintf(&p, "%s-wal", db_out) >= 0)
			unlink(p);
		free(p);
		if (asprintf(&p, "%s-shm", db_out) >= 0)
			unlink(p);
		free(p);
	}
	if (tmp)
		rmdir(tmp);
	free(serial_out);
	free(db_out);
	free(plugin);
	return rc;
}
