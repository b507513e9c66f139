/*
 * Stress: everything at once, for a while.
 *
 * N worker threads (LAB_STRESS_THREADS, default 4) each own a room and walk a
 * random mix of operations: arena allocations of every order 0..max_order,
 * room allocations, with every GFP class (ATOMIC, NOWAIT, KERNEL|NORETRY,
 * KERNEL|RETRY_MAYFAIL, HIGH, MEMALLOC, NOMEMALLOC, each sometimes with
 * ZERO, all with NOWARN); frees by the owner; blocks handed to another
 * worker and freed there (cross-thread frees, remote frees into rooms); and
 * pages put into a cache that a registered shrinker empties, so both direct
 * reclaim and the background reclaimer run.
 *
 * A sender thread sends SIGUSR1 to the workers with pthread_kill, one after
 * another.  Each worker's handler uses its OWN handler room (created by that
 * worker, used only by its handler) with LAB_GFP_ATOMIC, lab_room_free and
 * lab_free_pages, allocates ATOMIC arena blocks, and frees blocks other
 * workers handed to its thread: only async-signal-safe calls (the allocator's
 * non-blocking paths, atomics, plain stores).
 *
 * A maintenance thread runs lab_check (must be 0) every 5 ms and
 * lab_arena_trim every 10 ms; workers trim now and then too, and the arena
 * trims idle memory from its background reclaimer, so trims overlap each
 * other and the re-commits of blocking requests and of the reclaimer.
 * Fault injection (5%, unlimited, blocking requests included) is on for the
 * first half of the run.
 *
 * Every block is stamped when allocated and verified when freed, by whoever
 * frees it.  Every result of the result-carrying calls is checked for
 * consistency (a failure has a reason and no step, a success the opposite),
 * and the failures and successes the test counted must equal the arena's
 * counters exactly.  At the end everything is freed, the rooms destroyed, and
 * every page must be accounted for: free_pages + void_pages == total_pages,
 * lab_check == 0, no misuse reported.
 *
 * Bounded by a wall-clock limit (LAB_STRESS_SECONDS: default 10 s, 6 s in
 * sanitizer and debug builds) and an operation count (LAB_STRESS_OPS, all
 * workers together; the coverage checks assume at least ~100,000); a hang is
 * a failure (the watchdog, and a stall detector).  LAB_STRESS_THREADS sets
 * the number of workers (default 4, at most 16).
 */
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#ifdef LAB_TEST_SLOW
#define DEFAULT_SECONDS 6.0     /* sanitizers and debug builds: each op costs 5-50x */
#else
#define DEFAULT_SECONDS 10.0
#endif
#define DEFAULT_OPS     1000000000ull   /* per run, all workers together */
#define DEFAULT_THREADS 4
#define MAX_THREADS     16
#define STALL_SECONDS   30.0    /* no worker progress for this long: a hang */

#define ARENA_PAGES 4096
#define MAX_ORDER   8
#define WMARK_MIN   128
#define WMARK_LOW   192
#define WMARK_HIGH  256

#define HELD_MAX   192          /* blocks one worker holds */
#define MAILBOX    64           /* hand-off slots per worker */
#define IRQ_RING   64           /* pages a handler keeps from its room */
#define CACHE_CAP  1536         /* pages in the shrinker's cache */

