/*
 * test_db.c - the trace database: what the writer stores the reader gives
 * back, field by field; names, classes, symbols, metadata; every filter; the
 * refusals on bad files and bad SQL; concurrent producers; a reader following
 * a trace being written.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "db/db.h"
#include "db/internal.h"

#define KADDR(off) (0xffffffff80000000ULL + (off))

struct fx {
	char dir[64];
	char path[128];
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_db.XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	snprintf(fx->path, sizeof(fx->path), "%s/trace.db", fx->dir);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	if (system(cmd) != 0)
		return -1;
	free(fx);
	return 0;
}

static struct db_event ev_make(int kind, uint64_t icount, uint64_t thread, uint64_t obj, int64_t a, int64_t b)
{
	struct db_event ev = { 0 };

	ev.kind = (uint8_t)kind;
	ev.icount = icount;
	ev.pc = KADDR(0x1000 + icount);
	ev.thread = thread;
	ev.obj = obj;
	ev.a = a;
	ev.b = b;
	return ev;
}

static struct db_writer *open_writer(const char *path)
{
	struct db_writer *w = NULL;
	char *err = NULL;

	assert_int_equal(db_writer_open(path, NULL, NULL, &w, &err), DB_OK);
	assert_null(err);
	return w;
}

static void close_writer(struct db_writer *w)
{
	char *err = NULL;

	assert_int_equal(db_writer_close(w, &err), DB_OK);
	assert_null(err);
}

static struct db_reader *open_reader(const char *path)
{
	struct db_reader *r = NULL;
	char *err = NULL;

	assert_int_equal(db_reader_open(path, &r, &err), DB_OK);
	assert_null(err);
	return r;
}

/* Writes n events: kinds cycling over the 16 kinds of schema 1 (the counts
 * below are worked out for 16), two vCPUs, three threads, four locks;
 * icount = 10 * i on each vCPU. */
static void write_mix(const char *path, int n)
{
	struct db_writer *w = open_writer(path);

	for (int i = 0; i < n; i++) {
		int kind = 1 + i % 16;
		struct db_event ev = ev_make(kind, 10 * (uint64_t)(i / 2), KADDR(0x200000 + (i % 3) * 0x100),
					     db_kind_obj_is_lock(kind) ? KADDR(0x300000 + (i % 4) * 0x40) : 0,
					     i, -i);
		ev.vcpu = (uint16_t)(i % 2);
		assert_int_equal(db_writer_push(w, &ev), DB_OK);
	}
	close_writer(w);
}

/* Counts the events a filter selects, checking they come in id order. */
static int64_t count_filter(struct db_reader *r, const struct db_filter *f, int64_t *first_id)
{
	struct db_cursor *c = NULL;
	struct db_event ev;
	char *err = NULL;
	int64_t n = 0, prev = 0;
	int rc;

	assert_int_equal(db_cursor_open(r, f, &c, &err), DB_OK);
	while ((rc = db_cursor_next(c, &ev, NULL)) == 1) {
		if (n == 0 && first_id)
			*first_id = ev.id;
		if (n > 0) {
			if (f->descending)
				assert_true(ev.id < prev);
			else
				assert_true(ev.id > prev);
		}
		prev = ev.id;
		n++;
	}
	assert_int_equal(rc, 0);
	db_cursor_close(c);
	return n;
}

/* ------------------------------------------------------------ round trip */

static void test_kind_names_round_trip(void **state)
{
	(void)state;
	for (int k = 1; k <= DB_KIND_MAX; k++) {
		assert_non_null(db_kind_name(k));
		assert_int_equal(db_kind_from_name(db_kind_name(k)), k);
	}
	assert_string_equal(db_kind_name(DB_EOI), "eoi");
	assert_string_equal(db_kind_name(DB_LOCK_ACQ), "lock_acq");
	assert_null(db_kind_name(0));
	assert_null(db_kind_name(DB_KIND_MAX + 1));
	assert_int_equal(db_kind_from_name("nope"), 0);
	assert_int_equal(db_kind_from_name(NULL), 0);
}

static void test_every_kind_and_field_round_trips(void **state)
{
	struct fx *fx = *state;
	struct db_writer *w = open_writer(fx->path);
	struct db_reader *r;
	struct db_cursor *c = NULL;
	struct db_event in[DB_KIND_MAX], out;
	const char *text;
	char *err = NULL;

	for (int k = 1; k <= DB_KIND_MAX; k++) {
		struct db_event *e = &in[k - 1];
		memset(e, 0, sizeof(*e));
		e->kind = (uint8_t)k;
		e->icount = 0x123456789aULL + (uint64_t)k;
		e->pc = k % 2 ? KADDR(0x12345 + k) : 0x101234 + (uint64_t)k;
		e->thread = k == DB_TRAP ? 0 : KADDR(0x200000 + (uint64_t)(k % 3) * 0x100);
		e->obj = db_kind_obj_is_lock(k) ? KADDR(0x300000 + (uint64_t)k * 0x40) : (uint64_t)k * 7;
		e->a = k == DB_IRET ? -1 : (int64_t)k * 1000;
		e->b = k == DB_SWITCH ? (int64_t)KADDR(0x200000) : -(int64_t)k;
		e->vcpu = (uint16_t)(k % 3);
		/* schema 2 fields: every value of each, spread over the kinds */
		e->ctx = (uint8_t)(k % 4);
		e->flags = (uint8_t)(k * 5 % 64);
		e->lockop = DB_LOCKOP(k % 7, k % 6, k * 13 % 256);
		e->preempt = k % 4 == 0 ? -1 : (k == 5 ? 0x7fffffff : k);
		e->tid = e->thread ? 100 + k % 3 : -1;
		e->caller = k % 5 == 0 ? 0 : KADDR(0x4000 + (uint64_t)k);
		assert_int_equal(db_writer_push(w, e), DB_OK);
	}
	close_writer(w);

	r = open_reader(fx->path);
	assert_int_equal(db_cursor_open(r, NULL, &c, &err), DB_OK);
	for (int k = 1; k <= DB_KIND_MAX; k++) {
		assert_int_equal(db_cursor_next(c, &out, &text), 1);
		assert_int_equal(out.id, k);
		assert_int_equal(out.kind, k);
		assert_int_equal(out.icount, in[k - 1].icount);
		assert_int_equal(out.pc, in[k - 1].pc);
		assert_int_equal(out.thread, in[k - 1].thread);
		assert_int_equal(out.obj, in[k - 1].obj);
		assert_int_equal(out.a, in[k - 1].a);
		assert_int_equal(out.b, in[k - 1].b);
		assert_int_equal(out.vcpu, in[k - 1].vcpu);
		assert_int_equal(out.ctx, in[k - 1].ctx);
		assert_int_equal(out.flags, in[k - 1].flags);
		assert_int_equal(out.lockop, in[k - 1].lockop);
		assert_int_equal(out.preempt, in[k - 1].preempt);
		assert_int_equal(out.tid, in[k - 1].tid);
		assert_int_equal(out.caller, in[k - 1].caller);
		assert_null(text);
	}
	assert_int_equal(db_cursor_next(c, &out, &text), 0);
	db_cursor_close(c);

	assert_int_equal(db_event_by_id(r, 13, &out, &err), 1);
	assert_int_equal(out.kind, DB_EOI);
	assert_int_equal(out.a, 13000);
	assert_int_equal(db_event_by_id(r, 99, &out, &err), 0);
	db_reader_close(r);
}

/* A thread is (address, tid): a new tid at a known address is a new thread,
 * named like the old one until renamed; renames follow the newest name. */
