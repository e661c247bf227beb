/*
 * writer.c - the trace writer: vCPU threads push events into a lock-free ring
 * (db/queue.c); one background thread owns the SQLite connection, interns
 * thread and lock addresses, and commits a transaction at least every
 * COMMIT_MS so that a killed recording keeps all but its last moments.
 *
 * Threads: db_writer_push* and the counters may run on any thread; the setters
 * (meta, symbols, names) hand their work to the writer thread through a short
 * mutex-protected list, since they are rare. The SQLite connection is touched
 * by the writer thread only, and by db_writer_open/close before it starts and
 * after it has been joined.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "db/internal.h"

#define QUEUE_SLOTS (1u << 18) /* ~260 ms of events at 1 M/s */
#define DRAIN_BATCH 4096       /* events popped between checks of the clock */
#define COMMIT_ROWS 16384      /* commit after this many rows... */
#define COMMIT_MS 100          /* ...or when the transaction is this old */
#define IDLE_SLEEP_US 5000     /* writer thread nap when the ring is nearly empty (5 k events at 1 M/s)... */
#define IDLE_BELOW 256         /* ...that is, when a round found fewer events than this */
#define NAME_MAX_LEN 64
#define ROW_BATCH 128          /* rows per multi-row INSERT statement */
#define ROW_COLS 11            /* event_rows columns but the id */

#define EVENT_ROW_COLUMNS "(icount, vcpu, kind_id, pc, thread_id, obj, a, b, state, preempt, caller)"
#define ROW_NULL INT64_MIN     /* a rows[][] value stored as NULL */

enum ctl_op { CTL_META, CTL_SYMBOL, CTL_NAME };

/* A rare request for the writer thread: meta, symbol or name. */
struct ctl {
	struct ctl *next;
	uint64_t pos; /* ring position when it was made: runs before that event */
	enum ctl_op op;
	int is_lock;
	int32_t tid;  /* CTL_NAME of a thread: its tid, -1 = its newest row */
	uint64_t addr, size;
	char *key;   /* meta key, symbol or thread/lock name */
	char *value; /* meta value */
};

/* One event_blocks row being built. */
struct block_vcpu {
	uint16_t vcpu;
	uint64_t first, last;
	uint32_t kinds;
	uint64_t threads, locks; /* bit (id % 64) of each thread / lock id */
};

/* Lock types, as stored in locks.type. */
enum { LT_OBJECT, LT_SPIN, LT_RW, LT_MUTEX, LT_RWSEM, LT_SEM };
static const char *const lock_type_names[] = { "object", "spinlock", "rwlock", "mutex", "rwsem", "semaphore" };

struct lock_state {
	uint64_t addr, init_site;
	uint32_t instance;
	uint8_t type;
};

struct thread_state {
	int32_t tid; /* -1: not known yet */
	char *name;  /* the name last stored, or NULL */
};

enum {
	ST_INS_EVENT,
	ST_INS_TEXT,
	ST_INS_THREAD,
	ST_THREAD_TID,
	ST_INS_LOCK,
	ST_LOCK_TYPE,
	ST_LOCK_INIT,
	ST_SET_META,
	ST_INS_SYMBOL,
	ST_THREAD_NAME,
	ST_LOCK_NAME,
	ST_LOCK_CLASS,
	ST_BLOCK,
	ST_KIND_COUNT,
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_COUNT
};
static const char *const stmt_sql[ST_COUNT] = {
	[ST_INS_EVENT] = "INSERT INTO event_rows " EVENT_ROW_COLUMNS " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	[ST_INS_TEXT] = "INSERT INTO texts VALUES (?1, ?2)",
	[ST_INS_THREAD] = "INSERT INTO threads VALUES (?1, ?2, ?3, ?4)",
	[ST_THREAD_TID] = "UPDATE threads SET tid = ?2 WHERE id = ?1",
	[ST_INS_LOCK] = "INSERT INTO locks (id, addr, instance, name, type, caller) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_LOCK_TYPE] = "UPDATE locks SET type = ?2 WHERE id = ?1",
	[ST_LOCK_INIT] = "UPDATE locks SET init_site = ?2 WHERE id = ?1",
	[ST_SET_META] = "INSERT OR REPLACE INTO meta VALUES (?1, ?2)",
	[ST_INS_SYMBOL] = "INSERT INTO symbols VALUES (?1, ?2, ?3)",
	[ST_THREAD_NAME] = "UPDATE threads SET name = ?2 WHERE id = ?1",
	[ST_LOCK_NAME] = "UPDATE locks SET name = ?2 WHERE id = ?1",
	[ST_LOCK_CLASS] = "UPDATE locks SET class = ?2 WHERE id = ?1",
	[ST_BLOCK] = "INSERT OR REPLACE INTO event_blocks VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[ST_KIND_COUNT] = "UPDATE kinds SET events = ?2 WHERE id = ?1",
	[ST_BEGIN] = "BEGIN",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
};

struct db_writer {
	struct db_queue q;
	char *path;
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	sqlite3_stmt *ins_batch; /* INSERT of ROW_BATCH rows */
	db_namer namer;
	void *namer_ctx;
	pthread_t thread;
	int thread_started;

	pthread_mutex_t ctl_lock;
	struct ctl *ctl_head, **ctl_tail; /* made, not yet seen by the thread */
	struct ctl *pending, **pending_tail; /* writer thread: seen, not yet run */

