/* libFuzzer target: vsn 1.0.0 frame decoding (MessagePack, gzip). */
#include <stddef.h>
#include <stdint.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hv_frame_t f;
    char err[256];
    if (hv_frame_decode(data, size, 1 << 20, &f, err, sizeof err) == 0) {
        /* A decoded frame must encode again and decode to the same fields. */
        hv_buf_t out = {0};
        if (hv_frame_encode(&f, 1, &out) == 0) {
            hv_frame_t g;
            if (hv_frame_decode(out.data, out.len, 4 << 20, &g, err, sizeof err) != 0)
                __builtin_trap();
            hv_frame_clear(&g);
        }
        hv_buf_free(&out);
        hv_frame_clear(&f);
    }
    return 0;
}
