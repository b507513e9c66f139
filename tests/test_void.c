/* The void: lazy arenas cost nothing until used; trim gives free memory back
 * to the OS and step 6 (or the background reclaimer) brings it back; idle
 * memory falls into the void by itself; non-blocking requests never touch it. */
#include "check.h"
#include "internal.h"   /* pause_hook */

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define T_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define T_TSAN 1
#endif
#endif
#if defined(T_ASAN) || defined(T_TSAN)
#define T_SANITIZER 1   /* the process RSS includes the sanitizer's shadow */
#endif

#define MiB (1024ull * 1024ull)

/* Resident bytes of the whole process (/proc/self/statm, second field). */
static size_t process_rss(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    REQUIRE(f);
    REQUIRE(fscanf(f, "%lu %lu", &size, &resident) == 2);
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static lab_stats stats(lab_arena *a)
{
    lab_stats s;
    lab_stats_get(a, &s);
    return s;
}

static lab_arena *arena_with(size_t bytes, unsigned flags, size_t wmin, size_t wlow, size_t whigh)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = bytes;
    cfg.flags = flags;
    cfg.wmark_min = wmin;
    cfg.wmark_low = wlow;
    cfg.wmark_high = whigh;
    lab_arena *a = NULL;
    int err = lab_arena_create(&cfg, &a);
    if (err) {
        fprintf(stderr, "lab_arena_create: %s\n", lab_strerror(err));
        exit(1);
    }
    return a;
}

/* List every page of the arena on the free lists, committed: take every
 * max-order block (MEMALLOC ignores the watermarks), touch it, give it back.
 * Afterwards nothing is left in the lazily listed (never touched) tail. */
static void commit_everything(lab_arena *a)
{
    unsigned mo = lab_arena_max_order(a);
    size_t n = lab_arena_size(a) / ((size_t)LAB_PAGE_SIZE << mo);
    void **p = calloc(n, sizeof(void *));
    REQUIRE(p);
    for (size_t i = 0; i < n; i++) {
        p[i] = lab_alloc_pages(a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, mo);
        REQUIRE(p[i]);
        memset(p[i], 0x5a, (size_t)LAB_PAGE_SIZE << mo);
    }
    for (size_t i = 0; i < n; i++)
        lab_free_pages(a, p[i], mo);
    free(p);
    REQUIRE(stats(a).free_pages == lab_arena_size(a) / LAB_PAGE_SIZE);
}

#ifdef LAB_TEST_SLOW
#define CREATE_MS_MAX 20.0
#else
#define CREATE_MS_MAX 2.0
#endif

