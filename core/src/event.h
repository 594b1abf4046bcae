/* Internal layout of hivent_event_t and the event codec shared with hiventd. */
#ifndef HV_EVENT_H
#define HV_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "hivent/hivent.h"
#include "buf.h"

#define HV_NAME_MAX 255

struct hivent_event_s {
    char *name;
    unsigned char *payload;     /* MessagePack map */
    size_t payload_size;
    int64_t version;
    char *cid;
    char *key;
    char *producer;
    char *uuid;
    char *created_at;
    char *queue;                /* consumed events only */
    int partition;              /* consumed events only, else -1 */
    hv_buf_t packed;            /* {name, payload, meta}, built lazily */
};

/* Checks an event or topic name: non-empty, at most HV_NAME_MAX bytes,
 * valid UTF-8.  Returns 0 or -1 with a message naming @what in @err. */
int hv_check_name(const char *name, const char *what, char *err, size_t err_size);
/* Checks that @s of @len bytes is valid UTF-8; returns 1 when it is. */
int hv_utf8_valid(const char *s, size_t len);

/* Builds an event from caller values, validating each. */
hivent_err_t hv_event_new(const char *name, const void *payload, size_t payload_size,
                          int64_t version, const char *cid, const char *key,
                          const char *producer, hivent_event_t **out, char *err,
                          size_t err_size);

/* Parses {name, payload, meta} from MessagePack.  The payload bytes are
 * kept as received.  A missing or non-integer meta.version, a bad name or
 * a payload that is not a map fail with a message in @err. */
hivent_err_t hv_event_parse(const void *map, size_t size, hivent_event_t **out, char *err,
                            size_t err_size);

/* Fills meta.uuid (random v4), meta.created_at (now, UTC) and meta.cid
 * (a new uuid) when they are missing. */
int hv_event_complete(hivent_event_t *ev);

/* Packs {name, payload, meta} into @out. */
int hv_event_pack(const hivent_event_t *ev, hv_buf_t *out);

/* Returns 1 when @map, the bytes @ev was parsed from, holds exactly the
 * fields hv_event_pack() writes: name, payload and a meta map of name
 * (equal to the event name), version, cid, key, producer, uuid and
 * created_at, with uuid, cid and created_at set.  Such bytes can be
 * stored and sent on as they are. */
int hv_event_is_complete_map(const hivent_event_t *ev, const void *map, size_t size);

/* Writes a random version 4 UUID (36 chars + NUL) into @out. */
void hv_uuid4(char out[37]);
/* Writes a version 7 UUID (RFC 9562: 48-bit Unix time in milliseconds,
 * then 74 random bits) into @out.  Ids made later sort after earlier ones,
 * so a B-tree index on them grows at its right edge. */
void hv_uuid7(char out[37]);
/* Writes the current UTC time as 2026-12-04T15:21:26.123456Z into @out. */
void hv_now_iso8601(char out[32]);

#endif
