#!/usr/bin/env bash
# Prove that src/core is freestanding: compile it with no C library and no
# system header (only the compiler's own: stddef, stdint, stdbool,
# stdatomic, limits), link it into one relocatable object, and check that
# every symbol it leaves undefined is a primitive of the platform contract
# (src/platform/platform.h) or memset/memcpy/memmove, which the contract
# also names.
#   scripts/check-core.sh [CC]     default: cc; e.g. aarch64-linux-gnu-gcc
set -euo pipefail
cd "$(dirname "$0")/.."
CC="${1:-${CC:-cc}}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

flags=(-std=c11 -O2 -Wall -Wextra -Werror -ffreestanding -fno-builtin -nostdlib -nostdinc
       -fno-stack-protector -isystem "$("$CC" -print-file-name=include)" -Iinclude -DLAB_FREESTANDING)
case "$("$CC" -dumpmachine)" in
aarch64*) flags+=(-mno-outline-atomics) ;;   # else the atomics call libgcc helpers
esac
# Release and debug builds: the debug one compiles in the assertions and
# the checks after every operation, which must need nothing more.
for build in release debug; do
    extra=()
    [[ $build == debug ]] && extra=(-DLAB_DEBUG=1)
    mkdir -p "$out/$build"
    for f in src/core/*.c; do
        "$CC" "${flags[@]}" "${extra[@]}" -c "$f" -o "$out/$build/$(basename "$f" .c).o"
    done
    "$CC" -r -nostdlib "$out/$build"/*.o -o "$out/core-$build.o"
done

allowed=$( { grep -o 'plat_[a-z_]*(' src/platform/platform.h | tr -d '('; printf '%s\n' memset memcpy memmove; } | sort -u)
undefined=$(nm -u "$out"/core-*.o | awk 'NF == 2 {print $2}' | sort -u)
extra=$(comm -23 <(echo "$undefined") <(echo "$allowed"))
if [[ -n "$extra" ]]; then
    echo "check-core: src/core needs symbols outside the platform contract:" >&2
    echo "$extra" | sed 's/^/  /' >&2
    exit 1
fi
echo "check-core: src/core ($("$CC" -dumpmachine)) is freestanding; it needs only:"
echo "$undefined" | tr '\n' ' ' | fold -s -w 76 | sed 's/^/  /'
echo
