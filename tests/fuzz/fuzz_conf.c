/* libFuzzer target: configuration parsing.  Input: KEY NUL VALUE. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hivent/hivent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 2);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = 0;
    copy[size + 1] = 0;
    const char *key = copy;
    const char *value = copy + strlen(copy) + 1;
    if (value > copy + size)
        value = copy + size;
    hivent_conf_t *conf = hivent_conf_new();
    char err[256];
    hivent_conf_set(conf, key, value, err, sizeof err);
    /* Every known key with the fuzzed value, then read back. */
    for (int i = 0; i < hivent_conf_key_count(); i++) {
        hivent_conf_set(conf, hivent_conf_key_at(i), value, err, sizeof err);
        char buf[64];
        size_t n = sizeof buf;
        hivent_conf_get(conf, hivent_conf_key_at(i), buf, &n);
    }
    hivent_conf_t *dup = hivent_conf_dup(conf);
    hivent_conf_destroy(dup);
    hivent_conf_destroy(conf);
    free(copy);
    return 0;
}
