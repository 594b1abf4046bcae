/* Growable byte buffer used by the codec, the client and hiventd. */
#ifndef HV_BUF_H
#define HV_BUF_H

#include <stddef.h>

typedef struct hv_buf {
    unsigned char *data;
    size_t len;
    size_t cap;
} hv_buf_t;

/* Makes room for @extra more bytes; returns 0, or -1 when out of memory. */
int hv_buf_reserve(hv_buf_t *b, size_t extra);
/* Appends @n bytes; returns 0, or -1 when out of memory. */
int hv_buf_append(hv_buf_t *b, const void *p, size_t n);
/* Appends a NUL-terminated string without its NUL. */
int hv_buf_puts(hv_buf_t *b, const char *s);
/* Frees the storage and empties the buffer. */
void hv_buf_free(hv_buf_t *b);
/* Transfers the storage to the caller (free with free()) and empties @b. */
unsigned char *hv_buf_steal(hv_buf_t *b, size_t *len);
/* msgpack-c packer write callback; @data is an hv_buf_t. */
int hv_buf_msgpack_write(void *data, const char *p, size_t n);

#endif
