/*
 * guest.S - a minimal x86-64 guest for the tracer's own tests, independent of
 * the krewind kernel: PVH entry, long mode, an IDT, a breakpoint, a page
 * fault (with its error code), the same code run at a second virtual
 * address of its page (QEMU reuses the block translated at the first) and
 * faulting in the middle of that block, and an xAPIC (MMIO) periodic timer
 * whose handler writes the EOI register at APIC base + 0xB0. Prints on COM1 and
 * powers off through isa-debug-exit (status 33).
 */
	.set ALIAS, 0x80000000     /* a second mapping of the first 2 MB */

	.section .note.pvh, "a"
	.align 4
	.long 4, 4, 18          /* namesz, descsz, XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long _start32

	.code32
	.text
	.globl _start32
	.type _start32, @function
_start32:
	cli
	/* 1 GB identity map with 2 MB pages, the first one again at ALIAS, plus
	 * the APIC page at 0xfee00000 */
	lea pdpt, %eax
	or $3, %eax
	mov %eax, pml4
	lea pd, %eax
	or $3, %eax
	mov %eax, pdpt
	lea pd_apic, %eax
	or $3, %eax
	mov %eax, pdpt + 3 * 8
	lea pd_alias, %eax
	or $3, %eax
	mov %eax, pdpt + 2 * 8
	movl $0x83, pd_alias     /* PS, RW, P: physical 0 at ALIAS */
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
	lgdt gdtr
	ljmp $8, $start64
	.size _start32, . - _start32

	.code64
	.globl start64
	.type start64, @function
start64:
	mov $0x10, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	lea stack_top(%rip), %rsp
	lea bp_handler(%rip), %rdi
	mov $3, %esi
	call set_gate
	lea pf_handler(%rip), %rdi
	mov $14, %esi
	call set_gate
	lea timer_handler(%rip), %rdi
	mov $0x30, %esi
	call set_gate
	lidt idtr(%rip)
	lea hello(%rip), %rsi
	call puts
	int3
	mov $0x40000000, %rax   /* not mapped: #PF, error code 0 */
	mov (%rax), %ebx        /* 2 bytes, skipped by the handler */
	call iret_to_self
	/* twice the same block: at its own address, then at ALIAS, faulting */
	lea ticks(%rip), %rdi
	call twice
	mov $(twice + ALIAS), %eax
	mov $0x40000000, %rdi   /* #PF in the middle of the block */
	call *%rax
	/* xAPIC timer, periodic, vector 0x30 */
	mov $0xfee00000, %rax
	movl $0x1ff, 0xf0(%rax) /* SVR: enable */
	movl $0xb, 0x3e0(%rax)  /* divide by 1 */
	movl $0x20030, 0x320(%rax)
	movl $100000, 0x380(%rax)
	sti
2:	cmpq $5, ticks(%rip)
	jb 2b
	cli
	movl $0x10000, 0x320(%rax) /* mask the timer */
	lea bye(%rip), %rsi
	call puts
	mov $0x10, %al
	out %al, $0xf4
3:	hlt
	jmp 3b
	.size start64, . - start64

	.type twice, @function
twice:                          /* rdi = address to read */
	inc %rcx
	inc %rcx
	mov (%rdi), %ebx        /* 2 bytes, skipped by the handler on a fault */
	inc %rcx
	ret
	.size twice, . - twice

	.type set_gate, @function
set_gate:                       /* rdi = handler, esi = vector */
	lea idt(%rip), %rax
	shl $4, %rsi
	add %rsi, %rax
	mov %di, (%rax)
	movw $8, 2(%rax)
	movw $0x8e00, 4(%rax)   /* present, interrupt gate */
	mov %rdi, %rdx
	shr $16, %rdx
	mov %dx, 6(%rax)
	shr $32, %rdi
	mov %edi, 8(%rax)
	movl $0, 12(%rax)
	ret
	.size set_gate, . - set_gate

	.type puts, @function
puts:                           /* rsi = NUL-terminated string */
	mov $0x3f8, %dx
1:	lodsb
	test %al, %al
	jz 2f
	out %al, %dx
	jmp 1b
2:	ret
	.size puts, . - puts

	.type bp_handler, @function
bp_handler:
	push %rax
	push %rdx
	push %rsi
	lea bp_msg(%rip), %rsi
	call puts
	pop %rsi
	pop %rdx
	pop %rax
	iretq
	.size bp_handler, . - bp_handler

	.type pf_handler, @function
pf_handler:
	add $8, %rsp            /* the error code */
	addq $2, (%rsp)         /* skip the faulting mov */
	iretq
	.size pf_handler, . - pf_handler

	.type timer_handler, @function
timer_handler:
	push %rax
	push %rdi
	incq ticks(%rip)
	testq $1, ticks(%rip)
	jz 1f
	mov $0xfee00000, %rax
	movl $0, 0xb0(%rax)     /* xAPIC EOI: the register holds the page */
	jmp 2f
1:	mov $0x800000b0, %edi
	movl $0, 0x7ee00000(%rdi) /* xAPIC EOI: the register holds the offset (Linux's form) */
2:	pop %rdi
	pop %rax
	iretq
	.size timer_handler, . - timer_handler

	/* Linux's sync_core(): an iretq to the next instruction, which
	 * serializes; it closes no trap frame. */
	.type iret_to_self, @function
iret_to_self:
	mov %rsp, %rdx
	pushq $0x10             /* ss */
	pushq %rdx              /* rsp */
	pushfq
	pushq $8                /* cs */
	lea 1f(%rip), %rax
	pushq %rax
	iretq
1:	ret
	.size iret_to_self, . - iret_to_self

	.data
	.align 16
gdt:	.quad 0
	.quad 0x00af9a000000ffff /* 64-bit code */
	.quad 0x00cf92000000ffff /* data */
gdtr:	.word 23
	.long gdt
idtr:	.word 4095
	.quad idt
hello:	.asciz "testguest: hello\n"
bp_msg:	.asciz "testguest: breakpoint\n"
bye:	.asciz "testguest: 5 ticks\n"
	.globl ticks
	.type ticks, @object
ticks:	.quad 0
	.size ticks, 8

	.bss
	.align 4096
pml4:	.skip 4096
pdpt:	.skip 4096
pd:	.skip 4096
pd_apic: .skip 4096
pd_alias: .skip 4096
idt:	.skip 4096
	.skip 16384
stack_top:
