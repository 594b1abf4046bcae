/*
 * Helpers shared by the benchmark programs: clocks, percentiles, payloads
 * of an exact MessagePack size, option parsing and result lines.
 *
 * Every program prints its result as one line starting with "RESULT"
 * followed by key=value pairs, which bench/runner.py parses.
 */
#ifndef HVBENCH_UTIL_H
#define HVBENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic time in nanoseconds. */
uint64_t hvb_now_ns(void);

/* Sleeps until the monotonic clock reaches @deadline_ns. */
void hvb_sleep_until(uint64_t deadline_ns);

/*
 * Builds a MessagePack map {"data": STR} of exactly @size bytes (at least
 * 8) whose string is pseudo-random lowercase text, so gzip compresses it
 * about as well as typical JSON-ish text.  Free with free().  Returns NULL
 * when @size is too small or out of memory.
 */
unsigned char *hvb_payload_new(size_t size, uint32_t seed);

/* Sorts @values and returns the value at quantile @q (0..1). */
double hvb_quantile(double *values, size_t count, double q);

/* Resident set size of process @pid (0: this process) in KiB, or -1. */
long hvb_rss_kib(int pid);

/* Option parsing: returns the value of "--NAME VALUE" or @fallback. */
const char *hvb_opt_str(int argc, char **argv, const char *name, const char *fallback);
long hvb_opt_long(int argc, char **argv, const char *name, long fallback);
int hvb_opt_flag(int argc, char **argv, const char *name);

#endif
