// SPDX-License-Identifier: GPL-2.0
/*
 * krbug_softirq.c - a lock taken in softirq context (a timer_list callback)
 * and in process context without disabling softirqs (spin_lock, not
 * spin_lock_bh). The process-context use comes after the timer has run, so
 * this boot does not deadlock; the timer expiring while the thread holds the
 * lock would.
 */
#include <linux/module.h>
#include <linux/spinlock.h>
#include <linux/timer.h>
#include "krbug.h"

static DEFINE_SPINLOCK(krbug_bh_lock);
static DECLARE_COMPLETION(krbug_ran);
static struct timer_list krbug_timer;
static int krbug_count;

static void krbug_timer_fn(struct timer_list *t)
{
	spin_lock(&krbug_bh_lock);
	krbug_count++;
	spin_unlock(&krbug_bh_lock);
	complete(&krbug_ran);
}

static int krbug_process(void *unused)
{
	timer_setup(&krbug_timer, krbug_timer_fn, 0);
	mod_timer(&krbug_timer, jiffies + 1);
	wait_for_completion(&krbug_ran);
	spin_lock(&krbug_bh_lock); /* the bug: softirqs stay enabled */
	krbug_count++;
	spin_unlock(&krbug_bh_lock);
	return 0;
}

static int __init krbug_init(void)
{
	krbug_run("krbug-softirq", krbug_process, NULL);
	pr_info("krbug_softirq: lock used in softirq and with softirqs on, count %d\n", krbug_count);
	return 0;
}
module_init(krbug_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("krewind planted bug: softirq-safe lock taken without _bh");
