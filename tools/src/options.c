/* Common options, messages and small helpers of the hivent client. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

const char cli_common_help[] =
    "Connection options (every command):\n"
    "  -H, --host HOST          server host name or address (server.host,\n"
    "                           default 127.0.0.1)\n"
    "  -p, --port PORT          server TCP port (server.port, default 4000)\n"
    "      --secure             connect with TLS: wss and https (server.secure)\n"
    "      --api-key-file FILE  read the API key from the first line of FILE;\n"
    "                           HIVENT_SERVER_API_KEY or server.api_key in the\n"
    "                           config file also set it\n"
    "      --admin-key-file FILE\n"
    "                           read the admin key for dlq from FILE;\n"
    "                           HIVENT_ADMIN_KEY or admin_key in the config\n"
    "                           file also set it\n"
    "      --client-id ID       meta.producer of emitted events (client_id,\n"
    "                           default the host name)\n"
    "  -X, --set KEY=VALUE      set any libhivent configuration key, such as\n"
    "                           -X request_timeout=5000; repeatable\n"
    "      --config FILE        configuration file (default\n"
    "                           $XDG_CONFIG_HOME/hivent/config, else\n"
    "                           ~/.config/hivent/config)\n"
    "      --timeout MS         give up after MS milliseconds without a reply\n"
    "                           or progress (default 30000)\n"
    "  -v, --verbose            print connection changes and library logs;\n"
    "                           twice for debug logs\n"
    "  -q, --quiet              print no progress or informational messages\n"
    "  -h, --help               print help and exit\n"
    "\n"
    "Settings apply in this order, later ones winning: built-in defaults, the\n"
    "config file, HIVENT_* environment variables, command-line options.\n";

static void vmessage(const char *prefix, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: %s", cli_program, prefix);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage("", fmt, ap);
    va_end(ap);
}

void cli_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage("warning: ", fmt, ap);
    va_end(ap);
}

void cli_info(const struct cli_options *opts, int level, const char *fmt, ...)
{
    if (opts->quiet || opts->verbose < level)
        return;
    va_list ap;
    va_start(ap, fmt);
    vmessage("", fmt, ap);
    va_end(ap);
}

void cli_options_init(struct cli_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->timeout_ms = CLI_DEFAULT_TIMEOUT_MS;
}

int cli_parse_long(const char *name, const char *text, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max) {
        cli_error("invalid %s '%s': expected an integer from %ld to %ld", name, text, min, max);
        return -1;
    }
    *out = value;
    return 0;
}

int cli_options_apply(struct cli_options *opts, int opt, const char *arg)
{
    long value;

    switch (opt) {
    case CLI_OPT_CONFIG:
        opts->config_path = arg;
        return 1;
    case 'H':
        opts->host = arg;
        return 1;
    case 'p':
        opts->port = arg;
        return 1;
    case CLI_OPT_SECURE:
        opts->secure = 1;
        return 1;
    case CLI_OPT_API_KEY_FILE:
        opts->api_key_file = arg;
        return 1;
    case CLI_OPT_ADMIN_KEY_FILE:
        opts->admin_key_file = arg;
        return 1;
    case CLI_OPT_CLIENT_ID:
        opts->client_id = arg;
        return 1;
    case 'X':
        if (opts->set_count == CLI_MAX_SETS) {
            cli_error("too many --set options: at most %d", CLI_MAX_SETS);
            return -1;
        }
        opts->sets[opts->set_count++] = arg;
        return 1;
    case CLI_OPT_TIMEOUT:
        if (cli_parse_long("--timeout", arg, 1, INT_MAX, &value) != 0)
            return -1;
        opts->timeout_ms = value;
        return 1;
    case 'v':
        opts->verbose++;
        return 1;
    case 'q':
        opts->quiet = 1;
        return 1;
    default:
        return 0;
    }
}

int64_t cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cli_exit_for_err(hivent_err_t err)
{
    switch (err) {
    case HIVENT_OK:
        return CLI_EXIT_OK;
    case HIVENT_ERR_INVALID_ARG:
    case HIVENT_ERR_UNKNOWN_KEY:
    case HIVENT_ERR_INVALID_VALUE:
    case HIVENT_ERR_PAYLOAD:
    case HIVENT_ERR_TOO_LARGE:
        return CLI_EXIT_USAGE;
    case HIVENT_ERR_FAILED:
    case HIVENT_ERR_CONNECTION:
    case HIVENT_ERR_RESOLVE:
    case HIVENT_ERR_REFUSED:
    case HIVENT_ERR_TLS:
    case HIVENT_ERR_AUTH:
        return CLI_EXIT_CONNECTION;
    case HIVENT_ERR_REJECTED:
    case HIVENT_ERR_JOIN_REJECTED:
        return CLI_EXIT_REJECTED;
    case HIVENT_ERR_TIMED_OUT:
        return CLI_EXIT_TIMED_OUT;
    default:
        return CLI_EXIT_FAILED;
    }
}

const char *cli_err_hint(hivent_err_t err)
{
    switch (err) {
    case HIVENT_ERR_FAILED:
    case HIVENT_ERR_CONNECTION:
    case HIVENT_ERR_REFUSED:
        return "check that hiventd is running and that --host and --port "
               "(or HIVENT_SERVER_HOST and HIVENT_SERVER_PORT) point at it";
    case HIVENT_ERR_RESOLVE:
        return "check the host name given with --host or HIVENT_SERVER_HOST";
    case HIVENT_ERR_TLS:
        return "check --secure, tls.ca_file and tls.verify against the "
               "server's certificate";
    case HIVENT_ERR_AUTH:
        return "give the server's API key with --api-key-file, "
               "HIVENT_SERVER_API_KEY or server.api_key in the config file";
    case HIVENT_ERR_TIMED_OUT:
        return "check that the server is healthy ('hivent status'), or raise "
               "--timeout or -X request_timeout=MS";
    case HIVENT_ERR_TOO_LARGE:
        return "send a smaller payload or raise -X max_frame_size=BYTES on "
               "both ends";
    case HIVENT_ERR_QUEUE_FULL:
        return "lower --window or raise -X queue.max_events and "
               "-X queue.max_bytes";
    default:
        return "";
    }
}

char *cli_read_secret_file(const char *path, const char *what)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        cli_error("cannot read the %s from '%s': %s", what, path, strerror(errno));
        return NULL;
    }
    char *line = NULL;
    size_t cap = 0;
    errno = 0;
    ssize_t len = getline(&line, &cap, f);
    int read_errno = errno;
    fclose(f);
    if (len < 0) {
        free(line);
        if (read_errno != 0 && read_errno != ENOENT)
            cli_error("cannot read the %s from '%s': %s", what, path, strerror(read_errno));
        else
            cli_error("the %s file '%s' is empty; write the key on its first "
                      "line",
                      what, path);
        return NULL;
    }
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    if (len == 0 || strlen(line) != (size_t)len) {
        cli_error("the first line of the %s file '%s' is empty or contains a "
                  "NUL byte; write the key on its first line",
                  what, path);
        free(line);
        return NULL;
    }
    return line;
}

int cli_read_all(const char *path, char **out, size_t *out_size)
{
    int is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        cli_error("cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 65536, size = 0;
    char *buf = malloc(cap);
    int rc = 0;
    while (buf) {
        if (cap - size < 2) {
            char *grown = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (!grown) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
        size_t n = fread(buf + size, 1, cap - size - 1, f);
        size += n;
        if (n == 0)
            break;
    }
    if (!buf) {
        cli_error("out of memory reading '%s'", is_stdin ? "standard input" : path);
        rc = -1;
    } else if (ferror(f)) {
        cli_error("cannot read '%s': %s", is_stdin ? "standard input" : path, strerror(errno));
        free(buf);
        rc = -1;
    }
    if (!is_stdin)
        fclose(f);
    if (rc == 0) {
        buf[size] = '\0';
        *out = buf;
        *out_size = size;
    }
    return rc;
}
