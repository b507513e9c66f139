/*
 * Misuse codes of the owner's free, of bulk frees and of frees in GUARD arenas: each wrong
 * pointer or order given to lab_room_free / lab_room_free_pages, and each
 * wrong free of a guarded block, is reported once, with its own code, and
 * changes nothing: the arena passes lab_check and every page comes back.
 */
#include "check.h"

#define PAGES 256

struct seen {
    int codes[16];
    int n;
};

static void record(void *ctx, int err, const void *addr, const char *msg)
{
    struct seen *s = ctx;
    (void)addr;
    (void)msg;
    if (s->n < 16)
        s->codes[s->n] = err;
    s->n++;
}

/* Exactly one report, with this code, since the last call. */
#define EXPECT_ONE(s, code) do { CHECK_EQ((s)->n, 1); CHECK_EQ((s)->codes[0], code); (s)->n = 0; } while (0)

static lab_arena *guard_arena(struct seen *s)
{
    lab_arena_config cfg;
    test_arena_config(&cfg, PAGES, 6, 0, 0, 0);
    cfg.flags = LAB_ARENA_GUARD;
    lab_arena *a = test_arena_create(&cfg);
    lab_set_misuse_handler(a, record, s);
    return a;
}

static void expect_every_page_back(lab_arena *a)
{
    lab_arena_flush(a);
    lab_stats st;
    lab_stats_get(a, &st);
    CHECK_EQ(st.allocated_pages, 0);
    CHECK_EQ(st.free_pages + st.highatomic_pages, PAGES);
    CHECK_EQ(lab_check(a), 0);
}

static void test_owner_free_of_a_bad_pointer_names_the_fault(void)
{
    struct seen s = { .n = 0 };
    lab_arena *a = guard_arena(&s);
    lab_room *r = test_room(a, 0, 4, 0);
    char *p = lab_room_alloc(r, LAB_GFP_KERNEL);
    REQUIRE(p);
    char *arena_page = lab_alloc_pages(a, LAB_GFP_KERNEL, 0);
    char *blk = lab_alloc_pages(a, LAB_GFP_NOWAIT, 2);   /* unguarded: NOWAIT */
    REQUIRE(arena_page && blk);

    lab_room_free(r, NULL);
    EXPECT_ONE(&s, LAB_EFOREIGN);
    lab_room_free(r, (char *)lab_arena_base(a) + lab_arena_size(a));
    EXPECT_ONE(&s, LAB_EFOREIGN);
    lab_room_free(r, p + 8);
    EXPECT_ONE(&s, LAB_EUNALIGNED);
    lab_room_free_pages(r, p, 3);                        /* the room serves order 0 only */
    EXPECT_ONE(&s, LAB_EBADORDER);
    lab_room_free(r, arena_page);
    EXPECT_ONE(&s, LAB_ENOTROOMPAGE);
    lab_room_free(r, blk + LAB_PAGE_SIZE);              /* inside a block */
    EXPECT_ONE(&s, LAB_EINTERIOR);

    lab_room_free(r, p);                                 /* the right one */
    CHECK_EQ(s.n, 0);
    lab_room_free(r, p);
    EXPECT_ONE(&s, LAB_EDOUBLEFREE);
    lab_free_pages(a, arena_page, 0);
    lab_free_pages(a, blk, 2);
    CHECK_EQ(s.n, 0);
    lab_room_destroy(r);
    expect_every_page_back(a);
    lab_arena_destroy(a);
}

/* A guarded block: the caller's 2^k pages sit in the second quarter of a
 * block of order k + 2, whose head (one quarter before) is ALLOCATED. */
static void test_wrong_frees_of_a_guarded_block_name_the_fault(void)
{
    struct seen s = { .n = 0 };
    lab_arena *a = guard_arena(&s);
    lab_room *r = test_room(a, 0, 4, 0);
    char *g = lab_alloc_pages(a, LAB_GFP_KERNEL, 1);    /* guarded: KERNEL may block */
    REQUIRE(g);
    char *head = g - 2 * LAB_PAGE_SIZE;

    lab_free_pages(a, head, 3);                          /* the hidden head, as if it were the block */
    EXPECT_ONE(&s, LAB_EINTERIOR);
    lab_free_pages(a, g, 2);                             /* the caller's pages, another order */
    EXPECT_ONE(&s, LAB_EWRONGORDER);
    lab_room_free(r, head);
    EXPECT_ONE(&s, LAB_EINTERIOR);
    lab_room_free(r, g);
    EXPECT_ONE(&s, LAB_ENOTROOMPAGE);

    lab_free_pages(a, g, 1);
    CHECK_EQ(s.n, 0);
    lab_room_destroy(r);
    expect_every_page_back(a);
    lab_arena_destroy(a);
}

