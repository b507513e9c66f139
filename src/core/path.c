/*
 * path.c - the labyrinth: the ordered walk of one allocation request.
 *
 * Read this file top to bottom to follow a request.  Each step is one
 * function; its comment says what it may do (lock? system call? block?).
 * A request stops at the first step that yields pages, and its GFP flags
 * decide which steps it may enter (docs/DESIGN.md section 3):
 *
 *   1  room: local stock                 owner only, no lock, no atomic RMW
 *   2  room: take back remote frees      owner only, no lock, no atomic RMW;
 *                                        a bulk call's straight to the caller
 *   3  zone: above the request's floor   zone lock (atomic context: try only)
 *   4  reserves below min                room reserve; zone emergency share;
 *                                        high-order atomic blocks
 *   5  wake the background reclaimer     a flag (non-blocking) or a futex wake
 *   6  re-commit from the void           blocking requests only
 *   7  direct reclaim                    blocking requests only: shrinkers,
 *                                        rooms' surplus, highatomic blocks
 *   8  wait for frees                    blocking requests only, bounded by
 *                                        wait_timeout_ms unless NOFAIL
 *   9  fail with a reason
 *
 * Steps 1, 2 and the room's reserve live in lab_room_alloc_result below; arena
 * requests (lab_alloc_pages) start at step 3.  Everything a non-blocking
 * request can reach is bounded: no loop waits on another context.
 */
#include "owner.h"
#include "fault.h"

/* ---- a request's rights ---------------------------------------------------
 * The GFP mask is read once, at the entry of each call, into what the steps
 * may do (as Linux's gfp_to_alloc_flags); past that point no step tests a
 * GFP bit.  The mask itself goes on only to failure injection and to the
 * failure report, which describe the request as the caller wrote it. */
enum {
    /* copies of the mask's own bits, at the same places */
    R_BLOCK         = LAB_GFP_DIRECT_RECLAIM,  /* may sleep: steps 6-8 (and has R_LOCK) */
    R_WAKE          = LAB_GFP_WAKE_RECLAIM,    /* step 5: wake the background reclaimer */
    R_ZERO          = LAB_GFP_ZERO,
    R_NORETRY       = LAB_GFP_NORETRY,
    R_RETRY_MAYFAIL = LAB_GFP_RETRY_MAYFAIL,
    R_COPIED        = R_BLOCK | R_WAKE | R_ZERO | R_NORETRY | R_RETRY_MAYFAIL,
    /* derived */
    R_EMERGENCY     = 1u << 16,   /* step 4: the zone's share below min */
    R_ROOM_RESERVE  = 1u << 17,   /* step 4: a room's private reserve (order 0) */
    R_HIGHATOMIC    = 1u << 18,   /* step 4: the high-order atomic reserve (order > 0) */
    R_MAY_RESERVE   = 1u << 19,   /* not NOMEMALLOC: NOFAIL may raise the floor to HIGH's share */
    R_NOFAIL        = 1u << 20,   /* blocking, NOFAIL, not NORETRY */
    R_LOCK          = 1u << 21,   /* may wait for the zone lock and make system calls: every
                                     blocking request, and a blocking bulk call's pages after
                                     its first, which may not take steps 6-8 (R_BLOCK) */
    R_FLOOR_SHIFT   = 24,         /* enum zone_floor_kind: how far below min */
};
_Static_assert(((R_EMERGENCY | R_ROOM_RESERVE | R_HIGHATOMIC | R_MAY_RESERVE | R_NOFAIL | R_LOCK) &
                (R_COPIED | ~((1u << R_FLOOR_SHIFT) - 1))) == 0,
               "the derived rights are bits of their own, clear of the mask's copies and of the floor");
/* Eight bytes, passed in one register. */
struct rights {
    lab_gfp_t gfp;        /* as the caller wrote it, after the PF_MEMALLOC rule */
    uint32_t  r;          /* R_* */
};
static inline bool may(struct rights rt, uint32_t right) { return (rt.r & right) != 0; }
static inline unsigned floor_of(struct rights rt) { return rt.r >> R_FLOOR_SHIFT; }

/* The rights that depend on HIGH, DIRECT_RECLAIM, MEMALLOC and NOMEMALLOC
 * together, for each of their 16 combinations: a table, so that reading a
 * mask costs a few instructions and no branch. */
#define RIGHTS_OF(high, block, memalloc, nomem)                                                        \
    ((!(nomem) && ((high) || (memalloc)) ? R_EMERGENCY : 0u) | (!(nomem) && (high) ? R_ROOM_RESERVE : 0u) | \
     ((block) ? R_LOCK : 0u) |                                                                          \
     (!(nomem) && (high) && !(block) ? R_HIGHATOMIC : 0u) | (!(nomem) ? R_MAY_RESERVE : 0u) |              \
     (uint32_t)((nomem) ? FLOOR_MIN : (memalloc) ? FLOOR_ALL : (high) ? ((block) ? FLOOR_HIGH : FLOOR_ATOMIC) \
                                                                      : FLOOR_MIN) << R_FLOOR_SHIFT)
#define RIGHTS_AT(i) RIGHTS_OF((i) & 1, ((i) >> 1) & 1, ((i) >> 2) & 1, ((i) >> 3) & 1)
_Static_assert(LAB_GFP_HIGH == 1 && LAB_GFP_DIRECT_RECLAIM == 2 && LAB_GFP_MEMALLOC == 1u << 8 &&
               LAB_GFP_NOMEMALLOC == 1u << 9, "the table's index is built from these bits");
