"""Write the example notebooks (examples/*.ipynb) from the cell sources below.

    python examples/_make_notebooks.py            # rewrite all notebooks (no outputs)
    python examples/_make_notebooks.py bth_sweep  # only some

Edit the cells here, not in the .ipynb files, so the notebooks stay reviewable
as code. tests/test_notebooks.py executes every notebook in small mode.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
NOTEBOOKS = {}


def notebook(fn):
    NOTEBOOKS[fn.__name__] = fn
    return fn


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str):
    return new_code_cell(text.strip("\n"))


SETUP = '''
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
'''

DIGITS = '''
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
'''


# ----------------------------------------------------------------------------------------
@notebook
def bth_sweep():
    return [
        md('''
# Choosing `bth`: sparsity vs accuracy

The window half-width `bth` of a sparse surrogate decides which neurons carry
gradient, `|U - θ| < bth`. A wider window is closer to dense BPTT; a narrower one
is cheaper. This notebook measures the trade-off on latency-coded digits with a
two-hidden-layer network (the sparse-gradient paper's shape, smaller):

* accuracy and loss curves for several `bth` (and the snnTorch dense baseline
  with the unclamped surrogate),
* the activity each window gives (fraction of active `(t, b, n)` entries),
* the backward time of the sparse layers against snnTorch's dense loop and
  against our fused layers with sparsity switched off.
'''),
        code(SETUP),
        code(DIGITS + '''
T = 25
(x_train, y_train), (x_test, y_test) = digits_latency(T=T)
if SMALL:
    x_train, y_train = x_train[:, :500], y_train[:500]
print("train", tuple(x_train.shape), f"input density {x_train.mean():.3f}")
'''),
        md('''
## Settings

`BTHS` is the sweep; in the full configuration each setting is trained with
several seeds and two surrogate slopes (snnTorch's default 25 and the paper's
100), because the effect of the window depends on the slope.
'''),
        code('''
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
'''),
        code('''
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
'''),
        md('''
## Accuracy and activity against `bth`
'''),
        code('''
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
'''),
        md('''
## Backward time against `bth`

Training curves above mix many things into wall time; here we time
`loss.backward()` alone, on one batch, for a trained network (median of several
repeats), for:

* snnTorch's dense loop,
* our fused layers with sparsity switched off (`bth` so large that every entry is
  active): same kernels, dense work,
* the sparse layers at each `bth`.

All use the same trained weights, so activity is that of a network in training.
'''),
        code('''
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
'''),
        md('''
## Reading the sweep

* Activity grows with `bth`; the backward's cost grows with activity.
* Accuracy is flat over a range of windows and drops when the window becomes so
  narrow that too few neurons carry gradient; where exactly depends on the slope
  (the window keeps a fraction `k·bth / (k·bth + 1)` of `fast_sigmoid`'s mass).
* This network is small (64 inputs, `T = 25`), so absolute times are short and
  fixed costs weigh more than on SHD- or N-MNIST-sized layers; the trend, not the
  exact ratio, is the point here. `python -m snntorch_sparse.bench` measures
  paper-sized networks.
'''),
    ]


# ----------------------------------------------------------------------------------------
@notebook
def spoken_digits_sparse():
    return [
        md('''
# Spoken digits (SHD-style), dense vs sparse

The Spiking Heidelberg Digits (SHD) are spoken digits turned into spikes by a
cochlea model: 700 frequency channels, sparse spikes, about a second per sample.
This notebook builds the same kind of input from the Free Spoken Digit Dataset
(FSDD: 3,000 recordings of 0-9, 6 speakers, 8 kHz), trains the sparse-gradient
paper's SHD network shape (two hidden spiking layers, non-spiking readout, logits =
max over time of the readout membrane) as snnTorch's dense loop and as sparse layers,
and compares accuracy, time and activity.

**Data location.** The notebook looks for FSDD's `recordings/` folder at
`$SNNTORCH_SPARSE_FSDD`, else at `../shared/data/fsdd` relative to the repository
root. Get it with `git clone https://github.com/Jakobovski/free-spoken-digit-dataset`
and point `SNNTORCH_SPARSE_FSDD` at the clone. Without it, the training cells are
skipped. (The real SHD: `tonic.datasets.SHD`, 700 channels; the network below takes
any channel count.)
'''),
        code(SETUP),
        code('''
def repo_root(start=Path.cwd()):
    for p in (start, *start.parents):
        if (p / "pyproject.toml").exists() and (p / "snntorch_sparse").is_dir():
            return p
    return start

def find_fsdd():
    cands = [os.environ.get("SNNTORCH_SPARSE_FSDD"), repo_root().parent / "shared" / "data" / "fsdd"]
    for c in cands:
        if c and (Path(c) / "recordings").is_dir():
            return Path(c)
    return None

FSDD = find_fsdd()
HAVE_DATA = FSDD is not None
print("FSDD:", FSDD if HAVE_DATA else "not found -- the training cells below will be skipped")
'''),
        md('''
## An SHD-style front end

`snntorch_sparse.data.audio` is a small cochlea stand-in: a mel filter bank
(`CHANNELS` bands, 10 ms frames) gives log-energies, and each band emits an *up*
spike when its log-energy rises by more than `delta` since its last spike and a
*down* spike when it falls by as much (send-on-delta coding). Each recording
becomes a sparse `[T, 2·CHANNELS]` raster; FSDD's own split (takes 0-4 test) is kept.
Encoded tensors are cached, so the second run loads in a blink.
'''),
        code('''
from snntorch_sparse.data import FSDD as FSDDSpikes, input_sparsity

CHANNELS = 32 if SMALL else 64           # mel bands
N_CH = 2 * CHANNELS                      # up and down channels
T = 80 if SMALL else 100                 # 10 ms frames kept

if HAVE_DATA:
    t0 = time.perf_counter()
    train_set = FSDDSpikes(FSDD, train=True, num_steps=T, channels=CHANNELS)
    test_set = FSDDSpikes(FSDD, train=False, num_steps=T, channels=CHANNELS)
    x_train, y_train = train_set.data.transpose(0, 1).contiguous(), train_set.targets   # [T, N, N_CH]
    x_test, y_test = test_set.data.transpose(0, 1).contiguous(), test_set.targets
    if SMALL:                            # a class-balanced subset of the training split
        keep = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(0))[:800]
        x_train, y_train = x_train[:, keep], y_train[keep]
    print(f"train {tuple(x_train.shape)}, test {tuple(x_test.shape)}, input sparsity "
          f"{input_sparsity(x_train):.3f} ({time.perf_counter() - t0:.1f} s)")
    fig, ax = plt.subplots(figsize=(8, 3))
    t, c = x_train[:, 0].nonzero(as_tuple=True)
    ax.scatter(t, c, s=3); ax.set_xlabel("time step (10 ms)"); ax.set_ylabel("channel")
    ax.set_title(f"spikes of one recording (digit {y_train[0].item()})"); plt.show()
'''),
        md('''
## The network, the snnTorch way

Tutorial 5's network: one hidden layer (1000 neurons in the full configuration)
and an output layer of 10 leaky neurons, `beta = 0.95`. Written as an
`nn.Sequential` with `init_hidden=True` neurons, snnTorch's style for stacked
layers. The surrogate is `fast_sigmoid` with slope 100.

Sparse gradients need hidden neurons whose membranes come near threshold; the
digits give each hidden neuron only a handful of input spikes, so the default
initialisation is scaled up (`GAIN`) until the hidden layer fires.
'''),
        code('''
import snntorch as snn
from snntorch import surrogate, utils
from torch import nn

N_IN, N_HIDDEN, N_OUT = 64, (200 if SMALL else 1000), 10
BETA, SLOPE, BTH, GAIN = 0.95, 100.0, 0.2, 5.0

def make_dense_net():
    sg = surrogate.fast_sigmoid(slope=SLOPE)
    net = nn.Sequential(
        nn.Linear(N_IN, N_HIDDEN), snn.Leaky(beta=BETA, spike_grad=sg, init_hidden=True),
        nn.Linear(N_HIDDEN, N_OUT), snn.Leaky(beta=BETA, spike_grad=sg, init_hidden=True, output=True),
    )
    with torch.no_grad():
        net[0].weight.mul_(GAIN)
        net[2].weight.mul_(GAIN)
    return net

def forward_dense(net, x):
    """snnTorch's loop over time; returns output spikes and membranes, [T, B, 10]."""
    utils.reset(net)
    spk_rec, mem_rec = [], []
    for step in range(x.shape[0]):
        spk, mem = net(x[step])
        spk_rec.append(spk)
        mem_rec.append(mem)
    return torch.stack(spk_rec), torch.stack(mem_rec)

