/* hiventd: the Hivent server.  See docs/server.md. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hiventd.h"
#include "log.h"

static hvd_server_t *signal_server;

static void on_signal(int sig)
{
    (void)sig;
    if (signal_server) {
        signal_server->stopping = 1;
        if (signal_server->context)
            lws_cancel_service(signal_server->context);
    }
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* hiventd reloads nothing, so a SIGHUP (a closed terminal, a service
     * manager's reload) stops it cleanly instead of killing it. */
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Raises the open file limit to its hard limit so that many connections fit. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            hvd_warn("cannot raise the open file limit: %s", strerror(errno));
    }
}

static int write_ready_file(const char *path, int port)
{
    char tmp[4200];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int ok = fprintf(f, "%d\n", port) > 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) < 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Copies strerror(@err) with its first letter in lower case, so that it
 * reads as part of a sentence: "address already in use". */
static const char *error_text(int err, char *buf, size_t size)
{
    snprintf(buf, size, "%s", strerror(err));
    buf[0] = (char)tolower((unsigned char)buf[0]);
    return buf;
}

/*
 * Takes an exclusive flock() on DIR/hiventd.lock and keeps its descriptor
 * open for the life of the process, so a second hiventd on the same data
 * directory exits instead of sharing the SQLite file.  Two servers would
 * each keep their own in-memory queues and lose acknowledged events.  The
 * file contains the owner's PID for the error message.  The kernel
 * releases the lock when the process exits, even after a crash.
 */
static int lock_data_dir(const char *dir)
{
    char path[4200], why[128];
    if ((size_t)snprintf(path, sizeof(path), "%s/hiventd.lock", dir) >= sizeof(path)) {
        hvd_err("--data-dir %s: path too long", dir);
        return -1;
    }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        hvd_err("cannot create data directory %s: %s (--data-dir)", dir,
                error_text(errno, why, sizeof(why)));
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        hvd_err("cannot open lock file %s: %s (--data-dir)", path,
                error_text(errno, why, sizeof(why)));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int err = errno;
        if (err != EWOULDBLOCK) {
            hvd_err("cannot lock %s: %s (--data-dir)", path, error_text(err, why, sizeof(why)));
            close(fd);
            return -1;
        }
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\r\n")] = '\0';
        if (pid[0])
            hvd_err("data directory %s is in use by another hiventd (PID %s, which holds %s); "
                    "stop it or choose another --data-dir", dir, pid, path);
        else
            hvd_err("data directory %s is in use by another hiventd (a process holds %s); "
                    "stop it or choose another --data-dir", dir, path);
        close(fd);
        return -1;
    }
    char pid[32];
    int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)len, 0) != len)
        hvd_warn("cannot write the PID into %s: %s", path, error_text(errno, why, sizeof(why)));
    /* The descriptor stays open on purpose: closing it would drop the lock. */
    return 0;
}

/*
 * Binds a socket to the --listen address and closes it again, so that an
 * address in use or not on this host is reported by option and value
 * instead of by libwebsockets' own lines.  Like libwebsockets, it sets
 * SO_REUSEADDR, so a port left in TIME_WAIT passes.  Hosts that are not
 * numeric addresses (interface names) are left to libwebsockets.
 */
static int check_listen_address(const hvd_config_t *cfg)
{
    const char *host = cfg->listen_host;
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
    memset(&v4, 0, sizeof(v4));
    memset(&v6, 0, sizeof(v6));
    v4.sin_family = AF_INET;
    v4.sin_port = htons((uint16_t)cfg->listen_port);
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons((uint16_t)cfg->listen_port);
    struct sockaddr *addr;
    socklen_t addr_len;
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0 ||
        inet_pton(AF_INET, host, &v4.sin_addr) == 1) {
        addr = (struct sockaddr *)&v4;
        addr_len = sizeof(v4);
    } else if (strcmp(host, "::") == 0 || inet_pton(AF_INET6, host, &v6.sin6_addr) == 1) {
        addr = (struct sockaddr *)&v6;
        addr_len = sizeof(v6);
    } else {
        return 0;
    }
    char why[128];
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        hvd_err("cannot create a socket for --listen %s: %s", host,
                error_text(errno, why, sizeof(why)));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    int rc = bind(fd, addr, addr_len);
    int err = errno;
    close(fd);
    if (rc < 0) {
        int v6host = strchr(host, ':') != NULL;
        hvd_err("cannot listen on %s%s%s:%d: %s (--listen)", v6host ? "[" : "", host,
                v6host ? "]" : "", cfg->listen_port, error_text(err, why, sizeof(why)));
        return -1;
    }
    return 0;
}

