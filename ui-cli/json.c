/*
 * json.c - a streaming JSON writer for --json output (RFC 8259), two-space
 * indented, short arrays on one line when asked. Strings are escaped and always valid UTF-8: bytes that do not
 * form valid UTF-8 (overlong forms, surrogates, truncated sequences) are
 * written as U+FFFD.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ui-cli/cli.h"

void cli_json_init(struct cli_json *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
}

static void newline(struct cli_json *j)
{
	static const char spaces[] = "\n                                                                ";
	size_t n = 1 + 2 * (size_t)j->depth;

	if (n > sizeof(spaces) - 1)
		n = sizeof(spaces) - 1;
	fwrite_unlocked(spaces, 1, n, j->f);
}

/* Writes v in decimal (a negative sign when neg); faster than fprintf. */
static void write_u64(FILE *f, uint64_t v, int neg)
{
	char buf[24], *p = buf + sizeof(buf);

	do {
		*--p = '0' + v % 10;
		v /= 10;
	} while (v);
	if (neg)
		*--p = '-';
	fwrite_unlocked(p, 1, buf + sizeof(buf) - p, f);
}

/* Writes what comes before a value or a key: a comma and a new line inside
 * containers, nothing right after a key. */
static void before_value(struct cli_json *j)
{
	if (j->after_key) {
		j->after_key = 0;
		return;
	}
	if (j->depth == 0) {
		if (j->count[0]++ > 0)
			j->error = 1; /* a second top-level value */
		return;
	}
	if (j->closer[j->depth - 1] == '}')
		j->error = 1; /* a value without a key inside an object */
	if (j->count[j->depth]++ > 0)
		fputs(j->flat[j->depth - 1] ? ", " : ",", j->f);
	if (!j->flat[j->depth - 1])
		newline(j);
}

static void open_level(struct cli_json *j, char open, char close, int flat)
{
	before_value(j);
	if (j->depth >= CLI_JSON_MAX_DEPTH - 1) {
		j->error = 1;
		return;
	}
	fputc(open, j->f);
	j->closer[j->depth] = close;
	j->flat[j->depth] = flat || (j->depth > 0 && j->flat[j->depth - 1]);
	j->depth++;
	j->count[j->depth] = 0;
}

void cli_json_object(struct cli_json *j)
{
	open_level(j, '{', '}', 0);
}

void cli_json_array(struct cli_json *j)
{
	open_level(j, '[', ']', 0);
}

void cli_json_array_flat(struct cli_json *j)
{
	open_level(j, '[', ']', 1);
}

void cli_json_close(struct cli_json *j)
{
	int had;

	if (j->depth == 0 || j->after_key) {
		j->error = 1;
		return;
	}
	had = j->count[j->depth];
	j->depth--;
	if (had && !j->flat[j->depth])
		newline(j);
	fputc(j->closer[j->depth], j->f);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static void write_string(FILE *f, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, len;

	fputc_unlocked('"', f);
	while (i < n) {
		unsigned char c = s[i];
		size_t run = i;

		/* Most text needs no escaping: write it in one piece. */
		while (run < n && s[run] >= 0x20 && s[run] < 0x7f && s[run] != '"' && s[run] != '\\')
			run++;
		if (run > i) {
			fwrite_unlocked(s + i, 1, run - i, f);
			i = run;
			continue;
		}
		switch (c) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\b': fputs("\\b", f); break;
		case '\f': fputs("\\f", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		default:
			if (c < 0x20 || c == 0x7f) {
				fprintf(f, "\\u%04x", c);
			} else if (c < 0x80) {
				fputc(c, f);
			} else {
				len = utf8_len(s + i, n - i);
				if (len == 0) {
					fputs("\\ufffd", f);
					break;
				}
				fwrite(s + i, 1, len, f);
				i += len;
				continue;
			}
		}
		i++;
	}
	fputc_unlocked('"', f);
}

void cli_json_key(struct cli_json *j, const char *key)
{
	if (j->depth == 0 || j->closer[j->depth - 1] != '}' || j->after_key) {
		j->error = 1;
		return;
	}
	if (j->count[j->depth]++ > 0)
		fputs(j->flat[j->depth - 1] ? ", " : ",", j->f);
	if (!j->flat[j->depth - 1])
		newline(j);
	write_string(j->f, key, strlen(key));
	fputs(": ", j->f);
	j->after_key = 1;
}

void cli_json_strn(struct cli_json *j, const char *s, size_t n)
{
	before_value(j);
	write_string(j->f, s, n);
}

void cli_json_str(struct cli_json *j, const char *s)
{
	if (s == NULL) {
		cli_json_null(j);
		return;
	}
	cli_json_strn(j, s, strlen(s));
}

void cli_json_int(struct cli_json *j, int64_t v)
{
	before_value(j);
	write_u64(j->f, v < 0 ? -(uint64_t)v : (uint64_t)v, v < 0);
}

void cli_json_uint(struct cli_json *j, uint64_t v)
{
	before_value(j);
	write_u64(j->f, v, 0);
}

void cli_json_double(struct cli_json *j, double v)
{
	before_value(j);
	char buf[32];

	if (!isfinite(v)) {
		fputs("null", j->f); /* JSON has no NaN or infinity */
		return;
	}
	/* The shortest of %.15g and %.17g that reads back as v. */
	snprintf(buf, sizeof(buf), "%.15g", v);
	if (strtod(buf, NULL) != v)
		snprintf(buf, sizeof(buf), "%.17g", v);
	fputs(buf, j->f);
}

void cli_json_bool(struct cli_json *j, int v)
{
	before_value(j);
	fputs(v ? "true" : "false", j->f);
}

void cli_json_null(struct cli_json *j)
{
	before_value(j);
	fputs("null", j->f);
}

void cli_json_hex(struct cli_json *j, uint64_t v)
{
	before_value(j);
	fprintf(j->f, "\"0x%" PRIx64 "\"", v);
}

int cli_json_end(struct cli_json *j)
{
	if (j->depth != 0 || j->after_key || j->count[0] != 1)
		j->error = 1;
	fputc('\n', j->f);
	if (fflush(j->f) != 0 || ferror(j->f))
		return -1;
	return j->error ? -1 : 0;
}

void cli_json_kstr(struct cli_json *j, const char *key, const char *s)
{
	cli_json_key(j, key);
	cli_json_str(j, s);
}

void cli_json_kint(struct cli_json *j, const char *key, int64_t v)
{
	cli_json_key(j, key);
	cli_json_int(j, v);
}

void cli_json_kuint(struct cli_json *j, const char *key, uint64_t v)
{
	cli_json_key(j, key);
	cli_json_uint(j, v);
}

void cli_json_khex(struct cli_json *j, const char *key, uint64_t v)
{
	cli_json_key(j, key);
	cli_json_hex(j, v);
}
