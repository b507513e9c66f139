/*
 * Several threads allocate and free blocks of mixed orders on one arena at
 * once, with blocking (LAB_GFP_KERNEL) and atomic (LAB_GFP_ATOMIC) requests.
 * Every block is stamped and verified before it is freed, so a block handed
 * to two threads at once shows.  A quarter of the blocks are handed to the
 * next thread through a mutex-protected queue and freed there (frees from a
 * thread that did not allocate, which may find the zone lock busy and take
 * the deferred path).  Another thread runs lab_check while all this goes on.
 * At the end every page is back and lab_check is clean.
 *
 * Bounded by operation counts and a watchdog.  Pages held at once stay well
 * below what the KERNEL floor allows, so an order-0 KERNEL request may never
 * fail; higher orders may fail by fragmentation (counted, reported).
 */
#include "check.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#ifdef LAB_TEST_SLOW
#define SLOW_BUILD 1
#else
#define SLOW_BUILD 0
#endif

#define NWORKERS     3
#define ARENA_PAGES  8192
#define MAX_ORDER    7            /* of the requests; the arena has 10 */
#define LOCAL_PAGES  1024         /* most pages one worker holds */
#define QUEUE_PAGES  256          /* most pages waiting in one hand-off queue */
#define QUEUE_SLOTS  256
#define MIN_CHECKS   8            /* concurrent lab_check calls, at least */

struct block { void *p; unsigned order; uint64_t tag; };

/* A worker's inbox: blocks another thread allocated, for this one to free. */
struct queue {
    pthread_mutex_t lock;
    struct block slot[QUEUE_SLOTS];
    size_t head, n, pages;
};

struct worker {
    pthread_t th;
    unsigned id;
    uint64_t rng;
    uint64_t ops, allocs, pages, kernel_fails_by_order[MAX_ORDER + 1], atomic_fails, remote_frees;
    uint64_t bad_stamps, kernel_order0_fails;
};

static lab_arena *arena;
static struct queue queues[NWORKERS];
static struct worker workers[NWORKERS];
static _Atomic int checker_done;
static pthread_barrier_t start_line;
static _Atomic uint64_t log_reports;
static _Atomic int gave_up;          /* a worker saw something wrong: all stop soon */
static uint64_t ops_per_worker;

static uint64_t rnd(struct worker *w)
{
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return w->rng * 0x2545f4914f6cdd1dull;
}

static void quiet_log(void *ctx, const char *msg, size_t len)
{
    (void)ctx; (void)msg; (void)len;
    atomic_fetch_add(&log_reports, 1);
}

static int queue_push(struct queue *q, struct block b)
{
    int ok = 0;
    pthread_mutex_lock(&q->lock);
    if (q->n < QUEUE_SLOTS && q->pages + ((size_t)1 << b.order) <= QUEUE_PAGES) {
        q->slot[(q->head + q->n) % QUEUE_SLOTS] = b;
        q->n++;
        q->pages += (size_t)1 << b.order;
        ok = 1;
    }
    pthread_mutex_unlock(&q->lock);
    return ok;
}

static int queue_pop(struct queue *q, struct block *b)
{
    int ok = 0;
    pthread_mutex_lock(&q->lock);
    if (q->n) {
        *b = q->slot[q->head];
        q->head = (q->head + 1) % QUEUE_SLOTS;
        q->n--;
        q->pages -= (size_t)1 << b->order;
        ok = 1;
    }
    pthread_mutex_unlock(&q->lock);
    return ok;
}

static void verify_and_free(struct worker *w, struct block b)
{
    if (!stamp_ok(b.p, b.order, b.tag)) {
        w->bad_stamps++;
        atomic_store(&gave_up, 1);
        fprintf(stderr, "thread %u: order-%u block %p (tag %#" PRIx64 ") overwritten\n", w->id, b.order, b.p, b.tag);
    }
    lab_free_pages(arena, b.p, b.order);
}

