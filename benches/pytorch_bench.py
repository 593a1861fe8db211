#!/usr/bin/env python3
"""The `dlhist bench` workloads in PyTorch, timed the same way, for the README's comparison.

Install PyTorch somewhere outside the repository (CPU is all it needs; CI does not run this):

    python3 -m venv ~/venv-torch && ~/venv-torch/bin/pip install torch

Run it on the same number of threads as dlhist, and compare:

    ~/venv-torch/bin/python benches/pytorch_bench.py --threads 2 > torch.json
    dlhist --threads 2 bench --json > dlhist.json
    ~/venv-torch/bin/python benches/pytorch_bench.py gpt lstm --trials 7

It prints one JSON array on stdout with the field names of `dlhist bench --json` (workload,
ms_per_step, steps_per_s, threads, gflops, gflop_per_step, trials, steps_per_trial, min_ms,
max_ms, shapes) plus torch_version; progress goes to stderr.

The workloads match dlhist's (src/milestones/workloads.rs) layer for layer:
  mlp    784-512-256-10 ReLU, batch 128 of 1x28x28 images (flattened)
  lenet  conv 1-6 5x5, ReLU, maxpool 2, conv 6-16 5x5, ReLU, maxpool 2, fc 256-120-84-10 ReLU; batch 64
  lstm   embedding 65x64, nn.LSTM(64, 256), linear head 256-65; seq 64, batch 32
  gpt    vocab 65, 4 pre-LN blocks (x + attn(ln1(x)); x + mlp(ln2(x))), 4 heads, embd 128, block 64,
         causal attention, GELU-tanh MLP 4x, learned positions, final LayerNorm, untied head with
         bias; embeddings N(0, 0.02); batch 32
  unet   the diffusion preset's U-Net: channels 16/32/64 at 28/14/7 pixels; residual blocks
         GroupNorm(8) -> SiLU -> conv 3x3, + Linear(SiLU(time embedding)), GroupNorm -> SiLU -> conv
         3x3, 1x1 conv shortcut where the channels change; stride-2 3x3 convs down, nearest 2x
         upsampling + conv 3x3 up, skip concatenations; sinusoidal time embedding 16 -> MLP 64 -> 64;
         batch 64 of 1x28x28 noisy images at fixed timesteps, MSE against the noise
  gan    the gan preset's MLP GAN: G 100-256-512-1024-784 (LeakyReLU 0.2, tanh out), D 784-1024-512-
         256-1 (LeakyReLU 0.2, dropout 0.3 after each hidden layer); batch 64 of uniform images in
         [-1, 1]; one step is dlhist's: G(z) on fresh noise, D's non-saturating loss on the real
         batch and G(z) detached (one pass of D over both, 128 rows), D's update, then G's loss
         through the updated D, G's update (two AdamW optimizers, the two parameter groups)
all trained with AdamW (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01 on matrices and
kernels only, as dlhist's optimizer) on one fixed batch of seeded synthetic data (uniform images
and random labels; random tokens, targets shifted by one). One step is zero_grad, forward,
cross-entropy, backward, loss.item(), optimizer.step(). dlhist's step also computes the global
gradient norm for its NaN check; PyTorch's does not. Loaded with the same weights, the gpt, lstm
and lenet models here and dlhist's give the same loss (checked by hand when this was written:
identical for gpt and lstm, within 3e-7 for lenet).

Attention uses F.scaled_dot_product_attention(is_causal=True), as a PyTorch user would write it
(nanoGPT does); --manual-attention uses the explicit softmax(q·kᵀ/√d + mask)·v instead, the same
composition as dlhist's reference layer.

Timing: a warm-up (at least 2 steps and 0.3 s), then --trials trials of --steps steps (default:
as many as take about 1 s); ms_per_step is the median over trials. GFLOP/step is counted as in
dlhist: 3 x the forward pass's matmul and conv FLOPs at 2 FLOPs per multiply-add.

--recipe gpt trains instead of timing a step: the `dlhist train gpt` recipe (nanoGPT's CPU
recipe for Shakespeare) on data/fetched/shakespeare/shakespeare.txt (`make data`), with the same
model as the gpt workload, GPT-2's init (N(0, 0.02) linears and embeddings, zero biases, the
residual projections attn.c_proj and mlp's second linear N(0, 0.02/sqrt(2·layers))), the same split
(the first 90% of the characters train, the last 10% val), batches of 12 random windows of 64,
AdamW (betas 0.9/0.99, eps 1e-8, weight decay 0.1 on matrices only), lr 1e-3 with 100 warmup steps
and cosine decay to 1e-4 over 2,000 iterations (dlhist's schedule, step for step), gradient
clipping at 1, loss.item() every step. Training time is the wall time of the 2,000 iterations
(batches, forward, backward, clipping, update), no evaluation inside, as dlhist's gpt preset.
Afterwards the val loss on dlhist's evaluation windows: 512 windows of 65 characters spread
evenly over the val split (start k·(len−65)/511), the mean next-character loss. It prints one JSON
object (recipe, train_s, ms_per_iter, val_loss, train_loss, params, vocab, threads, torch_version):

    ~/venv-torch/bin/python benches/pytorch_bench.py --recipe gpt --threads 2
    dlhist --threads 2 train gpt --json

--sdpa-cuda times F.scaled_dot_product_attention (causal, forward + backward) on the GPU instead,
from a packed qkv (B, T, 3C) at the shapes of `dlhist bench --ops --device cuda:0`'s attention rows
(B=32 T=64 C=128 H=4 and B=8 T=1024 C=768 H=12), with the loss sum(y * r) and a synchronize per
call as dlhist's GPU op benches; it prints one JSON array of {op, shape, ms, tflops, backend,
torch_version}, the FLOPs counted as dlhist counts them (3.5 x 4·B·H·T²·Dh, halved for causal).

Measure on an idle machine. PyTorch's OpenMP threads spin while they wait, so when the cores are
oversubscribed its multi-threaded steps slow down many times over (seen here: gpt 2.6 s/step on
2 threads against 0.37 s on 1, with builds running beside it); dlhist's rayon pool degrades less.
"""

