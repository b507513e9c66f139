/* Interrupt context: signal storms.  A second thread sends SIGUSR1 to a
 * target thread in a loop; the handler allocates and frees (its own room,
 * the arena with LAB_GFP_ATOMIC, remote frees of pages the target handed
 * it) while the target itself loops through every allocator call with every
 * GFP class, so the handler lands inside all of them: zone lock held, room
 * mid-operation, deferred list mid-drain.  A deadlock is a failed test (the
 * watchdog's SIGALRM kills the process); corruption shows in the stamps,
 * lab_check, or a page that does not come back.
 *
 * The handler uses only async-signal-safe calls: the allocator's non-blocking
 * paths, atomics, and plain stores. */
#define _GNU_SOURCE 1   /* pthread_setaffinity_np */
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#ifdef LAB_TEST_SLOW
#define STORM_DEFAULT 50000ul     /* sanitizers and debug builds: slower deliveries, half as many */
#else
#define STORM_DEFAULT 100000ul
#endif
/* Signals a storm delivers: LAB_SIGNAL_STORM overrides the default where each
 * delivery costs far more (the aarch64 tree under qemu-user: CI time). */
static unsigned long g_storm = STORM_DEFAULT;
#define STALL_S 30.0   /* a storm with no delivery handled for this long has stalled
                          (a busy machine slows a storm down; only a stall fails it) */

#define TAG_MAIN 0x6d61696e00ull   /* blocks the target allocated: TAG_MAIN + order */
#define TAG_IRQ  0x6972710000ull   /* pages of the handler's room */
#define TAG_IRQA 0x6972716100ull   /* arena blocks the handler allocated: + order */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A storm has stalled when no delivery was handled for STALL_S. */
struct stall { unsigned long seen; double since; };
static _Atomic unsigned long g_handled;   /* deliveries the handler finished */
static bool storm_stalled(struct stall *st)
{
    unsigned long now_handled = atomic_load(&g_handled);
    double t = now_s();
    if (now_handled != st->seen) {
        st->seen = now_handled;
        st->since = t;
        return false;
    }
    return t - st->since > STALL_S;
}

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