	_Atomic int stop;       /* close asked the thread to finish */
	_Atomic int failed;     /* a write failed: nothing more is stored */
	_Atomic uint64_t written; /* events committed */
	_Atomic uint64_t dropped; /* events accepted or offered but not stored */

	/* Writer thread only. */
	int in_txn;
	uint64_t txn_rows;      /* events in the open transaction */
	struct timespec txn_start;
	int64_t next_id;
	int64_t rows[ROW_BATCH][ROW_COLS]; /* event rows not yet inserted */
	unsigned nrows;
	struct db_map thread_ids, lock_ids; /* guest address -> id of its newest row */
	uint32_t nthreads, thread_cap;
	struct thread_state *threads; /* threads[id - 1] */
	struct lock_state *locks; /* locks[id - 1] */
	uint32_t nlocks, lock_cap;
	uint64_t last_thread;   /* one-entry cache in front of thread_ids */
	int32_t last_tid;
	uint32_t last_thread_id;
	int64_t block;          /* event_blocks.block of the newest event */
	struct block_vcpu *bv;  /* its summary per vCPU */
	size_t nbv, bv_cap;
	int64_t kind_events[DB_KIND_MAX + 1], kind_saved[DB_KIND_MAX + 1];
	struct db_symtab syms;
	int err;                /* first error, DB_OK if none */
	char *errmsg;
};

static uint64_t ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)((int64_t)(t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000);
}

/* Records the first SQLite failure and stops storing. Disk full is DB_E_FULL,
 * anything else DB_E_IO; the message is completed by db_writer_close. */
static int sql_fail(struct db_writer *w, int rc)
{
	if (w->err == DB_OK) {
		w->err = (rc == SQLITE_FULL) ? DB_E_FULL : (rc == SQLITE_NOMEM ? DB_E_NOMEM : DB_E_IO);
		w->errmsg = strdup(sqlite3_errmsg(w->db));
	}
	atomic_store(&w->failed, 1);
	return w->err;
}

/* Runs a prepared statement that returns no rows, then resets it. */
static int step(struct db_writer *w, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sql_fail(w, rc);
	return DB_OK;
}

static int begin(struct db_writer *w)
{
	if (w->in_txn)
		return DB_OK;
	if (step(w, w->st[ST_BEGIN]) != DB_OK)
		return w->err;
	w->in_txn = 1;
	w->txn_rows = 0;
	clock_gettime(CLOCK_MONOTONIC, &w->txn_start);
	return DB_OK;
}

static int flush_rows(struct db_writer *w);
static int save_block(struct db_writer *w);
static int save_kind_counts(struct db_writer *w);
static void abandon(struct db_writer *w);

static int commit(struct db_writer *w)
{
	if (!w->in_txn)
		return DB_OK;
	if (flush_rows(w) != DB_OK || save_block(w) != DB_OK || save_kind_counts(w) != DB_OK) {
		abandon(w);
		return w->err;
	}
	if (step(w, w->st[ST_COMMIT]) != DB_OK) {
		abandon(w); /* a failed COMMIT may leave the transaction open */
		return w->err;
	}
	w->in_txn = 0;
	atomic_fetch_add(&w->written, w->txn_rows);
	w->txn_rows = 0;
	return DB_OK;
}

/* Gives up the open transaction after a failed statement: its events are lost. */
static void abandon(struct db_writer *w)
{
	if (w->in_txn && !sqlite3_get_autocommit(w->db)) {
		sqlite3_step(w->st[ST_ROLLBACK]);
		sqlite3_reset(w->st[ST_ROLLBACK]);
	}
	if (w->in_txn)
		atomic_fetch_add(&w->dropped, w->txn_rows);
	w->in_txn = 0;
	w->txn_rows = 0;
	w->nrows = 0;
}

/* Writes the event_blocks rows of the current block (again, if it was saved
 * by an earlier commit while not yet full). */
static int save_block(struct db_writer *w)
{
	sqlite3_stmt *st = w->st[ST_BLOCK];

	for (size_t i = 0; i < w->nbv; i++) {
		sqlite3_bind_int64(st, 1, w->block);
		sqlite3_bind_int(st, 2, w->bv[i].vcpu);
		sqlite3_bind_int64(st, 3, (int64_t)w->bv[i].first);
		sqlite3_bind_int64(st, 4, (int64_t)w->bv[i].last);
		sqlite3_bind_int64(st, 5, w->bv[i].kinds);
		sqlite3_bind_int64(st, 6, (int64_t)w->bv[i].threads);
		sqlite3_bind_int64(st, 7, (int64_t)w->bv[i].locks);
		if (step(w, st) != DB_OK)
			return w->err;
	}
	return DB_OK;
}

/* Updates kinds.events for the kinds that changed since the last commit. */
static int save_kind_counts(struct db_writer *w)
{
	sqlite3_stmt *st = w->st[ST_KIND_COUNT];

	for (int k = 1; k <= DB_KIND_MAX; k++) {
		if (w->kind_events[k] == w->kind_saved[k])
			continue;
		sqlite3_bind_int(st, 1, k);
		sqlite3_bind_int64(st, 2, w->kind_events[k]);
		if (step(w, st) != DB_OK)
			return w->err;
		w->kind_saved[k] = w->kind_events[k];
	}
	return DB_OK;
}

