/* Frame codec: MessagePack and gzip (vsn 1.0.0) and JSON (vsn 2.0.0). */
#include <msgpack.h>
#include <pthread.h>
#include <stdint.h>
#include <zlib.h>

#include "check.h"
#include "frame.h"
#include "mp.h"

static void pk_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* Packs a payload map {"d": STRING of @n bytes}. */
static void payload_of_size(hv_buf_t *out, size_t n)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, hv_buf_msgpack_write);
    msgpack_pack_map(&pk, 1);
    pk_str(&pk, "d");
    char *s = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        s[i] = (char)('a' + (i * 7) % 26);
    s[n] = 0;
    pk_str(&pk, s);
    free(s);
}

static int decode(const hv_buf_t *b, hv_frame_t *f, char *err)
{
    return hv_frame_decode(b->data, b->len, 16 << 20, f, err, 256);
}

static void frame_roundtrip_int_ref(void)
{
    hv_buf_t payload = {0}, out = {0};
    payload_of_size(&payload, 10);
    hv_frame_t f = {.topic = "ingress:all", .event = "event:emit", .payload = payload.data,
                    .payload_size = payload.len, .ref = {HV_REF_INT, 42, NULL}};
    CHECK_INT(hv_frame_encode(&f, 1, &out), 0);
    CHECK_INT(out.data[0], 0x84);
    hv_frame_t d;
    char err[256] = "";
    CHECK_INT(decode(&out, &d, err), 0);
    CHECK_STR(d.topic, "ingress:all");
    CHECK_STR(d.event, "event:emit");
    CHECK_INT(d.ref.kind, HV_REF_INT);
    CHECK_INT(d.ref.num, 42);
    CHECK_INT(d.payload_size, payload.len);
    CHECK(d.payload && memcmp(d.payload, payload.data, payload.len) == 0);
    hv_frame_clear(&d);
    hv_buf_free(&payload);
    hv_buf_free(&out);
}

static void frame_roundtrip_string_and_nil_refs(void)
{
    hv_frame_t f = {.topic = "t", .event = "e", .ref = {HV_REF_STR, 0, "ref-7"}};
    hv_buf_t out = {0};
    char err[256];
    CHECK_INT(hv_frame_encode(&f, 1, &out), 0);
    hv_frame_t d;
    CHECK_INT(decode(&out, &d, err), 0);
    CHECK_INT(d.ref.kind, HV_REF_STR);
    CHECK_STR(d.ref.str, "ref-7");
    /* A missing payload encodes and decodes as an empty map. */
    CHECK_INT(d.payload_size, 1);
    CHECK(d.payload && d.payload[0] == 0x80);
    hv_frame_clear(&d);
    hv_buf_free(&out);

    hv_frame_t g = {.topic = "t", .event = "phx_close"};
    CHECK_INT(hv_frame_encode(&g, 1, &out), 0);
    CHECK_INT(decode(&out, &d, err), 0);
    CHECK_INT(d.ref.kind, HV_REF_NIL);
    hv_frame_clear(&d);
    hv_buf_free(&out);

    /* Negative and large integer refs keep their value. */
    int64_t nums[] = {0, -1, -129, 65536, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        hv_frame_t h = {.topic = "t", .event = "e", .ref = {HV_REF_INT, nums[i], NULL}};
        CHECK_INT(hv_frame_encode(&h, 0, &out), 0);
        CHECK_INT(decode(&out, &d, err), 0);
        CHECK_INT(d.ref.kind, HV_REF_INT);
        CHECK_INT(d.ref.num, nums[i]);
        hv_frame_clear(&d);
        hv_buf_free(&out);
    }
}

/* Finds the payload string length that makes the packed map @target bytes. */
static size_t size_for_packed(size_t target)
{
    hv_buf_t payload = {0}, out = {0};
    payload_of_size(&payload, 500);
    hv_frame_t f = {.topic = "ingress:all", .event = "event:emit", .payload = payload.data,
                    .payload_size = payload.len, .ref = {HV_REF_INT, 1, NULL}};
    hv_frame_encode(&f, 0, &out);
    size_t n = 500 + target - out.len;
    hv_buf_free(&payload);
    hv_buf_free(&out);
    return n;
}

