/* JSON <-> MessagePack conversion, checked on real GitHub webhook payloads. */
#include <jansson.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "hivent/hivent.h"

/* Converts @json to MessagePack and back; returns the JSON text or NULL. */
static char *roundtrip(const char *json, size_t len, char *err, size_t err_size)
{
    void *mp = NULL;
    size_t mp_size = 0;
    if (hivent_json_to_msgpack(json, len, &mp, &mp_size, err, err_size) != HIVENT_OK)
        return NULL;
    char *back = hivent_msgpack_to_json(mp, mp_size, err, err_size);
    hivent_free(mp);
    return back;
}

/* Checks that the JSON text @json survives a round trip unchanged in value. */
static void check_roundtrip_equal(const char *json, const char *label)
{
    char err[256] = "";
    char *back = roundtrip(json, strlen(json), err, sizeof err);
    CHECK_MSG(back != NULL, "%s: %s", label, err);
    if (!back)
        return;
    json_t *a = json_loads(json, JSON_DECODE_ANY, NULL);
    json_t *b = json_loads(back, JSON_DECODE_ANY, NULL);
    CHECK_MSG(a && b && json_equal(a, b), "%s: %s became %s", label, json, back);
    json_decref(a);
    json_decref(b);
    hivent_free(back);
}

static void json_scalars_and_nesting(void)
{
    check_roundtrip_equal("{\"max\":9223372036854775807,\"min\":-9223372036854775808}",
                          "64-bit integers");
    check_roundtrip_equal("{\"f\":1.5,\"g\":-2.5e-300,\"h\":1e300,\"z\":0.0}", "floats");
    check_roundtrip_equal("{\"t\":true,\"f\":false,\"n\":null}", "literals");
    check_roundtrip_equal("{\"s\":\"caf\\u00e9 \\ud83d\\ude00 \\u00fc\",\"e\":\"\"}", "unicode");
    check_roundtrip_equal("{\"a\":[1,[2,[3,{\"b\":[]}]]],\"o\":{}}", "nested");
    check_roundtrip_equal("[1,\"two\",3.0]", "top-level array");

    /* The exact integer survives, not a rounded double. */
    char err[256];
    char *back = roundtrip("{\"id\":9007199254740993}", 23, err, sizeof err);
    CHECK_STR(back, "{\"id\":9007199254740993}");
    hivent_free(back);
}

static void json_depth_limit(void)
{
    char buf[400];
    size_t o = 0;
    for (int i = 0; i < 64; i++)
        buf[o++] = '[';
    buf[o++] = '1';
    for (int i = 0; i < 64; i++)
        buf[o++] = ']';
    buf[o] = 0;
    check_roundtrip_equal(buf, "64 levels");
    /* One more level is rejected with a message. */
    memmove(buf + 1, buf, o + 1);
    buf[0] = '[';
    strcat(buf, "]");
    void *mp = NULL;
    size_t size = 0;
    char err[256] = "";
    CHECK_INT(hivent_json_to_msgpack(buf, strlen(buf), &mp, &size, err, sizeof err),
              HIVENT_ERR_PAYLOAD);
    CHECK_CONTAINS(err, "64");
    CHECK(mp == NULL);
}

static void json_rejects_invalid(void)
{
    const char *cases[] = {"", "{", "{\"a\":}", "[1,]", "\"\xff\"", "{\"a\":1} x", "nul"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        void *mp = NULL;
        size_t size = 0;
        char err[256] = "";
        hivent_err_t rc = hivent_json_to_msgpack(cases[i], strlen(cases[i]), &mp, &size, err,
                                                 sizeof err);
        CHECK_MSG(rc == HIVENT_ERR_PAYLOAD, "\"%s\" accepted", cases[i]);
        CHECK_MSG(err[0] != 0, "\"%s\" left no message", cases[i]);
    }
    char err[256] = "";
    void *mp;
    size_t size;
    CHECK_INT(hivent_json_to_msgpack("{\"a\":}", 6, &mp, &size, err, sizeof err),
              HIVENT_ERR_PAYLOAD);
    CHECK_CONTAINS(err, "line 1");
    CHECK_INT(hivent_json_to_msgpack(NULL, 0, &mp, &size, err, sizeof err),
              HIVENT_ERR_INVALID_ARG);
    CHECK_INT(hivent_json_to_msgpack("{}", 2, NULL, &size, err, sizeof err),
              HIVENT_ERR_INVALID_ARG);
    CHECK_INT(hivent_json_to_msgpack("{}", 2, &mp, NULL, NULL, 0), HIVENT_ERR_INVALID_ARG);
}