/* Adds the event with this id (and its interned thread and lock ids, 0 for
 * none) to the block summary, saving the previous block when the id starts a
 * new one. vCPUs are kept sorted. */
static int note_block(struct db_writer *w, int64_t id, const struct db_event *ev, uint32_t thread_id,
		      uint32_t lock_id)
{
	int64_t block = (id - 1) / DB_BLOCK_EVENTS;
	size_t i;

	if (block != w->block) {
		if (save_block(w) != DB_OK)
			return w->err;
		w->block = block;
		w->nbv = 0;
	}
	for (i = 0; i < w->nbv && w->bv[i].vcpu < ev->vcpu; i++)
		;
	if (i == w->nbv || w->bv[i].vcpu != ev->vcpu) {
		if (w->nbv == w->bv_cap) {
			size_t cap = w->bv_cap ? w->bv_cap * 2 : 8;
			struct block_vcpu *v = realloc(w->bv, cap * sizeof(*v));
			if (!v) {
				w->err = w->err ? w->err : DB_E_NOMEM;
				atomic_store(&w->failed, 1);
				return w->err;
			}
			w->bv = v;
			w->bv_cap = cap;
		}
		memmove(&w->bv[i + 1], &w->bv[i], (w->nbv - i) * sizeof(*w->bv));
		w->bv[i] = (struct block_vcpu){ ev->vcpu, ev->icount, ev->icount, 0, 0, 0 };
		w->nbv++;
	}
	struct block_vcpu *b = &w->bv[i];
	if (ev->icount < b->first)
		b->first = ev->icount;
	if (ev->icount > b->last)
		b->last = ev->icount;
	b->kinds |= 1u << ev->kind;
	if (thread_id)
		b->threads |= 1ULL << (thread_id % 64);
	if (lock_id)
		b->locks |= 1ULL << (lock_id % 64);
	w->kind_events[ev->kind]++;
	return DB_OK;
}

/* Inserts the pending rows: ROW_BATCH at once, or one by one for fewer. */
static int flush_rows(struct db_writer *w)
{
	sqlite3_stmt *st = w->nrows == ROW_BATCH ? w->ins_batch : w->st[ST_INS_EVENT];
	unsigned per_stmt = w->nrows == ROW_BATCH ? ROW_BATCH : 1;

	for (unsigned r = 0; r < w->nrows; r += per_stmt) {
		for (unsigned i = 0; i < per_stmt * ROW_COLS; i++) {
			int64_t v = w->rows[r + i / ROW_COLS][i % ROW_COLS];
			if (v == ROW_NULL)
				sqlite3_bind_null(st, (int)i + 1);
			else
				sqlite3_bind_int64(st, (int)i + 1, v);
		}
		if (step(w, st) != DB_OK)
			return w->err;
	}
	w->nrows = 0;
	return DB_OK;
}

static int bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
	return s && *s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

static void out_of_memory(struct db_writer *w)
{
	w->err = w->err ? w->err : DB_E_NOMEM;
	atomic_store(&w->failed, 1);
}

/* Inserts a threads row for (addr, tid) and makes it addr's newest. 0 on
 * failure (w->err set). */
static uint32_t new_thread(struct db_writer *w, uint64_t addr, int32_t tid, const char *name)
{
	sqlite3_stmt *st = w->st[ST_INS_THREAD];
	uint32_t id = w->nthreads + 1;

	if (w->nthreads == w->thread_cap) {
		uint32_t cap = w->thread_cap ? w->thread_cap * 2 : 64;
		struct thread_state *v = realloc(w->threads, cap * sizeof(*v));
		if (!v) {
			out_of_memory(w);
			return 0;
		}
		w->threads = v;
		w->thread_cap = cap;
	}
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, (int64_t)addr);
	if (tid >= 0)
		sqlite3_bind_int(st, 3, tid);
	else
		sqlite3_bind_null(st, 3);
	bind_text_or_null(st, 4, name);
	if (step(w, st) != DB_OK)
		return 0;
	w->threads[id - 1] = (struct thread_state){ tid, name && *name ? strdup(name) : NULL };
	if (db_map_put(&w->thread_ids, addr, id) != DB_OK) {
		out_of_memory(w);
		return 0;
	}
	w->nthreads++;
	return id;
}

/* Returns the id of thread (addr, tid), inserting (and naming) it the first
 * time; name overrides the namer. tid -1 (not known) is addr's newest row; a
 * known tid fills in a row that had none, and a different one starts a new
 * row (the thread object was reused), named as the old one until renamed.
 * 0 on failure (w->err set). */
