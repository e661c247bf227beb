// SPDX-License-Identifier: GPL-2.0
/*
 * krbug_abba.c - lock-order inversion: thread krbug-ab takes A then B, thread
 * krbug-ba later takes B then A. They run one after the other, so this boot
 * does not deadlock; two CPUs running them at once could.
 */
#include <linux/module.h>
#include <linux/spinlock.h>
#include "krbug.h"

static DEFINE_SPINLOCK(krbug_lock_a);
static DEFINE_SPINLOCK(krbug_lock_b);

static int krbug_ab(void *unused)
{
	spin_lock(&krbug_lock_a);
	spin_lock(&krbug_lock_b);
	spin_unlock(&krbug_lock_b);
	spin_unlock(&krbug_lock_a);
	return 0;
}

static int krbug_ba(void *unused)
{
	spin_lock(&krbug_lock_b);
	spin_lock(&krbug_lock_a);
	spin_unlock(&krbug_lock_a);
	spin_unlock(&krbug_lock_b);
	return 0;
}

static int __init krbug_init(void)
{
	krbug_run("krbug-ab", krbug_ab, NULL);
	krbug_run("krbug-ba", krbug_ba, NULL);
	pr_info("krbug_abba: A->B then B->A done\n");
	return 0;
}
module_init(krbug_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("krewind planted bug: AB-BA spinlock order");
