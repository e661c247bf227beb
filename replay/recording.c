/*
 * recording.c - recording directories and their manifest.json.
 *
 * A recording is self-contained: QEMU runs with the recording directory as
 * its working directory and every file in qemu_args is named relative to it,
 * so the directory can be moved or copied and still replays. Large inputs (a
 * Linux vmlinux is 600 MB) are linked or referenced instead of copied, with
 * their checksum in the manifest ("inputs"); `krewind pack` copies them in.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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
	free(r->mode);
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
	for (i = 0; i < r->n_inputs; i++) {
		free(r->inputs[i].file);
		free(r->inputs[i].source);
		free(r->inputs[i].sha256);
		free(r->inputs[i].build_id);
		free(r->inputs[i].stored);
	}
	free(r->inputs);
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
	if (r->mode) /* SMP: re-executed, not replayed (smp.c) */
		kstr(&b, "mode", r->mode);
	if (r->vcpus)
		qmp_buf_printf(&b, ",\n  \"vcpus\": %d", r->vcpus);
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
	if (r->n_inputs) {
		qmp_buf_add(&b, ",\n  \"inputs\": [", sizeof(",\n  \"inputs\": [") - 1);
		for (i = 0; i < r->n_inputs; i++) {
			const struct replay_input *in = &r->inputs[i];
			const char *open = i ? ",\n    {" : "\n    {";
			qmp_buf_add(&b, open, strlen(open));
			qmp_buf_str(&b, "file");
			qmp_buf_add(&b, ": ", 2);
			qmp_buf_str(&b, in->file);
			qmp_buf_add(&b, ", \"source\": ", sizeof(", \"source\": ") - 1);
			qmp_buf_str(&b, in->source);
			qmp_buf_add(&b, ", \"stored\": ", sizeof(", \"stored\": ") - 1);
			qmp_buf_str(&b, in->stored);
			qmp_buf_add(&b, ", \"sha256\": ", sizeof(", \"sha256\": ") - 1);
			qmp_buf_str(&b, in->sha256);
			qmp_buf_add(&b, ", \"build_id\": ", sizeof(", \"build_id\": ") - 1);
			qmp_buf_str(&b, in->build_id);
			qmp_buf_printf(&b, ", \"size\": %lld, \"mtime_ns\": %lld}", (long long)in->size,
				       (long long)in->mtime_ns);
		}
		qmp_buf_add(&b, "\n  ]", sizeof("\n  ]") - 1);
	}
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
	    take_str(m, "outcome_detail", NULL, &r->outcome_detail) || take_str(m, "mode", NULL, &r->mode)) {
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
	if ((v = qmp_json_get(m, "vcpus")) && v->type == QMP_JSON_NUMBER && v->is_int && !v->negative)
		r->vcpus = (int)v->u;
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
	if ((v = qmp_json_get(m, "inputs")) && v->type == QMP_JSON_ARRAY && v->n) {
		r->inputs = calloc(v->n, sizeof(*r->inputs));
		if (!r->inputs) {
			rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
			goto fail;
		}
		for (i = 0; i < v->n; i++) {
			const struct qmp_json *o = v->items[i], *num;
			struct replay_input *in = &r->inputs[r->n_inputs];
			if (o->type != QMP_JSON_OBJECT || !qmp_json_get_str(o, "file"))
				continue;
			r->n_inputs++;
			if (take_str(o, "file", NULL, &in->file) || take_str(o, "source", NULL, &in->source) ||
			    take_str(o, "stored", NULL, &in->stored) || take_str(o, "sha256", NULL, &in->sha256) ||
			    take_str(o, "build_id", NULL, &in->build_id)) {
				rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
				goto fail;
			}
			if ((num = qmp_json_get(o, "size")) && num->type == QMP_JSON_NUMBER && num->is_int)
				in->size = (int64_t)num->u;
			if ((num = qmp_json_get(o, "mtime_ns")) && num->type == QMP_JSON_NUMBER && num->is_int)
				in->mtime_ns = (int64_t)num->u;
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
	int has_rr = 0, rc;

	if (!r->qemu_args || !r->n_qemu_args)
		return replay_set_err(err, REPLAY_E_ARG, "%s: the manifest has no QEMU command line", r->name ? r->name : "recording");
	if ((rc = replay_inputs_check(r, err)) < 0)
		return rc;
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

/* ---------------------------------------------------------------- inputs */

static int64_t mtime_ns(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* The GNU build-id of an ELF64 file (from its PT_NOTE segments) as hex, or NULL. */
static char *elf_build_id(const char *path)
{
	unsigned char eh[64], ph[56];
	char *hex = NULL;
	FILE *f = fopen(path, "rb");
	uint64_t phoff;
	unsigned phnum, phentsize, i;

	if (!f)
		return NULL;
	if (fread(eh, 1, 64, f) != 64 || memcmp(eh, "\177ELF", 4) != 0 || eh[4] != 2 || eh[5] != 1)
		goto out;
	memcpy(&phoff, eh + 32, 8);
	phentsize = eh[54] | eh[55] << 8;
	phnum = eh[56] | eh[57] << 8;
	for (i = 0; i < phnum && i < 64 && phentsize >= 56 && !hex; i++) {
		uint32_t type;
		uint64_t off, size, pos = 0;
		if (fseeko(f, (off_t)(phoff + (uint64_t)i * phentsize), SEEK_SET) != 0 || fread(ph, 1, 56, f) != 56)
			break;
		memcpy(&type, ph, 4);
		memcpy(&off, ph + 8, 8);
		memcpy(&size, ph + 32, 8);
		if (type != 4 /* PT_NOTE */ || size > 65536)
			continue;
		while (pos + 12 <= size && !hex) {
			uint32_t nh[3];
			unsigned char desc[64];
			if (fseeko(f, (off_t)(off + pos), SEEK_SET) != 0 || fread(nh, 4, 3, f) != 3)
				break;
			uint64_t namesz = (nh[0] + 3u) & ~3u, descsz = (nh[1] + 3u) & ~3u;
			char name[4];
			if (nh[2] == 3 /* NT_GNU_BUILD_ID */ && nh[0] == 4 && nh[1] <= sizeof(desc) &&
			    fread(name, 1, 4, f) == 4 && memcmp(name, "GNU", 4) == 0 && fread(desc, 1, nh[1], f) == nh[1] &&
			    (hex = malloc(2 * nh[1] + 1))) {
				for (uint32_t j = 0; j < nh[1]; j++)
					sprintf(hex + 2 * j, "%02x", desc[j]);
				hex[2 * nh[1]] = 0;
			}
			pos += 12 + namesz + descsz;
		}
	}
out:
	fclose(f);
	return hex;
}

/* A reflink (copy-on-write clone) of from at to; 0 or -1. */
static int reflink(const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_CLOEXEC), out, rc = -1;

	if (in < 0)
		return -1;
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out >= 0) {
		rc = ioctl(out, FICLONE, in) == 0 ? 0 : -1;
		close(out);
		if (rc < 0)
			unlink(to);
	}
	close(in);
	return rc;
}

int replay_input_store(struct replay_recording *r, const char *source, const char *file, char **err)
{
	struct replay_input *in, *grown;
	char *dst = replay_path_join(r->dir, file), *abs = realpath(source, NULL), sha[65];
	const char *how = NULL;
	struct stat st;
	int rc = 0;

	if (!dst || !abs) {
		rc = abs ? replay_set_err(err, REPLAY_E_NOMEM, "out of memory")
			 : replay_set_err(err, REPLAY_E_IO, "cannot read %s: %s", source, strerror(errno));
		goto out;
	}
	if (stat(abs, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = replay_set_err(err, REPLAY_E_IO, "cannot read %s: not a regular file", source);
		goto out;
	}
	if (replay_sha256_file(abs, sha) < 0) {
		rc = replay_set_err(err, REPLAY_E_IO, "cannot read %s: %s", source, strerror(errno));
		goto out;
	}
	if (st.st_size <= REPLAY_COPY_MAX) {
		if ((rc = replay_copy_file(abs, dst, err)) < 0)
			goto out;
		how = "copy";
	} else if (reflink(abs, dst) == 0) {
		how = "reflink";
	} else if (link(abs, dst) == 0) {
		how = "hardlink";
	} else if (symlink(abs, dst) == 0) {
		how = "reference";
	} else {
		rc = replay_set_err(err, REPLAY_E_IO, "cannot store %s as %s: %s", source, dst, strerror(errno));
		goto out;
	}
	if (stat(dst, &st) < 0) {
		rc = replay_set_err(err, REPLAY_E_IO, "cannot read %s: %s", dst, strerror(errno));
		goto out;
	}
	grown = realloc(r->inputs, (r->n_inputs + 1) * sizeof(*r->inputs));
	if (!grown) {
		rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
		goto out;
	}
	r->inputs = grown;
	in = &r->inputs[r->n_inputs++];
	memset(in, 0, sizeof(*in));
	in->file = strdup(file);
	in->source = abs;
	abs = NULL;
	in->sha256 = strdup(sha);
	in->build_id = elf_build_id(dst);
	in->size = (int64_t)st.st_size;
	in->mtime_ns = mtime_ns(&st);
	in->stored = strdup(how);
	if (!in->file || !in->sha256 || !in->stored)
		rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
out:
	free(dst);
	free(abs);
	return rc;
}

/* 0 if dir/in->file is there with in's content; else REPLAY_E_ARG. */
static int input_check(const struct replay_recording *r, const struct replay_input *in, char **err)
{
	char *p = replay_path_join(r->dir, in->file), sha[65];
	const char *name = r->name ? r->name : r->dir;
	struct stat st;
	int rc = 0;

	if (!p)
		return replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
	if (stat(p, &st) < 0)
		rc = replay_set_err(err, REPLAY_E_ARG, "%s: %s is gone (%s %s): restore it, or record again%s", name,
				    in->file, in->stored ? in->stored : "stored", in->source ? in->source : "?",
				    " (`krewind pack` keeps a recording's files with it)");
	else if (((int64_t)st.st_size != in->size || mtime_ns(&st) != in->mtime_ns) && in->sha256 &&
		 (replay_sha256_file(p, sha) < 0 || strcmp(sha, in->sha256) != 0))
		rc = replay_set_err(err, REPLAY_E_ARG,
				    "%s: %s (%s %s) changed since it was recorded (sha256 %.12s..., recorded %.12s...): "
				    "restore that build, or record again (`krewind pack` keeps a copy with the recording)",
				    name, in->file, in->stored ? in->stored : "stored", in->source ? in->source : "?",
				    st.st_size == in->size ? sha : "(other size)", in->sha256);
	free(p);
	return rc;
}

int replay_inputs_check(const struct replay_recording *r, char **err)
{
	size_t i;
	int rc;

	for (i = 0; i < r->n_inputs; i++)
		if ((rc = input_check(r, &r->inputs[i], err)) < 0)
			return rc;
	return 0;
}

int replay_pack(struct replay_recording *r, int64_t *copied, char **err)
{
	size_t i;
	int rc;

	*copied = 0;
	if ((rc = replay_inputs_check(r, err)) < 0)
		return rc;
	for (i = 0; i < r->n_inputs; i++) {
		struct replay_input *in = &r->inputs[i];
		char *p, *tmp = NULL, *how;
		struct stat st;

		if (!in->stored || (strcmp(in->stored, "hardlink") != 0 && strcmp(in->stored, "reference") != 0))
			continue;
		p = replay_path_join(r->dir, in->file);
		if (!p || asprintf(&tmp, "%s/.%s.pack", r->dir, in->file) < 0) {
			free(p);
			return replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
		}
		unlink(tmp);
		rc = replay_copy_file(p, tmp, err);
		if (rc == 0 && (rename(tmp, p) < 0 || stat(p, &st) < 0))
			rc = replay_set_err(err, REPLAY_E_IO, "cannot replace %s: %s", p, strerror(errno));
		if (rc < 0) {
			unlink(tmp);
			free(tmp);
			free(p);
			return rc;
		}
		free(tmp);
		free(p);
		if (!(how = strdup("copy")))
			return replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
		free(in->stored);
		in->stored = how;
		in->mtime_ns = mtime_ns(&st);
		*copied += (int64_t)st.st_size;
		if ((rc = replay_manifest_write(r, err)) < 0)
			return rc;
	}
	return 0;
}
