/*
 * analysis.h - the checks behind `krewind check`.
 *
 * The analyses read a trace once, in id order, through state machines whose
 * memory is proportional to the threads, locks, lock classes and lock-order
 * edges seen, never to the number of events. They can be driven two ways:
 *
 *   - analysis_run(): opens cursors on a db_reader and does everything;
 *   - analysis_new() + analysis_feed() per event + analysis_finish(): for
 *     callers (the unit and property tests) that hold events in memory.
 *
 * The result is a report: a ranked, deduplicated array of findings. Each
 * finding has a stable kind id and name, a severity and rank, a title, a
 * paragraph a person can act on, and the steps (events) that show it: event
 * ids and icounts to replay to, code locations already symbolized, the locks
 * (by class) and threads (by name) involved. For a hang the steps are the
 * causal chain, oldest first. docs/checks.md documents every rule: what it
 * detects, where it comes from (lockdep, Driver Verifier), and its known false
 * positives and negatives.
 *
 * JSON: this module renders the report as JSON (analysis_report_json) so the
 * shape is defined in one place, next to the structures; the CLI prints text
 * itself from the structures and calls analysis_report_json for --json.
 *
 * Error convention as in db/db.h: 0 or a negative ANALYSIS_E_* code, and *err
 * (when not NULL) gets a malloc'd one-line message the caller prints and frees.
 */
#ifndef KREWIND_ANALYSIS_H
#define KREWIND_ANALYSIS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "db/db.h"

enum analysis_error {
	ANALYSIS_OK = 0,
	ANALYSIS_E_DB = -1,    /* reading the trace failed (message from db/) */
	ANALYSIS_E_NOMEM = -2,
	ANALYSIS_E_ARG = -3,   /* bad argument (NULL, event out of order, ...) */
	ANALYSIS_E_IO = -4,    /* writing the JSON failed */
};

/*
 * Finding kinds. The numbers and names are stable (scripts and --json use the
 * names); new kinds are appended. analysis_kind_rank orders them (lower =
 * more important; docs/checks.md lists the ranks).
 */
enum analysis_kind {
	ANALYSIS_HANG = 1,             /* "hang": the run hung; causal chain, spinners, wait-for cycle */
	ANALYSIS_LOCK_ORDER,           /* "lock-order": cycle in the lock-class order graph */
	ANALYSIS_IRQ_UNSAFE_LOCK,      /* "irq-unsafe-lock": lock taken in an interrupt and elsewhere below its IRQL */
	ANALYSIS_EOI_BEFORE_SWITCH,    /* "eoi-before-switch": EOI, then a switch before the trap returned */
	ANALYSIS_MISSING_EOI,          /* "missing-eoi": an interrupt returned without EOI */
	ANALYSIS_NESTED_VECTOR,        /* "nested-vector": a vector delivered while its own frame is open */
	ANALYSIS_RECURSIVE_SPINLOCK,   /* "recursive-spinlock": a thread tries a spinlock it holds */
	ANALYSIS_IRQL_LOWER_RAISES,    /* "irql-lower-raises": a probed lower call raised the IRQL */
	ANALYSIS_IRQL_RAISE_LOWERS,    /* "irql-raise-lowers": a probed raise call lowered it */
	ANALYSIS_IRQL_LEAK_SWITCH,     /* "irql-leak-across-switch": a thread resumes at another IRQL */
	ANALYSIS_SPINLOCK_ABOVE_DISPATCH, /* "spinlock-above-dispatch": a raise-dispatch acquire above DISPATCH */
	ANALYSIS_SPINLOCK_BELOW_DISPATCH, /* "spinlock-below-dispatch": an at-dispatch acquire below DISPATCH */
	ANALYSIS_WAIT_AT_DISPATCH,     /* "wait-at-dispatch": wait at IRQL >= DISPATCH with a non-zero timeout */
	ANALYSIS_RELEASE_NOT_OWNER,    /* "release-not-owner": a lock released by a thread that does not hold it */
	ANALYSIS_RELEASE_NOT_HELD,     /* "release-not-held": a lock released while nobody holds it */
	ANALYSIS_LOCK_HELD_AT_EXIT,    /* "lock-held-at-exit": still held when the trace ends */
	ANALYSIS_WAIT_NEVER_SATISFIED, /* "wait-never-satisfied": a wait that never returned (hung runs) */
	/* Issue #13; ranked by analysis_kind_rank, not by number. */
	ANALYSIS_CRASH,                /* "crash": bugcheck, panic or triple fault (outcome "reset") */
	ANALYSIS_IRQ_LOCK_ORDER,       /* "irq-lock-order": an irq-safe class ordered before an irq-unsafe one */
	ANALYSIS_RECURSIVE_LOCKING,    /* "recursive-locking": two instances of one class nested */
	ANALYSIS_SLEEP_IN_ATOMIC,      /* "sleep-in-atomic": a sleep with a spinlock held, IRQs off, preemption
	                                  off or in interrupt context */
	ANALYSIS_SPINLOCK_ACROSS_SWITCH, /* "spinlock-across-switch": switched out holding a spinlock that the
	                                  thread switched in did not release */
	ANALYSIS_SPINLOCK_RELEASE_IRQL, /* "spinlock-release-irql": a DISPATCH spinlock released at another IRQL */
	ANALYSIS_SPINLOCK_RESTORE,     /* "spinlock-restore-mismatch": a release restores another IRQL than the
	                                  acquire raised from */
	ANALYSIS_SPINLOCK_HELD_BELOW_DISPATCH, /* "spinlock-held-below-dispatch": IRQL dropped below DISPATCH
	                                  while a DISPATCH spinlock is held */
	ANALYSIS_IRET_STATE,           /* "iret-state-mismatch": an interrupt returned at another IRQL or
	                                  interrupt flag than it interrupted */
	ANALYSIS_IRQL_LOWERED_BEFORE_EOI, /* "irql-lowered-before-eoi": an ISR lowered IRQL below its vector
	                                  before its EOI */
	ANALYSIS_SWITCH_BEFORE_EOI,    /* "switch-before-eoi": a context switch inside an interrupt before EOI */
	ANALYSIS_LOST_DEFERRED,        /* "lost-deferred-work": a DPC/tasklet queued and never run */
	ANALYSIS_KIND_MAX = ANALYSIS_LOST_DEFERRED,
};

