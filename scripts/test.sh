#!/usr/bin/env bash
# Configure (if needed), build and ctest each tree in $LAB_TEST_BUILDS, in
# order; run them all, then fail if any failed.  Called by `make test`.
#   build        RelWithDebInfo
#   build-debug  Debug, LAB_DEBUG=ON: the release fast paths with the debug
#                checks compiled in around them (tests/README.md)
#   build-asan   LAB_SANITIZE=address (ASan+UBSan), LAB_DEBUG=ON, clang if present;
#                its benchmark programs (a sanitizer tree builds no peer) with
#                both diagnostic options on, so that they compile
#   build-asan-fast  ASan+UBSan on the release fast paths: no LAB_DEBUG, no
#                page hooks (freed pages not poisoned), so the owner's step 1,
#                the hand-off and the bulk calls run as users run them
#   build-tsan   LAB_SANITIZE=thread, clang if present
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
BUILDS=${LAB_TEST_BUILDS:-build build-debug build-asan build-asan-fast build-tsan}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
# Warnings are errors here (CI runs this), not in a user's plain build.
WERROR=-DLAB_WERROR=${LAB_WERROR:-ON}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

if command -v clang >/dev/null 2>&1; then SAN_CC=clang; else SAN_CC=gcc; fi

failed=()
n=0
for tree in $BUILDS; do
    n=$((n + 1))
    cc=()
    case $tree in
        build)       flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
        build-debug) flags=(-DCMAKE_BUILD_TYPE=Debug -DLAB_DEBUG=ON) ;;
        build-asan)  flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DLAB_DEBUG=ON -DLAB_SANITIZE=address
                            -DLAB_BENCH_STEPS=ON -DLAB_BENCH_TOUCH_SPREAD=ON)
                     cc=(env CC="$SAN_CC") ;;
        build-asan-fast) flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DLAB_SANITIZE=address -DLAB_ASAN_PAGE_HOOKS=OFF)
                     cc=(env CC="$SAN_CC") ;;
        build-tsan)  flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DLAB_SANITIZE=thread)
                     cc=(env CC="$SAN_CC") ;;
        *) echo "make test: unknown build tree '$tree' (known: build build-debug build-asan build-asan-fast build-tsan)" >&2
           failed+=("$tree"); continue ;;
    esac
    echo
    echo "===== make test: $tree (${flags[*]}${cc:+ CC=$SAN_CC}) ====="
    if [[ ! -f $tree/CMakeCache.txt ]]; then
        if ! "${cc[@]}" cmake -S . -B "$tree" "$WERROR" "${flags[@]}"; then
            echo "make test: $tree: configure failed"; failed+=("$tree"); continue
        fi
    fi
    if ! cmake --build "$tree" -j"$JOBS"; then
        echo "make test: $tree: build failed"; failed+=("$tree"); continue
    fi
    if ! (cd "$tree" && ctest --output-on-failure --no-tests=error -j"$JOBS"); then
        echo "make test: $tree: tests failed"; failed+=("$tree")
    fi
done

echo
if [[ ${#failed[@]} -eq 0 ]]; then
    echo "make test: all $n builds passed"
else
    echo "make test: ${#failed[@]} of $n builds FAILED: ${failed[*]}"
    exit 1
fi
