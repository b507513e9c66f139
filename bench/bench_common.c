/*
 * bench_common.c - clocks, pinning, the hand-off ring, the latency
 * histogram, the system-call counter and the pressure cache, shared by the
 * driver and every peer executable.
 */
#include "bench.h"

#include <errno.h>
#include <stddef.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ---- parameters ------------------------------------------------------------ */
void bench_params_default(struct bench_params *bp)
{
    memset(bp, 0, sizeof(*bp));
    bp->pair_ms = 60;
    bp->batch_ms = 60;
    bp->handoff_ms = 250;
    bp->mix_ms = 120;
    bp->lat_ms = 800;
    bp->count_ms = 250;
    bp->pressure_bytes = (size_t)128 << 20;
    bp->mix_slots = 16;
    bp->tsc_per_ns = 0;
    bp->cpu_a = 0;
    bp->cpu_b = 1;
    bp->workloads = WL_ALL;
}

#define PARAM_TABLE(X)                        \
    X("--pair-ms", pair_ms, double)           \
    X("--batch-ms", batch_ms, double)         \
    X("--handoff-ms", handoff_ms, double)     \
    X("--mix-ms", mix_ms, double)             \
    X("--lat-ms", lat_ms, double)             \
    X("--count-ms", count_ms, double)         \
    X("--arena-bytes", arena_bytes, size_t)   \
    X("--pressure-bytes", pressure_bytes, size_t) \
    X("--mix-slots", mix_slots, unsigned)     \
    X("--tsc-per-ns", tsc_per_ns, double)     \
    X("--cpu-a", cpu_a, int)                  \
    X("--cpu-b", cpu_b, int)                  \
    X("--workloads", workloads, unsigned)     \
    X("--verbose", verbose, int)

int bench_params_to_argv(const struct bench_params *bp, char **argv, int max, char *buf, size_t buflen)
{
    int n = 0;
    size_t used = 0;
#define EMIT_ARG(flag, field, type)                                                       \
    if (n + 2 <= max) {                                                                   \
        int w = snprintf(buf + used, buflen - used, "%.17g", (double)bp->field);          \
        if (w < 0 || (size_t)w >= buflen - used)                                          \
            return -1;                                                                    \
        argv[n++] = (char *)(flag);                                                       \
        argv[n++] = buf + used;                                                           \
        used += (size_t)w + 1;                                                            \
    }
    PARAM_TABLE(EMIT_ARG)
#undef EMIT_ARG
    return n;
}

int bench_params_parse(struct bench_params *bp, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        bool known = false;
#define PARSE_ARG(flag, field, type)                          \
        if (!known && strcmp(argv[i], flag) == 0 && i + 1 < argc) { \
            bp->field = (type)strtod(argv[++i], NULL);        \
            known = true;                                     \
        }
        PARAM_TABLE(PARSE_ARG)
#undef PARSE_ARG
        if (!known)
            return -1;
    }
    return 0;
}

static void stdout_num(struct sink *s, const char *m, double v)
{
    (void)s;
    printf("RESULT %s %.17g\n", m, v);
    fflush(stdout);
}
static void stdout_str(struct sink *s, const char *m, const char *v)
{
    (void)s;
    printf("RESULTSTR %s %s\n", m, v);
    fflush(stdout);
}
struct sink stdout_sink = { stdout_num, stdout_str, NULL };

/* ---- clocks -------------------------------------------------------------------- */
uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void sleep_ms(double ms)
{
    struct timespec ts = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)((ms - (double)(time_t)(ms / 1000) * 1000) * 1e6) };
    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

/* TSC ticks per ns against CLOCK_MONOTONIC; the median of three short runs. */
double tsc_calibrate(unsigned ms)
{
    double r[3];
    for (int i = 0; i < 3; i++) {
        uint64_t n0 = now_ns(), t0 = tsc_begin();
        sleep_ms(ms / 3.0);
        uint64_t n1 = now_ns(), t1 = tsc_end();
        r[i] = (double)(t1 - t0) / (double)(n1 - n0);
    }
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            if (r[j] < r[i]) { double t = r[i]; r[i] = r[j]; r[j] = t; }
    return r[1];
}

/* ---- threads --------------------------------------------------------------------- */
void pick_cpus(int *a, int *b)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    *a = 0;
    *b = 0;
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return;
    int found = 0;
    for (int c = 0; c < CPU_SETSIZE && found < 2; c++) {
        if (CPU_ISSET(c, &set)) {
            if (found == 0)
                *a = *b = c;
            else
                *b = c;
            found++;
        }
    }
}

int thread_start_on(pthread_t *t, int cpu, void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
    }
    int e = pthread_create(t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    return e;
}

