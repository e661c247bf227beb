/*
 * internal.h - the analysis module's private state, shared by its files.
 *
 * One event walk (walk.c) keeps the per-vCPU state (IRQL, current thread,
 * last events) and the per-thread state (held locks, open trap frames, a
 * pending lock attempt or wait) and hands each event to the rule families:
 *
 *   state.c      maps, interning of threads, locks, lock classes, naming
 *   lockgraph.c  held locks, lock classes, the dependency graph, recursive
 *                locking, lock-order cycles (lockdep's first half)
 *   irqusage.c   irq usage bits per class, inconsistent usage and the
 *                irq-safe -> irq-unsafe propagation (lockdep's second half)
 *   atomic.c     IRQL and atomic-context rules (Driver Verifier's IRQL and
 *                spinlock rules, sleeping in atomic context, ownership)
 *   interrupt.c  the interrupt protocol: EOI, nesting, returns, deferred work
 *   hang.c       the hang diagnosis (wait-for graph), crashes, exit state
 *   report.c     findings, names, ranking, JSON
 *   run.c        the db_reader driver
 *
 * Memory: every table here grows with the number of distinct threads, locks,
 * lock classes, order edges, deferred items and finding sites, never with
 * the number of events. Nothing here knows a kernel's function names: what
 * an event means is its kind, lockop, ctx, flags and IRQL (db/db.h).
 */
#ifndef KREWIND_ANALYSIS_INTERNAL_H
#define KREWIND_ANALYSIS_INTERNAL_H

#include <stdarg.h>
#include <stdint.h>

#include "analysis/analysis.h"

#define IRQL_PASSIVE 0
#define IRQL_DISPATCH 2
#define IRQL_UNKNOWN (-1)
#define IRQL_ANY 16 /* an interrupt at an unknown level: any enabled state is below it */
#define FIRST_INTERRUPT_VECTOR 32
#define FIRST_DEVICE_VECTOR 0x30 /* below: where NT-style kernels put software interrupts */
#define SPURIOUS_VECTOR 0xff
#define IRQL_EV_CR8 0   /* DB_IRQL obj: a mov to CR8 */
#define IRQL_EV_RAISE 1 /* DB_IRQL obj: a probed raise call (a = current, b = asked for) */
#define IRQL_EV_LOWER 2 /* DB_IRQL obj: a probed lower call */
#define NO_THREAD_BASE 0xffffffffffff0000ULL /* pseudo thread keys: one per vCPU */

/* Open-addressing map from a 64-bit key to a 32-bit index. */
struct u64map {
	uint64_t *keys;
	uint32_t *vals; /* UINT32_MAX = empty slot */
	size_t cap, n;
};
int u64map_get(const struct u64map *m, uint64_t key, uint32_t *val);
int u64map_put(struct u64map *m, uint64_t key, uint32_t val); /* 0 or ANALYSIS_E_NOMEM */
void u64map_free(struct u64map *m);

/* Grows *arr (element size elem) to hold at least need elements. */
int grow(void **arr, size_t *cap, size_t need, size_t elem);

/* What one event looked like, kept to cite it in a finding later. */
struct site {
	int64_t id;
	uint64_t icount, pc, caller, thread, lock;
	int32_t tid;    /* the kernel's thread id then, -1 unknown */
	uint16_t vcpu;
	int8_t irql;    /* IRQL_UNKNOWN if unknown */
	int16_t vector; /* innermost trap vector, -1 outside traps */
	uint8_t ctx;    /* enum db_ctx */
	uint8_t flags;  /* enum db_flag */
};

/* Irq usage of a lock class (lockdep's usage bits): USED_IN_x = acquired in
 * context x; ENABLED_x = held while x could interrupt. Each bit exists for
 * write (exclusive) and read (shared) acquisitions: index = bit * 2 + read. */
