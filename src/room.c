/*
 * room.c - exclusive per-context stocks of order-0 pages.
 *
 * A room belongs to one context: a thread, or a signal handler (the user
 * space interrupt).  Its owner pops and pushes frame indices on a private
 * array with plain loads and stores: no lock, no atomic read-modify-write.
 * The one shared thing on that path is the page's state byte (a relaxed
 * store), which is how a free from elsewhere, or a double free, is told
 * apart.
 *
 * Other contexts free room pages with lab_free_pages.  They claim the page
 * with a CAS on its state and push it on the room's remote list, a Treiber
 * stack whose only consumer takes the whole list with one exchange: there is
 * no single-node pop, hence no ABA.
 *
 * Why this is async-signal-safe (API.md): the recommended pattern gives each
 * signal handler its own room, so a handler never touches the stock of the
 * code it interrupted.  Everything a handler's room does outside its stock
 * is lock-free (remote list exchange, deferred zone frees) or bounded (a
 * zone trylock that falls through, never waits).  A handler that interrupts
 * the owner of the *same* room would corrupt it; debug builds catch that
 * with the room's sequence word (odd while the owner is inside an
 * operation) and report LAB_ENOTOWNER.  The same word lets lab_check skip a
 * room in motion.
 *
 * The reserve is taken at creation and held in state RESERVE, on a private
 * list, so no other room, flag or reclaim can reach it.  Frees refill it
 * before the stock.  The stock is bounded: above `high` the owner sends
 * `batch` of its coldest pages back to the zone.
 */
#include "internal.h"

#include <stdlib.h>

static inline struct zone *room_zone(struct lab_room *r) { return &r->arena->zone; }
static inline size_t rd(_Atomic size_t *v) { return atomic_load_explicit(v, memory_order_relaxed); }
static inline void wr(_Atomic size_t *v, size_t x) { atomic_store_explicit(v, x, memory_order_relaxed); }

void lab_room_config_init(lab_room_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof(*cfg));
    cfg->batch = 32;
    cfg->high = 4 * 32;
}

/* ---- owner bracket -------------------------------------------------------
 * The sequence word is odd while the owner is inside an operation.  It lets
 * lab_check skip a room in motion, and lets debug builds catch a context
 * that is not the owner (another thread, or a handler that interrupted the
 * owner).  Plain stores on the owner's side. */
