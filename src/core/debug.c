/*
 * debug.c - misuse reports, failure reports, and lab_check.
 *
 * Reports may be written from a signal handler, so they are formatted by
 * hand into a stack buffer and written with write(2): no stdio, no malloc.
 */
#include "internal.h"

/* ---- async-signal-safe formatting --------------------------------------- */

void fmt_str(struct fmtbuf *b, const char *s)
{
    while (*s && b->len < sizeof(b->buf) - 1)
        b->buf[b->len++] = *s++;
    b->buf[b->len] = 0;
}

void fmt_u64(struct fmtbuf *b, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    char out[24];
    for (int i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = 0;
    fmt_str(b, out);
}

void fmt_hex(struct fmtbuf *b, uint64_t v)
{
    char out[20] = "0x";
    int n = 2;
    int shift = 60;
    while (shift > 0 && ((v >> shift) & 0xf) == 0)
        shift -= 4;
    for (; shift >= 0; shift -= 4)
        out[n++] = "0123456789abcdef"[(v >> shift) & 0xf];
    out[n] = 0;
    fmt_str(b, out);
}

void lab_assert_fail(const char *what, const char *file, int line)
{
    struct fmtbuf b = { .len = 0 };
    fmt_str(&b, "labyrinth: internal assertion failed: ");
    fmt_str(&b, what);
    fmt_str(&b, " at ");
    fmt_str(&b, file);
    fmt_str(&b, ":");
    fmt_u64(&b, (uint64_t)line);
    fmt_str(&b, "\n");
    plat_log(b.buf, b.len);
    plat_abort();
}

static void fmt_arena(struct fmtbuf *b, struct lab_arena *a)
{
    fmt_str(b, "labyrinth: arena '");
    fmt_str(b, a->name);
    fmt_str(b, "': ");
}

/* ---- hooks ----------------------------------------------------------------- */

static void hook_set(struct hook_pair *slots, _Atomic uint32_t *live, void (*fn)(void), void *ctx)
{
    if (!fn) {
        atomic_store_explicit(live, 0, memory_order_release);
        return;
    }
    uint32_t next = atomic_load_explicit(live, memory_order_relaxed) % HOOK_SLOTS + 1;
    slots[next - 1].fn = fn;
    slots[next - 1].ctx = ctx;
    atomic_store_explicit(live, next, memory_order_release);
}

static bool hook_get(const struct hook_pair *slots, _Atomic uint32_t *live, struct hook_pair *out)
{
    uint32_t i = atomic_load_explicit(live, memory_order_acquire);
    if (i == 0)
        return false;
    *out = slots[i - 1];
    return true;
}

/* ---- deferred reports --------------------------------------------------------
 * A report from a context that may not make a system call (a non-blocking
 * request, or any free: frees run in signal handlers) is kept in a slot and
 * written later by one that may: a blocking request, the background
 * reclaimer, lab_arena_flush, lab_stats_*, lab_check, lab_arena_destroy.
 * Linux defers printk from NMI context the same way.  A user's log hook is
 * not deferred: it is documented to run in any context.  Slot states: 0
 * free, 1 being written, 2 ready, 3 being flushed. */
static void log_defer(struct lab_arena *a, const char *text, size_t len, unsigned first_slot)
{
    for (unsigned i = first_slot; i < LOG_SLOTS; i++) {
        struct log_slot *sl = &a->log_slots[i];
        uint32_t expect = 0;
        if (!atomic_compare_exchange_strong_explicit(&sl->state, &expect, 1, memory_order_acquire,
                                                     memory_order_relaxed))
            continue;
        if (len > sizeof(sl->text))
            len = sizeof(sl->text);
        memcpy(sl->text, text, len);
        sl->len = (uint32_t)len;
        atomic_store_explicit(&sl->state, 2, memory_order_release);
        atomic_fetch_add_explicit(&a->log_pending, 1, memory_order_release);
        return;
    }
    atomic_fetch_add_explicit(&a->log_dropped, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&a->log_pending, 1, memory_order_release);
}

void log_flush(struct lab_arena *a)
{
    if (!log_flush_wanted(a))
        return;
    for (unsigned i = 0; i < LOG_SLOTS; i++) {
        struct log_slot *sl = &a->log_slots[i];
        uint32_t expect = 2;
        if (!atomic_compare_exchange_strong_explicit(&sl->state, &expect, 3, memory_order_acquire,
                                                     memory_order_relaxed))
            continue;
        plat_log(sl->text, sl->len);
        atomic_store_explicit(&sl->state, 0, memory_order_release);
        atomic_fetch_sub_explicit(&a->log_pending, 1, memory_order_relaxed);
    }
    uint64_t dropped = atomic_exchange_explicit(&a->log_dropped, 0, memory_order_relaxed);
    if (dropped) {
        struct fmtbuf b = { .len = 0 };
        fmt_arena(&b, a);
        fmt_u64(&b, dropped);
        fmt_str(&b, " more report(s) from atomic context dropped (all slots were full)\n");
        plat_log(b.buf, b.len);
        atomic_fetch_sub_explicit(&a->log_pending, (uint32_t)dropped, memory_order_relaxed);
    }
}

void lab_arena_flush(lab_arena *a)
{
    if (!a)
        return;
    log_flush(a);
    guard_flush(a);
}

/* Failure reports come in bursts and may not take the slots kept for misuse
 * reports, which are rarer and say more. */
#define MISUSE_SLOTS 2

/* To stderr now when this context may write, else deferred. */
static void log_default(struct lab_arena *a, const char *text, size_t len, bool may_write)
{
    if (may_write) {
        log_flush(a);
        plat_log(text, len);
    } else {
        log_defer(a, text, len, MISUSE_SLOTS);
    }
}

/* ---- misuse -------------------------------------------------------------- */

void lab_set_misuse_handler(lab_arena *a, lab_misuse_fn fn, void *ctx)
{
    if (!a)
        return;
    hook_set(a->misuse_hooks, &a->misuse_hook, (void (*)(void))fn, ctx);
}

void misuse(struct lab_arena *a, int err, const void *addr, uint32_t frame, const char *what)
{
    struct fmtbuf b = { .len = 0 };
    struct hook_pair h;
    ctr_add_shared(&a->st.misuse, 1);
    fmt_arena(&b, a);
    fmt_str(&b, lab_strerror(err));
    fmt_str(&b, ": ");
    if (frame != NIL) {
        fmt_str(&b, "frame ");
        fmt_u64(&b, frame);
        fmt_str(&b, " ");
    }
    fmt_str(&b, "(");
    fmt_hex(&b, (uint64_t)(uintptr_t)addr);
    fmt_str(&b, "): ");
    fmt_str(&b, what);
    if (hook_get(a->misuse_hooks, &a->misuse_hook, &h)) {
        ((lab_misuse_fn)h.fn)(h.ctx, err, addr, b.buf);
        return;
    }
    fmt_str(&b, "\n");
    if (LAB_DEBUG_ON) {
        plat_log(b.buf, b.len);
        plat_abort();
    }
    /* Misuse is found on frees and room calls, which run in any context:
     * the report waits for one that may write. */
    _Static_assert(LAB_ERROR_COUNT <= 64, "one bit per error code");
    uint64_t bit = 1ull << err;
    if (!(atomic_fetch_or_explicit(&a->misuse_reported, bit, memory_order_relaxed) & bit))
        log_defer(a, b.buf, b.len, 0);
}

/* ---- failure reports ------------------------------------------------------ */

#define REPORT_BURST 10
#define REPORT_WINDOW_NS (5ull * 1000000000ull)

void lab_set_log_hook(lab_arena *a, lab_log_fn fn, void *ctx)
{
    if (!a)
        return;
    hook_set(a->log_hooks, &a->log_hook, (void (*)(void))fn, ctx);
}

static bool report_allowed(struct lab_arena *a)
{
    uint64_t now = plat_now_ns();
    uint64_t start = atomic_load_explicit(&a->log_window_start, memory_order_relaxed);
    if (now - start > REPORT_WINDOW_NS &&
        atomic_compare_exchange_strong(&a->log_window_start, &start, now))
        atomic_store(&a->log_in_window, 0);
    return atomic_fetch_add(&a->log_in_window, 1) < REPORT_BURST;
}

static const char *const gfp_names[] = {
    "HIGH", "DIRECT_RECLAIM", "WAKE_RECLAIM", "ZERO", "NOWARN", "NORETRY",
    "RETRY_MAYFAIL", "NOFAIL", "MEMALLOC", "NOMEMALLOC",
};

/* Like the kernel's warn_alloc(): what was asked, why it failed, and the
 * zone's free blocks per order. */
void report_alloc_failure(struct lab_arena *a, lab_gfp_t gfp, unsigned order, int reason)
{
    if (!report_allowed(a))
        return;
    struct fmtbuf b = { .len = 0 };
    struct zone *z = &a->zone;
    fmt_arena(&b, a);
    fmt_str(&b, "page allocation failure: order:");
    fmt_u64(&b, order);
    fmt_str(&b, ", mode:");
    fmt_hex(&b, gfp);
    fmt_str(&b, " (");
    bool first = true;
    for (unsigned i = 0; i < sizeof(gfp_names) / sizeof(gfp_names[0]); i++) {
        if (gfp & (1u << i)) {
            if (!first)
                fmt_str(&b, "|");
            fmt_str(&b, gfp_names[i]);
            first = false;
        }
    }
    fmt_str(&b, "), reason: ");
    fmt_str(&b, lab_strreason(reason));
    fmt_str(&b, "\n  free:");
    /* Only if the lock is free: the report must never wait, and this may be
     * a signal handler that interrupted the holder. */
    if (zone_trylock(z)) {
        size_t blocks[LAB_MAX_ORDER_LIMIT + 1] = { 0 };
        for (unsigned o = 0; o <= z->max_order; o++)
            blocks[o] = z->area[o].nr_free;
        buddy_unpopulated_blocks(z, blocks);
        size_t free_pages = z->free_pages;
        zone_unlock_nowake(z);
        fmt_u64(&b, free_pages);
        fmt_str(&b, " min:");
        fmt_u64(&b, z->wmark[WMARK_MIN]);
        fmt_str(&b, " low:");
        fmt_u64(&b, z->wmark[WMARK_LOW]);
        fmt_str(&b, " high:");
        fmt_u64(&b, z->wmark[WMARK_HIGH]);
        fmt_str(&b, " blocks per order:");
        for (unsigned o = 0; o <= z->max_order; o++) {
            fmt_str(&b, " ");
            fmt_u64(&b, blocks[o]);
        }
    } else {
        fmt_str(&b, " (zone busy)");
    }
    fmt_str(&b, "\n");
    struct hook_pair h;
    if (hook_get(a->log_hooks, &a->log_hook, &h))
        ((lab_log_fn)h.fn)(h.ctx, b.buf, b.len);
    else
        log_default(a, b.buf, b.len, (gfp & LAB_GFP_DIRECT_RECLAIM) != 0);
}

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

/* Zone lock held. */
int zone_check_locked(struct lab_arena *a, bool report)
{
    struct zone *z = &a->zone;
    size_t by_state[PG_NR_STATES] = { 0 };
    uint32_t nroom = atomic_load(&a->nr_rooms_made);
    size_t *room_pages = NULL;  /* [id] stock pages, [MAX_ROOMS + id] reserve pages */
    uint64_t *room_seq = NULL;   /* [3 id] seq, [3 id + 1] seq_free, [3 id + 2] steal_seq */
    int err = 0;

    if (!(z->wmark[WMARK_MIN] <= z->wmark[WMARK_LOW] && z->wmark[WMARK_LOW] <= z->wmark[WMARK_HIGH]))
        FAIL(LAB_ECHECK_WMARK, "watermarks out of order", NIL);
    if (z->ha_pages > z->ha_cap)
        FAIL(LAB_ECHECK_WMARK, "high-order atomic reserve above its cap", NIL);

    /* mmap, not calloc: debug builds run this check from any context,
     * including a signal handler that interrupted malloc on this thread. */
    size_t map_bytes = 0;
    if (nroom) {
        map_bytes = 2 * (size_t)(nroom + 1) * sizeof(size_t) + 3 * ((size_t)nroom + 1) * sizeof(uint64_t);
        room_pages = os_map(map_bytes, false);
        if (room_pages)
            room_seq = (uint64_t *)(room_pages + 2 * (size_t)(nroom + 1));
        else
            nroom = 0;
    }
    for (uint32_t id = 1; id <= nroom; id++) {
        struct lab_room *r = atomic_load(&a->rooms[id]);
        room_seq[3 * id] = r ? atomic_load_explicit(&r->seq, memory_order_acquire) : 1;
        room_seq[3 * id + 1] = r ? atomic_load_explicit(&r->seq_free, memory_order_acquire) : 1;
        room_seq[3 * id + 2] = r ? atomic_load_explicit(&r->steal_seq, memory_order_acquire) : 1;
    }
#undef FAIL
#define FAIL(e, what, frame) do { err = check_fail(report, e, what, frame); goto out; } while (0)

    for (uint32_t i = 0; i < z->populated;) {
        struct page *p = &z->pages[i];
        /* The room first, with acquire: a block leaves a room outside the
         * lock by changing its state and then clearing room_of with a
         * release store, so a cleared room_of read here shows the new
         * state below (the other way, into a room, happens under the lock). */
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

    /* Rooms: only those whose owner was not inside an operation during the
     * walk (their sequence was even and did not move); the others are in
     * motion and are checked next time. */
    for (uint32_t id = 1; id <= nroom; id++) {
        struct lab_room *r = atomic_load(&a->rooms[id]);
        if (!r)
            continue;
        /* The counters first, then the sequence again (a seqlock reader): an
         * operation that starts after the walk must not look like a mismatch.
         * C11: the owner's stores of the page states and of these counters
         * are release stores (internal.h, room_enter), so if the walk or
         * these loads read any of them from an operation in progress, the
         * acquire fence below synchronizes with it and the odd sequence
         * store, made before it, is visible to the second load: the room is
         * skipped. */
        size_t stock = 0, reserve = atomic_load_explicit(&r->nr_reserve, memory_order_relaxed);
        bool overfull = false;
        for (unsigned o = 0; o <= r->max_order; o++) {
            size_t k = atomic_load_explicit(&r->stk[o].n, memory_order_relaxed);
            stock += k << o;
            overfull |= k > r->stk[o].high + r->stk[o].batch;
        }
        atomic_thread_fence(memory_order_acquire);
        if (((room_seq[3 * id] | room_seq[3 * id + 1] | room_seq[3 * id + 2]) & 1) ||
            atomic_load_explicit(&r->seq, memory_order_relaxed) != room_seq[3 * id] ||
            atomic_load_explicit(&r->seq_free, memory_order_relaxed) != room_seq[3 * id + 1] ||
            atomic_load_explicit(&r->steal_seq, memory_order_relaxed) != room_seq[3 * id + 2])
            continue;
        if (room_pages[id] != stock)
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
    int err = zone_check_locked(a, true);
    zone_unlock(&a->zone);
    return err;
}

/* Debug builds: a full check every so often (more often on small arenas), so
 * that a broken invariant is caught near the operation that broke it.  Never
 * waits for the lock: this may run in a signal handler. */
void debug_check_every_op(struct lab_arena *a)
{
    if (!LAB_DEBUG_ON)
        return;
    struct zone *z = &a->zone;
    uint64_t every = z->nr_pages / 64 + 1;
    uint64_t n = __atomic_add_fetch(&z->ops_since_check, 1, __ATOMIC_RELAXED);
    if (n % every != 0 || !zone_trylock(z))
        return;
    int err = zone_check_locked(a, true);
    zone_unlock_nowake(z);
    if (err)
        lab_assert_fail("lab_check() == 0 after an operation", __FILE__, __LINE__);
}

/* ---- page hooks: poisoning, protection, guard pages, ASan and Valgrind ------
 * Every page handed out passes page_hook_alloc and every page given back
 * passes page_hook_free, whatever the path (zone or room).  They run only
 * when a->page_hooks is set: debug builds, ASan builds, a debug arena flag,
 * or a run under valgrind. */
#define POISON_FREE 0x6b   /* as Linux's POISON_FREE */

void debug_hooks_init(struct lab_arena *a)
{
    unsigned f = a->cfg.flags;
    /* Caller-supplied memory may hold anything before its first use, so the
     * pattern check would misfire; poison only memory we mapped (zeroed). */
    a->poison = (LAB_DEBUG_ON || (f & LAB_ARENA_POISON)) && a->own_memory;
    a->protect_free = (f & LAB_ARENA_PROTECT_FREE) != 0;
    a->guard = (f & LAB_ARENA_GUARD) != 0;
    int checker = plat_checker();
    a->valgrind = checker == PLAT_CHECKER_MEMCHECK;
    a->checker = checker != PLAT_CHECKER_NONE;
    if (a->valgrind) {
        a->poison = false;   /* memcheck tracks every byte better than a pattern */
        plat_mark(a->zone.base, (size_t)a->zone.nr_pages << PAGE_SHIFT, PLAT_MARK_ARENA);
    }
    a->page_hooks = a->poison || a->protect_free || a->guard || a->checker;
}

/* The arena's memory is about to be unmapped: a later mapping at the same
 * address must not inherit our marks.  Blocks exist only below the
 * populated boundary: that much, not the whole range. */
void debug_hooks_fini(struct lab_arena *a)
{
    struct zone *z = &a->zone;
    if (a->checker)
        plat_mark(z->base, (size_t)z->populated << PAGE_SHIFT, PLAT_MARK_RELEASE);
}

static NOINLINE void poison_report(struct lab_arena *a, void *addr, size_t off, unsigned char got,
                                   unsigned char expect)
{
    struct zone *z = &a->zone;
    struct fmtbuf b = { .len = 0 };
    char *bad = (char *)addr + off;
    fmt_str(&b, "use after free: frame ");
    fmt_u64(&b, frame_of(z, bad));
    fmt_str(&b, " was written while free: byte ");
    fmt_u64(&b, (uint64_t)(((uintptr_t)bad) & (LAB_PAGE_SIZE - 1)));
    fmt_str(&b, " of the page (");
    fmt_hex(&b, (uint64_t)(uintptr_t)bad);
    fmt_str(&b, ") holds ");
    fmt_hex(&b, got);
    fmt_str(&b, ", expected ");
    fmt_hex(&b, expect);
    misuse(a, LAB_EPOISON, bad, frame_of(z, bad), b.buf);
}

/* A page is either never used (all zero: fresh or trimmed memory) or freed
 * (all POISON_FREE).  Anything else was written while free. */
static void poison_check(struct lab_arena *a, void *addr, unsigned order)
{
    for (size_t pg = 0; pg < ((size_t)1 << order); pg++) {
        const unsigned char *p = (const unsigned char *)addr + pg * LAB_PAGE_SIZE;
        unsigned char expect = p[0] == 0 ? 0 : POISON_FREE;
        for (size_t i = 0; i < LAB_PAGE_SIZE; i++) {
            if (p[i] != expect) {
                /* The page's pattern is what most of it holds: a zero
                 * written at byte 0 of a freed page is the fault, not
                 * every byte after it. */
                size_t zeros = 0;
                for (size_t j = 0; j < LAB_PAGE_SIZE; j++)
                    zeros += p[j] == 0;
                expect = zeros * 2 > LAB_PAGE_SIZE ? 0 : POISON_FREE;
                for (i = 0; p[i] == expect; i++)
                    ;
                poison_report(a, (void *)p, i, p[i], expect);
                break;
            }
        }
    }
}

void page_hook_alloc(struct lab_arena *a, void *addr, unsigned order)
{
    size_t bytes = (size_t)LAB_PAGE_SIZE << order;
    if (a->protect_free)
        os_protect(addr, bytes, true);
    if (a->checker && !a->valgrind)
        plat_mark(addr, bytes, PLAT_MARK_ALLOC);   /* ASan: before the check reads it */
    if (a->poison)
        poison_check(a, addr, order);
    if (a->valgrind)
        plat_mark(addr, bytes, PLAT_MARK_ALLOC);   /* memcheck: after the check */
}

void page_hook_free(struct lab_arena *a, void *addr, unsigned order)
{
    size_t bytes = (size_t)LAB_PAGE_SIZE << order;
    if (a->valgrind)
        plat_mark(addr, bytes, PLAT_MARK_FREE);
    if (a->poison)
        memset(addr, POISON_FREE, bytes);
    if (a->checker && !a->valgrind)
        plat_mark(addr, bytes, PLAT_MARK_FREE);
    if (a->protect_free)
        os_protect(addr, bytes, false);
}

/* A TAIL frame is inside a handed-out block (an interior pointer) or inside a
 * free block it merged into (a double free): the enclosing head says which. */
unsigned free_classify_tail(const struct zone *z, uint32_t frame)
{
    for (unsigned o = 1; o <= z->max_order; o++) {
        uint32_t head = frame & ~((1u << o) - 1);
        unsigned hs = pg_state(&z->pages[head]);
        if (hs != PG_TAIL && pg_order(&z->pages[head]) >= o)
            return hs == PG_ALLOCATED ? LAB_EINTERIOR : LAB_EDOUBLEFREE;
    }
    return LAB_EDOUBLEFREE;
}

/* Is `frame` the caller's first page of a guarded block (LAB_ARENA_GUARD)? */
/* A freed guarded block (state DEFERRED, head `head`) waits on a lock-free
 * list, counted with the deferred frees, until a context that may make
 * system calls lifts its guards and frees it.  Push-only producers, one
 * exchange to take the list: no ABA. */
void guard_defer(struct lab_arena *a, uint32_t head)
{
    struct zone *z = &a->zone;
    atomic_fetch_add_explicit(&z->deferred_pages, (size_t)1 << pg_order(&z->pages[head]), memory_order_relaxed);
    uint32_t top = atomic_load_explicit(&z->guard_pending, memory_order_relaxed);
    do {
        z->pages[head].next = top;
    } while (!atomic_compare_exchange_weak_explicit(&z->guard_pending, &top, head, memory_order_release,
                                                    memory_order_relaxed));
}

void guard_flush(struct lab_arena *a)
{
    struct zone *z = &a->zone;
    if (atomic_load_explicit(&z->guard_pending, memory_order_relaxed) == NIL)
        return;
    uint32_t f = atomic_exchange_explicit(&z->guard_pending, NIL, memory_order_acquire);
    while (f != NIL) {
        struct page *p = &z->pages[f];
        uint32_t next = p->next;
        unsigned real = pg_order(p), order = p->aux & 0xffu;
        char *user = (char *)addr_of(z, f) + ((size_t)LAB_PAGE_SIZE << order);
        os_protect(user - LAB_PAGE_SIZE, LAB_PAGE_SIZE, true);
        os_protect(user + ((size_t)LAB_PAGE_SIZE << order), LAB_PAGE_SIZE, true);
        p->aux = 0;
        atomic_fetch_sub_explicit(&z->deferred_pages, (size_t)1 << real, memory_order_relaxed);
        zone_free_block(a, f, real);
        f = next;
    }
}

bool frame_is_guarded_head(const struct zone *z, uint32_t frame)
{
    for (unsigned o = 1; o + 2 <= z->max_order; o++) {
        uint32_t head = frame - (1u << o);
        if (frame < (1u << o) || (head & ((4u << o) - 1)))
            continue;
        if (pg_state(&z->pages[head]) == PG_ALLOCATED && z->pages[head].aux == (GUARD_TAG | o) &&
            pg_order(&z->pages[head]) == o + 2)
            return true;
    }
    return false;
}
