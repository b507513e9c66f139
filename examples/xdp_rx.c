/*
 * xdp_rx.c - an AF_XDP receiver whose UMEM frames are Labyrinth pages.
 *
 *   xdp_rx IFNAME [QUEUE [SECONDS [WORKERS]]]      (root; stop with Ctrl-C)
 *
 * The UMEM region is the arena's memory, one 4096-byte frame per page:
 *   - the RX thread owns a room and refills the fill ring from it in bulk
 *     with LAB_GFP_ATOMIC: it never blocks and makes no system call for it;
 *   - received frames go to worker threads through single-producer rings;
 *     the workers touch the payload and give the frames back with
 *     lab_free_pages_bulk from their own cores (remote frees to the room);
 *   - a frame's address in a descriptor points past the headroom, so the
 *     workers find its page with lab_page_of.
 * The arena is laid over the UMEM with the caller-memory settings the header
 * describes: exact watermarks of 0 (every frame is a packet buffer, no
 * emergency floor) and no decommit (the kernel has pinned these pages).
 *
 * The core (everything above main) is also the receive loop of the
 * `labyrinth xdp` tool, which adds the reporting and an array-stack baseline
 * through the same struct frame_pool.
 */
#include "labyrinth.h"
#include "xdp_packet.h"

#include <errno.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <xdp/xsk.h>

#define NUM_FRAMES   8192u
#define FRAME_SIZE   4096u          /* one Labyrinth page */
#define RING_SIZE    2048u          /* fill and RX rings */
#define RX_BATCH     64u
#define FREE_BATCH   32u            /* frames a worker gives back per call */
#define WORKER_RING  1024u
#define MAX_WORKERS  8u
/* Frames kept for the RX room alone: what can be out of it at once without
 * coming back, the fill ring's worth plus the workers' rings' worth, so a
 * background job that takes every other frame cannot starve the fill ring. */
#define RX_RESERVE   (2 * RING_SIZE)

/* ---- where frames come from --------------------------------------------------
 * alloc_bulk runs on the RX thread only and must not block; free_bulk runs on
 * any worker, with frame addresses that may point inside the frame. */
struct frame_pool {
    size_t (*alloc_bulk)(struct frame_pool *fp, void **frames, size_t n);
    void   (*free_bulk)(struct frame_pool *fp, void *const *frames, size_t n);
};

/* The Labyrinth pool: an arena over the UMEM and the RX thread's room. */
struct lab_pool {
    struct frame_pool ops;
    lab_arena *arena;
    lab_room  *room;
};

static size_t lab_pool_alloc(struct frame_pool *fp, void **frames, size_t n)
{
    struct lab_pool *p = (struct lab_pool *)fp;
    /* NOWARN: on a receive path an empty pool is a drop, not an event to log */
    return lab_room_alloc_bulk(p->room, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, frames, n);
}

static void lab_pool_free(struct frame_pool *fp, void *const *frames, size_t n)
{
    struct lab_pool *p = (struct lab_pool *)fp;
    void *pages[FREE_BATCH];
    while (n) {
        size_t k = n < FREE_BATCH ? n : FREE_BATCH;
        for (size_t i = 0; i < k; i++)
            pages[i] = lab_page_of(p->arena, frames[i]);
        lab_free_pages_bulk(p->arena, pages, k, 0);
        frames += k;
        n -= k;
    }
}

/* The arena over the UMEM region `area` (NUM_FRAMES pages), and the room the
 * RX thread refills from, with `reserve` frames kept for it alone. */