static uint32_t intern_thread(struct db_writer *w, uint64_t addr, int32_t tid, const char *name)
{
	char buf[NAME_MAX_LEN] = "";
	uint32_t id;

	if (addr == w->last_thread && addr && (tid < 0 || tid == w->last_tid))
		return w->last_thread_id;
	if (!db_map_get(&w->thread_ids, addr, &id)) {
		if (!name && w->namer && w->namer(w->namer_ctx, 0, addr, buf, sizeof(buf)) == 0)
			name = buf;
		buf[sizeof(buf) - 1] = 0;
		if (!(id = new_thread(w, addr, tid, name)))
			return 0;
	} else if (tid >= 0 && w->threads[id - 1].tid != tid) {
		if (w->threads[id - 1].tid < 0) {
			sqlite3_stmt *st = w->st[ST_THREAD_TID];
			sqlite3_bind_int64(st, 1, id);
			sqlite3_bind_int(st, 2, tid);
			if (step(w, st) != DB_OK)
				return 0;
			w->threads[id - 1].tid = tid;
		} else if (!(id = new_thread(w, addr, tid, name ? name : w->threads[id - 1].name))) {
			return 0;
		}
	}
	w->last_thread = addr;
	w->last_tid = w->threads[id - 1].tid;
	w->last_thread_id = id;
	return id;
}

/* Stores a thread's new name (if it changed). */
static int rename_thread(struct db_writer *w, uint32_t id, const char *name)
{
	struct thread_state *t = &w->threads[id - 1];
	sqlite3_stmt *st = w->st[ST_THREAD_NAME];
	char *copy;

	if (t->name && strcmp(t->name, name) == 0)
		return DB_OK;
	if (!(copy = strdup(name))) {
		out_of_memory(w);
		return w->err;
	}
	free(t->name);
	t->name = copy;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	return step(w, st);
}

static int lock_type_of(int kind, uint16_t lockop)
{
	static const uint8_t by_flavor[] = {
		[DB_LF_SPIN] = LT_SPIN, [DB_LF_READ] = LT_RW, [DB_LF_WRITE] = LT_RW,
		[DB_LF_MUTEX] = LT_MUTEX, [DB_LF_RWSEM_READ] = LT_RWSEM, [DB_LF_RWSEM_WRITE] = LT_RWSEM,
		[DB_LF_SEM] = LT_SEM,
	};

	switch (kind) {
	case DB_LOCK_TRY:
	case DB_LOCK_ACQ:
	case DB_LOCK_REL:
	case DB_LOCK_INIT:
	case DB_LOCK_FAIL:
		return DB_LOCKOP_FLAVOR(lockop) <= DB_LF_SEM ? by_flavor[DB_LOCKOP_FLAVOR(lockop)] : LT_SPIN;
	case DB_MUTEX_ACQ:
	case DB_MUTEX_REL:
		return LT_MUTEX;
	default:
		return LT_OBJECT;
	}
}

/* Inserts instance `instance` of the lock at addr and makes it addr's newest. */
static uint32_t new_lock(struct db_writer *w, uint64_t addr, uint32_t instance, int type, uint64_t caller,
			 const char *name)
{
	char buf[NAME_MAX_LEN] = "";
	uint32_t id;
	sqlite3_stmt *st = w->st[ST_INS_LOCK];

	if (w->nlocks == w->lock_cap) {
		uint32_t cap = w->lock_cap ? w->lock_cap * 2 : 256;
		struct lock_state *v = realloc(w->locks, cap * sizeof(*v));
		if (!v) {
			out_of_memory(w);
			return 0;
		}
		w->locks = v;
		w->lock_cap = cap;
	}
	if (!name && w->namer && w->namer(w->namer_ctx, 1, addr, buf, sizeof(buf)) == 0)
		name = buf;
	buf[sizeof(buf) - 1] = 0;
	id = w->nlocks + 1;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, (int64_t)addr);
	sqlite3_bind_int64(st, 3, instance);
	bind_text_or_null(st, 4, name);
	sqlite3_bind_text(st, 5, lock_type_names[type], -1, SQLITE_STATIC);
	if (caller)
		sqlite3_bind_int64(st, 6, (int64_t)caller);
	else
		sqlite3_bind_null(st, 6);
	if (step(w, st) != DB_OK)
		return 0;
	if (db_map_put(&w->lock_ids, addr, id) != DB_OK) {
		out_of_memory(w);
		return 0;
	}
	w->locks[w->nlocks++] = (struct lock_state){ addr, 0, instance, (uint8_t)type };
	return id;
}

/* Like intern_thread for locks and objects: the id of addr's newest
 * instance, or of a new one when reinit (a lock_init of a known address).
 * kind and lockop refine the lock's type (an object later seen as a
 * spinlock or mutex becomes one); caller is noted on a new instance. */
static uint32_t intern_lock(struct db_writer *w, uint64_t addr, int kind, uint16_t lockop, uint64_t caller,
			    const char *name, int reinit)
{
	uint32_t id;
	int type = lock_type_of(kind, lockop);

	if (!db_map_get(&w->lock_ids, addr, &id))
		return new_lock(w, addr, 0, type, caller, name);
	if (reinit)
		return new_lock(w, addr, w->locks[id - 1].instance + 1, type, caller, name);
	struct lock_state *l = &w->locks[id - 1];
	if (l->type == LT_OBJECT && type != LT_OBJECT) {
		sqlite3_stmt *st = w->st[ST_LOCK_TYPE];
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_text(st, 2, lock_type_names[type], -1, SQLITE_STATIC);
		if (step(w, st) != DB_OK)
			return 0;
		l->type = (uint8_t)type;
	}
	return id;
}

