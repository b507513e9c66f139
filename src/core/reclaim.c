/*
 * reclaim.c - shrinkers, the background reclaimer, and waiting for frees.
 *
 * Shrinkers are the caches of the program: count() says how many pages one
 * could give back, scan() gives them back with lab_free_pages.  They always
 * run with no allocator lock held (a reader lock on the shrinker table only),
 * so a shrinker may free, and may even allocate: an allocation made from
 * inside reclaim gets LAB_GFP_MEMALLOC and skips reclaim and waiting, as
 * PF_MEMALLOC does in Linux, so reclaim never recurses into itself.
 *
 * The background reclaimer (Linux's kswapd) is one thread per arena, started
 * on the first need (a shrinker registered, or a blocking request that
 * found free pages below `low`) and stopped by lab_arena_destroy.  It works
 * until free pages reach `high`, then sleeps.  Non-blocking requests cannot
 * make a system call, so their wake is a flag that the reclaimer polls every
 * kswapd_poll_ms; a blocking request wakes it at once with a futex.
 *
 * Blocking requests wait for frees on a futex word (free_seq) that every
 * holder of the zone lock that gave pages back bumps before it lets go.  A
 * waiter reads the word before the attempt that failed and sleeps only if it
 * has not moved since, so a free between its attempt and its sleep is never
 * lost.  Waking it is a system call, which a holder in atomic context leaves
 * (wake_owed) to the next blocking holder or to the background reclaimer, so
 * waiters sleep in slices of at most WAIT_SLICE_MS.
 */
#include "internal.h"

/* ---- a sleeping reader-writer lock -----------------------------------------
 * For the shrinker table, taken by blocking contexts only.  Writer-
 * preferring (constant reclaim must not hold off an unregister): a waiting
 * writer sets WANTED, and readers do not enter while it is set.  Safe
 * because reclaim never nests (in_reclaim), so no reader re-enters.  A
 * context about to sleep sets SLEEPERS, and whoever lets the lock go with
 * it set wakes every sleeper; sleeps are slices besides, so a wake lost to
 * a race costs one slice, never a hang. */
#define RW_SLEEPERS (1u << 31)
#define RW_WANTED   (1u << 30)
#define RW_WRITER   (1u << 29)
#define RW_READERS  (RW_WRITER - 1)
#define RW_SLICE_MS 10

static void rw_sleep(_Atomic uint32_t *w, uint32_t s)
{
    if (!(s & RW_SLEEPERS) && !atomic_compare_exchange_strong(w, &s, s | RW_SLEEPERS))
        return;   /* it moved: look again */
    os_wait(w, s | RW_SLEEPERS, RW_SLICE_MS);
}

static void rw_read_lock(_Atomic uint32_t *w)
{
    for (;;) {
        uint32_t s = atomic_load(w);
        if (!(s & (RW_WRITER | RW_WANTED))) {
            if (atomic_compare_exchange_weak(w, &s, s + 1))
                return;
            continue;
        }
        rw_sleep(w, s);
    }
}

static void rw_read_unlock(_Atomic uint32_t *w)
{
    uint32_t s = atomic_load(w), n;
    do {
        n = s - 1;
        if ((n & RW_READERS) == 0)
            n &= ~RW_SLEEPERS;
    } while (!atomic_compare_exchange_weak(w, &s, n));
    if ((n & RW_READERS) == 0 && (s & RW_SLEEPERS))
        plat_wake_all(w);
}

static void rw_write_lock(_Atomic uint32_t *w)
{
    for (;;) {
        uint32_t s = atomic_load(w);
        if ((s & (RW_READERS | RW_WRITER)) == 0) {
            if (atomic_compare_exchange_weak(w, &s, (s & RW_SLEEPERS) | RW_WRITER))
                return;
            continue;
        }
        if (!(s & RW_WANTED)) {
            atomic_compare_exchange_weak(w, &s, s | RW_WANTED);
            continue;
        }
        rw_sleep(w, s);
    }
}

static void rw_write_unlock(_Atomic uint32_t *w)
{
    if (atomic_exchange(w, 0) & RW_SLEEPERS)
        plat_wake_all(w);
}

struct reclaim_state {
    _Atomic uint32_t table_lock;          /* shrinkers run under the read side */
    lab_shrinker     shrinkers[MAX_SHRINKERS];
    bool             used[MAX_SHRINKERS];
    _Atomic uint32_t thread_lock;         /* starting and stopping kswapd (write side only) */
    struct plat_worker *thread;
    _Atomic bool     started;             /* thread is set: no lock needed to know */
    _Atomic bool     stop;
    _Atomic bool     wake_pending;
    _Atomic uint32_t wake_word;
    _Atomic uint32_t want_order;          /* 1 + the largest order a non-blocking request
                                             found only in the void; 0: none */
};

