/*
 * clock.c: the clock interrupt (APIC timer, CLOCK_LEVEL) and kernel timers.
 *
 * The ISR does only what CLOCK_LEVEL allows: count the tick, charge the
 * quantum, and queue a DPC when a timer is due. It must not take the
 * dispatcher lock (a DISPATCH_LEVEL lock: taking it at CLOCK_LEVEL would
 * deadlock against a thread holding it when the tick arrives); timer expiry
 * therefore runs in KiTimerExpiration, a DPC. The timer list is guarded by
 * the dispatcher lock; the ISR reads only KiNextTimerDue, one aligned word.
 */
#include "ke.h"

volatile ULONG64 KeTickCount;
static LIST_ENTRY KiTimerListHead;
static volatile ULONG64 KiNextTimerDue = ~0ull;
static KDPC KiTimerExpirationDpc;

/* Converts an NT timeout (negative: relative, positive: absolute system time
 * since boot, both in 100 ns units) into clock ticks from now. */
ULONG64 KiTimeoutToTicks(LONGLONG Timeout)
{
	ULONG64 rel;
	if (Timeout < 0) {
		rel = (ULONG64)-Timeout;
	} else {
		ULONG64 now = KeTickCount * KeMaximumIncrement;
		rel = (ULONG64)Timeout > now ? (ULONG64)Timeout - now : 0;
	}
	return (rel + KeMaximumIncrement - 1) / KeMaximumIncrement;
}

static void KiComputeNextTimerDue(void)
{
	ULONG64 due = ~0ull;
	for (PLIST_ENTRY e = KiTimerListHead.Flink; e != &KiTimerListHead; e = e->Flink) {
		PKTIMER t = CONTAINING_RECORD(e, KTIMER, TimerListEntry);
		if (t->DueTick < due)
			due = t->DueTick;
	}
	KiNextTimerDue = due;
}

/* Dispatcher lock held. */
void KiInsertTimer(PKTIMER Timer, ULONG64 Ticks)
{
	Timer->DueTick = KeTickCount + (Ticks ? Ticks : 1);
	Timer->Header.SignalState = 0;
	Timer->Inserted = TRUE;
	InsertTailList(&KiTimerListHead, &Timer->TimerListEntry);
	if (Timer->DueTick < KiNextTimerDue)
		KiNextTimerDue = Timer->DueTick;
}

/* Dispatcher lock held. */
void KiRemoveTimer(PKTIMER Timer)
{
	if (!Timer->Inserted)
		return;
	RemoveEntryList(&Timer->TimerListEntry);
	Timer->Inserted = FALSE;
	KiComputeNextTimerDue();
}

void KeInitializeTimer(PKTIMER Timer)
{
	KiInitializeDispatcherHeader(&Timer->Header, TimerNotificationObject, 0);
	InitializeListHead(&Timer->TimerListEntry);
	Timer->Inserted = FALSE;
	Timer->Dpc = NULL;
	Timer->WaitThread = NULL;
}

/* Returns TRUE if the timer was already set (it is re-armed). */
BOOLEAN KeSetTimer(PKTIMER Timer, LARGE_INTEGER DueTime, PKDPC Dpc)
{
	KIRQL old = KiAcquireDispatcherLock();
	BOOLEAN was = Timer->Inserted;
	KiRemoveTimer(Timer);
	Timer->Dpc = Dpc;
	KiInsertTimer(Timer, KiTimeoutToTicks(DueTime.QuadPart));
	KiReleaseDispatcherLock(old);
	return was;
}

BOOLEAN KeCancelTimer(PKTIMER Timer)
{
	KIRQL old = KiAcquireDispatcherLock();
	BOOLEAN was = Timer->Inserted;
	KiRemoveTimer(Timer);
	KiReleaseDispatcherLock(old);
	return was;
}

/* DPC: expire every due timer. A thread's wait timer ends that wait with
 * STATUS_TIMEOUT; any other timer is signalled and queues its DPC. */
static void KiTimerExpiration(PKDPC Dpc, PVOID Context, PVOID A1, PVOID A2)
{
	(void)Dpc, (void)Context, (void)A1, (void)A2;
	KIRQL old = KiAcquireDispatcherLock();
	BOOLEAN again = TRUE;
	while (again) {
		again = FALSE;
		for (PLIST_ENTRY e = KiTimerListHead.Flink; e != &KiTimerListHead; e = e->Flink) {
			PKTIMER t = CONTAINING_RECORD(e, KTIMER, TimerListEntry);
			if (t->DueTick > KeTickCount)
				continue;
			KiRemoveTimer(t);
			t->Header.SignalState = 1;
			if (t->WaitThread)
				KiUnwaitThread(t->WaitThread, STATUS_TIMEOUT);
			else
				KiWaitTest(&t->Header);
			if (t->Dpc)
				KeInsertQueueDpc(t->Dpc, NULL, NULL);
			again = TRUE;
			break;
		}
	}
	KiReleaseDispatcherLock(old);
}

/* Is any timer (a wait timeout or a KTIMER) armed? Read with interrupts off
 * by the idle loop. */
BOOLEAN KiIsTimerArmed(void)
{
	return KiNextTimerDue != ~0ull;
}

void KiInitializeClock(void)
{
	InitializeListHead(&KiTimerListHead);
	KeInitializeDpc(&KiTimerExpirationDpc, KiTimerExpiration, NULL);
}

/*
 * The clock ISR, at CLOCK_LEVEL with interrupts enabled (trap.c). The normal
 * path ends with the EOI and leaves any thread switch to the DISPATCH software
 * interrupt, which runs after the EOI once the IRQL drops on the way out.
 * Two scenarios plant a bug here (docs/scenarios.md): missing-eoi returns
 * early without the EOI, eoi-before-switch switches threads right here.
 */
void KiClockInterrupt(PKTRAP_FRAME Frame)
{
	(void)Frame;
	PKPRCB prcb = KeGetCurrentPrcb();
	PKTHREAD thread = prcb->CurrentThread;
	ULONG64 tick = ++KeTickCount;

	if (KiBugFlags & KI_BUG_ISR_TAKES_LOCK) {
		KeAcquireSpinLockAtDpcLevel(&ScenarioIsrLock);
		KeReleaseSpinLockFromDpcLevel(&ScenarioIsrLock);
	}
	if (tick >= KiNextTimerDue)
		KeInsertQueueDpc(&KiTimerExpirationDpc, NULL, NULL);
	if (thread != prcb->IdleThread && --thread->Quantum == 0) {
		thread->Quantum = KI_QUANTUM;
		thread->QuantumEnds++;
		prcb->QuantumEnd = 1;
		KiRequestDispatchInterrupt();
	}
	if ((KiBugFlags & KI_BUG_MISSING_EOI) && prcb->DispatchInterruptRequested)
		return; /* the planted bug: this path forgets the EOI */
	KiApicEndOfInterrupt();
	if ((KiBugFlags & KI_BUG_EOI_BEFORE_SWITCH) && prcb->QuantumEnd)
		KiQuantumEndSwitchInIsr(); /* the planted bug: switch inside the ISR */
}
