/*
 * plugin.c - libkrewind.so, the QEMU TCG plugin that records a kernel's events.
 *
 *   -plugin build/tracer/libkrewind.so,db=FILE[,probe=FILE][,symbols=ELF]
 *
 * Decides at translation time which few instructions matter (lidt, mov cr8,
 * wrmsr, iretq, out dx,al, trap handler entries found in the IDT, probed
 * function entries and their rets, 32-bit stores that may be an xAPIC EOI) and
 * hangs one callback on each. Every instruction also bumps an inline per-vCPU
 * counter, so each event carries the exact count of instructions retired
 * before it on its vCPU, the count QEMU's record/replay uses. Events go to the
 * trace through db/db.h's writer queue. How each event is found and what it
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

#include <qemu-plugin.h>

#include "db/db.h"
#include "tracer/tracer.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define TRACER_VERSION     "krewind-tracer 1"
#define TRAP_DEPTH         32
#define SERIAL_PORT        0x3f8
#define MSR_X2APIC_EOI     0x80b
#define MSR_APIC_BASE      0x1b
#define XAPIC_DEFAULT_BASE 0xfee00000ull
#define IDT_RESCAN_INSNS   (1ull << 22)

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

struct range {
	uint64_t lo, hi;
};

struct trap_stack {
	int n;
	int16_t vec[TRAP_DEPTH];
};

/* A probed call in flight, keyed by the stack slot of its return address. */
struct frame {
	const struct probe *probe;
	uint64_t icount, thread;
	int64_t val[PROBE_MAX_OPS];
	char *text;
};

struct vcpu {
	struct qemu_plugin_register *reg[PROBE_NREGS];
	struct qemu_plugin_register *gs_base, *fs_base, *cr8_reg, *efer_reg, *cr2_reg;
	GByteArray *buf;
	uint64_t regs[PROBE_NREGS];
	unsigned loaded;         /* bit r: regs[r] is current for this callback */
	int64_t cr8;             /* last known CR8 (IRQL); -1 unknown */
	uint64_t thread;         /* from the last switch, when no `thread` declaration */
	uint64_t named_thread;   /* last thread we made sure has a name */
	uint64_t last_scan;      /* icount of the last IDT scan */
	struct trap_stack traps; /* when the current thread is unknown */
	char serial[256];
	size_t serial_len;
};

static struct tracer {
	qemu_plugin_id_t id;
	struct db_writer *w;
	struct probe_file *probe;
	struct elfsym_table *syms;
	struct qemu_plugin_scoreboard *icount_sb;
	qemu_plugin_u64 icount;
	struct vcpu *vcpus;
	int nvcpus;
	GMutex lock; /* guards everything below */
	struct insn_decoder *dec;
	GHashTable *handlers; /* handler pc -> vector + 1 */
	GHashTable *entries;  /* function address -> struct probe * */
	GHashTable *sites;    /* pc -> struct site * (sites live until exit) */
	GPtrArray *all_sites;
	GArray *ret_ranges;  /* struct range: where the returns of probed calls are */
	GHashTable *frames;  /* return-address slot -> struct frame * */
	GHashTable *tstacks; /* thread -> struct trap_stack * */
	GHashTable *named;   /* thread -> the name last given to it */
	uint64_t idt_base;
	unsigned idt_limit;
	uint64_t apic_base;
	int resetting;
} the;

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
static void on_exit_cb(qemu_plugin_id_t id, void *p);
static void on_vcpu_init(qemu_plugin_id_t id, unsigned int vcpu);

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