/* Whether the free lists hold a block of order k or more. */
static bool zone_has_order(struct zone *z, unsigned k)
{
    bool has = false;
    zone_lock(z);
    for (unsigned o = k; o <= z->max_order && !has; o++)
        has = z->area[o].nr_free != 0;
    zone_unlock(z);
    return has;
}

static void in_reclaim_set(bool on) { *plat_thread_self() = on; }

#define KSWAPD_IDLE_POLLS 64   /* quiet polls before the reclaimer backs off */
#define KSWAPD_BACKOFF 16u     /* ... to this many poll intervals */

static struct reclaim_state *rs(struct lab_arena *a) { return a->reclaim; }

int reclaim_init(struct lab_arena *a)
{
    struct reclaim_state *s = meta_alloc(sizeof(*s));
    if (!s)
        return LAB_ENOMEM;
    a->reclaim = s;
    return 0;
}

void reclaim_fini(struct lab_arena *a)
{
    struct reclaim_state *s = rs(a);
    if (!s)
        return;
    rw_write_lock(&s->thread_lock);
    if (s->thread) {
        atomic_store(&s->stop, true);
        atomic_fetch_add(&s->wake_word, 1);
        plat_wake_all(&s->wake_word);
        plat_worker_join(s->thread);
        s->thread = NULL;
        atomic_store(&s->started, false);
    }
    rw_write_unlock(&s->thread_lock);
    meta_free(s, sizeof(*s));
    a->reclaim = NULL;
}

/* One pass over the rooms' surplus and the shrinkers, asking for `want`
 * pages.  No allocator lock held; may block (shrinkers may). */
static size_t shrink_pass(struct lab_arena *a, size_t want, bool drain_rooms)
{
    struct reclaim_state *s = rs(a);
    size_t freed = 0;
    if (want < 32)
        want = 32;   /* ask in batches, as Linux's SHRINK_BATCH */
    rw_read_lock(&s->table_lock);
    for (unsigned i = 0; i < MAX_SHRINKERS && freed < want; i++) {
        if (!s->used[i])
            continue;
        lab_shrinker *sh = &s->shrinkers[i];
        size_t can = sh->count(sh->ctx);
        if (can == 0)
            continue;
        size_t ask = want - freed < can ? want - freed : can;
        size_t got = sh->scan(sh->ctx, ask);
        ctr_add_shared(&a->st.shrinker_runs, 1);
        ctr_add_shared(&a->st.shrinker_pages, got);
        freed += got;
    }
    rw_read_unlock(&s->table_lock);
    /* Rooms' remote frees are taken only by direct reclaim, and only when
     * the shrinkers could not give enough, as Linux drains other CPUs' pcp
     * lists only when an allocation is about to fail: reclaim must not starve
     * a busy room (an RX path) of the pages its consumers give back. */
    if (drain_rooms && freed < want)
        freed += rooms_drain_surplus(a);
    return freed;
}

/* Direct reclaim: enough to bring free pages up to `want`, and at least
 * `min_scan` pages. */
size_t reclaim_direct(struct lab_arena *a, size_t want, size_t min_scan)
{
    if (in_reclaim())
        return 0;
    in_reclaim_set(true);
    size_t free_now = atomic_load_explicit(&a->zone.free_pages_pub, memory_order_relaxed);
    size_t ask = want > free_now ? want - free_now : 0;
    size_t freed = shrink_pass(a, ask > min_scan ? ask : min_scan, true);
    in_reclaim_set(false);
    return freed;
}

/* ---- the background reclaimer ------------------------------------------ */

/* How long the reclaimer sleeps between polls.  Non-blocking requests wake
 * it with a flag it sees only when it polls, so it backs off only while no
 * such wake can be due soon: after KSWAPD_IDLE_POLLS polls in which free
 * pages did not move and stayed at least a whole low..high band above high
 * (`quiet`).  Right after a trim, free pages sit at high, one band from the
 * low watermark that triggers a wake: the reclaimer keeps polling at
 * kswapd_poll_ms there, so it acts on a wake within one interval.  The
 * back-off saturates instead of wrapping to a zero timeout (a busy loop). */
unsigned kswapd_sleep_ms(unsigned poll_ms, unsigned quiet_polls)
{
    if (quiet_polls <= KSWAPD_IDLE_POLLS)
        return poll_ms;
    return poll_ms <= UINT32_MAX / KSWAPD_BACKOFF ? poll_ms * KSWAPD_BACKOFF : UINT32_MAX;
}

