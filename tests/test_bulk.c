/* lab_free_pages_bulk: n frees as n lab_free_pages calls, with one chain per
 * run of pages of one room. */
#include "check.h"
#include "internal.h"   /* fault points */

#include <pthread.h>
#include <stdbool.h>
#include <sys/wait.h>

static int misuse_calls, misuse_code;
static void on_misuse(void *ctx, int err, const void *addr, const char *msg)
{
    (void)ctx, (void)addr, (void)msg;
    misuse_calls++;
    misuse_code = err;
}

struct job { lab_arena *a; void **pages; size_t n; unsigned delay_ms; };
static void *bulk_free_thread(void *arg)
{
    struct job *j = arg;
    if (j->delay_ms)
        sleep_ms(j->delay_ms);
    lab_free_pages_bulk(j->a, j->pages, j->n, 0);
    return NULL;
}

static lab_room *make_room(lab_arena *a, size_t batch)
{
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.flags = LAB_ROOM_TAKE_ALL;   /* the counts below: every remote free back at once */
    rc.batch = batch;
    rc.high = 4 * batch;
    lab_room *r;
    REQUIRE(lab_room_create(a, &rc, &r) == 0);
    return r;
}

/* An arena of `pages` pages: every page home, then gone. */
static void end_all(lab_arena *a, size_t pages)
{
    lab_stats s;
    lab_stats_get(a, &s);
    CHECK_EQ(s.free_pages, pages);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

static void end_256(lab_arena *a)
{
    end_all(a, 256);
}

static void test_bulk_free_of_room_pages_returns_them_to_their_rooms(void)
{
    lab_arena *a = test_arena(1024, 10, 0, 0, 0);
    lab_room *r1 = make_room(a, 16), *r2 = make_room(a, 16);
    void *pages[48];
    /* runs of each room, interleaved, and zone blocks between them */
    for (int i = 0; i < 48; i++) {
        if (i % 12 == 11)
            pages[i] = lab_alloc_pages(a, LAB_GFP_KERNEL, 0);
        else
            pages[i] = lab_room_alloc((i / 6) % 2 ? r2 : r1, LAB_GFP_KERNEL);
        REQUIRE(pages[i]);
    }
    struct job j = { a, pages, 48, 0 };
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, bulk_free_thread, &j) == 0);
    pthread_join(t, NULL);
    lab_stats s;
    lab_stats_get(a, &s);
    CHECK_EQ(s.deferred_pages, 44);   /* on their rooms' remote lists */
    CHECK_EQ(s.allocated_pages, 0);
    /* the owners take them back (step 2, or step 1 once a batch went into
     * the stock) before they take anything from the zone */
    lab_room *rooms[2] = { r1, r2 };
    size_t returned[2] = { 24, 20 };
    for (int k = 0; k < 2; k++) {
        lab_room_stats st;
        lab_room_stats_get(rooms[k], &st);
        uint64_t refills = st.refills;
        size_t want = st.stock + returned[k];
        for (size_t i = 0; i < want; i++) {
            lab_result res;
            lab_room_alloc_result(rooms[k], LAB_GFP_NOWAIT, &res);
            REQUIRE(res.addr);
            CHECK(res.step == LAB_STEP_ROOM || res.step == LAB_STEP_ROOM_REMOTE);
        }
        lab_room_stats_get(rooms[k], &st);
        CHECK_EQ(st.refills, refills);
        CHECK_EQ(st.frees_remote, returned[k]);
        CHECK_EQ(st.stock, 0);
    }
    lab_room_destroy(r1);
    lab_room_destroy(r2);
    lab_stats_get(a, &s);
    CHECK_EQ(s.deferred_pages, 0);
    lab_arena_destroy(a);
}

static void test_bulk_free_reports_misuse_and_frees_the_rest(void)
{
    lab_arena *a = test_arena(256, 8, 0, 0, 0);
    lab_set_misuse_handler(a, on_misuse, NULL);
    void *p[4];
    for (int i = 0; i < 4; i++)
        REQUIRE((p[i] = lab_alloc_pages(a, LAB_GFP_KERNEL, 1)));
    void *batch[6] = { p[0], p[1], NULL, p[1], p[2], p[3] };   /* p[1] twice */
    misuse_calls = 0;
    lab_free_pages_bulk(a, batch, 6, 1);
    CHECK_EQ(misuse_calls, 1);
    CHECK_EQ(misuse_code, LAB_EDOUBLEFREE);
    end_256(a);
}

