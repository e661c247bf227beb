/*
 * ke.h: the one internal header of the krewind test kernel.
 *
 * NT names for NT concepts (KPCR, KTHREAD, KIRQL, KSPIN_LOCK, KDPC, dispatcher
 * objects) so a Windows-internals reader is at home. The layout facts the
 * tracer relies on (KPCR.Prcb.CurrentThread at gs:[0x188], KTHREAD.Name at
 * 0x40, KLOCK_QUEUE_HANDLE.LockQueue.Lock at 8) are static_assert'ed below;
 * the offsets the assembly uses are #defines shared with the .S files.
 */
#ifndef KREWIND_KE_H
#define KREWIND_KE_H

/* Offsets used by assembly (trap.S); checked against the C layout below. */
#define KPCR_SELF            0x18
#define KPCR_TSS             0x08
#define KPCR_CURRENT_THREAD  0x188
#define KTHREAD_KERNEL_STACK 0x18
#define KTHREAD_STACK_BASE   0x20
#define KTHREAD_SWAP_IRQL    0x36
#define KTSS_RSP0            0x04

#define KGDT64_R0_CODE   0x10
#define KGDT64_R0_DATA   0x18
#define KGDT64_R3_CMCODE 0x20
#define KGDT64_R3_DATA   0x28
#define KGDT64_R3_CODE   0x30
#define KGDT64_SYS_TSS   0x40
#define KGDT64_R3_CMTEB  0x50

/* Interrupt vectors. The APIC's priority class is vector >> 4, and CR8 masks
 * every class <= its value, so a vector's class is its IRQL. */
#define CLOCK_VECTOR    0xD1
#define SPURIOUS_VECTOR 0xFF
#define IPI_VECTOR      0xE1 /* IPI_LEVEL (14): a processor calls another (mp.c) */

/* Where an application processor starts (mp.c, ap.S): a SIPI vector's page. */
#define KI_AP_TRAMPOLINE 0x8000
#define KI_MAX_CPUS      4

#ifndef __ASSEMBLER__

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* ABI functions (docs/architecture.md): never inlined, cloned or merged, so a
 * probe on the symbol sees every call with the documented arguments. */
#define NOINLINE __attribute__((noipa, used))
#define NORETURN __attribute__((noreturn))

typedef uint8_t UCHAR, BOOLEAN, KIRQL, *PKIRQL;
typedef int32_t LONG, NTSTATUS, KPRIORITY;
typedef uint32_t ULONG;
typedef int64_t LONGLONG, LONG_PTR;
typedef uint64_t ULONG64, ULONG_PTR, ULONGLONG;
typedef void VOID, *PVOID;
typedef ULONG_PTR KSPIN_LOCK, *PKSPIN_LOCK;
typedef UCHAR KPROCESSOR_MODE;
typedef ULONG KWAIT_REASON;
typedef union _LARGE_INTEGER {
	LONGLONG QuadPart;
} LARGE_INTEGER, *PLARGE_INTEGER;

#define TRUE  1
#define FALSE 0

#define STATUS_SUCCESS ((NTSTATUS)0x00000000)
#define STATUS_TIMEOUT ((NTSTATUS)0x00000102)

#define KernelMode 0
#define Executive  0

/* IRQLs, as on NT x64. */
#define PASSIVE_LEVEL  0
#define APC_LEVEL      1
#define DISPATCH_LEVEL 2
#define CLOCK_LEVEL    13
#define HIGH_LEVEL     15

/* Bugcheck codes (NT's numbers where NT has one). */
#define IRQL_NOT_GREATER_OR_EQUAL    0x00000009
#define IRQL_NOT_LESS_OR_EQUAL       0x0000000A
#define SPIN_LOCK_NOT_OWNED          0x00000010
#define THREAD_NOT_MUTEX_OWNER       0x00000011
#define KMODE_EXCEPTION_NOT_HANDLED  0x0000001E
#define UNEXPECTED_KERNEL_MODE_TRAP  0x0000007F
#define NO_MORE_SYSTEM_PTES          0x0000003F
#define SEMAPHORE_LIMIT_EXCEEDED     0x000000E0 /* krewind's own: NT raises an exception */
#define INVALID_WAIT_OBJECT          0x000000E1 /* krewind's own */
#define KREWIND_THREAD_STACK_CORRUPT 0x000000E2 /* krewind's own */

