/* Memory transport: emits, consumers of a topic and of "*", partition
 * routing, inspection calls and dead-lettering. */
#include <msgpack.h>
#include <zlib.h>

#include "check.h"
#include "hivent/hivent.h"

static hivent_conf_t *memory_conf(void)
{
    hivent_conf_t *conf = hivent_conf_new();
    hivent_conf_set(conf, "server.host", "memory", NULL, 0);
    hivent_conf_set(conf, "client_id", "memory-test", NULL, 0);
    return conf;
}

/* Packs {"n": N, "who": WHO}. */
static size_t pack_payload(char *out, size_t size, int n, const char *who)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str(&pk, 1);
    msgpack_pack_str_body(&pk, "n", 1);
    msgpack_pack_int(&pk, n);
    msgpack_pack_str(&pk, 3);
    msgpack_pack_str_body(&pk, "who", 3);
    msgpack_pack_str(&pk, strlen(who));
    msgpack_pack_str_body(&pk, who, strlen(who));
    size_t len = sb.size < size ? sb.size : 0;
    memcpy(out, sb.data, len);
    msgpack_sbuffer_destroy(&sb);
    return len;
}

static void memory_emit_sync_and_inspect(void)
{
    hivent_memory_clear();
    char err[256] = "";
    hivent_client_t *c = hivent_client_new(memory_conf(), err, sizeof err);
    CHECK_REQUIRE(c != NULL);
    CHECK_INT(hivent_client_state(c), HIVENT_STATE_CONNECTED);
    char payload[64];
    size_t len = pack_payload(payload, sizeof payload, 5, "ann");
    hivent_event_t *pub = NULL;
    CHECK_INT(hivent_emit(c, "user:created", payload, len, 2, "cid-9", "k1", 1000, &pub, err,
                          sizeof err), HIVENT_OK);
    CHECK_REQUIRE(pub != NULL);
    CHECK_STR(hivent_event_name(pub), "user:created");
    CHECK_STR(hivent_event_cid(pub), "cid-9");
    CHECK_STR(hivent_event_producer(pub), "memory-test");
    CHECK(hivent_event_uuid(pub) && strlen(hivent_event_uuid(pub)) == 36);
    CHECK(hivent_event_created_at(pub) != NULL);
    CHECK_INT(hivent_memory_count(), 1);

    hivent_event_t *last = hivent_memory_last();
    CHECK_STR(hivent_event_uuid(last), hivent_event_uuid(pub));
    hivent_event_destroy(last);
    hivent_event_t *first = hivent_memory_at(0);
    CHECK(first != NULL);
    hivent_event_destroy(first);
    CHECK(hivent_memory_at(1) == NULL);

    /* includes: name, payload subset and meta subset. */
    static const unsigned char sub_ok[] = {0x81, 0xa3, 'w', 'h', 'o', 0xa3, 'a', 'n', 'n'};
    static const unsigned char sub_bad[] = {0x81, 0xa3, 'w', 'h', 'o', 0xa3, 'b', 'o', 'b'};
    static const unsigned char sub_int8[] = {0x81, 0xa1, 'n', 0xd0, 0x05}; /* 5 as int8 */
    static const unsigned char meta_ok[] = {0x82, 0xa7, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x02,
                                            0xa3, 'k', 'e', 'y', 0xa2, 'k', '1'};
    static const unsigned char meta_bad[] = {0x81, 0xa7, 'v', 'e', 'r', 's', 'i', 'o', 'n',
                                             0x03};
    CHECK_INT(hivent_memory_includes("user:created", NULL, 0, NULL, 0), 1);
    CHECK_INT(hivent_memory_includes("user:deleted", NULL, 0, NULL, 0), 0);
    CHECK_INT(hivent_memory_includes(NULL, sub_ok, sizeof sub_ok, NULL, 0), 1);
    CHECK_INT(hivent_memory_includes(NULL, sub_bad, sizeof sub_bad, NULL, 0), 0);
    CHECK_INT(hivent_memory_includes(NULL, sub_int8, sizeof sub_int8, NULL, 0), 1);
    /* uint64 max never equals the largest signed value. */
    static const unsigned char sub_umax[] = {0x81, 0xa1, 'n', 0xcf, 0xff, 0xff, 0xff, 0xff,
                                             0xff, 0xff, 0xff, 0xff};
    CHECK_INT(hivent_memory_includes(NULL, sub_umax, sizeof sub_umax, NULL, 0), 0);
    CHECK_INT(hivent_memory_includes("user:created", sub_ok, sizeof sub_ok, meta_ok,
                                     sizeof meta_ok), 1);
    CHECK_INT(hivent_memory_includes(NULL, NULL, 0, meta_bad, sizeof meta_bad), 0);
    hivent_event_destroy(pub);

    hivent_memory_clear();
    CHECK_INT(hivent_memory_count(), 0);
    CHECK(hivent_memory_last() == NULL);
    CHECK_INT(hivent_memory_includes(NULL, NULL, 0, NULL, 0), 0);
    hivent_client_destroy(c);
}

