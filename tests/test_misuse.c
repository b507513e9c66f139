/*
 * Misuse of lab_free_pages: every kind is reported once through the misuse
 * handler with its own code and a message naming the frame, and changes
 * nothing (labyrinth.h, "Errors and misuse"): lab_check stays 0, no page is lost
 * or gained, and the block can still be freed correctly afterwards.
 * free(NULL) is not misuse.  Without a handler, a release build writes the
 * report to stderr and goes on; a debug build aborts with it (both run in a
 * forked child here).
 */
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/wait.h>

#define PAGES     64
#define MAX_ORDER 4

struct record {
    int calls;
    int err;
    const void *addr;
    char msg[1024];
};

static void record_misuse(void *ctx, int err, const void *addr, const char *msg)
{
    struct record *r = ctx;
    r->calls++;
    r->err = err;
    r->addr = addr;
    snprintf(r->msg, sizeof(r->msg), "%s", msg ? msg : "");
}

struct fixture {
    lab_arena *a;
    char *base;
    struct record rec;
    lab_stats before;
};

static void setup(struct fixture *fx)
{
    memset(fx, 0, sizeof(*fx));
    fx->a = test_arena(PAGES, MAX_ORDER, 0, 0, 0);
    fx->base = lab_arena_base(fx->a);
    lab_set_misuse_handler(fx->a, record_misuse, &fx->rec);
}

static void *alloc(struct fixture *fx, unsigned order)
{
    void *p = lab_alloc_pages(fx->a, LAB_GFP_MEMALLOC, order);
    REQUIRE(p);
    stamp_block(p, order, 0xfeed0000u + order);
    return p;
}

/* Before the misuse: remember the state, forget earlier reports. */
static void snapshot(struct fixture *fx)
{
    memset(&fx->rec, 0, sizeof(fx->rec));
    lab_stats_get(fx->a, &fx->before);
}

/* After it: exactly one report with this code, about this address, with a
 * message naming the frame (when the pointer is inside the arena); and the
 * allocator is as it was, apart from the misuse counter. */
static void expect_reported_once(struct fixture *fx, int err, const void *addr, int inside)
{
    CHECK_EQ(fx->rec.calls, 1);
    CHECK_EQ(fx->rec.err, err);
    CHECK(fx->rec.addr == addr);
    CHECK(fx->rec.msg[0] != 0);
    if (inside) {
        char frame[64];
        snprintf(frame, sizeof(frame), "frame %zu", (size_t)((const char *)addr - fx->base) / LAB_PAGE_SIZE);
        if (!strstr(fx->rec.msg, frame))
            fprintf(stderr, "message \"%s\" does not name \"%s\"\n", fx->rec.msg, frame);
        CHECK(strstr(fx->rec.msg, frame) != NULL);
    }
    lab_stats s;
    lab_stats_get(fx->a, &s);
    CHECK_EQ(s.free_pages, fx->before.free_pages);
    CHECK_EQ(s.allocated_pages, fx->before.allocated_pages);
    CHECK_EQ(s.frees, fx->before.frees);
    CHECK_EQ(s.misuse, fx->before.misuse + 1);
    for (unsigned o = 0; o <= MAX_ORDER; o++)
        CHECK_EQ(s.free_blocks[o], fx->before.free_blocks[o]);
    CHECK_EQ(lab_check(fx->a), 0);
}

/* Free correctly, and see every page come back. */
static void free_ok(struct fixture *fx, void *p, unsigned order)
{
    CHECK(stamp_ok(p, order, 0xfeed0000u + order));
    lab_stats_get(fx->a, &fx->before);
    size_t before = fx->before.free_pages;
    int calls = fx->rec.calls;
    lab_free_pages(fx->a, p, order);
    lab_stats s;
    lab_stats_get(fx->a, &s);
    CHECK_EQ(s.free_pages, before + ((size_t)1 << order));
    CHECK_EQ(fx->rec.calls, calls);
    CHECK_EQ(lab_check(fx->a), 0);
}

static void teardown(struct fixture *fx)
{
    lab_stats s;
    lab_stats_get(fx->a, &s);
    CHECK_EQ(s.free_pages, PAGES);
    CHECK_EQ(lab_check(fx->a), 0);
    lab_arena_destroy(fx->a);
}

/* ---- one test per misuse -------------------------------------------------- */

