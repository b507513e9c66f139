/*
 * owner.h - the owner's bracket around each room call, inline because the
 * fast paths are made of little else.  Its slow halves are in handoff.c,
 * which therefore does not include this file (the owner's calls are in
 * path.c and free.c).
 */
#ifndef LAB_OWNER_H
#define LAB_OWNER_H

#include "internal.h"

/* The owner's bracket around a call (handoff.c explains the sequence words):
 * `word` is &r->seq for allocations, &r->seq_free for frees.  Release
 * builds: one load of `dead`, two plain stores.  Debug builds check the
 * caller first (room_owner_fault: the owner, and no call of its in
 * progress) and mark with one read-modify-write: a handler that lands
 * between the check and the mark runs its whole call there, and a mark
 * made of a load before it and a store after it would undo its count.
 *
 * lab_check reads the words as seqlocks (check.c), and under C11 that needs
 * the writer to order its odd store before the data it changes.  A release
 * fence would do it, but on most machines that is a full barrier; instead
 * the stores the reader compares (the pages' state, the stocks' counts,
 * nr_reserve) are themselves release stores, which cost nothing on x86.
 * If the reader reads any of them from an operation in progress, its
 * acquire fence synchronizes with that store, so the odd store, sequenced
 * before it, happens before the reader's second look at the word: the
 * reader sees a changed word and skips the room.  The signal fence keeps
 * the compiler from sinking the odd store below the operation, which the
 * debug check for a handler interrupting its own room relies on. */
static inline bool room_enter(struct lab_room *r, _Atomic uint64_t *word, const char *op)
{
    if (LAB_DEBUG_ON || unlikely(atomic_load_explicit(&r->dead, memory_order_relaxed)))
        return room_enter_checked(r, word, op);
    atomic_store_explicit(word, atomic_load_explicit(word, memory_order_relaxed) + 1, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    return true;
}
static inline void room_leave(_Atomic uint64_t *word)
{
    atomic_store_explicit(word, atomic_load_explicit(word, memory_order_relaxed) + 1, memory_order_release);
}
/* Inside a call, in the slow path: false while reclaim holds the owner's
 * side (then the call must not touch the stocks or the ring); otherwise
 * moves back down the stocks a steal took from the bottom of, and reopens
 * the fast paths that it closed. */
static inline bool room_owner_side_mine(struct lab_room *r)
{
    if (unlikely(atomic_load_explicit(&r->steal, memory_order_acquire)))
        return false;
    if (unlikely(atomic_load_explicit(&r->stock_moved, memory_order_relaxed)))
        room_compact(r);
    atomic_store_explicit(&r->alloc_floor, !LAB_DEBUG_ON && r->page_hooks ? SIZE_MAX : 0, memory_order_relaxed);
    room_update_free_limit(r);
    return true;
}

#endif
