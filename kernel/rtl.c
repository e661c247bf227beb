/*
 * rtl.c: the few C library routines a freestanding kernel still needs (gcc
 * may emit calls to memset/memcpy for struct copies and initializers).
 */
#include "ke.h"

void *memset(void *d, int c, size_t n)
{
	UCHAR *p = d;
	while (n--)
		*p++ = (UCHAR)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	UCHAR *p = d;
	const UCHAR *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

int strcmp(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return (UCHAR)*a - (UCHAR)*b;
}

/* Copies src into dst[size], truncating, always NUL-terminated. */
void RtlCopyName(char *dst, const char *src, size_t size)
{
	size_t i;
	for (i = 0; i + 1 < size && src[i]; i++)
		dst[i] = src[i];
	for (; i < size; i++)
		dst[i] = 0;
}
