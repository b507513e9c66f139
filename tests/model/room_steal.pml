/*
 * room_steal.pml - a room's owner against reclaim taking an idle room's
 * stock (src/core/handoff.c: room_steal; the owner's fast paths in path.c
 * and free.c, its slow paths behind room_owner_side_mine in owner.h).
 *
 * A stock is an array addr[] of blocks, a count `n` that only the owner
 * writes and a `base` that reclaim moves: the stock is [base, n).  Two
 * gates keep the owner's fast paths: alloc_floor (0 open, MAX closed) and
 * free_limit (HIGH open, 0 closed).  A fast pop reads n, then alloc_floor,
 * and with n above it takes addr[n-1] and writes n-1; a fast push reads n,
 * then free_limit, and below it writes addr[n] and n+1.  Neither marks its
 * sequence word (seq for allocations, seq_free for frees) odd: a push
 * adds 2 at its end, a pop nothing (its pages are derived).  A slow call marks its word odd, then reads `steal`:
 * set, the call leaves the stock alone (it allocates from the zone, frees
 * to the zone); clear, it reopens the gates and, if base is above 0,
 * moves [base, n) down to [0, n-base) and writes n and base = 0, then pops
 * or pushes at the top.  It makes its word even again as it leaves.
 *
 * Reclaim sets `steal` (an exchange: another reclaim holding it means stop),
 * closes both gates, runs plat_membarrier, and takes the stock only if
 * neither word is odd (the owner was not inside a slow call) and both
 * gates are still closed (no slow call reopened them since).  It then
 * reads n as N and gives [base, N-1) to the zone, moving base to N-1; it
 * never writes n nor an entry, and never reads the top entry addr[N-1],
 * which a fast pop that read the gate before the barrier may be taking
 * (a fast push in flight writes above it).  steal_seq is odd meanwhile
 * (for lab_check).  Last it clears `steal`.
 *
 * plat_membarrier runs a full barrier on every processor running a thread
 * of the program between reclaim's close of the gates and its reads of the
 * words: an owner's gate read either comes after it (and sees them closed)
 * or belongs to the one fast call in flight.  The model is sequentially
 * consistent, which is what the barrier gives; the barrier itself is then
 * nothing but the order of reclaim's steps.  The owner runs OPS calls, each
 * an allocation or a free of a block it holds; reclaim runs STEALS steals:
 * two, so that a steal can find base above 0, left by the one before
 * (COMPACT_WHILE_STEAL fails only then).
 *
 * Checked: reclaim gives only blocks in the stock, none twice; the owner
 * pops only a block of the stock at or above base; once every context is
 * done, base <= n and every block is in exactly one place (held by the
 * owner, once in [base, n), or in the zone); no context is stuck.
 *
 * Mutants that must fail (tests/model/run.sh):
 *   -DTAKE_TOP            reclaim gives the top entry too ([base, N))
 *   -DWRITE_N             reclaim gives [base, N) and writes n = base, the
 *                         design that needed the fast paths' odd mark
 *   -DNO_COMPACT          the owner's slow call reopens the gates and
 *                         leaves base where it is
 *   -DCOMPACT_WHILE_STEAL the owner's slow call moves the stock down also
 *                         when it sees `steal` set
 *   -DNO_SEQ_CHECK        reclaim takes the stock with a word odd
 *   -DNO_GATE_RECHECK     reclaim takes the stock without re-reading the
 *                         gates, which a slow call that saw steal clear
 *                         reopened after reclaim closed them
 *   -DUNSIGNED_TOP        reclaim tests N-1 > base with N-1 unsigned, as a
 *                         size_t: an empty stock wraps (write N > base + 1)
 */
#define NB 4                 /* blocks: 0-2 in the stock, 3 held by the owner */
#define HIGH 4               /* the stock's capacity, free_limit open */
#define MAX 255              /* alloc_floor closed */
#define OPS 3                /* the owner's calls */
#define STEALS 2             /* reclaim's steals */

#define ROOM 0               /* where[]: in the stock */
#define OWNER 1              /* held by the owner */
#define ZONE 2

byte addr[HIGH];
byte n = 0, base = 0;
byte alloc_floor = 0, free_limit = HIGH;
byte seq = 0, seq_free = 0, steal_seq = 0;
bit  steal = 0;
byte where[NB];
byte done = 0;

inline to_zone(blk) {
    atomic { assert(where[blk] != ZONE); where[blk] = ZONE }
}

/* Reclaim gives a block of the stock. */
inline give(i) {
    atomic { assert(where[addr[i]] == ROOM); where[addr[i]] = ZONE }
}

/* The owner takes the stock's entry i. */
inline take(i) {
    atomic {
        assert(i >= base);
        b = addr[i];
        assert(where[b] == ROOM);
        where[b] = OWNER;
        held++
    }
}

