/*
 * sched.c: threads, the ready queue, the dispatcher lock and the idle loop.
 *
 * Round-robin: one FIFO ready queue, a quantum of KI_QUANTUM clock ticks.
 * Every switch goes through KiSwapContext (trap.S) at DISPATCH_LEVEL with the
 * dispatcher lock held. The lock is handed across the switch: the thread that
 * resumes (in KiSwitchTo or, the first time, in KiThreadStartup) becomes its
 * holder and releases it. Its word reads holder-thread | 1 like every other
 * spin lock here; it is taken through internal routines, not the probe-able
 * KeAcquireSpinLock* family, because it is held across switches by design.
 * Threads come from a static pool and are never freed.
 */
#include "ke.h"

#define KI_MAX_THREADS 40
#define KI_STACK_SIZE  16384

KSPIN_LOCK KiDispatcherLock;
static LIST_ENTRY KiReadyListHead;
static KTHREAD KiThreadPool[KI_MAX_THREADS];
static UCHAR KiStackPool[KI_MAX_THREADS][KI_STACK_SIZE] __attribute__((aligned(16)));
static ULONG KiThreadCount;
static KTHREAD KiIdleThread;
extern UCHAR KiBootStack[], KiBootStackTop[];

static void KiSpinOnDispatcherLock(void)
{
	ULONG_PTR me = (ULONG_PTR)KeGetCurrentThread() | 1;
	while (!__sync_bool_compare_and_swap(&KiDispatcherLock, 0, me))
		while (*(volatile KSPIN_LOCK *)&KiDispatcherLock)
			YieldProcessor();
}

/* Raises to DISPATCH_LEVEL (never lowers) and takes the dispatcher lock. */
KIRQL KiAcquireDispatcherLock(void)
{
	KIRQL old = KiReadCr8();
	if (old < DISPATCH_LEVEL)
		KiWriteCr8(DISPATCH_LEVEL);
	KiSpinOnDispatcherLock();
	return old;
}

void KiReleaseDispatcherLock(KIRQL OldIrql)
{
	__atomic_store_n(&KiDispatcherLock, 0, __ATOMIC_RELEASE);
	if (OldIrql < DISPATCH_LEVEL)
		KiLowerIrql(OldIrql);
}

/* Only for the eoi-before-switch scenario's switch inside the clock ISR: a
 * try, since spinning at CLOCK_LEVEL on a lock a thread holds at
 * DISPATCH_LEVEL would never end. */
BOOLEAN KiTryToAcquireDispatcherLock(void)
{
	return __sync_bool_compare_and_swap(&KiDispatcherLock, 0, (ULONG_PTR)KeGetCurrentThread() | 1);
}

/* Dispatcher lock held. */
void KiReadyThread(PKTHREAD Thread)
{
	Thread->State = Ready;
	Thread->Quantum = KI_QUANTUM;
	InsertTailList(&KiReadyListHead, &Thread->ReadyListEntry);
	if (KeGetCurrentThread() == &KiIdleThread)
		KiRequestDispatchInterrupt(); /* idle gives way at once */
}

static PKTHREAD KiSelectReadyThread(void)
{
	if (IsListEmpty(&KiReadyListHead))
		return NULL;
	return CONTAINING_RECORD(RemoveHeadList(&KiReadyListHead), KTHREAD, ReadyListEntry);
}

/* Dispatcher lock held; returns in Old's context, lock held again. */
static void KiSwitchTo(PKTHREAD Old, PKTHREAD New)
{
	PKPRCB prcb = KeGetCurrentPrcb();
	/* A thread's saved stack pointer must lie in its own stack; one left on
	 * the shared interrupt stack (eoi-before-switch) has been overwritten by
	 * every interrupt taken since. */
	if ((UCHAR *)New->KernelStack < (UCHAR *)New->StackLimit ||
	    (UCHAR *)New->KernelStack >= (UCHAR *)New->StackBase)
		KeBugCheckEx(KREWIND_THREAD_STACK_CORRUPT, (ULONG_PTR)New, (ULONG_PTR)New->KernelStack,
		             (ULONG_PTR)New->StackLimit, (ULONG_PTR)New->StackBase);
	New->State = Running;
	New->ContextSwitches++;
	prcb->ContextSwitches++;
	KiSwapContext(Old, New);
	KiDispatcherLock = (ULONG_PTR)Old | 1; /* handed over by whoever resumed us */
}

/* The current thread has stopped running (waiting or terminated): run the
 * next ready thread, or idle. Dispatcher lock held at DISPATCH_LEVEL. */
NTSTATUS KiSwapThread(void)
{
	PKTHREAD cur = KeGetCurrentThread();
	PKTHREAD next = KiSelectReadyThread();
	KiSwitchTo(cur, next ? next : &KiIdleThread);
	return cur->WaitStatus;
}

/* The DISPATCH_LEVEL software interrupt: DPCs first, then a quantum-end
 * switch (or leaving idle). DISPATCH_LEVEL, interrupts enabled. */
void KiDispatchInterrupt(void)
{
	PKPRCB prcb = KeGetCurrentPrcb();
	KiRetireDpcList();
	PKTHREAD cur = prcb->CurrentThread;
	if (cur != &KiIdleThread && !prcb->QuantumEnd)
		return;
	prcb->QuantumEnd = 0;
	KIRQL old = KiAcquireDispatcherLock();
	PKTHREAD next = KiSelectReadyThread();
	if (next) {
		if (cur != &KiIdleThread) {
			cur->State = Ready;
			InsertTailList(&KiReadyListHead, &cur->ReadyListEntry);
		}
		KiSwitchTo(cur, next);
	}
	KiReleaseDispatcherLock(old);
}

