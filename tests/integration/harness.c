#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = calloc(1, 4096);
    size_t n = fread(buf, 1, 4095, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static int connect_local(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int fs_start(fault_server_t *fs, const char *cert, const char *key)
{
    memset(fs, 0, sizeof *fs);
    snprintf(fs->dir, sizeof fs->dir, "/tmp/hivent-fault-XXXXXX");
    if (!mkdtemp(fs->dir))
        return -1;
    char ready[300];
    snprintf(ready, sizeof ready, "%s/ready.json", fs->dir);
    const char *script = getenv("HIVENT_FAULT_SERVER");
    const char *python = getenv("HIVENT_TEST_PYTHON");
    if (!script) {
        fprintf(stderr, "HIVENT_FAULT_SERVER is not set\n");
        return -1;
    }
    fs->pid = fork();
    if (fs->pid == 0) {
        const char *argv[10] = {python ? python : "/usr/bin/python3", script, "--ready-file",
                                ready};
        int a = 4;
        if (cert) {
            argv[a++] = "--tls-cert";
            argv[a++] = cert;
            argv[a++] = "--tls-key";
            argv[a++] = key;
        }
        argv[a] = NULL;
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        char *text = read_file(ready);
        if (text) {
            json_t *j = json_loads(text, 0, NULL);
            free(text);
            fs->port = (int)json_integer_value(json_object_get(j, "port"));
            int control = (int)json_integer_value(json_object_get(j, "control"));
            json_decref(j);
            fs->control_fd = connect_local(control);
            return fs->control_fd >= 0 ? 0 : -1;
        }
        int status;
        if (waitpid(fs->pid, &status, WNOHANG) == fs->pid) {
            fprintf(stderr, "fault server exited with status %d\n", status);
            fs->pid = 0;
            return -1;
        }
        sleep_ms(50);
    }
    fprintf(stderr, "fault server did not write %s within 10 s\n", ready);
    return -1;
}

void fs_stop(fault_server_t *fs)
{
    if (fs->control_fd > 0)
        close(fs->control_fd);
    if (fs->pid > 0) {
        kill(fs->pid, SIGTERM);
        waitpid(fs->pid, NULL, 0);
    }
    char path[300];
    snprintf(path, sizeof path, "%s/ready.json", fs->dir);
    unlink(path);
    rmdir(fs->dir);
    fs->pid = 0;
}

json_t *fs_cmd(fault_server_t *fs, const char *json)
{
    size_t len = strlen(json);
    if (write(fs->control_fd, json, len) != (ssize_t)len || write(fs->control_fd, "\n", 1) != 1)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 >= cap)
            buf = realloc(buf, cap *= 2);
        ssize_t got = read(fs->control_fd, buf + n, cap - n - 1);
        if (got <= 0) {
            free(buf);
            return NULL;
        }
        n += (size_t)got;
        if (buf[n - 1] == '\n')
            break;
    }
    buf[n] = 0;
    json_error_t jerr;
    json_t *reply = json_loads(buf, 0, &jerr);
    if (!reply)
        fprintf(stderr, "fault server reply is not JSON: %s\n", jerr.text);
    free(buf);
    return reply;
}

int fs_do(fault_server_t *fs, const char *json)
{
    json_t *reply = fs_cmd(fs, json);
    int ok = reply && !json_object_get(reply, "error");
    if (!ok)
        fprintf(stderr, "fault server command %.200s failed: %s\n", json,
                reply ? json_string_value(json_object_get(reply, "error")) : "no reply");
    json_decref(reply);
    return ok ? 0 : -1;
}

json_t *fs_state(fault_server_t *fs)
{
    return fs_cmd(fs, "{\"cmd\":\"state\"}");
}

int fs_count_frames(fault_server_t *fs, const char *event)
{
    json_t *st = fs_state(fs);
    if (!st)
        return -1;
    size_t i;
    json_t *f;
    int n = 0;
    json_array_foreach(json_object_get(st, "frames"), i, f) {
        const char *e = json_string_value(json_object_get(f, "event"));
        n += e && strcmp(e, event) == 0;
    }
    json_decref(st);
    return n;
}

