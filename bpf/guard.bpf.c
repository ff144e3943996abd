// SPDX-License-Identifier: GPL-2.0
/* The guard: Bulwark's XDP data plane. It enforces the XDP part of a compiled Plan:
 * parse, classify (Linear Bit Vector Search), act (pass, drop, token bucket), count,
 * sample drops. What every map holds is described in guard.h; what a Plan means is
 * defined by rules_dsl's reference evaluator, which this program must agree with.
 *
 * What it cannot parse meets an explicit rule: a frame that is not IPv4/IPv6 passes
 * untouched; an IP packet whose headers are truncated or inconsistent is "malformed"
 * and gets the Plan's malformed verdict (counted in its own slot).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "guard.h"

#define ETH_P_8021Q_ 0x8100
#define ETH_P_8021AD_ 0x88A8
#define MAX_VLANS 2
#define MAX_EXT_HEADERS 6
/* Headers start within a page: XDP's linear data is one page at most. The mask keeps
 * the verifier's packet-pointer arithmetic in range; a larger offset cannot occur. */
#define MAX_L3_OFFSET 0xfff
#define SAMPLES_PER_SEC 2000ULL
#define NSEC 1000000000ULL

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct guard_state);
} g_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct guard_config);
} g_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * GUARD_SMALL_FIELDS * GUARD_SMALL_VALUES);
	__type(key, __u32);
	__type(value, struct guard_bitmap);
} g_small SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * GUARD_RANGE_FIELDS * GUARD_RANGE_VALUES);
	__type(key, __u32);
	__type(value, __u16);
} g_rclass SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * GUARD_RANGE_FIELDS * GUARD_MAX_CLASSES);
	__type(key, __u32);
	__type(value, struct guard_bitmap);
} g_rbits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * GUARD_ADDR_FIELDS * GUARD_SET_SLOTS);
	__type(key, __u32);
	__type(value, struct guard_bitmap);
} g_sets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * GUARD_SLOTS);
	__type(key, __u32);
	__type(value, struct guard_action);
} g_actions SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2 * GUARD_SLOTS);
	__type(key, __u32);
	__type(value, struct guard_counter);
} g_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct guard_bucket_key);
	__type(value, struct guard_bucket);
} g_buckets SEC(".maps");

/* Address sets: value = mask of the set ids holding the key. Inner maps are swapped
 * whole through the outer arrays (slot = generation) so a list swap is atomic. Exact
 * hosts: a static table (guard.h, guard_table_head) and a hash of the deltas since. */
struct table_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE | BPF_F_INNER_MAP);
	__type(key, __u32);
	__type(value, struct guard_table_head); /* the head; slot pages share its size */
};

struct v4_delta_inner {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u64);
};

struct v4_nets_inner {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct guard_lpm_v4);
	__type(value, __u64);
};

struct v6_delta_inner {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct guard_v6_addr);
	__type(value, __u64);
};

struct v6_nets_inner {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct guard_lpm_v6);
	__type(value, __u64);
};

/* Empty sets the outer slots start with; they also give the key types full BTF. */
struct table_inner g_v4t_empty SEC(".maps");
struct table_inner g_v6t_empty SEC(".maps");
struct v4_delta_inner g_v4d_empty SEC(".maps");
struct v4_nets_inner g_v4n_empty SEC(".maps");
struct v6_delta_inner g_v6d_empty SEC(".maps");
struct v6_nets_inner g_v6n_empty SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct table_inner);
} g_v4_table SEC(".maps") = {.values = {&g_v4t_empty, &g_v4t_empty}};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct v4_delta_inner);
} g_v4_delta SEC(".maps") = {.values = {&g_v4d_empty, &g_v4d_empty}};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct v4_nets_inner);
} g_v4_nets SEC(".maps") = {.values = {&g_v4n_empty, &g_v4n_empty}};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct table_inner);
} g_v6_table SEC(".maps") = {.values = {&g_v6t_empty, &g_v6t_empty}};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct v6_delta_inner);
} g_v6_delta SEC(".maps") = {.values = {&g_v6d_empty, &g_v6d_empty}};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct v6_nets_inner);
} g_v6_nets SEC(".maps") = {.values = {&g_v6n_empty, &g_v6n_empty}};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} g_samples SEC(".maps");

