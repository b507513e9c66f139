/*
 * be_labyrinth.c - Labyrinth as the benchmark sees it.
 *
 *   pages      lab_room_alloc(room, LAB_GFP_ATOMIC) / lab_room_free(room, p):
 *              the room is the owner context's own stock (step 1 of the
 *              labyrinth); a page freed by another thread goes back with
 *              lab_free_pages (single) or lab_free_pages_bulk, 32 at a time
 *              (bulk), through the room's return ring; bulk calls in the
 *              owner context are lab_room_alloc_bulk and lab_room_free_bulk
 *   blocks     lab_alloc_pages / lab_free_pages against the arena (buddy)
 *   pressure   LAB_GFP_KERNEL blocks, and a shrinker over the background
 *              cache so that reclaim runs
 *
 * The hand-off's and the pressure workload's arenas are created with
 * LAB_ARENA_PREFAULT: DPDK's EAL and the floor commit their memory before
 * the run, and a lazy arena (the default: MAP_NORESERVE, committed on first
 * touch) takes a page fault on the first touch of each page the room draws
 * from the zone, some of them inside the measured window (bench/README.md,
 * "Page faults in the measured window").  LAB_BENCH_LAZY_ARENA=1 keeps them
 * lazy.  The other workloads' arenas stay lazy: the growth table makes them
 * up to 64 GiB.
 */
#include "bench.h"
#include "labyrinth.h"

#include <stdlib.h>
#include <string.h>

#define BE_SYMBOL    backend_labyrinth
#define BE_NAME      "labyrinth"
#define BE_LABEL     "Labyrinth: room (ATOMIC) / arena"
#define BE_WORKLOADS (WL_PAIR | WL_BATCH | WL_HANDOFF | WL_MIX | WL_LATENCY)
#define BE_BULK      1

#define LAB_ROOMS_PER_CTX 4
/* Workload 5: the producer's room keeps a private reserve, as an interrupt
 * context's room would (labyrinth.h: "a room with reserve R serves R atomic
 * allocations even when every other page ... has been taken"). */
#define LAB_PRESSURE_RESERVE 256

struct be_ctx {
    lab_arena *arena;
    lab_room *rooms[LAB_ROOMS_PER_CTX];
    unsigned nr_rooms, next_room;
    lab_room *room;          /* the current owner's */
    lab_shrinker shrinker;
    int kind;
};

static int be_init(char *why, size_t n)
{
    (void)why;
    (void)n;
    return 0;
}

static void be_version(char *buf, size_t n)
{
    snprintf(buf, n, "%d.%d.%d", LAB_VERSION_MAJOR, LAB_VERSION_MINOR, LAB_VERSION_PATCH);
}

static struct be_ctx *be_open(int kind, const struct bench_params *bp)
{
    struct be_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->kind = kind;
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    switch (kind) {
    case BE_OWNER:
    case BE_HANDOFF:
        cfg.size = bp->arena_bytes ? bp->arena_bytes : (size_t)64 << 20;
        break;
    case BE_MIX:
        cfg.size = bp->arena_bytes ? bp->arena_bytes : (size_t)256 << 20;
        break;
    default:
        cfg.size = bp->pressure_bytes;
        break;
    }
    cfg.name = "bench";
    const char *lazy = getenv("LAB_BENCH_LAZY_ARENA");
    if ((kind == BE_HANDOFF || kind == BE_PRESSURE) && !(lazy && *lazy == '1'))
        cfg.flags |= LAB_ARENA_PREFAULT;
    if (lab_arena_create(&cfg, &c->arena) != 0) {
        free(c);
        return NULL;
    }
    /* Rooms are made here, before any pressure, and each owner thread takes
     * the next one (one owner per room). */
    if (kind != BE_MIX) {
        lab_room_config rc;
        lab_room_config_init(&rc);
        rc.name = "bench";
        /* LAB_BENCH_ROOM_TAKE_ALL=1: rooms that keep nothing in their
         * lanes, to measure what the lanes' keeping is worth */
        const char *all = getenv("LAB_BENCH_ROOM_TAKE_ALL");
        if (all && *all == '1')
            rc.flags |= LAB_ROOM_TAKE_ALL;
        if (kind == BE_PRESSURE)
            rc.reserve = LAB_PRESSURE_RESERVE;
        /* workload 5: a timed and a counted producer per consumer style */
        c->nr_rooms = kind == BE_PRESSURE ? 4 : 1;
        for (unsigned i = 0; i < c->nr_rooms; i++) {
            if (lab_room_create(c->arena, &rc, &c->rooms[i]) != 0) {
                lab_arena_destroy(c->arena);
                free(c);
                return NULL;
            }
        }
    }
    return c;
}

