/*
 * test_tracer.c - Capstone classification of the instructions the plugin
 * instruments (lidt, mov cr8, wrmsr, iretq, out dx,al, ret, jmp, int N,
 * xAPIC-EOI-like stores), the effective-address computation used for lidt,
 * and insn_mid_block (the byte-level test count.c relies on) against
 * Capstone's own view of 100 k generated instructions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <capstone/capstone.h>
#include <cmocka.h>

#include "tracer/tracer.h"

static int open_dec(void **state)
{
	struct insn_decoder *d = NULL;

	if (insn_decoder_open(&d, NULL))
		return -1;
	*state = d;
	return 0;
}

static int close_dec(void **state)
{
	insn_decoder_free(*state);
	return 0;
}

#define CLASSIFY(state, info, ...)                                                                           \
	do {                                                                                                 \
		static const uint8_t code_[] = {__VA_ARGS__};                                                \
		assert_int_equal(insn_classify(*(state), code_, sizeof(code_), 0x1000, (info)), 0);          \
	} while (0)

static void test_insn_lidt_register_base(void **state)
{
	struct insn_info ii;

	CLASSIFY(state, &ii, 0x0f, 0x01, 0x18); /* lidt [rax] */
	assert_int_equal(ii.cls, INSN_LIDT);
	assert_int_equal(ii.len, 3);
	assert_int_equal(ii.mem.base, PROBE_RAX);
	assert_int_equal(ii.mem.index, INSN_REG_NONE);
	assert_int_equal(ii.mem.disp, 0);
}

static void test_insn_lidt_rip_relative(void **state)
{
	struct insn_info ii;
	uint64_t regs[PROBE_NREGS] = {0};

	CLASSIFY(state, &ii, 0x0f, 0x01, 0x1d, 0x00, 0x01, 0x00, 0x00); /* lidt [rip+0x100] */
	assert_int_equal(ii.cls, INSN_LIDT);
	assert_int_equal(ii.len, 7);
	assert_int_equal(ii.mem.base, INSN_REG_RIP);
	assert_int_equal(insn_mem_addr(&ii.mem, regs, 0x1000, ii.len), 0x1107);
}

static void test_insn_lgdt_is_not_lidt(void **state)
{
	struct insn_info ii;

	CLASSIFY(state, &ii, 0x0f, 0x01, 0x10); /* lgdt [rax] */
	assert_int_equal(ii.cls, INSN_OTHER);
}

static void test_insn_mov_cr8_gives_source_register(void **state)
{
	struct insn_info ii;

	CLASSIFY(state, &ii, 0x44, 0x0f, 0x22, 0xc7); /* mov cr8, rdi */
	assert_int_equal(ii.cls, INSN_MOV_CR8);
	assert_int_equal(ii.reg, PROBE_RDI);
	CLASSIFY(state, &ii, 0x45, 0x0f, 0x22, 0xc1); /* mov cr8, r9 */
	assert_int_equal(ii.cls, INSN_MOV_CR8);
	assert_int_equal(ii.reg, PROBE_R9);
}

static void test_insn_other_control_registers_are_ignored(void **state)
{
	struct insn_info ii;

	CLASSIFY(state, &ii, 0x0f, 0x22, 0xd8); /* mov cr3, rax */
	assert_int_equal(ii.cls, INSN_OTHER);
	CLASSIFY(state, &ii, 0x44, 0x0f, 0x20, 0xc0); /* mov rax, cr8 (a read) */
	assert_int_equal(ii.cls, INSN_OTHER);
}

static void test_insn_wrmsr(void **state)
{
	struct insn_info ii;

	CLASSIFY(state, &ii, 0x0f, 0x30);
	assert_int_equal(ii.cls, INSN_WRMSR);
	CLASSIFY(state, &ii, 0x0f, 0x32); /* rdmsr */
	assert_int_equal(ii.cls, INSN_OTHER);
}

static void test_insn_iretq_but_not_iretd(void **state)
{
	struct insn_info ii;

	CLASSIFY(state, &ii, 0x48, 0xcf);
	assert_int_equal(ii.cls, INSN_IRETQ);
	assert_int_equal(ii.len, 2);
	CLASSIFY(state, &ii, 0xcf);
	assert_int_equal(ii.cls, INSN_OTHER);
}

static void test_insn_out_dx_al_only(void **state)
{
	struct insn_info ii;

	CLASSIFY(state, &ii, 0xee);
	assert_int_equal(ii.cls, INSN_OUT_DX_AL);
	CLASSIFY(state, &ii, 0xef); /* out dx, eax */
	assert_int_equal(ii.cls, INSN_OTHER);
	CLASSIFY(state, &ii, 0xe6, 0xf4); /* out 0xf4, al */
	assert_int_equal(ii.cls, INSN_OTHER);
}

