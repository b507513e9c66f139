/*
 * driver.c - labyrinth-bench: Labyrinth and its peers side by side, in one run.
 *
 * Every round runs, in this order and close together in time:
 *   - in this process: the floor (a bare stack of pages), the floor with its
 *     page operations as real calls, and Labyrinth;
 *   - each peer in its own process (bench-peer-<name>, next to this binary);
 *   - workload 6 (growth), Labyrinth only.
 * Each number reported is the median of the rounds, and ratios are taken
 * between medians of the same run.  Then: instructions per pair from
 * callgrind, the table on stdout (and results/bench.txt), results/bench.csv,
 * and charts with gnuplot.
 *
 *   labyrinth-bench [--quick | --full] [--rounds N] [--out DIR] [--peers a,b]
 *                   [--only 1,2,3,4,5,6] [--no-callgrind] [--no-charts]
 *                   [--verbose] [--list]
 */
#include "bench.h"
#include "labyrinth.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern const struct backend backend_floor, backend_floor_call, backend_labyrinth;

#if __has_include("bench_config.h")
#include "bench_config.h"       /* BENCH_UNBUILT, written by CMake */
#endif
#ifndef BENCH_UNBUILT
#define BENCH_UNBUILT ""
#endif

/* ---- peers -------------------------------------------------------------------- */
struct peer {
    const char *name;
    const char *label;
    const struct backend *inproc;   /* NULL: a bench-peer-<name> executable */
    bool available;
    char why[PATH_MAX + 256];
    char version[64];
    char exe[PATH_MAX + 32];
};

static struct peer peers[] = {
    { "floor", "floor: bare stack, pre-touched pages", &backend_floor, false, "", "", "" },
    { "floor-call", "floor, page ops as real calls", &backend_floor_call, false, "", "", "" },
    { "labyrinth", "Labyrinth room (ATOMIC) / arena", &backend_labyrinth, false, "", "", "" },
    { "dpdk", "DPDK rte_mempool cache 512 / rte_malloc", NULL, false, "", "", "" },
    { "tcmalloc", "tcmalloc_minimal aligned_alloc", NULL, false, "", "", "" },
    { "glibc", "glibc aligned_alloc", NULL, false, "", "", "" },
    { "jemalloc", "jemalloc aligned_alloc", NULL, false, "", "", "" },
    { "mimalloc", "mimalloc mi_malloc_aligned", NULL, false, "", "", "" },
    { "mmap", "mmap/munmap", NULL, false, "", "", "" },
};
#define NR_PEERS (sizeof(peers) / sizeof(peers[0]))

static struct peer *peer_by_name(const char *n)
{
    for (size_t i = 0; i < NR_PEERS; i++)
        if (strcmp(peers[i].name, n) == 0)
            return &peers[i];
    return NULL;
}

/* ---- results: every number of every round ------------------------------------------ */
#define MAX_ROUNDS 32
struct series {
    char who[32];
    char metric[48];
    double v[MAX_ROUNDS];
    int n;
    char str[192];
};
static struct series *tab;
static size_t ntab, captab;

static struct series *series_get(const char *who, const char *metric, bool create)
{
    for (size_t i = 0; i < ntab; i++)
        if (strcmp(tab[i].who, who) == 0 && strcmp(tab[i].metric, metric) == 0)
            return &tab[i];
    if (!create)
        return NULL;
    if (ntab == captab) {
        captab = captab ? captab * 2 : 256;
        tab = realloc(tab, captab * sizeof(*tab));
        if (!tab)
            die("out of memory");
    }
    struct series *s = &tab[ntab++];
    memset(s, 0, sizeof(*s));
    snprintf(s->who, sizeof(s->who), "%s", who);
    snprintf(s->metric, sizeof(s->metric), "%s", metric);
    return s;
}

static void put(const char *who, const char *metric, double v)
{
    struct series *s = series_get(who, metric, true);
    if (s->n < MAX_ROUNDS)
        s->v[s->n++] = v;
}

/* "name:count,name:count" lists (which system calls) are summed over the
 * rounds; any other text keeps its last value. */
static void add_name_counts(char *acc, size_t len, const char *v)
{
    char names[16][32];
    unsigned long counts[16];
    int n = 0;
    for (const char *p = acc; *p && n < 16;) {   /* what is there */
        int used = 0;
        if (sscanf(p, "%31[^:]:%lu%n", names[n], &counts[n], &used) != 2)
            break;
        n++;
        p += used;
        p += *p == ',';
    }
    for (const char *p = v; *p;) {               /* plus this round's */
        char nm[32];
        unsigned long c;
        int used = 0;
        if (sscanf(p, "%31[^:]:%lu%n", nm, &c, &used) != 2)
            break;
        int k = 0;
        while (k < n && strcmp(names[k], nm) != 0)
            k++;
        if (k == n && n < 16) {
            snprintf(names[n], sizeof(names[n]), "%s", nm);
            counts[n++] = 0;
        }
        if (k < n)
            counts[k] += c;
        p += used;
        p += *p == ',';
    }
    size_t off = 0;
    acc[0] = 0;
    for (int i = 0; i < n; i++) {   /* largest first */
        int best = i;
        for (int j = i + 1; j < n; j++)
            if (counts[j] > counts[best])
                best = j;
        char tn[32];
        unsigned long tc = counts[i];
        memcpy(tn, names[i], sizeof(tn));
        memcpy(names[i], names[best], sizeof(tn));
        counts[i] = counts[best];
        memcpy(names[best], tn, sizeof(tn));
        counts[best] = tc;
        int w = snprintf(acc + off, len - off, "%s%s:%lu", off ? "," : "", names[i], counts[i]);
        if (w < 0 || (size_t)w >= len - off)
            break;
        off += (size_t)w;
    }
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static void put_str(const char *who, const char *metric, const char *v)
{
    struct series *s = series_get(who, metric, true);
    bool names = ends_with(metric, ".syscall_names");
    if (names && strchr(v, ':') && !strchr(v, '('))
        add_name_counts(s->str, sizeof(s->str), v);
    else if (!names || !s->str[0])
        snprintf(s->str, sizeof(s->str), "%s", v);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of the rounds (NAN if none); *lo, *hi: the extremes. */
static double med3(const char *who, const char *metric, double *lo, double *hi)
{
    struct series *s = series_get(who, metric, false);
    if (!s || s->n == 0) {
        if (lo) *lo = NAN;
        if (hi) *hi = NAN;
        return NAN;
    }
    double v[MAX_ROUNDS];
    memcpy(v, s->v, (size_t)s->n * sizeof(double));
    qsort(v, (size_t)s->n, sizeof(double), cmp_double);
    if (lo) *lo = v[0];
    if (hi) *hi = v[s->n - 1];
    return s->n % 2 ? v[s->n / 2] : (v[s->n / 2 - 1] + v[s->n / 2]) / 2;
}
static double med(const char *who, const char *metric) { return med3(who, metric, NULL, NULL); }
static const char *str_of(const char *who, const char *metric)
{
    struct series *s = series_get(who, metric, false);
    return s && s->str[0] ? s->str : NULL;
}

struct store_ctx { const char *who; };
static void store_num(struct sink *s, const char *m, double v) { put(((struct store_ctx *)s->ctx)->who, m, v); }
static void store_str(struct sink *s, const char *m, const char *v) { put_str(((struct store_ctx *)s->ctx)->who, m, v); }

/* ---- output: stdout and results/bench.txt --------------------------------------------- */
static FILE *txt;
static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (txt) {
        va_start(ap, fmt);
        vfprintf(txt, fmt, ap);
        va_end(ap);
    }
}

/* ---- options ----------------------------------------------------------------------------- */
static struct {
    int rounds;
    const char *outdir;
    const char *peers;       /* comma list, NULL = all */
    unsigned only;           /* WL_* mask */
    bool callgrind, charts, verbose, list;
    const char *mode;
} opt = { 5, "results", NULL, WL_ALL, true, true, false, false, "default" };

static void usage(void)
{
    fprintf(stderr,
            "usage: labyrinth-bench [--quick | --full] [--rounds N] [--out DIR] [--peers a,b,...]\n"
            "                       [--only 1,2,3,4,5,6] [--no-callgrind] [--no-charts] [--verbose] [--list]\n"
            "  default: 5 rounds, about 3 minutes; --quick: 3 short rounds, about 50 s;\n"
            "  --full: 9 long rounds, about 11 minutes.  Results go to DIR (default ./results).\n");
    exit(2);
}

static bool peer_selected(const char *name)
{
    if (!opt.peers || strcmp(name, "floor") == 0 || strcmp(name, "labyrinth") == 0)
        return true;
    size_t n = strlen(name);
    for (const char *p = opt.peers; (p = strstr(p, name)) != NULL; p += n)
        if ((p == opt.peers || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
            return true;
    return false;
}

static void load_average(char *buf, size_t len)
{
    snprintf(buf, len, "?");
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f)
        return;
    double a, b, c;
    if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
        snprintf(buf, len, "%.2f %.2f %.2f", a, b, c);
    fclose(f);
}

/* ---- machine --------------------------------------------------------------------------------- */
static void machine_line(char *buf, size_t len)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned long long mem_kib = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "MemTotal: %llu kB", &mem_kib) == 1)
                break;
        fclose(f);
    }
    char os[128] = "Linux";
    f = fopen("/etc/os-release", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof(line), f)) {
            if (strncmp(line, "PRETTY_NAME=", 12) == 0) {
                char *v = line + 12;
                v += *v == '"';
                v[strcspn(v, "\"\n")] = 0;
                snprintf(os, sizeof(os), "%s", v);
            }
        }
        fclose(f);
    }
    /* The processor: the same code ranks differently against its peers on
     * different microarchitectures (bench/README.md), so the figures say
     * which one they came from.  A VM may name it vaguely ("AMD EPYC");
     * family and model then still tell the generation. */
    char cpu[96] = "cpu unknown";
    f = fopen("/proc/cpuinfo", "r");
    if (f) {
        /* x86: model name, cpu family, model; arm64 names none of them,
         * only the designer (CPU implementer) and the core (CPU part) */
        char line[256], name[64] = "", impl[16] = "", part[16] = "";
        int family = -1, model = -1;
        while (fgets(line, sizeof(line), f) && (name[0] == 0 || family < 0 || model < 0) &&
               (impl[0] == 0 || part[0] == 0)) {
            if (name[0] == 0 && sscanf(line, "model name : %63[^\n]", name) == 1)
                continue;
            if (family < 0 && sscanf(line, "cpu family : %d", &family) == 1)
                continue;
            if (impl[0] == 0 && sscanf(line, "CPU implementer : %15s", impl) == 1)
                continue;
            if (part[0] == 0 && sscanf(line, "CPU part : %15s", part) == 1)
                continue;
            if (model < 0)
                (void)sscanf(line, "model : %d", &model);
        }
        fclose(f);
        if (name[0])
            snprintf(cpu, sizeof(cpu), "%s (family %d, model %d)", name, family, model);
        else if (impl[0] && part[0])
            snprintf(cpu, sizeof(cpu), "CPU implementer %s, part %s", impl, part);
    }
    struct utsname u;
    uname(&u);
    snprintf(buf, len, "%s, %ld CPUs, %.1f GiB, %s, kernel %s", cpu, cpus, (double)mem_kib / 1048576.0, os,
             u.release);
}

