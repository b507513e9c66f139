/* The promise of atomic context, checked by the kernel: a thread under a
 * seccomp filter that traps every system call runs failing ATOMIC requests
 * (arena and room), frees that let a sleeping blocking request go on, a
 * double free, and guarded-arena allocations and frees.  None of it may make
 * a system call; the reports it owes are written afterwards by a context
 * that may (lab_arena_flush). */
#define _GNU_SOURCE
#include "check.h"

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

    struct sigaction sa = { 0 };
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    REQUIRE(sigaction(SIGSYS, &sa, NULL) == 0);
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
    return test_finish();
}
