/*
 * remote_destroy.pml - frees from other contexts to a room against the
 * room's destruction (src/room.c: room_free_remote_chain, lab_room_destroy,
 * room_dead_flush).
 *
 * A freer that finds the room alive pushes its page on the room's remote
 * list (a Treiber stack), then looks at `dead` again: if the room died
 * meanwhile it flushes the list to the zone itself.  The owner takes the
 * list with one exchange whenever it likes; destroy sets `dead`, then
 * flushes the list, and sends the pages the owner had taken to the zone.
 * The room's return ring replaces the list with the same shape: a producer
 * publishes, then re-checks `dead`; destroy sets `dead`, then flushes.
 *
 * Checked: once every context is done, every page is in the zone exactly
 * once and the dead room's list is empty; no context is stuck.
 *
 * Mutants that must fail (tests/model/run.sh):
 *   -DNO_RECHECK  the freer does not look at `dead` after its push
 *   -DREORDER     the freer's look at `dead` and destroy's flush read
 *                 happen before their own writes become visible (what a
 *                 release push and an acquire flush allow under C11)
 */
#define NIL 255
#define NPAGES 3             /* one page per freeing context */

byte remote = NIL;           /* the room's remote list */
byte next[NPAGES];
bit  dead = 0;
byte where[NPAGES];          /* 0 in flight, 1 taken by the owner, 2 in the zone */
byte done = 0;

inline to_zone(p) {
    assert(where[p] != 2);
    where[p] = 2
}

/* Send a taken list to the zone. */
inline flush_list(l) {
    do
    :: l != NIL -> n = next[l]; to_zone(l); l = n
    :: else -> break
    od
}

proctype freer(byte p)
{
    byte l, n, h;
    bit ok, d;
    if
    :: dead -> to_zone(p)
    :: else ->
#ifdef REORDER
       d = dead;
#endif
       do
       :: h = remote;
          next[p] = h;
          atomic { if :: remote == h -> remote = p; ok = 1 :: else -> ok = 0 fi };
          if :: ok -> break :: else -> skip fi
       od;
#ifndef REORDER
       d = dead;
#endif
#ifndef NO_RECHECK
       if
       :: d -> atomic { l = remote; remote = NIL }; flush_list(l)
       :: else -> skip
       fi
#endif
    fi;
    atomic { done++ }
}

/* The owner: takes the list now and then, then destroys the room. */
proctype owner()
{
    byte l, n, mine = NIL, i;
    do
    :: atomic { l = remote; remote = NIL };
       do
       :: l != NIL -> n = next[l]; assert(where[l] == 0); where[l] = 1; next[l] = mine; mine = l; l = n
       :: else -> break
       od
    :: break
    od;
#ifdef REORDER
    atomic { l = remote; remote = NIL };
    dead = 1;
#else
    dead = 1;
    atomic { l = remote; remote = NIL };
#endif
    flush_list(l);
    flush_list(mine);
    atomic { done++ }
}

init
{
    byte i;
    atomic {
        run owner();
        for (i : 0 .. NPAGES - 1) { run freer(i) }
    };
    done == NPAGES + 1;
    assert(remote == NIL);
    for (i : 0 .. NPAGES - 1) { assert(where[i] == 2) }
}