torch.manual_seed(0)
dense_net = make_dense_net()
dense_net
'''),
        md('''
## The same network, sparse

One line. `sparsify` copies the weights, so both networks start from the same
point. The sparse model takes the whole sequence in one call and needs no
`utils.reset` (each call starts from a zero membrane).
'''),
        code('''
import snntorch_sparse as sps

sparse_net = sps.sparsify(dense_net, spike_grad=sps.sparse_fast_sigmoid(slope=SLOPE, bth=BTH))

def forward_sparse(net, x):
    return net(x)                # (spk, mem), both [T, B, 10]

sparse_net
'''),
        md('''
### Same gradients

The sparse backward is an exact reorganisation of BPTT with the *clamped*
surrogate (the surrogate set to zero outside `|U - θ| < bth`). Check it: give the
snnTorch network the clamped surrogate and compare gradients on one batch.
'''),
        code('''
def loss_fn(mem, y):
    """Tutorial 5's loss: cross-entropy of the output membrane, summed over time steps."""
    return sum(nn.functional.cross_entropy(mem[t], y) for t in range(mem.shape[0]))

check = make_dense_net()
check.load_state_dict(dense_net.state_dict())
for m in check:
    if isinstance(m, snn.Leaky):
        m.spike_grad = sps.sparse_fast_sigmoid(slope=SLOPE, bth=BTH)   # clamped, computed densely

