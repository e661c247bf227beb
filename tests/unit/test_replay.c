/*
 * test_replay.c - the replay module's pure parts: the JSON reader and writer
 * behind QMP and manifests, manifest round trips, recording directories and
 * their resolution, the replay command line, QEMU's register dump, SHA-256.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "replay/internal.h"
#include "replay/replay.h"

static struct qmp_json *parse_ok(const char *text)
{
	struct qmp_json *v = NULL;
	char *err = NULL;

	assert_int_equal(qmp_json_parse(text, strlen(text), &v, NULL, &err), 0);
	assert_null(err);
	assert_non_null(v);
	return v;
}

static int parse_rc(const char *text, char **err)
{
	struct qmp_json *v = NULL;
	int rc = qmp_json_parse(text, strlen(text), &v, NULL, err);

	assert_null(v);
	return rc;
}

/* ------------------------------------------------------------ JSON */

static void test_json_parses_qmp_greeting(void **state)
{
	struct qmp_json *v = parse_ok("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}}, "
				      "\"capabilities\": [\"oob\"]}}\r\n");
	const struct qmp_json *caps = qmp_json_get(qmp_json_get(v, "QMP"), "capabilities");
	uint64_t major = 0;

	(void)state;
	assert_int_equal(qmp_json_get_u64(qmp_json_get(qmp_json_get(qmp_json_get(v, "QMP"), "version"), "qemu"), "major",
					  &major),
			 0);
	assert_int_equal(major, 10);
	assert_non_null(caps);
	assert_int_equal(caps->type, QMP_JSON_ARRAY);
	assert_int_equal(caps->n, 1);
	assert_string_equal(caps->items[0]->str, "oob");
	qmp_json_free(v);
}

static void test_json_keeps_64bit_integers_exact(void **state)
{
	struct qmp_json *v = parse_ok("{\"icount\": 18446744073709551615, \"neg\": -5, \"f\": 1.5e3}");
	const struct qmp_json *neg = qmp_json_get(v, "neg"), *f = qmp_json_get(v, "f");
	uint64_t ic = 0;

	(void)state;
	assert_int_equal(qmp_json_get_u64(v, "icount", &ic), 0);
	assert_true(ic == UINT64_MAX);
	assert_int_equal(neg->is_int, 1);
	assert_int_equal(neg->negative, 1);
	assert_int_equal(neg->u, 5);
	assert_int_equal(qmp_json_get_u64(v, "neg", &ic), -1);
	assert_int_equal(f->is_int, 0);
	assert_true(f->d == 1500.0);
	qmp_json_free(v);
}

static void test_json_unescapes_strings(void **state)
{
	struct qmp_json *v = parse_ok("\"a\\\"b\\\\c\\/d\\n\\t\\u00e9\\ud83d\\ude00\\r\"");

	(void)state;
	assert_int_equal(v->type, QMP_JSON_STRING);
	assert_string_equal(v->str, "a\"b\\c/d\n\t\xc3\xa9\xf0\x9f\x98\x80\r");
	assert_int_equal(v->len, strlen("a\"b\\c/d\n\t\xc3\xa9\xf0\x9f\x98\x80\r"));
	qmp_json_free(v);
}

static void test_json_parses_nested_values(void **state)
{
	struct qmp_json *v = parse_ok("{\"return\": [{\"a\": [1, [2, [3, {}]]], \"b\": null, \"c\": true, \"d\": false}]}");
	const struct qmp_json *r = qmp_json_get(v, "return"), *o, *a;

	(void)state;
	assert_int_equal(r->n, 1);
	o = r->items[0];
	a = qmp_json_get(o, "a");
	assert_int_equal(a->items[1]->items[1]->items[0]->u, 3);
	assert_int_equal(a->items[1]->items[1]->items[1]->type, QMP_JSON_OBJECT);
	assert_int_equal(qmp_json_get(o, "b")->type, QMP_JSON_NULL);
	assert_int_equal(qmp_json_get(o, "c")->boolean, 1);
	assert_int_equal(qmp_json_get(o, "d")->boolean, 0);
	assert_null(qmp_json_get(o, "missing"));
	qmp_json_free(v);
}

