"""Shared test helpers: snnTorch dense reference networks and their sparse twins."""
from __future__ import annotations

import snntorch as snn
import torch
from torch import nn

from snntorch_sparse import SparseLinearLeaky
from snntorch_sparse.surrogate import sparse_fast_sigmoid


def make_pair(sizes, beta, threshold, bth, reset="subtract", slope=25.0, dtype=torch.float64,
              learn_beta=False, learn_threshold=False, backend=None, seed=0, gain=3.0, device="cpu",
              event_forward=None):
    """A stack of Linear+Leaky layers, as snnTorch dense modules and as fused sparse layers.

    Weights are identical; ``gain`` scales them so that neurons do spike.
    ``event_forward`` is the fused layers' (``None``: their default, auto).
    """
    torch.manual_seed(seed)
    sg = sparse_fast_sigmoid(slope=slope, bth=bth)
    dense, sparse = [], []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        fc = nn.Linear(n_in, n_out, dtype=dtype)
        with torch.no_grad():
            fc.weight.mul_(gain)
        lif = snn.Leaky(beta=beta, threshold=threshold, spike_grad=sg, reset_mechanism=reset,
                        learn_beta=learn_beta, learn_threshold=learn_threshold)
        lif = lif.to(dtype)
        layer = SparseLinearLeaky(n_in, n_out, beta=beta, threshold=threshold, spike_grad=sg,
                                  reset_mechanism=reset, learn_beta=learn_beta,
                                  learn_threshold=learn_threshold, output=True, backend=backend,
                                  event_forward=event_forward, dtype=dtype)
        with torch.no_grad():
            layer.fc.weight.copy_(fc.weight)
            layer.fc.bias.copy_(fc.bias)
            layer.beta.copy_(lif.beta.to(dtype))
            layer.threshold.copy_(lif.threshold.to(dtype))
        dense.append((fc.to(device), lif.to(device)))
        sparse.append(layer.to(device))
    return dense, sparse


def run_dense(dense, x):
    """snnTorch's usual step-by-step loop; returns per-layer (spk, mem) recordings."""
    mems = [lif.reset_mem() for _, lif in dense]
    recs = [([], []) for _ in dense]
    for t in range(x.shape[0]):
        inp = x[t]
        for k, (fc, lif) in enumerate(dense):
            spk, mems[k] = lif(fc(inp), mems[k])
            recs[k][0].append(spk)
            recs[k][1].append(mems[k])
            inp = spk
    return [(torch.stack(s), torch.stack(m)) for s, m in recs]


def run_sparse(sparse, x):
    out = []
    inp = x
    for layer in sparse:
        spk, mem = layer(inp)
        out.append((spk, mem))
        inp = spk
    return out


def dense_params(dense):
    ps = []
    for fc, lif in dense:
        ps += [fc.weight, fc.bias]
        if isinstance(lif.beta, nn.Parameter):
            ps.append(lif.beta)
        if isinstance(lif.threshold, nn.Parameter):
            ps.append(lif.threshold)
    return ps


def sparse_params(sparse):
    ps = []
    for layer in sparse:
        ps += [layer.fc.weight, layer.fc.bias]
        if isinstance(layer.beta, nn.Parameter):
            ps.append(layer.beta)
        if isinstance(layer.threshold, nn.Parameter):
            ps.append(layer.threshold)
    return ps


def rel_err(a, b):
    scale = b.abs().max().clamp_min(1e-30)
    return ((a - b).abs().max() / scale).item()
