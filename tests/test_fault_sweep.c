/*
 * Fault sweep: fail each decision point of a workload in turn.
 *
 * The workload is a small program with its own error handling that touches
 * every path: rooms (refills, the private reserve, a quota, remote frees from
 * another thread), arena blocks of several orders with every class including
 * high-order ATOMIC (the high-order atomic reserve and the emergency reserve
 * below min), reclaim through a shrinker by LAB_GFP_KERNEL requests under
 * pressure, and trim followed by re-commit.  It never uses NOFAIL.  Every
 * allocation goes through lab_alloc_pages_result or lab_room_alloc_result; every
 * failure must carry a reason (and no block, no step); an injected one
 * (LAB_R_INJECTED) is treated as transient and retried once, any other ends
 * what the workload was doing (a fill stops, a block is done without).
 *
 * For N = 1, 2, 3, ...: a fresh arena, lab_fault_set(probability 100,
 * interval N, times 1), which fails exactly the N-th decision, then the
 * workload.  After each run: the workload saw exactly one LAB_R_INJECTED
 * failure and lab_fault_injected() == 1; everything freed and the rooms
 * destroyed, free_pages + void_pages == total_pages; lab_check == 0; no
 * misuse.  The sweep ends with the first run that injected nothing (N is past
 * the workload's last decision).  The number of decisions in each phase is
 * pinned (pinned_points below), so adding or losing a decision point shows.
 * These are the request-level decisions (lab_fault_set); the fault points
 * below the API (system calls, metadata, partial refills) have their own
 * test, test_fault_points.
 * A run takes milliseconds, so every build sweeps every point
 * (LAB_SWEEP_STRIDE=k sweeps every k-th).
 */
#include "check.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#define PAGES      1024
#define MAX_ORDER  6
#define WMIN       64
#define WLOW       96
#define WHIGH      128
#define MAX_POINTS 5000      /* a workload this long means a runaway loop */
#define SWEEP_LIMIT_S 120.0

#define HELD_MAX   512
#define CACHE_MAX  128
#define CACHE_ORDER 4        /* the shrinker's cache holds blocks of 16 pages */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the workload's bookkeeping ------------------------------------------------- */

enum phase { PH_ROOMS, PH_REMOTE, PH_ORDERS, PH_FILL, PH_EMERGENCY, PH_RESERVE, PH_RECLAIM, PH_TRIM, PH_COUNT };
static const char *const phase_names[PH_COUNT] = {
    "rooms", "remote frees", "orders", "pressure fill", "emergency", "room reserve", "reclaim", "trim+recommit",
};
/* Decisions per phase of the workload: change only together with the
 * library change that adds or removes an injection decision. */
static const unsigned pinned_points[PH_COUNT] = { 8, 1, 17, 50, 11, 10, 4, 6 };


struct blk {
    void *p;
    unsigned order;
    lab_room *room;          /* the room that handed it out, or NULL */
    uint64_t tag;
};

struct wl {
    lab_arena *a;
    lab_room *ra, *rb;       /* A: reserve 8; B: quota 12 */
    struct blk held[HELD_MAX];
    size_t nheld;
    uint64_t seq;
    enum phase phase;
    /* what the workload saw */
    int injected_seen;
    int injected_phase;      /* where */
    int fails[LAB_R_COUNT];
    int steps[LAB_STEP_COUNT];
    int bad_result, bad_stamp, lost;   /* lost: a block the workload could not keep track of */
    size_t trimmed, void_after_trim;
    /* the shrinker's cache: blocks of CACHE_ORDER; scans give pages back only
     * when the workload's thread asks (direct reclaim), so the background
     * reclaimer cannot make a run differ from the last */
    pthread_t owner;
    void *cache[CACHE_MAX];
    size_t ncache;
    int scans_owner, scans_other;
};

static _Atomic int g_misuse;
static void count_misuse(void *ctx, int err, const void *addr, const char *msg)
{
    (void)ctx;
    (void)addr;
    atomic_fetch_add(&g_misuse, 1);
    fprintf(stderr, "  misuse %d (%s): %s\n", err, lab_strerror(err), msg);
}

static void quiet_log(void *ctx, const char *msg, size_t len)
{
    (void)ctx;
    (void)msg;
    (void)len;
}

