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

    /usr/bin/python3 bench/torch_residuals.py [--frost build/frost] [--total]
        [--optimizer sgd|adamw] [--configs all,lora_attn,...] [MODEL...]

Default models: mlp lenet cnn_bn resnet18_cifar. Prints markdown tables.

--total adds the whole training memory, the residuals included:

- frost: the plan's training_total_bytes, params + grads + optimizer state
  + train arena (every block a training caller allocates, docs/abi.md);
- PyTorch: the bytes of every parameter (all of them, LoRA adapters
  included) and buffer, of the gradients of the trainable parameters, of
  every tensor the optimizer holds in optimizer.state after a real backward
  and optimizer.step() (and of an input's gradient, when the configuration
  asks for one: frost's grads block holds it), and the residuals above.

The optimizer is the one frost compiles for the model: its file's
`optimizer` statement, else SGD (frost's default, lr 0.01, momentum 0), or
--optimizer's (passed to `frost plan`). PyTorch gets the same one,
torch.optim.SGD(lr=0.01, momentum=0) or torch.optim.AdamW() with its
defaults. (SGD with momentum 0 holds no tensor in PyTorch; frost reserves
the momentum buffer anyway, since the hyper-parameters can change at run
time. A model file's SGD momentum is not read here: the examples set none.)

PyTorch's total is a lower bound of its peak: it leaves out the working set
of forward and backward (activations not saved for backward, the gradients
of activations, temporaries, allocator slack), which frost's train arena
includes. The frost / PyTorch ratio of the totals therefore favours
PyTorch. --configs restricts the configurations (comma-separated names;
default: every one `frost compare` lists).
"""
import argparse
import gc
import json
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import MODELS, configure, example_batch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def frost_json(frost, *args):
    out = subprocess.run([frost, *args, "--format", "json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def storage_key(t):
    st = t.untyped_storage() if hasattr(t, "untyped_storage") else t.storage()
    return st.data_ptr(), st.nbytes()


def tensor_bytes(t):
    return t.numel() * t.element_size()


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


def torch_optimizer(name, params):
    if name == "adamw":
        return torch.optim.AdamW(params)
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.01, momentum=0)
    raise SystemExit("torch_residuals.py: no PyTorch twin for optimizer %r" % name)


def torch_total_bytes(model, inputs, opt_name, residuals):
    """After torch_residual_bytes' backward: params and buffers, the gradients
    of the trainable parameters (and of an input that wants one, as frost's
    grads block holds it) and the optimizer's state after one step, plus the
    residuals. Returns (total, optimizer state bytes)."""
    params = list(model.parameters())  # each tied parameter once
    trainable = [p for p in params if p.requires_grad]
    state = 0
    if trainable:
        opt = torch_optimizer(opt_name, trainable)
        opt.step()
        for per_param in opt.state.values():
            state += sum(tensor_bytes(v) for v in per_param.values() if torch.is_tensor(v))
    total = sum(tensor_bytes(p) for p in params) + sum(tensor_bytes(b) for b in model.buffers())
    total += sum(tensor_bytes(p.grad) for p in trainable if p.grad is not None)
    total += sum(tensor_bytes(t.grad) for t in inputs if t.grad is not None)
    return total + state + residuals, state


def mib(n):
    return "%.2f MiB" % (n / 2**20)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frost", default=os.path.join(ROOT, "build", "frost"))
    ap.add_argument("--total", action="store_true",
                    help="add optimizer state and total training memory (params + grads + optimizer state + "
                    "train arena for frost; params + grads + optimizer state + residuals for PyTorch)")
    ap.add_argument("--optimizer", help="sgd or adamw, for both (default: the one frost compiles for the model)")
    ap.add_argument("--configs", help="comma-separated configurations (default: every one frost compare lists)")
    ap.add_argument("models", nargs="*", default=["mlp", "lenet", "cnn_bn", "resnet18_cifar"])
    args = ap.parse_args()
    torch.manual_seed(0)
    plan_opts = ["--optimizer", args.optimizer] if args.optimizer else []
    print("PyTorch %s; residual = bytes kept from forward for backward (frost: its plan's residual_bytes;"
          " PyTorch: distinct storages autograd saved, parameters excluded)" % torch.__version__)
    if args.total:
        print("total: frost params + grads + optimizer state + train arena; PyTorch params + grads + optimizer"
              " state after one step + residuals, a lower bound of its peak (no forward/backward working set)")
    print()
    for name in args.models:
        path = os.path.join(ROOT, "examples", name + ".frost")
        make, shape, classes = MODELS[name]
        configs = [c["config"] for c in frost_json(args.frost, "compare", path)["configs"]]
        if args.configs:
            wanted = args.configs.split(",")
            unknown = [c for c in wanted if c not in configs]
            if unknown:
                raise SystemExit("torch_residuals.py: %s has no configuration %s (it has %s)"
                                 % (name, ", ".join(unknown), ", ".join(configs)))
            configs = wanted
        listing = {c["name"]: c for c in frost_json(args.frost, "configs", path)["configs"]}
        print("### %s\n" % name)
        head = "| config | frost residual | PyTorch residual | frost / PyTorch |"
        rule = "|---|---:|---:|---:|"
        if args.total:
            head += " optimizer | frost opt state | PyTorch opt state | frost total | PyTorch total | total frost / PyTorch |"
            rule += "---|---:|---:|---:|---:|---:|"
        print(head)
        print(rule)
        for cfg in configs:
            plan = frost_json(args.frost, "plan", path, "--config", cfg, *plan_opts)
            bufs = plan["train"]["buffers"]
            first = next(b for b in bufs if b["kind"] == "input")  # x, or ids [N, T]
            batch = first["shape"][0]
            model = make()
            grad_inputs = configure(model, plan, listing[cfg])  # the same adapters, what trains, batch norm mode
            inputs, loss_of = example_batch(model, shape, classes, batch, seq=first["shape"][-1])
            if "x" in grad_inputs:
                inputs[0].requires_grad_(True)
            theirs = torch_residual_bytes(model, inputs, loss_of)
            ours = plan["train"]["residual_bytes"]
            ratio = "%.3f" % (ours / theirs) if theirs else "-"
            row = "| %s | %s | %s | %s |" % (cfg, mib(ours), mib(theirs), ratio)
            if args.total:
                their_total, their_state = torch_total_bytes(model, inputs, plan["optimizer"], theirs)
                our_total = plan["training_total_bytes"]
                row += " %s | %s | %s | %s | %s | %.3f |" % (plan["optimizer"], mib(plan["opt_state_bytes"]),
                                                             mib(their_state), mib(our_total), mib(their_total),
                                                             our_total / their_total)
            print(row, flush=True)
            del model, inputs
            gc.collect()
        print()


if __name__ == "__main__":
    main()