import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SEED = 1234
WARMUP_STEPS = 2
WARMUP_S = 0.3
TRIAL_S = 1.0


# ---------------------------------------------------------------- models


def mlp_model():
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10)
    )


def lenet_model():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),  # (B, 6, 12, 12)
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),  # (B, 16, 4, 4)
        nn.Flatten(),
        nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )


class CharLstm(nn.Module):
    def __init__(self, vocab=65, embed=64, hidden=256):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, idx):  # (B, T) -> (B·T, V)
        h, _ = self.lstm(self.embed(idx))  # (B, T, H)
        return self.head(h.reshape(-1, h.shape[-1]))


class SelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, manual):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.n_head = n_head
        self.manual = manual

    def forward(self, x):  # (B, T, C)
        b, t, c = x.shape
        h = self.n_head
        q, k, v = self.c_attn(x).view(b, t, 3, h, c // h).permute(2, 0, 3, 1, 4)  # each (B, H, T, Dh)
        if self.manual:
            s = (q @ k.transpose(-2, -1)) / math.sqrt(c // h)  # (B, H, T, T)
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            y = F.softmax(s.masked_fill(mask, float("-inf")), dim=-1) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    def __init__(self, n_embd, n_head, manual):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.attn = SelfAttention(n_embd, n_head, manual)
        self.ln2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd), nn.GELU(approximate="tanh"), nn.Linear(4 * n_embd, n_embd)
        )

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Gpt(nn.Module):
    def __init__(self, vocab=65, n_layer=4, n_head=4, n_embd=128, block=64, manual=False):
        super().__init__()
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(block, n_embd)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.02)
        self.h = nn.ModuleList([Block(n_embd, n_head, manual) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab)

    def forward(self, idx):  # (B, T) -> (B·T, V)
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe.weight[:t]  # (B, T, C)
        for blk in self.h:
            x = blk(x)
        x = self.ln_f(x)
        return self.head(x.reshape(-1, x.shape[-1]))


GAN_G = [100, 256, 512, 1024, 784]
GAN_D = [784, 1024, 512, 256, 1]


def gan_mlp(dims, dropout):
    layers = []
    for i, (a, b) in enumerate(zip(dims, dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.LeakyReLU(0.2))
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class Gan(nn.Module):
    """dlhist's milestones/gan.rs: G's last layer is followed by tanh, D's gives a logit."""

    def __init__(self):
        super().__init__()
        self.g, self.d = gan_mlp(GAN_G, 0.0), gan_mlp(GAN_D, 0.3)

    def step(self, real, opt_d, opt_g):
        """One training step as dlhist's Gan::train_step; the losses as softplus (−log σ)."""
        fake = torch.tanh(self.g(torch.randn(real.shape[0], GAN_G[0])))
        opt_d.zero_grad(set_to_none=True)
        d_both = self.d(torch.cat([real, fake.detach()]))  # one pass of 2b, as dlhist's
        b = real.shape[0]
        loss_d = F.softplus(-d_both[:b]).mean() + F.softplus(d_both[b:]).mean()
        loss_d.backward()
        loss_d.item()
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        loss_g = F.softplus(-self.d(fake)).mean()
        loss_g.backward()
        loss_g.item()
        opt_g.step()


# ---------------------------------------------------------------- FLOPs (as dlhist counts them)


def timestep_embedding(t, dim):
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
    args = t.double()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], 1).float()