/* A room page freed by another context with an order above the arena's
 * max_order, yet below 4 (the orders rooms serve), is LAB_EBADORDER at
 * once, as a zone page's is, not LAB_EWRONGORDER when its room takes the
 * entry back; and a bulk free of room pages with no array does nothing, as
 * lab_free_pages_bulk does (it read the NULL array). */
static void test_bad_room_frees_are_refused_at_once(void)
{
    lab_arena *a = test_arena(256, 1, 0, 0, 0);
    lab_set_misuse_handler(a, on_misuse, NULL);
    lab_room_config rc;
    lab_room_config_init(&rc);
    lab_room *r = NULL;
    REQUIRE(lab_room_create(a, &rc, &r) == 0);
    /* a page aligned as an order-2 block would be: the order alone is wrong */
    void *held[8], *p = NULL;
    for (int i = 0; i < 8; i++) {
        REQUIRE((held[i] = lab_room_alloc(r, LAB_GFP_NOWAIT)) != NULL);
        if (!p && ((char *)held[i] - (char *)lab_arena_base(a)) % (4 * LAB_PAGE_SIZE) == 0)
            p = held[i];
    }
    REQUIRE(p);
    misuse_calls = 0;
    lab_free_pages(a, p, 2);
    CHECK_EQ(misuse_calls, 1);
    CHECK_EQ(misuse_code, LAB_EBADORDER);
    void *one[1] = { p };
    lab_free_pages_bulk(a, one, 1, 2);
    CHECK_EQ(misuse_calls, 2);
    CHECK_EQ(misuse_code, LAB_EBADORDER);
    lab_room_free_bulk(r, NULL, 4);
    lab_room_free_bulk(NULL, NULL, 4);
    lab_room_free_bulk(r, held, 8);
    CHECK_EQ(misuse_calls, 2);
    lab_room_destroy(r);
    end_256(a);
}

