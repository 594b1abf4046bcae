/* hiventd settings from the command line and HIVENTD_* environment variables. */
#ifndef HVD_CONFIG_H
#define HVD_CONFIG_H

#include <stddef.h>

/* Highest --max-partitions: libhivent's consumers accept partition counts
 * from 1 to 4096 (HV_MAX_PARTITIONS in core/src/consumer.c). */
#define HVD_MAX_PARTITIONS 4096

typedef struct hvd_config {
    char *data_dir;
    char *listen_host;          /* "127.0.0.1", "::1", "0.0.0.0" ... */
    int listen_port;
    char *api_key;              /* NULL: every key is accepted */
    char *admin_key;            /* NULL: admin requests need no key */
    /* Flags of the key sources seen in options and the environment.  A key
     * given both inline and by file is rejected. */
    int api_key_inline, api_key_from_file;
    int admin_key_inline, admin_key_from_file;
    char *tls_cert;
    char *tls_key;
    char *ready_file;
    int heartbeat_interval_ms;
    int log_level;
    size_t max_frame_size;      /* bytes of one WebSocket message on the wire */
    size_t max_inflated_size;   /* bytes of one message after gunzip */
    int max_connections;
    int max_topics;             /* joined topics per connection */
    int max_pending;            /* stored, unfinished events per partition */
    int max_partitions;         /* largest partition_count a join may set */
    int sync_full;              /* SQLite synchronous=FULL instead of NORMAL */
    int max_batch;              /* jobs per store transaction */
    long retention_s;           /* age at which unreferenced event bodies are deleted; 0: never */
    int prune_interval_ms;      /* pause between pruning sweeps */
    int prune_batch;            /* rows examined per pruning transaction */
} hvd_config_t;

/* Default --retention: 7 days. */
#define HVD_DEFAULT_RETENTION_S (7L * 24 * 3600)
/* Maximum --retention: 100 years, which keeps retention_s * 1000 and the
 * pruning cutoff far from int64_t overflow. */
#define HVD_MAX_RETENTION_S (100L * 365 * 24 * 3600)

/* Fills @cfg from the environment, then from @argv (options win).  Returns
 * 0, 1 when --help was printed, or -1 after printing an error to stderr. */
int hvd_config_load(hvd_config_t *cfg, int argc, char **argv);
void hvd_config_free(hvd_config_t *cfg);

#endif
