/*
 * mp.c: application processors. KeStartProcessors wakes APIC IDs 1..Count-1
 * with INIT-SIPI-SIPI (x2APIC ICR), one at a time, at the trampoline of
 * ap.S copied below 1 MiB. Each AP gets its own KPCR (GS base, so
 * gs:[0x188] is its current thread), GDT and TSS, stack and a KTHREAD of its
 * own ("CpuN"), loads the BSP's IDT, enables its local APIC (timer masked:
 * the clock ticks on the BSP only) and waits at PASSIVE_LEVEL, interrupts
 * on, for work the BSP hands it (KeRunOnProcessor) and for IPIs
 * (KeIpiProcessor, IPI_VECTOR). Without the
 * APs (-smp 1) KeStartProcessors returns 1 after a bounded wait and the
 * kernel runs on one CPU, as before.
 */
#include "ke.h"

#define X2APIC_ICR   0x830
#define ICR_INIT     0x00004500ull
#define ICR_STARTUP  0x00004600ull
#define AP_WAIT_SPIN 500000ull /* YieldProcessor rounds for an AP to report (bounded) */

extern char KiApTrampoline[], KiApTrampolineEnd[];

struct KiProcessor {
	KPCR Pcr __attribute__((aligned(64)));
	KTSS64 Tss __attribute__((aligned(16)));
	ULONG64 Gdt[11] __attribute__((aligned(16)));
	KTHREAD Thread;
	UCHAR Stack[16384] __attribute__((aligned(16)));
	void (*volatile Work)(void);
	volatile ULONG Busy;
	volatile ULONG Ipis; /* IPIs this processor took */
};

static struct KiProcessor KiProcessors[KI_MAX_CPUS];
ULONG64 KiApStackTop; /* read by ap.S */
volatile ULONG KiProcessorsStarted = 1;
static volatile ULONG KiApNumber;

ULONG KeGetCurrentProcessorNumber(void)
{
	return KeGetPcr()->Prcb.Number;
}

/* The AP's GDT: NT's ring 0 selectors and its own TSS (a busy TSS cannot be
 * shared). */
static void KiApLoadGdt(struct KiProcessor *p)
{
	ULONG64 tss = (ULONG64)&p->Tss, limit = sizeof(p->Tss) - 1;
	struct {
		uint16_t Limit;
		ULONG64 Base;
	} __attribute__((packed)) gdtr = {sizeof(p->Gdt) - 1, (ULONG64)p->Gdt};

	p->Gdt[KGDT64_R0_CODE / 8] = 0x00AF9B000000FFFFull;
	p->Gdt[KGDT64_R0_DATA / 8] = 0x00CF93000000FFFFull;
	p->Gdt[KGDT64_SYS_TSS / 8] = (limit & 0xFFFF) | ((tss & 0xFFFFFF) << 16) | (0x89ull << 40) |
	                             (((limit >> 16) & 0xF) << 48) | (((tss >> 24) & 0xFF) << 56);
	p->Gdt[KGDT64_SYS_TSS / 8 + 1] = tss >> 32;
	p->Tss.Rsp0 = (ULONG64)(p->Stack + sizeof(p->Stack));
	p->Tss.IoMapBase = sizeof(p->Tss);
	__asm__ volatile("lgdt %0\n\t"
	                 "pushq %1\n\t"
	                 "leaq 1f(%%rip), %%rax\n\t"
	                 "pushq %%rax\n\t"
	                 "lretq\n"
	                 "1:\n\t"
	                 "movw %w2, %%ax\n\t"
	                 "movw %%ax, %%ds\n\t"
	                 "movw %%ax, %%es\n\t"
	                 "movw %%ax, %%ss\n\t"
	                 "ltr %w3"
	                 :
	                 : "m"(gdtr), "i"(KGDT64_R0_CODE), "r"(KGDT64_R0_DATA), "r"(KGDT64_SYS_TSS)
	                 : "rax", "memory");
}

void KiApStartup(void);

