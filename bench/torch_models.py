"""PyTorch twins of frost's example models (examples/*.frost), for benchmarks
and cross-checks only: same architectures, same parameter names and shapes.

Used by bench/train_step.py and bench/torch_residuals.py; needs Debian's
python3-torch (torchvision is not required: ResNet-18 is written out here
with torchvision's module names)."""
import fnmatch
import math
import types

import torch
import torch.nn as nn
import torch.nn.functional as F


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 512)
        self.fc2 = nn.Linear(512, 10)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class CnnBn(nn.Module):
    def __init__(self):
        super().__init__()
        def conv(i, o):
            return nn.Conv2d(i, o, 3, padding=1, bias=False)
        self.conv1, self.bn1 = conv(1, 32), nn.BatchNorm2d(32)
        self.conv2, self.bn2 = conv(32, 32), nn.BatchNorm2d(32)
        self.conv3, self.bn3 = conv(32, 64), nn.BatchNorm2d(64)
        self.conv4, self.bn4 = conv(64, 64), nn.BatchNorm2d(64)
        self.drop = nn.Dropout(0.25)
        self.fc1 = nn.Linear(3136, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = F.relu(self.bn3(self.conv3(x)))
        x = F.max_pool2d(F.relu(self.bn4(self.conv4(x))), 2)
        x = self.drop(torch.flatten(x, 1))
        return self.fc2(F.relu(self.fc1(x)))


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x if self.downsample is None else self.downsample(x)
        return F.relu(out + short)


class ResNet18(nn.Module):
    """torchvision.models.resnet18 (cifar=False), or its CIFAR variant: a 3x3
    stride-1 stem and no max-pool."""

    def __init__(self, num_classes=1000, cifar=False):
        super().__init__()
        self.cifar = cifar
        if cifar:
            self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        inplanes = 64
        for i, planes in enumerate([64, 128, 256, 512]):
            stride = 1 if i == 0 else 2
            layer = nn.Sequential(BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes, 1))
            setattr(self, "layer%d" % (i + 1), layer)
            inplanes = planes
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        if not self.cifar:
            x = F.max_pool2d(x, 3, 2, 1)
        for i in range(4):
            x = getattr(self, "layer%d" % (i + 1))(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


class VitAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, T, C = x.shape
        # timm's layout of the 3 C outputs: q, k, v, each heads x head_dim
        q, k, v = self.qkv(x).reshape(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-2, -1) * (C // self.heads) ** -0.5, dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, T, C))


class VitMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class VitBlock(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = VitAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = VitMlp(dim, 4 * dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VitPatchEmbed(nn.Module):
    def __init__(self, patch, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class ViTTiny(nn.Module):
    """timm's vit_tiny_patch16_224 (examples/vit.frost) without timm: its
    state_dict keys, shapes and order (cls_token, pos_embed, patch_embed.proj,
    blocks.<i>.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}, norm,
    head), no dropout, the class token pooled."""

    def __init__(self, num_classes=1000, img=224, patch=16, dim=192, depth=12, heads=3):
        super().__init__()
        self.patch_embed = VitPatchEmbed(patch, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, (img // patch) ** 2 + 1, dim) * 0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        self.blocks = nn.Sequential(*[VitBlock(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


class InvertedResidual(nn.Module):
    """examples/mobilenet.frost's inverted_residual (torchvision's names; ReLU
    for ReLU6, as there)."""

    def __init__(self, inp, oup, stride, t):
        super().__init__()
        hid = inp * t

        def cbr(i, o, k, s, g):
            return nn.Sequential(nn.Conv2d(i, o, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(o),
                                 nn.ReLU(inplace=True))

        if t != 1:
            layers = [cbr(inp, hid, 1, 1, 1), cbr(hid, hid, 3, stride, hid), nn.Conv2d(hid, oup, 1, bias=False),
                      nn.BatchNorm2d(oup)]
        else:
            layers = [cbr(inp, inp, 3, stride, inp), nn.Conv2d(inp, oup, 1, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and inp == oup

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetCifar(nn.Module):
    """examples/mobilenet.frost: MobileNetV2-style, ten blocks, for 32x32."""

    def __init__(self, num_classes=10):
        super().__init__()
        stem = nn.Sequential(nn.Conv2d(3, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True))
        blocks, inp = [], 32
        for c, s, t in [(16, 1, 1), (24, 1, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (64, 2, 6), (64, 1, 6), (96, 1, 6),
                        (160, 2, 6), (320, 1, 6)]:
            blocks.append(InvertedResidual(inp, c, s, t))
            inp = c
        last = nn.Sequential(nn.Conv2d(inp, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU(inplace=True))
        self.features = nn.Sequential(stem, *blocks, last)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self.classifier(x)


MODELS = {
    "mlp": (MLP, (784,), 10),
    "lenet": (LeNet, (1, 28, 28), 10),
    "cnn_bn": (CnnBn, (1, 28, 28), 10),
    "resnet18_cifar": (lambda: ResNet18(10, cifar=True), (3, 32, 32), 10),
    "resnet18": (lambda: ResNet18(1000), (3, 224, 224), 1000),
    "mobilenet": (MobileNetCifar, (3, 32, 32), 10),
    "vit": (ViTTiny, (3, 224, 224), 1000),
}


# ---------------------------------------------------------------- GPT-2
# examples/gpt2.frost's twin with transformers' GPT2LMHeadModel module names,
# so that state_dict() has the checkpoint's names and layouts. Sizes are
# arguments (the defaults are GPT-2 small); nothing here uses transformers.


class GPT2Conv1D(nn.Module):
    """transformers' Conv1D: weight [in, out], y = x W + b."""

    def __init__(self, nin, nout):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(nin, nout).normal_(std=0.02))
        self.bias = nn.Parameter(torch.zeros(nout))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).reshape(*x.shape[:-1], -1)


class GPT2Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.c_attn = GPT2Conv1D(d, 3 * d)
        self.c_proj = GPT2Conv1D(d, d)

    def forward(self, x):
        n, t, d = x.shape
        q, k, v = self.c_attn(x).split(d, dim=2)
        q, k, v = (z.reshape(n, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        scores = q @ k.transpose(-1, -2) * (d // self.heads) ** -0.5
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        ctx = torch.softmax(scores, dim=-1) @ v  # no dropout
        return self.c_proj(ctx.transpose(1, 2).reshape(n, t, d))


class GPT2MLP(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.c_fc = GPT2Conv1D(d, 4 * d)
        self.c_proj = GPT2Conv1D(4 * d, d)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class GPT2Block(nn.Module):
    def __init__(self, d, heads, eps=1e-5):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d, eps=eps)
        self.attn = GPT2Attention(d, heads)
        self.ln_2 = nn.LayerNorm(d, eps=eps)
        self.mlp = GPT2MLP(d)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2Model(nn.Module):
    """transformers' GPT2Model: the names of a checkpoint without the LM head."""

    def __init__(self, vocab, positions, d, heads, layers):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(positions, d)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.02)
        self.h = nn.ModuleList(GPT2Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d, eps=1e-5)

    def forward(self, ids, pos):
        x = self.wte(ids) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.ln_f(x)


class GPT2LMHead(nn.Module):
    """transformers' GPT2LMHeadModel: `transformer` and `lm_head`, whose weight
    is transformer.wte.weight (tied: one parameter, two state_dict names).
    forward returns the mean cross-entropy of the logits against labels
    (-100 ignored). As in examples/gpt2.frost, labels are already the next
    tokens: nothing is shifted here (transformers shifts inside)."""

    token_model = True  # takes (ids, pos, labels) and returns the loss: see example_batch

    def __init__(self, vocab=50257, positions=1024, d=768, heads=12, layers=12):
        super().__init__()
        self.transformer = GPT2Model(vocab, positions, d, heads, layers)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.transformer.wte.weight

    def forward(self, ids, pos, labels):
        logits = self.lm_head(self.transformer(ids, pos))
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


# Token ids, not images: the shape entry is (T,) and the classes the vocabulary.
MODELS["gpt2"] = (GPT2LMHead, (256,), 50257)


def example_batch(model, shape, classes, batch, seq=None):
    """Inputs of one step and the function computing its loss from them. Image
    models take x [batch, *shape] and labels [batch] (cross-entropy of their
    logits); token models (token_model) take ids, pos and labels [batch, seq]
    (seq: shape[0] unless given) and return the loss themselves."""
    if getattr(model, "token_model", False):
        t = seq or shape[0]
        ids = torch.randint(0, classes, (batch, t))
        pos = torch.arange(t)
        labels = torch.randint(0, classes, (batch, t))
        return (ids, pos, labels), lambda m, inputs: m(*inputs)
    x = torch.rand(batch, *shape) * 2 - 1
    y = torch.arange(batch) % classes
    return (x, y), lambda m, inputs: F.cross_entropy(m(inputs[0]), inputs[1])


# ---------------------------------------------------------------- LoRA
# PEFT's lora.Linear in plain torch (no PEFT needed), for the LoRA
# configurations of examples/*.frost: `config` is an entry of
# `frost configs FILE --format json` (its trainable names say which layers
# are adapted, its lora items with which r, alpha and rslora).


def lora_tensors(config, model, seed=7, b_bound=0.02):
    """Random lora_A [r, in] (uniform within PEFT's bound 1/sqrt(in)) and
    lora_B [out, r] (uniform within b_bound; 0 gives PEFT's fresh, zero B)
    for every layer of the twin `model` that the configuration adapts, and
    each layer's scale under "<layer>._scale"."""
    gen = torch.Generator().manual_seed(seed)
    adapters = {}
    for name in config["trainable"]:
        if not name.endswith(".lora_A.weight"):
            continue
        layer = name[: -len(".lora_A.weight")]
        item = next(l for l in config["lora"] if fnmatch.fnmatchcase(layer, l["pattern"]))
        r, mod = item["r"], model.get_submodule(layer)
        nin, nout = mod.weight.shape if isinstance(mod, GPT2Conv1D) else reversed(mod.weight.shape)
        adapters[layer + ".lora_A.weight"] = (torch.rand(r, nin, generator=gen) * 2 - 1) / math.sqrt(nin)
        adapters[layer + ".lora_B.weight"] = (torch.rand(nout, r, generator=gen) * 2 - 1) * b_bound
        adapters[layer + "._scale"] = item["alpha"] / (math.sqrt(r) if item["rslora"] else r)
    return adapters


def add_lora(model, adapters, dtype=torch.float32):
    """Give each adapted layer of the twin submodules lora_A, lora_B (so that
    state_dict has PEFT's names) and y = base(x) + s (x A^T) B^T."""
    for key, scale in adapters.items():
        if not key.endswith("._scale"):
            continue
        layer = key[: -len("._scale")]
        mod = model.get_submodule(layer)
        a, b = adapters[layer + ".lora_A.weight"], adapters[layer + ".lora_B.weight"]
        mod.lora_A = nn.Linear(a.shape[1], a.shape[0], bias=False).to(dtype)
        mod.lora_B = nn.Linear(b.shape[1], b.shape[0], bias=False).to(dtype)
        with torch.no_grad():
            mod.lora_A.weight.copy_(a)
            mod.lora_B.weight.copy_(b)
        mod.lora_scale = scale
        base = type(mod).forward
        mod.forward = types.MethodType(
            lambda self, x, base=base: base(self, x) + self.lora_scale * self.lora_B(self.lora_A(x)), mod)



def configure(model, plan, listing):
    """Set the twin up as frost's configuration: its LoRA adapters (random
    values: they do not matter for memory or time), requires_grad per
    parameter as the plan trains them, BatchNorm modules in eval mode for
    `batchnorm eval`. plan: `frost plan --format json` of the configuration;
    listing: its entry of `frost configs --format json`. Returns the names of
    the inputs that want a gradient."""
    bufs = plan["train"]["buffers"]
    trainable = {b["name"][2:] for b in bufs if b["kind"] == "param-grad"}
    if listing["lora"]:
        add_lora(model, lora_tensors(listing, model, b_bound=0.0))
    for pname, p in model.named_parameters():
        p.requires_grad_(pname in trainable)
    model.train()
    if plan["batchnorm_eval"]:  # running statistics in the train program too
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.eval()
    return {b["name"][2:] for b in bufs if b["kind"] == "input-grad"}