/* Stores one event (the transaction is open). Takes ownership of text. */
static int store_event(struct db_writer *w, const struct db_event *ev, char *text)
{
	uint32_t thread_id = 0;
	int64_t obj = (int64_t)ev->obj;
	int64_t id = w->next_id;

	w->txn_rows++; /* from here on, a failure loses it with the transaction */
	if (ev->thread && !(thread_id = intern_thread(w, ev->thread, ev->tid, NULL)))
		goto out;
	if (ev->kind == DB_SWITCH && ev->b && !intern_thread(w, (uint64_t)ev->b, -1, NULL))
		goto out;
	if (db_kind_obj_is_lock(ev->kind) && ev->obj) {
		/* a lock_init of a known address starts a new instance of it */
		uint32_t lock_id = intern_lock(w, ev->obj, ev->kind, ev->lockop, ev->caller, NULL,
					       ev->kind == DB_LOCK_INIT);
		if (!lock_id)
			goto out;
		obj = lock_id;
		if (ev->kind == DB_LOCK_INIT && w->locks[lock_id - 1].init_site != (uint64_t)ev->a) {
			sqlite3_stmt *li = w->st[ST_LOCK_INIT];
			sqlite3_bind_int64(li, 1, lock_id);
			sqlite3_bind_int64(li, 2, ev->a);
			if (step(w, li) != DB_OK)
				goto out;
			w->locks[lock_id - 1].init_site = (uint64_t)ev->a;
		}
	}
	if (note_block(w, id, ev, thread_id, db_kind_obj_is_lock(ev->kind) ? (uint32_t)obj : 0) != DB_OK)
		goto out;
	int64_t *row = w->rows[w->nrows++];
	/* No id column: SQLite gives the row max(id) + 1, which is id, since
	 * this thread is the only one inserting and nothing is ever deleted. */
	row[0] = (int64_t)ev->icount;
	row[1] = ev->vcpu;
	row[2] = ev->kind;
	row[3] = (int64_t)ev->pc;
	row[4] = thread_id;
	row[5] = obj;
	row[6] = ev->a;
	row[7] = ev->b;
	row[8] = (ev->ctx & 3) | (int64_t)(ev->flags & 63) << 2 | (int64_t)ev->lockop << 8;
	row[9] = ev->preempt >= 0 ? ev->preempt : ROW_NULL;
	row[10] = ev->caller ? (int64_t)ev->caller : ROW_NULL;
	w->next_id++;
	if (w->nrows == ROW_BATCH && flush_rows(w) != DB_OK)
		goto out;
	if (text) {
		sqlite3_stmt *tx = w->st[ST_INS_TEXT];
		sqlite3_bind_int64(tx, 1, id);
		sqlite3_bind_text(tx, 2, text, -1, SQLITE_STATIC);
		step(w, tx);
		sqlite3_clear_bindings(tx);
	}
out:
	free(text);
	return w->err;
}

static void free_ctl(struct ctl *c)
{
	free(c->key);
	free(c->value);
	free(c);
}

static int run_ctl(struct db_writer *w, const struct ctl *c)
{
	sqlite3_stmt *st;
	uint32_t id;

	switch (c->op) {
	case CTL_META:
		st = w->st[ST_SET_META];
		sqlite3_bind_text(st, 1, c->key, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, c->value, -1, SQLITE_STATIC);
		return step(w, st);
	case CTL_SYMBOL:
		st = w->st[ST_INS_SYMBOL];
		sqlite3_bind_int64(st, 1, (int64_t)c->addr);
		sqlite3_bind_int64(st, 2, (int64_t)c->size);
		sqlite3_bind_text(st, 3, c->key, -1, SQLITE_STATIC);
		if (step(w, st) != DB_OK)
			return w->err;
		if (db_symtab_add(&w->syms, c->addr, c->size, c->key) != DB_OK)
			return w->err = w->err ? w->err : DB_E_NOMEM;
		return DB_OK;
	case CTL_NAME:
		if (!c->is_lock) {
			id = intern_thread(w, c->addr, c->tid, c->key);
			return id ? rename_thread(w, id, c->key) : w->err;
		}
		if (!db_map_get(&w->lock_ids, c->addr, &id)) {
			id = intern_lock(w, c->addr, 0, 0, 0, c->key, 0);
			return id ? DB_OK : w->err;
		}
		st = w->st[ST_LOCK_NAME];
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_text(st, 2, c->key, -1, SQLITE_STATIC);
		return step(w, st);
	}
	return DB_E_ARG;
}

/* Runs the pending setters queued before event position pos. */
static size_t run_ctl_before(struct db_writer *w, uint64_t pos)
{
	struct ctl *c;
	size_t n = 0;

	while ((c = w->pending) && c->pos <= pos) {
		w->pending = c->next;
		if (!w->pending)
			w->pending_tail = &w->pending;
		if (!atomic_load_explicit(&w->failed, memory_order_relaxed) && begin(w) == DB_OK &&
		    run_ctl(w, c) != DB_OK)
			abandon(w);
		free_ctl(c);
		n++;
	}
	return n;
}

/*
 * One round: the events claimed so far (up to DRAIN_BATCH) and the setters,
 * in the order they were made. A setter remembers the ring position at the
 * time of the call and runs just before the event at that position. Loading
 * end before taking the setter list guarantees that every setter still
 * outside it was made after all the events of this round. After a failure
 * events are only counted as dropped. Returns the events and setters handled.
 */
