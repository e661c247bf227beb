/*
 * fuzz_json.c: libFuzzer target for the QMP JSON reader (replay/json.c). The
 * input is what QEMU could send; a parsed value is walked to the bottom and
 * the accessors are tried on it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "replay/replay.h"

static size_t walk(const struct qmp_json *v, int depth)
{
	size_t n = 1;
	if (depth > 64)
		abort(); /* the reader promises to refuse deeper nesting */
	if (v->type == QMP_JSON_STRING && (!v->str || strlen(v->str) > v->len))
		abort();
	for (size_t i = 0; (v->type == QMP_JSON_ARRAY || v->type == QMP_JSON_OBJECT) && i < v->n; i++) {
		if (v->type == QMP_JSON_OBJECT && (!v->keys[i] || qmp_json_get(v, v->keys[i]) == NULL))
			abort();
		n += walk(v->items[i], depth + 1);
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qmp_json *v = NULL;
	char *err = NULL;
	size_t used = 0;
	uint64_t u;

	if (qmp_json_parse((const char *)data, size, &v, &used, &err) == 0) {
		if (used > size)
			abort();
		walk(v, 0);
		(void)qmp_json_get_str(v, "event");
		(void)qmp_json_get_u64(v, "icount", &u);
		(void)qmp_json_get(qmp_json_get(v, "return"), "status");
	} else if (!err || !*err) {
		abort();
	}
	qmp_json_free(v);
	free(err);
	return 0;
}
