/*
 * insn.c - classifies the few x86-64 instructions the tracer instruments.
 *
 * Runs at translation time only (once per translated instruction), so it can
 * afford Capstone with operand details. A cheap opcode-byte filter skips
 * Capstone for the vast majority of instructions.
 */
#include <capstone/capstone.h>
#include <stdlib.h>
#include <string.h>

#include "tracer/tracer.h"

struct insn_decoder {
	csh cs;
	cs_insn *insn;
};

int insn_decoder_open(struct insn_decoder **out, char **err)
{
	struct insn_decoder *d = calloc(1, sizeof(*d));

	*out = NULL;
	if (!d) {
		if (err)
			*err = strdup("out of memory");
		return TRACER_E_NOMEM;
	}
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &d->cs) != CS_ERR_OK ||
	    cs_option(d->cs, CS_OPT_DETAIL, CS_OPT_ON) != CS_ERR_OK || !(d->insn = cs_malloc(d->cs))) {
		if (err)
			*err = strdup("capstone: cannot open an x86-64 decoder");
		if (d->cs)
			cs_close(&d->cs);
		free(d);
		return TRACER_E_NOMEM;
	}
	*out = d;
	return 0;
}

void insn_decoder_free(struct insn_decoder *d)
{
	if (!d)
		return;
	cs_free(d->insn, 1);
	cs_close(&d->cs);
	free(d);
}

static int map_reg(x86_reg r)
{
	static const x86_reg r64[PROBE_NREGS] = {
	    X86_REG_RAX, X86_REG_RBX, X86_REG_RCX, X86_REG_RDX, X86_REG_RSI, X86_REG_RDI,
	    X86_REG_RBP, X86_REG_RSP, X86_REG_R8,  X86_REG_R9,  X86_REG_R10, X86_REG_R11,
	    X86_REG_R12, X86_REG_R13, X86_REG_R14, X86_REG_R15,
	};
	int i;

	if (r == X86_REG_INVALID)
		return INSN_REG_NONE;
	if (r == X86_REG_RIP)
		return INSN_REG_RIP;
	for (i = 0; i < PROBE_NREGS; i++)
		if (r64[i] == r)
			return i;
	return -1;
}

static int fill_mem(const cs_x86_op *op, struct insn_mem *m)
{
	m->base = map_reg(op->mem.base);
	m->index = map_reg(op->mem.index);
	if (m->base < 0 || m->index < 0 || m->index == INSN_REG_RIP)
		return -1; /* 32-bit addressing: not something a 64-bit kernel does */
	m->scale = op->mem.scale;
	m->disp = op->mem.disp;
	m->seg_gs = op->mem.segment == X86_REG_GS;
	m->seg_fs = op->mem.segment == X86_REG_FS;
	return 0;
}

/* The opcode byte after legacy and REX prefixes; the second byte for 0F xx. */
static int worth_decoding(const uint8_t *c, size_t len)
{
	size_t i = 0;

	while (i < len &&
	       (c[i] == 0x66 || c[i] == 0x67 || c[i] == 0xf0 || c[i] == 0xf2 || c[i] == 0xf3 ||
	        c[i] == 0x2e || c[i] == 0x3e || c[i] == 0x26 || c[i] == 0x36 || c[i] == 0x64 || c[i] == 0x65))
		i++;
	if (i < len && (c[i] & 0xf0) == 0x40)
		i++;
	if (i >= len)
		return 0;
	switch (c[i]) {
	case 0xcf: /* iret */
	case 0xee: /* out dx, al */
	case 0xc3:
	case 0xc2: /* ret */
	case 0x89:
	case 0xc7: /* mov m32, r32 / imm32 */
	case 0xe9:
	case 0xeb: /* jmp rel32 / rel8 */
	case 0xcc:
	case 0xcd:
	case 0xf1: /* int3, int N, int1 */
		return 1;
	case 0x0f:
		/* 0f 01 /3 lidt, 0f 22 mov crN, 0f 30 wrmsr */
		return i + 1 < len && (c[i + 1] == 0x01 || c[i + 1] == 0x22 || c[i + 1] == 0x30);
	}
	return 0;
}

