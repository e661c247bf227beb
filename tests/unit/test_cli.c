/*
 * test_cli.c - the krewind command's helpers: JSON writer, option parser,
 * number/position parsing, event descriptions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ui-cli/cli.h"

/* ------------------------------------------------------------ JSON */

struct buf {
	char *data;
	size_t len;
	FILE *f;
};

static void buf_open(struct buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->f = open_memstream(&b->data, &b->len);
	assert_non_null(b->f);
}

static void buf_close(struct buf *b)
{
	fclose(b->f);
}

/* Writes one JSON string value and returns the document. */
static char *json_string_doc(const char *s, size_t n)
{
	struct cli_json j;
	struct buf b;

	buf_open(&b);
	cli_json_init(&j, b.f);
	cli_json_strn(&j, s, n);
	assert_int_equal(cli_json_end(&j), 0);
	buf_close(&b);
	return b.data;
}

static void test_json_escapes_quote_backslash_and_controls(void **state)
{
	const char in[] = "a\"b\\c\n\t\r\b\f\x01\x1f\x7f";
	char *out = json_string_doc(in, sizeof(in) - 1);

	(void)state;
	assert_string_equal(out, "\"a\\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f\\u007f\"\n");
	free(out);
}

static void test_json_keeps_valid_utf8(void **state)
{
	const char in[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
	char *out = json_string_doc(in, sizeof(in) - 1);

	(void)state;
	assert_string_equal(out, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"\n");
	free(out);
}

static void test_json_replaces_invalid_utf8(void **state)
{
	/* lone continuation, overlong '/', UTF-16 surrogate, truncated 3-byte, 0xff */
	const char in[] = "a\x80" "b\xc0\xaf" "c\xed\xa0\x80" "d\xe2\x82" "e\xff";
	char *out = json_string_doc(in, sizeof(in) - 1);

	(void)state;
	assert_string_equal(out, "\"a\\ufffdb\\ufffd\\ufffdc\\ufffd\\ufffd\\ufffdd\\ufffd\\ufffde\\ufffd\"\n");
	free(out);
}

static void test_json_keeps_embedded_nul_escaped(void **state)
{
	char *out = json_string_doc("a\0b", 3);

	(void)state;
	assert_string_equal(out, "\"a\\u0000b\"\n");
	free(out);
}

static void test_json_nests_with_commas_and_indentation(void **state)
{
	struct cli_json j;
	struct buf b;

	(void)state;
	buf_open(&b);
	cli_json_init(&j, b.f);
	cli_json_object(&j);
	cli_json_kstr(&j, "name", "x");
	cli_json_key(&j, "list");
	cli_json_array(&j);
	cli_json_int(&j, -3);
	cli_json_int(&j, INT64_MIN);
	cli_json_int(&j, 0);
	cli_json_uint(&j, UINT64_MAX);
	cli_json_null(&j);
	cli_json_bool(&j, 1);
	cli_json_close(&j);
	cli_json_khex(&j, "pc", 0xffffffff80012345ull);
	cli_json_key(&j, "empty");
	cli_json_object(&j);
	cli_json_close(&j);
	cli_json_kstr(&j, "none", NULL);
	cli_json_close(&j);
	assert_int_equal(cli_json_end(&j), 0);
	buf_close(&b);
	assert_string_equal(b.data, "{\n"
				    "  \"name\": \"x\",\n"
				    "  \"list\": [\n"
				    "    -3,\n"
				    "    -9223372036854775808,\n"
				    "    0,\n"
				    "    18446744073709551615,\n"
				    "    null,\n"
				    "    true\n"
				    "  ],\n"
				    "  \"pc\": \"0xffffffff80012345\",\n"
				    "  \"empty\": {},\n"
				    "  \"none\": null\n"
				    "}\n");
	free(b.data);
}

static void test_json_flat_array_stays_on_one_line(void **state)
{
	struct cli_json j;
	struct buf b;

	(void)state;
	buf_open(&b);
	cli_json_init(&j, b.f);
	cli_json_object(&j);
	cli_json_key(&j, "rows");
	cli_json_array(&j);
	cli_json_array_flat(&j);
	cli_json_str(&j, "1");
	cli_json_null(&j);
	cli_json_object(&j);
	cli_json_kint(&j, "x", 1);
	cli_json_kint(&j, "y", 2);
	cli_json_close(&j);
	cli_json_close(&j);
	cli_json_array_flat(&j);
	cli_json_close(&j);
	cli_json_close(&j);
	cli_json_close(&j);
	assert_int_equal(cli_json_end(&j), 0);
	buf_close(&b);
	assert_string_equal(b.data, "{\n"
				    "  \"rows\": [\n"
				    "    [\"1\", null, {\"x\": 1, \"y\": 2}],\n"
				    "    []\n"
				    "  ]\n"
				    "}\n");
	free(b.data);
}

static void test_json_double_shortest_and_nan_as_null(void **state)
{
	struct cli_json j;
	struct buf b;

	(void)state;
	buf_open(&b);
	cli_json_init(&j, b.f);
	cli_json_array(&j);
	cli_json_double(&j, 0.0 / 0.0);
	cli_json_double(&j, 2.5);
	cli_json_double(&j, 1.83);
	cli_json_double(&j, 0.1 + 0.2);
	cli_json_close(&j);
	assert_int_equal(cli_json_end(&j), 0);
	buf_close(&b);
	assert_string_equal(b.data, "[\n  null,\n  2.5,\n  1.83,\n  0.30000000000000004\n]\n");
	free(b.data);
}

static void test_json_end_reports_unbalanced_document(void **state)
{
	struct cli_json j;
	struct buf b;

	(void)state;
	buf_open(&b);
	cli_json_init(&j, b.f);
	cli_json_object(&j);
	cli_json_key(&j, "a");
	assert_int_equal(cli_json_end(&j), -1);
	buf_close(&b);
	free(b.data);
}

static void test_json_value_without_key_in_object_is_an_error(void **state)
{
	struct cli_json j;
	struct buf b;

	(void)state;
	buf_open(&b);
	cli_json_init(&j, b.f);
	cli_json_object(&j);
	cli_json_int(&j, 1);
	cli_json_close(&j);
	assert_int_equal(cli_json_end(&j), -1);
	buf_close(&b);
	free(b.data);
}

/* ------------------------------------------------------------ options */

enum { O_JSON = 1, O_KIND, O_LIMIT };
static const struct cli_option opts[] = {
	{O_JSON, "json", 0, NULL, "json"},
	{O_KIND, "kind", 'k', "K", "kinds"},
	{O_LIMIT, "limit", 'n', "N", "limit"},
	{0},
};

/* Parses argv and records "id:value" tokens into out. Returns the last code. */
static int parse_all(int argc, char **argv, char *out, size_t size)
{
	struct cli_args a;
	const char *v;
	int id;
	size_t len = 0;

	out[0] = '\0';
	cli_args_init(&a, "test", argc, argv);
	while ((id = cli_next_opt(&a, opts, &v)) != CLI_OPT_END) {
		len += snprintf(out + len, size - len, "%s%d:%s", len ? " " : "", id, v ? v : "");
		if (id == CLI_OPT_ERROR || id == CLI_OPT_HELP)
			return id;
	}
	return CLI_OPT_END;
}

static void test_options_long_forms(void **state)
{
	char *argv[] = {"cmd", "--kind=trap,eoi", "--limit", "5", "REC", "--json", NULL};
	char out[256];

	(void)state;
	assert_int_equal(parse_all(6, argv, out, sizeof(out)), CLI_OPT_END);
	assert_string_equal(out, "2:trap,eoi 3:5 -1:REC 1:");
}

static void test_options_short_forms(void **state)
{
	char *argv[] = {"cmd", "-ktrap", "-n", "7", "-", NULL};
	char out[256];

	(void)state;
	assert_int_equal(parse_all(5, argv, out, sizeof(out)), CLI_OPT_END);
	assert_string_equal(out, "2:trap 3:7 -1:-");
}

static void test_options_double_dash_ends_options(void **state)
{
	char *argv[] = {"cmd", "--", "--json", "-k", NULL};
	char out[256];

	(void)state;
	assert_int_equal(parse_all(4, argv, out, sizeof(out)), CLI_OPT_END);
	assert_string_equal(out, "-1:--json -1:-k");
}

static void test_options_unknown_long_is_an_error(void **state)
{
	char *argv[] = {"cmd", "--bogus", NULL};
	char out[256];

	(void)state;
	assert_int_equal(parse_all(2, argv, out, sizeof(out)), CLI_OPT_ERROR);
}

static void test_options_unknown_short_is_an_error(void **state)
{
	char *argv[] = {"cmd", "-z", NULL};
	char out[256];

	(void)state;
	assert_int_equal(parse_all(2, argv, out, sizeof(out)), CLI_OPT_ERROR);
}

static void test_options_missing_argument_is_an_error(void **state)
{
	char *argv[] = {"cmd", "--limit", NULL};
	char *argv2[] = {"cmd", "-n", NULL};
	char out[256];

	(void)state;
	assert_int_equal(parse_all(2, argv, out, sizeof(out)), CLI_OPT_ERROR);
	assert_int_equal(parse_all(2, argv2, out, sizeof(out)), CLI_OPT_ERROR);
}

static void test_options_flag_with_value_is_an_error(void **state)
{
	char *argv[] = {"cmd", "--json=1", NULL};
	char out[256];

	(void)state;
	assert_int_equal(parse_all(2, argv, out, sizeof(out)), CLI_OPT_ERROR);
}

static void test_options_help_forms(void **state)
{
	char *argv[] = {"cmd", "--help", NULL};
	char *argv2[] = {"cmd", "-h", NULL};
	char out[256];

	(void)state;
	assert_int_equal(parse_all(2, argv, out, sizeof(out)), CLI_OPT_HELP);
	assert_int_equal(parse_all(2, argv2, out, sizeof(out)), CLI_OPT_HELP);
}

static void test_usage_lists_synopses_and_options(void **state)
{
	struct buf b;

	(void)state;
	buf_open(&b);
	cli_print_usage(b.f, "krewind x REC\nkrewind x -", "Does x.", opts);
	buf_close(&b);
	assert_string_equal(b.data, "usage: krewind x REC\n"
				    "   or: krewind x -\n"
				    "\n"
				    "Does x.\n"
				    "\n"
				    "options:\n"
				    "       --json                 json\n"
				    "   -k, --kind K               kinds\n"
				    "   -n, --limit N              limit\n"
				    "   -h, --help                 show this help\n");
	free(b.data);
}

/* ------------------------------------------------------------ numbers */

static void test_parse_u64_accepts_decimal_and_hex(void **state)
{
	uint64_t v = 0;

	(void)state;
	assert_int_equal(cli_parse_u64("12345", &v), 0);
	assert_int_equal(v, 12345);
	assert_int_equal(cli_parse_u64("0xffffffff80012345", &v), 0);
	assert_true(v == 0xffffffff80012345ull);
	assert_int_equal(cli_parse_u64("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);
}

static void test_parse_u64_rejects_junk(void **state)
{
	const char *bad[] = {"", "-1", "+1", " 1", "1x", "0x", "0x-1", "abc", "18446744073709551616", NULL};
	uint64_t v = 42;
	int i;

	(void)state;
	for (i = 0; bad[i]; i++) {
		assert_int_equal(cli_parse_u64(bad[i], &v), -1);
		assert_int_equal(v, 42);
	}
}

static void test_parse_pos_id_and_icount(void **state)
{
	struct cli_pos p;

	(void)state;
	assert_int_equal(cli_parse_pos("17", &p), 0);
	assert_int_equal(p.is_icount, 0);
	assert_int_equal(p.value, 17);
	assert_int_equal(cli_parse_pos("icount:0x100", &p), 0);
	assert_int_equal(p.is_icount, 1);
	assert_int_equal(p.value, 256);
	assert_int_equal(cli_parse_pos("icount:0", &p), 0);
	assert_int_equal(p.value, 0);
}

static void test_parse_pos_rejects_bad_positions(void **state)
{
	struct cli_pos p;

	(void)state;
	assert_int_equal(cli_parse_pos("0", &p), -1);
	assert_int_equal(cli_parse_pos("icount:", &p), -1);
	assert_int_equal(cli_parse_pos("icount:x", &p), -1);
	assert_int_equal(cli_parse_pos("ic:5", &p), -1);
	assert_int_equal(cli_parse_pos("9223372036854775808", &p), -1);
}

/* ------------------------------------------------------------ descriptions */

static const char *fake_thread(void *ctx, uint64_t addr)
{
	(void)ctx;
	return addr == 0x1000 ? "idle" : addr == 0x2000 ? "worker1" : "";
}

static const char *fake_lock(void *ctx, uint64_t addr)
{
	(void)ctx;
	return addr == 0x5000 ? "ScenarioLockA" : "";
}

static char *fake_symbol(void *ctx, uint64_t addr, char *buf, size_t size)
{
	(void)ctx;
	if (addr >= 0x400000 && addr < 0x400100)
		snprintf(buf, size, "DriverInit+0x%llx", (unsigned long long)(addr - 0x400000));
	else
		snprintf(buf, size, "0x%llx", (unsigned long long)addr);
	return buf;
}

static const struct cli_names names = {fake_thread, fake_lock, fake_symbol, NULL};

static const char *describe(uint8_t kind, uint64_t obj, int64_t ea, int64_t eb, const char *text)
{
	static char buf[256];
	struct db_event ev = {0};

	ev.kind = kind;
	ev.obj = obj;
	ev.a = ea;
	ev.b = eb;
	return cli_describe_event(&ev, text, &names, buf, sizeof(buf));
}

/* Schema 2 kinds and the execution state `krewind events` prints after them. */
static void test_describe_schema2_kinds_and_state(void **state)
{
	char buf[256];
	struct db_event ev = {0};

	(void)state;
	assert_string_equal(describe(DB_LOCK_FAIL, 0x5000, 0, 0, NULL), "trylock failed ScenarioLockA");
	assert_string_equal(describe(DB_DEFER_QUEUE, 0x400010, 0, 0, NULL), "queue deferred DriverInit+0x10");
	assert_string_equal(describe(DB_DEFER_RUN, 0, 0, 0, NULL), "run deferred work");
	assert_string_equal(describe(DB_SLEEP, 0, 0, -100000, NULL), "sleep (timeout 10 ms)");
	assert_string_equal(describe(DB_SYSCALL, 0, 60, 0, NULL), "syscall 60");
	/* nothing recorded: no state */
	ev.kind = DB_LOCK_ACQ;
	assert_string_equal(cli_describe_state(&ev, &names, buf, sizeof(buf)), "");
	ev.ctx = DB_CTX_HARDIRQ;
	ev.flags = DB_F_TRY;
	ev.lockop = DB_LOCKOP(DB_LF_WRITE, DB_LI_IRQSAVE, 2);
	ev.preempt = 1;
	ev.caller = 0x400020;
	assert_string_equal(cli_describe_state(&ev, &names, buf, sizeof(buf)),
			    "[hardirq, IF off, write, irqsave, subclass 2, try, preempt 1, from DriverInit+0x20]");
	ev = (struct db_event){.kind = DB_TRAP, .flags = DB_F_IF | DB_F_USER | DB_F_SOFT, .preempt = -1};
	assert_string_equal(cli_describe_state(&ev, &names, buf, sizeof(buf)), "[process, IF on, from user, software]");
	ev = (struct db_event){.kind = DB_IRET, .a = -1, .flags = DB_F_NOFRAME, .preempt = -1};
	assert_string_equal(cli_describe_event(&ev, NULL, &names, buf, sizeof(buf)), "iret to self");
}

static void test_describe_lock_events(void **state)
{
	(void)state;
	assert_string_equal(describe(DB_LOCK_ACQ, 0x5000, 2, 37, NULL), "acquire ScenarioLockA (irql 2, spun 37)");
	assert_string_equal(describe(DB_LOCK_TRY, 0x5000, 2, 0, NULL), "try ScenarioLockA (irql 2)");
	assert_string_equal(describe(DB_LOCK_REL, 0x6000, 0, 0, NULL), "release 0x6000 (irql 0)");
	assert_string_equal(describe(DB_LOCK_INIT, 0x5000, 0x400010, 0, NULL),
			    "init ScenarioLockA (from DriverInit+0x10)");
}

static void test_describe_irql_trap_iret_eoi(void **state)
{
	(void)state;
	assert_string_equal(describe(DB_IRQL, 0, 0, 2, NULL), "irql 0 -> 2");
	assert_string_equal(describe(DB_TRAP, 0, 0xd1, 0, NULL), "trap 0xd1");
	assert_string_equal(describe(DB_TRAP, 0, 0x0e, 2, NULL), "trap 0x0e #PF (error 0x2)");
	assert_string_equal(describe(DB_IRET, 0, 0xd1, 0, NULL), "iret from 0xd1");
	assert_string_equal(describe(DB_IRET, 0, -1, 0, NULL), "iret");
	assert_string_equal(describe(DB_EOI, 0, 1, 0, NULL), "eoi (x2apic)");
	assert_string_equal(describe(DB_EOI, 0, 2, 0, NULL), "eoi (xapic)");
}

static void test_describe_switch_names_both_threads(void **state)
{
	(void)state;
	assert_string_equal(describe(DB_SWITCH, 0, 0x1000, 0x2000, NULL), "switch idle -> worker1");
	assert_string_equal(describe(DB_SWITCH, 0, 0x3000, 0, NULL), "switch 0x3000 -> -");
}

static void test_describe_dispatcher_events(void **state)
{
	(void)state;
	assert_string_equal(describe(DB_WAIT, 0x5000, 0, INT64_MIN, NULL), "wait ScenarioLockA (irql 0, no timeout)");
	assert_string_equal(describe(DB_WAIT, 0x5000, 0, -100000, NULL), "wait ScenarioLockA (irql 0, timeout 10 ms)");
	assert_string_equal(describe(DB_WAIT, 0x5000, 0, -15, NULL), "wait ScenarioLockA (irql 0, timeout 1 us)");
	assert_string_equal(describe(DB_WAIT, 0x5000, 2, 0, NULL), "wait ScenarioLockA (irql 2, timeout 0)");
	assert_string_equal(describe(DB_WAIT, 0x5000, 2, 5000, NULL), "wait ScenarioLockA (irql 2, timeout at 5000)");
	assert_string_equal(describe(DB_WAIT_END, 0x5000, 0x102, 0, NULL), "wait done ScenarioLockA (status 0x102)");
	assert_string_equal(describe(DB_MUTEX_ACQ, 0x5000, 0, 0, NULL), "own mutex ScenarioLockA (irql 0)");
	assert_string_equal(describe(DB_MUTEX_REL, 0x5000, 0, 0, NULL), "release mutex ScenarioLockA (irql 0)");
	assert_string_equal(describe(DB_SIGNAL, 0x7000, 0, 0, NULL), "signal 0x7000");
}

static void test_describe_markers_and_bugcheck(void **state)
{
	(void)state;
	assert_string_equal(describe(DB_MARKER, 0, DB_MARK_SCENARIO, 0, "eoi-before-switch"),
			    "scenario eoi-before-switch");
	assert_string_equal(describe(DB_MARKER, 12, DB_MARK_RESULT, 1, NULL), "self-test: 12 passed, 1 failed");
	assert_string_equal(describe(DB_MARKER, 0, DB_MARK_SERIAL, 0, "hello"), "serial: hello");
	assert_string_equal(describe(DB_MARKER, 0, DB_MARK_TEXT, 0, NULL), "marker: ");
	assert_string_equal(describe(DB_BUGCHECK, 0, 0xd1, 0x1234, NULL), "bugcheck 0xd1 (0x1234)");
}

static void test_describe_truncates_to_buffer(void **state)
{
	struct db_event ev = {0};
	char small[8];

	(void)state;
	ev.kind = DB_LOCK_ACQ;
	ev.obj = 0x5000;
	cli_describe_event(&ev, NULL, &names, small, sizeof(small));
	assert_string_equal(small, "acquire");
}

static void test_labels_fall_back_to_address(void **state)
{
	char buf[32];

	(void)state;
	assert_string_equal(cli_thread_label(&names, 0x2000, buf, sizeof(buf)), "worker1");
	assert_string_equal(cli_thread_label(&names, 0x2001, buf, sizeof(buf)), "0x2001");
	assert_string_equal(cli_thread_label(&names, 0, buf, sizeof(buf)), "-");
	assert_string_equal(cli_lock_label(NULL, 0x5000, buf, sizeof(buf)), "0x5000");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_escapes_quote_backslash_and_controls),
		cmocka_unit_test(test_json_keeps_valid_utf8),
		cmocka_unit_test(test_json_replaces_invalid_utf8),
		cmocka_unit_test(test_json_keeps_embedded_nul_escaped),
		cmocka_unit_test(test_json_nests_with_commas_and_indentation),
		cmocka_unit_test(test_json_flat_array_stays_on_one_line),
		cmocka_unit_test(test_json_double_shortest_and_nan_as_null),
		cmocka_unit_test(test_json_end_reports_unbalanced_document),
		cmocka_unit_test(test_json_value_without_key_in_object_is_an_error),
		cmocka_unit_test(test_options_long_forms),
		cmocka_unit_test(test_options_short_forms),
		cmocka_unit_test(test_options_double_dash_ends_options),
		cmocka_unit_test(test_options_unknown_long_is_an_error),
		cmocka_unit_test(test_options_unknown_short_is_an_error),
		cmocka_unit_test(test_options_missing_argument_is_an_error),
		cmocka_unit_test(test_options_flag_with_value_is_an_error),
		cmocka_unit_test(test_options_help_forms),
		cmocka_unit_test(test_usage_lists_synopses_and_options),
		cmocka_unit_test(test_parse_u64_accepts_decimal_and_hex),
		cmocka_unit_test(test_parse_u64_rejects_junk),
		cmocka_unit_test(test_parse_pos_id_and_icount),
		cmocka_unit_test(test_parse_pos_rejects_bad_positions),
		cmocka_unit_test(test_describe_lock_events),
		cmocka_unit_test(test_describe_schema2_kinds_and_state),
		cmocka_unit_test(test_describe_irql_trap_iret_eoi),
		cmocka_unit_test(test_describe_switch_names_both_threads),
		cmocka_unit_test(test_describe_dispatcher_events),
		cmocka_unit_test(test_describe_markers_and_bugcheck),
		cmocka_unit_test(test_describe_truncates_to_buffer),
		cmocka_unit_test(test_labels_fall_back_to_address),
	};

	return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
