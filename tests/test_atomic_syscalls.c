/* The promise of atomic context, checked by the kernel: a thread under a
 * seccomp filter that traps every system call runs failing ATOMIC requests
 * (arena and room), frees that let a sleeping blocking request go on, a
 * double free, and guarded-arena allocations and frees.  None of it may make
 * a system call; the reports it owes are written afterwards by a context
 * that may (lab_arena_flush).  A holder of the zone lock that took it as an
 * atomic context does (zone_trylock) lets go of it without a system call
 * even while a blocking context sleeps on it. */
#define _GNU_SOURCE
#include "check.h"
#include "internal.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>

#define PAGES 256

static volatile sig_atomic_t trapped;
static volatile int trapped_nr[16];

static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    if (trapped < 16)
        trapped_nr[trapped] = si->si_syscall;
    trapped++;
}

static void count_trapped_syscalls(void)
{
    struct sigaction sa = { 0 };
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    REQUIRE(sigaction(SIGSYS, &sa, NULL) == 0);
}

/* Every system call but the ones a thread needs to return from the trap
 * handler and to exit raises SIGSYS (and fails with ENOSYS). */
static int trap_all_syscalls(void)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_rt_sigreturn, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit_group, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = sizeof(filter) / sizeof(filter[0]), .filter = filter };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -1;
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);   /* this thread only */
}

struct world {
    lab_arena *a, *guarded;
    lab_room *room;
    void *held[PAGES];
    size_t nheld;
    void *guarded_block;     /* allocated by a blocking request: really guarded */
    int filter_err;
    int counted;
    atomic_int waiter_asleep;
    void *waiter_got;
};

static void *waiter(void *arg)
{
    struct world *w = arg;
    atomic_store(&w->waiter_asleep, 1);
    w->waiter_got = lab_alloc_pages(w->a, LAB_GFP_KERNEL, 0);
    return NULL;
}

static void *atomic_context(void *arg)
{
    struct world *w = arg;
    if (trap_all_syscalls() != 0) {
        w->filter_err = errno;
        return NULL;
    }
    for (int i = 0; i < 20; i++) {
        CHECK(lab_alloc_pages(w->a, LAB_GFP_ATOMIC, 0) == NULL);   /* reports, no NOWARN */
        CHECK(lab_room_alloc(w->room, LAB_GFP_ATOMIC) == NULL);
    }
    /* frees while a blocking request sleeps: its wake is owed, not made */
    for (int i = 0; i < 24; i++)     /* above min: the sleeper may take one */
        lab_free_pages(w->a, w->held[--w->nheld], 0);
    void *twice = w->held[--w->nheld];
    lab_free_pages(w->a, twice, 0);
    lab_free_pages(w->a, twice, 0);          /* misuse: reported later */
    void *b = lab_alloc_pages(w->guarded, LAB_GFP_ATOMIC, 1);
    CHECK(b != NULL);
    lab_free_pages(w->guarded, b, 1);
    lab_free_pages(w->guarded, w->guarded_block, 1);
    w->counted = trapped;
    return NULL;
}

static void test_atomic_context_makes_no_system_call(void)
{
    test_skip_under_emulator("qemu-user implements no seccomp filter (one would trap the "
                             "emulator's own system calls, not only the library's)");
    static struct world w;
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = PAGES * LAB_PAGE_SIZE;
    cfg.wmark_min = 16;
    cfg.wmark_low = 16;
    cfg.wmark_high = 16;
    cfg.wait_timeout_ms = 5000;
    REQUIRE(lab_arena_create(&cfg, &w.a) == 0);
    cfg.flags = LAB_ARENA_GUARD;
    REQUIRE(lab_arena_create(&cfg, &w.guarded) == 0);
    REQUIRE((w.guarded_block = lab_alloc_pages(w.guarded, LAB_GFP_KERNEL, 1)) != NULL);
    lab_room_config rc;
    lab_room_config_init(&rc);
    REQUIRE(lab_room_create(w.a, &rc, &w.room) == 0);
    void *p;
    while ((p = lab_alloc_pages(w.a, LAB_GFP_MEMALLOC | LAB_GFP_NOWARN, 0)) != NULL)
        w.held[w.nheld++] = p;
    REQUIRE(w.nheld == PAGES);

    count_trapped_syscalls();
    pthread_t tw, ta;
    REQUIRE(pthread_create(&tw, NULL, waiter, &w) == 0);
    while (!atomic_load(&w.waiter_asleep))
        sched_yield();
    struct timespec ts = { 0, 50 * 1000000L };
    nanosleep(&ts, NULL);     /* into its futex sleep (a wake made early would go unseen: no harm) */
    /* Everything written to stderr from here on is kept: the background
     * reclaimer may write the deferred reports before the test does. */
    FILE *tmp = tmpfile();
    REQUIRE(tmp);
    fflush(stderr);
    int saved = dup(2);
    REQUIRE(dup2(fileno(tmp), 2) == 2);
    REQUIRE(pthread_create(&ta, NULL, atomic_context, &w) == 0);
    pthread_join(ta, NULL);
    if (w.filter_err) {
        dup2(saved, 2);
        fprintf(stderr, "  seccomp refused: %s\n", strerror(w.filter_err));
        exit(77);
    }
    fprintf(stderr, "  system calls trapped in atomic context: %d", w.counted);
    for (int i = 0; i < w.counted && i < 16; i++)
        fprintf(stderr, " %d", trapped_nr[i]);
    fprintf(stderr, "\n");
    CHECK_EQ(w.counted, 0);
    /* the sleeping request still gets its page: the wake was paid later */
    pthread_join(tw, NULL);
    CHECK(w.waiter_got != NULL);
    lab_free_pages(w.a, w.waiter_got, 0);

    /* The reports the atomic context owed are written by now. */
    lab_arena_flush(w.a);
    REQUIRE(dup2(saved, 2) == 2);
    close(saved);
    rewind(tmp);
    char text[8192];
    size_t n = fread(text, 1, sizeof(text) - 1, tmp);
    text[n] = 0;
    fclose(tmp);
    CHECK(strstr(text, "page allocation failure") != NULL);
    CHECK(strstr(text, "double free") != NULL);
    CHECK(strstr(text, "dropped") != NULL);     /* 10 reports allowed per window, 8 slots */
    fputs(text, stderr);

    while (w.nheld)
        lab_free_pages(w.a, w.held[--w.nheld], 0);
    lab_room_destroy(w.room);
    lab_stats s;
    lab_stats_get(w.a, &s);
    CHECK_EQ(s.free_pages, PAGES);
    CHECK_EQ(s.deferred_pages, 0);
    CHECK_EQ(s.allocated_pages, 0);
    CHECK_EQ(lab_check(w.a), 0);
    lab_stats_get(w.guarded, &s);   /* lifts the deferred guards */
    CHECK_EQ(s.free_pages + s.highatomic_pages, PAGES);   /* the atomic order-1 request kept a block */
    CHECK_EQ(s.deferred_pages, 0);
    CHECK_EQ(lab_check(w.guarded), 0);
    lab_arena_destroy(w.a);
    lab_arena_destroy(w.guarded);
}

