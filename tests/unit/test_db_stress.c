/*
 * test_db_stress.c - many producers against one writer, meant for
 * ThreadSanitizer (make test-tsan) and run briefly in every `make test`.
 *
 * Producers push as fast as they can into a small ring (256 slots), with text payloads
 * and setters mixed in, so the ring is full most of the time and the
 * wrap-around, the full path and the setter ordering are all exercised. The
 * producers with an odd id retry until the ring accepts, the others give
 * up at once. The checks: accepted + given up = offered, every refusal
 * counted as dropped, every
 * stored event is intact and each producer's events are in its order.
 * KREWIND_STRESS_ROUNDS (default 2) sets how many rounds run.
 */
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "db/db.h"
#include "db/internal.h"

enum { PRODUCERS = 4, PER_PRODUCER = 20000 };

struct producer {
	struct db_writer *w;
	struct db_queue *q;
	uint16_t id;
	int retry; /* on a full ring: 1 retry until accepted, 0 give up */
	uint64_t pushed, refused, retries;
};

/* ------------------------------------------------------------ the ring alone */

static void *ring_producer(void *arg)
{
	struct producer *p = arg;

	for (uint64_t i = 0; i < PER_PRODUCER; i++) {
		struct db_event ev = { .icount = i, .vcpu = p->id, .kind = DB_IRQL, .a = (int64_t)(i * 3) };
		while (db_queue_push(p->q, &ev, NULL) != DB_OK) {
			p->refused++;
			sched_yield(); /* two cores: let the consumer run */
		}
		p->pushed++;
	}
	return NULL;
}

/* A 64-slot ring with one consumer: every event arrives once, in its
 * producer's order, with its payload intact. */
