/* Caller-provided memory: an arena over a memfd mapped at two addresses.  The
 * arena gets one mapping; the other is what a device or another process sees.
 * Whatever the arena does (owner and remote frees, bulk frees, trim, the idle
 * trimmer), the second mapping shows only the caller's own writes (the
 * allocator keeps no metadata in pages), and no page of the arena's mapping
 * is decommitted unless LAB_ARENA_DECOMMIT_CALLER allows it. */
#define _GNU_SOURCE   /* memfd_create */
#include "check.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>

#define PAGES 1024u
#define PAGE  4096u
#define BULK  16u    /* pages per lab_free_pages_bulk call of the remote freer */

struct twice {
    int fd;
    unsigned char *arena_view;   /* given to the arena */
    unsigned char *other_view;   /* the other party's */
    unsigned char *expect;       /* what other_view must show */
};

static void twice_map(struct twice *t)
{
    t->fd = memfd_create("lab-caller-memory", 0);
    REQUIRE(t->fd >= 0);
    REQUIRE(ftruncate(t->fd, (off_t)PAGES * PAGE) == 0);
    t->arena_view = mmap(NULL, (size_t)PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, t->fd, 0);
    t->other_view = mmap(NULL, (size_t)PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, t->fd, 0);
    REQUIRE(t->arena_view != MAP_FAILED && t->other_view != MAP_FAILED);
    t->expect = malloc((size_t)PAGES * PAGE);
    REQUIRE(t->expect);
    /* the other party fills every page; the arena's view maps them all */
    for (size_t i = 0; i < (size_t)PAGES * PAGE; i++)
        t->other_view[i] = t->expect[i] = (unsigned char)(i * 131 + 7);
    volatile unsigned char sink = 0;
    for (size_t p = 0; p < PAGES; p++)
        sink ^= t->arena_view[p * PAGE];
    (void)sink;
}

static void twice_unmap(struct twice *t)
{
    munmap(t->arena_view, (size_t)PAGES * PAGE);
    munmap(t->other_view, (size_t)PAGES * PAGE);
    close(t->fd);
    free(t->expect);
}

/* An arena over PAGES pages of caller memory at mem. */
static lab_arena *arena_on(unsigned char *mem, unsigned flags)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = (size_t)PAGES * PAGE;
    cfg.memory = mem;
    cfg.max_order = 6;
    cfg.flags = flags;
    cfg.trim_delay_ms = 1;       /* the idle trimmer, as eager as it gets */
    cfg.kswapd_poll_ms = 1;
    lab_arena *a = NULL;
    REQUIRE(lab_arena_create(&cfg, &a) == 0);
    return a;
}

static lab_arena *arena_over(struct twice *t, unsigned flags)
{
    return arena_on(t->arena_view, flags);
}

/* Pages of the arena's view that are not mapped (/proc/self/pagemap bit 63):
 * what MADV_DONTNEED leaves behind, even on a shared mapping whose contents
 * survive in the memfd. */
static size_t pages_not_present(const struct twice *t)
{
    int fd = open("/proc/self/pagemap", O_RDONLY);
    REQUIRE(fd >= 0);
    uint64_t ent[PAGES];
    off_t off = (off_t)((uintptr_t)t->arena_view / PAGE * sizeof(uint64_t));
    REQUIRE(pread(fd, ent, sizeof(ent), off) == (ssize_t)sizeof(ent));
    close(fd);
    size_t missing = 0;
    for (size_t p = 0; p < PAGES; p++)
        missing += !(ent[p] >> 63 & 1);
    return missing;
}

/* Bytes the other view shows that the caller did not write. */
static size_t unexplained_writes(const struct twice *t)
{
    size_t bad = 0;
    for (size_t i = 0; i < (size_t)PAGES * PAGE; i++)
        bad += t->other_view[i] != t->expect[i];
    return bad;
}

/* The caller writes a handed-out page through the arena's view. */
static void caller_writes(struct twice *t, void *page, unsigned char v)
{
    size_t p = (size_t)((unsigned char *)page - t->arena_view) / PAGE;
    memset(page, v, PAGE);
    memset(t->expect + p * PAGE, v, PAGE);
}

struct remote_freer {
    lab_arena *a;
    void **pages;
    size_t n;
};

/* Another thread gives the room's pages back in bulk, through the room's
 * return ring. */
static void *free_remotely(void *arg)
{
    struct remote_freer *f = arg;
    for (size_t i = 0; i < f->n; i += BULK)
        lab_free_pages_bulk(f->a, f->pages + i, f->n - i < BULK ? f->n - i : BULK, 0);
    return NULL;
}

/* Every way pages come and go: zone blocks of several orders, a room's pages
 * freed by the owner and by another thread in bulk, then trim and the idle
 * trimmer. */
