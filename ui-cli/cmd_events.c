/*
 * cmd_events.c - `krewind events REC`: the trace's events, filtered, one per
 * line with the thread's name, the pc as symbol+offset and a description in
 * words. Streams: memory stays constant whatever the trace size (--around
 * keeps only its context).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "replay/replay.h"
#include "ui-cli/cli.h"

static const char synopsis[] =
	"krewind events REC [--kind K[,K...]] [--thread T] [--lock L] [--from POS] [--to POS] [--limit N] [--json]\n"
	"krewind events REC --around ID [--context N] [--kind K[,K...]] [--thread T] [--lock L] [--json]";
static const char description[] =
	"Prints the events of a recording in the order they happened: id, icount\n"
	"(instructions retired before the event), cpu, thread, kind, pc as symbol+offset\n"
	"and what happened. POS is an event id or icount:N. T and L are a name or an\n"
	"address; a thread's name picks that thread even where its task struct was\n"
	"reused by others. Kinds: trap iret irql lock_try lock_acq lock_fail lock_rel\n"
	"wait wait_end mutex_acq mutex_rel signal switch eoi marker bugcheck lock_init\n"
	"defer_queue defer_run sleep syscall. On a kernel that keeps no IRQL in CR8\n"
	"(no irql events: Linux) lock events do not print one.";

enum { OPT_JSON = 1, OPT_KIND, OPT_THREAD, OPT_LOCK, OPT_FROM, OPT_TO, OPT_AROUND, OPT_CONTEXT, OPT_LIMIT };
static const struct cli_option options[] = {
	{OPT_KIND, "kind", 'k', "K[,K...]", "only these kinds of events"},
	{OPT_THREAD, "thread", 't', "T", "only events of thread T (name or address)"},
	{OPT_LOCK, "lock", 'l', "L", "only events on lock or object L (name, class or address)"},
	{OPT_FROM, "from", 0, "POS", "start at event id POS or at icount:N"},
	{OPT_TO, "to", 0, "POS", "stop after event id POS or at icount:N"},
	{OPT_AROUND, "around", 'a', "ID", "the events just before and after event ID"},
	{OPT_CONTEXT, "context", 'C', "N", "with --around: N events each side (default 5)"},
	{OPT_LIMIT, "limit", 'n', "N", "print at most N events"},
	{OPT_JSON, "json", 0, NULL, "print JSON"},
	{0},
};

#define DEFAULT_CONTEXT 5
#define MAX_CONTEXT 100000

struct printer {
	struct db_reader *db;
	struct cli_names names;
	struct cli_json j;
	int json, color;
	int64_t mark_id; /* --around: the event to point at */
	int64_t printed;
};

static const char *kind_color(int kind)
{
	switch (kind) {
	case DB_TRAP:
	case DB_IRET: return "\033[36m";
	case DB_EOI:
	case DB_SWITCH: return "\033[33m";
	case DB_LOCK_TRY:
	case DB_LOCK_ACQ:
	case DB_LOCK_REL:
	case DB_MUTEX_ACQ:
	case DB_MUTEX_REL: return "\033[32m";
	case DB_BUGCHECK: return "\033[1;31m";
	default: return "";
	}
}

static void print_header(struct printer *p)
{
	if (p->json) {
		cli_json_init(&p->j, stdout);
		cli_json_array(&p->j);
		return;
	}
	printf("  %8s %14s %3s %-16s %-9s %-32s %s\n", "ID", "ICOUNT", "CPU", "THREAD", "KIND", "PC",
	       "DESCRIPTION");
}

/* The kinds whose a or b is a guest address (db/db.h), written as "0x..." in
 * JSON like thread, pc and obj; the other a/b values are numbers. */
static int a_is_address(int kind)
{
	return kind == DB_SWITCH || kind == DB_LOCK_INIT;
}

static int b_is_address(int kind)
{
	return kind == DB_SWITCH || kind == DB_MUTEX_ACQ || kind == DB_BUGCHECK;
}