static size_t drain(struct db_writer *w)
{
	uint64_t end = atomic_load_explicit(&w->q.head, memory_order_acquire);
	struct db_event ev;
	char *text;
	size_t n = 0;

	pthread_mutex_lock(&w->ctl_lock);
	*w->pending_tail = w->ctl_head;
	if (w->ctl_head)
		w->pending_tail = w->ctl_tail;
	w->ctl_head = NULL;
	w->ctl_tail = &w->ctl_head;
	pthread_mutex_unlock(&w->ctl_lock);

	if (end - w->q.tail > DRAIN_BATCH)
		end = w->q.tail + DRAIN_BATCH;
	for (;;) {
		n += run_ctl_before(w, w->q.tail);
		if (w->q.tail == end || !db_queue_pop(&w->q, &ev, &text))
			break;
		n++;
		if (atomic_load_explicit(&w->failed, memory_order_relaxed)) {
			free(text);
			atomic_fetch_add(&w->dropped, 1);
		} else if (begin(w) != DB_OK) {
			free(text);
			atomic_fetch_add(&w->dropped, 1);
			abandon(w);
		} else if (store_event(w, &ev, text) != DB_OK) {
			abandon(w);
		}
	}
	return n;
}

static void *writer_main(void *arg)
{
	struct db_writer *w = arg;

	for (;;) {
		int stopping = atomic_load_explicit(&w->stop, memory_order_acquire);
		size_t n = drain(w);

		if (w->in_txn && (stopping || w->txn_rows >= COMMIT_ROWS ||
				  ms_since(&w->txn_start) >= COMMIT_MS))
			commit(w);
		if (n == 0 && stopping)
			break;
		/* a nearly empty ring: nap, so that rounds are batches, not single events */
		if (n < IDLE_BELOW && !stopping)
			usleep(IDLE_SLEEP_US);
	}
	/* Only setters made after the last push can be left. */
	run_ctl_before(w, UINT64_MAX);
	commit(w);
	return NULL;
}

/* ------------------------------------------------------------ public */

static int queue_ctl(struct db_writer *w, struct ctl *c)
{
	c->next = NULL;
	pthread_mutex_lock(&w->ctl_lock);
	c->pos = atomic_load_explicit(&w->q.head, memory_order_acquire);
	*w->ctl_tail = c;
	w->ctl_tail = &c->next;
	pthread_mutex_unlock(&w->ctl_lock);
	return DB_OK;
}

/* Releases everything; the thread must not be running. */
static void writer_free(struct db_writer *w)
{
	struct ctl *c, *next;

	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(w->st[i]);
	sqlite3_finalize(w->ins_batch);
	sqlite3_close(w->db);
	for (c = w->ctl_head; c; c = next) {
		next = c->next;
		free_ctl(c);
	}
	for (c = w->pending; c; c = next) {
		next = c->next;
		free_ctl(c);
	}
	pthread_mutex_destroy(&w->ctl_lock);
	db_queue_free(&w->q);
	db_map_free(&w->thread_ids);
	db_map_free(&w->lock_ids);
	db_symtab_free(&w->syms);
	free(w->locks);
	for (uint32_t i = 0; i < w->nthreads; i++)
		free(w->threads[i].name);
	free(w->threads);
	free(w->bv);
	free(w->errmsg);
	free(w->path);
	free(w);
}

/* Prepares the ROW_BATCH-row INSERT. */
static int prepare_batch(struct db_writer *w, char **err)
{
	char sql[ROW_BATCH * 64 + 64];
	size_t len = (size_t)snprintf(sql, sizeof(sql), "INSERT INTO event_rows " EVENT_ROW_COLUMNS " VALUES ");

	for (unsigned r = 0; r < ROW_BATCH; r++)
		len += (size_t)snprintf(sql + len, sizeof(sql) - len, "%s(?,?,?,?,?,?,?,?,?,?,?)", r ? "," : "");
	if (sqlite3_prepare_v3(w->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &w->ins_batch, NULL) != SQLITE_OK)
		return db_fail(err, DB_E_IO, "%s: %s", w->path, sqlite3_errmsg(w->db));
	return DB_OK;
}

static void unlink_trace(const char *path)
{
	char side[4096];

	unlink(path);
	snprintf(side, sizeof(side), "%s-wal", path);
	unlink(side);
	snprintf(side, sizeof(side), "%s-shm", path);
	unlink(side);
}

int db_writer_open(const char *path, db_namer namer, void *namer_ctx, struct db_writer **out,
		   char **err)
{
	return db_writer_open_ring(path, namer, namer_ctx, QUEUE_SLOTS, out, err);
}

int db_writer_open_ring(const char *path, db_namer namer, void *namer_ctx, size_t slots,
			struct db_writer **out, char **err)
{
	struct db_writer *w = NULL;
	int fd, rc, created = 0, ret;
	char *sqlerr = NULL;

