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
#   FROST_LLVM  LLVM major version to build against, e.g. 19 (default: the
#               distribution's llvm-dev, 14 on Debian 12): installs
#               llvm-N-dev and clang-N and points meson at their llvm-config
#               (scripts/test-llvm.sh uses it)
#   FROST_TORCH=1 also install Debian's python3-torch (PyTorch 1.13), which only
#               the side-by-side scripts under bench/ use; never the build or tests
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# librsvg2-bin (rsvg-convert) and libxml2-utils (xmllint): tests/views/run.sh
# renders the SVG views to PNG and checks they are well-formed XML.
# clang-format: scripts/format.sh --check, the last step of scripts/test.sh.
# fortunes: the text of the text demo (examples/textgen/) and its test.
packages=(meson ninja-build pkg-config clang llvm-dev libopenblas-dev libgraphviz-dev
          graphviz check zlib1g-dev dataset-fashion-mnist fortunes gcc libclang-rt-dev
          librsvg2-bin libxml2-utils clang-format)

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'
}

if [ "${FROST_TORCH:-0}" = 1 ]; then
    packages+=(python3-torch)
fi
if [ -n "${FROST_LLVM:-}" ]; then
    packages+=("llvm-$FROST_LLVM-dev" "clang-$FROST_LLVM")
fi

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
    native=()
    if [ -n "${FROST_LLVM:-}" ]; then
        # meson finds LLVM through llvm-config, the runtime's clang beside it.
        mkdir -p "$BUILD_DIR"
        printf "[binaries]\nllvm-config = '/usr/lib/llvm-%s/bin/llvm-config'\n" "$FROST_LLVM" > "$BUILD_DIR/llvm.ini"
        native=(--native-file "$BUILD_DIR/llvm.ini")
    fi
    say "configuring $BUILD_DIR${FROST_LLVM:+ with LLVM $FROST_LLVM}${*:+ with $*}"
    meson setup "${native[@]}" "$BUILD_DIR" "$@"
fi

say "building in $BUILD_DIR"
ninja -C "$BUILD_DIR"
say "done: $BUILD_DIR/frost"
