/*
 * room.c - exclusive per-context stocks of blocks of orders 0..3.
 *
 * A room belongs to one context: a thread, or a signal handler (the user
 * space interrupt).  Its owner pops and pushes block heads on private arrays,
 * one per order, with plain loads and stores: no lock, no atomic
 * read-modify-write.  The owner also writes the block's state byte on every
 * allocation and free; that descriptor line stays in the owner's cache,
 * because no other context writes it in the common case.
 *
 * The hand-off.  Other contexts free room blocks with lab_free_pages.  They
 * find the room in zone.room_of (written only when a block moves between the
 * zone and a room, so the line is shared by every cache and never bounces),
 * and put the frame index in the room's return ring: a bounded queue of
 * 64-bit slots with many producers and one consumer, the owner.  A producer
 * reserves positions with one CAS and publishes each slot with a release
 * store; the owner takes every ready slot at once when its stock runs dry
 * (step 2), checks each block's descriptor (its own line again) and marks it
 * in stock.  Cache lines a handed-off page costs: the ring slot (8 per
 * line), once to the freer and once back; nothing else is shared.  A bulk
 * free reserves a whole run with one CAS.
 *
 * Why no descriptor write by the freer: the freer's CAS on the state byte
 * (how the zone tells a double free) would pull the line the owner just
 * wrote, and the owner would pull it back on its next allocation: two
 * transfers and a locked instruction per page.  The owner checks the state
 * instead when it takes the block back: a block freed twice is found in
 * stock already (LAB_EDOUBLEFREE, the duplicate dropped).  What escapes that
 * check is a second free of a block that the owner took back and handed out
 * again before the duplicate reached it: indistinguishable from a free by
 * the new holder.  LAB_ARENA_STRICT_FREE (and every debug build) restores the
 * claim by CAS on both sides for programs that want every double free caught.
 *
 * Why this is async-signal-safe: the recommended pattern gives each signal
 * handler its own room, so a handler never touches the stock of the code it
 * interrupted.  Everything a room does outside its stock is lock-free (the
 * ring, deferred zone frees) or bounded (a zone trylock that falls through,
 * never waits).  A producer interrupted between reserving and publishing
 * stops no one: the owner takes what is published before it and the rest
 * next time.  A handler that interrupts the owner of the *same* room would
 * corrupt it; debug builds catch that with the room's sequence word (odd
 * while the owner is inside an operation) and report LAB_ENOTOWNER.
 *
 * The reserve (order 0) is taken at creation and held in state RESERVE on a
 * private list, so no other room, flag or reclaim can reach it.  Blocks that
 * come back fill the stock first, and the reserve is topped up from the
 * stock when the stock has more than a batch, off the allocation's way.
 */
#include "internal.h"


static inline struct zone *room_zone(struct lab_room *r) { return &r->arena->zone; }
static inline size_t rd(_Atomic size_t *v) { return atomic_load_explicit(v, memory_order_relaxed); }
/* Release: the stocks' counts and nr_reserve are data of the owner's seqlock
 * (internal.h, room_enter); a plain move on x86. */
static inline void wr(_Atomic size_t *v, size_t x) { atomic_store_explicit(v, x, memory_order_release); }
static inline uint32_t tail_get(struct lab_room *r) { return atomic_load_explicit(&r->ring_tail, memory_order_relaxed); }
static inline void tail_set(struct lab_room *r, uint32_t t) { atomic_store_explicit(&r->ring_tail, t, memory_order_relaxed); }

void lab_room_config_init(lab_room_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof(*cfg));
    cfg->batch = 32;
    cfg->high = 4 * 32;
}

/* ---- owner bracket -------------------------------------------------------
 * The sequence words are odd while the owner is inside a call: seq for
 * allocations, seq_free for frees.  They let lab_check skip a room in
 * motion, let debug builds catch a context that is not the owner (another
 * thread, or a handler that interrupted the owner), and count the calls, so
 * the fast paths keep no counter of their own.  Plain stores on the owner's
 * side. */
