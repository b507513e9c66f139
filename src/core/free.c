/*
 * free.c - the way back: every free, arena and room alike.  lab_free_pages
 * finds the block's owner (the zone, or a room by zone.room_of) and claims
 * the block; a room's own free is a push on its stock.  Bad input is
 * reported here (docs/BAD_INPUT.md).
 */
#include "owner.h"
#include "fault.h"
#include "lane.h"

/* ---- free ---------------------------------------------------------------
 * Any context.  The descriptor says what the block is, so a free never
 * guesses: it claims the block with one CAS on its state (ALLOCATED ->
 * DEFERRED), which makes a racing double free lose cleanly, then returns it
 * to its room or to the zone without ever waiting for a lock. */
static NOINLINE void free_misuse(struct lab_arena *a, void *addr, unsigned order)
{
    struct zone *z = &a->zone;
    char *p = addr;
    if (p < z->base || p >= z->base + ((size_t)z->nr_pages << PAGE_SHIFT)) {
        misuse(a, LAB_EFOREIGN, addr, NIL, "pointer outside the arena");
        return;
    }
    uint32_t frame = frame_of(z, addr);
    if (((uintptr_t)addr & (LAB_PAGE_SIZE - 1)) != 0) {
        misuse(a, LAB_EUNALIGNED, addr, frame, "pointer not page aligned");
        return;
    }
    if (order > z->max_order) {
        misuse(a, LAB_EBADORDER, addr, frame, "order above the arena's max_order");
        return;
    }
    struct page *pg = &z->pages[frame];
    unsigned st = pg_state(pg);
    if (st == PG_ALLOCATED && a->guard && (pg->prev & ~0xffu) == GUARD_TAG) {
        misuse(a, LAB_EINTERIOR, addr, frame, "pointer inside a guarded block, not at the caller's first page");
        return;
    }
    if (st == PG_ALLOCATED && pg_order(pg) == order) {
        /* free_claim's look found the block not out, and it is out again */
        misuse(a, LAB_EDOUBLEFREE, addr, frame, "block freed twice (and handed out again since)");
        return;
    }
    if (st == PG_ALLOCATED) {
        misuse(a, LAB_EWRONGORDER, addr, frame, pg_order(pg) > order ? "freed with a smaller order than allocated"
                                                                     : "freed with a larger order than allocated");
        return;
    }
    if (st != PG_TAIL) {
        misuse(a, LAB_EDOUBLEFREE, addr, frame, "block is already free");
        return;
    }
    if (a->guard && frame_is_guarded_head(z, frame)) {
        misuse(a, LAB_EWRONGORDER, addr, frame, "guarded block freed with an order other than allocated");
        return;
    }
    if (free_classify_tail(z, frame) == LAB_EINTERIOR)
        misuse(a, LAB_EINTERIOR, addr, frame, "pointer inside a block, not at its head");
    else
        misuse(a, LAB_EDOUBLEFREE, addr, frame, "page is already free (merged into a larger block)");
}

/* Validate and claim a block for freeing (ALLOCATED -> DEFERRED), run the
 * debug hooks.  Returns the order to free with (a guarded block's real one),
 * or -1 after reporting misuse. */
