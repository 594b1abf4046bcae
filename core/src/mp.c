#include "mp.h"

#include <stdlib.h>
#include <string.h>

void hv_mp_reader_init(hv_mp_reader_t *r, const void *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->pos = 0;
}

static int need(const hv_mp_reader_t *r, size_t n)
{
    return r->len - r->pos >= n ? 0 : -1;
}

static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Reads an @n byte big-endian length or number after the type byte. */
static int read_be(hv_mp_reader_t *r, int n, uint64_t *out)
{
    if (need(r, (size_t)n) != 0)
        return -1;
    *out = be(r->p + r->pos, n);
    r->pos += (size_t)n;
    return 0;
}

/* Sets @v to a byte span of @size bytes at the current position. */
static int take_bytes(hv_mp_reader_t *r, hv_mp_value_t *v, hv_mp_type_t type, uint64_t size)
{
    if (size > UINT32_MAX || need(r, (size_t)size) != 0)
        return -1;
    v->type = type;
    v->str = (const char *)r->p + r->pos;
    v->size = (uint32_t)size;
    r->pos += (size_t)size;
    return 0;
}

static int read_ext(hv_mp_reader_t *r, hv_mp_value_t *v, uint64_t size)
{
    if (need(r, 1) != 0)
        return -1;
    r->pos++; /* ext type byte */
    return take_bytes(r, v, HV_MP_EXT, size);
}

static int read_sized(hv_mp_reader_t *r, hv_mp_value_t *v, unsigned char t)
{
    uint64_t n;
    switch (t) {
    case 0xc4: case 0xc5: case 0xc6:
        if (read_be(r, 1 << (t - 0xc4), &n) != 0)
            return -1;
        return take_bytes(r, v, HV_MP_BIN, n);
    case 0xd9: case 0xda: case 0xdb:
        if (read_be(r, 1 << (t - 0xd9), &n) != 0)
            return -1;
        return take_bytes(r, v, HV_MP_STR, n);
    case 0xc7: case 0xc8: case 0xc9:
        if (read_be(r, 1 << (t - 0xc7), &n) != 0)
            return -1;
        return read_ext(r, v, n);
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        return read_ext(r, v, (uint64_t)1 << (t - 0xd4));
    case 0xdc: case 0xdd:
        if (read_be(r, t == 0xdc ? 2 : 4, &n) != 0)
            return -1;
        v->type = HV_MP_ARRAY;
        v->size = (uint32_t)n;
        return 0;
    case 0xde: case 0xdf:
        if (read_be(r, t == 0xde ? 2 : 4, &n) != 0)
            return -1;
        v->type = HV_MP_MAP;
        v->size = (uint32_t)n;
        return 0;
    }
    return -1;
}

static int read_number(hv_mp_reader_t *r, hv_mp_value_t *v, unsigned char t)
{
    uint64_t n;
    if (t >= 0xcc && t <= 0xcf) {
        if (read_be(r, 1 << (t - 0xcc), &n) != 0)
            return -1;
        v->type = HV_MP_UINT;
        v->u = n;
        v->i = n > INT64_MAX ? INT64_MAX : (int64_t)n;
        return 0;
    }
    if (t >= 0xd0 && t <= 0xd3) {
        int width = 1 << (t - 0xd0);
        if (read_be(r, width, &n) != 0)
            return -1;
        v->type = HV_MP_INT;
        if (width < 8 && (n >> (width * 8 - 1)) & 1)
            n |= ~(uint64_t)0 << (width * 8);
        v->i = (int64_t)n;
        return 0;
    }
    if (t == 0xca) {
        if (read_be(r, 4, &n) != 0)
            return -1;
        uint32_t bits = (uint32_t)n;
        float f;
        memcpy(&f, &bits, sizeof f);
        v->type = HV_MP_FLOAT;
        v->f = f;
        return 0;
    }
    if (t == 0xcb) {
        if (read_be(r, 8, &n) != 0)
            return -1;
        memcpy(&v->f, &n, sizeof v->f);
        v->type = HV_MP_FLOAT;
        return 0;
    }
    return read_sized(r, v, t);
}

