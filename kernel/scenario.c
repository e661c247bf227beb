/*
 * scenario.c: the broken scenarios, selected with -append "scenario=NAME".
 *
 * Each sets a KiBugFlags bit (or misuses an API) so the bug happens through
 * the kernel's real code paths, never a printed imitation of the symptom.
 * docs/scenarios.md says, per scenario, what it models and what to expect.
 * A scenario that runs to its end powers off with 0x13 ("ran, bug not
 * caught by the kernel"); the hanging ones never get there.
 */
#include "ke.h"

/* The planted bugs in force (KI_BUG_*): set by a scenario when it starts. */
volatile ULONG KiBugFlags;

/* Recognizable lock and mutex symbols for the trace (lock-order checks). */
KSPIN_LOCK ScenarioLockA, ScenarioLockB, ScenarioIsrLock, ScenarioRecursiveLock;
KMUTEX ScenarioMutexA, ScenarioMutexB;
static KEVENT ScenarioEvent1, ScenarioEvent2;

NOINLINE void KiScenarioStart(const char *Name)
{
	DbgPrint("scenario %s: start\n", Name);
}

static NORETURN void ScenarioFinished(const char *Name)
{
	DbgPrint("scenario %s: finished, bug not caught by the kernel\n", Name);
	KiPowerOff(KI_EXIT_UNCAUGHT);
}

static void Wait(PVOID Object)
{
	KeWaitForSingleObject(Object, Executive, KernelMode, FALSE, NULL);
}

/* ---- eoi-before-switch ---- */
static void BusyWorker(PVOID Context)
{
	(void)Context;
	PKTHREAD me = KeGetCurrentThread();
	while (me->QuantumEnds < 6)
		KiBusyWait();
}

static void EoiBeforeSwitch(void)
{
	/* The clock ISR moves to the per-processor interrupt stack (IST2) and
	 * switches threads from inside itself after its EOI. */
	KiSetIdtIst(CLOCK_VECTOR, 2);
	KiBugFlags |= KI_BUG_EOI_BEFORE_SWITCH;
	PKTHREAD a = KeCreateThread("EbsWorkerA", BusyWorker, NULL);
	PKTHREAD b = KeCreateThread("EbsWorkerB", BusyWorker, NULL);
	Wait(a);
	Wait(b);
	ScenarioFinished("eoi-before-switch");
}

/* ---- missing-eoi ---- */
static void MissingEoi(void)
{
	KiBugFlags |= KI_BUG_MISSING_EOI;
	for (int i = 1; i <= 20; i++) {
		LARGE_INTEGER t = {-KeMaximumIncrement};
		KeDelayExecutionThread(KernelMode, FALSE, &t);
		DbgPrint("missing-eoi: woke up %d, tick %lu\n", i, KeTickCount);
	}
	ScenarioFinished("missing-eoi");
}

/* ---- global-irql ---- */
static volatile KIRQL GlobalIrqlBefore, GlobalIrqlAfter;

static void GlobalIrqlThreadB(PVOID Context)
{
	(void)Context;
	GlobalIrqlBefore = KeGetCurrentIrql();
	KeSetEvent(&ScenarioEvent2, 0, FALSE);
	Wait(&ScenarioEvent1);
	GlobalIrqlAfter = KeGetCurrentIrql();
	DbgPrint("global-irql: thread %s waited at IRQL %u and resumed at IRQL %u\n",
	         KeGetCurrentThread()->Name, GlobalIrqlBefore, GlobalIrqlAfter);
	if (GlobalIrqlAfter != PASSIVE_LEVEL)
		KeLowerIrql(PASSIVE_LEVEL);
}

static void GlobalIrql(void)
{
	KIRQL old;
	KiBugFlags |= KI_BUG_GLOBAL_IRQL;
	KeInitializeEvent(&ScenarioEvent1, SynchronizationEvent, FALSE);
	KeInitializeEvent(&ScenarioEvent2, SynchronizationEvent, FALSE);
	PKTHREAD b = KeCreateThread("GlobalIrqlB", GlobalIrqlThreadB, NULL);
	Wait(&ScenarioEvent2); /* B is about to wait at PASSIVE_LEVEL */
	KeRaiseIrql(APC_LEVEL, &old);
	KeSetEvent(&ScenarioEvent1, 0, FALSE);
	Wait(b); /* waits at APC_LEVEL: B runs next */
	KeLowerIrql(old);
	if (GlobalIrqlAfter != GlobalIrqlBefore)
		DbgPrint("global-irql: IRQL leaked across the switch (%u -> %u)\n", GlobalIrqlBefore,
		         GlobalIrqlAfter);
	ScenarioFinished("global-irql");
}