static const uint32_t rights_table[16] = {
    RIGHTS_AT(0), RIGHTS_AT(1), RIGHTS_AT(2), RIGHTS_AT(3), RIGHTS_AT(4), RIGHTS_AT(5), RIGHTS_AT(6),
    RIGHTS_AT(7), RIGHTS_AT(8), RIGHTS_AT(9), RIGHTS_AT(10), RIGHTS_AT(11), RIGHTS_AT(12), RIGHTS_AT(13),
    RIGHTS_AT(14), RIGHTS_AT(15),
};

/* A blocking request made from inside reclaim (a shrinker's scan) may use
 * every page and must neither recurse into reclaim nor wait, as PF_MEMALLOC:
 * it runs under the shrinker table's read lock, and an unregister queued
 * behind it would stall every reclaimer.  A non-blocking one (or a signal
 * handler that interrupted reclaim) keeps its own rules. */
static inline struct rights gfp_rights(lab_gfp_t gfp)
{
    if ((gfp & LAB_GFP_DIRECT_RECLAIM) && unlikely(in_reclaim()))
        gfp = (gfp | LAB_GFP_MEMALLOC) & ~(lab_gfp_t)(LAB_GFP_DIRECT_RECLAIM | LAB_GFP_NOFAIL);
    uint32_t r = (gfp & R_COPIED) | rights_table[(gfp & 3) | ((gfp >> 6) & 12)];
    if ((gfp & (LAB_GFP_NOFAIL | LAB_GFP_DIRECT_RECLAIM | LAB_GFP_NORETRY)) == (LAB_GFP_NOFAIL | LAB_GFP_DIRECT_RECLAIM))
        r |= R_NOFAIL;
    return (struct rights){ .gfp = gfp, .r = r };
}

/* ---- step 3 and the zone part of step 4 ---------------------------------
 * Zone lock held.  Takes a block above the request's floor; a floor below
 * min is the emergency reserve (HIGH, ATOMIC, MEMALLOC).  High-order atomic
 * requests fall back to the blocks kept for them, and top that reserve up
 * when they succeed.  No system call, no waiting. */
static uint32_t zone_alloc_locked(struct lab_arena *a, struct rights rt, unsigned order, int *reason,
                                  int *step)
{
    struct zone *z = &a->zone;
    size_t floor = zone_floor(z, floor_of(rt));
    bool highatomic = may(rt, R_HIGHATOMIC) && order > 0;
    uint32_t frame;

    if (zone_watermark_ok(z, order, floor)) {
        frame = buddy_take(z, order);
        if (frame != NIL) {
            *step = z->free_pages >= z->wmark[WMARK_MIN] ? LAB_STEP_ZONE : LAB_STEP_EMERGENCY;
            if (highatomic)
                highatomic_top_up(z, order);
            return frame;
        }
        *reason = LAB_R_FRAGMENTED;
    } else {
        *reason = floor < z->wmark[WMARK_MIN] ? LAB_R_RESERVE_EMPTY : LAB_R_WATERMARK;
    }
    if (highatomic && (frame = highatomic_take(z, order)) != NIL) {
        *step = LAB_STEP_HIGHATOMIC;
        return frame;
    }
    return NIL;
}

/* Steps 3-4 under the zone lock, and step 5 after it.  Non-blocking
 * requests only try the lock (bounded), so a signal handler that interrupted
 * the holder falls through with LAB_R_WOULD_BLOCK instead of deadlocking. */
static uint32_t zone_alloc(struct lab_arena *a, struct rights rt, unsigned order, int *reason, int *step)
{
    struct zone *z = &a->zone;
    if (may(rt, R_LOCK)) {
        zone_lock(z);
    } else if (!zone_lock_atomic(z)) {
        *reason = LAB_R_WOULD_BLOCK;
        return NIL;
    }
    uint32_t frame = zone_alloc_locked(a, rt, order, reason, step);
    bool below_low = z->free_pages < z->wmark[WMARK_LOW];
    bool in_void = frame == NIL && *reason == LAB_R_FRAGMENTED && z->void_pages;
    if (may(rt, R_LOCK))
        zone_unlock(z);
    else
        zone_unlock_nowake(z);
    if (in_void && may(rt, R_WAKE))
        reclaim_wake_order(a, order, may(rt, R_LOCK));                /* step 5 */
    else if (below_low && may(rt, R_WAKE))
        reclaim_wake(a, may(rt, R_LOCK));                             /* step 5 */
    return frame;
}

/* ---- steps 6-8: only for requests that may block ------------------------
 * Step 6 re-commits blocks that trim sent to the void (a system call each),
 * enough for this request above its floor.
 * Step 7 runs shrinkers and takes back rooms' surplus with no allocator lock
 * held; if that is not enough, the high-order atomic reserve is released.
 * Step 8 sleeps on a futex until a free arrives or the deadline passes.
 * NORETRY: one pass of step 7, no wait.  RETRY_MAYFAIL: a few passes and a
 * bounded wait.  NOFAIL: after reclaim fails it may use the HIGH share of the
 * emergency reserve, and it waits for as long as it takes. */
#define RETRY_MAYFAIL_PASSES 4
#define FRAGMENTED_PASSES 4     /* reclaim passes in a row before a fragmented request waits */

/* A block larger than the arena's pages above the lowest floor this
 * request may reach (NOFAIL's HIGH share included) can never be served:
 * a wait for it would last for ever, a NOFAIL one literally. */
