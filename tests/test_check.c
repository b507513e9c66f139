/*
 * lab_check finds what it claims to find.  Each behaviour breaks exactly one
 * invariant of a healthy arena by writing the internal state directly (the
 * test links the static library and includes src/internal.h), asserts that
 * lab_check names the expected class of fault, puts the state back, and
 * asserts the arena is healthy again.  A check that stopped detecting its
 * fault -- or started reporting a healthy arena -- fails here.
 */
#include "check.h"
#include "internal.h"

#include <pthread.h>
#include <signal.h>

/* 16 pages in four order-2 blocks, every descriptor written (PREFAULT
 * lists every block at creation). */
static lab_arena *small_arena(size_t pages, unsigned max_order, unsigned flags)
{
    lab_arena_config cfg;
    test_arena_config(&cfg, pages, max_order, 0, 0, 0);
    cfg.flags = flags;
    return test_arena_create(&cfg);
}

static lab_room *small_room(lab_arena *a, size_t batch, size_t high, size_t reserve)
{
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.batch = batch;
    rc.high = high;
    rc.reserve = reserve;
    lab_room *r = NULL;
    REQUIRE(lab_room_create(a, &rc, &r) == 0);
    return r;
}

static struct zone *zone_of(lab_arena *a) { return &a->zone; }

#define EXPECT_FAULT(a, code) do { CHECK_EQ(lab_check(a), code); } while (0)
#define EXPECT_HEALTHY(a) do { CHECK_EQ(lab_check(a), 0); } while (0)

static void test_healthy_arenas_pass(void)
{
    lab_arena *a = small_arena(16, 2, LAB_ARENA_PREFAULT);
    EXPECT_HEALTHY(a);
    lab_arena_destroy(a);
    a = small_arena(64, 4, 0);   /* lazy: most descriptors never written */
    EXPECT_HEALTHY(a);
    lab_arena_destroy(a);
}

static void test_watermarks_out_of_order_are_reported(void)
{
    lab_arena *a = small_arena(16, 2, LAB_ARENA_PREFAULT);
    struct zone *z = zone_of(a);
    size_t min = z->wmark[WMARK_MIN];
    z->wmark[WMARK_MIN] = z->wmark[WMARK_LOW] + 1;
    EXPECT_FAULT(a, LAB_ECHECK_WMARK);
    z->wmark[WMARK_MIN] = min;
    EXPECT_HEALTHY(a);
    lab_arena_destroy(a);
}

static void test_highatomic_reserve_above_its_cap_is_reported(void)
{
    lab_arena *a = small_arena(128, 2, LAB_ARENA_PREFAULT);
    struct zone *z = zone_of(a);
    z->ha_pages = z->ha_cap + 1;
    EXPECT_FAULT(a, LAB_ECHECK_WMARK);
    z->ha_pages = z->ha_cap;          /* within the cap, but no block is reserved */
    if (z->ha_cap)
        EXPECT_FAULT(a, LAB_ECHECK_COUNT);
    z->ha_pages = 0;
    EXPECT_HEALTHY(a);
    lab_arena_destroy(a);
}

/* Frame states: a head that says TAIL, a state out of range, an order
 * above max_order. */
static void test_bad_block_heads_are_reported(void)
{
    lab_arena *a = small_arena(16, 2, LAB_ARENA_PREFAULT);
    struct page *p = &zone_of(a)->pages[4];
    unsigned st = pg_state(p), o = pg_order(p);
    pg_set_state(p, PG_TAIL);
    EXPECT_FAULT(a, LAB_ECHECK_STATE);
    pg_set_state(p, PG_NR_STATES);
    EXPECT_FAULT(a, LAB_ECHECK_STATE);
    pg_set_state(p, st);
    pg_set_order(p, 3);
    EXPECT_FAULT(a, LAB_ECHECK_STATE);
    pg_set_order(p, o);
    EXPECT_HEALTHY(a);
    lab_arena_destroy(a);
}

/* Alignment: a head not aligned to its order, a frame inside a block that
 * is not TAIL, a block running past the listed range. */
