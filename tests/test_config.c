/*
 * Configuration: every error lab_arena_create and lab_room_create can
 * return for a bad config, one test each (with *out left NULL); the names of
 * every error code and reason; the defaults; watermarks derived from the
 * size as labyrinth.h says (computed here from the formula, not taken from the
 * implementation); max_order clamped to what fits.
 */
#include "check.h"

#include <stdlib.h>
#include <string.h>

#define SENTINEL ((lab_arena *)(uintptr_t)0x1000)

static lab_arena_config good_config(size_t pages)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = pages * LAB_PAGE_SIZE;
    return cfg;
}

/* Create with cfg; the error code, and *out must be NULL on error. */
static int create_err(const lab_arena_config *cfg)
{
    lab_arena *a = SENTINEL;
    int err = lab_arena_create(cfg, &a);
    if (err)
        CHECK(a == NULL);
    else
        lab_arena_destroy(a);
    return err;
}

/* ---- lab_arena_create errors ------------------------------------------------ */

static void test_good_config_is_accepted(void)
{
    lab_arena_config cfg = good_config(64);
    CHECK_EQ(create_err(&cfg), LAB_OK);   /* the control for every test below */
}

static void test_null_config_or_out_is_einval(void)
{
    lab_arena *a = SENTINEL;
    CHECK_EQ(lab_arena_create(NULL, &a), LAB_EINVAL);
    CHECK(a == NULL);
    lab_arena_config cfg = good_config(64);
    CHECK_EQ(lab_arena_create(&cfg, NULL), LAB_EINVAL);
}

/* The statistics calls' documented NULL cases. */
static void test_stats_calls_take_null_as_documented(void)
{
    lab_arena_config cfg = good_config(64);
    lab_arena *a = NULL;
    REQUIRE(lab_arena_create(&cfg, &a) == 0);
    lab_stats_get(a, NULL);   /* ignored */
    lab_stats s;
    memset(&s, 0xff, sizeof(s));
    lab_stats_get(NULL, &s);
    CHECK_EQ(s.total_pages, 0);
    CHECK_EQ(s.free_pages, 0);
    lab_room_stats rs;
    memset(&rs, 0xff, sizeof(rs));
    lab_room_stats_get(NULL, &rs);
    CHECK_EQ(rs.allocs, 0);
    CHECK_EQ(lab_stats_print(a, NULL, LAB_STATS_TEXT), -1);
    CHECK_EQ(lab_stats_print(NULL, stdout, LAB_STATS_TEXT), -1);
    lab_arena_destroy(a);
}

static void test_size_zero_is_esize(void)
{
    lab_arena_config cfg = good_config(0);
    CHECK_EQ(create_err(&cfg), LAB_ESIZE);
}

static void test_size_above_the_frame_limit_is_esize(void)
{
    /* more than 2^32 - 2 pages: frame indices are 32-bit, one value is NIL */
    lab_arena_config cfg = good_config(((size_t)1 << 32) - 1);
    CHECK_EQ(create_err(&cfg), LAB_ESIZE);
    cfg = good_config((size_t)1 << 32);
    CHECK_EQ(create_err(&cfg), LAB_ESIZE);
}

static void test_size_not_a_multiple_of_the_page_size_is_esizealign(void)
{
    static const size_t sizes[] = { 1, LAB_PAGE_SIZE - 1, LAB_PAGE_SIZE + 1, 64 * LAB_PAGE_SIZE + 512 };
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        lab_arena_config cfg = good_config(0);
        cfg.size = sizes[i];
        CHECK_EQ(create_err(&cfg), LAB_ESIZEALIGN);
    }
}

static void test_max_order_above_the_limit_is_eorder(void)
{
    lab_arena_config cfg = good_config(64);
    cfg.max_order = LAB_MAX_ORDER_LIMIT + 1;
    CHECK_EQ(create_err(&cfg), LAB_EORDER);
    cfg.max_order = 1000;
    CHECK_EQ(create_err(&cfg), LAB_EORDER);
    cfg.max_order = LAB_MAX_ORDER_LIMIT;   /* the limit itself is fine (and clamped) */
    CHECK_EQ(create_err(&cfg), LAB_OK);
}

