#!/usr/bin/env bash
# format.sh: frost's code style, .clang-format at the top of the tree,
# applied or checked over every tracked C and C++ file.
#
#   scripts/format.sh           reformat them in place
#   scripts/format.sh --check   list the files that differ from the style (and
#                               the first lines of each difference); exit 1 if any
#
# The style is written for clang-format 14 (Debian 12's clang-format package,
# which setup.sh installs); other major versions lay out some lines otherwise,
# so --check skips (exit 77, saying so) when only another one is found.
# Not formatted: tests/fixtures/ (written by scripts).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

check=0
case "${1:-}" in
--check) check=1 ;;
"") ;;
*) echo "usage: scripts/format.sh [--check]" >&2; exit 2 ;;
esac

fmt=
for c in clang-format-14 clang-format; do
    if command -v "$c" >/dev/null && "$c" --version | grep -q 'version 14\.'; then
        fmt=$c
        break
    fi
done
if [ -z "$fmt" ]; then
    echo "format: no clang-format 14 here (apt-get install clang-format): not checked"
    [ $check = 1 ] && exit 77
    exit 1
fi

mapfile -t files < <(git ls-files '*.c' '*.h' '*.cpp' | grep -v '^tests/fixtures/')
if [ $check = 0 ]; then
    "$fmt" -i --style=file "${files[@]}"
    echo "format: ${#files[@]} files formatted"
    exit 0
fi
bad=0
for f in "${files[@]}"; do
    if ! "$fmt" --style=file "$f" | cmp -s - "$f"; then
        echo "format: $f differs from the style; scripts/format.sh rewrites it:"
        "$fmt" --style=file "$f" | diff -u "$f" - | sed -n '3,12p'
        bad=$((bad + 1))
    fi
done
echo "format: ${#files[@]} files checked, $bad differ"
[ $bad = 0 ]
