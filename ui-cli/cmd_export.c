/*
 * cmd_export.c - `krewind export REC --format chrome-json|csv`: the events
 * for other tools. Streams the trace once; memory stays proportional to the
 * CPUs, threads and locks, never to the events.
 *
 * chrome-json is the Trace Event Format that Perfetto UI and chrome://tracing
 * open. Time: 1 guest instruction = 1 ns, so ts (microseconds) = icount /
 * 1000. Tracks:
 *   pid 1 "threads":  one tid per thread, "X" slices from switch-in to switch-out;
 *   pid 2 "locks":    async "b"/"e" slices per lock, "hold" (acquired ->
 *                     released) and "spin" (try -> acquired);
 *   pid 100+N "CPU N": counter "C" IRQL (every CR8 write), tid 1 "traps"
 *                     nested "B"/"E" per trap frame (iretq closes it) with
 *                     EOIs as instants, tid 2 "markers" instants (serial
 *                     lines, scenario, bugcheck), tid 3 "other" instants
 *                     (waits, signals, mutexes, lock init).
 * What is still open when the trace ends is closed at the CPU's last event
 * with args.open = true, so every "B" has its "E" and every "b" its "e".
 *
 * csv is one table, one row per event (RFC 4180 quoting):
 *   id,icount,vcpu,kind,pc,symbol,thread,obj,lock,a,b,text
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "replay/replay.h"
#include "ui-cli/cli.h"

static const char synopsis[] = "krewind export REC --format chrome-json|csv [-o FILE] [--force] [--json]";
static const char description[] =
	"Writes the recording's events for other tools: chrome-json is the Trace\n"
	"Event Format that Perfetto UI (ui.perfetto.dev) and chrome://tracing open\n"
	"(threads, locks, IRQL counter and trap slices per CPU, markers; 1 guest\n"
	"instruction = 1 ns); csv is one row per event (id,icount,vcpu,kind,pc,\n"
	"symbol,thread,obj,lock,a,b,text). Output goes to stdout unless -o is given;\n"
	"an existing FILE is refused unless --force. docs/report.md has the mapping.";

enum { OPT_JSON = 1, OPT_FORMAT, OPT_OUTPUT, OPT_FORCE };
static const struct cli_option options[] = {
	{OPT_FORMAT, "format", 'F', "FMT", "chrome-json or csv"},
	{OPT_OUTPUT, "output", 'o', "FILE", "write to FILE instead of stdout"},
	{OPT_FORCE, "force", 'f', NULL, "overwrite FILE if it exists"},
	{OPT_JSON, "json", 0, NULL, "with -o: print {\"path\", \"format\", \"events\"} when done"},
	{0},
};

#define MAX_CPUS 64
#define MAX_DEPTH 64
#define PID_THREADS 1
#define PID_LOCKS 2
#define PID_CPU 100

struct cpu {
	int seen;
	uint64_t last;
	uint64_t run_thread, run_start;
	int64_t run_event;
	int running;
	int64_t vectors[MAX_DEPTH];
	int depth;
};

struct lock {
	uint64_t addr;
	int held;
	uint16_t cpu;
	uint64_t spinning; /* bit per CPU (< 64) with a try open */
};

struct exporter {
	FILE *f;
	struct db_reader *db;
	struct cli_names names;
	struct cpu cpus[MAX_CPUS];
	struct lock *locks;
	size_t nlocks, caplocks;
	const struct db_thread_info *threads;
	size_t nthreads;
	int64_t events;
	uint64_t last_ic;
	int first;
};

static void put_str(FILE *f, const char *s)
{
	struct cli_json j;

	/* cli_json escapes per RFC 8259 and replaces invalid UTF-8. */
	cli_json_init(&j, f);
	cli_json_str(&j, s);
}

static void put_ts(FILE *f, uint64_t icount)
{
	fprintf(f, "%" PRIu64 ".%03u", icount / 1000, (unsigned)(icount % 1000));
}

/* Starts one trace event object: {"ph":PH,"pid":PID,"tid":TID,"ts":TS,"name":NAME */
static void begin(struct exporter *x, const char *ph, int pid, int64_t tid, uint64_t icount, const char *name)
{
	fprintf(x->f, "%s\n{\"ph\":\"%s\",\"pid\":%d,\"tid\":%" PRId64 ",\"ts\":", x->first ? "" : ",", ph, pid, tid);
	put_ts(x->f, icount);
	fputs(",\"name\":", x->f);
	put_str(x->f, name);
	x->first = 0;
}

