/*
 * Fault points: every failure the library can meet below its API -- each
 * mmap, mlock, madvise (decommit, re-commit), mprotect, futex wait,
 * metadata allocation, thread start, a refill cut short after its first
 * page, and a zone lock found busy -- is a fault point (src/internal.h,
 * fault_point()).  Tests link the static library and arm them with the
 * internal hooks fault_points_arm / fault_points_calls.
 *
 * The library's work is split into phases.  Each phase pins how many
 * times it passes each point (the table below), so adding or losing a
 * point is a visible change to this file.  Then, for every point of every
 * phase, a fresh run fails exactly that call: the phase's API call must
 * report the failure as documented (or absorb it), and afterwards the
 * arena passes lab_check, every page comes back (free + void == total), and
 * an arena that failed to be created leaves no mapping behind.  Several
 * points fire after the state has changed: the second page of a refill,
 * the drain of a full stock, the decommit of the third block of a trim.
 *
 * futex_wait is the one point driven by time (how often a sleeping request
 * or the reclaimer wakes), so its count is not pinned: its phase asserts at
 * least one call, and failing the first must still end in a timeout.
 */
#include "check.h"
#include "internal.h"

#include <stdbool.h>

#define PAGES     512
#define MAX_ORDER 5
#define NOT_PINNED UINT64_MAX

struct ctx {
    lab_arena *a;
    lab_room *r;
    void *held[PAGES];
    unsigned held_order[PAGES];
    size_t nheld;
    int outcome;            /* the API's answer in the phase: 0 or a code/reason */
};

static lab_arena *make_arena(unsigned flags, size_t pages, size_t wmin, size_t wlow, size_t whigh)
{
    lab_arena_config cfg;
    test_arena_config(&cfg, pages, MAX_ORDER, wmin, wlow, whigh);
    cfg.flags = flags;
    cfg.wait_timeout_ms = 20;
    return test_arena_create(&cfg);
}

static void quiet_log(void *ctx, const char *msg, size_t len) { (void)ctx; (void)msg; (void)len; }

static void hold(struct ctx *c, void *p, unsigned order)
{
    if (!p)
        return;
    c->held[c->nheld] = p;
    c->held_order[c->nheld++] = order;
}

/* ---- phases ------------------------------------------------------------------ */

static size_t vm_pages(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    size_t size = 0;
    if (f) {
        if (fscanf(f, "%zu", &size) != 1)
            size = 0;
        fclose(f);
    }
    return size;
}

static int create_with(struct ctx *c, unsigned flags)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = 64 * LAB_PAGE_SIZE;
    cfg.flags = flags;
    return lab_arena_create(&cfg, &c->a);
}
static void run_create(struct ctx *c) { c->outcome = create_with(c, 0); }
static void run_create_mlock(struct ctx *c) { c->outcome = create_with(c, LAB_ARENA_MLOCK); }
static void run_create_huge(struct ctx *c)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = 2u << 20;
    cfg.flags = LAB_ARENA_HUGEPAGES;
    c->outcome = lab_arena_create(&cfg, &c->a);
}

static void setup_arena(struct ctx *c) { c->a = make_arena(0, PAGES, 16, 24, 32); }

static void run_room_create(struct ctx *c)
{
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.reserve = 4;
    rc.batch = 8;
    c->outcome = lab_room_create(c->a, &rc, &c->r);
}

static void setup_room(struct ctx *c)
{
    setup_arena(c);
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.batch = 8;
    rc.high = 8;
    REQUIRE(lab_room_create(c->a, &rc, &c->r) == 0);
}

/* 8 non-blocking allocations, one refill of 8 pages: the refill passes
 * refill_cut once (it has more than one page to give) and lock_busy once.
 * A cut refill is refilled again; a busy lock fails that one request
 * (WOULD_BLOCK), the documented
 * answer of a request that may not wait.  (NOWAIT rather than ATOMIC: an
 * ATOMIC one goes on to the room's empty reserve and reports that.) */
static void run_room_refill(struct ctx *c)
{
    int fails = 0;
    for (int i = 0; i < 8; i++) {
        lab_result res;
        lab_room_alloc_result(c->r, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, &res);
        if (res.addr)
            hold(c, res.addr, 0);
        else if (res.reason == LAB_R_WOULD_BLOCK)
            fails++;
        else
            c->outcome = res.reason;    /* anything else is wrong */
    }
    if (!c->outcome)
        c->outcome = fails ? LAB_R_WOULD_BLOCK : 0;
}

