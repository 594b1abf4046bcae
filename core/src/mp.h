/*
 * Bounds-checked MessagePack reader over a byte span.  Every function
 * checks lengths against the span before reading, so hostile input yields
 * an error, never an out-of-bounds read.  Values are not copied: strings
 * point into the span.
 */
#ifndef HV_MP_H
#define HV_MP_H

#include <stddef.h>
#include <stdint.h>

/* Deepest nesting of arrays and maps in an event payload, the top map
 * included: emit rejects a deeper payload, and so does hiventd. */
#define HV_PAYLOAD_MAX_DEPTH 64
/* Deepest nesting the reader accepts anywhere: a payload at its limit
 * plus the frame, event and push maps around it.  Deeper input is
 * rejected as malformed. */
#define HV_MP_MAX_DEPTH (HV_PAYLOAD_MAX_DEPTH + 8)

typedef enum hv_mp_type {
    HV_MP_NIL, HV_MP_BOOL, HV_MP_INT, HV_MP_UINT, HV_MP_FLOAT, HV_MP_STR,
    HV_MP_BIN, HV_MP_ARRAY, HV_MP_MAP, HV_MP_EXT
} hv_mp_type_t;

typedef struct hv_mp_reader {
    const unsigned char *p;
    size_t len;
    size_t pos;
} hv_mp_reader_t;

/* One decoded value head.  For STR/BIN/EXT, @str and @size give the bytes;
 * for ARRAY/MAP, @size is the element (pair) count. */
typedef struct hv_mp_value {
    hv_mp_type_t type;
    int boolean;
    int64_t i;
    uint64_t u;
    double f;
    const char *str;
    uint32_t size;
} hv_mp_value_t;

void hv_mp_reader_init(hv_mp_reader_t *r, const void *p, size_t len);
/* Reads one value head; returns 0 or -1 on truncated or invalid input. */
int hv_mp_read(hv_mp_reader_t *r, hv_mp_value_t *v);
/* Skips one whole value, nested ones included; returns 0 or -1. */
int hv_mp_skip(hv_mp_reader_t *r);
/* Stores the byte span of the next whole value and skips it. */
int hv_mp_span(hv_mp_reader_t *r, const unsigned char **start, size_t *size);
/* Returns 1 when the value is a map (checks the first byte only). */
int hv_mp_is_map(const void *p, size_t len);
/* Checks that the span holds exactly one well-formed value. */
int hv_mp_validate(const void *p, size_t len);
/* Checks that the span contains exactly one well-formed value nested at most
 * @max_depth levels (at most HV_MP_MAX_DEPTH).  Returns 0, -1 when the
 * value is malformed, or -2 when it is nested deeper. */
int hv_mp_validate_depth(const void *p, size_t len, int max_depth);
/* Finds @key in the map at the span's start; stores the value's span.
 * Returns 1 when found, 0 when absent, -1 when malformed or not a map. */
int hv_mp_map_find(const void *map, size_t len, const char *key,
                   const unsigned char **val, size_t *val_size);
/* Reads a string value span into a new NUL-terminated copy (free()).
 * Returns NULL when the value is not a string or contains a NUL byte. */
char *hv_mp_strdup(const unsigned char *val, size_t size);

#endif
