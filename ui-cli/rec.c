/*
 * rec.c - opening a recording named on the command line: resolution through
 * the replay module (directory, name under traces/, trace.db path), then the
 * trace database read-only. Both failures are input errors (exit 2) except
 * running out of memory. Also the db-backed names for describing events.
 */
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "replay/replay.h"
#include "ui-cli/cli.h"

/* A recording for a trace file that replay_recording_open does not take
 * (not named trace.db): only dir, name and db_path are set. */
static int bare_trace(const char *path, struct replay_recording **out)
{
	struct replay_recording *r = replay_recording_new();
	char *copy = strdup(path);

	if (r == NULL || copy == NULL)
		goto oom;
	r->db_path = strdup(path);
	r->dir = strdup(dirname(copy));
	strcpy(copy, path);
	r->name = strdup(basename(copy));
	if (r->db_path == NULL || r->dir == NULL || r->name == NULL)
		goto oom;
	free(copy);
	*out = r;
	return CLI_OK;
oom:
	if (r)
		replay_recording_free(r);
	free(copy);
	return cli_error(CLI_FAIL, "out of memory");
}

int cli_rec_open(const char *spec, struct cli_rec *out)
{
	struct stat st;
	char *err = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = replay_recording_open(spec, &out->rec, &err);
	if (rc == REPLAY_E_IO && stat(spec, &st) == 0 && S_ISREG(st.st_mode)) {
		/* Any trace file, whatever its name: a bare trace. */
		free(err);
		err = NULL;
		rc = bare_trace(spec, &out->rec);
		if (rc != CLI_OK)
			return rc;
	} else if (rc != REPLAY_OK) {
		return cli_error_msg(rc == REPLAY_E_NOMEM ? CLI_FAIL : CLI_USAGE, NULL,
				     err ? err : strdup("cannot open the recording"));
	}
	rc = db_reader_open(out->rec->db_path, &out->db, &err);
	if (rc != DB_OK) {
		replay_recording_free(out->rec);
		out->rec = NULL;
		return cli_error_msg(rc == DB_E_NOMEM ? CLI_FAIL : CLI_USAGE, NULL,
				     err ? err : strdup("cannot open the trace"));
	}
	return CLI_OK;
}

int cli_rec_open_arg(const char *cmd, const char *spec, struct cli_rec *out)
{
	if (spec == NULL)
		return cli_usage_error(cmd, "missing the recording (REC)");
	return cli_rec_open(spec, out);
}

void cli_rec_close(struct cli_rec *r)
{
	if (r->db)
		db_reader_close(r->db);
	if (r->rec)
		replay_recording_free(r->rec);
	r->db = NULL;
	r->rec = NULL;
}

static const char *db_thread_cb(void *ctx, uint64_t addr)
{
	return db_thread_name(ctx, addr);
}

static const char *db_thread_at_cb(void *ctx, uint64_t addr, int32_t tid, int64_t id)
{
	return tid >= 0 ? db_thread_name_tid(ctx, addr, tid) : db_thread_name_after(ctx, addr, id);
}

static const char *db_lock_cb(void *ctx, uint64_t addr)
{
	const char *n = db_lock_name(ctx, addr);

	return n && *n ? n : db_lock_class(ctx, addr);
}

static char *db_symbol_cb(void *ctx, uint64_t addr, char *buf, size_t size)
{
	return db_symbolize(ctx, addr, buf, size);
}

void cli_names_from_db(struct cli_names *n, struct db_reader *r)
{
	n->thread = db_thread_cb;
	n->thread_at = db_thread_at_cb;
	n->lock = db_lock_cb;
	n->symbol = db_symbol_cb;
	n->ctx = r;
	int64_t counts[DB_KIND_MAX + 1] = {0};
	n->no_irql = db_count_by_kind(r, counts, NULL) == DB_OK && counts[0] > 0 && counts[DB_IRQL] == 0;
}

int cli_rec_has_manifest(const struct replay_recording *r)
{
	return r->qemu_args != NULL || r->started_at != NULL || r->outcome != NULL || r->qemu_version != NULL ||
	       r->kernel != NULL || r->scenario != NULL;
}

const char *cli_rec_outcome(const struct cli_rec *r)
{
	const char *o = r->rec->outcome;

	if (o == NULL || *o == '\0')
		o = db_meta(r->db, "outcome");
	return o && *o ? o : NULL;
}