static bool order_never_fits(const struct zone *z, struct rights rt, unsigned order)
{
    unsigned kind = floor_of(rt);
    if (may(rt, R_NOFAIL) && may(rt, R_MAY_RESERVE) && kind == FLOOR_MIN)
        kind = FLOOR_HIGH;
    size_t floor = zone_floor(z, kind);
    return z->nr_pages < floor || ((size_t)1 << order) > z->nr_pages - floor;
}

static uint32_t alloc_slowpath(struct lab_arena *a, struct rights rt, unsigned order, int *reason, int *step)
{
    struct zone *z = &a->zone;
    if (unlikely(order_never_fits(z, rt, order))) {
        *reason = LAB_R_ORDER;
        if (may(rt, R_NOFAIL))
            misuse(a, LAB_EBADORDER, NULL, NIL, "LAB_GFP_NOFAIL with a block larger than the arena's pages above its watermark");
        return NIL;
    }
    uint64_t deadline = plat_now_ns() + (uint64_t)a->cfg.wait_timeout_ms * 1000000ull;
    uint32_t frame;
    bool released_highatomic = false;

    for (unsigned pass = 1;; pass++) {
        size_t want = ((size_t)1 << order) + zone_floor(z, floor_of(rt));
        /* What the free pages lack, or, where they lack nothing but a block
         * of the order (fragmented), one block: re-committing `want` whole
         * brought back a floor's worth more after every trim. */
        size_t free_now = atomic_load_explicit(&z->free_pages_pub, memory_order_relaxed);
        size_t lack = want > free_now ? want - free_now : 0;
        if (lack < (size_t)1 << order)
            lack = (size_t)1 << order;
        if (void_recommit(a, lack, order) &&                     /* step 6 */
            (frame = zone_alloc(a, rt, order, reason, step)) != NIL) {
            *step = LAB_STEP_RECOMMIT;
            return frame;
        }
        /* Ask for at least two blocks' worth: freeing just the shortfall in
         * pages rarely frees a whole block of a high order. */
        size_t reclaimed = reclaim_direct(a, want, (size_t)2 << order);   /* step 7 */
        uint32_t seen = reclaim_free_seq(a);   /* step 8 sleeps only if no free since */
        if ((frame = zone_alloc(a, rt, order, reason, step)) != NIL) {
            *step = LAB_STEP_RECLAIM;
            return frame;
        }
        if (!released_highatomic) {
            zone_lock(z);
            released_highatomic = highatomic_release(z) > 0;
            zone_unlock(z);
            if (released_highatomic && (frame = zone_alloc(a, rt, order, reason, step)) != NIL) {
                *step = LAB_STEP_RECLAIM;
                return frame;
            }
        }
        if (may(rt, R_NORETRY))
            return NIL;
        if (may(rt, R_NOFAIL) && may(rt, R_MAY_RESERVE) && floor_of(rt) == FLOOR_MIN) {
            /* the HIGH share now, not after a wait for frees */
            rt.r |= FLOOR_HIGH << R_FLOOR_SHIFT;
            if ((frame = zone_alloc(a, rt, order, reason, step)) != NIL)
                return frame;
        } else if (!may(rt, R_NOFAIL) && may(rt, R_RETRY_MAYFAIL) && pass >= RETRY_MAYFAIL_PASSES)
            return NIL;
        if (!may(rt, R_NOFAIL) && plat_now_ns() >= deadline) {
            *reason = LAB_R_TIMEOUT;
            return NIL;
        }
        /* Reclaim is giving pages back but they have not formed a block of
         * the order yet: reclaim again rather than sleep, a few times; then
         * back off to step 8, or a NOFAIL request spins as long as shrinkers
         * free pages that never merge. */
        if (reclaimed && *reason == LAB_R_FRAGMENTED && pass % FRAGMENTED_PASSES != 0)
            continue;
        /* step 8 */
        bool freed = reclaim_wait_for_frees(a, may(rt, R_NOFAIL) ? 0 : deadline, seen);
        if (freed && (frame = zone_alloc(a, rt, order, reason, step)) != NIL) {
            *step = LAB_STEP_WAIT;
            return frame;
        }
    }
}

/* ---- step 9: fail with a reason -----------------------------------------
 * The class is the caller's request's (`asked`): inside reclaim a blocking
 * request runs without DIRECT_RECLAIM (gfp_rights), and is still the
 * KERNEL request the caller made. */
static NOINLINE void alloc_failed(struct lab_arena *a, lab_gfp_t gfp, lab_gfp_t asked, unsigned order, int reason)
{
    ctr_add_shared(&a->st.fail_by_reason[reason], 1);
    ctr_add_shared(&a->st.fail_by_class[gfp_class(asked)], 1);
    if (!(gfp & LAB_GFP_NOWARN))
        report_alloc_failure(a, gfp, order, reason);
}