/* isa-debug-exit values (docs/architecture.md). */
#define KI_EXIT_PASS     0x10
#define KI_EXIT_FAIL     0x11
#define KI_EXIT_BUGCHECK 0x12
#define KI_EXIT_UNCAUGHT 0x13

/* ---- lists ---- */
typedef struct _LIST_ENTRY {
	struct _LIST_ENTRY *Flink, *Blink;
} LIST_ENTRY, *PLIST_ENTRY;

#define CONTAINING_RECORD(a, T, f) ((T *)((char *)(a)-offsetof(T, f)))

static inline void InitializeListHead(PLIST_ENTRY h)
{
	h->Flink = h->Blink = h;
}
static inline BOOLEAN IsListEmpty(const LIST_ENTRY *h)
{
	return h->Flink == h;
}
static inline void InsertTailList(PLIST_ENTRY h, PLIST_ENTRY e)
{
	e->Flink = h;
	e->Blink = h->Blink;
	h->Blink->Flink = e;
	h->Blink = e;
}
static inline void RemoveEntryList(PLIST_ENTRY e)
{
	e->Blink->Flink = e->Flink;
	e->Flink->Blink = e->Blink;
	e->Flink = e->Blink = e;
}
static inline PLIST_ENTRY RemoveHeadList(PLIST_ENTRY h)
{
	PLIST_ENTRY e = h->Flink;
	RemoveEntryList(e);
	return e;
}

/* ---- dispatcher objects ---- */
enum {
	NotificationEvent = 0,
	SynchronizationEvent = 1,
	MutantObject = 2,
	SemaphoreObject = 5,
	ThreadObject = 6,
	TimerNotificationObject = 8,
};
typedef ULONG EVENT_TYPE;

typedef struct _DISPATCHER_HEADER {
	UCHAR Type;
	UCHAR Reserved[3];
	volatile LONG SignalState; /* > 0 signalled; a mutex counts down from 1 */
	LIST_ENTRY WaitListHead;   /* KWAIT_BLOCKs of waiting threads, FIFO */
} DISPATCHER_HEADER;

struct _KTHREAD;

typedef struct _KWAIT_BLOCK {
	LIST_ENTRY WaitListEntry;
	struct _KTHREAD *Thread;
	PVOID Object;
} KWAIT_BLOCK, *PKWAIT_BLOCK;

typedef struct _KEVENT {
	DISPATCHER_HEADER Header;
} KEVENT, *PKEVENT;

typedef struct _KMUTANT {
	DISPATCHER_HEADER Header; /* SignalState 1 = free, 0 = owned once, -n = owned n+1 times */
	struct _KTHREAD *OwnerThread;
} KMUTANT, KMUTEX, *PKMUTEX;

typedef struct _KSEMAPHORE {
	DISPATCHER_HEADER Header;
	LONG Limit;
} KSEMAPHORE, *PKSEMAPHORE;

struct _KDPC;
typedef void KDEFERRED_ROUTINE(struct _KDPC *Dpc, PVOID Context, PVOID Arg1, PVOID Arg2);
typedef KDEFERRED_ROUTINE *PKDEFERRED_ROUTINE;

typedef struct _KDPC {
	UCHAR Type;
	volatile UCHAR Inserted;
	LIST_ENTRY DpcListEntry;
	PKDEFERRED_ROUTINE DeferredRoutine;
	PVOID DeferredContext;
	PVOID SystemArgument1;
	PVOID SystemArgument2;
} KDPC, *PKDPC;

typedef struct _KTIMER {
	DISPATCHER_HEADER Header; /* notification timer: signalled when due */
	ULONG64 DueTick;
	LIST_ENTRY TimerListEntry;
	BOOLEAN Inserted;
	PKDPC Dpc;
	struct _KTHREAD *WaitThread; /* a thread's wait timeout: expiry ends that wait */
} KTIMER, *PKTIMER;

