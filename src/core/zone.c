/*
 * zone.c - the zone lock, the deferred-free list, watermarks.
 *
 * Why a hand-made lock: a signal handler (our interrupt) may run on the
 * thread that holds the zone lock.  It must never wait for it, and an atomic
 * context must never make a system call, neither to take the lock nor to let
 * go of it.  Real-time programs add one more rule: a SCHED_FIFO waiter that
 * shares a CPU with a lower-priority holder must not spin, or the holder
 * never runs again (sched_yield does not yield to a lower priority).
 *
 * So the lock is a futex word with three values (free, held, held with
 * sleepers), after Drepper's "Futexes Are Tricky":
 *   - contexts that may block spin briefly, then sleep on the word, and
 *     whoever releases it with sleepers hands over with a FUTEX_WAKE;
 *   - atomic contexts only try (zone_trylock, zone_lock_atomic), and when
 *     they release a lock that has sleepers they do not wake them: they leave
 *     lock_wake_owed, which the next release by a blocking holder, or the
 *     background reclaimer within kswapd_poll_ms, turns into the wake.
 *     Sleepers sleep in slices of ZLOCK_SLEEP_MS, so even with no one to
 *     wake them a sleeper finds an atomic holder's release within that.
 * Priority inheritance (FUTEX_LOCK_PI) is not usable: its release needs a
 * system call whenever there are waiters, which an atomic holder cannot make.
 * Without it, a medium-priority thread that keeps the CPU from the holder
 * delays a high-priority waiter (classic priority inversion); what the lock
 * does guarantee is that the waiter itself never keeps the CPU from the
 * holder.
 *
 * A free that finds the lock busy pushes the block on a lock-free list that
 * every holder drains.  The list is a Treiber stack with push-only producers
 * and a consumer (the holder) that takes the whole list with one exchange,
 * so there is no ABA: no one ever pops a single node whose successor could
 * have changed.  A holder in atomic context puts back at most
 * ZONE_DRAIN_BUDGET blocks per hold and leaves the rest on a list of its
 * own (deferred_taken, protected by the lock) for the next holder, so an
 * atomic request does a bounded amount of work however many frees arrive.
 *
 * tests/model/deferred_unlock.pml checks the push-versus-unlock protocol.
 */
#include "fault.h"

#define ATOMIC_LOCK_SPINS 64   /* bounded: the worst case of an atomic request */
#define BLOCKING_LOCK_SPINS 256

static void drain_deferred_locked(struct zone *z);

/* Every change of the lock word is seq_cst: the deferred list's protocol
 * (zone_free_block) is a store-buffering pattern between the word and the
 * list head, which only a single total order makes safe under C11. */
static bool lock_word_take(struct zone *z, uint32_t as)
{
    uint32_t expect = ZLOCK_FREE;
    return atomic_compare_exchange_strong_explicit(&z->lock.locked, &expect, as, memory_order_seq_cst,
                                                   memory_order_relaxed);
}

/* What every hold starts with: the owner's token, its right to make system
 * calls, its budget, and the deferred frees it finds (so that a request
 * sees them before it looks at the free lists). */
static ALWAYS_INLINE void hold_begin(struct zone *z, bool may_block)
{
    atomic_store_explicit(&z->lock_owner, (const void *)plat_thread_self(), memory_order_relaxed);
    z->held_may_block = may_block;
    z->drain_budget = may_block ? UINT32_MAX : ZONE_DRAIN_BUDGET;
    if (z->deferred_taken != NIL || atomic_load_explicit(&z->deferred, memory_order_relaxed) != NIL)
        drain_deferred_locked(z);
}

bool zone_trylock(struct zone *z)
{
    if (atomic_load_explicit(&z->lock.locked, memory_order_relaxed) != ZLOCK_FREE ||
        !lock_word_take(z, ZLOCK_HELD))
        return false;
    hold_begin(z, false);
    return true;
}

bool zone_lock_held_here(const struct zone *z)
{
    return atomic_load_explicit(&((struct zone *)z)->lock_owner, memory_order_relaxed) == (const void *)plat_thread_self();
}

