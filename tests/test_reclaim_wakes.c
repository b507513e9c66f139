/* Wakes between requests and the reclaimer: a free between a request's
 * failed attempt and its sleep is not lost. */
#include "check.h"
#include "internal.h"

#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- step 8 ------------------------------------------------------------------ */

/* The request read free_seq before its attempt; a free lands before it
 * sleeps.  The sleep must not happen (it used to last a whole 10 ms slice).
 * The free is an ordinary lab_free_pages, which takes the lock as an atomic
 * context does: no wake, only the bump of free_seq. */
static void test_a_free_between_the_failed_attempt_and_the_sleep_is_not_lost(void)
{
    lab_arena *a = test_arena(256, 4, 0, 0, 0);
    void *p = lab_alloc_pages(a, LAB_GFP_KERNEL, 0);
    REQUIRE(p);
    double worst = 0;
    for (int i = 0; i < 20; i++) {
        uint32_t seen = reclaim_free_seq(a);
        lab_free_pages(a, p, 0);
        double t0 = now_ms();
        CHECK(reclaim_wait_for_frees(a, 0, seen));
        double ms = now_ms() - t0;
        worst = ms > worst ? ms : worst;
        REQUIRE((p = lab_alloc_pages(a, LAB_GFP_KERNEL, 0)) != NULL);
    }
    fprintf(stderr, "  longest wait after a free it should have seen: %.2f ms (a sleep is 10 ms)\n", worst);
    CHECK(worst < 5.0);
    /* With no free since `seen`, it does sleep (the test above means something). */
    double t0 = now_ms();
    reclaim_wait_for_frees(a, 0, reclaim_free_seq(a));
    CHECK(now_ms() - t0 >= 5.0);
    lab_free_pages(a, p, 0);
    lab_arena_destroy(a);
}

/* ---- the reclaimer's poll ------------------------------------------------------ */

int main(void)
{
    test_watchdog(120);
    RUN(test_a_free_between_the_failed_attempt_and_the_sleep_is_not_lost);
    return test_finish();
}
