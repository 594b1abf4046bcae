#include "buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int hv_buf_reserve(hv_buf_t *b, size_t extra)
{
    if (extra <= b->cap - b->len)
        return 0;
    if (extra > SIZE_MAX / 2 - b->len)
        return -1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra)
        cap *= 2;
    unsigned char *p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int hv_buf_append(hv_buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (hv_buf_reserve(b, n) != 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int hv_buf_puts(hv_buf_t *b, const char *s)
{
    return hv_buf_append(b, s, strlen(s));
}

void hv_buf_free(hv_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

unsigned char *hv_buf_steal(hv_buf_t *b, size_t *len)
{
    unsigned char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

int hv_buf_msgpack_write(void *data, const char *p, size_t n)
{
    return hv_buf_append(data, p, n);
}
