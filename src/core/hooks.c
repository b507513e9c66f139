/*
 * hooks.c - the debug page hooks: poisoning, protection of free pages,
 * guard pages, and the marks a memory checker (ASan, memcheck) is given.
 * Every block handed out passes page_hook_alloc and every block given back
 * page_hook_free, whatever the path, when the arena has any hook on.
 */
#include "internal.h"

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
    /* Caller memory goes back to the caller as it came: accessible, the
     * freed pages' protection and the guards lifted. */
    if (!a->own_memory && (a->protect_free || a->guard))
        os_protect(z->base, (size_t)z->nr_pages << PAGE_SHIFT, true);
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

/* The OS refused an mprotect that opens memory: most likely the process is
 * at vm.max_map_count, each protected run of free pages (and each guard)
 * being a mapping of its own, and opening a page inside a run splitting
 * it.  What the arena hands out must be accessible: the whole arena is
 * opened in one call, which joins the runs into one mapping and so needs
 * none, and nothing is protected from then on; said once.  If even that
 * is refused, no page can be handed out safely. */
static bool protect_give_up(struct lab_arena *a)
{
    struct zone *z = &a->zone;
    bool first = !atomic_exchange(&a->protect_off, true);
    if (!os_protect(z->base, (size_t)z->nr_pages << PAGE_SHIFT, true)) {
        static const char msg[] = "labyrinth: the OS refused to open the arena's protected pages\n";
        plat_log(msg, sizeof(msg) - 1);
        plat_abort();
    }
    return first;   /* the report is this caller's to make */
}

/* Whether freed pages and guards are still protected. */
static bool protecting(struct lab_arena *a)
{
    return !atomic_load_explicit(&a->protect_off, memory_order_relaxed);
}

/* Open pages that may be protected: always tried, a page protected by a
 * free that raced protect_give_up included.  True when the report that
 * protection is off is owed: guard_flush makes it once its flush is over
 * (see there); every other caller at once, through hooks_open. */
static bool hooks_open_unreported(struct lab_arena *a, void *addr, size_t bytes)
{
    return !os_protect(addr, bytes, true) && protect_give_up(a);
}

static void hooks_open(struct lab_arena *a, void *addr, size_t bytes)
{
    if (hooks_open_unreported(a, addr, bytes))
        report_protect_off(a);
}

void page_hook_alloc(struct lab_arena *a, void *addr, unsigned order)
{
    size_t bytes = (size_t)LAB_PAGE_SIZE << order;
    if (a->protect_free)
        hooks_open(a, addr, bytes);
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
    if (a->protect_free && protecting(a))
        os_protect(addr, bytes, false);   /* refused: the page stays open, unwatched */
}

/* A re-commit of free pages (void_recommit).  A free page is closed to
 * the memory checkers and, with LAB_ARENA_PROTECT_FREE, to everyone,
 * and the re-commit's touch fallback writes it: opened for the
 * re-commit, closed again after, so that no port has to commit memory on
 * a touch and no checker reports the touch.  And the touch leaves a zero
 * at the start of a page that MADV_FREE kept poisoned: poisoned whole
 * again, or the next hand-out would report a use after free. */
void page_hook_recommit(struct lab_arena *a, void *addr, size_t bytes)
{
    if (a->protect_free)
        hooks_open(a, addr, bytes);   /* the re-commit may touch it */
    if (a->checker)
        plat_mark(addr, bytes, PLAT_MARK_ALLOC);
    if (!os_recommit(addr, bytes) && a->poison)
        memset(addr, POISON_FREE, bytes);
    if (a->checker)
        plat_mark(addr, bytes, PLAT_MARK_FREE);
    if (a->protect_free && protecting(a))
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
    if (atomic_load_explicit(&z->guard_pending, memory_order_relaxed) == NIL &&
        atomic_load_explicit(&z->guard_flusher, memory_order_acquire) == NULL)
        return;
    /* One flush at a time.  A flush that found the list taken by another
     * (the background reclaimer's, say), still lifting guards, would
     * otherwise return before those blocks are back: lab_arena_flush
     * promises that every guarded block freed before the call has
     * rejoined the free lists when it returns.  Every caller may block.
     * No code of the program runs while a flush is under way: the report
     * that the OS refused to lift a guard (which goes to the log hook) is
     * made after it, for a hook that takes a lock of the program's, held
     * by a thread that waits here meanwhile (lab_stats_get under a log
     * lock), would wait for that thread for ever.  A flush called from
     * inside this thread's own does not wait for itself all the same. */
    const void *self = plat_thread_self(), *none = NULL;
    if (atomic_load_explicit(&z->guard_flusher, memory_order_relaxed) == self)
        return;
    while (!atomic_compare_exchange_weak_explicit(&z->guard_flusher, &none, self, memory_order_acquire,
                                                  memory_order_relaxed)) {
        none = NULL;
        plat_sleep_ms(1);
    }
    uint32_t first = atomic_exchange_explicit(&z->guard_pending, NIL, memory_order_acquire);
    /* The guards come off with no lock held (system calls) ... unless
     * freed pages are kept closed (LAB_ARENA_PROTECT_FREE): the guards are
     * free pages from now on, and closed they stay, or a touch just past
     * the freed block would find an open free page. */
    bool keep_closed = a->protect_free && protecting(a), owe_report = false;
    for (uint32_t f = first; f != NIL; f = z->pages[f].next) {
        struct page *p = &z->pages[f];
        unsigned order = p->prev & 0xffu;
        char *user = (char *)addr_of(z, f) + ((size_t)LAB_PAGE_SIZE << order);
        if (!keep_closed) {
            owe_report |= hooks_open_unreported(a, user - LAB_PAGE_SIZE, LAB_PAGE_SIZE);
            owe_report |= hooks_open_unreported(a, user + ((size_t)LAB_PAGE_SIZE << order), LAB_PAGE_SIZE);
        }
        p->prev = NIL;
    }
    /* ... and the blocks leave the deferred count for the free lists in one
     * hold, so that a snapshot taken under the lock (lab_stats_get,
     * lab_check) finds each in one count or the other, never in neither.
     * Every caller may block and holds no lock. */
    zone_lock(z);
    for (uint32_t f = first; f != NIL;) {
        uint32_t next = z->pages[f].next;
        unsigned real = pg_order(&z->pages[f]);
        atomic_fetch_sub_explicit(&z->deferred_pages, (size_t)1 << real, memory_order_relaxed);
        buddy_put(z, f, real);
        f = next;
    }
    zone_unlock(z);
    atomic_store_explicit(&z->guard_flusher, NULL, memory_order_release);
    if (owe_report)
        report_protect_off(a);
}

bool frame_is_guarded_head(const struct zone *z, uint32_t frame)
{
    for (unsigned o = 1; o + 2 <= z->max_order; o++) {
        uint32_t head = frame - (1u << o);
        if (frame < (1u << o) || (head & ((4u << o) - 1)))
            continue;
        if (pg_state(&z->pages[head]) == PG_ALLOCATED && z->pages[head].prev == (GUARD_TAG | o) &&
            pg_order(&z->pages[head]) == o + 2)
            return true;
    }
    return false;
}

/* Work left by contexts that may not make system calls: deferred reports
 * to write, freed guarded blocks to unprotect. */
void lab_arena_flush(lab_arena *a)
{
    if (!a)
        return;
    log_flush(a);
    guard_flush(a);
}

