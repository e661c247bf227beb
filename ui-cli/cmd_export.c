/*
 * cmd_export.c - `krewind export REC --format perfetto|chrome-json|csv`: the
 * events for other tools. Streams the trace once; memory stays proportional
 * to the CPUs, threads and locks, never to the events.
 *
 * perfetto is Perfetto's native protobuf trace (TracePacket / TrackEvent,
 * names interned, see pbwire.h); chrome-json is the Trace Event Format that
 * Perfetto UI and chrome://tracing open. Both carry the same timeline, built
 * here once. Time: 1 guest instruction = 1 ns (chrome-json ts, in
 * microseconds, = icount / 1000). Tracks:
 *   process 1 "threads": one track per guest thread, named uniquely ("name
 *       @low-32-bits-of-address", the full address when those repeat): its
 *       trap frames ("irq 0xd1", "exception 0xe #PF", "int 0x80") nested as
 *       slices, its lock spins ("spin LOCK") inside them, EOIs and the other
 *       events (waits, signals, ...) as instants. Frames follow their thread:
 *       a context switch suspends the outgoing thread's open frames and the
 *       incoming thread's resume, so a frame ends at its own iretq even when
 *       the thread was preempted on the way out of the interrupt;
 *   process 2 "locks": one track per lock, "hold LOCK (THREAD)" slices from
 *       acquire to release (the lock's name, else its class or address);
 *   process 100+N "CPU N": a "running" track of slices named by the thread
 *       running on the CPU, the markers (serial lines, scenario, bugcheck) as
 *       instants, counters "IRQL" (every CR8 write) and "IF" (RFLAGS.IF, from
 *       the first event that has it: traces of schema 2).
 * A track never goes back in time: each vCPU counts its own instructions, so
 * an event of a thread that moved to a CPU whose count is behind is placed at
 * the track's last time. Every slice that begins also ends. What the trace
 * never closes is ended at the end with args.open = true: on a running thread
 * at its CPU's last event; on a thread switched out inside it (also
 * args.suspended = true) at the trace's last event.
 *
 * csv is one table, one row per event (RFC 4180 quoting):
 *   id,icount,vcpu,kind,pc,symbol,thread,obj,lock,a,b,text
 * with guest addresses in a and b (a switch's threads, lock_init's caller,
 * mutex_acq's owner, a bugcheck's code and first parameter) as 0x... hex.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "replay/replay.h"
#include "ui-cli/cli.h"
#include "ui-cli/pbwire.h"

static const char synopsis[] =
	"krewind export REC --format perfetto|chrome-json|csv [-o FILE] [--force] [-q] [--json]";
static const char description[] =
	"Writes the recording's events for other tools. perfetto is Perfetto's\n"
	"native protobuf trace (ui.perfetto.dev opens it; several times smaller than\n"
	"JSON); chrome-json is the Trace Event Format that Perfetto UI and\n"
	"chrome://tracing open. Both hold: per guest thread its trap frames (which\n"
	"follow the thread across context switches), lock spins and events; per\n"
	"lock its holds; per CPU the running thread and IRQL (and IF) counters,\n"
	"markers; 1 guest instruction = 1 ns. csv is one row per event (id,icount,\n"
	"vcpu,kind,pc,symbol,thread,obj,lock,a,b,text). Output goes to stdout unless\n"
	"-o is given; an existing FILE is refused unless --force. docs/report.md has\n"
	"the mapping.";

enum { OPT_JSON = 1, OPT_FORMAT, OPT_OUTPUT, OPT_FORCE, OPT_QUIET };
static const struct cli_option options[] = {
	{OPT_FORMAT, "format", 'F', "FMT", "perfetto, chrome-json or csv"},
	{OPT_OUTPUT, "output", 'o', "FILE", "write to FILE instead of stdout"},
	{OPT_FORCE, "force", 'f', NULL, "overwrite FILE if it exists"},
	{OPT_QUIET, "quiet", 'q', NULL, "no progress line"},
	{OPT_JSON, "json", 0, NULL, "with -o: print {\"path\", \"format\", \"events\", \"bytes\"} when done"},
	{0},
};

enum format { FMT_CSV, FMT_JSON, FMT_PERFETTO };

#define MAX_CPUS 64
#define MAX_DEPTH 64
#define PID_THREADS 1
#define PID_LOCKS 2
#define PID_CPU 100
/* Track ids (JSON tids, Perfetto track uuids), unique across processes. */
#define TID_LOCK0 1000000
#define TID_CPU0 2000000 /* + 4 * cpu + CPU_RUN / CPU_MARK / CPU_IRQL / CPU_IF */
enum { CPU_RUN, CPU_MARK, CPU_IRQL, CPU_IF };
#define PROCESS_UUID(pid) (1ull << 40 | (uint64_t)(pid))

/* ------------------------------------------------------------ maps */

/* Open addressing: address (not 0) -> index. */
struct addr_map {
	uint64_t *keys;
	int32_t *vals;
	size_t cap, n;
};

static size_t addr_hash(uint64_t k, size_t cap)
{
	return (size_t)(k * 0x9e3779b97f4a7c15ull >> 17) & (cap - 1);
}

static int32_t addr_get(const struct addr_map *m, uint64_t key)
{
	size_t h;

	if (m->cap == 0)
		return -1;
	for (h = addr_hash(key, m->cap); m->keys[h]; h = (h + 1) & (m->cap - 1))
		if (m->keys[h] == key)
			return m->vals[h];
	return -1;
}

