/* SipHash-2-4 against the test vectors of the SipHash paper: key bytes
 * 00..0f, messages 00, 00 01, ... of length 0 to 15. */
#include <stdio.h>

#include "siphash.h"

int main(void)
{
    static const struct {
        size_t len;
        uint64_t expected;
    } cases[] = {
        {0, 0x726fdb47dd0e0e31ull},
        {8, 0x93f5f5799a932462ull},
        {15, 0xa129ca6149be45e5ull},
    };
    uint8_t key[16], msg[16];
    for (int i = 0; i < 16; i++) {
        key[i] = (uint8_t)i;
        msg[i] = (uint8_t)i;
    }
    int failed = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t got = hvd_siphash24(key, msg, cases[i].len);
        if (got != cases[i].expected) {
            fprintf(stderr, "siphash of %zu bytes: got %016llx, expected %016llx\n",
                    cases[i].len, (unsigned long long)got,
                    (unsigned long long)cases[i].expected);
            failed++;
        }
    }
    printf("%zu cases, %d failed\n", sizeof(cases) / sizeof(cases[0]), failed);
    return failed ? 1 : 0;
}