static void test_threads_by_address_and_tid(void **state)
{
	struct fx *fx = *state;
	struct db_writer *w = open_writer(fx->path);
	struct db_reader *r;
	const struct db_thread_info *th;
	struct db_cursor *c = NULL;
	struct db_filter f = { 0 };
	struct db_event ev;
	size_t n;
	char *err = NULL;
	int seen = 0;

	/* the first event has no tid: the row gets it from the next one */
	ev = ev_make(DB_IRQL, 1, KADDR(0x200100), 0, 0, 2);
	ev.tid = -1;
	assert_int_equal(db_writer_push(w, &ev), DB_OK);
	assert_int_equal(db_writer_name_thread(w, KADDR(0x200100), 7, "sh"), DB_OK);
	ev = ev_make(DB_IRQL, 2, KADDR(0x200100), 0, 2, 0);
	ev.tid = 7;
	assert_int_equal(db_writer_push(w, &ev), DB_OK);
	/* the task struct is reused by tid 9, which execs "ls" */
	ev = ev_make(DB_IRQL, 3, KADDR(0x200100), 0, 0, 2);
	ev.tid = 9;
	assert_int_equal(db_writer_push(w, &ev), DB_OK);
	assert_int_equal(db_writer_name_thread(w, KADDR(0x200100), 9, "ls"), DB_OK);
	ev = ev_make(DB_IRQL, 4, KADDR(0x200100), 0, 2, 0);
	ev.tid = 9;
	assert_int_equal(db_writer_push(w, &ev), DB_OK);
	/* renamed again; the same name twice is one rename */
	assert_int_equal(db_writer_name_thread(w, KADDR(0x200100), 9, "ls2"), DB_OK);
	assert_int_equal(db_writer_name_thread(w, KADDR(0x200100), 9, "ls2"), DB_OK);
	close_writer(w);

	r = open_reader(fx->path);
	assert_int_equal(db_threads(r, &th, &n, &err), DB_OK);
	assert_int_equal(n, 2);
	assert_int_equal(th[0].addr, KADDR(0x200100));
	assert_int_equal(th[0].tid, 7);
	assert_string_equal(th[0].name, "sh");
	assert_int_equal(th[1].addr, KADDR(0x200100));
	assert_int_equal(th[1].tid, 9);
	assert_string_equal(th[1].name, "ls2");
	assert_string_equal(db_thread_name(r, KADDR(0x200100)), "ls2");
	assert_string_equal(db_thread_name_tid(r, KADDR(0x200100), 7), "sh");
	assert_string_equal(db_thread_name_tid(r, KADDR(0x200100), 9), "ls2");
	assert_string_equal(db_thread_name_tid(r, KADDR(0x200100), -1), "ls2");
	/* events carry their own thread's tid; a thread filter takes every tid */
	f.thread = KADDR(0x200100);
	f.kinds = 1u << DB_IRQL;
	assert_int_equal(db_cursor_open(r, &f, &c, &err), DB_OK);
	while (db_cursor_next(c, &ev, NULL) == 1) {
		assert_int_equal(ev.tid, ev.icount <= 2 ? 7 : 9);
		seen++;
	}
	assert_int_equal(seen, 4);
	db_cursor_close(c);
	db_reader_close(r);
}

/* A lock_init of a known address starts a new instance with its own init
 * site and class; lock ops set the lock's type from their flavor. */
static void test_lock_instances_and_types(void **state)
{
	struct fx *fx = *state;
	struct db_writer *w = open_writer(fx->path);
	struct db_reader *r;
	const struct db_lock_info *lk;
	struct db_cursor *c = NULL;
	struct db_filter f = { 0 };
	struct db_event ev;
	size_t n;
	char *err = NULL;
	int seen = 0;

	assert_int_equal(db_writer_add_symbol(w, KADDR(0x5000), 0x40, "pool_alloc"), DB_OK);
	assert_int_equal(db_writer_add_symbol(w, KADDR(0x6000), 0x40, "other_alloc"), DB_OK);
	ev = ev_make(DB_LOCK_INIT, 1, KADDR(0x200100), 0x900000, (int64_t)KADDR(0x5010), 0);
	assert_int_equal(db_writer_push(w, &ev), DB_OK);
	ev = ev_make(DB_LOCK_ACQ, 2, KADDR(0x200100), 0x900000, 0, 0);
	ev.lockop = DB_LOCKOP(DB_LF_WRITE, DB_LI_IRQSAVE, 0);
	ev.caller = KADDR(0x7777);
	assert_int_equal(db_writer_push(w, &ev), DB_OK);
	/* freed and reused for another lock */
	ev = ev_make(DB_LOCK_INIT, 3, KADDR(0x200100), 0x900000, (int64_t)KADDR(0x6004), 0);
	assert_int_equal(db_writer_push(w, &ev), DB_OK);
	ev = ev_make(DB_LOCK_ACQ, 4, KADDR(0x200100), 0x900000, 0, 0);
	assert_int_equal(db_writer_push(w, &ev), DB_OK);
	ev = ev_make(DB_LOCK_ACQ, 5, KADDR(0x200100), 0x900000, 0, 0);
	assert_int_equal(db_writer_push(w, &ev), DB_OK);
	/* a sleeping lock declared by flavor, first seen with a caller */
	ev = ev_make(DB_LOCK_TRY, 6, KADDR(0x200100), 0x910000, 0, 0);
	ev.lockop = DB_LOCKOP(DB_LF_RWSEM_READ, DB_LI_NONE, 1);
	ev.caller = KADDR(0x8888);
	assert_int_equal(db_writer_push(w, &ev), DB_OK);
	close_writer(w);

	r = open_reader(fx->path);
	assert_int_equal(db_locks(r, &lk, &n, &err), DB_OK);
	assert_int_equal(n, 3);
	assert_int_equal(lk[0].addr, 0x900000);
	assert_int_equal(lk[0].instance, 0);
	assert_int_equal(lk[0].init_site, KADDR(0x5010));
	assert_string_equal(lk[0].class_name, "alloc@pool_alloc+0x10");
	assert_int_equal(lk[0].acquisitions, 1);
	assert_int_equal(lk[1].addr, 0x900000);
	assert_int_equal(lk[1].instance, 1);
	assert_string_equal(lk[1].class_name, "alloc@other_alloc+0x4");
	assert_int_equal(lk[1].acquisitions, 2);
	assert_string_equal(lk[2].type, "rwsem");
	assert_int_equal(lk[2].caller, KADDR(0x8888));
	assert_string_equal(db_lock_class(r, 0x900000), "alloc@other_alloc+0x4");
	/* a lock filter takes every instance */
	f.obj = 0x900000;
	f.kinds = 1u << DB_LOCK_ACQ;
	assert_int_equal(db_cursor_open(r, &f, &c, &err), DB_OK);
	while (db_cursor_next(c, &ev, NULL) == 1)
		seen++;
	assert_int_equal(seen, 3);
	db_cursor_close(c);
	db_reader_close(r);
}

static int view_row(void *ctx, int ncols, const char *const *names, const char *const *values)
{
	char *out = ctx;
	size_t len = strlen(out);

	for (int i = 0; i < ncols; i++)
		len += (size_t)snprintf(out + len, 1024 - len, "%s%s=%s", i ? " " : "", names[i],
					values[i] ? values[i] : "NULL");
	snprintf(out + len, 1024 - len, "\n");
	return 0;
}

