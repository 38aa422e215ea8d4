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
# # Tutorial 7, sparse: tonic's N-MNIST pipeline and `sparsify` with its defaults
#
# [snnTorch's tutorial 7](https://snntorch.readthedocs.io/en/latest/tutorials/tutorial_7.html)
# reads N-MNIST with [tonic](https://tonic.readthedocs.io), bins the events into frames and
# trains a convolutional SNN. N-MNIST cannot be downloaded here, so we first *write* a small
# dataset in N-MNIST's own binary format and folder layout (scikit-learn's digits moved
# through N-MNIST's three saccades in front of a simulated event camera,
# `snntorch_sparse.data.nmnist_like`); everything after that is tonic reading real
# N-MNIST-format files. On the real data, use `tonic.datasets.NMNIST(save_to=...)` instead.

# %%
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import tonic
import tonic.transforms as tT
import torch

from snntorch_sparse.data.nmnist_like import NMNISTFolder, write_nmnist_like

SMALL = os.environ.get("SNNTORCH_SPARSE_NB_SIZE", "full").strip().lower() == "small"
ROOT_DIR = Path("data") / "nmnist_like"
write_nmnist_like(ROOT_DIR, n_per_class=30 if SMALL else 120)

sensor_size = tonic.datasets.NMNIST.sensor_size
num_steps = 25
transform = tT.Compose([tT.Denoise(filter_time=10000),
                        tT.ToFrame(sensor_size=sensor_size, n_time_bins=num_steps)])
trainset = NMNISTFolder(ROOT_DIR, train=True, transform=transform)
testset = NMNISTFolder(ROOT_DIR, train=False, transform=transform)


def frames(dataset):          # [T, N, 2, 34, 34] binary frames, time first
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.as_tensor(np.stack(xs), dtype=torch.float32).clamp(max=1).transpose(0, 1), torch.tensor(ys)


x_train, y_train = frames(trainset)
x_test, y_test = frames(testset)
print(x_train.shape, f"event density {x_train.mean():.3f}")

# %% [markdown]
# ## The tutorial's network, dense and sparse

# %%
import snntorch as snn
import snntorch.functional as SF
from snntorch import surrogate, utils
from torch import nn

import snntorch_sparse as sps

torch.manual_seed(0)
spike_grad = surrogate.atan()
beta = 0.5
net = nn.Sequential(nn.Conv2d(2, 12, 5), nn.MaxPool2d(2),
                    snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True),
                    nn.Conv2d(12, 32, 5), nn.MaxPool2d(2),
                    snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True),
                    nn.Flatten(),
                    nn.Linear(32 * 5 * 5, 10),
                    snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True, output=True))
sparse_net = sps.sparsify(net)        # the package's defaults


def forward_pass(net, data):          # the tutorial's loop
    spk_rec = []
    utils.reset(net)
    for step in range(data.size(0)):
        spk_out, mem_out = net(data[step])
        spk_rec.append(spk_out)
    return torch.stack(spk_rec)


def forward_sparse(net, data):        # one call for the whole sequence
    return net(data)[0]


# %% [markdown]
# ## Training both with the tutorial's optimiser and loss

# %%
loss_fn = SF.mse_count_loss(correct_rate=0.8, incorrect_rate=0.2)
batch_size, epochs = 64, (2 if SMALL else 3)
runs = {"dense snnTorch": (net, forward_pass), "sparsify": (sparse_net, forward_sparse)}
optimizers = {k: torch.optim.Adam(m.parameters(), lr=2e-2, betas=(0.9, 0.999)) for k, (m, _) in runs.items()}
history = {k: {"loss": [], "step_s": []} for k in runs}
g = torch.Generator().manual_seed(0)
for epoch in range(epochs):
    order = torch.randperm(len(y_train), generator=g)
    for i in range(0, len(order) - batch_size + 1, batch_size):
        idx = order[i:i + batch_size]
        for name, (model, forward) in runs.items():
            t0 = time.perf_counter()
            spk_rec = forward(model, x_train[:, idx])
            loss_val = loss_fn(spk_rec, y_train[idx])
            optimizers[name].zero_grad()
            loss_val.backward()
            optimizers[name].step()
            history[name]["step_s"].append(time.perf_counter() - t0)
            history[name]["loss"].append(loss_val.item())

for name, (model, forward) in runs.items():
    with torch.no_grad():
        acc = SF.accuracy_rate(forward(model, x_test), y_test)
    steps = sorted(history[name]["step_s"][1:] or history[name]["step_s"])
    print(f"{name:>15}: test accuracy {acc:.2%}, median step {1e3 * steps[len(steps) // 2]:.0f} ms")
print("active fraction per sparse layer:", [f"{m.activity:.1%}" for m in sparse_net if getattr(m, "activity", None)])

# %%
for name in runs:
    plt.plot(history[name]["loss"], label=name)
plt.xlabel("step"); plt.ylabel("training loss"); plt.legend(); plt.show()

# %% [markdown]
# Means over three seeds: the "Tutorial models" section of the benchmarks page
# (`python -m snntorch_sparse.tutorials`).
