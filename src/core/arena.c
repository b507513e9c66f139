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
    atomic_store(&z->guard_flusher, NULL);
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
        os_touch(base, cfg->size);
    }
    if (!descs || !base) {
        err = LAB_EMAP;
        goto fail;
    }
    if ((cfg->flags & LAB_ARENA_HUGEPAGES) && cfg->memory)
        a->huge_mode = plat_advise_huge(base, cfg->size);
    /* Everything that can still fail before the locks: caller memory
     * locked by a call that then failed stays locked (see below). */
    if ((err = reclaim_init(a)))
        goto fail;
    if (cfg->flags & LAB_ARENA_MLOCK) {
        char why[160];
        /* The descriptors first: a refusal of the frames' lock then
         * leaves nothing locked that the failure path does not unmap.
         * The other way round, a refusal of the descriptors left caller
         * memory locked (counted against the memlock limit) by a call
         * that failed, and it cannot be unlocked here: locks do not nest,
         * and the caller may have locked it itself. */
        int e = os_mlock(descs, a->desc_bytes, why, sizeof(why));
        if (e == 0)
            e = os_mlock(base, cfg->size, why, sizeof(why));
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
    fault_init(a);
    debug_hooks_init(a);
    /* Rooms' lanes need destroy's asymmetric fence (handoff.c). */
    a->lanes_ok = plat_membarrier();
    a->room_free_fast = LAB_DEBUG_ON || (!a->strict_free && !a->page_hooks);
    a->room_orders = a->zone.max_order < ROOM_ORDERS ? a->zone.max_order + 1 : ROOM_ORDERS;
    /* Caller memory may be seen by others (a registered UMEM, a shared
     * mapping): decommitting it would part our pages from theirs. */
    if (!a->own_memory && !(cfg->flags & LAB_ARENA_DECOMMIT_CALLER))
        a->trim_off = LAB_TRIM_CALLER_MEMORY;
    /* Blocks are aligned to their size relative to the start: caller
     * memory need only be page aligned, and then every 2 MiB block
     * straddles two huge pages, which a trim would split. */
    else if (a->zone.trim_min_order == 9 && (uintptr_t)base % ((uintptr_t)LAB_PAGE_SIZE << 9))
        a->trim_off = LAB_TRIM_HUGE_UNALIGNED;
    /* Locked memory is locked on purpose (no page fault on the atomic
     * path), and the OS refuses to decommit it anyway (EINVAL). */
    if (cfg->flags & LAB_ARENA_MLOCK)
        a->trim_off = LAB_TRIM_MLOCKED;
    if (a->cfg.trim_delay_ms)
        kswapd_start(a);    /* it is the one that trims idle memory */
    *out = a;
    return 0;
fail:
    reclaim_fini(a);
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