/* The events view unpacks the schema 2 fields for krewind sql. */
static void test_events_view_unpacks_fields(void **state)
{
	struct fx *fx = *state;
	struct db_writer *w = open_writer(fx->path);
	struct db_reader *r;
	struct db_event ev;
	char out[1024] = "", *err = NULL;

	ev = ev_make(DB_LOCK_ACQ, 1, KADDR(0x200100), 0x900000, 0, 0);
	ev.ctx = DB_CTX_HARDIRQ;
	ev.flags = DB_F_IF | DB_F_TRY;
	ev.lockop = DB_LOCKOP(DB_LF_READ, DB_LI_RAISE_DISPATCH, 3);
	ev.preempt = 2;
	ev.tid = 42;
	ev.caller = KADDR(0x4242);
	assert_int_equal(db_writer_push(w, &ev), DB_OK);
	ev = ev_make(DB_TRAP, 2, KADDR(0x200100), 0, 14, 0);
	ev.ctx = DB_CTX_SOFTIRQ;
	ev.flags = DB_F_USER;
	ev.preempt = -1;
	ev.tid = 42;
	assert_int_equal(db_writer_push(w, &ev), DB_OK);
	close_writer(w);
	r = open_reader(fx->path);
	assert_int_equal(db_sql(r,
				"SELECT kind, ctx, flags, if_on, flavor, irq, subclass, preempt, tid,"
				" iif(caller IS NULL, 'none', printf('%x', caller)) AS caller, lock_instance FROM events ORDER BY id",
				view_row, out, &err),
			 DB_OK);
	assert_string_equal(out,
			    "kind=lock_acq ctx=hardirq flags=17 if_on=1 flavor=read irq=raise-dispatch subclass=3"
			    " preempt=2 tid=42 caller=ffffffff80004242 lock_instance=0\n"
			    "kind=trap ctx=softirq flags=2 if_on=0 flavor=NULL irq=NULL subclass=NULL"
			    " preempt=NULL tid=42 caller=none lock_instance=NULL\n");
	db_reader_close(r);
}

static void test_count_by_kind(void **state)
{
	struct fx *fx = *state;
	struct db_reader *r;
	int64_t counts[DB_KIND_MAX + 1];
	char *err = NULL;

	write_mix(fx->path, 16 * 5 + 3); /* kinds 1..3 once more */
	r = open_reader(fx->path);
	assert_int_equal(db_count_by_kind(r, counts, &err), DB_OK);
	assert_int_equal(counts[0], 83);
	for (int k = 1; k <= DB_KIND_MAX; k++)
		assert_int_equal(counts[k], k <= 3 ? 6 : k <= 16 ? 5 : 0);
	assert_string_equal(db_meta(r, "events_total"), "83");
	assert_string_equal(db_meta(r, "dropped"), "0");
	db_reader_close(r);
}

static void test_text_markers(void **state)
{
	struct fx *fx = *state;
	struct db_writer *w = open_writer(fx->path);
	struct db_reader *r;
	struct db_cursor *c = NULL;
	struct db_filter f = { .kinds = 1u << DB_MARKER };
	struct db_event ev = ev_make(DB_MARKER, 5, 0, 0, DB_MARK_SCENARIO, 0), out;
	const char *text;
	char *err = NULL;
	char line[32];

	snprintf(line, sizeof(line), "eoi-before-switch");
	assert_int_equal(db_writer_push_text(w, &ev, line), DB_OK);
	memset(line, 'x', sizeof(line) - 1); /* the writer copied it */
	ev = ev_make(DB_IRQL, 6, 0, 0, 0, 2);
	assert_int_equal(db_writer_push(w, &ev), DB_OK);
	ev = ev_make(DB_MARKER, 7, 0, 12, DB_MARK_RESULT, 1);
	assert_int_equal(db_writer_push_text(w, &ev, "selftest: 12 passed, 1 failed"), DB_OK);
	ev = ev_make(DB_MARKER, 8, 0, 0, DB_MARK_SERIAL, 0);
	assert_int_equal(db_writer_push_text(w, &ev, "it's \"quoted\"; DROP TABLE x"), DB_OK);
	close_writer(w);

	r = open_reader(fx->path);
	assert_int_equal(db_cursor_open(r, &f, &c, &err), DB_OK);
	assert_int_equal(db_cursor_next(c, &out, &text), 1);
	assert_int_equal(out.id, 1);
	assert_int_equal(out.a, DB_MARK_SCENARIO);
	assert_string_equal(text, "eoi-before-switch");
	assert_int_equal(db_cursor_next(c, &out, &text), 1);
	assert_int_equal(out.id, 3);
	assert_int_equal(out.obj, 12);
	assert_int_equal(out.b, 1);
	assert_string_equal(text, "selftest: 12 passed, 1 failed");
	assert_int_equal(db_cursor_next(c, &out, &text), 1);
	assert_string_equal(text, "it's \"quoted\"; DROP TABLE x");
	assert_int_equal(db_cursor_next(c, &out, &text), 0);
	assert_null(text);
	db_cursor_close(c);
	db_reader_close(r);
}

static void test_metadata_set_and_replaced(void **state)
{
	struct fx *fx = *state;
	struct db_writer *w = open_writer(fx->path);
	struct db_reader *r;

	assert_int_equal(db_writer_set_meta(w, "qemu_version", "9.2.0"), DB_OK);
	assert_int_equal(db_writer_set_meta(w, "cmdline", "scenario=abba"), DB_OK);
	assert_int_equal(db_writer_set_meta(w, "qemu_version", "10.0.2"), DB_OK);
	assert_int_equal(db_writer_set_meta(w, "", "x"), DB_E_ARG);
	assert_int_equal(db_writer_set_meta(w, "k", NULL), DB_E_ARG);
	close_writer(w);
	r = open_reader(fx->path);
	assert_string_equal(db_meta(r, "qemu_version"), "10.0.2");
	assert_string_equal(db_meta(r, "cmdline"), "scenario=abba");
	assert_string_equal(db_meta(r, "events_total"), "0");
	assert_null(db_meta(r, "no_such_key"));
	/* Asking again for an unchanged value gives the same string. */
	assert_ptr_equal(db_meta(r, "cmdline"), db_meta(r, "cmdline"));
	db_reader_close(r);
}

static void test_update_meta_on_closed_trace(void **state)
{
	struct fx *fx = *state;
	struct db_reader *r;
	char *err = NULL;
	char missing[160];

	write_mix(fx->path, 40);
	assert_int_equal(db_update_meta(fx->path, "outcome", "hang", &err), DB_OK);
	assert_null(err);
	r = open_reader(fx->path);
	const char *before = db_meta(r, "outcome");
	assert_string_equal(before, "hang");
	assert_int_equal(db_update_meta(fx->path, "outcome", "bugcheck", &err), DB_OK);
	assert_string_equal(db_meta(r, "outcome"), "bugcheck");
	assert_string_equal(before, "hang"); /* still valid until db_reader_close */
	assert_string_equal(db_meta(r, "events_total"), "40");
	db_reader_close(r);

	snprintf(missing, sizeof(missing), "%s/none.db", fx->dir);
	assert_int_equal(db_update_meta(missing, "outcome", "x", &err), DB_E_IO);
	assert_non_null(strstr(err, "none.db"));
	free(err);
	assert_int_equal(access(missing, F_OK), -1); /* not created */
}

/* ------------------------------------------------------------ symbols, names */