/* ---- threads ---- */
typedef void KSTART_ROUTINE(PVOID Context);
typedef KSTART_ROUTINE *PKSTART_ROUTINE;

enum { Initialized, Ready, Running, Waiting, Terminated };

typedef struct _KTHREAD {
	DISPATCHER_HEADER Header;  /* 0x00: signalled when the thread terminates */
	PVOID KernelStack;         /* 0x18: rsp saved by KiSwapContext */
	PVOID StackBase;           /* 0x20: top of the kernel stack */
	PVOID StackLimit;          /* 0x28: bottom */
	ULONG ThreadId;            /* 0x30 */
	UCHAR State;               /* 0x34 */
	KIRQL WaitIrql;            /* 0x35: IRQL at wait entry, restored at wait exit */
	KIRQL SwapIrql;            /* 0x36: CR8 saved/restored by KiSwapContext */
	UCHAR Quantum;             /* 0x37: clock ticks left */
	NTSTATUS WaitStatus;       /* 0x38 */
	ULONG Pad;                 /* 0x3c */
	char Name[16];             /* 0x40: NUL-terminated; read by the tracer */
	LIST_ENTRY ReadyListEntry; /* in KiReadyListHead while Ready */
	KWAIT_BLOCK WaitBlock;
	KTIMER Timer;
	PKSTART_ROUTINE StartRoutine;
	PVOID StartContext;
	ULONG64 ContextSwitches; /* times switched in */
	ULONG64 QuantumEnds;     /* times preempted at quantum end */
} KTHREAD, *PKTHREAD;

/* ---- processor ---- */
typedef struct _KTSS64 {
	ULONG Reserved0;
	ULONG64 Rsp0, Rsp1, Rsp2;
	ULONG64 Ist[8]; /* Ist[0] reserved; IST n is Ist[n] */
	ULONG64 Reserved2;
	uint16_t Reserved3;
	uint16_t IoMapBase;
} __attribute__((packed)) KTSS64;

typedef struct _KPRCB {
	ULONG MxCsr;  /* 0x180 */
	UCHAR Number; /* 0x184 */
	UCHAR Pad0[3];
	PKTHREAD CurrentThread; /* 0x188 */
	PKTHREAD NextThread;    /* 0x190 (unused: switches are decided at dispatch time) */
	PKTHREAD IdleThread;    /* 0x198 */
	LIST_ENTRY DpcListHead; /* FIFO of queued KDPCs */
	ULONG DpcQueueDepth;
	volatile UCHAR DispatchInterruptRequested; /* the DISPATCH_LEVEL software interrupt */
	volatile UCHAR QuantumEnd;
	UCHAR Pad1[2];
	ULONG64 InterruptCount;
	ULONG64 DpcCount;
	ULONG64 ContextSwitches;
} KPRCB, *PKPRCB;

typedef struct _KPCR {
	PVOID GdtBase;      /* 0x00 */
	KTSS64 *TssBase;    /* 0x08 */
	ULONG64 UserRsp;    /* 0x10 */
	struct _KPCR *Self; /* 0x18 */
	PKPRCB CurrentPrcb; /* 0x20 */
	PVOID IdtBase;      /* 0x28 */
	UCHAR Pad[0x180 - 0x30];
	KPRCB Prcb; /* 0x180 */
} KPCR, *PKPCR;

_Static_assert(offsetof(KPCR, Self) == KPCR_SELF, "KPCR.Self");
_Static_assert(offsetof(KPCR, TssBase) == KPCR_TSS, "KPCR.TssBase");
_Static_assert(offsetof(KPCR, Prcb) == 0x180, "KPCR.Prcb");
_Static_assert(offsetof(KPCR, Prcb.CurrentThread) == KPCR_CURRENT_THREAD,
               "gs:[0x188] is the current thread (tracer contract)");
