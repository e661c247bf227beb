/*
 * pbwire.h - a minimal protobuf wire-format writer (private to ui-cli), for
 * `krewind export --format perfetto`. A message is built bottom-up: encode
 * the inner message into its own struct pb, then append it to the outer one
 * with pb_msg (tag, length, bytes). Only what the exporter needs: varint
 * (wire type 0) and length-delimited (wire type 2) fields.
 *
 * A struct pb grows as needed; on allocation failure it sets oom and ignores
 * further writes, so callers check once at the end (pb->oom).
 */
#ifndef KREWIND_PBWIRE_H
#define KREWIND_PBWIRE_H

#include <stddef.h>
#include <stdint.h>

struct pb {
	uint8_t *p;
	size_t n, cap;
	int oom;
};

/* Field n as varint: uint32/uint64/int32/int64/bool/enum (negative int64
 * values take ten bytes, as protobuf encodes them). */
void pb_uint(struct pb *b, int field, uint64_t v);
/* Field n as length-delimited bytes / a string / an embedded message. */
void pb_bytes(struct pb *b, int field, const void *data, size_t len);
void pb_str(struct pb *b, int field, const char *s);
void pb_msg(struct pb *b, int field, const struct pb *inner);
/* Empties b, keeping its buffer. */
void pb_clear(struct pb *b);
void pb_free(struct pb *b);

#endif