static void test_symbolize_with_recorded_symbols(void **state)
{
	struct fx *fx = *state;
	struct db_writer *w = open_writer(fx->path);
	struct db_reader *r;
	char buf[64];

	assert_int_equal(db_writer_add_symbol(w, KADDR(0x2000), 0x100, "KeAcquireSpinLockRaiseToDpc"), DB_OK);
	assert_int_equal(db_writer_add_symbol(w, KADDR(0x1000), 0x80, "KiSwapContext"), DB_OK);
	assert_int_equal(db_writer_add_symbol(w, KADDR(0x3000), 0, "KiIsrStub"), DB_OK);
	assert_int_equal(db_writer_add_symbol(w, KADDR(0x3100), 0x10, "KiLast"), DB_OK);
	assert_int_equal(db_writer_add_symbol(w, 1, 1, ""), DB_E_ARG);
	close_writer(w);

	r = open_reader(fx->path);
	assert_string_equal(db_symbolize(r, KADDR(0x2000), buf, sizeof(buf)), "KeAcquireSpinLockRaiseToDpc");
	assert_string_equal(db_symbolize(r, KADDR(0x201c), buf, sizeof(buf)), "KeAcquireSpinLockRaiseToDpc+0x1c");
	assert_string_equal(db_symbolize(r, KADDR(0x107f), buf, sizeof(buf)), "KiSwapContext+0x7f");
	assert_string_equal(db_symbolize(r, KADDR(0x1080), buf, sizeof(buf)), "0xffffffff80001080");
	assert_string_equal(db_symbolize(r, KADDR(0x30ff), buf, sizeof(buf)), "KiIsrStub+0xff");
	assert_string_equal(db_symbolize(r, KADDR(0x3110), buf, sizeof(buf)), "0xffffffff80003110");
	assert_string_equal(db_symbolize(r, 0x42, buf, sizeof(buf)), "0x42");
	assert_string_equal(db_symbolize(r, KADDR(0x2004), buf, 8), "KeAcqui");
	db_reader_close(r);
}

static int namer_calls;

/* Names threads "thread-<low 12 bits>", locks "lock-<low 12 bits>"; refuses
 * address ...0x300 so that one stays unnamed. */
static int test_namer(void *ctx, int is_lock, uint64_t addr, char *name, size_t size)
{
	assert_ptr_equal(ctx, &namer_calls);
	namer_calls++;
	if ((addr & 0xfff) == 0x300)
		return -1;
	snprintf(name, size, "%s-%03" PRIx64, is_lock ? "lock" : "thread", addr & 0xfff);
	return 0;
}

static void test_names_from_namer_and_overrides(void **state)
{
	struct fx *fx = *state;
	struct db_writer *w = NULL;
	struct db_reader *r;
	const struct db_thread_info *th;
	const struct db_lock_info *lk;
	size_t nth, nlk;
	char *err = NULL;
	struct db_event ev;

	namer_calls = 0;
	assert_int_equal(db_writer_open(fx->path, test_namer, &namer_calls, &w, &err), DB_OK);
	assert_int_equal(db_writer_name(w, 0, KADDR(0x200200), "Idle"), DB_OK);
	for (int i = 0; i < 3; i++) {
		ev = ev_make(DB_LOCK_ACQ, (uint64_t)i, KADDR(0x200100), KADDR(0x300040), 2, 0);
		assert_int_equal(db_writer_push(w, &ev), DB_OK);
	}
	ev = ev_make(DB_SWITCH, 10, KADDR(0x200100), 0, (int64_t)KADDR(0x200100), (int64_t)KADDR(0x200300));
	assert_int_equal(db_writer_push(w, &ev), DB_OK);
	ev = ev_make(DB_SWITCH, 11, KADDR(0x200300), 0, (int64_t)KADDR(0x200300), (int64_t)KADDR(0x200200));
	assert_int_equal(db_writer_push(w, &ev), DB_OK);
	ev = ev_make(DB_WAIT, 12, KADDR(0x200200), KADDR(0x300080), 0, 0);
	assert_int_equal(db_writer_push(w, &ev), DB_OK);
	ev = ev_make(DB_MUTEX_ACQ, 13, KADDR(0x200200), KADDR(0x3000c0), 0, 0);
	assert_int_equal(db_writer_push(w, &ev), DB_OK);
	close_writer(w);
	/* Called once per new address: threads 0x100 and 0x300, locks 0x040,
	 * 0x080, 0x0c0; never for Idle, named explicitly. */
	assert_int_equal(namer_calls, 5);

	r = open_reader(fx->path);
	assert_string_equal(db_thread_name(r, KADDR(0x200100)), "thread-100");
	assert_string_equal(db_thread_name(r, KADDR(0x200200)), "Idle");
	assert_string_equal(db_thread_name(r, KADDR(0x200300)), "");
	assert_string_equal(db_thread_name(r, KADDR(0x999999)), "");
	assert_string_equal(db_lock_name(r, KADDR(0x300040)), "lock-040");
	assert_string_equal(db_lock_name(r, 0), "");

	assert_int_equal(db_threads(r, &th, &nth, &err), DB_OK);
	assert_int_equal(nth, 3);
	for (size_t i = 0; i < nth; i++) {
		if (th[i].addr == KADDR(0x200100))
			assert_int_equal(th[i].switches_in, 0);
		else
			assert_int_equal(th[i].switches_in, 1);
	}
	assert_int_equal(db_locks(r, &lk, &nlk, &err), DB_OK);
	assert_int_equal(nlk, 3);
	assert_int_equal(lk[0].addr, KADDR(0x300040));
	assert_string_equal(lk[0].type, "spinlock");
	assert_int_equal(lk[0].acquisitions, 3);
	assert_int_equal(lk[1].addr, KADDR(0x300080));
	assert_string_equal(lk[1].type, "object");
	assert_int_equal(lk[1].acquisitions, 0);
	assert_string_equal(lk[2].type, "mutex");
	assert_int_equal(lk[2].acquisitions, 1);
	db_reader_close(r);
}