static inline uint32_t xorshift(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* ---- shared between the target, its handler and the sender ------------------ */

static lab_arena *g_arena;
static lab_room *g_irq_room;          /* the handler's own room */
static _Atomic unsigned long g_bad_stamp;
static _Atomic int g_handler_frees_mailbox_only;   /* test 2: the handler only frees */

/* Blocks the target hands to the handler: address | order, 0 = empty. */
#define MAILBOX 32
static _Atomic uintptr_t g_mailbox[MAILBOX];
static _Atomic unsigned long g_mailbox_freed;   /* by the handler */

/* Handler counters (read by the target after the storm). */
static _Atomic unsigned long g_irq_room_allocs, g_irq_room_fails, g_irq_room_reserve;
static _Atomic unsigned long g_irq_arena_allocs, g_irq_arena_fails, g_irq_would_block;

/* Handler-private: a FIFO of pages from its room. */
#define IRQ_RING 128
static void *g_irq_ring[IRQ_RING];
static unsigned g_irq_head, g_irq_count;

static inline void cnt(_Atomic unsigned long *c) { atomic_fetch_add_explicit(c, 1, memory_order_relaxed); }

static void irq_room_work(unsigned long n)
{
    /* grow to 96 pages, shrink to 4, again: the room refills and drains */
    unsigned target = (n / 192) % 2 ? 96 : 4;
    lab_result res;
    lab_room_alloc_result(g_irq_room, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, &res);
    if (res.addr) {
        cnt(&g_irq_room_allocs);
        if (res.step == LAB_STEP_ROOM_RESERVE)
            cnt(&g_irq_room_reserve);
        stamp_block(res.addr, 0, TAG_IRQ);
        if (g_irq_count < IRQ_RING) {
            g_irq_ring[(g_irq_head + g_irq_count) % IRQ_RING] = res.addr;
            g_irq_count++;
        } else {
            lab_room_free(g_irq_room, res.addr);
        }
    } else {
        cnt(&g_irq_room_fails);
        if (res.reason == LAB_R_WOULD_BLOCK)
            cnt(&g_irq_would_block);
    }
    for (int k = 0; k < 3 && g_irq_count > target; k++) {
        void *old = g_irq_ring[g_irq_head];
        g_irq_head = (g_irq_head + 1) % IRQ_RING;
        g_irq_count--;
        if (!stamp_ok(old, 0, TAG_IRQ))
            cnt(&g_bad_stamp);
        lab_room_free(g_irq_room, old);
    }
}

static void irq_arena_work(unsigned long n)
{
    unsigned order = (unsigned)(n % 4);
    lab_result res;
    lab_alloc_pages_result(g_arena, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, order, &res);
    if (res.addr) {
        cnt(&g_irq_arena_allocs);
        stamp_block(res.addr, order, TAG_IRQA + order);
        if (!stamp_ok(res.addr, order, TAG_IRQA + order))
            cnt(&g_bad_stamp);
        lab_free_pages(g_arena, res.addr, order);
    } else {
        cnt(&g_irq_arena_fails);
        if (res.reason == LAB_R_WOULD_BLOCK)
            cnt(&g_irq_would_block);
    }
}

static void irq_mailbox_work(unsigned long n)
{
    int taken = 0;
    for (unsigned i = 0; i < MAILBOX && taken < 4; i++) {
        unsigned k = (unsigned)((n + i) % MAILBOX);
        uintptr_t v = atomic_exchange_explicit(&g_mailbox[k], 0, memory_order_acquire);
        if (!v)
            continue;
        void *p = (void *)(v & ~(uintptr_t)(LAB_PAGE_SIZE - 1));
        unsigned order = (unsigned)(v & 0xff);
        if (!stamp_ok(p, order, TAG_MAIN + order))
            cnt(&g_bad_stamp);
        lab_free_pages(g_arena, p, order);
        cnt(&g_mailbox_freed);
        taken++;
    }
}

static void on_sigusr1(int sig)
{
    (void)sig;
    int saved_errno = errno;
    unsigned long n = atomic_load_explicit(&g_handled, memory_order_relaxed);
    if (!atomic_load_explicit(&g_handler_frees_mailbox_only, memory_order_relaxed)) {
        irq_room_work(n);
        irq_arena_work(n);
    }
    irq_mailbox_work(n);
    atomic_fetch_add_explicit(&g_handled, 1, memory_order_release);
    errno = saved_errno;
}

/* ---- the sender ---------------------------------------------------------------- */

struct sender {
    pthread_t target;
    unsigned long want;
    _Atomic int stop;
    unsigned long sent;
};

/* With two CPUs or more, the sender and the target run on different ones:
 * then a send interrupts the target wherever it is, instead of waiting for
 * the target to be preempted.  Returns false (and changes nothing) on one CPU. */
static bool split_cpus(pthread_t target, pthread_t sender, cpu_set_t *saved)
{
    if (pthread_getaffinity_np(target, sizeof(*saved), saved) != 0 || CPU_COUNT(saved) < 2)
        return false;
    int first = -1, second = -1;
    for (int c = 0; c < CPU_SETSIZE && second < 0; c++)
        if (CPU_ISSET(c, saved)) {
            if (first < 0)
                first = c;
            else
                second = c;
        }
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    if (pthread_setaffinity_np(target, sizeof(one), &one) != 0)
        return false;
    CPU_ZERO(&one);
    CPU_SET(second, &one);
    pthread_setaffinity_np(sender, sizeof(one), &one);
    return true;
}

static void *send_storm(void *arg)
{
    struct sender *s = arg;
    uint32_t seed = 0x9e3779b9u;
    while (!atomic_load(&s->stop) && atomic_load(&g_handled) < s->want) {
        unsigned long before = atomic_load(&g_handled);
        if (pthread_kill(s->target, SIGUSR1) != 0)
            break;
        s->sent++;
        /* let it land before the next, so each send is one interrupt ... */
        for (unsigned i = 0; i < 200000 && atomic_load(&g_handled) == before && !atomic_load(&s->stop); i++) {
            relax();
            if ((i & 1023) == 1023)
                sched_yield();
        }
        /* ... then a random gap, so they land anywhere in the target's work */
        for (unsigned i = xorshift(&seed) % 256; i; i--)
            relax();
    }
    return NULL;
}

/* When the sender shares a CPU with the target (a loaded machine), it only
 * runs when the target is preempted: one delivery per time slice.  So the
 * target yields when no delivery arrived for half a millisecond; while
 * deliveries flow it never does, and they keep landing inside the
 * allocator. */
struct starve { unsigned long handled; double since; };

static void yield_if_starved(unsigned long iters, struct starve *st)
{
    if ((iters & 255) != 0)
        return;
    unsigned long h = atomic_load_explicit(&g_handled, memory_order_relaxed);
    double t = now_s();
    if (h != st->handled) {
        st->handled = h;
        st->since = t;
    } else if (t - st->since > 0.0005) {
        sched_yield();
        st->since = t;
    }
}

static struct sigaction g_old_action;

static void install_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigusr1;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    REQUIRE(sigaction(SIGUSR1, &sa, &g_old_action) == 0);
}