/* Passphrase callback that supplies none: an encrypted key is reported as
 * unreadable instead of prompting on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return 0;
}

static FILE *open_pem(const char *option, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        char why[128];
        hvd_err("%s %s: %s", option, path, error_text(errno, why, sizeof(why)));
    }
    return f;
}

/*
 * Reads --tls-cert and --tls-key with OpenSSL and checks that the key
 * belongs to the certificate, so that each failure names its option.
 * libwebsockets only logs that it could not create the vhost.
 */
static int check_tls_files(const hvd_config_t *cfg)
{
    if (!cfg->tls_cert)
        return 0;
    FILE *f = open_pem("--tls-cert", cfg->tls_cert);
    if (!f)
        return -1;
    X509 *cert = PEM_read_X509(f, NULL, no_passphrase, NULL);
    fclose(f);
    if (!cert) {
        hvd_err("--tls-cert %s: no PEM certificate found", cfg->tls_cert);
        ERR_clear_error();
        return -1;
    }
    f = open_pem("--tls-key", cfg->tls_key);
    if (!f) {
        X509_free(cert);
        return -1;
    }
    EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
    fclose(f);
    int rc = 0;
    if (!key) {
        hvd_err("--tls-key %s: no unencrypted PEM private key found", cfg->tls_key);
        rc = -1;
    } else if (X509_check_private_key(cert, key) != 1) {
        hvd_err("--tls-key does not match --tls-cert: the key in %s is not the key of the "
                "certificate in %s", cfg->tls_key, cfg->tls_cert);
        rc = -1;
    }
    EVP_PKEY_free(key);
    X509_free(cert);
    ERR_clear_error();
    return rc;
}

static struct lws_protocols protocols[2];

static struct lws_context *create_context(hvd_server_t *srv)
{
    hvd_config_t *cfg = srv->cfg;
    protocols[0].name = "hivent";
    protocols[0].callback = hvd_ws_callback;
    protocols[0].per_session_data_size = hvd_ws_session_size();
    protocols[0].rx_buffer_size = 4096;

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = cfg->listen_port;
    info.iface = cfg->listen_host;
    if (strcmp(info.iface, "0.0.0.0") == 0 || strcmp(info.iface, "::") == 0 ||
        strcmp(info.iface, "*") == 0)
        info.iface = NULL;
    info.protocols = protocols;
    info.user = srv;
    info.count_threads = 1;
    info.max_http_header_data = 4096;
    /* The service thread's read buffer, shared by every connection: one
     * recv() then takes about a hundred emits of a busy producer. */
    info.pt_serv_buf_size = 64 * 1024;
    if (!strchr(cfg->listen_host, ':'))
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    if (cfg->tls_cert) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cfg->tls_cert;
        info.ssl_private_key_filepath = cfg->tls_key;
        /* libwebsockets 4.1.6 offers h2 in ALPN by default.  hiventd reads
         * query strings from the HTTP/1 request line, which an HTTP/2
         * request lacks, so admin requests over h2 (curl's default) fail. */
        info.alpn = "http/1.1";
    }
    return lws_create_context(&info);
}

/* Wakes the service loop every 10 ms while shutting down, because
 * lws_service() otherwise sleeps until the next scheduled timer. */
static void shutdown_tick(lws_sorted_usec_list_t *sul)
{
    hvd_server_t *srv = lws_container_of(sul, hvd_server_t, sweep_sul);
    lws_sul_schedule(srv->context, 0, &srv->sweep_sul, shutdown_tick, 10 * LWS_US_PER_MS);
}

/* Serves until SIGTERM, SIGINT or SIGHUP, then lets queued commits finish and
 * their replies go out, for at most @grace_ms. */
static void serve(hvd_server_t *srv, int grace_ms)
{
    while (!srv->stopping) {
        if (lws_service(srv->context, 0) < 0) {
            hvd_err("service loop failed; stopping");
            break;
        }
    }
    hvd_notice("stopping: finishing %d store requests", hvd_committer_outstanding(srv->committer));
    lws_sul_schedule(srv->context, 0, &srv->sweep_sul, shutdown_tick, 10 * LWS_US_PER_MS);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        hvd_ws_drain_done(srv);
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed > grace_ms)
            break;
        /* After the last commit, one more short round writes its replies. */
        if (hvd_committer_outstanding(srv->committer) == 0 && elapsed > 50)
            break;
        lws_service(srv->context, 0);
    }
}

