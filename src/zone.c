/*
 * zone.c - the zone lock, the deferred-free list, watermarks.
 *
 * Why a hand-made lock: a signal handler (our interrupt) may run on the
 * thread that holds the zone lock.  It must never wait for it, and the holder
 * must never need a system call to let go of it (atomic contexts hold it
 * too).  So the lock is a test-and-set word: contexts that may block spin and
 * then yield; atomic contexts try a bounded number of times and otherwise
 * fall through to the reserves; a free that finds the lock busy pushes the
 * block on a lock-free list that every holder drains before it unlocks.
 *
 * The deferred list is a Treiber stack with push-only producers and a single
 * consumer that takes the whole list with one exchange, so there is no ABA:
 * no one ever pops a single node whose successor could have changed.
 */
#include "internal.h"

/* A unique, async-signal-safe identity for the calling thread: the address
 * of a thread-local byte (initial-exec TLS, no allocation on first use). */
static __thread char thread_token;

const void *this_thread_token(void)
{
    return &thread_token;
}

#define ATOMIC_LOCK_SPINS 64   /* bounded: the worst case of an atomic request */
#define BLOCKING_LOCK_SPINS 256

bool zone_trylock(struct zone *z)
{
    if (atomic_load_explicit(&z->lock.locked, memory_order_relaxed) ||
        atomic_exchange_explicit(&z->lock.locked, 1, memory_order_acquire))
        return false;
    atomic_store_explicit(&z->lock_owner, &thread_token, memory_order_relaxed);
    return true;
}

bool zone_lock_held_here(const struct zone *z)
{
    return atomic_load_explicit(&((struct zone *)z)->lock_owner, memory_order_relaxed) == &thread_token;
}

bool zone_lock_atomic(struct zone *z)
{
    if (unlikely(fault_point(FP_LOCK_BUSY)))
        return false;
    for (int i = 0; i < ATOMIC_LOCK_SPINS; i++) {
        if (zone_trylock(z))
            return true;
        /* The holder is the context we interrupted: it cannot run until we
         * return, so waiting is pointless. */
        if (zone_lock_held_here(z))
            return false;
        cpu_relax();
    }
    return false;
}

void zone_lock(struct zone *z)
{
    lab_assert(!zone_lock_held_here(z));
    for (;;) {
        for (int i = 0; i < BLOCKING_LOCK_SPINS; i++) {
            if (zone_trylock(z))
                return;
            cpu_relax();
        }
        plat_yield();   /* the holder may be preempted; let it run */
    }
}

static void drain_deferred_locked(struct zone *z)
{
    uint32_t f = atomic_exchange_explicit(&z->deferred, NIL, memory_order_acquire);
    while (f != NIL) {
        struct page *p = &z->pages[f];
        uint32_t next = p->next;
        unsigned order = pg_order(p);
        lab_assert(pg_state(p) == PG_DEFERRED);
        atomic_fetch_sub_explicit(&z->deferred_pages, (size_t)1 << order, memory_order_relaxed);
        buddy_put(z, f, order);
        f = next;
    }
}

/* Every holder drains the deferred list before it lets go, then looks again:
 * a free pushed after our drain either sees the lock free (and drains
 * itself) or was pushed before we unlocked, and we see it here.
 *
 * Pages that came back while we held the lock may let a sleeping blocking
 * request go on; waking it is a futex system call, which a non-blocking
 * allocation must not make (zone_unlock_nowake): it leaves the wake to the
 * next unlock that may, and waiters sleep in short slices anyway. */
static void unlock_drain(struct zone *z, bool may_wake)
{
    bool freed = false;
    for (;;) {
        drain_deferred_locked(z);
        freed |= z->freed_in_hold;
        z->freed_in_hold = false;
        atomic_store_explicit(&z->free_pages_pub, z->free_pages, memory_order_relaxed);
        atomic_store_explicit(&z->lock_owner, NULL, memory_order_relaxed);
        atomic_store_explicit(&z->lock.locked, 0, memory_order_seq_cst);
        if (atomic_load_explicit(&z->deferred, memory_order_seq_cst) == NIL)
            break;
        if (!zone_trylock(z))
            break;      /* the new holder drains it */
    }
    if (freed && !may_wake)
        atomic_store_explicit(&z->wake_owed, true, memory_order_relaxed);
    else if (may_wake && (freed || atomic_load_explicit(&z->wake_owed, memory_order_relaxed))) {
        atomic_store_explicit(&z->wake_owed, false, memory_order_relaxed);
        reclaim_note_free(z);
    }
}