static void test_insn_ret_forms(void **state)
{
	struct insn_info ii;

	CLASSIFY(state, &ii, 0xc3);
	assert_int_equal(ii.cls, INSN_RET);
	CLASSIFY(state, &ii, 0xc2, 0x08, 0x00);
	assert_int_equal(ii.cls, INSN_RET);
	assert_int_equal(ii.len, 3);
	CLASSIFY(state, &ii, 0xf3, 0xc3); /* rep ret */
	assert_int_equal(ii.cls, INSN_RET);
	CLASSIFY(state, &ii, 0xcb); /* far ret */
	assert_int_equal(ii.cls, INSN_OTHER);
}

static void test_insn_store32_at_b0_is_eoi_candidate(void **state)
{
	struct insn_info ii;
	uint64_t regs[PROBE_NREGS] = {0};

	CLASSIFY(state, &ii, 0x89, 0x88, 0xb0, 0x00, 0x00, 0x00); /* mov [rax+0xb0], ecx */
	assert_int_equal(ii.cls, INSN_STORE32_B0);
	regs[PROBE_RAX] = 0xfee00000;
	assert_int_equal(insn_mem_addr(&ii.mem, regs, 0x1000, ii.len), 0xfee000b0);
	/* mov dword [0xfffffffffee000b0], 0 (absolute, sign-extended disp32) */
	CLASSIFY(state, &ii, 0xc7, 0x04, 0x25, 0xb0, 0x00, 0xe0, 0xfe, 0x00, 0x00, 0x00, 0x00);
	assert_int_equal(ii.cls, INSN_STORE32_B0);
	assert_int_equal(ii.mem.base, INSN_REG_NONE);
}

/* Linux's native_apic_mem_write: `mov %esi,-0xa03000(%rdi)`, rdi = the
 * register offset (0xb0), the displacement the APIC's fixmap page. */
static void test_insn_store32_at_fixmap_page_is_eoi_candidate(void **state)
{
	struct insn_info ii;
	uint64_t regs[PROBE_NREGS] = {0};

	CLASSIFY(state, &ii, 0x89, 0xb7, 0x00, 0xd0, 0x5f, 0xff); /* mov [rdi-0xa03000], esi */
	assert_int_equal(ii.cls, INSN_STORE32_B0);
	assert_int_equal(ii.mem.base, PROBE_RDI);
	regs[PROBE_RDI] = 0xb0;
	assert_int_equal(insn_mem_addr(&ii.mem, regs, 0x1000, ii.len), 0xffffffffff5fd0b0ull);
	/* the same on the stack, or a small page-aligned offset: not candidates */
	CLASSIFY(state, &ii, 0x89, 0xb4, 0x24, 0x00, 0xd0, 0x5f, 0xff); /* mov [rsp-0xa03000], esi */
	assert_int_equal(ii.cls, INSN_STORE32);
	CLASSIFY(state, &ii, 0x89, 0xb7, 0x00, 0x10, 0x00, 0x00); /* mov [rdi+0x1000], esi */
	assert_int_equal(ii.cls, INSN_STORE32);
}

/* jmp rel32/rel8 give their target (a jmp to a return thunk is a ret);
 * int N, int3, int1 their vector (a software trap). */
static void test_insn_jmp_target_and_int_vector(void **state)
{
	struct insn_info ii;

	CLASSIFY(state, &ii, 0xe9, 0x10, 0x00, 0x00, 0x00); /* jmp 0x1015 */
	assert_int_equal(ii.cls, INSN_JMP);
	assert_int_equal(ii.target, 0x1015);
	CLASSIFY(state, &ii, 0xeb, 0xfe); /* jmp $ */
	assert_int_equal(ii.cls, INSN_JMP);
	assert_int_equal(ii.target, 0x1000);
	CLASSIFY(state, &ii, 0xff, 0xe0); /* jmp rax: no target */
	assert_int_equal(ii.cls, INSN_OTHER);
	CLASSIFY(state, &ii, 0xcd, 0x80); /* int 0x80 */
	assert_int_equal(ii.cls, INSN_INT);
	assert_int_equal(ii.reg, 0x80);
	CLASSIFY(state, &ii, 0xcc); /* int3 */
	assert_int_equal(ii.cls, INSN_INT);
	assert_int_equal(ii.reg, 3);
	CLASSIFY(state, &ii, 0xf1); /* int1 */
	assert_int_equal(ii.cls, INSN_INT);
	assert_int_equal(ii.reg, 1);
}

