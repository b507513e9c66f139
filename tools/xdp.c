/*
 * xdp.c - `labyrinth xdp`: the AF_XDP receiver of examples/xdp_rx.c with the
 * reporting around it.
 *
 *   pools        `--pool labyrinth` (the example's: an arena over the UMEM,
 *                the RX room, remote bulk frees) or `--pool stack` (the bare
 *                array of free frame addresses of libxdp's examples, behind a
 *                mutex since workers on other cores give frames back; a
 *                spinlock did worse, its holders preempted on a busy machine):
 *                the same receive loop, so one run gives the baseline;
 *   background   `--background`: a thread allocates LAB_GFP_KERNEL blocks from
 *                the same arena into a cache a shrinker empties, so RX lives
 *                on its reserve while the zone is under pressure;
 *   reports      live each second and at the end: pps, drops and their causes
 *                (the kernel's XDP_STATISTICS and the program's own counters),
 *                frames in each state, refill latency percentiles, and the
 *                RX thread's system calls: every call other than the socket's
 *                kicks (recvfrom, poll) is counted by a seccomp filter, so the
 *                allocator's show up apart from the program's;
 *   accounting   after the socket is gone every frame must be back: "frames
 *                lost 0" and lab_check clean, or the exit status is 1.
 * Exit status 77: the kernel refused the AF_XDP socket (its reason printed).
 */
#define XDP_RX_NO_MAIN
#include "xdp_rx.c"

#include "bench.h"

#include <sys/syscall.h>

/* Debug builds check every invariant every so often, with system calls. */
#ifdef LAB_DEBUG
#define LAB_DEBUG_BUILD 1
#else
#define LAB_DEBUG_BUILD 0
#endif

/* ---- the baseline: libxdp's array stack of free frame addresses ------------------- */
struct stack_pool {
    struct frame_pool ops;
    pthread_mutex_t lock;
    void *area;
    size_t n;
    uint64_t addr[NUM_FRAMES];
};

static size_t stack_alloc(struct frame_pool *fp, void **frames, size_t n)
{
    struct stack_pool *s = (struct stack_pool *)fp;
    pthread_mutex_lock(&s->lock);
    size_t got = n < s->n ? n : s->n;
    for (size_t i = 0; i < got; i++)
        frames[i] = (char *)s->area + s->addr[--s->n];
    pthread_mutex_unlock(&s->lock);
    return got;
}

static void stack_free(struct frame_pool *fp, void *const *frames, size_t n)
{
    struct stack_pool *s = (struct stack_pool *)fp;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < n; i++)
        s->addr[s->n++] = xsk_umem__extract_addr((uint64_t)((char *)frames[i] - (char *)s->area));
    pthread_mutex_unlock(&s->lock);
}

static void stack_pool_init(struct stack_pool *s, void *area)
{
    pthread_mutex_init(&s->lock, NULL);
    s->area = area;
    for (size_t f = 0; f < NUM_FRAMES; f++)
        s->addr[f] = (uint64_t)(NUM_FRAMES - 1 - f) * FRAME_SIZE;
    s->n = NUM_FRAMES;
    s->ops.alloc_bulk = stack_alloc;
    s->ops.free_bulk = stack_free;
}

static size_t stack_free_frames(struct stack_pool *s)
{
    pthread_mutex_lock(&s->lock);
    size_t n = s->n;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* ---- options and state --------------------------------------------------------------- */
static struct {
    const char *ifname;
    unsigned queue, workers, reserve;
    double seconds;
    bool stack, background, quiet;
} opt = { NULL, 0, 1, RX_RESERVE, 60, false, false, false };

static struct xdp_rx rx;
static struct lab_pool lpool;
static struct stack_pool *spool;
static _Atomic bool stop_requested, bg_stop;
static struct hist refill_hist;      /* written by the RX thread only */
static struct sc_counter rx_syscalls;
static double tsc_per_ns;
static struct bg_cache bg_cache;
static _Atomic uint64_t bg_ok, bg_fail;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop_requested, true);
}

