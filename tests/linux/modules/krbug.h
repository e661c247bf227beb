/* SPDX-License-Identifier: GPL-2.0 */
/*
 * krbug.h - shared by the planted-bug modules: run a step of a scenario in its
 * own named kernel thread and wait until it is done, so each order of locking
 * has its own thread in the trace (krbug-NAME) and the module's init returns
 * only when the scenario is over.
 */
#ifndef KRBUG_H
#define KRBUG_H
#include <linux/completion.h>
#include <linux/err.h>
#include <linux/kthread.h>

struct krbug_step {
	int (*fn)(void *arg);
	void *arg;
	struct completion done;
};

static int krbug_step_main(void *p)
{
	struct krbug_step *s = p;

	s->fn(s->arg);
	complete(&s->done);
	return 0;
}

/* Runs fn(arg) in a kernel thread called name; returns when fn has. */
static inline int krbug_run(const char *name, int (*fn)(void *), void *arg)
{
	struct krbug_step s = { .fn = fn, .arg = arg };
	struct task_struct *t;

	init_completion(&s.done);
	t = kthread_run(krbug_step_main, &s, "%s", name);
	if (IS_ERR(t))
		return PTR_ERR(t);
	wait_for_completion(&s.done);
	return 0;
}
#endif