static void test_insn_other_stores_are_not_eoi_candidates(void **state)
{
	struct insn_info ii;

	CLASSIFY(state, &ii, 0x89, 0x88, 0xb4, 0x00, 0x00, 0x00); /* mov [rax+0xb4], ecx */
	assert_int_equal(ii.cls, INSN_STORE32);
	/* the hobby kernel's EOI, the whole address in rax: only a plain store
	 * (the plugin checks it inside a probe's eoi function) */
	CLASSIFY(state, &ii, 0x89, 0x30); /* mov [rax], esi */
	assert_int_equal(ii.cls, INSN_STORE32);
	assert_int_equal(ii.mem.base, PROBE_RAX);
	assert_int_equal(ii.mem.disp, 0);
	CLASSIFY(state, &ii, 0x48, 0x89, 0x88, 0xb0, 0x00, 0x00, 0x00); /* 64-bit store */
	assert_int_equal(ii.cls, INSN_OTHER);
	CLASSIFY(state, &ii, 0x8b, 0x88, 0xb0, 0x00, 0x00, 0x00); /* a load */
	assert_int_equal(ii.cls, INSN_OTHER);
}

static void test_insn_ordinary_instructions_are_other(void **state)
{
	struct insn_info ii;

	CLASSIFY(state, &ii, 0x90);
	assert_int_equal(ii.cls, INSN_OTHER);
	CLASSIFY(state, &ii, 0x48, 0x89, 0xe5); /* mov rbp, rsp */
	assert_int_equal(ii.cls, INSN_OTHER);
	CLASSIFY(state, &ii, 0xe8, 0x00, 0x00, 0x00, 0x00); /* call */
	assert_int_equal(ii.cls, INSN_OTHER);
}

static void test_insn_mem_addr_base_index_scale(void **state)
{
	struct insn_info ii;
	uint64_t regs[PROBE_NREGS] = {0};

	/* lidt [rbx + rcx*8 + 0x10] */
	CLASSIFY(state, &ii, 0x0f, 0x01, 0x5c, 0xcb, 0x10);
	assert_int_equal(ii.cls, INSN_LIDT);
	assert_int_equal(ii.mem.base, PROBE_RBX);
	assert_int_equal(ii.mem.index, PROBE_RCX);
	assert_int_equal(ii.mem.scale, 8);
	regs[PROBE_RBX] = 0x5000;
	regs[PROBE_RCX] = 3;
	assert_int_equal(insn_mem_addr(&ii.mem, regs, 0x1000, ii.len), 0x5028);
}

static void test_insn_jump_targets_out_finds_tail_calls(void **state)
{
	/* at 0x1000: test edi,edi; je +2 (inside); jmp 0x2000 (tail call); jne 0x3000; ret */
	static const uint8_t code[] = {
	    0x85, 0xff,                         /* 1000 test edi, edi */
	    0x74, 0x05,                         /* 1002 je 1009 (inside) */
	    0xe9, 0xf7, 0x0f, 0x00, 0x00,       /* 1004 jmp 2000 */
	    0x0f, 0x85, 0xf1, 0x1f, 0x00, 0x00, /* 1009 jne 3000 */
	    0xc3,                               /* 100f ret */
	};
	uint64_t t[4] = {0};

	assert_int_equal(insn_jump_targets_out(*state, code, sizeof(code), 0x1000, t, 4), 2);
	assert_int_equal(t[0], 0x2000);
	assert_int_equal(t[1], 0x3000);
}

static void test_insn_jump_targets_out_ignores_calls_and_inner_jumps(void **state)
{
	static const uint8_t code[] = {
	    0xe8, 0xfb, 0x0f, 0x00, 0x00, /* 1000 call 2000 */
	    0xeb, 0xf9,                   /* 1005 jmp 1000 */
	    0xff, 0xe0,                   /* 1007 jmp rax (indirect) */
	};
	uint64_t t[4] = {0};

	assert_int_equal(insn_jump_targets_out(*state, code, sizeof(code), 0x1000, t, 4), 0);
}

/* Capstone's word on whether an instruction always ends a QEMU block: a
 * control transfer, or a rep/repne string instruction. */