/* Reads n <= 8 bytes of guest virtual memory; 0 on success. */
static int peek(struct vcpu *v, uint64_t addr, unsigned n, uint64_t *val)
{
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
	return qemu_plugin_u64_get(the.icount, vcpu);
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

/* Names thread t from its `thread-name` field: the first time it is seen, and
 * again at every switch to it (thread objects are reused by new threads). */
static void name_thread(struct vcpu *v, uint64_t t, int refresh)
{
	char name[65];
	const char *old;

	if (!t || !the.probe || !the.probe->name_len || (!refresh && t == v->named_thread))
		return;
	v->named_thread = t;
	g_mutex_lock(&the.lock);
	old = g_hash_table_lookup(the.named, GSIZE_TO_POINTER(t));
	g_mutex_unlock(&the.lock);
	if (old && !refresh)
		return;
	peek_string(v, t + (uint64_t)the.probe->name_off, name, the.probe->name_len + 1);
	if (!name[0] || (old && strcmp(old, name) == 0))
		return;
	db_writer_name(the.w, 0, t, name);
	g_mutex_lock(&the.lock);
	g_hash_table_replace(the.named, GSIZE_TO_POINTER(t), g_strdup(name));
	g_mutex_unlock(&the.lock);
}

static uint64_t current_thread(struct vcpu *v)
{
	uint64_t t = v->thread, base;
	int ok;

	if (the.probe && the.probe->thread_seg != PROBE_SEG_NONE) {
		base = read_handle(v, the.probe->thread_seg == PROBE_SEG_GS ? v->gs_base : v->fs_base, &ok);
		if (!ok || peek(v, base + (uint64_t)the.probe->thread_off, 8, &t))
			t = 0;
	}
	name_thread(v, t, 0);
	return t;
}

static void push(unsigned vcpu, int kind, uint64_t ic, uint64_t pc, uint64_t thread, uint64_t obj, int64_t a,
                 int64_t b, const char *text)
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
	};

	if (text)
		db_writer_push_text(the.w, &ev, text);
	else
		db_writer_push(the.w, &ev);
}

/* ------------------------------------------------------------------- traps */

static struct trap_stack *trap_stack(struct vcpu *v, uint64_t thread)
{
	struct trap_stack *s;

	if (!thread)
		return &v->traps;
	g_mutex_lock(&the.lock);
	s = g_hash_table_lookup(the.tstacks, GSIZE_TO_POINTER(thread));
	if (!s) {
		s = g_new0(struct trap_stack, 1);
		g_hash_table_insert(the.tstacks, GSIZE_TO_POINTER(thread), s);
	}
	g_mutex_unlock(&the.lock);
	return s;
}

static int pushes_error_code(int vec)
{
	return vec == 8 || (vec >= 10 && vec <= 14) || vec == 17 || vec == 21 || vec == 29 || vec == 30;
}

/*
 * A fault raised while an instruction runs (QEMU rolls the instruction back
 * and its own count with it) had its inline add done already: the count is
 * one ahead from here on. That is the case for faults raised by helpers and
 * memory accesses: #DE, #TS, #NP, #SS, #GP, #AC, #MF/#XM and data #PF. Faults
 * QEMU raises at translation time (#UD, #NM, privilege checks, int3/int n) and
 * instruction-fetch #PF (CR2 inside the faulting instruction: never
 * translated, never counted) need nothing.
 */
static int fault_counted_twice(struct vcpu *v, int vec)
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
		if (!ok || peek(v, reg(v, PROBE_RSP) + 8, 8, &rip))
			return 0;
		return cr2 - rip >= 16;
	}
	return 0;
}

static void on_trap(struct vcpu *v, unsigned vcpu, const struct site *s, uint64_t ic)
{
	uint64_t err = 0, thread = current_thread(v);
	struct trap_stack *ts = trap_stack(v, thread);

	if (s->vector < 32 && fault_counted_twice(v, s->vector)) {
		qemu_plugin_u64_add(the.icount, vcpu, (uint64_t)-1);
		ic--;
	}

	if (pushes_error_code(s->vector) && peek(v, reg(v, PROBE_RSP), 8, &err))
		err = 0;
	if (ts->n == TRAP_DEPTH) {
		memmove(ts->vec, ts->vec + 1, sizeof(ts->vec) - sizeof(ts->vec[0]));
		ts->n--;
	}
	ts->vec[ts->n++] = (int16_t)s->vector;
	push(vcpu, DB_TRAP, ic, s->pc, thread, 0, s->vector, (int64_t)err, NULL);
}

/* Reads the IDT and records the handler of every present gate. Returns 1 if
 * handlers appeared that are not instrumented yet. Caller holds no lock. */
