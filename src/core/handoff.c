/*
 * handoff.c - the other side of a room: the return ring that brings back the
 * blocks other contexts free, the owner's bracket they synchronize with, the
 * way back to the zone, and reclaim taking a room's stock.
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
 */
#include "fault.h"
#include "lane.h"

/* ---- owner bracket -------------------------------------------------------
 * The sequence words are odd while the owner is inside a slow-path call
 * (debug builds: any call): seq for allocations, seq_free for frees.  They
 * let lab_check skip a room in motion and reclaim leave a room alone, let
 * debug builds catch a context that is not the owner (another thread, or a
 * handler that interrupted the owner), and count the slow calls and the
 * fast frees; the fast allocations are derived (room_allocs).  Plain
 * stores on the owner's side. */
bool room_enter_checked(struct lab_room *r, _Atomic uint64_t *word, const char *op)
{
    if (unlikely(atomic_load_explicit(&r->dead, memory_order_relaxed))) {
        misuse(r->arena, LAB_EROOMDEAD, r, NIL, op);
        return false;
    }
    const char *why;
    if (LAB_DEBUG_ON && (why = room_owner_fault(r)) != NULL) {
        misuse(r->arena, LAB_ENOTOWNER, r, NIL, why);
        return false;
    }
    /* The mark in one instruction: a handler that interrupted the owner
     * after the check above ran its whole call before this, and as a
     * load and a store the mark would write back a word from before the
     * handler's call, its count lost (owner.h). */
    atomic_fetch_add_explicit(word, 1, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    return true;
}

/* Debug builds: NULL when the caller may use the room (the first caller
 * becomes its owner), else why not.  Reports nothing: the fast paths call
 * it first and leave a refusal to the slow paths, which report it. */
const char *room_owner_fault(struct lab_room *r)
{
    const void *me = (const void *)plat_thread_self(), *expect = NULL;
    if (!atomic_compare_exchange_strong(&r->owner, &expect, me) && expect != me)
        return "room used by a thread that does not own it";
    if ((atomic_load_explicit(&r->seq, memory_order_relaxed) |
         atomic_load_explicit(&r->seq_free, memory_order_relaxed)) & 1)
        return "room re-entered: a signal handler interrupted its owner (give the handler its own room)";
    return NULL;
}

int lab_room_set_owner(lab_room *r)
{
    if (!r)
        return LAB_EINVAL;
    if (atomic_load_explicit(&r->dead, memory_order_relaxed))
        return LAB_EROOMDEAD;
    /* a debug build marks every call: an odd word is a call in progress */
    if (LAB_DEBUG_ON && ((atomic_load_explicit(&r->seq, memory_order_relaxed) |
                          atomic_load_explicit(&r->seq_free, memory_order_relaxed)) & 1))
        return LAB_EBUSY;
    atomic_store_explicit(&r->owner, (const void *)plat_thread_self(), memory_order_relaxed);
    return 0;
}

void room_update_free_limit(struct lab_room *r)
{
    /* debug builds claim and run the hooks inside the fast path (room_free_fast) */
    bool slow = (!LAB_DEBUG_ON && (r->page_hooks || r->strict)) ||
                atomic_load_explicit(&r->win, memory_order_relaxed) != NULL ||
                atomic_load_explicit(&r->dead, memory_order_relaxed) ||
                atomic_load_explicit(&r->drain_wanted, memory_order_relaxed) ||
                atomic_load_explicit(&r->steal, memory_order_relaxed) ||
                atomic_load_explicit(&r->nr_reserve, memory_order_relaxed) < r->reserve_target;
    atomic_store_explicit(&r->free_limit, slow ? 0 : r->stk[0].high, memory_order_relaxed);
}

/* A block into the room's private reserve (order 0). */
void reserve_push(struct lab_room *r, uint32_t frame)
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
static void return_to_zone(struct lab_room *r, char *const *blocks, size_t n, unsigned order)
{
    struct lab_arena *a = r->arena;
    struct zone *z = room_zone(r);
    if (zone_lock_atomic(z)) {
        for (size_t i = 0; i < n; i++)
            buddy_put(z, frame_of(z, blocks[i]), order);
        zone_unlock_nowake(z);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t f = frame_of(z, blocks[i]);
        pg_set_state(&z->pages[f], PG_DEFERRED);
        pg_leave_room(z, f);   /* after the state: lab_check */
        zone_free_block(a, f, order);
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
    return_to_zone(r, s->addr, n, order);
    memmove(s->addr, s->addr + n, (have - n) * sizeof(char *));
    stock_n_set(r, order, have - n);
    ctr_inc(&r->st.drains);
}

/* ---- the return ring ------------------------------------------------------ */


/* Free `frames` (claimed or not, see below) of a room that cannot take them
 * back: its ring is full or it is dead.  They go to the zone. */
void room_give_up(struct lab_arena *a, struct lab_room *r, const uint32_t *frames, uint32_t n, unsigned order)
{
    bool strict = a->strict_free;
    struct zone *z = &a->zone;
    uint32_t gone = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct page *p = &z->pages[frames[i]];
        /* In strict mode the freer claimed it already (DEFERRED); else the
         * claim is made here, and a block that is not ALLOCATED any more
         * was freed twice. */
        lab_assert(!strict || pg_state(p) == PG_DEFERRED);
        /* the claim proves the order too: a block freed with another order
         * than it was handed out with stays the caller's (freed with the
         * wrong order, the zone would take a part of it) */
        unsigned found;
        if (!strict && !pg_claim_order(p, order, PG_ALLOCATED, PG_DEFERRED, &found)) {
            if ((found & 0xffu) == PG_ALLOCATED)
                misuse(a, LAB_EWRONGORDER, addr_of(z, frames[i]), frames[i],
                       "room block freed with an order other than it was handed out with");
            else
                misuse(a, LAB_EDOUBLEFREE, addr_of(z, frames[i]), frames[i], "room block is already free");
            continue;
        }
        pg_leave_room(z, frames[i]);   /* after the state: lab_check */
        zone_free_block(a, frames[i], order);
        gone += 1u << order;
    }
    if (gone && r)
        atomic_fetch_add_explicit(&r->gone, gone, memory_order_relaxed);
}

/* A dead room's ring is emptied by whoever finds it so (destroy, or a late
 * producer): entries go to the zone, tombstones are skipped.  One at a time
 * (flush_busy, which a steal under way holds too: destroy flushes after
 * it); the holder looks again after letting go, so an entry
 * published meanwhile by a producer that found the flag taken is not left
 * behind.  Waits for reserved positions to be published only in destroy
 * (`wait`), a blocking context. */
void ring_flush_dead(struct lab_arena *a, struct lab_room *r, bool wait)
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
static NOINLINE void room_free_one(struct lab_arena *a, struct lab_room *r, uint32_t frame, unsigned order)
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
 * dropped.  A stock that is full sends the block to the zone, in runs (one
 * zone lock per run, not per block).  One pass takes at most the order-0
 * stock's high (the rest waits for the next), so an allocation's worst case
 * stays bounded however full the ring, and a take-back into an empty stock
 * sends nothing to the zone; the owner's only shared reads are the slots.
 * Returns the pages taken back. */
#define SPILL_RUN 32
struct take {
    size_t   pages;                 /* taken back, in pages */
    uint32_t want[8];               /* the tag a good block of each order has; for an
                                       order the room does not serve, one no block has */
    uint32_t spilled;               /* blocks in `spill`, all of `spill_order` */
    unsigned spill_order;
    size_t   spilled_pages;         /* of `pages`, those that went to the zone */
    char    *spill[SPILL_RUN];      /* blocks for the zone: their stock was full */
    bool     to_zone;               /* every block to the zone, none to a stock
                                       (reclaim, which never writes a stock's count) */
};

static void spill_flush(struct lab_room *r, struct take *t)
{
    if (t->spilled == 0)
        return;
    return_to_zone(r, t->spill, t->spilled, t->spill_order);
    t->spilled = 0;
    ctr_inc(&r->st.drains);
}

static NOINLINE void spill(struct lab_room *r, struct take *t, char *block, unsigned order)
{
    if (t->spilled == SPILL_RUN || (t->spilled && t->spill_order != order))
        spill_flush(r, t);
    t->spill_order = order;
    t->spill[t->spilled++] = block;
    t->spilled_pages += (size_t)1 << order;
}

/* A take-back's start: nothing taken yet, and the tag a good block of
 * each order has (handed out; claimed by its freer in strict mode). */
static void take_begin(const struct lab_room *r, struct take *t, bool to_zone)
{
    unsigned want_state = r->strict ? PG_DEFERRED : PG_ALLOCATED;
    t->pages = 0;
    t->spilled = 0;
    t->spilled_pages = 0;
    t->to_zone = to_zone;
    /* State 0xff is no state: no descriptor has that tag. */
    _Static_assert(PG_NR_STATES < 0xff, "0xff is not a page state");
    for (unsigned o = 0; o < 8; o++)
        t->want[o] = page_tag(o <= r->max_order ? want_state : 0xffu, o, r->id);
}

/* Why a block failed take_one's check: reported, and the block dropped. */
static NOINLINE void take_misuse(struct lab_room *r, struct zone *z, uint32_t f, unsigned order)
{
    if (f >= r->nr_pages || pg_room(z, f) != r->id)
        misuse(r->arena, LAB_ENOTROOMPAGE, f < r->nr_pages ? addr_of(z, f) : NULL, f,
               "a remote free of a block this room does not hold");
    else if (pg_order(&z->pages[f]) != order || order > r->max_order)
        misuse(r->arena, LAB_EWRONGORDER, addr_of(z, f), f, "room block freed with an order other than allocated");
    else
        misuse(r->arena, LAB_EDOUBLEFREE, addr_of(z, f), f, "room block is already free (freed twice)");
}

/* One block taken back, from the ring or a lane: this room's, of the order
 * its freer gave, and handed out, in one compare of the descriptor's tag
 * with t->want (f is checked first: a tombstone is NIL).  Into the stock,
 * or to the zone when the stock is full.  The reasons for a refusal are
 * sorted out off the loop, in take_misuse: a take-back of a stock's high
 * runs this once a block, and its worst case is an allocation's. */
static inline void take_one(struct lab_room *r, struct zone *z, uint32_t f, unsigned order, struct take *t)
{
    if (likely(f < r->nr_pages) &&
        likely(atomic_load_explicit(&z->pages[f].tag, memory_order_relaxed) == t->want[order & 7])) {
        struct room_stock *s = &r->stk[order];
        size_t n = rd(&s->n);
        t->pages += (size_t)1 << order;
        if (likely(n < s->high) && likely(!t->to_zone)) {
            pg_set_tag(&z->pages[f], tag_with_state(t->want[order & 7], PG_ROOM));
            s->addr[n] = addr_of(z, f);
            wr(&s->n, n + 1);   /* n_moved: once, at the end of the take-back */
        } else {
            /* claimed now, not when the run is flushed: a second entry of
             * the same block (freed twice) must fail the check above */
            pg_set_tag(&z->pages[f], tag_with_state(t->want[order & 7], PG_DEFERRED));
            spill(r, t, addr_of(z, f), order);
        }
    } else {
        take_misuse(r, z, f, order);
    }
}

/* take_run0's loop over slots that do not wrap: one compare proves an
 * order-0 entry in the room's range (an order in the low bits makes the
 * offset no multiple of a page: rotated, it lands far above the range). */
static inline uint32_t take_span0(_Atomic(char *) *src, char **dst, uint32_t len, struct page *pg,
                                  char *base, uint32_t nr, uint32_t want)
{
    const uint32_t in = tag_with_state(want, PG_ROOM);
    uint32_t i;
    /* Unrolled: the loop's own count, compare and pointer steps were 5 of
     * an entry's 17 instructions (callgrind-room remote: 131.6 -> 129.9 a
     * page). */
#pragma GCC unroll 4
    for (i = 0; i < len; i++) {
        char *e = atomic_load_explicit(&src[i], memory_order_relaxed);
        uint64_t off = (uint64_t)((uintptr_t)e - (uintptr_t)base), f = off >> PAGE_SHIFT | off << (64 - PAGE_SHIFT);
        if (unlikely(f >= nr) || unlikely(atomic_load_explicit(&pg[f].tag, memory_order_relaxed) != want))
            break;
        pg_set_tag(&pg[f], in);
        dst[i] = e;
    }
    return i;
}

/* The common run of a lane: order-0 blocks that pass take_one's check,
 * into the order-0 stock while it has space, with what the check compares
 * against held in registers.  Stops at the first entry that is anything
 * else (another order, a refusal, a full stock) and returns its position;
 * take_one deals with it. */
static inline uint32_t take_run0(struct lab_room *r, struct zone *z, struct room_lane *l, uint32_t lt, uint32_t end,
                                 struct take *t)
{
    struct room_stock *s = &r->stk[0];
    size_t n = rd(&s->n);
    uint32_t len = end - lt;
    if (s->high <= n || t->to_zone)
        return lt;
    if (len > s->high - n)
        len = (uint32_t)(s->high - n);
    char **dst = s->addr + n, *base = z->base;
    struct page *pg = z->pages;
    const uint32_t nr = r->nr_pages, want = t->want[0], at = lt % LANE_SLOTS;
    /* the slots up to the end of the array, then from its start */
    uint32_t first = len < LANE_SLOTS - at ? len : LANE_SLOTS - at;
    uint32_t i = take_span0(&l->slots[at], dst, first, pg, base, nr, want);
    if (i == first && len > first)
        i += take_span0(&l->slots[0], dst + first, len - first, pg, base, nr, want);
    wr(&s->n, n + i);   /* n_moved: once, at the end of the take-back */
    t->pages += i;
    return lt + i;
}

/* Ask for every line of the n entries a take-back is about to read, at
 * once: they are the freer's, and read one after another each waits for
 * its transfer.  Only while the zone's share holds the lanes below
 * LANE_KEEP, as under pressure, where it takes a third off the longest
 * take-backs (W5 p99.9 about 730 -> 470 ns); with the zone plentiful and
 * the lanes at LANE_KEEP, the burst of requests lands on a freer that is
 * the slower side and cost the hand-off 13% of its pages a second (W3
 * single), for nothing measurable: docs/DESIGN.md.  Not inlined: in the
 * take-back's body even an untaken copy cost W3 as much, through the
 * code around it. */
static NOINLINE void lane_prefetch(struct room_lane *l, uint32_t lt, uint32_t n)
{
    for (uint32_t q = 0; q < n; q += LANE_LINE)
        __builtin_prefetch(&l->slots[(lt + q) % LANE_SLOTS]);
    __builtin_prefetch(&l->slots[(lt + n - 1) % LANE_SLOTS]);
}

/* How many entries each lane keeps while the zone has plenty.  Kept
 * entries are how far back the owner reuses pages: a page freed k pages
 * ago comes back to the owner's core from the freer's caches while k is
 * small, from the shared cache once k is beyond what the freer's private
 * caches hold of the lines touched (bench/README.md: the hand-off with
 * bulk frees rose from 23 M to 29 M pages/s as the keep went from 480 to
 * 4096, and no further at 6144).  What they keep is the room's, but the
 * zone cannot hand it out, so every claimed lane of the arena shares half
 * of the zone's free pages above its high watermark: as the lanes fill,
 * the zone's count drops, and they settle at a third of the surplus the
 * zone would have without them at most.  None once the zone is at high.
 * Both counts are hints, read without the lock. */
static inline uint32_t lane_keep(struct lab_room *r)
{
    const struct zone *z = room_zone(r);
    size_t free = atomic_load_explicit(&z->free_pages_pub, memory_order_relaxed), high = z->wmark[WMARK_HIGH];
    /* signed: a claim's add may land just after a destroy's subtraction */
    int32_t lanes = (int32_t)atomic_load_explicit(&r->arena->lanes_claimed, memory_order_relaxed);
    size_t k = free > high ? (free - high) / 2 / (size_t)(lanes > 0 ? lanes : 1) : 0;
    return k < LANE_KEEP ? (uint32_t)k : LANE_KEEP;
}

/* Every move of a lane's tail (the slots up to it are the freer's again).
 * `seen`, head at the owner's last look, is pulled along where tail
 * passes it: a look left behind while other take-backs move tail would,
 * 2^32 entries on, pass for one ahead of it, and room_take_out would
 * read slots not yet published in this lap. */
static inline void lane_tail_set(struct room_lane *l, uint32_t t)
{
    if ((int32_t)(atomic_load_explicit(&l->seen, memory_order_relaxed) - t) < 0)
        atomic_store_explicit(&l->seen, t, memory_order_relaxed);
    atomic_store_explicit(&l->tail, t, memory_order_release);
}

/* What the owner may take from lane `l` now: the oldest entries, leaving
 * `keep`.  A normal take-back reads the published head; `all` reads the
 * freer's pen, the line it is still filling included (a take-back then
 * runs ahead of head until the freer publishes past it: hence signed). */
static inline uint32_t lane_takable(struct room_lane *l, uint32_t keep, bool all)
{
    uint32_t h = atomic_load_explicit(all ? &l->pen : &l->head, memory_order_acquire);
    int32_t ready = (int32_t)(h - atomic_load_explicit(&l->tail, memory_order_relaxed));
    if (ready <= (int32_t)keep)
        return 0;
    /* What is beyond `keep`, but at least LANE_TAKE (dipping into what is
     * kept): a take-back of a few would come back at once for more. */
    uint32_t n = (uint32_t)ready - keep;
    if (n < LANE_TAKE)
        n = (uint32_t)ready < LANE_TAKE ? (uint32_t)ready : LANE_TAKE;
    return n;
}

/* Whether the ring's slot at position t holds t's entry (*v: the slot). */
static inline bool ring_ready(struct lab_room *r, uint32_t t, uint64_t *v)
{
    *v = atomic_load_explicit(&r->ring[t & r->ring_mask], memory_order_acquire);
    return (uint32_t)(*v >> RING_SEQ_SHIFT) == ((t + 1) & RING_SEQ_MASK);
}

/* Step 2.  `all`: every entry of every lane, the line a freer is still
 * filling included (reclaim, and an owner that the zone could not serve).
 * Otherwise, while the zone has plenty, each lane keeps lane_keep()
 * entries (up to LANE_KEEP):
 * the owner takes back pages freed long ago, on lines the freer finished
 * with long ago, and leaves the freer's recent ones where they are.
 * Either way at most the stock's high; and an allocation's own take-back
 * (not `all`) at most TAKE_MAX, so that the time one allocation spends
 * here does not grow with the room's high: a take-back costs a few ns a
 * block, and a room with a high of 512 had bursts of allocations that took
 * back 500 blocks at once (docs/DESIGN.md section 8). */
_Static_assert(TAKE_MAX == 128, "labyrinth.h and lab_room_create(3) give the bound as 128");
static size_t take_remote(struct lab_room *r, bool all, bool to_zone)
{
    struct zone *z = room_zone(r);
    /* Reclaim is the ring's consumer only while no late freer of a room
     * being destroyed flushes it (ring_flush_dead): two consumers would
     * both send a slot's block to the zone, and the later tail_set would
     * move the tail back behind slots already freed, where destroy's flush
     * then waits for ever.  A flush under way leaves the ring to destroy. */
    uint32_t idle = 0;
    bool ring_held = to_zone && atomic_compare_exchange_strong(&r->flush_busy, &idle, 1);
    uint32_t t = tail_get(r), mask = r->ring_mask, budget = (uint32_t)r->stk[0].high, took = 0;
    if (!all && budget > TAKE_MAX)
        budget = TAKE_MAX;
    uint64_t v = 0;
    if (to_zone)
        pause_point(PP_STEAL_RING);
    bool ring = (ring_held || !to_zone) && ring_ready(r, t, &v), lanes = false;
    uint32_t keep = all || r->take_all ? 0 : lane_keep(r);
    /* A reserve that lent blocks out is refilled by frees first, remote
     * ones included (below): its owner then takes every entry back, and
     * reclaim leaves it as many as the reserve lacks, the newest (reclaim
     * cannot touch the reserve itself: the owner may be refilling it). */
    uint32_t leave = 0;
    size_t in_reserve = rd(&r->nr_reserve);   /* one look: a steal's owner may move it */
    if (unlikely(in_reserve < r->reserve_target)) {
        size_t lacks = r->reserve_target - in_reserve;
        if (to_zone)
            leave = lacks < UINT32_MAX ? (uint32_t)lacks : UINT32_MAX;
        else
            keep = 0;
    }
    if (!all)
        r->out_keep = keep;   /* room_take_out's, fresh */
    /* Keeping nothing (the zone is short, or the room asked): every entry,
     * the line a freer is still filling included, rather than send the
     * owner to the zone's lock while its own pages wait there. */
    all |= keep == 0;
    /* Only the lanes a freer has claimed: an idle lane's lines stay cold. */
    uint32_t claimed = atomic_load_explicit(&r->lanes_claimed, memory_order_acquire) & ~LANES_GONE;
    for (unsigned k = 0; claimed >> k && !lanes; k++)
        lanes = ((claimed >> k) & 1) && lane_takable(&r->lanes[k], keep, all);
    if (!ring && !lanes) {
        if (ring_held)
            atomic_store(&r->flush_busy, 0);
        return 0;
    }
    uint32_t ring_cap = budget;
    if (unlikely(leave) && ring) {
        uint32_t queued = atomic_load_explicit(&r->ring_head, memory_order_relaxed) - t;
        uint32_t left = queued < leave ? queued : leave;
        ring_cap = queued - left;
        leave -= left;
    }
    struct take tk;
    take_begin(r, &tk, to_zone);
    while (ring && took < ring_cap && took < budget) {
        atomic_store_explicit(&r->ring[t & mask], ring_slot(t + mask + 1, 0, 0), memory_order_release);
        t++;
        took++;
        /* a tombstone: a late freer of a room that died during this steal */
        if (likely((uint32_t)v != RING_TOMBSTONE))
            take_one(r, z, (uint32_t)v, (unsigned)(v >> 32) & 7, &tk);
        ring = ring_ready(r, t, &v);
    }
    if (ring_held) {
        tail_set(r, t);
        atomic_store(&r->flush_busy, 0);
    } else if (!to_zone) {
        tail_set(r, t);
    }
    /* The owner closes its window before it takes back (room_alloc_slow);
     * reclaim takes the window's lane apart (window_steal): its tail is
     * the owner's until the window closes. */
    const struct room_lane *win = atomic_load_explicit(&r->win, memory_order_relaxed);
    lab_assert(to_zone || win == NULL);
    for (unsigned k = 0; lanes && claimed >> k && took < budget; k++) {
        if (!((claimed >> k) & 1) || &r->lanes[k] == win)
            continue;
        struct room_lane *l = &r->lanes[k];
        uint32_t n = lane_takable(l, keep, all);
        if (unlikely(leave)) {
            uint32_t left = n < leave ? n : leave;
            n -= left;
            leave -= left;
        }
        if (n == 0)
            continue;
        if (n > budget - took)
            n = budget - took;
        uint32_t lt = atomic_load_explicit(&l->tail, memory_order_relaxed), end = lt + n;
        if (keep < LANE_KEEP)
            lane_prefetch(l, lt, n);
        while ((lt = take_run0(r, z, l, lt, end, &tk)) != end) {
            char *e = atomic_load_explicit(&l->slots[lt % LANE_SLOTS], memory_order_relaxed);
            take_one(r, z, lane_frame(z->base, e, r->nr_pages), lane_order(e), &tk);
            lt++;
        }
        took += n;
        lane_tail_set(l, lt);
    }
    spill_flush(r, &tk);
    size_t pages = tk.pages;
    /* what went into the stocks, for room_allocs: once a take-back, not
     * once a block in its loops */
    ctr_add_owner(&r->st.n_moved, pages - tk.spilled_pages);
    ctr_add_owner(&r->st.frees_remote, pages);
    /* Frees refill the reserve first, those taken back too: from the
     * bottom of the stock (its coldest blocks), leaving the top block for
     * the allocation that asked, which is then served at step 2 and never
     * walks on to the reserve while pages come back.  (Topped up only
     * from a stock above its batch, a reserve that atomic requests had
     * used stayed short while NOWAIT requests took the blocks back.) */
    struct room_stock *s0 = &r->stk[0];
    size_t n0 = rd(&s0->n), k = 0;
    if (!to_zone && n0 > 1 && rd(&r->nr_reserve) < r->reserve_target) {
        k = r->reserve_target - rd(&r->nr_reserve);
        if (k > n0 - 1)
            k = n0 - 1;
        for (size_t i = 0; i < k; i++)
            reserve_push(r, frame_of(z, s0->addr[i]));
        memmove(s0->addr, s0->addr + k, (n0 - k) * sizeof(char *));
        stock_n_set(r, 0, n0 - k);
    }
    return pages;
}

size_t room_take_remote(struct lab_room *r, bool all)
{
    return take_remote(r, all, false);
}

/* Step 2 straight to the caller, for a bulk allocation whose stock is
 * empty: up to n order-0 blocks off the lanes' published lines, beyond
 * what they keep, placed in out.  A take-back into the stock writes each
 * block's descriptor twice (in stock, then allocated) and its address
 * into the stock, and the call that runs into it pays for up to TAKE_MAX
 * blocks while it asked for a burst.  Here a block that went out
 * allocated comes back allocated, and its descriptor is only read: the
 * block is the caller's before and after, and no write happens where
 * ownership does not change (strict mode's blocks come back deferred and
 * are marked allocated).  The price: a block freed twice by other
 * contexts is caught only when it comes through the stock; handed out
 * from here, its second entry is a free of the new holder's
 * (docs/BAD_INPUT.md).  The slots of the next call's blocks are asked
 * for on the way out: they are on the freer's core, and the next call
 * finds them here.  Leaves everything else to take_remote (returns what
 * it placed so far, or 0): the ring (it would never be drained while the
 * lanes had entries), a reserve to top up, a block that is not plainly
 * this room's order-0 block handed out, lines the freer has not
 * published. */
/* room_take_out's copy of a run of slots that does not wrap: order-0
 * blocks of this room, handed out (`want`), with one compare for range
 * and order (block_index: an order in an entry's low bits rotates it far
 * above the range) and one for the tag; `mark`, a constant where it is
 * inlined, gives strict mode's blocks their tag back. */
static ALWAYS_INLINE uint32_t out_span(_Atomic(char *) *src, void **dst, uint32_t len, struct page *pg,
                                       char *base, uint32_t nr, uint32_t want, uint32_t tag, bool mark)
{
    uint32_t i;
    for (i = 0; i < len; i++) {
        char *e = atomic_load_explicit(&src[i], memory_order_relaxed);
        uintptr_t f = block_index((uintptr_t)e - (uintptr_t)base, 0);
        if (unlikely(f >= nr) || unlikely(atomic_load_explicit(&pg[f].tag, memory_order_relaxed) != want))
            break;
        if (mark)   /* strict mode: deferred -> allocated */
            pg_set_tag(&pg[f], tag);
        dst[i] = e;
    }
    return i;
}

size_t room_take_out(struct lab_room *r, void **out, size_t n)
{
    struct room_lane *lanes = r->lanes;
    uint32_t t = tail_get(r);
    uint64_t v;
    if (lanes == NULL || rd(&r->nr_reserve) < r->reserve_target || ring_ready(r, t, &v))
        return 0;
    /* A keep that has gone stale only moves where the take-back dips: too
     * high and this takes nothing, and the slow path's take_remote looks
     * again (and stores what it found); too low and it takes recent
     * entries, whose lines the freer may still hold.  Read afresh, it
     * cost the demo's bursts served here a transfer each: their p50 was
     * 2.5..3x a burst's off the stock. */
    if (r->out_calls++ % OUT_KEEP_CALLS == 0)
        r->out_keep = r->take_all ? 0 : lane_keep(r);
    uint32_t keep = r->out_keep;
    uint32_t claimed = atomic_load_explicit(&r->lanes_claimed, memory_order_acquire) & ~LANES_GONE;
    struct zone *z = room_zone(r);
    struct page *pg = z->pages;
    char *base = z->base;
    const uint32_t nr = r->nr_pages, want = page_tag(r->strict ? PG_DEFERRED : PG_ALLOCATED, 0, r->id),
                   tag = r->stk[0].tag_out;
    size_t got = 0;
    for (unsigned k = 0; claimed >> k && got < n; k++) {
        if (!((claimed >> k) & 1))
            continue;
        struct room_lane *l = &lanes[k];
        uint32_t lt = atomic_load_explicit(&l->tail, memory_order_relaxed), i, m;
        /* From what head said last time, down to OUT_SLACK below the keep;
         * when that runs short, a look at head (the freer writes its line
         * once every 8 frees, so a look is a transfer), which gives
         * entries only when more than the keep is published, and then
         * down to OUT_SLACK below it.  Taking below the keep on an old look
         * is what spares the next looks: what the freer publishes
         * meanwhile is what the following look finds above the keep.
         * Every move of tail keeps `seen` at or ahead of it
         * (lane_tail_set), so `seen` is never more than a lane's length
         * ahead either. */
        int32_t need = n - got < LANE_SLOTS ? (int32_t)(n - got) : LANE_SLOTS;
        int32_t low = keep > OUT_SLACK ? (int32_t)(keep - OUT_SLACK) : 0;
        uint32_t seen = atomic_load_explicit(&l->seen, memory_order_relaxed), known = seen - lt;
        lab_assert(known <= LANE_SLOTS);
        int32_t have = known <= LANE_SLOTS ? (int32_t)known - low : -1;
        if (have < need) {
            seen = atomic_load_explicit(&l->head, memory_order_acquire);
            if ((int32_t)(seen - lt) < 0)
                seen = lt;   /* a take-back of `all` ran ahead of head */
            atomic_store_explicit(&l->seen, seen, memory_order_relaxed);
            int32_t ready = (int32_t)(seen - lt);
            have = ready > (int32_t)keep ? ready - low : 0;
        }
        if (have <= 0)
            continue;
        m = (uint32_t)(have < need ? have : need);
        /* up to the slots' end, then from their start */
        for (i = 0; i < m;) {
            uint32_t at = (lt + i) % LANE_SLOTS, len = m - i < LANE_SLOTS - at ? m - i : LANE_SLOTS - at, did;
            if (want == tag)
                did = out_span(&l->slots[at], out + got + i, len, pg, base, nr, want, tag, false);
            else
                did = out_span(&l->slots[at], out + got + i, len, pg, base, nr, want, tag, true);
            i += did;
            if (did < len)
                break;
        }
        lane_tail_set(l, lt + i);
        got += i;
        if (i < m)
            break;
        /* as many again, where published: the next call's */
        int32_t ahead = (int32_t)(seen - (lt + i));
        for (uint32_t q = 0; (int32_t)q < ahead && q < m + LANE_LINE; q += LANE_LINE)
            __builtin_prefetch(&l->slots[(lt + i + q) % LANE_SLOTS]);
    }
    if (got) {
        ctr_add_owner(&r->st.frees_remote, got);
        ctr_add_owner(&r->st.allocs_extra, got);
        ctr_add_owner(&r->st.slow_allocs, got);
        ctr_add_owner(&r->st.by_step[LAB_STEP_ROOM_REMOTE], got);
    }
    return got;
}

/* ---- the window ------------------------------------------------------------
 * Step 2 without a copy.  A take-back reads each entry's slot and its
 * block's descriptor and writes both the descriptor and the stock, up to
 * TAKE_MAX at once, and that one allocation waits for all of their lines
 * (a lane's slots are the freer's).  In an order-0 room an entry is the
 * block's address, so the oldest run of a lane, beyond its keep and up to
 * the end of the slots, can be the order-0 stock where it lies: opening it
 * reads one lane's head and asks for the run's lines; each pop then reads
 * its slot, the one read an entry costs, spread over the allocations that
 * use it.  The lane's tail stays where it was until the stock is empty
 * again, so no freer writes those slots meanwhile.
 *
 * The price: an entry is handed out unread.  A block freed twice by other
 * contexts is handed out twice, and one freed by another context and then
 * by its owner is handed out from both (docs/BAD_INPUT.md).  So windows
 * open only where that is the documented contract: release builds,
 * neither LAB_ARENA_STRICT_FREE nor page hooks, rooms of order 0 (whose
 * lanes hold order-0 entries only: lane_append refuses other orders).
 *
 * While a window is open, the owner's frees take the slow path (free_limit
 * is 0), which closes it first, as do the owner's allocation slow path, a
 * bulk allocation and destroy; reclaim (room_steal) takes the stock's
 * bottom as always, checked, and what the lane holds after the window
 * (window_steal); lab_check and the statistics count the window's entries
 * as the stock's, not the lane's. */
bool room_window_open(struct lab_room *r)
{
    struct room_stock *s = &r->stk[0];
    uint64_t v;
    if (!r->window_ok || rd(&s->n) != 0 || rd(&r->nr_reserve) < r->reserve_target ||
        ring_ready(r, tail_get(r), &v))
        return false;
    uint32_t keep = r->take_all ? 0 : lane_keep(r);
    r->out_keep = keep;
    uint32_t budget = s->high < TAKE_MAX ? (uint32_t)s->high : TAKE_MAX;
    uint32_t claimed = atomic_load_explicit(&r->lanes_claimed, memory_order_acquire) & ~LANES_GONE;
    for (unsigned k = 0; claimed >> k; k++) {
        if (!((claimed >> k) & 1))
            continue;
        struct room_lane *l = &r->lanes[k];
        uint32_t n = lane_takable(l, keep, keep == 0);
        uint32_t lt = atomic_load_explicit(&l->tail, memory_order_relaxed), at = lt % LANE_SLOTS;
        if (n > LANE_SLOTS - at)
            n = LANE_SLOTS - at;   /* a run of slots, up to their end */
        if (n > budget)
            n = budget;
        if (n < WINDOW_MIN)
            continue;
        lane_prefetch(l, lt, n);
        atomic_store_explicit(&r->win_at, lt, memory_order_relaxed);
        atomic_store_explicit(&r->win_len, n, memory_order_relaxed);
        atomic_store_explicit(&r->win, l, memory_order_release);   /* with win_at, win_len: stats */
        /* the slots as the stock's array: each holds an order-0 block's
         * address (an aligned 64-bit word: what a pop reads as a pointer) */
        s->addr = (char **)&l->slots[at];
        s->tag_in = s->tag_out;   /* its blocks are still handed out */
        /* and a pop leaves them so (no ROOM block of order 0 exists while
         * a window is open: the pop would refuse one) */
        s->tag_pop = TAG_NONE;
        stock_n_set(r, 0, n);
        ctr_add_owner(&r->st.frees_remote, n);
        room_update_free_limit(r);
        return true;
    }
    return false;
}

/* The owner, before anything but a pop: the stock is the room's own array
 * again, with what the window still held checked and marked as a
 * take-back marks it (those are the only entries the window ever reads),
 * and the slots are the freer's. */
bool room_window_close(struct lab_room *r)
{
    struct room_lane *l = atomic_load_explicit(&r->win, memory_order_relaxed);
    if (l == NULL)
        return false;
    struct room_stock *s = &r->stk[0];
    struct zone *z = room_zone(r);
    /* from a steal's bottom (destroy closes without room_compact) */
    size_t n = rd(&s->n), b = rd(&s->base), kept = 0;
    char **w = s->addr;
    const uint32_t want = page_tag(PG_ALLOCATED, 0, r->id);
    for (size_t i = b; i < n; i++) {
        uint32_t f = lane_frame(z->base, w[i], r->nr_pages);
        if (likely(f < r->nr_pages) && likely(atomic_load_explicit(&z->pages[f].tag, memory_order_relaxed) == want)) {
            pg_set_tag(&z->pages[f], tag_with_state(want, PG_ROOM));
            r->addr0[kept++] = w[i];
        } else {
            take_misuse(r, z, f, 0);
        }
    }
    s->addr = r->addr0;
    s->tag_in = s->tag_pop = page_tag(PG_ROOM, 0, r->id);
    wr(&s->base, 0);
    stock_n_set(r, 0, kept);
    if (kept < n - b)
        ctr_add_owner(&r->st.frees_remote, (uint64_t)kept - (n - b));   /* refused: not taken back */
    /* release, as every store lab_check compares (owner.h): a checker that
     * sees the window closed sees the stock it became */
    atomic_store_explicit(&r->win, NULL, memory_order_release);
    lane_tail_set(l, atomic_load_explicit(&r->win_at, memory_order_relaxed) +
                         atomic_load_explicit(&r->win_len, memory_order_relaxed));
    room_update_free_limit(r);
    return true;
}

/* The top of a stock is not what a pop may hand out (its descriptor is not
 * tag_in): a window's entry for a block freed twice, whose first entry came
 * back before and went on (to the zone, the reserve, another holder).
 * Reported as a take-back reports it, and dropped. */
void room_stock_refuse(struct lab_room *r, unsigned order)
{
    struct room_stock *s = &r->stk[order];
    struct zone *z = room_zone(r);
    size_t n = rd(&s->n);
    uint32_t f = lane_frame(z->base, s->addr[n - 1], r->nr_pages);
    stock_n_set(r, order, n - 1);
    if (atomic_load_explicit(&r->win, memory_order_relaxed) != NULL && order == 0)
        ctr_add_owner(&r->st.frees_remote, (uint64_t)-1);   /* counted when the window opened */
    if (f < r->nr_pages)
        take_misuse(r, z, f, order);
}

/* ---- lanes -----------------------------------------------------------------
 * The shared ring costs each single free a compare-and-swap, and a locked
 * instruction first waits for the freer's pending stores: the page it has
 * just touched, a line the owner's core holds.  So a thread that frees a
 * room's blocks claims one of the room's lanes, once (one CAS), and from
 * then on publishes there with plain stores, as a single producer.
 *
 * Lanes are never given back: a room has ROOM_LANES of them, and threads
 * beyond those (or a thread's frees to more rooms than its area remembers
 * at once, which it finds again by a scan) use the ring.  A thread that
 * exits leaves its lane to the next thread given the same area, which
 * finds its own address there.  The area lists the rooms most recently
 * freed to first, so a thread feeding one room finds its lane with one
 * compare.  A signal handler that interrupts a push sees the lane marked
 * `pushing` and uses the ring; one that rewrites the area while the code it
 * interrupted reads it leaves at worst an entry naming a lane that is not
 * this thread's, which the owner field refuses (a scan then finds the
 * right one).
 *
 * A freer writes each entry and its `pen`, and publishes `head` only when
 * a line of slots is full, so the owner never reads a line the freer is
 * still writing.  While the zone has plenty, the owner leaves each lane its
 * most recent entries (lane_keep) and takes back the oldest: pages whose
 * lines left the freer's caches long ago, from slot lines the freer
 * finished with long ago.  Taking back what a freer has just freed makes
 * both cores pass the same lines to and fro, and measured, that halved the
 * hand-off's throughput.  What the lanes keep is still the room's: every
 * count reads `pen`, and reclaim, destroy, an owner the zone could not
 * serve, and any take-back while the lanes keep nothing take it all.
 *
 * Destroy closes the lanes with an asymmetric fence, as room_steal closes
 * the owner's side: the freer marks its lane `pushing` and then reads
 * `dead`, with a compiler fence only; destroy writes `dead`, runs
 * plat_membarrier, waits out every lane still marked and empties them
 * (lanes_flush_dead).  A freer that read `dead` before the barrier is seen
 * pushing or has published; one after it sees the room dead and uses the
 * ring, which handles dead rooms. */
/* Entry i becomes the first (the one the push looks at), the ones before
 * it move down: the least recently used room is forgotten first. */
static void lane_remember(struct thread_area *ta, unsigned i, const struct lab_room *r, uint32_t k)
{
    for (; i > 0; i--)
        ta->lanes[i] = ta->lanes[i - 1];
    ta->lanes[0].room = r;
    ta->lanes[0].lane = k;
}

static NOINLINE struct room_lane *lane_of_thread(struct lab_room *r, struct thread_area *ta)
{
    if (r->lanes == NULL)
        return NULL;
    for (unsigned i = 0; i < THREAD_LANES; i++) {
        if (ta->lanes[i].room == r) {
            uint32_t k = ta->lanes[i].lane;
            struct room_lane *l = &r->lanes[k];
            if (atomic_load_explicit(&l->owner, memory_order_relaxed) == ta) {
                lane_remember(ta, i, r, k);
                return l;
            }
        }
    }
    for (unsigned k = 0; k < ROOM_LANES; k++) {
        struct room_lane *l = &r->lanes[k];
        const void *o = atomic_load_explicit(&l->owner, memory_order_acquire);
        if (o == NULL &&
            atomic_compare_exchange_strong_explicit(&l->owner, &o, (const void *)ta, memory_order_acquire,
                                                    memory_order_relaxed)) {
            /* before the first push: the owner looks only at claimed lanes */
            if (!(atomic_fetch_or_explicit(&r->lanes_claimed, 1u << k, memory_order_release) & LANES_GONE) &&
                !r->take_all)   /* its lanes keep nothing: no share */
                atomic_fetch_add_explicit(&r->arena->lanes_claimed, 1, memory_order_relaxed);
            o = ta;
        }
        if (o == ta) {
            lane_remember(ta, THREAD_LANES - 1, r, k);
            return l;
        }
    }
    return NULL;
}

/* This thread's lane of room r when it is the one it used last: two
 * compares and the claim's check; NULL otherwise. */
static inline struct room_lane *lane_cached(struct lab_room *r, struct thread_area *ta)
{
    struct room_lane *l;
    if (unlikely(ta->lanes[0].room != r) || unlikely(r->lanes == NULL) ||
        unlikely(atomic_load_explicit(&(l = &r->lanes[ta->lanes[0].lane])->owner, memory_order_relaxed) != ta))
        return NULL;
    return l;
}

/* This thread's lane of room r: the one it used last, else found or
 * claimed; NULL when the room has none for it. */
static inline struct room_lane *lane_find(struct lab_room *r, struct thread_area *ta)
{
    struct room_lane *l = lane_cached(r, ta);
    return l != NULL ? l : lane_of_thread(r, ta);
}

static inline bool lane_push(struct lab_room *r, const uint32_t *frames, uint32_t n, unsigned order)
{
    struct room_lane *l = lane_find(r, (struct thread_area *)plat_thread_self());
    return l != NULL && lane_append(r, l, frames, n, order, NULL);
}

/* Remember lane l of room r for this thread's next single free.  The
 * serial is 0 while the lane is written, so no read takes a half-written
 * entry; a handler that interrupts a fill leaves the entry alone. */
static void lane_hit_fill(const struct lab_room *r, struct thread_area *ta, struct room_lane *l)
{
    if (atomic_load_explicit(&ta->hit_busy, memory_order_relaxed))
        return;
    atomic_store_explicit(&ta->hit_busy, 1, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    atomic_store_explicit(&ta->hit.serial, 0, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    atomic_store_explicit(&ta->hit.lane, l, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    atomic_store_explicit(&ta->hit.serial, r->serial, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    atomic_store_explicit(&ta->hit_busy, 0, memory_order_relaxed);
}

/* room_hand_off when this thread's last lane is not one of this room's. */
static NOINLINE void hand_off_slow(struct lab_arena *a, struct lab_room *r, uint32_t frame, unsigned order)
{
    struct thread_area *ta = (struct thread_area *)plat_thread_self();
    struct room_lane *l = lane_find(r, ta);
    if (l == NULL) {
        room_free_one(a, r, frame, order);
        return;
    }
    lane_hit_fill(r, ta, l);
    if (!lane_append(r, l, &frame, 1, order, NULL))
        room_free_one(a, r, frame, order);
}

/* One block from another context (lab_free_pages, the common case): into
 * the lane this thread used last, when it is one of this room's, else
 * the thread's lane of the room (hand_off_slow), else the shared ring.
 * Everything but the append to the remembered lane is a tail call, so the
 * common case needs no stack frame. */
void room_hand_off(struct lab_arena *a, struct lab_room *r, uint32_t frame, unsigned order)
{
    struct room_lane *l;
    if (unlikely(!lane_hit(r, (struct thread_area *)plat_thread_self(), &l))) {
        hand_off_slow(a, r, frame, order);
        return;
    }
    if (likely(lane_append(r, l, &frame, 1, order, NULL)))
        return;
    room_free_one(a, r, frame, order);
}

bool room_lane_push_n(struct lab_room *r, const uint32_t *frames, uint32_t n, unsigned order)
{
    return lane_push(r, frames, n, order);
}

/* A room that is dead: its lanes stop sharing the zone's surplus, and one
 * claimed after this is not counted (lane_of_thread).  Once per room: the
 * caller set `dead`. */
void lanes_close(struct lab_room *r)
{
    uint32_t gone = atomic_fetch_or(&r->lanes_claimed, LANES_GONE), counted = 0;
    if (!r->take_all)   /* a TAKE_ALL room's lanes were never counted */
        for (unsigned k = 0; k < ROOM_LANES; k++)
            counted += (gone >> k) & 1;
    atomic_fetch_sub_explicit(&r->arena->lanes_claimed, counted, memory_order_relaxed);
}

/* Destroy, after `dead` is set: every lane's entries go to the zone.  A
 * blocking context. */
void lanes_flush_dead(struct lab_arena *a, struct lab_room *r)
{
    if (!r->lanes)
        return;
    lanes_close(r);
    /* Lanes exist only where the barrier worked at the arena's creation;
     * the kernel may still refuse one for a while (no memory for its CPU
     * mask), and without it a freer that marked its lane `pushing` (a
     * plain store) and then read `dead` as false could go unseen: its
     * entries, appended after this flush, would be lost.  Refused for good
     * (a seccomp filter installed since), the sleeps stand in for it: a
     * store waits in a running CPU's buffer for nanoseconds, not a tenth
     * of a second, and a switch away drains it. */
    for (int i = 0; i < 100 && !plat_membarrier(); i++)
        plat_sleep_ms(1);
    for (unsigned k = 0; k < ROOM_LANES; k++) {
        struct room_lane *l = &r->lanes[k];
        while (atomic_load_explicit(&l->pushing, memory_order_acquire))
            plat_sleep_ms(1);   /* a freer between its look at `dead` and its publish */
        uint32_t lt = atomic_load_explicit(&l->tail, memory_order_relaxed);
        uint32_t h = atomic_load_explicit(&l->pen, memory_order_acquire);   /* the unpublished line too */
        for (; lt != h; lt++) {
            char *e = atomic_load_explicit(&l->slots[lt % LANE_SLOTS], memory_order_relaxed);
            uint32_t f = lane_frame(room_zone(r)->base, e, r->nr_pages);
            if (f < r->nr_pages)   /* every entry a freer wrote is a page of the arena */
                room_give_up(a, r, &f, 1, lane_order(e));
        }
        lane_tail_set(l, lt);
    }
}

/* Entries written in the lanes (published or not) and not yet taken back,
 * and their pages. */
size_t room_lane_entries(struct lab_room *r, size_t *pages)
{
    size_t n = 0;
    for (unsigned k = 0; r->lanes && k < ROOM_LANES; k++) {
        struct room_lane *l = &r->lanes[k];
        uint32_t lt = atomic_load_explicit(&l->tail, memory_order_acquire);
        uint32_t h = atomic_load_explicit(&l->pen, memory_order_acquire);
        if (atomic_load_explicit(&r->win, memory_order_acquire) == l)   /* the window is the stock's */
            lt = atomic_load_explicit(&r->win_at, memory_order_relaxed) +
                 atomic_load_explicit(&r->win_len, memory_order_relaxed);
        for (; lt != h && h - lt <= LANE_SLOTS; lt++, n++)
            if (pages)
                *pages += (size_t)1 << lane_order(atomic_load_explicit(&l->slots[lt % LANE_SLOTS], memory_order_relaxed));
    }
    return n;
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
    room_lane_entries(r, &pages);
    return pages;
}

/* Reclaim's share of an open window (room_steal, which holds the owner's
 * side): the window's entries below its top, each checked as a take-back
 * checks it, since a window's entries were never read (a block freed twice
 * goes to the zone once, its other entry is reported), then what the
 * window's lane holds after the window, the unpublished line too.  The
 * lane's tail stays where the window put it; the run taken after the
 * window joins the window's length, so the owner's close moves the tail
 * past both.  Returns the pages given to the zone. */
static size_t window_steal(struct lab_room *r, struct room_lane *l)
{
    struct zone *z = room_zone(r);
    struct room_stock *s = &r->stk[0];
    struct take tk;
    take_begin(r, &tk, true);
    size_t n = rd(&s->n), b = rd(&s->base);
    if (n > b + 1) {
        for (size_t i = b; i < n - 1; i++)
            take_one(r, z, lane_frame(z->base, s->addr[i], r->nr_pages), 0, &tk);
        /* counted as remote frees when the window opened: less those refused */
        ctr_add_owner(&r->st.frees_remote, (uint64_t)tk.pages - (n - 1 - b));
        wr(&s->base, n - 1);
        atomic_store_explicit(&r->stock_moved, true, memory_order_relaxed);
    }
    size_t in_window = tk.pages;
    uint32_t at = atomic_load_explicit(&r->win_at, memory_order_relaxed);
    uint32_t lt = at + atomic_load_explicit(&r->win_len, memory_order_relaxed);
    uint32_t h = atomic_load_explicit(&l->pen, memory_order_acquire);
    for (; lt != h && h - lt <= LANE_SLOTS; lt++) {
        char *e = atomic_load_explicit(&l->slots[lt % LANE_SLOTS], memory_order_relaxed);
        take_one(r, z, lane_frame(z->base, e, r->nr_pages), lane_order(e), &tk);
    }
    atomic_store_explicit(&r->win_len, lt - at, memory_order_relaxed);
    ctr_add_owner(&r->st.frees_remote, tk.pages - in_window);
    spill_flush(r, &tk);
    return tk.pages;
}

/* ---- reclaim's view ----------------------------------------------------------------
 * Linux's drain_all_pages: when an allocation is about to fail, reclaim
 * takes the stocks and rings of rooms whose owners are not inside a
 * slow-path call, an idle room's included.  The owner's fast paths take no
 * lock, so the handshake is an asymmetric Dekker: reclaim closes the fast
 * paths' gates (alloc_floor, free_limit) and sets `steal`, then makes every
 * running thread execute a full barrier (membarrier); an owner's slow path
 * stores its odd sequence word before it reads `steal`, with only a
 * compiler fence.  After the barrier either reclaim sees the owner inside a
 * slow call (and gives up), or the owner's next call finds the gates closed
 * and, in its slow path, `steal`: it then serves itself from the zone and
 * frees through its ring, never touching what reclaim holds.  Reclaim then
 * re-reads the gates: an owner that reopened them (it does so only in a
 * call that saw steal clear) was inside a call after all.
 *
 * A fast-path call marks nothing (release builds), so one may be in
 * flight: one that read an open gate before the barrier.  It pops the top
 * block of one stock, or pushes above the top; so reclaim never writes a
 * stock's count nor an entry, and never takes a stock's top entry: it takes
 * [base, n - 1) to the zone and moves base up, and the owner's next slow
 * path moves what is left back down (room_compact).  The remote frees go
 * straight to the zone (take_remote's to_zone).  The reserve is never
 * taken.  tests/model/room_steal.pml checks the protocol.  Returns the
 * pages given back to the zone. */
static size_t room_steal(struct lab_room *r)
{
    size_t before = 0;
    for (unsigned o = 0; o <= r->max_order; o++) {
        size_t n = rd(&r->stk[o].n), b = rd(&r->stk[o].base);
        before += n > b + 1 ? (n - b - 1) << o : 0;
    }
    bool lanes = false;   /* any entry written, without counting them */
    for (unsigned k = 0; r->lanes && k < ROOM_LANES && !lanes; k++)
        lanes = lane_takable(&r->lanes[k], 0, true) != 0;
    if (before == 0 && !lanes && atomic_load_explicit(&r->ring_head, memory_order_relaxed) == tail_get(r))
        return 0;
    /* An owner inside a call makes the steal give up after its barrier:
     * leave the room at once.  Only an early exit (the check after the
     * barrier decides), but without it steal after steal kept `steal` set
     * while a blocking owner inside a call waited for it to clear. */
    if ((atomic_load_explicit(&r->seq, memory_order_relaxed) |
         atomic_load_explicit(&r->seq_free, memory_order_relaxed)) & 1)
        return 0;
    if (atomic_exchange(&r->steal, true))
        return 0;
    atomic_store(&r->alloc_floor, SIZE_MAX);
    atomic_store(&r->free_limit, 0);
    size_t pages = 0;
    if (plat_membarrier()) {
        uint64_t s1 = atomic_load(&r->seq), s2 = atomic_load(&r->seq_free);
        if (!((s1 | s2) & 1) && atomic_load(&r->alloc_floor) == SIZE_MAX && atomic_load(&r->free_limit) == 0 &&
            !atomic_load(&r->dead)) {
            /* In motion for lab_check, with a word of its own: the owner's
             * sequence words are the owner's alone (its bypass calls run
             * meanwhile). */
            uint32_t g = atomic_load_explicit(&r->steal_seq, memory_order_relaxed);
            atomic_store_explicit(&r->steal_seq, g + 1, memory_order_relaxed);
            atomic_thread_fence(memory_order_seq_cst);
            pages += take_remote(r, true, true);
            struct room_lane *win = atomic_load_explicit(&r->win, memory_order_relaxed);
            if (win)
                pages += window_steal(r, win);
            for (unsigned o = 0; o <= r->max_order; o++) {
                struct room_stock *s = &r->stk[o];
                size_t n = rd(&s->n), b = rd(&s->base);
                if (n <= b + 1 || (o == 0 && win))
                    continue;
                return_to_zone(r, s->addr + b, n - 1 - b, o);
                pages += (n - 1 - b) << o;
                wr(&s->base, n - 1);
                atomic_store_explicit(&r->stock_moved, true, memory_order_relaxed);
                ctr_inc(&r->st.drains);
            }
            atomic_store_explicit(&r->steal_seq, g + 2, memory_order_release);
        }
    }
    atomic_store_explicit(&r->steal, false, memory_order_release);
    return pages;
}

/* The owner, in a slow path that saw no steal: the stocks a steal took the
 * bottom of start at 0 again (each kept its top entry, and a pop in flight
 * may have taken that since). */
void room_compact(struct lab_room *r)
{
    for (unsigned o = 0; o <= r->max_order; o++) {
        struct room_stock *s = &r->stk[o];
        size_t n = rd(&s->n), b = rd(&s->base);
        if (b == 0)
            continue;
        lab_assert(b <= n);
        memmove(s->addr, s->addr + b, (n - b) * sizeof(char *));
        wr(&s->base, 0);
        stock_n_set(r, o, n - b);
    }
    atomic_store_explicit(&r->stock_moved, false, memory_order_relaxed);
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

