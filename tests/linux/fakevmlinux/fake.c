/*
 * fake.c - a stand-in vmlinux for tests/e2e/linux_probe.sh: the v6.2+ shape
 * (per-CPU struct pcpu_hot), a few of the entry points krewind probe linux
 * knows, and a static function whose name another file also uses. Built with
 * gcc -g; never run.
 */
#include <stddef.h>
#include "layout.h"

struct pcpu_hot pcpu_hot = { 0 };
struct task_struct init_task = { 0 };
const char linux_banner[] = "Linux version 6.9.0-krewind-fake (test@krewind) (gcc) #1\n";
int offsets[] = { offsetof(struct task_struct, comm), offsetof(struct task_struct, pid),
		  offsetof(struct pcpu_hot, current_task), offsetof(struct pcpu_hot, preempt_count) };

#define F(name) __attribute__((noinline, used)) void name(void *a, void *b) { asm volatile("" :: "r"(a), "r"(b)); }
F(_raw_spin_lock)
F(_raw_spin_unlock)
F(_raw_spin_lock_irqsave)
F(_raw_spin_unlock_irqrestore)
F(_raw_read_lock)
F(mutex_lock)
F(mutex_unlock)
F(__switch_to)
F(panic)
F(handle_softirqs)
F(__do_softirq)
F(down_trylock)
__attribute__((noinline, used)) static void process_one_work(void *a) { asm volatile("" :: "r"(a)); }

void process_other(void);
__attribute__((noreturn)) void _start(void)
{
	process_one_work(0);
	process_other();
	for (;;)
		;
}
