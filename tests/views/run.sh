#!/usr/bin/env bash
# Golden tests of frost's views: `frost plan` (text, --steps, json, svg),
# `frost compare` (text, markdown, csv, json, svg), `frost configs` (text,
# json) and `frost dot` (DOT,
# expanded and collapsed; the SVG Graphviz renders is checked for structure
# only, since its bytes depend on the Graphviz version) for
# examples/mlp.frost and every model in tests/e2e/models/, and a few more
# cases (filters, a frozen configuration, ResNet-18 collapsed, compare rows
# and plan and dot titles changed on the command line) listed below.
#
#   tests/views/run.sh path/to/frost [tests/views]
#   UPDATE=1 tests/views/run.sh path/to/frost      # rewrite the golden files
#
# Each output must come with exit status 0 and nothing on stderr, be well
# formed for its format (JSON parses, CSV rows have equal length, markdown
# rows equal numbers of cells, DOT is accepted by Graphviz's `dot -Tsvg`, SVG
# is well-formed XML (xmllint) with an <svg> root, and renders to a PNG of
# sensible size that is not blank (rsvg-convert)), and equal
# golden/<model>.<view> byte for byte. A model without golden files is
# reported as skipped (UPDATE=1 creates them).
# Last line: "N passed, M failed[, K skipped]"; exit 1 on any failure.
set -u
frost=${1:?usage: run.sh FROST_BINARY [VIEWS_DIR]}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=$(cd "${2:-$here}" && pwd)
root=$(cd "$dir/../.." && pwd)
golden=$dir/golden
update=${UPDATE:-0}
python=${PYTHON:-python3}
# Under LeakSanitizer, Graphviz's own leaks (SVG rendering) are not frost's.
export LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$golden"