static inline int free_claim(struct lab_arena *a, void *addr, unsigned order, uint32_t *framep)
{
    struct zone *z = &a->zone;
    uintptr_t off = (uintptr_t)addr - (uintptr_t)z->base;
    if (unlikely(off >= ((uintptr_t)z->nr_pages << PAGE_SHIFT) || (off & (LAB_PAGE_SIZE - 1)) || order > z->max_order))
        goto bad;
    pause_point(PP_FREE_CLAIM);
    uint32_t frame = (uint32_t)(off >> PAGE_SHIFT);
    struct page *pg = &z->pages[frame];
    unsigned real = order;
    if (unlikely(a->guard) && order >= 1 && order + 2 <= z->max_order &&
        !(pg_state(pg) == PG_ALLOCATED && pg_order(pg) == order && pg->prev == NIL)) {
        /* a guarded block (an unguarded one, served to a non-blocking
         * request, is an ALLOCATED head of the caller's order): the caller's
         * pages are the second quarter of a block of order + 2, whose head
         * says so */
        uint32_t head = frame - (1u << order);
        if (frame < (1u << order) || (head & ((4u << order) - 1)) || z->pages[head].prev != (GUARD_TAG | order) ||
            pg_order(&z->pages[head]) != order + 2)
            goto bad;
        frame = head;
        pg = &z->pages[head];
        real = order + 2;
    } else if (unlikely(pg_order(pg) != order || (a->guard && pg->prev != NIL))) {
        goto bad;
    }
    /* A room block, in an arena whose frees do not claim room blocks, comes
     * here only when free_room_block found it not out (or not of this
     * order): misuse.  It is not claimed: the claim could win against its
     * owner handing it out again since that look, and the take-back refuses
     * a claimed block (not what a free leaves in this arena), so the block
     * would be lost to its new holder and to the room. */
    if (unlikely(!a->strict_free) && pg_room(z, frame) != 0)
        goto bad;
    if (unlikely(!pg_claim(pg, PG_ALLOCATED, PG_DEFERRED)))
        goto bad;
    if (unlikely(a->page_hooks)) {
        page_hook_free(a, addr, order);
        if (real != order) {
            /* Lifting the guards takes system calls, which this context may
             * not make: the block waits for one that may (guard_flush).
             * Freed now, for the stats: the pages it handed out. */
            ctr_add_shared(&a->st.frees, (uint64_t)1 << order);
            guard_defer(a, frame);
            return -1;
        }
    }
    *framep = frame;
    return (int)real;
bad:
    free_misuse(a, addr, order);
    return -1;
}

static void free_claimed(struct lab_arena *a, uint32_t frame, unsigned order)
{
    unsigned id = pg_room(&a->zone, frame);
    if (id != 0) {
        room_free_remote(a, room_by_id(a, id), &frame, 1, order);
    } else {
        ctr_add_shared(&a->st.frees, (uint64_t)1 << order);   /* pages */
        zone_free_block(a, frame, order);
    }
}

/* A block of a room, freed by a context that may not be its owner: the
 * hand-off (handoff.c).  In the default mode the freer writes no descriptor;
 * it checks what it can without one (in the arena, aligned, an order a room
 * serves) and the owner checks the rest when it takes the block back.
 * Returns the room's id, or 0 when the block is not a room's (or strict
 * mode wants the claim by CAS): the caller takes the zone's path. */
static inline unsigned free_room_block(struct lab_arena *a, void *addr, unsigned order, uint32_t *framep)
{
    struct zone *z = &a->zone;
    uintptr_t off = (uintptr_t)addr - (uintptr_t)z->base;
    if (unlikely(off >= ((uintptr_t)z->nr_pages << PAGE_SHIFT) || (off & (LAB_PAGE_SIZE - 1)) ||
                 order >= a->room_orders || a->strict_free))
        return 0;
    uint32_t frame = (uint32_t)(off >> PAGE_SHIFT);
    unsigned id = pg_room(z, frame);
    if (id == 0 || (frame & ((1u << order) - 1)))
        return 0;
    if (unlikely(a->page_hooks)) {
        /* The hooks write or close the whole block: a block that is not
         * out with this order goes to free_claim, which reports it, or
         * they would reach pages still the caller's (the take-back
         * checks the rest). */
        const struct page *p = &z->pages[frame];
        if (pg_state(p) != PG_ALLOCATED || pg_order(p) != order)
            return 0;
        page_hook_free(a, addr, order);
    }
    *framep = frame;
    return id;
}

static NOINLINE void free_pages_slow(lab_arena *a, void *addr, unsigned order)
{
    uint32_t frame;
    unsigned id = free_room_block(a, addr, order, &frame);
    if (id != 0) {
        room_free_remote(a, room_by_id(a, id), &frame, 1, order);
        return;
    }
    int real = free_claim(a, addr, order, &frame);
    if (real < 0)
        return;
    free_claimed(a, frame, (unsigned)real);
    debug_check_every_op(a, false);
}

