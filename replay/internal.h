/*
 * internal.h - what the replay/ sources share and nobody else uses: error
 * messages, the monotonic clock, and file names inside a directory
 * (replay/util.c).
 */
#ifndef KREWIND_REPLAY_INTERNAL_H
#define KREWIND_REPLAY_INTERNAL_H

#include <stdint.h>

#include "replay/replay.h"

/* Formats a one-line message into *err (if err and no message is there yet)
 * and returns code. */
int replay_set_err(char **err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Milliseconds on the monotonic clock. */
int64_t replay_now_ms(void);

/* dir/file, or a copy of file if it is absolute; NULL if file is NULL or out of
 * memory. The caller frees the result. */
char *replay_path_join(const char *dir, const char *file);

#endif