static void kswapd(void *arg)
{
    struct lab_arena *a = arg;
    struct reclaim_state *s = rs(a);
    struct zone *z = &a->zone;
    uint64_t idle_since = 0;
    unsigned quiet_polls = 0;
    size_t band = z->wmark[WMARK_HIGH] - z->wmark[WMARK_LOW];
    size_t last_free = SIZE_MAX;
    in_reclaim_set(true);
    for (;;) {
        uint32_t seen = atomic_load(&s->wake_word);
        bool asked = atomic_exchange(&s->wake_pending, false);
        if (atomic_load(&s->stop))
            break;
        /* What atomic contexts could not do themselves: wake the waiters
         * they let go on or the lock's sleepers, put back the deferred frees
         * beyond their budget (zone.c), write their reports, lift freed
         * blocks' guards. */
        zone_service_owed_wakes(z);
        if (arena_flush_wanted(a))
            lab_arena_flush(a);
        size_t free_now = atomic_load_explicit(&z->free_pages_pub, memory_order_relaxed);
        /* Only a wake (a request that found free pages below low) starts a
         * run: polling free < low alone would re-commit straight after a
         * trim, undoing it before anyone asked for the memory. */
        if (asked) {
            ctr_add_shared(&a->st.kswapd_runs, 1);
            idle_since = 0;
            /* balance: until high, or until a pass gives nothing back.  The
             * void first: re-committing is cheaper than taking pages from
             * the program's caches. */
            bool stuck = false;
            while (!atomic_load(&s->stop)) {
                free_now = atomic_load_explicit(&z->free_pages_pub, memory_order_relaxed);
                if (free_now >= z->wmark[WMARK_HIGH])
                    break;
                size_t want = z->wmark[WMARK_HIGH] - free_now;
                if (void_recommit(a, want, 0) == 0 && shrink_pass(a, want, false) == 0) {
                    stuck = true;
                    break;
                }
            }
            /* Balanced at high, but with only small blocks free: trim
             * gives the largest back first and leaves the fragments, and
             * an atomic request of a higher order asked for one. */
            uint32_t wo = atomic_exchange(&s->want_order, 0);
            if (wo && !atomic_load(&s->stop) && !zone_has_order(z, wo - 1))
                void_recommit(a, (size_t)1 << (wo - 1), wo - 1);
            /* Nothing to reclaim: sleep a poll interval before trying again,
             * instead of spinning while free pages stay below low. */
            if (!stuck)
                continue;
        } else if (a->cfg.trim_delay_ms && free_now > z->wmark[WMARK_HIGH]) {
            /* Idle memory above high falls into the void after trim_delay_ms. */
            uint64_t now = plat_now_ns();
            if (!idle_since) {
                idle_since = now;
            } else if (now - idle_since >= (uint64_t)a->cfg.trim_delay_ms * 1000000ull) {
                trim_above(a, z->wmark[WMARK_HIGH], false);   /* whole blocks: see trim_above */
                idle_since = 0;
            }
        } else {
            idle_since = 0;
        }
        /* Poll at kswapd_poll_ms while there is work about (a sleeping
         * waiter is owed its wake by the next poll); back off when quiet, so
         * an idle arena costs few wake-ups. */
        bool waiters = atomic_load_explicit(&z->nr_waiters, memory_order_relaxed) != 0;
        bool quiet = !asked && !waiters && free_now == last_free && free_now >= z->wmark[WMARK_HIGH] + band;
        quiet_polls = quiet ? quiet_polls + 1 : 0;
        last_free = free_now;
        os_wait(&s->wake_word, seen, kswapd_sleep_ms(a->cfg.kswapd_poll_ms, quiet_polls));
    }
}

/* Blocking contexts only. */
void kswapd_start(struct lab_arena *a)
{
    struct reclaim_state *s = rs(a);
    if (atomic_load_explicit(&s->started, memory_order_acquire))
        return;
    rw_write_lock(&s->thread_lock);
    if (!s->thread && !atomic_load(&s->stop)) {
        s->thread = os_worker_start(kswapd, a);
        atomic_store_explicit(&s->started, s->thread != NULL, memory_order_release);
    }
    rw_write_unlock(&s->thread_lock);
}

/* lab_arena_trim: down to the min watermark.  The reclaimer is started
 * first: it is what re-commits for the requests that may not. */
size_t lab_arena_trim(lab_arena *a)
{
    if (!a)
        return 0;
    /* Non-blocking requests cannot re-commit; the background reclaimer does
     * it for them when they find free pages below low. */
    kswapd_start(a);
    /* Refused the thread (a port that has threads), what went to the void
     * would stay there for every non-blocking request: nothing given
     * back.  A port without workers trims all the same: its blocking
     * requests re-commit, by design. */
    if (plat_workers() && !atomic_load_explicit(&rs(a)->started, memory_order_acquire))
        return 0;
    return trim_above(a, a->zone.wmark[WMARK_MIN], true);
}