static void test_misaligned_and_overlapping_blocks_are_reported(void)
{
    lab_arena *a = small_arena(16, 2, LAB_ARENA_PREFAULT);
    struct zone *z = zone_of(a);
    void *blk = lab_alloc_pages(a, LAB_GFP_KERNEL, 2);
    REQUIRE(blk);
    uint32_t f = frame_of(z, blk);
    /* the block's head says order 0, and its second frame claims order 1 */
    pg_set_order(&z->pages[f], 0);
    pg_set_state(&z->pages[f + 1], PG_ALLOCATED);
    pg_set_order(&z->pages[f + 1], 1);
    EXPECT_FAULT(a, LAB_ECHECK_ALIGN);
    pg_set_state(&z->pages[f + 1], PG_TAIL);
    pg_set_order(&z->pages[f + 1], 0);
    pg_set_order(&z->pages[f], 2);
    EXPECT_HEALTHY(a);
    pg_set_state(&z->pages[f + 2], PG_ALLOCATED);   /* inside the block */
    EXPECT_FAULT(a, LAB_ECHECK_ALIGN);
    pg_set_state(&z->pages[f + 2], PG_TAIL);
    EXPECT_HEALTHY(a);
    lab_free_pages(a, blk, 2);
    lab_arena_destroy(a);

    /* 12 pages, max_order 3: blocks at 0 (order 3) and 8 (order 2); the
     * second made order 3 would run to frame 16 */
    a = small_arena(12, 3, LAB_ARENA_PREFAULT);
    z = zone_of(a);
    REQUIRE(pg_order(&z->pages[8]) == 2);
    pg_set_order(&z->pages[8], 3);
    EXPECT_FAULT(a, LAB_ECHECK_ALIGN);
    pg_set_order(&z->pages[8], 2);
    EXPECT_HEALTHY(a);
    lab_arena_destroy(a);
}

/* Two free buddies of the same order that were never merged. */
static void test_unmerged_free_buddies_are_reported(void)
{
    lab_arena *a = small_arena(16, 2, LAB_ARENA_PREFAULT);
    struct zone *z = zone_of(a);
    REQUIRE(pg_state(&z->pages[0]) == PG_FREE && pg_order(&z->pages[0]) == 2);
    pg_set_order(&z->pages[0], 1);
    pg_set_state(&z->pages[2], PG_FREE);
    pg_set_order(&z->pages[2], 1);
    EXPECT_FAULT(a, LAB_ECHECK_BUDDY);
    pg_set_state(&z->pages[2], PG_TAIL);
    pg_set_order(&z->pages[2], 0);
    pg_set_order(&z->pages[0], 2);
    EXPECT_HEALTHY(a);
    lab_arena_destroy(a);
}

/* Deferred initialisation: descriptors past `populated` must be untouched. */
static void test_a_written_descriptor_past_the_populated_range_is_reported(void)
{
    lab_arena *a = small_arena(64, 2, 0);
    struct zone *z = zone_of(a);
    void *p = lab_alloc_pages(a, LAB_GFP_KERNEL, 0);
    REQUIRE(p);
    REQUIRE(z->populated < z->nr_pages);
    struct page *last = &z->pages[z->nr_pages - 1];
    pg_set_state(last, PG_FREE);
    EXPECT_FAULT(a, LAB_ECHECK_STATE);
    pg_set_state(last, PG_TAIL);
    EXPECT_HEALTHY(a);
    lab_free_pages(a, p, 0);
    lab_arena_destroy(a);
}

/* Counters that disagree with the frames: free pages, the void. */
static void test_zone_counters_that_disagree_with_the_frames_are_reported(void)
{
    lab_arena *a = small_arena(16, 2, LAB_ARENA_PREFAULT);
    struct zone *z = zone_of(a);
    z->free_pages++;
    EXPECT_FAULT(a, LAB_ECHECK_COUNT);
    z->free_pages--;
    z->void_pages++;
    EXPECT_FAULT(a, LAB_ECHECK_COUNT);
    z->void_pages--;
    z->void_inflight++;
    EXPECT_FAULT(a, LAB_ECHECK_COUNT);
    z->void_inflight--;
    EXPECT_HEALTHY(a);
    lab_arena_destroy(a);
}

