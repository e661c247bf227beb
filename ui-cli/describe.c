/*
 * describe.c - one line of plain words per trace event, as `krewind events`
 * and `krewind check` print them: "acquire ScenarioLockA (irql 2, spun 37)",
 * "irql 0 -> 2", "trap 0x0e #PF (error 0x2)", "switch idle -> worker1";
 * and the execution state the tracer recorded with it (schema 2), for
 * `krewind events`: "[hardirq, IF off, irqsave, try, preempt 1, from foo+0x1c]".
 */
#include <inttypes.h>
#include <string.h>

#include "ui-cli/cli.h"

static const char *exception_name(int64_t vector)
{
	static const char *const names[] = {
		"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", NULL, "#TS",
		"#NP", "#SS", "#GP", "#PF", NULL, "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
	};

	if (vector < 0 || vector >= (int64_t)(sizeof(names) / sizeof(names[0])))
		return NULL;
	return names[vector];
}

char *cli_thread_label(const struct cli_names *names, uint64_t addr, char *buf, size_t size)
{
	const char *n;

	if (addr == 0) {
		snprintf(buf, size, "-");
		return buf;
	}
	n = names && names->thread ? names->thread(names->ctx, addr) : NULL;
	if (n && *n)
		snprintf(buf, size, "%s", n);
	else
		snprintf(buf, size, "0x%" PRIx64, addr);
	return buf;
}

char *cli_lock_label(const struct cli_names *names, uint64_t addr, char *buf, size_t size)
{
	const char *n;

	if (addr == 0) {
		snprintf(buf, size, "-");
		return buf;
	}
	n = names && names->lock ? names->lock(names->ctx, addr) : NULL;
	if (n && *n)
		snprintf(buf, size, "%s", n);
	else
		snprintf(buf, size, "0x%" PRIx64, addr);
	return buf;
}

static char *symbol(const struct cli_names *names, uint64_t addr, char *buf, size_t size)
{
	if (names && names->symbol)
		return names->symbol(names->ctx, addr, buf, size);
	snprintf(buf, size, "0x%" PRIx64, addr);
	return buf;
}

/* A wait's timeout as the probe reads it (docs/probe.md): INT64_MIN for none
 * (a NULL PLARGE_INTEGER: wait forever), negative = relative in 100 ns units,
 * else an absolute time in 100 ns units. */
static const char *describe_timeout(int64_t t, char *buf, size_t size)
{
	uint64_t us;

	if (t == INT64_MIN) {
		snprintf(buf, size, "no timeout");
	} else if (t == 0) {
		snprintf(buf, size, "timeout 0");
	} else if (t < 0) {
		us = (uint64_t)-t / 10;
		if (us % 1000 == 0)
			snprintf(buf, size, "timeout %" PRIu64 " ms", us / 1000);
		else
			snprintf(buf, size, "timeout %" PRIu64 " us", us);
	} else {
		snprintf(buf, size, "timeout at %" PRId64, t);
	}
	return buf;
}

static void describe_trap(const struct db_event *ev, char *buf, size_t size)
{
	const char *exc = exception_name(ev->a);
	int n;

	n = snprintf(buf, size, "trap 0x%02" PRIx64, (uint64_t)ev->a);
	if (exc && n >= 0 && (size_t)n < size)
		n += snprintf(buf + n, size - n, " %s", exc);
	if (ev->b != 0 && n >= 0 && (size_t)n < size)
		snprintf(buf + n, size - n, " (error 0x%" PRIx64 ")", (uint64_t)ev->b);
}

static void describe_marker(const struct db_event *ev, const char *text, char *buf, size_t size)
{
	const char *t = text ? text : "";

	switch (ev->a) {
	case DB_MARK_SCENARIO:
		snprintf(buf, size, "scenario %s", t);
		break;
	case DB_MARK_RESULT:
		snprintf(buf, size, "self-test: %" PRIu64 " passed, %" PRId64 " failed", ev->obj, ev->b);
		break;
	case DB_MARK_SERIAL:
		snprintf(buf, size, "serial: %s", t);
		break;
	case DB_MARK_LOST:
		snprintf(buf, size, "LOST %" PRIu64 " events (trace queue full) from icount %" PRId64 " to %" PRIu64,
			 ev->obj, ev->b, ev->icount);
		break;
	default:
		snprintf(buf, size, "marker: %s", t);
		break;
	}
}

