/* Bounds-checked MessagePack reader. */
#include <math.h>

#include "check.h"
#include "mp.h"

struct read_case {
    const char *name;
    const unsigned char *bytes;
    size_t len;
    hv_mp_type_t type;
    int64_t i;
    uint64_t u;
    uint32_t size;
};

#define BYTES(...) (const unsigned char[]){__VA_ARGS__}, sizeof((const unsigned char[]){__VA_ARGS__})

static void mp_reads_every_type(void)
{
    const struct read_case cases[] = {
        {"positive fixint", BYTES(0x7f), HV_MP_UINT, 127, 127, 0},
        {"negative fixint", BYTES(0xe0), HV_MP_INT, -32, 0, 0},
        {"uint8", BYTES(0xcc, 0xff), HV_MP_UINT, 255, 255, 0},
        {"uint16", BYTES(0xcd, 0x12, 0x34), HV_MP_UINT, 0x1234, 0x1234, 0},
        {"uint32", BYTES(0xce, 0xff, 0xff, 0xff, 0xff), HV_MP_UINT, 0xffffffffLL, 0xffffffffULL, 0},
        {"uint64 max", BYTES(0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), HV_MP_UINT,
         INT64_MAX, UINT64_MAX, 0},
        {"int8", BYTES(0xd0, 0x80), HV_MP_INT, -128, 0, 0},
        {"int16", BYTES(0xd1, 0xff, 0xfe), HV_MP_INT, -2, 0, 0},
        {"int32", BYTES(0xd2, 0x80, 0, 0, 0), HV_MP_INT, INT32_MIN, 0, 0},
        {"int64", BYTES(0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0), HV_MP_INT, INT64_MIN, 0, 0},
        {"nil", BYTES(0xc0), HV_MP_NIL, 0, 0, 0},
        {"fixstr", BYTES(0xa2, 'h', 'i'), HV_MP_STR, 0, 0, 2},
        {"str8", BYTES(0xd9, 1, 'x'), HV_MP_STR, 0, 0, 1},
        {"str16", BYTES(0xda, 0, 1, 'x'), HV_MP_STR, 0, 0, 1},
        {"str32", BYTES(0xdb, 0, 0, 0, 1, 'x'), HV_MP_STR, 0, 0, 1},
        {"bin8", BYTES(0xc4, 2, 0, 1), HV_MP_BIN, 0, 0, 2},
        {"bin16", BYTES(0xc5, 0, 1, 0), HV_MP_BIN, 0, 0, 1},
        {"bin32", BYTES(0xc6, 0, 0, 0, 0), HV_MP_BIN, 0, 0, 0},
        {"fixext1", BYTES(0xd4, 1, 9), HV_MP_EXT, 0, 0, 1},
        {"fixext16", BYTES(0xd8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), HV_MP_EXT,
         0, 0, 16},
        {"ext8", BYTES(0xc7, 2, 5, 1, 2), HV_MP_EXT, 0, 0, 2},
        {"ext16", BYTES(0xc8, 0, 1, 5, 1), HV_MP_EXT, 0, 0, 1},
        {"ext32", BYTES(0xc9, 0, 0, 0, 0, 5), HV_MP_EXT, 0, 0, 0},
        {"fixarray", BYTES(0x92, 1, 2), HV_MP_ARRAY, 0, 0, 2},
        {"array16", BYTES(0xdc, 0, 3, 1, 2, 3), HV_MP_ARRAY, 0, 0, 3},
        {"array32", BYTES(0xdd, 0, 0, 0, 1, 1), HV_MP_ARRAY, 0, 0, 1},
        {"fixmap", BYTES(0x81, 1, 2), HV_MP_MAP, 0, 0, 1},
        {"map16", BYTES(0xde, 0, 1, 1, 2), HV_MP_MAP, 0, 0, 1},
        {"map32", BYTES(0xdf, 0, 0, 0, 1, 1, 2), HV_MP_MAP, 0, 0, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        hv_mp_reader_t r;
        hv_mp_value_t v;
        hv_mp_reader_init(&r, cases[c].bytes, cases[c].len);
        CHECK_MSG(hv_mp_read(&r, &v) == 0, "%s not read", cases[c].name);
        CHECK_MSG(v.type == cases[c].type, "%s: type %d", cases[c].name, v.type);
        if (v.type == HV_MP_INT || v.type == HV_MP_UINT)
            CHECK_MSG(v.i == cases[c].i && v.u == cases[c].u, "%s: i=%lld u=%llu",
                      cases[c].name, (long long)v.i, (unsigned long long)v.u);
        if (v.type >= HV_MP_STR)
            CHECK_MSG(v.size == cases[c].size, "%s: size %u", cases[c].name, v.size);
        /* The whole value is well formed and spans exactly the input. */
        CHECK_MSG(hv_mp_validate(cases[c].bytes, cases[c].len) == 0, "%s invalid",
                  cases[c].name);
        /* Every proper prefix is rejected: nothing is read past the end. */
        for (size_t n = 0; n < cases[c].len; n++)
            CHECK_MSG(hv_mp_validate(cases[c].bytes, n) != 0, "%s: prefix of %zu accepted",
                      cases[c].name, n);
    }
}

static void mp_reads_floats_and_bools(void)
{
    hv_mp_reader_t r;
    hv_mp_value_t v;
    static const unsigned char f32[] = {0xca, 0x3f, 0xc0, 0, 0};       /* 1.5 */
    static const unsigned char f64[] = {0xcb, 0xc0, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18};
    hv_mp_reader_init(&r, f32, sizeof f32);
    CHECK_INT(hv_mp_read(&r, &v), 0);
    CHECK_INT(v.type, HV_MP_FLOAT);
    CHECK(v.f == 1.5);
    hv_mp_reader_init(&r, f64, sizeof f64);
    CHECK_INT(hv_mp_read(&r, &v), 0);
    CHECK(fabs(v.f + 3.141592653589793) < 1e-15);
    static const unsigned char bools[] = {0xc2, 0xc3};
    hv_mp_reader_init(&r, bools, 2);
    CHECK_INT(hv_mp_read(&r, &v), 0);
    CHECK_INT(v.type, HV_MP_BOOL);
    CHECK_INT(v.boolean, 0);
    CHECK_INT(hv_mp_read(&r, &v), 0);
    CHECK_INT(v.boolean, 1);
    CHECK_INT(hv_mp_read(&r, &v), -1);
    static const unsigned char reserved[] = {0xc1};
    hv_mp_reader_init(&r, reserved, 1);
    CHECK_INT(hv_mp_read(&r, &v), -1);
}

static void mp_skip_depth_limit(void)
{
    unsigned char buf[HV_MP_MAX_DEPTH + 2];
    /* HV_MP_MAX_DEPTH nested arrays around nil are accepted ... */
    memset(buf, 0x91, HV_MP_MAX_DEPTH);
    buf[HV_MP_MAX_DEPTH] = 0xc0;
    CHECK_INT(hv_mp_validate(buf, HV_MP_MAX_DEPTH + 1), 0);
    /* ... one more level is not. */
    memset(buf, 0x91, HV_MP_MAX_DEPTH + 1);
    buf[HV_MP_MAX_DEPTH + 1] = 0xc0;
    CHECK_INT(hv_mp_validate(buf, HV_MP_MAX_DEPTH + 2), -1);
}

static void mp_rejects_counts_beyond_input(void)
{
    static const unsigned char arr[] = {0xdd, 0x7f, 0xff, 0xff, 0xff, 0xc0};
    static const unsigned char map[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0};
    static const unsigned char bin[] = {0xc6, 0xff, 0xff, 0xff, 0xff, 0};
    CHECK_INT(hv_mp_validate(arr, sizeof arr), -1);
    CHECK_INT(hv_mp_validate(map, sizeof map), -1);
    CHECK_INT(hv_mp_validate(bin, sizeof bin), -1);
    static const unsigned char two[] = {0xc0, 0xc0};
    CHECK_INT(hv_mp_validate(two, sizeof two), -1);
    CHECK_INT(hv_mp_validate(two, 0), -1);
}

static void mp_map_find_cases(void)
{
    /* {"a": 1, [1]: 2, "b": {"c": 3}, "a": 9} */
    static const unsigned char map[] = {0x84, 0xa1, 'a', 0x01, 0x91, 0x01, 0x02, 0xa1, 'b',
                                        0x81, 0xa1, 'c', 0x03, 0xa1, 'a', 0x09};
    const unsigned char *val;
    size_t vs;
    CHECK_INT(hv_mp_map_find(map, sizeof map, "a", &val, &vs), 1);
    CHECK_INT(vs, 1);
    CHECK_INT(val[0], 1); /* the first of duplicate keys wins */
    CHECK_INT(hv_mp_map_find(map, sizeof map, "b", &val, &vs), 1);
    CHECK_INT(vs, 4);
    CHECK_INT(hv_mp_map_find(map, sizeof map, "c", &val, &vs), 0);
    CHECK_INT(hv_mp_map_find(map, sizeof map - 1, "zz", &val, &vs), -1);
    static const unsigned char arr[] = {0x91, 0x01};
    CHECK_INT(hv_mp_map_find(arr, sizeof arr, "a", &val, &vs), -1);
    CHECK_INT(hv_mp_map_find(arr, 0, "a", &val, &vs), -1);
    CHECK_INT(hv_mp_is_map(map, sizeof map), 1);
    CHECK_INT(hv_mp_is_map(arr, sizeof arr), 0);
    CHECK_INT(hv_mp_is_map(map, 0), 0);
}

static void mp_strdup_cases(void)
{
    static const unsigned char ok[] = {0xa3, 'a', 'b', 'c'};
    static const unsigned char nul[] = {0xa3, 'a', 0, 'c'};
    static const unsigned char num[] = {0x05};
    char *s = hv_mp_strdup(ok, sizeof ok);
    CHECK_STR(s, "abc");
    free(s);
    CHECK(hv_mp_strdup(nul, sizeof nul) == NULL);
    CHECK(hv_mp_strdup(num, sizeof num) == NULL);
    CHECK(hv_mp_strdup(ok, 2) == NULL);
}

int main(void)
{
    RUN_TEST(mp_reads_every_type);
    RUN_TEST(mp_reads_floats_and_bools);
    RUN_TEST(mp_skip_depth_limit);
    RUN_TEST(mp_rejects_counts_beyond_input);
    RUN_TEST(mp_map_find_cases);
    RUN_TEST(mp_strdup_cases);
    return check_summary();
}
