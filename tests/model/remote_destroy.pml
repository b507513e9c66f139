/*
 * remote_destroy.pml - frees from other contexts to a room against the
 * room's destruction (src/room.c: room_ring_push, lab_room_destroy,
 * ring_flush_dead).
 *
 * A freer reserves a slot of the room's return ring (CAS of ring_head),
 * then looks at `dead`: alive, it publishes its frame; dead, it publishes a
 * tombstone, sends its frame to the zone and flushes the ring without
 * waiting for unpublished slots.  Destroy sets `dead`, sends what the owner
 * took back to the zone, then flushes the ring, waiting for every slot
 * reserved before its look at ring_head.  One flusher at a time
 * (flush_busy); a flusher looks at the ring again after letting go.
 *
 * Reclaim may be stealing the idle room meanwhile (handoff.c: room_steal,
 * take_remote with to_zone): it sets `steal`, looks at `dead` and, alive,
 * sends the ring's published blocks to the zone; destroy waits for `steal`
 * to clear before it flushes.  A late freer may flush while the steal is
 * at work (it saw `dead` after the steal's look), so the steal takes the
 * ring only if it gets flush_busy, and skips tombstones.
 *
 * Checked: once every context is done, every frame is in the zone exactly
 * once and no frame is left in the dead room's ring; no context is stuck;
 * no tombstone is reported as a bad free.
 *
 * Mutants that must fail (tests/model/run.sh):
 *   -DNO_DEAD_CHECK     the freer publishes without looking at `dead`
 *   -DREORDER           the freer's look at `dead`, and destroy's look at
 *                       ring_head, happen before their own writes are
 *                       visible (what weaker orders than seq_cst allow)
 *   -DDESTROY_GIVES_UP  destroy returns when another context holds
 *                       flush_busy (it waits for it)
 *   -DSTEAL_NO_FLAG     the steal consumes the ring without flush_busy
 *   -DSTEAL_NO_SKIP     the steal takes a tombstone for a block (a report)
 *   -DSTEAL_TAIL_UNHELD the steal writes the tail it read back even when a
 *                       flush holds the ring
 */
#define NIL 255
#define TOMB 254
#define SIZE 4
#define MASK 3
#define NFREE 2              /* frees from other contexts, one frame each */
#define NOWNED 1             /* frames the owner took back before destroy */
#define NFRAMES (NFREE + NOWNED)

byte seq[SIZE];              /* with frm[], one 64-bit slot */
byte frm[SIZE];
byte head = 0;               /* ring_head */
byte tail = 0;               /* ring_tail: the owner's, then the flusher's */
bit  dead = 0;
bit  busy = 0;               /* flush_busy */
bit  steal = 0;
bit  idle = 0;               /* the owner has left its last call: reclaim may steal */
bit  reported = 0;           /* a misuse report */
bit  zone[NFRAMES];
byte done = 0;

inline to_zone(f) {
    assert(!zone[f]);
    zone[f] = 1
}

/* ring_flush_dead(wait) */
inline flush(wait) {
    do
    :: atomic {
           if
           :: busy == 0 -> busy = 1; got = 1
           :: else -> got = 0
           fi
       };
       if
       :: !got ->
#ifdef DESTROY_GIVES_UP
          break
#else
          if
          :: wait -> busy == 0      /* destroy waits for the holder */
          :: else -> break
          fi
#endif
       :: else ->
          h = head;
          do
          :: tail != h ->
             if
             :: seq[tail & MASK] == tail + 1 ->
                if :: frm[tail & MASK] != TOMB -> to_zone(frm[tail & MASK]) :: else -> skip fi;
                seq[tail & MASK] = tail + SIZE;
                tail++
             :: else ->
                if
                :: wait -> seq[tail & MASK] == tail + 1   /* reserved: wait for it */
                :: else -> break
                fi
             fi
          :: else -> break
          od;
          busy = 0;
          if
          :: seq[tail & MASK] == tail + 1 -> skip       /* published meanwhile: again */
          :: else -> break
          fi
       fi
    od
}

