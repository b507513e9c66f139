#!/usr/bin/env python3
"""Write the seed corpus of fuzz/fuzz_api.c into fuzz/corpus/.

Each seed is one small hand-made input in the harness's format (see the
header comment of fuzz_api.c): a 12-byte arena header, then operations.
Together they cover every operation kind, every configuration error and
the arena flags.  Run from anywhere: python3 fuzz/make_seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")

# GFP bits (include/labyrinth.h)
HIGH, DIRECT_RECLAIM, WAKE_RECLAIM, ZERO, NOWARN = 1, 2, 4, 8, 16
NORETRY, RETRY_MAYFAIL, NOFAIL, MEMALLOC, NOMEMALLOC = 32, 64, 128, 256, 512
ATOMIC, NOWAIT, KERNEL = HIGH | WAKE_RECLAIM, WAKE_RECLAIM, DIRECT_RECLAIM | WAKE_RECLAIM

# mode bits of header byte 0 (when not a configuration-error test)
MLOCK_MODE, HUGEPAGES_MODE, FAIL_ENV_MODE = 1, 2, 4

# arena flag bits of header byte 4
POISON, GUARD, PREFAULT, MADV_FREE, PROTECT_FREE, SUPPLIED, TRIM_DELAY, FAST_KSWAPD = (1 << i for i in range(8))

# opcodes
(OP_ALLOC, OP_ALLOC2, OP_FREE, OP_ROOM_CREATE, OP_ROOM_ALLOC, OP_ROOM_DESTROY, OP_MISUSE_FREE,
 OP_MISUSE_ROOM_FREE, OP_TRIM, OP_FAULT, OP_BURST_ALLOC, OP_BURST_FREE, OP_MISC, OP_ROOM_BURST,
 OP_FREE_ROOM_REMOTE, OP_BULK_FREE, OP_ROOM_BULK) = range(17)


def header(pages, max_order, flags=0, wk=0, w=(0, 0, 0), mode=0, fail_env=None):
    """fail_env: (probability, interval, times, min_order, ignore_blocking) for
    LAB_FAIL_PAGE_ALLOC at creation (sets mode bit 2)."""
    h = struct.pack("<BHBBBHHH", mode | (FAIL_ENV_MODE if fail_env else 0), pages - 1, max_order, flags, wk, *w)
    if fail_env:
        p, i, t, o, ib = fail_env
        h += struct.pack("<BBbBB", p, i, t, o, ib)
    return h


def alloc(gfp, order, ctl=0):
    return struct.pack("<BHBB", OP_ALLOC, gfp, order, ctl)


def free(idx=0, method=0):
    return struct.pack("<BHB", OP_FREE, idx, method)


def room_create(reserve, batch, high, quota=None):
    # pick_size selectors 0 (v % 16, v % 64, v % 256); quota via selector 1 (v % 8)
    sel = 0 if quota is None else 0x40
    return struct.pack("<BBBBBB", OP_ROOM_CREATE, reserve, batch, high, quota or 0, sel)


def room_alloc(room, gfp, ctl=0):
    return struct.pack("<BBHB", OP_ROOM_ALLOC, room, gfp, ctl)


def room_destroy(room):
    return struct.pack("<BB", OP_ROOM_DESTROY, room)


def misuse_free(kind, x=0, y=0, extra=0):
    return struct.pack("<BBHBH", OP_MISUSE_FREE, kind, x, y, extra)


def misuse_room_free(room, kind, x=0, y=0, extra=0):
    return struct.pack("<BBBHBH", OP_MISUSE_ROOM_FREE, room, kind, x, y, extra)


def trim():
    return bytes([OP_TRIM])


def fault(prob, times, interval=1, min_order=0, fl=0):
    return struct.pack("<BBbBBB", OP_FAULT, prob, times, interval, min_order, fl)


def burst_alloc(gfp, order, n):
    return struct.pack("<BHBB", OP_BURST_ALLOC, gfp, order, n - 1)


def burst_free(n, method=0):
    return struct.pack("<BBB", OP_BURST_FREE, n - 1, method)


def misc(sel):
    return struct.pack("<BB", OP_MISC, sel)


def room_burst(room, gfp, n):
    return struct.pack("<BBHB", OP_ROOM_BURST, room, gfp, n - 1)


def free_room_remote(n):
    return struct.pack("<BB", OP_FREE_ROOM_REMOTE, n - 1)


def bulk_free(order_sel, entries):
    """entries: (e, x) pairs; e % 4: 0/1 a live block, 2 a bad address, 3 NULL or a repeat"""
    return struct.pack("<BBB", OP_BULK_FREE, len(entries) - 1, order_sel) + b"".join(
        struct.pack("<BH", e, x) for e, x in entries)


def room_bulk(room, g, n_alloc, entries):
    """lab_room_alloc_bulk of n_alloc, then lab_room_free_bulk of entries
    (kind, u16): kind mod 8 as op_room_bulk reads it."""
    return struct.pack("<BBBBB", OP_ROOM_BULK, room, g, n_alloc, len(entries) - 1) + b"".join(
        struct.pack("<BH", e, x) for e, x in entries)


SEEDS = {
    "basic_alloc_free": header(64, 4) + b"".join(alloc(NOWAIT, o) for o in range(5))
        + free(0) + free(1, 1) + alloc(ZERO | NOWAIT, 2) + alloc(NOWAIT, 0, ctl=1) + free(2),
    "memalloc_iff": header(32, 5, wk=1, w=(4, 0, 0)) + burst_alloc(MEMALLOC, 0, 40) + free(3) + free(7)
        + alloc(MEMALLOC, 1) + alloc(MEMALLOC, 0) + alloc(MEMALLOC | NOMEMALLOC, 0) + burst_free(10)
        + alloc(MEMALLOC, 3) + alloc(MEMALLOC, 5),
    "watermarks": header(128, 6, wk=2, w=(8, 16, 24)) + burst_alloc(NOWAIT, 0, 64) + burst_alloc(NOWAIT, 0, 64)
        + alloc(ATOMIC, 0) + alloc(HIGH | DIRECT_RECLAIM | NORETRY, 0) + alloc(ATOMIC | NOWARN, 2)
        + burst_free(30) + alloc(KERNEL | NORETRY, 3) + alloc(KERNEL, 0, ctl=0x0e),
    "rooms": header(256, 8) + room_create(4, 8, 16) + room_burst(0, NOWAIT, 40) + free_room_remote(10)
        + room_alloc(0, NOWAIT) + room_alloc(0, ATOMIC) + free(5, 1) + free(6, 0) + room_create(2, 4, 0)
        + room_burst(1, ATOMIC, 20) + room_destroy(0) + room_alloc(0, NOWAIT) + misuse_room_free(0, 0x30)
        + free_room_remote(32),
    "room_quota_reserve": header(64, 3, wk=3, w=(6, 0, 0)) + room_create(2, 3, 4, quota=6)
        + room_burst(0, NOWAIT, 10) + room_burst(0, ATOMIC, 4) + free_room_remote(2) + room_alloc(0, NOWAIT)
        + burst_alloc(MEMALLOC, 0, 64) + room_alloc(0, ATOMIC) + room_alloc(0, KERNEL | NOFAIL),
    "misuse_free": header(64, 4) + alloc(NOWAIT, 2) + alloc(NOWAIT, 1) + alloc(NOWAIT, 0) + free(2)
        + b"".join(misuse_free(k, x=k, y=(k * 37) % 256, extra=k * 101) for k in range(8))
        + misuse_free(2) + misuse_free(6, y=3),
    "misuse_room_free": header(64, 4) + room_create(1, 4, 8) + room_alloc(0, NOWAIT) + alloc(NOWAIT, 1)
        + b"".join(misuse_room_free(0, k, x=k, y=k) for k in range(8)) + room_destroy(0)
        + misuse_room_free(0, 0x30) + misuse_room_free(0, 5, x=5),
    "guard_poison": header(64, 4, flags=GUARD | POISON) + alloc(NOWAIT, 1) + alloc(NOWAIT, 2) + alloc(NOWAIT, 4)
        + alloc(NOWAIT, 0) + misuse_free(7, x=0) + misuse_free(7, x=1) + misuse_free(1, x=0, y=2)
        + free(0) + alloc(ZERO | NOWAIT, 3),
    "trim_recommit": header(512, 9) + burst_alloc(NOWAIT, 3, 40) + burst_free(40) + trim()
        + alloc(KERNEL | NORETRY, 4) + burst_alloc(DIRECT_RECLAIM | NORETRY, 2, 30) + trim() + burst_free(10)
        + trim() + alloc(NOWAIT, 0),
    "fault_injection": header(128, 5) + fault(50, -1) + burst_alloc(NOWAIT, 0, 20) + room_create(0, 4, 8)
        + room_burst(0, NOWAIT, 10) + fault(100, 3, 2, 1, 1) + burst_alloc(NOWAIT, 1, 10)
        + fault(200, 1) + fault(10, -5) + fault(0, 0, fl=0x80) + alloc(NOWAIT, 0),
    "highatomic": header(1024, 10) + burst_alloc(ATOMIC, 2, 30) + burst_alloc(ATOMIC, 3, 10) + burst_free(20)
        + alloc(ATOMIC, 4) + alloc(KERNEL | NORETRY, 9),
    "supplied_prefault_protect": header(96, 5, flags=SUPPLIED | PREFAULT | PROTECT_FREE | MADV_FREE)
        + burst_alloc(NOWAIT, 1, 10) + burst_free(10) + trim() + burst_alloc(KERNEL | NORETRY, 0, 60),
    "async_trim_kswapd": header(300, 7, flags=TRIM_DELAY | FAST_KSWAPD | POISON) + burst_alloc(NOWAIT, 0, 250)
        + room_create(3, 8, 16) + room_burst(0, NOWAIT, 20) + free_room_remote(20) + burst_free(64)
        + trim() + burst_alloc(ATOMIC, 1, 20),
    "misc": header(16, 4) + misc(0) + misc(6) + misc(1) + misc(2) + misc(3) + alloc(NOWAIT, 0) + misc(0),
    "shrinkers": header(64, 4, wk=3, w=(8, 0, 0)) + misc(4) + misc(5) + burst_alloc(NOWAIT, 0, 60)
        + alloc(KERNEL | NORETRY, 2) + alloc(KERNEL | NORETRY, 0) + misc(10) + burst_alloc(NOWAIT, 1, 10)
        + alloc(KERNEL | NORETRY, 1) + misc(10) + alloc(KERNEL | NORETRY, 3),
    "big_arena": header(4096, 12) + alloc(NOWAIT, 12) + alloc(MEMALLOC, 12) + alloc(MEMALLOC, 11)
        + alloc(NOWAIT | 0, 0x80 | 13) + free(0) + alloc(MEMALLOC | ZERO, 10),
    "odd_size": header(1000, 12, wk=1, w=(10, 0, 0)) + burst_alloc(MEMALLOC, 9, 4) + burst_alloc(MEMALLOC, 3, 64)
        + burst_free(64) + alloc(MEMALLOC, 9),
    "room_bulk": header(128, 5) + room_create(0, 8, 128) + room_create(0, 8, 16) + room_burst(1, NOWAIT, 4)
        + room_bulk(0, 0, 24, [(0, i) for i in range(10)] + [(4, 3), (5, 0), (0, 10), (7, 0), (0, 11), (6 | (5 << 3), 2)])
        + room_bulk(0, 2, 40, [(0, i) for i in range(30)]) + room_burst(0, NOWAIT, 6) + room_destroy(0)
        + room_bulk(0, 1, 3, [(0, 0), (4, 0), (0, 1)]),
    "bulk_free": header(128, 5) + room_create(0, 8, 16) + room_burst(0, NOWAIT, 12) + burst_alloc(NOWAIT, 0, 6)
        + alloc(NOWAIT, 2) + bulk_free(0x80, [(0x80, i) for i in range(8)] + [(7, 0), (3, 0), (2 | (3 << 2), 1)])
        + room_create(0, 4, 8) + room_burst(1, NOWAIT, 6)
        + bulk_free(0x80, [(0x81, 0), (0x81, 1), (0x81, 2), (4 | 3, 0), (0, 9), (2 | (5 << 2), 3)])
        + bulk_free(0x82, [(0, 0)]) + bulk_free(0, [(1, 0), (1, 1)]),
    # a batch-1 room (high 4): bulk frees of runs longer and shorter than the
    # stock takes at once, remote frees, and the owner's frees after them
    "bulk_remote_batch1": header(128, 5) + room_create(0, 1, 4) + room_burst(0, NOWAIT, 7)
        + bulk_free(0x80, [(0x80, i) for i in range(7)]) + room_alloc(0, NOWAIT) + room_burst(0, NOWAIT, 3)
        + burst_free(4, 1) + room_burst(0, NOWAIT, 3) + bulk_free(0x80, [(0x80, i) for i in range(3)])
        + room_alloc(0, NOWAIT) + room_burst(0, NOWAIT, 12) + free_room_remote(5)
        + bulk_free(0x80, [(0x80, i) for i in range(7)]) + room_alloc(0, NOWAIT)
        + room_burst(0, NOWAIT, 9) + burst_free(9, 1) + room_burst(0, ATOMIC, 2) + room_destroy(0),
    # LAB_ARENA_MLOCK (trim refused: trim_off) and LAB_ARENA_HUGEPAGES (whole
    # 2 MiB blocks trimmed; lab_stats.huge_mode says what the OS gave)
    "mlock": header(256, 8, mode=MLOCK_MODE) + burst_alloc(NOWAIT, 0, 40) + burst_free(20) + trim()
        + room_create(2, 8, 16) + room_burst(0, ATOMIC, 12) + alloc(KERNEL | NORETRY, 3) + trim(),
    "hugepages": header(1024, 10, mode=HUGEPAGES_MODE) + burst_alloc(NOWAIT, 6, 8) + burst_free(8) + trim()
        + alloc(NOWAIT, 0) + alloc(KERNEL | NORETRY, 9) + burst_alloc(ATOMIC, 2, 10) + trim(),
    # LAB_FAIL_PAGE_ALLOC at creation: every third decision fails, five times;
    # then half of them at random, as long as it lasts
    "fail_page_alloc_env": header(128, 5, fail_env=(100, 3, 5, 0, 0)) + burst_alloc(NOWAIT, 0, 12)
        + room_create(0, 4, 8) + room_burst(0, NOWAIT, 10) + alloc(KERNEL | NORETRY, 2) + burst_free(6)
        + room_burst(0, ATOMIC, 6),
    "fail_page_alloc_env_random": header(128, 5, fail_env=(50, 1, -1, 1, 1)) + burst_alloc(NOWAIT, 1, 12)
        + alloc(KERNEL | NORETRY, 2) + room_create(0, 4, 8) + room_burst(0, NOWAIT, 10) + burst_free(12),
    # injection still on at the end: the teardown turns it off before the
    # blocking requests that release the highatomic reserve
    "fault_on_at_teardown": header(1024, 10) + burst_alloc(ATOMIC, 2, 30) + fault(100, -1, fl=0x40),
    "huge_room_batch": header(64, 4) + struct.pack("<BBBBBB", OP_ROOM_CREATE, 0, 2, 0, 0, 0x0c)
        + room_alloc(0, NOWAIT) + struct.pack("<BBBBBB", OP_ROOM_CREATE, 0, 5, 2, 0, 0x3c),
}

# The room seeds again in the default (not strict) free mode: header byte 5 bit 2.
for name in ("bulk_free", "bulk_remote_batch1", "misuse_free", "misuse_room_free", "room_bulk", "room_quota_reserve",
             "rooms"):
    data = SEEDS[name]
    SEEDS[name + "_default_free"] = data[:5] + bytes([data[5] | 4]) + data[6:]

# One seed per configuration error kind (fuzz_api.c config_error_test).
for kind in range(11):
    SEEDS["config_error_%02d" % kind] = header(8, 3, mode=0xE0 | kind) + bytes([3, 2, 1])


def main():
    # (over)writes the seeds; other inputs there, ones the fuzzer found
    # and that joined the corpus, stay
    os.makedirs(OUT, exist_ok=True)
    for name, data in sorted(SEEDS.items()):
        assert len(data) <= 4096, name
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(SEEDS), OUT))


if __name__ == "__main__":
    main()
