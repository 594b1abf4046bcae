/*
 * Phoenix Channels frames as Hivent sends them.
 *
 * vsn 1.0.0: one MessagePack map {topic, event, payload, ref} per binary
 * WebSocket message, gzipped (RFC 1952) when the packed map is 1024 bytes
 * or more.  vsn 2.0.0: a JSON text array [join_ref, ref, topic, event,
 * payload].  Payloads are kept as MessagePack map bytes in both cases.
 */
#ifndef HV_FRAME_H
#define HV_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Packed maps of this many bytes or more are gzipped when sent. */
#define HV_GZIP_THRESHOLD 1024

typedef enum hv_ref_kind { HV_REF_NIL = 0, HV_REF_INT, HV_REF_STR } hv_ref_kind_t;

/* A Phoenix ref: nil, an integer or a string, echoed with the type sent. */
typedef struct hv_ref {
    hv_ref_kind_t kind;
    int64_t num;
    char *str;
} hv_ref_t;

typedef struct hv_frame {
    char *topic;
    char *event;
    hv_ref_t ref;
    hv_ref_t join_ref;          /* vsn 2.0.0 only */
    unsigned char *payload;     /* MessagePack map, owned */
    size_t payload_size;
} hv_frame_t;

/* Encodes @f as a MessagePack map, gzipped when @allow_gzip and the map
 * is at least HV_GZIP_THRESHOLD bytes.  A NULL payload encodes as {}. */
int hv_frame_encode(const hv_frame_t *f, int allow_gzip, hv_buf_t *out);

/* Decodes one binary message (gzip recognised by 1f 8b).  Input that
 * inflates beyond @max_size, is not a map, lacks topic or event, or has
 * wrong types fails with a message in @err.  Returns 0 or -1. */
int hv_frame_decode(const void *data, size_t len, size_t max_size, hv_frame_t *f,
                    char *err, size_t err_size);

/* Encodes @f as a vsn 2.0.0 JSON array; returns 0 or -1. */
int hv_frame_encode_json(const hv_frame_t *f, hv_buf_t *out);

/* Decodes a vsn 2.0.0 JSON text message; returns 0 or -1 with @err set. */
int hv_frame_decode_json(const char *text, size_t len, size_t max_size, hv_frame_t *f,
                         char *err, size_t err_size);

/* Frees the members of @f and zeroes it. */
void hv_frame_clear(hv_frame_t *f);

/* Copies @src into @dst (deep); returns 0 or -1. */
int hv_ref_copy(hv_ref_t *dst, const hv_ref_t *src);
void hv_ref_clear(hv_ref_t *r);

/* gzip helpers: RFC 1952 members. */
int hv_gzip(const void *in, size_t len, hv_buf_t *out);
/* Inflates a gzip member, failing once the output would exceed @max_size. */
int hv_gunzip(const void *in, size_t len, size_t max_size, hv_buf_t *out,
              char *err, size_t err_size);

/* Packs a reply payload {"status": STATUS, "response": RESPONSE}, where
 * @response is a packed MessagePack value (NULL packs an empty map). */
int hv_pack_reply(hv_buf_t *out, const char *status, const void *response,
                  size_t response_size);

#endif
