// SPDX-License-Identifier: GPL-2.0
/*
 * krbug_trylock.c - NOT a bug: thread krbug-ab takes A then B; thread
 * krbug-bta holds B and only tries A (spin_trylock), backing off when it is
 * taken. A trylock cannot wait, so the reverse order cannot deadlock; a
 * checker must report nothing here.
 */
#include <linux/module.h>
#include <linux/spinlock.h>
#include "krbug.h"

static DEFINE_SPINLOCK(krbug_lock_a);
static DEFINE_SPINLOCK(krbug_lock_b);
static int krbug_got;

static int krbug_ab(void *unused)
{
	spin_lock(&krbug_lock_a);
	spin_lock(&krbug_lock_b);
	spin_unlock(&krbug_lock_b);
	spin_unlock(&krbug_lock_a);
	return 0;
}

static int krbug_b_try_a(void *unused)
{
	spin_lock(&krbug_lock_b);
	if (spin_trylock(&krbug_lock_a)) {
		krbug_got++;
		spin_unlock(&krbug_lock_a);
	}
	spin_unlock(&krbug_lock_b);
	return 0;
}

static int __init krbug_init(void)
{
	krbug_run("krbug-ab", krbug_ab, NULL);
	krbug_run("krbug-bta", krbug_b_try_a, NULL);
	pr_info("krbug_trylock: A->B, then B->trylock(A) %s\n", krbug_got ? "got it" : "backed off");
	return 0;
}
module_init(krbug_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("krewind control case: legal reverse-order spin_trylock");
