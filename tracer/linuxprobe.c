/*
 * linuxprobe.c - `krewind probe linux`: the probe file for one Linux build,
 * made from its vmlinux.
 *
 * The ELF symbols say which locking, scheduling, deferred-work and panic entry
 * points this build has out of line (only those can be probed: Linux inlines
 * many, depending on CONFIG_INLINE_* and the preemption model); the DWARF
 * (libdw) says where `current` is (per-CPU pcpu_hot.current_task on 6.2+,
 * current_task before), where the preemption count is, and the offsets of
 * task_struct's comm and pid. Nothing here is specific to one build: a symbol
 * the table names is emitted only when this ELF has exactly one function by
 * that name. The output depends on the ELF alone (no paths, no dates), so
 * regenerating the probe of a known build gives the same file.
 */
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tracer/tracer.h"

static int fail(char **err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char **err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		va_start(ap, fmt);
		if (vasprintf(err, fmt, ap) < 0)
			*err = NULL;
		va_end(ap);
	}
	return code;
}

/*
 * What each entry point means, in the schema-2 probe language (v2) and, when
 * the schema-1 language can say it, in that (v1; NULL: left out there).
 * The interruptible and killable sleeping locks fail only when a signal
 * (or a timeout) ends the wait, so they are probed as acquires; a failed one
 * would show as held. down_trylock and down_timeout return 0 on success
 * (result=!eax); down_timeout can time out, so it is a tryacquire too.
 */
struct entry {
	const char *group; /* starts a commented group when not NULL */
	const char *sym;
	const char *v2, *v1;
};