bool room_enter_checked(struct lab_room *r, _Atomic uint64_t *word, const char *op)
{
    uint64_t s = atomic_load_explicit(word, memory_order_relaxed);
    if (unlikely(atomic_load_explicit(&r->dead, memory_order_relaxed))) {
        misuse(r->arena, LAB_EROOMDEAD, r, NIL, op);
        return false;
    }
    if (LAB_DEBUG_ON) {
        const void *me = (const void *)plat_thread_self(), *expect = NULL;
        if (!atomic_compare_exchange_strong(&r->owner, &expect, me) && expect != me) {
            misuse(r->arena, LAB_ENOTOWNER, r, NIL, "room used by a thread that does not own it");
            return false;
        }
        if ((atomic_load_explicit(&r->seq, memory_order_relaxed) |
             atomic_load_explicit(&r->seq_free, memory_order_relaxed)) & 1) {
            misuse(r->arena, LAB_ENOTOWNER, r, NIL,
                   "room re-entered: a signal handler interrupted its owner (give the handler its own room)");
            return false;
        }
    }
    atomic_store_explicit(word, s + 1, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    return true;
}

void room_update_free_limit(struct lab_room *r)
{
    bool slow = r->page_hooks || r->strict || atomic_load_explicit(&r->dead, memory_order_relaxed) ||
                atomic_load_explicit(&r->drain_wanted, memory_order_relaxed) ||
                atomic_load_explicit(&r->steal, memory_order_relaxed) ||
                atomic_load_explicit(&r->nr_reserve, memory_order_relaxed) < r->reserve_target;
    atomic_store_explicit(&r->free_limit, slow ? 0 : r->stk[0].high, memory_order_relaxed);
}

static inline void stock_push(struct lab_room *r, unsigned order, uint32_t frame)
{
    struct room_stock *s = &r->stk[order];
    size_t n = rd(&s->n);
    lab_assert(n < s->high + s->batch);
    pg_set_state(&r->pages[frame], PG_ROOM);
    s->frames[n] = frame;
    wr(&s->n, n + 1);
}

static inline void reserve_push(struct lab_room *r, uint32_t frame)
{
    struct page *p = &room_zone(r)->pages[frame];
    pg_set_state(p, PG_RESERVE);
    p->next = r->reserve_head;
    r->reserve_head = frame;
    wr(&r->nr_reserve, rd(&r->nr_reserve) + 1);
    room_update_free_limit(r);
}

/* ---- back to the zone ---------------------------------------------------
 * Never waits for the zone lock: the owner may be a signal handler.  With
 * the lock, the blocks go straight onto the free lists; without it, each
 * goes on the zone's deferred list for the holder to drain. */
static void return_to_zone(struct lab_room *r, const uint32_t *frames, size_t n, unsigned order)
{
    struct lab_arena *a = r->arena;
    struct zone *z = room_zone(r);
    if (zone_lock_atomic(z)) {
        for (size_t i = 0; i < n; i++)
            buddy_put(z, frames[i], order);
        zone_unlock_nowake(z);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        pg_set_state(&z->pages[frames[i]], PG_DEFERRED);
        atomic_store_explicit(&z->room_of[frames[i]], 0, memory_order_release);   /* after the state: lab_check */
        zone_free_block(a, frames[i], order);
    }
}

/* Send the `n` coldest blocks of a stock (its bottom) back to the zone. */
void room_drain(struct lab_room *r, unsigned order, size_t n)
{
    struct room_stock *s = &r->stk[order];
    size_t have = rd(&s->n);
    if (n > have)
        n = have;
    if (n == 0)
        return;
    return_to_zone(r, s->frames, n, order);
    memmove(s->frames, s->frames + n, (have - n) * sizeof(uint32_t));
    wr(&s->n, have - n);
    ctr_inc(&r->st.drains);
}

/* ---- the return ring ------------------------------------------------------ */

static inline uint64_t ring_slot(uint32_t seq, unsigned order, uint32_t frame)
{
    return ((uint64_t)(seq & RING_SEQ_MASK) << RING_SEQ_SHIFT) | ((uint64_t)order << 32) | frame;
}

/* How far a slot's sequence is ahead of `want` (negative: behind), in the
 * sequence's own width. */
static inline int32_t ring_seq_diff(uint64_t slot, uint32_t want)
{
    uint32_t d = ((uint32_t)(slot >> RING_SEQ_SHIFT) - want) & RING_SEQ_MASK;
    return (int32_t)(d << (32 - (64 - RING_SEQ_SHIFT))) >> (32 - (64 - RING_SEQ_SHIFT));
}

/* Free `frames` (claimed or not, see below) of a room that cannot take them
 * back: its ring is full or it is dead.  They go to the zone. */
static void room_give_up(struct lab_arena *a, struct lab_room *r, const uint32_t *frames, uint32_t n, unsigned order)
{
    bool strict = a->strict_free;
    struct zone *z = &a->zone;
    uint32_t gone = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct page *p = &z->pages[frames[i]];
        /* In strict mode the freer claimed it already (DEFERRED); else the
         * claim is made here, and a block that is not ALLOCATED any more
         * was freed twice. */
        if (!strict && !pg_claim(p, PG_ALLOCATED, PG_DEFERRED)) {
            misuse(a, LAB_EDOUBLEFREE, addr_of(z, frames[i]), frames[i], "room block is already free");
            continue;
        }
        atomic_store_explicit(&z->room_of[frames[i]], 0, memory_order_release);   /* after the state: lab_check */
        zone_free_block(a, frames[i], order);
        gone += 1u << order;
    }
    if (gone && r)
        atomic_fetch_add_explicit(&r->gone, gone, memory_order_relaxed);
}

/* A dead room's ring is emptied by whoever finds it so (destroy, or a late
 * producer): entries go to the zone, tombstones are skipped.  One at a time
 * (flush_busy); the holder looks again after letting go, so an entry
 * published meanwhile by a producer that found the flag taken is not left
 * behind.  Waits for reserved positions to be published only in destroy
 * (`wait`), a blocking context. */