class ResBlock(nn.Module):
    def __init__(self, cin, cout, tdim, groups):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(tdim, cout)
        self.norm2, self.conv2 = nn.GroupNorm(groups, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.skip(x) if self.skip is not None else x) + h


class TimeUNet(nn.Module):
    """dlhist's nn/time_unet.rs, layer for layer; the timesteps are a fixed buffer."""

    def __init__(self, t, ch=(16, 32, 64), groups=8):
        super().__init__()
        td = 4 * ch[0]
        self.ch0 = ch[0]
        self.register_buffer("t", t)
        self.fc1, self.fc2 = nn.Linear(ch[0], td), nn.Linear(td, td)
        self.stem = nn.Conv2d(1, ch[0], 3, padding=1)
        L = len(ch)
        self.enc = nn.ModuleList(ResBlock(ch[0] if l == 0 else ch[l - 1], ch[l], td, groups) for l in range(L))
        self.down = nn.ModuleList(nn.Conv2d(ch[l], ch[l], 3, stride=2, padding=1) for l in range(L - 1))
        self.up = nn.ModuleList(nn.Conv2d(ch[l + 1], ch[l + 1], 3, padding=1) for l in range(L - 1))
        self.dec = nn.ModuleList(ResBlock(ch[l + 1] + ch[l], ch[l], td, groups) for l in range(L - 1))
        self.mid = ResBlock(ch[-1], ch[-1], td, groups)
        self.out_norm, self.out = nn.GroupNorm(groups, ch[0]), nn.Conv2d(ch[0], 1, 3, padding=1)

    def forward(self, x):
        emb = F.silu(self.fc2(F.silu(self.fc1(timestep_embedding(self.t, self.ch0)))))
        h, skips = self.stem(x), []
        for l, block in enumerate(self.enc):
            h = block(h, emb)
            if l < len(self.down):
                skips.append(h)
                h = self.down[l](h)
        h = self.mid(h, emb)
        for l in reversed(range(len(self.up))):
            h = self.up[l](F.interpolate(h, scale_factor=2, mode="nearest"))
            h = self.dec[l](torch.cat([h, skips[l]], 1), emb)
        return self.out(F.silu(self.out_norm(h)))


def unet_flops(b, s=28, ch=(16, 32, 64)):
    def conv(i, o, k, side):
        return 2 * i * o * k * k * side * side

    def block(i, o, side):
        return conv(i, o, 3, side) + conv(o, o, 3, side) + (conv(i, o, 1, side) if i != o else 0)

    f, L = conv(1, ch[0], 3, s), len(ch)
    for l in range(L):
        f += block(ch[0] if l == 0 else ch[l - 1], ch[l], s >> l)
        if l + 1 < L:
            f += conv(ch[l], ch[l], 3, s >> (l + 1))
    f += block(ch[-1], ch[-1], s >> (L - 1))
    for l in reversed(range(L - 1)):
        f += conv(ch[l + 1], ch[l + 1], 3, s >> l) + block(ch[l + 1] + ch[l], ch[l], s >> l)
    return b * (f + conv(ch[0], 1, 3, s))