#define TAG_WORK  0x574f524b00000000ull   /* + worker << 24 + sequence */
#define TAG_HAND  0x48414e4400000000ull   /* + receiver << 8 + order */
#define TAG_IRQ   0x4952510000000000ull   /* + worker << 8 */
#define TAG_IRQA  0x4952514100000000ull   /* + worker << 8 + order */
#define TAG_CACHE 0x4341434845000000ull

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline uint32_t xorshift(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static inline void cnt(_Atomic uint64_t *c) { atomic_fetch_add_explicit(c, 1, memory_order_relaxed); }
static inline uint64_t ld(_Atomic uint64_t *c) { return atomic_load_explicit(c, memory_order_relaxed); }

/* ---- the GFP classes ----------------------------------------------------------- */

static const struct { lab_gfp_t gfp; const char *name; } classes[] = {
    { LAB_GFP_ATOMIC, "ATOMIC" },
    { LAB_GFP_NOWAIT, "NOWAIT" },
    { LAB_GFP_KERNEL | LAB_GFP_NORETRY, "KERNEL|NORETRY" },
    { LAB_GFP_KERNEL | LAB_GFP_RETRY_MAYFAIL, "KERNEL|RETRY_MAYFAIL" },
    { LAB_GFP_HIGH, "HIGH" },
    { LAB_GFP_KERNEL | LAB_GFP_HIGH | LAB_GFP_NORETRY, "KERNEL|HIGH|NORETRY" },
    { LAB_GFP_NOWAIT | LAB_GFP_MEMALLOC, "NOWAIT|MEMALLOC" },
    { LAB_GFP_ATOMIC | LAB_GFP_NOMEMALLOC, "ATOMIC|NOMEMALLOC" },
    { LAB_GFP_KERNEL | LAB_GFP_MEMALLOC | LAB_GFP_NOMEMALLOC | LAB_GFP_NORETRY, "KERNEL|MEMALLOC|NOMEMALLOC|NORETRY" },
};
#define NCLASSES (sizeof(classes) / sizeof(classes[0]))


/* ---- shared state ---------------------------------------------------------------- */

struct blk {
    void *p;
    uint64_t tag;
    unsigned order;
    bool room;               /* handed out by the worker's own room */
};

struct worker {
    unsigned id;
    pthread_t tid;
    lab_room *room;          /* the worker's own room */
    lab_room *irq_room;      /* its handler's room: created by the worker, used by the handler only */
    int create_err;
    uint32_t seed;
    struct blk held[HELD_MAX];
    size_t nheld;
    uint64_t seq;
    _Atomic uintptr_t mailbox[MAILBOX];     /* blocks other workers handed here: addr | order */

    /* worker-only counters (read by main after join) */
    uint64_t ops, allocs, frees_own, room_frees, handed, taken_from_mailbox, cache_adds, zero_checked, trims;
    uint64_t fail_by_reason[LAB_R_COUNT];
    uint64_t ok_by_step[LAB_STEP_COUNT];
    uint64_t ok_by_class[NCLASSES], ok_by_order[MAX_ORDER + 1];
    uint64_t bad_stamp, bad_zero, bad_result;
    lab_result first_bad_result;            /* the first inconsistent one, for the report */
    lab_gfp_t first_bad_gfp;
    bool first_bad_room;
    _Atomic uint64_t progress;              /* ops, published for the stall detector */

    /* handler state: touched only by this thread's handler until SIGUSR1 is
     * blocked at the end */
    void *irq_ring[IRQ_RING];
    unsigned irq_head, irq_count;
    _Atomic uint64_t h_handled, h_room_allocs, h_room_reserve, h_arena_allocs, h_mailbox_frees;
    _Atomic uint64_t h_fail_by_reason[LAB_R_COUNT];
    _Atomic uint64_t h_ok_by_step[LAB_STEP_COUNT];
    _Atomic uint64_t h_bad_stamp, h_bad_result;
};

static lab_arena *g_arena;
static unsigned g_nthreads;
static struct worker *g_workers;
static _Atomic int g_stop;                  /* workers: leave the loop */
static _Atomic int g_storm_on;              /* handlers: do work */
static pthread_barrier_t g_start, g_stopped;
static __thread struct worker *tls_worker;  /* the handler's view of its thread */

/* misuse and failure reports: counted (async-signal-safe), first message kept */
static _Atomic uint64_t g_misuse, g_log_reports;
static _Atomic int g_misuse_msg_taken;
static char g_misuse_msg[512];

static void count_misuse(void *ctx, int err, const void *addr, const char *msg)
{
    (void)ctx;
    (void)err;
    (void)addr;
    cnt(&g_misuse);
    if (!atomic_exchange(&g_misuse_msg_taken, 1)) {
        size_t n = strlen(msg);
        if (n >= sizeof(g_misuse_msg))
            n = sizeof(g_misuse_msg) - 1;
        memcpy(g_misuse_msg, msg, n);
        g_misuse_msg[n] = 0;
    }
}

static void count_log(void *ctx, const char *msg, size_t len)
{
    (void)ctx;
    (void)msg;
    (void)len;
    cnt(&g_log_reports);
}

/* A result must be consistent: a block and no reason, or no block, a reason
 * and no step. */
static bool result_ok(const lab_result *r)
{
    if (r->addr)
        return r->reason == LAB_R_NONE && r->step > LAB_STEP_NONE && r->step < LAB_STEP_COUNT;
    return r->reason > LAB_R_NONE && r->reason < LAB_R_COUNT && r->step == LAB_STEP_NONE;
}

/* ---- the shrinker's cache: order-0 pages, FIFO ---------------------------------- */

static struct {
    pthread_mutex_t mu;
    void *pages[CACHE_CAP];
    size_t head, n;
    uint64_t bad_stamp, evicted;
    _Atomic uint64_t scanned_pages, scans;
} g_cache;

static void cache_free_oldest_locked(void)
{
    void *p = g_cache.pages[g_cache.head];
    g_cache.head = (g_cache.head + 1) % CACHE_CAP;
    g_cache.n--;
    if (!stamp_ok(p, 0, TAG_CACHE))
        g_cache.bad_stamp++;
    lab_free_pages(g_arena, p, 0);
}

static void cache_add(void *p)
{
    stamp_block(p, 0, TAG_CACHE);
    pthread_mutex_lock(&g_cache.mu);
    if (g_cache.n == CACHE_CAP) {
        cache_free_oldest_locked();
        g_cache.evicted++;
    }
    g_cache.pages[(g_cache.head + g_cache.n) % CACHE_CAP] = p;
    g_cache.n++;
    pthread_mutex_unlock(&g_cache.mu);
}

static size_t cache_count(void *ctx)
{
    (void)ctx;
    pthread_mutex_lock(&g_cache.mu);
    size_t n = g_cache.n;
    pthread_mutex_unlock(&g_cache.mu);
    return n;
}

static size_t cache_scan(void *ctx, size_t nr)
{
    (void)ctx;
    size_t freed = 0;
    pthread_mutex_lock(&g_cache.mu);
    while (freed < nr && g_cache.n > 0) {
        cache_free_oldest_locked();
        freed++;
    }
    pthread_mutex_unlock(&g_cache.mu);
    cnt(&g_cache.scans);
    atomic_fetch_add_explicit(&g_cache.scanned_pages, freed, memory_order_relaxed);
    return freed;
}

/* ---- the handler ------------------------------------------------------------------ */

static void handler_count(struct worker *w, const lab_result *r, unsigned order)
{
    if (!result_ok(r))
        cnt(&w->h_bad_result);
    else if (r->addr)   /* the stats count pages by step */
        atomic_fetch_add_explicit(&w->h_ok_by_step[r->step], (uint64_t)1 << order, memory_order_relaxed);
    else
        cnt(&w->h_fail_by_reason[r->reason]);
}

/* Its own room: grow the ring to 48 pages, shrink it to 4, again, so the room
 * refills, drains and dips into its reserve. */
static void handler_room_work(struct worker *w, uint64_t n)
{
    unsigned target = (n / 96) % 2 ? 48 : 4;
    lab_gfp_t gfp = LAB_GFP_ATOMIC | LAB_GFP_NOWARN | ((n % 16) == 5 ? LAB_GFP_ZERO : 0);
    lab_result r;
    lab_room_alloc_result(w->irq_room, gfp, &r);
    handler_count(w, &r, 0);
    if (r.addr) {
        cnt(&w->h_room_allocs);
        if (r.step == LAB_STEP_ROOM_RESERVE)
            cnt(&w->h_room_reserve);
        if ((gfp & LAB_GFP_ZERO) && (((uint64_t *)r.addr)[0] != 0 || ((uint64_t *)r.addr)[511] != 0))
            cnt(&w->h_bad_stamp);
        stamp_block(r.addr, 0, TAG_IRQ + ((uint64_t)w->id << 8));
        if (w->irq_count < IRQ_RING) {
            w->irq_ring[(w->irq_head + w->irq_count) % IRQ_RING] = r.addr;
            w->irq_count++;
        } else {
            lab_room_free(w->irq_room, r.addr);
        }
    }
    for (int k = 0; k < 3 && w->irq_count > target; k++) {
        void *old = w->irq_ring[w->irq_head];
        w->irq_head = (w->irq_head + 1) % IRQ_RING;
        w->irq_count--;
        if (!stamp_ok(old, 0, TAG_IRQ + ((uint64_t)w->id << 8)))
            cnt(&w->h_bad_stamp);
        if ((n + (unsigned)k) % 5 == 0)
            lab_free_pages(g_arena, old, 0);       /* the remote path into its own room */
        else
            lab_room_free(w->irq_room, old);
    }
}

/* The arena, ATOMIC (or NOWAIT), orders 0..3. */
static void handler_arena_work(struct worker *w, uint64_t n)
{
    unsigned order = (unsigned)(n % 4);
    lab_gfp_t gfp = ((n % 7) == 3 ? LAB_GFP_NOWAIT : LAB_GFP_ATOMIC) | LAB_GFP_NOWARN;
    lab_result r;
    lab_alloc_pages_result(g_arena, gfp, order, &r);
    handler_count(w, &r, order);
    if (!r.addr)
        return;
    cnt(&w->h_arena_allocs);
    uint64_t tag = TAG_IRQA + ((uint64_t)w->id << 8) + order;
    stamp_block(r.addr, order, tag);
    if (!stamp_ok(r.addr, order, tag))
        cnt(&w->h_bad_stamp);
    lab_free_pages(g_arena, r.addr, order);
}

static bool verify_handed(struct worker *w, uintptr_t v, void **p, unsigned *order)
{
    *p = (void *)(v & ~(uintptr_t)(LAB_PAGE_SIZE - 1));
    *order = (unsigned)(v & (LAB_PAGE_SIZE - 1));
    return stamp_ok(*p, *order, TAG_HAND + ((uint64_t)w->id << 8) + *order);
}

/* Blocks other workers handed to this thread: freed here, in signal context. */
static void handler_mailbox_work(struct worker *w, uint64_t n)
{
    for (unsigned i = 0, taken = 0; i < MAILBOX && taken < 2; i++) {
        unsigned k = (unsigned)((n * 7 + i) % MAILBOX);
        uintptr_t v = atomic_exchange_explicit(&w->mailbox[k], 0, memory_order_acquire);
        if (!v)
            continue;
        void *p;
        unsigned order;
        if (!verify_handed(w, v, &p, &order))
            cnt(&w->h_bad_stamp);
        lab_free_pages(g_arena, p, order);
        cnt(&w->h_mailbox_frees);
        taken++;
    }
}

static void on_sigusr1(int sig)
{
    (void)sig;
    int saved_errno = errno;
    struct worker *w = tls_worker;
    if (w && atomic_load_explicit(&g_storm_on, memory_order_relaxed)) {
        uint64_t n = ld(&w->h_handled);
        handler_room_work(w, n);
        handler_arena_work(w, n);
        handler_mailbox_work(w, n);
        atomic_store_explicit(&w->h_handled, n + 1, memory_order_release);
    }
    errno = saved_errno;
}

/* ---- the sender ------------------------------------------------------------------ */

struct sender {
    _Atomic int stop;
    uint64_t sent;
};

/* Round robin over the workers, one signal every ~10-60 us, without waiting
 * for it to land: a worker that is not running when its signal comes gets it
 * when it runs next (a second signal before then merges with the first, as
 * standard signals do).  So the deliveries land anywhere in the workers'
 * calls, including their blocking ones. */
static void *sender_main(void *arg)
{
    struct sender *s = arg;
    uint32_t seed = 0x9e3779b9u;
    for (unsigned t = 0; !atomic_load(&s->stop); t = (t + 1) % g_nthreads) {
        if (pthread_kill(g_workers[t].tid, SIGUSR1) != 0)
            break;
        s->sent++;
        struct timespec gap = { 0, 10000 + (long)(xorshift(&seed) % 4) * 10000 };
        nanosleep(&gap, NULL);
    }
    return NULL;
}

/* ---- the maintenance thread ------------------------------------------------------ */

struct maint {
    _Atomic int stop;
    uint64_t checks, bad_checks, trims, trimmed_bytes;
    int first_bad;
};

static void *maint_main(void *arg)
{
    struct maint *m = arg;
    for (unsigned i = 0; !atomic_load(&m->stop); i++) {
        sleep_ms(5);
        int err = lab_check(g_arena);
        m->checks++;
        if (err) {
            if (!m->bad_checks)
                m->first_bad = err;
            m->bad_checks++;
        }
        if (i % 2 == 1) {
            m->trimmed_bytes += lab_arena_trim(g_arena);
            m->trims++;
        }
    }
    return NULL;
}

/* ---- the worker ------------------------------------------------------------------- */

static void worker_count(struct worker *w, const lab_result *r, lab_gfp_t gfp, bool room, unsigned cls,
                         unsigned order)
{
    if (!result_ok(r)) {
        if (!w->bad_result++) {
            w->first_bad_result = *r;
            w->first_bad_gfp = gfp;
            w->first_bad_room = room;
        }
    } else if (r->addr) {
        w->ok_by_step[r->step] += (uint64_t)1 << order;   /* the stats count pages */
        w->ok_by_class[cls]++;
        if (order <= MAX_ORDER)
            w->ok_by_order[order]++;
        w->allocs++;
    } else {
        w->fail_by_reason[r->reason]++;
    }
}

/* A ZERO block must be zero: every byte of small blocks, the first and last
 * words of every page of large ones. */
static bool zeroed(const void *p, unsigned order)
{
    const uint64_t *q = p;
    size_t words = ((size_t)LAB_PAGE_SIZE << order) / 8;
    if (order <= 1) {
        for (size_t i = 0; i < words; i++)
            if (q[i])
                return false;
        return true;
    }
    for (size_t pg = 0; pg < ((size_t)1 << order); pg++)
        if (q[pg * 512] || q[pg * 512 + 511])
            return false;
    return true;
}

static void hold(struct worker *w, void *p, unsigned order, bool room)
{
    struct blk *b = &w->held[w->nheld++];
    b->p = p;
    b->order = order;
    b->room = room;
    b->tag = TAG_WORK + ((uint64_t)w->id << 24) + (++w->seq & 0xffffff);
    stamp_block(p, order, b->tag);
}

static struct blk unhold(struct worker *w, size_t i)
{
    struct blk b = w->held[i];
    w->held[i] = w->held[--w->nheld];
    if (!stamp_ok(b.p, b.order, b.tag))
        w->bad_stamp++;
    return b;
}

static void drain_mailbox(struct worker *w, unsigned max)
{
    for (unsigned i = 0, taken = 0; i < MAILBOX && taken < max; i++) {
        if (!atomic_load_explicit(&w->mailbox[i], memory_order_relaxed))
            continue;
        uintptr_t v = atomic_exchange_explicit(&w->mailbox[i], 0, memory_order_acquire);
        if (!v)
            continue;
        void *p;
        unsigned order;
        if (!verify_handed(w, v, &p, &order))
            w->bad_stamp++;
        lab_free_pages(g_arena, p, order);
        w->taken_from_mailbox++;
        taken++;
    }
}

static bool hand_off(struct worker *w, struct blk b, uint32_t x)
{
    struct worker *to = &g_workers[(w->id + 1 + x % (g_nthreads - 1)) % g_nthreads];
    stamp_block(b.p, b.order, TAG_HAND + ((uint64_t)to->id << 8) + b.order);
    for (unsigned i = 0; i < MAILBOX; i++) {
        uintptr_t expect = 0;
        if (atomic_compare_exchange_strong_explicit(&to->mailbox[(x + i) % MAILBOX], &expect,
                                                    (uintptr_t)b.p | b.order, memory_order_release,
                                                    memory_order_relaxed))
            return true;
    }
    return false;
}

static unsigned pick_class(uint32_t x)
{
    /* the common classes more often than the exotic ones */
    static const unsigned weights[NCLASSES] = { 6, 6, 3, 3, 2, 2, 1, 2, 1 };
    unsigned total = 0;
    for (unsigned i = 0; i < NCLASSES; i++)
        total += weights[i];
    unsigned v = x % total;
    for (unsigned i = 0; i < NCLASSES; i++) {
        if (v < weights[i])
            return i;
        v -= weights[i];
    }
    return 0;
}

static void worker_step(struct worker *w)
{
    uint32_t x = xorshift(&w->seed);
    unsigned op = x % 100;
    x = xorshift(&w->seed);

    if (w->nheld == HELD_MAX || (op < 27 && w->nheld)) {           /* free one */
        struct blk b = unhold(w, (x >> 8) % w->nheld);
        if (b.room && (x & 1)) {
            lab_room_free(w->room, b.p);
            w->room_frees++;
        } else {
            lab_free_pages(g_arena, b.p, b.order);   /* a room page goes back to its room */
        }
        w->frees_own++;
        return;
    }
    if (op < 34 && w->nheld && g_nthreads > 1) {                    /* cross-thread free */
        size_t i = (x >> 8) % w->nheld;
        struct blk b = unhold(w, i);
        if (hand_off(w, b, x >> 12)) {
            w->handed++;
        } else {
            lab_free_pages(g_arena, b.p, b.order);
            w->frees_own++;
        }
        return;
    }
    if (op < 42) {                                                  /* feed the shrinker's cache */
        unsigned cls = (x & 1) ? 1 : 3;                             /* NOWAIT or KERNEL|RETRY_MAYFAIL */
        lab_result r;
        lab_alloc_pages_result(g_arena, classes[cls].gfp | LAB_GFP_NOWARN, 0, &r);
        worker_count(w, &r, classes[cls].gfp, false, cls, 0);
        if (r.addr) {
            cache_add(r.addr);
            w->cache_adds++;
        }
        return;
    }
    if (op < 46) {
        drain_mailbox(w, MAILBOX);
        return;
    }
    unsigned cls = pick_class(x >> 4);
    lab_gfp_t gfp = classes[cls].gfp | LAB_GFP_NOWARN | ((x >> 24) % 8 == 0 ? LAB_GFP_ZERO : 0);
    lab_result r;
    unsigned order = 0;
    bool room = op < 70;
    if (room) {
        lab_room_alloc_result(w->room, gfp, &r);
    } else {
        /* orders 0..max: order k with probability 2^-(k+1) */
        order = (unsigned)__builtin_ctz((x >> 10) | (1u << MAX_ORDER));
        lab_alloc_pages_result(g_arena, gfp, order, &r);
    }
    worker_count(w, &r, gfp, room, cls, order);
    if (!r.addr)
        return;
    if (gfp & LAB_GFP_ZERO) {
        w->zero_checked++;
        if (!zeroed(r.addr, order))
            w->bad_zero++;
    }
    hold(w, r.addr, order, room);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.reserve = 8;
    rc.batch = 16;
    rc.high = 64;
    rc.name = "worker";
    w->create_err = lab_room_create(g_arena, &rc, &w->room);
    rc.reserve = 16;
    rc.batch = 8;
    rc.high = 32;
    rc.name = "handler";
    if (!w->create_err)
        w->create_err = lab_room_create(g_arena, &rc, &w->irq_room);
    tls_worker = w;
    pthread_barrier_wait(&g_start);      /* main checks create_err */

    /* No malloc, stdio or other non-async-signal-safe library call from here
     * until SIGUSR1 is blocked: debug builds' periodic checks allocate inside
     * the allocator, and may do so in this thread's handler. */

    /* A burst first: one block of every order, classes rotating, while the
     * arena is still unfragmented, so that every order is served at least
     * once however short the run (later the large ones mostly fail). */
    for (unsigned o = 0; o <= MAX_ORDER; o++) {
        unsigned cls = (o + w->id) % NCLASSES;
        lab_result r;
        lab_alloc_pages_result(g_arena, classes[cls].gfp | LAB_GFP_NOWARN, o, &r);
        worker_count(w, &r, classes[cls].gfp, false, cls, o);
        if (r.addr)
            hold(w, r.addr, o, false);
    }
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        worker_step(w);
        w->ops++;
        /* every 16384 operations a worker trims too: trims overlap each other
         * and the re-commits of blocking requests and the background reclaimer */
        if ((w->ops & 16383) == 8192) {
            lab_arena_trim(g_arena);
            w->trims++;
        }
        if ((w->ops & 63) == 0) {
            drain_mailbox(w, MAILBOX);
            atomic_store_explicit(&w->progress, w->ops, memory_order_relaxed);
        }
    }
    atomic_store_explicit(&w->progress, w->ops, memory_order_relaxed);

    /* The sender has stopped when everyone passes this barrier; after it,
     * no worker hands off anything. */
    pthread_barrier_wait(&g_stopped);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);   /* the handler's state is ours now */

    drain_mailbox(w, MAILBOX);
    while (w->nheld) {
        struct blk b = unhold(w, w->nheld - 1);
        if (b.room)
            lab_room_free(w->room, b.p);
        else
            lab_free_pages(g_arena, b.p, b.order);
        w->frees_own++;
    }
    while (w->irq_count) {
        void *p = w->irq_ring[w->irq_head];
        w->irq_head = (w->irq_head + 1) % IRQ_RING;
        w->irq_count--;
        if (!stamp_ok(p, 0, TAG_IRQ + ((uint64_t)w->id << 8)))
            w->bad_stamp++;
        lab_room_free(w->irq_room, p);
    }
    return NULL;
}

