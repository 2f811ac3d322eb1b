#!/usr/bin/env python3
"""Bytes PyTorch keeps from forward for backward, for the model of
examples/mlp.frost under the freeze configurations all / head / input.

Measured with torch.autograd.graph.saved_tensors_hooks: every tensor autograd
saves passes through the pack hook; we count each distinct storage once and
leave out parameters (they exist anyway, in frost too). This is what frost
calls residual bytes. Run with Debian's python3-torch:

    /usr/bin/python3 bench/torch_residuals.py [--batch 128]
"""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 512)
        self.fc2 = nn.Linear(512, 10)

    def forward(self, x, label):
        return F.cross_entropy(self.fc2(torch.relu(self.fc1(x))), label)


def residual_bytes(model, x, label):
    params = {p.data_ptr() for p in model.parameters()}
    seen = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr() if hasattr(t, "untyped_storage") else t.storage().data_ptr()
        if ptr not in params:
            nbytes = t.untyped_storage().nbytes() if hasattr(t, "untyped_storage") else t.storage().nbytes()
            seen[ptr] = max(seen.get(ptr, 0), nbytes)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(x, label)
    if loss.requires_grad:
        loss.backward()
    return sum(seen.values())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = MLP()
    label = torch.randint(0, 10, (args.batch,))
    configs = {
        "all": (lambda n: True, False),
        "head": (lambda n: n.startswith("fc2."), False),
        "input": (lambda n: False, True),
    }
    print("config,torch_residual_bytes")
    for name, (trainable, grad_x) in configs.items():
        for pname, p in model.named_parameters():
            p.requires_grad_(trainable(pname))
        x = torch.randn(args.batch, 784, requires_grad=grad_x)
        print(f"{name},{residual_bytes(model, x, label)}")


if __name__ == "__main__":
    main()
