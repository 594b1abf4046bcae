/*
 * hiventd memory per idle connection: opens N raw WebSocket connections to
 * /producer/websocket (RFC 6455 upgrade, then a MessagePack phx_join of
 * ingress:all), keeps them open, and reports the growth of hiventd's
 * resident set size (VmRSS in /proc/PID/status) divided by N.
 *
 *   hvbench_idle --port P --pid HIVENTD_PID [--connections N] [--no-join]
 *
 * The caller raises the open file limit (ulimit -n) of this program and of
 * hiventd above N.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "bench_util.h"

/* Reads until the end of the HTTP response head; returns 0 on 101. */
static int read_upgrade_response(int fd)
{
    char buf[2048];
    size_t len = 0;
    while (len < sizeof(buf) - 1) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "\r\n\r\n"))
            return strncmp(buf, "HTTP/1.1 101", 12) == 0 ? 0 : -1;
    }
    return -1;
}

/* Sends a masked binary frame holding the MessagePack map
 * {"topic": "ingress:all", "event": "phx_join", "payload": {}, "ref": 0}. */
static int send_join(int fd)
{
    static const unsigned char msg[] =
        "\x84"
        "\xa5topic\xabingress:all"
        "\xa5" "event\xa8phx_join"
        "\xa7payload\x80"
        "\xa3ref\x00";
    size_t len = sizeof(msg) - 1;
    unsigned char frame[128];
    const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
    frame[0] = 0x82;
    frame[1] = (unsigned char)(0x80 | len);
    memcpy(frame + 2, mask, 4);
    for (size_t i = 0; i < len; i++)
        frame[6 + i] = msg[i] ^ mask[i % 4];
    size_t total = 6 + len;
    return write(fd, frame, total) == (ssize_t)total ? 0 : -1;
}

/* Reads one server frame (the join reply) and checks it is binary. */
static int read_reply(int fd)
{
    unsigned char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf));
    return n >= 2 && (buf[0] & 0x0f) == 0x2 ? 0 : -1;
}

static int connect_and_request(const struct sockaddr_in *addr, int port, long i)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0) {
        close(fd);
        return -1;
    }
    char req[512];
    int len = snprintf(req, sizeof(req),
                       "GET /producer/websocket?vsn=1.0.0&client_id=idle-%ld HTTP/1.1\r\n"
                       "Host: 127.0.0.1:%d\r\n"
                       "Upgrade: websocket\r\n"
                       "Connection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n",
                       i, port);
    if (write(fd, req, (size_t)len) != len) {
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * Opens connections [first, first + count) in three passes (connect and
 * send every upgrade request, read every response and send every join,
 * read every join reply), so the server handles many sockets per wakeup.
 * Stores the open sockets in @fds and returns how many failed.
 */
static long open_batch(const struct sockaddr_in *addr, int port, long first, long count,
                       int join, int *fds)
{
    long failed = 0;
    for (long i = 0; i < count; i++)
        fds[i] = connect_and_request(addr, port, first + i);
    for (long i = 0; i < count; i++) {
        if (fds[i] >= 0 && (read_upgrade_response(fds[i]) < 0 || (join && send_join(fds[i]) < 0))) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
    for (long i = 0; join && i < count; i++) {
        if (fds[i] >= 0 && read_reply(fds[i]) < 0) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
    for (long i = 0; i < count; i++)
        failed += fds[i] < 0;
    return failed;
}

int main(int argc, char **argv)
{
    int port = (int)hvb_opt_long(argc, argv, "--port", 4000);
    int pid = (int)hvb_opt_long(argc, argv, "--pid", 0);
    long n = hvb_opt_long(argc, argv, "--connections", 10000);
    int join = !hvb_opt_flag(argc, argv, "--no-join");
    if (pid <= 0 || n < 1 || n > 100000) {
        fprintf(stderr, "usage: %s --port PORT --pid HIVENTD_PID [--connections N] "
                        "[--no-join]\n", argv[0]);
        return 2;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)n + 64) {
        fprintf(stderr, "open file limit %lu is below %ld connections; raise ulimit -n\n",
                (unsigned long)rl.rlim_cur, n);
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);

    int *fds = malloc((size_t)n * sizeof(*fds));
    for (long i = 0; fds && i < n; i++)
        fds[i] = -1;
    if (!fds)
        return 2;
    usleep(300000);
    long before = hvb_rss_kib(pid);
    uint64_t start = hvb_now_ns();
    long failed = 0;
    for (long first = 0; first < n && failed <= 100; first += 100) {
        long count = n - first < 100 ? n - first : 100;
        long batch_failed = open_batch(&addr, port, first, count, join, fds + first);
        if (batch_failed && failed == 0)
            fprintf(stderr, "connections from %ld on: %ld of %ld failed (%s)\n", first,
                    batch_failed, count, strerror(errno));
        failed += batch_failed;
    }
    long open_count = 0;
    for (long i = 0; i < n; i++)
        if (fds[i] >= 0)
            fds[open_count++] = fds[i];
    double open_secs = (double)(hvb_now_ns() - start) / 1e9;
    sleep(2);
    long after = hvb_rss_kib(pid);
    printf("RESULT connections=%ld open=%ld failed=%ld join=%d open_seconds=%.2f "
           "rss_before_kib=%ld rss_after_kib=%ld kib_per_connection=%.2f\n",
           n, open_count, failed, join, open_secs, before, after,
           open_count ? (double)(after - before) / (double)open_count : 0.0);
    for (long i = 0; i < open_count; i++)
        close(fds[i]);
    free(fds);
    return failed ? 1 : 0;
}