/* On the AP, from ap.S: becomes processor KiApNumber, then serves work. */
void KiApStartup(void)
{
	ULONG n = KiApNumber;
	struct KiProcessor *p = &KiProcessors[n];
	struct {
		uint16_t Limit;
		ULONG64 Base;
	} __attribute__((packed)) idtr = {256 * 16 - 1, (ULONG64)KiPcr.IdtBase};

	KiApLoadGdt(p);
	p->Pcr.GdtBase = p->Gdt;
	p->Pcr.TssBase = &p->Tss;
	p->Pcr.Self = &p->Pcr;
	p->Pcr.CurrentPrcb = &p->Pcr.Prcb;
	p->Pcr.IdtBase = KiPcr.IdtBase;
	p->Pcr.Prcb.Number = (UCHAR)n;
	p->Pcr.Prcb.CurrentThread = &p->Thread;
	p->Pcr.Prcb.IdleThread = &p->Thread;
	InitializeListHead(&p->Pcr.Prcb.DpcListHead);
	p->Thread.Name[0] = 'C', p->Thread.Name[1] = 'p', p->Thread.Name[2] = 'u';
	p->Thread.Name[3] = (char)('0' + n), p->Thread.Name[4] = 0;
	__writemsr(0xC0000101, (ULONG64)&p->Pcr);
	__writemsr(0xC0000102, 0);
	__asm__ volatile("lidt %0" : : "m"(idtr));
	HalInitializeApic();
	KiWriteCr8(PASSIVE_LEVEL);
	_enable(); /* its timer is masked: only IPIs come */
	__atomic_add_fetch(&KiProcessorsStarted, 1, __ATOMIC_RELEASE);
	for (;;) {
		void (*w)(void) = p->Work;

		if (w) {
			w();
			p->Work = NULL;
			__atomic_store_n(&p->Busy, 0, __ATOMIC_RELEASE);
		}
		YieldProcessor();
	}
}

static void KiSendIpi(ULONG ApicId, ULONG64 Command)
{
	__writemsr(X2APIC_ICR, ((ULONG64)ApicId << 32) | Command);
}

ULONG KeStartProcessors(ULONG Count)
{
	if (Count > KI_MAX_CPUS)
		Count = KI_MAX_CPUS;
	KiProcessors[0].Pcr.Prcb.Number = 0;
	memcpy((void *)KI_AP_TRAMPOLINE, KiApTrampoline, (size_t)(KiApTrampolineEnd - KiApTrampoline));
	for (ULONG n = 1; n < Count; n++) {
		ULONG before = KiProcessorsStarted;

		KiApNumber = n;
		KiApStackTop = (ULONG64)(KiProcessors[n].Stack + sizeof(KiProcessors[n].Stack));
		KiSendIpi(n, ICR_INIT);
		KiSendIpi(n, ICR_STARTUP | (KI_AP_TRAMPOLINE >> 12));
		KiSendIpi(n, ICR_STARTUP | (KI_AP_TRAMPOLINE >> 12));
		for (ULONG64 i = 0; i < AP_WAIT_SPIN && KiProcessorsStarted == before; i++)
			YieldProcessor();
		if (KiProcessorsStarted == before)
			break; /* no such CPU */
		DbgPrint("cpu %lu started (APIC ID %lu)\n", (ULONG64)n, (ULONG64)n);
	}
	return KiProcessorsStarted;
}

/* Hands Routine to processor Number (an AP started by KeStartProcessors); it
 * runs there at PASSIVE_LEVEL with interrupts off, on the AP's own thread. */
void KeRunOnProcessor(ULONG Number, void (*Routine)(void))
{
	struct KiProcessor *p = &KiProcessors[Number];

	__atomic_store_n(&p->Busy, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&p->Work, Routine, __ATOMIC_RELEASE);
}

/* The IPI's handler, at IPI_LEVEL (trap.c dispatches it). */
void KiIpiInterrupt(void)
{
	struct KiProcessor *p = &KiProcessors[KeGetCurrentProcessorNumber()];

	__atomic_add_fetch(&p->Ipis, 1, __ATOMIC_RELEASE);
	KiApicEndOfInterrupt();
}

/* Interrupts processor Number with IPI_VECTOR (fixed delivery) and waits,
 * bounded, until it took it. */
BOOLEAN KeIpiProcessor(ULONG Number)
{
	struct KiProcessor *p = &KiProcessors[Number];
	ULONG before = p->Ipis;

	KiSendIpi(Number, IPI_VECTOR);
	for (ULONG64 i = 0; i < AP_WAIT_SPIN && p->Ipis == before; i++)
		YieldProcessor();
	return p->Ipis != before;
}

/* Until every AP finished the work it was handed. */
void KeWaitForProcessors(void)
{
	for (ULONG n = 1; n < KiProcessorsStarted; n++)
		while (__atomic_load_n(&KiProcessors[n].Busy, __ATOMIC_ACQUIRE))
			YieldProcessor();
}
