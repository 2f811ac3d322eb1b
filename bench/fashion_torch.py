#!/usr/bin/python3
"""One epoch of the Fashion-MNIST demo's pre-training in PyTorch: the same
network (examples/cnn_bn.frost, bench/torch_models.py CnnBn), the same recipe
(AdamW lr 2e-3 cosine-decayed to 0 step by step over the run, weight decay
1e-4, batch 128, pixels normalised with mean
0.2860 / std 0.3530, last partial batch dropped), the same thread count.
Prints the time of the epoch and the test accuracy, to set beside the `all`
epoch line of examples/fashion/run.sh.

    /usr/bin/python3 bench/fashion_torch.py [--epochs 1] [--threads N] [--data DIR]
"""
import argparse
import gzip
import math
import os
import struct
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import CnnBn  # noqa: E402


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndims = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndims, data[4:4 + 4 * ndims])
    return torch.frombuffer(bytearray(data[4 + 4 * ndims:]), dtype=torch.uint8).reshape(dims)


def load(d, split):
    x = idx(os.path.join(d, split + "-images-idx3-ubyte.gz")).float().div(255).sub(0.2860).div(0.3530)
    y = idx(os.path.join(d, split + "-labels-idx1-ubyte.gz")).long()
    return x.unsqueeze(1), y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    xtr, ytr = load(args.data, "train")
    xte, yte = load(args.data, "t10k")
    model = CnnBn()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    batch = 128
    total_steps = len(xtr) // batch * args.epochs
    # the demo's schedule: lr * (1 + cos(pi * step / total)) / 2, set before each step
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 * (1 + math.cos(math.pi * step / total_steps)))
    for epoch in range(1, args.epochs + 1):
        model.train()
        perm = torch.randperm(len(xtr))
        t0 = time.perf_counter()
        total = 0.0
        steps = len(xtr) // batch
        for k in range(steps):
            idxs = perm[k * batch:(k + 1) * batch]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xtr[idxs]), ytr[idxs])
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        seconds = time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            correct = sum((model(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum().item()
                          for i in range(0, len(xte), 1000))
        print("PyTorch %s, %d threads: epoch %d  loss %.4f  test acc %.2f%%  %.1fs (%.0f img/s)"
              % (torch.__version__, args.threads, epoch, total / steps, 100.0 * correct / len(xte), seconds,
                 steps * batch / seconds))


if __name__ == "__main__":
    main()
