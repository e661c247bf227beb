/*
 * cmd_record.c - `krewind record`: run a kernel under QEMU with the tracer
 * plugin and QEMU's record/replay, into a new recording directory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db.h"

#include "replay/replay.h"
#include "tracer/tracer.h"
#include "ui-cli/cli.h"

static const char synopsis[] =
	"krewind record --scenario NAME [-o DIR] [--timeout S] [--hang-after S] [--no-rr] [--smp N] [--json]\n"
	"krewind record --kernel ELF [--symbols ELF] [--probe FILE] [--initrd FILE] [--append ARGS] [-o DIR] [-- QEMU-ARGS...]\n"
	"krewind record --image DISK [--symbols ELF] [--probe FILE] [-o DIR] [-- QEMU-ARGS...]\n"
	"krewind record --list-scenarios";
static const char description[] =
	"Boots a kernel under QEMU 10 with the krewind plugin and QEMU's record/replay\n"
	"(icount, replay log, a snapshot at start) and writes one recording directory:\n"
	"trace.db, replay.bin, snap.qcow2, kernel.elf, serial.log, manifest.json (inputs\n"
	"over 32 MB are linked or referenced, not copied: see krewind pack).\n"
	"--scenario boots krewind's own kernel with its probe file; --image boots a disk\n"
	"(its own bootloader or GRUB), and every disk in QEMU-ARGS (-hda, -cdrom, -drive)\n"
	"is recorded through a qcow2 overlay in the recording (the image is never\n"
	"written) and QEMU's blkreplay, so that it replays. The run ends when the\n"
	"guest exits, resets, makes no progress for --hang-after seconds (no serial\n"
	"output, no trace events besides interrupts when probed) while a thread spins\n"
	"on a lock or waits or the CPU is halted, or for --hang-insns instructions as\n"
	"well while it is busy in code the probe does not see, or after --timeout\n"
	"seconds; the outcome is kept in the manifest and the trace. Exit 0 whenever a\n"
	"recording was made; 130 after Ctrl-C (SIGINT), which stops QEMU and keeps the\n"
	"recording with the outcome \"interrupted\". Bad input (an unknown scenario, a\n"
	"kernel that is neither an ELF nor a Linux bzImage, an unreadable probe) exits 2\n"
	"before QEMU starts and leaves no recording; so does a command line QEMU\n"
	"refuses (its own first error lines are printed).\n"
	"--smp N (or -- -smp N) with N > 1 records N vCPUs: QEMU's record/replay runs one,\n"
	"so the run is made re-executable instead (fixed icount, no host entropy or time,\n"
	"no disk, network or input; manifest mode \"reexec\"): verify and replay re-run it.\n"
	"Environment: KREWIND_PLUGIN, KREWIND_KERNEL, KREWIND_QEMU, KREWIND_TRACES.";

enum { OPT_SCENARIO = 1, OPT_KERNEL, OPT_SYMBOLS, OPT_PROBE, OPT_APPEND, OPT_OUT, OPT_TIMEOUT, OPT_HANG, OPT_NORR,
       OPT_NOPLUGIN, OPT_JSON, OPT_QUIET, OPT_LIST, OPT_INITRD, OPT_IMAGE, OPT_HANG_INSNS, OPT_SMP };
static const struct cli_option options[] = {
	{OPT_SCENARIO, "scenario", 0, "NAME", "boot krewind's kernel with scenario=NAME"},
	{OPT_KERNEL, "kernel", 0, "ELF", "boot this kernel instead"},
	{OPT_IMAGE, "image", 0, "DISK", "boot this disk image (raw or qcow2; kept unchanged, recorded through an overlay)"},
	{OPT_SYMBOLS, "symbols", 0, "ELF", "unstripped twin of the kernel for symbols"},
	{OPT_PROBE, "probe", 0, "FILE", "probe file (needs symbols)"},
	{OPT_APPEND, "append", 0, "ARGS", "kernel command line"},
	{OPT_INITRD, "initrd", 0, "FILE", "initial ramdisk (-initrd; a Linux initramfs), kept with the recording"},
	{OPT_OUT, "output", 'o', "DIR", "recording directory (default traces/NAME-N; never overwritten)"},
	{OPT_TIMEOUT, "timeout", 0, "S", "stop the run after S seconds (default 60)"},
	{OPT_HANG, "hang-after", 0, "S", "call it a hang after S seconds without progress (default 5)"},
	{OPT_HANG_INSNS, "hang-insns", 0, "N", "and, while the CPU is busy and no lock spin or wait is open, N guest instructions (default 2G)"},
	{OPT_NORR, "no-rr", 0, NULL, "no QEMU record/replay (the recording cannot be replayed)"},
	{OPT_NOPLUGIN, "no-plugin", 0, NULL, "record without the tracer plugin (no trace.db)"},
	{OPT_SMP, "smp", 0, "N", "N vCPUs (1-16); N > 1: a re-executable run instead of QEMU rr"},
	{OPT_JSON, "json", 0, NULL, "print the summary as JSON"},
	{OPT_QUIET, "quiet", 'q', NULL, "no progress line"},
	{OPT_LIST, "list-scenarios", 0, NULL, "print the scenarios of krewind's kernel, one a line"},
	{0},
};

/* -smp's value: N, or cpus=N[,...], or N,...; 0 if not a count of 1-16. */
static int parse_smp(const char *s)
{
	char *end;
	long n;

	if (strncmp(s, "cpus=", 5) == 0)
		s += 5;
	n = strtol(s, &end, 10);
	if (end == s || (*end && *end != ',') || n < 1 || n > 16)
		return 0;
	return (int)n;
}

