/* Event construction, validation, MessagePack codec and getters. */
#include <ctype.h>
#include <msgpack.h>

#include "check.h"
#include "event.h"
#include "mp.h"

static void pk_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void event_new_valid(void)
{
    static const unsigned char payload[] = {0x81, 0xa1, 'n', 0x07};
    hivent_event_t *ev = NULL;
    char err[256] = "";
    CHECK_INT(hv_event_new("user:created", payload, sizeof payload, 3, "cid-1", "k",
                           "svc", &ev, err, sizeof err), HIVENT_OK);
    CHECK_REQUIRE(ev != NULL);
    CHECK_STR(hivent_event_name(ev), "user:created");
    CHECK_INT(hivent_event_version(ev), 3);
    CHECK_STR(hivent_event_cid(ev), "cid-1");
    CHECK_STR(hivent_event_key(ev), "k");
    CHECK_STR(hivent_event_producer(ev), "svc");
    CHECK(hivent_event_uuid(ev) == NULL);
    CHECK_INT(hivent_event_partition(ev), -1);
    size_t size = 0;
    const unsigned char *p = hivent_event_payload(ev, &size);
    CHECK_INT(size, sizeof payload);
    CHECK(p && memcmp(p, payload, size) == 0);
    hivent_event_destroy(ev);

    /* NULL payload and size 0 mean an empty map; cid and key are optional. */
    CHECK_INT(hv_event_new("a", NULL, 0, 1, NULL, NULL, NULL, &ev, err, sizeof err), HIVENT_OK);
    p = hivent_event_payload(ev, &size);
    CHECK_INT(size, 1);
    CHECK_INT(p[0], 0x80);
    CHECK(hivent_event_cid(ev) == NULL);
    hivent_event_destroy(ev);
}

