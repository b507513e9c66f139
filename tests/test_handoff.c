/* The hand-off between contexts: remote frees through a room's return ring,
 * what the owner checks when it takes blocks back (double frees, races with
 * its own frees), strict mode, a full ring, a destroyed room's ring, bulk
 * calls, rooms of orders 1..3, reused room ids, and the emergency reserve
 * that a refill may not stock. */
#include "check.h"
#include "internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>

static lab_stats arena_stats(lab_arena *a) { lab_stats s; lab_stats_get(a, &s); return s; }
static lab_room_stats room_stats(lab_room *r) { lab_room_stats s; lab_room_stats_get(r, &s); return s; }

struct misuse_log {
    _Atomic unsigned count[LAB_ERROR_COUNT];
    _Atomic unsigned total;
};
static void record_misuse(void *ctx, int err, const void *addr, const char *msg)
{
    struct misuse_log *log = ctx;
    (void)addr;
    (void)msg;
    if (err >= 0 && err < LAB_ERROR_COUNT)
        atomic_fetch_add(&log->count[err], 1);
    atomic_fetch_add(&log->total, 1);
}

static lab_arena *arena(size_t pages, unsigned flags)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = pages * LAB_PAGE_SIZE;
    cfg.wmark_min = 16;
    cfg.wmark_low = 24;
    cfg.wmark_high = 32;
    cfg.flags = flags;
    lab_arena *a = NULL;
    REQUIRE(lab_arena_create(&cfg, &a) == 0);
    return a;
}

struct lane_job { lab_arena *a; void **pages; size_t n; atomic_int *go; };
static void *lane_freer(void *arg)
{
    struct lane_job *j = arg;
    while (!atomic_load(j->go))
        ;
    for (size_t i = 0; i < j->n; i++)
        lab_free_pages(j->a, j->pages[i], 0);
    return NULL;
}

/* Free pages[0..n) one at a time from a thread of their own (its lane). */
static void free_from_a_thread(lab_arena *a, void **pages, size_t n)
{
    pthread_t t;
    atomic_int go = 1;
    struct lane_job j = { a, pages, n, &go };
    REQUIRE(pthread_create(&t, NULL, lane_freer, &j) == 0);
    pthread_join(t, NULL);
}

/* An arena whose misuse reports go to *log (cleared first). */
static lab_arena *logged_arena(size_t pages, unsigned flags, struct misuse_log *log)
{
    memset(log, 0, sizeof(*log));
    lab_arena *a = arena(pages, flags);
    lab_set_misuse_handler(a, record_misuse, log);
    return a;
}

static lab_room *room(lab_arena *a, size_t batch, size_t high, unsigned max_order, size_t ring)
{
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.flags = LAB_ROOM_TAKE_ALL;   /* every remote free back when the stock runs dry */
    rc.batch = batch;
    rc.high = high;
    rc.max_order = max_order;
    rc.ring = ring;
    lab_room *r = NULL;
    int err = lab_room_create(a, &rc, &r);
    if (err)
        fprintf(stderr, "lab_room_create: %s\n", lab_strerror(err));
    REQUIRE(err == 0);
    return r;
}

static void end_arena(lab_arena *a)
{
    CHECK_EQ(lab_check(a), 0);
    lab_stats s = arena_stats(a);
    CHECK_EQ(s.free_pages + s.highatomic_pages, s.total_pages);
    CHECK_EQ(s.allocated_pages, 0);
    CHECK_EQ(s.deferred_pages, 0);
    lab_arena_destroy(a);
}

static int in_stock_times(lab_room *r, void *page, int tries)
{
    /* how many of the next `tries` allocations return `page` */
    void *got[64];
    int n = 0, seen = 0;
    for (; n < tries; n++) {
        got[n] = lab_room_alloc(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN);
        if (!got[n])
            break;
        seen += got[n] == page;
    }
    while (n)
        lab_room_free(r, got[--n]);
    return seen;
}

/* ---- the ring ------------------------------------------------------------ */

