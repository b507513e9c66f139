/*
 * reserve.c - the high-order atomic reserve.
 *
 * A high-order atomic request (an order >= 1 block for an interrupt) cannot
 * reclaim or wait, so fragmentation alone can make it fail while plenty of
 * order-0 pages are free.  Linux answers with "highatomic" pageblocks: when
 * such a request succeeds, a block of that size is set aside for the next
 * one.  We do the same with whole blocks of the requested order, capped at
 * about 1% of the zone, held in state RESERVE (so they are neither free nor
 * handed out, and lab_check knows why they do not merge).  When a request
 * that may reclaim would otherwise fail, the blocks go back to the buddy
 * lists.
 *
 * The reserved blocks are not counted in free_pages: ordinary requests cannot
 * see them, which is the point.  Zone lock held throughout.
 */
#include "internal.h"

/* Take a reserved block of `order`, splitting a larger reserved block and
 * keeping the remainder reserved.  NIL when the reserve has none. */
uint32_t highatomic_take(struct zone *z, unsigned order)
{
    unsigned o = order;
    while (o <= z->max_order && z->ha_area[o].head == NIL)
        o++;
    if (o > z->max_order)
        return NIL;
    uint32_t frame = z->ha_area[o].head;
    list_unlink(z, &z->ha_area[o], frame);
    while (o > order) {
        o--;
        uint32_t half = frame + (1u << o);
        struct page *h = &z->pages[half];
        pg_set_order(h, o);
        pg_set_state(h, PG_RESERVE);
        list_push(z, &z->ha_area[o], half);
    }
    z->ha_pages -= (size_t)1 << order;
    struct page *p = &z->pages[frame];
    pg_set_order(p, order);
    pg_set_state(p, PG_ALLOCATED);
    return frame;
}

/* After a high-order atomic request succeeded from the free lists, set one
 * more block of its order aside, if the cap allows and the zone stays above
 * min: the top-up must not move pages out of the emergency reserve, which
 * every atomic request shares, into one only high-order requests can use. */
void highatomic_top_up(struct zone *z, unsigned order)
{
    size_t need = (size_t)1 << order;
    if (z->ha_pages + need > z->ha_cap || !zone_watermark_ok(z, order, z->wmark[WMARK_MIN]))
        return;
    uint32_t frame = buddy_take(z, order);
    if (frame == NIL)
        return;
    pg_set_state(&z->pages[frame], PG_RESERVE);
    list_push(z, &z->ha_area[order], frame);
    z->ha_pages += need;
}

/* Give every reserved block back to the buddy lists; returns the pages. */
size_t highatomic_release(struct zone *z)
{
    size_t released = 0;
    for (unsigned o = 0; o <= z->max_order; o++) {
        while (z->ha_area[o].head != NIL) {
            uint32_t frame = z->ha_area[o].head;
            list_unlink(z, &z->ha_area[o], frame);
            z->ha_pages -= (size_t)1 << o;
            released += (size_t)1 << o;
            buddy_put(z, frame, o);
        }
    }
    return released;
}
