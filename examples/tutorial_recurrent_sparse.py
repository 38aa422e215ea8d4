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
# # Recurrent and second-order neurons, sparse: `RLeaky`, `Synaptic` and state across calls
#
# snnTorch's tutorials build their networks as an `nn.Sequential` of `nn.Linear` layers and
# `init_hidden=True` neurons, stepped once per time step (tutorial 5's training loop). Here
# the hidden neuron is snnTorch's recurrent `snn.RLeaky` (learnable all-to-all recurrent
# weights `V`) or its second-order `snn.Synaptic`. We train the tutorial-style network as it
# is and after `sparsify(net)`: the `Linear + RLeaky` pair becomes one fused
# `SparseLinearRLeaky`, whose backward carries the recurrent term `a[t+1] V` only to the
# neurons inside the active window (|U - θ| < B), never as a dense `[T, B, N] x [N, N]` product.
#
# Then the part snnTorch users do with `init_hidden`: a long sequence cut into chunks, with
# the state carried from one call to the next (`stateful=True`) and detached between chunks
# for truncated BPTT -- checked against snnTorch doing the same.
#
# **Data.** The Free Spoken Digit Dataset (`$FSDD_ROOT`, else `/work/shared/data/fsdd`) encoded
# as spikes (64 channels, T = 100); without it, class-structured random spike trains.

# %%
import os
import time

import matplotlib.pyplot as plt
import snntorch as snn
import torch
import torch.nn.functional as F
from snntorch import surrogate
from snntorch import utils
from torch import nn

import snntorch_sparse as sps
from snntorch_sparse.surrogate import sparse_fast_sigmoid

SMALL = os.environ.get("SNNTORCH_SPARSE_NB_SIZE", "full").strip().lower() == "small"
torch.manual_seed(0)

try:
    from snntorch_sparse.data.audio import fsdd_root, fsdd_spikes
    have_fsdd = fsdd_root() is not None
except ImportError:
    have_fsdd = False
if have_fsdd:
    (x_train, y_train), (x_test, y_test) = fsdd_spikes(max_files=300 if SMALL else None)
else:  # class-structured Bernoulli spike trains with the same shape
    from snntorch_sparse.bench import BenchConfig, class_spike_data
    x_train, y_train = class_spike_data(BenchConfig("nb", 64, (), 10, 100, 600, density=0.05), 10, "cpu", 0)
    x_test, y_test = class_spike_data(BenchConfig("nb", 64, (), 10, 100, 200, density=0.05), 10, "cpu", 0)
if SMALL:
    x_train, y_train, x_test, y_test = x_train[:, :192], y_train[:192], x_test[:, :96], y_test[:96]
num_steps, num_inputs = x_train.shape[0], x_train.shape[-1]
print("train", tuple(x_train.shape), "test", tuple(x_test.shape), "input density", float(x_train.mean()))

# %% [markdown]
# ## The tutorial-style network, with a recurrent hidden layer

# %%
num_hidden, num_outputs, beta = (64 if SMALL else 128), 10, 0.9
spike_grad = surrogate.fast_sigmoid(slope=100)


def make_net(kind="rleaky"):
    hidden = (snn.RLeaky(beta=beta, linear_features=num_hidden, spike_grad=spike_grad, init_hidden=True)
              if kind == "rleaky" else
              snn.Synaptic(alpha=0.8, beta=beta, spike_grad=spike_grad, init_hidden=True))
    net = nn.Sequential(nn.Linear(num_inputs, num_hidden), hidden, nn.Linear(num_hidden, num_outputs),
                        snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True, output=True,
                                  reset_mechanism="none"))
    with torch.no_grad():
        net[0].weight.mul_(5.0)  # membranes near threshold at the start (see the guide "Choosing the window")
    return net


def forward_dense(net, x):  # snnTorch's loop: one call per time step
    utils.reset(net)
    return torch.stack([net(x[t])[1] for t in range(x.shape[0])])


def forward_sparse(net, x):  # the sparsified model takes the whole sequence
    return net(x)[1]


