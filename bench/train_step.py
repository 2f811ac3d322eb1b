#!/usr/bin/python3
"""Median wall-clock time of one PyTorch training step (forward + backward,
no optimizer) and one inference call, for bench/train_step.sh.

    /usr/bin/python3 bench/train_step.py MODEL BATCH THREADS [SECONDS [CONFIG FROST]]

prints "train_ms infer_ms steps" like bench/step_time.c. With CONFIG (a
configuration of examples/MODEL.frost) and the frost binary, the twin is set
up as that configuration (torch_models.configure: adapters, what trains,
batch norm mode); the default is every parameter trainable."""
import json
import os
import subprocess
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import MODELS, configure, example_batch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    name, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    budget = float(sys.argv[4]) if len(sys.argv) > 4 else 3.0
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    make, shape, classes = MODELS[name]
    model = make()
    grad_inputs = set()
    if len(sys.argv) > 6 and sys.argv[5] != "all":
        path = os.path.join(ROOT, "examples", name + ".frost")

        def frost_json(*args):
            out = subprocess.run([sys.argv[6], *args, "--format", "json"], check=True, capture_output=True, text=True)
            return json.loads(out.stdout)

        plan = frost_json("plan", path, "--config", sys.argv[5], "-D", "N=%d" % batch)
        listing = {c["name"]: c for c in frost_json("configs", path)["configs"]}
        grad_inputs = configure(model, plan, listing[sys.argv[5]])
    inputs, loss_of = example_batch(model, shape, classes, batch)
    if "x" in grad_inputs:
        inputs[0].requires_grad_(True)
    bn_eval = not any(m.training for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))

    def step():
        model.train()
        if bn_eval:  # configure() put batch norm in eval mode: keep it there
            for m in model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()
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
