/* Declarations shared by the subcommands of the hivent command-line client. */
#ifndef HIVENT_CLI_H
#define HIVENT_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hivent/hivent.h"

/* Exit statuses; docs/cli.md lists them for users. */
enum cli_exit {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILED = 1,     /* some events failed, or the server is not ok */
    CLI_EXIT_USAGE = 2,      /* bad option, bad input or bad configuration */
    CLI_EXIT_CONNECTION = 3, /* unreachable server, TLS failure, key rejected */
    CLI_EXIT_REJECTED = 4,   /* the server rejected the request */
    CLI_EXIT_TIMED_OUT = 5   /* no reply or no progress within --timeout */
};

#define CLI_MAX_SETS 64
#define CLI_DEFAULT_TIMEOUT_MS 30000

/* Options every subcommand accepts, as given on the command line. */
struct cli_options {
    const char *config_path;        /* --config */
    const char *host;               /* --host */
    const char *port;               /* --port */
    int secure;                     /* --secure: 1, else 0 */
    const char *api_key_file;       /* --api-key-file */
    const char *admin_key_file;     /* --admin-key-file */
    const char *client_id;          /* --client-id */
    const char *sets[CLI_MAX_SETS]; /* --set KEY=VALUE, in order */
    int set_count;
    int verbose;     /* count of -v */
    int quiet;       /* --quiet */
    long timeout_ms; /* --timeout, CLI_DEFAULT_TIMEOUT_MS unless given */
};

/* Configuration resolved from defaults, the config file, HIVENT_* variables
 * and flags, in increasing order of precedence. */
struct cli_config {
    hivent_conf_t *conf; /* NULL once handed to a client or consumer */
    char *admin_key;     /* NULL when none was given */
    char *config_path;   /* file that was read, or NULL */
};

extern const char *cli_program;

/* Prints "hivent: " and the formatted message to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "hivent: warning: " and the formatted message to stderr. */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints a message to stderr when -v was given at least @level times. */
void cli_info(const struct cli_options *opts, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Common option table and its short options, for getopt_long. */
#define CLI_COMMON_SHORTOPTS "H:p:X:vqh"
enum cli_common_opt {
    CLI_OPT_CONFIG = 1000,
    CLI_OPT_SECURE,
    CLI_OPT_API_KEY_FILE,
    CLI_OPT_ADMIN_KEY_FILE,
    CLI_OPT_CLIENT_ID,
    CLI_OPT_TIMEOUT,
    CLI_OPT_FIRST_SUBCOMMAND = 1100
};
#define CLI_COMMON_LONGOPTS                                                                    \
    {"config", required_argument, NULL, CLI_OPT_CONFIG},                                       \
        {"host", required_argument, NULL, 'H'}, {"port", required_argument, NULL, 'p'},        \
        {"secure", no_argument, NULL, CLI_OPT_SECURE},                                         \
        {"api-key-file", required_argument, NULL, CLI_OPT_API_KEY_FILE},                       \
        {"admin-key-file", required_argument, NULL, CLI_OPT_ADMIN_KEY_FILE},                   \
        {"client-id", required_argument, NULL, CLI_OPT_CLIENT_ID},                             \
        {"set", required_argument, NULL, 'X'},                                                 \
        {"timeout", required_argument, NULL, CLI_OPT_TIMEOUT},                                 \
        {"verbose", no_argument, NULL, 'v'}, {"quiet", no_argument, NULL, 'q'},                \
    {                                                                                          \
        "help", no_argument, NULL, 'h'                                                         \
    }

/* Text of the common options for --help output. */
extern const char cli_common_help[];

void cli_options_init(struct cli_options *opts);
/* Applies common option @opt with argument @arg.  Returns 1 when @opt was
 * a common option, 0 when it was not, or -1 after printing a usage error. */
int cli_options_apply(struct cli_options *opts, int opt, const char *arg);

/* Parses a decimal integer in [@min, @max] for option @name.  Returns 0,
 * or -1 after printing a usage error. */
int cli_parse_long(const char *name, const char *text, long min, long max, long *out);

/* Builds the configuration.  Returns CLI_EXIT_OK or CLI_EXIT_USAGE after
 * printing what is wrong. */
int cli_config_load(struct cli_config *cfg, const struct cli_options *opts);
void cli_config_free(struct cli_config *cfg);
/* Copies configuration value @key into @dest; "" when unset or too long. */
void cli_config_get(const hivent_conf_t *conf, const char *key, char *dest, size_t dest_size);

/* Reads the first line of @path as a secret, without the line ending.
 * Returns a heap string or NULL after printing an error naming @what. */
char *cli_read_secret_file(const char *path, const char *what);

/* Reads all of @path ("-" is stdin) into a heap buffer, NUL-terminated.
 * Returns 0, or -1 after printing an error. */
int cli_read_all(const char *path, char **out, size_t *out_size);

/* Maps a libhivent error to an exit status. */
int cli_exit_for_err(hivent_err_t err);
/* Returns advice for the user after an error, such as which option to
 * check, or "" when there is none. */
const char *cli_err_hint(hivent_err_t err);

/* Milliseconds of a monotonic clock. */
int64_t cli_now_ms(void);

/* Writes @event as one line in @format ("json" or "pretty") and flushes
 * @out.  Returns 0, or -1 with errno set when writing to @out failed. */
int cli_print_event(FILE *out, const hivent_event_t *event, const char *format);
/* Returns 1 when @format is a known event output format. */
int cli_event_format_valid(const char *format);

/* Subcommands: each takes argc/argv starting at the subcommand name and
 * returns an exit status. */
int cli_cmd_emit(int argc, char **argv, struct cli_options *opts);
int cli_cmd_replay(int argc, char **argv, struct cli_options *opts);
int cli_cmd_consume(int argc, char **argv, struct cli_options *opts);
int cli_cmd_dlq(int argc, char **argv, struct cli_options *opts);
int cli_cmd_status(int argc, char **argv, struct cli_options *opts);

#endif