enum usage_bit {
	USED_IN_HARDIRQ = 0,
	USED_IN_SOFTIRQ = 1,
	ENABLED_HARDIRQ = 2,
	ENABLED_SOFTIRQ = 3,
};
#define N_USAGE 8
#define USAGE(bit, read) ((bit) * 2 + (read))
/* Two views of usage: from the trace's ctx and IF (schema 2), and a legacy
 * view for traces without them (hardirq = inside an interrupt frame above
 * DISPATCH; held at an IRQL = enabled for interrupts above it). */
enum { VIEW_CTX = 0, VIEW_LEGACY = 1, N_VIEWS = 2 };
struct usage {
	int set;
	int level;        /* USED_IN: the highest IRQL of use (IRQL_ANY unknown);
	                     ENABLED: the lowest IRQL held at (0 unknown) */
	struct site site; /* where that level was first seen */
};

/* Two instances of one class nested: outer held when inner was asked for,
 * each in its generation then (struct lock's gen). */
struct nesting {
	struct site outer, inner;
	uint32_t outer_gen, inner_gen;
};

struct lock_class {
	char *name;
	int sleeping;             /* a class of sleeping locks: never the same class as a spinlock
	                             of the same name (a semaphore and its own spinlock) */
	int by_caller;            /* named by the call site of a first acquisition (lock@), not
	                             by a symbol or an init site: a guess at the real class */
	struct usage use[N_VIEWS][N_USAGE];
	uint64_t self_nested;     /* instances of it nested in each other (without subclass) */
	struct site self_outer, self_inner; /* the first such nesting */
	int self_reported;        /* reported as an instance inversion already */
	uint32_t inv_unproven;    /* inversions between instances never seen initialised */
	struct nesting inv_other; /* the first: one order, */
	struct site inv_held, inv_at; /* then the other (held, asked for) */
	uint64_t inv_thread;      /* by this thread */
	int32_t inv_tid;
};

struct lock {
	uint64_t addr;
	uint32_t cls;             /* class of the instance (subclass 0) */
	uint8_t sleeping;         /* a mutex, rwsem or semaphore */
	uint8_t owned;            /* ownership is checked on release (not sem, not shared) */
	uint8_t inited;           /* a lock_init named its class */
	uint8_t acquired_once;    /* the trace showed an acquisition of it */
	uint32_t gen;             /* instance generation: every lock_init of the address starts a
	                             new one (freed memory reused by another object) */
	uint32_t holder;          /* exclusive holder: thread index + 1, 0 = none */
	uint32_t readers;         /* shared holders */
	uint32_t depth;           /* mutex recursion count */
	struct site acq;          /* the acquisition that made holder own it */
	uint32_t handoff_to;      /* thread + 1 switched in while the holder held it */
	int64_t handoff_switch;   /* that switch's event id */
};

/* A lock a thread holds. ctx identifies the context it was taken in: 0 at
 * thread level, else the id of the trap event of the innermost open frame. */
struct held {
	uint32_t lock, cls;       /* cls includes the nesting subclass */
	int64_t ctx;
	uint8_t flavor;           /* enum db_lock_flavor */
	uint8_t irqop;            /* enum db_lock_irq of the acquire */
	uint8_t shared;           /* a read acquisition */
	uint8_t trylock;
	uint8_t dispatch;         /* an NT DISPATCH spinlock (declared, or seen raising to DISPATCH) */
	uint8_t hard_on;          /* marked ENABLED_HARDIRQ already */
	int8_t old_irql;          /* IRQL before the acquire (what its release must restore) */
	struct site acq;
};

/* An open trap frame on a thread's stack (interrupts run on the interrupted
 * thread's stack, so frames move with the thread across switches). */
struct frame {
	int vector;
	int soft;                 /* a software trap (int N, syscall) */
	int irql;                 /* IRQL of the interrupted code */
	int if_on;                /* IF of the interrupted code */
	struct site trap;
	int eoi;
	struct site eoi_site;
	int lowered;              /* IRQL lowered below the vector's level before the EOI */
	int lowered_from, lowered_to;
	struct site lowered_site;
	int saved_try;
	uint32_t saved_try_lock;
	struct site saved_try_site;
};