/* The zone's own lock makes its calls atomic; it may be empty. */
inline zone_alloc() {
    atomic {
        b = 0;
        do
        :: b < NB && where[b] != ZONE -> b++
        :: else -> break
        od;
        if
        :: b < NB -> where[b] = OWNER; held++
        :: else -> skip
        fi
    }
}

inline zone_free() {
    to_zone(b);
    held--
}

/* In a slow call that saw steal clear (or, mutated, any slow call). */
inline compact() {
#ifdef NO_COMPACT
    skip
#else
    B = base;
    if
    :: B > 0 ->
       N = n;
       for (i : B .. N - 1) { addr[i - B] = addr[i] };
       n = N - B;
       base = 0
    :: else -> skip
    fi
#endif
}

inline reopen() {
    alloc_floor = 0;
    free_limit = HIGH
}

proctype owner()
{
    byte op, N, F, L, B, b, i, held = 1;
    for (op : 1 .. OPS) {
        if
        :: true ->                                   /* an allocation */
           N = n;
           F = alloc_floor;
           if
           :: N > F ->                               /* fast pop */
              take(N - 1);
              n = N - 1;
              seq = seq + 2
           :: else ->                                /* slow */
              seq++;
              if
              :: steal ->
#ifdef COMPACT_WHILE_STEAL
                 compact();
#endif
                 zone_alloc()
              :: else ->
                 reopen();
                 compact();
                 N = n;
                 if
                 :: N > 0 -> take(N - 1); n = N - 1
                 :: else -> zone_alloc()
                 fi
              fi;
              seq++
           fi
        :: held > 0 ->                               /* a free */
           atomic {                                  /* the lowest block it holds */
               b = 0;
               do
               :: where[b] != OWNER -> b++
               :: else -> break
               od
           };
           N = n;
           L = free_limit;
           if
           :: N < L ->                               /* fast push */
              atomic { addr[N] = b; where[b] = ROOM; held-- };
              n = N + 1;
              seq_free = seq_free + 2
           :: else ->                                /* slow */
              seq_free++;
              if
              :: steal ->
#ifdef COMPACT_WHILE_STEAL
                 compact();
#endif
                 zone_free()
              :: else ->
                 reopen();
                 compact();
                 N = n;
                 if
                 :: N < HIGH -> atomic { addr[N] = b; where[b] = ROOM; held-- }; n = N + 1
                 :: else -> zone_free()
                 fi
              fi;
              seq_free++
           fi
        fi
    };
    atomic { done++ }
}

proctype reclaim()
{
    byte k, N, B, i;
    bit was, ok;
#ifdef UNSIGNED_TOP
    byte top;
#endif
    for (k : 1 .. STEALS) {
        atomic { was = steal; steal = 1 };
        if
        :: was -> goto next                          /* another reclaim has it */
        :: else -> skip
        fi;
        alloc_floor = MAX;
        free_limit = 0;
        /* plat_membarrier: the order of these steps in this model */
        ok = 1;
#ifndef NO_SEQ_CHECK
        ok = (seq & 1) == 0;
        ok = ok && (seq_free & 1) == 0;
#endif
#ifndef NO_GATE_RECHECK
        ok = ok && alloc_floor == MAX;
        ok = ok && free_limit == 0;
#endif
        if
        :: ok ->
           steal_seq++;
           N = n;
           B = base;
#if defined(TAKE_TOP) || defined(WRITE_N)
           if
           :: N > B ->
              for (i : B .. N - 1) { give(i) };
#ifdef WRITE_N
              n = B
#else
              base = N
#endif
           :: else -> skip
           fi;
#else
#ifdef UNSIGNED_TOP
           top = N - 1;                              /* wraps at 0, as a size_t */
           if
           :: top > B ->
              for (i : B .. top - 1) { give(i) };
#else
           if
           :: N > B + 1 ->
              for (i : B .. N - 2) { give(i) };
#endif
              base = N - 1
           :: else -> skip
           fi;
#endif
           steal_seq++
        :: else -> skip                              /* the owner was inside: give up */
        fi;
        steal = 0;
next:   skip
    };
    atomic { done++ }
}

init
{
    byte b, i, in_stock;
    atomic {
        addr[0] = 0; addr[1] = 1; addr[2] = 2; n = 3;
        where[3] = OWNER;
        run owner();
        run reclaim()
    };
    done == 2;
    assert(base <= n);
    for (b : 0 .. NB - 1) {
        in_stock = 0;
        for (i : base .. n - 1) { if :: addr[i] == b -> in_stock++ :: else -> skip fi };
        assert(in_stock == (where[b] == ROOM -> 1 : 0))
    }
}
