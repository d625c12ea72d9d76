// SPDX-License-Identifier: (MIT OR Apache-2.0) AND GPL-2.0-only
//
// Test-only network impairment: a tc (clsact) classifier that the end-to-end tests attach
// to the peer's veth, on ingress and egress, to lose IPv4/TCP packets on the wire.
//
// - random loss: each TCP packet is dropped with probability drop_ppm / 1e6;
// - blackhole: every TCP packet is dropped (a silent peer, for keepalive tests).
//
// Only TCP is touched, so ARP keeps working and the peer stays reachable. tc is used
// rather than XDP because XDP sees only one direction and the server side's XDP slot
// belongs to the program under test; "action drop" is not available in this kernel
// (act_gact is a module that cannot load), so the classifier drops by itself.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct impair_config {
	__u32 drop_ppm;  // parts per million of TCP packets to drop
	__u32 blackhole; // non-zero: drop every TCP packet
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct impair_config);
} impair_config SEC(".maps");

// [0] TCP packets seen, [1] TCP packets dropped.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} impair_counters SEC(".maps");

static __always_inline void bump(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&impair_counters, &which);
	if (v)
		*v += 1;
}

SEC("classifier")
int impair(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_TCP)
		return TC_ACT_OK;

	__u32 zero = 0;
	struct impair_config *cfg = bpf_map_lookup_elem(&impair_config, &zero);
	if (!cfg)
		return TC_ACT_OK;
	bump(0);
	if (cfg->blackhole || (cfg->drop_ppm && bpf_get_prandom_u32() % 1000000 < cfg->drop_ppm)) {
		bump(1);
		return TC_ACT_SHOT;
	}
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