static void note_refill(void *ctx, uint64_t ticks, size_t asked, size_t got)
{
    (void)ctx;
    (void)asked;
    (void)got;
    hist_add(&refill_hist, ticks);
}

/* The RX thread under the counter: everything but the socket's kicks, which
 * the receive loop counts itself, is a notification. */
static uint64_t rx_thread_cpu_ns;

static uint64_t cpu_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *counted_rx_thread(void *arg)
{
    static const int kicks[] = { SYS_recvfrom, SYS_poll };
    /* the thread's CPU clock is a system call: read it outside the count */
    uint64_t t0 = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
    sc_install_except(&rx_syscalls, kicks, 2);
    xdp_rx_thread(arg);
    sc_mark_end();
    rx_thread_cpu_ns = cpu_ns(CLOCK_THREAD_CPUTIME_ID) - t0;
    return NULL;
}

/* ---- the background job ----------------------------------------------------------------- */
static void bg_free(void *be, void *p, unsigned order) { lab_free_pages(be, p, order); }
static size_t bg_count(void *ctx) { return bg_cache_pages(ctx); }
static size_t bg_scan(void *ctx, size_t nr) { return bg_cache_shrink(ctx, nr); }

static void *background_thread(void *arg)
{
    (void)arg;
    uint64_t seed = 88172645463325252ull;
    while (!atomic_load(&bg_stop)) {
        unsigned order = (unsigned)(xorshift64(&seed) % 5);
        void *p = lab_alloc_pages(lpool.arena, LAB_GFP_KERNEL | LAB_GFP_RETRY_MAYFAIL | LAB_GFP_NOWARN, order);
        if (!p) {
            atomic_fetch_add(&bg_fail, 1);
            continue;
        }
        memset(p, 0x5a, (size_t)FRAME_SIZE << order);
        bg_cache_push(&bg_cache, p, order);
        atomic_fetch_add(&bg_ok, 1);
    }
    return NULL;
}

/* ---- reporting ------------------------------------------------------------------------------ */
static struct xdp_statistics kernel_stats(void)
{
    struct xdp_statistics s;
    memset(&s, 0, sizeof(s));
    socklen_t len = sizeof(s);
    if (getsockopt(xsk_socket__fd(rx.xsk), SOL_XDP, XDP_STATISTICS, &s, &len) != 0)
        memset(&s, 0, sizeof(s));
    return s;
}

struct frame_states {
    uint64_t kernel, workers, pool_free, room, reserve, in_flight, background;
};

static struct frame_states frame_states(void)
{
    struct frame_states f;
    memset(&f, 0, sizeof(f));
    uint64_t received = atomic_load(&rx.received), processed = atomic_load(&rx.processed);
    uint64_t posted = atomic_load(&rx.posted_total), dropped = atomic_load(&rx.worker_full);
    f.kernel = posted - received;
    f.workers = received - processed - dropped - atomic_load(&rx.foreign);
    if (opt.stack) {
        f.pool_free = stack_free_frames(spool);
        return f;
    }
    lab_stats st;
    lab_stats_get(lpool.arena, &st);
    f.pool_free = st.free_pages;
    f.room = st.room_pages;
    f.reserve = st.reserve_pages;
    f.in_flight = st.deferred_pages;
    f.background = opt.background ? bg_cache_pages(&bg_cache) : 0;
    return f;
}

static void live_report(struct xdp_rx *r, void *ctx)
{
    static uint64_t last_rx, last_ns;
    (void)ctx;
    uint64_t now = now_ns(), got = atomic_load(&r->received);
    if (!opt.quiet && last_ns) {
        struct xdp_statistics ks = kernel_stats();
        struct frame_states f = frame_states();
        fprintf(stderr,
                "rx %8.0f pps  fill-ring-empty %-6llu rx-ring-full %-6llu dropped %-6llu  alloc short %-4llu  "
                "frames: kernel %llu workers %llu free %llu room %llu reserve %llu in-flight %llu bg %llu\n",
                (double)(got - last_rx) * 1e9 / (double)(now - last_ns),
                (unsigned long long)ks.rx_fill_ring_empty_descs, (unsigned long long)ks.rx_ring_full,
                (unsigned long long)ks.rx_dropped, (unsigned long long)atomic_load(&r->frames_short),
                (unsigned long long)f.kernel, (unsigned long long)f.workers, (unsigned long long)f.pool_free,
                (unsigned long long)f.room, (unsigned long long)f.reserve, (unsigned long long)f.in_flight,
                (unsigned long long)f.background);
    }
    last_rx = got;
    last_ns = now;
}