static void test_double_free_of_an_order0_page_is_reported(void)
{
    struct fixture fx;
    setup(&fx);
    char *x = alloc(&fx, 0), *y = alloc(&fx, 0);   /* buddies: x stays a free order-0 block */
    CHECK(y == x + LAB_PAGE_SIZE);
    free_ok(&fx, x, 0);
    snapshot(&fx);
    lab_free_pages(fx.a, x, 0);
    expect_reported_once(&fx, LAB_EDOUBLEFREE, x, 1);
    free_ok(&fx, y, 0);
    teardown(&fx);
}

static void test_double_free_of_an_order3_block_is_reported(void)
{
    struct fixture fx;
    setup(&fx);
    char *p = alloc(&fx, 3), *q = alloc(&fx, 3);   /* q keeps p from merging */
    free_ok(&fx, p, 3);
    snapshot(&fx);
    lab_free_pages(fx.a, p, 3);
    expect_reported_once(&fx, LAB_EDOUBLEFREE, p, 1);
    free_ok(&fx, q, 3);
    teardown(&fx);
}

static void test_double_free_of_a_page_merged_into_a_larger_block_is_reported(void)
{
    struct fixture fx;
    setup(&fx);
    char *x = alloc(&fx, 0), *y = alloc(&fx, 0);
    free_ok(&fx, y, 0);
    free_ok(&fx, x, 0);     /* x and y merge, up to a free block of max order */
    lab_stats s;
    lab_stats_get(fx.a, &s);
    CHECK_EQ(s.free_blocks[0], 0);
    snapshot(&fx);
    lab_free_pages(fx.a, y, 0);      /* y is now inside the merged free block */
    expect_reported_once(&fx, LAB_EDOUBLEFREE, y, 1);
    snapshot(&fx);
    lab_free_pages(fx.a, x, 0);      /* x heads it, with another order */
    expect_reported_once(&fx, LAB_EDOUBLEFREE, x, 1);
    teardown(&fx);
}

static void test_free_with_a_larger_order_is_reported(void)
{
    struct fixture fx;
    setup(&fx);
    char *p = alloc(&fx, 2);
    snapshot(&fx);
    lab_free_pages(fx.a, p, 3);
    expect_reported_once(&fx, LAB_EWRONGORDER, p, 1);
    free_ok(&fx, p, 2);
    teardown(&fx);
}

static void test_free_with_a_smaller_order_is_reported(void)
{
    struct fixture fx;
    setup(&fx);
    char *p = alloc(&fx, 2);
    for (unsigned o = 0; o < 2; o++) {
        snapshot(&fx);
        lab_free_pages(fx.a, p, o);
        expect_reported_once(&fx, LAB_EWRONGORDER, p, 1);
    }
    free_ok(&fx, p, 2);
    teardown(&fx);
}

static void test_free_of_an_interior_pointer_is_reported(void)
{
    struct fixture fx;
    setup(&fx);
    char *p = alloc(&fx, 2);
    for (unsigned i = 1; i < 4; i++) {
        for (unsigned o = 0; o <= 2; o++) {   /* whatever the order given */
            snapshot(&fx);
            lab_free_pages(fx.a, p + i * LAB_PAGE_SIZE, o);
            expect_reported_once(&fx, LAB_EINTERIOR, p + i * LAB_PAGE_SIZE, 1);
        }
    }
    free_ok(&fx, p, 2);
    teardown(&fx);
}

static void test_free_of_an_unaligned_pointer_is_reported(void)
{
    struct fixture fx;
    setup(&fx);
    char *p = alloc(&fx, 1);
    static const size_t offs[] = { 1, 8, 100, LAB_PAGE_SIZE - 1, LAB_PAGE_SIZE + 16 };
    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        snapshot(&fx);
        lab_free_pages(fx.a, p + offs[i], 1);
        expect_reported_once(&fx, LAB_EUNALIGNED, p + offs[i], 1);
    }
    free_ok(&fx, p, 1);
    teardown(&fx);
}

static void test_free_of_a_foreign_pointer_is_reported(void)
{
    struct fixture fx;
    setup(&fx);
    static char elsewhere[2 * LAB_PAGE_SIZE] __attribute__((aligned(4096)));
    char *p = alloc(&fx, 0);
    char *foreign[] = {
        elsewhere,                                   /* another region */
        fx.base - LAB_PAGE_SIZE,                     /* just below the arena */
        fx.base + (size_t)PAGES * LAB_PAGE_SIZE,     /* just past its end */
        fx.base + (size_t)PAGES * 2 * LAB_PAGE_SIZE,
    };
    for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++) {
        snapshot(&fx);
        lab_free_pages(fx.a, foreign[i], 0);
        expect_reported_once(&fx, LAB_EFOREIGN, foreign[i], 0);
    }
    free_ok(&fx, p, 0);
    teardown(&fx);
}

