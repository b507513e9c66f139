/*
 * void.c - the void: free memory decommitted back to the machine, on lists
 * of its own, and re-committed on demand (step 6) or by the background
 * reclaimer.  Trim puts blocks there; nothing else does.
 */
#include "fault.h"

/* ---- the void ---------------------------------------------------------------
 * Decommitted free blocks live on their own lists in state VOID, merged with
 * VOID buddies as free blocks are, so re-commit can take large blocks.  They
 * never merge with FREE buddies: a FREE block is committed memory that
 * atomic requests may touch without a page fault, a VOID block is not. */
void void_put(struct zone *z, uint32_t frame, unsigned order)
{
    z->void_pages += (size_t)1 << order;
    pg_set_state(&z->pages[frame], PG_TAIL);
    while (order < z->max_order) {
        uint32_t buddy = frame ^ (1u << order);
        if (buddy >= z->populated)
            break;
        struct page *b = &z->pages[buddy];
        if (pg_state(b) != PG_VOID || pg_order(b) != order)
            break;
        list_unlink(z, &z->void_area[order], buddy);
        pg_set_state(b, PG_TAIL);
        frame &= ~(1u << order);
        order++;
    }
    struct page *p = &z->pages[frame];
    pg_set_order(p, order);
    pg_set_state(p, PG_VOID);
    list_push(z, &z->void_area[order], frame);
}

/* Take the smallest VOID block of at least min_order (falling back to the
 * largest there is); NIL when the void is empty. */
uint32_t void_take(struct zone *z, unsigned min_order, unsigned *order)
{
    int o;
    for (o = (int)min_order; o <= (int)z->max_order; o++)
        if (z->void_area[o].head != NIL)
            break;
    if (o > (int)z->max_order)
        for (o = (int)min_order - 1; o >= 0; o--)
            if (z->void_area[o].head != NIL)
                break;
    if (o < 0)
        return NIL;
    uint32_t frame = z->void_area[o].head;
    list_unlink(z, &z->void_area[o], frame);
    z->void_pages -= (size_t)1 << o;
    *order = (unsigned)o;
    return frame;
}

/* ---- the void ---------------------------------------------------------------
 * Trim decommits free blocks and moves them to the void lists; step 6 of the
 * path (and the background reclaimer) re-commits them.  The system calls run
 * without the zone lock: blocks are taken off their lists first (state
 * ISOLATED, counted in void_inflight, so no merge can reach them), as Linux's free page reporting isolates the pages
 * it reports.  Never below `keep_pages` of committed free memory, so the
 * reserves atomic requests rely on stay committed and fault-free. */
/* One batch: at most TRIM_BATCH blocks isolated in one lock hold, so an
 * atomic request that finds the lock busy waits out a bounded hold (and a
 * trim of a large arena makes many short ones).  Returns the pages
 * decommitted; *refused says the OS refused some. */
#define TRIM_BATCH 64u

