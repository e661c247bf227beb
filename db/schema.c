/*
 * schema.c - the schema text (db/schema.sql, embedded at build time) and the
 * event kind names, which must match the kinds table in schema.sql.
 */
#include <string.h>

#include "db/internal.h"

/* .incbin reads db/schema.sql relative to the directory make runs in (the
 * top of the tree); db/db.mk makes schema.o depend on it. */
__asm__(".section .rodata\n"
	".global db_schema_sql\n"
	".hidden db_schema_sql\n"
	".type db_schema_sql, @object\n"
	"db_schema_sql:\n"
	".incbin \"db/schema.sql\"\n"
	".byte 0\n"
	".size db_schema_sql, . - db_schema_sql\n"
	".previous\n");

static const char *const kind_names[DB_KIND_MAX + 1] = {
	[DB_TRAP] = "trap",
	[DB_IRET] = "iret",
	[DB_IRQL] = "irql",
	[DB_LOCK_TRY] = "lock_try",
	[DB_LOCK_ACQ] = "lock_acq",
	[DB_LOCK_REL] = "lock_rel",
	[DB_WAIT] = "wait",
	[DB_WAIT_END] = "wait_end",
	[DB_MUTEX_ACQ] = "mutex_acq",
	[DB_MUTEX_REL] = "mutex_rel",
	[DB_SIGNAL] = "signal",
	[DB_SWITCH] = "switch",
	[DB_EOI] = "eoi",
	[DB_MARKER] = "marker",
	[DB_BUGCHECK] = "bugcheck",
	[DB_LOCK_INIT] = "lock_init",
	[DB_LOCK_FAIL] = "lock_fail",
	[DB_DEFER_QUEUE] = "defer_queue",
	[DB_DEFER_RUN] = "defer_run",
	[DB_SLEEP] = "sleep",
	[DB_SYSCALL] = "syscall",
};

const char *db_kind_name(int kind)
{
	if (kind < 1 || kind > DB_KIND_MAX)
		return NULL;
	return kind_names[kind];
}

int db_kind_from_name(const char *name)
{
	if (!name)
		return 0;
	for (int k = 1; k <= DB_KIND_MAX; k++)
		if (strcmp(kind_names[k], name) == 0)
			return k;
	return 0;
}

int db_kind_obj_is_lock(int kind)
{
	switch (kind) {
	case DB_LOCK_TRY:
	case DB_LOCK_ACQ:
	case DB_LOCK_REL:
	case DB_WAIT:
	case DB_WAIT_END:
	case DB_MUTEX_ACQ:
	case DB_MUTEX_REL:
	case DB_SIGNAL:
	case DB_LOCK_INIT:
	case DB_LOCK_FAIL:
		return 1;
	default:
		return 0;
	}
}