static void frame_gzip_threshold(void)
{
    size_t sizes[] = {HV_GZIP_THRESHOLD - 1, HV_GZIP_THRESHOLD, HV_GZIP_THRESHOLD + 1};
    for (int i = 0; i < 3; i++) {
        hv_buf_t payload = {0}, plain = {0}, out = {0};
        payload_of_size(&payload, size_for_packed(sizes[i]));
        hv_frame_t f = {.topic = "ingress:all", .event = "event:emit",
                        .payload = payload.data, .payload_size = payload.len,
                        .ref = {HV_REF_INT, 1, NULL}};
        CHECK_INT(hv_frame_encode(&f, 0, &plain), 0);
        CHECK_INT(plain.len, sizes[i]);
        CHECK_INT(hv_frame_encode(&f, 1, &out), 0);
        int gz = out.len >= 2 && out.data[0] == 0x1f && out.data[1] == 0x8b;
        CHECK_INT(gz, sizes[i] >= HV_GZIP_THRESHOLD);
        if (!gz) {
            CHECK_INT(out.len, plain.len);
            CHECK(memcmp(out.data, plain.data, plain.len) == 0);
        } else {
            hv_buf_t inflated = {0};
            char err[256];
            CHECK_INT(hv_gunzip(out.data, out.len, 1 << 20, &inflated, err, sizeof err), 0);
            CHECK_INT(inflated.len, plain.len);
            CHECK(inflated.data && memcmp(inflated.data, plain.data, plain.len) == 0);
            hv_buf_free(&inflated);
        }
        hv_frame_t d;
        char err[256];
        CHECK_INT(decode(&out, &d, err), 0);
        CHECK_INT(d.payload_size, payload.len);
        CHECK(d.payload && memcmp(d.payload, payload.data, payload.len) == 0);
        hv_frame_clear(&d);
        hv_buf_free(&payload);
        hv_buf_free(&plain);
        hv_buf_free(&out);
    }
}

/* A frame that gzip would make larger goes out as the plain map, so its
 * size on the wire never exceeds the packed size. */
static void frame_incompressible_sent_plain(void)
{
    /* {"b": BIN} with 4080 random bytes: fixmap, fixstr "b", bin16. */
    unsigned char map[4 + 3 + 4080];
    size_t n = 0;
    map[n++] = 0x81;
    map[n++] = 0xa1;
    map[n++] = 'b';
    map[n++] = 0xc5;
    map[n++] = 0x0f;
    map[n++] = 0xf0;
    uint32_t x = 2463534242u;
    for (int i = 0; i < 0x0ff0; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        map[n++] = (unsigned char)x;
    }
    hv_frame_t f = {.topic = "ingress:all", .event = "event:emit", .payload = map,
                    .payload_size = n, .ref = {HV_REF_INT, 7, NULL}};
    hv_buf_t plain = {0}, out = {0};
    CHECK_INT(hv_frame_encode(&f, 0, &plain), 0);
    CHECK_INT(hv_frame_encode(&f, 1, &out), 0);
    CHECK(plain.len >= HV_GZIP_THRESHOLD);
    CHECK_INT(out.len, plain.len);
    CHECK(memcmp(out.data, plain.data, out.len < plain.len ? out.len : plain.len) == 0);
    hv_frame_t d;
    char err[256];
    CHECK_INT(decode(&out, &d, err), 0);
    CHECK_INT(d.payload_size, n);
    hv_frame_clear(&d);
    hv_buf_free(&plain);
    hv_buf_free(&out);
}

