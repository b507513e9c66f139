/*
 * Every tree runs the paths users run: the owner's allocation and free of
 * orders 0..3 from its stock (step 1), the hand-off's push of one block
 * into its room's ring (lab_free_pages), and the bulk hand-off's push of a
 * run.  Debug builds compile their checks in around those same paths (the
 * owner check, strict mode's claim by CAS, the page hooks), so these
 * behaviours hold in every tree, and the debug trees' detection is checked
 * on those paths.
 *
 * Which path served a call is read from what only the other path counts
 * (the test includes src/core/internal.h): a slow owner call of order k adds
 * 2^k - 1 to allocs_extra or frees_extra, while the fast paths add nothing
 * there (so order 0 cannot tell; its fast path is the
 * same function with the order a constant).  The ring pushes are counted by wrapping
 * room_hand_off, room_lane_push_n and room_free_remote at link time (tests/CMakeLists.txt):
 * the wrappers count and call the real functions.
 */
#include "check.h"
#include "internal.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__clang__)
#define NO_SANITIZE __attribute__((noinline, no_sanitize("address", "thread")))
#else
#define NO_SANITIZE __attribute__((noinline, no_sanitize_address, no_sanitize_thread))
#endif
/* The use after free under test, unseen by a sanitizer: the page hooks
 * must find it, not ASan. */
static NO_SANITIZE void raw_write(volatile char *p, char v) { *p = v; }

static _Atomic uint64_t pushes_one, pushes_run;

/* A single free publishes in the freer's lane of the ring when it has one
 * (handoff.c), else in the shared ring: either is one push.  In a release
 * build, a free that appends to the lane its thread remembers does so
 * inline in lab_free_pages, and this wrapper does not see it. */
void __real_room_hand_off(struct lab_arena *a, struct lab_room *r, uint32_t frame, unsigned order);
void __wrap_room_hand_off(struct lab_arena *a, struct lab_room *r, uint32_t frame, unsigned order);
void __wrap_room_hand_off(struct lab_arena *a, struct lab_room *r, uint32_t frame, unsigned order)
{
    atomic_fetch_add(&pushes_one, 1);
    __real_room_hand_off(a, r, frame, order);
}
/* A bulk free's run goes to the freer's lane when it has one and room
 * for the run, else to the shared ring: either is one push of a run. */
bool __real_room_lane_push_n(struct lab_room *r, const uint32_t *frames, uint32_t n, unsigned order);
bool __wrap_room_lane_push_n(struct lab_room *r, const uint32_t *frames, uint32_t n, unsigned order);
bool __wrap_room_lane_push_n(struct lab_room *r, const uint32_t *frames, uint32_t n, unsigned order)
{
    bool done = __real_room_lane_push_n(r, frames, n, order);
    if (done)
        atomic_fetch_add(&pushes_run, 1);
    return done;
}
void __real_room_free_remote(struct lab_arena *a, struct lab_room *r, const uint32_t *frames, uint32_t n,
                             unsigned order);
void __wrap_room_free_remote(struct lab_arena *a, struct lab_room *r, const uint32_t *frames, uint32_t n,
                             unsigned order);
void __wrap_room_free_remote(struct lab_arena *a, struct lab_room *r, const uint32_t *frames, uint32_t n,
                             unsigned order)
{
    atomic_fetch_add(&pushes_run, 1);
    __real_room_free_remote(a, r, frames, n, order);
}

struct misuse_log {
    unsigned count[LAB_ERROR_COUNT];
    unsigned total;
    const void *addr;
};
static void record_misuse(void *ctx, int err, const void *addr, const char *msg)
{
    struct misuse_log *log = ctx;
    (void)msg;
    if (err >= 0 && err < LAB_ERROR_COUNT)
        log->count[err]++;
    log->total++;
    log->addr = addr;
}

static lab_room_stats room_stats(lab_room *r) { lab_room_stats s; lab_room_stats_get(r, &s); return s; }

struct pushes { uint64_t one, run; };
static struct pushes pushes(void) { return (struct pushes){ atomic_load(&pushes_one), atomic_load(&pushes_run) }; }
#define CHECK_PUSHES_SINCE(before, n_one, n_run) do { struct pushes _now = pushes(); \
    CHECK_EQ(_now.one - (before).one, n_one); CHECK_EQ(_now.run - (before).run, n_run); } while (0)