static int scan_idt(struct vcpu *v)
{
	uint8_t idt[256 * 16];
	uint64_t base;
	unsigned n, i;
	int changed = 0;

	g_mutex_lock(&the.lock);
	base = the.idt_base;
	n = (the.idt_limit + 1) / 16;
	g_mutex_unlock(&the.lock);
	if (n > 256)
		n = 256;
	if (!n)
		return 0;
	g_byte_array_set_size(v->buf, 0);
	if (!base || !qemu_plugin_read_memory_vaddr(base, v->buf, n * 16))
		return 0;
	memcpy(idt, v->buf->data, n * 16);
	g_mutex_lock(&the.lock);
	for (i = 0; i < n; i++) {
		const uint8_t *g = idt + 16 * i;
		uint64_t pc = le(g, 2) | le(g + 6, 2) << 16 | le(g + 8, 4) << 32;
		gpointer old;

		if (!(g[5] & 0x80) || !pc)
			continue;
		old = g_hash_table_lookup(the.handlers, GSIZE_TO_POINTER(pc));
		if (!old) {
			g_hash_table_insert(the.handlers, GSIZE_TO_POINTER(pc), GSIZE_TO_POINTER(i + 1));
			changed = 1;
		}
	}
	g_mutex_unlock(&the.lock);
	return changed;
}

static void after_reset(qemu_plugin_id_t id)
{
	qemu_plugin_register_vcpu_init_cb(id, on_vcpu_init);
	qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
	qemu_plugin_register_atexit_cb(id, on_exit_cb, NULL);
	g_mutex_lock(&the.lock);
	the.resetting = 0;
	g_mutex_unlock(&the.lock);
}

/* New handlers may already be translated without their trap callback:
 * dropping every translation (and re-registering our callbacks) fixes that. */
static void retranslate(void)
{
	int go;

	g_mutex_lock(&the.lock);
	go = !the.resetting;
	the.resetting = 1;
	g_mutex_unlock(&the.lock);
	if (go)
		qemu_plugin_reset(the.id, after_reset);
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
	g_mutex_lock(&the.lock);
	the.idt_base = base;
	the.idt_limit = (unsigned)limit;
	g_mutex_unlock(&the.lock);
	if (scan_idt(v))
		retranslate();
}

static void on_iretq(struct vcpu *v, unsigned vcpu, const struct site *s, uint64_t ic)
{
	uint64_t thread = current_thread(v);
	struct trap_stack *ts = trap_stack(v, thread);
	int vec = ts->n ? ts->vec[--ts->n] : -1;

	push(vcpu, DB_IRET, ic, s->pc, thread, 0, vec, 0, NULL);
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
		x = reg(v, l->reg);
		break;
	case PROBE_LOC_MEM:
		x = reg(v, l->reg);
		/* a NULL pointer (e.g. no timeout) reads as absent */
		if (!x || peek(v, x + (uint64_t)l->disp, l->width, &val))
			return INT64_MIN;
		return (int64_t)val;
	default:
		return 0;
	}
	if (l->width < 8)
		x &= (1ull << (8 * l->width)) - 1;
	return (int64_t)x;
}

static void string_operand(struct vcpu *v, const struct probe_loc *l, char *out, size_t size)
{
	uint64_t p = reg(v, l->reg);

	out[0] = '\0';
	if (l->deref && (!p || peek(v, p + (uint64_t)l->disp, 8, &p)))
		return;
	if (p)
		peek_string(v, p, out, size);
}

/* Emits the event of a probe whose operands are in val/text (at entry, or at
 * the return for at=return probes). */