/*
 * The eoi-before-switch bug: called from the clock ISR after its EOI, at
 * CLOCK_LEVEL, on the clock's per-processor interrupt stack (the scenario
 * moves vector 0xD1 onto IST2). The interrupted thread is switched out with
 * its live interrupt frame on that shared stack; the next clock interrupt
 * reuses the same stack and overwrites it.
 */
void KiQuantumEndSwitchInIsr(void)
{
	PKPRCB prcb = KeGetCurrentPrcb();
	PKTHREAD cur = prcb->CurrentThread;
	if (cur == &KiIdleThread)
		return; /* idle is never queued; the DISPATCH path leaves idle */
	if (!KiTryToAcquireDispatcherLock())
		return; /* busy: the DISPATCH software interrupt will switch */
	prcb->QuantumEnd = 0;
	PKTHREAD next = KiSelectReadyThread();
	if (next) {
		cur->State = Ready;
		InsertTailList(&KiReadyListHead, &cur->ReadyListEntry);
		KiSwitchTo(cur, next);
	}
	__atomic_store_n(&KiDispatcherLock, 0, __ATOMIC_RELEASE);
}

static NORETURN void KiTerminateThread(void)
{
	PKTHREAD t = KeGetCurrentThread();
	KiAcquireDispatcherLock();
	t->State = Terminated;
	t->Header.SignalState = 1;
	KiWaitTest(&t->Header);
	KiSwapThread();
	KeBugCheckEx(INVALID_WAIT_OBJECT, (ULONG_PTR)t, 0, 0, 0);
}

/* First C code of a new thread, entered from KiSwapContext with the
 * dispatcher lock handed over, at DISPATCH_LEVEL. */
void KiThreadStartup(void)
{
	PKTHREAD t = KeGetCurrentThread();
	KiDispatcherLock = (ULONG_PTR)t | 1;
	KiReleaseDispatcherLock(PASSIVE_LEVEL);
	t->StartRoutine(t->StartContext);
	KiTerminateThread();
}

PKTHREAD KeCreateThread(const char *Name, PKSTART_ROUTINE Routine, PVOID Context)
{
	KIRQL old = KiAcquireDispatcherLock();
	if (KiThreadCount == KI_MAX_THREADS)
		KeBugCheckEx(NO_MORE_SYSTEM_PTES, KI_MAX_THREADS, 0, 0, 0);
	ULONG id = KiThreadCount++;
	PKTHREAD t = &KiThreadPool[id];
	memset(t, 0, sizeof(*t));
	KiInitializeDispatcherHeader(&t->Header, ThreadObject, 0);
	RtlCopyName(t->Name, Name, sizeof(t->Name));
	t->ThreadId = id + 1;
	t->StackLimit = KiStackPool[id];
	t->StackBase = KiStackPool[id] + KI_STACK_SIZE;
	t->StartRoutine = Routine;
	t->StartContext = Context;
	KeInitializeTimer(&t->Timer);
	t->Timer.WaitThread = t;
	t->WaitBlock.Thread = t;

	/* A KiSwapContext frame: r15 r14 r13 r12 rbx rbp rflags, then the return
	 * address. After that ret, rsp is 16-aligned as before a call. */
	ULONG64 *sp = (ULONG64 *)t->StackBase;
	*--sp = 0;
	*--sp = 0;
	*--sp = (ULONG64)KiThreadStartupEntry;
	*--sp = 0x202; /* IF set */
	for (int i = 0; i < 6; i++)
		*--sp = 0;
	t->KernelStack = sp;
	t->SwapIrql = DISPATCH_LEVEL;
	KiReadyThread(t);
	KiReleaseDispatcherLock(old);
	return t;
}

void KiInitializeScheduler(void)
{
	PKPRCB prcb = KeGetCurrentPrcb();
	InitializeListHead(&KiReadyListHead);
	KiInitializeDispatcherHeader(&KiIdleThread.Header, ThreadObject, 0);
	RtlCopyName(KiIdleThread.Name, "Idle", sizeof(KiIdleThread.Name));
	KiIdleThread.StackLimit = KiBootStack;
	KiIdleThread.StackBase = KiBootStackTop;
	KiIdleThread.State = Running;
	KeInitializeTimer(&KiIdleThread.Timer);
	prcb->IdleThread = &KiIdleThread;
	prcb->CurrentThread = &KiIdleThread;
}

/* The boot context, now the idle thread, at PASSIVE_LEVEL. `sti; hlt` is
 * atomic with respect to interrupts (sti's one-instruction shadow), so a
 * wakeup between the check and the halt is not lost.
 *
 * Dynamic tick: with nothing ready, no DPC pending and no timer armed, the
 * only interrupt there is - the clock - could change nothing but the tick
 * count, so the clock is stopped and the processor halts for good. A
 * deadlocked system then really goes quiet instead of ticking forever. */
void KiIdleLoop(void)
{
	PKPRCB prcb = KeGetCurrentPrcb();
	BOOLEAN stopped = FALSE;
	for (;;) {
		_disable();
		if (!prcb->DispatchInterruptRequested && IsListEmpty(&KiReadyListHead)) {
			if (!KiIsTimerArmed() && !stopped) {
				HalStopClock();
				stopped = TRUE;
				DbgPrint("idle: no thread can run and no timer is armed; clock stopped\n");
			}
			__asm__ volatile("sti; hlt" : : : "memory");
			continue;
		}
		if (stopped) {
			HalStartClock(KI_CLOCK_INITIAL_COUNT);
			stopped = FALSE;
		}
		KiRequestDispatchInterrupt();
		_enable();
		KiLowerIrql(KiRaiseIrql(DISPATCH_LEVEL));
	}
}
