/* libFuzzer target: vsn 2.0.0 JSON frame decoding and JSON conversion. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "frame.h"
#include "hivent/hivent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hv_frame_t f;
    char err[256];
    if (hv_frame_decode_json((const char *)data, size, 1 << 20, &f, err, sizeof err) == 0) {
        hv_buf_t out = {0};
        hv_frame_encode_json(&f, &out);
        hv_buf_free(&out);
        hv_frame_clear(&f);
    }
    void *mp = NULL;
    size_t mp_size = 0;
    if (hivent_json_to_msgpack((const char *)data, size, &mp, &mp_size, err, sizeof err) ==
        HIVENT_OK) {
        char *back = hivent_msgpack_to_json(mp, mp_size, err, sizeof err);
        if (!back)
            __builtin_trap();
        hivent_free(back);
        hivent_free(mp);
    }
    hivent_free(hivent_msgpack_to_json(data, size, NULL, 0));
    return 0;
}
