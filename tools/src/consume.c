/* hivent consume: print the events of a topic as a consumer of a service. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define NEXT_WAIT_MS 200
#define CLOSE_TIMEOUT_MS 5000

static const char consume_help[] =
    "Usage: hivent consume TOPIC --name SERVICE --partitions N [OPTIONS]\n"
    "\n"
    "Join TOPIC (an event name, or '*' for every event) as an instance of\n"
    "SERVICE and print each delivered event to standard output, then\n"
    "acknowledge it.  Ctrl-C (SIGINT) or SIGTERM leaves the channel; events\n"
    "not yet printed go to the service's other instances.  Connection\n"
    "changes are printed with -v.\n"
    "\n"
    "Events written into a pipe's buffer count as printed, so a reader that\n"
    "exits early (| head -1) loses the events left in the buffer.  Use\n"
    "--count N to take N events.\n"
    "\n"
    "Options:\n"
    "  -s, --name SERVICE     consuming service (group) name (required)\n"
    "  -P, --partitions N     partition count of the service, 1 to 4096\n"
    "                         (required; must match the count the service\n"
    "                         already has on the server)\n"
    "  -f, --format FORMAT    json: one JSON object per line, in the replay\n"
    "                         input format; pretty: readable blocks\n"
    "                         (default json)\n"
    "  -c, --count N          exit after printing N events (default: run\n"
    "                         until interrupted)\n"
    "      --idle-timeout MS  exit after MS milliseconds without an event\n"
    "                         (default 0: wait forever)\n"
    "      --instance NAME    instance name sent to the server\n"
    "                         (consumer.name, default HOST:PID)\n"
    "      --event-version N  receive only events of version N\n"
    "                         (consumer.version, default 0: all versions)\n"
    "      --prefetch N       unacknowledged events the server may send ahead\n"
    "                         (consumer.prefetch, default 100)\n"
    "      --no-ack           do not ask for acknowledgements: the server\n"
    "                         counts an event done once it is sent\n"
    "\n"
    "Exit status 5 means --idle-timeout passed before --count events came.\n"
    "\n";

enum {
    OPT_IDLE_TIMEOUT = CLI_OPT_FIRST_SUBCOMMAND,
    OPT_INSTANCE,
    OPT_EVENT_VERSION,
    OPT_PREFETCH,
    OPT_NO_ACK
};

struct consume_args {
    const char *topic;
    const char *service;
    const char *format;
    const char *instance;
    const char *event_version;
    const char *prefetch;
    long partitions;
    long count;           /* 0: no limit */
    long idle_timeout_ms; /* 0: none */
    int no_ack;
};

struct consume_state {
    const struct consume_args *args;
    const struct cli_options *opts;
    hivent_consumer_t *consumer;
    long printed;
    int exit_status; /* set once the loop must stop */
    int done;
    int64_t last_event_ms;
};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

static void print_help(FILE *out)
{
    fputs(consume_help, out);
    fputs(cli_common_help, out);
}

static int check_args(struct consume_args *args, int argc, char **argv)
{
    if (optind >= argc) {
        cli_error("missing TOPIC; usage: hivent consume TOPIC --name SERVICE "
                  "--partitions N ('*' consumes every event)");
        return CLI_EXIT_USAGE;
    }
    if (optind + 1 < argc) {
        cli_error("unexpected argument '%s'; give one TOPIC", argv[optind + 1]);
        return CLI_EXIT_USAGE;
    }
    args->topic = argv[optind];
    if (!args->service || !args->service[0]) {
        cli_error("missing --name SERVICE: the consuming service's name");
        return CLI_EXIT_USAGE;
    }
    if (args->partitions == 0) {
        cli_error("missing --partitions N: the service's partition count");
        return CLI_EXIT_USAGE;
    }
    if (!cli_event_format_valid(args->format)) {
        cli_error("invalid --format '%s': expected json or pretty", args->format);
        return CLI_EXIT_USAGE;
    }
    return -1;
}

