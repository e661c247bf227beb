/*
 * boot.S - the hobby guest's boot sector (tests/hobby/README.md).
 *
 * The BIOS loads this sector at 0x7c00 in real mode. It reads the kernel's
 * 127 sectors (LBA 1..127: a flat binary linked at 0x10000) with the BIOS's
 * extended disk read, turns on A20, enters 32-bit protected mode with a flat
 * GDT and jumps to the kernel's first byte. The kernel does the rest (paging,
 * long mode) itself, as hobby kernels do after their own bootloader.
 */
	.code16
	.text
	.globl boot
boot:
	cli
	xor %ax, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov $0x7c00, %sp
	mov $dap, %si           /* dl: the drive the BIOS booted from */
	mov $0x42, %ah
	int $0x13
	jc fail
	in $0x92, %al           /* fast A20 */
	or $2, %al
	and $0xfe, %al
	out %al, $0x92
	lgdt gdtr
	mov %cr0, %eax
	or $1, %eax
	mov %eax, %cr0
	ljmp $8, $protected

fail:
	mov $0x0e45, %ax        /* 'E' on the screen, then stop */
	int $0x10
1:	hlt
	jmp 1b

	.code32
protected:
	mov $0x10, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov $0x7c00, %esp
	mov $0x10000, %eax
	jmp *%eax

	.p2align 2
dap:	.byte 0x10, 0           /* disk address packet: size, reserved */
	.word 127               /* sectors */
	.word 0, 0x1000         /* buffer offset, segment: 0x10000 */
	.quad 1                 /* first LBA */
gdt:	.quad 0
	.quad 0x00cf9a000000ffff /* 32-bit code */
	.quad 0x00cf92000000ffff /* data */
gdtr:	.word 3 * 8 - 1
	.long gdt

	.org 510
	.word 0xaa55
