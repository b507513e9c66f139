/*
 * arena.c - configuration, creation and destruction of an arena, trim, and
 * the names of error codes and reasons.
 */
#include "internal.h"

void lab_arena_config_init(lab_arena_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_order = LAB_MAX_ORDER_DEFAULT;
    cfg->wait_timeout_ms = 1000;
    cfg->kswapd_poll_ms = 2;
}

static int validate(const lab_arena_config *cfg, size_t *pages_out)
{
    if (cfg->size == 0)
        return LAB_ESIZE;
    if (cfg->size % LAB_PAGE_SIZE)
        return LAB_ESIZEALIGN;
    size_t pages = cfg->size / LAB_PAGE_SIZE;
    if (pages >= NIL)
        return LAB_ESIZE;
    if (cfg->max_order > LAB_MAX_ORDER_LIMIT)
        return LAB_EORDER;
    if ((uintptr_t)cfg->memory % LAB_PAGE_SIZE)
        return LAB_EMEMALIGN;
    if (cfg->flags & ~(unsigned)(LAB_ARENA_PREFAULT | LAB_ARENA_MLOCK | LAB_ARENA_HUGEPAGES | LAB_ARENA_MADV_FREE |
                                 LAB_ARENA_POISON | LAB_ARENA_PROTECT_FREE | LAB_ARENA_GUARD |
                                 LAB_ARENA_STRICT_FREE | LAB_ARENA_DECOMMIT_CALLER | LAB_ARENA_EXACT_WMARKS))
        return LAB_EFLAGS;
    size_t min = cfg->wmark_min, low = cfg->wmark_low, high = cfg->wmark_high;
    if (cfg->flags & LAB_ARENA_EXACT_WMARKS) {
        if (!(min <= low && low <= high && high < pages))
            return LAB_EWMARK;
    } else if (min || low || high) {
        if (low == 0 && high == 0) {
            if (min >= pages)
                return LAB_EWMARK;
        } else if (!(min <= low && low <= high && high < pages)) {
            return LAB_EWMARK;
        }
    }
    *pages_out = pages;
    return 0;
}

static void report_mlock_refusal(size_t bytes, int err, const char *why)
{
    struct fmtbuf b = { .len = 0 };
    fmt_str(&b, "labyrinth: mlock of ");
    fmt_u64(&b, bytes);
    fmt_str(&b, " bytes refused (errno ");
    fmt_u64(&b, (uint64_t)err);
    fmt_str(&b, ")");
    if (why[0]) {
        fmt_str(&b, "; ");
        fmt_str(&b, why);
    }
    fmt_str(&b, "\n");
    plat_log(b.buf, b.len);
}

static void zone_init(struct zone *z, char *base, struct page *pages, uint32_t nr_pages, unsigned max_order)
{
    z->base = base;
    z->pages = pages;
    z->nr_pages = nr_pages;
    z->max_order = max_order;
    z->populated = 0;         /* everything is listed lazily by buddy_take */
    z->free_pages = nr_pages;
    atomic_store(&z->free_pages_pub, nr_pages);
    for (unsigned o = 0; o <= LAB_MAX_ORDER_LIMIT; o++) {
        z->area[o].head = NIL;
        z->ha_area[o].head = NIL;
        z->void_area[o].head = NIL;
    }
    z->ha_cap = nr_pages / 100;
    atomic_store(&z->deferred, NIL);
    atomic_store(&z->guard_pending, NIL);
    z->deferred_taken = NIL;
}