static void exercise(lab_arena *a, struct twice *t)
{
    void *blocks[16];
    for (unsigned i = 0; i < 16; i++) {
        blocks[i] = lab_alloc_pages(a, LAB_GFP_KERNEL, i % 4);
        REQUIRE(blocks[i]);
        caller_writes(t, blocks[i], (unsigned char)(0xa0 + i));
    }
    for (unsigned i = 0; i < 16; i += 2)
        lab_free_pages(a, blocks[i], i % 4);

    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.reserve = 32;
    lab_room *room = NULL;
    REQUIRE(lab_room_create(a, &rc, &room) == 0);
    enum { N = 256 };
    static void *pages[N];
    for (int round = 0; round < 4; round++) {
        for (size_t i = 0; i < N; i++) {
            pages[i] = lab_room_alloc(room, LAB_GFP_ATOMIC);
            REQUIRE(pages[i]);
            caller_writes(t, pages[i], (unsigned char)(round * 16 + 1));
        }
        for (size_t i = 0; i < N / 4; i++)
            lab_room_free(room, pages[i]);
        struct remote_freer f = { a, pages + N / 4, N - N / 4 };
        pthread_t thr;
        REQUIRE(pthread_create(&thr, NULL, free_remotely, &f) == 0);
        pthread_join(thr, NULL);
    }
    lab_arena_trim(a);                                   /* judged by the callers, from the stats */
    struct timespec ts = { 0, 30 * 1000 * 1000 };       /* 30 idle-trim periods */
    nanosleep(&ts, NULL);
    for (unsigned i = 1; i < 16; i += 2)
        lab_free_pages(a, blocks[i], i % 4);
    lab_room_destroy(room);
    CHECK_EQ(lab_check(a), 0);
}

static void test_no_operation_decommits_or_writes_caller_memory(void)
{
    struct twice t;
    twice_map(&t);
    lab_arena *a = arena_over(&t, 0);
    exercise(a, &t);
    CHECK_EQ(lab_arena_trim(a), 0);
    lab_stats st;
    lab_stats_get(a, &st);
    CHECK_EQ(st.trim_off, LAB_TRIM_CALLER_MEMORY);
    CHECK(st.trim_refused >= 3);   /* two lab_arena_trim calls and the idle trimmer */
    CHECK_EQ(st.trimmed_pages, 0);
    CHECK_EQ(st.void_pages, 0);
    CHECK_EQ(pages_not_present(&t), 0);
    CHECK_EQ(unexplained_writes(&t), 0);
    lab_arena_destroy(a);
    /* the arena is gone; the memory is still the caller's, mapped and intact */
    CHECK_EQ(pages_not_present(&t), 0);
    CHECK_EQ(unexplained_writes(&t), 0);
    twice_unmap(&t);
}

/* The same run with the flag that allows decommit: trim gives pages back, and
 * the arena's view loses them (so the checks above can see a decommit). */
static void test_decommit_caller_flag_lets_trim_decommit(void)
{
    struct twice t;
    twice_map(&t);
    lab_arena *a = arena_over(&t, LAB_ARENA_DECOMMIT_CALLER);
    exercise(a, &t);
    lab_stats st;
    lab_stats_get(a, &st);
    CHECK_EQ(st.trim_off, LAB_TRIM_ON);
    CHECK_EQ(st.trim_refused, 0);
    CHECK(st.trimmed_pages > 0);
    CHECK(pages_not_present(&t) > 0);
    lab_arena_destroy(a);
    twice_unmap(&t);
}

