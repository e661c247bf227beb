// SPDX-License-Identifier: GPL-2.0
/*
 * krbug_sleep.c - sleeping while holding a spinlock: thread krbug-sleep takes
 * a mutex and then sleeps in msleep() with the spinlock held. The scheduler
 * prints "BUG: scheduling while atomic" and, to carry on, resets the
 * preemption count, taking away the level spin_lock added; the thread puts it
 * back before unlocking so the kernel survives the test.
 */
#include <linux/delay.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/preempt.h>
#include <linux/spinlock.h>
#include "krbug.h"

static DEFINE_SPINLOCK(krbug_lock);
static DEFINE_MUTEX(krbug_mutex);

static int krbug_sleeper(void *unused)
{
	spin_lock(&krbug_lock);
	mutex_lock(&krbug_mutex); /* the bug: may sleep under a spinlock */
	mutex_unlock(&krbug_mutex);
	msleep(2);                /* the bug: sleeps under a spinlock */
	if (preempt_count() == 0)
		preempt_disable(); /* what the scheduler's fix-up took */
	spin_unlock(&krbug_lock);
	return 0;
}

static int __init krbug_init(void)
{
	krbug_run("krbug-sleep", krbug_sleeper, NULL);
	pr_info("krbug_sleep: slept holding a spinlock\n");
	return 0;
}
module_init(krbug_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("krewind planted bug: sleeping while holding a spinlock");