static void test_bulk_free_to_a_destroyed_room_goes_to_the_zone(void)
{
    lab_arena *a = test_arena(512, 9, 0, 0, 0);
    lab_room *r = make_room(a, 32);
    void *p[32];
    for (int i = 0; i < 32; i++)
        REQUIRE((p[i] = lab_room_alloc(r, LAB_GFP_KERNEL)));
    lab_room_destroy(r);
    lab_free_pages_bulk(a, p, 32, 0);
    lab_stats s;
    lab_stats_get(a, &s);
    CHECK_EQ(s.free_pages, 512);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* The array is read up to its last entry and no further: a heap array of
 * exactly n entries, so that ASan reports any read past it (the lookahead
 * that overlaps the room_of cache misses must stop at the end). */
static void test_bulk_free_reads_no_entry_past_the_array(void)
{
    lab_arena *a = test_arena(256, 8, 0, 0, 0);
    lab_room *r = make_room(a, 16);
    for (size_t n = 1; n <= 12; n++) {
        void **pages = malloc(n * sizeof(void *));
        REQUIRE(pages);
        for (size_t i = 0; i < n; i++) {
            pages[i] = i % 2 ? lab_room_alloc(r, LAB_GFP_KERNEL) : lab_alloc_pages(a, LAB_GFP_KERNEL, 0);
            REQUIRE(pages[i]);
        }
        lab_free_pages_bulk(a, pages, n, 0);
        free(pages);
    }
    lab_room_destroy(r);
    end_256(a);
}

/* A POISON arena checks each page a bulk room allocation hands out, and
 * only that page: its neighbour, handed out and written by the program, is
 * not a use after free.  Of the pages the room hands out, each one whose next
 * frame is also out (and written) goes back to the room, and they all come
 * out again in one lab_room_alloc_bulk. */
static void test_bulk_room_allocation_checks_the_poison_of_its_own_pages_only(void)
{
    enum { PAGES = 128, OUT = 64 };
    lab_arena_config cfg;
    test_arena_config(&cfg, PAGES, 7, 1, 1, 1);
    cfg.flags = LAB_ARENA_POISON;
    lab_arena *a = test_arena_create(&cfg);
    lab_set_misuse_handler(a, on_misuse, NULL);
    lab_room *r = test_room(a, 0, OUT, OUT);
    char *base = lab_arena_base(a);
    void *all[OUT], *again[OUT];
    bool out[PAGES + 1] = { false };
    REQUIRE(lab_room_alloc_bulk(r, LAB_GFP_KERNEL, all, OUT) == OUT);
    for (int i = 0; i < OUT; i++) {
        memset(all[i], 0x11, LAB_PAGE_SIZE);
        out[((char *)all[i] - base) / LAB_PAGE_SIZE] = true;
    }
    misuse_calls = 0;
    size_t back = 0;
    for (int i = 0; i < OUT; i++) {
        size_t f = (size_t)((char *)all[i] - base) / LAB_PAGE_SIZE;
        if (f % 2 == 0 && out[f + 1]) {
            lab_room_free(r, all[i]);
            back++;
        }
    }
    REQUIRE(back >= OUT / 4);   /* the refill hands out runs of neighbours */
    CHECK_EQ(misuse_calls, 0);
    CHECK_EQ(lab_room_alloc_bulk(r, LAB_GFP_NOWAIT, again, back), back);
    CHECK_EQ(misuse_calls, 0);
    for (size_t i = 0; i < back; i++)
        memset(again[i], 0x22, LAB_PAGE_SIZE);
    lab_room_free_bulk(r, all, OUT);
    CHECK_EQ(misuse_calls, 0);
    lab_room_destroy(r);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* A NOFAIL bulk allocation that asks for more pages than the room's quota
 * holds returns the pages the quota lets it place, NOFAIL holding for the
 * first page only (as Linux's alloc_pages_bulk): the pages it placed count
 * against the quota and only its caller can give them back, so a walk that
 * waited for the next one would wait for ever.  In a child, so that a hang
 * fails this behaviour and not the whole test. */
static void test_a_nofail_bulk_allocation_beyond_its_quota_returns_what_it_placed(void)
{
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        alarm(10);
        lab_arena *a = test_arena(1024, 10, 0, 0, 0);
        lab_set_misuse_handler(a, on_misuse, NULL);
        lab_room_config rc;
        lab_room_config_init(&rc);
        rc.quota = 48;
        lab_room *r = NULL;
        if (lab_room_create(a, &rc, &r) != 0)
            child_exit(2);
        void *pages[64];
        misuse_calls = 0;
        size_t got = lab_room_alloc_bulk(r, LAB_GFP_KERNEL | LAB_GFP_NOFAIL, pages, 64);
        lab_room_stats st;
        lab_room_stats_get(r, &st);
        int ok = got == 48 && misuse_calls == 0 && st.fail_by_reason[LAB_R_QUOTA] == 1 && st.out == 48;
        lab_room_free_bulk(r, pages, got);
        lab_room_destroy(r);
        lab_stats s;
        lab_stats_get(a, &s);
        ok = ok && s.free_pages == 1024 && lab_check(a) == 0;
        lab_arena_destroy(a);
        child_exit(ok ? 0 : 1);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));   /* not killed by its alarm: the call returned */
    CHECK_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
}

/* An arena whose blocking requests wait up to 3 s for pages: far longer
 * than the tests below allow a call that must not wait. */
static lab_arena *patient_arena(size_t pages, unsigned max_order)
{
    lab_arena_config cfg;
    test_arena_config(&cfg, pages, max_order, 0, 0, 0);
    cfg.wait_timeout_ms = 3000;
    return test_arena_create(&cfg);
}

/* A blocking bulk allocation asking for more than the arena holds: the
 * pages after the first take no step that waits (as Linux's
 * alloc_pages_bulk), so the call returns what the zone had above its
 * watermark at once, not after wait_timeout_ms of waiting for pages only
 * its caller can give back. */
static void test_a_blocking_bulk_allocation_that_runs_the_arena_short_returns_at_once(void)
{
    lab_arena *a = patient_arena(1024, 10);
    lab_room *r = make_room(a, 32);
    static void *pages[2048];
    double t0 = now_ms();
    size_t got = lab_room_alloc_bulk(r, LAB_GFP_KERNEL | LAB_GFP_NOWARN, pages, 2048);
    double ms = now_ms() - t0;
    CHECK(ms < 1000.0);
    lab_stats s;
    lab_stats_get(a, &s);
    CHECK(got > 0 && got < 2048);
    CHECK_EQ(got + s.free_pages, 1024);
    CHECK(s.free_pages <= s.wmark_min);   /* it took everything above min */
    lab_room_stats rs;
    lab_room_stats_get(r, &rs);
    CHECK_EQ(rs.fail_by_reason[LAB_R_WATERMARK], 1);
    lab_room_free_bulk(r, pages, got);
    lab_room_destroy(r);
    end_all(a, 1024);
}

/* ... while its first page still waits, as a single request's would: with
 * the arena at its watermark, the call sleeps until another thread frees
 * pages, then takes those above the watermark without waiting again. */
static void test_a_blocking_bulk_allocation_waits_for_its_first_page_only(void)
{
    lab_arena *a = patient_arena(256, 8);
    lab_room *r = make_room(a, 8);
    static void *held[256];
    size_t nheld = 0;
    while (nheld < 256 && (held[nheld] = lab_alloc_pages(a, LAB_GFP_NOWAIT | LAB_GFP_NOWARN, 0)) != NULL)
        nheld++;
    REQUIRE(nheld >= 16);
    pthread_t t;
    struct job j = { a, held, 16, 100 };
    void *pages[64];
    /* before the thread: its 100 ms sleep then bounds ms from below, however
     * late this thread runs again */
    double t0 = now_ms();
    REQUIRE(pthread_create(&t, NULL, bulk_free_thread, &j) == 0);
    size_t got = lab_room_alloc_bulk(r, LAB_GFP_KERNEL | LAB_GFP_NOWARN, pages, 64);
    double ms = now_ms() - t0;
    REQUIRE(pthread_join(t, NULL) == 0);
    CHECK(got >= 1 && got <= 16);
    CHECK(ms >= 50.0 && ms < 2500.0);   /* it waited for the free, not for the timeout */
    lab_room_free_bulk(r, pages, got);
    lab_room_destroy(r);
    lab_free_pages_bulk(a, held + 16, nheld - 16, 0);
    end_all(a, 256);
}

/* ... and waits for the zone's lock for each of its refills, as a single
 * blocking request does: only steps 6-8 are the first page's alone.  A
 * zone lock found busy (the fault point) would otherwise cut the call
 * short after its first refill. */
static void test_a_blocking_bulk_allocation_waits_for_the_zone_lock_for_every_refill(void)
{
    lab_arena *a = test_arena(1024, 10, 0, 0, 0);
    lab_room *r = make_room(a, 32);
    static void *pages[256];
    fault_points_arm(FP_LOCK_BUSY, 1);
    size_t got = lab_room_alloc_bulk(r, LAB_GFP_KERNEL, pages, 256);
    uint64_t tries = fault_points_calls(FP_LOCK_BUSY);
    fault_points_disarm();
    CHECK_EQ(got, 256);
    CHECK_EQ(tries, 0);   /* never an atomic request's try of the lock */
    lab_room_free_bulk(r, pages, got);
    lab_room_destroy(r);
    end_all(a, 1024);
}

int main(void)
{
    test_watchdog(60);
    RUN(test_bulk_free_of_room_pages_returns_them_to_their_rooms);
    RUN(test_bulk_free_reports_misuse_and_frees_the_rest);
    RUN(test_bad_room_frees_are_refused_at_once);
    RUN(test_bulk_free_to_a_destroyed_room_goes_to_the_zone);
    RUN(test_bulk_free_reads_no_entry_past_the_array);
    RUN(test_bulk_room_allocation_checks_the_poison_of_its_own_pages_only);
    RUN(test_a_nofail_bulk_allocation_beyond_its_quota_returns_what_it_placed);
    RUN(test_a_blocking_bulk_allocation_that_runs_the_arena_short_returns_at_once);
    RUN(test_a_blocking_bulk_allocation_waits_for_its_first_page_only);
    RUN(test_a_blocking_bulk_allocation_waits_for_the_zone_lock_for_every_refill);
    return test_finish();
}
