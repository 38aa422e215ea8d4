# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Choosing `bth`: sparsity vs accuracy
#
# The window half-width `bth` of a sparse surrogate decides which neurons carry
# gradient, `|U - θ| < bth`. A wider window is closer to dense BPTT; a narrower one
# is cheaper. This notebook measures the trade-off on latency-coded digits with a
# two-hidden-layer network (the sparse-gradient paper's shape, smaller):
#
# * accuracy and loss curves for several `bth` (and the snnTorch dense baseline
#   with the unclamped surrogate),
# * the activity each window gives (fraction of active `(t, b, n)` entries),
# * the backward time of the sparse layers against snnTorch's dense loop and
#   against our fused layers with sparsity switched off.

# %%
import os, time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

# "small": a quick configuration (what the test suite runs, < 1 min on 2 CPU cores);
# "full" (default): the real one. Set SNNTORCH_SPARSE_NB_SIZE before starting Jupyter.
SIZE = os.environ.get("SNNTORCH_SPARSE_NB_SIZE", "full").strip().lower()
assert SIZE in ("small", "full"), f"SNNTORCH_SPARSE_NB_SIZE must be small or full, got {SIZE!r}"
SMALL = SIZE == "small"
torch.manual_seed(0)
print(f"size: {SIZE}, torch {torch.__version__}, {torch.get_num_threads()} threads")

# %%
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from snntorch import spikegen

def digits_latency(T=25, tau=5.0, seed=0):
    """scikit-learn's 8x8 digits, latency-coded: brighter pixels spike earlier, blank ones never.

    Returns time-major spike tensors ``[T, N, 64]`` and labels, split 80/20.
    """
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X, dtype=torch.float32) / 16.0
    y = torch.tensor(y)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=seed, stratify=y)
    enc = lambda x: spikegen.latency(x, num_steps=T, tau=tau, threshold=0.01, clip=True,
                                     normalize=True, linear=True)   # [T, N, 64], time first
    return (enc(Xtr), ytr), (enc(Xte), yte)

T = 25
(x_train, y_train), (x_test, y_test) = digits_latency(T=T)
if SMALL:
    x_train, y_train = x_train[:, :500], y_train[:500]
print("train", tuple(x_train.shape), f"input density {x_train.mean():.3f}")

# %% [markdown]
# ## Settings
#
# `BTHS` is the sweep; in the full configuration each setting is trained with
# several seeds and two surrogate slopes (snnTorch's default 25 and the paper's
# 100), because the effect of the window depends on the slope.

# %%
import snntorch as snn
from snntorch import surrogate, utils
from torch import nn
import snntorch_sparse as sps

if SMALL:
    BTHS, SLOPES, SEEDS, EPOCHS, HIDDEN = [0.05, 0.2, 1.0], [100.0], [0], 2, 128
else:
    BTHS, SLOPES, SEEDS, EPOCHS, HIDDEN = [0.02, 0.05, 0.1, 0.2, 0.5, 1.0], [25.0, 100.0], [0, 1, 2], 15, 256
BATCH, LR, BETA, GAIN = 128, 2e-3, 0.9, 5.0

def make_dense_net(slope, seed):
    """snnTorch network: 64 -> H -> H -> 10, non-resetting leaky readout."""
    torch.manual_seed(seed)
    sg = surrogate.fast_sigmoid(slope=slope)
    net = nn.Sequential(
        nn.Linear(64, HIDDEN), snn.Leaky(beta=BETA, spike_grad=sg, init_hidden=True),
        nn.Linear(HIDDEN, HIDDEN), snn.Leaky(beta=BETA, spike_grad=sg, init_hidden=True),
        nn.Linear(HIDDEN, 10), snn.Leaky(beta=BETA, spike_grad=sg, init_hidden=True, output=True,
                                         reset_mechanism="none"),
    )
    with torch.no_grad():
        net[0].weight.mul_(GAIN); net[2].weight.mul_(GAIN)
    return net

def forward_dense(net, x):
    utils.reset(net)
    return torch.stack([net(x[t])[1] for t in range(x.shape[0])])   # readout membrane [T, B, 10]

def forward_sparse(net, x):
    return net(x)[1]

def logits(mem):
    return mem.max(0).values          # max over time of the readout membrane