/* Free lists: an entry that names a room, a broken back link, a length that
 * differs from the counter, the non-empty bitmap, a free block on no list. */
static void test_broken_free_lists_are_reported(void)
{
    lab_arena *a = small_arena(16, 2, LAB_ARENA_PREFAULT);
    struct zone *z = zone_of(a);
    struct free_area *fa = &z->area[2];
    REQUIRE(fa->nr_free == 4);
    uint32_t head = fa->head, second = z->pages[head].next;
    pg_set_room(z, head, 1);
    EXPECT_FAULT(a, LAB_ECHECK_STATE);    /* a free block that still names a room */
    pg_set_room(z, head, 0);
    uint32_t back = z->pages[second].prev;
    z->pages[second].prev = NIL;
    EXPECT_FAULT(a, LAB_ECHECK_COUNT);
    z->pages[second].prev = back;
    fa->nr_free++;
    EXPECT_FAULT(a, LAB_ECHECK_COUNT);
    fa->nr_free--;
    z->nonempty ^= 1u;   /* order 0 is empty */
    EXPECT_FAULT(a, LAB_ECHECK_COUNT);
    z->nonempty ^= 1u;
    EXPECT_HEALTHY(a);
    list_unlink(z, fa, second);      /* still FREE, on no list */
    EXPECT_FAULT(a, LAB_ECHECK_COUNT);
    list_push(z, fa, second);
    EXPECT_HEALTHY(a);
    lab_arena_destroy(a);
}

/* The void: a VOID block taken off the void lists. */
static void test_a_void_block_on_no_void_list_is_reported(void)
{
    lab_arena *a = small_arena(64, 2, LAB_ARENA_PREFAULT);
    struct zone *z = zone_of(a);
    REQUIRE(lab_arena_trim(a) > 0);
    unsigned o = 0;
    while (o <= z->max_order && z->void_area[o].head == NIL)
        o++;
    REQUIRE(o <= z->max_order);
    uint32_t f = z->void_area[o].head;
    list_unlink(z, &z->void_area[o], f);
    EXPECT_FAULT(a, LAB_ECHECK_COUNT);
    list_push(z, &z->void_area[o], f);
    EXPECT_HEALTHY(a);
    lab_arena_destroy(a);
}

/* Rooms: stock and reserve counters, a reserve above its size, a stock above
 * high + batch; and a room whose owner is inside an operation (odd
 * sequence) is left alone, since its counters may be in motion. */