proctype freer(byte f)
{
    byte pos, h;
    bit ok, d, got, isfull;
    if
    :: dead -> to_zone(f)
    :: else ->
#ifdef REORDER
       d = dead;
#endif
       pos = head;
       do
       :: if
          :: seq[pos & MASK] == pos ->
             atomic { if :: head == pos -> head = pos + 1; ok = 1 :: else -> pos = head; ok = 0 fi };
             if :: ok -> break :: else -> skip fi
          :: seq[pos & MASK] < pos -> isfull = 1; break
          :: seq[pos & MASK] > pos -> pos = head
          fi
       od;
       if
       :: isfull -> to_zone(f)
       :: else ->
#if !defined(REORDER)
          d = dead;
#endif
#ifdef NO_DEAD_CHECK
          d = 0;
#endif
          if
          :: d -> atomic { seq[pos & MASK] = pos + 1; frm[pos & MASK] = TOMB };
                  to_zone(f);
                  flush(0)
          :: else -> atomic { seq[pos & MASK] = pos + 1; frm[pos & MASK] = f }
          fi
       fi
    fi;
    atomic { done++ }
}

/* Reclaim's steal of the idle room: the ring's part of it. */
proctype stealer()
{
    byte t, f;
    bit held;
    idle == 1;
    steal = 1;
    if
    :: dead -> skip
    :: else ->
#ifdef STEAL_NO_FLAG
       held = 1;
#else
       atomic { if :: busy == 0 -> busy = 1; held = 1 :: else -> held = 0 fi };
#endif
       t = tail;
       if
       :: held ->
          do
          :: seq[t & MASK] == t + 1 ->
             f = frm[t & MASK];
             seq[t & MASK] = t + SIZE;
             t++;
             if
             :: f != TOMB -> to_zone(f)
#ifdef STEAL_NO_SKIP
             :: else -> reported = 1
#else
             :: else -> skip
#endif
             fi
          :: else -> break
          od;
          tail = t;
#ifndef STEAL_NO_FLAG
          busy = 0
#endif
#ifdef STEAL_TAIL_UNHELD
       :: else -> tail = t
#else
       :: else -> skip
#endif
       fi
    fi;
    steal = 0;
    atomic { done++ }
}

/* The owner: takes back what is published now and then, then destroys. */
proctype owner()
{
    byte h, i;
    bit got;
    bit mine[NFRAMES];
    do
    :: seq[tail & MASK] == tail + 1 ->
       mine[frm[tail & MASK]] = 1;
       seq[tail & MASK] = tail + SIZE;
       tail++
    :: break
    od;
    idle = 1;
#ifdef REORDER
    h = head;                /* destroy's look at ring_head, hoisted */
    dead = 1;
#else
    dead = 1;
#endif
    for (i : 0 .. NFRAMES - 1) { if :: mine[i] -> to_zone(i) :: else -> skip fi };
    steal == 0;              /* a steal that looked at `dead` before it was set */
#ifdef REORDER
    /* flush with the early look at ring_head */
    got = 0;
    atomic { busy == 0 -> busy = 1 };
    do
    :: tail != h ->
       seq[tail & MASK] == tail + 1;
       if :: frm[tail & MASK] != TOMB -> to_zone(frm[tail & MASK]) :: else -> skip fi;
       seq[tail & MASK] = tail + SIZE;
       tail++
    :: else -> break
    od;
    busy = 0;
#else
    flush(1);
#endif
    atomic { done++ }
}

init
{
    byte i;
    atomic {
        for (i : 0 .. SIZE - 1) { seq[i] = i };
        /* the owner's frame went out and came back through the ring earlier */
        seq[0] = 1; frm[0] = NFREE; head = 1;
        run owner();
        run stealer();
        for (i : 0 .. NFREE - 1) { run freer(i) }
    };
    done == NFREE + 2;
    assert(!reported);
    for (i : 0 .. NFRAMES - 1) { assert(zone[i]) };
    /* no frame left in the ring */
    for (i : 0 .. SIZE - 1) { assert(seq[i] != tail + 1 || frm[i] == TOMB || zone[frm[i]]) }
}