bool room_enter_checked(struct lab_room *r, const char *op)
{
    uint32_t s = atomic_load_explicit(&r->seq, memory_order_relaxed);
    if (unlikely(atomic_load_explicit(&r->dead, memory_order_relaxed))) {
        misuse(r->arena, LAB_EROOMDEAD, r, NIL, op);
        return false;
    }
    if (LAB_DEBUG_ON) {
        const void *me = this_thread_token(), *expect = NULL;
        if (!atomic_compare_exchange_strong(&r->owner, &expect, me) && expect != me) {
            misuse(r->arena, LAB_ENOTOWNER, r, NIL, "room used by a thread that does not own it");
            return false;
        }
        if (s & 1) {
            misuse(r->arena, LAB_ENOTOWNER, r, NIL,
                   "room re-entered: a signal handler interrupted its owner (give the handler its own room)");
            return false;
        }
    }
    atomic_store_explicit(&r->seq, s + 1, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    return true;
}

static inline void stock_push(struct lab_room *r, uint32_t frame)
{
    size_t n = rd(&r->nr_stock);
    lab_assert(n < r->nr_stock_cap);
    pg_set_state(&r->pages[frame], PG_ROOM);
    r->stock[n] = frame;
    wr(&r->nr_stock, n + 1);
}

static inline void reserve_push(struct lab_room *r, uint32_t frame)
{
    struct page *p = &room_zone(r)->pages[frame];
    pg_set_state(p, PG_RESERVE);
    p->next = r->reserve_head;
    r->reserve_head = frame;
    wr(&r->nr_reserve, rd(&r->nr_reserve) + 1);
}

/* ---- back to the zone ---------------------------------------------------
 * Never waits for the zone lock: the owner may be a signal handler.  With
 * the lock, the pages go straight onto the free lists; without it, each goes
 * on the zone's deferred list for the holder to drain. */
static void return_to_zone(struct lab_room *r, const uint32_t *frames, size_t n)
{
    struct lab_arena *a = r->arena;
    struct zone *z = room_zone(r);
    if (zone_lock_atomic(z)) {
        for (size_t i = 0; i < n; i++)
            buddy_put(z, frames[i], 0);
        zone_unlock_nowake(z);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        pg_set_state(&z->pages[frames[i]], PG_DEFERRED);
        zone_free_block(a, frames[i], 0);
    }
}

/* Send the `n` coldest pages of the stock (its bottom) back to the zone. */
static void room_drain(struct lab_room *r, size_t n)
{
    size_t have = rd(&r->nr_stock);
    if (n > have)
        n = have;
    if (n == 0)
        return;
    return_to_zone(r, r->stock, n);
    memmove(r->stock, r->stock + n, (have - n) * sizeof(uint32_t));
    wr(&r->nr_stock, have - n);
    ctr_inc(&r->st.drains);
}

/* ---- step 2: remote frees -------------------------------------------------
 * When the owner's private list of remote frees is empty, one exchange takes
 * the whole shared list into it; then each call hands out one page.  Never a
 * walk of the list: a burst of thousands of remote frees costs the
 * allocation that finds them one exchange, not thousands of steps.  Pages go
 * to a depleted reserve first.  NIL when there is nothing to take.
 *
 * An entry of the list is a single page, or a magazine: a page freed by
 * lab_free_pages_bulk whose own memory holds the frame indices of the
 * others freed with it (page.aux says how many).  A magazine hands out its
 * indices first, then itself; knowing the next frames in advance lets the
 * owner prefetch their descriptors (written on the freeing CPU) several at a
 * time instead of one cache miss after another down a linked list. */
#define MAG_PREFETCH 8

uint32_t room_take_remote(struct lab_room *r)
{
    struct zone *z = room_zone(r);
    for (;;) {
        uint32_t f = r->remote_local, out;
        if (f == NIL) {
            if (atomic_load_explicit(&r->remote, memory_order_relaxed) == NIL)
                return NIL;
            f = atomic_exchange_explicit(&r->remote, NIL, memory_order_acquire);
            if (f == NIL)   /* reclaim took the list between our look and our exchange */
                return NIL;
            r->remote_local = f;
            r->mag_pos = 0;
        }
        struct page *head = &z->pages[f];
        uint32_t count = head->aux;
        /* Up to `high` only: the owner's next free pushes one more page before it
         * drains, and the stock holds high + batch + 1 (at most). */
        if (count && r->mag_pos == 0 && rd(&r->nr_stock) + count <= r->high &&
            rd(&r->nr_reserve) >= r->reserve_target) {
            /* The whole magazine into the stock at once: its descriptors are
             * written in one burst whose cache misses overlap, and the next
             * `count` allocations are step 1. */
            uint32_t *mag = magazine_of_frame(z, f);
            size_t n = rd(&r->nr_stock);
            for (uint32_t i = 0; i < count; i++) {
                lab_assert(pg_state(&z->pages[mag[i]]) == PG_DEFERRED && z->pages[mag[i]].room == r->id);
                pg_set_state(&z->pages[mag[i]], PG_ROOM);
                r->stock[n + i] = mag[i];
            }
            wr(&r->nr_stock, n + count);
            atomic_store_explicit(&r->remote_popped, ctr_get(&r->remote_popped) + count, memory_order_relaxed);
            atomic_store_explicit(&r->st.frees_remote, ctr_get(&r->st.frees_remote) + count, memory_order_relaxed);
            head->aux = 0;
            count = 0;      /* and the magazine's own page is handed out now */
        }
        if (count) {
            uint32_t *mag = magazine_of_frame(z, f), pos = r->mag_pos;
            if (pos == 0)
                for (uint32_t i = 0; i < count && i < MAG_PREFETCH; i++)
                    __builtin_prefetch(&z->pages[mag[i]], 1);
            if (pos < count) {
                out = mag[pos];
                r->mag_pos = pos + 1;
                if (pos + MAG_PREFETCH < count)
                    __builtin_prefetch(&z->pages[mag[pos + MAG_PREFETCH]], 1);
            } else {
                out = f;    /* the magazine's own page, last */
                head->aux = 0;
                r->remote_local = head->next;
                r->mag_pos = 0;
            }
        } else {
            out = f;
            r->remote_local = head->next;
            if (r->remote_local != NIL)   /* the next pop's descriptor, written on another CPU */
                __builtin_prefetch(&z->pages[r->remote_local], 1);
        }
        lab_assert(pg_state(&z->pages[out]) == PG_DEFERRED && z->pages[out].room == r->id);
        ctr_inc(&r->remote_popped);
        ctr_inc(&r->st.frees_remote);
        if (rd(&r->nr_reserve) < r->reserve_target) {
            reserve_push(r, out);
            continue;
        }
        return out;
    }
}

/* ---- step 3: refill from the zone -----------------------------------------
 * Up to `batch` pages in one lock hold, each above the request's floor and
 * within the quota.  Atomic contexts only try the lock. */
size_t room_refill_from_zone(struct lab_room *r, lab_gfp_t gfp, int *reason, int *step)
{
    struct lab_arena *a = r->arena;
    struct zone *z = room_zone(r);
    size_t want = r->batch;
    if (r->quota) {
        size_t held = rd(&r->nr_stock) + rd(&r->nr_reserve) + room_out(r);
        size_t room_left = held < r->quota ? r->quota - held : 0;
        if (room_left == 0) {
            *reason = LAB_R_QUOTA;
            return 0;
        }
        if (want > room_left)
            want = room_left;
    }
    if (unlikely(fault_should_fail(a, gfp, 0))) {
        *reason = LAB_R_INJECTED;
        return 0;
    }
    if (gfp & LAB_GFP_DIRECT_RECLAIM) {
        zone_lock(z);
    } else if (!zone_lock_atomic(z)) {
        *reason = LAB_R_WOULD_BLOCK;
        return 0;
    }
    size_t floor = zone_floor(z, gfp), got = 0;
    uint32_t f;
    while (got < want && zone_watermark_ok(z, 0, floor) && (f = buddy_take(z, 0)) != NIL) {
        z->pages[f].room = r->id;
        stock_push(r, f);
        got++;
    }
    if (got == 0)
        *reason = floor < z->wmark[WMARK_MIN] ? LAB_R_RESERVE_EMPTY : LAB_R_WATERMARK;
    *step = z->free_pages >= z->wmark[WMARK_MIN] ? LAB_STEP_ZONE : LAB_STEP_EMERGENCY;
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

/* ---- step 4: the private reserve ------------------------------------------ */
uint32_t room_take_reserve(struct lab_room *r)
{
    uint32_t f = r->reserve_head;
    if (f == NIL)
        return NIL;
    r->reserve_head = room_zone(r)->pages[f].next;
    wr(&r->nr_reserve, rd(&r->nr_reserve) - 1);
    ctr_inc(&r->st.reserve_allocs);
    return f;
}

/* A page the slow path got from the zone for this room: make it the room's. */
void room_adopt(struct lab_room *r, uint32_t frame)
{
    room_zone(r)->pages[frame].room = r->id;
}

/* ---- owner free -------------------------------------------------------------- */
static NOINLINE void room_free_misuse(struct lab_room *r, void *page)
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
    else if (st == PG_ALLOCATED && r->arena->guard && (p->aux & ~0xffu) == GUARD_TAG)
        misuse(r->arena, LAB_EINTERIOR, page, f, "pointer inside a guarded block, not at its first page");
    else if (st == PG_ALLOCATED && p->room != r->id)
        misuse(r->arena, LAB_ENOTROOMPAGE, page, f, "page was not handed out by this room (use lab_free_pages)");
    else if (st == PG_ALLOCATED)
        misuse(r->arena, LAB_EWRONGORDER, page, f, "room pages are order 0");
    else if (st == PG_TAIL && r->arena->guard && frame_is_guarded_head(z, f))
        misuse(r->arena, LAB_ENOTROOMPAGE, page, f, "page was not handed out by this room (use lab_free_pages)");
    else if (st == PG_TAIL && free_classify_tail(z, f) == LAB_EINTERIOR)
        misuse(r->arena, LAB_EINTERIOR, page, f, "pointer inside a block, not at its head");
    else if (st == PG_TAIL)
        misuse(r->arena, LAB_EDOUBLEFREE, page, f, "page is already free (merged into a larger block)");
    else
        misuse(r->arena, LAB_EDOUBLEFREE, page, f, "page is already free");
}

/* Everything that is not a plain push: checks that failed, the reserve to
 * refill, a drain to do, debug hooks. */
static NOINLINE void room_free_slow(lab_room *r, void *page)
{
    if (unlikely(!r))
        return;
    uintptr_t off = (uintptr_t)page - (uintptr_t)r->base;
    uint32_t f = (uint32_t)(off >> PAGE_SHIFT);
    struct page *pg = &r->pages[f];
    if (unlikely(off >= ((uintptr_t)r->nr_pages << PAGE_SHIFT) || (off & (LAB_PAGE_SIZE - 1)) ||
                 pg_state(pg) != PG_ALLOCATED || pg->room != r->id || pg_order(pg) != 0)) {
        room_free_misuse(r, page);
        return;
    }
    if (unlikely(!room_enter(r, "lab_room_free on a destroyed room"))) {
        /* Reported; the page itself was handed out in good faith, so it
         * goes where a late lab_free_pages of it would: to the zone. */
        uint8_t expect = PG_ALLOCATED;
        if (atomic_load_explicit(&r->dead, memory_order_relaxed) &&
            atomic_compare_exchange_strong_explicit(&pg->state, &expect, PG_DEFERRED, memory_order_acquire,
                                                    memory_order_relaxed)) {
            if (unlikely(r->page_hooks))
                page_hook_free(r->arena, page, 0);
            atomic_fetch_add_explicit(&r->remote_gone, 1, memory_order_relaxed);
            zone_free_block(r->arena, f, 0);
        }
        return;
    }
    if (unlikely(r->page_hooks))
        page_hook_free(r->arena, page, 0);
    if (unlikely(rd(&r->nr_reserve) < r->reserve_target))
        reserve_push(r, f);
    else
        stock_push(r, f);
    ctr_inc(&r->st.frees_owner);
    if (unlikely(rd(&r->nr_stock) > r->high || atomic_load_explicit(&r->drain_wanted, memory_order_relaxed))) {
        if (atomic_load_explicit(&r->drain_wanted, memory_order_relaxed)) {
            atomic_store_explicit(&r->drain_wanted, false, memory_order_relaxed);
            room_drain(r, rd(&r->nr_stock) > r->batch ? rd(&r->nr_stock) - r->batch : 0);
        } else {
            room_drain(r, r->batch);
        }
    }
    room_leave(r);
}

/* ---- frees from other contexts ------------------------------------------------- */
/* Send a list of claimed (DEFERRED) room pages to the zone; returns how many. */
/* Send a list of claimed (DEFERRED) room pages, magazines expanded, to the
 * zone; the first entry's magazine from index `pos` on.  Returns how many. */
static size_t free_list_to_zone(struct lab_arena *a, uint32_t f, uint32_t pos)
{
    struct zone *z = &a->zone;
    size_t n = 0;
    while (f != NIL) {
        struct page *head = &z->pages[f];
        uint32_t next = head->next;
        if (head->aux) {
            uint32_t *mag = magazine_of_frame(z, f);
            for (uint32_t i = pos; i < head->aux; i++, n++)
                zone_free_block(a, mag[i], 0);
            head->aux = 0;
        }
        zone_free_block(a, f, 0);
        n++;
        f = next;
        pos = 0;
    }
    return n;
}

static void room_dead_flush(struct lab_arena *a, struct lab_room *r)
{
    size_t n = free_list_to_zone(a, atomic_exchange_explicit(&r->remote, NIL, memory_order_acquire), 0);
    atomic_fetch_add_explicit(&r->remote_gone, n, memory_order_relaxed);
}

/* A chain of n claimed (DEFERRED) pages, first .. last linked through
 * page.next, goes on the owner's remote list with one CAS; a dead room's
 * pages go to the zone. */
void room_free_remote_chain(struct lab_arena *a, struct lab_room *r, uint32_t first, uint32_t last, size_t n)
{
    if (!r || atomic_load_explicit(&r->dead, memory_order_acquire)) {
        a->zone.pages[last].next = NIL;
        free_list_to_zone(a, first, 0);
        return;
    }
    struct page *tail = &a->zone.pages[last];
    atomic_fetch_add_explicit(&r->remote_pushed, n, memory_order_relaxed);
    uint32_t head = atomic_load_explicit(&r->remote, memory_order_relaxed);
    do {
        tail->next = head;
    } while (!atomic_compare_exchange_weak_explicit(&r->remote, &head, first,
                                                    memory_order_release, memory_order_relaxed));
    /* Destroy may have flushed the list just before our push. */
    if (unlikely(atomic_load_explicit(&r->dead, memory_order_seq_cst)))
        room_dead_flush(a, r);
}

void room_free_remote(struct lab_arena *a, struct lab_room *r, uint32_t frame)
{
    room_free_remote_chain(a, r, frame, frame, 1);
}

/* ---- reclaim's view ----------------------------------------------------------------
 * Another context may not touch a stock, so reclaim asks each owner to give
 * back its surplus at its next free, and takes the remote lists (pages no
 * owner holds yet) straight to the zone. */
size_t rooms_drain_surplus(struct lab_arena *a)
{
    size_t freed = 0;
    uint32_t n = atomic_load(&a->nr_rooms_made);
    for (uint32_t id = 1; id <= n; id++) {
        struct lab_room *r = atomic_load(&a->rooms[id]);
        if (!r || atomic_load(&r->dead))
            continue;
        atomic_store_explicit(&r->drain_wanted, true, memory_order_relaxed);
        if (atomic_load_explicit(&r->remote, memory_order_relaxed) == NIL)
            continue;
        size_t k = free_list_to_zone(a, atomic_exchange_explicit(&r->remote, NIL, memory_order_acquire), 0);
        atomic_fetch_add_explicit(&r->remote_gone, k, memory_order_relaxed);
        freed += k;
    }
    return freed;
}

/* ---- create and destroy ----------------------------------------------------------- */
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
    struct lab_room *r = aligned_alloc(CACHELINE, (sizeof(*r) + CACHELINE - 1) & ~(size_t)(CACHELINE - 1));
    if (!r)
        return LAB_ENOMEM;
    memset(r, 0, sizeof(*r));
    r->arena = a;
    r->pages = a->zone.pages;
    r->base = a->zone.base;
    r->nr_pages = a->zone.nr_pages;
    r->page_hooks = a->page_hooks;
    r->batch = cfg->batch;
    r->high = cfg->high ? cfg->high : 4 * cfg->batch;
    if (r->high < cfg->batch)
        r->high = cfg->batch;
    r->quota = cfg->quota;
    r->nr_stock_cap = r->high + r->batch + 1;
    /* an absurd batch or high would overflow the stock's size: refuse (ENOMEM) */
    r->stock = r->high <= SIZE_MAX / 16 && r->batch <= SIZE_MAX / 16 ? malloc(r->nr_stock_cap * sizeof(uint32_t)) : NULL;
    r->reserve_head = NIL;
    r->remote_local = NIL;
    r->reserve_target = cfg->reserve;
    atomic_store(&r->remote, NIL);
    strncpy(r->name, cfg->name ? cfg->name : "room", sizeof(r->name) - 1);
    if (!r->stock) {
        free(r);
        return LAB_ENOMEM;
    }
    /* The reserve comes from above the min watermark: it must not eat the
     * zone's own emergency pool.  The id is taken under the zone lock, after
     * every check, so a refused room uses none up. */
    struct zone *z = &a->zone;
    zone_lock(z);
    size_t floor = z->wmark[WMARK_MIN];
    uint32_t id = atomic_load(&a->nr_rooms_made) + 1;
    int err = id >= MAX_ROOMS ? LAB_EBUSY : z->free_pages < floor + cfg->reserve ? LAB_ERESERVE : 0;
    if (err) {
        zone_unlock(z);
        free(r->stock);
        free(r);
        return err;
    }
    atomic_store(&a->nr_rooms_made, id);
    r->id = (uint16_t)id;
    for (size_t i = 0; i < cfg->reserve; i++) {
        uint32_t f = buddy_take(z, 0);
        lab_assert(f != NIL);
        z->pages[f].room = r->id;
        reserve_push(r, f);
    }
    zone_unlock(z);
    atomic_store_explicit(&a->rooms[id], r, memory_order_release);
    *out = r;
    return 0;
}

