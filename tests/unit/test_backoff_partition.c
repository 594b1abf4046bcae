/* Reconnect backoff schedule, crc32 partitioning and partition assignment. */
#include <zlib.h>

#include "backoff.h"
#include "check.h"
#include "partition.h"

static void backoff_doubles_to_cap(void)
{
    const int expect[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000};
    for (int a = 1; a <= 7; a++)
        CHECK_INT(hv_backoff_delay_ms(1000, 30000, 0, a, 12345), expect[a - 1]);
    CHECK_INT(hv_backoff_delay_ms(1000, 30000, 0, 1000000, 0), 30000);
    CHECK_INT(hv_backoff_delay_ms(1000, 30000, 0, 0, 0), 1000);
    CHECK_INT(hv_backoff_delay_ms(1000, 30000, 0, -3, 0), 1000);
    CHECK_INT(hv_backoff_delay_ms(0, 30000, 50, 9, 777), 0);
    /* A cap below the base is raised to the base. */
    CHECK_INT(hv_backoff_delay_ms(5000, 10, 0, 3, 0), 5000);
    /* The largest configurable values do not overflow. */
    CHECK_INT(hv_backoff_delay_ms(86400000, 86400000, 0, 60, 0), 86400000);
    CHECK_INT(hv_backoff_delay_ms(1, 86400000, 0, 40, 0), 86400000);
}

static void backoff_jitter_bounds(void)
{
    const uint32_t rnds[] = {0, 1, 199, 200, 201, 4000, 65535, 0x7fffffff, UINT32_MAX};
    for (int a = 1; a <= 8; a++) {
        int full = hv_backoff_delay_ms(1000, 30000, 0, a, 0);
        for (size_t i = 0; i < sizeof rnds / sizeof rnds[0]; i++) {
            int d = hv_backoff_delay_ms(1000, 30000, 20, a, rnds[i]);
            CHECK_MSG(d <= full && d >= full - full / 5, "attempt %d rnd %u: %d not in "
                      "[%d, %d]", a, rnds[i], d, full - full / 5, full);
        }
        /* Both ends of the jitter range are reachable. */
        CHECK_INT(hv_backoff_delay_ms(1000, 30000, 20, a, 0), full);
        CHECK_INT(hv_backoff_delay_ms(1000, 30000, 20, a, (uint32_t)(full / 5)),
                  full - full / 5);
    }
    for (uint32_t r = 0; r < 5000; r += 7) {
        int d = hv_backoff_delay_ms(400, 30000, 100, 1, r);
        CHECK(d >= 0 && d <= 400);
        d = hv_backoff_delay_ms(400, 30000, 250, 1, r * 2654435761u);
        CHECK(d >= 0 && d <= 400);
    }
}

static void partition_matches_zlib_crc32(void)
{
    const char *keys[] = {"", "a", "user-1", "123456789", "caf\xc3\xa9", "order:42",
                          "\xf0\x9f\x98\x80 emoji", "a much longer partition key 0123456789"};
    const int counts[] = {1, 2, 3, 7, 16, 100, 4096};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        uLong crc = crc32(0L, (const Bytef *)keys[k], (uInt)strlen(keys[k]));
        for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
            int p = hv_partition_of(keys[k], NULL, 0, counts[c]);
            CHECK_MSG(p == (int)(crc % (uLong)counts[c]), "key \"%s\" count %d: %d", keys[k],
                      counts[c], p);
        }
    }
    /* The standard check value: crc32("123456789") = 0xCBF43926. */
    CHECK_INT(hv_partition_of("123456789", NULL, 0, 1000), 0xCBF43926u % 1000);
    CHECK_INT(hv_partition_of("123456789", NULL, 0, 65536), 0xCBF43926u % 65536);
    /* Without a key the payload bytes are hashed as received. */
    static const unsigned char payload[] = {0x81, 0xa1, 'k', 0x2a};
    uLong pcrc = crc32(0L, payload, sizeof payload);
    CHECK_INT(hv_partition_of(NULL, payload, sizeof payload, 13), pcrc % 13);
    /* A key wins over the payload. */
    CHECK_INT(hv_partition_of("a", payload, sizeof payload, 13),
              crc32(0L, (const Bytef *)"a", 1) % 13);
    CHECK_INT(hv_partition_of("a", NULL, 0, 0), 0);
    CHECK_INT(hv_partition_of("a", NULL, 0, -4), 0);
    CHECK_INT(hv_partition_of(NULL, NULL, 0, 8), 0);
}

/* Checks that every partition has a live owner and counts differ by <= 1. */
static void check_balanced(const int64_t *owners, int parts, const int64_t *members, int m)
{
    int counts[64] = {0};
    for (int p = 0; p < parts; p++) {
        int idx = -1;
        for (int i = 0; i < m; i++)
            if (members[i] == owners[p])
                idx = i;
        CHECK_MSG(idx >= 0, "partition %d owned by %lld, not a member", p,
                  (long long)owners[p]);
        if (idx >= 0)
            counts[idx]++;
    }
    int lo = parts, hi = 0;
    for (int i = 0; i < m; i++) {
        lo = counts[i] < lo ? counts[i] : lo;
        hi = counts[i] > hi ? counts[i] : hi;
    }
    CHECK_MSG(hi - lo <= 1, "%d partitions over %d members: counts from %d to %d", parts, m,
              lo, hi);
}

