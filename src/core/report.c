/*
 * report.c - what the library says: the names of its error codes and
 * reasons, misuse reports, failure reports, and the deferred log that holds
 * the reports of contexts that may not write.
 *
 * Reports may be made in a signal handler, so they are formatted by hand
 * into a stack buffer and handed to the platform's log sink: no stdio, no
 * allocation.
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

/* Any context, an atomic request's failure included: the coarse clock. */
static bool report_allowed(struct lab_arena *a)
{
    uint64_t now = plat_now_coarse_ns();
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


/* Once per arena (hooks.c, protect_give_up): any context, deferred to one
 * that may write unless a log hook takes it. */
void report_protect_off(struct lab_arena *a)
{
    struct fmtbuf b = { .len = 0 };
    fmt_arena(&b, a);
    fmt_str(&b, "the OS refused to open protected pages (mprotect; vm.max_map_count?): "
                "the arena is open, LAB_ARENA_PROTECT_FREE and LAB_ARENA_GUARD protect nothing more\n");
    struct hook_pair h;
    if (hook_get(a->log_hooks, &a->log_hook, &h))
        ((lab_log_fn)h.fn)(h.ctx, b.buf, b.len);
    else
        log_default(a, b.buf, b.len, false);
}

/* ---- names ----------------------------------------------------------------- */

static const char *const error_names[LAB_ERROR_COUNT] = {
    [LAB_OK] = "success",
    [LAB_EINVAL] = "invalid argument (NULL)",
    [LAB_ESIZE] = "arena size is zero or too large",
    [LAB_ESIZEALIGN] = "arena size is not a multiple of the page size",
    [LAB_EORDER] = "max_order out of range",
    [LAB_EMEMALIGN] = "supplied memory is not page aligned",
    [LAB_EWMARK] = "watermarks out of order (need min <= low <= high < pages)",
    [LAB_EFLAGS] = "unknown flag (arena or room)",
    [LAB_EMAP] = "the OS refused to map memory",
    [LAB_EMLOCK] = "the OS refused to lock memory (memlock limit)",
    [LAB_ENOMEM] = "out of memory for bookkeeping",
    [LAB_EBATCH] = "room batch is zero",
    [LAB_ERESERVE] = "room reserve larger than the free pages above min, the void's included",
    [LAB_EQUOTA] = "room quota too small for its reserve and a block of its max_order",
    [LAB_EBUSY] = "busy (a table full, or a shrinker registered from a shrinker)",
    [LAB_ENOTFOUND] = "not found",
    [LAB_EDOUBLEFREE] = "double free",
    [LAB_EWRONGORDER] = "wrong order",
    [LAB_EINTERIOR] = "interior pointer",
    [LAB_EUNALIGNED] = "unaligned pointer",
    [LAB_EFOREIGN] = "foreign pointer",
    [LAB_EBADORDER] = "order above max_order, or a block that can never be served",
    [LAB_EROOMDEAD] = "room used after destroy",
    [LAB_ENOTOWNER] = "room used by a context that does not own it",
    [LAB_ENOTROOMPAGE] = "page not handed out by this room",
    [LAB_EPOISON] = "use after free (poison overwritten)",
    [LAB_ECHECK_STATE] = "invariant: frame state",
    [LAB_ECHECK_ALIGN] = "invariant: block alignment",
    [LAB_ECHECK_BUDDY] = "invariant: unmerged free buddies",
    [LAB_ECHECK_COUNT] = "invariant: list length differs from counter",
    [LAB_ECHECK_WMARK] = "invariant: watermarks or reserve caps",
};

/* Entry i of a table of n names, or `unknown` where it has none. */
static const char *name_in(const char *const *names, int n, int i, const char *unknown)
{
    return i < 0 || i >= n || !names[i] ? unknown : names[i];
}

const char *lab_strerror(int err)
{
    return name_in(error_names, LAB_ERROR_COUNT, err, "unknown error");
}

static const char *const reason_names[LAB_R_COUNT] = {
    [LAB_R_NONE] = "none",
    [LAB_R_WATERMARK] = "below watermark",
    [LAB_R_FRAGMENTED] = "no free block of the order",
    [LAB_R_RESERVE_EMPTY] = "reserve exhausted",
    [LAB_R_WOULD_BLOCK] = "would block",
    [LAB_R_ORDER] = "order too large",
    [LAB_R_QUOTA] = "room quota reached",
    [LAB_R_INJECTED] = "injected fault",
    [LAB_R_TIMEOUT] = "timed out",
    [LAB_R_BADARG] = "bad argument",
};

const char *lab_strreason(int reason)
{
    return name_in(reason_names, LAB_R_COUNT, reason, "unknown reason");
}

/* One word each, with no space: they are keys in lab_stats_print's JSON. */
static const char *const step_names[LAB_STEP_COUNT] = {
    [LAB_STEP_NONE] = "none",
    [LAB_STEP_ROOM] = "room",
    [LAB_STEP_ROOM_REMOTE] = "room_remote",
    [LAB_STEP_ZONE] = "zone",
    [LAB_STEP_ROOM_RESERVE] = "room_reserve",
    [LAB_STEP_EMERGENCY] = "emergency",
    [LAB_STEP_HIGHATOMIC] = "highatomic",
    [LAB_STEP_RECOMMIT] = "recommit",
    [LAB_STEP_RECLAIM] = "reclaim",
    [LAB_STEP_WAIT] = "wait",
};

const char *lab_strstep(int step)
{
    return name_in(step_names, LAB_STEP_COUNT, step, "unknown step");
}
