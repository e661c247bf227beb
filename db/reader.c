/*
 * reader.c - read-only access to a trace: checks on open, metadata, names and
 * classes, cursors over the events, and `krewind sql`.
 *
 * Strings and arrays handed out are kept in r->kept until db_reader_close, so
 * a caller may hold them as long as the reader lives. Names are cached per
 * address; a miss asks the database again, which lets a reader follow a trace
 * that is still being written.
 */
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "db/internal.h"

#define LOCK_KINDS "4,5,6,7,8,9,10,11,16,17" /* kinds.obj_is_lock */
#define LOCK_KIND_MASK 0x30ff0u               /* the same as bits (1 << kind) */

struct kept {
	struct kept *next;
	void *p;
};

/* Interned id -> guest address (threads.id, locks.id). */
struct idmap {
	uint64_t *addr; /* addr[id], 0 = not loaded */
	int32_t *tid;   /* threads: tid[id], -1 = not known (allocated for locks too, unused) */
	size_t n, cap;  /* ids below n loaded */
	int broken;     /* a reload failed (a damaged table): never retried */
};

/* A cached per-address string (name or class). */
struct strcache {
	struct db_map idx; /* addr -> index in v */
	const char **v;
	size_t n, cap;
};

/* Metadata values handed out, newest first: asking again for an unchanged
 * value returns the same string instead of keeping one more copy. */
struct meta_seen {
	struct meta_seen *next;
	char *key;
	const char *value; /* kept */
};

struct db_reader {
	sqlite3 *db;
	char *path;
	struct kept *kept;
	struct db_symtab syms;
	int syms_loaded;
	struct strcache thread_names, lock_names, lock_classes;
	struct idmap thread_ids, lock_ids;
	struct meta_seen *meta;
};

/*
 * A cursor runs one statement over a range of ids at a time. Without kind or
 * icount conditions that is the whole id range at once; with them, the ranges
 * are the runs of consecutive event_blocks that can hold a match, so rare
 * kinds and icount windows skip the rest of the table.
 */
struct db_cursor {
	struct db_reader *r;
	struct db_filter f;
	sqlite3_stmt *events; /* the events of [:lo, :hi] matching f */
	sqlite3_stmt *blocks; /* candidate blocks, in cursor order; NULL: one range */
	int64_t lo, hi;       /* the id bounds from f (hi INT64_MAX if none) */
	uint64_t tmask, lmask; /* event_blocks.threads / .locks bits to look for, 0: any */
	int64_t next_block;   /* block read ahead from blocks, -1 if none */
	int in_range;         /* events is stepping through a range */
	int ranges_done;
	int64_t returned;
};

/* Takes ownership of p (freed at close); returns p, or NULL if p is NULL or
 * there was no memory (p is then freed). */
static void *keep(struct db_reader *r, void *p)
{
	struct kept *k;

	if (!p)
		return NULL;
	k = malloc(sizeof(*k));
	if (!k) {
		free(p);
		return NULL;
	}
	k->p = p;
	k->next = r->kept;
	r->kept = k;
	return p;
}

static const char *keep_str(struct db_reader *r, const char *s)
{
	return keep(r, strdup(s ? s : ""));
}

static const char *cache_get(struct strcache *c, uint64_t addr)
{
	uint32_t i;

	return addr && db_map_get(&c->idx, addr, &i) ? c->v[i] : NULL;
}

static const char *cache_put(struct strcache *c, uint64_t addr, const char *s)
{
	if (!addr || !s)
		return s;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		const char **v = realloc(c->v, cap * sizeof(*v));
		if (!v)
			return s;
		c->v = v;
		c->cap = cap;
	}
	if (db_map_put(&c->idx, addr, (uint32_t)c->n) != DB_OK)
		return s;
	c->v[c->n++] = s;
	return s;
}

static void cache_free(struct strcache *c)
{
	db_map_free(&c->idx);
	free(c->v);
}

static int sqlite_to_db(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		return DB_E_CORRUPT;
	case SQLITE_NOMEM:
		return DB_E_NOMEM;
	case SQLITE_FULL:
		return DB_E_FULL;
	default:
		return DB_E_IO;
	}
}

/* Checks the file itself before SQLite sees it: present, a SQLite file, and
 * (unless a WAL holds newer pages) as long as its header says. */
static int check_file(const char *path, char **err)
{
	unsigned char h[100];
	char wal[4096];
	struct stat sb, wb;
	FILE *f;
	size_t n;

	if (stat(path, &sb) != 0)
		return db_fail(err, DB_E_IO, "cannot open %s: %s", path, strerror(errno));
	if (!S_ISREG(sb.st_mode))
		return db_fail(err, DB_E_IO, "cannot open %s: not a regular file", path);
	f = fopen(path, "rb");
	if (!f)
		return db_fail(err, DB_E_IO, "cannot open %s: %s", path, strerror(errno));
	n = fread(h, 1, sizeof(h), f);
	fclose(f);
	if (n == 0)
		return db_fail(err, DB_E_CORRUPT, "%s: empty file, not a trace", path);
	if (n < sizeof(h) || memcmp(h, "SQLite format 3", 16) != 0)
		return db_fail(err, DB_E_CORRUPT, "%s: not a SQLite database (damaged or not a trace)", path);
	uint32_t page = (uint32_t)h[16] << 8 | h[17]; /* big-endian; 1 means 65536 */
	if (page == 1)
		page = 65536;
	uint32_t pages = (uint32_t)h[28] << 24 | (uint32_t)h[29] << 16 | (uint32_t)h[30] << 8 | h[31];
	int header_valid = memcmp(h + 24, h + 92, 4) == 0; /* change counter == version-valid-for */
	snprintf(wal, sizeof(wal), "%s-wal", path);
	int has_wal = stat(wal, &wb) == 0 && wb.st_size > 0;
	if (header_valid && !has_wal && pages && (uint64_t)sb.st_size < (uint64_t)pages * page)
		return db_fail(err, DB_E_CORRUPT, "%s: truncated (%lld of %llu bytes)", path,
			       (long long)sb.st_size, (unsigned long long)pages * page);
	return DB_OK;
}

