/*
 * callgrind-room.c - N owner alloc + free pairs, for counting instructions.
 *
 *   valgrind --tool=callgrind ./callgrind-room room 100000
 *   valgrind --tool=callgrind ./callgrind-room room 300000
 *
 * The difference of the two runs' total instructions divided by the
 * difference of N is the cost of one pair, with setup and teardown
 * cancelled out.  The driver does exactly this.
 *
 *   room    lab_room_alloc(room, LAB_GFP_ATOMIC) + lab_room_free: the
 *           owner's fast path (step 1) of an order-0 room
 *   room1   lab_room_alloc_pages(room, LAB_GFP_ATOMIC, 1) +
 *   room2   lab_room_free_pages(room, p, k): a block of order k from a room
 *   room3   that serves orders 0..3 (max_order 3), step 1 too
 *   bulk    lab_room_alloc_bulk + lab_room_free_bulk of 32 pages, N / 32
 *           times: the cost per page (N must be a multiple of 32)
 *   remote  32 lab_room_alloc, then the 32 pages freed with lab_free_pages,
 *           the path of a page freed by another context: into the room's
 *           ring, taken back by the owner when its stock runs dry (step 2);
 *           per page, in one thread, so without the cache-line transfers
 *           that two cores add
 *   remote_bulk  the same, freed with one lab_free_pages_bulk of 32
 *   remote_abulk  32 pages from one lab_room_alloc_bulk, freed with one
 *           lab_free_pages_bulk: W3a's shape (an empty stock hands remote
 *           frees straight out)
 *   refill  64 lab_room_alloc, then the 64 freed with lab_room_free, on a
 *           room with batch 32 and high 32: each round refills the stock
 *           from the zone once (step 3, a batch of 32 under the zone lock)
 *           and drains a batch back once; N / 64 rounds (the driver's
 *           two N leave the same remainder, so it cancels)
 *   zone    lab_alloc_pages(arena, LAB_GFP_NOWAIT, 0) + lab_free_pages: an
 *           order-0 block from the zone (step 3), for reference
 */
#include "labyrinth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BULK 32

enum mode { ROOM, ROOM_ORDER, BULK_PAIRS, REMOTE, REMOTE_BULK, REMOTE_ABULK, REFILL, ZONE };

#define REFILL_ROUND 64

/* Returns how many allocations failed. */
static long pairs(enum mode m, lab_arena *a, lab_room *r, unsigned order, long n)
{
    long fails = 0;
    if (m == BULK_PAIRS) {
        void *p[BULK];
        for (long i = 0; i < n / BULK; i++) {
            size_t got = lab_room_alloc_bulk(r, LAB_GFP_ATOMIC, p, BULK);
            fails += BULK - (long)got;
            for (size_t k = 0; k < got; k++)
                *(volatile char *)p[k] = (char)k;
            lab_room_free_bulk(r, p, got);
        }
        return fails;
    }
    if (m == REMOTE_ABULK) {   /* W3a's shape: both sides 32 pages a call */
        void *p[BULK];
        for (long i = 0; i < n / BULK; i++) {
            size_t got = lab_room_alloc_bulk(r, LAB_GFP_ATOMIC, p, BULK);
            if (got < BULK)
                return fails + BULK - (long)got;
            for (int k = 0; k < BULK; k++)
                *(volatile char *)p[k] = (char)k;
            lab_free_pages_bulk(a, p, BULK, 0);
        }
        return fails;
    }
    if (m == REFILL) {
        void *p[REFILL_ROUND];
        for (long i = 0; i < n / REFILL_ROUND; i++) {
            for (int k = 0; k < REFILL_ROUND; k++) {
                p[k] = lab_room_alloc(r, LAB_GFP_ATOMIC);
                if (!p[k])
                    return fails + REFILL_ROUND - k;
                *(volatile char *)p[k] = (char)k;
            }
            for (int k = 0; k < REFILL_ROUND; k++)
                lab_room_free(r, p[k]);
        }
        return fails;
    }
    if (m == REMOTE || m == REMOTE_BULK) {
        void *p[BULK];
        for (long i = 0; i < n / BULK; i++) {
            for (int k = 0; k < BULK; k++) {
                p[k] = lab_room_alloc(r, LAB_GFP_ATOMIC);
                if (!p[k])
                    return fails + BULK - k;
                *(volatile char *)p[k] = (char)k;
            }
            if (m == REMOTE_BULK)
                lab_free_pages_bulk(a, p, BULK, 0);
            else
                for (int k = 0; k < BULK; k++)
                    lab_free_pages(a, p[k], 0);
        }
        return fails;
    }
    for (long i = 0; i < n; i++) {
        void *p;
        switch (m) {
        case ROOM: p = lab_room_alloc(r, LAB_GFP_ATOMIC); break;
        case ROOM_ORDER: p = lab_room_alloc_pages(r, LAB_GFP_ATOMIC, order); break;
        default: p = lab_alloc_pages(a, LAB_GFP_NOWAIT, 0); break;
        }
        if (!p) {
            fails++;
            continue;
        }
        *(volatile char *)p = (char)i;
        switch (m) {
        case ROOM: lab_room_free(r, p); break;
        case ROOM_ORDER: lab_room_free_pages(r, p, order); break;
        default: lab_free_pages(a, p, 0); break;
        }
    }
    return fails;
}

int main(int argc, char **argv)
{
    enum mode m = ROOM;
    unsigned order = 0;
    const char *what = argc == 3 ? argv[1] : "";
    if (!strcmp(what, "room"))
        m = ROOM;
    else if (!strcmp(what, "room1") || !strcmp(what, "room2") || !strcmp(what, "room3"))
        m = ROOM_ORDER, order = (unsigned)(what[4] - '0');
    else if (!strcmp(what, "bulk"))
        m = BULK_PAIRS;
    else if (!strcmp(what, "remote"))
        m = REMOTE;
    else if (!strcmp(what, "remote_bulk"))
        m = REMOTE_BULK;
    else if (!strcmp(what, "remote_abulk"))
        m = REMOTE_ABULK;
    else if (!strcmp(what, "refill"))
        m = REFILL;
    else if (!strcmp(what, "zone"))
        m = ZONE;
    else {
        fprintf(stderr, "usage: %s room|room1|room2|room3|bulk|remote|remote_bulk|remote_abulk|refill|zone N\n", argv[0]);
        return 2;
    }
    long n = atol(argv[2]);
    if ((m == BULK_PAIRS || m == REMOTE || m == REMOTE_BULK || m == REMOTE_ABULK) && n % BULK) {
        fprintf(stderr, "%s: N must be a multiple of %d\n", what, BULK);
        return 2;
    }
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = (size_t)16 << 20;
    lab_arena *a;
    if (lab_arena_create(&cfg, &a) != 0)
        return 1;
    lab_room_config rc;
    lab_room_config_init(&rc);
    if (m == ROOM_ORDER)
        rc.max_order = 3;
    if (m == REFILL)
        rc.batch = 32, rc.high = 32;
    lab_room *r;
    if (lab_room_create(a, &rc, &r) != 0)
        return 1;
    /* warm: the room's stock is filled and the zone's lists are populated */
    if (pairs(m, a, r, order, 1024) != 0)
        return 1;
    long fails = pairs(m, a, r, order, n);
    lab_room_destroy(r);
    lab_arena_destroy(a);
    if (fails)
        fprintf(stderr, "%ld allocations failed\n", fails);
    return fails != 0;
}