static void test_json_reports_truncated_text(void **state)
{
	static const char *const cut[] = { "{\"return\": {\"icount\": 12", "{\"a\": [1, 2", "\"abc", "{\"a\"", "tru",
					   "\"\\u00", "{\"a\": 1,", "-", "1." };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		char *err = NULL;
		assert_int_equal(parse_rc(cut[i], &err), REPLAY_E_TRUNCATED);
		assert_string_equal(err, "truncated JSON");
		free(err);
	}
}

static void test_json_rejects_invalid_text(void **state)
{
	static const char *const bad[] = { "{\"a\" 1}", "[1 2]", "{a: 1}", "\"\\x\"", "01", "nul!", "\"\\udc00\"",
					   "\"a\nb\"", "}" };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *err = NULL;
		assert_int_equal(parse_rc(bad[i], &err), REPLAY_E_FORMAT);
		assert_non_null(strstr(err, "invalid JSON"));
		free(err);
	}
}

static void test_json_refuses_deep_nesting(void **state)
{
	char text[200];
	char *err = NULL;

	(void)state;
	memset(text, '[', 100);
	memset(text + 100, ']', 100);
	assert_int_equal(qmp_json_parse(text, sizeof(text), &(struct qmp_json *){ NULL }, NULL, &err), REPLAY_E_FORMAT);
	assert_string_equal(err, "invalid JSON: nested too deeply");
	free(err);
}

static void test_json_reports_bytes_used(void **state)
{
	const char *text = "{\"a\":1} \r\n{\"b\":2}";
	struct qmp_json *v = NULL;
	size_t used = 0;

	(void)state;
	assert_int_equal(qmp_json_parse(text, strlen(text), &v, &used, NULL), 0);
	assert_int_equal(used, 10);
	qmp_json_free(v);
}

static void test_json_writer_escapes_and_round_trips(void **state)
{
	struct qmp_buf b = { 0 };
	struct qmp_json *v;
	const char *s = "q\"b\\s\n\x01 \xc3\xa9";

	(void)state;
	qmp_buf_str(&b, s);
	assert_string_equal(b.buf, "\"q\\\"b\\\\s\\n\\u0001 \xc3\xa9\"");
	v = parse_ok(b.buf);
	assert_string_equal(v->str, s);
	qmp_json_free(v);
	b.len = 0;
	qmp_buf_str(&b, NULL);
	assert_string_equal(b.buf, "null");
	free(b.buf);
}

/* ------------------------------------------------------------ recordings */

static char *make_tmpdir(void)
{
	char tmpl[] = "/tmp/krewind-test.XXXXXX";
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	return strdup(d);
}

static void rm_rf(const char *dir)
{
	char *cmd = NULL;
	assert_true(asprintf(&cmd, "rm -rf '%s'", dir) > 0);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

static char *join(const char *a, const char *b)
{
	char *s = NULL;
	assert_true(asprintf(&s, "%s/%s", a, b) > 0);
	return s;
}

static void touch(const char *path)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("x", f);
	fclose(f);
}

static struct replay_recording *sample(const char *dir)
{
	struct replay_recording *r = replay_recording_new();
	static const char *const args[] = { "qemu-system-x86_64", "-kernel", "kernel.elf", "-icount",
					    "shift=auto,rr=record,rrfile=replay.bin,rrsnapshot=init",
					    "-plugin", "/x/libkrewind.so,db=trace.db", "-drive",
					    "file=snap.qcow2,if=none,id=rrsnap", "-serial", "file:serial.log" };
	size_t i;