static bool result_consistent(const lab_result *r)
{
    if (r->addr)
        return r->reason == LAB_R_NONE && r->step > LAB_STEP_NONE && r->step < LAB_STEP_COUNT;
    return r->reason > LAB_R_NONE && r->reason < LAB_R_COUNT && r->step == LAB_STEP_NONE;
}

/* One request, as the workload's error handling sees it: the block, or NULL
 * with *reason.  An injected failure is transient: retried once. */
static void *get(struct wl *w, lab_room *room, lab_gfp_t gfp, unsigned order, int *reason)
{
    lab_result r;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (room)
            lab_room_alloc_result(room, gfp | LAB_GFP_NOWARN, &r);
        else
            lab_alloc_pages_result(w->a, gfp | LAB_GFP_NOWARN, order, &r);
        if (!result_consistent(&r)) {
            w->bad_result++;
            fprintf(stderr, "  inconsistent result in phase %s: %s gfp 0x%x order %u: addr %p reason %d step %d\n",
                    phase_names[w->phase], room ? "lab_room_alloc_result" : "lab_alloc_pages_result", gfp, order, r.addr,
                    r.reason, r.step);
        }
        if (r.addr) {
            w->steps[r.step < LAB_STEP_COUNT ? r.step : 0]++;
            if (reason)
                *reason = LAB_R_NONE;
            return r.addr;
        }
        w->fails[r.reason > 0 && r.reason < LAB_R_COUNT ? r.reason : 0]++;
        if (reason)
            *reason = r.reason;
        if (r.reason != LAB_R_INJECTED)
            return NULL;
        if (w->injected_seen++ == 0)
            w->injected_phase = (int)w->phase;
    }
    return NULL;
}

static bool hold(struct wl *w, void *p, unsigned order, lab_room *room)
{
    if (w->nheld == HELD_MAX) {
        w->lost++;
        return false;
    }
    struct blk *b = &w->held[w->nheld++];
    b->p = p;
    b->order = order;
    b->room = room;
    b->tag = 0x5357454550000000ull + ++w->seq;
    stamp_block(p, order, b->tag);
    return true;
}

/* Free held block i: by its room's owner (lab_room_free) or by anyone
 * (lab_free_pages: a room page goes back to its room's remote list). */
static void drop(struct wl *w, size_t i, bool via_room)
{
    struct blk b = w->held[i];
    w->held[i] = w->held[--w->nheld];
    if (!stamp_ok(b.p, b.order, b.tag))
        w->bad_stamp++;
    if (b.room && via_room)
        lab_room_free(b.room, b.p);
    else
        lab_free_pages(w->a, b.p, b.order);
}

static int alloc_hold(struct wl *w, lab_room *room, lab_gfp_t gfp, unsigned order)
{
    int reason;
    void *p = get(w, room, gfp, order, &reason);
    if (p) {
        if (gfp & LAB_GFP_ZERO) {
            const uint64_t *q = p;
            if (q[0] || q[((size_t)LAB_PAGE_SIZE << order) / 8 - 1])
                w->bad_stamp++;
        }
        if (!hold(w, p, order, room))
            lab_free_pages(w->a, p, order);
    }
    return reason;
}

/* ---- the shrinker ----------------------------------------------------------------- */

static size_t cache_count(void *ctx)
{
    struct wl *w = ctx;
    return pthread_equal(pthread_self(), w->owner) ? w->ncache << CACHE_ORDER : 0;
}

static size_t cache_scan(void *ctx, size_t nr)
{
    struct wl *w = ctx;
    if (!pthread_equal(pthread_self(), w->owner)) {
        w->scans_other++;       /* never: count() said 0 */
        return 0;
    }
    w->scans_owner++;
    size_t freed = 0;
    while (freed < nr && w->ncache) {
        void *p = w->cache[--w->ncache];
        if (!stamp_ok(p, CACHE_ORDER, 0xcac4e))
            w->bad_stamp++;
        lab_free_pages(w->a, p, CACHE_ORDER);
        freed += (size_t)1 << CACHE_ORDER;
    }
    return freed;
}

/* ---- remote frees from another thread ---------------------------------------------- */

struct remote_job { struct wl *w; struct blk blocks[64]; size_t n; int bad; };