static void emit(struct vcpu *v, unsigned vcpu, const struct probe *pr, uint64_t ic, uint64_t pc,
                 uint64_t thread, const int64_t *val, const char *text)
{
	int64_t lvl = irql(v);

	switch (pr->kind) {
	case PROBE_RAISE:
	case PROBE_LOWER:
		push(vcpu, DB_IRQL, ic, pc, thread,
		     pr->kind == PROBE_RAISE ? PROBE_IRQL_RAISE : PROBE_IRQL_LOWER, lvl, val[0], NULL);
		break;
	case PROBE_LOCK_RELEASE:
		push(vcpu, DB_LOCK_REL, ic, pc, thread, (uint64_t)val[0], lvl, 0, NULL);
		break;
	case PROBE_LOCK_INIT:
		push(vcpu, DB_LOCK_INIT, ic, pc, thread, (uint64_t)val[0], val[1], 0, NULL);
		break;
	case PROBE_SWITCH:
		push(vcpu, DB_SWITCH, ic, pc, (uint64_t)val[0], 0, val[0], val[1], NULL);
		name_thread(v, (uint64_t)val[0], 0);
		name_thread(v, (uint64_t)val[1], 1);
		v->thread = (uint64_t)val[1];
		break;
	case PROBE_MUTEX_ACQUIRE:
		push(vcpu, DB_MUTEX_ACQ, ic, pc, thread, (uint64_t)val[0], lvl, val[1], NULL);
		break;
	case PROBE_MUTEX_RELEASE:
		push(vcpu, DB_MUTEX_REL, ic, pc, thread, (uint64_t)val[0], lvl, 0, NULL);
		break;
	case PROBE_SIGNAL:
		push(vcpu, DB_SIGNAL, ic, pc, thread, (uint64_t)val[0], lvl, 0, NULL);
		break;
	case PROBE_BUGCHECK:
		push(vcpu, DB_BUGCHECK, ic, pc, thread, 0, val[0], val[1], text && *text ? text : NULL);
		break;
	case PROBE_RESULT:
		push(vcpu, DB_MARKER, ic, pc, thread, (uint64_t)val[0], DB_MARK_RESULT, val[1],
		     "self-test result");
		break;
	case PROBE_SCENARIO:
		push(vcpu, DB_MARKER, ic, pc, thread, 0, DB_MARK_SCENARIO, 0, text ? text : "");
		break;
	case PROBE_MARKER:
		push(vcpu, DB_MARKER, ic, pc, thread, 0, DB_MARK_TEXT, 0, text ? text : "");
		break;
	default:
		break;
	}
}

static void on_entry(struct vcpu *v, unsigned vcpu, const struct probe *pr, uint64_t ic)
{
	int64_t val[PROBE_MAX_OPS] = {0};
	char text[256] = "";
	uint64_t thread = current_thread(v), rsp = reg(v, PROBE_RSP), ra;
	int i;

	for (i = 0; i < PROBE_MAX_OPS; i++) {
		if (pr->op[i].kind == PROBE_LOC_STR)
			string_operand(v, &pr->op[i], text, sizeof(text));
		else
			val[i] = operand(v, &pr->op[i]);
	}
	switch (pr->kind) {
	case PROBE_LOCK_ACQUIRE:
	case PROBE_LOCK_TRYACQUIRE:
		push(vcpu, DB_LOCK_TRY, ic, pr->addr, thread, (uint64_t)val[0], irql(v), 0, NULL);
		break;
	case PROBE_WAIT:
		push(vcpu, DB_WAIT, ic, pr->addr, thread, (uint64_t)val[0], irql(v),
		     pr->op[1].kind ? val[1] : INT64_MIN, NULL);
		break;
	case PROBE_LOCK_INIT:
		val[1] = peek(v, rsp, 8, &ra) ? 0 : (int64_t)ra;
		/* fall through */
	default:
		if (!pr->at_return) {
			emit(v, vcpu, pr, ic, pr->addr, thread, val, text);
			return;
		}
	}
	if (probe_needs_return(pr)) {
		struct frame *f = g_new0(struct frame, 1);

		f->probe = pr;
		f->icount = ic;
		f->thread = thread;
		memcpy(f->val, val, sizeof(val));
		f->text = text[0] ? g_strdup(text) : NULL;
		g_mutex_lock(&the.lock);
		g_hash_table_replace(the.frames, GSIZE_TO_POINTER(rsp), f);
		g_mutex_unlock(&the.lock);
	}
}

