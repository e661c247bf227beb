/*
 * replay.h - recordings, QEMU process control, QMP, deterministic replay,
 * GDB and bisection.
 *
 * A recording is a directory (docs/architecture.md, "A recording directory").
 * Error convention as in db/db.h: 0 or a negative code; *err gets a malloc'd
 * one-line message the caller prints and frees.
 */
#ifndef KREWIND_REPLAY_H
#define KREWIND_REPLAY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum replay_error {
	REPLAY_OK = 0,
	REPLAY_E_IO = -1,     /* missing or unreadable file/directory */
	REPLAY_E_FORMAT = -2, /* manifest or QMP message that does not parse */
	REPLAY_E_QEMU = -3,   /* QEMU failed to start, died, or refused a command */
	REPLAY_E_ARG = -4,    /* bad argument */
	REPLAY_E_NOMEM = -5,
	REPLAY_E_TIMEOUT = -6,
	REPLAY_E_INTERRUPTED = -7, /* SIGINT/SIGTERM: children were stopped */
	REPLAY_E_TRUNCATED = -8,   /* JSON text that ends before the value does */
	REPLAY_E_EXISTS = -9,      /* refusing to overwrite an existing recording */
};

/* A recording as described by its manifest.json. All strings owned by the
 * struct; absent fields are NULL / 0. */
struct replay_recording {
	char *dir;           /* the recording directory */
	char *db_path;       /* dir/trace.db */
	char *name;          /* basename of dir */
	char *kernel;        /* dir/kernel.elf */
	char *symbols;       /* ELF with symbols: dir/symbols.elf or the kernel */
	char *probe;         /* dir/probe or NULL */
	char *replay_log;    /* dir/replay.bin or NULL if not recorded with rr */
	char *snapshot_image; /* dir/snap.qcow2 or NULL */
	char *scenario;      /* or NULL */
	char *append;        /* kernel command line */
	char *outcome;       /* "pass", "fail", "bugcheck", "completed", "exit", "reset",
	                      * "hang", "timeout", "panic", "killed", "error" */
	char *qemu_version;
	char *started_at;    /* ISO 8601 UTC */
	char **qemu_args;    /* argv as recorded (NULL-terminated), argv[0] = qemu binary */
	size_t n_qemu_args;
	int exit_status;     /* QEMU's exit status, -1 if killed */
	uint64_t icount_total;
	int64_t events_total;
	double wall_seconds;
	/* Added by the replay module: */
	char *serial_log;     /* dir/serial.log or NULL */
	char *kernel_source;  /* the kernel's path when it was recorded */
	char *kernel_sha256;
	char *krewind_version;
	char *outcome_detail; /* one line, e.g. "no new events or serial output for 5 s" */
	struct replay_count { char *kind; int64_t n; } *counts; /* events per kind */
	size_t n_counts;
	/* Added for large kernels (recording.c, "inputs" in the manifest): */
	struct replay_input *inputs; /* the files QEMU and the plugin read */
	size_t n_inputs;
	/* Added for SMP (smp.c): */
	char *mode;          /* "reexec": several vCPUs, re-executed (no replay log); NULL: QEMU rr or none */
	int vcpus;           /* -smp N; 0 when recorded before this field */
};

/* A file the recorded run read (kernel, symbols, initrd), kept in the
 * recording directory as `file`: a copy when small (<= REPLAY_COPY_MAX), else a
 * reflink, a hard link, or (other filesystem) a symlink to the original
 * ("reference"). The checksum makes a changed or missing original an error
 * before any replay; `krewind pack` turns links and references into copies. */
struct replay_input {
	char *file;       /* name in the recording directory: "kernel.elf", "symbols.elf", "initrd.img" */
	char *source;     /* absolute path of the original */
	char *sha256;
	char *build_id;   /* GNU build-id of an ELF, or NULL */
	int64_t size;
	int64_t mtime_ns; /* of the stored file (the original's for links and references) */
	char *stored;     /* "copy", "reflink", "hardlink" or "reference" */
};
#define REPLAY_COPY_MAX (32 << 20)