int hv_mp_read(hv_mp_reader_t *r, hv_mp_value_t *v)
{
    memset(v, 0, sizeof *v);
    if (need(r, 1) != 0)
        return -1;
    unsigned char t = r->p[r->pos++];
    if (t <= 0x7f) {
        v->type = HV_MP_UINT;
        v->u = t;
        v->i = t;
    } else if (t >= 0xe0) {
        v->type = HV_MP_INT;
        v->i = (int8_t)t;
    } else if ((t & 0xf0) == 0x80) {
        v->type = HV_MP_MAP;
        v->size = t & 0x0f;
    } else if ((t & 0xf0) == 0x90) {
        v->type = HV_MP_ARRAY;
        v->size = t & 0x0f;
    } else if ((t & 0xe0) == 0xa0) {
        return take_bytes(r, v, HV_MP_STR, t & 0x1f);
    } else if (t == 0xc0) {
        v->type = HV_MP_NIL;
    } else if (t == 0xc2 || t == 0xc3) {
        v->type = HV_MP_BOOL;
        v->boolean = t == 0xc3;
    } else {
        return read_number(r, v, t);
    }
    return 0;
}

/* Skips values iteratively: @pending counts values still to skip, so
 * hostile nesting costs no stack.  Depth is still bounded for callers that
 * later walk the value recursively.  Returns 0, -1 when malformed, or -2
 * when nested deeper than @max_depth. */
static int skip_value(hv_mp_reader_t *r, int max_depth)
{
    uint64_t pending[HV_MP_MAX_DEPTH + 1];
    int depth = 0;
    if (max_depth > HV_MP_MAX_DEPTH)
        max_depth = HV_MP_MAX_DEPTH;
    pending[0] = 1;
    while (depth >= 0) {
        if (pending[depth] == 0) {
            depth--;
            continue;
        }
        pending[depth]--;
        hv_mp_value_t v;
        if (hv_mp_read(r, &v) != 0)
            return -1;
        if (v.type != HV_MP_ARRAY && v.type != HV_MP_MAP)
            continue;
        uint64_t items = v.type == HV_MP_MAP ? (uint64_t)v.size * 2 : v.size;
        /* Each item takes at least one byte, so a count beyond the bytes
         * left is malformed. */
        if (items > r->len - r->pos)
            return -1;
        if (depth == max_depth)
            return -2;
        pending[++depth] = items;
    }
    return 0;
}

int hv_mp_skip(hv_mp_reader_t *r)
{
    return skip_value(r, HV_MP_MAX_DEPTH) == 0 ? 0 : -1;
}

int hv_mp_span(hv_mp_reader_t *r, const unsigned char **start, size_t *size)
{
    size_t from = r->pos;
    if (hv_mp_skip(r) != 0)
        return -1;
    *start = r->p + from;
    *size = r->pos - from;
    return 0;
}

int hv_mp_is_map(const void *p, size_t len)
{
    if (len == 0)
        return 0;
    unsigned char t = *(const unsigned char *)p;
    return (t & 0xf0) == 0x80 || t == 0xde || t == 0xdf;
}

int hv_mp_validate(const void *p, size_t len)
{
    return hv_mp_validate_depth(p, len, HV_MP_MAX_DEPTH) == 0 ? 0 : -1;
}

int hv_mp_validate_depth(const void *p, size_t len, int max_depth)
{
    hv_mp_reader_t r;
    hv_mp_reader_init(&r, p, len);
    int rc = skip_value(&r, max_depth);
    if (rc != 0)
        return rc;
    return r.pos == len ? 0 : -1;
}

int hv_mp_map_find(const void *map, size_t len, const char *key,
                   const unsigned char **val, size_t *val_size)
{
    hv_mp_reader_t r;
    hv_mp_value_t v;
    hv_mp_reader_init(&r, map, len);
    if (hv_mp_read(&r, &v) != 0 || v.type != HV_MP_MAP)
        return -1;
    size_t klen = strlen(key);
    int found = 0;
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
        int match = k.type == HV_MP_STR && k.size == klen && memcmp(k.str, key, klen) == 0;
        const unsigned char *s;
        size_t n;
        if (hv_mp_span(&r, &s, &n) != 0)
            return -1;
        if (match && !found) {
            *val = s;
            *val_size = n;
            found = 1;
        }
    }
    return found;
}

char *hv_mp_strdup(const unsigned char *val, size_t size)
{
    hv_mp_reader_t r;
    hv_mp_value_t v;
    hv_mp_reader_init(&r, val, size);
    if (hv_mp_read(&r, &v) != 0 || v.type != HV_MP_STR)
        return NULL;
    if (memchr(v.str, 0, v.size))
        return NULL;
    char *s = malloc((size_t)v.size + 1);
    if (!s)
        return NULL;
    memcpy(s, v.str, v.size);
    s[v.size] = 0;
    return s;
}
