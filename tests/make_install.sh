#!/usr/bin/env bash
# make_install.sh SRC_DIR
#
# What the top-level Makefile's install target would run (make -n: nothing
# is built or installed): cmake --install with the prefix build/ was
# configured with, unless PREFIX is given on make's command line; then, as
# root and without DESTDIR, ldconfig; and what make uninstall would run.
# Exits non-zero on any failure.
set -euo pipefail

SRC=${1:?usage: make_install.sh SRC_DIR}
fail() { printf 'make_install: FAIL: %s\n' "$*" >&2; exit 1; }

# install_commands ENV... -- MAKE-ARGS...: the recipe lines of `make install`
# that install, on one line
install_commands() {
    local envs=()
    while [[ $1 != -- ]]; do envs+=("$1"); shift; done
    shift
    env -u PREFIX -u DESTDIR "${envs[@]}" make -s -n -C "$SRC" install "$@" |
        grep -E '^(cmake --install |ldconfig)' | sed 's/ *$//' | paste -sd';'
}

expect() {  # expect LABEL WANT ENV... -- MAKE-ARGS...
    local label=$1 want=$2 got
    shift 2
    got=$(install_commands "$@") || fail "$label: make -n printed no cmake --install"
    printf '%s: %s\n' "$label" "$got"
    [[ $got == "$want" ]] || fail "$label: expected '$want'"
}

ldconfig=""
[[ $(id -u) == 0 ]] && ldconfig=";ldconfig"
expect "plain make install" "cmake --install build$ldconfig" --
expect "PREFIX on the command line" "cmake --install build --prefix \"/opt/labyrinth\"$ldconfig" -- PREFIX=/opt/labyrinth
expect "a PREFIX with a space" "cmake --install build --prefix \"/opt/my apps\"$ldconfig" -- "PREFIX=/opt/my apps"
expect "PREFIX in the environment" "cmake --install build$ldconfig" PREFIX=/opt/elsewhere --
expect "DESTDIR on the command line" "cmake --install build" -- DESTDIR=/staging
expect "DESTDIR in the environment" "cmake --install build --prefix \"/usr\"" DESTDIR=/staging -- PREFIX=/usr

uninstall_commands() {  # uninstall_commands MAKE-ARGS...
    env -u DESTDIR make -s -n -C "$SRC" uninstall "$@" | grep -E '^(DESTDIR=|scripts/uninstall|ldconfig)' | paste -sd';'
}
uninstall=$(uninstall_commands)
printf 'make uninstall: %s\n' "$uninstall"
[[ $uninstall == "DESTDIR=\"\" scripts/uninstall.sh build/install_manifest.txt$ldconfig" ]] \
    || fail "make uninstall: expected the manifest's files, then ldconfig as root"
uninstall=$(uninstall_commands DESTDIR=/staging)
printf 'make uninstall DESTDIR=/staging: %s\n' "$uninstall"
[[ $uninstall == 'DESTDIR="/staging" scripts/uninstall.sh build/install_manifest.txt' ]] \
    || fail "make uninstall DESTDIR=/staging: expected the staged files, and no ldconfig"
printf 'make_install: ok\n'