static void test_unaligned_memory_is_ememalign(void)
{
    char *mem = aligned_alloc(LAB_PAGE_SIZE, 17 * LAB_PAGE_SIZE);
    REQUIRE(mem);
    static const size_t offs[] = { 1, 8, 2048, LAB_PAGE_SIZE - 1 };
    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        lab_arena_config cfg = good_config(16);
        cfg.memory = mem + offs[i];
        CHECK_EQ(create_err(&cfg), LAB_EMEMALIGN);
    }
    lab_arena_config cfg = good_config(16);
    cfg.memory = mem + LAB_PAGE_SIZE;
    CHECK_EQ(create_err(&cfg), LAB_OK);
    free(mem);
}

static void test_watermarks_out_of_order_are_ewmark(void)
{
    const size_t pages = 100;
    static const struct { size_t min, low, high; } bad[] = {
        { 20, 10, 30 },    /* min > low */
        { 5, 40, 30 },     /* low > high */
        { 5, 10, 100 },    /* high == pages */
        { 5, 10, 1000 },   /* high > pages */
        { 50, 0, 30 },     /* min > low (low left 0) */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        lab_arena_config cfg = good_config(pages);
        cfg.wmark_min = bad[i].min;
        cfg.wmark_low = bad[i].low;
        cfg.wmark_high = bad[i].high;
        int err = create_err(&cfg);
        if (err != LAB_EWMARK)
            fprintf(stderr, "watermarks %zu/%zu/%zu on %zu pages: %s\n", bad[i].min, bad[i].low, bad[i].high,
                    pages, lab_strerror(err));
        CHECK_EQ(err, LAB_EWMARK);
    }
    /* the edges that are in order */
    lab_arena_config cfg = good_config(pages);
    cfg.wmark_min = 10; cfg.wmark_low = 10; cfg.wmark_high = pages - 1;
    CHECK_EQ(create_err(&cfg), LAB_OK);
}

static void test_unknown_flag_is_eflags(void)
{
    /* bits far above the defined flags (the header adds flags from bit 0 up) */
    static const unsigned flags[] = { 1u << 16, 1u << 24, 1u << 31, LAB_ARENA_PREFAULT | (1u << 20) };
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        lab_arena_config cfg = good_config(64);
        cfg.flags = flags[i];
        CHECK_EQ(create_err(&cfg), LAB_EFLAGS);
    }
    lab_arena_config cfg = good_config(64);
    cfg.flags = LAB_ARENA_PREFAULT;
    CHECK_EQ(create_err(&cfg), LAB_OK);
}

/* ---- names ------------------------------------------------------------------- */

/* Every value of an enum below `count` has a name of its own: not NULL, not
 * empty, not the text an unknown value gets, and no other value's. */
static void check_distinct_names(const char *(*name)(int), int count, const char *what)
{
    const char *unknown = name(-1);
    REQUIRE(unknown != NULL);
    CHECK(name(count) != NULL);
    CHECK(name(count + 100) != NULL);
    for (int v = 0; v < count; v++) {
        const char *s = name(v);
        REQUIRE(s != NULL);
        CHECK(s[0] != 0);
        CHECK(strcmp(s, unknown) != 0);   /* not the fallback for values it does not know */
        for (int u = 0; u < v; u++)
            if (strcmp(s, name(u)) == 0) {
                fprintf(stderr, "%s %d and %d share the name \"%s\"\n", what, u, v, s);
                CHECK(!"distinct names");
            }
    }
}

static void test_every_error_code_has_a_distinct_name(void)
{
    check_distinct_names(lab_strerror, LAB_ERROR_COUNT, "codes");
}