static int pragma_int(sqlite3 *db, const char *sql, int64_t *v)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*v = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

/* Checks an open connection holds a krewind trace this code can read. Shared
 * with db_update_meta. */
int db_check_trace(sqlite3 *db, const char *path, char **err)
{
	int64_t app = 0, ver = 0, probe = 0;
	int rc;

	rc = pragma_int(db, "PRAGMA application_id", &app);
	if (rc == SQLITE_OK)
		rc = pragma_int(db, "PRAGMA user_version", &ver);
	if (rc != SQLITE_OK)
		return db_fail(err, sqlite_to_db(rc), "%s: %s", path, sqlite3_errstr(rc));
	if (app != DB_APPLICATION_ID)
		return db_fail(err, DB_E_SCHEMA, "%s: not a krewind trace (no krewind schema)", path);
	if (ver > DB_SCHEMA_VERSION)
		return db_fail(err, DB_E_SCHEMA,
			       "%s: schema version %" PRId64 " is newer than this krewind reads (%d); upgrade krewind",
			       path, ver, DB_SCHEMA_VERSION);
	if (ver == 1)
		return db_fail(err, DB_E_SCHEMA,
			       "%s: schema version 1 (an older krewind) has no execution context, interrupt"
			       " state or lock flavors, which this krewind needs; record it again",
			       path);
	if (ver < 1)
		return db_fail(err, DB_E_SCHEMA, "%s: krewind trace with unknown schema version %" PRId64, path, ver);
	/* Reads the rightmost pages of the events b-tree (a cut file fails here)
	 * and touches every table and column this code relies on. */
	rc = pragma_int(db,
			"SELECT coalesce(max(id), 0) + (SELECT sum(events) FROM kinds)"
			" + (SELECT count(*) FROM event_blocks WHERE block = -1 AND threads + locks = 0)"
			" + (SELECT count(*) FROM texts WHERE event_id = 0)"
			" + (SELECT count(*) FROM locks WHERE id = 0 AND init_site + instance + caller IS NULL)"
			" + (SELECT count(*) FROM threads WHERE id = 0 AND tid IS NULL)"
			" + coalesce(max(state + preempt + caller), 0) * 0 FROM event_rows",
			&probe);
	if (rc != SQLITE_OK && sqlite_to_db(rc) == DB_E_IO)
		return db_fail(err, DB_E_SCHEMA, "%s: not a valid krewind trace of schema version %" PRId64 " (%s)",
			       path, ver, sqlite3_errmsg(db));
	if (rc != SQLITE_OK)
		return db_fail(err, sqlite_to_db(rc), "%s: %s", path, sqlite3_errmsg(db));
	return DB_OK;
}

int db_reader_open(const char *path, struct db_reader **out, char **err)
{
	struct db_reader *r = NULL;
	int rc, ret;

	*out = NULL;
	if (!path || !*path)
		return db_fail(err, DB_E_ARG, "no trace database path given");
	ret = check_file(path, err);
	if (ret != DB_OK)
		return ret;
	r = calloc(1, sizeof(*r));
	if (!r || !(r->path = strdup(path))) {
		ret = db_fail(err, DB_E_NOMEM, "out of memory");
		goto fail;
	}
	rc = sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		ret = db_fail(err, sqlite_to_db(rc), "cannot open %s: %s", path, sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(r->db, 5000);
	sqlite3_limit(r->db, SQLITE_LIMIT_ATTACHED, 0);
	ret = db_check_trace(r->db, path, err);
	if (ret != DB_OK)
		goto fail;
	*out = r;
	return DB_OK;
fail:
	db_reader_close(r);
	return ret;
}

void db_reader_close(struct db_reader *r)
{
	struct kept *k, *next;
	struct meta_seen *m, *next_m;

	if (!r)
		return;
	sqlite3_close(r->db);
	for (k = r->kept; k; k = next) {
		next = k->next;
		free(k->p);
		free(k);
	}
	db_symtab_free(&r->syms);
	cache_free(&r->thread_names);
	cache_free(&r->lock_names);
	cache_free(&r->lock_classes);
	free(r->thread_ids.addr);
	free(r->thread_ids.tid);
	free(r->lock_ids.addr);
	free(r->lock_ids.tid);
	for (m = r->meta; m; m = next_m) {
		next_m = m->next;
		free(m->key);
		free(m);
	}
	free(r->path);
	free(r);
}

/* Prepares sql or sets *err. */
static int prepare(struct db_reader *r, const char *sql, sqlite3_stmt **st, char **err)
{
	int rc = sqlite3_prepare_v2(r->db, sql, -1, st, NULL);

	if (rc != SQLITE_OK)
		return db_fail(err, sqlite_to_db(rc), "%s: %s", r->path, sqlite3_errmsg(r->db));
	return DB_OK;
}

/* Keeps a copy of value and records it as key's latest (m: key's entry, or
 * NULL for a new key). Returns the copy, or NULL without memory. */
static const char *remember_meta(struct db_reader *r, struct meta_seen *m, const char *key, const char *value)
{
	const char *v = keep_str(r, value);

	if (!v)
		return NULL;
	if (!m) {
		m = calloc(1, sizeof(*m));
		if (!m || !(m->key = strdup(key))) {
			free(m);
			return v; /* still a valid answer, only not remembered */
		}
		m->next = r->meta;
		r->meta = m;
	}
	m->value = v;
	return v;
}

const char *db_meta(struct db_reader *r, const char *key)
{
	sqlite3_stmt *st;
	const char *v = NULL, *fresh;
	struct meta_seen *m;

	if (!key || prepare(r, "SELECT value FROM meta WHERE key = ?1", &st, NULL) != DB_OK)
		return NULL;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		fresh = (const char *)sqlite3_column_text(st, 0);
		for (m = r->meta; m && strcmp(m->key, key) != 0; m = m->next)
			;
		if (m && strcmp(m->value, fresh) == 0)
			v = m->value;
		else
			v = remember_meta(r, m, key, fresh);
	}
	sqlite3_finalize(st);
	return v;
}