static void test_room_counters_that_disagree_are_reported(void)
{
    lab_arena *a = small_arena(64, 2, LAB_ARENA_PREFAULT);
    lab_room *r = small_room(a, 4, 8, 2);
    void *p = lab_room_alloc(r, LAB_GFP_KERNEL);   /* a refill of 4: stock 3 */
    REQUIRE(p);
    lab_room_free(r, p);
    EXPECT_HEALTHY(a);
    struct room_stock *s0 = &r->stk[0];
    size_t stock = atomic_load(&s0->n), reserve = atomic_load(&r->nr_reserve);
    REQUIRE(stock == 4 && reserve == 2);

    atomic_store(&s0->n, stock + 2);   /* two off: one could be a fast call in flight */
    EXPECT_FAULT(a, LAB_ECHECK_COUNT);
    atomic_store(&r->seq, atomic_load(&r->seq) + 1);   /* owner inside an operation */
    EXPECT_HEALTHY(a);
    atomic_store(&r->seq, atomic_load(&r->seq) + 1);
    atomic_store(&s0->n, stock);

    /* A fast call in flight: release builds' fast paths mark nothing, so a
     * check may see a pop between its state store and its count store (one
     * block fewer in the stock's state than the count says), or a push
     * between the same two (one more).  Release builds take such a room
     * as in motion; debug builds mark every call, so there it is a fault.
     * Two blocks off is a fault in every build. */
    struct zone *zn = zone_of(a);
    struct page *top = &zn->pages[frame_of(zn, s0->addr[stock - 1])];
    struct page *low = &zn->pages[frame_of(zn, s0->addr[0])];
    pg_set_state(top, PG_ALLOCATED);
    if (LAB_DEBUG_ON)
        EXPECT_FAULT(a, LAB_ECHECK_COUNT);
    else
        EXPECT_HEALTHY(a);
    pg_set_state(low, PG_ALLOCATED);
    EXPECT_FAULT(a, LAB_ECHECK_COUNT);
    pg_set_state(low, PG_ROOM);
    pg_set_state(top, PG_ROOM);
    atomic_store(&s0->n, stock - 1);
    if (LAB_DEBUG_ON)
        EXPECT_FAULT(a, LAB_ECHECK_COUNT);
    else
        EXPECT_HEALTHY(a);
    atomic_store(&s0->n, stock - 2);
    EXPECT_FAULT(a, LAB_ECHECK_COUNT);
    atomic_store(&s0->n, stock);
    EXPECT_HEALTHY(a);

    /* a stock page whose descriptor names no room */
    uint32_t f = frame_of(zone_of(a), s0->addr[0]);
    pg_set_room(zone_of(a), f, 0);
    EXPECT_FAULT(a, LAB_ECHECK_STATE);
    pg_set_room(zone_of(a), f, r->id);
    /* the descriptor's copy of the room id disagrees with room_of */
    atomic_store(&zone_of(a)->pages[f].room, (uint16_t)(r->id + 1));
    EXPECT_FAULT(a, LAB_ECHECK_STATE);
    atomic_store(&zone_of(a)->pages[f].room, (uint16_t)r->id);
    EXPECT_HEALTHY(a);
    /* a block just taken from the zone for a room, halfway adopted (the
     * copy written, room_of not yet): what a concurrent check may see */
    void *z0 = lab_alloc_pages(a, LAB_GFP_NOWAIT, 0);
    REQUIRE(z0);
    uint32_t g = frame_of(zone_of(a), z0);
    atomic_store(&zone_of(a)->pages[g].room, (uint16_t)r->id);
    EXPECT_HEALTHY(a);
    atomic_store(&zone_of(a)->pages[g].room, 0);
    lab_free_pages(a, z0, 0);

    atomic_store(&r->nr_reserve, reserve - 1);
    EXPECT_FAULT(a, LAB_ECHECK_COUNT);
    atomic_store(&r->nr_reserve, reserve);

    size_t target = r->reserve_target;
    r->reserve_target = reserve - 1;
    EXPECT_FAULT(a, LAB_ECHECK_WMARK);
    r->reserve_target = target;

    size_t high = s0->high, batch = s0->batch;
    s0->high = 1;
    s0->batch = 1;
    EXPECT_FAULT(a, LAB_ECHECK_COUNT);
    s0->high = high;
    s0->batch = batch;
    EXPECT_HEALTHY(a);
    lab_room_destroy(r);
    EXPECT_HEALTHY(a);
    lab_arena_destroy(a);
}

/* lab_check against an owner stopped anywhere in its bulk calls: a signal
 * stops the owner thread at whatever instruction of its loop of
 * lab_room_alloc_bulk and lab_room_free_bulk (32 pages each) it is at,
 * and this thread runs lab_check while the handler waits.  A release
 * build's bulk free stores up to 32 page states before its one store of
 * the stock's count, so it marks the call (an odd seq_free) and a check
 * that finds the owner inside skips the room; unmarked, that room would be
 * blocks off, reported.  The stock never runs dry or over high here, so
 * the owner never stops holding the zone's lock. */
static struct freeze {
    lab_arena *a;
    lab_room *r;
    _Atomic int frozen, thaw, stop;   /* frozen: 1 stopped, 2 passed by */
    _Atomic unsigned long in_free_run;
} fz;

static void freeze_handler(int sig)
{
    (void)sig;
    /* Debug builds check the arena under the zone lock every so many
     * operations: an owner stopped there would stop lab_check too. */
    if (atomic_load(&fz.a->zone.lock.locked)) {
        atomic_store(&fz.frozen, 2);
        return;
    }
    if (atomic_load_explicit(&fz.r->seq_free, memory_order_relaxed) & 1)
        atomic_fetch_add(&fz.in_free_run, 1);
    atomic_store(&fz.frozen, 1);
    while (!atomic_load(&fz.thaw))
        ;
    atomic_store(&fz.thaw, 0);
    atomic_store(&fz.frozen, 0);
}