/*
 * Whether QEMU can translate this instruction other than as the last of its
 * block: not a control transfer (jmp, jcc, call, ret, iret, loop, int,
 * syscall...) and not a rep string instruction (translated as a loop on
 * itself). Undecodable bytes say yes. Legacy and REX prefixes are skipped
 * as in 64-bit code (16/32-bit code's inc/dec then says yes: the safe side).
 */
int insn_mid_block(const uint8_t *c, size_t len)
{
	size_t i = 0;
	int rep = 0;

	/* a REX byte followed by a legacy prefix is ignored, not an error */
	while (i < len &&
	       (c[i] == 0x66 || c[i] == 0x67 || c[i] == 0xf0 || c[i] == 0xf2 || c[i] == 0xf3 || c[i] == 0x2e ||
	        c[i] == 0x3e || c[i] == 0x26 || c[i] == 0x36 || c[i] == 0x64 || c[i] == 0x65 || (c[i] & 0xf0) == 0x40))
		rep |= c[i] == 0xf2 || c[i] == 0xf3, i++;
	if (i >= len)
		return 1;
	if (c[i] >= 0x70 && c[i] <= 0x7f) /* jcc rel8 */
		return 0;
	switch (c[i]) {
	case 0xc2: case 0xc3: case 0xca: case 0xcb: /* ret, retf */
	case 0xcc: case 0xcd: case 0xce: case 0xcf: /* int3, int N, into, iret */
	case 0xe0: case 0xe1: case 0xe2: case 0xe3: /* loopnz, loopz, loop, jrcxz */
	case 0xe8: case 0xe9: case 0xea: case 0xeb: /* call, jmp */
	case 0x9a: case 0xf1:                       /* call far, int1 */
		return 0;
	case 0x6c: case 0x6d: case 0x6e: case 0x6f: /* ins, outs */
	case 0xa4: case 0xa5: case 0xa6: case 0xa7: /* movs, cmps */
	case 0xaa: case 0xab: case 0xac: case 0xad: /* stos, lods */
	case 0xae: case 0xaf:                       /* scas */
		return !rep;
	case 0xff: /* /2 /3 call, /4 /5 jmp */
		return i + 1 >= len || ((c[i + 1] >> 3) & 7) < 2 || ((c[i + 1] >> 3) & 7) > 5;
	case 0x0f:
		if (i + 1 >= len)
			return 1;
		/* jcc rel32; syscall, sysret, sysenter, sysexit */
		return !((c[i + 1] >= 0x80 && c[i + 1] <= 0x8f) || c[i + 1] == 0x05 || c[i + 1] == 0x07 ||
		         c[i + 1] == 0x34 || c[i + 1] == 0x35);
	}
	return 1;
}

/*
 * A 32-bit store that can reach the xAPIC EOI register (APIC base + 0xb0)
 * wherever the kernel mapped the APIC page: the displacement ends in 0xb0
 * (`mov [rax+0xb0], ecx` with rax = the page), or a register-based store
 * whose displacement is a page-aligned constant at least 1 MiB from 0 (the
 * page's own address, the register holding the offset: Linux's
 * `mov %esi,-0xa03000(%rdi)`). Stores to the stack and to small offsets of
 * structures never qualify, which keeps the memory callbacks rare.
 */
static int may_be_eoi(const cs_x86_op *op)
{
	int64_t d = op->mem.disp;

	if ((d & 0xfff) == 0xb0)
		return 1;
	return (d & 0xfff) == 0 && (d >= 0x100000 || d <= -0x100000) && op->mem.base != X86_REG_RIP &&
	       op->mem.base != X86_REG_RSP && op->mem.base != X86_REG_RBP &&
	       (op->mem.base != X86_REG_INVALID || op->mem.index != X86_REG_INVALID);
}

int insn_classify(struct insn_decoder *d, const uint8_t *code, size_t len, uint64_t addr,
                  struct insn_info *info)
{
	const uint8_t *p = code;
	size_t n = len;
	uint64_t a = addr;
	const cs_x86 *x;