/* Stores source in r->dir as file (see struct replay_input) and adds it to
 * r->inputs. REPLAY_E_IO if source cannot be read or nothing can be stored. */
int replay_input_store(struct replay_recording *r, const char *source, const char *file, char **err);
/* Every input is there and unchanged (size and mtime, else its sha256);
 * REPLAY_E_ARG with a message naming the file and its original if not. */
int replay_inputs_check(const struct replay_recording *r, char **err);
/* Replaces every hard link and reference by a copy and rewrites the manifest,
 * so the directory travels alone (`krewind pack`). *copied: bytes copied. */
int replay_pack(struct replay_recording *r, int64_t *copied, char **err);

/* The version written into manifests. */
#define REPLAY_KREWIND_VERSION "0.1"

/* Copies from to a new file to (refused if it exists). */
int replay_copy_file(const char *from, const char *to, char **err);

/* SHA-256 of a file as 64 hex digits + NUL. */
int replay_sha256_file(const char *path, char hex[65]);

/* Resolves rec, which may be a recording directory, a name under traces/
 * (e.g. "eoi-before-switch-1"), or a path to a trace.db inside a recording
 * directory (a bare trace.db without manifest is accepted too: only db_path
 * and dir are set then). Returns REPLAY_E_IO if nothing matches. */
int replay_recording_open(const char *rec, struct replay_recording **out, char **err);
void replay_recording_free(struct replay_recording *r);


/* Allocates an empty recording (all fields NULL/0, exit_status -1). */
struct replay_recording *replay_recording_new(void);

/* Writes r as dir/manifest.json (through a temporary file and rename, so a
 * reader never sees half a manifest). Paths inside the directory are stored
 * relative to it. */
int replay_manifest_write(const struct replay_recording *r, char **err);

/* Parses a manifest text; dir is the directory it lives in (copied, used to
 * make its relative paths absolute). *out is owned by the caller. */
int replay_manifest_parse(const char *text, size_t len, const char *dir, struct replay_recording **out, char **err);

/* Picks the directory for a new recording. With requested != NULL: that
 * directory, created if missing, refused with REPLAY_E_EXISTS if it exists and
 * is not empty. Otherwise parent/NAME-N with the next free N (N >= 1), created.
 * *out is malloc'd. */
int replay_recording_mkdir(const char *requested, const char *parent, const char *name, char **out, char **err);

/* The argument vector for replaying r: its qemu_args with rr=record changed
 * to rr=replay, followed by extra (NULL-terminated, may be NULL). The vector
 * and its strings are malloc'd; free with replay_argv_free. */
int replay_replay_argv(const struct replay_recording *r, char *const *extra, char ***out, char **err);
void replay_argv_free(char **argv);

/* ================================================================ JSON (QMP) */

/* A parsed JSON value. Numbers keep their integer value exactly when they are
 * integers (is_int, i / u) as QMP sends 64-bit icounts. */
enum qmp_json_type { QMP_JSON_NULL, QMP_JSON_BOOL, QMP_JSON_NUMBER, QMP_JSON_STRING, QMP_JSON_ARRAY, QMP_JSON_OBJECT };

struct qmp_json {
	enum qmp_json_type type;
	int boolean;
	int is_int, negative; /* number is an integer; sign */
	uint64_t u;            /* integer magnitude */
	double d;              /* the number as a double */
	char *str;             /* string (NUL-terminated; len excludes NUL) */
	size_t len;
	size_t n;              /* array / object members */
	char **keys;           /* object keys (n of them) */
	struct qmp_json **items;
};

/* Parses one JSON value from text[0..len), skipping white space around it.
 * *used (may be NULL) gets the number of bytes consumed. Returns
 * REPLAY_E_TRUNCATED if text ends inside the value, REPLAY_E_FORMAT for
 * anything else invalid (nesting deeper than 64 included). */