/* ---- lock-order ---- */
static void LockOrderAB(PVOID Context)
{
	(void)Context;
	KIRQL old;
	KeAcquireSpinLock(&ScenarioLockA, &old);
	KeAcquireSpinLockAtDpcLevel(&ScenarioLockB);
	KeReleaseSpinLockFromDpcLevel(&ScenarioLockB);
	KeReleaseSpinLock(&ScenarioLockA, old);
	DbgPrint("lock-order: %s took A then B\n", KeGetCurrentThread()->Name);
}

static void LockOrderBA(PVOID Context)
{
	(void)Context;
	KIRQL old;
	KeAcquireSpinLock(&ScenarioLockB, &old);
	KeAcquireSpinLockAtDpcLevel(&ScenarioLockA);
	KeReleaseSpinLockFromDpcLevel(&ScenarioLockA);
	KeReleaseSpinLock(&ScenarioLockB, old);
	DbgPrint("lock-order: %s took B then A\n", KeGetCurrentThread()->Name);
}

static void LockOrder(void)
{
	KeInitializeSpinLock(&ScenarioLockA);
	KeInitializeSpinLock(&ScenarioLockB);
	PKTHREAD t1 = KeCreateThread("LockOrderAB", LockOrderAB, NULL);
	Wait(t1);
	PKTHREAD t2 = KeCreateThread("LockOrderBA", LockOrderBA, NULL);
	Wait(t2);
	ScenarioFinished("lock-order");
}

/* ---- lock-order-deadlock ---- */
static void DeadlockAB(PVOID Context)
{
	(void)Context;
	Wait(&ScenarioMutexA);
	DbgPrint("lock-order-deadlock: %s holds A, wants B\n", KeGetCurrentThread()->Name);
	KeSetEvent(&ScenarioEvent1, 0, FALSE);
	Wait(&ScenarioEvent2);
	Wait(&ScenarioMutexB);
	KeReleaseMutex(&ScenarioMutexB, FALSE);
	KeReleaseMutex(&ScenarioMutexA, FALSE);
}

static void DeadlockBA(PVOID Context)
{
	(void)Context;
	Wait(&ScenarioEvent1);
	Wait(&ScenarioMutexB);
	DbgPrint("lock-order-deadlock: %s holds B, wants A\n", KeGetCurrentThread()->Name);
	KeSetEvent(&ScenarioEvent2, 0, FALSE);
	Wait(&ScenarioMutexA);
	KeReleaseMutex(&ScenarioMutexA, FALSE);
	KeReleaseMutex(&ScenarioMutexB, FALSE);
}

static void LockOrderDeadlock(void)
{
	KeInitializeMutex(&ScenarioMutexA, 0);
	KeInitializeMutex(&ScenarioMutexB, 0);
	KeInitializeEvent(&ScenarioEvent1, SynchronizationEvent, FALSE);
	KeInitializeEvent(&ScenarioEvent2, SynchronizationEvent, FALSE);
	PKTHREAD t1 = KeCreateThread("DeadlockAB", DeadlockAB, NULL);
	PKTHREAD t2 = KeCreateThread("DeadlockBA", DeadlockBA, NULL);
	Wait(t1);
	Wait(t2);
	ScenarioFinished("lock-order-deadlock");
}

/* ---- spinlock-high-irql ---- */
static void SpinlockHighIrql(void)
{
	KIRQL old;
	KeInitializeSpinLock(&ScenarioIsrLock);
	KiBugFlags |= KI_BUG_ISR_TAKES_LOCK;       /* the clock ISR now takes ScenarioIsrLock */
	/* Said before taking the lock: once it is held, the next tick may hang the
	 * machine at any instruction, the middle of a serial line included. */
	DbgPrint("spinlock-high-irql: taking ScenarioIsrLock at DISPATCH_LEVEL and holding it until the next tick\n");
	KeAcquireSpinLock(&ScenarioIsrLock, &old); /* only raises to DISPATCH_LEVEL */
	ULONG64 t0 = KeTickCount;
	while (KeTickCount < t0 + 2)
		KiBusyWait();
	KeReleaseSpinLock(&ScenarioIsrLock, old);
	ScenarioFinished("spinlock-high-irql");
}