void zone_unlock(struct zone *z)
{
    unlock_drain(z, true);
}

void zone_unlock_nowake(struct zone *z)
{
    unlock_drain(z, false);
}

/* Return a block the caller has claimed (state DEFERRED) to the free lists,
 * from any context, without ever waiting for the lock. */
void zone_free_block(struct lab_arena *a, uint32_t frame, unsigned order)
{
    struct zone *z = &a->zone;
    /* Frees run in any context (signal handlers too): they never make the
     * waiters' wake-up system call, they leave it owed (zone_unlock_nowake),
     * and the background reclaimer or the next blocking unlock pays it. */
    if (zone_trylock(z)) {
        buddy_put(z, frame, order);
        zone_unlock_nowake(z);
        return;
    }
    struct page *p = &z->pages[frame];
    atomic_fetch_add_explicit(&z->deferred_pages, (size_t)1 << order, memory_order_relaxed);
    uint32_t head = atomic_load_explicit(&z->deferred, memory_order_relaxed);
    do {
        p->next = head;
    } while (!atomic_compare_exchange_weak_explicit(&z->deferred, &head, frame,
                                                    memory_order_release, memory_order_relaxed));
    /* The holder may have unlocked between our trylock and our push. */
    if (zone_trylock(z))
        zone_unlock_nowake(z);
}

/* ---- watermarks -------------------------------------------------------- */

/* The floor a request may take free pages down to (the watermark rule of labyrinth.h, exactly). */
size_t zone_floor(const struct zone *z, lab_gfp_t gfp)
{
    size_t m = z->wmark[WMARK_MIN];
    if (gfp & LAB_GFP_NOMEMALLOC)
        return m;
    if (gfp & LAB_GFP_HIGH) {
        m -= m / 2;
        if (!(gfp & LAB_GFP_DIRECT_RECLAIM))
            m -= m / 4;
    }
    if (gfp & LAB_GFP_MEMALLOC)
        m = 0;
    return m;
}

bool zone_watermark_ok(const struct zone *z, unsigned order, size_t floor)
{
    size_t need = (size_t)1 << order;
    return z->free_pages >= need && z->free_pages - need >= floor;
}

static size_t isqrt(size_t x)
{
    size_t r = 0, bit = (size_t)1 << (sizeof(size_t) * 8 - 2);
    while (bit > x)
        bit >>= 2;
    while (bit) {
        if (x >= r + bit) {
            x -= r + bit;
            r = (r >> 1) + bit;
        } else {
            r >>= 1;
        }
        bit >>= 2;
    }
    return r;
}

/* Linux's init_per_zone_wmark_min and __setup_per_zone_wmarks, for one zone. */
void zone_init_watermarks(struct zone *z, const lab_arena_config *cfg)
{
    size_t pages = z->nr_pages;
    size_t min = cfg->wmark_min, low = cfg->wmark_low, high = cfg->wmark_high;
    if (min == 0 && low == 0 && high == 0) {
        size_t kib = pages * (LAB_PAGE_SIZE / 1024);
        size_t min_kib = isqrt(kib * 16);
        if (min_kib < 128) min_kib = 128;
        if (min_kib > 262144) min_kib = 262144;
        min = min_kib / (LAB_PAGE_SIZE / 1024);
        if (min > pages / 4)
            min = pages / 4;
    }
    if (low == 0 && high == 0) {
        size_t d = min / 4 > pages / 1000 ? min / 4 : pages / 1000;
        low = min + d;
        high = min + 2 * d;
        if (high >= pages && pages > 0) {   /* tiny arenas */
            high = pages - 1;
            if (low > high) low = high;
            if (min > low) min = low;
        }
    }
    z->wmark[WMARK_MIN] = min;
    z->wmark[WMARK_LOW] = low;
    z->wmark[WMARK_HIGH] = high;
}