/* A room block, no hooks, not strict (a->room_free_fast says the last
 * two), goes to its room in one call (room_hand_off); everything else
 * takes free_pages_slow.  Debug builds take this path for every free,
 * with strict mode's claim and the page hooks (free_claim) before the
 * push. */
static NOINLINE void free_pages(lab_arena *a, void *addr, unsigned order)
{
    if (unlikely(a == NULL))
        return;
    struct zone *z = &a->zone;
    uintptr_t off = (uintptr_t)addr - (uintptr_t)z->base, f = off >> PAGE_SHIFT;
    unsigned id;
    if (likely(off < z->bytes && order < a->room_orders && !(off & (((uintptr_t)LAB_PAGE_SIZE << order) - 1)) &&
               a->room_free_fast && (id = pg_room(z, (uint32_t)f)) != 0)) {
        uint32_t frame = (uint32_t)f;
        if (LAB_DEBUG_ON && free_claim(a, addr, order, &frame) < 0)
            return;   /* reported */
        room_hand_off(a, room_by_id(a, id), frame, order);
        if (LAB_DEBUG_ON)
            debug_check_every_op(a, false);
        return;
    }
    if (unlikely(addr == NULL))   /* as Linux's free_pages(0) */
        return;
    free_pages_slow(a, addr, order);
}

/* The hand-off's common case, whole: an order-0 block of the room that
 * this thread's last single free went to, appended to the lane it used
 * (lane.h), with no call and no stack frame.  A lane is remembered only
 * by room_hand_off, which only arenas with a->room_free_fast reach, so a
 * match says that too (debug builds, where every arena takes it, compile
 * this path out).  Everything else, and an append that fails (the lane
 * full, the room dead, or a push of this thread's on the lane that a
 * signal handler interrupted), goes the whole way (free_pages). */
void lab_free_pages(lab_arena *a, void *addr, unsigned order)
{
    if (!LAB_DEBUG_ON && likely(a != NULL) && likely(order == 0)) {
        struct zone *z = &a->zone;
        /* a pointer inside a page lands far above nr_pages */
        uintptr_t f = block_index((uintptr_t)addr - (uintptr_t)z->base, 0);
        unsigned id;
        struct lab_room *r;
        struct room_lane *l;
        if (likely(f < z->nr_pages) && likely((id = atomic_load_explicit(&z->room_of[f], memory_order_relaxed)) != 0) &&
            lane_hit(r = room_by_id(a, id), (struct thread_area *)plat_thread_self(), &l)) {
            const uint32_t frame = (uint32_t)f;
            char *const page = addr;
            if (likely(lane_append(r, l, &frame, 1, 0, &page)))
                return;
        }
    }
    free_pages(a, addr, order);
}

/* Runs of blocks of one room go into this thread's lane of it with one
 * publication, or its ring with one reservation (up to BULK_RUN at a
 * time); everything else is freed one by one. */
#define BULK_RUN 64

struct bulk_run {
    uint32_t frames[BULK_RUN];
    uint32_t n;
    unsigned room, order;
};

static void run_push(struct lab_arena *a, struct bulk_run *run)
{
    struct lab_room *r = room_by_id(a, run->room);
    if (r == NULL || !room_lane_push_n(r, run->frames, run->n, run->order))
        room_free_remote(a, r, run->frames, run->n, run->order);
    run->n = 0;
}

static inline void run_add(struct lab_arena *a, struct bulk_run *run, unsigned id, uint32_t frame)
{
    if (run->n && (id != run->room || run->n == BULK_RUN))
        run_push(a, run);
    run->room = id;
    run->frames[run->n++] = frame;
}

/* The common case, plain room blocks in a release build that is neither
 * strict nor hooked (a->room_free_fast): per page one compare for bounds
 * and alignment (the offset rotated, as the owner's free does; a NULL
 * lands far above too) and the room_of lookup, with the checks the arena
 * decides once made once, and the run's fields in registers.  Stops at
 * the first page that is anything else and returns its index; the caller
 * goes on from there with the run.  `order` is a constant where inlined. */