static void frame_keys_any_order(void)
{
    hv_buf_t b = {0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, hv_buf_msgpack_write);
    msgpack_pack_map(&pk, 6);
    pk_str(&pk, "ref");
    msgpack_pack_uint64(&pk, 9);
    msgpack_pack_int(&pk, 5); /* a non-string key is skipped */
    pk_str(&pk, "ignored");
    pk_str(&pk, "payload");
    msgpack_pack_map(&pk, 1);
    pk_str(&pk, "status");
    pk_str(&pk, "ok");
    pk_str(&pk, "extra");
    msgpack_pack_array(&pk, 2);
    msgpack_pack_nil(&pk);
    msgpack_pack_true(&pk);
    pk_str(&pk, "event");
    pk_str(&pk, "phx_reply");
    pk_str(&pk, "topic");
    pk_str(&pk, "phoenix");
    hv_frame_t d;
    char err[256] = "";
    CHECK_MSG(decode(&b, &d, err) == 0, "%s", err);
    CHECK_STR(d.topic, "phoenix");
    CHECK_STR(d.event, "phx_reply");
    CHECK_INT(d.ref.num, 9);
    const unsigned char *val;
    size_t vs;
    CHECK_INT(hv_mp_map_find(d.payload, d.payload_size, "status", &val, &vs), 1);
    hv_frame_clear(&d);
    hv_buf_free(&b);
}

/* Each case is a hex-free byte string that hv_frame_decode must reject. */
struct bad_case {
    const char *name;
    const unsigned char *data;
    size_t len;
};