/* ---- irql-lower-raise ---- */
static void IrqlLowerRaise(void)
{
	KIRQL old, old2;
	KiBugFlags |= KI_BUG_NO_IRQL_CHECKS;
	KeRaiseIrql(DISPATCH_LEVEL, &old);
	KeLowerIrql(CLOCK_LEVEL); /* "lowers" to a higher IRQL */
	DbgPrint("irql-lower-raise: KeLowerIrql(%u) at DISPATCH_LEVEL left IRQL %u\n", CLOCK_LEVEL,
	         KeGetCurrentIrql());
	KeRaiseIrql(APC_LEVEL, &old2); /* "raises" to a lower IRQL */
	DbgPrint("irql-lower-raise: KeRaiseIrql(%u) at CLOCK_LEVEL left IRQL %u\n", APC_LEVEL,
	         KeGetCurrentIrql());
	KeLowerIrql(old);
	ScenarioFinished("irql-lower-raise");
}

/* ---- the kernel's own checks, left on (contrast with the scenarios above) ---- */
static void IrqlLowerRaiseChecked(void)
{
	KIRQL old;
	KeRaiseIrql(DISPATCH_LEVEL, &old);
	KeLowerIrql(CLOCK_LEVEL); /* bugchecks IRQL_NOT_LESS_OR_EQUAL */
	ScenarioFinished("irql-lower-raise-checked");
}

/* Reads the first byte above the identity-mapped 1 GiB: #PF, reported by
 * the exception path (vector, error code, rip, cr2) as a bugcheck. */
static void PageFault(void)
{
	volatile UCHAR *unmapped = (volatile UCHAR *)0x40000000;
	DbgPrint("page-fault: reading %p\n", (void *)unmapped);
	(void)*unmapped;
	ScenarioFinished("page-fault");
}

static KMUTEX NotOwnerMutex;

static void MutexGrabber(PVOID Context)
{
	(void)Context;
	KeWaitForSingleObject(&NotOwnerMutex, Executive, KernelMode, FALSE, NULL);
}

static void MutexNotOwner(void)
{
	KeInitializeMutex(&NotOwnerMutex, 0);
	Wait(KeCreateThread("MutexGrabber", MutexGrabber, NULL)); /* exits owning it */
	KeReleaseMutex(&NotOwnerMutex, FALSE);                    /* bugchecks THREAD_NOT_MUTEX_OWNER */
	ScenarioFinished("mutex-not-owner");
}

/* ---- recursive-spinlock ---- */
static void RecursiveSpinlock(void)
{
	KIRQL old, old2;
	KeInitializeSpinLock(&ScenarioRecursiveLock);
	KeAcquireSpinLock(&ScenarioRecursiveLock, &old);
	DbgPrint("recursive-spinlock: acquired ScenarioRecursiveLock, acquiring it again\n");
	KeAcquireSpinLock(&ScenarioRecursiveLock, &old2); /* spins forever */
	KeReleaseSpinLock(&ScenarioRecursiveLock, old2);
	KeReleaseSpinLock(&ScenarioRecursiveLock, old);
	ScenarioFinished("recursive-spinlock");
}

/* ---- mutex-order-nested ---- */
/* Two mutexes taken in both orders, one thread after the other (no
 * deadlock this run), each mutex's first use already nested in the other. */
static void MutexOrderAB(PVOID Context)
{
	(void)Context;
	Wait(&ScenarioMutexA);
	Wait(&ScenarioMutexB);
	KeReleaseMutex(&ScenarioMutexB, FALSE);
	KeReleaseMutex(&ScenarioMutexA, FALSE);
}

static void MutexOrderBA(PVOID Context)
{
	(void)Context;
	Wait(&ScenarioMutexB);
	Wait(&ScenarioMutexA);
	KeReleaseMutex(&ScenarioMutexA, FALSE);
	KeReleaseMutex(&ScenarioMutexB, FALSE);
}

static void MutexOrderNested(void)
{
	KeInitializeMutex(&ScenarioMutexA, 0);
	KeInitializeMutex(&ScenarioMutexB, 0);
	Wait(KeCreateThread("MutexOrderAB", MutexOrderAB, NULL));
	Wait(KeCreateThread("MutexOrderBA", MutexOrderBA, NULL));
	ScenarioFinished("mutex-order-nested");
}

