/*
 * spinlock.c: executive spin locks and in-stack queued spin locks.
 *
 * A KSPIN_LOCK word is 0 when free and (holder KTHREAD pointer | 1) when held,
 * so a debugger or the tracer can read who holds it from guest memory. In an
 * interrupt handler the holder is the interrupted thread. There is no
 * recursion check: re-acquiring a held lock spins forever (the
 * recursive-spinlock scenario), as on a free build of NT.
 *
 * A queued lock's word is instead the tail of its MCS queue: a pointer to the
 * KSPIN_LOCK_QUEUE in the last waiter's (or the holder's) KLOCK_QUEUE_HANDLE,
 * 0 when free. Each waiter spins on its own entry; bit 0 of the entry's Lock
 * pointer means "still waiting" and is cleared by the previous holder.
 *
 * On one processor contention only arises from a bug (a holder cannot be
 * preempted at DISPATCH_LEVEL), but the code is the multiprocessor code.
 */
#include "ke.h"

#define LOCK_QUEUE_WAIT 1

static inline void KxAcquireSpinLock(PKSPIN_LOCK Lock)
{
	ULONG_PTR me = (ULONG_PTR)KeGetCurrentThread() | 1;
	for (;;) {
		if (__sync_bool_compare_and_swap(Lock, 0, me))
			return;
		while (*(volatile KSPIN_LOCK *)Lock)
			YieldProcessor();
	}
}

static inline void KxReleaseSpinLock(PKSPIN_LOCK Lock)
{
	if (!*(volatile KSPIN_LOCK *)Lock)
		KeBugCheckEx(SPIN_LOCK_NOT_OWNED, (ULONG_PTR)Lock, 0, 0, 0);
	__atomic_store_n(Lock, 0, __ATOMIC_RELEASE);
}

NOINLINE void KeInitializeSpinLock(PKSPIN_LOCK Lock)
{
	*Lock = 0;
}

NOINLINE KIRQL KeAcquireSpinLockRaiseToDpc(PKSPIN_LOCK Lock)
{
	KIRQL old = KiReadCr8();
	if (old > DISPATCH_LEVEL)
		KeBugCheckEx(IRQL_NOT_GREATER_OR_EQUAL, old, DISPATCH_LEVEL, (ULONG_PTR)Lock, 0);
	KiWriteCr8(DISPATCH_LEVEL);
	KxAcquireSpinLock(Lock);
	return old;
}

NOINLINE void KeReleaseSpinLock(PKSPIN_LOCK Lock, KIRQL NewIrql)
{
	KxReleaseSpinLock(Lock);
	KiLowerIrql(NewIrql);
}

/* Caller is at DISPATCH_LEVEL or above; the IRQL is not changed. */
NOINLINE void KeAcquireSpinLockAtDpcLevel(PKSPIN_LOCK Lock)
{
	KxAcquireSpinLock(Lock);
}

NOINLINE void KeReleaseSpinLockFromDpcLevel(PKSPIN_LOCK Lock)
{
	KxReleaseSpinLock(Lock);
}

NOINLINE void KeAcquireInStackQueuedSpinLock(PKSPIN_LOCK Lock, PKLOCK_QUEUE_HANDLE Handle)
{
	KIRQL old = KiReadCr8();
	if (old > DISPATCH_LEVEL)
		KeBugCheckEx(IRQL_NOT_GREATER_OR_EQUAL, old, DISPATCH_LEVEL, (ULONG_PTR)Lock, 0);
	KiWriteCr8(DISPATCH_LEVEL);
	Handle->OldIrql = old;
	Handle->LockQueue.Next = NULL;
	Handle->LockQueue.Lock = Lock;
	PKSPIN_LOCK_QUEUE prev =
	    __atomic_exchange_n((PKSPIN_LOCK_QUEUE *)Lock, &Handle->LockQueue, __ATOMIC_ACQ_REL);
	if (!prev)
		return;
	Handle->LockQueue.Lock = (PKSPIN_LOCK)((ULONG_PTR)Lock | LOCK_QUEUE_WAIT);
	prev->Next = &Handle->LockQueue;
	while ((ULONG_PTR)Handle->LockQueue.Lock & LOCK_QUEUE_WAIT)
		YieldProcessor();
}

NOINLINE void KeReleaseInStackQueuedSpinLock(PKLOCK_QUEUE_HANDLE Handle)
{
	PKSPIN_LOCK Lock = Handle->LockQueue.Lock;
	PKSPIN_LOCK_QUEUE me = &Handle->LockQueue;
	if (!me->Next) {
		PKSPIN_LOCK_QUEUE expected = me;
		if (__atomic_compare_exchange_n((PKSPIN_LOCK_QUEUE *)Lock, &expected, NULL, FALSE,
		                                __ATOMIC_RELEASE, __ATOMIC_RELAXED))
			goto lower;
		while (!me->Next) /* a waiter swapped itself in but has not linked yet */
			YieldProcessor();
	}
	PKSPIN_LOCK_QUEUE next = me->Next;
	next->Lock = (PKSPIN_LOCK)((ULONG_PTR)next->Lock & ~(ULONG_PTR)LOCK_QUEUE_WAIT);
lower:
	KiLowerIrql(Handle->OldIrql);
}