static void meta(struct exporter *x, const char *what, int pid, int64_t tid, const char *name)
{
	fprintf(x->f, "%s\n{\"ph\":\"M\",\"pid\":%d,\"tid\":%" PRId64 ",\"name\":\"%s\",\"args\":{\"name\":",
		x->first ? "" : ",", pid, tid, what);
	put_str(x->f, name);
	fputs("}}", x->f);
	x->first = 0;
}

static int cmp_thread(const void *key, const void *elem)
{
	uint64_t a = *(const uint64_t *)key, b = ((const struct db_thread_info *)elem)->addr;

	return a < b ? -1 : a > b;
}

/* The tid of a thread: its index in the threads table + 1, or, for an address
 * the table does not know, the low 31 bits of the address. */
static int64_t thread_tid(const struct exporter *x, uint64_t addr)
{
	const struct db_thread_info *t = bsearch(&addr, x->threads, x->nthreads, sizeof(*x->threads), cmp_thread);

	return t ? (t - x->threads) + 1 : (int64_t)(addr & 0x7fffffff) + 1000000;
}

static struct lock *find_lock(struct exporter *x, uint64_t addr)
{
	size_t i;

	for (i = 0; i < x->nlocks; i++)
		if (x->locks[i].addr == addr)
			return &x->locks[i];
	if (x->nlocks == x->caplocks) {
		size_t cap = x->caplocks ? x->caplocks * 2 : 16;
		struct lock *p = realloc(x->locks, cap * sizeof(*p));

		if (p == NULL)
			return NULL;
		x->locks = p;
		x->caplocks = cap;
	}
	memset(&x->locks[x->nlocks], 0, sizeof(x->locks[0]));
	x->locks[x->nlocks].addr = addr;
	return &x->locks[x->nlocks++];
}

static void end_run(struct exporter *x, struct cpu *c, int cpu, uint64_t icount, int64_t out_event)
{
	char label[64];

	if (!c->running)
		return;
	begin(x, "X", PID_THREADS, thread_tid(x, c->run_thread), c->run_start,
	      cli_thread_label(&x->names, c->run_thread, label, sizeof(label)));
	fputs(",\"dur\":", x->f);
	put_ts(x->f, icount - c->run_start);
	fprintf(x->f, ",\"args\":{\"cpu\":%d,\"in_event\":%" PRId64 ",\"out_event\":%" PRId64 "%s}}", cpu,
		c->run_event, out_event, out_event ? "" : ",\"open\":true");
	c->running = 0;
}

static void end_trap(struct exporter *x, struct cpu *c, int cpu, uint64_t icount, int64_t event)
{
	begin(x, "E", PID_CPU + cpu, 1, icount, "");
	if (event)
		fprintf(x->f, ",\"args\":{\"iret_event\":%" PRId64 "}}", event);
	else
		fputs(",\"args\":{\"open\":true}}", x->f);
	c->depth--;
}

static void lock_slice(struct exporter *x, const char *ph, const char *what, const struct lock *l, int cpu,
		       uint64_t icount, int64_t event, int open)
{
	char label[128];

	begin(x, ph, PID_LOCKS, 1, icount, what);
	fputs(",\"cat\":", x->f);
	put_str(x->f, cli_lock_label(&x->names, l->addr, label, sizeof(label)));
	if (strcmp(what, "spin") == 0)
		fprintf(x->f, ",\"id\":\"spin:0x%" PRIx64 ":%d\"", l->addr, cpu);
	else
		fprintf(x->f, ",\"id\":\"hold:0x%" PRIx64 "\"", l->addr);
	fprintf(x->f, ",\"args\":{\"cpu\":%d,\"event\":%" PRId64 "%s}}", cpu, event, open ? ",\"open\":true" : "");
}

