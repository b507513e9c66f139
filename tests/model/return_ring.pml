/*
 * return_ring.pml - a room's return ring: a bounded MPSC ring of 64-bit
 * slots, slot = (sequence << 32) | frame, after Vyukov's bounded queue.
 *
 * Slot i starts with sequence i.  A producer reads the slot at its position
 * pos; if its sequence is pos the slot is free for this lap, and the
 * producer claims pos with a CAS of the shared enqueue position pos -> pos+1
 * (bulk: pos -> pos+k, after checking the sequence of the last of the k
 * slots), then writes (pos+1) << 32 | frame with one release store.  A
 * sequence below pos means the ring is full: the producer sends the frame
 * another way (the zone).  The single consumer (the room's owner) reads the
 * slot at its position cpos, takes it if its sequence is cpos+1, and frees
 * it by writing (cpos+size) << 32; at a slot not yet written it stops.
 *
 * A signal handler may interrupt a producer anywhere, also between its
 * claim and its write, and produce itself: it takes the next slot and never
 * waits for the interrupted one (the consumer waits instead).
 *
 * Checked: no frame lost or duplicated (each frame is consumed or sent the
 * other way, once), no slot overwritten before it is consumed, the consumer
 * reads the frame that was written; no context is stuck.
 *
 * Mutants that must fail (tests/model/run.sh):
 *   -DNO_SEQ_CHECK     a producer claims without checking the sequence
 *   -DBULK_FIRST_ONLY  a bulk claim checks the first slot, not the last
 *   -DFREE_BEFORE_READ the consumer frees the slot before it reads it
 *   -DHANDLER_WAITS    producers publish in order (wait for the slot
 *                      before theirs to be written): the handler waits for
 *                      the producer it interrupted, a deadlock
 */
#define SIZE 2
#define MASK 1
#define K 2                  /* the bulk producer's batch */
#define NFRAMES 5            /* 0: thread A, 1: A's signal handler, 2-3: B's bulk, 4: C */
#define NPROD 3

byte seq[SIZE];              /* with frm[], one 64-bit word: written together */
byte frm[SIZE];
byte enq = 0;                /* the shared enqueue position */
byte where[NFRAMES];         /* 0 not sent, 1 in the ring, 2 consumed, 3 sent another way */
byte pdone = 0;

inline fall_back(f) {
    assert(where[f] == 0);
    where[f] = 3
}

inline publish(p, f) {
    atomic {
        assert(seq[(p) & MASK] == (p));      /* free for this lap: nothing overwritten */
        assert(where[f] == 0);
        seq[(p) & MASK] = (p) + 1;
        frm[(p) & MASK] = f;
        where[f] = 1
    }
}

#ifdef HANDLER_WAITS
#define WAIT_FOR_PREDECESSOR(p) if :: (p) > 0 -> (seq[((p) - 1) & MASK] != (p) - 1) :: else -> skip fi
#else
#define WAIT_FOR_PREDECESSOR(p) skip
#endif

/* Claim one slot: ringfull = 1 if the ring is full. */
inline claim1(pos, s, ok, ringfull) {
    ringfull = 0;
    pos = enq;
    do
    :: s = seq[pos & MASK];
#ifdef NO_SEQ_CHECK
       s = pos;
#endif
       if
       :: s == pos ->
          atomic { if :: enq == pos -> enq = pos + 1; ok = 1 :: else -> pos = enq; ok = 0 fi };
          if :: ok -> break :: else -> skip fi
       :: s < pos -> ringfull = 1; break
       :: s > pos -> pos = enq
       fi
    od
}

/* The handler's whole production, run inside the producer it interrupts. */
inline handler() {
    claim1(hpos, hs, hok, hringfull);
    if
    :: hringfull -> fall_back(1)
    :: else -> WAIT_FOR_PREDECESSOR(hpos); publish(hpos, 1)
    fi
}

inline maybe_interrupt() {
    if :: !handled -> handled = 1; handler() :: true -> skip fi
}

proctype thread_a()
{
    byte pos, s, hpos, hs;
    bit ok, ringfull, hok, hringfull, handled;
    maybe_interrupt();
    claim1(pos, s, ok, ringfull);
    maybe_interrupt();
    if
    :: ringfull -> fall_back(0)
    :: else -> WAIT_FOR_PREDECESSOR(pos); maybe_interrupt(); publish(pos, 0)
    fi;
    maybe_interrupt();
    if :: !handled -> handled = 1; handler() :: else -> skip fi;
    atomic { pdone++ }
}

proctype bulk_b()
{
    byte pos, s, i;
    bit ok, ringfull;
    pos = enq;
    do
    :: s = seq[(pos + K - 1) & MASK];
#ifdef BULK_FIRST_ONLY
       s = seq[pos & MASK] + K - 1;
#endif
       if
       :: s == pos + K - 1 ->
          atomic { if :: enq == pos -> enq = pos + K; ok = 1 :: else -> pos = enq; ok = 0 fi };
          if :: ok -> break :: else -> skip fi
       :: s < pos + K - 1 -> ringfull = 1; break
       :: s > pos + K - 1 -> pos = enq
       fi
    od;
    if
    :: ringfull -> fall_back(2); fall_back(3)
    :: else ->
       WAIT_FOR_PREDECESSOR(pos);
       for (i : 0 .. K - 1) { publish(pos + i, 2 + i) }
    fi;
    atomic { pdone++ }
}

proctype thread_c()
{
    byte pos, s;
    bit ok, ringfull;
    claim1(pos, s, ok, ringfull);
    if
    :: ringfull -> fall_back(4)
    :: else -> WAIT_FOR_PREDECESSOR(pos); publish(pos, 4)
    fi;
    atomic { pdone++ }
}

proctype consumer()
{
    byte cpos = 0, s, f;
    /* A slot not written yet stops the consumer until something changes
     * (the owner comes back later): a blocking guard, so a producer that
     * never writes shows as a stuck system, not as a busy loop. */
    do
    :: atomic { seq[cpos & MASK] == cpos + 1 -> s = seq[cpos & MASK]; f = frm[cpos & MASK] };
       if
       :: s == cpos + 1 ->
#ifdef FREE_BEFORE_READ
          seq[cpos & MASK] = cpos + SIZE;
          f = frm[cpos & MASK];
#endif
          assert(where[f] == 1);
          where[f] = 2;
#ifndef FREE_BEFORE_READ
          seq[cpos & MASK] = cpos + SIZE;
#endif
          cpos++
       fi
    :: atomic { pdone == NPROD && seq[cpos & MASK] != cpos + 1 } -> break
    od
}

init
{
    byte i;
    atomic {
        for (i : 0 .. SIZE - 1) { seq[i] = i };
        run thread_a();
        run bulk_b();
        run thread_c();
        run consumer()
    };
    (_nr_pr == 1);           /* every process has ended */
    for (i : 0 .. NFRAMES - 1) { assert(where[i] == 2 || where[i] == 3) }
}