def gan_flops(b):
    # G on b images, D on 3b (real and generated for D's update, generated again for G's)
    macs = lambda dims: sum(i * o for i, o in zip(dims, dims[1:]))
    return 2 * b * (macs(GAN_G) + 3 * macs(GAN_D))


def linear_flops(dims, rows):
    return sum(2 * a * b for a, b in zip(dims, dims[1:])) * rows


def lenet_flops(b):
    conv1 = 2 * 6 * 24 * 24 * 1 * 25
    conv2 = 2 * 16 * 8 * 8 * 6 * 25
    return b * (conv1 + conv2) + linear_flops([256, 120, 84, 10], b)


def lstm_flops(b, t, v=65, e=64, h=256):
    return b * t * (2 * e * 4 * h + 2 * h * 4 * h + 2 * h * v)


def gpt_flops(b, t, v=65, n_layer=4, c=128):
    per_token = n_layer * (2 * c * 3 * c + 2 * c * c + 2 * 2 * c * 4 * c) + 2 * c * v
    attn = n_layer * 2 * (2 * t * t * c)  # q·kᵀ and p·v over all heads, full T×T
    return b * (t * per_token + attn)


# ---------------------------------------------------------------- workloads


def images(b, gen):
    return torch.rand(b, 1, 28, 28, generator=gen), torch.randint(0, 10, (b,), generator=gen)


def tokens(b, t, vocab, gen):
    ids = torch.randint(0, vocab, (b, t + 1), generator=gen)
    return ids[:, :t].contiguous(), ids[:, 1:].reshape(-1).contiguous()


def build(name, manual_attention):
    """(model, x, y, shapes, forward FLOPs) of workload `name`."""
    gen = torch.Generator().manual_seed(SEED)
    if name == "mlp":
        x, y = images(128, gen)
        return mlp_model(), x, y, "784-512-256-10, ReLU, batch 128", linear_flops([784, 512, 256, 10], 128)
    if name == "lenet":
        x, y = images(64, gen)
        shapes = "conv 1-6 5x5, pool 2, conv 6-16 5x5, pool 2, fc 256-120-84-10, ReLU; 28x28, batch 64"
        return lenet_model(), x, y, shapes, lenet_flops(64)
    if name == "lstm":
        x, y = tokens(32, 64, 65, gen)
        return CharLstm(), x, y, "vocab 65, embed 64, LSTM 256, seq 64, batch 32", lstm_flops(32, 64)
    if name == "gpt":
        x, y = tokens(32, 64, 65, gen)
        shapes = "vocab 65, 4 layers, 4 heads, embd 128, block 64, batch 32"
        return Gpt(manual=manual_attention), x, y, shapes, gpt_flops(32, 64)
    if name == "gan":
        x = torch.rand(64, 784, generator=gen) * 2 - 1
        shapes = "G 100-256-512-1024-784, D 784-1024-512-256-1, LeakyReLU 0.2, D dropout 0.3; batch 64, a D update then a G update"
        return Gan(), x, None, shapes, gan_flops(64)
    if name == "unet":
        x, eps = torch.randn(64, 1, 28, 28, generator=gen), torch.randn(64, 1, 28, 28, generator=gen)
        t = torch.tensor([float((i * 997) % 1000) for i in range(64)])
        shapes = "diffusion U-Net 16/32/64 channels, GroupNorm(8)+SiLU, time embedding 64; 28x28, batch 64, MSE on the noise"
        return TimeUNet(t), x, eps, shapes, unet_flops(64)
    raise ValueError(name)


