#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

enum {
    OPT_DATA_DIR = 1, OPT_LISTEN, OPT_API_KEY, OPT_API_KEY_FILE, OPT_ADMIN_KEY,
    OPT_ADMIN_KEY_FILE, OPT_TLS_CERT, OPT_TLS_KEY, OPT_READY_FILE,
    OPT_HEARTBEAT, OPT_LOG_LEVEL, OPT_MAX_FRAME, OPT_MAX_INFLATED,
    OPT_MAX_CONNECTIONS, OPT_MAX_TOPICS, OPT_MAX_PENDING, OPT_MAX_PARTITIONS,
    OPT_SYNC, OPT_MAX_BATCH, OPT_RETENTION, OPT_PRUNE_INTERVAL, OPT_PRUNE_BATCH, OPT_HELP
};

/* One entry per option: its name (the environment variable is HIVENTD_
 * followed by the name in upper case with '-' as '_') and its help line. */
static const struct option_doc {
    int id;
    const char *name;
    const char *arg;
    const char *help;
} option_docs[] = {
    {OPT_DATA_DIR, "data-dir", "DIR", "directory of the SQLite store (required; created if missing)"},
    {OPT_LISTEN, "listen", "HOST:PORT", "address to listen on; port 0 picks a free port (default 127.0.0.1:4000; IPv6 as [::1]:4000)"},
    {OPT_API_KEY, "api-key", "KEY", "API key clients must send (default: accept every key)"},
    {OPT_API_KEY_FILE, "api-key-file", "FILE", "read the API key from FILE (trailing whitespace removed)"},
    {OPT_ADMIN_KEY, "admin-key", "KEY", "bearer key for /admin/* requests (default: no key needed)"},
    {OPT_ADMIN_KEY_FILE, "admin-key-file", "FILE", "read the admin key from FILE"},
    {OPT_TLS_CERT, "tls-cert", "PEM", "certificate chain; with --tls-key serves wss and https"},
    {OPT_TLS_KEY, "tls-key", "PEM", "private key of --tls-cert"},
    {OPT_READY_FILE, "ready-file", "FILE", "write the bound port number and a newline to FILE once listening"},
    {OPT_HEARTBEAT, "heartbeat-interval", "MS", "expected client heartbeat period in milliseconds; a socket silent for twice this long is closed (default 30000; 0 disables)"},
    {OPT_LOG_LEVEL, "log-level", "LEVEL", "debug, info, notice, warning or error (default info)"},
    {OPT_MAX_FRAME, "max-frame-size", "BYTES", "largest WebSocket message accepted, as received (default 16777216)"},
    {OPT_MAX_INFLATED, "max-inflated-size", "BYTES", "largest message accepted after gunzip (default 16777216)"},
    {OPT_MAX_CONNECTIONS, "max-connections", "N", "WebSocket connections served at once; more get HTTP 503 (default 16384)"},
    {OPT_MAX_TOPICS, "max-topics", "N", "topics one connection may join (default 32)"},
    {OPT_MAX_PENDING, "max-pending", "N", "unfinished events per partition before emits to it are rejected (default 100000)"},
    {OPT_MAX_PARTITIONS, "max-partitions", "N", "largest partition_count a consumer may set, 1 to 4096 (libhivent's limit) (default 4096)"},
    {OPT_SYNC, "sync", "MODE", "SQLite synchronous mode: full (survives power loss) or normal (survives a crash of hiventd) (default full)"},
    {OPT_MAX_BATCH, "max-batch", "N", "most requests committed in one store transaction (default 8192)"},
    {OPT_RETENTION, "retention", "SECONDS", "delete a stored event body this many seconds after it was stored, once no queue holds it; uuids are deduplicated only this long; 0 keeps bodies forever (default 604800, 7 days)"},
    {OPT_PRUNE_INTERVAL, "prune-interval", "MS", "milliseconds between two sweeps that delete expired event bodies (default 1000)"},
    {OPT_PRUNE_BATCH, "prune-batch", "ROWS", "maximum event rows examined in one pruning transaction (default 500)"},
    {OPT_HELP, "help", NULL, "print this help and exit"},
};

#define N_OPTIONS (sizeof(option_docs) / sizeof(option_docs[0]))

static void print_help(const char *prog)
{
    printf("Usage: %s --data-dir DIR [OPTION]...\n"
           "Hivent server: Phoenix Channels over WebSocket with an embedded SQLite store.\n\n",
           prog);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct option_doc *d = &option_docs[i];
        char head[64];
        snprintf(head, sizeof(head), "--%s%s%s", d->name, d->arg ? " " : "",
                 d->arg ? d->arg : "");
        printf("  %-28s %s\n", head, d->help);
    }
    printf("\nEvery option except --help can also be set by an environment variable:\n"
           "HIVENTD_ and the option name in upper case with '-' as '_', for example\n"
           "HIVENTD_DATA_DIR or HIVENTD_API_KEY_FILE.  Options win over variables.\n");
}

