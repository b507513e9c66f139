/* Compiled by the test deprecated_names_draw_a_warning, never linked: each
 * renamed call of 0.1, used under its old name, must draw the compiler's
 * deprecation warning naming the new one. */
#include <labyrinth.h>

const char *uses_deprecated_names(lab_arena *a, lab_room *r, lab_result *res)
{
    lab_alloc_pages_r(a, LAB_GFP_NOWAIT, 0, res);
    lab_room_alloc_r(r, LAB_GFP_NOWAIT, res);
    return lab_reason_str(res->reason);
}