/* A full stock (high 8) drained by the owner's free: the drain tries the
 * zone lock (lock_busy); found busy, the pages go to the deferred list. */
static void setup_room_full(struct ctx *c)
{
    setup_room(c);
    for (int i = 0; i < 9; i++)
        hold(c, lab_room_alloc(c->r, LAB_GFP_KERNEL), 0);
    REQUIRE(c->nheld == 9);
}
static void run_room_drain(struct ctx *c)
{
    for (size_t i = 0; i < c->nheld; i++)
        lab_room_free(c->r, c->held[i]);
    c->nheld = 0;
    lab_room_stats rs;
    lab_room_stats_get(c->r, &rs);
    c->outcome = rs.stock <= 8 ? 0 : -1;
}

/* lab_check of an arena with rooms maps a scratch table (mmap); without
 * it, the check still runs, without the per-room counts. */
static void run_check(struct ctx *c) { c->outcome = lab_check(c->a); }

/* Trim: three free blocks of order 5 above min.  The reclaimer thread starts
 * (thread_start), each block is decommitted (decommit). */
static void fill_touch_and_free(struct ctx *c)
{
    /* touch every page, so trim has committed memory to give back */
    for (int i = 0; i < 4; i++)
        hold(c, lab_alloc_pages(c->a, LAB_GFP_MEMALLOC, 5), 5);
    REQUIRE(c->nheld == 4);
    for (size_t i = 0; i < c->nheld; i++)
        memset(c->held[i], 1, (size_t)LAB_PAGE_SIZE << 5);
    for (size_t i = 0; i < c->nheld; i++)
        lab_free_pages(c->a, c->held[i], 5);
    c->nheld = 0;
}
static void setup_trim(struct ctx *c)
{
    c->a = make_arena(0, 128, 16, 24, 32);
    fill_touch_and_free(c);
}
/* A block the OS refused to decommit is still committed: it goes back to
 * the free lists, so the void holds exactly what trim says it gave back.
 * Without the reclaimer (its thread refused), trim gives nothing back:
 * nothing else would re-commit for non-blocking requests. */
#define TRIM_NOTHING 1
static void run_trim(struct ctx *c)
{
    size_t got = lab_arena_trim(c->a);
    lab_stats st;
    lab_stats_get(c->a, &st);
    c->outcome = got > 0 && st.void_pages * LAB_PAGE_SIZE == got ? 0   /* trim counts bytes */
                 : got == 0 && st.void_pages == 0                 ? TRIM_NOTHING
                                                                  : -1;
}

/* Re-commit: min = low = high = 1, so a trimmed arena's blocking request
 * re-commits at step 6 without waking the reclaimer (free pages are not
 * below low): one re-commit per block it takes from the void. */
static void setup_recommit(struct ctx *c)
{
    c->a = make_arena(0, 128, 1, 1, 1);
    fill_touch_and_free(c);
    REQUIRE(lab_arena_trim(c->a) > 0);
}
static void run_recommit(struct ctx *c)
{
    for (int i = 0; i < 3; i++)
        hold(c, lab_alloc_pages(c->a, LAB_GFP_KERNEL | LAB_GFP_NORETRY | LAB_GFP_NOWARN, 5), 5);
    c->outcome = c->nheld == 3 ? 0 : -1;
}

/* The same on pages poisoned when freed and trimmed with MADV_FREE, which
 * the kernel leaves in place while it has memory: a re-commit by touch
 * (a kernel without MADV_POPULATE_WRITE, or the injected failure) wrote
 * a zero at each page's start, and the hand-out reported a use after
 * free for every page.  Any misuse report fails the phase. */
static void count_misuse(void *ctx, int err, const void *addr, const char *msg)
{
    (void)err;
    (void)addr;
    (void)msg;
    ++*(unsigned *)ctx;
}
static unsigned recommit_misuse;
static void setup_recommit_poisoned(struct ctx *c)
{
    c->a = make_arena(LAB_ARENA_MADV_FREE | LAB_ARENA_POISON, 128, 1, 1, 1);
    recommit_misuse = 0;
    lab_set_misuse_handler(c->a, count_misuse, &recommit_misuse);
    fill_touch_and_free(c);
    REQUIRE(lab_arena_trim(c->a) > 0);
}
static void run_recommit_poisoned(struct ctx *c)
{
    run_recommit(c);
    if (recommit_misuse)
        c->outcome = -1;
}

