/*
 * cmd_report.c - `krewind report REC`: one self-contained HTML file with a
 * zoomable timeline of the recording (IRQL per CPU, trap nesting and EOIs,
 * thread runs, lock spins and holds, markers) and check's findings linked to
 * it, each with the replay and gdb commands to copy.
 *
 * The page (ui-cli/report/report.html: markup, CSS and JS, no network) is
 * embedded into the binary at build time; this file computes the data and
 * writes it into the page as one JSON object. Large traces stay bounded:
 *   - pass 1 streams every event once and turns it into intervals (runs,
 *     traps, lock spins/holds) and IRQL steps, kept in memory; trap frames
 *     are kept per thread, so they follow their thread across switches;
 *   - an overview of OV_BUCKETS buckets over the whole icount range is
 *     computed from them (IRQL min/max, deepest trap, longest-running thread,
 *     lock hold/spin coverage, event density);
 *   - the detail (every item and every event's description) is embedded only
 *     for at most --detail N events: all of them when the trace is small,
 *     else windows around the findings' culprit events (or the trace's end);
 *   - pass 2 reads the events of those windows again for their descriptions.
 * docs/report.md documents the page, the limits and the data.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analysis/analysis.h"
#include "replay/replay.h"
#include "ui-cli/cli.h"

/* The page template, generated from ui-cli/report/report.html by cli.mk. */
extern const unsigned char cli_report_template[];
extern const size_t cli_report_template_len;

#define DATA_PLACEHOLDER "/*@KREWIND_DATA@*/null"
#define OV_BUCKETS 2048
#define DEFAULT_DETAIL 50000
#define MAX_DETAIL 2000000
#define MAX_WINDOWS 16    /* findings that get a detail window of their own */
#define MAX_TRAP_DEPTH 32 /* deeper nesting is folded onto the last level */
#define MAX_CPUS 64       /* vCPUs drawn; events of others are counted only */
#define MAX_LOCK_ROWS 64  /* most-used locks that get a row */
#define MAX_MARKERS 5000  /* beyond this, only the markers inside the detail windows */

static const char synopsis[] = "krewind report REC [-o FILE.html] [--force] [--detail N] [-q] [--json]";
static const char description[] =
	"Writes one self-contained HTML file (no network: inline JS and CSS) with a\n"
	"zoomable timeline of the recording over icount: per CPU the IRQL, trap\n"
	"nesting with EOIs, thread runs; lock spins and holds per lock; markers\n"
	"(serial lines, scenario, bugcheck). The findings of 'krewind check' are\n"
	"listed at the side, linked to their events, with the replay and gdb\n"
	"commands to copy. Default output: REC's directory/report.html; an existing\n"
	"file is refused unless --force. docs/report.md describes the page.";

enum { OPT_JSON = 1, OPT_OUTPUT, OPT_FORCE, OPT_DETAIL, OPT_QUIET };
static const struct cli_option options[] = {
	{OPT_OUTPUT, "output", 'o', "FILE", "write the page to FILE (default REC_DIR/report.html)"},
	{OPT_FORCE, "force", 'f', NULL, "overwrite FILE if it exists"},
	{OPT_DETAIL, "detail", 0, "N", "embed full detail for at most N events (default 50000)"},
	{OPT_QUIET, "quiet", 'q', NULL, "no progress line"},
	{OPT_JSON, "json", 0, NULL, "print {\"path\", \"events\", \"findings\", ...} when done"},
	{0},
};

/* ------------------------------------------------------------ growable arrays */

struct vec {
	void *p;
	size_t n, cap, size;
};

/* Returns a pointer to a new zeroed element, or NULL when out of memory. */
static void *vec_push(struct vec *v)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 256;
		void *p = realloc(v->p, cap * v->size);

		if (p == NULL)
			return NULL;
		v->p = p;
		v->cap = cap;
	}
	memset((char *)v->p + v->n * v->size, 0, v->size);
	return (char *)v->p + v->n++ * v->size;
}

#define VEC(type) {NULL, 0, 0, sizeof(type)}
#define AT(v, type, i) (&((type *)(v).p)[i])

/* ------------------------------------------------------------ address -> index */

struct index_map {
	uint64_t *keys; /* 0 = empty slot */
	int32_t *vals;
	size_t cap, n;
};

static int map_grow(struct index_map *m)
{
	size_t cap = m->cap ? m->cap * 2 : 64, i;
	uint64_t *keys = calloc(cap, sizeof(*keys));
	int32_t *vals = calloc(cap, sizeof(*vals));

	if (keys == NULL || vals == NULL) {
		free(keys);
		free(vals);
		return -1;
	}
	for (i = 0; i < m->cap; i++) {
		size_t h;

		if (m->keys[i] == 0)
			continue;
		h = (m->keys[i] * 0x9e3779b97f4a7c15ull >> 17) & (cap - 1);
		while (keys[h])
			h = (h + 1) & (cap - 1);
		keys[h] = m->keys[i];
		vals[h] = m->vals[i];
	}
	free(m->keys);
	free(m->vals);
	m->keys = keys;
	m->vals = vals;
	m->cap = cap;
	return 0;
}

/* The index of key, or -1 if absent. */
static int32_t map_get(const struct index_map *m, uint64_t key)
{
	size_t h;

	if (m->cap == 0 || key == 0)
		return -1;
	h = (key * 0x9e3779b97f4a7c15ull >> 17) & (m->cap - 1);
	while (m->keys[h]) {
		if (m->keys[h] == key)
			return m->vals[h];
		h = (h + 1) & (m->cap - 1);
	}
	return -1;
}

static int map_put(struct index_map *m, uint64_t key, int32_t val)
{
	size_t h;

	if ((m->n + 1) * 2 > m->cap && map_grow(m) != 0)
		return -1;
	h = (key * 0x9e3779b97f4a7c15ull >> 17) & (m->cap - 1);
	while (m->keys[h] && m->keys[h] != key)
		h = (h + 1) & (m->cap - 1);
	if (m->keys[h] == 0)
		m->n++;
	m->keys[h] = key;
	m->vals[h] = val;
	return 0;
}

/* ------------------------------------------------------------ timeline items */

struct irql_step {
	uint64_t ic;
	int64_t id;
	uint16_t cpu;
	int8_t old, now;
};

/* A run of a thread, a trap frame, a lock spin and hold. A trap frame
 * follows its thread: a switch suspends the open frames of the thread
 * switched out and resumes those of the one switched in, so a frame is drawn
 * as one span per stretch of it that ran on a CPU (cont tells which ends are
 * a switch). */
enum span_cont { CONT_RESUMED = 1, CONT_SUSPENDED = 2 };
enum span_open {
	OPEN_NO = 0,
	OPEN_NEVER = 1,     /* never returned: the CPU was inside it when the trace
	                       ended, an outer frame returned first, or check names
	                       the switch that suspended it (eoi-before-switch) */
	OPEN_SUSPENDED = 2, /* its thread was switched out inside it and did not run
	                       again before the trace ended (ordinary preemption) */
};
struct span {
	uint64_t s, e;   /* icount interval */
	int64_t id0, id1; /* events that open / close it (0 = none); traps: the trap,
	                     and the iretq or the switch that suspended it */
	int64_t x;       /* thread index (runs), vector (traps) */
	int32_t th;      /* traps: the thread index of the frame (-1 unknown) */
	uint16_t cpu;
	uint8_t depth;   /* traps: nesting level, 0 = outermost */
	uint8_t open;    /* enum span_open */
	uint8_t cont;    /* traps: enum span_cont bits */
};