/* The library's revision, so that figures can be tied to the code they
 * measured: "abc1234" or "abc1234+dirty" (uncommitted changes in src/). */
static void source_revision(char *buf, size_t len)
{
    snprintf(buf, len, "unknown");
#ifdef BENCH_SOURCE_DIR
    char cmd[PATH_MAX + 128];
    snprintf(cmd, sizeof(cmd), "git -C '%s' rev-parse --short HEAD 2>/dev/null", BENCH_SOURCE_DIR);
    FILE *f = popen(cmd, "r");
    if (!f)
        return;
    char rev[64] = "";
    if (fgets(rev, sizeof(rev), f))
        rev[strcspn(rev, "\n")] = 0;
    pclose(f);
    if (!rev[0])
        return;
    snprintf(cmd, sizeof(cmd), "git -C '%s' status --porcelain -- src include 2>/dev/null", BENCH_SOURCE_DIR);
    f = popen(cmd, "r");
    bool dirty = false;
    char line[256];
    if (f) {
        while (fgets(line, sizeof(line), f))
            dirty = true;
        pclose(f);
    }
    snprintf(buf, len, "%s%s", rev, dirty ? "+dirty (uncommitted changes in src/ or include/)" : "");
#endif
}

/* ---- peer processes -------------------------------------------------------------------------- */
static char self_dir[PATH_MAX];

static void find_self_dir(void)
{
    ssize_t n = readlink("/proc/self/exe", self_dir, sizeof(self_dir) - 1);
    if (n <= 0)
        die("readlink /proc/self/exe: %s", strerror(errno));
    self_dir[n] = 0;
    char *slash = strrchr(self_dir, '/');
    if (slash)
        *slash = 0;
}

/* Why a peer was not built (from CMake: "name=reason|name=reason|"). */
static bool unbuilt_reason(const char *name, char *why, size_t len)
{
    const char *list = BENCH_UNBUILT;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, '|');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        if (l > n && strncmp(p, name, n) == 0 && p[n] == '=') {
            snprintf(why, len, "unavailable: not built: %.*s", (int)(l - n - 1), p + n + 1);
            return true;
        }
        p += l + (end ? 1 : 0);
    }
    return false;
}

static void discover_peers(void)
{
    for (size_t i = 0; i < NR_PEERS; i++) {
        struct peer *p = &peers[i];
        if (p->inproc) {
            p->available = true;
            p->inproc->version(p->version, sizeof(p->version));
            continue;
        }
        snprintf(p->exe, sizeof(p->exe), "%s/bench-peer-%s", self_dir, p->name);
        if (access(p->exe, X_OK) == 0) {
            p->available = true;
        } else if (!unbuilt_reason(p->name, p->why, sizeof(p->why))) {
            snprintf(p->why, sizeof(p->why), "unavailable: not built: %s is missing", p->exe);
        }
    }
}

static char logdir[PATH_MAX];

/* One round of one peer: its RESULT lines go into the table.  A peer that
 * fails says why, and is not run again. */
static void run_peer_process(struct peer *p, const struct bench_params *bp)
{
    char *argv[64], buf[2048];
    argv[0] = p->exe;
    int n = bench_params_to_argv(bp, argv + 1, 60, buf, sizeof(buf));
    if (n < 0)
        die("arguments too long");
    argv[n + 1] = NULL;
    int fds[2];
    if (pipe(fds) != 0)
        die("pipe: %s", strerror(errno));
    char logpath[PATH_MAX + 64];
    snprintf(logpath, sizeof(logpath), "%s/%s.log", logdir, p->name);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        int lfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (lfd >= 0) {
            dup2(lfd, 2);
            close(lfd);
        }
        execv(p->exe, argv);
        printf("UNAVAILABLE cannot execute %s: %s\n", p->exe, strerror(errno));
        fflush(stdout);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char *line = NULL;
    size_t cap = 0;
    char unavailable[PATH_MAX + 256] = "";
    bool done = false;
    while (getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\n")] = 0;
        char m[64];
        double v;
        int off = 0;
        if (sscanf(line, "RESULT %63s %lf", m, &v) == 2) {
            put(p->name, m, v);
        } else if (sscanf(line, "RESULTSTR %63s %n", m, &off) == 1 && off > 0) {
            put_str(p->name, m, line + off);
        } else if (strncmp(line, "INFO version ", 13) == 0) {
            snprintf(p->version, sizeof(p->version), "%s", line + 13);
        } else if (strncmp(line, "UNAVAILABLE ", 12) == 0) {
            snprintf(unavailable, sizeof(unavailable), "%s", line + 12);
        } else if (strcmp(line, "DONE") == 0) {
            done = true;
        } else if (opt.verbose) {
            fprintf(stderr, "  [%s] %s\n", p->name, line);
        }
    }
    free(line);
    fclose(f);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (unavailable[0]) {
        p->available = false;
        snprintf(p->why, sizeof(p->why), "unavailable: %s", unavailable);
    } else if (!done || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        p->available = false;
        if (WIFSIGNALED(status))
            snprintf(p->why, sizeof(p->why), "unavailable: failed, killed by signal %d (see %s)", WTERMSIG(status), logpath);
        else
            snprintf(p->why, sizeof(p->why), "unavailable: failed, exit status %d (see %s)", WEXITSTATUS(status), logpath);
    }
}

/* ---- workload 6: growth ------------------------------------------------------------------------ */
static const size_t growth_sizes[] = { (size_t)16 << 20, (size_t)256 << 20, (size_t)4 << 30, (size_t)64 << 30 };
#define NR_GROWTH (sizeof(growth_sizes) / sizeof(growth_sizes[0]))

static void size_name(size_t bytes, char *buf, size_t len)
{
    if (bytes >= ((size_t)1 << 30))
        snprintf(buf, len, "%zuGiB", bytes >> 30);
    else
        snprintf(buf, len, "%zuMiB", bytes >> 20);
}

/* Bytes of anonymous mappings other than the brk heap. */
static size_t anon_mapped_bytes(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return 0;
    char line[512];
    size_t total = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi, off, inode;
        char perms[8], dev[16];
        int n = 0;
        if (sscanf(line, "%lx-%lx %7s %lx %15s %lu %n", &lo, &hi, perms, &off, dev, &inode, &n) < 6)
            continue;
        const char *path = line + n;
        if (inode != 0 || strncmp(path, "[heap]", 6) == 0 || strncmp(path, "[stack", 6) == 0 ||
            strncmp(path, "[v", 2) == 0)
            continue;
        total += hi - lo;
    }
    fclose(f);
    return total;
}

static void run_growth(const struct bench_params *bp)
{
    for (size_t i = 0; i < NR_GROWTH; i++) {
        size_t size = growth_sizes[i];
        char who[32], sz[16];
        size_name(size, sz, sizeof(sz));
        snprintf(who, sizeof(who), "growth-%s", sz);

        lab_arena_config cfg;
        lab_arena_config_init(&cfg);
        cfg.size = size;
        lab_arena *a;
        size_t anon0 = anon_mapped_bytes();
        struct mallinfo2 mi0 = mallinfo2();
        size_t rss0 = rss_bytes();
        uint64_t t0 = now_ns();
        int err = lab_arena_create(&cfg, &a);
        uint64_t t1 = now_ns();
        if (err) {
            put_str(who, "error", lab_strerror(err));
            continue;
        }
        size_t rss1 = rss_bytes();
        struct mallinfo2 mi1 = mallinfo2();
        size_t anon1 = anon_mapped_bytes();
        double pages = (double)(size / BENCH_PAGE);
        double mapped_meta = (double)anon1 - (double)anon0 - (double)size;
        double heap_meta = (double)mi1.uordblks - (double)mi0.uordblks;
        put(who, "create_us", (double)(t1 - t0) / 1e3);
        put(who, "rss_kib", ((double)rss1 - (double)rss0) / 1024.0);
        put(who, "desc_bpp", mapped_meta / pages);
        put(who, "meta_bpp", (mapped_meta + heap_meta) / pages);
        put(who, "fixed_kib", heap_meta / 1024.0);
        lab_arena_destroy(a);

        struct bench_params g = *bp;
        g.arena_bytes = size;
        g.workloads = WL_PAIR | WL_MIX;
        struct store_ctx sc = { who };
        struct sink s = { store_num, store_str, &sc };
        backend_labyrinth.run(&g, &s);
    }
}