static int parse_args(int argc, char **argv, struct cli_options *opts,
                      struct consume_args *args)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"name", required_argument, NULL, 's'},
        {"partitions", required_argument, NULL, 'P'},
        {"format", required_argument, NULL, 'f'},
        {"count", required_argument, NULL, 'c'},
        {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
        {"instance", required_argument, NULL, OPT_INSTANCE},
        {"event-version", required_argument, NULL, OPT_EVENT_VERSION},
        {"prefetch", required_argument, NULL, OPT_PREFETCH},
        {"no-ack", no_argument, NULL, OPT_NO_ACK},
        {NULL, 0, NULL, 0}};
    int opt, rc = 0;

    memset(args, 0, sizeof *args);
    args->format = "json";
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "s:P:f:c:", longopts, NULL)) !=
               -1 &&
           rc == 0) {
        switch (opt) {
        case 'h':
            print_help(stdout);
            return CLI_EXIT_OK;
        case 's':
            args->service = optarg;
            break;
        case 'P':
            rc = cli_parse_long("--partitions", optarg, 1, 4096, &args->partitions);
            break;
        case 'f':
            args->format = optarg;
            break;
        case 'c':
            rc = cli_parse_long("--count", optarg, 1, LONG_MAX, &args->count);
            break;
        case OPT_IDLE_TIMEOUT:
            rc = cli_parse_long("--idle-timeout", optarg, 0, INT_MAX, &args->idle_timeout_ms);
            break;
        case OPT_INSTANCE:
            args->instance = optarg;
            break;
        case OPT_EVENT_VERSION:
            args->event_version = optarg;
            break;
        case OPT_PREFETCH:
            args->prefetch = optarg;
            break;
        case OPT_NO_ACK:
            args->no_ack = 1;
            break;
        default:
            if (cli_options_apply(opts, opt, optarg) == 1)
                break;
            cli_error("run 'hivent consume --help' for the options");
            return CLI_EXIT_USAGE;
        }
    }
    if (rc != 0)
        return CLI_EXIT_USAGE;
    return check_args(args, argc, argv);
}

/* Applies the consumer options, which win over every other source. */
static int apply_consumer_conf(hivent_conf_t *conf, const struct consume_args *args)
{
    const char *pairs[][2] = {
        {"consumer.name", args->instance},
        {"consumer.version", args->event_version},
        {"consumer.prefetch", args->prefetch},
        {"consumer.ack", args->no_ack ? "false" : NULL},
    };
    const char *flags[] = {"--instance", "--event-version", "--prefetch", "--no-ack"};
    char errstr[512];

    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        if (pairs[i][1] && hivent_conf_set(conf, pairs[i][0], pairs[i][1], errstr,
                                           sizeof errstr) != HIVENT_OK) {
            cli_error("%s: %s", flags[i], errstr);
            return -1;
        }
    }
    return 0;
}

static void stop_with(struct consume_state *st, int status)
{
    if (!st->done) {
        st->done = 1;
        st->exit_status = status;
    }
}

static void fail_with(struct consume_state *st, hivent_err_t err, const char *what)
{
    const char *hint = cli_err_hint(err);
    if (err == HIVENT_ERR_JOIN_REJECTED)
        cli_error("the server rejected joining event:%s as %s with %ld partitions: "
                  "%s",
                  st->args->topic, st->args->service, st->args->partitions, what);
    else
        cli_error("consumer of event:%s as %s failed: %s (%s)", st->args->topic,
                  st->args->service, what, hivent_err_name(err));
    /* hiventd's reply names its option when the count is over its limit. */
    if (err == HIVENT_ERR_JOIN_REJECTED && what && strstr(what, "--max-partitions"))
        hint = "use fewer --partitions, or raise hiventd's --max-partitions "
               "(at most 4096)";
    else if (err == HIVENT_ERR_JOIN_REJECTED)
        hint = "use the partition count the service already has, or another "
               "--name";
    if (hint[0])
        cli_error("%s", hint);
    stop_with(st, cli_exit_for_err(err));
}

static void handle_event(struct consume_state *st, const hivent_event_t *event)
{
    st->last_event_ms = cli_now_ms();
    /* Acknowledged only after fflush() succeeded, which for a pipe does not
     * mean the reader read it. The first failed write stops the loop. */
    if (cli_print_event(stdout, event, st->args->format) != 0) {
        cli_error("writing to standard output failed (%s); event %s was not "
                  "acknowledged and will be delivered again",
                  strerror(errno),
                  hivent_event_uuid(event) ? hivent_event_uuid(event) : "(no uuid)");
        stop_with(st, CLI_EXIT_FAILED);
        return;
    }
    hivent_err_t err = hivent_consumer_ack(st->consumer, event);
    if (err != HIVENT_OK)
        cli_warn("acknowledging event %s failed: %s",
                 hivent_event_uuid(event) ? hivent_event_uuid(event) : "(no uuid)",
                 hivent_err_str(err));
    st->printed++;
    if (st->args->count > 0 && st->printed >= st->args->count)
        stop_with(st, CLI_EXIT_OK);
}

