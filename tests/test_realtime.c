/* Real-time arena flags: PREFAULT (no page fault on the atomic path), MLOCK
 * (locked, or refused with a reason), HUGEPAGES (backing reported; trim
 * gives back whole huge pages only). */
#define _GNU_SOURCE   /* RUSAGE_THREAD */
#include "check.h"
#include "internal.h"   /* fault_points_arm */

#include <errno.h>
#include <linux/capability.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define T_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define T_SANITIZER 1
#endif
#endif

#define MiB (1024ull * 1024ull)

static lab_stats stats(lab_arena *a)
{
    lab_stats s;
    lab_stats_get(a, &s);
    return s;
}

static long minor_faults_of_this_thread(void)
{
    struct rusage ru;
    REQUIRE(getrusage(RUSAGE_THREAD, &ru) == 0);
    return ru.ru_minflt;
}

static int create(size_t bytes, unsigned flags, size_t wmin, lab_arena **out)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = bytes;
    cfg.flags = flags;
    cfg.wmark_min = wmin;
    cfg.wmark_low = wmin;
    cfg.wmark_high = wmin;
    return lab_arena_create(&cfg, out);
}

/* ---- PREFAULT ---------------------------------------------------------- */

#define NPAGES 1000
static void *pages[NPAGES];

/* Allocate NPAGES order-0 pages with LAB_GFP_ATOMIC and write every byte of
 * each; returns the calling thread's minor faults meanwhile. */
static long atomic_alloc_and_touch_faults(lab_arena *a, size_t *got)
{
    *got = 0;
    long f0 = minor_faults_of_this_thread();
    for (size_t i = 0; i < NPAGES; i++) {
        pages[i] = lab_alloc_pages(a, LAB_GFP_ATOMIC, 0);
        if (pages[i])
            memset(pages[i], 0x5a, LAB_PAGE_SIZE);
    }
    long f1 = minor_faults_of_this_thread();
    for (size_t i = 0; i < NPAGES; i++)
        *got += pages[i] != NULL;
    return f1 - f0;
}

static void free_pages_array(lab_arena *a)
{
    for (size_t i = 0; i < NPAGES; i++) {
        lab_free_pages(a, pages[i], 0);
        pages[i] = NULL;
    }
}

/* Run the measured code once on another arena, so that its text, the
 * stack it uses, the page array and getrusage are all faulted in already. */
static void warm_up(void)
{
    volatile char stack[64 * 1024];
    memset((char *)stack, 1, sizeof(stack));
    lab_arena *w = NULL;
    REQUIRE(create(4 * MiB, 0, 0, &w) == 0);
    size_t got;
    (void)atomic_alloc_and_touch_faults(w, &got);
    REQUIRE(got == NPAGES);
    free_pages_array(w);
    (void)atomic_alloc_and_touch_faults(w, &got);
    free_pages_array(w);
    lab_arena_destroy(w);
}