void spin_barrier_wait(struct spin_barrier *b)
{
    atomic_fetch_add(&b->arrived, 1);
    while (atomic_load(&b->arrived) < b->n)
        cpu_pause();
}

/* ---- ring -------------------------------------------------------------------------- */
struct spsc *spsc_new(size_t cap)
{
    size_t c = 1;
    while (c < cap)
        c <<= 1;
    struct spsc *r = aligned_alloc(64, (sizeof(struct spsc) + c * sizeof(void *) + 63) & ~(size_t)63);
    if (!r)
        die("out of memory for a ring");
    memset(r, 0, sizeof(*r));
    r->mask = c - 1;
    return r;
}

void spsc_free(struct spsc *r)
{
    free(r);
}

/* ---- histogram ------------------------------------------------------------------------ */
const double lat_q[LAT_POINTS] = { 0.5, 0.9, 0.99, 0.999, 0.9999, 0.99999, 1.0 };
const char *const lat_name[LAT_POINTS] = { "p50", "p90", "p99", "p99.9", "p99.99", "p99.999", "max" };

/* The middle of the bucket that holds the q-th sample (the exact max for q = 1). */
double hist_quantile(const struct hist *h, double q)
{
    if (h->n == 0)
        return 0;
    if (q >= 1.0)
        return (double)h->max;
    uint64_t rank = (uint64_t)(q * (double)h->n);
    if (rank >= h->n)
        rank = h->n - 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen > rank) {
            if (i < 128)
                return i;
            unsigned e = 7 + (i - 128) / 64, s = (i - 128) % 64;
            double lo = (double)((64ull + s) << (e - 6));
            double width = (double)(1ull << (e - 6));
            double mid = lo + width / 2;
            return mid > (double)h->max ? (double)h->max : mid;
        }
    }
    return (double)h->max;
}

/* ---- system-call counter --------------------------------------------------------------- */
#define SC_MARKER 0x6c616279726e7468ull   /* "labyrnth" */

static void *sc_supervisor(void *arg)
{
    struct sc_counter *s = arg;
    int fd;
    while ((fd = atomic_load(&s->fd)) == -1) {
        if (atomic_load(&s->stop))
            return NULL;
        sleep_ms(0.05);
    }
    if (fd < 0)
        return NULL;
    struct seccomp_notif_sizes sizes;
    if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) != 0)
        return NULL;
    size_t qn = sizes.seccomp_notif > sizeof(struct seccomp_notif) ? sizes.seccomp_notif : sizeof(struct seccomp_notif);
    size_t rn = sizes.seccomp_notif_resp > sizeof(struct seccomp_notif_resp) ? sizes.seccomp_notif_resp
                                                                             : sizeof(struct seccomp_notif_resp);
    struct seccomp_notif *req = calloc(1, qn);
    struct seccomp_notif_resp *resp = calloc(1, rn);
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, 20);
        if (r == 0) {
            if (atomic_load(&s->stop))
                break;
            continue;
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p.revents & (POLLHUP | POLLERR | POLLNVAL))
            break;
        memset(req, 0, qn);
        if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, req) != 0)
            continue;
        if (!atomic_load_explicit(&s->marked, memory_order_relaxed)) {
            if (req->data.nr == SYS_getpid && req->data.args[0] == SC_MARKER) {
                atomic_store(&s->marked, 1);
            } else {
                s->counted++;
                s->by_nr[req->data.nr < 512 ? req->data.nr : 511]++;
            }
        }
        memset(resp, 0, rn);
        resp->id = req->id;
        resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, resp);
    }
    free(req);
    free(resp);
    return NULL;
}

int sc_start(struct sc_counter *s, int cpu)
{
    memset(s, 0, sizeof(*s));
    atomic_store(&s->fd, -1);
    return thread_start_on(&s->thr, cpu, sc_supervisor, s);
}

int sc_install(struct sc_counter *s)
{
    return sc_install_except(s, NULL, 0);
}

int sc_install_except(struct sc_counter *s, const int *allowed, unsigned n)
{
    /* load the call's number, let the allowed ones through, notify the rest */
    struct sock_filter filter[2 + SC_MAX_ALLOWED + 2];
    unsigned k = 0;
    if (n > SC_MAX_ALLOWED) {
        s->err = EINVAL;
        atomic_store(&s->fd, -2);
        return -1;
    }
    filter[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (unsigned i = 0; i < n; i++)   /* equal: jump over the rest to ALLOW */
        filter[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)allowed[i], n - i, 0);
    filter[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF);
    filter[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = { .len = (unsigned short)k, .filter = filter };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        s->err = errno;
        atomic_store(&s->fd, -2);
        return -1;
    }
    long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    if (fd < 0) {
        s->err = errno;
        atomic_store(&s->fd, -2);
        return -1;
    }
    atomic_store(&s->fd, (int)fd);
    return 0;
}

