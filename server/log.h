/* Leveled logging to stderr for hiventd.  Levels follow syslog numbering. */
#ifndef HVD_LOG_H
#define HVD_LOG_H

enum {
    HVD_LOG_ERR = 3,
    HVD_LOG_WARNING = 4,
    HVD_LOG_NOTICE = 5,
    HVD_LOG_INFO = 6,
    HVD_LOG_DEBUG = 7
};

/* Parses "debug", "info", "notice", "warning", "error" or a digit 0-7;
 * returns the level or -1. */
int hvd_log_parse_level(const char *s);
/* Sets the most verbose level written; messages above it are dropped. */
void hvd_log_set_level(int level);
int hvd_log_enabled(int level);
/* Writes one line "TIME LEVEL message" to stderr. [any thread] */
void hvd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Routes libwebsockets' own warnings and errors through hvd_log(). */
void hvd_log_route_lws(void);

#define hvd_err(...) hvd_log(HVD_LOG_ERR, __VA_ARGS__)
#define hvd_warn(...) hvd_log(HVD_LOG_WARNING, __VA_ARGS__)
#define hvd_notice(...) hvd_log(HVD_LOG_NOTICE, __VA_ARGS__)
#define hvd_info(...) hvd_log(HVD_LOG_INFO, __VA_ARGS__)
#define hvd_debug(...)                                                       \
    do {                                                                     \
        if (hvd_log_enabled(HVD_LOG_DEBUG))                                  \
            hvd_log(HVD_LOG_DEBUG, __VA_ARGS__);                             \
    } while (0)

#endif
