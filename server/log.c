#include "log.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include <libwebsockets.h>

static int log_level = HVD_LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {
    "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug"
};

int hvd_log_parse_level(const char *s)
{
    if (!s || !*s)
        return -1;
    if (isdigit((unsigned char)s[0]) && s[1] == '\0')
        return s[0] - '0' <= 7 ? s[0] - '0' : -1;
    for (int i = 0; i < 8; i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    if (strcasecmp(s, "err") == 0)
        return HVD_LOG_ERR;
    if (strcasecmp(s, "warn") == 0)
        return HVD_LOG_WARNING;
    return -1;
}

void hvd_log_set_level(int level)
{
    log_level = level;
}

int hvd_log_enabled(int level)
{
    return level <= log_level;
}

void hvd_log(int level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    if (level < 0)
        level = 0;
    if (level > 7)
        level = 7;

    struct timeval tv;
    struct tm tm;
    char stamp[32];
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);

    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "%s.%03ldZ %s %s\n", stamp, (long)(tv.tv_usec / 1000),
            level_names[level], line);
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
}

static void lws_log_emit(int lws_level, const char *line)
{
    int level = lws_level == LLL_ERR ? HVD_LOG_ERR : HVD_LOG_WARNING;
    size_t len = strlen(line);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    hvd_log(level, "lws: %.*s", (int)len, line);
}

void hvd_log_route_lws(void)
{
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
}