/* Recorder callbacks. */

static void note_after_destroy(recorder_t *r)
{
    if (r->destroyed)
        __atomic_add_fetch(&r->callbacks_after_destroy, 1, __ATOMIC_SEQ_CST);
}

static void on_state(void *handle, hivent_state_t state, int attempt, int next_ms,
                     hivent_err_t reason, const char *reason_str, void *opaque)
{
    recorder_t *r = opaque;
    note_after_destroy(r);
    pthread_mutex_lock(&r->lock);
    if (r->state_count < REC_MAX) {
        r->states[r->state_count] = state;
        r->attempts[r->state_count] = attempt;
        r->next_ms[r->state_count] = next_ms;
        r->state_reasons[r->state_count] = reason;
        r->state_count++;
    }
    pthread_mutex_unlock(&r->lock);
}

static void on_error(void *handle, hivent_err_t err, const char *errstr, void *opaque)
{
    recorder_t *r = opaque;
    note_after_destroy(r);
    pthread_mutex_lock(&r->lock);
    if (r->error_count < 64) {
        r->errors[r->error_count] = err;
        snprintf(r->error_text[r->error_count], sizeof r->error_text[0], "%s", errstr);
        r->error_count++;
    }
    pthread_mutex_unlock(&r->lock);
}

static void on_log(void *handle, int level, const char *facility, const char *message,
                   void *opaque)
{
    recorder_t *r = opaque;
    note_after_destroy(r);
    pthread_mutex_lock(&r->lock);
    int n = snprintf(r->logs + r->logs_len, sizeof r->logs - r->logs_len, "%d %s %s\n", level,
                     facility, message);
    if (n > 0 && r->logs_len + (size_t)n < sizeof r->logs)
        r->logs_len += (size_t)n;
    pthread_mutex_unlock(&r->lock);
    if (getenv("HIVENT_TEST_VERBOSE"))
        fprintf(stderr, "    log %d %s: %s\n", level, facility, message);
}

static void on_delivery(hivent_client_t *c, hivent_err_t err, const char *errstr,
                        const hivent_event_t *ev, void *msg_opaque, void *opaque)
{
    recorder_t *r = opaque;
    note_after_destroy(r);
    pthread_mutex_lock(&r->lock);
    if (err == HIVENT_OK)
        r->deliveries_ok++;
    else
        r->deliveries_failed++;
    if (r->delivery_count < REC_MAX) {
        r->delivery_errs[r->delivery_count] = err;
        r->delivery_ids[r->delivery_count] = (uintptr_t)msg_opaque;
        r->delivery_count++;
    }
    pthread_mutex_unlock(&r->lock);
}

void rec_init(recorder_t *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
}

void rec_attach(recorder_t *r, hivent_conf_t *conf)
{
    hivent_conf_set_state_cb(conf, on_state);
    hivent_conf_set_error_cb(conf, on_error);
    hivent_conf_set_log_cb(conf, on_log);
    hivent_conf_set_delivery_cb(conf, on_delivery);
    hivent_conf_set_opaque(conf, r);
}

int rec_logged(recorder_t *r, const char *needle)
{
    pthread_mutex_lock(&r->lock);
    int found = strstr(r->logs, needle) != NULL;
    pthread_mutex_unlock(&r->lock);
    return found;
}

int rec_find_state(recorder_t *r, int state, int from)
{
    pthread_mutex_lock(&r->lock);
    int found = -1;
    for (int i = from; i < r->state_count && found < 0; i++)
        if (r->states[i] == state)
            found = i;
    pthread_mutex_unlock(&r->lock);
    return found;
}

void conf_put(hivent_conf_t *conf, const char *key, const char *value)
{
    char err[256];
    if (hivent_conf_set(conf, key, value, err, sizeof err) != HIVENT_OK) {
        fprintf(stderr, "configuration failed: %s\n", err);
        abort();
    }
}