static void test_prefault_arena_serves_atomic_requests_without_page_faults(void)
{
    test_skip_under_emulator("qemu-user drops MAP_POPULATE and MADV_POPULATE_WRITE, and the "
                             "page faults counted are the emulator's");
    lab_arena *a = NULL;
    REQUIRE(create(64 * MiB, LAB_ARENA_PREFAULT, 0, &a) == 0);
    lab_stats s = stats(a);
    CHECK_EQ(s.resident_bytes, 64 * MiB);                   /* every frame committed */
    CHECK_EQ(s.metadata_resident_bytes, s.metadata_bytes);  /* and every descriptor */
    warm_up();
    size_t got;
    long faults = atomic_alloc_and_touch_faults(a, &got);
    CHECK_EQ(got, NPAGES);
    fprintf(stderr, "  PREFAULT: %zu atomic allocations + writes: %ld minor faults\n", got, faults);
#ifndef T_SANITIZER
    CHECK_EQ(faults, 0);
#else
    /* ASan's unpoisoning of a page handed out, and TSan's tracking of every
     * access, write the sanitizer's own shadow memory, which faults on its
     * first touch whatever the arena does. */
    fprintf(stderr, "  note: not asserted under a sanitizer (its shadow memory faults on first touch)\n");
#endif
    free_pages_array(a);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* A room of a PREFAULT arena, and a thread that frees its pages: the
 * freer's lane (16 pages of slots a lap) was committed with the room, so a
 * whole lap of remote frees faults nothing, nor do the owner's
 * allocations that take them back. */
#define LAP_ROUNDS 10   /* of NPAGES: more than a lane's 8192 slots */
struct lap {
    lab_arena *a;
    pthread_barrier_t ready, done;
    long freer_faults;
};

static void *lap_freer(void *arg)
{
    struct lap *l = arg;
    for (int round = 0; round < LAP_ROUNDS; round++) {
        pthread_barrier_wait(&l->ready);
        size_t i = 0;
        if (round == 0)   /* the first free claims this thread's lane: not counted */
            lab_free_pages(l->a, pages[i++], 0);
        long f0 = minor_faults_of_this_thread();
        for (; i < NPAGES; i++)
            lab_free_pages(l->a, pages[i], 0);
        l->freer_faults += minor_faults_of_this_thread() - f0;
        pthread_barrier_wait(&l->done);
    }
    return NULL;
}

static void test_prefault_arena_room_and_its_freer_take_no_page_faults(void)
{
    test_skip_under_emulator("the page faults counted are the emulator's");
    struct lap l = { .freer_faults = 0 };
    REQUIRE(create(64 * MiB, LAB_ARENA_PREFAULT, 0, &l.a) == 0);
    warm_up();
    lab_room_config rc;
    lab_room_config_init(&rc);
    lab_room *r = NULL;
    REQUIRE(lab_room_create(l.a, &rc, &r) == 0);
    REQUIRE(pthread_barrier_init(&l.ready, NULL, 2) == 0 && pthread_barrier_init(&l.done, NULL, 2) == 0);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, lap_freer, &l) == 0);
    long owner_faults = 0;
    for (int round = 0; round < LAP_ROUNDS; round++) {
        long f0 = minor_faults_of_this_thread();
        for (size_t i = 0; i < NPAGES; i++)
            pages[i] = lab_room_alloc(r, LAB_GFP_ATOMIC);
        long f1 = minor_faults_of_this_thread();
        if (round > 0)   /* the first round's refills are the zone's first splits */
            owner_faults += f1 - f0;
        for (size_t i = 0; i < NPAGES; i++)
            REQUIRE(pages[i] != NULL);
        pthread_barrier_wait(&l.ready);
        pthread_barrier_wait(&l.done);
    }
    REQUIRE(pthread_join(t, NULL) == 0);
    fprintf(stderr, "  PREFAULT room: %d remote frees: %ld minor faults on the freer, %ld on the owner\n",
            LAP_ROUNDS * NPAGES, l.freer_faults, owner_faults);
#ifndef T_SANITIZER
    CHECK_EQ(l.freer_faults, 0);
    CHECK_EQ(owner_faults, 0);
#else
    fprintf(stderr, "  note: not asserted under a sanitizer (its shadow memory faults on first touch)\n");
#endif
    pthread_barrier_destroy(&l.ready);
    pthread_barrier_destroy(&l.done);
    lab_room_destroy(r);
    CHECK_EQ(lab_check(l.a), 0);
    lab_arena_destroy(l.a);
}

/* The control: the same loop on a lazy arena does fault, so the measurement
 * above can fail. */
static void test_lazy_arena_faults_on_first_touch(void)
{
    lab_arena *a = NULL;
    REQUIRE(create(64 * MiB, 0, 0, &a) == 0);
    warm_up();
    size_t got;
    long faults = atomic_alloc_and_touch_faults(a, &got);
    CHECK_EQ(got, NPAGES);
    fprintf(stderr, "  lazy: %zu atomic allocations + writes: %ld minor faults\n", got, faults);
    CHECK(faults >= NPAGES / 2);
    free_pages_array(a);
    lab_arena_destroy(a);
}