/* Everything the room holds goes back to the zone.  The struct stays (dead)
 * until the arena is destroyed, so late frees of its pages and use after
 * destroy are recognised rather than corrupting memory. */
void lab_room_destroy(lab_room *r)
{
    if (!r || atomic_exchange(&r->dead, true))
        return;
    struct lab_arena *a = r->arena;
    struct zone *z = &a->zone;
    size_t n = rd(&r->nr_stock);
    zone_lock(z);
    for (size_t i = 0; i < n; i++)
        buddy_put(z, r->stock[i], 0);
    while (r->reserve_head != NIL) {
        uint32_t f = r->reserve_head;
        r->reserve_head = z->pages[f].next;
        buddy_put(z, f, 0);
    }
    zone_unlock(z);
    wr(&r->nr_stock, 0);
    wr(&r->nr_reserve, 0);
    size_t n_local = free_list_to_zone(a, r->remote_local, r->mag_pos);
    r->remote_local = NIL;
    atomic_store_explicit(&r->remote_popped, ctr_get(&r->remote_popped) + n_local, memory_order_relaxed);
    room_dead_flush(a, r);
}

void rooms_destroy_all(struct lab_arena *a)
{
    uint32_t n = atomic_load(&a->nr_rooms_made);
    for (uint32_t id = 1; id <= n && id < MAX_ROOMS; id++) {
        struct lab_room *r = atomic_load(&a->rooms[id]);
        if (!r)
            continue;
        free(r->stock);
        free(r);
    }
}