_Static_assert(offsetof(KTHREAD, Name) == 0x40, "KTHREAD.Name at 0x40 (tracer contract)");
_Static_assert(offsetof(KTHREAD, KernelStack) == KTHREAD_KERNEL_STACK, "KTHREAD.KernelStack");
_Static_assert(offsetof(KTHREAD, StackBase) == KTHREAD_STACK_BASE, "KTHREAD.StackBase");
_Static_assert(offsetof(KTHREAD, SwapIrql) == KTHREAD_SWAP_IRQL, "KTHREAD.SwapIrql");
_Static_assert(offsetof(KTSS64, Rsp0) == KTSS_RSP0, "KTSS64.Rsp0");
_Static_assert(sizeof(KTSS64) == 0x68, "KTSS64 size");

/* ---- spin locks ---- */
typedef struct _KSPIN_LOCK_QUEUE {
	struct _KSPIN_LOCK_QUEUE *volatile Next;
	PKSPIN_LOCK volatile Lock; /* bit 0 set while waiting for the lock */
} KSPIN_LOCK_QUEUE, *PKSPIN_LOCK_QUEUE;

typedef struct _KLOCK_QUEUE_HANDLE {
	KSPIN_LOCK_QUEUE LockQueue;
	KIRQL OldIrql;
} KLOCK_QUEUE_HANDLE, *PKLOCK_QUEUE_HANDLE;

_Static_assert(offsetof(KLOCK_QUEUE_HANDLE, LockQueue.Lock) == 8,
               "lock pointer at [handle+8] (tracer contract)");

/* ---- trap frame: built by trap.S, lowest address first ---- */
typedef struct _KTRAP_FRAME {
	ULONG64 R15, R14, R13, R12, R11, R10, R9, R8;
	ULONG64 Rbp, Rdi, Rsi, Rdx, Rcx, Rbx, Rax;
	ULONG64 Vector, ErrorCode;
	ULONG64 Rip, SegCs, EFlags, Rsp, SegSs; /* pushed by the CPU */
} KTRAP_FRAME, *PKTRAP_FRAME;

/* ---- processor primitives ---- */
static inline KIRQL KiReadCr8(void)
{
	ULONG64 v;
	__asm__ volatile("mov %%cr8, %0" : "=r"(v));
	return (KIRQL)v;
}
/* Every IRQL change is a `mov cr8, reg`: the tracer watches this instruction. */
static inline void KiWriteCr8(KIRQL irql)
{
	__asm__ volatile("mov %0, %%cr8" : : "r"((ULONG64)irql) : "memory");
}
static inline ULONG64 KiDisableInterrupts(void)
{
	ULONG64 flags;
	__asm__ volatile("pushfq; pop %0; cli" : "=r"(flags) : : "memory");
	return flags;
}
static inline void KiRestoreInterrupts(ULONG64 flags)
{
	if (flags & 0x200)
		__asm__ volatile("sti" : : : "memory");
}
static inline void _enable(void)
{
	__asm__ volatile("sti" : : : "memory");
}
static inline void _disable(void)
{
	__asm__ volatile("cli" : : : "memory");
}
static inline void YieldProcessor(void)
{
	__asm__ volatile("pause" : : : "memory");
}
/* For busy-waits on a tick count: no `pause`, which makes TCG leave its
 * execution loop on every iteration (very slow under record/replay). */
