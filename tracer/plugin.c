/*
 * plugin.c - libkrewind.so, the QEMU TCG plugin that records a kernel's events.
 *
 *   -plugin build/tracer/libkrewind.so,db=FILE[,probe=FILE][,symbols=ELF]
 *
 * Decides at translation time which few instructions matter (lidt, mov cr8,
 * wrmsr, iretq, out dx,al, int N, trap handler entries found in the IDT,
 * probed function entries and their rets or jumps to a return thunk, 32-bit
 * stores that may be an xAPIC EOI) and hangs one callback on each. Every block
 * also adds its instructions to an inline per-vCPU counter (count.c), so each
 * event carries the exact count of instructions retired before it on its
 * vCPU, the count QEMU's record/replay uses. With several
 * vCPUs on one host thread (single-threaded TCG, -icount) the count is the
 * machine's and the vCPU is told by its GS base ("Several vCPUs" below). Each event
 * carries RFLAGS.IF, the vCPU's execution context (kept per thread from the
 * open trap frames and probe `context` functions), and the preemption count
 * and thread id where the probe declares them. Events go to the trace through
 * db/db.h's writer queue; counters of the work done go to its meta at exit. How each event is found and what it
 * costs: docs/tracer.md.
 *
 * All state is in the one context object `the` (QEMU plugins get no user
 * pointer in most callbacks). Per-vCPU state is only touched by its vCPU
 * thread; shared tables are under the.lock.
 */
#include <glib.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <qemu-plugin.h>

#include "db/db.h"
#include "tracer/count.h"
#include "tracer/gdbstub.h"
#include "tracer/tracer.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define TRACER_VERSION     "krewind-tracer 2"
#define TRAP_DEPTH         32
#define SERIAL_PORT        0x3f8
#define MSR_X2APIC_EOI     0x80b
#define MSR_APIC_BASE      0x1b
#define XAPIC_DEFAULT_BASE 0xfee00000ull
#define IDT_RESCAN_INSNS   (1ull << 22)
#define RFLAGS_IF          (1ull << 9)
#define COST_SAMPLE        16 /* time one callback (and one lock hold) in this many */

/* Roles of an instrumented instruction (a site). */
enum {
	ROLE_TRAP = 1,  /* first instruction of an IDT handler */
	ROLE_ENTRY = 2, /* first instruction of a probed function */
	ROLE_RET = 4,   /* a ret in a return range: a probed function or one it tail-calls */
};

struct site {
	uint64_t pc;
	unsigned roles;
	int vector;                /* ROLE_TRAP: lowest vector whose gate points here */
	const struct probe *entry; /* ROLE_ENTRY */
	struct insn_info insn;
};

/* A site in the blocks where it is instruction i of n: the callbacks'
 * user data, so that they know their count (count_back). */
struct siteref {
	const struct site *s;
	unsigned back;
};

struct range {
	uint64_t lo, hi;
};

/* What runs on a thread: its open trap frames and probe `context` calls,
 * innermost last. ctx is the execution context inside the entry. */
struct ctx_entry {
	int16_t vec;  /* a trap frame's vector; -1 for a context function */
	uint8_t ctx;  /* enum db_ctx */
};
struct trap_stack {
	int n;
	struct ctx_entry e[TRAP_DEPTH];
};

/* A probed call in flight, keyed by the stack slot of its return address. */
struct frame {
	const struct probe *probe;
	uint64_t icount, thread, caller;
	int64_t val[PROBE_MAX_OPS];
	char *text;
};

/* What the plugin did, per vCPU (summed into meta "tracer_counters" at exit).
 * cb_cycles: TSC cycles in callbacks, timed on one callback in COST_SAMPLE. */
struct counters {
	uint64_t site, trap, entry, ret, iret, store, store_eoi, reg_reads, mem_reads, events;
	uint64_t cb_calls, cb_cycles, store_cycles; /* store callbacks: all timed (they are rare) */
};

struct vcpu {
	struct qemu_plugin_register *reg[PROBE_NREGS];
	struct qemu_plugin_register *gs_base, *fs_base, *kgs_base, *cr8_reg, *efer_reg, *cr2_reg, *eflags_reg;
	GByteArray *buf;
	uint64_t regs[PROBE_NREGS + 1]; /* + RFLAGS */
	unsigned loaded;         /* bit r: regs[r] (or seg[r - REG_SEG]) is current for this callback */
	uint64_t seg[3];         /* segment bases: fs, MSR_KERNEL_GS_BASE, gs */
	int seg_ok[3];
	uint64_t pc_at, pc_val;  /* REG_PREEMPT: the preempt count at pc_at, read with the thread */
	int user_gs;             /* this callback runs before swapgs (a trap from or an iret to CPL 3):
	                            the kernel's GS base is in MSR_KERNEL_GS_BASE */
	int pending_int;         /* vector of the `int N` about to run, -1 if none */
	uint64_t tid_thread;     /* the thread whose tid is cached */
	int32_t tid;
	uint64_t ts_thread;      /* the thread whose trap stack is cached */
	struct trap_stack *ts;
	struct counters c;
	int64_t cr8;             /* last known CR8 (IRQL); -1 unknown */
	uint64_t thread;         /* from the last switch, when no `thread` declaration */
	uint64_t named_thread;   /* last thread we made sure has a name */
	uint64_t last_scan;      /* icount of the last IDT scan */
	struct trap_stack traps; /* when the current thread is unknown */
	char serial[256];
	size_t serial_len;
	uint64_t lost, lost_from, lost_to; /* events refused since the last DB_MARK_LOST */
};

static struct tracer {
	qemu_plugin_id_t id;
	struct db_writer *w;
	struct probe_file *probe;
	struct elfsym_table *syms;
	struct vcpu *vcpus;
	int nvcpus;
	GMutex lock; /* guards everything below */
	struct insn_decoder *dec;
	GHashTable *handlers; /* handler pc -> vector + 1 */
	GHashTable *entries;  /* function address -> struct probe * */
	GHashTable *sites;    /* pc -> struct site * (sites live until exit) */
	GHashTable *siterefs; /* site | back << 48 -> struct siteref * (as long) */
	GPtrArray *all_sites;
	GArray *ret_ranges;  /* struct range: where the returns of probed calls are */
	GArray *eoi_ranges;  /* struct range: probe `eoi` functions, whose 32-bit stores may be the EOI */
	GHashTable *frames;  /* return-address slot -> struct frame * */
	GHashTable *tstacks; /* thread -> struct trap_stack * */
	GHashTable *named;   /* thread -> the name last given to it (tid:name when declared) */
	GHashTable *thunks;  /* return thunk address -> 1 */
	GHashTable *tb_starts; /* first pc of every block translated so far (a set) */
	uint64_t idt_base;
	unsigned idt_limit;
	uint64_t apic_base;
	int resetting;
	/* several vCPUs on one host thread (see "Several vCPUs") */
	int serial;
	uint64_t gcount;      /* instructions retired by the whole machine */
	int fresh;            /* the block translated last has not run yet */
	uint64_t fresh_pc;    /* its first pc */
	GHashTable *gs_votes; /* kernel GS base -> uint32_t[nvcpus] votes */
	GByteArray *idbuf;
	/* stop=N: hold the machine before instruction N (serial mode) */
	int stopping;
	uint64_t stop_at;
	const char *stopfile;
	GArray *regs;         /* qemu_plugin_reg_descriptor of vCPU 0, for the stop report */
	/* what recording costs (meta tracer_counters, docs/tracer.md "Cost") */
	uint64_t setup_ns, resets;
	uint64_t locks, lock_cycles, lock_t0; /* the.lock: acquisitions, sampled hold time */
	uint64_t tsc0, mono0;                 /* at install, to convert cycles to ns */
	/* gdb=SOCK: the hold serves gdb (gdbstub.c), which moves the machine on */
	const char *gdb_path;
	uint64_t gdb_end;     /* gdbend=N: the recording's last count, a hold there is its end */
	int gdb_armed;        /* held once: gdb's step and breakpoints are checked */
	int step_vcpu;        /* stepping this vCPU to its next instruction, -1 if not */
	int cur_vcpu;         /* who runs the current block, -1 before the first */
	uint64_t *last_ic;    /* per vCPU: the count of its last instruction before it was switched out */
	uint64_t *resumed_at; /* per vCPU: the count it was switched in at */
	uint64_t *out_pc;     /* per vCPU: the pc of its last instruction before it was switched out */
	uint64_t last_pc;     /* the pc of the machine's last instruction */
} the;

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
static void on_exit_cb(qemu_plugin_id_t id, void *p);
static void retranslate(void);
static void on_vcpu_init(qemu_plugin_id_t id, unsigned int vcpu);

/* ------------------------------------------------------------------ cost */

static uint64_t cycles(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __builtin_ia32_rdtsc();
#else
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
#endif
}

static uint64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* the.lock, counted, one hold in COST_SAMPLE timed */
static void lock(void)
{
	g_mutex_lock(&the.lock);
	the.lock_t0 = ++the.locks % COST_SAMPLE ? 0 : cycles();
}

static void unlock(void)
{
	if (the.lock_t0)
		the.lock_cycles += cycles() - the.lock_t0;
	g_mutex_unlock(&the.lock);
}

/* ------------------------------------------------------------ guest access */

static uint64_t le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	while (n--)
		v = (v << 8) | p[n];
	return v;
}

static uint64_t read_handle(struct vcpu *v, struct qemu_plugin_register *h, int *ok)
{
	int n;

	if (!h) {
		*ok = 0;
		return 0;
	}
	v->c.reg_reads++;
	g_byte_array_set_size(v->buf, 0);
	n = qemu_plugin_read_register(h, v->buf);
	*ok = n > 0;
	return n > 0 ? le(v->buf->data, n > 8 ? 8 : (unsigned)n) : 0;
}

static uint64_t reg(struct vcpu *v, int r)
{
	int ok;

	if (!(v->loaded & (1u << r))) {
		v->regs[r] = read_handle(v, v->reg[r], &ok);
		v->loaded |= 1u << r;
	}
	return v->regs[r];
}

#define REG_RFLAGS PROBE_NREGS
#define REG_SEG    (PROBE_NREGS + 1) /* loaded bits of v->seg[]: fs, kernel gs, gs */
#define REG_PREEMPT (REG_SEG + 3)    /* loaded bit of v->pc_at/pc_val */
#define PERCPU_SPAN 256              /* read the thread and the preempt count at once within this */

