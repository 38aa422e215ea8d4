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
# # BlocTrain on digits
#
# Block-wise training (see the docs' guide "BlocTrain"): the network is cut into blocks,
# each trained with its own auxiliary head on a local loss while the earlier blocks are
# frozen; classes a block already classifies well become "easy", the next block trains only
# on the hard ones, and a hard-class detector (HCD) per block lets inference exit early.
#
# The network: 64 -> 5 x 128 sparse LIF layers -> 10 (non-spiking readout), cut into 3 blocks.
# It is compared with the same network, from the same initial weights, trained end to end
# (backpropagation through every layer from the readout), for as many epochs.

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
# progress=False: one line per block below instead of progress bars
trainer = bloc.BlocTrainer(net, epochs=EPOCHS, hcd_epochs=EPOCHS // 2, easy_threshold=0.95,
                           optimizer=lambda p: torch.optim.Adam(p, lr=5e-3), progress=False)
history = trainer.fit((x_train, y_train), (x_val, y_val))
for h in history:
    print(f"block {h['block']}: trained on {h['trained_on']} samples, hard classes after it: {h['hard_out']}")

# %% [markdown]
# ## The baseline: the same network trained end to end
#
# Same initial weights (`deep_net(0)`), optimiser (Adam), batch size (64) and epochs; the
# loss is the cross-entropy of the readout's max-over-time membrane, and every layer gets
# its gradient through all the layers above it. End to end, this six-layer network is
# sensitive to the learning rate (BlocTrain's 5e-3 can diverge), so the baseline gets the
# best of three learning rates, chosen on the validation split. Expect it well below
# BlocTrain here: end to end, the loss's gradient crosses five sparse layers, each passing
# it only through its narrow window (`bth=0.2`), while each block's local loss crosses at
# most two. With a wider window the gap shrinks (the guide's integration test uses
# `bth=0.5`).

# %%
def train_end_to_end(model, epochs, lr=5e-3, batch=64, seed=0):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(y_train), generator=g)
        for i in range(0, len(order), batch):
            b = order[i:i + batch]
            loss = F.cross_entropy(model(x_train[:, b]).max(0).values, y_train[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model

@torch.no_grad()
def accuracy(model, x, y):
    return float((model.eval()(x).max(0).values.argmax(1) == y).float().mean())

runs = {lr: train_end_to_end(deep_net(0), EPOCHS, lr=lr) for lr in (5e-3, 2e-3, 1e-3)}
val_acc = {lr: accuracy(m, x_val, y_val) for lr, m in runs.items()}
best_lr = max(val_acc, key=val_acc.get)
e2e_acc = accuracy(runs[best_lr], x_test, y_test)
print("end to end, validation accuracy per learning rate:", {lr: round(a, 4) for lr, a in val_acc.items()})
print(f"end to end (lr {best_lr:g}): test accuracy {e2e_acc:.4f}")

# %%
rep = bloc.report(net, x_test, y_test)
print(f"accuracy: BlocTrain early exit {rep['accuracy_early_exit']:.4f}, all blocks "
      f"{rep['accuracy_all_blocks']:.4f}; end to end {e2e_acc:.4f}")
print(f"exit fraction per block: {[round(f, 3) for f in rep['exit_fraction']]}")
print(f"synaptic ops per inference: {rep['synops_early_exit']:.0f} vs {rep['synops_all_blocks']:.0f} "
      f"({rep['synops_ratio']:.2f}x fewer)")
print(f"head/HCD parameter overhead: {rep['parameters']['overhead']:.1%}")
plt.bar(range(len(rep['exit_fraction'])), rep['exit_fraction'])
plt.xlabel("exit block"); plt.ylabel("fraction of test samples"); plt.title("Where samples exit"); plt.show()

# %% [markdown]
# ## Training memory: one block at a time vs end to end
#
# The same comparison for the snnTorch dense twin of the network. `desparsify` turns each
# fused `SparseLinearLeaky` into two modules, `nn.Linear` + `snn.Leaky`, so the dense twin has
# twice as many layers: the sparse net's boundaries `[2, 4]` (after its 2nd and 4th fused
# layer) are `[4, 8]` in the dense twin. Same cut, same blocks.

# %%
mem_sparse = trainer.training_memory(x_train[:, :64], y_train[:64])
dense_twin = bloc.split(desparsify(deep_net()), [4, 8], 10, sample=x_train[:, :8])
mem_dense = bloc.BlocTrainer(dense_twin, progress=False).training_memory(x_train[:, :64], y_train[:64])
for name, m in (("sparse layers", mem_sparse), ("snnTorch dense twin", mem_dense)):
    print(f"{name:20s} end-to-end {m['end_to_end_saved_bytes'] / 2**20:6.2f} MiB, block-wise "
          f"{m['blockwise_saved_bytes'] / 2**20:6.2f} MiB -> {m['saved_ratio']:.2f}x less")
