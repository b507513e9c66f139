/*
 * labyrinth - the command-line tool.  `labyrinth demo` runs the reference
 * scenario: a trading system's packet path.
 *
 *   RX interrupt   a generator thread sends SIGUSR1 to the receive thread;
 *                  the handler allocates a burst of socket-buffer pages with
 *                  one LAB_GFP_ATOMIC lab_room_alloc_bulk call on its own room
 *                  (timed; --alloc single: one lab_room_alloc_result per page),
 *                  stamps them like packets and hands them to workers through
 *                  single-producer rings;
 *   workers        check the stamp, "process" the packet and give the page
 *                  back to the RX room with lab_free_pages, one call per page
 *                  (--free bulk: lab_free_pages_bulk, 32 at a time): remote
 *                  frees, through the room's return ring;
 *   background     allocates and frees LAB_GFP_KERNEL blocks of mixed orders
 *                  and keeps a shrinker-backed cache that grows until the
 *                  arena is under pressure, so the reserves and reclaim work.
 *
 * At the end: pages/s, the atomic allocation latency percentiles, failures
 * by reason, reserve and reclaim activity, and the leak accounting.  Exits 1
 * if a page was lost, corrupted or lab_check failed.
 */
#include "labyrinth.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

/* ---- options ---------------------------------------------------------------- */
static struct {
    double seconds;
    unsigned burst;        /* pages per interrupt */
    unsigned workers;
    size_t arena_mib;
    unsigned reserve;      /* RX room reserve, pages */
    uint64_t irq_gap_ns;   /* pause between interrupts; 0 = as fast as possible */
    unsigned bg_max_order;
    bool alloc_single;     /* RX: one lab_room_alloc_result per page instead of a bulk call */
    bool free_bulk;        /* workers: lab_free_pages_bulk, 32 at a time */
    bool quiet;
} opt = { 10.0, 16, 1, 64, 1024, 0, 6, false, false, false };

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The cheapest tick counter the CPU offers to user space, calibrated against
 * now_ns (calibrate_ticks): the TSC on x86; on aarch64 the generic timer's
 * virtual count, coarser (often tens of ns a tick) but a register read; the
 * clock elsewhere. */
static inline uint64_t ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return __rdtsc();
#elif defined(__aarch64__)
    uint64_t t;
    __asm__ __volatile__("isb; mrs %0, cntvct_el0" : "=r"(t) :: "memory");
    return t;
#else
    return now_ns();
#endif
}

/* ---- the rings from the RX handler to the workers ------------------------------
 * One single-producer single-consumer ring per worker: the handler is the only
 * producer, so it needs no atomic read-modify-write, only release stores. */
#define RING 1024
struct ring {
    _Atomic size_t head __attribute__((aligned(64)));   /* written by the handler */
    _Atomic size_t tail __attribute__((aligned(64)));   /* written by the worker */
    void *slot[RING];
};
static struct ring *rings;

static bool ring_full(struct ring *r)
{
    return atomic_load_explicit(&r->head, memory_order_relaxed) -
           atomic_load_explicit(&r->tail, memory_order_acquire) == RING;
}

static bool ring_push(struct ring *r, void *p)
{
    size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (h - atomic_load_explicit(&r->tail, memory_order_acquire) == RING)
        return false;
    r->slot[h % RING] = p;
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
    return true;
}

static void *ring_pop(struct ring *r)
{
    size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (t == atomic_load_explicit(&r->head, memory_order_acquire))
        return NULL;
    void *p = r->slot[t % RING];
    atomic_store_explicit(&r->tail, t + 1, memory_order_release);
    return p;
}

/* ---- latency histogram (handler-private: written only in the handler) -------------
 * Buckets of 1/8 of a power of two of ticks(): 3% resolution.  Per page: a
 * bulk call's time divided by the pages it placed, counted once for each. */
#define HBUCKETS (64 * 8)
static uint64_t hist[HBUCKETS];
static uint64_t hist_max;
static uint64_t step_hist[LAB_STEP_COUNT][HBUCKETS];   /* the same, by the step that served */
static uint64_t call_hist[HBUCKETS];                   /* bulk: one sample per call */
static double ticks_per_ns = 1.0;

