/*
 * db.h - the trace database: schema, writer and reader.
 *
 * One recording is one SQLite file. db/ owns every SQL string of the project:
 * the tracer writes through db_writer_*, the analyses and the CLI read through
 * db_reader_* and db_cursor_*. The schema is db/schema.sql, versioned with
 * PRAGMA user_version (DB_SCHEMA_VERSION) and documented in docs/schema.md.
 *
 * Error convention: functions that can fail return 0 on success or a negative
 * DB_E* code, and on failure set *err (when err is not NULL) to a malloc'd
 * one-line message that the caller prints and frees.
 */
#ifndef KREWIND_DB_H
#define KREWIND_DB_H

#include <stddef.h>
#include <stdint.h>

#define DB_SCHEMA_VERSION 2

enum db_error {
	DB_OK = 0,
	DB_E_IO = -1,      /* cannot open/create/write the file */
	DB_E_CORRUPT = -2, /* not a SQLite file, or damaged */
	DB_E_SCHEMA = -3,  /* not a krewind trace, or a newer schema version */
	DB_E_NOMEM = -4,
	DB_E_ARG = -5,     /* bad argument, bad SQL in db_sql, unknown id */
	DB_E_FULL = -6,    /* disk full: events from this point on were lost */
};

/*
 * Event kinds. Stored as small integers (events.kind_id) for size; the
 * `events` view and db_kind_name() give their names.
 * Meaning of the payload columns per kind (obj, a, b):
 */
enum db_kind {
	DB_TRAP = 1,      /* interrupt/exception entry: a=vector, b=error code (0 if none) */
	DB_IRET = 2,      /* iretq: a=vector of the trap being left (-1 if unknown) */
	DB_IRQL = 3,      /* CR8 write or probed raise/lower: a=old IRQL, b=new IRQL */
	DB_LOCK_TRY = 4,  /* spinlock attempt: obj=lock addr, a=IRQL */
	DB_LOCK_ACQ = 5,  /* spinlock acquired: obj=lock addr, a=IRQL, b=instructions spent spinning */
	DB_LOCK_REL = 6,  /* spinlock release: obj=lock addr, a=IRQL */
	DB_WAIT = 7,      /* wait on a dispatcher object begins: obj=object addr, a=IRQL, b=timeout */
	DB_WAIT_END = 8,  /* the wait returned: obj=object addr, a=status */
	DB_MUTEX_ACQ = 9, /* mutex acquired (owned): obj=mutex addr, a=IRQL, b=owner thread (0 unknown) */
	DB_MUTEX_REL = 10, /* mutex released: obj=mutex addr, a=IRQL */
	DB_SIGNAL = 11,   /* dispatcher object signalled (event set, semaphore released): obj */
	DB_SWITCH = 12,   /* context switch: thread=old thread addr, a=old thread, b=new thread */
	DB_EOI = 13,      /* APIC EOI write: a=1 x2APIC wrmsr, 2 xAPIC MMIO */
	DB_MARKER = 14,   /* text marker (scenario, self-test result, ...): a=marker type, text */
	DB_BUGCHECK = 15, /* KeBugCheckEx / panic: a=code, b=first parameter */
	DB_LOCK_INIT = 16, /* lock initialised: obj=lock addr, a=pc of the caller (allocation site) */
	/* Schema 2 (issue #12): kernel-neutral events. */
	DB_LOCK_FAIL = 17, /* a trylock returned without the lock: obj=lock addr; never a spinner */
	DB_DEFER_QUEUE = 18, /* deferred work queued (DPC, tasklet, softirq raise, irq_work): obj=item */
	DB_DEFER_RUN = 19, /* deferred work starts running: obj=item (0 if the probe cannot tell) */
	DB_SLEEP = 20,    /* a voluntary sleep point (schedule(), msleep, KeDelayExecutionThread): b=timeout */
	DB_SYSCALL = 21,  /* system call entry (a=number) or exit (a=-1), where the probe asks for it */
	DB_KIND_MAX = 21,
};

/*
 * Execution context of the vCPU at an event (db_event.ctx). The tracer keeps
 * it per vCPU: inside the frame of an external interrupt it is hardirq, of an
 * NMI nmi; inside a probe-declared softirq/DPC function softirq; else process.
 * Exceptions and software traps (int N, syscall) keep the context they
 * interrupted: a page fault in a system call is still process context.
 */
enum db_ctx {
	DB_CTX_PROCESS = 0,
	DB_CTX_HARDIRQ = 1,
	DB_CTX_SOFTIRQ = 2, /* softirq, tasklet, DPC */
	DB_CTX_NMI = 3,
};