bool zone_lock_atomic(struct zone *z)
{
    if (unlikely(fault_point(FP_LOCK_BUSY)))
        return false;
    for (int i = 0; i < ATOMIC_LOCK_SPINS; i++) {
        if (zone_trylock(z))
            return true;
        /* The holder is the context we interrupted: it cannot run until we
         * return, so waiting is pointless.  The lock's owner token says so
         * when we share its area (a signal handler on the holder's thread);
         * the port says so when we have an area of our own (an interrupt
         * handler on a bare processor). */
        if (zone_lock_held_here(z) || plat_spin_futile())
            return false;
        plat_cpu_relax();
    }
    return false;
}

/* A short spin for the common short hold, then sleep.  Taking the word
 * with ZLOCK_SLEEPERS after a sleep is conservative: there may be other
 * sleepers, and our release must wake one. */
void zone_lock(struct zone *z)
{
    lab_assert(!zone_lock_held_here(z));
    for (int i = 0; i < BLOCKING_LOCK_SPINS; i++) {
        if (atomic_load_explicit(&z->lock.locked, memory_order_relaxed) == ZLOCK_FREE &&
            lock_word_take(z, ZLOCK_HELD)) {
            hold_begin(z, true);
            return;
        }
        plat_cpu_relax();
    }
    while (atomic_exchange_explicit(&z->lock.locked, ZLOCK_SLEEPERS, memory_order_seq_cst) != ZLOCK_FREE)
        os_wait(&z->lock.locked, ZLOCK_SLEEPERS, ZLOCK_SLEEP_MS);
    hold_begin(z, true);
}

/* Put back deferred blocks, within the hold's budget: first what an earlier
 * holder left, then the shared list, taken whole with one exchange. */
static void drain_deferred_locked(struct zone *z)
{
    uint32_t f = z->deferred_taken;
    size_t pages = 0;
    while (z->drain_budget) {
        if (f == NIL) {
            if (atomic_load_explicit(&z->deferred, memory_order_relaxed) == NIL)
                break;
            f = atomic_exchange_explicit(&z->deferred, NIL, memory_order_seq_cst);
            if (f == NIL)
                break;
        }
        struct page *p = &z->pages[f];
        uint32_t next = p->next;
        unsigned order = pg_order(p);
        lab_assert(pg_state(p) == PG_DEFERRED);
        pages += (size_t)1 << order;
        buddy_put(z, f, order);
        z->drain_budget--;
        f = next;
    }
    z->deferred_taken = f;
    if (pages)
        atomic_fetch_sub_explicit(&z->deferred_pages, pages, memory_order_relaxed);
}

/* The wakes an atomic holder could not make. */
static void wake_owed_sleepers(struct zone *z)
{
    if (atomic_load_explicit(&z->lock_wake_owed, memory_order_relaxed) &&
        atomic_exchange_explicit(&z->lock_wake_owed, false, memory_order_relaxed))
        plat_wake_one(&z->lock.locked);
}

/* Let go of the word; hand over to a sleeper if this context may. */
static void lock_word_release(struct zone *z, bool may_syscall)
{
    atomic_store_explicit(&z->lock_owner, NULL, memory_order_relaxed);
    uint32_t was = atomic_exchange_explicit(&z->lock.locked, ZLOCK_FREE, memory_order_seq_cst);
    if (!may_syscall) {
        if (was == ZLOCK_SLEEPERS)
            atomic_store_explicit(&z->lock_wake_owed, true, memory_order_relaxed);
        return;
    }
    if (was == ZLOCK_SLEEPERS)
        plat_wake_one(&z->lock.locked);
    wake_owed_sleepers(z);
}

/* Every holder drains the deferred list before it lets go, then looks again
 * (C11 argument): the free's push (zone_free_block) and our release are
 * seq_cst writes followed, in each thread, by a seq_cst read of the other's
 * location: the lock word there, the list head here.  In the single total
 * order S of seq_cst operations one of the two writes comes first, so at
 * least one side sees the other: either our look finds the pushed block, or
 * the free finds the lock free (it then takes the lock and drains) or held by
 * a later holder, whose own release comes after the push in S and whose look
 * finds it.  An atomic holder that spent its budget stops here: what is left
 * is counted in deferred_pages, and the next holder, or the background
 * reclaimer (zone_service_owed_wakes), puts it back.
 *
 * Pages that came back while we held the lock may let a sleeping request go
 * on (reclaim.c: free_seq); waking it is a system call, which only a holder
 * that took the lock with zone_lock makes. */
