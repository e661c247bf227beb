/*
 * fuzz_elfsym.c: libFuzzer target for the ELF symbol loader (tracer/elfsym.c).
 * The input is written to a file of its own (elfsym_load takes a path) and
 * loaded; every symbol is then looked up by name and address and the first
 * bytes of each function are read through elfsym_read.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tracer/tracer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	struct elfsym_table *t = NULL;
	char *err = NULL;
	uint8_t buf[16];
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/krewind-fuzz-elf.%d", (int)getpid());
	f = fopen(path, "wb");
	if (!f)
		return 0;
	if (fwrite(data, 1, size, f) != size) {
		fclose(f);
		goto out;
	}
	if (fclose(f) != 0)
		goto out;
	if (elfsym_load(path, &t, &err) == 0) {
		if (!elfsym_build_id(t) || strcmp(elfsym_path(t), path) != 0)
			abort();
		for (size_t i = 0; i < elfsym_count(t); i++) {
			const struct elfsym *s = elfsym_at(t, i);
			if (!s->name || !elfsym_find(t, s->name) || !elfsym_lookup(t, s->addr))
				abort();
			if (s->is_func && elfsym_read(t, s->addr, buf, sizeof(buf), &err) != 0) {
				free(err);
				err = NULL;
			}
		}
	} else if (!err || !*err) {
		abort();
	}
out:
	elfsym_free(t);
	free(err);
	unlink(path);
	return 0;
}
