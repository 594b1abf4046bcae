/* Reconnect delay schedule. */
#ifndef HV_BACKOFF_H
#define HV_BACKOFF_H

#include <stdint.h>

/* Delay before attempt @attempt (1-based): base * 2^(attempt-1), capped at
 * @cap_ms, then reduced by a random part of up to @jitter_pct percent taken
 * from @rnd.  Never negative, never above the cap. */
int hv_backoff_delay_ms(int base_ms, int cap_ms, int jitter_pct, int attempt, uint32_t rnd);

#endif
