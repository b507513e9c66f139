/*
 * Failure reports of requests that may not make a system call are kept in
 * the arena's slots and written by lab_arena_flush: each in the kernel's
 * warn_alloc form, the ones that found every slot taken counted in one
 * "dropped" line, and nothing written twice.
 */
#include "check.h"

#define PAGES 64

/* Runs fn with stderr sent to a temporary file; returns what it wrote. */
static char *capture_stderr(void (*fn)(lab_arena *), lab_arena *a)
{
    static char text[16384];
    FILE *tmp = tmpfile();
    REQUIRE(tmp);
    fflush(stderr);
    int saved = dup(2);
    REQUIRE(dup2(fileno(tmp), 2) == 2);
    fn(a);
    fflush(stderr);
    REQUIRE(dup2(saved, 2) == 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(text, 1, sizeof(text) - 1, tmp);
    text[n] = 0;
    fclose(tmp);
    return text;
}

static unsigned count_of(const char *hay, const char *needle)
{
    unsigned n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

enum { FAILURES = 10 };

static void fail_nonblocking_then_flush(lab_arena *a)
{
    for (int i = 0; i < FAILURES; i++)
        CHECK(lab_alloc_pages(a, LAB_GFP_NOWAIT, 0) == NULL);
    lab_arena_flush(a);
}

static void flush_again(lab_arena *a) { lab_arena_flush(a); }

static void test_deferred_failure_reports_are_written_once_with_the_dropped_count(void)
{
    lab_arena *a = test_arena(PAGES, 4, 16, 20, 24);
    void *held[PAGES];
    size_t n = 0;
    while (n < PAGES && (held[n] = lab_alloc_pages(a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, 0)) != NULL)
        n++;
    CHECK_EQ(n, PAGES);
    const char *text = capture_stderr(fail_nonblocking_then_flush, a);
    /* 8 slots, 2 of them kept for misuse reports: 6 written, 4 dropped */
    unsigned written = count_of(text, "page allocation failure: order:0, mode:0x");
    CHECK_EQ(written, 6);
    CHECK_EQ(count_of(text, "reason: below watermark"), 6);
    CHECK(strstr(text, " 4 more report(s) from atomic context dropped") != NULL);
    if (written != 6)
        fprintf(stderr, "%s", text);
    text = capture_stderr(flush_again, a);
    CHECK_EQ(strlen(text), 0);          /* nothing twice, no "0 dropped" line */
    while (n)
        lab_free_pages(a, held[--n], 0);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* No lab_arena_flush: the next request that may block writes what the
 * atomic contexts left behind, before it serves itself. */
static void fail_nonblocking_then_allocate_blocking(lab_arena *a)
{
    CHECK(lab_alloc_pages(a, LAB_GFP_NOWAIT, 4) == NULL);   /* would leave 4 pages, min is 16 */
    void *p = lab_alloc_pages(a, LAB_GFP_KERNEL, 0);
    CHECK(p != NULL);
    if (p)
        lab_free_pages(a, p, 0);
}

static void test_a_blocking_request_writes_the_deferred_reports(void)
{
    lab_arena *a = test_arena(PAGES, 4, 16, 20, 24);
    void *held[PAGES];
    size_t n = 0;
    /* 20 pages free: an order-0 page for KERNEL, no order-4 block for NOWAIT */
    while (n < PAGES - 20 && (held[n] = lab_alloc_pages(a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, 0)) != NULL)
        n++;
    CHECK_EQ(n, PAGES - 20);
    const char *text = capture_stderr(fail_nonblocking_then_allocate_blocking, a);
    CHECK_EQ(count_of(text, "page allocation failure: order:4, mode:0x"), 1);
    CHECK_EQ(count_of(text, "page allocation failure"), 1);
    while (n)
        lab_free_pages(a, held[--n], 0);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

int main(void)
{
    test_watchdog(60);
    RUN(test_deferred_failure_reports_are_written_once_with_the_dropped_count);
    RUN(test_a_blocking_request_writes_the_deferred_reports);
    return test_finish();
}