static void ring_flush_dead(struct lab_arena *a, struct lab_room *r, bool wait)
{
    for (;;) {
        uint32_t expect = 0;
        /* A producer that finds the flag taken leaves its published slot to
         * the holder, which looks at the ring again after letting go: a
         * store-buffering pair (our slot store, then the flag; the holder's
         * flag store, then the slot).  The slot store is a release store,
         * not seq_cst, so this fence puts it in the total order before our
         * look at the flag, and the holder's seq_cst look at the slot, after
         * its seq_cst release of the flag, sees it. */
        atomic_thread_fence(memory_order_seq_cst);
        if (!atomic_compare_exchange_strong(&r->flush_busy, &expect, 1)) {
            /* A late producer flushes without waiting for reserved slots:
             * destroy, which must, cannot leave the ring to it
             * (tests/model/remote_destroy.pml, -DDESTROY_GIVES_UP). */
            if (!wait)
                return;
            plat_sleep_ms(1);
            continue;
        }
        uint32_t head = atomic_load(&r->ring_head);
        while (tail_get(r) != head) {
            _Atomic uint64_t *slot = &r->ring[tail_get(r) & r->ring_mask];
            uint64_t v = atomic_load_explicit(slot, memory_order_acquire);
            if (ring_seq_diff(v, tail_get(r) + 1) != 0) {
                if (!wait)
                    break;
                /* reserved, not yet published; a sleep, not a yield, which
                 * would never let a lower-priority SCHED_FIFO producer on
                 * this CPU publish */
                plat_sleep_ms(1);
                continue;
            }
            uint32_t f = (uint32_t)v;
            if (f != RING_TOMBSTONE)
                room_give_up(a, r, &f, 1, (unsigned)(v >> 32) & 7);
            atomic_store_explicit(slot, ring_slot(tail_get(r) + r->ring_mask + 1, 0, 0), memory_order_release);
            tail_set(r, tail_get(r) + 1);
        }
        atomic_store(&r->flush_busy, 0);
        uint32_t t = tail_get(r);
        uint64_t v = atomic_load(&r->ring[t & r->ring_mask]);
        if (ring_seq_diff(v, t + 1) != 0)
            return;
    }
}

/* Put n block heads of one order in the room's ring, from any context.
 * False when the ring is full (the caller frees them to the zone).
 *
 * The dead check after the reservation and destroy's look at ring_head
 * after setting dead form a store-buffering pair, both sequentially
 * consistent: either this producer sees the room dead (and writes
 * tombstones, freeing the blocks to the zone), or destroy sees the
 * reservation and waits for it to be published before flushing.
 * tests/model/remote_destroy.pml checks this protocol, and
 * tests/model/return_ring.pml the ring itself. */
bool room_ring_push(struct lab_arena *a, struct lab_room *r, const uint32_t *frames, uint32_t n, unsigned order)
{
    uint32_t size = r->ring_mask + 1;
    if (unlikely(n == 0 || n > size))
        return false;
    uint32_t pos = atomic_load_explicit(&r->ring_head, memory_order_relaxed);
    for (;;) {
        uint64_t last = atomic_load_explicit(&r->ring[(pos + n - 1) & r->ring_mask], memory_order_acquire);
        /* the common case first: the run's last slot is free for this lap */
        if (likely((uint32_t)(last >> RING_SEQ_SHIFT) == ((pos + n - 1) & RING_SEQ_MASK))) {
            if (atomic_compare_exchange_weak_explicit(&r->ring_head, &pos, pos + n, memory_order_seq_cst,
                                                      memory_order_relaxed))
                break;
            continue;                             /* pos is the head now */
        }
        if (ring_seq_diff(last, pos + n - 1) < 0)
            return false;                         /* full */
        pos = atomic_load_explicit(&r->ring_head, memory_order_relaxed);   /* another producer moved on */
    }
    bool dead = atomic_load_explicit(&r->dead, memory_order_seq_cst);
    for (uint32_t i = 0; i < n; i++)
        atomic_store_explicit(&r->ring[(pos + i) & r->ring_mask],
                              ring_slot(pos + i + 1, order, dead ? RING_TOMBSTONE : frames[i]), memory_order_release);
    if (unlikely(dead)) {
        room_give_up(a, r, frames, n, order);
        ring_flush_dead(a, r, false);
    }
    return true;
}

/* One block from another context (lab_free_pages, the common case): the
 * push of room_ring_push for a single slot, with nothing around it (a free
 * costs a third of the general push's instructions); the two protocols
 * must stay the same: change them together. */
void room_free_one(struct lab_arena *a, struct lab_room *r, uint32_t frame, unsigned order)
{
    uint32_t pos = atomic_load_explicit(&r->ring_head, memory_order_relaxed);
    for (;;) {
        _Atomic uint64_t *slot = &r->ring[pos & r->ring_mask];
        uint64_t v = atomic_load_explicit(slot, memory_order_acquire);
        if (likely((uint32_t)(v >> RING_SEQ_SHIFT) == (pos & RING_SEQ_MASK))) {
            if (!atomic_compare_exchange_weak_explicit(&r->ring_head, &pos, pos + 1, memory_order_seq_cst,
                                                       memory_order_relaxed))
                continue;
            if (likely(!atomic_load_explicit(&r->dead, memory_order_seq_cst))) {
                atomic_store_explicit(slot, ring_slot(pos + 1, order, frame), memory_order_release);
                return;
            }
            atomic_store_explicit(slot, ring_slot(pos + 1, order, RING_TOMBSTONE), memory_order_release);
            room_give_up(a, r, &frame, 1, order);
            ring_flush_dead(a, r, false);
            return;
        }
        if (ring_seq_diff(v, pos) < 0)
            break;                                 /* full */
        pos = atomic_load_explicit(&r->ring_head, memory_order_relaxed);
    }
    room_give_up(a, r, &frame, 1, order);
}