/* Takes `-smp N` out of the QEMU arguments after "--" into o->smp: krewind
 * builds the machine. A copy of the rest in *kept (caller frees). */
static int take_smp(struct replay_record_opts *o, char ***kept)
{
	size_t n = 0, k = 0, i;

	*kept = NULL;
	while (o->extra_args && o->extra_args[n])
		n++;
	if (!n)
		return 0;
	if (!(*kept = calloc(n + 1, sizeof(char *))))
		return cli_error(CLI_FAIL, "out of memory");
	for (i = 0; i < n; i++) {
		if (strcmp(o->extra_args[i], "-smp") == 0 || strcmp(o->extra_args[i], "--smp") == 0) {
			if (!o->extra_args[i + 1] || !(o->smp = parse_smp(o->extra_args[i + 1])))
				return cli_usage_error("record", "-smp wants a vCPU count of 1-16, not '%s'",
						       o->extra_args[i + 1] ? o->extra_args[i + 1] : "");
			i++;
			continue;
		}
		(*kept)[k++] = o->extra_args[i];
	}
	o->extra_args = *kept;
	return 0;
}

static int parse_seconds(const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);

	if (!*s || *end || v <= 0 || v > 86400)
		return -1;
	*out = v;
	return 0;
}

/* Input errors a probe can have, found before QEMU starts. */
static int validate_probe(const char *probe, const char *symbols)
{
	struct elfsym_table *t = NULL;
	struct probe_file *p = NULL;
	char *err = NULL;
	int rc = CLI_OK;

	if (elfsym_load(symbols, &t, &err) < 0) {
		rc = cli_error_msg(CLI_USAGE, NULL, err);
		goto out;
	}
	if (elfsym_count(t) == 0) {
		rc = cli_error(CLI_USAGE, "%s has no symbols: a probe needs them (give --symbols ELF)", symbols);
		goto out;
	}
	if (probe_load(probe, &p, &err) < 0 || probe_resolve(p, t, &err) < 0)
		rc = cli_error_msg(CLI_USAGE, NULL, err);
out:
	probe_free(p);
	elfsym_free(t);
	return rc;
}

/* What QEMU's x86 -kernel boots: an ELF (PVH or multiboot), a Linux bzImage
 * ("HdrS" at 0x202) or a multiboot image (magic in its first 8 KiB, 4-aligned).
 * Returns CLI_OK or prints why not and returns CLI_USAGE. */
static int validate_kernel(const char *path)
{
	unsigned char buf[8192];
	size_t n, i;
	FILE *f = fopen(path, "rb");

	if (!f)
		return cli_error(CLI_USAGE, "cannot read kernel %s", path);
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (n >= 4 && memcmp(buf, "\177ELF", 4) == 0)
		return CLI_OK;
	if (n >= 0x206 && memcmp(buf + 0x202, "HdrS", 4) == 0)
		return CLI_OK;
	for (i = 0; i + 4 <= n; i += 4)
		if (buf[i] == 0x02 && buf[i + 1] == 0xb0 && buf[i + 2] == 0xad && buf[i + 3] == 0x1b)
			return CLI_OK;
	return cli_error(CLI_USAGE, "%s is not a kernel QEMU can boot (not an ELF, a bzImage or multiboot)", path);
}

/*
 * The scenarios krewind's kernel knows: its table KiScenarios (kernel/scenario.c,
 * { const char *Name; void (*Run)(void); } entries), read from the ELF itself so
 * that the list cannot drift from the kernel. Returns the number of names put in
 * names[] (malloc'd each), or -1 if the kernel has no such table.
 */