void lab_alloc_pages_result(lab_arena *a, lab_gfp_t gfp, unsigned order, lab_result *res)
{
    int reason = LAB_R_NONE, step = LAB_STEP_NONE;
    res->addr = NULL;
    res->step = LAB_STEP_NONE;
    if (unlikely(a == NULL)) {
        res->reason = LAB_R_BADARG;
        return;
    }
    struct zone *z = &a->zone;
    uint32_t frame = NIL;
    const lab_gfp_t asked = gfp;   /* the stats' class (alloc_failed) */
    struct rights rt = gfp_rights(gfp);
    gfp = rt.gfp;
    if (unlikely(order > z->max_order)) {
        reason = LAB_R_ORDER;
        /* NOFAIL promises a block: one that can never exist is a bug of the
         * caller, not a failure to report and carry on from.  (NOFAIL means
         * nothing without DIRECT_RECLAIM, and NORETRY overrides it.) */
        if (may(rt, R_NOFAIL))
            misuse(a, LAB_EBADORDER, NULL, NIL, "LAB_GFP_NOFAIL with an order above the arena's max_order");
    } else if (unlikely(fault_should_fail(a, gfp, order))) {
        reason = LAB_R_INJECTED;
    } else {
        /* LAB_ARENA_GUARD: a block of four times the size, the caller's in
         * its second quarter, between two inaccessible pages (the last of
         * the first quarter, the first of the third). */
        /* Guarding takes two mprotect calls: requests that may not make a
         * system call get an unguarded block (their frees need none). */
        unsigned real = unlikely(a->guard) && order >= 1 && order + 2 <= z->max_order && may(rt, R_BLOCK) &&
                                !order_never_fits(z, rt, order + 2)
                            ? order + 2 : order;
        if (may(rt, R_BLOCK) && unlikely(arena_flush_wanted(a)))
            lab_arena_flush(a);    /* work deferred by atomic contexts */
        frame = zone_alloc(a, rt, real, &reason, &step);
        if (frame == NIL && may(rt, R_BLOCK))
            frame = alloc_slowpath(a, rt, real, &reason, &step);
        if (frame != NIL && real != order) {
            z->pages[frame].prev = GUARD_TAG | order;
            char *user = (char *)addr_of(z, frame) + ((size_t)LAB_PAGE_SIZE << order);
            if (!atomic_load_explicit(&a->protect_off, memory_order_relaxed)) {   /* hooks.c */
                os_protect(user - LAB_PAGE_SIZE, LAB_PAGE_SIZE, false);
                os_protect(user + ((size_t)LAB_PAGE_SIZE << order), LAB_PAGE_SIZE, false);
            }
            frame += 1u << order;
        }
    }
    if (frame == NIL) {
        res->reason = reason;
        alloc_failed(a, gfp, asked, order, reason);
        return;
    }
    ctr_add_shared(&a->st.alloc_by_step[step], (uint64_t)1 << order);   /* pages, as Linux's pgalloc */
    res->addr = addr_of(z, frame);
    res->reason = LAB_R_NONE;
    res->step = step;
    if (unlikely(a->page_hooks))
        page_hook_alloc(a, res->addr, order);
    if (may(rt, R_ZERO))
        memset(res->addr, 0, (size_t)LAB_PAGE_SIZE << order);
    debug_check_every_op(a, may(rt, R_BLOCK));
}

void *lab_alloc_pages(lab_arena *a, lab_gfp_t gfp, unsigned order)
{
    lab_result res;
    lab_alloc_pages_result(a, gfp, order, &res);
    return res.addr;
}

/* How many more blocks of `order` the room's quota lets it hold (SIZE_MAX
 * with no quota): its reserve, what is out and its stocks count. */
static size_t room_quota_left(struct lab_room *r, unsigned order)
{
    if (!r->quota)
        return SIZE_MAX;
    size_t held = rd(&r->nr_reserve) + room_out(r);
    for (unsigned o = 0; o <= r->max_order; o++)
        held += rd(&r->stk[o].n) << o;
    return held < r->quota ? (r->quota - held) >> order : 0;
}

/* ---- rooms, step 3: refill from the zone -----------------------------------------
 * Up to a batch of blocks in one lock hold, within the quota, and never
 * below min: the pages of the emergency reserve are for the request that
 * dips into it, one at a time (room_take_emergency), not for a stock that
 * NOWAIT requests would then drain.  Atomic contexts only try the lock. */
static size_t room_refill_from_zone(struct lab_room *r, struct rights rt, unsigned order, int *reason, int *step)
{
    struct lab_arena *a = r->arena;
    struct zone *z = room_zone(r);
    struct room_stock *s = &r->stk[order];
    size_t want = s->batch;
    if (want > s->high + s->batch - rd(&s->n))
        want = s->high + s->batch - rd(&s->n);
    size_t left = room_quota_left(r, order);
    if (left == 0) {
        *reason = LAB_R_QUOTA;
        return 0;
    }
    if (want > left)
        want = left;
    /* A decision point only when none of the room's blocks is on its way
     * back: a request that the lanes could serve is never failed by
     * injection (the refill runs before the lanes' kept entries, step 2
     * again, are taken). */
    if (unlikely(fault_enabled(a)) && room_ring_pages(r) == 0 && fault_should_fail(a, rt.gfp, order)) {
        *reason = LAB_R_INJECTED;
        return 0;
    }
    if (may(rt, R_LOCK)) {
        zone_lock(z);
    } else if (!zone_lock_atomic(z)) {
        *reason = LAB_R_WOULD_BLOCK;
        return 0;
    }
    size_t floor = z->wmark[WMARK_MIN], got = 0;
    if (zone_floor(z, floor_of(rt)) > floor)   /* a floor above min */
        floor = zone_floor(z, floor_of(rt));
    /* as many blocks as the watermark lets this request take, each of
     * them leaving at least `floor` free (zone_watermark_ok's test) */
    size_t allowed = z->free_pages > floor ? (z->free_pages - floor) >> order : 0;
    if (want > allowed)
        want = allowed;
    if (want > 1 && fault_point(FP_REFILL_CUT))
        want = 1;
    /* Whole runs of blocks off the buddy lists (buddy_take_run), and each
     * block's descriptor in one store of its tag, not a buddy_take and a
     * stock_push a block: the lock is held for a fraction of the instructions
     * (bench/README.md, "Refills in runs"). */
    const uint32_t tag = page_tag(PG_ROOM, order, r->id);
    size_t n = rd(&s->n);
    lab_assert(n + want <= s->high + s->batch);
    while (got < want) {
        uint32_t run, f = buddy_take_run(z, order, (uint32_t)(want - got), &run);
        if (f == NIL)
            break;
        for (uint32_t i = 0; i < run; i++, f += 1u << order) {
            struct page *p = &z->pages[f];
            /* NIL links, as buddy_take leaves a block: a frame that was
             * never a list head still has the zero links of the fresh
             * mapping, and a guard arena's free takes a head whose prev
             * is not NIL for a guarded block's */
            p->next = p->prev = NIL;
            atomic_store_explicit(&z->room_of[f], (uint16_t)r->id, memory_order_relaxed);
            pg_set_tag(p, tag);
            s->addr[n + got + i] = addr_of(z, f);
        }
        got += run;
    }
    stock_n_set(r, order, n + got);
    if (got == 0)
        *reason = zone_watermark_ok(z, order, floor) ? LAB_R_FRAGMENTED : LAB_R_WATERMARK;
    *step = LAB_STEP_ZONE;
    bool below_low = z->free_pages < z->wmark[WMARK_LOW];
    bool in_void = got == 0 && *reason == LAB_R_FRAGMENTED && z->void_pages;
    if (may(rt, R_LOCK))
        zone_unlock(z);
    else
        zone_unlock_nowake(z);
    if (got)
        ctr_inc(&r->st.refills);
    if (in_void && may(rt, R_WAKE))
        reclaim_wake_order(a, order, may(rt, R_LOCK));                /* step 5 */
    else if (below_low && may(rt, R_WAKE))
        reclaim_wake(a, may(rt, R_LOCK));                             /* step 5 */
    return got;
}