static const struct entry entries[] = {
	{"Spinlocks (raw_spinlock_t, spinlock_t): _raw_spin_*", "_raw_spin_lock", "lock-acquire lock=rdi", "lock-acquire lock=rdi"},
	{NULL, "_raw_spin_lock_nested", "lock-acquire lock=rdi subclass=rsi", "lock-acquire lock=rdi"},
	{NULL, "_raw_spin_lock_irqsave", "lock-acquire lock=rdi irq=save", "lock-acquire lock=rdi"},
	{NULL, "_raw_spin_lock_irqsave_nested", "lock-acquire lock=rdi irq=save subclass=rsi", "lock-acquire lock=rdi"},
	{NULL, "_raw_spin_lock_irq", "lock-acquire lock=rdi irq=irq", "lock-acquire lock=rdi"},
	{NULL, "_raw_spin_lock_bh", "lock-acquire lock=rdi irq=bh", "lock-acquire lock=rdi"},
	{NULL, "_raw_spin_trylock", "lock-tryacquire lock=rdi", "lock-tryacquire lock=rdi"},
	{NULL, "_raw_spin_trylock_bh", "lock-tryacquire lock=rdi irq=bh", "lock-tryacquire lock=rdi"},
	{NULL, "_raw_spin_unlock", "lock-release lock=rdi", "lock-release lock=rdi"},
	{NULL, "_raw_spin_unlock_irqrestore", "lock-release lock=rdi irq=save restore=rsi", "lock-release lock=rdi"},
	{NULL, "_raw_spin_unlock_irq", "lock-release lock=rdi irq=irq", "lock-release lock=rdi"},
	{NULL, "_raw_spin_unlock_bh", "lock-release lock=rdi irq=bh", "lock-release lock=rdi"},

	{"Reader/writer spinlocks (rwlock_t): _raw_read_*, _raw_write_*", "_raw_read_lock", "lock-acquire lock=rdi flavor=read", NULL},
	{NULL, "_raw_read_lock_irqsave", "lock-acquire lock=rdi flavor=read irq=save", NULL},
	{NULL, "_raw_read_lock_irq", "lock-acquire lock=rdi flavor=read irq=irq", NULL},
	{NULL, "_raw_read_lock_bh", "lock-acquire lock=rdi flavor=read irq=bh", NULL},
	{NULL, "_raw_read_trylock", "lock-tryacquire lock=rdi flavor=read", NULL},
	{NULL, "_raw_read_unlock", "lock-release lock=rdi flavor=read", NULL},
	{NULL, "_raw_read_unlock_irqrestore", "lock-release lock=rdi flavor=read irq=save restore=rsi", NULL},
	{NULL, "_raw_read_unlock_irq", "lock-release lock=rdi flavor=read irq=irq", NULL},
	{NULL, "_raw_read_unlock_bh", "lock-release lock=rdi flavor=read irq=bh", NULL},
	{NULL, "_raw_write_lock", "lock-acquire lock=rdi flavor=write", NULL},
	{NULL, "_raw_write_lock_nested", "lock-acquire lock=rdi flavor=write subclass=rsi", NULL},
	{NULL, "_raw_write_lock_irqsave", "lock-acquire lock=rdi flavor=write irq=save", NULL},
	{NULL, "_raw_write_lock_irq", "lock-acquire lock=rdi flavor=write irq=irq", NULL},
	{NULL, "_raw_write_lock_bh", "lock-acquire lock=rdi flavor=write irq=bh", NULL},
	{NULL, "_raw_write_trylock", "lock-tryacquire lock=rdi flavor=write", NULL},
	{NULL, "_raw_write_unlock", "lock-release lock=rdi flavor=write", NULL},
	{NULL, "_raw_write_unlock_irqrestore", "lock-release lock=rdi flavor=write irq=save restore=rsi", NULL},
	{NULL, "_raw_write_unlock_irq", "lock-release lock=rdi flavor=write irq=irq", NULL},
	{NULL, "_raw_write_unlock_bh", "lock-release lock=rdi flavor=write irq=bh", NULL},

	{"Mutexes: owned when the call returns (_interruptible, _killable fail only on a signal)", "mutex_lock", "lock-acquire lock=rdi flavor=mutex",
	 "mutex-acquire mutex=rdi at=return"},
	{NULL, "mutex_lock_nested", "lock-acquire lock=rdi flavor=mutex subclass=rsi", "mutex-acquire mutex=rdi at=return"},
	{NULL, "mutex_lock_io", "lock-acquire lock=rdi flavor=mutex", "mutex-acquire mutex=rdi at=return"},
	{NULL, "mutex_lock_interruptible", "lock-acquire lock=rdi flavor=mutex", "mutex-acquire mutex=rdi at=return"},
	{NULL, "mutex_lock_killable", "lock-acquire lock=rdi flavor=mutex", "mutex-acquire mutex=rdi at=return"},
	{NULL, "mutex_trylock", "lock-tryacquire lock=rdi flavor=mutex", NULL},
	{NULL, "mutex_unlock", "lock-release lock=rdi flavor=mutex", "mutex-release mutex=rdi"},
	{NULL, "__mutex_init", "lock-init lock=rdi flavor=mutex", NULL},

	{"Reader/writer semaphores (rw_semaphore)", "down_read", "lock-acquire lock=rdi flavor=rwsem-read", NULL},
	{NULL, "down_read_nested", "lock-acquire lock=rdi flavor=rwsem-read subclass=rsi", NULL},
	{NULL, "down_read_interruptible", "lock-acquire lock=rdi flavor=rwsem-read", NULL},
	{NULL, "down_read_killable", "lock-acquire lock=rdi flavor=rwsem-read", NULL},
	{NULL, "down_read_trylock", "lock-tryacquire lock=rdi flavor=rwsem-read", NULL},
	{NULL, "up_read", "lock-release lock=rdi flavor=rwsem-read", NULL},
	{NULL, "down_write", "lock-acquire lock=rdi flavor=rwsem-write", NULL},
	{NULL, "down_write_nested", "lock-acquire lock=rdi flavor=rwsem-write subclass=rsi", NULL},
	{NULL, "down_write_killable", "lock-acquire lock=rdi flavor=rwsem-write", NULL},
	{NULL, "down_write_trylock", "lock-tryacquire lock=rdi flavor=rwsem-write", NULL},
	{NULL, "up_write", "lock-release lock=rdi flavor=rwsem-write", NULL},
	{NULL, "__init_rwsem", "lock-init lock=rdi flavor=rwsem-write", NULL},

	{"Semaphores (struct semaphore, counting; any thread may up): down_trylock and down_timeout\n"
	 "# return 0 when they got it", "down", "lock-acquire lock=rdi flavor=sem", NULL},
	{NULL, "down_interruptible", "lock-acquire lock=rdi flavor=sem", NULL},
	{NULL, "down_killable", "lock-acquire lock=rdi flavor=sem", NULL},
	{NULL, "down_trylock", "lock-tryacquire lock=rdi flavor=sem result=!eax", NULL},
	{NULL, "down_timeout", "lock-tryacquire lock=rdi flavor=sem result=!eax", NULL},
	{NULL, "up", "lock-release lock=rdi flavor=sem", NULL},

	{"Context switch: __switch_to(prev, next) runs with prev's registers", "__switch_to", "switch old=rdi new=rsi",
	 "switch old=rdi new=rsi"},

	{"Completions", "complete", "signal object=rdi", "signal object=rdi"},
	{NULL, "complete_all", "signal object=rdi", "signal object=rdi"},
	{NULL, "wait_for_completion", "wait object=rdi", "wait object=rdi"},
	{NULL, "wait_for_completion_io", "wait object=rdi", "wait object=rdi"},
	{NULL, "wait_for_completion_timeout", "wait object=rdi timeout=rsi", "wait object=rdi timeout=rsi"},
	{NULL, "wait_for_completion_io_timeout", "wait object=rdi timeout=rsi", "wait object=rdi timeout=rsi"},
	{NULL, "wait_for_completion_interruptible", "wait object=rdi", "wait object=rdi"},
	{NULL, "wait_for_completion_interruptible_timeout", "wait object=rdi timeout=rsi", "wait object=rdi timeout=rsi"},
	{NULL, "wait_for_completion_killable", "wait object=rdi", "wait object=rdi"},
	{NULL, "wait_for_completion_killable_timeout", "wait object=rdi timeout=rsi", "wait object=rdi timeout=rsi"},

	{"Deferred work queued", "__tasklet_schedule", "defer-queue item=rdi", NULL},
	{NULL, "__tasklet_hi_schedule", "defer-queue item=rdi", NULL},
	{NULL, "raise_softirq", "defer-queue item=rdi", NULL},
	{NULL, "raise_softirq_irqoff", "defer-queue item=rdi", NULL},
	{NULL, "irq_work_queue", "defer-queue item=rdi", NULL},
	{NULL, "queue_work_on", "defer-queue item=rdx", NULL},
	{NULL, "add_timer", "defer-queue item=rdi", NULL},
	{NULL, "mod_timer", "defer-queue item=rdi", NULL},
	{NULL, "hrtimer_start_range_ns", "defer-queue item=rdi", NULL},
	{"Deferred work run", "call_timer_fn", "defer-run item=rdi", NULL},
	{NULL, "__run_hrtimer", "defer-run item=rdx", NULL},
	{NULL, "process_one_work", "defer-run item=rsi", NULL},
	{NULL, "irq_work_single", "defer-run item=rdi", NULL},

	{"Voluntary sleep points", "schedule", "sleep", NULL},
	{NULL, "schedule_timeout", "sleep timeout=rdi", NULL},
	{NULL, "msleep", "sleep timeout=rdi", NULL},
	{NULL, "usleep_range_state", "sleep timeout=rdi", NULL},

	{"panic(fmt, ...): the format string is the text", "panic", "panic text=str:rdi", "bugcheck text=str:rdi"},
};

