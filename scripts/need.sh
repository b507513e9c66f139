#!/usr/bin/env bash
# need.sh build|test|aarch64|baremetal: make sure the tools a make target needs are here, so
# that `make demo` and `make test` work on a fresh Debian machine.
#   build  cmake and a C compiler
#   test   the same, plus clang with its sanitizer runtimes (the ASan and
#          TSan trees), pkg-config (the install test), mandoc and man (the
#          man page lint and rendering)
#   aarch64 cmake, the aarch64 cross compiler and qemu-user's qemu-aarch64
#          (make test-aarch64)
#   baremetal the C compiler, ld and objcopy, and qemu-system-x86_64
#          (make demo-baremetal)
# When something is missing it runs scripts/deps.sh, as root or through
# sudo; when it can do neither, it prints the one command that installs
# everything and fails.  LAB_NO_DEPS=1 only reports what is missing.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
what=${1:-build}

missing=()
have() { command -v "$1" >/dev/null 2>&1; }

# Sanitizer runtimes come in a separate package from clang itself: link a
# program to find out whether they are installed.
clang_sanitizers_link() {
    local out
    out=$(mktemp "${TMPDIR:-/tmp}/lab-need.XXXXXX") || return 1
    printf 'int main(void) { return 0; }\n' |
        clang -x c -fsanitize=thread -o "$out" - >/dev/null 2>&1
    local rc=$?
    rm -f "$out"
    return $rc
}

check() {
    missing=()
    have cmake || missing+=(cmake)
    have cc || have gcc || have clang || missing+=("a C compiler")
    if [[ $what == test ]]; then
        if ! have clang; then
            missing+=(clang)
        elif ! clang_sanitizers_link; then
            missing+=("clang's sanitizer runtimes")
        fi
        have pkg-config || missing+=(pkg-config)
        have mandoc || missing+=(mandoc)
        have man || missing+=(man-db)
    fi
    if [[ $what == baremetal ]]; then
        have ld && have objcopy || missing+=(binutils)
        have qemu-system-x86_64 || missing+=(qemu-system-x86)
    fi
    if [[ $what == aarch64 ]]; then
        have aarch64-linux-gnu-gcc || missing+=(gcc-aarch64-linux-gnu)
        have qemu-aarch64 || missing+=(qemu-user)
    fi
}

check
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "make: missing ${missing[*]}; these come from scripts/deps.sh." >&2
if have sudo; then install_cmd="sudo scripts/deps.sh"; else install_cmd="su root -c scripts/deps.sh"; fi
have apt-get || install_cmd="(not Debian) the equivalents of: $(scripts/deps.sh --list | tr '\n' ' ')"
runner=()
if [[ ${LAB_NO_DEPS:-0} != 1 ]] && have apt-get; then
    if [[ $(id -u) -eq 0 ]]; then
        runner=(scripts/deps.sh)
    elif have sudo && { sudo -n true 2>/dev/null || [[ -t 0 ]]; }; then
        runner=(sudo scripts/deps.sh)    # may ask for a password on the terminal
    fi
fi

if [[ ${#runner[@]} -eq 0 ]]; then
    echo "make: stopping.  Install them with this one command, then run make again:" >&2
    echo "  $install_cmd" >&2
    exit 1
fi

echo "make: running ${runner[*]}" >&2
"${runner[@]}" || { echo "make: ${runner[*]} failed" >&2; exit 1; }
check
if [[ ${#missing[@]} -ne 0 ]]; then
    echo "make: still missing after scripts/deps.sh: ${missing[*]} (not on PATH?)" >&2
    exit 1
fi