static unsigned bucket_of(uint64_t t)
{
    if (t < 8)
        return (unsigned)t;
    unsigned lg = 63 - (unsigned)__builtin_clzll(t);
    return lg * 8 + (unsigned)((t >> (lg - 3)) & 7);
}
static uint64_t bucket_floor(unsigned b)
{
    if (b < 8)
        return b;
    unsigned lg = b / 8;
    return (1ull << lg) | ((uint64_t)(b % 8) << (lg - 3));
}

static double percentile_of(const uint64_t *hist, double q)
{
    uint64_t total = 0;
    for (unsigned b = 0; b < HBUCKETS; b++)
        total += hist[b];
    if (!total)
        return 0;
    uint64_t want = (uint64_t)(q * (double)total), seen = 0;
    for (unsigned b = 0; b < HBUCKETS; b++) {
        seen += hist[b];
        if (seen > want)
            return (double)bucket_floor(b) / ticks_per_ns;
    }
    return (double)hist_max / ticks_per_ns;
}

static double percentile_ns(double q) { return percentile_of(hist, q); }

static uint64_t hist_total(const uint64_t *h)
{
    uint64_t t = 0;
    for (unsigned b = 0; b < HBUCKETS; b++)
        t += h[b];
    return t;
}

/* ---- shared state ------------------------------------------------------------------ */
static lab_arena *arena;
static lab_room *rx_room;
static pthread_t rx_thread;
static _Atomic bool stop_irq, stop_all;
static _Atomic uint64_t rx_pages, rx_fail, rx_drops, irqs, worker_pages, corrupt;
static uint64_t rx_by_reason[LAB_R_COUNT];   /* handler-private */
static unsigned rx_next_worker;              /* handler-private */

struct packet {
    uint64_t magic;
    uint64_t seq;
    uint64_t check;
};
#define PKT_MAGIC 0x4c4142594e544850ull
static uint64_t rx_seq;

static void hist_put(uint64_t *h, uint64_t ticks, uint64_t times)
{
    unsigned bk = bucket_of(ticks) < HBUCKETS ? bucket_of(ticks) : HBUCKETS - 1;
    h[bk] += times;
}

/* Stamp a page like a packet and post it to a worker's ring (which has room:
 * the handler is its only producer and checked). */