static void test_every_reason_has_a_distinct_name(void)
{
    check_distinct_names(lab_strreason, LAB_R_COUNT, "reasons");
}

/* Step names are keys in lab_stats_print's JSON and in the benchmark's
 * metrics: one word each, and the ones the JSON has always had. */
static void test_every_step_has_a_distinct_name_of_one_word(void)
{
    check_distinct_names(lab_strstep, LAB_STEP_COUNT, "steps");
    for (int st = 0; st < LAB_STEP_COUNT; st++)
        CHECK(strpbrk(lab_strstep(st), " \"\\") == NULL);
    CHECK(strcmp(lab_strstep(LAB_STEP_NONE), "none") == 0);
    CHECK(strcmp(lab_strstep(LAB_STEP_ROOM), "room") == 0);
    CHECK(strcmp(lab_strstep(LAB_STEP_ROOM_REMOTE), "room_remote") == 0);
    CHECK(strcmp(lab_strstep(LAB_STEP_ZONE), "zone") == 0);
    CHECK(strcmp(lab_strstep(LAB_STEP_WAIT), "wait") == 0);
}

/* ---- defaults and derived values ---------------------------------------------- */

static void test_config_init_sets_the_documented_defaults(void)
{
    lab_arena_config cfg;
    memset(&cfg, 0xa5, sizeof(cfg));
    lab_arena_config_init(&cfg);
    CHECK_EQ(cfg.max_order, 10);
    CHECK_EQ(cfg.max_order, LAB_MAX_ORDER_DEFAULT);
    CHECK_EQ(cfg.wait_timeout_ms, 1000);
    CHECK_EQ(cfg.size, 0);
    CHECK(cfg.memory == NULL);
    CHECK_EQ(cfg.wmark_min, 0);
    CHECK_EQ(cfg.wmark_low, 0);
    CHECK_EQ(cfg.wmark_high, 0);
    CHECK_EQ(cfg.flags, 0);
    CHECK_EQ(cfg.kswapd_poll_ms, 2);
    lab_arena_config_init(NULL);   /* ignored */

    lab_room_config rc;
    memset(&rc, 0xa5, sizeof(rc));
    lab_room_config_init(&rc);
    CHECK_EQ(rc.batch, 32);
    CHECK_EQ(rc.high, 4 * 32);
    CHECK_EQ(rc.reserve, 0);
    CHECK_EQ(rc.quota, 0);
}

static size_t isqrt(size_t x)
{
    size_t r = 0;
    while ((r + 1) * (r + 1) <= x)
        r++;
    return r;
}

/* labyrinth.h (lab_arena_config): min_free_kbytes = sqrt(16 * KiB) clamped to [128 KiB, 256 MiB] and
 * to a quarter of the arena; low = min + d, high = min + 2d, with
 * d = max(min / 4, pages / 1000). */
static void derived_watermarks(size_t pages, size_t *min, size_t *low, size_t *high)
{
    size_t kib = pages * (LAB_PAGE_SIZE / 1024);
    size_t min_kib = isqrt(16 * kib);
    if (min_kib < 128)
        min_kib = 128;
    if (min_kib > 256 * 1024)
        min_kib = 256 * 1024;
    *min = min_kib / (LAB_PAGE_SIZE / 1024);
    if (*min > pages / 4)
        *min = pages / 4;
    size_t d = *min / 4 > pages / 1000 ? *min / 4 : pages / 1000;
    *low = *min + d;
    *high = *min + 2 * d;
}

