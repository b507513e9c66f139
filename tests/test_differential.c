/*
 * Differential test of the buddy core against a page-granular model.
 *
 * The model is a bitmap of free pages and nothing else: it knows no blocks,
 * no lists, no splitting.  What it predicts follows from the buddy rules
 * alone (full coalescing, blocks aligned to their size from the arena's
 * base, docs/DESIGN.md section 4):
 *   - with LAB_GFP_MEMALLOC (watermarks ignored), an order-k request succeeds
 *     exactly when some 2^k-aligned range of the arena is entirely free;
 *   - the block it returns was entirely free;
 *   - free_pages equals the model's free pages;
 *   - the free blocks per order (buddyinfo) are the maximal free aligned
 *     ranges: full[k] - 2 * full[k + 1], where full[k] counts the aligned
 *     order-k ranges that lie inside the arena and are entirely free.
 * To answer "is some aligned range of order k free" in O(1), the model keeps,
 * per order, how many free pages each aligned range holds and how many
 * ranges are full; a self-check recomputes those from the bitmap.
 *
 * Random alloc/free of every order over several arena sizes (powers of two
 * and odd ones) and max_orders, with page contents stamped and verified at
 * free, lab_check every few thousand operations.  The release build does at
 * least 1,000,000 operations; debug and sanitizer builds do a fraction.
 * LAB_TEST_SEED=<n> in the environment replays another seed.
 */
#include "check.h"

#include <time.h>

#ifdef LAB_TEST_SLOW
#define SLOW_BUILD 1
#else
#define SLOW_BUILD 0
#endif

#define NORDERS (LAB_MAX_ORDER_LIMIT + 2)
#define GFP (LAB_GFP_MEMALLOC | LAB_GFP_NOWARN)

static uint64_t rng_state;
static uint64_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}
static unsigned rnd_below(unsigned n) { return (unsigned)(rnd() % n); }

/* ---- the model ------------------------------------------------------------ */
struct model {
    size_t   n;                 /* pages */
    unsigned max_order;
    uint32_t *cnt[NORDERS];     /* free pages in each aligned range of order k */
    size_t   nranges[NORDERS];
    size_t   full[NORDERS];     /* ranges of order k inside the arena and entirely free */
    size_t   free;
};

static int range_inside(const struct model *m, size_t r, unsigned k) { return ((r + 1) << k) <= m->n; }

static void model_init(struct model *m, size_t n, unsigned max_order)
{
    memset(m, 0, sizeof(*m));
    m->n = n;
    m->max_order = max_order;
    for (unsigned k = 0; k <= max_order; k++) {
        m->nranges[k] = (n + ((size_t)1 << k) - 1) >> k;
        m->cnt[k] = calloc(m->nranges[k], sizeof(uint32_t));
        REQUIRE(m->cnt[k]);
        for (size_t r = 0; r < m->nranges[k]; r++) {
            size_t lo = r << k, hi = (r + 1) << k;
            if (hi > n)
                hi = n;
            m->cnt[k][r] = (uint32_t)(hi - lo);
            if (range_inside(m, r, k))
                m->full[k]++;
        }
    }
    m->free = n;
}

static void model_fini(struct model *m)
{
    for (unsigned k = 0; k <= m->max_order; k++)
        free(m->cnt[k]);
}

static int model_block_free(const struct model *m, size_t f, unsigned k)
{
    return (f & (((size_t)1 << k) - 1)) == 0 && f + ((size_t)1 << k) <= m->n &&
           m->cnt[k][f >> k] == (1u << k);
}

/* Mark the block [f, f + 2^k) allocated (give = 0) or free (give = 1). */
static void model_mark(struct model *m, size_t f, unsigned k, int give)
{
    size_t size = (size_t)1 << k;
    for (unsigned j = 0; j < k; j++) {         /* ranges inside the block */
        uint32_t whole = 1u << j;
        for (size_t r = f >> j; r < (f + size) >> j; r++) {
            m->cnt[j][r] = give ? whole : 0;
            if (give)
                m->full[j]++;
            else
                m->full[j]--;
        }
    }
    for (unsigned j = k; j <= m->max_order; j++) {   /* ranges containing it */
        size_t r = f >> j;
        uint32_t whole = 1u << j;
        int inside = range_inside(m, r, j);
        if (inside && m->cnt[j][r] == whole)
            m->full[j]--;
        m->cnt[j][r] = give ? m->cnt[j][r] + (uint32_t)size : m->cnt[j][r] - (uint32_t)size;
        if (inside && m->cnt[j][r] == whole)
            m->full[j]++;
    }
    m->free = give ? m->free + size : m->free - size;
}

