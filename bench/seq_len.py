#!/usr/bin/python3
"""Train arena of examples/gpt2.frost against sequence length, and attention's
share of it: what frost keeps for attention's backward (q, k, v, the output
and the per-row log-sum-exp) and its forward scratch, next to what one
[N, H, T, T] probability matrix per block would take. Only frost is run
(`frost plan --format json`); no PyTorch is needed.

    /usr/bin/python3 bench/seq_len.py [--frost build/frost] [--config all] [T ...]

Default lengths: 128 256 512 1024 (GPT-2's positions). Prints a markdown table.
"""
import argparse
import json
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# examples/gpt2.frost names attention's output transformer.h.<i>.ctx and its
# q, k, v inputs ctx.transpose, ctx.transpose_2, ctx.transpose_3 (nested calls).
ATTENTION = re.compile(r"^(aux0 |scratch )?transformer\.h\.\d+\.ctx(\.transpose(_2|_3)?)?$")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frost", default=os.path.join(ROOT, "build", "frost"))
    ap.add_argument("--config", default="all")
    ap.add_argument("lengths", nargs="*", type=int, default=[128, 256, 512, 1024])
    args = ap.parse_args()
    path = os.path.join(ROOT, "examples", "gpt2.frost")
    print("examples/gpt2.frost, configuration %s, batch 4 (frost plan -D T=...)\n" % args.config)
    print("| T | train arena | residuals | attention residuals | attention scratch (sum over steps) | "
          "one [4, 12, T, T] f32 matrix per block (12) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for t in args.lengths:
        out = subprocess.run([args.frost, "plan", path, "--config", args.config, "-D", "T=%d" % t,
                              "--format", "json"], check=True, capture_output=True, text=True).stdout
        train = json.loads(out)["train"]
        bufs = [b for b in train["buffers"] if b["space"] == "arena" and "alias_of" not in b]
        att = [b for b in bufs if ATTENTION.match(b["name"])]
        att_res = sum(b["bytes"] for b in att if b["residual"])
        att_scratch = sum(b["bytes"] for b in att if b["name"].startswith("scratch "))
        probs = 12 * 4 * 12 * t * t * 4
        mib = lambda n: "%.2f MiB" % (n / 2**20)
        print("| %d | %s | %s | %s | %s | %s |" % (t, mib(train["arena_bytes"]), mib(train["residual_bytes"]),
                                                   mib(att_res), "%.1f KiB" % (att_scratch / 1024), mib(probs)))


if __name__ == "__main__":
    main()