static void test_free_with_an_order_above_max_order_is_reported(void)
{
    struct fixture fx;
    setup(&fx);
    REQUIRE(lab_arena_max_order(fx.a) == MAX_ORDER);
    char *p = alloc(&fx, 0);
    static const unsigned orders[] = { MAX_ORDER + 1, LAB_MAX_ORDER_LIMIT + 1, 1000, ~0u };
    for (size_t i = 0; i < sizeof(orders) / sizeof(orders[0]); i++) {
        snapshot(&fx);
        lab_free_pages(fx.a, p, orders[i]);
        expect_reported_once(&fx, LAB_EBADORDER, p, 1);
    }
    free_ok(&fx, p, 0);
    teardown(&fx);
}


/* NOFAIL promises a block; an order that can never be served is a bug of
 * the caller, reported as misuse, not a silent NULL.  Without NOFAIL it is
 * an ordinary failure (LAB_R_ORDER), not misuse. */
static void test_nofail_with_an_order_above_max_order_is_reported(void)
{
    struct fixture fx;
    setup(&fx);
    snapshot(&fx);
    CHECK(lab_alloc_pages(fx.a, LAB_GFP_KERNEL | LAB_GFP_NOFAIL | LAB_GFP_NOWARN, MAX_ORDER + 1) == NULL);
    expect_reported_once(&fx, LAB_EBADORDER, NULL, 0);
    snapshot(&fx);
    lab_result r;
    lab_alloc_pages_result(fx.a, LAB_GFP_KERNEL | LAB_GFP_NOWARN, MAX_ORDER + 1, &r);
    CHECK(r.addr == NULL);
    CHECK_EQ(r.reason, LAB_R_ORDER);
    CHECK_EQ(fx.rec.calls, 0);
    teardown(&fx);
}

/* A block larger than the pages above the request's floor can never be
 * served either, even at max_order: a 64-page arena with min 16 (NOFAIL may
 * go down to half of it) has no order-6 block for anyone but MEMALLOC.
 * The request used to wait for ever; without NOFAIL it waited its timeout. */
