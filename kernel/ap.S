/*
 * ap.S: where an application processor starts. The BSP copies
 * KiApTrampoline..KiApTrampolineEnd to KI_AP_TRAMPOLINE (below 1 MiB, a
 * SIPI vector's page) and sends INIT-SIPI-SIPI (mp.c). The AP wakes in real
 * mode at that page, loads the trampoline's own GDT, enters protected mode,
 * turns on the BSP's page tables (the first 1 GiB identity-mapped, boot.S),
 * PAE and EFER.LME, and far-jumps into 64-bit code in the kernel image, which
 * takes the stack the BSP left in KiApStackTop and calls KiApStartup.
 */
#include "ke.h"

#define TRAMP(label) (KI_AP_TRAMPOLINE + ((label) - KiApTrampoline))

	.section .text
	.code16
	.global KiApTrampoline, KiApTrampolineEnd
KiApTrampoline:
	cli
	cld
	xorw %ax, %ax
	movw %ax, %ds
	lgdtl TRAMP(KiApGdtr)
	movl %cr0, %eax
	orl $1, %eax			/* PE */
	movl %eax, %cr0
	ljmpl $0x08, $TRAMP(KiAp32)

	.code32
KiAp32:
	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movl $KiBootPml4, %eax
	movl %eax, %cr3
	movl %cr4, %eax
	orl $(1 << 5), %eax		/* PAE */
	movl %eax, %cr4
	movl $0xC0000080, %ecx		/* IA32_EFER */
	rdmsr
	orl $(1 << 8), %eax		/* LME */
	wrmsr
	movl %cr0, %eax
	orl $0x80010001, %eax		/* PG | WP | PE */
	movl %eax, %cr0
	ljmpl $0x18, $KiAp64

	.balign 8
KiApGdt:
	.quad 0
	.quad 0x00CF9A000000FFFF	/* 0x08: 32-bit code */
	.quad 0x00CF92000000FFFF	/* 0x10: data */
	.quad 0x00AF9A000000FFFF	/* 0x18: 64-bit code */
KiApGdtEnd:
KiApGdtr:
	.word KiApGdtEnd - KiApGdt - 1
	.long TRAMP(KiApGdt)
KiApTrampolineEnd:

	.code64
	.type KiAp64, @function
KiAp64:
	movq KiApStackTop, %rsp
	xorl %ebp, %ebp
	call KiApStartup
1:	cli
	hlt
	jmp 1b
	.size KiAp64, . - KiAp64

	.section .note.GNU-stack, "", @progbits
