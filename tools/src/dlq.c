/* hivent dlq: list, replay or purge dead letters through the admin interface. */
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "http.h"

/* Largest limit hiventd accepts on GET /admin/dlq (docs/server.md). */
#define DLQ_MAX_LIMIT 10000

static const char dlq_help[] =
    "Usage: hivent dlq list|replay|purge SERVICE [OPTIONS]\n"
    "\n"
    "Work on the dead-letter queues of SERVICE through hiventd's admin HTTP\n"
    "interface, authenticated with the admin key.\n"
    "  list    print the dead letters, oldest first\n"
    "  replay  move the dead letters back to the end of their partition\n"
    "          queues, to be delivered again\n"
    "  purge   delete the dead letters\n"
    "\n"
    "Options:\n"
    "  -P, --partition P  only partition P (default: every partition)\n"
    "  -l, --limit N      list: print at most N dead letters, 1 to 10000\n"
    "                     (hiventd's maximum; default: hiventd's default,\n"
    "                     100)\n"
    "  -f, --format FORMAT\n"
    "                     list: json (one {queue, id, event, reason} object\n"
    "                     per line, which 'hivent replay' accepts), events\n"
    "                     (only the events), or pretty (default json);\n"
    "                     replay and purge: json or pretty (default pretty)\n"
    "\n";

enum dlq_action { DLQ_LIST, DLQ_REPLAY, DLQ_PURGE };

struct dlq_args {
    enum dlq_action action;
    const char *service;
    const char *format;
    long partition; /* -1: every partition */
    long limit;     /* 0: server's limit */
};

static void print_help(FILE *out)
{
    fputs(dlq_help, out);
    fputs(cli_common_help, out);
}

static int parse_action(const char *word, enum dlq_action *action)
{
    if (strcmp(word, "list") == 0)
        *action = DLQ_LIST;
    else if (strcmp(word, "replay") == 0)
        *action = DLQ_REPLAY;
    else if (strcmp(word, "purge") == 0)
        *action = DLQ_PURGE;
    else
        return -1;
    return 0;
}

static int check_format(const struct dlq_args *args)
{
    const char *f = args->format;
    int valid = strcmp(f, "json") == 0 || strcmp(f, "pretty") == 0 ||
                (args->action == DLQ_LIST && strcmp(f, "events") == 0);
    if (!valid)
        cli_error("invalid --format '%s': expected %s", f,
                  args->action == DLQ_LIST ? "json, events or pretty" : "json or pretty");
    return valid ? 0 : -1;
}

static int parse_positionals(int argc, char **argv, struct dlq_args *args)
{
    if (optind >= argc || parse_action(argv[optind], &args->action) != 0) {
        if (optind < argc)
            cli_error("unknown dlq action '%s'; expected list, replay or purge", argv[optind]);
        else
            cli_error("missing action; usage: hivent dlq list|replay|purge SERVICE");
        return CLI_EXIT_USAGE;
    }
    if (optind + 1 >= argc || !argv[optind + 1][0]) {
        cli_error("missing SERVICE; usage: hivent dlq %s SERVICE", argv[optind]);
        return CLI_EXIT_USAGE;
    }
    if (optind + 2 < argc) {
        cli_error("unexpected argument '%s'", argv[optind + 2]);
        return CLI_EXIT_USAGE;
    }
    args->service = argv[optind + 1];
    if (!args->format)
        args->format = args->action == DLQ_LIST ? "json" : "pretty";
    if (args->limit > 0 && args->action != DLQ_LIST) {
        cli_error("--limit applies only to 'dlq list'");
        return CLI_EXIT_USAGE;
    }
    return check_format(args) == 0 ? -1 : CLI_EXIT_USAGE;
}

