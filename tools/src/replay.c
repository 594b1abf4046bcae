/* hivent replay: emit the events of a file with a bounded window in flight. */
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "progress.h"
#include "records.h"
#include "sender.h"

#define DEFAULT_WINDOW 1000
#define MAX_WINDOW 1000000
#define MAX_LISTED 100
/* Shortest run whose rate the summary prints: the clock counts milliseconds,
 * so below 100 ms the rate could be off by more than 1%. */
#define MIN_RATE_SECONDS 0.1

static const char replay_help[] =
    "Usage: hivent replay [OPTIONS] FILE\n"
    "\n"
    "Emit every event of FILE ('-' reads standard input) and wait for the\n"
    "server to store each one.  FILE holds JSON lines, JSON objects one after\n"
    "another, or one JSON array.  Each event is an object\n"
    "  {\"name\": \"user.created\", \"payload\": {...},\n"
    "   \"meta\": {\"version\": 1, \"cid\": \"...\", \"key\": \"...\"}}\n"
    "where cid and key are optional and other meta fields are ignored, so the\n"
    "output of 'hivent consume' and 'hivent dlq list' can be replayed.\n"
    "The whole file is checked first: if any event is invalid, nothing is\n"
    "sent.  A progress bar is drawn when standard error is a terminal; a\n"
    "summary and the failed events (index, name, reason) follow at the end.\n"
    "\n"
    "Options:\n"
    "  -w, --window N        events in flight at most (default 1000)\n"
    "  -o, --failed-out FILE write the events that failed or were not sent\n"
    "                        as JSON lines to FILE, ready to replay\n"
    "  -n, --dry-run         check FILE and print the number of events\n"
    "      --progress        draw the progress bar even when standard error\n"
    "                        is not a terminal\n"
    "      --no-progress     never draw the progress bar\n"
    "\n"
    "Exit status 1 means some events failed or were not sent; they are\n"
    "listed on standard error.\n"
    "\n";

enum { OPT_PROGRESS = CLI_OPT_FIRST_SUBCOMMAND, OPT_NO_PROGRESS };

struct replay_args {
    const char *path;
    const char *failed_out;
    long window;
    int dry_run;
    int progress; /* 1 on, 0 off, -1 when stderr is a terminal */
};

/* An event awaiting its delivery report. */
struct replay_item {
    struct cli_pending pending;
    size_t index;
    long line;
    size_t start, end;
    char *name;
};

struct replay_failure {
    size_t index;
    long line;
    size_t start, end;
    char *name;
    char *reason;
};

struct replay {
    const struct replay_args *args;
    const char *data;
    size_t size;
    size_t total;     /* valid events in the input */
    size_t submitted; /* events handed to the client or failed there */
    size_t published;
    struct replay_failure *failures;
    size_t failure_count, failure_cap;
    int out_of_memory;
    struct cli_progress progress;
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    interrupted = sig;
}

static void print_help(FILE *out)
{
    fputs(replay_help, out);
    fputs(cli_common_help, out);
}

static int parse_args(int argc, char **argv, struct cli_options *opts, struct replay_args *args)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"window", required_argument, NULL, 'w'},
        {"failed-out", required_argument, NULL, 'o'},
        {"dry-run", no_argument, NULL, 'n'},
        {"progress", no_argument, NULL, OPT_PROGRESS},
        {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
        {NULL, 0, NULL, 0}};
    int opt;

    memset(args, 0, sizeof *args);
    args->window = DEFAULT_WINDOW;
    args->progress = -1;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "w:o:n", longopts, NULL)) !=
           -1) {
        switch (opt) {
        case 'h':
            print_help(stdout);
            return CLI_EXIT_OK;
        case 'w':
            if (cli_parse_long("--window", optarg, 1, MAX_WINDOW, &args->window) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'o':
            args->failed_out = optarg;
            break;
        case 'n':
            args->dry_run = 1;
            break;
        case OPT_PROGRESS:
            args->progress = 1;
            break;
        case OPT_NO_PROGRESS:
            args->progress = 0;
            break;
        default:
            if (cli_options_apply(opts, opt, optarg) == 1)
                break;
            cli_error("run 'hivent replay --help' for the options");
            return CLI_EXIT_USAGE;
        }
    }
    if (optind + 1 != argc) {
        cli_error(optind >= argc ? "missing FILE; usage: hivent replay FILE ('-' "
                                   "reads standard input)"
                                 : "expected one FILE; usage: hivent replay FILE");
        return CLI_EXIT_USAGE;
    }
    args->path = argv[optind];
    if (args->progress < 0)
        args->progress = isatty(STDERR_FILENO) && !opts->quiet;
    return -1;
}

/* Checks every record before anything is sent.  Returns CLI_EXIT_OK with
 * r->total set, or CLI_EXIT_USAGE after listing the invalid records. */