static void check_derived(size_t pages)
{
    size_t min, low, high;
    derived_watermarks(pages, &min, &low, &high);
    lab_arena_config cfg = good_config(pages);
    lab_arena *a = NULL;
    REQUIRE(lab_arena_create(&cfg, &a) == 0);
    lab_stats s;
    lab_stats_get(a, &s);
    if (s.wmark_min != min || s.wmark_low != low || s.wmark_high != high)
        fprintf(stderr, "%zu pages: watermarks %zu/%zu/%zu, labyrinth.h says %zu/%zu/%zu\n", pages, s.wmark_min,
                s.wmark_low, s.wmark_high, min, low, high);
    CHECK_EQ(s.wmark_min, min);
    CHECK_EQ(s.wmark_low, low);
    CHECK_EQ(s.wmark_high, high);
    CHECK_EQ(s.total_pages, pages);
    CHECK_EQ(s.free_pages, pages);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* The watermarks arena a ended up with, and then it is destroyed. */
static void check_arena_watermarks(lab_arena *a, size_t min, size_t low, size_t high)
{
    lab_stats s;
    lab_stats_get(a, &s);
    CHECK_EQ(s.wmark_min, min);
    CHECK_EQ(s.wmark_low, low);
    CHECK_EQ(s.wmark_high, high);
    lab_arena_destroy(a);
}

/* The watermarks an arena of this configuration ends up with. */
static void check_watermarks(const lab_arena_config *cfg, size_t min, size_t low, size_t high)
{
    lab_arena *a = NULL;
    REQUIRE(lab_arena_create(cfg, &a) == 0);
    check_arena_watermarks(a, min, low, high);
}

static void test_watermarks_of_a_1gib_arena_are_derived_as_linux_does(void)
{
    /* sqrt(16 * 1048576) = 4096 KiB = 1024 pages; d = max(256, 262) = 262:
     * the arena's own watermarks, against numbers worked out by hand */
    lab_arena_config cfg = good_config(262144);
    check_watermarks(&cfg, 1024, 1286, 1548);
}

static void test_watermarks_of_other_sizes_follow_the_formula(void)
{
    check_derived(1000);                /* 252 KiB: 63 pages, d = 15 */
    check_derived(4096);                /* 512 KiB: 128 pages, d = 32 */
    check_derived(64);                  /* 128 KiB floor, then a quarter of the arena */
    check_derived(100);
    check_derived(150);                 /* the 128 KiB floor (32 pages) stays: under a quarter (37) */
    check_derived(300000 + 77);         /* 1.1 GiB and a bit: 1095 pages, pages / 1000 = 300 wins */
}

static void test_explicit_watermarks_are_kept(void)
{
    lab_arena_config cfg = good_config(1000);
    cfg.wmark_min = 7; cfg.wmark_low = 70; cfg.wmark_high = 700;
    check_watermarks(&cfg, 7, 70, 700);
}

static void test_max_order_is_clamped_to_what_fits(void)
{
    static const struct { size_t pages; unsigned asked, got; } cases[] = {
        { 64, 10, 6 }, { 100, 10, 6 }, { 1, 10, 0 }, { 2, 10, 1 }, { 1023, 10, 9 }, { 1024, 10, 10 },
        { 4096, 10, 10 }, { 4096, 12, 12 }, { 64, LAB_MAX_ORDER_LIMIT, 6 }, { 64, 3, 3 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        lab_arena_config cfg = good_config(cases[i].pages);
        cfg.max_order = cases[i].asked;
        lab_arena *a = NULL;
        REQUIRE(lab_arena_create(&cfg, &a) == 0);
        unsigned got = lab_arena_max_order(a);
        if (got != cases[i].got)
            fprintf(stderr, "%zu pages, max_order %u: got %u, want %u\n", cases[i].pages, cases[i].asked, got,
                    cases[i].got);
        CHECK_EQ(got, cases[i].got);
        lab_stats s;
        lab_stats_get(a, &s);
        CHECK_EQ(s.max_order, got);
        /* the clamped order is served, the next one is not */
        void *p = lab_alloc_pages(a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, got);
        CHECK(p != NULL);
        lab_free_pages(a, p, got);
        lab_result r;
        lab_alloc_pages_result(a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, got + 1, &r);
        CHECK(r.addr == NULL);
        CHECK_EQ(r.reason, LAB_R_ORDER);
        CHECK_EQ(lab_check(a), 0);
        lab_arena_destroy(a);
    }
}

/* An arena far larger than the machine, only reserved; NULL (and a word
 * saying so) where the address space cannot hold it. */
static lab_arena *create_reserved(const lab_arena_config *cfg, const char *size)
{
    lab_arena *a = NULL;
    int err = lab_arena_create(cfg, &a);
    if (err == LAB_EMAP || err == LAB_ENOMEM) {   /* a sanitizer's address space, say */
        fprintf(stderr, "  (%s: no room for an arena of %s here: not checked)\n", lab_strerror(err), size);
        return NULL;
    }
    REQUIRE(err == 0);
    return a;
}

/* An arena of 2^24 pages (64 GiB, reserved and never touched but for the
 * descriptors used) is the smallest whose max_order may be the limit itself:
 * the largest free list there is must work like the others.  Where the
 * address space cannot hold it, it says so and checks nothing. */
static void test_the_largest_order_there_is_is_served(void)
{
    test_skip_under_emulator("qemu-user keeps flags for every page of a guest mapping: a 64 GiB "
                             "reservation costs the emulator seconds and hundreds of MiB of RSS");
    lab_arena_config cfg = good_config((size_t)1 << LAB_MAX_ORDER_LIMIT);
    cfg.max_order = LAB_MAX_ORDER_LIMIT;
    lab_arena *a = create_reserved(&cfg, "64 GiB");
    if (!a)
        return;
    CHECK_EQ(lab_arena_max_order(a), LAB_MAX_ORDER_LIMIT);
    /* One page split off the whole arena and merged back: the block of the
     * largest order goes off its list and on again.  (Not the whole block
     * handed out: a debug build checks the poison of every page freed.) */
    for (int round = 0; round < 2; round++) {
        void *p = lab_alloc_pages(a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, 0);
        CHECK(p != NULL);
        lab_stats s;
        lab_stats_get(a, &s);
        CHECK_EQ(s.free_blocks[LAB_MAX_ORDER_LIMIT], 0);
        CHECK_EQ(s.free_blocks[LAB_MAX_ORDER_LIMIT - 1], 1);
        lab_free_pages(a, p, 0);
        lab_stats_get(a, &s);
        CHECK_EQ(s.free_pages, (size_t)1 << LAB_MAX_ORDER_LIMIT);
        CHECK_EQ(s.free_blocks[LAB_MAX_ORDER_LIMIT], 1);
    }
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* Above 4 TiB, sqrt(16 * KiB) passes Linux's cap on min_free_kbytes (256
 * MiB), and min stays there.  An 8 TiB arena is only reserved, never
 * touched; where the address space cannot hold it, it says so. */
static void test_min_is_capped_at_256_mib_in_huge_arenas(void)
{
    test_skip_under_emulator("qemu-user keeps flags for every page of a guest mapping: an 8 TiB "
                             "reservation is more than the emulator can hold");
    size_t pages = (size_t)1 << 31, min, low, high;
    derived_watermarks(pages, &min, &low, &high);
    CHECK_EQ(min, (size_t)256 * 1024 * 1024 / LAB_PAGE_SIZE);
    lab_arena_config cfg = good_config(pages);
    lab_arena *a = create_reserved(&cfg, "8 TiB");
    if (a)
        check_arena_watermarks(a, min, low, high);
}

/* ---- lab_room_create errors ---------------------------------------------------- */

static int room_err(lab_arena *a, const lab_room_config *rc)
{
    lab_room *r = (lab_room *)(uintptr_t)0x1000;
    int err = lab_room_create(a, rc, &r);
    if (err)
        CHECK(r == NULL);
    else
        lab_room_destroy(r);
    return err;
}

static void test_room_config_errors(void)
{
    lab_arena *a = test_arena(256, 4, 8, 16, 32);
    lab_room_config rc;

    lab_room_config_init(&rc);
    CHECK_EQ(room_err(a, &rc), LAB_OK);                  /* control */
    rc.reserve = 16; rc.quota = 16;
    CHECK_EQ(room_err(a, &rc), LAB_OK);                  /* quota == reserve is fine */

    lab_room_config_init(&rc);
    rc.batch = 0;
    CHECK_EQ(room_err(a, &rc), LAB_EBATCH);

    lab_room_config_init(&rc);
    rc.reserve = 10; rc.quota = 9;
    CHECK_EQ(room_err(a, &rc), LAB_EQUOTA);
    /* a quota below one block of max_order: every request of that order
     * would fail, a NOFAIL one would wait for ever */
    lab_room_config_init(&rc);
    rc.max_order = 3; rc.quota = 7;
    CHECK_EQ(room_err(a, &rc), LAB_EQUOTA);
    rc.quota = 8;
    CHECK_EQ(room_err(a, &rc), LAB_OK);
    rc.reserve = 4;                                      /* the reserve serves order 0 only */
    CHECK_EQ(room_err(a, &rc), LAB_EQUOTA);
    rc.quota = 12;
    CHECK_EQ(room_err(a, &rc), LAB_OK);

    lab_room_config_init(&rc);
    rc.reserve = 257;                                    /* more than the arena */
    CHECK_EQ(room_err(a, &rc), LAB_ERESERVE);
    rc.reserve = (size_t)1 << 40;
    CHECK_EQ(room_err(a, &rc), LAB_ERESERVE);
    rc.reserve = 256 - 8 + 1;                            /* more than the free pages above min */
    CHECK_EQ(room_err(a, &rc), LAB_ERESERVE);

    lab_room *r = (lab_room *)(uintptr_t)0x1000;
    lab_room_config_init(&rc);
    CHECK_EQ(lab_room_create(NULL, &rc, &r), LAB_EINVAL);
    CHECK(r == NULL);
    r = (lab_room *)(uintptr_t)0x1000;
    CHECK_EQ(lab_room_create(a, NULL, &r), LAB_EINVAL);
    CHECK(r == NULL);
    CHECK_EQ(lab_room_create(a, &rc, NULL), LAB_EINVAL);

    /* nothing was taken by the refused rooms */
    lab_stats s;
    lab_stats_get(a, &s);
    CHECK_EQ(s.free_pages, 256);
    CHECK_EQ(s.reserve_pages, 0);
    CHECK_EQ(s.nr_rooms, 0);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

int main(void)
{
    /* a hang detector, not a timing test: the largest order and the 8 TiB
     * arena take half a minute in the coverage tree (debug, instrumented) */
    test_watchdog(240);
    RUN(test_good_config_is_accepted);
    RUN(test_null_config_or_out_is_einval);
    RUN(test_stats_calls_take_null_as_documented);
    RUN(test_size_zero_is_esize);
    RUN(test_size_above_the_frame_limit_is_esize);
    RUN(test_size_not_a_multiple_of_the_page_size_is_esizealign);
    RUN(test_max_order_above_the_limit_is_eorder);
    RUN(test_unaligned_memory_is_ememalign);
    RUN(test_watermarks_out_of_order_are_ewmark);
    RUN(test_unknown_flag_is_eflags);
    RUN(test_every_error_code_has_a_distinct_name);
    RUN(test_every_reason_has_a_distinct_name);
    RUN(test_every_step_has_a_distinct_name_of_one_word);
    RUN(test_config_init_sets_the_documented_defaults);
    RUN(test_watermarks_of_a_1gib_arena_are_derived_as_linux_does);
    RUN(test_watermarks_of_other_sizes_follow_the_formula);
    RUN(test_explicit_watermarks_are_kept);
    RUN(test_max_order_is_clamped_to_what_fits);
    RUN(test_the_largest_order_there_is_is_served);
    RUN(test_min_is_capped_at_256_mib_in_huge_arenas);
    RUN(test_room_config_errors);
    return test_finish();
}