static void *remote_freer(void *arg)
{
    struct remote_job *j = arg;
    for (size_t i = 0; i < j->n; i++) {
        if (!stamp_ok(j->blocks[i].p, j->blocks[i].order, j->blocks[i].tag))
            j->bad++;
        lab_free_pages(j->w->a, j->blocks[i].p, j->blocks[i].order);
    }
    return NULL;
}

/* ---- the workload ------------------------------------------------------------------- */

static void workload(struct wl *w)
{
    lab_arena *a = w->a;
    int reason;

    /* rooms: A refills in batches of 8 (each refill a decision), B to its quota */
    w->phase = PH_ROOMS;
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.flags = LAB_ROOM_TAKE_ALL;   /* step 2 before the refill, whatever the zone holds */
    rc.reserve = 8;
    rc.batch = 8;
    rc.high = 32;
    rc.name = "A";
    REQUIRE(lab_room_create(a, &rc, &w->ra) == 0);
    rc.reserve = 0;
    rc.batch = 4;
    rc.high = 8;
    rc.quota = 12;
    rc.name = "B";
    REQUIRE(lab_room_create(a, &rc, &w->rb) == 0);
    for (int i = 0; i < 40; i++)
        alloc_hold(w, w->ra, LAB_GFP_NOWAIT, 0);
    for (int i = 0; i < 16; i++)
        if (alloc_hold(w, w->rb, LAB_GFP_NOWAIT | (i & 1 ? LAB_GFP_ZERO : 0), 0) == LAB_R_QUOTA)
            break;

    /* remote frees: another thread frees 24 of A's pages, this one 4 of B's
     * with lab_free_pages; the rooms take them back */
    w->phase = PH_REMOTE;
    struct remote_job job = { .w = w };
    for (size_t i = 0; i < w->nheld && job.n < 24;) {
        if (w->held[i].room == w->ra) {
            job.blocks[job.n++] = w->held[i];
            w->held[i] = w->held[--w->nheld];
        } else {
            i++;
        }
    }
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, remote_freer, &job) == 0);
    pthread_join(t, NULL);
    w->bad_stamp += job.bad;
    for (size_t i = 0, k = 0; i < w->nheld && k < 4;) {
        if (w->held[i].room == w->rb) {
            drop(w, i, false);
            k++;
        } else {
            i++;
        }
    }
    for (int i = 0; i < 32; i++)        /* 24 taken back, then a refill */
        alloc_hold(w, w->ra, LAB_GFP_NOWAIT, 0);
    for (int i = 0; i < 6; i++)         /* 4 taken back, then B's quota */
        alloc_hold(w, w->rb, LAB_GFP_ATOMIC, 0);

    /* arena blocks of every order, several classes; high-order ATOMIC ones
     * set blocks aside in the high-order atomic reserve */
    w->phase = PH_ORDERS;
    for (unsigned o = 0; o <= MAX_ORDER; o++) {
        alloc_hold(w, NULL, LAB_GFP_NOWAIT, o);
        alloc_hold(w, NULL, LAB_GFP_KERNEL | LAB_GFP_NORETRY | LAB_GFP_ZERO, o);
    }
    for (unsigned o = 1; o <= 2; o++)
        alloc_hold(w, NULL, LAB_GFP_ATOMIC, o);
    alloc_hold(w, NULL, LAB_GFP_HIGH | LAB_GFP_ZERO, 3);

    /* pressure: a shrinker's cache takes the zone down to min */
    w->phase = PH_FILL;
    lab_shrinker sh = { cache_count, cache_scan, w };
    REQUIRE(lab_shrinker_register(a, &sh) == 0);
    while (w->ncache < CACHE_MAX) {
        void *p = get(w, NULL, LAB_GFP_NOWAIT, CACHE_ORDER, &reason);
        if (!p)
            break;
        stamp_block(p, CACHE_ORDER, 0xcac4e);
        w->cache[w->ncache++] = p;
    }
    for (int i = 0; i < 64 && alloc_hold(w, NULL, LAB_GFP_NOWAIT, 0) == LAB_R_NONE; i++)
        ;

    /* below min: ATOMIC takes the emergency reserve down to its floor, the
     * high-order ones then the blocks kept for them */
    w->phase = PH_EMERGENCY;
    for (int o = 4; o >= 0; o--)
        for (int i = 0; i < 8 && alloc_hold(w, NULL, LAB_GFP_ATOMIC, (unsigned)o) == LAB_R_NONE; i++)
            ;
    alloc_hold(w, NULL, LAB_GFP_ATOMIC, 1);

    /* the rooms with the zone at the atomic floor: A's private reserve, then
     * its end; B is at its quota or starved */
    w->phase = PH_RESERVE;
    for (int i = 0; i < 48 && alloc_hold(w, w->ra, LAB_GFP_ATOMIC, 0) == LAB_R_NONE; i++)
        ;
    alloc_hold(w, w->rb, LAB_GFP_NOWAIT, 0);
    alloc_hold(w, w->ra, LAB_GFP_ATOMIC | LAB_GFP_NOMEMALLOC, 0);

    /* KERNEL under pressure: direct reclaim runs the shrinker */
    w->phase = PH_RECLAIM;
    alloc_hold(w, NULL, LAB_GFP_KERNEL | LAB_GFP_RETRY_MAYFAIL, 0);
    alloc_hold(w, NULL, LAB_GFP_KERNEL | LAB_GFP_NORETRY, 3);
    alloc_hold(w, NULL, LAB_GFP_KERNEL | LAB_GFP_RETRY_MAYFAIL | LAB_GFP_ZERO, 5);
    for (int i = 0; i < 4; i++)
        alloc_hold(w, w->ra, LAB_GFP_KERNEL | LAB_GFP_NORETRY, 0);

    /* give back most of it, trim to the void, and take large blocks again:
     * blocking requests re-commit */
    w->phase = PH_TRIM;
    for (size_t i = w->nheld; i-- > 0;)
        if (w->held[i].order >= 2 || (i % 3) != 0)
            drop(w, i, (i & 1) != 0);
    while (w->ncache)
        lab_free_pages(a, w->cache[--w->ncache], CACHE_ORDER);
    w->trimmed = lab_arena_trim(a);
    lab_stats s;
    lab_stats_get(a, &s);
    w->void_after_trim = s.void_pages;
    for (int i = 0; i < 4; i++)
        alloc_hold(w, NULL, LAB_GFP_KERNEL | LAB_GFP_NORETRY, MAX_ORDER);
    alloc_hold(w, NULL, LAB_GFP_KERNEL | LAB_GFP_RETRY_MAYFAIL, MAX_ORDER - 1);
    alloc_hold(w, NULL, LAB_GFP_ATOMIC, 0);
    alloc_hold(w, w->ra, LAB_GFP_NOWAIT, 0);

    lab_shrinker_unregister(a, &sh);
}