	r->dir = strdup(dir);
	r->name = strdup("x");
	r->db_path = join(dir, "trace.db");
	r->kernel = join(dir, "kernel.elf");
	r->symbols = join(dir, "kernel.elf");
	r->replay_log = join(dir, "replay.bin");
	r->snapshot_image = join(dir, "snap.qcow2");
	r->serial_log = join(dir, "serial.log");
	r->scenario = strdup("eoi-before-switch");
	r->append = strdup("scenario=eoi-before-switch \"quoted\"");
	r->outcome = strdup("hang");
	r->outcome_detail = strdup("no new trace events or serial output for 5 s");
	r->qemu_version = strdup("10.0.2");
	r->started_at = strdup("2026-11-27T10:00:00Z");
	r->kernel_source = strdup("/work/build/kernel/kernel.elf");
	r->kernel_sha256 = strdup("00ff");
	r->exit_status = 0;
	r->icount_total = 18446744073709551000ull;
	r->events_total = 60;
	r->wall_seconds = 1.25;
	r->counts = calloc(2, sizeof(*r->counts));
	r->counts[0].kind = strdup("eoi");
	r->counts[0].n = 6;
	r->counts[1].kind = strdup("trap");
	r->counts[1].n = 54;
	r->n_counts = 2;
	r->qemu_args = calloc(sizeof(args) / sizeof(args[0]) + 1, sizeof(char *));
	for (i = 0; i < sizeof(args) / sizeof(args[0]); i++)
		r->qemu_args[r->n_qemu_args++] = strdup(args[i]);
	return r;
}

static void test_manifest_round_trips(void **state)
{
	char *dir = make_tmpdir(), *err = NULL;
	struct replay_recording *w = sample(dir), *r = NULL;
	size_t i;

	(void)state;
	assert_int_equal(replay_manifest_write(w, &err), 0);
	assert_int_equal(replay_recording_open(dir, &r, &err), 0);
	assert_null(err);
	assert_string_equal(r->dir, dir);
	assert_string_equal(r->db_path, w->db_path);
	assert_string_equal(r->kernel, w->kernel);
	assert_string_equal(r->replay_log, w->replay_log);
	assert_string_equal(r->snapshot_image, w->snapshot_image);
	assert_string_equal(r->serial_log, w->serial_log);
	assert_string_equal(r->append, w->append);
	assert_string_equal(r->outcome, "hang");
	assert_string_equal(r->outcome_detail, w->outcome_detail);
	assert_string_equal(r->kernel_source, w->kernel_source);
	assert_null(r->probe);
	assert_int_equal(r->exit_status, 0);
	assert_true(r->icount_total == 18446744073709551000ull);
	assert_int_equal(r->events_total, 60);
	assert_true(r->wall_seconds == 1.25);
	assert_int_equal(r->n_counts, 2);
	assert_string_equal(r->counts[1].kind, "trap");
	assert_int_equal(r->counts[1].n, 54);
	assert_int_equal(r->n_qemu_args, w->n_qemu_args);
	for (i = 0; i < w->n_qemu_args; i++)
		assert_string_equal(r->qemu_args[i], w->qemu_args[i]);
	assert_null(r->qemu_args[r->n_qemu_args]);
	replay_recording_free(r);
	replay_recording_free(w);
	rm_rf(dir);
	free(dir);
}

/* SMP (replay/smp.c): the mode and vCPU count survive the manifest, a
 * recording without them is not "reexec". */
static void test_manifest_keeps_smp_mode(void **state)
{
	char *dir = make_tmpdir(), *err = NULL;
	struct replay_recording *w = sample(dir), *r = NULL;

	(void)state;
	assert_int_equal(replay_manifest_write(w, &err), 0);
	assert_int_equal(replay_recording_open(dir, &r, &err), 0);
	assert_false(replay_smp_is(r));
	assert_null(r->mode);
	replay_recording_free(r);
	w->mode = strdup(REPLAY_MODE_REEXEC);
	w->vcpus = 4;
	assert_int_equal(replay_manifest_write(w, &err), 0);
	assert_int_equal(replay_recording_open(dir, &r, &err), 0);
	assert_true(replay_smp_is(r));
	assert_int_equal(r->vcpus, 4);
	replay_recording_free(r);
	replay_recording_free(w);
	rm_rf(dir);
	free(dir);
}