static unsigned pick_order(struct worker *w)
{
    unsigned o = 0;
    while (o < MAX_ORDER && (rnd(w) & 1))
        o++;
    return o;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct block local[LOCAL_PAGES];
    size_t nlocal = 0, local_pages = 0;
    uint64_t serial = 0;
    struct queue *inbox = &queues[w->id], *next = &queues[(w->id + 1) % NWORKERS];

    pthread_barrier_wait(&start_line);
    /* Run the op count, and on (bounded) until the checker has run its checks
     * while we were busy. */
    for (uint64_t i = 0; i < ops_per_worker || (!atomic_load(&checker_done) && i < 20 * ops_per_worker); i++) {
        if ((i & 1023) == 0 && atomic_load_explicit(&gave_up, memory_order_relaxed))
            break;
        w->ops++;
        unsigned r = (unsigned)(rnd(w) % 100);
        struct block b;
        if (r < 15 && queue_pop(inbox, &b)) {
            verify_and_free(w, b);                    /* allocated by another thread */
            w->remote_frees++;
            continue;
        }
        if (r < 55 && local_pages < LOCAL_PAGES && nlocal < LOCAL_PAGES) {
            unsigned order = pick_order(w);
            int kernel = (rnd(w) & 1) != 0;
            lab_gfp_t gfp = kernel ? LAB_GFP_KERNEL : (LAB_GFP_ATOMIC | LAB_GFP_NOWARN);
            void *p = lab_alloc_pages(arena, gfp, order);
            if (!p) {
                if (kernel) {
                    w->kernel_fails_by_order[order]++;
                    if (order == 0) {
                        w->kernel_order0_fails++;   /* pages lost? stop rather than crawl */
                        atomic_store(&gave_up, 1);
                    }
                } else {
                    w->atomic_fails++;
                }
                continue;
            }
            w->allocs++;
            w->pages += (uint64_t)1 << order;   /* what the stats count */
            b = (struct block){ p, order, ((uint64_t)w->id << 56) ^ ++serial ^ ((uint64_t)order << 48) };
            stamp_block(p, order, b.tag);
            if ((rnd(w) & 3) == 0 && queue_push(next, b))
                continue;                             /* another thread frees it */
            local[nlocal++] = b;
            local_pages += (size_t)1 << order;
            continue;
        }
        if (nlocal) {
            size_t j = rnd(w) % nlocal;
            b = local[j];
            local[j] = local[--nlocal];
            local_pages -= (size_t)1 << b.order;
            verify_and_free(w, b);
        }
    }
    while (nlocal)
        verify_and_free(w, local[--nlocal]);
    return NULL;
}

struct checker { unsigned checks, bad_checks, bad_stats; };

static void *checker_main(void *arg)
{
    struct checker *c = arg;
    pthread_barrier_wait(&start_line);
    struct timespec ts = { 0, 2 * 1000 * 1000 };
    for (unsigned i = 0; i < MIN_CHECKS; i++) {
        nanosleep(&ts, NULL);
        int err = lab_check(arena);
        c->checks++;
        if (err) {
            c->bad_checks++;
            fprintf(stderr, "concurrent lab_check: %s\n", lab_strerror(err));
        }
        lab_stats s;
        lab_stats_get(arena, &s);
        if (s.total_pages != ARENA_PAGES || s.free_pages > ARENA_PAGES || s.allocated_pages > ARENA_PAGES ||
            s.free_pages + s.allocated_pages + s.reserve_pages + s.deferred_pages > ARENA_PAGES)
            c->bad_stats++;
    }
    atomic_store(&checker_done, 1);
    return NULL;
}

static size_t free_pages(void) { lab_stats s; lab_stats_get(arena, &s); return s.free_pages; }

/* Takes max-order blocks with a blocking request that does not wait until
 * one fails: that failure has been through direct reclaim, which gives the
 * high-order atomic reserve back to the free lists.  Then frees them. */
