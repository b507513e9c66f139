#!/usr/bin/env bash
# Install the packages Labyrinth needs to build, test and benchmark (Debian 12 or newer).
# As root with apt-get available: installs them.  Otherwise prints the
# command and fails.  --list prints the packages, --command the command.
# Usable both by developers and by .ci/run.
set -euo pipefail

LAB_DEPS=(
    build-essential cmake clang llvm libclang-rt-dev pkg-config
    valgrind gnuplot-nox strace mandoc man-db gcovr python3 spin
    libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev libdpdk-dev
    libxdp-dev libbpf-dev xdp-tools iproute2
    git ca-certificates
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
    qemu-system-x86
)

APT_CMD="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${LAB_DEPS[*]}"

case "${1:-}" in
    --list)    printf '%s\n' "${LAB_DEPS[@]}"; exit 0 ;;
    --command) echo "$APT_CMD"; exit 0 ;;
esac

if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "deps.sh: installing: ${LAB_DEPS[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${LAB_DEPS[@]}"
else
    echo "deps.sh: not root or no apt-get; install the dependencies as root with:"
    echo "  $APT_CMD"
    exit 1
fi
