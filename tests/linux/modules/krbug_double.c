// SPDX-License-Identifier: GPL-2.0
/*
 * krbug_double.c - a lock released twice: thread krbug-double takes a raw
 * spinlock once and releases it twice. On x86's queued spinlock the second
 * release stores 0 into a lock byte that is already 0, so the lock itself
 * survives; what it breaks is the preemption count (one preempt_enable too
 * many). Interrupts are off around it and the count is put back right after,
 * so no interrupt sees the unbalanced count and the kernel lives on.
 */
#include <linux/irqflags.h>
#include <linux/module.h>
#include <linux/preempt.h>
#include <linux/spinlock.h>
#include "krbug.h"

static DEFINE_RAW_SPINLOCK(krbug_lock);

static int krbug_double(void *unused)
{
	local_irq_disable();
	raw_spin_lock(&krbug_lock);
	raw_spin_unlock(&krbug_lock);
	raw_spin_unlock(&krbug_lock); /* the bug: released twice */
	preempt_disable();            /* balance the count the second release took */
	local_irq_enable();
	return 0;
}

static int __init krbug_init(void)
{
	krbug_run("krbug-double", krbug_double, NULL);
	pr_info("krbug_double: released a lock twice\n");
	return 0;
}
module_init(krbug_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("krewind planted bug: spinlock released twice");