static ALWAYS_INLINE size_t free_bulk_rooms_order(struct lab_arena *a, void *const *pages, size_t n,
                                                  struct bulk_run *run, unsigned order)
{
    struct zone *z = &a->zone;
    const uintptr_t span = blocks_in(z->nr_pages, order), base = (uintptr_t)z->base;
    const _Atomic uint16_t *const room_of = z->room_of;
    uint32_t k = run->n;
    unsigned room = run->room;
    size_t i;
    for (i = 0; i < n; i++) {
        if (i + 4 < n)   /* overlap the room_of lookups' cache misses */
            room_of_prefetch_at(room_of, base, pages[i + 4]);
        uintptr_t b = block_index((uintptr_t)pages[i] - base, order);
        if (unlikely(b >= span))
            break;
        uint32_t frame = (uint32_t)(b << order);
        unsigned id = atomic_load_explicit(&room_of[frame], memory_order_relaxed);
        if (unlikely(id == 0))
            break;
        if (unlikely(id != room || k == BULK_RUN)) {   /* a new run */
            if (k != 0) {
                run->n = k;
                run->room = room;
                run_push(a, run);
                k = 0;
            }
            room = id;
        }
        run->frames[k++] = frame;
    }
    run->n = k;
    run->room = room;
    return i;
}

static size_t free_bulk_rooms(struct lab_arena *a, void *const *pages, size_t n, struct bulk_run *run)
{
    _Static_assert(ROOM_ORDERS == 4, "one case per order a room serves");
    switch (run->order) {
    case 0: return free_bulk_rooms_order(a, pages, n, run, 0);
    case 1: return free_bulk_rooms_order(a, pages, n, run, 1);
    case 2: return free_bulk_rooms_order(a, pages, n, run, 2);
    default: return free_bulk_rooms_order(a, pages, n, run, 3);
    }
}

void lab_free_pages_bulk(lab_arena *a, void *const *pages, size_t n, unsigned order)
{
    if (unlikely(a == NULL || pages == NULL))
        return;
    struct zone *z = &a->zone;
    struct bulk_run run;
    run.n = 0;
    run.room = 0;
    run.order = order;
    size_t i = 0;
    if (!LAB_DEBUG_ON && likely(a->room_free_fast && order < a->room_orders))
        i = free_bulk_rooms(a, pages, n, &run);
    for (; i < n; i++) {
        uint32_t frame;
        if (pages[i] == NULL)
            continue;
        if (i + 4 < n && pages[i + 4])
            room_of_prefetch(z, pages[i + 4]);
        unsigned id = free_room_block(a, pages[i], order, &frame);
        if (id == 0) {
            int real = free_claim(a, pages[i], order, &frame);
            if (real < 0)
                continue;
            id = pg_room(z, frame);
            if (id == 0) {
                free_claimed(a, frame, (unsigned)real);
                continue;
            }
        }
        run_add(a, &run, id, frame);
    }
    if (run.n)
        run_push(a, &run);
    debug_check_every_op(a, false);
}