def hidden_activity(net):
    acts = [m.activity for m in list(net)[:-1] if getattr(m, "activity", None) is not None]
    return sum(acts) / len(acts) if acts else None


# %%
def train(net, forward, seed):
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(seed)
    losses, acts = [], []
    for epoch in range(EPOCHS):
        perm = torch.randperm(len(y_train), generator=gen)
        for i in range(0, len(perm), BATCH):
            idx = perm[i:i + BATCH]
            loss = nn.functional.cross_entropy(logits(forward(net, x_train[:, idx])), y_train[idx])
            opt.zero_grad(); loss.backward(); opt.step()
            losses.append(loss.item())
            a = hidden_activity(net)
            if a is not None:
                acts.append(a)
    with torch.no_grad():
        acc = (logits(forward(net, x_test)).argmax(1) == y_test).float().mean().item()
    return {"loss": losses, "acc": acc, "activity": sum(acts) / len(acts) if acts else None}

results = {}   # (slope, bth or "dense", seed) -> run
t_start = time.perf_counter()
for slope in SLOPES:
    for seed in SEEDS:
        dense = make_dense_net(slope, seed)
        runs = {"dense": (dense, forward_dense)}
        for bth in BTHS:
            runs[bth] = (sps.sparsify(dense, spike_grad=sps.sparse_fast_sigmoid(slope=slope, bth=bth)),
                         forward_sparse)
        for key, (net, fwd) in runs.items():   # all start from the same weights
            results[(slope, key, seed)] = r = train(net, fwd, seed)
            act = "" if r["activity"] is None else f", activity {r['activity']:.2%}"
            print(f"slope {slope:5.0f}  {'dense' if key == 'dense' else f'bth {key}':9s} seed {seed}: "
                  f"test accuracy {r['acc']:.2%}{act}")
print(f"sweep took {time.perf_counter() - t_start:.0f} s")

# %% [markdown]
# ## Accuracy and activity against `bth`

# %%
import statistics

def mean(vals):
    return statistics.mean(vals) if vals else float("nan")

fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
for j, slope in enumerate(SLOPES):
    accs = [mean([results[(slope, b, s)]["acc"] for s in SEEDS]) for b in BTHS]
    acts = [mean([results[(slope, b, s)]["activity"] for s in SEEDS]) for b in BTHS]
    dense_acc = mean([results[(slope, "dense", s)]["acc"] for s in SEEDS])
    axes[0].plot(BTHS, [100 * a for a in accs], "o-", color=f"C{j}", label=f"sparse, slope {slope:g}")
    axes[0].axhline(100 * dense_acc, color=f"C{j}", ls="--", label=f"snnTorch dense, slope {slope:g}")
    axes[1].plot(BTHS, [100 * a for a in acts], "o-", color=f"C{j}", label=f"slope {slope:g}")
axes[0].set_xscale("log"); axes[0].set_xlabel("bth"); axes[0].set_ylabel("test accuracy (%)")
axes[0].set_title(f"accuracy (mean of {len(SEEDS)} seed(s))"); axes[0].legend(fontsize=8)
axes[1].set_xscale("log"); axes[1].set_yscale("log"); axes[1].set_xlabel("bth")
axes[1].set_ylabel("active entries (%)"); axes[1].set_title("hidden-layer activity"); axes[1].legend()

slope, seed = SLOPES[-1], SEEDS[0]
smooth = lambda v, k=5: [sum(v[max(0, i - k):i + 1]) / len(v[max(0, i - k):i + 1]) for i in range(len(v))]
axes[2].plot(smooth(results[(slope, "dense", seed)]["loss"]), "k--", label="snnTorch dense")
for i, b in enumerate(BTHS):
    axes[2].plot(smooth(results[(slope, b, seed)]["loss"]), color=plt.cm.viridis(i / max(len(BTHS) - 1, 1)),
                 label=f"bth {b}")
axes[2].set_xlabel("iteration"); axes[2].set_ylabel("loss (smoothed)")
axes[2].set_title(f"training loss, slope {slope:g}, seed {seed}"); axes[2].legend(fontsize=8)
plt.tight_layout(); plt.show()

