// SPDX-License-Identifier: GPL-2.0
/*
 * krbug_hardirq.c - a lock taken in hard interrupt context (an hrtimer
 * callback, HRTIMER_MODE_REL_HARD) and in process context with interrupts
 * enabled (spin_lock, not spin_lock_irqsave). The process-context use comes
 * after the timer has fired, so this boot does not deadlock; a timer firing
 * while the thread holds the lock would spin forever on this CPU.
 */
#include <linux/hrtimer.h>
#include <linux/module.h>
#include <linux/spinlock.h>
#include "krbug.h"

static DEFINE_SPINLOCK(krbug_irq_lock);
static DECLARE_COMPLETION(krbug_fired);
static struct hrtimer krbug_timer;
static int krbug_count;

static enum hrtimer_restart krbug_timer_fn(struct hrtimer *t)
{
	spin_lock(&krbug_irq_lock);
	krbug_count++;
	spin_unlock(&krbug_irq_lock);
	complete(&krbug_fired);
	return HRTIMER_NORESTART;
}

static int krbug_process(void *unused)
{
	hrtimer_init(&krbug_timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL_HARD);
	krbug_timer.function = krbug_timer_fn;
	hrtimer_start(&krbug_timer, ms_to_ktime(2), HRTIMER_MODE_REL_HARD);
	wait_for_completion(&krbug_fired);
	spin_lock(&krbug_irq_lock); /* the bug: interrupts stay enabled */
	krbug_count++;
	spin_unlock(&krbug_irq_lock);
	return 0;
}

static int __init krbug_init(void)
{
	krbug_run("krbug-hardirq", krbug_process, NULL);
	pr_info("krbug_hardirq: lock used in hardirq and with irqs on, count %d\n", krbug_count);
	return 0;
}
module_init(krbug_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("krewind planted bug: hardirq-safe lock taken with interrupts enabled");