static uint64_t rflags(struct vcpu *v)
{
	int ok;

	if (!(v->loaded & (1u << REG_RFLAGS))) {
		v->regs[REG_RFLAGS] = read_handle(v, v->eflags_reg, &ok);
		v->loaded |= 1u << REG_RFLAGS;
	}
	return v->regs[REG_RFLAGS];
}

/* Reads n <= 8 bytes of guest virtual memory; 0 on success. */
static int peek(struct vcpu *v, uint64_t addr, unsigned n, uint64_t *val)
{
	v->c.mem_reads++;
	g_byte_array_set_size(v->buf, 0);
	if (!qemu_plugin_read_memory_vaddr(addr, v->buf, n))
		return -1;
	*val = le(v->buf->data, n);
	return 0;
}

/* Reads a NUL-terminated string of at most size-1 bytes, page by page. */
static void peek_string(struct vcpu *v, uint64_t addr, char *out, size_t size)
{
	size_t len = 0;

	while (len + 1 < size) {
		size_t chunk = 0x1000 - ((addr + len) & 0xfff), i;

		if (chunk > size - 1 - len)
			chunk = size - 1 - len;
		g_byte_array_set_size(v->buf, 0);
		if (!qemu_plugin_read_memory_vaddr(addr + len, v->buf, chunk))
			break;
		for (i = 0; i < chunk && v->buf->data[i]; i++)
			out[len + i] = (char)v->buf->data[i];
		len += i;
		if (i < chunk)
			break;
	}
	out[len] = '\0';
}

static uint64_t icount_now(unsigned vcpu)
{
	return the.serial ? the.gcount : count_now(vcpu);
}

/* ------------------------------------------------------------ several vCPUs */

/*
 * Multi-threaded TCG (one host thread per vCPU, QEMU's default) loads the vCPU
 * index at run time: callbacks get the right one and the inline per-vCPU
 * counters are exact.
 *
 * Single-threaded TCG (-icount, -accel tcg,thread=single) runs every vCPU on
 * one host thread, round-robin, and they share translation blocks. QEMU 10.0
 * then bakes the index of the vCPU that *translated* a block into its
 * callbacks, and its inline ops scale that constant in place (plugin-gen.c
 * gen_cpu_index / gen_plugin_u64_ptr): from vCPU 1 on, a block's second
 * inline op addresses slot 8, then 64, ... and QEMU crashes. So with several
 * vCPUs on one thread (the.serial) the plugin uses no inline op:
 * - every instruction has one callback that counts it in the.gcount, the
 *   machine's instruction count (QEMU's own icount in that mode, one host
 *   thread: no atomics needed); events carry it, a global order and the
 *   coordinate a re-execution stops at;
 * - the vCPU of an event is told from its own state: the kernel's GS base,
 *   per CPU in every SMP x86-64 kernel. Which vCPU owns a base is learnt at
 *   the first run of a freshly translated block, which the vCPU that
 *   translated it runs (votes, in case it did not); a base not learnt yet, or
 *   none (early boot, firmware), falls back to the baked index.
 */
static int serial_mode(int nvcpus)
{
	gchar *cmd = NULL;
	gsize len = 0, i;
	int serial = 0;

	if (nvcpus < 2 || !g_file_get_contents("/proc/self/cmdline", &cmd, &len, NULL))
		return 0;
	for (i = 0; i < len; i += strlen(cmd + i) + 1)
		if (strcmp(cmd + i, "-icount") == 0 || strcmp(cmd + i, "--icount") == 0 ||
		    strstr(cmd + i, "thread=single"))
			serial = 1;
	g_free(cmd);
	return serial;
}

static uint64_t id_reg(struct qemu_plugin_register *h)
{
	int n;

	if (!h)
		return 0;
	g_byte_array_set_size(the.idbuf, 0);
	n = qemu_plugin_read_register(h, the.idbuf);
	return n > 0 ? le(the.idbuf->data, n > 8 ? 8 : (unsigned)n) : 0;
}

static int gs_owner(uint64_t gs)
{
	uint32_t *n = gs ? g_hash_table_lookup(the.gs_votes, GSIZE_TO_POINTER(gs)) : NULL;
	int best = -1, i;

	for (i = 0; n && i < the.nvcpus; i++)
		if (n[i] && (best < 0 || n[i] > n[best]))
			best = i;
	return best;
}

/* The vCPU running this callback; baked is the index QEMU passed, pc the
 * callback's instruction (learn: it may start a block). */
static unsigned identify(unsigned baked, uint64_t pc, int learn)
{
	struct vcpu *any = &the.vcpus[0]; /* register handles are the same on every vCPU */
	uint64_t gs;
	int who;

	if (!the.serial)
		return baked < (unsigned)the.nvcpus ? baked : 0;
	gs = id_reg(any->gs_base);
	if (learn && the.fresh && pc == the.fresh_pc) {
		the.fresh = 0;
		if (gs && baked < (unsigned)the.nvcpus) {
			uint32_t *n = g_hash_table_lookup(the.gs_votes, GSIZE_TO_POINTER(gs));

			if (!n) {
				n = g_new0(uint32_t, the.nvcpus);
				g_hash_table_insert(the.gs_votes, GSIZE_TO_POINTER(gs), n);
			}
			n[baked]++;
		}
	}
	if ((who = gs_owner(gs)) >= 0 || (who = gs_owner(id_reg(any->kgs_base))) >= 0)
		return (unsigned)who;
	/* A base nobody voted for yet, seen in code another vCPU translated (an
	 * AP running boot code the first AP already ran): drop every
	 * translation once, so the blocks its vCPU runs next are fresh and vote. */
	if (gs && !g_hash_table_contains(the.gs_votes, GSIZE_TO_POINTER(gs))) {
		g_hash_table_insert(the.gs_votes, GSIZE_TO_POINTER(gs), g_new0(uint32_t, the.nvcpus));
		retranslate();
	}
	return baked < (unsigned)the.nvcpus ? baked : 0;
}

/* Serial mode: counts an instruction without a site; the first one of a
 * block also learns who runs it when the block is fresh. */
/*
 * stop=N (a re-execution's exact stop, replay/smp.c): before instruction N of
 * the machine, write what the vCPU that runs it holds to stopfile (renamed
 * into place when complete) and keep the vCPU thread here. With one host
 * thread for all vCPUs that freezes the whole machine at that instruction,
 * virtual time included. When the reader deletes the file (or after 10
 * minutes) the trace is closed, complete up to the stop, and QEMU ends.
 * With gdb=SOCK the hold serves gdb instead (below).
 */
static void report(unsigned vcpu, uint64_t pc)
{
	gchar *tmp = g_strconcat(the.stopfile, ".tmp", NULL);
	FILE *f = fopen(tmp, "w");
	guint i;

	if (f) {
		fprintf(f, "icount %" PRIu64 "\nvcpu %u\npc 0x%" PRIx64 "\n", the.gcount, vcpu, pc);
		g_byte_array_set_size(the.idbuf, 0);
		if (qemu_plugin_read_memory_vaddr(pc, the.idbuf, 16)) {
			fprintf(f, "code ");
			for (i = 0; i < 16; i++)
				fprintf(f, "%02x", the.idbuf->data[i]);
			fprintf(f, "\n");
		}
		for (i = 0; the.regs && i < the.regs->len; i++) {
			qemu_plugin_reg_descriptor *d = &g_array_index(the.regs, qemu_plugin_reg_descriptor, i);

			if (strncmp(d->name, "st", 2) && strncmp(d->name, "xmm", 3) && strncmp(d->name, "ymm", 3) &&
			    strncmp(d->name, "f", 1))
				fprintf(f, "%s 0x%" PRIx64 "\n", d->name, id_reg(d->handle));
		}
		if (fclose(f) == 0)
			rename(tmp, the.stopfile);
	}
	g_free(tmp);
}

/*
 * gdb=SOCK: who runs a block is noted at its first instruction (a vCPU
 * switch happens only between blocks), with who(): identify() without its
 * learning, which could retranslate and so differ from the recorded run.
 * That gives the count of each vCPU's previous instruction (reverse-stepi)
 * and the vCPU a step waits for.
 */
static unsigned who(unsigned baked)
{
	struct vcpu *any = &the.vcpus[0];
	int w;

	if ((w = gs_owner(id_reg(any->gs_base))) >= 0 || (w = gs_owner(id_reg(any->kgs_base))) >= 0)
		return (unsigned)w;
	return baked < (unsigned)the.nvcpus ? baked : 0;
}

static void on_gdb_block(unsigned int vcpu, void *udata)
{
	int v = (int)who(vcpu);

	(void)udata;
	if (v != the.cur_vcpu) {
		if (the.cur_vcpu >= 0) {
			the.last_ic[the.cur_vcpu] = the.gcount - 1;
			the.out_pc[the.cur_vcpu] = the.last_pc;
		}
		the.resumed_at[v] = the.gcount;
		the.cur_vcpu = v;
	}
}

static void hold(unsigned baked, uint64_t pc, int signal)
{
	unsigned vcpu = the.gdb_path ? who(baked) : identify(baked, pc, 0);
	struct gdbstub_stop st = { .vcpu = (int)vcpu, .nvcpus = the.nvcpus, .pc = pc, .icount = the.gcount,
	                           .signal = signal, .out_pc = the.out_pc, .out_ic = the.last_ic };
	struct gdbstub_resume r;
	int waited;

	if (!the.gdb_armed)
		report(vcpu, pc);
	if (!the.gdb_path) {
		for (waited = 0; waited < 60000 && access(the.stopfile, F_OK) == 0; waited++)
			g_usleep(10000);
		on_exit_cb(the.id, NULL); /* the trace up to here, complete */
		_exit(0);
	}
	st.prev = (int)vcpu == the.cur_vcpu && the.gcount > the.resumed_at[vcpu] ? the.gcount - 1
	                                                                        : the.last_ic[vcpu];
	gdbstub_serve(&st, &r);
	if (r.action == GDBSTUB_END) {
		on_exit_cb(the.id, NULL);
		_exit(0);
	}
	the.gdb_armed = 1;
	the.stop_at = r.action == GDBSTUB_CONTINUE ? r.until : UINT64_MAX;
	the.step_vcpu = r.action == GDBSTUB_STEP ? r.vcpu : -1;
}

