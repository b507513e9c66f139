/*
 * Signal storm: process-directed signals at threads that allocate, bounded
 * in time.
 *
 * kill(getpid(), sig) lets the kernel pick any thread that does not block
 * the signal, so a handler runs on whichever worker happens to be
 * interruptible -- in the middle of its own room operation, while it holds
 * the zone lock, or while it sleeps.  The pattern the header recommends for
 * this: one room per thread for its handlers, found through a thread-local
 * pointer, so no two contexts ever share a room.  Two signals, each
 * masking the other, share that handler room without nesting.
 *
 * Workers allocate from their own room and from the arena, stamp every
 * page, keep a window of pages, and give some to a neighbour to free
 * (remote frees and lab_free_pages_bulk).  Handlers allocate ATOMIC from
 * their room and the arena, check the stamp, and free again.  The main
 * thread blocks both signals and sends them for a fixed time.
 *
 * After the run: every stamp held (no page handed out twice), every page
 * back (free + void == total), lab_check == 0, no misuse; the handlers ran
 * on more than one thread; and no handler request failed for a reason an
 * ATOMIC request may not give.
 *
 * The SCHED_FIFO variant runs the same with the workers at real-time
 * priority 1 and the sender at 2 (workers sleep 100 us after each
 * millisecond of work, so ordinary threads -- the background reclaimer --
 * still run).
 * Without the privilege it is SKIPPED, with the reason.
 */
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#define ARENA_PAGES 4096
#define NWORKERS    3
#define WINDOW      48
#define HANDOFF     16
#ifdef LAB_TEST_SLOW
#define RUN_MS      600
#else
#define RUN_MS      1500
#endif

static lab_arena *g_arena;
static _Atomic bool g_stop;
static _Atomic unsigned g_ready;

struct handoff {                 /* pages a worker leaves for its neighbour to free */
    pthread_mutex_t lock;
    void *pages[HANDOFF];
    unsigned n;
};

struct worker {
    unsigned id;
    pthread_t th;
    bool fifo;                   /* ask for SCHED_FIFO */
    int fifo_err;                /* pthread_setschedparam's answer */
    uint64_t rng, ops;
    lab_room *room;
    struct handoff out;
    /* the handler's, on this thread only */
    lab_room *hroom;
    _Atomic uint64_t handled, h_allocs, h_bad_reason, h_bad_stamp;
};
static struct worker g_w[NWORKERS];
static __thread struct worker *t_self;
static _Atomic uint64_t g_bad_stamps;

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static bool atomic_reason_ok(int reason)
{
    return reason == LAB_R_WATERMARK || reason == LAB_R_RESERVE_EMPTY || reason == LAB_R_WOULD_BLOCK ||
           reason == LAB_R_FRAGMENTED;
}

/* Async-signal-safe: library calls that claim it, stamps, atomics. */
static void on_signal(int sig)
{
    (void)sig;
    struct worker *w = t_self;
    if (!w || !w->hroom)
        return;
    atomic_fetch_add_explicit(&w->handled, 1, memory_order_relaxed);
    uint64_t tag = 0xa5a5000000000000ull | ((uint64_t)w->id << 32) | atomic_load(&w->handled);
    lab_result res;
    lab_room_alloc_result(w->hroom, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, &res);
    if (res.addr) {
        stamp_block(res.addr, 0, tag);
        atomic_fetch_add_explicit(&w->h_allocs, 1, memory_order_relaxed);
    } else if (!atomic_reason_ok(res.reason)) {
        atomic_fetch_add_explicit(&w->h_bad_reason, 1, memory_order_relaxed);
    }
    lab_result res2;
    lab_alloc_pages_result(g_arena, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, 1, &res2);
    if (res2.addr) {
        stamp_block(res2.addr, 1, tag);
        if (!stamp_ok(res2.addr, 1, tag))
            atomic_fetch_add_explicit(&w->h_bad_stamp, 1, memory_order_relaxed);
        lab_free_pages(g_arena, res2.addr, 1);
    } else if (!atomic_reason_ok(res2.reason)) {
        atomic_fetch_add_explicit(&w->h_bad_reason, 1, memory_order_relaxed);
    }
    if (res.addr) {
        if (!stamp_ok(res.addr, 0, tag))
            atomic_fetch_add_explicit(&w->h_bad_stamp, 1, memory_order_relaxed);
        lab_room_free(w->hroom, res.addr);
    }
}

