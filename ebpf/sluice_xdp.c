// SPDX-License-Identifier: (MIT OR Apache-2.0) AND GPL-2.0-only
// The license section says GPL because the kernel only lets GPL programs call some
// helpers; the source itself is under the project's licences.
//
// sluice's XDP steering program.
//
// It redirects IPv4/TCP packets whose (destination address, destination port) the
// userspace stack owns into the AF_XDP socket bound on the receiving queue, and passes
// everything else (ARP, ICMP, SSH, the kernel's own TCP, fragments, VLAN-tagged frames)
// to the kernel untouched. Every packet is counted exactly once, per CPU.
//
// Admission: a SYN that opens a connection to one of the services is let through while
// its queue's socket ring has room (`ring_levels`) and at the rate its queue's worker
// says it can open connections (the `admission` map, written by the worker; none by
// default), and dropped here otherwise, where a dropped SYN costs
// tens of nanoseconds instead of a copy into the UMEM and a trip through the worker.
// Every other segment of ours (those of established connections, SYN-ACKs to the
// stack's own connects) always passes.
//
// Hostile input: every header is bounds-checked against data_end before it is read, IP
// options are honoured (the TCP header starts at IHL*4), and anything that does not parse
// is passed to the kernel (which drops it) and counted as malformed.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// Must match userspace/xsk/src/program.rs.
#define MAX_QUEUES 256
#define MAX_SERVICES 4096

enum counter {
	COUNTER_REDIRECTED = 0, // steered into an AF_XDP socket
	COUNTER_PASSED = 1,     // not ours: handed to the kernel
	COUNTER_MALFORMED = 2,  // failed to parse: handed to the kernel, which drops it
	COUNTER_NO_SOCKET = 3,  // ours, but no socket bound on that queue: handed to the kernel
	COUNTER_SHED = 4,       // a SYN past its queue's admission budget: dropped
	COUNTER_SHED_RING = 5,  // a SYN while its queue's socket ring is filling: dropped
	COUNTER_MAX = 6,
};

// Key of the services map: network byte order, exactly as on the wire, so the lookup
// needs no conversion. The padding is explicit so userspace and BPF agree on 8 bytes.
struct service_key {
	__be32 addr;
	__be16 port;
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SERVICES);
	__type(key, struct service_key);
	__type(value, __u32);
} services SEC(".maps");

// The stack's ephemeral port range for active opens, [first, last] in host order, steered
// for every address that has a (addr, port 0) entry in `services`. A range in one entry
// instead of thousands of (addr, port) keys. first = 0 disables it.
struct port_range {
	__u16 first;
	__u16 last;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct port_range);
} client_ports SEC(".maps");

// A queue's admission budget for new connections, as a generic cell rate algorithm
// (a token bucket kept as one timestamp): a SYN every `interval_ns` on average, and
// bursts of up to `tolerance_ns / interval_ns` more. interval_ns = 0 admits every SYN.
// Written by userspace (the queue's worker); must match userspace/xsk/src/program.rs.
struct admission_budget {
	__u64 interval_ns;
	__u64 tolerance_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, struct admission_budget);
} admission SEC(".maps");

// Each queue's theoretical arrival time of the next SYN, the algorithm's one state; the
// program's own, apart from the budget so that writing a budget does not reset it. One
// queue's packets are processed by one CPU at a time (its NAPI), so plain reads and
// writes suffice.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u64);
} admission_tat SEC(".maps");

// How full each queue's AF_XDP receive ring is, as far as the program can tell: it
// counts the frames it steers there (`steered`); the queue's worker, each time it polls
// the ring, writes `base` = steered then less the frames still in the ring then. So
// `steered - base` is the ring's fill now, too high only by what the worker took since
// its last poll or what the kernel dropped for a full ring (both corrected at the next
// poll). Past `limit` frames (0: never), a SYN is dropped: a queue whose worker falls
// behind (a stall, a burst, an overload) keeps the room left for the segments of the
// connections it has accepted, which finish them, instead of letting new ones in to
// lose them all. Memory-mapped by the workers (one store a poll, no system call); must
// match userspace/xsk/src/program.rs.
struct ring_level {
	__u64 steered;
	__u64 base;
	__u64 limit;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, struct ring_level);
} ring_levels SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline int count(__u32 which, int action)
{
	__u64 *value = bpf_map_lookup_elem(&counters, &which);
	if (value)
		*value += 1; // per-CPU slot: no atomic needed
	return action;
}