struct thread {
	uint64_t addr;            /* guest address, or a pseudo key for "no thread" */
	struct held *held;
	size_t n_held, cap_held;
	struct frame *frames;
	size_t n_frames, cap_frames;
	int32_t tid;              /* the kernel's id of the thread last seen at addr, -1 unknown */
	int has_try;              /* a blocking attempt without its acquisition (yet) */
	uint32_t try_lock;
	struct site try_site;
	int has_wait;             /* a wait that has not returned (yet) */
	uint64_t wait_obj;
	struct site wait_site;
	int wait_irql;
	size_t wait_frames;
	int running;
	int out_irql;             /* IRQL when last switched out, IRQL_UNKNOWN if never */
	int out_waited;
	struct site out_site;
	int resuming;
	uint32_t resume_fn;       /* function of the switch event: its CR8 writes restore, not run */
	size_t resume_frames;
	struct site in_site;
	int bh_depth;             /* softirq-disabling acquisitions held */
	int restore_pending;      /* released a DISPATCH spinlock: the next lower is its restore */
	int restore_want;
	uint32_t restore_cls;
	struct site restore_site;
	struct site last;
	int seen;
};

struct stale_frame {
	int vector;
	struct site trap, eoi;
};
#define MAX_STALE_FRAMES 8
#define MAX_HANDOFF 8
#define LAST_EVENTS 4

struct vcpu {
	int irql;
	struct stale_frame stale[MAX_STALE_FRAMES];
	size_t n_stale;
	int64_t irql_violation_id;
	uint32_t irql_violation_fn;
	int64_t irql_violation_a, irql_violation_b;
	int64_t last_irql_id;
	uint32_t thread;          /* current thread index + 1, 0 none */
	uint64_t thread_addr;
	uint32_t handoff[MAX_HANDOFF]; /* spinlocks the last switch's outgoing thread held */
	uint32_t handoff_owner[MAX_HANDOFF];
	int64_t handoff_acq[MAX_HANDOFF];
	size_t n_handoff;
	struct site handoff_switch;
	struct site last_exception; /* the last exception trap (vector < 32) */
	struct site ring[LAST_EVENTS]; /* its last events, for crash reports */
	uint8_t ring_kind[LAST_EVENTS];
	size_t ring_n;
	uint64_t dispatch_drops;  /* IRQL drops below DISPATCH, for lost-deferred-work */
	struct site last;
	int seen;
};

struct vector_stats {
	uint64_t with_eoi, without_eoi;
	struct site first_noeoi_trap, first_noeoi_iret;
	struct site last_noeoi_trap, last_noeoi_iret;
	struct site last_trap;
};

/* A dependency: class `to` acquired while `from` was held. types: bit
 * (from_shared * 2 + to_recursive_read) for each way it was seen. */
struct edge {
	uint32_t from, to;
	uint8_t types;
	struct site held;
	struct site acq;
};
#define EDGE_TYPE(shared, rec) (1u << ((shared) * 2 + (rec)))

/* A queued deferred work item (DPC, tasklet). */
struct deferred {
	uint64_t item;
	int pending;
	struct site queued;
	uint64_t drops_at_queue;
};

struct function {
	char *name;
};

struct analysis {
	struct analysis_names names;
	int error;
	int finished;
	int64_t last_id, events;
	int if_seen;              /* some event had DB_F_IF: the trace carries IF (schema 2) */
	int ctx_seen;             /* some event had a non-process ctx */
	int irql_seen;            /* the kernel keeps an IRQL in CR8 (an irql event, or a lock above 0) */
	int defer_items_known;    /* some defer_run named its item */
	int sched_seen;           /* a context switch happened: the kernel is past early boot */
	int subclass_seen;        /* some acquisition declared a nesting subclass */

	struct u64map thread_map;
	struct thread *threads;
	size_t n_threads, cap_threads;