/* The schema 2 fields, always present in JSON (null when not known). */
static void print_state_json(struct printer *p, const struct db_event *ev)
{
	static const char *const ctx[] = { "process", "hardirq", "softirq", "nmi" };
	static const char *const flavor[] = { "spin", "read", "write", "mutex", "rwsem-read", "rwsem-write", "sem" };
	static const char *const irq[] = { "none", "save", "irq", "bh", "raise-dispatch", "at-dispatch" };
	unsigned fl = DB_LOCKOP_FLAVOR(ev->lockop), li = DB_LOCKOP_IRQ(ev->lockop);

	cli_json_kstr(&p->j, "ctx", ev->ctx < 4 ? ctx[ev->ctx] : "?");
	cli_json_key(&p->j, "if");
	cli_json_bool(&p->j, (ev->flags & DB_F_IF) != 0);
	cli_json_kint(&p->j, "flags", ev->flags);
	if (ev->kind == DB_LOCK_TRY || ev->kind == DB_LOCK_ACQ || ev->kind == DB_LOCK_REL || ev->kind == DB_LOCK_FAIL ||
	    ev->kind == DB_LOCK_INIT || ev->kind == DB_MUTEX_ACQ || ev->kind == DB_MUTEX_REL) {
		cli_json_kstr(&p->j, "flavor", fl < 7 ? flavor[fl] : "?");
		cli_json_kstr(&p->j, "irq", li < 6 ? irq[li] : "?");
		cli_json_kint(&p->j, "subclass", DB_LOCKOP_SUBCLASS(ev->lockop));
	}
	if (ev->preempt >= 0)
		cli_json_kint(&p->j, "preempt", ev->preempt);
	else
		cli_json_kstr(&p->j, "preempt", NULL);
	if (ev->tid >= 0)
		cli_json_kint(&p->j, "tid", ev->tid);
	else
		cli_json_kstr(&p->j, "tid", NULL);
	if (ev->caller) {
		char sym[160];

		cli_json_khex(&p->j, "caller", ev->caller);
		cli_json_kstr(&p->j, "caller_symbol", db_symbolize(p->db, ev->caller, sym, sizeof(sym)));
	} else {
		cli_json_kstr(&p->j, "caller", NULL);
	}
}

static void print_event(struct printer *p, const struct db_event *ev, const char *text)
{
	char desc[512], sym[160], thread[64], obj[128], state[256];
	const char *kind = db_kind_name(ev->kind);
	const char *col;

	cli_describe_event(ev, text, &p->names, desc, sizeof(desc));
	cli_describe_state(ev, &p->names, state, sizeof(state));
	db_symbolize(p->db, ev->pc, sym, sizeof(sym));
	/* the thread at that tid: a reused thread object is several threads */
	if (ev->thread && ev->tid >= 0 && *db_thread_name_tid(p->db, ev->thread, ev->tid))
		snprintf(thread, sizeof(thread), "%s", db_thread_name_tid(p->db, ev->thread, ev->tid));
	else
		cli_thread_label(&p->names, ev->thread, thread, sizeof(thread));
	p->printed++;
	if (p->json) {
		cli_json_object(&p->j);
		cli_json_kint(&p->j, "id", ev->id);
		cli_json_kuint(&p->j, "icount", ev->icount);
		cli_json_kint(&p->j, "cpu", ev->vcpu);
		cli_json_khex(&p->j, "thread", ev->thread);
		cli_json_kstr(&p->j, "thread_name", ev->thread ? db_thread_name_tid(p->db, ev->thread, ev->tid) : NULL);
		cli_json_kstr(&p->j, "kind", kind);
		cli_json_khex(&p->j, "pc", ev->pc);
		cli_json_kstr(&p->j, "symbol", sym);
		cli_json_khex(&p->j, "obj", ev->obj);
		if (ev->obj != 0 && ev->kind >= DB_LOCK_TRY && ev->kind <= DB_SIGNAL) {
			cli_json_kstr(&p->j, "obj_name", cli_lock_label(&p->names, ev->obj, obj, sizeof(obj)));
		} else if (ev->obj != 0 && ev->kind == DB_LOCK_INIT) {
			cli_json_kstr(&p->j, "obj_name", cli_lock_label(&p->names, ev->obj, obj, sizeof(obj)));
		}
		if (a_is_address(ev->kind))
			cli_json_khex(&p->j, "a", (uint64_t)ev->a);
		else
			cli_json_kint(&p->j, "a", ev->a);
		if (b_is_address(ev->kind))
			cli_json_khex(&p->j, "b", (uint64_t)ev->b);
		else
			cli_json_kint(&p->j, "b", ev->b);
		print_state_json(p, ev);
		if (text)
			cli_json_kstr(&p->j, "text", text);
		cli_json_kstr(&p->j, "description", desc);
		if (p->mark_id == ev->id) {
			cli_json_key(&p->j, "at");
			cli_json_bool(&p->j, 1);
		}
		cli_json_close(&p->j);
		return;
	}
	col = p->color ? kind_color(ev->kind) : "";
	printf("%c %8" PRId64 " %14" PRIu64 " %3u %-16s %s%-9s%s %-32s %s%s%s\n", p->mark_id == ev->id ? '>' : ' ',
	       ev->id, ev->icount, ev->vcpu, thread, col, kind ? kind : "?", *col ? "\033[0m" : "", sym, desc,
	       *state ? " " : "", state);
}