xb, yb = x_train[:, :64], y_train[:64]
loss_fn(forward_dense(check, xb)[1], yb).backward()
loss_fn(forward_sparse(sparse_net, xb)[1], yb).backward()
for name, a, b in (("hidden W", check[0].weight.grad, sparse_net[0].weight.grad),
                   ("output W", check[2].weight.grad, sparse_net[1].weight.grad)):
    print(f"{name}: max |dense - sparse| = {(a - b).abs().max():.2e}   (max |grad| {a.abs().max():.2e})")
print(f"hidden-layer activity: {sparse_net[0].activity:.2%} of (t, b, n) entries carry gradient")
sparse_net.zero_grad(set_to_none=True)
'''),
        md('''
## Training loop

The tutorial's loop, unchanged apart from the forward function: Adam, the loss
above, accuracy from the output spike counts. We record the loss of every
iteration, the test accuracy and the wall time of each epoch, the time spent in
`loss.backward()`, and the hidden layer's activity.
'''),
        code('''
EPOCHS = 5 if SMALL else 10
BATCH = 128

def accuracy(net, forward, x, y):
    with torch.no_grad():
        spk, _ = forward(net, x)
        return (spk.sum(0).argmax(1) == y).float().mean().item()

def train(net, forward, epochs=EPOCHS, lr=2e-3, seed=0):
    opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.999))
    gen = torch.Generator().manual_seed(seed)
    hist = {"loss": [], "test_acc": [], "epoch_s": [], "backward_s": [], "activity": []}
    for epoch in range(epochs):
        t_epoch, t_bwd, acts = time.perf_counter(), 0.0, []
        perm = torch.randperm(len(y_train), generator=gen)
        for i in range(0, len(perm), BATCH):
            idx = perm[i:i + BATCH]
            spk, mem = forward(net, x_train[:, idx])
            loss = loss_fn(mem, y_train[idx])
            opt.zero_grad()
            t0 = time.perf_counter()
            loss.backward()
            t_bwd += time.perf_counter() - t0
            opt.step()
            hist["loss"].append(loss.item())
            if getattr(net[0], "activity", None) is not None:
                acts.append(net[0].activity)
        hist["epoch_s"].append(time.perf_counter() - t_epoch)
        hist["backward_s"].append(t_bwd)
        hist["activity"].append(sum(acts) / len(acts) if acts else None)
        hist["test_acc"].append(accuracy(net, forward, x_test, y_test))
        act = f", activity {hist['activity'][-1]:.2%}" if acts else ""
        print(f"epoch {epoch + 1}/{epochs}: loss {loss.item():.2f}, test accuracy "
              f"{hist['test_acc'][-1]:.2%}, {hist['epoch_s'][-1]:.2f} s "
              f"(backward {t_bwd:.2f} s){act}")
    return hist

print("snnTorch (dense)")
dense_hist = train(dense_net, forward_dense)
print("\\nsparse")
sparse_hist = train(sparse_net, forward_sparse)
'''),
        md('''
