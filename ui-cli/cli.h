/*
 * cli.h - the krewind command: subcommands and the helpers they share.
 *
 * main.c dispatches `krewind NAME ARGS...` to cmd_NAME(argc, argv) through a
 * table (argv[0] is NAME). Every command:
 *   - prints its usage on -h/--help (stdout, exit 0); `krewind help NAME`
 *     runs `krewind NAME --help`;
 *   - takes --json (one JSON document on stdout);
 *   - returns CLI_OK (0: clean / ok), CLI_FAIL (1: findings or the operation
 *     failed), CLI_USAGE (2: usage or input error: bad option, missing file,
 *     corrupt trace, newer schema) or CLI_INTERRUPTED (130: stopped by a
 *     signal after cleaning up), and prints errors as one line on stderr
 *     starting with "krewind: error: ".
 *
 * No global mutable state: every helper works on what it is handed.
 */
#ifndef KREWIND_CLI_H
#define KREWIND_CLI_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "db/db.h"

#define CLI_VERSION "0.1"

enum cli_status {
	CLI_OK = 0,
	CLI_FAIL = 1,
	CLI_USAGE = 2,
	CLI_INTERRUPTED = 130, /* 128 + SIGINT: children stopped, temporary files removed */
};

/* ------------------------------------------------------------ commands */

/* One subcommand. To add one: write cmd_NAME.c, declare it below, add one
 * line to the table in main.c. */
struct cli_command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary; /* one line for `krewind help` */
};

