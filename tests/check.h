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

/* Which test functions RUN runs: all, or only LAB_TEST_ONLY=fn, or all but
 * LAB_TEST_EXCEPT=fn1,fn2.  tests/CMakeLists.txt uses them to give a
 * function a CTest entry of its own (one skipped under an emulator). */
static int check_ran;
static inline int test_selected(const char *fn)
{
    const char *only = getenv("LAB_TEST_ONLY"), *except = getenv("LAB_TEST_EXCEPT");
    size_t n = strlen(fn);
    if (only && *only)
        return strcmp(only, fn) == 0;
    for (const char *e = except; e && *e; e += strcspn(e, ",") + (e[strcspn(e, ",")] == ',')) {
        if (strncmp(e, fn, n) == 0 && (e[n] == ',' || e[n] == 0))
            return 0;
    }
    return 1;
}

#define RUN(fn) do { if (!test_selected(#fn)) break; check_ran++; int _before = check_failures; fn(); \
    fprintf(stderr, "%s %s\n", check_failures == _before ? "ok  " : "FAIL", #fn); } while (0)

/* Under a user-mode emulator (the aarch64 cross build runs its tests in
 * qemu-user, and its CTest sets LAB_TEST_EMULATOR) page faults, RSS, timings
 * and some system calls are the emulator's, not the library's.  A test
 * function that measures those calls this first: there it exits 77, which
 * CTest reports as skipped, with the reason; such a function has a CTest
 * entry of its own (tests/CMakeLists.txt), so the rest of its executable
 * still runs. */
static inline void test_skip_under_emulator(const char *why)
{
    const char *emu = getenv("LAB_TEST_EMULATOR");
    if (emu && *emu) {
        fprintf(stderr, "SKIP under %s: %s\n", emu, why);
        exit(77);
    }
}

/* A test that hangs is a failure, never a hung CI. */
static inline void test_watchdog(unsigned seconds) { alarm(seconds); }

static inline int test_finish(void)
{
    if (check_ran == 0) {   /* LAB_TEST_ONLY / LAB_TEST_EXCEPT named nothing that exists */
        fprintf(stderr, "no test function ran (LAB_TEST_ONLY=%s)\n", getenv("LAB_TEST_ONLY") ? getenv("LAB_TEST_ONLY") : "");
        return 1;
    }
    fprintf(stderr, "%d checks, %d failed\n", check_count, check_failures);
    return check_failures ? 1 : 0;
}

/* A configuration with explicit size and watermarks (0 = derived). */
static inline void test_arena_config(lab_arena_config *cfg, size_t pages, unsigned max_order, size_t wmin,
                                     size_t wlow, size_t whigh)
{
    lab_arena_config_init(cfg);
    cfg->size = pages * LAB_PAGE_SIZE;
    cfg->max_order = max_order;
    cfg->wmark_min = wmin;
    cfg->wmark_low = wlow;
    cfg->wmark_high = whigh;
}

/* The arena of a configuration the test expects to be accepted. */
static inline lab_arena *test_arena_create(const lab_arena_config *cfg)
{
    lab_arena *a = NULL;
    int err = lab_arena_create(cfg, &a);
    if (err) {
        fprintf(stderr, "lab_arena_create: %s\n", lab_strerror(err));
        exit(1);
    }
    return a;
}

static inline lab_arena *test_arena(size_t pages, unsigned max_order, size_t wmin, size_t wlow, size_t whigh)
{
    lab_arena_config cfg;
    test_arena_config(&cfg, pages, max_order, wmin, wlow, whigh);
    return test_arena_create(&cfg);
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