	struct u64map lock_map;   /* spinlocks and rwlocks: addr -> index */
	struct u64map sleep_map;  /* sleeping locks: addr -> index (a semaphore's own spinlock
	                             lives at its address: two locks, as for lockdep) */
	struct lock *locks;
	size_t n_locks, cap_locks;

	struct lock_class *classes;
	size_t n_classes, cap_classes;
	struct u64map class_map;

	struct u64map edge_map;
	struct edge *edges;
	size_t n_edges, cap_edges;

	struct u64map pc_map;
	struct function *functions;
	size_t n_functions, cap_functions;

	struct u64map signal_map; /* object -> thread index + 1 that last signalled it */

	struct u64map nesting_map; /* outer lock << 32 | inner lock -> nesting index */
	struct nesting *nestings;
	size_t n_nestings, cap_nestings;

	struct u64map defer_map;
	struct deferred *defers;
	size_t n_defers, cap_defers;

	struct vcpu *vcpus;
	size_t n_vcpus;

	struct vector_stats vectors[256];
	uint64_t eoi_events;

	int have_ebs;
	struct site ebs_eoi, ebs_switch;

	int have_crash;
	struct site crash_site;

	struct analysis_lost *lost; /* the DB_MARK_LOST markers seen, oldest first */
	size_t n_lost, cap_lost;

	struct u64map finding_map;
	struct analysis_finding *findings;
	size_t n_findings, cap_findings;
	size_t *cap_steps;
};

/* ---------------------------------------------------------------- state.c */
void fail(struct analysis *a, int rc);
uint64_t hash_str(const char *s);
uint32_t function_of(struct analysis *a, uint64_t pc);
uint32_t class_intern(struct analysis *a, const char *name, int sleeping);
/* The spinlock (sleeping = 0) or sleeping lock at addr, created on first
 * sight; NULL on allocation failure. */
struct lock *lock_get(struct analysis *a, uint64_t addr, int sleeping, const struct site *s);
/* Looks a lock up without creating it: 1 and *idx if known. */
int lock_find(const struct analysis *a, uint64_t addr, int sleeping, uint32_t *idx);
void lock_init_event(struct analysis *a, const struct db_event *ev, const struct site *s);
uint32_t thread_index(struct analysis *a, uint64_t addr);
uint64_t thread_key(uint64_t thread, uint16_t vcpu);
struct vcpu *vcpu_get(struct analysis *a, uint16_t v);
int64_t context_of(const struct thread *t);
int innermost_vector(const struct thread *t);
/* In an interrupt frame (vector >= 32, not a software trap). */
int in_interrupt(const struct thread *t);
int effective_irql(const struct thread *t, int irql);
int is_sleeping_flavor(int flavor);
struct held *held_find(struct thread *t, uint32_t lock);
/* Where a site's code is, for people: the caller when known, else the pc. */
char *where_of(struct analysis *a, const struct site *s, char *buf, size_t size);

/* ------------------------------------------------------------ lockgraph.c */
/* A blocking attempt (or an acquisition without one): edges, recursion. */
void graph_attempt(struct analysis *a, struct thread *t, struct lock *l, const struct db_event *ev,
		   const struct site *s);
/* t now holds l (acquire, trylock success, mutex grant). */
struct held *graph_hold(struct analysis *a, struct thread *t, struct lock *l, const struct db_event *ev,
			const struct site *s);
/* Dependencies from what t holds (in its current context) into l. */
void add_edges(struct analysis *a, struct thread *t, const struct lock *l, uint32_t cls, int rec_read,
	       const struct site *s);
void held_remove(struct thread *t, uint32_t lock);
uint32_t held_class(struct analysis *a, const struct lock *l, const struct db_event *ev);
int lock_order_cycles(struct analysis *a);
/* Recursive locking by class, where the kernel declares nesting subclasses. */
void recursive_locking_finish(struct analysis *a);
/* The dependency graph in CSR form: edges from class c are
 * order[start[c] .. start[c+1]). The caller frees start and order. */
