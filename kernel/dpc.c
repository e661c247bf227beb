/*
 * dpc.c: deferred procedure calls. A per-processor FIFO (Prcb.DpcListHead)
 * drained at DISPATCH_LEVEL by the DISPATCH software interrupt. Queueing runs
 * at HIGH_LEVEL so an interrupt handler can queue while a thread is in the
 * middle of queueing; lowering back then runs the queue at once if the caller
 * was below DISPATCH_LEVEL.
 */
#include "ke.h"

void KeInitializeDpc(PKDPC Dpc, PKDEFERRED_ROUTINE Routine, PVOID Context)
{
	Dpc->Type = 0x13; /* DpcObject */
	Dpc->Inserted = FALSE;
	InitializeListHead(&Dpc->DpcListEntry);
	Dpc->DeferredRoutine = Routine;
	Dpc->DeferredContext = Context;
	Dpc->SystemArgument1 = Dpc->SystemArgument2 = NULL;
}

/* Returns FALSE if the DPC is already queued (it is queued once). */
BOOLEAN KeInsertQueueDpc(PKDPC Dpc, PVOID Arg1, PVOID Arg2)
{
	KIRQL old = KiRaiseIrql(HIGH_LEVEL);
	PKPRCB prcb = KeGetCurrentPrcb();
	BOOLEAN inserted = FALSE;
	if (!Dpc->Inserted) {
		Dpc->Inserted = TRUE;
		Dpc->SystemArgument1 = Arg1;
		Dpc->SystemArgument2 = Arg2;
		InsertTailList(&prcb->DpcListHead, &Dpc->DpcListEntry);
		prcb->DpcQueueDepth++;
		KiRequestDispatchInterrupt();
		inserted = TRUE;
	}
	KiLowerIrql(old);
	return inserted;
}

/* Runs one DPC's routine. Its own function (never inlined) so that a probe
 * can see each DPC start (probes/krewind.probe: defer-run). */
static NOINLINE void KiExecuteDpc(PKDPC Dpc, PVOID Arg1, PVOID Arg2)
{
	Dpc->DeferredRoutine(Dpc, Dpc->DeferredContext, Arg1, Arg2);
}

/* At DISPATCH_LEVEL, interrupts enabled: run queued DPCs in FIFO order.
 * Never inlined: a probe declares it the DPC (softirq) context. */
NOINLINE void KiRetireDpcList(void)
{
	PKPRCB prcb = KeGetCurrentPrcb();
	for (;;) {
		KiWriteCr8(HIGH_LEVEL);
		if (IsListEmpty(&prcb->DpcListHead)) {
			KiWriteCr8(DISPATCH_LEVEL);
			return;
		}
		PKDPC dpc = CONTAINING_RECORD(RemoveHeadList(&prcb->DpcListHead), KDPC, DpcListEntry);
		prcb->DpcQueueDepth--;
		PVOID a1 = dpc->SystemArgument1, a2 = dpc->SystemArgument2;
		dpc->Inserted = FALSE;
		KiWriteCr8(DISPATCH_LEVEL);
		prcb->DpcCount++;
		KiExecuteDpc(dpc, a1, a2);
	}
}