static int is_lock_op(int kind)
{
	return kind == DB_LOCK_TRY || kind == DB_LOCK_ACQ || kind == DB_LOCK_REL || kind == DB_LOCK_FAIL ||
	       kind == DB_LOCK_INIT || kind == DB_MUTEX_ACQ || kind == DB_MUTEX_REL;
}

char *cli_describe_state(const struct db_event *ev, const struct cli_names *names, char *buf, size_t size)
{
	static const char *const ctx[] = { "process", "hardirq", "softirq", "nmi" };
	static const char *const flavor[] = { "spin", "read", "write", "mutex", "rwsem-read", "rwsem-write", "sem" };
	static const char *const irq[] = { "none", "irqsave", "irq", "bh", "raise-dispatch", "at-dispatch" };
	unsigned fl = DB_LOCKOP_FLAVOR(ev->lockop), li = DB_LOCKOP_IRQ(ev->lockop);
	size_t n = 0;
	char s[160];

#define ADD(...) (n < size ? (void)(n += (size_t)snprintf(buf + n, size - n, __VA_ARGS__)) : (void)0)
	if (!size)
		return buf;
	buf[0] = '\0';
	if (!ev->ctx && !ev->flags && !ev->lockop && !ev->caller)
		return buf;
	ADD("[%s, IF %s", ev->ctx < 4 ? ctx[ev->ctx] : "?", ev->flags & DB_F_IF ? "on" : "off");
	if (is_lock_op(ev->kind) && fl != DB_LF_SPIN)
		ADD(", %s", fl < 7 ? flavor[fl] : "?");
	if (is_lock_op(ev->kind) && li != DB_LI_NONE)
		ADD(", %s", li < 6 ? irq[li] : "?");
	if (is_lock_op(ev->kind) && DB_LOCKOP_SUBCLASS(ev->lockop))
		ADD(", subclass %u", DB_LOCKOP_SUBCLASS(ev->lockop));
	if (ev->flags & DB_F_TRY)
		ADD(", try");
	if (ev->flags & DB_F_USER)
		ADD(", from user");
	if (ev->flags & DB_F_SOFT)
		ADD(", software");
	if (ev->flags & DB_F_NOFRAME)
		ADD(", no frame");
	if (ev->flags & DB_F_DEFER_OFF)
		ADD(", bh off");
	if (ev->preempt >= 0)
		ADD(", preempt %d", ev->preempt);
	if (ev->caller)
		ADD(", from %s", symbol(names, ev->caller, s, sizeof(s)));
	ADD("]");
#undef ADD
	return buf;
}

/* " (irql N)" for a lock event, "" on a kernel that keeps no IRQL. */
static const char *irql_of(const struct cli_names *names, const struct db_event *ev, char *buf, size_t size)
{
	if (names && names->no_irql && ev->a <= 0)
		return "";
	snprintf(buf, size, " (irql %" PRId64 ")", ev->a);
	return buf;
}

/* A switch's thread named as it was then: the outgoing one is the event's
 * own (its tid), the incoming one the thread that runs at that address next. */
static const char *switch_label(const struct cli_names *names, const struct db_event *ev, uint64_t addr, char *buf,
				size_t size)
{
	const char *n = NULL;

	if (names && names->thread_at && addr)
		n = names->thread_at(names->ctx, addr, addr == ev->thread ? ev->tid : -1, ev->id);
	if (!n || !*n)
		return cli_thread_label(names, addr, buf, size);
	snprintf(buf, size, "%s", n);
	return buf;
}

