/*
 * cmd_replay.c - `krewind replay REC --to EVENT|icount:N`: replays the
 * recording deterministically and stops exactly before that event's
 * instruction, then shows the machine there: registers, the instruction at
 * pc, the current thread, the IRQL, the locks held and the events around.
 */
#include <capstone/capstone.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/analysis.h"
#include "replay/replay.h"
#include "ui-cli/cli.h"

/* How far before an event's icount the exact landing starts looking. */
#define LAND_WINDOW 16
/* Seconds a replay started from a snapshot may stand still before krewind
 * gives up on the snapshot (some taken while recording never replay). */
#define SNAPSHOT_STALL_S 8

static const char synopsis[] = "krewind replay REC --to EVENT|icount:N|finding:N [--context N] [--json] [-q]";
static const char description[] =
	"Replays REC under QEMU (rr=replay, the recorded command line) and stops when\n"
	"exactly icount instructions have retired: before the instruction of event\n"
	"EVENT (an id from `krewind events`), at icount:N, or at the event of finding:N\n"
	"(the Nth finding `krewind check` prints). Prints the icount, pc with\n"
	"its symbol, the registers, the instruction at pc, the current thread, the IRQL\n"
	"and the locks held (from the trace), and the events around that point.\n"
	"A target past the recording's end is refused at once (exit 2); a progress\n"
	"line on a terminal shows the replay; Ctrl-C stops it (exit 130).";

enum { OPT_TO = 1, OPT_JSON, OPT_CONTEXT, OPT_QUIET };
static const struct cli_option options[] = {
	{OPT_TO, "to", 0, "EVENT|icount:N|finding:N", "where to stop"},
	{OPT_CONTEXT, "context", 'C', "N", "events shown on each side (default 4)"},
	{OPT_JSON, "json", 0, NULL, "print JSON"},
	{OPT_QUIET, "quiet", 'q', NULL, "no progress line"},
	{0},
};

struct view {
	struct cli_rec rec;
	struct cli_names names;
	struct db_event ev; /* the target event (ev.id 0 for icount:N) */
	const char *ev_text;
	char *ev_text_copy;
	uint64_t icount;
	uint64_t trace_icount; /* the event's icount in the trace (icount: where QEMU stopped) */
	uint64_t snapshot;     /* the replay started from the snapshot at this icount (0: the start) */
	struct replay_regs regs;
	uint8_t code[16];
	int have_code;
	char insn[128];
	uint64_t guest_thread; /* from gs:[0x188], 0 if not read */
	char guest_thread_name[17];
	struct replay_state st;
};

static void disassemble(struct view *v)
{
	csh h;
	cs_insn *insn;
	size_t n;

	snprintf(v->insn, sizeof(v->insn), "?");
	if (!v->have_code || cs_open(CS_ARCH_X86, v->regs.long_mode ? CS_MODE_64 : CS_MODE_32, &h) != CS_ERR_OK)
		return;
	n = cs_disasm(h, v->code, sizeof(v->code), v->regs.rip, 1, &insn);
	if (n > 0) {
		int m = snprintf(v->insn, sizeof(v->insn), "%.31s", insn[0].mnemonic);
		if (insn[0].op_str[0])
			snprintf(v->insn + m, sizeof(v->insn) - (size_t)m, " %.90s", insn[0].op_str);
		cs_free(insn, n);
	}
	cs_close(&h);
}

/* The guest's own idea of the current thread: KPCR.Prcb.CurrentThread at
 * gs:[0x188] and KTHREAD.Name at +0x40 (docs/architecture.md). */
static void read_guest_thread(struct replay_session *s, struct view *v)
{
	uint8_t b[16];
	char *err = NULL;
	int i;

	if (!v->regs.long_mode || !v->regs.gs_base)
		return;
	if (replay_session_read(s, v->regs.gs_base + 0x188, b, 8, &err) < 0) {
		free(err);
		return;
	}
	for (i = 7; i >= 0; i--)
		v->guest_thread = v->guest_thread << 8 | b[i];
	if (v->guest_thread && replay_session_read(s, v->guest_thread + 0x40, b, 16, &err) == 0) {
		memcpy(v->guest_thread_name, b, 16);
		v->guest_thread_name[16] = 0;
		for (i = 0; v->guest_thread_name[i]; i++)
			if (v->guest_thread_name[i] < 0x20 || v->guest_thread_name[i] > 0x7e)
				v->guest_thread_name[i] = '?';
	}
	free(err);
}

