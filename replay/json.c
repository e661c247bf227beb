/*
 * json.c - the JSON reader and writer behind QMP and manifest.json.
 *
 * QMP speaks one JSON object per line; manifests are small. A recursive
 * descent parser into a tree is all either needs. Integers are kept exact
 * (icounts are 64-bit); strings are unescaped to UTF-8.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay/replay.h"

#define MAX_DEPTH 64

struct parser {
	const char *p, *end;
	char **err;
	int depth;
};

static int fail(struct parser *ps, int code, const char *what)
{
	if (ps->err && !*ps->err) {
		if (code == REPLAY_E_TRUNCATED)
			*ps->err = strdup("truncated JSON");
		else if (asprintf(ps->err, "invalid JSON: %s", what) < 0)
			*ps->err = NULL;
	}
	return code;
}

static void skip_ws(struct parser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static struct qmp_json *new_value(enum qmp_json_type t)
{
	struct qmp_json *v = calloc(1, sizeof(*v));
	if (v)
		v->type = t;
	return v;
}

void qmp_json_free(struct qmp_json *v)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; i < v->n; i++) {
		if (v->keys)
			free(v->keys[i]);
		qmp_json_free(v->items[i]);
	}
	free(v->keys);
	free(v->items);
	free(v->str);
	free(v);
}

static int hex4(struct parser *ps, unsigned *out)
{
	unsigned v = 0;
	int i;

	if (ps->end - ps->p < 4)
		return fail(ps, REPLAY_E_TRUNCATED, "");
	for (i = 0; i < 4; i++) {
		char c = ps->p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return fail(ps, REPLAY_E_FORMAT, "bad \\u escape");
	}
	ps->p += 4;
	*out = v;
	return 0;
}

static void put_utf8(struct qmp_buf *b, unsigned cp)
{
	char s[4];
	size_t n;

	if (cp < 0x80) {
		s[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		s[0] = (char)(0xc0 | (cp >> 6));
		s[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		s[0] = (char)(0xe0 | (cp >> 12));
		s[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		s[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		s[0] = (char)(0xf0 | (cp >> 18));
		s[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		s[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		s[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	qmp_buf_add(b, s, n);
}

/* At the opening quote. Fills *s / *len with the unescaped string. */
static int parse_string(struct parser *ps, char **s, size_t *len)
{
	struct qmp_buf b = { 0 };
	int rc = 0;

	ps->p++;
	for (;;) {
		char c;
		if (ps->p >= ps->end) {
			rc = fail(ps, REPLAY_E_TRUNCATED, "");
			goto out;
		}
		c = *ps->p++;
		if (c == '"')
			break;
		if ((unsigned char)c < 0x20) {
			rc = fail(ps, REPLAY_E_FORMAT, "control character in string");
			goto out;
		}
		if (c != '\\') {
			qmp_buf_add(&b, &c, 1);
			continue;
		}
		if (ps->p >= ps->end) {
			rc = fail(ps, REPLAY_E_TRUNCATED, "");
			goto out;
		}
		c = *ps->p++;
		switch (c) {
		case '"': case '\\': case '/':
			qmp_buf_add(&b, &c, 1);
			break;
		case 'b': qmp_buf_add(&b, "\b", 1); break;
		case 'f': qmp_buf_add(&b, "\f", 1); break;
		case 'n': qmp_buf_add(&b, "\n", 1); break;
		case 'r': qmp_buf_add(&b, "\r", 1); break;
		case 't': qmp_buf_add(&b, "\t", 1); break;
		case 'u': {
			unsigned cp, lo;
			if ((rc = hex4(ps, &cp)) < 0)
				goto out;
			if (cp >= 0xd800 && cp < 0xdc00) {
				if (ps->end - ps->p < 2) {
					rc = fail(ps, REPLAY_E_TRUNCATED, "");
					goto out;
				}
				if (ps->p[0] != '\\' || ps->p[1] != 'u') {
					rc = fail(ps, REPLAY_E_FORMAT, "lone surrogate");
					goto out;
				}
				ps->p += 2;
				if ((rc = hex4(ps, &lo)) < 0)
					goto out;
				if (lo < 0xdc00 || lo >= 0xe000) {
					rc = fail(ps, REPLAY_E_FORMAT, "lone surrogate");
					goto out;
				}
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp < 0xe000) {
				rc = fail(ps, REPLAY_E_FORMAT, "lone surrogate");
				goto out;
			}
			put_utf8(&b, cp);
			break;
		}
		default:
			rc = fail(ps, REPLAY_E_FORMAT, "bad escape");
			goto out;
		}
	}
	qmp_buf_add(&b, "", 1);
	if (b.oom) {
		rc = REPLAY_E_NOMEM;
		goto out;
	}
	*s = b.buf;
	*len = b.len - 1;
	return 0;
out:
	free(b.buf);
	return rc;
}