void sc_mark_end(void)
{
    syscall(SYS_getpid, SC_MARKER);
}

void sc_finish(struct sc_counter *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->thr, NULL);
    int fd = atomic_load(&s->fd);
    if (fd >= 0)
        close(fd);
}

static const char *syscall_name(unsigned nr)
{
    switch (nr) {
    case SYS_read: return "read";
    case SYS_write: return "write";
    case SYS_close: return "close";
    case SYS_mmap: return "mmap";
    case SYS_mprotect: return "mprotect";
    case SYS_munmap: return "munmap";
    case SYS_brk: return "brk";
    case SYS_rt_sigprocmask: return "rt_sigprocmask";
    case SYS_sched_yield: return "sched_yield";
    case SYS_mremap: return "mremap";
    case SYS_madvise: return "madvise";
    case SYS_getpid: return "getpid";
    case SYS_gettid: return "gettid";
    case SYS_futex: return "futex";
    case SYS_clock_gettime: return "clock_gettime";
    case SYS_clock_nanosleep: return "clock_nanosleep";
    case SYS_nanosleep: return "nanosleep";
    case SYS_getrandom: return "getrandom";
    default: return NULL;
    }
}

void sc_describe(const struct sc_counter *s, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = 0;
    bool shown[512] = { false };
    for (int k = 0; k < 4; k++) {
        unsigned best = 512;
        for (unsigned i = 0; i < 512; i++)
            if (s->by_nr[i] && !shown[i] && (best == 512 || s->by_nr[i] > s->by_nr[best]))
                best = i;
        if (best == 512)
            break;
        shown[best] = true;
        const char *nm = syscall_name(best);
        char tmp[32];
        if (!nm) {
            snprintf(tmp, sizeof(tmp), "nr%u", best);
            nm = tmp;
        }
        int w = snprintf(buf + used, len - used, "%s%s:%u", used ? "," : "", nm, s->by_nr[best]);
        if (w < 0 || (size_t)w >= len - used)
            break;
        used += (size_t)w;
    }
    if (!used)
        snprintf(buf, len, "none");
}

/* ---- pressure cache ------------------------------------------------------------------------ */
int bg_cache_init(struct bg_cache *c, size_t cap_bytes, void *be, void (*free_fn)(void *, void *, unsigned))
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    c->cap_entries = cap_bytes / BENCH_PAGE + 1;
    c->e = malloc(c->cap_entries * sizeof(*c->e));
    c->cap_bytes = cap_bytes;
    c->be = be;
    c->free_fn = free_fn;
    return c->e ? 0 : -1;
}

static void bg_cache_drop_oldest_locked(struct bg_cache *c)
{
    struct bg_entry e = c->e[c->head];
    c->head = (c->head + 1) % c->cap_entries;
    c->n--;
    c->bytes -= (size_t)BENCH_PAGE << e.order;
    c->free_fn(c->be, e.p, e.order);
}

void bg_cache_fini(struct bg_cache *c)
{
    pthread_mutex_lock(&c->lock);
    while (c->n)
        bg_cache_drop_oldest_locked(c);
    pthread_mutex_unlock(&c->lock);
    free(c->e);
    pthread_mutex_destroy(&c->lock);
}

void bg_cache_push(struct bg_cache *c, void *p, unsigned order)
{
    size_t add = (size_t)BENCH_PAGE << order;
    pthread_mutex_lock(&c->lock);
    while (c->n && (c->n == c->cap_entries || c->bytes + add > c->cap_bytes))
        bg_cache_drop_oldest_locked(c);
    c->e[(c->head + c->n) % c->cap_entries] = (struct bg_entry){ p, order };
    c->n++;
    c->bytes += add;
    pthread_mutex_unlock(&c->lock);
}

size_t bg_cache_shrink(struct bg_cache *c, size_t pages)
{
    size_t freed = 0;
    pthread_mutex_lock(&c->lock);
    while (freed < pages && c->n) {
        freed += (size_t)1 << c->e[c->head].order;
        bg_cache_drop_oldest_locked(c);
    }
    pthread_mutex_unlock(&c->lock);
    atomic_fetch_add(&c->shrunk_pages, freed);
    return freed;
}

size_t bg_cache_pages(struct bg_cache *c)
{
    pthread_mutex_lock(&c->lock);
    size_t n = c->bytes / BENCH_PAGE;
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* ---- misc ----------------------------------------------------------------------------------- */
size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}