static int on_lock(struct exporter *x, const struct db_event *ev, int cpu)
{
	struct lock *l = find_lock(x, ev->obj);
	uint64_t bit = cpu < 64 ? 1ull << cpu : 0;
	int mutex = ev->kind == DB_MUTEX_ACQ || ev->kind == DB_MUTEX_REL;

	if (l == NULL)
		return -1;
	switch (ev->kind) {
	case DB_LOCK_TRY:
		if (bit && !(l->spinning & bit)) {
			lock_slice(x, "b", "spin", l, cpu, ev->icount, ev->id, 0);
			l->spinning |= bit;
		}
		break;
	case DB_LOCK_ACQ:
	case DB_MUTEX_ACQ:
		if (!mutex && (l->spinning & bit)) {
			lock_slice(x, "e", "spin", l, cpu, ev->icount, ev->id, 0);
			l->spinning &= ~bit;
		}
		if (l->held) /* acquired again without a release seen */
			lock_slice(x, "e", "hold", l, l->cpu, ev->icount, ev->id, 1);
		lock_slice(x, "b", "hold", l, cpu, ev->icount, ev->id, 0);
		l->held = 1;
		l->cpu = (uint16_t)cpu;
		break;
	case DB_LOCK_REL:
	case DB_MUTEX_REL:
		if (l->held) {
			lock_slice(x, "e", "hold", l, cpu, ev->icount, ev->id, 0);
			l->held = 0;
		}
		break;
	}
	return 0;
}

static int chrome_event(struct exporter *x, const struct db_event *ev, const char *text)
{
	char name[512], label[64];
	int cpu = ev->vcpu;
	struct cpu *c;

	if (ev->icount > x->last_ic)
		x->last_ic = ev->icount;
	if (cpu >= MAX_CPUS)
		return 0;
	c = &x->cpus[cpu];
	if (!c->seen) {
		snprintf(name, sizeof(name), "CPU %d", cpu);
		meta(x, "process_name", PID_CPU + cpu, 0, name);
		meta(x, "thread_name", PID_CPU + cpu, 1, "traps");
		meta(x, "thread_name", PID_CPU + cpu, 2, "markers");
		meta(x, "thread_name", PID_CPU + cpu, 3, "other");
		c->seen = 1;
	}
	c->last = ev->icount;
	if (!c->running && ev->thread && ev->kind != DB_SWITCH) {
		c->running = 1;
		c->run_thread = ev->thread;
		c->run_start = ev->icount;
		c->run_event = 0;
	}
	switch (ev->kind) {
	case DB_SWITCH:
		end_run(x, c, cpu, ev->icount, ev->id);
		c->running = 1;
		c->run_thread = (uint64_t)ev->b;
		c->run_start = ev->icount;
		c->run_event = ev->id;
		break;
	case DB_IRQL:
		begin(x, "C", PID_CPU + cpu, 0, ev->icount, "IRQL");
		fprintf(x->f, ",\"args\":{\"IRQL\":%" PRId64 "}}", ev->b);
		break;
	case DB_TRAP:
		if (c->depth == MAX_DEPTH)
			end_trap(x, c, cpu, ev->icount, 0);
		snprintf(name, sizeof(name), "trap 0x%" PRIx64, (uint64_t)ev->a);
		begin(x, "B", PID_CPU + cpu, 1, ev->icount, name);
		fprintf(x->f, ",\"args\":{\"event\":%" PRId64 ",\"vector\":%" PRId64 ",\"error_code\":%" PRId64 "}}",
			ev->id, ev->a, ev->b);
		c->vectors[c->depth++] = ev->a;
		break;
	case DB_IRET: {
		int i = c->depth - 1;

		while (i >= 0 && ev->a >= 0 && c->vectors[i] != ev->a)
			i--;
		if (i < 0)
			break; /* a frame opened before the trace began */
		while (c->depth > i + 1)
			end_trap(x, c, cpu, ev->icount, 0);
		end_trap(x, c, cpu, ev->icount, ev->id);
		break;
	}
	case DB_EOI:
		begin(x, "i", PID_CPU + cpu, 1, ev->icount, "eoi");
		fprintf(x->f, ",\"s\":\"t\",\"args\":{\"event\":%" PRId64 "}}", ev->id);
		break;
	case DB_LOCK_TRY:
	case DB_LOCK_ACQ:
	case DB_LOCK_REL:
	case DB_MUTEX_ACQ:
	case DB_MUTEX_REL:
		if (on_lock(x, ev, cpu))
			return -1;
		if (ev->kind == DB_MUTEX_ACQ || ev->kind == DB_MUTEX_REL)
			goto other;
		break;
	case DB_MARKER:
	case DB_BUGCHECK:
		cli_describe_event(ev, text, &x->names, name, sizeof(name));
		begin(x, "i", PID_CPU + cpu, 2, ev->icount, name);
		fprintf(x->f, ",\"s\":\"%s\",\"args\":{\"event\":%" PRId64 "}}", ev->kind == DB_BUGCHECK ? "g" : "t",
			ev->id);
		break;
	default:
	other:
		cli_describe_event(ev, text, &x->names, name, sizeof(name));
		begin(x, "i", PID_CPU + cpu, 3, ev->icount, name);
		fprintf(x->f, ",\"s\":\"t\",\"args\":{\"event\":%" PRId64 ",\"thread\":", ev->id);
		put_str(x->f, cli_thread_label(&x->names, ev->thread, label, sizeof(label)));
		fputs("}}", x->f);
		break;
	}
	return 0;
}