static int finish(struct printer *p)
{
	if (p->json)
		cli_json_close(&p->j);
	if (p->json && cli_json_end(&p->j) != 0)
		return CLI_FAIL;
	return CLI_OK;
}

static int cursor_error(int rc, char *err)
{
	return cli_error_msg(rc == DB_E_CORRUPT || rc == DB_E_SCHEMA || rc == DB_E_ARG ? CLI_USAGE : CLI_FAIL,
			     "events", err ? err : strdup("reading the trace failed"));
}

/* Prints every event that f selects. */
static int stream(struct printer *p, const struct db_filter *f)
{
	struct db_cursor *c = NULL;
	struct db_event ev;
	const char *text;
	char *err = NULL;
	int rc;

	rc = db_cursor_open(p->db, f, &c, &err);
	if (rc != DB_OK)
		return cursor_error(rc, err);
	while ((rc = db_cursor_next(c, &ev, &text)) == 1)
		print_event(p, &ev, text);
	db_cursor_close(c);
	if (rc < 0)
		return cursor_error(rc, strdup("reading the trace's events failed"));
	return CLI_OK;
}

struct saved {
	struct db_event ev;
	char *text;
};

/* --around: up to context events before id (read newest first, printed in
 * order), then id itself if it passes the filter, then up to context events
 * after it. */
static int around(struct printer *p, const struct db_filter *base, int64_t id, int64_t context)
{
	struct db_filter f = *base;
	struct db_cursor *c = NULL;
	struct saved *before;
	struct db_event ev;
	const char *text;
	char *err = NULL;
	int64_t n = 0, i, after;
	int rc;

	before = calloc(context > 0 ? (size_t)context : 1, sizeof(*before));
	if (before == NULL)
		return cli_error(CLI_FAIL, "events: out of memory");
	f.to_id = id - 1;
	f.descending = 1;
	f.limit = context;
	rc = CLI_OK;
	if (context > 0 && id > 1) {
		rc = db_cursor_open(p->db, &f, &c, &err);
		if (rc != DB_OK) {
			rc = cursor_error(rc, err);
			goto out;
		}
		while (n < context && (rc = db_cursor_next(c, &before[n].ev, &text)) == 1) {
			before[n].text = text ? strdup(text) : NULL;
			n++;
		}
		db_cursor_close(c);
		if (rc < 0) {
			rc = cursor_error(rc, strdup("reading the trace's events failed"));
			goto out;
		}
	}
	for (i = n - 1; i >= 0; i--)
		print_event(p, &before[i].ev, before[i].text);
	/* The event itself if it passes the filter, then context more. */
	f = *base;
	f.from_id = id;
	rc = db_cursor_open(p->db, &f, &c, &err);
	if (rc != DB_OK) {
		rc = cursor_error(rc, err);
		goto out;
	}
	after = 0;
	while (after < context && (rc = db_cursor_next(c, &ev, &text)) == 1) {
		if (ev.id != id)
			after++;
		print_event(p, &ev, text);
	}
	db_cursor_close(c);
	rc = rc < 0 ? cursor_error(rc, strdup("reading the trace's events failed")) : CLI_OK;
out:
	for (i = 0; i < n; i++)
		free(before[i].text);
	free(before);
	return rc;
}

static int parse_kinds(const char *list, uint32_t *mask)
{
	char *copy = strdup(list), *tok, *save = NULL;
	int k, rc = CLI_OK;

	if (copy == NULL)
		return cli_error(CLI_FAIL, "events: out of memory");
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		k = db_kind_from_name(tok);
		if (k <= 0) {
			rc = cli_usage_error("events", "unknown event kind '%s'", tok);
			break;
		}
		*mask |= 1u << k;
	}
	if (rc == CLI_OK && *mask == 0)
		rc = cli_usage_error("events", "--kind needs at least one kind");
	free(copy);
	return rc;
}