/* ---- callgrind ----------------------------------------------------------------------------------- */
static bool which(const char *prog, char *path, size_t len)
{
    const char *env = getenv("PATH");
    if (!env)
        return false;
    char *dup = strdup(env), *save = NULL;
    for (char *d = strtok_r(dup, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(path, len, "%s/%s", d, prog);
        if (access(path, X_OK) == 0) {
            free(dup);
            return true;
        }
    }
    free(dup);
    return false;
}

static int run_quiet(char *const argv[])
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Total Ir of a callgrind output file ("summary:" or "totals:" line). */
static double callgrind_total(const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return NAN;
    char line[512];
    double v = NAN;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long x;
        if (sscanf(line, "summary: %llu", &x) == 1 || sscanf(line, "totals: %llu", &x) == 1)
            v = (double)x;
    }
    fclose(f);
    return v;
}

/* Inclusive Ir of the library's page hooks in a callgrind file.  Under any
 * valgrind tool the library turns on its memcheck hooks (RUNNING_ON_VALGRIND),
 * which a release build without valgrind never runs: their cost is taken
 * out of the figure (and reported). */
static double callgrind_hooks(const char *file)
{
    char ca[PATH_MAX];
    if (!which("callgrind_annotate", ca, sizeof(ca)))
        return NAN;
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof(cmd), "'%s' --inclusive=yes '%s' 2>/dev/null", ca, file);
    FILE *f = popen(cmd, "r");
    if (!f)
        return NAN;
    char line[1024];
    double sum = 0;
    while (fgets(line, sizeof(line), f)) {
        if ((!strstr(line, ":page_hook_alloc ") && !strstr(line, ":page_hook_free ")) || strstr(line, "=>"))
            continue;   /* the function's own total line, not a call site */
        char digits[64];
        size_t k = 0;
        const char *q = line;
        while (*q == ' ')
            q++;
        for (; *q && *q != ' ' && k + 1 < sizeof(digits); q++)
            if (*q >= '0' && *q <= '9')
                digits[k++] = *q;
        digits[k] = 0;
        if (k)
            sum += strtod(digits, NULL);
    }
    pclose(f);
    return sum;
}

static char callgrind_note[PATH_MAX + 128];

/* callgrind-room's modes, what each measures, in report order. */
static const char *const cg_modes[] = { "room", "room1", "room2", "room3", "bulk", "remote", "remote_bulk", "remote_abulk", "refill", "zone" };
static const char *const cg_what[] = {
    "order-0 room: lab_room_alloc(ATOMIC) + lab_room_free",
    "order-1 room block: lab_room_alloc_pages + lab_room_free_pages",
    "order-2 room block: the same",
    "order-3 room block: the same",
    "bulk: lab_room_alloc_bulk + lab_room_free_bulk of 32, per page",
    "hand-off path, one thread: lab_room_alloc + lab_free_pages",
    "the same, freed with lab_free_pages_bulk of 32",
    "the same, allocated with lab_room_alloc_bulk of 32",
    "refill: 64 pairs, one refill of 32 and one drain",
    "arena order 0: lab_alloc_pages(NOWAIT) + lab_free_pages",
};
#define NR_CG_MODES (sizeof(cg_modes) / sizeof(cg_modes[0]))
_Static_assert(sizeof(cg_what) / sizeof(cg_what[0]) == NR_CG_MODES, "one line of text per mode");

static void run_callgrind(void)
{
    char vg[PATH_MAX], prog[PATH_MAX + 32];
    if (!which("valgrind", vg, sizeof(vg))) {
        snprintf(callgrind_note, sizeof(callgrind_note), "skipped: valgrind not found in PATH");
        return;
    }
    snprintf(prog, sizeof(prog), "%s/callgrind-room", self_dir);
    if (access(prog, X_OK) != 0) {
        snprintf(callgrind_note, sizeof(callgrind_note), "skipped: %s not built", prog);
        return;
    }
    /* Both multiples of 32 (bulk), and of as many digits: parsing N costs
     * the same in both runs, so the difference is the pairs' alone (20000
     * and 220000 left 20 instructions of atol in it). */
    const long n1 = 100000, n2 = 300000;
    for (size_t m = 0; m < NR_CG_MODES; m++) {
        double ir[2], hooks[2];
        for (int k = 0; k < 2; k++) {
            char file[PATH_MAX + 64], outarg[PATH_MAX + 96], nstr[32];
            snprintf(file, sizeof(file), "%s/callgrind.%s.%ld.out", logdir, cg_modes[m], k ? n2 : n1);
            snprintf(outarg, sizeof(outarg), "--callgrind-out-file=%s", file);
            snprintf(nstr, sizeof(nstr), "%ld", k ? n2 : n1);
            char *argv[] = { vg, "--tool=callgrind", outarg, prog, (char *)cg_modes[m], nstr, NULL };
            int rc = run_quiet(argv);
            ir[k] = rc == 0 ? callgrind_total(file) : NAN;
            hooks[k] = rc == 0 ? callgrind_hooks(file) : NAN;
        }
        char metric[48];
        if (!isnan(ir[0]) && !isnan(ir[1])) {
            double d = (double)(n2 - n1);
            snprintf(metric, sizeof(metric), "ir_per_pair.%s.as_run", cg_modes[m]);
            put("callgrind", metric, (ir[1] - ir[0]) / d);
            if (!isnan(hooks[0]) && !isnan(hooks[1])) {
                snprintf(metric, sizeof(metric), "ir_per_pair.%s.hooks", cg_modes[m]);
                put("callgrind", metric, (hooks[1] - hooks[0]) / d);
                snprintf(metric, sizeof(metric), "ir_per_pair.%s", cg_modes[m]);
                put("callgrind", metric, (ir[1] - hooks[1] - ir[0] + hooks[0]) / d);
            }
        } else
            snprintf(callgrind_note, sizeof(callgrind_note), "valgrind run failed (see %s)", logdir);
    }
}

/* ---- formatting ----------------------------------------------------------------------------------- */
static void fmt_num(char *buf, size_t len, double v)
{
    if (isnan(v))
        snprintf(buf, len, "-");
    else if (fabs(v) >= 1e9)
        snprintf(buf, len, "%.2fG", v / 1e9);
    else if (fabs(v) >= 1e6)
        snprintf(buf, len, "%.2fM", v / 1e6);
    else if (fabs(v) >= 100000)
        snprintf(buf, len, "%.0fk", v / 1e3);
    else if (fabs(v) >= 100)
        snprintf(buf, len, "%.0f", v);
    else if (fabs(v) >= 10)
        snprintf(buf, len, "%.1f", v);
    else
        snprintf(buf, len, "%.2f", v);
}

static void fmt_ratio(char *buf, size_t len, double v)
{
    if (isnan(v) || isinf(v))
        snprintf(buf, len, "-");
    else if (v >= 100)
        snprintf(buf, len, "%.0fx", v);
    else if (v >= 10)
        snprintf(buf, len, "%.1fx", v);
    else
        snprintf(buf, len, "%.2fx", v);
}

static const char *peer_label(const struct peer *p, char *buf, size_t len)
{
    if (p->version[0] && strcmp(p->version, "-") != 0)
        snprintf(buf, len, "%s %s", p->name, p->version);
    else
        snprintf(buf, len, "%s", p->name);
    return buf;
}

/* One table of one metric: value, ratio to Labyrinth, ratio to the floor, spread. */
static void table_simple(const char *title, const char *metric, const char *unit, double scale, bool higher_better,
                         const char *fails_metric)
{
    out("\n%s\n", title);
    out("  %-22s %12s %10s %10s %16s  %s\n", "peer", unit, "x Lab", "x floor", "rounds min..max", "notes");
    double lab = med("labyrinth", metric), flo = med("floor", metric);
    for (size_t i = 0; i < NR_PEERS; i++) {
        struct peer *p = &peers[i];
        char name[96];
        peer_label(p, name, sizeof(name));
        if (!peer_selected(p->name))
            continue;
        double lo, hi, v = med3(p->name, metric, &lo, &hi);
        char wl[8];
        snprintf(wl, sizeof(wl), "%.*s", (int)strcspn(metric, "."), metric);
        char errm[32];
        snprintf(errm, sizeof(errm), "%s.error", wl);
        if (isnan(v)) {
            if (p->inproc && !(p->inproc->workloads & (1u << (wl[1] - '1'))))
                continue;   /* this floor variant does not run this workload */
            const char *e = str_of(p->name, errm);
            out("  %-22s %s\n", name, e ? e : (p->why[0] ? p->why : "unavailable: no result"));
            continue;
        }
        char sv[16], sl[16], sf[16], slo[16], shi[16], range[40];
        fmt_num(sv, sizeof(sv), v * scale);
        fmt_ratio(sl, sizeof(sl), v / lab);
        fmt_ratio(sf, sizeof(sf), v / flo);
        fmt_num(slo, sizeof(slo), lo * scale);
        fmt_num(shi, sizeof(shi), hi * scale);
        snprintf(range, sizeof(range), "%s..%s", slo, shi);
        char notes[PATH_MAX + 512] = "";
        if (fails_metric) {
            double f = med(p->name, fails_metric);
            if (f > 0)
                snprintf(notes, sizeof(notes), "failed allocations: %.0f", f);
        }
        if (!p->available && p->why[0]) {
            size_t l = strlen(notes);
            snprintf(notes + l, sizeof(notes) - l, "%s(then %s)", l ? "; " : "", p->why);
        }
        out("  %-22s %12s %10s %10s %16s  %s\n", name, sv, sl, sf, range, notes);
    }
    (void)higher_better;
}

