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

enum replay_error {
	REPLAY_OK = 0,
	REPLAY_E_IO = -1,     /* missing or unreadable file/directory */
	REPLAY_E_FORMAT = -2, /* manifest or QMP message that does not parse */
	REPLAY_E_QEMU = -3,   /* QEMU failed to start, died, or refused a command */
	REPLAY_E_ARG = -4,    /* bad argument */
	REPLAY_E_NOMEM = -5,
	REPLAY_E_TIMEOUT = -6,
	REPLAY_E_INTERRUPTED = -7, /* SIGINT/SIGTERM: children were stopped */
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
	char *outcome;       /* "pass", "fail", "bugcheck", "completed", "hang", "timeout", "panic", "killed", "error" */
	char *qemu_version;
	char *started_at;    /* ISO 8601 UTC */
	char **qemu_args;    /* argv as recorded (NULL-terminated), argv[0] = qemu binary */
	size_t n_qemu_args;
	int exit_status;     /* QEMU's exit status, -1 if killed */
	uint64_t icount_total;
	int64_t events_total;
	double wall_seconds;
};

/* Resolves rec, which may be a recording directory, a name under traces/
 * (e.g. "eoi-before-switch-1"), or a path to a trace.db inside a recording
 * directory (a bare trace.db without manifest is accepted too: only db_path
 * and dir are set then). Returns REPLAY_E_IO if nothing matches. */
int replay_recording_open(const char *rec, struct replay_recording **out, char **err);
void replay_recording_free(struct replay_recording *r);

#endif
