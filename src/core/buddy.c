/*
 * buddy.c - split and merge of power-of-two blocks inside the zone.
 *
 * A block of order k is 2^k frames aligned to 2^k; its buddy is the block
 * whose index differs in bit k.  Free blocks sit on one doubly linked list
 * per order, linked by 32-bit frame indices through their head descriptors;
 * a bitmap of non-empty lists makes "smallest order >= k with a free block"
 * one count-trailing-zeros.  Allocation splits the block it finds down to
 * the order asked; free merges with the buddy while the buddy is a free head
 * of the same order.  Both loops run at most max_order times.
 *
 * Deferred initialisation: frames at and above zone->populated are free but
 * not yet on any list (their descriptors are still the zero TAIL state of a
 * fresh mapping).  When the lists run dry, the next max-order block is
 * listed.  So creating a huge arena writes no descriptor at all, as Linux
 * defers struct page initialisation.  The populated boundary is always a
 * multiple of 2^max_order (or the end), so no block straddles it.
 *
 * Every function here runs with the zone lock held.
 */
#include "internal.h"

void list_push(struct zone *z, struct free_area *fa, uint32_t frame)
{
    struct page *p = &z->pages[frame];
    p->prev = NIL;
    p->next = fa->head;
    if (fa->head != NIL)
        z->pages[fa->head].prev = frame;
    fa->head = frame;
    fa->nr_free++;
}

void list_unlink(struct zone *z, struct free_area *fa, uint32_t frame)
{
    struct page *p = &z->pages[frame];
    lab_assert(fa->nr_free > 0);
    if (p->prev != NIL)
        z->pages[p->prev].next = p->next;
    else
        fa->head = p->next;
    if (p->next != NIL)
        z->pages[p->next].prev = p->prev;
    p->next = p->prev = NIL;
    fa->nr_free--;
}

static void free_list_add(struct zone *z, uint32_t frame, unsigned order)
{
    struct page *p = &z->pages[frame];
    pg_set_order(p, order);
    pg_set_state(p, PG_FREE);
    list_push(z, &z->area[order], frame);
    z->nonempty |= 1u << order;
}

static void free_list_del(struct zone *z, uint32_t frame, unsigned order)
{
    list_unlink(z, &z->area[order], frame);
    if (z->area[order].head == NIL)
        z->nonempty &= ~(1u << order);
}

/* The largest block that can start at `frame` (aligned there) and end by `end`. */
static unsigned largest_fitting_order(const struct zone *z, uint32_t frame, uint32_t end)
{
    unsigned o = z->max_order;
    while (o > 0 && (((frame & ((1u << o) - 1)) != 0) || (uint64_t)frame + (1u << o) > end))
        o--;
    return o;
}

/* Make the descriptors and room ids of frames [from, to) resident, with a
 * read-modify-write that adds nothing, one per page of each array.  Both
 * are mapped lazily, and a block listed here is later split, taken into
 * rooms and handed out, often by atomic requests: each first write to one
 * of their pages was then a page fault inside the zone's lock, which the
 * kernel may take its time over (bench/README.md: under pressure, refills
 * of a room's stock that took up to a tenth of a millisecond).  Listing
 * the block pays for all of them at once, usually in the blocking context
 * that first needs it.  No value changes, so a reader at any moment sees
 * what it would have seen.  The first bytes of descriptor `from` may lie
 * on the page of descriptor from - 1's tag, made resident when from - 1
 * was listed (or `from` is 0, at the start of the mapping). */
static void meta_commit(struct zone *z, uint32_t from, uint32_t to)
{
    /* From one element to the first whose word lies on the next page: a
     * step of a page's worth of elements, not a look at every frame (a
     * loop of 2048 turns inside the zone's lock, once a largest block). */
    const uintptr_t pg = LAB_PAGE_SIZE;
    for (uint64_t f = from; f < to;) {
        uintptr_t at = (uintptr_t)&z->pages[f].tag;
        atomic_fetch_or_explicit(&z->pages[f].tag, 0, memory_order_relaxed);
        f += (((at / pg + 1) * pg - at + sizeof(struct page) - 1) / sizeof(struct page));
    }
    for (uint64_t f = from; f < to;) {
        uintptr_t at = (uintptr_t)&z->room_of[f];
        atomic_fetch_or_explicit(&z->room_of[f], 0, memory_order_relaxed);
        f += (((at / pg + 1) * pg - at + sizeof(z->room_of[0]) - 1) / sizeof(z->room_of[0]));
    }
}

/* List the next unpopulated max-order block (or the tail pieces of an arena
 * that is not a multiple of the largest block).  False when all is listed. */
static bool populate_more(struct zone *z)
{
    if (z->populated >= z->nr_pages)
        return false;
    uint32_t f = z->populated;
    uint32_t end = z->nr_pages;
    uint32_t max_block = 1u << z->max_order;
    meta_commit(z, f, end - f >= max_block ? f + max_block : end);
    if (end - f >= max_block) {
        free_list_add(z, f, z->max_order);
        z->populated = f + max_block;
        return true;
    }
    while (f < end) {
        unsigned o = largest_fitting_order(z, f, end);
        free_list_add(z, f, o);
        f += 1u << o;
    }
    z->populated = end;
    return true;
}

