/* hivent_event_t: construction, validation, MessagePack codec, getters. */
#include "event.h"

#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "json_internal.h"
#include "mp.h"

int hv_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (len - i <= n)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        /* Reject overlong forms, surrogates and values past U+10FFFF. */
        static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n + 1;
    }
    return 1;
}

int hv_check_name(const char *name, const char *what, char *err, size_t err_size)
{
    if (!name || !*name) {
        snprintf(err, err_size, "%s must be a non-empty string", what);
        return -1;
    }
    size_t n = strlen(name);
    if (n > HV_NAME_MAX) {
        snprintf(err, err_size, "%s is %zu bytes long; the maximum is %d bytes", what, n,
                 HV_NAME_MAX);
        return -1;
    }
    if (!hv_utf8_valid(name, n)) {
        snprintf(err, err_size, "%s is not valid UTF-8", what);
        return -1;
    }
    return 0;
}

static int dup_opt(char **dst, const char *src)
{
    *dst = NULL;
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -1;
}

static hivent_event_t *event_alloc(void)
{
    hivent_event_t *ev = calloc(1, sizeof *ev);
    if (ev)
        ev->partition = -1;
    return ev;
}

/* Checks an optional meta string: NULL, or valid UTF-8 of at most 255 bytes. */
static int check_meta_str(const char *s, const char *what, char *err, size_t err_size)
{
    if (!s)
        return 0;
    return hv_check_name(s, what, err, err_size);
}

/* Checks that @payload is one well-formed value nested at most
 * HV_PAYLOAD_MAX_DEPTH levels, the limit both emit and hiventd apply. */
static int check_payload_depth(const void *payload, size_t size, char *err, size_t err_size)
{
    int rc = hv_mp_validate_depth(payload, size, HV_PAYLOAD_MAX_DEPTH);
    if (rc == -2)
        snprintf(err, err_size, "payload nests arrays and maps deeper than %d levels",
                 HV_PAYLOAD_MAX_DEPTH);
    else if (rc != 0)
        snprintf(err, err_size, "payload must be one well-formed MessagePack map");
    return rc;
}

hivent_err_t hv_event_new(const char *name, const void *payload, size_t payload_size,
                          int64_t version, const char *cid, const char *key,
                          const char *producer, hivent_event_t **out, char *err,
                          size_t err_size)
{
    static const unsigned char empty_map = 0x80;
    *out = NULL;
    if (hv_check_name(name, "event name", err, err_size) != 0)
        return HIVENT_ERR_INVALID_ARG;
    if (strchr(name, '*')) {
        snprintf(err, err_size, "event name \"%s\" must not contain '*', because consumers "
                 "use the topic \"*\" alone to match every event", name);
        return HIVENT_ERR_INVALID_ARG;
    }
    if (version < 1) {
        snprintf(err, err_size, "version must be a positive integer, got %lld",
                 (long long)version);
        return HIVENT_ERR_INVALID_ARG;
    }
    if (!payload || payload_size == 0) {
        payload = &empty_map;
        payload_size = 1;
    }
    if (!hv_mp_is_map(payload, payload_size)) {
        snprintf(err, err_size, "payload must be one well-formed MessagePack map");
        return HIVENT_ERR_PAYLOAD;
    }
    if (check_payload_depth(payload, payload_size, err, err_size) != 0)
        return HIVENT_ERR_PAYLOAD;
    if (check_meta_str(cid, "cid", err, err_size) != 0 ||
        check_meta_str(key, "key", err, err_size) != 0)
        return HIVENT_ERR_INVALID_ARG;
    hivent_event_t *ev = event_alloc();
    if (!ev)
        return HIVENT_ERR_NO_MEMORY;
    ev->version = version;
    ev->payload = malloc(payload_size);
    if (!ev->payload || dup_opt(&ev->name, name) || dup_opt(&ev->cid, cid) ||
        dup_opt(&ev->key, key) || dup_opt(&ev->producer, producer)) {
        hivent_event_destroy(ev);
        return HIVENT_ERR_NO_MEMORY;
    }
    memcpy(ev->payload, payload, payload_size);
    ev->payload_size = payload_size;
    *out = ev;
    return HIVENT_OK;
}

