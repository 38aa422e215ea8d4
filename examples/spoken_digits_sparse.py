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
# # Spoken digits (SHD-style), dense vs sparse
#
# The Spiking Heidelberg Digits (SHD) are spoken digits turned into spikes by a
# cochlea model: 700 frequency channels, sparse spikes, about a second per sample.
# This notebook builds the same kind of input from the Free Spoken Digit Dataset
# (FSDD: 3,000 recordings of 0-9, 6 speakers, 8 kHz), trains the sparse-gradient
# paper's SHD network shape (two hidden spiking layers, non-spiking readout, logits =
# max over time of the readout membrane) as snnTorch's dense loop and as sparse layers,
# and compares accuracy, time and activity.
#
# **Data location.** The notebook looks for FSDD's `recordings/` folder at
# `$SNNTORCH_SPARSE_FSDD`, else at `../shared/data/fsdd` relative to the repository
# root. Get it with `git clone https://github.com/Jakobovski/free-spoken-digit-dataset`
# and point `SNNTORCH_SPARSE_FSDD` at the clone. Without it, the training cells are
# skipped. (The real SHD: `tonic.datasets.SHD`, 700 channels; the network below takes
# any channel count.)

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

# %% [markdown]
# ## An SHD-style front end
#
# A small cochlea stand-in: a mel filterbank (`N_CH` channels, 10 ms frames) gives
# log-energies; a channel emits a spike each time its log-energy *rises* by more than
# `DELTA` since its last spike (send-on-delta coding, onset-driven like the auditory
# nerve). The result is a sparse `[T, N_CH]` spike raster per recording. The package's
# `snntorch_sparse.data.audio` module provides a fuller version of this front end.

# %%
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

# %% [markdown]
# ## The network
#
# `N_CH -> H -> H -> 10`, `beta = 0.9`, `fast_sigmoid` with slope 100 and a window of
# 0.2 for the sparse version (the paper's settings), a non-resetting leaky readout. The
# sparse model is the dense one after `sparsify`, so both start from the same weights.

# %%
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

# %%
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

# %% [markdown]
# ## Notes
#
# * FSDD is small and its speakers repeat between train and test takes, so accuracies
#   are higher than on SHD; the point is the side-by-side comparison from identical
#   weights.
# * For the real SHD (700 channels, `T` up to 500 at 2 ms bins), use
#   `tonic.datasets.SHD` with `tonic.transforms.ToFrame(sensor_size=(700, 1, 1), time_window=2000)`
#   and set `N_CH = 700`; that is the regime of the paper's reported speed-ups.