static void be_close(struct be_ctx *c)
{
    for (unsigned i = 0; i < c->nr_rooms; i++)
        lab_room_destroy(c->rooms[i]);
    lab_arena_destroy(c->arena);
    free(c);
}

static void be_thread_enter(struct be_ctx *c, int role)
{
    if (role == ROLE_OWNER && c->nr_rooms) {
        c->room = c->rooms[c->next_room];
        if (c->next_room + 1 < c->nr_rooms)
            c->next_room++;
    }
}

static void be_thread_leave(struct be_ctx *c, int role)
{
    (void)c;
    (void)role;
}

#ifdef LAB_BENCH_STEPS
/* A tree configured with -DLAB_BENCH_STEPS=ON asks each single-page
 * allocation which step served it (lab_room_alloc_result), and workload 5
 * keeps a histogram per step.  That call takes the walk's entry, slower
 * than lab_room_alloc's inlined step 1, so the single-page Labyrinth
 * figures of such a tree (W1, W2, W3, W5) are for finding where a tail
 * comes from, not for comparing with peers. */
#define BE_STEPS 10   /* a number: workloads.h tests it with #if */
_Static_assert(BE_STEPS == LAB_STEP_COUNT, "one histogram per step");
static inline const char *be_step_name(int k)
{
    return lab_strstep(k);
}
static _Thread_local int be_step;
static inline int be_alloc_step(void)
{
    return be_step;
}
#endif

static inline void *be_page_alloc(struct be_ctx *c)
{
#ifdef LAB_BENCH_STEPS
    lab_result res;
    lab_room_alloc_result(c->room, LAB_GFP_ATOMIC, &res);
    be_step = res.step;
    return res.addr;
#else
    return lab_room_alloc(c->room, LAB_GFP_ATOMIC);
#endif
}

static inline void be_page_free(struct be_ctx *c, void *p)
{
    lab_room_free(c->room, p);
}

static inline void be_page_free_remote(struct be_ctx *c, void *p)
{
    lab_free_pages(c->arena, p, 0);
}

static inline unsigned be_page_alloc_bulk(struct be_ctx *c, void **p, unsigned n)
{
    return (unsigned)lab_room_alloc_bulk(c->room, LAB_GFP_ATOMIC, p, n);
}

static inline void be_page_free_bulk(struct be_ctx *c, void **p, unsigned n)
{
    lab_room_free_bulk(c->room, p, n);
}

static inline void be_page_free_remote_bulk(struct be_ctx *c, void **p, unsigned n)
{
    lab_free_pages_bulk(c->arena, p, n, 0);
}

/* A caller that may block but does not want to wait: a failure is counted
 * by the workload instead of sleeping wait_timeout_ms. */
#define MIX_GFP (LAB_GFP_KERNEL | LAB_GFP_NORETRY | LAB_GFP_NOWARN)

static inline void *be_block_alloc(struct be_ctx *c, unsigned order)
{
    return lab_alloc_pages(c->arena, MIX_GFP, order);
}

static inline void be_block_free(struct be_ctx *c, void *p, unsigned order)
{
    lab_free_pages(c->arena, p, order);
}