/* Does this peer run the bulk variants?  In this process: its backend says
 * so; a peer process: it reported a bulk metric. */
static bool peer_has_bulk(const struct peer *p, const char *bulk_metric)
{
    if (p->inproc)
        return (p->inproc->workloads & WL_BULK_CALLS) != 0;
    return !isnan(med(p->name, bulk_metric));
}

/* Two variants of one workload side by side, each with its ratios to
 * Labyrinth's and the floor's medians of the same variant and its spread.
 * A variant that needs bulk calls shows "no bulk call" for a peer without
 * them. */
struct variant { const char *metric, *label, *fails; bool bulk; };

static void table_pair(const char *title, const char *unit, const struct variant v2[2])
{
    out("\n%s\n", title);
    out("  %-22s", "");
    for (int k = 0; k < 2; k++)
        out(" | %-44.44s", v2[k].label);
    out("\n  %-22s", "peer");
    for (int k = 0; k < 2; k++)
        out(" | %9s %7s %7s %18s", unit, "x Lab", "x floor", "rounds min..max");
    out("  notes\n");
    char wl[8];
    snprintf(wl, sizeof(wl), "%.*s", (int)strcspn(v2[0].metric, "."), v2[0].metric);
    for (size_t i = 0; i < NR_PEERS; i++) {
        struct peer *p = &peers[i];
        if (!peer_selected(p->name))
            continue;
        if (p->inproc && !(p->inproc->workloads & (1u << (wl[1] - '1'))))
            continue;   /* this floor variant does not run this workload */
        char name[96];
        peer_label(p, name, sizeof(name));
        bool any = false;
        for (int k = 0; k < 2; k++)
            any |= !isnan(med(p->name, v2[k].metric));
        if (!any && v2[0].bulk && v2[1].bulk && p->available && !peer_has_bulk(p, v2[0].metric))
            continue;   /* listed once under the table */
        if (!any) {
            char errm[32];
            snprintf(errm, sizeof(errm), "%.*s.error", (int)strcspn(v2[0].metric, "."), v2[0].metric);
            const char *e = str_of(p->name, errm);
            out("  %-22s %s\n", name, e ? e : (p->why[0] ? p->why : "unavailable: no result"));
            continue;
        }
        char notes[PATH_MAX + 512] = "";
        out("  %-22s", name);
        for (int k = 0; k < 2; k++) {
            const struct variant *v = &v2[k];
            double lo, hi, x = med3(p->name, v->metric, &lo, &hi);
            if (isnan(x)) {
                out(" | %-44s", v->bulk && !peer_has_bulk(p, v->metric) ? "no bulk call" : "no result");
                continue;
            }
            char sv[16], sl[16], sf[16], slo[16], shi[16], range[40];
            fmt_num(sv, sizeof(sv), x);
            fmt_ratio(sl, sizeof(sl), x / med("labyrinth", v->metric));
            fmt_ratio(sf, sizeof(sf), x / med("floor", v->metric));
            fmt_num(slo, sizeof(slo), lo);
            fmt_num(shi, sizeof(shi), hi);
            snprintf(range, sizeof(range), "%s..%s", slo, shi);
            out(" | %9s %7s %7s %18s", sv, sl, sf, range);
            double f = v->fails ? med(p->name, v->fails) : NAN;
            if (f > 0) {
                size_t l = strlen(notes);
                snprintf(notes + l, sizeof(notes) - l, "%s%s: %.0f failed", l ? "; " : "", k ? "right" : "left", f);
            }
            /* Labyrinth's producer: how many pages one take-back of remote
             * frees (step 2) brought, on average */
            char sm[64], rm[64], zm[64];
            int wl_len = (int)strcspn(v->metric, ".");
            snprintf(sm, sizeof(sm), "%.*s.lab_step_room", wl_len, v->metric);
            snprintf(rm, sizeof(rm), "%.*s.lab_step_room_remote", wl_len, v->metric);
            snprintf(zm, sizeof(zm), "%.*s.lab_step_zone", wl_len, v->metric);
            double st = med(p->name, sm), re = med(p->name, rm), zo = med(p->name, zm);
            if (re > 0) {
                size_t l = strlen(notes);
                snprintf(notes + l, sizeof(notes) - l, "%s%s: a take-back per %.0f pages", l ? "; " : "",
                         k ? "right" : "left", (st + re + (zo > 0 ? zo : 0)) / re);
            }
            /* W3: page faults in the measured window (first touches of
             * memory committed lazily) */
            char fm[64];
            snprintf(fm, sizeof(fm), "%.*s.faults", wl_len, v->metric);
            double nflt = med(p->name, fm);
            if (nflt > 0) {
                size_t l = strlen(notes);
                snprintf(notes + l, sizeof(notes) - l, "%s%s: %.0f page faults in the window", l ? "; " : "",
                         k ? "right" : "left", nflt);
            }
            /* W3: which side waited on the ring (the slower side waits less) */
            char wf[64], we[64];
            snprintf(wf, sizeof(wf), "%.*s.waits_full", wl_len, v->metric);
            snprintf(we, sizeof(we), "%.*s.waits_empty", wl_len, v->metric);
            double nf = med(p->name, wf), ne = med(p->name, we);
            if (!isnan(nf) && !isnan(ne)) {
                size_t l = strlen(notes);
                snprintf(notes + l, sizeof(notes) - l, "%s%s: ring full/empty %.0f/%.0f a 1k pages", l ? "; " : "",
                         k ? "right" : "left", nf, ne);
            }
        }
        if (!p->available && p->why[0]) {
            size_t l = strlen(notes);
            snprintf(notes + l, sizeof(notes) - l, "%s(then %s)", l ? "; " : "", p->why);
        }
        out("  %s\n", notes);
    }
}

/* Workload 5 with one consumer style: metrics <w>.p50 ... */
/* Labyrinth's W5 by the step that served each allocation: only a tree
 * configured with -DLAB_BENCH_STEPS=ON has them (be_labyrinth.c). */
static void table_steps(void)
{
    static const char *const pts[] = { "p50", "p99", "p99.9", "p99.99", "max" };
    bool any = false;
    char m[64];
    for (int b = 0; b < 2; b++) {
        const char *w = b ? "w5b" : "w5s";
        for (int k = 0; k < LAB_STEP_COUNT; k++) {
            snprintf(m, sizeof(m), "%s.step.%s.n", w, lab_strstep(k));
            double n = med("labyrinth", m);
            if (isnan(n) || n == 0)
                continue;
            if (!any) {
                out("\nW5 Labyrinth by the step that served each allocation (a -DLAB_BENCH_STEPS=ON tree:\n"
                    "    lab_room_alloc_result, slower than lab_room_alloc, in every single-page Labyrinth figure of this run)\n");
                out("  %-5s %-14s %10s %7s %7s %7s %8s %8s\n", "style", "step", "allocs", "p50", "p99", "p99.9", "p99.99",
                    "max");
                any = true;
            }
            out("  %-5s %-14s %10.0f", w, lab_strstep(k), n);
            for (size_t i = 0; i < sizeof(pts) / sizeof(pts[0]); i++) {
                snprintf(m, sizeof(m), "%s.step.%s.%s", w, lab_strstep(k), pts[i]);
                double v = med("labyrinth", m);
                char num[16];
                fmt_num(num, sizeof(num), v);
                out(" %*s", i < 3 ? 7 : 8, num);
            }
            out("\n");
        }
    }
    if (any)
        out("  (allocs: the median over the rounds, 0 included; percentiles: medians over the rounds the step\n"
            "   served any in; a step's p99.99 of a few hundred allocations is its max)\n");
}