int db_count_by_kind(struct db_reader *r, int64_t counts[DB_KIND_MAX + 1], char **err)
{
	sqlite3_stmt *st;
	int rc, ret;

	memset(counts, 0, sizeof(int64_t) * (DB_KIND_MAX + 1));
	/* kinds.events is committed with the events it counts. */
	ret = prepare(r, "SELECT id, events FROM kinds", &st, err);
	if (ret != DB_OK)
		return ret;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int k = sqlite3_column_int(st, 0);
		int64_t n = sqlite3_column_int64(st, 1);
		if (k >= 1 && k <= DB_KIND_MAX)
			counts[k] = n;
		counts[0] += n;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(err, sqlite_to_db(rc), "%s: %s", r->path, sqlite3_errstr(rc));
	return DB_OK;
}

/* Name of a thread or lock from its table, cached; "" if unknown. */
static const char *lookup_name(struct db_reader *r, struct strcache *c, const char *sql, uint64_t addr)
{
	sqlite3_stmt *st;
	const char *name = cache_get(c, addr);

	if (name)
		return name;
	if (!addr || prepare(r, sql, &st, NULL) != DB_OK)
		return "";
	sqlite3_bind_int64(st, 1, (int64_t)addr);
	if (sqlite3_step(st) == SQLITE_ROW) {
		name = keep_str(r, (const char *)sqlite3_column_text(st, 0));
		cache_put(c, addr, name);
	}
	sqlite3_finalize(st);
	return name ? name : "";
}

const char *db_thread_name(struct db_reader *r, uint64_t addr)
{
	return lookup_name(r, &r->thread_names,
			   "SELECT coalesce(name, '') FROM threads WHERE addr = ?1 ORDER BY id DESC LIMIT 1", addr);
}

const char *db_lock_name(struct db_reader *r, uint64_t addr)
{
	return lookup_name(r, &r->lock_names,
			   "SELECT coalesce(name, '') FROM locks WHERE addr = ?1 ORDER BY id DESC LIMIT 1", addr);
}

/* A thread address reused by several tids is rare: those are looked up
 * without a cache; the common case (one row per address) is db_thread_name. */
