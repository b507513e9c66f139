/* Rooms: owner stock, batch refill and drain, remote frees, the isolated
 * reserve, quota, destroy, and misuse of a room (dead room, foreign page,
 * double free, a non-owner in debug builds). */
#include "check.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

/* ---- helpers ------------------------------------------------------------ */

static lab_stats arena_stats(lab_arena *a) { lab_stats s; lab_stats_get(a, &s); return s; }
static lab_room_stats room_stats(lab_room *r) { lab_room_stats s; lab_room_stats_get(r, &s); return s; }

static lab_room *make_room(lab_arena *a, size_t reserve, size_t batch, size_t high, size_t quota)
{
    lab_room_config cfg;
    lab_room_config_init(&cfg);
    cfg.flags = LAB_ROOM_TAKE_ALL;   /* the step counts below: every remote free back at once */
    cfg.reserve = reserve;
    if (batch)
        cfg.batch = batch;
    cfg.high = high;
    cfg.quota = quota;
    cfg.name = "test";
    lab_room *r = NULL;
    int err = lab_room_create(a, &cfg, &r);
    if (err)
        fprintf(stderr, "lab_room_create: %s\n", lab_strerror(err));
    REQUIRE(err == 0 && r != NULL);
    return r;
}

/* Every test ends here, with its rooms destroyed and its pages freed: the
 * invariants hold and every page is back in the zone. */
static void end_arena(lab_arena *a)
{
    CHECK_EQ(lab_check(a), 0);
    lab_stats s = arena_stats(a);
    CHECK_EQ(s.free_pages, s.total_pages);
    CHECK_EQ(s.allocated_pages, 0);
    CHECK_EQ(s.room_pages, 0);
    CHECK_EQ(s.reserve_pages, 0);
    CHECK_EQ(s.deferred_pages, 0);
    lab_arena_destroy(a);
}

/* Misuse recorder: counts every report by code (reports may come from any
 * thread). */
struct misuse_log {
    _Atomic unsigned count[LAB_ERROR_COUNT];
    _Atomic unsigned total;
    _Atomic int last;
    const void *_Atomic last_addr;
};

static void record_misuse(void *ctx, int err, const void *addr, const char *msg)
{
    struct misuse_log *log = ctx;
    (void)msg;
    if (err >= 0 && err < LAB_ERROR_COUNT)
        atomic_fetch_add(&log->count[err], 1);
    atomic_fetch_add(&log->total, 1);
    atomic_store(&log->last, err);
    atomic_store(&log->last_addr, addr);
}

/* An arena whose misuse goes to `log`, and a room of it that this thread
 * owns, with one page out (*p). */