static void rx_post(struct ring *r, void *page)
{
    struct packet *p = page;
    p->magic = PKT_MAGIC;
    p->seq = rx_seq++;
    p->check = p->seq * 0x9e3779b97f4a7c15ull;
    if (!ring_push(r, p)) {            /* cannot happen: one producer checked */
        lab_room_free(rx_room, p);
        atomic_fetch_add_explicit(&rx_drops, 1, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&rx_pages, 1, memory_order_relaxed);
}

/* --alloc single: one lab_room_alloc_result per page, each timed and attributed
 * to the step that served it. */
static void rx_burst_single(void)
{
    for (unsigned i = 0; i < opt.burst; i++) {
        struct ring *r = &rings[rx_next_worker++ % opt.workers];
        if (ring_full(r)) {
            /* Like a NIC whose RX ring is full: no buffer is posted, the
             * packet is dropped before any page is spent on it. */
            atomic_fetch_add_explicit(&rx_drops, 1, memory_order_relaxed);
            continue;
        }
        lab_result res;
        uint64_t t0 = ticks();
        lab_room_alloc_result(rx_room, LAB_GFP_ATOMIC, &res);
        uint64_t dt = ticks() - t0;
        hist_put(hist, dt, 1);
        hist_put(step_hist[res.step], dt, 1);
        if (dt > hist_max)
            hist_max = dt;
        if (!res.addr) {
            rx_by_reason[res.reason]++;
            atomic_fetch_add_explicit(&rx_fail, 1, memory_order_relaxed);
            continue;
        }
        rx_post(r, res.addr);
    }
}

/* The default: the slots of the burst whose worker ring has room get their
 * pages from one lab_room_alloc_bulk call.  Its time is divided among the
 * pages it was asked for, and the call is attributed to the deepest step it took,
 * read from the room's counters around it: room (the stock alone),
 * room_remote (it took back blocks other contexts freed), zone (a refill),
 * room_reserve, emergency (none of those, more pages than the stock held). */
static void rx_burst_bulk(void)
{
    void *pages[256];
    struct ring *to[256];
    unsigned room_in[64];
    unsigned want = 0;
    for (unsigned w = 0; w < opt.workers; w++)
        room_in[w] = RING - (unsigned)(atomic_load_explicit(&rings[w].head, memory_order_relaxed) -
                                       atomic_load_explicit(&rings[w].tail, memory_order_acquire));
    for (unsigned i = 0; i < opt.burst; i++) {
        unsigned w = rx_next_worker++ % opt.workers;
        if (room_in[w] == 0) {
            atomic_fetch_add_explicit(&rx_drops, 1, memory_order_relaxed);   /* as a full NIC ring */
            continue;
        }
        room_in[w]--;
        to[want++] = &rings[w];
    }
    if (want == 0)
        return;
    lab_room_stats before, after;
    lab_room_stats_get(rx_room, &before);
    uint64_t t0 = ticks();
    size_t got = lab_room_alloc_bulk(rx_room, LAB_GFP_ATOMIC, pages, want);
    uint64_t dt = ticks() - t0;
    lab_room_stats_get(rx_room, &after);
    int step = LAB_STEP_ROOM;
    if (after.reserve_allocs != before.reserve_allocs)
        step = LAB_STEP_ROOM_RESERVE;
    else if (after.refills != before.refills)
        step = LAB_STEP_ZONE;
    else if (after.frees_remote != before.frees_remote)
        step = LAB_STEP_ROOM_REMOTE;
    else if (got > before.stock)
        step = LAB_STEP_EMERGENCY;
    hist_put(call_hist, dt, 1);
    if (dt > hist_max)
        hist_max = dt;
    hist_put(hist, dt / want, want);
    hist_put(step_hist[step], dt / want, got);
    if (got < want) {
        /* the call stops at the first step that fails, and counts it once */
        int reason = LAB_R_NONE;
        for (int k = 1; k < LAB_R_COUNT; k++)
            if (after.fail_by_reason[k] != before.fail_by_reason[k])
                reason = k;
        rx_by_reason[reason] += want - got;
        hist_put(step_hist[LAB_STEP_NONE], dt / want, want - got);
        atomic_fetch_add_explicit(&rx_fail, want - got, memory_order_relaxed);
    }
    for (size_t i = 0; i < got; i++)
        rx_post(to[i], pages[i]);
}

/* The RX interrupt.  Async-signal-safe: its own room, atomics, and rings. */
static void rx_interrupt(int sig)
{
    (void)sig;
    int saved = errno;
    atomic_fetch_add_explicit(&irqs, 1, memory_order_relaxed);
    if (opt.alloc_single)
        rx_burst_single();
    else
        rx_burst_bulk();
    errno = saved;
}

static void *rx_main(void *arg)
{
    (void)arg;
    /* The receive thread's own work is idle here: it waits for interrupts. */
    while (!atomic_load(&stop_all))
        pause();
    return NULL;
}

static void *irq_generator(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_irq)) {
        pthread_kill(rx_thread, SIGUSR1);
        if (opt.irq_gap_ns) {
            struct timespec ts = { (time_t)(opt.irq_gap_ns / 1000000000u), (long)(opt.irq_gap_ns % 1000000000u) };
            nanosleep(&ts, NULL);
        } else {
            sched_yield();
        }
    }
    return NULL;
}

/* Workers give each processed page back to the RX room with lab_free_pages,
 * as most code would; with --free bulk, in batches: one lab_free_pages_bulk
 * per 32 pages (or whenever the ring runs dry) reserves its slots of the
 * room's ring at once instead of one by one. */