static int ends_block(csh cs, const cs_insn *in)
{
	static const unsigned strings[] = {
	    X86_INS_MOVSB, X86_INS_MOVSW, X86_INS_MOVSD, X86_INS_MOVSQ, X86_INS_CMPSB, X86_INS_CMPSW,
	    X86_INS_CMPSD, X86_INS_CMPSQ, X86_INS_STOSB, X86_INS_STOSW, X86_INS_STOSD, X86_INS_STOSQ,
	    X86_INS_LODSB, X86_INS_LODSW, X86_INS_LODSD, X86_INS_LODSQ, X86_INS_SCASB, X86_INS_SCASW,
	    X86_INS_SCASD, X86_INS_SCASQ, X86_INS_INSB,  X86_INS_INSW,  X86_INS_INSD,  X86_INS_OUTSB,
	    X86_INS_OUTSW, X86_INS_OUTSD,
	};
	const cs_x86 *x = &in->detail->x86;
	size_t i, j;

	if (cs_insn_group(cs, in, X86_GRP_JUMP) || cs_insn_group(cs, in, X86_GRP_CALL) ||
	    cs_insn_group(cs, in, X86_GRP_RET) || cs_insn_group(cs, in, X86_GRP_INT) ||
	    cs_insn_group(cs, in, X86_GRP_IRET) || cs_insn_group(cs, in, X86_GRP_BRANCH_RELATIVE) ||
	    in->id == X86_INS_SYSCALL || in->id == X86_INS_SYSRET ||
	    in->id == X86_INS_SYSENTER || in->id == X86_INS_SYSEXIT)
		return 1;
	for (i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
		if (in->id == strings[i] && x->opcode[0] != 0x0f) { /* not SSE cmpsd, movsd */
			/* Capstone 4 drops a repne on movs: look at the bytes (a string
			 * instruction's opcode is its first byte past the prefixes) */
			for (j = 0; j + 1 < in->size; j++)
				if (in->bytes[j] == 0xf2 || in->bytes[j] == 0xf3)
					return 1;
			return x->prefix[0] == X86_PREFIX_REP || x->prefix[0] == X86_PREFIX_REPNE;
		}
	return 0;
}

static void test_insn_mid_block_agrees_with_capstone(void **state)
{
	static const uint8_t prefixes[] = {0x66, 0x67, 0xf0, 0xf2, 0xf3, 0x2e, 0x3e, 0x64, 0x65, 0x48, 0x41};
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	csh cs;
	cs_insn *in;
	int decoded = 0, ends = 0, i;

	(void)state;
	assert_int_equal(cs_open(CS_ARCH_X86, CS_MODE_64, &cs), CS_ERR_OK);
	cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
	in = cs_malloc(cs);
	for (i = 0; i < 100000; i++) {
		uint8_t code[16];
		const uint8_t *p = code;
		size_t n = sizeof(code), k = 0, j;
		uint64_t a = 0x1000;

		for (j = 0; j < sizeof(code); j++) {
			seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
			code[j] = (uint8_t)(seed >> 24);
		}
		/* up to two prefixes (REX last), then a one-byte or 0f opcode */
		for (j = code[15] % 3; j > 0; j--)
			code[k++] = prefixes[code[14 - j] % sizeof(prefixes)];
		if (code[13] & 1)
			code[k] = 0x0f;
		if (!cs_disasm_iter(cs, &p, &n, &a, in))
			continue;
		decoded++;
		ends += ends_block(cs, in);
		if (insn_mid_block(code, in->size) == ends_block(cs, in))
			fail_msg("%s %s (%u bytes: %02x %02x %02x %02x): insn_mid_block says %d", in->mnemonic, in->op_str,
			         in->size, code[0], code[1], code[2], code[3], insn_mid_block(code, in->size));
	}
	cs_free(in, 1);
	cs_close(&cs);
	assert_true(decoded > 50000);
	assert_true(ends > 1000); /* the generator reaches both answers */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_insn_lidt_register_base),
	    cmocka_unit_test(test_insn_store32_at_fixmap_page_is_eoi_candidate),
	    cmocka_unit_test(test_insn_jmp_target_and_int_vector),
	    cmocka_unit_test(test_insn_lidt_rip_relative),
	    cmocka_unit_test(test_insn_lgdt_is_not_lidt),
	    cmocka_unit_test(test_insn_mov_cr8_gives_source_register),
	    cmocka_unit_test(test_insn_other_control_registers_are_ignored),
	    cmocka_unit_test(test_insn_wrmsr),
	    cmocka_unit_test(test_insn_iretq_but_not_iretd),
	    cmocka_unit_test(test_insn_out_dx_al_only),
	    cmocka_unit_test(test_insn_ret_forms),
	    cmocka_unit_test(test_insn_store32_at_b0_is_eoi_candidate),
	    cmocka_unit_test(test_insn_other_stores_are_not_eoi_candidates),
	    cmocka_unit_test(test_insn_ordinary_instructions_are_other),
	    cmocka_unit_test(test_insn_mem_addr_base_index_scale),
	    cmocka_unit_test(test_insn_jump_targets_out_finds_tail_calls),
	    cmocka_unit_test(test_insn_jump_targets_out_ignores_calls_and_inner_jumps),
	    cmocka_unit_test(test_insn_mid_block_agrees_with_capstone),
	};

	return cmocka_run_group_tests_name("tracer", tests, open_dec, close_dec);
}
