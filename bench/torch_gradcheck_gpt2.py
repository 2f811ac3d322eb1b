#!/usr/bin/python3
"""Gradients of examples/gpt2.frost against PyTorch's, configuration by
configuration, on the small GPT-2 of tests/fixtures/make_gpt2_safetensors.py
(the same sizes, seed, weights, ids and labels, some labels -100).

For every configuration `frost configs examples/gpt2.frost --format json`
lists (with the fixture's -D sizes), this script

  1. compiles the model with `--config NAME` and links bench/gpt2_hf.c;
  2. runs it: load the weights by name from a GPT2LMHeadModel-layout
     safetensors file written from the twin (lm_head.weight, tied, skipped),
     load the inputs, forward, backward, and write the gradient of every
     trainable parameter, by name, to a safetensors file;
  3. runs the PyTorch twin (bench/torch_models.py, GPT2LMHead) on the same
     weights with requires_grad set on exactly the configuration's
     trainable tensors, in float64 (the exact values frost's float32 code
     approximates; --float32 runs the twin in float32 instead);
     (for a LoRA configuration, the file also holds random lora_A and lora_B
     tensors for the layers it adapts, and the twin gets the same adapters in
     plain torch: y = base(x) + s (x A^T) B^T, s = alpha / r);
  4. compares the loss and, tensor by tensor, the gradients:
     max|g_frost - g_torch| / max(max|g_torch|, 1e-30), and checks that both
     sides have the same set of gradients.

    /usr/bin/python3 bench/torch_gradcheck_gpt2.py [--frost build/frost]
        [--support build/support/libfrost_support.a] [--work DIR] [--tol 1e-4] [--float32]

Prints a markdown table (configuration, tensors compared, loss error, worst
gradient error and its tensor, pass/fail at --tol) and exits 1 if any row
fails. Needs Debian's python3-torch; not a default test (docs/models.md).
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import make_gpt2_safetensors as fixture  # noqa: E402
from make_torch_safetensors import save_safetensors  # noqa: E402
from torch_models import GPT2LMHead, add_lora, lora_tensors  # noqa: E402

MODEL = os.path.join(ROOT, "examples", "gpt2.frost")
ST_DTYPES = {"F32": ("<f", 4, torch.float32), "I32": ("<i", 4, torch.int32), "I64": ("<q", 8, torch.int64)}


def load_safetensors(path):
    """{name: tensor} of a safetensors file (F32, I32, I64 only)."""
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + hlen])
    data = blob[8 + hlen:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        fmt, size, dtype = ST_DTYPES[e["dtype"]]
        b, end = e["data_offsets"]
        n = (end - b) // size
        vals = struct.unpack("<%d%s" % (n, fmt[1]), data[b:end])
        out[name] = torch.tensor(vals, dtype=dtype).reshape(e["shape"])
    return out


def defines():
    return [a for k, v in fixture.SIZES.items() for a in ("-D", "%s=%d" % (k, v))]


def frost_side(args, config, weights, inputs, work):
    d = os.path.join(work, config)
    os.makedirs(d, exist_ok=True)
    subprocess.run([args.frost, "compile", MODEL, *defines(), "--config", config, "-O1",
                    "-o", os.path.join(d, "gpt2.o"), "--header", os.path.join(d, "gpt2.h")], check=True)
    exe = os.path.join(d, "gpt2_hf")
    subprocess.run([os.environ.get("CC", "cc"), "-std=c11", "-O1", "-include", os.path.join(d, "gpt2.h"),
                    "-I" + os.path.join(ROOT, "support"), os.path.join(ROOT, "bench", "gpt2_hf.c"),
                    os.path.join(d, "gpt2.o"), args.support, "-lz", "-lopenblas", "-lm", "-o", exe], check=True)
    grads = os.path.join(d, "grads.safetensors")
    out = subprocess.run([exe, weights, inputs, "--skip", "lm_head.weight", "--grads", grads], check=True,
                         capture_output=True, text=True).stdout
    loss = float(next(line for line in out.splitlines() if line.startswith("loss "))[5:])
    return loss, load_safetensors(grads)


def torch_side(state, trainable, ids, pos, labels, dtype, adapters):
    s = fixture.SIZES
    model = GPT2LMHead(vocab=s["V"], positions=s["P"], d=s["D"], heads=s["H"], layers=fixture.LAYERS).to(dtype)
    add_lora(model, adapters, dtype)
    state = dict(state, **{k: v for k, v in adapters.items() if not k.endswith("._scale")})
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()})
    for name, p in model.named_parameters():
        p.requires_grad_(name in trainable)
    loss = model(ids.long(), pos.long(), labels.long())
    if loss.requires_grad:
        loss.backward()
    return loss.item(), {n: p.grad for n, p in model.named_parameters() if p.requires_grad}


def rel_err(a, b):
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / max(b.abs().max().item(), 1e-30)).item() if b.numel() else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frost", default=os.path.join(ROOT, "build", "frost"))
    ap.add_argument("--support", default=os.path.join(ROOT, "build", "support", "libfrost_support.a"))
    ap.add_argument("--work", default=None, help="directory for the builds (default: a temporary one)")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--float32", action="store_true", help="run the PyTorch twin in float32, not float64")
    ap.add_argument("-D", dest="sizes", action="append", default=[], metavar="NAME=VALUE",
                    help="change one of the fixture's sizes (N, T, V, P, D, H), e.g. -D T=80 -D P=96: "
                    "sequences longer than attention's 64-query blocks")
    args = ap.parse_args()
    for item in args.sizes:
        name, _, value = item.partition("=")
        if name not in fixture.SIZES or not value.isdigit():
            ap.error("-D %s: expected one of %s = a positive integer" % (item, ", ".join(fixture.SIZES)))
        fixture.SIZES[name] = int(value)
    work = args.work or tempfile.mkdtemp(prefix="frost-gradcheck-gpt2-")
    os.makedirs(work, exist_ok=True)

    model, ids, pos, labels = fixture.build()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    weights = os.path.join(work, "weights.safetensors")
    inputs = os.path.join(work, "inputs.safetensors")
    save_safetensors(weights, state, {"format": "pt"})
    save_safetensors(inputs, {"ids": ids, "pos": pos, "labels": labels}, {"format": "pt"})
    listing = subprocess.run([args.frost, "configs", MODEL, *defines(), "--format", "json"], check=True,
                             capture_output=True, text=True).stdout
    configs = json.loads(listing)["configs"]
    dtype = torch.float32 if args.float32 else torch.float64

    print("PyTorch %s (%s); examples/gpt2.frost with %s; %d of %d labels ignored (-100)\n"
          % (torch.__version__, "float32" if args.float32 else "float64", " ".join(defines()),
             int((labels == -100).sum()), labels.numel()))
    print("| config | tensors compared | loss rel. error | worst gradient rel. error | worst tensor | at %.0e |"
          % args.tol)
    print("|:--|--:|--:|--:|:--|:--|")
    failures = 0
    for c in configs:
        name, trainable = c["name"], set(c["trainable"])
        adapters = lora_tensors(c, model)
        config_weights = weights
        if adapters:  # the base weights and this configuration's adapters
            config_weights = os.path.join(work, "weights_%s.safetensors" % name)
            save_safetensors(config_weights, dict(state, **{k: v for k, v in adapters.items()
                                                            if not k.endswith("._scale")}), {"format": "pt"})
        f_loss, f_grads = frost_side(args, name, config_weights, inputs, work)
        t_loss, t_grads = torch_side(state, trainable, ids, pos, labels, dtype, adapters)
        loss_err = abs(f_loss - t_loss) / abs(t_loss)
        problems = []
        if set(f_grads) != set(t_grads) or set(f_grads) != trainable:
            problems.append("gradient sets differ: frost only %s, PyTorch only %s"
                            % (sorted(set(f_grads) - set(t_grads)), sorted(set(t_grads) - set(f_grads))))
        worst, worst_name = 0.0, "-"
        for n in sorted(set(f_grads) & set(t_grads)):
            if tuple(f_grads[n].shape) != tuple(t_grads[n].shape):
                problems.append("%s: shape %s vs %s" % (n, list(f_grads[n].shape), list(t_grads[n].shape)))
                continue
            e = rel_err(f_grads[n], t_grads[n])
            if e > worst or worst_name == "-":
                worst, worst_name = e, n
        ok = not problems and loss_err <= args.tol and worst <= args.tol
        failures += not ok
        print("| %s | %d | %.2e | %s | %s | %s |"
              % (name, len(set(f_grads) & set(t_grads)), loss_err, "%.2e" % worst if t_grads else "-",
                 "`%s`" % worst_name if t_grads else "-", "pass" if ok else "FAIL"))
        for p in problems:
            print("  %s: %s" % (name, p), file=sys.stderr)
    print("\n%d of %d configurations pass" % (len(configs) - failures, len(configs)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