/* Everything the workload holds goes back; the rooms are destroyed. */
static void workload_cleanup(struct wl *w)
{
    while (w->nheld)
        drop(w, w->nheld - 1, (w->nheld & 1) != 0);
    while (w->ncache)
        lab_free_pages(w->a, w->cache[--w->ncache], CACHE_ORDER);
    lab_room_destroy(w->ra);
    lab_room_destroy(w->rb);
    w->ra = w->rb = NULL;
}

/* The high-order atomic reserve holds blocks apart from the free pages on
 * purpose; a blocking request that would otherwise fail gives them back.
 * Take every free page, then ask with requests that may block (which
 * re-commit the void first) until the reserve is empty; return everything. */
static void release_highatomic(lab_arena *a)
{
    lab_stats s;
    lab_stats_get(a, &s);
    if (s.highatomic_pages == 0)
        return;
    static void *p[PAGES + 2];
    size_t n = 0;
    while (n < PAGES + 2 && (p[n] = lab_alloc_pages(a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, 0)) != NULL)
        n++;
    while (n < PAGES + 2 && s.highatomic_pages) {
        p[n] = lab_alloc_pages(a, LAB_GFP_KERNEL | LAB_GFP_MEMALLOC | LAB_GFP_NORETRY | LAB_GFP_NOWARN, 0);
        if (!p[n])
            break;
        n++;
        lab_stats_get(a, &s);
    }
    while (n)
        lab_free_pages(a, p[--n], 0);
}

