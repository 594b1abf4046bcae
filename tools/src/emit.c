/* hivent emit: emit one event and print the published event. */
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "sender.h"

static const char emit_help[] =
    "Usage: hivent emit NAME --version N [OPTIONS]\n"
    "\n"
    "Emit one event named NAME, wait for the server to store it, and print\n"
    "the published event (with meta.uuid, meta.cid and meta.created_at\n"
    "filled in) to standard output.\n"
    "\n"
    "Options:\n"
    "  -e, --version N      event version, a positive integer (required)\n"
    "  -k, --key KEY        partition key (meta.key); events with the same\n"
    "                       key keep their order (default: none, the payload\n"
    "                       bytes pick the partition)\n"
    "  -c, --cid ID         correlation id (meta.cid; default: the server\n"
    "                       assigns a new one)\n"
    "  -d, --payload JSON   payload, a JSON object (default: read the JSON\n"
    "                       object from standard input)\n"
    "  -f, --format FORMAT  output: json (one line) or pretty (default json)\n"
    "\n";

struct emit_args {
    const char *name;
    const char *payload;
    const char *cid;
    const char *key;
    const char *format;
    int64_t version;
    int has_version;
};

struct emit_result {
    struct cli_pending pending;
    const char *format;
    hivent_err_t err;
    char errstr[768];
    int reported;
    int write_failed;
};

static void print_help(FILE *out)
{
    fputs(emit_help, out);
    fputs(cli_common_help, out);
}

static int parse_args(int argc, char **argv, struct cli_options *opts, struct emit_args *args)
{
    static const struct option longopts[] = {CLI_COMMON_LONGOPTS,
                                             {"version", required_argument, NULL, 'e'},
                                             {"key", required_argument, NULL, 'k'},
                                             {"cid", required_argument, NULL, 'c'},
                                             {"payload", required_argument, NULL, 'd'},
                                             {"format", required_argument, NULL, 'f'},
                                             {NULL, 0, NULL, 0}};
    int opt;
    long value;

    memset(args, 0, sizeof *args);
    args->format = "json";
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "e:k:c:d:f:", longopts, NULL)) !=
           -1) {
        switch (opt) {
        case 'h':
            print_help(stdout);
            return CLI_EXIT_OK;
        case 'e':
            if (cli_parse_long("--version", optarg, 1, INT64_MAX, &value) != 0)
                return CLI_EXIT_USAGE;
            args->version = value;
            args->has_version = 1;
            break;
        case 'k':
            args->key = optarg;
            break;
        case 'c':
            args->cid = optarg;
            break;
        case 'd':
            args->payload = optarg;
            break;
        case 'f':
            args->format = optarg;
            break;
        default:
            if (cli_options_apply(opts, opt, optarg) == 1)
                break;
            cli_error("run 'hivent emit --help' for the options");
            return CLI_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        cli_error("missing event NAME; usage: hivent emit NAME --version N");
        return CLI_EXIT_USAGE;
    }
    if (optind + 1 < argc) {
        cli_error("unexpected argument '%s'; give the payload with --payload "
                  "or on standard input",
                  argv[optind + 1]);
        return CLI_EXIT_USAGE;
    }
    args->name = argv[optind];
    if (!args->has_version) {
        cli_error("missing --version: every event needs a positive integer "
                  "version, such as --version 1");
        return CLI_EXIT_USAGE;
    }
    if (!cli_event_format_valid(args->format)) {
        cli_error("invalid --format '%s': expected json or pretty", args->format);
        return CLI_EXIT_USAGE;
    }
    return -1;
}

/* Converts the payload text to MessagePack after checking that it is one
 * JSON object.  Returns 0, or -1 after printing the error. */
