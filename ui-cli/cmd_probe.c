/*
 * cmd_probe.c - `krewind probe linux VMLINUX [-o FILE]`: writes the probe file
 * for one Linux build from its ELF symbols and DWARF (tracer/linuxprobe.c).
 * The probe goes to stdout, or to FILE (written beside it and renamed, so a
 * failed run leaves FILE as it was). `krewind probe check FILE ELF` loads a
 * probe as the tracer will: parsed, every symbol resolved against ELF.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tracer/tracer.h"
#include "ui-cli/cli.h"

static const char synopsis[] = "krewind probe linux VMLINUX [-o FILE] [--schema 1|2] [--json]\n"
			       "krewind probe check FILE ELF";
static const char description[] =
	"Writes a probe file (docs/probe.md) for the Linux kernel VMLINUX, the\n"
	"unstripped ELF with DWARF (Debian: /usr/lib/debug/boot/vmlinux-VERSION from\n"
	"linux-image-VERSION-dbg; a kernel you built: vmlinux in its build tree).\n"
	"From the DWARF: where `current` is, task_struct's comm and pid, the\n"
	"preemption count; from the ELF: the spinlock, rwlock, mutex, rwsem,\n"
	"completion, context-switch, softirq, deferred-work, sleep and\n"
	"panic functions this build has out of line. --schema 1 writes only what the\n"
	"schema-1 probe language has (no flavors, contexts, deferred work, sleeps).\n"
	"--json prints {\"vmlinux\", \"schema\", \"output\", \"probe\": TEXT}.\n"
	"`check` parses FILE and resolves its symbols against ELF as the tracer\n"
	"will at record time: exit 0, or 2 with the error (file:line).";

enum { OPT_OUT = 1, OPT_SCHEMA, OPT_JSON };
static const struct cli_option options[] = {
	{OPT_OUT, "output", 'o', "FILE", "write the probe to FILE (default: stdout)"},
	{OPT_SCHEMA, "schema", 0, "N", "probe language: 2 (default) or 1"},
	{OPT_JSON, "json", 0, NULL, "print JSON"},
	{0},
};

/* The probe text in memory (for --json and for -o). */
static int generate(const char *vmlinux, int schema, char **text, size_t *len)
{
	FILE *mem = open_memstream(text, len);
	char *err = NULL;
	int rc;

	if (!mem)
		return cli_error(CLI_FAIL, "probe: out of memory");
	rc = linuxprobe_write(vmlinux, schema, mem, &err);
	fclose(mem);
	if (rc < 0) {
		free(*text);
		*text = NULL;
		return cli_error_msg(rc == TRACER_E_NOMEM ? CLI_FAIL : CLI_USAGE, "probe linux",
				     err ? err : strdup("cannot read the kernel"));
	}
	return CLI_OK;
}

static int write_file(const char *path, const char *text, size_t len)
{
	char *tmp = NULL;
	FILE *f;
	int ok;

	if (asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0)
		return cli_error(CLI_FAIL, "probe: out of memory");
	f = fopen(tmp, "w");
	if (!f) {
		cli_error(CLI_USAGE, "cannot write %s: %s", tmp, strerror(errno));
		free(tmp);
		return CLI_USAGE;
	}
	ok = fwrite(text, 1, len, f) == len;
	ok = (fclose(f) == 0) && ok;
	if (!ok || rename(tmp, path) < 0) {
		cli_error(CLI_FAIL, "cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
		free(tmp);
		return CLI_FAIL;
	}
	free(tmp);
	return CLI_OK;
}

/* krewind probe check FILE ELF */
static int check(const char *probe, const char *elf, int json)
{
	struct elfsym_table *t = NULL;
	struct probe_file *p = NULL;
	char *err = NULL;
	int rc = CLI_OK;

	if (elfsym_load(elf, &t, &err) < 0 || probe_load(probe, &p, &err) < 0 || probe_resolve(p, t, &err) < 0)
		rc = cli_error_msg(CLI_USAGE, NULL, err);
	if (rc == CLI_OK && json) {
		struct cli_json j;
		cli_json_init(&j, stdout);
		cli_json_object(&j);
		cli_json_kstr(&j, "probe", probe);
		cli_json_kstr(&j, "elf", elf);
		cli_json_kint(&j, "probes", (int64_t)p->nprobes);
		cli_json_close(&j);
		cli_json_end(&j);
	} else if (rc == CLI_OK) {
		printf("%s: %zu probes, all resolved in %s\n", probe, p->nprobes, elf);
	}
	probe_free(p);
	elfsym_free(t);
	return rc;
}

int cmd_probe(int argc, char **argv)
{
	struct cli_args a;
	const char *v, *pos[3] = { NULL }, *what, *vmlinux, *out = NULL;
	char *text = NULL, *end;
	size_t len = 0, npos = 0;
	int opt, rc, json = 0;
	long schema = 2;

	cli_args_init(&a, "probe", argc, argv);
	while ((opt = cli_next_opt(&a, options, &v)) != CLI_OPT_END) {
		if ((rc = cli_common_opt(&a, opt, v, NULL, synopsis, description, options)) >= 0)
			return rc;
		switch (opt) {
		case OPT_OUT: out = v; break;
		case OPT_JSON: json = 1; break;
		case OPT_SCHEMA:
			schema = strtol(v, &end, 10);
			if (*end || (schema != 1 && schema != 2))
				return cli_usage_error("probe", "--schema wants 1 or 2, not '%s'", v);
			break;
		case CLI_OPT_ARG:
			if (npos == 3)
				return cli_usage_error("probe", "unexpected argument '%s'", v);
			pos[npos++] = v;
			break;
		}
	}
	what = pos[0];
	vmlinux = pos[1];
	if (!what)
		return cli_usage_error("probe", "missing what to do (linux or check)");
	if (strcmp(what, "check") == 0) {
		if (npos != 3)
			return cli_usage_error("probe", "check wants FILE ELF");
		return check(pos[1], pos[2], json);
	}
	if (strcmp(what, "linux") != 0)
		return cli_usage_error("probe", "unknown '%s' (known: linux, check)", what);
	if (npos > 2)
		return cli_usage_error("probe", "unexpected argument '%s'", pos[2]);
	if (!vmlinux)
		return cli_usage_error("probe", "missing VMLINUX (the kernel's unstripped ELF)");
	if (access(vmlinux, R_OK) < 0)
		return cli_error(CLI_USAGE, "cannot read %s: %s", vmlinux, strerror(errno));
	if ((rc = generate(vmlinux, (int)schema, &text, &len)) != CLI_OK)
		return rc;
	if (out)
		rc = write_file(out, text, len);
	if (rc == CLI_OK && json) {
		struct cli_json j;
		cli_json_init(&j, stdout);
		cli_json_object(&j);
		cli_json_kstr(&j, "vmlinux", vmlinux);
		cli_json_kint(&j, "schema", schema);
		cli_json_kstr(&j, "output", out);
		cli_json_kstr(&j, "probe", text);
		cli_json_close(&j);
		cli_json_end(&j);
	} else if (rc == CLI_OK && !out) {
		fwrite(text, 1, len, stdout);
	}
	free(text);
	return rc;
}