static lab_arena *sweep_arena(void)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = (size_t)PAGES * LAB_PAGE_SIZE;
    cfg.max_order = MAX_ORDER;
    cfg.wmark_min = WMIN;
    cfg.wmark_low = WLOW;
    cfg.wmark_high = WHIGH;
    cfg.wait_timeout_ms = 10;
    /* the background reclaimer acts only when a blocking request wakes it, at
     * points the workload fixes: polled every 2 ms it woke at times that vary
     * with the machine (under qemu-user, about one sweep in ten moved a
     * decision between phases) */
    cfg.kswapd_poll_ms = 1000000;
    cfg.name = "sweep";
    lab_arena *a = NULL;
    REQUIRE(lab_arena_create(&cfg, &a) == 0);
    lab_set_misuse_handler(a, count_misuse, NULL);
    lab_set_log_hook(a, quiet_log, NULL);
    return a;
}

struct run {
    uint64_t injected;
    int seen, phase, fails[LAB_R_COUNT], steps[LAB_STEP_COUNT];
    bool clean;              /* every per-run check held */
};

/* One run with the n-th decision failed (n == 0: no injection). */
static struct run run_once(unsigned n, struct wl *w)
{
    struct run out = { 0 };
    memset(w, 0, sizeof(*w));
    w->a = sweep_arena();
    w->owner = pthread_self();
    w->injected_phase = -1;
    atomic_store(&g_misuse, 0);
    if (n) {
        lab_fault_config fc = { .probability = 100, .interval = n, .times = 1, .min_order = 0, .ignore_blocking = 0 };
        REQUIRE(lab_fault_set(w->a, &fc) == 0);
    }
    int before = check_failures;

    workload(w);
    lab_fault_set(w->a, NULL);      /* the clean-up's own requests are not the workload's */
    out.injected = lab_fault_injected(w->a);

    lab_stats s;
    lab_stats_get(w->a, &s);
    size_t held_pages = 0;
    for (size_t i = 0; i < w->nheld; i++)
        held_pages += (size_t)1 << w->held[i].order;
    held_pages += w->ncache << CACHE_ORDER;
    CHECK_EQ(s.allocated_pages, held_pages);    /* only what the workload holds is out */
    workload_cleanup(w);
    CHECK_EQ(lab_check(w->a), 0);
    lab_stats_get(w->a, &s);
    CHECK_EQ(s.allocated_pages, 0);
    CHECK_EQ(s.room_pages, 0);
    CHECK_EQ(s.deferred_pages, 0);
    CHECK_EQ(s.free_pages + s.void_pages + s.highatomic_pages, s.total_pages);
    release_highatomic(w->a);
    lab_stats_get(w->a, &s);
    CHECK_EQ(s.highatomic_pages, 0);
    CHECK_EQ(s.free_pages + s.void_pages, s.total_pages);   /* no leak */
    CHECK_EQ(lab_check(w->a), 0);
    CHECK_EQ(atomic_load(&g_misuse), 0);
    CHECK_EQ(s.misuse, 0);
    CHECK_EQ(w->bad_result, 0);
    CHECK_EQ(w->bad_stamp, 0);
    CHECK_EQ(w->lost, 0);
    CHECK_EQ(w->scans_other, 0);
    lab_arena_destroy(w->a);
    w->a = NULL;

    out.seen = w->injected_seen;
    out.phase = w->injected_phase;
    memcpy(out.fails, w->fails, sizeof(out.fails));
    memcpy(out.steps, w->steps, sizeof(out.steps));
    out.clean = check_failures == before;
    return out;
}

/* The workload without injection reaches every step it is meant to. */
static void test_workload_reaches_every_path(void)
{
    static struct wl w;
    struct run r = run_once(0, &w);
    CHECK_EQ(r.injected, 0);
    CHECK_EQ(r.seen, 0);
    fprintf(stderr, "  served by step:");
    for (int s = 1; s < LAB_STEP_COUNT; s++)
        fprintf(stderr, " %s %d;", lab_strstep(s), r.steps[s]);
    fprintf(stderr, "\n  failures by reason:");
    for (int i = 1; i < LAB_R_COUNT; i++)
        if (r.fails[i])
            fprintf(stderr, " %s %d;", lab_strreason(i), r.fails[i]);
    fprintf(stderr, "\n  trim gave back %zu KiB, %zu pages in the void after it\n", w.trimmed >> 10,
            w.void_after_trim);
    CHECK(r.steps[LAB_STEP_ROOM] > 0);
    CHECK(r.steps[LAB_STEP_ROOM_REMOTE] > 0);
    CHECK(r.steps[LAB_STEP_ZONE] > 0);
    CHECK(r.steps[LAB_STEP_ROOM_RESERVE] > 0);
    CHECK(r.steps[LAB_STEP_EMERGENCY] > 0);
    CHECK(r.steps[LAB_STEP_HIGHATOMIC] > 0);
    CHECK(r.steps[LAB_STEP_RECOMMIT] > 0);
    CHECK(r.steps[LAB_STEP_RECLAIM] > 0);
    CHECK(r.fails[LAB_R_QUOTA] > 0);
    CHECK(r.fails[LAB_R_WATERMARK] + r.fails[LAB_R_FRAGMENTED] > 0);
    CHECK(r.fails[LAB_R_RESERVE_EMPTY] > 0);
    CHECK(w.scans_owner > 0);
    CHECK(w.trimmed > 0 && w.void_after_trim > 0);
}