/* Event flags (db_event.flags). */
enum db_flag {
	DB_F_IF = 1 << 0,      /* RFLAGS.IF was set when the event was recorded (for a trap:
	                          in the interrupted context; for an iret: in the context returned to) */
	DB_F_USER = 1 << 1,    /* trap: taken from user mode (CPL 3); iret: returns to user mode */
	DB_F_SOFT = 1 << 2,    /* trap: a software trap (int N, syscall), not an interrupt */
	DB_F_NOFRAME = 1 << 3, /* iret: closes no open trap frame (an iret to self, e.g. sync_core) */
	DB_F_TRY = 1 << 4,     /* lock_try / lock_acq / lock_fail of a trylock */
	DB_F_DEFER_OFF = 1 << 5, /* softirqs/DPCs were disabled (local_bh_disable count > 0), where
	                            the probe declares how to read it */
};

/*
 * What a lock operation is (db_event.lockop, on lock_try, lock_acq, lock_fail,
 * lock_rel, lock_init, mutex_acq, mutex_rel): declared per function by the
 * probe (docs/probe.md), never guessed from names.
 */
enum db_lock_flavor {
	DB_LF_SPIN = 0,        /* spinlock, exclusive */
	DB_LF_READ = 1,        /* reader side of a reader/writer spinlock (recursive read) */
	DB_LF_WRITE = 2,       /* writer side of a reader/writer spinlock */
	DB_LF_MUTEX = 3,       /* sleeping mutex */
	DB_LF_RWSEM_READ = 4,  /* reader side of a sleeping r/w semaphore (not recursive) */
	DB_LF_RWSEM_WRITE = 5, /* writer side of a sleeping r/w semaphore */
	DB_LF_SEM = 6,         /* counting semaphore */
};
/* How the acquire changes interrupt state; on a release, what it restores. */
enum db_lock_irq {
	DB_LI_NONE = 0,
	DB_LI_IRQSAVE = 1,        /* disables interrupts, saving flags; release restores them (b = flags) */
	DB_LI_IRQ = 2,            /* disables interrupts; release enables them */
	DB_LI_BH = 3,             /* disables softirqs; release enables them */
	DB_LI_RAISE_DISPATCH = 4, /* raises IRQL to DISPATCH_LEVEL; release lowers to b */
	DB_LI_AT_DISPATCH = 5,    /* caller must already be at DISPATCH_LEVEL or above */
};
#define DB_LOCKOP(flavor, irq, subclass) ((uint16_t)((flavor) | (irq) << 4 | (subclass) << 8))
#define DB_LOCKOP_FLAVOR(op) ((op) & 0xf)
#define DB_LOCKOP_IRQ(op) (((op) >> 4) & 0xf)
#define DB_LOCKOP_SUBCLASS(op) (((op) >> 8) & 0xff)

/* Marker types (events.a for DB_MARKER). */
enum db_marker {
	DB_MARK_TEXT = 0,     /* free text */
	DB_MARK_SCENARIO = 1, /* scenario start: text = scenario name */
	DB_MARK_RESULT = 2,   /* self-test result: obj=passed, b=failed */
	DB_MARK_SERIAL = 3,   /* a line of the guest's serial console */
	DB_MARK_LOST = 4,     /* events lost (the queue was full): obj = how many, b = icount of
	                         the first, the event's own icount that of the last; text says so */
};

/* Returns the kind's stable name ("trap", "irql", "lock_try", ...), or NULL. */
const char *db_kind_name(int kind);
/* Returns the kind for a name, or 0 if unknown. */
int db_kind_from_name(const char *name);

/* One event as the tracer hands it in and as the reader hands it out.
 * thread and obj are guest addresses (0 = unknown / none); the database
 * interns them into the threads and locks tables. */
struct db_event {
	int64_t id;      /* set by the reader; ignored by the writer */
	uint64_t icount; /* guest instructions retired before this one, on this vCPU */
	uint64_t pc;
	uint64_t thread; /* current thread object address, 0 if unknown */
	uint64_t obj;    /* lock / dispatcher object address, or kind-specific */
	int64_t a, b;
	uint16_t vcpu;
	uint8_t kind;    /* enum db_kind */
	/* Schema 2 (issue #12); zero-initialised events mean process context, IF=0. */
	uint8_t ctx;     /* enum db_ctx */
	uint8_t flags;   /* enum db_flag bits */
	uint16_t lockop; /* DB_LOCKOP(flavor, irq, subclass) for lock kinds, else 0 */
	int32_t preempt; /* preemption count where the probe declares it, else -1 */
	int32_t tid;     /* the kernel's thread id (Linux pid) where the probe declares it, else -1 */
	uint64_t caller; /* lock/wait/sleep kinds: the call site (return address at entry), 0 if unknown */
};