/* Before each instruction of a stopping run: hold here? */
static void maybe_hold(unsigned baked, uint64_t pc)
{
	the.last_pc = pc; /* the machine's last instruction, when on_gdb_block reads it */
	if (the.gcount == the.stop_at)
		hold(baked, pc, the.gdb_armed && the.gcount == the.gdb_end ? 3 : 5);
	else if (!the.gdb_armed)
		return;
	else if (the.gcount == the.gdb_end)
		hold(baked, pc, 3);
	else if (the.step_vcpu >= 0 ? the.cur_vcpu == the.step_vcpu : gdbstub_breakpoint(pc))
		hold(baked, pc, 5);
	else if ((the.gcount & 0xfffff) == 0 && the.step_vcpu < 0 && gdbstub_interrupted())
		hold(baked, pc, 2);
}

/* Serial mode: counts an instruction without a site; the first one of a
 * block also learns who runs it when the block is fresh. */
static void on_count(unsigned int vcpu, void *udata)
{
	if (the.stopping)
		maybe_hold(vcpu, GPOINTER_TO_SIZE(udata));
	the.gcount++;
}

static void on_block(unsigned int vcpu, void *udata)
{
	if (the.stopping)
		maybe_hold(vcpu, GPOINTER_TO_SIZE(udata));
	if (the.fresh && GPOINTER_TO_SIZE(udata) == the.fresh_pc)
		identify(vcpu, the.fresh_pc, 1);
	the.gcount++;
}

static int64_t irql(struct vcpu *v)
{
	int ok;

	if (v->cr8 < 0) {
		uint64_t cr8 = read_handle(v, v->cr8_reg, &ok);

		v->cr8 = ok ? (int64_t)(cr8 & 0xf) : 0;
	}
	return v->cr8;
}

/* The thread id of t (`thread-id`), -1 if not declared or unreadable;
 * cached per vCPU until the thread changes or a switch is seen. */
static int32_t thread_id(struct vcpu *v, uint64_t t)
{
	uint64_t id;

	if (!t || !the.probe || !the.probe->tid_len)
		return -1;
	if (t != v->tid_thread) {
		v->tid_thread = t;
		v->tid = peek(v, t + (uint64_t)the.probe->tid_off, the.probe->tid_len, &id) ? -1
		                                                                            : (int32_t)(id & 0x7fffffff);
	}
	return v->tid;
}

/* Names thread t from its `thread-name` field: the first time it is seen, and
 * again at every switch to it (thread objects are reused by new threads, and
 * a thread's name changes when it execs). With `thread-id`, the name goes to
 * the thread (t, tid). */
static void name_thread(struct vcpu *v, uint64_t t, int refresh)
{
	char name[65], key[96];
	const char *old;
	int32_t tid;

	if (!t || !the.probe || !the.probe->name_len || (!refresh && t == v->named_thread))
		return;
	v->named_thread = t;
	lock();
	old = g_hash_table_lookup(the.named, GSIZE_TO_POINTER(t));
	unlock();
	if (old && !refresh)
		return;
	peek_string(v, t + (uint64_t)the.probe->name_off, name, the.probe->name_len + 1);
	tid = refresh ? (v->tid_thread = 0, thread_id(v, t)) : thread_id(v, t);
	snprintf(key, sizeof(key), "%d:%s", tid, name);
	if (!name[0] || (old && strcmp(old, key) == 0))
		return;
	db_writer_name_thread(the.w, t, tid, name);
	lock();
	g_hash_table_replace(the.named, GSIZE_TO_POINTER(t), g_strdup(key));
	unlock();
}

/* The segment base the probe's per-CPU places are relative to: the kernel's
 * GS base, in MSR_KERNEL_GS_BASE before swapgs (v->user_gs). */
static int seg_base(struct vcpu *v, enum probe_seg seg, uint64_t *base)
{
	/* read once per callback: the thread and the preempt count both need it */
	int slot = seg == PROBE_SEG_FS ? 0 : v->user_gs ? 1 : 2, ok;

	if (seg == PROBE_SEG_NONE) {
		*base = 0;
		return 0;
	}
	if (!(v->loaded & (1u << (REG_SEG + slot)))) {
		v->seg[slot] = read_handle(v, slot == 0 ? v->fs_base : slot == 1 ? v->kgs_base : v->gs_base, &ok);
		v->seg_ok[slot] = ok;
		v->loaded |= 1u << (REG_SEG + slot);
	}
	*base = v->seg[slot];
	return v->seg_ok[slot] ? 0 : -1;
}

/*
 * Reads the thread pointer at base + thread_off. The preemption count that
 * every event also reads is, in the kernels that declare both, a per-CPU
 * variable a few bytes away (Linux 6.1: current_task and __preempt_count 64
 * bytes apart; 6.2+: both in pcpu_hot): when it is on the same segment and
 * page, one read of the span gets both (one page walk instead of two), and
 * preempt_count() takes its value from it.
 */
static int peek_thread(struct vcpu *v, uint64_t base, uint64_t *t)
{
	const struct probe_file *pf = the.probe;
	uint64_t at = base + (uint64_t)pf->thread_off, pat = base + (uint64_t)pf->preempt_off, lo, hi;

	if (!pf->preempt_len || pf->preempt_seg != pf->thread_seg)
		return peek(v, at, 8, t);
	lo = at < pat ? at : pat;
	hi = at + 8 > pat + pf->preempt_len ? at + 8 : pat + pf->preempt_len;
	if (hi - lo > PERCPU_SPAN || lo >> 12 != (hi - 1) >> 12)
		return peek(v, at, 8, t);
	v->c.mem_reads++;
	g_byte_array_set_size(v->buf, 0);
	if (!qemu_plugin_read_memory_vaddr(lo, v->buf, hi - lo))
		return -1;
	*t = le(v->buf->data + (at - lo), 8);
	v->pc_at = pat;
	v->pc_val = le(v->buf->data + (pat - lo), pf->preempt_len);
	v->loaded |= 1u << REG_PREEMPT;
	return 0;
}

static uint64_t current_thread(struct vcpu *v)
{
	uint64_t t = v->thread, base;

	if (the.probe && (the.probe->thread_seg != PROBE_SEG_NONE || the.probe->thread_abs)) {
		if (seg_base(v, the.probe->thread_seg, &base) || peek_thread(v, base, &t))
			t = 0;
	}
	name_thread(v, t, 0);
	return t;
}

/* The preemption count (`preempt-count`), -1 if not declared or unreadable.
 * Bit 31 is dropped: x86 Linux keeps its inverted need-resched flag there. */
static int32_t preempt_count(struct vcpu *v)
{
	uint64_t base, val, at;

	if (!the.probe || !the.probe->preempt_len || seg_base(v, the.probe->preempt_seg, &base))
		return -1;
	at = base + (uint64_t)the.probe->preempt_off;
	if ((v->loaded & (1u << REG_PREEMPT)) && v->pc_at == at)
		val = v->pc_val;
	else if (peek(v, at, the.probe->preempt_len, &val))
		return -1;
	return (int32_t)(val & 0x7fffffff);
}

static struct trap_stack *trap_stack(struct vcpu *v, uint64_t thread);

static uint8_t context_of(const struct trap_stack *ts)
{
	return ts->n ? ts->e[ts->n - 1].ctx : DB_CTX_PROCESS;
}

/* Where the probe says which bits of the preemption count mean a context,
 * the count decides (as in_hardirq() and in_serving_softirq() do): the code
 * between a hardirq's irq_exit and its iret, where Linux preempts on the way
 * out, is process context though its trap frame is still open. A trap and
 * its iret keep the frame's context (the count moves after the entry and
 * before the return). */
static void context_from_count(struct db_event *ev)
{
	const struct probe_file *pf = the.probe;
	uint32_t pc = (uint32_t)ev->preempt;

	if (!pf->ctx_hardirq && !pf->ctx_softirq && !pf->ctx_nmi)
		return;
	ev->ctx = pc & pf->ctx_nmi ? DB_CTX_NMI
	          : pc & pf->ctx_hardirq ? DB_CTX_HARDIRQ
	          : pc & pf->ctx_softirq ? DB_CTX_SOFTIRQ : DB_CTX_PROCESS;
	if (pc & pf->ctx_bh)
		ev->flags |= DB_F_DEFER_OFF;
}

/* An event on thread with what every event carries: context, IF, preempt
 * count, tid. */
static struct db_event event(struct vcpu *v, unsigned vcpu, int kind, uint64_t ic, uint64_t pc, uint64_t thread,
                             uint64_t obj, int64_t a, int64_t b)
{
	struct db_event ev = {
	    .icount = ic,
	    .pc = pc,
	    .thread = thread,
	    .obj = obj,
	    .a = a,
	    .b = b,
	    .vcpu = (uint16_t)vcpu,
	    .kind = (uint8_t)kind,
	    .ctx = context_of(trap_stack(v, thread)),
	    .flags = rflags(v) & RFLAGS_IF ? DB_F_IF : 0,
	    .preempt = preempt_count(v),
	    .tid = thread_id(v, thread),
	};

	if (ev.preempt >= 0 && kind != DB_TRAP && kind != DB_IRET)
		context_from_count(&ev);
	return ev;
}

/* Events the queue refused since the last one it took: a DB_MARK_LOST marker
 * says how many and where, as soon as the queue takes one again (or at exit),
 * so a trace shows where it has a hole and not only that it has one. */
static void report_loss(struct vcpu *v, const struct db_event *at)
{
	char text[128];
	struct db_event m = {.icount = v->lost_to, .pc = at->pc, .thread = at->thread, .obj = v->lost,
	                     .a = DB_MARK_LOST, .b = (int64_t)v->lost_from, .vcpu = at->vcpu, .kind = DB_MARKER,
	                     .ctx = at->ctx, .preempt = -1, .tid = -1};

	snprintf(text, sizeof(text), "%" PRIu64 " events lost (trace queue full) from icount %" PRIu64 " to %" PRIu64,
	         v->lost, v->lost_from, v->lost_to);
	if (db_writer_push_text(the.w, &m, text) == DB_OK)
		v->lost = 0;
}

static void submit(struct vcpu *v, const struct db_event *ev, const char *text)
{
	int rc;

	v->c.events++;
	if (v->lost)
		report_loss(v, ev);
	rc = text ? db_writer_push_text(the.w, ev, text) : db_writer_push(the.w, ev);
	if (rc != DB_OK) {
		if (!v->lost++)
			v->lost_from = ev->icount;
		v->lost_to = ev->icount;
	}
}