struct lock_span {
	uint64_t t, a, r;        /* try, acquired, released icounts (t/a 0: not seen) */
	int64_t tid, aid, rid;   /* their events */
	int32_t lock, thread;    /* indexes */
	uint16_t cpu;
	uint8_t open, mutex;
};

struct point {
	uint64_t ic;
	int64_t id;
	uint16_t cpu;
	int16_t depth;
};

struct marker {
	uint64_t ic;
	int64_t id;
	uint16_t cpu;
	int16_t type; /* enum db_marker, or -1 for a bugcheck */
	char *text;
};

/* The open trap frames of a thread (or of a CPU's events without a thread):
 * traps[i].s is where the stretch now on a CPU began. */
struct frames {
	struct span traps[MAX_TRAP_DEPTH];
	int ntraps;
};

struct cpu_state {
	int seen;
	uint64_t first, last;    /* icounts of its first and last events */
	struct span run;         /* current run; run.e == 0 while none */
	int running;
	int32_t cur;             /* thread whose frames are on the CPU, -1 none */
	struct frames nothread;  /* frames of events with no thread */
	int irql;                /* -1 unknown */
};

struct lock_state {
	int held;
	struct lock_span cur;
	uint64_t try_ic[MAX_CPUS];
	int64_t try_id[MAX_CPUS];
	int64_t acquisitions;
};

struct names_table {
	struct index_map map;
	struct vec addrs; /* uint64_t, by index */
};

struct window {
	int64_t lo, hi;       /* event ids */
	uint64_t ic_lo, ic_hi; /* icounts seen in it (pass 2) */
};

struct report {
	struct db_reader *db;
	struct cli_names names;
	const char *spec;
	struct replay_recording *rec;
	struct analysis_report *findings;

	struct names_table threads, locks;
	struct vec irql, traps, runs, lspans, eois, markers; /* of the structs above */
	struct vec icounts;                                /* uint64_t: every event, for density */
	struct cpu_state cpus[MAX_CPUS];
	struct vec lstate;                                 /* struct lock_state per lock index */
	struct vec tframes;                                /* struct frames per thread index */
	int ncpus;
	int64_t events, first_id, last_id, markers_total;
	uint64_t ic_min, ic_max;

	int64_t detail;
	struct window windows[MAX_WINDOWS + 1];
	int nwindows;
	int complete; /* every event is in the detail */
	int64_t detail_events;
	size_t out_bytes;
};

static int32_t name_index(struct names_table *t, uint64_t addr)
{
	int32_t i;
	uint64_t *slot;

	if (addr == 0)
		return -1;
	i = map_get(&t->map, addr);
	if (i >= 0)
		return i;
	slot = vec_push(&t->addrs);
	if (slot == NULL)
		return -2;
	*slot = addr;
	i = (int32_t)(t->addrs.n - 1);
	if (map_put(&t->map, addr, i) != 0)
		return -2;
	return i;
}

/* ------------------------------------------------------------ pass 1 */

static int close_run(struct report *rp, struct cpu_state *c, uint64_t end, int64_t id, int open)
{
	struct span *s;

	if (!c->running)
		return 0;
	s = vec_push(&rp->runs);
	if (s == NULL)
		return -1;
	*s = c->run;
	s->e = end;
	s->id1 = id;
	s->open = (uint8_t)open;
	c->running = 0;
	return 0;
}

static int start_run(struct report *rp, struct cpu_state *c, uint16_t cpu, uint64_t thread, uint64_t ic,
		     int64_t id)
{
	int32_t t = name_index(&rp->threads, thread);

	if (t < -1)
		return -1;
	memset(&c->run, 0, sizeof(c->run));
	c->run.s = ic;
	c->run.id0 = id;
	c->run.x = t;
	c->run.cpu = cpu;
	c->running = 1;
	return 0;
}

static int push_trap(struct report *rp, const struct span *t, uint64_t end, int64_t id, int open)
{
	struct span *s = vec_push(&rp->traps);

	if (s == NULL)
		return -1;
	*s = *t;
	s->e = end;
	s->id1 = id;
	s->open = (uint8_t)open;
	return 0;
}

static struct lock_state *lock_state(struct report *rp, int32_t li)
{
	while ((size_t)li >= rp->lstate.n)
		if (vec_push(&rp->lstate) == NULL)
			return NULL;
	return AT(rp->lstate, struct lock_state, li);
}

static int push_lock_span(struct report *rp, const struct lock_span *ls)
{
	struct lock_span *s = vec_push(&rp->lspans);

	if (s == NULL)
		return -1;
	*s = *ls;
	return 0;
}

static int on_lock(struct report *rp, const struct db_event *ev, uint16_t cpu)
{
	int32_t li = name_index(&rp->locks, ev->obj), ti;
	struct lock_state *ls;
	int mutex = ev->kind == DB_MUTEX_ACQ || ev->kind == DB_MUTEX_REL;

	if (li == -1)
		return 0;
	if (li < -1 || (ls = lock_state(rp, li)) == NULL)
		return -1;
	ti = name_index(&rp->threads, ev->thread);
	if (ti < -1)
		return -1;
	switch (ev->kind) {
	case DB_LOCK_TRY:
		if (cpu < MAX_CPUS) {
			ls->try_ic[cpu] = ev->icount;
			ls->try_id[cpu] = ev->id;
		}
		break;
	case DB_LOCK_ACQ:
	case DB_MUTEX_ACQ:
		if (ls->held) { /* acquired again without a release seen */
			ls->cur.r = ev->icount;
			ls->cur.open = 1;
			if (push_lock_span(rp, &ls->cur) != 0)
				return -1;
		}
		memset(&ls->cur, 0, sizeof(ls->cur));
		if (cpu < MAX_CPUS && ls->try_id[cpu] && !mutex) {
			ls->cur.t = ls->try_ic[cpu];
			ls->cur.tid = ls->try_id[cpu];
			ls->try_id[cpu] = 0;
		}
		ls->cur.a = ev->icount;
		ls->cur.aid = ev->id;
		ls->cur.lock = li;
		ls->cur.thread = ti;
		ls->cur.cpu = cpu;
		ls->cur.mutex = (uint8_t)mutex;
		ls->held = 1;
		ls->acquisitions++;
		break;
	case DB_LOCK_REL:
	case DB_MUTEX_REL:
		if (!ls->held)
			break; /* check reports it (release-not-held) */
		ls->cur.r = ev->icount;
		ls->cur.rid = ev->id;
		ls->held = 0;
		if (push_lock_span(rp, &ls->cur) != 0)
			return -1;
		break;
	}
	return 0;
}

static struct frames *thread_frames(struct report *rp, int32_t ti)
{
	while ((size_t)ti >= rp->tframes.n)
		if (vec_push(&rp->tframes) == NULL)
			return NULL;
	return AT(rp->tframes, struct frames, ti);
}

/* The frames now on CPU c: those of its current thread. */
static struct frames *cpu_frames(struct report *rp, struct cpu_state *c)
{
	return c->cur >= 0 ? thread_frames(rp, c->cur) : &c->nothread;
}

/* The CPU changes thread at ev (a switch, or an event of another thread
 * without one): the open frames of the one that leaves end their stretch
 * here, suspended; those of the one that comes resume here. */
static int change_thread(struct report *rp, struct cpu_state *c, uint16_t cpu, uint64_t thread,
			 const struct db_event *ev)
{
	int32_t ti = name_index(&rp->threads, thread);
	struct frames *fr;
	int i;

	if (ti < -1 || (fr = cpu_frames(rp, c)) == NULL)
		return -1;
	for (i = 0; i < fr->ntraps; i++) {
		struct span *s = vec_push(&rp->traps);

		if (s == NULL)
			return -1;
		*s = fr->traps[i];
		s->e = ev->icount;
		s->id1 = ev->kind == DB_SWITCH ? ev->id : 0;
		s->cont |= CONT_SUSPENDED;
	}
	c->cur = ti;
	if ((fr = cpu_frames(rp, c)) == NULL)
		return -1;
	for (i = 0; i < fr->ntraps; i++) {
		fr->traps[i].s = ev->icount;
		fr->traps[i].cpu = cpu;
		fr->traps[i].cont = CONT_RESUMED;
	}
	return 0;
}

