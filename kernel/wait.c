/*
 * wait.c: dispatcher objects (events, mutexes, semaphores, timers, threads)
 * and waiting on them.
 *
 * Everything here runs under the dispatcher lock at DISPATCH_LEVEL. A waiting
 * thread queues its one KWAIT_BLOCK on the object (FIFO) and, with a timeout,
 * arms its own KTIMER; whichever comes first — KiWaitTest satisfying it or the
 * timer DPC — unwaits it with STATUS_SUCCESS or STATUS_TIMEOUT.
 *
 * The IRQL a thread waited at is saved in KTHREAD.WaitIrql and restored when
 * its wait returns: per thread. The global-irql scenario keeps it in one
 * global instead (KiGlobalWaitIrql), the bug it plants.
 */
#include "ke.h"

static KIRQL KiGlobalWaitIrql;

void KiInitializeDispatcherHeader(DISPATCHER_HEADER *Header, UCHAR Type, LONG State)
{
	Header->Type = Type;
	Header->SignalState = State;
	InitializeListHead(&Header->WaitListHead);
}

static BOOLEAN KiIsObjectSignaledFor(DISPATCHER_HEADER *h, PKTHREAD Thread)
{
	if (h->Type == MutantObject)
		return h->SignalState > 0 || ((PKMUTEX)h)->OwnerThread == Thread;
	return h->SignalState > 0;
}

/* A mutex is acquired by Thread (first time or recursively). Dispatcher lock
 * held. Not static: the tracer hooks the moment ownership is granted. */
NOINLINE void KiSatisfyMutexWait(PKMUTEX Mutex, PKTHREAD Thread)
{
	Mutex->Header.SignalState--;
	Mutex->OwnerThread = Thread;
}

/* The side effect of a satisfied wait. */
static void KiSatisfyObjectWait(DISPATCHER_HEADER *h, PKTHREAD Thread)
{
	switch (h->Type) {
	case SynchronizationEvent:
		h->SignalState = 0;
		break;
	case SemaphoreObject:
		h->SignalState--;
		break;
	case MutantObject:
		KiSatisfyMutexWait((PKMUTEX)h, Thread);
		break;
	default: /* notification event, timer, thread: stay signalled */
		break;
	}
}

/* Ends Thread's wait with Status and makes it ready. Dispatcher lock held. */
void KiUnwaitThread(PKTHREAD Thread, NTSTATUS Status)
{
	if (Thread->WaitBlock.Object) {
		RemoveEntryList(&Thread->WaitBlock.WaitListEntry);
		Thread->WaitBlock.Object = NULL;
	}
	KiRemoveTimer(&Thread->Timer);
	Thread->WaitStatus = Status;
	KiReadyThread(Thread);
}

/* The object may now satisfy waiters: wake them in FIFO order while it does. */
void KiWaitTest(DISPATCHER_HEADER *h)
{
	while (!IsListEmpty(&h->WaitListHead)) {
		PKWAIT_BLOCK wb = CONTAINING_RECORD(h->WaitListHead.Flink, KWAIT_BLOCK, WaitListEntry);
		if (!KiIsObjectSignaledFor(h, wb->Thread))
			break;
		KiSatisfyObjectWait(h, wb->Thread);
		KiUnwaitThread(wb->Thread, STATUS_SUCCESS);
	}
}

static void KiSaveWaitIrql(PKTHREAD t, KIRQL irql)
{
	if (KiBugFlags & KI_BUG_GLOBAL_IRQL)
		KiGlobalWaitIrql = irql;
	else
		t->WaitIrql = irql;
}

static KIRQL KiWaitIrqlOf(PKTHREAD t)
{
	return (KiBugFlags & KI_BUG_GLOBAL_IRQL) ? KiGlobalWaitIrql : t->WaitIrql;
}

/* Object NULL: a pure delay. */
static NTSTATUS KiWait(DISPATCHER_HEADER *h, PLARGE_INTEGER Timeout)
{
	PKTHREAD t = KeGetCurrentThread();
	KIRQL old = KiAcquireDispatcherLock();
	NTSTATUS status;
	BOOLEAN zero = Timeout && KiTimeoutToTicks(Timeout->QuadPart) == 0;

	/* Blocking is only legal below DISPATCH_LEVEL (NT's rule). */
	if (old > DISPATCH_LEVEL || (old == DISPATCH_LEVEL && !zero))
		KeBugCheckEx(IRQL_NOT_LESS_OR_EQUAL, old, DISPATCH_LEVEL, (ULONG_PTR)h, 1);
	KiSaveWaitIrql(t, old);
	if (h && KiIsObjectSignaledFor(h, t)) {
		KiSatisfyObjectWait(h, t);
		status = STATUS_SUCCESS;
		goto out;
	}
	if (zero) {
		status = STATUS_TIMEOUT;
		goto out;
	}
	if (h) {
		t->WaitBlock.Object = h;
		InsertTailList(&h->WaitListHead, &t->WaitBlock.WaitListEntry);
	}
	if (Timeout)
		KiInsertTimer(&t->Timer, KiTimeoutToTicks(Timeout->QuadPart));
	t->State = Waiting;
	status = KiSwapThread();
out:
	KiReleaseDispatcherLock(KiWaitIrqlOf(t));
	return status;
}