const char *db_thread_name_tid(struct db_reader *r, uint64_t addr, int32_t tid)
{
	sqlite3_stmt *st;
	const char *name = NULL;
	int64_t rows = 0;

	if (tid < 0 || !addr)
		return db_thread_name(r, addr);
	if (prepare(r, "SELECT count(*), (SELECT coalesce(name, '') FROM threads WHERE addr = ?1 AND tid = ?2"
		       " ORDER BY id DESC LIMIT 1) FROM threads WHERE addr = ?1", &st, NULL) != DB_OK)
		return "";
	sqlite3_bind_int64(st, 1, (int64_t)addr);
	sqlite3_bind_int(st, 2, tid);
	if (sqlite3_step(st) == SQLITE_ROW) {
		rows = sqlite3_column_int64(st, 0);
		if (rows > 1 && sqlite3_column_type(st, 1) != SQLITE_NULL)
			name = keep_str(r, (const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_finalize(st);
	if (rows <= 1)
		return db_thread_name(r, addr);
	return name ? name : "";
}

/* How far past the event the next run of the thread is looked for. */
#define NAME_AFTER_WINDOW 20000

const char *db_thread_name_after(struct db_reader *r, uint64_t addr, int64_t id)
{
	sqlite3_stmt *st;
	const char *name = NULL;
	int64_t rows = 0;

	if (!addr)
		return "";
	if (prepare(r, "SELECT (SELECT count(*) FROM threads WHERE addr = ?1), (SELECT coalesce(t.name, '')"
		       " FROM event_rows e JOIN threads t ON t.id = e.thread_id WHERE e.id > ?2 AND e.id <= ?2 + ?3"
		       " AND t.addr = ?1 ORDER BY e.id LIMIT 1)", &st, NULL) != DB_OK)
		return "";
	sqlite3_bind_int64(st, 1, (int64_t)addr);
	sqlite3_bind_int64(st, 2, id);
	sqlite3_bind_int64(st, 3, NAME_AFTER_WINDOW);
	if (sqlite3_step(st) == SQLITE_ROW) {
		rows = sqlite3_column_int64(st, 0);
		if (rows > 1 && sqlite3_column_type(st, 1) != SQLITE_NULL)
			name = keep_str(r, (const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_finalize(st);
	return name ? name : db_thread_name(r, addr);
}

/* Loads the symbols table the first time it is needed. */
static void load_symbols(struct db_reader *r)
{
	sqlite3_stmt *st;

	if (r->syms_loaded || prepare(r, "SELECT addr, size, name FROM symbols", &st, NULL) != DB_OK)
		return;
	while (sqlite3_step(st) == SQLITE_ROW) {
		/* NULL despite NOT NULL: a damaged row (found by fuzzing); skip it. */
		const char *name = (const char *)sqlite3_column_text(st, 2);
		if (name && db_symtab_add(&r->syms, (uint64_t)sqlite3_column_int64(st, 0),
					  (uint64_t)sqlite3_column_int64(st, 1), name) != DB_OK)
			break;
	}
	sqlite3_finalize(st);
	r->syms_loaded = 1;
}

char *db_symbolize(struct db_reader *r, uint64_t addr, char *buf, size_t size)
{
	load_symbols(r);
	return db_symtab_format(&r->syms, addr, buf, size);
}

const char *db_lock_class(struct db_reader *r, uint64_t addr)
{
	sqlite3_stmt *st;
	uint64_t site = 0;
	char buf[512];
	const char *cls = cache_get(&r->lock_classes, addr);

	if (cls)
		return cls;
	load_symbols(r);
	if (prepare(r, "SELECT coalesce(init_site, 0) FROM locks WHERE addr = ?1 ORDER BY id DESC LIMIT 1", &st,
		    NULL) == DB_OK) {
		sqlite3_bind_int64(st, 1, (int64_t)addr);
		if (sqlite3_step(st) == SQLITE_ROW)
			site = (uint64_t)sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	db_symtab_lock_class(&r->syms, addr, site, buf, sizeof(buf));
	cls = keep_str(r, buf);
	return cls ? cache_put(&r->lock_classes, addr, cls) : "";
}

/* Runs "SELECT key, count" and adds each count to the matching element of
 * v (n elements of stride bytes, addr at offset 0, count at cnt_off). */
static int add_counts(struct db_reader *r, const char *sql, void *v, size_t n, size_t stride,
		      size_t cnt_off, char **err)
{
	sqlite3_stmt *st;
	struct db_map idx = { 0 };
	int rc, ret = DB_OK;

	for (size_t i = 0; i < n; i++) {
		uint64_t addr = *(uint64_t *)((char *)v + i * stride);
		if (addr && db_map_put(&idx, addr, (uint32_t)i) != DB_OK) {
			db_map_free(&idx);
			return db_fail(err, DB_E_NOMEM, "out of memory");
		}
	}
	ret = prepare(r, sql, &st, err);
	if (ret != DB_OK)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint32_t i;
		if (db_map_get(&idx, (uint64_t)sqlite3_column_int64(st, 0), &i))
			*(int64_t *)((char *)v + i * stride + cnt_off) += sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		ret = db_fail(err, sqlite_to_db(rc), "%s: %s", r->path, sqlite3_errstr(rc));
out:
	db_map_free(&idx);
	return ret;
}

int db_threads(struct db_reader *r, const struct db_thread_info **out, size_t *n, char **err)
{
	sqlite3_stmt *st;
	struct db_thread_info *v = NULL, *nv;
	size_t cnt = 0, cap = 0;
	int rc, ret;

	*out = NULL;
	*n = 0;
	ret = prepare(r, "SELECT addr, coalesce(name, ''), coalesce(tid, -1) FROM threads ORDER BY id", &st, err);
	if (ret != DB_OK)
		return ret;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 32;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				rc = SQLITE_NOMEM;
				break;
			}
			v = nv;
		}
		v[cnt].addr = (uint64_t)sqlite3_column_int64(st, 0);
		v[cnt].name = keep_str(r, (const char *)sqlite3_column_text(st, 1));
		v[cnt].switches_in = 0;
		v[cnt].tid = (int32_t)sqlite3_column_int(st, 2);
		if (!v[cnt].name) {
			rc = SQLITE_NOMEM;
			break;
		}
		cnt++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return db_fail(err, sqlite_to_db(rc), "%s: %s", r->path, sqlite3_errstr(rc));
	}
	/* SWITCH: b = the thread switched in (a raw address); counted on the
	 * address's newest entry (add_counts keeps the last index per address). */
	ret = add_counts(r, "SELECT b, count(*) FROM event_rows WHERE kind_id = 12 GROUP BY b", v, cnt,
			 sizeof(*v), offsetof(struct db_thread_info, switches_in), err);
	if (ret != DB_OK) {
		free(v);
		return ret;
	}
	if (cnt && !keep(r, v))
		return db_fail(err, DB_E_NOMEM, "out of memory");
	if (!cnt)
		free(v);
	*out = cnt ? v : NULL;
	*n = cnt;
	return DB_OK;
}

/* Replaces each v[i].acquisitions (its locks.id) with the number of
 * lock_acq and mutex_acq events of that instance. */
static int count_acquisitions(struct db_reader *r, struct db_lock_info *v, size_t n, char **err)
{
	sqlite3_stmt *st;
	struct db_map idx = { 0 };
	int rc, ret;

	for (size_t i = 0; i < n; i++) {
		if (db_map_put(&idx, (uint64_t)v[i].acquisitions, (uint32_t)i) != DB_OK) {
			db_map_free(&idx);
			return db_fail(err, DB_E_NOMEM, "out of memory");
		}
		v[i].acquisitions = 0;
	}
	ret = prepare(r, "SELECT obj, count(*) FROM event_rows WHERE kind_id IN (5, 9) GROUP BY obj", &st, err);
	if (ret != DB_OK)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint32_t i;
		int64_t id = sqlite3_column_int64(st, 0);
		if (id > 0 && db_map_get(&idx, (uint64_t)id, &i))
			v[i].acquisitions += sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		ret = db_fail(err, sqlite_to_db(rc), "%s: %s", r->path, sqlite3_errstr(rc));
out:
	db_map_free(&idx);
	return ret;
}

int db_locks(struct db_reader *r, const struct db_lock_info **out, size_t *n, char **err)
{
	sqlite3_stmt *st;
	struct db_lock_info *v = NULL, *nv;
	size_t cnt = 0, cap = 0;
	int rc, ret;

	*out = NULL;
	*n = 0;
	ret = prepare(r,
		      "SELECT addr, coalesce(name, ''), type, instance, coalesce(init_site, 0), coalesce(caller, 0),"
		      " class, id FROM locks ORDER BY id",
		      &st, err);
	if (ret != DB_OK)
		return ret;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 32;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				rc = SQLITE_NOMEM;
				break;
			}
			v = nv;
		}
		v[cnt].addr = (uint64_t)sqlite3_column_int64(st, 0);
		v[cnt].name = keep_str(r, (const char *)sqlite3_column_text(st, 1));
		v[cnt].type = keep_str(r, (const char *)sqlite3_column_text(st, 2));
		v[cnt].instance = (uint32_t)sqlite3_column_int64(st, 3);
		v[cnt].init_site = (uint64_t)sqlite3_column_int64(st, 4);
		v[cnt].caller = (uint64_t)sqlite3_column_int64(st, 5);
		v[cnt].class_name = NULL;
		if (sqlite3_column_type(st, 6) != SQLITE_NULL) {
			v[cnt].class_name = keep_str(r, (const char *)sqlite3_column_text(st, 6));
		} else {
			char buf[512];
			load_symbols(r);
			db_symtab_lock_class(&r->syms, v[cnt].addr, v[cnt].init_site, buf, sizeof(buf));
			v[cnt].class_name = keep_str(r, buf);
		}
		/* acquisitions holds the id until counted below */
		v[cnt].acquisitions = sqlite3_column_int64(st, 7);
		if (!v[cnt].name || !v[cnt].type || !v[cnt].class_name) {
			rc = SQLITE_NOMEM;
			break;
		}
		cnt++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return db_fail(err, sqlite_to_db(rc), "%s: %s", r->path, sqlite3_errstr(rc));
	}
	ret = count_acquisitions(r, v, cnt, err);
	if (ret != DB_OK) {
		free(v);
		return ret;
	}
	if (cnt && !keep(r, v))
		return db_fail(err, DB_E_NOMEM, "out of memory");
	if (!cnt)
		free(v);
	*out = cnt ? v : NULL;
	*n = cnt;
	return DB_OK;
}

/* ------------------------------------------------------------ cursors */

/* thread_id and obj come raw: row_to_event maps the interned ids back to
 * addresses in memory, which halves the cost of a scan compared with joining
 * threads and locks per row. */
#define EVENT_COLUMNS                                                                            \
	"SELECT e.id, e.icount, e.vcpu, e.kind_id, e.pc, e.thread_id, e.obj, e.a, e.b, x.text,"  \
	" e.state, e.preempt, e.caller FROM event_rows e LEFT JOIN texts x ON x.event_id = e.id"

/* Loads the id -> address table of threads or locks (ids are 1..n); with a
 * third column (threads), the tids too. */
static int load_ids(struct db_reader *r, struct idmap *m, const char *sql)
{
	sqlite3_stmt *st;
	int rc;

	if (prepare(r, sql, &st, NULL) != DB_OK)
		return DB_E_IO;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		if (id < 1 || id > INT32_MAX)
			continue;
		if ((size_t)id >= m->cap) {
			size_t cap = m->cap ? m->cap : 64;
			while (cap <= (size_t)id)
				cap *= 2;
			uint64_t *v = realloc(m->addr, cap * sizeof(*v));
			if (v)
				m->addr = v;
			int32_t *t = v ? realloc(m->tid, cap * sizeof(*t)) : NULL;
			if (!v || !t) {
				rc = SQLITE_NOMEM;
				break;
			}
			memset(v + m->cap, 0, (cap - m->cap) * sizeof(*v));
			memset(t + m->cap, 0xff, (cap - m->cap) * sizeof(*t));
			m->tid = t;
			m->cap = cap;
		}
		m->addr[id] = (uint64_t)sqlite3_column_int64(st, 1);
		if (sqlite3_column_count(st) > 2)
			m->tid[id] = sqlite3_column_type(st, 2) == SQLITE_NULL ? -1 : (int32_t)sqlite3_column_int(st, 2);
		if ((size_t)id >= m->n)
			m->n = (size_t)id + 1;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? DB_OK : sqlite_to_db(rc);
}

/* The address of an interned id; reloads the table once for an id it has not
 * seen (the trace may still be growing). 0 if unknown. */
static uint64_t id_addr(struct db_reader *r, struct idmap *m, const char *sql, int64_t id)
{
	if (id <= 0)
		return 0;
	if (((size_t)id >= m->n || !m->addr[id]) && !m->broken && load_ids(r, m, sql) != DB_OK)
		m->broken = 1;
	return (size_t)id < m->n ? m->addr[id] : 0;
}

static void row_to_event(struct db_reader *r, sqlite3_stmt *st, struct db_event *ev, const char **text)
{
	memset(ev, 0, sizeof(*ev));
	ev->id = sqlite3_column_int64(st, 0);
	ev->icount = (uint64_t)sqlite3_column_int64(st, 1);
	ev->vcpu = (uint16_t)sqlite3_column_int(st, 2);
	ev->kind = (uint8_t)sqlite3_column_int(st, 3);
	ev->pc = (uint64_t)sqlite3_column_int64(st, 4);
	int64_t tid_row = sqlite3_column_int64(st, 5);
	int64_t state = sqlite3_column_int64(st, 10);
	ev->thread = id_addr(r, &r->thread_ids, "SELECT id, addr, tid FROM threads", tid_row);
	ev->tid = ev->thread && (size_t)tid_row < r->thread_ids.n ? r->thread_ids.tid[tid_row] : -1;
	ev->ctx = (uint8_t)(state & 3);
	ev->flags = (uint8_t)((state >> 2) & 63);
	ev->lockop = (uint16_t)(state >> 8);
	ev->preempt = sqlite3_column_type(st, 11) == SQLITE_NULL ? -1 : (int32_t)sqlite3_column_int64(st, 11);
	ev->caller = (uint64_t)sqlite3_column_int64(st, 12);
	ev->obj = (uint64_t)sqlite3_column_int64(st, 6);
	if (db_kind_obj_is_lock(ev->kind))
		ev->obj = id_addr(r, &r->lock_ids, "SELECT id, addr FROM locks", (int64_t)ev->obj);
	ev->a = sqlite3_column_int64(st, 7);
	ev->b = sqlite3_column_int64(st, 8);
	if (text)
		*text = (const char *)sqlite3_column_text(st, 9);
}

/* Prepares the statement for the events of one id range matching f. */
static int prepare_events(struct db_reader *r, const struct db_filter *f, sqlite3_stmt **out, char **err)
{
	char sql[2048], kinds[128] = "";
	size_t len;
	int nkinds = 0, ret;
	sqlite3_stmt *st;

	for (int k = 1; k <= DB_KIND_MAX; k++) {
		if (!(f->kinds & (1u << k)))
			continue;
		len = strlen(kinds);
		snprintf(kinds + len, sizeof(kinds) - len, "%s%d", nkinds++ ? "," : "", k);
	}
	len = (size_t)snprintf(sql, sizeof(sql), "%s WHERE e.id BETWEEN :lo AND :hi", EVENT_COLUMNS);
	if (nkinds)
		len += (size_t)snprintf(sql + len, sizeof(sql) - len, " AND e.kind_id IN (%s)", kinds);
	if (f->thread)
		len += (size_t)snprintf(sql + len, sizeof(sql) - len,
					" AND e.thread_id IN (SELECT id FROM threads WHERE addr = :thread%s)",
					f->by_tid ? " AND tid = :tid" : "");
	if (f->obj)
		len += (size_t)snprintf(sql + len, sizeof(sql) - len,
					" AND (CASE WHEN e.kind_id IN (" LOCK_KINDS ") THEN e.obj IN"
					" (SELECT id FROM locks WHERE addr = :obj)"
					" ELSE e.obj = :obj END)");
	if (f->from_icount)
		len += (size_t)snprintf(sql + len, sizeof(sql) - len, " AND e.icount >= :from_ic");
	if (f->to_icount)
		len += (size_t)snprintf(sql + len, sizeof(sql) - len, " AND e.icount <= :to_ic");
	snprintf(sql + len, sizeof(sql) - len, " ORDER BY e.id%s", f->descending ? " DESC" : "");
	ret = prepare(r, sql, &st, err);
	if (ret != DB_OK)
		return ret;
	sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":thread"), (int64_t)f->thread);
	sqlite3_bind_int(st, sqlite3_bind_parameter_index(st, ":tid"), f->tid);
	sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":obj"), (int64_t)f->obj);
	sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":from_ic"), (int64_t)f->from_icount);
	sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":to_ic"), (int64_t)f->to_icount);
	*out = st;
	return DB_OK;
}

