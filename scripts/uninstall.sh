#!/usr/bin/env bash
# uninstall.sh MANIFEST
#
# Removes what an install wrote, as CMake listed it in MANIFEST (a build
# tree's install_manifest.txt: one path a line, without DESTDIR: the
# caller's DESTDIR, if any, goes in front of each, so that uninstalling a
# staged install never touches the live tree), then the
# directories of Labyrinth's own that this leaves empty (lib/cmake/labyrinth,
# share/doc/labyrinth); directories other packages share (lib, include,
# share/man/man3) stay.  Called by `make uninstall`.
set -euo pipefail

manifest=${1:?usage: uninstall.sh MANIFEST}
if [[ ! -f $manifest ]]; then
    echo "uninstall: no $manifest: nothing was installed from this build tree" >&2
    exit 1
fi

own_dirs=()
# || [[ -n $path ]]: CMake ends the manifest's last line with no newline
while IFS= read -r path || [[ -n $path ]]; do
    [[ -n $path ]] || continue
    path=${DESTDIR:-}$path
    # -L too: a man page link whose page is already gone still goes
    if [[ -e $path || -L $path ]]; then
        rm -f -- "$path"
        printf -- '-- Removed: %s\n' "$path"
    fi
    case ${path%/*} in
    */cmake/labyrinth | */doc/labyrinth | */doc/labyrinth/*) own_dirs+=("${path%/*}") ;;
    esac
done <"$manifest"

# deepest first, so that share/doc/labyrinth/docs goes before its parent
if ((${#own_dirs[@]})); then
    printf '%s\n' "${own_dirs[@]}" | sort -ru | while IFS= read -r dir; do
        if [[ -d $dir ]]; then
            rmdir --ignore-fail-on-non-empty -- "$dir"
        fi
    done
fi
