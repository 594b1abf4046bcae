/* wss: certificate chain and host name verification against a fault
 * server using certificates that this test generates with openssl. */
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "harness.h"

static char dir[256];
static recorder_t rec;

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[2400];
    snprintf(full, sizeof full, "cd %s && (%s) >/dev/null 2>&1", dir, cmd);
    int rc = system(full);
    if (rc != 0)
        fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
    return rc;
}

/* Creates ca.pem (trusted), other-ca.pem (untrusted) and server
 * certificates good.pem, wronghost.pem, expired.pem, untrusted.pem. */
static int make_certificates(void)
{
    const char *req = "openssl req -newkey rsa:2048 -nodes -subj /CN=%s -keyout %s.key "
                      "-out %s.csr";
    int rc = 0;
    rc |= run("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=Hivent Test CA' "
              "-keyout ca.key -out ca.pem");
    rc |= run("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=Other CA' "
              "-keyout other-ca.key -out other-ca.pem");
    rc |= run("printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > local.ext");
    rc |= run("printf 'subjectAltName=DNS:other.test\\n' > other.ext");
    const char *names[] = {"good", "wronghost", "expired", "untrusted"};
    for (int i = 0; i < 4; i++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, req, "localhost", names[i], names[i]);
        rc |= run("%s", cmd);
    }
    const char *sign = "openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key "
                       "-CAcreateserial -days %d -extfile %s.ext -out %s.pem";
    char cmd[512];
    snprintf(cmd, sizeof cmd, sign, "good", "ca", "ca", 2, "local", "good");
    rc |= run("%s", cmd);
    snprintf(cmd, sizeof cmd, sign, "wronghost", "ca", "ca", 2, "other", "wronghost");
    rc |= run("%s", cmd);
    /* notAfter one day before notBefore: expired from the start. */
    snprintf(cmd, sizeof cmd, sign, "expired", "ca", "ca", -1, "local", "expired");
    rc |= run("%s", cmd);
    snprintf(cmd, sizeof cmd, sign, "untrusted", "other-ca", "other-ca", 2, "local",
             "untrusted");
    rc |= run("%s", cmd);
    return rc;
}

static int start_with(fault_server_t *fs, const char *name)
{
    char cert[300], key[300];
    snprintf(cert, sizeof cert, "%s/%s.pem", dir, name);
    snprintf(key, sizeof key, "%s/%s.key", dir, name);
    return fs_start(fs, cert, key);
}

static hivent_client_t *tls_client(int port, const char *host, int verify, int use_ca)
{
    hivent_conf_t *conf = test_conf(port);
    conf_put(conf, "server.host", host);
    conf_put(conf, "server.secure", "true");
    conf_put(conf, "max_reconnect_tries", "0");
    if (!verify)
        conf_put(conf, "tls.verify", "false");
    if (use_ca) {
        char ca[300];
        snprintf(ca, sizeof ca, "%s/ca.pem", dir);
        conf_put(conf, "tls.ca_file", ca);
    }
    rec_init(&rec);
    rec_attach(&rec, conf);
    char err[512] = "";
    hivent_client_t *c = hivent_client_new(conf, err, sizeof err);
    CHECK_MSG(c != NULL, "%s", err);
    if (!c)
        hivent_conf_destroy(conf);
    return c;
}

static void tls_verified_connection(void)
{
    fault_server_t fs;
    CHECK_REQUIRE(start_with(&fs, "good") == 0);
    const char *hosts[] = {"localhost", "127.0.0.1"};
    for (int i = 0; i < 2; i++) {
        hivent_client_t *c = tls_client(fs.port, hosts[i], 1, 1);
        CHECK_REQUIRE(c != NULL);
        CHECK_MSG(POLL_UNTIL(c, hivent_client_state(c) == HIVENT_STATE_CONNECTED, 5000),
                  "%s: %s", hosts[i], rec.error_count ? rec.error_text[0] : "no error");
        char err[512] = "";
        CHECK_MSG(hivent_emit(c, "secure", NULL, 0, 1, NULL, NULL, 5000, NULL, err,
                              sizeof err) == HIVENT_OK, "%s", err);
        CHECK(!rec_logged(&rec, "tls.verify is false"));
        hivent_client_destroy(c);
    }
    /* SNI carries the host name. */
    json_t *st = fs_state(&fs);
    CHECK_STR(json_string_value(json_array_get(json_object_get(st, "sni"), 0)), "localhost");
    json_decref(st);
    fs_stop(&fs);
}

static void tls_rejects_bad_certificates(void)
{
    struct {
        const char *cert, *label, *host;
        int use_ca;
        const char *reason;
    } cases[] = {
        {"untrusted", "unknown CA", "localhost", 1, "unable to get local issuer certificate"},
        {"good", "CA not configured", "localhost", 0, "unable to get local issuer certificate"},
        {"wronghost", "wrong host name", "localhost", 1, "hostname mismatch"},
        {"expired", "expired certificate", "localhost", 1, "certificate has expired"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fault_server_t fs;
        CHECK_REQUIRE(start_with(&fs, cases[i].cert) == 0);
        hivent_client_t *c = tls_client(fs.port, cases[i].host, 1, cases[i].use_ca);
        CHECK_REQUIRE(c != NULL);
        CHECK_MSG(POLL_UNTIL(c, rec.error_count > 0, 8000), "%s: no error", cases[i].label);
        int failed = rec_find_state(&rec, HIVENT_STATE_FAILED, 0);
        CHECK_MSG(failed >= 0 && rec.state_reasons[failed] == HIVENT_ERR_TLS,
                  "%s: reason %s (%s)", cases[i].label,
                  failed >= 0 ? hivent_err_name(rec.state_reasons[failed]) : "none",
                  rec.error_text[0]);
        CHECK_MSG(strstr(rec.error_text[0], cases[i].reason) != NULL,
                  "%s: message \"%s\" lacks \"%s\"", cases[i].label, rec.error_text[0],
                  cases[i].reason);
        json_t *st = fs_state(&fs);
        CHECK_MSG(json_array_size(json_object_get(st, "frames")) == 0,
                  "%s: frames were exchanged", cases[i].label);
        json_decref(st);
        hivent_client_destroy(c);
        fs_stop(&fs);
    }
}

static void tls_verify_off_connects_with_warning(void)
{
    fault_server_t fs;
    CHECK_REQUIRE(start_with(&fs, "untrusted") == 0);
    hivent_client_t *c = tls_client(fs.port, "localhost", 0, 0);
    CHECK_REQUIRE(c != NULL);
    CHECK(POLL_UNTIL(c, hivent_client_state(c) == HIVENT_STATE_CONNECTED, 5000));
    CHECK(rec_logged(&rec, "tls.verify is false"));
    char err[512] = "";
    CHECK_INT(hivent_emit(c, "insecure", NULL, 0, 1, NULL, NULL, 5000, NULL, err, sizeof err),
              HIVENT_OK);
    hivent_client_destroy(c);
    fs_stop(&fs);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    snprintf(dir, sizeof dir, "/tmp/hivent-tls-XXXXXX");
    if (!mkdtemp(dir) || make_certificates() != 0) {
        fprintf(stderr, "could not create test certificates with openssl in %s\n", dir);
        return 1;
    }
    RUN_TEST(tls_verified_connection);
    RUN_TEST(tls_rejects_bad_certificates);
    RUN_TEST(tls_verify_off_connects_with_warning);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
