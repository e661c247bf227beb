/*
 * selftest.c: the boot self-tests of the `clean` scenario. One line per test
 * (PASS/FAIL name), then "N passed, N failed" from KiSelfTestReport, which
 * powers off with 0x10 (all passed) or 0x11.
 *
 * Tests count clock ticks, never wall-clock time. Busy loops that must span
 * several quanta wait for a tick count, so they behave the same at any speed.
 */
#include "ke.h"

static BOOLEAN KiTestOk;
static ULONG KiTestsPassed, KiTestsFailed;

#define CHECK(cond)                                                                                          \
	do {                                                                                                 \
		if (!(cond)) {                                                                               \
			DbgPrint("    check failed: %s (selftest.c:%d)\n", #cond, __LINE__);                 \
			KiTestOk = FALSE;                                                                    \
		}                                                                                            \
	} while (0)

static LARGE_INTEGER Ticks(LONGLONG n)
{
	LARGE_INTEGER t = {-n * KeMaximumIncrement};
	return t;
}

static void Sleep(LONGLONG ticks)
{
	LARGE_INTEGER t = Ticks(ticks);
	KeDelayExecutionThread(KernelMode, FALSE, &t);
}

static void Join(PKTHREAD t)
{
	CHECK(KeWaitForSingleObject(t, Executive, KernelMode, FALSE, NULL) == STATUS_SUCCESS);
}

/* ---- IRQL ---- */
static void TestIrqlRaiseLower(void)
{
	KIRQL old, old2;
	CHECK(KeGetCurrentIrql() == PASSIVE_LEVEL);
	KeRaiseIrql(DISPATCH_LEVEL, &old);
	CHECK(old == PASSIVE_LEVEL);
	CHECK(KeGetCurrentIrql() == DISPATCH_LEVEL && KiReadCr8() == DISPATCH_LEVEL);
	KeRaiseIrql(HIGH_LEVEL, &old2);
	CHECK(old2 == DISPATCH_LEVEL);
	CHECK(KiReadCr8() == HIGH_LEVEL);
	KeLowerIrql(old2);
	CHECK(KiReadCr8() == DISPATCH_LEVEL);
	KeLowerIrql(old);
	CHECK(KiReadCr8() == PASSIVE_LEVEL);
}

/* CR8 = CLOCK_LEVEL holds the 0xD1 interrupt pending in the APIC's IRR;
 * DISPATCH_LEVEL does not. */
static void TestIrqlClockMaskedByCr8(void)
{
	KIRQL old;
	KeRaiseIrql(DISPATCH_LEVEL, &old);
	ULONG64 t0 = KeTickCount;
	for (ULONG64 i = 0; i < 2000000000ull && KeTickCount == t0; i++)
		KiBusyWait();
	CHECK(KeTickCount != t0);

	KIRQL old2;
	KeRaiseIrql(CLOCK_LEVEL, &old2);
	t0 = KeTickCount;
	BOOLEAN pending = FALSE;
	for (ULONG64 i = 0; i < 2000000000ull && !pending; i++)
		pending = HalIsClockInterruptPending();
	CHECK(pending);
	CHECK(KeTickCount == t0);
	KeLowerIrql(old2);
	CHECK(KeTickCount > t0);
	KeLowerIrql(old);
}

static KEVENT IrqlEvent1, IrqlEvent2;
static volatile KIRQL IrqlSeenByB[2];

static void IrqlThreadB(PVOID Context)
{
	(void)Context;
	IrqlSeenByB[0] = KeGetCurrentIrql();
	KeSetEvent(&IrqlEvent2, 0, FALSE);
	KeWaitForSingleObject(&IrqlEvent1, Executive, KernelMode, FALSE, NULL);
	IrqlSeenByB[1] = KeGetCurrentIrql();
}

/* A thread waiting at APC_LEVEL must not hand its IRQL to the thread that
 * runs next, nor get someone else's back. */
static void TestIrqlPerThreadAcrossWait(void)
{
	KIRQL old;
	KeInitializeEvent(&IrqlEvent1, SynchronizationEvent, FALSE);
	KeInitializeEvent(&IrqlEvent2, SynchronizationEvent, FALSE);
	IrqlSeenByB[0] = IrqlSeenByB[1] = 0xFF;
	PKTHREAD b = KeCreateThread("IrqlB", IrqlThreadB, NULL);
	KeRaiseIrql(APC_LEVEL, &old);
	KeWaitForSingleObject(&IrqlEvent2, Executive, KernelMode, FALSE, NULL);
	CHECK(KeGetCurrentIrql() == APC_LEVEL);
	KeSetEvent(&IrqlEvent1, 0, FALSE);
	KeWaitForSingleObject(b, Executive, KernelMode, FALSE, NULL);
	CHECK(KeGetCurrentIrql() == APC_LEVEL);
	KeLowerIrql(old);
	CHECK(IrqlSeenByB[0] == PASSIVE_LEVEL);
	CHECK(IrqlSeenByB[1] == PASSIVE_LEVEL);
}

static volatile ULONG PreemptBad[2];

static void IrqlPreemptedThread(PVOID Context)
{
	ULONG_PTR which = (ULONG_PTR)Context;
	KIRQL mine = which ? APC_LEVEL : PASSIVE_LEVEL, old;
	PKTHREAD me = KeGetCurrentThread();
	KeRaiseIrql(mine, &old);
	while (me->QuantumEnds < 3)
		if (KeGetCurrentIrql() != mine)
			PreemptBad[which]++;
	KeLowerIrql(old);
}

/* Preemption saves and restores the IRQL per thread (APC_LEVEL is still
 * preemptible: the DISPATCH software interrupt runs below DISPATCH_LEVEL). */
static void TestIrqlPerThreadAcrossPreemption(void)
{
	PreemptBad[0] = PreemptBad[1] = 0;
	PKTHREAD a = KeCreateThread("IrqlPassive", IrqlPreemptedThread, (PVOID)0);
	PKTHREAD b = KeCreateThread("IrqlApc", IrqlPreemptedThread, (PVOID)1);
	Join(a);
	Join(b);
	CHECK(a->QuantumEnds >= 3 && b->QuantumEnds >= 3);
	CHECK(PreemptBad[0] == 0);
	CHECK(PreemptBad[1] == 0);
}

/* ---- scheduling ---- */
static volatile BOOLEAN FairStop;
static volatile ULONG64 FairCount[3];

static void FairThread(PVOID Context)
{
	ULONG_PTR i = (ULONG_PTR)Context;
	while (!FairStop)
		FairCount[i]++;
}

static void TestSchedRoundRobinFairness(void)
{
	PKTHREAD t[3];
	FairStop = FALSE;
	for (ULONG_PTR i = 0; i < 3; i++) {
		FairCount[i] = 0;
		t[i] = KeCreateThread("Fair", FairThread, (PVOID)i);
	}
	Sleep(10 * 3 * KI_QUANTUM);
	FairStop = TRUE;
	for (int i = 0; i < 3; i++)
		Join(t[i]);
	for (int i = 0; i < 3; i++) {
		DbgPrint("    thread %d: %lu quantum ends, %lu switches in\n", i, t[i]->QuantumEnds,
		         t[i]->ContextSwitches);
		CHECK(FairCount[i] > 0);
		CHECK(t[i]->QuantumEnds >= 4);
		CHECK(t[i]->ContextSwitches >= 4);
	}
}

/* ---- DPCs ---- */
static ULONG DpcOrder[4], DpcRan;
static KIRQL DpcIrql[4];

static void RecordDpc(PKDPC Dpc, PVOID Context, PVOID A1, PVOID A2)
{
	(void)Dpc, (void)A1, (void)A2;
	if (DpcRan < 4) {
		DpcIrql[DpcRan] = KeGetCurrentIrql();
		DpcOrder[DpcRan] = (ULONG)(ULONG_PTR)Context;
	}
	DpcRan++;
}

static void TestDpcFifoAtDispatchLevel(void)
{
	KDPC d[3];
	KIRQL old;
	DpcRan = 0;
	for (ULONG_PTR i = 0; i < 3; i++)
		KeInitializeDpc(&d[i], RecordDpc, (PVOID)(i + 1));
	KeRaiseIrql(DISPATCH_LEVEL, &old);
	for (int i = 0; i < 3; i++)
		CHECK(KeInsertQueueDpc(&d[i], NULL, NULL));
	CHECK(!KeInsertQueueDpc(&d[0], NULL, NULL)); /* already queued */
	CHECK(DpcRan == 0);
	KeLowerIrql(old); /* the DISPATCH software interrupt drains the queue */
	CHECK(DpcRan == 3);
	for (int i = 0; i < 3; i++) {
		CHECK(DpcOrder[i] == (ULONG)i + 1);
		CHECK(DpcIrql[i] == DISPATCH_LEVEL);
	}
}

static volatile ULONG64 TimerDpcTick;

static void TimerDpc(PKDPC Dpc, PVOID Context, PVOID A1, PVOID A2)
{
	(void)Dpc, (void)Context, (void)A1, (void)A2;
	TimerDpcTick = KeTickCount;
}

static void TestTimerSignalsAndQueuesDpc(void)
{
	KTIMER timer;
	KDPC dpc;
	KeInitializeTimer(&timer);
	KeInitializeDpc(&dpc, TimerDpc, NULL);
	TimerDpcTick = 0;
	ULONG64 t0 = KeTickCount;
	CHECK(!KeSetTimer(&timer, Ticks(4), &dpc));
	LARGE_INTEGER limit = Ticks(100);
	CHECK(KeWaitForSingleObject(&timer, Executive, KernelMode, FALSE, &limit) == STATUS_SUCCESS);
	CHECK(TimerDpcTick >= t0 + 4 && TimerDpcTick <= t0 + 6);
	CHECK(timer.Header.SignalState == 1);

	/* A cancelled timer never signals nor runs its DPC. */
	TimerDpcTick = 0;
	CHECK(!KeSetTimer(&timer, Ticks(3), &dpc));
	CHECK(timer.Header.SignalState == 0);
	CHECK(KeCancelTimer(&timer));
	CHECK(!KeCancelTimer(&timer));
	limit = Ticks(6);
	CHECK(KeWaitForSingleObject(&timer, Executive, KernelMode, FALSE, &limit) == STATUS_TIMEOUT);
	CHECK(TimerDpcTick == 0);
}

/* ---- waits ---- */
static void TestWaitTimeout(void)
{
	KEVENT never;
	KeInitializeEvent(&never, NotificationEvent, FALSE);
	LARGE_INTEGER t = Ticks(5);
	ULONG64 t0 = KeTickCount;
	NTSTATUS s = KeWaitForSingleObject(&never, Executive, KernelMode, FALSE, &t);
	ULONG64 elapsed = KeTickCount - t0;
	DbgPrint("    timed out after %lu ticks (asked 5)\n", elapsed);
	CHECK(s == STATUS_TIMEOUT);
	CHECK(elapsed >= 5 && elapsed <= 7);
	LARGE_INTEGER zero = {0};
	CHECK(KeWaitForSingleObject(&never, Executive, KernelMode, FALSE, &zero) == STATUS_TIMEOUT);
	CHECK(IsListEmpty(&never.Header.WaitListHead));
}

static KEVENT SignalEvent;

static void Signaller(PVOID Context)
{
	(void)Context;
	Sleep(3);
	KeSetEvent(&SignalEvent, 0, FALSE);
}

static void TestWaitSignalled(void)
{
	KeInitializeEvent(&SignalEvent, NotificationEvent, FALSE);
	PKTHREAD s = KeCreateThread("Signaller", Signaller, NULL);
	LARGE_INTEGER t = Ticks(200);
	ULONG64 t0 = KeTickCount;
	CHECK(KeWaitForSingleObject(&SignalEvent, Executive, KernelMode, FALSE, &t) == STATUS_SUCCESS);
	CHECK(KeTickCount - t0 < 200);
	CHECK(!KeGetCurrentThread()->Timer.Inserted); /* the timeout was cancelled */
	Join(s);
}

static KEVENT WakeEvent;
static volatile ULONG Woken;

static void EventWaiter(PVOID Context)
{
	(void)Context;
	KeWaitForSingleObject(&WakeEvent, Executive, KernelMode, FALSE, NULL);
	__atomic_add_fetch(&Woken, 1, __ATOMIC_SEQ_CST);
}

static void TestEventsNotificationAndSynchronization(void)
{
	PKTHREAD t[3];
	KeInitializeEvent(&WakeEvent, NotificationEvent, FALSE);
	Woken = 0;
	for (int i = 0; i < 3; i++)
		t[i] = KeCreateThread("NotifyWaiter", EventWaiter, NULL);
	Sleep(2);
	CHECK(Woken == 0);
	CHECK(KeSetEvent(&WakeEvent, 0, FALSE) == 0);
	for (int i = 0; i < 3; i++)
		Join(t[i]);
	CHECK(Woken == 3);
	CHECK(WakeEvent.Header.SignalState == 1); /* notification: stays set */
	CHECK(KeResetEvent(&WakeEvent) == 1);
	CHECK(WakeEvent.Header.SignalState == 0);

	KeInitializeEvent(&WakeEvent, SynchronizationEvent, FALSE);
	Woken = 0;
	for (int i = 0; i < 2; i++)
		t[i] = KeCreateThread("SyncWaiter", EventWaiter, NULL);
	Sleep(2);
	KeSetEvent(&WakeEvent, 0, FALSE);
	Sleep(2);
	CHECK(Woken == 1);
	CHECK(WakeEvent.Header.SignalState == 0); /* synchronization: auto-reset */
	KeSetEvent(&WakeEvent, 0, FALSE);
	Join(t[0]);
	Join(t[1]);
	CHECK(Woken == 2);
}

/* ---- mutexes and semaphores ---- */
static void TestMutexRecursiveOwnership(void)
{
	KMUTEX m;
	PKTHREAD me = KeGetCurrentThread();
	KeInitializeMutex(&m, 0);
	CHECK(KeWaitForSingleObject(&m, Executive, KernelMode, FALSE, NULL) == STATUS_SUCCESS);
	CHECK(m.OwnerThread == me && m.Header.SignalState == 0);
	CHECK(KeWaitForSingleObject(&m, Executive, KernelMode, FALSE, NULL) == STATUS_SUCCESS);
	CHECK(m.OwnerThread == me && m.Header.SignalState == -1);
	CHECK(KeReleaseMutex(&m, FALSE) == -1);
	CHECK(m.OwnerThread == me && m.Header.SignalState == 0);
	CHECK(KeReleaseMutex(&m, FALSE) == 0);
	CHECK(m.OwnerThread == NULL && m.Header.SignalState == 1);
}

static KMUTEX HandoffMutex;
static volatile PKTHREAD HandoffOwnerSeen;

static void MutexWaiter(PVOID Context)
{
	(void)Context;
	KeWaitForSingleObject(&HandoffMutex, Executive, KernelMode, FALSE, NULL);
	HandoffOwnerSeen = HandoffMutex.OwnerThread;
	KeReleaseMutex(&HandoffMutex, FALSE);
}

static void TestMutexHandoffToWaiter(void)
{
	KeInitializeMutex(&HandoffMutex, 0);
	HandoffOwnerSeen = NULL;
	KeWaitForSingleObject(&HandoffMutex, Executive, KernelMode, FALSE, NULL);
	PKTHREAD w = KeCreateThread("MutexWaiter", MutexWaiter, NULL);
	Sleep(2);
	CHECK(w->State == Waiting);
	CHECK(HandoffOwnerSeen == NULL);
	KeReleaseMutex(&HandoffMutex, FALSE);
	Join(w);
	CHECK(HandoffOwnerSeen == w);
	CHECK(HandoffMutex.OwnerThread == NULL && HandoffMutex.Header.SignalState == 1);
}

static void TestSemaphoreCounts(void)
{
	KSEMAPHORE s;
	LARGE_INTEGER zero = {0};
	KeInitializeSemaphore(&s, 0, 2);
	CHECK(KeWaitForSingleObject(&s, Executive, KernelMode, FALSE, &zero) == STATUS_TIMEOUT);
	CHECK(KeReleaseSemaphore(&s, 0, 2, FALSE) == 0);
	CHECK(KeWaitForSingleObject(&s, Executive, KernelMode, FALSE, &zero) == STATUS_SUCCESS);
	CHECK(KeWaitForSingleObject(&s, Executive, KernelMode, FALSE, &zero) == STATUS_SUCCESS);
	CHECK(KeWaitForSingleObject(&s, Executive, KernelMode, FALSE, &zero) == STATUS_TIMEOUT);
	CHECK(s.Header.SignalState == 0);
}

/* ---- spin locks ---- */
static void TestSpinLockStateNamesHolder(void)
{
	KSPIN_LOCK lock;
	KLOCK_QUEUE_HANDLE h;
	KIRQL old;
	PKTHREAD me = KeGetCurrentThread();
	KeInitializeSpinLock(&lock);
	CHECK(lock == 0);
	KeAcquireSpinLock(&lock, &old);
	CHECK(lock == ((ULONG_PTR)me | 1));
	CHECK(old == PASSIVE_LEVEL && KeGetCurrentIrql() == DISPATCH_LEVEL);
	KeReleaseSpinLock(&lock, old);
	CHECK(lock == 0 && KeGetCurrentIrql() == PASSIVE_LEVEL);

	KeAcquireInStackQueuedSpinLock(&lock, &h);
	CHECK(lock == (ULONG_PTR)&h.LockQueue);
	CHECK(h.LockQueue.Lock == &lock && h.OldIrql == PASSIVE_LEVEL);
	CHECK(KeGetCurrentIrql() == DISPATCH_LEVEL);
	KeReleaseInStackQueuedSpinLock(&h);
	CHECK(lock == 0 && KeGetCurrentIrql() == PASSIVE_LEVEL);
}

#define EXCL_THREADS 4
#define EXCL_ROUNDS  24
static KSPIN_LOCK SelfTestCounterLock;
static volatile ULONG64 ExclCounter;

/* Read, wait for the next clock tick, write: every read-write window spans a
 * clock interrupt, and a third of them a quantum end, so without mutual
 * exclusion (or with a lock that did not raise to DISPATCH_LEVEL) preemption
 * inside the window would lose increments. */
static void ExclusionThread(PVOID Context)
{
	BOOLEAN queued = Context != NULL;
	for (int i = 0; i < EXCL_ROUNDS; i++) {
		KIRQL old = 0;
		KLOCK_QUEUE_HANDLE h;
		if (queued)
			KeAcquireInStackQueuedSpinLock(&SelfTestCounterLock, &h);
		else
			KeAcquireSpinLock(&SelfTestCounterLock, &old);
		ULONG64 v = ExclCounter, t0 = KeTickCount;
		while (KeTickCount == t0)
			KiBusyWait();
		ExclCounter = v + 1;
		if (queued)
			KeReleaseInStackQueuedSpinLock(&h);
		else
			KeReleaseSpinLock(&SelfTestCounterLock, old);
	}
}

static void RunExclusion(BOOLEAN queued)
{
	PKTHREAD t[EXCL_THREADS];
	ULONG64 preemptions = 0;
	KeInitializeSpinLock(&SelfTestCounterLock);
	ExclCounter = 0;
	for (int i = 0; i < EXCL_THREADS; i++)
		t[i] = KeCreateThread(queued ? "QueuedLocker" : "SpinLocker", ExclusionThread,
		                      queued ? (PVOID)1 : NULL);
	for (int i = 0; i < EXCL_THREADS; i++) {
		Join(t[i]);
		preemptions += t[i]->QuantumEnds;
	}
	DbgPrint("    counter %lu (expected %u), %lu preemptions\n", ExclCounter, EXCL_THREADS * EXCL_ROUNDS,
	         preemptions);
	CHECK(ExclCounter == EXCL_THREADS * EXCL_ROUNDS);
	CHECK(preemptions >= EXCL_THREADS); /* the threads really were preempted */
	CHECK(SelfTestCounterLock == 0);
}

static void TestSpinLockExcludesPreemptibleThreads(void)
{
	RunExclusion(FALSE);
}
static void TestQueuedSpinLockExcludesPreemptibleThreads(void)
{
	RunExclusion(TRUE);
}

static const struct {
	const char *Name;
	void (*Run)(void);
} KiSelfTests[] = {
    {"irql_raise_lower_cr8", TestIrqlRaiseLower},
    {"irql_clock_masked_at_clock_level", TestIrqlClockMaskedByCr8},
    {"irql_per_thread_across_wait", TestIrqlPerThreadAcrossWait},
    {"irql_per_thread_across_preemption", TestIrqlPerThreadAcrossPreemption},
    {"sched_round_robin_fairness", TestSchedRoundRobinFairness},
    {"dpc_fifo_at_dispatch_level", TestDpcFifoAtDispatchLevel},
    {"timer_signals_queues_dpc_and_cancels", TestTimerSignalsAndQueuesDpc},
    {"wait_timeout_returns_status_timeout", TestWaitTimeout},
    {"wait_signalled_returns_success", TestWaitSignalled},
    {"events_notification_and_synchronization", TestEventsNotificationAndSynchronization},
    {"mutex_recursive_ownership", TestMutexRecursiveOwnership},
    {"mutex_handoff_to_waiter", TestMutexHandoffToWaiter},
    {"semaphore_counts", TestSemaphoreCounts},
    {"spinlock_state_names_holder", TestSpinLockStateNamesHolder},
    {"spinlock_excludes_preemptible_threads", TestSpinLockExcludesPreemptibleThreads},
    {"queued_spinlock_excludes_preemptible_threads", TestQueuedSpinLockExcludesPreemptibleThreads},
};

/* Not static: the tracer hooks the verdict. Powers off. */
NOINLINE void KiSelfTestReport(ULONG Passed, ULONG Failed)
{
	DbgPrint("selftest: %u passed, %u failed\n", Passed, Failed);
	KiPowerOff(Failed == 0 && Passed > 0 ? KI_EXIT_PASS : KI_EXIT_FAIL);
}

void KiRunSelfTests(void)
{
	for (size_t i = 0; i < sizeof(KiSelfTests) / sizeof(KiSelfTests[0]); i++) {
		KiTestOk = TRUE;
		KiSelfTests[i].Run();
		if (KeGetCurrentIrql() != PASSIVE_LEVEL) {
			DbgPrint("    left IRQL %u raised\n", KeGetCurrentIrql());
			KiTestOk = FALSE;
			KeLowerIrql(PASSIVE_LEVEL);
		}
		DbgPrint("selftest: %s %s\n", KiTestOk ? "PASS" : "FAIL", KiSelfTests[i].Name);
		if (KiTestOk)
			KiTestsPassed++;
		else
			KiTestsFailed++;
	}
	KiSelfTestReport(KiTestsPassed, KiTestsFailed);
}