static void test_lock_classes(void **state)
{
	struct fx *fx = *state;
	struct db_writer *w = open_writer(fx->path);
	struct db_reader *r;
	struct db_event ev;
	sqlite3 *db;
	sqlite3_stmt *st;

	assert_int_equal(db_writer_add_symbol(w, KADDR(0x50000), 8, "KiDispatcherLock"), DB_OK);
	assert_int_equal(db_writer_add_symbol(w, KADDR(0x60000), 0x100, "DeviceTable"), DB_OK);
	assert_int_equal(db_writer_add_symbol(w, KADDR(0x1000), 0x40, "DriverInit"), DB_OK);
	/* static lock, initialised or not */
	ev = ev_make(DB_LOCK_INIT, 1, 0, KADDR(0x50000), (int64_t)KADDR(0x1010), 0);
	assert_int_equal(db_writer_push(w, &ev), DB_OK);
	/* inside a static object, never initialised */
	ev = ev_make(DB_LOCK_ACQ, 2, 0, KADDR(0x60010), 2, 0);
	assert_int_equal(db_writer_push(w, &ev), DB_OK);
	/* heap lock initialised in DriverInit */
	ev = ev_make(DB_LOCK_INIT, 3, 0, 0x7f0000, (int64_t)KADDR(0x1024), 0);
	assert_int_equal(db_writer_push(w, &ev), DB_OK);
	/* heap lock of unknown origin */
	ev = ev_make(DB_LOCK_ACQ, 4, 0, 0x7f0040, 2, 0);
	assert_int_equal(db_writer_push(w, &ev), DB_OK);
	close_writer(w);

	r = open_reader(fx->path);
	assert_string_equal(db_lock_class(r, KADDR(0x50000)), "KiDispatcherLock");
	assert_string_equal(db_lock_class(r, KADDR(0x60010)), "DeviceTable+0x10");
	assert_string_equal(db_lock_class(r, 0x7f0000), "alloc@DriverInit+0x24");
	assert_string_equal(db_lock_class(r, 0x7f0040), "0x7f0040");
	db_reader_close(r);

	/* The writer stored the same classes for SQL users. */
	assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT class FROM locks WHERE addr = 0x7f0000", -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "alloc@DriverInit+0x24");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* ------------------------------------------------------------ filters */

static void test_filter_by_kinds(void **state)
{
	struct fx *fx = *state;
	struct db_reader *r;
	struct db_filter f = { .kinds = 1u << DB_EOI };
	int64_t first = 0;

	write_mix(fx->path, 160);
	r = open_reader(fx->path);
	assert_int_equal(count_filter(r, &f, &first), 10);
	assert_int_equal(first, 13);
	f.kinds = 1u << DB_EOI | 1u << DB_TRAP | 1u << DB_LOCK_INIT;
	assert_int_equal(count_filter(r, &f, &first), 30);
	assert_int_equal(first, 1);
	f.kinds = 0;
	assert_int_equal(count_filter(r, &f, NULL), 160);
	db_reader_close(r);
}

static void test_filter_by_thread_and_obj(void **state)
{
	struct fx *fx = *state;
	struct db_reader *r;
	struct db_filter f = { .thread = KADDR(0x200100) };
	struct db_cursor *c = NULL;
	struct db_event ev;
	char *err = NULL;

	write_mix(fx->path, 96); /* thread (i % 3), lock (i % 4) on lock kinds */
	r = open_reader(fx->path);
	assert_int_equal(count_filter(r, &f, NULL), 32);
	f.thread = KADDR(0x777777);
	assert_int_equal(count_filter(r, &f, NULL), 0);
	f.thread = 0;
	/* lock kinds (9 of 16) with lock i % 4 == 1 */
	f.obj = KADDR(0x300040);
	assert_int_equal(db_cursor_open(r, &f, &c, &err), DB_OK);
	int n = 0;
	while (db_cursor_next(c, &ev, NULL) == 1) {
		assert_int_equal(ev.obj, KADDR(0x300040));
		assert_true(db_kind_obj_is_lock(ev.kind));
		assert_int_equal((ev.id - 1) % 4, 1);
		n++;
	}
	db_cursor_close(c);
	assert_int_equal(n, 12); /* i % 4 == 1 and a lock kind: i % 16 in {5, 9} */
	f.obj = KADDR(0x300040);
	f.thread = KADDR(0x200000);
	f.kinds = 1u << DB_LOCK_REL; /* i % 16 == 5, i % 3 == 0: i = 21, 69 */
	assert_int_equal(count_filter(r, &f, NULL), 2);
	db_reader_close(r);
}

static void test_filter_id_and_icount_ranges(void **state)
{
	struct fx *fx = *state;
	struct db_reader *r;
	struct db_filter f = { .from_id = 10, .to_id = 19 };
	int64_t first = 0;

	write_mix(fx->path, 200); /* event i: vcpu i % 2, icount 10 * (i / 2) */
	r = open_reader(fx->path);
	assert_int_equal(count_filter(r, &f, &first), 10);
	assert_int_equal(first, 10);
	f = (struct db_filter){ .from_id = 195 };
	assert_int_equal(count_filter(r, &f, &first), 6);
	f = (struct db_filter){ .from_icount = 500, .to_icount = 590 };
	/* i / 2 in 50..59 -> i in 100..119 -> ids 101..120 */
	assert_int_equal(count_filter(r, &f, &first), 20);
	assert_int_equal(first, 101);
	f = (struct db_filter){ .from_icount = 985 };
	assert_int_equal(count_filter(r, &f, &first), 2);
	assert_int_equal(first, 199);
	f = (struct db_filter){ .to_icount = 5 };
	assert_int_equal(count_filter(r, &f, &first), 2);
	f = (struct db_filter){ .from_icount = 5000 };
	assert_int_equal(count_filter(r, &f, NULL), 0);
	f = (struct db_filter){ .from_icount = 500, .to_icount = 590, .from_id = 110, .to_id = 112 };
	assert_int_equal(count_filter(r, &f, &first), 3);
	assert_int_equal(first, 110);
	db_reader_close(r);
}

/* Collects the ids a filter selects into ids[] (at most max). */
static int collect_ids(struct db_reader *r, const struct db_filter *f, int64_t *ids, int max)
{
	struct db_cursor *c = NULL;
	struct db_event ev;
	char *err = NULL;
	int n = 0, rc;

	assert_int_equal(db_cursor_open(r, f, &c, &err), DB_OK);
	while ((rc = db_cursor_next(c, &ev, NULL)) == 1) {
		assert_true(n < max);
		ids[n++] = ev.id;
	}
	assert_int_equal(rc, 0);
	db_cursor_close(c);
	return n;
}

/* 10000 events over 40 blocks, two vCPUs (icount 10 * (i / 2)), an EOI at
 * every i % 1000 == 777, IRQL otherwise. */
static void write_sparse(const char *path)
{
	struct db_writer *w = open_writer(path);

	for (int i = 0; i < 10000; i++) {
		struct db_event ev = ev_make(i % 1000 == 777 ? DB_EOI : DB_IRQL, 10 * (uint64_t)(i / 2),
					     KADDR(0x200000), 0, i, 0);
		ev.vcpu = (uint16_t)(i % 2);
		assert_int_equal(db_writer_push(w, &ev), DB_OK);
	}
	close_writer(w);
}

static void test_filter_rare_kind_across_blocks(void **state)
{
	struct fx *fx = *state;
	struct db_reader *r;
	struct db_filter f = { .kinds = 1u << DB_EOI };
	int64_t ids[16];

	write_sparse(fx->path);
	r = open_reader(fx->path);
	assert_int_equal(collect_ids(r, &f, ids, 16), 10);
	for (int i = 0; i < 10; i++)
		assert_int_equal(ids[i], 778 + 1000 * i);
	f.descending = 1;
	f.limit = 3;
	assert_int_equal(collect_ids(r, &f, ids, 16), 3);
	assert_int_equal(ids[0], 9778);
	assert_int_equal(ids[1], 8778);
	assert_int_equal(ids[2], 7778);
	f = (struct db_filter){ .kinds = 1u << DB_EOI, .from_id = 2000, .to_id = 5000 };
	assert_int_equal(collect_ids(r, &f, ids, 16), 3);
	assert_int_equal(ids[0], 2778);
	assert_int_equal(ids[2], 4778);
	f = (struct db_filter){ .kinds = 1u << DB_TRAP };
	assert_int_equal(collect_ids(r, &f, ids, 16), 0);
	db_reader_close(r);
}

static void test_filter_icount_window_across_blocks(void **state)
{
	struct fx *fx = *state;
	struct db_reader *r;
	struct db_filter f = { .from_icount = 30000, .to_icount = 30010 };
	int64_t ids[16];

	write_sparse(fx->path);
	r = open_reader(fx->path);
	/* i / 2 in 3000..3001: i = 6000..6003 */
	assert_int_equal(collect_ids(r, &f, ids, 16), 4);
	assert_int_equal(ids[0], 6001);
	assert_int_equal(ids[3], 6004);
	f.descending = 1;
	assert_int_equal(collect_ids(r, &f, ids, 16), 4);
	assert_int_equal(ids[0], 6004);
	/* icount 8000..20000: i = 1600..4001, EOIs at i = 1777, 2777, 3777 */
	f = (struct db_filter){ .kinds = 1u << DB_EOI, .from_icount = 8000, .to_icount = 20000 };
	assert_int_equal(collect_ids(r, &f, ids, 16), 3);
	assert_int_equal(ids[0], 1778);
	assert_int_equal(ids[2], 3778);
	f = (struct db_filter){ .from_icount = 49990 };
	assert_int_equal(collect_ids(r, &f, ids, 16), 2);
	assert_int_equal(ids[0], 9999);
	db_reader_close(r);
}

/* 10000 lock_acq events over 40 blocks: thread i / 1000 (10 threads), lock
 * (i / 100) % 70 (70 locks; lock 64 gets id 65, which shares its block
 * summary bit with lock 0's id 1). */
static void write_threads_and_locks(const char *path)
{
	struct db_writer *w = open_writer(path);

	for (int i = 0; i < 10000; i++) {
		struct db_event ev = ev_make(DB_LOCK_ACQ, (uint64_t)i, KADDR(0x200000 + (i / 1000) * 0x100),
					     KADDR(0x300000 + ((i / 100) % 70) * 0x40), 2, 0);
		assert_int_equal(db_writer_push(w, &ev), DB_OK);
	}
	close_writer(w);
}

static void test_filter_thread_and_lock_across_blocks(void **state)
{
	struct fx *fx = *state;
	struct db_reader *r;
	struct db_filter f = { .thread = KADDR(0x200300) };
	int64_t ids[256];

	write_threads_and_locks(fx->path);
	r = open_reader(fx->path);
	assert_int_equal(count_filter(r, &f, ids), 1000);
	assert_int_equal(ids[0], 3001);
	f.descending = 1;
	assert_int_equal(count_filter(r, &f, ids), 1000);
	assert_int_equal(ids[0], 4000);
	f = (struct db_filter){ .thread = KADDR(0x200a00) };
	assert_int_equal(count_filter(r, &f, NULL), 0);

	/* lock 0: i in 0..99 and 7000..7099 */
	f = (struct db_filter){ .obj = KADDR(0x300000), .kinds = 1u << DB_LOCK_ACQ };
	assert_int_equal(collect_ids(r, &f, ids, 256), 200);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[99], 100);
	assert_int_equal(ids[100], 7001);
	assert_int_equal(ids[199], 7100);
	f.kinds = 0; /* without a lock-only kind mask the block bits are not used */
	assert_int_equal(collect_ids(r, &f, ids, 256), 200);
	f = (struct db_filter){ .obj = KADDR(0x300000 + 64 * 0x40), .kinds = 1u << DB_LOCK_ACQ };
	assert_int_equal(collect_ids(r, &f, ids, 256), 100);
	assert_int_equal(ids[0], 6401);
	f = (struct db_filter){ .obj = KADDR(0x3fff00), .kinds = 1u << DB_LOCK_ACQ };
	assert_int_equal(collect_ids(r, &f, ids, 256), 0);
	/* thread 7 (i 7000..7999) and lock 0 */
	f = (struct db_filter){ .obj = KADDR(0x300000), .kinds = 1u << DB_LOCK_ACQ, .thread = KADDR(0x200700) };
	assert_int_equal(collect_ids(r, &f, ids, 256), 100);
	assert_int_equal(ids[0], 7001);
	db_reader_close(r);
}