static void test_ring_delivers_everything_in_order(void **state)
{
	struct db_queue q;
	struct producer p[PRODUCERS];
	pthread_t th[PRODUCERS];
	uint64_t next[PRODUCERS] = { 0 }, total = 0;
	struct db_event ev;
	char *text;

	(void)state;
	assert_int_equal(db_queue_init(&q, 64), DB_OK);
	for (int i = 0; i < PRODUCERS; i++) {
		p[i] = (struct producer){ .q = &q, .id = (uint16_t)i };
		assert_int_equal(pthread_create(&th[i], NULL, ring_producer, &p[i]), 0);
	}
	while (total < (uint64_t)PRODUCERS * PER_PRODUCER) {
		if (!db_queue_pop(&q, &ev, &text)) {
			sched_yield();
			continue;
		}
		assert_true(ev.vcpu < PRODUCERS);
		assert_int_equal(ev.icount, next[ev.vcpu]);
		assert_int_equal(ev.a, (int64_t)(ev.icount * 3));
		assert_null(text);
		next[ev.vcpu]++;
		total++;
	}
	for (int i = 0; i < PRODUCERS; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(db_queue_pop(&q, &ev, &text), 0);
	db_queue_free(&q);
}

/* A fresh ring (calloc's zeroes: each slot stores its sequence minus its
 * index) takes exactly cap events, refuses the next, and after each lap
 * takes as many as were popped, in order. */
static void test_ring_full_and_laps(void **state)
{
	struct db_queue q;
	struct db_event ev = { 0 };
	char *text;
	uint64_t in = 0, out = 0;

	(void)state;
	assert_int_equal(db_queue_init(&q, 4), DB_OK);
	for (int lap = 0; lap < 5; lap++) {
		while (in - out < 4) {
			ev.icount = in++;
			assert_int_equal(db_queue_push(&q, &ev, NULL), DB_OK);
		}
		ev.icount = in;
		assert_int_equal(db_queue_push(&q, &ev, NULL), DB_E_FULL);
		for (int k = 0; k < 3 - lap % 3; k++) {
			assert_int_equal(db_queue_pop(&q, &ev, &text), 1);
			assert_int_equal(ev.icount, out++);
		}
	}
	while (db_queue_pop(&q, &ev, &text))
		assert_int_equal(ev.icount, out++);
	assert_int_equal(out, in);
	db_queue_free(&q);
}

/* ------------------------------------------------------------ writer */

static void *writer_producer(void *arg)
{
	struct producer *p = arg;
	char text[48], key[32];

	for (uint64_t i = 0; i < PER_PRODUCER; i++) {
		struct db_event ev = { .icount = i, .vcpu = p->id, .kind = DB_LOCK_ACQ,
				       .thread = 0xffffffff80200000ULL + p->id * 0x100,
				       .obj = 0xffffffff80300000ULL + (i % 16) * 0x40, .a = (int64_t)i,
				       .b = p->id };
		int rc;
		if (i % 1000 == 0) {
			ev.kind = DB_MARKER;
			ev.obj = 0;
			snprintf(text, sizeof(text), "producer %u event %" PRIu64, p->id, i);
			while ((rc = db_writer_push_text(p->w, &ev, text)) != DB_OK && p->retry) {
				p->retries++;
				sched_yield();
			}
			snprintf(key, sizeof(key), "progress_%u", p->id);
			assert_int_equal(db_writer_set_meta(p->w, key, text), DB_OK);
			assert_int_equal(db_writer_name(p->w, 1, ev.thread + 0x1000, text), DB_OK);
		} else {
			while ((rc = db_writer_push(p->w, &ev)) != DB_OK && p->retry) {
				p->retries++;
				sched_yield();
			}
		}
		if (rc == DB_OK)
			p->pushed++;
		else
			p->refused++;
	}
	return NULL;
}

static void stress_round(const char *path)
{
	struct db_writer *w = NULL;
	struct db_reader *r;
	struct db_cursor *c = NULL;
	struct producer p[PRODUCERS];
	pthread_t th[PRODUCERS];
	struct db_writer_stats st;
	struct db_event ev;
	const char *text;
	uint64_t pushed = 0, refused = 0, retries = 0, stored = 0;
	int64_t last[PRODUCERS];
	char *err = NULL;

	assert_int_equal(db_writer_open_ring(path, NULL, NULL, 256, &w, &err), DB_OK);
	for (int i = 0; i < PRODUCERS; i++) {
		p[i] = (struct producer){ .w = w, .id = (uint16_t)i, .retry = i % 2 };
		last[i] = -1;
		assert_int_equal(pthread_create(&th[i], NULL, writer_producer, &p[i]), 0);
	}
	for (int i = 0; i < PRODUCERS; i++) {
		pthread_join(th[i], NULL);
		pushed += p[i].pushed;
		refused += p[i].refused;
		retries += p[i].retries;
	}
	db_writer_stats(w, &st);
	assert_int_equal(pushed + refused, (uint64_t)PRODUCERS * PER_PRODUCER);
	assert_int_equal(st.queued, pushed);
	assert_int_equal(st.dropped, refused + retries); /* every DB_E_FULL counts */
	assert_int_equal(db_writer_close(w, &err), DB_OK);

	assert_int_equal(db_reader_open(path, &r, &err), DB_OK);
	assert_int_equal(db_cursor_open(r, NULL, &c, &err), DB_OK);
	while (db_cursor_next(c, &ev, &text) == 1) {
		assert_true(ev.vcpu < PRODUCERS);
		assert_true((int64_t)ev.icount > last[ev.vcpu]);
		last[ev.vcpu] = (int64_t)ev.icount;
		assert_int_equal(ev.b, ev.vcpu);
		assert_int_equal(ev.thread, 0xffffffff80200000ULL + ev.vcpu * 0x100);
		if (ev.kind == DB_MARKER) {
			char want[48];
			snprintf(want, sizeof(want), "producer %u event %" PRIu64, ev.vcpu, ev.icount);
			assert_string_equal(text, want);
		} else {
			assert_int_equal(ev.kind, DB_LOCK_ACQ);
			assert_int_equal(ev.a, (int64_t)ev.icount);
			assert_int_equal(ev.obj, 0xffffffff80300000ULL + (ev.icount % 16) * 0x40);
		}
		stored++;
	}
	db_cursor_close(c);
	assert_int_equal(stored, pushed);
	/* The retrying half got everything in, and the ring did fill up. */
	assert_true(stored >= (uint64_t)PRODUCERS / 2 * PER_PRODUCER);
	assert_true(p[0].refused + p[1].retries > 0);
	char total[32];
	snprintf(total, sizeof(total), "%" PRIu64, pushed);
	assert_string_equal(db_meta(r, "events_total"), total);
	snprintf(total, sizeof(total), "%" PRIu64, refused + retries);
	assert_string_equal(db_meta(r, "dropped"), total);
	assert_non_null(db_meta(r, "progress_0"));
	db_reader_close(r);
}

static void test_writer_under_many_producers(void **state)
{
	char dir[] = "/tmp/test_db_stress.XXXXXX", path[64], cmd[64];
	const char *env = getenv("KREWIND_STRESS_ROUNDS");
	int rounds = env ? atoi(env) : 2;

	(void)state;
	assert_non_null(mkdtemp(dir));
	for (int i = 0; i < rounds; i++) {
		snprintf(path, sizeof(path), "%s/r%d.db", dir, i);
		stress_round(path);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ring_delivers_everything_in_order),
		cmocka_unit_test(test_ring_full_and_laps),
		cmocka_unit_test(test_writer_under_many_producers),
	};
	return cmocka_run_group_tests_name("db_stress", tests, NULL, NULL);
}