/* The model checks itself: counters recomputed from the bitmap (order 0). */
static int model_consistent(const struct model *m)
{
    size_t fr = 0;
    for (size_t i = 0; i < m->n; i++)
        fr += m->cnt[0][i];
    if (fr != m->free)
        return 0;
    for (unsigned k = 1; k <= m->max_order; k++) {
        size_t full = 0;
        for (size_t r = 0; r < m->nranges[k]; r++) {
            size_t lo = r << k, hi = (r + 1) << k, c = 0;
            if (hi > m->n)
                hi = m->n;
            for (size_t i = lo; i < hi; i++)
                c += m->cnt[0][i];
            if (c != m->cnt[k][r])
                return 0;
            full += range_inside(m, r, k) && c == ((size_t)1 << k);
        }
        if (full != m->full[k])
            return 0;
    }
    return 1;
}

/* Maximal free aligned blocks per order, as buddyinfo must show them. */
static size_t model_free_blocks(const struct model *m, unsigned k)
{
    return k == m->max_order ? m->full[k] : m->full[k] - 2 * m->full[k + 1];
}

/* ---- the run ------------------------------------------------------------- */
struct live { void *p; unsigned order; uint64_t tag; };

struct run_cfg {
    size_t pages;
    unsigned max_order;
    int derived_wmarks;      /* else explicit, high ones: MEMALLOC must ignore them */
};

static uint64_t total_ops, total_allocs, total_fails, total_frees;

/* Compare the arena with the model: free pages and free blocks per order. */
static int arena_matches_model(lab_arena *a, const struct model *m, uint64_t op)
{
    lab_stats s;
    lab_stats_get(a, &s);
    int ok = 1;
    if (s.free_pages != m->free) {
        fprintf(stderr, "op %" PRIu64 ": free_pages %zu, model %zu\n", op, s.free_pages, m->free);
        ok = 0;
    }
    for (unsigned k = 0; k <= m->max_order; k++) {
        if (s.free_blocks[k] != model_free_blocks(m, k)) {
            fprintf(stderr, "op %" PRIu64 ": free_blocks[%u] %zu, model %zu\n", op, k, s.free_blocks[k],
                    model_free_blocks(m, k));
            ok = 0;
        }
    }
    return ok;
}

/* A random order: uniform over every order the arena has (uniform_pct of
 * the time), else geometric toward small blocks; rarely one above max_order.
 * Debug builds poison and check every page of a block at free and at
 * allocation, so there large blocks are rarer. */
static unsigned uniform_pct;