/* Resolves a thread given by name or address; a name also picks its tid
 * (*by_tid) when the address was reused by other threads. */
static int resolve_thread(struct db_reader *db, const char *s, uint64_t *out, int32_t *tid, uint8_t *by_tid)
{
	const struct db_thread_info *t;
	size_t n, i, hits = 0;
	char *err = NULL;
	int rc;

	rc = db_threads(db, &t, &n, &err);
	if (rc != DB_OK)
		return cursor_error(rc, err);
	for (i = 0; i < n; i++)
		if (t[i].name && strcmp(t[i].name, s) == 0) {
			*out = t[i].addr;
			*tid = t[i].tid;
			hits++;
		}
	if (hits == 1) {
		*by_tid = *tid >= 0;
		return CLI_OK;
	}
	if (hits > 1)
		return cli_error(CLI_USAGE, "events: %zu threads are named '%s'; give the address instead", hits, s);
	if (cli_parse_u64(s, out) == 0 && *out != 0)
		return CLI_OK;
	return cli_error(CLI_USAGE, "events: no thread named '%s' in this trace (see 'krewind info')", s);
}

/* Resolves a lock or object given by name, class or address. */
static int resolve_lock(struct db_reader *db, const char *s, uint64_t *out)
{
	const struct db_lock_info *l;
	size_t n, i, hits = 0;
	char *err = NULL;
	int rc, pass;

	rc = db_locks(db, &l, &n, &err);
	if (rc != DB_OK)
		return cursor_error(rc, err);
	for (pass = 0; pass < 2 && hits == 0; pass++)
		for (i = 0; i < n; i++) {
			const char *name = pass == 0 ? l[i].name : l[i].class_name;

			if (name && strcmp(name, s) == 0) {
				*out = l[i].addr;
				hits++;
			}
		}
	if (hits == 1)
		return CLI_OK;
	if (hits > 1)
		return cli_error(CLI_USAGE, "events: %zu locks are named '%s'; give the address instead", hits, s);
	if (cli_parse_u64(s, out) == 0 && *out != 0)
		return CLI_OK;
	return cli_error(CLI_USAGE, "events: no lock or object named '%s' in this trace (see 'krewind info')", s);
}

static int set_pos(const char *opt, const char *v, struct cli_pos *pos, int *set)
{
	if (cli_parse_pos(v, pos) != 0)
		return cli_usage_error("events", "--%s wants an event id or icount:N, not '%s'", opt, v);
	*set = 1;
	return CLI_OK;
}

/* The icount of pos: its value for icount:N, the event's for an id (an id
 * not in the trace: the error is printed, CLI_USAGE). */
static int pos_icount(struct db_reader *db, const struct cli_pos *pos, uint64_t *icount)
{
	struct db_event ev;
	char *err = NULL;
	int rc;

	if (pos->is_icount) {
		*icount = pos->value;
		return CLI_OK;
	}
	rc = db_event_by_id(db, (int64_t)pos->value, &ev, &err);
	if (rc < 0)
		return cursor_error(rc, err);
	if (rc == 0)
		return cli_error(CLI_USAGE, "events: no event %" PRIu64 " in this trace", pos->value);
	*icount = ev.icount;
	return CLI_OK;
}

/* --from after --to is a mistake, not an empty answer. Positions of one kind
 * compare at once; an id against an icount needs the event's icount. */
static int check_range(struct db_reader *db, const struct cli_pos *from, const struct cli_pos *to)
{
	uint64_t a, b;
	int rc;

	if (from->is_icount == to->is_icount) {
		if (from->value <= to->value)
			return CLI_OK;
	} else {
		if ((rc = pos_icount(db, from, &a)) != CLI_OK || (rc = pos_icount(db, to, &b)) != CLI_OK)
			return rc;
		if (a <= b)
			return CLI_OK;
	}
	return cli_usage_error("events", "--from %s%" PRIu64 " comes after --to %s%" PRIu64 " (an empty range)",
			       from->is_icount ? "icount:" : "", from->value, to->is_icount ? "icount:" : "", to->value);
}