static void test_filter_limit_and_descending(void **state)
{
	struct fx *fx = *state;
	struct db_reader *r;
	struct db_filter f = { .limit = 7 };
	int64_t first = 0;

	write_mix(fx->path, 100);
	r = open_reader(fx->path);
	assert_int_equal(count_filter(r, &f, &first), 7);
	assert_int_equal(first, 1);
	f.descending = 1;
	assert_int_equal(count_filter(r, &f, &first), 7);
	assert_int_equal(first, 100);
	f = (struct db_filter){ .kinds = 1u << DB_IRQL, .descending = 1, .limit = 2 };
	assert_int_equal(count_filter(r, &f, &first), 2);
	assert_int_equal(first, 99);
	db_reader_close(r);
}

static void test_bad_filters_refused(void **state)
{
	struct fx *fx = *state;
	struct db_reader *r;
	struct db_cursor *c = NULL;
	struct db_filter f = { .kinds = 1u << 0 };
	char *err = NULL;

	write_mix(fx->path, 10);
	r = open_reader(fx->path);
	assert_int_equal(db_cursor_open(r, &f, &c, &err), DB_E_ARG);
	assert_null(c);
	free(err);
	f = (struct db_filter){ .limit = -1 };
	assert_int_equal(db_cursor_open(r, &f, &c, &err), DB_E_ARG);
	free(err);
	f = (struct db_filter){ .from_icount = 10, .to_icount = 5 };
	assert_int_equal(db_cursor_open(r, &f, &c, &err), DB_E_ARG);
	free(err);
	db_reader_close(r);
}

/* ------------------------------------------------------------ refusals */

static void test_writer_refuses_existing_path(void **state)
{
	struct fx *fx = *state;
	struct db_writer *w = NULL;
	char *err = NULL;
	FILE *f = fopen(fx->path, "w");
	struct stat sb;

	assert_non_null(f);
	fputs("precious", f);
	fclose(f);
	assert_int_equal(db_writer_open(fx->path, NULL, NULL, &w, &err), DB_E_IO);
	assert_null(w);
	assert_non_null(strstr(err, fx->path));
	assert_non_null(strstr(err, "already exists"));
	free(err);
	assert_int_equal(stat(fx->path, &sb), 0);
	assert_int_equal(sb.st_size, 8); /* untouched */
}

/* A -wal left over from another database whose main file was deleted must
 * not be replayed into a new trace of the same name (SQLite deletes a WAL it
 * finds next to a zero-length database, which is what the writer creates). */