/* ---- the zone lock ----------------------------------------------------------
 * Each round: the trapped thread takes the lock as an atomic context does,
 * a blocking context goes to sleep on it, a free arrives during the hold,
 * and the holder lets go (zone_unlock, then zone_unlock_nowake).  The
 * sleeper gets in by its own bounded sleep or the reclaimer's wake. */
struct lock_world {
    lab_arena *a;
    void *page;
    int filter_err;
    int counted;
    atomic_int stage;          /* 1: held, start a sleeper; 2: round over; 0: next */
    atomic_int sleeper_done;
};

static void *lock_sleeper(void *arg)
{
    struct lock_world *w = arg;
    zone_lock(&w->a->zone);
    zone_unlock(&w->a->zone);
    atomic_store(&w->sleeper_done, 1);
    return NULL;
}

static void *atomic_lock_holder(void *arg)
{
    struct lock_world *w = arg;
    struct zone *z = &w->a->zone;
    if (trap_all_syscalls() != 0) {
        w->filter_err = errno;
        atomic_store(&w->stage, -1);
        return NULL;
    }
    int before = trapped;
    for (int round = 0; round < 2; round++) {
        while (!zone_trylock(z))
            plat_cpu_relax();
        atomic_store(&w->stage, 1);
        while (atomic_load(&z->lock.locked) != ZLOCK_SLEEPERS)
            plat_cpu_relax();
        lab_free_pages(w->a, w->page, 0);   /* finds the lock held: deferred, drained below */
        if (round == 0)
            zone_unlock(z);                 /* taken by trylock: no wake, even by this call */
        else
            zone_unlock_nowake(z);
        while (!atomic_load(&w->sleeper_done))
            plat_cpu_relax();
        w->page = lab_alloc_pages(w->a, LAB_GFP_ATOMIC, 0);
        atomic_store(&w->stage, 2);
        while (atomic_load(&w->stage) != 0)
            plat_cpu_relax();
    }
    w->counted = trapped - before;
    return NULL;
}

static void test_atomic_holder_lets_sleepers_in_without_a_system_call(void)
{
    static struct lock_world w;
    w.a = test_arena(PAGES, 4, 0, 0, 0);
    REQUIRE((w.page = lab_alloc_pages(w.a, LAB_GFP_KERNEL, 0)) != NULL);
    count_trapped_syscalls();
    pthread_t th, ts;
    REQUIRE(pthread_create(&th, NULL, atomic_lock_holder, &w) == 0);
    for (int round = 0; round < 2; round++) {
        while (atomic_load(&w.stage) == 0)
            sched_yield();
        if (atomic_load(&w.stage) < 0)
            break;
        REQUIRE(pthread_create(&ts, NULL, lock_sleeper, &w) == 0);
        while (atomic_load(&w.stage) != 2)
            sched_yield();
        pthread_join(ts, NULL);
        atomic_store(&w.sleeper_done, 0);
        atomic_store(&w.stage, 0);
    }
    pthread_join(th, NULL);
    if (w.filter_err) {
        fprintf(stderr, "  seccomp refused: %s\n", strerror(w.filter_err));
        exit(77);
    }
    fprintf(stderr, "  system calls trapped around an atomic holder with a sleeper: %d\n", w.counted);
    CHECK_EQ(w.counted, 0);
    CHECK(w.page != NULL);
    lab_free_pages(w.a, w.page, 0);
    lab_stats s;
    lab_stats_get(w.a, &s);
    CHECK_EQ(s.free_pages, PAGES);
    CHECK_EQ(s.deferred_pages, 0);
    CHECK_EQ(lab_check(w.a), 0);
    lab_arena_destroy(w.a);
}

int main(void)
{
#if defined(LAB_TEST_SLOW)
    /* Sanitizer runtimes make system calls of their own in any thread, and
     * debug builds map memory for their periodic full check. */
    fprintf(stderr, "SKIP: a sanitizer or debug build makes system calls of its own\n");
    return 77;
#endif
    test_watchdog(60);
    RUN(test_atomic_context_makes_no_system_call);
    RUN(test_atomic_holder_lets_sleepers_in_without_a_system_call);
    return test_finish();
}
