/*
 * disk.c - a recording's disks, rewritten for QEMU's record/replay.
 *
 * QEMU replays a run only if every disk read returns what it returned while
 * recording and every request completes in the recorded order. So each disk
 * the user gives (`--image`, `-hda`..`-hdd`, `-cdrom`, `-drive`) becomes,
 * inside the recording directory:
 *
 *   diskN.img    the user's image (a copy when small, else a link:
 *                replay_input_store), checked before every replay
 *   diskN.qcow2  a qcow2 overlay over it: the run writes here, never to
 *                the user's image; QEMU's rrsnapshot also keeps its internal
 *                snapshot "init" here, which every replay loads first, so
 *                every replay starts from the disk as it was at the start
 *
 * and on QEMU's command line a `-blockdev` qcow2 node on the overlay, a
 * `blkreplay` node on top (it logs and replays request completions), and the
 * device the user asked for on that node: ide-hd / ide-cd on the IDE (or
 * q35's AHCI) bus by index, virtio-blk-pci, or none (`if=none`: the node is
 * named by the drive's id, so the user's own `-device ...,drive=ID` works,
 * e.g. an AHCI or virtio disk given by hand). A `-blockdev` chain the user
 * gives (a file node, with a raw or qcow2 node on it) is read for its image
 * and format and replaced the same way, its top node's name kept for the
 * user's -device. The recorded command line is the rewritten one, so a
 * replay needs no rewriting (docs/disks.md).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "replay/internal.h"

#define MAX_DISKS 8
#define MAX_NODES 16

/* A NULL-terminated string vector. */
struct vec {
	char **v;
	size_t n, cap;
	int oom;
};

static void push(struct vec *a, const char *s)
{
	if (a->oom)
		return;
	if (a->n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		char **nv = realloc(a->v, cap * sizeof(char *));
		if (!nv) {
			a->oom = 1;
			return;
		}
		a->v = nv;
		a->cap = cap;
	}
	if (!(a->v[a->n] = strdup(s))) {
		a->oom = 1;
		return;
	}
	a->v[++a->n] = NULL;
}

static void pushf(struct vec *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pushf(struct vec *a, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		a->oom = 1;
		return;
	}
	push(a, s);
	free(s);
}

/* One disk as the user described it. */
struct disk {
	char *file, *format, *id;
	enum { IF_IDE, IF_VIRTIO, IF_NONE } iface;
	int index; /* IDE index (bus * 2 + unit), -1: the next free one */
	int cdrom;
	int boot;  /* --image: the firmware boots it whatever else is attached */
};

static void disk_clear(struct disk *d)
{
	free(d->file);
	free(d->format);
	free(d->id);
}

/* The value of a -drive key (the text after "key="), or NULL. */
static int drive_opt(const char *opt, const char *key, const char **val)
{
	size_t n = strlen(key);

	if (strncmp(opt, key, n) != 0 || opt[n] != '=')
		return 0;
	*val = opt + n + 1;
	return 1;
}

/* Parses `-drive` options into d. Options that only tune the host side
 * (cache, aio, discard, snapshot: the overlay is the snapshot) are dropped;
 * anything else is refused rather than silently lost. */