/* A freed page whose first half was overwritten with zeros: half zero is
 * not "mostly zero", so the page is judged a freed (poisoned) one and the
 * report names byte 0, where the overwrite starts. */
static const void *g_poison_addr;
static int g_poison_reports;
static void record_poison(void *ctx, int err, const void *addr, const char *msg)
{
    (void)ctx;
    (void)msg;
    if (err == LAB_EPOISON && g_poison_reports++ == 0)
        g_poison_addr = addr;
}

static void test_poison_report_of_a_half_zeroed_page_names_its_first_byte(void)
{
#ifdef LAB_TEST_ASAN
    SKIP("an ASan build: the write to the freed page would be an ASan report");
#endif
    lab_arena_config cfg;
    test_arena_config(&cfg, 16, 0, 1, 1, 1);
    cfg.flags = LAB_ARENA_POISON;
    lab_arena *a = test_arena_create(&cfg);
    lab_set_misuse_handler(a, record_poison, NULL);
    unsigned char *p = lab_alloc_pages(a, LAB_GFP_KERNEL, 0);
    REQUIRE(p);
    lab_free_pages(a, p, 0);
    memset(p, 0, LAB_PAGE_SIZE / 2);          /* the use after free */
    void *got[16];
    int n = 0;
    while (n < 16 && (got[n] = lab_alloc_pages(a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, 0)) != NULL)
        n++;
    CHECK_EQ(n, 16);
    CHECK_EQ(g_poison_reports, 1);
    CHECK(g_poison_addr == p);
    while (n)
        lab_free_pages(a, got[--n], 0);
    lab_arena_destroy(a);
}

/* A bulk free whose array mixes room pages, zone blocks, NULL and bad
 * pointers: each bad entry is reported once with its own code (in the
 * order given), the NULL is skipped, and every good entry is freed, room
 * pages to their room and zone pages to the zone.  Each array starts with
 * what a release build's run of plain room blocks must stop at. */
static void test_bulk_free_reports_each_bad_entry_with_its_code(void)
{
    struct seen s = { .n = 0 };
    lab_arena_config cfg;
    test_arena_config(&cfg, PAGES, 6, 0, 0, 0);
    lab_arena *a = test_arena_create(&cfg);
    lab_set_misuse_handler(a, record, &s);
    lab_room *r = test_room(a, 0, 4, 0);
    char *mine[2], *zone_page = lab_alloc_pages(a, LAB_GFP_KERNEL, 0), *blk = lab_alloc_pages(a, LAB_GFP_KERNEL, 2);
    REQUIRE(zone_page && blk);
    for (int i = 0; i < 2; i++)
        REQUIRE((mine[i] = lab_room_alloc(r, LAB_GFP_KERNEL)) != NULL);
    void *pages[] = {
        mine[0], zone_page,
        blk,               /* an order-2 block freed as order 0 */
        NULL,
        mine[1] + 8,       /* misaligned */
        mine[1],
    };
    lab_free_pages_bulk(a, pages, sizeof(pages) / sizeof(pages[0]), 0);
    CHECK_EQ(s.n, 2);
    CHECK_EQ(s.codes[0], LAB_EWRONGORDER);
    CHECK_EQ(s.codes[1], LAB_EUNALIGNED);
    s.n = 0;
    void *far[] = { (char *)lab_arena_base(a) + lab_arena_size(a) + ((size_t)1 << 30) };
    lab_free_pages_bulk(a, far, 1, 0);
    EXPECT_ONE(&s, LAB_EFOREIGN);
    lab_room_stats st;
    lab_room_stats_get(r, &st);
    CHECK_EQ(st.in_ring, 2);   /* both room pages, on their way back to the room */
    lab_free_pages(a, blk, 2);
    CHECK_EQ(s.n, 0);
    lab_room_destroy(r);
    expect_every_page_back(a);
    lab_arena_destroy(a);
}

int main(void)
{
    test_watchdog(60);
    RUN(test_owner_free_of_a_bad_pointer_names_the_fault);
    RUN(test_wrong_frees_of_a_guarded_block_name_the_fault);
    RUN(test_bulk_free_reports_each_bad_entry_with_its_code);
    RUN_ALONE(test_poison_report_of_a_half_zeroed_page_names_its_first_byte);
    return test_finish();
}