static void push(struct vcpu *v, unsigned vcpu, int kind, uint64_t ic, uint64_t pc, uint64_t thread, uint64_t obj,
                 int64_t a, int64_t b, const char *text)
{
	struct db_event ev = event(v, vcpu, kind, ic, pc, thread, obj, a, b);

	submit(v, &ev, text);
}

/* ------------------------------------------------------------------- traps */

static struct trap_stack *trap_stack(struct vcpu *v, uint64_t thread)
{
	struct trap_stack *s;

	if (!thread)
		return &v->traps;
	if (thread == v->ts_thread)
		return v->ts;
	lock();
	s = g_hash_table_lookup(the.tstacks, GSIZE_TO_POINTER(thread));
	if (!s) {
		s = g_new0(struct trap_stack, 1);
		g_hash_table_insert(the.tstacks, GSIZE_TO_POINTER(thread), s);
	}
	unlock();
	v->ts_thread = thread;
	v->ts = s;
	return s;
}

static void ctx_push(struct trap_stack *ts, int vec, uint8_t ctx)
{
	if (ts->n == TRAP_DEPTH) {
		memmove(ts->e, ts->e + 1, sizeof(ts->e) - sizeof(ts->e[0]));
		ts->n--;
	}
	ts->e[ts->n++] = (struct ctx_entry){(int16_t)vec, ctx};
}

static int pushes_error_code(int vec)
{
	return vec == 8 || (vec >= 10 && vec <= 14) || vec == 17 || vec == 21 || vec == 29 || vec == 30;
}

/*
 * A fault raised while an instruction runs: QEMU rolls the instruction back,
 * and its own count with it, to before that instruction; the plugin counted
 * it already (serial mode: its callback ran; else its block counted it and
 * what follows it, count_fault). That is the case for faults raised by
 * helpers and memory accesses: #DE, #TS, #NP, #SS, #GP, #AC, #MF/#XM and data
 * #PF. Faults QEMU raises at translation time (#UD, #NM, privilege checks,
 * int3/int n: the last instruction of their block, counted by QEMU too) and
 * instruction-fetch #PF (CR2 inside the faulting instruction: never
 * translated, never counted) need nothing. frame: where the trap frame's RIP
 * is.
 */
static int rolled_back(struct vcpu *v, int vec, uint64_t frame)
{
	uint64_t rip, cr2;
	int ok;

	switch (vec) {
	case 0:
	case 10:
	case 11:
	case 12:
	case 13:
	case 16:
	case 17:
	case 19:
		return 1;
	case 14:
		cr2 = read_handle(v, v->cr2_reg, &ok);
		if (!ok || peek(v, frame, 8, &rip))
			return 0;
		return cr2 - rip >= 16;
	}
	return 0;
}

/*
 * A trap: the CPU has pushed [error code,] RIP, CS, RFLAGS on the handler's
 * stack. The interrupted context's IF and CPL come from that frame; from CPL 3
 * the kernel's GS base is still in MSR_KERNEL_GS_BASE. An external interrupt
 * (vector >= 32, not an `int N` just executed) opens hardirq context, vector
 * 2 nmi; exceptions and software traps keep the context they interrupted.
 */
static void on_trap(struct vcpu *v, unsigned vcpu, const struct site *s, uint64_t ic)
{
	uint64_t err = 0, cs = 0, fl = 0, thread, rsp;
	int vec = s->vector, soft = v->pending_int == vec, errc = pushes_error_code(vec) && !soft;
	struct trap_stack *ts;
	struct db_event ev;
	uint8_t ctx;

	v->c.trap++;
	v->pending_int = -1;
	rsp = reg(v, PROBE_RSP);
	if (errc && peek(v, rsp, 8, &err))
		err = 0;
	rsp += errc ? 8 : 0;
	if (vec < 32 && !soft && rolled_back(v, vec, rsp)) {
		uint64_t rip;

		if (the.serial) {
			the.gcount--;
			ic--;
		} else if (!peek(v, rsp, 8, &rip)) {
			ic -= count_fault(vcpu, rip);
		}
	}
	if (peek(v, rsp + 8, 8, &cs) || peek(v, rsp + 16, 8, &fl))
		cs = fl = 0;
	v->user_gs = (cs & 3) == 3;
	thread = current_thread(v);
	ts = trap_stack(v, thread);
	ctx = vec == 2 ? DB_CTX_NMI : vec >= 32 && !soft ? DB_CTX_HARDIRQ : context_of(ts);
	ctx_push(ts, vec, ctx);
	/* the trap's context is the handler's; its IF the interrupted code's */
	ev = event(v, vcpu, DB_TRAP, ic, s->pc, thread, 0, vec, (int64_t)err);
	ev.flags = (uint8_t)((fl & RFLAGS_IF ? DB_F_IF : 0) | (v->user_gs ? DB_F_USER : 0) | (soft ? DB_F_SOFT : 0));
	v->user_gs = 0;
	submit(v, &ev, NULL);
}

/* Reads the IDT and records the handler of every present gate. Returns 1 if
 * a new handler starts a block already translated (without its trap
 * callback); a handler no block starts at yet is instrumented when the first
 * interrupt through it translates its block. Caller holds no lock. */
static int scan_idt(struct vcpu *v)
{
	uint8_t idt[256 * 16];
	uint64_t base;
	unsigned n, i;
	int changed = 0;

	lock();
	base = the.idt_base;
	n = (the.idt_limit + 1) / 16;
	unlock();
	if (n > 256)
		n = 256;
	if (!n)
		return 0;
	g_byte_array_set_size(v->buf, 0);
	if (!base || !qemu_plugin_read_memory_vaddr(base, v->buf, n * 16))
		return 0;
	memcpy(idt, v->buf->data, n * 16);
	lock();
	for (i = 0; i < n; i++) {
		const uint8_t *g = idt + 16 * i;
		uint64_t pc = le(g, 2) | le(g + 6, 2) << 16 | le(g + 8, 4) << 32;
		gpointer old;

		if (!(g[5] & 0x80) || !pc)
			continue;
		old = g_hash_table_lookup(the.handlers, GSIZE_TO_POINTER(pc));
		if (!old) {
			g_hash_table_insert(the.handlers, GSIZE_TO_POINTER(pc), GSIZE_TO_POINTER(i + 1));
			changed |= g_hash_table_contains(the.tb_starts, GSIZE_TO_POINTER(pc));
		}
	}
	unlock();
	return changed;
}

static void after_reset(qemu_plugin_id_t id)
{
	qemu_plugin_register_vcpu_init_cb(id, on_vcpu_init);
	qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
	qemu_plugin_register_atexit_cb(id, on_exit_cb, NULL);
	lock();
	the.resetting = 0;
	unlock();
}

/* New handlers may already be translated without their trap callback:
 * dropping every translation (and re-registering our callbacks) fixes that. */
static void retranslate(void)
{
	int go;

	lock();
	go = !the.resetting;
	the.resetting = 1;
	unlock();
	if (go) {
		the.resets++;
		qemu_plugin_reset(the.id, after_reset);
	}
}

static void on_lidt(struct vcpu *v, const struct site *s)
{
	uint64_t ea = insn_mem_addr(&s->insn.mem, (uint64_t[PROBE_NREGS]){0}, s->pc, s->insn.len);
	uint64_t limit, base, efer;
	int r, ok;

	/* Firmware switches between real and protected mode with lidt all the
	 * time; only a long-mode IDT (EFER.LMA) has the 16-byte gates we read. */
	efer = read_handle(v, v->efer_reg, &ok);
	if (ok && !(efer & (1u << 10)))
		return;

	if (s->insn.mem.base < PROBE_NREGS || s->insn.mem.index < PROBE_NREGS) {
		uint64_t regs[PROBE_NREGS];

		for (r = 0; r < PROBE_NREGS; r++)
			regs[r] = (s->insn.mem.base == r || s->insn.mem.index == r) ? reg(v, r) : 0;
		ea = insn_mem_addr(&s->insn.mem, regs, s->pc, s->insn.len);
	}
	if (peek(v, ea, 2, &limit) || peek(v, ea + 2, 8, &base))
		return;
	lock();
	the.idt_base = base;
	the.idt_limit = (unsigned)limit;
	unlock();
	if (scan_idt(v))
		retranslate();
}

/*
 * iretq pops RIP, CS, RFLAGS. One that returns to the very next instruction
 * in the same mode is an iret to self (Linux's sync_core, a serializing
 * trick): it closes no trap frame (DB_F_NOFRAME). Otherwise it closes the
 * innermost open trap frame (and any context function left open above it).
 * The event's context, IF and DB_F_USER are the context returned to; returning
 * to CPL 3, swapgs has already put the kernel's GS base in
 * MSR_KERNEL_GS_BASE.
 */
static void on_iretq(struct vcpu *v, unsigned vcpu, const struct site *s, uint64_t ic)
{
	uint64_t rsp = reg(v, PROBE_RSP), rip = 0, cs = 0, fl = 0, thread;
	struct trap_stack *ts;
	struct db_event ev;
	int vec = -1, noframe;

	v->c.iret++;
	if (peek(v, rsp, 8, &rip) || peek(v, rsp + 8, 8, &cs) || peek(v, rsp + 16, 8, &fl))
		rip = cs = fl = 0;
	noframe = rip && rip == s->pc + s->insn.len && (cs & 3) == 0;
	v->user_gs = (cs & 3) == 3;
	thread = current_thread(v);
	ts = trap_stack(v, thread);
	if (!noframe) {
		while (ts->n && ts->e[ts->n - 1].vec < 0)
			ts->n--;
		if (ts->n)
			vec = ts->e[--ts->n].vec;
	}
	ev = event(v, vcpu, DB_IRET, ic, s->pc, thread, 0, vec, 0);
	ev.flags = (uint8_t)((fl & RFLAGS_IF ? DB_F_IF : 0) | (v->user_gs ? DB_F_USER : 0) |
	                     (noframe ? DB_F_NOFRAME : 0));
	v->user_gs = 0;
	submit(v, &ev, NULL);
	/* A gate set after the last lidt is found here, a little later (docs/tracer.md). */
	if (ic - v->last_scan >= IDT_RESCAN_INSNS) {
		v->last_scan = ic;
		if (scan_idt(v))
			retranslate();
	}
}

/* ---------------------------------------------------------- probed calls */

