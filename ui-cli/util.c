/*
 * util.c - helpers shared by the commands: error lines, the option parser,
 * number and position parsing, terminal detection.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ui-cli/cli.h"

int cli_error(int status, const char *fmt, ...)
{
	va_list ap;

	fputs("krewind: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return status;
}

int cli_error_msg(int status, const char *prefix, char *msg)
{
	const char *m = msg ? msg : "unknown error";
	size_t n = strlen(m);

	/* Messages from the modules are one line; drop a trailing newline. */
	while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == '\r'))
		n--;
	if (prefix)
		fprintf(stderr, "krewind: error: %s: %.*s\n", prefix, (int)n, m);
	else
		fprintf(stderr, "krewind: error: %.*s\n", (int)n, m);
	free(msg);
	return status;
}

void cli_warning(const char *fmt, ...)
{
	va_list ap;

	fputs("krewind: warning: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "krewind: error: %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see 'krewind help %s')\n", cmd);
	return CLI_USAGE;
}

void cli_args_init(struct cli_args *a, const char *cmd, int argc, char **argv)
{
	memset(a, 0, sizeof(*a));
	a->cmd = cmd;
	a->argc = argc;
	a->argv = argv;
	a->i = 1;
}

static const struct cli_option *find_long(const struct cli_option *opts, const char *name, size_t len)
{
	for (; opts->id != 0; opts++)
		if (strlen(opts->name) == len && strncmp(opts->name, name, len) == 0)
			return opts;
	return NULL;
}

static const struct cli_option *find_short(const struct cli_option *opts, char c)
{
	for (; opts->id != 0; opts++)
		if (opts->short_name == c)
			return opts;
	return NULL;
}

static int next_short(struct cli_args *a, const struct cli_option *opts, const char **value)
{
	char c = *a->pending_short++;
	const struct cli_option *o = find_short(opts, c);

	if (o == NULL) {
		a->pending_short = NULL;
		if (c == 'h')
			return CLI_OPT_HELP;
		cli_usage_error(a->cmd, "unknown option '-%c'", c);
		return CLI_OPT_ERROR;
	}
	if (o->arg == NULL) {
		if (*a->pending_short == '\0')
			a->pending_short = NULL;
		return o->id;
	}
	if (*a->pending_short != '\0') {
		*value = a->pending_short;
	} else if (a->i < a->argc) {
		*value = a->argv[a->i++];
	} else {
		a->pending_short = NULL;
		cli_usage_error(a->cmd, "option '-%c' needs an argument %s", c, o->arg);
		return CLI_OPT_ERROR;
	}
	a->pending_short = NULL;
	return o->id;
}

int cli_next_opt(struct cli_args *a, const struct cli_option *opts, const char **value)
{
	const struct cli_option *o;
	const char *s, *eq;
	size_t len;

	*value = NULL;
	if (a->pending_short)
		return next_short(a, opts, value);
	if (a->i >= a->argc)
		return CLI_OPT_END;
	s = a->argv[a->i++];
	if (a->only_args || s[0] != '-' || s[1] == '\0') {
		*value = s;
		return CLI_OPT_ARG;
	}
	if (s[1] != '-') {
		a->pending_short = s + 1;
		return next_short(a, opts, value);
	}
	if (s[2] == '\0') {
		a->only_args = 1;
		return cli_next_opt(a, opts, value);
	}
	s += 2;
	eq = strchr(s, '=');
	len = eq ? (size_t)(eq - s) : strlen(s);
	o = find_long(opts, s, len);
	if (o == NULL) {
		if (len == 4 && strncmp(s, "help", 4) == 0)
			return CLI_OPT_HELP;
		cli_usage_error(a->cmd, "unknown option '--%.*s'", (int)len, s);
		return CLI_OPT_ERROR;
	}
	if (o->arg == NULL) {
		if (eq) {
			cli_usage_error(a->cmd, "option '--%s' takes no argument", o->name);
			return CLI_OPT_ERROR;
		}
		return o->id;
	}
	if (eq) {
		*value = eq + 1;
	} else if (a->i < a->argc) {
		*value = a->argv[a->i++];
	} else {
		cli_usage_error(a->cmd, "option '--%s' needs an argument %s", o->name, o->arg);
		return CLI_OPT_ERROR;
	}
	return o->id;
}

void cli_print_usage(FILE *f, const char *synopsis, const char *description, const struct cli_option *opts)
{
	const char *p = synopsis, *nl;
	int first = 1;
	char left[64];

	while (*p) {
		nl = strchr(p, '\n');
		if (nl == NULL)
			nl = p + strlen(p);
		fprintf(f, "%s%.*s\n", first ? "usage: " : "   or: ", (int)(nl - p), p);
		first = 0;
		p = *nl ? nl + 1 : nl;
	}
	if (description && *description)
		fprintf(f, "\n%s\n", description);
	fprintf(f, "\noptions:\n");
	for (; opts && opts->id != 0; opts++) {
		if (opts->short_name)
			snprintf(left, sizeof(left), "-%c, --%s%s%s", opts->short_name, opts->name,
				 opts->arg ? " " : "", opts->arg ? opts->arg : "");
		else
			snprintf(left, sizeof(left), "    --%s%s%s", opts->name, opts->arg ? " " : "",
				 opts->arg ? opts->arg : "");
		fprintf(f, "   %-26s %s\n", left, opts->help);
	}
	fprintf(f, "   %-26s %s\n", "-h, --help", "show this help");
}

int cli_common_opt(const struct cli_args *a, int opt, const char *value, const char **spec, const char *synopsis,
		   const char *description, const struct cli_option *opts)
{
	switch (opt) {
	case CLI_OPT_HELP:
		cli_print_usage(stdout, synopsis, description, opts);
		return CLI_OK;
	case CLI_OPT_ERROR:
		return CLI_USAGE;
	case CLI_OPT_ARG:
		if (!spec)
			return -1;
		if (*spec)
			return cli_usage_error(a->cmd, "unexpected argument '%s'", value);
		*spec = value;
		return -1;
	default:
		return -1;
	}
}

int cli_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL || *s == '\0' || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		if (s[2] == '\0')
			return -1;
		v = strtoull(s + 2, &end, 16);
		if (*(s + 2) == '-' || *(s + 2) == '+' || *(s + 2) == ' ')
			return -1;
	} else {
		v = strtoull(s, &end, 10);
	}
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

int cli_parse_pos(const char *s, struct cli_pos *out)
{
	uint64_t v;

	if (strncmp(s, "icount:", 7) == 0) {
		if (cli_parse_u64(s + 7, &v) != 0)
			return -1;
		out->is_icount = 1;
		out->value = v;
		return 0;
	}
	if (cli_parse_u64(s, &v) != 0 || v == 0 || v > INT64_MAX)
		return -1;
	out->is_icount = 0;
	out->value = v;
	return 0;
}

int cli_use_color(FILE *f)
{
	const char *term = getenv("TERM");
	const char *no = getenv("NO_COLOR");

	if (no && *no)
		return 0;
	if (term == NULL || strcmp(term, "dumb") == 0)
		return 0;
	return isatty(fileno(f));
}