struct held { void *p; unsigned order; bool room; uint64_t tag; };

static void drop(struct worker *w, struct held *h)
{
    if (!stamp_ok(h->p, h->order, h->tag))
        atomic_fetch_add(&g_bad_stamps, 1);
    if (h->room)
        lab_room_free(w->room, h->p);
    else
        lab_free_pages(g_arena, h->p, h->order);
    h->p = NULL;
}

/* Free what the neighbour left us: remote frees of its room pages. */
static void free_neighbours(struct worker *w)
{
    struct handoff *ho = &g_w[(w->id + NWORKERS - 1) % NWORKERS].out;
    void *pages[HANDOFF];
    pthread_mutex_lock(&ho->lock);
    unsigned n = ho->n;
    memcpy(pages, ho->pages, n * sizeof(void *));
    ho->n = 0;
    pthread_mutex_unlock(&ho->lock);
    if (n > 4)
        lab_free_pages_bulk(g_arena, pages, n, 0);
    else
        for (unsigned i = 0; i < n; i++)
            lab_free_pages(g_arena, pages[i], 0);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (w->fifo) {
        struct sched_param sp = { .sched_priority = 1 };
        w->fifo_err = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
    }
    w->room = test_room(g_arena, 0, 8, 32);
    w->hroom = test_room(g_arena, 4, 4, 16);
    t_self = w;
    atomic_fetch_add(&g_ready, 1);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);

    struct held win[WINDOW] = { { 0 } };
    unsigned pos = 0;
    double last_sleep = now_ms();
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        uint64_t r = next_rand(&w->rng);
        struct held *h = &win[pos++ % WINDOW];
        if (h->p)
            drop(w, h);
        h->tag = ((uint64_t)w->id << 48) | w->ops;
        if (r % 4 == 0) {
            h->order = (unsigned)(r >> 8) % 3;
            h->room = false;
            h->p = lab_alloc_pages(g_arena, LAB_GFP_KERNEL | LAB_GFP_NORETRY | LAB_GFP_NOWARN, h->order);
        } else {
            h->order = 0;
            h->room = true;
            h->p = lab_room_alloc(w->room, LAB_GFP_NOWAIT | LAB_GFP_NOWARN);
        }
        if (h->p)
            stamp_block(h->p, h->order, h->tag);
        if (h->p && h->room && r % 7 == 0) {   /* to the neighbour, freed remotely */
            pthread_mutex_lock(&w->out.lock);
            if (w->out.n < HANDOFF && stamp_ok(h->p, 0, h->tag)) {
                w->out.pages[w->out.n++] = h->p;
                h->p = NULL;
            }
            pthread_mutex_unlock(&w->out.lock);
        }
        if (++w->ops % 64 == 0 && now_ms() - last_sleep >= 1.0) {
            free_neighbours(w);
            struct timespec ts = { 0, 100000 };
            nanosleep(&ts, NULL);
            last_sleep = now_ms();
        }
    }
    for (unsigned i = 0; i < WINDOW; i++)
        if (win[i].p)
            drop(w, &win[i]);
    pthread_sigmask(SIG_BLOCK, &set, NULL);   /* no handler past this point */
    return NULL;
}