static int addr_put(struct addr_map *m, uint64_t key, int32_t val)
{
	size_t h, i;

	if ((m->n + 1) * 2 > m->cap) {
		struct addr_map g = {calloc(m->cap ? m->cap * 2 : 64, sizeof(uint64_t)),
				     calloc(m->cap ? m->cap * 2 : 64, sizeof(int32_t)), m->cap ? m->cap * 2 : 64, 0};

		if (g.keys == NULL || g.vals == NULL) {
			free(g.keys);
			free(g.vals);
			return -1;
		}
		for (i = 0; i < m->cap; i++)
			if (m->keys[i])
				addr_put(&g, m->keys[i], m->vals[i]);
		free(m->keys);
		free(m->vals);
		*m = g;
	}
	for (h = addr_hash(key, m->cap); m->keys[h] && m->keys[h] != key; h = (h + 1) & (m->cap - 1))
		;
	if (m->keys[h] == 0)
		m->n++;
	m->keys[h] = key;
	m->vals[h] = val;
	return 0;
}

/* Open addressing: string -> number (interned names, label counts). */
struct str_map {
	char **keys;
	uint64_t *vals;
	size_t cap, n;
};

static size_t str_hash(const char *s, size_t cap)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (size_t)(h ^ h >> 29) & (cap - 1);
}

/* The slot of s (to read or fill), or NULL when out of memory. */
static uint64_t *str_slot(struct str_map *m, const char *s)
{
	size_t h, i;

	if ((m->n + 1) * 2 > m->cap) {
		struct str_map g = {calloc(m->cap ? m->cap * 2 : 64, sizeof(char *)),
				    calloc(m->cap ? m->cap * 2 : 64, sizeof(uint64_t)), m->cap ? m->cap * 2 : 64, 0};

		if (g.keys == NULL || g.vals == NULL) {
			free(g.keys);
			free(g.vals);
			return NULL;
		}
		for (i = 0; i < m->cap; i++)
			if (m->keys[i]) {
				for (h = str_hash(m->keys[i], g.cap); g.keys[h]; h = (h + 1) & (g.cap - 1))
					;
				g.keys[h] = m->keys[i];
				g.vals[h] = m->vals[i];
				g.n++;
			}
		free(m->keys);
		free(m->vals);
		*m = g;
	}
	for (h = str_hash(s, m->cap); m->keys[h]; h = (h + 1) & (m->cap - 1))
		if (strcmp(m->keys[h], s) == 0)
			return &m->vals[h];
	if ((m->keys[h] = strdup(s)) == NULL)
		return NULL;
	m->n++;
	m->vals[h] = 0;
	return &m->vals[h];
}

static void str_free(struct str_map *m)
{
	size_t i;

	for (i = 0; i < m->cap; i++)
		free(m->keys[i]);
	free(m->keys);
	free(m->vals);
}

/* ------------------------------------------------------------ the model */

/* Slice arguments (JSON args, Perfetto debug annotations). Keys are the
 * fixed set below, interned once in a Perfetto trace. */
enum arg_key { A_EVENT = 1, A_IRET, A_OPEN, A_SUSPENDED, A_ERROR, A_THREAD, A_NKEYS };
static const char *const arg_names[A_NKEYS] = {
	"", "event", "iret_event", "open", "suspended", "error_code", "thread",
};
enum arg_type { T_INT, T_BOOL, T_STR };
struct arg {
	enum arg_key key;
	enum arg_type type;
	int64_t i;
	const char *s;
};
#define MAX_ARGS 6

struct track {
	int pid;
	int64_t tid; /* JSON tid, Perfetto thread tid; the Perfetto uuid is index + 1 (short varints) */
	char *name;
	int counter, declared;
	uint64_t last; /* the time of its last event: a track never goes back */
};

enum frame_kind { FR_TRAP, FR_SPIN };
struct frame {
	uint8_t kind;
	int64_t x; /* vector, or lock address */
};

struct thread {
	uint64_t addr;
	char *label;
	int32_t track;
	int running; /* CPU number + 1 while it runs, else 0 */
	struct frame stack[MAX_DEPTH];
	int depth;
};

struct cpu {
	int seen;
	uint64_t last;
	int32_t cur; /* thread index, -1 none */
	int32_t nothread; /* thread index of "no thread" events on this CPU, -1 not yet */
	int32_t tracks[4];
	int running;
	int ifv;
};

struct lock {
	uint64_t addr;
	int32_t track;
	char *label;
	int held;
};

struct exporter {
	FILE *f;
	enum format fmt;
	struct db_reader *db;
	struct cli_names names;
	struct cpu cpus[MAX_CPUS];
	struct thread *threads;
	size_t nthreads, capthreads;
	struct addr_map thread_map, lock_map;
	struct lock *locks;
	size_t nlocks, caplocks;
	struct track *tracks;
	size_t ntracks, captracks;
	int pids_declared[PID_CPU + MAX_CPUS];
	int has_if;
	int64_t events;
	uint64_t last_ic;
	int first, oom;
	/* Perfetto */
	struct str_map interned;
	uint64_t next_iid;
	struct pb pkt, te, ann, in, sub;
};

static void *grow(void *p, size_t *cap, size_t n, size_t size)
{
	size_t c;
	void *q;

	if (n < *cap)
		return p;
	c = *cap ? *cap * 2 : 64;
	q = realloc(p, c * size);
	if (q)
		*cap = c;
	return q;
}