/* What makes a run with several vCPUs not re-executable is named. */
static void test_smp_refuses_host_inputs(void **state)
{
	char *ok[] = {"-m", "256M", "-device", "isa-debug-exit,iobase=0xf4", "-net", "none", NULL};
	char *disk[] = {"-m", "256M", "-drive", "file=x.img", NULL};
	char *nic[] = {"-device", "e1000,netdev=n", NULL};
	char *net[] = {"-net", "user", NULL};
	char *clock[] = {"--icount", "shift=auto", NULL};
	char *kbd[] = {"-device", "usb-kbd", NULL};

	(void)state;
	assert_null(replay_smp_refused_arg(ok));
	assert_null(replay_smp_refused_arg(NULL));
	assert_string_equal(replay_smp_refused_arg(disk), "-drive");
	assert_string_equal(replay_smp_refused_arg(nic), "e1000,netdev=n");
	assert_string_equal(replay_smp_refused_arg(net), "-net");
	assert_string_equal(replay_smp_refused_arg(clock), "--icount");
	assert_string_equal(replay_smp_refused_arg(kbd), "usb-kbd");
}

/* Only a Linux bzImage gets random.trust_cpu=off, once. */
static void test_smp_append_for_linux(void **state)
{
	char *dir = make_tmpdir(), path[512], *s;
	unsigned char img[0x300] = {0};
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/bzImage", dir);
	memcpy(img + 0x202, "HdrS", 4);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(img, 1, sizeof(img), f), sizeof(img));
	fclose(f);
	s = replay_smp_append(path, "console=ttyS0");
	assert_string_equal(s, "console=ttyS0 random.trust_cpu=off");
	free(s);
	s = replay_smp_append(path, NULL);
	assert_string_equal(s, "random.trust_cpu=off");
	free(s);
	s = replay_smp_append(path, "random.trust_cpu=on");
	assert_string_equal(s, "random.trust_cpu=on");
	free(s);
	memset(img + 0x202, 0, 4); /* not a bzImage (our kernel is an ELF) */
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(img, 1, sizeof(img), f), sizeof(img));
	fclose(f);
	s = replay_smp_append(path, "scenario=smp-clean");
	assert_string_equal(s, "scenario=smp-clean");
	free(s);
	rm_rf(dir);
	free(dir);
}

