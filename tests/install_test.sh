#!/usr/bin/env bash
# install_test.sh SRC_DIR [CMAKE]
#
# Builds Labyrinth from SRC_DIR in a temporary directory, installs it, and
# builds small consumers against the installed copy:
#   (a) with pkg-config: shared (`pkg-config --cflags --libs`) and static
#       (`pkg-config --static`, liblabyrinth.a linked in, also into a
#       program that has names of its own the library uses inside);
#   (b) with CMake: find_package(labyrinth) and labyrinth::labyrinth
#       (plus labyrinth::static); an older version than the installed one
#       is refused (before 1.0, an older minor); a copy of the install
#       without liblabyrinth.a still serves labyrinth::labyrinth, and trees
#       built with LAB_BUILD_SHARED=OFF or LAB_BUILD_STATIC=OFF install and
#       serve the one library they build (labyrinth::labyrinth is the
#       static one where it is the only one); a tree built with -flto
#       installs an archive that links, without the internal names;
#   (c) (a) and (b) again after `cmake --install --prefix` into a second
#       prefix chosen at install time (the first prefix is deleted first, so
#       nothing may still point into it);
#   (d) the tree configured for /usr, as a distribution does: (a) and (b)
#       after `cmake --install --prefix` into a third prefix, and a
#       pkg-config consumer of a DESTDIR staging of /usr (with
#       PKG_CONFIG_SYSROOT_DIR, as a cross build would consume it);
#   (e) every prefix holds the docs the header names (docs/*.md) and
#       CHANGELOG.md, and man page links are symbolic links; after
#       scripts/uninstall.sh (make uninstall) the third prefix is empty, a
#       second uninstall succeeds, and an uninstall with DESTDIR empties
#       the staging and leaves the live prefix; an install writes nothing
#       into the build tree.
# Each consumer must print "consumer ok".  Exits non-zero on any failure.
set -euo pipefail

SRC=${1:?usage: install_test.sh SRC_DIR [CMAKE]}
CMAKE=${2:-cmake}
SRC=$(cd "$SRC" && pwd)
CC=${CC:-cc}
JOBS=${JOBS:-2}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/lab-install.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

step() { printf '\n== install_test: %s\n' "$*"; }
fail() { printf 'install_test: FAIL: %s\n' "$*" >&2; exit 1; }
run()  { printf '+ %s\n' "$*" >&2; "$@"; }

expect_ok() {  # expect_ok LABEL CMD...: run a consumer, require "consumer ok"
    local label=$1 out
    shift
    printf '+ %s\n' "$*"
    out=$("$@") || fail "$label exited with status $?"
    printf '%s\n' "$out"
    [[ $out == *"consumer ok"* ]] || fail "$label did not print 'consumer ok'"
}

