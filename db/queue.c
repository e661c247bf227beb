/*
 * queue.c - the bounded MPSC ring between vCPU threads and the writer thread.
 *
 * Slot i starts with seq = i. A producer that sees seq == head owns the slot
 * once its CAS moves head past it; it fills the slot and stores seq = pos + 1
 * (release), which publishes it. The consumer at tail waits for seq ==
 * tail + 1, copies the slot out and stores seq = tail + cap, handing the slot
 * to the producer one lap later. seq < head means the ring is full.
 *
 * A slot stores seq - i, so the ring starts as calloc's zeroes: its pages
 * (25 MB for the writer's default ring) are not touched until events reach
 * them, which a short recording never does.
 */
#include <stdlib.h>

#include "db/internal.h"

int db_queue_init(struct db_queue *q, size_t cap)
{
	q->slots = calloc(cap, sizeof(*q->slots));
	if (!q->slots)
		return DB_E_NOMEM;
	q->mask = cap - 1;
	atomic_init(&q->head, 0);
	q->tail = 0;
	return DB_OK;
}

void db_queue_free(struct db_queue *q)
{
	struct db_event ev;
	char *text;

	if (!q->slots)
		return;
	while (db_queue_pop(q, &ev, &text))
		free(text);
	free(q->slots);
	q->slots = NULL;
}

int db_queue_push(struct db_queue *q, const struct db_event *ev, char *text)
{
	uint64_t pos = atomic_load_explicit(&q->head, memory_order_relaxed);
	struct db_slot *s;

	for (;;) {
		s = &q->slots[pos & q->mask];
		uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire) + (pos & q->mask);
		int64_t dif = (int64_t)(seq - pos);
		if (dif == 0) {
			if (atomic_compare_exchange_weak_explicit(&q->head, &pos, pos + 1,
								  memory_order_relaxed,
								  memory_order_relaxed))
				break;
		} else if (dif < 0) {
			return DB_E_FULL;
		} else {
			pos = atomic_load_explicit(&q->head, memory_order_relaxed);
		}
	}
	s->ev = *ev;
	s->text = text;
	atomic_store_explicit(&s->seq, pos + 1 - (pos & q->mask), memory_order_release);
	return DB_OK;
}

int db_queue_pop(struct db_queue *q, struct db_event *ev, char **text)
{
	struct db_slot *s = &q->slots[q->tail & q->mask];
	uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire) + (q->tail & q->mask);

	if (seq != q->tail + 1)
		return 0;
	*ev = s->ev;
	*text = s->text;
	atomic_store_explicit(&s->seq, q->tail + q->mask + 1 - (q->tail & q->mask), memory_order_release);
	q->tail++;
	return 1;
}