def train(net, forward, epochs, batch_size=64, lr=5e-3):
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    t0, losses = time.perf_counter(), []
    for _ in range(epochs):
        perm = torch.randperm(len(y_train), generator=g)
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(forward(net, x_train[:, idx]).max(0).values, y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    with torch.no_grad():
        acc = (forward(net, x_test).max(0).values.argmax(1) == y_test).float().mean().item()
    return acc, time.perf_counter() - t0, losses


epochs = 2 if SMALL else 10
dense = make_net("rleaky")
sparse = sps.sparsify(dense, spike_grad=sparse_fast_sigmoid(slope=100, bth=0.2))
print(sparse)
acc_d, time_d, loss_d = train(dense, forward_dense, epochs)
acc_s, time_s, loss_s = train(sparse, forward_sparse, epochs)
print(f"snnTorch RLeaky: accuracy {100 * acc_d:.1f}%  ({time_d:.1f} s)")
print(f"sparse RLeaky:   accuracy {100 * acc_s:.1f}%  ({time_s:.1f} s), "
      f"active entries {100 * sparse[0].activity:.1f}%")

# %%
plt.plot(loss_d, label="snnTorch RLeaky")
plt.plot(loss_s, label="sparse (sparsify)")
plt.xlabel("iteration")
plt.ylabel("loss")
plt.legend()
plt.show()

# %% [markdown]
# ## The same gradients as snnTorch
#
# With the same clamped surrogate, the sparse layer's gradients are snnTorch's own, recurrent
# weights included: the recurrent term is skipped only where the surrogate is zero anyway.

# %%
torch.manual_seed(1)
sg = sparse_fast_sigmoid(slope=100, bth=0.2)
ref = make_net("rleaky")
ref[1].spike_grad = sg
ref[3].spike_grad = sg
twin = sps.sparsify(ref, event_forward=False)
x, y = x_train[:, :16], y_train[:16]
F.cross_entropy(forward_dense(ref, x).max(0).values, y).backward()
F.cross_entropy(forward_sparse(twin, x).max(0).values, y).backward()
for name, a, b in (("input weights", twin[0].fc.weight, ref[0].weight),
                   ("recurrent weights V", twin[0].recurrent.weight, ref[1].recurrent.weight),
                   ("readout weights", twin[1].fc.weight, ref[2].weight)):
    err = ((a.grad - b.grad).abs().max() / b.grad.abs().max().clamp_min(1e-30)).item()
    print(f"{name:20s} relative difference {err:.1e}")

# %% [markdown]
# ## A long sequence in chunks: state carried across calls, truncated BPTT
#
# `stateful=True` makes each call continue from the state the previous call left (here the
# recurrent layer's spikes and membrane, `layer.spk` / `layer.mem`), as snnTorch's
# `init_hidden=True` neurons do from step to step. `detach_hidden()` (or snnTorch's
# `snn.RLeaky.detach_hidden()`) between chunks cuts the graph: truncated BPTT.
# `reset_hidden()` / `snntorch.utils.reset(net)` start a new sequence. Below, the chunked run
# and snnTorch's per-step loop with the same truncation give the same spikes and gradients.

# %%
chunk = 25
for m in twin:
    if hasattr(m, "stateful"):
        m.stateful = True
        m.reset_hidden()
for p in list(ref.parameters()) + list(twin.parameters()):
    p.grad = None
utils.reset(ref)
same_spikes = True
for t0 in range(0, x.shape[0], chunk):
    xs = x[t0:t0 + chunk]
    mem_d = torch.stack([ref(xs[t])[1] for t in range(xs.shape[0])])
    mem_s = twin(xs)[1]
    same_spikes &= torch.allclose(mem_d, mem_s, atol=1e-5)
    mem_d.sum().backward()
    mem_s.sum().backward()
    snn.RLeaky.detach_hidden()  # snnTorch's call: detaches ref's hidden layer and twin's fused one
    snn.Leaky.detach_hidden()
print("same readout membranes, chunk by chunk:", bool(same_spikes))
err = ((twin[0].recurrent.weight.grad - ref[1].recurrent.weight.grad).abs().max()
       / ref[1].recurrent.weight.grad.abs().max()).item()
print(f"truncated-BPTT gradient of V, relative difference {err:.1e}")

# %% [markdown]
# ## `Synaptic`: the second-order neuron
#
# `sparsify` turns `nn.Linear + snn.Synaptic` into `SparseLinearSynaptic`: the synaptic
# current and the membrane are two compiled scans, and the backward runs the two adjoint
# scans over the active set.

# %%
dense_s = make_net("synaptic")
sparse_s = sps.sparsify(dense_s, spike_grad=sparse_fast_sigmoid(slope=100, bth=0.2))
acc_ds, time_ds, _ = train(dense_s, forward_dense, epochs)
acc_ss, time_ss, _ = train(sparse_s, forward_sparse, epochs)
print(f"snnTorch Synaptic: accuracy {100 * acc_ds:.1f}%  ({time_ds:.1f} s)")
print(f"sparse Synaptic:   accuracy {100 * acc_ss:.1f}%  ({time_ss:.1f} s), "
      f"active entries {100 * sparse_s[0].activity:.1f}%")