static int compare_desc(const void *a, const void *b)
{
    return *(const int *)b - *(const int *)a;
}

/* The fewest moves any balanced assignment needs from @before to @members:
 * orphaned partitions plus each member's excess over its best quota. */
static int minimal_moves(const int64_t *before, int parts, const int64_t *members, int m)
{
    int held[64] = {0}, orphans = 0;
    for (int p = 0; p < parts; p++) {
        int idx = -1;
        for (int i = 0; i < m; i++)
            if (members[i] == before[p])
                idx = i;
        if (idx < 0)
            orphans++;
        else
            held[idx]++;
    }
    qsort(held, (size_t)m, sizeof held[0], compare_desc);
    int base = parts / m, extra = parts % m, excess = 0;
    for (int i = 0; i < m; i++) {
        int quota = base + (i < extra ? 1 : 0);
        if (held[i] > quota)
            excess += held[i] - quota;
    }
    return orphans + excess;
}

static int count_moves(const int64_t *a, const int64_t *b, int parts)
{
    int moves = 0;
    for (int p = 0; p < parts; p++)
        moves += a[p] != b[p];
    return moves;
}

static void assignment_balanced(void)
{
    int64_t members[10];
    for (int i = 0; i < 10; i++)
        members[i] = 100 + i * 3;
    for (int parts = 1; parts <= 64; parts++) {
        for (int m = 1; m <= 10; m++) {
            int64_t owners[64];
            for (int p = 0; p < parts; p++)
                owners[p] = -1;
            hv_assign_partitions(owners, parts, members, m);
            check_balanced(owners, parts, members, m);
        }
    }
    int64_t owners[4] = {1, 2, 3, 4};
    hv_assign_partitions(owners, 4, members, 0);
    for (int p = 0; p < 4; p++)
        CHECK_INT(owners[p], -1);
}

static void assignment_sticky_1_3_2(void)
{
    const int parts_cases[] = {12, 10, 7, 1};
    for (size_t c = 0; c < sizeof parts_cases / sizeof parts_cases[0]; c++) {
        int parts = parts_cases[c];
        int64_t owners[16], before[16];
        const int64_t one[] = {11};
        const int64_t three[] = {11, 22, 33};
        const int64_t two[] = {11, 22};
        for (int p = 0; p < parts; p++)
            owners[p] = -1;
        hv_assign_partitions(owners, parts, one, 1);
        check_balanced(owners, parts, one, 1);

        memcpy(before, owners, sizeof owners);
        hv_assign_partitions(owners, parts, three, 3);
        check_balanced(owners, parts, three, 3);
        CHECK_INT(count_moves(before, owners, parts), minimal_moves(before, parts, three, 3));
        /* The first member keeps the largest share it may keep. */
        int kept = 0;
        for (int p = 0; p < parts; p++)
            kept += before[p] == 11 && owners[p] == 11;
        CHECK_INT(kept, (parts + 2) / 3);

        memcpy(before, owners, sizeof owners);
        hv_assign_partitions(owners, parts, two, 2);
        check_balanced(owners, parts, two, 2);
        CHECK_INT(count_moves(before, owners, parts), minimal_moves(before, parts, two, 2));
        /* Only the departed member's partitions move. */
        for (int p = 0; p < parts; p++)
            if (before[p] != 33)
                CHECK_INT(owners[p], before[p]);
    }
}

static void assignment_random_changes_minimal(void)
{
    unsigned seed = 12345;
    int64_t owners[48];
    for (int p = 0; p < 48; p++)
        owners[p] = -1;
    int64_t members[12];
    int m = 0;
    int64_t next_id = 1;
    for (int step = 0; step < 2000; step++) {
        seed = seed * 1103515245u + 12345u;
        int add = m == 0 || (m < 12 && (seed >> 16) % 2 == 0);
        if (add) {
            members[m++] = next_id++;
        } else {
            int victim = (int)((seed >> 8) % (unsigned)m);
            members[victim] = members[--m];
        }
        int parts = 48;
        int64_t before[48];
        memcpy(before, owners, sizeof owners);
        hv_assign_partitions(owners, parts, members, m);
        if (m == 0)
            continue;
        check_balanced(owners, parts, members, m);
        CHECK_INT(count_moves(before, owners, parts), minimal_moves(before, parts, members, m));
        if (check_failures)
            break;
    }
}

int main(void)
{
    RUN_TEST(backoff_doubles_to_cap);
    RUN_TEST(backoff_jitter_bounds);
    RUN_TEST(partition_matches_zlib_crc32);
    RUN_TEST(assignment_balanced);
    RUN_TEST(assignment_sticky_1_3_2);
    RUN_TEST(assignment_random_changes_minimal);
    return check_summary();
}