static void test_trim_of_caller_memory_is_reported(void)
{
    struct twice t;
    twice_map(&t);
    lab_arena *a = arena_over(&t, 0);
    CHECK_EQ(lab_arena_trim(a), 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    REQUIRE(f);
    CHECK_EQ(lab_stats_print(a, f, LAB_STATS_TEXT), 0);
    CHECK_EQ(lab_stats_print(a, f, LAB_STATS_JSON), 0);
    fclose(f);
    CHECK(strstr(buf, "Trim off: caller memory") != NULL);
    CHECK(strstr(buf, "\"trim_off\":\"caller memory") != NULL);
    free(buf);
    lab_arena_destroy(a);
    twice_unmap(&t);
}

/* Caller memory in huge pages, given to be decommitted: a start on a 2 MiB
 * boundary trims whole huge pages; any other start would have each 2 MiB
 * block straddle two huge pages and split both, so trim gives nothing
 * back and the stats say why. */
static void test_huge_caller_memory_off_a_2mib_boundary_is_not_trimmed(void)
{
    const size_t huge = (size_t)2 << 20, size = 4 * huge;
    unsigned char *map = mmap(NULL, size + 2 * huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(map != MAP_FAILED);
    unsigned char *aligned = (unsigned char *)(((uintptr_t)map + huge - 1) & ~(uintptr_t)(huge - 1));
    for (int off = 0; off < 2; off++) {
        lab_arena_config cfg;
        lab_arena_config_init(&cfg);
        cfg.size = size;
        cfg.memory = aligned + (size_t)off * PAGE;
        cfg.max_order = 9;   /* four blocks of 2 MiB: trim keeps one for min */
        cfg.flags = LAB_ARENA_HUGEPAGES | LAB_ARENA_DECOMMIT_CALLER;
        lab_arena *a = NULL;
        REQUIRE(lab_arena_create(&cfg, &a) == 0);
        lab_stats st;
        lab_stats_get(a, &st);
        if (st.huge_mode != LAB_HUGE_EXPLICIT && st.huge_mode != LAB_HUGE_TRANSPARENT) {
            lab_arena_destroy(a);
            munmap(map, size + 2 * huge);
            SKIP("no huge pages for caller memory here (huge_mode %d)", st.huge_mode);
        }
        void *p = lab_alloc_pages(a, LAB_GFP_KERNEL, 9);   /* commit it, then free it */
        REQUIRE(p);
        memset(p, 1, (size_t)PAGE << 9);
        lab_free_pages(a, p, 9);
        size_t got = lab_arena_trim(a);
        lab_stats_get(a, &st);
        if (off) {
            CHECK_EQ(st.trim_off, LAB_TRIM_HUGE_UNALIGNED);
            CHECK_EQ(got, 0);
            CHECK_EQ(st.trimmed_pages, 0);
        } else {
            CHECK_EQ(st.trim_off, LAB_TRIM_ON);
            CHECK(got > 0);
            CHECK_EQ(got % huge, 0);
        }
        lab_arena_destroy(a);
    }
    munmap(map, size + 2 * huge);
}

/* Caller memory comes back accessible from lab_arena_destroy: the freed
 * pages PROTECT_FREE closed and the guards GUARD put up are lifted (they
 * stayed PROT_NONE, and the caller's next touch faulted). */
static void test_destroy_leaves_caller_memory_accessible(void)
{
    const unsigned flags[] = { LAB_ARENA_PROTECT_FREE, LAB_ARENA_GUARD };
    for (size_t k = 0; k < 2; k++) {
        unsigned char *mem = mmap(NULL, (size_t)PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        REQUIRE(mem != MAP_FAILED);
        lab_arena_config cfg;
        lab_arena_config_init(&cfg);
        cfg.size = (size_t)PAGES * PAGE;
        cfg.memory = mem;
        cfg.max_order = 6;
        cfg.flags = flags[k];
        lab_arena *a = NULL;
        REQUIRE(lab_arena_create(&cfg, &a) == 0);
        void *p[8];
        for (int i = 0; i < 8; i++)
            REQUIRE((p[i] = lab_alloc_pages(a, LAB_GFP_KERNEL, 1)) != NULL);   /* guarded with GUARD */
        for (int i = 0; i < 8; i += 2)
            lab_free_pages(a, p[i], 1);   /* protected with PROTECT_FREE */
        lab_arena_destroy(a);             /* with blocks still out: the caller's memory all the same */
        for (size_t i = 0; i < (size_t)PAGES * PAGE; i += PAGE)
            mem[i] = 1;                   /* faults if any page stayed protected */
        CHECK(mem[0] == 1);
        munmap(mem, (size_t)PAGES * PAGE);
    }
}

/* Locked memory is not decommitted either, and the stats say so. */
static void test_trim_of_locked_memory_is_reported(void)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = 64 * PAGE;
    cfg.flags = LAB_ARENA_MLOCK;
    lab_arena *a = NULL;
    int err = lab_arena_create(&cfg, &a);
    if (err == LAB_EMLOCK) {
        fprintf(stderr, "  (skipped: RLIMIT_MEMLOCK refuses 64 pages)\n");
        return;
    }
    REQUIRE(err == 0);
    CHECK_EQ(lab_arena_trim(a), 0);
    lab_stats st;
    lab_stats_get(a, &st);
    CHECK_EQ(st.trim_off, LAB_TRIM_MLOCKED);
    CHECK_EQ(st.trim_refused, 1);
    CHECK_EQ(st.trimmed_pages, 0);
    lab_arena_destroy(a);
}

/* An arena whose every page is a frame: with exact watermarks of 0 an atomic
 * request reaches the last page; derived ones keep a floor it cannot reach. */
static size_t atomic_pages_reachable(unsigned flags)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = (size_t)PAGES * PAGE;
    cfg.flags = flags;
    lab_arena *a = NULL;
    REQUIRE(lab_arena_create(&cfg, &a) == 0);
    size_t n = 0;
    while (lab_alloc_pages(a, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, 0))
        n++;
    lab_stats st;
    lab_stats_get(a, &st);
    if (flags & LAB_ARENA_EXACT_WMARKS)
        CHECK(st.wmark_min == 0 && st.wmark_low == 0 && st.wmark_high == 0);
    lab_arena_destroy(a);
    return n;
}

/* LAB_ARENA_PREFAULT over caller memory that is mapped but not yet touched:
 * every page is made resident at creation, and none changes (a byte of each
 * read and written back). */
static void test_prefault_commits_every_page_of_caller_memory_and_changes_none(void)
{
    const size_t bytes = (size_t)PAGES * PAGE;
    unsigned char *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(mem != MAP_FAILED);
    for (size_t p = 0; p < PAGES; p += 7)   /* some pages hold data already */
        memset(mem + p * PAGE, (int)(p & 0xff) | 1, PAGE);
    lab_arena *a = arena_on(mem, LAB_ARENA_PREFAULT);
    lab_stats s;
    lab_stats_get(a, &s);
    CHECK_EQ(s.resident_bytes, bytes);
    size_t changed = 0;
    for (size_t p = 0; p < PAGES; p++)
        for (size_t i = 0; i < PAGE; i++)
            changed += mem[p * PAGE + i] != (p % 7 == 0 ? ((p & 0xff) | 1) : 0);
    CHECK_EQ(changed, 0);
    lab_arena_destroy(a);
    munmap(mem, bytes);
}

static void test_exact_zero_watermarks_leave_no_emergency_floor(void)
{
    CHECK_EQ(atomic_pages_reachable(LAB_ARENA_EXACT_WMARKS), PAGES);
    CHECK(atomic_pages_reachable(0) < PAGES);
}

static void test_exact_watermarks_are_validated(void)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = 64 * PAGE;
    cfg.flags = LAB_ARENA_EXACT_WMARKS;
    lab_arena *a = NULL;
    cfg.wmark_min = 4;   /* low 0 below min: out of order when taken as given */
    CHECK_EQ(lab_arena_create(&cfg, &a), LAB_EWMARK);
    cfg.wmark_low = 4;
    cfg.wmark_high = 64;
    CHECK_EQ(lab_arena_create(&cfg, &a), LAB_EWMARK);
    cfg.wmark_high = 8;
    CHECK_EQ(lab_arena_create(&cfg, &a), 0);
    lab_stats st;
    lab_stats_get(a, &st);
    CHECK(st.wmark_min == 4 && st.wmark_low == 4 && st.wmark_high == 8);
    lab_arena_destroy(a);
}

