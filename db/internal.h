/*
 * internal.h - what the db/ sources share and nobody else uses: the embedded schema,
 * error messages, an address -> index hash map, the in-memory symbol table,
 * and the MPSC event queue between the vCPU threads and the writer thread.
 */
#ifndef KREWIND_DB_INTERNAL_H
#define KREWIND_DB_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>
#include <stddef.h>

#include "db/db.h"

/* db/schema.sql, NUL-terminated (db/schema.c). */
extern const char db_schema_sql[] __attribute__((visibility("hidden")));

#define DB_APPLICATION_ID 0x6b727764 /* 'krwd' */
#define DB_BLOCK_EVENTS 256          /* ids per event_blocks row */

/* Formats a one-line message into *err (if err) and returns code. */
int db_fail(char **err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Checks an open connection holds a krewind trace this code reads (the
 * application id, the schema version, a readable events table); DB_E_SCHEMA or
 * DB_E_CORRUPT with a message naming path otherwise (db/reader.c). */
struct sqlite3;
int db_check_trace(struct sqlite3 *db, const char *path, char **err);

/* True for the kinds whose obj is a lock/object address (kinds.obj_is_lock). */
int db_kind_obj_is_lock(int kind);

/* ------------------------------------------------------------ hash map */

/* Open addressing map from a non-zero 64-bit key to a uint32_t value. */
struct db_map {
	uint64_t *keys; /* 0 = empty slot */
	uint32_t *vals;
	size_t cap, n; /* cap is a power of two */
};
/* Returns 1 and sets *val if key is present, else 0. */
int db_map_get(const struct db_map *m, uint64_t key, uint32_t *val);
/* Inserts or replaces; returns 0 or DB_E_NOMEM. */
int db_map_put(struct db_map *m, uint64_t key, uint32_t val);
void db_map_free(struct db_map *m);

/* ------------------------------------------------------------ symbols */

struct db_sym {
	uint64_t addr, size;
	char *name;
};
struct db_symtab {
	struct db_sym *v;
	size_t n, cap;
	int sorted;
};
/* Appends a symbol (name copied). Returns 0 or DB_E_NOMEM. */
int db_symtab_add(struct db_symtab *s, uint64_t addr, uint64_t size, const char *name);
/* The symbol containing addr (or the nearest one below it when sizes are 0),
 * or NULL. Sorts the table on first use. */
const struct db_sym *db_symtab_find(struct db_symtab *s, uint64_t addr);
/* "name+0x1c", "name", or "0x..." into buf; returns buf. */
char *db_symtab_format(struct db_symtab *s, uint64_t addr, char *buf, size_t size);
/* Lock class (see db_lock_class) into buf; init_site 0 = not known. */
char *db_symtab_lock_class(struct db_symtab *s, uint64_t addr, uint64_t init_site, char *buf,
			   size_t size);
void db_symtab_free(struct db_symtab *s);

/* ------------------------------------------------------------ queue */

/*
 * Bounded multi-producer single-consumer ring (D. Vyukov's sequence-number
 * scheme). A producer claims a slot with one CAS on head and publishes it by
 * storing the slot's sequence; the single consumer reads slots in order. A
 * full ring makes push fail at once: producers never wait for the consumer.
 */
struct db_slot {
	_Atomic uint64_t seq;
	struct db_event ev; /* ev.id unused */
	char *text;         /* malloc'd, owned by the slot until popped */
};
struct db_queue {
	_Alignas(64) _Atomic uint64_t head; /* next position producers claim */
	_Alignas(64) uint64_t tail;         /* next position the consumer reads */
	_Alignas(64) struct db_slot *slots;
	uint64_t mask;
};
/* cap must be a power of two. Returns 0 or DB_E_NOMEM. */
int db_queue_init(struct db_queue *q, size_t cap);
/* Frees the ring and any text still queued. */
void db_queue_free(struct db_queue *q);
/* Returns 0, or DB_E_FULL if the ring is full. On success the queue owns text. */
int db_queue_push(struct db_queue *q, const struct db_event *ev, char *text);
/* Consumer only. Returns 1 and fills *ev and *text (caller frees), or 0 if empty. */
int db_queue_pop(struct db_queue *q, struct db_event *ev, char **text);

#endif