static int parse_args(int argc, char **argv, struct cli_options *opts, struct dlq_args *args)
{
    static const struct option longopts[] = {CLI_COMMON_LONGOPTS,
                                             {"partition", required_argument, NULL, 'P'},
                                             {"limit", required_argument, NULL, 'l'},
                                             {"format", required_argument, NULL, 'f'},
                                             {NULL, 0, NULL, 0}};
    int opt;

    memset(args, 0, sizeof *args);
    args->partition = -1;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "P:l:f:", longopts, NULL)) !=
           -1) {
        switch (opt) {
        case 'h':
            print_help(stdout);
            return CLI_EXIT_OK;
        case 'P':
            if (cli_parse_long("--partition", optarg, 0, 65535, &args->partition) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'l':
            if (cli_parse_long("--limit", optarg, 1, DLQ_MAX_LIMIT, &args->limit) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'f':
            args->format = optarg;
            break;
        default:
            if (cli_options_apply(opts, opt, optarg) == 1)
                break;
            cli_error("run 'hivent dlq --help' for the options");
            return CLI_EXIT_USAGE;
        }
    }
    return parse_positionals(argc, argv, args);
}

static int build_path(const struct dlq_args *args, char *path, size_t size)
{
    static const char *const endpoints[] = {"/admin/dlq", "/admin/dlq/replay",
                                            "/admin/dlq/purge"};
    char *service = cli_http_escape(args->service);
    if (!service) {
        cli_error("out of memory");
        return -1;
    }
    int n = snprintf(path, size, "%s?service=%s", endpoints[args->action], service);
    free(service);
    if (args->partition >= 0 && n > 0 && (size_t)n < size)
        n += snprintf(path + n, size - (size_t)n, "&partition=%ld", args->partition);
    if (args->limit > 0 && n > 0 && (size_t)n < size)
        n += snprintf(path + n, size - (size_t)n, "&limit=%ld", args->limit);
    if (n < 0 || (size_t)n >= size) {
        cli_error("SERVICE is too long: the request path exceeds %zu bytes", size - 1);
        return -1;
    }
    return 0;
}

static void print_pretty_entry(json_t *entry)
{
    json_t *event = json_object_get(entry, "event");
    json_t *meta = json_object_get(event, "meta");
    const char *reason = json_string_value(json_object_get(entry, "reason"));
    const char *name = json_string_value(json_object_get(event, "name"));
    const char *uuid = json_string_value(json_object_get(meta, "uuid"));

    printf("%s #%" JSON_INTEGER_FORMAT "  %s  version %" JSON_INTEGER_FORMAT "\n",
           json_string_value(json_object_get(entry, "queue")) ?: "?",
           json_integer_value(json_object_get(entry, "id")), name ? name : "?",
           json_integer_value(json_object_get(meta, "version")));
    if (uuid)
        printf("  uuid    %s\n", uuid);
    printf("  reason  %s\n", reason && reason[0] ? reason : "(none given)");
    char *payload =
        json_dumps(json_object_get(event, "payload"), JSON_COMPACT | JSON_ENCODE_ANY);
    if (payload)
        printf("  payload %s\n", payload);
    free(payload);
}

/* Prints one entry in @format.  Returns 0, or -1 when it cannot be written. */
static int print_entry(json_t *entry, const char *format)
{
    if (strcmp(format, "pretty") == 0) {
        print_pretty_entry(entry);
        return 0;
    }
    json_t *what = strcmp(format, "events") == 0 ? json_object_get(entry, "event") : entry;
    char *text = json_dumps(what, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        return -1;
    puts(text);
    free(text);
    return 0;
}

static int print_list(const struct dlq_args *args, const struct cli_http_response *resp)
{
    json_error_t jerr;
    json_t *root = json_loadb(resp->body, resp->size, 0, &jerr);
    json_t *events = json_object_get(root, "events");
    if (!json_is_array(events)) {
        cli_error("unexpected response to dlq list: %s",
                  root ? "no \"events\" array" : jerr.text);
        json_decref(root);
        return CLI_EXIT_FAILED;
    }
    size_t i;
    json_t *entry;
    int rc = CLI_EXIT_OK;
    json_array_foreach(events, i, entry)
    {
        if (!json_is_object(entry) || !json_is_object(json_object_get(entry, "event"))) {
            cli_error("unexpected dead letter %zu in the response: not an object "
                      "with an \"event\"",
                      i);
            rc = CLI_EXIT_FAILED;
            continue;
        }
        if (print_entry(entry, args->format) != 0)
            rc = CLI_EXIT_FAILED;
    }
    if (strcmp(args->format, "pretty") == 0)
        printf("%zu dead letters of %s\n", json_array_size(events), args->service);
    json_decref(root);
    if (fflush(stdout) != 0) {
        cli_error("writing to standard output failed");
        rc = CLI_EXIT_FAILED;
    }
    return rc;
}

static int print_count(const struct dlq_args *args, const struct cli_http_response *resp)
{
    const char *field = args->action == DLQ_REPLAY ? "replayed" : "purged";
    json_t *root = json_loadb(resp->body, resp->size, 0, NULL);
    json_t *count = json_object_get(root, field);
    if (!json_is_integer(count)) {
        cli_error("unexpected response to dlq %s: no integer \"%s\"",
                  args->action == DLQ_REPLAY ? "replay" : "purge", field);
        json_decref(root);
        return CLI_EXIT_FAILED;
    }
    if (strcmp(args->format, "json") == 0) {
        printf("{\"%s\":%" JSON_INTEGER_FORMAT "}\n", field, json_integer_value(count));
    } else {
        printf("%s %" JSON_INTEGER_FORMAT " dead letters of %s", field,
               json_integer_value(count), args->service);
        if (args->partition >= 0)
            printf(" partition %ld", args->partition);
        puts("");
    }
    json_decref(root);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILED;
}

static int run_action(const struct dlq_args *args, struct cli_options *opts)
{
    struct cli_config cfg;
    struct cli_http http;
    struct cli_http_response resp;
    char path[1024], what[64];

    if (build_path(args, path, sizeof path) != 0)
        return CLI_EXIT_USAGE;
    int rc = cli_config_load(&cfg, opts);
    if (rc != CLI_EXIT_OK)
        return rc;
    rc = cli_http_init(&http, &cfg, opts);
    if (rc == CLI_EXIT_OK) {
        if (!cfg.admin_key)
            cli_info(opts, 1, "no admin key given; sending the request without one");
        rc = cli_http_request(&http, args->action == DLQ_LIST ? "GET" : "POST", path, &resp);
    }
    if (rc == CLI_EXIT_OK) {
        static const char *const names[] = {"list", "replay", "purge"};
        snprintf(what, sizeof what, "dlq %s", names[args->action]);
        if (resp.status < 200 || resp.status > 299)
            rc = cli_http_fail(&http, what, &resp);
        else if (args->action == DLQ_LIST)
            rc = print_list(args, &resp);
        else
            rc = print_count(args, &resp);
        free(resp.body);
    }
    cli_config_free(&cfg);
    return rc;
}

int cli_cmd_dlq(int argc, char **argv, struct cli_options *opts)
{
    struct dlq_args args;
    int rc = parse_args(argc, argv, opts, &args);
    if (rc >= 0)
        return rc;
    return run_action(&args, opts);
}
