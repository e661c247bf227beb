/*
 * boot.S: PVH entry. QEMU's -kernel loads a 64-bit ELF only through the Xen
 * PVH note (XEN_ELFNOTE_PHYS32_ENTRY): it enters KiPvhEntry in 32-bit
 * protected mode with paging off and %ebx = physical address of struct
 * hvm_start_info. We identity-map the first 1 GiB with 2 MiB pages, turn on
 * PAE + EFER.LME + paging, and far-jump into 64-bit code running at the same
 * (low) addresses the kernel is linked at.
 */
#include "ke.h"

/* QEMU reads the note's descriptor as a pointer-sized value located after the
 * name padded to the PT_NOTE segment's alignment, so keep the section 4-aligned
 * and the descriptor 8 bytes. */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4			/* namesz: "Xen\0" */
	.long 8			/* descsz */
	.long 18		/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.balign 4
	.quad KiPvhEntry

	.section .text.boot, "ax"
	.code32
	.global KiPvhEntry
	.type KiPvhEntry, @function
KiPvhEntry:
	cli
	cld
	movl %ebx, KiBootStartInfo
	movl $KiBootStackTop, %esp

	/* PD: 512 x 2 MiB identity pages (present, writable, large). */
	movl $KiBootPd, %edi
	xorl %eax, %eax
	movl $0x83, %eax
	movl $512, %ecx
1:	movl %eax, (%edi)
	movl $0, 4(%edi)
	addl $0x200000, %eax
	addl $8, %edi
	loop 1b
	movl $KiBootPd + 3, KiBootPdpt
	movl $0, KiBootPdpt + 4
	movl $KiBootPdpt + 3, KiBootPml4
	movl $0, KiBootPml4 + 4

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
	lgdt KiBootGdtr
	ljmp $KGDT64_R0_CODE, $KiLongModeEntry

	.code64
KiLongModeEntry:
	movw $KGDT64_R0_DATA, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	xorw %ax, %ax
	movw %ax, %fs
	movw %ax, %gs
	movq $KiBootStackTop, %rsp
	xorl %ebp, %ebp
	movl KiBootStartInfo, %edi
	call KiSystemStartup
2:	cli
	hlt
	jmp 2b
	.size KiPvhEntry, . - KiPvhEntry

	.section .rodata
	.balign 8
KiBootGdt:
	.quad 0
	.quad 0
	.quad 0x00AF9B000000FFFF	/* 0x10: ring 0 64-bit code */
	.quad 0x00CF93000000FFFF	/* 0x18: ring 0 data */
KiBootGdtEnd:
KiBootGdtr:
	.word KiBootGdtEnd - KiBootGdt - 1
	.long KiBootGdt

	.section .bss
	.balign 4096
	.global KiBootPml4
KiBootPml4:	.skip 4096
KiBootPdpt:	.skip 4096
KiBootPd:	.skip 4096
	.global KiBootStack, KiBootStackTop
	.balign 16
KiBootStack:	.skip 16384
KiBootStackTop:
	.global KiBootStartInfo
	.balign 8
KiBootStartInfo: .quad 0

	.section .note.GNU-stack, "", @progbits
