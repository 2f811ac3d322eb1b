#!/usr/bin/env bash
# setup.sh: install frost's build dependencies (Debian 12) if any are missing,
# then configure and build frost.
#
#   scripts/setup.sh [MESON_OPTION...]
#
# Idempotent: installed packages are detected with dpkg-query, `apt-get update`
# runs at most once and only when something is missing, and an already
# configured build directory is only rebuilt (extra -D options are applied to it
# with `meson configure`).
#
# Environment:
#   BUILD_DIR   build directory (default: build)
#   CC          C compiler for meson (default: meson's choice)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

packages=(meson ninja-build pkg-config clang llvm-dev libopenblas-dev libgraphviz-dev
          graphviz check zlib1g-dev dataset-fashion-mnist gcc libclang-rt-dev)

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'
}

install_missing() {
    if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
        say "no dpkg/apt-get here: not installing packages; make sure these are present:"
        say "  ${packages[*]}"
        return 0
    fi
    local missing=() p
    for p in "${packages[@]}"; do
        is_installed "$p" || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say "all ${#packages[@]} Debian packages present"
        return 0
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 ||
            die "missing packages (${missing[*]}) and not root and no sudo: install them by hand"
        sudo=(sudo)
    fi
    say "installing missing packages: ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}"
}

install_missing

if [ -f "$BUILD_DIR/meson-private/coredata.dat" ]; then
    if [ $# -gt 0 ]; then
        say "applying options to $BUILD_DIR: $*"
        meson configure "$BUILD_DIR" "$@"
    fi
else
    say "configuring $BUILD_DIR${*:+ with $*}"
    meson setup "$BUILD_DIR" "$@"
fi

say "building in $BUILD_DIR"
ninja -C "$BUILD_DIR"
say "done: $BUILD_DIR/frost"
