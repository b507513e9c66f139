/*
 * Edges: behaviour exactly at a boundary, where an off-by-one or a dropped
 * half of a condition changes the answer by one page.  Each test walks up
 * to the boundary one page at a time and asserts exact counts on both
 * sides of it.
 */
#include "check.h"

#define PAGES 256
#define WMIN  16
#define WLOW  32
#define WHIGH 48

/* The background reclaimer is woken when a request leaves free pages below
 * low, not at low (Linux: wakeup_kswapd when below the low watermark).
 * NOWAIT requests only raise the flag and count the wake; the reclaimer is
 * never started, so the count stays at the first wake. */
static void test_reclaimer_is_woken_below_low_not_at_low(void)
{
    lab_arena *a = test_arena(PAGES, 0, WMIN, WLOW, WHIGH);
    lab_stats s;
    for (size_t i = 0; i < PAGES - WLOW; i++)
        REQUIRE(lab_alloc_pages(a, LAB_GFP_NOWAIT, 0) != NULL);
    lab_stats_get(a, &s);
    CHECK_EQ(s.free_pages, WLOW);
    CHECK_EQ(s.kswapd_wakes, 0);          /* at low: no wake */
    REQUIRE(lab_alloc_pages(a, LAB_GFP_NOWAIT, 0) != NULL);
    lab_stats_get(a, &s);
    CHECK_EQ(s.free_pages, WLOW - 1);
    CHECK_EQ(s.kswapd_wakes, 1);          /* one below: woken */
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* The same rule for a room's refill from the zone (batch 1: one page per
 * refill, so the refill that crosses low is exactly known). */
static void test_room_refill_wakes_the_reclaimer_below_low_not_at_low(void)
{
    lab_arena *a = test_arena(PAGES, 0, WMIN, WLOW, WHIGH);
    lab_room *r = test_room(a, 0, 1, 0);
    lab_stats s;
    for (size_t i = 0; i < PAGES - WLOW; i++)
        REQUIRE(lab_room_alloc(r, LAB_GFP_NOWAIT) != NULL);
    lab_stats_get(a, &s);
    CHECK_EQ(s.free_pages, WLOW);
    CHECK_EQ(s.kswapd_wakes, 0);
    REQUIRE(lab_room_alloc(r, LAB_GFP_NOWAIT) != NULL);
    lab_stats_get(a, &s);
    CHECK_EQ(s.free_pages, WLOW - 1);
    CHECK_EQ(s.kswapd_wakes, 1);
    lab_room_stats rs;
    lab_room_stats_get(r, &rs);
    CHECK_EQ(rs.refills, PAGES - WLOW + 1);
    CHECK_EQ(rs.out, PAGES - WLOW + 1);
    lab_room_destroy(r);
    lab_arena_destroy(a);
}

/* A room's private reserve serves HIGH requests, but not NOMEMALLOC ones:
 * NOMEMALLOC forbids every page below min, and the reserve is such pages
 * (API.md).  With the zone exhausted, ATOMIC|NOMEMALLOC fails and leaves the
 * reserve whole; ATOMIC then takes exactly one reserve page. */
static void test_room_reserve_is_not_served_to_nomemalloc(void)
{
    lab_arena *a = test_arena(PAGES, 0, WMIN, WLOW, WHIGH);
    lab_set_log_hook(a, NULL, NULL);
    lab_room *r = test_room(a, 4, 1, 0);
    size_t taken = 0;
    while (lab_alloc_pages(a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, 0) != NULL)
        taken++;
    CHECK_EQ(taken, PAGES - 4);
    lab_result res;
    lab_room_alloc_result(r, LAB_GFP_ATOMIC | LAB_GFP_NOMEMALLOC | LAB_GFP_NOWARN, &res);
    CHECK(res.addr == NULL);
    CHECK(res.reason != LAB_R_NONE);
    lab_room_stats rs;
    lab_room_stats_get(r, &rs);
    CHECK_EQ(rs.reserve, 4);
    CHECK_EQ(rs.reserve_allocs, 0);
    lab_room_alloc_result(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, &res);   /* not HIGH: no reserve either */
    CHECK(res.addr == NULL);
    lab_room_alloc_result(r, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, &res);
    CHECK(res.addr != NULL);
    CHECK_EQ(res.step, LAB_STEP_ROOM_RESERVE);
    lab_room_stats_get(r, &rs);
    CHECK_EQ(rs.reserve, 3);
    CHECK_EQ(rs.reserve_allocs, 1);
    lab_room_destroy(r);
    lab_arena_destroy(a);
}

/* After any bulk remote free, a batch-1 room never holds more than high +
 * batch pages in its stock (what the owner's next free may push before it
 * drains), whatever the run length; and every page is counted exactly once:
 * a run of n remote frees is n frees_remote, and handing the n pages out
 * again leaves nothing out and nothing lost. */
