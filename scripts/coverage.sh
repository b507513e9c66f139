#!/usr/bin/env bash
# Line and branch coverage of src/ by the test suite (gcovr, Debian package).
# Called by `make coverage`.
#
# Two instrumented trees, because each compiles a different part of the
# library: build-cov-release (no LAB_DEBUG: the owner fast paths, magazines,
# bulk) and build-cov-debug (LAB_DEBUG: internal assertions, the owner
# checks, lab_check after every few operations).  Both at -O0 so that lines
# map to code.  gcovr merges them: a line is covered when either tree ran it.
#
#   LAB_COVERAGE_MIN=95   fail when line coverage of src/ is below (percent)
#   LAB_COVERAGE_HTML=1   also write build-cov-report/index.html
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
JOBS=${JOBS:-2}
MIN=${LAB_COVERAGE_MIN:-95}

command -v gcovr >/dev/null || { echo "make coverage: gcovr is not installed (scripts/deps.sh)" >&2; exit 1; }

trees=(build-cov-release build-cov-debug)
for tree in "${trees[@]}"; do
    flags=(-DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O0 -g" -DLAB_COVERAGE=ON
           -DLAB_BUILD_BENCH=OFF -DLAB_BUILD_TOOLS=OFF -DLAB_BUILD_EXAMPLES=OFF)
    [[ $tree == build-cov-debug ]] && flags+=(-DLAB_DEBUG=ON)
    if [[ ! -f $tree/CMakeCache.txt ]]; then
        cmake -S . -B "$tree" "${flags[@]}" >/dev/null || { echo "make coverage: $tree: configure failed" >&2; exit 1; }
    fi
    cmake --build "$tree" -j"$JOBS" >/dev/null || { echo "make coverage: $tree: build failed" >&2; exit 1; }
    find "$tree" -name '*.gcda' -delete
    echo "===== make coverage: $tree: ctest ====="
    # The install test builds its own copies of the library: its counts are
    # not src/'s.  test_signals' storms run to a count of deliveries, which
    # at -O0 on a loaded machine outlasts its watchdog; test_signal_storm
    # runs the same handler paths for a fixed time.  The debug tree also
    # skips the other long randomized runs: with LAB_DEBUG's checks they take
    # minutes, and the release tree runs the same code paths.
    skip='install_consumers|^test_signals'
    [[ $tree == build-cov-debug ]] && skip+='|test_threads|test_differential|test_stress|valgrind'
    (cd "$tree" && ctest -E "$skip" -j"$JOBS" --output-on-failure) || { echo "make coverage: $tree: tests failed" >&2; exit 1; }
done

mkdir -p build-cov-report
report=(gcovr -r . --filter 'src/' --gcov-ignore-parse-errors "${trees[@]}")
"${report[@]}" --txt build-cov-report/summary.txt --print-summary | grep -E "^(lines|functions|branches):" >build-cov-report/totals.txt
if [[ ${LAB_COVERAGE_HTML:-0} == 1 ]]; then
    "${report[@]}" --html-details build-cov-report/index.html >/dev/null
fi
cat build-cov-report/summary.txt
cat build-cov-report/totals.txt
line=$(sed -n 's/^lines: *\([0-9.]*\)%.*/\1/p' build-cov-report/totals.txt)
if [[ -z $line ]]; then
    echo "make coverage: no line total in gcovr's output" >&2; exit 1
fi
if awk -v l="$line" -v m="$MIN" 'BEGIN { exit !(l < m) }'; then
    echo "make coverage: line coverage of src/ ${line}% is below ${MIN}%" >&2
    exit 1
fi
echo "make coverage: line coverage of src/ ${line}% (minimum ${MIN}%)"
