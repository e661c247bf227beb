/*
 * main.c - the krewind command: dispatches `krewind NAME ARGS...` to
 * cmd_NAME through the table below, and implements `krewind help`.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ui-cli/cli.h"

/* One line per command, in the order `krewind help` lists them. */
static const struct cli_command commands[] = {
	{"ls", cmd_ls, "list the recordings under traces/"},
	{"info", cmd_info, "show a recording: run metadata, event counts, threads, locks"},
	{"events", cmd_events, "print a recording's events, filtered and symbolized"},
	{"sql", cmd_sql, "run a read-only SQL query on a recording's trace"},
	{"check", cmd_check, "find lock-order, IRQL, interrupt and hang problems in a recording"},
	{"report", cmd_report, "write a self-contained HTML timeline of a recording with its findings"},
	{"export", cmd_export, "export a recording's events for Perfetto (protobuf or Trace Event JSON) or as CSV"},
	{"record", cmd_record, "record a kernel run under QEMU (trace + replay log) into traces/NAME-N"},
	{"replay", cmd_replay, "replay a recording exactly to an event or icount and show the machine there"},
	{"gdb", cmd_gdb, "replay to an event and attach gdb there (reverse-stepi, kr-* commands)"},
	{"bisect", cmd_bisect, "find the first event at which a predicate turns true (sql or gdb, by replays)"},
	{"verify", cmd_verify, "replay a whole recording and check it is deterministic"},
	{"pack", cmd_pack, "copy into a recording the large files it only links to, so it travels alone"},
	{"probe", cmd_probe, "write the probe file for a Linux build from its vmlinux (ELF + DWARF)"},
};

static const struct cli_command *find_command(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static void print_overview(FILE *f)
{
	size_t i;

	fprintf(f, "usage: krewind [--version] [--help] COMMAND [ARGS...]\n\n"
		   "krewind records a kernel's traps, IRQL changes, spinlocks, context switches\n"
		   "and EOIs under QEMU, queries and checks the trace, and replays it exactly.\n\n"
		   "commands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "   %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nREC is a recording directory, a name under traces/ or a trace.db path.\n"
		   "Every command takes --json (gdb with --batch). Exit status: 0 ok, 1 findings\n"
		   "or failure, 2 usage or input error, 130 interrupted (Ctrl-C).\n"
		   "See 'krewind help COMMAND' for a command's options.\n");
}

static int run(const struct cli_command *c, int argc, char **argv)
{
	int rc = c->fn(argc, argv);

	if (fflush(stdout) != 0 || ferror(stdout)) {
		/* A closed pipe (krewind events | head) is not worth a message. */
		if (errno != EPIPE)
			cli_error(CLI_FAIL, "writing the output failed: %s", strerror(errno));
		return rc ? rc : CLI_FAIL;
	}
	return rc;
}

static int cmd_help(int argc, char **argv)
{
	const struct cli_command *c;
	char help_opt[] = "--help";
	char *sub_argv[3];

	if (argc < 2) {
		print_overview(stdout);
		return CLI_OK;
	}
	if (argc > 2)
		return cli_usage_error("help", "expected one command name, got %d", argc - 1);
	if (strcmp(argv[1], "help") == 0) {
		printf("usage: krewind help [COMMAND]\n\nLists the commands, or shows COMMAND's usage.\n");
		return CLI_OK;
	}
	c = find_command(argv[1]);
	if (c == NULL)
		return cli_error(CLI_USAGE, "'%s' is not a krewind command; see 'krewind help'", argv[1]);
	sub_argv[0] = argv[1];
	sub_argv[1] = help_opt;
	sub_argv[2] = NULL;
	return run(c, 2, sub_argv);
}

int main(int argc, char **argv)
{
	const struct cli_command *c;

	if (argc < 2) {
		print_overview(stderr);
		return CLI_USAGE;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return cmd_help(argc - 1, argv + 1);
	if (strcmp(argv[1], "--version") == 0) {
		printf("krewind %s\n", CLI_VERSION);
		return CLI_OK;
	}
	if (argv[1][0] == '-')
		return cli_error(CLI_USAGE, "unknown option '%s'; see 'krewind help'", argv[1]);
	c = find_command(argv[1]);
	if (c == NULL)
		return cli_error(CLI_USAGE, "'%s' is not a krewind command; see 'krewind help'", argv[1]);
	return run(c, argc - 1, argv + 1);
}
