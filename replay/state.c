/*
 * state.c - what the trace says about the guest at a point of a recording:
 * the IRQL, the current thread, the locks held. Computed by streaming the
 * events before that point (constant memory besides the held-lock set).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "replay/internal.h"

void replay_state_free(struct replay_state *s)
{
	if (!s)
		return;
	free(s->held);
	memset(s, 0, sizeof(*s));
}

static int hold(struct replay_state *s, const struct db_event *ev)
{
	struct replay_held *h;

	if (s->n_held == s->cap_held) {
		size_t cap = s->cap_held ? s->cap_held * 2 : 16;
		h = realloc(s->held, cap * sizeof(*h));
		if (!h)
			return REPLAY_E_NOMEM;
		s->held = h;
		s->cap_held = cap;
	}
	h = &s->held[s->n_held++];
	h->lock = ev->obj;
	h->thread = ev->thread;
	h->event_id = ev->id;
	h->icount = ev->icount;
	h->pc = ev->pc;
	h->irql = ev->a;
	h->mutex = ev->kind == DB_MUTEX_ACQ;
	return 0;
}

static void unhold(struct replay_state *s, const struct db_event *ev)
{
	size_t i;

	/* The most recent acquisition of that lock goes (recursive mutexes). */
	for (i = s->n_held; i-- > 0;)
		if (s->held[i].lock == ev->obj) {
			memmove(&s->held[i], &s->held[i + 1], (s->n_held - i - 1) * sizeof(s->held[0]));
			s->n_held--;
			return;
		}
}

int replay_state_at(struct db_reader *db, uint64_t icount, int64_t before_id, struct replay_state *out, char **err)
{
	struct db_filter f = { 0 };
	struct db_cursor *c = NULL;
	struct db_event ev;
	const char *text;
	int rc;

	memset(out, 0, sizeof(*out));
	out->irql = -1;
	f.kinds = 1u << DB_IRQL | 1u << DB_SWITCH | 1u << DB_LOCK_ACQ | 1u << DB_LOCK_REL | 1u << DB_MUTEX_ACQ |
		  1u << DB_MUTEX_REL | 1u << DB_TRAP | 1u << DB_IRET;
	if ((rc = db_cursor_open(db, &f, &c, err)) < 0)
		return replay_set_err(err, REPLAY_E_FORMAT, "cannot read the trace");
	while ((rc = db_cursor_next(c, &ev, &text)) == 1) {
		if (before_id > 0 ? ev.id >= before_id : ev.icount >= icount)
			break;
		out->thread = ev.thread ? ev.thread : out->thread;
		switch (ev.kind) {
		case DB_IRQL:
			out->irql = ev.b;
			break;
		case DB_SWITCH:
			out->thread = (uint64_t)ev.b;
			break;
		case DB_LOCK_ACQ:
		case DB_MUTEX_ACQ:
			if (hold(out, &ev) < 0) {
				db_cursor_close(c);
				replay_state_free(out);
				return replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
			}
			break;
		case DB_LOCK_REL:
		case DB_MUTEX_REL:
			unhold(out, &ev);
			break;
		case DB_TRAP:
			out->trap_depth++;
			break;
		case DB_IRET:
			if (out->trap_depth > 0)
				out->trap_depth--;
			break;
		}
		out->events_before++;
	}
	db_cursor_close(c);
	if (rc < 0) {
		replay_state_free(out);
		return replay_set_err(err, REPLAY_E_FORMAT, "cannot read the trace");
	}
	return 0;
}