hivent_conf_t *test_conf(int port)
{
    hivent_conf_t *conf = hivent_conf_new();
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    conf_put(conf, "server.host", "127.0.0.1");
    conf_put(conf, "server.port", p);
    conf_put(conf, "client_id", "integration-test");
    conf_put(conf, "reconnect_backoff_time", "50");
    conf_put(conf, "reconnect_backoff_max", "400");
    conf_put(conf, "max_reconnect_tries", "-1");
    conf_put(conf, "heartbeat_interval", "0");
    conf_put(conf, "request_timeout", "5000");
    conf_put(conf, "connect_timeout", "3000");
    conf_put(conf, "flush_timeout", "2000");
    conf_put(conf, "log_level", "debug");
    return conf;
}

int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&sa, sizeof sa);
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    return ntohs(sa.sin_port);
}

size_t pack_index_payload(unsigned char *out, size_t size, int i, size_t pad)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str(&pk, 1);
    msgpack_pack_str_body(&pk, "i", 1);
    msgpack_pack_int(&pk, i);
    msgpack_pack_str(&pk, 3);
    msgpack_pack_str_body(&pk, "pad", 3);
    char *s = malloc(pad + 1);
    for (size_t k = 0; k < pad; k++)
        s[k] = (char)('a' + (k * 31 + (size_t)i) % 26);
    msgpack_pack_str(&pk, pad);
    msgpack_pack_str_body(&pk, s, pad);
    free(s);
    size_t n = sb.size <= size ? sb.size : 0;
    memcpy(out, sb.data, n);
    msgpack_sbuffer_destroy(&sb);
    return n;
}

/* hiventd. */

const char *hiventd_path(void)
{
    const char *p = getenv("HIVENTD");
    return p && access(p, X_OK) == 0 ? p : NULL;
}

int hiventd_start(hiventd_t *d, const char *data_dir, int port, const char *api_key)
{
    const char *bin = hiventd_path();
    if (!bin)
        return 1;
    memset(d, 0, sizeof *d);
    snprintf(d->data_dir, sizeof d->data_dir, "%s", data_dir);
    snprintf(d->ready_file, sizeof d->ready_file, "%s/ready", data_dir);
    unlink(d->ready_file);
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    d->pid = fork();
    if (d->pid == 0) {
        if (!getenv("HIVENT_TEST_VERBOSE")) {
            int null = open("/dev/null", O_WRONLY);
            dup2(null, 2);
        }
        const char *argv[16] = {bin, "--data-dir", data_dir, "--listen", listen,
                                "--ready-file", d->ready_file, "--heartbeat-interval", "1000",
                                "--admin-key", HIVENTD_TEST_ADMIN_KEY};
        int a = 11;
        if (api_key) {
            argv[a++] = "--api-key";
            argv[a++] = api_key;
        }
        argv[a] = NULL;
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        char *text = read_file(d->ready_file);
        if (text && strchr(text, '\n')) {
            d->port = atoi(text);
            free(text);
            return d->port > 0 ? 0 : -1;
        }
        free(text);
        int status;
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            fprintf(stderr, "hiventd exited with status %d\n", status);
            d->pid = 0;
            return -1;
        }
        sleep_ms(50);
    }
    fprintf(stderr, "hiventd did not write %s within 10 s\n", d->ready_file);
    return -1;
}

void hiventd_kill(hiventd_t *d, int sig)
{
    if (d->pid <= 0)
        return;
    kill(d->pid, sig);
    waitpid(d->pid, NULL, 0);
    d->pid = 0;
}

char *http_get(int port, const char *method, const char *path, const char *bearer)
{
    int fd = connect_local(port);
    if (fd < 0)
        return NULL;
    char req[1024];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Authorization: Bearer %s\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n", method, path, bearer ? bearer : "");
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 1 >= cap)
            buf = realloc(buf, cap *= 2);
        ssize_t got = read(fd, buf + len, cap - len - 1);
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    buf[len] = 0;
    return buf;
}