/* ---- rooms, step 4: reserves ------------------------------------------------------- */

/* The zone's emergency share below min, one block for this request only,
 * for requests allowed there (HIGH, ATOMIC, MEMALLOC). */
static uint32_t room_take_emergency(struct lab_room *r, struct rights rt, unsigned order, int *step)
{
    struct zone *z = room_zone(r);
    size_t floor = zone_floor(z, floor_of(rt));
    if (floor >= z->wmark[WMARK_MIN] || !zone_lock_atomic(z))
        return NIL;
    uint32_t f = zone_watermark_ok(z, order, floor) ? buddy_take(z, order) : NIL;
    if (f != NIL) {
        pg_set_room(z, f, r->id);
        /* above min when the refill found the lock busy: the zone served it */
        *step = z->free_pages >= z->wmark[WMARK_MIN] ? LAB_STEP_ZONE : LAB_STEP_EMERGENCY;
    }
    zone_unlock_nowake(z);
    return f;
}

static uint32_t room_take_reserve(struct lab_room *r)
{
    uint32_t f = r->reserve_head;
    if (f == NIL)
        return NIL;
    r->reserve_head = room_zone(r)->pages[f].next;
    wr(&r->nr_reserve, rd(&r->nr_reserve) - 1);
    room_update_free_limit(r);
    ctr_inc(&r->st.reserve_allocs);
    return f;
}

/* A block the slow path got from the zone for this room: make it the room's. */
static void room_adopt(struct lab_room *r, uint32_t frame)
{
    pg_set_room(room_zone(r), frame, r->id);
}

/* The stock's count, once its top is a block the stock may hand out:
 * what is not is refused and dropped first (room_stock_refuse). */
static size_t stock_top(struct lab_room *r, unsigned order)
{
    struct room_stock *s = &r->stk[order];
    size_t n;
    while ((n = atomic_load_explicit(&s->n, memory_order_relaxed)) != 0 &&
           unlikely(atomic_load_explicit(&room_desc(r, s->addr[n - 1])->tag, memory_order_relaxed) != s->tag_in))
        room_stock_refuse(r, order);
    return n;
}

/* ---- rooms: the whole walk, from step 1 ------------------------------------
 * The owner's fast path is step 1: pop a block head from the private stock
 * of its order and mark its descriptor ALLOCATED.  No lock, no atomic RMW,
 * no branch on the flags.  Everything else is room_alloc_slow, which leaves
 * the block it found on top of the stock (steps 2, 3) or returns it (4, 6-8). */