/* GUARD: an order-1 block between two PROT_NONE pages: two mprotect calls
 * to hand it out, two to lift the guards when a context that may make
 * system calls flushes the freed block (the free itself may be atomic). */
static void setup_guard(struct ctx *c)
{
    c->a = make_arena(LAB_ARENA_GUARD, PAGES, 16, 24, 32);
    lab_set_log_hook(c->a, quiet_log, NULL);
}
/* Every page of the arena handed out (unguarded: MEMALLOC may not make
 * system calls) and written: a guard the OS refused to lift must not stay
 * on a page handed out (the arena is opened instead, hooks.c). */
static void write_every_page(struct ctx *c)
{
    void *q;
    while ((q = lab_alloc_pages(c->a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, 3)) != NULL) {
        memset(q, 9, (size_t)LAB_PAGE_SIZE << 3);
        hold(c, q, 3);
    }
}
static void run_guard(struct ctx *c)
{
    void *p = lab_alloc_pages(c->a, LAB_GFP_KERNEL, 1);
    c->outcome = p ? 0 : -1;
    if (p) {
        memset(p, 7, 2 * LAB_PAGE_SIZE);
        lab_free_pages(c->a, p, 1);
        lab_arena_flush(c->a);
    }
    write_every_page(c);
}

/* PROTECT_FREE: a freed page is PROT_NONE until it is handed out again,
 * opened by one mprotect.  Refused, the whole arena is opened (hooks.c):
 * the page handed out is written here either way. */
static void setup_protected(struct ctx *c)
{
    c->a = make_arena(LAB_ARENA_PROTECT_FREE, PAGES, 16, 24, 32);
    lab_set_log_hook(c->a, quiet_log, NULL);
    void *p = lab_alloc_pages(c->a, LAB_GFP_ATOMIC, 0);
    REQUIRE(p);
    lab_free_pages(c->a, p, 0);   /* protected */
}
static void run_protected(struct ctx *c)
{
    lab_result res;
    lab_alloc_pages_result(c->a, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, 0, &res);   /* the same page */
    void *p = res.addr;
    c->outcome = p ? 0 : res.reason;
    if (p) {
        memset(p, 7, LAB_PAGE_SIZE);
        hold(c, p, 0);
    }
}

/* Re-commit of protected free pages: each block is opened for the
 * re-commit (which may touch it), closed, and opened again when handed
 * out; every one written. */
static void setup_recommit_protected(struct ctx *c)
{
    c->a = make_arena(LAB_ARENA_PROTECT_FREE, 128, 1, 1, 1);
    lab_set_log_hook(c->a, quiet_log, NULL);
    fill_touch_and_free(c);
    REQUIRE(lab_arena_trim(c->a) > 0);
}
static void run_recommit_protected(struct ctx *c)
{
    run_recommit(c);
    for (size_t i = 0; i < c->nheld; i++)
        memset(c->held[i], 3, (size_t)LAB_PAGE_SIZE << c->held_order[i]);
}

/* Step 8: every page handed out, a blocking request sleeps (futex wait)
 * until its 20 ms run out.  A failed wait is a spurious wake-up. */
static void setup_full(struct ctx *c)
{
    c->a = make_arena(0, 64, 4, 6, 8);
    lab_set_log_hook(c->a, quiet_log, NULL);
    void *p;
    while ((p = lab_alloc_pages(c->a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, 0)) != NULL)
        hold(c, p, 0);
}
static void run_wait(struct ctx *c)
{
    lab_result res;
    lab_alloc_pages_result(c->a, LAB_GFP_KERNEL | LAB_GFP_NOWARN, 0, &res);
    c->outcome = res.addr ? -1 : res.reason;
}

struct phase {
    const char *name;
    void (*setup)(struct ctx *);
    void (*run)(struct ctx *);
    int outcome_ok;              /* what run answers with no fault */
    bool maps_checked;           /* a failed create leaves no mapping behind */
    uint64_t pinned[FP_NR_SITES];
};

/* How often each phase passes each point.  Change a number only together
 * with the library change that adds or removes the point. */
#define P(mmap, mlock, decommit, recommit, mprotect, futex, meta, thread, cut, busy) \
    { mmap, mlock, decommit, recommit, mprotect, futex, meta, thread, cut, busy }
/* (Trim splits the block its floor falls in, and gives back its halves
 * above the floor: one more block to decommit than whole blocks.  A
 * blocking request re-commits one block of its order where the free pages
 * lack only that.) */
