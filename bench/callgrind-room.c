/*
 * callgrind-room.c - N owner alloc + free pairs, for counting instructions.
 *
 *   valgrind --tool=callgrind ./callgrind-room room 10000
 *   valgrind --tool=callgrind ./callgrind-room room 110000
 *
 * The difference of the two runs' total instructions divided by the
 * difference of N is the cost of one pair, with setup and teardown
 * cancelled out.  The driver does exactly this.
 *
 *   room   lab_room_alloc(room, LAB_GFP_ATOMIC) + lab_room_free: the owner's
 *          fast path (step 1)
 *   zone   lab_alloc_pages(arena, LAB_GFP_NOWAIT, 0) + lab_free_pages: an
 *          order-0 block from the zone (step 3)
 */
#include "labyrinth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "room") && strcmp(argv[1], "zone"))) {
        fprintf(stderr, "usage: %s room|zone N\n", argv[0]);
        return 2;
    }
    int zone = strcmp(argv[1], "zone") == 0;
    long n = atol(argv[2]);
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = (size_t)16 << 20;
    lab_arena *a;
    if (lab_arena_create(&cfg, &a) != 0)
        return 1;
    lab_room_config rc;
    lab_room_config_init(&rc);
    lab_room *r;
    if (lab_room_create(a, &rc, &r) != 0)
        return 1;
    /* warm: the room's stock is filled and the zone's lists are populated */
    for (int i = 0; i < 1000; i++) {
        void *p = zone ? lab_alloc_pages(a, LAB_GFP_NOWAIT, 0) : lab_room_alloc(r, LAB_GFP_ATOMIC);
        if (!p)
            return 1;
        *(volatile char *)p = 1;
        if (zone)
            lab_free_pages(a, p, 0);
        else
            lab_room_free(r, p);
    }
    long fails = 0;
    for (long i = 0; i < n; i++) {
        void *p = zone ? lab_alloc_pages(a, LAB_GFP_NOWAIT, 0) : lab_room_alloc(r, LAB_GFP_ATOMIC);
        if (!p) {
            fails++;
            continue;
        }
        *(volatile char *)p = (char)i;
        if (zone)
            lab_free_pages(a, p, 0);
        else
            lab_room_free(r, p);
    }
    lab_room_destroy(r);
    lab_arena_destroy(a);
    if (fails)
        fprintf(stderr, "%ld allocations failed\n", fails);
    return fails != 0;
}