static lab_room *owned_room_logged(struct misuse_log *log, lab_arena **a, void **p)
{
    memset(log, 0, sizeof(*log));
    *a = test_arena(1024, 10, 16, 24, 32);
    lab_set_misuse_handler(*a, record_misuse, log);
    lab_room *r = make_room(*a, 0, 8, 32, 0);
    *p = lab_room_alloc(r, LAB_GFP_KERNEL);   /* this thread owns it now */
    REQUIRE(*p);
    return r;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- owner path ----------------------------------------------------------- */

/* A zeroed page from the stock: the page the owner just dirtied and freed
 * is the one handed out again (the stock is a stack), and it comes back
 * all zero, for a page and for a block of a higher order. */
static void test_zeroed_allocation_from_the_stock_is_zero(void)
{
    lab_arena *a = test_arena(1024, 10, 16, 24, 32);
    lab_room_config cfg;
    lab_room_config_init(&cfg);
    cfg.max_order = 2;
    lab_room *r = NULL;
    REQUIRE(lab_room_create(a, &cfg, &r) == 0);
    for (unsigned order = 0; order <= 2; order++) {
        size_t bytes = (size_t)LAB_PAGE_SIZE << order;
        unsigned char *p = lab_room_alloc_pages(r, LAB_GFP_ATOMIC, order);
        REQUIRE(p);
        memset(p, 0xa5, bytes);
        lab_room_free_pages(r, p, order);
        unsigned char *q = order ? lab_room_alloc_pages(r, LAB_GFP_ATOMIC | LAB_GFP_ZERO, order)
                                 : lab_room_alloc(r, LAB_GFP_ATOMIC | LAB_GFP_ZERO);
        CHECK(q == p);
        size_t dirty = 0;
        for (size_t i = 0; q && i < bytes; i++)
            dirty += q[i] != 0;
        CHECK_EQ(dirty, 0);
        lab_room_free_pages(r, q, order);
    }
    lab_room_destroy(r);
    end_arena(a);
}


static void test_owner_alloc_free_round_trip(void)
{
    lab_arena *a = test_arena(1024, 10, 16, 24, 32);
    lab_room *r = make_room(a, 0, 0, 0, 0);
    void *p = lab_room_alloc(r, LAB_GFP_KERNEL);
    REQUIRE(p);
    char *base = lab_arena_base(a);
    CHECK((char *)p >= base && (char *)p < base + lab_arena_size(a));
    CHECK_EQ(((char *)p - base) % LAB_PAGE_SIZE, 0);
    stamp_block(p, 0, 0x100);
    CHECK(stamp_ok(p, 0, 0x100));
    lab_room_free(r, p);
    /* the stock is a stack: the page just freed is the next one handed out */
    lab_result res;
    lab_room_alloc_result(r, LAB_GFP_KERNEL, &res);
    CHECK(res.addr == p);
    CHECK_EQ(res.reason, LAB_R_NONE);
    CHECK_EQ(res.step, LAB_STEP_ROOM);
    lab_room_stats st = room_stats(r);
    CHECK_EQ(st.allocs, 2);
    CHECK_EQ(st.frees_owner, 1);
    CHECK_EQ(st.out, 1);
    lab_room_free(r, res.addr);
    st = room_stats(r);
    CHECK_EQ(st.out, 0);
    CHECK_EQ(st.frees_owner, 2);
    /* the pages the room holds are not free in the zone, and are counted */
    lab_stats s = arena_stats(a);
    CHECK_EQ(s.room_pages, st.stock);
    CHECK_EQ(s.free_pages + st.stock, s.total_pages);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

static void test_refill_moves_one_batch_from_the_zone(void)
{
    const size_t batch = 8;
    lab_arena *a = test_arena(1024, 10, 16, 24, 32);
    lab_room *r = make_room(a, 0, batch, 4 * batch, 0);
    void *p[2 * 8];
    lab_result res;
    lab_room_alloc_result(r, LAB_GFP_NOWAIT, &res);
    REQUIRE(res.addr);
    p[0] = res.addr;
    CHECK_EQ(res.step, LAB_STEP_ZONE);
    lab_room_stats st = room_stats(r);
    CHECK_EQ(st.refills, 1);
    CHECK_EQ(st.stock, batch - 1);
    CHECK_EQ(st.out, 1);
    CHECK_EQ(arena_stats(a).free_pages, 1024 - batch);
    /* the rest of the batch comes from the stock, without the zone */
    for (size_t i = 1; i < batch; i++) {
        lab_room_alloc_result(r, LAB_GFP_NOWAIT, &res);
        REQUIRE(res.addr);
        p[i] = res.addr;
        CHECK_EQ(res.step, LAB_STEP_ROOM);
    }
    st = room_stats(r);
    CHECK_EQ(st.refills, 1);
    CHECK_EQ(st.stock, 0);
    CHECK_EQ(arena_stats(a).free_pages, 1024 - batch);
    /* an empty stock refills again, one batch at a time */
    lab_room_alloc_result(r, LAB_GFP_ATOMIC, &res);
    REQUIRE(res.addr);
    p[batch] = res.addr;
    CHECK_EQ(res.step, LAB_STEP_ZONE);
    st = room_stats(r);
    CHECK_EQ(st.refills, 2);
    CHECK_EQ(st.stock, batch - 1);
    CHECK_EQ(arena_stats(a).free_pages, 1024 - 2 * batch);
    /* no page was handed out twice */
    for (size_t i = 0; i <= batch; i++)
        stamp_block(p[i], 0, i);
    for (size_t i = 0; i <= batch; i++) {
        CHECK(stamp_ok(p[i], 0, i));
        lab_room_free(r, p[i]);
    }
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* A refill takes whole runs off the buddy lists (buddy_take_run), where
 * allocations from the zone take one block at a time: the two must take
 * the same blocks and leave the same free blocks behind.  Two arenas,
 * fragmented alike by one seeded sequence of allocations and frees of
 * mixed orders; then a room's refill of a batch of order-k blocks in one,
 * as many order-k lab_alloc_pages in the other.  Compared: the blocks each
 * handed out (as offsets from the base) and the free blocks per order. */
#ifdef LAB_TEST_SLOW
#define REFILL_SLOW 1
#else
#define REFILL_SLOW 0
#endif
static uint64_t refill_rng;
static unsigned refill_rnd(unsigned n)
{
    refill_rng = refill_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)(refill_rng >> 33) % n;
}

static int cmp_size(const void *x, const void *y)
{
    size_t a = *(const size_t *)x, b = *(const size_t *)y;
    return a < b ? -1 : a > b;
}

static void fragment(lab_arena *a, uint64_t seed, unsigned max_order)
{
    static void *held[4096];
    static unsigned held_order[4096];
    size_t n = 0;
    refill_rng = seed;
    /* debug builds check the whole arena every few operations: fewer */
    for (int i = 0; i < (REFILL_SLOW ? 600 : 3000); i++) {
        if (n < 4096 && (n == 0 || refill_rnd(3) != 0)) {
            unsigned o = refill_rnd(max_order + 1);
            void *p = lab_alloc_pages(a, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, o);
            if (p) {
                held[n] = p;
                held_order[n++] = o;
            }
        } else {
            size_t k = refill_rnd((unsigned)n);
            lab_free_pages(a, held[k], held_order[k]);
            held[k] = held[--n];
            held_order[k] = held_order[n];
        }
    }
}

static void test_a_refill_takes_the_blocks_single_allocations_would(void)
{
    static const struct { size_t pages; unsigned max_order; } shapes[] = { { 4096, 10 }, { 3000, 6 }, { 1000, 1 }, { 777, 3 } };
    unsigned cases = 0;
    for (unsigned sh = 0; sh < sizeof(shapes) / sizeof(shapes[0]); sh++)
        for (uint64_t seed = 1; seed <= (REFILL_SLOW ? 2 : 10); seed++)
            for (unsigned k = 0; k <= 3 && k <= shapes[sh].max_order; k++) {
                const size_t batch = 32;
                lab_arena *a = test_arena(shapes[sh].pages, shapes[sh].max_order, 16, 24, 32);
                lab_arena *b = test_arena(shapes[sh].pages, shapes[sh].max_order, 16, 24, 32);
                fragment(a, seed, shapes[sh].max_order);
                fragment(b, seed, shapes[sh].max_order);
                lab_room_config rc;
                lab_room_config_init(&rc);
                rc.batch = batch;
                rc.max_order = k;
                lab_room *r = NULL;
                REQUIRE(lab_room_create(a, &rc, &r) == 0);
                void *first = lab_room_alloc_pages(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, k);
                if (!first) {   /* this fragmentation left no block of order k */
                    lab_room_destroy(r);
                    lab_arena_destroy(a);
                    lab_arena_destroy(b);
                    continue;
                }
                lab_room_stats st = room_stats(r);
                CHECK_EQ(st.refills, 1);
                size_t n = 1 + (st.stock >> k), got_a = 0, got_b = 0;
                static size_t offs_a[64], offs_b[64];
                static void *pa[64], *pb[64];
                REQUIRE(n <= 64);
                pa[got_a++] = first;
                while (got_a < n) {
                    pa[got_a] = lab_room_alloc_pages(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, k);
                    REQUIRE(pa[got_a] != NULL);
                    got_a++;
                }
                st = room_stats(r);
                CHECK_EQ(st.refills, 1);   /* all of them from that one refill */
                CHECK_EQ(st.stock, 0);
                /* as many as single allocations of the same request get,
                 * up to the room's batch for the order: the refill's count */
                while (got_b < (batch >> k) &&
                       (pb[got_b] = lab_alloc_pages(b, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, k)) != NULL)
                    got_b++;
                CHECK_EQ(got_b, n);
                REQUIRE(got_b == n);
                for (size_t i = 0; i < n; i++) {
                    offs_a[i] = (size_t)((char *)pa[i] - (char *)lab_arena_base(a));
                    offs_b[i] = (size_t)((char *)pb[i] - (char *)lab_arena_base(b));
                }
                qsort(offs_a, n, sizeof(size_t), cmp_size);
                qsort(offs_b, n, sizeof(size_t), cmp_size);
                for (size_t i = 0; i < n; i++)
                    CHECK_EQ(offs_a[i], offs_b[i]);
                lab_stats sa = arena_stats(a), sb = arena_stats(b);
                CHECK_EQ(sa.free_pages, sb.free_pages);
                for (unsigned o = 0; o <= shapes[sh].max_order; o++)
                    CHECK_EQ(sa.free_blocks[o], sb.free_blocks[o]);
                CHECK_EQ(lab_check(a), 0);
                for (size_t i = 0; i < n; i++)
                    lab_room_free_pages(r, pa[i], k);
                lab_room_destroy(r);
                lab_arena_destroy(a);
                lab_arena_destroy(b);
                cases++;
            }
    printf("  %u refills compared with single allocations\n", cases);
    CHECK(cases >= (REFILL_SLOW ? 16u : 90u));
}

static void test_frees_above_high_drain_to_the_zone(void)
{
    const size_t batch = 8, high = 16, n = 64;
    lab_arena *a = test_arena(1024, 10, 16, 24, 32);
    lab_room *r = make_room(a, 0, batch, high, 0);
    void *p[64];
    for (size_t i = 0; i < n; i++) {
        p[i] = lab_room_alloc(r, LAB_GFP_NOWAIT);
        REQUIRE(p[i]);
    }
    CHECK_EQ(room_stats(r).drains, 0);
    CHECK_EQ(room_stats(r).stock, 0);
    size_t max_stock = 0;
    for (size_t i = 0; i < n; i++) {
        lab_room_free(r, p[i]);
        size_t stock = room_stats(r).stock;
        if (stock > max_stock)
            max_stock = stock;
    }
    lab_room_stats st = room_stats(r);
    CHECK(max_stock <= high);
    CHECK(st.stock <= high);
    CHECK(st.drains >= 1);
    CHECK_EQ(st.out, 0);
    /* what was drained is free in the zone again */
    lab_stats s = arena_stats(a);
    CHECK_EQ(s.free_pages + st.stock, s.total_pages);
    CHECK_EQ(s.room_pages, st.stock);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* ---- remote frees ------------------------------------------------------------ */

struct freer_job {
    lab_arena *a;
    void **pages;
    size_t n;
};

static void *free_pages_thread(void *arg)
{
    struct freer_job *j = arg;
    for (size_t i = 0; i < j->n; i++)
        lab_free_pages(j->a, j->pages[i], 0);
    return NULL;
}

static void test_remote_frees_come_back_to_the_room(void)
{
    const size_t batch = 16;
    lab_arena *a = test_arena(1024, 10, 16, 24, 32);
    lab_room *r = make_room(a, 0, batch, 4 * batch, 0);
    void *p[16];
    for (size_t i = 0; i < batch; i++) {
        p[i] = lab_room_alloc(r, LAB_GFP_NOWAIT);
        REQUIRE(p[i]);
        stamp_block(p[i], 0, 0xfeed + i);
    }
    CHECK_EQ(room_stats(r).stock, 0);
    for (size_t i = 0; i < batch; i++)
        CHECK(stamp_ok(p[i], 0, 0xfeed + i));   /* (debug builds poison freed pages) */
    struct freer_job job = { a, p, batch };
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, free_pages_thread, &job) == 0);
    pthread_join(t, NULL);
    /* on their way back to the room, not to the zone */
    lab_stats s = arena_stats(a);
    CHECK_EQ(s.free_pages, 1024 - batch);
    CHECK_EQ(s.deferred_pages, batch);
    CHECK_EQ(s.allocated_pages, 0);
    CHECK_EQ(room_stats(r).in_ring, batch);
    CHECK_EQ(room_stats(r).out, batch);   /* pending remote frees still count as out */
    /* the owner's next allocation takes them all back into its stock at
     * once (step 2), before any new batch from the zone; the rest are step 1 */
    void *back[16];
    lab_result res;
    for (size_t i = 0; i < batch; i++) {
        lab_room_alloc_result(r, LAB_GFP_NOWAIT, &res);
        REQUIRE(res.addr);
        CHECK_EQ(res.step, i == 0 ? LAB_STEP_ROOM_REMOTE : LAB_STEP_ROOM);
        back[i] = res.addr;
        lab_room_stats st = room_stats(r);
        CHECK_EQ(st.frees_remote, batch);
        CHECK_EQ(st.in_ring, 0);
        CHECK_EQ(st.stock, batch - 1 - i);
        CHECK_EQ(st.out, i + 1);
        CHECK_EQ(arena_stats(a).deferred_pages, 0);
    }
    /* the same pages, each once */
    for (size_t i = 0; i < batch; i++) {
        int seen = 0;
        for (size_t j = 0; j < batch; j++)
            seen += back[j] == p[i];
        CHECK_EQ(seen, 1);
    }
    lab_room_stats st = room_stats(r);
    CHECK_EQ(st.refills, 1);   /* no new batch from the zone */
    CHECK_EQ(st.frees_remote, batch);
    CHECK_EQ(arena_stats(a).free_pages, 1024 - batch);
    CHECK_EQ(arena_stats(a).deferred_pages, 0);
    /* with nothing left to take back, the zone again */
    lab_room_alloc_result(r, LAB_GFP_NOWAIT, &res);
    REQUIRE(res.addr);
    CHECK_EQ(res.step, LAB_STEP_ZONE);
    CHECK_EQ(room_stats(r).refills, 2);
    lab_room_free(r, res.addr);
    for (size_t i = 0; i < batch; i++)
        lab_room_free(r, back[i]);
    CHECK_EQ(room_stats(r).out, 0);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* The owner allocates and frees while another thread frees the owner's pages
 * with lab_free_pages: the remote list is pushed to while the owner takes it. */
#define RACE_PAGES 20000u
struct race {
    lab_arena *a;
    _Atomic(void *) slot[64];
    _Atomic int done;
    _Atomic unsigned long freed;
    _Atomic unsigned long bad;
};

static void *remote_freer(void *arg)
{
    struct race *rc = arg;
    for (;;) {
        int done = atomic_load(&rc->done);
        int got = 0;
        for (unsigned i = 0; i < 64; i++) {
            void *p = atomic_exchange(&rc->slot[i], NULL);
            if (!p)
                continue;
            if (!stamp_ok(p, 0, 0x5eed))
                atomic_fetch_add(&rc->bad, 1);
            lab_free_pages(rc->a, p, 0);
            atomic_fetch_add(&rc->freed, 1);
            got = 1;
        }
        if (done && !got)
            break;
    }
    return NULL;
}

static void test_remote_frees_race_with_the_owner(void)
{
    lab_arena *a = test_arena(2048, 10, 16, 24, 32);
    lab_room *r = make_room(a, 4, 8, 32, 0);
    static struct race rc;
    memset(&rc, 0, sizeof(rc));
    rc.a = a;
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, remote_freer, &rc) == 0);
    void *mine[16] = { 0 };
    unsigned long handed = 0, own_frees = 0, allocs = 0;
    for (unsigned i = 0; i < RACE_PAGES; i++) {
        void *p = lab_room_alloc(r, (i & 1) ? LAB_GFP_NOWAIT | LAB_GFP_NOWARN : LAB_GFP_ATOMIC | LAB_GFP_NOWARN);
        if (!p)
            continue;
        allocs++;
        stamp_block(p, 0, 0x5eed);
        if (i % 3 == 0) {   /* keep some, free them ourselves later */
            unsigned k = i % 16;
            if (mine[k]) {
                CHECK(stamp_ok(mine[k], 0, 0x5eed));
                lab_room_free(r, mine[k]);
                own_frees++;
            }
            mine[k] = p;
            continue;
        }
        unsigned k = i % 64;
        void *expect = NULL;
        if (atomic_compare_exchange_strong(&rc.slot[k], &expect, p)) {
            handed++;
        } else {
            lab_room_free(r, p);
            own_frees++;
        }
    }
    atomic_store(&rc.done, 1);
    pthread_join(t, NULL);
    for (unsigned k = 0; k < 16; k++)
        if (mine[k]) {
            lab_room_free(r, mine[k]);
            own_frees++;
        }
    CHECK_EQ(atomic_load(&rc.bad), 0);
    CHECK_EQ(atomic_load(&rc.freed), handed);
    CHECK(handed > 0);
    lab_room_stats st = room_stats(r);
    lab_stats s = arena_stats(a);
    CHECK_EQ(st.allocs, allocs);
    CHECK_EQ(st.frees_owner, own_frees);
    /* every remote free is either taken back already or still pending */
    CHECK_EQ(st.frees_remote + s.deferred_pages, handed);
    CHECK_EQ(s.allocated_pages, 0);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* ---- the reserve ---------------------------------------------------------------- */

static void test_reserve_serves_atomic_after_everyone_else_took_every_page(void)
{
    const size_t R = 8, pages = 512;
    lab_arena *a = test_arena(pages, 10, 16, 24, 32);
    lab_room *r = make_room(a, R, 4, 16, 0);
    lab_room *other = make_room(a, 0, 32, 128, 0);
    CHECK_EQ(room_stats(r).reserve, R);
    CHECK_EQ(arena_stats(a).reserve_pages, R);
    CHECK_EQ(arena_stats(a).free_pages, pages - R);

    /* everybody else takes everything, with the strongest flags */
    void **held = calloc(pages, sizeof(void *));
    void **oheld = calloc(pages, sizeof(void *));
    size_t nheld = 0, noheld = 0;
    void *p;
    while ((p = lab_room_alloc(other, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN)) != NULL)
        oheld[noheld++] = p;
    CHECK(noheld > 0);
    while ((p = lab_alloc_pages(a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, 0)) != NULL)
        held[nheld++] = p;
    while ((p = lab_alloc_pages(a, LAB_GFP_ATOMIC | LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, 0)) != NULL)
        held[nheld++] = p;
    /* reclaim (a blocking request) cannot reach the reserve either */
    CHECK(lab_alloc_pages(a, LAB_GFP_KERNEL | LAB_GFP_HIGH | LAB_GFP_MEMALLOC | LAB_GFP_NORETRY | LAB_GFP_NOWARN, 0) == NULL);
    lab_stats s = arena_stats(a);
    CHECK_EQ(s.free_pages, 0);
    CHECK_EQ(nheld + noheld + R, pages);
    CHECK_EQ(room_stats(r).reserve, R);

    /* NOWAIT may not use the reserve */
    lab_result res;
    lab_room_alloc_result(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, &res);
    CHECK(res.addr == NULL);
    CHECK(res.reason == LAB_R_RESERVE_EMPTY || res.reason == LAB_R_WATERMARK);
    CHECK_EQ(room_stats(r).reserve, R);

    /* ATOMIC gets exactly R, all from the reserve */
    void *mine[8 + 1];
    size_t got = 0;
    for (size_t i = 0; i < R + 1; i++) {
        lab_room_alloc_result(r, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, &res);
        if (!res.addr) {
            CHECK_EQ(res.reason, LAB_R_RESERVE_EMPTY);
            CHECK_EQ(res.step, LAB_STEP_NONE);
            break;
        }
        CHECK_EQ(res.step, LAB_STEP_ROOM_RESERVE);
        stamp_block(res.addr, 0, 0x7e5e);
        mine[got++] = res.addr;
    }
    CHECK_EQ(got, R);
    lab_room_stats st = room_stats(r);
    CHECK_EQ(st.reserve_allocs, R);
    CHECK_EQ(st.reserve, 0);
    CHECK_EQ(st.out, R);

    /* a free refills the reserve before the stock */
    REQUIRE(got > 0);
    CHECK(stamp_ok(mine[got - 1], 0, 0x7e5e));
    lab_room_free(r, mine[--got]);
    st = room_stats(r);
    CHECK_EQ(st.reserve, 1);
    CHECK_EQ(st.stock, 0);
    lab_room_alloc_result(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, &res);
    CHECK(res.addr == NULL);   /* still not for NOWAIT */
    lab_room_alloc_result(r, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, &res);
    CHECK_EQ(res.step, LAB_STEP_ROOM_RESERVE);
    if (res.addr)
        mine[got++] = res.addr;
    CHECK_EQ(lab_check(a), 0);

    for (size_t i = 0; i < nheld; i++)
        lab_free_pages(a, held[i], 0);
    for (size_t i = 0; i < noheld; i++)
        lab_room_free(other, oheld[i]);
    for (size_t i = 0; i < got; i++)
        lab_room_free(r, mine[i]);
    st = room_stats(r);
    CHECK_EQ(st.reserve, R);
    CHECK_EQ(st.out, 0);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(other);
    lab_room_destroy(r);
    free(held);
    free(oheld);
    end_arena(a);
}

/* The same for a bulk allocation: while the reserve is below its target,
 * pages on their way back go through the stock, which tops the reserve up,
 * rather than straight from the lanes to the caller. */
static void test_a_bulk_allocation_tops_up_the_reserve_from_remote_frees(void)
{
    const size_t R = 3, batch = 2, quota = R + 8;
    lab_arena *a = test_arena(1024, 10, 16, 24, 32);
    lab_room *r = make_room(a, R, batch, 16, quota);
    void *p[16];
    size_t n = 0;
    for (size_t i = 0; i < quota; i++)
        REQUIRE((p[n++] = lab_room_alloc(r, LAB_GFP_ATOMIC | LAB_GFP_NOWARN)) != NULL);
    lab_room_stats st = room_stats(r);
    REQUIRE(st.reserve == 0 && st.stock == 0 && st.reserve_allocs == R);
    for (int k = 0; k < 8; k++)   /* one whole line of this thread's lane */
        lab_free_pages(a, p[--n], 0);
    CHECK_EQ(lab_room_alloc_bulk(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, p + n, 4), 4);
    n += 4;
    st = room_stats(r);
    CHECK_EQ(st.frees_remote, 8);
    CHECK_EQ(st.reserve, R);
    CHECK_EQ(st.stock, 8 - R - 4);
    while (n)
        lab_room_free(r, p[--n]);
    lab_room_destroy(r);
    end_arena(a);
}

/* The owner's frees refill the reserve first (its free is off the
 * allocation's way); remote frees come back through the stock, so a room
 * running near empty is served at step 2, never walks on to the reserve
 * while pages come back, and the take-back tops the reserve up from the
 * stock with all but the block the allocation takes. */
static void test_owner_frees_refill_the_reserve_and_remote_frees_the_stock(void)
{
    /* the quota makes refills fail, so ATOMIC requests reach the reserve */
    const size_t R = 3, batch = 2, quota = R + 4;
    lab_arena *a = test_arena(1024, 10, 16, 24, 32);
    lab_room *r = make_room(a, R, batch, 16, quota);
    void *p[8];
    size_t n = 0;
    lab_result res;
    for (size_t i = 0; i < quota; i++) {
        lab_room_alloc_result(r, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, &res);
        REQUIRE(res.addr);
        CHECK_EQ(res.step, i < 4 ? (i % batch == 0 ? LAB_STEP_ZONE : LAB_STEP_ROOM) : LAB_STEP_ROOM_RESERVE);
        p[n++] = res.addr;
    }
    lab_room_stats st = room_stats(r);
    CHECK_EQ(st.reserve, 0);
    CHECK_EQ(st.stock, 0);
    CHECK_EQ(st.reserve_allocs, R);

    /* an owner free goes to the reserve */
    lab_room_free(r, p[--n]);
    st = room_stats(r);
    CHECK_EQ(st.reserve, 1);
    CHECK_EQ(st.stock, 0);

    /* a remote free goes to the stock: even NOWAIT gets it, at step 2 */
    lab_free_pages(a, p[--n], 0);
    lab_room_alloc_result(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, &res);
    REQUIRE(res.addr);
    CHECK_EQ(res.step, LAB_STEP_ROOM_REMOTE);
    p[n++] = res.addr;
    st = room_stats(r);
    CHECK_EQ(st.frees_remote, 1);
    CHECK_EQ(st.reserve, 1);
    CHECK_EQ(st.stock, 0);

    /* four back at once: two top the reserve up, one goes out, one stays */
    for (int k = 0; k < 4; k++)
        lab_free_pages(a, p[--n], 0);
    lab_room_alloc_result(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, &res);
    REQUIRE(res.addr);
    CHECK_EQ(res.step, LAB_STEP_ROOM_REMOTE);
    p[n++] = res.addr;
    st = room_stats(r);
    CHECK_EQ(st.frees_remote, 5);
    CHECK_EQ(st.reserve, R);
    CHECK_EQ(st.stock, 1);
    CHECK_EQ(st.out + st.stock + st.reserve, quota);
    while (n)
        lab_room_free(r, p[--n]);
    st = room_stats(r);
    CHECK_EQ(st.reserve, R);
    CHECK_EQ(st.out, 0);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* Frees that other contexts make refill a room's reserve first, as the
 * owner's own frees do: with the zone empty, atomic requests use the
 * reserve up, another thread gives the pages back, and a NOWAIT request
 * (which may not use the reserve) gets only the one block the take-back
 * leaves it; the reserve serves atomic requests again.  (It was topped up
 * only from a stock above its batch: NOWAIT took all 16 and the reserve
 * stayed empty.) */
struct bulk_freer { lab_arena *a; void **p; size_t n; };
static void *bulk_free_thread(void *arg)
{
    struct bulk_freer *x = arg;
    lab_free_pages_bulk(x->a, x->p, x->n, 0);
    return NULL;
}

static void test_remote_frees_refill_the_reserve_first(void)
{
    enum { RESERVE = 16 };
    lab_arena *a = test_arena(1024, 10, 64, 96, 128);
    lab_room *r = make_room(a, RESERVE, 8, 32, 0);
    static void *held[1024];
    size_t nheld = 0;
    void *q;
    while ((q = lab_alloc_pages(a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, 0)) != NULL)
        held[nheld++] = q;
    void *p[RESERVE], *more[RESERVE];
    for (int i = 0; i < RESERVE; i++)
        REQUIRE((p[i] = lab_room_alloc(r, LAB_GFP_ATOMIC | LAB_GFP_NOWARN)) != NULL);
    CHECK_EQ(room_stats(r).reserve, 0);
    struct bulk_freer x = { a, p, RESERVE };
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, bulk_free_thread, &x) == 0);
    pthread_join(t, NULL);
    size_t nowait = 0;
    while (nowait < RESERVE && (more[nowait] = lab_room_alloc(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN)) != NULL)
        nowait++;
    CHECK_EQ(nowait, 1);
    CHECK_EQ(room_stats(r).reserve, RESERVE - 1);
    for (size_t i = 0; i < nowait; i++)
        lab_room_free(r, more[i]);   /* the owner's free: the reserve first */
    CHECK_EQ(room_stats(r).reserve, RESERVE);
    size_t atomic = 0;
    while (atomic < RESERVE && (p[atomic] = lab_room_alloc(r, LAB_GFP_ATOMIC | LAB_GFP_NOWARN)) != NULL)
        atomic++;
    CHECK_EQ(atomic, RESERVE);
    for (size_t i = 0; i < atomic; i++)
        lab_room_free(r, p[i]);
    CHECK_EQ(lab_check(a), 0);
    while (nheld)
        lab_free_pages(a, held[--nheld], 0);
    lab_room_destroy(r);
    end_arena(a);
}