static int32_t track_new(struct exporter *x, int pid, int64_t tid, const char *name, int counter)
{
	struct track *t = grow(x->tracks, &x->captracks, x->ntracks, sizeof(*t));

	if (t == NULL)
		return -1;
	x->tracks = t;
	t = &x->tracks[x->ntracks];
	memset(t, 0, sizeof(*t));
	t->pid = pid;
	t->tid = tid;
	t->counter = counter;
	if ((t->name = strdup(name)) == NULL)
		return -1;
	return (int32_t)x->ntracks++;
}

/* ------------------------------------------------------------ chrome-json */

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

static void json_meta(struct exporter *x, const char *what, int pid, int64_t tid, const char *name)
{
	fprintf(x->f, "%s\n{\"ph\":\"M\",\"pid\":%d,\"tid\":%" PRId64 ",\"name\":\"%s\",\"args\":{\"name\":",
		x->first ? "" : ",", pid, tid, what);
	put_str(x->f, name);
	fputs("}}", x->f);
	x->first = 0;
}

static void json_args(struct exporter *x, const struct arg *args, int nargs)
{
	int i;

	fputs(",\"args\":{", x->f);
	for (i = 0; i < nargs; i++) {
		fprintf(x->f, "%s\"%s\":", i ? "," : "", arg_names[args[i].key]);
		if (args[i].type == T_STR)
			put_str(x->f, args[i].s);
		else if (args[i].type == T_BOOL)
			fputs(args[i].i ? "true" : "false", x->f);
		else
			fprintf(x->f, "%" PRId64, args[i].i);
	}
	putc('}', x->f);
}

/* ------------------------------------------------------------ perfetto */

/* TracePacket, TrackEvent, ... field numbers (perfetto/protos/perfetto/trace). */
enum {
	TRACE_PACKET = 1,
	TP_TIMESTAMP = 8, TP_SEQ_ID = 10, TP_TRACK_EVENT = 11, TP_INTERNED = 12, TP_SEQ_FLAGS = 13,
	TP_PREVIOUS_DROPPED = 42, TP_TRACK_DESCRIPTOR = 60, TP_FIRST_ON_SEQUENCE = 87,
	SEQ_CLEARED = 1, SEQ_NEEDS_STATE = 2,
	TD_UUID = 1, TD_NAME = 2, TD_PROCESS = 3, TD_THREAD = 4, TD_PARENT = 5, TD_COUNTER = 8,
	PD_PID = 1, PD_NAME = 6,
	THD_PID = 1, THD_TID = 2, THD_NAME = 5,
	TE_ANNOTATION = 4, TE_TYPE = 9, TE_NAME_IID = 10, TE_TRACK = 11, TE_NAME = 23, TE_COUNTER = 30,
	TYPE_BEGIN = 1, TYPE_END = 2, TYPE_INSTANT = 3, TYPE_COUNTER = 4,
	DA_NAME_IID = 1, DA_BOOL = 2, DA_INT = 4, DA_STRING = 6,
	ID_EVENT_NAMES = 2, ID_ANNOTATION_NAMES = 3, IN_IID = 1, IN_NAME = 2,
};

/* Appends the packet in x->pkt to the file as Trace.packet. */
static void pb_flush(struct exporter *x, int flags)
{
	struct pb out = {0};

	pb_uint(&x->pkt, TP_SEQ_ID, 1);
	if (flags)
		pb_uint(&x->pkt, TP_SEQ_FLAGS, (uint64_t)flags);
	pb_msg(&out, TRACE_PACKET, &x->pkt);
	if (out.oom || x->pkt.oom)
		x->oom = 1;
	else
		fwrite(out.p, 1, out.n, x->f);
	pb_free(&out);
	pb_clear(&x->pkt);
}

/* The first packet: starts the sequence (first on it, nothing before it to
 * rely on: state cleared) and interns the arg names. */
static void pb_start(struct exporter *x)
{
	int k;

	pb_clear(&x->in);
	for (k = 1; k < A_NKEYS; k++) {
		pb_clear(&x->sub);
		pb_uint(&x->sub, IN_IID, (uint64_t)k);
		pb_str(&x->sub, IN_NAME, arg_names[k]);
		pb_msg(&x->in, ID_ANNOTATION_NAMES, &x->sub);
	}
	pb_msg(&x->pkt, TP_INTERNED, &x->in);
	pb_uint(&x->pkt, TP_FIRST_ON_SEQUENCE, 1);
	pb_uint(&x->pkt, TP_PREVIOUS_DROPPED, 1);
	pb_flush(x, SEQ_CLEARED | SEQ_NEEDS_STATE);
	x->next_iid = 1;
}

static void pb_args(struct exporter *x, const struct arg *args, int nargs)
{
	int i;

	for (i = 0; i < nargs; i++) {
		pb_clear(&x->ann);
		pb_uint(&x->ann, DA_NAME_IID, args[i].key);
		if (args[i].type == T_STR)
			pb_str(&x->ann, DA_STRING, args[i].s);
		else
			pb_uint(&x->ann, args[i].type == T_BOOL ? DA_BOOL : DA_INT, (uint64_t)args[i].i);
		pb_msg(&x->te, TE_ANNOTATION, &x->ann);
	}
}