void buddy_populate_all(struct zone *z)
{
    while (populate_more(z))
        ;
}

/* Blocks per order that the unpopulated range will become (for buddyinfo). */
void buddy_unpopulated_blocks(const struct zone *z, size_t *blocks)
{
    uint32_t f = z->populated, end = z->nr_pages;
    uint32_t max_block = 1u << z->max_order;
    size_t full = (end - f) / max_block;
    blocks[z->max_order] += full;
    f += (uint32_t)(full * max_block);
    while (f < end) {
        unsigned o = largest_fitting_order(z, f, end);
        blocks[o]++;
        f += 1u << o;
    }
}

/* The smallest free block of at least `order`, off its list (listing more
 * when none is); its order in *o.  NIL when none is left. */
static inline uint32_t take_smallest(struct zone *z, unsigned order, unsigned *o)
{
    uint32_t mask;
    while ((mask = z->nonempty >> order) == 0)
        if (!populate_more(z))
            return NIL;
    *o = order + (unsigned)__builtin_ctz(mask);
    uint32_t frame = z->area[*o].head;
    lab_assert(pg_state(&z->pages[frame]) == PG_FREE && pg_order(&z->pages[frame]) == *o);
    free_list_del(z, frame, *o);
    return frame;
}

/* Take a free block of exactly `order`, splitting a larger one if needed.
 * The caller checked the watermark; NIL means no block of the order exists. */
uint32_t buddy_take(struct zone *z, unsigned order)
{
    unsigned o;
    uint32_t frame = take_smallest(z, order, &o);
    if (frame == NIL)
        return NIL;
    while (o > order) {          /* split: the upper half goes back on a list */
        o--;
        free_list_add(z, frame + (1u << o), o);
    }
    struct page *p = &z->pages[frame];
    pg_set_order(p, order);
    pg_set_state(p, PG_ALLOCATED);
    z->free_pages -= (size_t)1 << order;
    return frame;
}

/* Up to n blocks of `order` (n >= 1) at once, as one run of consecutive
 * frames: the smallest free block of at least `order`, split only until
 * it holds no more than n of them, taken whole.  Returns its first frame
 * and sets *got, or NIL.  The free lists end as n calls of buddy_take would
 * leave them (each takes the lowest block of the smallest free block, so
 * n of them use up the halves of one split before they split another), for
 * a list operation per split instead of several per block.  No descriptor
 * of the blocks in the run is set here (the first's links are cleared by
 * its unlink): the caller gives each its whole descriptor, links included.
 * A free block's interior holds stale states and links, the zero links of
 * a fresh mapping among them, where a block out of buddy_take has NIL. */
uint32_t buddy_take_run(struct zone *z, unsigned order, uint32_t n, uint32_t *got)
{
    unsigned o;
    lab_assert(n >= 1);
    uint32_t frame = take_smallest(z, order, &o);
    if (frame == NIL)
        return NIL;
    while (o > order && (1u << (o - order)) > n) {   /* the upper half back on a list */
        o--;
        free_list_add(z, frame + (1u << o), o);
    }
    *got = 1u << (o - order);
    z->free_pages -= (size_t)1 << o;
    return frame;
}

/* Remove a specific free block from its list (for reserves that pick one). */
void buddy_remove_free(struct zone *z, uint32_t frame, unsigned order)
{
    free_list_del(z, frame, order);
    z->free_pages -= (size_t)1 << order;
}

/* Split a free block of `order` (>= 1) in two free halves, free pages
 * unchanged: trim's, to give back what lies above its floor inside a block
 * too large to give back whole. */
void buddy_split_free(struct zone *z, uint32_t frame, unsigned order)
{
    lab_assert(order >= 1 && pg_state(&z->pages[frame]) == PG_FREE && pg_order(&z->pages[frame]) == order);
    free_list_del(z, frame, order);
    free_list_add(z, frame + (1u << (order - 1)), order - 1);
    free_list_add(z, frame, order - 1);
}

/* Give a block back, merging with its buddy for as long as it is free. */
void buddy_put(struct zone *z, uint32_t frame, unsigned order)
{
    lab_assert((frame & ((1u << order) - 1)) == 0 && frame + (1u << order) <= z->nr_pages);
    z->free_pages += (size_t)1 << order;
    z->freed_in_hold = true;
    pg_set_room(z, frame, 0);   /* room_of is set on room blocks' heads only */
    pg_set_state(&z->pages[frame], PG_TAIL);
    while (order < z->max_order) {
        uint32_t buddy = frame ^ (1u << order);
        if (buddy >= z->populated)
            break;
        struct page *b = &z->pages[buddy];
        if (pg_state(b) != PG_FREE || pg_order(b) != order)
            break;
        free_list_del(z, buddy, order);
        pg_set_state(b, PG_TAIL);
        frame &= ~(1u << order);
        order++;
    }
    free_list_add(z, frame, order);
}