static double refill_ns(double q) { return hist_quantile(&refill_hist, q) / tsc_per_ns; }

static void usage(void)
{
    fprintf(stderr, "usage: labyrinth xdp --ifname IF [--queue Q] [--workers N] [--pool labyrinth|stack]\n"
                    "                     [--reserve FRAMES] [--background] [--seconds S] [--quiet]\n");
    exit(2);
}

static void parse(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--background")) { opt.background = true; continue; }
        if (!strcmp(a, "--quiet")) { opt.quiet = true; continue; }
        if (!v) usage();
        if (!strcmp(a, "--ifname")) opt.ifname = v;
        else if (!strcmp(a, "--queue")) opt.queue = (unsigned)atoi(v);
        else if (!strcmp(a, "--workers")) opt.workers = (unsigned)atoi(v);
        else if (!strcmp(a, "--reserve")) opt.reserve = (unsigned)atoi(v);
        else if (!strcmp(a, "--seconds")) opt.seconds = atof(v);
        else if (!strcmp(a, "--pool") && !strcmp(v, "stack")) opt.stack = true;
        else if (!strcmp(a, "--pool") && !strcmp(v, "labyrinth")) opt.stack = false;
        else usage();
        i++;
    }
    if (!opt.ifname || opt.workers == 0 || opt.workers > MAX_WORKERS || opt.reserve >= NUM_FRAMES)
        usage();
    if (opt.stack && opt.background) {
        fprintf(stderr, "labyrinth xdp: --background presses on the arena; the stack has none\n");
        exit(2);
    }
}

/* Frames not back in the pool once the socket is gone and everything drained. */
static size_t frames_lost(int *check)
{
    *check = 0;
    if (opt.stack)
        return NUM_FRAMES - stack_free_frames(spool);
    lab_room_destroy(lpool.room);
    lab_stats st;
    lab_stats_get(lpool.arena, &st);
    *check = lab_check(lpool.arena);
    return st.total_pages - st.free_pages;
}