/* The interned id of an event name, adding it to x->in (the packet's
 * InternedData) the first time. 0 when out of memory. */
static uint64_t pb_intern(struct exporter *x, const char *name)
{
	uint64_t *slot = str_slot(&x->interned, name);

	if (slot == NULL)
		return 0;
	if (*slot == 0) {
		*slot = x->next_iid++;
		pb_clear(&x->sub);
		pb_uint(&x->sub, IN_IID, *slot);
		pb_str(&x->sub, IN_NAME, name);
		pb_msg(&x->in, ID_EVENT_NAMES, &x->sub);
	}
	return *slot;
}

/* ------------------------------------------------------------ output, both formats */

static const char *pid_name(int pid, char *buf, size_t size)
{
	if (pid == PID_THREADS)
		return "threads";
	if (pid == PID_LOCKS)
		return "locks";
	snprintf(buf, size, "CPU %d", pid - PID_CPU);
	return buf;
}

static void declare(struct exporter *x, struct track *t)
{
	char buf[32];

	if (t->declared)
		return;
	t->declared = 1;
	if (!x->pids_declared[t->pid]) {
		x->pids_declared[t->pid] = 1;
		if (x->fmt == FMT_JSON) {
			json_meta(x, "process_name", t->pid, 0, pid_name(t->pid, buf, sizeof(buf)));
		} else {
			pb_clear(&x->sub);
			pb_uint(&x->sub, PD_PID, (uint64_t)t->pid);
			pb_str(&x->sub, PD_NAME, pid_name(t->pid, buf, sizeof(buf)));
			pb_clear(&x->te);
			pb_uint(&x->te, TD_UUID, PROCESS_UUID(t->pid));
			pb_msg(&x->te, TD_PROCESS, &x->sub);
			pb_msg(&x->pkt, TP_TRACK_DESCRIPTOR, &x->te);
			pb_flush(x, 0);
		}
	}
	if (x->fmt == FMT_JSON) {
		if (!t->counter) /* a counter track is named by its events */
			json_meta(x, "thread_name", t->pid, t->tid, t->name);
		return;
	}
	pb_clear(&x->te);
	pb_uint(&x->te, TD_UUID, (uint64_t)(t - x->tracks) + 1);
	if (t->counter) {
		pb_uint(&x->te, TD_PARENT, PROCESS_UUID(t->pid));
		pb_str(&x->te, TD_NAME, t->name);
		pb_bytes(&x->te, TD_COUNTER, "", 0);
	} else {
		pb_uint(&x->te, TD_PARENT, PROCESS_UUID(t->pid));
		pb_clear(&x->sub);
		pb_uint(&x->sub, THD_PID, (uint64_t)t->pid);
		pb_uint(&x->sub, THD_TID, (uint64_t)t->tid);
		pb_str(&x->sub, THD_NAME, t->name);
		pb_msg(&x->te, TD_THREAD, &x->sub);
	}
	pb_msg(&x->pkt, TP_TRACK_DESCRIPTOR, &x->te);
	pb_flush(x, 0);
}

/* One event on track t: type TYPE_BEGIN/END/INSTANT/COUNTER. name (NULL for
 * an end) is interned in a Perfetto trace when intern is set (names that
 * repeat: vectors, locks, threads), else written out (free text). */
static void emit(struct exporter *x, int32_t ti, int type, uint64_t ic, const char *name, int intern,
		 const struct arg *args, int nargs, int64_t value)
{
	static const char *const ph[] = {"", "B", "E", "i", "C"};
	struct track *t = &x->tracks[ti];

	declare(x, t);
	if (ic < t->last)
		ic = t->last;
	t->last = ic;
	if (x->fmt == FMT_JSON) {
		fprintf(x->f, ",\n{\"ph\":\"%s\",\"pid\":%d,\"tid\":%" PRId64 ",\"ts\":", ph[type], t->pid,
			t->counter ? 0 : t->tid);
		put_ts(x->f, ic);
		if (type == TYPE_COUNTER) {
			fprintf(x->f, ",\"name\":\"%s\",\"args\":{\"%s\":%" PRId64 "}}", t->name, t->name, value);
			return;
		}
		if (name) {
			fputs(",\"name\":", x->f);
			put_str(x->f, name);
		}
		if (type == TYPE_INSTANT)
			fputs(",\"s\":\"t\"", x->f);
		json_args(x, args, nargs);
		putc('}', x->f);
		return;
	}
	pb_clear(&x->in);
	pb_clear(&x->te);
	pb_uint(&x->te, TE_TYPE, (uint64_t)type);
	pb_uint(&x->te, TE_TRACK, (uint64_t)ti + 1);
	if (name && intern) {
		uint64_t iid = pb_intern(x, name);

		if (iid == 0)
			x->oom = 1;
		pb_uint(&x->te, TE_NAME_IID, iid);
	} else if (name) {
		pb_str(&x->te, TE_NAME, name);
	}
	if (type == TYPE_COUNTER)
		pb_uint(&x->te, TE_COUNTER, (uint64_t)value);
	pb_args(x, args, nargs);
	pb_uint(&x->pkt, TP_TIMESTAMP, ic);
	if (x->in.n)
		pb_msg(&x->pkt, TP_INTERNED, &x->in);
	pb_msg(&x->pkt, TP_TRACK_EVENT, &x->te);
	pb_flush(x, (name && intern) || nargs ? SEQ_NEEDS_STATE : 0);
}