int cmd_ls(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_events(int argc, char **argv);
int cmd_sql(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_export(int argc, char **argv);
/* Owned by the replay module's engineer (cmd_record.c, cmd_replay.c, ...). */
int cmd_record(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_gdb(int argc, char **argv);
int cmd_bisect(int argc, char **argv);
int cmd_verify(int argc, char **argv);
/* Owned by the Linux subject's engineer (cmd_probe.c, cmd_pack.c). */
int cmd_probe(int argc, char **argv);
int cmd_pack(int argc, char **argv);
/* Where replay/gdb stop (cmd_replay.c): spec is an event id, icount:N, or
 * finding:N (the Nth finding of `krewind check`). Fills *ev (id 0 for
 * icount:N) and *icount; prints the error and returns CLI_USAGE if none. */
struct cli_rec;
struct replay_recording;
/* Sets what krewind-gdb.py reads about r (KREWIND_BIN, _REC, _END,
 * _ICOUNT_MAX; cmd_gdb.c). CLI_OK or the printed error's status. */
int cmd_gdb_env(const struct replay_recording *r);
/* Prints a replay_ error (frees err) and returns the exit status: 130 for a
 * signal, 2 for a target the recording does not reach, else 1 (cmd_replay.c). */
int cmd_replay_error(int rc, char *err);
int cmd_replay_target(struct cli_rec *rec, const char *spec, struct db_event *ev, uint64_t *icount);

/* ------------------------------------------------------------ errors */

/* Prints "krewind: error: <fmt>\n" on stderr and returns status, so that
 * `return cli_error(CLI_USAGE, "...")` reads naturally. */
int cli_error(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same for a message owned by someone else (db_/replay_ *err); frees msg.
 * prefix (may be NULL) is printed before it, followed by ": ". */
int cli_error_msg(int status, const char *prefix, char *msg);
/* "krewind: warning: ..." on stderr. */
void cli_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ------------------------------------------------------------ losses */

/* What a trace lost (losses.c): meta dropped, whether it was cut, and the
 * stretches its DB_MARK_LOST markers name. */
struct cli_loss {
	uint64_t n, from, to; /* events lost, icount of the first and the last */
	int64_t event_id;     /* the marker saying so */
};
struct cli_losses {
	uint64_t dropped;
	int cut;
	struct cli_loss *at;
	size_t n;
};
struct db_reader;
/* Fills l (free with cli_losses_free); -1 if the markers cannot be read. */
int cli_losses_read(struct db_reader *rd, struct cli_losses *l);
void cli_losses_free(struct cli_losses *l);
struct cli_json;
/* Writes "lost": [{events, from_icount, to_icount, event}...] into the open JSON object. */
void cli_losses_json(struct cli_json *j, const struct cli_losses *l);
int cli_losses_any(const struct cli_losses *l);
/* The WARNING lines, each prefixed with indent; nothing if nothing was lost. */
void cli_losses_print(FILE *f, const struct cli_losses *l, const char *indent);

/* ------------------------------------------------------------ progress */

/* A progress line on stderr (progress.c): NULL (and every call a no-op) when
 * quiet or when stderr is not a terminal. update redraws at most 10 times a
 * second "WHAT: done/total UNIT (P%, S s)" (total 0: no percentage); note
 * draws free text after "WHAT: "; end erases the line and frees p. */
struct cli_progress;
struct cli_progress *cli_progress_start(const char *what, int quiet);
void cli_progress_update(struct cli_progress *p, uint64_t done, uint64_t total, const char *unit);
void cli_progress_note(struct cli_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_progress_end(struct cli_progress *p);
/* A replay's progress (replay_session_opts.progress): p is the cli_progress;
 * target 0 draws against the total given by cli_progress_total. */
void cli_progress_icount(void *p, uint64_t icount, uint64_t target);
void cli_progress_total(struct cli_progress *p, uint64_t total);

/* ------------------------------------------------------------ options */

/*
 * A small option parser (no globals, unlike getopt): long options
 * "--name", "--name=value", "--name value", short "-x", "-x value", "-xvalue",
 * "--" ends options. -h and --help are always recognised.
 */
struct cli_option {
	int id;             /* returned by cli_next_opt; > 0 */
	const char *name;   /* long name without dashes */
	char short_name;    /* 0 if none */
	const char *arg;    /* name of the argument in usage ("N"), NULL for a flag */
	const char *help;   /* one line */
};

enum {
	CLI_OPT_END = 0,   /* no more arguments */
	CLI_OPT_ARG = -1,  /* a positional argument, in *value */
	CLI_OPT_HELP = -2, /* -h / --help */
	CLI_OPT_ERROR = -3, /* unknown option or missing argument: already reported */
};

struct cli_args {
	const char *cmd; /* for messages */
	int argc;
	char **argv;
	int i;          /* next argv index to look at */
	int only_args;  /* seen "--" */
	const char *pending_short; /* rest of a "-abc" cluster */
};

/* Starts parsing argv[1..argc-1] (argv[0] is the command name). */
void cli_args_init(struct cli_args *a, const char *cmd, int argc, char **argv);
/* Returns the next option's id (value in *value for options with an
 * argument), CLI_OPT_ARG, CLI_OPT_HELP, CLI_OPT_END or CLI_OPT_ERROR (after
 * printing one line on stderr). opts ends with an entry whose id is 0. */
int cli_next_opt(struct cli_args *a, const struct cli_option *opts, const char **value);

/* Prints "usage: <synopsis>" lines, the description and the option list.
 * synopsis may hold several lines (each gets "usage: " or the indent). */
void cli_print_usage(FILE *f, const char *synopsis, const char *description, const struct cli_option *opts);
/* Reports a usage error for cmd: "krewind: error: CMD: <msg>" and a hint to
 * run `krewind help CMD`; returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The results of cli_next_opt every command treats alike. CLI_OPT_HELP: prints
 * the usage on stdout and returns CLI_OK. CLI_OPT_ERROR (already reported):
 * returns CLI_USAGE. CLI_OPT_ARG with spec not NULL: takes the first positional
 * argument into *spec, reports a later one as unexpected (CLI_USAGE). Returns
 * -1 when the command goes on parsing: any other opt, an argument taken, or
 * CLI_OPT_ARG with spec NULL (the command takes its arguments itself). */
int cli_common_opt(const struct cli_args *a, int opt, const char *value, const char **spec, const char *synopsis,
		   const char *description, const struct cli_option *opts);

/* Parses a non-negative decimal integer (or 0x hex) into *out. Returns 0, or
 * -1 if s is not entirely a number or overflows. */
int cli_parse_u64(const char *s, uint64_t *out);

/* An event position as the user writes it: "ID" or "icount:N". */
struct cli_pos {
	int is_icount;
	uint64_t value;
};
int cli_parse_pos(const char *s, struct cli_pos *out);

/* ------------------------------------------------------------ terminal */

/* 1 if f is a terminal that should get colours: a tty, TERM not "dumb",
 * NO_COLOR unset. */
int cli_use_color(FILE *f);

/* ------------------------------------------------------------ JSON */

/*
 * A streaming JSON writer. Commas, nesting and indentation are handled here;
 * strings are escaped per RFC 8259 (quote, backslash, control characters) and
 * invalid UTF-8 bytes are replaced by U+FFFD so the output is always valid.
 * Guest addresses should be written as hex strings (cli_json_hex): JSON
 * numbers above 2^53 lose precision in many readers.
 */
#define CLI_JSON_MAX_DEPTH 32
struct cli_json {
	FILE *f;
	int depth;
	int count[CLI_JSON_MAX_DEPTH]; /* values written at each level */
	char closer[CLI_JSON_MAX_DEPTH]; /* '}' or ']' for each open level */
	char flat[CLI_JSON_MAX_DEPTH];   /* 1: level written on one line */
	int after_key;
	int error; /* set on misuse (too deep, unbalanced); checked by cli_json_end */
};

void cli_json_init(struct cli_json *j, FILE *f);
void cli_json_object(struct cli_json *j); /* { */
void cli_json_array(struct cli_json *j);  /* [ */
/* [ on one line: for short arrays of scalars ([1, 2, 3]); nothing nested in
 * it is indented either. */
void cli_json_array_flat(struct cli_json *j);
void cli_json_close(struct cli_json *j);  /* } or ] */
void cli_json_key(struct cli_json *j, const char *key);
void cli_json_str(struct cli_json *j, const char *s); /* NULL writes null */
void cli_json_strn(struct cli_json *j, const char *s, size_t n);
void cli_json_int(struct cli_json *j, int64_t v);
void cli_json_uint(struct cli_json *j, uint64_t v);
void cli_json_double(struct cli_json *j, double v);
void cli_json_bool(struct cli_json *j, int v);
void cli_json_null(struct cli_json *j);
void cli_json_hex(struct cli_json *j, uint64_t v); /* "0x..." */
/* Finishes the document with a newline. Returns 0, or -1 if the document was
 * left unbalanced or the stream had an error. */
int cli_json_end(struct cli_json *j);

/* key + value shorthands */
void cli_json_kstr(struct cli_json *j, const char *key, const char *s);
void cli_json_kint(struct cli_json *j, const char *key, int64_t v);
void cli_json_kuint(struct cli_json *j, const char *key, uint64_t v);
void cli_json_khex(struct cli_json *j, const char *key, uint64_t v);

/* ------------------------------------------------------------ recordings */

struct replay_recording;

/* An opened recording: the manifest (rec, may describe a bare trace.db) and
 * the trace database. */
struct cli_rec {
	struct replay_recording *rec;
	struct db_reader *db;
};

/* Resolves spec (recording directory, name under traces/, or trace.db path)
 * with replay_recording_open and opens its trace read-only. On failure prints
 * one line and returns CLI_USAGE (missing, corrupt, newer schema) or
 * CLI_FAIL; on success fills *out, which cli_rec_close releases. */
int cli_rec_open(const char *spec, struct cli_rec *out);
/* cli_rec_open for the REC argument of cmd; a usage error "missing the
 * recording (REC)" (CLI_USAGE) if spec is NULL. */
int cli_rec_open_arg(const char *cmd, const char *spec, struct cli_rec *out);
void cli_rec_close(struct cli_rec *r);
/* 1 if r came with a manifest.json (0 for a bare trace.db). */
int cli_rec_has_manifest(const struct replay_recording *r);
/* The run's outcome: the manifest's, else the trace's "outcome" metadata,
 * else NULL. Owned by r. */
const char *cli_rec_outcome(const struct cli_rec *r);

/* ------------------------------------------------------------ events */

/* How events are named when described: callbacks so that the formatter can be
 * tested without a database. cli_names_from_db fills one backed by a reader. */
struct cli_names {
	const char *(*thread)(void *ctx, uint64_t addr); /* "" if unknown */
	const char *(*lock)(void *ctx, uint64_t addr);   /* "" if unknown */
	char *(*symbol)(void *ctx, uint64_t addr, char *buf, size_t size);
	void *ctx;
	int no_irql; /* the kernel keeps no IRQL in CR8 (no irql event): lock events at 0 omit it */
	/* optional: the thread at addr as of event id (tid >= 0: that kernel
	 * thread id), where a thread object was reused by several threads */
	const char *(*thread_at)(void *ctx, uint64_t addr, int32_t tid, int64_t id);
};
void cli_names_from_db(struct cli_names *n, struct db_reader *r);

/* Writes a human description of ev ("acquire ScenarioLockA (irql 2, spun
 * 37)", "irql 0 -> 2", "switch idle -> worker1", ...) into buf. text is the
 * event's text payload or NULL. Returns buf. */
char *cli_describe_event(const struct db_event *ev, const char *text, const struct cli_names *names, char *buf,
			 size_t size);

/* Writes the execution state the tracer recorded with ev (schema 2) into buf:
 * "[hardirq, IF off, irqsave, try, preempt 1, from foo+0x1c]", or "" for an
 * event with none of it (process context, IF off, a plain lock op, no
 * caller: what test scripts write). Returns buf. */
char *cli_describe_state(const struct db_event *ev, const struct cli_names *names, char *buf, size_t size);

/* Name of a thread for display: its name, else its address in hex, "-" for 0.
 * Writes into buf and returns it. */
char *cli_thread_label(const struct cli_names *names, uint64_t addr, char *buf, size_t size);
/* Same for a lock / dispatcher object. */
char *cli_lock_label(const struct cli_names *names, uint64_t addr, char *buf, size_t size);

#endif