void lab_room_stats_get(lab_room *r, lab_room_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!r)
        return;
    out->allocs = ctr_get(&r->st.allocs);
    out->frees_owner = ctr_get(&r->st.frees_owner);
    out->frees_remote = ctr_get(&r->st.frees_remote);
    out->refills = ctr_get(&r->st.refills);
    out->drains = ctr_get(&r->st.drains);
    out->reserve_allocs = ctr_get(&r->st.reserve_allocs);
    for (int i = 0; i < LAB_R_COUNT; i++)
        out->fail_by_reason[i] = ctr_get(&r->st.fail_by_reason[i]);
    out->stock = rd(&r->nr_stock);
    out->reserve = rd(&r->nr_reserve);
    out->out = room_out(r);
}

/* The owner's free: a push and a state store.  Any condition that needs more
 * goes to room_free_slow, so this stays a leaf function that saves no
 * registers. */
void lab_room_free(lab_room *r, void *page)
{
    if (likely(r != NULL) && !LAB_DEBUG_ON) {
        uintptr_t off = (uintptr_t)page - (uintptr_t)r->base;
        uint32_t f = (uint32_t)(off >> PAGE_SHIFT);
        struct page *pg = &r->pages[f];
        size_t n = rd(&r->nr_stock);
        if (likely(off < ((uintptr_t)r->nr_pages << PAGE_SHIFT) && !(off & (LAB_PAGE_SIZE - 1)) &&
                   pg_state(pg) == PG_ALLOCATED && pg->room == r->id && pg_order(pg) == 0 &&
                   n < r->high && !r->page_hooks && rd(&r->nr_reserve) >= r->reserve_target &&
                   !atomic_load_explicit(&r->dead, memory_order_relaxed) &&
                   !atomic_load_explicit(&r->drain_wanted, memory_order_relaxed))) {
            uint32_t seq = atomic_load_explicit(&r->seq, memory_order_relaxed);
            atomic_store_explicit(&r->seq, seq + 1, memory_order_relaxed);
            atomic_signal_fence(memory_order_seq_cst);
            pg_set_state(pg, PG_ROOM);
            r->stock[n] = f;
            wr(&r->nr_stock, n + 1);
            ctr_inc(&r->st.frees_owner);
            atomic_store_explicit(&r->seq, seq + 2, memory_order_release);
            return;
        }
    }
    room_free_slow(r, page);
}