static void chrome_finish(struct exporter *x)
{
	size_t i;
	int cpu;

	for (cpu = 0; cpu < MAX_CPUS; cpu++) {
		struct cpu *c = &x->cpus[cpu];

		if (!c->seen)
			continue;
		while (c->depth > 0)
			end_trap(x, c, cpu, c->last, 0);
		end_run(x, c, cpu, c->last, 0);
	}
	for (i = 0; i < x->nlocks; i++) {
		struct lock *l = &x->locks[i];

		for (cpu = 0; cpu < 64; cpu++)
			if (l->spinning & (1ull << cpu))
				lock_slice(x, "e", "spin", l, cpu, x->last_ic, 0, 1);
		if (l->held)
			lock_slice(x, "e", "hold", l, l->cpu, x->last_ic, 0, 1);
	}
}

static void csv_field(FILE *f, const char *s)
{
	if (strpbrk(s, ",\"\r\n") == NULL) {
		fputs(s, f);
		return;
	}
	putc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			putc('"', f);
		putc(*s, f);
	}
	putc('"', f);
}

static void csv_event(struct exporter *x, const struct db_event *ev, const char *text)
{
	char sym[160], label[128], obj[24] = "";
	const char *kind = db_kind_name(ev->kind);

	fprintf(x->f, "%" PRId64 ",%" PRIu64 ",%u,%s,0x%" PRIx64 ",", ev->id, ev->icount, ev->vcpu, kind ? kind : "?",
		ev->pc);
	csv_field(x->f, x->names.symbol(x->names.ctx, ev->pc, sym, sizeof(sym)));
	putc(',', x->f);
	csv_field(x->f, ev->thread ? cli_thread_label(&x->names, ev->thread, label, sizeof(label)) : "");
	if (ev->obj)
		snprintf(obj, sizeof(obj), "0x%" PRIx64, ev->obj);
	fprintf(x->f, ",%s,", obj);
	csv_field(x->f, ev->obj ? x->names.lock(x->names.ctx, ev->obj) : "");
	fprintf(x->f, ",%" PRId64 ",%" PRId64 ",", ev->a, ev->b);
	csv_field(x->f, text ? text : "");
	fputs("\r\n", x->f);
}

static int export(struct exporter *x, struct cli_rec *r, int csv, char **err)
{
	struct db_filter fl = {0};
	struct db_cursor *cur = NULL;
	struct db_event ev;
	const char *text;
	size_t i;
	int rc;

	rc = db_threads(r->db, &x->threads, &x->nthreads, err);
	if (rc != DB_OK)
		return rc;
	for (i = 1; i < x->nthreads; i++)
		if (x->threads[i - 1].addr > x->threads[i].addr) {
			x->nthreads = 0; /* not sorted: fall back to address-derived tids */
			break;
		}
	rc = db_cursor_open(r->db, &fl, &cur, err);
	if (rc != DB_OK)
		return rc;
	if (csv) {
		fputs("id,icount,vcpu,kind,pc,symbol,thread,obj,lock,a,b,text\r\n", x->f);
	} else {
		fputs("{\"displayTimeUnit\":\"ns\",\"otherData\":{\"source\":\"krewind export\",\"recording\":", x->f);
		put_str(x->f, r->rec->name);
		fputs(",\"time\":\"1 guest instruction = 1 ns; ts = icount / 1000\"},\"traceEvents\":[", x->f);
		x->first = 1;
		meta(x, "process_name", PID_THREADS, 0, "threads");
		meta(x, "process_name", PID_LOCKS, 0, "locks");
		meta(x, "thread_name", PID_LOCKS, 1, "locks");
		for (i = 0; i < x->nthreads; i++) {
			char label[64];

			meta(x, "thread_name", PID_THREADS, (int64_t)i + 1,
			     cli_thread_label(&x->names, x->threads[i].addr, label, sizeof(label)));
		}
	}
	while ((rc = db_cursor_next(cur, &ev, &text)) == 1) {
		x->events++;
		if (csv) {
			csv_event(x, &ev, text);
		} else if (chrome_event(x, &ev, text) != 0) {
			rc = DB_E_NOMEM;
			break;
		}
	}
	db_cursor_close(cur);
	if (rc < 0) {
		if (*err == NULL)
			*err = strdup(rc == DB_E_NOMEM ? "out of memory" : "reading the trace failed");
		return rc;
	}
	if (!csv) {
		chrome_finish(x);
		fputs("\n]}\n", x->f);
	}
	return DB_OK;
}