static void test_nofail_with_a_block_larger_than_the_pages_above_the_floor_is_reported(void)
{
    lab_arena *a = test_arena(PAGES, 6, 16, 16, 16);
    struct record rec = { 0 };
    lab_set_misuse_handler(a, record_misuse, &rec);
    REQUIRE(lab_arena_max_order(a) == 6);
    CHECK(lab_alloc_pages(a, LAB_GFP_KERNEL | LAB_GFP_NOFAIL | LAB_GFP_NOWARN, 6) == NULL);
    CHECK_EQ(rec.calls, 1);
    CHECK_EQ(rec.err, LAB_EBADORDER);
    lab_result r;
    lab_alloc_pages_result(a, LAB_GFP_KERNEL | LAB_GFP_NOWARN, 6, &r);
    CHECK(r.addr == NULL);
    CHECK_EQ(r.reason, LAB_R_ORDER);
    CHECK_EQ(rec.calls, 1);
    /* half of min is NOFAIL's: 56 pages may be taken, 32 may */
    void *p = lab_alloc_pages(a, LAB_GFP_KERNEL | LAB_GFP_NOFAIL | LAB_GFP_NOWARN, 5);
    CHECK(p != NULL);
    CHECK_EQ(rec.calls, 1);
    if (p)
        lab_free_pages(a, p, 5);
    /* MEMALLOC may take every page */
    CHECK((p = lab_alloc_pages(a, LAB_GFP_KERNEL | LAB_GFP_MEMALLOC, 6)) != NULL);
    if (p)
        lab_free_pages(a, p, 6);
    /* a room's NOFAIL request above the orders it serves, the same */
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.max_order = 1;
    lab_room *room = NULL;
    REQUIRE(lab_room_create(a, &rc, &room) == 0);
    CHECK(lab_room_alloc_pages(room, LAB_GFP_KERNEL | LAB_GFP_NOFAIL | LAB_GFP_NOWARN, 2) == NULL);
    CHECK_EQ(rec.calls, 2);
    CHECK_EQ(rec.err, LAB_EBADORDER);
    CHECK(lab_room_alloc_pages(room, LAB_GFP_KERNEL | LAB_GFP_NOWARN, 2) == NULL);
    CHECK_EQ(rec.calls, 2);
    lab_room_destroy(room);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* A guard arena's blocking request takes a block four times its size and
 * keeps the middle: where that larger block can never fit above the
 * floor, the request gets an unguarded block (as a non-blocking one does),
 * not a misuse report for a block that does fit. */
static void test_a_guard_too_large_to_fit_is_left_out_not_reported(void)
{
    lab_arena_config cfg;
    test_arena_config(&cfg, 256, 8, 32, 32, 32);
    cfg.flags |= LAB_ARENA_GUARD;
    lab_arena *a = test_arena_create(&cfg);
    struct record rec = { 0 };
    lab_set_misuse_handler(a, record_misuse, &rec);
    void *p = lab_alloc_pages(a, LAB_GFP_KERNEL | LAB_GFP_NOFAIL | LAB_GFP_NOWARN, 6);
    CHECK(p != NULL);
    CHECK_EQ(rec.calls, 0);
    if (p)
        lab_free_pages(a, p, 6);
    lab_result r;
    lab_alloc_pages_result(a, LAB_GFP_KERNEL | LAB_GFP_NOWARN, 6, &r);
    CHECK(r.addr != NULL);
    if (r.addr)
        lab_free_pages(a, r.addr, 6);
    CHECK_EQ(rec.calls, 0);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* A room whose quota is its reserve serves other requests only with pages
 * lent from the reserve: with the reserve full, a NOFAIL request that may
 * not take it would wait for ever for a page no free can make room for.
 * With pages lent out, it waits for them (they come back through the
 * stock), and is served. */
struct late_free { lab_arena *a; void **p; int n; };
static void *free_late(void *arg)
{
    struct late_free *lf = arg;
    usleep(100000);
    for (int i = 0; i < lf->n; i++)
        lab_free_pages(lf->a, lf->p[i], 0);
    return NULL;
}

static void test_nofail_that_a_rooms_quota_can_never_serve_is_reported(void)
{
    lab_arena *a = test_arena(PAGES, MAX_ORDER, 0, 0, 0);
    struct record rec = { 0 };
    lab_set_misuse_handler(a, record_misuse, &rec);
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.reserve = rc.quota = 4;
    lab_room *room = NULL;
    REQUIRE(lab_room_create(a, &rc, &room) == 0);
    CHECK(lab_room_alloc(room, LAB_GFP_KERNEL | LAB_GFP_NOFAIL | LAB_GFP_NOWARN) == NULL);
    CHECK_EQ(rec.calls, 1);
    CHECK_EQ(rec.err, LAB_EQUOTA);
    /* the reserve lent out, its pages freed by another thread later */
    void *lent[4];
    for (int i = 0; i < 4; i++)
        REQUIRE((lent[i] = lab_room_alloc(room, LAB_GFP_ATOMIC)) != NULL);
    struct late_free lf = { a, lent, 4 };
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, free_late, &lf) == 0);
    void *p = lab_room_alloc(room, LAB_GFP_KERNEL | LAB_GFP_NOFAIL | LAB_GFP_NOWARN);
    pthread_join(t, NULL);
    CHECK(p != NULL);
    CHECK_EQ(rec.calls, 1);
    if (p)
        lab_room_free(room, p);
    lab_room_destroy(room);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

static void test_free_of_null_is_a_no_op(void)
{
    struct fixture fx;
    setup(&fx);
    char *p = alloc(&fx, 1);
    snapshot(&fx);
    lab_free_pages(fx.a, NULL, 0);
    lab_free_pages(fx.a, NULL, 3);
    lab_free_pages(fx.a, NULL, 1000);   /* whatever the order */
    CHECK_EQ(fx.rec.calls, 0);
    lab_stats s;
    lab_stats_get(fx.a, &s);
    CHECK_EQ(s.misuse, fx.before.misuse);
    CHECK_EQ(s.free_pages, fx.before.free_pages);
    CHECK_EQ(s.frees, fx.before.frees);
    CHECK_EQ(lab_check(fx.a), 0);
    free_ok(&fx, p, 1);
    teardown(&fx);
}

/* ---- the default handler, in a child ---------------------------------------- */

struct child_result { int status; char out[4096]; size_t len; };

/* Run fn in a child whose stderr is a pipe; collect what it wrote and how it ended. */
static void run_in_child(void (*fn)(void), struct child_result *cr)
{
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        struct rlimit no_core = { 0, 0 };
        setrlimit(RLIMIT_CORE, &no_core);
        close(fds[0]);
        dup2(fds[1], 2);
        close(fds[1]);
        fn();
        child_exit(99);   /* fn decides how the child ends */
    }
    close(fds[1]);
    cr->len = 0;
    for (;;) {
        ssize_t n = read(fds[0], cr->out + cr->len, sizeof(cr->out) - 1 - cr->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        cr->len += (size_t)n;
    }
    cr->out[cr->len] = 0;
    close(fds[0]);
    while (waitpid(pid, &cr->status, 0) < 0 && errno == EINTR)
        ;
}


/* Double free twice, with no handler set; exit 42 if the arena is intact. */
static void child_double_frees_with_default_handler(void)
{
    lab_arena *a = test_arena(PAGES, MAX_ORDER, 0, 0, 0);
    char *x = lab_alloc_pages(a, LAB_GFP_MEMALLOC, 0), *y = lab_alloc_pages(a, LAB_GFP_MEMALLOC, 0);
    if (!x || !y)
        child_exit(2);
    lab_free_pages(a, x, 0);
    lab_free_pages(a, x, 0);     /* reported */
    lab_free_pages(a, x, 0);     /* same code again: not written again */
    lab_free_pages(a, y, 0);
    lab_stats s;
    lab_stats_get(a, &s);
    int ok = lab_check(a) == 0 && s.free_pages == PAGES && s.misuse == 2;
    lab_arena_destroy(a);
    child_exit(ok ? 42 : 3);
}

#ifndef LAB_DEBUG
static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *s = hay; (s = strstr(s, needle)) != NULL; s += strlen(needle))
        n++;
    return n;
}