static void table_latency(const char *w, const char *title, bool bulk)
{
    char m[48];
#define LM(suffix) (snprintf(m, sizeof(m), "%s." suffix, w), m)
    out("\n%s\n", title);
    out("  %-22s %7s %7s %7s %8s %8s %9s %7s %7s %7s %7s  %-10s %s\n", "peer", "p50", "p99", "p99.9", "p99.99", "max",
        "99.99xLab", "xfloor", "failed", "bg MB/s", "preempt", "syscalls", "(per alloc; which)");
    double lab = med("labyrinth", LM("p99.99")), flo = med("floor", LM("p99.99"));
    char nobulk[256] = "";
    for (size_t i = 0; i < NR_PEERS; i++) {
        struct peer *p = &peers[i];
        if (!peer_selected(p->name) || (p->inproc && !(p->inproc->workloads & WL_LATENCY)))
            continue;
        char name[96];
        peer_label(p, name, sizeof(name));
        if (isnan(med(p->name, LM("p50")))) {
            if (bulk && p->available && !peer_has_bulk(p, LM("p50"))) {
                size_t l = strlen(nobulk);
                snprintf(nobulk + l, sizeof(nobulk) - l, "%s%s", l ? ", " : "", p->name);
                continue;
            }
            const char *e = str_of(p->name, LM("error"));
            out("  %-22s %s\n", name, e ? e : (p->why[0] ? p->why : "unavailable: no result"));
            continue;
        }
        char c[7][16];
        const char *pts[] = { "p50", "p99", "p99.9", "p99.99", "max" };
        for (int k = 0; k < 5; k++) {
            snprintf(m, sizeof(m), "%s.%s", w, pts[k]);
            fmt_num(c[k], sizeof(c[k]), med(p->name, m));
        }
        double v = med(p->name, LM("p99.99"));
        fmt_ratio(c[5], sizeof(c[5]), v / lab);
        fmt_ratio(c[6], sizeof(c[6]), v / flo);
        double allocs = med(p->name, LM("allocs")), fails = med(p->name, LM("fails"));
        char failed[24];
        if (fails > 0)
            snprintf(failed, sizeof(failed), "%.2g%%", 100.0 * fails / allocs);
        else
            snprintf(failed, sizeof(failed), "0");
        char sys[48];
        double sc = med(p->name, LM("syscalls")), ca = med(p->name, LM("count_allocs"));
        const char *names = str_of(p->name, LM("syscall_names"));
        if (isnan(sc))
            snprintf(sys, sizeof(sys), "n/a");
        else if (sc == 0)
            snprintf(sys, sizeof(sys), "0");
        else
            snprintf(sys, sizeof(sys), "%.0f (%.2g)", sc, sc / ca);
        char bgr[16], pre[16];
        fmt_num(bgr, sizeof(bgr), med(p->name, LM("bg_mib_s")));
        fmt_num(pre, sizeof(pre), med(p->name, LM("preempted")));
        out("  %-22s %7s %7s %7s %8s %8s %9s %7s %7s %7s %7s  %-10s %s\n", name, c[0], c[1], c[2], c[3], c[4], c[5],
            c[6], failed, bgr, pre, sys, names && strcmp(names, "none") ? names : "");
    }
    if (nobulk[0])
        out("  (no bulk call: %s)\n", nobulk);
#undef LM
}

static void table_growth(void)
{
    out("\nW6  growth: Labyrinth arenas of 16 MiB .. 64 GiB (lazy, MAP_NORESERVE)\n");
    out("  %-10s %11s %13s %12s %12s %10s %10s %10s\n", "arena", "create us", "RSS after KiB", "desc B/page",
        "all meta B/p", "fixed KiB", "W1 ns", "W4 ns");
    for (size_t i = 0; i < NR_GROWTH; i++) {
        char who[32], sz[16];
        size_name(growth_sizes[i], sz, sizeof(sz));
        snprintf(who, sizeof(who), "growth-%s", sz);
        const char *e = str_of(who, "error");
        if (e) {
            out("  %-10s create failed: %s\n", sz, e);
            continue;
        }
        char c[7][16];
        fmt_num(c[0], sizeof(c[0]), med(who, "create_us"));
        fmt_num(c[1], sizeof(c[1]), med(who, "rss_kib"));
        fmt_num(c[2], sizeof(c[2]), med(who, "desc_bpp"));
        fmt_num(c[3], sizeof(c[3]), med(who, "meta_bpp"));
        fmt_num(c[4], sizeof(c[4]), med(who, "fixed_kib"));
        fmt_num(c[5], sizeof(c[5]), med(who, "w1.ns"));
        fmt_num(c[6], sizeof(c[6]), med(who, "w4.ns"));
        out("  %-10s %11s %13s %12s %12s %10s %10s %10s\n", sz, c[0], c[1], c[2], c[3], c[4], c[5], c[6]);
    }
    out("  (desc: the descriptor mapping per page; all meta: plus the arena's fixed heap struct, whose\n"
        "   size is the 'fixed' column; both virtual: the descriptors of pages never used are never touched)\n");
}

/* ---- targets ---------------------------------------------------------------------------------------- */
static int targets_met, targets_total;

static void target(bool known, bool met, const char *what, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void target(bool known, bool met, const char *what, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    targets_total++;
    targets_met += known && met;
    out("  %-8s %-52s %s\n", !known ? "NO DATA" : met ? "met" : "NOT MET", what, buf);
}

/* The lowest median of `metric` over the peers that are not floors or Labyrinth. */
static double best_peer(const char *metric, bool lowest, const char **who)
{
    double best = NAN;
    *who = "-";
    for (size_t i = 0; i < NR_PEERS; i++) {
        if (peers[i].inproc)
            continue;
        double v = med(peers[i].name, metric);
        if (isnan(v))
            continue;
        if (isnan(best) || (lowest ? v < best : v > best)) {
            best = v;
            *who = peers[i].name;
        }
    }
    return best;
}

/* " (not settled)" when the rounds' range of a's metric, times scale, and
 * that of b's overlap; "" when they do not, or when either is missing.
 * Not settled, it adds the ratio a * scale / b of each round, paired: the
 * sides of one round ran within seconds of each other, so a slow phase of
 * the machine, which can spread one side's rounds over 3x, moves both
 * sides of a round alike (the verdict still goes by the ranges). */
static const char *settled(const char *a, const char *ma, double scale, const char *b, const char *mb)
{
    static char buf[96];
    double alo, ahi, blo, bhi;
    med3(a, ma, &alo, &ahi);
    med3(b, mb, &blo, &bhi);
    if (isnan(alo) || isnan(blo))
        return "";
    if (!(alo * scale <= bhi && blo <= ahi * scale))
        return "";
    const struct series *sa = series_get(a, ma, false), *sb = series_get(b, mb, false);
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; sa->n == sb->n && i < sa->n; i++) {
        double r = sa->v[i] * scale / sb->v[i];
        lo = r < lo ? r : lo;
        hi = r > hi ? r : hi;
    }
    if (sa->n != sb->n || !isfinite(lo) || !isfinite(hi))
        return " (not settled)";
    snprintf(buf, sizeof(buf), " (not settled; by round %.2f..%.2fx)", lo, hi);
    return buf;
}

/* "; the floor fails it too (...)" when the floor, a bare array with no
 * allocator at all, misses the bound Labyrinth is held to in this run: such a
 * target weighs the peer's layout (objects not page aligned) against pages,
 * whose first lines all share one set of each private cache, more than it
 * weighs the allocators.  "" otherwise.  below: the bound is met by being
 * below it; the floor's figure is printed times scale, then unit. */
static const char *floor_too(const char *metric, bool below, double bound, double scale, const char *unit)
{
    static char buf[64];
    double f = med("floor", metric);
    if (isnan(f) || isnan(bound) || (below ? f < bound : f >= bound))
        return "";
    snprintf(buf, sizeof(buf), "; the floor fails it too (%.2f%s)", f * scale, unit);
    return buf;
}