static int on_event(struct report *rp, const struct db_event *ev, const char *text)
{
	uint16_t cpu = ev->vcpu;
	struct cpu_state *c;
	struct frames *fr;
	uint64_t *ic = vec_push(&rp->icounts);

	if (ic == NULL)
		return -1;
	*ic = ev->icount;
	if (rp->events == 0 || ev->icount < rp->ic_min)
		rp->ic_min = ev->icount;
	if (ev->icount > rp->ic_max)
		rp->ic_max = ev->icount;
	if (rp->events == 0)
		rp->first_id = ev->id;
	rp->last_id = ev->id;
	rp->events++;
	if (cpu >= MAX_CPUS)
		return 0;
	c = &rp->cpus[cpu];
	if (!c->seen) {
		c->seen = 1;
		c->first = ev->icount;
		c->irql = -1;
		c->cur = -1;
		if (cpu + 1 > rp->ncpus)
			rp->ncpus = cpu + 1;
	}
	c->last = ev->icount;
	if (!c->running && ev->thread && ev->kind != DB_SWITCH && start_run(rp, c, cpu, ev->thread, ev->icount, 0))
		return -1;
	if (ev->kind == DB_SWITCH) {
		if (change_thread(rp, c, cpu, (uint64_t)ev->b, ev))
			return -1;
	} else if (ev->thread && name_index(&rp->threads, ev->thread) != c->cur) {
		if (change_thread(rp, c, cpu, ev->thread, ev))
			return -1;
	}
	fr = cpu_frames(rp, c);
	if (fr == NULL)
		return -1;

	switch (ev->kind) {
	case DB_SWITCH:
		if (!c->running && ev->a && start_run(rp, c, cpu, (uint64_t)ev->a, c->first, 0))
			return -1;
		if (close_run(rp, c, ev->icount, ev->id, 0) || start_run(rp, c, cpu, (uint64_t)ev->b, ev->icount, ev->id))
			return -1;
		break;
	case DB_IRQL: {
		struct irql_step *s = vec_push(&rp->irql);

		if (s == NULL)
			return -1;
		s->ic = ev->icount;
		s->id = ev->id;
		s->cpu = cpu;
		s->old = (int8_t)ev->a;
		s->now = (int8_t)ev->b;
		c->irql = (int)ev->b;
		break;
	}
	case DB_TRAP: {
		struct span *t;

		if (fr->ntraps == MAX_TRAP_DEPTH) { /* fold: close the innermost */
			if (push_trap(rp, &fr->traps[--fr->ntraps], ev->icount, 0, OPEN_NEVER))
				return -1;
		}
		t = &fr->traps[fr->ntraps];
		memset(t, 0, sizeof(*t));
		t->s = ev->icount;
		t->id0 = ev->id;
		t->x = ev->a;
		t->th = c->cur;
		t->cpu = cpu;
		t->depth = (uint8_t)fr->ntraps++;
		break;
	}
	case DB_IRET: {
		int i = fr->ntraps - 1;

		while (i >= 0 && ev->a >= 0 && fr->traps[i].x != ev->a)
			i--;
		if (i < 0)
			break; /* an iretq of a frame we never saw open */
		while (fr->ntraps > i + 1)
			if (push_trap(rp, &fr->traps[--fr->ntraps], ev->icount, 0, OPEN_NEVER))
				return -1;
		if (push_trap(rp, &fr->traps[--fr->ntraps], ev->icount, ev->id, OPEN_NO))
			return -1;
		break;
	}
	case DB_EOI: {
		struct point *p = vec_push(&rp->eois);

		if (p == NULL)
			return -1;
		p->ic = ev->icount;
		p->id = ev->id;
		p->cpu = cpu;
		p->depth = (int16_t)(fr->ntraps - 1);
		break;
	}
	case DB_LOCK_TRY:
	case DB_LOCK_ACQ:
	case DB_LOCK_REL:
	case DB_MUTEX_ACQ:
	case DB_MUTEX_REL:
		if (on_lock(rp, ev, cpu))
			return -1;
		break;
	case DB_MARKER:
	case DB_BUGCHECK: {
		struct marker *m;
		char buf[64];

		rp->markers_total++;
		m = vec_push(&rp->markers);
		if (m == NULL)
			return -1;
		m->ic = ev->icount;
		m->id = ev->id;
		m->cpu = cpu;
		m->type = ev->kind == DB_BUGCHECK ? -1 : (int16_t)ev->a;
		if (ev->kind == DB_BUGCHECK) {
			snprintf(buf, sizeof(buf), "bugcheck 0x%" PRIx64, (uint64_t)ev->a);
			text = buf;
		}
		m->text = strdup(text ? text : "");
		if (m->text == NULL)
			return -1;
		break;
	}
	}
	return 0;
}

/* Is id the event of one of check's findings or of one of their steps? */
static int in_findings(const struct report *rp, int64_t id)
{
	size_t i, k;

	for (i = 0; id > 0 && i < rp->findings->n_findings; i++) {
		const struct analysis_finding *f = &rp->findings->findings[i];

		if (f->event_id == id)
			return 1;
		for (k = 0; k < f->n_steps; k++)
			if (f->steps[k].event_id == id)
				return 1;
	}
	return 0;
}

/* The frames left open at the end. On a CPU (its thread running): a last
 * stretch, never returned. Suspended (its thread switched out inside it and
 * not run again): every stretch of it is marked, OPEN_SUSPENDED, or
 * OPEN_NEVER when check names its trap or the switch that suspended it. */
static int finish_frames(struct report *rp)
{
	struct index_map open = {0};
	size_t i;
	int cpu, k, rc = -1;

	for (cpu = 0; cpu < rp->ncpus; cpu++) {
		struct cpu_state *c = &rp->cpus[cpu];
		struct frames *fr;

		if (!c->seen || (fr = cpu_frames(rp, c)) == NULL)
			continue;
		while (fr->ntraps > 0)
			if (push_trap(rp, &fr->traps[--fr->ntraps], c->last, 0, OPEN_NEVER))
				goto out;
	}
	for (i = 0; i < rp->tframes.n + (size_t)rp->ncpus; i++) {
		struct frames *fr = i < rp->tframes.n ? AT(rp->tframes, struct frames, i)
						      : &rp->cpus[i - rp->tframes.n].nothread;

		for (k = 0; k < fr->ntraps; k++)
			if (map_put(&open, (uint64_t)fr->traps[k].id0, OPEN_SUSPENDED))
				goto out;
		fr->ntraps = 0;
	}
	for (i = 0; open.n && i < rp->traps.n; i++) {
		struct span *s = AT(rp->traps, struct span, i);

		if (map_get(&open, (uint64_t)s->id0) == OPEN_SUSPENDED && s->open == OPEN_NO &&
		    (s->cont & CONT_SUSPENDED) && (in_findings(rp, s->id0) || in_findings(rp, s->id1)))
			map_put(&open, (uint64_t)s->id0, OPEN_NEVER);
	}
	for (i = 0; open.n && i < rp->traps.n; i++) {
		struct span *s = AT(rp->traps, struct span, i);
		int32_t o = map_get(&open, (uint64_t)s->id0);

		if (o > 0)
			s->open = (uint8_t)o;
	}
	rc = 0;
out:
	free(open.keys);
	free(open.vals);
	return rc;
}