static int validate_input(struct replay *r)
{
    struct cli_record_reader reader;
    struct cli_record rec;
    char err[512];
    size_t invalid = 0, records = 0;
    enum cli_record_status status;

    cli_record_reader_init(&reader, r->data, r->size);
    while ((status = cli_record_next(&reader, &rec, err, sizeof err)) != CLI_RECORD_END) {
        if (status == CLI_RECORD_SYNTAX) {
            cli_error("%s: %s", r->args->path, err);
            cli_error("nothing was sent; fix the input and run replay again");
            return CLI_EXIT_USAGE;
        }
        records++;
        if (status == CLI_RECORD_INVALID && ++invalid <= MAX_LISTED)
            cli_error("%s: record %zu (line %ld): %s", r->args->path, rec.index, rec.line, err);
        cli_record_clear(&rec);
    }
    if (invalid > 0) {
        cli_error("%zu of %zu records are invalid%s; nothing was sent; fix them "
                  "and run replay again",
                  invalid, records, invalid > MAX_LISTED ? " (first 100 listed)" : "");
        return CLI_EXIT_USAGE;
    }
    r->total = records;
    return CLI_EXIT_OK;
}

static void add_failure(struct replay *r, size_t index, long line, size_t start, size_t end,
                        const char *name, const char *reason)
{
    if (r->failure_count == r->failure_cap) {
        size_t cap = r->failure_cap ? r->failure_cap * 2 : 64;
        struct replay_failure *grown = realloc(r->failures, cap * sizeof *grown);
        if (!grown) {
            r->out_of_memory = 1;
            return;
        }
        r->failures = grown;
        r->failure_cap = cap;
    }
    struct replay_failure *f = &r->failures[r->failure_count++];
    f->index = index;
    f->line = line;
    f->start = start;
    f->end = end;
    f->name = strdup(name ? name : "");
    f->reason = strdup(reason ? reason : "");
}

static void on_delivery(void *ctx, struct cli_pending *pending, hivent_err_t err,
                        const char *errstr, const hivent_event_t *event)
{
    struct replay *r = ctx;
    struct replay_item *item =
        (struct replay_item *)((char *)pending - offsetof(struct replay_item, pending));

    if (err == HIVENT_OK) {
        r->published++;
    } else {
        char reason[900];
        snprintf(reason, sizeof reason, "%s (%s)", errstr, hivent_err_name(err));
        add_failure(r, item->index, item->line, item->start, item->end, item->name, reason);
    }
    free(item->name);
    free(item);
}

static void on_tick(void *ctx)
{
    struct replay *r = ctx;
    cli_progress_update(&r->progress, r->published + r->failure_count, r->failure_count, 0);
}

/* Submits one record.  Returns 0, or -1 when the client cannot take more. */
static int submit_record(struct replay *r, struct cli_sender *s, const struct cli_record *rec)
{
    char errstr[768];
    struct replay_item *item = calloc(1, sizeof *item);
    char *name = strdup(rec->name);
    if (!item || !name) {
        free(item);
        free(name);
        add_failure(r, rec->index, rec->line, rec->start, rec->end, rec->name, "out of memory");
        return -1;
    }
    item->index = rec->index;
    item->line = rec->line;
    item->start = rec->start;
    item->end = rec->end;
    item->name = name;

    hivent_err_t err =
        cli_sender_submit(s, &item->pending, rec->name, rec->payload, rec->payload_size,
                          rec->version, rec->cid, rec->key, errstr, sizeof errstr);
    if (err == HIVENT_OK)
        return 0;
    char reason[900];
    snprintf(reason, sizeof reason, "%s (%s)", errstr, hivent_err_name(err));
    add_failure(r, rec->index, rec->line, rec->start, rec->end, rec->name, reason);
    free(item->name);
    free(item);
    return s->fatal != HIVENT_OK || err == HIVENT_ERR_FAILED ? -1 : 0;
}

static void send_all(struct replay *r, struct cli_sender *s)
{
    struct cli_record_reader reader;
    struct cli_record rec;
    char err[512];

    cli_record_reader_init(&reader, r->data, r->size);
    while (!interrupted && cli_record_next(&reader, &rec, err, sizeof err) == CLI_RECORD_OK) {
        int stop = cli_sender_wait(s, (int)r->args->window - 1) != HIVENT_OK;
        if (!stop) {
            r->submitted++;
            stop = submit_record(r, s, &rec) != 0;
        }
        cli_record_clear(&rec);
        on_tick(r);
        if (stop)
            break;
    }
    cli_sender_wait(s, 0);
}

static int compare_failures(const void *a, const void *b)
{
    const struct replay_failure *x = a, *y = b;
    return x->index < y->index ? -1 : x->index > y->index;
}