/* ---- lazy metadata ------------------------------------------------------ */

/* A lazy arena maps its page descriptors and room ids lazily too, but
 * listing a block makes all of the block's resident at once: the
 * allocations that split it later, atomic ones included, write no page of
 * either array for the first time (a page fault, inside the zone's lock). */
static void test_a_listed_blocks_metadata_is_resident_before_it_is_split(void)
{
    lab_arena *a = NULL;
    REQUIRE(create(64 * MiB, 0, 0, &a) == 0);
    const size_t block = (size_t)1 << lab_arena_max_order(a);
    void **p = calloc(block, sizeof(*p));
    REQUIRE(p);
    size_t before = stats(a).metadata_resident_bytes;
    p[0] = lab_alloc_pages(a, LAB_GFP_ATOMIC, 0);   /* lists the first block, and splits it */
    REQUIRE(p[0]);
    size_t listed = stats(a).metadata_resident_bytes;
    /* its descriptors (12 bytes a frame, from the mapping's start) and its
     * room ids (2 bytes a frame, on a page of their own) */
    size_t want = (block * 12 + LAB_PAGE_SIZE - 1) / LAB_PAGE_SIZE * LAB_PAGE_SIZE + LAB_PAGE_SIZE;
    fprintf(stderr, "  lazy metadata: %zu KiB resident once the first block of %zu pages is listed\n",
            (listed - before) >> 10, block);
    for (size_t i = 1; i < block; i++) {
        p[i] = lab_alloc_pages(a, LAB_GFP_ATOMIC, 0);
        CHECK(p[i] != NULL);
    }
#ifndef LAB_DEBUG
    CHECK(listed - before >= want);
    CHECK_EQ(stats(a).metadata_resident_bytes, listed);   /* the whole block split: no page more */
#else
    /* A debug build checks the arena after every operation, reading every
     * descriptor: the kernel maps each page of them (its zero page) on the
     * first such read, and counts it resident. */
    (void)want;
    fprintf(stderr, "  note: not asserted in a debug build (its checks read every descriptor)\n");
#endif
    for (size_t i = 0; i < block; i++)
        lab_free_pages(a, p[i], 0);
    free(p);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
    /* A first request for a whole largest block splits nothing, so every
     * page of that block's metadata but the first is made resident by the
     * commit at listing alone (one touch a page, not one a frame: each must
     * land). */
    REQUIRE(create(64 * MiB, 0, 0, &a) == 0);
    unsigned top = lab_arena_max_order(a);
    before = stats(a).metadata_resident_bytes;
    void *whole = lab_alloc_pages(a, LAB_GFP_NOWAIT, top);
    REQUIRE(whole);
#ifndef LAB_DEBUG
    CHECK(stats(a).metadata_resident_bytes - before >= want);
#endif
    lab_free_pages(a, whole, top);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

/* ---- MLOCK --------------------------------------------------------------- */

#ifndef T_SANITIZER
/* VmLck of this process, from /proc/self/status. */
static size_t vm_locked_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    REQUIRE(f);
    char line[256];
    size_t kib = 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmLck: %zu kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}
#endif