/* ------------------------------------------------------------ threads, locks, CPUs */

static struct arg arg_int(enum arg_key k, int64_t v) { return (struct arg){k, T_INT, v, NULL}; }
static struct arg arg_bool(enum arg_key k, int v) { return (struct arg){k, T_BOOL, v, NULL}; }
static struct arg arg_str(enum arg_key k, const char *s) { return (struct arg){k, T_STR, 0, s}; }

static int32_t thread_add(struct exporter *x, uint64_t addr, const char *label)
{
	struct thread *t = grow(x->threads, &x->capthreads, x->nthreads, sizeof(*t));
	int32_t i = (int32_t)x->nthreads;

	if (t == NULL)
		return -1;
	x->threads = t;
	t = &x->threads[i];
	memset(t, 0, sizeof(*t));
	t->addr = addr;
	t->track = -1;
	if ((t->label = strdup(label)) == NULL || (addr && addr_put(&x->thread_map, addr, i)))
		return -1;
	x->nthreads++;
	return i;
}

/* The threads the trace names, each with a label no other thread has: its
 * name and the low 32 bits of its address, the full address when that
 * repeats or when it has no name. */
static int threads_init(struct exporter *x, char **err)
{
	const struct db_thread_info *ti;
	struct str_map count = {0};
	char label[160];
	size_t n, i;
	int pass, rc;

	rc = db_threads(x->db, &ti, &n, err);
	if (rc != DB_OK)
		return rc;
	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < n; i++) {
			const char *name = ti[i].name;
			uint64_t *slot;

			if (name && *name)
				snprintf(label, sizeof(label), "%s @%" PRIx64, name, ti[i].addr & 0xffffffffu);
			else
				snprintf(label, sizeof(label), "0x%" PRIx64, ti[i].addr);
			if ((slot = str_slot(&count, label)) == NULL)
				goto oom;
			if (pass == 0) {
				++*slot;
				continue;
			}
			if (*slot > 1)
				snprintf(label, sizeof(label), "%s @%" PRIx64, name, ti[i].addr);
			if (thread_add(x, ti[i].addr, label) < 0)
				goto oom;
		}
	str_free(&count);
	return DB_OK;
oom:
	str_free(&count);
	*err = strdup("out of memory");
	return DB_E_NOMEM;
}

static int32_t thread_index(struct exporter *x, uint64_t addr)
{
	int32_t i = addr_get(&x->thread_map, addr);
	char label[32];

	if (i >= 0)
		return i;
	snprintf(label, sizeof(label), "0x%" PRIx64, addr);
	return thread_add(x, addr, label);
}

static int32_t thread_track(struct exporter *x, struct thread *t)
{
	if (t->track < 0)
		t->track = track_new(x, PID_THREADS, (int64_t)(t - x->threads) + 1, t->label, 0);
	return t->track;
}

static struct lock *lock_get(struct exporter *x, uint64_t addr)
{
	int32_t i = addr_get(&x->lock_map, addr);
	struct lock *l;
	const char *name;
	char label[160];

	if (i >= 0)
		return &x->locks[i];
	if ((l = grow(x->locks, &x->caplocks, x->nlocks, sizeof(*l))) == NULL)
		return NULL;
	x->locks = l;
	l = &x->locks[x->nlocks];
	memset(l, 0, sizeof(*l));
	l->addr = addr;
	name = db_lock_name(x->db, addr);
	snprintf(label, sizeof(label), "%s", name && *name ? name : db_lock_class(x->db, addr));
	if ((l->label = strdup(label)) == NULL ||
	    (l->track = track_new(x, PID_LOCKS, TID_LOCK0 + (int64_t)x->nlocks, label, 0)) < 0 ||
	    addr_put(&x->lock_map, addr, (int32_t)x->nlocks))
		return NULL;
	return &x->locks[x->nlocks++];
}

static int cpu_init(struct exporter *x, struct cpu *c, int cpu)
{
	static const char *const names[] = {"running", "markers", "IRQL", "IF"};
	int k;

	c->seen = 1;
	c->cur = c->nothread = -1;
	c->ifv = -1;
	for (k = 0; k < 4; k++)
		if ((c->tracks[k] = track_new(x, PID_CPU + cpu, TID_CPU0 + 4 * cpu + k, names[k], k >= CPU_IRQL)) < 0)
			return -1;
	return 0;
}

static void trap_name(const struct db_event *ev, char *buf, size_t size)
{
	static const char *const exc[] = {"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "",
					  "#TS", "#NP", "#SS", "#GP", "#PF", "", "#MF", "#AC", "#MC", "#XM"};

	if (ev->flags & DB_F_SOFT)
		snprintf(buf, size, "int 0x%" PRIx64, (uint64_t)ev->a);
	else if (ev->a >= 0 && ev->a < 32)
		snprintf(buf, size, "exception 0x%" PRIx64 "%s%s", (uint64_t)ev->a,
			 ev->a < 20 && *exc[ev->a] ? " " : "", ev->a < 20 ? exc[ev->a] : "");
	else
		snprintf(buf, size, "irq 0x%" PRIx64, (uint64_t)ev->a);
}

/* Ends the innermost frame of t at ic; iret is the closing event (0: the
 * trace never closes it, args.open): a trap frame's end names its iretq, a
 * spin's says nothing (its acquire begins the hold). */
