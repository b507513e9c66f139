/* The watermark rule (labyrinth.h) step by step, the reasons and steps the result
 * form reports, the stats that count them, the high-order atomic reserve,
 * and the failure report through the log hook. */
#include "check.h"

#include <time.h>

#define MIN  64
#define LOW  80
#define HIGH 96
#define PAGES 1024

/* floors of the watermark rule for min = 64 */
#define FLOOR_NOWAIT   64   /* no reserve */
#define FLOOR_HIGH     32   /* HIGH with DIRECT_RECLAIM: m -= m/2 */
#define FLOOR_ATOMIC   24   /* HIGH without DIRECT_RECLAIM: then m -= m/4 */
#define FLOOR_MEMALLOC 0

#define GFP_HIGH_KERNEL (LAB_GFP_KERNEL | LAB_GFP_HIGH | LAB_GFP_NORETRY)

static size_t free_pages(lab_arena *a) { lab_stats s; lab_stats_get(a, &s); return s.free_pages; }
static size_t ha_pages(lab_arena *a) { lab_stats s; lab_stats_get(a, &s); return s.highatomic_pages; }

/* Blocks a test holds, to give back at its end. */
typedef struct {
    void **p;
    unsigned *ord;
    size_t n, cap;
} held_t;

static held_t held_new(size_t cap)
{
    held_t h = { calloc(cap, sizeof(void *)), calloc(cap, sizeof(unsigned)), 0, cap };
    REQUIRE(h.p && h.ord);
    return h;
}
static void held_push(held_t *h, void *p, unsigned o)
{
    REQUIRE(h->n < h->cap);
    h->p[h->n] = p;
    h->ord[h->n++] = o;
}
static void held_pop_free(lab_arena *a, held_t *h)
{
    REQUIRE(h->n > 0);
    h->n--;
    lab_free_pages(a, h->p[h->n], h->ord[h->n]);
}
static void held_release(lab_arena *a, held_t *h)
{
    while (h->n)
        held_pop_free(a, h);
    free(h->p);
    free(h->ord);
}

/* Allocate with gfp until a request fails.  Returns the successes; every
 * success must have been served at `want_step` (or any when 0); *last gets
 * the failing result. */
static size_t take_until_fail(lab_arena *a, held_t *h, lab_gfp_t gfp, unsigned order, int want_step,
                              lab_result *last)
{
    size_t n = 0;
    int bad_step = 0;
    for (;;) {
        lab_result r;
        lab_alloc_pages_result(a, gfp | LAB_GFP_NOWARN, order, &r);
        if (!r.addr) {
            *last = r;
            break;
        }
        if (want_step && r.step != want_step && !bad_step) {
            bad_step = 1;
            fprintf(stderr, "  success %zu served at step %d, expected %d\n", n, r.step, want_step);
        }
        CHECK_EQ(r.reason, LAB_R_NONE);
        held_push(h, r.addr, order);
        n++;
        REQUIRE(n <= PAGES);
    }
    CHECK(!bad_step);
    return n;
}

/* Bring free pages down to exactly `target` with order-0 MEMALLOC requests. */
static void drain_to(lab_arena *a, held_t *h, size_t target)
{
    while (free_pages(a) > target) {
        void *p = lab_alloc_pages(a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, 0);
        REQUIRE(p);
        held_push(h, p, 0);
    }
    REQUIRE(free_pages(a) == target);
}

/* ---- the rule, step by step ------------------------------------------------ */