static void print_events_around(struct view *v, int context, struct cli_json *j)
{
	struct db_filter f = { 0 };
	struct db_cursor *c = NULL;
	struct db_event ev;
	const char *text;
	char *err = NULL, desc[512], sym[160], th[64];
	int64_t from;

	if (v->ev.id > 0) {
		from = v->ev.id - context;
	} else {
		/* icount:N: the events just before N. */
		f.to_icount = v->icount ? v->icount - 1 : 0;
		f.descending = 1;
		f.limit = context;
		from = 1;
		if (v->icount && db_cursor_open(v->rec.db, &f, &c, &err) == 0) {
			while (db_cursor_next(c, &ev, &text) == 1)
				from = ev.id;
			db_cursor_close(c);
			c = NULL;
		}
		free(err);
		err = NULL;
		memset(&f, 0, sizeof(f));
	}
	f.from_id = from < 1 ? 1 : from;
	f.limit = 2 * context + 1;
	if (db_cursor_open(v->rec.db, &f, &c, &err) < 0) {
		free(err);
		return;
	}
	if (j) {
		cli_json_key(j, "events");
		cli_json_array(j);
	} else {
		printf("\nevents around:\n");
	}
	while (db_cursor_next(c, &ev, &text) == 1) {
		int here = v->ev.id ? ev.id == v->ev.id : ev.icount >= v->icount;
		cli_describe_event(&ev, text, &v->names, desc, sizeof(desc));
		db_symbolize(v->rec.db, ev.pc, sym, sizeof(sym));
		cli_thread_label(&v->names, ev.thread, th, sizeof(th));
		if (j) {
			cli_json_object(j);
			cli_json_kint(j, "id", ev.id);
			cli_json_kuint(j, "icount", ev.icount);
			cli_json_kstr(j, "kind", db_kind_name(ev.kind));
			cli_json_khex(j, "pc", ev.pc);
			cli_json_kstr(j, "symbol", sym);
			cli_json_kstr(j, "thread", th);
			cli_json_kstr(j, "description", desc);
			cli_json_close(j);
		} else {
			printf("%s %8" PRId64 " %#14" PRIx64 " %-14s %-28s %s\n", here ? "=>" : "  ", ev.id, ev.icount, th,
			       sym, desc);
		}
		if (!v->ev.id && here)
			v->ev.id = -1; /* mark once */
	}
	if (j)
		cli_json_close(j);
	db_cursor_close(c);
}