static void frame_rejects_malformed(void)
{
    static const unsigned char empty[] = {0};
    static const unsigned char truncated_map[] = {0x84, 0xa5, 't', 'o'};
    static const unsigned char array[] = {0x92, 0x01, 0x02};
    static const unsigned char str[] = {0xa3, 'a', 'b', 'c'};
    static const unsigned char topic_int[] = {0x82, 0xa5, 't', 'o', 'p', 'i', 'c', 0x01,
                                              0xa5, 'e', 'v', 'e', 'n', 't', 0xa1, 'x'};
    static const unsigned char event_nil[] = {0x82, 0xa5, 't', 'o', 'p', 'i', 'c', 0xa1, 'x',
                                              0xa5, 'e', 'v', 'e', 'n', 't', 0xc0};
    static const unsigned char no_event[] = {0x81, 0xa5, 't', 'o', 'p', 'i', 'c', 0xa1, 'x'};
    static const unsigned char payload_array[] = {
        0x83, 0xa5, 't', 'o', 'p', 'i', 'c', 0xa1, 'x', 0xa5, 'e', 'v', 'e', 'n', 't',
        0xa1, 'y', 0xa7, 'p', 'a', 'y', 'l', 'o', 'a', 'd', 0x90};
    static const unsigned char ref_float[] = {
        0x83, 0xa5, 't', 'o', 'p', 'i', 'c', 0xa1, 'x', 0xa5, 'e', 'v', 'e', 'n', 't',
        0xa1, 'y', 0xa3, 'r', 'e', 'f', 0xca, 0, 0, 0, 0};
    static const unsigned char ref_huge_uint[] = {
        0x83, 0xa5, 't', 'o', 'p', 'i', 'c', 0xa1, 'x', 0xa5, 'e', 'v', 'e', 'n', 't',
        0xa1, 'y', 0xa3, 'r', 'e', 'f', 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char trailing[] = {0x82, 0xa5, 't', 'o', 'p', 'i', 'c', 0xa1, 'x',
                                             0xa5, 'e', 'v', 'e', 'n', 't', 0xa1, 'y', 0xc0};
    static const unsigned char map32_huge[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'x'};
    static const unsigned char str32_huge[] = {0x81, 0xdb, 0xff, 0xff, 0xff, 0xff, 'x'};
    static const unsigned char payload_huge[] = {
        0x83, 0xa5, 't', 'o', 'p', 'i', 'c', 0xa1, 'x', 0xa5, 'e', 'v', 'e', 'n', 't',
        0xa1, 'y', 0xa7, 'p', 'a', 'y', 'l', 'o', 'a', 'd', 0xde, 0xff, 0xff};
    static const unsigned char topic_nul[] = {0x82, 0xa5, 't', 'o', 'p', 'i', 'c', 0xa2, 'x', 0,
                                              0xa5, 'e', 'v', 'e', 'n', 't', 0xa1, 'y'};
    static const unsigned char reserved[] = {0xc1};
    static const unsigned char gzip_magic_only[] = {0x1f, 0x8b};
    static const unsigned char gzip_garbage[] = {0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3, 0xff,
                                                 0xff, 0xff, 0xff};
    const struct bad_case cases[] = {
        {"empty", empty, 0},
        {"truncated map", truncated_map, sizeof truncated_map},
        {"array", array, sizeof array},
        {"string", str, sizeof str},
        {"integer topic", topic_int, sizeof topic_int},
        {"nil event", event_nil, sizeof event_nil},
        {"missing event", no_event, sizeof no_event},
        {"array payload", payload_array, sizeof payload_array},
        {"float ref", ref_float, sizeof ref_float},
        {"ref above INT64_MAX", ref_huge_uint, sizeof ref_huge_uint},
        {"trailing byte", trailing, sizeof trailing},
        {"map32 with 2^32-1 pairs", map32_huge, sizeof map32_huge},
        {"str32 of 2^32-1 bytes", str32_huge, sizeof str32_huge},
        {"payload map16 of 65535 pairs", payload_huge, sizeof payload_huge},
        {"NUL byte in topic", topic_nul, sizeof topic_nul},
        {"reserved type byte", reserved, sizeof reserved},
        {"gzip magic only", gzip_magic_only, sizeof gzip_magic_only},
        {"corrupt gzip", gzip_garbage, sizeof gzip_garbage},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hv_frame_t d;
        char err[256] = "";
        int rc = hv_frame_decode(cases[i].data, cases[i].len, 1 << 20, &d, err, sizeof err);
        CHECK_MSG(rc == -1, "case \"%s\" was accepted", cases[i].name);
        CHECK_MSG(err[0] != 0, "case \"%s\" left no error message", cases[i].name);
        CHECK_MSG(d.topic == NULL && d.payload == NULL, "case \"%s\" left fields set",
                  cases[i].name);
    }
}

static void frame_rejects_nesting_bomb(void)
{
    /* topic, event, then a payload map whose one value nests 100000 arrays. */
    size_t depth = 100000;
    hv_buf_t b = {0};
    static const unsigned char head[] = {0x83, 0xa5, 't', 'o', 'p', 'i', 'c', 0xa1, 'x',
                                         0xa5, 'e', 'v', 'e', 'n', 't', 0xa1, 'y',
                                         0xa7, 'p', 'a', 'y', 'l', 'o', 'a', 'd',
                                         0x81, 0xa1, 'k'};
    hv_buf_append(&b, head, sizeof head);
    for (size_t i = 0; i < depth; i++)
        hv_buf_append(&b, "\x91", 1);
    hv_buf_append(&b, "\xc0", 1);
    hv_frame_t d;
    char err[256] = "";
    CHECK_INT(hv_frame_decode(b.data, b.len, 1 << 20, &d, err, sizeof err), -1);
    CHECK(err[0] != 0);
    /* Depth HV_MP_MAX_DEPTH - 2 inside the payload is accepted. */
    b.len = sizeof head;
    for (size_t i = 0; i < HV_MP_MAX_DEPTH - 2; i++)
        hv_buf_append(&b, "\x91", 1);
    hv_buf_append(&b, "\xc0", 1);
    CHECK_MSG(hv_frame_decode(b.data, b.len, 1 << 20, &d, err, sizeof err) == 0, "%s", err);
    hv_frame_clear(&d);
    hv_buf_free(&b);
}

/* Gzips @n zero bytes (highly compressible) with zlib directly. */
static void gzip_zeros(size_t n, hv_buf_t *out)
{
    unsigned char *zeros = calloc(1, n);
    CHECK(hv_gzip(zeros, n, out) == 0);
    free(zeros);
}

static void frame_rejects_gzip_bomb(void)
{
    hv_buf_t bomb = {0};
    gzip_zeros(64u << 20, &bomb);
    CHECK(bomb.len < (1u << 20));
    hv_frame_t d;
    char err[256] = "";
    CHECK_INT(hv_frame_decode(bomb.data, bomb.len, 1 << 20, &d, err, sizeof err), -1);
    CHECK_CONTAINS(err, "maximum frame size");
    hv_buf_free(&bomb);
}

static void gunzip_limit_is_exact(void)
{
    hv_buf_t gz = {0}, out = {0};
    char err[256] = "";
    gzip_zeros(5000, &gz);
    CHECK_INT(hv_gunzip(gz.data, gz.len, 5000, &out, err, sizeof err), 0);
    CHECK_INT(out.len, 5000);
    hv_buf_free(&out);
    CHECK_INT(hv_gunzip(gz.data, gz.len, 4999, &out, err, sizeof err), -1);
    CHECK_INT(out.len, 0);
    /* Trailing bytes after the member and a cut-off member fail. */
    hv_buf_append(&gz, "xx", 2);
    CHECK_INT(hv_gunzip(gz.data, gz.len, 1 << 20, &out, err, sizeof err), -1);
    CHECK_INT(hv_gunzip(gz.data, gz.len - 10, 1 << 20, &out, err, sizeof err), -1);
    hv_buf_free(&gz);
    hv_buf_free(&out);
}

/* Returns @n letters from a xorshift generator over 16 letters, which
 * compress well but differ for each @seed. */
static unsigned char *letters(size_t n, uint32_t seed)
{
    unsigned char *p = malloc(n);
    uint32_t x = seed | 1;
    for (size_t i = 0; p && i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)('a' + x % 16);
    }
    return p;
}