/* ---- owner free -------------------------------------------------------------- */
static NOINLINE void room_free_misuse(struct lab_room *r, void *page, unsigned order)
{
    struct zone *z = room_zone(r);
    uintptr_t off = (uintptr_t)page - (uintptr_t)z->base;
    if (page == NULL) {
        misuse(r->arena, LAB_EFOREIGN, page, NIL, "lab_room_free(NULL)");
        return;
    }
    if (off >= ((uintptr_t)z->nr_pages << PAGE_SHIFT)) {
        misuse(r->arena, LAB_EFOREIGN, page, NIL, "pointer outside the arena");
        return;
    }
    uint32_t f = (uint32_t)(off >> PAGE_SHIFT);
    struct page *p = &z->pages[f];
    unsigned st = pg_state(p);
    if (off & (LAB_PAGE_SIZE - 1))
        misuse(r->arena, LAB_EUNALIGNED, page, f, "pointer not page aligned");
    else if (order > r->max_order)
        misuse(r->arena, LAB_EBADORDER, page, f, "order above the orders this room serves");
    else if (st == PG_ALLOCATED && r->arena->guard && (p->prev & ~0xffu) == GUARD_TAG)
        misuse(r->arena, LAB_EINTERIOR, page, f, "pointer inside a guarded block, not at its first page");
    else if (st == PG_ALLOCATED && (pg_room(z, f) != r->id || room_by_id(r->arena, r->id) != r))
        misuse(r->arena, LAB_ENOTROOMPAGE, page, f, "page was not handed out by this room (use lab_free_pages)");
    else if (st == PG_ALLOCATED)
        misuse(r->arena, LAB_EWRONGORDER, page, f, "room block freed with an order other than allocated");
    else if (st == PG_TAIL && r->arena->guard && frame_is_guarded_head(z, f))
        misuse(r->arena, LAB_ENOTROOMPAGE, page, f, "page was not handed out by this room (use lab_free_pages)");
    else if (st == PG_TAIL && free_classify_tail(z, f) == LAB_EINTERIOR)
        misuse(r->arena, LAB_EINTERIOR, page, f, "pointer inside a block, not at its head");
    else if (st == PG_TAIL)
        misuse(r->arena, LAB_EDOUBLEFREE, page, f, "page is already free (merged into a larger block)");
    else
        misuse(r->arena, LAB_EDOUBLEFREE, page, f, "page is already free");
}

/* Everything that is not a plain push: checks that failed, strict mode,
 * the reserve to refill, a drain to do, debug hooks, a dead room. */
void room_free_slow(lab_room *r, void *page, unsigned order)
{
    if (unlikely(!r))
        return;
    uintptr_t off = (uintptr_t)page - (uintptr_t)r->base;
    uint32_t f = (uint32_t)(off >> PAGE_SHIFT);
    struct zone *z = room_zone(r);
    if (unlikely(off >= ((uintptr_t)r->nr_pages << PAGE_SHIFT) || (off & (LAB_PAGE_SIZE - 1)) ||
                 order > r->max_order)) {
        room_free_misuse(r, page, order);
        return;
    }
    struct page *pg = &r->pages[f];
    /* A destroyed room's id may be a later room's by now: a block with
     * that id is then the later room's, not this one's. */
    if (unlikely(pg_state(pg) != PG_ALLOCATED || pg_room(z, f) != r->id || pg_order(pg) != order) ||
        unlikely(atomic_load_explicit(&r->dead, memory_order_relaxed) && room_by_id(r->arena, r->id) != r)) {
        room_free_misuse(r, page, order);
        return;
    }
    if (likely(room_enter(r, &r->seq_free, "lab_room_free on a destroyed room"))) {
        ctr_inc(&r->st.slow_frees);   /* room_allocs tells the fast frees from these */
    } else {
        /* Reported; the block itself was handed out in good faith, so it
         * goes where a late lab_free_pages of it would: to the zone. */
        if (atomic_load_explicit(&r->dead, memory_order_relaxed)) {
            /* room_give_up takes a strict-mode block as claimed by its
             * freer, as a remote free claims it: so claim it here too, or
             * it would reach the zone's deferred list still ALLOCATED. */
            if (r->strict && !pg_claim(pg, PG_ALLOCATED, PG_DEFERRED)) {
                room_free_misuse(r, page, order);
                return;
            }
            if (unlikely(r->page_hooks))
                page_hook_free(r->arena, page, order);
            room_give_up(r->arena, r, &f, 1, order);
        }
        return;
    }
    /* Reclaim may hold the stocks (a steal), never the reserve: a block
     * the reserve lacks goes there all the same (else blocks the reserve
     * lent out while a steal lasted would go on to the zone with the next
     * one, and the reserve would shrink steal by steal); any other goes
     * the way of a remote free, counted there and not here. */
    bool mine = room_owner_side_mine(r), to_reserve = order == 0 && rd(&r->nr_reserve) < r->reserve_target;
    if (unlikely(!mine) && !to_reserve) {
        ctr_add_owner(&r->st.frees_extra, (uint64_t)-1);
        room_leave(&r->seq_free);
        if (r->strict && !pg_claim(pg, PG_ALLOCATED, PG_DEFERRED)) {
            room_free_misuse(r, page, order);
            return;
        }
        if (unlikely(r->page_hooks))
            page_hook_free(r->arena, page, order);
        room_free_remote(r->arena, r, &f, 1, order);
        return;
    }
    /* The stock takes pushes again; and a window may have held this very
     * block (another context freed it too): closing marked it ROOM.
     * Strict mode arbitrates against a remote free of the same block. */
    if ((mine && room_window_close(r) && unlikely(pg_state(pg) != PG_ALLOCATED)) ||
        (r->strict && !pg_claim(pg, PG_ALLOCATED, PG_ROOM))) {
        ctr_add_owner(&r->st.frees_extra, (uint64_t)-1);   /* a call that took nothing back */
        room_leave(&r->seq_free);
        room_free_misuse(r, page, order);
        return;
    }
    if (unlikely(r->page_hooks))
        page_hook_free(r->arena, page, order);
    struct room_stock *s = &r->stk[order];
    if (unlikely(to_reserve))
        reserve_push(r, f);
    else
        stock_push(r, order, f);
    ctr_add_owner(&r->st.frees_extra, ((uint64_t)1 << order) - 1);
    if (!mine) {
        room_leave(&r->seq_free);   /* the stocks are reclaim's: no drain */
        return;
    }
    if (unlikely(atomic_load_explicit(&r->drain_wanted, memory_order_relaxed))) {
        atomic_store_explicit(&r->drain_wanted, false, memory_order_relaxed);
        for (unsigned o = 0; o <= r->max_order; o++)
            room_drain(r, o, rd(&r->stk[o].n) > r->stk[o].batch ? rd(&r->stk[o].n) - r->stk[o].batch : 0);
        room_update_free_limit(r);
    } else if (rd(&s->n) > s->high) {
        room_drain(r, order, s->batch);
    }
    room_leave(&r->seq_free);
}

