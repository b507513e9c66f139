/*
 * stats.c - the counters, gathered into lab_stats (hosted/print.c prints them).
 */
#include "fault.h"

/* What a room adds to the arena's allocations by step and frees. */
static void room_totals(struct lab_room *r, uint64_t by_step[LAB_STEP_COUNT], uint64_t *frees)
{
    /* step 1 is counted by the owner alone, off the shared counters */
    by_step[LAB_STEP_ROOM] += room_allocs(r) - ctr_get(&r->st.slow_allocs);
    for (int i = 0; i < LAB_STEP_COUNT; i++)
        by_step[i] += ctr_get(&r->st.by_step[i]);
    *frees += room_frees_owner(r) + ctr_get(&r->st.frees_remote) + ctr_get(&r->gone);
}

/* A destroyed room leaves the rooms' table (its id taken again): what it
 * counted stays in the arena's totals.  Zone lock held.  Between the move
 * of its counts and the new room's taking its place in the table, a
 * reader would count it twice (in the table and in the arena's totals),
 * and the totals of its next snapshot would go down: rooms_gen is odd
 * meanwhile, a sequence count (lab_room_create makes it even again). */
void room_stats_retire(struct lab_arena *a, struct lab_room *r)
{
    atomic_store_explicit(&a->rooms_gen, atomic_load_explicit(&a->rooms_gen, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    uint64_t by_step[LAB_STEP_COUNT] = { 0 }, frees = 0;
    room_totals(r, by_step, &frees);
    for (int i = 0; i < LAB_STEP_COUNT; i++)
        ctr_add_shared(&a->st.alloc_by_step[i], by_step[i]);
    ctr_add_shared(&a->st.frees, frees);
}

/* The rooms' figures, and the allocations by step and frees: the rooms'
 * and the arena's together, within one even rooms_gen (room_stats_retire).
 * A reader that keeps meeting reused ids gives up after a few tries and
 * reads under the zone lock, which lab_room_create holds over the move. */
#define STATS_TRIES 8
static void rooms_and_totals(struct lab_arena *a, lab_stats *out)
{
    bool locked = false;
    for (unsigned tries = 0;; tries++) {
        if (tries == STATS_TRIES) {
            zone_lock(&a->zone);
            locked = true;
        }
        uint32_t gen = atomic_load_explicit(&a->rooms_gen, memory_order_acquire);
        memset(out->alloc_by_step, 0, sizeof(out->alloc_by_step));
        out->frees = 0;
        out->nr_rooms = out->room_pages = out->reserve_pages = out->deferred_pages = 0;
        uint32_t nroom = atomic_load(&a->nr_rooms_made);
        for (uint32_t id = 1; id <= nroom; id++) {
            struct lab_room *r = atomic_load(&a->rooms[id]);
            if (!r)
                continue;
            room_totals(r, out->alloc_by_step, &out->frees);
            if (atomic_load(&r->dead))
                continue;
            out->nr_rooms++;
            for (unsigned o = 0; o <= r->max_order; o++)
                out->room_pages += stock_len(&r->stk[o]) << o;
            out->reserve_pages += atomic_load_explicit(&r->nr_reserve, memory_order_relaxed);
            out->deferred_pages += room_ring_pages(r);
        }
        pause_point(PP_STATS_ROOMS);
        for (int i = 0; i < LAB_STEP_COUNT; i++)
            out->alloc_by_step[i] += ctr_get(&a->st.alloc_by_step[i]);
        out->frees += ctr_get(&a->st.frees);
        atomic_thread_fence(memory_order_acquire);
        if (locked) {
            zone_unlock(&a->zone);
            return;
        }
        if (!(gen & 1) && atomic_load_explicit(&a->rooms_gen, memory_order_relaxed) == gen)
            return;
    }
}

void lab_stats_get(lab_arena *a, lab_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    if (!a)
        return;
    lab_arena_flush(a);
    struct zone *z = &a->zone;
    zone_lock(z);
    /* The deferred frees are counted while the lock is held, with the free
     * lists: a free that finds it held by us goes on the deferred list,
     * and our unlock puts it back, after which it would be in neither
     * count. */
    size_t deferred = atomic_load_explicit(&z->deferred_pages, memory_order_relaxed);
    out->total_pages = z->nr_pages;
    out->free_pages = z->free_pages;
    out->max_order = z->max_order;
    for (unsigned o = 0; o <= z->max_order; o++)
        out->free_blocks[o] = z->area[o].nr_free;
    buddy_unpopulated_blocks(z, out->free_blocks);
    out->wmark_min = z->wmark[WMARK_MIN];
    out->wmark_low = z->wmark[WMARK_LOW];
    out->wmark_high = z->wmark[WMARK_HIGH];
    out->highatomic_pages = z->ha_pages;
    out->void_pages = z->void_pages + z->void_inflight;
    out->committed_bytes = ((size_t)z->populated - out->void_pages) << PAGE_SHIFT;
    zone_unlock(z);
    out->huge_mode = a->huge_mode;
    out->metadata_bytes = a->desc_bytes;
    out->resident_bytes = plat_resident(z->base, (size_t)z->nr_pages << PAGE_SHIFT);
    out->metadata_resident_bytes = plat_resident(z->pages, a->desc_bytes);

    rooms_and_totals(a, out);
    out->reserve_pages += out->highatomic_pages;
    out->deferred_pages += deferred;
    size_t held = out->free_pages + out->room_pages + out->reserve_pages + out->deferred_pages + out->void_pages;
    out->allocated_pages = held <= out->total_pages ? out->total_pages - held : 0;

    for (int i = 0; i < LAB_R_COUNT; i++)
        out->fail_by_reason[i] = ctr_get(&a->st.fail_by_reason[i]);
    for (int i = 0; i < LAB_CLASS_COUNT; i++)
        out->fail_by_class[i] = ctr_get(&a->st.fail_by_class[i]);
    out->misuse = ctr_get(&a->st.misuse);
    out->shrinker_runs = ctr_get(&a->st.shrinker_runs);
    out->shrinker_pages = ctr_get(&a->st.shrinker_pages);
    out->kswapd_wakes = ctr_get(&a->st.kswapd_wakes);
    out->kswapd_runs = ctr_get(&a->st.kswapd_runs);
    out->waits = ctr_get(&a->st.waits);
    out->trimmed_pages = ctr_get(&a->st.trimmed_pages);
    out->recommitted_pages = ctr_get(&a->st.recommitted_pages);
    out->rooms_drained_pages = ctr_get(&a->st.rooms_drained);
    out->trim_off = a->trim_off;
    out->trim_refused = ctr_get(&a->st.trim_refused);
}