static void print_targets(void)
{
    out("\nTargets (from the project's issues), judged on the medians above.  'not settled': the\n"
        "rounds' ranges of the two sides overlap, so the run does not decide the comparison;\n"
        "'by round': the ratio of the two sides within each round, lowest..highest.\n");
    out(" The hand-off, both consumer styles:\n");
    const char *who;
    double l1 = med("labyrinth", "w1.ns"), b1 = best_peer("w1.ns", true, &who);
    target(!isnan(l1) && !isnan(b1), l1 < b1, "W1: below every peer", "%.2f ns vs best peer %s %.2f ns%s%s", l1, who,
           b1, settled("labyrinth", "w1.ns", 1, who, "w1.ns"), floor_too("w1.ns", true, b1, 1, " ns"));
    double l2 = med("labyrinth", "w2.ns"), b2 = best_peer("w2.ns", true, &who);
    target(!isnan(l2) && !isnan(b2), l2 < b2, "W2 single: below every peer", "%.2f ns vs best peer %s %.2f ns%s%s", l2,
           who, b2, settled("labyrinth", "w2.ns", 1, who, "w2.ns"), floor_too("w2.ns", true, b2, 1, " ns"));
    double l2b = med("labyrinth", "w2b.ns"), b2b = best_peer("w2b.ns", true, &who);
    target(!isnan(l2b) && !isnan(b2b), l2b < b2b, "W2 bulk: below every peer with bulk calls",
           "%.2f ns vs best peer %s %.2f ns%s%s", l2b, who, b2b, settled("labyrinth", "w2b.ns", 1, who, "w2b.ns"),
           floor_too("w2b.ns", true, b2b, 1, " ns"));
    for (int b = 0; b < 2; b++) {
        const char *m = b ? "w3b.pps" : "w3s.pps", *style = b ? "bulk" : "single";
        double l = med("labyrinth", m), d = med("dpdk", m), f = med("floor", m);
        char what[64];
        snprintf(what, sizeof(what), "W3 %s: pages/s >= DPDK's", style);
        target(!isnan(l) && !isnan(d), l >= d, what, "%.2f M/s vs DPDK %.2f M/s = %.2fx%s%s", l / 1e6, d / 1e6, l / d,
               settled("labyrinth", m, 1, "dpdk", m), floor_too(m, false, d, 1e-6, " M/s"));
        snprintf(what, sizeof(what), "W3 %s: pages/s >= 0.9x the floor's", style);
        target(!isnan(l) && !isnan(f), l >= 0.9 * f, what, "%.2f M/s vs floor %.2f M/s = %.2fx%s", l / 1e6, f / 1e6,
               l / f, settled("labyrinth", m, 1, "floor", m));
    }
    for (int b = 0; b < 2; b++) {
        const char *w = b ? "w5b" : "w5s", *style = b ? "bulk" : "single";
        char m[48], what[64];
        static const char *const pts[] = { "p99.9", "p99.99" };
        for (int k = 0; k < 2; k++) {
            snprintf(m, sizeof(m), "%s.%s", w, pts[k]);
            double l = med("labyrinth", m), d = med("dpdk", m);
            snprintf(what, sizeof(what), "W5 %s: %s <= DPDK's", style, pts[k]);
            target(!isnan(l) && !isnan(d), l <= d, what, "%.0f ns vs DPDK %.0f ns%s", l, d,
                   settled("labyrinth", m, 1, "dpdk", m));
        }
        snprintf(m, sizeof(m), "%s.max", w);
        double lm = med("labyrinth", m), fm = med("floor", m);
        snprintf(what, sizeof(what), "W5 %s: max <= 2x the floor's max", style);
        char lms[16], fms[16];
        fmt_num(lms, sizeof(lms), lm);
        fmt_num(fms, sizeof(fms), fm);
        target(!isnan(lm) && !isnan(fm), lm <= 2 * fm, what, "%s ns vs 2 x %s ns%s", lms, fms,
               settled("labyrinth", m, 0.5, "floor", m));
        snprintf(m, sizeof(m), "%s.syscalls", w);
        double sc = med("labyrinth", m), lo, hi;
        med3("labyrinth", m, &lo, &hi);
        snprintf(m, sizeof(m), "%s.count_allocs", w);
        snprintf(what, sizeof(what), "W5 %s: 0 system calls on the producer", style);
        target(!isnan(sc), hi == 0, what, "at most %.0f in a round (median %.0f in %.0f allocations)", hi, sc,
               med("labyrinth", m));
    }
    double c0 = med("callgrind", "ir_per_pair.room"), ck = NAN;
    const char *worst = "-";
    for (int o = 1; o <= 3; o++) {
        char m[48];
        snprintf(m, sizeof(m), "ir_per_pair.room%d", o);
        double v = med("callgrind", m);
        if (!isnan(v) && (isnan(ck) || v > ck)) {
            ck = v;
            worst = cg_modes[o];
        }
    }
    target(!isnan(c0), c0 <= 60, "callgrind: order-0 room pair <= 60 instructions", "%.1f", c0);
    target(!isnan(c0) && !isnan(ck), ck <= 1.5 * c0, "callgrind: order-1..3 room pair <= 1.5x order 0",
           "worst %s %.1f = %.2fx of %.1f", worst, ck, ck / c0, c0);
    out(" Earlier targets:\n");
    target(!isnan(l1), l1 <= 5.0, "W1: a few ns per pair (<= 5 ns)", "%.2f ns", l1);
    double f2 = med("floor", "w2.ns");
    target(!isnan(l2) && !isnan(f2), l2 <= 1.5 * f2, "W2: within 1.5x of the floor", "%.2f ns vs floor %.2f ns = %.2fx",
           l2, f2, l2 / f2);
    double l3 = med("labyrinth", "w3b.pps"), d3 = med("dpdk", "w3b.pps");
    target(!isnan(l3) && !isnan(d3), l3 >= 1.5 * d3, "W3 bulk: >= 1.5x DPDK throughput",
           "%.2f M/s vs DPDK %.2f M/s = %.2fx", l3 / 1e6, d3 / 1e6, l3 / d3);
    double l5 = med("labyrinth", "w5s.p99.99"), m5 = med("labyrinth", "w5s.max");
    double b5 = best_peer("w5s.p99.99", true, &who);
    target(!isnan(l5), l5 < 1000, "W5 single: atomic p99.99 < 1 us", "%.0f ns", l5);
    char m5s[16], f5s[16];
    fmt_num(m5s, sizeof(m5s), m5);
    fmt_num(f5s, sizeof(f5s), med("floor", "w5s.max"));
    target(!isnan(m5), m5 < 50000, "W5 single: atomic max < 50 us", "%s ns (floor's max %s ns)", m5s, f5s);
    target(!isnan(l5) && !isnan(b5), l5 < b5, "W5 single: lower p99.99 than every peer",
           "%.0f ns vs best peer %s %.0f ns%s", l5, who, b5, settled("labyrinth", "w5s.p99.99", 1, who, "w5s.p99.99"));
    double lo = INFINITY, hi = 0;
    char wlo[32] = "", whi[32] = "";
    for (size_t i = 0; i < NR_GROWTH; i++) {
        char whog[32], sz[16];
        size_name(growth_sizes[i], sz, sizeof(sz));
        snprintf(whog, sizeof(whog), "growth-%s", sz);
        double v = med(whog, "w1.ns");
        if (!isnan(v) && v < lo) {
            lo = v;
            snprintf(wlo, sizeof(wlo), "%s", whog);
        }
        if (!isnan(v) && v > hi) {
            hi = v;
            snprintf(whi, sizeof(whi), "%s", whog);
        }
    }
    /* Settled only if the slowest arena's rounds, over 1.3, stay apart from
     * the fastest one's: arenas run one after the other in a round. */
    target(hi > 0, hi <= 1.3 * lo, "W6: order-0 cost flat across sizes (max/min <= 1.3)", "%.2f .. %.2f ns = %.2fx%s",
           lo, hi, hi / lo, hi > 0 ? settled(whi, "w1.ns", 1 / 1.3, wlo, "w1.ns") : "");
    double c64 = med("growth-64GiB", "create_us"), r64 = med("growth-64GiB", "rss_kib");
    target(!isnan(c64), c64 < 100000, "W6: 64 GiB arena created in < 100 ms", "%.3f ms", c64 / 1e3);
    target(!isnan(r64), r64 < 65536, "W6: 64 GiB arena resident < 64 MiB after creation", "%.0f KiB", r64);
    double d64 = med("growth-64GiB", "desc_bpp"), t64 = med("growth-64GiB", "meta_bpp"),
           t16 = med("growth-16MiB", "meta_bpp");
    target(!isnan(d64), d64 <= 16, "W6: <= 16 bytes of metadata per page",
           "descriptors %.2f B/page; with the fixed struct: %.2f B/page at 64 GiB, %.2f at 16 MiB", d64, t64, t16);
    out("  %d of %d targets met\n", targets_met, targets_total);
}

/* ---- CSV and charts ---------------------------------------------------------------------------------- */
static bool ratio_metric(const char *m)
{
    return !strcmp(m, "w1.ns") || !strcmp(m, "w2.ns") || !strcmp(m, "w2b.ns") || !strcmp(m, "w4.ns") ||
           (m[0] == 'w' && m[1] == '3' && ends_with(m, ".pps")) || !strncmp(m, "w5s.p", 5) ||
           !strncmp(m, "w5b.p", 5) || !strcmp(m, "w5s.max") || !strcmp(m, "w5b.max");
}

static void write_csv(const char *path, const char *stamp, const char *machine)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "bench: cannot write %s: %s\n", path, strerror(errno));
        return;
    }
    fprintf(f, "date,machine,peer,version,metric,median,min,max,rounds,ratio_to_labyrinth,ratio_to_floor,text\n");
    for (size_t i = 0; i < ntab; i++) {
        struct series *s = &tab[i];
        struct peer *p = peer_by_name(s->who);
        const char *ver = p ? p->version : "";
        double lo, hi, v = med3(s->who, s->metric, &lo, &hi);
        double rl = NAN, rf = NAN;
        if (ratio_metric(s->metric) && p) {
            rl = v / med("labyrinth", s->metric);
            rf = v / med("floor", s->metric);
        }
        fprintf(f, "%s,\"%s\",%s,%s,%s,", stamp, machine, s->who, ver, s->metric);
        if (s->n)
            fprintf(f, "%.6g,%.6g,%.6g,%d,", v, lo, hi, s->n);
        else
            fprintf(f, ",,,0,");
        if (!isnan(rl))
            fprintf(f, "%.4g", rl);
        fprintf(f, ",");
        if (!isnan(rf))
            fprintf(f, "%.4g", rf);
        fprintf(f, ",\"%s\"\n", s->str);
    }
    for (size_t i = 0; i < NR_PEERS; i++)
        if (!peers[i].available && peers[i].why[0])
            fprintf(f, "%s,\"%s\",%s,%s,unavailable,,,,0,,,\"%s\"\n", stamp, machine, peers[i].name, peers[i].version,
                    peers[i].why);
    fclose(f);
}

