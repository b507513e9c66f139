/*
 * lane.h - the freer's side of a room's lanes (handoff.c has the rest): the
 * append, and the lane a thread's single frees use, inline in
 * lab_free_pages, where a remote free of an order-0 block ends in the
 * common case.
 */
#ifndef LAB_LANE_H
#define LAB_LANE_H

#include "internal.h"

/* Whether lane *l, the one a single free from this thread used last
 * (thread_area.hit), is one of room r: the serial is read before and
 * after the lane, so a signal handler that refilled the entry with another
 * room's between the two reads is seen.  A refill with the same serial is
 * not, and need not be: every lane ever stored under a serial is one of
 * that room's lanes this thread claimed, and a claim is never given back
 * (lane_of_thread), so unlike lane_cached this does not look at the
 * lane's owner.  A change that let lanes go would have to. */
static ALWAYS_INLINE bool lane_hit(const struct lab_room *r, struct thread_area *ta, struct room_lane **l)
{
    uint64_t s = atomic_load_explicit(&ta->hit.serial, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    *l = atomic_load_explicit(&ta->hit.lane, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    return likely(s == r->serial) && likely(atomic_load_explicit(&ta->hit.serial, memory_order_relaxed) == s);
}

/* Frees appended to lane l of the room, all of them or none (addrs: the
 * order-0 blocks' addresses, where the caller has them checked, stored as
 * they are in place of entries rebuilt from frames): false when
 * the lane has no room for them or the room is dead (the caller uses the
 * ring).  No locked instruction once the lane is claimed, and one
 * publication for the whole run.  The lane's own
 * `pushing` flag also tells a signal handler that it interrupted its
 * thread's push on this lane: the handler then uses the ring.  A handler
 * that runs between our look at the flag and our store of it completes its
 * push before we read head, so we append after it. */
static ALWAYS_INLINE bool lane_append(struct lab_room *r, struct room_lane *l, const uint32_t *frames, uint32_t n,
                                      unsigned order, char *const *addrs)
{
    if (unlikely(atomic_load_explicit(&l->pushing, memory_order_relaxed)))
        return false;
    /* an order the room does not serve goes the checked way (the ring):
     * a window hands lane entries out unread (handoff.c) */
    if (order != 0 && unlikely(order > r->max_order))
        return false;
    atomic_store_explicit(&l->pushing, 1, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);   /* the freer's half of destroy's fence */
    bool done = false;
    uint32_t h = atomic_load_explicit(&l->pen, memory_order_relaxed);
    /* the room left by the last look at tail (for one entry, a compare);
     * short, look again: the owner may have taken entries back since */
    if (unlikely(l->limit - h < n))
        l->limit = atomic_load_explicit(&l->tail, memory_order_acquire) + LANE_SLOTS;
    if (likely(l->limit - h >= n) && likely(!atomic_load_explicit(&r->dead, memory_order_relaxed))) {
        /* up to the end of the slots, then from their start */
        char *const base = r->base;
        uint32_t at = h % LANE_SLOTS, first = n < LANE_SLOTS - at ? n : LANE_SLOTS - at;
        for (uint32_t i = 0; i < first; i++)
            atomic_store_explicit(&l->slots[at + i], addrs != NULL ? addrs[i] : lane_entry(base, frames[i], order),
                                  memory_order_relaxed);
        for (uint32_t i = first; i < n; i++)
            atomic_store_explicit(&l->slots[i - first], addrs != NULL ? addrs[i] : lane_entry(base, frames[i], order),
                                  memory_order_relaxed);
        atomic_store_explicit(&l->pen, h + n, memory_order_release);
        /* a line filled: publish it (the owner reads only whole lines).
         * The run filled one iff fewer than all its entries sit in the
         * line it ends in (for one entry: h + 1 starts a line). */
        if (((h + n) & (LANE_LINE - 1)) < n)
            atomic_store_explicit(&l->head, (h + n) & ~(uint32_t)(LANE_LINE - 1), memory_order_release);
        done = true;
    }
    atomic_store_explicit(&l->pushing, 0, memory_order_release);
    return done;
}

#endif