/* Prepares the walk over the blocks that can hold a match. */
static int prepare_blocks(struct db_cursor *c, char **err)
{
	const struct db_filter *f = &c->f;
	char sql[512];
	sqlite3_stmt *st;
	int ret;

	snprintf(sql, sizeof(sql),
		 "SELECT block FROM event_blocks WHERE block BETWEEN :blo AND :bhi AND (kinds & :mask) != 0"
		 " AND last_icount >= :from_ic%s%s%s ORDER BY block%s",
		 f->to_icount ? " AND first_icount <= :to_ic" : "", c->tmask ? " AND (threads & :tmask) != 0" : "",
		 c->lmask ? " AND (locks & :lmask) != 0" : "", f->descending ? " DESC" : "");
	ret = prepare(c->r, sql, &st, err);
	if (ret != DB_OK)
		return ret;
	sqlite3_bind_int64(st, 1, (c->lo - 1) / DB_BLOCK_EVENTS);
	sqlite3_bind_int64(st, 2, (c->hi - 1) / DB_BLOCK_EVENTS);
	sqlite3_bind_int64(st, 3, f->kinds ? f->kinds : (int64_t)UINT32_MAX);
	sqlite3_bind_int64(st, 4, (int64_t)f->from_icount);
	sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":to_ic"), (int64_t)f->to_icount);
	sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":tmask"), (int64_t)c->tmask);
	sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":lmask"), (int64_t)c->lmask);
	c->blocks = st;
	c->next_block = -1;
	return DB_OK;
}

