/*
 * faultc: the libhivent side of the fault runs in tests/faults.  Each
 * subcommand drives one client or consumer against a real hiventd and
 * writes what it saw as lines the driver (driver.py) checks.
 */
#include <stdio.h>
#include <string.h>

#include "common.h"

static int usage(void)
{
    fprintf(stderr,
            "usage: faultc produce --port P --count N --out FILE [--keys K] [--pad BYTES]\n"
            "                      [--window N] [--interval-ms MS] [--heartbeat MS]\n"
            "                      [--name NAME] [--flush-ms MS]\n"
            "       faultc consume --port P --service S --out FILE [--topic T]\n"
            "                      [--partitions N] [--prefetch N] [--sleep-ms MS]\n"
            "                      [--heartbeat MS] [--name NAME]\n"
            "       faultc failfast --port P   (reads one line on stdin once connected)\n"
            "       faultc destroy --port P --hiventd-pid PID --closed-port C\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (hivent_version_check(HIVENT_VERSION) != HIVENT_OK) {
        fprintf(stderr, "libhivent %s does not match the header %s\n", hivent_version_str(),
                HIVENT_VERSION_STR);
        return 2;
    }
    if (argc < 2)
        return usage();
    if (strcmp(argv[1], "produce") == 0)
        return cmd_produce(argc - 1, argv + 1);
    if (strcmp(argv[1], "consume") == 0)
        return cmd_consume(argc - 1, argv + 1);
    if (strcmp(argv[1], "failfast") == 0)
        return cmd_failfast(argc - 1, argv + 1);
    if (strcmp(argv[1], "destroy") == 0)
        return cmd_destroy(argc - 1, argv + 1);
    return usage();
}