def adamw(model):
    """AdamW as dlhist's: weight decay on matrices and kernels (dim ≥ 2) only."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)


def bench(name, trials, steps, threads, manual_attention):
    torch.manual_seed(SEED)
    model, x, y, shapes, fwd_flops = build(name, manual_attention)
    opt = adamw(model)
    if name == "gan":
        opt_d, opt_g = adamw(model.d), adamw(model.g)
        model.train()

    def step():
        if name == "gan":
            return model.step(x, opt_d, opt_g)
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(x), y) if name == "unet" else F.cross_entropy(model(x), y)
        loss.backward()
        loss.item()
        opt.step()

    start, n = time.perf_counter(), 0
    while n < WARMUP_STEPS or time.perf_counter() - start < WARMUP_S:
        t = time.perf_counter()
        step()
        last = time.perf_counter() - t
        n += 1
    calls = steps or max(1, math.ceil(TRIAL_S / max(last, 1e-9)))
    trial_ms = []
    for _ in range(trials):
        t = time.perf_counter()
        for _ in range(calls):
            step()
        trial_ms.append((time.perf_counter() - t) * 1e3 / calls)
    ms = statistics.median(trial_ms)
    flops = 3 * fwd_flops
    row = {
        "workload": name,
        "shapes": shapes,
        "ms_per_step": ms,
        "steps_per_s": 1e3 / ms,
        "threads": threads,
        "gflops": flops / 1e9 / (ms / 1e3),
        "gflop_per_step": flops / 1e9,
        "trials": trials,
        "steps_per_trial": calls,
        "min_ms": min(trial_ms),
        "max_ms": max(trial_ms),
        "torch_version": torch.__version__,
    }
    if name == "gpt":
        row["attention"] = "manual" if manual_attention else "sdpa"
    return row


# ---------------------------------------------------------------- the gpt training recipe


def gpt2_init(model, n_layer):
    """GPT-2's init, as nanoGPT's _init_weights and its c_proj rule."""
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            nn.init.zeros_(p)
        elif p.dim() >= 2:
            residual = name.endswith("attn.c_proj.weight") or name.endswith("mlp.2.weight")
            nn.init.normal_(p, std=0.02 / math.sqrt(2 * n_layer) if residual else 0.02)
    # LayerNorm gains keep PyTorch's 1


def recipe_lr(step, lr=1e-3, warmup=100, total=2000, min_lr=1e-4):
    """dlhist's warmup + cosine schedule (src/engine/schedule.rs) for update number `step` (0-based)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    p = min((step - warmup) / max(total - warmup, 1), 1.0)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * p))