int cmd_export(int argc, char **argv)
{
	struct exporter x = {0};
	struct cli_args a;
	struct cli_rec r = {0};
	const char *v, *spec = NULL, *format = NULL, *output = NULL;
	char *err = NULL, *tmp = NULL;
	int json = 0, force = 0, csv = 0, opt, rc, fd;
	FILE *f = NULL;

	cli_args_init(&a, "export", argc, argv);
	while ((opt = cli_next_opt(&a, options, &v)) != CLI_OPT_END) {
		if ((rc = cli_common_opt(&a, opt, v, &spec, synopsis, description, options)) >= 0)
			return rc;
		switch (opt) {
		case OPT_JSON: json = 1; break;
		case OPT_FORCE: force = 1; break;
		case OPT_OUTPUT: output = v; break;
		case OPT_FORMAT: format = v; break;
		}
	}
	if (spec == NULL)
		return cli_usage_error("export", "missing the recording (REC)");
	if (format == NULL)
		return cli_usage_error("export", "missing --format (chrome-json or csv)");
	if (strcmp(format, "csv") == 0)
		csv = 1;
	else if (strcmp(format, "chrome-json") != 0)
		return cli_usage_error("export", "unknown format '%s' (chrome-json or csv)", format);
	if (json && output == NULL)
		return cli_usage_error("export", "--json needs -o FILE (without it the export itself is on stdout)");
	if (output && !force && access(output, F_OK) == 0)
		return cli_error(CLI_USAGE, "export: %s exists; use --force to overwrite it", output);
	rc = cli_rec_open(spec, &r);
	if (rc != CLI_OK)
		return rc;
	if (output) {
		if (asprintf(&tmp, "%s.tmp.XXXXXX", output) < 0) {
			tmp = NULL;
			rc = cli_error(CLI_FAIL, "out of memory");
			goto out;
		}
		fd = mkstemp(tmp);
		if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
			rc = cli_error(CLI_USAGE, "export: %s: %s", output, strerror(errno));
			if (fd >= 0)
				close(fd);
			goto out;
		}
		fchmod(fd, 0644);
	}
	x.f = f ? f : stdout;
	x.db = r.db;
	cli_names_from_db(&x.names, r.db);
	rc = export(&x, &r, csv, &err);
	if (rc != DB_OK) {
		rc = cli_error_msg(rc == DB_E_NOMEM ? CLI_FAIL : CLI_USAGE, "export", err);
		goto out;
	}
	if (f) {
		int bad = fflush(f) != 0 || ferror(f);

		bad |= fclose(f) != 0;
		f = NULL;
		if (bad || (force ? rename(tmp, output) : link(tmp, output)) != 0) {
			rc = cli_error(errno == EEXIST ? CLI_USAGE : CLI_FAIL, "export: %s: %s", output,
				       strerror(errno));
			goto out;
		}
		if (json) {
			struct cli_json j;

			cli_json_init(&j, stdout);
			cli_json_object(&j);
			cli_json_kstr(&j, "path", output);
			cli_json_kstr(&j, "format", format);
			cli_json_kint(&j, "events", x.events);
			cli_json_close(&j);
			cli_json_end(&j);
		}
	}
	rc = CLI_OK;
out:
	if (f)
		fclose(f);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	free(x.locks);
	cli_rec_close(&r);
	return rc;
}