struct graph {
	size_t *start;
	uint32_t *order;
};
int graph_build(struct analysis *a, struct graph *g);

/* ------------------------------------------------------------- irqusage.c */
void usage_attempt(struct analysis *a, struct thread *t, uint32_t cls, const struct db_event *ev, int irql,
		   const struct site *s);
void usage_acquire(struct analysis *a, struct thread *t, struct held *h, const struct db_event *ev, int irql);
void usage_event(struct analysis *a, struct thread *t, const struct db_event *ev, const struct site *s, int irql);
void irq_usage_checks(struct analysis *a);

/* --------------------------------------------------------------- atomic.c */
void atomic_irql(struct analysis *a, struct vcpu *v, struct thread *t, const struct db_event *ev,
		 const struct site *s);
void atomic_acquire(struct analysis *a, struct thread *t, struct held *h, const struct db_event *ev,
		    const struct site *s, int irql);
void atomic_attempt(struct analysis *a, struct thread *t, struct lock *l, const struct db_event *ev,
		    const struct site *s, int irql);
/* t releases the lock owner held (h: owner's held entry, NULL if none). */
void atomic_release(struct analysis *a, struct thread *t, struct thread *owner, struct held *h,
		    const struct db_event *ev, const struct site *s);
void atomic_sleep(struct analysis *a, struct thread *t, const struct db_event *ev, const struct site *s,
		  int irql, const char *what);
void atomic_switch(struct analysis *a, struct vcpu *v, struct thread *old, uint32_t new_index,
		   const struct site *s);
void atomic_finish(struct analysis *a);
void release_rule(struct analysis *a, enum analysis_kind kind, struct thread *t, struct lock *l,
		  const struct site *s);
void settle_resume(struct analysis *a, struct thread *t, struct vcpu *v, const struct db_event *ev,
		   const struct site *s);

/* ------------------------------------------------------------ interrupt.c */
void on_trap(struct analysis *a, struct vcpu *v, struct thread *t, const struct db_event *ev, struct site *s);
void on_iret(struct analysis *a, struct vcpu *v, struct thread *t, const struct db_event *ev,
	     const struct site *s);
void on_eoi(struct analysis *a, struct thread *t, const struct site *s);
void interrupt_irql(struct analysis *a, struct thread *t, const struct db_event *ev, const struct site *s);
void interrupt_switch(struct analysis *a, struct vcpu *v, struct thread *old, uint64_t old_addr,
		      uint64_t new_addr, const struct site *s);
void on_defer(struct analysis *a, struct vcpu *v, const struct db_event *ev, const struct site *s);
int needs_eoi(const struct analysis *a, int v, int hung);
void interrupt_finish(struct analysis *a, int hung);

/* ----------------------------------------------------------------- hang.c */
void on_crash(struct analysis *a, struct vcpu *v, const struct db_event *ev, const struct site *s,
	      const char *text);
int finish_checks(struct analysis *a, const char *outcome, int *hung);

/* --------------------------------------------------------------- report.c */
uint64_t hash_mix(uint64_t h, uint64_t v);
struct analysis_finding *finding_get(struct analysis *a, enum analysis_kind kind, uint64_t key, int *is_new);
void finding_step(struct analysis *a, struct analysis_finding *f, const char *role, const struct site *s,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void finding_title(struct analysis *a, struct analysis_finding *f, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void finding_explain(struct analysis *a, struct analysis_finding *f, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void finding_target(struct analysis_finding *f, const struct site *s);
const char *class_name(const struct analysis *a, uint32_t cls);
/* thread's name as it was when it ran with kernel thread id tid (-1: the
 * last tid the walk saw at that address). */
char *thread_label(struct analysis *a, uint64_t thread, int32_t tid);
char *xstrdup(struct analysis *a, const char *s);
char *xasprintf(struct analysis *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int report_build(struct analysis *a, struct analysis_report *rep);
void finding_free(struct analysis_finding *f);

#endif
