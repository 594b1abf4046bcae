#include "bench_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t hvb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void hvb_sleep_until(uint64_t deadline_ns)
{
    struct timespec ts = {
        .tv_sec = (time_t)(deadline_ns / 1000000000u),
        .tv_nsec = (long)(deadline_ns % 1000000000u),
    };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

unsigned char *hvb_payload_new(size_t size, uint32_t seed)
{
    /* 1 byte fixmap header, 5 bytes fixstr "data", then a str8 (2 byte
     * header) or str16 (3 byte header) value. */
    const size_t fixed = 1 + 5;
    if (size < fixed + 2 || size > 65535)
        return NULL;
    size_t header = size - fixed - 2 <= 255 ? 2 : 3;
    size_t len = size - fixed - header;
    unsigned char *p = malloc(size);
    if (!p)
        return NULL;
    unsigned char *w = p;
    *w++ = 0x81;
    *w++ = 0xa4;
    memcpy(w, "data", 4);
    w += 4;
    if (header == 2) {
        *w++ = 0xd9;
        *w++ = (unsigned char)len;
    } else {
        *w++ = 0xda;
        *w++ = (unsigned char)(len >> 8);
        *w++ = (unsigned char)len;
    }
    uint32_t x = seed ? seed : 2463534242u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *w++ = (unsigned char)('a' + x % 26);
    }
    return p;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double hvb_quantile(double *values, size_t count, double q)
{
    if (count == 0)
        return 0.0;
    qsort(values, count, sizeof(*values), compare_double);
    size_t i = (size_t)(q * (double)(count - 1) + 0.5);
    return values[i < count ? i : count - 1];
}

long hvb_rss_kib(int pid)
{
    char path[64];
    if (pid > 0)
        snprintf(path, sizeof(path), "/proc/%d/status", pid);
    else
        snprintf(path, sizeof(path), "/proc/self/status");
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

const char *hvb_opt_str(int argc, char **argv, const char *name, const char *fallback)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return fallback;
}

long hvb_opt_long(int argc, char **argv, const char *name, long fallback)
{
    const char *s = hvb_opt_str(argc, argv, name, NULL);
    if (!s)
        return fallback;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) {
        fprintf(stderr, "invalid value for %s: %s (expected an integer)\n", name, s);
        exit(2);
    }
    return v;
}

int hvb_opt_flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return 0;
}