/* Returns false when SCHED_FIFO was asked for and refused. */
static bool storm(bool fifo, uint64_t seed)
{
    g_arena = test_arena(ARENA_PAGES, 6, 0, 0, 0);
    atomic_store(&g_stop, false);
    atomic_store(&g_ready, 0);
    atomic_store(&g_bad_stamps, 0);
    memset(g_w, 0, sizeof(g_w));

    struct sigaction sa, old1, old2;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR1);   /* the two handlers never nest on one thread */
    sigaddset(&sa.sa_mask, SIGUSR2);
    REQUIRE(sigaction(SIGUSR1, &sa, &old1) == 0);
    REQUIRE(sigaction(SIGUSR2, &sa, &old2) == 0);
    sigset_t set, oldset;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, &oldset);   /* the main thread only sends */

    /* every hand-off lock before any worker: each locks its neighbour's */
    for (unsigned i = 0; i < NWORKERS; i++) {
        g_w[i].id = i;
        g_w[i].fifo = fifo;
        g_w[i].rng = (seed + 1) * 0x9e3779b97f4a7c15ull * (i + 1) | 1;
        pthread_mutex_init(&g_w[i].out.lock, NULL);
    }
    for (unsigned i = 0; i < NWORKERS; i++)
        REQUIRE(pthread_create(&g_w[i].th, NULL, worker_main, &g_w[i]) == 0);
    while (atomic_load(&g_ready) < NWORKERS)
        sched_yield();
    bool refused = false;
    for (unsigned i = 0; i < NWORKERS; i++)
        refused |= fifo && g_w[i].fifo_err != 0;

    /* The sender runs above the real-time workers, so they cannot starve it. */
    int policy = 0;
    struct sched_param old_sp, sp = { .sched_priority = 2 };
    pthread_getschedparam(pthread_self(), &policy, &old_sp);
    if (fifo && !refused)
        refused = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) != 0;
    uint64_t sent = 0;
    double t0 = now_ms();
    while (!refused && now_ms() - t0 < RUN_MS) {
        kill(getpid(), (sent & 1) ? SIGUSR2 : SIGUSR1);
        sent++;
        struct timespec ts = { 0, 50000 };
        nanosleep(&ts, NULL);
    }
    atomic_store(&g_stop, true);
    if (fifo)
        pthread_setschedparam(pthread_self(), policy, &old_sp);
    for (unsigned i = 0; i < NWORKERS; i++)
        pthread_join(g_w[i].th, NULL);
    /* pending signals are discarded with the handlers' rooms still alive */
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    pthread_sigmask(SIG_SETMASK, &oldset, NULL);
    sigaction(SIGUSR1, &old1, NULL);
    sigaction(SIGUSR2, &old2, NULL);

    if (refused) {
        fprintf(stderr, "  SCHED_FIFO refused: %s\n", strerror(g_w[0].fifo_err));
    } else {
        uint64_t handled = 0, h_allocs = 0, ops = 0;
        unsigned threads_hit = 0;
        for (unsigned i = 0; i < NWORKERS; i++) {
            struct worker *w = &g_w[i];
            free_neighbours(&g_w[(i + 1) % NWORKERS]);   /* what worker i left */
            handled += atomic_load(&w->handled);
            h_allocs += atomic_load(&w->h_allocs);
            ops += w->ops;
            threads_hit += atomic_load(&w->handled) > 0;
            CHECK_EQ(atomic_load(&w->h_bad_reason), 0);
            CHECK_EQ(atomic_load(&w->h_bad_stamp), 0);
        }
        fprintf(stderr, "  %s: %" PRIu64 " signals sent, %" PRIu64 " handled on %u threads (%" PRIu64
                " room pages in handlers), %" PRIu64 " worker operations\n", fifo ? "SCHED_FIFO" : "SCHED_OTHER",
                sent, handled, threads_hit, h_allocs, ops);
        CHECK_EQ(atomic_load(&g_bad_stamps), 0);
        CHECK(handled > 0 && handled <= sent);
        CHECK(threads_hit >= 2);        /* process-directed: more than one thread took them */
        CHECK(h_allocs > 0);
        CHECK_EQ(lab_check(g_arena), 0);
    }
    for (unsigned i = 0; i < NWORKERS; i++) {
        lab_room_destroy(g_w[i].room);
        lab_room_destroy(g_w[i].hroom);
    }
    lab_stats s;
    lab_stats_get(g_arena, &s);
    if (!refused) {
        CHECK_EQ(s.allocated_pages, 0);
        CHECK_EQ(s.deferred_pages, 0);
        CHECK_EQ(s.free_pages + s.void_pages + s.highatomic_pages, s.total_pages);
        CHECK_EQ(s.misuse, 0);
        CHECK_EQ(lab_check(g_arena), 0);
    }
    lab_arena_destroy(g_arena);
    return !refused;
}

static uint64_t g_seed;

static void test_process_directed_signals_at_allocating_threads(void)
{
    REQUIRE(storm(false, g_seed));
}

static void test_process_directed_signals_at_sched_fifo_threads(void)
{
    if (!storm(true, g_seed))
        SKIP("SCHED_FIFO refused (needs CAP_SYS_NICE or RLIMIT_RTPRIO >= 1)");
}

int main(void)
{
    test_watchdog(60);
    g_seed = test_seed();
    RUN(test_process_directed_signals_at_allocating_threads);
    RUN_ALONE(test_process_directed_signals_at_sched_fifo_threads);
    return test_finish();
}
