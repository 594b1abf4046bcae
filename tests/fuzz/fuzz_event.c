/* libFuzzer target: event parsing and validation from MessagePack. */
#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "mp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hivent_event_t *ev = NULL;
    char err[256];
    if (hv_event_parse(data, size, &ev, err, sizeof err) == HIVENT_OK) {
        size_t packed_size;
        const void *packed = hivent_event_msgpack(ev, &packed_size);
        hivent_event_t *again = NULL;
        if (!packed || hv_event_parse(packed, packed_size, &again, err, sizeof err) != HIVENT_OK)
            __builtin_trap();
        hivent_free(hivent_event_to_json(again));
        hivent_event_destroy(again);
        hivent_event_destroy(ev);
    }
    /* The same bytes as an emit payload and as a name. */
    if (hv_event_new("fuzz", data, size, 1, NULL, NULL, NULL, &ev, err, sizeof err) ==
        HIVENT_OK)
        hivent_event_destroy(ev);
    hv_mp_validate(data, size);
    return 0;
}