/* Debug builds, the owner's free fast path: what room_free_slow adds in
 * strict mode and with page hooks.  The claim by CAS arbitrates against a
 * remote free of the same block (which claims it too in strict mode);
 * false when that free won, and the slow path reports it. */
static NOINLINE bool room_free_fast_claim(struct lab_room *r, struct page *pg, void *page, unsigned order)
{
    lab_assert(r->strict);   /* every debug build is strict (arena.c) */
    if (!pg_claim(pg, PG_ALLOCATED, PG_ROOM))
        return false;
    if (r->page_hooks)
        page_hook_free(r->arena, page, order);
    return true;
}

/* The owner's free of a block: a push, a state store and the sequence
 * word's store that counts the call; `order` is a constant where it is
 * inlined with 0.  As the allocation's fast path, release builds do not
 * mark the entry: a push writes above the stock's top, which room_steal
 * never takes.  Debug builds mark it, and compile their owner check, claim
 * and page hooks in around it. */
static ALWAYS_INLINE void room_free_fast(lab_room *r, void *page, unsigned order)
{
    if (likely(r != NULL) && (!LAB_DEBUG_ON || room_owner_fault(r) == NULL)) {
        /* debug builds: the mark in one instruction (owner.h) */
        uint64_t seq = LAB_DEBUG_ON ? atomic_fetch_add_explicit(&r->seq_free, 1, memory_order_relaxed) : 0;
        if (LAB_DEBUG_ON)
            atomic_signal_fence(memory_order_seq_cst);
        /* in the arena and aligned to its order: below span (block_index) */
        uintptr_t b = block_index((uintptr_t)page - (uintptr_t)r->base, order), f = b << order;
        struct room_stock *s = &r->stk[order];
        size_t n = rd(&s->n);
        /* The tag proves state, order and room at once, and that the order
         * is one the room serves: the block was handed out with it.  free_limit is the order-0 high, or 0 when the
         * gates are closed; higher orders have their own high. */
        size_t limit = atomic_load_explicit(&r->free_limit, memory_order_relaxed);
        if (order)
            limit = limit ? s->high : 0;
        uint32_t tag;
        if (likely(b < s->span && (tag = atomic_load_explicit(&r->pages[f].tag, memory_order_relaxed)) == s->tag_out &&
                   n < limit) &&
            (!LAB_DEBUG_ON || room_free_fast_claim(r, &r->pages[f], page, order))) {
            stock_push_addr(r, order)[n] = page;
            if (!LAB_DEBUG_ON)   /* (debug builds: the claim above) */
                pg_set_tag(&r->pages[f], tag_allocated_to_room(tag));
            wr(&s->n, n + 1);
            /* even again, and seq_free / 2 grows by the block's pages
             * (release builds: one add to memory, platform.h) */
            if (LAB_DEBUG_ON)
                atomic_store_explicit(&r->seq_free, seq + ((uint64_t)2 << order), memory_order_release);
            else
                plat_owner_add(&r->seq_free, (uint64_t)2 << order);
            return;
        }
        if (LAB_DEBUG_ON)
            atomic_store_explicit(&r->seq_free, seq, memory_order_relaxed);   /* nothing was touched */
    }
    room_free_slow(r, page, order);
}