static int delivered;
static void *delivered_opaque;
static hivent_err_t delivered_err;

static void on_delivery(hivent_client_t *c, hivent_err_t err, const char *errstr,
                        const hivent_event_t *ev, void *msg_opaque, void *opaque)
{
    delivered++;
    delivered_err = err;
    delivered_opaque = msg_opaque;
    CHECK(ev != NULL && hivent_event_uuid(ev) != NULL);
    CHECK(opaque == &delivered);
}

static void memory_emit_async_delivery(void)
{
    hivent_memory_clear();
    hivent_conf_t *conf = memory_conf();
    hivent_conf_set_delivery_cb(conf, on_delivery);
    hivent_conf_set_opaque(conf, &delivered);
    char err[256];
    hivent_client_t *c = hivent_client_new(conf, err, sizeof err);
    CHECK_REQUIRE(c != NULL);
    delivered = 0;
    int tag = 0;
    CHECK_INT(hivent_emit_async(c, "a", NULL, 0, 1, NULL, NULL, &tag, err, sizeof err),
              HIVENT_OK);
    /* The notice fd is readable while the delivery is pending. */
    CHECK(hivent_client_fd(c) >= 0);
    CHECK_INT(hivent_client_outstanding(c), 0);
    CHECK_INT(hivent_client_poll(c, 100), 1);
    CHECK_INT(delivered, 1);
    CHECK_INT(delivered_err, HIVENT_OK);
    CHECK(delivered_opaque == &tag);
    CHECK_INT(hivent_client_flush(c, 100), 0);
    CHECK_INT(hivent_client_poll(c, 0), 0);
    hivent_client_destroy(c);
}

static hivent_consumer_t *memory_consumer(const char *topic, const char *service, int parts,
                                          int version)
{
    hivent_conf_t *conf = memory_conf();
    if (version) {
        char v[16];
        snprintf(v, sizeof v, "%d", version);
        hivent_conf_set(conf, "consumer.version", v, NULL, 0);
    }
    char err[256] = "";
    hivent_consumer_t *c = hivent_consumer_new(conf, topic, service, parts, err, sizeof err);
    CHECK_MSG(c != NULL, "%s", err);
    return c;
}

/* Takes every pending event notice of @c; stores names and partitions. */
static int drain(hivent_consumer_t *c, int *partitions, char names[][32], int max)
{
    int n = 0;
    hivent_notice_t *notice;
    while ((notice = hivent_consumer_next(c, 0))) {
        if (hivent_notice_type(notice) == HIVENT_NOTICE_EVENT && n < max) {
            const hivent_event_t *ev = hivent_notice_event(notice);
            if (partitions)
                partitions[n] = hivent_event_partition(ev);
            if (names)
                snprintf(names[n], 32, "%s", hivent_event_name(ev));
            n++;
        }
        hivent_notice_destroy(notice);
    }
    return n;
}

static void memory_consumers_topic_and_star(void)
{
    hivent_memory_clear();
    hivent_consumer_t *orders = memory_consumer("order:paid", "billing", 1, 0);
    hivent_consumer_t *all = memory_consumer("*", "audit", 1, 0);
    hivent_consumer_t *v2 = memory_consumer("order:paid", "v2only", 1, 2);
    char err[256];
    hivent_client_t *c = hivent_client_new(memory_conf(), err, sizeof err);
    CHECK_REQUIRE(orders && all && v2 && c);
    CHECK_INT(hivent_emit(c, "order:paid", NULL, 0, 1, NULL, NULL, 100, NULL, err, sizeof err),
              HIVENT_OK);
    CHECK_INT(hivent_emit(c, "order:paid", NULL, 0, 2, NULL, NULL, 100, NULL, err, sizeof err),
              HIVENT_OK);
    CHECK_INT(hivent_emit(c, "user:created", NULL, 0, 1, NULL, NULL, 100, NULL, err,
                          sizeof err), HIVENT_OK);
    char names[8][32];
    CHECK_INT(drain(orders, NULL, names, 8), 2);
    CHECK_INT(drain(all, NULL, names, 8), 3);
    CHECK_STR(names[0], "order:paid");
    CHECK_STR(names[2], "user:created");
    CHECK_INT(drain(v2, NULL, names, 8), 1);
    hivent_client_destroy(c);
    hivent_consumer_destroy(orders);
    hivent_consumer_destroy(all);
    hivent_consumer_destroy(v2);
}