/* Reads the next candidate block; returns 1, 0 at the end, or < 0. */
static int read_block(struct db_cursor *c, int64_t *block)
{
	int rc = sqlite3_step(c->blocks);

	if (rc == SQLITE_ROW) {
		*block = sqlite3_column_int64(c->blocks, 0);
		return 1;
	}
	return rc == SQLITE_DONE ? 0 : sqlite_to_db(rc);
}

/* The next id range to scan, clipped to [c->lo, c->hi]: with blocks, a run
 * of consecutive candidate blocks (a vCPU's row and the next block both
 * extend it). Returns 1, 0 when there is none left, or < 0. */
static int next_range(struct db_cursor *c, int64_t *lo, int64_t *hi)
{
	int64_t first, last, b;
	int rc;

	if (c->ranges_done)
		return 0;
	if (!c->blocks) {
		c->ranges_done = 1;
		*lo = c->lo;
		*hi = c->hi;
		return 1;
	}
	if (c->next_block >= 0) {
		first = c->next_block;
	} else {
		rc = read_block(c, &first);
		if (rc <= 0) {
			c->ranges_done = 1;
			return rc;
		}
	}
	last = first;
	c->next_block = -1;
	for (;;) {
		rc = read_block(c, &b);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			c->ranges_done = 1;
			break;
		}
		if (b == last || b == last + (c->f.descending ? -1 : 1)) {
			last = b;
			continue;
		}
		c->next_block = b;
		break;
	}
	if (c->f.descending) {
		b = first;
		first = last;
		last = b;
	}
	*lo = first * DB_BLOCK_EVENTS + 1;
	*hi = last * DB_BLOCK_EVENTS + DB_BLOCK_EVENTS;
	if (*lo < c->lo)
		*lo = c->lo;
	if (*hi > c->hi)
		*hi = c->hi;
	return 1;
}