int xdp_main(int argc, char **argv);
int xdp_main(int argc, char **argv)
{
    parse(argc, argv);
    tsc_per_ns = tsc_calibrate(50);
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int err = xdp_rx_map_umem(&rx);
    if (err) {
        fprintf(stderr, "labyrinth xdp: mapping the UMEM: %s\n", strerror(-err));
        return 1;
    }
    if (opt.stack) {
        spool = malloc(sizeof(*spool));
        stack_pool_init(spool, rx.area);
        rx.pool = &spool->ops;
    } else {
        if ((err = lab_pool_init(&lpool, rx.area, opt.reserve))) {
            fprintf(stderr, "labyrinth xdp: the UMEM arena: %s\n", lab_strerror(err));
            return 1;
        }
        rx.pool = &lpool.ops;
    }
    rx.nr_workers = opt.workers;
    rx.rx_main = counted_rx_thread;
    rx.on_refill = note_refill;
    if ((err = xdp_rx_open(&rx, opt.ifname, opt.queue))) {
        /* EPERM, EAFNOSUPPORT, EOPNOTSUPP...: the kernel will not do AF_XDP here */
        printf("SKIP: AF_XDP socket on %s queue %u refused by the kernel: %s\n", opt.ifname, opt.queue,
               strerror(-err));
        return 77;
    }
    lab_shrinker shrinker = { bg_count, bg_scan, &bg_cache };
    pthread_t bg;
    if (opt.background) {
        bg_cache_init(&bg_cache, (size_t)NUM_FRAMES * FRAME_SIZE, lpool.arena, bg_free);
        lab_shrinker_register(lpool.arena, &shrinker);
        pthread_create(&bg, NULL, background_thread, NULL);
    }
    sc_start(&rx_syscalls, -1);
    printf("labyrinth xdp: %s queue %u, %u frames of %u bytes, pool %s, %u worker(s)%s: ready\n", opt.ifname, opt.queue,
           NUM_FRAMES, FRAME_SIZE, opt.stack ? "array stack" : "labyrinth", opt.workers,
           opt.background ? ", background job" : "");
    fflush(stdout);

    uint64_t t0 = now_ns(), cpu0 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
    if (opt.seconds > 0)
        alarm((unsigned)(opt.seconds + 0.999));
    sigaction(SIGALRM, &sa, NULL);
    xdp_rx_run(&rx, &stop_requested, live_report, NULL);
    double elapsed = (double)(now_ns() - t0) / 1e9;
    uint64_t cpu = cpu_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    sc_finish(&rx_syscalls);
    if (opt.background) {
        atomic_store(&bg_stop, true);
        pthread_join(bg, NULL);
    }
    struct xdp_statistics ks = kernel_stats();
    struct frame_states fs = frame_states();
    xdp_rx_close(&rx);
    size_t reclaimed = xdp_rx_reclaim_posted(&rx);
    lab_room_stats rs;
    memset(&rs, 0, sizeof(rs));
    lab_stats st;
    memset(&st, 0, sizeof(st));
    if (!opt.stack) {
        lab_room_stats_get(lpool.room, &rs);
        if (opt.background) {
            lab_shrinker_unregister(lpool.arena, &shrinker);
            bg_cache_fini(&bg_cache);
        }
        lab_stats_get(lpool.arena, &st);
    }
    int check;
    size_t lost = frames_lost(&check);

    char names[256];
    sc_describe(&rx_syscalls, names, sizeof(names));
    printf("\n== labyrinth xdp: %s, %u worker(s), %.2f s ==\n", opt.stack ? "array stack" : "labyrinth", opt.workers,
           elapsed);
    printf("received              %llu (%.0f pps over the run), processed by workers %llu, corrupt %llu\n",
           (unsigned long long)rx.received, (double)rx.received / elapsed, (unsigned long long)rx.processed,
           (unsigned long long)rx.corrupt);
    printf("kernel drops          rx_dropped %llu  rx_ring_full %llu  rx_fill_ring_empty_descs %llu  rx_invalid_descs %llu\n",
           (unsigned long long)ks.rx_dropped, (unsigned long long)ks.rx_ring_full,
           (unsigned long long)ks.rx_fill_ring_empty_descs, (unsigned long long)ks.rx_invalid_descs);
    printf("program drops         worker rings full %llu  foreign descriptors %llu\n",
           (unsigned long long)rx.worker_full, (unsigned long long)rx.foreign);
    printf("fill ring refills     %llu bulk calls, %llu placed fewer than asked; the allocator had no frame %llu times "
           "(%llu fill-ring slots left empty)\n",
           (unsigned long long)rx.refills, (unsigned long long)rx.refill_partial, (unsigned long long)rx.refill_short,
           (unsigned long long)rx.frames_short);
    printf("refill latency        p50 %.0f ns  p99 %.0f ns  p99.9 %.0f ns  max %.0f ns  (per bulk call of up to %u)\n",
           refill_ns(0.5), refill_ns(0.99), refill_ns(0.999), (double)refill_hist.max / tsc_per_ns, RX_BATCH);
    double per_pkt = rx.received ? 1.0 / (double)rx.received : 0;
    printf("CPU per packet        receiver %.0f ns (all threads, with the background job if any)  RX thread %.0f ns\n",
           (double)cpu * per_pkt, (double)rx_thread_cpu_ns * per_pkt);
    printf("RX thread syscalls    allocator and other %llu (%s)  socket kicks: recvfrom %llu  poll %llu\n",
           (unsigned long long)rx_syscalls.counted, names, (unsigned long long)rx.kicks, (unsigned long long)rx.polls);
    printf("frames at the end     kernel %llu  workers %llu  free %llu  room %llu  reserve %llu  in flight %llu  "
           "background %llu  (fill ring reclaimed after close %zu)\n",
           (unsigned long long)fs.kernel, (unsigned long long)fs.workers, (unsigned long long)fs.pool_free,
           (unsigned long long)fs.room, (unsigned long long)fs.reserve, (unsigned long long)fs.in_flight,
           (unsigned long long)fs.background, reclaimed);
    if (!opt.stack) {
        printf("RX room               allocs %llu  refills %llu  remote frees %llu  reserve allocs %llu  failures:",
               (unsigned long long)rs.allocs, (unsigned long long)rs.refills, (unsigned long long)rs.frees_remote,
               (unsigned long long)rs.reserve_allocs);
        for (int r = 1; r < LAB_R_COUNT; r++)
            if (rs.fail_by_reason[r])
                printf(" %s %llu", lab_strreason(r), (unsigned long long)rs.fail_by_reason[r]);
        printf("\n");
        printf("pages by step         room %llu  room_remote %llu  zone %llu  room_reserve %llu  emergency %llu\n",
               (unsigned long long)st.alloc_by_step[LAB_STEP_ROOM],
               (unsigned long long)st.alloc_by_step[LAB_STEP_ROOM_REMOTE],
               (unsigned long long)st.alloc_by_step[LAB_STEP_ZONE],
               (unsigned long long)st.alloc_by_step[LAB_STEP_ROOM_RESERVE],
               (unsigned long long)st.alloc_by_step[LAB_STEP_EMERGENCY]);
        if (opt.background)
            printf("background KERNEL     ok %llu  failed %llu  shrunk %llu pages  shrinker runs %llu\n",
                   (unsigned long long)bg_ok, (unsigned long long)bg_fail,
                   (unsigned long long)atomic_load(&bg_cache.shrunk_pages), (unsigned long long)st.shrinker_runs);
    }
    printf("accounting            frames lost %zu  lab_check %s\n", lost,
           opt.stack ? "n/a" : check ? lab_strerror(check) : "ok");
    /* one line for scripts (scripts/xdp_scenario.sh) */
    printf("RESULT debug=%d stack=%d received=%llu rx_dropped=%llu rx_ring_full=%llu fill_ring_empty=%llu frames_short=%llu "
           "worker_full=%llu foreign=%llu corrupt=%llu lost=%zu check=%d alloc_syscalls=%llu kicks=%llu polls=%llu "
           "cpu_ns_per_pkt=%.0f rx_cpu_ns_per_pkt=%.0f refill_p50_ns=%.0f refill_p99_ns=%.0f\n",
           LAB_DEBUG_BUILD, opt.stack, (unsigned long long)rx.received, (unsigned long long)ks.rx_dropped,
           (unsigned long long)ks.rx_ring_full, (unsigned long long)ks.rx_fill_ring_empty_descs,
           (unsigned long long)rx.frames_short,
           (unsigned long long)rx.worker_full, (unsigned long long)rx.foreign, (unsigned long long)rx.corrupt, lost,
           check, (unsigned long long)rx_syscalls.counted, (unsigned long long)rx.kicks, (unsigned long long)rx.polls,
           (double)cpu * per_pkt, (double)rx_thread_cpu_ns * per_pkt, refill_ns(0.5), refill_ns(0.99));
    bool ok = lost == 0 && check == 0 && rx.corrupt == 0 && rx.foreign == 0;
    if (!opt.stack)
        lab_arena_destroy(lpool.arena);
    munmap(rx.area, (size_t)NUM_FRAMES * FRAME_SIZE);
    printf("%s\n", ok ? "OK" : "FAILED");
    return ok ? 0 : 1;
}