# soname_of VERSION: before 1.0 a minor version may change the API, so the
# soname carries major.minor; from 1.0 on, the major only.
soname_of() {
    local major=${1%%.*} rest=${1#*.}
    if [[ $major == 0 ]]; then
        printf 'liblabyrinth.so.0.%s\n' "${rest%%.*}"
    else
        printf 'liblabyrinth.so.%s\n' "$major"
    fi
}

# older_than VERSION: a version find_package must refuse for VERSION (an older
# minor before 1.0, an older major after); nothing for 0.0.
older_than() {
    local major=${1%%.*} rest=${1#*.} minor
    minor=${rest%%.*}
    if [[ $major != 0 ]]; then
        printf '%s.0\n' "$((major - 1))"
    elif [[ $minor != 0 ]]; then
        printf '0.%s\n' "$((minor - 1))"
    fi
}

check_prefix() {  # check_prefix PREFIX TAG
    local prefix=$1 tag=$2 pcdir libdir incdir work version soname docdir
    work=$TMP/consumer-$tag
    mkdir -p "$work"

    pcdir=$(dirname "$(find "$prefix" -name labyrinth.pc -print -quit)")
    [[ -f $pcdir/labyrinth.pc ]] || fail "no labyrinth.pc under $prefix"

    step "[$tag] pkg-config consumer (shared), PKG_CONFIG_PATH=$pcdir"
    export PKG_CONFIG_PATH=$pcdir
    run pkg-config --modversion labyrinth
    printf 'cflags: %s\nlibs:   %s\nstatic: %s\n' \
        "$(pkg-config --cflags labyrinth)" "$(pkg-config --libs labyrinth)" \
        "$(pkg-config --static --libs labyrinth)"
    version=$(pkg-config --modversion labyrinth)
    soname=$(soname_of "$version")
    libdir=$(realpath "$(pkg-config --variable=libdir labyrinth)")
    incdir=$(realpath "$(pkg-config --variable=includedir labyrinth)")
    [[ $libdir == "$(realpath "$prefix")"/* ]] || fail "libdir $libdir is not inside $prefix"
    [[ $incdir == "$(realpath "$prefix")"/* ]] || fail "includedir $incdir is not inside $prefix"
    [[ -f $incdir/labyrinth.h ]] || fail "no labyrinth.h in $incdir"
    grep -qx "License: BSD-2-Clause" "$pcdir/labyrinth.pc" || fail "labyrinth.pc names no BSD-2-Clause license"
    grep -q 'set(labyrinth_LICENSE "BSD-2-Clause")' "$(find "$prefix" -name labyrinthConfig.cmake -print -quit)" \
        || fail "labyrinthConfig.cmake names no BSD-2-Clause license"
    cmp -s "$SRC/LICENSE" "$(find "$prefix" -path '*/doc/labyrinth/LICENSE' -print -quit)" \
        || fail "LICENSE is not installed under share/doc/labyrinth"
    for page in man3/lab_alloc_pages.3 man3/lab_free_pages.3 man3/lab_room_create.3 man7/labyrinth.7; do
        [[ -f $prefix/share/man/$page ]] || fail "man page $page is not installed under $prefix/share/man"
    done
    [[ -L $prefix/share/man/man3/lab_free_pages.3 && $(readlink "$prefix/share/man/man3/lab_free_pages.3") == lab_alloc_pages.3 ]] \
        || fail "man3/lab_free_pages.3 is not a symbolic link to lab_alloc_pages.3"
    docdir=$(dirname "$(find "$prefix" -path '*/doc/labyrinth/LICENSE' -print -quit)")
    for doc in README.md CHANGELOG.md docs/DESIGN.md docs/BAD_INPUT.md; do
        cmp -s "$SRC/$doc" "$docdir/$doc" || fail "$doc is not installed as $docdir/$doc"
    done

    # shellcheck disable=SC2046
    run "$CC" -std=c11 -Wall -Wextra -Werror -o "$work/pc_shared" "$SRC/tests/install_consumer/main.c" \
        $(pkg-config --cflags --libs labyrinth)
    # ldd's output is captured first: `ldd | grep -q` fails at random under
    # pipefail when grep exits early and ldd dies of SIGPIPE.
    deps=$(LD_LIBRARY_PATH=$libdir ldd "$work/pc_shared")
    grep -qF "$soname => $libdir/" <<<"$deps" \
        || fail "pc_shared does not use $libdir/$soname: $deps"
    expect_ok pc_shared env LD_LIBRARY_PATH="$libdir" "$work/pc_shared"

    step "[$tag] pkg-config consumer (static, pkg-config --static)"
    # shellcheck disable=SC2046
    run "$CC" -std=c11 -Wall -Wextra -Werror -o "$work/pc_static" "$SRC/tests/install_consumer/main.c" \
        $(pkg-config --cflags labyrinth) \
        -Wl,-Bstatic $(pkg-config --static --libs labyrinth) -Wl,-Bdynamic
    deps=$(ldd "$work/pc_static")
    if grep -q liblabyrinth <<<"$deps"; then
        fail "pc_static links liblabyrinth dynamically"
    fi
    expect_ok pc_static "$work/pc_static"
    # the installed archive keeps its internal names to itself
    # shellcheck disable=SC2046
    run "$CC" -std=c11 -Wall -Wextra -Werror -o "$work/pc_static_names" \
        "$SRC/tests/progs/defines_internal_names.c" $(pkg-config --cflags labyrinth) \
        -Wl,-Bstatic $(pkg-config --static --libs labyrinth) -Wl,-Bdynamic
    expect_ok pc_static_names "$work/pc_static_names"
    unset PKG_CONFIG_PATH

    cmake_consumer "$prefix" "$work/cmake" ON ON
}

installed_version() {  # installed_version PREFIX: the version labyrinth.pc gives
    PKG_CONFIG_PATH=$(dirname "$(find "$1" -name labyrinth.pc -print -quit)") pkg-config --modversion labyrinth
}

# cmake_consumer PREFIX DIR SHARED STATIC: tests/install_consumer configured
# in DIR against PREFIX, asking find_package for the installed major.minor
# and for the components given ON (shared, static); builds and runs them.
cmake_consumer() {  # PREFIX DIR SHARED STATIC [DEFAULT: link labyrinth::labyrinth too]
    local prefix=$1 dir=$2 shared=$3 static=$4 default=${5:-OFF} version
    version=$(installed_version "$prefix")
    step "CMake consumer: find_package(labyrinth ${version%.*}), shared $shared, static $static, CMAKE_PREFIX_PATH=$prefix"
    run "$CMAKE" -S "$SRC/tests/install_consumer" -B "$dir" \
        -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DLAB_WANT_VERSION="${version%.*}" -DLAB_WANT_SHARED="$shared" -DLAB_WANT_STATIC="$static" \
        -DLAB_WANT_DEFAULT="$default" \
        >"$dir.log" || { cat "$dir.log"; fail "consumer configure"; }
    grep -q "^labyrinth_DIR:PATH=$(realpath "$prefix")/" "$dir/CMakeCache.txt" \
        || grep -q "^labyrinth_DIR:PATH=$prefix/" "$dir/CMakeCache.txt" \
        || fail "find_package found labyrinth outside $prefix: $(grep ^labyrinth_DIR "$dir/CMakeCache.txt")"
    run "$CMAKE" --build "$dir" -j"$JOBS"
    if [[ $shared == ON ]]; then
        expect_ok consumer "$dir/consumer"
    fi
    if [[ $static == ON ]]; then
        expect_ok consumer_static "$dir/consumer_static"
    fi
    if [[ $default == ON ]]; then
        expect_ok consumer_default "$dir/consumer_default"
    fi
}

LIBRARY_ONLY=(-DCMAKE_BUILD_TYPE=RelWithDebInfo
    -DLAB_BUILD_TESTS=OFF -DLAB_BUILD_TOOLS=OFF -DLAB_BUILD_BENCH=OFF -DLAB_BUILD_EXAMPLES=OFF
    -DLAB_DEBUG=OFF -DLAB_SANITIZE=)

step "configure $SRC -> $TMP/build (prefix $TMP/prefix1)"
run "$CMAKE" -S "$SRC" -B "$TMP/build" "${LIBRARY_ONLY[@]}" \
    -DCMAKE_INSTALL_PREFIX="$TMP/prefix1" >"$TMP/configure.log" \
    || { cat "$TMP/configure.log"; fail "configure"; }
step "build"
run "$CMAKE" --build "$TMP/build" -j"$JOBS"
step "install (prefix from configure time)"
run "$CMAKE" --install "$TMP/build"
(cd "$TMP/prefix1" && find . -type f -o -type l | sort)

check_prefix "$TMP/prefix1" prefix1

version=$(installed_version "$TMP/prefix1")
older=$(older_than "$version")
if [[ -n $older ]]; then
    step "find_package(labyrinth $older) must refuse version $version"
    if "$CMAKE" -S "$SRC/tests/install_consumer" -B "$TMP/consumer-older" \
        -DCMAKE_PREFIX_PATH="$TMP/prefix1" -DLAB_WANT_VERSION="$older" >"$TMP/older.log" 2>&1; then
        cat "$TMP/older.log"
        fail "find_package(labyrinth $older) accepted version $version"
    fi
    grep -A3 "not compatible\|no suitable\|considered but not accepted" "$TMP/older.log" || cat "$TMP/older.log"
fi

step "install again with --prefix chosen at install time ($TMP/prefix2)"
run "$CMAKE" --install "$TMP/build" --prefix "$TMP/prefix2"
rm -rf "$TMP/prefix1"
if grep -rl "$TMP/prefix1" "$TMP/prefix2"; then
    fail "files above in prefix2 still name prefix1"
fi

check_prefix "$TMP/prefix2" prefix2

step "a copy of $TMP/prefix2 without liblabyrinth.a (a distribution's shared library package)"
cp -a "$TMP/prefix2" "$TMP/no-archive"
[[ -n $(find "$TMP/no-archive" -name liblabyrinth.a -print -delete) ]] || fail "no liblabyrinth.a to delete"
cmake_consumer "$TMP/no-archive" "$TMP/consumer-no-archive" ON OFF
step "find_package(labyrinth COMPONENTS static) must fail there"
if "$CMAKE" -S "$SRC/tests/install_consumer" -B "$TMP/consumer-no-archive-static" \
    -DCMAKE_PREFIX_PATH="$TMP/no-archive" -DLAB_WANT_SHARED=OFF -DLAB_WANT_STATIC=ON \
    >"$TMP/no-archive-static.log" 2>&1; then
    cat "$TMP/no-archive-static.log"
    fail "find_package(labyrinth COMPONENTS static) found a static library that is not installed"
fi

step "a tree that builds the static library only (LAB_BUILD_SHARED=OFF)"
run "$CMAKE" -S "$SRC" -B "$TMP/build-one" "${LIBRARY_ONLY[@]}" -DLAB_BUILD_SHARED=OFF \
    -DCMAKE_INSTALL_PREFIX="$TMP/static-only" >"$TMP/configure-one.log" \
    || { cat "$TMP/configure-one.log"; fail "configure with LAB_BUILD_SHARED=OFF"; }
run "$CMAKE" --build "$TMP/build-one" -j"$JOBS"
run "$CMAKE" --install "$TMP/build-one"
[[ -z $(find "$TMP/static-only" -name 'liblabyrinth.so*') ]] || fail "LAB_BUILD_SHARED=OFF installed a shared library"
cmake_consumer "$TMP/static-only" "$TMP/consumer-static-only" OFF ON ON

step "a tree built with LTO, as distributions build: the installed archive is machine code"
run "$CMAKE" -S "$SRC" -B "$TMP/build-lto" "${LIBRARY_ONLY[@]}" -DLAB_BUILD_SHARED=OFF \
    -DCMAKE_C_FLAGS="-flto=auto" -DCMAKE_INSTALL_PREFIX="$TMP/lto" >"$TMP/configure-lto.log" \
    || { cat "$TMP/configure-lto.log"; fail "configure with -flto"; }
run "$CMAKE" --build "$TMP/build-lto" -j"$JOBS"
run "$CMAKE" --install "$TMP/build-lto"
for prog in install_consumer/main.c progs/defines_internal_names.c; do
    run "$CC" -std=c11 -g -Wall -Wextra -Werror -o "$TMP/lto-consumer" "$SRC/tests/$prog" \
        -I"$TMP/lto/include" "$(find "$TMP/lto" -name liblabyrinth.a)" -lpthread \
        || fail "$prog does not link to an LTO tree's liblabyrinth.a"
    expect_ok "lto ${prog##*/}" "$TMP/lto-consumer"
done

step "the same tree, the shared library only (LAB_BUILD_STATIC=OFF)"
run "$CMAKE" -S "$SRC" -B "$TMP/build-one" -DLAB_BUILD_SHARED=ON -DLAB_BUILD_STATIC=OFF \
    -DCMAKE_INSTALL_PREFIX="$TMP/shared-only" >"$TMP/configure-one.log" \
    || { cat "$TMP/configure-one.log"; fail "configure with LAB_BUILD_STATIC=OFF"; }
run "$CMAKE" --build "$TMP/build-one" -j"$JOBS"
run "$CMAKE" --install "$TMP/build-one"
[[ -z $(find "$TMP/shared-only" -name liblabyrinth.a) ]] || fail "LAB_BUILD_STATIC=OFF installed liblabyrinth.a"
cmake_consumer "$TMP/shared-only" "$TMP/consumer-shared-only" ON OFF

step "configure the same tree for /usr"
run "$CMAKE" -S "$SRC" -B "$TMP/build" -DCMAKE_INSTALL_PREFIX=/usr >"$TMP/configure-usr.log" \
    || { cat "$TMP/configure-usr.log"; fail "configure for /usr"; }
run "$CMAKE" --build "$TMP/build" -j"$JOBS"
step "install it with --prefix chosen at install time ($TMP/prefix3)"
run "$CMAKE" --install "$TMP/build" --prefix "$TMP/prefix3"
check_prefix "$TMP/prefix3" prefix3

step "uninstall what the last install wrote (scripts/uninstall.sh, as make uninstall)"
run "$SRC/scripts/uninstall.sh" "$TMP/build/install_manifest.txt"
left=$(cd "$TMP/prefix3" && find . ! -type d)
[[ -z $left ]] || fail "uninstall left files in $TMP/prefix3: $left"
left=$(find "$TMP/prefix3" -type d -name labyrinth)
[[ -z $left ]] || fail "uninstall left directories of its own: $left"

step "uninstall it again: nothing left to remove is no failure"
run "$SRC/scripts/uninstall.sh" "$TMP/build/install_manifest.txt"

step "install it into a staging directory (DESTDIR=$TMP/stage)"
run "$CMAKE" --install "$TMP/build" --prefix "$TMP/prefix3"   # the live copy: a staged uninstall must leave it
touch "$TMP/before-stage"
DESTDIR=$TMP/stage run "$CMAKE" --install "$TMP/build"
[[ -d $TMP/stage/usr ]] || fail "nothing was staged under $TMP/stage/usr"
pc=$(find "$TMP/stage" -name labyrinth.pc -print -quit)
grep -qx 'prefix=/usr' "$pc" || fail "the staged labyrinth.pc does not name /usr: $(grep ^prefix= "$pc")"
export PKG_CONFIG_SYSROOT_DIR=$TMP/stage PKG_CONFIG_LIBDIR=${pc%/*}
libdir=$(pkg-config --variable=libdir labyrinth)
# shellcheck disable=SC2046
run "$CC" -std=c11 -Wall -Wextra -Werror -o "$TMP/staged" "$SRC/tests/install_consumer/main.c" \
    $(pkg-config --cflags --libs labyrinth)
unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_LIBDIR
expect_ok staged env LD_LIBRARY_PATH="$libdir" "$TMP/staged"
written=$(find "$TMP/build" -newer "$TMP/before-stage" ! -type d ! -name install_manifest.txt)
[[ -z $written ]] || fail "the install wrote into the build tree: $written"

step "uninstall the staging (DESTDIR=$TMP/stage scripts/uninstall.sh)"
DESTDIR=$TMP/stage run "$SRC/scripts/uninstall.sh" "$TMP/build/install_manifest.txt"
left=$(cd "$TMP/stage" && find . ! -type d)
[[ -z $left ]] || fail "a staged uninstall left files in $TMP/stage: $left"
[[ -f $TMP/prefix3/include/labyrinth.h ]] || fail "a staged uninstall removed the live install"

printf '\ninstall_test: all consumers ok\n'
