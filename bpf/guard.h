/* SPDX-License-Identifier: Apache-2.0 */
/* The guard's kernel/user contract: map layouts shared by guard.bpf.c and bpf/guard.py
 * (tests/guard checks both against the object's BTF).
 *
 * Classification is the Linear Bit Vector Search: every packet field looks up a bitmap
 * of the rules that field allows; the AND of the bitmaps holds the rules that match and
 * the lowest set bit wins (first match). Cost grows with words of bitmap, not rules.
 *
 * Everything a Plan fills is double-buffered by generation (0/1): the agent writes the
 * idle generation, then flips `guard_state.gen`; a packet reads `gen` once, so it sees
 * one whole Plan or the other, never a mix.
 */
#ifndef BULWARK_GUARD_H
#define BULWARK_GUARD_H

#include <linux/types.h>

#define GUARD_MAX_RULES 1024
#define GUARD_WORDS (GUARD_MAX_RULES / 64)
#define GUARD_MAX_SETS 64
#define GUARD_RULE_DEFAULT GUARD_MAX_RULES       /* counter/action slot of the default */
#define GUARD_RULE_MALFORMED (GUARD_MAX_RULES + 1) /* counter/action slot of malformed */
#define GUARD_SLOTS (GUARD_MAX_RULES + 2)

/* Small fields: one bitmap per value, plus a "none" value for packets without it. */
enum guard_small_field {
	GUARD_F_FAMILY = 0, /* 0: ipv4, 1: ipv6 */
	GUARD_F_PROTO,      /* L4 protocol number */
	GUARD_F_FLAGS,      /* TCP flags byte; NONE when not TCP or not a first fragment */
	GUARD_F_ICMP,       /* ICMP/ICMPv6 type; NONE otherwise */
	GUARD_F_TTL,        /* TTL or hop limit */
	GUARD_F_FRAG,       /* 0: not a fragment, 1: first fragment, 2: later fragment */
	GUARD_SMALL_FIELDS,
};
#define GUARD_SMALL_VALUES 257
#define GUARD_SMALL_NONE 256

/* Range fields (0..65535): value -> class, class -> bitmap. */
enum guard_range_field {
	GUARD_F_SPORT = 0, /* NONE when the packet carries no ports */
	GUARD_F_DPORT,
	GUARD_F_LENGTH, /* bytes from the IP header's start to the frame's end */
	GUARD_RANGE_FIELDS,
};
#define GUARD_RANGE_VALUES 65537
#define GUARD_RANGE_NONE 65536
/* A length over this (a GRO super-packet under generic XDP) matches as this; byte-rate
 * limits and counters take the real length (LENGTH_MAX in rules_dsl/packet.py). */
#define GUARD_LENGTH_MAX 65535
#define GUARD_MAX_CLASSES 4096

/* Address fields: the sets holding the address (a mask of set ids) pick set bitmaps. */
enum guard_addr_field {
	GUARD_F_SRC = 0,
	GUARD_F_DST,
	GUARD_ADDR_FIELDS,
};
#define GUARD_SET_ANY GUARD_MAX_SETS /* bitmap of rules that accept any address */
#define GUARD_SET_SLOTS (GUARD_MAX_SETS + 1)

/* guard_config.fields: which fields constrain some rule (others are skipped). */
#define GUARD_USE_SMALL(f) (1u << (f))
#define GUARD_USE_RANGE(f) (1u << (8 + (f)))
#define GUARD_USE_ADDR(f) (1u << (12 + (f)))

enum guard_verdict {
	GUARD_PASS = 0,
	GUARD_DROP = 1,
	GUARD_LIMIT = 2,
};

enum guard_limit_key {
	GUARD_KEY_GLOBAL = 0,
	GUARD_KEY_SRC = 1,
	GUARD_KEY_DST = 2,
};

struct guard_bitmap {
	__u64 w[GUARD_WORDS];
};

struct guard_config {
	__u32 words;  /* bitmap words in use: ceil(rules / 64), at least 1 */
	__u32 fields; /* GUARD_USE_* bits */
	__u8 monitor; /* 1: count what would be dropped, drop nothing */
	__u8 pad[7];
};

/* One token bucket of a limited rule. */
struct guard_limit {
	__u8 key;       /* enum guard_limit_key */
	__u8 prefix_v4; /* key prefix length for IPv4 addresses */
	__u8 prefix_v6; /* key prefix length for IPv6 addresses */
	__u8 per_byte;  /* 1: rate is bytes/s and a packet costs its length */
	__u8 pad[4];
	__u64 rate;     /* tokens per second */
	__u64 burst;    /* bucket size in tokens */
	__u64 block_ns; /* once over the rate, drop the key for this long */
};

/* A limited rule's limits are stacked: consulted in order, each that admits is charged,
 * the first that refuses drops the packet and the later ones are left untouched. Each
 * step touches one bucket, so no lock spans buckets (docs/plan.md). */
#define GUARD_MAX_LIMITS 4