#define FREE_BATCH 32
static void *worker_main(void *arg)
{
    struct ring *r = arg;
    void *batch[FREE_BATCH];
    size_t n = 0;
    for (;;) {
        struct packet *p = ring_pop(r);
        if (!p) {
            if (n) {
                lab_free_pages_bulk(arena, batch, n, 0);
                atomic_fetch_add_explicit(&worker_pages, n, memory_order_relaxed);
                n = 0;
            }
            if (atomic_load(&stop_all) && atomic_load(&stop_irq))
                break;
            sched_yield();
            continue;
        }
        if (p->magic != PKT_MAGIC || p->check != p->seq * 0x9e3779b97f4a7c15ull)
            atomic_fetch_add(&corrupt, 1);
        p->magic = 0;   /* "processed" */
        if (!opt.free_bulk) {
            lab_free_pages(arena, p, 0);
            atomic_fetch_add_explicit(&worker_pages, 1, memory_order_relaxed);
            continue;
        }
        batch[n++] = p;
        if (n == FREE_BATCH) {
            lab_free_pages_bulk(arena, batch, n, 0);
            atomic_fetch_add_explicit(&worker_pages, n, memory_order_relaxed);
            n = 0;
        }
    }
    return NULL;
}

/* ---- the background job and its shrinker-backed cache ------------------------------ */
struct cache_entry { void *p; unsigned order; };
/* A FIFO of the blocks the job holds, oldest at `head`: the shrinker gives
 * the oldest back, one at a time, so a ring (a shift of the array per
 * block made emptying a large cache quadratic). */
static struct {
    pthread_mutex_t lock;
    struct cache_entry *e;
    size_t head, n, cap, pages;
} cache = { .lock = PTHREAD_MUTEX_INITIALIZER };
static _Atomic uint64_t bg_ok, bg_fail, shrunk;

static size_t cache_count(void *ctx)
{
    (void)ctx;
    pthread_mutex_lock(&cache.lock);
    size_t n = cache.pages;
    pthread_mutex_unlock(&cache.lock);
    return n;
}

/* Frees the oldest blocks, at least nr pages' worth or all. */
static size_t cache_free_oldest(size_t nr)
{
    size_t freed = 0;
    pthread_mutex_lock(&cache.lock);
    while (freed < nr && cache.n) {
        struct cache_entry e = cache.e[cache.head];
        cache.head = (cache.head + 1) % cache.cap;
        cache.n--;
        cache.pages -= (size_t)1 << e.order;
        lab_free_pages(arena, e.p, e.order);
        freed += (size_t)1 << e.order;
    }
    pthread_mutex_unlock(&cache.lock);
    return freed;
}

/* The shrinker's scan: what reclaim took back ("shrunk" in the report). */
static size_t cache_scan(void *ctx, size_t nr)
{
    (void)ctx;
    size_t freed = cache_free_oldest(nr);
    atomic_fetch_add(&shrunk, freed);
    return freed;
}

static void *background_main(void *arg)
{
    (void)arg;
    unsigned seed = 12345;
    while (!atomic_load(&stop_irq)) {
        seed = seed * 1103515245u + 12345u;
        unsigned order = (seed >> 16) % (opt.bg_max_order + 1);
        void *p = lab_alloc_pages(arena, LAB_GFP_KERNEL | LAB_GFP_NOWARN | LAB_GFP_RETRY_MAYFAIL, order);
        if (!p) {
            atomic_fetch_add(&bg_fail, 1);
            continue;
        }
        atomic_fetch_add(&bg_ok, 1);
        memset(p, 0x5a, 64);
        pthread_mutex_lock(&cache.lock);
        if (cache.n == cache.cap) {
            pthread_mutex_unlock(&cache.lock);
            lab_free_pages(arena, p, order);
            continue;
        }
        cache.e[(cache.head + cache.n++) % cache.cap] = (struct cache_entry){ p, order };
        cache.pages += (size_t)1 << order;
        pthread_mutex_unlock(&cache.lock);
        /* some churn: a transient block, freed at once */
        void *q = lab_alloc_pages(arena, LAB_GFP_KERNEL | LAB_GFP_NOWARN | LAB_GFP_NORETRY, (order + 1) % (opt.bg_max_order + 1));
        if (q)
            lab_free_pages(arena, q, (order + 1) % (opt.bg_max_order + 1));
    }
    return NULL;
}