/* lab_arena_create with fd 2 sent to a temporary file; its text into buf. */
static int create_capturing_stderr(size_t bytes, unsigned flags, lab_arena **out, char *buf, size_t cap)
{
    FILE *tmp = tmpfile();
    REQUIRE(tmp);
    fflush(stderr);
    int saved = dup(2);
    REQUIRE(saved >= 0 && dup2(fileno(tmp), 2) == 2);
    int err = create(bytes, flags, 0, out);
    fflush(stderr);
    REQUIRE(dup2(saved, 2) == 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(buf, 1, cap - 1, tmp);
    buf[n] = 0;
    fclose(tmp);
    return err;
}

static void test_mlock_arena_is_locked_or_refused_with_the_limit_and_size(void)
{
    char msg[4096];
    lab_arena *a = NULL;
    int err = create_capturing_stderr(64 * MiB, LAB_ARENA_MLOCK, &a, msg, sizeof(msg));
    if (err == 0) {
        lab_stats s = stats(a);
        fprintf(stderr, "  MLOCK: locked; resident %.1f MiB\n", (double)s.resident_bytes / (double)MiB);
        CHECK_EQ(s.resident_bytes, 64 * MiB);
        CHECK_EQ(s.metadata_resident_bytes, s.metadata_bytes);
#ifndef T_SANITIZER
        /* really locked (sanitizer runtimes turn mlock() into a no-op) */
        size_t locked_kib = vm_locked_kib();
        fprintf(stderr, "  VmLck %zu KiB\n", locked_kib);
        CHECK(locked_kib >= 64 * 1024);
#endif
        void *p = lab_alloc_pages(a, LAB_GFP_ATOMIC, 2);
        CHECK(p != NULL);
        lab_free_pages(a, p, 2);
        lab_arena_destroy(a);
    } else {
        fprintf(stderr, "  MLOCK: refused: %s", msg);
        CHECK_EQ(err, LAB_EMLOCK);
        CHECK(a == NULL);
        CHECK(strstr(msg, "RLIMIT_MEMLOCK") != NULL);
        CHECK(strstr(msg, "67108864") != NULL || strstr(msg, "mlock of 67") != NULL);
    }
}

/* In a child: a memlock limit of `bytes` and no CAP_IPC_LOCK in the
 * effective set, so mlock of more than that fails. */
static void child_limit_memlock(size_t bytes)
{
    struct rlimit rl = { .rlim_cur = bytes, .rlim_max = bytes };
    if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0)
        child_exit(10);
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    if (syscall(SYS_capget, &hdr, data) != 0)
        child_exit(11);
    data[CAP_TO_INDEX(CAP_IPC_LOCK)].effective &= ~CAP_TO_MASK(CAP_IPC_LOCK);
    if (syscall(SYS_capset, &hdr, data) != 0)
        child_exit(12);
    if (syscall(SYS_capget, &hdr, data) != 0 || (data[CAP_TO_INDEX(CAP_IPC_LOCK)].effective & CAP_TO_MASK(CAP_IPC_LOCK)))
        child_exit(13);
}

/* Runs child() in a forked child with its stderr captured into msg (cap
 * bytes, NUL-terminated); returns its wait status. */
static int run_child_capturing_stderr(void (*child)(void), char *msg, size_t cap)
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
        child();
        child_exit(99);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t n;
    while (len < cap - 1 && (n = read(fds[0], msg + len, cap - 1 - len)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        len += (size_t)n;
    }
    msg[len] = 0;
    close(fds[0]);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    return status;
}

/* In a child: a 64 KiB memlock limit and no CAP_IPC_LOCK in the effective
 * set, so mlock must fail; exit status 0 when creation said LAB_EMLOCK. */
static void child_without_memlock(void)
{
    child_limit_memlock(64 * 1024);
    lab_arena *a = NULL;
    int err = create(64 * MiB, LAB_ARENA_MLOCK, 0, &a);
    if (err == 0) {
        lab_arena_destroy(a);
        child_exit(1);
    }
    child_exit(err == LAB_EMLOCK && a == NULL ? 0 : 2);
}