static void give_back_highatomic_reserve(void)
{
    unsigned mo = lab_arena_max_order(arena);
    void *held[64];
    size_t n = 0;
    while (n < 64 && (held[n] = lab_alloc_pages(arena, LAB_GFP_KERNEL | LAB_GFP_NORETRY | LAB_GFP_NOWARN, mo)))
        n++;
    while (n)
        lab_free_pages(arena, held[--n], mo);
}

static void test_threads_alloc_and_free_concurrently_without_loss(void)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = (size_t)ARENA_PAGES * LAB_PAGE_SIZE;
    cfg.wait_timeout_ms = 50;     /* a fragmented KERNEL request fails soon */
    cfg.name = "threads";
    REQUIRE(lab_arena_create(&cfg, &arena) == 0);
    lab_fault_set(arena, NULL);
    lab_set_log_hook(arena, quiet_log, NULL);
    lab_stats s;
    lab_stats_get(arena, &s);
    /* what the workers can hold at once stays far above the KERNEL floor */
    REQUIRE(NWORKERS * (LOCAL_PAGES + QUEUE_PAGES) + ((size_t)1 << MAX_ORDER) + s.wmark_min + ARENA_PAGES / 100
            < ARENA_PAGES);

    uint64_t seed = test_seed();
    pthread_barrier_init(&start_line, NULL, NWORKERS + 2);
    for (unsigned i = 0; i < NWORKERS; i++) {
        pthread_mutex_init(&queues[i].lock, NULL);
        workers[i].id = i;
        workers[i].rng = 0x9e3779b97f4a7c15ull * (i + 1) ^ seed;
        REQUIRE(pthread_create(&workers[i].th, NULL, worker_main, &workers[i]) == 0);
    }
    struct checker chk = { 0, 0, 0 };
    pthread_t cth;
    REQUIRE(pthread_create(&cth, NULL, checker_main, &chk) == 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_barrier_wait(&start_line);
    pthread_join(cth, NULL);
    for (unsigned i = 0; i < NWORKERS; i++)
        pthread_join(workers[i].th, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);

    /* what is still in the queues: freed here, by yet another thread */
    struct worker mainw = { .id = NWORKERS };
    struct block b;
    for (unsigned i = 0; i < NWORKERS; i++)
        while (queue_pop(&queues[i], &b))
            verify_and_free(&mainw, b);

    uint64_t ops = 0, allocs = 0, pages = 0, remote = 0, kfails = 0, afails = 0, bad = mainw.bad_stamps, k0 = 0;
    for (unsigned i = 0; i < NWORKERS; i++) {
        struct worker *w = &workers[i];
        ops += w->ops;
        allocs += w->allocs;
        pages += w->pages;
        remote += w->remote_frees;
        afails += w->atomic_fails;
        bad += w->bad_stamps;
        k0 += w->kernel_order0_fails;
        for (unsigned o = 0; o <= MAX_ORDER; o++)
            kfails += w->kernel_fails_by_order[o];
    }
    fprintf(stderr, "%u threads: %" PRIu64 " operations, %" PRIu64 " allocations, %" PRIu64 " freed by another "
            "thread, failures: KERNEL %" PRIu64 " (order 0: %" PRIu64 "), ATOMIC %" PRIu64 "; %u concurrent "
            "lab_check; %" PRIu64 " failure reports; %.2f s\n", NWORKERS, ops, allocs, remote, kfails, k0, afails,
            chk.checks, atomic_load(&log_reports),
            (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);

    CHECK_EQ(bad, 0);                 /* no block was handed out twice */
    CHECK_EQ(k0, 0);                  /* order 0 cannot fragment, and the floor is far */
    CHECK(chk.checks >= MIN_CHECKS);
    CHECK_EQ(chk.bad_checks, 0);
    CHECK_EQ(chk.bad_stats, 0);
    CHECK(remote > 0);
    CHECK(!atomic_load(&gave_up));

    /* All pages back: none handed out, none in flight; the only pages not
     * free are the high-order atomic reserve's, counted there. */
    CHECK_EQ(lab_check(arena), 0);
    lab_stats_get(arena, &s);
    CHECK_EQ(s.allocated_pages, 0);
    CHECK_EQ(s.deferred_pages, 0);
    CHECK_EQ(s.free_pages + s.highatomic_pages, s.total_pages);
    CHECK_EQ(s.frees, pages);
    fprintf(stderr, "after the run: %zu pages free, %zu in the high-order atomic reserve\n", s.free_pages,
            s.highatomic_pages);
    give_back_highatomic_reserve();
    lab_stats_get(arena, &s);
    CHECK_EQ(s.highatomic_pages, 0);
    CHECK_EQ(s.free_pages, s.total_pages);
    CHECK_EQ(s.free_blocks[lab_arena_max_order(arena)], ARENA_PAGES >> lab_arena_max_order(arena));
    CHECK_EQ(lab_check(arena), 0);
    CHECK_EQ(free_pages(), ARENA_PAGES);
    lab_arena_destroy(arena);
    arena = NULL;
    for (unsigned i = 0; i < NWORKERS; i++)
        pthread_mutex_destroy(&queues[i].lock);
    pthread_barrier_destroy(&start_line);
}

/* Two threads free the same zone block at once, round after round: one
 * free wins the compare-and-swap of the block's state, the other is
 * reported as a double free, and the block reaches the free lists once. */
struct racer {
    lab_arena *a;
    void *_Atomic block;
    unsigned order;
    pthread_barrier_t *go;
};
static _Atomic unsigned race_reports[LAB_ERROR_COUNT];
static void race_misuse(void *ctx, int err, const void *addr, const char *msg)
{
    (void)ctx;
    (void)addr;
    (void)msg;
    if (err >= 0 && err < LAB_ERROR_COUNT)
        atomic_fetch_add(&race_reports[err], 1);
}
static void *racer_main(void *arg)
{
    struct racer *x = arg;
    for (;;) {
        pthread_barrier_wait(x->go);
        void *b = atomic_load(&x->block);
        if (!b)
            return NULL;
        lab_free_pages(x->a, b, x->order);
        pthread_barrier_wait(x->go);
    }
}
static void test_two_threads_freeing_one_block_at_once_free_it_once(void)
{
    enum { ROUNDS = 2000 };
    lab_arena *a = test_arena(256, 4, 8, 12, 16);
    lab_set_misuse_handler(a, race_misuse, NULL);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 3);
    struct racer x = { .a = a, .block = NULL, .order = 0, .go = &go };
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        REQUIRE(pthread_create(&t[i], NULL, racer_main, &x) == 0);
    for (unsigned order = 0; order <= 2; order += 2) {
        memset(race_reports, 0, sizeof(race_reports));
        x.order = order;
        for (int k = 0; k < ROUNDS; k++) {
            void *b = lab_alloc_pages(a, LAB_GFP_KERNEL, order);
            REQUIRE(b != NULL);
            atomic_store(&x.block, b);
            pthread_barrier_wait(&go);   /* both free it */
            pthread_barrier_wait(&go);   /* both done */
        }
        CHECK_EQ(atomic_load(&race_reports[LAB_EDOUBLEFREE]), ROUNDS);
        unsigned total = 0;
        for (int e = 0; e < LAB_ERROR_COUNT; e++)
            total += atomic_load(&race_reports[e]);
        CHECK_EQ(total, ROUNDS);
        lab_arena_flush(a);
        lab_stats s;
        lab_stats_get(a, &s);
        CHECK_EQ(s.free_pages, s.total_pages);
        CHECK_EQ(lab_check(a), 0);
    }
    atomic_store(&x.block, NULL);
    pthread_barrier_wait(&go);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&go);
    lab_arena_destroy(a);
}

int main(void)
{
    test_watchdog(120);
#ifdef LAB_DEBUG
    ops_per_worker = 100000;     /* every block is poisoned and checked page by page */
#else
    ops_per_worker = SLOW_BUILD ? 300000 : 2000000;
#endif
    RUN(test_threads_alloc_and_free_concurrently_without_loss);
    RUN(test_two_threads_freeing_one_block_at_once_free_it_once);
    return test_finish();
}
