/*
 * room.c - exclusive per-context stocks of blocks of orders 0..3: a room's
 * life, from creation to destruction, and its statistics.
 *
 * A room belongs to one context: a thread, or a signal handler (the user
 * space interrupt).  Its owner pops and pushes block heads on private arrays,
 * one per order, with plain loads and stores: no lock, no atomic
 * read-modify-write.  The owner also writes the block's state byte on every
 * allocation and free; that descriptor line stays in the owner's cache,
 * because no other context writes it in the common case.
 *
 * Its other side, what other contexts do to a room (the return ring of
 * remote frees, reclaim taking its stock), is handoff.c; the owner's calls
 * are steps of path.c (allocation) and free.c (free).
 *
 * The reserve (order 0) is taken at creation and held in state RESERVE on a
 * private list, so no other room, flag or reclaim can reach it.  Blocks that
 * come back fill the stock first, and the reserve is topped up from the
 * stock when the stock has more than a batch, off the allocation's way.
 */
#include "fault.h"


void lab_room_config_init(lab_room_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof(*cfg));
    cfg->batch = 32;
    cfg->high = 4 * 32;
}

/* ---- create and destroy ----------------------------------------------------------- */

/* A stock's array: up to high + batch blocks, and one more. */
static size_t stock_bytes(size_t high, size_t batch)
{
    return (high + batch + 1) * sizeof(char *);
}

/* A room with its order-0 stock's array at its end. */
static size_t room_bytes(size_t high, size_t batch)
{
    return sizeof(struct lab_room) + stock_bytes(high, batch);
}

static size_t ring_bytes(const struct lab_room *r)
{
    return ((size_t)r->ring_mask + 1) * sizeof(uint64_t);
}

/* The room's metadata back to the platform: its stocks, its ring, itself. */
static void room_release(struct lab_room *r)
{
    for (unsigned o = 1; o < ROOM_ORDERS; o++)
        meta_free(r->stk[o].addr, stock_bytes(r->stk[o].high, r->stk[o].batch));
    meta_free((void *)r->ring, ring_bytes(r));
    meta_free(r->lanes, ROOM_LANES * sizeof(struct room_lane));
    meta_free(r, room_bytes(r->stk[0].high, r->stk[0].batch));
}

/* A room of an arena made to take no page fault after its creation
 * (LAB_ARENA_PREFAULT, _MLOCK) makes its own arrays resident too:
 * otherwise the owner's first refill writes its stock, and each freer's
 * first lap of its lane writes 16 pages of slots, faulting them in, in
 * whatever context those run (a signal handler's free included).  They
 * are not locked: they sit on the heap's pages or mappings of their own,
 * which a process that must not be paged out locks whole (mlockall). */
static void room_commit(struct lab_room *r)
{
    /* not published yet: no one else reads or writes it */
    os_touch(r, room_bytes(r->stk[0].high, r->stk[0].batch));
    for (unsigned o = 1; o <= r->max_order; o++)
        os_touch(r->stk[o].addr, stock_bytes(r->stk[o].high, r->stk[o].batch));
    os_touch((void *)r->ring, ring_bytes(r));
    if (r->lanes)
        os_touch(r->lanes, ROOM_LANES * sizeof(struct room_lane));
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
            atomic_load(&old->ring_head) == tail_get(old) && room_lane_entries(old, NULL) == 0)
            return id;   /* the caller retires it, once the id is surely taken */
    }
    return 0;
}

/* A room's serial: every room of every arena of the process gets its own,
 * so a thread's remembered lane (thread_area.hit) is never taken for one
 * of a room that took the same address or the same id later. */
static uint64_t room_serial_next(void)
{
    static _Atomic uint64_t last;
    return atomic_fetch_add_explicit(&last, 1, memory_order_relaxed) + 1;
}

#define RING_DEFAULT 1024u
#define RESERVE_RECOMMIT_TRIES 8u   /* re-commits for a reserve that other requests keep taking */
#define RESERVE_TRIM_WAITS 1000u     /* 1 ms each, for trims in flight to reach the void */