static void frame_end(struct exporter *x, struct thread *t, uint64_t ic, int64_t iret, int suspended)
{
	struct frame *f = &t->stack[--t->depth];
	struct arg args[2];
	int n = 0;

	if (iret) {
		if (f->kind == FR_TRAP)
			args[n++] = arg_int(A_IRET, iret);
	} else {
		args[n++] = arg_bool(A_OPEN, 1);
		if (suspended)
			args[n++] = arg_bool(A_SUSPENDED, 1);
	}
	emit(x, thread_track(x, t), TYPE_END, ic, NULL, 0, args, n, 0);
}

static void frame_begin(struct exporter *x, struct thread *t, const struct db_event *ev, int kind, int64_t what,
			const char *name, const struct arg *args, int nargs)
{
	struct frame *f;

	if (t->depth == MAX_DEPTH) /* fold: close the innermost */
		frame_end(x, t, ev->icount, 0, 0);
	f = &t->stack[t->depth++];
	f->kind = (uint8_t)kind;
	f->x = what;
	emit(x, thread_track(x, t), TYPE_BEGIN, ev->icount, name, 1, args, nargs, 0);
}

/* The innermost frame of kind with x == what (what < 0: any), or -1. */
static int frame_find(const struct thread *t, int kind, int64_t what)
{
	int i;

	for (i = t->depth - 1; i >= 0; i--)
		if (t->stack[i].kind == kind && (what < 0 || t->stack[i].x == what))
			return i;
	return -1;
}

/* Ends frame i of t and those inside it (never closed: open). */
static void frame_close(struct exporter *x, struct thread *t, int i, uint64_t ic, int64_t ev)
{
	while (t->depth > i + 1)
		frame_end(x, t, ic, 0, 0);
	frame_end(x, t, ic, ev, 0);
}

/* Thread ti (-1: none) runs on CPU c from ev on: ends the run of the one that
 * ran (its frames stay on its own stack: suspended), starts the new one's,
 * with args.event the switch (none when the trace has no switch for it). */
static void run(struct exporter *x, struct cpu *c, int cpu, int32_t ti, const struct db_event *ev, int is_switch)
{
	struct arg args[1];

	if (c->running) {
		emit(x, c->tracks[CPU_RUN], TYPE_END, ev->icount, NULL, 0, NULL, 0, 0);
		c->running = 0;
	}
	if (c->cur >= 0 && x->threads[c->cur].running == cpu + 1)
		x->threads[c->cur].running = 0;
	c->cur = ti;
	if (ti < 0)
		return;
	x->threads[ti].running = cpu + 1;
	args[0] = arg_int(A_EVENT, ev->id);
	emit(x, c->tracks[CPU_RUN], TYPE_BEGIN, ev->icount, x->threads[ti].label, 1, args, is_switch, 0);
	c->running = 1;
}

/* The thread events of CPU c are attributed to: the one running, else a
 * "CPU N (no thread)" one. */
static struct thread *current(struct exporter *x, struct cpu *c, int cpu)
{
	char label[32];

	if (c->cur >= 0)
		return &x->threads[c->cur];
	if (c->nothread < 0) {
		snprintf(label, sizeof(label), "CPU %d (no thread)", cpu);
		c->nothread = thread_add(x, 0, label);
		if (c->nothread < 0)
			return NULL;
		x->threads[c->nothread].running = cpu + 1; /* its frames end with the CPU's */
	}
	return &x->threads[c->nothread];
}

static int on_lock(struct exporter *x, struct thread *t, const struct db_event *ev)
{
	struct lock *l = lock_get(x, ev->obj);
	char name[200];
	struct arg args[3];
	int i;

	if (l == NULL)
		return -1;
	switch (ev->kind) {
	case DB_LOCK_TRY:
		if (frame_find(t, FR_SPIN, (int64_t)ev->obj) < 0) {
			/* no args: spins are half the slices of a kernel's trace */
			snprintf(name, sizeof(name), "spin %s", l->label);
			frame_begin(x, t, ev, FR_SPIN, (int64_t)ev->obj, name, NULL, 0);
		}
		break;
	case DB_LOCK_ACQ:
	case DB_MUTEX_ACQ:
	case DB_LOCK_FAIL:
		if ((i = frame_find(t, FR_SPIN, (int64_t)ev->obj)) >= 0)
			frame_close(x, t, i, ev->icount, ev->id);
		if (ev->kind == DB_LOCK_FAIL)
			break;
		if (l->held) { /* acquired again without a release seen */
			args[0] = arg_bool(A_OPEN, 1);
			emit(x, l->track, TYPE_END, ev->icount, NULL, 0, args, 1, 0);
		}
		/* who holds it is part of the name: visible on the lock's track,
		 * and interned once per lock and thread */
		snprintf(name, sizeof(name), "hold %s (%s)", l->label, t->label);
		args[0] = arg_int(A_EVENT, ev->id);
		emit(x, l->track, TYPE_BEGIN, ev->icount, name, 1, args, 1, 0);
		l->held = 1;
		break;
	case DB_LOCK_REL:
	case DB_MUTEX_REL:
		if (l->held) {
			emit(x, l->track, TYPE_END, ev->icount, NULL, 0, NULL, 0, 0);
			l->held = 0;
		}
		break;
	}
	return 0;
}