static void test_failing_each_decision_in_turn_is_handled(void)
{
    /* Every point, in every build: a run costs about 5 ms in release and
     * 30 ms under the sanitizers.  LAB_SWEEP_STRIDE=k sweeps every k-th. */
    unsigned stride = 1;
    const char *env = getenv("LAB_SWEEP_STRIDE");
    if (env && atoi(env) > 0)
        stride = (unsigned)atoi(env);

    static struct wl w;
    unsigned runs = 0, bad_runs = 0, last_injected_n = 0, by_phase[PH_COUNT] = { 0 };
    int fails_total[LAB_R_COUNT] = { 0 };
    double t0 = now_s();
    unsigned n;
    for (n = 1; n <= MAX_POINTS; n += stride) {
        if (now_s() - t0 > SWEEP_LIMIT_S) {
            CHECK(!"the sweep ran out of time");
            break;
        }
        struct run r = run_once(n, &w);
        runs++;
        for (int i = 1; i < LAB_R_COUNT; i++)
            fails_total[i] += r.fails[i];
        if (r.injected == 0) {
            CHECK_EQ(r.seen, 0);     /* past the last decision: nothing injected, nothing seen */
            break;
        }
        last_injected_n = n;
        if (r.phase >= 0)
            by_phase[r.phase]++;
        /* exactly the one failure, and the workload saw it */
        if (r.injected != 1 || r.seen != 1 || !r.clean) {
            bad_runs++;
            fprintf(stderr, "  decision %u: %" PRIu64 " injected, %d seen by the workload (phase %s)%s\n", n,
                    r.injected, r.seen, r.phase >= 0 ? phase_names[r.phase] : "?",
                    r.clean ? "" : "; other checks failed");
        }
        CHECK_EQ(r.injected, 1);
        CHECK_EQ(r.seen, 1);
    }
    double elapsed = now_s() - t0;
    fprintf(stderr, "  sweep: %u runs (every %u%s decision): decision points 1..%u failed in turn (the workload"
            " makes %u decisions); %u bad runs; %.2f s\n", runs, stride, stride == 1 ? "st" : "th", last_injected_n,
            n - 1, bad_runs, elapsed);
    fprintf(stderr, "  fault points by phase:");
    for (int p = 0; p < PH_COUNT; p++)
        fprintf(stderr, " %s %u;", phase_names[p], by_phase[p]);
    fprintf(stderr, "\n  failures the workload handled, all runs:");
    for (int i = 1; i < LAB_R_COUNT; i++)
        if (fails_total[i])
            fprintf(stderr, " %s %d;", lab_strreason(i), fails_total[i]);
    fprintf(stderr, "\n");
    CHECK(n <= MAX_POINTS);
    CHECK_EQ(bad_runs, 0);
    unsigned pinned_total = 0;
    for (int p = 0; p < PH_COUNT; p++) {
        pinned_total += pinned_points[p];
        if (stride == 1 && by_phase[p] != pinned_points[p]) {
            fprintf(stderr, "  phase %s: %u decisions, pinned %u\n", phase_names[p], by_phase[p], pinned_points[p]);
            CHECK(!"a phase has a different number of decisions than pinned");
        }
    }
    if (stride == 1)
        CHECK_EQ(last_injected_n, pinned_total);
}

int main(void)
{
    test_watchdog(300);
    RUN(test_workload_reaches_every_path);
    RUN(test_failing_each_decision_in_turn_is_handled);
    return test_finish();
}