static void test_mlock_refusal_names_rlimit_memlock_and_the_size(void)
{
#ifdef T_SANITIZER
    /* ASan and TSan intercept mlock() as a no-op that returns 0, so no
     * limit can make it fail. */
    SKIP("a sanitizer runtime makes mlock() a no-op that cannot fail");
#endif
    char msg[8192];
    int status = run_child_capturing_stderr(child_without_memlock, msg, sizeof(msg));
    fprintf(stderr, "  child (memlock 64 KiB, no CAP_IPC_LOCK): exit %d, stderr: %s", WIFEXITED(status) ? WEXITSTATUS(status) : -1,
            *msg ? msg : "(empty)\n");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);   /* LAB_EMLOCK */
    CHECK(strstr(msg, "RLIMIT_MEMLOCK") != NULL);
    CHECK(strstr(msg, "65536") != NULL);                   /* the limit */
    /* the size it needed: the 64 MiB arena (plus its descriptors) */
    const char *m = strstr(msg, "mlock of ");
    CHECK(m != NULL);
    if (m) {
        unsigned long long bytes = strtoull(m + strlen("mlock of "), NULL, 10);
        CHECK(bytes >= 64 * MiB && bytes <= 64 * MiB + 64 * MiB / 128);
    }
}

#ifndef T_SANITIZER
/* An arena over caller memory with LAB_ARENA_MLOCK. */
static int create_mlocked_over(void *mem, size_t bytes, lab_arena **a)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = bytes;
    cfg.memory = mem;
    cfg.flags = LAB_ARENA_MLOCK;
    return lab_arena_create(&cfg, a);
}

/* In a child: caller memory, and a memlock limit (no CAP_IPC_LOCK) that
 * holds the region but not its descriptors besides.  Exit status 0 when
 * creation said LAB_EMLOCK and left the caller's region as it was, not
 * locked (VmLck back at 0); 3 when the refused call left it locked. */
static void child_with_a_limit_that_holds_the_region_only(void)
{
    const size_t bytes = 1 * MiB;
    child_limit_memlock(bytes);
    void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED || vm_locked_kib() != 0)
        child_exit(13);
    lab_arena *a = NULL;
    int err = create_mlocked_over(mem, bytes, &a);
    if (err == 0) {
        lab_arena_destroy(a);
        child_exit(1);
    }
    if (err != LAB_EMLOCK || a != NULL)
        child_exit(2);
    size_t locked = vm_locked_kib();
    fprintf(stderr, "VmLck after the refusal: %zu KiB\n", locked);
    child_exit(locked == 0 ? 0 : 3);
}
#endif

static void test_a_refused_mlock_leaves_caller_memory_unlocked(void)
{
#ifdef T_SANITIZER
    SKIP("a sanitizer runtime makes mlock() a no-op that cannot fail");
#else
    char msg[8192];
    int status = run_child_capturing_stderr(child_with_a_limit_that_holds_the_region_only, msg, sizeof(msg));
    fprintf(stderr, "  child (memlock 1 MiB, a 1 MiB region): exit %d, stderr: %s",
            WIFEXITED(status) ? WEXITSTATUS(status) : -1, *msg ? msg : "(empty)\n");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
#endif
}

/* A create refused after the locks (its bookkeeping memory) left caller
 * memory locked, as a refused lock of the descriptors did: what can fail
 * is done before the locks. */
static void test_a_create_refused_for_bookkeeping_leaves_caller_memory_unlocked(void)
{
#ifdef T_SANITIZER
    SKIP("a sanitizer runtime makes mlock() a no-op");
#else
    const size_t bytes = 1 * MiB;
    void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(mem != MAP_FAILED);
    size_t before = vm_locked_kib();
    lab_arena *a = NULL;
    fault_points_arm(FP_META_ALLOC, 2);   /* the arena's struct, then the reclaimer's state */
    int err = create_mlocked_over(mem, bytes, &a);
    fault_points_disarm();
    size_t after = vm_locked_kib();
    fprintf(stderr, "  create: %s; VmLck %zu -> %zu KiB\n", lab_strerror(err), before, after);
    if (err == LAB_EMLOCK) {
        munmap(mem, bytes);
        SKIP("the memlock limit refuses 1 MiB");
    }
    CHECK_EQ(err, LAB_ENOMEM);
    CHECK(a == NULL);
    CHECK_EQ(after, before);
    if (a)
        lab_arena_destroy(a);
    munmap(mem, bytes);
#endif
}

