/*
 * internal.h - the analysis module's private state, shared by its files:
 * core.c (the per-event state machines), finish.c (end-of-trace checks and
 * the hang diagnosis), report.c (findings, names, JSON) and run.c (the
 * db_reader driver). Not part of the public API.
 *
 * Memory: every table here grows with the number of distinct threads, locks,
 * lock classes, order edges, functions and finding sites, never with the
 * number of events.
 */
#ifndef KREWIND_ANALYSIS_INTERNAL_H
#define KREWIND_ANALYSIS_INTERNAL_H

#include <stdarg.h>
#include <stdint.h>

#include "analysis/analysis.h"

#define IRQL_PASSIVE 0
#define IRQL_DISPATCH 2
#define IRQL_UNKNOWN (-1)
#define FIRST_INTERRUPT_VECTOR 32
#define SPURIOUS_VECTOR 0xff

/* Open-addressing map from a 64-bit key to a 32-bit index. */
struct u64map {
	uint64_t *keys;
	uint32_t *vals; /* UINT32_MAX = empty slot */
	size_t cap, n;
};
/* Returns 1 and sets *val if key is present, else 0. */
int u64map_get(const struct u64map *m, uint64_t key, uint32_t *val);
/* Inserts or replaces; returns 0 or ANALYSIS_E_NOMEM. */
int u64map_put(struct u64map *m, uint64_t key, uint32_t val);
void u64map_free(struct u64map *m);

/* Grows *arr (element size elem) so that it holds at least need elements.
 * Returns 0 or ANALYSIS_E_NOMEM (then *arr is unchanged). */
int grow(void **arr, size_t *cap, size_t need, size_t elem);

/* What one event looked like, kept to cite it in a finding later. */
struct site {
	int64_t id;
	uint64_t icount, pc, thread, lock;
	uint16_t vcpu;
	int8_t irql;    /* IRQL_UNKNOWN if unknown */
	int16_t vector; /* innermost trap vector, -1 outside traps */
};

/* Function classes recognised from the symbol of a pc. */
enum fn_class {
	FN_OTHER = 0,
	FN_LOWER_IRQL,  /* KeLowerIrql, KfLowerIrql */
	FN_RAISE_IRQL,  /* KeRaiseIrql, KfRaiseIrql, KeRaiseIrqlToDpcLevel */
	FN_SPIN_RAISE,  /* KeAcquireSpinLock[RaiseToDpc], KeAcquireInStackQueuedSpinLock */
	FN_SPIN_DPC,    /* KeAcquireSpinLockAtDpcLevel, KeAcquireInStackQueuedSpinLockAtDpcLevel */
	FN_SWAP,        /* KiSwapContext (or any *SwapContext) */
};

struct function {
	char *name;     /* text of the symbol before '+' ("" if none) */
	enum fn_class cls;
};

struct lock_class {
	char *name;
	int irq_irql;             /* highest IRQL at which it was acquired inside an interrupt, -1 none */
	struct site irq_site;
	int min_irql;             /* lowest IRQL at which it was held, 99 none */
	struct site min_site;
};

struct lock {
	uint64_t addr;
	uint32_t cls;
	uint8_t is_mutex;
	uint32_t holder;          /* thread index + 1, 0 = free */
	uint32_t depth;           /* mutex recursion count */
	struct site acq;          /* the acquisition that made holder own it */
};

/* A lock a thread holds. ctx identifies the context it was taken in: 0 at
 * thread level, else the id of the trap event of the innermost open frame. */
struct held {
	uint32_t lock;
	int64_t ctx;
	struct site acq;
};

/* An open trap frame on a thread's stack (interrupts run on the interrupted
 * thread's stack, so frames move with the thread across switches). */
struct frame {
	int vector;
	struct site trap;
	int eoi;                  /* an EOI was sent inside this frame */
	struct site eoi_site;
	int saved_try;            /* the thread's pending try before the trap */
	uint32_t saved_try_lock;
	struct site saved_try_site;
};

struct thread {
	uint64_t addr;            /* guest address, or a pseudo key for "no thread" */
	struct held *held;
	size_t n_held, cap_held;
	struct frame *frames;
	size_t n_frames, cap_frames;
	int has_try;              /* a spinlock try without its acquisition (yet) */
	uint32_t try_lock;
	struct site try_site;
	int has_wait;             /* a dispatcher wait that has not returned (yet) */
	uint64_t wait_obj;
	struct site wait_site;
	int wait_irql;            /* IRQL the wait was called at */
	size_t wait_frames;       /* frames open when it was called */
	int running;
	int out_irql;             /* IRQL when last switched out, IRQL_UNKNOWN if never */
	int out_waited;           /* it was switched out blocked in a wait (out_irql = wait IRQL) */
	struct site out_site;
	int resuming;             /* switched in, resume IRQL not settled yet */
	uint32_t resume_fn;       /* function of the switch event */
	size_t resume_frames;     /* frames open when switched in */
	struct site in_site;
	struct site last;         /* its last event */
	int seen;
};

