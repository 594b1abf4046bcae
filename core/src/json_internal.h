/* jansson-based helpers shared inside the core and with hiventd. */
#ifndef HV_JSON_INTERNAL_H
#define HV_JSON_INTERNAL_H

#include <jansson.h>

#include "buf.h"

/* Packs a jansson value as MessagePack into @out; returns 0, or -1 when
 * arrays and objects nest deeper than @max_depth or memory ran out. */
int hv_json_to_msgpack_buf(const json_t *j, int max_depth, hv_buf_t *out);
/* Converts one MessagePack value nested at most @max_depth levels to a new
 * jansson value, or returns NULL. */
json_t *hv_msgpack_to_json_value(const void *p, size_t size, int max_depth);

#endif