static void test_reserve_larger_than_the_free_pages_is_refused(void)
{
    lab_arena *a = test_arena(256, 8, 16, 24, 32);
    lab_room_config cfg;
    lab_room_config_init(&cfg);
    lab_room *r = (lab_room *)1;
    cfg.reserve = 257;
    CHECK_EQ(lab_room_create(a, &cfg, &r), LAB_ERESERVE);
    CHECK(r == NULL);
    cfg.reserve = 4;
    cfg.quota = 3;
    CHECK_EQ(lab_room_create(a, &cfg, &r), LAB_EQUOTA);
    cfg.quota = 0;
    cfg.batch = 0;
    CHECK_EQ(lab_room_create(a, &cfg, &r), LAB_EBATCH);
    end_arena(a);
}

/* A reserve of 0 takes no page: a zone below its min watermark (atomic
 * requests took it there) still gives a room without one, and refuses one
 * that would take a page. */
static void test_a_room_without_a_reserve_is_made_below_min(void)
{
    lab_arena *a = test_arena(256, 8, 16, 24, 32);
    void *held[256];
    size_t nheld = 0;
    while (nheld < 256 && (held[nheld] = lab_alloc_pages(a, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, 0)) != NULL)
        nheld++;
    lab_stats st;
    lab_stats_get(a, &st);
    REQUIRE(st.free_pages < 16);
    lab_room_config cfg;
    lab_room_config_init(&cfg);
    lab_room *r = NULL;
    CHECK_EQ(lab_room_create(a, &cfg, &r), 0);
    REQUIRE(r != NULL);
    lab_room *r1 = (lab_room *)1;
    cfg.reserve = 1;
    CHECK_EQ(lab_room_create(a, &cfg, &r1), LAB_ERESERVE);
    CHECK(r1 == NULL);
    while (nheld)
        lab_free_pages(a, held[--nheld], 0);
    void *p = lab_room_alloc(r, LAB_GFP_ATOMIC);
    CHECK(p != NULL);
    lab_room_free(r, p);
    lab_room_destroy(r);
    CHECK_EQ(lab_check(a), 0);
    end_arena(a);
}