static void test_64gib_lazy_arena_is_created_fast_and_costs_little(void)
{
    test_skip_under_emulator("qemu-user keeps flags for every page of a guest mapping: a 64 GiB "
                             "reservation costs the emulator seconds and hundreds of MiB of RSS");
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = 64ull << 30;
    cfg.name = "huge-lazy";
    lab_arena *a = NULL;
    /* the fastest of three creations: one run can lose the CPU on a busy
     * machine; a creation that touched its 256 MiB of descriptors or the
     * 64 GiB would take hundreds of milliseconds every time */
    double ms = 1e9;
    size_t rss0 = 0, rss1 = 0;
    for (int i = 0; i < 3; i++) {
        lab_arena_destroy(a);
        a = NULL;
        rss0 = process_rss();
        double t0 = now_ms();
        int err = lab_arena_create(&cfg, &a);
        double t = now_ms() - t0;
        rss1 = process_rss();
        REQUIRE(err == 0 && a);
        ms = t < ms ? t : ms;
    }
    fprintf(stderr, "  64 GiB lazy arena: created in %.3f ms (fastest of 3), process RSS +%.2f MiB\n", ms,
            (double)(rss1 > rss0 ? rss1 - rss0 : 0) / (double)MiB);
    /* measured: 0.03 ms and +0.15 MiB in release builds */
    CHECK(ms < CREATE_MS_MAX);
#ifndef T_SANITIZER
    CHECK(rss1 < rss0 + 2 * MiB);
#else
    fprintf(stderr, "  note: process RSS not asserted under a sanitizer\n");
#endif
    CHECK_EQ(lab_arena_size(a), 64ull << 30);

    /* allocations work: small and large blocks, written and read back */
    void *small = lab_alloc_pages(a, LAB_GFP_KERNEL, 0);
    void *large = lab_alloc_pages(a, LAB_GFP_KERNEL, lab_arena_max_order(a));
    void *atomic = lab_alloc_pages(a, LAB_GFP_ATOMIC, 3);
    REQUIRE(small && large && atomic);
    stamp_block(small, 0, 1);
    stamp_block(large, lab_arena_max_order(a), 2);
    stamp_block(atomic, 3, 3);
    CHECK(stamp_ok(small, 0, 1));
    CHECK(stamp_ok(large, lab_arena_max_order(a), 2));
    CHECK(stamp_ok(atomic, 3, 3));
    lab_stats s = stats(a);
    CHECK_EQ(s.total_pages, (64ull << 30) / LAB_PAGE_SIZE);
    /* Resident: the three blocks (measured 4.04 MiB), and at most two more
     * huge pages where transparent huge pages back the lazy mapping; of the
     * 256 MiB of descriptors, the few written (measured 0.02 MiB), or a
     * huge page or two. */
    size_t blocks = ((size_t)1 + ((size_t)1 << lab_arena_max_order(a)) + 8) * LAB_PAGE_SIZE;
    CHECK(s.resident_bytes >= blocks);
    CHECK(s.resident_bytes <= blocks + 4 * MiB);
    CHECK(s.metadata_resident_bytes <= 4 * MiB);
    fprintf(stderr, "  after 3 allocations: frames resident %.2f MiB, descriptors resident %.2f of %.0f MiB\n",
            (double)s.resident_bytes / (double)MiB, (double)s.metadata_resident_bytes / (double)MiB,
            (double)s.metadata_bytes / (double)MiB);
#ifndef T_SANITIZER
    CHECK(process_rss() <= rss0 + blocks + 8 * MiB);
#endif
    lab_free_pages(a, small, 0);
    lab_free_pages(a, large, lab_arena_max_order(a));
    lab_free_pages(a, atomic, 3);
    s = stats(a);   /* the atomic order-3 request topped up the high-order atomic reserve */
    CHECK_EQ(s.free_pages + s.highatomic_pages, s.total_pages);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* 256 MiB allocated and touched in order-8 blocks of a 512 MiB arena, then
 * freed and trimmed: the OS gets it back, and it is all usable again. */
static void test_trim_gives_memory_back_and_it_comes_back_usable(void)
{
    lab_arena *a = arena_with(512 * MiB, 0, 0, 0, 0);
    enum { N8 = 256 };   /* 256 blocks of 1 MiB */
    static void *blk[N8];
    for (size_t i = 0; i < N8; i++) {
        blk[i] = lab_alloc_pages(a, LAB_GFP_KERNEL, 8);
        REQUIRE(blk[i]);
        memset(blk[i], 0xa5, 256 * LAB_PAGE_SIZE);
    }
    size_t rss_before = process_rss();
    for (size_t i = 0; i < N8; i++)
        lab_free_pages(a, blk[i], 8);
    size_t got = lab_arena_trim(a);
    size_t rss_after = process_rss();
    double drop = rss_before > rss_after ? (double)(rss_before - rss_after) / (double)MiB : 0.0;
    fprintf(stderr, "  trim returned %.1f MiB; process RSS %.1f -> %.1f MiB (drop %.1f MiB)\n",
            (double)got / (double)MiB, (double)rss_before / (double)MiB, (double)rss_after / (double)MiB, drop);
    CHECK(got >= 192 * MiB);
#ifndef T_SANITIZER
    CHECK(rss_before >= rss_after + 192 * MiB);
#else
    fprintf(stderr, "  note: process RSS drop not asserted under a sanitizer\n");
#endif
    lab_stats s = stats(a);
    CHECK(s.void_pages > 0);
    CHECK_EQ(s.void_pages * LAB_PAGE_SIZE, got);
    CHECK_EQ(s.trimmed_pages * LAB_PAGE_SIZE, got);
    CHECK(s.resident_bytes < 16 * MiB);
    CHECK_EQ(s.free_pages + s.void_pages, s.total_pages);
    CHECK_EQ(s.recommitted_pages, 0);
    CHECK_EQ(lab_check(a), 0);

    /* Everything above the min watermark, in max-order blocks, with blocking
     * requests: the untouched tail first, then the void through step 6. */
    unsigned mo = lab_arena_max_order(a);
    size_t n = (s.total_pages - s.wmark_min) >> mo;
    void **p = calloc(n + 1, sizeof(void *));
    REQUIRE(p);
    size_t by_recommit = 0, ok = 0;
    for (size_t i = 0; i < n; i++) {
        lab_result r;
        lab_alloc_pages_result(a, LAB_GFP_KERNEL, mo, &r);
        p[i] = r.addr;
        if (!r.addr) {
            fprintf(stderr, "  allocation %zu of %zu failed: %s\n", i, n, lab_strreason(r.reason));
            continue;
        }
        ok++;
        by_recommit += r.step == LAB_STEP_RECOMMIT;
        stamp_block(r.addr, mo, i + 1);
    }
    CHECK_EQ(ok, n);
    CHECK(by_recommit > 0);
    /* the arena is used up: nothing more above min */
    lab_result r;
    lab_alloc_pages_result(a, LAB_GFP_KERNEL | LAB_GFP_NORETRY | LAB_GFP_NOWARN, mo, &r);
    CHECK(r.addr == NULL);
    size_t intact = 0;
    for (size_t i = 0; i < n; i++)
        intact += p[i] && stamp_ok(p[i], mo, i + 1);
    CHECK_EQ(intact, n);
    s = stats(a);
    fprintf(stderr, "  re-used %zu blocks of order %u (%zu through step 6), re-committed %llu pages\n", ok, mo,
            by_recommit, (unsigned long long)s.recommitted_pages);
    CHECK(s.recommitted_pages > 0);
    CHECK_EQ(s.void_pages, 0);                     /* all of the trimmed memory is back */
    CHECK(s.alloc_by_step[LAB_STEP_RECOMMIT] > 0);
    CHECK_EQ(lab_check(a), 0);
    for (size_t i = 0; i < n; i++)
        lab_free_pages(a, p[i], mo);
    free(p);
    CHECK_EQ(stats(a).free_pages, stats(a).total_pages);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

static void test_trim_keeps_the_min_watermark_committed(void)
{
    lab_arena *a = arena_with(64 * MiB, 0, 0, 0, 0);   /* derived watermarks */
    commit_everything(a);
    size_t got = lab_arena_trim(a);
    lab_stats s = stats(a);
    size_t kept = s.total_pages - got / LAB_PAGE_SIZE;
    fprintf(stderr, "  trimmed %zu of %zu pages, kept %zu committed (min %zu)\n", got / LAB_PAGE_SIZE,
            s.total_pages, kept, s.wmark_min);
    CHECK(got > 0);
    CHECK(kept >= s.wmark_min);
    CHECK(s.free_pages >= s.wmark_min);
    CHECK_EQ(kept, s.wmark_min);   /* and no more: the block the floor falls in is split */
    CHECK(s.resident_bytes >= s.wmark_min * LAB_PAGE_SIZE);   /* the kept pages are still there */
    /* trimming again finds nothing more to give */
    CHECK_EQ(lab_arena_trim(a), 0);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* An arena that is one max-order block (4 MiB with the default max_order
 * 10) gives back all but min: the block the floor falls in is split (it
 * gave back nothing), and what comes back merges into one block again. */
static void test_trim_splits_the_block_its_floor_falls_in(void)
{
    lab_arena *a = arena_with(1024 * LAB_PAGE_SIZE, 0, 64, 80, 96);
    REQUIRE(lab_arena_max_order(a) == 10);
    commit_everything(a);
    CHECK_EQ(lab_arena_trim(a), (size_t)(1024 - 64) * LAB_PAGE_SIZE);
    lab_stats s = stats(a);
    CHECK_EQ(s.free_pages, 64);
    CHECK_EQ(s.void_pages, 1024 - 64);
    CHECK(s.committed_bytes <= 64 * LAB_PAGE_SIZE);
    CHECK_EQ(lab_check(a), 0);
    /* a blocking request for the whole arena re-commits it all */
    void *p = lab_alloc_pages(a, LAB_GFP_KERNEL | LAB_GFP_MEMALLOC, 10);
    CHECK(p != NULL);
    if (p)
        lab_free_pages(a, p, 10);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* A blocking request that finds the free pages at the floor after a trim
 * re-commits what they lack, the void's smallest block: it brought back
 * the floor's worth more (513 pages wanted: 512 + 1024 re-committed). */
static void test_a_blocking_request_recommits_only_what_the_free_pages_lack(void)
{
    lab_arena *a = arena_with(4096 * LAB_PAGE_SIZE, 0, 512, 512, 512);
    commit_everything(a);
    CHECK_EQ(lab_arena_trim(a), (size_t)(4096 - 512) * LAB_PAGE_SIZE);
    lab_result r;
    lab_alloc_pages_result(a, LAB_GFP_KERNEL, 0, &r);
    REQUIRE(r.addr != NULL);
    CHECK_EQ(r.step, LAB_STEP_RECOMMIT);
    lab_stats s = stats(a);
    CHECK_EQ(s.recommitted_pages, 512);   /* the void: 1024, 1024, 1024 and 512 */
    CHECK_EQ(s.free_pages, 512 + 512 - 1);
    lab_free_pages(a, r.addr, 0);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* A trim's budget (one pass over the arena) may run out between the split
 * of the block its floor falls in and the take of one of its halves: the
 * halves were left on the free lists as two free buddies that never merge
 * (lab_check: LAB_ECHECK_BUDDY), and the whole block could not be handed
 * out.  Frees and a blocking request's re-commit between the batches
 * (the idle trimmer's trim under a busy program) run the budget down. */
static lab_arena *budget_arena;
static void *budget_held[3];
static int budget_batches;
static void run_the_budget_down(enum pause_site site)
{
    if (site != PP_TRIM_DECOMMIT)
        return;
    lab_arena *a = budget_arena;
    switch (++budget_batches) {
    case 1:   /* the whole block comes back: the next batch trims it */
        lab_free_pages(a, budget_held[0], 10);
        break;
    case 2:   /* and this one */
        lab_free_pages(a, budget_held[1], 9);
        break;
    case 3:   /* 64 pages of budget left; a block of order 9 and one page less than the floor besides */
        budget_held[0] = lab_alloc_pages(a, LAB_GFP_DIRECT_RECLAIM | LAB_GFP_MEMALLOC, 9);
        budget_held[1] = lab_alloc_pages(a, LAB_GFP_MEMALLOC, 0);
        break;
    }
}

static void test_a_trim_out_of_budget_leaves_no_split_block_behind(void)
{
    lab_arena *a = budget_arena = arena_with(2048 * LAB_PAGE_SIZE, 0, 64, 80, 96);
    REQUIRE(lab_arena_max_order(a) == 10);
    commit_everything(a);
    /* an order-10 block and half of the other held: 512 pages free */
    REQUIRE((budget_held[0] = lab_alloc_pages(a, LAB_GFP_MEMALLOC, 10)) != NULL);
    REQUIRE((budget_held[1] = lab_alloc_pages(a, LAB_GFP_MEMALLOC, 9)) != NULL);
    budget_batches = 0;
    atomic_store(&pause_hook, run_the_budget_down);
    lab_arena_trim(a);
    atomic_store(&pause_hook, NULL);
    REQUIRE(budget_held[0] && budget_held[1]);
    lab_stats s = stats(a);
    fprintf(stderr, "  %d batches; free %zu, void %zu, free blocks of order 8: %zu, of order 9: %zu; lab_check %d\n",
            budget_batches, s.free_pages, s.void_pages, s.free_blocks[8], s.free_blocks[9], lab_check(a));
    CHECK_EQ(lab_check(a), 0);
    lab_free_pages(a, budget_held[1], 0);
    lab_free_pages(a, budget_held[0], 9);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* A room's reserve counts the void: lab_room_create re-commits what the
 * free pages lack (it was refused with LAB_ERESERVE after a trim, with
 * most of the arena decommitted). */
static void test_a_rooms_reserve_is_recommitted_from_the_void(void)
{
    lab_arena *a = arena_with(16 * MiB, 0, 0, 0, 0);
    commit_everything(a);
    REQUIRE(lab_arena_trim(a) > 0);
    lab_stats s = stats(a);
    size_t reserve = s.free_pages;   /* above min: more than the committed pages hold */
    REQUIRE(s.void_pages > reserve);
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.reserve = reserve;
    lab_room *r = NULL;
    CHECK_EQ(lab_room_create(a, &rc, &r), 0);
    lab_stats t = stats(a);
    CHECK(t.void_pages < s.void_pages);
    CHECK(t.free_pages >= t.wmark_min);
    if (r) {
        lab_room_stats rs;
        lab_room_stats_get(r, &rs);
        CHECK_EQ(rs.reserve, reserve);
        lab_room_destroy(r);
    }
    /* more than the arena: refused, and nothing re-committed for it */
    size_t in_void = stats(a).void_pages;
    CHECK(in_void > 0);
    rc.reserve = s.total_pages;
    CHECK_EQ(lab_room_create(a, &rc, &r), LAB_ERESERVE);
    CHECK_EQ(stats(a).void_pages, in_void);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* A trim that runs while lab_room_create re-commits the reserve's pages
 * (the zone lock let go for the system calls) leaves them: it used to put
 * them straight back in the void, and the room was refused with
 * LAB_ERESERVE, again and again under a program that trims in a loop. */
static lab_arena *trimmed_arena;
static int trims_meanwhile;
static void trim_meanwhile(enum pause_site site)
{
    if (site != PP_RESERVE_RECOMMIT)
        return;
    trims_meanwhile++;
    lab_arena_trim(trimmed_arena);
}

static void test_a_trim_during_a_reserves_recommit_leaves_its_pages(void)
{
    lab_arena *a = trimmed_arena = arena_with(16 * MiB, 0, 0, 0, 0);
    commit_everything(a);
    REQUIRE(lab_arena_trim(a) > 0);
    lab_stats s = stats(a);
    size_t reserve = s.free_pages;
    REQUIRE(s.void_pages > reserve);
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.reserve = reserve;
    lab_room *r = NULL;
    atomic_store(&pause_hook, trim_meanwhile);
    int err = lab_room_create(a, &rc, &r);
    atomic_store(&pause_hook, NULL);
    fprintf(stderr, "  %d trims while re-committing: %s\n", trims_meanwhile, lab_strerror(err));
    CHECK(trims_meanwhile > 0);
    CHECK_EQ(err, 0);
    if (r) {
        lab_room_stats rs;
        lab_room_stats_get(r, &rs);
        CHECK_EQ(rs.reserve, reserve);
        lab_room_destroy(r);
    }
    /* and once it is taken, trims go down to min again */
    lab_arena_trim(a);
    CHECK(stats(a).free_pages < s.free_pages + s.wmark_min);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* A trim that started before lab_room_create may hold the pages the
 * reserve needs in flight to the void (isolated, not yet decommitted):
 * they count, as the void's do, and the call waits for them rather than
 * refusing the room. */
static _Atomic int trim_parked, trim_go, trim_waited;
static _Thread_local bool trim_parker;
static void park_the_trim(enum pause_site site)
{
    if (site == PP_TRIM_DECOMMIT && trim_parker) {
        atomic_store(&trim_parked, 1);
        for (int i = 0; i < 5000 && !atomic_load(&trim_go); i++)
            usleep(1000);
    } else if (site == PP_RESERVE_TRIM_WAIT) {
        atomic_store(&trim_waited, 1);
        atomic_store(&trim_go, 1);
    }
}

static void *trim_on_a_thread(void *arg)
{
    trim_parker = true;
    lab_arena_trim(arg);
    return NULL;
}

static void test_a_reserve_waits_for_a_trim_in_flight(void)
{
    lab_arena *a = arena_with(16 * MiB, 0, 0, 0, 0);
    commit_everything(a);
    lab_stats s = stats(a);
    atomic_store(&pause_hook, park_the_trim);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, trim_on_a_thread, a) == 0);
    for (int i = 0; i < 5000 && !atomic_load(&trim_parked); i++)
        usleep(1000);
    REQUIRE(atomic_load(&trim_parked));
    /* every free page above min is in flight: the reserve needs them */
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.reserve = s.free_pages - s.wmark_min;
    lab_room *r = NULL;
    int err = lab_room_create(a, &rc, &r);
    atomic_store(&trim_go, 1);
    pthread_join(t, NULL);
    atomic_store(&pause_hook, NULL);
    fprintf(stderr, "  reserve %zu: %s (waited for the trim: %s)\n", rc.reserve, lab_strerror(err),
            atomic_load(&trim_waited) ? "yes" : "no");
    CHECK_EQ(err, 0);
    CHECK(atomic_load(&trim_waited));
    if (r) {
        lab_room_stats rs;
        lab_room_stats_get(r, &rs);
        CHECK_EQ(rs.reserve, rc.reserve);
        lab_room_destroy(r);
    }
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* Trim gives the largest blocks back first and leaves fragments: free
 * pages may then stand at high (the idle trim's mark), all of order 0,
 * with the void holding whole blocks.  An atomic request of order 2 fails (fragmented) and asks
 * the reclaimer for a block of its order, which it re-commits though the
 * free count needs nothing (it woke only below low, and balanced to high:
 * such requests failed for ever).  A room's refill from the zone (step 3)
 * fails the same way and must ask the same. */
static void atomic_request_for_a_block_the_void_holds(int via_room)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = 32 * MiB;
    cfg.trim_delay_ms = 20;   /* the idle trim: down to high */
    lab_arena *a = NULL;
    REQUIRE(lab_arena_create(&cfg, &a) == 0);
    /* blocking, so that what the idle trim may take meanwhile comes back */
    const lab_gfp_t all = LAB_GFP_KERNEL | LAB_GFP_MEMALLOC | LAB_GFP_NORETRY | LAB_GFP_NOWARN;
    enum { BIG = 4, ORDER = 10 };
    void *big[BIG];
    for (int i = 0; i < BIG; i++) {
        REQUIRE((big[i] = lab_alloc_pages(a, all, ORDER)) != NULL);
        memset(big[i], 1, (size_t)LAB_PAGE_SIZE << ORDER);
    }
    static void *small[8192];
    size_t n = 0;
    while (n < 8192 && (small[n] = lab_alloc_pages(a, all, 0)) != NULL)
        memset(small[n++], 1, LAB_PAGE_SIZE);
    for (size_t i = 0; i < n; i += 2)   /* every other page: no two merge */
        lab_free_pages(a, small[i], 0);
    for (int i = 0; i < BIG; i++)
        lab_free_pages(a, big[i], ORDER);
    /* the idle trim, in batches, until it leaves the void alone */
    size_t last = 0;
    for (int i = 0, still = 0; i < 400 && still < 5; i++) {
        usleep(20000);
        size_t v = stats(a).void_pages;
        still = v == last && v > 0 ? still + 1 : 0;
        last = v;
    }
    lab_stats s = stats(a);
    fprintf(stderr, "  free %zu (high %zu), void %zu, free blocks of order 2 and up:", s.free_pages, s.wmark_high,
            s.void_pages);
    size_t big_free = 0;
    for (unsigned o = 2; o <= s.max_order; o++)
        big_free += s.free_blocks[o];
    fprintf(stderr, " %zu\n", big_free);
    REQUIRE(big_free == 0 && s.void_pages > 0 && s.free_pages >= s.wmark_low);
    /* a room's refill from the zone fails the same way and must ask too */
    lab_room *room = NULL;
    if (via_room) {
        lab_room_config rc;
        lab_room_config_init(&rc);
        rc.max_order = 2;
        REQUIRE(lab_room_create(a, &rc, &room) == 0);
    }
    void *p = NULL;
    int tries = 0;
    for (; tries < 2000 && !p; tries++) {
        p = via_room ? lab_room_alloc_pages(room, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, 2)
                     : lab_alloc_pages(a, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, 2);
        if (!p)
            usleep(1000);
    }
    fprintf(stderr, "  served after %d tries\n", tries);
    CHECK(p != NULL);
    CHECK(stats(a).void_pages < s.void_pages);
    if (p && via_room)
        lab_room_free_pages(room, p, 2);
    else if (p)
        lab_free_pages(a, p, 2);
    if (room)
        lab_room_destroy(room);
    for (size_t i = 1; i < n; i += 2)
        lab_free_pages(a, small[i], 0);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

static void test_an_atomic_request_for_a_block_the_void_holds_gets_one_recommitted(void)
{
    atomic_request_for_a_block_the_void_holds(0);
}

static void test_a_room_refill_for_a_block_the_void_holds_gets_one_recommitted(void)
{
    atomic_request_for_a_block_the_void_holds(1);
}

/* The idle trim gives back whole blocks only.  Free pages a little below
 * high, and a non-blocking request of order 4 every millisecond, freed at
 * once: the reclaimer re-commits a block for the first (free pages then a
 * little above high), and the others are served from it.  The idle trim
 * split that block down to high after every trim_delay_ms, and about half
 * of the requests failed, the reclaimer re-committing it again each time. */
static void test_the_idle_trim_leaves_the_block_recommitted_for_an_atomic_request(void)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = 1024 * LAB_PAGE_SIZE;
    cfg.wmark_min = 8;
    cfg.wmark_low = 80;
    cfg.wmark_high = 96;
    cfg.trim_delay_ms = 10;
    cfg.kswapd_poll_ms = 1;
    lab_arena *a = NULL;
    REQUIRE(lab_arena_create(&cfg, &a) == 0);
    /* every page out, one by one (blocking: what the idle trim takes
     * meanwhile comes back); out[i] for the page at frame i */
    static bool out[1024];
    char *base = lab_arena_base(a);
    for (int i = 0; i < 1024; i++) {
        char *p = lab_alloc_pages(a, LAB_GFP_KERNEL | LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, 0);
        REQUIRE(p != NULL);
        memset(p, 1, LAB_PAGE_SIZE);
        out[(p - base) / LAB_PAGE_SIZE] = true;
    }
    /* an aligned block of 64 pages and 8 single pages back: the trim (to
     * min) sends the block to the void */
    for (int i = 512; i < 576; i++)
        lab_free_pages(a, base + (size_t)i * LAB_PAGE_SIZE, 0), out[i] = false;
    for (int i = 0; i < 16; i += 2)
        lab_free_pages(a, base + (size_t)i * LAB_PAGE_SIZE, 0), out[i] = false;
    REQUIRE(lab_arena_trim(a) == 64 * LAB_PAGE_SIZE);
    /* 78 more single pages, none next to a free one: 86 free, below high */
    for (int i = 16; i < 16 + 2 * 78; i += 2)
        lab_free_pages(a, base + (size_t)i * LAB_PAGE_SIZE, 0), out[i] = false;
    lab_stats s = stats(a);
    REQUIRE(s.free_pages == 86 && s.void_pages == 64);
    enum { N = 300 };
    int fails = 0;
    for (int i = 0; i < N; i++) {
        void *p = lab_alloc_pages(a, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, 4);
        if (p)
            lab_free_pages(a, p, 4);
        else
            fails++;
        usleep(1000);
    }
    lab_stats e = stats(a);
    fprintf(stderr, "  %d of %d order-4 requests failed; %llu pages trimmed, %llu re-committed meanwhile\n", fails, N,
            (unsigned long long)(e.trimmed_pages - s.trimmed_pages),
            (unsigned long long)(e.recommitted_pages - s.recommitted_pages));
    CHECK(fails <= N / 10);   /* the first, and a few while the reclaimer is late */
    for (int i = 0; i < 1024; i++)
        if (out[i])
            lab_free_pages(a, base + (size_t)i * LAB_PAGE_SIZE, 0);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* min = low = high: after the trim, free pages sit just above min and the
 * reclaimer has no reason to re-commit anything. */
static void test_nowait_requests_fail_at_min_instead_of_touching_the_void(void)
{
    const size_t W = 1000;
    lab_arena *a = arena_with(4096 * LAB_PAGE_SIZE, 0, W, W, W);
    commit_everything(a);
    size_t got = lab_arena_trim(a) / LAB_PAGE_SIZE;
    lab_stats s = stats(a);
    CHECK(got > 0);
    CHECK(s.free_pages >= W && s.free_pages < W + 1024);
    size_t above_min = s.free_pages - W;
    size_t void_before = s.void_pages;

    void *p[2048];
    size_t n = 0;
    lab_result r = { 0 };
    while (n < 2048) {
        lab_alloc_pages_result(a, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, 0, &r);
        if (!r.addr)
            break;
        CHECK(r.step == LAB_STEP_ZONE);
        p[n++] = r.addr;
    }
    CHECK_EQ(n, above_min);                  /* exactly down to min, not one page more */
    CHECK_EQ(r.reason, LAB_R_WATERMARK);
    sleep_ms(50);
    s = stats(a);
    CHECK_EQ(s.free_pages, W);
    CHECK_EQ(s.void_pages, void_before);     /* the void was not touched */
    CHECK_EQ(s.recommitted_pages, 0);
    CHECK_EQ(s.alloc_by_step[LAB_STEP_RECOMMIT], 0);
    /* an atomic request still gets its emergency share, below min, and
     * never from the void itself: a re-commit is a system call.  (It may
     * wake the reclaimer, which then re-commits on its own thread: the
     * void's size afterwards is the reclaimer's business, not this
     * request's.) */
    lab_result er;
    lab_alloc_pages_result(a, LAB_GFP_ATOMIC, 0, &er);
    void *e = er.addr;
    CHECK(e != NULL);
    CHECK_EQ(er.step, LAB_STEP_EMERGENCY);
    CHECK_EQ(stats(a).alloc_by_step[LAB_STEP_RECOMMIT], 0);
    lab_free_pages(a, e, 0);
    for (size_t i = 0; i < n; i++)
        lab_free_pages(a, p[i], 0);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

static void test_reclaimer_recommits_to_high_after_a_nowait_request_drops_below_low(void)
{
    lab_arena *a = arena_with(4096 * LAB_PAGE_SIZE, 0, 512, 1000, 1500);
    commit_everything(a);
    /* trim keeps min (512): pages held across it come back above low */
    enum { HELD = 600 };
    void *held[HELD];
    for (size_t i = 0; i < HELD; i++)
        REQUIRE((held[i] = lab_alloc_pages(a, LAB_GFP_NOWAIT, 0)) != NULL);
    CHECK(lab_arena_trim(a) > 0);            /* also starts the reclaimer */
    CHECK_EQ(stats(a).free_pages, 512);
    for (size_t i = 0; i < HELD; i++)
        lab_free_pages(a, held[i], 0);
    lab_stats s = stats(a);
    CHECK(s.free_pages >= s.wmark_low);
    sleep_ms(50);
    s = stats(a);
    CHECK_EQ(s.recommitted_pages, 0);        /* nothing asked for it yet */

    /* non-blocking requests take free pages below low: a wake, no system call */
    size_t need = s.free_pages - s.wmark_low + 1;
    void **p = calloc(need, sizeof(void *));
    REQUIRE(p);
    for (size_t i = 0; i < need; i++) {
        lab_result r;
        lab_alloc_pages_result(a, LAB_GFP_NOWAIT, 0, &r);
        p[i] = r.addr;
        CHECK(r.addr != NULL && r.step == LAB_STEP_ZONE);
    }
    double t0 = now_ms();
    while (now_ms() - t0 < 2000) {
        s = stats(a);
        if (s.free_pages >= s.wmark_high && s.recommitted_pages > 0)
            break;
        sleep_ms(2);
    }
    fprintf(stderr, "  reclaimer re-committed %llu pages, free %zu (high %zu) after %.1f ms\n",
            (unsigned long long)s.recommitted_pages, s.free_pages, s.wmark_high, now_ms() - t0);
    CHECK(s.free_pages >= s.wmark_high);
    CHECK(s.recommitted_pages > 0);
    CHECK(s.kswapd_runs > 0);
    for (size_t i = 0; i < need; i++)
        lab_free_pages(a, p[i], 0);
    free(p);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* The reclaimer re-commits the void's smallest blocks first, and stops at
 * high: with a shortfall of one page and a void of one order-0 block and
 * one order-3 block, it brings back the order-0 block and leaves the
 * order-3 block trimmed (a larger block first would commit 8 pages where 1
 * was wanted). */
static void test_reclaimer_recommits_the_smallest_void_blocks_first(void)
{
    enum { PAGES = 64 };
    lab_arena_config cfg;
    test_arena_config(&cfg, PAGES, 6, 0, 1, 1);
    cfg.kswapd_poll_ms = 1;
    lab_arena *a = test_arena_create(&cfg);
    void *p[PAGES];
    for (int i = 0; i < PAGES; i++)
        REQUIRE((p[i] = lab_alloc_pages(a, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, 0)));
    /* Those requests found free pages below low and asked the reclaimer to
     * run.  Let it run now, with nothing to do (a trim of an empty arena
     * starts it), so that it does not re-commit while the trim below runs
     * (a slow machine, or an emulator, had it do so). */
    CHECK_EQ(lab_arena_trim(a), 0);
    double w0 = now_ms();
    while (stats(a).kswapd_runs == 0 && now_ms() - w0 < 2000)
        sleep_ms(1);
    CHECK(stats(a).kswapd_runs > 0);
    /* free: frame 1 alone (its buddy stays out) and frames 8..15 (order 3) */
    char *base = lab_arena_base(a);
    for (int i = 0; i < PAGES; i++) {
        size_t f = (size_t)((char *)p[i] - base) / LAB_PAGE_SIZE;
        if (f == 1 || (f >= 8 && f < 16)) {
            lab_free_pages(a, p[i], 0);
            p[i] = NULL;
        }
    }
    lab_stats s = stats(a);
    REQUIRE(s.free_pages == 9 && s.free_blocks[0] == 1 && s.free_blocks[3] == 1);
    CHECK_EQ(lab_arena_trim(a), 9 * LAB_PAGE_SIZE);   /* min is 0: all of it */
    s = stats(a);
    REQUIRE(s.void_pages == 9 && s.free_pages == 0);
    /* a non-blocking request finds nothing and wakes the reclaimer */
    CHECK(lab_alloc_pages(a, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, 0) == NULL);
    /* Until the re-commit has landed on the free list: the counters are
     * read one by one, and one read in the middle of it can see the page
     * counted re-committed and not yet free (an emulator makes that
     * likely). */
    double t0 = now_ms();
    while (((s = stats(a)).recommitted_pages == 0 || s.free_pages == 0) && now_ms() - t0 < 2000)
        sleep_ms(1);
    CHECK_EQ(s.recommitted_pages, 1);
    CHECK_EQ(s.free_pages, 1);
    CHECK_EQ(s.void_pages, 8);
    CHECK_EQ(s.free_blocks[0], 1);
    for (int i = 0; i < PAGES; i++)
        if (p[i])
            lab_free_pages(a, p[i], 0);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

static size_t free_a_lot_and_wait_for_the_void(unsigned trim_delay_ms, unsigned wait_ms, double *elapsed,
                                              size_t *resident_before, size_t *resident_after)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = 64 * MiB;
    cfg.trim_delay_ms = trim_delay_ms;
    lab_arena *a = NULL;
    REQUIRE(lab_arena_create(&cfg, &a) == 0);
    /* 61 MiB of 64 out, free pages below high for 30 ms (the reclaimer sees
     * no idle memory then), then all of it back at once */
    void *p[15], *q[3];
    for (int i = 0; i < 15; i++) {
        p[i] = lab_alloc_pages(a, LAB_GFP_KERNEL, 10);
        REQUIRE(p[i]);
        memset(p[i], 0x3c, 1024 * LAB_PAGE_SIZE);
    }
    for (int i = 0; i < 3; i++)
        REQUIRE((q[i] = lab_alloc_pages(a, LAB_GFP_KERNEL | LAB_GFP_NOWARN, 8)) != NULL);
    REQUIRE(stats(a).free_pages < stats(a).wmark_high);
    sleep_ms(30);
    /* The memory may count as idle from the first of these frees on (free
     * pages pass high partway through, and debug builds poison 61 MiB on
     * the way): the clock starts before them, and before the (slow)
     * resident count. */
    double t0 = now_ms();
    for (int i = 0; i < 3; i++)
        lab_free_pages(a, q[i], 8);
    for (int i = 0; i < 15; i++)
        lab_free_pages(a, p[i], 10);
    lab_stats s = stats(a);
    *resident_before = s.resident_bytes;
    /* void_pages counts blocks still being decommitted: wait for both */
    while (now_ms() - t0 < wait_ms) {
        s = stats(a);
        if (s.void_pages > 0 && s.resident_bytes < *resident_before)
            break;
        sleep_ms(5);
    }
    *elapsed = now_ms() - t0;
    *resident_after = s.resident_bytes;
    CHECK(s.free_pages >= s.wmark_high);      /* idle trim keeps high committed */
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
    return s.void_pages;
}

static void test_idle_memory_falls_into_the_void_after_trim_delay(void)
{
    double ms;
    size_t before, after;
    size_t v = free_a_lot_and_wait_for_the_void(100, 2000, &ms, &before, &after);
    fprintf(stderr, "  trim_delay_ms=100: %zu pages in the void after %.1f ms; frames resident %.1f -> %.1f MiB\n",
            v, ms, (double)before / (double)MiB, (double)after / (double)MiB);
    CHECK(v > 0);
    CHECK(after < before);
    CHECK(ms >= 90.0);      /* not before the memory was idle for trim_delay_ms */
    /* control: without a delay nothing is trimmed by itself */
    v = free_a_lot_and_wait_for_the_void(0, 300, &ms, &before, &after);
    CHECK_EQ(v, 0);
}

static void test_madv_free_arena_trims_too(void)
{
    lab_arena *a = arena_with(64 * MiB, LAB_ARENA_MADV_FREE, 0, 0, 0);
    void *p[12];
    for (int i = 0; i < 12; i++) {
        p[i] = lab_alloc_pages(a, LAB_GFP_KERNEL, 10);
        REQUIRE(p[i]);
        memset(p[i], 0x77, 1024 * LAB_PAGE_SIZE);
    }
    for (int i = 0; i < 12; i++)
        lab_free_pages(a, p[i], 10);
    size_t got = lab_arena_trim(a);
    fprintf(stderr, "  MADV_FREE trim returned %.1f MiB (RSS may drop later)\n", (double)got / (double)MiB);
    CHECK(got > 0);
    lab_stats s = stats(a);
    CHECK(s.void_pages > 0);
    CHECK_EQ(lab_check(a), 0);
    /* and it comes back usable */
    size_t by_recommit = 0;
    for (int i = 0; i < 12; i++) {
        lab_result r;
        lab_alloc_pages_result(a, LAB_GFP_KERNEL, 10, &r);
        p[i] = r.addr;
        REQUIRE(p[i]);
        by_recommit += r.step == LAB_STEP_RECOMMIT;
        stamp_block(p[i], 10, (uint64_t)i + 100);
    }
    for (int i = 0; i < 12; i++) {
        CHECK(stamp_ok(p[i], 10, (uint64_t)i + 100));
        lab_free_pages(a, p[i], 10);
    }
    CHECK(by_recommit > 0);
    CHECK(stats(a).recommitted_pages > 0);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

static void test_stats_show_committed_memory_and_the_void(void)
{
    lab_arena *a = test_arena(16384, 10, 0, 0, 0);   /* 64 MiB, lazy */
    lab_stats s;
    lab_stats_get(a, &s);
    CHECK_EQ(s.committed_bytes, 0);                   /* nothing used yet */
    void *p[16];
    for (int i = 0; i < 16; i++) {
        REQUIRE((p[i] = lab_alloc_pages(a, LAB_GFP_KERNEL, 8)));   /* 16 x 1 MiB */
        memset(p[i], 1, 256 * LAB_PAGE_SIZE);
    }
    lab_stats_get(a, &s);
    CHECK(s.committed_bytes >= (size_t)16 << 20);
    size_t before = s.committed_bytes;
    for (int i = 0; i < 16; i++)
        lab_free_pages(a, p[i], 8);
    size_t given = lab_arena_trim(a);
    CHECK(given > 0);
    lab_stats_get(a, &s);
    CHECK_EQ(s.committed_bytes, before - given);
    CHECK_EQ((size_t)s.void_pages * LAB_PAGE_SIZE, given);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* A trim puts its isolated blocks back one by one; one that merges must not
 * merge with a buddy still isolated (taken off every list) by the same trim. */
static void test_trim_never_merges_with_a_block_it_has_not_put_back_yet(void)
{
    lab_arena *a = test_arena(64, 3, 0, 0, 1);
    void *p[32];
    for (int i = 0; i < 32; i++)
        REQUIRE((p[i] = lab_alloc_pages(a, LAB_GFP_MEMALLOC, 1)));
    char *base = lab_arena_base(a);
    int first = 0;
    for (int i = 0; i < 32; i++)
        if (p[i] == base)
            first = i;
    /* frames 0-1, then 2-3, 4-5, 6-7: the second trim isolates 4-7 and 2-3,
     * and 2-3 comes back first, next to a void 0-1 */
    lab_free_pages(a, base, 1);
    CHECK(lab_arena_trim(a) > 0);
    for (int f = 2; f < 8; f += 2)
        lab_free_pages(a, base + (size_t)f * LAB_PAGE_SIZE, 1);
    CHECK(lab_arena_trim(a) > 0);
    CHECK_EQ(lab_check(a), 0);
    lab_stats s;
    lab_stats_get(a, &s);
    CHECK_EQ(s.void_pages, 8);
    for (int i = 0; i < 32; i++) {
        char *q = p[i];
        if (i != first && (q < base || q >= base + 8 * LAB_PAGE_SIZE))
            lab_free_pages(a, q, 1);
    }
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* A trim racing the reclaimer: a trim down to min leaves free pages below
 * low, and a reclaimer already woken re-commits towards high meanwhile.
 * One call of lab_arena_trim makes one pass over the arena: it never
 * decommits (and reports) more than the arena holds, however the two
 * interleave. */
static size_t no_pages(void *ctx) { (void)ctx; return 0; }
static size_t scan_none(void *ctx, size_t n) { (void)ctx; (void)n; return 0; }

/* Keeps waking the reclaimer: each request that finds free pages below low
 * asks it to bring them up to high, re-committing from the void. */
struct waker { lab_arena *a; atomic_int stop; };
static void *keep_waking(void *arg)
{
    struct waker *w = arg;
    while (!atomic_load(&w->stop)) {
        void *q = lab_alloc_pages(w->a, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, 0);
        if (q)
            lab_free_pages(w->a, q, 0);
    }
    return NULL;
}

static void test_a_trim_racing_the_reclaimer_reports_at_most_the_arena(void)
{
    enum { PAGES = 2048 };
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = PAGES * LAB_PAGE_SIZE;
    cfg.max_order = 0;              /* one-page blocks: many trim batches, each a system call */
    cfg.flags = LAB_ARENA_EXACT_WMARKS;
    cfg.wmark_min = 0;
    cfg.wmark_low = 64;
    cfg.wmark_high = PAGES - 64;
    cfg.kswapd_poll_ms = 1;
    lab_arena *a = NULL;
    REQUIRE(lab_arena_create(&cfg, &a) == 0);
    lab_shrinker sh = { .count = no_pages, .scan = scan_none };
    REQUIRE(lab_shrinker_register(a, &sh) == 0);   /* the reclaimer runs */
    /* pages are listed on first use: use each once, so trim finds them */
    static void *p[PAGES];
    size_t n = 0;
    while (n < PAGES && (p[n] = lab_alloc_pages(a, LAB_GFP_KERNEL | LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, 0)) != NULL)
        n++;
    for (size_t i = 0; i < n; i++)
        lab_free_pages(a, p[i], 0);
    struct waker w = { .a = a };
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, keep_waking, &w) == 0);
    size_t worst = 0;
    for (int round = 0; round < 200; round++) {
        size_t got = lab_arena_trim(a);
        if (got > worst)
            worst = got;
        CHECK(got <= (size_t)PAGES * LAB_PAGE_SIZE);
    }
    atomic_store(&w.stop, 1);
    pthread_join(th, NULL);
    fprintf(stderr, "  largest trim of a %d-page arena racing the reclaimer: %zu pages\n", PAGES,
            worst / LAB_PAGE_SIZE);
    lab_shrinker_unregister(a, &sh);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

int main(void)
{
    test_watchdog(240);
    RUN(test_64gib_lazy_arena_is_created_fast_and_costs_little);
    RUN(test_trim_gives_memory_back_and_it_comes_back_usable);
    RUN(test_trim_keeps_the_min_watermark_committed);
    RUN(test_trim_splits_the_block_its_floor_falls_in);
    RUN(test_a_blocking_request_recommits_only_what_the_free_pages_lack);
    RUN(test_a_trim_out_of_budget_leaves_no_split_block_behind);
    RUN(test_a_rooms_reserve_is_recommitted_from_the_void);
    RUN(test_a_trim_during_a_reserves_recommit_leaves_its_pages);
    RUN(test_a_reserve_waits_for_a_trim_in_flight);
    RUN(test_an_atomic_request_for_a_block_the_void_holds_gets_one_recommitted);
    RUN(test_a_room_refill_for_a_block_the_void_holds_gets_one_recommitted);
    RUN(test_the_idle_trim_leaves_the_block_recommitted_for_an_atomic_request);
    RUN(test_nowait_requests_fail_at_min_instead_of_touching_the_void);
    RUN(test_reclaimer_recommits_to_high_after_a_nowait_request_drops_below_low);
    RUN(test_reclaimer_recommits_the_smallest_void_blocks_first);
    RUN(test_idle_memory_falls_into_the_void_after_trim_delay);
    RUN(test_madv_free_arena_trims_too);
    RUN(test_stats_show_committed_memory_and_the_void);
    RUN(test_trim_never_merges_with_a_block_it_has_not_put_back_yet);
    RUN(test_a_trim_racing_the_reclaimer_reports_at_most_the_arena);
    return test_finish();
}
