/*
 * util.c - error messages, the address hash map and the symbol table shared by
 * the writer and the reader.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/internal.h"

int db_fail(char **err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		va_start(ap, fmt);
		if (vasprintf(err, fmt, ap) < 0)
			*err = NULL;
		va_end(ap);
		/* One line: SQLite's text can quote a (damaged) schema's SQL. */
		for (char *p = *err; p && *p; p++)
			if (*p == '\n' || *p == '\r' || *p == '\t')
				*p = ' ';
	}
	return code;
}

/* ------------------------------------------------------------ hash map */

static size_t map_slot(uint64_t key, size_t mask)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdULL;
	key ^= key >> 33;
	return (size_t)key & mask;
}

int db_map_get(const struct db_map *m, uint64_t key, uint32_t *val)
{
	if (!m->cap)
		return 0;
	for (size_t i = map_slot(key, m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == key) {
			*val = m->vals[i];
			return 1;
		}
		if (m->keys[i] == 0)
			return 0;
	}
}

static int map_grow(struct db_map *m)
{
	size_t cap = m->cap ? m->cap * 2 : 64;
	uint64_t *keys = calloc(cap, sizeof(*keys));
	uint32_t *vals = calloc(cap, sizeof(*vals));

	if (!keys || !vals) {
		free(keys);
		free(vals);
		return DB_E_NOMEM;
	}
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->keys[i])
			continue;
		size_t j = map_slot(m->keys[i], cap - 1);
		while (keys[j])
			j = (j + 1) & (cap - 1);
		keys[j] = m->keys[i];
		vals[j] = m->vals[i];
	}
	free(m->keys);
	free(m->vals);
	m->keys = keys;
	m->vals = vals;
	m->cap = cap;
	return DB_OK;
}

int db_map_put(struct db_map *m, uint64_t key, uint32_t val)
{
	size_t i;

	if ((m->n + 1) * 4 > m->cap * 3 && map_grow(m) != DB_OK)
		return DB_E_NOMEM;
	for (i = map_slot(key, m->cap - 1); m->keys[i] && m->keys[i] != key; i = (i + 1) & (m->cap - 1))
		;
	if (!m->keys[i])
		m->n++;
	m->keys[i] = key;
	m->vals[i] = val;
	return DB_OK;
}

void db_map_free(struct db_map *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------ symbols */

int db_symtab_add(struct db_symtab *s, uint64_t addr, uint64_t size, const char *name)
{
	char *copy;

	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		struct db_sym *v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return DB_E_NOMEM;
		s->v = v;
		s->cap = cap;
	}
	copy = strdup(name);
	if (!copy)
		return DB_E_NOMEM;
	s->v[s->n++] = (struct db_sym){ addr, size, copy };
	s->sorted = 0;
	return DB_OK;
}

/* By address; at one address the sized symbol first, then by name, so that
 * aliases resolve the same way whatever order they were recorded in. */
static int sym_cmp(const void *pa, const void *pb)
{
	const struct db_sym *a = pa, *b = pb;

	if (a->addr != b->addr)
		return a->addr < b->addr ? -1 : 1;
	if ((a->size != 0) != (b->size != 0))
		return a->size ? -1 : 1;
	return strcmp(a->name, b->name);
}

/*
 * A sized symbol covers [addr, addr + size). A symbol of size 0 (an assembly
 * label) covers up to the next symbol's address, except the last one, which
 * covers only its own address.
 */
const struct db_sym *db_symtab_find(struct db_symtab *s, uint64_t addr)
{
	size_t lo = 0, hi = s->n;

	if (!s->sorted && s->n > 0) { /* qsort(NULL, 0) is undefined */
		qsort(s->v, s->n, sizeof(*s->v), sym_cmp);
		s->sorted = 1;
	}
	/* First symbol with v.addr > addr. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->v[mid].addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	const struct db_sym *best = &s->v[lo - 1];
	/* Step back to the first alias at that address (the sized one, if any). */
	while (best > s->v && best[-1].addr == best->addr)
		best--;
	if (best->size)
		return addr - best->addr < best->size ? best : NULL;
	if (lo == s->n && addr != best->addr)
		return NULL;
	return best;
}

char *db_symtab_format(struct db_symtab *s, uint64_t addr, char *buf, size_t size)
{
	const struct db_sym *sym = db_symtab_find(s, addr);

	if (!size)
		return buf;
	if (!sym)
		snprintf(buf, size, "0x%" PRIx64, addr);
	else if (addr == sym->addr)
		snprintf(buf, size, "%s", sym->name);
	else
		snprintf(buf, size, "%s+0x%" PRIx64, sym->name, addr - sym->addr);
	return buf;
}

/*
 * A lock that is a symbol of its own is a static lock: its class is the
 * symbol. A lock that was initialised at run time somewhere else (in a heap
 * block, inside a bigger object) gets the class of its initialisation site,
 * as lockdep does; a lock inside a symbol without a known init site is named
 * after the symbol and offset; anything else is its address.
 */
char *db_symtab_lock_class(struct db_symtab *s, uint64_t addr, uint64_t init_site, char *buf,
			   size_t size)
{
	const struct db_sym *sym = db_symtab_find(s, addr);
	char site[256];

	if (!size)
		return buf;
	if (sym && (addr == sym->addr || !init_site))
		return db_symtab_format(s, addr, buf, size);
	if (init_site) {
		snprintf(buf, size, "alloc@%s", db_symtab_format(s, init_site, site, sizeof(site)));
		return buf;
	}
	snprintf(buf, size, "0x%" PRIx64, addr);
	return buf;
}

void db_symtab_free(struct db_symtab *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].name);
	free(s->v);
	memset(s, 0, sizeof(*s));
}