/* Compresses and inflates @rounds inputs of different sizes in turn and
 * returns how many came back different. */
static int roundtrip_rounds(uint32_t seed, int rounds)
{
    int bad = 0;
    for (int r = 0; r < rounds; r++) {
        size_t n = 1024 + (size_t)((seed + (uint32_t)r * 977u) % 9000u);
        unsigned char *in = letters(n, seed + (uint32_t)r);
        hv_buf_t gz = {0}, out = {0};
        char err[256] = "";
        if (!in || hv_gzip(in, n, &gz) != 0 ||
            hv_gunzip(gz.data, gz.len, n, &out, err, sizeof err) != 0 || out.len != n ||
            memcmp(out.data, in, n) != 0)
            bad++;
        free(in);
        hv_buf_free(&gz);
        hv_buf_free(&out);
    }
    return bad;
}

/* Each thread reuses one deflate and one inflate stream, so a failed
 * inflate must leave no state behind for the next frame. */
static void gzip_streams_reused_after_errors(void)
{
    hv_buf_t bomb = {0}, good = {0}, out = {0};
    char err[256] = "";
    gzip_zeros(8u << 20, &bomb);
    unsigned char *in = letters(6000, 42);
    CHECK_REQUIRE(in != NULL);
    CHECK_INT(hv_gzip(in, 6000, &good), 0);
    CHECK_INT(hv_gunzip(bomb.data, bomb.len, 1 << 20, &out, err, sizeof err), -1);
    CHECK_INT(hv_gunzip(good.data, good.len - 7, 1 << 20, &out, err, sizeof err), -1);
    CHECK_INT(hv_gunzip(bomb.data, bomb.len / 2, 16u << 20, &out, err, sizeof err), -1);
    CHECK_INT(out.len, 0);
    CHECK_INT(hv_gunzip(good.data, good.len, 1 << 20, &out, err, sizeof err), 0);
    CHECK_INT(out.len, 6000);
    CHECK(out.len == 6000);
    CHECK(memcmp(out.data, in, out.len < 6000 ? out.len : 6000) == 0);
    CHECK_INT(roundtrip_rounds(7, 50), 0);
    free(in);
    hv_buf_free(&bomb);
    hv_buf_free(&good);
    hv_buf_free(&out);
}

static void *gzip_thread(void *arg)
{
    return (void *)(intptr_t)roundtrip_rounds((uint32_t)(intptr_t)arg, 100);
}

