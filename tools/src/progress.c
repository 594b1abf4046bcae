/* One-line progress bar on stderr with count, rate and time left. */
#include <stdio.h>

#include "progress.h"

#define BAR_WIDTH 24
#define REDRAW_INTERVAL_MS 100

void cli_progress_init(struct cli_progress *p, size_t total, int enabled)
{
    p->enabled = enabled;
    p->total = total;
    p->start_ms = cli_now_ms();
    p->last_draw_ms = 0;
    p->drawn = 0;
}

static void format_duration(char *out, size_t size, double seconds)
{
    long s = seconds < 0 ? 0 : (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(out, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(out, size, "%ld:%02ld", s / 60, s % 60);
}

void cli_progress_update(struct cli_progress *p, size_t done, size_t failed, int force)
{
    if (!p->enabled)
        return;
    int64_t now = cli_now_ms();
    if (!force && now - p->last_draw_ms < REDRAW_INTERVAL_MS)
        return;
    p->last_draw_ms = now;

    double elapsed = (double)(now - p->start_ms) / 1000.0;
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    size_t total = p->total > 0 ? p->total : 1;
    size_t filled = done >= total ? BAR_WIDTH : done * BAR_WIDTH / total;
    char bar[BAR_WIDTH + 1], left[32] = "?";

    for (size_t i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    if (rate > 0)
        format_duration(left, sizeof left, (double)(p->total - done) / rate);
    fprintf(stderr, "\r[%s] %zu/%zu %3zu%%  %.0f events/s  %s left", bar, done, p->total,
            done * 100 / total, rate, left);
    if (failed > 0)
        fprintf(stderr, "  %zu failed", failed);
    fputs("\033[K", stderr);
    fflush(stderr);
    p->drawn = 1;
}

void cli_progress_finish(struct cli_progress *p)
{
    if (p->enabled && p->drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
}
