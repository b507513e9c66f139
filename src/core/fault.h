/*
 * fault.h - the inline halves of the fault points and of failure injection:
 * one relaxed load when they are off.  The rest is fault.c, which
 * therefore does not include this file.
 */
#ifndef LAB_FAULT_H
#define LAB_FAULT_H

#include "internal.h"

static inline bool fault_point(enum fault_site site)
{
    if (likely(!atomic_load_explicit(&fault_points_armed, memory_order_relaxed)))
        return false;
    return fault_point_slow(site);
}

static inline void pause_point(enum pause_site site)
{
    pause_fn fn = atomic_load_explicit(&pause_hook, memory_order_relaxed);
    if (unlikely(fn != NULL))
        fn(site);
}

static inline bool fault_enabled(const struct lab_arena *a)
{
    return atomic_load_explicit(&((struct lab_arena *)a)->fault.enabled, memory_order_relaxed);
}

static inline bool fault_should_fail(struct lab_arena *a, lab_gfp_t gfp, unsigned order)
{
    /* one predictable branch when injection is off */
    if (likely(!atomic_load_explicit(&a->fault.enabled, memory_order_relaxed)))
        return false;
    return fault_should_fail_slow(a, gfp, order);
}

#endif