static int64_t operand(struct vcpu *v, const struct probe_loc *l)
{
	uint64_t x, val;

	switch (l->kind) {
	case PROBE_LOC_REG:
		x = reg(v, l->reg) + (uint64_t)l->add;
		break;
	case PROBE_LOC_MEM:
		/* [SYMBOL+N]: disp is the address */
		x = l->reg == PROBE_NREGS ? 0 : reg(v, l->reg);
		/* a NULL pointer (e.g. no timeout) reads as absent, and so does a
		 * NULL pointer read with an offset to add (container_of of NULL) */
		if ((!x && l->reg != PROBE_NREGS) || peek(v, x + (uint64_t)l->disp, l->width, &val) ||
		    (l->add && !val))
			return INT64_MIN;
		return (int64_t)(val + (uint64_t)l->add);
	default:
		return 0;
	}
	if (l->width < 8)
		x &= (1ull << (8 * l->width)) - 1;
	return (int64_t)x;
}

static void string_operand(struct vcpu *v, const struct probe_loc *l, char *out, size_t size)
{
	uint64_t p = l->reg == PROBE_NREGS ? 0 : reg(v, l->reg);

	out[0] = '\0';
	if (l->deref && ((!p && l->reg != PROBE_NREGS) || peek(v, p + (uint64_t)l->disp, 8, &p)))
		return;
	if (p)
		peek_string(v, p, out, size);
}

/* A module was loaded (module-load): its symbol table, which the kernel
 * keeps in guest memory with final addresses (Linux: mod->kallsyms, all of
 * the module's symbols until its init has run), joins the trace's symbols,
 * so that the module's locks and functions have names. A marker says so. */
#define MODULE_MAX_SYMBOLS 65536

static void module_loaded(struct vcpu *v, unsigned vcpu, uint64_t ic, uint64_t pc, uint64_t thread, uint64_t mod)
{
	const struct probe_file *pf = the.probe;
	char name[64] = "", sym[128], text[160];
	uint64_t ks = 0, tab = 0, num = 0, str = 0;
	size_t added = 0;

	if (mod)
		peek_string(v, mod + (uint64_t)pf->mod_name_off, name, sizeof(name));
	if (!mod || peek(v, mod + (uint64_t)pf->mod_kallsyms_off, 8, &ks) || !ks ||
	    peek(v, ks + (uint64_t)pf->mod_symtab_off, 8, &tab) || peek(v, ks + (uint64_t)pf->mod_num_off, 4, &num) ||
	    peek(v, ks + (uint64_t)pf->mod_strtab_off, 8, &str))
		num = 0;
	if (num > MODULE_MAX_SYMBOLS)
		num = MODULE_MAX_SYMBOLS;
	for (uint64_t i = 0; i < num; i++) {
		/* Elf64_Sym: st_name u32, st_info u8, st_other u8, st_shndx u16, st_value u64, st_size u64 */
		g_byte_array_set_size(v->buf, 0);
		if (!qemu_plugin_read_memory_vaddr(tab + i * 24, v->buf, 24))
			break;
		const uint8_t *e = v->buf->data;
		uint64_t at = le(e + 8, 8), size = le(e + 16, 8), strx = le(e, 4);
		unsigned type = e[4] & 0xf, shndx = (unsigned)le(e + 6, 2);
		if (!strx || !at || shndx == 0 || type > 2) /* FUNC, OBJECT, NOTYPE only */
			continue;
		peek_string(v, str + strx, sym, sizeof(sym));
		if (*sym && db_writer_add_symbol(the.w, at, size, sym) == DB_OK)
			added++;
	}
	snprintf(text, sizeof(text), "module %s loaded: %zu symbols", *name ? name : "?", added);
	push(v, vcpu, DB_MARKER, ic, pc, thread, mod, DB_MARK_TEXT, 0, text);
}

static uint16_t lockop(const struct probe *pr, const int64_t *val)
{
	int64_t sub = pr->kind != PROBE_LOCK_RELEASE && pr->op[PROBE_OP_SUBCLASS].kind ? val[PROBE_OP_SUBCLASS] : 0;

	return DB_LOCKOP(pr->flavor, pr->irq, (uint8_t)(sub == INT64_MIN ? 0 : sub));
}

/* Emits the event of a probe whose operands are in val/text (at entry, or at
 * the return for at=return probes). caller: the return address at entry. */
static void emit(struct vcpu *v, unsigned vcpu, const struct probe *pr, uint64_t ic, uint64_t pc,
                 uint64_t thread, const int64_t *val, const char *text, uint64_t caller)
{
	int64_t lvl = irql(v);
	struct db_event ev;

	switch (pr->kind) {
	case PROBE_RAISE:
	case PROBE_LOWER:
		push(v, vcpu, DB_IRQL, ic, pc, thread,
		     pr->kind == PROBE_RAISE ? PROBE_IRQL_RAISE : PROBE_IRQL_LOWER, lvl, val[0], NULL);
		break;
	case PROBE_LOCK_RELEASE:
		ev = event(v, vcpu, DB_LOCK_REL, ic, pc, thread, (uint64_t)val[0], lvl,
		           pr->op[PROBE_OP_RESTORE].kind ? val[PROBE_OP_RESTORE] : 0);
		ev.lockop = lockop(pr, val);
		ev.caller = caller;
		submit(v, &ev, NULL);
		break;
	case PROBE_LOCK_INIT:
		ev = event(v, vcpu, DB_LOCK_INIT, ic, pc, thread, (uint64_t)val[0], (int64_t)caller, 0);
		ev.lockop = lockop(pr, val);
		ev.caller = caller;
		submit(v, &ev, NULL);
		break;
	case PROBE_SWITCH:
		push(v, vcpu, DB_SWITCH, ic, pc, (uint64_t)val[0], 0, val[0], val[1], NULL);
		/* both re-read: a process that exec'd and exits before it is
		 * switched in again is named by its last switch-out (Linux's
		 * comm changes at exec) */
		name_thread(v, (uint64_t)val[0], 1);
		name_thread(v, (uint64_t)val[1], 1);
		v->thread = (uint64_t)val[1];
		v->tid_thread = 0;
		break;
	case PROBE_MUTEX_ACQUIRE:
	case PROBE_MUTEX_RELEASE:
	case PROBE_SIGNAL:
		ev = event(v, vcpu, pr->kind == PROBE_MUTEX_ACQUIRE ? DB_MUTEX_ACQ
		                    : pr->kind == PROBE_MUTEX_RELEASE ? DB_MUTEX_REL : DB_SIGNAL,
		           ic, pc, thread, (uint64_t)val[0], lvl, pr->kind == PROBE_MUTEX_ACQUIRE ? val[1] : 0);
		if (pr->kind != PROBE_SIGNAL) {
			ev.lockop = DB_LOCKOP(DB_LF_MUTEX, DB_LI_NONE, 0);
			ev.caller = caller;
		}
		submit(v, &ev, NULL);
		break;
	case PROBE_BUGCHECK:
		push(v, vcpu, DB_BUGCHECK, ic, pc, thread, 0, val[0], val[1], text && *text ? text : NULL);
		break;
	case PROBE_PANIC:
		push(v, vcpu, DB_BUGCHECK, ic, pc, thread, 0, 0, 0, text && *text ? text : "panic");
		break;
	case PROBE_RESULT:
		push(v, vcpu, DB_MARKER, ic, pc, thread, (uint64_t)val[0], DB_MARK_RESULT, val[1], "self-test result");
		break;
	case PROBE_SCENARIO:
		push(v, vcpu, DB_MARKER, ic, pc, thread, 0, DB_MARK_SCENARIO, 0, text ? text : "");
		break;
	case PROBE_MARKER:
		push(v, vcpu, DB_MARKER, ic, pc, thread, 0, DB_MARK_TEXT, 0, text ? text : "");
		break;
	case PROBE_DEFER_QUEUE:
	case PROBE_DEFER_RUN:
		push(v, vcpu, pr->kind == PROBE_DEFER_QUEUE ? DB_DEFER_QUEUE : DB_DEFER_RUN, ic, pc, thread,
		     pr->op[0].kind ? (uint64_t)val[0] : 0, 0, 0, NULL);
		break;
	case PROBE_SLEEP:
		ev = event(v, vcpu, DB_SLEEP, ic, pc, thread, 0, lvl, pr->op[0].kind ? val[0] : INT64_MIN);
		ev.caller = caller;
		submit(v, &ev, NULL);
		break;
	case PROBE_SYSCALL:
		push(v, vcpu, DB_SYSCALL, ic, pc, thread, 0, val[0], 0, NULL);
		break;
	case PROBE_MODULE_LOAD:
		module_loaded(v, vcpu, ic, pc, thread, (uint64_t)val[0]);
		break;
	default:
		break;
	}
}

/* Leaves the innermost context function of ts (and whatever was left open
 * above it). */
static void ctx_pop_function(struct trap_stack *ts)
{
	int i;

	for (i = ts->n - 1; i >= 0; i--)
		if (ts->e[i].vec < 0) {
			ts->n = i;
			return;
		}
}

static void on_entry(struct vcpu *v, unsigned vcpu, const struct probe *pr, uint64_t ic)
{
	int64_t val[PROBE_MAX_OPS] = {0};
	char text[256] = "";
	uint64_t thread = current_thread(v), rsp = reg(v, PROBE_RSP), caller;
	struct frame *old;
	struct db_event ev;
	int i;

	v->c.entry++;
	if (peek(v, rsp, 8, &caller))
		caller = 0;
	for (i = 0; i < PROBE_MAX_OPS; i++) {
		if (pr->op[i].kind == PROBE_LOC_STR)
			string_operand(v, &pr->op[i], text, sizeof(text));
		else
			val[i] = operand(v, &pr->op[i]);
	}
	switch (pr->kind) {
	case PROBE_LOCK_ACQUIRE:
	case PROBE_LOCK_TRYACQUIRE:
		ev = event(v, vcpu, DB_LOCK_TRY, ic, pr->addr, thread, (uint64_t)val[0], irql(v), 0);
		ev.lockop = lockop(pr, val);
		ev.caller = caller;
		ev.flags |= pr->kind == PROBE_LOCK_TRYACQUIRE ? DB_F_TRY : 0;
		submit(v, &ev, NULL);
		break;
	case PROBE_WAIT:
		ev = event(v, vcpu, DB_WAIT, ic, pr->addr, thread, (uint64_t)val[0], irql(v),
		           pr->op[1].kind ? val[1] : INT64_MIN);
		ev.caller = caller;
		submit(v, &ev, NULL);
		break;
	case PROBE_CONTEXT:
		ctx_push(trap_stack(v, thread), -1, pr->ctx);
		break;
	default:
		if (!pr->at_return) {
			emit(v, vcpu, pr, ic, pr->addr, thread, val, text, caller);
			return;
		}
	}
	if (probe_needs_return(pr)) {
		struct frame *f = g_new0(struct frame, 1);

		f->probe = pr;
		f->icount = ic;
		f->thread = thread;
		f->caller = caller;
		memcpy(f->val, val, sizeof(val));
		f->text = text[0] ? g_strdup(text) : NULL;
		lock();
		old = g_hash_table_lookup(the.frames, GSIZE_TO_POINTER(rsp));
		g_hash_table_replace(the.frames, GSIZE_TO_POINTER(rsp), f);
		unlock();
		/* A probed function tail-called another (Linux's __do_softirq jumps
		 * to handle_softirqs): one return ends both; the outer one's
		 * context ends here, and only the inner one is waited for. */
		if (old) {
			if (old->probe->kind == PROBE_CONTEXT)
				ctx_pop_function(trap_stack(v, thread));
			g_free(old->text);
			g_free(old);
		}
	}
}