static const struct phase phases[] = {
    { "arena create", NULL, run_create, 0, true, P(2, 0, 0, 0, 0, 0, 2, 0, 0, 0) },
    { "arena create MLOCK", NULL, run_create_mlock, 0, true, P(2, 2, 0, 0, 0, 0, 2, 0, 0, 0) },
    { "arena create HUGEPAGES", NULL, run_create_huge, 0, true, P(2, 0, 0, 0, 0, 0, 2, 0, 0, 0) },
    { "room create", setup_arena, run_room_create, 0, false, P(0, 0, 0, 0, 0, 0, 3, 0, 0, 0) },   /* the room (its order-0 stock inside), its ring, its lanes */
    { "room refill", setup_room, run_room_refill, 0, false, P(0, 0, 0, 0, 0, 0, 0, 0, 1, 1) },
    { "room drain", setup_room_full, run_room_drain, 0, false, P(0, 0, 0, 0, 0, 0, 0, 0, 0, 1) },
    { "lab_check with a room", setup_room, run_check, 0, false, P(1, 0, 0, 0, 0, 0, 0, 0, 0, 0) },
    { "trim", setup_trim, run_trim, 0, false, P(0, 0, 4, 0, 0, NOT_PINNED, 0, 1, 0, 0) },
    { "re-commit", setup_recommit, run_recommit, 0, false, P(0, 0, 0, 3, 0, NOT_PINNED, 0, 0, 0, 0) },
    { "re-commit of poisoned MADV_FREE pages", setup_recommit_poisoned, run_recommit_poisoned, 0, false,
      P(0, 0, 0, 3, 0, NOT_PINNED, 0, 0, 0, 0) },
    { "guard pages", setup_guard, run_guard, 0, false, P(0, 0, 0, 0, 4, 0, 0, 0, 0, 65) },   /* 64 blocks written */
    { "protected free page", setup_protected, run_protected, 0, false, P(0, 0, 0, 0, 1, 0, 0, 0, 0, 1) },
    { "re-commit of protected pages", setup_recommit_protected, run_recommit_protected, 0, false,
      P(0, 0, 0, 3, 9, NOT_PINNED, 0, 0, 0, 0) },
    { "wait for frees", setup_full, run_wait, LAB_R_TIMEOUT, false, P(0, 0, 0, 0, 0, NOT_PINNED, 0, 1, 0, 0) },
};
#define NPHASES (sizeof(phases) / sizeof(phases[0]))

/* What a phase may answer when the k-th call of `site` failed. */
static bool outcome_allowed(const struct phase *ph, enum fault_site site, int outcome)
{
    if (ph->run == run_trim && site == FP_THREAD_START)
        return outcome == TRIM_NOTHING;
    if (outcome == ph->outcome_ok)
        return true;     /* absorbed: a re-commit by touch, an unprotected guard, ... */
    switch (site) {
    case FP_MMAP:        return outcome == LAB_EMAP;
    case FP_MLOCK:       return outcome == LAB_EMLOCK;
    case FP_META_ALLOC:  return outcome == LAB_ENOMEM;
    case FP_LOCK_BUSY:   return outcome == LAB_R_WOULD_BLOCK;
    default:             return false;
    }
}

static void teardown(struct ctx *c)
{
    if (!c->a)
        return;
    CHECK_EQ(lab_check(c->a), 0);
    for (size_t i = 0; i < c->nheld; i++) {
        if (c->r && c->held_order[i] == 0)
            lab_room_free(c->r, c->held[i]);
        else
            lab_free_pages(c->a, c->held[i], c->held_order[i]);
    }
    c->nheld = 0;
    if (c->r)
        lab_room_destroy(c->r);
    lab_stats s;
    lab_stats_get(c->a, &s);
    CHECK_EQ(s.allocated_pages, 0);
    CHECK_EQ(s.deferred_pages, 0);
    CHECK_EQ(s.free_pages + s.void_pages + s.highatomic_pages, s.total_pages);   /* no page lost */
    CHECK_EQ(lab_check(c->a), 0);
    lab_arena_destroy(c->a);
}

/* One run of a phase with the nth call of `site` failed (nth 0: none).
 * Returns the phase's calls per site. */