/* ---- main ------------------------------------------------------------------------------ */
static void demo_usage(FILE *f)
{
    fprintf(f,
            "usage: labyrinth demo [--seconds S] [--burst N] [--workers N] [--arena-mib M]\n"
            "                      [--reserve PAGES] [--irq-gap-ns NS] [--bg-max-order K]\n"
            "                      [--alloc bulk|single] [--free single|bulk] [--quiet]\n"
            "\n"
            "The packet-path scenario: signal-driven RX allocations from a room, workers\n"
            "that free them (remote frees), a blocking background job under memory pressure.\n"
            "\n"
            "  --seconds S        how long to run (default 10; fractions allowed)\n"
            "  --burst N          pages the RX handler allocates per interrupt, 1 to 256\n"
            "                     (default 16)\n"
            "  --workers N        threads that free the pages, 1 to 64 (default 1)\n"
            "  --arena-mib M      arena size in MiB (default 64)\n"
            "  --reserve PAGES    the RX room's private reserve (default 1024)\n"
            "  --irq-gap-ns NS    pause between interrupts, up to 10 s; 0 = as fast as possible\n"
            "                     (default 0)\n"
            "  --bg-max-order K   largest block the background job asks for, at most the\n"
            "                     arena's max order (default 6)\n"
            "  --alloc bulk       the RX burst takes its pages with one lab_room_alloc_bulk call\n"
            "                     (the default); single: one lab_room_alloc_result per page\n"
            "  --free single      workers give each page back with lab_free_pages (the default);\n"
            "                     bulk: lab_free_pages_bulk, 32 at a time\n"
            "  --quiet            no progress line\n"
            "\n"
            "Exits 1 if a page was lost or corrupted or lab_check failed, 2 on a bad option.\n");
}

static void usage(void)
{
    demo_usage(stderr);
    exit(2);
}

/* A bad option is named, with what it takes, before the usage. */
static void bad_option(const char *name, const char *value, const char *want)
{
    fprintf(stderr, "labyrinth demo: %s%s%s%s: %s\n\n", name, value ? " '" : "", value ? value : "", value ? "'" : "",
            want);
    usage();
}

/* The whole of `v` a decimal number within [lo, hi], or the usage. */
static uint64_t whole_number(const char *name, const char *v, uint64_t lo, uint64_t hi)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (*v == '-' || *v == '\0' || *end != '\0' || errno || n < lo || n > hi) {
        char want[96];
        snprintf(want, sizeof(want), "a whole number from %llu to %llu", (unsigned long long)lo,
                 (unsigned long long)hi);
        bad_option(name, v, want);
    }
    return n;
}

