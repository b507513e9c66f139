#!/usr/bin/env bash
# Cross-build Labyrinth for aarch64 Linux with Debian's gcc-aarch64-linux-gnu
# (cmake/aarch64-linux-gnu.cmake) and run the release test suite under
# qemu-user's qemu-aarch64, which CTest prepends to every test
# (CMAKE_CROSSCOMPILING_EMULATOR).  Called by `make test-aarch64`, after
# scripts/need.sh has checked for the cross compiler and qemu-aarch64.
#
# What the aarch64 run leaves out, and why:
#   - bench/ is not built: figures under an emulator mean nothing, and the
#     peers need the other allocators built for aarch64.
#   - install_consumers and the valgrind tests are not registered: they run
#     host programs (the host's compiler and valgrind), not aarch64 code.
#   - Skipped by CTest (exit 77), each printing its reason below: what they
#     measure is the emulator's, not the library's.
#       test_atomic_syscalls: qemu-user implements no seccomp filter.
#       test_realtime.test_prefault_arena_serves_atomic_requests_without_page_faults:
#         qemu-user drops MAP_POPULATE and MADV_POPULATE_WRITE; the page faults
#         counted are the emulator's.
#       test_void.test_64gib_lazy_arena_is_created_fast_and_costs_little:
#         qemu-user keeps per-page flags for a 64 GiB reservation (seconds,
#         hundreds of MiB of RSS).
#       test_config.test_the_largest_order_there_is_is_served and
#       test_config.test_min_is_capped_at_256_mib_in_huge_arenas: the same,
#         for 64 GiB and 8 TiB arenas.
#   - Trimmed for CI time: test_signals' storms deliver 25000 signals instead
#     of 100000 (LAB_SIGNAL_STORM, tests/CMakeLists.txt).
# Everything else runs as in the native release tree.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
TREE=${LAB_AARCH64_TREE:-build-aarch64}
JOBS=${JOBS:-2}
WERROR=-DLAB_WERROR=${LAB_WERROR:-ON}    # as scripts/test.sh

echo "===== make test-aarch64: $TREE (cross: cmake/aarch64-linux-gnu.cmake, tests under qemu-aarch64) ====="
start=$SECONDS
if [[ ! -f $TREE/CMakeCache.txt ]]; then
    cmake -S . -B "$TREE" -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake "$WERROR" \
          -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLAB_BUILD_BENCH=OFF || exit 1
fi
cmake --build "$TREE" -j"$JOBS" || { echo "make test-aarch64: build failed"; exit 1; }
built=$SECONDS

# A native binary here would make the whole run meaningless.
machine=$(readelf -h "$TREE/tests/test_buddy" 2>/dev/null | sed -n 's/^ *Machine: *//p')
if [[ $machine != AArch64 ]]; then
    echo "make test-aarch64: $TREE/tests/test_buddy is built for '$machine', not AArch64" >&2
    exit 1
fi

(cd "$TREE" && ctest --output-on-failure --no-tests=error -j"$JOBS")
rc=$?
echo "make test-aarch64: skip reasons:"
awk '/^[0-9]+\/[0-9]+ Testing: / { name = $3 }
     /^SKIP under/ { sub(/^SKIP under [^:]*: /, ""); print "  " name ": " $0 }' \
    "$TREE/Testing/Temporary/LastTest.log"
echo "make test-aarch64: build $((built - start)) s, tests $((SECONDS - built)) s"
exit $rc