static NOINLINE uint32_t room_alloc_slow(struct lab_room *r, struct rights rt, unsigned order, int *reason,
                                         int *step)
{
    struct room_stock *s = &r->stk[order];
    uint32_t f;
    room_window_close(r);
    if (order == 0 && room_window_open(r)) {   /* step 2, where the entries lie */
        if (stock_top(r, 0)) {
            *step = LAB_STEP_ROOM_REMOTE;
            goto pop;
        }
        /* Every entry refused (blocks freed twice): the stock is the
         * room's own array again before the walk writes to it; the
         * slots are the freer's. */
        room_window_close(r);
    }
    for (;;) {
        if (room_take_remote(r, false) && atomic_load_explicit(&s->n, memory_order_relaxed)) {   /* step 2 */
            *step = LAB_STEP_ROOM_REMOTE;
            goto pop;
        }
        if (room_refill_from_zone(r, rt, order, reason, step))        /* steps 3, 5 */
            goto pop;
        /* The zone did not serve: step 2 again, for every page on its way
         * back, those the lanes keep while the zone has plenty included. */
        if (room_take_remote(r, true) && atomic_load_explicit(&s->n, memory_order_relaxed)) {
            *step = LAB_STEP_ROOM_REMOTE;
            goto pop;
        }
        if (*reason == LAB_R_INJECTED)   /* an injected failure fails the request, as for the arena */
            return NIL;
        if (order == 0 && may(rt, R_ROOM_RESERVE) && (f = room_take_reserve(r)) != NIL) {   /* step 4 */
            *step = LAB_STEP_ROOM_RESERVE;
            return f;
        }
        if (*reason != LAB_R_QUOTA && may(rt, R_EMERGENCY)) {
            if ((f = room_take_emergency(r, rt, order, step)) != NIL)
                return f;
            if (*reason != LAB_R_WOULD_BLOCK)   /* a busy lock says more */
                *reason = LAB_R_RESERVE_EMPTY;
        }
        if (may(rt, R_BLOCK) && *reason != LAB_R_QUOTA) {
            f = alloc_slowpath(r->arena, rt, order, reason, step); /* steps 6-8 */
            if (f != NIL)
                room_adopt(r, f);
            return f;
        }
        if (!may(rt, R_NOFAIL))
            return NIL;
        /* A quota that holds no such block beside a full reserve, for a
         * request that may not take the reserve: nothing coming back can
         * ever make room for it.  (Pages lent from the reserve may come
         * back through the stock and serve it: then it waits.) */
        if (r->quota && r->quota < r->reserve_target + ((size_t)1 << order) &&
            rd(&r->nr_reserve) >= r->reserve_target && (order || !may(rt, R_ROOM_RESERVE))) {
            misuse(r->arena, LAB_EQUOTA, NULL, NIL, "LAB_GFP_NOFAIL request that the room's quota can never serve");
            return NIL;
        }
        /* Step 8 for a room at its quota: only its own pages coming back
         * can satisfy it, through its remote frees, or, when direct reclaim
         * moved those to the zone, through the quota they free up.  So every
         * step is walked again after each nap, not just step 2. */
        plat_sleep_ms(1);
    }
pop:;
    size_t n = atomic_load_explicit(&s->n, memory_order_relaxed);
    lab_assert(n > 0);
    stock_n_set(r, order, n - 1);
    return frame_of(room_zone(r), s->addr[n - 1]);
}

/* Reclaim holds the stocks and the ring for a moment (room_steal takes
 * what they hold; it never waits for the owner).  A request that may
 * block waits it out: true once the owner's side is back, and the whole
 * walk follows.  Any other request tries once. */
static bool room_side_back(struct lab_room *r, struct rights rt)
{
    if (room_owner_side_mine(r))
        return true;
    if (!may(rt, R_BLOCK))
        return false;
    for (unsigned spins = 0; !room_owner_side_mine(r); spins++) {
        if (spins < 64)
            plat_cpu_relax();
        else
            plat_sleep_ms(1);
    }
    return true;
}

/* A request that may not block, while a steal holds the stocks: the steps
 * that touch neither the stocks nor the ring.  The zone for this block
 * alone (within the quota, the request's own floor: a different request,
 * without direct reclaim), then the room's reserve, which reclaim never
 * takes. */
static uint32_t room_alloc_stolen(struct lab_room *r, struct rights rt, unsigned order, int *reason, int *step)
{
    uint32_t f = NIL;
    if (room_quota_left(r, order) == 0) {
        *reason = LAB_R_QUOTA;
    } else {
        *step = LAB_STEP_ZONE;
        struct rights now = gfp_rights(rt.gfp & ~(lab_gfp_t)LAB_GFP_DIRECT_RECLAIM);
        f = zone_alloc(r->arena, now, order, reason, step);
        if (f != NIL)
            room_adopt(r, f);
    }
    if (f == NIL && order == 0 && may(rt, R_ROOM_RESERVE) && (f = room_take_reserve(r)) != NIL)
        *step = LAB_STEP_ROOM_RESERVE;
    return f;
}

/* The owner's side of handing a block out, counted in pages. */
static inline void *room_hand_out(struct lab_room *r, uint32_t f, unsigned order)
{
    lab_assert(pg_room(&r->arena->zone, f) == r->id && pg_order(&r->pages[f]) == order);
    pg_set_state(&r->pages[f], PG_ALLOCATED);
    return r->base + ((size_t)f << PAGE_SHIFT);
}

