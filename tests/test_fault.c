/* Fault injection (as Linux's fail_page_alloc): times, interval, min_order,
 * ignore_blocking, probability, turning it off, the environment variable;
 * and every failure reason, each produced by a request. */
#include "check.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define MIN  64
#define LOW  80
#define HIGH 96
#define PAGES 1024

static size_t free_pages(lab_arena *a) { lab_stats s; lab_stats_get(a, &s); return s.free_pages; }

static lab_fault_config fault(unsigned probability, unsigned interval, long times)
{
    lab_fault_config fc;
    memset(&fc, 0, sizeof(fc));
    fc.probability = probability;
    fc.interval = interval;
    fc.times = times;
    return fc;
}

/* One request, freed at once when it succeeds; returns its reason. */
static int try_alloc(lab_arena *a, lab_gfp_t gfp, unsigned order)
{
    lab_result r;
    lab_alloc_pages_result(a, gfp | LAB_GFP_NOWARN, order, &r);
    if (r.addr) {
        CHECK_EQ(r.reason, LAB_R_NONE);
        lab_free_pages(a, r.addr, order);
    } else {
        CHECK(r.reason != LAB_R_NONE);
    }
    return r.reason;
}

static void test_times_limits_injection_to_exactly_the_next_n_requests(void)
{
    lab_arena *a = test_arena(PAGES, 10, MIN, LOW, HIGH);
    lab_fault_config fc = fault(100, 1, 3);
    REQUIRE(lab_fault_set(a, &fc) == 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(try_alloc(a, LAB_GFP_ATOMIC, 0), LAB_R_INJECTED);
    for (int i = 0; i < 20; i++)
        CHECK_EQ(try_alloc(a, LAB_GFP_ATOMIC, 0), LAB_R_NONE);
    CHECK_EQ(lab_fault_injected(a), 3);
    lab_stats s;
    lab_stats_get(a, &s);
    CHECK_EQ(s.fail_by_reason[LAB_R_INJECTED], 3);
    CHECK_EQ(s.fail_by_class[LAB_CLASS_ATOMIC], 3);
    CHECK_EQ(free_pages(a), PAGES);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

static void test_interval_fails_every_nth_request(void)
{
    for (unsigned n = 2; n <= 5; n++) {
        lab_arena *a = test_arena(PAGES, 10, MIN, LOW, HIGH);
        lab_fault_config fc = fault(100, n, -1);
        REQUIRE(lab_fault_set(a, &fc) == 0);
        int wrong = 0;
        for (unsigned i = 1; i <= 10 * n; i++) {
            int want = i % n == 0 ? LAB_R_INJECTED : LAB_R_NONE;
            wrong += try_alloc(a, LAB_GFP_NOWAIT, 0) != want;
        }
        CHECK_EQ(wrong, 0);
        CHECK_EQ(lab_fault_injected(a), 10);
        lab_arena_destroy(a);
    }
}

static void test_min_order_exempts_lower_orders(void)
{
    lab_arena *a = test_arena(PAGES, 10, MIN, LOW, HIGH);
    lab_fault_config fc = fault(100, 1, -1);
    fc.min_order = 2;
    REQUIRE(lab_fault_set(a, &fc) == 0);
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(try_alloc(a, LAB_GFP_ATOMIC, 0), LAB_R_NONE);
        CHECK_EQ(try_alloc(a, LAB_GFP_KERNEL, 1), LAB_R_NONE);
        CHECK_EQ(try_alloc(a, LAB_GFP_ATOMIC, 2), LAB_R_INJECTED);
        CHECK_EQ(try_alloc(a, LAB_GFP_NOWAIT, 5), LAB_R_INJECTED);
    }
    CHECK_EQ(lab_fault_injected(a), 20);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

static void test_ignore_blocking_exempts_requests_that_may_block(void)
{
    lab_arena *a = test_arena(PAGES, 10, MIN, LOW, HIGH);
    lab_fault_config fc = fault(100, 1, -1);
    fc.ignore_blocking = 1;
    REQUIRE(lab_fault_set(a, &fc) == 0);
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(try_alloc(a, LAB_GFP_KERNEL, 0), LAB_R_NONE);
        CHECK_EQ(try_alloc(a, LAB_GFP_KERNEL | LAB_GFP_NORETRY, 3), LAB_R_NONE);
        CHECK_EQ(try_alloc(a, LAB_GFP_ATOMIC, 0), LAB_R_INJECTED);
        CHECK_EQ(try_alloc(a, LAB_GFP_NOWAIT, 0), LAB_R_INJECTED);
    }
    CHECK_EQ(lab_fault_injected(a), 20);
    /* without ignore_blocking, KERNEL requests are eligible */
    fc.ignore_blocking = 0;
    REQUIRE(lab_fault_set(a, &fc) == 0);
    CHECK_EQ(try_alloc(a, LAB_GFP_KERNEL, 0), LAB_R_INJECTED);
    lab_arena_destroy(a);
}

static void test_probability_fifty_fails_about_half(void)
{
    lab_arena *a = test_arena(PAGES, 10, MIN, LOW, HIGH);
    lab_fault_config fc = fault(50, 1, -1);
    REQUIRE(lab_fault_set(a, &fc) == 0);
    int injected = 0, other = 0;
    for (int i = 0; i < 10000; i++) {
        int r = try_alloc(a, LAB_GFP_NOWAIT, 0);
        injected += r == LAB_R_INJECTED;
        other += r != LAB_R_INJECTED && r != LAB_R_NONE;
    }
    CHECK(injected >= 4000);
    CHECK(injected <= 6000);
    CHECK_EQ(other, 0);
    CHECK_EQ(lab_fault_injected(a), (uint64_t)injected);
    /* and the failures are not simply every other request */
    int prev = -1, longest = 0, cur = 0;
    for (int i = 0; i < 200; i++) {
        int f = try_alloc(a, LAB_GFP_NOWAIT, 0) == LAB_R_INJECTED;
        cur = f == prev ? cur + 1 : 1;
        if (cur > longest)
            longest = cur;
        prev = f;
    }
    CHECK(longest >= 3);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

static void test_fault_set_null_turns_injection_off(void)
{
    lab_arena *a = test_arena(PAGES, 10, MIN, LOW, HIGH);
    lab_fault_config fc = fault(100, 1, -1);
    REQUIRE(lab_fault_set(a, &fc) == 0);
    CHECK_EQ(try_alloc(a, LAB_GFP_NOWAIT, 0), LAB_R_INJECTED);
    CHECK_EQ(lab_fault_set(a, NULL), 0);
    for (int i = 0; i < 100; i++)
        CHECK_EQ(try_alloc(a, LAB_GFP_NOWAIT, (unsigned)(i % 4)), LAB_R_NONE);
    CHECK_EQ(lab_fault_injected(a), 1);
    CHECK_EQ(lab_fault_set(NULL, &fc), LAB_EINVAL);
    fc.probability = 101;
    CHECK(lab_fault_set(a, &fc) != 0);
    CHECK_EQ(try_alloc(a, LAB_GFP_NOWAIT, 0), LAB_R_NONE);   /* a refused config injects nothing */
    /* and a refused config leaves the injection on as it was */
    fc = fault(100, 1, -1);
    REQUIRE(lab_fault_set(a, &fc) == 0);
    fc.times = -2;
    CHECK_EQ(lab_fault_set(a, &fc), LAB_EINVAL);
    CHECK_EQ(try_alloc(a, LAB_GFP_NOWAIT, 0), LAB_R_INJECTED);
    CHECK_EQ(lab_fault_set(a, NULL), 0);
    lab_arena_destroy(a);
}

static void test_environment_variable_configures_injection(void)
{
    REQUIRE(setenv("LAB_FAIL_PAGE_ALLOC", "probability=100,interval=2,times=5", 1) == 0);
    lab_arena *a = test_arena(PAGES, 10, MIN, LOW, HIGH);
    REQUIRE(unsetenv("LAB_FAIL_PAGE_ALLOC") == 0);
    int wrong = 0;
    for (int i = 1; i <= 30; i++) {
        int want = (i % 2 == 0 && i <= 10) ? LAB_R_INJECTED : LAB_R_NONE;
        wrong += try_alloc(a, LAB_GFP_NOWAIT, 0) != want;
    }
    CHECK_EQ(wrong, 0);
    CHECK_EQ(lab_fault_injected(a), 5);
    lab_arena_destroy(a);

    /* gone with the variable */
    lab_arena *b = test_arena(PAGES, 10, MIN, LOW, HIGH);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(try_alloc(b, LAB_GFP_NOWAIT, 0), LAB_R_NONE);
    CHECK_EQ(lab_fault_injected(b), 0);
    lab_arena_destroy(b);
}

/* A variable that is not a list of the five keys with numbers turns
 * nothing on (it failed every request: the defaults, with the garbage
 * skipped); keys left out keep their defaults. */
static void test_a_malformed_environment_variable_injects_nothing(void)
{
    static const char *const bad[] = { "garbage", "probability", "probability=", "probability=ten",
                                       "probabilty=10", "probability=10,times", "probability=10x",
                                       "probability=101", "times=-2", "interval=-1", "=5" };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        REQUIRE(setenv("LAB_FAIL_PAGE_ALLOC", bad[k], 1) == 0);
        lab_arena *a = test_arena(PAGES, 10, MIN, LOW, HIGH);
        REQUIRE(unsetenv("LAB_FAIL_PAGE_ALLOC") == 0);
        int injected = 0;
        for (int i = 0; i < 10; i++)
            injected += try_alloc(a, LAB_GFP_NOWAIT, 0) == LAB_R_INJECTED;
        if (injected)
            fprintf(stderr, "  LAB_FAIL_PAGE_ALLOC=%s injected %d of 10\n", bad[k], injected);
        CHECK_EQ(injected, 0);
        lab_arena_destroy(a);
    }
    REQUIRE(setenv("LAB_FAIL_PAGE_ALLOC", "times=3,", 1) == 0);   /* probability 100, interval 1 */
    lab_arena *a = test_arena(PAGES, 10, MIN, LOW, HIGH);
    REQUIRE(unsetenv("LAB_FAIL_PAGE_ALLOC") == 0);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(try_alloc(a, LAB_GFP_NOWAIT, 0), i < 3 ? LAB_R_INJECTED : LAB_R_NONE);
    lab_arena_destroy(a);
}

/* NOFAIL promises never to return NULL: injection must not break that (Linux
 * exempts __GFP_NOFAIL in should_fail_alloc_page). */
static void test_nofail_requests_are_never_injected(void)
{
    lab_arena *a = test_arena(PAGES, 10, MIN, LOW, HIGH);
    lab_fault_config fc = fault(100, 1, -1);
    REQUIRE(lab_fault_set(a, &fc) == 0);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(try_alloc(a, LAB_GFP_KERNEL | LAB_GFP_NOFAIL, (unsigned)(i % 3)), LAB_R_NONE);
    CHECK_EQ(try_alloc(a, LAB_GFP_KERNEL, 0), LAB_R_INJECTED);
    lab_arena_destroy(a);
}

/* Room fast paths are not decision points; their refills are. */
static void test_room_refills_are_decision_points_but_the_stock_is_not(void)
{
    lab_arena *a = test_arena(PAGES, 10, MIN, LOW, HIGH);
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.batch = 4;
    rc.high = 8;
    lab_room *room = NULL;
    REQUIRE(lab_room_create(a, &rc, &room) == 0);
    void *p[4];
    p[0] = lab_room_alloc(room, LAB_GFP_NOWAIT);   /* refill of 4, one handed out */
    REQUIRE(p[0]);
    lab_fault_config fc = fault(100, 1, -1);
    REQUIRE(lab_fault_set(a, &fc) == 0);
    for (int i = 1; i < 4; i++) {
        p[i] = lab_room_alloc(room, LAB_GFP_ATOMIC);
        CHECK(p[i] != NULL);
    }
    lab_result r;
    lab_room_alloc_result(room, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, &r);
    CHECK(r.addr == NULL);
    CHECK_EQ(r.reason, LAB_R_INJECTED);
    CHECK(lab_fault_injected(a) >= 1);
    lab_fault_set(a, NULL);
    for (int i = 0; i < 4; i++)
        if (p[i])
            lab_room_free(room, p[i]);
    lab_room_destroy(room);
    CHECK_EQ(free_pages(a), PAGES);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* ---- every failure reason is produced by some request --------------------------- */

static int seen[LAB_R_COUNT];

static void expect_reason(const lab_result *r, int reason)
{
    CHECK(r->addr == NULL);
    CHECK_EQ(r->reason, reason);
    CHECK_EQ(r->step, LAB_STEP_NONE);
    if (r->addr == NULL && r->reason == reason)
        seen[reason]++;
}

/* Keeps the zone lock busy: lab_check holds it while it walks every frame. */
struct checker { lab_arena *a; atomic_int stop; atomic_int errors; atomic_long rounds; };
static void *checker_thread(void *arg)
{
    struct checker *c = arg;
    while (!atomic_load(&c->stop)) {
        if (lab_check(c->a) != 0)
            atomic_fetch_add(&c->errors, 1);
        atomic_fetch_add(&c->rounds, 1);
    }
    return NULL;
}

static void produce_would_block(void)
{
    /* many small blocks make lab_check's walk, and so its lock hold, long */
    const size_t pages = 1u << 16;
    lab_arena *a = test_arena(pages, 10, 0, 0, 0);
    void **p = calloc(pages, sizeof(void *));
    REQUIRE(p);
    size_t n = 0;
    while (n < pages && (p[n] = lab_alloc_pages(a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, 0)) != NULL)
        n++;
    CHECK_EQ(n, pages);
    struct checker c = { .a = a };
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, checker_thread, &c) == 0);
    while (atomic_load(&c.rounds) == 0)
        sched_yield();
    lab_result r = { 0 };
    double t0 = now_ms();
    long tries = 0;
    do {
        lab_alloc_pages_result(a, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, 0, &r);
        tries++;
        if (r.addr) {          /* nothing is free: it cannot succeed */
            lab_free_pages(a, r.addr, 0);
            CHECK(0);
        }
    } while (r.reason != LAB_R_WOULD_BLOCK && now_ms() - t0 < 10000);
    atomic_store(&c.stop, 1);
    pthread_join(t, NULL);
    expect_reason(&r, LAB_R_WOULD_BLOCK);
    CHECK_EQ(atomic_load(&c.errors), 0);
    lab_stats s;
    lab_stats_get(a, &s);
    CHECK(s.fail_by_reason[LAB_R_WOULD_BLOCK] >= 1);
    for (size_t i = 0; i < n; i++)
        lab_free_pages(a, p[i], 0);
    free(p);
    CHECK_EQ(free_pages(a), pages);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

static void test_every_failure_reason_is_produced(void)
{
    lab_result r;
    memset(seen, 0, sizeof(seen));

    /* BADARG: no arena */
    lab_alloc_pages_result(NULL, LAB_GFP_ATOMIC, 0, &r);
    expect_reason(&r, LAB_R_BADARG);

    lab_arena *a = test_arena(PAGES, 10, MIN, LOW, HIGH);
    void **held = calloc(PAGES + 1, sizeof(void *));   /* +1: the failing request writes NULL */
    REQUIRE(held);
    size_t n = 0;

    /* ORDER */
    lab_alloc_pages_result(a, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, 11, &r);
    expect_reason(&r, LAB_R_ORDER);

    /* INJECTED */
    lab_fault_config fc = fault(100, 1, 1);
    REQUIRE(lab_fault_set(a, &fc) == 0);
    lab_alloc_pages_result(a, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, 0, &r);
    expect_reason(&r, LAB_R_INJECTED);
    lab_fault_set(a, NULL);

    /* QUOTA */
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.quota = 4;
    rc.reserve = 0;
    lab_room *room = NULL;
    REQUIRE(lab_room_create(a, &rc, &room) == 0);
    void *rp[4];
    for (int i = 0; i < 4; i++) {
        rp[i] = lab_room_alloc(room, LAB_GFP_ATOMIC);
        CHECK(rp[i] != NULL);
    }
    lab_room_alloc_result(room, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, &r);
    expect_reason(&r, LAB_R_QUOTA);
    for (int i = 0; i < 4; i++)
        lab_room_free(room, rp[i]);
    lab_room_destroy(room);

    /* BADARG: no room */
    lab_room_alloc_result(NULL, LAB_GFP_ATOMIC, &r);
    expect_reason(&r, LAB_R_BADARG);

    /* WATERMARK: no reserve access, at min */
    while ((held[n] = lab_alloc_pages(a, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, 0)) != NULL)
        n++;
    lab_alloc_pages_result(a, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, 0, &r);
    expect_reason(&r, LAB_R_WATERMARK);

    /* RESERVE_EMPTY: reserve access, at the atomic floor */
    while ((held[n] = lab_alloc_pages(a, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, 0)) != NULL)
        n++;
    CHECK_EQ(free_pages(a), 24);
    lab_alloc_pages_result(a, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, 0, &r);
    expect_reason(&r, LAB_R_RESERVE_EMPTY);

    /* FRAGMENTED: free pages above the floor, but only order-0 holes */
    while ((held[n] = lab_alloc_pages(a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, 0)) != NULL)
        n++;
    CHECK_EQ(free_pages(a), 0);
    for (size_t i = 0; i < n; i += 2) {
        lab_free_pages(a, held[i], 0);
        held[i] = NULL;
    }
    lab_alloc_pages_result(a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, 1, &r);
    expect_reason(&r, LAB_R_FRAGMENTED);
    for (size_t i = 0; i < n; i++)
        lab_free_pages(a, held[i], 0);
    free(held);
    CHECK_EQ(free_pages(a), PAGES);
    CHECK_EQ(lab_check(a), 0);
    lab_stats s;
    lab_stats_get(a, &s);
    CHECK_EQ(s.fail_by_reason[LAB_R_ORDER], 1);
    CHECK_EQ(s.fail_by_reason[LAB_R_INJECTED], 1);
    CHECK_EQ(s.fail_by_reason[LAB_R_QUOTA], 1);
    CHECK_EQ(s.fail_by_reason[LAB_R_FRAGMENTED], 1);
    lab_arena_destroy(a);

    /* TIMEOUT: a blocking request with nothing to reclaim */
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = (size_t)PAGES * LAB_PAGE_SIZE;
    cfg.wmark_min = MIN;
    cfg.wmark_low = LOW;
    cfg.wmark_high = HIGH;
    cfg.wait_timeout_ms = 50;
    lab_arena *b = NULL;
    REQUIRE(lab_arena_create(&cfg, &b) == 0);
    void *big = lab_alloc_pages(b, LAB_GFP_NOWAIT, 9);
    void *big2 = lab_alloc_pages(b, LAB_GFP_NOWAIT, 8);
    REQUIRE(big && big2);
    lab_alloc_pages_result(b, LAB_GFP_KERNEL | LAB_GFP_NOWARN, 8, &r);   /* 256 free, floor 64 */
    expect_reason(&r, LAB_R_TIMEOUT);
    lab_free_pages(b, big, 9);
    lab_free_pages(b, big2, 8);
    CHECK_EQ(lab_check(b), 0);
    lab_arena_destroy(b);

    /* WOULD_BLOCK: an atomic request while another thread holds the zone lock */
    produce_would_block();

    for (int i = 1; i < LAB_R_COUNT; i++) {
        if (!seen[i])
            fprintf(stderr, "  reason %d (%s) was not produced\n", i, lab_strreason(i));
        CHECK(seen[i] > 0);
    }
}

int main(void)
{
    test_watchdog(240);
    RUN(test_times_limits_injection_to_exactly_the_next_n_requests);
    RUN(test_interval_fails_every_nth_request);
    RUN(test_min_order_exempts_lower_orders);
    RUN(test_ignore_blocking_exempts_requests_that_may_block);
    RUN(test_probability_fifty_fails_about_half);
    RUN(test_fault_set_null_turns_injection_off);
    RUN(test_environment_variable_configures_injection);
    RUN(test_a_malformed_environment_variable_injects_nothing);
    RUN(test_nofail_requests_are_never_injected);
    RUN(test_room_refills_are_decision_points_but_the_stock_is_not);
    RUN(test_every_failure_reason_is_produced);
    return test_finish();
}