static void test_manifest_stores_relative_paths(void **state)
{
	char *dir = make_tmpdir(), *err = NULL, *m = NULL, text[8192];
	struct replay_recording *w = sample(dir);
	FILE *f;
	size_t n;

	(void)state;
	assert_int_equal(replay_manifest_write(w, &err), 0);
	m = join(dir, "manifest.json");
	f = fopen(m, "r");
	assert_non_null(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = 0;
	fclose(f);
	assert_non_null(strstr(text, "\"kernel\": \"kernel.elf\""));
	assert_non_null(strstr(text, "\"replay_log\": \"replay.bin\""));
	assert_null(strstr(text, dir));
	replay_recording_free(w);
	rm_rf(dir);
	free(dir);
	free(m);
}

static void test_manifest_without_qemu_args_is_refused(void **state)
{
	const char *text = "{\"outcome\": \"pass\"}";
	struct replay_recording *r = NULL;
	char *err = NULL;

	(void)state;
	assert_int_equal(replay_manifest_parse(text, strlen(text), "/d", &r, &err), REPLAY_E_FORMAT);
	assert_string_equal(err, "manifest has no qemu_args array");
	assert_null(r);
	free(err);
}

static void test_recording_resolves_name_dir_and_trace(void **state)
{
	char *top = make_tmpdir(), *traces = join(top, "traces"), *rec = join(traces, "clean-1"), *db = join(rec, "trace.db");
	struct replay_recording *r = NULL;
	char *err = NULL;

	(void)state;
	assert_int_equal(mkdir(traces, 0755), 0);
	assert_int_equal(mkdir(rec, 0755), 0);
	touch(db);
	setenv("KREWIND_TRACES", traces, 1);
	/* By name under traces/ (bare trace.db: no manifest). */
	assert_int_equal(replay_recording_open("clean-1", &r, &err), 0);
	assert_string_equal(r->dir, rec);
	assert_string_equal(r->db_path, db);
	assert_string_equal(r->name, "clean-1");
	assert_null(r->qemu_args);
	replay_recording_free(r);
	/* By directory and by trace.db path. */
	assert_int_equal(replay_recording_open(rec, &r, &err), 0);
	assert_string_equal(r->db_path, db);
	replay_recording_free(r);
	assert_int_equal(replay_recording_open(db, &r, &err), 0);
	assert_string_equal(r->dir, rec);
	replay_recording_free(r);
	/* Nothing there. */
	r = NULL;
	assert_int_equal(replay_recording_open("clean-2", &r, &err), REPLAY_E_IO);
	assert_string_equal(err, "no recording named clean-2");
	assert_null(r);
	free(err);
	unsetenv("KREWIND_TRACES");
	rm_rf(top);
	free(top);
	free(traces);
	free(rec);
	free(db);
}

static void test_mkdir_takes_next_free_number(void **state)
{
	char *top = make_tmpdir(), *traces = join(top, "traces"), *out = NULL, *want = NULL, *err = NULL;

	(void)state;
	assert_int_equal(replay_recording_mkdir(NULL, traces, "clean", &out, &err), 0);
	want = join(traces, "clean-1");
	assert_string_equal(out, want);
	free(out);
	free(want);
	assert_int_equal(replay_recording_mkdir(NULL, traces, "clean", &out, &err), 0);
	want = join(traces, "clean-2");
	assert_string_equal(out, want);
	free(out);
	free(want);
	rm_rf(top);
	free(top);
	free(traces);
}

static void test_mkdir_refuses_non_empty_output(void **state)
{
	char *top = make_tmpdir(), *f = join(top, "trace.db"), *out = NULL, *err = NULL;

	(void)state;
	assert_int_equal(replay_recording_mkdir(top, NULL, NULL, &out, &err), 0); /* empty: fine */
	free(out);
	out = NULL;
	touch(f);
	assert_int_equal(replay_recording_mkdir(top, NULL, NULL, &out, &err), REPLAY_E_EXISTS);
	assert_null(out);
	assert_non_null(strstr(err, "is not empty"));
	free(err);
	rm_rf(top);
	free(top);
	free(f);
}

static void test_replay_argv_switches_to_replay(void **state)
{
	struct replay_recording *r = sample("/rec");
	char *extra[] = { "-S", NULL }, **v = NULL, *err = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(replay_replay_argv(r, extra, &v, &err), 0);
	while (v[n])
		n++;
	/* -plugin and its value are dropped, -S appended. */
	assert_int_equal(n, r->n_qemu_args - 2 + 1);
	assert_string_equal(v[4], "shift=auto,rr=replay,rrfile=replay.bin,rrsnapshot=init");
	assert_string_equal(v[5], "-drive");
	assert_string_equal(v[6], "file=snap.qcow2,if=none,id=rrsnap,file.locking=off");
	assert_string_equal(v[n - 1], "-S");
	replay_argv_free(v);
	replay_recording_free(r);
}

static void test_replay_argv_refuses_no_rr(void **state)
{
	struct replay_recording *r = sample("/rec");
	char **v = NULL, *err = NULL;

	(void)state;
	free(r->qemu_args[4]);
	r->qemu_args[4] = strdup("shift=auto");
	assert_int_equal(replay_replay_argv(r, NULL, &v, &err), REPLAY_E_ARG);
	assert_non_null(strstr(err, "without record/replay"));
	free(err);
	replay_recording_free(r);
}

/* ------------------------------------------------------------ QMP client */

/* A scripted QMP peer in a child process: sends the greeting, then for each
 * line it reads sends the next canned reply (which may hold several lines:
 * events before the answer). The protocol is QEMU's; the peer only replays
 * what QEMU 10 was seen to send. */
static pid_t qmp_peer(const char *path, const char *const *replies)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int ls = socket(AF_UNIX, SOCK_STREAM, 0);
	pid_t pid;

	assert_true(ls >= 0);
	strcpy(sa.sun_path, path);
	assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(ls, 1), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int c = accept(ls, NULL, NULL);
		char ch;
		const char *greet = "{\"QMP\": {\"version\": {}, \"capabilities\": [\"oob\"]}}\r\n";
		if (c < 0 || write(c, greet, strlen(greet)) < 0)
			_exit(1);
		for (; *replies; replies++) {
			do /* one command line */
				if (read(c, &ch, 1) != 1)
					_exit(0);
			while (ch != '\n');
			if (write(c, *replies, strlen(*replies)) < 0)
				_exit(1);
		}
		_exit(0);
	}
	close(ls);
	return pid;
}

