#!/usr/bin/env bash
# Install the packages Labyrinth needs to build, test and benchmark (Debian 12 or newer).
# As root with apt-get available: installs them.  Otherwise prints the command.
# Usable both by developers and by .ci/run.
set -euo pipefail

LAB_DEPS=(
    build-essential cmake clang llvm libclang-rt-dev pkg-config
    valgrind gnuplot-nox strace
    libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev libdpdk-dev
    git ca-certificates
)

if [[ "${1:-}" == "--list" ]]; then
    printf '%s\n' "${LAB_DEPS[@]}"
    exit 0
fi

if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "deps.sh: installing: ${LAB_DEPS[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${LAB_DEPS[@]}"
else
    echo "deps.sh: not root or no apt-get; install the dependencies with:"
    echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${LAB_DEPS[*]}"
fi