char *cli_describe_event(const struct db_event *ev, const char *text, const struct cli_names *names, char *buf,
			 size_t size)
{
	char o[128], t2[128], s[160];

	if (size == 0)
		return buf;
	switch (ev->kind) {
	case DB_TRAP:
		describe_trap(ev, buf, size);
		break;
	case DB_IRET:
		if (ev->flags & DB_F_NOFRAME)
			snprintf(buf, size, "iret to self");
		else if (ev->a < 0)
			snprintf(buf, size, "iret");
		else
			snprintf(buf, size, "iret from 0x%02" PRIx64, (uint64_t)ev->a);
		break;
	case DB_IRQL:
		snprintf(buf, size, "irql %" PRId64 " -> %" PRId64, ev->a, ev->b);
		break;
	case DB_LOCK_TRY:
		snprintf(buf, size, "try %s%s", cli_lock_label(names, ev->obj, o, sizeof(o)), irql_of(names, ev, t2, sizeof(t2)));
		break;
	case DB_LOCK_ACQ:
		if (names && names->no_irql && ev->a <= 0)
			snprintf(buf, size, "acquire %s (spun %" PRId64 ")", cli_lock_label(names, ev->obj, o, sizeof(o)),
				 ev->b);
		else
			snprintf(buf, size, "acquire %s (irql %" PRId64 ", spun %" PRId64 ")",
				 cli_lock_label(names, ev->obj, o, sizeof(o)), ev->a, ev->b);
		break;
	case DB_LOCK_REL:
		snprintf(buf, size, "release %s%s", cli_lock_label(names, ev->obj, o, sizeof(o)),
			 irql_of(names, ev, t2, sizeof(t2)));
		break;
	case DB_WAIT:
		if (names && names->no_irql && ev->a <= 0)
			snprintf(buf, size, "wait %s (%s)", cli_lock_label(names, ev->obj, o, sizeof(o)),
				 describe_timeout(ev->b, t2, sizeof(t2)));
		else
			snprintf(buf, size, "wait %s (irql %" PRId64 ", %s)", cli_lock_label(names, ev->obj, o, sizeof(o)),
				 ev->a, describe_timeout(ev->b, t2, sizeof(t2)));
		break;
	case DB_WAIT_END:
		snprintf(buf, size, "wait done %s (status 0x%" PRIx64 ")", cli_lock_label(names, ev->obj, o, sizeof(o)),
			 (uint64_t)ev->a);
		break;
	case DB_MUTEX_ACQ:
		snprintf(buf, size, "own mutex %s%s", cli_lock_label(names, ev->obj, o, sizeof(o)),
			 irql_of(names, ev, t2, sizeof(t2)));
		break;
	case DB_MUTEX_REL:
		snprintf(buf, size, "release mutex %s%s", cli_lock_label(names, ev->obj, o, sizeof(o)),
			 irql_of(names, ev, t2, sizeof(t2)));
		break;
	case DB_SIGNAL:
		snprintf(buf, size, "signal %s", cli_lock_label(names, ev->obj, o, sizeof(o)));
		break;
	case DB_SWITCH:
		snprintf(buf, size, "switch %s -> %s", switch_label(names, ev, (uint64_t)ev->a, o, sizeof(o)),
			 switch_label(names, ev, (uint64_t)ev->b, t2, sizeof(t2)));
		break;
	case DB_EOI:
		snprintf(buf, size, "eoi (%s)", ev->a == 1 ? "x2apic" : ev->a == 2 ? "xapic" : "?");
		break;
	case DB_MARKER:
		describe_marker(ev, text, buf, size);
		break;
	case DB_BUGCHECK:
		snprintf(buf, size, "bugcheck 0x%" PRIx64 " (0x%" PRIx64 ")", (uint64_t)ev->a, (uint64_t)ev->b);
		break;
	case DB_LOCK_INIT:
		snprintf(buf, size, "init %s (from %s)", cli_lock_label(names, ev->obj, o, sizeof(o)),
			 symbol(names, (uint64_t)ev->a, s, sizeof(s)));
		break;
	case DB_LOCK_FAIL:
		snprintf(buf, size, "trylock failed %s", cli_lock_label(names, ev->obj, o, sizeof(o)));
		break;
	case DB_DEFER_QUEUE:
		snprintf(buf, size, "queue deferred %s", symbol(names, ev->obj, s, sizeof(s)));
		break;
	case DB_DEFER_RUN:
		snprintf(buf, size, "run deferred %s", ev->obj ? symbol(names, ev->obj, s, sizeof(s)) : "work");
		break;
	case DB_SLEEP:
		snprintf(buf, size, "sleep (%s)", describe_timeout(ev->b, t2, sizeof(t2)));
		break;
	case DB_SYSCALL:
		if (ev->a < 0)
			snprintf(buf, size, "syscall exit");
		else
			snprintf(buf, size, "syscall %" PRId64, ev->a);
		break;
	default:
		snprintf(buf, size, "kind %u a=%" PRId64 " b=%" PRId64, ev->kind, ev->a, ev->b);
		break;
	}
	return buf;
}
