#!/usr/bin/env bash
# make_install.sh SRC_DIR
#
# What the top-level Makefile's install target would run (make -n: nothing
# is built or installed): cmake --install with the prefix build/ was
# configured with, unless PREFIX is given on make's command line.  Exits
# non-zero on any failure.
set -euo pipefail

SRC=${1:?usage: make_install.sh SRC_DIR}
fail() { printf 'make_install: FAIL: %s\n' "$*" >&2; exit 1; }

# install_commands ENV... -- MAKE-ARGS...: the recipe lines of `make install`
install_commands() {
    local envs=()
    while [[ $1 != -- ]]; do envs+=("$1"); shift; done
    shift
    env -u PREFIX -u DESTDIR "${envs[@]}" make -s -n -C "$SRC" install "$@" | grep -E '^cmake --install ' | sed 's/ *$//'
}

expect() {  # expect LABEL WANT ENV... -- MAKE-ARGS...
    local label=$1 want=$2 got
    shift 2
    got=$(install_commands "$@") || fail "$label: make -n printed no cmake --install"
    printf '%s: %s\n' "$label" "$got"
    [[ $got == "$want" ]] || fail "$label: expected '$want'"
}

expect "plain make install" "cmake --install build" --
expect "PREFIX on the command line" "cmake --install build --prefix /opt/labyrinth" -- PREFIX=/opt/labyrinth
expect "PREFIX in the environment" "cmake --install build" PREFIX=/opt/elsewhere --
printf 'make_install: ok\n'