static void test_default_handler_reports_on_stderr_and_continues_in_release(void)
{
    int failures_before = check_failures;
    struct child_result cr;
    run_in_child(child_double_frees_with_default_handler, &cr);
    CHECK(WIFEXITED(cr.status));
    if (WIFEXITED(cr.status))
        CHECK_EQ(WEXITSTATUS(cr.status), 42);
    CHECK(strstr(cr.out, lab_strerror(LAB_EDOUBLEFREE)) != NULL);
    CHECK(strstr(cr.out, "frame 0") != NULL);
    CHECK_EQ(count_of(cr.out, lab_strerror(LAB_EDOUBLEFREE)), 1);   /* once per error code */
    if (check_failures != failures_before)
        fprintf(stderr, "child status %#x, stderr:\n%s\n", cr.status, cr.out);
}
#else
static void test_default_handler_aborts_with_the_message_in_debug(void)
{
    int failures_before = check_failures;
    struct child_result cr;
    run_in_child(child_double_frees_with_default_handler, &cr);
    CHECK(WIFSIGNALED(cr.status));
    if (WIFSIGNALED(cr.status))
        CHECK_EQ(WTERMSIG(cr.status), SIGABRT);
    CHECK(strstr(cr.out, lab_strerror(LAB_EDOUBLEFREE)) != NULL);
    CHECK(strstr(cr.out, "frame 0") != NULL);
    if (check_failures != failures_before)
        fprintf(stderr, "child status %#x, stderr:\n%s\n", cr.status, cr.out);
}
#endif

int main(void)
{
    test_watchdog(60);
    RUN(test_double_free_of_an_order0_page_is_reported);
    RUN(test_double_free_of_an_order3_block_is_reported);
    RUN(test_double_free_of_a_page_merged_into_a_larger_block_is_reported);
    RUN(test_free_with_a_larger_order_is_reported);
    RUN(test_free_with_a_smaller_order_is_reported);
    RUN(test_free_of_an_interior_pointer_is_reported);
    RUN(test_free_of_an_unaligned_pointer_is_reported);
    RUN(test_free_of_a_foreign_pointer_is_reported);
    RUN(test_free_with_an_order_above_max_order_is_reported);
    RUN(test_nofail_with_an_order_above_max_order_is_reported);
    RUN(test_nofail_with_a_block_larger_than_the_pages_above_the_floor_is_reported);
    RUN(test_a_guard_too_large_to_fit_is_left_out_not_reported);
    RUN(test_nofail_that_a_rooms_quota_can_never_serve_is_reported);
    RUN(test_free_of_null_is_a_no_op);
#ifndef LAB_DEBUG
    RUN(test_default_handler_reports_on_stderr_and_continues_in_release);
#else
    RUN(test_default_handler_aborts_with_the_message_in_debug);
#endif
    return test_finish();
}