enum analysis_severity {
	ANALYSIS_SEV_ERROR = 0,   /* a bug that happened or will happen (hang, cycle, protocol break) */
	ANALYSIS_SEV_WARNING = 1, /* a rule broken that may not have hurt in this run */
	ANALYSIS_SEV_NOTE = 2,    /* state left at the end of the trace, context for other findings */
};

/* Stable name of a kind ("lock-order", ...) or NULL; and back (0 if unknown). */
const char *analysis_kind_name(int kind);
int analysis_kind_from_name(const char *name);
/* Rank of a kind (0 = most important), -1 if unknown. */
int analysis_kind_rank(int kind);
/* "error", "warning", "note". */
const char *analysis_severity_name(int severity);

/* One event that belongs to a finding: a site, or a link of a causal chain.
 * Strings are owned by the report; never NULL ("" when unknown). */
struct analysis_step {
	const char *role;    /* static, one of: "held" (where a lock was acquired), "acquire"
	                        (a lock asked for / taken), "try", "release", "trap", "iret",
	                        "eoi", "switch", "switch-out", "switch-in", "resume", "irql",
	                        "wait", "spin" (an attempt that never succeeded), "last" (the
	                        last event of a CPU or thread, in hang findings) */
	char *text;          /* one line saying what happened, with names resolved */
	int64_t event_id;    /* 0 when the step is not one event */
	uint64_t icount;
	uint64_t pc;
	uint64_t caller;     /* the call site of a lock/wait/sleep event (0 unknown) */
	char *where;         /* the caller symbolized when known ("d_splice_alias+0x8c"), else the pc */
	uint16_t vcpu;
	uint64_t thread;     /* 0 if unknown */
	char *thread_name;
	uint64_t lock;       /* 0 if the step involves no lock or object */
	char *lock_class;    /* class of lock ("" if none) */
	int irql;            /* IRQL at the event, -1 if unknown */
	int vector;          /* innermost trap vector at the event, -1 outside traps */
};

struct analysis_thread_ref {
	uint64_t addr;
	char *name;          /* "" if unknown */
};

/* A stretch of events the tracer lost (its queue was full), from the
 * DB_MARK_LOST marker the tracer writes when the queue takes events again. */
struct analysis_lost {
	uint64_t events;              /* how many were lost */
	uint64_t from_icount, to_icount;
	int64_t event_id;             /* the marker */
};

struct analysis_finding {
	enum analysis_kind kind;
	const char *kind_name;        /* static, = analysis_kind_name(kind) */
	enum analysis_severity severity;
	int rank;                     /* analysis_kind_rank(kind): lower is more important */
	char *title;                  /* one line */
	char *explanation;            /* one paragraph: what, why it is a bug, what to do */
	uint64_t count;               /* occurrences merged into this finding (>= 1); for lock-order and
	                                 irq-lock-order the variants: other cycles / chains of the
	                                 same inversion */
	int64_t event_id;             /* the event to replay to (first occurrence's culprit) */
	uint64_t icount;              /* its icount */
	uint16_t vcpu;                /* its vCPU */
	struct analysis_step *steps;  /* sites / causal chain, oldest first */
	size_t n_steps;
	char **lock_classes;          /* distinct lock classes involved */
	size_t n_lock_classes;
	struct analysis_thread_ref *threads; /* distinct threads involved */
	size_t n_threads;
	const struct analysis_lost *lost; /* the last lost stretch that began before this finding's
	                                     last event (the lock and interrupt state it read may be
	                                     wrong: it may be an artifact of the loss), or NULL */
};