static void test_a_block_freed_twice_through_the_ring_is_found_when_taken_back(void)
{
    static struct misuse_log log;
    lab_arena *a = logged_arena(512, 0, &log);
    lab_room *r = room(a, 8, 32, 0, 0);
    void *p = lab_room_alloc(r, LAB_GFP_NOWAIT);
    REQUIRE(p);
    lab_free_pages(a, p, 0);
    lab_free_pages(a, p, 0);   /* strict mode: caught here; default: when taken back */
    /* the owner takes both back when its stock runs dry: the second is
     * found already in stock, reported and dropped */
    CHECK_EQ(in_stock_times(r, p, 40), 1);   /* handed out once, not twice */
    CHECK_EQ(atomic_load(&log.count[LAB_EDOUBLEFREE]), 1);
    CHECK_EQ(atomic_load(&log.total), 1);
    lab_room_stats st = room_stats(r);
    CHECK_EQ(st.out, 0);
    CHECK_EQ(st.in_ring, 0);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* A room block freed with an order other than the one it was handed out
 * with is reported as such, not as a double free or a foreign page: by
 * default when the owner takes it back (the freer reads no descriptor),
 * in strict mode at the free.  Either way the block stays the caller's, and
 * a free with the right order brings it home. */
static void test_a_remote_free_with_the_wrong_order_is_reported_as_such(void)
{
    for (int strict = 0; strict <= 1; strict++) {
        static struct misuse_log log;
        lab_arena *a = logged_arena(512, strict ? LAB_ARENA_STRICT_FREE : 0, &log);
        lab_room *r = room(a, 8, 32, 1, 0);
        void *p = lab_room_alloc_pages(r, LAB_GFP_NOWAIT, 1);
        REQUIRE(p);
        lab_free_pages(a, p, 0);   /* handed out as order 1 */
        /* the order-0 stock is empty: its first allocation takes back */
        void *q = lab_room_alloc(r, LAB_GFP_NOWAIT);
        REQUIRE(q);
        CHECK_EQ(room_stats(r).in_ring, 0);
        lab_room_free(r, q);
        CHECK_EQ(atomic_load(&log.count[LAB_EWRONGORDER]), 1);
        CHECK_EQ(atomic_load(&log.total), 1);
        /* and the other way: an order-0 block freed as order 1 (a frame
         * aligned for it), taken back from a lane among good ones */
        enum { N = 16 };
        void *b[N], *odd = NULL;
        int nb = N;
        for (int i = 0; i < nb; i++)
            REQUIRE((b[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
        for (int i = 0; i < nb && !odd; i++)
            if (!(((uintptr_t)b[i] / LAB_PAGE_SIZE) & 1))
                odd = b[i];
        REQUIRE(odd);
        for (int i = 0; i < nb; i++)
            lab_free_pages(a, b[i], b[i] == odd ? 1 : 0);
        for (int i = 0; i < nb; i++)   /* the stock runs dry: takes back the others */
            REQUIRE((b[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
        CHECK_EQ(atomic_load(&log.count[LAB_EWRONGORDER]), 2);
        CHECK_EQ(atomic_load(&log.total), 2);
        for (int i = 0; i < nb; i++)
            CHECK(b[i] != odd);          /* dropped, still the caller's */
        for (int i = 0; i < nb; i++)
            lab_room_free(r, b[i]);
        lab_free_pages(a, odd, 0);
        lab_free_pages(a, p, 1);
        CHECK_EQ(atomic_load(&log.total), 2);
        CHECK_EQ(lab_check(a), 0);
        lab_room_destroy(r);
        end_arena(a);
    }
}

/* The owner frees a block with lab_room_free and another context frees the
 * same block with lab_free_pages: with LAB_ARENA_STRICT_FREE one of the two
 * is reported, and the block is in stock once, whichever comes first.  (By
 * default the owner's next allocation hands the block out again from its
 * stock before it sees the remote free: the documented blind spot.) */
static void test_strict_mode_arbitrates_owner_and_remote_free_of_one_block(void)
{
    for (int remote_first = 0; remote_first < 2; remote_first++) {
        static struct misuse_log log;
        lab_arena *a = logged_arena(512, LAB_ARENA_STRICT_FREE, &log);
        lab_room *r = room(a, 8, 32, 0, 0);
        void *p = lab_room_alloc(r, LAB_GFP_NOWAIT);
        REQUIRE(p);
        if (remote_first) {
            lab_free_pages(a, p, 0);
            lab_room_free(r, p);
        } else {
            lab_room_free(r, p);
            lab_free_pages(a, p, 0);
        }
        CHECK_EQ(in_stock_times(r, p, 40), 1);
        CHECK_EQ(atomic_load(&log.total), 1);
        CHECK_EQ(atomic_load(&log.count[LAB_EDOUBLEFREE]), 1);
        CHECK_EQ(room_stats(r).out, 0);
        CHECK_EQ(lab_check(a), 0);
        lab_room_destroy(r);
        end_arena(a);
    }
}

/* With LAB_ARENA_STRICT_FREE every free claims the block first: the second
 * free is reported by the call that makes it, before the owner looks. */
static void test_strict_mode_reports_a_double_free_at_the_second_free(void)
{
    static struct misuse_log log;
    lab_arena *a = logged_arena(512, LAB_ARENA_STRICT_FREE, &log);
    lab_room *r = room(a, 8, 32, 0, 0);
    void *p = lab_room_alloc(r, LAB_GFP_NOWAIT);
    REQUIRE(p);
    lab_free_pages(a, p, 0);
    CHECK_EQ(atomic_load(&log.total), 0);
    lab_free_pages(a, p, 0);
    CHECK_EQ(atomic_load(&log.count[LAB_EDOUBLEFREE]), 1);
    CHECK_EQ(room_stats(r).in_ring, 1);
    /* and the owner's own free racing a remote one is refused outright */
    void *q = lab_room_alloc(r, LAB_GFP_NOWAIT);
    REQUIRE(q);
    void *o = lab_room_alloc(r, LAB_GFP_NOWAIT);
    REQUIRE(o);
    lab_free_pages(a, o, 0);
    lab_room_free(r, o);
    CHECK_EQ(atomic_load(&log.count[LAB_EDOUBLEFREE]), 2);
    lab_room_free(r, q);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* The owner allocates and frees 8 blocks at a time, so its stock runs
 * dry and it takes back, until nothing waits in its ring or lanes (at
 * most `rounds` times). */
static void take_all_back(lab_room *r, size_t rounds)
{
    void *more[8];
    for (size_t round = 0; round < rounds && room_stats(r).in_ring; round++) {
        for (int i = 0; i < 8; i++)
            REQUIRE((more[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
        for (int i = 0; i < 8; i++)
            lab_room_free(r, more[i]);
    }
}

/* A ring holds what it holds; the frees beyond it go to the zone, and every
 * page is still accounted for.  Freed in runs of one with
 * lab_free_pages_bulk: they fill this thread's lane first (8192 slots, where
 * the platform gives lanes), then the shared ring, then go to the zone. */
static void test_frees_beyond_a_full_ring_go_to_the_zone(void)
{
    lab_arena *a = arena(16384, 0);
    lab_room *r = room(a, 4, 4, 0, 16);     /* ring of 16 slots */
    enum { N = 8192 + 76, LANE = 8192 };
    static void *p[N];
    for (int i = 0; i < N; i++)
        REQUIRE((p[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    size_t free_before = arena_stats(a).free_pages;
    for (int i = 0; i < N; i++)
        lab_free_pages_bulk(a, &p[i], 1, 0);
    lab_room_stats st = room_stats(r);
    size_t held = st.in_ring;
    CHECK(held == 16 || held == 16 + LANE);
    CHECK_EQ(arena_stats(a).free_pages, free_before + N - held);
    CHECK_EQ(arena_stats(a).deferred_pages, held);
    CHECK_EQ(st.out, held);
    /* one take-back is bounded to the stock's high (4): the rest waits */
    void *q = lab_room_alloc(r, LAB_GFP_NOWAIT);
    REQUIRE(q);
    st = room_stats(r);
    CHECK_EQ(st.in_ring, held - 4);
    CHECK_EQ(st.out, held - 4 + 1);    /* 4 back to the stock, 1 of them handed out */
    CHECK_EQ(st.stock, 3);
    lab_room_free(r, q);
    take_all_back(r, N);
    st = room_stats(r);
    CHECK_EQ(st.in_ring, 0);
    CHECK_EQ(st.out, 0);
    CHECK(st.stock <= 4 + 4);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* A bulk free of exactly as many blocks as the ring has slots, which the
 * freer's lane cannot take (full): one reservation takes the whole ring,
 * and every block waits there for the owner, none goes to the zone. */
static void test_a_bulk_free_of_the_rings_size_fills_the_ring(void)
{
    lab_arena *a = arena(16384, 0);
    lab_room *r = room(a, 4, 4, 0, 16);     /* ring of 16 slots */
    enum { RING = 16, LANE = 8192 };
    const size_t lane = r->lanes ? LANE : 0;   /* no membarrier: no lanes */
    static void *p[LANE + RING];
    const size_t n = lane + RING;
    for (size_t i = 0; i < n; i++)
        REQUIRE((p[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    for (size_t i = 0; i < lane; i++)
        lab_free_pages(a, p[i], 0);         /* this thread's lane, full */
    REQUIRE(room_stats(r).in_ring == lane);
    size_t free_before = arena_stats(a).free_pages;
    lab_free_pages_bulk(a, &p[lane], RING, 0);
    lab_room_stats st = room_stats(r);
    CHECK_EQ(st.in_ring, lane + RING);
    CHECK_EQ(arena_stats(a).free_pages, free_before);
    CHECK_EQ(lab_check(a), 0);
    take_all_back(r, n);   /* a stock's high at a time */
    st = room_stats(r);
    CHECK_EQ(st.in_ring, 0);
    CHECK_EQ(st.out, 0);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* Blocks in the ring of a room being destroyed go to the zone; frees after
 * destroy too. */
static void test_destroy_empties_the_ring_and_later_frees_reach_the_zone(void)
{
    lab_arena *a = arena(512, 0);
    lab_room *r = room(a, 8, 32, 0, 0);
    void *p[20];
    for (int i = 0; i < 20; i++)
        REQUIRE((p[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    for (int i = 0; i < 10; i++)
        lab_free_pages(a, p[i], 0);
    CHECK_EQ(room_stats(r).in_ring, 10);
    lab_room_destroy(r);
    lab_stats s = arena_stats(a);
    CHECK_EQ(s.free_pages, 512 - 10);
    CHECK_EQ(s.deferred_pages, 0);
    lab_free_pages_bulk(a, p + 10, 10, 0);
    CHECK_EQ(arena_stats(a).free_pages, 512);
    end_arena(a);
}

/* Producers on other threads while the owner allocates and frees, with a
 * small ring: no block is lost, none is handed out twice. */
/* `out` marks the pages handed out and not yet freed, by frame: the owner
 * sets a page's mark when it gets the page, and finding it set means the
 * page was handed out twice; a freer clears it before the free. */
struct storm {
    lab_arena *a;
    _Atomic(void *) slot[256];
    atomic_int done;
    atomic_ulong freed;
    _Atomic unsigned char out[4096];
};
static _Atomic unsigned char *out_mark(struct storm *s, void *p)
{
    size_t f = (size_t)((char *)p - (char *)lab_arena_base(s->a)) / LAB_PAGE_SIZE;
    if (f >= sizeof(s->out))   /* not REQUIRE: the freers call this too */
        abort();
    return &s->out[f];
}
static void *storm_freer(void *arg)
{
    struct storm *s = arg;
    void *batch[16];
    int nb = 0;
    for (unsigned spin = 0;; spin++) {
        int done = atomic_load(&s->done);   /* read before the pass: a slot filled
                                               before `done` is seen by this pass */
        int got = 0;
        for (unsigned i = 0; i < 256; i++) {
            void *p = atomic_exchange(&s->slot[i], NULL);
            if (!p)
                continue;
            got = 1;
            if (!stamp_ok(p, 0, 0xabc))
                abort();
            atomic_store(out_mark(s, p), 0);
            if (spin & 1) {
                lab_free_pages(s->a, p, 0);
            } else {
                batch[nb++] = p;
                if (nb == 16) {
                    lab_free_pages_bulk(s->a, batch, nb, 0);
                    nb = 0;
                }
            }
            atomic_fetch_add(&s->freed, 1);
        }
        if (!got && done)
            break;
    }
    lab_free_pages_bulk(s->a, batch, nb, 0);
    return NULL;
}

/* Moves a new room's lanes and return ring to position `at`, as if that
 * many entries had passed through each: every position is a 32-bit count
 * that wraps (the ring's lap sequences are its low bits), and only
 * modular comparisons of them hold across the wrap.  Before any free. */
static void room_positions_at(lab_room *r, uint32_t at)
{
    for (unsigned k = 0; r->lanes && k < ROOM_LANES; k++) {
        struct room_lane *l = &r->lanes[k];
        REQUIRE(atomic_load(&l->owner) == NULL && atomic_load(&l->pen) == 0);
        atomic_store(&l->pen, at);
        atomic_store(&l->head, at);
        atomic_store(&l->tail, at);
        atomic_store(&l->seen, at);
        l->limit = at + LANE_SLOTS;
    }
    REQUIRE(atomic_load(&r->ring_head) == 0 && atomic_load(&r->ring_tail) == 0);
    for (uint32_t i = 0; i <= r->ring_mask; i++)
        atomic_store(&r->ring[(at + i) & r->ring_mask], ring_slot(at + i, 0, 0));
    atomic_store(&r->ring_head, at);
    atomic_store(&r->ring_tail, at);
}

/* Whether the room's lanes or ring went past 2^32 since room_positions_at(at). */
static bool room_positions_wrapped(lab_room *r, uint32_t at)
{
    bool wrapped = atomic_load(&r->ring_tail) < at;
    for (unsigned k = 0; r->lanes && k < ROOM_LANES; k++)
        wrapped |= atomic_load(&r->lanes[k].tail) < at;
    return wrapped;
}

/* A thread that frees one page of a room, which claims it a lane while
 * one is left, and stays (blocked, not spinning: the freers need the CPUs)
 * until the second wait on the barrier. */
struct lane_holder { lab_arena *a; void *page; pthread_barrier_t *bar; };
static void *lane_holder(void *arg)
{
    struct lane_holder *h = arg;
    lab_free_pages(h->a, h->page, 0);   /* claims a lane, if one is left */
    pthread_barrier_wait(h->bar);       /* freed */
    pthread_barrier_wait(h->bar);       /* leave */
    return NULL;
}

/* The owner hands pages to two freeing threads, which free them one at a
 * time and in runs; the owner allocates one page a call or `bulk` a call
 * (the bulk calls take what the freers' lanes publish straight out), from
 * a room whose lanes keep nothing or, `keeping`, their share.  `start`:
 * where the room's lanes and ring begin (0, or a position short of the
 * 32-bit wrap, which the run then crosses).  `ring`: other threads hold
 * every lane, so the two free through the shared ring (and, when it is
 * full, to the zone). */
static lab_room *default_room(lab_arena *a);
static void two_producers_and_the_owner(unsigned bulk, bool keeping, uint32_t start, bool ring)
{
    static struct storm s;
    memset(&s, 0, sizeof(s));
    s.a = arena(2048, 0);
    lab_room *r = keeping ? default_room(s.a) : room(s.a, 8, 32, 0, 128);
    if (start)
        room_positions_at(r, start);
    /* (alive till the end: a later thread may get a gone one's area) */
    static struct lane_holder held[ROOM_LANES];
    static pthread_barrier_t bar;
    pthread_t th[ROOM_LANES];
    if (ring) {
        REQUIRE(pthread_barrier_init(&bar, NULL, ROOM_LANES + 1) == 0);
        for (unsigned k = 0; k < ROOM_LANES; k++) {
            held[k] = (struct lane_holder){ .a = s.a, .page = lab_room_alloc(r, LAB_GFP_NOWAIT), .bar = &bar };
            REQUIRE(held[k].page != NULL);
            REQUIRE(pthread_create(&th[k], NULL, lane_holder, &held[k]) == 0);
        }
        pthread_barrier_wait(&bar);   /* every holder has freed its page */
    }
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        REQUIRE(pthread_create(&t[i], NULL, storm_freer, &s) == 0);
    unsigned long handed = 0, twice = 0, remote = 0;
#ifdef LAB_TEST_SLOW
    unsigned rounds = 50000;
#else
    unsigned rounds = 500000;
#endif
    if (start)
        rounds /= 5;   /* the wrap is a few thousand entries a lane away */
    void *p[16];
    REQUIRE(bulk >= 1 && bulk <= 16);
    for (unsigned i = 0; i < rounds; i += bulk) {
        uint64_t before = bulk > 1 ? room_stats(r).frees_remote : 0;
        size_t got = bulk > 1 ? lab_room_alloc_bulk(r, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, p, bulk)
                              : (p[0] = lab_room_alloc(r, LAB_GFP_ATOMIC | LAB_GFP_NOWARN)) != NULL;
        remote += bulk > 1 && room_stats(r).frees_remote != before;
        for (size_t k = 0; k < got; k++) {
            twice += atomic_exchange(out_mark(&s, p[k]), 1) != 0;
            stamp_block(p[k], 0, 0xabc);
            void *expect = NULL;
            bool put = false;
            /* a slot busy: give the freers the CPU a few times first (on a
             * loaded machine they may not have run at all yet) */
            for (int tries = 0; !put && tries < 100; tries++) {
                expect = NULL;
                put = atomic_compare_exchange_strong(&s.slot[(i + k) & 255], &expect, p[k]);
                if (!put)
                    sched_yield();
            }
            if (put) {
                handed++;
            } else {
                atomic_store(out_mark(&s, p[k]), 0);
                lab_room_free(r, p[k]);
            }
        }
    }
    atomic_store(&s.done, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ(twice, 0);
    /* How much came straight from the lanes (each page counts at step 2,
     * where a take-back into the stock counts one for its call) depends on
     * how far the freers keep up: shown, not checked (the tests of the
     * hand-out above check that it runs). */
    if (bulk > 1)
        fprintf(stderr, "  %s: %lu pages handed to the freers, %lu calls took remote frees, %llu pages at step 2\n",
                keeping ? "keeping" : "take-all", handed, remote,
                (unsigned long long)arena_stats(s.a).alloc_by_step[LAB_STEP_ROOM_REMOTE]);
    CHECK_EQ(atomic_load(&s.freed), handed);
    lab_room_stats st = room_stats(r);
    CHECK_EQ(st.out, st.in_ring);
    CHECK_EQ(lab_check(s.a), 0);
    /* with the lanes held, the ring itself (a full one sends frees to the zone) */
    if (start)
        CHECK(ring ? atomic_load(&r->ring_tail) < start : room_positions_wrapped(r, start));
    if (ring) {
        pthread_barrier_wait(&bar);   /* leave */
        for (unsigned k = 0; k < ROOM_LANES; k++)
            pthread_join(th[k], NULL);
        pthread_barrier_destroy(&bar);
    }
    lab_room_destroy(r);
    end_arena(s.a);
}

static void test_two_producers_and_the_owner_lose_and_duplicate_nothing(void)
{
    two_producers_and_the_owner(1, false, 0, false);
}

static void test_two_producers_and_a_bulk_allocating_owner_lose_and_duplicate_nothing(void)
{
    two_producers_and_the_owner(16, false, 0, false);
    two_producers_and_the_owner(16, true, 0, false);
}

/* The same across the 32-bit wrap of the lanes' and the ring's positions:
 * windows, take-backs and bulk hand-outs that straddle it. */
static void test_the_hand_off_crosses_the_wrap_of_its_positions(void)
{
    const uint32_t start = 0u - 3000;
    two_producers_and_the_owner(1, false, start, false);
    two_producers_and_the_owner(1, true, start, false);
    two_producers_and_the_owner(16, true, start, false);
    /* the ring's own, nearer: a full ring sends frees to the zone, more
     * of them on a loaded machine */
    two_producers_and_the_owner(1, false, 0u - 300, true);
    two_producers_and_the_owner(16, true, 0u - 300, true);
}

/* ---- bulk calls ---------------------------------------------------------------- */

static void test_alloc_bulk_places_what_it_can_and_says_how_many(void)
{
    lab_arena *a = arena(1024, 0);
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.batch = 16;
    rc.quota = 40;
    lab_room *r = NULL;
    REQUIRE(lab_room_create(a, &rc, &r) == 0);
    void *p[100];
    size_t n = lab_room_alloc_bulk(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, p, 100);
    CHECK_EQ(n, 40);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            CHECK(p[i] != p[j]);
    lab_room_stats st = room_stats(r);
    CHECK_EQ(st.out, 40);
    CHECK_EQ(st.fail_by_reason[LAB_R_QUOTA], 1);
    CHECK_EQ(lab_room_alloc_bulk(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, p + n, 10), 0);
    CHECK_EQ(room_stats(r).fail_by_reason[LAB_R_QUOTA], 2);
    lab_room_free_bulk(r, p, n);
    st = room_stats(r);
    CHECK_EQ(st.out, 0);
    CHECK_EQ(st.frees_owner, 40);
    /* from the stock now: a second bulk call is all step 1 */
    uint64_t refills = st.refills;
    CHECK_EQ(lab_room_alloc_bulk(r, LAB_GFP_NOWAIT | LAB_GFP_ZERO, p, 20), 20);
    CHECK_EQ(room_stats(r).refills, refills);
    for (size_t i = 0; i < 20; i++)
        CHECK(((unsigned char *)p[i])[LAB_PAGE_SIZE - 1] == 0);
    lab_free_pages_bulk(a, p, 20, 0);
    CHECK_EQ(room_stats(r).in_ring, 20);
    lab_room_destroy(r);
    end_arena(a);
}

/* ---- orders 1..3 ------------------------------------------------------------------ */

static void test_a_room_serves_orders_up_to_its_max_order(void)
{
    lab_arena *a = arena(4096, 0);
    lab_room *r = room(a, 16, 64, 3, 0);
    char *base = lab_arena_base(a);
    void *blk[4][8];
    for (unsigned o = 0; o <= 3; o++)
        for (int i = 0; i < 8; i++) {
            blk[o][i] = lab_room_alloc_pages(r, LAB_GFP_NOWAIT, o);
            REQUIRE(blk[o][i]);
            CHECK_EQ(((size_t)((char *)blk[o][i] - base) / LAB_PAGE_SIZE) % (1u << o), 0);
            stamp_block(blk[o][i], o, 0x10 + o);
        }
    /* above the room's max_order: refused with a reason, nothing misused */
    lab_result res;
    CHECK(lab_room_alloc_pages(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, 4) == NULL);
    (void)res;
    lab_room_stats st = room_stats(r);
    CHECK_EQ(st.out, 8 * (1 + 2 + 4 + 8));
    CHECK_EQ(st.fail_by_reason[LAB_R_ORDER], 1);
    /* owner frees of orders 1..3, and remote frees, come back by order */
    for (unsigned o = 1; o <= 3; o++)
        for (int i = 0; i < 4; i++) {
            CHECK(stamp_ok(blk[o][i], o, 0x10 + o));
            lab_room_free_pages(r, blk[o][i], o);
        }
    for (unsigned o = 0; o <= 3; o++)
        for (int i = 4; i < 8; i++)
            lab_free_pages(a, blk[o][i], o);
    for (int i = 0; i < 4; i++)
        lab_room_free(r, blk[0][i]);
    st = room_stats(r);
    CHECK_EQ(st.out, 4 * (1 + 2 + 4 + 8));   /* the remote ones still in the ring */
    /* the allocation that finds the order-3 stock empty takes the whole ring
     * back, every order to its own stock */
    void *x[5];
    for (int k = 0; k < 5; k++)
        REQUIRE((x[k] = lab_room_alloc_pages(r, LAB_GFP_NOWAIT, 3)) != NULL);
    CHECK_EQ(room_stats(r).in_ring, 0);
    for (int k = 0; k < 5; k++)
        lab_room_free_pages(r, x[k], 3);
    st = room_stats(r);
    CHECK_EQ(st.out, 0);
    CHECK_EQ(st.in_ring, 0);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* A batch of fewer pages than an order's block still moves one block of
 * that order per refill (the header: batch >> k blocks, at least 1). */
static void test_an_orders_refill_moves_at_least_one_block(void)
{
    lab_arena *a = arena(1024, 0);
    lab_room *r = room(a, 2, 8, 3, 0);   /* order 3: 2 >> 3 = 0 blocks */
    void *b[3];
    for (int i = 0; i < 3; i++) {
        uint64_t refills = room_stats(r).refills;
        REQUIRE((b[i] = lab_room_alloc_pages(r, LAB_GFP_NOWAIT, 3)) != NULL);
        CHECK_EQ(room_stats(r).refills, refills + 1);   /* one block each time */
        CHECK_EQ(room_stats(r).stock, 0);
    }
    /* one block back stays in stock (high 8 >> 3 = 1), the next goes home */
    lab_room_free_pages(r, b[0], 3);
    CHECK_EQ(room_stats(r).stock, 8);
    lab_room_free_pages(r, b[1], 3);
    CHECK_EQ(room_stats(r).stock, 8);
    uint64_t refills = room_stats(r).refills;
    void *again = lab_room_alloc_pages(r, LAB_GFP_NOWAIT, 3);
    CHECK(again == b[0] || again == b[1]);
    CHECK_EQ(room_stats(r).refills, refills);   /* from the stock */
    lab_room_free_pages(r, again, 3);
    lab_room_free_pages(r, b[2], 3);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

static void test_room_orders_above_the_limit_are_refused(void)
{
    lab_arena *a = arena(512, 0);
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.max_order = LAB_ROOM_MAX_ORDER + 1;
    lab_room *r = NULL;
    CHECK_EQ(lab_room_create(a, &rc, &r), LAB_EORDER);
    CHECK(r == NULL);
    end_arena(a);
}

/* ---- ids and reserves -------------------------------------------------------------- */

static void test_room_ids_are_reused_once_no_block_is_out(void)
{
    lab_arena *a = arena(512, 0);
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.batch = 1;
    void *keep = NULL;
    lab_room *kept = NULL;
    for (int i = 0; i < 10000; i++) {
        lab_room *r = NULL;
        int err = lab_room_create(a, &rc, &r);
        CHECK_EQ(err, 0);
        if (err)
            break;
        void *p = lab_room_alloc(r, LAB_GFP_NOWAIT);
        REQUIRE(p);
        if (i == 100) {       /* one room destroyed with a page out: its id stays taken */
            keep = p;
            kept = r;
        } else {
            lab_room_free(r, p);
        }
        lab_room_destroy(r);
    }
    /* the late free of the kept room's page still finds it (dead): to the zone */
    CHECK(kept != NULL);
    lab_free_pages(a, keep, 0);
    lab_stats st = arena_stats(a);
    CHECK_EQ(st.nr_rooms, 0);
    /* and the arena's totals keep what the rooms whose ids were taken
     * again counted: a page each, out and back */
    uint64_t allocs = 0;
    for (int i = 0; i < LAB_STEP_COUNT; i++)
        allocs += st.alloc_by_step[i];
    CHECK_EQ(allocs, 10000);
    CHECK_EQ(st.frees, 10000);
    end_arena(a);
}

/* A destroyed room's handle, once a later room has taken its id: a block
 * of the later room freed through it is a page of another room (it went
 * to the zone as the dead room's, while the later room counted it out). */
static void test_a_dead_rooms_handle_refuses_a_block_of_the_room_that_took_its_id(void)
{
    static struct misuse_log log;
    lab_arena *a = logged_arena(512, 0, &log);
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.batch = 1;
    static lab_room *gone[MAX_ROOMS];
    for (unsigned i = 0; i < MAX_ROOMS; i++) {
        REQUIRE(lab_room_create(a, &rc, &gone[i]) == 0);
        lab_room_destroy(gone[i]);
    }
    lab_room *cur = NULL;
    REQUIRE(lab_room_create(a, &rc, &cur) == 0);
    lab_room *old = NULL;
    for (unsigned i = 0; i < MAX_ROOMS && !old; i++)
        if (gone[i]->id == cur->id)
            old = gone[i];
    REQUIRE(old != NULL);
    void *p = lab_room_alloc(cur, LAB_GFP_NOWAIT);
    REQUIRE(p);
    lab_room_free(old, p);
    CHECK_EQ(atomic_load(&log.count[LAB_ENOTROOMPAGE]), 1);
    CHECK_EQ(atomic_load(&log.total), 1);
    CHECK_EQ(room_stats(cur).out, 1);
    CHECK_EQ(lab_check(a), 0);
    lab_room_free(cur, p);   /* still the later room's */
    CHECK_EQ(atomic_load(&log.total), 1);
    CHECK_EQ(room_stats(cur).out, 0);
    lab_room_destroy(cur);
    lab_room *again = NULL;
    CHECK_EQ(lab_room_create(a, &rc, &again), 0);   /* the id is free again */
    if (again)
        lab_room_destroy(again);
    end_arena(a);
}

/* The arena's stats count pages, as Linux's pgalloc and pgfree do: a
 * block of order 3 is 8 whichever step served it, the zone's or a room's
 * (its stock, or a refill), and 8 when it is freed.  (Requests from the
 * zone counted 1, and a room's request served by a refill 1 for the zone
 * and 7 for the room.) */
static void test_the_stats_count_pages_by_step_and_freed(void)
{
    lab_arena *a = arena(1024, 0);
    lab_room *r = room(a, 32, 64, 3, 0);   /* a refill of order 3 brings several blocks */
    lab_stats s0 = arena_stats(a);
    void *p = lab_alloc_pages(a, LAB_GFP_NOWAIT, 3);
    void *q1 = lab_room_alloc_pages(r, LAB_GFP_NOWAIT, 3);   /* a refill */
    void *q2 = lab_room_alloc_pages(r, LAB_GFP_NOWAIT, 3);   /* from the stock it filled */
    REQUIRE(p && q1 && q2);
    lab_stats s1 = arena_stats(a);
    uint64_t all = 0;
    for (int i = 0; i < LAB_STEP_COUNT; i++)
        all += s1.alloc_by_step[i] - s0.alloc_by_step[i];
    CHECK_EQ(all, 24);
    CHECK_EQ(s1.alloc_by_step[LAB_STEP_ZONE] - s0.alloc_by_step[LAB_STEP_ZONE], 16);
    CHECK_EQ(s1.alloc_by_step[LAB_STEP_ROOM] - s0.alloc_by_step[LAB_STEP_ROOM], 8);
    lab_free_pages(a, p, 3);
    lab_room_free_pages(r, q1, 3);
    lab_room_free_pages(r, q2, 3);
    CHECK_EQ(arena_stats(a).frees - s1.frees, 24);
    lab_room_destroy(r);
    end_arena(a);
}

/* A room refused under the zone lock (its reserve above what the zone has
 * left) once ids are being taken again takes none: the destroyed room
 * whose id it would have taken stays where it is, and goes to the
 * graveyard once, when a room does take the id.  (It went there at the
 * refusal too; the next room took the same id and put it there again, a
 * list that loops, and the arena freed it twice.) */
static void test_a_refused_room_retires_no_room(void)
{
    lab_arena *a = arena(512, 0);
    lab_room_config rc;
    lab_room_config_init(&rc);
    for (unsigned i = 0; i < MAX_ROOMS + 4; i++) {
        lab_room *r = NULL;
        REQUIRE(lab_room_create(a, &rc, &r) == 0);
        lab_room_destroy(r);
    }
    lab_room_config big = rc;
    big.reserve = 500;   /* no more than the arena, more than it has above min */
    lab_room *r = NULL;
    CHECK_EQ(lab_room_create(a, &big, &r), LAB_ERESERVE);
    CHECK_EQ(arena_stats(a).reserve_pages, 0);   /* what it took went back */
    CHECK_EQ(lab_check(a), 0);                   /* and the dead room counts none */
    CHECK_EQ(lab_room_create(a, &rc, &r), 0);
    lab_room_destroy(r);
    /* each retired room on the graveyard once, none of them in the table */
    size_t n = 0;
    for (struct lab_room *g = a->graveyard; g && n <= 2 * MAX_ROOMS; g = g->graveyard, n++)
        for (uint32_t id = 1; id < MAX_ROOMS; id++)
            CHECK(atomic_load(&a->rooms[id]) != g);
    CHECK(n <= 6);
    end_arena(a);
}

/* A room's quota counts what it holds in its stocks as well as what it has
 * handed out: allocating until it refuses, the two together never pass the
 * quota, for a room of order 0 as for one of orders 0..2, whose order-2
 * stock holds three blocks while order 0 refills. */
static void test_a_rooms_quota_counts_its_stocks(void)
{
    for (unsigned max_order = 0; max_order <= 2; max_order += 2) {
        lab_arena *a = arena(1024, 0);
        lab_room_config rc;
        lab_room_config_init(&rc);
        rc.batch = 16;
        rc.high = 32;
        rc.quota = 40;
        rc.max_order = max_order;
        lab_room *r = NULL;
        REQUIRE(lab_room_create(a, &rc, &r) == 0);
        static void *p[64];
        unsigned order[64];
        size_t n = 0, pages = 0;
        for (int i = 0; i < 64; i++) {   /* n <= i: p[] never overflows */
            unsigned o = max_order && i == 0 ? max_order : 0;   /* one top-order block first */
            void *q = lab_room_alloc_pages(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, o);
            lab_room_stats st = room_stats(r);   /* pages, every order's */
            CHECK(st.stock + st.out + st.reserve <= 40);
            if (q) {
                p[n] = q;
                order[n++] = o;
                pages += (size_t)1 << o;
            }
        }
        CHECK(pages > 0 && pages <= 40);
        while (n) {
            n--;
            lab_room_free_pages(r, p[n], order[n]);
        }
        CHECK_EQ(lab_check(a), 0);
        lab_room_destroy(r);
        end_arena(a);
    }
}

/* A refill never stocks pages from below min: an ATOMIC request gets one
 * emergency page for itself, and a NOWAIT request after it finds none. */
static void test_atomic_refill_below_min_stocks_nothing_for_nowait(void)
{
    lab_arena *a = arena(512, 0);
    lab_room *r = room(a, 32, 128, 0, 0);
    void *held[512];
    size_t n = 0;
    void *p;
    while ((p = lab_alloc_pages(a, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, 0)) != NULL)
        held[n++] = p;
    CHECK_EQ(arena_stats(a).free_pages, 16);    /* down to min */
    lab_result res;
    lab_room_alloc_result(r, LAB_GFP_ATOMIC, &res);
    REQUIRE(res.addr);
    CHECK_EQ(res.step, LAB_STEP_EMERGENCY);
    void *first = res.addr;
    CHECK_EQ(room_stats(r).stock, 0);
    lab_room_alloc_result(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, &res);
    CHECK(res.addr == NULL);
    CHECK_EQ(res.reason, LAB_R_WATERMARK);
    lab_room_alloc_result(r, LAB_GFP_ATOMIC, &res);
    REQUIRE(res.addr);
    lab_room_free(r, res.addr);
    lab_room_free(r, first);
    while (n)
        lab_free_pages(a, held[--n], 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* An idle room's stock and ring are not lost to a blocking request that
 * needs them: direct reclaim takes them (drain_all_pages), never its
 * reserve, and the owner carries on. */
struct kernel_job { lab_arena *a; lab_result res; };
static void *kernel_alloc_thread(void *arg)
{
    struct kernel_job *j = arg;
    lab_alloc_pages_result(j->a, LAB_GFP_KERNEL, 0, &j->res);
    return NULL;
}

/* A 512-page arena with one room of `reserve` pages, for the reclaim
 * tests: blocking requests wait at most 300 ms. */
static lab_room *reclaim_arena(lab_arena **ap, size_t reserve)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = 512 * LAB_PAGE_SIZE;
    cfg.wmark_min = 16;
    cfg.wmark_low = 24;
    cfg.wmark_high = 32;
    cfg.wait_timeout_ms = 300;
    REQUIRE(lab_arena_create(&cfg, ap) == 0);
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.reserve = reserve;
    lab_room *r = NULL;
    REQUIRE(lab_room_create(*ap, &rc, &r) == 0);
    return r;
}

static void reclaim_takes_an_idle_rooms_stock(bool destroy_at_once)
{
    lab_arena *a = NULL;
    lab_room *r = reclaim_arena(&a, 4);
    static void *p[512];
    size_t n = 0;
    for (; n < 100; n++)
        REQUIRE((p[n] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    for (size_t i = 0; i < 90; i++)
        lab_room_free(r, p[--n]);
    for (size_t i = 0; i < 10; i++)
        lab_free_pages(a, p[--n], 0);          /* in its ring */
    size_t stock = room_stats(r).stock;
    CHECK(stock >= 90);
    void *top = p[10];   /* the last one freed to the stock */
    void **held = p;
    size_t nheld = 0;
    void *q;
    while ((q = lab_alloc_pages(a, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, 0)) != NULL)
        held[nheld++] = q;
    /* the owner (this thread) is idle while another thread needs a page */
    struct kernel_job j = { .a = a };
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, kernel_alloc_thread, &j) == 0);
    pthread_join(t, NULL);
    CHECK(j.res.addr != NULL);
    CHECK_EQ(j.res.step, LAB_STEP_RECLAIM);
    /* Everything but the stock's top entry, which a fast pop in flight
     * might be taking (the owner's fast paths mark nothing) */
    lab_room_stats st = room_stats(r);
    CHECK_EQ(st.stock, 1);
    CHECK_EQ(st.in_ring, 0);
    CHECK_EQ(st.reserve, 4);
    CHECK_EQ(st.out, 0);
    CHECK(arena_stats(a).rooms_drained_pages >= stock - 1 + 10);
    CHECK_EQ(lab_check(a), 0);
    if (destroy_at_once) {
        /* destroyed with its stock moved up: only what is left goes back */
        lab_room_destroy(r);
        lab_free_pages(a, j.res.addr, 0);
        while (nheld)
            lab_free_pages(a, held[--nheld], 0);
        end_arena(a);
        return;
    }
    /* and the owner goes on: its next call moves the stock back down,
     * reopens its fast paths and hands out the kept block, the newest one;
     * the pages it has out are counted through all of it */
    void *o = lab_room_alloc(r, LAB_GFP_ATOMIC);
    CHECK(o == top);
    CHECK_EQ(room_stats(r).stock, 0);
    CHECK_EQ(room_stats(r).out, 1);
    CHECK_EQ(lab_check(a), 0);
    lab_room_free(r, o);
    CHECK_EQ(room_stats(r).stock, 1);
    CHECK_EQ(room_stats(r).out, 0);
    CHECK(lab_room_alloc(r, LAB_GFP_ATOMIC) == o);   /* the fast path, from index 0 */
    void *o2 = lab_room_alloc(r, LAB_GFP_ATOMIC);      /* and the stock was empty below it */
    CHECK(o2 != NULL && o2 != o);
    CHECK_EQ(room_stats(r).out, 2);
    CHECK_EQ(lab_check(a), 0);
    lab_room_free(r, o2);
    lab_room_free(r, o);
    CHECK_EQ(lab_check(a), 0);
    lab_free_pages(a, j.res.addr, 0);
    while (nheld)
        lab_free_pages(a, held[--nheld], 0);
    lab_room_destroy(r);
    end_arena(a);
}

static void test_reclaim_takes_an_idle_rooms_stock_but_not_its_reserve(void)
{
    reclaim_takes_an_idle_rooms_stock(false);
}

/* Reclaim of an idle room takes every block of its stock but the top,
 * however few: with two in stock, one goes to the zone.  With nothing
 * below the top and nothing in the lanes or the ring, it takes nothing,
 * and says so: what it reports is what the zone gained. */
static void test_reclaim_takes_even_one_block_below_the_top_and_reports_none_taken_as_none(void)
{
    lab_arena *a = arena(512, 0);
    lab_room *r = room(a, 4, 4, 0, 0);
    if (!r->lanes) {   /* no membarrier: no steal */
        fprintf(stderr, "  (no membarrier here: reclaim asks the owner instead)\n");
        lab_room_destroy(r);
        end_arena(a);
        return;
    }
    void *p[2];
    for (int i = 0; i < 2; i++)
        REQUIRE((p[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    REQUIRE(room_stats(r).stock == 2);   /* a batch of 4, two handed out */
    lab_stats before = arena_stats(a);
    CHECK_EQ(rooms_drain_surplus(a), 1);
    lab_stats after = arena_stats(a);
    CHECK_EQ(after.free_pages, before.free_pages + 1);
    CHECK_EQ(after.rooms_drained_pages, before.rooms_drained_pages + 1);
    CHECK_EQ(room_stats(r).stock, 1);
    CHECK_EQ(rooms_drain_surplus(a), 0);   /* only the top is left */
    before = after;
    after = arena_stats(a);
    CHECK_EQ(after.free_pages, before.free_pages);
    CHECK_EQ(after.rooms_drained_pages, before.rooms_drained_pages);
    CHECK_EQ(room_stats(r).stock, 1);
    CHECK_EQ(lab_check(a), 0);
    for (int i = 0; i < 2; i++)
        lab_room_free(r, p[i]);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* With page hooks (here poisoning), a free of a room block with the wrong
 * order, as another context frees (lab_free_pages), is reported at once
 * and writes nothing: the hooks fill the whole block the caller names,
 * and a larger order reached the next page, still out (filled with 0x6b,
 * and reported only when the owner took the entry back). */
static void test_a_wrong_order_free_of_a_room_block_with_hooks_writes_no_page(void)
{
    static struct misuse_log log;
    lab_arena *a = logged_arena(512, LAB_ARENA_POISON, &log);
    lab_room *r = room(a, 8, 64, 0, 0);
    enum { N = 16 };
    char *p[N];
    for (int i = 0; i < N; i++) {
        REQUIRE((p[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
        memset(p[i], 0x11, LAB_PAGE_SIZE);
    }
    /* a page at an order-1 boundary whose next page is held too */
    char *base = lab_arena_base(a), *head = NULL;
    for (int i = 0; i < N && !head; i++)
        for (int k = 0; k < N && !head; k++)
            if ((size_t)(p[i] - base) % (2 * LAB_PAGE_SIZE) == 0 && p[k] == p[i] + LAB_PAGE_SIZE)
                head = p[i];
    REQUIRE(head != NULL);
    lab_free_pages(a, head, 1);
    CHECK_EQ(atomic_load(&log.count[LAB_EWRONGORDER]), 1);
    CHECK_EQ(atomic_load(&log.total), 1);
    size_t changed = 0;
    for (int i = 0; i < N; i++)
        for (size_t b = 0; b < LAB_PAGE_SIZE; b++)
            changed += p[i][b] != 0x11;
    CHECK_EQ(changed, 0);
    for (int i = 0; i < N; i++)
        lab_room_free(r, p[i]);
    CHECK_EQ(atomic_load(&log.total), 1);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* A steal in progress, as room_steal holds one: its flag set and the fast
 * paths' gates closed (what it would take does not matter here). */
static void steal_begin(lab_room *r)
{
    atomic_store(&r->steal, true);
    atomic_store(&r->alloc_floor, SIZE_MAX);
    atomic_store(&r->free_limit, 0);
}

static void *steal_end_later(void *arg)
{
    sleep_ms(20);
    atomic_store(&((lab_room *)arg)->steal, false);
    return NULL;
}

/* Every page the zone gives a request of `gfp`, into held[]; how many. */
static size_t take_the_zone(lab_arena *a, lab_gfp_t gfp, void **held)
{
    size_t n = 0;
    void *q;
    while ((q = lab_alloc_pages(a, gfp | LAB_GFP_NOWARN, 0)) != NULL)
        held[n++] = q;
    return n;
}

/* The room's last checks, the zone's pages back, the room and the arena
 * gone. */
static void steal_case_end(lab_arena *a, lab_room *r, void **held, size_t nheld)
{
    CHECK_EQ(lab_check(a), 0);
    while (nheld)
        lab_free_pages(a, held[--nheld], 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* n atomic allocations, each served by the room's reserve of n, the zone
 * and the stock having nothing for them. */
static void alloc_the_reserve(lab_room *r, void **p, int n)
{
    for (int i = 0; i < n; i++) {
        lab_result res;
        lab_room_alloc_result(r, LAB_GFP_ATOMIC, &res);
        REQUIRE(res.addr != NULL);
        CHECK_EQ(res.step, LAB_STEP_ROOM_RESERVE);
        p[i] = res.addr;
    }
    CHECK_EQ(room_stats(r).reserve, 0);
}

/* While reclaim holds a room's stocks, the owner's atomic request is
 * served from the room's reserve, which reclaim never takes, once the
 * zone cannot serve it; and the owner's frees meanwhile refill the
 * reserve, not the ring (whose blocks the next steal would send to the
 * zone, the reserve shrinking steal by steal). */
static void test_a_steal_leaves_the_owner_its_reserve(void)
{
    lab_arena *a = NULL;
    lab_room *r = reclaim_arena(&a, 4);
    static void *held[512];
    size_t nheld = take_the_zone(a, LAB_GFP_ATOMIC, held);
    steal_begin(r);
    void *p[4];
    alloc_the_reserve(r, p, 4);
    for (int i = 0; i < 4; i++)
        lab_room_free(r, p[i]);
    lab_room_stats st = room_stats(r);
    CHECK_EQ(st.reserve, 4);
    CHECK_EQ(st.in_ring, 0);
    CHECK_EQ(st.out, 0);
    /* the same by the bulk calls */
    CHECK_EQ(lab_room_alloc_bulk(r, LAB_GFP_ATOMIC, p, 4), 4);
    CHECK_EQ(room_stats(r).reserve, 0);
    lab_room_free_bulk(r, p, 4);
    st = room_stats(r);
    CHECK_EQ(st.reserve, 4);
    CHECK_EQ(st.in_ring, 0);
    CHECK_EQ(st.out, 0);
    atomic_store(&r->steal, false);
    steal_case_end(a, r, held, nheld);
}

/* A reserve that lent its blocks out is refilled by the frees that follow,
 * remote ones too: the owner's take-back takes every entry of a lane (a
 * lane keeps its recent entries while the zone has plenty: the reserve
 * stayed short, and the owner refilled its stock from the zone). */
/* A room whose reserve of 16 lent every block out, to p[0..16), while
 * the zone was taken; the zone has plenty again. */
static lab_room *reserve_lent(lab_arena **a, void **p)
{
    lab_room *r = reclaim_arena(a, 16);
    static void *held[512];
    size_t nheld = take_the_zone(*a, LAB_GFP_ATOMIC, held);
    alloc_the_reserve(r, p, 16);
    while (nheld)
        lab_free_pages(*a, held[--nheld], 0);
    return r;
}

static void test_remote_frees_refill_a_reserve_before_a_lane_keeps_them(void)
{
    lab_arena *a = NULL;
    void *p[16];
    lab_room *r = reserve_lent(&a, p);
    free_from_a_thread(a, p, 16);
    CHECK_EQ(room_stats(r).in_ring, 16);
    void *q = lab_room_alloc(r, LAB_GFP_ATOMIC);
    CHECK(q != NULL);
    lab_room_stats st = room_stats(r);
    CHECK_EQ(st.reserve, 15);   /* all but the block the allocation took */
    CHECK_EQ(st.in_ring, 0);
    if (q)
        lab_room_free(r, q);
    CHECK_EQ(room_stats(r).reserve, 16);
    steal_case_end(a, r, NULL, 0);
}

/* Reclaim cannot take a reserve, nor the remote frees that would refill
 * one: a steal leaves the room as many entries as its reserve lacks, and
 * once another tenant has taken every page of the zone the room still
 * serves its reserve's worth of atomic allocations. */
static void test_a_steal_leaves_the_frees_a_short_reserve_waits_for(void)
{
    lab_arena *a = NULL;
    static void *held[512];
    void *p[20];
    lab_room *r = reserve_lent(&a, p);
    for (int i = 16; i < 20; i++)   /* four more, beyond what the reserve lacks */
        REQUIRE((p[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    free_from_a_thread(a, p, 20);
    CHECK_EQ(room_stats(r).in_ring, 20);
    size_t nheld = take_the_zone(a, LAB_GFP_ATOMIC, held);
    size_t got = rooms_drain_surplus(a);
    if (r->lanes || got) {   /* a steal ran (membarrier) */
        lab_room_stats st = room_stats(r);
        CHECK_EQ(st.in_ring, 16);
        CHECK_EQ(st.reserve, 0);
    }
    nheld += take_the_zone(a, LAB_GFP_ATOMIC, held + nheld);   /* what the steal gave the zone */
    int served = 0;
    void *q[16];
    for (; served < 16 && (q[served] = lab_room_alloc(r, LAB_GFP_ATOMIC | LAB_GFP_NOWARN)) != NULL; served++)
        ;
    CHECK_EQ(served, 16);
    for (int i = 0; i < served; i++)
        lab_room_free(r, q[i]);
    CHECK_EQ(room_stats(r).reserve, 16);
    steal_case_end(a, r, held, nheld);
}

/* Steal after steal on a room whose owner makes blocking requests: a
 * steal leaves a room whose owner is inside a call at once, so the owner,
 * waiting a steal out inside its call, is not kept waiting by the next
 * one (each set `steal` again before it looked, and the owner's waits ran
 * to seconds).  Bounded loosely: a request here takes microseconds. */
static _Atomic int stealing;
static void *steal_loop(void *arg)
{
    while (atomic_load(&stealing))
        rooms_drain_surplus((lab_arena *)arg);
    return NULL;
}

static void test_a_blocking_owner_is_not_kept_waiting_by_steal_after_steal(void)
{
    lab_arena *a = arena(4096, 0);
    lab_room_config rc;
    lab_room_config_init(&rc);
    lab_room *r = NULL;
    REQUIRE(lab_room_create(a, &rc, &r) == 0);
    atomic_store(&stealing, 1);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, steal_loop, a) == 0);
    double worst = 0, end = now_ms() + 2000;
    void *h[64];
    while (now_ms() < end) {
        for (int i = 0; i < 64; i++) {
            double t0 = now_ms();
            h[i] = lab_room_alloc(r, LAB_GFP_KERNEL);
            double took = now_ms() - t0;
            worst = took > worst ? took : worst;
            REQUIRE(h[i] != NULL);
        }
        for (int i = 0; i < 64; i++)
            lab_room_free(r, h[i]);
    }
    atomic_store(&stealing, 0);
    pthread_join(t, NULL);
    CHECK(worst < 200);
    if (worst >= 200)
        fprintf(stderr, "  worst blocking room allocation %.1f ms\n", worst);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* A request that may block waits a steal out, then walks as usual (it
 * used to try the zone once and fail, a KERNEL|NOFAIL one with NULL):
 * here the stock holds blocks, the zone none, and the steal ends 20 ms
 * later, in another thread. */
static void test_a_blocking_room_request_waits_a_steal_out(void)
{
    lab_arena *a = NULL;
    lab_room *r = reclaim_arena(&a, 0);
    void *p = lab_room_alloc(r, LAB_GFP_NOWAIT);
    REQUIRE(p != NULL);
    lab_room_free(r, p);
    CHECK(room_stats(r).stock > 0);
    static void *held[512];
    size_t nheld = take_the_zone(a, LAB_GFP_ATOMIC, held);
    steal_begin(r);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, steal_end_later, r) == 0);
    double t0 = now_ms();
    lab_result res;
    lab_room_alloc_result(r, LAB_GFP_KERNEL | LAB_GFP_NOFAIL, &res);
    double waited = now_ms() - t0;
    pthread_join(t, NULL);
    CHECK(res.addr != NULL);
    CHECK_EQ(res.step, LAB_STEP_ROOM);
    CHECK(waited >= 10);
    if (res.addr)
        lab_room_free(r, res.addr);
    steal_case_end(a, r, held, nheld);
}

/* The same room destroyed right after the steal, its stock still moved up
 * (no owner call in between): the blocks below base went to the zone
 * already and must not go twice. */
static void test_a_room_destroyed_after_a_steal(void)
{
    reclaim_takes_an_idle_rooms_stock(true);
}

/* An idle room whose stock is empty but whose lanes hold its pages, freed
 * by another thread: reclaim takes the lanes too, straight to the zone. */
struct lane_freer { lab_arena *a; void **p; size_t n; };

static void *lane_free_thread(void *arg)
{
    struct lane_freer *x = arg;
    for (size_t i = 0; i < x->n; i++)
        lab_free_pages(x->a, x->p[i], 0);
    return NULL;
}

static void test_reclaim_takes_an_idle_rooms_lanes(void)
{
    lab_arena *a = NULL;
    lab_room *r = reclaim_arena(&a, 0);
    static void *p[512];
    size_t n = 0;
    while (n < 64 || room_stats(r).stock > 0)
        REQUIRE((p[n++] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    CHECK_EQ(room_stats(r).stock, 0);
    struct lane_freer x = { a, p, n };
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, lane_free_thread, &x) == 0);
    pthread_join(t, NULL);
    CHECK_EQ(room_stats(r).in_ring, n);
    static void *held[512];
    size_t nheld = 0;
    void *q;
    while ((q = lab_alloc_pages(a, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, 0)) != NULL)
        held[nheld++] = q;
    struct kernel_job j = { .a = a };
    REQUIRE(pthread_create(&t, NULL, kernel_alloc_thread, &j) == 0);
    pthread_join(t, NULL);
    CHECK(j.res.addr != NULL);
    CHECK_EQ(j.res.step, LAB_STEP_RECLAIM);
    CHECK_EQ(room_stats(r).in_ring, 0);
    CHECK(arena_stats(a).rooms_drained_pages >= n);
    if (j.res.addr)
        lab_free_pages(a, j.res.addr, 0);
    while (nheld)
        lab_free_pages(a, held[--nheld], 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* Steals against an owner that never stops: the owner allocates and frees
 * blocks of orders 0..3 on its fast paths (which mark nothing), order 0
 * also in runs of up to 32 (the bulk calls, which do), one thread
 * steals the room's stocks over and over and writes every page it then
 * gets from the zone, another runs lab_check.  A block the steal took from
 * under a pop in flight would be the owner's and the zone's at once: its
 * pattern breaks, or lab_check or the room's count of pages out says so. */
struct steal_race { lab_arena *a; _Atomic bool stop; _Atomic unsigned long steals, checks, bad_checks, clobbered; };

static void *steal_race_stealer(void *arg)
{
    struct steal_race *x = arg;
    static void *q[256];
    while (!atomic_load(&x->stop)) {
        rooms_drain_surplus(x->a);
        atomic_fetch_add(&x->steals, 1);
        size_t n = 0;
        while (n < 256 && (q[n] = lab_alloc_pages(x->a, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, 0)) != NULL)
            memset(q[n++], 0xee, LAB_PAGE_SIZE);
        for (size_t i = 0; i < n; i++) {
            const unsigned char *c = q[i];
            for (size_t j = 0; j < LAB_PAGE_SIZE; j += 512)
                if (c[j] != 0xee)
                    atomic_fetch_add(&x->clobbered, 1);
            lab_free_pages(x->a, q[i], 0);
        }
    }
    return NULL;
}

static void *steal_race_checker(void *arg)
{
    struct steal_race *x = arg;
    while (!atomic_load(&x->stop)) {
        atomic_fetch_add(&x->checks, 1);
        if (lab_check(x->a) != 0)
            atomic_fetch_add(&x->bad_checks, 1);
    }
    return NULL;
}

static void test_steals_against_a_running_owner(void)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = 8192 * LAB_PAGE_SIZE;
    struct steal_race x = { 0 };
    REQUIRE(lab_arena_create(&cfg, &x.a) == 0);
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.max_order = 3;
    lab_room *r = NULL;
    REQUIRE(lab_room_create(x.a, &rc, &r) == 0);
    pthread_t ts, tc;
    REQUIRE(pthread_create(&ts, NULL, steal_race_stealer, &x) == 0);
    REQUIRE(pthread_create(&tc, NULL, steal_race_checker, &x) == 0);
    enum { K = 64 };
    static void *held[4][K];
    unsigned nh[4] = { 0 }, seed = test_seed();
    unsigned long corrupt = 0;
    double end = now_ms() + 1500;
    while (now_ms() < end) {
        for (int it = 0; it < 10000; it++) {
            seed = seed * 1103515245u + 12345u;
            unsigned o = (seed >> 16) & 3;
            size_t bytes = (size_t)LAB_PAGE_SIZE << o;
            if (o == 0 && ((seed >> 22) & 3) == 0) {   /* order 0 in runs: the bulk calls */
                size_t k = (seed >> 24) % 33;
                if ((seed >> 20) & 1) {
                    if (k > K - nh[0])
                        k = K - nh[0];
                    size_t got = lab_room_alloc_bulk(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, held[0] + nh[0], k);
                    for (size_t i = 0; i < got; i++)
                        memset(held[0][nh[0]++], 1, LAB_PAGE_SIZE);
                } else {
                    if (k > nh[0])
                        k = nh[0];
                    nh[0] -= (unsigned)k;
                    for (size_t i = 0; i < k; i++)
                        for (size_t j = 0; j < LAB_PAGE_SIZE; j += 256)
                            corrupt += ((unsigned char *)held[0][nh[0] + i])[j] != 1;
                    lab_room_free_bulk(r, held[0] + nh[0], k);
                }
                continue;
            }
            if (((seed >> 20) & 1) && nh[o] < K) {
                unsigned char *p = lab_room_alloc_pages(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, o);
                if (p) {
                    memset(p, (int)o + 1, bytes);
                    held[o][nh[o]++] = p;
                }
            } else if (nh[o]) {
                unsigned char *p = held[o][--nh[o]];
                for (size_t j = 0; j < bytes; j += 256)
                    corrupt += p[j] != o + 1;
                lab_room_free_pages(r, p, o);
            }
        }
    }
    atomic_store(&x.stop, true);
    pthread_join(ts, NULL);
    pthread_join(tc, NULL);
    /* The owner's frees made while a steal held its side went through its
     * ring, and count as out until taken back: one more steal, the owner
     * idle, takes them. */
    for (int k = 0; k < 16 && room_stats(r).in_ring; k++)
        rooms_drain_surplus(x.a);
    CHECK_EQ(room_stats(r).in_ring, 0);
    size_t out = 0;
    for (unsigned o = 0; o < 4; o++)
        out += (size_t)nh[o] << o;
    CHECK_EQ(corrupt, 0);
    CHECK_EQ(atomic_load(&x.clobbered), 0);
    CHECK_EQ(atomic_load(&x.bad_checks), 0);
    CHECK_EQ(room_stats(r).out, out);
    CHECK(atomic_load(&x.steals) > 0 && atomic_load(&x.checks) > 0);
    for (unsigned o = 0; o < 4; o++)
        while (nh[o])
            lab_room_free_pages(r, held[o][--nh[o]], o);
    lab_room_destroy(r);
    end_arena(x.a);
}

/* Destroy against a steal of the same room: a steal that looked at `dead`
 * before destroy set it goes on taking the stocks and the ring, so destroy
 * waits until `steal` is clear before it takes them itself (else a block
 * would reach the zone twice).  Here the steal in flight is this thread
 * holding `steal` set, as room_steal does between its look at `dead` and
 * its end. */
struct destroyer { lab_room *r; _Atomic bool done; };

static void *destroy_thread(void *arg)
{
    struct destroyer *d = arg;
    lab_room_destroy(d->r);
    atomic_store(&d->done, true);
    return NULL;
}

static void test_destroy_waits_out_a_steal_in_flight(void)
{
    lab_arena *a = NULL;
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = 256 * LAB_PAGE_SIZE;
    REQUIRE(lab_arena_create(&cfg, &a) == 0);
    lab_room_config rc;
    lab_room_config_init(&rc);
    lab_room *r = NULL;
    REQUIRE(lab_room_create(a, &rc, &r) == 0);
    void *p[16];
    for (int i = 0; i < 16; i++)
        REQUIRE((p[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    for (int i = 0; i < 16; i++)
        lab_room_free(r, p[i]);
    size_t stock = room_stats(r).stock;
    CHECK(stock >= 16);
    atomic_store(&r->steal, true);
    struct destroyer d = { .r = r };
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, destroy_thread, &d) == 0);
    struct timespec nap = { 0, 50 * 1000 * 1000 };
    nanosleep(&nap, NULL);
    CHECK(!atomic_load(&d.done));            /* waiting for the steal */
    CHECK_EQ(room_stats(r).stock, stock);    /* and the stock untouched meanwhile */
    atomic_store(&r->steal, false);
    pthread_join(t, NULL);
    CHECK(atomic_load(&d.done));
    CHECK_EQ(room_stats(r).stock, 0);
    end_arena(a);
}

/* Page hooks take every room allocation off the fast path, a request with
 * no flag at all included: with LAB_ARENA_PROTECT_FREE a page from the
 * stock must come back writable. */
static void test_a_hooked_room_serves_even_a_flagless_request_through_its_hooks(void)
{
    lab_arena *a = arena(256, LAB_ARENA_PROTECT_FREE);
    lab_room *r = room(a, 4, 16, 0, 0);
    void *p = lab_room_alloc(r, LAB_GFP_NOWAIT);
    REQUIRE(p);
    lab_room_free(r, p);                 /* to the stock, protected */
    for (int i = 0; i < 8; i++) {
        char *q = lab_room_alloc(r, 0);  /* no flag: must still unprotect */
        REQUIRE(q);
        q[0] = 1;
        q[LAB_PAGE_SIZE - 1] = 2;
        lab_room_free(r, q);
    }
    lab_room_destroy(r);
    end_arena(a);
}

/* A room whose failures are expected reports none, and still counts them. */
static void count_reports(void *ctx, const char *msg, size_t len)
{
    (void)msg;
    (void)len;
    atomic_fetch_add((atomic_int *)ctx, 1);
}

static void test_a_nowarn_room_counts_its_failures_without_reporting_them(void)
{
    lab_arena *a = arena(512, 0);
    static atomic_int reports;
    atomic_store(&reports, 0);
    lab_set_log_hook(a, count_reports, &reports);
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.quota = 4;
    rc.batch = 4;
    lab_room *quiet = NULL, *loud = NULL;
    rc.flags = LAB_ROOM_NOWARN;
    REQUIRE(lab_room_create(a, &rc, &quiet) == 0);
    rc.flags = 0;
    REQUIRE(lab_room_create(a, &rc, &loud) == 0);
    rc.flags = 1u << 7;
    lab_room *bad = NULL;
    CHECK_EQ(lab_room_create(a, &rc, &bad), LAB_EFLAGS);
    void *p[8];
    CHECK_EQ(lab_room_alloc_bulk(quiet, LAB_GFP_ATOMIC, p, 8), 4);
    CHECK(lab_room_alloc(quiet, LAB_GFP_ATOMIC) == NULL);
    CHECK_EQ(room_stats(quiet).fail_by_reason[LAB_R_QUOTA], 2);
    CHECK_EQ(atomic_load(&reports), 0);
    CHECK_EQ(lab_room_alloc_bulk(loud, LAB_GFP_ATOMIC, p + 4, 4), 4);
    CHECK(lab_room_alloc(loud, LAB_GFP_ATOMIC) == NULL);
    CHECK_EQ(atomic_load(&reports), 1);
    lab_free_pages_bulk(a, p, 8, 0);
    lab_room_destroy(quiet);
    lab_room_destroy(loud);
    end_arena(a);
}

/* A destroy racing remote frees: every page comes home and the dead room's
 * ring ends empty.  Late freers (they find the room dead) each put a
 * tombstone in the ring and empty it; one that finds another emptying it
 * leaves its slot to that one, which looks at the ring again after letting
 * go.  Rounds with the destroy at different points of the frees. */
#define RACERS 3
#define RACE_PAGES 96
struct race { lab_arena *a; void *pages[RACERS][RACE_PAGES]; atomic_int go; atomic_int freed; };
struct racer { struct race *race; int id; };
static void *race_freer(void *arg)
{
    struct racer *me = arg;
    struct race *rc = me->race;
    while (!atomic_load(&rc->go))
        ;
    for (int i = 0; i < RACE_PAGES; i++) {
        lab_free_pages(rc->a, rc->pages[me->id][i], 0);
        atomic_fetch_add(&rc->freed, 1);
    }
    return NULL;
}

static void test_a_destroy_racing_remote_frees_leaves_nothing_in_the_ring(void)
{
    static struct race rc;
    rc.a = arena(2048, 0);
#ifdef LAB_TEST_SLOW
    const int rounds = 200;
#else
    const int rounds = 1000;
#endif
    int round;
    for (round = 0; round < rounds; round++) {
        lab_room *r = room(rc.a, 32, 128, 0, 0);
        for (int t = 0; t < RACERS; t++)
            for (int i = 0; i < RACE_PAGES; i++)
                REQUIRE((rc.pages[t][i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
        atomic_store(&rc.go, 0);
        atomic_store(&rc.freed, 0);
        pthread_t th[RACERS];
        struct racer who[RACERS];
        for (int t = 0; t < RACERS; t++) {
            who[t] = (struct racer){ &rc, t };
            REQUIRE(pthread_create(&th[t], NULL, race_freer, &who[t]) == 0);
        }
        int at = (round % 8) * RACERS * RACE_PAGES / 8;   /* destroy after this many frees */
        atomic_store(&rc.go, 1);
        while (atomic_load(&rc.freed) < at)
            ;
        lab_room_destroy(r);
        for (int t = 0; t < RACERS; t++)
            pthread_join(th[t], NULL);
        lab_room_stats rs = room_stats(r);
        lab_stats s = arena_stats(rc.a);
        if (rs.in_ring != 0 || s.free_pages != s.total_pages || s.deferred_pages != 0) {
            fprintf(stderr, "  round %d (destroy after %d frees): %zu slots left in the dead room's ring, "
                            "free %zu of %zu, deferred %zu\n", round, at, rs.in_ring, s.free_pages, s.total_pages,
                    s.deferred_pages);
            break;
        }
    }
    CHECK_EQ(round, rounds);
    end_arena(rc.a);
}

/* Single frees go through the freer's own lane of the ring (no locked
 * instruction): a room has ROOM_LANES (4) of them, claimed for good by the
 * first threads that free its blocks.  Eight freers: the first four get
 * lanes, the others use the shared ring, and every page comes home either
 * way, none twice. */
static int cmp_ptr(const void *x, const void *y)
{
    uintptr_t a = (uintptr_t)*(void *const *)x, b = (uintptr_t)*(void *const *)y;
    return a < b ? -1 : a > b;
}

/* How many of p[0..n) repeat one before them (sorts p). */
static size_t repeats(void **p, size_t n)
{
    qsort(p, n, sizeof(p[0]), cmp_ptr);
    size_t k = 0;
    for (size_t i = 1; i < n; i++)
        k += p[i] == p[i - 1];
    return k;
}

#define LANE_FREERS 8
#define LANE_PAGES 64
/* Frees pages[0..n) one at a time, with lab_free_pages (through this
 * thread's lane), once *go is set. */
static void test_more_freers_than_lanes_all_come_home(void)
{
    lab_arena *a = arena(4096, 0);
    lab_room *r = room(a, 32, 1024, 0, 1024);
    static void *p[LANE_FREERS][LANE_PAGES];
    for (int t = 0; t < LANE_FREERS; t++)
        for (int i = 0; i < LANE_PAGES; i++)
            REQUIRE((p[t][i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    atomic_int go = 0;
    pthread_t th[LANE_FREERS];
    struct lane_job job[LANE_FREERS];
    for (int t = 0; t < LANE_FREERS; t++) {
        job[t] = (struct lane_job){ a, p[t], LANE_PAGES, &go };
        REQUIRE(pthread_create(&th[t], NULL, lane_freer, &job[t]) == 0);
    }
    atomic_store(&go, 1);
    for (int t = 0; t < LANE_FREERS; t++)
        pthread_join(th[t], NULL);
    lab_room_stats st = room_stats(r);
    CHECK_EQ(st.in_ring, LANE_FREERS * LANE_PAGES);
    CHECK_EQ(st.out, LANE_FREERS * LANE_PAGES);
    /* the owner takes them all back, each once: allocate them all again */
    static void *q[LANE_FREERS * LANE_PAGES];
    for (int i = 0; i < LANE_FREERS * LANE_PAGES; i++)
        REQUIRE((q[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    st = room_stats(r);
    CHECK_EQ(st.in_ring, 0);
    CHECK_EQ(st.frees_remote, LANE_FREERS * LANE_PAGES);
    qsort(q, LANE_FREERS * LANE_PAGES, sizeof(void *), cmp_ptr);
    for (int i = 1; i < LANE_FREERS * LANE_PAGES; i++)
        CHECK(q[i] != q[i - 1]);
    for (int i = 0; i < LANE_FREERS * LANE_PAGES; i++)
        lab_room_free(r, q[i]);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* A lane holds 8192 entries; a freer whose lane is full while the owner
 * takes nothing back goes on through the shared ring, and the owner finds
 * both. */
static void test_a_full_lane_spills_into_the_ring(void)
{
    enum { N = 8192 + 40 };
    lab_arena *a = arena(16384, 0);
    lab_room *r = room(a, 32, 1024, 0, 1024);
    static void *p[N];
    for (int i = 0; i < N; i++)
        REQUIRE((p[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    for (int i = 0; i < N; i++)
        lab_free_pages(a, p[i], 0);
    lab_room_stats st = room_stats(r);
    CHECK_EQ(st.in_ring, N);
    CHECK_EQ(arena_stats(a).deferred_pages, N);
    for (int i = 0; i < N; i++)
        REQUIRE((p[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    st = room_stats(r);
    CHECK_EQ(st.in_ring, 0);
    CHECK_EQ(st.frees_remote, N);
    for (int i = 0; i < N; i++)
        lab_room_free(r, p[i]);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* A freer's lane wraps around its slots, and a bulk free's run may
 * straddle the wrap.  One thread frees what the owner hands it, runs of 1
 * to 33 pages (so that runs start anywhere), the owner taking them back as
 * it goes; after three laps of the lane every page is back once. */
struct lap_job { lab_arena *a; void *pages[64]; _Atomic size_t n; _Atomic bool stop; };

static void *lap_freer(void *arg)
{
    struct lap_job *j = arg;
    for (;;) {
        size_t n;
        while ((n = atomic_load(&j->n)) == 0)
            if (atomic_load(&j->stop))
                return NULL;
        if (n == 1)
            lab_free_pages(j->a, j->pages[0], 0);
        else
            lab_free_pages_bulk(j->a, j->pages, n, 0);
        atomic_store(&j->n, 0);
    }
}

static void test_bulk_frees_straddle_the_end_of_a_lane(void)
{
    lab_arena *a = arena(4096, 0);
    lab_room *r = room(a, 32, 256, 0, 1024);
    static struct lap_job j;
    memset(&j, 0, sizeof(j));
    j.a = a;
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, lap_freer, &j) == 0);
    unsigned seed = test_seed();
    size_t freed = 0;
    while (freed < 3 * 8192) {
        seed = seed * 1103515245u + 12345u;
        size_t k = 1 + (seed >> 16) % 33;
        for (size_t i = 0; i < k; i++)
            REQUIRE((j.pages[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
        atomic_store(&j.n, k);
        while (atomic_load(&j.n))
            ;
        freed += k;
    }
    atomic_store(&j.stop, true);
    pthread_join(t, NULL);
    lab_room_stats st = room_stats(r);
    CHECK_EQ(st.frees_remote + st.in_ring, freed);   /* pages, each order 0 */
    CHECK_EQ(st.out, st.in_ring);
    /* everything back, each page once */
    size_t n = st.in_ring + st.stock;
    static void *back[4096];
    REQUIRE(n <= 4096);
    CHECK_EQ(lab_room_alloc_bulk(r, LAB_GFP_NOWAIT, back, n), n);
    qsort(back, n, sizeof(back[0]), cmp_ptr);
    for (size_t i = 1; i < n; i++)
        CHECK(back[i] != back[i - 1]);
    CHECK_EQ(room_stats(r).in_ring, 0);
    lab_room_free_bulk(r, back, n);
    CHECK_EQ(room_stats(r).out, 0);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* ---- lanes keep their freer's recent frees (the default) -------------- */


/* n pages of room r handed to another thread, which frees them: they wait
 * in its lane. */
static void hand_off(lab_arena *a, lab_room *r, void **p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        REQUIRE((p[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    size_t before = room_stats(r).in_ring;
    free_from_a_thread(a, p, n);
    CHECK_EQ(room_stats(r).in_ring, before + n);
}

/* Reclaim's steal, parked between its read of the ring's tail and its
 * take (the pause point stands for a preemption there), while destroy
 * waits for it and a late freer, finding the room dead, flushes the ring
 * (ring_flush_dead): the two must not both consume the ring.  With both
 * consuming, the steal's tail went back behind the slots the flush had
 * freed, and destroy waited for ever for them to be published.  The late
 * freer's tombstone, which the steal may find, is skipped, not reported. */
/* The pause hook of these tests: a thread parks at the site it names in
 * park_site (none by default) until park_go, having said so in parked. */
static _Thread_local int park_site = -1;
static _Atomic int parked, park_go;
static void park_here(enum pause_site site)
{
    if ((int)site != park_site)
        return;
    atomic_store(&parked, 1);
    for (int i = 0; i < 10000 && !atomic_load(&park_go); i++)
        usleep(1000);
}
static void *steal_thread(void *arg)
{
    park_site = PP_STEAL_RING;
    rooms_drain_surplus(arg);
    return NULL;
}
static void *hold_a_lane(void *arg)   /* claims a lane with one free, keeps it while alive */
{
    struct lane_job *j = arg;
    lab_free_pages(j->a, j->pages[0], 0);
    while (!atomic_load(j->go))
        usleep(1000);
    return NULL;
}
static bool wait_until(_Atomic int *flag, int ms)
{
    for (int i = 0; i < ms && !atomic_load(flag); i++)
        usleep(1000);
    return atomic_load(flag);
}

/* A block freed twice by another context, in a poisoned arena (so that
 * its free looks at the block's state before it sends it home), parked at
 * PP_FREE_CLAIM after that look found the block in its room's stock, while
 * the owner hands it out again: the late free is reported and leaves the
 * block to its new holder, whose free then takes it home.  Claimed there,
 * the block went home in a state the take-back refuses (a free of a room
 * block claims nothing unless the arena is strict): refused and dropped,
 * the holder's free reported as a double free, and the page lost.  In a
 * strict arena (debug builds) the claim is the arbiter: the late free
 * wins it, the holder's free is reported, and no page is lost either. */
struct late_free { lab_arena *a; void *p; };
static void *late_freer(void *arg)
{
    struct late_free *lf = arg;
    park_site = PP_FREE_CLAIM;
    lab_free_pages(lf->a, lf->p, 0);
    return NULL;
}

static void test_a_late_double_free_racing_a_new_hand_out_loses_no_page(void)
{
    static struct misuse_log log;
    lab_arena *a = logged_arena(512, LAB_ARENA_POISON, &log);
    lab_room *r = room(a, 8, 32, 0, 0);
    void *p = lab_room_alloc(r, LAB_GFP_NOWAIT);
    REQUIRE(p);
    lab_room_free(r, p);                      /* in the stock, on top */
    atomic_store(&parked, 0);
    atomic_store(&park_go, 0);
    atomic_store(&pause_hook, park_here);
    static struct late_free lf;
    lf = (struct late_free){ a, p };
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, late_freer, &lf) == 0);
    CHECK(wait_until(&parked, 3000));
    void *q = lab_room_alloc(r, LAB_GFP_NOWAIT);   /* out again */
    CHECK(q == p);
    atomic_store(&park_go, 1);
    pthread_join(t, NULL);
    atomic_store(&pause_hook, NULL);
#ifdef LAB_DEBUG
    /* strict (debug builds): the late free's claim wins, and the holder's
     * free is the one reported */
    CHECK_EQ(atomic_load(&log.total), 0);
    lab_room_free(r, q);
#else
    CHECK_EQ(atomic_load(&log.total), 1);
    lab_room_free(r, q);                      /* the holder's free: not misuse */
#endif
    CHECK_EQ(atomic_load(&log.count[LAB_EDOUBLEFREE]), 1);
    CHECK_EQ(atomic_load(&log.total), 1);
    /* everything the room holds, its ring taken back on the way */
    static void *held[512];
    size_t n = 0;
    while (n < 512 && (held[n] = lab_room_alloc(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN)) != NULL)
        n++;
    for (size_t i = 0; i < n; i++)
        lab_room_free(r, held[i]);
    CHECK_EQ(atomic_load(&log.total), 1);
    lab_room_destroy(r);
    end_arena(a);
}

/* A room whose every lane a live thread holds, with three blocks of other
 * threads in its ring, and one more block out; reclaim's steal of it
 * started on its own thread and parked at its pause point. */
struct parked_steal {
    lab_arena *a;
    lab_room *r;
    void *p[ROOM_LANES + 4];
    pthread_t holder[ROOM_LANES], stealer;
    struct lane_job hj[ROOM_LANES];
    atomic_int holders_go;
    int nh;
};

static bool parked_steal_begin(struct parked_steal *ps, struct misuse_log *log, bool flush_under_way)
{
    ps->a = logged_arena(512, 0, log);
    ps->r = room(ps->a, 32, 128, 0, 0);
    for (int i = 0; i < ROOM_LANES + 4; i++)
        REQUIRE((ps->p[i] = lab_room_alloc(ps->r, LAB_GFP_NOWAIT)) != NULL);
    atomic_store(&ps->holders_go, 0);
    ps->nh = ps->r->lanes ? ROOM_LANES : 0;
    for (int k = 0; k < ps->nh; k++) {
        ps->hj[k] = (struct lane_job){ ps->a, &ps->p[k], 1, &ps->holders_go };
        REQUIRE(pthread_create(&ps->holder[k], NULL, hold_a_lane, &ps->hj[k]) == 0);
    }
    for (int k = 0; k < ps->nh; k++)
        while (room_stats(ps->r).in_ring < (size_t)k + 1)
            usleep(1000);
    uint32_t head = atomic_load(&ps->r->ring_head);
    free_from_a_thread(ps->a, &ps->p[ROOM_LANES], 3);
    REQUIRE(atomic_load(&ps->r->ring_head) == head + 3);
    if (flush_under_way)
        atomic_store(&ps->r->flush_busy, 1);
    atomic_store(&parked, 0);
    atomic_store(&park_go, 0);
    atomic_store(&pause_hook, park_here);
    REQUIRE(pthread_create(&ps->stealer, NULL, steal_thread, ps->a) == 0);
    if (wait_until(&parked, 3000))
        return true;
    /* no steal here (no membarrier): nothing to race */
    atomic_store(&pause_hook, NULL);
    pthread_join(ps->stealer, NULL);
    atomic_store(&ps->r->flush_busy, 0);
    atomic_store(&ps->holders_go, 1);
    for (int k = 0; k < ps->nh; k++)
        pthread_join(ps->holder[k], NULL);
    free_from_a_thread(ps->a, &ps->p[ROOM_LANES + 3], 1);
    lab_room_destroy(ps->r);
    lab_arena_destroy(ps->a);
    return false;
}

static void parked_steal_go(struct parked_steal *ps)
{
    atomic_store(&park_go, 1);
    pthread_join(ps->stealer, NULL);
    atomic_store(&pause_hook, NULL);
}

static void parked_steal_end(struct parked_steal *ps)
{
    atomic_store(&ps->holders_go, 1);
    for (int k = 0; k < ps->nh; k++)
        pthread_join(ps->holder[k], NULL);
    end_arena(ps->a);
}

static void test_a_steal_and_a_late_freers_flush_never_both_take_the_ring(void)
{
    static struct misuse_log log;
    static struct parked_steal ps;
    if (!parked_steal_begin(&ps, &log, false))
        SKIP("reclaim cannot steal here (no membarrier)");
    lab_room *r = ps.r;
    struct destroyer d = { .r = r };
    pthread_t dt;
    REQUIRE(pthread_create(&dt, NULL, destroy_thread, &d) == 0);
    for (int i = 0; i < 3000 && !atomic_load(&r->dead); i++)
        usleep(1000);
    REQUIRE(atomic_load(&r->dead));
    free_from_a_thread(ps.a, &ps.p[ROOM_LANES + 3], 1);   /* finds the room dead */
    parked_steal_go(&ps);
    for (int i = 0; i < 5000 && !atomic_load(&d.done); i++)
        usleep(1000);
    if (!atomic_load(&d.done)) {
        fprintf(stderr, "%s:%d: lab_room_destroy still waits 5 s on (ring tail %u, head %u)\n", __FILE__, __LINE__,
                atomic_load(&r->ring_tail), atomic_load(&r->ring_head));
        _exit(1);
    }
    pthread_join(dt, NULL);
    CHECK_EQ(atomic_load(&r->ring_tail), atomic_load(&r->ring_head));
    CHECK_EQ(atomic_load(&log.total), 0);
    parked_steal_end(&ps);
}

/* The other order: a flush holds the ring when the steal begins.  The
 * steal leaves the ring to it, its tail included: a tail written back
 * after the flush moved it would leave the ring's consumer behind slots
 * already freed. */
static void test_a_steal_leaves_the_ring_to_a_flush_under_way(void)
{
    static struct misuse_log log;
    static struct parked_steal ps;
    if (!parked_steal_begin(&ps, &log, true))
        SKIP("reclaim cannot steal here (no membarrier)");
    lab_room *r = ps.r;
    atomic_store(&r->flush_busy, 0);
    ring_flush_dead(ps.a, r, false);   /* the flush the flag stood for */
    CHECK_EQ(atomic_load(&r->ring_tail), atomic_load(&r->ring_head));
    parked_steal_go(&ps);
    uint32_t tail = atomic_load(&r->ring_tail), head = atomic_load(&r->ring_head);
    CHECK_EQ(tail, head);
    if (tail != head) {
        fprintf(stderr, "%s:%d: the ring's tail went back: destroy would wait for ever\n", __FILE__, __LINE__);
        _exit(1);
    }
    free_from_a_thread(ps.a, &ps.p[ROOM_LANES + 3], 1);
    lab_room_destroy(r);
    CHECK_EQ(atomic_load(&log.total), 0);
    parked_steal_end(&ps);
}

/* Reclaim meets a room that another reclaim is stealing from (parked
 * inside its take): it leaves the room alone and reports nothing taken,
 * the pages the other steal takes being that steal's to report. */
static void test_a_steal_leaves_a_room_another_steal_holds_and_reports_nothing(void)
{
    static struct misuse_log log;
    static struct parked_steal ps;
    if (!parked_steal_begin(&ps, &log, false))
        SKIP("reclaim cannot steal here (no membarrier)");
    lab_room *r = ps.r;
    REQUIRE(atomic_load(&r->steal));
    lab_stats before = arena_stats(ps.a);
    CHECK_EQ(rooms_drain_surplus(ps.a), 0);
    lab_stats after = arena_stats(ps.a);
    CHECK_EQ(after.rooms_drained_pages, before.rooms_drained_pages);
    CHECK_EQ(after.free_pages, before.free_pages);
    parked_steal_go(&ps);
    CHECK(arena_stats(ps.a).rooms_drained_pages > before.rooms_drained_pages);   /* the parked one's */
    CHECK_EQ(lab_check(ps.a), 0);
    free_from_a_thread(ps.a, &ps.p[ROOM_LANES + 3], 1);
    lab_room_destroy(r);
    CHECK_EQ(atomic_load(&log.total), 0);
    parked_steal_end(&ps);
}

/* A room destroyed by a thread the kernel refuses membarrier to (a seccomp
 * filter installed after set-up, a sandbox): destroy waited for ever for
 * the barrier; it now gives up after a while, the lanes' entries all
 * going to the zone. */
struct no_barrier { lab_room *r; _Atomic int done, filtered; };
static void *destroy_without_membarrier(void *arg)
{
    struct no_barrier *nb = arg;
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_membarrier, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0)
        atomic_store(&nb->filtered, 1);
    lab_room_destroy(nb->r);
    atomic_store(&nb->done, 1);
    return NULL;
}

static void test_destroy_without_membarrier_ends_and_loses_nothing(void)
{
    lab_arena *a = arena(512, 0);
    lab_room *r = room(a, 32, 128, 0, 0);
    if (!r->lanes) {
        lab_room_destroy(r);
        end_arena(a);
        SKIP("no lanes here (no membarrier at all)");
    }
    void *p[8];
    hand_off(a, r, p, 8);   /* in a lane */
    struct no_barrier nb = { .r = r };
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, destroy_without_membarrier, &nb) == 0);
    for (int i = 0; i < 5000 && !atomic_load(&nb.done); i++)
        usleep(1000);
    if (!atomic_load(&nb.done)) {
        fprintf(stderr, "%s:%d: lab_room_destroy without membarrier still waits after 5 s\n", __FILE__, __LINE__);
        _exit(1);
    }
    pthread_join(t, NULL);
    if (!atomic_load(&nb.filtered))
        fprintf(stderr, "  (no seccomp filter here: destroyed with the barrier)\n");
    end_arena(a);
}

/* Blocks taken back while their stock is full go on to the zone, in runs
 * of up to 32 blocks (one zone lock each), and every page stays counted.
 * An order-1 request finds its own stock empty and takes back the order-0
 * pages another thread freed, while the order-0 stock is at its high. */
static void test_a_take_back_into_a_full_stock_goes_to_the_zone_in_runs(void)
{
    lab_arena *a = arena(4096, 0);
    lab_room *r = room(a, 8, 64, 1, 0);
    enum { FAR = 40 };
    void *far[FAR], *mine[128];
    for (size_t i = 0; i < FAR; i++)
        REQUIRE((far[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    size_t n = 0;
    while (room_stats(r).stock + n < 64)
        REQUIRE((mine[n++] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    while (n)
        lab_room_free(r, mine[--n]);
    free_from_a_thread(a, far, FAR);
    lab_room_stats st = room_stats(r);
    REQUIRE(st.stock == 64 && st.in_ring == FAR);
    size_t free_before = arena_stats(a).free_pages;
    void *b = lab_room_alloc_pages(r, LAB_GFP_NOWAIT, 1);
    REQUIRE(b);
    lab_room_stats now = room_stats(r);
    CHECK_EQ(now.in_ring, 0);
    CHECK_EQ(now.frees_remote, st.frees_remote + FAR);
    CHECK_EQ(now.drains, st.drains + 2);              /* 40 blocks: a run of 32 and one of 8 */
    /* the 40 went to the zone; the order-1 stock was refilled from it, and
     * b (2 pages) handed out */
    CHECK_EQ(arena_stats(a).free_pages + (now.stock - 64) + 2, free_before + FAR);
    CHECK_EQ(lab_check(a), 0);
    lab_room_free_pages(r, b, 1);
    lab_room_destroy(r);
    end_arena(a);
}

/* The owner's last look at a lane's head (what a bulk allocation saw
 * there) stays at or ahead of the lane's tail while single allocations'
 * take-backs (or windows) move the tail on: a look left behind would,
 * 2^32 entries on, pass for one ahead of the tail, and a bulk allocation
 * would hand out slots of an older lap unpublished in this one. */
static void test_a_lanes_last_look_at_head_moves_on_with_its_tail(void)
{
    static struct misuse_log log;
    lab_arena *a = logged_arena(4096, 0, &log);
    lab_room *r = room(a, 8, 64, 0, 0);
    if (!r->lanes) {   /* no membarrier: no lanes */
        fprintf(stderr, "  (no lanes here)\n");
        lab_room_destroy(r);
        end_arena(a);
        return;
    }
    enum { N = 40, B = 8 };
    void *p[N], *again[B], *u[N], *mine[128];
    size_t n = 0;
    for (int i = 0; i < N; i++)
        REQUIRE((p[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    while (room_stats(r).stock)
        REQUIRE(n < 128 && (mine[n++] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    for (int i = 0; i < N; i++)
        lab_free_pages(a, p[i], 0);   /* this thread's lane */
    struct room_lane *l = NULL;
    for (unsigned k = 0; k < ROOM_LANES && !l; k++)
        if (atomic_load(&r->lanes[k].pen) == N)
            l = &r->lanes[k];
    REQUIRE(l);
    /* a bulk allocation looks at head (40) and takes 8; single ones take
     * the other 32, and the owner's free ends the window they came from */
    CHECK_EQ(lab_room_alloc_bulk(r, LAB_GFP_NOWAIT, p, B), B);
    CHECK_EQ(atomic_load(&l->seen), N);
    for (int i = B; i < N; i++)
        REQUIRE((p[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    for (int i = 0; i < B; i++)
        lab_room_free(r, p[i]);
    CHECK_EQ(atomic_load(&l->tail), N);
    for (int i = 0; i < B; i++)
        REQUIRE((again[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    CHECK_EQ(room_stats(r).stock, 0);
    /* 40 more through the lane, taken by single allocations alone */
    for (int i = B; i < N; i++)
        lab_free_pages(a, p[i], 0);
    for (int i = 0; i < B; i++)
        lab_free_pages(a, again[i], 0);
    for (int i = 0; i < N; i++)
        REQUIRE((u[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    lab_room_free(r, u[0]);
    CHECK_EQ(atomic_load(&l->tail), 2 * N);
    CHECK((int32_t)(atomic_load(&l->seen) - atomic_load(&l->tail)) >= 0);
    CHECK(atomic_load(&l->seen) - atomic_load(&l->tail) <= LANE_SLOTS);
    for (int i = 1; i < N; i++)
        lab_room_free(r, u[i]);
    while (n)
        lab_room_free(r, mine[--n]);
    CHECK_EQ(atomic_load(&log.total), 0);
    CHECK_EQ(room_stats(r).out, 0);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* A bulk allocation whose stock is empty hands out what another thread
 * freed straight from its lane, oldest first: nothing passes through the
 * stock, every count moves as for a take-back, and the pages are the
 * caller's (it frees them as the owner, with no complaint). */
static void test_a_bulk_allocation_hands_out_lane_frees_without_the_stock(void)
{
    static struct misuse_log log;
    lab_arena *a = logged_arena(4096, 0, &log);
    lab_room *r = room(a, 8, 64, 0, 0);
    enum { N = 40 };
    void *far[N], *mine[128], *got[N], *held = lab_room_alloc(r, LAB_GFP_NOWAIT);
    REQUIRE(held);
    for (size_t i = 0; i < N; i++)
        REQUIRE((far[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    size_t n = 0;
    while (room_stats(r).stock)
        REQUIRE((mine[n++] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    free_from_a_thread(a, far, N);   /* five whole lines */
    lab_room_stats st = room_stats(r);
    REQUIRE(st.stock == 0 && st.in_ring == N);
    /* Beyond pen a slot that names a page handed out (as an old lap's
     * would): the bulk call takes what head says, never beyond it. */
    struct room_lane *l = NULL;
    for (unsigned k = 0; k < ROOM_LANES && !l; k++)
        if (atomic_load(&r->lanes[k].pen) == N)
            l = &r->lanes[k];
    REQUIRE(l);
    atomic_store(&l->slots[N], (char *)held);   /* an order-0 entry: the block's address */
    uint64_t by_remote = arena_stats(a).alloc_by_step[LAB_STEP_ROOM_REMOTE],
             by_room = arena_stats(a).alloc_by_step[LAB_STEP_ROOM];
    CHECK_EQ(lab_room_alloc_bulk(r, LAB_GFP_NOWAIT, got, N), N);
    for (size_t i = 0; i < N; i++)
        CHECK(got[i] == far[i]);
    CHECK_EQ(atomic_load(&l->tail), N);
    lab_room_stats now = room_stats(r);
    CHECK_EQ(now.in_ring, 0);
    CHECK_EQ(now.stock, 0);
    CHECK_EQ(now.refills, st.refills);
    CHECK_EQ(now.frees_remote, st.frees_remote + N);
    CHECK_EQ(now.allocs, st.allocs + N);
    CHECK_EQ(now.out, st.out);   /* the lane's pages were out already */
    CHECK_EQ(arena_stats(a).alloc_by_step[LAB_STEP_ROOM_REMOTE], by_remote + N);
    CHECK_EQ(arena_stats(a).alloc_by_step[LAB_STEP_ROOM], by_room);
    CHECK_EQ(lab_check(a), 0);
    /* the lane is empty: more comes from the zone, never from beyond pen */
    void *more[8];
    CHECK_EQ(lab_room_alloc_bulk(r, LAB_GFP_NOWAIT, more, 8), 8);
    CHECK_EQ(atomic_load(&l->tail), N);
    for (size_t i = 0; i < 8; i++)
        CHECK(more[i] != held);
    CHECK_EQ(room_stats(r).refills, st.refills + 1);
    lab_room_free_bulk(r, more, 8);
    lab_room_free(r, held);
    lab_room_free_bulk(r, got, N);
    while (n)
        lab_room_free(r, mine[--n]);
    CHECK_EQ(atomic_load(&log.total), 0);
    CHECK_EQ(room_stats(r).out, 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* Frees a line of eight blocks, each with the order given for it. */
struct line_job { lab_arena *a; void *p[8]; unsigned order[8]; };
static void *line_freer(void *arg)
{
    struct line_job *j = arg;
    for (int i = 0; i < 8; i++)
        lab_free_pages(j->a, j->p[i], j->order[i]);
    return NULL;
}
static void *line_freer1(void *arg)   /* the first block only */
{
    struct line_job *j = arg;
    lab_free_pages(j->a, j->p[0], j->order[0]);
    return NULL;
}

/* Lane entries that fail the owner's check (blocks freed with the wrong
 * order, both ways) are not handed out by a bulk allocation: it stops at
 * the first, and the take-back through the stock reports both and hands
 * out the good entries after them.  (Strict mode reports them at the free,
 * and they never reach the lane.) */
static void test_a_bulk_allocation_hands_out_no_lane_entry_that_fails_the_check(void)
{
    static struct misuse_log log;
    lab_arena *a = logged_arena(4096, 0, &log);
    lab_room *r = room(a, 8, 64, 1, 0);
    void *g[6], *h[8], *mine[128], *got[8], *odd = NULL, *b = lab_room_alloc_pages(r, LAB_GFP_NOWAIT, 1);
    REQUIRE(b);
    for (int i = 0; i < 6; i++)
        REQUIRE((g[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    for (int i = 0; i < 8; i++)
        REQUIRE((h[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    size_t n = 0;
    while (!odd || rd(&r->stk[0].n) > 0) {   /* empty the order-0 stock; keep a page aligned for order 1 */
        REQUIRE(n < 128 && (mine[n] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
        if (!odd && !((size_t)((char *)mine[n] - (char *)lab_arena_base(a)) / LAB_PAGE_SIZE & 1))
            odd = mine[n];
        else
            n++;
    }
    /* one published line: g0..g3, b as order 0, odd as order 1, g4, g5 */
    struct line_job lj = { a, { g[0], g[1], g[2], g[3], b, odd, g[4], g[5] }, { 0, 0, 0, 0, 0, 1, 0, 0 } };
    /* and then a line of good ones in a second lane (a thread alive
     * meanwhile: an exited thread's lane goes to the next one), which must
     * not stand in for the take-back that reports the first lane's */
    pthread_t t, th;
    atomic_int go = 0;
    struct lane_job hj = { a, h, 8, &go };
    REQUIRE(pthread_create(&th, NULL, lane_freer, &hj) == 0);
    REQUIRE(pthread_create(&t, NULL, line_freer, &lj) == 0);
    pthread_join(t, NULL);
    atomic_store(&go, 1);
    pthread_join(th, NULL);
    /* strict mode (debug builds) refuses both at the free */
    const bool strict = a->strict_free;
    CHECK_EQ(room_lane_entries(r, NULL), strict ? 6 + 8 : 8 + 8);
    CHECK_EQ(lab_room_alloc_bulk(r, LAB_GFP_NOWAIT, got, 8), 8);
    for (int i = 0; i < 4 && !strict; i++)
        CHECK(got[i] == g[i]);
    for (int i = 0; i < 8; i++)
        CHECK(got[i] != b && got[i] != odd);
    CHECK_EQ(atomic_load(&log.count[LAB_EWRONGORDER]), 2);
    CHECK_EQ(atomic_load(&log.total), 2);
    CHECK_EQ(room_stats(r).in_ring, strict ? 6 : 0);   /* strict: a line not yet published */
    lab_room_free_bulk(r, got, 8);
    while (n)
        lab_room_free(r, mine[--n]);
    lab_free_pages(a, odd, 0);   /* the right orders bring them home */
    lab_free_pages(a, b, 1);
    CHECK_EQ(atomic_load(&log.total), 2);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* A block freed with the wrong order that is still in a lane when its room
 * is destroyed is reported, not given to the zone with that order (which
 * would take half of an order-1 block); a free with the right order then
 * brings it home. */
static void test_a_destroyed_rooms_lane_entry_with_the_wrong_order_is_refused(void)
{
    static struct misuse_log log;
    lab_arena *a = logged_arena(4096, 0, &log);
    lab_room *r = room(a, 8, 64, 1, 0);
    void *b = lab_room_alloc_pages(r, LAB_GFP_NOWAIT, 1);
    REQUIRE(b);
    struct line_job lj = { a, { b }, { 0 } };   /* one entry: b as order 0, in a line not yet published */
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, line_freer1, &lj) == 0);
    pthread_join(t, NULL);
    lab_room_destroy(r);
    CHECK_EQ(atomic_load(&log.count[LAB_EWRONGORDER]), 1);
    CHECK_EQ(atomic_load(&log.total), 1);
    CHECK_EQ(lab_check(a), 0);
    lab_free_pages(a, b, 1);
    CHECK_EQ(atomic_load(&log.total), 1);
    end_arena(a);
}

/* While the ring holds frees (from a freer beyond the room's lanes), a
 * bulk allocation takes back through the stock, the ring first: one that
 * handed out lane entries alone would leave the ring's pages there for as
 * long as the lanes had entries. */
static void test_a_bulk_allocation_leaves_no_frees_behind_in_the_ring(void)
{
    enum { FREERS = ROOM_LANES + 1, EACH = 8 };
    lab_arena *a = arena(4096, 0);
    lab_room *r = room(a, 8, 256, 0, 256);
    static void *p[FREERS][EACH], *mine[512];
    for (int t = 0; t < FREERS; t++)
        for (int i = 0; i < EACH; i++)
            REQUIRE((p[t][i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    size_t n = 0;
    while (room_stats(r).stock)
        REQUIRE((mine[n++] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    atomic_int go = 0;
    pthread_t th[FREERS];
    struct lane_job job[FREERS];
    for (int t = 0; t < FREERS; t++) {
        job[t] = (struct lane_job){ a, p[t], EACH, &go };
        REQUIRE(pthread_create(&th[t], NULL, lane_freer, &job[t]) == 0);
    }
    atomic_store(&go, 1);
    for (int t = 0; t < FREERS; t++)
        pthread_join(th[t], NULL);
    lab_room_stats st = room_stats(r);
    REQUIRE(st.in_ring == FREERS * EACH && st.stock == 0);
    REQUIRE(room_lane_entries(r, NULL) == ROOM_LANES * EACH);   /* one freer's pages are in the ring */
    void *got[EACH];
    CHECK_EQ(lab_room_alloc_bulk(r, LAB_GFP_NOWAIT, got, EACH), EACH);
    st = room_stats(r);
    CHECK_EQ(st.in_ring, 0);
    CHECK_EQ(st.stock, (FREERS - 1) * EACH);
    lab_room_free_bulk(r, got, EACH);
    while (n)
        lab_room_free(r, mine[--n]);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

static lab_room *default_room(lab_arena *a)
{
    lab_room_config rc;
    lab_room_config_init(&rc);
    lab_room *r = NULL;
    REQUIRE(lab_room_create(a, &rc, &r) == 0);
    return r;
}

/* While the zone has plenty, the lanes keep their freers' most recent
 * frees: the arena's claimed lanes share half of the zone's free pages
 * above its high watermark (32 here).  The owner refills from the zone
 * while its lane holds no more than its share, and takes back, the oldest
 * first, once it holds more.  `others` rooms get a lane claimed first (the
 * share is divided among more lanes), and `destroyed` of them are destroyed
 * again (their lanes stop counting). */
static void lanes_share_the_zones_surplus(unsigned others, unsigned destroyed, bool others_take_all)
{
    enum { K = 1600, MAXQ = 4096 };
    lab_arena *a = arena(4096, 0);
    lab_room *o[2] = { NULL, NULL };
    void *op[2], *late[2];
    REQUIRE(others <= 2 && destroyed <= others);
    for (unsigned i = 0; i < others; i++) {
        o[i] = others_take_all ? room(a, 32, 128, 0, 0) : default_room(a);
        REQUIRE((op[i] = lab_room_alloc(o[i], LAB_GFP_NOWAIT)) != NULL);
        REQUIRE((late[i] = lab_room_alloc(o[i], LAB_GFP_NOWAIT)) != NULL);
        free_from_a_thread(a, &op[i], 1);   /* claims a lane of o[i] */
    }
    for (unsigned i = 0; i < destroyed; i++) {
        lab_room_destroy(o[i]);
        lab_free_pages(a, late[i], 0);      /* this thread's lane of o[i]: to the zone */
    }
    size_t lanes = 1 + (others_take_all ? 0 : others - destroyed);   /* lanes that keep nothing take no share */
    lab_room *r = default_room(a);
    static void *p[K], *q[MAXQ];
    hand_off(a, r, p, K);   /* one thread: one lane of r, whole lines */
    size_t nq = 0;
    int zone = 0, remote = 0;
    while (room_stats(r).in_ring > 0 && nq < MAXQ) {
        size_t f = arena_stats(a).free_pages, held = room_stats(r).in_ring;
        size_t share = f > 32 ? (f - 32) / 2 / lanes : 0;
        lab_result res;
        lab_room_alloc_result(r, LAB_GFP_NOWAIT, &res);
        REQUIRE((q[nq++] = res.addr) != NULL);
        if (res.step == LAB_STEP_ZONE) {
            zone++;
            CHECK(held <= share);
        } else if (res.step == LAB_STEP_ROOM_REMOTE) {
            CHECK(held > share);
            /* the first take-back brings home old frees, none of the
             * newest `share` (the stock hands out the last it took) */
            if (remote++ == 0) {
                size_t k = 0;
                while (k < K && p[k] != res.addr)
                    k++;
                CHECK(k < K - share);
            }
        }
    }
    CHECK(zone > 0);
    CHECK(remote > 0);
    CHECK_EQ(room_stats(r).in_ring, 0);
    CHECK_EQ(room_stats(r).frees_remote, K);
    for (size_t i = 0; i < nq; i++)
        lab_room_free(r, q[i]);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    for (unsigned i = destroyed; i < others; i++) {
        lab_room_free(o[i], late[i]);
        lab_room_destroy(o[i]);
    }
    end_arena(a);
}

static void test_a_lane_keeps_recent_frees_while_the_zone_has_plenty(void)
{
    lanes_share_the_zones_surplus(0, 0, false);
}

static void test_lanes_of_several_rooms_share_the_zones_surplus(void)
{
    lanes_share_the_zones_surplus(2, 0, false);
}

static void test_a_destroyed_rooms_lanes_stop_sharing_the_surplus(void)
{
    lanes_share_the_zones_surplus(2, 1, false);
}

/* The same with bulk allocations, 16 pages a call: what an empty stock
 * hands out straight from the lane also leaves the lane its share, but for
 * OUT_SLACK (it takes that far below the share on one look at the lane's
 * head), and takes the oldest first. */
static void test_a_bulk_allocation_leaves_a_lane_its_share(void)
{
    enum { K = 1600, MAXQ = 4096, BURST = 16 };
    lab_arena *a = arena(4096, 0);
    lab_room *r = default_room(a);
    static void *p[K], *q[MAXQ];
    hand_off(a, r, p, K);
    size_t nq = 0;
    int zone = 0, remote = 0;
    while (room_stats(r).in_ring > 0 && nq + BURST <= MAXQ) {
        size_t f = arena_stats(a).free_pages;
        size_t share = f > 32 ? (f - 32) / 2 : 0;
        lab_room_stats st = room_stats(r);
        REQUIRE(lab_room_alloc_bulk(r, LAB_GFP_NOWAIT, q + nq, BURST) == BURST);
        lab_room_stats now = room_stats(r);
        if (now.frees_remote > st.frees_remote) {
            CHECK(st.in_ring + OUT_SLACK > share);
            if (remote++ == 0) {   /* old frees: none of the newest `share` */
                size_t k = 0;
                while (k < K && p[k] != q[nq])
                    k++;
                CHECK(k < K - share);
            }
        } else if (now.refills > st.refills) {
            zone++;
            CHECK(st.in_ring <= share);
        }
        nq += BURST;
    }
    CHECK(zone > 0);
    CHECK(remote > 0);
    CHECK_EQ(room_stats(r).in_ring, 0);
    CHECK_EQ(room_stats(r).frees_remote, K);
    lab_room_free_bulk(r, q, nq);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

static void test_lanes_of_take_all_rooms_take_no_share(void)
{
    lanes_share_the_zones_surplus(2, 1, true);
}

/* When the zone cannot serve the room, the owner takes back everything on
 * its way home, the line the freer has not yet published included: no
 * allocation fails while pages wait in a lane. */
static void test_a_room_takes_its_lanes_back_when_the_zone_cannot_serve(void)
{
    enum { N = 293 };   /* not whole lines: the last 5 entries are unpublished */
    lab_arena *a = arena(1024, 0);
    lab_room *r = default_room(a);
    static void *p[N], *zone[1024], *q[1024];
    hand_off(a, r, p, N);
    size_t nz = 0;
    while (nz < 1024 && (zone[nz] = lab_alloc_pages(a, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, 0)) != NULL)
        nz++;
    size_t stock = room_stats(r).stock, nq = 0, remote = 0;
    for (;;) {
        lab_result res;
        lab_room_alloc_result(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, &res);
        if (!res.addr)
            break;
        REQUIRE(nq < 1024);
        q[nq++] = res.addr;
        remote += res.step == LAB_STEP_ROOM_REMOTE;
    }
    CHECK(remote > 0);
    CHECK_EQ(nq, stock + N);
    lab_room_stats st = room_stats(r);
    CHECK_EQ(st.in_ring, 0);
    CHECK_EQ(st.frees_remote, N);
    for (size_t i = 0; i < nq; i++)
        lab_room_free(r, q[i]);
    for (size_t i = 0; i < nz; i++)
        lab_free_pages(a, zone[i], 0);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* An allocation's own take-back moves at most TAKE_MAX blocks, however
 * high the room's stock and however many wait: its time is one
 * allocation's latency.  The rest come home with the allocations after it. */
static void test_an_allocations_take_back_moves_at_most_take_max(void)
{
    enum { N = 600 };
    _Static_assert(N > TAKE_MAX, "more waiting than one take-back moves");
    lab_arena *a = arena(4096, 0);
    lab_room *r = room(a, 32, 1024, 0, 0);   /* keeps nothing in its lanes */
    static void *p[N], *q[1024];
    hand_off(a, r, p, N);
    size_t nq = 0, stock = room_stats(r).stock;
    while (nq < stock)   /* the stock's own pages, to leave it empty */
        REQUIRE((q[nq++] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    lab_room_stats st = room_stats(r);
    REQUIRE(st.stock == 0 && st.in_ring == N);
    lab_result res;
    lab_room_alloc_result(r, LAB_GFP_NOWAIT, &res);
    REQUIRE(res.addr != NULL);
    q[nq++] = res.addr;
    CHECK(res.step == LAB_STEP_ROOM_REMOTE);
    lab_room_stats now = room_stats(r);
    CHECK_EQ(now.frees_remote, st.frees_remote + TAKE_MAX);
    CHECK_EQ(now.in_ring, N - TAKE_MAX);
    CHECK_EQ(now.stock, TAKE_MAX - 1);
    /* and the rest come home, TAKE_MAX at a time */
    while (room_stats(r).in_ring > 0) {
        REQUIRE(nq < 1024);
        REQUIRE((q[nq++] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    }
    CHECK_EQ(room_stats(r).frees_remote, st.frees_remote + N);
    CHECK_EQ(lab_check(a), 0);
    while (nq)
        lab_room_free(r, q[--nq]);
    lab_room_destroy(r);
    end_arena(a);
}

/* A room at its quota cannot refill: with the zone still plenty, the lane
 * keeps its freer's entries from step 2, and only the take-back after the
 * refill's refusal brings them home. */
static void test_a_room_at_its_quota_takes_back_what_its_lane_keeps(void)
{
    enum { Q = 64 };
    lab_arena *a = arena(16384, 0);
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.quota = Q;
    lab_room *r = NULL;
    REQUIRE(lab_room_create(a, &rc, &r) == 0);
    void *p[Q];
    hand_off(a, r, p, Q);
    CHECK_EQ(room_stats(r).stock, 0);
    for (int i = 0; i < Q; i++) {
        lab_result res;
        lab_room_alloc_result(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, &res);
        REQUIRE((p[i] = res.addr) != NULL);
        CHECK(res.step == LAB_STEP_ROOM_REMOTE || res.step == LAB_STEP_ROOM);
    }
    CHECK_EQ(room_stats(r).in_ring, 0);
    for (int i = 0; i < Q; i++)
        lab_room_free(r, p[i]);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* Fault injection fails a room's refill only when none of its blocks is on
 * its way back: with frees waiting in a lane, even ones the lane keeps, a
 * request is served and no failure is injected. */
static void test_injection_spares_a_room_whose_frees_wait_in_a_lane(void)
{
    enum { N = 5 };
    lab_arena *a = arena(4096, 0);
    lab_room *r = default_room(a);
    void *p[N];
    for (int i = 0; i < N; i++)
        REQUIRE((p[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    void *rest[64];
    size_t nrest = 0;
    while (room_stats(r).stock)   /* empty the stock: the next request walks on */
        REQUIRE((rest[nrest++] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    free_from_a_thread(a, p, N);
    lab_fault_config fc = { .probability = 100, .interval = 1, .times = -1 };
    REQUIRE(lab_fault_set(a, &fc) == 0);
    for (int i = 0; i < N; i++) {
        lab_result res;
        lab_room_alloc_result(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, &res);
        REQUIRE((p[i] = res.addr) != NULL);   /* from the zone (the lane keeps its frees) */
    }
    CHECK_EQ(lab_fault_injected(a), 0);
    /* a room with nothing on its way back: its refill is a decision point */
    lab_room *r2 = default_room(a);
    lab_result res;
    lab_room_alloc_result(r2, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, &res);
    CHECK(res.addr == NULL && res.reason == LAB_R_INJECTED);
    CHECK_EQ(lab_fault_injected(a), 1);
    REQUIRE(lab_fault_set(a, NULL) == 0);
    lab_room_destroy(r2);
    for (int i = 0; i < N; i++)
        lab_room_free(r, p[i]);
    while (nrest)
        lab_room_free(r, rest[--nrest]);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* A thread remembers the lane its last single free went to, by the room's
 * serial.  A room that takes a destroyed room's id later is another room:
 * a free of its page goes to its own lane, not to the dead room's one the
 * thread remembers, and comes home. */
static void test_a_remembered_lane_is_not_used_for_a_new_room_with_the_same_id(void)
{
    static struct misuse_log log;
    lab_arena *a = logged_arena(512, 0, &log);
    if (!a->lanes_ok)
        fprintf(stderr, "  (no lanes here: nothing is remembered)\n");
    lab_room *first = room(a, 8, 32, 0, 0);
    unsigned first_id = first->id;
    void *p = lab_room_alloc(first, LAB_GFP_NOWAIT);
    REQUIRE(p);
    lab_free_pages(a, p, 0);   /* this thread now remembers first's lane */
    lab_room_destroy(first);
    /* every other id once, so the next room takes first's (the lowest
     * free id, once no fresh one is left) */
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.batch = 1;
    for (int i = 0; i < 4094; i++) {
        lab_room *r = NULL;
        REQUIRE(lab_room_create(a, &rc, &r) == 0);
        lab_room_destroy(r);
    }
    lab_room *again = room(a, 8, 32, 0, 0);
    CHECK_EQ(again->id, first_id);
    void *q = lab_room_alloc(again, LAB_GFP_NOWAIT);
    REQUIRE(q);
    lab_free_pages(a, q, 0);
    CHECK_EQ(in_stock_times(again, q, 40), 1);   /* taken back from its own lane */
    CHECK_EQ(atomic_load(&log.total), 0);
    lab_room_destroy(again);
    end_arena(a);
}

/* The same across arenas: a room of a new arena (at the old one's address,
 * as often as not, and with the same id) is not the room a thread
 * remembers from the arena before, whose lanes are unmapped. */
static void test_a_remembered_lane_is_not_used_for_a_room_of_a_later_arena(void)
{
    void *seen = NULL;
    int same_address = 0;
    for (int round = 0; round < 8; round++) {
        static struct misuse_log log;
        lab_arena *a = logged_arena(512, 0, &log);
        same_address += (void *)a == seen;
        seen = a;
        lab_room *r = room(a, 8, 32, 0, 0);
        void *p = lab_room_alloc(r, LAB_GFP_NOWAIT);
        REQUIRE(p);
        lab_free_pages(a, p, 0);
        CHECK_EQ(in_stock_times(r, p, 40), 1);
        CHECK_EQ(atomic_load(&log.total), 0);
        lab_room_destroy(r);
        end_arena(a);
    }
    if (same_address == 0)
        fprintf(stderr, "  note: no arena took the address of the one before\n");
}

/* Signal handlers that free pages of rooms of their own, landing on a
 * thread whose frees go in short runs to two others: the thread's first
 * free of a run refills its remembered lane, the others read it, and a
 * handler refills it under either.  SIGPROF's handler may land inside
 * SIGALRM's.  Every page still reaches its own room: a page in another
 * room's lane would be reported as not that room's, and lost. */
#define SIG_POOL 4096
struct sig_pool {
    void *pages[SIG_POOL];
    _Atomic int n;
    _Atomic unsigned frees;
};
static lab_arena *g_sig_arena;
static struct sig_pool g_pool_alrm, g_pool_prof;
static void pool_free_one(struct sig_pool *pool)
{
    int n = atomic_load_explicit(&pool->n, memory_order_relaxed);
    if (n == 0)
        return;
    atomic_store_explicit(&pool->n, n - 1, memory_order_relaxed);
    lab_free_pages(g_sig_arena, pool->pages[n - 1], 0);
    atomic_fetch_add_explicit(&pool->frees, 1, memory_order_relaxed);
}
static void free_in_alrm(int sig) { (void)sig; pool_free_one(&g_pool_alrm); }
static void free_in_prof(int sig) { (void)sig; pool_free_one(&g_pool_prof); }

/* Pages of room r for a handler's pool, with the signals kept out while
 * the pool grows (this thread owns r). */
static void pool_fill(struct sig_pool *pool, lab_room *r, const sigset_t *both)
{
    sigset_t old;
    pthread_sigmask(SIG_BLOCK, both, &old);
    int n = atomic_load(&pool->n);
    while (n < SIG_POOL) {
        void *q = lab_room_alloc(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN);
        if (!q)
            break;
        pool->pages[n++] = q;
    }
    atomic_store(&pool->n, n);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void pool_drain(struct sig_pool *pool, lab_room *r)
{
    for (int n = atomic_load(&pool->n); n > 0; n--)
        lab_room_free(r, pool->pages[n - 1]);
    atomic_store(&pool->n, 0);
}

static void test_handlers_refilling_the_remembered_lane_misroute_nothing(void)
{
    static struct misuse_log log;
    lab_arena *a = logged_arena(16384, 0, &log);
    if (!a->lanes_ok)
        fprintf(stderr, "  (no lanes here: nothing is remembered)\n");
    lab_room *ra = room(a, 8, 64, 0, 0), *rc = room(a, 8, 64, 0, 0);
    lab_room *rb = room(a, 32, 128, 0, 0), *rd = room(a, 32, 128, 0, 0);
    g_sig_arena = a;
    memset(&g_pool_alrm, 0, sizeof(g_pool_alrm));
    memset(&g_pool_prof, 0, sizeof(g_pool_prof));
    sigset_t both;
    sigemptyset(&both);
    sigaddset(&both, SIGALRM);
    sigaddset(&both, SIGPROF);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_flags = SA_RESTART;
    sa.sa_handler = free_in_alrm;
    sigaction(SIGALRM, &sa, NULL);
    sa.sa_handler = free_in_prof;
    sigaction(SIGPROF, &sa, NULL);
    struct itimerval it = { { 0, 20 }, { 0, 20 } }, prof = { { 0, 30 }, { 0, 30 } };
    setitimer(ITIMER_REAL, &it, NULL);
    setitimer(ITIMER_PROF, &prof, NULL);
    /* 1.5 s, and longer (up to 20 s) until the handlers and the thread
     * have freed enough: a loaded machine runs few of them.  TSan
     * delivers a signal only at some later interception point, never
     * inside the library's code, and runs from a handful to thousands of
     * handlers in the time: there the test can only look for races. */
#if LAB_TEST_TSAN
    /* and under load as few as one in 20 s (its delivery, not ours): a
     * TSan build asserts no count, only the absence of races */
    const unsigned enough = 0;
#else
    const unsigned enough = 1000;
#endif
    double start = now_ms(), until = start + 1500;
    unsigned long frees = 0;
    while (now_ms() < until ||
           ((atomic_load(&g_pool_alrm.frees) + atomic_load(&g_pool_prof.frees) <= 2 * enough || frees <= 2000) &&
            now_ms() < start + 20000)) {
        if (atomic_load(&g_pool_alrm.n) < SIG_POOL / 2)
            pool_fill(&g_pool_alrm, rb, &both);
        if (atomic_load(&g_pool_prof.n) < SIG_POOL / 2)
            pool_fill(&g_pool_prof, rd, &both);
        for (int i = 0; i < 64; i++) {
            void *p[4], *q[4];
            for (int k = 0; k < 4; k++) {
                p[k] = lab_room_alloc(ra, LAB_GFP_NOWAIT);
                q[k] = lab_room_alloc(rc, LAB_GFP_NOWAIT);
                REQUIRE(p[k] && q[k]);
            }
            for (int k = 0; k < 4; k++)
                lab_free_pages(a, p[k], 0);
            for (int k = 0; k < 4; k++)
                lab_free_pages(a, q[k], 0);
            frees += 8;
        }
#if LAB_TEST_TSAN
        sigset_t cur;   /* an intercepted call: where TSan runs the handlers pending */
        pthread_sigmask(SIG_SETMASK, NULL, &cur);
#endif
    }
    struct itimerval off = { { 0, 0 }, { 0, 0 } };
    setitimer(ITIMER_REAL, &off, NULL);
    setitimer(ITIMER_PROF, &off, NULL);
    signal(SIGALRM, SIG_DFL);
    signal(SIGPROF, SIG_DFL);
    unsigned in_handlers = atomic_load(&g_pool_alrm.frees) + atomic_load(&g_pool_prof.frees);
    fprintf(stderr, "  %lu frees, %u in handlers\n", frees, in_handlers);
    CHECK(frees > 1000);
    CHECK(in_handlers > enough || LAB_TEST_TSAN);
    CHECK_EQ(atomic_load(&log.total), 0);
    CHECK_EQ(atomic_load(&log.count[LAB_ENOTROOMPAGE]), 0);
    pool_drain(&g_pool_alrm, rb);
    pool_drain(&g_pool_prof, rd);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(ra);
    lab_room_destroy(rb);
    lab_room_destroy(rc);
    lab_room_destroy(rd);
    end_arena(a);
}

/* The lane this thread claimed in room r (the only one claimed). */
static struct room_lane *my_lane(lab_room *r)
{
    uint32_t claimed = atomic_load(&r->lanes_claimed) & ~LANES_GONE;
    CHECK_EQ(__builtin_popcount(claimed), 1);
    return claimed ? &r->lanes[__builtin_ctz(claimed)] : NULL;
}

/* A freer publishes its lane's head a whole line at a time, after single
 * frees and bulk runs alike; and once its lane is full, it looks at tail
 * again when it next frees, so that a lane the owner took entries back
 * from takes frees again instead of sending them to the shared ring. */
static void test_a_lane_publishes_whole_lines_and_takes_frees_again_once_taken_back(void)
{
    enum { N = LANE_SLOTS + 256 };
    lab_arena *a = arena(N + 2048, 0);
    if (!a->lanes_ok) {
        fprintf(stderr, "  (no lanes here)\n");
        lab_arena_destroy(a);
        return;
    }
    lab_room *r = room(a, 64, 128, 0, 0);
    static void *p[N];
    for (int i = 0; i < N; i++)
        REQUIRE((p[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    int next = 0;
    for (; next < 29; next++)
        lab_free_pages(a, p[next], 0);
    struct room_lane *l = my_lane(r);
    REQUIRE(l);
    CHECK_EQ(atomic_load(&l->pen), 29);
    CHECK_EQ(atomic_load(&l->head), 24);
    static const struct { int n; uint32_t pen, head; } runs[] = {
        { 10, 39, 32 }, { 1, 40, 40 }, { 7, 47, 40 }, { 9, 56, 56 }, { 3, 59, 56 },
    };
    for (size_t k = 0; k < sizeof(runs) / sizeof(runs[0]); k++) {
        lab_free_pages_bulk(a, p + next, (size_t)runs[k].n, 0);
        next += runs[k].n;
        CHECK_EQ(atomic_load(&l->pen), runs[k].pen);
        CHECK_EQ(atomic_load(&l->head), runs[k].head);
    }
    lab_free_pages(a, p[next++], 0);   /* 60 */
    CHECK_EQ(atomic_load(&l->head), 56);
    /* runs that end a line having started inside it, or cross one with
     * only the line's bit changing */
    static const struct { int n; uint32_t pen, head; } more[] = {
        { 2, 62, 56 }, { 2, 64, 64 }, { 6, 70, 64 }, { 8, 78, 72 },
    };
    for (size_t k = 0; k < sizeof(more) / sizeof(more[0]); k++) {
        lab_free_pages_bulk(a, p + next, (size_t)more[k].n, 0);
        next += more[k].n;
        CHECK_EQ(atomic_load(&l->pen), more[k].pen);
        CHECK_EQ(atomic_load(&l->head), more[k].head);
    }
    /* fill the lane: the free after that goes to the ring */
    while (next < LANE_SLOTS)
        lab_free_pages(a, p[next++], 0);
    CHECK_EQ(atomic_load(&l->pen) - atomic_load(&l->tail), LANE_SLOTS);
    uint32_t ring_before = atomic_load(&r->ring_head);
    lab_free_pages(a, p[next++], 0);
    CHECK_EQ(atomic_load(&r->ring_head), ring_before + 1);
    /* the owner takes back: its allocations run the stock dry */
    uint32_t tail = atomic_load(&l->tail);
    void *q[512];
    int nq = 0;
    while (atomic_load(&l->tail) == tail && nq < 512)
        REQUIRE((q[nq++] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    CHECK(atomic_load(&l->tail) != tail);
    /* a free now finds space in the lane, not the ring */
    ring_before = atomic_load(&r->ring_head);
    uint32_t pen = atomic_load(&l->pen);
    lab_free_pages(a, p[next++], 0);
    CHECK_EQ(atomic_load(&l->pen), pen + 1);
    CHECK_EQ(atomic_load(&r->ring_head), ring_before);
    for (; next < N; next++)
        lab_free_pages(a, p[next], 0);
    lab_free_pages_bulk(a, q, (size_t)nq, 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* Destroy gives the zone every entry of a lane, the unpublished ones too. */
static void test_destroy_takes_a_lanes_unpublished_entries(void)
{
    enum { N = 13 };
    lab_arena *a = arena(1024, 0);
    size_t before = arena_stats(a).free_pages;
    lab_room *r = default_room(a);
    void *p[N];
    hand_off(a, r, p, N);
    lab_room_destroy(r);
    CHECK_EQ(lab_check(a), 0);
    CHECK_EQ(arena_stats(a).free_pages, before);
    end_arena(a);
}

/* ---- the window -----------------------------------------------------------
 * An order-0 room's stock can be a run of a lane's slots (handoff.c). */

/* A TAKE_ALL room of order 0 (batch and high 32) whose stock is empty
 * and whose lane (this thread's) holds N of its blocks, freed with
 * lab_free_pages: the next allocation opens a window on them (release
 * builds without strict mode) or takes them back.  `rest` holds what the
 * stock had left, for window_end. */
enum { WIN_N = 24 };
struct window_case {
    lab_arena *a;
    lab_room *r;
    void *p[WIN_N], *rest[32];
    int nrest;
};

static void window_begin(struct window_case *w, unsigned flags, struct misuse_log *log)
{
    w->a = logged_arena(512, flags, log);
    w->r = room(w->a, 32, 32, 0, 0);
    w->nrest = 0;
    for (int i = 0; i < WIN_N; i++)
        REQUIRE((w->p[i] = lab_room_alloc(w->r, LAB_GFP_NOWAIT)) != NULL);
    while (room_stats(w->r).stock)
        REQUIRE(w->nrest < 32 && (w->rest[w->nrest++] = lab_room_alloc(w->r, LAB_GFP_NOWAIT)) != NULL);
    for (int i = 0; i < WIN_N; i++)
        lab_free_pages(w->a, w->p[i], 0);
}

/* The n blocks the test holds go back, and the rest; every page is home. */
static void window_end(struct window_case *w, void *const *held, int n)
{
    for (int i = 0; i < n; i++)
        lab_room_free(w->r, held[i]);
    for (int i = 0; i < w->nrest; i++)
        lab_room_free(w->r, w->rest[i]);
    CHECK_EQ(lab_check(w->a), 0);
    lab_room_destroy(w->r);
    lab_stats as;
    lab_stats_get(w->a, &as);
    CHECK_EQ(as.free_pages, as.total_pages);
    lab_arena_destroy(w->a);
}

/* What docs/BAD_INPUT.md says of a block freed twice by other contexts in
 * an order-0 room: a release build without LAB_ARENA_STRICT_FREE hands the
 * window's entries out unread, so the block goes out twice, once for each
 * free; a debug build (no window) and a strict arena catch the second
 * free, the one when the owner takes it back, the other at once. */
static void test_a_window_hands_out_a_block_freed_twice_once_for_each_free(void)
{
    for (int strict = 0; strict <= 1; strict++) {
        static struct misuse_log log;
        struct window_case w;
        window_begin(&w, strict ? LAB_ARENA_STRICT_FREE : 0, &log);
        lab_free_pages(w.a, w.p[3], 0);   /* twice */
        void *got[WIN_N + 1], *once[WIN_N + 1];
        for (int i = 0; i <= WIN_N; i++)
            REQUIRE((got[i] = lab_room_alloc(w.r, LAB_GFP_NOWAIT)) != NULL);
        size_t twice = 0;
        for (int i = 0; i <= WIN_N; i++)
            twice += got[i] == w.p[3];
#ifdef LAB_DEBUG
        bool window = false;   /* debug builds open no window */
#else
        bool window = !strict;
#endif
        CHECK_EQ(twice, window ? 2 : 1);
        CHECK_EQ(atomic_load(&log.count[LAB_EDOUBLEFREE]), window ? 0 : 1);
        /* every block back once (the duplicate is the same block) */
        int n = 0;
        bool seen = false;
        for (int i = 0; i <= WIN_N; i++) {
            if (got[i] == w.p[3] && seen)
                continue;
            seen |= got[i] == w.p[3];
            once[n++] = got[i];
        }
        window_end(&w, once, n);
    }
}

/* An owner's free closes an open window: what the window still holds goes
 * to the room's own array, checked and marked as a take-back marks it, and
 * the lane's tail moves past the run.  Every block stays accounted for. */
static void test_an_owners_free_closes_the_window_and_keeps_what_it_held(void)
{
    static struct misuse_log log;
    struct window_case w;
    window_begin(&w, 0, &log);
    enum { OUT = 5 };
    void *got[WIN_N];
    for (int i = 0; i < OUT; i++)
        REQUIRE((got[i] = lab_room_alloc(w.r, LAB_GFP_NOWAIT)) != NULL);
    lab_room_stats st = room_stats(w.r);
    CHECK_EQ(st.stock, WIN_N - OUT);   /* the window's rest, or the take-back's */
    CHECK_EQ(st.in_ring, 0);
    CHECK_EQ(lab_check(w.a), 0);
    lab_room_free(w.r, got[0]);   /* closes it */
    st = room_stats(w.r);
    CHECK_EQ(st.stock, WIN_N - OUT + 1);
    CHECK_EQ(st.in_ring, 0);
    CHECK_EQ(lab_check(w.a), 0);
    /* the stock hands out what it holds, each block once and none of
     * those still out */
    for (int i = OUT; i < WIN_N; i++)
        REQUIRE((got[i] = lab_room_alloc(w.r, LAB_GFP_NOWAIT)) != NULL);
    REQUIRE((got[0] = lab_room_alloc(w.r, LAB_GFP_NOWAIT)) != NULL);
    CHECK_EQ(room_stats(w.r).refills, 1);   /* the first batch only: nothing from the zone since */
    void *all[WIN_N];
    memcpy(all, got, sizeof(all));
    CHECK_EQ(repeats(all, (size_t)WIN_N), 0);
    CHECK_EQ(atomic_load(&log.total), 0);
    window_end(&w, got, WIN_N);
}

/* The owner frees a block that another context freed too, whose entry a
 * window still holds: the free closes the window, which takes the block
 * into the stock, and the free is then reported as the double free it is;
 * the block is in the stock once.  Every build reports it (where no window
 * opens, the take-back put the block in the stock before the free). */
static void test_an_owners_free_of_a_block_a_window_holds_is_a_double_free(void)
{
    static struct misuse_log log;
    struct window_case w;
    window_begin(&w, 0, &log);
    void *got[WIN_N];
    REQUIRE((got[0] = lab_room_alloc(w.r, LAB_GFP_NOWAIT)) != NULL);   /* the newest entry */
    REQUIRE(got[0] != w.p[0]);
    uint64_t frees_owner = room_stats(w.r).frees_owner;
    lab_room_free(w.r, w.p[0]);   /* its entry is still the room's: a double free */
    CHECK_EQ(atomic_load(&log.count[LAB_EDOUBLEFREE]), 1);
    CHECK_EQ(room_stats(w.r).frees_owner, frees_owner);   /* a refused free frees nothing */
    CHECK_EQ(atomic_load(&log.total), 1);
    CHECK_EQ(room_stats(w.r).stock, WIN_N - 1);
    CHECK_EQ(lab_check(w.a), 0);
    size_t seen = 0;
    for (int i = 1; i < WIN_N; i++) {
        REQUIRE((got[i] = lab_room_alloc(w.r, LAB_GFP_NOWAIT)) != NULL);
        seen += got[i] == w.p[0];
    }
    CHECK_EQ(seen, 1);
    window_end(&w, got, WIN_N);
}

/* A block freed twice by another context, between other frees in the
 * lane: the window opens on both entries, and the owner's free closes it.
 * The close keeps the first entry and refuses the second (release builds;
 * a debug build's take-back refuses it, and strict mode the second free
 * itself), so the stock the window becomes holds each block once and its
 * count says so: a count left at the window's would hand out a slot of
 * the room's own array that holds no block of the stock. */
static void test_a_window_that_refuses_an_entry_at_its_close_leaves_the_stock_its_count(void)
{
    static struct misuse_log log;
    lab_arena *a = logged_arena(512, 0, &log);
    lab_room *r = room(a, 32, 32, 0, 0);
    void *p[WIN_N], *rest[32];
    int nrest = 0;
    for (int i = 0; i < WIN_N; i++)
        REQUIRE((p[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    while (room_stats(r).stock)
        REQUIRE(nrest < 32 && (rest[nrest++] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    for (int i = 0; i < WIN_N; i++) {
        lab_free_pages(a, p[i], 0);
        if (i == WIN_N / 2)
            lab_free_pages(a, p[3], 0);   /* again, in the middle of the run */
    }
    void *got[WIN_N + 1];
    REQUIRE((got[0] = lab_room_alloc(r, LAB_GFP_NOWAIT)) == p[WIN_N - 1]);   /* the top */
    lab_room_free(r, got[0]);   /* closes the window */
    CHECK_EQ(atomic_load(&log.count[LAB_EDOUBLEFREE]), 1);
    CHECK_EQ(atomic_load(&log.total), 1);
    CHECK_EQ(room_stats(r).stock, WIN_N);
    CHECK_EQ(lab_check(a), 0);
    /* the stock hands out the 24 blocks, each once, then goes to the zone */
    for (int i = 0; i < WIN_N; i++)
        REQUIRE((got[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    CHECK_EQ(room_stats(r).stock, 0);
    void *sorted_got[WIN_N], *sorted_p[WIN_N];
    memcpy(sorted_got, got, sizeof(sorted_got));
    memcpy(sorted_p, p, sizeof(sorted_p));
    qsort(sorted_got, WIN_N, sizeof(void *), cmp_ptr);
    qsort(sorted_p, WIN_N, sizeof(void *), cmp_ptr);
    CHECK_EQ(memcmp(sorted_got, sorted_p, sizeof(sorted_p)), 0);
    for (int i = 0; i < WIN_N; i++)
        lab_room_free(r, got[i]);
    for (int i = 0; i < nrest; i++)
        lab_room_free(r, rest[i]);
    CHECK_EQ(atomic_load(&log.total), 1);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    CHECK_EQ(arena_stats(a).free_pages, arena_stats(a).total_pages);
    lab_arena_destroy(a);
}

/* A second free of a block by another context, whose first came back and
 * whose block then went to the zone (a drain): a window that meets the
 * second entry refuses it at the pop, reports it and drops it; it never
 * hands out a block of the zone's.  Every build reports it once: a debug
 * build (strict) at the second free. */
static void test_a_window_refuses_an_entry_whose_block_left_the_room(void)
{
    static struct misuse_log log;
    lab_arena *a = logged_arena(512, 0, &log);
    lab_room *r = room(a, 16, 16, 0, 0);
    enum { Q = 40 };
    void *q[Q], *rest[16], *got[64];
    int nrest = 0, ngot = 0;
    for (int i = 0; i < Q; i++)
        REQUIRE((q[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    while (room_stats(r).stock)
        REQUIRE(nrest < 16 && (rest[nrest++] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    /* the lane: q0..q15, q0 again, q16..q30 */
    for (int i = 0; i < 16; i++)
        lab_free_pages(a, q[i], 0);
    lab_free_pages(a, q[0], 0);
    for (int i = 16; i < 31; i++)
        lab_free_pages(a, q[i], 0);
    /* the first 16 come back and go out (q0 last) */
    for (int i = 0; i < 16; i++)
        REQUIRE((got[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    /* and home again, q0 at the bottom, then one more: the stock drains
     * its bottom 16 to the zone, q0 with them */
    lab_room_free(r, q[0]);
    for (int i = 0; i < 16; i++)
        if (got[i] != q[0])
            lab_room_free(r, got[i]);
    lab_room_free(r, q[31]);
    CHECK_EQ(room_stats(r).stock, 1);
#ifndef LAB_DEBUG
    CHECK_EQ(atomic_load(&log.total), 0);   /* debug builds, strict, caught the second free at once */
#endif
    /* q31, then the lane's rest: q0's second entry is refused */
    while (ngot < 17)
        REQUIRE((got[ngot++] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    CHECK_EQ(atomic_load(&log.total), 1);
    CHECK_EQ(lab_check(a), 0);
    CHECK_EQ(repeats(got, (size_t)ngot), 0);
    for (int i = 0; i < ngot; i++)
        lab_room_free(r, got[i]);
    for (int i = 32; i < Q; i++)
        lab_room_free(r, q[i]);
    for (int i = 0; i < nrest; i++)
        lab_room_free(r, rest[i]);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* A window every entry of which is stale: 16 blocks (the fewest a window
 * opens on) freed twice by another context, whose first entries came back
 * and whose blocks then went to the zone.  The window refuses all 16 at
 * the pop, reporting each, and closes before the walk goes on: the refill
 * that serves the allocation goes to the room's own array, not to the
 * lane's slots, where the stock's tag was still the window's (its blocks
 * were refused in turn, reported as freed twice, and lost) and which are
 * the freer's to write.  Every build reports the 16 second frees and
 * nothing else; no block goes out twice; every page comes home. */
static void test_a_window_whose_every_entry_is_refused_closes_before_the_walk_goes_on(void)
{
    static struct misuse_log log;
    lab_arena *a = logged_arena(512, 0, &log);
    lab_room *r = room(a, 16, 16, 0, 0);
    enum { Q = 32, STALE = 16, MORE = 40 };
    void *q[Q], *rest[16], *got[MORE];
    int nrest = 0, ngot = 0;
    for (int i = 0; i < Q; i++)
        REQUIRE((q[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    while (room_stats(r).stock)
        REQUIRE(nrest < 16 && (rest[nrest++] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    /* the lane: q0..q15, then q0..q15 again */
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < STALE; i++)
            lab_free_pages(a, q[i], 0);
#ifndef LAB_DEBUG
    CHECK_EQ(atomic_load(&log.total), 0);   /* debug builds, strict, caught the second frees at once */
#endif
    /* the first entries come back and go out, home again, then one more:
     * the stock drains its bottom 16 to the zone, all of q0..q15 */
    for (int i = 0; i < STALE; i++)
        REQUIRE((got[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    for (int i = 0; i < STALE; i++)
        lab_room_free(r, got[i]);
    lab_room_free(r, q[STALE]);
    CHECK_EQ(room_stats(r).stock, 1);
    /* q16, then the lane's second entries, all refused, then the zone */
    while (ngot < MORE)
        REQUIRE((got[ngot++] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    CHECK_EQ(atomic_load(&log.total), STALE);
    CHECK_EQ(atomic_load(&log.count[LAB_EDOUBLEFREE]) + atomic_load(&log.count[LAB_ENOTROOMPAGE]), STALE);
    CHECK_EQ(lab_check(a), 0);
    CHECK_EQ(repeats(got, (size_t)ngot), 0);
    for (int i = 0; i < ngot; i++)
        lab_room_free(r, got[i]);
    for (int i = STALE + 1; i < Q; i++)
        lab_room_free(r, q[i]);
    for (int i = 0; i < nrest; i++)
        lab_room_free(r, rest[i]);
    CHECK_EQ(atomic_load(&log.total), STALE);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    end_arena(a);
}

/* Reclaim takes an idle owner's window apart: the window's entries below
 * its top, checked, and what its lane holds after the window.  The owner,
 * back, pops the top and closes the window past both; every block comes
 * home once.  A debug build opens no window: its take-back copies the
 * entries into the stock, whose bottom reclaim takes as always, for the
 * same count. */
static void test_reclaim_takes_an_idle_owners_window_and_what_its_lane_holds_after_it(void)
{
    static struct misuse_log log;
    struct window_case w;
    window_begin(&w, 0, &log);
    if (!w.r->lanes) {   /* no membarrier: no lanes, no window, no steal */
        fprintf(stderr, "  (no lanes here: nothing to take apart)\n");
        window_end(&w, NULL, 0);
        return;
    }
    void *held[WIN_N + 8];
    int nh = 0;
    REQUIRE((held[nh++] = lab_room_alloc(w.r, LAB_GFP_NOWAIT)) != NULL);   /* the window's top */
#ifndef LAB_DEBUG
    CHECK_EQ(atomic_load(&w.r->win) != NULL, true);
#endif
    /* more of the room's blocks freed into the same lane, after the window */
    enum { K = 5 };
    REQUIRE(w.nrest >= K);
    for (int i = 0; i < K; i++)
        lab_free_pages(w.a, w.rest[--w.nrest], 0);
    size_t before = arena_stats(w.a).free_pages;
    size_t got = rooms_drain_surplus(w.a);
    CHECK_EQ(got, (WIN_N - 2) + K);   /* all but the top the owner may be popping */
    CHECK_EQ(arena_stats(w.a).free_pages, before + got);
    CHECK_EQ(room_stats(w.r).stock, 1);
    CHECK_EQ(room_stats(w.r).frees_remote, WIN_N + K);
    CHECK_EQ(lab_check(w.a), 0);
    /* the owner again: the top, then the zone (nothing is left in the lane) */
    for (int i = 0; i < 4; i++)
        REQUIRE((held[nh++] = lab_room_alloc(w.r, LAB_GFP_NOWAIT)) != NULL);
    CHECK_EQ(atomic_load(&log.total), 0);
    CHECK_EQ(lab_check(w.a), 0);
    CHECK_EQ(repeats(held, (size_t)nh), 0);
    window_end(&w, held, nh);
}

/* A block freed twice by another context, both entries below a window's
 * top: reclaim gives it to the zone once and reports the other entry.  (A
 * take-back's blocks bound for the zone wait in runs; each is claimed as
 * it joins one, or its second entry passed the check too and the block
 * reached the zone twice.)  A debug build, strict, reports the second
 * free at once and takes back a copy: the same counts. */
static void test_reclaim_gives_a_block_freed_twice_to_the_zone_once(void)
{
    static struct misuse_log log;
    struct window_case w;
    window_begin(&w, 0, &log);
    if (!w.r->lanes) {
        fprintf(stderr, "  (no lanes here: nothing to take apart)\n");
        window_end(&w, NULL, 0);
        return;
    }
    REQUIRE(w.nrest >= 2);
    /* the lane: p0..p23, p3 again, then two more */
    lab_free_pages(w.a, w.p[3], 0);
    void *more[2] = { w.rest[--w.nrest], w.rest[--w.nrest] };
    lab_free_pages(w.a, more[0], 0);
    lab_free_pages(w.a, more[1], 0);
    void *held[8];
    int nh = 0;
    REQUIRE((held[nh++] = lab_room_alloc(w.r, LAB_GFP_NOWAIT)) == more[1]);   /* the top */
    size_t before = arena_stats(w.a).free_pages;
    size_t got = rooms_drain_surplus(w.a);
    CHECK_EQ(got, WIN_N);   /* p0..p23 once; more[0], the top now, stays */
    CHECK_EQ(arena_stats(w.a).free_pages, before + got);
    CHECK_EQ(atomic_load(&log.count[LAB_EDOUBLEFREE]), 1);
    CHECK_EQ(lab_check(w.a), 0);
    REQUIRE((held[nh++] = lab_room_alloc(w.r, LAB_GFP_NOWAIT)) == more[0]);
    window_end(&w, held, nh);
}

/* A bulk allocation with its stock empty takes a lane's entries straight
 * to the caller (room_take_out), in two runs where they straddle the end
 * of the lane's slots: 40 at a time, 300 times, through one lane of 8192
 * slots (a bulk free goes to the lane, strict or not), every block handed
 * out once a call and every page home at the end.  Strict arenas too:
 * their blocks come back claimed and are marked allocated again on the
 * way out. */
static void test_a_bulk_allocation_takes_a_lanes_entries_across_the_end_of_its_slots(void)
{
    for (int strict = 0; strict <= 1; strict++) {
        lab_arena *a = arena(1024, strict ? LAB_ARENA_STRICT_FREE : 0);
        lab_room *r = room(a, 32, 32, 0, 0);
        enum { B = 40, ROUNDS = 300 };
        void *p[B], *q[B];
        size_t twice = 0, short_calls = 0;
        for (int k = 0; k < ROUNDS; k++) {
            size_t got = lab_room_alloc_bulk(r, LAB_GFP_ATOMIC, p, B);
            short_calls += got != B;
            memcpy(q, p, got * sizeof(p[0]));
            qsort(q, got, sizeof(q[0]), cmp_ptr);
            for (size_t i = 1; i < got; i++)
                twice += q[i] == q[i - 1];
            lab_free_pages_bulk(a, p, got, 0);   /* into this thread's lane, strict too */
        }
        CHECK_EQ(short_calls, 0);
        CHECK_EQ(twice, 0);
        lab_room_stats rs = room_stats(r);   /* taken back, or still on their way */
        CHECK_EQ(rs.frees_remote + rs.in_ring, (uint64_t)B * ROUNDS);
        CHECK_EQ(lab_check(a), 0);
        lab_room_destroy(r);
        CHECK_EQ(lab_check(a), 0);
        CHECK_EQ(arena_stats(a).free_pages, arena_stats(a).total_pages);
        lab_arena_destroy(a);
    }
}

/* A bulk allocation that empties a window the walk opened must close it
 * (the lane's tail moves past it) before it reads the lanes again: the
 * hand-out that reads them from the tail would give the window's blocks a
 * second time.  The hand-out keeps a stale keep (read once in a while);
 * with the zone run down to its high watermark the window opens where the
 * hand-out, on that stale keep, takes nothing. */
static void test_a_bulk_allocation_closes_the_window_it_emptied(void)
{
    lab_arena *a = test_arena(4096, 10, 64, 128, 256);
    lab_room_config rc;
    lab_room_config_init(&rc);
    lab_room *r = NULL;
    REQUIRE(lab_room_create(a, &rc, &r) == 0);
    static void *p[64], *held[4096], *got[256];
    /* the zone plentiful: the hand-out's keep is read, and is large */
    REQUIRE(lab_room_alloc_bulk(r, LAB_GFP_ATOMIC, p, 64) == 64);
    /* the zone down to high: the keep is 0 now, the hand-out's is not */
    size_t nh = 0;
    lab_stats st;
    for (lab_stats_get(a, &st); st.free_pages > 256; lab_stats_get(a, &st)) {
        REQUIRE(nh < 4096);
        held[nh] = lab_alloc_pages(a, LAB_GFP_NOWAIT, 0);
        REQUIRE(held[nh] != NULL);
        nh++;
    }
    /* the 64 come back through this thread's lane */
    for (int i = 0; i < 64; i++)
        lab_free_pages(a, p[i], 0);
    size_t n = lab_room_alloc_bulk(r, LAB_GFP_ATOMIC, got, 32);
    lab_room_stats rs;
    lab_room_stats_get(r, &rs);
    CHECK_EQ(n, 32);
    n += lab_room_alloc_bulk(r, LAB_GFP_ATOMIC, got + n, 96);
    CHECK_EQ(n, 128);
    CHECK_EQ(lab_check(a), 0);
    /* every block handed out once */
    size_t twice = repeats(got, n);
    CHECK_EQ(twice, 0);
    /* and the first 32 came from the window: the 64 freed, back at once */
    CHECK_EQ(rs.frees_remote, 64);
    if (twice == 0)
        for (size_t i = 0; i < n; i++)
            lab_room_free(r, got[i]);
    lab_room_destroy(r);
    for (size_t i = 0; i < nh; i++)
        lab_free_pages(a, held[i], 0);
    CHECK_EQ(lab_check(a), 0);
    lab_stats_get(a, &st);
    CHECK_EQ(st.free_pages, st.total_pages);
    lab_arena_destroy(a);
}

int main(void)
{
    test_watchdog(240);
    RUN(test_a_block_freed_twice_through_the_ring_is_found_when_taken_back);
    RUN(test_a_bulk_allocation_closes_the_window_it_emptied);
    RUN(test_a_window_refuses_an_entry_whose_block_left_the_room);
    RUN(test_a_window_that_refuses_an_entry_at_its_close_leaves_the_stock_its_count);
    RUN(test_a_window_whose_every_entry_is_refused_closes_before_the_walk_goes_on);
    RUN(test_reclaim_takes_an_idle_owners_window_and_what_its_lane_holds_after_it);
    RUN(test_a_bulk_allocation_takes_a_lanes_entries_across_the_end_of_its_slots);
    RUN(test_reclaim_gives_a_block_freed_twice_to_the_zone_once);
    RUN(test_an_owners_free_of_a_block_a_window_holds_is_a_double_free);
    RUN(test_an_owners_free_closes_the_window_and_keeps_what_it_held);
    RUN(test_a_window_hands_out_a_block_freed_twice_once_for_each_free);
    RUN(test_a_remote_free_with_the_wrong_order_is_reported_as_such);
    RUN(test_strict_mode_arbitrates_owner_and_remote_free_of_one_block);
    RUN(test_strict_mode_reports_a_double_free_at_the_second_free);
    RUN(test_frees_beyond_a_full_ring_go_to_the_zone);
    RUN(test_a_bulk_free_of_the_rings_size_fills_the_ring);
    RUN(test_a_take_back_into_a_full_stock_goes_to_the_zone_in_runs);
    RUN(test_destroy_empties_the_ring_and_later_frees_reach_the_zone);
    RUN(test_a_destroy_racing_remote_frees_leaves_nothing_in_the_ring);
    RUN(test_more_freers_than_lanes_all_come_home);
    RUN(test_a_full_lane_spills_into_the_ring);
    RUN(test_bulk_frees_straddle_the_end_of_a_lane);
    RUN(test_a_lane_keeps_recent_frees_while_the_zone_has_plenty);
    RUN(test_lanes_of_several_rooms_share_the_zones_surplus);
    RUN(test_a_destroyed_rooms_lanes_stop_sharing_the_surplus);
    RUN(test_lanes_of_take_all_rooms_take_no_share);
    RUN(test_a_room_takes_its_lanes_back_when_the_zone_cannot_serve);
    RUN(test_an_allocations_take_back_moves_at_most_take_max);
    RUN(test_destroy_takes_a_lanes_unpublished_entries);
    RUN(test_destroy_without_membarrier_ends_and_loses_nothing);
    RUN(test_injection_spares_a_room_whose_frees_wait_in_a_lane);
    RUN(test_a_room_at_its_quota_takes_back_what_its_lane_keeps);
    RUN(test_two_producers_and_the_owner_lose_and_duplicate_nothing);
    RUN(test_two_producers_and_a_bulk_allocating_owner_lose_and_duplicate_nothing);
    RUN(test_the_hand_off_crosses_the_wrap_of_its_positions);
    RUN(test_alloc_bulk_places_what_it_can_and_says_how_many);
    RUN(test_a_bulk_allocation_hands_out_lane_frees_without_the_stock);
    RUN(test_a_lanes_last_look_at_head_moves_on_with_its_tail);
    RUN(test_a_bulk_allocation_hands_out_no_lane_entry_that_fails_the_check);
    RUN(test_a_destroyed_rooms_lane_entry_with_the_wrong_order_is_refused);
    RUN(test_a_bulk_allocation_leaves_no_frees_behind_in_the_ring);
    RUN(test_a_bulk_allocation_leaves_a_lane_its_share);
    RUN(test_a_room_serves_orders_up_to_its_max_order);
    RUN(test_room_orders_above_the_limit_are_refused);
    RUN(test_an_orders_refill_moves_at_least_one_block);
    RUN(test_room_ids_are_reused_once_no_block_is_out);
    RUN(test_a_dead_rooms_handle_refuses_a_block_of_the_room_that_took_its_id);
    RUN(test_the_stats_count_pages_by_step_and_freed);
    RUN(test_a_refused_room_retires_no_room);
    RUN(test_a_rooms_quota_counts_its_stocks);
    RUN(test_atomic_refill_below_min_stocks_nothing_for_nowait);
    RUN(test_a_nowarn_room_counts_its_failures_without_reporting_them);
    RUN(test_reclaim_takes_an_idle_rooms_stock_but_not_its_reserve);
    RUN(test_reclaim_takes_even_one_block_below_the_top_and_reports_none_taken_as_none);
    RUN(test_a_room_destroyed_after_a_steal);
    RUN(test_a_wrong_order_free_of_a_room_block_with_hooks_writes_no_page);
    RUN(test_a_steal_leaves_the_owner_its_reserve);
    RUN(test_remote_frees_refill_a_reserve_before_a_lane_keeps_them);
    RUN(test_a_steal_leaves_the_frees_a_short_reserve_waits_for);
    RUN(test_a_blocking_room_request_waits_a_steal_out);
    RUN(test_a_blocking_owner_is_not_kept_waiting_by_steal_after_steal);
    RUN(test_destroy_waits_out_a_steal_in_flight);
    RUN(test_a_steal_and_a_late_freers_flush_never_both_take_the_ring);
    RUN(test_a_steal_leaves_the_ring_to_a_flush_under_way);
    RUN(test_a_steal_leaves_a_room_another_steal_holds_and_reports_nothing);
    RUN(test_reclaim_takes_an_idle_rooms_lanes);
    RUN(test_steals_against_a_running_owner);
    RUN(test_a_hooked_room_serves_even_a_flagless_request_through_its_hooks);
    RUN(test_a_remembered_lane_is_not_used_for_a_new_room_with_the_same_id);
    RUN(test_a_remembered_lane_is_not_used_for_a_room_of_a_later_arena);
    RUN(test_handlers_refilling_the_remembered_lane_misroute_nothing);
    RUN(test_a_lane_publishes_whole_lines_and_takes_frees_again_once_taken_back);
    RUN(test_a_late_double_free_racing_a_new_hand_out_loses_no_page);
    return test_finish();
}
