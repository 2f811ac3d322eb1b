#!/usr/bin/env bash
# test-llvm.sh: build frost against another LLVM (default 19; Debian 12 also
# has 15 and 16) in its own build directory and run the whole meson suite
# there. The default build uses the distribution's LLVM (14 on Debian 12);
# the same code serves both (only LLVM C API that exists from 14 to 19, and
# codegen/llvm_target.cpp checks LLVM_VERSION_MAJOR).
#
#   scripts/test-llvm.sh [VERSION]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
version=${1:-19}
dir=build-llvm$version
FROST_LLVM=$version BUILD_DIR=$dir bash scripts/setup.sh
"$dir/frost" --version
exec meson test -C "$dir" --print-errorlogs