/* ---- the end: give the high-order atomic reserve back --------------------------------
 * Its blocks are held apart from the free pages on purpose; a blocking request
 * that would otherwise fail releases them.  Take every free page, then ask
 * with requests that may block (which first re-commit what trim sent to the
 * void) until the reserve is empty; then return everything. */
static void release_highatomic(lab_arena *a)
{
    lab_stats s;
    lab_stats_get(a, &s);
    if (s.highatomic_pages == 0)
        return;
    size_t cap = s.total_pages + 2, n = 0;
    void **p = malloc(cap * sizeof(void *));
    REQUIRE(p);
    while (n < cap && (p[n] = lab_alloc_pages(a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, 0)) != NULL)
        n++;
    while (n < cap && s.highatomic_pages) {
        p[n] = lab_alloc_pages(a, LAB_GFP_KERNEL | LAB_GFP_MEMALLOC | LAB_GFP_NORETRY | LAB_GFP_NOWARN, 0);
        if (!p[n])
            break;
        n++;
        lab_stats_get(a, &s);
    }
    while (n)
        lab_free_pages(a, p[--n], 0);
    free(p);
    lab_stats_get(a, &s);
    CHECK_EQ(s.highatomic_pages, 0);
}

/* ---- the test ------------------------------------------------------------------------- */

