/* SPDX-License-Identifier: Apache-2.0 */
/* Layouts shared by counter.bpf.c and tests/bpf/layouts.py (checked against BTF). */
#ifndef BULWARK_TEST_COUNTER_H
#define BULWARK_TEST_COUNTER_H

#include <linux/types.h>

#define COUNTER_SLOTS 2

struct counter_config {
	__u16 watch_port; /* UDP destination port the programs look at (network order) */
	__u8 drop;        /* 1: drop watched packets, 0: pass them */
	__u8 pad;
	__u32 reserved;
};

struct counter_value {
	__u64 packets;
	__u64 bytes;
};

#endif