static int convert_payload(const char *text, size_t size, const char *source, void **mp,
                           size_t *mp_size)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, size, 0, &jerr);
    if (!root) {
        cli_error("invalid JSON payload (%s) at line %d, column %d: %s", source, jerr.line,
                  jerr.column, jerr.text);
        return -1;
    }
    int is_object = json_is_object(root);
    json_decref(root);
    if (!is_object) {
        cli_error("invalid payload (%s): expected a JSON object such as "
                  "{\"id\": 1}",
                  source);
        return -1;
    }
    char errstr[256];
    if (hivent_json_to_msgpack(text, size, mp, mp_size, errstr, sizeof errstr) != HIVENT_OK) {
        cli_error("invalid payload (%s): %s", source, errstr);
        return -1;
    }
    return 0;
}

static int read_payload(const struct emit_args *args, const struct cli_options *opts, void **mp,
                        size_t *mp_size)
{
    if (args->payload)
        return convert_payload(args->payload, strlen(args->payload), "--payload", mp, mp_size);
    if (isatty(STDIN_FILENO))
        cli_info(opts, 0,
                 "reading the payload from standard input; end it "
                 "with Ctrl-D");
    char *text;
    size_t size;
    if (cli_read_all("-", &text, &size) != 0)
        return -1;
    int rc = convert_payload(text, size, "standard input", mp, mp_size);
    free(text);
    return rc;
}

static void on_delivery(void *ctx, struct cli_pending *pending, hivent_err_t err,
                        const char *errstr, const hivent_event_t *event)
{
    struct emit_result *result = ctx;
    result->reported = 1;
    result->err = err;
    snprintf(result->errstr, sizeof result->errstr, "%s", errstr);
    if (err == HIVENT_OK && event && cli_print_event(stdout, event, result->format) != 0)
        result->write_failed = 1;
}

static int report_failure(const struct emit_args *args, const struct emit_result *r)
{
    const char *hint = cli_err_hint(r->err);
    if (r->err == HIVENT_ERR_REJECTED)
        cli_error("the server rejected event '%s': %s", args->name, r->errstr);
    else
        cli_error("emit of '%s' failed: %s (%s)", args->name, r->errstr,
                  hivent_err_name(r->err));
    if (hint[0])
        cli_error("%s", hint);
    return cli_exit_for_err(r->err);
}

static int send_event(const struct emit_args *args, struct cli_options *opts, const void *mp,
                      size_t mp_size)
{
    struct cli_config cfg;
    struct cli_sender sender;
    struct emit_result result = {.format = args->format};
    char errstr[768];

    int rc = cli_config_load(&cfg, opts);
    if (rc != CLI_EXIT_OK)
        return rc;
    rc = cli_sender_open(&sender, &cfg, opts, on_delivery, NULL, &result);
    cli_config_free(&cfg);
    if (rc != CLI_EXIT_OK)
        return rc;

    hivent_err_t err =
        cli_sender_submit(&sender, &result.pending, args->name, mp, mp_size, args->version,
                          args->cid, args->key, errstr, sizeof errstr);
    if (err == HIVENT_OK)
        cli_sender_wait(&sender, 0);
    cli_sender_close(&sender);
    if (err != HIVENT_OK) {
        result.err = err;
        snprintf(result.errstr, sizeof result.errstr, "%s", errstr);
    }
    if (result.err != HIVENT_OK)
        return report_failure(args, &result);
    if (result.write_failed) {
        cli_error("event '%s' was published but writing it to standard output "
                  "failed",
                  args->name);
        return CLI_EXIT_FAILED;
    }
    return CLI_EXIT_OK;
}

int cli_cmd_emit(int argc, char **argv, struct cli_options *opts)
{
    struct emit_args args;
    int rc = parse_args(argc, argv, opts, &args);
    if (rc >= 0)
        return rc;

    void *mp = NULL;
    size_t mp_size = 0;
    if (read_payload(&args, opts, &mp, &mp_size) != 0)
        return CLI_EXIT_USAGE;
    rc = send_event(&args, opts, mp, mp_size);
    hivent_free(mp);
    return rc;
}
