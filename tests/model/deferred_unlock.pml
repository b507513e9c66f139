/*
 * deferred_unlock.pml - the zone's deferred-free list against unlock and
 * recheck (src/zone.c: zone_free_block, unlock_drain).
 *
 * A free that finds the zone lock busy pushes its block on a lock-free list
 * (a Treiber stack); every holder takes the whole list with one exchange
 * before it lets go, lets go, and looks at the list again: if a block
 * arrived meanwhile and the lock is free, it takes the lock again.  The free,
 * after its push, looks at the lock: if it is free, it takes it and drains.
 *
 * Checked: once every context is done, no block is left on the list, the
 * lock is free, and every block went back to the free lists exactly once;
 * and no context is stuck (invalid end states).
 *
 * Mutants that must fail (tests/model/run.sh builds them):
 *   -DNO_RECHECK  the holder does not look at the list after letting go
 *   -DNO_LOOK     the free does not look at the lock after its push
 *   -DREORDER     each side's look happens before its own write becomes
 *                 visible: the store-buffering reordering that release /
 *                 relaxed orders allow and seq_cst forbids
 */
#define NIL 255
#define NFREE 3              /* frees, each of its own block, from its own context */

byte lock = 0;               /* 0 free, 1 held (sleepers do not matter here) */
byte deferred = NIL;         /* head of the deferred list */
byte next[NFREE];
bit  back[NFREE];            /* the block is on the free lists */
byte done = 0;

inline put_back(b) {
    assert(!back[b]);
    back[b] = 1
}

inline trylock(got) {
    atomic { if :: lock == 0 -> lock = 1; got = 1 :: else -> got = 0 fi }
}

/* Take the whole list with one exchange, put every block back. */
inline drain() {
    atomic { l = deferred; deferred = NIL };
    do
    :: l != NIL -> n = next[l]; put_back(l); l = n
    :: else -> break
    od
}

inline unlock_drain() {
    do
    :: drain();
#ifdef REORDER
       idle = (deferred == NIL);
       lock = 0;
#else
       lock = 0;
       idle = (deferred == NIL);
#endif
#ifdef NO_RECHECK
       break
#else
       if
       :: idle -> break
       :: else ->
          trylock(got);
          if :: got -> skip :: else -> break fi
       fi
#endif
    od
}

proctype freer(byte b)
{
    byte l, n, h;
    bit got, idle, ok, lock_free;
    trylock(got);
    if
    :: got -> put_back(b); unlock_drain()
    :: else ->
#ifdef REORDER
       lock_free = (lock == 0);
#endif
       do
       :: h = deferred;
          next[b] = h;
          atomic { if :: deferred == h -> deferred = b; ok = 1 :: else -> ok = 0 fi };
          if :: ok -> break :: else -> skip fi
       od;
#ifndef REORDER
       lock_free = (lock == 0);
#endif
#ifndef NO_LOOK
       if
       :: lock_free ->
          trylock(got);
          if :: got -> unlock_drain() :: else -> skip fi
       :: else -> skip
       fi
#endif
    fi;
    atomic { done++ }
}

/* A context that takes the lock the blocking way and holds it a while. */
proctype holder()
{
    byte l, n;
    bit got, idle;
    atomic { lock == 0 -> lock = 1 };
    unlock_drain();
    atomic { done++ }
}

init
{
    byte i;
    atomic {
        run holder();
        for (i : 0 .. NFREE - 1) { run freer(i) }
    };
    done == NFREE + 1;
    assert(deferred == NIL);
    assert(lock == 0);
    for (i : 0 .. NFREE - 1) { assert(back[i]) }
}