static void print_text(struct view *v, int context)
{
	char sym[160], th[64], lk[128];
	const struct replay_regs *r = &v->regs;
	size_t i;

	printf("stopped at icount %#" PRIx64 " (%" PRIu64 ")", v->icount, v->icount);
	if (v->ev.id > 0) {
		char desc[512];
		cli_describe_event(&v->ev, v->ev_text, &v->names, desc, sizeof(desc));
		printf(", before event %" PRId64 " (%s): %s", v->ev.id, db_kind_name(v->ev.kind), desc);
	}
	printf("\n");
	printf("pc      %#" PRIx64 " %s\n", r->rip, db_symbolize(v->rec.db, r->rip, sym, sizeof(sym)));
	printf("insn    %s\n", v->insn);
	if (v->guest_thread)
		printf("thread  %s (%#" PRIx64 ", from gs:[0x188])\n", *v->guest_thread_name ? v->guest_thread_name : "?",
		       v->guest_thread);
	else
		printf("thread  %s (from the trace)\n", cli_thread_label(&v->names, v->st.thread, th, sizeof(th)));
	if (v->st.irql >= 0)
		printf("irql    %" PRId64 " (from the trace)\n", v->st.irql);
	else
		printf("irql    unknown (no IRQL event before this point)\n");
	printf("locks held (%zu):\n", v->st.n_held);
	for (i = 0; i < v->st.n_held; i++) {
		const struct replay_held *h = &v->st.held[i];
		printf("  %-24s by %-16s since event %" PRId64 " at %s\n", cli_lock_label(&v->names, h->lock, lk, sizeof(lk)),
		       cli_thread_label(&v->names, h->thread, th, sizeof(th)), h->event_id,
		       db_symbolize(v->rec.db, h->pc, sym, sizeof(sym)));
	}
	printf("\nregisters:\n");
	printf("  rax %016" PRIx64 "  rbx %016" PRIx64 "  rcx %016" PRIx64 "  rdx %016" PRIx64 "\n", r->rax, r->rbx, r->rcx, r->rdx);
	printf("  rsi %016" PRIx64 "  rdi %016" PRIx64 "  rbp %016" PRIx64 "  rsp %016" PRIx64 "\n", r->rsi, r->rdi, r->rbp, r->rsp);
	printf("  r8  %016" PRIx64 "  r9  %016" PRIx64 "  r10 %016" PRIx64 "  r11 %016" PRIx64 "\n", r->r8, r->r9, r->r10, r->r11);
	printf("  r12 %016" PRIx64 "  r13 %016" PRIx64 "  r14 %016" PRIx64 "  r15 %016" PRIx64 "\n", r->r12, r->r13, r->r14, r->r15);
	printf("  rip %016" PRIx64 "  rfl %016" PRIx64 "  cr3 %016" PRIx64 "  gs  %016" PRIx64 "\n", r->rip, r->rflags, r->cr3,
	       r->gs_base);
	print_events_around(v, context, NULL);
}

static void print_json(struct view *v, int context)
{
	struct cli_json j;
	char sym[160], th[64], lk[128];
	const struct replay_regs *r = &v->regs;
	size_t i;

	cli_json_init(&j, stdout);
	cli_json_object(&j);
	cli_json_kstr(&j, "recording", v->rec.rec->dir);
	cli_json_kuint(&j, "icount", v->icount);
	cli_json_khex(&j, "icount_hex", v->icount);
	cli_json_kint(&j, "icount_drift", (int64_t)(v->icount - v->trace_icount));
	cli_json_kint(&j, "from_snapshot", (int64_t)v->snapshot);
	if (v->ev.id > 0) {
		cli_json_kint(&j, "event", v->ev.id);
		cli_json_kstr(&j, "event_kind", db_kind_name(v->ev.kind));
		cli_json_khex(&j, "event_pc", v->ev.pc);
	}
	cli_json_khex(&j, "pc", r->rip);
	cli_json_kstr(&j, "symbol", db_symbolize(v->rec.db, r->rip, sym, sizeof(sym)));
	cli_json_kstr(&j, "insn", v->insn);
	cli_json_key(&j, "registers");
	cli_json_object(&j);
	cli_json_khex(&j, "rax", r->rax); cli_json_khex(&j, "rbx", r->rbx); cli_json_khex(&j, "rcx", r->rcx);
	cli_json_khex(&j, "rdx", r->rdx); cli_json_khex(&j, "rsi", r->rsi); cli_json_khex(&j, "rdi", r->rdi);
	cli_json_khex(&j, "rbp", r->rbp); cli_json_khex(&j, "rsp", r->rsp); cli_json_khex(&j, "r8", r->r8);
	cli_json_khex(&j, "r9", r->r9); cli_json_khex(&j, "r10", r->r10); cli_json_khex(&j, "r11", r->r11);
	cli_json_khex(&j, "r12", r->r12); cli_json_khex(&j, "r13", r->r13); cli_json_khex(&j, "r14", r->r14);
	cli_json_khex(&j, "r15", r->r15); cli_json_khex(&j, "rip", r->rip); cli_json_khex(&j, "rflags", r->rflags);
	cli_json_khex(&j, "cr0", r->cr0); cli_json_khex(&j, "cr3", r->cr3); cli_json_khex(&j, "cr4", r->cr4);
	cli_json_khex(&j, "gs_base", r->gs_base);
	cli_json_close(&j);
	if (v->guest_thread) {
		cli_json_khex(&j, "thread", v->guest_thread);
		cli_json_kstr(&j, "thread_name", v->guest_thread_name);
	} else {
		cli_json_khex(&j, "thread", v->st.thread);
		cli_json_kstr(&j, "thread_name", cli_thread_label(&v->names, v->st.thread, th, sizeof(th)));
	}
	if (v->st.irql >= 0)
		cli_json_kint(&j, "irql", v->st.irql);
	else
		cli_json_kstr(&j, "irql", NULL);
	cli_json_key(&j, "locks_held");
	cli_json_array(&j);
	for (i = 0; i < v->st.n_held; i++) {
		const struct replay_held *h = &v->st.held[i];
		cli_json_object(&j);
		cli_json_khex(&j, "lock", h->lock);
		cli_json_kstr(&j, "name", cli_lock_label(&v->names, h->lock, lk, sizeof(lk)));
		cli_json_khex(&j, "thread", h->thread);
		cli_json_kint(&j, "since_event", h->event_id);
		cli_json_close(&j);
	}
	cli_json_close(&j);
	print_events_around(v, context, &j);
	cli_json_close(&j);
	cli_json_end(&j);
}