static void calibrate_ticks(void)
{
    uint64_t t0 = now_ns(), c0 = ticks();
    struct timespec ts = { 0, 50 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    uint64_t t1 = now_ns(), c1 = ticks();
    ticks_per_ns = (double)(c1 - c0) / (double)(t1 - t0);
}

static int demo(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            demo_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--quiet")) { opt.quiet = true; continue; }
        static const char *const takes_value[] = { "--seconds", "--burst", "--workers", "--arena-mib", "--reserve",
                                                   "--irq-gap-ns", "--bg-max-order", "--alloc", "--free" };
        bool known = false;
        for (size_t k = 0; k < sizeof(takes_value) / sizeof(*takes_value); k++)
            known |= !strcmp(a, takes_value[k]);
        if (!known)
            bad_option(a, NULL, a[0] == '-' ? "no such option" : "not an option");
        if (!v)
            bad_option(a, NULL, "needs a value");
        if (!strcmp(a, "--seconds")) {
            char *end;
            opt.seconds = strtod(v, &end);
            if (*v == '\0' || *end != '\0' || !(opt.seconds > 0) || opt.seconds > 1e6)
                bad_option(a, v, "a number of seconds above 0 and at most 1000000");
        }
        else if (!strcmp(a, "--burst")) opt.burst = (unsigned)whole_number(a, v, 1, 256);
        else if (!strcmp(a, "--workers")) opt.workers = (unsigned)whole_number(a, v, 1, 64);
        else if (!strcmp(a, "--arena-mib")) opt.arena_mib = (size_t)whole_number(a, v, 1, SIZE_MAX >> 20);
        else if (!strcmp(a, "--reserve")) opt.reserve = (unsigned)whole_number(a, v, 0, UINT32_MAX);
        else if (!strcmp(a, "--irq-gap-ns")) opt.irq_gap_ns = whole_number(a, v, 0, 10000000000ull);
        else if (!strcmp(a, "--bg-max-order")) opt.bg_max_order = (unsigned)whole_number(a, v, 0, LAB_MAX_ORDER_LIMIT);
        else if (!strcmp(a, "--alloc") && (!strcmp(v, "bulk") || !strcmp(v, "single"))) opt.alloc_single = !strcmp(v, "single");
        else if (!strcmp(a, "--free") && (!strcmp(v, "bulk") || !strcmp(v, "single"))) opt.free_bulk = !strcmp(v, "bulk");
        else bad_option(a, v, "bulk or single");
        i++;
    }
    calibrate_ticks();

    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = opt.arena_mib << 20;
    cfg.name = "demo";
    int err = lab_arena_create(&cfg, &arena);
    if (err) {
        fprintf(stderr, "labyrinth demo: lab_arena_create: %s\n", lab_strerror(err));
        return 1;
    }
    if (opt.bg_max_order > lab_arena_max_order(arena)) {
        fprintf(stderr, "labyrinth demo: --bg-max-order %u: above the arena's max order, %u\n", opt.bg_max_order,
                lab_arena_max_order(arena));
        lab_arena_destroy(arena);
        return 2;
    }
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.reserve = opt.reserve;
    rc.batch = 64;
    rc.high = 512;
    rc.name = "rx";
    rc.flags = LAB_ROOM_NOWARN;   /* an RX path near empty fails as a matter of course: counted, not reported */
    if ((err = lab_room_create(arena, &rc, &rx_room))) {
        fprintf(stderr, "labyrinth demo: lab_room_create: %s\n", lab_strerror(err));
        return 1;
    }
    lab_stats st;
    lab_stats_get(arena, &st);
    cache.cap = st.total_pages;
    cache.e = calloc(cache.cap, sizeof(*cache.e));
    lab_shrinker sh = { cache_count, cache_scan, NULL };
    lab_shrinker_register(arena, &sh);
    rings = aligned_alloc(64, sizeof(struct ring) * opt.workers);
    memset(rings, 0, sizeof(struct ring) * opt.workers);

    printf("labyrinth demo: arena %zu MiB (%zu pages, min/low/high %zu/%zu/%zu), RX room reserve %u, "
           "burst %u, %u worker(s), %g s\n",
           opt.arena_mib, st.total_pages, st.wmark_min, st.wmark_low, st.wmark_high, opt.reserve,
           opt.burst, opt.workers, opt.seconds);
    printf("RX burst: %s; workers free: %s\n",
           opt.alloc_single ? "one lab_room_alloc_result per page (--alloc single)"
                            : "one lab_room_alloc_bulk call per burst (--alloc bulk, the default)",
           opt.free_bulk ? "lab_free_pages_bulk, 32 at a time (--free bulk)"
                         : "lab_free_pages, one call per page (--free single, the default)");

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = rx_interrupt;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    /* Only the RX thread takes the interrupt. */
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, NULL);

    pthread_t workers[64], bg, gen;
    for (unsigned i = 0; i < opt.workers; i++)
        pthread_create(&workers[i], NULL, worker_main, &rings[i]);
    pthread_create(&bg, NULL, background_main, NULL);
    pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
    pthread_create(&rx_thread, NULL, rx_main, NULL);
    pthread_sigmask(SIG_BLOCK, &usr1, NULL);
    pthread_create(&gen, NULL, irq_generator, NULL);

    uint64_t start = now_ns(), last = start, last_pages = 0;
    for (double left; (left = opt.seconds * 1e9 - (double)(now_ns() - start)) > 0;) {
        /* a quarter of a second at a time for the progress line, the
         * last stretch exactly */
        long ns = left < 250e6 ? (long)left : 250 * 1000 * 1000;
        struct timespec ts = { 0, ns };
        nanosleep(&ts, NULL);
        uint64_t t = now_ns();
        if (!opt.quiet && t - last >= 1000000000ull) {
            uint64_t p = atomic_load(&rx_pages);
            lab_room_stats rs;
            lab_room_stats_get(rx_room, &rs);
            lab_stats_get(arena, &st);
            fprintf(stderr, "\r[%4.1fs] rx %6.2f Mpages/s  irqs %-9llu atomic fails %-6llu drops %-6llu  free %6zu/%zu  "
                            "reserve used %-6llu  shrunk %-8llu",
                    (double)(t - start) / 1e9, (double)(p - last_pages) * 1e3 / (double)(t - last),
                    (unsigned long long)atomic_load(&irqs), (unsigned long long)atomic_load(&rx_fail),
                    (unsigned long long)atomic_load(&rx_drops), st.free_pages, st.total_pages,
                    (unsigned long long)rs.reserve_allocs, (unsigned long long)atomic_load(&shrunk));
            last = t;
            last_pages = p;
        }
    }
    double elapsed = (double)(now_ns() - start) / 1e9;
    if (!opt.quiet)
        fputc('\n', stderr);

    /* Stop the interrupts first, then let the RX thread go, drain the rings. */
    atomic_store(&stop_irq, true);
    pthread_join(gen, NULL);
    pthread_join(bg, NULL);
    atomic_store(&stop_all, true);
    pthread_kill(rx_thread, SIGUSR1);     /* one last interrupt ends its pause() */
    pthread_join(rx_thread, NULL);
    for (unsigned i = 0; i < opt.workers; i++) {
        pthread_join(workers[i], NULL);
        void *p;
        while ((p = ring_pop(&rings[i])) != NULL) {   /* pushed after the worker left */
            lab_free_pages(arena, p, 0);
            atomic_fetch_add(&worker_pages, 1);
        }
    }

    lab_room_stats rs;
    lab_room_stats_get(rx_room, &rs);
    lab_shrinker_unregister(arena, &sh);
    cache_free_oldest(SIZE_MAX);   /* the end of the run, not reclaim: not "shrunk" */
    lab_stats_get(arena, &st);

    uint64_t pages = atomic_load(&rx_pages);
    printf("\n== Labyrinth demo: the packet path ==\n");
    printf("RX interrupts         %llu (%.0f/s)\n", (unsigned long long)atomic_load(&irqs), (double)atomic_load(&irqs) / elapsed);
    printf("pages received        %llu (%.2f M pages/s), processed by workers %llu, dropped (worker rings full) %llu\n",
           (unsigned long long)pages, (double)pages / elapsed / 1e6, (unsigned long long)atomic_load(&worker_pages),
           (unsigned long long)atomic_load(&rx_drops));
    if (opt.alloc_single) {
        printf("atomic alloc latency  p50 %.0f ns  p99 %.0f ns  p99.9 %.0f ns  p99.99 %.0f ns  max %.0f ns  "
               "(per lab_room_alloc_result call)\n",
               percentile_ns(0.50), percentile_ns(0.99), percentile_ns(0.999), percentile_ns(0.9999),
               (double)hist_max / ticks_per_ns);
    } else {
        printf("atomic alloc latency  p50 %.0f ns  p99 %.0f ns  p99.9 %.0f ns  p99.99 %.0f ns  per page "
               "(a burst's lab_room_alloc_bulk time / pages asked)\n",
               percentile_ns(0.50), percentile_ns(0.99), percentile_ns(0.999), percentile_ns(0.9999));
        printf("  per burst call      p50 %.0f ns  p99 %.0f ns  p99.9 %.0f ns  p99.99 %.0f ns  max %.0f ns  (%llu calls)\n",
               percentile_of(call_hist, 0.50), percentile_of(call_hist, 0.99), percentile_of(call_hist, 0.999),
               percentile_of(call_hist, 0.9999), (double)hist_max / ticks_per_ns,
               (unsigned long long)hist_total(call_hist));
    }
    printf("  by step (%s, count: p50/p99/p99.9 ns):", opt.alloc_single ? "allocations" : "pages, per page, the call's deepest step");
    for (int st2 = 0; st2 < LAB_STEP_COUNT; st2++) {
        uint64_t n = hist_total(step_hist[st2]);
        if (n)
            printf(" %s %llu: %.0f/%.0f/%.0f", st2 == LAB_STEP_NONE ? "failed" : lab_strstep(st2), (unsigned long long)n, percentile_of(step_hist[st2], 0.5),
                   percentile_of(step_hist[st2], 0.99), percentile_of(step_hist[st2], 0.999));
    }
    printf("\n");
    if (hist_total(step_hist[LAB_STEP_ROOM]) && hist_total(step_hist[LAB_STEP_ROOM_REMOTE]))
        printf("  room_remote p50 / room p50 = %.2fx\n",
               percentile_of(step_hist[LAB_STEP_ROOM_REMOTE], 0.5) / percentile_of(step_hist[LAB_STEP_ROOM], 0.5));
    printf("atomic failures       %llu:", (unsigned long long)atomic_load(&rx_fail));
    for (int r = 1; r < LAB_R_COUNT; r++)
        if (rx_by_reason[r])
            printf(" %s=%llu", lab_strreason(r), (unsigned long long)rx_by_reason[r]);
    printf("\nRX room               allocs %llu  refills %llu  drains %llu  remote frees %llu  reserve allocs %llu\n",
           (unsigned long long)rs.allocs, (unsigned long long)rs.refills, (unsigned long long)rs.drains,
           (unsigned long long)rs.frees_remote, (unsigned long long)rs.reserve_allocs);
    printf("background KERNEL     ok %llu  failed %llu  shrunk %llu pages\n", (unsigned long long)atomic_load(&bg_ok),
           (unsigned long long)atomic_load(&bg_fail), (unsigned long long)atomic_load(&shrunk));
    printf("reclaim               shrinker runs %llu (%llu pages)  kswapd wakes %llu runs %llu  waits %llu\n",
           (unsigned long long)st.shrinker_runs, (unsigned long long)st.shrinker_pages,
           (unsigned long long)st.kswapd_wakes, (unsigned long long)st.kswapd_runs, (unsigned long long)st.waits);
    printf("pages by step         room %llu  room_remote %llu  zone %llu  room_reserve %llu  emergency %llu  highatomic %llu  reclaim %llu  wait %llu\n",
           (unsigned long long)st.alloc_by_step[LAB_STEP_ROOM], (unsigned long long)st.alloc_by_step[LAB_STEP_ROOM_REMOTE],
           (unsigned long long)st.alloc_by_step[LAB_STEP_ZONE], (unsigned long long)st.alloc_by_step[LAB_STEP_ROOM_RESERVE],
           (unsigned long long)st.alloc_by_step[LAB_STEP_EMERGENCY], (unsigned long long)st.alloc_by_step[LAB_STEP_HIGHATOMIC],
           (unsigned long long)st.alloc_by_step[LAB_STEP_RECLAIM], (unsigned long long)st.alloc_by_step[LAB_STEP_WAIT]);

    /* Leak accounting: with the cache emptied and the room destroyed, every
     * page must be back. */
    lab_room_destroy(rx_room);
    lab_stats_get(arena, &st);
    int check = lab_check(arena);
    size_t lost = st.total_pages - st.free_pages;
    uint64_t bad = atomic_load(&corrupt);
    printf("leak accounting       pages lost %zu  corrupted packets %llu  lab_check %s\n", lost,
           (unsigned long long)bad, check ? lab_strerror(check) : "ok");
    lab_arena_destroy(arena);
    free(cache.e);
    free(rings);
    if (pages == 0)
        printf("no page went through the packet path\n");
    if (lost || bad || check || pages == 0) {
        printf("FAILED\n");
        return 1;
    }
    printf("OK\n");
    return 0;
}

#ifdef LAB_HAVE_XDP
int xdp_main(int argc, char **argv);        /* xdp.c */
int xdp_send_main(int argc, char **argv);   /* xdp_send.c */
#endif

/* The subcommands, in the order --help lists them. */
static const struct command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} commands[] = {
    { "demo", "the packet-path scenario under memory pressure (about ten seconds)", demo },
#ifdef LAB_HAVE_XDP
    { "xdp", "an AF_XDP receiver whose UMEM frames are Labyrinth pages (root)", xdp_main },
    { "xdp-send", "raw UDP frames for it, from another interface (root)", xdp_send_main },
#endif
};

static void tool_usage(FILE *f)
{
    fprintf(f, "usage: labyrinth <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
#ifndef LAB_HAVE_XDP
    fprintf(f, "  (built without libxdp: no xdp, xdp-send)\n");
#endif
    fprintf(f, "\n`labyrinth <command> --help` describes a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        tool_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        tool_usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "labyrinth: unknown command '%s'\n\n", argv[1]);
    tool_usage(stderr);
    return 2;
}
