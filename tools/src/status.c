/* hivent status: print the server's health and metrics. */
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "http.h"

static const char status_help[] =
    "Usage: hivent status [OPTIONS]\n"
    "\n"
    "Print the server's health (GET /health) and its metrics (GET /metrics,\n"
    "Prometheus text; histogram buckets are left out unless --all is given).\n"
    "Exit status 1 means the server answered but its status is not \"ok\".\n"
    "\n"
    "Options:\n"
    "  -f, --format FORMAT  pretty or json (one object with \"server\",\n"
    "                       \"health\" and \"metrics\") (default pretty)\n"
    "  -a, --all            include histogram buckets\n"
    "\n";

struct status_args {
    const char *format;
    int all;
};

static void print_help(FILE *out)
{
    fputs(status_help, out);
    fputs(cli_common_help, out);
}

static int parse_args(int argc, char **argv, struct cli_options *opts, struct status_args *args)
{
    static const struct option longopts[] = {CLI_COMMON_LONGOPTS,
                                             {"format", required_argument, NULL, 'f'},
                                             {"all", no_argument, NULL, 'a'},
                                             {NULL, 0, NULL, 0}};
    int opt;

    args->format = "pretty";
    args->all = 0;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "f:a", longopts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            print_help(stdout);
            return CLI_EXIT_OK;
        case 'f':
            args->format = optarg;
            break;
        case 'a':
            args->all = 1;
            break;
        default:
            if (cli_options_apply(opts, opt, optarg) == 1)
                break;
            cli_error("run 'hivent status --help' for the options");
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("unexpected argument '%s'; status takes no arguments", argv[optind]);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(args->format, "pretty") != 0 && strcmp(args->format, "json") != 0) {
        cli_error("invalid --format '%s': expected pretty or json", args->format);
        return CLI_EXIT_USAGE;
    }
    return -1;
}

/* Splits one Prometheus sample line into its series and value.  Returns 0,
 * or -1 for comments, blank lines and malformed lines. */
static int parse_sample(char *line, char **series, double *value)
{
    while (*line == ' ' || *line == '\t')
        line++;
    if (*line == '\0' || *line == '#')
        return -1;
    /* Label values may contain spaces, so the series ends after the '}'. */
    char *end = strchr(line, '{');
    char *space = strpbrk(line, " \t");
    if (end && (!space || end < space)) {
        end = strchr(end, '}');
        if (!end)
            return -1;
        end++;
    } else {
        end = space;
    }
    if (!end || (*end != ' ' && *end != '\t'))
        return -1;
    *end++ = '\0';
    char *stop;
    *value = strtod(end, &stop);
    if (stop == end)
        return -1;
    *series = line;
    return 0;
}

static int is_bucket(const char *series)
{
    const char *brace = strchr(series, '{');
    size_t len = brace ? (size_t)(brace - series) : strlen(series);
    return len > 7 && strncmp(series + len - 7, "_bucket", 7) == 0;
}

/* Collects the samples of the metrics text into a JSON object. */
static json_t *collect_metrics(char *text, int all)
{
    json_t *metrics = json_object();
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && metrics;
         line = strtok_r(NULL, "\n", &save)) {
        char *series;
        double value;
        if (parse_sample(line, &series, &value) != 0 || (!all && is_bucket(series)))
            continue;
        json_object_set_new(metrics, series, json_real(value));
    }
    return metrics;
}

static void print_pretty(const char *server, json_t *health, json_t *metrics)
{
    const char *key;
    json_t *value;

    printf("server   %s\n", server);
    json_object_foreach(health, key, value)
    {
        char *text = json_is_string(value) ? strdup(json_string_value(value))
                                           : json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
        printf("%-8s %s\n", key, text ? text : "?");
        free(text);
    }
    if (!metrics)
        return;
    printf("\nmetrics:\n");
    json_object_foreach(metrics, key, value)
    {
        double v = json_real_value(value);
        if (v == (double)(long long)v && v < 1e15 && v > -1e15)
            printf("  %-60s %lld\n", key, (long long)v);
        else
            printf("  %-60s %g\n", key, v);
    }
}

static int fetch_metrics(const struct cli_http *http, const struct status_args *args,
                         json_t **metrics)
{
    struct cli_http_response resp;
    int rc = cli_http_request(http, "GET", "/metrics", &resp);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (resp.status >= 200 && resp.status <= 299)
        *metrics = collect_metrics(resp.body, args->all);
    else
        cli_warn("GET /metrics answered HTTP %ld; showing health only", resp.status);
    free(resp.body);
    return CLI_EXIT_OK;
}

static int show_status(const struct cli_http *http, const struct status_args *args)
{
    struct cli_http_response resp;
    json_error_t jerr;
    json_t *metrics = NULL;

    int rc = cli_http_request(http, "GET", "/health", &resp);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (resp.status < 200 || resp.status > 299) {
        rc = cli_http_fail(http, "GET /health", &resp);
        free(resp.body);
        return rc;
    }
    json_t *health = json_loadb(resp.body, resp.size, 0, &jerr);
    free(resp.body);
    if (!json_is_object(health)) {
        cli_error("unexpected response to GET /health: %s",
                  health ? "not a JSON object" : jerr.text);
        json_decref(health);
        return CLI_EXIT_FAILED;
    }
    rc = fetch_metrics(http, args, &metrics);
    if (rc == CLI_EXIT_OK) {
        if (strcmp(args->format, "json") == 0) {
            json_t *all = json_pack("{s:s, s:O, s:o?}", "server", http->base_url, "health",
                                    health, "metrics", metrics);
            char *text = all ? json_dumps(all, JSON_COMPACT) : NULL;
            if (text)
                puts(text);
            free(text);
            json_decref(all);
        } else {
            print_pretty(http->base_url, health, metrics);
            json_decref(metrics);
        }
        const char *status = json_string_value(json_object_get(health, "status"));
        if (!status || strcmp(status, "ok") != 0) {
            cli_error("server %s reports status '%s'", http->base_url,
                      status ? status : "(missing)");
            rc = CLI_EXIT_FAILED;
        }
    }
    json_decref(health);
    if (fflush(stdout) != 0) {
        cli_error("writing to standard output failed");
        rc = CLI_EXIT_FAILED;
    }
    return rc;
}

int cli_cmd_status(int argc, char **argv, struct cli_options *opts)
{
    struct status_args args;
    struct cli_config cfg;
    struct cli_http http;

    int rc = parse_args(argc, argv, opts, &args);
    if (rc >= 0)
        return rc;
    rc = cli_config_load(&cfg, opts);
    if (rc != CLI_EXIT_OK)
        return rc;
    rc = cli_http_init(&http, &cfg, opts);
    if (rc == CLI_EXIT_OK)
        rc = show_status(&http, &args);
    cli_config_free(&cfg);
    return rc;
}