/* Closes what is still open when the trace ends. */
static int finish_items(struct report *rp)
{
	size_t i;
	int cpu;

	for (cpu = 0; cpu < rp->ncpus; cpu++) {
		struct cpu_state *c = &rp->cpus[cpu];

		if (!c->seen)
			continue;
		if (close_run(rp, c, c->last, 0, 1))
			return -1;
	}
	if (finish_frames(rp))
		return -1;
	for (i = 0; i < rp->lstate.n; i++) {
		struct lock_state *ls = AT(rp->lstate, struct lock_state, i);
		uint64_t end = rp->ic_max;

		if (ls->held) {
			ls->cur.r = end;
			ls->cur.open = 1;
			if (push_lock_span(rp, &ls->cur))
				return -1;
			ls->held = 0;
		}
		for (cpu = 0; cpu < MAX_CPUS; cpu++) {
			struct lock_span s = {0};

			if (ls->try_id[cpu] == 0)
				continue;
			/* A try never followed by its acquisition: spinning at the end. */
			s.t = ls->try_ic[cpu];
			s.tid = ls->try_id[cpu];
			s.r = end;
			s.lock = (int32_t)i;
			s.thread = -1;
			s.cpu = (uint16_t)cpu;
			s.open = 1;
			if (push_lock_span(rp, &s))
				return -1;
		}
	}
	return 0;
}

static int pass1(struct report *rp, struct cli_progress *p, char **err)
{
	struct db_filter f = {0};
	struct db_cursor *cur = NULL;
	int64_t counts[DB_KIND_MAX + 1];
	struct db_event ev;
	const char *text;
	int rc;

	rc = db_count_by_kind(rp->db, counts, err);
	if (rc == DB_OK)
		rc = db_cursor_open(rp->db, &f, &cur, err);
	if (rc != DB_OK)
		return rc;
	while ((rc = db_cursor_next(cur, &ev, &text)) == 1) {
		if ((rp->events & 0xfff) == 0)
			cli_progress_update(p, (uint64_t)rp->events, (uint64_t)counts[0], "events read");
		if (on_event(rp, &ev, text) != 0) {
			rc = DB_E_NOMEM;
			break;
		}
	}
	db_cursor_close(cur);
	if (rc < 0) {
		if (err && *err == NULL)
			*err = strdup(rc == DB_E_NOMEM ? "out of memory" : "reading the trace failed");
		return rc;
	}
	if (finish_items(rp) != 0) {
		if (err)
			*err = strdup("out of memory");
		return DB_E_NOMEM;
	}
	return DB_OK;
}

/* ------------------------------------------------------------ detail windows */

static int cmp_window(const void *a, const void *b)
{
	const struct window *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Chooses the id ranges whose events are embedded in full. */
static void choose_windows(struct report *rp)
{
	size_t nf = rp->findings->n_findings, i;
	int64_t half;
	int n = 0, w;

	rp->nwindows = 0;
	if (rp->events <= rp->detail) {
		rp->windows[0].lo = rp->first_id;
		rp->windows[0].hi = rp->last_id;
		rp->nwindows = 1;
		rp->complete = 1;
		return;
	}
	if (nf > MAX_WINDOWS)
		nf = MAX_WINDOWS;
	for (i = 0; i < nf; i++)
		if (rp->findings->findings[i].event_id > 0)
			n++;
	if (n == 0) { /* no culprit to look at: the end, where hangs and crashes are */
		rp->windows[0].lo = rp->last_id - rp->detail + 1;
		rp->windows[0].hi = rp->last_id;
		rp->nwindows = 1;
		return;
	}
	/* One window per distinct culprit, the budget shared between them; a
	 * window that would pass an end of the trace is shifted inside it. */
	for (i = 0; i < nf; i++) {
		int64_t id = rp->findings->findings[i].event_id;

		for (w = 0; w < rp->nwindows; w++)
			if (rp->windows[w].lo == id)
				break;
		if (id > 0 && w == rp->nwindows)
			rp->windows[rp->nwindows++].lo = id;
	}
	half = rp->detail / (2 * rp->nwindows);
	for (w = 0; w < rp->nwindows; w++) {
		int64_t id = rp->windows[w].lo, lo = id - half, hi = id + half - 1;

		if (lo < rp->first_id)
			hi += rp->first_id - lo, lo = rp->first_id;
		if (hi > rp->last_id)
			lo -= hi - rp->last_id, hi = rp->last_id;
		rp->windows[w].lo = lo > rp->first_id ? lo : rp->first_id;
		rp->windows[w].hi = hi;
	}
	qsort(rp->windows, (size_t)rp->nwindows, sizeof(rp->windows[0]), cmp_window);
	for (i = 1, w = 0; i < (size_t)rp->nwindows; i++) {
		if (rp->windows[i].lo <= rp->windows[w].hi + 1) {
			if (rp->windows[i].hi > rp->windows[w].hi)
				rp->windows[w].hi = rp->windows[i].hi;
		} else {
			rp->windows[++w] = rp->windows[i];
		}
	}
	rp->nwindows = w + 1;
}

/* ------------------------------------------------------------ JSON output */

/* A JSON string that is also safe inside <script>: '<', '>' and '&' are
 * escaped, as are U+2028/U+2029; invalid UTF-8 becomes U+FFFD. */
static void put_str(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");

	putc('"', f);
	while (*p) {
		unsigned c = *p;
		int len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
		int k;

		if (len == 1) {
			if (c == '"' || c == '\\')
				fprintf(f, "\\%c", c);
			else if (c == '\n')
				fputs("\\n", f);
			else if (c < 0x20 || c == '<' || c == '>' || c == '&')
				fprintf(f, "\\u%04x", c);
			else
				putc((int)c, f);
			p++;
			continue;
		}
		for (k = 1; k < len; k++)
			if ((p[k] & 0xc0) != 0x80)
				break;
		if (len == 0 || k < len || (c == 0xc0 || c == 0xc1) || c > 0xf4) {
			fputs("\\ufffd", f);
			p++;
			continue;
		}
		if (len == 3 && c == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9))
			fprintf(f, "\\u%04x", 0x2028 + (p[2] - 0xa8));
		else
			fwrite(p, 1, (size_t)len, f);
		p += len;
	}
	putc('"', f);
}

static void put_key(FILE *f, const char *key)
{
	put_str(f, key);
	putc(':', f);
}

/* Writes s quoted for a POSIX shell when it needs it into buf. */
static void shell_word(const char *s, char *buf, size_t size)
{
	size_t n = 0;
	const char *p;

	if (*s && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=@+,%") ==
			  strlen(s)) {
		snprintf(buf, size, "%s", s);
		return;
	}
	if (size < 8) {
		buf[0] = '\0';
		return;
	}
	buf[n++] = '\'';
	for (p = s; *p && n + 6 < size; p++) {
		if (*p == '\'') {
			memcpy(buf + n, "'\\''", 4);
			n += 4;
		} else {
			buf[n++] = *p;
		}
	}
	buf[n++] = '\'';
	buf[n] = '\0';
}

/* Does [s, e] meet a detail window? */
static int in_detail(const struct report *rp, uint64_t s, uint64_t e)
{
	int i;

	for (i = 0; i < rp->nwindows; i++)
		if (s <= rp->windows[i].ic_hi && e >= rp->windows[i].ic_lo)
			return 1;
	return 0;
}

static void write_i64_col(FILE *f, const char *name, const int64_t *v, size_t n)
{
	size_t i;

	put_key(f, name);
	putc('[', f);
	for (i = 0; i < n; i++)
		fprintf(f, i ? ",%" PRId64 : "%" PRId64, v[i]);
	putc(']', f);
}