/* A ret (or a jmp to a return thunk) in a return range: rsp points at the
 * return address, so the frame keyed by that slot is the call being left. */
static void on_ret(struct vcpu *v, unsigned vcpu, const struct site *s, uint64_t ic)
{
	uint64_t rsp = reg(v, PROBE_RSP), thread;
	const struct probe *pr;
	struct db_event ev;
	struct frame *f;
	uint64_t got;

	lock();
	/* the slot of the return address identifies the call being left, also
	 * when the ret belongs to a function it tail-called */
	f = g_hash_table_lookup(the.frames, GSIZE_TO_POINTER(rsp));
	if (f)
		g_hash_table_steal(the.frames, GSIZE_TO_POINTER(rsp));
	unlock();
	if (!f)
		return;
	v->c.ret++;
	pr = f->probe;
	thread = current_thread(v);
	switch (pr->kind) {
	case PROBE_LOCK_TRYACQUIRE:
	case PROBE_LOCK_ACQUIRE:
		got = 1;
		if (pr->kind == PROBE_LOCK_TRYACQUIRE) {
			const struct probe_loc *res = &pr->op[PROBE_OP_RESULT];
			unsigned w = res->kind ? res->width : 1;

			got = (reg(v, res->kind ? res->reg : PROBE_RAX) & (w < 8 ? (1ull << (8 * w)) - 1 : ~0ull)) != 0;
			got ^= pr->result_zero;
		}
		ev = event(v, vcpu, got ? DB_LOCK_ACQ : DB_LOCK_FAIL, ic, s->pc, thread, (uint64_t)f->val[0], irql(v),
		           got ? (int64_t)(ic - f->icount) : 0);
		ev.lockop = lockop(pr, f->val);
		ev.caller = f->caller;
		ev.flags |= pr->kind == PROBE_LOCK_TRYACQUIRE ? DB_F_TRY : 0;
		submit(v, &ev, NULL);
		break;
	case PROBE_WAIT:
		ev = event(v, vcpu, DB_WAIT_END, ic, s->pc, thread, (uint64_t)f->val[0], (int32_t)reg(v, PROBE_RAX), 0);
		ev.caller = f->caller;
		submit(v, &ev, NULL);
		break;
	case PROBE_CONTEXT:
		ctx_pop_function(trap_stack(v, thread));
		break;
	default:
		emit(v, vcpu, pr, ic, s->pc, thread, f->val, f->text, f->caller);
		break;
	}
	g_free(f->text);
	g_free(f);
}

/* ------------------------------------------------------ the other sources */

static void on_cr8(struct vcpu *v, unsigned vcpu, const struct site *s, uint64_t ic)
{
	int64_t old = irql(v), val = (int64_t)(reg(v, s->insn.reg) & 0xf);

	v->cr8 = val;
	push(v, vcpu, DB_IRQL, ic, s->pc, current_thread(v), PROBE_IRQL_CR8, old, val, NULL);
}

static void on_wrmsr(struct vcpu *v, unsigned vcpu, const struct site *s, uint64_t ic)
{
	uint32_t msr = (uint32_t)reg(v, PROBE_RCX);

	if (msr == MSR_X2APIC_EOI) {
		push(v, vcpu, DB_EOI, ic, s->pc, current_thread(v), 0, 1, 0, NULL);
	} else if (msr == MSR_APIC_BASE) {
		uint64_t val = (reg(v, PROBE_RDX) << 32 | (uint32_t)reg(v, PROBE_RAX)) & ~0xfffull;

		__atomic_store_n(&the.apic_base, val & 0xffffffffff000ull, __ATOMIC_RELAXED);
	}
}

static void on_out(struct vcpu *v, unsigned vcpu, const struct site *s, uint64_t ic)
{
	char c;

	if ((reg(v, PROBE_RDX) & 0xffff) != SERIAL_PORT)
		return;
	c = (char)(reg(v, PROBE_RAX) & 0xff);
	if (c == '\r')
		return;
	if (c != '\n' && v->serial_len + 1 < sizeof(v->serial)) {
		v->serial[v->serial_len++] = c;
		return;
	}
	v->serial[v->serial_len] = '\0';
	push(v, vcpu, DB_MARKER, ic, s->pc, current_thread(v), 0, DB_MARK_SERIAL, 0, v->serial);
	v->serial_len = 0;
	if (c != '\n')
		v->serial[v->serial_len++] = c;
}

static void site(unsigned int vcpu, const struct site *s, uint64_t ic)
{
	struct vcpu *v = &the.vcpus[vcpu];

	v->loaded = 0;
	v->c.site++;
	if (s->roles & ROLE_TRAP)
		on_trap(v, vcpu, s, ic);
	if (s->roles & ROLE_ENTRY)
		on_entry(v, vcpu, s->entry, ic);
	switch (s->insn.cls) {
	case INSN_LIDT:
		on_lidt(v, s);
		break;
	case INSN_MOV_CR8:
		on_cr8(v, vcpu, s, ic);
		break;
	case INSN_WRMSR:
		on_wrmsr(v, vcpu, s, ic);
		break;
	case INSN_IRETQ:
		on_iretq(v, vcpu, s, ic);
		break;
	case INSN_OUT_DX_AL:
		on_out(v, vcpu, s, ic);
		break;
	case INSN_RET:
	case INSN_JMP: /* to a return thunk */
		if (s->roles & ROLE_RET)
			on_ret(v, vcpu, s, ic);
		break;
	case INSN_INT:
		v->pending_int = s->insn.reg;
		break;
	default:
		break;
	}
}

static void on_site(unsigned int vcpu, void *udata)
{
	const struct siteref *r = udata;
	const struct site *s = r->s;
	struct counters *c = vcpu < (unsigned)the.nvcpus ? &the.vcpus[vcpu].c : &the.vcpus[0].c;
	uint64_t t0 = ++c->cb_calls % COST_SAMPLE ? 0 : cycles();

	if (!the.serial) {
		site(vcpu, s, count_before(vcpu, r->back));
		if (t0)
			c->cb_cycles += cycles() - t0;
		return;
	}
	if (the.stopping)
		maybe_hold(vcpu, s->pc);
	site(identify(vcpu, s->pc, 1), s, the.gcount);
	the.gcount++; /* after: the site saw the count of the instructions before it */
	if (t0)
		c->cb_cycles += cycles() - t0;
}

/* A 32-bit store that may reach the xAPIC EOI register (INSN_STORE32_B0):
 * an EOI if its physical address, whatever the virtual mapping and the
 * registers that formed it, is the APIC base + 0xb0. */
static void on_store(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
	const struct siteref *r = udata;
	const struct site *s = r->s;
	struct qemu_plugin_hwaddr *hw = qemu_plugin_get_hwaddr(info, vaddr);
	uint64_t base = __atomic_load_n(&the.apic_base, __ATOMIC_RELAXED), phys, t0 = cycles(), ic;
	struct vcpu *v;

	/* the serial count moved on at the store's instruction callback */
	ic = the.serial ? the.gcount - 1 : count_before(vcpu, r->back);
	vcpu = identify(vcpu, 0, 0);
	v = &the.vcpus[vcpu];
	v->c.store++;
	if (!hw || !qemu_plugin_hwaddr_is_io(hw) || (phys = qemu_plugin_hwaddr_phys_addr(hw)) != base + 0xb0) {
		v->c.store_cycles += cycles() - t0;
		return;
	}
	v->loaded = 0;
	v->c.store_eoi++;
	push(v, vcpu, DB_EOI, ic, s->pc, current_thread(v), 0, 2, 0, NULL);
	v->c.store_cycles += cycles() - t0;
}

/* -------------------------------------------------------------- translation */

/* The callbacks' user data for s as instruction i of n. Caller holds the.lock. */
static const struct siteref *ref_for(const struct site *s, unsigned i, unsigned n, int mem)
{
	unsigned back = the.serial ? 0 : count_back(i, n, mem);
	gpointer key = GSIZE_TO_POINTER((uint64_t)(uintptr_t)s | (uint64_t)back << 48);
	struct siteref *r = g_hash_table_lookup(the.siterefs, key);

	if (!r) {
		r = g_new(struct siteref, 1);
		r->s = s;
		r->back = back;
		g_hash_table_insert(the.siterefs, key, r);
	}
	return r;
}

static int in_range(const GArray *ranges, uint64_t pc)
{
	guint i;

	for (i = 0; i < ranges->len; i++) {
		const struct range *r = &g_array_index(ranges, struct range, i);

		if (pc >= r->lo && pc < r->hi)
			return 1;
	}
	return 0;
}

static int in_ret_range(uint64_t pc)
{
	return in_range(the.ret_ranges, pc);
}