NOINLINE NTSTATUS KeWaitForSingleObject(PVOID Object, KWAIT_REASON Reason, KPROCESSOR_MODE Mode,
                                        BOOLEAN Alertable, PLARGE_INTEGER Timeout)
{
	(void)Reason, (void)Mode, (void)Alertable;
	if (!Object)
		KeBugCheckEx(INVALID_WAIT_OBJECT, 0, 0, 0, 0);
	return KiWait(Object, Timeout);
}

NTSTATUS KeDelayExecutionThread(KPROCESSOR_MODE Mode, BOOLEAN Alertable, PLARGE_INTEGER Interval)
{
	(void)Mode, (void)Alertable;
	NTSTATUS s = KiWait(NULL, Interval);
	return s == STATUS_TIMEOUT ? STATUS_SUCCESS : s;
}

/* ---- events ---- */
void KeInitializeEvent(PKEVENT Event, EVENT_TYPE Type, BOOLEAN State)
{
	KiInitializeDispatcherHeader(&Event->Header, (UCHAR)Type, State);
}

/* Returns the previous state. Notification events wake every waiter,
 * synchronization events one (and reset). */
NOINLINE LONG KeSetEvent(PKEVENT Event, KPRIORITY Increment, BOOLEAN Wait)
{
	(void)Increment, (void)Wait;
	KIRQL old = KiAcquireDispatcherLock();
	LONG prev = Event->Header.SignalState;
	Event->Header.SignalState = 1;
	KiWaitTest(&Event->Header);
	KiReleaseDispatcherLock(old);
	return prev;
}

LONG KeResetEvent(PKEVENT Event)
{
	KIRQL old = KiAcquireDispatcherLock();
	LONG prev = Event->Header.SignalState;
	Event->Header.SignalState = 0;
	KiReleaseDispatcherLock(old);
	return prev;
}

/* ---- mutexes ---- */
void KeInitializeMutex(PKMUTEX Mutex, ULONG Level)
{
	(void)Level;
	KiInitializeDispatcherHeader(&Mutex->Header, MutantObject, 1);
	Mutex->OwnerThread = NULL;
}

/* Only the owner may release; the last release frees the mutex and hands
 * it to the first waiter. Returns the previous SignalState. */
NOINLINE LONG KeReleaseMutex(PKMUTEX Mutex, BOOLEAN Wait)
{
	(void)Wait;
	PKTHREAD t = KeGetCurrentThread();
	KIRQL old = KiAcquireDispatcherLock();
	LONG prev = Mutex->Header.SignalState;
	if (Mutex->OwnerThread != t || prev > 0)
		KeBugCheckEx(THREAD_NOT_MUTEX_OWNER, (ULONG_PTR)Mutex, (ULONG_PTR)t,
		             (ULONG_PTR)Mutex->OwnerThread, 0);
	if (++Mutex->Header.SignalState == 1) {
		Mutex->OwnerThread = NULL;
		KiWaitTest(&Mutex->Header);
	}
	KiReleaseDispatcherLock(old);
	return prev;
}

/* ---- semaphores ---- */
void KeInitializeSemaphore(PKSEMAPHORE Sem, LONG Count, LONG Limit)
{
	KiInitializeDispatcherHeader(&Sem->Header, SemaphoreObject, Count);
	Sem->Limit = Limit;
}

/* Returns the previous count. Exceeding the limit is a bugcheck here (NT
 * raises STATUS_SEMAPHORE_LIMIT_EXCEEDED to the caller). */
NOINLINE LONG KeReleaseSemaphore(PKSEMAPHORE Sem, KPRIORITY Increment, LONG Adjustment, BOOLEAN Wait)
{
	(void)Increment, (void)Wait;
	KIRQL old = KiAcquireDispatcherLock();
	LONG prev = Sem->Header.SignalState;
	if (Adjustment <= 0 || prev + Adjustment > Sem->Limit)
		KeBugCheckEx(SEMAPHORE_LIMIT_EXCEEDED, (ULONG_PTR)Sem, prev, Adjustment, Sem->Limit);
	Sem->Header.SignalState = prev + Adjustment;
	KiWaitTest(&Sem->Header);
	KiReleaseDispatcherLock(old);
	return prev;
}