static void msgpack_to_json_special_values(void)
{
    char err[256] = "";
    /* bin8 of 3 bytes becomes base64 text. */
    static const unsigned char bin[] = {0x81, 0xa1, 'b', 0xc4, 0x03, 'a', 'b', 'c'};
    char *s = hivent_msgpack_to_json(bin, sizeof bin, err, sizeof err);
    CHECK_STR(s, "{\"b\":\"YWJj\"}");
    hivent_free(s);
    /* An integer key becomes its JSON text. */
    static const unsigned char intkey[] = {0x81, 0x05, 0xa1, 'v'};
    s = hivent_msgpack_to_json(intkey, sizeof intkey, err, sizeof err);
    CHECK_STR(s, "{\"5\":\"v\"}");
    hivent_free(s);
    /* NaN (float64 7ff8...) has no JSON form and becomes null. */
    static const unsigned char nan[] = {0x91, 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0};
    s = hivent_msgpack_to_json(nan, sizeof nan, err, sizeof err);
    CHECK_STR(s, "[null]");
    hivent_free(s);
    /* A string with invalid UTF-8 is not emitted as broken JSON. */
    static const unsigned char badstr[] = {0x91, 0xa2, 0xff, 0xfe};
    s = hivent_msgpack_to_json(badstr, sizeof badstr, err, sizeof err);
    CHECK(s != NULL);
    if (s) {
        json_t *j = json_loads(s, JSON_DECODE_ANY, NULL);
        CHECK(j != NULL);
        json_decref(j);
    }
    hivent_free(s);
    /* Malformed input returns NULL with a message. */
    static const unsigned char truncated[] = {0x82, 0xa1, 'a'};
    err[0] = 0;
    CHECK(hivent_msgpack_to_json(truncated, sizeof truncated, err, sizeof err) == NULL);
    CHECK(err[0] != 0);
    CHECK(hivent_msgpack_to_json(NULL, 0, err, sizeof err) == NULL);
    CHECK(hivent_msgpack_to_json(bin, 0, NULL, 0) == NULL);
}

static void msgpack_to_json_nested_map_keys_bounded(void)
{
    /* Map keys that are maps, 40 levels deep: each level escapes the key
     * text of the level inside it again, so unbounded the text would
     * double per level.  Found by fuzz_json_frame. */
    unsigned char buf[128];
    size_t n = 0;
    for (int i = 0; i < 40; i++)
        buf[n++] = 0x81;
    buf[n++] = 0xa1;
    buf[n++] = 'a';
    for (int i = 0; i < 40; i++)
        buf[n++] = 0xc0;
    char err[256] = "";
    int64_t t0 = (int64_t)clock();
    char *s = hivent_msgpack_to_json(buf, n, err, sizeof err);
    double secs = (double)((int64_t)clock() - t0) / CLOCKS_PER_SEC;
    CHECK(s == NULL);
    CHECK(err[0] != 0);
    CHECK_MSG(secs < 1.0, "conversion took %.2f s", secs);
    hivent_free(s);
    /* Two levels stay convertible. */
    static const unsigned char two[] = {0x81, 0x81, 0xa1, 'a', 0xc0, 0xc0};
    s = hivent_msgpack_to_json(two, sizeof two, err, sizeof err);
    CHECK_STR(s, "{\"{\\\"a\\\":null}\":null}");
    hivent_free(s);
}

/* Returns the path of the GitHub webhook payload file. */
static const char *webhook_index_path(char *buf, size_t size)
{
    const char *dir = getenv("HIVENT_TEST_DATA");
    if (dir) {
        snprintf(buf, size, "%s/github-webhooks/index.json", dir);
        if (access(buf, R_OK) == 0)
            return buf;
    }
    snprintf(buf, size, "/work/shared/data/github-webhooks/index.json");
    return access(buf, R_OK) == 0 ? buf : NULL;
}

static void json_github_webhooks_roundtrip(void)
{
    char path[1024];
    CHECK_REQUIRE(webhook_index_path(path, sizeof path) != NULL);
    json_error_t jerr;
    json_t *index = json_load_file(path, 0, &jerr);
    CHECK_REQUIRE(index != NULL && json_is_array(index));
    size_t i, total = 0;
    json_t *entry;
    json_array_foreach(index, i, entry) {
        const char *name = json_string_value(json_object_get(entry, "name"));
        json_t *examples = json_object_get(entry, "examples");
        size_t k;
        json_t *payload;
        json_array_foreach(examples, k, payload) {
            char *text = json_dumps(payload, JSON_COMPACT);
            char err[256] = "";
            void *mp = NULL;
            size_t mp_size = 0;
            hivent_err_t rc = hivent_json_to_msgpack(text, strlen(text), &mp, &mp_size, err,
                                                     sizeof err);
            CHECK_MSG(rc == HIVENT_OK, "%s example %zu: %s", name, k, err);
            char *back = rc == HIVENT_OK ? hivent_msgpack_to_json(mp, mp_size, err, sizeof err)
                                         : NULL;
            json_t *again = back ? json_loads(back, 0, NULL) : NULL;
            CHECK_MSG(again && json_equal(payload, again), "%s example %zu changed", name, k);
            json_decref(again);
            hivent_free(back);
            hivent_free(mp);
            free(text);
            total++;
        }
    }
    json_decref(index);
    fprintf(stderr, "    %zu webhook payloads converted both ways\n", total);
    CHECK_INT(total, 329);
}

int main(void)
{
    RUN_TEST(json_scalars_and_nesting);
    RUN_TEST(json_depth_limit);
    RUN_TEST(json_rejects_invalid);
    RUN_TEST(msgpack_to_json_special_values);
    RUN_TEST(msgpack_to_json_nested_map_keys_bounded);
    RUN_TEST(json_github_webhooks_roundtrip);
    return check_summary();
}