/* The owner's free: a push and a state store.  Any condition that needs
 * more goes to room_free_slow (free_limit is 0 when one holds for the
 * room), so this stays a leaf function that saves no registers. */
void lab_room_free(lab_room *r, void *page)
{
    room_free_fast(r, page, 0);
}

/* One copy of the fast path per order, each with its order a constant. */
void lab_room_free_pages(lab_room *r, void *page, unsigned order)
{
    _Static_assert(ROOM_ORDERS == 4, "one case per order a room serves");
    switch (order) {
    case 0: room_free_fast(r, page, 0); return;
    case 1: room_free_fast(r, page, 1); return;
    case 2: room_free_fast(r, page, 2); return;
    case 3: room_free_fast(r, page, 3); return;
    default: room_free_slow(r, page, order); return;
    }
}

/* lab_room_free_bulk's common run, release builds: as many fast frees,
 * pushed with one store of the count and one of the sequence word.  Unlike
 * a single fast free it marks the call (odd seq_free) for the time of the
 * run: lab_check allows a stock one block in motion, not 32, and reclaim
 * then leaves the room alone.  Stops at the first page that is not a
 * block the room handed out (NULL, a double free in the same array: its
 * first copy is in stock by then) and returns its index; lab_room_free
 * deals with it. */
static size_t room_free_run(lab_room *r, void *const *pages, size_t n)
{
    uint64_t seq = atomic_load_explicit(&r->seq_free, memory_order_relaxed);
    atomic_store_explicit(&r->seq_free, seq + 1, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);   /* the mark before the gate's read (room_steal) */
    struct room_stock *s = &r->stk[0];
    size_t top = rd(&s->n), limit = atomic_load_explicit(&r->free_limit, memory_order_relaxed), i = 0;
    if (likely(top < limit)) {
        if (n > limit - top)
            n = limit - top;
        lab_assert(atomic_load_explicit(&r->win, memory_order_relaxed) == NULL);   /* free_limit is 0 then */
        char **dst = r->addr0 + top, *const base = r->base;
        struct page *const desc = r->pages;
        const uintptr_t span = s->span;
        const uint32_t tag = s->tag_out, in = tag_allocated_to_room(tag);
        for (; i < n; i++) {
            uintptr_t b = block_index((uintptr_t)pages[i] - (uintptr_t)base, 0);
            if (unlikely(b >= span) || unlikely(atomic_load_explicit(&desc[b].tag, memory_order_relaxed) != tag))
                break;
            dst[i] = pages[i];
            pg_set_tag(&desc[b], in);
        }
        wr(&s->n, top + i);
    }
    /* even again, and seq_free / 2 grows by the pages pushed */
    atomic_store_explicit(&r->seq_free, seq + 2 * i, memory_order_release);
    return i;
}

void lab_room_free_bulk(lab_room *r, void *const *pages, size_t n)
{
    size_t i = 0;
    if (unlikely(pages == NULL))
        return;   /* as lab_free_pages_bulk */
    if (!LAB_DEBUG_ON && likely(r != NULL))
        i = room_free_run(r, pages, n);
    for (; i < n; i++)
        if (pages[i])
            lab_room_free(r, pages[i]);
}