static int lab_pool_init(struct lab_pool *p, void *area, size_t reserve)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = (size_t)NUM_FRAMES * FRAME_SIZE;
    cfg.memory = area;
    cfg.max_order = 6;                    /* the background job's blocks, if any */
    cfg.flags = LAB_ARENA_EXACT_WMARKS;   /* min = low = high = 0: no floor */
    cfg.name = "umem";
    int err = lab_arena_create(&cfg, &p->arena);
    if (err)
        return err;
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.reserve = reserve;
    rc.batch = RX_BATCH;
    rc.high = RING_SIZE;   /* frames come back in bursts; keep them here */
    rc.ring = NUM_FRAMES;  /* the workers' returns all fit: none spill to the zone */
    rc.name = "rx";
    if ((err = lab_room_create(p->arena, &rc, &p->room)))
        return err;
    p->ops.alloc_bulk = lab_pool_alloc;
    p->ops.free_bulk = lab_pool_free;
    return 0;
}

/* ---- the rings from the RX thread to the workers ------------------------------ */
struct worker_ring {
    _Atomic size_t head __attribute__((aligned(64)));   /* written by the RX thread */
    _Atomic size_t tail __attribute__((aligned(64)));   /* written by the worker */
    void *slot[WORKER_RING];
};

/* Up to n frames in, one index publication; returns how many went in. */
static size_t worker_ring_push_n(struct worker_ring *w, void *const *frames, size_t n)
{
    size_t h = atomic_load_explicit(&w->head, memory_order_relaxed);
    size_t room = WORKER_RING - (h - atomic_load_explicit(&w->tail, memory_order_acquire));
    if (n > room)
        n = room;
    for (size_t i = 0; i < n; i++)
        w->slot[(h + i) % WORKER_RING] = frames[i];
    atomic_store_explicit(&w->head, h + n, memory_order_release);
    return n;
}

/* Up to max frames out, one index publication. */
static size_t worker_ring_pop_n(struct worker_ring *w, void **frames, size_t max)
{
    size_t t = atomic_load_explicit(&w->tail, memory_order_relaxed);
    size_t n = atomic_load_explicit(&w->head, memory_order_acquire) - t;
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++)
        frames[i] = w->slot[(t + i) % WORKER_RING];
    atomic_store_explicit(&w->tail, t + n, memory_order_release);
    return n;
}

/* ---- the receiver ---------------------------------------------------------------- */
struct xdp_rx {
    void *area;                       /* the UMEM: NUM_FRAMES frames */
    struct xsk_umem *umem;
    struct xsk_socket *xsk;
    struct xsk_ring_prod fill;
    struct xsk_ring_cons comp, rx;
    struct frame_pool *pool;
    unsigned nr_workers;
    struct worker_ring *rings;
    _Atomic bool stop, workers_stop;
    unsigned char *posted;            /* frame i is the kernel's (in the fill ring) */
    /* the RX thread's counters (others read them relaxed) */
    _Atomic uint64_t posted_total, received, refills, refill_partial, refill_short, frames_short, kicks, polls,
                     worker_full, foreign;
    _Atomic uint64_t processed, corrupt;  /* the workers' (atomic adds, per batch) */
    /* optional: the RX thread's body (default xdp_rx_thread), and a call after
     * every refill with its duration in TSC ticks */
    void *(*rx_main)(void *rx);
    void (*on_refill)(void *ctx, uint64_t ticks, size_t asked, size_t got);
    void *on_refill_ctx;
};

/* An owner-written counter others read: a relaxed load and store, no RMW. */
static inline void count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

static inline uint64_t frame_offset(const struct xdp_rx *rx, const void *frame)
{
    return (uint64_t)((const char *)frame - (const char *)rx->area);
}