static int parse_drive(const char *spec, struct disk *d, char **err)
{
	char *copy = strdup(spec), *opt, *save = NULL;
	const char *v;
	int rc = 0;

	if (!copy)
		return replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
	d->index = -1;
	if (strstr(spec, ",,")) {
		rc = replay_set_err(err, REPLAY_E_ARG, "-drive %s: escaped commas are not supported", spec);
		goto out;
	}
	for (opt = strtok_r(copy, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
		if (drive_opt(opt, "file", &v)) {
			free(d->file);
			d->file = strdup(v);
		} else if (drive_opt(opt, "format", &v)) {
			free(d->format);
			d->format = strdup(v);
		} else if (drive_opt(opt, "id", &v)) {
			free(d->id);
			d->id = strdup(v);
		} else if (drive_opt(opt, "index", &v)) {
			d->index = atoi(v);
		} else if (drive_opt(opt, "media", &v)) {
			d->cdrom = strcmp(v, "cdrom") == 0;
		} else if (drive_opt(opt, "if", &v)) {
			if (strcmp(v, "ide") == 0)
				d->iface = IF_IDE;
			else if (strcmp(v, "virtio") == 0)
				d->iface = IF_VIRTIO;
			else if (strcmp(v, "none") == 0)
				d->iface = IF_NONE;
			else {
				rc = replay_set_err(err, REPLAY_E_ARG,
						    "-drive %s: if=%s is not supported under record/replay (ide, virtio, none)",
						    spec, v);
				goto out;
			}
		} else if (!drive_opt(opt, "cache", &v) && !drive_opt(opt, "aio", &v) && !drive_opt(opt, "discard", &v) &&
			   !drive_opt(opt, "snapshot", &v)) {
			rc = replay_set_err(err, REPLAY_E_ARG, "-drive %s: option '%s' is not supported under record/replay",
					    spec, opt);
			goto out;
		}
	}
	if (!d->file)
		rc = replay_set_err(err, REPLAY_E_ARG, "-drive %s: no file= (an empty drive cannot be recorded)", spec);
	else if (d->iface == IF_NONE && !d->id)
		rc = replay_set_err(err, REPLAY_E_ARG, "-drive %s: if=none needs id=", spec);
out:
	free(copy);
	return rc;
}

/* One -blockdev node as the user gave it. */
struct bnode {
	const char *spec;
	char *name, *driver;
	char *file;     /* file=NODE: the node below */
	char *filename; /* filename= (driver=file) or file.filename= (file.driver=file inline) */
	int referenced;
};

static void bnode_clear(struct bnode *b)
{
	free(b->name);
	free(b->driver);
	free(b->file);
	free(b->filename);
}

/* Options of a node that only tune the host side: dropped, as for -drive. */
static int host_side_opt(const char *opt)
{
	static const char *const keys[] = { "cache.direct", "cache.no-flush", "aio", "discard", "detect-zeroes",
					    "auto-read-only", "locking", "read-only", NULL };
	const char *v;

	if (strncmp(opt, "file.", 5) == 0)
		opt += 5;
	for (size_t i = 0; keys[i]; i++)
		if (drive_opt(opt, keys[i], &v))
			return 1;
	return 0;
}

/* Parses one `-blockdev` value (key=value syntax) into b. */
static int parse_blockdev(const char *spec, struct bnode *b, char **err)
{
	char *copy, *opt, *save = NULL, **slot;
	const char *v;
	int rc = 0;

	b->spec = spec;
	if (spec[0] == '{')
		return replay_set_err(err, REPLAY_E_ARG, "-blockdev %s: JSON is not supported, give key=value options",
				      spec);
	if (strstr(spec, ",,"))
		return replay_set_err(err, REPLAY_E_ARG, "-blockdev %s: escaped commas are not supported", spec);
	if (!(copy = strdup(spec)))
		return replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
	for (opt = strtok_r(copy, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
		slot = drive_opt(opt, "node-name", &v)	   ? &b->name
		       : drive_opt(opt, "driver", &v)	   ? &b->driver
		       : drive_opt(opt, "file", &v)	   ? &b->file
		       : drive_opt(opt, "filename", &v)	   ? &b->filename
		       : drive_opt(opt, "file.filename", &v) ? &b->filename
							     : NULL;
		if (slot) {
			free(*slot);
			*slot = strdup(v);
		} else if (drive_opt(opt, "file.driver", &v) && strcmp(v, "file") == 0) {
			continue;
		} else if (!host_side_opt(opt)) {
			rc = replay_set_err(err, REPLAY_E_ARG, "-blockdev %s: option '%s' is not supported under record/replay",
					    spec, opt);
			goto out;
		}
	}
	if (!b->name || !b->driver)
		rc = replay_set_err(err, REPLAY_E_ARG, "-blockdev %s: needs driver= and node-name=", spec);
	else if (b->file && b->filename)
		rc = replay_set_err(err, REPLAY_E_ARG, "-blockdev %s: both file= and file.filename=", spec);
out:
	free(copy);
	return rc;
}

static struct bnode *bnode_find(struct bnode *nodes, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(nodes[i].name, name) == 0)
			return &nodes[i];
	return NULL;
}

/* The user's -blockdev nodes as disks: each top node (one no other node
 * names as its file) is a disk with that node's name as its id, over the
 * image its chain ends in. Only chains of a file node, optionally under a
 * raw or qcow2 node, are understood. */
static int blockdevs_to_disks(struct bnode *nodes, int nn, struct disk *disks, int *n, char **err)
{
	int i;

	for (i = 0; i < nn; i++) {
		struct bnode *b = &nodes[i], *below;
		if (bnode_find(nodes, i, b->name))
			return replay_set_err(err, REPLAY_E_ARG, "-blockdev %s: node-name %s given twice", b->spec,
					      b->name);
		if (!b->file)
			continue;
		if (!(below = bnode_find(nodes, nn, b->file)))
			return replay_set_err(err, REPLAY_E_ARG, "-blockdev %s: file=%s names no -blockdev node",
					      b->spec, b->file);
		if (below->referenced++)
			return replay_set_err(err, REPLAY_E_ARG, "-blockdev %s: node %s is used twice", b->spec,
					      below->name);
	}
	for (i = 0; i < nn; i++) {
		struct bnode *b = &nodes[i], *f = b;
		int proto = strcmp(b->driver, "file") == 0;
		if (b->referenced) {
			if (!proto || b->file)
				return replay_set_err(err, REPLAY_E_ARG,
						      "-blockdev %s: only a file node can be below another node "
						      "(krewind rewrites file, raw and qcow2 nodes: docs/disks.md)",
						      b->spec);
			continue;
		}
		if (!proto && strcmp(b->driver, "raw") != 0 && strcmp(b->driver, "qcow2") != 0)
			return replay_set_err(err, REPLAY_E_ARG,
					      "-blockdev %s: driver=%s is not supported under record/replay (file, raw, "
					      "qcow2)",
					      b->spec, b->driver);
		if (b->file)
			f = bnode_find(nodes, nn, b->file);
		if (!f->filename)
			return replay_set_err(err, REPLAY_E_ARG, "-blockdev %s: no image file (filename= or file=NODE)",
					      b->spec);
		if (*n == MAX_DISKS)
			return replay_set_err(err, REPLAY_E_ARG, "more than %d disks", MAX_DISKS);
		disks[*n].iface = IF_NONE;
		disks[*n].index = -1;
		disks[*n].file = strdup(f->filename);
		disks[*n].format = strdup(proto ? "raw" : b->driver);
		disks[*n].id = strdup(b->name);
		if (!disks[(*n)++].id)
			return replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
	}
	return 0;
}

/* "qcow2" if the file starts with the qcow2 magic, else "raw". */
static const char *probe_format(const char *path)
{
	unsigned char m[4] = { 0 };
	FILE *f = fopen(path, "rb");

	if (f) {
		if (fread(m, 1, 4, f) != 4)
			m[0] = 0;
		fclose(f);
	}
	return memcmp(m, "QFI\xfb", 4) == 0 ? "qcow2" : "raw";
}

/* How many of args[0..] one option takes (1 or 2); *is_disk: it gives a disk. */
static int disk_option(const char *const *args, int *is_disk)
{
	static const char *const with_file[] = { "-hda", "-hdb", "-hdc", "-hdd", "-cdrom", "-drive", NULL };
	size_t i;

	*is_disk = 0;
	if (!args[0])
		return 0;
	if (strcmp(args[0], "-blockdev") == 0) {
		*is_disk = 1;
		return 2;
	}
	for (i = 0; with_file[i]; i++)
		if (strcmp(args[0], with_file[i]) == 0) {
			*is_disk = 1;
			return args[1] ? 2 : 1;
		}
	return 1;
}

/* Makes diskN.img (the input) and diskN.qcow2 (the overlay) in r->dir. */
static int make_overlay(struct replay_recording *r, const struct disk *d, int n, struct qemu_guard *g, char **err)
{
	char img[32], ovl[32], *qlog = replay_path_join(r->dir, "qemu.log");
	const char *fmt = d->format ? d->format : probe_format(d->file);
	char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-b", img, "-F", (char *)fmt, ovl, NULL };
	struct qemu_spawn_opts so = { .cwd = r->dir, .stderr_path = qlog };
	struct qemu_proc *p = NULL;
	int rc, status = -1;

	snprintf(img, sizeof(img), "disk%d.img", n);
	snprintf(ovl, sizeof(ovl), "disk%d.qcow2", n);
	if (!qlog)
		return replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
	if (strcmp(fmt, "raw") != 0 && strcmp(fmt, "qcow2") != 0) {
		rc = replay_set_err(err, REPLAY_E_ARG, "%s: format=%s is not supported (raw, qcow2)", d->file, fmt);
		goto out;
	}
	if ((rc = replay_input_store(r, d->file, img, err)) < 0)
		goto out;
	if ((rc = qemu_spawn(argv, &so, &p, err)) < 0)
		goto out;
	rc = qemu_proc_wait(p, g, 30000, &status);
	qemu_proc_free(p);
	if (rc == 0 && status != 0)
		rc = replay_set_err(err, REPLAY_E_QEMU, "qemu-img could not make an overlay over %s (see %s)", d->file,
				    qlog);
out:
	free(qlog);
	return rc;
}

/* The -blockdev chain and the device for disk n. */
static void disk_argv(struct vec *out, const struct disk *d, int n, int q35)
{
	char node[64];

	if (d->iface == IF_NONE)
		snprintf(node, sizeof(node), "%s", d->id);
	else
		snprintf(node, sizeof(node), "disk%d", n);
	push(out, "-blockdev");
	pushf(out, "driver=qcow2,node-name=%s-overlay,file.driver=file,file.filename=disk%d.qcow2", node, n);
	push(out, "-blockdev");
	pushf(out, "driver=blkreplay,node-name=%s,image=%s-overlay", node, node);
	if (d->iface == IF_VIRTIO) {
		push(out, "-device");
		pushf(out, "virtio-blk-pci,drive=%s", node);
	} else if (d->iface == IF_IDE) {
		push(out, "-device");
		/* q35's AHCI has one unit per port; the PC's IDE two per bus */
		if (q35)
			pushf(out, "%s,drive=%s,bus=ide.%d%s", d->cdrom ? "ide-cd" : "ide-hd", node, d->index,
			      d->boot ? ",bootindex=0" : "");
		else
			pushf(out, "%s,drive=%s,bus=ide.%d,unit=%d%s", d->cdrom ? "ide-cd" : "ide-hd", node, d->index / 2,
			      d->index % 2, d->boot ? ",bootindex=0" : "");
	}
}

int replay_args_have_disk(char *const *args)
{
	size_t i;
	int is_disk;

	for (i = 0; args && args[i]; i += (size_t)disk_option((const char *const *)&args[i], &is_disk))
		if (disk_option((const char *const *)&args[i], &is_disk) && is_disk)
			return 1;
	return 0;
}

static int is_q35(char *const *args)
{
	size_t i;

	for (i = 0; args && args[i] && args[i + 1]; i++)
		if ((strcmp(args[i], "-machine") == 0 || strcmp(args[i], "-M") == 0) && strstr(args[i + 1], "q35"))
			return 1;
	return 0;
}

int replay_disks_rewrite(struct replay_recording *r, const char *image, char *const *args, struct qemu_guard *g,
			 char ***disk_args, char ***rest, char **err)
{
	struct disk disks[MAX_DISKS] = { 0 };
	struct bnode nodes[MAX_NODES] = { 0 };
	struct vec out = { 0 }, other = { 0 };
	int n = 0, nn = 0, used = 0, q35 = is_q35(args), rc = 0, k;
	size_t i;

	*disk_args = *rest = NULL;
	if (image) {
		disks[n].file = strdup(image);
		disks[n].boot = 1;
		disks[n++].index = 0;
	}
	for (i = 0; args && args[i];) {
		int is_disk, take = disk_option((const char *const *)&args[i], &is_disk);
		const char *a = args[i], *v = args[i + 1];

		if (!is_disk) {
			push(&other, a);
			i++;
			continue;
		}
		if (take < 2) {
			rc = replay_set_err(err, REPLAY_E_ARG, "%s needs a value", a);
			goto out;
		}
		if (strcmp(a, "-blockdev") == 0) {
			if (nn == MAX_NODES) {
				rc = replay_set_err(err, REPLAY_E_ARG, "more than %d -blockdev nodes", MAX_NODES);
				goto out;
			}
			if ((rc = parse_blockdev(v, &nodes[nn++], err)) < 0)
				goto out;
			i += 2;
			continue;
		}
		if (n == MAX_DISKS) {
			rc = replay_set_err(err, REPLAY_E_ARG, "more than %d disks", MAX_DISKS);
			goto out;
		}
		if (strcmp(a, "-drive") == 0) {
			if ((rc = parse_drive(v, &disks[n], err)) < 0) {
				n++;
				goto out;
			}
		} else {
			disks[n].file = strdup(v);
			disks[n].cdrom = strcmp(a, "-cdrom") == 0;
			disks[n].index = disks[n].cdrom ? 2 : a[3] - 'a';
		}
		if (!disks[n].file) {
			n++;
			rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
			goto out;
		}
		n++;
		i += 2;
	}
	if ((rc = blockdevs_to_disks(nodes, nn, disks, &n, err)) < 0)
		goto out;
	/* IDE indexes: the given ones first, then the free ones in order. */
	for (k = 0; k < n; k++)
		if (disks[k].iface == IF_IDE && disks[k].index >= 0) {
			if (disks[k].index >= (q35 ? 6 : 4) || (used & (1 << disks[k].index))) {
				rc = replay_set_err(err, REPLAY_E_ARG, "%s: IDE index %d is taken or out of range",
						    disks[k].file, disks[k].index);
				goto out;
			}
			used |= 1 << disks[k].index;
		}
	for (k = 0; k < n; k++)
		if (disks[k].iface == IF_IDE && disks[k].index < 0) {
			int x = 0;
			while (x < (q35 ? 6 : 4) && (used & (1 << x)))
				x++;
			if (x == (q35 ? 6 : 4)) {
				rc = replay_set_err(err, REPLAY_E_ARG, "%s: no free IDE slot", disks[k].file);
				goto out;
			}
			disks[k].index = x;
			used |= 1 << x;
		}
	for (k = 0; k < n; k++) {
		if ((rc = make_overlay(r, &disks[k], k, g, err)) < 0)
			goto out;
		disk_argv(&out, &disks[k], k, q35);
	}
	if (out.oom || other.oom) {
		rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
		goto out;
	}
	*disk_args = out.v ? out.v : calloc(1, sizeof(char *));
	*rest = other.v ? other.v : calloc(1, sizeof(char *));
	out.v = other.v = NULL;
	if (!*disk_args || !*rest)
		rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
out:
	for (k = 0; k < n; k++)
		disk_clear(&disks[k]);
	for (k = 0; k < nn; k++)
		bnode_clear(&nodes[k]);
	replay_argv_free(out.v);
	replay_argv_free(other.v);
	if (rc < 0) {
		replay_argv_free(*disk_args);
		replay_argv_free(*rest);
		*disk_args = *rest = NULL;
	}
	return rc < 0 ? rc : n;
}

void replay_disks_remove(const char *dir)
{
	int k;

	for (k = 0; k < MAX_DISKS; k++) {
		char name[32], *p;
		snprintf(name, sizeof(name), "disk%d.img", k);
		if ((p = replay_path_join(dir, name)))
			unlink(p);
		free(p);
		snprintf(name, sizeof(name), "disk%d.qcow2", k);
		if ((p = replay_path_join(dir, name)))
			unlink(p);
		free(p);
	}
}
