/*
 * util.c - small helpers the replay/ sources share: error messages, the
 * monotonic clock, file names inside a directory.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "replay/internal.h"

int replay_set_err(char **err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err && !*err) {
		va_start(ap, fmt);
		if (vasprintf(err, fmt, ap) < 0)
			*err = NULL;
		va_end(ap);
	}
	return code;
}

int64_t replay_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *replay_path_join(const char *dir, const char *file)
{
	char *s;

	if (!file)
		return NULL;
	if (file[0] == '/')
		return strdup(file);
	if (asprintf(&s, "%s/%s", dir, file) < 0)
		return NULL;
	return s;
}
