/* Wakes between requests and the reclaimer: a free between a request's
 * failed attempt and its sleep is not lost; the reclaimer's back-off never
 * wraps to a zero timeout, and does not delay an atomic request's wake right
 * after a trim; a NOFAIL high-order request backs off while reclaim frees
 * pages that never form a block of its order. */
#include "check.h"
#include "internal.h"

#include <pthread.h>
#include <time.h>

static lab_stats stats(lab_arena *a)
{
    lab_stats s;
    lab_stats_get(a, &s);
    return s;
}

/* ---- step 8 ------------------------------------------------------------------ */

/* The request read free_seq before its attempt; a free lands before it
 * sleeps.  The sleep must not happen (it used to last a whole 10 ms slice).
 * The free is an ordinary lab_free_pages, which takes the lock as an atomic
 * context does: no wake, only the bump of free_seq. */
static void test_a_free_between_the_failed_attempt_and_the_sleep_is_not_lost(void)
{
    lab_arena *a = test_arena(256, 4, 0, 0, 0);
    void *p = lab_alloc_pages(a, LAB_GFP_KERNEL, 0);
    REQUIRE(p);
    /* A first wait starts the background reclaimer (a thread: slow under
     * sanitizers), with a sequence that has moved, so it does not sleep. */
    reclaim_wait_for_frees(a, 0, reclaim_free_seq(a) - 1);
    double worst = 0;
    for (int i = 0; i < 20; i++) {
        uint32_t seen = reclaim_free_seq(a);
        lab_free_pages(a, p, 0);
        double t0 = now_ms();
        CHECK(reclaim_wait_for_frees(a, 0, seen));
        double ms = now_ms() - t0;
        worst = ms > worst ? ms : worst;
        REQUIRE((p = lab_alloc_pages(a, LAB_GFP_KERNEL, 0)) != NULL);
    }
    fprintf(stderr, "  longest wait after a free it should have seen: %.2f ms (a sleep is 10 ms)\n", worst);
    CHECK(worst < 5.0);
    /* With no free since `seen`, it does sleep (the test above means something). */
    double t0 = now_ms();
    reclaim_wait_for_frees(a, 0, reclaim_free_seq(a));
    CHECK(now_ms() - t0 >= 5.0);
    lab_free_pages(a, p, 0);
    lab_arena_destroy(a);
}

/* ---- the reclaimer's poll ------------------------------------------------------ */

static void test_reclaimer_back_off_saturates_instead_of_wrapping_to_zero(void)
{
    CHECK_EQ(kswapd_sleep_ms(2, 0), 2);
    CHECK_EQ(kswapd_sleep_ms(2, 1000), 32);
    unsigned big = UINT32_MAX / 16 + 1;   /* big * 16 wraps to 0 in 32 bits */
    CHECK_EQ(kswapd_sleep_ms(big, 0), big);
    CHECK(kswapd_sleep_ms(big, 1000) >= big);
    CHECK_EQ(kswapd_sleep_ms(UINT32_MAX, 1000), UINT32_MAX);
}

static size_t count_nothing(void *ctx) { (void)ctx; return 0; }
static size_t scan_nothing(void *ctx, size_t n) { (void)ctx; (void)n; return 0; }

#define POLL_MS 8
#define TRIALS 5
#define HELD_MAX 512

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* After a trim, free pages sit at high, one band above low.  An atomic
 * request that takes them below low can only raise a flag; the reclaimer must
 * see it within its poll interval, not after a backed-off sleep of 16. */