def train_recipe(path, threads, seed, iters):
    text = open(path, encoding="utf-8").read()
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    cut = len(ids) * 9 // 10
    train, val = ids[:cut], ids[cut:]
    b, t, n_layer = 12, 64, 4
    torch.manual_seed(seed)
    model = Gpt(vocab=len(vocab), n_layer=n_layer, n_head=4, n_embd=128, block=t)
    gpt2_init(model, n_layer)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.99), eps=1e-8)
    gen = torch.Generator().manual_seed(seed)
    offsets = torch.arange(t + 1)
    losses = []
    model.train()
    start = time.perf_counter()
    for it in range(iters):
        for g in opt.param_groups:
            g["lr"] = recipe_lr(it, total=iters)
        rows = train[torch.randint(len(train) - t, (b, 1), generator=gen) + offsets]  # (B, T+1)
        x, y = rows[:, :t], rows[:, 1:].reshape(-1)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    train_s = time.perf_counter() - start
    # dlhist's evaluation: 512 windows of T+1 spread evenly over the val split, batches of 64
    n, last = 32768 // t, len(val) - (t + 1)
    starts = torch.tensor([k * last // (n - 1) for k in range(n)])
    rows = val[starts[:, None] + offsets]
    model.eval()
    total = 0.0
    with torch.no_grad():
        for chunk in rows.split(64):
            total += F.cross_entropy(model(chunk[:, :t]), chunk[:, 1:].reshape(-1)).item() * len(chunk)
    tail = losses[-min(200, len(losses)):]
    return {
        "recipe": "gpt",
        "data": path,
        "iters": iters,
        "train_s": train_s,
        "ms_per_iter": train_s * 1e3 / iters,
        "val_loss": total / len(rows),
        "train_loss": sum(tail) / len(tail),
        "params": sum(p.numel() for p in model.parameters()),
        "vocab": len(vocab),
        "seed": seed,
        "threads": threads,
        "torch_version": torch.__version__,
    }

def sdpa_cuda(trials, steps):
    """PyTorch's fused attention on the GPU, timed like dlhist's CUDA op benches."""
    dev = torch.device("cuda")
    rows = []
    for b, t, c, h in [(32, 64, 128, 4), (8, 1024, 768, 12)]:
        gen = torch.Generator(device="cpu").manual_seed(SEED)
        qkv = torch.randn(b, t, 3 * c, generator=gen).to(dev).requires_grad_()
        r = torch.randn(b, t, c, generator=gen).to(dev)

        def call():
            q, k, v = qkv.split(c, dim=2)
            q, k, v = (x.view(b, t, h, c // h).transpose(1, 2) for x in (q, k, v))  # (B, H, T, Dh)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, c)
            (y * r).sum().backward()
            qkv.grad = None
            torch.cuda.synchronize()

        calls = steps or calibrate(call)
        ms = statistics.median(trial(call, calls) for _ in range(trials))
        flops = 3.5 * 4.0 * b * h * t * t * (c // h) / 2.0
        rows.append({"op": "attention (causal), F.scaled_dot_product_attention", "shape": f"B={b}, T={t}, C={c}, H={h}",
                     "ms": ms, "tflops": flops / 1e12 / (ms / 1e3), "backend": torch.cuda.get_device_name(),
                     "torch_version": torch.__version__})
    return rows


def calibrate(f):
    """Warm-up; returns the calls that make a trial of about TRIAL_S."""
    start, calls, last = time.perf_counter(), 0, 0.0
    while calls < WARMUP_STEPS or time.perf_counter() - start < WARMUP_S:
        t0 = time.perf_counter()
        f()
        last = time.perf_counter() - t0
        calls += 1
    return max(1, math.ceil(TRIAL_S / max(last, 1e-9)))


def trial(f, calls):
    """Milliseconds per call over `calls` calls."""
    t0 = time.perf_counter()
    for _ in range(calls):
        f()
    return (time.perf_counter() - t0) * 1e3 / calls


def positive(s):
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return v


def main():
    names = ["mlp", "lenet", "lstm", "gpt", "unet", "gan"]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workloads", nargs="*", metavar="WORKLOAD", help="mlp, lenet, lstm, gpt, unet, gan (default: all)")
    ap.add_argument("--threads", type=positive, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--trials", type=positive, default=5, help="timed trials; the median is reported (default 5)")
    ap.add_argument("--steps", type=positive, default=None, help="steps per trial (default: about 1 s worth)")
    ap.add_argument("--manual-attention", action="store_true",
                    help="gpt: explicit softmax attention instead of F.scaled_dot_product_attention")
    ap.add_argument("--recipe", choices=["gpt"], help="train the gpt recipe instead of timing steps (see above)")
    ap.add_argument("--data", default="data/fetched/shakespeare/shakespeare.txt", help="--recipe: the text")
    ap.add_argument("--seed", type=int, default=SEED, help="--recipe: seeds init and batches (default 1234)")
    ap.add_argument("--iters", type=positive, default=2000, help="--recipe: iterations (default 2000)")
    ap.add_argument("--sdpa-cuda", action="store_true",
                    help="time F.scaled_dot_product_attention on the GPU (the twin of dlhist's CUDA attention bench)")
    a = ap.parse_args()
    if a.recipe:
        torch.set_num_threads(a.threads)
        print(f"pytorch_bench: recipe {a.recipe} ({a.threads} threads, torch {torch.__version__}) ...", file=sys.stderr)
        print(json.dumps(train_recipe(a.data, a.threads, a.seed, a.iters), indent=2))
        return
    if a.sdpa_cuda:
        print(json.dumps(sdpa_cuda(a.trials, a.steps), indent=2))
        return
    unknown = [w for w in a.workloads if w not in names]
    if unknown:
        ap.error(f"unknown workload {unknown[0]!r}; the workloads are: {', '.join(names)}")
    torch.set_num_threads(a.threads)
    rows = []
    for name in dict.fromkeys(a.workloads or names):
        print(f"pytorch_bench: {name} ({a.threads} threads, torch {torch.__version__}) ...", file=sys.stderr)
        rows.append(bench(name, a.trials, a.steps, a.threads, a.manual_attention))
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