/* A free from another context: into the room's ring, or, when it is full
 * or the room is dead, to the zone. */
void room_free_remote(struct lab_arena *a, struct lab_room *r, const uint32_t *frames, uint32_t n, unsigned order)
{
    /* a dead room's ring is checked by the push itself, after it reserves */
    if (likely(r != NULL) && likely(room_ring_push(a, r, frames, n, order)))
        return;
    room_give_up(a, r, frames, n, order);
}

/* ---- step 2: take back remote frees ----------------------------------------
 * The ready slots, in order, into the stocks, checking each block: it must
 * be this room's, of the order its freer said, and handed out (claimed, in
 * strict mode).  A block already in stock was freed twice: reported and
 * dropped.  A stock that is full sends the block to the zone.  One pass
 * takes at most high + batch blocks of the order-0 stock's size (the rest
 * waits for the next), so an allocation's worst case stays bounded however
 * full the ring; the owner's only shared reads are the slots.  Returns the
 * pages taken back. */
size_t room_take_remote(struct lab_room *r)
{
    struct zone *z = room_zone(r);
    uint32_t t = tail_get(r), mask = r->ring_mask, stop = t + (uint32_t)(r->stk[0].high + r->stk[0].batch);
    uint64_t v = atomic_load_explicit(&r->ring[t & mask], memory_order_acquire);
    if ((uint32_t)(v >> RING_SEQ_SHIFT) != ((t + 1) & RING_SEQ_MASK))
        return 0;
    unsigned want_state = r->strict ? PG_DEFERRED : PG_ALLOCATED;
    size_t pages = 0;
    do {
        uint32_t f = (uint32_t)v;
        unsigned order = (unsigned)(v >> 32) & 7;
        atomic_store_explicit(&r->ring[t & mask], ring_slot(t + mask + 1, 0, 0), memory_order_release);
        t++;
        struct page *p = &z->pages[f];
        /* this room's, of the order its freer gave, and handed out: one
         * compare each (f is checked first: a tombstone is NIL) */
        if (likely(f < r->nr_pages && pg_room(z, f) == r->id && pg_is(p, want_state, order) && order <= r->max_order)) {
            struct room_stock *s = &r->stk[order];
            size_t n = rd(&s->n);
            pages += (size_t)1 << order;
            if (likely(n < s->high)) {
                pg_set(p, PG_ROOM, order);
                s->frames[n] = f;
                wr(&s->n, n + 1);
            } else {              /* back, then drained at once */
                return_to_zone(r, &f, 1, order);
                ctr_inc(&r->st.drains);
            }
        } else if (f >= r->nr_pages || pg_room(z, f) != r->id) {
            misuse(r->arena, LAB_ENOTROOMPAGE, f < r->nr_pages ? addr_of(z, f) : NULL, f,
                   "a remote free of a block this room does not hold");
        } else if (pg_order(p) != order || order > r->max_order) {
            misuse(r->arena, LAB_EWRONGORDER, addr_of(z, f), f, "room block freed with an order other than allocated");
        } else {
            misuse(r->arena, LAB_EDOUBLEFREE, addr_of(z, f), f, "room block is already free (freed twice)");
        }
        v = atomic_load_explicit(&r->ring[t & mask], memory_order_acquire);
    } while ((uint32_t)(v >> RING_SEQ_SHIFT) == ((t + 1) & RING_SEQ_MASK) && t != stop);
    tail_set(r, t);
    ctr_add_owner(&r->st.frees_remote, pages);
    /* The reserve is topped up from the stock, not before it: an allocation
     * near empty is served at step 1 or 2, never walks on to the reserve
     * while pages come back. */
    struct room_stock *s0 = &r->stk[0];
    while (rd(&r->nr_reserve) < r->reserve_target && rd(&s0->n) > s0->batch) {
        size_t n = rd(&s0->n);
        uint32_t f = s0->frames[0];
        memmove(s0->frames, s0->frames + 1, (n - 1) * sizeof(uint32_t));
        wr(&s0->n, n - 1);
        reserve_push(r, f);
    }
    return pages;
}

/* ---- step 3: refill from the zone -----------------------------------------
 * Up to a batch of blocks in one lock hold, within the quota, and never
 * below min: the pages of the emergency reserve are for the request that
 * dips into it, one at a time (room_take_emergency), not for a stock that
 * NOWAIT requests would then drain.  Atomic contexts only try the lock. */
