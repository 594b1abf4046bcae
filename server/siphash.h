/*
 * SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF",
 * 2012): a keyed 64-bit hash for tables whose keys come from clients, so a
 * client cannot choose keys that all land in one bucket.
 */
#ifndef HVD_SIPHASH_H
#define HVD_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* Hashes @len bytes at @data under the 16-byte @key. */
uint64_t hvd_siphash24(const uint8_t key[16], const void *data, size_t len);

#endif