/* ---- spinlock-preempted ---- */
/* A spinlock taken with the at-DISPATCH acquire from PASSIVE_LEVEL: nothing
 * raises the IRQL, so the clock preempts the holder and another thread runs
 * while the lock is held (any thread wanting it would spin on this CPU). */
KSPIN_LOCK ScenarioPreemptedLock;

static void PreemptRival(PVOID Context)
{
	(void)Context;
	PKTHREAD me = KeGetCurrentThread();
	while (me->QuantumEnds < 2)
		KiBusyWait();
}

static void SpinlockPreempted(void)
{
	KeInitializeSpinLock(&ScenarioPreemptedLock);
	PKTHREAD rival = KeCreateThread("PreemptRival", PreemptRival, NULL);
	PKTHREAD me = KeGetCurrentThread();
	ULONG64 start = me->QuantumEnds;
	KeAcquireSpinLockAtDpcLevel(&ScenarioPreemptedLock); /* at PASSIVE_LEVEL: the bug */
	while (me->QuantumEnds < start + 2)
		KiBusyWait();
	KeReleaseSpinLockFromDpcLevel(&ScenarioPreemptedLock);
	Wait(rival);
	ScenarioFinished("spinlock-preempted");
}

/* ---- spinlock-wrong-restore ---- */
/* The release is given another IRQL than the one the acquire returned. */
static void SpinlockWrongRestore(void)
{
	KIRQL old;
	KeInitializeSpinLock(&ScenarioLockA);
	KeAcquireSpinLock(&ScenarioLockA, &old); /* from PASSIVE_LEVEL */
	KeReleaseSpinLock(&ScenarioLockA, APC_LEVEL);
	DbgPrint("spinlock-wrong-restore: released at IRQL %u, acquired from %u\n", KeGetCurrentIrql(), old);
	KeLowerIrql(old);
	ScenarioFinished("spinlock-wrong-restore");
}

/* ---- nested-instances ---- */
/* Objects that embed a lock, initialised by one function: their locks are
 * one class. Two of them are nested one way, then the other. */
struct SCENARIO_OBJECT {
	ULONG64 Id;
	KSPIN_LOCK Lock;
};
struct SCENARIO_OBJECT ScenarioObjects[2];

static NOINLINE void ScenarioObjectInit(struct SCENARIO_OBJECT *Object, ULONG64 Id)
{
	KeInitializeSpinLock(&Object->Lock); /* not a tail call: the init site is here */
	Object->Id = Id;
}

/* Locks both objects, `first` before the other. */
static void LockBoth(struct SCENARIO_OBJECT *First, struct SCENARIO_OBJECT *Second)
{
	KIRQL old;
	KeAcquireSpinLock(&First->Lock, &old);
	KeAcquireSpinLockAtDpcLevel(&Second->Lock);
	KeReleaseSpinLockFromDpcLevel(&Second->Lock);
	KeReleaseSpinLock(&First->Lock, old);
}

static void NestedInstances(void)
{
	ScenarioObjectInit(&ScenarioObjects[0], 0);
	ScenarioObjectInit(&ScenarioObjects[1], 1);
	LockBoth(&ScenarioObjects[0], &ScenarioObjects[1]);
	LockBoth(&ScenarioObjects[1], &ScenarioObjects[0]); /* the other order: the bug */
	ScenarioFinished("nested-instances");
}

/* ---- several CPUs (mp.c; record with --smp 2) ---- */
#define SMP_ROUNDS 200
static volatile ULONG SmpHoldsA, SmpHoldsB;

/* Cross-CPU contention in one order: A then B, many times. */
static void SmpLockAB(void)
{
	for (int i = 0; i < SMP_ROUNDS; i++) {
		KIRQL old;
		KeAcquireSpinLock(&ScenarioLockA, &old);
		KeAcquireSpinLockAtDpcLevel(&ScenarioLockB);
		KeReleaseSpinLockFromDpcLevel(&ScenarioLockB);
		KeReleaseSpinLock(&ScenarioLockA, old);
	}
}

static ULONG SmpStart(const char *Name)
{
	KeInitializeSpinLock(&ScenarioLockA);
	KeInitializeSpinLock(&ScenarioLockB);
	ULONG n = KeStartProcessors(2);
	DbgPrint("%s: %lu CPUs\n", Name, (ULONG64)n);
	return n;
}