/* Column buffers: up to 10 numeric columns per table. */
struct cols {
	int64_t *c[10];
	size_t n, cap;
};

static int cols_add(struct cols *t, int ncols, const int64_t *vals)
{
	int k;

	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 1024;

		for (k = 0; k < ncols; k++) {
			int64_t *p = realloc(t->c[k], cap * sizeof(int64_t));

			if (p == NULL)
				return -1;
			t->c[k] = p;
		}
		t->cap = cap;
	}
	for (k = 0; k < ncols; k++)
		t->c[k][t->n] = vals[k];
	t->n++;
	return 0;
}

static void cols_write(FILE *f, const char *name, struct cols *t, int ncols, const char *const *names)
{
	int k;

	put_key(f, name);
	putc('{', f);
	for (k = 0; k < ncols; k++) {
		if (k)
			putc(',', f);
		write_i64_col(f, names[k], t->c[k], t->n);
	}
	putc('}', f);
}

static void cols_free(struct cols *t)
{
	int k;

	for (k = 0; k < 10; k++)
		free(t->c[k]);
	memset(t, 0, sizeof(*t));
}

static int write_spans(FILE *f, const struct report *rp, const char *name, const struct vec *v, int traps)
{
	static const char *const run_names[] = {"cpu", "s", "e", "th", "id0", "id1", "open"};
	static const char *const trap_names[] = {"cpu", "s", "e", "vec", "id0", "id1", "open", "depth", "th", "cont"};
	struct cols t = {0};
	size_t i;
	int nc = traps ? 10 : 7;

	for (i = 0; i < v->n; i++) {
		const struct span *s = AT(*v, struct span, i);
		int64_t vals[10] = {s->cpu, (int64_t)s->s, (int64_t)s->e, s->x,     s->id0,
				    s->id1, s->open,         s->depth,         s->th, s->cont};

		if (in_detail(rp, s->s, s->e) && cols_add(&t, nc, vals))
			goto oom;
	}
	putc(',', f);
	cols_write(f, name, &t, nc, traps ? trap_names : run_names);
	cols_free(&t);
	return 0;
oom:
	cols_free(&t);
	return -1;
}

static int write_items(FILE *f, const struct report *rp)
{
	static const char *const irql_names[] = {"cpu", "ic", "old", "now", "id"};
	static const char *const eoi_names[] = {"cpu", "ic", "id", "depth"};
	static const char *const lock_names[] = {"lk", "cpu", "th", "t", "a", "r", "tid", "aid", "rid"};
	struct cols t = {0};
	size_t i;

	/* IRQL steps whose level shows in the detail (a step's "old" gives the
	 * level before the first one). */
	for (i = 0; i < rp->irql.n; i++) {
		const struct irql_step *s = AT(rp->irql, struct irql_step, i);
		int64_t vals[5] = {s->cpu, (int64_t)s->ic, s->old, s->now, s->id};
		const struct irql_step *next = i + 1 < rp->irql.n ? AT(rp->irql, struct irql_step, i + 1) : NULL;
		uint64_t until = next && next->cpu == s->cpu ? next->ic : s->ic;

		if (in_detail(rp, s->ic, until) && cols_add(&t, 5, vals))
			goto oom;
	}
	putc(',', f);
	cols_write(f, "irql", &t, 5, irql_names);
	cols_free(&t);
	if (write_spans(f, rp, "traps", &rp->traps, 1) || write_spans(f, rp, "runs", &rp->runs, 0))
		return -1;
	for (i = 0; i < rp->eois.n; i++) {
		const struct point *p = AT(rp->eois, struct point, i);
		int64_t vals[4] = {p->cpu, (int64_t)p->ic, p->id, p->depth};

		if (in_detail(rp, p->ic, p->ic) && cols_add(&t, 4, vals))
			goto oom;
	}
	putc(',', f);
	cols_write(f, "eoi", &t, 4, eoi_names);
	cols_free(&t);
	for (i = 0; i < rp->lspans.n; i++) {
		const struct lock_span *s = AT(rp->lspans, struct lock_span, i);
		uint64_t start = s->t ? s->t : s->a;
		int64_t vals[9] = {s->lock,        s->cpu, s->thread, (int64_t)s->t, (int64_t)s->a, (int64_t)s->r,
				   s->tid,         s->aid, s->open ? -s->rid - 1 : s->rid};

		if (s->mutex)
			vals[1] = -1 - s->cpu; /* a negative cpu marks a mutex */
		if (in_detail(rp, start, s->r) && cols_add(&t, 9, vals))
			goto oom;
	}
	putc(',', f);
	cols_write(f, "lspans", &t, 9, lock_names);
	cols_free(&t);
	return 0;
oom:
	cols_free(&t);
	return -1;
}

static void write_markers(FILE *f, const struct report *rp)
{
	size_t i;
	int first = 1;

	fputs(",\"markers\":[", f);
	for (i = 0; i < rp->markers.n; i++) {
		const struct marker *m = AT(rp->markers, struct marker, i);

		if (rp->markers.n > MAX_MARKERS && m->type != -1 && m->type != DB_MARK_SCENARIO &&
		    !in_detail(rp, m->ic, m->ic))
			continue;
		fprintf(f, "%s[%u,%" PRIu64 ",%" PRId64 ",%d,", first ? "" : ",", m->cpu, m->ic, m->id, m->type);
		put_str(f, m->text);
		putc(']', f);
		first = 0;
	}
	putc(']', f);
}

static void write_names(FILE *f, struct report *rp)
{
	size_t i;
	char buf[64];

	fputs(",\"threads\":[", f);
	for (i = 0; i < rp->threads.addrs.n; i++) {
		uint64_t a = *AT(rp->threads.addrs, uint64_t, i);

		fputs(i ? ",[" : "[", f);
		put_str(f, cli_thread_label(&rp->names, a, buf, sizeof(buf)));
		fprintf(f, ",\"0x%" PRIx64 "\"]", a);
	}
	fputs("],\"locks\":[", f);
	for (i = 0; i < rp->locks.addrs.n; i++) {
		uint64_t a = *AT(rp->locks.addrs, uint64_t, i);
		const struct lock_state *ls = i < rp->lstate.n ? AT(rp->lstate, struct lock_state, i) : NULL;

		fputs(i ? ",[" : "[", f);
		put_str(f, cli_lock_label(&rp->names, a, buf, sizeof(buf)));
		putc(',', f);
		put_str(f, db_lock_class(rp->db, a));
		fprintf(f, ",\"0x%" PRIx64 "\",%" PRId64 "]", a, ls ? ls->acquisitions : 0);
	}
	putc(']', f);
}

/* Which lock indexes get a row: the MAX_LOCK_ROWS most acquired. */
static void write_lock_rows(FILE *f, const struct report *rp, int32_t *rows, size_t *nrows)
{
	size_t i, j, n = 0;

	for (i = 0; i < rp->lstate.n; i++) {
		const struct lock_state *ls = AT(rp->lstate, struct lock_state, i);
		int64_t acq = ls->acquisitions;

		/* insertion into a sorted top list */
		for (j = n; j > 0; j--) {
			const struct lock_state *o = AT(rp->lstate, struct lock_state, rows[j - 1]);

			if (o->acquisitions >= acq)
				break;
			if (j < MAX_LOCK_ROWS)
				rows[j] = rows[j - 1];
		}
		if (j < MAX_LOCK_ROWS) {
			rows[j] = (int32_t)i;
			if (n < MAX_LOCK_ROWS)
				n++;
		}
	}
	fputs(",\"lockRows\":[", f);
	for (i = 0; i < n; i++)
		fprintf(f, i ? ",%d" : "%d", rows[i]);
	putc(']', f);
	*nrows = n;
}