static void on_ret(struct vcpu *v, unsigned vcpu, const struct site *s, uint64_t ic)
{
	uint64_t rsp = reg(v, PROBE_RSP), thread;
	struct frame *f;

	g_mutex_lock(&the.lock);
	/* the slot of the return address identifies the call being left, also
	 * when the ret belongs to a function it tail-called */
	f = g_hash_table_lookup(the.frames, GSIZE_TO_POINTER(rsp));
	if (f)
		g_hash_table_steal(the.frames, GSIZE_TO_POINTER(rsp));
	g_mutex_unlock(&the.lock);
	if (!f)
		return;
	thread = current_thread(v);
	switch (f->probe->kind) {
	case PROBE_LOCK_TRYACQUIRE:
		if (!(reg(v, PROBE_RAX) & 0xff))
			break;
		/* fall through */
	case PROBE_LOCK_ACQUIRE:
		push(vcpu, DB_LOCK_ACQ, ic, s->pc, thread, (uint64_t)f->val[0], irql(v),
		     (int64_t)(ic - f->icount), NULL);
		break;
	case PROBE_WAIT:
		push(vcpu, DB_WAIT_END, ic, s->pc, thread, (uint64_t)f->val[0], (int32_t)reg(v, PROBE_RAX), 0,
		     NULL);
		break;
	default:
		emit(v, vcpu, f->probe, ic, s->pc, thread, f->val, f->text);
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
	push(vcpu, DB_IRQL, ic, s->pc, current_thread(v), PROBE_IRQL_CR8, old, val, NULL);
}

static void on_wrmsr(struct vcpu *v, unsigned vcpu, const struct site *s, uint64_t ic)
{
	uint32_t msr = (uint32_t)reg(v, PROBE_RCX);

	if (msr == MSR_X2APIC_EOI) {
		push(vcpu, DB_EOI, ic, s->pc, current_thread(v), 0, 1, 0, NULL);
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
	push(vcpu, DB_MARKER, ic, s->pc, current_thread(v), 0, DB_MARK_SERIAL, 0, v->serial);
	v->serial_len = 0;
	if (c != '\n')
		v->serial[v->serial_len++] = c;
}

static void on_site(unsigned int vcpu, void *udata)
{
	const struct site *s = udata;
	struct vcpu *v = &the.vcpus[vcpu];
	uint64_t ic = icount_now(vcpu);

	v->loaded = 0;
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
		if (s->roles & ROLE_RET)
			on_ret(v, vcpu, s, ic);
		break;
	default:
		break;
	}
}

/* A 32-bit store whose displacement ends in 0xb0: an xAPIC EOI if it hits
 * the APIC page's EOI register. */
static void on_store(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
	const struct site *s = udata;
	struct qemu_plugin_hwaddr *hw = qemu_plugin_get_hwaddr(info, vaddr);
	uint64_t base = __atomic_load_n(&the.apic_base, __ATOMIC_RELAXED), phys;
	struct vcpu *v = &the.vcpus[vcpu];

	if (!hw || !qemu_plugin_hwaddr_is_io(hw))
		return;
	phys = qemu_plugin_hwaddr_phys_addr(hw);
	if (phys != base + 0xb0)
		return;
	v->loaded = 0;
	/* the memory callback runs after the store's instruction was counted */
	push(vcpu, DB_EOI, icount_now(vcpu) - 1, s->pc, current_thread(v), 0, 2, 0, NULL);
}

/* -------------------------------------------------------------- translation */

static int in_ret_range(uint64_t pc)
{
	guint i;

	for (i = 0; i < the.ret_ranges->len; i++) {
		const struct range *r = &g_array_index(the.ret_ranges, struct range, i);

		if (pc >= r->lo && pc < r->hi)
			return 1;
	}
	return 0;
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

	(void)id;
	g_mutex_lock(&the.lock);
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
		/* an interrupt always starts a new TB at its handler */
		if (i == 0 && (hv = g_hash_table_lookup(the.handlers, GSIZE_TO_POINTER(pc)))) {
			roles |= ROLE_TRAP;
			vector = (int)GPOINTER_TO_SIZE(hv) - 1;
		}
		if ((entry = g_hash_table_lookup(the.entries, GSIZE_TO_POINTER(pc))))
			roles |= ROLE_ENTRY;
		if (ii.cls == INSN_RET && in_ret_range(pc))
			roles |= ROLE_RET;
		if (roles || (ii.cls != INSN_OTHER && ii.cls != INSN_RET)) {
			struct site *s = site_for(pc, roles, vector, entry, &ii);

			if (ii.cls == INSN_STORE32_B0)
				qemu_plugin_register_vcpu_mem_cb(insn, on_store, QEMU_PLUGIN_CB_R_REGS,
				                                 QEMU_PLUGIN_MEM_W, s);
			if (roles || ii.cls != INSN_STORE32_B0)
				qemu_plugin_register_vcpu_insn_exec_cb(insn, on_site, QEMU_PLUGIN_CB_R_REGS,
				                                       s);
		}
		/* after the callback: callbacks see the count of instructions before theirs */
		qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(insn, QEMU_PLUGIN_INLINE_ADD_U64,
		                                                    the.icount, 1);
	}
	g_mutex_unlock(&the.lock);
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
	}
	if (regs)
		g_array_free(regs, TRUE);
}