static int trace_event(struct exporter *x, const struct db_event *ev, const char *text)
{
	char name[512];
	struct arg args[MAX_ARGS];
	int cpu = ev->vcpu, i;
	struct cpu *c;
	struct thread *t;

	if (ev->icount > x->last_ic)
		x->last_ic = ev->icount;
	if (cpu >= MAX_CPUS)
		return 0;
	c = &x->cpus[cpu];
	if (!c->seen && cpu_init(x, c, cpu))
		return -1;
	c->last = ev->icount;
	if (ev->flags & DB_F_IF)
		x->has_if = 1;
	if (x->has_if && c->ifv != !!(ev->flags & DB_F_IF)) {
		c->ifv = !!(ev->flags & DB_F_IF);
		emit(x, c->tracks[CPU_IF], TYPE_COUNTER, ev->icount, NULL, 0, NULL, 0, c->ifv);
	}
	if (ev->kind == DB_SWITCH) {
		int32_t ti = ev->b ? thread_index(x, (uint64_t)ev->b) : -1;

		if (ev->b && ti < 0)
			return -1;
		run(x, c, cpu, ti, ev, 1);
		return x->oom ? -1 : 0;
	}
	if (ev->thread && (c->cur < 0 || x->threads[c->cur].addr != ev->thread)) {
		/* the first event of the CPU, or a switch the trace does not have */
		int32_t ti = thread_index(x, ev->thread);

		if (ti < 0)
			return -1;
		run(x, c, cpu, ti, ev, 0);
	}
	if ((t = current(x, c, cpu)) == NULL)
		return -1;
	switch (ev->kind) {
	case DB_IRQL:
		emit(x, c->tracks[CPU_IRQL], TYPE_COUNTER, ev->icount, NULL, 0, NULL, 0, ev->b);
		break;
	case DB_TRAP:
		trap_name(ev, name, sizeof(name));
		args[0] = arg_int(A_EVENT, ev->id);
		args[1] = arg_int(A_ERROR, ev->b);
		frame_begin(x, t, ev, FR_TRAP, ev->a, name, args, ev->b ? 2 : 1);
		break;
	case DB_IRET:
		i = frame_find(t, FR_TRAP, ev->a);
		if (i >= 0) /* else: a frame opened before the trace began */
			frame_close(x, t, i, ev->icount, ev->id);
		break;
	case DB_EOI:
		args[0] = arg_int(A_EVENT, ev->id);
		emit(x, thread_track(x, t), TYPE_INSTANT, ev->icount, "eoi", 1, args, 1, 0);
		break;
	case DB_LOCK_TRY:
	case DB_LOCK_ACQ:
	case DB_LOCK_FAIL:
	case DB_LOCK_REL:
	case DB_MUTEX_ACQ:
	case DB_MUTEX_REL:
		if (on_lock(x, t, ev))
			return -1;
		break;
	case DB_MARKER:
	case DB_BUGCHECK:
		cli_describe_event(ev, text, &x->names, name, sizeof(name));
		args[0] = arg_int(A_EVENT, ev->id);
		args[1] = arg_str(A_THREAD, t->label);
		emit(x, c->tracks[CPU_MARK], TYPE_INSTANT, ev->icount, name, 0, args, 2, 0);
		break;
	default:
		cli_describe_event(ev, text, &x->names, name, sizeof(name));
		args[0] = arg_int(A_EVENT, ev->id);
		emit(x, thread_track(x, t), TYPE_INSTANT, ev->icount, name, 1, args, 1, 0);
		break;
	}
	return x->oom ? -1 : 0;
}

/* Ends what the trace left open: runs at their CPU's last event, frames of
 * running threads there too, frames of switched-out threads and lock holds
 * at the trace's last event. */
static void trace_finish(struct exporter *x)
{
	struct arg args[1] = {arg_bool(A_OPEN, 1)};
	size_t i;
	int cpu;

	for (i = 0; i < x->nthreads; i++) {
		struct thread *t = &x->threads[i];
		uint64_t end = t->running ? x->cpus[t->running - 1].last : x->last_ic;

		while (t->depth > 0)
			frame_end(x, t, end, 0, !t->running);
	}
	for (cpu = 0; cpu < MAX_CPUS; cpu++)
		if (x->cpus[cpu].running)
			emit(x, x->cpus[cpu].tracks[CPU_RUN], TYPE_END, x->cpus[cpu].last, NULL, 0, args, 1, 0);
	for (i = 0; i < x->nlocks; i++)
		if (x->locks[i].held)
			emit(x, x->locks[i].track, TYPE_END, x->last_ic, NULL, 0, args, 1, 0);
}

/* ------------------------------------------------------------ csv */

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

/* a or b as CSV: hex where the kind puts a guest address there. */
static void csv_payload(FILE *f, const struct db_event *ev, int which)
{
	int64_t v = which ? ev->b : ev->a;
	int addr = ev->kind == DB_SWITCH || ev->kind == DB_BUGCHECK || (ev->kind == DB_LOCK_INIT && !which) ||
		   (ev->kind == DB_MUTEX_ACQ && which);

	if (addr)
		fprintf(f, "0x%" PRIx64, (uint64_t)v);
	else
		fprintf(f, "%" PRId64, v);
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
	putc(',', x->f);
	csv_payload(x->f, ev, 0);
	putc(',', x->f);
	csv_payload(x->f, ev, 1);
	putc(',', x->f);
	csv_field(x->f, text ? text : "");
	fputs("\r\n", x->f);
}

/* ------------------------------------------------------------ the command */