static size_t trim_batch(struct lab_arena *a, size_t keep_pages, bool split, size_t budget, bool *refused)
{
    struct zone *z = &a->zone;
    uint32_t isolated = NIL;
    unsigned n_iso = 0;
    zone_lock(z);
    for (int o = (int)z->max_order; o >= (int)z->trim_min_order && n_iso < TRIM_BATCH; o--) {
        uint32_t f;
        while (n_iso < TRIM_BATCH && (f = z->area[o].head) != NIL &&
               z->free_pages >= keep_pages + z->trim_hold + ((size_t)1 << o) && ((size_t)1 << o) <= budget) {
            budget -= (size_t)1 << o;
            buddy_remove_free(z, f, (unsigned)o);
            pg_set_state(&z->pages[f], PG_ISOLATED);
            z->void_inflight += (size_t)1 << o;
            z->pages[f].next = isolated;
            isolated = f;
            n_iso++;
        }
        /* The floor falls inside the next block of this order: split it,
         * and the orders below give back what lies above the floor, down to
         * the smallest block trim gives back (else an arena of one
         * max-order block could give back nothing, and any arena kept up
         * to a max-order block more than it was asked to).  Only with the
         * budget for a half: the next order then takes the lower half (the
         * head of its list) or splits it in turn, so one half of every
         * split leaves for the void.  A split whose halves both stayed
         * would leave two free buddies that never merge again, and the
         * block could not be handed out whole.  Not for the idle trimmer
         * (see trim_above). */
        size_t floor = keep_pages + z->trim_hold;
        if (split && n_iso < TRIM_BATCH && o > (int)z->trim_min_order && (f = z->area[o].head) != NIL &&
            z->free_pages < floor + ((size_t)1 << o) && z->free_pages >= floor + ((size_t)1 << z->trim_min_order) &&
            ((size_t)1 << (o - 1)) <= budget)
            buddy_split_free(z, f, (unsigned)o);
    }
    zone_unlock(z);
    pause_point(PP_TRIM_DECOMMIT);
    /* A block the OS refused to decommit is still backed: it goes back to
     * the free lists, not to the void, and is not counted as trimmed.
     * VOID_REFUSED in page.prev marks the refused ones until the lock is
     * taken again (isolated blocks are on no doubly linked list). */
    size_t pages = 0;
    for (uint32_t f = isolated; f != NIL; f = z->pages[f].next) {
        size_t n = (size_t)1 << pg_order(&z->pages[f]);
        bool done = os_decommit(addr_of(z, f), n << PAGE_SHIFT, (a->cfg.flags & LAB_ARENA_MADV_FREE) != 0);
        z->pages[f].prev = done ? NIL : VOID_REFUSED;
        if (done)
            pages += n;
        else
            *refused = true;
    }
    zone_lock(z);
    while (isolated != NIL) {
        uint32_t next = z->pages[isolated].next;
        unsigned o = pg_order(&z->pages[isolated]);
        z->void_inflight -= (size_t)1 << o;
        if (z->pages[isolated].prev == VOID_REFUSED) {
            z->pages[isolated].prev = NIL;
            buddy_put(z, isolated, o);
        } else {
            void_put(z, isolated, o);
        }
        isolated = next;
    }
    zone_unlock(z);
    return n_iso ? pages : (size_t)-1;
}

/* `split`: also the block the floor falls in (lab_arena_trim, whose floor
 * is what the reserves need).  The idle trimmer (floor high) gives back
 * whole blocks only: the background reclaimer re-commits a block of the
 * order a non-blocking request found missing (reclaim_wake_order), which
 * takes free pages a little above high; split down to high, that block
 * went back to the void after every trim_delay_ms, the requests of its
 * order failed again, and the reclaimer re-committed it again. */
size_t trim_above(struct lab_arena *a, size_t keep_pages, bool split)
{
    if (a->trim_off) {   /* caller memory or locked memory: see lab_arena_create */
        ctr_add_shared(&a->st.trim_refused, 1);
        return 0;
    }
    /* One pass over the arena at most: a block that the reclaimer re-commits
     * while the trim runs (free pages fell below low) is not trimmed again
     * by the same call, and the call never reports more than the arena. */
    size_t pages = 0, got, budget = a->zone.nr_pages;
    bool refused = false;
    while (!refused && budget && (got = trim_batch(a, keep_pages, split, budget, &refused)) != (size_t)-1) {
        pages += got;
        budget = got < budget ? budget - got : 0;
    }
    ctr_add_shared(&a->st.trimmed_pages, pages);
    return pages << PAGE_SHIFT;
}

/* Step 6: bring at least `want_pages` back from the void (blocks of at least
 * min_order first), committing them before they reach the free lists so no
 * later atomic request faults on them.  May block (system calls). */
size_t void_recommit(struct lab_arena *a, size_t want_pages, unsigned min_order)
{
    struct zone *z = &a->zone;
    size_t got = 0;
    while (got < want_pages) {
        unsigned o;
        zone_lock(z);
        uint32_t f = z->void_pages ? void_take(z, min_order, &o) : NIL;
        if (f != NIL) {
            pg_set_state(&z->pages[f], PG_ISOLATED);
            z->void_inflight += (size_t)1 << o;
        }
        zone_unlock(z);
        if (f == NIL)
            break;
        char *base = addr_of(z, f);
        size_t bytes = (size_t)LAB_PAGE_SIZE << o;
        if (a->page_hooks)
            page_hook_recommit(a, base, bytes);   /* the free pages' marks around it */
        else
            os_recommit(base, bytes);
        zone_lock(z);
        z->void_inflight -= (size_t)1 << o;
        buddy_put(z, f, o);
        zone_unlock(z);
        got += (size_t)1 << o;
    }
    ctr_add_shared(&a->st.recommitted_pages, got);
    return got;
}