size_t room_refill_from_zone(struct lab_room *r, lab_gfp_t gfp, unsigned order, int *reason, int *step)
{
    struct lab_arena *a = r->arena;
    struct zone *z = room_zone(r);
    struct room_stock *s = &r->stk[order];
    size_t want = s->batch, unit = (size_t)1 << order;
    if (want > s->high + s->batch - rd(&s->n))
        want = s->high + s->batch - rd(&s->n);
    if (r->quota) {
        size_t held = rd(&r->nr_reserve) + room_out(r);
        for (unsigned o = 0; o <= r->max_order; o++)
            held += rd(&r->stk[o].n) << o;
        size_t left = held < r->quota ? (r->quota - held) / unit : 0;
        if (left == 0) {
            *reason = LAB_R_QUOTA;
            return 0;
        }
        if (want > left)
            want = left;
    }
    if (unlikely(fault_should_fail(a, gfp, order))) {
        *reason = LAB_R_INJECTED;
        return 0;
    }
    if (gfp & LAB_GFP_DIRECT_RECLAIM) {
        zone_lock(z);
    } else if (!zone_lock_atomic(z)) {
        *reason = LAB_R_WOULD_BLOCK;
        return 0;
    }
    size_t floor = z->wmark[WMARK_MIN], got = 0;
    if (zone_floor(z, gfp) > floor)   /* NOMEMALLOC, or a floor above min */
        floor = zone_floor(z, gfp);
    uint32_t f;
    while (got < want && zone_watermark_ok(z, order, floor) && (got == 0 || !fault_point(FP_REFILL_CUT)) &&
           (f = buddy_take(z, order)) != NIL) {
        pg_set_room(z, f, r->id);
        stock_push(r, order, f);
        got++;
    }
    if (got == 0)
        *reason = zone_watermark_ok(z, order, floor) ? LAB_R_FRAGMENTED : LAB_R_WATERMARK;
    *step = LAB_STEP_ZONE;
    bool below_low = z->free_pages < z->wmark[WMARK_LOW];
    if (gfp & LAB_GFP_DIRECT_RECLAIM)
        zone_unlock(z);
    else
        zone_unlock_nowake(z);
    if (got)
        ctr_inc(&r->st.refills);
    if (below_low && (gfp & LAB_GFP_WAKE_RECLAIM))
        reclaim_wake(a, gfp);                                   /* step 5 */
    return got;
}

/* ---- step 4: reserves ------------------------------------------------------- */

/* The zone's emergency share below min, one block for this request only,
 * for requests allowed there (HIGH, ATOMIC, MEMALLOC). */
