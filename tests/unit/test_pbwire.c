/*
 * test_pbwire.c - the protobuf wire-format writer (ui-cli/pbwire.c): varint
 * edges, length-delimited fields, nested messages, field numbers that need
 * more than one byte of tag. Expected bytes from the protobuf encoding spec.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ui-cli/pbwire.h"

static void expect_bytes(const struct pb *b, const uint8_t *want, size_t n)
{
	assert_int_equal(b->oom, 0);
	assert_int_equal(b->n, n);
	assert_memory_equal(b->p, want, n);
}

static void test_varints(void **state)
{
	struct pb b = {0};
	(void)state;

	pb_uint(&b, 1, 0);
	expect_bytes(&b, (const uint8_t[]){0x08, 0x00}, 2);
	pb_clear(&b);
	pb_uint(&b, 1, 150); /* the spec's example: 08 96 01 */
	expect_bytes(&b, (const uint8_t[]){0x08, 0x96, 0x01}, 3);
	pb_clear(&b);
	pb_uint(&b, 2, 127);
	pb_uint(&b, 2, 128);
	expect_bytes(&b, (const uint8_t[]){0x10, 0x7f, 0x10, 0x80, 0x01}, 5);
	pb_clear(&b);
	pb_uint(&b, 1, UINT64_MAX); /* also how a negative int64 is written: ten bytes */
	expect_bytes(&b, (const uint8_t[]){0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 11);
	pb_clear(&b);
	pb_uint(&b, 1, 1ull << 40);
	expect_bytes(&b, (const uint8_t[]){0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20}, 7);
	pb_free(&b);
}

static void test_tags(void **state)
{
	struct pb b = {0};
	(void)state;

	pb_uint(&b, 60, 1); /* (60 << 3) | 0 = 480: e0 03 */
	expect_bytes(&b, (const uint8_t[]){0xe0, 0x03, 0x01}, 3);
	pb_clear(&b);
	pb_str(&b, 23, "ab"); /* (23 << 3) | 2 = 186: ba 01 */
	expect_bytes(&b, (const uint8_t[]){0xba, 0x01, 0x02, 'a', 'b'}, 5);
	pb_free(&b);
}

static void test_nested(void **state)
{
	struct pb inner = {0}, outer = {0};
	char big[300];
	(void)state;

	pb_str(&inner, 2, "testing"); /* the spec's example: 12 07 74 65 73 74 69 6e 67 */
	pb_msg(&outer, 3, &inner);
	expect_bytes(&outer, (const uint8_t[]){0x1a, 0x09, 0x12, 0x07, 't', 'e', 's', 't', 'i', 'n', 'g'}, 11);
	pb_clear(&outer);
	pb_bytes(&outer, 8, "", 0); /* an empty embedded message */
	expect_bytes(&outer, (const uint8_t[]){0x42, 0x00}, 2);
	pb_clear(&outer);
	memset(big, 'x', sizeof(big)); /* a length that takes two bytes, and growth past 64 */
	pb_bytes(&outer, 1, big, sizeof(big));
	assert_int_equal(outer.n, 3 + sizeof(big));
	assert_memory_equal(outer.p, ((const uint8_t[]){0x0a, 0xac, 0x02}), 3);
	assert_memory_equal(outer.p + 3, big, sizeof(big));
	pb_free(&inner);
	pb_free(&outer);
	assert_null(outer.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_varints),
		cmocka_unit_test(test_tags),
		cmocka_unit_test(test_nested),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
