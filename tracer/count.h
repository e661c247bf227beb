/*
 * count.h - the per-vCPU instruction count of libkrewind.so (count.c), kept
 * block by block the way QEMU keeps its icount, so that an event's count is
 * the icount QEMU's record/replay knows it by.
 *
 * Internal to the plugin. Used when each vCPU has its own count (one vCPU
 * under -icount, or multi-threaded TCG); several vCPUs on one host thread
 * count the whole machine instead, with a callback per instruction (plugin.c,
 * "several vCPUs").
 */
#ifndef KREWIND_TRACER_COUNT_H
#define KREWIND_TRACER_COUNT_H

#include <stdint.h>

#include <qemu-plugin.h>

struct count_block; /* one translated block, as the count sees it */

/* Once, at install. */
void count_init(void);
/* Translation of tb (serialised by the caller): count_block first, before
 * any callback is registered; count_add once the first instruction's own
 * callbacks are, so that they run before the block is counted. */
const struct count_block *count_block(struct qemu_plugin_tb *tb);
void count_add(struct qemu_plugin_tb *tb, const struct count_block *b);
/* What a callback of instruction i of an n-instruction block passes to
 * count_before: for an instruction callback (mem = 0), which runs before the
 * instruction, or a memory callback (mem = 1), which runs after its access. */
unsigned count_back(unsigned i, unsigned n, int mem);
/* The count of instructions before the callback's own (see count_back). */
uint64_t count_before(unsigned vcpu, unsigned back);
/* The vCPU's count now (between blocks: the count of everything run). */
uint64_t count_now(unsigned vcpu);
/* A fault QEMU rolled back at rip (the instruction restarts after the
 * handler): takes back what the block counted from rip on. Called from the
 * handler's first instruction. Returns how many were taken back; 0 if the
 * faulting block is not known (counted in count_unmatched). */
uint64_t count_fault(unsigned vcpu, uint64_t rip);
/* Blocks cut short by an MMIO access (QEMU's io recompile) and faults whose
 * block was not found, since install. */
uint64_t count_io_reruns(void);
uint64_t count_unmatched(void);

#endif