/* After the sender stopped: no handler runs again, and a signal still
 * pending is discarded (SIG_IGN), so the handler's state is ours. */
static void quiesce_handler(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    struct sigaction ign;
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    sigaction(SIGUSR1, &ign, NULL);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    sigaction(SIGUSR1, &g_old_action, NULL);
}

static void reset_globals(void)
{
    atomic_store(&g_handled, 0);
    atomic_store(&g_bad_stamp, 0);
    atomic_store(&g_mailbox_freed, 0);
    atomic_store(&g_irq_room_allocs, 0);
    atomic_store(&g_irq_room_fails, 0);
    atomic_store(&g_irq_room_reserve, 0);
    atomic_store(&g_irq_arena_allocs, 0);
    atomic_store(&g_irq_arena_fails, 0);
    atomic_store(&g_irq_would_block, 0);
    for (unsigned i = 0; i < MAILBOX; i++)
        atomic_store(&g_mailbox[i], 0);
    g_irq_head = g_irq_count = 0;
    g_irq_room = NULL;
}

static lab_arena *storm_arena(size_t pages, unsigned max_order, size_t wmin, size_t wlow, size_t whigh)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = pages * LAB_PAGE_SIZE;
    cfg.max_order = max_order;
    cfg.wmark_min = wmin;
    cfg.wmark_low = wlow;
    cfg.wmark_high = whigh;
    cfg.wait_timeout_ms = 2;   /* a KERNEL request that must wait does so briefly */
    cfg.name = "storm";
    lab_arena *a = NULL;
    REQUIRE(lab_arena_create(&cfg, &a) == 0);
    return a;
}

static lab_room *storm_room(lab_arena *a, size_t reserve, size_t batch, size_t high, const char *name)
{
    lab_room_config cfg;
    lab_room_config_init(&cfg);
    cfg.reserve = reserve;
    cfg.batch = batch;
    cfg.high = high;
    cfg.name = name;
    lab_room *r = NULL;
    REQUIRE(lab_room_create(a, &cfg, &r) == 0);
    return r;
}

/* Hand a block to the handler; false when the mailbox is full. */
static bool hand_off(void *p, unsigned order, unsigned start)
{
    for (unsigned i = 0; i < MAILBOX; i++) {
        uintptr_t expect = 0;
        if (atomic_compare_exchange_strong(&g_mailbox[(start + i) % MAILBOX], &expect, (uintptr_t)p | order))
            return true;
    }
    return false;
}

