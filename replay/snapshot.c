/*
 * snapshot.c - snapshots taken while recording, so a replay can start near
 * its target instead of at the first instruction.
 *
 * QEMU 10.0.2 deadlocks when replay-seek (or loadvm) loads a snapshot other
 * than the one taken at start: the main thread, holding the replay lock while
 * it runs the QMP command, waits in load_snapshot -> vmstate_load_state ->
 * run_on_cpu for the vCPU thread, which waits for the replay lock. Loading a
 * snapshot when QEMU starts (-icount rrsnapshot=NAME) takes another path and
 * works, and a snapshot saved while recording replays exactly (same registers
 * at every later icount as a replay from the start). So:
 *
 *   - while recording, every few seconds krewind stops the VM, reads its
 *     icount N, creates snapshots/N.qcow2, attaches it (blockdev-add), saves
 *     the VM state into it alone (snapshot-save, tag "kr-N"), detaches it and
 *     lets the VM go on. The stop is not part of the guest's run: replays
 *     across it are identical to the recording.
 *   - a replay that only moves forward (replay --to) starts a QEMU whose
 *     snapshot drive is the nearest snapshots/N.qcow2 at or before its target
 *     and whose rrsnapshot is kr-N. Such a QEMU must never seek back (that
 *     would be the deadlocking load): sessions started this way refuse to.
 *
 * The files are the whole record: their names are the icounts.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "replay/internal.h"

#define SNAPSHOT_DIR "snapshots"

/* Waits for the snapshot-save job to conclude; its error, if any, in *err. */
static int wait_job(struct qmp *q, const char *id, char **err)
{
	int64_t t0 = replay_now_ms();

	for (;;) {
		struct qmp_json *ev = NULL, *jobs = NULL;
		const char *status;
		int rc = qmp_wait_event(q, "JOB_STATUS_CHANGE", 1000, &ev, err);

		if (rc < 0 && rc != REPLAY_E_TIMEOUT)
			return rc;
		if (rc == REPLAY_E_TIMEOUT) {
			free(*err);
			*err = NULL;
		}
		status = rc == 0 ? qmp_json_get_str(qmp_json_get(ev, "data"), "status") : NULL;
		if (status && strcmp(status, "concluded") == 0) {
			size_t i;
			qmp_json_free(ev);
			if ((rc = qmp_execute(q, "query-jobs", NULL, &jobs, err)) < 0)
				return rc;
			for (i = 0; jobs && i < jobs->n; i++) {
				const char *e = qmp_json_get_str(jobs->items[i], "error");
				const char *jid = qmp_json_get_str(jobs->items[i], "id");
				if (jid && strcmp(jid, id) == 0 && e)
					rc = replay_set_err(err, REPLAY_E_QEMU, "snapshot-save: %s", e);
			}
			qmp_json_free(jobs);
			return rc;
		}
		qmp_json_free(ev);
		if (replay_now_ms() - t0 > 120000)
			return replay_set_err(err, REPLAY_E_TIMEOUT, "snapshot-save did not finish in 120 s");
	}
}

int replay_snapshot_take(struct qmp *q, const char *dir, struct qemu_guard *g, uint64_t *icount, char **err)
{
	char *sdir = replay_path_join(dir, SNAPSHOT_DIR), file[64], args[512], *img_argv[8];
	struct qemu_spawn_opts so = { .cwd = dir };
	struct qemu_proc *img = NULL;
	int rc, status = -1, attached = 0;

	if (!sdir)
		return replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
	if (mkdir(sdir, 0755) < 0 && errno != EEXIST) {
		rc = replay_set_err(err, REPLAY_E_IO, "mkdir %s: %s", sdir, strerror(errno));
		free(sdir);
		return rc;
	}
	free(sdir);
	if ((rc = qmp_execute(q, "stop", NULL, NULL, err)) < 0 || (rc = qmp_replay_icount(q, icount, err)) < 0)
		goto resume;
	snprintf(file, sizeof(file), SNAPSHOT_DIR "/%" PRIu64 ".qcow2", *icount);
	img_argv[0] = "qemu-img";
	img_argv[1] = "create";
	img_argv[2] = "-q";
	img_argv[3] = "-f";
	img_argv[4] = "qcow2";
	img_argv[5] = file;
	img_argv[6] = "1M";
	img_argv[7] = NULL;
	if ((rc = qemu_spawn(img_argv, &so, &img, err)) < 0)
		goto resume;
	rc = qemu_proc_wait(img, g, 30000, &status);
	qemu_proc_free(img);
	if (rc < 0 || status != 0) {
		rc = replay_set_err(err, rc < 0 ? rc : REPLAY_E_QEMU, "qemu-img create %s failed", file);
		goto resume;
	}
	snprintf(args, sizeof(args),
		 "{\"driver\":\"qcow2\",\"node-name\":\"krsnap\",\"file\":{\"driver\":\"file\",\"filename\":\"%s\"}}", file);
	if ((rc = qmp_execute(q, "blockdev-add", args, NULL, err)) < 0)
		goto resume;
	attached = 1;
	snprintf(args, sizeof(args),
		 "{\"job-id\":\"krsnap\",\"tag\":\"kr-%" PRIu64 "\",\"vmstate\":\"krsnap\",\"devices\":[\"krsnap\"]}", *icount);
	if ((rc = qmp_execute(q, "snapshot-save", args, NULL, err)) < 0 || (rc = wait_job(q, "krsnap", err)) < 0) {
		char *e = NULL;
		qmp_execute(q, "job-dismiss", "{\"id\":\"krsnap\"}", NULL, &e);
		free(e);
		goto resume;
	}
	rc = qmp_execute(q, "job-dismiss", "{\"id\":\"krsnap\"}", NULL, err);
resume:
	if (attached) {
		char *e = NULL;
		qmp_execute(q, "blockdev-del", "{\"node-name\":\"krsnap\"}", NULL, &e);
		free(e);
	}
	{
		char *e = NULL;
		int c = qmp_execute(q, "cont", NULL, NULL, &e);
		if (c < 0 && rc == 0) {
			rc = c;
			*err = e;
		} else
			free(e);
	}
	if (rc < 0) {
		char *path = replay_path_join(dir, file);
		if (path)
			remove(path); /* a half-written snapshot is no snapshot */
		free(path);
	}
	return rc;
}

int replay_snapshot_nearest(const char *dir, uint64_t icount, uint64_t *at)
{
	char *sdir = replay_path_join(dir, SNAPSHOT_DIR);
	DIR *d = sdir ? opendir(sdir) : NULL;
	struct dirent *e;
	int found = 0;

	free(sdir);
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char *end;
		uint64_t n;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		errno = 0;
		n = strtoull(e->d_name, &end, 10);
		if (errno || strcmp(end, ".qcow2") != 0 || n == 0 || n > icount)
			continue;
		if (!found || n > *at)
			*at = n;
		found = 1;
	}
	closedir(d);
	return found;
}
