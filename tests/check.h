/*
 * check.h - the assertion header every test uses.  A failed CHECK prints the
 * expression, file and line, and makes the test exit non-zero at the end (or
 * at once with REQUIRE).  Tests are plain CTest executables: one behaviour
 * per function, named after the behaviour, run by RUN().
 */
#ifndef LAB_TEST_CHECK_H
#define LAB_TEST_CHECK_H

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "labyrinth.h"

/* LAB_TEST_SLOW: a sanitizer, debug or coverage (-O0, atomic counters)
 * build, where every operation costs 5-50x more; tests scale their counts
 * down there (and say so). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(LAB_DEBUG) || defined(LAB_COVERAGE)
#define LAB_TEST_SLOW 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define LAB_TEST_SLOW 1
#endif
#endif

/* LAB_TEST_TSAN: 1 when ThreadSanitizer is on (gcc and clang say so
 * differently; its runtime has threads of its own), else 0. */
#if defined(__SANITIZE_THREAD__)
#define LAB_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LAB_TEST_TSAN 1
#endif
#endif
#ifndef LAB_TEST_TSAN
#define LAB_TEST_TSAN 0
#endif

/* LAB_TEST_ASAN: AddressSanitizer is on (it owns freed pages' contents). */
#if defined(__SANITIZE_ADDRESS__)
#define LAB_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LAB_TEST_ASAN 1
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

/* Behaviours.  RUN(fn) runs fn in the test's normal run.  RUN_ALONE(fn) is
 * for a behaviour that needs something the machine or the build may lack
 * (huge pages, a working mlock, ASan): it runs only when LAB_TEST_ONLY
 * names it, and tests/CMakeLists.txt registers it as a CTest test of its
 * own (<test>.<fn>), so that CTest can report it SKIPPED.  Inside a
 * behaviour, SKIP("why") ends it as skipped; a test whose every behaviour
 * skipped exits with TEST_SKIP_CODE, which CTest reports as SKIPPED. */
#define TEST_SKIP_CODE 77
static int test_skipped_now, test_runs, test_skips;
/* LAB_TEST_ONLY=fn runs that one; LAB_TEST_EXCEPT=fn1,fn2 runs all but
 * those (tests/CMakeLists.txt gives some a CTest entry of their own). */
static inline int test_selected(const char *fn, int alone)
{
    const char *only = getenv("LAB_TEST_ONLY"), *except = getenv("LAB_TEST_EXCEPT");
    size_t n = strlen(fn);
    if (only && *only)
        return strcmp(only, fn) == 0;
    for (const char *e = except; e && *e; e += strcspn(e, ",") + (e[strcspn(e, ",")] == ',')) {
        if (strncmp(e, fn, n) == 0 && (e[n] == ',' || e[n] == 0))
            return 0;
    }
    return !alone;
}
#define RUN_IF(fn, alone) do { if (test_selected(#fn, alone)) { int _before = check_failures; \
    test_skipped_now = 0; test_runs++; fn(); test_skips += test_skipped_now; \
    fprintf(stderr, "%s %s\n", check_failures != _before ? "FAIL" : test_skipped_now ? "skip" : "ok  ", #fn); } \
    } while (0)
#define RUN(fn) RUN_IF(fn, 0)
#define RUN_ALONE(fn) RUN_IF(fn, 1)
#define SKIP(...) do { fprintf(stderr, "  SKIPPED: " __VA_ARGS__); fputc('\n', stderr); \
    test_skipped_now = 1; return; } while (0)

/* Forked children leave with child_exit, not _exit: in a coverage build
 * (LAB_COVERAGE) their gcov counters are written first, which _exit would
 * skip.  A child that dies of SIGABRT (a misuse report that aborts) writes
 * them from the signal handler installed at fork. */
#ifdef LAB_COVERAGE
#include <pthread.h>
void __gcov_dump(void);
static inline void child_exit(int code)
{
    __gcov_dump();
    _exit(code);
}
static void coverage_dump_and_die(int sig)
{
    __gcov_dump();
    signal(sig, SIG_DFL);
    raise(sig);
}
static void coverage_child_at_fork(void) { signal(SIGABRT, coverage_dump_and_die); }
__attribute__((constructor)) static void coverage_register_fork(void)
{
    pthread_atfork(NULL, NULL, coverage_child_at_fork);
}
#else
#define child_exit(code) _exit(code)
#endif

/* Randomized tests take their seed from LAB_TEST_SEED, else from the clock,
 * and print it, so that any failure can be replayed. */
static inline uint64_t test_seed(void)
{
    const char *env = getenv("LAB_TEST_SEED");
    uint64_t seed = env && *env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
    fprintf(stderr, "seed %" PRIu64 " (replay with LAB_TEST_SEED=%" PRIu64 ")\n", seed, seed);
    return seed;
}

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

/* Monotonic milliseconds, and a sleep that sleeps the whole time (a signal
 * does not cut it short). */
static inline double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static inline void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A test that hangs is a failure, never a hung CI. */
static inline void test_watchdog(unsigned seconds) { alarm(seconds); }

static inline int test_finish(void)
{
    if (test_runs == 0) {   /* LAB_TEST_ONLY / LAB_TEST_EXCEPT named nothing that exists */
        fprintf(stderr, "no test function ran (LAB_TEST_ONLY=%s)\n", getenv("LAB_TEST_ONLY") ? getenv("LAB_TEST_ONLY") : "");
        return 1;
    }
    fprintf(stderr, "%d checks, %d failed\n", check_count, check_failures);
    if (check_failures)
        return 1;
    return test_skips == test_runs ? TEST_SKIP_CODE : 0;
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

/* A room the test expects to be created (high 0: the default, 4 * batch),
 * taking back every remote free as soon as its stock runs dry. */
static inline lab_room *test_room(lab_arena *a, size_t reserve, size_t batch, size_t high)
{
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.flags = LAB_ROOM_TAKE_ALL;
    rc.reserve = reserve;
    rc.batch = batch;
    rc.high = high ? high : 4 * batch;
    lab_room *r = NULL;
    int err = lab_room_create(a, &rc, &r);
    if (err) {
        fprintf(stderr, "lab_room_create: %s\n", lab_strerror(err));
        exit(1);
    }
    return r;
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