/* Both CPUs contend for A and B in the same order: no finding, pass. */
static void SmpClean(void)
{
	if (SmpStart("smp-clean") < 2) {
		DbgPrint("smp-clean: needs two CPUs (record --smp 2)\n");
		KiPowerOff(KI_EXIT_FAIL);
	}
	KeRunOnProcessor(1, SmpLockAB);
	SmpLockAB();
	KeWaitForProcessors();
	DbgPrint("smp-clean: both CPUs took A then B %d times\n", SMP_ROUNDS);
	if (!KeIpiProcessor(1)) {
		DbgPrint("smp-clean: cpu 1 did not take its IPI\n");
		KiPowerOff(KI_EXIT_FAIL);
	}
	DbgPrint("smp-clean: cpu 1 took an IPI\n");
	KiPowerOff(KI_EXIT_PASS);
}

/* On CPU 1: B then A, once CPU 0 holds A. */
static void SmpLockBA(void)
{
	KIRQL old;
	KeAcquireSpinLock(&ScenarioLockB, &old);
	SmpHoldsB = 1;
	while (!SmpHoldsA)
		YieldProcessor();
	DbgPrint("smp-lock-order: %s holds B, wants A\n", KeGetCurrentThread()->Name);
	KeAcquireSpinLockAtDpcLevel(&ScenarioLockA);
	KeReleaseSpinLockFromDpcLevel(&ScenarioLockA);
	KeReleaseSpinLock(&ScenarioLockB, old);
}

/* AB-BA on spinlocks: CPU 0 takes A then B while CPU 1 takes B then A, each
 * holding its first lock until the other holds its own: both spin forever.
 * With one CPU the two orders run one after the other and never meet. */
static void SmpLockOrder(void)
{
	ULONG n = SmpStart("smp-lock-order");
	KIRQL old;

	if (n >= 2)
		KeRunOnProcessor(1, SmpLockBA);
	KeAcquireSpinLock(&ScenarioLockA, &old);
	SmpHoldsA = 1;
	while (n >= 2 && !SmpHoldsB)
		YieldProcessor();
	DbgPrint("smp-lock-order: %s holds A, wants B\n", KeGetCurrentThread()->Name);
	KeAcquireSpinLockAtDpcLevel(&ScenarioLockB);
	KeReleaseSpinLockFromDpcLevel(&ScenarioLockB);
	KeReleaseSpinLock(&ScenarioLockA, old);
	if (n < 2)
		SmpLockBA();
	KeWaitForProcessors();
	ScenarioFinished("smp-lock-order");
}

static const struct {
	const char *Name;
	void (*Run)(void);
} KiScenarios[] = {
    {"clean", KiRunSelfTests},
    {"eoi-before-switch", EoiBeforeSwitch},
    {"missing-eoi", MissingEoi},
    {"global-irql", GlobalIrql},
    {"lock-order", LockOrder},
    {"lock-order-deadlock", LockOrderDeadlock},
    {"spinlock-high-irql", SpinlockHighIrql},
    {"irql-lower-raise", IrqlLowerRaise},
    {"recursive-spinlock", RecursiveSpinlock},
    {"irql-lower-raise-checked", IrqlLowerRaiseChecked},
    {"mutex-not-owner", MutexNotOwner},
    {"page-fault", PageFault},
    {"mutex-order-nested", MutexOrderNested},
    {"spinlock-preempted", SpinlockPreempted},
    {"spinlock-wrong-restore", SpinlockWrongRestore},
    {"nested-instances", NestedInstances},
    {"smp-clean", SmpClean},
    {"smp-lock-order", SmpLockOrder},
};

void KiRunScenario(const char *Name)
{
	for (size_t i = 0; i < sizeof(KiScenarios) / sizeof(KiScenarios[0]); i++) {
		if (strcmp(KiScenarios[i].Name, Name) == 0) {
			KiScenarioStart(Name);
			KiScenarios[i].Run();
			return;
		}
	}
	DbgPrint("error: unknown scenario '%s'; known:", Name);
	for (size_t i = 0; i < sizeof(KiScenarios) / sizeof(KiScenarios[0]); i++)
		DbgPrint(" %s", KiScenarios[i].Name);
	DbgPrint("\n");
	KiPowerOff(KI_EXIT_FAIL);
}
