# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tutorial 5, sparse: your own `forward`, converted with `sparsify`
#
# [snnTorch's tutorial 5](https://snntorch.readthedocs.io/en/latest/tutorials/tutorial_5.html)
# trains a fully connected SNN whose own `forward` loops over time and feeds the same image
# at every step. We take that `Net` as the tutorial writes it, at snnTorch's default
# initialisation, and train it twice: as it is, and after `sparsify(net)` with the package's
# defaults. The training loop is the tutorial's, unchanged, for both.
#
# **Data.** scikit-learn's bundled digits, upscaled from 8x8 to 28x28 and flattened to the
# tutorial's 784 inputs (MNIST needs a download).

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
x_train, x_test, y_train, y_test = train_test_split(images.flatten(1), torch.tensor(digits.target), test_size=0.2,
                                                    random_state=0, stratify=digits.target)
if SMALL:
    x_train, y_train, x_test, y_test = x_train[:256], y_train[:256], x_test[:128], y_test[:128]
print(x_train.shape)

# %% [markdown]
# ## The tutorial's network

# %%
import snntorch as snn
from torch import nn

num_inputs, num_hidden, num_outputs = 28 * 28, 1000, 10
num_steps, beta = 25, 0.95


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(num_inputs, num_hidden)
        self.lif1 = snn.Leaky(beta=beta)
        self.fc2 = nn.Linear(num_hidden, num_outputs)
        self.lif2 = snn.Leaky(beta=beta)

    def forward(self, x):
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        spk2_rec, mem2_rec = [], []
        for step in range(num_steps):
            cur1 = self.fc1(x)
            spk1, mem1 = self.lif1(cur1, mem1)
            cur2 = self.fc2(spk1)
            spk2, mem2 = self.lif2(cur2, mem2)
            spk2_rec.append(spk2)
            mem2_rec.append(mem2)
        return torch.stack(spk2_rec, dim=0), torch.stack(mem2_rec, dim=0)


net = Net()

# %% [markdown]
# ## The one-line conversion
#
# A model with its own `forward` keeps it: each `snn.Leaky` becomes a `SparseLeaky`, a
# drop-in subclass whose step is one autograd node and whose surrogate gradient is the
# sparse form of snnTorch's default `atan`, with the adaptive window. Because this loop
# feeds `fc1` the same `x` at every step, the converted model computes `fc1(x)` once per
# call and autograd runs its backward once: same numbers, a fraction of the work.

# %%
import snntorch_sparse as sps

sparse_net = sps.sparsify(net)
print(sparse_net)

# %% [markdown]
# ## The tutorial's training loop, for both

# %%
loss = nn.CrossEntropyLoss()
batch_size, epochs = 128, (1 if SMALL else 3)
models = {"dense snnTorch": net, "sparsify": sparse_net}
optimizers = {k: torch.optim.Adam(m.parameters(), lr=5e-4, betas=(0.9, 0.999)) for k, m in models.items()}
history = {k: {"loss": [], "step_s": []} for k in models}
g = torch.Generator().manual_seed(0)
for epoch in range(epochs):
    order = torch.randperm(len(y_train), generator=g)
    for i in range(0, len(order) - batch_size + 1, batch_size):
        idx = order[i:i + batch_size]
        data, targets = x_train[idx], y_train[idx]
        for name, model in models.items():
            t0 = time.perf_counter()
            spk_rec, mem_rec = model(data)
            loss_val = torch.zeros(1)
            for step in range(num_steps):
                loss_val += loss(mem_rec[step], targets)
            optimizers[name].zero_grad()
            loss_val.backward()
            optimizers[name].step()
            history[name]["step_s"].append(time.perf_counter() - t0)
            history[name]["loss"].append(loss_val.item())

for name, model in models.items():
    with torch.no_grad():
        spk_rec, _ = model(x_test)
    acc = (spk_rec.sum(0).argmax(1) == y_test).float().mean()
    steps = sorted(history[name]["step_s"][1:] or history[name]["step_s"])
    print(f"{name:>15}: test accuracy {acc:.2%}, median step {1e3 * steps[len(steps) // 2]:.0f} ms")
print(f"hidden layer's active fraction (last step): {sparse_net.lif1.activity:.1%}")

# %%
for name in models:
    plt.plot(history[name]["loss"], label=name)
plt.xlabel("step"); plt.ylabel("training loss"); plt.legend(); plt.show()

# %% [markdown]
# Means over three seeds and the full data: the "Tutorial models" section of the
# benchmarks page (`python -m snntorch_sparse.tutorials`).