/* ---- quota ---------------------------------------------------------------------- */

static void test_quota_caps_held_plus_handed_out(void)
{
    const size_t quota = 10, R = 2;
    lab_arena *a = test_arena(1024, 10, 16, 24, 32);
    lab_room *r = make_room(a, R, 4, 16, quota);
    void *p[16];
    size_t n = 0;
    lab_result res;
    /* NOWAIT: everything but the reserve */
    for (;;) {
        lab_room_alloc_result(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, &res);
        if (!res.addr)
            break;
        REQUIRE(n < 16);
        p[n++] = res.addr;
    }
    CHECK_EQ(res.reason, LAB_R_QUOTA);
    CHECK_EQ(n, quota - R);
    /* ATOMIC: the reserve is already counted, so it is still usable */
    for (;;) {
        lab_room_alloc_result(r, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, &res);
        if (!res.addr)
            break;
        REQUIRE(n < 16);
        p[n++] = res.addr;
    }
    CHECK_EQ(res.reason, LAB_R_QUOTA);
    CHECK_EQ(n, quota);
    lab_room_stats st = room_stats(r);
    CHECK_EQ(st.out + st.stock + st.reserve, quota);
    CHECK_EQ(st.out, quota);
    CHECK(st.fail_by_reason[LAB_R_QUOTA] >= 2);
    /* a blocking request fails at once: waiting cannot raise a quota */
    double t0 = now_s();
    lab_room_alloc_result(r, LAB_GFP_KERNEL | LAB_GFP_NOWARN, &res);
    CHECK(res.addr == NULL);
    CHECK_EQ(res.reason, LAB_R_QUOTA);
    CHECK(now_s() - t0 < 0.5);
    /* the zone still has plenty */
    CHECK(arena_stats(a).free_pages > 512);
    /* a free makes room for one more: it refills the reserve first, so
     * NOWAIT still finds nothing, ATOMIC finds it */
    lab_room_free(r, p[--n]);
    CHECK_EQ(room_stats(r).reserve, 1);
    lab_room_alloc_result(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, &res);
    CHECK(res.addr == NULL);
    CHECK_EQ(res.reason, LAB_R_QUOTA);
    lab_room_alloc_result(r, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, &res);
    CHECK(res.addr != NULL);
    CHECK_EQ(res.step, LAB_STEP_ROOM_RESERVE);
    if (res.addr)
        p[n++] = res.addr;
    /* with the reserve full, freed pages are the stock's, for anyone */
    for (size_t i = 0; i < R + 1; i++)
        lab_room_free(r, p[--n]);
    CHECK_EQ(room_stats(r).reserve, R);
    CHECK_EQ(room_stats(r).stock, 1);
    lab_room_alloc_result(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, &res);
    CHECK(res.addr != NULL);
    CHECK_EQ(res.step, LAB_STEP_ROOM);
    if (res.addr)
        p[n++] = res.addr;
    lab_room_alloc_result(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, &res);
    CHECK(res.addr == NULL);
    CHECK_EQ(res.reason, LAB_R_QUOTA);
    for (size_t i = 0; i < R; i++) {
        lab_room_alloc_result(r, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, &res);
        CHECK(res.addr != NULL);
        if (res.addr)
            p[n++] = res.addr;
    }
    CHECK_EQ(n, quota);
    lab_room_alloc_result(r, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, &res);
    CHECK(res.addr == NULL);
    CHECK_EQ(res.reason, LAB_R_QUOTA);
    st = room_stats(r);
    CHECK(st.out + st.stock + st.reserve <= quota);
    for (size_t i = 0; i < n; i++)
        lab_room_free(r, p[i]);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* ---- destroy ---------------------------------------------------------------------- */

static void test_destroy_returns_everything_the_room_holds(void)
{
    const size_t total = 1024;
    lab_arena *a = test_arena(total, 10, 16, 24, 32);
    lab_room *r = make_room(a, 4, 8, 32, 0);
    void *p[6];
    for (int i = 0; i < 6; i++) {
        p[i] = lab_room_alloc(r, LAB_GFP_NOWAIT);
        REQUIRE(p[i]);
    }
    lab_room_free(r, p[0]);           /* to the stock */
    lab_free_pages(a, p[1], 0);        /* pending on the remote list */
    lab_room_stats st = room_stats(r);
    CHECK_EQ(st.reserve, 4);
    CHECK(st.stock > 0);
    lab_stats s = arena_stats(a);
    CHECK_EQ(s.nr_rooms, 1);
    CHECK_EQ(s.deferred_pages, 1);
    lab_room_destroy(r);
    /* the stock, the reserve and the remote list are back; 4 pages are out */
    s = arena_stats(a);
    CHECK_EQ(s.free_pages, total - 4);
    CHECK_EQ(s.allocated_pages, 4);
    CHECK_EQ(s.nr_rooms, 0);
    CHECK_EQ(s.room_pages, 0);
    CHECK_EQ(s.reserve_pages, 0);
    CHECK_EQ(s.deferred_pages, 0);
    CHECK_EQ(lab_check(a), 0);
    /* pages still handed out go to the zone when freed later */
    for (int i = 2; i < 6; i++) {
        lab_free_pages(a, p[i], 0);
        CHECK_EQ(arena_stats(a).free_pages, total - 4 + (size_t)(i - 1));
    }
    CHECK_EQ(lab_check(a), 0);
    end_arena(a);
}

static void test_destroyed_room_reports_room_dead(void)
{
    static struct misuse_log log;
    memset(&log, 0, sizeof(log));
    lab_arena *a = test_arena(1024, 10, 16, 24, 32);
    lab_set_misuse_handler(a, record_misuse, &log);
    lab_room *r = make_room(a, 2, 8, 32, 0);
    void *p = lab_room_alloc(r, LAB_GFP_KERNEL);
    REQUIRE(p);
    lab_room_destroy(r);
    lab_room_destroy(r);   /* twice is harmless */
    CHECK_EQ(atomic_load(&log.total), 0);

    CHECK(lab_room_alloc(r, LAB_GFP_KERNEL) == NULL);
    CHECK_EQ(atomic_load(&log.count[LAB_EROOMDEAD]), 1);
    lab_result res;
    lab_room_alloc_result(r, LAB_GFP_ATOMIC, &res);
    CHECK(res.addr == NULL);
    CHECK_EQ(res.reason, LAB_R_BADARG);
    CHECK_EQ(atomic_load(&log.count[LAB_EROOMDEAD]), 2);
    /* counted as misuse, not as failed requests (labyrinth.h, LAB_R_BADARG) */
    CHECK_EQ(arena_stats(a).misuse, 2);
    CHECK_EQ(arena_stats(a).fail_by_reason[LAB_R_BADARG], 0);

    /* Reported, and the page is not lost: it goes to the zone, as a late
     * lab_free_pages of it would; freeing it again is a double free. */
    lab_room_free(r, p);
    CHECK_EQ(atomic_load(&log.count[LAB_EROOMDEAD]), 3);
    CHECK_EQ(atomic_load(&log.total), 3);
    CHECK_EQ(arena_stats(a).free_pages, 1024);
    CHECK_EQ(lab_check(a), 0);
    lab_free_pages(a, p, 0);
    CHECK_EQ(atomic_load(&log.count[LAB_EDOUBLEFREE]), 1);
    CHECK_EQ(atomic_load(&log.total), 4);
    end_arena(a);
}

/* ---- misuse ---------------------------------------------------------------------- */

static void test_room_free_of_a_page_the_room_did_not_hand_out(void)
{
    static struct misuse_log log;
    memset(&log, 0, sizeof(log));
    lab_arena *a = test_arena(1024, 10, 16, 24, 32);
    lab_set_misuse_handler(a, record_misuse, &log);
    lab_room *r = make_room(a, 0, 8, 32, 0);
    lab_room *other = make_room(a, 0, 8, 32, 0);
    void *z = lab_alloc_pages(a, LAB_GFP_KERNEL, 0);
    void *o = lab_room_alloc(other, LAB_GFP_KERNEL);
    void *mine = lab_room_alloc(r, LAB_GFP_KERNEL);
    REQUIRE(z && o && mine);
    lab_stats before = arena_stats(a);
    lab_room_stats rbefore = room_stats(r);

    lab_room_free(r, z);   /* from lab_alloc_pages */
    CHECK_EQ(atomic_load(&log.count[LAB_ENOTROOMPAGE]), 1);
    CHECK(atomic_load(&log.last_addr) == z);
    lab_room_free(r, o);   /* from another room */
    CHECK_EQ(atomic_load(&log.count[LAB_ENOTROOMPAGE]), 2);
    char *big = lab_alloc_pages(a, LAB_GFP_KERNEL, 2);
    REQUIRE(big);
    lab_room_free(r, big + LAB_PAGE_SIZE);   /* inside an arena block */
    CHECK_EQ(atomic_load(&log.count[LAB_EINTERIOR]), 1);
    lab_room_free(r, (char *)mine + 8);      /* not page aligned */
    CHECK_EQ(atomic_load(&log.count[LAB_EUNALIGNED]), 1);
    lab_free_pages(a, big, 2);
    CHECK_EQ(atomic_load(&log.total), 4);

    lab_stats after = arena_stats(a);
    lab_room_stats rafter = room_stats(r);
    CHECK_EQ(after.free_pages, before.free_pages);
    CHECK_EQ(after.allocated_pages, before.allocated_pages);
    CHECK_EQ(rafter.stock, rbefore.stock);
    CHECK_EQ(rafter.frees_owner, 0);
    CHECK_EQ(lab_check(a), 0);

    lab_free_pages(a, z, 0);
    lab_room_free(other, o);
    lab_room_free(r, mine);
    CHECK_EQ(atomic_load(&log.total), 4);
    lab_room_destroy(r);
    lab_room_destroy(other);
    end_arena(a);
}

static void test_room_double_free_is_reported(void)
{
    static struct misuse_log log;
    memset(&log, 0, sizeof(log));
    const size_t batch = 4, high = 4, n = 8;
    lab_arena *a = test_arena(1024, 10, 16, 24, 32);
    lab_set_misuse_handler(a, record_misuse, &log);
    lab_room *r = make_room(a, 0, batch, high, 0);
    void *p[8];
    for (size_t i = 0; i < n; i++) {
        p[i] = lab_room_alloc(r, LAB_GFP_NOWAIT);
        REQUIRE(p[i]);
    }
    /* the page is in the stock */
    lab_room_free(r, p[n - 1]);
    lab_room_free(r, p[n - 1]);
    CHECK_EQ(atomic_load(&log.count[LAB_EDOUBLEFREE]), 1);
    CHECK_EQ(atomic_load(&log.total), 1);
    CHECK_EQ(room_stats(r).frees_owner, 1);
    CHECK_EQ(lab_check(a), 0);

    /* free the rest: the stock goes above high and the coldest pages drain
     * back to the zone, where they merge; freeing any of them again is still
     * a double free */
    for (size_t i = 0; i < n - 1; i++)
        lab_room_free(r, p[i]);
    CHECK(room_stats(r).drains >= 1);
    lab_stats before = arena_stats(a);
    lab_room_stats rbefore = room_stats(r);
    for (size_t i = 0; i < n; i++) {
        unsigned before_df = atomic_load(&log.count[LAB_EDOUBLEFREE]);
        lab_room_free(r, p[i]);
        if (atomic_load(&log.count[LAB_EDOUBLEFREE]) != before_df + 1)
            fprintf(stderr, "  second free of page %zu (frame %zu) reported %s\n", i,
                    (size_t)((char *)p[i] - (char *)lab_arena_base(a)) / LAB_PAGE_SIZE,
                    lab_strerror(atomic_load(&log.last)));
    }
    CHECK_EQ(atomic_load(&log.count[LAB_EDOUBLEFREE]), 1 + n);
    CHECK_EQ(atomic_load(&log.total), 1 + n);
    lab_stats after = arena_stats(a);
    lab_room_stats rafter = room_stats(r);
    CHECK_EQ(after.free_pages, before.free_pages);
    CHECK_EQ(rafter.stock, rbefore.stock);
    CHECK_EQ(rafter.frees_owner, rbefore.frees_owner);
    CHECK_EQ(lab_check(a), 0);

    /* lab_free_pages of a page in the room's stock is a double free too */
    lab_free_pages(a, p[n - 1], 0);
    CHECK_EQ(atomic_load(&log.count[LAB_EDOUBLEFREE]), 2 + n);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* A room page that goes back to the zone as the upper half of a buddy pair
 * merges into the lower one; when that block is split again, the page heads
 * a free block of its own and must carry no trace of the room. */
static void test_room_pages_merged_back_leave_no_owner_behind(void)
{
    /* both orders of return, so that in one of them the upper page is the
     * one that merges into its lower buddy */
    for (int upper_last = 0; upper_last < 2; upper_last++) {
        lab_arena *a = test_arena(16, 4, 0, 0, 0);
        lab_room *r = make_room(a, 0, 2, 2, 0);
        char *base = lab_arena_base(a);
        void *x = lab_room_alloc(r, LAB_GFP_MEMALLOC);
        void *y = lab_room_alloc(r, LAB_GFP_MEMALLOC);
        REQUIRE(x && y);
        void *lo = x < y ? x : y, *hi = x < y ? y : x;
        CHECK_EQ((char *)lo - base, 0);
        CHECK_EQ((char *)hi - base, LAB_PAGE_SIZE);
        lab_room_free(r, upper_last ? lo : hi);
        lab_room_free(r, upper_last ? hi : lo);
        lab_room_destroy(r);
        CHECK_EQ(lab_check(a), 0);
        CHECK_EQ(arena_stats(a).free_blocks[4], 1);
        /* split again: the upper page heads a free block of order 0 */
        void *p = lab_alloc_pages(a, LAB_GFP_MEMALLOC, 0);
        CHECK(p == lo);
        CHECK_EQ(arena_stats(a).free_blocks[0], 1);
        CHECK_EQ(lab_check(a), 0);
        /* and is an ordinary zone page when handed out again */
        void *q = lab_alloc_pages(a, LAB_GFP_MEMALLOC, 0);
        CHECK(q == hi);
        lab_free_pages(a, q, 0);
        CHECK_EQ(arena_stats(a).deferred_pages, 0);
        lab_free_pages(a, p, 0);
        end_arena(a);
    }
}

/* A room handed over to another thread (the program's own
 * synchronisation in between: here a join) is the new owner's once it says
 * so; in debug builds the old owner is then the one refused. */
struct taker {
    lab_room *r;
    void *page;
    int set;
    void *got;
};

static void *take_over(void *arg)
{
    struct taker *t = arg;
    t->set = lab_room_set_owner(t->r);
    lab_room_free(t->r, t->page);
    t->got = lab_room_alloc(t->r, LAB_GFP_KERNEL);
    return NULL;
}

#ifdef LAB_DEBUG
/* a misuse handler runs inside the room call that reported it (a NOFAIL
 * request above the room's orders) */
static lab_room *busy_room;
static _Atomic int set_owner_inside;
static void set_owner_from_the_report(void *ctx, int err, const void *addr, const char *msg)
{
    record_misuse(ctx, err, addr, msg);
    atomic_store(&set_owner_inside, lab_room_set_owner(busy_room));
}
#endif

static void test_a_room_handed_over_is_the_new_owners(void)
{
    static struct misuse_log log;
    lab_arena *a;
    void *p;
    lab_room *r = owned_room_logged(&log, &a, &p);
    struct taker tk = { r, p, -1, NULL };
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, take_over, &tk) == 0);
    pthread_join(t, NULL);
    CHECK_EQ(tk.set, 0);
    CHECK(tk.got != NULL);
    CHECK_EQ(atomic_load(&log.total), 0);
    CHECK_EQ(room_stats(r).out, 1);
#ifdef LAB_DEBUG
    /* the old owner is not the owner any more */
    CHECK(lab_room_alloc(r, LAB_GFP_KERNEL) == NULL);
    CHECK_EQ(atomic_load(&log.count[LAB_ENOTOWNER]), 1);
    /* debug builds mark each call: a hand-over inside one is refused */
    busy_room = r;
    lab_set_misuse_handler(a, set_owner_from_the_report, &log);
    CHECK_EQ(lab_room_set_owner(r), 0);
    CHECK(lab_room_alloc_pages(r, LAB_GFP_KERNEL | LAB_GFP_NOFAIL | LAB_GFP_NOWARN, 1) == NULL);
    CHECK_EQ(atomic_load(&set_owner_inside), LAB_EBUSY);
    lab_set_misuse_handler(a, record_misuse, &log);
#endif
    CHECK_EQ(lab_room_set_owner(r), 0);
    lab_room_free(r, tk.got);
    CHECK_EQ(room_stats(r).out, 0);
    CHECK_EQ(lab_room_set_owner(NULL), LAB_EINVAL);
    lab_room_destroy(r);
    CHECK_EQ(lab_room_set_owner(r), LAB_EROOMDEAD);
    end_arena(a);
}

