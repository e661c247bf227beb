/*
 * cmd_pack.c - `krewind pack REC`: make a recording travel on its own (as
 * `rr pack`). Large inputs (a Linux vmlinux) are kept in the recording as hard
 * links or references to the original (replay/recording.c); pack checks each
 * against its recorded sha256 and replaces it by a copy, so the directory can
 * be archived, moved to another machine, or outlive a rebuild.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "replay/replay.h"
#include "ui-cli/cli.h"

static const char synopsis[] = "krewind pack REC [--json]";
static const char description[] =
	"Copies into the recording every input it only links to or references (the\n"
	"kernel's symbols ELF, when larger than 32 MB, is hard-linked or referenced\n"
	"at record time), after checking each is unchanged since the recording.\n"
	"Afterwards the directory holds everything a replay needs. Exit 2 if an\n"
	"original is gone or changed (the recording cannot be packed any more).";

enum { OPT_JSON = 1 };
static const struct cli_option options[] = {
	{OPT_JSON, "json", 0, NULL, "print JSON"},
	{0},
};

int cmd_pack(int argc, char **argv)
{
	struct replay_recording *r = NULL;
	struct cli_args a;
	const char *v, *spec = NULL;
	char *err = NULL;
	int64_t copied = 0;
	int opt, rc, json = 0;
	size_t i;

	cli_args_init(&a, "pack", argc, argv);
	while ((opt = cli_next_opt(&a, options, &v)) != CLI_OPT_END) {
		if ((rc = cli_common_opt(&a, opt, v, &spec, synopsis, description, options)) >= 0)
			return rc;
		if (opt == OPT_JSON)
			json = 1;
	}
	if (!spec)
		return cli_usage_error("pack", "missing the recording (REC)");
	if (replay_recording_open(spec, &r, &err) < 0)
		return cli_error_msg(CLI_USAGE, NULL, err);
	if (!cli_rec_has_manifest(r)) {
		rc = cli_error(CLI_USAGE, "%s has no manifest.json: nothing to pack", spec);
		goto out;
	}
	rc = replay_pack(r, &copied, &err);
	if (rc < 0) {
		rc = cli_error_msg(rc == REPLAY_E_ARG ? CLI_USAGE : CLI_FAIL, "pack", err);
		goto out;
	}
	if (json) {
		struct cli_json j;
		cli_json_init(&j, stdout);
		cli_json_object(&j);
		cli_json_kstr(&j, "recording", r->dir);
		cli_json_kint(&j, "bytes_copied", copied);
		cli_json_key(&j, "inputs");
		cli_json_array(&j);
		for (i = 0; i < r->n_inputs; i++) {
			cli_json_object(&j);
			cli_json_kstr(&j, "file", r->inputs[i].file);
			cli_json_kstr(&j, "source", r->inputs[i].source);
			cli_json_kstr(&j, "stored", r->inputs[i].stored);
			cli_json_kint(&j, "size", r->inputs[i].size);
			cli_json_close(&j);
		}
		cli_json_close(&j);
		cli_json_close(&j);
		cli_json_end(&j);
	} else {
		printf("packed %s: %.1f MB copied in\n", r->name, (double)copied / 1e6);
		for (i = 0; i < r->n_inputs; i++)
			printf("  %-12s %-8s %10.1f MB  from %s\n", r->inputs[i].file, r->inputs[i].stored,
			       (double)r->inputs[i].size / 1e6, r->inputs[i].source ? r->inputs[i].source : "-");
	}
	rc = CLI_OK;
out:
	replay_recording_free(r);
	return rc;
}