/* Map the UMEM region and register it: it is the arena's memory. */
static int xdp_rx_map_umem(struct xdp_rx *rx)
{
    rx->area = mmap(NULL, (size_t)NUM_FRAMES * FRAME_SIZE, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (rx->area == MAP_FAILED)
        return -errno;
    rx->posted = calloc(NUM_FRAMES, 1);
    return rx->posted ? 0 : -ENOMEM;
}

/* Bind an AF_XDP socket to ifname/queue in generic (SKB) copy mode.  Returns
 * 0 or a negative errno (the kernel's reason). */
static int xdp_rx_open(struct xdp_rx *rx, const char *ifname, unsigned queue)
{
    struct xsk_umem_config ucfg = {
        .fill_size = RING_SIZE, .comp_size = RING_SIZE,
        .frame_size = FRAME_SIZE, .frame_headroom = 0, .flags = 0,
    };
    int err = xsk_umem__create(&rx->umem, rx->area, (uint64_t)NUM_FRAMES * FRAME_SIZE, &rx->fill, &rx->comp, &ucfg);
    if (err)
        return err;
    struct xsk_socket_config scfg = {
        .rx_size = RING_SIZE, .tx_size = 0,
        .xdp_flags = XDP_FLAGS_SKB_MODE, .bind_flags = XDP_COPY | XDP_USE_NEED_WAKEUP,
    };
    return xsk_socket__create(&rx->xsk, ifname, queue, rx->umem, &rx->rx, NULL, &scfg);
}

/* Fill-ring slots free -> frames from the pool, a bulk call per batch.
 * Returns false when the ring is full enough or the pool had no frame.  A
 * bulk call may place fewer than asked (it stops where a step of the
 * allocation path fails); the next call goes on from there. */
static bool xdp_rx_refill_batch(struct xdp_rx *rx)
{
    void *frames[RX_BATCH];
    uint32_t want = xsk_prod_nb_free(&rx->fill, RX_BATCH);
    if (want < RX_BATCH / 2)
        return false;   /* not worth a call: wait until half a batch is free */
    if (want > RX_BATCH)
        want = RX_BATCH;
    uint64_t t0 = rx->on_refill ? rdtsc() : 0;
    size_t got = rx->pool->alloc_bulk(rx->pool, frames, want);
    if (rx->on_refill)
        rx->on_refill(rx->on_refill_ctx, rdtsc() - t0, want, got);
    count(&rx->refills, 1);
    if (got < want)
        count(&rx->refill_partial, 1);
    if (!got) {   /* the allocator had no frame: the fill ring may run dry */
        count(&rx->refill_short, 1);
        count(&rx->frames_short, want);
        return false;
    }
    uint32_t idx = 0;
    xsk_ring_prod__reserve(&rx->fill, (uint32_t)got, &idx);   /* cannot fail: nb_free said so */
    for (size_t i = 0; i < got; i++) {
        uint64_t off = frame_offset(rx, frames[i]);
        rx->posted[off / FRAME_SIZE] = 1;
        *xsk_ring_prod__fill_addr(&rx->fill, idx + (uint32_t)i) = off;
    }
    xsk_ring_prod__submit(&rx->fill, (uint32_t)got);
    count(&rx->posted_total, got);
    return true;
}

static void xdp_rx_refill(struct xdp_rx *rx)
{
    while (xdp_rx_refill_batch(rx))
        ;
}

/* Received descriptors -> one worker per batch, round robin.  Returns how
 * many were received. */
static unsigned xdp_rx_receive(struct xdp_rx *rx, unsigned *next_worker)
{
    uint32_t idx = 0;
    unsigned n = xsk_ring_cons__peek(&rx->rx, RX_BATCH, &idx);
    if (!n)
        return 0;
    void *frames[RX_BATCH];
    size_t nf = 0;
    for (unsigned i = 0; i < n; i++) {
        const struct xdp_desc *d = xsk_ring_cons__rx_desc(&rx->rx, idx + i);
        uint64_t addr = xsk_umem__add_offset_to_addr(d->addr);
        uint64_t frame = addr / FRAME_SIZE;
        if (frame >= NUM_FRAMES || !rx->posted[frame]) {
            /* not a frame we posted: the kernel and we disagree */
            count(&rx->foreign, 1);
            continue;
        }
        rx->posted[frame] = 0;
        frames[nf++] = xsk_umem__get_data(rx->area, addr);
    }
    xsk_ring_cons__release(&rx->rx, n);
    count(&rx->received, n);
    struct worker_ring *w = &rx->rings[(*next_worker)++ % rx->nr_workers];
    size_t pushed = worker_ring_push_n(w, frames, nf);
    if (pushed < nf) {   /* the worker is behind: drop, the frames go straight back */
        count(&rx->worker_full, nf - pushed);
        rx->pool->free_bulk(rx->pool, frames + pushed, nf - pushed);
    }
    return n;
}

/* The RX thread.  Only the kicks (recvfrom, poll) are system calls, and they
 * are the socket's, not the allocator's. */
static void *xdp_rx_thread(void *arg)
{
    struct xdp_rx *rx = arg;
    int fd = xsk_socket__fd(rx->xsk);
    unsigned next_worker = 0;
    while (!atomic_load_explicit(&rx->stop, memory_order_relaxed)) {
        xdp_rx_refill(rx);
        if (xsk_ring_prod__needs_wakeup(&rx->fill)) {
            recvfrom(fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
            count(&rx->kicks, 1);
        }
        if (xdp_rx_receive(rx, &next_worker) == 0) {
            struct pollfd p = { .fd = fd, .events = POLLIN };
            poll(&p, 1, 10);
            count(&rx->polls, 1);
        }
    }
    return NULL;
}

struct worker_arg {
    struct xdp_rx *rx;
    struct worker_ring *ring;
};

/* A worker: read each packet's body, then give the frames back in a batch. */
static void *xdp_worker_thread(void *arg)
{
    struct worker_arg *wa = arg;
    struct xdp_rx *rx = wa->rx;
    void *batch[FREE_BATCH];
    uint64_t bad = 0;
    unsigned idle = 0;
    for (;;) {
        size_t n = worker_ring_pop_n(wa->ring, batch, FREE_BATCH);
        if (!n) {
            if (atomic_load(&rx->workers_stop))
                break;
            /* idle: yield for a while, then sleep, leaving the CPU to the
             * RX thread and the kernel's receive work */
            if (++idle < 64) {
                sched_yield();
            } else {
                struct timespec ts = { 0, 50 * 1000 };
                nanosleep(&ts, NULL);
            }
            continue;
        }
        idle = 0;
        for (size_t i = 0; i < n; i++) {
            const struct xdp_pkt_body *b = (const struct xdp_pkt_body *)((char *)batch[i] + XDP_PKT_HEADERS);
            bad += b->magic != XDP_PKT_MAGIC || b->check != xdp_pkt_check(b->seq);
        }
        rx->pool->free_bulk(rx->pool, batch, n);
        atomic_fetch_add_explicit(&rx->processed, n, memory_order_relaxed);
    }
    atomic_fetch_add(&rx->corrupt, bad);
    return NULL;
}

/* After the socket is gone the fill ring's frames are ours again: give them
 * back, so that every frame is accounted for. */
static size_t xdp_rx_reclaim_posted(struct xdp_rx *rx)
{
    void *frames[FREE_BATCH];
    size_t n = 0, total = 0;
    for (size_t f = 0; f < NUM_FRAMES; f++) {
        if (!rx->posted[f])
            continue;
        rx->posted[f] = 0;
        frames[n++] = (char *)rx->area + f * FRAME_SIZE;
        if (n == FREE_BATCH) {
            rx->pool->free_bulk(rx->pool, frames, n);
            total += n;
            n = 0;
        }
    }
    rx->pool->free_bulk(rx->pool, frames, n);
    return total + n;
}

/* Run the receiver until *stop: the RX thread and the workers, then drain. */
static int xdp_rx_run(struct xdp_rx *rx, _Atomic bool *stop, void (*every_second)(struct xdp_rx *rx, void *ctx),
                      void *ctx)
{
    pthread_t rx_thr, workers[MAX_WORKERS];
    struct worker_arg wa[MAX_WORKERS];
    rx->rings = aligned_alloc(64, sizeof(*rx->rings) * rx->nr_workers);
    if (!rx->rings)
        return -ENOMEM;
    memset(rx->rings, 0, sizeof(*rx->rings) * rx->nr_workers);
    for (unsigned i = 0; i < rx->nr_workers; i++) {
        wa[i] = (struct worker_arg){ rx, &rx->rings[i] };
        pthread_create(&workers[i], NULL, xdp_worker_thread, &wa[i]);
    }
    pthread_create(&rx_thr, NULL, rx->rx_main ? rx->rx_main : xdp_rx_thread, rx);
    while (!atomic_load(stop)) {
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        for (int i = 0; i < 10 && !atomic_load(stop); i++)
            nanosleep(&ts, NULL);
        if (every_second)
            every_second(rx, ctx);
    }
    atomic_store(&rx->stop, true);
    pthread_join(rx_thr, NULL);
    atomic_store(&rx->workers_stop, true);
    for (unsigned i = 0; i < rx->nr_workers; i++)
        pthread_join(workers[i], NULL);
    return 0;
}

static void xdp_rx_close(struct xdp_rx *rx)
{
    if (rx->xsk)
        xsk_socket__delete(rx->xsk);
    if (rx->umem)
        xsk_umem__delete(rx->umem);
    rx->xsk = NULL;
    rx->umem = NULL;
}

#ifndef XDP_RX_NO_MAIN
static _Atomic bool stop_requested;
static void on_signal(int sig) { (void)sig; atomic_store(&stop_requested, true); }

static void print_second(struct xdp_rx *rx, void *ctx)
{
    uint64_t *last = ctx, now = atomic_load(&rx->received);
    fprintf(stderr, "received %llu pps, short refills %llu\n", (unsigned long long)(now - *last),
            (unsigned long long)atomic_load(&rx->refill_short));
    *last = now;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: xdp_rx IFNAME [QUEUE [SECONDS [WORKERS]]]\n");
        return 2;
    }
    unsigned queue = argc > 2 ? (unsigned)atoi(argv[2]) : 0;
    double seconds = argc > 3 ? atof(argv[3]) : 0;
    struct xdp_rx rx = { .nr_workers = argc > 4 ? (unsigned)atoi(argv[4]) : 1 };
    if (rx.nr_workers == 0 || rx.nr_workers > MAX_WORKERS)
        rx.nr_workers = 1;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (seconds > 0) {
        signal(SIGALRM, on_signal);
        alarm((unsigned)seconds);
    }

    struct lab_pool pool;
    int err = xdp_rx_map_umem(&rx);
    if (err || (err = lab_pool_init(&pool, rx.area, RX_RESERVE))) {
        fprintf(stderr, "xdp_rx: setting up the UMEM arena failed (%d)\n", err);
        return 1;
    }
    rx.pool = &pool.ops;
    if ((err = xdp_rx_open(&rx, argv[1], queue))) {
        fprintf(stderr, "xdp_rx: AF_XDP socket on %s queue %u: %s\n", argv[1], queue, strerror(-err));
        return 1;
    }
    printf("xdp_rx: receiving on %s queue %u: ready\n", argv[1], queue);
    fflush(stdout);
    uint64_t last = 0;
    xdp_rx_run(&rx, &stop_requested, print_second, &last);
    xdp_rx_close(&rx);
    xdp_rx_reclaim_posted(&rx);

    lab_room_destroy(pool.room);
    lab_stats st;
    lab_stats_get(pool.arena, &st);
    int check = lab_check(pool.arena);
    size_t lost = st.total_pages - st.free_pages;
    printf("received %llu, processed %llu, dropped (workers behind) %llu, corrupt %llu, frames lost %zu, lab_check %s\n",
           (unsigned long long)rx.received, (unsigned long long)rx.processed, (unsigned long long)rx.worker_full,
           (unsigned long long)rx.corrupt, lost, check ? lab_strerror(check) : "ok");
    lab_arena_destroy(pool.arena);
    munmap(rx.area, (size_t)NUM_FRAMES * FRAME_SIZE);
    free(rx.posted);
    free(rx.rings);
    return lost || check || rx.corrupt ? 1 : 0;
}
#endif
