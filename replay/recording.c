/*
 * recording.c - recording directories and their manifest.json.
 *
 * A recording is self-contained: QEMU runs with the recording directory as
 * its working directory and every file in qemu_args is named relative to it,
 * so the directory can be moved or copied and still replays.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "replay/internal.h"

struct replay_recording *replay_recording_new(void)
{
	struct replay_recording *r = calloc(1, sizeof(*r));
	if (r)
		r->exit_status = -1;
	return r;
}

void replay_argv_free(char **argv)
{
	char **a;

	if (!argv)
		return;
	for (a = argv; *a; a++)
		free(*a);
	free(argv);
}

void replay_recording_free(struct replay_recording *r)
{
	size_t i;

	if (!r)
		return;
	free(r->dir);
	free(r->db_path);
	free(r->name);
	free(r->kernel);
	free(r->symbols);
	free(r->probe);
	free(r->replay_log);
	free(r->snapshot_image);
	free(r->scenario);
	free(r->append);
	free(r->outcome);
	free(r->qemu_version);
	free(r->started_at);
	replay_argv_free(r->qemu_args);
	free(r->serial_log);
	free(r->kernel_source);
	free(r->kernel_sha256);
	free(r->krewind_version);
	free(r->outcome_detail);
	for (i = 0; i < r->n_counts; i++)
		free(r->counts[i].kind);
	free(r->counts);
	free(r);
}

static int is_file(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_dir(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The part of path after dir/ if path is inside dir, else path. */
static const char *relative(const char *dir, const char *path)
{
	size_t n = strlen(dir);

	if (path && strncmp(path, dir, n) == 0 && path[n] == '/')
		return path + n + 1;
	return path;
}

/* ---------------------------------------------------------------- writing */

static void kstr(struct qmp_buf *b, const char *key, const char *v)
{
	qmp_buf_add(b, ",\n  ", 4);
	qmp_buf_str(b, key);
	qmp_buf_add(b, ": ", 2);
	qmp_buf_str(b, v);
}