static double env_double(const char *name, double dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    double d = strtod(v, NULL);
    return d > 0 ? d : dflt;
}

static void test_stress_everything_at_once(void)
{
    double seconds = env_double("LAB_STRESS_SECONDS", DEFAULT_SECONDS);
    uint64_t max_ops = (uint64_t)env_double("LAB_STRESS_OPS", (double)DEFAULT_OPS);
    g_nthreads = (unsigned)env_double("LAB_STRESS_THREADS", DEFAULT_THREADS);
    if (g_nthreads > MAX_THREADS)
        g_nthreads = MAX_THREADS;
    test_watchdog((unsigned)seconds + 120);

    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = (size_t)ARENA_PAGES * LAB_PAGE_SIZE;
    cfg.max_order = MAX_ORDER;
    cfg.wmark_min = WMARK_MIN;
    cfg.wmark_low = WMARK_LOW;
    cfg.wmark_high = WMARK_HIGH;
    cfg.wait_timeout_ms = 3;      /* blocking requests that must wait do so briefly */
    cfg.trim_delay_ms = 20;       /* the background reclaimer trims idle memory too */
    cfg.name = "stress";
    REQUIRE(lab_arena_create(&cfg, &g_arena) == 0);
    REQUIRE(lab_arena_max_order(g_arena) == MAX_ORDER);
    lab_set_misuse_handler(g_arena, count_misuse, NULL);
    lab_set_log_hook(g_arena, count_log, NULL);

    pthread_mutex_init(&g_cache.mu, NULL);
    lab_shrinker sh = { cache_count, cache_scan, NULL };
    REQUIRE(lab_shrinker_register(g_arena, &sh) == 0);   /* starts the background reclaimer */

    /* On before any worker starts (their creation orders it after these
     * writes); switched off, which is one atomic store, half way through. */
    lab_fault_config fc = { .probability = 5, .interval = 1, .times = -1, .min_order = 0, .ignore_blocking = 0 };
    REQUIRE(lab_fault_set(g_arena, &fc) == 0);

    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigusr1;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    REQUIRE(sigaction(SIGUSR1, &sa, &old_sa) == 0);

    uint64_t seed = test_seed();
    g_workers = calloc(g_nthreads, sizeof(struct worker));
    REQUIRE(g_workers);
    pthread_barrier_init(&g_start, NULL, g_nthreads + 1);
    pthread_barrier_init(&g_stopped, NULL, g_nthreads + 1);
    for (unsigned i = 0; i < g_nthreads; i++) {
        struct worker *w = &g_workers[i];
        w->id = i;
        w->seed = 0x12345u * (i + 1) ^ (uint32_t)seed;
        if (!w->seed)
            w->seed = 1;
        REQUIRE(pthread_create(&w->tid, NULL, worker_main, w) == 0);
    }
    pthread_barrier_wait(&g_start);      /* rooms created, handlers know their thread */
    for (unsigned i = 0; i < g_nthreads; i++)
        REQUIRE(g_workers[i].create_err == 0);
    atomic_store(&g_storm_on, 1);
    struct sender snd = { 0 };
    struct maint mt = { 0 };
    pthread_t sender_tid, maint_tid;
    REQUIRE(pthread_create(&sender_tid, NULL, sender_main, &snd) == 0);
    REQUIRE(pthread_create(&maint_tid, NULL, maint_main, &mt) == 0);

    double t0 = now_s(), last_progress_t = t0, fault_off_at = 0;
    uint64_t last_ops = 0, ops = 0;
    bool stalled = false, fault_on = true;
    for (;;) {
        sleep_ms(10);
        double t = now_s();
        ops = 0;
        for (unsigned i = 0; i < g_nthreads; i++)
            ops += atomic_load_explicit(&g_workers[i].progress, memory_order_relaxed);
        if (ops != last_ops) {
            last_ops = ops;
            last_progress_t = t;
        } else if (t - last_progress_t > STALL_SECONDS) {
            stalled = true;
            break;
        }
        if (fault_on && t - t0 >= seconds / 2) {
            lab_fault_set(g_arena, NULL);
            fault_on = false;
            fault_off_at = t - t0;
        }
        if (t - t0 >= seconds || ops >= max_ops)
            break;
    }
    if (stalled) {
        fprintf(stderr, "stress: no worker made progress for %.0f s: a hang\n", STALL_SECONDS);
        lab_stats_print(g_arena, stderr, LAB_STATS_TEXT);
        abort();
    }
    if (fault_on) {
        lab_fault_set(g_arena, NULL);
        fault_off_at = now_s() - t0;
    }
    atomic_store(&g_stop, 1);
    atomic_store(&snd.stop, 1);
    pthread_join(sender_tid, NULL);
    pthread_barrier_wait(&g_stopped);
    for (unsigned i = 0; i < g_nthreads; i++)
        pthread_join(g_workers[i].tid, NULL);
    atomic_store(&mt.stop, 1);
    pthread_join(maint_tid, NULL);
    double elapsed = now_s() - t0;
    atomic_store(&g_storm_on, 0);
    sigaction(SIGUSR1, &old_sa, NULL);

    /* the shrinker's cache: unregister (no scan runs after), then empty it */
    lab_shrinker_unregister(g_arena, &sh);
    pthread_mutex_lock(&g_cache.mu);
    size_t cache_left = g_cache.n;
    while (g_cache.n)
        cache_free_oldest_locked();
    pthread_mutex_unlock(&g_cache.mu);

    /* ---- figures ---- */
    uint64_t w_ops = 0, allocs = 0, handed = 0, taken = 0, cache_adds = 0, zero_checked = 0, bad = 0, w_trims = 0;
    uint64_t frees_own = 0, room_frees = 0;
    uint64_t h_handled = 0, h_room = 0, h_reserve = 0, h_arena = 0, h_mail = 0;
    uint64_t fail_w[LAB_R_COUNT] = { 0 }, fail_h[LAB_R_COUNT] = { 0 }, steps[LAB_STEP_COUNT] = { 0 };
    uint64_t by_class[NCLASSES] = { 0 }, by_order[MAX_ORDER + 1] = { 0 };
    for (unsigned i = 0; i < g_nthreads; i++) {
        struct worker *w = &g_workers[i];
        w_ops += w->ops;
        allocs += w->allocs;
        handed += w->handed;
        taken += w->taken_from_mailbox;
        cache_adds += w->cache_adds;
        zero_checked += w->zero_checked;
        w_trims += w->trims;
        frees_own += w->frees_own;
        room_frees += w->room_frees;
        bad += w->bad_stamp + w->bad_zero + w->bad_result + ld(&w->h_bad_stamp) + ld(&w->h_bad_result);
        if (w->bad_stamp + w->bad_zero + w->bad_result + ld(&w->h_bad_stamp) + ld(&w->h_bad_result))
            fprintf(stderr, "  worker %u: %" PRIu64 " bad stamps, %" PRIu64 " not zeroed, %" PRIu64
                    " inconsistent results; handler: %" PRIu64 " bad stamps, %" PRIu64 " inconsistent results\n",
                    i, w->bad_stamp, w->bad_zero, w->bad_result, ld(&w->h_bad_stamp), ld(&w->h_bad_result));
        if (w->bad_result)
            fprintf(stderr, "  worker %u: first inconsistent result: %s gfp 0x%x: addr %p reason %d (%s) step %d\n", i,
                    w->first_bad_room ? "lab_room_alloc_result" : "lab_alloc_pages_result", w->first_bad_gfp,
                    w->first_bad_result.addr, w->first_bad_result.reason,
                    lab_strreason(w->first_bad_result.reason), w->first_bad_result.step);
        h_handled += ld(&w->h_handled);
        h_room += ld(&w->h_room_allocs);
        h_reserve += ld(&w->h_room_reserve);
        h_arena += ld(&w->h_arena_allocs);
        h_mail += ld(&w->h_mailbox_frees);
        for (int r = 0; r < LAB_R_COUNT; r++) {
            fail_w[r] += w->fail_by_reason[r];
            fail_h[r] += ld(&w->h_fail_by_reason[r]);
        }
        for (int s = 0; s < LAB_STEP_COUNT; s++)
            steps[s] += w->ok_by_step[s] + ld(&w->h_ok_by_step[s]);
        for (unsigned c = 0; c < NCLASSES; c++)
            by_class[c] += w->ok_by_class[c];
        for (unsigned o = 0; o <= MAX_ORDER; o++)
            by_order[o] += w->ok_by_order[o];
    }
    lab_stats s;
    lab_stats_get(g_arena, &s);
    uint64_t injected = lab_fault_injected(g_arena);

    fprintf(stderr, "stress: %u workers, %.2f s (limit %.1f s, %" PRIu64 " ops limit), fault injection on for the first %.2f s\n",
            g_nthreads, elapsed, seconds, max_ops, fault_off_at);
    fprintf(stderr, "  operations: %" PRIu64 " (%" PRIu64 " successful worker allocations, %" PRIu64
            " zero-checked; %" PRIu64 " frees by the owner, %" PRIu64 " of them with lab_room_free), %" PRIu64
            " handed to another worker (%" PRIu64 " freed by its worker, %" PRIu64 " by its handler), %" PRIu64
            " cache adds\n",
            w_ops, allocs, zero_checked, frees_own, room_frees, handed, taken, h_mail, cache_adds);
    fprintf(stderr, "  signals: %" PRIu64 " sent, %" PRIu64 " deliveries handled (the others merged with a pending"
            " one); handlers: %" PRIu64 " room allocs (%" PRIu64 " from its reserve), %" PRIu64 " arena allocs\n",
            snd.sent, h_handled, h_room, h_reserve, h_arena);
    fprintf(stderr, "  allocation failures by reason (workers / handlers):");
    for (int r = 1; r < LAB_R_COUNT; r++)
        if (fail_w[r] + fail_h[r])
            fprintf(stderr, " %s %" PRIu64 "/%" PRIu64 ";", lab_strreason(r), fail_w[r], fail_h[r]);
    fprintf(stderr, " (faults injected %" PRIu64 ")\n", injected);
    fprintf(stderr, "  served by step:");
    for (int st = 1; st < LAB_STEP_COUNT; st++)
        fprintf(stderr, " %s %" PRIu64 ";", lab_strstep(st), steps[st]);
    fprintf(stderr, "\n  successes by class:");
    for (unsigned c = 0; c < NCLASSES; c++)
        fprintf(stderr, " %s %" PRIu64 ";", classes[c].name, by_class[c]);
    fprintf(stderr, "\n  arena successes by order:");
    for (unsigned o = 0; o <= MAX_ORDER; o++)
        fprintf(stderr, " %" PRIu64, by_order[o]);
    fprintf(stderr, "\n  trims: %" PRIu64 " by the maintenance thread (%" PRIu64 " KiB), %" PRIu64 " by workers, %" PRIu64
            " pages trimmed in all, %" PRIu64
            " re-committed; shrinker runs %" PRIu64 " (%" PRIu64 " pages; %" PRIu64 " scans seen by the cache, %zu pages"
            " left in it, %" PRIu64 " evicted); kswapd wakes %" PRIu64 " runs %" PRIu64 "; waits %" PRIu64
            "; lab_check %" PRIu64 " concurrent\n",
            mt.trims, mt.trimmed_bytes >> 10, w_trims, s.trimmed_pages, s.recommitted_pages, s.shrinker_runs,
            s.shrinker_pages, ld(&g_cache.scans), cache_left, g_cache.evicted, s.kswapd_wakes, s.kswapd_runs,
            s.waits, mt.checks);

    /* ---- every figure agrees with the arena's, and nothing broke ---- */
    CHECK_EQ(bad, 0);
    CHECK_EQ(g_cache.bad_stamp, 0);
    CHECK_EQ(mt.bad_checks, 0);
    if (mt.bad_checks)
        fprintf(stderr, "  first concurrent lab_check failure: %s\n", lab_strerror(mt.first_bad));
    CHECK(w_ops > 0);
    CHECK(h_handled > 0);
    CHECK(h_room > 0 && h_arena > 0);
    CHECK(handed > 0 && taken + h_mail > 0);
    CHECK(room_frees > 0);
    CHECK(mt.checks > 0 && mt.trims > 0 && w_trims > 0);
    CHECK(s.shrinker_runs > 0);              /* reclaim ran ... */
    CHECK(s.kswapd_runs > 0);                /* ... in the background too */
    CHECK(s.trimmed_pages > 0);
    CHECK(injected > 0);
    CHECK(fail_w[LAB_R_INJECTED] + fail_h[LAB_R_INJECTED] > 0);
    CHECK(fail_w[LAB_R_INJECTED] + fail_h[LAB_R_INJECTED] <= injected);
    for (unsigned c = 0; c < NCLASSES; c++)
        CHECK(by_class[c] > 0);              /* every class got pages at some point */
    for (unsigned o = 0; o <= MAX_ORDER; o++)
        CHECK(by_order[o] > 0);              /* and every order */
    for (int r = 1; r < LAB_R_COUNT; r++)    /* every failure we saw, and only those, counted */
        CHECK_EQ(fail_w[r] + fail_h[r], s.fail_by_reason[r]);
    for (int st = 1; st < LAB_STEP_COUNT; st++)
        CHECK_EQ(steps[st], s.alloc_by_step[st]);
    CHECK_EQ(ld(&g_log_reports), 0);         /* NOWARN everywhere */
    CHECK_EQ(s.allocated_pages, 0);          /* every page free, in a room or reserve, or on its way */
    CHECK_EQ(lab_check(g_arena), 0);

    /* ---- free everything, destroy the rooms: every page accounted for ---- */
    for (unsigned i = 0; i < g_nthreads; i++) {
        lab_room_destroy(g_workers[i].room);
        lab_room_destroy(g_workers[i].irq_room);
    }
    lab_stats_get(g_arena, &s);
    CHECK_EQ(s.nr_rooms, 0);
    CHECK_EQ(s.room_pages, 0);
    CHECK_EQ(s.deferred_pages, 0);
    CHECK_EQ(s.reserve_pages, s.highatomic_pages);
    CHECK_EQ(s.free_pages + s.void_pages + s.highatomic_pages, s.total_pages);
    release_highatomic(g_arena);
    lab_stats_get(g_arena, &s);
    fprintf(stderr, "  at the end: %zu pages free + %zu in the void of %zu; misuse %" PRIu64 "\n", s.free_pages,
            s.void_pages, s.total_pages, ld(&g_misuse));
    CHECK_EQ(s.free_pages + s.void_pages, s.total_pages);
    CHECK_EQ(s.deferred_pages, 0);
    CHECK_EQ(lab_check(g_arena), 0);
    CHECK_EQ(ld(&g_misuse), 0);
    CHECK_EQ(s.misuse, 0);
    if (ld(&g_misuse))
        fprintf(stderr, "  first misuse report: %s\n", g_misuse_msg);

    lab_arena_destroy(g_arena);
    g_arena = NULL;
    pthread_barrier_destroy(&g_start);
    pthread_barrier_destroy(&g_stopped);
    pthread_mutex_destroy(&g_cache.mu);
    free(g_workers);
    g_workers = NULL;
}

int main(void)
{
    RUN(test_stress_everything_at_once);
    return test_finish();
}