/* ---- HUGEPAGES --------------------------------------------------------- */

static const char *huge_name(int mode)
{
    switch (mode) {
    case LAB_HUGE_EXPLICIT: return "explicit (MAP_HUGETLB)";
    case LAB_HUGE_TRANSPARENT: return "transparent (THP)";
    case LAB_HUGE_REFUSED: return "refused";
    default: return "none";
    }
}

static void test_hugepage_arena_reports_its_backing(void)
{
    lab_arena *a = NULL;
    REQUIRE(create(16 * MiB, LAB_ARENA_HUGEPAGES, 0, &a) == 0);
    lab_stats s = stats(a);
    fprintf(stderr, "  HUGEPAGES: backed by %s huge pages\n", huge_name(s.huge_mode));
    CHECK(s.huge_mode == LAB_HUGE_EXPLICIT || s.huge_mode == LAB_HUGE_TRANSPARENT || s.huge_mode == LAB_HUGE_REFUSED);
    CHECK_EQ((uintptr_t)lab_arena_base(a) % (2 * MiB), 0);  /* huge pages need 2 MiB alignment */
    void *p = lab_alloc_pages(a, LAB_GFP_KERNEL, 9);
    REQUIRE(p);
    memset(p, 0x11, 2 * MiB);
    lab_free_pages(a, p, 9);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
    /* without the flag: none */
    REQUIRE(create(16 * MiB, 0, 0, &a) == 0);
    CHECK_EQ(stats(a).huge_mode, LAB_HUGE_NONE);
    lab_arena_destroy(a);
}

/* Memory the caller supplies is advised for huge pages with the flag only:
 * without it the arena says none, and trims single pages. */
static void test_supplied_memory_uses_huge_pages_only_when_asked(void)
{
    size_t size = 4 * MiB;
    char *mem = aligned_alloc(2 * MiB, size);
    REQUIRE(mem);
    for (int flags = 0; flags <= 1; flags++) {
        lab_arena_config cfg;
        lab_arena_config_init(&cfg);
        cfg.size = size;
        cfg.memory = mem;
        cfg.flags = flags ? LAB_ARENA_HUGEPAGES : 0;
        lab_arena *a = NULL;
        REQUIRE(lab_arena_create(&cfg, &a) == 0);
        int mode = stats(a).huge_mode;
        if (flags)
            CHECK(mode == LAB_HUGE_TRANSPARENT || mode == LAB_HUGE_REFUSED);
        else
            CHECK_EQ(mode, LAB_HUGE_NONE);
        lab_arena_destroy(a);
    }
    free(mem);
}

static void test_hugepage_arena_trims_only_whole_huge_pages(void)
{
    lab_arena *a = NULL;
    REQUIRE(create(16 * MiB, LAB_ARENA_HUGEPAGES, 1, &a) == 0);
    int mode = stats(a).huge_mode;
    if (mode == LAB_HUGE_REFUSED) {
        lab_arena_destroy(a);
        SKIP("the OS refuses huge pages here (neither MAP_HUGETLB nor MADV_HUGEPAGE)");
    }
    /* every page, as sixteen 1 MiB (order 8) blocks */
    void *b[16];
    for (int i = 0; i < 16; i++) {
        b[i] = lab_alloc_pages(a, LAB_GFP_MEMALLOC, 8);
        REQUIRE(b[i]);
        memset(b[i], 0x22, 1 * MiB);
    }
    /* free every other one: each freed block's buddy stays allocated, so
     * only order-8 blocks are free (8 MiB of them) */
    for (int i = 0; i < 16; i += 2)
        lab_free_pages(a, b[i], 8);
    lab_stats s = stats(a);
    CHECK_EQ(s.free_pages, 8 * 256);
    CHECK_EQ(s.free_blocks[8], 8);
    size_t got = lab_arena_trim(a);
    fprintf(stderr, "  8 MiB free in 1 MiB blocks: trim returned %zu bytes\n", got);
    CHECK_EQ(got, 0);
    CHECK_EQ(stats(a).void_pages, 0);
    /* two buddies make one 2 MiB block: exactly that is given back */
    lab_free_pages(a, b[1], 8);
    got = lab_arena_trim(a);
    fprintf(stderr, "  plus one 2 MiB block: trim returned %zu bytes\n", got);
    CHECK_EQ(got, 2 * MiB);
    /* everything free: whole huge pages only, down to the min watermark */
    for (int i = 3; i < 16; i += 2)
        lab_free_pages(a, b[i], 8);
    got = lab_arena_trim(a);
    fprintf(stderr, "  all free: trim returned %zu bytes\n", got);
    CHECK(got > 0);
    CHECK_EQ(got % (2 * MiB), 0);
    s = stats(a);
    CHECK_EQ((s.void_pages * LAB_PAGE_SIZE) % (2 * MiB), 0);
    CHECK_EQ(lab_check(a), 0);
    /* and the huge pages come back */
    void *p = lab_alloc_pages(a, LAB_GFP_KERNEL, 10);
    void *q = lab_alloc_pages(a, LAB_GFP_KERNEL, 10);
    REQUIRE(p && q);
    memset(p, 0x33, 4 * MiB);
    memset(q, 0x44, 4 * MiB);
    lab_free_pages(a, p, 10);
    lab_free_pages(a, q, 10);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}


