/* jansson-based helpers shared inside the core and with hiventd. */
#ifndef HV_JSON_INTERNAL_H
#define HV_JSON_INTERNAL_H

#include <jansson.h>

#include "buf.h"

/* Packs a jansson value as MessagePack into @out; returns 0 or -1. */
int hv_json_to_msgpack_buf(const json_t *j, hv_buf_t *out);
/* Converts one MessagePack value to a new jansson value, or NULL. */
json_t *hv_msgpack_to_json_value(const void *p, size_t size);

#endif