#define MAX_SCENARIOS 64
static int kernel_scenarios(const char *kernel, char *names[MAX_SCENARIOS])
{
	struct elfsym_table *t = NULL;
	const struct elfsym *tab;
	char *err = NULL;
	int n = -1;

	if (elfsym_load(kernel, &t, &err) < 0) {
		free(err);
		return -1;
	}
	tab = elfsym_find(t, "KiScenarios");
	if (tab && tab->size >= 16 && tab->size % 16 == 0) {
		uint64_t i, entry[2];
		n = 0;
		for (i = 0; i < tab->size / 16 && n < MAX_SCENARIOS; i++) {
			char name[64];
			size_t k;
			if (elfsym_read(t, tab->addr + i * 16, entry, sizeof(entry), &err) < 0)
				break;
			for (k = 0; k + 1 < sizeof(name); k++)
				if (elfsym_read(t, entry[0] + k, &name[k], 1, &err) < 0 || name[k] == 0)
					break;
			name[k] = 0;
			if (k == 0 || k + 1 == sizeof(name))
				break;
			names[n++] = strdup(name);
		}
		free(err);
	}
	elfsym_free(t);
	return n;
}

static void free_names(char *names[], int n)
{
	while (n-- > 0)
		free(names[n]);
}

/* --list-scenarios: one name a line. */
static int list_scenarios(const char *kernel)
{
	char *names[MAX_SCENARIOS];
	int n = kernel_scenarios(kernel, names), i;

	if (n < 0)
		return cli_error(CLI_USAGE, "%s has no scenario table (KiScenarios): not krewind's kernel?", kernel);
	for (i = 0; i < n; i++)
		printf("%s\n", names[i]);
	free_names(names, n);
	return CLI_OK;
}

/* --scenario NAME must be one of the kernel's (when it lists them). */
static int validate_scenario(const char *kernel, const char *scenario)
{
	char *names[MAX_SCENARIOS], known[1024] = "";
	int n = kernel_scenarios(kernel, names), i, found = 0;

	if (n < 0)
		return CLI_OK;
	for (i = 0; i < n; i++) {
		found |= strcmp(names[i], scenario) == 0;
		if (strlen(known) + strlen(names[i]) + 3 < sizeof(known))
			strcat(strcat(known, i ? ", " : ""), names[i]);
	}
	free_names(names, n);
	if (found)
		return CLI_OK;
	return cli_error(CLI_USAGE, "unknown scenario '%s' (known: %s)", scenario, known);
}

/* An interrupted run (SIGINT, SIGTERM): the recording is kept and says so, in
 * the manifest and in the trace's metadata. */
static void mark_interrupted(struct replay_recording *r)
{
	char *e = NULL;

	free(r->outcome);
	r->outcome = strdup("interrupted");
	free(r->outcome_detail);
	r->outcome_detail = strdup("krewind record was interrupted (Ctrl-C); QEMU was stopped");
	if (replay_manifest_write(r, &e) < 0)
		cli_error_msg(CLI_FAIL, "cannot mark the recording interrupted", e), e = NULL;
	free(e), e = NULL;
	if (r->db_path && db_update_meta(r->db_path, "outcome", "interrupted", &e) != DB_OK)
		cli_error_msg(CLI_FAIL, "cannot mark the trace interrupted", e), e = NULL;
	free(e);
}

