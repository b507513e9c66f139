/*
 * check.c - lab_check: every invariant of the zone, its lists and the rooms,
 * walked under the zone lock (docs/DESIGN.md section 5).  Debug builds run
 * it after operations as well.
 */
#include "internal.h"

/* ---- lab_check ------------------------------------------------------------ */

static int check_fail(bool report, int err, const char *what, uint64_t frame)
{
    if (report) {
        struct fmtbuf b = { .len = 0 };
        fmt_str(&b, "labyrinth: lab_check: ");
        fmt_str(&b, lab_strerror(err));
        fmt_str(&b, ": ");
        fmt_str(&b, what);
        if (frame != NIL) {
            fmt_str(&b, " (frame ");
            fmt_u64(&b, frame);
            fmt_str(&b, ")");
        }
        fmt_str(&b, "\n");
        plat_log(b.buf, b.len);
    }
    return err;
}
#define FAIL(err, what, frame) return check_fail(report, err, what, frame)

static int check_list(struct zone *z, struct free_area *fa, unsigned order, unsigned state, bool report, size_t *pages)
{
    size_t n = 0;
    uint32_t prev = NIL;
    for (uint32_t f = fa->head; f != NIL; f = z->pages[f].next) {
        struct page *p = &z->pages[f];
        if (f >= z->nr_pages || pg_state(p) != state || pg_order(p) != order || pg_room(z, f) != 0)
            FAIL(LAB_ECHECK_COUNT, "a free-list entry in the wrong state or order", f);
        if (p->prev != prev)
            FAIL(LAB_ECHECK_COUNT, "a broken free-list back link", f);
        if (++n > z->nr_pages)
            FAIL(LAB_ECHECK_COUNT, "a free list that loops", f);
        prev = f;
    }
    if (n != fa->nr_free)
        FAIL(LAB_ECHECK_COUNT, "a free-list length differs from its counter", NIL);
    *pages += n << order;
    return 0;
}

/* Whether the room moved since `w` was read before the walk: a sequence
 * word odd then or changed since, or a stock's count changed (release
 * builds' fast paths change no word until their last store).  The acquire
 * fence first (a seqlock reader): C11: the owner's stores of the page
 * states and of the counts are release stores (internal.h, room_enter),
 * so if the walk or the loads before this read any of them from a call in
 * progress, the fence synchronizes with that store, and the odd sequence
 * store made before it (a slow path's, or any call's in a debug build) is
 * visible here. */
static bool room_moved(struct lab_room *r, const uint64_t *w)
{
    atomic_thread_fence(memory_order_acquire);
    bool moved = ((w[0] | w[1] | w[2]) & 1) || atomic_load_explicit(&r->seq, memory_order_relaxed) != w[0] ||
                 atomic_load_explicit(&r->seq_free, memory_order_relaxed) != w[1] ||
                 atomic_load_explicit(&r->steal_seq, memory_order_relaxed) != w[2];
    for (unsigned o = 0; o <= r->max_order; o++)
        moved |= atomic_load_explicit(&r->stk[o].n, memory_order_relaxed) != w[3 + o];
    return moved;
}

/* A room whose words and counts did not move during the walk, yet whose
 * pages in PG_ROOM (`seen`) differ from its stocks' counts (`stock`) by
 * exactly one block of one order: in release builds the owner's fast paths
 * mark nothing, so an allocation or a free may have been in flight all
 * along, between its state store and its store of the count.  Such a room
 * is in motion, as one whose word moved; its entries are not read (the
 * owner writes them without atomics).  Debug builds mark every call, so
 * for them any difference is a fault. */
static bool room_fast_call_in_flight(const struct lab_room *r, size_t seen, size_t stock)
{
    if (LAB_DEBUG_ON)
        return false;
    for (unsigned o = 0; o <= r->max_order; o++)
        if (seen + ((size_t)1 << o) == stock || seen == stock + ((size_t)1 << o))
            return true;
    return false;
}