/* Step 5 for a request of order k that found the free blocks too small
 * while the void held larger ones: the reclaimer re-commits one of at
 * least k, whatever the free count.  Lock-free (async-signal-safe). */
void reclaim_wake_order(struct lab_arena *a, unsigned order, bool may_syscall)
{
    struct reclaim_state *s = rs(a);
    uint32_t w = atomic_load_explicit(&s->want_order, memory_order_relaxed);
    while (w < order + 1 &&
           !atomic_compare_exchange_weak_explicit(&s->want_order, &w, order + 1, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
    reclaim_wake(a, may_syscall);
}

/* Step 5.  From a non-blocking request: a flag, no system call. */
void reclaim_wake(struct lab_arena *a, bool may_syscall)
{
    struct reclaim_state *s = rs(a);
    if (!atomic_exchange_explicit(&s->wake_pending, true, memory_order_relaxed))
        ctr_add_shared(&a->st.kswapd_wakes, 1);
    if (may_syscall && !in_reclaim()) {
        kswapd_start(a);
        atomic_fetch_add(&s->wake_word, 1);
        plat_wake_all(&s->wake_word);
    }
}

/* ---- waiting for frees (step 8) -----------------------------------------
 * The waiter registers (nr_waiters), then looks at free_seq; a holder that
 * freed pages bumps free_seq, lets go of the lock, then looks at nr_waiters.
 * Each side writes one word and reads the other's, all seq_cst: in their
 * total order one write comes first, so either the waiter sees the bump (and
 * does not sleep) or the freer sees the waiter (and wakes it; the kernel
 * compares free_seq with `seen` before it puts the waiter to sleep).  `seen`
 * is read before the attempt that failed, so no free after that attempt
 * goes unnoticed. */

#define WAIT_SLICE_MS 10

uint32_t reclaim_free_seq(struct lab_arena *a)
{
    return atomic_load_explicit(&a->zone.free_seq, memory_order_seq_cst);
}

bool reclaim_wait_for_frees(struct lab_arena *a, uint64_t deadline_ns, uint32_t seen)
{
    struct zone *z = &a->zone;
    uint64_t now = plat_now_ns();
    unsigned ms = WAIT_SLICE_MS;
    if (deadline_ns) {
        if (now >= deadline_ns)
            return false;
        uint64_t left = (deadline_ns - now + 999999) / 1000000;
        if (left < ms)
            ms = (unsigned)left;
    }
    ctr_add_shared(&a->st.waits, 1);
    /* Frees never wake waiters themselves (they may run in a signal
     * handler): the reclaimer does, within kswapd_poll_ms. */
    kswapd_start(a);
    atomic_fetch_add_explicit(&z->nr_waiters, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&z->free_seq, memory_order_seq_cst) == seen)
        os_wait(&z->free_seq, seen, ms);
    atomic_fetch_sub_explicit(&z->nr_waiters, 1, memory_order_relaxed);
    return true;
}

/* ---- shrinker registration ---------------------------------------------- */

int lab_shrinker_register(lab_arena *a, const lab_shrinker *sh)
{
    if (!a || !sh || !sh->count || !sh->scan)
        return LAB_EINVAL;
    /* From a shrinker's callback: the table's write lock would wait for
     * the pass this thread is in (the read side), for ever. */
    if (in_reclaim())
        return LAB_EBUSY;
    struct reclaim_state *s = rs(a);
    int err = LAB_EBUSY;
    rw_write_lock(&s->table_lock);
    for (unsigned i = 0; i < MAX_SHRINKERS; i++) {
        if (!s->used[i]) {
            s->shrinkers[i] = *sh;
            s->used[i] = true;
            err = 0;
            break;
        }
    }
    rw_write_unlock(&s->table_lock);
    if (err == 0)
        kswapd_start(a);
    return err;
}

void lab_shrinker_unregister(lab_arena *a, const lab_shrinker *sh)
{
    if (!a || !sh)
        return;
    struct reclaim_state *s = rs(a);
    /* The write side waits for every pass in progress to finish. */
    rw_write_lock(&s->table_lock);
    for (unsigned i = 0; i < MAX_SHRINKERS; i++) {
        lab_shrinker *x = &s->shrinkers[i];
        if (s->used[i] && x->count == sh->count && x->scan == sh->scan && x->ctx == sh->ctx) {
            s->used[i] = false;
            break;
        }
    }
    rw_write_unlock(&s->table_lock);
}