/* ---------------------------------------------------------------- writer */

/*
 * The writer owns a background thread that drains a bounded queue into the
 * database in transactions of a few thousand rows (WAL mode). db_writer_push
 * may be called concurrently from any number of threads (the vCPU threads);
 * it never blocks on SQLite. The database is committed at least every 100 ms,
 * so a SIGKILL loses at most the last ~250 ms of events.
 */
struct db_writer;

/* Optional: called on the writer thread the first time a thread or lock
 * address is seen, to name it. Fills name (size bytes, NUL-terminated);
 * returns 0 if it found a name. is_lock: 1 lock/object, 0 thread. */
typedef int (*db_namer)(void *ctx, int is_lock, uint64_t addr, char *name, size_t size);

/* Creates path (which must not exist: nothing recorded is ever overwritten;
 * DB_E_IO with a message if it does) and starts the writer thread. */
int db_writer_open(const char *path, db_namer namer, void *namer_ctx, struct db_writer **out, char **err);
/* db_writer_open with a ring of slots events (a power of two) instead of the
 * default: the stress test and the plugin's queue= argument use a small one
 * to make the queue overflow (events dropped, and said so). */
int db_writer_open_ring(const char *path, db_namer namer, void *namer_ctx, size_t slots,
			struct db_writer **out, char **err);

/* Queues one event. Thread-safe, wait-free in the common case. Returns 0, or
 * DB_E_FULL if the queue stayed full or the writer stopped on a write error
 * (the event is counted as dropped), or DB_E_ARG for a kind outside
 * 1..DB_KIND_MAX (not stored, not counted). */
int db_writer_push(struct db_writer *w, const struct db_event *ev);

/* Queues an event with a text payload (markers, serial lines); text is copied. */
int db_writer_push_text(struct db_writer *w, const struct db_event *ev, const char *text);

/* Sets a run metadata key (qemu_version, cmdline, kernel_path, kernel_build_id,
 * probe, started_at, outcome, ...); value is copied. Replaces an earlier value. */
int db_writer_set_meta(struct db_writer *w, const char *key, const char *value);

/* Records a symbol (for the symbols table, used by readers to symbolize). */
int db_writer_add_symbol(struct db_writer *w, uint64_t addr, uint64_t size, const char *name);

/* Names a thread or lock explicitly (overrides the namer). A thread is named
 * in its newest row (see db_writer_name_thread). */
int db_writer_name(struct db_writer *w, int is_lock, uint64_t addr, const char *name);
/* Names thread (addr, tid), creating its row if needed; tid -1 = the newest
 * row of addr. A thread is renamed whenever this gives it a new name. */
int db_writer_name_thread(struct db_writer *w, uint64_t addr, int32_t tid, const char *name);
/* Names the newest instance of the lock at addr. */
int db_writer_name_lock(struct db_writer *w, uint64_t addr, const char *name);

/* Counters, readable at any time from any thread. cpu_ns: the CPU time the
 * writer thread has used so far (what recording costs beside the vCPUs). */
struct db_writer_stats {
	uint64_t queued, written, dropped;
	uint64_t cpu_ns;
};
void db_writer_stats(struct db_writer *w, struct db_writer_stats *st);

/* Drains the queue, writes the final metadata (events_total, dropped),
 * commits, stops the thread and frees w. Returns the first error met. No
 * push or setter may run concurrently with or after it. */
int db_writer_close(struct db_writer *w, char **err);

/* Sets run metadata in an existing, closed trace (the CLI records the outcome,
 * QEMU version and command line after QEMU has exited). */
int db_update_meta(const char *path, const char *key, const char *value, char **err);

/* ---------------------------------------------------------------- reader */

/* A reader, its cursors and the strings it hands out are used by one thread
 * at a time; threads that read in parallel open a reader each. */
struct db_reader;

/* Opens a trace read-only. Refuses: a missing file (DB_E_IO), a non-SQLite or
 * damaged file (DB_E_CORRUPT), a file without the krewind schema, with a
 * newer DB_SCHEMA_VERSION or with schema version 1 (no context, IF or lock
 * flavors: "re-record it") (DB_E_SCHEMA), each with a clear message. Several
 * readers may open the same trace at once, also while a writer appends. */