/* What is left in the mailbox after the storm: freed by the target. */
static unsigned long drain_mailbox(lab_arena *a)
{
    unsigned long n = 0;
    for (unsigned i = 0; i < MAILBOX; i++) {
        uintptr_t v = atomic_exchange(&g_mailbox[i], 0);
        if (!v)
            continue;
        void *p = (void *)(v & ~(uintptr_t)(LAB_PAGE_SIZE - 1));
        unsigned order = (unsigned)(v & 0xff);
        CHECK(stamp_ok(p, order, TAG_MAIN + order));
        lab_free_pages(a, p, order);
        n++;
    }
    return n;
}

static size_t count_nothing(void *ctx) { (void)ctx; return 0; }
static size_t scan_nothing(void *ctx, size_t nr) { (void)ctx; (void)nr; return 0; }

/* The high-order atomic reserve (blocks set aside for the next order >= 1
 * ATOMIC request, docs/DESIGN.md step 4) is held apart from the free pages
 * on purpose.  A blocking request that would fail otherwise gives it back:
 * take every free page, ask once more with a request that may reclaim,
 * then return everything.  After this, free_pages == total_pages. */
static void release_highatomic(lab_arena *a)
{
    lab_stats s;
    lab_stats_get(a, &s);
    CHECK_EQ(s.free_pages + s.highatomic_pages, s.total_pages);
    CHECK_EQ(s.reserve_pages, s.highatomic_pages);
    if (s.highatomic_pages == 0)
        return;
    void **p = malloc((s.total_pages + 1) * sizeof(void *));
    REQUIRE(p);
    size_t n = 0;
    while (n < s.total_pages && (p[n] = lab_alloc_pages(a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, 0)) != NULL)
        n++;
    void *last = lab_alloc_pages(a, LAB_GFP_KERNEL | LAB_GFP_MEMALLOC | LAB_GFP_NORETRY | LAB_GFP_NOWARN, 0);
    CHECK(last != NULL);
    lab_free_pages(a, last, 0);
    while (n)
        lab_free_pages(a, p[--n], 0);
    free(p);
    lab_stats_get(a, &s);
    CHECK_EQ(s.highatomic_pages, 0);
}

/* ---- test 1: the handler's own room, the arena, and handed-over frees ---------- */

struct blk {
    void *p;
    unsigned order;
    bool room;
};

#define HELD_MAX 256
#define SQUEEZE_MAX 4096