static void *be_bg_alloc(struct be_ctx *c, unsigned order)
{
    return lab_alloc_pages(c->arena, LAB_GFP_KERNEL | LAB_GFP_NOWARN | LAB_GFP_RETRY_MAYFAIL, order);
}

static void be_bg_free(struct be_ctx *c, void *p, unsigned order)
{
    lab_free_pages(c->arena, p, order);
}

static size_t shrink_count(void *ctx)
{
    return bg_cache_pages(ctx);
}

static size_t shrink_scan(void *ctx, size_t nr)
{
    return bg_cache_shrink(ctx, nr);
}

/* Registered from the background thread, which is pinned to the second CPU:
 * the arena's reclaimer thread starts here and inherits that CPU, so the
 * housekeeping stays off the producer's CPU (as one would deploy it). */
static void be_bg_attach(struct be_ctx *c, struct bg_cache *cache)
{
    c->shrinker = (lab_shrinker){ shrink_count, shrink_scan, cache };
    lab_shrinker_register(c->arena, &c->shrinker);
}

static void be_bg_detach(struct be_ctx *c, struct bg_cache *cache)
{
    (void)cache;
    lab_shrinker_unregister(c->arena, &c->shrinker);
}

static void be_extra(struct be_ctx *c, int kind, const char *w, struct sink *s)
{
    if (kind != BE_PRESSURE && kind != BE_HANDOFF)
        return;
    char m[64];
    lab_room_stats rs;
    uint64_t refills = 0, reserve = 0, remote = 0, fail = 0;
    for (unsigned i = 0; i < c->nr_rooms; i++) {
        lab_room_stats_get(c->rooms[i], &rs);
        refills += rs.refills;
        reserve += rs.reserve_allocs;
        remote += rs.frees_remote;
        for (int r = 1; r < LAB_R_COUNT; r++)
            fail += rs.fail_by_reason[r];
    }
    lab_stats st;
    lab_stats_get(c->arena, &st);
    snprintf(m, sizeof(m), "%s.lab_refills", w);
    emit(s, m, (double)refills);
    snprintf(m, sizeof(m), "%s.lab_reserve_allocs", w);
    emit(s, m, (double)reserve);
    snprintf(m, sizeof(m), "%s.lab_remote_frees", w);
    emit(s, m, (double)remote);
    snprintf(m, sizeof(m), "%s.lab_room_fails", w);
    emit(s, m, (double)fail);
    /* which steps served the producer: room (stock), room_remote (taken
     * back from the ring), zone (refills); workload 5's background job
     * allocates from the zone too, so only workload 3's are the producer's */
    for (int i = LAB_STEP_ROOM; i <= LAB_STEP_EMERGENCY && kind == BE_HANDOFF; i++) {
        snprintf(m, sizeof(m), "%s.lab_step_%s", w, lab_strstep(i));
        emit(s, m, (double)st.alloc_by_step[i]);
    }
    if (kind == BE_PRESSURE) {
        emit(s, "w5.lab_shrinker_runs", (double)st.shrinker_runs);
        emit(s, "w5.lab_kswapd_runs", (double)st.kswapd_runs);
        emit(s, "w5.lab_would_block", (double)st.fail_by_reason[LAB_R_WOULD_BLOCK]);
        emit(s, "w5.lab_emergency", (double)st.alloc_by_step[LAB_STEP_EMERGENCY]);
        emit(s, "w5.lab_waits", (double)st.waits);
        emit(s, "w5.lab_fail_fragmented", (double)st.fail_by_reason[LAB_R_FRAGMENTED]);
        emit(s, "w5.lab_fail_timeout", (double)st.fail_by_reason[LAB_R_TIMEOUT]);
        emit(s, "w5.lab_fail_watermark", (double)st.fail_by_reason[LAB_R_WATERMARK]);
    }
}

#include "workloads.h"