static unsigned pick_order(unsigned max_order)
{
    if (rnd_below(64) == 0)
        return max_order + 1;
    if (rnd_below(100) < uniform_pct)
        return rnd_below(max_order + 1);
    unsigned o = 0;
    while (o < max_order && rnd_below(2))
        o++;
    return o;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Slow builds only: a run stops at its op count or after this long. */
static double run_budget_s;

static void differential_run(const struct run_cfg *rc, uint64_t ops, uint64_t seed)
{
    double deadline = run_budget_s > 0 ? now_s() + run_budget_s : 0;
    size_t wmin = 0, wlow = 0, whigh = 0;
    if (!rc->derived_wmarks && rc->pages >= 8) {
        wmin = rc->pages / 4;
        wlow = rc->pages / 2;
        whigh = rc->pages - 1;
    }
    lab_arena *a = test_arena(rc->pages, rc->max_order, wmin, wlow, whigh);
    lab_fault_set(a, NULL);   /* LAB_FAIL_PAGE_ALLOC in the environment would break the model */
    unsigned max_order = lab_arena_max_order(a);
    char *base = lab_arena_base(a);
    REQUIRE(max_order <= rc->max_order && ((size_t)1 << max_order) <= rc->pages);

    struct model m;
    model_init(&m, rc->pages, max_order);
    struct live *live = calloc(rc->pages + 1, sizeof(*live));
    REQUIRE(live);
    size_t nlive = 0;
    rng_state = seed ? seed : 1;
    int failures_before = check_failures;
    unsigned alloc_pct = 50;
    uint64_t next_tag = 1;
    uint64_t op;

    for (op = 0; op < ops && check_failures == failures_before; op++) {
        if (op % 2048 == 0) {
            /* a new phase: drain, balance, fill or exhaust */
            static const unsigned pcts[] = { 15, 40, 50, 55, 65, 80, 95 };
            alloc_pct = pcts[rnd_below(sizeof(pcts) / sizeof(pcts[0]))];
        }
        if (nlive == 0 || rnd_below(100) < alloc_pct) {
            unsigned k = pick_order(max_order);
            int expect = k <= max_order && m.full[k] > 0;
            lab_result r;
            lab_alloc_pages_result(a, GFP, k, &r);
            total_allocs++;
            if ((r.addr != NULL) != expect) {
                fprintf(stderr, "seed %" PRIu64 " op %" PRIu64 ": order-%u request %s, model says %s "
                        "(pages %zu, max_order %u, model free %zu, reason %s)\n", seed, op, k,
                        r.addr ? "succeeded" : "failed", expect ? "a free aligned range exists" : "none exists",
                        rc->pages, max_order, m.free, lab_strreason(r.reason));
                CHECK((r.addr != NULL) == expect);
                break;
            }
            if (!r.addr) {
                total_fails++;
                if (k > max_order)
                    CHECK_EQ(r.reason, LAB_R_ORDER);
                else if (m.free >= ((size_t)1 << k))
                    CHECK_EQ(r.reason, LAB_R_FRAGMENTED);   /* enough pages, no block */
                else
                    CHECK(r.reason == LAB_R_RESERVE_EMPTY || r.reason == LAB_R_WATERMARK);
                continue;
            }
            CHECK_EQ(r.reason, LAB_R_NONE);
            CHECK(r.step == LAB_STEP_ZONE || r.step == LAB_STEP_EMERGENCY);
            size_t off = (size_t)((char *)r.addr - base);
            size_t f = off / LAB_PAGE_SIZE;
            if (off % ((size_t)LAB_PAGE_SIZE << k) != 0 || !model_block_free(&m, f, k)) {
                fprintf(stderr, "seed %" PRIu64 " op %" PRIu64 ": order-%u block at frame %zu (offset %zu) "
                        "is misaligned, outside the arena or not entirely free in the model\n",
                        seed, op, k, f, off);
                CHECK(!"returned block was entirely free and aligned");
                break;
            }
            model_mark(&m, f, k, 0);
            uint64_t tag = (seed << 32) ^ next_tag++;
            stamp_block(r.addr, k, tag);
            live[nlive++] = (struct live){ r.addr, k, tag };
        } else {
            size_t i = rnd_below((unsigned)nlive);
            struct live l = live[i];
            live[i] = live[--nlive];
            if (!stamp_ok(l.p, l.order, l.tag)) {
                fprintf(stderr, "seed %" PRIu64 " op %" PRIu64 ": order-%u block at frame %zu was overwritten\n",
                        seed, op, l.order, (size_t)((char *)l.p - base) / LAB_PAGE_SIZE);
                CHECK(!"stamps intact at free");
            }
            lab_free_pages(a, l.p, l.order);
            model_mark(&m, (size_t)((char *)l.p - base) / LAB_PAGE_SIZE, l.order, 1);
            total_frees++;
        }
        if (op % 64 == 63 && !arena_matches_model(a, &m, op)) {
            fprintf(stderr, "seed %" PRIu64 ": arena of %zu pages (max_order %u) differs from the model\n",
                    seed, rc->pages, max_order);
            CHECK(!"arena matches the model");
        }
        if (op % 4096 == 4095) {
            if (deadline && now_s() > deadline)
                break;
            CHECK_EQ(lab_check(a), 0);
            if (op % (1u << 16) == (1u << 16) - 1)
                CHECK(model_consistent(&m));
        }
    }
    total_ops += op;

    CHECK(model_consistent(&m));
    CHECK(arena_matches_model(a, &m, op));
    CHECK_EQ(lab_check(a), 0);
    while (nlive > 0) {
        struct live l = live[--nlive];
        CHECK(stamp_ok(l.p, l.order, l.tag));
        lab_free_pages(a, l.p, l.order);
        model_mark(&m, (size_t)((char *)l.p - base) / LAB_PAGE_SIZE, l.order, 1);
    }
    /* Everything back: the arena is its initial largest blocks again. */
    CHECK_EQ(m.free, rc->pages);
    CHECK(arena_matches_model(a, &m, op));
    lab_stats s;
    lab_stats_get(a, &s);
    CHECK_EQ(s.free_pages, rc->pages);
    CHECK_EQ(s.allocated_pages, 0);
    CHECK_EQ(lab_check(a), 0);
    if (check_failures != failures_before)
        fprintf(stderr, "  (failing run: pages %zu, max_order %u -> %u, seed %" PRIu64 ")\n",
                rc->pages, rc->max_order, max_order, seed);
    free(live);
    model_fini(&m);
    lab_arena_destroy(a);
}

/* ---- tests ----------------------------------------------------------------- */
static uint64_t base_seed;
static uint64_t ops_per_run;

static void run_all(const struct run_cfg *cfgs, size_t n, uint64_t ops)
{
    for (size_t i = 0; i < n; i++)
        differential_run(&cfgs[i], ops, base_seed * 1000003u + cfgs[i].pages * 31u + cfgs[i].max_order);
}

static void test_model_self_check_catches_a_wrong_model(void)
{
    /* The oracle must be able to disagree: a model with one page wrongly
     * marked is inconsistent or predicts differently. */
    struct model m;
    model_init(&m, 100, 5);
    CHECK(model_consistent(&m));
    CHECK_EQ(model_free_blocks(&m, 5), 3);   /* 0, 32, 64 */
    CHECK_EQ(model_free_blocks(&m, 2), 1);   /* 96 */
    model_mark(&m, 8, 3, 0);
    CHECK(model_consistent(&m));
    CHECK(!model_block_free(&m, 8, 3) && !model_block_free(&m, 0, 5) && model_block_free(&m, 0, 3));
    m.cnt[0][9] = 1;                          /* corrupt the bitmap alone */
    CHECK(!model_consistent(&m));
    model_fini(&m);
}

static void test_power_of_two_arenas_match_the_model(void)
{
    static const struct run_cfg cfgs[] = {
        { 1024, 10, 1 }, { 1024, 4, 0 }, { 4096, 12, 1 }, { 64, 6, 0 },
    };
    run_all(cfgs, sizeof(cfgs) / sizeof(cfgs[0]), ops_per_run);
}

static void test_odd_sized_arenas_match_the_model(void)
{
    static const struct run_cfg cfgs[] = {
        { 1000, 10, 1 }, { 3333, 10, 0 }, { 4096 + 5, 12, 1 }, { 3333, 6, 1 },
    };
    run_all(cfgs, sizeof(cfgs) / sizeof(cfgs[0]), ops_per_run);
}

static void test_small_and_order_zero_arenas_match_the_model(void)
{
    static const struct run_cfg cfgs[] = {
        { 777, 0, 1 }, { 100, 10, 0 }, { 1, 10, 1 }, { 37, 2, 0 },
    };
    run_all(cfgs, sizeof(cfgs) / sizeof(cfgs[0]), ops_per_run / 2);
}

int main(void)
{
    test_watchdog(SLOW_BUILD ? 120 : 60);
    base_seed = test_seed();
    /* 4 + 4 + 4/2 runs: 10 * ops_per_run operations in all */
    ops_per_run = SLOW_BUILD ? 50000 : 200000;
    uniform_pct = SLOW_BUILD ? 10 : 50;
    run_budget_s = SLOW_BUILD ? 1.2 : 0;      /* 10 runs: ~12 s at most */
    fprintf(stderr, "%s build\n", SLOW_BUILD ? "debug/sanitizer" : "release");
    double t0 = now_s();
    RUN(test_model_self_check_catches_a_wrong_model);
    RUN(test_power_of_two_arenas_match_the_model);
    RUN(test_odd_sized_arenas_match_the_model);
    RUN(test_small_and_order_zero_arenas_match_the_model);
    fprintf(stderr, "%" PRIu64 " operations (%" PRIu64 " allocations, %" PRIu64 " of them failed as predicted, "
            "%" PRIu64 " frees) in %.2f s\n", total_ops, total_allocs, total_fails, total_frees,
            now_s() - t0);
    if (!SLOW_BUILD)
        CHECK(total_ops >= 1000000);
    return test_finish();
}