static void test_signal_storm_interrupts_every_allocator_call(void)
{
    const size_t pages = 4096;
    const unsigned max_order = 6;
    lab_arena *a = storm_arena(pages, max_order, 256, 320, 384);
    reset_globals();
    g_arena = a;
    /* The background reclaimer starts now, not from inside the storm (its
     * start is a pthread_create, which the handler must not interrupt in a
     * debug build, whose periodic lab_check allocates). */
    lab_shrinker sh = { count_nothing, scan_nothing, NULL };
    REQUIRE(lab_shrinker_register(a, &sh) == 0);
    lab_room *mine = storm_room(a, 4, 16, 64, "target");
    g_irq_room = storm_room(a, 16, 8, 32, "irq");

    static struct blk held[HELD_MAX];
    static void *squeeze[SQUEEZE_MAX];
    size_t nheld = 0, nsq = 0;
    struct starve starve = { 0, now_s() };
    unsigned long iters = 0, handed = 0, target_fails = 0, checks = 0, squeezes = 0;
    unsigned long by_class_ok[3] = { 0 }, room_ok = 0, zeroed = 0;
    uint32_t seed = 12345;
    const lab_gfp_t classes[3] = { LAB_GFP_KERNEL, LAB_GFP_NOWAIT, LAB_GFP_ATOMIC };

    install_handler();
    struct sender snd = { .target = pthread_self(), .want = g_storm };
    pthread_t tid;
    REQUIRE(pthread_create(&tid, NULL, send_storm, &snd) == 0);
    cpu_set_t cpus;
    bool pinned = split_cpus(pthread_self(), tid, &cpus);
    double t0 = now_s();
    struct stall stall = { 0, t0 };

    while (atomic_load(&g_handled) < g_storm) {
        if ((iters & 1023) == 0 && storm_stalled(&stall)) {
            CHECK(!"the storm stalled");
            break;
        }
        iters++;
        yield_if_starved(iters, &starve);
        uint32_t x = xorshift(&seed);
        /* Every 8192 iterations, squeeze: take the zone down to min with
         * NOWAIT, so ATOMIC requests (ours and the handler's) run in the
         * emergency reserve and the rooms' reserves; then give it back. */
        bool squeezing = (iters >> 13) & 1;
        if (squeezing) {
            void *p = nsq < SQUEEZE_MAX ? lab_alloc_pages(a, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, 0) : NULL;
            if (p)
                squeeze[nsq++] = p;
            if (nsq == 1)
                squeezes++;
        } else {
            for (int k = 0; k < 8 && nsq; k++)
                lab_free_pages(a, squeeze[--nsq], 0);
        }
        /* KERNEL only while the zone is not squeezed: below min it would
         * wait (briefly, but 100,000 times) */
        unsigned cls = (x >> 8) % 3;
        if (cls == 0 && (squeezing || nsq))
            cls = 1 + ((x >> 12) & 1);
        lab_gfp_t gfp = classes[cls] | LAB_GFP_NOWARN;

        if (nheld == HELD_MAX || (x % 8 >= 5 && nheld > 0)) {
            /* free one (5, 6) or hand it to the handler (7) */
            size_t i = (x >> 16) % nheld;
            struct blk b = held[i];
            held[i] = held[--nheld];
            if (!stamp_ok(b.p, b.order, TAG_MAIN + b.order)) {
                CHECK(!"a block of the target was overwritten");
                break;
            }
            if (x % 8 == 7 && hand_off(b.p, b.order, x >> 20)) {
                handed++;
            } else if (b.room && (x & 0x10000)) {
                lab_room_free(mine, b.p);
            } else {
                lab_free_pages(a, b.p, b.order);   /* a room page goes back to the room */
            }
            continue;
        }
        struct blk b = { NULL, 0, false };
        if (x % 8 < 3) {
            /* the arena, orders 0..max, small ones more often */
            unsigned order = (unsigned)__builtin_ctz((x >> 3) | (1u << max_order));
            if ((x & 0xf00000) == 0)
                gfp |= LAB_GFP_ZERO;
            b.p = lab_alloc_pages(a, gfp, order);
            b.order = order;
            if (b.p && (gfp & LAB_GFP_ZERO)) {
                const uint64_t *w = b.p;
                CHECK(w[1] == 0 && w[(LAB_PAGE_SIZE << order) / 8 - 2] == 0);
                zeroed++;
            }
        } else {
            b.p = lab_room_alloc(mine, gfp);
            b.room = true;
            if (b.p)
                room_ok++;
        }
        if (!b.p) {
            target_fails++;
            continue;
        }
        by_class_ok[cls]++;
        stamp_block(b.p, b.order, TAG_MAIN + b.order);
        held[nheld++] = b;
        if ((iters & 4095) == 0) {
            CHECK_EQ(lab_check(a), 0);
            checks++;
        }
    }
    double elapsed = now_s() - t0;
    atomic_store(&snd.stop, 1);
    pthread_join(tid, NULL);
    quiesce_handler();
    if (pinned)
        pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus);
    unsigned long handled = atomic_load(&g_handled);

    fprintf(stderr,
            "  storm: %lu deliveries handled (%lu sent) in %.2f s, %lu target iterations\n"
            "  handler: room %lu allocs (%lu from its reserve), %lu fails; arena %lu allocs, %lu fails;"
            " %lu would-block (zone lock held by the interrupted code); %lu handed blocks freed\n"
            "  target: %lu kernel / %lu nowait / %lu atomic allocs, %lu room allocs, %lu zeroed, %lu fails,"
            " %lu handed over, %lu squeezes, %lu checks\n",
            handled, snd.sent, elapsed, iters, atomic_load(&g_irq_room_allocs), atomic_load(&g_irq_room_reserve),
            atomic_load(&g_irq_room_fails), atomic_load(&g_irq_arena_allocs), atomic_load(&g_irq_arena_fails),
            atomic_load(&g_irq_would_block), atomic_load(&g_mailbox_freed), by_class_ok[0], by_class_ok[1],
            by_class_ok[2], room_ok, zeroed, target_fails, handed, squeezes, checks);

    CHECK(handled >= g_storm);
    CHECK_EQ(atomic_load(&g_bad_stamp), 0);
    CHECK(atomic_load(&g_irq_room_allocs) > 0);
    CHECK(atomic_load(&g_irq_arena_allocs) > 0);
    CHECK(atomic_load(&g_mailbox_freed) > 0);
    CHECK(by_class_ok[0] > 0 && by_class_ok[1] > 0 && by_class_ok[2] > 0);
    CHECK_EQ(lab_check(a), 0);

    /* give everything back */
    unsigned long left = drain_mailbox(a);
    CHECK_EQ(atomic_load(&g_mailbox_freed) + left, handed);
    for (size_t i = 0; i < nheld; i++) {
        CHECK(stamp_ok(held[i].p, held[i].order, TAG_MAIN + held[i].order));
        if (held[i].room)
            lab_room_free(mine, held[i].p);
        else
            lab_free_pages(a, held[i].p, held[i].order);
    }
    while (nsq)
        lab_free_pages(a, squeeze[--nsq], 0);
    while (g_irq_count) {
        void *p = g_irq_ring[g_irq_head];
        g_irq_head = (g_irq_head + 1) % IRQ_RING;
        g_irq_count--;
        CHECK(stamp_ok(p, 0, TAG_IRQ));
        lab_room_free(g_irq_room, p);
    }
    lab_stats s;
    lab_stats_get(a, &s);
    CHECK_EQ(s.allocated_pages, 0);   /* every page is free, in a room, or on its way back */
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(mine);
    lab_room_destroy(g_irq_room);
    lab_shrinker_unregister(a, &sh);
    release_highatomic(a);
    lab_stats_get(a, &s);
    CHECK_EQ(s.free_pages, s.total_pages);
    CHECK_EQ(s.free_pages, pages);
    CHECK_EQ(s.deferred_pages, 0);
    CHECK_EQ(lab_check(a), 0);
    g_arena = NULL;
    lab_arena_destroy(a);
}