/* The event_blocks bits (id % 64) of the interned ids of a thread or lock
 * address (one per tid or instance) into *mask: 0 if not in the trace.
 * Returns 0 or < 0 on error. */
static int id_bits(struct db_reader *r, const char *sql, uint64_t addr, uint64_t *mask, char **err)
{
	sqlite3_stmt *st;
	int rc, ret = prepare(r, sql, &st, err);

	*mask = 0;
	if (ret != DB_OK)
		return ret;
	sqlite3_bind_int64(st, 1, (int64_t)addr);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		*mask |= 1ULL << (sqlite3_column_int64(st, 0) % 64);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(err, sqlite_to_db(rc), "%s: %s", r->path, sqlite3_errstr(rc));
	return DB_OK;
}

/* Which event_blocks bits a thread or obj filter can use. A thread not in
 * the trace, or a lock not in it when only lock kinds are asked for, matches
 * nothing (*none). obj also matches the raw obj of other kinds, so its bits
 * only help when f asks for lock kinds alone. */
static int filter_masks(struct db_cursor *c, char **err, int *none)
{
	const struct db_filter *f = &c->f;
	int ret;

	*none = 0;
	if (f->thread) {
		char sql[96] = "SELECT id FROM threads WHERE addr = ?1";
		if (f->by_tid)
			snprintf(sql + strlen(sql), sizeof(sql) - strlen(sql), " AND tid = %d", (int)f->tid);
		ret = id_bits(c->r, sql, f->thread, &c->tmask, err);
		if (ret != DB_OK)
			return ret;
		if (!c->tmask)
			*none = 1;
	}
	if (f->obj && f->kinds && !(f->kinds & ~LOCK_KIND_MASK)) {
		ret = id_bits(c->r, "SELECT id FROM locks WHERE addr = ?1", f->obj, &c->lmask, err);
		if (ret != DB_OK)
			return ret;
		if (!c->lmask)
			*none = 1;
	}
	return DB_OK;
}

int db_cursor_open(struct db_reader *r, const struct db_filter *f, struct db_cursor **out, char **err)
{
	static const struct db_filter all;
	struct db_cursor *c;
	int ret, none;

	*out = NULL;
	if (!f)
		f = &all;
	if (f->kinds & ~(uint32_t)(((1u << (DB_KIND_MAX + 1)) - 1) & ~1u))
		return db_fail(err, DB_E_ARG, "unknown event kind in filter (mask 0x%x)", f->kinds);
	if (f->limit < 0 || f->from_id < 0 || f->to_id < 0)
		return db_fail(err, DB_E_ARG, "negative id or limit in filter");
	if (f->to_icount && f->to_icount < f->from_icount)
		return db_fail(err, DB_E_ARG, "empty icount range in filter");
	c = calloc(1, sizeof(*c));
	if (!c)
		return db_fail(err, DB_E_NOMEM, "out of memory");
	c->r = r;
	c->f = *f;
	c->lo = f->from_id ? f->from_id : 1;
	c->hi = f->to_id ? f->to_id : INT64_MAX;
	ret = filter_masks(c, err, &none);
	c->ranges_done = c->lo > c->hi || none;
	if (ret == DB_OK)
		ret = prepare_events(r, f, &c->events, err);
	if (ret == DB_OK && (f->kinds || f->from_icount || f->to_icount || c->tmask || c->lmask))
		ret = prepare_blocks(c, err);
	if (ret != DB_OK) {
		db_cursor_close(c);
		return ret;
	}
	*out = c;
	return DB_OK;
}