int cmd_replay_target(struct cli_rec *rec, const char *spec, struct db_event *ev, uint64_t *icount)
{
	struct analysis_report *rep = NULL;
	struct cli_pos pos;
	char *err = NULL;
	uint64_t n;
	int rc;

	memset(ev, 0, sizeof(*ev));
	if (strncmp(spec, "finding:", 8) == 0) {
		if (cli_parse_u64(spec + 8, &n) < 0 || n == 0)
			return cli_error(CLI_USAGE, "finding:N wants a finding number from `krewind check`, not '%s'", spec);
		if (analysis_run(rec->db, &rep, &err) < 0)
			return cli_error_msg(CLI_FAIL, "cannot check the trace", err);
		if (n > rep->n_findings || rep->findings[n - 1].event_id <= 0) {
			rc = cli_error(CLI_USAGE, "%s has %zu findings, none numbered %" PRIu64, rec->rec->name,
				       rep->n_findings, n);
			analysis_report_free(rep);
			return rc;
		}
		pos.is_icount = 0;
		pos.value = (uint64_t)rep->findings[n - 1].event_id;
		analysis_report_free(rep);
	} else if (cli_parse_pos(spec, &pos) < 0) {
		return cli_error(CLI_USAGE, "want an event id, icount:N or finding:N, not '%s'", spec);
	}
	if (pos.is_icount) {
		/* icount_total is exact for runs krewind ended and the plugin's
		 * count (an upper bound) for runs the guest ended; an interrupted
		 * run's may be stale (read while the signal stopped QEMU). */
		if (rec->rec->icount_total && pos.value > rec->rec->icount_total &&
		    !(rec->rec->outcome && strcmp(rec->rec->outcome, "killed") == 0))
			return cli_error(CLI_USAGE, "%s ends at icount %" PRIu64 ": icount %" PRIu64 " is past its end",
					 rec->rec->name, rec->rec->icount_total, pos.value);
		*icount = pos.value;
		return CLI_OK;
	}
	rc = db_event_by_id(rec->db, (int64_t)pos.value, ev, &err);
	if (rc <= 0)
		return rc < 0 ? cli_error_msg(CLI_USAGE, NULL, err)
			      : cli_error(CLI_USAGE, "%s has no event %" PRIu64, rec->rec->name, pos.value);
	*icount = ev->icount;
	return CLI_OK;
}

int cmd_replay_error(int rc, char *err)
{
	if (rc == REPLAY_E_INTERRUPTED) {
		free(err);
		return cli_error(CLI_INTERRUPTED, "interrupted: QEMU stopped");
	}
	return cli_error_msg(rc == REPLAY_E_ARG ? CLI_USAGE : CLI_FAIL, NULL, err);
}