int qmp_json_parse(const char *text, size_t len, struct qmp_json **out, size_t *used, char **err);
void qmp_json_free(struct qmp_json *v);
/* Member of an object, or NULL (also when v is NULL or not an object). */
const struct qmp_json *qmp_json_get(const struct qmp_json *v, const char *key);
/* The string member key of v, or NULL. */
const char *qmp_json_get_str(const struct qmp_json *v, const char *key);
/* Stores the integer member key of v in *out; returns 0 or -1 if absent or not a
 * non-negative integer. */
int qmp_json_get_u64(const struct qmp_json *v, const char *key, uint64_t *out);

/* A growing text buffer for writing JSON. Zero-initialise; free buf. On
 * allocation failure oom is set and later appends do nothing. */
struct qmp_buf {
	char *buf;
	size_t len, cap;
	int oom;
};
void qmp_buf_add(struct qmp_buf *b, const char *s, size_t n);
void qmp_buf_printf(struct qmp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal (quotes, escapes; NULL gives null). */
void qmp_buf_str(struct qmp_buf *b, const char *s);

/* ================================================================ processes */

/*
 * Child processes (QEMU, gdb) that never outlive krewind:
 *   - qemu_guard_begin blocks SIGINT, SIGTERM, SIGHUP and SIGQUIT for the
 *     process and turns them into a file descriptor (signalfd) that every
 *     wait loop of this module polls: a signal stops the children in order and
 *     makes the waiting call return REPLAY_E_INTERRUPTED;
 *   - each child gets PR_SET_PDEATHSIG(SIGKILL) as a backstop (krewind killed
 *     with SIGKILL or crashing), and QEMU runs in its own process group so a
 *     terminal Ctrl-C reaches krewind, which quits QEMU cleanly.
 * A guard holds no global state; create one per command, release it last.
 */
struct qemu_guard;
int qemu_guard_begin(struct qemu_guard **out, char **err);
/* The signal number received, or 0 (reads the descriptor without blocking). */
int qemu_guard_pending(struct qemu_guard *g);
/* The descriptor, readable when a signal is pending. */
int qemu_guard_fd(const struct qemu_guard *g);
/* Restores the signal mask and frees g. */
void qemu_guard_end(struct qemu_guard *g);

struct qemu_proc;

struct qemu_spawn_opts {
	const char *stdout_path;  /* NULL: /dev/null; "-": inherit */
	const char *stderr_path;  /* NULL: /dev/null; "-": inherit */
	int own_group;            /* 1: the child gets its own process group */
	int stdin_inherit;        /* 1: keep our stdin (interactive gdb), else /dev/null */
	const char *cwd;          /* working directory of the child, NULL: ours */
};

/* Starts argv[0] (searched in PATH) with argv. *out owns the child: it is
 * killed (SIGKILL to its group) and reaped by qemu_proc_free if still running. */
int qemu_spawn(char *const argv[], const struct qemu_spawn_opts *o, struct qemu_proc **out, char **err);
pid_t qemu_proc_pid(const struct qemu_proc *p);
/* Non-blocking: 1 and *status (exit status, or 128 + signal) if it exited,
 * 0 if still running, < 0 on error. */
int qemu_proc_poll(struct qemu_proc *p, int *status);
/* Waits up to timeout_ms (-1: forever) for exit, also returning early with
 * REPLAY_E_INTERRUPTED if g (may be NULL) has a pending signal. Returns 0 and
 * *status, or REPLAY_E_TIMEOUT. */
int qemu_proc_wait(struct qemu_proc *p, struct qemu_guard *g, int timeout_ms, int *status);
/* SIGTERM, then SIGKILL after grace_ms; reaps. Returns the exit status. */
int qemu_proc_stop(struct qemu_proc *p, int grace_ms);
void qemu_proc_free(struct qemu_proc *p);

/* The QEMU binary: $KREWIND_QEMU or "qemu-system-x86_64". */
const char *qemu_binary(void);
/* QEMU's version ("10.0.2") from `qemu --version`, malloc'd, or NULL. */
char *qemu_version(const char *binary);

/* ================================================================ QMP */

struct qmp;

/* Connects to the QMP unix socket at path, retrying until timeout_ms (QEMU
 * creates it shortly after start; proc, if not NULL, is watched so a QEMU
 * that dies early is reported at once), reads the greeting and negotiates
 * capabilities. g (may be NULL) is polled for signals by every call on q. */
int qmp_connect(const char *path, struct qemu_proc *proc, struct qemu_guard *g, int timeout_ms, struct qmp **out,
		char **err);
void qmp_close(struct qmp *q);

/* Runs command with args (a JSON object text, or NULL) and waits for its
 * answer; events that arrive meanwhile are queued. *ret (may be NULL) gets the
 * "return" value, owned by the caller. An "error" answer is REPLAY_E_QEMU with
 * QEMU's description in *err. */
int qmp_execute(struct qmp *q, const char *command, const char *args, struct qmp_json **ret, char **err);
/* How long qmp_execute waits for an answer (REPLAY_E_TIMEOUT after; the late
 * answer, if it comes, is dropped): QMP_ANSWER_MS unless set; -1 waits until
 * QEMU answers, exits or a signal arrives. A QEMU that stops answering
 * (wedged, stopped) is then an error, not a wait without end. */
#define QMP_ANSWER_MS 30000
int qmp_set_timeout(struct qmp *q, int timeout_ms); /* returns the previous one */
/* human-monitor-command: *out gets the HMP output (malloc'd). */
int qmp_hmp(struct qmp *q, const char *cmdline, char **out, char **err);
/* Waits for the event named name (or any event if NULL) up to timeout_ms (-1:
 * forever); queued events are looked at first and those that do not match are
 * dropped. *ev (may be NULL) gets the event. REPLAY_E_TIMEOUT, or REPLAY_E_QEMU
 * when the connection closes (QEMU exited). */
int qmp_wait_event(struct qmp *q, const char *name, int timeout_ms, struct qmp_json **ev, char **err);
/* Takes the oldest queued event named name (any if NULL) without waiting:
 * 1 and *ev, or 0 if none is queued. Reads what is already on the socket. */
int qmp_take_event(struct qmp *q, const char *name, struct qmp_json **ev);
/* query-replay's icount. */
int qmp_replay_icount(struct qmp *q, uint64_t *icount, char **err);

/* Finds a file krewind ships: $env if set (may be NULL), else rel looked up
 * from the krewind binary's directory: in an install (PREFIX/bin/krewind:
 * PREFIX/lib/krewind, PREFIX/share/krewind, paths.c has the table), else in the
 * build tree ("tracer/libkrewind.so", "kernel/kernel.elf", "probes/krewind.probe",
 * "replay/krewind-gdb.py" from the binary's directory and its parents).
 * malloc'd absolute path or NULL. */
char *replay_find_file(const char *env, const char *rel);

/* ================================================================ recording */

/* The default instruction budget of a busy CPU without progress (2 G). */
#define REPLAY_HANG_INSNS 2000000000ull

struct replay_record_opts {
	const char *kernel;     /* ELF to boot with -kernel, or NULL when it boots from a disk */
	const char *image;      /* disk image to boot from (IDE index 0), or NULL */
	const char *symbols;    /* ELF with its symbols, NULL: the kernel */
	const char *probe;      /* probe file, or NULL */
	const char *initrd;     /* -initrd image (Linux initramfs), or NULL */
	const char *scenario;   /* our kernel's scenario: append "scenario=NAME" */
	const char *append;     /* kernel command line (added after the scenario) */
	const char *out_dir;    /* -o DIR, or NULL for traces_dir/name-N */
	const char *traces_dir; /* NULL: $KREWIND_TRACES or "traces" */
	const char *name;       /* base name, NULL: scenario or the kernel's file name */
	const char *plugin;     /* libkrewind.so, or NULL to record without the plugin */
	double timeout_s;       /* <= 0: 60 */
	double hang_after_s;    /* <= 0: 5 */
	uint64_t hang_insns;    /* 0: REPLAY_HANG_INSNS; a busy CPU without progress is hung only
				 * after these many guest instructions too (docs/cli.md) */
	int no_rr;              /* 1: no QEMU record/replay (no replay.bin, snap.qcow2) */
	char *const *extra_args; /* more QEMU arguments (NULL-terminated), or NULL */
	int progress;           /* 1: one updating progress line on stderr */
	struct qemu_guard *guard; /* signals stop the recording (may be NULL) */
	int smp;                /* > 1: that many vCPUs, re-executable (smp.c) instead of QEMU rr */
};

/* Records a run into a new recording directory: boots QEMU with the plugin and
 * record/replay, watches it (exit, guest panic, hang, timeout, signals), stops
 * it cleanly over QMP when krewind ends the run, and writes manifest.json and
 * the outcome into the trace. On success (whatever the guest did) *out holds
 * the recording. Errors before QEMU ran remove the directory; a signal still
 * writes the manifest (outcome "killed") and returns REPLAY_E_INTERRUPTED with
 * *out set. REPLAY_E_EXISTS: out_dir exists and is not empty. */
int replay_record(const struct replay_record_opts *o, struct replay_recording **out, char **err);
/* 1 if QEMU arguments args (NULL-terminated, may be NULL) give a disk
 * (-hda..-hdd, -cdrom, -drive, -blockdev): a kernel can boot from it. */
int replay_args_have_disk(char *const *args);

/* ================================================================ replaying */

struct replay_session;

struct replay_session_opts {
	struct qemu_guard *guard;
	const char *plugin_db;   /* record a new trace during the replay (verify), or NULL */
	const char *plugin;      /* libkrewind.so for plugin_db */
	int gdb;                 /* 1: open a gdbstub (replay_session_gdb_socket) */
	const char *serial_path; /* where the replayed serial output goes, NULL: discarded */
	int stay_at_end;         /* 1: the guest's replayed shutdown pauses QEMU (-action
				  * shutdown=pause) instead of ending it: a debugger stays
				  * attached at the end of the recording */
	int stall_s;             /* a replay whose icount does not move for this long
				  * while running is stuck: REPLAY_E_TIMEOUT (0:
				  * $KREWIND_STALL, else 60) */
	uint64_t start_near;     /* > 0: start from the recording's nearest snapshot
				  * at or before this icount (replay_snapshot_nearest),
				  * if any; such a session only moves forward */
	/* Called about 4 times a second while QEMU replays (may be NULL). */
	void (*progress)(void *ctx, uint64_t icount, uint64_t target);
	void *progress_ctx;
};

/* Starts QEMU replaying r, paused before the first instruction. */
int replay_session_start(const struct replay_recording *r, const struct replay_session_opts *o,
			 struct replay_session **out, char **err);
/* Runs (or seeks back) until exactly icount instructions have executed.
 * REPLAY_E_ARG if the replay ends before that; REPLAY_E_TIMEOUT if it stops
 * moving (stall_s). */
int replay_session_goto(struct replay_session *s, uint64_t icount, char **err);
/* Exact landing on an event's own instruction: the plugin's count and QEMU's
 * drift apart where code is rewritten while it runs (self-modifying code,
 * Linux's alternatives and static keys), so this goes to icount - window and
 * single-steps forward to the instruction at pc nearest icount, stopping
 * there (forward only, unless a nearer match lies behind the last step).
 * *landed gets where it stopped (icount itself if pc is nowhere within
 * window instructions). */
int replay_session_land(struct replay_session *s, uint64_t icount, uint64_t pc, unsigned window, uint64_t *landed,
			char **err);
/* Runs to the end of the recording; *status gets QEMU's exit status, -1 if
 * the replay stopped with its log exhausted (a run krewind ended with quit, or
 * any run with stay_at_end: replay_session_last_icount is then its end).
 * QEMU 10 does not replay isa-debug-exit's status reliably (the replayed
 * shutdown may win the race and exit 0): compare the shutdown reason. */
int replay_session_run_to_end(struct replay_session *s, double timeout_s, int *status, char **err);
int replay_session_icount(struct replay_session *s, uint64_t *icount, char **err);
/* The reason of QEMU's SHUTDOWN event seen by run_to_end ("guest-shutdown",
 * "host-qmp-quit", ...), or NULL. Owned by s. */
const char *replay_session_shutdown_reason(const struct replay_session *s);
/* The icount seen last (after run_to_end: where the replay ended). */
uint64_t replay_session_last_icount(const struct replay_session *s);
struct qmp *replay_session_qmp(struct replay_session *s);
struct qemu_proc *replay_session_proc(struct replay_session *s);
/* The gdbstub's unix socket path (owned by s), or NULL. */
const char *replay_session_gdb_socket(const struct replay_session *s);
/* With gdb: a second QMP socket for the gdb commands (owned by s). */
const char *replay_session_gdb_qmp_socket(const struct replay_session *s);

/* The icount of the snapshot a session started from (0: the start). */
uint64_t replay_session_snapshot(const struct replay_session *s);

/* Snapshots taken while recording (replay/snapshot.c): QEMU 10.0.2 can load
 * a mid-run snapshot only when it starts (rrsnapshot=), never by replay-seek.
 * replay_snapshot_take stops the VM, saves its state as DIR/snapshots/N.qcow2
 * (N its icount, tag "kr-N") and lets it go on; *icount gets N. */
int replay_snapshot_take(struct qmp *q, const char *dir, struct qemu_guard *g, uint64_t *icount, char **err);
/* 1 and *at = the icount of DIR's latest snapshot at or before icount, or 0. */
int replay_snapshot_nearest(const char *dir, uint64_t icount, uint64_t *at);

/* Registers as QEMU shows them ("info registers"). */
struct replay_regs {
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp;
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rip, rflags, cr0, cr2, cr3, cr4, efer;
	uint64_t gs_base, fs_base;
	int cpl, halted, long_mode;
};
/* Parses QEMU's "info registers" text. */
int replay_parse_registers(const char *text, struct replay_regs *r, char **err);
int replay_session_registers(struct replay_session *s, struct replay_regs *r, char **err);
/* Reads len guest-virtual bytes at addr (current CPU's page tables). */
int replay_session_read(struct replay_session *s, uint64_t addr, uint8_t *buf, size_t len, char **err);
/* Forgets a pending SIGINT (interactive gdb uses Ctrl-C for itself). */
void qemu_guard_clear(struct qemu_guard *g);
/* Quits QEMU (QMP quit, then signals), removes the session's temporary files. */
void replay_session_end(struct replay_session *s);

/* ============================================================ SMP re-execution */

/* smp.c: QEMU's record/replay runs one vCPU; a run with several is made
 * re-executable instead (fixed icount, no host entropy or time, no guest
 * input: docs/replay.md "SMP mode and its limits") and re-run to verify it
 * or to stop in it. */
#define REPLAY_MODE_REEXEC "reexec"

/* 1 if r was recorded in the re-executable SMP mode. */
int replay_smp_is(const struct replay_recording *r);
/* The QEMU argument (of extra, NULL-terminated) that makes a run not
 * re-executable: a disk, a network, an input device, another -icount/-rtc/
 * -accel; NULL if none. */
const char *replay_smp_refused_arg(char *const *extra);
/* The machine options of the mode (NULL-terminated), after -smp N. */
const char *const *replay_smp_machine_args(void);
/* The kernel command line for kernel: append plus random.trust_cpu=off for a
 * Linux bzImage (its RNG must not take the host's). malloc'd. */
char *replay_smp_append(const char *kernel, const char *append);

struct replay_smp_run {
	const char *plugin;     /* libkrewind.so (the recorded one if NULL) */
	const char *db_path;    /* the re-run's trace (absolute, must not exist) */
	const char *serial_path; /* its serial output (absolute) */
	uint64_t stop_at;       /* > 0: hold the machine before instruction N (stopfile) */
	const char *stopfile;   /* with stop_at: where the plugin writes the stop */
	double timeout_s;
	struct qemu_guard *guard;
	int status;             /* out: QEMU's exit status (-1: stopped by us) */
	char *stop;             /* out: the stop report (stop_at), malloc'd */
	const char *gdb_sock;   /* the plugin serves gdb here at the stop (replay_smp_hold) */
	uint64_t gdb_end;       /* with gdb_sock: the recording's last count (0: unknown) */
};
/* Re-runs r's recorded command line with these outputs. 0 when QEMU exited
 * (or, with stop_at, when the stop report came); REPLAY_E_TIMEOUT,
 * REPLAY_E_INTERRUPTED, REPLAY_E_QEMU (exited before the stop). */
int replay_smp_rerun(const struct replay_recording *r, struct replay_smp_run *o, char **err);

/* Re-runs r to the instruction at machine count icount and reads what the
 * vCPU that runs it holds: its registers (rip: the instruction), *vcpu, and
 * the instruction's 16 bytes (*have_code). */
int replay_smp_stop(const struct replay_recording *r, uint64_t icount, struct qemu_guard *g, struct replay_regs *regs,
		    int *vcpu, uint8_t code[16], int *have_code, char **err);

/* Re-runs r to machine count icount and leaves it held there, the plugin
 * serving gdb (tracer/gdbstub.c) on DIR/gdb.sock; the re-run's trace, serial
 * output and QEMU's stderr go to DIR (replaced). *out owns QEMU: release it
 * with replay_smp_release. The wait is bounded and interruptible by g. */
int replay_smp_hold(const struct replay_recording *r, uint64_t icount, const char *dir, struct qemu_guard *g,
		    struct qemu_proc **out, char **err);
/* Ends a held re-run: gives the plugin 5 s to close its trace after gdb left,
 * then stops QEMU; frees p (NULL is fine). */
void replay_smp_release(struct qemu_proc *p);

struct replay_smp_cmp {
	int64_t same;       /* events identical from the first (kind, icount, vcpu, pc, thread, obj, a, b) */
	int64_t rec_events, run_events;
	int64_t cut_id;     /* the recording's last serial line event: the guest's last word */
	uint64_t cut_icount;
	int ok;             /* identical through the cut, and one a prefix of the other */
	char detail[320];
};
/* Compares a re-run's trace with the recording's. */
int replay_smp_compare(const char *rec_db, const char *run_db, struct replay_smp_cmp *c, char **err);

/* ================================================================ trace state */

struct db_reader;

/* A lock (or mutex) held at some point, from the trace. */
struct replay_held {
	uint64_t lock, thread, pc, icount;
	int64_t event_id, irql;
	int mutex;
};

/* The guest's state at a point of the trace. Owned by the caller, released
 * with replay_state_free. */
struct replay_state {
	int64_t irql;          /* last IRQL written (CR8 or probed), -1 if none yet */
	uint64_t thread;       /* current thread (last switch's new thread) */
	struct replay_held *held; /* acquisitions not yet released, oldest first */
	size_t n_held, cap_held;
	int trap_depth;        /* traps entered and not left by iretq */
	int64_t events_before; /* events of the kinds above before the point */
};

/* The state just before event before_id (if > 0), else just before icount:
 * from the events that precede it. */
int replay_state_at(struct db_reader *db, uint64_t icount, int64_t before_id, struct replay_state *out, char **err);
void replay_state_free(struct replay_state *s);

#endif
