/* One-line progress bar on stderr with count, rate and time left. */
#ifndef HIVENT_CLI_PROGRESS_H
#define HIVENT_CLI_PROGRESS_H

#include "cli.h"

struct cli_progress {
    int enabled;
    size_t total;
    int64_t start_ms;
    int64_t last_draw_ms;
    int drawn;
};

/* Starts a bar for @total items; a disabled bar draws nothing. */
void cli_progress_init(struct cli_progress *p, size_t total, int enabled);
/* Redraws at most every 100 ms unless @force is set. */
void cli_progress_update(struct cli_progress *p, size_t done, size_t failed, int force);
/* Erases the bar so that the summary starts on a clean line. */
void cli_progress_finish(struct cli_progress *p);

#endif