/* The one function called name, or NULL (none, or several static ones). */
static const struct elfsym *unique_func(const struct elfsym_table *t, const char *name, int *dups)
{
	const struct elfsym *found = NULL;
	size_t i, n = elfsym_count(t);

	*dups = 0;
	for (i = 0; i < n; i++) {
		const struct elfsym *s = elfsym_at(t, i);
		if (s->is_func && strcmp(s->name, name) == 0) {
			if (found)
				(*dups)++;
			else
				found = s;
		}
	}
	return *dups ? NULL : found;
}

/* Softirqs run in handle_softirqs (6.10+, and 6.1.y since its backport;
 * __do_softirq calls it) or else in __do_softirq: one of them is the context. */
static void softirq_context(const struct elfsym_table *t, FILE *out)
{
	static const char *const names[] = { "handle_softirqs", "__do_softirq" };
	size_t i;
	int dups;

	for (i = 0; i < 2; i++)
		if (unique_func(t, names[i], &dups)) {
			fprintf(out, "\n# Softirq context: pending softirqs run inside\n%-42s context softirq\n", names[i]);
			return;
		}
}

/* The first complete definition of `struct name` among the CUs' top-level DIEs. */
static int find_struct(Dwarf *dbg, const char *name, Dwarf_Die *out)
{
	Dwarf_Off off = 0, next;
	size_t hsize;

	while (dwarf_nextcu(dbg, off, &next, &hsize, NULL, NULL, NULL) == 0) {
		Dwarf_Die cu, die;
		if (dwarf_offdie(dbg, off + hsize, &cu) && dwarf_child(&cu, &die) == 0) {
			do {
				const char *n;
				if (dwarf_tag(&die) != DW_TAG_structure_type || dwarf_hasattr(&die, DW_AT_declaration))
					continue;
				n = dwarf_diename(&die);
				if (n && strcmp(n, name) == 0) {
					*out = die;
					return 0;
				}
			} while (dwarf_siblingof(&die, &die) == 0);
		}
		off = next;
	}
	return -1;
}