static void test_each_class_stops_at_its_floor_in_turn(void)
{
    lab_arena *a = test_arena(PAGES, 10, MIN, LOW, HIGH);
    held_t h = held_new(PAGES);
    lab_result r;

    /* NOWAIT: no reserve, stops with exactly min free; all above min */
    CHECK_EQ(take_until_fail(a, &h, LAB_GFP_NOWAIT, 0, LAB_STEP_ZONE, &r), PAGES - MIN);
    CHECK_EQ(free_pages(a), MIN);
    CHECK_EQ(r.reason, LAB_R_WATERMARK);
    CHECK_EQ(r.step, LAB_STEP_NONE);

    /* HIGH with DIRECT_RECLAIM: half the reserve */
    CHECK_EQ(take_until_fail(a, &h, GFP_HIGH_KERNEL, 0, LAB_STEP_EMERGENCY, &r), MIN - FLOOR_HIGH);
    CHECK_EQ(free_pages(a), FLOOR_HIGH);
    CHECK_EQ(r.reason, LAB_R_RESERVE_EMPTY);

    /* ATOMIC: a further quarter */
    CHECK_EQ(take_until_fail(a, &h, LAB_GFP_ATOMIC, 0, LAB_STEP_EMERGENCY, &r), FLOOR_HIGH - FLOOR_ATOMIC);
    CHECK_EQ(free_pages(a), FLOOR_ATOMIC);
    CHECK_EQ(r.reason, LAB_R_RESERVE_EMPTY);

    /* MEMALLOC: every page */
    CHECK_EQ(take_until_fail(a, &h, LAB_GFP_MEMALLOC, 0, LAB_STEP_EMERGENCY, &r), FLOOR_ATOMIC);
    CHECK_EQ(free_pages(a), 0);
    CHECK_EQ(r.reason, LAB_R_RESERVE_EMPTY);

    lab_stats s;
    lab_stats_get(a, &s);
    CHECK_EQ(s.alloc_by_step[LAB_STEP_ZONE], PAGES - MIN);
    CHECK_EQ(s.alloc_by_step[LAB_STEP_EMERGENCY], MIN);
    CHECK_EQ(s.fail_by_reason[LAB_R_WATERMARK], 1);
    CHECK_EQ(s.fail_by_reason[LAB_R_RESERVE_EMPTY], 3);
    CHECK_EQ(s.fail_by_class[LAB_CLASS_NOWAIT], 1);
    CHECK_EQ(s.fail_by_class[LAB_CLASS_KERNEL], 1);
    CHECK_EQ(s.fail_by_class[LAB_CLASS_ATOMIC], 1);
    CHECK_EQ(s.fail_by_class[LAB_CLASS_OTHER], 1);   /* MEMALLOC alone */
    CHECK_EQ(s.highatomic_pages, 0);                 /* order 0 never reserves */
    CHECK_EQ(lab_check(a), 0);

    held_release(a, &h);
    CHECK_EQ(free_pages(a), PAGES);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

static void test_nomemalloc_takes_nothing_below_min(void)
{
    const lab_gfp_t noreserve[] = {
        LAB_GFP_ATOMIC | LAB_GFP_NOMEMALLOC,
        LAB_GFP_MEMALLOC | LAB_GFP_NOMEMALLOC,
        LAB_GFP_MEMALLOC | LAB_GFP_HIGH | LAB_GFP_NOMEMALLOC,
        GFP_HIGH_KERNEL | LAB_GFP_NOMEMALLOC,
    };
    const size_t n = sizeof(noreserve) / sizeof(noreserve[0]);
    for (size_t first = 0; first < n; first++) {
        lab_arena *a = test_arena(PAGES, 10, MIN, LOW, HIGH);
        held_t h = held_new(PAGES);
        lab_result r;
        /* in a fresh arena, this class goes down to min and no further ... */
        CHECK_EQ(take_until_fail(a, &h, noreserve[first], 0, LAB_STEP_ZONE, &r), PAGES - MIN);
        CHECK_EQ(free_pages(a), MIN);
        CHECK_EQ(r.reason, LAB_R_WATERMARK);   /* no reserve access: not RESERVE_EMPTY */
        /* ... and neither does any other NOMEMALLOC class */
        for (size_t j = 0; j < n; j++) {
            CHECK_EQ(take_until_fail(a, &h, noreserve[j], 0, 0, &r), 0);
            CHECK_EQ(r.reason, LAB_R_WATERMARK);
        }
        /* order 1 too, and no high-order atomic reserve for NOMEMALLOC */
        CHECK_EQ(take_until_fail(a, &h, LAB_GFP_ATOMIC | LAB_GFP_NOMEMALLOC, 1, 0, &r), 0);
        CHECK_EQ(free_pages(a), MIN);
        CHECK_EQ(ha_pages(a), 0);
        held_release(a, &h);
        CHECK_EQ(lab_check(a), 0);
        lab_arena_destroy(a);
    }
}

/* An order-k request succeeds iff free - 2^k >= floor: at floor + 2^k - 1
 * free pages it fails, at floor + 2^k it succeeds and leaves exactly floor. */
static void test_higher_orders_succeed_iff_free_minus_size_reaches_floor(void)
{
    static const struct { lab_gfp_t gfp; size_t floor; int fail_reason; } cls[] = {
        { LAB_GFP_NOWAIT, FLOOR_NOWAIT, LAB_R_WATERMARK },
        { GFP_HIGH_KERNEL, FLOOR_HIGH, LAB_R_RESERVE_EMPTY },
        { LAB_GFP_ATOMIC, FLOOR_ATOMIC, LAB_R_RESERVE_EMPTY },
        { LAB_GFP_MEMALLOC, FLOOR_MEMALLOC, LAB_R_RESERVE_EMPTY },
    };
    static const unsigned orders[] = { 1, 3, 5 };
    for (size_t c = 0; c < sizeof(cls) / sizeof(cls[0]); c++) {
        for (size_t i = 0; i < sizeof(orders) / sizeof(orders[0]); i++) {
            unsigned k = orders[i];
            size_t size = (size_t)1 << k;
            int before = check_failures;
            lab_arena *a = test_arena(PAGES, 10, MIN, LOW, HIGH);
            held_t h = held_new(PAGES);
            lab_result r;

            drain_to(a, &h, cls[c].floor + size - 1);
            lab_alloc_pages_result(a, cls[c].gfp | LAB_GFP_NOWARN, k, &r);
            CHECK(r.addr == NULL);
            CHECK_EQ(r.reason, cls[c].fail_reason);
            CHECK_EQ(free_pages(a), cls[c].floor + size - 1);

            held_pop_free(a, &h);                    /* one page more */
            CHECK_EQ(free_pages(a), cls[c].floor + size);
            lab_alloc_pages_result(a, cls[c].gfp | LAB_GFP_NOWARN, k, &r);
            CHECK(r.addr != NULL);
            CHECK_EQ(r.reason, LAB_R_NONE);
            CHECK_EQ(r.step, cls[c].floor >= MIN ? LAB_STEP_ZONE : LAB_STEP_EMERGENCY);
            CHECK_EQ(free_pages(a), cls[c].floor);
            if (r.addr) {
                size_t off = (size_t)((char *)r.addr - (char *)lab_arena_base(a));
                CHECK_EQ(off % ((size_t)LAB_PAGE_SIZE << k), 0);
                held_push(&h, r.addr, k);
            }
            if (check_failures != before)
                fprintf(stderr, "  (class %zu, order %u)\n", c, k);
            held_release(a, &h);
            CHECK_EQ(free_pages(a), PAGES);
            CHECK_EQ(lab_check(a), 0);
            lab_arena_destroy(a);
        }
    }
}

/* ---- stats -------------------------------------------------------------------- */

static void test_stats_count_failures_by_reason_and_class_and_successes_by_step(void)
{
    lab_arena *a = test_arena(PAGES, 10, MIN, LOW, HIGH);
    held_t h = held_new(PAGES);
    lab_result r;
    lab_stats s0, s;
    lab_stats_get(a, &s0);

    drain_to(a, &h, MIN + 2);
    lab_stats_get(a, &s0);
    lab_alloc_pages_result(a, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, 0, &r);       /* zone, 65 left */
    CHECK_EQ(r.step, LAB_STEP_ZONE);
    held_push(&h, r.addr, 0);
    lab_alloc_pages_result(a, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, 0, &r);       /* zone, 64 left */
    CHECK_EQ(r.step, LAB_STEP_ZONE);
    held_push(&h, r.addr, 0);
    lab_alloc_pages_result(a, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, 0, &r);       /* emergency, 63 */
    CHECK_EQ(r.step, LAB_STEP_EMERGENCY);
    held_push(&h, r.addr, 0);
    for (int i = 0; i < 3; i++) {
        lab_alloc_pages_result(a, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, 0, &r);   /* watermark x3 */
        CHECK_EQ(r.reason, LAB_R_WATERMARK);
    }
    lab_alloc_pages_result(a, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, 6, &r);       /* 63 - 64 < 24 */
    CHECK_EQ(r.reason, LAB_R_RESERVE_EMPTY);
    lab_alloc_pages_result(a, LAB_GFP_KERNEL | LAB_GFP_NOWARN, 11, &r);      /* above max_order */
    CHECK_EQ(r.reason, LAB_R_ORDER);
    lab_alloc_pages_result(a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, 11, &r);
    CHECK_EQ(r.reason, LAB_R_ORDER);

    lab_stats_get(a, &s);
    CHECK_EQ(s.alloc_by_step[LAB_STEP_ZONE] - s0.alloc_by_step[LAB_STEP_ZONE], 2);
    CHECK_EQ(s.alloc_by_step[LAB_STEP_EMERGENCY] - s0.alloc_by_step[LAB_STEP_EMERGENCY], 1);
    CHECK_EQ(s.fail_by_reason[LAB_R_WATERMARK], 3);
    CHECK_EQ(s.fail_by_reason[LAB_R_RESERVE_EMPTY], 1);
    CHECK_EQ(s.fail_by_reason[LAB_R_ORDER], 2);
    CHECK_EQ(s.fail_by_reason[LAB_R_FRAGMENTED], 0);
    CHECK_EQ(s.fail_by_reason[LAB_R_NONE], 0);
    CHECK_EQ(s.fail_by_class[LAB_CLASS_NOWAIT], 3);
    CHECK_EQ(s.fail_by_class[LAB_CLASS_ATOMIC], 1);
    CHECK_EQ(s.fail_by_class[LAB_CLASS_KERNEL], 1);
    CHECK_EQ(s.fail_by_class[LAB_CLASS_OTHER], 1);
    held_release(a, &h);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* ---- the high-order atomic reserve --------------------------------------------- */

static void test_highatomic_reserve_fills_and_stays_within_one_percent(void)
{
    lab_arena *a = test_arena(PAGES, 10, MIN, LOW, HIGH);
    const size_t cap = PAGES / 100;
    held_t h = held_new(PAGES);
    size_t worst = 0;

    void *p = lab_alloc_pages(a, LAB_GFP_ATOMIC, 1);
    REQUIRE(p);
    held_push(&h, p, 1);
    CHECK(ha_pages(a) > 0);
    for (int i = 0; i < 100; i++) {   /* ~400 pages: the zone stays above the floor */
        unsigned o = 1 + (unsigned)(i % 3);
        lab_result r;
        lab_alloc_pages_result(a, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, o, &r);
        if (r.addr)
            held_push(&h, r.addr, o);
        CHECK(r.addr != NULL);
        size_t ha = ha_pages(a);
        if (ha > worst)
            worst = ha;
    }
    CHECK(ha_pages(a) > 0);
    CHECK(worst <= cap);
    lab_stats s;
    lab_stats_get(a, &s);
    CHECK(s.reserve_pages >= s.highatomic_pages);
    CHECK_EQ(lab_check(a), 0);
    held_release(a, &h);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* Plenty of free pages, none in a block of order 3: the free lists cannot
 * serve an order-3 request, the reserve can (for atomic requests only). */
static void test_highatomic_reserve_serves_atomic_when_free_lists_are_fragmented(void)
{
    lab_arena *a = test_arena(PAGES, 10, MIN, LOW, HIGH);
    held_t h = held_new(PAGES);
    lab_result r;

    lab_alloc_pages_result(a, LAB_GFP_ATOMIC, 3, &r);
    REQUIRE(r.addr);
    CHECK_EQ(r.step, LAB_STEP_ZONE);
    held_push(&h, r.addr, 3);
    CHECK_EQ(ha_pages(a), 8);

    /* take every page, then give back every other one: only order-0 holes */
    held_t all = held_new(PAGES);
    void *q;
    while ((q = lab_alloc_pages(a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, 0)) != NULL)
        held_push(&all, q, 0);
    CHECK_EQ(free_pages(a), 0);
    for (size_t i = 0; i < all.n; i += 2) {
        lab_free_pages(a, all.p[i], 0);
        all.p[i] = NULL;
    }
    size_t nfree = free_pages(a);
    CHECK(nfree > MIN + 8);
    lab_stats s;
    lab_stats_get(a, &s);
    CHECK_EQ(s.free_blocks[0], nfree);

    /* no reserve for NOWAIT: fragmented */
    lab_alloc_pages_result(a, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, 3, &r);
    CHECK(r.addr == NULL);
    CHECK_EQ(r.reason, LAB_R_FRAGMENTED);
    /* atomic: from the reserve */
    lab_alloc_pages_result(a, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, 3, &r);
    CHECK(r.addr != NULL);
    CHECK_EQ(r.step, LAB_STEP_HIGHATOMIC);
    CHECK_EQ(ha_pages(a), 0);
    if (r.addr) {
        stamp_block(r.addr, 3, 42);
        CHECK(stamp_ok(r.addr, 3, 42));
        held_push(&h, r.addr, 3);
    }
    CHECK_EQ(free_pages(a), nfree);   /* the free lists gave nothing */
    /* and the reserve is now empty */
    lab_alloc_pages_result(a, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, 3, &r);
    CHECK(r.addr == NULL);
    CHECK_EQ(r.reason, LAB_R_FRAGMENTED);
    CHECK_EQ(lab_check(a), 0);

    for (size_t i = 0; i < all.n; i++)
        if (all.p[i])
            lab_free_pages(a, all.p[i], 0);
    free(all.p);
    free(all.ord);
    held_release(a, &h);
    CHECK_EQ(free_pages(a), PAGES);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

static void test_highatomic_reserve_serves_atomic_below_its_floor(void)
{
    lab_arena *a = test_arena(PAGES, 10, MIN, LOW, HIGH);
    held_t h = held_new(PAGES);
    lab_result r;
    lab_alloc_pages_result(a, LAB_GFP_ATOMIC, 2, &r);
    REQUIRE(r.addr);
    held_push(&h, r.addr, 2);
    CHECK_EQ(ha_pages(a), 4);
    drain_to(a, &h, 0);
    lab_alloc_pages_result(a, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, 1, &r);   /* splits the order-2 block */
    CHECK(r.addr != NULL);
    CHECK_EQ(r.step, LAB_STEP_HIGHATOMIC);
    if (r.addr)
        held_push(&h, r.addr, 1);
    CHECK_EQ(ha_pages(a), 2);
    lab_alloc_pages_result(a, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, 1, &r);
    CHECK_EQ(r.step, LAB_STEP_HIGHATOMIC);
    if (r.addr)
        held_push(&h, r.addr, 1);
    CHECK_EQ(ha_pages(a), 0);
    lab_alloc_pages_result(a, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, 1, &r);
    CHECK(r.addr == NULL);
    CHECK_EQ(r.reason, LAB_R_RESERVE_EMPTY);
    /* order 0 atomic requests do not use it (not high-order) */
    CHECK_EQ(lab_check(a), 0);
    held_release(a, &h);
    CHECK_EQ(free_pages(a), PAGES);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

static void test_highatomic_reserve_is_released_before_a_kernel_request_fails(void)
{
    lab_arena *a = test_arena(PAGES, 10, MIN, LOW, HIGH);
    held_t h = held_new(PAGES);
    lab_result r;
    lab_alloc_pages_result(a, LAB_GFP_ATOMIC, 3, &r);
    REQUIRE(r.addr);
    held_push(&h, r.addr, 3);
    CHECK_EQ(ha_pages(a), 8);
    CHECK_EQ(take_until_fail(a, &h, LAB_GFP_NOWAIT, 0, 0, &r), PAGES - 16 - MIN);
    CHECK_EQ(free_pages(a), MIN);

    lab_alloc_pages_result(a, LAB_GFP_KERNEL | LAB_GFP_NOWARN, 0, &r);
    CHECK(r.addr != NULL);
    CHECK_EQ(r.step, LAB_STEP_RECLAIM);
    if (r.addr)
        held_push(&h, r.addr, 0);
    CHECK_EQ(ha_pages(a), 0);
    CHECK_EQ(free_pages(a), MIN + 8 - 1);
    /* the released pages are ordinary free pages now */
    CHECK_EQ(take_until_fail(a, &h, LAB_GFP_NOWAIT, 0, LAB_STEP_ZONE, &r), 7);
    CHECK_EQ(lab_check(a), 0);
    held_release(a, &h);
    CHECK_EQ(free_pages(a), PAGES);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* ---- the failure report ----------------------------------------------------------- */

struct log_capture {
    int n;
    char last[1024];
};
static void capture_log(void *ctx, const char *msg, size_t len)
{
    struct log_capture *c = ctx;
    c->n++;
    if (len >= sizeof(c->last))
        len = sizeof(c->last) - 1;
    memcpy(c->last, msg, len);
    c->last[len] = 0;
}

static void test_failure_report_goes_to_the_log_hook(void)
{
    lab_arena *a = test_arena(PAGES, 10, MIN, LOW, HIGH);
    held_t h = held_new(PAGES);
    struct log_capture cap = { 0 };
    lab_result r;
    lab_set_log_hook(a, capture_log, &cap);
    take_until_fail(a, &h, LAB_GFP_NOWAIT, 0, 0, &r);    /* NOWARN: silent */
    CHECK_EQ(cap.n, 0);
    lab_alloc_pages_result(a, LAB_GFP_NOWAIT, 2, &r);
    CHECK(r.addr == NULL);
    CHECK_EQ(r.reason, LAB_R_WATERMARK);
    CHECK_EQ(cap.n, 1);
    CHECK(strstr(cap.last, "page allocation failure") != NULL);
    CHECK(strstr(cap.last, "order:2") != NULL);
    CHECK(strstr(cap.last, lab_strreason(LAB_R_WATERMARK)) != NULL);
    CHECK(strstr(cap.last, "free:64") != NULL);
    /* 64 free pages at the top of the arena: one block of order 6 */
    CHECK(strstr(cap.last, "blocks per order: 0 0 0 0 0 0 1 0 0 0 0") != NULL);
    if (!strstr(cap.last, "page allocation failure") || !strstr(cap.last, "blocks per order"))
        fprintf(stderr, "  report was: %s", cap.last);
    held_release(a, &h);
    lab_arena_destroy(a);
}

static void test_nowarn_failure_sends_no_report(void)
{
    lab_arena *a = test_arena(PAGES, 10, MIN, LOW, HIGH);
    struct log_capture cap = { 0 };
    lab_set_log_hook(a, capture_log, &cap);
    lab_result r;
    lab_alloc_pages_result(a, LAB_GFP_KERNEL | LAB_GFP_NOWARN, 11, &r);
    CHECK_EQ(r.reason, LAB_R_ORDER);
    lab_alloc_pages_result(a, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, 11, &r);
    CHECK_EQ(cap.n, 0);
    lab_alloc_pages_result(a, LAB_GFP_ATOMIC, 11, &r);   /* and without: one */
    CHECK_EQ(cap.n, 1);
    CHECK(strstr(cap.last, lab_strreason(LAB_R_ORDER)) != NULL);
    CHECK(strstr(cap.last, "order:11") != NULL);
    lab_arena_destroy(a);
}

static void test_failure_reports_are_rate_limited(void)
{
    lab_arena *a = test_arena(PAGES, 10, MIN, LOW, HIGH);
    held_t h = held_new(PAGES);
    struct log_capture cap = { 0 };
    lab_result r;
    take_until_fail(a, &h, LAB_GFP_NOWAIT, 0, 0, &r);
    lab_set_log_hook(a, capture_log, &cap);
    double t0 = now_ms();
    for (int i = 0; i < 100; i++) {
        lab_alloc_pages_result(a, LAB_GFP_NOWAIT, 0, &r);
        CHECK(r.addr == NULL);
    }
    double took = now_ms() - t0;
    CHECK(cap.n >= 1);
    CHECK(cap.n <= 10);
    if (took < 4000)
        CHECK_EQ(cap.n, 10);   /* all in one 5 s window: exactly the burst */
    lab_stats s;
    lab_stats_get(a, &s);
    CHECK(s.fail_by_reason[LAB_R_WATERMARK] >= 100);   /* counted even when not reported */
    lab_set_log_hook(a, NULL, NULL);
    held_release(a, &h);
    lab_arena_destroy(a);
}

int main(void)
{
    test_watchdog(240);
    RUN(test_each_class_stops_at_its_floor_in_turn);
    RUN(test_nomemalloc_takes_nothing_below_min);
    RUN(test_higher_orders_succeed_iff_free_minus_size_reaches_floor);
    RUN(test_stats_count_failures_by_reason_and_class_and_successes_by_step);
    RUN(test_highatomic_reserve_fills_and_stays_within_one_percent);
    RUN(test_highatomic_reserve_serves_atomic_when_free_lists_are_fragmented);
    RUN(test_highatomic_reserve_serves_atomic_below_its_floor);
    RUN(test_highatomic_reserve_is_released_before_a_kernel_request_fails);
    RUN(test_failure_report_goes_to_the_log_hook);
    RUN(test_nowarn_failure_sends_no_report);
    RUN(test_failure_reports_are_rate_limited);
    return test_finish();
}