/* An interrupt frame left open above DISPATCH_LEVEL, after its EOI, by a
 * thread switched out inside it (eoi-before-switch): the vector can now be
 * delivered again on this CPU while that handler has not finished. */
struct stale_frame {
	int vector;
	struct site trap, eoi;
};
#define MAX_STALE_FRAMES 8

struct vcpu {
	int irql;
	struct stale_frame stale[MAX_STALE_FRAMES];
	size_t n_stale;
	int64_t irql_violation_id; /* last IRQL event judged a raise/lower violation */
	uint32_t irql_violation_fn;
	int64_t irql_violation_a, irql_violation_b;
	int64_t last_irql_id;      /* last IRQL event on this vCPU */
	uint32_t thread;          /* current thread index + 1, 0 none */
	uint64_t thread_addr;
	struct site last;
	int seen;
};

/* Per interrupt vector: EOI bookkeeping for the missing-EOI rule. */
struct vector_stats {
	uint64_t with_eoi, without_eoi;
	struct site first_noeoi_trap, first_noeoi_iret;
	struct site last_noeoi_trap, last_noeoi_iret;
	struct site last_trap;
};

struct edge {
	uint32_t from, to;        /* lock classes */
	struct site held;         /* where `from` was acquired */
	struct site acq;          /* where `to` was acquired (or tried) while `from` was held */
};

struct analysis {
	struct analysis_names names;
	int error;                /* sticky: first ANALYSIS_E_* met while feeding */
	int finished;             /* analysis_finish ran: no more events */
	int64_t last_id, events;

	struct u64map thread_map; /* addr -> index */
	struct thread *threads;
	size_t n_threads, cap_threads;

	struct u64map lock_map;   /* addr -> index */
	struct lock *locks;
	size_t n_locks, cap_locks;

	struct lock_class *classes;
	size_t n_classes, cap_classes;
	struct u64map class_map;  /* hash of name -> index (chained by probing names) */

	struct u64map edge_map;   /* from << 32 | to -> index */
	struct edge *edges;
	size_t n_edges, cap_edges;

	struct u64map pc_map;     /* pc -> function index */
	struct function *functions;
	size_t n_functions, cap_functions;

	struct vcpu *vcpus;
	size_t n_vcpus;

	struct vector_stats vectors[256];
	uint64_t eoi_events;      /* EOIs seen at all: the tracer can see them */

	int have_ebs;             /* the last eoi-before-switch seen: its eoi and switch */
	struct site ebs_eoi, ebs_switch;

	struct u64map finding_map; /* dedup key -> finding index */
	struct analysis_finding *findings;
	size_t n_findings, cap_findings;
	size_t *cap_steps;        /* per finding: capacity of its steps array */
};

/* core.c */
uint32_t function_of(struct analysis *a, uint64_t pc);
int effective_irql(const struct analysis *a, const struct thread *t, int irql);

/* report.c */
uint64_t hash_mix(uint64_t h, uint64_t v);
/* The finding for key, created (count 0, no steps) if new; *is_new says which.
 * NULL on allocation failure (a->error set). */
struct analysis_finding *finding_get(struct analysis *a, enum analysis_kind kind, uint64_t key, int *is_new);
/* Appends a step made from s; text is printf-formatted. */
void finding_step(struct analysis *a, struct analysis_finding *f, const char *role, const struct site *s,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void finding_title(struct analysis *a, struct analysis_finding *f, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void finding_explain(struct analysis *a, struct analysis_finding *f, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Sets the finding's replay target (event_id/icount/vcpu) to s. */
void finding_target(struct analysis_finding *f, const struct site *s);
const char *class_name(const struct analysis *a, uint32_t cls);
/* Copy of the thread's name, or "thread 0x..." when unnamed; caller frees. */
char *thread_label(struct analysis *a, uint64_t thread);
char *xstrdup(struct analysis *a, const char *s);
char *xasprintf(struct analysis *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Fills lock_classes/threads, sorts the findings; moves them into rep. */
int report_build(struct analysis *a, struct analysis_report *rep);
void finding_free(struct analysis_finding *f);

/* finish.c */
int finish_checks(struct analysis *a, const char *outcome, int *hung);

#endif