static void on_exit_cb(qemu_plugin_id_t id, void *p)
{
	char buf[32], *err = NULL;
	uint64_t total = 0;
	int i;

	(void)id;
	(void)p;
	if (!the.w)
		return;
	for (i = 0; i < the.nvcpus; i++) {
		struct vcpu *v = &the.vcpus[i];

		total += icount_now((unsigned)i);
		if (v->serial_len) {
			v->serial[v->serial_len] = '\0';
			push((unsigned)i, DB_MARKER, icount_now((unsigned)i), 0, v->thread, 0, DB_MARK_SERIAL,
			     0, v->serial);
		}
	}
	snprintf(buf, sizeof(buf), "%" PRIu64, total);
	db_writer_set_meta(the.w, "icount_total", buf);
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

			if (t && t->is_func && t->size && t->addr == targets[i])
				add_ret_range(t, depth - 1);
		}
	}
	g_free(code);
}

static int setup(const char *db, const char *probe_path, const char *symbols, char **err)
{
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
	if ((rc = db_writer_open(db, namer, NULL, &the.w, err)))
		return rc;
	for (i = 0; the.probe && i < the.probe->nprobes; i++) {
		const struct probe *p = &the.probe->probes[i];

		g_hash_table_insert(the.entries, GSIZE_TO_POINTER(p->addr), (gpointer)p);
		if (probe_needs_return(p))
			add_ret_range(elfsym_find(the.syms, p->symbol), 3);
	}
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
	const char *db = NULL, *probe_path = NULL, *symbols = NULL;
	char *err = NULL;
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
		if (!slot) {
			fprintf(stderr,
			        "krewind: error: unknown plugin argument '%s' (db=, probe=, symbols=)\n",
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
	if (probe_path && !symbols) {
		fprintf(stderr, "krewind: error: probe=%s needs symbols=ELF\n", probe_path);
		return -1;
	}
	if (!info->system_emulation) {
		fprintf(stderr, "krewind: error: the plugin needs full-system emulation\n");
		return -1;
	}
	the.id = id;
	g_mutex_init(&the.lock);
	the.handlers = g_hash_table_new(NULL, NULL);
	the.entries = g_hash_table_new(NULL, NULL);
	the.sites = g_hash_table_new(NULL, NULL);
	the.all_sites = g_ptr_array_new_with_free_func(g_free);
	the.frames = g_hash_table_new(NULL, NULL);
	the.ret_ranges = g_array_new(FALSE, FALSE, sizeof(struct range));
	the.tstacks = g_hash_table_new_full(NULL, NULL, NULL, g_free);
	the.named = g_hash_table_new_full(NULL, NULL, NULL, g_free);
	the.apic_base = XAPIC_DEFAULT_BASE;
	the.nvcpus = info->system.max_vcpus > 0 ? info->system.max_vcpus : 1;
	the.vcpus = g_new0(struct vcpu, the.nvcpus);
	rc = setup(db, probe_path, symbols, &err);
	if (rc) {
		fprintf(stderr, "krewind: error: %s\n", err ? err : "cannot start the tracer");
		free(err);
		if (the.w)
			db_writer_close(the.w, NULL);
		the.w = NULL;
		return -1;
	}
	the.icount_sb = qemu_plugin_scoreboard_new(sizeof(uint64_t));
	the.icount = qemu_plugin_scoreboard_u64(the.icount_sb);
	qemu_plugin_register_vcpu_init_cb(id, on_vcpu_init);
	qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
	qemu_plugin_register_atexit_cb(id, on_exit_cb, NULL);
	return 0;
}