/* The type of a DIE with typedefs and qualifiers peeled, or -1. */
static int type_of(Dwarf_Die *d, Dwarf_Die *type)
{
	Dwarf_Attribute a;

	if (!dwarf_attr_integrate(d, DW_AT_type, &a) || !dwarf_formref_die(&a, type))
		return -1;
	return dwarf_peel_type(type, type);
}

/* Offset and size of member name in struct st, looking into anonymous
 * structs and unions. 0, or -1 when there is no such member. */
static int member(Dwarf_Die *st, const char *name, uint64_t *off, uint64_t *size)
{
	Dwarf_Die m;

	if (dwarf_child(st, &m) != 0)
		return -1;
	do {
		Dwarf_Attribute a;
		Dwarf_Word loc = 0, sz;
		Dwarf_Die t;
		const char *n;

		if (dwarf_tag(&m) != DW_TAG_member)
			continue;
		if (dwarf_attr(&m, DW_AT_data_member_location, &a) && dwarf_formudata(&a, &loc) != 0)
			continue; /* a location expression: not a plain offset */
		n = dwarf_diename(&m);
		if (type_of(&m, &t) < 0)
			continue;
		if (n && strcmp(n, name) == 0) {
			if (dwarf_aggregate_size(&t, &sz) != 0)
				return -1;
			*off = loc;
			*size = sz;
			return 0;
		}
		if (!n && (dwarf_tag(&t) == DW_TAG_structure_type || dwarf_tag(&t) == DW_TAG_union_type) &&
		    member(&t, name, off, size) == 0) {
			*off += loc;
			return 0;
		}
	} while (dwarf_siblingof(&m, &m) == 0);
	return -1;
}

/* What the DWARF says about one build. */
struct layout {
	char thread[96];  /* `thread` operand */
	char preempt[96]; /* `preempt-count` operands, "" if unknown */
	uint64_t comm_off, comm_len, pid_off, pid_len;
	/* struct module's name and kallsyms, struct mod_kallsyms's symtab,
	 * num_symtab and strtab; has_module 0 if the DWARF lacks one */
	int has_module;
	uint64_t mod[5];
};

