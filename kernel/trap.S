/*
 * trap.S: interrupt/exception entry stubs and the context switch.
 *
 * Every entry builds a KTRAP_FRAME (ke.h) on the current stack: the CPU's
 * iretq frame, then vector and error code (0 when the CPU pushes none), then
 * the general registers. swapgs only when the interrupted code was user mode
 * (saved CS RPL != 0): GS base holds the KPCR whenever we run in ring 0. All
 * code here runs in ring 0, but the discipline is kept so the entry path is
 * the one NT uses.
 */
#include "ke.h"

	.text

.macro TRAP_NOERR n
	.balign 16
	push $0
	push $\n
	jmp KiTrapCommon
.endm
.macro TRAP_ERR n
	.balign 16
	push $\n
	jmp KiTrapCommon
.endm

/* KiTrapStubs: 32 stubs of 16 bytes each, stub n at KiTrapStubs + 16 * n. */
	.balign 16
	.global KiTrapStubs
	.type KiTrapStubs, @function
KiTrapStubs:
	TRAP_NOERR 0
	TRAP_NOERR 1
	TRAP_NOERR 2
	TRAP_NOERR 3
	TRAP_NOERR 4
	TRAP_NOERR 5
	TRAP_NOERR 6
	TRAP_NOERR 7
	TRAP_ERR 8
	TRAP_NOERR 9
	TRAP_ERR 10
	TRAP_ERR 11
	TRAP_ERR 12
	TRAP_ERR 13
	TRAP_ERR 14
	TRAP_NOERR 15
	TRAP_NOERR 16
	TRAP_ERR 17
	TRAP_NOERR 18
	TRAP_NOERR 19
	TRAP_NOERR 20
	TRAP_ERR 21
	TRAP_NOERR 22
	TRAP_NOERR 23
	TRAP_NOERR 24
	TRAP_NOERR 25
	TRAP_NOERR 26
	TRAP_NOERR 27
	TRAP_NOERR 28
	TRAP_ERR 29
	TRAP_ERR 30
	TRAP_NOERR 31
	.size KiTrapStubs, . - KiTrapStubs

	.global KiClockInterruptEntry
	.type KiClockInterruptEntry, @function
KiClockInterruptEntry:
	push $0
	push $CLOCK_VECTOR
	jmp KiTrapCommon
	.size KiClockInterruptEntry, . - KiClockInterruptEntry

	.global KiIpiInterruptEntry
	.type KiIpiInterruptEntry, @function
KiIpiInterruptEntry:
	push $0
	push $IPI_VECTOR
	jmp KiTrapCommon
	.size KiIpiInterruptEntry, . - KiIpiInterruptEntry

	.global KiSpuriousInterruptEntry
	.type KiSpuriousInterruptEntry, @function
KiSpuriousInterruptEntry:
	push $0
	push $SPURIOUS_VECTOR
	jmp KiTrapCommon
	.size KiSpuriousInterruptEntry, . - KiSpuriousInterruptEntry

/* The CPU aligned rsp to 16 before pushing its 5 words; with vector, error
 * code and 15 registers the frame is 22 words, so rsp is 16-aligned at the call. */
	.type KiTrapCommon, @function
KiTrapCommon:
	testb $3, 24(%rsp)		/* saved CS: came from user mode? */
	jz 1f
	swapgs
1:	push %rax
	push %rbx
	push %rcx
	push %rdx
	push %rsi
	push %rdi
	push %rbp
	push %r8
	push %r9
	push %r10
	push %r11
	push %r12
	push %r13
	push %r14
	push %r15
	cld
	mov %rsp, %rdi
	call KiTrapDispatch
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %r11
	pop %r10
	pop %r9
	pop %r8
	pop %rbp
	pop %rdi
	pop %rsi
	pop %rdx
	pop %rcx
	pop %rbx
	pop %rax
	add $16, %rsp			/* vector, error code */
	testb $3, 8(%rsp)		/* returning to user mode? */
	jz 2f
	swapgs
2:	iretq
	.size KiTrapCommon, . - KiTrapCommon

/*
 * KiSwapContext(PKTHREAD Old (rdi), PKTHREAD New (rsi))
 * Saves the callee-saved registers, RFLAGS and CR8 of Old on its stack/thread,
 * publishes New as gs:[0x188], points TSS.Rsp0 at New's stack and resumes New
 * with its own CR8: IRQL is per thread across a switch. Called with the
 * dispatcher lock held; the lock is handed to New (sched.c).
 */
	.global KiSwapContext
	.type KiSwapContext, @function
KiSwapContext:
	pushfq
	push %rbp
	push %rbx
	push %r12
	push %r13
	push %r14
	push %r15
	mov %cr8, %rax
	movb %al, KTHREAD_SWAP_IRQL(%rdi)
	mov %rsp, KTHREAD_KERNEL_STACK(%rdi)
	mov %rsi, %gs:KPCR_CURRENT_THREAD
	mov %gs:KPCR_TSS, %rax
	mov KTHREAD_STACK_BASE(%rsi), %rcx
	mov %rcx, KTSS_RSP0(%rax)
	mov KTHREAD_KERNEL_STACK(%rsi), %rsp
	movzbl KTHREAD_SWAP_IRQL(%rsi), %eax
	mov %rax, %cr8
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %rbx
	pop %rbp
	popfq
	ret
	.size KiSwapContext, . - KiSwapContext

/* First instruction of every new thread (KeCreateThread builds a KiSwapContext
 * frame whose return address is here); rsp is as after a call. */
	.global KiThreadStartupEntry
	.type KiThreadStartupEntry, @function
KiThreadStartupEntry:
	xor %ebp, %ebp
	call KiThreadStartup
	ud2
	.size KiThreadStartupEntry, . - KiThreadStartupEntry

	.section .note.GNU-stack, "", @progbits