static void memory_partition_routing(void)
{
    hivent_memory_clear();
    hivent_consumer_t *a = memory_consumer("t", "svc", 4, 0);
    hivent_consumer_t *b = memory_consumer("t", "svc", 4, 0);
    char err[256];
    hivent_client_t *c = hivent_client_new(memory_conf(), err, sizeof err);
    CHECK_REQUIRE(a && b && c);
    const char *keys[] = {"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "alpha", "beta"};
    int expect[10];
    for (int i = 0; i < 10; i++) {
        expect[i] = (int)(crc32(0L, (const Bytef *)keys[i], (uInt)strlen(keys[i])) % 4);
        CHECK_INT(hivent_emit(c, "t", NULL, 0, 1, NULL, keys[i], 100, NULL, err, sizeof err),
                  HIVENT_OK);
    }
    int pa[16], pb[16];
    int na = drain(a, pa, NULL, 16);
    int nb = drain(b, pb, NULL, 16);
    /* Each event reaches exactly one member of the service. */
    CHECK_INT(na + nb, 10);
    /* The two members own disjoint partition sets. */
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++)
            CHECK(pa[i] != pb[j]);
    /* Every reported partition is crc32(key) mod 4. */
    int seen[4] = {0};
    for (int i = 0; i < 10; i++)
        seen[expect[i]]++;
    int got[4] = {0};
    for (int i = 0; i < na; i++)
        got[pa[i]]++;
    for (int i = 0; i < nb; i++)
        got[pb[i]]++;
    for (int p = 0; p < 4; p++)
        CHECK_INT(got[p], seen[p]);
    hivent_client_destroy(c);
    hivent_consumer_destroy(a);
    hivent_consumer_destroy(b);
}

static int processed, failed_once;

static int process(hivent_consumer_t *consumer, const hivent_event_t *ev, char *reason,
                   size_t reason_size, void *opaque)
{
    processed++;
    CHECK(hivent_event_queue(ev) != NULL);
    if (strcmp(hivent_event_name(ev), "bad") == 0) {
        snprintf(reason, reason_size, "cannot handle %s", hivent_event_name(ev));
        failed_once++;
        return 1;
    }
    return 0;
}

static void memory_consumer_poll_and_reject(void)
{
    hivent_memory_clear();
    hivent_conf_t *conf = memory_conf();
    hivent_conf_set_process_cb(conf, process);
    char err[256];
    hivent_consumer_t *cons = hivent_consumer_new(conf, "*", "worker", 2, err, sizeof err);
    hivent_client_t *c = hivent_client_new(memory_conf(), err, sizeof err);
    CHECK_REQUIRE(cons && c);
    processed = failed_once = 0;
    hivent_emit(c, "good", NULL, 0, 1, NULL, NULL, 100, NULL, err, sizeof err);
    hivent_emit(c, "bad", NULL, 0, 1, NULL, NULL, 100, NULL, err, sizeof err);
    CHECK_INT(hivent_consumer_poll(cons, 100), 2);
    CHECK_INT(processed, 2);
    CHECK_INT(failed_once, 1);
    CHECK_INT(hivent_consumer_state(cons), HIVENT_STATE_CONNECTED);
    CHECK_INT(hivent_consumer_close(cons, 100), HIVENT_OK);
    CHECK_INT(hivent_consumer_state(cons), HIVENT_STATE_CLOSED);
    /* A closed consumer receives nothing more. */
    hivent_emit(c, "good", NULL, 0, 1, NULL, NULL, 100, NULL, err, sizeof err);
    CHECK_INT(hivent_consumer_poll(cons, 0), 0);
    hivent_consumer_destroy(cons);
    hivent_client_destroy(c);
}

int main(void)
{
    RUN_TEST(memory_emit_sync_and_inspect);
    RUN_TEST(memory_emit_async_delivery);
    RUN_TEST(memory_consumers_topic_and_star);
    RUN_TEST(memory_partition_routing);
    RUN_TEST(memory_consumer_poll_and_reject);
    return check_summary();
}