int lab_arena_create(const lab_arena_config *cfg, lab_arena **out)
{
    if (!out)
        return LAB_EINVAL;
    *out = NULL;
    if (!cfg)
        return LAB_EINVAL;
    size_t pages;
    int err = validate(cfg, &pages);
    if (err)
        return err;

    /* cache-line aligned: the zone and counters are laid out by line */
    struct lab_arena *a = meta_alloc(sizeof(*a));
    if (!a)
        return LAB_ENOMEM;
    a->cfg = *cfg;
    if (a->cfg.wait_timeout_ms == 0)
        a->cfg.wait_timeout_ms = 1000;
    if (a->cfg.kswapd_poll_ms == 0)
        a->cfg.kswapd_poll_ms = 2;
    name_copy(a->name, sizeof(a->name), cfg->name ? cfg->name : "arena");

    unsigned max_order = cfg->max_order;
    while (max_order > 0 && ((size_t)1 << max_order) > pages)
        max_order--;

    bool prefault = (cfg->flags & (LAB_ARENA_PREFAULT | LAB_ARENA_MLOCK)) != 0;
    /* the descriptors, then room_of (2 bytes a frame), in one mapping */
    a->desc_bytes = (pages * (sizeof(struct page) + sizeof(uint16_t)) + LAB_PAGE_SIZE - 1) & ~(size_t)(LAB_PAGE_SIZE - 1);
    struct page *descs = os_map(a->desc_bytes, prefault);
    char *base = cfg->memory;
    if (!base && (cfg->flags & LAB_ARENA_HUGEPAGES)) {
        base = os_map_huge(cfg->size, prefault, &a->huge_mode);
        a->own_memory = true;
    } else if (!base) {
        base = os_map(cfg->size, prefault);
        a->own_memory = true;
    } else if (prefault) {
        for (size_t off = 0; off < cfg->size; off += LAB_PAGE_SIZE)
            ((volatile char *)base)[off] = ((volatile char *)base)[off];
    }
    if (!descs || !base) {
        err = LAB_EMAP;
        goto fail;
    }
    if ((cfg->flags & LAB_ARENA_HUGEPAGES) && cfg->memory)
        a->huge_mode = plat_advise_huge(base, cfg->size);
    if (cfg->flags & LAB_ARENA_MLOCK) {
        char why[160];
        int e = os_mlock(base, cfg->size, why, sizeof(why));
        if (e == 0)
            e = os_mlock(descs, a->desc_bytes, why, sizeof(why));
        if (e) {
            report_mlock_refusal(cfg->size + a->desc_bytes, e, why);
            err = LAB_EMLOCK;
            goto fail;
        }
    }

    zone_init(&a->zone, base, descs, (uint32_t)pages, max_order);
    a->zone.room_of = (_Atomic uint16_t *)(descs + pages);
    a->zone.bytes = (uintptr_t)pages << PAGE_SHIFT;
    a->strict_free = LAB_DEBUG_ON || (cfg->flags & LAB_ARENA_STRICT_FREE);
    zone_init_watermarks(&a->zone, cfg);
    /* A huge page is given back whole or not at all: trim 2 MiB blocks only. */
    if (a->huge_mode == LAB_HUGE_EXPLICIT || a->huge_mode == LAB_HUGE_TRANSPARENT)
        a->zone.trim_min_order = 9;
    if (prefault) {
        /* list every block now, so no descriptor is first written later */
        zone_lock(&a->zone);
        buddy_populate_all(&a->zone);
        zone_unlock(&a->zone);
    }
    if ((err = reclaim_init(a)))
        goto fail;
    fault_init(a);
    debug_hooks_init(a);
    a->room_free_fast = !a->strict_free && !a->page_hooks;
    /* Caller memory may be seen by others (a registered UMEM, a shared
     * mapping): decommitting it would part our pages from theirs. */
    if (!a->own_memory && !(cfg->flags & LAB_ARENA_DECOMMIT_CALLER))
        a->trim_off = LAB_TRIM_CALLER_MEMORY;
    /* Locked memory is locked on purpose (no page fault on the atomic
     * path), and the OS refuses to decommit it anyway (EINVAL). */
    if (cfg->flags & LAB_ARENA_MLOCK)
        a->trim_off = LAB_TRIM_MLOCKED;
    if (a->cfg.trim_delay_ms)
        kswapd_start(a);    /* it is the one that trims idle memory */
    *out = a;
    return 0;
fail:
    plat_unmap(descs, a->desc_bytes);
    if (a->own_memory && base)
        plat_unmap(base, cfg->size);
    meta_free(a, sizeof(*a));
    return err;
}

void lab_arena_destroy(lab_arena *a)
{
    if (!a)
        return;
    reclaim_fini(a);
    lab_arena_flush(a);
    rooms_destroy_all(a);
    debug_hooks_fini(a);
    plat_unmap(a->zone.pages, a->desc_bytes);
    if (a->own_memory)
        plat_unmap(a->zone.base, a->cfg.size);
    meta_free(a, sizeof(*a));
}

size_t lab_page_size(const lab_arena *a)
{
    (void)a;
    return LAB_PAGE_SIZE;
}

unsigned lab_arena_max_order(const lab_arena *a) { return a ? a->zone.max_order : 0; }
void *lab_arena_base(const lab_arena *a) { return a ? a->zone.base : NULL; }
size_t lab_arena_size(const lab_arena *a) { return a ? (size_t)a->zone.nr_pages << PAGE_SHIFT : 0; }

