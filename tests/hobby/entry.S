/*
 * entry.S - the hobby guest's assembly: the 32-bit entry its boot sector
 * jumps to (paging, long mode), the trap vectors and their common path, and
 * swtch. The entry also carries a Multiboot (v1) header with the address
 * fields (the "a.out kludge" 64-bit hobby kernels use: QEMU's -kernel and
 * GRUB load the file flat at 0x10000, not as an ELF64) and a Multiboot2
 * header (GRUB's multiboot2 loads the ELF), so the same ELF boots from its
 * own boot sector, by -kernel and by GRUB; kmain gets the loader's magic
 * and information pointer. Assembled with -DHOBBY_PVH (hobby-pvh.elf) it
 * has a PVH entry note instead of the Multiboot headers (QEMU's -kernel
 * prefers Multiboot when both are there). As in xv6 and most hobby kernels, these are plain labels: no
 * .type, no .size (untyped symbols the probe language has to cope with).
 */
	.section .text.entry, "ax"
	.code32
	.globl start32
start32:
	jmp 1f

#ifdef HOBBY_PVH
	.pushsection .note.Xen, "a", @note
	.p2align 2
	.long 4, 4, 18          /* name size, descriptor size, XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long pvh_start
	.popsection
pvh_start:                      /* PVH: 32-bit protected mode, EBX = hvm_start_info, EAX undefined */
	mov $0x336ec578, %eax   /* the start info's magic, as kmain's boot magic */
	jmp 1f
#else
	.p2align 3
mb1_header:                     /* Multiboot (v1): page-aligned modules, memory map, the addresses below */
	.long 0x1badb002, 0x00010003, -(0x1badb002 + 0x00010003)
	.long mb1_header, start32, __data_end, __bss_end, start32
	.p2align 3
mb2_header:                     /* Multiboot2: i386 (32-bit protected mode entry), no tags but the end */
	.long 0xe85250d6, 0, mb2_end - mb2_header, -(0xe85250d6 + (mb2_end - mb2_header))
	.word 0, 0
	.long 8
mb2_end:
#endif

1:	mov %eax, %esi          /* the loader's magic and information (Multiboot) */
	mov $__bss_start, %edi  /* the boot sector loaded the file only */
	mov $__bss_end, %ecx
	sub %edi, %ecx
	xor %eax, %eax
	rep stosb
	/* 1 GiB identity map with 2 MiB pages, and the xAPIC page at 0xfee00000 */
	lea pdpt, %eax
	or $3, %eax
	mov %eax, pml4
	lea pd, %eax
	or $3, %eax
	mov %eax, pdpt
	lea pd_apic, %eax
	or $3, %eax
	mov %eax, pdpt + 3 * 8
	movl $0xfee0009b, pd_apic + 0x1f7 * 8  /* PS, PCD, PWT, RW, P */
	xor %ecx, %ecx
1:	mov %ecx, %eax
	shl $21, %eax
	or $0x83, %eax
	mov %eax, pd(, %ecx, 8)
	inc %ecx
	cmp $512, %ecx
	jne 1b
	lea pml4, %eax
	mov %eax, %cr3
	mov %cr4, %eax
	or $0x20, %eax          /* PAE */
	mov %eax, %cr4
	mov $0xc0000080, %ecx   /* EFER.LME */
	rdmsr
	or $0x100, %eax
	wrmsr
	mov %cr0, %eax
	or $0x80000001, %eax    /* PG, PE */
	mov %eax, %cr0
	lgdt gdtr64
	ljmp $8, $start64

	.code64
start64:
	mov $0x10, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	xor %ax, %ax
	mov %ax, %fs
	mov %ax, %gs
	lea boot_stack_top(%rip), %rsp
	mov %esi, %edi          /* kmain(magic, info) */
	mov %ebx, %esi
	call kmain
2:	hlt
	jmp 2b

	.text
/* Trap vectors: push a zero error code where the CPU pushes none, the
 * vector number, and join alltraps. */
	.globl vector13, vector14, vector32, vector48, vector255
vector13:
	push $13
	jmp alltraps
vector14:
	push $14
	jmp alltraps
vector32:
	push $0
	push $32
	jmp alltraps
vector48:
	push $0
	push $48
	jmp alltraps
vector255:
	push $0
	push $255
	jmp alltraps

/* The trap frame (struct trapframe in hobby.h), then trap(tf). */
	.globl alltraps
alltraps:
	push %rax
	push %rbx
	push %rcx
	push %rdx
	push %rbp
	push %rsi
	push %rdi
	push %r8
	push %r9
	push %r10
	push %r11
	push %r12
	push %r13
	push %r14
	push %r15
	mov %rsp, %rdi
	call trap
	.globl trapret
trapret:
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %r11
	pop %r10
	pop %r9
	pop %r8
	pop %rdi
	pop %rsi
	pop %rbp
	pop %rdx
	pop %rcx
	pop %rbx
	pop %rax
	add $16, %rsp           /* vector, error code */
	iretq

/* swtch(struct context **old, struct context *new): saves the callee-saved
 * registers on the current stack, stores that stack pointer at *old (the old
 * thread's context slot), and resumes new. */
	.globl swtch
swtch:
	push %rbp
	push %rbx
	push %r12
	push %r13
	push %r14
	push %r15
	mov %rsp, (%rdi)
	mov %rsi, %rsp
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %rbx
	pop %rbp
	ret

/* A new thread's first return from swtch lands here. */
	.globl forkret_entry
forkret_entry:
	call forkret
3:	hlt
	jmp 3b

	.data
	.p2align 3
gdt64:	.quad 0
	.quad 0x00af9a000000ffff /* 64-bit code */
	.quad 0x00cf92000000ffff /* data */
gdtr64:	.word 3 * 8 - 1
	.quad gdt64

	.bss
	.p2align 12
pml4:	.skip 4096
pdpt:	.skip 4096
pd:	.skip 4096
pd_apic: .skip 4096
	.skip 8192
boot_stack_top:
