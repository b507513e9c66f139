/* The README's example: an arena, a block, a room with a reserve, stats. */
#include <labyrinth.h>
#include <stdio.h>

int main(void)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = 64 << 20;                       /* 64 MiB of page frames */
    lab_arena *a;
    if (lab_arena_create(&cfg, &a))
        return 1;

    void *block = lab_alloc_pages(a, LAB_GFP_KERNEL, 3);   /* 8 pages */

    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.reserve = 256;                          /* guaranteed to this room */
    lab_room *rx;
    if (lab_room_create(a, &rc, &rx))
        return 1;

    lab_result r;
    lab_room_alloc_result(rx, LAB_GFP_ATOMIC, &r);  /* never blocks; says why if it fails */
    if (r.addr)
        lab_room_free(rx, r.addr);             /* or lab_free_pages() from any thread */
    else
        fprintf(stderr, "no page: %s\n", lab_strreason(r.reason));

    lab_free_pages(a, block, 3);
    lab_room_destroy(rx);
    lab_stats_print(a, stdout, LAB_STATS_TEXT);
    int check = lab_check(a);
    lab_arena_destroy(a);
    return block && r.addr && check == 0 ? 0 : 1;
}