static void print_summary(const struct replay *r, double seconds)
{
    size_t failed = r->failure_count;
    size_t not_sent = r->total - r->submitted;

    char rate[48] = "";

    if (seconds >= MIN_RATE_SECONDS)
        snprintf(rate, sizeof rate, " (%.0f events/s)", (double)r->published / seconds);
    cli_error("replayed %s: %zu events, %zu published, %zu failed, %zu not sent "
              "in %.3f s%s",
              r->args->path, r->total, r->published, failed, not_sent, seconds, rate);
    if (failed == 0)
        return;
    cli_error("failed events (index, name, reason):");
    for (size_t i = 0; i < failed && i < MAX_LISTED; i++) {
        const struct replay_failure *f = &r->failures[i];
        fprintf(stderr, "  %zu  %s  %s\n", f->index, f->name ? f->name : "",
                f->reason ? f->reason : "");
    }
    if (failed > MAX_LISTED)
        cli_error("%zu more failed events are not listed; write all of them "
                  "with --failed-out FILE",
                  failed - MAX_LISTED);
}

/* Writes the failed events, then the events never sent, as JSON lines. */
static int write_failed_out(const struct replay *r)
{
    const char *path = r->args->failed_out;
    FILE *out = fopen(path, "w");
    if (!out) {
        cli_error("cannot write --failed-out '%s': %m", path);
        return -1;
    }
    size_t written = 0;
    int rc = 0;
    for (size_t i = 0; i < r->failure_count && rc == 0; i++) {
        struct cli_record rec = {.start = r->failures[i].start, .end = r->failures[i].end};
        rc = cli_record_write_line(out, r->data, &rec);
        written++;
    }

    struct cli_record_reader reader;
    struct cli_record rec;
    char err[512];
    cli_record_reader_init(&reader, r->data, r->size);
    while (rc == 0 && cli_record_next(&reader, &rec, err, sizeof err) == CLI_RECORD_OK) {
        if (rec.index >= r->submitted) {
            rc = cli_record_write_line(out, r->data, &rec);
            written++;
        }
        cli_record_clear(&rec);
    }
    if (fclose(out) != 0 || rc != 0) {
        cli_error("cannot write --failed-out '%s': %m", path);
        return -1;
    }
    cli_error("wrote %zu events to %s; replay them with 'hivent replay %s'", written, path,
              path);
    return 0;
}

static int replay_events(struct replay *r, struct cli_options *opts)
{
    struct cli_config cfg;
    struct cli_sender sender;

    int rc = cli_config_load(&cfg, opts);
    if (rc != CLI_EXIT_OK)
        return rc;
    rc = cli_sender_open(&sender, &cfg, opts, on_delivery, on_tick, r);
    cli_config_free(&cfg);
    if (rc != CLI_EXIT_OK)
        return rc;

    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESETHAND};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    cli_progress_init(&r->progress, r->total, r->args->progress);
    send_all(r, &sender);
    cli_sender_close(&sender);
    cli_progress_update(&r->progress, r->published + r->failure_count, r->failure_count, 1);
    cli_progress_finish(&r->progress);

    double seconds = (double)(cli_now_ms() - r->progress.start_ms) / 1000.0;
    if (r->failure_count > 0)
        qsort(r->failures, r->failure_count, sizeof *r->failures, compare_failures);
    print_summary(r, seconds);
    if (r->args->failed_out && (r->failure_count > 0 || r->submitted < r->total))
        write_failed_out(r);

    if (sender.fatal != HIVENT_OK) {
        const char *hint = cli_err_hint(sender.fatal);
        cli_error("replay stopped: %s", sender.fatal_msg);
        if (hint[0])
            cli_error("%s", hint);
        return cli_exit_for_err(sender.fatal);
    }
    if (interrupted) {
        cli_error("replay interrupted by signal %d", (int)interrupted);
        return CLI_EXIT_FAILED;
    }
    if (r->out_of_memory) {
        cli_error("out of memory while recording failed events");
        return CLI_EXIT_FAILED;
    }
    return r->failure_count > 0 ? CLI_EXIT_FAILED : CLI_EXIT_OK;
}

int cli_cmd_replay(int argc, char **argv, struct cli_options *opts)
{
    struct replay_args args;
    int rc = parse_args(argc, argv, opts, &args);
    if (rc >= 0)
        return rc;

    char *data;
    size_t size;
    if (cli_read_all(args.path, &data, &size) != 0)
        return CLI_EXIT_USAGE;
    struct replay r = {.args = &args, .data = data, .size = size};
    rc = validate_input(&r);
    if (rc == CLI_EXIT_OK && args.dry_run) {
        printf("%zu events\n", r.total);
    } else if (rc == CLI_EXIT_OK && r.total == 0) {
        cli_info(opts, 0, "%s holds no events; nothing to replay", args.path);
    } else if (rc == CLI_EXIT_OK) {
        rc = replay_events(&r, opts);
    }
    for (size_t i = 0; i < r.failure_count; i++) {
        free(r.failures[i].name);
        free(r.failures[i].reason);
    }
    free(r.failures);
    free(data);
    return rc;
}