	memset(info, 0, sizeof(*info));
	info->cls = INSN_OTHER;
	info->len = (unsigned)len;
	if (!worth_decoding(code, len) || !cs_disasm_iter(d->cs, &p, &n, &a, d->insn))
		return 0;
	info->len = d->insn->size;
	x = &d->insn->detail->x86;
	switch (d->insn->id) {
	case X86_INS_LIDT:
		if (x->op_count == 1 && x->operands[0].type == X86_OP_MEM &&
		    fill_mem(&x->operands[0], &info->mem) == 0)
			info->cls = INSN_LIDT;
		break;
	case X86_INS_MOV:
		if (x->op_count == 2 && x->operands[0].type == X86_OP_REG &&
		    x->operands[0].reg == X86_REG_CR8 && x->operands[1].type == X86_OP_REG) {
			info->reg = map_reg(x->operands[1].reg);
			if (info->reg >= 0 && info->reg < PROBE_NREGS)
				info->cls = INSN_MOV_CR8;
		} else if (x->op_count == 2 && x->operands[0].type == X86_OP_MEM && x->operands[0].size == 4 &&
		           fill_mem(&x->operands[0], &info->mem) == 0) {
			info->cls = may_be_eoi(&x->operands[0]) ? INSN_STORE32_B0 : INSN_STORE32;
		}
		break;
	case X86_INS_JMP:
		if (x->op_count == 1 && x->operands[0].type == X86_OP_IMM) {
			info->cls = INSN_JMP;
			info->target = (uint64_t)x->operands[0].imm;
		}
		break;
	case X86_INS_INT3:
		info->cls = INSN_INT;
		info->reg = 3;
		break;
	case X86_INS_INT1:
		info->cls = INSN_INT;
		info->reg = 1;
		break;
	case X86_INS_INT:
		if (x->op_count == 1 && x->operands[0].type == X86_OP_IMM) {
			info->cls = INSN_INT;
			info->reg = (int)(x->operands[0].imm & 0xff);
		}
		break;
	case X86_INS_WRMSR:
		info->cls = INSN_WRMSR;
		break;
	case X86_INS_IRETQ:
		info->cls = INSN_IRETQ;
		break;
	case X86_INS_OUT:
		if (x->op_count == 2 && x->operands[0].type == X86_OP_REG &&
		    x->operands[0].reg == X86_REG_DX && x->operands[1].type == X86_OP_REG &&
		    x->operands[1].reg == X86_REG_AL)
			info->cls = INSN_OUT_DX_AL;
		break;
	case X86_INS_RET:
		info->cls = INSN_RET;
		break;
	}
	return 0;
}

uint64_t insn_mem_addr(const struct insn_mem *m, const uint64_t regs[PROBE_NREGS], uint64_t pc, unsigned len)
{
	uint64_t ea = (uint64_t)m->disp;

	if (m->base == INSN_REG_RIP)
		ea += pc + len;
	else if (m->base < PROBE_NREGS)
		ea += regs[m->base];
	if (m->index < PROBE_NREGS)
		ea += regs[m->index] * (uint64_t)m->scale;
	return ea;
}

size_t insn_jump_targets_out(struct insn_decoder *d, const uint8_t *code, size_t len, uint64_t addr,
                             uint64_t *targets, size_t max)
{
	const uint8_t *p = code;
	size_t n = len, found = 0;
	uint64_t a = addr;

	while (n > 0) {
		const cs_x86 *x;
		uint64_t t;

		if (!cs_disasm_iter(d->cs, &p, &n, &a, d->insn)) {
			/* data or padding inside the function: skip a byte */
			p++, n--, a++;
			continue;
		}
		if (!cs_insn_group(d->cs, d->insn, X86_GRP_JUMP))
			continue;
		x = &d->insn->detail->x86;
		if (x->op_count != 1 || x->operands[0].type != X86_OP_IMM)
			continue;
		t = (uint64_t)x->operands[0].imm;
		if (t - addr < len)
			continue;
		if (found < max)
			targets[found] = t;
		found++;
	}
	return found;
}