## Results
'''),
        code('''
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
for name, h in (("snnTorch dense", dense_hist), ("sparse", sparse_hist)):
    axes[0].plot(h["loss"], label=name, alpha=0.8)
    axes[1].plot(range(1, len(h["test_acc"]) + 1), [100 * a for a in h["test_acc"]], "o-", label=name)
axes[0].set_xlabel("iteration"); axes[0].set_ylabel("loss"); axes[0].set_title("training loss")
axes[1].set_xlabel("epoch"); axes[1].set_ylabel("test accuracy (%)"); axes[1].set_title("test accuracy")
axes[2].plot(range(1, len(sparse_hist["activity"]) + 1), [100 * a for a in sparse_hist["activity"]], "o-",
             color="C1")
axes[2].set_xlabel("epoch"); axes[2].set_ylabel("active entries (%)"); axes[2].set_title("hidden-layer activity (sparse)")
for ax in axes[:2]:
    ax.legend()
plt.tight_layout(); plt.show()

med = lambda v: sorted(v)[len(v) // 2]
print(f"{'':24s}{'snnTorch dense':>16s}{'sparse':>12s}")
print(f"{'final test accuracy':24s}{dense_hist['test_acc'][-1]:>16.2%}{sparse_hist['test_acc'][-1]:>12.2%}")
print(f"{'time per epoch (median)':24s}{med(dense_hist['epoch_s']):>14.2f} s{med(sparse_hist['epoch_s']):>10.2f} s")
print(f"{'backward per epoch':24s}{med(dense_hist['backward_s']):>14.2f} s{med(sparse_hist['backward_s']):>10.2f} s")
print(f"{'hidden activity':24s}{'100%':>16s}{sparse_hist['activity'][-1]:>12.2%}")
'''),
        md('''
### Memory kept for the backward pass

`snntorch_sparse.memory.saved_tensor_bytes` counts what autograd stores between
forward and backward. The dense loop keeps every step's activations; the sparse
layers keep the active entries and the input spike indices.
'''),
        code('''
from snntorch_sparse.memory import saved_tensor_bytes

xb, yb = x_train[:, :BATCH], y_train[:BATCH]
for name, net, forward in (("snnTorch dense", dense_net, forward_dense), ("sparse", sparse_net, forward_sparse)):
    with saved_tensor_bytes() as saved:
        loss = loss_fn(forward(net, xb)[1], yb)
    print(f"{name:15s} {saved.bytes / 2**20:7.2f} MiB saved for backward")
    del loss
'''),
        md('''
## What to take away

* The sparse model trains to the same accuracy: its gradient is BPTT's with a
  surrogate clamped to `|U - θ| < bth`, computed without touching inactive neurons.
* The time saved is in `loss.backward()`. How much depends on the layer sizes
  and on the activity: with 64 inputs and one hidden layer the network is tiny,
  and much of a step is Python overhead and the forward pass. The spoken-digit
  notebook and `python -m snntorch_sparse.bench` show wider, SHD-like layers.
* Watch `layer.activity`: it is the fraction of entries that carry gradient.
  See the docs' guide "Choosing the window" and `bth_sweep.ipynb`.
'''),
    ]


# ----------------------------------------------------------------------------------------
@notebook
def bth_sweep():
    return [
        md('''
# Choosing `bth`: sparsity vs accuracy

The window half-width `bth` of a sparse surrogate decides which neurons carry
gradient, `|U - θ| < bth`. A wider window is closer to dense BPTT; a narrower one
is cheaper. This notebook measures the trade-off on latency-coded digits with a
two-hidden-layer network (the sparse-gradient paper's shape, smaller):

* accuracy and loss curves for several `bth` (and the snnTorch dense baseline
  with the unclamped surrogate),
* the activity each window gives (fraction of active `(t, b, n)` entries),
* the backward time of the sparse layers against snnTorch's dense loop and
  against our fused layers with sparsity switched off.
'''),
        code(SETUP),
        code(DIGITS + '''
T = 25
(x_train, y_train), (x_test, y_test) = digits_latency(T=T)
if SMALL:
    x_train, y_train = x_train[:, :500], y_train[:500]
print("train", tuple(x_train.shape), f"input density {x_train.mean():.3f}")
'''),
        md('''
## Settings

`BTHS` is the sweep; in the full configuration each setting is trained with
several seeds and two surrogate slopes (snnTorch's default 25 and the paper's
100), because the effect of the window depends on the slope.
'''),
        code('''
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
'''),
        code('''
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
'''),
        md('''
## Accuracy and activity against `bth`
'''),
        code('''
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
'''),
        md('''
## Backward time against `bth`

Training curves above mix many things into wall time; here we time
`loss.backward()` alone, on one batch, for a trained network (median of several
repeats), for:

* snnTorch's dense loop,
* our fused layers with sparsity switched off (`bth` so large that every entry is
  active): same kernels, dense work,
* the sparse layers at each `bth`.

All use the same trained weights, so activity is that of a network in training.
'''),
        code('''
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
'''),
        md('''
## Reading the sweep

* Activity grows with `bth`; the backward's cost grows with activity.
* Accuracy is flat over a range of windows and drops when the window becomes so
  narrow that too few neurons carry gradient; where exactly depends on the slope
  (the window keeps a fraction `k·bth / (k·bth + 1)` of `fast_sigmoid`'s mass).
* This network is small (64 inputs, `T = 25`), so absolute times are short and
  fixed costs weigh more than on SHD- or N-MNIST-sized layers; the trend, not the
  exact ratio, is the point here. `python -m snntorch_sparse.bench` measures
  paper-sized networks.
'''),
    ]


# ----------------------------------------------------------------------------------------
@notebook
def spoken_digits_sparse():
    return [
        md('''
# Spoken digits (SHD-style), dense vs sparse

The Spiking Heidelberg Digits (SHD) are spoken digits turned into spikes by a
cochlea model: 700 frequency channels, sparse spikes, about a second per sample.
This notebook builds the same kind of input from the Free Spoken Digit Dataset
(FSDD: 3,000 recordings of 0-9, 6 speakers, 8 kHz), trains the sparse-gradient
paper's SHD network shape (two hidden spiking layers, non-spiking readout, logits =
max over time of the readout membrane) as snnTorch's dense loop and as sparse layers,
and compares accuracy, time and activity.

**Data location.** The notebook looks for FSDD's `recordings/` folder at
`$SNNTORCH_SPARSE_FSDD`, else at `../shared/data/fsdd` relative to the repository
root. Get it with `git clone https://github.com/Jakobovski/free-spoken-digit-dataset`
and point `SNNTORCH_SPARSE_FSDD` at the clone. Without it, the training cells are
skipped. (The real SHD: `tonic.datasets.SHD`, 700 channels; the network below takes
any channel count.)
'''),
        code(SETUP),
        code('''
def repo_root(start=Path.cwd()):
    for p in (start, *start.parents):
        if (p / "pyproject.toml").exists() and (p / "snntorch_sparse").is_dir():
            return p
    return start

def find_fsdd():
    cands = [os.environ.get("SNNTORCH_SPARSE_FSDD"), repo_root().parent / "shared" / "data" / "fsdd"]
    for c in cands:
        if c and (Path(c) / "recordings").is_dir():
            return Path(c)
    return None

FSDD = find_fsdd()
HAVE_DATA = FSDD is not None
print("FSDD:", FSDD if HAVE_DATA else "not found -- the training cells below will be skipped")
'''),
        md('''
## An SHD-style front end

A small cochlea stand-in: a mel filterbank (`N_CH` channels, 10 ms frames) gives
log-energies; a channel emits a spike each time its log-energy *rises* by more than
`DELTA` since its last spike (send-on-delta coding, onset-driven like the auditory
nerve). The result is a sparse `[T, N_CH]` spike raster per recording. The package's
`snntorch_sparse.data.audio` module provides a fuller version of this front end.
'''),
        code('''
import numpy as np
from scipy.io import wavfile

SR, HOP, NFFT = 8000, 80, 256           # 10 ms hop, 32 ms window
N_CH = 64 if SMALL else 128
T = 80 if SMALL else 100                 # frames kept (0.8 / 1.0 s)
DELTA = 0.5                              # log-energy step per spike

def mel_filterbank(n_ch, nfft=NFFT, sr=SR, fmin=60.0, fmax=3800.0):
    mel = lambda f: 2595 * np.log10(1 + f / 700)
    imel = lambda m: 700 * (10 ** (m / 2595) - 1)
    edges = imel(np.linspace(mel(fmin), mel(fmax), n_ch + 2))
    bins = np.fft.rfftfreq(nfft, 1 / sr)
    fb = np.zeros((n_ch, len(bins)))
    for i in range(n_ch):
        lo, c, hi = edges[i:i + 3]
        fb[i] = np.clip(np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)), 0, None)
    return fb

