// SPDX-License-Identifier: Apache-2.0
/* Two tiny XDP programs for the native layer's tests: each counts UDP packets to a
 * watched port in its own slot (per CPU) and passes or drops them as configured. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "counter.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct counter_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_SLOTS);
	__type(key, __u32);
	__type(value, struct counter_value);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 200000);
	__type(key, __u32);
	__type(value, __u64);
} hosts SEC(".maps");

static __always_inline int count(struct xdp_md *ctx, __u32 slot)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct udphdr *udp;
	__u32 zero = 0;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	if (ip->protocol != IPPROTO_UDP || ip->ihl != 5)
		return XDP_PASS;
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > data_end)
		return XDP_PASS;
	struct counter_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || udp->dest != cfg->watch_port)
		return XDP_PASS;
	struct counter_value *value = bpf_map_lookup_elem(&counters, &slot);
	if (value) {
		value->packets += 1;
		value->bytes += data_end - data;
	}
	return cfg->drop ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int xdp_count_a(struct xdp_md *ctx)
{
	return count(ctx, 0);
}

SEC("xdp")
int xdp_count_b(struct xdp_md *ctx)
{
	return count(ctx, 1);
}

char LICENSE[] SEC("license") = "GPL";
