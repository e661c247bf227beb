/*
 * bugcheck.c: KeBugCheckEx, the one way this kernel stops on an error. Prints
 * the NT-style STOP line on the serial console and powers off with 0x12.
 */
#include "ke.h"

static const char *KiBugCheckName(ULONG Code)
{
	switch (Code) {
	case IRQL_NOT_GREATER_OR_EQUAL:
		return "IRQL_NOT_GREATER_OR_EQUAL";
	case IRQL_NOT_LESS_OR_EQUAL:
		return "IRQL_NOT_LESS_OR_EQUAL";
	case SPIN_LOCK_NOT_OWNED:
		return "SPIN_LOCK_NOT_OWNED";
	case THREAD_NOT_MUTEX_OWNER:
		return "THREAD_NOT_MUTEX_OWNER";
	case KMODE_EXCEPTION_NOT_HANDLED:
		return "KMODE_EXCEPTION_NOT_HANDLED";
	case UNEXPECTED_KERNEL_MODE_TRAP:
		return "UNEXPECTED_KERNEL_MODE_TRAP";
	case NO_MORE_SYSTEM_PTES:
		return "NO_MORE_SYSTEM_PTES";
	case SEMAPHORE_LIMIT_EXCEEDED:
		return "SEMAPHORE_LIMIT_EXCEEDED";
	case INVALID_WAIT_OBJECT:
		return "INVALID_WAIT_OBJECT";
	case KREWIND_THREAD_STACK_CORRUPT:
		return "KREWIND_THREAD_STACK_CORRUPT";
	default:
		return "UNKNOWN_BUGCHECK";
	}
}

NOINLINE void KeBugCheckEx(ULONG Code, ULONG_PTR P1, ULONG_PTR P2, ULONG_PTR P3, ULONG_PTR P4)
{
	/* Nothing may run after a bugcheck: no interrupts, no DPCs. */
	_disable();
	KiWriteCr8(HIGH_LEVEL);
	PKTHREAD t = KeGetCurrentThread();
	DbgPrint("\n*** STOP: 0x%08x (0x%016lx, 0x%016lx, 0x%016lx, 0x%016lx)\n", Code, P1, P2, P3, P4);
	DbgPrint("*** %s in thread %s\n", KiBugCheckName(Code), t ? t->Name : "(boot)");
	KiPowerOff(KI_EXIT_BUGCHECK);
}
