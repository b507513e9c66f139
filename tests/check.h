/*
 * check.h - the assertion header every test uses.  A failed CHECK prints the
 * expression, file and line, and makes the test exit non-zero at the end (or
 * at once with REQUIRE).  Tests are plain CTest executables: one behaviour
 * per function, named after the behaviour, run by RUN().
 */
#ifndef LAB_TEST_CHECK_H
#define LAB_TEST_CHECK_H

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "labyrinth.h"

/* LAB_TEST_SLOW: a sanitizer or debug build, where every operation costs 5-50x
 * more; tests scale their counts down there (and say so). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(LAB_DEBUG)
#define LAB_TEST_SLOW 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define LAB_TEST_SLOW 1
#endif
#endif

static int check_failures;
static int check_count;

#define CHECK(c) do { check_count++; if (!(c)) { check_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); } } while (0)
#define REQUIRE(c) do { check_count++; if (!(c)) { \
    fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #c); exit(1); } } while (0)
#define CHECK_EQ(a, b) do { long long _a = (long long)(a), _b = (long long)(b); check_count++; \
    if (_a != _b) { check_failures++; fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld vs %lld)\n", \
    __FILE__, __LINE__, #a, #b, _a, _b); } } while (0)

#define RUN(fn) do { int _before = check_failures; fn(); \
    fprintf(stderr, "%s %s\n", check_failures == _before ? "ok  " : "FAIL", #fn); } while (0)

/* A test that hangs is a failure, never a hung CI. */
static inline void test_watchdog(unsigned seconds) { alarm(seconds); }

static inline int test_finish(void)
{
    fprintf(stderr, "%d checks, %d failed\n", check_count, check_failures);
    return check_failures ? 1 : 0;
}

/* An arena with explicit size and watermarks (0 = derived). */
static inline lab_arena *test_arena(size_t pages, unsigned max_order, size_t wmin, size_t wlow, size_t whigh)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = pages * LAB_PAGE_SIZE;
    cfg.max_order = max_order;
    cfg.wmark_min = wmin;
    cfg.wmark_low = wlow;
    cfg.wmark_high = whigh;
    lab_arena *a = NULL;
    int err = lab_arena_create(&cfg, &a);
    if (err) {
        fprintf(stderr, "lab_arena_create: %s\n", lab_strerror(err));
        exit(1);
    }
    return a;
}

/* Stamps: the first and last word of every page of a block hold its
 * address and a tag, so a block handed out twice or overwritten shows. */
static inline void stamp_block(void *p, unsigned order, uint64_t tag)
{
    for (size_t i = 0; i < ((size_t)1 << order); i++) {
        uint64_t *w = (uint64_t *)((char *)p + i * LAB_PAGE_SIZE);
        w[0] = (uint64_t)(uintptr_t)w ^ tag;
        w[LAB_PAGE_SIZE / 8 - 1] = tag;
    }
}
static inline int stamp_ok(const void *p, unsigned order, uint64_t tag)
{
    for (size_t i = 0; i < ((size_t)1 << order); i++) {
        const uint64_t *w = (const uint64_t *)((const char *)p + i * LAB_PAGE_SIZE);
        if (w[0] != ((uint64_t)(uintptr_t)w ^ tag) || w[LAB_PAGE_SIZE / 8 - 1] != tag)
            return 0;
    }
    return 1;
}

#endif