static void handle_state(struct consume_state *st, const hivent_notice_t *notice)
{
    hivent_err_t reason = hivent_notice_err(notice);
    const char *reason_text = hivent_notice_errstr(notice);
    if (!reason_text[0])
        reason_text = hivent_err_str(reason);

    if (reason == HIVENT_ERR_AUTH || reason == HIVENT_ERR_JOIN_REJECTED) {
        fail_with(st, reason, reason_text);
        return;
    }
    switch (hivent_notice_state(notice)) {
    case HIVENT_STATE_CONNECTED:
        cli_info(st->opts, 1, "connected: consuming event:%s as %s (%ld partitions)",
                 st->args->topic, st->args->service, st->args->partitions);
        break;
    case HIVENT_STATE_BACKOFF:
        cli_info(st->opts, 1, "connection failed (%s); attempt %d, retrying in %d ms",
                 reason_text, hivent_notice_attempt(notice),
                 hivent_notice_next_attempt_ms(notice));
        break;
    case HIVENT_STATE_FAILED:
        fail_with(st, reason != HIVENT_OK ? reason : HIVENT_ERR_FAILED, reason_text);
        break;
    default:
        break;
    }
}

static void handle_notice(struct consume_state *st, const hivent_notice_t *notice)
{
    hivent_err_t err = hivent_notice_err(notice);
    const char *errstr = hivent_notice_errstr(notice);

    switch (hivent_notice_type(notice)) {
    case HIVENT_NOTICE_EVENT:
        if (!st->done)
            handle_event(st, hivent_notice_event(notice));
        break;
    case HIVENT_NOTICE_STATE:
        handle_state(st, notice);
        break;
    case HIVENT_NOTICE_ERROR:
        if (err == HIVENT_ERR_AUTH || err == HIVENT_ERR_JOIN_REJECTED ||
            err == HIVENT_ERR_FAILED)
            fail_with(st, err, errstr[0] ? errstr : hivent_err_str(err));
        else
            cli_warn("%s (%s)", errstr[0] ? errstr : hivent_err_str(err), hivent_err_name(err));
        break;
    case HIVENT_NOTICE_LOG:
        fprintf(stderr, "%s: [%s] %s\n", cli_program, hivent_notice_log_facility(notice),
                hivent_notice_log_message(notice));
        break;
    default:
        break;
    }
}

static void run_loop(struct consume_state *st)
{
    st->last_event_ms = cli_now_ms();
    while (!st->done) {
        if (stop_signal) {
            cli_info(st->opts, 0, "signal %d: leaving event:%s", (int)stop_signal,
                     st->args->topic);
            stop_with(st, CLI_EXIT_OK);
            break;
        }
        hivent_notice_t *notice = hivent_consumer_next(st->consumer, NEXT_WAIT_MS);
        if (notice) {
            handle_notice(st, notice);
            hivent_notice_destroy(notice);
            continue;
        }
        int64_t idle = cli_now_ms() - st->last_event_ms;
        if (st->args->idle_timeout_ms > 0 && idle >= st->args->idle_timeout_ms) {
            int complete = st->args->count == 0;
            cli_info(st->opts, complete ? 1 : 0, "no event for %lld ms; %ld printed",
                     (long long)idle, st->printed);
            stop_with(st, complete ? CLI_EXIT_OK : CLI_EXIT_TIMED_OUT);
        }
    }
}

static int consume(const struct consume_args *args, struct cli_options *opts)
{
    struct cli_config cfg;
    struct consume_state st = {.args = args, .opts = opts};
    char errstr[512];

    int rc = cli_config_load(&cfg, opts);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (apply_consumer_conf(cfg.conf, args) != 0) {
        cli_config_free(&cfg);
        return CLI_EXIT_USAGE;
    }
    st.consumer = hivent_consumer_new(cfg.conf, args->topic, args->service,
                                      (int)args->partitions, errstr, sizeof errstr);
    if (!st.consumer) {
        cli_error("cannot create the consumer: %s", errstr);
        cli_config_free(&cfg);
        return CLI_EXIT_USAGE;
    }
    cfg.conf = NULL; /* owned by the consumer now */
    cli_config_free(&cfg);

    /* SA_RESETHAND: a second Ctrl-C ends the process if closing hangs. */
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESETHAND};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    run_loop(&st);
    hivent_err_t err = hivent_consumer_close(st.consumer, CLOSE_TIMEOUT_MS);
    if (err != HIVENT_OK && st.exit_status == CLI_EXIT_OK)
        cli_warn("leaving event:%s did not complete: %s; unacknowledged events "
                 "are delivered again after the server notices",
                 args->topic, hivent_err_str(err));
    hivent_consumer_destroy(st.consumer);
    return st.exit_status;
}

int cli_cmd_consume(int argc, char **argv, struct cli_options *opts)
{
    struct consume_args args;
    int rc = parse_args(argc, argv, opts, &args);
    if (rc >= 0)
        return rc;
    return consume(&args, opts);
}