/* ---- test 2: the handler's remote frees land in the middle of the owner's room
 * operations ------------------------------------------------------------------------ */

static void test_signal_remote_frees_interrupt_the_owner_room(void)
{
    const size_t pages = 2048;
    lab_arena *a = storm_arena(pages, 4, 64, 96, 128);
    reset_globals();
    g_arena = a;
    atomic_store(&g_handler_frees_mailbox_only, 1);
    /* small batch and high: the owner refills, drains and takes remote frees
     * back all the time */
    lab_room *r = storm_room(a, 2, 4, 8, "owner");

    static void *held[64];
    size_t nheld = 0;
    struct starve starve = { 0, now_s() };
    unsigned long iters = 0, handed = 0, allocs = 0, owner_frees = 0, fails = 0;
    uint32_t seed = 777;
    const lab_gfp_t classes[3] = { LAB_GFP_KERNEL, LAB_GFP_NOWAIT, LAB_GFP_ATOMIC };

    install_handler();
    struct sender snd = { .target = pthread_self(), .want = g_storm };
    pthread_t tid;
    REQUIRE(pthread_create(&tid, NULL, send_storm, &snd) == 0);
    cpu_set_t cpus;
    bool pinned = split_cpus(pthread_self(), tid, &cpus);
    double t0 = now_s();
    struct stall stall = { 0, t0 };
    while (atomic_load(&g_handled) < g_storm) {
        if ((iters & 1023) == 0 && storm_stalled(&stall)) {
            CHECK(!"the storm stalled");
            break;
        }
        iters++;
        yield_if_starved(iters, &starve);
        uint32_t x = xorshift(&seed);
        if (nheld == 64 || (x % 4 == 3 && nheld)) {
            size_t i = (x >> 8) % nheld;
            void *p = held[i];
            held[i] = held[--nheld];
            if (!stamp_ok(p, 0, TAG_MAIN)) {
                CHECK(!"a room page of the owner was overwritten");
                break;
            }
            lab_room_free(r, p);
            owner_frees++;
            continue;
        }
        void *p = lab_room_alloc(r, classes[(x >> 4) % 3] | LAB_GFP_NOWARN);
        if (!p) {
            fails++;
            continue;
        }
        allocs++;
        stamp_block(p, 0, TAG_MAIN);
        /* most pages go back through the handler's lab_free_pages */
        if ((x & 0x300) != 0 && hand_off(p, 0, x >> 16))
            handed++;
        else
            held[nheld++] = p;
    }
    double elapsed = now_s() - t0;
    atomic_store(&snd.stop, 1);
    pthread_join(tid, NULL);
    quiesce_handler();
    if (pinned)
        pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus);
    atomic_store(&g_handler_frees_mailbox_only, 0);
    unsigned long handled = atomic_load(&g_handled);
    unsigned long remote_by_handler = atomic_load(&g_mailbox_freed);

    lab_room_stats st;
    lab_room_stats_get(r, &st);
    lab_stats s;
    lab_stats_get(a, &s);
    fprintf(stderr,
            "  storm: %lu deliveries handled (%lu sent) in %.2f s; owner %lu allocs, %lu fails, %lu own frees;"
            " handler %lu remote frees; room: %llu taken back, %llu refills, %llu drains\n",
            handled, snd.sent, elapsed, allocs, fails, owner_frees, remote_by_handler,
            (unsigned long long)st.frees_remote, (unsigned long long)st.refills,
            (unsigned long long)st.drains);
    CHECK(handled >= g_storm);
    CHECK_EQ(atomic_load(&g_bad_stamp), 0);
    CHECK(remote_by_handler > 0);
    CHECK(st.frees_remote > 0);
    CHECK(s.alloc_by_step[LAB_STEP_ROOM_REMOTE] > 0);
    CHECK_EQ(lab_check(a), 0);

    /* the accounts: every page the owner allocated came back by exactly one
     * road, and every remote free is taken back or still on its way */
    unsigned long left = drain_mailbox(a);     /* remote frees too (the owner's lab_free_pages) */
    CHECK_EQ(remote_by_handler + left, handed);
    for (size_t i = 0; i < nheld; i++) {
        CHECK(stamp_ok(held[i], 0, TAG_MAIN));
        lab_room_free(r, held[i]);
        owner_frees++;
    }
    lab_room_stats_get(r, &st);
    lab_stats_get(a, &s);
    CHECK_EQ(st.allocs, allocs);
    CHECK_EQ(st.frees_owner, owner_frees);
    CHECK_EQ(st.frees_remote + s.deferred_pages, handed);
    CHECK_EQ(s.allocated_pages, 0);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    release_highatomic(a);
    lab_stats_get(a, &s);
    CHECK_EQ(s.free_pages, pages);
    CHECK_EQ(s.deferred_pages, 0);
    CHECK_EQ(lab_check(a), 0);
    g_arena = NULL;
    lab_arena_destroy(a);
}