models=("$root/examples/mlp.frost")
for m in "$root"/tests/e2e/models/*.frost; do
    [ -f "$m" ] && models+=("$m")
done
# view name | frost arguments after the model file
views=(
    "plan.txt|plan"
    "plan-all.txt|plan --config all"
    "plan.json|plan --format json"
    "compare.txt|compare"
    "compare.md|compare --format markdown"
    "compare.csv|compare --format csv"
    "compare.json|compare --format json"
    "dot|dot"
    "plan-steps.txt|plan --steps"
    "plan.svg|plan --format svg"
    "compare.svg|compare --format svg"
    "collapse.dot|dot --collapse"
)
# More cases, for one model each: model | view name | frost arguments
extras=(
    "tests/e2e/models/resblock.frost|expand.dot|dot --expand"
    "tests/e2e/models/resblock.frost|last.dot|dot --config last"
    "tests/e2e/models/resblock.frost|only-b2.dot|dot --only b2"
    "tests/e2e/models/resblock.frost|from-to.dot|dot --from b1.conv2 --to pool --config last_eval"
    "tests/e2e/models/resblock.frost|plan-last.svg|plan --config last --format svg"
    "examples/resnet18.frost|all.dot|dot --config all"
    "examples/resnet18.frost|head.dot|dot --config head"
    "examples/resnet18.frost|layer2.dot|dot --only layer2.* --config surgical_last"
    "examples/resnet18.frost|compare.svg|compare --format svg"
    "examples/mobilenet.frost|all.dot|dot --config all"
    "examples/mlp.frost|compare-train.txt|compare --config head --config all --train fc1.*"
    "examples/mlp.frost|compare-grad.csv|compare --config head --grad x --batchnorm-eval --format csv"
    "examples/mlp.frost|plan-train.txt|plan --train fc1.* --grad x"
    "tests/e2e/models/mlp_small.frost|plan-adamw.json|plan --optimizer adamw --format json"
    "examples/mlp.frost|train.dot|dot --config input --train fc2.*"
    "examples/mlp.frost|configs.txt|configs"
    "examples/resnet18.frost|configs.txt|configs"
    "tests/e2e/models/pool_bn.frost|configs.txt|configs"
    "tests/e2e/models/pool_bn.frost|configs.json|configs --format json"
)

have_dot=1
command -v dot >/dev/null 2>&1 || have_dot=0
[ "$have_dot" -eq 1 ] || echo "note: Graphviz's dot is not installed: DOT outputs are not laid out"

have_xmllint=1 have_rsvg=1
command -v xmllint >/dev/null 2>&1 || have_xmllint=0
command -v rsvg-convert >/dev/null 2>&1 || have_rsvg=0
[ "$have_xmllint" -eq 1 ] || echo "note: xmllint (libxml2-utils) is not installed: SVG checked by Python's parser"
[ "$have_rsvg" -eq 1 ] || echo "note: rsvg-convert (librsvg2-bin) is not installed: SVG is not rendered to PNG"

# png_ok FILE: nothing when FILE is a PNG of 200..30000 pixels a side that is
# not blank, else what is wrong
png_ok() {
    "$python" - "$1" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
if data[:8] != b"\x89PNG\r\n\x1a\n":
    sys.exit("not a PNG")
pos, idat, w = 8, b"", 0
while pos + 8 <= len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        w, h, depth, color = struct.unpack(">IIBB", body[:10])
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
if not w or not (200 <= w <= 30000 and 200 <= h <= 30000):
    sys.exit("PNG is %dx%d" % (w, h) if w else "PNG without IHDR")
raw = zlib.decompress(idat)
channels = {2: 3, 6: 4, 0: 1, 4: 2}.get(color, 0)
stride = 1 + w * channels * depth // 8
if depth != 8 or not channels or len(raw) != stride * h:
    sys.exit("PNG data of %d bytes, not %d rows of %d" % (len(raw), h, stride))
# Rows are filtered (differences to neighbours): a blank or flat image has a
# handful of distinct byte values whatever the filters, a drawing hundreds.
if len(set(raw)) < 16:
    sys.exit("PNG %dx%d is blank (%d distinct bytes)" % (w, h, len(set(raw))))
PY
}

# well_formed KIND FILE: empty output when fine, else what is wrong
well_formed() {
    case "$1" in
    json) "$python" -c 'import json, sys; json.load(open(sys.argv[1]))' "$2" 2>&1 | tail -1 ;;
    csv) "$python" -c '
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
if len(rows) < 2 or len({len(r) for r in rows}) != 1:
    print("csv rows differ in length or there are none")' "$2" ;;
    md) awk -F'|' '/^\|/ { if (n && NF != n) { print "markdown row " NR " has " NF - 2 " cells, not " n - 2; exit } n = NF }
                   END { if (!n) print "no markdown table" }' "$2" ;;
    dot) [ "$have_dot" -eq 0 ] || dot -Tsvg "$2" -o /dev/null 2>&1 | head -3 ;;
    svg)
        head -c 5 "$2" | grep -qE '^(<\?xml|<svg)' || echo "does not start with <?xml or <svg"
        [ "$have_xmllint" -eq 0 ] || xmllint --noout "$2" 2>&1 | head -3
        if [ "$have_rsvg" -eq 1 ]; then
            rsvg-convert "$2" -o "$2.png" 2>&1 | head -3
            [ ! -f "$2.png" ] || png_ok "$2.png" 2>&1
        fi
        "$python" -c '
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
if not root.tag.endswith("svg"):
    print("root element is", root.tag)' "$2" 2>&1 | tail -1 ;;
    esac
}

passed=0 failed=0 skipped=0
fail() {
    failed=$((failed + 1))
    echo "FAIL $1"
}

# check NAME MODEL ARGS...: run `frost ARGS[0] MODEL ARGS[1..]` from the
# repository root, check its output is well formed and equals golden/NAME.
check() {
    local name=$1 rel=$2 out=$tmp/$1 status problem kind
    shift 2
    (cd "$root" && "$frost" "$1" "$rel" "${@:2}") >"$out" 2>"$tmp/stderr"
    status=$?
    if [ "$status" -ne 0 ] || [ -s "$tmp/stderr" ]; then
        fail "$name: frost $* $rel exited with $status"
        sed 's/^/    /' "$tmp/stderr" | head -5
        return
    fi
    kind=${name##*.}
    problem=$(well_formed "$kind" "$out")
    if [ -n "$problem" ]; then
        fail "$name: not well-formed $kind: $problem"
        return
    fi
    if [ "$update" = 1 ]; then
        cp "$out" "$golden/$name"
        passed=$((passed + 1))
    elif [ ! -f "$golden/$name" ]; then
        echo "SKIP $name (no golden file)"
        skipped=$((skipped + 1))
    elif cmp -s "$out" "$golden/$name"; then
        passed=$((passed + 1))
    else
        fail "$name: differs from golden/$name (UPDATE=1 rewrites it)"
        diff -u "$golden/$name" "$out" | head -40 | sed 's/^/    /'
    fi
}

# render NAME MODEL ARGS...: `frost dot MODEL ARGS... -o X.svg`, Graphviz's
# SVG, checked for structure only.
render() {
    local name=$1 rel=$2 problem
    shift 2
    rm -f "$tmp/render.svg"
    if (cd "$root" && "$frost" dot "$rel" "$@" -o "$tmp/render.svg") 2>"$tmp/stderr" && [ ! -s "$tmp/stderr" ]; then
        problem=$(well_formed svg "$tmp/render.svg")
        [ -z "$problem" ] && passed=$((passed + 1)) || fail "$name: $problem"
    else
        fail "$name: frost dot $rel $* -o X.svg failed"
        sed 's/^/    /' "$tmp/stderr" | head -5
    fi
}

for model in "${models[@]}"; do
    stem=$(basename "$model" .frost)
    rel=${model#"$root"/}
    if [ "$update" != 1 ] && ! ls "$golden/$stem".* >/dev/null 2>&1; then
        echo "SKIP $rel (no golden files; UPDATE=1 $0 FROST creates them)"
        skipped=$((skipped + 1))
        continue
    fi
    for v in "${views[@]}"; do
        read -r -a args <<<"${v#*|}"
        check "$stem.${v%%|*}" "$rel" "${args[@]}"
    done
    # SVG: by --format and by the -o extension; structure only.
    svg=$tmp/$stem.svg
    if (cd "$root" && "$frost" dot "$rel" --format svg) >"$svg" 2>"$tmp/stderr" && [ ! -s "$tmp/stderr" ]; then
        problem=$(well_formed svg "$svg")
        [ -z "$problem" ] && passed=$((passed + 1)) || fail "$stem.svg: $problem"
    else
        fail "$stem.svg: frost dot --format svg failed"
        sed 's/^/    /' "$tmp/stderr" | head -5
    fi
    render "$stem.svg via -o" "$rel"
done
for e in "${extras[@]}"; do
    IFS='|' read -r rel view rest <<<"$e"
    read -r -a args <<<"$rest"
    check "$(basename "$rel" .frost).$view" "$rel" "${args[@]}"
done
# PNG through Graphviz's library: by the -o extension and by --format (DOT
# text used to be written into a .png file).
png=$tmp/render.png
for how in "-o $png" "--format png"; do
    rm -f "$png"
    read -r -a args <<<"$how"
    if (cd "$root" && "$frost" dot examples/mlp.frost "${args[@]}" >"$tmp/stdout") 2>"$tmp/stderr" && [ ! -s "$tmp/stderr" ]; then
        [ -f "$png" ] || cp "$tmp/stdout" "$png"
        problem=$(png_ok "$png" 2>&1)
        [ -z "$problem" ] && passed=$((passed + 1)) || fail "dot $how: $problem"
    else
        fail "dot $how failed"
        sed 's/^/    /' "$tmp/stderr" | head -5
    fi
done
# The big graphs the defaults must keep small enough to lay out in seconds
# (Graphviz took minutes on the expanded ones).
render "resnet18 all, collapsed, as SVG" examples/resnet18.frost --config all
render "mobilenet all, collapsed, as SVG" examples/mobilenet.frost --config all
render "resnet18 --only layer3.0, expanded, as SVG" examples/resnet18.frost --only layer3.0
# batchnorm_eval in the plan JSON: false by default, true from a config's
# `batchnorm eval` and from --batchnorm-eval (the goldens only see false).
bn_model=tests/e2e/models/pool_bn.frost
for c in "x_only|False" "x_eval|True" "x_only --batchnorm-eval|True"; do
    read -r -a args <<<"${c%%|*}"
    got=$(cd "$root" && "$frost" plan "$bn_model" --config "${args[@]}" --format json 2>&1 |
        "$python" -c 'import json, sys; print(json.load(sys.stdin)["batchnorm_eval"])' 2>&1)
    if [ "$got" = "${c#*|}" ]; then
        passed=$((passed + 1))
    else
        fail "pool_bn --config ${c%%|*}: batchnorm_eval is '$got', want ${c#*|}"
    fi
done
if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