/* Reads an optional string (nil allowed) into @dst. */
static int read_opt_str(const unsigned char *val, size_t size, char **dst)
{
    hv_mp_reader_t r;
    hv_mp_value_t v;
    hv_mp_reader_init(&r, val, size);
    if (hv_mp_read(&r, &v) != 0)
        return -1;
    free(*dst);
    *dst = NULL;
    if (v.type == HV_MP_NIL)
        return 0;
    if (v.type != HV_MP_STR || v.size > HV_NAME_MAX * 4 || !hv_utf8_valid(v.str, v.size))
        return -1;
    *dst = hv_mp_strdup(val, size);
    return *dst ? 0 : -1;
}

/* The meta keys an event carries, in the order hv_event_pack() writes them. */
static const char *const meta_keys[] = {"name", "version", "cid", "key", "producer", "uuid",
                                        "created_at"};
#define META_KEYS (sizeof meta_keys / sizeof meta_keys[0])
enum { META_NAME, META_VERSION, META_CID };

/* Collects the value spans of the meta keys in one pass over the map
 * @meta; as with hv_mp_map_find(), the first occurrence of a key wins and
 * an absent key leaves its span NULL.  Returns the map's entry count, or
 * -1 when @meta is malformed or not a map. */
static long meta_spans(const unsigned char *meta, size_t size,
                       const unsigned char *val[META_KEYS], size_t val_size[META_KEYS])
{
    hv_mp_reader_t r;
    hv_mp_value_t v;
    for (size_t j = 0; j < META_KEYS; j++) {
        val[j] = NULL;
        val_size[j] = 0;
    }
    hv_mp_reader_init(&r, meta, size);
    if (hv_mp_read(&r, &v) != 0 || v.type != HV_MP_MAP)
        return -1;
    for (uint32_t i = 0; i < v.size; i++) {
        hv_mp_value_t k;
        size_t kpos = r.pos;
        if (hv_mp_read(&r, &k) != 0)
            return -1;
        if (k.type == HV_MP_ARRAY || k.type == HV_MP_MAP) {
            r.pos = kpos;
            if (hv_mp_skip(&r) != 0)
                return -1;
        }
        const unsigned char *s;
        size_t n;
        if (hv_mp_span(&r, &s, &n) != 0)
            return -1;
        if (k.type != HV_MP_STR)
            continue;
        for (size_t j = 0; j < META_KEYS; j++) {
            if (k.size == strlen(meta_keys[j]) && memcmp(k.str, meta_keys[j], k.size) == 0) {
                if (!val[j]) {
                    val[j] = s;
                    val_size[j] = n;
                }
                break;
            }
        }
    }
    return (long)v.size;
}

static hivent_err_t parse_meta(hivent_event_t *ev, const unsigned char *meta, size_t size,
                               char *err, size_t err_size)
{
    /* The string fields, indexed like meta_keys from META_CID on. */
    char **fields[] = {&ev->cid, &ev->key, &ev->producer, &ev->uuid, &ev->created_at};
    const unsigned char *vals[META_KEYS];
    size_t sizes[META_KEYS];
    if (!hv_mp_is_map(meta, size)) {
        snprintf(err, err_size, "meta must be a map");
        return HIVENT_ERR_PAYLOAD;
    }
    if (meta_spans(meta, size, vals, sizes) < 0 || !vals[META_VERSION]) {
        snprintf(err, err_size, "meta.version is missing; it must be an integer");
        return HIVENT_ERR_PAYLOAD;
    }
    hv_mp_reader_t r;
    hv_mp_value_t v;
    hv_mp_reader_init(&r, vals[META_VERSION], sizes[META_VERSION]);
    if (hv_mp_read(&r, &v) != 0 || !(v.type == HV_MP_INT ||
                                      (v.type == HV_MP_UINT && v.u <= INT64_MAX))) {
        snprintf(err, err_size, "meta.version must be an integer");
        return HIVENT_ERR_PAYLOAD;
    }
    ev->version = v.i;
    for (size_t j = META_CID; j < META_KEYS; j++) {
        if (vals[j] && read_opt_str(vals[j], sizes[j], fields[j - META_CID]) != 0) {
            snprintf(err, err_size, "meta.%s must be a UTF-8 string or nil", meta_keys[j]);
            return HIVENT_ERR_PAYLOAD;
        }
    }
    return HIVENT_OK;
}