/* Overview: OV_BUCKETS buckets over [ic_min, ic_max]. */
static int write_overview(FILE *f, struct report *rp)
{
	uint64_t lo = rp->ic_min, hi = rp->ic_max > rp->ic_min ? rp->ic_max : rp->ic_min + 1;
	double width = (double)(hi - lo) / OV_BUCKETS;
	int32_t rows[MAX_LOCK_ROWS];
	size_t nrows = 0, i, k;
	int cpu, b, rc = -1;
	uint32_t *density = calloc(OV_BUCKETS, sizeof(uint32_t));
	int8_t *imin = malloc(OV_BUCKETS), *imax = malloc(OV_BUCKETS), *depth = malloc(OV_BUCKETS);
	int32_t *run = malloc(OV_BUCKETS * sizeof(int32_t));
	uint64_t *runlen = malloc(OV_BUCKETS * sizeof(uint64_t));
	double *hold = malloc(OV_BUCKETS * sizeof(double)), *spin = malloc(OV_BUCKETS * sizeof(double));

#define BUCKET(ic) ((int)((ic) <= lo ? 0 : (ic) >= hi ? OV_BUCKETS - 1 : (double)((ic) - lo) / width))
	if (!density || !imin || !imax || !depth || !run || !runlen || !hold || !spin)
		goto out;
	for (i = 0; i < rp->icounts.n; i++)
		density[BUCKET(*AT(rp->icounts, uint64_t, i))]++;
	fprintf(f, ",\"ov\":{\"n\":%d,\"lo\":%" PRIu64 ",\"hi\":%" PRIu64 ",\"density\":[", OV_BUCKETS, lo, hi);
	for (b = 0; b < OV_BUCKETS; b++)
		fprintf(f, b ? ",%u" : "%u", density[b]);
	fputs("],\"cpus\":[", f);
	for (cpu = 0; cpu < rp->ncpus; cpu++) {
		int level = -1;
		uint64_t at = lo;

		memset(imin, 127, OV_BUCKETS);
		memset(imax, -1, OV_BUCKETS);
		memset(depth, -1, OV_BUCKETS);
		for (b = 0; b < OV_BUCKETS; b++)
			run[b] = -1, runlen[b] = 0;
		/* IRQL: each level holds from its step to the next one */
		for (i = 0; i <= rp->irql.n; i++) {
			const struct irql_step *s = i < rp->irql.n ? AT(rp->irql, struct irql_step, i) : NULL;
			uint64_t until;

			if (s && s->cpu != cpu)
				continue;
			until = s ? s->ic : rp->cpus[cpu].last;
			if (level >= 0)
				for (b = BUCKET(at); b <= BUCKET(until); b++) {
					if (level < imin[b])
						imin[b] = (int8_t)level;
					if (level > imax[b])
						imax[b] = (int8_t)level;
				}
			if (s) {
				level = s->now;
				at = s->ic;
			}
		}
		for (i = 0; i < rp->traps.n; i++) {
			const struct span *s = AT(rp->traps, struct span, i);

			if (s->cpu == cpu)
				for (b = BUCKET(s->s); b <= BUCKET(s->e); b++)
					if (s->depth > depth[b])
						depth[b] = (int8_t)s->depth;
		}
		for (i = 0; i < rp->runs.n; i++) {
			const struct span *s = AT(rp->runs, struct span, i);

			if (s->cpu != cpu)
				continue;
			for (b = BUCKET(s->s); b <= BUCKET(s->e); b++) {
				double b0 = lo + b * width, b1 = b0 + width;
				double o = (s->e < b1 ? s->e : b1) - (s->s > b0 ? s->s : b0);
				uint64_t len = o > 0 ? (uint64_t)o + 1 : 1;

				if (len > runlen[b])
					runlen[b] = len, run[b] = (int32_t)s->x;
			}
		}
		fprintf(f, "%s{\"cpu\":%d,\"imin\":[", cpu ? "," : "", cpu);
		for (b = 0; b < OV_BUCKETS; b++)
			fprintf(f, b ? ",%d" : "%d", imin[b] == 127 ? -1 : imin[b]);
		fputs("],\"imax\":[", f);
		for (b = 0; b < OV_BUCKETS; b++)
			fprintf(f, b ? ",%d" : "%d", imax[b]);
		fputs("],\"depth\":[", f);
		for (b = 0; b < OV_BUCKETS; b++)
			fprintf(f, b ? ",%d" : "%d", depth[b]);
		fputs("],\"run\":[", f);
		for (b = 0; b < OV_BUCKETS; b++)
			fprintf(f, b ? ",%d" : "%d", run[b]);
		fputs("]}", f);
	}
	putc(']', f);
	write_lock_rows(f, rp, rows, &nrows);
	fputs(",\"locks\":[", f);
	for (k = 0; k < nrows; k++) {
		for (b = 0; b < OV_BUCKETS; b++)
			hold[b] = spin[b] = 0;
		for (i = 0; i < rp->lspans.n; i++) {
			const struct lock_span *s = AT(rp->lspans, struct lock_span, i);
			int pass;

			if (s->lock != rows[k])
				continue;
			for (pass = 0; pass < 2; pass++) {
				uint64_t s0 = pass == 0 ? s->t : s->a, s1 = pass == 0 ? (s->a ? s->a : s->r) : s->r;
				double *acc = pass == 0 ? spin : hold;

				if (s0 == 0 || s1 < s0)
					continue;
				for (b = BUCKET(s0); b <= BUCKET(s1); b++) {
					double b0 = lo + b * width, b1 = b0 + width;
					double o = ((double)s1 < b1 ? (double)s1 : b1) - ((double)s0 > b0 ? (double)s0 : b0);

					acc[b] += o > 0 ? o : 0.5;
				}
			}
		}
		fprintf(f, "%s{\"hold\":[", k ? "," : "");
		for (b = 0; b < OV_BUCKETS; b++)
			fprintf(f, b ? ",%d" : "%d", hold[b] > 0 ? 1 + (int)(99 * (hold[b] > width ? 1 : hold[b] / width)) : 0);
		fputs("],\"spin\":[", f);
		for (b = 0; b < OV_BUCKETS; b++)
			fprintf(f, b ? ",%d" : "%d", spin[b] > 0 ? 1 + (int)(99 * (spin[b] > width ? 1 : spin[b] / width)) : 0);
		fputs("]}", f);
	}
	fputs("]}", f);
	rc = 0;
#undef BUCKET
out:
	free(density);
	free(imin);
	free(imax);
	free(depth);
	free(run);
	free(runlen);
	free(hold);
	free(spin);
	return rc;
}

static void write_lost(FILE *f, const struct analysis_lost *l)
{
	fprintf(f, "{\"events\":%" PRIu64 ",\"from\":%" PRIu64 ",\"to\":%" PRIu64 ",\"event\":%" PRId64 "}",
		l->events, l->from_icount, l->to_icount, l->event_id);
}

/* What the trace lost: the page says it before the findings. */
static void write_losses(FILE *f, const struct analysis_report *rep)
{
	fprintf(f, ",\"cut\":%s,\"dropped\":%" PRIu64 ",\"lost\":[", rep->cut ? "true" : "false", rep->dropped);
	for (size_t i = 0; i < rep->n_lost; i++) {
		if (i)
			putc(',', f);
		write_lost(f, &rep->lost[i]);
	}
	putc(']', f);
}