static int parse_number(struct parser *ps, struct qmp_json *v)
{
	const char *start = ps->p;
	char tmp[64];
	int frac = 0;
	size_t n;

	if (ps->p < ps->end && *ps->p == '-') {
		v->negative = 1;
		ps->p++;
	}
	if (ps->p >= ps->end)
		return fail(ps, REPLAY_E_TRUNCATED, "");
	if (*ps->p < '0' || *ps->p > '9')
		return fail(ps, REPLAY_E_FORMAT, "bad number");
	if (*ps->p == '0' && ps->p + 1 < ps->end && ps->p[1] >= '0' && ps->p[1] <= '9')
		return fail(ps, REPLAY_E_FORMAT, "leading zero");
	v->is_int = 1;
	while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
		unsigned dgt = (unsigned)(*ps->p - '0');
		if (v->u > (UINT64_MAX - dgt) / 10)
			v->is_int = 0;
		v->u = v->u * 10 + dgt;
		ps->p++;
	}
	if (ps->p < ps->end && *ps->p == '.') {
		frac = 1;
		ps->p++;
		if (ps->p >= ps->end)
			return fail(ps, REPLAY_E_TRUNCATED, "");
		if (*ps->p < '0' || *ps->p > '9')
			return fail(ps, REPLAY_E_FORMAT, "bad number");
		while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
			ps->p++;
	}
	if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
		frac = 1;
		ps->p++;
		if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
			ps->p++;
		if (ps->p >= ps->end)
			return fail(ps, REPLAY_E_TRUNCATED, "");
		if (*ps->p < '0' || *ps->p > '9')
			return fail(ps, REPLAY_E_FORMAT, "bad number");
		while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
			ps->p++;
	}
	if (frac)
		v->is_int = 0;
	n = (size_t)(ps->p - start);
	if (n >= sizeof(tmp))
		n = sizeof(tmp) - 1;
	memcpy(tmp, start, n);
	tmp[n] = 0;
	v->d = strtod(tmp, NULL);
	return 0;
}

static int parse_value(struct parser *ps, struct qmp_json **out);

static int append_member(struct qmp_json *v, char *key, struct qmp_json *item)
{
	struct qmp_json **items = realloc(v->items, (v->n + 1) * sizeof(*items));
	if (!items)
		return REPLAY_E_NOMEM;
	v->items = items;
	if (v->type == QMP_JSON_OBJECT) {
		char **keys = realloc(v->keys, (v->n + 1) * sizeof(*keys));
		if (!keys)
			return REPLAY_E_NOMEM;
		v->keys = keys;
		v->keys[v->n] = key;
	}
	v->items[v->n++] = item;
	return 0;
}

/* At '[' or '{'. */
static int parse_container(struct parser *ps, struct qmp_json *v)
{
	char close = v->type == QMP_JSON_OBJECT ? '}' : ']';
	int rc;

	if (++ps->depth > MAX_DEPTH)
		return fail(ps, REPLAY_E_FORMAT, "nested too deeply");
	ps->p++;
	skip_ws(ps);
	if (ps->p >= ps->end)
		return fail(ps, REPLAY_E_TRUNCATED, "");
	if (*ps->p == close) {
		ps->p++;
		ps->depth--;
		return 0;
	}
	for (;;) {
		char *key = NULL;
		size_t klen;
		struct qmp_json *item = NULL;

		skip_ws(ps);
		if (v->type == QMP_JSON_OBJECT) {
			if (ps->p >= ps->end)
				return fail(ps, REPLAY_E_TRUNCATED, "");
			if (*ps->p != '"')
				return fail(ps, REPLAY_E_FORMAT, "expected a key");
			if ((rc = parse_string(ps, &key, &klen)) < 0)
				return rc;
			skip_ws(ps);
			if (ps->p >= ps->end) {
				free(key);
				return fail(ps, REPLAY_E_TRUNCATED, "");
			}
			if (*ps->p != ':') {
				free(key);
				return fail(ps, REPLAY_E_FORMAT, "expected ':'");
			}
			ps->p++;
		}
		if ((rc = parse_value(ps, &item)) < 0) {
			free(key);
			return rc;
		}
		if ((rc = append_member(v, key, item)) < 0) {
			free(key);
			qmp_json_free(item);
			return rc;
		}
		skip_ws(ps);
		if (ps->p >= ps->end)
			return fail(ps, REPLAY_E_TRUNCATED, "");
		if (*ps->p == ',') {
			ps->p++;
			continue;
		}
		if (*ps->p == close) {
			ps->p++;
			ps->depth--;
			return 0;
		}
		return fail(ps, REPLAY_E_FORMAT, "expected ',' or a closing bracket");
	}
}

