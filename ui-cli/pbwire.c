/*
 * pbwire.c - protobuf wire format: base-128 varints and length-delimited
 * fields (https://protobuf.dev/programming-guides/encoding/). See pbwire.h.
 */
#include <stdlib.h>
#include <string.h>

#include "ui-cli/pbwire.h"

static int reserve(struct pb *b, size_t more)
{
	size_t cap;
	uint8_t *p;

	if (b->oom)
		return -1;
	if (b->n + more <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < b->n + more)
		cap *= 2;
	p = realloc(b->p, cap);
	if (p == NULL) {
		b->oom = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

static void varint(struct pb *b, uint64_t v)
{
	if (reserve(b, 10))
		return;
	while (v >= 0x80) {
		b->p[b->n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	b->p[b->n++] = (uint8_t)v;
}

void pb_uint(struct pb *b, int field, uint64_t v)
{
	varint(b, (uint64_t)field << 3 | 0);
	varint(b, v);
}

void pb_bytes(struct pb *b, int field, const void *data, size_t len)
{
	varint(b, (uint64_t)field << 3 | 2);
	varint(b, len);
	if (len == 0 || reserve(b, len))
		return;
	memcpy(b->p + b->n, data, len);
	b->n += len;
}

void pb_str(struct pb *b, int field, const char *s)
{
	pb_bytes(b, field, s, strlen(s));
}

void pb_msg(struct pb *b, int field, const struct pb *inner)
{
	if (inner->oom)
		b->oom = 1;
	pb_bytes(b, field, inner->p, inner->n);
}

void pb_clear(struct pb *b)
{
	b->n = 0;
}

void pb_free(struct pb *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}