static void write_findings(FILE *f, const struct report *rp)
{
	size_t i, k;
	char word[1024], cmd[1200];

	shell_word(rp->spec, word, sizeof(word));
	fputs(",\"findings\":[", f);
	for (i = 0; i < rp->findings->n_findings; i++) {
		const struct analysis_finding *fd = &rp->findings->findings[i];

		fputs(i ? ",{" : "{", f);
		put_key(f, "kind");
		put_str(f, fd->kind_name);
		fputs(",\"severity\":", f);
		put_str(f, analysis_severity_name(fd->severity));
		fputs(",\"title\":", f);
		put_str(f, fd->title);
		fputs(",\"explanation\":", f);
		put_str(f, fd->explanation);
		fprintf(f, ",\"count\":%" PRIu64 ",\"event\":%" PRId64 ",\"icount\":%" PRIu64 ",\"vcpu\":%u", fd->count,
			fd->event_id, fd->icount, fd->vcpu);
		if (fd->event_id > 0) {
			snprintf(cmd, sizeof(cmd), "krewind replay %s --to %" PRId64, word, fd->event_id);
			fputs(",\"replay\":", f);
			put_str(f, cmd);
			snprintf(cmd, sizeof(cmd), "krewind gdb %s --at %" PRId64, word, fd->event_id);
			fputs(",\"gdb\":", f);
			put_str(f, cmd);
		}
		if (fd->lost) {
			fputs(",\"lost\":", f);
			write_lost(f, fd->lost);
		}
		fputs(",\"steps\":[", f);
		for (k = 0; k < fd->n_steps; k++) {
			const struct analysis_step *s = &fd->steps[k];

			fprintf(f, "%s{\"role\":", k ? "," : "");
			put_str(f, s->role);
			fputs(",\"text\":", f);
			put_str(f, s->text);
			fprintf(f, ",\"event\":%" PRId64 ",\"icount\":%" PRIu64 ",\"vcpu\":%u,\"where\":", s->event_id,
				s->icount, s->vcpu);
			put_str(f, s->where);
			fputs(",\"thread\":", f);
			put_str(f, s->thread_name);
			fputs(",\"lock\":", f);
			put_str(f, s->lock_class);
			putc('}', f);
		}
		fputs("]}", f);
	}
	putc(']', f);
}

/* Pass 2: the events of the detail windows, described. Also sets each
 * window's icount range. */
static int write_events(FILE *f, struct report *rp, char **err)
{
	static const char *const names[] = {"id", "ic", "cpu", "kind", "th"};
	struct cols t = {0};
	struct vec descs = VEC(char *);
	struct db_event ev;
	const char *text;
	char desc[512], sym[160], thread[64], *line;
	size_t i;
	int w, rc = DB_OK;

	for (w = 0; w < rp->nwindows; w++) {
		struct db_filter fl = {0};
		struct db_cursor *cur = NULL;
		int first = 1;

		fl.from_id = rp->windows[w].lo;
		fl.to_id = rp->windows[w].hi;
		rc = db_cursor_open(rp->db, &fl, &cur, err);
		if (rc != DB_OK)
			goto out;
		while ((rc = db_cursor_next(cur, &ev, &text)) == 1) {
			int64_t vals[5] = {ev.id, (int64_t)ev.icount, ev.vcpu, ev.kind,
					   name_index(&rp->threads, ev.thread)};
			char **slot;

			if (first || ev.icount < rp->windows[w].ic_lo)
				rp->windows[w].ic_lo = ev.icount;
			if (first || ev.icount > rp->windows[w].ic_hi)
				rp->windows[w].ic_hi = ev.icount;
			first = 0;
			cli_describe_event(&ev, text, &rp->names, desc, sizeof(desc));
			rp->names.symbol(rp->names.ctx, ev.pc, sym, sizeof(sym));
			cli_thread_label(&rp->names, ev.thread, thread, sizeof(thread));
			if (asprintf(&line, "%s | %s | %s", desc, sym, thread) < 0)
				line = NULL;
			slot = vec_push(&descs);
			if (line == NULL || slot == NULL || cols_add(&t, 5, vals)) {
				free(line);
				rc = DB_E_NOMEM;
				break;
			}
			*slot = line;
		}
		db_cursor_close(cur);
		if (rc < 0)
			goto out;
		rc = DB_OK;
	}
	rp->detail_events = (int64_t)t.n;
	putc(',', f);
	cols_write(f, "ev", &t, 5, names);
	fputs(",\"desc\":[", f);
	for (i = 0; i < descs.n; i++) {
		if (i)
			putc(',', f);
		put_str(f, *AT(descs, char *, i));
	}
	putc(']', f);
out:
	if (rc == DB_E_NOMEM && err && *err == NULL)
		*err = strdup("out of memory");
	for (i = 0; i < descs.n; i++)
		free(*AT(descs, char *, i));
	free(descs.p);
	cols_free(&t);
	return rc;
}

static void write_meta(FILE *f, struct report *rp)
{
	const char *scenario = rp->rec->scenario ? rp->rec->scenario : db_meta(rp->db, "scenario");
	const char *outcome = rp->findings->outcome;
	int w;

	fputs("{\"version\":1,\"rec\":", f);
	put_str(f, rp->spec);
	fputs(",\"name\":", f);
	put_str(f, rp->rec->name);
	fputs(",\"scenario\":", f);
	put_str(f, scenario ? scenario : "");
	fputs(",\"outcome\":", f);
	put_str(f, outcome ? outcome : "");
	fputs(",\"started\":", f);
	put_str(f, rp->rec->started_at ? rp->rec->started_at : db_meta(rp->db, "started_at"));
	fprintf(f, ",\"krewind\":\"%s\",\"events\":%" PRId64 ",\"firstId\":%" PRId64 ",\"lastId\":%" PRId64
		   ",\"icMin\":%" PRIu64 ",\"icMax\":%" PRIu64 ",\"ncpus\":%d,\"hung\":%s",
		CLI_VERSION, rp->events, rp->first_id, rp->last_id, rp->ic_min, rp->ic_max, rp->ncpus,
		rp->findings->hung ? "true" : "false");
	fprintf(f, ",\"detail\":{\"budget\":%" PRId64 ",\"complete\":%s,\"windows\":[", rp->detail,
		rp->complete ? "true" : "false");
	for (w = 0; w < rp->nwindows; w++)
		fprintf(f, "%s[%" PRIu64 ",%" PRIu64 ",%" PRId64 ",%" PRId64 "]", w ? "," : "", rp->windows[w].ic_lo,
			rp->windows[w].ic_hi, rp->windows[w].lo, rp->windows[w].hi);
	fputs("]}", f);
	write_losses(f, rp->findings);
}

/* Writes the data object (everything but the events goes after them: the
 * windows' icount ranges are known once the events are read). */
static int write_data(FILE *f, struct report *rp, char **err)
{
	FILE *evs = NULL;
	char *buf = NULL;
	size_t len = 0;
	int rc;

	/* The events first into memory, since they fix the windows' ranges. */
	evs = open_memstream(&buf, &len);
	if (evs == NULL)
		goto oom;
	rc = write_events(evs, rp, err);
	if (fclose(evs) != 0 && rc == DB_OK)
		rc = DB_E_NOMEM;
	if (rc != DB_OK) {
		free(buf);
		return rc;
	}
	write_meta(f, rp);
	write_names(f, rp);
	if (write_overview(f, rp) || write_items(f, rp))
		goto oom;
	write_markers(f, rp);
	write_findings(f, rp);
	fwrite(buf, 1, len, f);
	putc('}', f);
	free(buf);
	return DB_OK;
oom:
	free(buf);
	if (err && *err == NULL)
		*err = strdup("out of memory");
	return DB_E_NOMEM;
}

/* ------------------------------------------------------------ the file */