static void test_qmp_queues_events_met_before_an_answer(void **state)
{
	static const char *const replies[] = {
		"{\"return\": {}}\r\n", /* qmp_capabilities */
		"{\"timestamp\": {}, \"event\": \"RESUME\"}\r\n{\"return\": {}}\r\n",
		"{\"timestamp\": {}, \"event\": \"STOP\"}\r\n{\"return\": {\"icount\": 1000000, \"mode\": \"play\"}}\r\n",
		NULL };
	char *dir = make_tmpdir(), *sock = join(dir, "q.sock"), *err = NULL;
	struct qmp *q = NULL;
	struct qmp_json *ev = NULL;
	uint64_t icount = 0;
	pid_t pid = qmp_peer(sock, replies);
	int st;

	(void)state;
	assert_int_equal(qmp_connect(sock, NULL, NULL, 5000, &q, &err), 0);
	assert_int_equal(qmp_execute(q, "cont", NULL, NULL, &err), 0);
	assert_int_equal(qmp_replay_icount(q, &icount, &err), 0);
	assert_true(icount == 1000000);
	assert_int_equal(qmp_take_event(q, "STOP", &ev), 1);
	assert_string_equal(qmp_json_get_str(ev, "event"), "STOP");
	qmp_json_free(ev);
	assert_int_equal(qmp_take_event(q, "STOP", NULL), 0);
	assert_int_equal(qmp_wait_event(q, "RESUME", 1000, NULL, &err), 0);
	qmp_close(q);
	waitpid(pid, &st, 0);
	rm_rf(dir);
	free(dir);
	free(sock);
}

static void test_qmp_error_answer_carries_qemu_text(void **state)
{
	static const char *const replies[] = {
		"{\"return\": {}}\r\n",
		"{\"error\": {\"class\": \"GenericError\", \"desc\": \"replay-break: not in replay mode\"}}\r\n",
		NULL };
	char *dir = make_tmpdir(), *sock = join(dir, "q.sock"), *err = NULL;
	struct qmp *q = NULL;
	pid_t pid = qmp_peer(sock, replies);
	int st;

	(void)state;
	assert_int_equal(qmp_connect(sock, NULL, NULL, 5000, &q, &err), 0);
	assert_int_equal(qmp_execute(q, "replay-break", "{\"icount\": 5}", NULL, &err), REPLAY_E_QEMU);
	assert_string_equal(err, "QEMU refused replay-break: replay-break: not in replay mode");
	free(err);
	err = NULL;
	/* The peer hangs up: waiting for an event says QEMU went away. */
	assert_int_equal(qmp_wait_event(q, "STOP", 5000, NULL, &err), REPLAY_E_QEMU);
	assert_string_equal(err, "QEMU closed the QMP connection");
	free(err);
	qmp_close(q);
	waitpid(pid, &st, 0);
	rm_rf(dir);
	free(dir);
	free(sock);
}

/* ------------------------------------------------------------ misc */

