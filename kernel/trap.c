/*
 * trap.c: the IDT and the C side of every trap and interrupt.
 *
 * All 32 exception vectors have stubs; an exception in this kernel is always
 * fatal and becomes UNEXPECTED_KERNEL_MODE_TRAP (0x7F) with the vector and the
 * error code. The double fault runs on its own IST stack (IST1) so a blown
 * kernel stack still reaches the bugcheck. Device interrupts raise CR8 to the
 * vector's priority class (vector >> 4) before the ISR runs, exactly what the
 * APIC's TPR semantics would give, and lower it on the way out, which is where
 * a pending DISPATCH_LEVEL software interrupt (DPCs, quantum end) runs.
 */
#include "ke.h"

struct KIDTENTRY64 {
	uint16_t OffsetLow;
	uint16_t Selector;
	UCHAR IstIndex;
	UCHAR TypeAttributes;
	uint16_t OffsetMiddle;
	ULONG OffsetHigh;
	ULONG Reserved;
} __attribute__((packed));

static struct KIDTENTRY64 KiIdt[256] __attribute__((aligned(16)));

static const char *const KiExceptionNames[32] = {
    "#DE divide error",
    "#DB debug",
    "NMI",
    "#BP breakpoint",
    "#OF overflow",
    "#BR bound range",
    "#UD invalid opcode",
    "#NM device not available",
    "#DF double fault",
    "coprocessor overrun",
    "#TS invalid TSS",
    "#NP segment not present",
    "#SS stack fault",
    "#GP general protection",
    "#PF page fault",
    "reserved 15",
    "#MF x87 error",
    "#AC alignment check",
    "#MC machine check",
    "#XM SIMD error",
    "#VE virtualization",
    "#CP control protection",
    "reserved 22",
    "reserved 23",
    "reserved 24",
    "reserved 25",
    "reserved 26",
    "reserved 27",
    "#HV hypervisor injection",
    "#VC VMM communication",
    "#SX security",
    "reserved 31",
};

static void KiSetGate(UCHAR Vector, void (*Handler)(void), UCHAR Ist)
{
	ULONG64 a = (ULONG64)Handler;
	struct KIDTENTRY64 *e = &KiIdt[Vector];
	e->OffsetLow = a & 0xFFFF;
	e->Selector = KGDT64_R0_CODE;
	e->IstIndex = Ist;
	e->TypeAttributes = 0x8E; /* present, DPL 0, interrupt gate: IF cleared on entry */
	e->OffsetMiddle = (a >> 16) & 0xFFFF;
	e->OffsetHigh = a >> 32;
	e->Reserved = 0;
}

void KiInitializeIdt(void)
{
	for (int v = 0; v < 32; v++)
		KiSetGate(v, (void (*)(void))(KiTrapStubs + 16 * v), v == 8 ? 1 : 0);
	KiSetGate(CLOCK_VECTOR, KiClockInterruptEntry, 0);
	KiSetGate(SPURIOUS_VECTOR, KiSpuriousInterruptEntry, 0);
	KiSetGate(IPI_VECTOR, KiIpiInterruptEntry, 0);
	struct {
		uint16_t Limit;
		ULONG64 Base;
	} __attribute__((packed)) idtr = {sizeof(KiIdt) - 1, (ULONG64)KiIdt};
	__asm__ volatile("lidt %0" : : "m"(idtr));
	KiPcr.IdtBase = KiIdt;
}

/* Moves a vector's handler onto an IST stack (0 = the current stack). */
void KiSetIdtIst(UCHAR Vector, UCHAR Ist)
{
	KiIdt[Vector].IstIndex = Ist;
}

static NORETURN void KiExceptionDispatch(PKTRAP_FRAME f)
{
	ULONG64 cr2;
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	DbgPrint("*** exception %lu (%s) error code 0x%lx at rip 0x%lx rsp 0x%lx cr2 0x%lx\n", f->Vector,
	         KiExceptionNames[f->Vector], f->ErrorCode, f->Rip, f->Rsp, cr2);
	KeBugCheckEx(UNEXPECTED_KERNEL_MODE_TRAP, f->Vector, f->ErrorCode, f->Rip, cr2);
}

static void KiInterruptDispatch(PKTRAP_FRAME f)
{
	if (f->Vector == SPURIOUS_VECTOR)
		return; /* the APIC wants no EOI for a spurious interrupt */
	KIRQL old = KiReadCr8();
	KiWriteCr8((KIRQL)(f->Vector >> 4));
	KeGetCurrentPrcb()->InterruptCount++;
	/* As on NT, the ISR runs with interrupts enabled: CR8 alone masks
	 * everything at or below its level. */
	_enable();
	if (f->Vector == IPI_VECTOR)
		KiIpiInterrupt(); /* mp.c; sends its own EOI too */
	else
		KiClockInterrupt(f); /* the ISR sends its own EOI */
	_disable();
	KiLowerIrql(old);
}

void KiTrapDispatch(PKTRAP_FRAME Frame)
{
	if (Frame->Vector < 32)
		KiExceptionDispatch(Frame);
	KiInterruptDispatch(Frame);
}