/* A sample is assembled here, then copied into the ring (this also records its type). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct guard_sample);
} g_sample_buf SEC(".maps");

struct sample_budget {
	__u64 tokens;
	__u64 last_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sample_budget);
} g_sample_tb SEC(".maps");

/* Per-CPU scratch for the two address bitmaps (too big for the 512-byte stack). */
struct scratch {
	struct guard_bitmap addr[GUARD_ADDR_FIELDS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} g_scratch SEC(".maps");

/* What the classifier looks at, parsed once. */
struct packet {
	__u8 src[16];
	__u8 dst[16];
	__u32 family; /* 0: ipv4, 1: ipv6 */
	__u32 proto;
	__u32 sport; /* GUARD_RANGE_NONE when no ports */
	__u32 dport;
	__u32 flags; /* GUARD_SMALL_NONE when not TCP */
	__u32 icmp;  /* GUARD_SMALL_NONE when not ICMP */
	__u32 ttl;
	__u32 frag; /* 0 none, 1 first, 2 later */
	__u32 length;
};

enum parse_result {
	PARSE_OK = 0,
	PARSE_NOT_IP,
	PARSE_MALFORMED,
};

/* L4 fields of an unfragmented packet or a first fragment; the header must lie
 * within [l4, end), where end is where the IP packet ends (never Ethernet padding).
 * Each read is also checked against data_end: that is the bound the verifier knows. */
static __always_inline int parse_l4(struct packet *p, void *l4, void *end, void *data_end)
{
	if (p->frag == 2)
		return PARSE_OK; /* later fragments carry no L4 header */
	if (end > data_end)
		return PARSE_MALFORMED;
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;
		if ((void *)(tcp + 1) > data_end)
			return PARSE_MALFORMED;
		if ((void *)(tcp + 1) > end)
			return PARSE_MALFORMED;
		__u32 doff = tcp->doff * 4;
		if (doff < 20 || l4 + doff > end)
			return PARSE_MALFORMED;
		p->sport = bpf_ntohs(tcp->source);
		p->dport = bpf_ntohs(tcp->dest);
		p->flags = ((__u8 *)tcp)[13];
	} else if (p->proto == IPPROTO_UDP) {
		struct udphdr *udp = l4;
		if ((void *)(udp + 1) > data_end)
			return PARSE_MALFORMED;
		if ((void *)(udp + 1) > end)
			return PARSE_MALFORMED;
		p->sport = bpf_ntohs(udp->source);
		p->dport = bpf_ntohs(udp->dest);
	} else if ((p->proto == IPPROTO_ICMP && p->family == 0) ||
		   (p->proto == IPPROTO_ICMPV6 && p->family == 1)) {
		__u8 *icmp = l4;
		if ((void *)(icmp + 4) > data_end)
			return PARSE_MALFORMED;
		if ((void *)(icmp + 4) > end)
			return PARSE_MALFORMED;
		p->icmp = icmp[0];
	}
	return PARSE_OK;
}

static __always_inline int parse_ipv4(struct packet *p, void *l3, void *data_end)
{
	struct iphdr *ip = l3;
	if ((void *)(ip + 1) > data_end || ip->version != 4)
		return PARSE_MALFORMED;
	__u32 ihl = ip->ihl * 4;
	__u32 total = bpf_ntohs(ip->tot_len);
	__u32 avail = data_end - l3;
	if (ihl < 20 || ihl > avail || total < ihl || total > avail)
		return PARSE_MALFORMED;
	__builtin_memcpy(p->src, &ip->saddr, 4);
	__builtin_memcpy(p->dst, &ip->daddr, 4);
	p->family = 0;
	p->proto = ip->protocol;
	p->ttl = ip->ttl;
	__u16 frag = bpf_ntohs(ip->frag_off);
	if (frag & 0x1fff)
		p->frag = 2;
	else if (frag & 0x2000)
		p->frag = 1;
	ihl &= 0x3c;     /* 20..60, for the verifier */
	total &= 0xffff; /* likewise */
	return parse_l4(p, l3 + ihl, l3 + total, data_end);
}