int main(int argc, char **argv)
{
    hvd_config_t cfg;
    int rc = hvd_config_load(&cfg, argc, argv);
    if (rc != 0) {
        hvd_config_free(&cfg);
        return rc > 0 ? 0 : 2;
    }
    hvd_log_set_level(cfg.log_level);
    hvd_log_route_lws();
    raise_fd_limit();
    /* Each emit allocates and frees small blocks on two threads.  With
     * glibc's defaults the per-thread heaps were shrunk and grown again
     * thousands of times a second (mprotect calls and zeroed pages). */
    mallopt(M_TOP_PAD, 8 << 20);
    mallopt(M_TRIM_THRESHOLD, 32 << 20);

    if (check_tls_files(&cfg) < 0 || lock_data_dir(cfg.data_dir) < 0 ||
        check_listen_address(&cfg) < 0) {
        hvd_config_free(&cfg);
        return 1;
    }

    static hvd_server_t srv;
    srv.cfg = &cfg;
    char err[512];
    srv.store = hvd_store_sqlite_open(cfg.data_dir, cfg.sync_full, err, sizeof(err));
    if (!srv.store) {
        hvd_err("store: %s", err);
        hvd_config_free(&cfg);
        return 1;
    }
    hvd_info("store: sqlite database %s/hivent.db (WAL, synchronous=%s), %" PRId64
             " event bodies stored", cfg.data_dir, cfg.sync_full ? "FULL" : "NORMAL",
             srv.store->ops->count_events(srv.store));
    hvd_prune_config_t prune = {
        .retention_ms = (int64_t)cfg.retention_s * 1000,
        .interval_ms = cfg.prune_interval_ms,
        .batch_rows = cfg.prune_batch,
    };
    if (cfg.retention_s > 0)
        hvd_info("store: retention %ld s: event bodies that no queue holds are deleted once "
                 "older (sweeps every %d ms, at most %d rows per transaction)",
                 cfg.retention_s, cfg.prune_interval_ms, cfg.prune_batch);
    else
        hvd_info("store: retention off (--retention 0): event bodies are kept forever");
    if (hvd_broker_load(&srv) < 0 ||
        !(srv.committer = hvd_committer_start(srv.store, cfg.max_batch, &prune))) {
        srv.store->ops->close(srv.store);
        hvd_config_free(&cfg);
        return 1;
    }

    signal_server = &srv;
    install_signals();
    srv.context = create_context(&srv);
    if (!srv.context) {
        hvd_err("cannot listen on %s:%d (--listen%s); the lws messages above give the cause",
                cfg.listen_host, cfg.listen_port, cfg.tls_cert ? ", --tls-cert, --tls-key" : "");
        hvd_committer_stop(srv.committer);
        srv.store->ops->close(srv.store);
        hvd_config_free(&cfg);
        return 1;
    }
    hvd_committer_set_context(srv.committer, srv.context);
    srv.vhost = lws_get_vhost_by_name(srv.context, "default");
    srv.port = srv.vhost ? lws_get_vhost_listen_port(srv.vhost) : cfg.listen_port;
    hvd_notice("listening on %s%s%s:%d (%s), api key %s, admin key %s, heartbeat interval %d ms",
               strchr(cfg.listen_host, ':') ? "[" : "", cfg.listen_host,
               strchr(cfg.listen_host, ':') ? "]" : "", srv.port, cfg.tls_cert ? "wss" : "ws",
               cfg.api_key ? "required" : "not required (every key accepted)",
               cfg.admin_key ? "required" : "not required", cfg.heartbeat_interval_ms);
    if (cfg.heartbeat_interval_ms > 0)
        lws_sul_schedule(srv.context, 0, &srv.sweep_sul, hvd_ws_sweep,
                         (lws_usec_t)cfg.heartbeat_interval_ms * 1000 / 4);
    if (cfg.ready_file && write_ready_file(cfg.ready_file, srv.port) < 0) {
        char why[128];
        hvd_err("cannot write --ready-file %s: %s; stopping", cfg.ready_file,
                error_text(errno, why, sizeof(why)));
        lws_context_destroy(srv.context);
        hvd_committer_stop(srv.committer);
        srv.store->ops->close(srv.store);
        hvd_config_free(&cfg);
        return 1;
    }

    serve(&srv, 5000);

    lws_context_destroy(srv.context);
    srv.context = NULL;
    hvd_committer_stop(srv.committer);
    srv.store->ops->close(srv.store);
    hvd_notice("stopped");
    hvd_config_free(&cfg);
    return 0;
}