static void take_pages(lab_room *r, void **p, int n)
{
    for (int i = 0; i < n; i++)
        REQUIRE((p[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
}

static lab_arena *arena(unsigned flags)
{
    lab_arena_config cfg;
    test_arena_config(&cfg, 1024, 5, 16, 24, 32);
    cfg.flags = flags;
    return test_arena_create(&cfg);
}

/* Its misuse reports go to *log (cleared), and a debug build does not abort. */
static lab_arena *logged_arena(unsigned flags, struct misuse_log *log)
{
    memset(log, 0, sizeof(*log));
    lab_arena *a = arena(flags);
    lab_set_misuse_handler(a, record_misuse, log);
    return a;
}

static lab_room *room(lab_arena *a, unsigned max_order)
{
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.flags = LAB_ROOM_TAKE_ALL;   /* every remote free back when the stock runs dry */
    rc.batch = 8;
    rc.high = 32;
    rc.max_order = max_order;
    lab_room *r = NULL;
    REQUIRE(lab_room_create(a, &rc, &r) == 0);
    return r;
}

/* What only the slow owner paths move. */
struct slow_counts { uint64_t slow_allocs, allocs_extra, frees_extra; };
static struct slow_counts slow_counts(lab_room *r)
{
    return (struct slow_counts){ ctr_get(&r->st.slow_allocs), ctr_get(&r->st.allocs_extra),
                                 ctr_get(&r->st.frees_extra) };
}
#define CHECK_NO_SLOW_CALL(r, before) do { struct slow_counts _now = slow_counts(r); \
    CHECK_EQ(_now.slow_allocs, (before).slow_allocs); CHECK_EQ(_now.allocs_extra, (before).allocs_extra); \
    CHECK_EQ(_now.frees_extra, (before).frees_extra); } while (0)

static void end(lab_arena *a, lab_room *r)
{
    CHECK_EQ(room_stats(r).out, 0);
    CHECK_EQ(lab_check(a), 0);
    lab_room_destroy(r);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

#define PAIRS 200

/* With a warm stock, owner pairs of every order are served by step 1 and
 * taken back by the owner's fast free: in a debug build too, where every
 * arena poisons freed pages and claims room blocks by CAS. */
static void test_owner_pairs_of_every_order_take_the_fast_paths(void)
{
    lab_arena *a = arena(0);
    lab_room *r = room(a, 3);
    for (unsigned k = 0; k <= 3; k++) {
        char *p = lab_room_alloc_pages(r, LAB_GFP_NOWAIT, k);   /* refills the stock */
        REQUIRE(p);
        lab_room_free_pages(r, p, k);
        struct slow_counts before = slow_counts(r);
        lab_room_stats st0 = room_stats(r);
        for (int i = 0; i < PAIRS; i++) {
            char *q = lab_room_alloc_pages(r, LAB_GFP_NOWAIT, k);
            REQUIRE(q);
            q[0] = 1;
            q[((size_t)LAB_PAGE_SIZE << k) - 1] = 2;
            lab_room_free_pages(r, q, k);
        }
        lab_room_stats st = room_stats(r);
        CHECK_EQ(st.allocs - st0.allocs, (uint64_t)PAIRS << k);
        CHECK_EQ(st.frees_owner - st0.frees_owner, (uint64_t)PAIRS << k);
        CHECK_NO_SLOW_CALL(r, before);
    }
    end(a, r);
}

/* Where windows open (release builds with lanes, room.c's window_ok), a
 * window's blocks go out on the fast path as the room's own array's do:
 * the pop tells the two apart by the descriptor's tag.  Release builds
 * mark only the walk's calls in r->seq, so a pop left to the walk would
 * hand the block out all the same but move seq.  Elsewhere the remote
 * frees come back by a take-back, and the test checks that every block
 * comes back once either way. */
static void test_a_windows_pops_take_the_fast_path(void)
{
    enum { N = 24 };
    _Static_assert(N >= WINDOW_MIN && N <= 32, "a window on them, within the room's high");
    lab_arena *a = arena(0);
    lab_room *r = room(a, 0);
    char *p[N], *rest[40], *q[N];
    int nrest = 0;
    take_pages(r, (void **)p, N);
    while (room_stats(r).stock)
        take_pages(r, (void **)&rest[nrest++], 1);
    for (int i = 0; i < N; i++)
        lab_free_pages(a, p[i], 0);
    take_pages(r, (void **)q, 1);   /* the walk: opens a window on the lane, or takes back */
    bool window = atomic_load_explicit(&r->win, memory_order_relaxed) != NULL;
    CHECK_EQ(window, r->window_ok);
    uint64_t seq = atomic_load_explicit(&r->seq, memory_order_relaxed);
    take_pages(r, (void **)q + 1, N - 1);
    if (window) {
        CHECK_EQ(atomic_load_explicit(&r->seq, memory_order_relaxed), seq);
        CHECK(atomic_load_explicit(&r->win, memory_order_relaxed) != NULL);   /* no pop closed it */
    }
    /* every block back, once */
    for (int i = 0; i < N; i++) {
        int k = 0;
        for (int j = 0; j < N; j++)
            k += q[j] == p[i];
        CHECK_EQ(k, 1);
    }
    for (int i = 0; i < N; i++)
        lab_room_free(r, q[i]);
    for (int i = 0; i < nrest; i++)
        lab_room_free(r, rest[i]);
    end(a, r);
}

/* lab_free_pages of a room block pushes it into the room's ring (this
 * thread's lane of it, or the shared ring): one call of room_hand_off a
 * block, or, in a release build where rooms have lanes, one for the first
 * (which finds the lane) and none for the rest (appended inline).  A debug build claims it first (ALLOCATED ->
 * DEFERRED, strict mode) and poisons it; a release build writes no
 * descriptor. */
static void test_a_remote_free_is_one_ring_push(void)
{
    lab_arena *a = arena(0);
    lab_room *r = room(a, 0);
    char *p[8];
    take_pages(r, (void **)p, 8);
    struct pushes before = pushes();
    for (int i = 0; i < 8; i++)
        lab_free_pages(a, p[i], 0);
    /* Where the kernel has private expedited membarrier (asked directly,
     * not through the library), rooms have lanes and a single free from
     * this thread went into this thread's lane, not the shared ring.  In a
     * release build the first free found the lane (room_hand_off) and the
     * thread remembered it: the other seven appended to it inline, in
     * lab_free_pages, where no wrapper sees them. */
    long mb = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    CHECK_PUSHES_SINCE(before, !LAB_DEBUG_ON && a->lanes_ok ? 1 : 8, 0);
    CHECK_EQ(room_stats(r).in_ring, 8);
    if (mb >= 0 && (mb & MEMBARRIER_CMD_PRIVATE_EXPEDITED)) {
        CHECK(a->lanes_ok);
        CHECK(atomic_load(&r->lanes_claimed) != 0);
        CHECK_EQ(room_lane_entries(r, NULL), 8);
    } else {
        fprintf(stderr, "  (no private expedited membarrier here: rooms have no lanes)\n");
    }
    for (int i = 0; i < 8; i++) {
        struct page *pg = &a->zone.pages[frame_of(&a->zone, p[i])];
#ifdef LAB_DEBUG
        CHECK_EQ(pg_state(pg), PG_DEFERRED);
#ifndef LAB_TEST_ASAN   /* (there the page is ASan's while free) */
        CHECK_EQ(*(volatile unsigned char *)(p[i] + 100), 0x6b);   /* POISON_FREE */
#endif
#else
        CHECK_EQ(pg_state(pg), PG_ALLOCATED);
#endif
    }
    /* the owner takes them back when its stock runs dry */
    void *q[16];
    take_pages(r, q, 16);
    CHECK_EQ(room_stats(r).in_ring, 0);
    lab_room_free_bulk(r, q, 16);
    end(a, r);
}

/* lab_free_pages_bulk of a room's blocks pushes them as one run. */
static void test_a_bulk_remote_free_is_one_run_push(void)
{
    lab_arena *a = arena(0);
    lab_room *r = room(a, 0);
    void *p[32];
    take_pages(r, p, 32);
    struct pushes before = pushes();
    lab_free_pages_bulk(a, p, 32, 0);
    CHECK_PUSHES_SINCE(before, 0, 1);
    CHECK_EQ(room_stats(r).in_ring, 32);
    take_pages(r, p, 32);
    lab_room_free_bulk(r, p, 32);
    end(a, r);
}

/* lab_room_free_bulk is n calls of lab_room_free: release builds push the
 * pages as one run, which hands on to lab_room_free at the first page it
 * cannot take (NULL, a page freed twice in the same array, another room's
 * page, a page beyond the stock's high).  Each is skipped or reported
 * once, every other page is pushed once, and none is lost. */
static void test_an_owner_bulk_free_is_n_frees(void)
{
    static struct misuse_log log;
    lab_arena *a = logged_arena(0, &log);
    lab_room *r = room(a, 0), *other = room(a, 0);   /* high 32, batch 8 */
    void *p[24], *q = lab_room_alloc(other, LAB_GFP_NOWAIT);
    REQUIRE(q);
    REQUIRE(lab_room_alloc_bulk(r, LAB_GFP_NOWAIT, p, 24) == 24);
    lab_room_stats st0 = room_stats(r);
    struct slow_counts before = slow_counts(r);
    /* each odd one out after a run of good ones, which the run pushes */
    void *dup[] = { p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[3], p[8], p[9] };
    void *foreign[] = { p[10], p[11], q, p[12], p[13] };
    void *null[] = { p[14], p[15], p[16], NULL, p[17], p[18], p[19], p[20], p[21], p[22], p[23] };
    lab_room_free_bulk(r, dup, 11);
    lab_room_free_bulk(r, foreign, 5);
    lab_room_free_bulk(r, null, 11);
    CHECK_EQ(log.count[LAB_EDOUBLEFREE], 1);
    CHECK_EQ(log.count[LAB_ENOTROOMPAGE], 1);
    CHECK_EQ(log.total, 2);
    lab_room_stats st = room_stats(r);
    CHECK_EQ(st.frees_owner - st0.frees_owner, 24);
    CHECK_EQ(st.stock, st0.stock + 24);
    CHECK_NO_SLOW_CALL(r, before);
    /* every page once in the stock: 24 + what it held come back, distinct */
    void *back[64];
    size_t n = lab_room_alloc_bulk(r, LAB_GFP_NOWAIT, back, st.stock);
    CHECK_EQ(n, st.stock);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            CHECK(back[i] != back[j]);
    /* beyond the stock's high: the run stops at it, lab_room_free drains */
    void *more[40];
    size_t m = lab_room_alloc_bulk(r, LAB_GFP_NOWAIT, more, 40);
    CHECK_EQ(m, 40);
    lab_room_free_bulk(r, back, n);
    st0 = room_stats(r);
    lab_room_free_bulk(r, more, m);
    st = room_stats(r);
    CHECK_EQ(st.frees_owner - st0.frees_owner, 40);
    CHECK(st.stock <= 32);
    CHECK(st.drains > st0.drains);
    CHECK_EQ(log.total, 2);
    lab_room_free(other, q);
    CHECK_EQ(room_stats(other).out, 0);
    lab_room_destroy(other);
    end(a, r);
}

/* The owner's second free of a block is reported, the first having been
 * the fast path's. */
static void test_an_owner_double_free_after_a_fast_free_is_reported(void)
{
    static struct misuse_log log;
    lab_arena *a = logged_arena(0, &log);
    lab_room *r = room(a, 1);
    char *p = lab_room_alloc_pages(r, LAB_GFP_NOWAIT, 1);
    REQUIRE(p);
    struct slow_counts before = slow_counts(r);
    lab_room_free_pages(r, p, 1);
    CHECK_NO_SLOW_CALL(r, before);
    CHECK_EQ(log.total, 0);
    lab_room_free_pages(r, p, 1);
    CHECK_EQ(log.count[LAB_EDOUBLEFREE], 1);
    CHECK_EQ(log.total, 1);
    CHECK(log.addr == p);
    end(a, r);
}

/* A block freed twice through the hand-off: a debug build (strict) refuses
 * the second free before it reaches the ring; a release build finds it
 * when the owner takes the ring back.  Either way it is reported once and
 * the block comes back once. */
static void test_a_double_free_through_the_hand_off_is_reported(void)
{
    static struct misuse_log log;
    lab_arena *a = logged_arena(0, &log);
    lab_room *r = room(a, 0);
    void *p = lab_room_alloc(r, LAB_GFP_NOWAIT);
    REQUIRE(p);
    struct pushes before = pushes();
    lab_free_pages(a, p, 0);
    lab_free_pages(a, p, 0);
#ifdef LAB_DEBUG
    CHECK_PUSHES_SINCE(before, 1, 0);
    CHECK_EQ(log.count[LAB_EDOUBLEFREE], 1);
    CHECK_EQ(room_stats(r).in_ring, 1);
#else
    /* the second inline, when the first found a lane to remember */
    CHECK_PUSHES_SINCE(before, a->lanes_ok ? 1 : 2, 0);
    CHECK_EQ(log.total, 0);
    CHECK_EQ(room_stats(r).in_ring, 2);
#endif
    void *q[16];
    take_pages(r, q, 16);
    int seen = 0;
    for (int i = 0; i < 16; i++)
        seen += q[i] == p;
    CHECK_EQ(seen, 1);
    CHECK_EQ(log.count[LAB_EDOUBLEFREE], 1);
    CHECK_EQ(log.total, 1);
    lab_room_free_bulk(r, q, 16);
    end(a, r);
}

/* Poisoning (every debug arena; LAB_ARENA_POISON here for the release
 * trees) finds a write to a block in the owner's stock when step 1 hands
 * it out again: in a debug build both the free and the allocation are the
 * fast paths'. */
static void test_poison_finds_a_write_after_an_owner_free(void)
{
    static struct misuse_log log;
    lab_arena *a = logged_arena(LAB_ARENA_POISON, &log);
    lab_room *r = room(a, 1);
    char *p = lab_room_alloc_pages(r, LAB_GFP_NOWAIT, 1);
    REQUIRE(p);
    struct slow_counts before = slow_counts(r);
    lab_room_free_pages(r, p, 1);
    raw_write(p + LAB_PAGE_SIZE + 123, 0x42);   /* the bug: in its second page */
    CHECK_EQ(log.total, 0);
    char *q = lab_room_alloc_pages(r, LAB_GFP_NOWAIT, 1);
    CHECK(q == p);                              /* the top of the stock */
#ifdef LAB_DEBUG
    CHECK_NO_SLOW_CALL(r, before);
#else
    (void)before;
#endif
    CHECK_EQ(log.count[LAB_EPOISON], 1);
    CHECK_EQ(log.total, 1);
    CHECK(log.addr == p + LAB_PAGE_SIZE + 123);
    lab_room_free_pages(r, q, 1);
    end(a, r);
}

/* The same for a block freed through the hand-off: the freer poisons it
 * (in a debug build on the ring push's path), and the owner's allocation
 * that takes it back from the ring finds the write. */
static void test_poison_finds_a_write_after_a_remote_free(void)
{
    static struct misuse_log log;
    lab_arena *a = logged_arena(LAB_ARENA_POISON, &log);
    lab_room *r = room(a, 0);
    char *p[8];
    take_pages(r, (void **)p, 8);
    struct pushes before = pushes();
    lab_free_pages(a, p[3], 0);
#ifdef LAB_DEBUG
    CHECK_PUSHES_SINCE(before, 1, 0);
#else
    (void)before;
#endif
    raw_write(p[3] + 7, 0x42);
    CHECK_EQ(log.total, 0);
    void *q[16];
    int n = 0;
    while (n < 16 && log.total == 0)
        REQUIRE((q[n++] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
    CHECK(q[n - 1] == p[3]);
    CHECK_EQ(log.count[LAB_EPOISON], 1);
    CHECK(log.addr == p[3] + 7);
    while (n)
        lab_room_free(r, q[--n]);
    for (int i = 0; i < 8; i++)
        if (i != 3)
            lab_room_free(r, p[i]);
    end(a, r);
}

int main(void)
{
    test_watchdog(60);
    RUN(test_owner_pairs_of_every_order_take_the_fast_paths);
    RUN(test_a_remote_free_is_one_ring_push);
    RUN(test_a_windows_pops_take_the_fast_path);
    RUN(test_a_bulk_remote_free_is_one_run_push);
    RUN(test_an_owner_bulk_free_is_n_frees);
    RUN(test_an_owner_double_free_after_a_fast_free_is_reported);
    RUN(test_a_double_free_through_the_hand_off_is_reported);
    RUN(test_poison_finds_a_write_after_an_owner_free);
    RUN(test_poison_finds_a_write_after_a_remote_free);
    return test_finish();
}
