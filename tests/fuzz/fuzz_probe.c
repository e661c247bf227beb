/*
 * fuzz_probe.c: libFuzzer target for the probe-file parser (tracer/probe.c).
 * The input is the text of a probe file; a parsed file is also walked (every
 * probe, kind and register name) so a half-filled result would be noticed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tracer/tracer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	struct probe_file *pf = NULL;
	char *err = NULL;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (probe_parse(text, "fuzz.probe", &pf, &err) == 0) {
		for (size_t i = 0; i < pf->nprobes; i++) {
			const struct probe *p = &pf->probes[i];
			if (!p->symbol || !probe_kind_name(p->kind))
				abort();
			for (int j = 0; j < PROBE_MAX_OPS; j++) {
				const struct probe_loc *l = &p->op[j];
				/* a register, or a global: memory at a symbol or a non-zero address */
				if (l->kind != PROBE_LOC_NONE && !probe_reg_name(l->reg) &&
				    !(l->reg == PROBE_NREGS && (l->kind == PROBE_LOC_MEM || l->deref) &&
				      (l->sym || l->disp > 0)))
					abort();
			}
			(void)probe_needs_return(p);
		}
	} else if (!err || !*err || strchr(err, '\n')) {
		abort(); /* a failure must come with one line saying why */
	}
	probe_free(pf);
	free(err);
	free(text);
	return 0;
}