/* Finds or makes the site for pc with these roles. Caller holds the.lock. */
static struct site *site_for(uint64_t pc, unsigned roles, int vector, const struct probe *entry,
                             const struct insn_info *ii)
{
	struct site *s = g_hash_table_lookup(the.sites, GSIZE_TO_POINTER(pc));

	if (s && s->roles == roles && s->vector == vector && s->insn.cls == ii->cls)
		return s;
	s = g_new0(struct site, 1);
	s->pc = pc;
	s->roles = roles;
	s->vector = vector;
	s->entry = entry;
	s->insn = *ii;
	g_ptr_array_add(the.all_sites, s);
	g_hash_table_replace(the.sites, GSIZE_TO_POINTER(pc), s);
	return s;
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	size_t n = qemu_plugin_tb_n_insns(tb), i;
	const struct count_block *b = NULL;

	(void)id;
	lock();
	if (!the.serial)
		b = count_block(tb);
	g_hash_table_add(the.tb_starts, GSIZE_TO_POINTER(qemu_plugin_tb_vaddr(tb)));
	if (the.serial) {
		the.fresh = 1;
		the.fresh_pc = qemu_plugin_tb_vaddr(tb);
	}
	for (i = 0; i < n; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
		uint64_t pc = qemu_plugin_insn_vaddr(insn);
		uint8_t code[16];
		size_t len = qemu_plugin_insn_data(insn, code, sizeof(code));
		struct insn_info ii;
		const struct probe *entry = NULL;
		unsigned roles = 0;
		int vector = -1;
		gpointer hv;

		insn_classify(the.dec, code, len, pc, &ii);
		if (the.gdb_path && i == 0) /* first: the count callbacks below may hold */
			qemu_plugin_register_vcpu_insn_exec_cb(insn, on_gdb_block, QEMU_PLUGIN_CB_R_REGS, NULL);
		/* an interrupt always starts a new TB at its handler */
		if (i == 0 && (hv = g_hash_table_lookup(the.handlers, GSIZE_TO_POINTER(pc)))) {
			roles |= ROLE_TRAP;
			vector = (int)GPOINTER_TO_SIZE(hv) - 1;
		}
		if ((entry = g_hash_table_lookup(the.entries, GSIZE_TO_POINTER(pc))))
			roles |= ROLE_ENTRY;
		/* a jmp to a return thunk is a ret (before the kernel patches it into one) */
		if (ii.cls == INSN_JMP && !g_hash_table_contains(the.thunks, GSIZE_TO_POINTER(ii.target)))
			ii.cls = INSN_OTHER;
		/* any 32-bit store in a probe's `eoi` function may be the EOI */
		if (ii.cls == INSN_STORE32)
			ii.cls = in_range(the.eoi_ranges, pc) ? INSN_STORE32_B0 : INSN_OTHER;
		if ((ii.cls == INSN_RET || ii.cls == INSN_JMP) && in_ret_range(pc))
			roles |= ROLE_RET;
		if (roles || (ii.cls != INSN_OTHER && ii.cls != INSN_RET && ii.cls != INSN_JMP)) {
			struct site *s = site_for(pc, roles, vector, entry, &ii);

			if (ii.cls == INSN_STORE32_B0)
				qemu_plugin_register_vcpu_mem_cb(insn, on_store, QEMU_PLUGIN_CB_R_REGS,
				                                 QEMU_PLUGIN_MEM_W,
				                                 (void *)ref_for(s, (unsigned)i, (unsigned)n, 1));
			if (roles || ii.cls != INSN_STORE32_B0) {
				qemu_plugin_register_vcpu_insn_exec_cb(insn, on_site, QEMU_PLUGIN_CB_R_REGS,
				                                       (void *)ref_for(s, (unsigned)i, (unsigned)n, 0));
				if (the.serial)
					continue; /* on_site counts it */
			}
		}
		if (the.serial && i == 0)
			qemu_plugin_register_vcpu_insn_exec_cb(insn, on_block, QEMU_PLUGIN_CB_R_REGS,
			                                       GSIZE_TO_POINTER(pc));
		else if (the.serial) /* registers only for a stop's report */
			qemu_plugin_register_vcpu_insn_exec_cb(insn, on_count,
			                                       the.stopping ? QEMU_PLUGIN_CB_R_REGS
			                                                    : QEMU_PLUGIN_CB_NO_REGS,
			                                       GSIZE_TO_POINTER(pc));
		else if (i == 0) /* after its callbacks: they see the count before the block */
			count_add(tb, b);
	}
	unlock();
}

/* ------------------------------------------------------------ life cycle */

static void on_vcpu_init(qemu_plugin_id_t id, unsigned int vcpu)
{
	static const char *const names[PROBE_NREGS] = {
	    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
	    "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15",
	};
	GArray *regs;
	struct vcpu *v;
	guint i;
	int r;

	(void)id;
	if ((int)vcpu >= the.nvcpus || the.vcpus[vcpu].buf)
		return; /* also registered again after a reset */
	v = &the.vcpus[vcpu];
	v->cr8 = -1;
	v->pending_int = -1;
	v->buf = g_byte_array_new();
	regs = qemu_plugin_get_registers();
	for (i = 0; regs && i < regs->len; i++) {
		qemu_plugin_reg_descriptor *d = &g_array_index(regs, qemu_plugin_reg_descriptor, i);

		for (r = 0; r < PROBE_NREGS; r++)
			if (strcmp(d->name, names[r]) == 0)
				v->reg[r] = d->handle;
		if (strcmp(d->name, "gs_base") == 0)
			v->gs_base = d->handle;
		else if (strcmp(d->name, "fs_base") == 0)
			v->fs_base = d->handle;
		else if (strcmp(d->name, "cr8") == 0)
			v->cr8_reg = d->handle;
		else if (strcmp(d->name, "efer") == 0)
			v->efer_reg = d->handle;
		else if (strcmp(d->name, "cr2") == 0)
			v->cr2_reg = d->handle;
		else if (strcmp(d->name, "eflags") == 0)
			v->eflags_reg = d->handle;
		else if (strcmp(d->name, "k_gs_base") == 0 || strcmp(d->name, "kernel_gs_base") == 0)
			v->kgs_base = d->handle;
	}
	if (regs && vcpu == 0 && !the.regs)
		the.regs = regs;
	else if (regs)
		g_array_free(regs, TRUE);
}

static void on_exit_cb(qemu_plugin_id_t id, void *p)
{
	char buf[32], *err = NULL;
	uint64_t total = 0, now;
	double per_ns;
	struct counters c = {0};
	struct db_writer_stats st;
	GString *str;
	int i;

	(void)id;
	(void)p;
	if (!the.w)
		return;
	/* QEMU that refused its command line exits before any vCPU exists: no
	 * scoreboard entry may be read then (qemu_plugin_scoreboard_find asserts). */
	for (i = 0; i < the.nvcpus && i < qemu_plugin_num_vcpus(); i++) {
		struct vcpu *v = &the.vcpus[i];

		total += icount_now((unsigned)i);
		c.site += v->c.site;
		c.trap += v->c.trap;
		c.entry += v->c.entry;
		c.ret += v->c.ret;
		c.iret += v->c.iret;
		c.store += v->c.store;
		c.store_eoi += v->c.store_eoi;
		c.reg_reads += v->c.reg_reads;
		c.mem_reads += v->c.mem_reads;
		c.events += v->c.events;
		c.cb_cycles += v->c.cb_cycles;
		c.store_cycles += v->c.store_cycles;
		if (v->serial_len) {
			v->serial[v->serial_len] = '\0';
			/* no vCPU is running: nothing to read but what we know */
			struct db_event ev = {.icount = icount_now((unsigned)i), .thread = v->thread, .a = DB_MARK_SERIAL,
			                      .vcpu = (uint16_t)i, .kind = DB_MARKER, .preempt = -1, .tid = -1};

			submit(v, &ev, v->serial);
		}
		if (v->lost) {
			struct db_event at = {.icount = v->lost_to, .thread = v->thread, .vcpu = (uint16_t)i};
			report_loss(v, &at);
		}
	}
	if (the.serial)
		total = the.gcount;
	snprintf(buf, sizeof(buf), "%" PRIu64, total);
	db_writer_set_meta(the.w, "icount_total", buf);
	/* what an event's icount counts (docs/tracer.md "Several vCPUs") */
	snprintf(buf, sizeof(buf), "%d", the.nvcpus);
	db_writer_set_meta(the.w, "vcpus", buf);
	db_writer_set_meta(the.w, "icount_scope", the.serial ? "machine" : "vcpu");
	/* what the recording cost, for make bench (docs/tracer.md) */
	db_writer_stats(the.w, &st);
	now = mono_ns();
	per_ns = now > the.mono0 ? (double)(cycles() - the.tsc0) / (double)(now - the.mono0) : 1;
	str = g_string_new(NULL);
	g_string_printf(str,
	                "callbacks=%" PRIu64 " trap=%" PRIu64 " entry=%" PRIu64 " ret=%" PRIu64 " iret=%" PRIu64
	                " store=%" PRIu64 " store_eoi=%" PRIu64 " reg_reads=%" PRIu64 " mem_reads=%" PRIu64
	                " events=%" PRIu64 " dropped=%" PRIu64 " sites=%u"
	                " run_ms=%.0f setup_ms=%.0f callback_ms=%.0f store_ms=%.0f locks=%" PRIu64 " lock_ms=%.1f"
	                " writer_cpu_ms=%.0f resets=%" PRIu64 " io_reruns=%" PRIu64 " unmatched=%" PRIu64,
	                c.site, c.trap, c.entry, c.ret, c.iret, c.store, c.store_eoi, c.reg_reads, c.mem_reads,
	                c.events, st.dropped, the.all_sites->len, (double)(now - the.mono0) / 1e6,
	                (double)the.setup_ns / 1e6, (double)c.cb_cycles * COST_SAMPLE / per_ns / 1e6,
	                (double)c.store_cycles / per_ns / 1e6, the.locks,
	                (double)the.lock_cycles * COST_SAMPLE / per_ns / 1e6, (double)st.cpu_ns / 1e6, the.resets,
	                count_io_reruns(), count_unmatched());
	db_writer_set_meta(the.w, "tracer_counters", str->str);
	g_string_free(str, TRUE);
	if (db_writer_close(the.w, &err))
		fprintf(stderr, "krewind: error: %s\n", err ? err : "cannot close the trace");
	free(err);
	the.w = NULL;
}

/* Writer-thread callback: static locks and threads are named by their ELF symbol. */
static int namer(void *ctx, int is_lock, uint64_t addr, char *name, size_t size)
{
	const struct elfsym *s;

	(void)ctx;
	(void)is_lock;
	if (!the.syms || !(s = elfsym_lookup(the.syms, addr)) || s->is_func)
		return -1;
	if (addr == s->addr)
		snprintf(name, size, "%s", s->name);
	else
		snprintf(name, size, "%s+0x%" PRIx64, s->name, addr - s->addr);
	return 0;
}

/* Adds fn's range, and those of the functions it tail-calls (a direct jmp or
 * jcc out of it into another function), to the return ranges. */
