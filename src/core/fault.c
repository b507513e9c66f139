/*
 * fault.c - failure injection, as Linux's fail_page_alloc: probability,
 * interval, times, a minimum order, and an exemption for blocking requests.
 * Async-signal-safe: the random numbers come from an atomic counter run
 * through a mixer, not from rand().
 */
#include "internal.h"

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

int lab_fault_set(lab_arena *a, const lab_fault_config *fc)
{
    if (!a)
        return LAB_EINVAL;
    if (fc && (fc->probability > 100 || fc->times < -1))
        return LAB_EINVAL;   /* refused: the injection stays as it was */
    struct fault_attr *f = &a->fault;
    atomic_store(&f->enabled, false);
    if (!fc)
        return 0;
    atomic_store(&f->probability, fc->probability);
    atomic_store(&f->interval, fc->interval ? fc->interval : 1);
    atomic_store(&f->min_order, fc->min_order);
    atomic_store(&f->ignore_blocking, fc->ignore_blocking != 0);
    atomic_store(&f->times, fc->times);
    atomic_store(&f->calls, 0);
    atomic_store(&f->enabled, fc->probability > 0 && fc->times != 0);
    return 0;
}

uint64_t lab_fault_injected(const lab_arena *a)
{
    return a ? atomic_load(&((lab_arena *)a)->fault.injected) : 0;
}

bool fault_should_fail_slow(struct lab_arena *a, lab_gfp_t gfp, unsigned order)
{
    struct fault_attr *f = &a->fault;
    if (gfp & LAB_GFP_NOFAIL)
        return false;   /* NOFAIL never returns NULL (Linux exempts __GFP_NOFAIL too) */
    if (order < f->min_order)
        return false;
    if (f->ignore_blocking && (gfp & LAB_GFP_DIRECT_RECLAIM))
        return false;
    uint64_t n = atomic_fetch_add(&f->calls, 1) + 1;
    if (n % atomic_load(&f->interval) != 0)
        return false;
    unsigned prob = atomic_load(&f->probability);
    if (prob < 100 && mix64(atomic_fetch_add(&f->rng, 1)) % 100 >= prob)
        return false;
    int64_t left = atomic_load(&f->times);
    do {
        if (left == 0)
            return false;
        if (left < 0)
            break;
    } while (!atomic_compare_exchange_weak(&f->times, &left, left - 1));
    atomic_fetch_add(&f->injected, 1);
    return true;
}

/* A decimal number at *s (a leading '-' allowed), at least one digit, up to
 * a ',' or the end; *s moves past it.  False for anything else (the core
 * has no libc). */
static bool parse_long(const char **s, long *out)
{
    const char *p = *s;
    bool neg = *p == '-';
    long v = 0;
    const char *digits = p += neg;
    for (; *p >= '0' && *p <= '9' && v < 1000000000L; p++)
        v = v * 10 + (*p - '0');
    if (p == digits || (*p && *p != ','))
        return false;
    *s = p;
    *out = neg ? -v : v;
    return true;
}

static bool key_is(const char *s, size_t len, const char *key)
{
    size_t i = 0;
    while (i < len && key[i] && s[i] == key[i])
        i++;
    return i == len && key[i] == 0;
}

/* LAB_FAIL_PAGE_ALLOC="probability=P,interval=I,times=T,min_order=O,ignore_blocking=B":
 * keys left out keep the defaults below (every eligible request fails).
 * Anything else -- an unknown key, a key with no number, a value out of
 * range -- turns nothing on, and says so: a typo must not pass for a
 * setting, nor fail every request. */
void fault_init(struct lab_arena *a)
{
    atomic_store(&a->fault.rng, (uint64_t)(uintptr_t)a);
    const char *env = plat_getenv("LAB_FAIL_PAGE_ALLOC");
    if (!env || !*env)
        return;
    lab_fault_config fc = { .probability = 100, .interval = 1, .times = -1 };
    const char *s = env;
    bool ok = true;
    while (ok && *s) {
        const char *eq = s;
        while (*eq && *eq != '=' && *eq != ',')
            eq++;
        size_t klen = (size_t)(eq - s);
        const char *val = eq + 1;
        long v = 0;
        ok = *eq == '=' && parse_long(&val, &v) && v >= -1;
        if (!ok)
            break;
        if (key_is(s, klen, "probability")) fc.probability = (unsigned)v;
        else if (key_is(s, klen, "interval") && v >= 0) fc.interval = (unsigned)v;
        else if (key_is(s, klen, "times")) fc.times = v;
        else if (key_is(s, klen, "min_order") && v >= 0) fc.min_order = (unsigned)v;
        else if (key_is(s, klen, "ignore_blocking") && v >= 0) fc.ignore_blocking = (int)v;
        else ok = false;
        s = *val == ',' ? val + 1 : val;
    }
    if (ok && lab_fault_set(a, &fc) == 0)
        return;
    static const char msg[] = "labyrinth: LAB_FAIL_PAGE_ALLOC ignored: expected "
                              "probability=P,interval=I,times=T,min_order=O,ignore_blocking=B (any of them)\n";
    plat_log(msg, sizeof(msg) - 1);
}

/* ---- fault points (internal.h) ----------------------------------------------
 * Process-wide rather than per arena: the first of them (the arena's own
 * metadata) runs before there is an arena.  Counting happens only while
 * armed, so a test reads how many points a phase passes through, and
 * pins that number: a point added or lost is a visible change. */
_Atomic bool fault_points_armed;
static _Atomic uint64_t fp_calls[FP_NR_SITES];
static _Atomic uint64_t fp_fail_at;      /* the call number of fp_site to fail */
static _Atomic int fp_site;
static _Atomic uint64_t fp_injected;

static const char *const fp_names[FP_NR_SITES] = {
    "mmap", "mlock", "decommit", "recommit", "mprotect", "futex_wait", "meta_alloc", "thread_start",
    "refill_cut", "lock_busy",
};

bool fault_point_slow(enum fault_site site)
{
    uint64_t n = atomic_fetch_add(&fp_calls[site], 1) + 1;
    if ((int)site != atomic_load(&fp_site) || n != atomic_load(&fp_fail_at))
        return false;
    atomic_fetch_add(&fp_injected, 1);
    return true;
}

void fault_points_arm(enum fault_site site, uint64_t nth)
{
    atomic_store(&fault_points_armed, false);
    for (int i = 0; i < FP_NR_SITES; i++)
        atomic_store(&fp_calls[i], 0);
    atomic_store(&fp_injected, 0);
    atomic_store(&fp_site, (int)site);
    atomic_store(&fp_fail_at, nth);
    atomic_store(&fault_points_armed, true);
}

void fault_points_disarm(void)
{
    atomic_store(&fault_points_armed, false);
}

_Atomic pause_fn pause_hook;

uint64_t fault_points_calls(enum fault_site site) { return atomic_load(&fp_calls[site]); }
uint64_t fault_points_injected(void) { return atomic_load(&fp_injected); }
const char *fault_site_name(enum fault_site site) { return site < FP_NR_SITES ? fp_names[site] : "?"; }
