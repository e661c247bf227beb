// SPDX-License-Identifier: GPL-2.0
/*
 * krbug_deadlock.c - a real deadlock: thread krbug-deadlock takes a spinlock
 * with interrupts enabled and keeps it while an hrtimer expires on the same
 * CPU; the timer's hard-interrupt handler takes the same lock and spins
 * forever with interrupts off, so the thread never runs again. The boot
 * hangs here (nothing more on the serial line, no more events).
 */
#include <linux/delay.h>
#include <linux/hrtimer.h>
#include <linux/module.h>
#include <linux/spinlock.h>
#include "krbug.h"

static DEFINE_SPINLOCK(krbug_lock);
static struct hrtimer krbug_timer;

static enum hrtimer_restart krbug_timer_fn(struct hrtimer *t)
{
	spin_lock(&krbug_lock); /* held by the thread this interrupt interrupted */
	spin_unlock(&krbug_lock);
	return HRTIMER_NORESTART;
}

static int krbug_holder(void *unused)
{
	hrtimer_init(&krbug_timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL_HARD);
	krbug_timer.function = krbug_timer_fn;
	spin_lock(&krbug_lock);
	hrtimer_start(&krbug_timer, ms_to_ktime(1), HRTIMER_MODE_REL_HARD);
	mdelay(20); /* the timer expires in here */
	spin_unlock(&krbug_lock);
	return 0;
}

static int __init krbug_init(void)
{
	pr_info("krbug_deadlock: about to deadlock\n");
	krbug_run("krbug-deadlock", krbug_holder, NULL);
	pr_info("krbug_deadlock: still alive (not expected)\n");
	return 0;
}
module_init(krbug_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("krewind planted bug: a lock taken in hardirq while its holder is interrupted");