/* Trim leaves a locked arena alone: the memory is locked so that the atomic
 * path never faults, and the OS refuses to decommit it anyway.  Nothing may
 * be counted as trimmed nor moved to the void, where atomic requests could
 * not reach it. */
static void test_trim_of_a_locked_arena_gives_back_nothing(void)
{
    lab_arena *a = NULL;
    int err = create(16 * MiB, LAB_ARENA_MLOCK, 16, &a);
    if (err) {
        CHECK_EQ(err, LAB_EMLOCK);
        SKIP("MLOCK refused here (%s): no locked arena to trim", lab_strerror(err));
    }
    void *p = lab_alloc_pages(a, LAB_GFP_KERNEL, 3);
    REQUIRE(p);
    lab_free_pages(a, p, 3);
    CHECK_EQ(lab_arena_trim(a), 0);
    lab_stats s = stats(a);
    CHECK_EQ(s.void_pages, 0);
    CHECK_EQ(s.trimmed_pages, 0);
    CHECK_EQ(s.free_pages, s.total_pages);
    CHECK_EQ(s.resident_bytes, 16 * MiB);
    /* every page above the atomic floor is still there for atomic requests */
    size_t got = 0;
    void *q;
    while ((q = lab_alloc_pages(a, LAB_GFP_ATOMIC | LAB_GFP_NOWARN, 0)) != NULL)
        got++;
    CHECK(got >= s.total_pages - 16);
    CHECK_EQ(lab_check(a), 0);
    lab_arena_destroy(a);
}

int main(void)
{
    test_watchdog(120);
    RUN(test_prefault_arena_serves_atomic_requests_without_page_faults);
    RUN(test_prefault_arena_room_and_its_freer_take_no_page_faults);
    RUN(test_lazy_arena_faults_on_first_touch);
    RUN(test_a_listed_blocks_metadata_is_resident_before_it_is_split);
    RUN(test_mlock_arena_is_locked_or_refused_with_the_limit_and_size);
    RUN_ALONE(test_mlock_refusal_names_rlimit_memlock_and_the_size);
    RUN_ALONE(test_a_refused_mlock_leaves_caller_memory_unlocked);
    RUN(test_a_create_refused_for_bookkeeping_leaves_caller_memory_unlocked);
    RUN_ALONE(test_trim_of_a_locked_arena_gives_back_nothing);
    RUN(test_hugepage_arena_reports_its_backing);
    RUN(test_supplied_memory_uses_huge_pages_only_when_asked);
    RUN_ALONE(test_hugepage_arena_trims_only_whole_huge_pages);
    return test_finish();
}