FB = mel_filterbank(N_CH)

def audio_to_spikes(path):
    sr, a = wavfile.read(path)
    a = a.astype(np.float32)
    a /= np.abs(a).max() + 1e-9
    if len(a) < NFFT:
        a = np.pad(a, (0, NFFT - len(a)))
    n = 1 + (len(a) - NFFT) // HOP
    frames = np.stack([a[i * HOP:i * HOP + NFFT] for i in range(n)]) * np.hanning(NFFT)
    loge = np.log(FB @ (np.abs(np.fft.rfft(frames, axis=1)) ** 2).T + 1e-3).T   # [frames, N_CH]
    spikes = np.zeros((T, N_CH), dtype=np.float32)
    level = loge[0].copy()
    for t in range(1, min(n, T)):
        up = loge[t] - level > DELTA
        spikes[t, up] = 1
        level = np.where(up, loge[t], np.minimum(level, loge[t]))    # track troughs, fire on rises
    return spikes

def load_fsdd(root, max_files=None, seed=0):
    files = sorted((root / "recordings").glob("*.wav"))
    rng = np.random.default_rng(seed)
    if max_files:
        files = [files[i] for i in sorted(rng.choice(len(files), max_files, replace=False))]
    x = torch.tensor(np.stack([audio_to_spikes(f) for f in files])).transpose(0, 1)   # [T, N, N_CH]
    y = torch.tensor([int(f.name.split("_")[0]) for f in files])
    test = torch.tensor([int(f.stem.split("_")[2]) < 5 for f in files])   # FSDD's split: takes 0-4 are test
    return (x[:, ~test].contiguous(), y[~test]), (x[:, test].contiguous(), y[test])

