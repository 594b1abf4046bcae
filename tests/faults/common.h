/*
 * Shared helpers of the fault programs: clocks, configuration, payloads
 * and line output that survives kill -9 of the writer.
 */
#ifndef HV_FAULTS_COMMON_H
#define HV_FAULTS_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "hivent/hivent.h"

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t mono_ms(void);
/* Microseconds of CLOCK_REALTIME, comparable between processes. */
int64_t wall_us(void);
void sleep_ms(int ms);

/* Sets @key to @value or exits with status 2 and the library's message. */
void conf_put(hivent_conf_t *conf, const char *key, const char *value);
/* A configuration for 127.0.0.1:@port that reconnects forever with a
 * short backoff, heartbeats every @heartbeat_ms and logs warnings. */
hivent_conf_t *fault_conf(int port, int heartbeat_ms);

/* Packs {"seq": @seq, "pad": "x" * @pad} into @buf; returns the size or 0
 * when @cap is too small. */
size_t pack_payload(unsigned char *buf, size_t cap, uint32_t seq, size_t pad);

/* Opens @path for appending (created, truncated) or exits with status 2. */
int open_out(const char *path);
/* Writes one formatted line with a single write(2), so a line written
 * before kill -9 is complete in the file. */
void out_line(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Returns the integer value of option @name in argv ("--name VALUE"), or
 * @def when it is absent. */
long opt_long(int argc, char **argv, const char *name, long def);
/* Returns the string value of option @name, or @def. */
const char *opt_str(int argc, char **argv, const char *name, const char *def);

/* Set by SIGTERM and SIGINT once install_stop_handler() ran. */
extern volatile int stop_requested;
void install_stop_handler(void);

int cmd_produce(int argc, char **argv);
int cmd_consume(int argc, char **argv);
int cmd_failfast(int argc, char **argv);
int cmd_destroy(int argc, char **argv);

#endif
