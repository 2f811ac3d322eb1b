#!/usr/bin/env bash
# Golden diagnostics: for every NAME.frost in DIR, `frost compile` must fail
# with exit status 1, print exactly NAME.err on stderr, and leave no output
# file behind. Run from the repository root so that paths in messages read
# tests/golden/NAME.frost.
#
#   tests/golden/run.sh path/to/frost tests/golden
#
# Last line: "N passed, M failed" (exit 1 on any failure). A .frost without a
# .err is reported as "skipped" and counts as neither.
set -u
frost=${1:?usage: run.sh FROST_BINARY GOLDEN_DIR}
dir=${2:?usage: run.sh FROST_BINARY GOLDEN_DIR}
dir=${dir%/}
# Messages name the file as given on the command line, and the .err files say
# tests/golden/NAME.frost: make an absolute DIR under the cwd relative again.
case "$dir" in
"$PWD"/*) dir=${dir#"$PWD"/} ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

passed=0 failed=0 skipped=0
for input in "$dir"/*.frost; do
    name=$(basename "$input" .frost)
    expected="$dir/$name.err"
    if [ ! -f "$expected" ]; then
        echo "SKIP $name (no $name.err)"
        skipped=$((skipped + 1))
        continue
    fi
    rm -rf "$tmp/out" && mkdir "$tmp/out"
    "$frost" compile "$input" -o "$tmp/out/x.o" > "$tmp/stdout" 2> "$tmp/stderr"
    status=$?
    problems=()
    [ "$status" -eq 1 ] || problems+=("exit status $status, expected 1")
    cmp -s "$tmp/stderr" "$expected" || problems+=("stderr differs from $name.err")
    leftovers=$(ls -A "$tmp/out")
    [ -z "$leftovers" ] || problems+=("left files behind: $leftovers")
    if [ ${#problems[@]} -eq 0 ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL $name: $(IFS=';'; echo "${problems[*]}")"
        if ! cmp -s "$tmp/stderr" "$expected"; then
            diff -u "$expected" "$tmp/stderr" | sed 's/^/    /'
        fi
    fi
done
[ "$skipped" -eq 0 ] || echo "$skipped skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