/* The module layout (`module-layout`), if this build keeps module symbols. */
static void read_module_layout(Dwarf *dbg, struct layout *l)
{
	static const char *const names[5] = {"name", "kallsyms", "symtab", "num_symtab", "strtab"};
	Dwarf_Die mod, ks;
	uint64_t size;

	if (find_struct(dbg, "module", &mod) < 0 || find_struct(dbg, "mod_kallsyms", &ks) < 0)
		return;
	for (int i = 0; i < 5; i++)
		if (member(i < 2 ? &mod : &ks, names[i], &l->mod[i], &size) < 0 || (i == 3 && size != 4))
			return;
	l->has_module = 1;
}

static int read_layout(const char *path, const struct elfsym_table *t, struct layout *l, char **err)
{
	Dwarf_Die task, hot;
	Dwarf *dbg;
	uint64_t off, size;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return fail(err, TRACER_E_IO, "cannot open %s: %s", path, strerror(errno));
	dbg = dwarf_begin(fd, DWARF_C_READ);
	if (!dbg) {
		close(fd);
		return fail(err, TRACER_E_ELF, "%s has no DWARF debug info (give the unstripped vmlinux, e.g. from the "
						"linux-image-*-dbg package)", path);
	}
	if (find_struct(dbg, "task_struct", &task) < 0) {
		rc = fail(err, TRACER_E_SYMBOL, "%s: no struct task_struct in its DWARF: not a Linux vmlinux?", path);
		goto out;
	}
	if (member(&task, "comm", &l->comm_off, &l->comm_len) < 0 ||
	    member(&task, "pid", &l->pid_off, &l->pid_len) < 0) {
		rc = fail(err, TRACER_E_SYMBOL, "%s: struct task_struct has no comm or pid member", path);
		goto out;
	}
	if (l->comm_len > 64)
		l->comm_len = 64;
	read_module_layout(dbg, l);
	/* v6.2+: current and the preemption count live in struct pcpu_hot. */
	if (elfsym_find(t, "pcpu_hot") && find_struct(dbg, "pcpu_hot", &hot) == 0 &&
	    member(&hot, "current_task", &off, &size) == 0) {
		snprintf(l->thread, sizeof(l->thread), off ? "gs:pcpu_hot+0x%" PRIx64 : "gs:pcpu_hot", off);
		if (member(&hot, "preempt_count", &off, &size) == 0)
			snprintf(l->preempt, sizeof(l->preempt), "gs:pcpu_hot+0x%" PRIx64 " %" PRIu64, off, size);
	} else if (elfsym_find(t, "current_task")) {
		const struct elfsym *pc = elfsym_find(t, "__preempt_count");
		snprintf(l->thread, sizeof(l->thread), "gs:current_task");
		if (pc)
			snprintf(l->preempt, sizeof(l->preempt), "gs:__preempt_count %" PRIu64, pc->size ? pc->size : 4);
	} else {
		rc = fail(err, TRACER_E_SYMBOL, "%s has neither pcpu_hot nor current_task: not an x86-64 Linux vmlinux?",
			  path);
	}
out:
	dwarf_end(dbg);
	close(fd);
	return rc;
}

/* "Linux version 6.1.0-57-cloud-amd64" from linux_banner, or "". */
static void banner(const struct elfsym_table *t, char *buf, size_t len)
{
	const struct elfsym *s = elfsym_find(t, "linux_banner");
	size_t n = len - 1;

	*buf = 0;
	if (s && s->size && s->size < n)
		n = s->size;
	if (!s || len < 2 || elfsym_read(t, s->addr, buf, n, NULL) < 0) {
		*buf = 0;
		return;
	}
	buf[n] = 0;
	n = strcspn(buf, "(\n");
	while (n > 0 && buf[n - 1] == ' ')
		n--;
	buf[n] = 0;
}