	*out = NULL;
	if (!path || !*path)
		return db_fail(err, DB_E_ARG, "no trace database path given");
	if (slots < 2 || (slots & (slots - 1)))
		return db_fail(err, DB_E_ARG, "ring size %zu is not a power of two", slots);
	fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
	if (fd < 0) {
		if (errno == EEXIST)
			return db_fail(err, DB_E_IO, "%s: already exists (a trace is never overwritten)", path);
		return db_fail(err, DB_E_IO, "cannot create %s: %s", path, strerror(errno));
	}
	close(fd);
	created = 1;
	w = calloc(1, sizeof(*w));
	if (!w || !(w->path = strdup(path))) {
		ret = db_fail(err, DB_E_NOMEM, "out of memory");
		goto fail;
	}
	pthread_mutex_init(&w->ctl_lock, NULL);
	w->ctl_tail = &w->ctl_head;
	w->pending_tail = &w->pending;
	w->namer = namer;
	w->namer_ctx = namer_ctx;
	w->next_id = 1;
	w->block = -1;
	if (db_queue_init(&w->q, slots) != DB_OK) {
		ret = db_fail(err, DB_E_NOMEM, "out of memory");
		goto fail;
	}
	rc = sqlite3_open_v2(path, &w->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		ret = db_fail(err, DB_E_IO, "cannot open %s: %s", path, sqlite3_errstr(rc));
		goto fail;
	}
	/* Another process updating meta (db_update_meta) must not fail us. */
	sqlite3_busy_timeout(w->db, 5000);
	/* 32 KiB pages: appending rows costs ~40% less CPU than with 4 KiB ones
	 * (fewer page splits and writes; bench/db_writer.sh), at the price of
	 * rewriting a bigger last page at each commit. The WAL is checkpointed
	 * every 16 MiB (512 pages). */
	rc = sqlite3_exec(w->db,
			  "PRAGMA page_size = 32768; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
			  "PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = 512;",
			  NULL, NULL, &sqlerr);
	if (rc == SQLITE_OK) {
		rc = sqlite3_exec(w->db, "BEGIN", NULL, NULL, &sqlerr);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(w->db, db_schema_sql, NULL, NULL, &sqlerr);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(w->db, "COMMIT", NULL, NULL, &sqlerr);
	}
	if (rc != SQLITE_OK) {
		ret = db_fail(err, rc == SQLITE_FULL ? DB_E_FULL : DB_E_IO, "cannot create the schema in %s: %s",
			      path, sqlerr ? sqlerr : sqlite3_errstr(rc));
		goto fail;
	}
	for (int i = 0; i < ST_COUNT; i++) {
		rc = sqlite3_prepare_v3(w->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &w->st[i], NULL);
		if (rc != SQLITE_OK) {
			ret = db_fail(err, DB_E_IO, "%s: %s", path, sqlite3_errmsg(w->db));
			goto fail;
		}
	}
	ret = prepare_batch(w, err);
	if (ret != DB_OK)
		goto fail;
	if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
		ret = db_fail(err, DB_E_NOMEM, "cannot start the writer thread: %s", strerror(errno));
		goto fail;
	}
	w->thread_started = 1;
	pthread_setname_np(w->thread, "krdb-writer");
	*out = w;
	return DB_OK;
fail:
	sqlite3_free(sqlerr);
	if (w)
		writer_free(w);
	if (created)
		unlink_trace(path);
	return ret;
}

int db_writer_push(struct db_writer *w, const struct db_event *ev)
{
	if (ev->kind < 1 || ev->kind > DB_KIND_MAX)
		return DB_E_ARG;
	if (atomic_load_explicit(&w->failed, memory_order_relaxed) ||
	    db_queue_push(&w->q, ev, NULL) != DB_OK) {
		atomic_fetch_add_explicit(&w->dropped, 1, memory_order_relaxed);
		return DB_E_FULL;
	}
	return DB_OK;
}

int db_writer_push_text(struct db_writer *w, const struct db_event *ev, const char *text)
{
	char *copy;

	if (ev->kind < 1 || ev->kind > DB_KIND_MAX)
		return DB_E_ARG;
	copy = text ? strdup(text) : NULL;
	if ((text && !copy) || atomic_load_explicit(&w->failed, memory_order_relaxed) ||
	    db_queue_push(&w->q, ev, copy) != DB_OK) {
		free(copy);
		atomic_fetch_add_explicit(&w->dropped, 1, memory_order_relaxed);
		return copy || !text ? DB_E_FULL : DB_E_NOMEM;
	}
	return DB_OK;
}

int db_writer_set_meta(struct db_writer *w, const char *key, const char *value)
{
	struct ctl *c;

	if (!key || !*key || !value)
		return DB_E_ARG;
	c = calloc(1, sizeof(*c));
	if (!c || !(c->key = strdup(key)) || !(c->value = strdup(value))) {
		if (c)
			free_ctl(c);
		return DB_E_NOMEM;
	}
	c->op = CTL_META;
	return queue_ctl(w, c);
}

int db_writer_add_symbol(struct db_writer *w, uint64_t addr, uint64_t size, const char *name)
{
	struct ctl *c;

	if (!name || !*name)
		return DB_E_ARG;
	c = calloc(1, sizeof(*c));
	if (!c || !(c->key = strdup(name))) {
		free(c);
		return DB_E_NOMEM;
	}
	c->op = CTL_SYMBOL;
	c->addr = addr;
	c->size = size;
	return queue_ctl(w, c);
}

int db_writer_name(struct db_writer *w, int is_lock, uint64_t addr, const char *name)
{
	return is_lock ? db_writer_name_lock(w, addr, name) : db_writer_name_thread(w, addr, -1, name);
}