int lab_room_create(lab_arena *a, const lab_room_config *cfg, lab_room **out)
{
    if (!out)
        return LAB_EINVAL;
    *out = NULL;
    if (!a || !cfg)
        return LAB_EINVAL;
    if (cfg->batch == 0)
        return LAB_EBATCH;
    /* The reserve serves order 0 only: a quota without room for a block of
     * max_order beside it would fail every request of that order, and a
     * NOFAIL one would wait for ever */
    if (cfg->quota && (cfg->quota < cfg->reserve ||
                       (cfg->max_order > 0 && cfg->max_order < ROOM_ORDERS &&
                        cfg->quota - cfg->reserve < (size_t)1 << cfg->max_order)))
        return LAB_EQUOTA;
    if (cfg->reserve > a->zone.nr_pages)
        return LAB_ERESERVE;
    if (cfg->max_order >= ROOM_ORDERS || cfg->max_order > a->zone.max_order)
        return LAB_EORDER;
    if (cfg->flags & ~(LAB_ROOM_NOWARN | LAB_ROOM_TAKE_ALL))
        return LAB_EFLAGS;
    _Static_assert(RING_MAX <= UINT32_MAX / 16, "a stock's high (up to 4 x RING_MAX) and batch, and twice their sum, fit 32 bits");
    if (cfg->ring > RING_MAX || cfg->batch > RING_MAX || cfg->high > RING_MAX)
        return LAB_ENOMEM;   /* an absurd size would overflow the arrays' sizes */
    size_t high = cfg->high ? cfg->high : 4 * cfg->batch;
    if (high < cfg->batch)
        high = cfg->batch;
    struct lab_room *r = meta_alloc(room_bytes(high, cfg->batch));
    if (!r)
        return LAB_ENOMEM;
    r->arena = a;
    r->pages = a->zone.pages;
    r->room_of = a->zone.room_of;
    r->base = a->zone.base;
    r->desc_bias = (uintptr_t)a->zone.pages - ((uintptr_t)a->zone.base >> PAGE_SHIFT) * sizeof(struct page);
    r->nr_pages = a->zone.nr_pages;
    r->page_hooks = a->page_hooks;
    atomic_init(&r->alloc_floor, !LAB_DEBUG_ON && a->page_hooks ? SIZE_MAX : 0);
    r->strict = a->strict_free;
    r->gfp_or = (cfg->flags & LAB_ROOM_NOWARN) ? LAB_GFP_NOWARN : 0;
    r->take_all = (cfg->flags & LAB_ROOM_TAKE_ALL) != 0;
    r->max_order = (uint8_t)cfg->max_order;
    r->quota = cfg->quota;
    r->reserve_head = NIL;
    r->reserve_target = cfg->reserve;
    bool ok = true;
    /* Higher orders keep as many pages, in fewer blocks, as Linux scales its
     * pcp batch by order. */
    for (unsigned o = 0; o <= r->max_order; o++) {
        struct room_stock *s = &r->stk[o];
        s->batch = cfg->batch >> o ? (uint32_t)(cfg->batch >> o) : 1;   /* 32 bits: checked above */
        s->high = high >> o > s->batch ? (uint32_t)(high >> o) : s->batch;
        s->span = blocks_in(r->nr_pages, o);
        s->addr = o == 0 ? r->addr0 : meta_alloc(stock_bytes(s->high, s->batch));
        ok &= s->addr != NULL;
    }
    uint32_t ring = cfg->ring ? (uint32_t)cfg->ring : RING_DEFAULT;
    uint32_t size = 1;
    while (size < ring || size < 2 * (r->stk[0].high + r->stk[0].batch))
        size <<= 1;
    if (size > RING_MAX)
        size = RING_MAX;
    r->ring_mask = size - 1;
    r->ring = meta_alloc(ring_bytes(r));
    if (r->ring)
        for (uint32_t i = 0; i < size; i++)
            atomic_init(&r->ring[i], ring_slot(i, 0, 0));
    if (a->lanes_ok) {
        r->lanes = meta_alloc(ROOM_LANES * sizeof(struct room_lane));
        ok &= r->lanes != NULL;
    }
    /* handoff.c, the window: where an entry handed out unread is the contract */
    r->window_ok = !LAB_DEBUG_ON && !r->strict && !r->page_hooks && r->max_order == 0 && r->lanes != NULL;
    name_copy(r->name, sizeof(r->name), cfg->name ? cfg->name : "room");
    if (!ok || !r->ring) {
        room_release(r);
        return LAB_ENOMEM;
    }
    if (a->cfg.flags & (LAB_ARENA_PREFAULT | LAB_ARENA_MLOCK))
        room_commit(r);
    /* The reserve comes from above the min watermark: it must not eat the
     * zone's own emergency pool.  The id is taken under the zone lock, after
     * every check, so a refused room uses none up. */
    struct zone *z = &a->zone;
    /* Pages a trim put in the void count for a reserve: this call may
     * block, so it re-commits what the free pages lack first, with the lock
     * let go (a system call each).  Trims leave the reserve's pages alone
     * until it is taken (trim_hold); a trim that started earlier may hold
     * some in flight, on their way to the void (void_inflight), and other
     * requests may take them: so a few times, and a trim in flight is
     * waited out. */
    zone_lock(z);
    z->trim_hold += cfg->reserve;
    for (unsigned tries = 0, waits = 0; cfg->reserve && tries < RESERVE_RECOMMIT_TRIES;) {
        size_t need = z->wmark[WMARK_MIN] + cfg->reserve, have = z->free_pages, in_void = z->void_pages;
        /* only if it can be enough: a refused room re-commits nothing */
        if (have >= need || have + in_void + z->void_inflight < need ||
            (!in_void && waits == RESERVE_TRIM_WAITS))
            break;
        zone_unlock(z);
        if (in_void) {
            void_recommit(a, need - have, 0);
            tries++;
            pause_point(PP_RESERVE_RECOMMIT);
        } else {
            waits++;
            pause_point(PP_RESERVE_TRIM_WAIT);
            plat_sleep_ms(1);
        }
        zone_lock(z);
    }
    size_t floor = z->wmark[WMARK_MIN];
    uint32_t id = room_id_take(a);
    /* a reserve of 0 takes nothing: a zone below min (under pressure, after
     * atomic requests) refuses only rooms that would take pages */
    int err = id == 0 ? LAB_EBUSY : cfg->reserve && z->free_pages < floor + cfg->reserve ? LAB_ERESERVE : 0;
    if (err) {
        z->trim_hold -= cfg->reserve;
        zone_unlock(z);
        room_release(r);
        return err;
    }
    struct lab_room *old = atomic_load(&a->rooms[id]);
    if (old) {
        /* A destroyed room whose id this takes: its counts go on in the
         * arena's, and it to the graveyard (late handles still find it
         * dead), freed with the arena. */
        room_stats_retire(a, old);   /* rooms_gen odd until the new room is in */
        old->graveyard = a->graveyard;
        a->graveyard = old;
    }
    if (id > atomic_load(&a->nr_rooms_made))
        atomic_store(&a->nr_rooms_made, id);
    r->id = (uint16_t)id;
    r->serial = room_serial_next();
    for (unsigned o = 0; o <= r->max_order; o++)
        r->stk[o].tag_out = page_tag(PG_ALLOCATED, o, id),
        r->stk[o].tag_in = r->stk[o].tag_pop = page_tag(PG_ROOM, o, id);
    /* Published at once, holding its id: the lock is let go between batches
     * of the reserve, so a large reserve never holds it for long (atomic
     * requests meanwhile wait out at most RESERVE_BATCH pages of one hold).
     * Nothing of the room is out yet, so no freer looks it up.  The pages
     * above the reserve were counted under the lock; others may take them
     * meanwhile, so each batch checks again and stops at min. */
    room_update_free_limit(r);
    atomic_store_explicit(&a->rooms[id], r, memory_order_release);
    if (old)
        atomic_store_explicit(&a->rooms_gen, atomic_load_explicit(&a->rooms_gen, memory_order_relaxed) + 1,
                              memory_order_release);
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
        pause_point(PP_RESERVE_BATCH);
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
        z->trim_hold -= cfg->reserve;
        zone_unlock(z);
        if (r->lanes)
            lanes_close(r);   /* a misused free may have claimed one meanwhile */
        return LAB_ERESERVE;
    }
    room_update_free_limit(r);
    z->trim_hold -= cfg->reserve;
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
    /* A steal that looked at `dead` before it was set may still be taking
     * the stocks and the ring: seq_cst on both sides (the exchanges of
     * `dead` and `steal`, the loads after them), so either it saw `dead`
     * or this sees it.  The steal may be inside its membarrier call, or
     * preempted by this very thread (a SCHED_FIFO owner on its CPU): a few
     * spins, then naps, as lanes_flush_dead waits out a freer. */
    for (unsigned spins = 0; atomic_load_explicit(&r->steal, memory_order_seq_cst); spins++) {
        if (spins < 64)
            plat_cpu_relax();
        else
            plat_sleep_ms(1);
    }
    zone_lock(z);
    room_window_close(r);   /* under the lock, as the stocks change here (lab_check);
                               before the lanes are flushed from their tails */
    for (unsigned o = 0; o <= r->max_order; o++) {
        struct room_stock *s = &r->stk[o];
        for (size_t i = rd(&s->base); i < rd(&s->n); i++)
            buddy_put(z, frame_of(z, s->addr[i]), o);
        stock_n_set(r, o, 0);
        wr(&s->base, 0);
    }
    atomic_store_explicit(&r->stock_moved, false, memory_order_relaxed);
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
    lanes_flush_dead(a, r);
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
        out->stock += stock_len(&r->stk[o]) << o;
    out->reserve = rd(&r->nr_reserve);
    out->out = room_out(r);
    out->in_ring = atomic_load_explicit(&r->ring_head, memory_order_relaxed) - tail_get(r) +
                   room_lane_entries(r, NULL);
}