static void test_reclaimer_acts_on_an_atomic_wake_within_a_poll_after_a_trim(void)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = 2048 * LAB_PAGE_SIZE;
    cfg.max_order = 4;
    cfg.wmark_min = 32;
    cfg.wmark_low = 64;
    cfg.wmark_high = 128;
    cfg.kswapd_poll_ms = POLL_MS;
    cfg.trim_delay_ms = 20;
    lab_arena *a = NULL;
    REQUIRE(lab_arena_create(&cfg, &a) == 0);
    /* Pages are listed on first use only: use them all once, so trim has
     * free blocks to decommit.  Small blocks (max_order 4), so trim can take
     * free pages down to high, give or take a block. */
    static void *blocks[2048 / 16];
    for (int i = 0; i < 2048 / 16; i++)
        REQUIRE((blocks[i] = lab_alloc_pages(a, LAB_GFP_KERNEL | LAB_GFP_MEMALLOC, 4)) != NULL);
    /* Each trial waits for the trim that the frees before it made due: the
     * count is read before those frees, since the trim may come before the
     * trial starts (a slow tree frees slowly). */
    uint64_t trimmed = stats(a).trimmed_pages;
    for (int i = 0; i < 2048 / 16; i++)
        lab_free_pages(a, blocks[i], 4);
    lab_shrinker sh = { .count = count_nothing, .scan = scan_nothing };
    REQUIRE(lab_shrinker_register(a, &sh) == 0);   /* starts the reclaimer */
    static void *held[HELD_MAX];
    double lat[TRIALS];
    for (int t = 0; t < TRIALS; t++) {
        double give_up = now_ms() + 5000;
        while (stats(a).trimmed_pages == trimmed && now_ms() < give_up)
            sleep_ms(1);
        if (stats(a).trimmed_pages == trimmed)
            fprintf(stderr, "trial %d: free %zu void %zu\n", t, stats(a).free_pages, stats(a).void_pages);
        REQUIRE(stats(a).trimmed_pages > trimmed);
        /* long enough quiet for any back-off to set in (64 polls) */
        sleep_ms(80 * POLL_MS);
        size_t n = 0;
        while (stats(a).free_pages >= cfg.wmark_low && n < HELD_MAX)
            REQUIRE((held[n++] = lab_alloc_pages(a, LAB_GFP_ATOMIC, 0)) != NULL);
        uint64_t runs = stats(a).kswapd_runs;
        double t0 = now_ms();
        while (stats(a).kswapd_runs == runs && now_ms() < t0 + 5000)
            sleep_ms(0);
        lat[t] = now_ms() - t0;
        trimmed = stats(a).trimmed_pages;
        for (size_t i = 0; i < n; i++)
            lab_free_pages(a, held[i], 0);
    }
    qsort(lat, TRIALS, sizeof(lat[0]), cmp_double);
    fprintf(stderr, "  wake to run after a trim: median %.1f ms (range %.1f-%.1f) over %d trials, poll %d ms\n",
            lat[TRIALS / 2], lat[0], lat[TRIALS - 1], TRIALS, POLL_MS);
    CHECK(lat[TRIALS / 2] < 3 * POLL_MS);
    lab_shrinker_unregister(a, &sh);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* ---- NOFAIL and fragmentation ------------------------------------------------------ */
/* A cache whose scan frees one page and takes one back: reclaim always
 * reports progress, and no block of order 1 ever forms (every free page's
 * buddy is held by the test). */
#define FRAG_PAGES 256

struct churn {
    lab_arena *a;
    void *page;
    pthread_mutex_t lock;   /* the reclaimer and the request may scan at once */
    _Atomic bool on;
    _Atomic unsigned scans;
};

static size_t churn_count(void *ctx)
{
    struct churn *c = ctx;
    return atomic_load(&c->on) ? 1 : 0;
}

static size_t churn_scan(void *ctx, size_t n)
{
    struct churn *c = ctx;
    (void)n;
    if (!atomic_load(&c->on))
        return 0;
    atomic_fetch_add(&c->scans, 1);
    pthread_mutex_lock(&c->lock);
    lab_free_pages(c->a, c->page, 0);
    c->page = lab_alloc_pages(c->a, LAB_GFP_KERNEL, 0);   /* MEMALLOC inside reclaim */
    pthread_mutex_unlock(&c->lock);
    return 1;
}

