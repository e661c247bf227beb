/*
 * paths.c - files krewind finds next to its own binary: the plugin, our
 * kernel, its probe file, the gdb commands. The binary lives in build/ or
 * build/<variant>/, the plugin and kernel always in the top build/.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "replay/replay.h"

char *replay_find_file(const char *env, const char *rel)
{
	const char *e = env ? getenv(env) : NULL;
	char exe[PATH_MAX], *slash, *p = NULL, *found = NULL;
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
	for (i = 0; ups[i] && !found; i++) {
		if (asprintf(&p, "%s/%s%s", exe, ups[i], rel) < 0)
			return NULL;
		if (access(p, R_OK) == 0)
			found = realpath(p, NULL);
		free(p);
	}
	return found;
}