static void test_writer_ignores_stale_wal(void **state)
{
	struct fx *fx = *state;
	char other[160], cmd[400];
	sqlite3 *db;
	struct db_reader *r;
	int64_t counts[DB_KIND_MAX + 1];
	char *err = NULL;

	snprintf(other, sizeof(other), "%s/other.db", fx->dir);
	assert_int_equal(sqlite3_open(other, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;"
					  "CREATE TABLE kinds (x); INSERT INTO kinds VALUES (1);",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	snprintf(cmd, sizeof(cmd), "cp '%s-wal' '%s-wal'", other, fx->path);
	assert_int_equal(system(cmd), 0);
	sqlite3_close(db);

	write_mix(fx->path, 20);
	r = open_reader(fx->path);
	assert_int_equal(db_count_by_kind(r, counts, &err), DB_OK);
	assert_int_equal(counts[0], 20);
	db_reader_close(r);
}

static void test_writer_refuses_missing_directory(void **state)
{
	struct fx *fx = *state;
	struct db_writer *w = NULL;
	char *err = NULL, path[160];

	snprintf(path, sizeof(path), "%s/no/such/dir/t.db", fx->dir);
	assert_int_equal(db_writer_open(path, NULL, NULL, &w, &err), DB_E_IO);
	assert_null(w);
	assert_non_null(strstr(err, "cannot create"));
	assert_non_null(strstr(err, path));
	free(err);
}

static void test_push_refuses_unknown_kind(void **state)
{
	struct fx *fx = *state;
	struct db_writer *w = open_writer(fx->path);
	struct db_writer_stats st;
	struct db_event ev = ev_make(0, 1, 0, 0, 0, 0);
	struct db_reader *r;
	int64_t counts[DB_KIND_MAX + 1];
	char *err = NULL;

	assert_int_equal(db_writer_push(w, &ev), DB_E_ARG);
	ev.kind = DB_KIND_MAX + 1;
	assert_int_equal(db_writer_push(w, &ev), DB_E_ARG);
	assert_int_equal(db_writer_push_text(w, &ev, "x"), DB_E_ARG);
	ev.kind = DB_EOI;
	assert_int_equal(db_writer_push(w, &ev), DB_OK);
	db_writer_stats(w, &st);
	assert_int_equal(st.queued, 1);
	assert_int_equal(st.dropped, 0);
	close_writer(w);
	r = open_reader(fx->path);
	assert_int_equal(db_count_by_kind(r, counts, &err), DB_OK);
	assert_int_equal(counts[0], 1);
	assert_int_equal(counts[DB_EOI], 1);
	db_reader_close(r);
}

static void expect_reader_refusal(const char *path, int code, const char *words)
{
	struct db_reader *r = NULL;
	char *err = NULL;

	assert_int_equal(db_reader_open(path, &r, &err), code);
	assert_null(r);
	assert_non_null(err);
	assert_non_null(strstr(err, path));
	if (!strstr(err, words))
		fail_msg("message \"%s\" lacks \"%s\"", err, words);
	free(err);
}

static void test_reader_refuses_missing_file(void **state)
{
	struct fx *fx = *state;

	expect_reader_refusal(fx->path, DB_E_IO, "No such file");
}

static void test_reader_refuses_garbage_file(void **state)
{
	struct fx *fx = *state;
	FILE *f = fopen(fx->path, "w");

	assert_non_null(f);
	for (int i = 0; i < 500; i++)
		fprintf(f, "this is not a database %d\n", i);
	fclose(f);
	expect_reader_refusal(fx->path, DB_E_CORRUPT, "not a SQLite database");
}

static void test_reader_refuses_empty_file(void **state)
{
	struct fx *fx = *state;
	FILE *f = fopen(fx->path, "w");

	assert_non_null(f);
	fclose(f);
	expect_reader_refusal(fx->path, DB_E_CORRUPT, "empty");
}

static void test_reader_refuses_truncated_file(void **state)
{
	struct fx *fx = *state;
	struct stat sb;

	write_mix(fx->path, 20000);
	assert_int_equal(stat(fx->path, &sb), 0);
	assert_true(sb.st_size > 100000);
	assert_int_equal(truncate(fx->path, sb.st_size / 2), 0);
	expect_reader_refusal(fx->path, DB_E_CORRUPT, "truncated");
}

static void exec_sql(const char *path, const char *sql)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void test_reader_refuses_newer_schema(void **state)
{
	struct fx *fx = *state;
	char want[64];

	write_mix(fx->path, 10);
	exec_sql(fx->path, "PRAGMA user_version = 7");
	expect_reader_refusal(fx->path, DB_E_SCHEMA, "schema version 7");
	snprintf(want, sizeof(want), "reads (%d)", DB_SCHEMA_VERSION);
	expect_reader_refusal(fx->path, DB_E_SCHEMA, want);
}

static void test_reader_refuses_damaged_schema(void **state)
{
	struct fx *fx = *state;

	write_mix(fx->path, 10);
	exec_sql(fx->path, "DROP TABLE event_blocks");
	expect_reader_refusal(fx->path, DB_E_SCHEMA, "not a valid krewind trace of schema version 2");
}

/* Schema 1 traces (no context, IF, lock flavors) are refused with one line
 * that says what to do. */
static void test_reader_refuses_schema_1(void **state)
{
	struct fx *fx = *state;

	write_mix(fx->path, 10);
	exec_sql(fx->path, "PRAGMA user_version = 1");
	expect_reader_refusal(fx->path, DB_E_SCHEMA, "schema version 1");
	expect_reader_refusal(fx->path, DB_E_SCHEMA, "record it again");
}

static void test_reader_refuses_other_sqlite_file(void **state)
{
	struct fx *fx = *state;

	exec_sql(fx->path, "CREATE TABLE events (id INTEGER, kind TEXT); PRAGMA user_version = 1;"
			   "INSERT INTO events VALUES (1, 'eoi');");
	expect_reader_refusal(fx->path, DB_E_SCHEMA, "not a krewind trace");
}

/* ------------------------------------------------------------ sql */

struct rows {
	int n;
	char first[256];
	char names[256];
};

static int collect(void *ctx, int ncols, const char *const *names, const char *const *values)
{
	struct rows *rows = ctx;

	if (rows->n == 0) {
		size_t len = 0;
		for (int i = 0; i < ncols; i++) {
			len += (size_t)snprintf(rows->first + len, sizeof(rows->first) - len, "%s%s", i ? "|" : "",
						values[i] ? values[i] : "NULL");
			snprintf(rows->names + strlen(rows->names), sizeof(rows->names) - strlen(rows->names),
				 "%s%s", i ? "|" : "", names[i]);
		}
	}
	rows->n++;
	return 0;
}

static void test_sql_reads_events_view(void **state)
{
	struct fx *fx = *state;
	struct db_writer *w = open_writer(fx->path);
	struct db_reader *r;
	struct rows rows = { 0 };
	struct db_event ev = ev_make(DB_EOI, 77, KADDR(0x200100), 0, 2, 0);
	char *err = NULL;

	assert_int_equal(db_writer_name(w, 0, KADDR(0x200100), "Worker"), DB_OK);
	assert_int_equal(db_writer_push(w, &ev), DB_OK);
	ev = ev_make(DB_LOCK_ACQ, 78, KADDR(0x200100), KADDR(0x300000), 2, 5);
	assert_int_equal(db_writer_push(w, &ev), DB_OK);
	close_writer(w);

	r = open_reader(fx->path);
	assert_int_equal(db_sql(r, "SELECT id, icount, kind, printf('%x', pc), thread_name, a FROM events WHERE kind='eoi'",
				collect, &rows, &err),
			 DB_OK);
	assert_int_equal(rows.n, 1);
	assert_string_equal(rows.names, "id|icount|kind|printf('%x', pc)|thread_name|a");
	assert_string_equal(rows.first, "1|77|eoi|ffffffff8000104d|Worker|2");
	rows = (struct rows){ 0 };
	assert_int_equal(db_sql(r, "SELECT obj = 0xffffffff80300000, lock_name, text FROM events WHERE id = 2;  -- done",
				collect, &rows, &err),
			 DB_OK);
	assert_string_equal(rows.first, "1|NULL|NULL");
	db_reader_close(r);
}

static void test_sql_refuses_writes_and_bad_sql(void **state)
{
	struct fx *fx = *state;
	struct db_reader *r;
	struct rows rows = { 0 };
	static const char *const bad[] = {
		"DELETE FROM event_rows",
		"INSERT INTO meta VALUES ('a', 'b')",
		"DROP TABLE threads",
		"UPDATE meta SET value = 'x'",
		"CREATE TABLE t (x)",
		"PRAGMA user_version = 9",
		"SELECT 1; DELETE FROM event_rows",
		"ATTACH DATABASE '/tmp/x.db' AS x",
		"SELEKT 1",
		"",
	};
	char *err = NULL;

	write_mix(fx->path, 10);
	r = open_reader(fx->path);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (db_sql(r, bad[i], collect, &rows, &err) != DB_E_ARG)
			fail_msg("db_sql accepted or mis-refused \"%s\": %s", bad[i], err ? err : "");
		assert_non_null(err);
		free(err);
		err = NULL;
	}
	assert_int_equal(rows.n, 0);
	db_reader_close(r);
	r = open_reader(fx->path);
	assert_string_equal(db_meta(r, "events_total"), "10");
	db_reader_close(r);
}

static int stop_after_two(void *ctx, int ncols, const char *const *names, const char *const *values)
{
	int *n = ctx;

	(void)ncols, (void)names, (void)values;
	return ++*n == 2;
}

static void test_sql_row_callback_stops_early(void **state)
{
	struct fx *fx = *state;
	struct db_reader *r;
	char *err = NULL;
	int n = 0;

	write_mix(fx->path, 50);
	r = open_reader(fx->path);
	assert_int_equal(db_sql(r, "SELECT id FROM events", stop_after_two, &n, &err), DB_OK);
	assert_int_equal(n, 2);
	db_reader_close(r);
}

/* ------------------------------------------------------------ concurrency */

struct pusher {
	struct db_writer *w;
	uint16_t vcpu;
	int n;
};

static void *push_many(void *arg)
{
	struct pusher *p = arg;

	for (int i = 0; i < p->n; i++) {
		struct db_event ev = ev_make(DB_IRQL, (uint64_t)i, KADDR(0x200000 + p->vcpu), 0, i, p->vcpu);
		ev.vcpu = p->vcpu;
		while (db_writer_push(p->w, &ev) != DB_OK)
			usleep(100);
	}
	return NULL;
}

static void test_concurrent_pushes_all_arrive(void **state)
{
	struct fx *fx = *state;
	enum { THREADS = 4, PER = 20000 };
	struct db_writer *w = open_writer(fx->path);
	struct pusher p[THREADS];
	pthread_t th[THREADS];
	struct db_writer_stats st;
	struct db_reader *r;
	struct db_cursor *c = NULL;
	struct db_event ev;
	int64_t next[THREADS] = { 0 };
	char *err = NULL;

	for (int i = 0; i < THREADS; i++) {
		p[i] = (struct pusher){ w, (uint16_t)i, PER };
		assert_int_equal(pthread_create(&th[i], NULL, push_many, &p[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	db_writer_stats(w, &st);
	assert_int_equal(st.queued, THREADS * PER);
	close_writer(w);

	r = open_reader(fx->path);
	assert_int_equal(db_cursor_open(r, NULL, &c, &err), DB_OK);
	int64_t total = 0;
	while (db_cursor_next(c, &ev, NULL) == 1) {
		/* Each producer's events arrive complete and in its order. */
		assert_true(ev.vcpu < THREADS);
		assert_int_equal(ev.a, next[ev.vcpu]);
		assert_int_equal(ev.b, ev.vcpu);
		assert_int_equal(ev.thread, KADDR(0x200000 + ev.vcpu));
		next[ev.vcpu]++;
		total++;
	}
	db_cursor_close(c);
	assert_int_equal(total, THREADS * PER);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(next[i], PER);
	assert_string_equal(db_meta(r, "events_total"), "80000");
	db_reader_close(r);
}

static void wait_written(struct db_writer *w, uint64_t n)
{
	struct db_writer_stats st;

	for (;;) {
		db_writer_stats(w, &st);
		if (st.written >= n)
			return;
		usleep(1000);
	}
}

static void test_readers_follow_a_trace_being_written(void **state)
{
	struct fx *fx = *state;
	struct db_writer *w = open_writer(fx->path);
	struct db_reader *r1, *r2;
	int64_t counts[DB_KIND_MAX + 1];
	struct db_filter all = { 0 };
	struct db_event ev;
	char *err = NULL;

	assert_int_equal(db_writer_set_meta(w, "probe", "kernel.probe"), DB_OK);
	for (int i = 0; i < 1000; i++) {
		ev = ev_make(DB_TRAP, (uint64_t)i, 0, 0, 0x20, 0);
		assert_int_equal(db_writer_push(w, &ev), DB_OK);
	}
	wait_written(w, 1000);
	r1 = open_reader(fx->path);
	r2 = open_reader(fx->path);
	assert_int_equal(db_count_by_kind(r1, counts, &err), DB_OK);
	assert_int_equal(counts[DB_TRAP], 1000);
	assert_int_equal(count_filter(r2, &all, NULL), 1000);
	assert_string_equal(db_meta(r2, "probe"), "kernel.probe");
	assert_null(db_meta(r2, "events_total")); /* written by close */

	for (int i = 0; i < 500; i++) {
		ev = ev_make(DB_EOI, 1000 + (uint64_t)i, 0, 0, 1, 0);
		assert_int_equal(db_writer_push(w, &ev), DB_OK);
	}
	wait_written(w, 1500);
	assert_int_equal(db_count_by_kind(r1, counts, &err), DB_OK);
	assert_int_equal(counts[0], 1500);
	assert_int_equal(counts[DB_EOI], 500);
	/* Block 3 (ids 769..1024) was summarised before its EOIs arrived. */
	struct db_filter eoi = { .kinds = 1u << DB_EOI };
	int64_t first = 0;
	assert_int_equal(count_filter(r1, &eoi, &first), 500);
	assert_int_equal(first, 1001);
	db_reader_close(r1);
	/* The writer closes while a reader is in the middle of a scan. */
	struct db_cursor *c = NULL;
	assert_int_equal(db_cursor_open(r2, &all, &c, &err), DB_OK);
	assert_int_equal(db_cursor_next(c, &ev, NULL), 1);
	assert_int_equal(ev.id, 1);
	close_writer(w);
	int64_t n = 1;
	while (db_cursor_next(c, &ev, NULL) == 1)
		n++;
	assert_int_equal(n, 1500);
	db_cursor_close(c);
	assert_int_equal(count_filter(r2, &all, NULL), 1500);
	db_reader_close(r2);
	r1 = open_reader(fx->path);
	assert_string_equal(db_meta(r1, "events_total"), "1500");
	db_reader_close(r1);
}

static void test_stats_count_pushes(void **state)
{
	struct fx *fx = *state;
	struct db_writer *w = open_writer(fx->path);
	struct db_writer_stats st;
	struct db_event ev = ev_make(DB_IRQL, 1, 0, 0, 0, 2);

	for (int i = 0; i < 10; i++)
		assert_int_equal(db_writer_push(w, &ev), DB_OK);
	wait_written(w, 10);
	db_writer_stats(w, &st);
	assert_int_equal(st.queued, 10);
	assert_int_equal(st.written, 10);
	assert_int_equal(st.dropped, 0);
	close_writer(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_kind_names_round_trip),
		T(test_every_kind_and_field_round_trips),
		T(test_threads_by_address_and_tid),
		T(test_lock_instances_and_types),
		T(test_events_view_unpacks_fields),
		T(test_count_by_kind),
		T(test_text_markers),
		T(test_metadata_set_and_replaced),
		T(test_update_meta_on_closed_trace),
		T(test_symbolize_with_recorded_symbols),
		T(test_names_from_namer_and_overrides),
		T(test_lock_classes),
		T(test_filter_by_kinds),
		T(test_filter_by_thread_and_obj),
		T(test_filter_id_and_icount_ranges),
		T(test_filter_rare_kind_across_blocks),
		T(test_filter_icount_window_across_blocks),
		T(test_filter_thread_and_lock_across_blocks),
		T(test_filter_limit_and_descending),
		T(test_bad_filters_refused),
		T(test_writer_refuses_existing_path),
		T(test_writer_ignores_stale_wal),
		T(test_writer_refuses_missing_directory),
		T(test_push_refuses_unknown_kind),
		T(test_reader_refuses_missing_file),
		T(test_reader_refuses_garbage_file),
		T(test_reader_refuses_empty_file),
		T(test_reader_refuses_truncated_file),
		T(test_reader_refuses_newer_schema),
		T(test_reader_refuses_damaged_schema),
		T(test_reader_refuses_schema_1),
		T(test_reader_refuses_other_sqlite_file),
		T(test_sql_reads_events_view),
		T(test_sql_refuses_writes_and_bad_sql),
		T(test_sql_row_callback_stops_early),
		T(test_concurrent_pushes_all_arrive),
		T(test_readers_follow_a_trace_being_written),
		T(test_stats_count_pushes),
#undef T
	};
	return cmocka_run_group_tests_name("db", tests, NULL, NULL);
}