int db_reader_open(const char *path, struct db_reader **out, char **err);
void db_reader_close(struct db_reader *r);

/* Metadata value for key, or NULL. The string is owned by r (valid until close). */
const char *db_meta(struct db_reader *r, const char *key);

/* Number of events of each kind: counts[kind] for kind 1..DB_KIND_MAX; counts[0] = total. */
int db_count_by_kind(struct db_reader *r, int64_t counts[DB_KIND_MAX + 1], char **err);

/* Name of a thread or lock address ("" if none known); owned by r. A thread
 * address reused by several threads (tids) gives the newest one's name, a lock
 * address the newest instance's. */
const char *db_thread_name(struct db_reader *r, uint64_t addr);
const char *db_lock_name(struct db_reader *r, uint64_t addr);
/* Name of thread (addr, tid) as in db_event.thread/.tid; tid -1: as
 * db_thread_name. "" if none known; owned by r. */
const char *db_thread_name_tid(struct db_reader *r, uint64_t addr, int32_t tid);
/* The name of the thread at addr as of event id: the one that runs there
 * first after it (a switch's incoming thread, where the address was reused
 * by several threads); db_thread_name when the address has one thread.
 * "" if none known; owned by r. */
const char *db_thread_name_after(struct db_reader *r, uint64_t addr, int64_t id);

/* Lock class (of the newest instance at addr): the lock's static symbol (+
 * offset inside it), or "alloc@<site symbol+off>" for locks initialised at
 * run time, or the address in hex; owned by r. */
const char *db_lock_class(struct db_reader *r, uint64_t addr);

/* Symbolizes a guest address with the recorded symbols: writes "func+0x1c"
 * (or "0x..." if unknown) into buf. Returns buf. */
char *db_symbolize(struct db_reader *r, uint64_t addr, char *buf, size_t size);

/* Threads and locks seen in the trace: one entry per thread (address, tid)
 * and per lock instance, in the order they appeared. tid -1: not known;
 * instance: 0, then 1, 2, ... for each re-initialisation of the address;
 * init_site: the lock_init's call site (0 if none); caller: the call site
 * of the instance's first lock event (0 if none). switches_in counts the
 * switches to the address (all its tids). */
struct db_thread_info { uint64_t addr; const char *name; int64_t switches_in; int32_t tid; };
struct db_lock_info {
	uint64_t addr; const char *name; const char *class_name; const char *type; int64_t acquisitions;
	uint32_t instance; uint64_t init_site, caller;
};
/* Arrays owned by r. */
int db_threads(struct db_reader *r, const struct db_thread_info **out, size_t *n, char **err);
int db_locks(struct db_reader *r, const struct db_lock_info **out, size_t *n, char **err);

/* Event selection; zero-initialise, then set what you need. */
struct db_filter {
	uint32_t kinds;        /* bit (1 << kind); 0 = all kinds */
	uint64_t thread;       /* 0 = any */
	int32_t tid;           /* with thread and by_tid: only that kernel thread id there */
	uint8_t by_tid;        /* (a task struct reused by several threads) */
	uint64_t obj;          /* 0 = any */
	int64_t from_id, to_id; /* inclusive; 0 = unbounded */
	uint64_t from_icount, to_icount; /* inclusive; to_icount 0 = unbounded */
	int64_t limit;         /* 0 = no limit */
	int descending;        /* newest first */
};

/* A cursor streams events in id order (the order they happened, per vCPU in
 * icount order). Memory use is constant whatever the trace size. */
struct db_cursor;
int db_cursor_open(struct db_reader *r, const struct db_filter *f, struct db_cursor **out, char **err);
/* Returns 1 and fills *ev (and *text, owned by the cursor until the next call,
 * NULL if none) for the next event, 0 at the end, or a negative DB_E_* code. */
int db_cursor_next(struct db_cursor *c, struct db_event *ev, const char **text);
void db_cursor_close(struct db_cursor *c);

/* Fetches one event by id. Returns 1 found, 0 not found, < 0 error. */
int db_event_by_id(struct db_reader *r, int64_t id, struct db_event *ev, char **err);

/* Runs one read-only SQL statement (krewind sql). For each row, calls row()
 * with the column count, names and values (NULL for SQL NULL); a non-zero
 * return from row() stops the statement (db_sql still returns 0). A statement
 * that would write, more than one statement, and bad SQL are refused with
 * DB_E_ARG. */
typedef int (*db_row_fn)(void *ctx, int ncols, const char *const *names, const char *const *values);
int db_sql(struct db_reader *r, const char *sql, db_row_fn row, void *ctx, char **err);

#endif
