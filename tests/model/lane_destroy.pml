/*
 * lane_destroy.pml - a freer's lane of a room's return ring against the
 * room's destruction (src/core/handoff.c: lane_append, lanes_flush_dead,
 * room_take_remote).
 *
 * A lane has one producer, the thread that claimed it.  For each single
 * free it marks the lane `pushing`, then looks at `dead`: alive, it writes
 * the slot and advances `head`; dead (or the lane full), the free goes the
 * way of the shared ring, which sends a dead room's blocks to the zone
 * (remote_destroy.pml checks that part).  Then it clears `pushing`.  The
 * owner takes back from `tail` to `head` now and then.  Destroy sets
 * `dead`, runs plat_membarrier, waits while the lane is marked `pushing`,
 * and sends what is between `tail` and `head` to the zone.
 *
 * The freer orders its mark before its look at `dead` with a compiler fence
 * only; destroy's plat_membarrier makes that enough, by running a full
 * barrier on every processor running a thread of the program between
 * destroy's write of `dead` and its look at `pushing`.  The model is
 * sequentially consistent, which is what that pair of fences gives; the
 * REORDER mutant is what the freer's side would be without its fence.
 *
 * Checked: once every context is done, every frame is in the zone exactly
 * once and the lane is empty; no context is stuck.
 *
 * Mutants that must fail (tests/model/run.sh):
 *   -DNO_WAIT        destroy does not wait while the lane is marked pushing
 *   -DNO_DEAD_CHECK  the freer publishes without looking at `dead`
 *   -DREORDER        the freer's look at `dead` happens before its mark
 */
#define NFREE 3              /* frames the freer frees, one at a time */
#define NFRAMES (NFREE + 1)  /* and the owner's own */
#define SLOTS 2              /* a small lane: it fills, and frees spill */

byte head = 0, tail = 0;
byte slot[SLOTS];
bit  pushing = 0;
bit  dead = 0;
bit  zone[NFRAMES];
byte done = 0;

inline to_zone(f) {
    atomic { assert(!zone[f]); zone[f] = 1 }
}

proctype freer()
{
    byte f;
    bit d;
    for (f : 0 .. NFREE - 1) {
        if
        :: head - tail >= SLOTS -> to_zone(f)        /* full: the shared ring */
        :: else ->
#ifdef REORDER
           d = dead;
           pushing = 1;
#else
           pushing = 1;
           d = dead;
#endif
#ifdef NO_DEAD_CHECK
           d = 0;
#endif
           if
           :: d -> pushing = 0; to_zone(f)          /* dead: the shared ring */
           :: else -> slot[head % SLOTS] = f; head++; pushing = 0
           fi
        fi
    };
    atomic { done++ }
}

/* The owner: takes back what is published now and then, then destroys. */
proctype owner()
{
    bit mine[NFRAMES];
    byte i;
    mine[NFREE] = 1;         /* a frame of its own stock */
    do
    :: tail != head -> mine[slot[tail % SLOTS]] = 1; tail++
    :: break
    od;
    dead = 1;
    /* plat_membarrier: a no-op in a sequentially consistent model */
#ifndef NO_WAIT
    pushing == 0;
#endif
    for (i : 0 .. NFRAMES - 1) { if :: mine[i] -> to_zone(i) :: else -> skip fi };
    do
    :: tail != head -> to_zone(slot[tail % SLOTS]); tail++
    :: else -> break
    od;
    atomic { done++ }
}

init
{
    byte i;
    atomic {
        run owner();
        run freer()
    };
    done == 2;
    for (i : 0 .. NFRAMES - 1) { assert(zone[i]) };
    assert(tail == head)
}