struct analysis_report {
	struct analysis_finding *findings; /* ranked: rank, then event_id */
	size_t n_findings;
	char *outcome;          /* the run's outcome metadata ("" if none) */
	int hung;               /* 1 when the run was judged hung (see docs/checks.md) */
	int cut;                /* 1 when the trace was cut: its writer never closed it
				 * (QEMU killed, or still recording), so the last
				 * events before the cut may be missing; set by analysis_run */
	uint64_t dropped;       /* events the trace lost: the lost stretches' sum, raised by the
				 * caller to the trace's `dropped` meta (analysis_run does) */
	struct analysis_lost *lost; /* the lost stretches, oldest first */
	size_t n_lost;
	int64_t events;         /* events analysed */
	int64_t last_event_id;
	uint64_t lock_classes, lock_order_edges, threads; /* sizes of the state kept */
};

void analysis_report_free(struct analysis_report *rep);

/*
 * How the analysis names things while it runs. Every callback may be NULL
 * (then: lock class = "0x<addr>", names = "", pc = "0x<pc>"). Returned strings
 * need only stay valid until the next call; the analysis copies what it keeps.
 * Names are only for people: what an event means comes from its kind, lockop,
 * ctx, flags and IRQL, never from a function's name. lock_class gives the
 * static identity of a lock (its symbol); a lock it cannot name ("0x..." or
 * an allocation site) is classed by its init site (lock_init) or else by the
 * call site of its first acquisition (docs/checks.md, "Lock classes").
 */
struct analysis_names {
	void *ctx;
	const char *(*lock_class)(void *ctx, uint64_t lock);
	const char *(*lock_name)(void *ctx, uint64_t lock);
	const char *(*thread_name)(void *ctx, uint64_t thread);
	/* optional: the name of the thread with that kernel thread id at that
	 * address (a task struct reused by another task); NULL: thread_name */
	const char *(*thread_name_tid)(void *ctx, uint64_t thread, int32_t tid);
	char *(*symbolize)(void *ctx, uint64_t pc, char *buf, size_t size);
};

/* ------------------------------------------------------------ streaming core */

struct analysis;

/* Creates an analysis. names is copied (its ctx must outlive the analysis). */
int analysis_new(const struct analysis_names *names, struct analysis **out, char **err);

/* Feeds one event. Events must come in id order (ids strictly increasing;
 * id 0 means "assign the next id"). ANALYSIS_E_ARG if out of order. */
int analysis_feed(struct analysis *a, const struct db_event *ev);
/* The same with the event's text (a bugcheck's panic text, a marker), or NULL. */
int analysis_feed_text(struct analysis *a, const struct db_event *ev, const char *text);

/* Ends the stream and builds the report. outcome is the run's outcome
 * ("pass", "fail", "bugcheck", "completed", "exit", "hang", "timeout",
 * "panic", "reset", ..., or NULL if unknown): "hang" and "timeout" make the
 * run hung; "pass", "fail", "bugcheck", "completed", "exit" (the guest
 * powered off) never are, nor are "panic" and "reset" (a guest panic or a
 * triple fault without a bugcheck event: a crash finding); other or unknown outcomes let the
 * evidence decide (a spinner or wait-for cycle at the end). *out is owned
 * by the caller (analysis_report_free); a must still be freed with
 * analysis_free and cannot be fed or finished again. */
int analysis_finish(struct analysis *a, const char *outcome, struct analysis_report **out, char **err);

void analysis_free(struct analysis *a);

/* ----------------------------------------------------------------- one call */

/* Runs every check over the trace open in r (outcome from db_meta(r,
 * "outcome")), naming with db_symbolize (code), db_lock_class (locks by their
 * static symbol), db_lock_name and db_thread_name. *out is owned by the
 * caller. Every command that numbers findings (check, report, replay --to
 * finding:N) goes through here, so finding N is the same finding in each. */
int analysis_run(struct db_reader *r, struct analysis_report **out, char **err);
/* The same, calling progress(ctx, events read so far, 0) every 4096 events
 * and progress(ctx, all events, 1) before the report is built. */
int analysis_run_progress(struct db_reader *r, void (*progress)(void *ctx, uint64_t events, int read_all), void *ctx,
			  struct analysis_report **out, char **err);

/* ---------------------------------------------------------------- rendering */

/*
 * Writes the report as one JSON object followed by a newline:
 *   {"outcome": str, "hung": bool, "cut": bool, "events": n, "dropped": n,
 *    "lost": [{"events": n, "from_icount": n, "to_icount": n, "event": id}...], "findings": [
 *     {"kind": "lock-order", "kind_id": 2, "severity": "error", "rank": 2,
 *      "title": str, "explanation": str, "count": n,
 *      "event": id, "icount": n, "vcpu": n,
 *      "lock_classes": [str...], "threads": [{"addr": "0x..", "name": str}...],
 *      "lost": {"events": n, "from_icount": n, "to_icount": n, "event": id} | null,
 *      "steps": [{"role": str, "text": str, "event": id, "icount": n, "vcpu": n,
 *                 "pc": "0x..", "caller": "0x..", "where": str, "thread": "0x..", "thread_name": str,
 *                 "lock": "0x..", "lock_class": str, "irql": n|null, "vector": n|null}...]}...]}
 * Addresses are hex strings (64-bit values do not survive JSON doubles).
 * Returns 0 or ANALYSIS_E_IO.
 */
int analysis_report_json(const struct analysis_report *rep, FILE *f);

#endif