static void test_registers_parse_qemu_dump(void **state)
{
	const char *dump = "RAX=0000000000000001 RBX=0000000000000006 RCX=000000000000080b RDX=0000000000000000\r\n"
			   "RSI=000000000000000d RDI=000000000010d1a0 RBP=000000000010d170 RSP=000000000010d148\r\n"
			   "R8 =000000000011b670 R9 =0000000000000003 R10=0000000000000246 R11=0000000000000000\r\n"
			   "R12=0000000000109080 R13=00000000001af850 R14=0000000000000000 R15=ffffffffffffffff\r\n"
			   "RIP=00000000001001a9 RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1\r\n"
			   "GS =0000 0000000000109080 ffffffff 00c00000\r\n"
			   "CR0=80010033 CR2=0000000000000000 CR3=00000000001b3000 CR4=00000620\r\n";
	struct replay_regs r;
	char *err = NULL;

	(void)state;
	assert_int_equal(replay_parse_registers(dump, &r, &err), 0);
	assert_int_equal(r.long_mode, 1);
	assert_int_equal(r.rax, 1);
	assert_int_equal(r.r8, 0x11b670);
	assert_int_equal(r.r9, 3);
	assert_true(r.r15 == UINT64_MAX);
	assert_int_equal(r.rip, 0x1001a9);
	assert_int_equal(r.rflags, 0x246);
	assert_int_equal(r.cr3, 0x1b3000);
	assert_int_equal(r.gs_base, 0x109080);
	assert_int_equal(r.halted, 1);
	assert_int_equal(replay_parse_registers("EAX=1", &r, &err), REPLAY_E_FORMAT);
	free(err);
}