/* Zone lock held. */
int zone_check_locked(struct lab_arena *a, bool report, bool may_map)
{
    struct zone *z = &a->zone;
    size_t by_state[PG_NR_STATES] = { 0 };
    uint32_t nroom = atomic_load(&a->nr_rooms_made);
    size_t *room_pages = NULL;  /* [id] stock pages, [MAX_ROOMS + id] reserve pages */
    /* per room, RS words: seq, seq_free, steal_seq, then each stock's count */
    enum { RS = 3 + ROOM_ORDERS };
    uint64_t *room_seq = NULL;
    int err = 0;

    if (!(z->wmark[WMARK_MIN] <= z->wmark[WMARK_LOW] && z->wmark[WMARK_LOW] <= z->wmark[WMARK_HIGH]))
        FAIL(LAB_ECHECK_WMARK, "watermarks out of order", NIL);
    if (z->ha_pages > z->ha_cap)
        FAIL(LAB_ECHECK_WMARK, "high-order atomic reserve above its cap", NIL);

    /* The rooms' sums need scratch memory, mapped (not the heap: a signal
     * handler may have interrupted malloc on this thread).  Mapping is for
     * blocking contexts only, so the checks debug builds make after an
     * operation in any other context leave the rooms' sums out. */
    size_t map_bytes = 0;
    if (!may_map)
        nroom = 0;
    if (nroom) {
        map_bytes = 2 * (size_t)(nroom + 1) * sizeof(size_t) + RS * ((size_t)nroom + 1) * sizeof(uint64_t);
        room_pages = os_map(map_bytes, false);
        if (room_pages)
            room_seq = (uint64_t *)(room_pages + 2 * (size_t)(nroom + 1));
        else
            nroom = 0;
    }
    for (uint32_t id = 1; id <= nroom; id++) {
        struct lab_room *r = atomic_load(&a->rooms[id]);
        uint64_t *w = room_seq + RS * id;
        w[0] = r ? atomic_load_explicit(&r->seq, memory_order_acquire) : 1;
        w[1] = r ? atomic_load_explicit(&r->seq_free, memory_order_acquire) : 1;
        w[2] = r ? atomic_load_explicit(&r->steal_seq, memory_order_acquire) : 1;
        for (unsigned o = 0; r && o <= r->max_order; o++)
            w[3 + o] = atomic_load_explicit(&r->stk[o].n, memory_order_acquire);
    }
#undef FAIL
#define FAIL(e, what, frame) do { err = check_fail(report, e, what, frame); goto out; } while (0)

    for (uint32_t i = 0; i < z->populated;) {
        struct page *p = &z->pages[i];
        /* The room first, with acquire: a block leaves a room outside the
         * lock by changing its state and then clearing room_of with a
         * release store, so a cleared room_of read here shows the new
         * state below (the other way, into a room, happens under the lock,
         * but for room_adopt's, below). */
        unsigned rid = atomic_load_explicit(&z->room_of[i], memory_order_acquire);
        unsigned st = pg_state(p), o = pg_order(p);
        if (st == PG_TAIL)
            FAIL(LAB_ECHECK_STATE, "a TAIL frame that belongs to no block", i);
        if (st >= PG_NR_STATES)
            FAIL(LAB_ECHECK_STATE, "a frame in no valid state", i);
        if (o > z->max_order)
            FAIL(LAB_ECHECK_STATE, "a block head with an order above max_order", i);
        uint32_t n = 1u << o;
        if ((i & (n - 1)) != 0 || (uint64_t)i + n > z->populated)
            FAIL(LAB_ECHECK_ALIGN, "a block not aligned to its order, or past the end", i);
        for (uint32_t j = i + 1; j < i + n; j++)
            if (pg_state(&z->pages[j]) != PG_TAIL)
                FAIL(LAB_ECHECK_ALIGN, "a frame inside a block that is not TAIL", j);
        if ((st == PG_FREE || st == PG_VOID) && o < z->max_order) {
            uint32_t b = i ^ n;
            if (b < z->populated && pg_state(&z->pages[b]) == st && pg_order(&z->pages[b]) == o)
                FAIL(LAB_ECHECK_BUDDY, "two free buddies that should have merged", i);
        }
        if (st == PG_ROOM && rid == 0)
            FAIL(LAB_ECHECK_STATE, "a block in a room's state that names no room", i);
        /* The descriptor's copy of the room id is cleared first when a block
         * leaves its room (pg_leave_room): it is room_of's, or 0 in passing.
         * A block a room's slow path took from the zone is adopted after
         * the lock is let go (room_adopt: the copy first, then room_of), so
         * an ALLOCATED block may show the copy while room_of is still 0. */
        unsigned copy = atomic_load_explicit(&p->room, memory_order_relaxed);
        if (copy != 0 && copy != rid && !(rid == 0 && st == PG_ALLOCATED))
            FAIL(LAB_ECHECK_STATE, "a descriptor names a room other than room_of's", i);
        if (rid != 0 && st != PG_ROOM && st != PG_RESERVE && st != PG_ALLOCATED && st != PG_DEFERRED)
            FAIL(LAB_ECHECK_STATE, "a zone block that still names a room", i);
        if ((st == PG_ROOM || st == PG_RESERVE) && rid != 0 && rid <= nroom)
            room_pages[(st == PG_RESERVE ? nroom + 1 : 0) + rid] += n;
        by_state[st] += n;
        i += n;
    }
    for (uint32_t i = z->populated; i < z->nr_pages; i++)
        if (pg_state(&z->pages[i]) != PG_TAIL)
            FAIL(LAB_ECHECK_STATE, "a written descriptor in the unpopulated range", i);

    if (by_state[PG_VOID] != z->void_pages || by_state[PG_ISOLATED] != z->void_inflight)
        FAIL(LAB_ECHECK_COUNT, "VOID or ISOLATED pages differ from the void's counters", NIL);
    if (by_state[PG_FREE] + (z->nr_pages - z->populated) != z->free_pages)
        FAIL(LAB_ECHECK_COUNT, "free pages differ from the zone's counter", NIL);
    size_t listed = 0, reserved = 0, voided = 0;
    for (unsigned o = 0; o <= z->max_order; o++) {
        if ((err = check_list(z, &z->area[o], o, PG_FREE, report, &listed)))
            goto out;
        if (((z->nonempty >> o) & 1) != (z->area[o].head != NIL))
            FAIL(LAB_ECHECK_COUNT, "the non-empty bitmap disagrees with a free list", NIL);
        if ((err = check_list(z, &z->ha_area[o], o, PG_RESERVE, report, &reserved)))
            goto out;
        if ((err = check_list(z, &z->void_area[o], o, PG_VOID, report, &voided)))
            goto out;
    }
    if (voided != z->void_pages)
        FAIL(LAB_ECHECK_COUNT, "void lists differ from the void's counter", NIL);
    if (listed != by_state[PG_FREE])
        FAIL(LAB_ECHECK_COUNT, "free blocks that are on no free list", NIL);
    if (reserved != z->ha_pages)
        FAIL(LAB_ECHECK_COUNT, "high-order atomic reserve differs from its counter", NIL);

    /* Rooms: only those whose owner was not inside a slow-path call during
     * the walk (their sequence words were even and did not move) and whose
     * stocks' counts did not move; the others are in motion and are checked
     * next time. */
    for (uint32_t id = 1; id <= nroom; id++) {
        struct lab_room *r = atomic_load(&a->rooms[id]);
        if (!r)
            continue;
        /* The counters first, then the sequence again (room_moved): an
         * operation that starts after the walk must not look like a
         * mismatch. */
        const uint64_t *w = room_seq + RS * id;
        size_t stock = 0, reserve = atomic_load_explicit(&r->nr_reserve, memory_order_relaxed);
        bool overfull = false;
        /* a window's entries are the stock's but still handed out (ALLOCATED):
         * none of them is counted in PG_ROOM (handoff.c) */
        bool window = atomic_load_explicit(&r->win, memory_order_relaxed) != NULL;
        for (unsigned o = 0; o <= r->max_order; o++) {
            size_t k = atomic_load_explicit(&r->stk[o].n, memory_order_relaxed);
            if (!(o == 0 && window))
                stock += (k - atomic_load_explicit(&r->stk[o].base, memory_order_relaxed)) << o;
            overfull |= k > r->stk[o].high + r->stk[o].batch;
        }
        if (room_moved(r, w))
            continue;
        /* A fast call in flight all along, or one that ended after the look
         * above (then it is skipped, as in motion). */
        if (room_pages[id] != stock && !room_fast_call_in_flight(r, room_pages[id], stock) && !room_moved(r, w))
            FAIL(LAB_ECHECK_COUNT, "a room's stock differs from its counter", id);
        if (room_pages[nroom + 1 + id] != reserve)
            FAIL(LAB_ECHECK_COUNT, "a room's reserve differs from its counter", id);
        if (reserve > r->reserve_target)
            FAIL(LAB_ECHECK_WMARK, "a room's reserve above its configured size", id);
        if (overfull)
            FAIL(LAB_ECHECK_COUNT, "a room's stock above high + batch (its array overflows next)", id);
    }
out:
    if (room_pages)
        plat_unmap(room_pages, map_bytes);
    return err;
}
#undef FAIL

int lab_check(lab_arena *a)
{
    if (!a)
        return LAB_EINVAL;
    lab_arena_flush(a);
    zone_lock(&a->zone);
    int err = zone_check_locked(a, true, true);
    zone_unlock(&a->zone);
    return err;
}

/* Debug builds: a full check every so often (more often on small arenas), so
 * that a broken invariant is caught near the operation that broke it.  Never
 * waits for the lock: this may run in a signal handler. */
void debug_check_every_op(struct lab_arena *a, bool may_block)
{
    if (!LAB_DEBUG_ON)
        return;
    struct zone *z = &a->zone;
    uint64_t every = z->nr_pages / 64 + 1;
    uint64_t n = __atomic_add_fetch(&z->ops_since_check, 1, __ATOMIC_RELAXED);
    if (n % every != 0 || !zone_trylock(z))
        return;
    int err = zone_check_locked(a, true, may_block);
    zone_unlock_nowake(z);
    if (err)
        lab_assert_fail("lab_check() == 0 after an operation", __FILE__, __LINE__);
}