static int queue_name(struct db_writer *w, int is_lock, uint64_t addr, int32_t tid, const char *name)
{
	struct ctl *c;

	if (!addr || !name)
		return DB_E_ARG;
	c = calloc(1, sizeof(*c));
	if (!c || !(c->key = strdup(name))) {
		free(c);
		return DB_E_NOMEM;
	}
	c->op = CTL_NAME;
	c->is_lock = is_lock;
	c->tid = tid;
	c->addr = addr;
	return queue_ctl(w, c);
}

int db_writer_name_thread(struct db_writer *w, uint64_t addr, int32_t tid, const char *name)
{
	return queue_name(w, 0, addr, tid < 0 ? -1 : tid, name);
}

int db_writer_name_lock(struct db_writer *w, uint64_t addr, const char *name)
{
	return queue_name(w, 1, addr, -1, name);
}

void db_writer_stats(struct db_writer *w, struct db_writer_stats *st)
{
	clockid_t clk;
	struct timespec t;

	st->queued = atomic_load_explicit(&w->q.head, memory_order_relaxed);
	st->written = atomic_load_explicit(&w->written, memory_order_relaxed);
	st->dropped = atomic_load_explicit(&w->dropped, memory_order_relaxed);
	st->cpu_ns = 0;
	if (pthread_getcpuclockid(w->thread, &clk) == 0 && clock_gettime(clk, &t) == 0)
		st->cpu_ns = (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* After the thread has stopped: lock classes, final counters, one commit. */
static int finish(struct db_writer *w)
{
	char buf[64], cls[512];
	sqlite3_stmt *st = w->st[ST_LOCK_CLASS];

	if (begin(w) != DB_OK)
		return w->err;
	for (uint32_t i = 0; i < w->nlocks; i++) {
		db_symtab_lock_class(&w->syms, w->locks[i].addr, w->locks[i].init_site, cls, sizeof(cls));
		sqlite3_bind_int64(st, 1, i + 1);
		sqlite3_bind_text(st, 2, cls, -1, SQLITE_STATIC);
		if (step(w, st) != DB_OK)
			goto fail;
	}
	st = w->st[ST_SET_META];
	sqlite3_bind_text(st, 1, "events_total", -1, SQLITE_STATIC);
	snprintf(buf, sizeof(buf), "%" PRIu64, atomic_load(&w->written));
	sqlite3_bind_text(st, 2, buf, -1, SQLITE_TRANSIENT);
	if (step(w, st) != DB_OK)
		goto fail;
	sqlite3_bind_text(st, 1, "dropped", -1, SQLITE_STATIC);
	snprintf(buf, sizeof(buf), "%" PRIu64, atomic_load(&w->dropped));
	sqlite3_bind_text(st, 2, buf, -1, SQLITE_TRANSIENT);
	if (step(w, st) != DB_OK)
		goto fail;
	return commit(w);
fail:
	abandon(w);
	return w->err;
}

int db_writer_close(struct db_writer *w, char **err)
{
	int ret;

	if (!w)
		return DB_OK;
	atomic_store_explicit(&w->stop, 1, memory_order_release);
	if (w->thread_started)
		pthread_join(w->thread, NULL);
	w->thread_started = 0;
	if (w->err == DB_OK)
		finish(w);
	else if (w->err == DB_E_FULL) /* Try anyway: the counters may still fit. */
		finish(w);
	/* Back to a single self-contained file, unless a reader is in the middle
	 * of a read: then the trace stays in WAL mode rather than wait for it. */
	if (w->err == DB_OK) {
		sqlite3_busy_timeout(w->db, 0);
		sqlite3_exec(w->db, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL);
	}
	ret = w->err;
	if (ret == DB_E_FULL)
		db_fail(err, ret, "%s: disk full: %" PRIu64 " events lost, %" PRIu64 " kept", w->path,
			atomic_load(&w->dropped), atomic_load(&w->written));
	else if (ret != DB_OK)
		db_fail(err, ret, "cannot write %s: %s (%" PRIu64 " events lost)", w->path,
			w->errmsg ? w->errmsg : "error", atomic_load(&w->dropped));
	writer_free(w);
	return ret;
}

int db_update_meta(const char *path, const char *key, const char *value, char **err)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	struct stat sb;
	int rc, ret;

	if (!path || !key || !*key || !value)
		return db_fail(err, DB_E_ARG, "db_update_meta: missing path, key or value");
	if (stat(path, &sb) != 0)
		return db_fail(err, DB_E_IO, "cannot open %s: %s", path, strerror(errno));
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc != SQLITE_OK) {
		ret = db_fail(err, DB_E_IO, "cannot open %s: %s", path, sqlite3_errstr(rc));
		goto out;
	}
	sqlite3_busy_timeout(db, 5000);
	ret = db_check_trace(db, path, err);
	if (ret != DB_OK)
		goto out;
	rc = sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta VALUES (?1, ?2)", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE) {
		ret = db_fail(err, rc == SQLITE_FULL ? DB_E_FULL : DB_E_IO, "cannot update %s: %s", path,
			      sqlite3_errmsg(db));
		goto out;
	}
	/* As in db_writer_close: back to one self-contained file (the writer
	 * could not switch while the recorder was polling the trace), unless
	 * someone is reading it right now. */
	sqlite3_finalize(st);
	st = NULL;
	sqlite3_busy_timeout(db, 0);
	sqlite3_exec(db, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL);
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return ret;
}