static void room_alloc(lab_room *r, lab_gfp_t gfp, unsigned order, lab_result *res)
{
    int reason = LAB_R_NONE, step = LAB_STEP_ROOM;
    uint32_t f;
    res->addr = NULL;
    const lab_gfp_t asked = gfp;   /* the stats' class (alloc_failed) */
    struct rights rt = gfp_rights(gfp);
    gfp = rt.gfp;
    if (unlikely(r == NULL || !room_enter(r, &r->seq, "lab_room_alloc on a destroyed room"))) {
        res->reason = LAB_R_BADARG;
        res->step = LAB_STEP_NONE;
        return;
    }
    if (unlikely(order > r->max_order)) {
        if (may(rt, R_NOFAIL))   /* as the arena's order check */
            misuse(r->arena, LAB_EBADORDER, NULL, NIL, "LAB_GFP_NOFAIL with an order above the room's max_order");
        ctr_inc(&r->st.fail_by_reason[LAB_R_ORDER]);
        ctr_add_owner(&r->st.allocs_extra, (uint64_t)-1);   /* a call that handed out nothing */
        room_leave(&r->seq);
        res->reason = LAB_R_ORDER;
        res->step = LAB_STEP_NONE;
        alloc_failed(r->arena, gfp | r->gfp_or, asked, order, LAB_R_ORDER);
        return;
    }
    struct room_stock *s = &r->stk[order];
    size_t n;
    if (unlikely(!room_side_back(r, rt))) {
        f = room_alloc_stolen(r, rt, order, &reason, &step);
        if (f != NIL) {
            ctr_add_owner(&r->st.slow_allocs, (uint64_t)1 << order);
            ctr_add_owner(&r->st.by_step[step], (uint64_t)1 << order);
        }
    } else if (likely((n = stock_top(r, order)) != 0)) {   /* step 1 */
        f = frame_of(room_zone(r), s->addr[n - 1]);
        stock_n_set(r, order, n - 1);
    } else {
        f = room_alloc_slow(r, rt, order, &reason, &step);
        if (f != NIL) {   /* owner counters: no shared line on the atomic path; pages */
            ctr_add_owner(&r->st.slow_allocs, (uint64_t)1 << order);
            ctr_add_owner(&r->st.by_step[step], (uint64_t)1 << order);
        }
    }
    if (likely(f != NIL)) {
        res->addr = room_hand_out(r, f, order);
        if (order)
            ctr_add_owner(&r->st.allocs_extra, ((uint64_t)1 << order) - 1);
    } else {
        ctr_inc(&r->st.fail_by_reason[reason]);
        ctr_add_owner(&r->st.allocs_extra, (uint64_t)-1);
    }
    room_leave(&r->seq);
    /* a success after failed steps (refill, then reserve or reclaim) is a success */
    res->reason = f == NIL ? reason : LAB_R_NONE;
    if (unlikely(f == NIL)) {
        res->step = LAB_STEP_NONE;
        alloc_failed(r->arena, gfp | r->gfp_or, asked, order, reason);
        return;
    }
    res->step = step;
    if (unlikely(r->page_hooks))
        page_hook_alloc(r->arena, res->addr, order);
    if (may(rt, R_ZERO))
        memset(res->addr, 0, (size_t)LAB_PAGE_SIZE << order);
}

void lab_room_alloc_result(lab_room *r, lab_gfp_t gfp, lab_result *res)
{
    room_alloc(r, gfp, 0, res);
}


static NOINLINE void *room_alloc_fallback(lab_room *r, lab_gfp_t gfp, unsigned order)
{
    lab_result res;
    room_alloc(r, gfp, order, &res);
    return res.addr;
}

/* Step 1 on its own, with nothing else in the way: a state store and the
 * stock's count, two stores.  Release builds mark nothing: a pop takes at
 * most the top block of one stock, and room_steal never takes a top
 * block, so it need not know whether a pop is in flight; nor do they count
 * the call (room_allocs derives it from the stocks' counts).  Each store
 * an allocation makes holds back the stores after it while a touch of the
 * page misses (docs/DESIGN.md).  Debug builds mark the call (odd), for
 * their check of a handler that re-entered the room.  A destroyed room has
 * an empty stock, so it takes the fallback and is reported there.
 * `order` is a constant where it is inlined with 0. */
static ALWAYS_INLINE void *room_alloc_fast(lab_room *r, lab_gfp_t gfp, unsigned order)
{
    /* Debug builds: the owner check first (a refusal is reported by the
     * fallback), and the page hooks after the pop. */
    if (likely(r != NULL) && (!LAB_DEBUG_ON || room_owner_fault(r) == NULL) && likely(order <= r->max_order)) {
        struct room_stock *s = &r->stk[order];
        /* debug builds: the mark in one instruction (owner.h) */
        uint64_t seq = LAB_DEBUG_ON ? atomic_fetch_add_explicit(&r->seq, 1, memory_order_relaxed) : 0;
        if (LAB_DEBUG_ON)
            atomic_signal_fence(memory_order_seq_cst);
        size_t n = atomic_load_explicit(&s->n, memory_order_relaxed);
        /* an empty stock and a closed gate fail the same compare; a request
         * to zero its page is the fallback's (the memset is not inlined) */
        if (likely(n > atomic_load_explicit(&r->alloc_floor, memory_order_relaxed)) && likely(!(gfp & LAB_GFP_ZERO))) {
            char *p = stock_addr(r, order)[n - 1];
            struct page *d = room_desc(r, p);
            lab_assert(pg_room(&r->arena->zone, frame_of(&r->arena->zone, p)) == r->id &&
                       d == &r->pages[frame_of(&r->arena->zone, p)]);
            /* A block of the room's own array is marked handed out (the
             * store keeps the room half).  A window's block is handed out
             * already: its tag_pop is no tag, and it goes as it is, since
             * a store of the same tag would only hold back the caller's
             * stores behind it (docs/DESIGN.md, section 8).  A window's
             * entry is unread until here: anything that is neither is the
             * fallback's to refuse. */
            uint32_t t = atomic_load_explicit(&d->tag, memory_order_relaxed);
            bool own = t == s->tag_pop;
            if (likely(own))
                pg_set_tag(d, s->tag_out);
            if (likely(own || t == s->tag_in)) {
                atomic_store_explicit(&s->n, n - 1, memory_order_release);   /* seqlock data */
                if (LAB_DEBUG_ON)   /* even again, the word it was: room_allocs counts the pop */
                    atomic_store_explicit(&r->seq, seq, memory_order_release);
                if (LAB_DEBUG_ON && r->page_hooks)
                    page_hook_alloc(r->arena, p, order);
                return p;
            }
        }
        if (LAB_DEBUG_ON)
            atomic_store_explicit(&r->seq, seq, memory_order_relaxed);   /* nothing was touched */
    }
    return room_alloc_fallback(r, gfp, order);
}