/* bpf_loop body for the IPv6 extension header walk. */
struct ext_walk {
	struct packet *p;
	void *data_end;
	void *end;    /* end of the IPv6 payload */
	__u64 offset; /* of the next header from the packet's data start */
	void *data;
	__u8 next;
	__u8 malformed;
	__u8 later; /* a non-first fragment: no L4 */
};

static long walk_one_ext(__u32 index, void *ctx_)
{
	struct ext_walk *w = ctx_;
	__u8 next = w->next;
	if (next != 0 && next != 43 && next != 44 && next != 60)
		return 1; /* not an extension header: it is the protocol */
	if (index >= MAX_EXT_HEADERS) {
		w->malformed = 1; /* a 7th extension header */
		return 1;
	}
	if (w->offset > MAX_L3_OFFSET) {
		w->malformed = 1;
		return 1;
	}
	__u8 *ext = w->data + (w->offset & MAX_L3_OFFSET);
	if (next == 44) {
		if ((void *)(ext + 8) > w->end || (void *)(ext + 8) > w->data_end) {
			w->malformed = 1;
			return 1;
		}
		__u16 fo = (ext[2] << 8) | ext[3];
		w->next = ext[0];
		w->offset += 8;
		if (fo & 0xfff8) { /* a later fragment: the walk ends, no L4 */
			w->p->frag = 2;
			w->later = 1;
			return 1;
		}
		if (fo & 1) /* offset 0 with more to come; an atomic fragment is no fragment */
			w->p->frag = 1;
		return 0;
	}
	if ((void *)(ext + 2) > w->end || (void *)(ext + 2) > w->data_end) {
		w->malformed = 1;
		return 1;
	}
	__u32 hlen = (ext[1] + 1) * 8;
	if ((void *)ext + hlen > w->end) {
		w->malformed = 1;
		return 1;
	}
	w->next = ext[0];
	w->offset += hlen;
	return 0;
}

