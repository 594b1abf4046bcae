/* Partition hashing and partition-to-consumer assignment, shared by the
 * client's memory transport and hiventd. */
#ifndef HV_PARTITION_H
#define HV_PARTITION_H

#include <stddef.h>
#include <stdint.h>

/* zlib crc32 of @key (its UTF-8 bytes) when @key is not NULL, else of the
 * payload's MessagePack bytes as received, modulo @partition_count. */
int hv_partition_of(const char *key, const void *payload, size_t payload_size,
                    int partition_count);

/*
 * Balanced, sticky assignment.  @owners[p] holds the current owner id of
 * partition p, or -1.  @members lists the ids of the live members.  On
 * return every partition has a live owner, member counts differ by at
 * most one, and a partition keeps its owner whenever balance allows.
 * With no members every owner becomes -1.
 */
void hv_assign_partitions(int64_t *owners, int partition_count, const int64_t *members,
                          int member_count);

#endif