static void test_page_of_finds_the_page_of_an_interior_address(void)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = 64 * PAGE;
    lab_arena *a = NULL;
    REQUIRE(lab_arena_create(&cfg, &a) == 0);
    char *base = lab_arena_base(a);
    char *p = lab_alloc_pages(a, LAB_GFP_KERNEL, 2);
    REQUIRE(p);
    CHECK(lab_page_of(a, p) == p);
    CHECK(lab_page_of(a, p + 256) == p);            /* an XDP headroom offset */
    CHECK(lab_page_of(a, p + PAGE - 1) == p);
    CHECK(lab_page_of(a, p + PAGE + 1) == p + PAGE); /* the page, not the block */
    CHECK(lab_page_of(a, base - 1) == NULL);
    CHECK(lab_page_of(a, base + 64 * PAGE) == NULL);
    CHECK(lab_page_of(a, base + 64 * PAGE - 1) == base + 63 * PAGE);
    CHECK(lab_page_of(NULL, p) == NULL);
    void *q = lab_alloc_pages(a, LAB_GFP_KERNEL, 0);
    lab_free_pages(a, lab_page_of(a, (char *)q + 300), 0);
    lab_free_pages(a, p, 2);
    lab_stats st;
    lab_stats_get(a, &st);
    CHECK_EQ(st.free_pages, st.total_pages);
    CHECK_EQ(st.misuse, 0);
    lab_arena_destroy(a);
}

int main(void)
{
    test_watchdog(120);
    RUN(test_no_operation_decommits_or_writes_caller_memory);
    RUN(test_decommit_caller_flag_lets_trim_decommit);
    RUN(test_trim_of_caller_memory_is_reported);
    RUN(test_trim_of_locked_memory_is_reported);
    RUN(test_huge_caller_memory_off_a_2mib_boundary_is_not_trimmed);
    RUN(test_destroy_leaves_caller_memory_accessible);
    RUN(test_prefault_commits_every_page_of_caller_memory_and_changes_none);
    RUN(test_exact_zero_watermarks_leave_no_emergency_floor);
    RUN(test_exact_watermarks_are_validated);
    RUN(test_page_of_finds_the_page_of_an_interior_address);
    return test_finish();
}