#ifdef LAB_DEBUG
/* Debug builds: a room used by a thread that does not own it is reported. */
struct intruder {
    lab_room *r;
    void *page;
    void *got;
};

static void *intrude(void *arg)
{
    struct intruder *in = arg;
    in->got = lab_room_alloc(in->r, LAB_GFP_KERNEL);
    lab_room_free(in->r, in->page);
    return NULL;
}

static void test_debug_room_used_by_a_non_owner_is_reported(void)
{
    static struct misuse_log log;
    lab_arena *a;
    void *p;
    lab_room *r = owned_room_logged(&log, &a, &p);
    lab_room_stats before = room_stats(r);
    struct intruder in = { r, p, (void *)1 };
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, intrude, &in) == 0);
    pthread_join(t, NULL);
    CHECK(in.got == NULL);
    CHECK_EQ(atomic_load(&log.count[LAB_ENOTOWNER]), 2);
    CHECK_EQ(atomic_load(&log.total), 2);
    lab_room_stats after = room_stats(r);
    CHECK_EQ(after.allocs, before.allocs);
    CHECK_EQ(after.frees_owner, before.frees_owner);
    CHECK_EQ(after.stock, before.stock);
    CHECK_EQ(after.out, 1);
    /* the owner still can */
    lab_room_free(r, p);
    CHECK_EQ(room_stats(r).out, 0);
    CHECK_EQ(atomic_load(&log.total), 2);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* Debug builds: a signal handler that uses the room its thread owns, while
 * the owner allocates and frees there, is refused whenever the owner is
 * inside a call, and costs the room's counts nothing either way: the
 * owner's mark of a call is one read-modify-write, so a handler that lands
 * between the owner's check and its mark runs its whole call first.  (A
 * mark made of a load and a store wrote back the word from before the
 * handler's call, and `allocs` fell behind `frees_owner`: a race, which
 * this test caught in two of three runs.) */
