#include "partition.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int hv_partition_of(const char *key, const void *payload, size_t payload_size,
                    int partition_count)
{
    if (partition_count <= 1)
        return 0;
    uLong crc = crc32(0L, Z_NULL, 0);
    if (key)
        crc = crc32(crc, (const Bytef *)key, (uInt)strlen(key));
    else if (payload)
        crc = crc32(crc, payload, (uInt)payload_size);
    return (int)(crc % (uLong)partition_count);
}

static int member_index(const int64_t *members, int count, int64_t id)
{
    for (int i = 0; i < count; i++)
        if (members[i] == id)
            return i;
    return -1;
}

/*
 * Quotas: every member gets floor(P/M) partitions and P mod M members get
 * one more.  The extra slots go to the members that already hold the most
 * partitions, which keeps the number of moved partitions minimal.
 */
static void compute_quotas(const int *held, int member_count, int partition_count,
                           int *quota)
{
    int base = partition_count / member_count;
    int extra = partition_count % member_count;
    for (int i = 0; i < member_count; i++)
        quota[i] = base;
    for (int e = 0; e < extra; e++) {
        int best = -1;
        for (int i = 0; i < member_count; i++) {
            if (quota[i] != base)
                continue;
            if (best < 0 || held[i] > held[best])
                best = i;
        }
        quota[best]++;
    }
}

void hv_assign_partitions(int64_t *owners, int partition_count, const int64_t *members,
                          int member_count)
{
    if (partition_count <= 0)
        return;
    if (member_count <= 0) {
        for (int p = 0; p < partition_count; p++)
            owners[p] = -1;
        return;
    }
    int *held = calloc((size_t)member_count, sizeof *held);
    int *quota = calloc((size_t)member_count, sizeof *quota);
    int *kept = calloc((size_t)member_count, sizeof *kept);
    if (!held || !quota || !kept) {
        /* Out of memory: fall back to a plain round robin, still balanced. */
        for (int p = 0; p < partition_count; p++)
            owners[p] = members[p % member_count];
        goto out;
    }
    for (int p = 0; p < partition_count; p++) {
        int m = member_index(members, member_count, owners[p]);
        if (m >= 0)
            held[m]++;
    }
    compute_quotas(held, member_count, partition_count, quota);
    /* Keep partitions with their owner up to the owner's quota. */
    for (int p = 0; p < partition_count; p++) {
        int m = member_index(members, member_count, owners[p]);
        if (m >= 0 && kept[m] < quota[m])
            kept[m]++;
        else
            owners[p] = -1;
    }
    /* Hand the rest to members below their quota, in member order. */
    int m = 0;
    for (int p = 0; p < partition_count; p++) {
        if (owners[p] != -1)
            continue;
        while (kept[m] >= quota[m])
            m++;
        owners[p] = members[m];
        kept[m]++;
    }
out:
    free(held);
    free(quota);
    free(kept);
}