static void run_phase(const struct phase *ph, enum fault_site site, uint64_t nth, uint64_t calls[FP_NR_SITES],
                      int *outcome, uint64_t *injected)
{
    static struct ctx c;
    memset(&c, 0, sizeof(c));
    if (ph->setup)
        ph->setup(&c);
    size_t vm_before = vm_pages();
    fault_points_arm(site, nth);
    ph->run(&c);
    fault_points_disarm();
    for (int s = 0; s < FP_NR_SITES; s++)
        calls[s] = fault_points_calls((enum fault_site)s);
    *outcome = c.outcome;
    *injected = fault_points_injected();
    if (ph->maps_checked && c.outcome != 0) {
        CHECK(c.a == NULL);
        /* a refused arena unmapped what it mapped; under a user-mode
         * emulator /proc/self/statm counts the emulator's own mappings */
        const char *emu = getenv("LAB_TEST_EMULATOR");
        if (!(emu && *emu))
            CHECK_EQ(vm_pages(), vm_before);
    }
    teardown(&c);
}

static bool mlock_refused(void)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = 64 * LAB_PAGE_SIZE;
    cfg.flags = LAB_ARENA_MLOCK;
    lab_arena *a = NULL;
    int err = lab_arena_create(&cfg, &a);
    lab_arena_destroy(a);
    return err == LAB_EMLOCK;
}

static int skipped_phases;

/* Each phase, with no fault, passes each point exactly the pinned number
 * of times. */
static void test_each_phase_passes_its_pinned_fault_points(void)
{
    for (size_t p = 0; p < NPHASES; p++) {
        const struct phase *ph = &phases[p];
        if (ph->run == run_create_mlock && mlock_refused()) {
            fprintf(stderr, "  %s: skipped, the OS refuses mlock here (RLIMIT_MEMLOCK)\n", ph->name);
            skipped_phases++;
            continue;
        }
        uint64_t calls[FP_NR_SITES];
        int outcome;
        uint64_t injected;
        run_phase(ph, FP_NR_SITES, 0, calls, &outcome, &injected);
        CHECK_EQ(outcome, ph->outcome_ok);
        CHECK_EQ(injected, 0);
        fprintf(stderr, "  %-24s", ph->name);
        for (int s = 0; s < FP_NR_SITES; s++) {
            if (calls[s])
                fprintf(stderr, " %s %" PRIu64 ";", fault_site_name((enum fault_site)s), calls[s]);
            if (ph->pinned[s] == NOT_PINNED)
                CHECK(s != FP_FUTEX_WAIT || ph->run != run_wait || calls[s] >= 1);
            else if (calls[s] != ph->pinned[s]) {
                fprintf(stderr, "\n  %s: %s passed %" PRIu64 " times, pinned %" PRIu64 "\n", ph->name,
                        fault_site_name((enum fault_site)s), calls[s], ph->pinned[s]);
                CHECK(!"a phase passes a fault point a different number of times than pinned");
            }
        }
        fprintf(stderr, "\n");
    }
}

/* Failing each pinned call in turn is reported as documented or absorbed,
 * and leaves a clean arena with every page accounted for. */
static void test_failing_each_fault_point_leaves_a_clean_arena(void)
{
    unsigned runs = 0, expected = 0;
    for (size_t p = 0; p < NPHASES; p++) {
        const struct phase *ph = &phases[p];
        if (ph->run == run_create_mlock && mlock_refused())
            continue;
        for (int s = 0; s < FP_NR_SITES; s++)
            expected += ph->pinned[s] == NOT_PINNED ? ph->run == run_wait : (unsigned)ph->pinned[s];
        for (int s = 0; s < FP_NR_SITES; s++) {
            uint64_t n = ph->pinned[s] == NOT_PINNED ? 1 : ph->pinned[s];
            if (ph->pinned[s] == NOT_PINNED && ph->run != run_wait)
                continue;
            for (uint64_t k = 1; k <= n; k++) {
                uint64_t calls[FP_NR_SITES], injected;
                int outcome, before = check_failures;
                run_phase(ph, (enum fault_site)s, k, calls, &outcome, &injected);
                runs++;
                CHECK_EQ(injected, 1);
                CHECK(outcome_allowed(ph, (enum fault_site)s, outcome));
                if (check_failures != before)
                    fprintf(stderr, "  %s: failing call %" PRIu64 " of %s: outcome %d\n", ph->name, k,
                            fault_site_name((enum fault_site)s), outcome);
            }
        }
    }
    fprintf(stderr, "  %u runs, one injected failure each\n", runs);
    CHECK_EQ(runs, expected);
}

int main(void)
{
    test_watchdog(120);
    RUN(test_each_phase_passes_its_pinned_fault_points);
    RUN(test_failing_each_fault_point_leaves_a_clean_arena);
    return test_finish();
}