int db_cursor_next(struct db_cursor *c, struct db_event *ev, const char **text)
{
	int64_t lo, hi;
	int rc;

	if (text)
		*text = NULL;
	if (c->f.limit && c->returned >= c->f.limit)
		return 0;
	for (;;) {
		if (c->in_range) {
			rc = sqlite3_step(c->events);
			if (rc == SQLITE_ROW) {
				row_to_event(c->r, c->events, ev, text);
				/* A damaged threads/locks table: SQLite has reset the
				 * schema and would restart this statement (found by
				 * fuzz_trace: it looped forever). */
				if (c->r->thread_ids.broken || c->r->lock_ids.broken)
					return DB_E_CORRUPT;
				c->returned++;
				return 1;
			}
			c->in_range = 0;
			if (rc != SQLITE_DONE)
				return sqlite_to_db(rc);
		}
		rc = next_range(c, &lo, &hi);
		if (rc <= 0)
			return rc;
		sqlite3_reset(c->events);
		sqlite3_bind_int64(c->events, sqlite3_bind_parameter_index(c->events, ":lo"), lo);
		sqlite3_bind_int64(c->events, sqlite3_bind_parameter_index(c->events, ":hi"), hi);
		c->in_range = 1;
	}
}

void db_cursor_close(struct db_cursor *c)
{
	if (!c)
		return;
	sqlite3_finalize(c->events);
	sqlite3_finalize(c->blocks);
	free(c);
}

int db_event_by_id(struct db_reader *r, int64_t id, struct db_event *ev, char **err)
{
	sqlite3_stmt *st;
	int rc, ret;

	ret = prepare(r, EVENT_COLUMNS " WHERE e.id = ?1", &st, err);
	if (ret != DB_OK)
		return ret;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		row_to_event(r, st, ev, NULL);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return db_fail(err, sqlite_to_db(rc), "%s: %s", r->path, sqlite3_errstr(rc));
}

/* ------------------------------------------------------------ sql */

/* True if s holds only blanks, semicolons and SQL comments. */
static int only_trailer(const char *s)
{
	while (*s) {
		if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == ';') {
			s++;
		} else if (s[0] == '-' && s[1] == '-') {
			while (*s && *s != '\n')
				s++;
		} else if (s[0] == '/' && s[1] == '*') {
			const char *end = strstr(s + 2, "*/");
			if (!end)
				return 1;
			s = end + 2;
		} else {
			return 0;
		}
	}
	return 1;
}

/* krewind sql reads the one trace: no ATTACH or DETACH. */
static int sql_authorizer(void *ctx, int action, const char *a, const char *b, const char *c, const char *d)
{
	(void)ctx, (void)a, (void)b, (void)c, (void)d;
	return action == SQLITE_ATTACH || action == SQLITE_DETACH ? SQLITE_DENY : SQLITE_OK;
}

int db_sql(struct db_reader *r, const char *sql, db_row_fn row, void *ctx, char **err)
{
	sqlite3_stmt *st = NULL;
	const char *tail = NULL;
	const char **names = NULL, **values = NULL;
	int rc, ncols, ret = DB_OK;

	if (!sql)
		return db_fail(err, DB_E_ARG, "no SQL given");
	sqlite3_set_authorizer(r->db, sql_authorizer, NULL);
	rc = sqlite3_prepare_v2(r->db, sql, -1, &st, &tail);
	sqlite3_set_authorizer(r->db, NULL, NULL);
	if (rc != SQLITE_OK)
		return db_fail(err, DB_E_ARG, "bad SQL: %s", sqlite3_errmsg(r->db));
	if (!st)
		return db_fail(err, DB_E_ARG, "no SQL statement given");
	if (tail && !only_trailer(tail)) {
		ret = db_fail(err, DB_E_ARG, "one SQL statement at a time, please");
		goto out;
	}
	if (!sqlite3_stmt_readonly(st)) {
		ret = db_fail(err, DB_E_ARG, "read-only: the trace cannot be changed with SQL");
		goto out;
	}
	ncols = sqlite3_column_count(st);
	names = calloc((size_t)ncols + 1, sizeof(*names));
	values = calloc((size_t)ncols + 1, sizeof(*values));
	if (!names || !values) {
		ret = db_fail(err, DB_E_NOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < ncols; i++)
		names[i] = sqlite3_column_name(st, i);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (int i = 0; i < ncols; i++)
			values[i] = (const char *)sqlite3_column_text(st, i);
		if (row && row(ctx, ncols, names, values) != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		ret = db_fail(err,
			      (rc & 0xff) == SQLITE_ERROR || (rc & 0xff) == SQLITE_READONLY ? DB_E_ARG
											 : sqlite_to_db(rc),
			      "SQL failed: %s",
			      sqlite3_errmsg(r->db));
out:
	free(names);
	free(values);
	sqlite3_finalize(st);
	return ret;
}
