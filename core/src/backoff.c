#include "backoff.h"

int hv_backoff_delay_ms(int base_ms, int cap_ms, int jitter_pct, int attempt, uint32_t rnd)
{
    if (base_ms < 0)
        base_ms = 0;
    if (cap_ms < base_ms)
        cap_ms = base_ms;
    if (attempt < 1)
        attempt = 1;
    int64_t delay = base_ms;
    for (int i = 1; i < attempt && delay < cap_ms; i++)
        delay *= 2;
    if (delay > cap_ms)
        delay = cap_ms;
    if (jitter_pct > 100)
        jitter_pct = 100;
    if (jitter_pct > 0 && delay > 0) {
        int64_t span = delay * jitter_pct / 100;
        if (span > 0)
            delay -= (int64_t)(rnd % (uint64_t)(span + 1));
    }
    return (int)delay;
}
