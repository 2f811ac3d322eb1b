#!/usr/bin/python3
"""Residual bytes side by side: what frost keeps from forward for backward
(its plan) and what PyTorch keeps for the same model, batch and freeze
configuration.

For every configuration of examples/MODEL.frost (as `frost compare` lists
them), `frost plan --format json` says which parameters train, which inputs
want a gradient, whether batch norm runs in eval mode, and frost's residual
bytes. The PyTorch twin of the model (bench/torch_models.py) is set up the
same way (requires_grad per parameter and on x, BatchNorm modules in eval
mode for `batchnorm eval`) and run forward under
torch.autograd.graph.saved_tensors_hooks: every tensor autograd saves passes
through the pack hook; each distinct storage is counted once and parameters
and buffers are left out (they exist anyway). The input x counts when autograd
saves it: the caller must then keep it alive until backward, where frost
copies what it needs of the inputs into its arena (and counts that).

    /usr/bin/python3 bench/torch_residuals.py [--frost build/frost] [MODEL...]

Default models: mlp lenet cnn_bn resnet18_cifar. Prints markdown tables.
"""
import argparse
import json
import os
import subprocess
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import MODELS, add_lora, example_batch, lora_tensors  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def frost_json(frost, *args):
    out = subprocess.run([frost, *args, "--format", "json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def storage_key(t):
    st = t.untyped_storage() if hasattr(t, "untyped_storage") else t.storage()
    return st.data_ptr(), st.nbytes()


def torch_residual_bytes(model, inputs, loss_of):
    exclude = {p.data_ptr() for p in model.parameters()}
    exclude |= {b.data_ptr() for b in model.buffers()}
    seen = {}

    def pack(t):
        ptr, nbytes = storage_key(t)
        if ptr not in exclude:
            seen[ptr] = max(seen.get(ptr, 0), nbytes)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_of(model, inputs)
    if loss.requires_grad:
        loss.backward()
    return sum(seen.values())


def mib(n):
    return "%.2f MiB" % (n / 2**20)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frost", default=os.path.join(ROOT, "build", "frost"))
    ap.add_argument("models", nargs="*", default=["mlp", "lenet", "cnn_bn", "resnet18_cifar"])
    args = ap.parse_args()
    torch.manual_seed(0)
    print("PyTorch %s; residual = bytes kept from forward for backward (frost: its plan's residual_bytes;"
          " PyTorch: distinct storages autograd saved, parameters excluded)\n" % torch.__version__)
    for name in args.models:
        path = os.path.join(ROOT, "examples", name + ".frost")
        make, shape, classes = MODELS[name]
        configs = [c["config"] for c in frost_json(args.frost, "compare", path)["configs"]]
        listing = {c["name"]: c for c in frost_json(args.frost, "configs", path)["configs"]}
        print("### %s\n" % name)
        print("| config | frost residual | PyTorch residual | frost / PyTorch |")
        print("|---|---:|---:|---:|")
        for cfg in configs:
            plan = frost_json(args.frost, "plan", path, "--config", cfg)
            bufs = plan["train"]["buffers"]
            trainable = {b["name"][2:] for b in bufs if b["kind"] == "param-grad"}
            grad_inputs = {b["name"][2:] for b in bufs if b["kind"] == "input-grad"}
            first = next(b for b in bufs if b["kind"] == "input")  # x, or ids [N, T]
            batch = first["shape"][0]
            model = make()
            if listing[cfg]["lora"]:  # the same adapters on the twin (their values do not matter here)
                add_lora(model, lora_tensors(listing[cfg], model, b_bound=0.0))
            for pname, p in model.named_parameters():
                p.requires_grad_(pname in trainable)
            model.train()
            if plan["batchnorm_eval"]:  # running statistics in the train program too
                for m in model.modules():
                    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                        m.eval()
            inputs, loss_of = example_batch(model, shape, classes, batch, seq=first["shape"][-1])
            if "x" in grad_inputs:
                inputs[0].requires_grad_(True)
            theirs = torch_residual_bytes(model, inputs, loss_of)
            ours = plan["train"]["residual_bytes"]
            ratio = "%.3f" % (ours / theirs) if theirs else "-"
            print("| %s | %s | %s | %s |" % (cfg, mib(ours), mib(theirs), ratio))
        print()


if __name__ == "__main__":
    main()