struct guard_action {
	__u8 verdict; /* enum guard_verdict */
	__u8 limits;  /* GUARD_LIMIT: how many of `limit` are in use, 1..GUARD_MAX_LIMITS */
	__u8 pad[6];
	struct guard_limit limit[GUARD_MAX_LIMITS];
};

struct guard_state {
	__u32 gen;      /* the generation packets read now */
	__u32 pad;
	__u64 clock_ns; /* tests only: when non-zero, the time rate limits use */
};

struct guard_counter {
	__u64 packets;
	__u64 bytes;
	__u64 dropped; /* dropped, or would have been in monitor mode */
};

struct guard_bucket_key {
	__u32 slot;   /* gen * GUARD_SLOTS + rule */
	__u16 family;
	__u16 limit;  /* index in guard_action.limit */
	__u8 addr[16]; /* the masked key address; zero for global limits */
};

struct guard_bucket {
	__u64 tokens; /* nano-tokens: 1e9 per token */
	__u64 last_ns;
	__u64 blocked_until_ns;
};

struct guard_v6_addr {
	__u8 addr[16];
};

struct guard_lpm_v4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct guard_lpm_v6 {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Exact hosts: a static hash table per family and generation, laid out by the agent in
 * a BPF array it can mmap (one page per element) and filled in one pass from the packed
 * list, so loading a million hosts costs no kernel insert per host. Page 0 is the head;
 * pages 1..pages hold the slots. A host hashes (guard_hash_*) to one page and a start
 * slot; it sits within GUARD_TABLE_PROBES slots of that start (linear probing, wrapping
 * inside the page), or is not in the table: an empty slot (mask index 0) ends the probe.
 *
 * One-entry changes do not touch the table: the agent writes the host's whole new mask
 * into the generation's delta hash (one map update, atomic for a packet), after setting
 * the host's bit in head.filter; a packet consults the delta hash only when its bit is
 * set, and a delta entry, when there is one, is the answer (mask 0: in no set). */
#define GUARD_TABLE_PAGE 4096
#define GUARD_TABLE_MASKS 256 /* distinct set masks per table; index 0 means "empty" */
#define GUARD_TABLE_FILTER_BITS 8192
#define GUARD_TABLE_PROBES 64
#define GUARD_V4_SLOTS 512 /* per page */
#define GUARD_V6_SLOTS 128

struct guard_table_head {
	__u32 pages;  /* slot pages after this one: a power of two */
	__u32 masks;  /* mask indexes in use, 1..masks */
	__u32 count;  /* hosts in the table */
	__u32 pad;
	__u64 seed;   /* random per table: list entries cannot be chosen to collide */
	__u64 mask[GUARD_TABLE_MASKS]; /* mask index -> mask of set ids */
	__u8 filter[GUARD_TABLE_FILTER_BITS / 8]; /* bit set: a delta entry may hash here */
	__u8 spare[GUARD_TABLE_PAGE - 24 - 8 * GUARD_TABLE_MASKS - GUARD_TABLE_FILTER_BITS / 8];
};

struct guard_v4_slot {
	__u32 addr; /* as in the packet (network order) */
	__u32 mask; /* index in head.mask; 0: empty slot */
};

struct guard_v6_slot {
	__u8 addr[16];
	__u32 mask;
	__u32 pad;
};

struct guard_v4_page {
	struct guard_v4_slot slot[GUARD_V4_SLOTS];
};

struct guard_v6_page {
	struct guard_v6_slot slot[GUARD_V6_SLOTS];
	__u8 spare[GUARD_TABLE_PAGE - GUARD_V6_SLOTS * sizeof(struct guard_v6_slot)];
};

/* The one hash of the host tables, shared by the program and the agent's builder
 * (cffi_build.py compiles this header): splitmix64's finalizer, whose every output bit
 * depends on every input bit, over the address and the table's random seed (without it,
 * a list could be made of hosts that share a page and start, and the table would
 * double until it failed). Bits 32.. pick the page, 0.. the start slot, 16.. the
 * filter bit. */
static inline __attribute__((always_inline)) __u64 guard_mix(__u64 z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline __attribute__((always_inline)) __u64 guard_hash_v4(__u32 addr, __u64 seed)
{
	return guard_mix((addr ^ seed) + 0x9e3779b97f4a7c15ULL);
}

static inline __attribute__((always_inline)) __u64 guard_hash_v6(const __u8 *addr, __u64 seed)
{
	__u64 hi, lo;
	__builtin_memcpy(&hi, addr, 8);
	__builtin_memcpy(&lo, addr + 8, 8);
	return guard_mix(guard_mix((hi ^ seed) + 0x9e3779b97f4a7c15ULL) ^ lo);
}

struct guard_sample {
	__u64 time_ns;
	__u32 rule;
	__u8 family;
	__u8 proto;
	__u16 dport;
	__u8 src[16];
	__u8 dst[16];
	__u16 sport;
	__u16 length;
	__u32 pad;
};

#endif