static inline void KiBusyWait(void)
{
	__asm__ volatile("" : : : "memory");
}
static inline ULONG64 __readmsr(ULONG msr)
{
	ULONG lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((ULONG64)hi << 32) | lo;
}
static inline void __writemsr(ULONG msr, ULONG64 v)
{
	__asm__ volatile("wrmsr" : : "c"(msr), "a"((ULONG)v), "d"((ULONG)(v >> 32)) : "memory");
}
static inline void __outbyte(uint16_t port, UCHAR v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline UCHAR __inbyte(uint16_t port)
{
	UCHAR v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline PKPCR KeGetPcr(void)
{
	PKPCR p;
	__asm__ volatile("mov %%gs:0x18, %0" : "=r"(p));
	return p;
}
static inline PKPRCB KeGetCurrentPrcb(void)
{
	return &KeGetPcr()->Prcb;
}
static inline PKTHREAD KeGetCurrentThread(void)
{
	PKTHREAD t;
	__asm__ volatile("mov %%gs:0x188, %0" : "=r"(t));
	return t;
}

/* ---- rtl.c ---- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int strcmp(const char *a, const char *b);
void RtlCopyName(char *dst, const char *src, size_t size);

/* ---- serial.c: COM1 console ---- */
void KdInitSerial(void);
void DbgPrint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void KdVPrint(const char *fmt, va_list ap);
NORETURN void KiPowerOff(UCHAR code);

/* ---- init.c: boot, GDT/TSS/KPCR ---- */
extern KPCR KiPcr;
void KiInitializeProcessor(void);

/* ---- trap.c / trap.S ---- */
void KiInitializeIdt(void);
void KiSetIdtIst(UCHAR Vector, UCHAR Ist);
void KiTrapDispatch(PKTRAP_FRAME Frame);
extern char KiTrapStubs[];
void KiClockInterruptEntry(void);
void KiSpuriousInterruptEntry(void);
void KiIpiInterruptEntry(void);
void KiSwapContext(PKTHREAD Old, PKTHREAD New);
void KiThreadStartupEntry(void);

/* ---- irql.c ---- */
void KeRaiseIrql(KIRQL NewIrql, PKIRQL OldIrql);
void KeLowerIrql(KIRQL NewIrql);
KIRQL KeGetCurrentIrql(void);
KIRQL KiRaiseIrql(KIRQL NewIrql);
void KiLowerIrql(KIRQL NewIrql);
void KiRequestDispatchInterrupt(void);

/* ---- apic.c ---- */
void HalInitializeApic(void);
void HalStartClock(ULONG InitialCount);
void HalStopClock(void);
void KiApicEndOfInterrupt(void);
BOOLEAN HalIsClockInterruptPending(void);
#define KI_CLOCK_INITIAL_COUNT 1000000 /* 1 ms with QEMU's 1 GHz APIC bus, divide 1 */
#define KeMaximumIncrement     10000   /* one tick in 100 ns units */

/* ---- clock.c: clock interrupt, kernel timers ---- */
extern volatile ULONG64 KeTickCount;
void KiClockInterrupt(PKTRAP_FRAME Frame);
void KiInitializeClock(void);
BOOLEAN KiIsTimerArmed(void);
void KeInitializeTimer(PKTIMER Timer);
BOOLEAN KeSetTimer(PKTIMER Timer, LARGE_INTEGER DueTime, PKDPC Dpc);
BOOLEAN KeCancelTimer(PKTIMER Timer);
ULONG64 KiTimeoutToTicks(LONGLONG Timeout);
void KiInsertTimer(PKTIMER Timer, ULONG64 Ticks);
void KiRemoveTimer(PKTIMER Timer);

/* ---- dpc.c ---- */
void KeInitializeDpc(PKDPC Dpc, PKDEFERRED_ROUTINE Routine, PVOID Context);
BOOLEAN KeInsertQueueDpc(PKDPC Dpc, PVOID Arg1, PVOID Arg2);
void KiRetireDpcList(void);

/* ---- sched.c ---- */
extern KSPIN_LOCK KiDispatcherLock;
void KiInitializeScheduler(void);
NORETURN void KiIdleLoop(void);
PKTHREAD KeCreateThread(const char *Name, PKSTART_ROUTINE Routine, PVOID Context);
KIRQL KiAcquireDispatcherLock(void);
void KiReleaseDispatcherLock(KIRQL OldIrql);
BOOLEAN KiTryToAcquireDispatcherLock(void);
void KiReadyThread(PKTHREAD Thread);
NTSTATUS KiSwapThread(void);
void KiDispatchInterrupt(void);
void KiQuantumEndSwitchInIsr(void);
void KiThreadStartup(void);
#define KI_QUANTUM 3

/* ---- wait.c: dispatcher objects and waits ---- */
void KeInitializeEvent(PKEVENT Event, EVENT_TYPE Type, BOOLEAN State);
LONG KeSetEvent(PKEVENT Event, KPRIORITY Increment, BOOLEAN Wait);
LONG KeResetEvent(PKEVENT Event);
void KeInitializeMutex(PKMUTEX Mutex, ULONG Level);
LONG KeReleaseMutex(PKMUTEX Mutex, BOOLEAN Wait);
void KiSatisfyMutexWait(PKMUTEX Mutex, PKTHREAD Thread);
void KeInitializeSemaphore(PKSEMAPHORE Sem, LONG Count, LONG Limit);
LONG KeReleaseSemaphore(PKSEMAPHORE Sem, KPRIORITY Increment, LONG Adjustment, BOOLEAN Wait);
NTSTATUS KeWaitForSingleObject(PVOID Object, KWAIT_REASON Reason, KPROCESSOR_MODE Mode, BOOLEAN Alertable,
                               PLARGE_INTEGER Timeout);
NTSTATUS KeDelayExecutionThread(KPROCESSOR_MODE Mode, BOOLEAN Alertable, PLARGE_INTEGER Interval);
void KiInitializeDispatcherHeader(DISPATCHER_HEADER *Header, UCHAR Type, LONG State);
void KiWaitTest(DISPATCHER_HEADER *Header);
void KiUnwaitThread(PKTHREAD Thread, NTSTATUS Status);

/* ---- spinlock.c ---- */
void KeInitializeSpinLock(PKSPIN_LOCK Lock);
KIRQL KeAcquireSpinLockRaiseToDpc(PKSPIN_LOCK Lock);
void KeReleaseSpinLock(PKSPIN_LOCK Lock, KIRQL NewIrql);
void KeAcquireSpinLockAtDpcLevel(PKSPIN_LOCK Lock);
void KeReleaseSpinLockFromDpcLevel(PKSPIN_LOCK Lock);
void KeAcquireInStackQueuedSpinLock(PKSPIN_LOCK Lock, PKLOCK_QUEUE_HANDLE Handle);
void KeReleaseInStackQueuedSpinLock(PKLOCK_QUEUE_HANDLE Handle);
#define KeAcquireSpinLock(Lock, OldIrql) (*(OldIrql) = KeAcquireSpinLockRaiseToDpc(Lock))

/* ---- bugcheck.c ---- */
NORETURN void KeBugCheckEx(ULONG Code, ULONG_PTR P1, ULONG_PTR P2, ULONG_PTR P3, ULONG_PTR P4);

/* ---- selftest.c / scenario.c ---- */
void KiRunSelfTests(void);
void KiSelfTestReport(ULONG Passed, ULONG Failed);
void KiRunScenario(const char *Name);
void KiScenarioStart(const char *Name);

/* Scenario switches: each changes a real code path (docs/scenarios.md). */
enum {
	KI_BUG_EOI_BEFORE_SWITCH = 1u << 0, /* clock ISR: EOI, then switch inside the ISR */
	KI_BUG_MISSING_EOI = 1u << 1,       /* clock ISR: early return without EOI */
	KI_BUG_GLOBAL_IRQL = 1u << 2,       /* wait IRQL kept in one global */
	KI_BUG_NO_IRQL_CHECKS = 1u << 3,    /* KeRaiseIrql/KeLowerIrql skip their checks */
	KI_BUG_ISR_TAKES_LOCK = 1u << 4,    /* clock ISR takes ScenarioIsrLock */
};
extern volatile ULONG KiBugFlags;
extern KSPIN_LOCK ScenarioIsrLock;

/* ---- several processors (mp.c) ---- */
extern KPCR KiPcr;
extern volatile ULONG KiProcessorsStarted; /* the BSP and the APs running, 1 before KeStartProcessors */
ULONG KeStartProcessors(ULONG Count);
void KeRunOnProcessor(ULONG Number, void (*Routine)(void));
void KeWaitForProcessors(void);
BOOLEAN KeIpiProcessor(ULONG Number);
void KiIpiInterrupt(void);
ULONG KeGetCurrentProcessorNumber(void);

#endif /* __ASSEMBLER__ */
#endif
