// SPDX-License-Identifier: GPL-2.0
/*
 * krbug_rwlock.c - a reader/writer lock-order inversion: thread krbug-rs
 * read-locks R then takes spinlock S; thread krbug-sw takes S then write-locks
 * R. A writer waiting for R while a reader of R waits for S deadlocks. The
 * threads run one after the other, so this boot does not.
 */
#include <linux/module.h>
#include <linux/spinlock.h>
#include "krbug.h"

static DEFINE_RWLOCK(krbug_rw);
static DEFINE_SPINLOCK(krbug_lock_s);

static int krbug_read_then_spin(void *unused)
{
	read_lock(&krbug_rw);
	spin_lock(&krbug_lock_s);
	spin_unlock(&krbug_lock_s);
	read_unlock(&krbug_rw);
	return 0;
}

static int krbug_spin_then_write(void *unused)
{
	spin_lock(&krbug_lock_s);
	write_lock(&krbug_rw);
	write_unlock(&krbug_rw);
	spin_unlock(&krbug_lock_s);
	return 0;
}

static int __init krbug_init(void)
{
	krbug_run("krbug-rs", krbug_read_then_spin, NULL);
	krbug_run("krbug-sw", krbug_spin_then_write, NULL);
	pr_info("krbug_rwlock: read(R)->S then S->write(R) done\n");
	return 0;
}
module_init(krbug_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("krewind planted bug: rwlock order inversion");