static void print_summary(const struct replay_recording *r, int json)
{
	char *cwd = getcwd(NULL, 0);
	const char *shown = r->dir;
	size_t n = cwd ? strlen(cwd) : 0;
	struct db_reader *rd = NULL;
	char *e = NULL;
	size_t i;

	if (cwd && strncmp(r->dir, cwd, n) == 0 && r->dir[n] == '/')
		shown = r->dir + n + 1;
	if (json) {
		struct cli_json j;
		cli_json_init(&j, stdout);
		cli_json_object(&j);
		cli_json_kstr(&j, "recording", r->dir);
		cli_json_kstr(&j, "name", r->name);
		cli_json_kstr(&j, "outcome", r->outcome);
		cli_json_kstr(&j, "outcome_detail", r->outcome_detail);
		cli_json_kint(&j, "exit_status", r->exit_status);
		cli_json_kuint(&j, "icount_total", r->icount_total);
		cli_json_kint(&j, "events_total", r->events_total);
		cli_json_key(&j, "event_counts");
		cli_json_object(&j);
		for (i = 0; i < r->n_counts; i++)
			cli_json_kint(&j, r->counts[i].kind, r->counts[i].n);
		cli_json_close(&j);
		cli_json_key(&j, "wall_seconds");
		cli_json_double(&j, r->wall_seconds);
		cli_json_kstr(&j, "replay_log", r->replay_log);
		if (r->db_path && db_reader_open(r->db_path, &rd, &e) == 0) {
			struct cli_losses losses;
			if (cli_losses_read(rd, &losses) == 0) {
				cli_json_kuint(&j, "dropped", losses.dropped);
				cli_losses_json(&j, &losses);
			}
			cli_losses_free(&losses);
			db_reader_close(rd);
		}
		free(e);
		cli_json_close(&j);
		cli_json_end(&j);
	} else {
		printf("recorded %s: %s", shown, r->outcome);
		if (r->outcome_detail)
			printf(" (%s)", r->outcome_detail);
		else
			printf(" (QEMU exit status %d)", r->exit_status);
		printf("\n  %llu instructions, %lld events in %.1f s\n", (unsigned long long)r->icount_total,
		       (long long)r->events_total, r->wall_seconds);
		for (i = 0; i < r->n_counts; i++)
			printf("%s%s %lld", i ? ", " : "  ", r->counts[i].kind, (long long)r->counts[i].n);
		if (r->n_counts)
			printf("\n");
		if (r->db_path && db_reader_open(r->db_path, &rd, &e) == 0) {
			struct cli_losses losses;
			if (cli_losses_read(rd, &losses) == 0 && (losses.dropped || losses.n))
				cli_losses_print(stdout, &losses, "  ");
			cli_losses_free(&losses);
			db_reader_close(rd);
		}
		free(e);
		printf("  next: krewind check %s", shown);
		if (r->replay_log)
			printf("; krewind replay %s --to EVENT", shown);
		printf("\n");
	}
	free(cwd);
}