// Whether the packet is for one of the stack's ephemeral ports on an address it owns.
static __always_inline int is_client_port(struct service_key *key)
{
	__u32 zero = 0;
	struct port_range *range = bpf_map_lookup_elem(&client_ports, &zero);
	if (!range || range->first == 0)
		return 0;
	__u16 port = bpf_ntohs(key->port);
	if (port < range->first || port > range->last)
		return 0;
	struct service_key owned = { .addr = key->addr, .port = 0, .pad = 0 };
	return bpf_map_lookup_elem(&services, &owned) != 0;
}

// Whether a SYN arriving on `queue` is within the queue's budget (and takes its share).
static __always_inline int admit_syn(__u32 queue)
{
	struct admission_budget *budget = bpf_map_lookup_elem(&admission, &queue);
	if (!budget || budget->interval_ns == 0)
		return 1;
	__u64 *tat = bpf_map_lookup_elem(&admission_tat, &queue);
	if (!tat)
		return 1;
	__u64 now = bpf_ktime_get_ns();
	__u64 next = *tat > now ? *tat : now;
	if (next - now > budget->tolerance_ns)
		return 0;
	*tat = next + budget->interval_ns;
	return 1;
}

SEC("xdp")
int sluice_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return count(COUNTER_MALFORMED, XDP_PASS);
	// VLAN-tagged (0x8100, 0x88a8) and every non-IPv4 frame go to the kernel.
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return count(COUNTER_PASSED, XDP_PASS);

	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return count(COUNTER_MALFORMED, XDP_PASS);
	if (ip->version != 4 || ip->ihl < 5)
		return count(COUNTER_MALFORMED, XDP_PASS);
	if (ip->protocol != IPPROTO_TCP)
		return count(COUNTER_PASSED, XDP_PASS);
	// Any fragment (more-fragments set or a non-zero offset) is the kernel's to reassemble.
	if (ip->frag_off & bpf_htons(0x3fff))
		return count(COUNTER_PASSED, XDP_PASS);

	__u32 ip_header_len = ip->ihl * 4;
	__u32 ip_total_len = bpf_ntohs(ip->tot_len);
	if (ip_total_len < ip_header_len + sizeof(struct tcphdr))
		return count(COUNTER_MALFORMED, XDP_PASS);
	if ((void *)ip + ip_total_len > data_end)
		return count(COUNTER_MALFORMED, XDP_PASS);

	// ihl is 4 bits, so the offset is bounded by 60: the verifier can track it.
	struct tcphdr *tcp = (void *)ip + ip_header_len;
	if ((void *)(tcp + 1) > data_end)
		return count(COUNTER_MALFORMED, XDP_PASS);
	__u32 tcp_header_len = tcp->doff * 4;
	if (tcp_header_len < sizeof(struct tcphdr) ||
	    ip_header_len + tcp_header_len > ip_total_len)
		return count(COUNTER_MALFORMED, XDP_PASS);

	struct service_key key = {
		.addr = ip->daddr,
		.port = tcp->dest,
		.pad = 0,
	};
	int service = bpf_map_lookup_elem(&services, &key) != 0;
	if (!service && !is_client_port(&key))
		return count(COUNTER_PASSED, XDP_PASS);
	__u32 queue = ctx->rx_queue_index;
	struct ring_level *level = bpf_map_lookup_elem(&ring_levels, &queue);
	// A connection's first SYN to a service: admitted while the queue's ring has room,
	// and within the queue's budget.
	if (service && tcp->syn && !tcp->ack) {
		if (level && level->limit && level->steered - level->base > level->limit)
			return count(COUNTER_SHED_RING, XDP_DROP);
		if (!admit_syn(queue))
			return count(COUNTER_SHED, XDP_DROP);
	}

	// With XDP_PASS in the flags, the helper itself falls back to passing the packet when
	// no socket is bound on this queue, and tells us so by its return value.
	int action = bpf_redirect_map(&xsks, queue, XDP_PASS);
	if (action == XDP_REDIRECT) {
		if (level)
			__sync_fetch_and_add(&level->steered, 1);
		return count(COUNTER_REDIRECTED, action);
	}
	return count(COUNTER_NO_SOCKET, action);
}

char LICENSE[] SEC("license") = "GPL";
