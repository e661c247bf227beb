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

/* disk.c: the user's disks rewritten for record/replay. Takes the disk options
 * out of args (-hda..-hdd, -cdrom, -drive, -blockdev chains of file, raw and
 * qcow2 nodes: the top node names the disk for the user's -device) plus image
 * (--image, IDE index 0, or NULL): stores each as r->dir/diskN.img (an
 * input), makes diskN.qcow2 over it, and returns in *disk_args the -blockdev
 * qcow2 + blkreplay chain and device of each, in *rest the other arguments
 * (both NULL-terminated, free with replay_argv_free). Returns the number of
 * disks, or an error (REPLAY_E_ARG with a message for a disk it cannot
 * record). */
int replay_disks_rewrite(struct replay_recording *r, const char *image, char *const *args, struct qemu_guard *g,
			 char ***disk_args, char ***rest, char **err);
/* Removes the disk files replay_disks_rewrite made in dir. */
void replay_disks_remove(const char *dir);

#endif
