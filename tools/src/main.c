/* hivent: command-line client for the Hivent event bus. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

const char *cli_program = "hivent";

static const char usage_text[] =
    "Usage: hivent [OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "Commands:\n"
    "  emit NAME --version N      emit one event and print the published event\n"
    "  replay FILE                emit the events of a JSON file\n"
    "  consume TOPIC --name SERVICE --partitions N\n"
    "                             print consumed events\n"
    "  dlq list|replay|purge SERVICE\n"
    "                             inspect, replay or delete dead letters\n"
    "  status                     print the server's health and metrics\n"
    "  help [COMMAND]             print this text or a command's help\n"
    "\n"
    "Run 'hivent COMMAND --help' for the options of a command.\n"
    "\n";

static const char exit_text[] =
    "\n"
    "Exit status: 0 success, 1 some events failed or the server is not ok,\n"
    "2 usage or input error, 3 connection or authentication failure,\n"
    "4 request rejected by the server, 5 timed out.\n";

static void print_usage(FILE *out)
{
    fputs(usage_text, out);
    fputs(cli_common_help, out);
    fputs(exit_text, out);
}

struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv, struct cli_options *opts);
};

static const struct subcommand subcommands[] = {
    {"emit", cli_cmd_emit}, {"replay", cli_cmd_replay}, {"consume", cli_cmd_consume},
    {"dlq", cli_cmd_dlq},   {"status", cli_cmd_status},
};

static const struct subcommand *find_subcommand(const char *name)
{
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++) {
        if (strcmp(subcommands[i].name, name) == 0)
            return &subcommands[i];
    }
    return NULL;
}

/* Runs "hivent help [COMMAND]" as "hivent COMMAND --help". */
static int run_help(int argc, char **argv, struct cli_options *opts)
{
    if (argc < 2) {
        print_usage(stdout);
        return CLI_EXIT_OK;
    }
    const struct subcommand *cmd = find_subcommand(argv[1]);
    if (!cmd) {
        cli_error("unknown command '%s'; run 'hivent --help' for the list", argv[1]);
        return CLI_EXIT_USAGE;
    }
    char prog[64];
    char help_flag[] = "--help";
    snprintf(prog, sizeof prog, "hivent %s", cmd->name);
    char *help_argv[] = {prog, help_flag, NULL};
    return cmd->run(2, help_argv, opts);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS, {"version", no_argument, NULL, 'V'}, {NULL, 0, NULL, 0}};
    struct cli_options opts;
    int opt;

    /* A closed stdout (hivent consume | head) must surface as a write
     * error that the subcommand handles, not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    cli_options_init(&opts);

    /* "+" stops at the command name; its options are parsed by the command. */
    while ((opt = getopt_long(argc, argv, "+" CLI_COMMON_SHORTOPTS "V", longopts, NULL)) !=
           -1) {
        if (opt == 'h') {
            print_usage(stdout);
            return CLI_EXIT_OK;
        }
        if (opt == 'V') {
            printf("hivent %s (libhivent %s)\n", HIVENT_VERSION_STR, hivent_version_str());
            return CLI_EXIT_OK;
        }
        int applied = cli_options_apply(&opts, opt, optarg);
        if (applied < 0)
            return CLI_EXIT_USAGE;
        if (applied == 0) {
            cli_error("run 'hivent --help' for the list of options");
            return CLI_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        print_usage(stderr);
        cli_error("missing command; run 'hivent --help' for the list");
        return CLI_EXIT_USAGE;
    }
    if (hivent_version_check(HIVENT_VERSION) != HIVENT_OK) {
        cli_error("libhivent %s cannot serve this hivent, built against %s; "
                  "install matching versions",
                  hivent_version_str(), HIVENT_VERSION_STR);
        return CLI_EXIT_USAGE;
    }

    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    optind = 0; /* 0 makes glibc getopt reinitialise for the subcommand. */
    if (strcmp(sub_argv[0], "help") == 0)
        return run_help(sub_argc, sub_argv, &opts);
    const struct subcommand *cmd = find_subcommand(sub_argv[0]);
    if (!cmd) {
        cli_error("unknown command '%s'; run 'hivent --help' for the list", sub_argv[0]);
        return CLI_EXIT_USAGE;
    }
    /* getopt prefixes its messages with argv[0]. */
    char prog[64];
    snprintf(prog, sizeof prog, "hivent %s", cmd->name);
    sub_argv[0] = prog;
    return cmd->run(sub_argc, sub_argv, &opts);
}