void *lab_room_alloc(lab_room *r, lab_gfp_t gfp)
{
    return room_alloc_fast(r, gfp, 0);
}

/* One copy of the fast path per order, each with its order a constant, so
 * an order-3 pair costs about what an order-0 pair does. */
void *lab_room_alloc_pages(lab_room *r, lab_gfp_t gfp, unsigned order)
{
    _Static_assert(ROOM_ORDERS == 4, "one case per order a room serves");
    switch (order) {
    case 0: return room_alloc_fast(r, gfp, 0);
    case 1: return room_alloc_fast(r, gfp, 1);
    case 2: return room_alloc_fast(r, gfp, 2);
    case 3: return room_alloc_fast(r, gfp, 3);
    default: return room_alloc_fallback(r, gfp, order);
    }
}

/* Up to n order-0 pages: whole runs off the stock; with the stock empty,
 * remote frees straight from the lanes (room_take_out), and the slow path
 * only when they have none to give (which refills the stock by a batch).
 * Stops at the first failure and returns how many it placed, as Linux's
 * alloc_pages_bulk.  Only the first page may take steps 6-8 (re-commit,
 * reclaim, waiting) and NOFAIL, as there: the pages the call has placed
 * count against the room's quota and the zone's free pages, and only its
 * caller can give them back, so a walk that waited for the next one (n
 * above the quota, or above what the arena can hold) waited for its own
 * pages: for wait_timeout_ms, or for ever with NOFAIL.  The caller has a
 * page to work with and calls again for more. */
size_t lab_room_alloc_bulk(lab_room *r, lab_gfp_t gfp, void **pages, size_t n)
{
    if (unlikely(r == NULL || pages == NULL || n == 0))
        return 0;
    const lab_gfp_t asked = gfp;   /* the stats' class (alloc_failed) */
    struct rights rt = gfp_rights(gfp);
    gfp = rt.gfp;
    if (unlikely(!room_enter(r, &r->seq, "lab_room_alloc_bulk on a destroyed room")))
        return 0;
    struct room_stock *s = &r->stk[0];
    size_t got = 0;
    int reason = LAB_R_NONE;
    bool stolen = unlikely(!room_side_back(r, rt));
    /* The walks after the first page placed: the same request, but neither
     * NOFAIL nor steps 6-8 (it may still wait for the zone's lock). */
    struct rights rest = rt;
    rest.gfp &= ~(lab_gfp_t)LAB_GFP_NOFAIL;
    rest.r &= ~(uint32_t)(R_BLOCK | R_NOFAIL);
    while (got < n) {
        size_t have = stolen ? 0 : atomic_load_explicit(&s->n, memory_order_relaxed);
        if (have == 0) {
            /* step 2 without the stock, else the whole walk; a window the
             * walk opened and the loop emptied closes first (room_take_out
             * reads the lanes from their tails).  While a steal holds the
             * stocks, one block at a time by the steps that do not touch
             * them, as a single request would. */
            if (!stolen) {
                room_window_close(r);
                size_t took = room_take_out(r, pages + got, n - got);
                if (took) {
                    got += took;
                    continue;
                }
            }
            int step = LAB_STEP_ROOM;
            const struct rights walk = got ? rest : rt;
            uint32_t f = stolen ? room_alloc_stolen(r, walk, 0, &reason, &step)
                                : room_alloc_slow(r, walk, 0, &reason, &step);
            if (f == NIL)
                break;
            ctr_inc(&r->st.slow_allocs);
            ctr_inc(&r->st.by_step[step]);
            ctr_inc(&r->st.allocs_extra);   /* now: the quota counts what is out */
            pages[got++] = room_hand_out(r, f, 0);
            continue;
        }
        size_t k = have < n - got ? have : n - got;
        /* As k fast pops, top first.  In locals: each state store is an
         * atomic store, after which the compiler would read the room's
         * fields again. */
        char *const *top = stock_addr(r, 0) + have - 1;   /* a window the slow path opened, too */
        void **out = pages + got;
        const uintptr_t bias = r->desc_bias;
        const uint32_t tag = s->tag_out, tag_in = s->tag_in;
        size_t i;
        for (i = 0; i < k; i++) {
            char *p = top[-(ptrdiff_t)i];
            struct page *d = desc_at(bias, p);
            if (unlikely(atomic_load_explicit(&d->tag, memory_order_relaxed) != tag_in))
                break;   /* refused below (a window's stale entry) */
            pg_set_tag(d, tag);
            out[i] = p;
        }
        stock_n_set(r, 0, have - i);
        ctr_add_owner(&r->st.allocs_extra, i);
        got += i;
        if (i < k)
            room_stock_refuse(r, 0);
    }
    ctr_add_owner(&r->st.allocs_extra, (uint64_t)-1);   /* the call itself counts one (seq) */
    if (got < n)
        ctr_inc(&r->st.fail_by_reason[reason]);
    room_leave(&r->seq);
    if (got == 0)
        alloc_failed(r->arena, gfp | r->gfp_or, asked, 0, reason);
    if (unlikely(r->page_hooks) || may(rt, R_ZERO))
        for (size_t i = 0; i < got; i++) {
            if (r->page_hooks)
                page_hook_alloc(r->arena, pages[i], 0);
            if (may(rt, R_ZERO))
                memset(pages[i], 0, LAB_PAGE_SIZE);
        }
    return got;
}