static int literal(struct parser *ps, const char *word)
{
	size_t n = strlen(word), have = (size_t)(ps->end - ps->p);

	if (have < n) {
		if (memcmp(ps->p, word, have) == 0)
			return fail(ps, REPLAY_E_TRUNCATED, "");
		return fail(ps, REPLAY_E_FORMAT, "unknown literal");
	}
	if (memcmp(ps->p, word, n) != 0)
		return fail(ps, REPLAY_E_FORMAT, "unknown literal");
	ps->p += n;
	return 0;
}

static int parse_value(struct parser *ps, struct qmp_json **out)
{
	struct qmp_json *v;
	int rc = 0;

	skip_ws(ps);
	if (ps->p >= ps->end)
		return fail(ps, REPLAY_E_TRUNCATED, "");
	switch (*ps->p) {
	case '{': v = new_value(QMP_JSON_OBJECT); break;
	case '[': v = new_value(QMP_JSON_ARRAY); break;
	case '"': v = new_value(QMP_JSON_STRING); break;
	case 't': case 'f': v = new_value(QMP_JSON_BOOL); break;
	case 'n': v = new_value(QMP_JSON_NULL); break;
	default:
		if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) {
			v = new_value(QMP_JSON_NUMBER);
			break;
		}
		return fail(ps, REPLAY_E_FORMAT, "unexpected character");
	}
	if (!v)
		return REPLAY_E_NOMEM;
	switch (v->type) {
	case QMP_JSON_OBJECT:
	case QMP_JSON_ARRAY:
		rc = parse_container(ps, v);
		break;
	case QMP_JSON_STRING:
		rc = parse_string(ps, &v->str, &v->len);
		break;
	case QMP_JSON_BOOL:
		v->boolean = *ps->p == 't';
		rc = literal(ps, v->boolean ? "true" : "false");
		break;
	case QMP_JSON_NULL:
		rc = literal(ps, "null");
		break;
	case QMP_JSON_NUMBER:
		rc = parse_number(ps, v);
		break;
	}
	if (rc < 0) {
		qmp_json_free(v);
		return rc;
	}
	*out = v;
	return 0;
}

int qmp_json_parse(const char *text, size_t len, struct qmp_json **out, size_t *used, char **err)
{
	struct parser ps = { text, text + len, err, 0 };
	struct qmp_json *v = NULL;
	int rc;

	if ((rc = parse_value(&ps, &v)) < 0)
		return rc;
	skip_ws(&ps);
	if (used)
		*used = (size_t)(ps.p - text);
	*out = v;
	return 0;
}

const struct qmp_json *qmp_json_get(const struct qmp_json *v, const char *key)
{
	size_t i;

	if (!v || v->type != QMP_JSON_OBJECT)
		return NULL;
	for (i = 0; i < v->n; i++)
		if (strcmp(v->keys[i], key) == 0)
			return v->items[i];
	return NULL;
}

const char *qmp_json_get_str(const struct qmp_json *v, const char *key)
{
	const struct qmp_json *m = qmp_json_get(v, key);
	return m && m->type == QMP_JSON_STRING ? m->str : NULL;
}

int qmp_json_get_u64(const struct qmp_json *v, const char *key, uint64_t *out)
{
	const struct qmp_json *m = qmp_json_get(v, key);
	if (!m || m->type != QMP_JSON_NUMBER || !m->is_int || m->negative)
		return -1;
	*out = m->u;
	return 0;
}

/* ---------------------------------------------------------------- writer */

void qmp_buf_add(struct qmp_buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char *nb;
		while (cap < b->len + n + 1)
			cap *= 2;
		nb = realloc(b->buf, cap);
		if (!nb) {
			b->oom = 1;
			return;
		}
		b->buf = nb;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, s, n);
	b->len += n;
	b->buf[b->len] = 0;
}

void qmp_buf_printf(struct qmp_buf *b, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = 1;
		return;
	}
	qmp_buf_add(b, s, (size_t)n);
	free(s);
}

void qmp_buf_str(struct qmp_buf *b, const char *s)
{
	if (!s) {
		qmp_buf_add(b, "null", 4);
		return;
	}
	qmp_buf_add(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"')
			qmp_buf_add(b, "\\\"", 2);
		else if (c == '\\')
			qmp_buf_add(b, "\\\\", 2);
		else if (c == '\n')
			qmp_buf_add(b, "\\n", 2);
		else if (c == '\r')
			qmp_buf_add(b, "\\r", 2);
		else if (c == '\t')
			qmp_buf_add(b, "\\t", 2);
		else if (c < 0x20)
			qmp_buf_printf(b, "\\u%04x", c);
		else
			qmp_buf_add(b, (const char *)&c, 1);
	}
	qmp_buf_add(b, "\"", 1);
}