static void gzip_streams_per_thread(void)
{
    pthread_t threads[4];
    for (intptr_t i = 0; i < 4; i++)
        CHECK_REQUIRE(pthread_create(&threads[i], NULL, gzip_thread, (void *)(i * 1000 + 1)) ==
                      0);
    for (int i = 0; i < 4; i++) {
        void *bad = NULL;
        pthread_join(threads[i], &bad);
        CHECK_INT((intptr_t)bad, 0);
    }
}

static void frame_rejects_over_max_size(void)
{
    hv_buf_t payload = {0}, out = {0};
    payload_of_size(&payload, 3000);
    hv_frame_t f = {.topic = "t", .event = "e", .payload = payload.data,
                    .payload_size = payload.len};
    CHECK_INT(hv_frame_encode(&f, 0, &out), 0);
    hv_frame_t d;
    char err[256] = "";
    CHECK_INT(hv_frame_decode(out.data, out.len, 2048, &d, err, sizeof err), -1);
    CHECK_CONTAINS(err, "maximum frame size");
    /* The same frame gzipped is small on the wire but inflates past the limit. */
    hv_buf_t gz = {0};
    hv_gzip(out.data, out.len, &gz);
    CHECK(gz.len < 2048);
    CHECK_INT(hv_frame_decode(gz.data, gz.len, 2048, &d, err, sizeof err), -1);
    CHECK_INT(hv_frame_decode(gz.data, gz.len, out.len, &d, err, sizeof err), 0);
    hv_frame_clear(&d);
    hv_buf_free(&gz);
    hv_buf_free(&payload);
    hv_buf_free(&out);
}

static void json_frame_roundtrip(void)
{
    hv_buf_t payload = {0}, out = {0};
    payload_of_size(&payload, 40);
    hv_frame_t f = {.topic = "event:*", .event = "phx_join", .payload = payload.data,
                    .payload_size = payload.len, .ref = {HV_REF_STR, 0, "3"},
                    .join_ref = {HV_REF_INT, 3, NULL}};
    CHECK_INT(hv_frame_encode_json(&f, &out), 0);
    hv_buf_append(&out, "", 1);
    CHECK_CONTAINS((char *)out.data, "[3,\"3\",\"event:*\",\"phx_join\",{\"d\":");
    hv_frame_t d;
    char err[256] = "";
    CHECK_MSG(hv_frame_decode_json((char *)out.data, out.len - 1, 1 << 20, &d, err,
                                   sizeof err) == 0, "%s", err);
    CHECK_STR(d.topic, "event:*");
    CHECK_STR(d.event, "phx_join");
    CHECK_INT(d.join_ref.kind, HV_REF_INT);
    CHECK_INT(d.join_ref.num, 3);
    CHECK_INT(d.ref.kind, HV_REF_STR);
    CHECK_STR(d.ref.str, "3");
    CHECK_INT(d.payload_size, payload.len);
    CHECK(d.payload && memcmp(d.payload, payload.data, payload.len) == 0);
    hv_frame_clear(&d);

    const char *nil_refs = "[null,null,\"phoenix\",\"phx_reply\",{}]";
    CHECK_INT(hv_frame_decode_json(nil_refs, strlen(nil_refs), 1 << 20, &d, err, sizeof err),
              0);
    CHECK_INT(d.ref.kind, HV_REF_NIL);
    CHECK_INT(d.join_ref.kind, HV_REF_NIL);
    CHECK_INT(d.payload_size, 1);
    hv_frame_clear(&d);
    hv_buf_free(&payload);
    hv_buf_free(&out);
}