void *lab_page_of(const lab_arena *a, const void *addr)
{
    if (!a || (const char *)addr < a->zone.base)
        return NULL;
    size_t off = (size_t)((const char *)addr - a->zone.base);
    if (off >= (size_t)a->zone.nr_pages << PAGE_SHIFT)
        return NULL;
    return a->zone.base + (off & ~(size_t)(LAB_PAGE_SIZE - 1));
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

static size_t trim_batch(struct lab_arena *a, size_t keep_pages, bool *refused)
{
    struct zone *z = &a->zone;
    uint32_t isolated = NIL;
    unsigned n_iso = 0;
    zone_lock(z);
    for (int o = (int)z->max_order; o >= (int)z->trim_min_order && n_iso < TRIM_BATCH; o--) {
        uint32_t f;
        while (n_iso < TRIM_BATCH && (f = z->area[o].head) != NIL &&
               z->free_pages >= keep_pages + ((size_t)1 << o)) {
            buddy_remove_free(z, f, (unsigned)o);
            pg_set_state(&z->pages[f], PG_ISOLATED);
            z->void_inflight += (size_t)1 << o;
            z->pages[f].next = isolated;
            isolated = f;
            n_iso++;
        }
    }
    zone_unlock(z);
    /* A block the OS refused to decommit is still backed: it goes back to
     * the free lists, not to the void, and is not counted as trimmed.
     * page.aux marks the refused ones until the lock is taken again. */
    size_t pages = 0;
    for (uint32_t f = isolated; f != NIL; f = z->pages[f].next) {
        size_t n = (size_t)1 << pg_order(&z->pages[f]);
        bool done = os_decommit(addr_of(z, f), n << PAGE_SHIFT, (a->cfg.flags & LAB_ARENA_MADV_FREE) != 0);
        z->pages[f].aux = done ? 0 : 1;
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
        if (z->pages[isolated].aux) {
            z->pages[isolated].aux = 0;
            buddy_put(z, isolated, o);
        } else {
            void_put(z, isolated, o);
        }
        isolated = next;
    }
    zone_unlock(z);
    return n_iso ? pages : (size_t)-1;
}

size_t trim_above(struct lab_arena *a, size_t keep_pages)
{
    if (a->trim_off) {   /* caller memory or locked memory: see lab_arena_create */
        ctr_add_shared(&a->st.trim_refused, 1);
        return 0;
    }
    size_t pages = 0, got;
    bool refused = false;
    while (!refused && (got = trim_batch(a, keep_pages, &refused)) != (size_t)-1)
        pages += got;
    ctr_add_shared(&a->st.trimmed_pages, pages);
    return pages << PAGE_SHIFT;
}

size_t lab_arena_trim(lab_arena *a)
{
    if (!a)
        return 0;
    /* Non-blocking requests cannot re-commit; the background reclaimer does
     * it for them when they find free pages below low. */
    kswapd_start(a);
    return trim_above(a, a->zone.wmark[WMARK_MIN]);
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
        /* LAB_ARENA_PROTECT_FREE: a freed page is PROT_NONE, which the
         * re-commit (and its touch fallback) cannot write; it faults in when
         * handed out and unprotected. */
        if (!a->protect_free)
            os_recommit(addr_of(z, f), (size_t)LAB_PAGE_SIZE << o);
        zone_lock(z);
        z->void_inflight -= (size_t)1 << o;
        buddy_put(z, f, o);
        zone_unlock(z);
        got += (size_t)1 << o;
    }
    ctr_add_shared(&a->st.recommitted_pages, got);
    return got;
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
    [LAB_EFLAGS] = "unknown arena flag",
    [LAB_EMAP] = "the OS refused to map memory",
    [LAB_EMLOCK] = "the OS refused to lock memory (memlock limit)",
    [LAB_ENOMEM] = "out of memory for bookkeeping",
    [LAB_EBATCH] = "room batch is zero",
    [LAB_ERESERVE] = "room reserve larger than the free pages above min",
    [LAB_EQUOTA] = "room quota smaller than its reserve",
    [LAB_EBUSY] = "table full",
    [LAB_ENOTFOUND] = "not found",
    [LAB_EDOUBLEFREE] = "double free",
    [LAB_EWRONGORDER] = "wrong order",
    [LAB_EINTERIOR] = "interior pointer",
    [LAB_EUNALIGNED] = "unaligned pointer",
    [LAB_EFOREIGN] = "foreign pointer",
    [LAB_EBADORDER] = "order above max_order",
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

const char *lab_strerror(int err)
{
    if (err < 0 || err >= LAB_ERROR_COUNT || !error_names[err])
        return "unknown error";
    return error_names[err];
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
    if (reason < 0 || reason >= LAB_R_COUNT)
        return "unknown reason";
    return reason_names[reason];
}
