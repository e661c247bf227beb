/*
 * irql.c: interrupt request levels, kept in CR8 (the APIC task priority).
 *
 * CR8 = n masks every interrupt whose vector >> 4 is <= n, so raising the
 * IRQL to CLOCK_LEVEL (13) holds off the clock (vector 0xD1) with no other
 * bookkeeping. DISPATCH_LEVEL has no hardware vector here: it is a software
 * interrupt, Prcb.DispatchInterruptRequested, that runs (DPCs, then a
 * quantum-end switch) whenever the IRQL drops below DISPATCH_LEVEL — in
 * KeLowerIrql and on the way out of an interrupt.
 */
#include "ke.h"

KIRQL KeGetCurrentIrql(void)
{
	return KiReadCr8();
}

KIRQL KiRaiseIrql(KIRQL NewIrql)
{
	KIRQL old = KiReadCr8();
	KiWriteCr8(NewIrql);
	return old;
}

void KiRequestDispatchInterrupt(void)
{
	KeGetCurrentPrcb()->DispatchInterruptRequested = 1;
}

/* Lowers to NewIrql, first running the DISPATCH software interrupt if one is
 * pending and we are dropping below DISPATCH_LEVEL. The flag check and the
 * final CR8 write happen with interrupts off so a request made by an
 * interrupt in between is never lost. Preserves the caller's IF. */
void KiLowerIrql(KIRQL NewIrql)
{
	if (NewIrql >= DISPATCH_LEVEL) {
		KiWriteCr8(NewIrql);
		return;
	}
	ULONG64 flags = KiDisableInterrupts();
	PKPRCB prcb = KeGetCurrentPrcb();
	while (prcb->DispatchInterruptRequested) {
		KiWriteCr8(DISPATCH_LEVEL);
		prcb->DispatchInterruptRequested = 0;
		_enable();
		KiDispatchInterrupt(); /* may switch threads and come back later */
		_disable();
		prcb = KeGetCurrentPrcb();
	}
	KiWriteCr8(NewIrql);
	KiRestoreInterrupts(flags);
}

/* NT contract: raising must not lower. The check can be switched off by the
 * irql-lower-raise scenario so that only the trace can catch the misuse. */
NOINLINE void KeRaiseIrql(KIRQL NewIrql, PKIRQL OldIrql)
{
	KIRQL cur = KiReadCr8();
	if (NewIrql < cur && !(KiBugFlags & KI_BUG_NO_IRQL_CHECKS))
		KeBugCheckEx(IRQL_NOT_GREATER_OR_EQUAL, cur, NewIrql, 0, 0);
	*OldIrql = KiRaiseIrql(NewIrql);
}

/* NT contract: lowering must not raise. */
NOINLINE void KeLowerIrql(KIRQL NewIrql)
{
	KIRQL cur = KiReadCr8();
	if (NewIrql > cur && !(KiBugFlags & KI_BUG_NO_IRQL_CHECKS))
		KeBugCheckEx(IRQL_NOT_LESS_OR_EQUAL, NewIrql, cur, 0, 0);
	KiLowerIrql(NewIrql);
}