static void json_frame_rejects_malformed(void)
{
    const char *cases[] = {
        "",
        "{}",
        "[1,2,\"t\",\"e\"]",
        "[1,2,\"t\",\"e\",{},6]",
        "[1,2,3,\"e\",{}]",
        "[1,2,\"t\",null,{}]",
        "[1,2,\"t\",\"e\",[]]",
        "[1,2,\"t\",\"e\",\"x\"]",
        "[1.5,2,\"t\",\"e\",{}]",
        "[1,{},\"t\",\"e\",{}]",
        "[1,2,\"t\",\"e\",{}",
        "[1,2,\"t\\u0000x\",\"e\",{}]",
        "[1,2,\"\xff\xfe\",\"e\",{}]",
        "[1,2,\"t\",\"e\",{}] trailing",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hv_frame_t d;
        char err[256] = "";
        int rc = hv_frame_decode_json(cases[i], strlen(cases[i]), 1 << 20, &d, err, sizeof err);
        CHECK_MSG(rc == -1, "JSON frame %s was accepted", cases[i]);
        CHECK_MSG(err[0] != 0, "JSON frame %s left no message", cases[i]);
    }
    /* Nesting deeper than the MessagePack limit is rejected, not overflowed. */
    hv_buf_t deep = {0};
    hv_buf_puts(&deep, "[1,2,\"t\",\"e\",{\"k\":");
    for (int i = 0; i < 1000; i++)
        hv_buf_puts(&deep, "[");
    for (int i = 0; i < 1000; i++)
        hv_buf_puts(&deep, "]");
    hv_buf_puts(&deep, "}]");
    hv_frame_t d;
    char err[256] = "";
    CHECK_INT(hv_frame_decode_json((char *)deep.data, deep.len, 1 << 20, &d, err, sizeof err),
              -1);
    CHECK_INT(hv_frame_decode_json((char *)deep.data, deep.len, 100, &d, err, sizeof err), -1);
    CHECK_CONTAINS(err, "maximum frame size");
    hv_buf_free(&deep);
}

static void reply_packing(void)
{
    hv_buf_t b = {0};
    static const unsigned char resp[] = {0x81, 0xa6, 'r', 'e', 'a', 's', 'o', 'n', 0xa1, 'x'};
    CHECK_INT(hv_pack_reply(&b, "error", resp, sizeof resp), 0);
    CHECK_INT(hv_mp_validate(b.data, b.len), 0);
    const unsigned char *val;
    size_t vs;
    CHECK_INT(hv_mp_map_find(b.data, b.len, "response", &val, &vs), 1);
    CHECK_INT(vs, sizeof resp);
    CHECK(memcmp(val, resp, sizeof resp) == 0);
    char *status = NULL;
    CHECK_INT(hv_mp_map_find(b.data, b.len, "status", &val, &vs), 1);
    status = hv_mp_strdup(val, vs);
    CHECK_STR(status, "error");
    free(status);
    hv_buf_free(&b);
    CHECK_INT(hv_pack_reply(&b, "ok", NULL, 0), 0);
    CHECK_INT(hv_mp_map_find(b.data, b.len, "response", &val, &vs), 1);
    CHECK_INT(vs, 1);
    CHECK_INT(val[0], 0x80);
    hv_buf_free(&b);
}

static void ref_copy_is_deep(void)
{
    hv_ref_t a = {HV_REF_STR, 0, strdup("abc")}, b;
    CHECK_INT(hv_ref_copy(&b, &a), 0);
    CHECK(b.str != a.str);
    CHECK_STR(b.str, "abc");
    hv_ref_clear(&a);
    hv_ref_clear(&b);
    CHECK_INT(b.kind, HV_REF_NIL);
}

int main(void)
{
    RUN_TEST(frame_roundtrip_int_ref);
    RUN_TEST(frame_roundtrip_string_and_nil_refs);
    RUN_TEST(frame_gzip_threshold);
    RUN_TEST(frame_incompressible_sent_plain);
    RUN_TEST(frame_keys_any_order);
    RUN_TEST(frame_rejects_malformed);
    RUN_TEST(frame_rejects_nesting_bomb);
    RUN_TEST(frame_rejects_gzip_bomb);
    RUN_TEST(gunzip_limit_is_exact);
    RUN_TEST(gzip_streams_reused_after_errors);
    RUN_TEST(gzip_streams_per_thread);
    RUN_TEST(frame_rejects_over_max_size);
    RUN_TEST(json_frame_roundtrip);
    RUN_TEST(json_frame_rejects_malformed);
    RUN_TEST(reply_packing);
    RUN_TEST(ref_copy_is_deep);
    return check_summary();
}