static int parse_long(const char *name, const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "hiventd: invalid --%s '%s': expected an integer from %ld to %ld\n",
                name, s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

static char *read_key_file(const char *name, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "hiventd: cannot open --%s '%s': %s\n", name, path, strerror(errno));
        return NULL;
    }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    int too_long = !feof(f);
    fclose(f);
    if (too_long) {
        fprintf(stderr, "hiventd: --%s '%s' is larger than 4095 bytes\n", name, path);
        return NULL;
    }
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
                 buf[n - 1] == '\t'))
        n--;
    buf[n] = '\0';
    if (n == 0 || strlen(buf) != n) {
        fprintf(stderr, "hiventd: --%s '%s' holds no key or a NUL byte\n", name, path);
        return NULL;
    }
    return strdup(buf);
}

static int parse_listen(hvd_config_t *cfg, const char *s)
{
    const char *colon;
    char host[256];
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof(host))
            goto bad;
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof(host))
            goto bad;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
    }
    long port;
    if (!host[0] || parse_long("listen", colon + 1, 0, 65535, &port) < 0)
        goto bad;
    free(cfg->listen_host);
    cfg->listen_host = strdup(host);
    cfg->listen_port = (int)port;
    return 0;
bad:
    fprintf(stderr, "hiventd: invalid --listen '%s': expected HOST:PORT or [IPV6]:PORT\n", s);
    return -1;
}

static int set_string(char **slot, const char *value)
{
    free(*slot);
    *slot = strdup(value);
    return *slot ? 0 : -1;
}

static int apply(hvd_config_t *cfg, int id, const char *value)
{
    const char *name = option_docs[id - 1].name;
    long v;
    switch (id) {
    case OPT_DATA_DIR: return set_string(&cfg->data_dir, value);
    case OPT_LISTEN: return parse_listen(cfg, value);
    case OPT_API_KEY:
        if (!*value) {
            fprintf(stderr, "hiventd: --api-key must not be empty\n");
            return -1;
        }
        cfg->api_key_inline = 1;
        return set_string(&cfg->api_key, value);
    case OPT_ADMIN_KEY:
        if (!*value) {
            fprintf(stderr, "hiventd: --admin-key must not be empty\n");
            return -1;
        }
        cfg->admin_key_inline = 1;
        return set_string(&cfg->admin_key, value);
    case OPT_API_KEY_FILE:
    case OPT_ADMIN_KEY_FILE: {
        int *from_file = id == OPT_API_KEY_FILE ? &cfg->api_key_from_file
                                                : &cfg->admin_key_from_file;
        *from_file = 1;
        char *key = read_key_file(name, value);
        if (!key)
            return -1;
        char **slot = id == OPT_API_KEY_FILE ? &cfg->api_key : &cfg->admin_key;
        free(*slot);
        *slot = key;
        return 0;
    }
    case OPT_TLS_CERT: return set_string(&cfg->tls_cert, value);
    case OPT_TLS_KEY: return set_string(&cfg->tls_key, value);
    case OPT_READY_FILE: return set_string(&cfg->ready_file, value);
    case OPT_HEARTBEAT:
        if (parse_long(name, value, 0, 86400000, &v) < 0)
            return -1;
        cfg->heartbeat_interval_ms = (int)v;
        return 0;
    case OPT_LOG_LEVEL:
        cfg->log_level = hvd_log_parse_level(value);
        if (cfg->log_level < 0) {
            fprintf(stderr, "hiventd: invalid --log-level '%s': expected debug, info, "
                            "notice, warning or error\n", value);
            return -1;
        }
        return 0;
    case OPT_MAX_FRAME:
    case OPT_MAX_INFLATED:
        if (parse_long(name, value, 1024, 1L << 30, &v) < 0)
            return -1;
        *(id == OPT_MAX_FRAME ? &cfg->max_frame_size : &cfg->max_inflated_size) = (size_t)v;
        return 0;
    case OPT_MAX_CONNECTIONS:
        if (parse_long(name, value, 1, 1000000, &v) < 0)
            return -1;
        cfg->max_connections = (int)v;
        return 0;
    case OPT_MAX_TOPICS:
        if (parse_long(name, value, 1, 4096, &v) < 0)
            return -1;
        cfg->max_topics = (int)v;
        return 0;
    case OPT_MAX_PENDING:
        if (parse_long(name, value, 1, 100000000, &v) < 0)
            return -1;
        cfg->max_pending = (int)v;
        return 0;
    case OPT_MAX_PARTITIONS:
        if (parse_long(name, value, 1, HVD_MAX_PARTITIONS, &v) < 0)
            return -1;
        cfg->max_partitions = (int)v;
        return 0;
    case OPT_SYNC:
        if (strcmp(value, "full") && strcmp(value, "normal")) {
            fprintf(stderr, "hiventd: invalid --sync '%s': expected full or normal\n", value);
            return -1;
        }
        cfg->sync_full = strcmp(value, "full") == 0;
        return 0;
    case OPT_MAX_BATCH:
        if (parse_long(name, value, 1, 1000000, &v) < 0)
            return -1;
        cfg->max_batch = (int)v;
        return 0;
    case OPT_RETENTION:
        return parse_long(name, value, 0, HVD_MAX_RETENTION_S, &cfg->retention_s);
    case OPT_PRUNE_INTERVAL:
        if (parse_long(name, value, 10, 86400000, &v) < 0)
            return -1;
        cfg->prune_interval_ms = (int)v;
        return 0;
    case OPT_PRUNE_BATCH:
        if (parse_long(name, value, 1, 1000000, &v) < 0)
            return -1;
        cfg->prune_batch = (int)v;
        return 0;
    }
    return -1;
}