/* Several vCPUs (manifest mode "reexec"): no replay log, the run is
 * re-executed and the plugin holds the machine before the instruction
 * (replay/smp.c). The registers are those of the vCPU that runs it. */
static int replay_smp(struct view *v, struct qemu_guard *g, int json, int context, struct cli_progress *prog)
{
	char *err = NULL;
	int vcpu, rc;

	rc = replay_smp_stop(v->rec.rec, v->icount, g, &v->regs, &vcpu, v->code, &v->have_code, &err);
	cli_progress_end(prog);
	if (rc < 0)
		return cmd_replay_error(rc, err);
	disassemble(v);
	if (json)
		print_json(v, context);
	else
		print_text(v, context);
	if (!json)
		printf("\nre-executed (%d vCPUs): held vCPU %d before instruction %" PRIu64 " of the machine%s\n",
		       v->rec.rec->vcpus, vcpu, v->icount,
		       v->ev.id > 0 && vcpu != v->ev.vcpu ? "; NOT the event's vCPU" : "");
	if (v->ev.id > 0 && (vcpu != v->ev.vcpu || v->ev.pc != v->regs.rip))
		cli_warning("the re-run held vCPU %d at pc %#" PRIx64 "; event %" PRId64 " is on vCPU %u at pc %#" PRIx64,
			    vcpu, v->regs.rip, v->ev.id, v->ev.vcpu, v->ev.pc);
	return CLI_OK;
}

/* Starts a replay session as so says and goes to v's target: lands on the
 * event's own instruction, or stops at the icount. */
static int start_and_go(struct view *v, struct replay_session_opts *so, struct replay_session **s, char **err)
{
	int rc = replay_session_start(v->rec.rec, so, s, err);
	if (rc == 0)
		rc = v->ev.id > 0 && v->ev.kind != DB_TRAP
			     ? replay_session_land(*s, v->trace_icount, v->ev.pc, LAND_WINDOW, &v->icount, err)
			     : replay_session_goto(*s, v->icount, err);
	return rc;
}