static void test_bulk_remote_frees_keep_a_small_stock_within_capacity(void)
{
    enum { MAX_RUN = 24 };
    lab_arena *a = test_arena(PAGES, 0, WMIN, WLOW, WHIGH);
    const size_t batch = 1, high = 4, cap = high + batch;
    lab_room *r = test_room(a, 0, batch, high);
    void *p[MAX_RUN];
    uint64_t remote_total = 0, allocs_total = 0;
    for (size_t n = 1; n <= MAX_RUN; n++) {
        for (size_t i = 0; i < n; i++)
            REQUIRE((p[i] = lab_room_alloc(r, LAB_GFP_KERNEL)) != NULL);
        allocs_total += n;
        lab_free_pages_bulk(a, p, n, 0);
        remote_total += n;
        lab_room_stats rs;
        for (size_t i = 0; i < n; i++) {
            REQUIRE((p[i] = lab_room_alloc(r, LAB_GFP_KERNEL)) != NULL);
            lab_room_stats_get(r, &rs);
            CHECK(rs.stock <= cap);
        }
        allocs_total += n;
        lab_room_stats_get(r, &rs);
        CHECK_EQ(rs.frees_remote, remote_total);
        CHECK_EQ(rs.out, n);
        for (size_t i = 0; i < n; i++) {
            lab_room_free(r, p[i]);
            lab_room_stats_get(r, &rs);
            CHECK(rs.stock <= cap);
        }
        lab_room_stats_get(r, &rs);
        CHECK_EQ(rs.out, 0);
        CHECK_EQ(rs.allocs, allocs_total);
        CHECK_EQ(lab_check(a), 0);
    }
    lab_stats s;
    lab_stats_get(a, &s);
    lab_room_stats rs;
    lab_room_stats_get(r, &rs);
    CHECK_EQ(s.room_pages, rs.stock);
    CHECK_EQ(s.free_pages + s.room_pages, PAGES);
    lab_room_destroy(r);
    lab_arena_destroy(a);
}

/* lab_room_alloc_bulk counts a failure in the arena's stats only when it
 * placed nothing (a partial result is a success), and zeroes every page it
 * places with LAB_GFP_ZERO, the first included. */
static void test_room_bulk_allocation_counts_only_empty_results_and_zeroes_every_page(void)
{
    enum { N = 8 };
    lab_arena *a = test_arena(PAGES, 0, WMIN, WLOW, WHIGH);
    lab_room *r = test_room(a, 0, 4, 0);
    void *p[N];
    /* dirty pages go back to the stock, then come out zeroed */
    size_t got = lab_room_alloc_bulk(r, LAB_GFP_NOWAIT, p, N);
    CHECK_EQ(got, N);
    for (size_t i = 0; i < got; i++)
        memset(p[i], 0x5a, LAB_PAGE_SIZE);
    lab_room_free_bulk(r, p, got);
    got = lab_room_alloc_bulk(r, LAB_GFP_NOWAIT | LAB_GFP_ZERO, p, N);
    CHECK_EQ(got, N);
    size_t dirty = 0;
    for (size_t i = 0; i < got; i++)
        for (size_t b = 0; b < LAB_PAGE_SIZE; b++)
            dirty += ((unsigned char *)p[i])[b] != 0;
    CHECK_EQ(dirty, 0);
    lab_room_free_bulk(r, p, got);

    /* 5 of the 8 stocked pages out, and the zone down to min: NOWAIT can
     * get only the 3 left in the stock */
    void *keep[5];
    for (int i = 0; i < 5; i++)
        REQUIRE((keep[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    size_t taken = 0;
    while (lab_alloc_pages(a, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, 0) != NULL)
        taken++;
    lab_room_stats rs;
    lab_room_stats_get(r, &rs);
    REQUIRE(rs.stock == 3);
    lab_stats s0, s1;
    lab_stats_get(a, &s0);
    got = lab_room_alloc_bulk(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, p, N);   /* partial */
    CHECK_EQ(got, rs.stock);
    lab_stats_get(a, &s1);
    CHECK_EQ(s1.fail_by_class[LAB_CLASS_NOWAIT], s0.fail_by_class[LAB_CLASS_NOWAIT]);
    void *q[N];
    CHECK_EQ(lab_room_alloc_bulk(r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, q, N), 0);   /* nothing */
    lab_stats_get(a, &s1);
    CHECK_EQ(s1.fail_by_class[LAB_CLASS_NOWAIT], s0.fail_by_class[LAB_CLASS_NOWAIT] + 1);
    lab_room_free_bulk(r, p, got);
    lab_room_free_bulk(r, keep, 5);
    lab_room_destroy(r);
    lab_stats_get(a, &s1);
    CHECK_EQ(s1.allocated_pages, taken);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* A minimum close to the arena's size: low and high derived from it would
 * pass the end, so both stop at the last page (API.md, tiny arenas). */
static void test_derived_watermarks_of_a_tiny_arena_stop_at_its_last_page(void)
{
    lab_arena *a = test_arena(64, 0, 60, 0, 0);   /* d = 15: low 75, high 90 */
    lab_stats s;
    lab_stats_get(a, &s);
    CHECK_EQ(s.wmark_min, 60);
    CHECK_EQ(s.wmark_low, 63);
    CHECK_EQ(s.wmark_high, 63);
    lab_arena_destroy(a);
}

int main(void)
{
    test_watchdog(60);
    RUN(test_reclaimer_is_woken_below_low_not_at_low);
    RUN(test_room_refill_wakes_the_reclaimer_below_low_not_at_low);
    RUN(test_room_reserve_is_not_served_to_nomemalloc);
    RUN(test_bulk_remote_frees_keep_a_small_stock_within_capacity);
    RUN(test_room_bulk_allocation_counts_only_empty_results_and_zeroes_every_page);
    RUN(test_derived_watermarks_of_a_tiny_arena_stop_at_its_last_page);
    return test_finish();
}