static void event_new_rejects_bad_names(void)
{
    char long_name[300];
    memset(long_name, 'n', sizeof long_name);
    long_name[256] = 0;
    char max_name[256];
    memset(max_name, 'm', 255);
    max_name[255] = 0;
    struct {
        const char *name;
        const char *label;
        const char *expect;
    } cases[] = {
        {NULL, "NULL", "non-empty"},
        {"", "empty", "non-empty"},
        {long_name, "256 bytes", "maximum is 255"},
        {"bad\xc0\x80", "overlong NUL", "UTF-8"},
        {"bad\xed\xa0\x80", "surrogate", "UTF-8"},
        {"bad\xf8\x88\x80\x80\x80", "five-byte form", "UTF-8"},
        {"bad\xe2\x82", "truncated sequence", "UTF-8"},
        {"bad\xf4\x90\x80\x80", "past U+10FFFF", "UTF-8"},
        {"\x80", "lone continuation byte", "UTF-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hivent_event_t *ev = (hivent_event_t *)1;
        char err[256] = "";
        hivent_err_t rc = hv_event_new(cases[i].name, NULL, 0, 1, NULL, NULL, NULL, &ev, err,
                                       sizeof err);
        CHECK_MSG(rc == HIVENT_ERR_INVALID_ARG, "%s: rc %d", cases[i].label, rc);
        CHECK_MSG(ev == NULL, "%s: event set", cases[i].label);
        CHECK_MSG(strstr(err, cases[i].expect) && strstr(err, "event name"),
                  "%s: message \"%s\"", cases[i].label, err);
    }
    hivent_event_t *ev;
    char err[256];
    CHECK_INT(hv_event_new(max_name, NULL, 0, 1, NULL, NULL, NULL, &ev, err, sizeof err),
              HIVENT_OK);
    hivent_event_destroy(ev);
    CHECK_INT(hv_event_new("caf\xc3\xa9 \xf0\x9f\x98\x80", NULL, 0, 1, NULL, NULL, NULL, &ev,
                           err, sizeof err), HIVENT_OK);
    hivent_event_destroy(ev);
}

static void event_new_rejects_bad_values(void)
{
    hivent_event_t *ev;
    char err[256] = "";
    CHECK_INT(hv_event_new("a", NULL, 0, 0, NULL, NULL, NULL, &ev, err, sizeof err),
              HIVENT_ERR_INVALID_ARG);
    CHECK_CONTAINS(err, "version");
    CHECK_INT(hv_event_new("a", NULL, 0, -5, NULL, NULL, NULL, &ev, err, sizeof err),
              HIVENT_ERR_INVALID_ARG);
    static const unsigned char array[] = {0x91, 0x01};
    static const unsigned char truncated[] = {0x82, 0xa1, 'a', 0x01};
    static const unsigned char trailing[] = {0x80, 0x80};
    CHECK_INT(hv_event_new("a", array, sizeof array, 1, NULL, NULL, NULL, &ev, err, sizeof err),
              HIVENT_ERR_PAYLOAD);
    CHECK_CONTAINS(err, "payload");
    CHECK_INT(hv_event_new("a", truncated, sizeof truncated, 1, NULL, NULL, NULL, &ev, err,
                           sizeof err), HIVENT_ERR_PAYLOAD);
    CHECK_INT(hv_event_new("a", trailing, sizeof trailing, 1, NULL, NULL, NULL, &ev, err,
                           sizeof err), HIVENT_ERR_PAYLOAD);
    CHECK_INT(hv_event_new("a", NULL, 0, 1, "\xff", NULL, NULL, &ev, err, sizeof err),
              HIVENT_ERR_INVALID_ARG);
    CHECK_CONTAINS(err, "cid");
    CHECK_INT(hv_event_new("a", NULL, 0, 1, NULL, "", NULL, &ev, err, sizeof err),
              HIVENT_ERR_INVALID_ARG);
    CHECK_CONTAINS(err, "key");
}

/* Packs an event map with the given fields; NULL leaves a field out.
 * @version_kind: 0 integer, 1 string, 2 float, 3 nil, 4 missing, 5 uint64 max. */
static void pack_event(hv_buf_t *b, const char *name, int payload_is_map, int version_kind,
                       int meta_is_map)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, hv_buf_msgpack_write);
    msgpack_pack_map(&pk, 3);
    pk_str(&pk, "meta");
    if (!meta_is_map) {
        pk_str(&pk, "not a map");
    } else {
        msgpack_pack_map(&pk, version_kind == 4 ? 2 : 3);
        pk_str(&pk, "uuid");
        pk_str(&pk, "0d7f8a9e-52a4-4f3c-9a43-6f3f0f2a9b11");
        pk_str(&pk, "cid");
        msgpack_pack_nil(&pk);
        if (version_kind != 4) {
            pk_str(&pk, "version");
            switch (version_kind) {
            case 0: msgpack_pack_int(&pk, 2); break;
            case 1: pk_str(&pk, "2"); break;
            case 2: msgpack_pack_double(&pk, 2.0); break;
            case 3: msgpack_pack_nil(&pk); break;
            case 5: msgpack_pack_uint64(&pk, UINT64_MAX); break;
            }
        }
    }
    pk_str(&pk, "payload");
    if (payload_is_map) {
        msgpack_pack_map(&pk, 1);
        pk_str(&pk, "x");
        msgpack_pack_int(&pk, 1);
    } else {
        msgpack_pack_array(&pk, 0);
    }
    pk_str(&pk, "name");
    if (name)
        pk_str(&pk, name);
    else
        msgpack_pack_int(&pk, 7);
}

static void event_parse_valid(void)
{
    hv_buf_t b = {0};
    pack_event(&b, "order:paid", 1, 0, 1);
    hivent_event_t *ev = NULL;
    char err[256] = "";
    CHECK_MSG(hv_event_parse(b.data, b.len, &ev, err, sizeof err) == HIVENT_OK, "%s", err);
    CHECK_REQUIRE(ev != NULL);
    CHECK_STR(hivent_event_name(ev), "order:paid");
    CHECK_INT(hivent_event_version(ev), 2);
    CHECK_STR(hivent_event_uuid(ev), "0d7f8a9e-52a4-4f3c-9a43-6f3f0f2a9b11");
    CHECK(hivent_event_cid(ev) == NULL);
    hivent_event_destroy(ev);
    hv_buf_free(&b);
}