static int write_page(struct report *rp, const char *path, int force, char **err)
{
	const char *page = (const char *)cli_report_template;
	const char *at = memmem(page, cli_report_template_len, DATA_PLACEHOLDER, strlen(DATA_PLACEHOLDER));
	char *tmp = NULL;
	FILE *f = NULL;
	int fd, rc;
	long size;

	if (at == NULL) {
		*err = strdup("the embedded page template has no data placeholder");
		return DB_E_ARG;
	}
	if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0) {
		*err = strdup("out of memory");
		return DB_E_NOMEM;
	}
	fd = mkstemp(tmp);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		if (asprintf(err, "%s: %s", path, strerror(errno)) < 0)
			*err = NULL;
		if (fd >= 0) {
			close(fd);
			unlink(tmp);
		}
		free(tmp);
		return DB_E_IO;
	}
	fchmod(fd, 0644);
	fwrite(page, 1, (size_t)(at - page), f);
	rc = write_data(f, rp, err);
	fwrite(at + strlen(DATA_PLACEHOLDER), 1,
	       cli_report_template_len - (size_t)(at - page) - strlen(DATA_PLACEHOLDER), f);
	size = ftell(f);
	if (fflush(f) != 0 || ferror(f)) {
		if (rc == DB_OK && asprintf(err, "%s: %s", path, strerror(errno)) < 0)
			*err = NULL;
		if (rc == DB_OK)
			rc = DB_E_IO;
	}
	fclose(f);
	if (rc == DB_OK) {
		/* link() refuses to replace an existing file; rename() replaces it. */
		if (force ? rename(tmp, path) != 0 : link(tmp, path) != 0) {
			if (errno == EEXIST)
				rc = DB_E_ARG, *err = NULL;
			else
				rc = DB_E_IO;
			if (rc == DB_E_IO && asprintf(err, "%s: %s", path, strerror(errno)) < 0)
				*err = NULL;
		}
	}
	unlink(tmp);
	free(tmp);
	rp->out_bytes = size > 0 ? (size_t)size : 0;
	return rc;
}

static void report_free(struct report *rp)
{
	size_t i;

	for (i = 0; i < rp->markers.n; i++)
		free(AT(rp->markers, struct marker, i)->text);
	free(rp->markers.p);
	free(rp->irql.p);
	free(rp->traps.p);
	free(rp->runs.p);
	free(rp->lspans.p);
	free(rp->eois.p);
	free(rp->icounts.p);
	free(rp->lstate.p);
	free(rp->tframes.p);
	free(rp->threads.addrs.p);
	free(rp->threads.map.keys);
	free(rp->threads.map.vals);
	free(rp->locks.addrs.p);
	free(rp->locks.map.keys);
	free(rp->locks.map.vals);
	if (rp->findings)
		analysis_report_free(rp->findings);
}

int cmd_report(int argc, char **argv)
{
	struct report rp = {
		.irql = VEC(struct irql_step),
		.traps = VEC(struct span),
		.runs = VEC(struct span),
		.lspans = VEC(struct lock_span),
		.eois = VEC(struct point),
		.markers = VEC(struct marker),
		.icounts = VEC(uint64_t),
		.lstate = VEC(struct lock_state),
		.tframes = VEC(struct frames),
		.threads = {.addrs = VEC(uint64_t)},
		.locks = {.addrs = VEC(uint64_t)},
		.detail = DEFAULT_DETAIL,
	};
	struct cli_args a;
	struct cli_rec r = {0};
	struct stat st;
	const char *v, *spec = NULL, *output = NULL;
	char *path = NULL, *err = NULL;
	int json = 0, force = 0, quiet = 0, opt, rc;
	struct cli_progress *p = NULL;
	uint64_t n;

	cli_args_init(&a, "report", argc, argv);
	while ((opt = cli_next_opt(&a, options, &v)) != CLI_OPT_END) {
		if ((rc = cli_common_opt(&a, opt, v, &spec, synopsis, description, options)) >= 0)
			return rc;
		switch (opt) {
		case OPT_JSON: json = 1; break;
		case OPT_FORCE: force = 1; break;
		case OPT_QUIET: quiet = 1; break;
		case OPT_OUTPUT: output = v; break;
		case OPT_DETAIL:
			if (cli_parse_u64(v, &n) != 0 || n < 1 || n > MAX_DETAIL)
				return cli_usage_error("report", "--detail wants a number of events from 1 to %d, not '%s'",
						       MAX_DETAIL, v);
			rp.detail = (int64_t)n;
			break;
		}
	}
	if (spec == NULL)
		return cli_usage_error("report", "missing the recording (REC)");
	rc = cli_rec_open(spec, &r);
	if (rc != CLI_OK)
		return rc;
	if (output)
		path = strdup(output);
	else if (asprintf(&path, "%s/report.html", r.rec->dir) < 0)
		path = NULL;
	if (path == NULL) {
		rc = cli_error(CLI_FAIL, "out of memory");
		goto out;
	}
	if (!force && stat(path, &st) == 0) {
		rc = cli_error(CLI_USAGE, "report: %s exists; use --force to overwrite it or -o to choose another file",
			       path);
		goto out;
	}
	rp.db = r.db;
	rp.rec = r.rec;
	rp.spec = spec;
	cli_names_from_db(&rp.names, r.db);
	p = cli_progress_start("report", quiet);
	cli_progress_note(p, "checking the trace");
	rc = analysis_run(r.db, &rp.findings, &err);
	if (rc != ANALYSIS_OK) {
		rc = cli_error_msg(rc == ANALYSIS_E_DB ? CLI_USAGE : CLI_FAIL, "report",
				   err ? err : strdup("the analysis failed"));
		goto out;
	}
	rc = pass1(&rp, p, &err);
	if (rc != DB_OK) {
		rc = cli_error_msg(rc == DB_E_NOMEM ? CLI_FAIL : CLI_USAGE, "report", err);
		goto out;
	}
	choose_windows(&rp);
	cli_progress_note(p, "writing %s", path);
	rc = write_page(&rp, path, force, &err);
	cli_progress_end(p);
	p = NULL;
	if (rc != DB_OK) {
		if (rc == DB_E_ARG && err == NULL)
			rc = cli_error(CLI_USAGE, "report: %s exists; use --force to overwrite it", path);
		else
			rc = cli_error_msg(rc == DB_E_ARG ? CLI_USAGE : CLI_FAIL, "report", err);
		goto out;
	}
	if (json) {
		struct cli_json j;

		cli_json_init(&j, stdout);
		cli_json_object(&j);
		cli_json_kstr(&j, "path", path);
		cli_json_kint(&j, "events", rp.events);
		cli_json_kint(&j, "findings", (int64_t)rp.findings->n_findings);
		cli_json_kuint(&j, "dropped", rp.findings->dropped);
		cli_json_kint(&j, "detail_events", rp.detail_events);
		cli_json_key(&j, "complete");
		cli_json_bool(&j, rp.complete);
		cli_json_kuint(&j, "bytes", rp.out_bytes);
		cli_json_close(&j);
		cli_json_end(&j);
	} else {
		struct cli_losses losses;

		if (cli_losses_read(r.db, &losses) == 0 && (losses.dropped || losses.n))
			cli_losses_print(stdout, &losses, "");
		cli_losses_free(&losses);
		printf("wrote %s: %" PRId64 " events, %zu finding%s, %.1f KiB", path, rp.events,
		       rp.findings->n_findings, rp.findings->n_findings == 1 ? "" : "s", rp.out_bytes / 1024.0);
		if (!rp.complete)
			printf(" (detail for %" PRId64 " of the events, overview for all)", rp.detail_events);
		putchar('\n');
	}
	rc = CLI_OK;
out:
	cli_progress_end(p);
	report_free(&rp);
	free(path);
	cli_rec_close(&r);
	return rc;
}