static void set_defaults(hvd_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->listen_host = strdup("127.0.0.1");
    cfg->listen_port = 4000;
    cfg->heartbeat_interval_ms = 30000;
    cfg->log_level = HVD_LOG_INFO;
    cfg->max_frame_size = 16777216;
    cfg->max_inflated_size = 16777216;
    cfg->max_connections = 16384;
    cfg->max_topics = 32;
    cfg->max_pending = 100000;
    cfg->max_partitions = HVD_MAX_PARTITIONS;
    cfg->sync_full = 1;
    cfg->max_batch = 8192;
    cfg->retention_s = HVD_DEFAULT_RETENTION_S;
    cfg->prune_interval_ms = 1000;
    cfg->prune_batch = 500;
}

static int load_env(hvd_config_t *cfg)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (option_docs[i].id == OPT_HELP)
            continue;
        char var[64] = "HIVENTD_";
        size_t n = strlen(var);
        for (const char *p = option_docs[i].name; *p && n < sizeof(var) - 1; p++)
            var[n++] = *p == '-' ? '_' : (char)(*p - 'a' + 'A');
        var[n] = '\0';
        const char *value = getenv(var);
        if (value && apply(cfg, option_docs[i].id, value) < 0) {
            fprintf(stderr, "hiventd: (from environment variable %s)\n", var);
            return -1;
        }
    }
    return 0;
}

int hvd_config_load(hvd_config_t *cfg, int argc, char **argv)
{
    struct option longopts[N_OPTIONS + 1];
    for (size_t i = 0; i < N_OPTIONS; i++) {
        longopts[i].name = option_docs[i].name;
        longopts[i].has_arg = option_docs[i].arg ? required_argument : no_argument;
        longopts[i].flag = NULL;
        longopts[i].val = option_docs[i].id;
    }
    memset(&longopts[N_OPTIONS], 0, sizeof(longopts[0]));

    set_defaults(cfg);
    if (load_env(cfg) < 0)
        return -1;

    opterr = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'h' || c == OPT_HELP) {
            print_help(argv[0]);
            return 1;
        }
        if (c == '?' || c == ':') {
            fprintf(stderr, "Try '%s --help'.\n", argv[0]);
            return -1;
        }
        if (apply(cfg, c, optarg) < 0)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "hiventd: unexpected argument '%s'; try --help\n", argv[optind]);
        return -1;
    }
    if (!cfg->data_dir) {
        fprintf(stderr, "hiventd: --data-dir is required (or HIVENTD_DATA_DIR)\n");
        return -1;
    }
    if (cfg->api_key_inline && cfg->api_key_from_file) {
        fprintf(stderr, "hiventd: --api-key and --api-key-file (or HIVENTD_API_KEY and "
                        "HIVENTD_API_KEY_FILE) are both set; give only one\n");
        return -1;
    }
    if (cfg->admin_key_inline && cfg->admin_key_from_file) {
        fprintf(stderr, "hiventd: --admin-key and --admin-key-file (or HIVENTD_ADMIN_KEY and "
                        "HIVENTD_ADMIN_KEY_FILE) are both set; give only one\n");
        return -1;
    }
    if (!cfg->tls_cert != !cfg->tls_key) {
        fprintf(stderr, "hiventd: --tls-cert and --tls-key must be given together\n");
        return -1;
    }
    return 0;
}

void hvd_config_free(hvd_config_t *cfg)
{
    free(cfg->data_dir);
    free(cfg->listen_host);
    free(cfg->api_key);
    free(cfg->admin_key);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->ready_file);
    memset(cfg, 0, sizeof(*cfg));
}