int cmd_events(int argc, char **argv)
{
	struct cli_args a;
	struct db_filter f;
	struct printer p;
	struct cli_rec r;
	struct cli_pos from, to;
	struct db_event ev;
	const char *v, *spec = NULL, *thread = NULL, *lock = NULL;
	uint64_t around_id = 0, context = DEFAULT_CONTEXT, limit = 0;
	int json = 0, opt, rc, has_from = 0, has_to = 0, has_around = 0, has_context = 0, has_limit = 0;
	char *err = NULL;

	memset(&f, 0, sizeof(f));
	cli_args_init(&a, "events", argc, argv);
	while ((opt = cli_next_opt(&a, options, &v)) != CLI_OPT_END) {
		if ((rc = cli_common_opt(&a, opt, v, &spec, synopsis, description, options)) >= 0)
			return rc;
		rc = CLI_OK;
		switch (opt) {
		case OPT_JSON: json = 1; break;
		case OPT_KIND: rc = parse_kinds(v, &f.kinds); break;
		case OPT_THREAD: thread = v; break;
		case OPT_LOCK: lock = v; break;
		case OPT_FROM: rc = set_pos("from", v, &from, &has_from); break;
		case OPT_TO: rc = set_pos("to", v, &to, &has_to); break;
		case OPT_AROUND:
			if (cli_parse_u64(v, &around_id) != 0 || around_id == 0 || around_id > INT64_MAX)
				return cli_usage_error("events", "--around wants an event id, not '%s'", v);
			has_around = 1;
			break;
		case OPT_CONTEXT:
			if (cli_parse_u64(v, &context) != 0 || context > MAX_CONTEXT)
				return cli_usage_error("events", "--context wants a number up to %d, not '%s'",
						       MAX_CONTEXT, v);
			has_context = 1;
			break;
		case OPT_LIMIT:
			if (cli_parse_u64(v, &limit) != 0 || limit == 0 || limit > INT64_MAX)
				return cli_usage_error("events", "--limit wants a positive number, not '%s'", v);
			has_limit = 1;
			break;
		}
		if (rc != CLI_OK)
			return rc;
	}
	if (spec == NULL)
		return cli_usage_error("events", "missing the recording (REC)");
	if (has_around && (has_from || has_to || has_limit))
		return cli_usage_error("events", "--around cannot be combined with --from, --to or --limit");
	if (has_context && !has_around)
		return cli_usage_error("events", "--context only goes with --around");
	if (has_from && has_to && from.is_icount == to.is_icount && (rc = check_range(NULL, &from, &to)) != CLI_OK)
		return rc;
	if (has_from) {
		if (from.is_icount)
			f.from_icount = from.value;
		else
			f.from_id = (int64_t)from.value;
	}
	if (has_to) {
		if (to.is_icount)
			f.to_icount = to.value;
		else
			f.to_id = (int64_t)to.value;
	}
	f.limit = (int64_t)limit;

	rc = cli_rec_open(spec, &r);
	if (rc != CLI_OK)
		return rc;
	if (has_from && has_to && from.is_icount != to.is_icount && (rc = check_range(r.db, &from, &to)) != CLI_OK)
		goto out;
	if (thread && (rc = resolve_thread(r.db, thread, &f.thread, &f.tid, &f.by_tid)) != CLI_OK)
		goto out;
	if (lock && (rc = resolve_lock(r.db, lock, &f.obj)) != CLI_OK)
		goto out;
	if (has_around) {
		rc = db_event_by_id(r.db, (int64_t)around_id, &ev, &err);
		if (rc < 0) {
			rc = cursor_error(rc, err);
			goto out;
		}
		if (rc == 0) {
			rc = cli_error(CLI_USAGE, "events: no event %" PRIu64 " in %s", around_id, r.rec->db_path);
			goto out;
		}
	}
	memset(&p, 0, sizeof(p));
	p.db = r.db;
	p.json = json;
	p.color = !json && cli_use_color(stdout);
	p.mark_id = has_around ? (int64_t)around_id : 0;
	cli_names_from_db(&p.names, r.db);
	print_header(&p);
	if (has_around)
		rc = around(&p, &f, (int64_t)around_id, (int64_t)context);
	else
		rc = stream(&p, &f);
	if (rc == CLI_OK)
		rc = finish(&p);
out:
	cli_rec_close(&r);
	return rc;
}
