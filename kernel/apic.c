/*
 * apic.c: the local APIC in x2APIC mode (all registers are MSRs 0x800 +
 * offset/16, no MMIO mapping needed) and its timer, which is the clock.
 *
 * The timer runs periodic at CLOCK_VECTOR (0xD1): priority class 13, so CR8 =
 * CLOCK_LEVEL masks it. The initial count is fixed: under -icount the APIC
 * timer advances with the instruction count, so a fixed count is
 * deterministic and we never calibrate against wall-clock time.
 */
#include "ke.h"

#define IA32_APIC_BASE       0x1B
#define APIC_BASE_ENABLE     (1u << 11)
#define APIC_BASE_X2APIC     (1u << 10)
#define X2APIC_TPR           0x808
#define X2APIC_EOI           0x80B
#define X2APIC_SVR           0x80F
#define X2APIC_IRR0          0x820
#define X2APIC_LVT_TIMER     0x832
#define X2APIC_LVT_LINT0     0x835
#define X2APIC_LVT_LINT1     0x836
#define X2APIC_LVT_ERROR     0x837
#define X2APIC_TIMER_INITIAL 0x838
#define X2APIC_TIMER_DIVIDE  0x83E
#define LVT_MASKED           (1u << 16)
#define LVT_TIMER_PERIODIC   (1u << 17)

void HalInitializeApic(void)
{
	ULONG64 base = __readmsr(IA32_APIC_BASE);
	/* xAPIC must be enabled before (or together with) x2APIC mode. */
	__writemsr(IA32_APIC_BASE, base | APIC_BASE_ENABLE);
	__writemsr(IA32_APIC_BASE, base | APIC_BASE_ENABLE | APIC_BASE_X2APIC);
	__writemsr(X2APIC_TPR, 0);
	__writemsr(X2APIC_LVT_LINT0, LVT_MASKED);
	__writemsr(X2APIC_LVT_LINT1, LVT_MASKED);
	__writemsr(X2APIC_LVT_ERROR, LVT_MASKED);
	__writemsr(X2APIC_LVT_TIMER, LVT_MASKED);
	__writemsr(X2APIC_SVR, (1u << 8) | SPURIOUS_VECTOR); /* software enable */
}

void HalStartClock(ULONG InitialCount)
{
	__writemsr(X2APIC_TIMER_DIVIDE, 0xB); /* divide by 1 */
	__writemsr(X2APIC_LVT_TIMER, LVT_TIMER_PERIODIC | CLOCK_VECTOR);
	__writemsr(X2APIC_TIMER_INITIAL, InitialCount);
}

/* Stops the timer: masked, count 0 (the idle loop's dynamic tick). */
void HalStopClock(void)
{
	__writemsr(X2APIC_LVT_TIMER, LVT_MASKED | CLOCK_VECTOR);
	__writemsr(X2APIC_TIMER_INITIAL, 0);
}

/* The EOI: `wrmsr` to 0x80B. It clears the in-service bit of the interrupt
 * being handled; until then the APIC delivers nothing at or below its class. */
NOINLINE void KiApicEndOfInterrupt(void)
{
	__writemsr(X2APIC_EOI, 0);
}

/* Is the clock interrupt requested but not yet delivered (IRR bit set)? */
BOOLEAN HalIsClockInterruptPending(void)
{
	ULONG64 irr = __readmsr(X2APIC_IRR0 + CLOCK_VECTOR / 32);
	return (irr >> (CLOCK_VECTOR % 32)) & 1;
}
