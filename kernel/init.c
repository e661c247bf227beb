/*
 * init.c: from the PVH entry to the first thread. Reads the command line from
 * hvm_start_info, builds the NT-style GDT and TSS, points GS base at the KPCR,
 * then hands over to the scheduler: the boot context becomes the idle thread
 * and Phase1 (self-tests or a scenario) runs as the first system thread.
 *
 * Memory map (identity, see boot.S and docs/kernel.md): the image is linked
 * at 1 MiB; page tables, stacks, thread objects and all data are in .bss.
 */
#include "ke.h"

#define HVM_START_MAGIC 0x336ec578

struct hvm_start_info {
	ULONG magic;
	ULONG version;
	ULONG flags;
	ULONG nr_modules;
	ULONG64 modlist_paddr;
	ULONG64 cmdline_paddr;
	ULONG64 rsdp_paddr;
};

KPCR KiPcr __attribute__((aligned(64)));
static KTSS64 KiTss __attribute__((aligned(16)));
static ULONG64 KiGdt[11] __attribute__((aligned(16)));
static char KiCommandLine[256];
static char KiScenarioName[32];
static UCHAR KiDoubleFaultStack[8192] __attribute__((aligned(16)));
static UCHAR KiInterruptStack[16384] __attribute__((aligned(16)));
extern UCHAR KiBootStackTop[];

struct KiDescriptorPointer {
	uint16_t Limit;
	ULONG64 Base;
} __attribute__((packed));

static void KiCopyCommandLine(ULONG64 start_info_pa)
{
	const struct hvm_start_info *si = (const struct hvm_start_info *)start_info_pa;
	KiCommandLine[0] = 0;
	if (!si || si->magic != HVM_START_MAGIC || !si->cmdline_paddr)
		return;
	RtlCopyName(KiCommandLine, (const char *)si->cmdline_paddr, sizeof(KiCommandLine));
}

/* "scenario=NAME" anywhere on the command line; "clean" when absent. */
static const char *KiParseScenario(void)
{
	const char *p = KiCommandLine;
	static const char key[] = "scenario=";
	while (*p) {
		while (*p == ' ')
			p++;
		size_t i = 0;
		while (key[i] && p[i] == key[i])
			i++;
		if (!key[i]) {
			p += i;
			for (i = 0; p[i] && p[i] != ' ' && i + 1 < sizeof(KiScenarioName); i++)
				KiScenarioName[i] = p[i];
			KiScenarioName[i] = 0;
			return KiScenarioName[0] ? KiScenarioName : "clean";
		}
		while (*p && *p != ' ')
			p++;
	}
	return "clean";
}

static ULONG64 KiSegment(ULONG64 flags_access)
{
	return flags_access | 0xFFFF;
}

/* GDT with NT x64's selectors: R0 code 0x10, R0 data 0x18, R3 compat code
 * 0x20, R3 data 0x28, R3 code 0x30, TSS 0x40 (16 bytes), R3 compat TEB 0x50. */
static void KiInitializeGdt(void)
{
	ULONG64 tss = (ULONG64)&KiTss;
	ULONG64 limit = sizeof(KiTss) - 1;

	KiGdt[KGDT64_R0_CODE / 8] = KiSegment(0x00AF9B0000000000ull);
	KiGdt[KGDT64_R0_DATA / 8] = KiSegment(0x00CF930000000000ull);
	KiGdt[KGDT64_R3_CMCODE / 8] = KiSegment(0x00CFFB0000000000ull);
	KiGdt[KGDT64_R3_DATA / 8] = KiSegment(0x00CFF30000000000ull);
	KiGdt[KGDT64_R3_CODE / 8] = KiSegment(0x00AFFB0000000000ull);
	KiGdt[KGDT64_SYS_TSS / 8] = (limit & 0xFFFF) | ((tss & 0xFFFFFF) << 16) | (0x89ull << 40) |
	                            (((limit >> 16) & 0xF) << 48) | (((tss >> 24) & 0xFF) << 56);
	KiGdt[KGDT64_SYS_TSS / 8 + 1] = tss >> 32;
	KiGdt[KGDT64_R3_CMTEB / 8] = KiSegment(0x00CFF30000000000ull);

	struct KiDescriptorPointer gdtr = {sizeof(KiGdt) - 1, (ULONG64)KiGdt};
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

void KiInitializeProcessor(void)
{
	KiTss.Rsp0 = (ULONG64)KiBootStackTop;
	KiTss.Ist[1] = (ULONG64)(KiDoubleFaultStack + sizeof(KiDoubleFaultStack));
	KiTss.Ist[2] = (ULONG64)(KiInterruptStack + sizeof(KiInterruptStack));
	KiTss.IoMapBase = sizeof(KiTss);
	KiInitializeGdt();

	KiPcr.GdtBase = KiGdt;
	KiPcr.TssBase = &KiTss;
	KiPcr.Self = &KiPcr;
	KiPcr.CurrentPrcb = &KiPcr.Prcb;
	InitializeListHead(&KiPcr.Prcb.DpcListHead);
	/* Ring 0 always runs with GS base = KPCR; KERNEL_GS_BASE holds the user
	 * value swapgs would exchange it with. */
	__writemsr(0xC0000101, (ULONG64)&KiPcr);
	__writemsr(0xC0000102, 0);
	KiInitializeIdt();
}

static void KiPhase1(PVOID Context)
{
	KiRunScenario(Context);
}

void KiSystemStartup(ULONG64 StartInfo);

void KiSystemStartup(ULONG64 StartInfo)
{
	KdInitSerial();
	KiCopyCommandLine(StartInfo);
	DbgPrint("\nkrewind NT-style kernel (x86-64, 1 CPU, PVH boot)\n");
	DbgPrint("command line: \"%s\"\n", KiCommandLine);
	const char *scenario = KiParseScenario();
	DbgPrint("scenario: %s\n", scenario);

	KiInitializeProcessor();
	KiWriteCr8(PASSIVE_LEVEL);
	HalInitializeApic();
	KiInitializeClock();
	KiInitializeScheduler();
	HalStartClock(KI_CLOCK_INITIAL_COUNT);
	/* Readying a thread while idle runs it as soon as the IRQL drops: the
	 * boot context next runs as the idle thread. */
	KeCreateThread("Phase1", KiPhase1, (PVOID)scenario);
	KiIdleLoop();
}