int cmd_replay(int argc, char **argv)
{
	struct view v;
	struct cli_args a;
	struct qemu_guard *g = NULL;
	struct replay_session *s = NULL;
	struct replay_session_opts so = { 0 };
	const char *val, *spec = NULL, *to = NULL;
	char *err = NULL;
	uint64_t context = 4, snap_at = 0;
	int opt, json = 0, quiet = 0, rc;
	struct cli_progress *prog = NULL;

	memset(&v, 0, sizeof(v));
	cli_args_init(&a, "replay", argc, argv);
	while ((opt = cli_next_opt(&a, options, &val)) != CLI_OPT_END) {
		if ((rc = cli_common_opt(&a, opt, val, &spec, synopsis, description, options)) >= 0)
			return rc;
		switch (opt) {
		case OPT_TO: to = val; break;
		case OPT_JSON: json = 1; break;
		case OPT_QUIET: quiet = 1; break;
		case OPT_CONTEXT:
			if (cli_parse_u64(val, &context) < 0 || context > 1000)
				return cli_usage_error("replay", "--context wants a number up to 1000, not '%s'", val);
			break;
		}
	}
	if (!spec)
		return cli_usage_error("replay", "no recording given");
	if (!to)
		return cli_usage_error("replay", "--to EVENT|icount:N is required");
	if ((rc = cli_rec_open(spec, &v.rec)) != CLI_OK)
		return rc;
	cli_names_from_db(&v.names, v.rec.db);
	if ((rc = cmd_replay_target(&v.rec, to, &v.ev, &v.icount)) != CLI_OK)
		goto out;
	if ((rc = replay_state_at(v.rec.db, v.icount, v.ev.id, &v.st, &err)) < 0) {
		rc = cli_error_msg(CLI_FAIL, NULL, err);
		goto out;
	}
	if (qemu_guard_begin(&g, &err) < 0) {
		rc = cli_error_msg(CLI_FAIL, NULL, err);
		goto out;
	}
	so.guard = g;
	prog = cli_progress_start("replaying", quiet);
	so.progress = cli_progress_icount;
	so.progress_ctx = prog;
	v.trace_icount = v.icount;
	if (replay_smp_is(v.rec.rec)) {
		rc = replay_smp(&v, g, json, (int)context, prog);
		prog = NULL;
		goto out;
	}
	/* Start from the nearest snapshot taken while recording. QEMU cannot
	 * seek back there: when the landing found its instruction behind its
	 * last step, a second QEMU from the same snapshot goes straight to it. */
	so.start_near = v.icount > LAND_WINDOW ? v.icount - LAND_WINDOW : 0;
	/* a snapshot that does not replay stalls at once */
	so.stall_s = replay_snapshot_nearest(v.rec.rec->dir, so.start_near, &snap_at) ? SNAPSHOT_STALL_S : 0;
	rc = start_and_go(&v, &so, &s, &err);
	/* A QEMU started from a snapshot now and then stands still at once (seen
	 * once on our kernel, beside a loaded host), before or after it answers
	 * QMP: a second one from the same snapshot goes on. When that one stands
	 * still too, the start. */
	for (int tries = 0; rc == REPLAY_E_TIMEOUT && so.stall_s; tries++) {
		if (tries == 1) {
			cli_warning("the snapshot at icount %" PRIu64
				    " does not replay (QEMU 10.0.2); replaying from the start", snap_at);
			so.start_near = 0;
			so.stall_s = 0;
		}
		free(err);
		err = NULL;
		replay_session_end(s);
		s = NULL;
		v.icount = v.trace_icount;
		rc = start_and_go(&v, &so, &s, &err);
	}
	if (rc == REPLAY_E_ARG && s && replay_session_snapshot(s)) {
		free(err);
		err = NULL;
		replay_session_end(s);
		s = NULL;
		if ((rc = replay_session_start(v.rec.rec, &so, &s, &err)) == 0)
			rc = replay_session_goto(s, v.icount, &err);
	}
	if (rc < 0) {
		cli_progress_end(prog);
		prog = NULL;
		rc = cmd_replay_error(rc, err);
		goto out;
	}
	cli_progress_end(prog);
	prog = NULL;
	v.snapshot = replay_session_snapshot(s);
	if ((rc = replay_session_registers(s, &v.regs, &err)) < 0) {
		rc = cli_error_msg(CLI_FAIL, NULL, err);
		goto out;
	}
	v.have_code = replay_session_read(s, v.regs.rip, v.code, sizeof(v.code), NULL) == 0;
	disassemble(&v);
	read_guest_thread(s, &v);
	if (json)
		print_json(&v, (int)context);
	else
		print_text(&v, (int)context);
	/* A trap is delivered between two instructions: at its icount the CPU
	 * still points at the interrupted instruction, the event at the vector. */
	if (v.ev.id > 0 && v.ev.kind == DB_TRAP && v.ev.pc != v.regs.rip && !json)
		printf("\nnote: trap %#" PRIx64 " is delivered before the instruction at pc; its handler starts at %#" PRIx64
		       " (stepi enters it)\n", (uint64_t)v.ev.a, v.ev.pc);
	else if (v.icount != v.trace_icount && !json)
		printf("\nnote: the trace puts event %" PRId64 " at icount %" PRIu64 "; QEMU executes its instruction at icount "
		       "%" PRIu64 " (drift %+" PRId64 ": code rewritten while it ran), so the replay stopped there\n",
		       v.ev.id, v.trace_icount, v.icount, (int64_t)(v.icount - v.trace_icount));
	else if (v.ev.id > 0 && v.ev.pc != v.regs.rip)
		cli_warning("QEMU stopped at pc %#" PRIx64 " but event %" PRId64 " was at pc %#" PRIx64
			    ": the trace's icount and QEMU's disagree here",
			    v.regs.rip, v.ev.id, v.ev.pc);
	rc = CLI_OK;
out:
	cli_progress_end(prog);
	replay_session_end(s);
	qemu_guard_end(g);
	replay_state_free(&v.st);
	cli_rec_close(&v.rec);
	return rc;
}
