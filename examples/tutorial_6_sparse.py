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
# # Tutorial 6, sparse: a convolutional SNN with `sparsify` and nothing else
#
# [snnTorch's tutorial 6](https://snntorch.readthedocs.io/en/latest/tutorials/tutorial_6.html)
# trains a convolutional spiking network on MNIST. Here we take its network exactly as
# the tutorial writes it, at snnTorch's default initialisation, train it once with the
# tutorial's own loop, and once after one line, `net = sparsify(net)`, with the package's
# defaults. Nothing is tuned: no weight gain, no window.
#
# **Data.** MNIST needs a download; scikit-learn's bundled handwritten digits (8x8) are
# upscaled to 28x28 and rate-coded over `num_steps` steps (`snntorch.spikegen.rate`), so
# the network's shapes are the tutorial's.

# %%
import os
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

SMALL = os.environ.get("SNNTORCH_SPARSE_NB_SIZE", "full").strip().lower() == "small"
torch.manual_seed(0)

digits = load_digits()
images = F.interpolate(torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1), size=(28, 28),
                       mode="bilinear", align_corners=False).clamp(0, 1)
x_train, x_test, y_train, y_test = train_test_split(images, torch.tensor(digits.target), test_size=0.2,
                                                    random_state=0, stratify=digits.target)
if SMALL:
    x_train, y_train, x_test, y_test = x_train[:640], y_train[:640], x_test[:200], y_test[:200]

from snntorch import spikegen

num_steps = 25
spikes_train = spikegen.rate(x_train, num_steps=num_steps)      # [T, N, 1, 28, 28]
spikes_test = spikegen.rate(x_test, num_steps=num_steps)
print(spikes_train.shape, f"spike density {spikes_train.mean():.3f}")

# %% [markdown]
# ## The tutorial's network and loop

# %%
import snntorch as snn
import snntorch.functional as SF
from snntorch import surrogate, utils
from torch import nn

spike_grad = surrogate.fast_sigmoid(slope=25)
beta = 0.5

net = nn.Sequential(nn.Conv2d(1, 12, 5), nn.MaxPool2d(2),
                    snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True),
                    nn.Conv2d(12, 64, 5), nn.MaxPool2d(2),
                    snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True),
                    nn.Flatten(),
                    nn.Linear(64 * 4 * 4, 10),
                    snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True, output=True))


def forward_pass(net, data):                 # the tutorial's loop, one time step per call
    spk_rec, mem_rec = [], []
    utils.reset(net)
    for step in range(data.shape[0]):
        spk_out, mem_out = net(data[step])
        spk_rec.append(spk_out)
        mem_rec.append(mem_out)
    return torch.stack(spk_rec), torch.stack(mem_rec)


# %% [markdown]
# ## The one-line conversion
#
# `sparsify` returns a new model that takes the whole sequence `[T, B, ...]` in one call.
# Each `snn.Leaky` gets the sparse form of its own surrogate, with the package's default
# *adaptive* window: in every call, each neuron passes gradient only through the 8% of its
# entries closest to threshold (see the guide "Choosing the window").

# %%
import snntorch_sparse as sps

sparse_net = sps.sparsify(net)       # copies net's initial weights
print(sparse_net)


def forward_sparse(net, data):
    return net(data)                 # whole sequence in one call


# %% [markdown]
# ## Training both, batch by batch

# %%
loss_fn = SF.ce_rate_loss()
batch_size, epochs = 128, (2 if SMALL else 3)
runs = {"dense snnTorch": (net, forward_pass), "sparsify": (sparse_net, forward_sparse)}
history = {name: {"loss": [], "step_s": []} for name in runs}
optimizers = {name: torch.optim.Adam(m.parameters(), lr=1e-2, betas=(0.9, 0.999)) for name, (m, _) in runs.items()}
activity = []
g = torch.Generator().manual_seed(0)
for epoch in range(epochs):
    order = torch.randperm(len(y_train), generator=g)
    for i in range(0, len(order) - batch_size + 1, batch_size):
        idx = order[i:i + batch_size]
        for name, (model, forward) in runs.items():
            t0 = time.perf_counter()
            spk_rec, mem_rec = forward(model, spikes_train[:, idx])
            loss = loss_fn(spk_rec, y_train[idx])
            optimizers[name].zero_grad()
            loss.backward()
            optimizers[name].step()
            history[name]["step_s"].append(time.perf_counter() - t0)
            history[name]["loss"].append(loss.item())
        activity.append([m.activity for m in sparse_net if getattr(m, "activity", None) is not None])


def accuracy(model, forward):
    with torch.no_grad():
        spk_rec, _ = forward(model, spikes_test)
    return SF.accuracy_rate(spk_rec, y_test)


for name, (model, forward) in runs.items():
    steps = sorted(history[name]["step_s"][1:] or history[name]["step_s"])
    print(f"{name:>15}: test accuracy {accuracy(model, forward):.2%}, "
          f"median step {1e3 * steps[len(steps) // 2]:.0f} ms")
print("sparse layers' active fraction (last step):", [f"{a:.1%}" for a in activity[-1]])

# %%
fig, ax = plt.subplots(1, 2, figsize=(11, 3.5))
for name in runs:
    ax[0].plot(history[name]["loss"], label=name)
ax[0].set_xlabel("step"); ax[0].set_ylabel("training loss"); ax[0].legend()
ax[1].plot([100 * sum(a) / len(a) for a in activity])
ax[1].set_xlabel("step"); ax[1].set_ylabel("mean active fraction (%)")
plt.tight_layout(); plt.show()

# %% [markdown]
# Means over three seeds and the full data: the "Tutorial models" section of the
# benchmarks page (`python -m snntorch_sparse.tutorials`).
