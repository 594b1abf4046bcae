#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handle.h"

static const char *const level_tags[] = {"EMERG", "ALERT", "CRIT", "ERROR",
                                         "WARNING", "NOTICE", "INFO", "DEBUG"};

/* Writes to stderr at once unless a log callback or log.queue asks for
 * logs to be queued and delivered by poll on the application's thread. */
void hv_log(hv_handle_t *h, int level, const char *facility, const char *fmt, ...)
{
    if (level > h->conf->log_level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!h->conf->log_cb && !h->conf->log_queue) {
        fprintf(stderr, "hivent %s [%s] %s\n", level_tags[level & 7], facility, msg);
        return;
    }
    hivent_notice_t *n = hv_notice_new(HIVENT_NOTICE_LOG);
    if (!n)
        return;
    n->level = level;
    n->facility = facility;
    n->message = strdup(msg);
    if (!n->message) {
        free(n);
        return;
    }
    hv_notice_push(h, n);
}