static void write_charts(const char *dir)
{
    char gp[PATH_MAX];
    if (!which("gnuplot", gp, sizeof(gp))) {
        out("\nCharts: skipped (gnuplot not found in PATH)\n");
        return;
    }
    char path[PATH_MAX + 64];
    int rc1 = -2, rc2 = -2;
    if (isnan(med("labyrinth", "w5s.p50")))
        goto growth;
    /* latency percentile curves: one per peer and consumer style */
    snprintf(path, sizeof(path), "%s/latency.dat", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    fprintf(f, "# x = 1/(1-q) (max plotted at 10^6); y = ns\nx label");
    int cols = 0;
    const char *colname[2 * NR_PEERS], *colstyle[2 * NR_PEERS];
    for (size_t i = 0; i < NR_PEERS; i++)
        for (int b = 0; b < 2; b++) {
            const char *w = b ? "w5b" : "w5s";
            char m[32];
            snprintf(m, sizeof(m), "%s.p50", w);
            if (!isnan(med(peers[i].name, m))) {
                fprintf(f, " %s/%s", peers[i].name, b ? "bulk" : "single");
                colname[cols] = peers[i].name;
                colstyle[cols++] = w;
            }
        }
    fprintf(f, "\n");
    for (int k = 0; k < LAT_POINTS; k++) {
        double x = lat_q[k] >= 1 ? 1e6 : 1.0 / (1.0 - lat_q[k]);
        fprintf(f, "%g %s", x, lat_name[k]);
        for (int c = 0; c < cols; c++) {
            char m[32];
            snprintf(m, sizeof(m), "%s.%s", colstyle[c], lat_name[k]);
            double v = med(colname[c], m);
            fprintf(f, " %g", v > 0 ? v : 1);
        }
        fprintf(f, "\n");
    }
    fclose(f);
    snprintf(path, sizeof(path), "%s/latency.gp", dir);
    f = fopen(path, "w");
    if (!f)
        return;
    fprintf(f,
            "set terminal png size 1100,680\n"
            "set output '%s/latency.png'\n"
            "set title 'W5: page allocation latency under background pressure (medians of rounds)'\n"
            "set logscale xy\nset grid\nset key left top\n"
            "set xlabel 'percentile'\nset ylabel 'ns'\n"
            "set xtics ('p50' 2, 'p90' 10, 'p99' 100, 'p99.9' 1000, 'p99.99' 10000, 'p99.999' 100000, 'max' 1000000)\n",
            dir);
    /* one colour per peer, dashed for the bulk consumer */
    fprintf(f, "plot");
    int colour = 0;
    for (int c = 0; c < cols; c++) {
        if (c > 0 && strcmp(colname[c], colname[c - 1]) != 0)
            colour++;
        bool bulk = strcmp(colstyle[c], "w5b") == 0;
        fprintf(f, "%s '%s/latency.dat' using 1:%d with linespoints lw 2 lc %d dt %d title columnheader(%d)",
                c ? "," : "", dir, c + 3, colour + 1, bulk ? 2 : 1, c + 3);
    }
    fprintf(f, "\n");
    fclose(f);
    char *argv1[] = { gp, path, NULL };
    rc1 = run_quiet(argv1);

growth:
    if (isnan(med("growth-16MiB", "w1.ns")))
        goto done;
    /* cost versus arena size */
    snprintf(path, sizeof(path), "%s/growth.dat", dir);
    f = fopen(path, "w");
    if (!f)
        return;
    fprintf(f, "# arena_mib w1_ns w4_ns create_us rss_kib\n");
    for (size_t i = 0; i < NR_GROWTH; i++) {
        char who[32], sz[16];
        size_name(growth_sizes[i], sz, sizeof(sz));
        snprintf(who, sizeof(who), "growth-%s", sz);
        fprintf(f, "%zu %g %g %g %g\n", growth_sizes[i] >> 20, med(who, "w1.ns"), med(who, "w4.ns"),
                med(who, "create_us"), med(who, "rss_kib"));
    }
    fclose(f);
    snprintf(path, sizeof(path), "%s/growth.gp", dir);
    f = fopen(path, "w");
    if (!f)
        return;
    fprintf(f,
            "set terminal png size 1100,480\n"
            "set output '%s/growth.png'\n"
            "set multiplot layout 1,2 title 'W6: Labyrinth cost versus arena size (medians of rounds)'\n"
            "set logscale x 2\nset grid\nset key outside bottom center horizontal\nset xlabel 'arena size'\n"
            "set xrange [11:95000]\nset xtics ('16 MiB' 16, '256 MiB' 256, '4 GiB' 4096, '64 GiB' 65536)\n"
            "set ylabel 'ns per op'\nset yrange [0:*]\n"
            "plot '%s/growth.dat' using 1:2 with linespoints lw 2 title 'W1 room pair', "
            "'' using 1:3 with linespoints lw 2 title 'W4 buddy mix op'\n"
            "set ylabel 'creation, us'\nset y2label 'RSS after creation, KiB'\nset y2tics\nset ytics nomirror\n"
            "set yrange [0:*]\nset y2range [0:*]\n"
            "plot '%s/growth.dat' using 1:4 axes x1y1 with linespoints lw 2 title 'creation time, us', "
            "'' using 1:5 axes x1y2 with linespoints lw 2 title 'RSS after creation, KiB'\n"
            "unset multiplot\n",
            dir, dir, dir);
    fclose(f);
    char *argv2[] = { gp, path, NULL };
    rc2 = run_quiet(argv2);
done:
    out("\nCharts (gnuplot scripts and data beside them):\n");
    out("  %s/latency.png  %s\n", dir, rc1 == -2 ? "not drawn: no W5 data" : rc1 ? "gnuplot FAILED" : "W5 percentile curves");
    out("  %s/growth.png   %s\n", dir, rc2 == -2 ? "not drawn: no W6 data" : rc2 ? "gnuplot FAILED" : "W6 cost versus arena size");
}

/* ---- main ---------------------------------------------------------------------------------------------- */
static void set_mode(struct bench_params *bp, const char *mode)
{
    if (strcmp(mode, "quick") == 0) {
        opt.rounds = 3;
        bp->pair_ms = 20;
        bp->batch_ms = 20;
        bp->handoff_ms = 80;
        bp->mix_ms = 40;
        bp->lat_ms = 250;
        bp->count_ms = 80;
    } else if (strcmp(mode, "full") == 0) {
        opt.rounds = 9;
        bp->pair_ms = 150;
        bp->batch_ms = 150;
        bp->handoff_ms = 600;
        bp->mix_ms = 300;
        bp->lat_ms = 3000;
        bp->count_ms = 600;
    }
    opt.mode = mode;
}

static unsigned parse_only(const char *s)
{
    unsigned m = 0;
    for (; *s; s++)
        if (*s >= '1' && *s <= '6')
            m |= 1u << (*s - '1');
    return m;
}

int main(int argc, char **argv)
{
    struct bench_params bp;
    bench_params_default(&bp);
    int rounds_override = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--quick"))
            set_mode(&bp, "quick");
        else if (!strcmp(a, "--full"))
            set_mode(&bp, "full");
        else if (!strcmp(a, "--rounds") && i + 1 < argc)
            rounds_override = atoi(argv[++i]);
        else if (!strcmp(a, "--out") && i + 1 < argc)
            opt.outdir = argv[++i];
        else if (!strcmp(a, "--peers") && i + 1 < argc)
            opt.peers = argv[++i];
        else if (!strcmp(a, "--only") && i + 1 < argc)
            opt.only = parse_only(argv[++i]);
        else if (!strcmp(a, "--no-callgrind"))
            opt.callgrind = false;
        else if (!strcmp(a, "--no-charts"))
            opt.charts = false;
        else if (!strcmp(a, "--verbose"))
            opt.verbose = true;
        else if (!strcmp(a, "--list"))
            opt.list = true;
        else
            usage();
    }
    if (rounds_override > 0)
        opt.rounds = rounds_override < MAX_ROUNDS ? rounds_override : MAX_ROUNDS;
    find_self_dir();
    discover_peers();
    if (opt.list) {
        for (size_t i = 0; i < NR_PEERS; i++)
            printf("%-11s %s\n", peers[i].name,
                   peers[i].available ? (peers[i].inproc ? "in this process" : peers[i].exe) : peers[i].why);
        return 0;
    }

    mkdir(opt.outdir, 0755);
    snprintf(logdir, sizeof(logdir), "%s/logs", opt.outdir);
    mkdir(logdir, 0755);
    for (size_t i = 0; i < NR_PEERS; i++) {   /* fresh logs for this run */
        char lp[PATH_MAX + 64];
        snprintf(lp, sizeof(lp), "%s/%s.log", logdir, peers[i].name);
        unlink(lp);
    }
    char txtpath[PATH_MAX + 32];
    snprintf(txtpath, sizeof(txtpath), "%s/bench.txt", opt.outdir);
    txt = fopen(txtpath, "w");

    pick_cpus(&bp.cpu_a, &bp.cpu_b);
    bp.tsc_per_ns = tsc_calibrate(150);
    bp.workloads = opt.only & ~(unsigned)WL_GROWTH;
    bp.verbose = opt.verbose;

    char machine[256], stamp[32];
    machine_line(machine, sizeof(machine));
    time_t now = time(NULL);
    strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M", localtime(&now));
    /* the timer's own cost, to read the latency numbers against */
    uint64_t tmin = UINT64_MAX;
    for (int i = 0; i < 100000; i++) {
        uint64_t t0 = tsc_begin(), t1 = tsc_end();
        if (t1 - t0 < tmin)
            tmin = t1 - t0;
    }

    out("labyrinth-bench  %s  mode %s, %d rounds (medians)\n", stamp, opt.mode, opt.rounds);
    char rev[160];
    source_revision(rev, sizeof(rev));
    out("machine: %s\n", machine);
    out("Labyrinth revision: %s\n", rev);
#ifdef LAB_BENCH_TOUCH_SPREAD
    out("touch: the first byte of a line chosen by address bits 12-17 (LAB_BENCH_TOUCH_SPREAD), not the block's first byte\n");
#endif
#ifdef LAB_BENCH_DPDK_PAGE_STRIDE
    out("DPDK: 4032-byte objects 4096 bytes apart (LAB_BENCH_DPDK_PAGE_STRIDE), first lines aliased as pages' are\n");
#endif
#ifdef LAB_BENCH_STEPS
    out("Labyrinth's single-page allocations: lab_room_alloc_result (LAB_BENCH_STEPS), slower than lab_room_alloc\n");
#endif
    out("TSC %.3f GHz (calibrated), timer overhead %.0f ns (included in W5 numbers); CPU A = %d, CPU B = %d\n",
        bp.tsc_per_ns, (double)tmin / bp.tsc_per_ns, bp.cpu_a, bp.cpu_b);

    char load0[64];
    load_average(load0, sizeof(load0));
    uint64_t t_start = now_ns();
    for (int r = 0; r < opt.rounds; r++) {
        fprintf(stderr, "round %d/%d:", r + 1, opt.rounds);
        for (size_t i = 0; i < NR_PEERS; i++) {
            struct peer *p = &peers[i];
            if (!p->available || !peer_selected(p->name))
                continue;
            fprintf(stderr, " %s", p->name);
            if (p->inproc) {
                struct store_ctx sc = { p->name };
                struct sink s = { store_num, store_str, &sc };
                p->inproc->run(&bp, &s);
            } else {
                run_peer_process(p, &bp);
            }
        }
        if (opt.only & WL_GROWTH) {
            fprintf(stderr, " growth");
            run_growth(&bp);
        }
        fprintf(stderr, "  (%.0f s)\n", (double)(now_ns() - t_start) / 1e9);
    }
    if (opt.callgrind) {
        fprintf(stderr, "callgrind...\n");
        run_callgrind();
    } else {
        snprintf(callgrind_note, sizeof(callgrind_note), "skipped (--no-callgrind)");
    }

    /* ---- the report ---- */
    char load1[64];
    load_average(load1, sizeof(load1));
    out("load average (1, 5, 15 min; includes this benchmark): %s at the start, %s at the end\n", load0, load1);
    out("\nPeers:\n");
    for (size_t i = 0; i < NR_PEERS; i++) {
        struct peer *p = &peers[i];
        if (!peer_selected(p->name))
            continue;
        out("  %-11s %-8s %s\n", p->name, p->version[0] ? p->version : "", p->available ? p->label : p->why);
    }
    out("\nRatios: 'x Lab' = this peer's median / Labyrinth's, 'x floor' = / the floor's (same metric, same run).\n"
        "For ns a ratio above 1 means slower than the reference; for pages/s, above 1 means more throughput.\n");
    if (opt.only & WL_PAIR)
        table_simple("W1  one page: alloc + touch one byte + free, owner context (ns per pair)", "w1.ns", "ns/pair", 1,
                     false, "w1.fails");
    if (opt.only & WL_BATCH) {
        static const struct variant w2[2] = {
            { "w2.ns", "single: one page per call", "w2.fails", false },
            { "w2b.ns", "bulk: 32 per call (alloc and free)", "w2b.fails", true },
        };
        table_pair("W2  64 allocs (touch each), then 64 frees, owner context (ns per page: alloc + free).\n"
                   "    Bulk: lab_room_alloc_bulk/lab_room_free_bulk, rte_mempool_get_bulk/put_bulk, the floor's\n"
                   "    run pop/push",
                   "ns/pair", w2);
    }
    if (opt.only & WL_HANDOFF) {
        static const struct variant w3a[2] = {
            { "w3s.pps", "consumer single: one free call per page", "w3s.fails", false },
            { "w3b.pps", "consumer bulk: one free call per 32 pages", "w3b.fails", true },
        };
        static const struct variant w3b[2] = {
            { "w3as.pps", "consumer single", "w3as.fails", true },
            { "w3ab.pps", "consumer bulk (32)", "w3ab.fails", true },
        };
        table_pair("W3  hand-off: producer (CPU A) allocates + touches -> SPSC ring -> consumer (CPU B) touches\n"
                   "    + frees.  Single: lab_free_pages, rte_mempool_put, free(), the floor pushes each page back;\n"
                   "    bulk: lab_free_pages_bulk, rte_mempool_put_bulk, the floor pushes 32 at once.\n"
                   "    Producer: one page per call (lab_room_alloc, rte_mempool_get, ...).  Pages/s, higher is better",
                   "pages/s", w3a);
        table_pair("W3a the same, the producer allocating 32 pages per call (lab_room_alloc_bulk,\n"
                   "    rte_mempool_get_bulk, the floor's run pop) and pushing them to the ring together.  Pages/s",
                   "pages/s", w3b);
        /* the peers without bulk calls, once */
        char nobulk[256] = "";
        for (size_t i = 0; i < NR_PEERS; i++)
            if (peer_selected(peers[i].name) && peers[i].available && !peer_has_bulk(&peers[i], "w3ab.pps") &&
                !(peers[i].inproc && !(peers[i].inproc->workloads & WL_HANDOFF))) {
                size_t l = strlen(nobulk);
                snprintf(nobulk + l, sizeof(nobulk) - l, "%s%s", l ? ", " : "", peers[i].name);
            }
        if (nobulk[0])
            out("  (no bulk call: %s)\n", nobulk);
    }
    if (opt.only & WL_MIX)
        table_simple("W4  buddy mix: random orders 0..9 (4 KiB..2 MiB, aligned to size), 16 live slots,\n"
                     "    alloc (touch one byte) or free; Labyrinth: lab_alloc_pages/lab_free_pages (ns per op)",
                     "w4.ns", "ns/op", 1, false, "w4.fails");
    if (opt.only & WL_LATENCY) {
        table_latency("w5s",
                      "W5  allocation under pressure, consumer SINGLE (lab_free_pages, rte_mempool_put, free...):\n"
                      "    LAB_GFP_ATOMIC lab_room_alloc (peers: their page allocation), one page per call, under a\n"
                      "    background job of 4 KiB..4 MiB blocks touching every page, memory full; producer on CPU A,\n"
                      "    consumer and background on CPU B.  ns, TSC-timed, medians of the rounds' percentiles.",
                      false);
        table_latency("w5b",
                      "W5b the same, consumer BULK (lab_free_pages_bulk, rte_mempool_put_bulk, the floor's batch;\n"
                      "    32 at a time)",
                      true);
        out("  (failed: allocations that returned NULL; bg MB/s: MiB the background job allocated and touched\n"
            "   per second during the timed run; preempt: the producer's involuntary context switches in the\n"
            "   timed run (other work took its CPU: one landing inside a timed call sets a max of milliseconds,\n"
            "   more likely the longer the producer spends inside the allocator); syscalls: counted exactly on the producer thread alone with a\n"
            "   seccomp user-notification filter, in a second run of the same loop right after the timed one\n"
            "   (median count, and per allocation); which: totals over all rounds, most frequent first.\n"
            "   Both styles run under the same background job, single first)\n");
        table_steps();
    }
    if (opt.only & WL_GROWTH)
        table_growth();
    out("\nInstructions per pair (callgrind; the difference of two runs, 100000 and 300000 pairs)\n");
    char hooks_note[512] = "";
    double room0 = med("callgrind", "ir_per_pair.room");
    for (size_t m = 0; m < NR_CG_MODES; m++) {
        char k1[48], k2[48], k3[48];
        snprintf(k1, sizeof(k1), "ir_per_pair.%s", cg_modes[m]);
        snprintf(k2, sizeof(k2), "ir_per_pair.%s.as_run", cg_modes[m]);
        snprintf(k3, sizeof(k3), "ir_per_pair.%s.hooks", cg_modes[m]);
        double v = med("callgrind", k1), asrun = med("callgrind", k2), hk = med("callgrind", k3);
        if (!isnan(v)) {
            char rel[32] = "";
            if (m > 0 && !isnan(room0))
                snprintf(rel, sizeof(rel), "  %.2fx the order-0 pair", v / room0);
            out("  %-64s %7.1f per pair%s\n", cg_what[m], v, rel);
            size_t l = strlen(hooks_note);
            snprintf(hooks_note + l, sizeof(hooks_note) - l, "%s%s %.1f - %.1f", l ? ", " : "", cg_modes[m], asrun, hk);
        } else if (!isnan(asrun)) {
            out("  %-64s %7.1f per pair as run under valgrind\n", cg_what[m], asrun);
        }
    }
    if (hooks_note[0])
        out("  (as counted under valgrind minus the library's valgrind page hooks, which only run under\n"
            "   valgrind: %s)\n", hooks_note);
    if (callgrind_note[0])
        out("  %s\n", callgrind_note);
    if (opt.only == WL_ALL && !opt.peers)
        print_targets();
    else
        out("\nTargets: judged only on a full run (all workloads, all peers)\n");

    char csv[PATH_MAX + 32];
    snprintf(csv, sizeof(csv), "%s/bench.csv", opt.outdir);
    write_csv(csv, stamp, machine);
    if (opt.charts)
        write_charts(opt.outdir);
    else
        out("\nCharts: skipped (--no-charts)\n");
    out("\nWritten: %s, %s, peer logs in %s; total %.0f s\n", txtpath, csv, logdir,
        (double)(now_ns() - t_start) / 1e9);
    if (txt)
        fclose(txt);
    return 0;
}