/* ---- test 3: the handler interrupts malloc --------------------------------------
 * Async-signal-safe means safe whatever the handler interrupted, malloc
 * included: nothing the handler's allocator calls do may take a libc lock.
 * (Debug builds run a full lab_check every few operations, from whatever
 * context the operation runs in.) */
static void test_signal_handler_interrupting_malloc_does_not_deadlock(void)
{
    /* a small arena: debug builds check it every other operation */
    const size_t pages = 256;
    lab_arena *a = storm_arena(pages, 4, 8, 12, 16);
    reset_globals();
    g_arena = a;
    g_irq_room = storm_room(a, 8, 8, 32, "irq");
    const unsigned long want = g_storm / 5;
    unsigned prev_alarm = alarm(60);   /* a deadlock here fails within a minute */
    double t0 = now_s();
    struct stall stall = { 0, t0 };

    install_handler();
    struct sender snd = { .target = pthread_self(), .want = want };
    pthread_t tid;
    REQUIRE(pthread_create(&tid, NULL, send_storm, &snd) == 0);
    cpu_set_t cpus;
    bool pinned = split_cpus(pthread_self(), tid, &cpus);
    static void *keep[64];
    uint32_t seed = 4242;
    unsigned long iters = 0;
    struct starve starve = { 0, now_s() };
    while (atomic_load(&g_handled) < want) {
        if ((iters & 1023) == 0 && storm_stalled(&stall)) {
            CHECK(!"the storm stalled");
            break;
        }
        iters++;
        yield_if_starved(iters, &starve);
        uint32_t x = xorshift(&seed);
        unsigned k = x % 64;
        free(keep[k]);
        keep[k] = malloc(16 + (x >> 8) % 8192);
        if (keep[k])
            memset(keep[k], (int)k, 16);
    }
    double elapsed = now_s() - t0;
    atomic_store(&snd.stop, 1);
    pthread_join(tid, NULL);
    quiesce_handler();
    if (pinned)
        pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus);
    unsigned spent = (unsigned)(now_s() - t0) + 1;
    alarm(prev_alarm > spent ? prev_alarm - spent : 1);
    for (unsigned k = 0; k < 64; k++) {
        free(keep[k]);
        keep[k] = NULL;
    }
    unsigned long handled = atomic_load(&g_handled);
    fprintf(stderr, "  storm: %lu deliveries handled (%lu sent) in %.2f s, %lu mallocs; handler: room %lu allocs,"
            " arena %lu allocs\n", handled, snd.sent, elapsed, iters, atomic_load(&g_irq_room_allocs),
            atomic_load(&g_irq_arena_allocs));
    CHECK(handled >= want);
    CHECK_EQ(atomic_load(&g_bad_stamp), 0);
    CHECK(atomic_load(&g_irq_arena_allocs) > 0);
    while (g_irq_count) {
        void *p = g_irq_ring[g_irq_head];
        g_irq_head = (g_irq_head + 1) % IRQ_RING;
        g_irq_count--;
        CHECK(stamp_ok(p, 0, TAG_IRQ));
        lab_room_free(g_irq_room, p);
    }
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(g_irq_room);
    release_highatomic(a);
    lab_stats s;
    lab_stats_get(a, &s);
    CHECK_EQ(s.free_pages, pages);
    CHECK_EQ(lab_check(a), 0);
    g_arena = NULL;
    lab_arena_destroy(a);
}

/* One storm per process (CTest runs each as its own test, with its own
 * time), or all three with no argument. */
int main(int argc, char **argv)
{
    test_watchdog(280);   /* a deadlock in a handler becomes SIGALRM: a failed test */
    const char *env = getenv("LAB_SIGNAL_STORM");
    if (env && strtoul(env, NULL, 10) >= 1000)
        g_storm = strtoul(env, NULL, 10);
    fprintf(stderr, "  %lu deliveries a storm%s\n", g_storm, g_storm != STORM_DEFAULT ? " (LAB_SIGNAL_STORM)" : "");
    const char *only = argc > 1 ? argv[1] : "";
    if (!*only || !strcmp(only, "storm"))
        RUN(test_signal_storm_interrupts_every_allocator_call);
    if (!*only || !strcmp(only, "remote"))
        RUN(test_signal_remote_frees_interrupt_the_owner_room);
    if (!*only || !strcmp(only, "malloc"))
        RUN(test_signal_handler_interrupting_malloc_does_not_deadlock);
    return test_finish();
}