hivent_err_t hv_event_parse(const void *map, size_t size, hivent_event_t **out, char *err,
                            size_t err_size)
{
    const unsigned char *val;
    size_t val_size;
    *out = NULL;
    if (!map || !hv_mp_is_map(map, size) || hv_mp_validate(map, size) != 0) {
        snprintf(err, err_size, "event must be one well-formed MessagePack map");
        return HIVENT_ERR_PAYLOAD;
    }
    hivent_event_t *ev = event_alloc();
    if (!ev)
        return HIVENT_ERR_NO_MEMORY;
    hivent_err_t rc = HIVENT_ERR_PAYLOAD;
    if (hv_mp_map_find(map, size, "name", &val, &val_size) != 1 ||
        !(ev->name = hv_mp_strdup(val, val_size))) {
        snprintf(err, err_size, "name is missing or not a string");
        goto fail;
    }
    if (hv_check_name(ev->name, "name", err, err_size) != 0)
        goto fail;
    if (hv_mp_map_find(map, size, "payload", &val, &val_size) != 1 ||
        !hv_mp_is_map(val, val_size)) {
        snprintf(err, err_size, "payload is missing or not a map");
        goto fail;
    }
    if (check_payload_depth(val, val_size, err, err_size) != 0)
        goto fail;
    ev->payload = malloc(val_size);
    if (!ev->payload) {
        rc = HIVENT_ERR_NO_MEMORY;
        goto fail;
    }
    memcpy(ev->payload, val, val_size);
    ev->payload_size = val_size;
    if (hv_mp_map_find(map, size, "meta", &val, &val_size) != 1) {
        snprintf(err, err_size, "meta is missing; it must be a map with an integer version");
        goto fail;
    }
    rc = parse_meta(ev, val, val_size, err, err_size);
    if (rc != HIVENT_OK)
        goto fail;
    *out = ev;
    return HIVENT_OK;
fail:
    hivent_event_destroy(ev);
    return rc;
}

/* Random bytes for ids come from getrandom() in blocks kept per thread,
 * which saves a system call per id.  The fork handler bumps
 * random_generation, so a child process never hands out bytes that its
 * parent also holds. */
#define RANDOM_BLOCK 512

static atomic_uint random_generation;
static pthread_once_t random_once = PTHREAD_ONCE_INIT;

static void random_after_fork(void)
{
    atomic_fetch_add(&random_generation, 1);
}

static void random_setup(void)
{
    pthread_atfork(NULL, NULL, random_after_fork);
}

static __thread struct {
    unsigned char bytes[RANDOM_BLOCK];
    size_t used;
    unsigned generation;
    int filled;
} random_cache;

/* Fills @out with @n (at most RANDOM_BLOCK) random bytes; returns 0 or -1. */
static int random_bytes(unsigned char *out, size_t n)
{
    pthread_once(&random_once, random_setup);
    unsigned generation = atomic_load(&random_generation);
    if (!random_cache.filled || random_cache.generation != generation ||
        random_cache.used + n > RANDOM_BLOCK) {
        random_cache.filled = 0;
        if (getrandom(random_cache.bytes, RANDOM_BLOCK, 0) != RANDOM_BLOCK)
            return -1;
        random_cache.used = 0;
        random_cache.generation = generation;
        random_cache.filled = 1;
    }
    memcpy(out, random_cache.bytes + random_cache.used, n);
    /* Bytes handed out are not kept. */
    memset(random_cache.bytes + random_cache.used, 0, n);
    random_cache.used += n;
    return 0;
}