print(f"{'slope':>6s} {'bth':>7s} {'accuracy':>10s} {'activity':>10s}")
for slope in SLOPES:
    print(f"{slope:6.0f} {'dense':>7s} {mean([results[(slope, 'dense', s)]['acc'] for s in SEEDS]):10.2%} {'100%':>10s}")
    for b in BTHS:
        print(f"{slope:6.0f} {b:7g} {mean([results[(slope, b, s)]['acc'] for s in SEEDS]):10.2%} "
              f"{mean([results[(slope, b, s)]['activity'] for s in SEEDS]):10.2%}")


# %% [markdown]
# ## Backward time against `bth`
#
# Training curves above mix many things into wall time; here we time
# `loss.backward()` alone, on one batch, for a trained network (median of several
# repeats), for:
#
# * snnTorch's dense loop,
# * our fused layers with sparsity switched off (`bth` so large that every entry is
#   active): same kernels, dense work,
# * the sparse layers at each `bth`.
#
# All use the same trained weights, so activity is that of a network in training.

# %%
def time_backward(net, forward, x, y, repeats):
    times = []
    for _ in range(repeats + 1):
        net.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(logits(forward(net, x)), y)
        t0 = time.perf_counter()
        loss.backward()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])          # first call is warm-up

slope, seed = SLOPES[-1], SEEDS[0]
trained = make_dense_net(slope, seed)
trained_sparse = sps.sparsify(trained, spike_grad=sps.sparse_fast_sigmoid(slope=slope, bth=0.2))
train(trained_sparse, forward_sparse, seed)                  # a trained network: realistic activity
trained = sps.desparsify(trained_sparse)                     # same weights, snnTorch modules
for m in trained:
    if isinstance(m, snn.Leaky):
        m.spike_grad = surrogate.fast_sigmoid(slope=slope)  # the usual dense surrogate

xb, yb = x_train[:, :BATCH], y_train[:BATCH]
REPEATS = 3 if SMALL else 15
t_dense = time_backward(trained, forward_dense, xb, yb, REPEATS)
fused = sps.sparsify(trained, spike_grad=sps.sparse_fast_sigmoid(slope=slope, bth=1e9))  # every entry active
t_fused = time_backward(fused, forward_sparse, xb, yb, REPEATS)
rows = []
for b in BTHS:
    net = sps.sparsify(trained, spike_grad=sps.sparse_fast_sigmoid(slope=slope, bth=b))
    t = time_backward(net, forward_sparse, xb, yb, REPEATS)
    rows.append((b, hidden_activity(net), t))

print(f"backward of one batch of {BATCH}, T={T}, hidden {HIDDEN}x2")
print(f"{'':22s}{'activity':>10s}{'backward':>12s}{'vs snnTorch':>13s}{'vs fused dense':>16s}")
print(f"{'snnTorch dense':22s}{'100%':>10s}{1e3 * t_dense:10.2f} ms{'1.0x':>13s}{'':>16s}")
print(f"{'fused, all active':22s}{'100%':>10s}{1e3 * t_fused:10.2f} ms{t_dense / t_fused:12.1f}x{'1.0x':>16s}")
for b, a, t in rows:
    print(f"{'sparse bth ' + str(b):22s}{a:10.2%}{1e3 * t:10.2f} ms{t_dense / t:12.1f}x{t_fused / t:15.1f}x")

fig, ax = plt.subplots(figsize=(6, 4))
ax.plot([b for b, _, _ in rows], [t_dense / t for _, _, t in rows], "o-", label="vs snnTorch dense loop")
ax.plot([b for b, _, _ in rows], [t_fused / t for _, _, t in rows], "s-", label="vs fused, sparsity off")
ax.axhline(1, color="gray", lw=0.8)
ax.set_xscale("log"); ax.set_xlabel("bth"); ax.set_ylabel("backward speed-up (x)"); ax.legend()
ax.set_title("backward speed-up against bth"); plt.tight_layout(); plt.show()

# %% [markdown]
# ## Reading the sweep
#
# * Activity grows with `bth`; the backward's cost grows with activity.
# * Accuracy is flat over a range of windows and drops when the window becomes so
#   narrow that too few neurons carry gradient; where exactly depends on the slope
#   (the window keeps a fraction `k·bth / (k·bth + 1)` of `fast_sigmoid`'s mass).
# * This network is small (64 inputs, `T = 25`), so absolute times are short and
#   fixed costs weigh more than on SHD- or N-MNIST-sized layers; the trend, not the
#   exact ratio, is the point here. `python -m snntorch_sparse.bench` measures
#   paper-sized networks.