int linuxprobe_write(const char *vmlinux, int schema, FILE *out, char **err)
{
	struct elfsym_table *t = NULL;
	struct layout l = { 0 };
	char version[128];
	const char *group = NULL;
	size_t i;
	int dups_mod;
	int rc;

	if (schema != 1 && schema != 2)
		return fail(err, TRACER_E_SYNTAX, "probe language schema %d: only 1 and 2 exist", schema);
	if ((rc = elfsym_load(vmlinux, &t, err)) < 0)
		return rc;
	if (elfsym_count(t) == 0) {
		elfsym_free(t);
		return fail(err, TRACER_E_SYMBOL, "%s has no symbols (a bzImage or a stripped vmlinux?): give the "
						  "unstripped vmlinux", vmlinux);
	}
	if ((rc = read_layout(vmlinux, t, &l, err)) < 0) {
		elfsym_free(t);
		return rc;
	}
	banner(t, version, sizeof(version));
	fprintf(out, "# Probe for %s, build-id %s.\n", *version ? version : "a Linux kernel",
		*elfsym_build_id(t) ? elfsym_build_id(t) : "(none)");
	fprintf(out, "# Generated by `krewind probe linux%s VMLINUX` from its ELF symbols and DWARF\n"
		     "# (docs/probe.md); only functions this build has out of line are listed.\n\n",
		schema == 1 ? " --schema 1" : "");
	fprintf(out, "# current, and task_struct's comm and pid (from the DWARF).\n");
	fprintf(out, "thread         %s\n", l.thread);
	fprintf(out, "thread-name    0x%" PRIx64 " %" PRIu64 "\n", l.comm_off, l.comm_len);
	if (schema >= 2) {
		fprintf(out, "thread-id      0x%" PRIx64 " %" PRIu64 "\n", l.pid_off, l.pid_len);
		/* include/linux/preempt.h: PREEMPT_BITS 8, SOFTIRQ_BITS 8, HARDIRQ_BITS 4,
		 * NMI_BITS 4 (a macro layout the DWARF does not carry); SOFTIRQ_OFFSET
		 * (0x100) set = serving softirqs, any softirq bit = softirqs disabled. */
		if (*l.preempt)
			fprintf(out, "preempt-count  %s hardirq=0xf0000 softirq=0x100 bh=0xff00 nmi=0xf00000\n",
				l.preempt);
	}
	for (i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
		const struct entry *e = &entries[i];
		const char *what = schema >= 2 ? e->v2 : e->v1;
		const struct elfsym *s;
		int dups;

		if (e->group)
			group = e->group;
		if (!what)
			continue;
		s = unique_func(t, e->sym, &dups);
		if (!s && !dups)
			continue;
		if (group) {
			fprintf(out, "\n# %s\n", group);
			group = NULL;
		}
		if (s)
			fprintf(out, "%-42s %s\n", e->sym, what);
		else
			fprintf(out, "# %s: %d static functions share the name, none probed\n", e->sym, dups + 1);
	}
	if (schema >= 2)
		softirq_context(t, out);
	if (schema >= 2 && l.has_module && unique_func(t, "do_init_module", &dups_mod))
		fprintf(out, "\n# Loadable modules: do_init_module(mod) runs with the module's symbols in\n"
			     "# mod->kallsyms (struct module's name, kallsyms; struct mod_kallsyms's symtab,\n"
			     "# num_symtab, strtab): they join the trace's, so module locks have names.\n"
			     "module-layout  0x%" PRIx64 " 0x%" PRIx64 " 0x%" PRIx64 " 0x%" PRIx64 " 0x%" PRIx64 "\n"
			     "%-42s module-load module=rdi\n",
			l.mod[0], l.mod[1], l.mod[2], l.mod[3], l.mod[4], "do_init_module");
	elfsym_free(t);
	if (fflush(out) != 0 || ferror(out))
		return fail(err, TRACER_E_IO, "writing the probe failed: %s", strerror(errno));
	return 0;
}