static void unlock_drain(struct zone *z, bool may_wake)
{
    bool may_syscall = z->held_may_block;
    bool freed = false;
    for (;;) {
        drain_deferred_locked(z);
        freed |= z->freed_in_hold;
        z->freed_in_hold = false;
        bool budget_spent = z->deferred_taken != NIL || z->drain_budget == 0;
        unsigned budget = z->drain_budget;
        if (freed)
            zone_note_free_locked(z);
        atomic_store_explicit(&z->free_pages_pub, z->free_pages, memory_order_relaxed);
        lock_word_release(z, may_syscall);
        if (budget_spent || atomic_load_explicit(&z->deferred, memory_order_seq_cst) == NIL)
            break;
        if (atomic_load_explicit(&z->lock.locked, memory_order_relaxed) != ZLOCK_FREE ||
            !lock_word_take(z, ZLOCK_HELD))
            break;      /* the new holder drains it */
        /* The same hold goes on, with what is left of its budget. */
        atomic_store_explicit(&z->lock_owner, (const void *)plat_thread_self(), memory_order_relaxed);
        z->held_may_block = may_syscall;
        z->drain_budget = budget;
    }
    zone_note_free(z, freed, may_syscall && may_wake);
}

void zone_unlock(struct zone *z)
{
    unlock_drain(z, true);
}

void zone_unlock_nowake(struct zone *z)
{
    unlock_drain(z, false);
}

/* A context that may make system calls does what atomic holders left: wake
 * lock sleepers and waiters for frees, and put back deferred frees beyond
 * their budget.  The background reclaimer calls this every poll. */
void zone_service_owed_wakes(struct zone *z)
{
    if (atomic_load_explicit(&z->lock_wake_owed, memory_order_relaxed) ||
        atomic_load_explicit(&z->wake_owed, memory_order_relaxed) ||
        atomic_load_explicit(&z->deferred_pages, memory_order_relaxed)) {
        zone_lock(z);
        zone_unlock(z);
    }
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
                                                    memory_order_seq_cst, memory_order_relaxed));
    /* The holder may have released between our trylock and our push: the
     * other half of the store-buffering argument above unlock_drain.  A
     * seq_cst load, since the push is a seq_cst write to another location. */
    if (atomic_load_explicit(&z->lock.locked, memory_order_seq_cst) == ZLOCK_FREE && zone_trylock(z))
        zone_unlock_nowake(z);
}

/* ---- waking the waiters for frees (reclaim.c waits) ---------------------- */
/* Zone lock held, pages came back: only holders write free_seq, so a load and
 * a store (seq_cst: the store-buffering argument above) bump it. */
void zone_note_free_locked(struct zone *z)
{
    atomic_store_explicit(&z->free_seq, atomic_load_explicit(&z->free_seq, memory_order_relaxed) + 1,
                          memory_order_seq_cst);
}

/* After the lock is let go: wake the waiters, or leave the wake to a context
 * that may make the system call. */
void zone_note_free(struct zone *z, bool freed, bool may_syscall)
{
    bool owed = atomic_load_explicit(&z->wake_owed, memory_order_relaxed);
    if (!freed && (!owed || !may_syscall))
        return;
    if (atomic_load_explicit(&z->nr_waiters, memory_order_seq_cst) == 0) {
        if (owed)
            atomic_store_explicit(&z->wake_owed, false, memory_order_relaxed);
        return;
    }
    if (!may_syscall) {
        atomic_store_explicit(&z->wake_owed, true, memory_order_relaxed);
        return;
    }
    if (owed)
        atomic_store_explicit(&z->wake_owed, false, memory_order_relaxed);
    plat_wake_all(&z->free_seq);
}

/* ---- watermarks -------------------------------------------------------- */

/* The floor a request may take free pages down to (the watermark rule of labyrinth.h, exactly). */
size_t zone_floor(const struct zone *z, unsigned kind)
{
    size_t m = z->wmark[WMARK_MIN];
    switch (kind) {
    case FLOOR_HIGH:   return m - m / 2;
    case FLOOR_ATOMIC: return (m - m / 2) - (m - m / 2) / 4;
    case FLOOR_ALL:    return 0;
    default:           return m;
    }
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
    if (cfg->flags & LAB_ARENA_EXACT_WMARKS)
        goto set;   /* zeros included: validate() checked the order */
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
set:
    z->wmark[WMARK_MIN] = min;
    z->wmark[WMARK_LOW] = low;
    z->wmark[WMARK_HIGH] = high;
}