/* Fills @b[from..15] with random bytes, falling back to the clock. */
static void uuid_random(unsigned char b[16], size_t from)
{
    if (random_bytes(b + from, 16 - from) == 0)
        return;
    /* getrandom on Linux does not fail once the pool is ready; fall back
     * to the clock so an id is still produced. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    for (size_t i = from; i < 16; i++)
        b[i] = (unsigned char)((ts.tv_nsec >> (i % 4 * 8)) ^ (i * 131) ^ rand());
}

/* Writes @b as 8-4-4-4-12 lowercase hex digits and a NUL. */
static void uuid_format(const unsigned char b[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

void hv_uuid4(char out[37])
{
    unsigned char b[16];
    uuid_random(b, 0);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid_format(b, out);
}

void hv_uuid7(char out[37])
{
    unsigned char b[16];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    uuid_random(b, 6);
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (b[6] & 0x0f) | 0x70;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid_format(b, out);
}

/* Writes @v as @n decimal digits, zero padded, at @p. */
static void put_digits(char *p, long v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

void hv_now_iso8601(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    /* Written digit by digit: snprintf() cost more than the rest of an
     * emit's metadata.  The year is clamped to 0000..9999. */
    long year = tm.tm_year + 1900L;
    memcpy(out, "0000-00-00T00:00:00.000000Z", 28);
    put_digits(out, year < 0 ? 0 : year > 9999 ? 9999 : year, 4);
    put_digits(out + 5, tm.tm_mon + 1, 2);
    put_digits(out + 8, tm.tm_mday, 2);
    put_digits(out + 11, tm.tm_hour, 2);
    put_digits(out + 14, tm.tm_min, 2);
    put_digits(out + 17, tm.tm_sec, 2);
    put_digits(out + 20, ts.tv_nsec / 1000, 6);
}

int hv_event_complete(hivent_event_t *ev)
{
    char buf[37];
    char when[32];
    if (!ev->uuid) {
        hv_uuid4(buf);
        if (!(ev->uuid = strdup(buf)))
            return -1;
    }
    if (!ev->cid) {
        hv_uuid4(buf);
        if (!(ev->cid = strdup(buf)))
            return -1;
    }
    if (!ev->created_at) {
        hv_now_iso8601(when);
        if (!(ev->created_at = strdup(when)))
            return -1;
    }
    hv_buf_free(&ev->packed);
    return 0;
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_opt(msgpack_packer *pk, const char *key, const char *val)
{
    pack_str(pk, key);
    if (val)
        pack_str(pk, val);
    else
        msgpack_pack_nil(pk);
}

int hv_event_pack(const hivent_event_t *ev, hv_buf_t *out)
{
    /* One reservation for the whole map: keys and headers take under 160
     * bytes besides the strings and the payload. */
    const char *strs[] = {ev->cid, ev->key, ev->producer, ev->uuid, ev->created_at};
    size_t need = 2 * strlen(ev->name) + ev->payload_size + 160;
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        need += strs[i] ? strlen(strs[i]) : 0;
    if (hv_buf_reserve(out, need) != 0)
        return -1;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, hv_buf_msgpack_write);
    msgpack_pack_map(&pk, 3);
    pack_str(&pk, "name");
    pack_str(&pk, ev->name);
    pack_str(&pk, "payload");
    hv_buf_append(out, ev->payload, ev->payload_size);
    pack_str(&pk, "meta");
    msgpack_pack_map(&pk, 7);
    pack_opt(&pk, "name", ev->name);
    pack_str(&pk, "version");
    msgpack_pack_int64(&pk, ev->version);
    pack_opt(&pk, "cid", ev->cid);
    pack_opt(&pk, "key", ev->key);
    pack_opt(&pk, "producer", ev->producer);
    pack_opt(&pk, "uuid", ev->uuid);
    pack_opt(&pk, "created_at", ev->created_at);
    return out->data ? 0 : -1;
}

/* Returns the entry count of the map at the start of @p, or -1. */
static long map_entries(const void *p, size_t size)
{
    hv_mp_reader_t r;
    hv_mp_value_t v;
    hv_mp_reader_init(&r, p, size);
    if (hv_mp_read(&r, &v) != 0 || v.type != HV_MP_MAP)
        return -1;
    return (long)v.size;
}

int hv_event_is_complete_map(const hivent_event_t *ev, const void *map, size_t size)
{
    const unsigned char *meta;
    size_t meta_size;
    const unsigned char *vals[META_KEYS];
    size_t sizes[META_KEYS];
    if (!ev || !ev->uuid || !ev->cid || !ev->created_at || !ev->name)
        return 0;
    if (map_entries(map, size) != 3 ||
        hv_mp_map_find(map, size, "meta", &meta, &meta_size) != 1 ||
        meta_spans(meta, meta_size, vals, sizes) != (long)META_KEYS)
        return 0;
    /* As many entries as distinct keys found leave no room for others. */
    for (size_t j = 0; j < META_KEYS; j++)
        if (!vals[j])
            return 0;
    hv_mp_reader_t r;
    hv_mp_value_t v;
    hv_mp_reader_init(&r, vals[META_NAME], sizes[META_NAME]);
    size_t name_len = strlen(ev->name);
    return hv_mp_read(&r, &v) == 0 && v.type == HV_MP_STR && v.size == name_len &&
           memcmp(v.str, ev->name, name_len) == 0;
}

/* Public getters. */

HIVENT_API const char *hivent_event_name(const hivent_event_t *ev)
{
    return ev ? ev->name : NULL;
}

HIVENT_API const void *hivent_event_payload(const hivent_event_t *ev, size_t *size)
{
    if (size)
        *size = ev ? ev->payload_size : 0;
    return ev ? ev->payload : NULL;
}

HIVENT_API int64_t hivent_event_version(const hivent_event_t *ev)
{
    return ev ? ev->version : 0;
}

HIVENT_API const char *hivent_event_cid(const hivent_event_t *ev)
{
    return ev ? ev->cid : NULL;
}

HIVENT_API const char *hivent_event_key(const hivent_event_t *ev)
{
    return ev ? ev->key : NULL;
}

HIVENT_API const char *hivent_event_producer(const hivent_event_t *ev)
{
    return ev ? ev->producer : NULL;
}

HIVENT_API const char *hivent_event_uuid(const hivent_event_t *ev)
{
    return ev ? ev->uuid : NULL;
}

HIVENT_API const char *hivent_event_created_at(const hivent_event_t *ev)
{
    return ev ? ev->created_at : NULL;
}

HIVENT_API const char *hivent_event_queue(const hivent_event_t *ev)
{
    return ev ? ev->queue : NULL;
}

HIVENT_API int hivent_event_partition(const hivent_event_t *ev)
{
    return ev ? ev->partition : -1;
}

HIVENT_API const void *hivent_event_msgpack(const hivent_event_t *ev, size_t *size)
{
    if (size)
        *size = 0;
    if (!ev)
        return NULL;
    /* The packed form is built once; the cast is safe because the buffer
     * is a cache that does not change the event's value. */
    hivent_event_t *mut = (hivent_event_t *)ev;
    if (!mut->packed.data && hv_event_pack(ev, &mut->packed) != 0) {
        hv_buf_free(&mut->packed);
        return NULL;
    }
    if (size)
        *size = ev->packed.len;
    return ev->packed.data;
}

HIVENT_API char *hivent_event_to_json(const hivent_event_t *ev)
{
    size_t size;
    const void *p = hivent_event_msgpack(ev, &size);
    if (!p)
        return NULL;
    return hivent_msgpack_to_json(p, size, NULL, 0);
}

HIVENT_API hivent_event_t *hivent_event_dup(const hivent_event_t *ev)
{
    if (!ev)
        return NULL;
    hivent_event_t *c = event_alloc();
    if (!c)
        return NULL;
    c->version = ev->version;
    c->partition = ev->partition;
    c->payload = malloc(ev->payload_size ? ev->payload_size : 1);
    if (!c->payload || dup_opt(&c->name, ev->name) || dup_opt(&c->cid, ev->cid) ||
        dup_opt(&c->key, ev->key) || dup_opt(&c->producer, ev->producer) ||
        dup_opt(&c->uuid, ev->uuid) || dup_opt(&c->created_at, ev->created_at) ||
        dup_opt(&c->queue, ev->queue)) {
        hivent_event_destroy(c);
        return NULL;
    }
    memcpy(c->payload, ev->payload, ev->payload_size);
    c->payload_size = ev->payload_size;
    return c;
}

HIVENT_API void hivent_event_destroy(hivent_event_t *ev)
{
    if (!ev)
        return;
    free(ev->name);
    free(ev->payload);
    free(ev->cid);
    free(ev->key);
    free(ev->producer);
    free(ev->uuid);
    free(ev->created_at);
    free(ev->queue);
    hv_buf_free(&ev->packed);
    free(ev);
}