static void add_ret_range(const struct elfsym *fn, int depth)
{
	struct range r = {fn->addr, fn->addr + fn->size};
	uint64_t targets[16];
	uint8_t *code;
	size_t n, i;
	guint k;

	for (k = 0; k < the.ret_ranges->len; k++)
		if (g_array_index(the.ret_ranges, struct range, k).lo == r.lo)
			return;
	g_array_append_val(the.ret_ranges, r);
	if (depth == 0 || fn->size > 1 << 20 || !(code = g_malloc(fn->size)))
		return;
	if (elfsym_read(the.syms, fn->addr, code, fn->size, NULL) == 0) {
		n = insn_jump_targets_out(the.dec, code, fn->size, fn->addr, targets, 16);
		for (i = 0; i < n && i < 16; i++) {
			const struct elfsym *t = elfsym_lookup(the.syms, targets[i]);

			/* a jump to a return thunk is a return, seen as one (on_tb_trans) */
			if (t && t->is_func && t->size && t->addr == targets[i] && !elfsym_is_return_thunk(t))
				add_ret_range(t, depth - 1);
		}
	}
	g_free(code);
}

static int setup(const char *db, const char *probe_path, const char *symbols, size_t queue, char **err)
{
	GString *notes = g_string_new(NULL);
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	size_t i;
	int rc;

	if (symbols && (rc = elfsym_load(symbols, &the.syms, err)))
		return rc;
	if (probe_path) {
		if ((rc = probe_load(probe_path, &the.probe, err)))
			return rc;
		if ((rc = probe_resolve(the.probe, the.syms, err)))
			return rc;
	}
	if ((rc = insn_decoder_open(&the.dec, err)))
		return rc;
	rc = queue ? db_writer_open_ring(db, namer, NULL, queue, &the.w, err) : db_writer_open(db, namer, NULL, &the.w, err);
	if (rc)
		return rc;
	for (i = 0; the.syms && i < elfsym_count(the.syms); i++)
		if (elfsym_is_return_thunk(elfsym_at(the.syms, i)))
			g_hash_table_add(the.thunks, GSIZE_TO_POINTER(elfsym_at(the.syms, i)->addr));
	for (i = 0; the.probe && i < the.probe->nprobes; i++) {
		const struct probe *p = &the.probe->probes[i];

		if (p->kind == PROBE_EOI) {
			struct range r = {p->addr, p->addr + p->size};
			g_array_append_val(the.eoi_ranges, r);
		} else {
			g_hash_table_insert(the.entries, GSIZE_TO_POINTER(p->addr), (gpointer)p);
		}
		if (probe_needs_return(p))
			add_ret_range(elfsym_find(the.syms, p->symbol), 3);
		if (p->size_from_next) {
			gchar *note = g_strdup_printf("%s:%d: %s has no size in %s: its code is taken to end at the "
			                              "next symbol (0x%" PRIx64 " bytes)",
			                              probe_path, p->line, p->symbol, symbols, p->size);

			fprintf(stderr, "krewind: note: %s\n", note);
			g_string_append_printf(notes, "%s%s", notes->len ? "\n" : "", note);
			g_free(note);
		}
	}
	if (notes->len)
		db_writer_set_meta(the.w, "probe_notes", notes->str);
	g_string_free(notes, TRUE);
	for (i = 0; the.syms && i < elfsym_count(the.syms); i++) {
		const struct elfsym *s = elfsym_at(the.syms, i);

		db_writer_add_symbol(the.w, s->addr, s->size, s->name);
	}
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	db_writer_set_meta(the.w, "started_at", stamp);
	db_writer_set_meta(the.w, "tracer_version", TRACER_VERSION);
	db_writer_set_meta(the.w, "probe", probe_path ? probe_path : "");
	db_writer_set_meta(the.w, "symbols", symbols ? symbols : "");
	if (the.syms && !*elfsym_build_id(the.syms)) {
		/* no GNU build-id note: identify the symbols file by its content */
		gchar *data = NULL, *sum = NULL, *id = NULL;
		gsize len;

		if (g_file_get_contents(symbols, &data, &len, NULL) &&
		    (sum = g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)data, len)))
			id = g_strconcat("sha256:", sum, NULL);
		db_writer_set_meta(the.w, "kernel_build_id", id ? id : "");
		g_free(id);
		g_free(sum);
		g_free(data);
	} else {
		db_writer_set_meta(the.w, "kernel_build_id", the.syms ? elfsym_build_id(the.syms) : "");
	}
	return 0;
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
                                           char **argv)
{
	const char *db = NULL, *probe_path = NULL, *symbols = NULL, *queue_arg = NULL, *stop = NULL, *stopfile = NULL;
	const char *gdb = NULL, *gdbend = NULL;
	char *err = NULL, *end;
	unsigned long queue = 0;
	int i, rc = 0;

	for (i = 0; i < argc; i++) {
		const char *eq = strchr(argv[i], '=');
		size_t klen = eq ? (size_t)(eq - argv[i]) : strlen(argv[i]);
		const char **slot = NULL;

		if (klen == 2 && strncmp(argv[i], "db", 2) == 0)
			slot = &db;
		else if (klen == 5 && strncmp(argv[i], "probe", 5) == 0)
			slot = &probe_path;
		else if (klen == 7 && strncmp(argv[i], "symbols", 7) == 0)
			slot = &symbols;
		else if (klen == 5 && strncmp(argv[i], "queue", 5) == 0)
			slot = &queue_arg;
		else if (klen == 4 && strncmp(argv[i], "stop", 4) == 0)
			slot = &stop;
		else if (klen == 8 && strncmp(argv[i], "stopfile", 8) == 0)
			slot = &stopfile;
		else if (klen == 3 && strncmp(argv[i], "gdb", 3) == 0)
			slot = &gdb;
		else if (klen == 6 && strncmp(argv[i], "gdbend", 6) == 0)
			slot = &gdbend;
		if (!slot) {
			fprintf(stderr,
			        "krewind: error: unknown plugin argument '%s' (db=, probe=, symbols=, queue=, stop=, stopfile=, gdb=, gdbend=)\n",
			        argv[i]);
			return -1;
		}
		if (!eq || !eq[1]) {
			fprintf(stderr, "krewind: error: plugin argument '%.*s' needs a value\n", (int)klen,
			        argv[i]);
			return -1;
		}
		*slot = eq + 1;
	}
	if (!db) {
		fprintf(stderr, "krewind: error: the plugin needs db=FILE\n");
		return -1;
	}
	if (queue_arg) {
		queue = strtoul(queue_arg, &end, 0);
		if (*end || queue < 2 || queue > (1ul << 24) || (queue & (queue - 1))) {
			fprintf(stderr, "krewind: error: queue=%s: expected a power of two, 2 to 16777216 events\n",
			        queue_arg);
			return -1;
		}
	}
	if (probe_path && !symbols) {
		fprintf(stderr, "krewind: error: probe=%s needs symbols=ELF\n", probe_path);
		return -1;
	}
	if (!stop != !stopfile) {
		fprintf(stderr, "krewind: error: stop= and stopfile= go together\n");
		return -1;
	}
	if (stop) {
		the.stop_at = strtoull(stop, &end, 0);
		if (*end) {
			fprintf(stderr, "krewind: error: stop=%s is not an instruction count\n", stop);
			return -1;
		}
		the.stopping = 1;
		the.stopfile = stopfile;
	}
	if ((gdb || gdbend) && !stop) {
		fprintf(stderr, "krewind: error: gdb= and gdbend= need stop=\n");
		return -1;
	}
	the.gdb_end = UINT64_MAX;
	if (gdbend) {
		the.gdb_end = strtoull(gdbend, &end, 0);
		if (*end) {
			fprintf(stderr, "krewind: error: gdbend=%s is not an instruction count\n", gdbend);
			return -1;
		}
	}
	if (gdb && gdbstub_listen(gdb) < 0)
		return -1;
	the.gdb_path = gdb;
	if (!info->system_emulation) {
		fprintf(stderr, "krewind: error: the plugin needs full-system emulation\n");
		return -1;
	}
	the.id = id;
	the.mono0 = mono_ns();
	the.tsc0 = cycles();
	g_mutex_init(&the.lock);
	the.handlers = g_hash_table_new(NULL, NULL);
	the.entries = g_hash_table_new(NULL, NULL);
	the.sites = g_hash_table_new(NULL, NULL);
	the.siterefs = g_hash_table_new_full(NULL, NULL, NULL, g_free);
	the.all_sites = g_ptr_array_new_with_free_func(g_free);
	the.frames = g_hash_table_new(NULL, NULL);
	the.ret_ranges = g_array_new(FALSE, FALSE, sizeof(struct range));
	the.eoi_ranges = g_array_new(FALSE, FALSE, sizeof(struct range));
	the.tstacks = g_hash_table_new_full(NULL, NULL, NULL, g_free);
	the.named = g_hash_table_new_full(NULL, NULL, NULL, g_free);
	the.thunks = g_hash_table_new(NULL, NULL);
	the.tb_starts = g_hash_table_new(NULL, NULL);
	the.apic_base = XAPIC_DEFAULT_BASE;
	the.nvcpus = info->system.max_vcpus > 0 ? info->system.max_vcpus : 1;
	the.vcpus = g_new0(struct vcpu, the.nvcpus);
	the.last_ic = g_new(uint64_t, the.nvcpus);
	the.resumed_at = g_new0(uint64_t, the.nvcpus);
	the.out_pc = g_new0(uint64_t, the.nvcpus);
	for (i = 0; i < the.nvcpus; i++)
		the.last_ic[i] = UINT64_MAX;
	the.cur_vcpu = -1;
	the.step_vcpu = -1;
	the.serial = serial_mode(the.nvcpus);
	if (the.stopping && !the.serial) {
		fprintf(stderr, "krewind: error: stop= needs several vCPUs under -icount\n");
		return -1;
	}
	the.gs_votes = g_hash_table_new_full(NULL, NULL, NULL, g_free);
	the.idbuf = g_byte_array_new();
	rc = setup(db, probe_path, symbols, queue, &err);
	if (rc) {
		fprintf(stderr, "krewind: error: %s\n", err ? err : "cannot start the tracer");
		free(err);
		if (the.w)
			db_writer_close(the.w, NULL);
		the.w = NULL;
		return -1;
	}
	the.setup_ns = mono_ns() - the.mono0;
	count_init();
	qemu_plugin_register_vcpu_init_cb(id, on_vcpu_init);
	qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
	qemu_plugin_register_atexit_cb(id, on_exit_cb, NULL);
	return 0;
}
