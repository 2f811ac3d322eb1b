#!/usr/bin/python3
"""Median wall-clock time of one PyTorch training step (forward + backward,
no optimizer) and one inference call, for bench/train_step.sh.

    /usr/bin/python3 bench/train_step.py MODEL BATCH THREADS [SECONDS]

prints "train_ms infer_ms steps" like bench/step_time.c."""
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import MODELS, example_batch  # noqa: E402


def main():
    name, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    budget = float(sys.argv[4]) if len(sys.argv) > 4 else 3.0
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    make, shape, classes = MODELS[name]
    model = make()
    inputs, loss_of = example_batch(model, shape, classes, batch)

    def step():
        model.train()
        model.zero_grad(set_to_none=True)
        loss = loss_of(model, inputs)
        loss.backward()

    for _ in range(2):
        step()
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < budget or len(times) < 3:
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    model.eval()
    itimes = []
    with torch.no_grad():
        start = time.perf_counter()
        while time.perf_counter() - start < budget / 2 or len(itimes) < 3:
            t = time.perf_counter()
            loss_of(model, inputs)
            itimes.append(time.perf_counter() - t)
    print("%.3f %.3f %d" % (1e3 * statistics.median(times), 1e3 * statistics.median(itimes), len(times)))


if __name__ == "__main__":
    main()
