/* The buddy core: split, merge, alignment, odd sizes, exhaustion, coalescing. */
#include "check.h"

static size_t free_pages(lab_arena *a) { lab_stats s; lab_stats_get(a, &s); return s.free_pages; }

static void test_first_alloc_splits_the_largest_block(void)
{
    lab_arena *a = test_arena(1024, 10, 1, 1, 1);
    void *p = lab_alloc_pages(a, LAB_GFP_KERNEL, 0);
    REQUIRE(p);
    lab_stats s;
    lab_stats_get(a, &s);
    CHECK_EQ(s.free_pages, 1023);
    for (unsigned o = 0; o < 10; o++)
        CHECK_EQ(s.free_blocks[o], 1);   /* one buddy left at every order */
    CHECK_EQ(s.free_blocks[10], 0);
    CHECK_EQ(lab_check(a), 0);
    lab_free_pages(a, p, 0);
    lab_stats_get(a, &s);
    CHECK_EQ(s.free_blocks[10], 1);      /* merged all the way back */
    CHECK_EQ(s.free_blocks[0], 0);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

static void test_buddies_merge_only_when_both_free(void)
{
    lab_arena *a = test_arena(16, 4, 0, 0, 0);
    lab_stats s;
    void *x = lab_alloc_pages(a, LAB_GFP_MEMALLOC, 0);
    void *y = lab_alloc_pages(a, LAB_GFP_MEMALLOC, 0);
    REQUIRE(x && y);
    CHECK((char *)y - (char *)x == (ptrdiff_t)LAB_PAGE_SIZE);  /* buddies */
    lab_free_pages(a, x, 0);
    lab_stats_get(a, &s);
    CHECK_EQ(s.free_blocks[0], 1);   /* x waits for y */
    lab_free_pages(a, y, 0);
    lab_stats_get(a, &s);
    CHECK_EQ(s.free_blocks[0], 0);
    CHECK_EQ(s.free_blocks[4], 1);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

static void test_every_order_is_aligned_to_its_size(void)
{
    lab_arena *a = test_arena(4096, 10, 0, 0, 0);
    char *base = lab_arena_base(a);
    void *blocks[11];
    for (unsigned o = 0; o <= 10; o++) {
        blocks[o] = lab_alloc_pages(a, LAB_GFP_MEMALLOC, o);
        REQUIRE(blocks[o]);
        size_t off = (size_t)((char *)blocks[o] - base);
        CHECK_EQ(off % ((size_t)LAB_PAGE_SIZE << o), 0);
        stamp_block(blocks[o], o, o);
    }
    for (unsigned o = 0; o <= 10; o++) {
        CHECK(stamp_ok(blocks[o], o, o));
        lab_free_pages(a, blocks[o], o);
    }
    CHECK_EQ(free_pages(a), 4096);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

static void test_non_power_of_two_arena_is_fully_usable(void)
{
    const size_t pages = 1000 + 3 * 1024 + 77;   /* odd tail pieces */
    lab_arena *a = test_arena(pages, 10, 0, 0, 0);
    lab_stats s;
    lab_stats_get(a, &s);
    size_t total = 0;
    for (unsigned o = 0; o <= 10; o++)
        total += s.free_blocks[o] << o;
    CHECK_EQ(total, pages);
    void **p = calloc(pages + 1, sizeof(void *));
    size_t n = 0;
    while ((p[n] = lab_alloc_pages(a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, 0)) != NULL)
        stamp_block(p[n], 0, n), n++;
    CHECK_EQ(n, pages);
    CHECK_EQ(free_pages(a), 0);
    CHECK_EQ(lab_check(a), 0);
    for (size_t i = 0; i < n; i++) {
        CHECK(stamp_ok(p[i], 0, i));
        lab_free_pages(a, p[i], 0);
    }
    CHECK_EQ(free_pages(a), pages);
    CHECK_EQ(lab_check(a), 0);
    free(p);
    lab_arena_destroy(a);
}

static void test_exhaustion_of_every_order(void)
{
    const size_t pages = 2048 + 512 + 3;
    for (unsigned o = 0; o <= 10; o++) {
        lab_arena *a = test_arena(pages, 10, 0, 0, 0);
        size_t expect = 0;   /* aligned blocks of 2^o that fit entirely */
        expect = pages >> o;
        void **p = calloc(expect + 1, sizeof(void *));
        size_t n = 0;
        while (n <= expect && (p[n] = lab_alloc_pages(a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, o)) != NULL)
            n++;
        CHECK_EQ(n, expect);
        lab_result r;
        lab_alloc_pages_result(a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, o, &r);
        CHECK(r.addr == NULL);
        CHECK(r.reason == LAB_R_FRAGMENTED || r.reason == LAB_R_RESERVE_EMPTY);
        CHECK_EQ(lab_check(a), 0);
        for (size_t i = 0; i < n; i++)
            lab_free_pages(a, p[i], o);
        CHECK_EQ(free_pages(a), pages);
        CHECK_EQ(lab_check(a), 0);
        free(p);
        lab_arena_destroy(a);
    }
}

static void test_freeing_everything_restores_the_largest_blocks(void)
{
    lab_arena *a = test_arena(8192, 10, 0, 0, 0);
    void *p[8192];
    unsigned ord[8192];
    size_t n = 0;
    unsigned seed = 7;
    for (;;) {
        seed = seed * 1103515245u + 12345u;
        unsigned o = (seed >> 16) % 6;
        void *x = lab_alloc_pages(a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, o);
        if (!x)
            break;
        p[n] = x;
        ord[n++] = o;
    }
    /* free in a scrambled order */
    for (size_t i = 0; i < n; i++) {
        size_t j = (i * 7919) % n;
        if (p[j]) {
            lab_free_pages(a, p[j], ord[j]);
            p[j] = NULL;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (p[i])
            lab_free_pages(a, p[i], ord[i]);
    lab_stats s;
    lab_stats_get(a, &s);
    CHECK_EQ(s.free_blocks[10], 8);
    for (unsigned o = 0; o < 10; o++)
        CHECK_EQ(s.free_blocks[o], 0);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

static void test_zero_flag_zeroes(void)
{
    lab_arena *a = test_arena(64, 4, 0, 0, 0);
    unsigned char *p = lab_alloc_pages(a, LAB_GFP_KERNEL, 2);
    memset(p, 0xab, 4 * LAB_PAGE_SIZE);
    lab_free_pages(a, p, 2);
    unsigned char *q = lab_alloc_pages(a, LAB_GFP_KERNEL | LAB_GFP_ZERO, 2);
    CHECK(q == p);
    size_t nonzero = 0;
    for (size_t i = 0; i < 4 * LAB_PAGE_SIZE; i++)
        nonzero += q[i] != 0;
    CHECK_EQ(nonzero, 0);
    lab_free_pages(a, q, 2);
    lab_arena_destroy(a);
}

static void test_caller_supplied_memory(void)
{
    static char mem[64 * 4096] __attribute__((aligned(4096)));
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = sizeof(mem);
    cfg.memory = mem;
    lab_arena *a;
    REQUIRE(lab_arena_create(&cfg, &a) == 0);
    CHECK(lab_arena_base(a) == mem);
    char *p = lab_alloc_pages(a, LAB_GFP_KERNEL, 3);
    CHECK(p >= mem && p < mem + sizeof(mem));
    lab_free_pages(a, p, 3);
    CHECK_EQ(lab_arena_max_order(a), 6);   /* clamped to what fits */
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

static void test_order_above_max_fails_with_reason(void)
{
    lab_arena *a = test_arena(64, 3, 0, 0, 0);
    lab_result r;
    lab_alloc_pages_result(a, LAB_GFP_KERNEL | LAB_GFP_NOWARN, 4, &r);
    CHECK(r.addr == NULL);
    CHECK_EQ(r.reason, LAB_R_ORDER);
    lab_arena_destroy(a);
}

static void test_stats_print_text_and_json(void)
{
    lab_arena *a = test_arena(256, 5, 0, 0, 0);
    /* a write error is -1, buffered or not */
    FILE *full = fopen("/dev/full", "w");
    if (full) {
        CHECK_EQ(lab_stats_print(a, full, LAB_STATS_TEXT), -1);
        CHECK_EQ(lab_stats_print(a, full, LAB_STATS_JSON), -1);
        fclose(full);
    }
    void *p = lab_alloc_pages(a, LAB_GFP_KERNEL, 1);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK_EQ(lab_stats_print(a, f, LAB_STATS_TEXT), 0);
    CHECK_EQ(lab_stats_print(a, f, LAB_STATS_JSON), 0);
    fclose(f);
    CHECK(strstr(buf, "Node 0, zone") != NULL);
    CHECK(strstr(buf, "Pages served by step: room=0 room_remote=0 zone=2 ") != NULL);   /* pages: an order-1 block */
    CHECK(strstr(buf, "\"free_pages\":254") != NULL);
    CHECK(strstr(buf, "\"free_blocks\":[0,1,1,1,1,7]") != NULL);
    free(buf);
    /* the JSON alone: one object, every bracket closed, each table of
     * counters a named object of its own */
    f = open_memstream(&buf, &len);
    CHECK_EQ(lab_stats_print(a, f, LAB_STATS_JSON), 0);
    fclose(f);
    int depth = 0, objects = 0;
    for (const char *c = buf; *c; c++) {
        depth += (*c == '{' || *c == '[') - (*c == '}' || *c == ']');
        CHECK(depth >= 0);
        objects += *c == '{';
    }
    CHECK_EQ(depth, 0);
    CHECK_EQ(objects, 5);   /* the stats, watermarks, alloc_by_step, fail_by_reason, fail_by_class */
    CHECK(strstr(buf, "\"alloc_by_step\":{\"none\":0,\"room\":0,") != NULL);
    CHECK(strstr(buf, "\"fail_by_reason\":{") != NULL);
    CHECK(strstr(buf, "\"fail_by_class\":{\"atomic\":0,") != NULL);
    CHECK(buf[0] == '{' && buf[len - 2] == '}' && buf[len - 1] == '\n');
    free(buf);
    lab_free_pages(a, p, 1);
    lab_arena_destroy(a);
}

/* "The same" as lab_stats_get in JSON: every field of lab_stats is a key
 * (metadata_resident_bytes was in the text only). */
static void test_stats_json_has_every_field(void)
{
    lab_arena *a = test_arena(256, 5, 0, 0, 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK_EQ(lab_stats_print(a, f, LAB_STATS_JSON), 0);
    fclose(f);
    static const char *const keys[] = {
        "total_pages", "free_pages", "free_blocks", "max_order", "min", "low", "high", "allocated_pages",
        "room_pages", "reserve_pages", "highatomic_pages", "deferred_pages", "void_pages", "committed_bytes",
        "resident_bytes", "metadata_bytes", "metadata_resident_bytes", "huge_pages", "rooms", "alloc_by_step",
        "fail_by_reason", "fail_by_class", "frees", "misuse", "shrinker_runs", "shrinker_pages", "kswapd_wakes",
        "kswapd_runs", "waits", "trimmed_pages", "recommitted_pages", "rooms_drained_pages", "trim_off",
        "trim_refused",
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char key[64];
        snprintf(key, sizeof(key), "\"%s\":", keys[i]);
        if (!strstr(buf, key))
            fprintf(stderr, "  no key %s\n", key);
        CHECK(strstr(buf, key) != NULL);
    }
    free(buf);
    lab_arena_destroy(a);
}

/* The name is the program's and goes into a JSON string: escaped, and
 * UTF-8 (RFC 8259) even when the name is not or was cut to fit. */
static void expect_json_name(const char *name, const char *json)
{
    lab_arena_config cfg;
    test_arena_config(&cfg, 64, 3, 0, 0, 0);
    cfg.name = name;
    lab_arena *a = test_arena_create(&cfg);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK_EQ(lab_stats_print(a, f, LAB_STATS_JSON), 0);
    fclose(f);
    if (strncmp(buf, json, strlen(json)) != 0)
        fprintf(stderr, "  expected %s\n  got      %s", json, buf);
    CHECK(strncmp(buf, json, strlen(json)) == 0);
    free(buf);
    lab_arena_destroy(a);
}

static void test_stats_json_escapes_the_arena_name(void)
{
    expect_json_name("a \"fast\" one\\\n\t", "{\"arena\":\"a \\\"fast\\\" one\\\\\\u000a\\u0009\",");
    /* Latin-1, a lone continuation byte, an overlong '/', a surrogate:
     * not UTF-8; the euro sign is */
    expect_json_name("lat\xe9 \x80 \xc0\xaf \xed\xa0\x80 \xe2\x82\xac",
                     "{\"arena\":\"lat\\ufffd \\ufffd \\ufffd\\ufffd \\ufffd\\ufffd\\ufffd \xe2\x82\xac\",");
    /* seventeen two-byte characters, cut to the fifteen that fit whole */
    expect_json_name("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
                     "{\"arena\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\",");
}

int main(void)
{
    test_watchdog(120);
    RUN(test_first_alloc_splits_the_largest_block);
    RUN(test_buddies_merge_only_when_both_free);
    RUN(test_every_order_is_aligned_to_its_size);
    RUN(test_non_power_of_two_arena_is_fully_usable);
    RUN(test_exhaustion_of_every_order);
    RUN(test_freeing_everything_restores_the_largest_blocks);
    RUN(test_zero_flag_zeroes);
    RUN(test_caller_supplied_memory);
    RUN(test_order_above_max_fails_with_reason);
    RUN(test_stats_print_text_and_json);
    RUN(test_stats_json_has_every_field);
    RUN(test_stats_json_escapes_the_arena_name);
    return test_finish();
}