if HAVE_DATA:
    t0 = time.perf_counter()
    (x_train, y_train), (x_test, y_test) = load_fsdd(FSDD, max_files=800 if SMALL else None)
    print(f"train {tuple(x_train.shape)}, test {tuple(x_test.shape)}, spike density {x_train.mean():.3f} "
          f"({time.perf_counter() - t0:.1f} s)")
    fig, ax = plt.subplots(figsize=(8, 3))
    t, c = x_train[:, 0].nonzero(as_tuple=True)
    ax.scatter(t, c, s=3); ax.set_xlabel("time step (10 ms)"); ax.set_ylabel("channel")
    ax.set_title(f"spikes of one recording (digit {y_train[0].item()})"); plt.show()
'''),
        md('''
## The network

`N_CH -> H -> H -> 10`, `beta = 0.9`, `fast_sigmoid` with slope 100 and a window of
0.2 for the sparse version (the paper's settings), a non-resetting leaky readout. The
sparse model is the dense one after `sparsify`, so both start from the same weights.
'''),
        code('''
import snntorch as snn
from snntorch import surrogate, utils
from torch import nn
import snntorch_sparse as sps

HIDDEN = 128 if SMALL else 256
EPOCHS = 8 if SMALL else 15
BATCH, LR, BETA, SLOPE, BTH, GAIN = 64, 2e-3, 0.9, 100.0, 0.2, 5.0

def make_dense_net():
    sg = surrogate.fast_sigmoid(slope=SLOPE)
    net = nn.Sequential(
        nn.Linear(N_CH, HIDDEN), snn.Leaky(beta=BETA, spike_grad=sg, init_hidden=True),
        nn.Linear(HIDDEN, HIDDEN), snn.Leaky(beta=BETA, spike_grad=sg, init_hidden=True),
        nn.Linear(HIDDEN, 10), snn.Leaky(beta=BETA, spike_grad=sg, init_hidden=True, output=True,
                                         reset_mechanism="none"),
    )
    with torch.no_grad():
        net[0].weight.mul_(GAIN); net[2].weight.mul_(GAIN)
    return net

def forward_dense(net, x):
    utils.reset(net)
    return torch.stack([net(x[t])[1] for t in range(x.shape[0])])

def forward_sparse(net, x):
    return net(x)[1]

def hidden_activity(net):
    acts = [m.activity for m in list(net)[:-1] if getattr(m, "activity", None) is not None]
    return sum(acts) / len(acts) if acts else None

def train(net, forward, seed=0):
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(seed)
    hist = {"loss": [], "acc": [], "epoch_s": [], "backward_s": [], "activity": []}
    for epoch in range(EPOCHS):
        t0, t_bwd, acts = time.perf_counter(), 0.0, []
        perm = torch.randperm(len(y_train), generator=gen)
        for i in range(0, len(perm), BATCH):
            idx = perm[i:i + BATCH]
            loss = nn.functional.cross_entropy(forward(net, x_train[:, idx]).max(0).values, y_train[idx])
            opt.zero_grad()
            tb = time.perf_counter(); loss.backward(); t_bwd += time.perf_counter() - tb
            opt.step()
            hist["loss"].append(loss.item())
            a = hidden_activity(net)
            if a is not None:
                acts.append(a)
        hist["epoch_s"].append(time.perf_counter() - t0); hist["backward_s"].append(t_bwd)
        hist["activity"].append(sum(acts) / len(acts) if acts else None)
        with torch.no_grad():
            hist["acc"].append((forward(net, x_test).max(0).values.argmax(1) == y_test).float().mean().item())
        act = f", activity {hist['activity'][-1]:.2%}" if acts else ""
        print(f"epoch {epoch + 1}: loss {hist['loss'][-1]:.3f}, test accuracy {hist['acc'][-1]:.2%}, "
              f"{hist['epoch_s'][-1]:.1f} s (backward {t_bwd:.2f} s){act}")
    return hist

if HAVE_DATA:
    torch.manual_seed(0)
    dense_net = make_dense_net()
    sparse_net = sps.sparsify(dense_net, spike_grad=sps.sparse_fast_sigmoid(slope=SLOPE, bth=BTH))
    print("snnTorch (dense)"); dense_hist = train(dense_net, forward_dense)
    print("sparse"); sparse_hist = train(sparse_net, forward_sparse)
'''),
        code('''
if HAVE_DATA:
    from snntorch_sparse.memory import saved_tensor_bytes
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for name, h in (("snnTorch dense", dense_hist), ("sparse", sparse_hist)):
        axes[0].plot(h["loss"], label=name, alpha=0.8)
        axes[1].plot(range(1, EPOCHS + 1), [100 * a for a in h["acc"]], "o-", label=name)
    axes[2].plot(range(1, EPOCHS + 1), [100 * a for a in sparse_hist["activity"]], "o-", color="C1")
    axes[0].set_title("training loss"); axes[0].set_xlabel("iteration"); axes[0].legend()
    axes[1].set_title("test accuracy (%)"); axes[1].set_xlabel("epoch"); axes[1].legend()
    axes[2].set_title("hidden activity, sparse (%)"); axes[2].set_xlabel("epoch")
    plt.tight_layout(); plt.show()

    med = lambda v: sorted(v)[len(v) // 2]
    saved = {}
    for name, net, fwd in (("dense", dense_net, forward_dense), ("sparse", sparse_net, forward_sparse)):
        with saved_tensor_bytes() as s:
            out = fwd(net, x_train[:, :BATCH]).max(0).values.sum()
        saved[name] = s.bytes; del out
    print(f"{'':26s}{'snnTorch dense':>16s}{'sparse':>12s}")
    print(f"{'final test accuracy':26s}{dense_hist['acc'][-1]:>16.2%}{sparse_hist['acc'][-1]:>12.2%}")
    print(f"{'epoch time (median)':26s}{med(dense_hist['epoch_s']):>14.2f} s{med(sparse_hist['epoch_s']):>10.2f} s")
    print(f"{'backward time per epoch':26s}{med(dense_hist['backward_s']):>14.2f} s{med(sparse_hist['backward_s']):>10.2f} s")
    print(f"{'saved for backward':26s}{saved['dense'] / 2**20:>12.2f} MiB{saved['sparse'] / 2**20:>8.2f} MiB")
    print(f"{'hidden activity':26s}{'100%':>16s}{sparse_hist['activity'][-1]:>12.2%}")
'''),
        md('''
## Notes

* FSDD is small and its speakers repeat between train and test takes, so accuracies
  are higher than on SHD; the point is the side-by-side comparison from identical
  weights.
* For the real SHD (700 channels, `T` up to 500 at 2 ms bins), use
  `tonic.datasets.SHD` with `tonic.transforms.ToFrame(sensor_size=(700, 1, 1), time_window=2000)`
  and set `N_CH = 700`; that is the regime of the paper's reported speed-ups.
'''),
    ]


# ----------------------------------------------------------------------------------------
@notebook
def bloc_train():
    return [
        md('''
# BlocTrain on digits

Block-wise training (see the docs' guide "BlocTrain"): the network is cut into blocks,
each trained with its own auxiliary head on a local loss while the earlier blocks are
frozen; classes a block already classifies well become "easy", the next block trains only
on the hard ones, and a hard-class detector (HCD) per block lets inference exit early.

The network: 64 -> 5 x 128 sparse LIF layers -> 10 (non-spiking readout), cut into 3 blocks.
'''),
        code(SETUP),
        code('''
import warnings
import torch.nn.functional as F
from torch import nn
from snntorch_sparse import SparseLinearLeaky, sparse_fast_sigmoid, desparsify
from snntorch_sparse import bloc
from snntorch_sparse.data import load_digits_spikes

(x_all, y_all), (x_test, y_test) = load_digits_spikes()
perm = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(0))
x_val, y_val = x_all[:, perm[:287]], y_all[perm[:287]]
x_train, y_train = x_all[:, perm[287:]], y_all[perm[287:]]
EPOCHS = 8 if SMALL else 20

def deep_net(seed=0):
    torch.manual_seed(seed)
    sg = sparse_fast_sigmoid(slope=100, bth=0.2)
    net = nn.Sequential(SparseLinearLeaky(64, 128, beta=0.9, spike_grad=sg),
                        *[SparseLinearLeaky(128, 128, beta=0.9, spike_grad=sg) for _ in range(4)],
                        SparseLinearLeaky(128, 10, beta=0.9, readout=True))
    with torch.no_grad():
        for layer in net[:5]:
            layer.fc.weight.mul_(5)   # membranes near threshold: sparse gradients need activity
    return net

net = bloc.split(deep_net(), boundaries=[2, 4], num_classes=10, sample=x_train[:, :8])
trainer = bloc.BlocTrainer(net, epochs=EPOCHS, hcd_epochs=EPOCHS // 2, easy_threshold=0.95,
                           optimizer=lambda p: torch.optim.Adam(p, lr=5e-3))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    history = trainer.fit((x_train, y_train), (x_val, y_val))
for h in history:
    print(f"block {h['block']}: trained on {h['trained_on']} samples, hard classes after it: {h['hard_out']}")
'''),
        md("## Early-exit inference and its cost"),
        code('''
rep = bloc.report(net, x_test, y_test)
print(f"accuracy: early exit {rep['accuracy_early_exit']:.4f}, all blocks {rep['accuracy_all_blocks']:.4f}")
print(f"exit fraction per block: {[round(f, 3) for f in rep['exit_fraction']]}")
print(f"synaptic ops per inference: {rep['synops_early_exit']:.0f} vs {rep['synops_all_blocks']:.0f} "
      f"({rep['synops_ratio']:.2f}x fewer)")
print(f"head/HCD parameter overhead: {rep['parameters']['overhead']:.1%}")
plt.bar(range(len(rep['exit_fraction'])), rep['exit_fraction'])
plt.xlabel("exit block"); plt.ylabel("fraction of test samples"); plt.title("Where samples exit"); plt.show()
'''),
        md("## Training memory: one block at a time vs end to end"),
        code('''
mem_sparse = trainer.training_memory(x_train[:, :64], y_train[:64])
dense_twin = bloc.split(desparsify(deep_net()), [4, 8], 10, sample=x_train[:, :8])
mem_dense = bloc.BlocTrainer(dense_twin, progress=False).training_memory(x_train[:, :64], y_train[:64])
for name, m in (("sparse layers", mem_sparse), ("snnTorch dense twin", mem_dense)):
    print(f"{name:20s} end-to-end {m['end_to_end_saved_bytes'] / 2**20:6.2f} MiB, block-wise "
          f"{m['blockwise_saved_bytes'] / 2**20:6.2f} MiB -> {m['saved_ratio']:.2f}x less")
'''),
    ]


def main(names):
    for name in names or NOTEBOOKS:
        nb = new_notebook(cells=NOTEBOOKS[name]())
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        nbformat.validate(nb)
        path = HERE / f"{name}.ipynb"
        nbformat.write(nb, path)
        print("wrote", path.relative_to(HERE.parent))


if __name__ == "__main__":
    main(sys.argv[1:])
