/*
 * xdp_packet.h - the body of the test packets of the AF_XDP example: what
 * `labyrinth xdp-send` writes after the Ethernet, IPv4 and UDP headers and
 * what the receiver's workers check.
 */
#ifndef XDP_PACKET_H
#define XDP_PACKET_H

#include <stdint.h>

#define XDP_PKT_HEADERS (14 + 20 + 8)
#define XDP_PKT_MAGIC   0x4c41425852585831ull   /* "LABXRXX1" */

struct xdp_pkt_body {
    uint64_t magic, seq, check;
};

static inline uint64_t xdp_pkt_check(uint64_t seq) { return seq * 0x9e3779b97f4a7c15ull; }

#endif