static void test_sha256_of_known_texts(void **state)
{
	char *dir = make_tmpdir(), *p = join(dir, "f"), hex[65];
	FILE *f;
	int i;

	(void)state;
	f = fopen(p, "w");
	fputs("abc", f);
	fclose(f);
	assert_int_equal(replay_sha256_file(p, hex), 0);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	f = fopen(p, "w"); /* 56 bytes: the padding takes a second block */
	for (i = 0; i < 56; i++)
		fputc('a', f);
	fclose(f);
	assert_int_equal(replay_sha256_file(p, hex), 0);
	assert_string_equal(hex, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
	assert_int_equal(replay_sha256_file("/nonexistent/x", hex), REPLAY_E_IO);
	rm_rf(dir);
	free(dir);
	free(p);
}

/* Disk options krewind cannot record are refused before any file is made
 * (replay/disk.c); the others are found among the QEMU arguments. */
static void disk_refused(const char *want, char *const *args)
{
	struct replay_recording r = { .dir = "/nonexistent" };
	char **disks = NULL, **rest = NULL, *err = NULL;

	assert_int_equal(replay_disks_rewrite(&r, NULL, args, NULL, &disks, &rest, &err), REPLAY_E_ARG);
	assert_non_null(err);
	if (!strstr(err, want))
		fail_msg("'%s' does not say '%s'", err, want);
	assert_null(disks);
	assert_null(rest);
	free(err);
}

static void test_disks_refused_and_found(void **state)
{
	char *blockdev[] = { "-m", "64M", "-blockdev", "driver=file,filename=x,node-name=n", NULL };
	char *bd_json[] = { "-blockdev", "{\"driver\": \"file\", \"filename\": \"x\", \"node-name\": \"n\"}", NULL };
	char *bd_nbd[] = { "-blockdev", "driver=nbd,node-name=n,server.type=unix,server.path=/s", NULL };
	char *bd_luks[] = { "-blockdev", "driver=file,node-name=f,filename=x", "-blockdev", "driver=luks,node-name=n,file=f", NULL };
	char *bd_dangling[] = { "-blockdev", "driver=qcow2,node-name=n,file=f", NULL };
	char *bd_twice[] = { "-blockdev", "driver=file,node-name=f,filename=x", "-blockdev", "driver=raw,node-name=a,file=f",
			     "-blockdev", "driver=raw,node-name=b,file=f", NULL };
	char *bd_noname[] = { "-blockdev", "driver=file,filename=x", NULL };
	char *bd_stacked[] = { "-blockdev", "driver=file,node-name=f,filename=x", "-blockdev", "driver=raw,node-name=r,file=f",
			       "-blockdev", "driver=qcow2,node-name=q,file=r", NULL };
	char *bd_opt[] = { "-blockdev", "driver=qcow2,node-name=n,file.driver=file,file.filename=x,backing=b", NULL };
	char *bd_proto[] = { "-blockdev", "driver=qcow2,node-name=n,file.driver=nbd,file.filename=x", NULL };
	char *opt[] = { "-drive", "file=a.img,werror=stop", NULL };
	char *noid[] = { "-drive", "file=a.img,if=none", NULL };
	char *nofile[] = { "-drive", "if=ide", NULL };
	char *sd[] = { "-drive", "file=a.img,if=sd", NULL };
	char *commas[] = { "-drive", "file=a,,b.img", NULL };
	char *taken[] = { "-hda", "a.img", "-drive", "file=b.img,index=0", NULL };
	char *novalue[] = { "-hda", NULL };
	char *plain[] = { "-m", "64M", "-serial", "stdio", NULL };
	char *cdrom[] = { "-m", "64M", "-cdrom", "x.iso", NULL };

	(void)state;
	disk_refused("-blockdev {\"driver\": \"file\", \"filename\": \"x\", \"node-name\": \"n\"}: JSON is not supported", bd_json);
	disk_refused("option 'server.type=unix' is not supported", bd_nbd);
	disk_refused("driver=luks is not supported under record/replay (file, raw, qcow2)", bd_luks);
	disk_refused("file=f names no -blockdev node", bd_dangling);
	disk_refused("node f is used twice", bd_twice);
	disk_refused("needs driver= and node-name=", bd_noname);
	disk_refused("driver=raw,node-name=r,file=f: only a file node can be below another node", bd_stacked);
	disk_refused("option 'backing=b' is not supported", bd_opt);
	disk_refused("option 'file.driver=nbd' is not supported", bd_proto);
	disk_refused("option 'werror=stop' is not supported", opt);
	disk_refused("if=none needs id=", noid);
	disk_refused("no file=", nofile);
	disk_refused("if=sd is not supported", sd);
	disk_refused("escaped commas", commas);
	disk_refused("IDE index 0 is taken", taken);
	disk_refused("-hda needs a value", novalue);
	assert_int_equal(replay_args_have_disk(plain), 0);
	assert_int_equal(replay_args_have_disk(cdrom), 1);
	assert_int_equal(replay_args_have_disk(blockdev), 1);
	assert_int_equal(replay_args_have_disk(NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_parses_qmp_greeting),
		cmocka_unit_test(test_json_keeps_64bit_integers_exact),
		cmocka_unit_test(test_json_unescapes_strings),
		cmocka_unit_test(test_json_parses_nested_values),
		cmocka_unit_test(test_json_reports_truncated_text),
		cmocka_unit_test(test_json_rejects_invalid_text),
		cmocka_unit_test(test_json_refuses_deep_nesting),
		cmocka_unit_test(test_json_reports_bytes_used),
		cmocka_unit_test(test_json_writer_escapes_and_round_trips),
		cmocka_unit_test(test_manifest_round_trips),
		cmocka_unit_test(test_manifest_stores_relative_paths),
		cmocka_unit_test(test_manifest_keeps_smp_mode),
		cmocka_unit_test(test_smp_refuses_host_inputs),
		cmocka_unit_test(test_smp_append_for_linux),
		cmocka_unit_test(test_manifest_without_qemu_args_is_refused),
		cmocka_unit_test(test_recording_resolves_name_dir_and_trace),
		cmocka_unit_test(test_mkdir_takes_next_free_number),
		cmocka_unit_test(test_mkdir_refuses_non_empty_output),
		cmocka_unit_test(test_replay_argv_switches_to_replay),
		cmocka_unit_test(test_replay_argv_refuses_no_rr),
		cmocka_unit_test(test_qmp_queues_events_met_before_an_answer),
		cmocka_unit_test(test_qmp_error_answer_carries_qemu_text),
		cmocka_unit_test(test_registers_parse_qemu_dump),
		cmocka_unit_test(test_sha256_of_known_texts),
		cmocka_unit_test(test_disks_refused_and_found),
	};
	return cmocka_run_group_tests_name("replay", tests, NULL, NULL);
}