static int export(struct exporter *x, struct cli_rec *r, int quiet, char **err)
{
	struct db_filter fl = {0};
	struct db_cursor *cur = NULL;
	struct cli_progress *p;
	int64_t counts[DB_KIND_MAX + 1];
	struct db_event ev;
	const char *text;
	int rc;

	rc = db_count_by_kind(r->db, counts, err);
	if (rc == DB_OK && x->fmt != FMT_CSV)
		rc = threads_init(x, err);
	if (rc == DB_OK)
		rc = db_cursor_open(r->db, &fl, &cur, err);
	if (rc != DB_OK)
		return rc;
	if (x->fmt == FMT_CSV) {
		fputs("id,icount,vcpu,kind,pc,symbol,thread,obj,lock,a,b,text\r\n", x->f);
	} else if (x->fmt == FMT_JSON) {
		fputs("{\"displayTimeUnit\":\"ns\",\"otherData\":{\"source\":\"krewind export\",\"recording\":", x->f);
		put_str(x->f, r->rec->name);
		fputs(",\"time\":\"1 guest instruction = 1 ns; ts = icount / 1000\"},\"traceEvents\":[", x->f);
		x->first = 1;
		json_meta(x, "process_name", PID_THREADS, 0, "threads");
		x->pids_declared[PID_THREADS] = 1;
	} else {
		pb_start(x);
	}
	p = cli_progress_start("export", quiet);
	cli_progress_note(p, "%" PRId64 " events", counts[0]);
	while ((rc = db_cursor_next(cur, &ev, &text)) == 1) {
		if ((++x->events & 0xfff) == 0)
			cli_progress_update(p, (uint64_t)x->events, (uint64_t)counts[0], "events");
		if (x->fmt == FMT_CSV) {
			csv_event(x, &ev, text);
		} else if (trace_event(x, &ev, text) != 0) {
			rc = DB_E_NOMEM;
			break;
		}
	}
	cli_progress_end(p);
	db_cursor_close(cur);
	if (rc < 0) {
		if (*err == NULL)
			*err = strdup(rc == DB_E_NOMEM ? "out of memory" : "reading the trace failed");
		return rc;
	}
	if (x->fmt != FMT_CSV)
		trace_finish(x);
	if (x->oom) {
		*err = strdup("out of memory");
		return DB_E_NOMEM;
	}
	if (x->fmt == FMT_JSON)
		fputs("\n]}\n", x->f);
	return DB_OK;
}

static void exporter_free(struct exporter *x)
{
	size_t i;

	for (i = 0; i < x->nthreads; i++)
		free(x->threads[i].label);
	for (i = 0; i < x->nlocks; i++)
		free(x->locks[i].label);
	for (i = 0; i < x->ntracks; i++)
		free(x->tracks[i].name);
	free(x->threads);
	free(x->locks);
	free(x->tracks);
	free(x->thread_map.keys);
	free(x->thread_map.vals);
	free(x->lock_map.keys);
	free(x->lock_map.vals);
	str_free(&x->interned);
	pb_free(&x->pkt);
	pb_free(&x->te);
	pb_free(&x->ann);
	pb_free(&x->in);
	pb_free(&x->sub);
}

int cmd_export(int argc, char **argv)
{
	static const char *const formats[] = {"csv", "chrome-json", "perfetto"};
	struct exporter x = {0};
	struct cli_args a;
	struct cli_rec r = {0};
	const char *v, *spec = NULL, *format = NULL, *output = NULL;
	char *err = NULL, *tmp = NULL;
	int json = 0, force = 0, quiet = 0, opt, rc, fd, k;
	long bytes = -1;
	FILE *f = NULL;

	cli_args_init(&a, "export", argc, argv);
	while ((opt = cli_next_opt(&a, options, &v)) != CLI_OPT_END) {
		if ((rc = cli_common_opt(&a, opt, v, &spec, synopsis, description, options)) >= 0)
			return rc;
		switch (opt) {
		case OPT_JSON: json = 1; break;
		case OPT_FORCE: force = 1; break;
		case OPT_QUIET: quiet = 1; break;
		case OPT_OUTPUT: output = v; break;
		case OPT_FORMAT: format = v; break;
		}
	}
	if (spec == NULL)
		return cli_usage_error("export", "missing the recording (REC)");
	if (format == NULL)
		return cli_usage_error("export", "missing --format (perfetto, chrome-json or csv)");
	for (k = 0; k < 3 && strcmp(format, formats[k]) != 0; k++)
		;
	if (k == 3)
		return cli_usage_error("export", "unknown format '%s' (perfetto, chrome-json or csv)", format);
	x.fmt = (enum format)k;
	if (json && output == NULL)
		return cli_usage_error("export", "--json needs -o FILE (without it the export itself is on stdout)");
	if (x.fmt == FMT_PERFETTO && output == NULL && isatty(STDOUT_FILENO))
		return cli_usage_error("export", "the perfetto format is binary: give -o FILE or redirect stdout");
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
	rc = export(&x, &r, quiet, &err);
	if (rc != DB_OK) {
		rc = cli_error_msg(rc == DB_E_NOMEM ? CLI_FAIL : CLI_USAGE, "export", err);
		goto out;
	}
	if (f) {
		int bad = fflush(f) != 0 || ferror(f);

		bytes = ftell(f);
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
			cli_json_kint(&j, "bytes", bytes);
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
	exporter_free(&x);
	cli_rec_close(&r);
	return rc;
}