static void *freeze_owner(void *arg)
{
    (void)arg;
    void *p[32];
    while (!atomic_load(&fz.stop)) {
        size_t n = lab_room_alloc_bulk(fz.r, LAB_GFP_NOWAIT, p, 32);
        lab_room_free_bulk(fz.r, p, n);
    }
    return NULL;
}

static void test_a_check_skips_an_owner_stopped_inside_a_bulk_call(void)
{
    lab_arena *a = small_arena(1024, 2, LAB_ARENA_PREFAULT);
    memset(&fz, 0, sizeof(fz));
    fz.a = a;
    fz.r = small_room(a, 64, 256, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = freeze_handler;
    sigemptyset(&sa.sa_mask);
    REQUIRE(sigaction(SIGUSR1, &sa, NULL) == 0);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, freeze_owner, NULL) == 0);
    unsigned long bad = 0;
    for (int i = 0; i < 2000; i++) {
        REQUIRE(pthread_kill(t, SIGUSR1) == 0);
        int how;
        while ((how = atomic_load(&fz.frozen)) == 0)
            ;
        if (how == 2) {
            atomic_store(&fz.frozen, 0);
            continue;
        }
        bad += lab_check(a) != 0;
        atomic_store(&fz.thaw, 1);
        while (atomic_load(&fz.frozen))
            ;
    }
    atomic_store(&fz.stop, 1);
    pthread_join(t, NULL);
    CHECK_EQ(bad, 0);
    /* The signal found the owner inside a bulk free's run (release builds;
     * a debug build's bulk free is lab_room_free's, one call a page, and
     * ThreadSanitizer delivers signals only at points of its choosing). */
    fprintf(stderr, "  stopped inside a bulk free %lu times in 2000\n", atomic_load(&fz.in_free_run));
#if !defined(__SANITIZE_THREAD__)
    if (!LAB_DEBUG_ON)
        CHECK(atomic_load(&fz.in_free_run) > 0);
#endif
    EXPECT_HEALTHY(a);
    lab_room_destroy(fz.r);
    EXPECT_HEALTHY(a);
    lab_arena_destroy(a);
}

/* The report names the fault; without a room table (its mapping refused)
 * the zone is still checked. */
static void test_the_report_names_the_fault(void)
{
    lab_arena *a = small_arena(16, 2, LAB_ARENA_PREFAULT);
    struct zone *z = zone_of(a);
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    int saved = dup(2);
    dup2(fds[1], 2);
    z->free_pages++;
    int err = lab_check(a);
    z->free_pages--;
    dup2(saved, 2);
    close(saved);
    close(fds[1]);
    char buf[512] = { 0 };
    ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
    close(fds[0]);
    CHECK_EQ(err, LAB_ECHECK_COUNT);
    CHECK(n > 0 && strstr(buf, "free pages differ from the zone's counter") != NULL);
    EXPECT_HEALTHY(a);
    lab_arena_destroy(a);
}

int main(void)
{
    test_watchdog(60);
    RUN(test_healthy_arenas_pass);
    RUN(test_watermarks_out_of_order_are_reported);
    RUN(test_highatomic_reserve_above_its_cap_is_reported);
    RUN(test_bad_block_heads_are_reported);
    RUN(test_misaligned_and_overlapping_blocks_are_reported);
    RUN(test_unmerged_free_buddies_are_reported);
    RUN(test_a_written_descriptor_past_the_populated_range_is_reported);
    RUN(test_zone_counters_that_disagree_with_the_frames_are_reported);
    RUN(test_broken_free_lists_are_reported);
    RUN(test_a_void_block_on_no_void_list_is_reported);
    RUN(test_room_counters_that_disagree_are_reported);
    RUN(test_a_check_skips_an_owner_stopped_inside_a_bulk_call);
    RUN(test_the_report_names_the_fault);
    return test_finish();
}
