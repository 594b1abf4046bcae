#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

volatile int stop_requested;

int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_requested)
        ;
}

void conf_put(hivent_conf_t *conf, const char *key, const char *value)
{
    char err[256];
    if (hivent_conf_set(conf, key, value, err, sizeof err) != HIVENT_OK) {
        fprintf(stderr, "configuration %s=%s rejected: %s\n", key, value, err);
        exit(2);
    }
}

hivent_conf_t *fault_conf(int port, int heartbeat_ms)
{
    hivent_conf_t *conf = hivent_conf_new();
    if (!conf) {
        fprintf(stderr, "hivent_conf_new failed: out of memory\n");
        exit(2);
    }
    char text[32];
    snprintf(text, sizeof text, "%d", port);
    conf_put(conf, "server.port", text);
    snprintf(text, sizeof text, "%d", heartbeat_ms);
    conf_put(conf, "heartbeat_interval", text);
    conf_put(conf, "client_id", "faults");
    conf_put(conf, "max_reconnect_tries", "-1");
    conf_put(conf, "reconnect_backoff_time", "100");
    conf_put(conf, "reconnect_backoff_max", "1000");
    conf_put(conf, "connect_timeout", "2000");
    conf_put(conf, "log_level", "warning");
    return conf;
}

size_t pack_payload(unsigned char *buf, size_t cap, uint32_t seq, size_t pad)
{
    /* fixmap(2), fixstr "seq", uint32, fixstr "pad", str32 */
    size_t need = 1 + 4 + 5 + 4 + 5 + pad;
    if (cap < need)
        return 0;
    unsigned char *p = buf;
    *p++ = 0x82;
    *p++ = 0xa3;
    memcpy(p, "seq", 3);
    p += 3;
    *p++ = 0xce;
    *p++ = (unsigned char)(seq >> 24);
    *p++ = (unsigned char)(seq >> 16);
    *p++ = (unsigned char)(seq >> 8);
    *p++ = (unsigned char)seq;
    *p++ = 0xa3;
    memcpy(p, "pad", 3);
    p += 3;
    *p++ = 0xdb;
    *p++ = (unsigned char)(pad >> 24);
    *p++ = (unsigned char)(pad >> 16);
    *p++ = (unsigned char)(pad >> 8);
    *p++ = (unsigned char)pad;
    memset(p, 'x', pad);
    return need;
}

int open_out(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
        exit(2);
    }
    return fd;
}

void out_line(int fd, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    const char *p = line;
    while (n > 0) {
        ssize_t w = write(fd, p, (size_t)n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (int)w;
    }
}

long opt_long(int argc, char **argv, const char *name, long def)
{
    const char *s = opt_str(argc, argv, name, NULL);
    if (!s)
        return def;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s) {
        fprintf(stderr, "option %s: invalid integer '%s'\n", name, s);
        exit(2);
    }
    return v;
}

const char *opt_str(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return def;
}

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

void install_stop_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}
