/*
 * xdp_send.c - `labyrinth xdp-send`: the traffic for the AF_XDP scenario.
 *
 * Raw UDP frames (Ethernet broadcast, IPv4, UDP, then the body the receiver
 * checks: magic, sequence number, check word) sent on one interface with
 * AF_PACKET and sendmmsg, 64 per call, as fast as it can or paced at --pps.
 * Bounded in packets and in time; prints what it sent and what the
 * interface dropped on the way.
 */
#include "xdp_packet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SEND_BATCH 64
#define PKT_LEN    128   /* headers, body, padding */

static uint64_t iface_counter(const char *ifname, const char *what)
{
    char path[256];
    snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/%s", ifname, what);
    FILE *f = fopen(path, "r");
    unsigned long long v = 0;
    if (f) {
        if (fscanf(f, "%llu", &v) != 1)
            v = 0;
        fclose(f);
    }
    return v;
}

static uint16_t ip_checksum(const void *hdr, size_t len)
{
    const uint16_t *w = hdr;
    uint32_t sum = 0;
    for (size_t i = 0; i < len / 2; i++)
        sum += w[i];
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static void build_packet(unsigned char *p, uint64_t seq)
{
    memset(p, 0, PKT_LEN);
    struct ether_header *eth = (struct ether_header *)p;
    memset(eth->ether_dhost, 0xff, ETH_ALEN);
    memcpy(eth->ether_shost, "\x02\x4c\x41\x42\x00\x01", ETH_ALEN);
    eth->ether_type = htons(ETHERTYPE_IP);
    struct iphdr *ip = (struct iphdr *)(p + sizeof(*eth));
    ip->version = 4;
    ip->ihl = 5;
    ip->ttl = 64;
    ip->protocol = IPPROTO_UDP;
    ip->tot_len = htons(PKT_LEN - sizeof(*eth));
    ip->saddr = htonl(0x0a2a0001);   /* 10.42.0.1 -> 10.42.0.2 */
    ip->daddr = htonl(0x0a2a0002);
    ip->check = ip_checksum(ip, sizeof(*ip));
    struct udphdr *udp = (struct udphdr *)(ip + 1);
    udp->source = htons(9);
    udp->dest = htons(9);
    udp->len = htons(PKT_LEN - sizeof(*eth) - sizeof(*ip));
    struct xdp_pkt_body *b = (struct xdp_pkt_body *)(p + XDP_PKT_HEADERS);
    b->magic = XDP_PKT_MAGIC;
    b->seq = seq;
    b->check = xdp_pkt_check(seq);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int xdp_send_main(int argc, char **argv);
int xdp_send_main(int argc, char **argv)
{
    const char *ifname = NULL;
    uint64_t packets = 1000000, pps = 0;
    double seconds = 5;
    if (argc % 2)
        goto usage;   /* every option takes a value */
    for (int i = 0; i < argc; i += 2) {
        const char *v = argv[i + 1];
        if (!strcmp(argv[i], "--ifname")) ifname = v;
        else if (!strcmp(argv[i], "--packets")) packets = strtoull(v, NULL, 10);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(v);
        else if (!strcmp(argv[i], "--pps")) pps = strtoull(v, NULL, 10);
        else goto usage;
    }
    if (!ifname)
        goto usage;

    int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    unsigned ifindex = if_nametoindex(ifname);
    if (fd < 0 || !ifindex) {
        fprintf(stderr, "labyrinth xdp-send: %s: %s\n", fd < 0 ? "AF_PACKET socket" : ifname, strerror(errno));
        return 1;
    }
    struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = (int)ifindex };
    if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) != 0) {
        fprintf(stderr, "labyrinth xdp-send: bind to %s: %s\n", ifname, strerror(errno));
        return 1;
    }

    static unsigned char buf[SEND_BATCH][PKT_LEN];
    struct iovec iov[SEND_BATCH];
    struct mmsghdr msg[SEND_BATCH];
    for (int i = 0; i < SEND_BATCH; i++) {
        iov[i] = (struct iovec){ buf[i], PKT_LEN };
        msg[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
    }
    uint64_t dropped0 = iface_counter(ifname, "tx_dropped");
    uint64_t sent = 0, refused = 0;
    double t0 = now_s(), end = t0 + seconds;
    while (sent < packets && now_s() < end) {
        unsigned n = packets - sent < SEND_BATCH ? (unsigned)(packets - sent) : SEND_BATCH;
        for (unsigned i = 0; i < n; i++)
            build_packet(buf[i], sent + i);
        if (pps) {   /* paced: the batch leaves when the schedule says */
            double due = t0 + (double)sent / (double)pps, now = now_s();
            if (due > now) {
                struct timespec ts = { (time_t)(due - now), (long)((due - now - (double)(time_t)(due - now)) * 1e9) };
                nanosleep(&ts, NULL);
            }
        }
        int r = sendmmsg(fd, msg, n, 0);
        if (r < 0) {
            if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR) {
                fprintf(stderr, "labyrinth xdp-send: sendmmsg: %s\n", strerror(errno));
                break;
            }
            refused++;
            sched_yield();
            continue;
        }
        sent += (unsigned)r;
    }
    double elapsed = now_s() - t0;
    close(fd);
    uint64_t dropped = iface_counter(ifname, "tx_dropped") - dropped0;
    printf("xdp-send sent %llu dropped_by_veth %llu seconds %.3f pps %.0f refused_calls %llu\n",
           (unsigned long long)sent, (unsigned long long)dropped, elapsed, (double)sent / elapsed,
           (unsigned long long)refused);
    return 0;
usage:
    fprintf(stderr, "usage: labyrinth xdp-send --ifname IF [--packets N] [--seconds S] [--pps RATE]\n");
    return 2;
}