static __always_inline int parse_ipv6(struct packet *p, void *l3, void *data, void *data_end)
{
	struct ipv6hdr *ip6 = l3;
	if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
		return PARSE_MALFORMED;
	__u32 plen = bpf_ntohs(ip6->payload_len);
	if (sizeof(*ip6) + plen > (__u64)(data_end - l3))
		return PARSE_MALFORMED;
	__builtin_memcpy(p->src, &ip6->saddr, 16);
	__builtin_memcpy(p->dst, &ip6->daddr, 16);
	p->family = 1;
	p->ttl = ip6->hop_limit;
	struct ext_walk w = {
		.p = p, .data_end = data_end, .end = (void *)(ip6 + 1) + plen,
		.offset = (void *)(ip6 + 1) - data, .data = data, .next = ip6->nexthdr,
	};
	bpf_loop(MAX_EXT_HEADERS + 1, walk_one_ext, &w, 0);
	if (w.malformed)
		return PARSE_MALFORMED;
	p->proto = w.next;
	if (w.later)
		return PARSE_OK;
	if (w.offset > MAX_L3_OFFSET)
		return PARSE_MALFORMED;
	return parse_l4(p, data + (w.offset & MAX_L3_OFFSET), w.end, data_end);
}
static __always_inline int parse(struct xdp_md *ctx, struct packet *p)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return PARSE_NOT_IP;
	__u16 proto = eth->h_proto;
	void *cursor = eth + 1;
	for (int i = 0; i < MAX_VLANS; i++) {
		if (proto != bpf_htons(ETH_P_8021Q_) && proto != bpf_htons(ETH_P_8021AD_))
			break;
		__u16 *vlan = cursor;
		if ((void *)(vlan + 2) > data_end)
			return PARSE_MALFORMED; /* a tag cut short */
		proto = vlan[1];
		cursor = vlan + 2;
	}
	if (proto == bpf_htons(ETH_P_8021Q_) || proto == bpf_htons(ETH_P_8021AD_))
		return PARSE_MALFORMED; /* a third tag */
	p->sport = GUARD_RANGE_NONE;
	p->dport = GUARD_RANGE_NONE;
	p->flags = GUARD_SMALL_NONE;
	p->icmp = GUARD_SMALL_NONE;
	p->length = data_end - cursor;
	if (proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(p, cursor, data_end);
	if (proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(p, cursor, data, data_end);
	return PARSE_NOT_IP;
}

/* The mask of set ids a generation's exact hosts give addr: a delta entry when the
 * head's filter says there may be one, else the static table (guard.h). Written once per
 * family with constant maps, so every map call site names one map (a call site that may
 * see two is not inlined and costs an indirect call). */
#define HOSTS_OF(name, TABLE, DELTA, V6, page_t, SLOTS_, MATCH)                              \
static __always_inline __u64 name(__u8 *addr, __u32 gen)                                   \
{                                                                                          \
	__u32 zero = 0, bit, page, start, i;                                               \
	struct guard_table_head *head;                                                     \
	__u64 h, *hit;                                                                     \
	void *table = bpf_map_lookup_elem(&TABLE, &gen);                                   \
	void *delta = bpf_map_lookup_elem(&DELTA, &gen);                                   \
	if (!table || !(head = bpf_map_lookup_elem(table, &zero)) || !head->pages)          \
		return 0;                                                                  \
	h = V6 ? guard_hash_v6(addr, head->seed) : guard_hash_v4(*(__u32 *)addr, head->seed); \
	bit = (h >> 16) & (GUARD_TABLE_FILTER_BITS - 1);                                   \
	if (delta && (head->filter[bit >> 3] & (1 << (bit & 7))) &&                        \
	    (hit = bpf_map_lookup_elem(delta, addr)))                                      \
		return *hit;                                                               \
	page = 1 + ((__u32)(h >> 32) & (head->pages - 1));                                 \
	start = (__u32)h;                                                                  \
	page_t *pg = bpf_map_lookup_elem(table, &page);                                    \
	if (!pg)                                                                           \
		return 0;                                                                  \
	for (i = 0; i < GUARD_TABLE_PROBES; i++) {                                         \
		typeof(pg->slot[0]) *slot = &pg->slot[(start + i) & (SLOTS_ - 1)];         \
		if (!slot->mask)                                                           \
			return 0;                                                          \
		if (MATCH)                                                                 \
			return head->mask[slot->mask & (GUARD_TABLE_MASKS - 1)];           \
	}                                                                                  \
	return 0;                                                                          \
}

HOSTS_OF(hosts_v4, g_v4_table, g_v4_delta, 0, struct guard_v4_page, GUARD_V4_SLOTS,
	 slot->addr == *(__u32 *)addr)
HOSTS_OF(hosts_v6, g_v6_table, g_v6_delta, 1, struct guard_v6_page, GUARD_V6_SLOTS,
	 *(__u64 *)slot->addr == *(__u64 *)addr && *(__u64 *)(slot->addr + 8) == *(__u64 *)(addr + 8))

/* The exact hosts' mask for the packet's source (field 0) or destination: a function of
 * its own, verified once, since its probe loops would otherwise be walked at every call. */
__noinline __u64 hosts_of(struct packet *p, __u32 field, __u32 gen)
{
	if (!p)
		return 0;
	if (p->family == 0)
		return hosts_v4(field ? p->dst : p->src, gen);
	return hosts_v6(field ? p->dst : p->src, gen);
}

/* Mask of the set ids that hold this address (exact hosts OR longest prefix). */
static __always_inline __u64 sets_of(struct packet *p, __u8 *addr, __u32 field, __u32 gen)
{
	__u64 mask = hosts_of(p, field, gen), *hit;
	void *inner;
	if (p->family == 0) {
		inner = bpf_map_lookup_elem(&g_v4_nets, &gen);
		if (inner) {
			struct guard_lpm_v4 key = {.prefixlen = 32};
			__builtin_memcpy(key.addr, addr, 4);
			if ((hit = bpf_map_lookup_elem(inner, &key)))
				mask |= *hit;
		}
	} else {
		inner = bpf_map_lookup_elem(&g_v6_nets, &gen);
		if (inner) {
			struct guard_lpm_v6 key = {.prefixlen = 128};
			__builtin_memcpy(key.addr, addr, 16);
			if ((hit = bpf_map_lookup_elem(inner, &key)))
				mask |= *hit;
		}
	}
	return mask;
}

/* Index of the lowest set bit (x != 0), branch-free so the verifier sees one path:
 * the population count of the bits below it. */
static __always_inline __u32 lowest_bit(__u64 x)
{
	__u64 v = (x & -x) - 1;
	v = v - ((v >> 1) & 0x5555555555555555ULL);
	v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
	v = (v + (v >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
	return (v * 0x0101010101010101ULL) >> 56;
}

struct or_sets_ctx {
	struct guard_bitmap *out;
	__u64 sets;
	__u32 base;
	__u32 words;
	int error;
};

/* bpf_loop body: OR the bitmap of the lowest remaining set into out. */
static long or_one_set(__u32 index, void *data)
{
	struct or_sets_ctx *ctx = data;
	if (!ctx->sets)
		return 1;
	__u32 key = ctx->base + lowest_bit(ctx->sets);
	ctx->sets &= ctx->sets - 1;
	struct guard_bitmap *bm = bpf_map_lookup_elem(&g_sets, &key);
	struct guard_bitmap *out = ctx->out;
	if (!bm) {
		ctx->error = 1;
		return 1;
	}
	for (__u32 w = 0; w < GUARD_WORDS; w++) {
		if (w >= ctx->words)
			break;
		out->w[w] |= bm->w[w];
	}
	return 0;
}

/* The rules an address allows: those taking any address, OR those naming a set that
 * holds it. Written into `out`; bpf_loop keeps the verifier's work independent of how
 * many sets there are. */
__noinline int address_bitmap(struct guard_bitmap *out, __u64 sets, __u32 gen, __u32 field,
			       __u32 words)
{
	if (!out)
		return -1;
	gen &= 1;
	field &= 1;
	__u32 base = (gen * GUARD_ADDR_FIELDS + field) * GUARD_SET_SLOTS;
	__u32 key = base + GUARD_SET_ANY;
	struct guard_bitmap *any = bpf_map_lookup_elem(&g_sets, &key);
	if (!any)
		return -1;
	if (!sets) {
		for (__u32 w = 0; w < GUARD_WORDS && w < words; w++)
			out->w[w] = any->w[w];
		return 0;
	}
	/* the first set inline: an address is rarely in more than one */
	key = base + lowest_bit(sets);
	sets &= sets - 1;
	struct guard_bitmap *bm = bpf_map_lookup_elem(&g_sets, &key);
	if (!bm)
		return -1;
	for (__u32 w = 0; w < GUARD_WORDS && w < words; w++)
		out->w[w] = any->w[w] | bm->w[w];
	if (!sets)
		return 0;
	struct or_sets_ctx ctx = {.out = out, .sets = sets, .base = base, .words = words};
	bpf_loop(GUARD_MAX_SETS, or_one_set, &ctx, 0);
	return ctx.error ? -1 : 0;
}

static __always_inline struct guard_bitmap *small_bitmap(__u32 gen, __u32 field, __u32 value)
{
	__u32 key = (gen * GUARD_SMALL_FIELDS + field) * GUARD_SMALL_VALUES + value;
	return bpf_map_lookup_elem(&g_small, &key);
}

static __always_inline struct guard_bitmap *range_bitmap(__u32 gen, __u32 field, __u32 value)
{
	__u32 key = (gen * GUARD_RANGE_FIELDS + field) * GUARD_RANGE_VALUES + value;
	__u16 *cls = bpf_map_lookup_elem(&g_rclass, &key);
	if (!cls)
		return 0;
	key = (gen * GUARD_RANGE_FIELDS + field) * GUARD_MAX_CLASSES + (*cls % GUARD_MAX_CLASSES);
	return bpf_map_lookup_elem(&g_rbits, &key);
}

#define NFIELDS (GUARD_SMALL_FIELDS + GUARD_RANGE_FIELDS + GUARD_ADDR_FIELDS)

/* First matching rule, or GUARD_RULE_DEFAULT. A global function: the verifier checks
 * it once, not once per parser path. */
__noinline int classify(struct packet *p, __u32 gen)
{
	struct guard_bitmap *bm[NFIELDS];
	if (!p)
		return GUARD_RULE_DEFAULT;
	gen &= 1;
	struct guard_config *cfg = bpf_map_lookup_elem(&g_config, &gen);
	if (!cfg)
		return GUARD_RULE_DEFAULT;
	__u32 zero = 0;
	struct scratch *scratch = bpf_map_lookup_elem(&g_scratch, &zero);
	__u32 n = 0, words = cfg->words, fields = cfg->fields;
	__u32 small_values[GUARD_SMALL_FIELDS] = {p->family, p->proto, p->flags, p->icmp, p->ttl, p->frag};
	__u32 range_values[GUARD_RANGE_FIELDS] = {p->sport, p->dport, p->length};

	if (p->length > GUARD_LENGTH_MAX)
		range_values[GUARD_F_LENGTH] = GUARD_LENGTH_MAX;
	for (int f = 0; f < GUARD_SMALL_FIELDS; f++) {
		if (!(fields & GUARD_USE_SMALL(f)))
			continue;
		struct guard_bitmap *b = small_bitmap(gen, f, small_values[f]);
		if (!b)
			return GUARD_RULE_DEFAULT;
		bm[n++] = b;
	}
	for (int f = 0; f < GUARD_RANGE_FIELDS; f++) {
		if (!(fields & GUARD_USE_RANGE(f)))
			continue;
		struct guard_bitmap *b = range_bitmap(gen, f, range_values[f]);
		if (!b)
			return GUARD_RULE_DEFAULT;
		bm[n++] = b;
	}
	if (!scratch)
		return GUARD_RULE_DEFAULT;
	if (fields & GUARD_USE_ADDR(GUARD_F_SRC)) {
		if (address_bitmap(&scratch->addr[0], sets_of(p, p->src, GUARD_F_SRC, gen), gen, GUARD_F_SRC, words))
			return GUARD_RULE_DEFAULT;
		bm[n++] = &scratch->addr[0];
	}
	if (fields & GUARD_USE_ADDR(GUARD_F_DST)) {
		if (address_bitmap(&scratch->addr[1], sets_of(p, p->dst, GUARD_F_DST, gen), gen, GUARD_F_DST, words))
			return GUARD_RULE_DEFAULT;
		bm[n++] = &scratch->addr[1];
	}
	for (__u32 w = 0; w < GUARD_WORDS && w < words; w++) {
		__u64 x = ~0ULL;
		for (__u32 i = 0; i < NFIELDS && i < n; i++)
			x &= bm[i]->w[w];
		if (x)
			return w * 64 + lowest_bit(x);
	}
	return GUARD_RULE_DEFAULT;
}

static __always_inline __u64 now_ns(void)
{
	__u32 zero = 0;
	struct guard_state *st = bpf_map_lookup_elem(&g_state, &zero);
	if (st && st->clock_ns)
		return st->clock_ns;
	return bpf_ktime_get_ns();
}

static __always_inline void mask_addr(__u8 *out, __u8 *addr, __u32 len, __u32 prefix)
{
	for (__u32 i = 0; i < 16; i++) {
		__u32 bits = prefix > i * 8 ? prefix - i * 8 : 0;
		__u8 m = bits >= 8 ? 0xff : (__u8)(0xff << (8 - bits));
		out[i] = i < len ? (addr[i] & m) : 0;
	}
}

/* Token bucket (see docs/plan.md): returns 1 when the packet is within the rate. */
static __always_inline int within_rate(struct guard_limit *act, struct packet *p, __u32 slot,
				       __u32 index)
{
	struct guard_bucket_key key = {.slot = slot, .limit = index};
	__u32 len = p->family ? 16 : 4;
	if (act->key != GUARD_KEY_GLOBAL) {
		key.family = p->family;
		mask_addr(key.addr, act->key == GUARD_KEY_SRC ? p->src : p->dst, len,
			  p->family ? act->prefix_v6 : act->prefix_v4);
	}
	__u64 now = now_ns();
	__u64 cap = act->burst * NSEC;
	__u64 cost = act->per_byte ? (__u64)p->length * NSEC : NSEC;
	struct guard_bucket *b = bpf_map_lookup_elem(&g_buckets, &key);
	if (!b) {
		struct guard_bucket fresh = {.tokens = cap, .last_ns = now};
		bpf_map_update_elem(&g_buckets, &key, &fresh, BPF_NOEXIST);
		b = bpf_map_lookup_elem(&g_buckets, &key);
		if (!b)
			return 1; /* no room to keep state: fail open for this packet */
	}
	if (b->blocked_until_ns > now)
		return 0;
	if (now > b->last_ns && act->rate) {
		__u64 elapsed = now - b->last_ns;
		__u64 full = act->burst * NSEC / act->rate + 1; /* time to refill from empty */
		if (elapsed > full)
			elapsed = full;
		__u64 tokens = b->tokens + elapsed * act->rate;
		b->tokens = tokens > cap ? cap : tokens;
		b->last_ns = now;
	}
	if (b->tokens >= cost) {
		b->tokens -= cost;
		return 1;
	}
	if (act->block_ns)
		b->blocked_until_ns = now + act->block_ns;
	return 0;
}

/* Stacked limits, in order: the first refusal stops (see guard.h). */
static __always_inline int within_limits(struct guard_action *act, struct packet *p, __u32 slot)
{
	for (__u32 i = 0; i < GUARD_MAX_LIMITS; i++) {
		if (i >= act->limits)
			break;
		if (!within_rate(&act->limit[i], p, slot, i))
			return 0;
	}
	return 1;
}

/* Drop samples are budgeted per CPU (SAMPLES_PER_SEC), refilled from the coarse clock:
 * a jiffy-grained read that costs a few nanoseconds, so a flood pays little for it. */
static __always_inline void sample(struct packet *p, __u32 rule)
{
	__u32 zero = 0;
	struct sample_budget *tb = bpf_map_lookup_elem(&g_sample_tb, &zero);
	if (!tb)
		return;
	__u64 now = bpf_ktime_get_coarse_ns();
	if (!tb->tokens) {
		__u64 refill = (now - tb->last_ns) / (NSEC / SAMPLES_PER_SEC);
		if (!refill)
			return;
		tb->tokens = refill > SAMPLES_PER_SEC ? SAMPLES_PER_SEC : refill;
		tb->last_ns = now;
	}
	tb->tokens--;
	struct guard_sample *s = bpf_map_lookup_elem(&g_sample_buf, &zero);
	if (!s)
		return;
	s->time_ns = now;
	s->rule = rule;
	s->family = p->family;
	s->proto = p->proto;
	s->sport = p->sport == GUARD_RANGE_NONE ? 0 : p->sport;
	s->dport = p->dport == GUARD_RANGE_NONE ? 0 : p->dport;
	s->length = p->length > 0xffff ? 0xffff : p->length;
	s->pad = 0;
	__builtin_memcpy(s->src, p->src, 16);
	__builtin_memcpy(s->dst, p->dst, 16);
	bpf_ringbuf_output(&g_samples, s, sizeof(*s), 0);
}

SEC("xdp")
int xdp_guard(struct xdp_md *ctx)
{
	struct packet p = {};
	__u32 zero = 0;
#ifdef GUARD_BUILD
	/* A build stamp: one more instruction, so another program tag (upgrade tests). */
	volatile __u32 build = GUARD_BUILD;
	(void)build;
#endif
	int parsed = parse(ctx, &p);
	if (parsed == PARSE_NOT_IP)
		return XDP_PASS;

	struct guard_state *st = bpf_map_lookup_elem(&g_state, &zero);
	if (!st)
		return XDP_PASS;
	__u32 gen = st->gen & 1;
	struct guard_config *cfg = bpf_map_lookup_elem(&g_config, &gen);
	if (!cfg)
		return XDP_PASS;

	__u32 rule = parsed == PARSE_MALFORMED ? GUARD_RULE_MALFORMED : classify(&p, gen);
	if (rule > GUARD_RULE_MALFORMED)
		return XDP_PASS;
	__u32 slot = gen * GUARD_SLOTS + rule;
	struct guard_action *act = bpf_map_lookup_elem(&g_actions, &slot);
	if (!act)
		return XDP_PASS;
	int drop = act->verdict == GUARD_DROP;
	if (act->verdict == GUARD_LIMIT)
		drop = !within_limits(act, &p, slot);

	struct guard_counter *c = bpf_map_lookup_elem(&g_counters, &slot);
	if (c) {
		c->packets++;
		c->bytes += p.length;
		c->dropped += drop;
	}
	if (!drop)
		return XDP_PASS;
	sample(&p, rule);
	return cfg->monitor ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
