/* Debug detectors: each fires on a deliberate bug and stays silent on
 * correct use.  Poisoning (LAB_ARENA_POISON, always on in debug builds),
 * LAB_ARENA_PROTECT_FREE, LAB_ARENA_GUARD, and ASan's poisoning of free
 * pages in ASan builds.  (Valgrind: tests/progs/, run by its own tests.)
 * Crashes are provoked in forked children; the parent reads their fate and
 * their stderr. */
#include "check.h"
#include "internal.h"   /* fault_points_arm */

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>

#ifdef LAB_TEST_ASAN
#define T_ASAN 1
#endif
/* The ASan tree of the release fast paths does not poison freed pages:
 * there the library behaves as in a release build. */
#if defined(T_ASAN) && defined(LAB_NO_ASAN_PAGE_HOOKS)
#undef T_ASAN
#define T_ASAN_RUNTIME 1
#endif

/* An access the sanitizers do not check, so that the fault under test is
 * the one the allocator arranged (PROT_NONE), not a sanitizer report. */
#if defined(__clang__)
#define NO_SANITIZE __attribute__((noinline, no_sanitize("address", "thread")))
#elif defined(__GNUC__)
#define NO_SANITIZE __attribute__((noinline, no_sanitize_address, no_sanitize_thread))
#endif
static NO_SANITIZE void raw_write(volatile char *p, char v) { *p = v; }
static NO_SANITIZE char raw_read(volatile const char *p) { return *p; }

struct misuse_log {
    int calls;
    int err;
    const void *addr;
    char msg[512];
};

static void record_misuse(void *ctx, int err, const void *addr, const char *msg)
{
    struct misuse_log *log = ctx;
    if (log->calls++ == 0) {
        log->err = err;
        log->addr = addr;
        snprintf(log->msg, sizeof(log->msg), "%s", msg);
    }
}

static lab_arena *arena(size_t pages, unsigned flags)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = pages * LAB_PAGE_SIZE;
    cfg.flags = flags;
    cfg.name = "detect";
    lab_arena *a = NULL;
    int err = lab_arena_create(&cfg, &a);
    if (err) {
        fprintf(stderr, "lab_arena_create: %s\n", lab_strerror(err));
        exit(1);
    }
    return a;
}

/* ---- children ------------------------------------------------------------ */

struct child {
    int status;
    char err[16384];   /* its stderr */
};

/* Run fn in a forked child with stderr to a pipe and SIGSEGV/SIGBUS at their
 * default action (the sanitizers' handlers would turn them into reports). */
static void run_child(void (*fn)(void), struct child *c)
{
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        close(fds[1]);
        alarm(60);
        fn();
        child_exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fds[0], c->err + len, sizeof(c->err) - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof(c->err) - 1)
            break;
    }
    c->err[len] = 0;
    close(fds[0]);
    REQUIRE(waitpid(pid, &c->status, 0) == pid);
}

static void default_fatal_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
}

static int died_of(const struct child *c, int sig) { return WIFSIGNALED(c->status) && WTERMSIG(c->status) == sig; }
static int exited_ok(const struct child *c) { return WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0; }

static void describe(const char *what, const struct child *c)
{
    if (WIFSIGNALED(c->status))
        fprintf(stderr, "  %s: child killed by signal %d (%s)\n", what, WTERMSIG(c->status), strsignal(WTERMSIG(c->status)));
    else
        fprintf(stderr, "  %s: child exited %d\n", what, WEXITSTATUS(c->status));
}

/* ---- (a) poisoning -------------------------------------------------------- */