struct nofail_req {
    lab_arena *a;
    void *got;
};

static void *nofail_order1(void *arg)
{
    struct nofail_req *q = arg;
    q->got = lab_alloc_pages(q->a, LAB_GFP_KERNEL | LAB_GFP_NOFAIL, 1);
    return NULL;
}

static void test_nofail_high_order_backs_off_while_reclaim_frees_pages_that_never_merge(void)
{
    lab_arena *a = test_arena(FRAG_PAGES, 4, 1, 2, 3);
    static void *p[FRAG_PAGES];
    for (int i = 0; i < FRAG_PAGES; i++)
        REQUIRE((p[i] = lab_alloc_pages(a, LAB_GFP_KERNEL | LAB_GFP_MEMALLOC, 0)) != NULL);
    /* Free pages with an allocated buddy: enough for the watermark, no order-1 block. */
    char *base = p[0];
    for (int i = 0; i < FRAG_PAGES; i++)
        if ((char *)p[i] < base)
            base = p[i];
    void *by_frame[FRAG_PAGES];
    for (int i = 0; i < FRAG_PAGES; i++)
        by_frame[((char *)p[i] - base) / LAB_PAGE_SIZE] = p[i];
    for (int f = 0; f < 32; f += 2) {
        lab_free_pages(a, by_frame[f], 0);
        by_frame[f] = NULL;
    }
    struct churn c = { .a = a, .page = by_frame[32] };
    pthread_mutex_init(&c.lock, NULL);
    by_frame[32] = NULL;
    atomic_store(&c.on, true);
    lab_shrinker sh = { .count = churn_count, .scan = churn_scan, .ctx = &c };
    REQUIRE(lab_shrinker_register(a, &sh) == 0);
    struct nofail_req q = { .a = a };
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, nofail_order1, &q) == 0);
    /* The window opens once the request is reclaiming (a loaded machine or
     * a sanitizer may start the thread late). */
    double give_up = now_ms() + 10000;
    while (atomic_load(&c.scans) == 0 && now_ms() < give_up)
        sleep_ms(1);
    double window = 300;
    unsigned first = atomic_load(&c.scans);
    sleep_ms((unsigned)window);
    unsigned scans = atomic_load(&c.scans) - first;
    fprintf(stderr, "  shrinker scans in %.0f ms of a NOFAIL order-1 request that cannot succeed: %u\n", window, scans);
    /* Backing off: a few passes, then a wait of up to 10 ms, about 120
     * scans.  Spinning: tens of thousands. */
    CHECK(first > 0);
    CHECK(scans < 1000);
    /* Let it succeed: the buddies of the free pages come back (the cache may
     * have moved its page to any of them). */
    atomic_store(&c.on, false);
    for (int f = 1; f < 34; f += 2) {
        lab_free_pages(a, by_frame[f], 0);
        by_frame[f] = NULL;
    }
    pthread_join(t, NULL);
    CHECK(q.got != NULL);
    lab_shrinker_unregister(a, &sh);
    lab_free_pages(a, q.got, 1);
    if (c.page)
        lab_free_pages(a, c.page, 0);
    for (int f = 0; f < FRAG_PAGES; f++)
        if (by_frame[f])
            lab_free_pages(a, by_frame[f], 0);
    CHECK_EQ(stats(a).free_pages, FRAG_PAGES);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

int main(void)
{
    test_watchdog(120);
    RUN(test_a_free_between_the_failed_attempt_and_the_sleep_is_not_lost);
    RUN(test_reclaimer_back_off_saturates_instead_of_wrapping_to_zero);
    RUN(test_reclaimer_acts_on_an_atomic_wake_within_a_poll_after_a_trim);
    RUN(test_nofail_high_order_backs_off_while_reclaim_frees_pages_that_never_merge);
    return test_finish();
}