int cmd_record(int argc, char **argv)
{
	struct replay_record_opts o = { 0 };
	struct replay_recording *r = NULL;
	struct qemu_guard *g = NULL;
	struct cli_args a;
	const char *v;
	char *kernel = NULL, *probe = NULL, *plugin = NULL, *err = NULL, **kept = NULL;
	int opt, json = 0, quiet = 0, no_plugin = 0, list = 0, rc;

	cli_args_init(&a, "record", argc, argv);
	while ((opt = cli_next_opt(&a, options, &v)) != CLI_OPT_END) {
		if ((rc = cli_common_opt(&a, opt, v, NULL, synopsis, description, options)) >= 0)
			return rc;
		switch (opt) {
		case CLI_OPT_ARG:
			/* Everything after "--" goes to QEMU. */
			if (!a.only_args)
				return cli_usage_error("record", "unexpected argument '%s'", v);
			o.extra_args = argv + a.i - 1;
			a.i = argc;
			break;
		case OPT_SCENARIO: o.scenario = v; break;
		case OPT_KERNEL: o.kernel = v; break;
		case OPT_IMAGE: o.image = v; break;
		case OPT_SYMBOLS: o.symbols = v; break;
		case OPT_PROBE: o.probe = v; break;
		case OPT_APPEND: o.append = v; break;
		case OPT_INITRD: o.initrd = v; break;
		case OPT_OUT: o.out_dir = v; break;
		case OPT_TIMEOUT:
			if (parse_seconds(v, &o.timeout_s) < 0)
				return cli_usage_error("record", "--timeout wants seconds, not '%s'", v);
			break;
		case OPT_HANG:
			if (parse_seconds(v, &o.hang_after_s) < 0)
				return cli_usage_error("record", "--hang-after wants seconds, not '%s'", v);
			break;
		case OPT_HANG_INSNS:
			if (cli_parse_u64(v, &o.hang_insns) < 0 || o.hang_insns == 0)
				return cli_usage_error("record", "--hang-insns wants a number of instructions, not '%s'", v);
			break;
		case OPT_NORR: o.no_rr = 1; break;
		case OPT_NOPLUGIN: no_plugin = 1; break;
		case OPT_JSON: json = 1; break;
		case OPT_QUIET: quiet = 1; break;
		case OPT_LIST: list = 1; break;
		case OPT_SMP:
			if (!(o.smp = parse_smp(v)))
				return cli_usage_error("record", "--smp wants a vCPU count of 1-16, not '%s'", v);
			break;
		}
	}
	/* QEMU's record/replay runs one vCPU only: several make a re-executable
	 * run instead (replay/smp.c), with nothing from the host in it. */
	if ((rc = take_smp(&o, &kept)) != 0)
		goto out;
	if (o.smp > 1 && (o.image || replay_smp_refused_arg(o.extra_args))) {
		rc = cli_usage_error("record", "%s refused with several vCPUs: the run must be re-executable (no disk, "
				     "network, input or other clock)", o.image ? "--image" : replay_smp_refused_arg(o.extra_args));
		goto out;
	}
	if (!o.scenario && !o.kernel && !o.image && !list && !replay_args_have_disk(o.extra_args))
		return cli_usage_error("record", "give --scenario NAME, --kernel ELF or --image DISK");
	if (o.scenario && (o.image || replay_args_have_disk(o.extra_args)) && !o.kernel)
		return cli_usage_error("record", "--scenario boots krewind's kernel: give disks with --kernel, or no --scenario");
	if (o.scenario && (!*o.scenario || strpbrk(o.scenario, "/ \t")))
		return cli_usage_error("record", "bad scenario name '%s'", o.scenario);
	if (!o.kernel && (o.scenario || list)) {
		kernel = replay_find_file("KREWIND_KERNEL", "kernel/kernel.elf");
		if (!kernel) {
			rc = cli_error(CLI_USAGE, "cannot find krewind's kernel (build/kernel/kernel.elf; make kernel)");
			goto out;
		}
		o.kernel = kernel;
		if (list) {
			rc = list_scenarios(kernel);
			goto out;
		}
		if (!o.probe)
			o.probe = probe = replay_find_file(NULL, "probes/krewind.probe");
	} else if (list) {
		rc = list_scenarios(o.kernel);
		goto out;
	}
	if (o.kernel && (rc = validate_kernel(o.kernel)) != CLI_OK)
		goto out;
	if (o.image && access(o.image, R_OK) < 0) {
		rc = cli_error(CLI_USAGE, "cannot read disk image %s", o.image);
		goto out;
	}
	if (o.scenario && (rc = validate_scenario(o.kernel, o.scenario)) != CLI_OK)
		goto out;
	if (o.symbols && access(o.symbols, R_OK) < 0) {
		rc = cli_error(CLI_USAGE, "cannot read symbols %s", o.symbols);
		goto out;
	}
	if (o.initrd && access(o.initrd, R_OK) < 0) {
		rc = cli_error(CLI_USAGE, "cannot read initrd %s", o.initrd);
		goto out;
	}
	if (o.probe && access(o.probe, R_OK) < 0) {
		rc = cli_error(CLI_USAGE, "cannot read probe file %s", o.probe);
		goto out;
	}
	if (o.probe && !o.symbols && !o.kernel) {
		rc = cli_error(CLI_USAGE, "a probe needs the kernel's symbols: give --symbols ELF");
		goto out;
	}
	if (o.probe && (rc = validate_probe(o.probe, o.symbols ? o.symbols : o.kernel)) != CLI_OK)
		goto out;
	if (!no_plugin && !o.probe && !quiet)
		fprintf(stderr, "krewind: note: no --probe: only traps, iretq, IRQL (CR8) writes, EOIs and serial "
				"lines are traced\n");
	if (!no_plugin) {
		plugin = replay_find_file("KREWIND_PLUGIN", "tracer/libkrewind.so");
		if (!plugin) {
			rc = cli_error(CLI_FAIL, "cannot find the plugin build/tracer/libkrewind.so (set KREWIND_PLUGIN)");
			goto out;
		}
		o.plugin = plugin;
	} else {
		o.probe = NULL;
	}
	o.progress = !quiet && isatty(2);
	if (qemu_guard_begin(&g, &err) < 0) {
		rc = cli_error_msg(CLI_FAIL, NULL, err);
		goto out;
	}
	o.guard = g;
	rc = replay_record(&o, &r, &err);
	if (rc == REPLAY_E_EXISTS || rc == REPLAY_E_ARG || ((rc == REPLAY_E_IO || rc == REPLAY_E_QEMU) && !r)) {
		rc = cli_error_msg(CLI_USAGE, NULL, err);
		goto out;
	}
	if (r && rc == REPLAY_E_INTERRUPTED) {
		mark_interrupted(r);
		print_summary(r, json);
		free(err);
		rc = CLI_INTERRUPTED;
		goto out;
	}
	if (r && rc == 0)
		print_summary(r, json);
	if (rc < 0) {
		rc = cli_error_msg(CLI_FAIL, NULL, err);
		goto out;
	}
	rc = CLI_OK;
out:
	replay_recording_free(r);
	qemu_guard_end(g);
	free(kernel);
	free(probe);
	free(plugin);
	free(kept);
	return rc;
}