static void test_poison_reports_a_write_to_a_freed_page(void)
{
#ifdef T_ASAN
    /* ASan itself stops the write to the freed (ASan-poisoned) page. */
    SKIP("an ASan build: the write would be an ASan report (asan_reports_use_after_free_of_a_page)");
#endif
    lab_arena *a = arena(16, LAB_ARENA_POISON);
    struct misuse_log log = { 0 };
    lab_set_misuse_handler(a, record_misuse, &log);
    char *p[4];
    for (int i = 0; i < 4; i++) {
        p[i] = lab_alloc_pages(a, LAB_GFP_KERNEL, 0);
        REQUIRE(p[i]);
        memset(p[i], 'a' + i, LAB_PAGE_SIZE);
    }
    size_t frame = (size_t)(p[2] - (char *)lab_arena_base(a)) / LAB_PAGE_SIZE;
    lab_free_pages(a, p[2], 0);
    p[2][123] = 0x42;                        /* the bug: use after free */
    CHECK_EQ(log.calls, 0);                  /* found on allocation, not before */
    char *q = lab_alloc_pages(a, LAB_GFP_KERNEL, 0);
    CHECK(q == p[2]);                        /* the only free order-0 block */
    CHECK_EQ(log.calls, 1);
    CHECK_EQ(log.err, LAB_EPOISON);
    CHECK(log.addr == p[2] + 123);
    char want_frame[32], want_byte[32];
    snprintf(want_frame, sizeof(want_frame), "frame %zu", frame);
    snprintf(want_byte, sizeof(want_byte), "byte 123");
    fprintf(stderr, "  report: %s\n", log.msg);
    CHECK(strstr(log.msg, want_frame) != NULL);
    CHECK(strstr(log.msg, want_byte) != NULL);
    lab_stats s;
    lab_stats_get(a, &s);
    CHECK_EQ(s.misuse, 1);
    lab_free_pages(a, q, 0);
    for (int i = 0; i < 4; i++)
        if (i != 2)
            lab_free_pages(a, p[i], 0);
    CHECK_EQ(log.calls, 1);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* A zero written over byte 0 of a freed page: the report names byte 0,
 * not the first poison byte after it. */
static void test_poison_names_a_zero_written_at_the_start_of_a_freed_page(void)
{
#ifdef T_ASAN
    SKIP("an ASan build: the write would be an ASan report");
#endif
    lab_arena *a = arena(16, LAB_ARENA_POISON);
    struct misuse_log log = { 0 };
    lab_set_misuse_handler(a, record_misuse, &log);
    char *p = lab_alloc_pages(a, LAB_GFP_KERNEL, 0);
    char *keep = lab_alloc_pages(a, LAB_GFP_KERNEL, 0);   /* p's buddy: p stays order 0 */
    REQUIRE(p && keep);
    memset(p, 5, LAB_PAGE_SIZE);
    lab_free_pages(a, p, 0);
    p[0] = 0;                                /* the bug */
    char *q = lab_alloc_pages(a, LAB_GFP_KERNEL, 0);
    CHECK(q == p);
    CHECK_EQ(log.calls, 1);
    CHECK(log.addr == p);
    fprintf(stderr, "  report: %s\n", log.msg);
    CHECK(strstr(log.msg, "byte 0 ") != NULL);
    CHECK(strstr(log.msg, "holds 0x0, expected 0x6b") != NULL);
    lab_free_pages(a, q, 0);
    lab_free_pages(a, keep, 0);
    lab_arena_destroy(a);
}

/* A stray write into a page never handed out (still zero): the report
 * expects zero there, not the poison pattern. */
static void test_poison_expects_zeros_in_a_page_never_used(void)
{
#ifdef T_ASAN
    SKIP("an ASan build: the write would be an ASan report");
#endif
    lab_arena *a = arena(16, LAB_ARENA_POISON);
    struct misuse_log log = { 0 };
    lab_set_misuse_handler(a, record_misuse, &log);
    char *p = lab_alloc_pages(a, LAB_GFP_KERNEL, 0);     /* frame 0; frame 1 is its free buddy */
    REQUIRE(p);
    p[LAB_PAGE_SIZE + 77] = 0x42;            /* the bug: a write into frame 1 */
    char *q = lab_alloc_pages(a, LAB_GFP_KERNEL, 0);
    CHECK(q == p + LAB_PAGE_SIZE);
    CHECK_EQ(log.calls, 1);
    fprintf(stderr, "  report: %s\n", log.msg);
    CHECK(strstr(log.msg, "frame 1 ") != NULL);
    CHECK(strstr(log.msg, "byte 77 ") != NULL);
    CHECK(strstr(log.msg, "holds 0x42, expected 0x0") != NULL);
    lab_free_pages(a, q, 0);
    lab_free_pages(a, p, 0);
    lab_arena_destroy(a);
}

static void test_poison_is_silent_on_correct_use(void)
{
    lab_arena *a = arena(64, LAB_ARENA_POISON);
    struct misuse_log log = { 0 };
    lab_set_misuse_handler(a, record_misuse, &log);
    for (int round = 0; round < 3; round++) {
        for (unsigned o = 0; o <= 3; o++) {
            char *p = lab_alloc_pages(a, LAB_GFP_KERNEL, o);
            REQUIRE(p);
            memset(p, 0x42 + round, (size_t)LAB_PAGE_SIZE << o);   /* every byte, even 0x6b's neighbours */
            p[0] = 0;                                             /* and a zero at the start */
            lab_free_pages(a, p, o);
            char *q = lab_alloc_pages(a, LAB_GFP_KERNEL, o);      /* the same block back */
            CHECK(q == p);
            q[1] = 1;
            lab_free_pages(a, q, o);
        }
    }
    CHECK_EQ(log.calls, 0);
    lab_stats s;
    lab_stats_get(a, &s);
    CHECK_EQ(s.misuse, 0);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* ---- (b) LAB_ARENA_PROTECT_FREE ------------------------------------------ */

static void child_touches_a_freed_protected_page(void)
{
    default_fatal_signals();
    lab_arena *a = arena(64, LAB_ARENA_PROTECT_FREE);
    char *p = lab_alloc_pages(a, LAB_GFP_KERNEL, 0);
    char *keep = lab_alloc_pages(a, LAB_GFP_KERNEL, 0);
    if (!p || !keep)
        child_exit(3);
    p[0] = 1;
    lab_free_pages(a, p, 0);
    raw_write(p + 10, 2);                    /* the bug: must fault here */
    child_exit(4);
}

static void child_uses_protected_pages_correctly(void)
{
    default_fatal_signals();
    lab_arena *a = arena(64, LAB_ARENA_PROTECT_FREE);
    for (int round = 0; round < 3; round++) {
        for (unsigned o = 0; o <= 3; o++) {
            char *p = lab_alloc_pages(a, LAB_GFP_KERNEL, o);
            if (!p)
                child_exit(3);
            memset(p, 7, (size_t)LAB_PAGE_SIZE << o);
            lab_free_pages(a, p, o);
            char *q = lab_alloc_pages(a, LAB_GFP_KERNEL, o);   /* handed out again: accessible */
            if (!q)
                child_exit(3);
            raw_write(q + ((size_t)LAB_PAGE_SIZE << o) - 1, 1);
            if (raw_read(q) != 7 && raw_read(q) != 0 && raw_read(q) != 0x6b)
                child_exit(5);
            lab_free_pages(a, q, o);
        }
    }
    child_exit(lab_check(a) == 0 ? 0 : 6);
}

static void test_protect_free_faults_on_a_touch_of_a_freed_page(void)
{
    static struct child c;
    run_child(child_touches_a_freed_protected_page, &c);
    describe("touch after free", &c);
    CHECK(died_of(&c, SIGSEGV));
}

static void test_protect_free_is_silent_on_correct_use(void)
{
    static struct child c;
    run_child(child_uses_protected_pages_correctly, &c);
    describe("correct use", &c);
    CHECK(exited_ok(&c));
}

/* ---- (c) LAB_ARENA_GUARD --------------------------------------------------- */

static void child_writes_one_byte_past_a_guarded_block(void)
{
    default_fatal_signals();
    lab_arena *a = arena(256, LAB_ARENA_GUARD);
    char *b = lab_alloc_pages(a, LAB_GFP_KERNEL, 2);
    if (!b)
        child_exit(3);
    memset(b, 1, 4 * LAB_PAGE_SIZE);         /* all of it is fine */
    raw_write(b + 4 * LAB_PAGE_SIZE, 2);     /* the bug: one byte past the end */
    child_exit(4);
}

static void child_writes_the_last_byte_of_a_guarded_block(void)
{
    default_fatal_signals();
    lab_arena *a = arena(256, LAB_ARENA_GUARD);
    char *b = lab_alloc_pages(a, LAB_GFP_KERNEL, 2);
    if (!b)
        child_exit(3);
    raw_write(b + 4 * LAB_PAGE_SIZE - 1, 2);
    child_exit(0);
}

static void child_writes_one_byte_before_a_guarded_block(void)
{
    default_fatal_signals();
    lab_arena *a = arena(256, LAB_ARENA_GUARD);
    char *b = lab_alloc_pages(a, LAB_GFP_KERNEL, 2);
    if (!b)
        child_exit(3);
    raw_write(b, 2);                         /* the first byte is fine */
    raw_write(b - 1, 2);                     /* the bug: one byte before the start */
    child_exit(4);
}

static void test_guard_page_faults_one_byte_past_a_block(void)
{
    static struct child c;
    run_child(child_writes_one_byte_past_a_guarded_block, &c);
    describe("one byte past an order-2 block", &c);
    CHECK(died_of(&c, SIGSEGV));
    run_child(child_writes_one_byte_before_a_guarded_block, &c);
    describe("one byte before an order-2 block", &c);
    CHECK(died_of(&c, SIGSEGV));
    run_child(child_writes_the_last_byte_of_a_guarded_block, &c);
    describe("last byte of an order-2 block", &c);
    CHECK(exited_ok(&c));
}

static void test_guarded_block_is_usable_and_freed_with_its_order(void)
{
    lab_arena *a = arena(256, LAB_ARENA_GUARD);
    struct misuse_log log = { 0 };
    lab_set_misuse_handler(a, record_misuse, &log);
    char *b = lab_alloc_pages(a, LAB_GFP_KERNEL, 2);
    REQUIRE(b);
    CHECK_EQ((size_t)(b - (char *)lab_arena_base(a)) % (4 * LAB_PAGE_SIZE), 0);
    stamp_block(b, 2, 0x6a);
    CHECK(stamp_ok(b, 2, 0x6a));
    lab_stats s;
    lab_stats_get(a, &s);
    CHECK_EQ(s.free_pages, 256 - 16);        /* it costs a block of four times the size */
    lab_free_pages(a, b, 2);
    CHECK_EQ(log.calls, 0);
    lab_stats_get(a, &s);
    CHECK_EQ(s.free_pages, 256);
    CHECK_EQ(s.misuse, 0);
    /* counted as the caller's four pages, out and back */
    uint64_t served = 0;
    for (int i = 0; i < LAB_STEP_COUNT; i++)
        served += s.alloc_by_step[i];
    CHECK_EQ(served, 4);
    CHECK_EQ(s.frees, 4);
    CHECK_EQ(lab_check(a), 0);
    /* the guard page is accessible again once the block is back */
    char *all = lab_alloc_pages(a, LAB_GFP_MEMALLOC, 7);
    REQUIRE(all);
    memset(all, 3, 128 * LAB_PAGE_SIZE);
    lab_free_pages(a, all, 7);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* LAB_ARENA_PROTECT_FREE with LAB_ARENA_GUARD: once a guarded block is
 * back (lab_arena_flush), its guards are free pages like the rest of it,
 * closed: a touch one byte past or before the freed block faults. */
static void child_touches_past_a_freed_guarded_block(void)
{
    default_fatal_signals();
    lab_arena *a = arena(256, LAB_ARENA_PROTECT_FREE | LAB_ARENA_GUARD);
    char *b = lab_alloc_pages(a, LAB_GFP_KERNEL, 1);
    if (!b)
        child_exit(3);
    memset(b, 1, 2 * LAB_PAGE_SIZE);
    lab_free_pages(a, b, 1);
    lab_arena_flush(a);
    raw_write(b + 2 * LAB_PAGE_SIZE, 2);     /* the bug: past the freed block */
    child_exit(4);
}

static void child_touches_before_a_freed_guarded_block(void)
{
    default_fatal_signals();
    lab_arena *a = arena(256, LAB_ARENA_PROTECT_FREE | LAB_ARENA_GUARD);
    char *b = lab_alloc_pages(a, LAB_GFP_KERNEL, 1);
    if (!b)
        child_exit(3);
    lab_free_pages(a, b, 1);
    lab_arena_flush(a);
    raw_write(b - 1, 2);                     /* the bug: before the freed block */
    child_exit(4);
}

/* ... and handed out again, whole, they are open. */
static void child_uses_a_guarded_blocks_pages_again(void)
{
    default_fatal_signals();
    lab_arena *a = arena(256, LAB_ARENA_PROTECT_FREE | LAB_ARENA_GUARD);
    char *b = lab_alloc_pages(a, LAB_GFP_KERNEL, 1);
    if (!b)
        child_exit(3);
    lab_free_pages(a, b, 1);
    lab_arena_flush(a);
    char *all = lab_alloc_pages(a, LAB_GFP_MEMALLOC, 7);
    if (!all)
        child_exit(3);
    memset(all, 3, 128 * LAB_PAGE_SIZE);
    lab_free_pages(a, all, 7);
    child_exit(lab_check(a) == 0 ? 0 : 6);
}

static void test_a_freed_guarded_blocks_guards_stay_closed_with_protect_free(void)
{
    static struct child c;
    run_child(child_touches_past_a_freed_guarded_block, &c);
    describe("one byte past a freed guarded block", &c);
    CHECK(died_of(&c, SIGSEGV));
    run_child(child_touches_before_a_freed_guarded_block, &c);
    describe("one byte before a freed guarded block", &c);
    CHECK(died_of(&c, SIGSEGV));
    run_child(child_uses_a_guarded_blocks_pages_again, &c);
    describe("its pages handed out again", &c);
    CHECK(exited_ok(&c));
}

/* A flush that finds another thread's flush lifting guards waits for it:
 * when lab_arena_flush returns, every guarded block freed before the call
 * is back on the free lists, whoever lifted its guards. */
static void *flush_on_a_thread(void *arg)
{
    lab_arena_flush(arg);
    return NULL;
}

static void test_a_flush_waits_for_the_guards_another_flush_is_lifting(void)
{
    lab_arena *a = arena(8192, LAB_ARENA_GUARD);
    enum { N = 400 };
    static void *b[N];
    int late = 0;
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < N; i++) {
            b[i] = lab_alloc_pages(a, LAB_GFP_KERNEL, 1);   /* guarded: an order-3 block */
            REQUIRE(b[i]);
        }
        for (int i = 0; i < N; i++)
            lab_free_pages(a, b[i], 1);   /* the guards wait for a flush */
        pthread_t t;
        REQUIRE(pthread_create(&t, NULL, flush_on_a_thread, a) == 0);
        struct timespec gap = { 0, 200000 };   /* its 800 mprotect calls under way */
        nanosleep(&gap, NULL);
        lab_arena_flush(a);
        lab_stats s;
        lab_stats_get(a, &s);
        late += s.deferred_pages != 0;
        CHECK_EQ(s.free_pages, 8192);
        REQUIRE(pthread_join(t, NULL) == 0);
    }
    fprintf(stderr, "  %d of 5 flushes returned with blocks still in another's flush\n", late);
    CHECK_EQ(late, 0);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* The report that the OS refused to lift a guard goes to the log hook
 * after the flush, not during it: a hook that takes the program's log
 * lock, while another thread holding that lock calls lab_stats_get (whose
 * flush waits for this one), waited for that thread for ever, and it for
 * the flush. */
static pthread_mutex_t guard_log_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int guard_log_in_hook, guard_log_flushed, guard_log_stats;
static lab_arena *guard_log_arena;

static void log_under_a_lock(void *ctx, const char *msg, size_t len)
{
    (void)ctx;
    atomic_store(&guard_log_in_hook, 1);
    pthread_mutex_lock(&guard_log_lock);
    fwrite(msg, 1, len, stderr);
    pthread_mutex_unlock(&guard_log_lock);
}

static void *flush_with_a_refused_lift(void *arg)
{
    (void)arg;
    lab_arena_flush(guard_log_arena);
    atomic_store(&guard_log_flushed, 1);
    return NULL;
}

static void *stats_under_the_log_lock(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&guard_log_lock);
    for (int i = 0; i < 5000 && !atomic_load(&guard_log_in_hook); i++)
        usleep(1000);
    lab_stats s;
    lab_stats_get(guard_log_arena, &s);
    pthread_mutex_unlock(&guard_log_lock);
    atomic_store(&guard_log_stats, 1);
    return NULL;
}

static void child_flushes_while_its_log_hook_waits(void)
{
    lab_arena *a = guard_log_arena = arena(256, LAB_ARENA_GUARD);
    lab_set_log_hook(a, log_under_a_lock, NULL);
    void *b = lab_alloc_pages(a, LAB_GFP_KERNEL, 1);
    if (!b)
        child_exit(3);
    lab_free_pages(a, b, 1);   /* its guards wait for a flush */
    pthread_t ts, tf;
    if (pthread_create(&ts, NULL, stats_under_the_log_lock, NULL) != 0)
        child_exit(3);
    usleep(50000);   /* the log lock taken */
    fault_points_arm(FP_MPROTECT, 1);   /* the first lift refused: protection off, reported */
    if (pthread_create(&tf, NULL, flush_with_a_refused_lift, NULL) != 0)
        child_exit(3);
    for (int i = 0; i < 5000 && !(atomic_load(&guard_log_flushed) && atomic_load(&guard_log_stats)); i++)
        usleep(1000);
    fault_points_disarm();
    bool done = atomic_load(&guard_log_flushed) && atomic_load(&guard_log_stats);
    fprintf(stderr, "flush %s, lab_stats_get under the log lock %s\n",
            atomic_load(&guard_log_flushed) ? "returned" : "stuck", atomic_load(&guard_log_stats) ? "returned" : "stuck");
    if (!done)
        child_exit(5);
    pthread_join(tf, NULL);
    pthread_join(ts, NULL);
    child_exit(lab_check(a) == 0 ? 0 : 6);
}

static void test_a_log_hook_told_protection_is_off_runs_after_the_flush(void)
{
    static struct child c;
    run_child(child_flushes_while_its_log_hook_waits, &c);
    describe("a flush whose log hook waits for a thread in lab_stats_get", &c);
    fprintf(stderr, "  %s", c.err);
    CHECK(exited_ok(&c));
}

/* ---- (d) ASan ---------------------------------------------------------------- */

#ifdef T_ASAN
static void child_reads_a_freed_page_under_asan(void)
{
    lab_arena *a = arena(64, 0);
    volatile char *p = lab_alloc_pages(a, LAB_GFP_KERNEL, 0);
    if (!p)
        child_exit(3);
    p[0] = 1;
    lab_free_pages(a, (void *)p, 0);
    char c = p[64];                          /* the bug: ASan must stop here */
    child_exit(c == 0x6b ? 4 : 5);
}

static void child_uses_pages_correctly_under_asan(void)
{
    lab_arena *a = arena(64, 0);
    for (unsigned o = 0; o <= 3; o++) {
        volatile char *p = lab_alloc_pages(a, LAB_GFP_KERNEL, o);
        if (!p)
            child_exit(3);
        for (size_t i = 0; i < ((size_t)LAB_PAGE_SIZE << o); i += 512)
            p[i] = (char)i;
        lab_free_pages(a, (void *)p, o);
        p = lab_alloc_pages(a, LAB_GFP_KERNEL, o);
        p[((size_t)LAB_PAGE_SIZE << o) - 1] = 1;
        lab_free_pages(a, (void *)p, o);
    }
    child_exit(0);
}
#endif

static void test_asan_reports_use_after_free_of_a_page(void)
{
#ifdef T_ASAN
    static struct child c;
    run_child(child_reads_a_freed_page_under_asan, &c);
    describe("read after free under ASan", &c);
    CHECK(!exited_ok(&c));
    CHECK(strstr(c.err, "AddressSanitizer") != NULL);
    CHECK(strstr(c.err, "use-after-poison") != NULL);
    if (!strstr(c.err, "use-after-poison"))
        fprintf(stderr, "  child stderr:\n%s\n", c.err);
    run_child(child_uses_pages_correctly_under_asan, &c);
    describe("correct use under ASan", &c);
    CHECK(exited_ok(&c));
    CHECK(strstr(c.err, "AddressSanitizer") == NULL);
#else
    SKIP("not an ASan build");
#endif
}

int main(void)
{
    test_watchdog(120);
    RUN_ALONE(test_poison_reports_a_write_to_a_freed_page);
    RUN_ALONE(test_poison_names_a_zero_written_at_the_start_of_a_freed_page);
    RUN_ALONE(test_poison_expects_zeros_in_a_page_never_used);
    RUN(test_poison_is_silent_on_correct_use);
    RUN(test_protect_free_faults_on_a_touch_of_a_freed_page);
    RUN(test_protect_free_is_silent_on_correct_use);
    RUN(test_guard_page_faults_one_byte_past_a_block);
    RUN(test_guarded_block_is_usable_and_freed_with_its_order);
    RUN(test_a_freed_guarded_blocks_guards_stay_closed_with_protect_free);
    RUN(test_a_flush_waits_for_the_guards_another_flush_is_lifting);
    RUN(test_a_log_hook_told_protection_is_off_runs_after_the_flush);
    RUN_ALONE(test_asan_reports_use_after_free_of_a_page);
    return test_finish();
}
