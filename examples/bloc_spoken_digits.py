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
# # BlocTrain on spoken digits
#
# The companion of the digits notebook (`bloc_train`) on a *temporal* task: the Free Spoken
# Digit Dataset as spike rasters (the package's own front end, 64 channels, T = 100 steps of
# 10 ms). Classes differ in *when* channels fire, so the blocks' auxiliary heads and
# hard-class detectors must read time: `bloc.split(..., readout="auto")` measures the input's
# temporal structure and picks a non-spiking leaky read-out with max-over-time logits
# (`bloc.LeakyReadout`) instead of the firing-rate head. The easy classes of each block are
# chosen from the distribution of its validation accuracies (`easy_threshold="auto"`).
#
# The network is the one of issue 22: snnTorch `Linear + Leaky` pairs 64-128x5 and a leaky
# read-out of 10 classes, weight gains x5 / x2.5, converted with `sparsify`, cut into 3 blocks
# with `bloc.split(net, [2, 4], 10)`. The code lives in `examples/bloc_fsdd.py`, whose full run
# (3 seeds) writes `benchmarks/results/bloc_fsdd.json`; the last cell shows that file.

# %%
import json
import os
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import torch

# "small": a quick configuration (what the test suite runs, < 1 min on 2 CPU cores);
# "full" (default): the real one. Set SNNTORCH_SPARSE_NB_SIZE before starting Jupyter.
SIZE = os.environ.get("SNNTORCH_SPARSE_NB_SIZE", "full").strip().lower()
assert SIZE in ("small", "full"), f"SNNTORCH_SPARSE_NB_SIZE must be small or full, got {SIZE!r}"
SMALL = SIZE == "small"
torch.manual_seed(0)

import sys

# the repository root: this notebook's folder's parent, or (docs build) the first parent holding examples/
ROOT = next((q for q in [Path.cwd().parent, *Path.cwd().parents] if (q / "examples" / "bloc_fsdd.py").exists()),
            Path.cwd().parent)
sys.path.insert(0, str(ROOT / "examples"))
import bloc_fsdd as ex  # examples/bloc_fsdd.py
from snntorch_sparse import bloc
from snntorch_sparse.data.audio import fsdd_root

HAVE_FSDD = fsdd_root() is not None
print(f"size: {SIZE}, FSDD found: {HAVE_FSDD}")

# %% [markdown]
# ## The data and the read-out chosen for it
#
# `bloc.temporal_structure` compares how much each channel's activity changes between four
# windows of the sequence with what a time-independent (rate) code would give: about 1 for
# rate-coded inputs, several times more for speech.

# %%
if HAVE_FSDD:
    train, val, test = ex.load(quick=SMALL)
    x_train, y_train = train
    print(f"train {tuple(x_train.shape)}, val {tuple(val[0].shape)}, test {tuple(test[0].shape)}")
    print(f"temporal structure R = {bloc.temporal_structure(x_train[:, :32]):.2f}")
    net = bloc.split(ex.build_model(0), [2, 4], 10, sample=x_train[:, :32])
    print("readout chosen:", net.readout)
    print(net.heads[0], net.hcds[0], net.heads[2], sep="\n")
    plt.imshow(x_train[:, 0].T, aspect="auto", cmap="Greys", interpolation="nearest")
    plt.xlabel("time step (10 ms)"); plt.ylabel("channel (32 up, 32 down)")
    plt.title(f"one recording, digit {int(y_train[0])}"); plt.show()

# %% [markdown]
# ## Block-wise training vs end to end
#
# Same network, same initial weights, same optimiser (Adam, lr 2e-3) and epochs: end to end
# trains every layer through the read-out; BlocTrain trains each block with its head on the
# classes still hard, then its HCD.

# %%
EPOCHS = 3 if SMALL else 15
if HAVE_FSDD:
    model = ex.train_end_to_end(ex.build_model(0), train, EPOCHS, 2e-3, 64, seed=0)
    e2e = ex.accuracy_end_to_end(model, test)
    trainer = bloc.BlocTrainer(net, epochs=EPOCHS, hcd_epochs=2 if SMALL else 5, easy_threshold="auto",
                               optimizer=ex.optimiser(2e-3), progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        history = trainer.fit(train, val)
    for h in history:
        print(f"block {h['block']}: trained on {h['trained_on']} samples, easy threshold {h['easy_threshold']:.3f}, "
              f"hard classes after it: {h['hard_out']}")

# %%
if HAVE_FSDD:
    rep = bloc.report(net, *test)
    print(f"end to end {e2e:.4f}; BlocTrain early exit {rep['accuracy_early_exit']:.4f}, "
          f"all blocks {rep['accuracy_all_blocks']:.4f}")
    print(f"exits per block {[round(f, 3) for f in rep['exit_fraction']]}, "
          f"{rep['synops_ratio']:.2f}x fewer synaptic operations than all blocks")
    mem = trainer.training_memory(x_train[:, :64], y_train[:64])
    print(f"bytes saved for backward: end to end {mem['end_to_end_saved_bytes'] / 2**20:.2f} MiB, "
          f"block-wise {mem['blockwise_saved_bytes'] / 2**20:.2f} MiB ({mem['saved_ratio']:.2f}x less)")
    plt.bar(range(len(rep["exit_fraction"])), rep["exit_fraction"])
    plt.xlabel("exit block"); plt.ylabel("fraction of test samples"); plt.title("Where samples exit"); plt.show()

# %% [markdown]
# ## The measured run (3 seeds)
#
# `python examples/bloc_fsdd.py --out benchmarks/results/bloc_fsdd.json` trains both ways for
# seeds 0, 1, 2 at the full size; this cell shows what that file holds.

# %%
results = ROOT / "benchmarks" / "results" / "bloc_fsdd.json"
if results.exists():
    data = json.loads(results.read_text())
    print(ex.markdown_table(data))
else:
    print(f"{results} not found: run examples/bloc_fsdd.py --out {results}")