int replay_manifest_write(const struct replay_recording *r, char **err)
{
	struct qmp_buf b = { 0 };
	char *path = NULL, *tmp = NULL;
	FILE *f = NULL;
	size_t i;
	int rc = 0;

	qmp_buf_add(&b, "{\n  \"krewind_version\": ", sizeof("{\n  \"krewind_version\": ") - 1);
	qmp_buf_str(&b, r->krewind_version ? r->krewind_version : REPLAY_KREWIND_VERSION);
	kstr(&b, "qemu_version", r->qemu_version);
	kstr(&b, "started_at", r->started_at);
	kstr(&b, "scenario", r->scenario);
	kstr(&b, "append", r->append);
	kstr(&b, "kernel", relative(r->dir, r->kernel));
	kstr(&b, "kernel_source", r->kernel_source);
	kstr(&b, "kernel_sha256", r->kernel_sha256);
	kstr(&b, "symbols", relative(r->dir, r->symbols));
	kstr(&b, "probe", relative(r->dir, r->probe));
	kstr(&b, "trace", relative(r->dir, r->db_path));
	kstr(&b, "replay_log", relative(r->dir, r->replay_log));
	kstr(&b, "snapshot_image", relative(r->dir, r->snapshot_image));
	kstr(&b, "serial_log", relative(r->dir, r->serial_log));
	kstr(&b, "outcome", r->outcome);
	kstr(&b, "outcome_detail", r->outcome_detail);
	qmp_buf_printf(&b, ",\n  \"exit_status\": %d", r->exit_status);
	qmp_buf_printf(&b, ",\n  \"icount_total\": %llu", (unsigned long long)r->icount_total);
	qmp_buf_printf(&b, ",\n  \"events_total\": %lld", (long long)r->events_total);
	qmp_buf_add(&b, ",\n  \"event_counts\": {", sizeof(",\n  \"event_counts\": {") - 1);
	for (i = 0; i < r->n_counts; i++) {
		qmp_buf_add(&b, i ? ", " : "", i ? 2 : 0);
		qmp_buf_str(&b, r->counts[i].kind);
		qmp_buf_printf(&b, ": %lld", (long long)r->counts[i].n);
	}
	qmp_buf_add(&b, "}", sizeof("}") - 1);
	qmp_buf_printf(&b, ",\n  \"wall_seconds\": %.3f", r->wall_seconds);
	qmp_buf_add(&b, ",\n  \"qemu_args\": [", sizeof(",\n  \"qemu_args\": [") - 1);
	for (i = 0; i < r->n_qemu_args; i++) {
		qmp_buf_add(&b, i ? ",\n    " : "\n    ", i ? 6 : 5);
		qmp_buf_str(&b, r->qemu_args[i]);
	}
	qmp_buf_add(&b, "\n  ]\n}\n", sizeof("\n  ]\n}\n") - 1);
	if (b.oom) {
		rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
		goto out;
	}
	if (asprintf(&path, "%s/manifest.json", r->dir) < 0 || asprintf(&tmp, "%s/.manifest.json.tmp", r->dir) < 0) {
		rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
		goto out;
	}
	f = fopen(tmp, "w");
	if (!f || fwrite(b.buf, 1, b.len, f) != b.len || fflush(f) != 0 || fsync(fileno(f)) != 0) {
		rc = replay_set_err(err, REPLAY_E_IO, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (fclose(f) != 0) {
		f = NULL;
		rc = replay_set_err(err, REPLAY_E_IO, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	f = NULL;
	if (rename(tmp, path) < 0)
		rc = replay_set_err(err, REPLAY_E_IO, "cannot rename %s: %s", tmp, strerror(errno));
out:
	if (f)
		fclose(f);
	if (rc < 0 && tmp)
		unlink(tmp);
	free(path);
	free(tmp);
	free(b.buf);
	return rc;
}

/* ---------------------------------------------------------------- reading */

/* Copies the string member key into *dst, made absolute under dir if asked. */
static int take_str(const struct qmp_json *m, const char *key, const char *dir, char **dst)
{
	const char *s = qmp_json_get_str(m, key);

	if (!s)
		return 0;
	*dst = dir ? replay_path_join(dir, s) : strdup(s);
	return *dst ? 0 : REPLAY_E_NOMEM;
}

int replay_manifest_parse(const char *text, size_t len, const char *dir, struct replay_recording **out, char **err)
{
	struct qmp_json *m = NULL;
	struct replay_recording *r = NULL;
	const struct qmp_json *v;
	const char *base;
	size_t i, used;
	int rc;

	rc = qmp_json_parse(text, len, &m, &used, err);
	if (rc < 0)
		goto fail;
	if (m->type != QMP_JSON_OBJECT || used != len) {
		rc = replay_set_err(err, REPLAY_E_FORMAT, "manifest is not one JSON object");
		goto fail;
	}
	r = replay_recording_new();
	if (!r || !(r->dir = strdup(dir))) {
		rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
		goto fail;
	}
	base = strrchr(dir, '/');
	r->name = strdup(base && base[1] ? base + 1 : dir);
	if (!r->name || take_str(m, "krewind_version", NULL, &r->krewind_version) ||
	    take_str(m, "qemu_version", NULL, &r->qemu_version) || take_str(m, "started_at", NULL, &r->started_at) ||
	    take_str(m, "scenario", NULL, &r->scenario) || take_str(m, "append", NULL, &r->append) ||
	    take_str(m, "kernel", dir, &r->kernel) || take_str(m, "kernel_source", NULL, &r->kernel_source) ||
	    take_str(m, "kernel_sha256", NULL, &r->kernel_sha256) || take_str(m, "symbols", dir, &r->symbols) ||
	    take_str(m, "probe", dir, &r->probe) || take_str(m, "trace", dir, &r->db_path) ||
	    take_str(m, "replay_log", dir, &r->replay_log) ||
	    take_str(m, "snapshot_image", dir, &r->snapshot_image) ||
	    take_str(m, "serial_log", dir, &r->serial_log) || take_str(m, "outcome", NULL, &r->outcome) ||
	    take_str(m, "outcome_detail", NULL, &r->outcome_detail)) {
		rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
		goto fail;
	}
	if (!r->db_path && !(r->db_path = replay_path_join(dir, "trace.db"))) {
		rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
		goto fail;
	}
	if (!r->symbols && r->kernel && !(r->symbols = strdup(r->kernel))) {
		rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
		goto fail;
	}
	if ((v = qmp_json_get(m, "exit_status")) && v->type == QMP_JSON_NUMBER && v->is_int)
		r->exit_status = v->negative ? -(int)v->u : (int)v->u;
	qmp_json_get_u64(m, "icount_total", &r->icount_total);
	if ((v = qmp_json_get(m, "events_total")) && v->type == QMP_JSON_NUMBER && v->is_int)
		r->events_total = v->negative ? -(int64_t)v->u : (int64_t)v->u;
	if ((v = qmp_json_get(m, "wall_seconds")) && v->type == QMP_JSON_NUMBER)
		r->wall_seconds = v->d;
	if ((v = qmp_json_get(m, "event_counts")) && v->type == QMP_JSON_OBJECT && v->n) {
		r->counts = calloc(v->n, sizeof(*r->counts));
		if (!r->counts) {
			rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
			goto fail;
		}
		for (i = 0; i < v->n; i++) {
			if (v->items[i]->type != QMP_JSON_NUMBER)
				continue;
			r->counts[r->n_counts].kind = strdup(v->keys[i]);
			r->counts[r->n_counts].n = (int64_t)v->items[i]->d;
			if (!r->counts[r->n_counts++].kind) {
				rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
				goto fail;
			}
		}
	}
	v = qmp_json_get(m, "qemu_args");
	if (!v || v->type != QMP_JSON_ARRAY) {
		rc = replay_set_err(err, REPLAY_E_FORMAT, "manifest has no qemu_args array");
		goto fail;
	}
	r->qemu_args = calloc(v->n + 1, sizeof(char *));
	if (!r->qemu_args) {
		rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
		goto fail;
	}
	for (i = 0; i < v->n; i++) {
		if (v->items[i]->type != QMP_JSON_STRING) {
			rc = replay_set_err(err, REPLAY_E_FORMAT, "qemu_args holds a non-string");
			goto fail;
		}
		if (!(r->qemu_args[i] = strdup(v->items[i]->str))) {
			rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
			goto fail;
		}
		r->n_qemu_args++;
	}
	qmp_json_free(m);
	*out = r;
	return 0;
fail:
	qmp_json_free(m);
	replay_recording_free(r);
	return rc;
}

static int read_text(const char *path, char **text, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct qmp_buf b = { 0 };
	char buf[4096];
	size_t n;

	if (!f)
		return REPLAY_E_IO;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		qmp_buf_add(&b, buf, n);
	if (ferror(f) || b.oom) {
		fclose(f);
		free(b.buf);
		return b.oom ? REPLAY_E_NOMEM : REPLAY_E_IO;
	}
	fclose(f);
	if (!b.buf)
		qmp_buf_add(&b, "", sizeof("") - 1);
	*text = b.buf;
	*len = b.len;
	return b.buf ? 0 : REPLAY_E_NOMEM;
}

/* dir holds the recording: with a manifest, or a bare trace.db. */
static int open_dir(const char *dir_in, struct replay_recording **out, char **err)
{
	char *dir = realpath(dir_in, NULL), *mpath = NULL, *text = NULL;
	struct replay_recording *r = NULL;
	size_t len;
	int rc;

	if (!dir)
		return replay_set_err(err, REPLAY_E_IO, "no recording at %s", dir_in);
	if (asprintf(&mpath, "%s/manifest.json", dir) < 0) {
		rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
		goto out;
	}
	if (is_file(mpath)) {
		rc = read_text(mpath, &text, &len);
		if (rc < 0) {
			rc = replay_set_err(err, rc, "cannot read %s", mpath);
			goto out;
		}
		rc = replay_manifest_parse(text, len, dir, &r, err);
		if (rc < 0) {
			char *inner = err ? *err : NULL;
			if (err) {
				*err = NULL;
				replay_set_err(err, rc, "%s: %s", mpath, inner ? inner : "bad manifest");
			}
			free(inner);
			goto out;
		}
	} else {
		char *db = replay_path_join(dir, "trace.db");
		const char *base = strrchr(dir, '/');
		if (!db || !is_file(db)) {
			free(db);
			rc = replay_set_err(err, REPLAY_E_IO, "no recording at %s (neither manifest.json nor trace.db)", dir_in);
			goto out;
		}
		r = replay_recording_new();
		if (!r) {
			free(db);
			rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
			goto out;
		}
		r->db_path = db;
		r->dir = strdup(dir);
		r->name = strdup(base && base[1] ? base + 1 : dir);
		if (!r->dir || !r->name) {
			rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
			goto out;
		}
	}
	*out = r;
	r = NULL;
	rc = 0;
out:
	replay_recording_free(r);
	free(dir);
	free(mpath);
	free(text);
	return rc;
}

int replay_recording_open(const char *rec, struct replay_recording **out, char **err)
{
	const char *traces = getenv("KREWIND_TRACES");
	char *p = NULL;
	int rc;

	if (!rec || !*rec)
		return replay_set_err(err, REPLAY_E_ARG, "no recording given");
	if (is_dir(rec))
		return open_dir(rec, out, err);
	if (is_file(rec)) {
		/* A trace.db: its directory is the recording. */
		char *copy = strdup(rec), *slash;
		struct replay_recording *r = NULL;
		if (!copy)
			return replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
		slash = strrchr(copy, '/');
		if (slash)
			*slash = 0;
		rc = open_dir(slash ? (*copy ? copy : "/") : ".", &r, err);
		free(copy);
		if (rc < 0)
			return rc;
		p = realpath(rec, NULL);
		if (!p) {
			replay_recording_free(r);
			return replay_set_err(err, REPLAY_E_IO, "no recording at %s", rec);
		}
		free(r->db_path);
		r->db_path = p;
		*out = r;
		return 0;
	}
	if (!strchr(rec, '/')) {
		if (asprintf(&p, "%s/%s", traces && *traces ? traces : "traces", rec) < 0)
			return replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
		if (is_dir(p)) {
			rc = open_dir(p, out, err);
			free(p);
			return rc;
		}
		free(p);
	}
	return replay_set_err(err, REPLAY_E_IO, "no recording named %s", rec);
}

static int dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int empty = 1;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			empty = 0;
			break;
		}
	closedir(d);
	return empty;
}

static int mkdir_p(const char *path)
{
	char *copy = strdup(path), *s;
	int rc = 0;

	if (!copy)
		return -1;
	for (s = copy + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(copy, 0755) < 0 && errno != EEXIST)
			rc = -1;
		*s = '/';
	}
	if (rc == 0 && mkdir(copy, 0755) < 0 && errno != EEXIST)
		rc = -1;
	free(copy);
	return rc;
}

int replay_recording_mkdir(const char *requested, const char *parent, const char *name, char **out, char **err)
{
	char *p = NULL;
	int n;

	if (requested) {
		struct stat st;
		if (stat(requested, &st) == 0) {
			if (!S_ISDIR(st.st_mode))
				return replay_set_err(err, REPLAY_E_EXISTS, "%s exists and is not a directory", requested);
			if (!dir_is_empty(requested))
				return replay_set_err(err, REPLAY_E_EXISTS, "%s exists and is not empty: never overwriting a recording",
					       requested);
		} else if (mkdir_p(requested) < 0) {
			return replay_set_err(err, REPLAY_E_IO, "cannot create %s: %s", requested, strerror(errno));
		}
		p = realpath(requested, NULL);
		if (!p)
			return replay_set_err(err, REPLAY_E_IO, "cannot resolve %s: %s", requested, strerror(errno));
		*out = p;
		return 0;
	}
	if (!name || !*name || strchr(name, '/'))
		return replay_set_err(err, REPLAY_E_ARG, "bad recording name '%s'", name ? name : "");
	if (mkdir_p(parent) < 0)
		return replay_set_err(err, REPLAY_E_IO, "cannot create %s: %s", parent, strerror(errno));
	for (n = 1; n < 100000; n++) {
		if (asprintf(&p, "%s/%s-%d", parent, name, n) < 0)
			return replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
		if (mkdir(p, 0755) == 0) {
			char *abs = realpath(p, NULL);
			free(p);
			if (!abs)
				return replay_set_err(err, REPLAY_E_IO, "cannot resolve the new recording directory");
			*out = abs;
			return 0;
		}
		if (errno != EEXIST) {
			int e = errno;
			char *msg = NULL;
			replay_set_err(&msg, REPLAY_E_IO, "cannot create %s: %s", p, strerror(e));
			free(p);
			if (err)
				*err = msg;
			else
				free(msg);
			return REPLAY_E_IO;
		}
		free(p);
	}
	return replay_set_err(err, REPLAY_E_IO, "no free recording name under %s", parent);
}

int replay_replay_argv(const struct replay_recording *r, char *const *extra, char ***out, char **err)
{
	size_t n_extra = 0, i, k = 0;
	char **v;
	int has_rr = 0;

	if (!r->qemu_args || !r->n_qemu_args)
		return replay_set_err(err, REPLAY_E_ARG, "%s: the manifest has no QEMU command line", r->name ? r->name : "recording");
	while (extra && extra[n_extra])
		n_extra++;
	v = calloc(r->n_qemu_args + n_extra + 1, sizeof(char *));
	if (!v)
		return replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
	for (i = 0; i < r->n_qemu_args; i++) {
		const char *a = r->qemu_args[i];
		char *s;

		/* The recording's plugin wrote trace.db; a replay must not. */
		if (strcmp(a, "-plugin") == 0 && i + 1 < r->n_qemu_args) {
			i++;
			continue;
		}
		s = strdup(a);
		if (!s)
			goto oom;
		/* Replays only read the snapshot image: let several run at once. */
		if (i > 0 && strcmp(r->qemu_args[i - 1], "-drive") == 0 && strstr(s, "if=none") &&
		    !strstr(s, "locking=")) {
			char *t = NULL;
			if (asprintf(&t, "%s,file.locking=off", s) < 0) {
				free(s);
				goto oom;
			}
			free(s);
			s = t;
		}
		if (i > 0 && strcmp(r->qemu_args[i - 1], "-icount") == 0) {
			char *rr = strstr(s, "rr=record");
			if (rr) {
				memcpy(rr, "rr=replay", 9);
				has_rr = 1;
			}
		}
		v[k++] = s;
	}
	for (i = 0; i < n_extra; i++)
		if (!(v[k++] = strdup(extra[i])))
			goto oom;
	if (!has_rr) {
		replay_argv_free(v);
		return replay_set_err(err, REPLAY_E_ARG, "%s was recorded without record/replay (--no-rr)",
			       r->name ? r->name : "the recording");
	}
	*out = v;
	return 0;
oom:
	replay_argv_free(v);
	return replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
}
