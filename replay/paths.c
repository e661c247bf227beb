/*
 * paths.c - files krewind finds next to its own binary (/proc/self/exe): the
 * plugin, our kernel, its probe files, the gdb extension. Two layouts:
 *
 *   installed (make install)          build tree
 *   PREFIX/bin/krewind                build/krewind, build/<variant>/krewind
 *   PREFIX/lib/krewind/NAME.so        build/tracer/NAME.so (top build/)
 *   PREFIX/share/krewind/probes/F     probes/F
 *   PREFIX/share/krewind/BASENAME     build/kernel/kernel.elf, replay/NAME.py
 *
 * The installed layout is tried first: its directories are specific enough
 * that a build tree never has them. The Makefile's install rule follows the
 * same table.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "replay/replay.h"

/* Where rel lives under PREFIX (relative to PREFIX/bin) once installed. */
static char *installed_path(const char *bindir, const char *rel)
{
	const char *base = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
	size_t n = strlen(rel);
	char *p = NULL;
	int rc;

	if (n > 3 && strcmp(rel + n - 3, ".so") == 0)
		rc = asprintf(&p, "%s/../lib/krewind/%s", bindir, base);
	else if (strncmp(rel, "probes/", 7) == 0)
		rc = asprintf(&p, "%s/../share/krewind/%s", bindir, rel);
	else
		rc = asprintf(&p, "%s/../share/krewind/%s", bindir, base);
	return rc < 0 ? NULL : p;
}

/* p if readable (as a malloc'd absolute path), else NULL; frees p. */
static char *take_if_readable(char *p)
{
	char *found = NULL;

	if (p && access(p, R_OK) == 0)
		found = realpath(p, NULL);
	free(p);
	return found;
}

char *replay_find_file(const char *env, const char *rel)
{
	const char *e = env ? getenv(env) : NULL;
	char exe[PATH_MAX], *slash, *p, *found;
	static const char *const ups[] = { "", "../", "../../", NULL };
	ssize_t n;
	int i;

	if (e && *e)
		return realpath(e, NULL);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = 0;
	slash = strrchr(exe, '/');
	if (!slash)
		return NULL;
	*slash = 0;
	found = take_if_readable(installed_path(exe, rel));
	for (i = 0; ups[i] && !found; i++) {
		if (asprintf(&p, "%s/%s%s", exe, ups[i], rel) < 0)
			return NULL;
		found = take_if_readable(p);
	}
	return found;
}