static lab_room *reenter_room;
static lab_arena *reenter_arena;
static struct misuse_log reenter_log;
static _Atomic int reenter_stop;

static void reenter_handler(int sig)
{
    (void)sig;
    int saved = errno;
    void *p = lab_room_alloc(reenter_room, LAB_GFP_ATOMIC | LAB_GFP_NOWARN);
    if (p) {
        unsigned before = atomic_load(&reenter_log.total);
        lab_room_free(reenter_room, p);
        if (atomic_load(&reenter_log.total) != before)
            lab_free_pages(reenter_arena, p, 0);   /* refused: back another way */
    }
    errno = saved;
}

static void *reenter_kicker(void *arg)
{
    pthread_t owner = *(pthread_t *)arg;
    while (!atomic_load(&reenter_stop)) {
        pthread_kill(owner, SIGUSR1);
        struct timespec ts = { 0, 20000 };
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void test_debug_a_handler_re_entering_its_room_costs_no_count(void)
{
    memset(&reenter_log, 0, sizeof(reenter_log));
    reenter_arena = test_arena(4096, 10, 16, 24, 32);
    lab_set_misuse_handler(reenter_arena, record_misuse, &reenter_log);
    reenter_room = make_room(reenter_arena, 0, 4, 8, 0);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = reenter_handler;
    sa.sa_flags = SA_RESTART;
    REQUIRE(sigaction(SIGUSR1, &sa, &old) == 0);
    atomic_store(&reenter_stop, 0);
    pthread_t me = pthread_self(), k;
    REQUIRE(pthread_create(&k, NULL, reenter_kicker, &me) == 0);
    void *held[64];
    int n = 0;
    unsigned seed = 3;
    for (double end = now_ms() + 2000; now_ms() < end;) {
        if (n < 64 && (n == 0 || rand_r(&seed) % 2)) {
            void *p = lab_room_alloc(reenter_room, LAB_GFP_NOWAIT | LAB_GFP_NOWARN);
            if (p)
                held[n++] = p;
        } else {
            lab_room_free(reenter_room, held[--n]);
        }
    }
    atomic_store(&reenter_stop, 1);
    pthread_join(k, NULL);
    REQUIRE(sigaction(SIGUSR1, &old, NULL) == 0);
    while (n)
        lab_room_free(reenter_room, held[--n]);
    CHECK(atomic_load(&reenter_log.count[LAB_ENOTOWNER]) > 0);   /* it did land inside calls */
    CHECK_EQ(atomic_load(&reenter_log.total), atomic_load(&reenter_log.count[LAB_ENOTOWNER]));
    lab_room_stats st = room_stats(reenter_room);
    CHECK_EQ(st.out, 0);
    CHECK_EQ(st.allocs, st.frees_owner + st.frees_remote);
    CHECK_EQ(lab_check(reenter_arena), 0);
    lab_room_destroy(reenter_room);
    end_arena(reenter_arena);
}
#endif


/* A bulk free hands the room a run of pages at once; however many come
 * back, the stock never holds more than high + batch, so the owner's next
 * free still fits (a run of 7 into a batch-1 room once overflowed it). */
static void test_bulk_remote_free_never_overfills_the_stock(void)
{
    for (size_t n = 1; n <= 24; n++) {
        lab_arena *a = test_arena(512, 4, 8, 16, 24);
        lab_room *r = make_room(a, 0, 1, 0, 0);   /* batch 1, high 4 */
        void *p[24];
        for (size_t i = 0; i < n; i++)
            REQUIRE((p[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
        lab_free_pages_bulk(a, p, n, 0);
        for (int round = 0; round < 3; round++) {
            void *q = lab_room_alloc(r, LAB_GFP_NOWAIT);
            REQUIRE(q != NULL);
            lab_room_free(r, q);
            lab_room_stats st = room_stats(r);
            CHECK(st.stock <= 4 + 1);
            CHECK_EQ(lab_check(a), 0);
        }
        lab_room_destroy(r);
        end_arena(a);
    }
}

int main(void)
{
    test_watchdog(120);
    RUN(test_owner_alloc_free_round_trip);
    RUN(test_zeroed_allocation_from_the_stock_is_zero);
    RUN(test_refill_moves_one_batch_from_the_zone);
    RUN(test_a_refill_takes_the_blocks_single_allocations_would);
    RUN(test_frees_above_high_drain_to_the_zone);
    RUN(test_remote_frees_come_back_to_the_room);
    RUN(test_remote_frees_race_with_the_owner);
    RUN(test_reserve_serves_atomic_after_everyone_else_took_every_page);
    RUN(test_owner_frees_refill_the_reserve_and_remote_frees_the_stock);
    RUN(test_a_bulk_allocation_tops_up_the_reserve_from_remote_frees);
    RUN(test_reserve_larger_than_the_free_pages_is_refused);
    RUN(test_a_room_without_a_reserve_is_made_below_min);
    RUN(test_remote_frees_refill_the_reserve_first);
    RUN(test_quota_caps_held_plus_handed_out);
    RUN(test_destroy_returns_everything_the_room_holds);
    RUN(test_destroyed_room_reports_room_dead);
    RUN(test_room_free_of_a_page_the_room_did_not_hand_out);
    RUN(test_room_double_free_is_reported);
    RUN(test_room_pages_merged_back_leave_no_owner_behind);
    RUN(test_bulk_remote_free_never_overfills_the_stock);
    RUN(test_a_room_handed_over_is_the_new_owners);
#ifdef LAB_DEBUG
    RUN(test_debug_room_used_by_a_non_owner_is_reported);
    RUN(test_debug_a_handler_re_entering_its_room_costs_no_count);
#endif
    return test_finish();
}
