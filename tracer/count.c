/*
 * count.c - the instruction count, block by block, as QEMU keeps its icount.
 *
 * Under -icount QEMU takes a block's n instructions off the budget when the
 * block starts and gives back the ones that did not run when it leaves the
 * block early (cpu_restore_state). The plugin does the same with two inline
 * ops on the block's first instruction, after that instruction's callbacks:
 * add n to the vCPU's count, and note the block (its struct count_block) as
 * the one running. A callback of instruction i then knows its count from the
 * block: the count minus (n - i); a callback of the first instruction runs
 * before the add. That costs two inline ops a block instead of one an
 * instruction (bench/linux_record.sh).
 *
 * A block is left early in two ways that reach the plugin:
 * - a fault QEMU rolls back (the instruction restarts after the handler): the
 *   handler's first instruction (plugin.c on_trap, before that block's own
 *   add) finds the faulting instruction k in the block noted last and takes
 *   back n - k, what QEMU gives back;
 * - in icount mode an MMIO access by an instruction that is not its block's
 *   last (cpu_io_recompile): QEMU gives back the rest of the block and runs
 *   that instruction again alone, in a one-instruction block that keeps only
 *   memory callbacks and counts 1. Every one-instruction block of an
 *   instruction that can be in the middle of a block (insn_mid_block: not a
 *   branch, not a rep string loop, which run alone all the time) has a memory
 *   callback here; it sees a block noted that is not itself only in that
 *   case, and takes back the n - k - 1 instructions after k.
 * Neither is visible otherwise: a fault or an MMIO access in the middle of a
 * block is the only way (besides code rewriting itself, which QEMU's replay
 * does not re-execute the same either) to leave a block before its end.
 */
#include <glib.h>
#include <stdlib.h>

#include "tracer/count.h"
#include "tracer/tracer.h"

struct count_block {
	uint64_t pc;       /* of its first instruction */
	unsigned n;        /* instructions */
	uint16_t off[];    /* where each starts, from pc (a block spans at most two pages) */
};

static struct {
	struct qemu_plugin_scoreboard *sb; /* per vCPU: uint64_t count, block */
	qemu_plugin_u64 count, block;
	GHashTable *blocks;                /* pc ^ n << 48 -> the latest struct count_block */
	GPtrArray *all;                    /* every block made (a translation may still note one) */
	uint64_t io_reruns, unmatched;     /* atomics: vCPU threads */
} c;

void count_init(void)
{
	c.sb = qemu_plugin_scoreboard_new(2 * sizeof(uint64_t));
	c.count = (qemu_plugin_u64){c.sb, 0};
	c.block = (qemu_plugin_u64){c.sb, sizeof(uint64_t)};
	c.blocks = g_hash_table_new(NULL, NULL);
	c.all = g_ptr_array_new_with_free_func(g_free);
}

static const struct count_block *noted(unsigned vcpu)
{
	return (const struct count_block *)(uintptr_t)qemu_plugin_u64_get(c.block, vcpu);
}

/*
 * The index of the instruction at pc in b, -1 if none is there. x86 blocks
 * are position-independent in QEMU 10 (CF_PCREL): one block serves every
 * virtual address of its physical page (a shared library or the vDSO in
 * two processes), and its pcs are those of the translation. So an
 * instruction is found by its place in the page, the exact address
 * preferred (a block longer than a page could have two).
 */
static int index_of(const struct count_block *b, uint64_t pc)
{
	unsigned i;
	int found = -1;

	for (i = 0; b && i < b->n; i++) {
		uint64_t at = b->pc + b->off[i];

		if (at == pc)
			return (int)i;
		if (found < 0 && ((at ^ pc) & 0xfff) == 0)
			found = (int)i;
	}
	return found;
}

/* The one-instruction block of an io recompile: give back what the block
 * that was cut short counted after the instruction. */
static void on_io_rerun(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
	const struct count_block *self = udata, *cut = noted(vcpu);
	int k;

	(void)info;
	(void)vaddr;
	if (cut == self) /* a plain one-instruction block, or its second access */
		return;
	qemu_plugin_u64_set(c.block, vcpu, (uint64_t)(uintptr_t)self);
	k = index_of(cut, self->pc);
	if (k < 0) {
		__atomic_add_fetch(&c.unmatched, 1, __ATOMIC_RELAXED);
		return;
	}
	qemu_plugin_u64_add(c.count, vcpu, (uint64_t)-(int64_t)(cut->n - (unsigned)k - 1));
	__atomic_add_fetch(&c.io_reruns, 1, __ATOMIC_RELAXED);
}

const struct count_block *count_block(struct qemu_plugin_tb *tb)
{
	size_t n = qemu_plugin_tb_n_insns(tb), i;
	uint64_t pc = qemu_plugin_tb_vaddr(tb);
	gpointer key = GSIZE_TO_POINTER(pc ^ (uint64_t)n << 48);
	struct count_block *b = g_hash_table_lookup(c.blocks, key);
	int same = b != NULL;

	for (i = 0; same && i < n; i++)
		same = b->off[i] == qemu_plugin_insn_vaddr(qemu_plugin_tb_get_insn(tb, i)) - pc;
	if (!same) {
		b = g_malloc(sizeof(*b) + n * sizeof(b->off[0]));
		b->pc = pc;
		b->n = (unsigned)n;
		for (i = 0; i < n; i++)
			b->off[i] = (uint16_t)(qemu_plugin_insn_vaddr(qemu_plugin_tb_get_insn(tb, i)) - pc);
		g_ptr_array_add(c.all, b);
		g_hash_table_replace(c.blocks, key, b);
	}
	if (n == 1) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, 0);
		uint8_t code[16];
		size_t len = qemu_plugin_insn_data(insn, code, sizeof(code));

		if (insn_mid_block(code, len))
			qemu_plugin_register_vcpu_mem_cb(insn, on_io_rerun, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW,
			                                 b);
	}
	return b;
}

void count_add(struct qemu_plugin_tb *tb, const struct count_block *b)
{
	struct qemu_plugin_insn *first = qemu_plugin_tb_get_insn(tb, 0);

	qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(first, QEMU_PLUGIN_INLINE_ADD_U64, c.count, b->n);
	qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(first, QEMU_PLUGIN_INLINE_STORE_U64, c.block,
	                                                    (uint64_t)(uintptr_t)b);
}

unsigned count_back(unsigned i, unsigned n, int mem)
{
	return i == 0 && !mem ? 0 : n - i;
}

uint64_t count_before(unsigned vcpu, unsigned back)
{
	return qemu_plugin_u64_get(c.count, vcpu) - back;
}

uint64_t count_now(unsigned vcpu)
{
	return qemu_plugin_u64_get(c.count, vcpu);
}

uint64_t count_fault(unsigned vcpu, uint64_t rip)
{
	const struct count_block *b = noted(vcpu);
	int k = index_of(b, rip);

	if (k < 0) {
		__atomic_add_fetch(&c.unmatched, 1, __ATOMIC_RELAXED);
		return 0;
	}
	qemu_plugin_u64_add(c.count, vcpu, (uint64_t)-(int64_t)(b->n - (unsigned)k));
	return b->n - (unsigned)k;
}

uint64_t count_io_reruns(void)
{
	return __atomic_load_n(&c.io_reruns, __ATOMIC_RELAXED);
}

uint64_t count_unmatched(void)
{
	return __atomic_load_n(&c.unmatched, __ATOMIC_RELAXED);
}