static void event_parse_rejects_invalid(void)
{
    struct {
        const char *label;
        const char *name;
        int payload_map, version_kind, meta_map;
        const char *expect;
    } cases[] = {
        {"version missing", "a", 1, 4, 1, "meta.version"},
        {"version string", "a", 1, 1, 1, "meta.version"},
        {"version float", "a", 1, 2, 1, "meta.version"},
        {"version nil", "a", 1, 3, 1, "meta.version"},
        {"version above INT64_MAX", "a", 1, 5, 1, "meta.version"},
        {"meta not a map", "a", 1, 0, 0, "meta"},
        {"payload array", "a", 0, 0, 1, "payload"},
        {"name not a string", NULL, 1, 0, 1, "name"},
        {"name empty", "", 1, 0, 1, "name"},
        {"name invalid UTF-8", "\xc3\x28", 1, 0, 1, "UTF-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hv_buf_t b = {0};
        pack_event(&b, cases[i].name, cases[i].payload_map, cases[i].version_kind,
                   cases[i].meta_map);
        hivent_event_t *ev = (hivent_event_t *)1;
        char err[256] = "";
        hivent_err_t rc = hv_event_parse(b.data, b.len, &ev, err, sizeof err);
        CHECK_MSG(rc == HIVENT_ERR_PAYLOAD, "%s: rc %d", cases[i].label, rc);
        CHECK_MSG(ev == NULL, "%s: event set", cases[i].label);
        CHECK_MSG(strstr(err, cases[i].expect) != NULL, "%s: message \"%s\"", cases[i].label,
                  err);
        hv_buf_free(&b);
    }
    char long_name[257];
    memset(long_name, 'x', 256);
    long_name[256] = 0;
    hv_buf_t b = {0};
    pack_event(&b, long_name, 1, 0, 1);
    hivent_event_t *ev;
    char err[256] = "";
    CHECK_INT(hv_event_parse(b.data, b.len, &ev, err, sizeof err), HIVENT_ERR_PAYLOAD);
    CHECK_CONTAINS(err, "255");
    /* Truncated input, trailing bytes and a non-map top level fail too. */
    CHECK_INT(hv_event_parse(b.data, b.len - 1, &ev, err, sizeof err), HIVENT_ERR_PAYLOAD);
    hv_buf_append(&b, "\xc0", 1);
    CHECK_INT(hv_event_parse(b.data, b.len, &ev, err, sizeof err), HIVENT_ERR_PAYLOAD);
    CHECK_INT(hv_event_parse("\x91\x01", 2, &ev, err, sizeof err), HIVENT_ERR_PAYLOAD);
    CHECK_INT(hv_event_parse(NULL, 0, &ev, err, sizeof err), HIVENT_ERR_PAYLOAD);
    hv_buf_free(&b);

    /* meta.cid of the wrong type is rejected. */
    hv_buf_t c = {0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c, hv_buf_msgpack_write);
    msgpack_pack_map(&pk, 3);
    pk_str(&pk, "name");
    pk_str(&pk, "a");
    pk_str(&pk, "payload");
    msgpack_pack_map(&pk, 0);
    pk_str(&pk, "meta");
    msgpack_pack_map(&pk, 2);
    pk_str(&pk, "version");
    msgpack_pack_int(&pk, 1);
    pk_str(&pk, "cid");
    msgpack_pack_int(&pk, 1);
    CHECK_INT(hv_event_parse(c.data, c.len, &ev, err, sizeof err), HIVENT_ERR_PAYLOAD);
    CHECK_CONTAINS(err, "meta.cid");
    hv_buf_free(&c);
}

static void event_pack_parse_roundtrip(void)
{
    static const unsigned char payload[] = {0x82, 0xa1, 'a', 0xcd, 0x12, 0x34, 0xa1, 'b', 0x90};
    hivent_event_t *ev;
    char err[256];
    CHECK_INT(hv_event_new("x:y", payload, sizeof payload, 7, NULL, "key-\xc3\xbc", "prod",
                           &ev, err, sizeof err), HIVENT_OK);
    CHECK_INT(hv_event_complete(ev), 0);
    CHECK(hivent_event_uuid(ev) && strlen(hivent_event_uuid(ev)) == 36);
    CHECK(hivent_event_cid(ev) && strlen(hivent_event_cid(ev)) == 36);
    CHECK(hivent_event_created_at(ev) != NULL);
    size_t size;
    const void *packed = hivent_event_msgpack(ev, &size);
    CHECK_REQUIRE(packed != NULL);
    CHECK_INT(hv_mp_validate(packed, size), 0);
    hivent_event_t *back;
    CHECK_MSG(hv_event_parse(packed, size, &back, err, sizeof err) == HIVENT_OK, "%s", err);
    CHECK_REQUIRE(back != NULL);
    CHECK_STR(hivent_event_name(back), "x:y");
    CHECK_INT(hivent_event_version(back), 7);
    CHECK_STR(hivent_event_key(back), "key-\xc3\xbc");
    CHECK_STR(hivent_event_producer(back), "prod");
    CHECK_STR(hivent_event_uuid(back), hivent_event_uuid(ev));
    CHECK_STR(hivent_event_cid(back), hivent_event_cid(ev));
    CHECK_STR(hivent_event_created_at(back), hivent_event_created_at(ev));
    size_t ps;
    const void *pp = hivent_event_payload(back, &ps);
    CHECK_INT(ps, sizeof payload);
    CHECK(memcmp(pp, payload, ps) == 0);

    char *json = hivent_event_to_json(back);
    CHECK_CONTAINS(json, "\"name\":\"x:y\"");
    CHECK_CONTAINS(json, "\"version\":7");
    CHECK_CONTAINS(json, "\"a\":4660");
    hivent_free(json);

    hivent_event_t *dup = hivent_event_dup(back);
    CHECK_STR(hivent_event_uuid(dup), hivent_event_uuid(back));
    CHECK(hivent_event_name(dup) != hivent_event_name(back));
    size_t ds;
    const void *dp = hivent_event_msgpack(dup, &ds);
    CHECK_INT(ds, size);
    CHECK(dp && memcmp(dp, packed, size) == 0);
    hivent_event_destroy(dup);
    hivent_event_destroy(back);
    hivent_event_destroy(ev);
}

static void uuid_and_timestamp_format(void)
{
    char seen[200][37];
    for (int i = 0; i < 200; i++) {
        hv_uuid4(seen[i]);
        const char *u = seen[i];
        CHECK_INT(strlen(u), 36);
        CHECK(u[8] == '-' && u[13] == '-' && u[18] == '-' && u[23] == '-');
        CHECK(u[14] == '4');
        CHECK(strchr("89ab", u[19]) != NULL);
        for (int j = 0; j < i; j++)
            CHECK(strcmp(seen[j], u) != 0);
    }
    char when[32];
    hv_now_iso8601(when);
    /* 2026-12-04T15:21:26.123456Z */
    CHECK_INT(strlen(when), 27);
    CHECK(when[4] == '-' && when[7] == '-' && when[10] == 'T' && when[13] == ':' &&
          when[16] == ':' && when[19] == '.' && when[26] == 'Z');
    for (int i = 0; i < 26; i++)
        if (i != 4 && i != 7 && i != 10 && i != 13 && i != 16 && i != 19)
            CHECK(isdigit((unsigned char)when[i]));
}

static void utf8_validator_cases(void)
{
    CHECK_INT(hv_utf8_valid("", 0), 1);
    CHECK_INT(hv_utf8_valid("plain", 5), 1);
    CHECK_INT(hv_utf8_valid("\xf4\x8f\xbf\xbf", 4), 1);   /* U+10FFFF */
    CHECK_INT(hv_utf8_valid("\xef\xbf\xbf", 3), 1);       /* U+FFFF */
    CHECK_INT(hv_utf8_valid("\xe0\x80\x80", 3), 0);       /* overlong */
    CHECK_INT(hv_utf8_valid("\xf0\x80\x80\x80", 4), 0);   /* overlong */
    CHECK_INT(hv_utf8_valid("\xc2", 1), 0);
    CHECK_INT(hv_utf8_valid("\xc2\x41", 2), 0);
    CHECK_INT(hv_utf8_valid("\xff", 1), 0);
    /* The length bounds the check even when the bytes go on. */
    CHECK_INT(hv_utf8_valid("\xc3\xa9", 1), 0);
}

static void getters_accept_null(void)
{
    size_t size = 99;
    CHECK(hivent_event_name(NULL) == NULL);
    CHECK(hivent_event_payload(NULL, &size) == NULL);
    CHECK_INT(size, 0);
    CHECK_INT(hivent_event_version(NULL), 0);
    CHECK(hivent_event_cid(NULL) == NULL);
    CHECK(hivent_event_key(NULL) == NULL);
    CHECK(hivent_event_producer(NULL) == NULL);
    CHECK(hivent_event_uuid(NULL) == NULL);
    CHECK(hivent_event_created_at(NULL) == NULL);
    CHECK(hivent_event_queue(NULL) == NULL);
    CHECK_INT(hivent_event_partition(NULL), -1);
    size = 99;
    CHECK(hivent_event_msgpack(NULL, &size) == NULL);
    CHECK_INT(size, 0);
    CHECK(hivent_event_to_json(NULL) == NULL);
    CHECK(hivent_event_dup(NULL) == NULL);
    hivent_event_destroy(NULL);
}

int main(void)
{
    RUN_TEST(event_new_valid);
    RUN_TEST(event_new_rejects_bad_names);
    RUN_TEST(event_new_rejects_bad_values);
    RUN_TEST(event_parse_valid);
    RUN_TEST(event_parse_rejects_invalid);
    RUN_TEST(event_pack_parse_roundtrip);
    RUN_TEST(uuid_and_timestamp_format);
    RUN_TEST(utf8_validator_cases);
    RUN_TEST(getters_accept_null);
    return check_summary();
}