uint32_t room_take_emergency(struct lab_room *r, lab_gfp_t gfp, unsigned order, int *step)
{
    struct zone *z = room_zone(r);
    size_t floor = zone_floor(z, gfp);
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

uint32_t room_take_reserve(struct lab_room *r)
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
void room_adopt(struct lab_room *r, uint32_t frame)
{
    pg_set_room(room_zone(r), frame, r->id);
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
    else if (st == PG_ALLOCATED && r->arena->guard && (p->aux & ~0xffu) == GUARD_TAG)
        misuse(r->arena, LAB_EINTERIOR, page, f, "pointer inside a guarded block, not at its first page");
    else if (st == PG_ALLOCATED && pg_room(z, f) != r->id)
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
    if (unlikely(pg_state(pg) != PG_ALLOCATED || pg_room(z, f) != r->id || pg_order(pg) != order)) {
        room_free_misuse(r, page, order);
        return;
    }
    if (unlikely(!room_enter(r, &r->seq_free, "lab_room_free on a destroyed room"))) {
        /* Reported; the block itself was handed out in good faith, so it
         * goes where a late lab_free_pages of it would: to the zone. */
        if (atomic_load_explicit(&r->dead, memory_order_relaxed)) {
            if (unlikely(r->page_hooks))
                page_hook_free(r->arena, page, order);
            room_give_up(r->arena, r, &f, 1, order);
        }
        return;
    }
    if (unlikely(!room_owner_side_mine(r))) {
        /* Reclaim holds the stocks: the block goes the way of a remote
         * free, counted there and not here. */
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
    if (r->strict) {
        /* Arbitrate against a remote free of the same block. */
        if (!pg_claim(pg, PG_ALLOCATED, PG_ROOM)) {
            ctr_add_owner(&r->st.frees_extra, (uint64_t)-1);   /* a call that took nothing back */
            room_leave(&r->seq_free);
            room_free_misuse(r, page, order);
            return;
        }
    }
    if (unlikely(r->page_hooks))
        page_hook_free(r->arena, page, order);
    struct room_stock *s = &r->stk[order];
    if (order == 0 && unlikely(rd(&r->nr_reserve) < r->reserve_target))
        reserve_push(r, f);
    else
        stock_push(r, order, f);
    ctr_add_owner(&r->st.frees_extra, ((uint64_t)1 << order) - 1);
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

/* ---- reclaim's view ----------------------------------------------------------------
 * Linux's drain_all_pages: when an allocation is about to fail, reclaim
 * takes the stocks and rings of rooms whose owners are not inside a call,
 * an idle room's included.  The owner's fast paths take no lock, so the
 * handshake is an asymmetric Dekker: reclaim closes the fast paths' gates
 * (alloc_slow_gfp, free_limit) and sets `steal`, then makes every running
 * thread execute a full barrier (membarrier); an owner stores its odd
 * sequence word before it reads the gates, with only a compiler fence.
 * After the barrier either reclaim sees the owner inside a call (and gives
 * up), or the owner's next call sees the gates closed and, in its slow
 * path, `steal`: it then serves itself from the zone and frees through its
 * ring, never touching what reclaim holds.  Reclaim then re-reads the gates:
 * an owner that reopened them (it does so only in a call that saw steal
 * clear) was inside a call after all.  The reserve is never taken.
 * Returns the pages given back to the zone. */
static size_t room_steal(struct lab_room *r)
{
    size_t before = 0;
    for (unsigned o = 0; o <= r->max_order; o++)
        before += rd(&r->stk[o].n) << o;
    if (before == 0 && atomic_load_explicit(&r->ring_head, memory_order_relaxed) == tail_get(r))
        return 0;
    if (atomic_exchange(&r->steal, true))
        return 0;
    atomic_store(&r->alloc_slow_gfp, ~(lab_gfp_t)0);
    atomic_store(&r->free_limit, 0);
    size_t pages = 0;
    if (plat_membarrier()) {
        uint64_t s1 = atomic_load(&r->seq), s2 = atomic_load(&r->seq_free);
        if (!((s1 | s2) & 1) && atomic_load(&r->alloc_slow_gfp) == ~(lab_gfp_t)0 && atomic_load(&r->free_limit) == 0 &&
            !atomic_load(&r->dead)) {
            /* In motion for lab_check, with a word of its own: the owner's
             * sequence words are the owner's alone (its bypass calls run
             * meanwhile). */
            uint32_t g = atomic_load_explicit(&r->steal_seq, memory_order_relaxed);
            atomic_store_explicit(&r->steal_seq, g + 1, memory_order_relaxed);
            atomic_thread_fence(memory_order_seq_cst);
            room_take_remote(r);
            for (unsigned o = 0; o <= r->max_order; o++) {
                pages += rd(&r->stk[o].n) << o;
                room_drain(r, o, rd(&r->stk[o].n));
            }
            atomic_store_explicit(&r->steal_seq, g + 2, memory_order_release);
        }
    }
    atomic_store_explicit(&r->steal, false, memory_order_release);
    return pages;
}

size_t rooms_drain_surplus(struct lab_arena *a)
{
    uint32_t n = atomic_load(&a->nr_rooms_made);
    size_t pages = 0;
    for (uint32_t id = 1; id <= n; id++) {
        struct lab_room *r = atomic_load(&a->rooms[id]);
        if (!r || atomic_load(&r->dead))
            continue;
        size_t got = room_steal(r);
        if (got) {
            atomic_fetch_add_explicit(&a->st.rooms_drained, got, memory_order_relaxed);
            pages += got;
            continue;
        }
        /* Without the handshake (the owner was inside a call, or no
         * membarrier here): ask the owner to give back its surplus itself
         * at its next free.  Written only when clear: the flag sits on a
         * line every freer reads. */
        if (atomic_load_explicit(&r->drain_wanted, memory_order_relaxed))
            continue;
        atomic_store_explicit(&r->drain_wanted, true, memory_order_relaxed);
        /* Sends the owner's next free down the slow path.  The owner may
         * overwrite it with a limit computed before it saw the flag: then
         * the drain waits for its next slow call, which checks the flag. */
        atomic_store_explicit(&r->free_limit, 0, memory_order_relaxed);
    }
    return pages;
}

/* ---- create and destroy ----------------------------------------------------------- */

/* The room's metadata back to the platform: its stocks, its ring, itself. */
static void room_release(struct lab_room *r)
{
    for (unsigned o = 0; o < ROOM_ORDERS; o++)
        meta_free(r->stk[o].frames, (r->stk[o].high + r->stk[o].batch + 1) * sizeof(uint32_t));
    meta_free((void *)r->ring, ((size_t)r->ring_mask + 1) * sizeof(uint64_t));
    meta_free(r, sizeof(*r));
}

/* An id to use: a fresh one, or that of a destroyed room none of whose
 * blocks is out any more (so no page's room_of still names it).  Zone lock
 * held.  0 when all are taken. */
static uint32_t room_id_take(struct lab_arena *a)
{
    uint32_t made = atomic_load(&a->nr_rooms_made);
    if (made + 1 < MAX_ROOMS)
        return made + 1;
    for (uint32_t id = 1; id <= made; id++) {
        struct lab_room *old = atomic_load(&a->rooms[id]);
        if (old && atomic_load(&old->dead) && room_out(old) == 0 &&
            atomic_load(&old->ring_head) == tail_get(old)) {
            old->graveyard = a->graveyard;   /* late handles still find it dead */
            a->graveyard = old;
            return id;
        }
    }
    return 0;
}

#define RING_DEFAULT 1024u
#define RESERVE_BATCH 256u   /* reserve pages taken per zone lock hold */

int lab_room_create(lab_arena *a, const lab_room_config *cfg, lab_room **out)
{
    if (!out)
        return LAB_EINVAL;
    *out = NULL;
    if (!a || !cfg)
        return LAB_EINVAL;
    if (cfg->batch == 0)
        return LAB_EBATCH;
    if (cfg->quota && cfg->quota < cfg->reserve)
        return LAB_EQUOTA;
    if (cfg->reserve > a->zone.nr_pages)
        return LAB_ERESERVE;
    if (cfg->max_order >= ROOM_ORDERS || cfg->max_order > a->zone.max_order)
        return LAB_EORDER;
    if (cfg->flags & ~LAB_ROOM_NOWARN)
        return LAB_EFLAGS;
    if (cfg->ring > RING_MAX || cfg->batch > RING_MAX || cfg->high > RING_MAX)
        return LAB_ENOMEM;   /* an absurd size would overflow the arrays' sizes */
    struct lab_room *r = meta_alloc(sizeof(*r));
    if (!r)
        return LAB_ENOMEM;
    r->arena = a;
    r->pages = a->zone.pages;
    r->room_of = a->zone.room_of;
    r->base = a->zone.base;
    r->nr_pages = a->zone.nr_pages;
    r->bytes = (uintptr_t)a->zone.nr_pages << PAGE_SHIFT;
    r->page_hooks = a->page_hooks;
    atomic_init(&r->alloc_slow_gfp, a->page_hooks ? ~(lab_gfp_t)0 : LAB_GFP_ZERO);
    r->strict = a->strict_free;
    r->gfp_or = (cfg->flags & LAB_ROOM_NOWARN) ? LAB_GFP_NOWARN : 0;
    r->max_order = (uint8_t)cfg->max_order;
    r->quota = cfg->quota;
    r->reserve_head = NIL;
    r->reserve_target = cfg->reserve;
    bool ok = true;
    size_t high = cfg->high ? cfg->high : 4 * cfg->batch;
    if (high < cfg->batch)
        high = cfg->batch;
    /* Higher orders keep as many pages, in fewer blocks, as Linux scales its
     * pcp batch by order. */
    for (unsigned o = 0; o <= r->max_order; o++) {
        struct room_stock *s = &r->stk[o];
        s->batch = cfg->batch >> o ? cfg->batch >> o : 1;
        s->high = high >> o > s->batch ? high >> o : s->batch;
        s->frames = meta_alloc((s->high + s->batch + 1) * sizeof(uint32_t));
        ok &= s->frames != NULL;
    }
    uint32_t ring = cfg->ring ? (uint32_t)cfg->ring : RING_DEFAULT;
    uint32_t size = 1;
    while (size < ring || size < 2 * (r->stk[0].high + r->stk[0].batch))
        size <<= 1;
    if (size > RING_MAX)
        size = RING_MAX;
    r->ring_mask = size - 1;
    r->ring = meta_alloc((size_t)size * sizeof(uint64_t));
    if (r->ring)
        for (uint32_t i = 0; i < size; i++)
            atomic_init(&r->ring[i], ring_slot(i, 0, 0));
    name_copy(r->name, sizeof(r->name), cfg->name ? cfg->name : "room");
    if (!ok || !r->ring) {
        room_release(r);
        return LAB_ENOMEM;
    }
    /* The reserve comes from above the min watermark: it must not eat the
     * zone's own emergency pool.  The id is taken under the zone lock, after
     * every check, so a refused room uses none up. */
    struct zone *z = &a->zone;
    zone_lock(z);
    size_t floor = z->wmark[WMARK_MIN];
    uint32_t id = room_id_take(a);
    int err = id == 0 ? LAB_EBUSY : z->free_pages < floor + cfg->reserve ? LAB_ERESERVE : 0;
    if (err) {
        zone_unlock(z);
        room_release(r);
        return err;
    }
    if (id > atomic_load(&a->nr_rooms_made))
        atomic_store(&a->nr_rooms_made, id);
    r->id = (uint16_t)id;
    /* Published at once, holding its id: the lock is let go between batches
     * of the reserve, so a large reserve never holds it for long (atomic
     * requests meanwhile wait out at most RESERVE_BATCH pages of one hold).
     * Nothing of the room is out yet, so no freer looks it up.  The pages
     * above the reserve were counted under the lock; others may take them
     * meanwhile, so each batch checks again and stops at min. */
    room_update_free_limit(r);
    atomic_store_explicit(&a->rooms[id], r, memory_order_release);
    size_t taken = 0;
    while (taken < cfg->reserve) {
        size_t k = 0;
        uint32_t f;
        while (k < RESERVE_BATCH && taken < cfg->reserve && z->free_pages > floor &&
               (f = buddy_take(z, 0)) != NIL) {
            pg_set_room(z, f, r->id);
            reserve_push(r, f);
            k++;
            taken++;
        }
        if (taken == cfg->reserve || k < RESERVE_BATCH)
            break;
        zone_unlock(z);
        zone_lock(z);
    }
    if (taken < cfg->reserve) {
        /* Others took the pages meanwhile: give them back and refuse.  The
         * room stays, dead with nothing out, and its id is taken again. */
        while (r->reserve_head != NIL) {
            uint32_t g = r->reserve_head;
            r->reserve_head = z->pages[g].next;
            buddy_put(z, g, 0);
        }
        wr(&r->nr_reserve, 0);
        atomic_store(&r->dead, true);
        zone_unlock(z);
        return LAB_ERESERVE;
    }
    room_update_free_limit(r);
    zone_unlock(z);
    *out = r;
    return 0;
}

/* Everything the room holds goes back to the zone, and so does every block
 * in its ring.  The struct stays (dead) until the arena is destroyed, so late
 * frees of its blocks and use after destroy are recognised rather than
 * corrupting memory.  Its arrays are kept too (a late freer may still be
 * looking at the ring) and freed with the arena. */
void lab_room_destroy(lab_room *r)
{
    /* seq_cst: destroy's write of `dead` in the store-buffering pair
     * argued at room_ring_push. */
    if (!r || atomic_exchange_explicit(&r->dead, true, memory_order_seq_cst))
        return;
    struct lab_arena *a = r->arena;
    struct zone *z = &a->zone;
    zone_lock(z);
    for (unsigned o = 0; o <= r->max_order; o++) {
        struct room_stock *s = &r->stk[o];
        for (size_t i = 0; i < rd(&s->n); i++)
            buddy_put(z, s->frames[i], o);
        wr(&s->n, 0);
    }
    while (r->reserve_head != NIL) {
        uint32_t f = r->reserve_head;
        r->reserve_head = z->pages[f].next;
        buddy_put(z, f, 0);
    }
    wr(&r->nr_reserve, 0);
    atomic_store_explicit(&r->free_limit, 0, memory_order_relaxed);   /* the owner is not inside a
                            call: its fast paths now find an empty stock and no room to free into */
    zone_unlock(z);
    ring_flush_dead(a, r, true);
}

void rooms_destroy_all(struct lab_arena *a)
{
    uint32_t n = atomic_load(&a->nr_rooms_made);
    for (uint32_t id = 1; id <= n && id < MAX_ROOMS; id++) {
        struct lab_room *r = atomic_load(&a->rooms[id]);
        if (!r)
            continue;
        room_release(r);
    }
    while (a->graveyard) {
        struct lab_room *r = a->graveyard;
        a->graveyard = r->graveyard;
        room_release(r);
    }
}

/* Pages published in the ring and not yet taken back: on their way home,
 * counted with the deferred frees.  A reader's snapshot, from any thread. */
size_t room_ring_pages(struct lab_room *r)
{
    uint32_t t = tail_get(r), h = atomic_load_explicit(&r->ring_head, memory_order_relaxed);
    size_t pages = 0;
    for (; t != h && h - t <= r->ring_mask + 1; t++) {
        uint64_t v = atomic_load_explicit(&r->ring[t & r->ring_mask], memory_order_relaxed);
        if (ring_seq_diff(v, t + 1) == 0 && (uint32_t)v != RING_TOMBSTONE)
            pages += (size_t)1 << ((v >> 32) & 7);
    }
    return pages;
}

void lab_room_stats_get(lab_room *r, lab_room_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!r)
        return;
    out->allocs = room_allocs(r);
    out->frees_owner = room_frees_owner(r);
    out->frees_remote = ctr_get(&r->st.frees_remote);
    out->refills = ctr_get(&r->st.refills);
    out->drains = ctr_get(&r->st.drains);
    out->reserve_allocs = ctr_get(&r->st.reserve_allocs);
    for (int i = 0; i < LAB_R_COUNT; i++)
        out->fail_by_reason[i] = ctr_get(&r->st.fail_by_reason[i]);
    for (unsigned o = 0; o <= r->max_order; o++)
        out->stock += rd(&r->stk[o].n) << o;
    out->reserve = rd(&r->nr_reserve);
    out->out = room_out(r);
    out->in_ring = atomic_load_explicit(&r->ring_head, memory_order_relaxed) - tail_get(r);
}

/* The owner's free of a block: a push and a state store; `order` is a
 * constant where it is inlined with 0. */
static ALWAYS_INLINE void room_free_fast(lab_room *r, void *page, unsigned order)
{
    if (likely(r != NULL) && !LAB_DEBUG_ON) {
        /* The sequence word first, the gates after it: the other half of
         * room_steal's handshake. */
        uint64_t seq = atomic_load_explicit(&r->seq_free, memory_order_relaxed);
        atomic_store_explicit(&r->seq_free, seq + 1, memory_order_relaxed);
        atomic_signal_fence(memory_order_seq_cst);
        uintptr_t off = (uintptr_t)page - (uintptr_t)r->base, f = off >> PAGE_SHIFT;
        struct page *pg = &r->pages[f];
        struct room_stock *s = &r->stk[order];
        size_t n = rd(&s->n);
        /* pg_is also proves the order is one the room serves: the block was
         * handed out with it.  free_limit is the order-0 high, or 0 when the
         * gates are closed; higher orders have their own high. */
        size_t limit = atomic_load_explicit(&r->free_limit, memory_order_relaxed);
        if (order)
            limit = limit ? s->high : 0;
        if (likely(off < r->bytes && !(off & (((uintptr_t)LAB_PAGE_SIZE << order) - 1)) &&
                   pg_is(pg, PG_ALLOCATED, order) &&
                   atomic_load_explicit(&r->room_of[f], memory_order_relaxed) == r->id && n < limit)) {
            pg_set(pg, PG_ROOM, order);
            s->frames[n] = (uint32_t)f;
            wr(&s->n, n + 1);
            /* even again, and seq_free / 2 grows by the block's pages */
            atomic_store_explicit(&r->seq_free, seq + ((uint64_t)2 << order), memory_order_release);
            return;
        }
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

void lab_room_free_bulk(lab_room *r, void *const *pages, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (pages[i])
            lab_room_free(r, pages[i]);
}
