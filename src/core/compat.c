/*
 * compat.c - the names 0.1 used for calls that were renamed, kept for one
 * release so that programs built against 0.1 still link.  The header marks
 * them deprecated; each is its new name under the old one.
 */
#include "internal.h"

void lab_alloc_pages_r(lab_arena *a, lab_gfp_t gfp, unsigned order, lab_result *res)
{
    lab_alloc_pages_result(a, gfp, order, res);
}

void lab_room_alloc_r(lab_room *r, lab_gfp_t gfp, lab_result *res)
{
    lab_room_alloc_result(r, gfp, res);
}

const char *lab_reason_str(int reason)
{
    return lab_strreason(reason);
}
