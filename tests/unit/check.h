/*
 * Minimal assertion helpers for the C tests.  A failed check prints the
 * file, line, expression and values, counts the failure and lets the test
 * go on, so one run lists every broken condition.  CHECK_REQUIRE stops the
 * current test function when later checks would dereference bad state.
 */
#ifndef HV_TEST_CHECK_H
#define HV_TEST_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Exit status that CTest treats as "skipped" (SKIP_RETURN_CODE). */
#define TEST_SKIP_CODE 77

static int check_failures;
static int check_count;
static const char *check_current = "";

#define CHECK_FAIL_AT(file, line, ...)                                            \
    do {                                                                          \
        check_failures++;                                                         \
        fprintf(stderr, "%s:%d: [%s] ", file, line, check_current);              \
        fprintf(stderr, __VA_ARGS__);                                             \
        fputc('\n', stderr);                                                      \
    } while (0)

#define CHECK(cond)                                                               \
    do {                                                                          \
        check_count++;                                                            \
        if (!(cond))                                                              \
            CHECK_FAIL_AT(__FILE__, __LINE__, "check failed: %s", #cond);         \
    } while (0)

#define CHECK_MSG(cond, ...)                                                      \
    do {                                                                          \
        check_count++;                                                            \
        if (!(cond)) {                                                            \
            CHECK_FAIL_AT(__FILE__, __LINE__, "check failed: %s", #cond);         \
            fprintf(stderr, "    ");                                              \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
        }                                                                         \
    } while (0)

#define CHECK_INT(a, b)                                                           \
    do {                                                                          \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);           \
        check_count++;                                                            \
        if (check_a_ != check_b_)                                                 \
            CHECK_FAIL_AT(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b,   \
                          check_a_, check_b_);                                    \
    } while (0)

#define CHECK_STR(a, b)                                                           \
    do {                                                                          \
        const char *check_a_ = (a), *check_b_ = (b);                              \
        check_count++;                                                            \
        if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_) != 0)            \
            CHECK_FAIL_AT(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a,   \
                          #b, check_a_ ? check_a_ : "(null)",                     \
                          check_b_ ? check_b_ : "(null)");                        \
    } while (0)

/* Checks that string @hay contains @needle. */
#define CHECK_CONTAINS(hay, needle)                                               \
    do {                                                                          \
        const char *check_h_ = (hay), *check_n_ = (needle);                       \
        check_count++;                                                            \
        if (!check_h_ || !strstr(check_h_, check_n_))                             \
            CHECK_FAIL_AT(__FILE__, __LINE__, "\"%s\" does not contain \"%s\"",   \
                          check_h_ ? check_h_ : "(null)", check_n_);              \
    } while (0)

#define CHECK_REQUIRE(cond)                                                       \
    do {                                                                          \
        check_count++;                                                            \
        if (!(cond)) {                                                            \
            CHECK_FAIL_AT(__FILE__, __LINE__, "required: %s; test stopped",       \
                          #cond);                                                 \
            return;                                                               \
        }                                                                         \
    } while (0)

/* Runs one test function and names it in failure messages. */
#define RUN_TEST(fn)                                                              \
    do {                                                                          \
        int check_before_ = check_failures;                                       \
        check_current = #fn;                                                      \
        fn();                                                                     \
        fprintf(stderr, "%s %s\n",                                                \
                check_failures == check_before_ ? "ok  " : "FAIL", #fn);          \
    } while (0)

/* Prints the summary; returns the process exit status. */
static inline int check_summary(void)
{
    fprintf(stderr, "%d checks, %d failed\n", check_count, check_failures);
    return check_failures ? 1 : 0;
}

#endif
