"""The per-step LeakyStep's compiled CPU kernels (csrc/cpu/leaky_step.cpp) against its PyTorch path and
against a dense reference of the documented gradient rule (issue 20: own-forward models never slower)."""
from __future__ import annotations


import pytest
import snntorch as snn
import torch
from snntorch import surrogate

import snntorch_sparse as sps
from snntorch_sparse import _step_kernels
from snntorch_sparse.step import leaky_step
from snntorch_sparse.surrogate import (STEP_WINDOW_ROWS, mass_gain, quantile_window, sparse_atan,
                                       sparse_fast_sigmoid, sparse_sigmoid, sparsify_surrogate)

pytestmark = pytest.mark.skipif(not _step_kernels.usable("auto", torch.zeros(1, 1)),
                                reason="the compiled backend is not available")

SURROGATES = {
    "atan": lambda bth=None: sparse_atan(bth=bth),
    "atan3": lambda bth=None: sparse_atan(alpha=3.3, bth=bth),
    "fast_sigmoid": lambda bth=None: sparse_fast_sigmoid(bth=bth),
    "sigmoid": lambda bth=None: sparse_sigmoid(bth=bth),           # sigma' handed over from PyTorch
    "triangular": lambda bth=None: sparsify_surrogate(surrogate.triangular(), bth=bth),
}


def _run(backend, make_sg, x, beta, thr, mode, seed=0, learn=False):
    """A per-step loop of leaky_step; returns spikes, membranes, grads and each backward's (window, gain, active)."""
    torch.manual_seed(seed)
    sg = make_sg()
    xi = x.clone().requires_grad_(True)
    b = beta.clone().requires_grad_(learn)
    th = thr.clone().requires_grad_(learn)
    rules = []
    record = sg.record

    def spy(active, total, window):
        record(active, total, window)
        rules.append((window, active))
    sg.record = spy
    mem = torch.zeros_like(x[0])
    spk_all, mem_all = [], []
    for t in range(x.shape[0]):
        spk, mem = leaky_step(xi[t], mem, b, th, sg, mode, backend)
        spk_all.append(spk)
        mem_all.append(mem)
    spk_all, mem_all = torch.stack(spk_all), torch.stack(mem_all)
    w = torch.randn(spk_all.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(seed + 1))
    ((spk_all * w).sum() + 0.3 * (mem_all ** 2).sum()).backward()
    grads = [xi.grad] + ([b.grad, th.grad] if learn else [])
    return spk_all, mem_all, grads, rules[::-1]


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("per_neuron", [False, True])
def test_fixed_window_kernels_are_the_pytorch_path_bit_for_bit(dtype, mode, per_neuron):
    torch.manual_seed(1)
    n = 33
    beta = torch.rand(n, dtype=dtype) if per_neuron else torch.tensor(0.875, dtype=dtype)
    thr = torch.linspace(-0.2, 1.2, n, dtype=dtype) if per_neuron else torch.tensor(1.0, dtype=dtype)
    x = torch.randn(9, 70, n, dtype=dtype) * 0.8 + 0.3
    for name in ("atan", "fast_sigmoid", "sigmoid"):
        ref = _run("reference", lambda: SURROGATES[name](0.4), x, beta, thr, mode)
        got = _run("auto", lambda: SURROGATES[name](0.4), x, beta, thr, mode)
        assert torch.equal(ref[0], got[0]) and torch.equal(ref[1], got[1])
        assert torch.equal(ref[2][0], got[2][0]), (name, _rel(got[2][0], ref[2][0]))
        assert [r[1] for r in ref[3]] == [r[1] for r in got[3]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rows", [1, 7, STEP_WINDOW_ROWS, 128, 201])
def test_adaptive_kernel_window_is_exact_and_gradient_equal_to_rounding(dtype, rows):
    torch.manual_seed(2)
    x = torch.randn(6, rows, 29, dtype=dtype) * 0.5 + 0.2
    beta, thr = torch.tensor(0.9, dtype=dtype), torch.tensor(1.0, dtype=dtype)
    for name, make in SURROGATES.items():
        ref = _run("reference", make, x, beta, thr, 0)
        got = _run("auto", make, x, beta, thr, 0)
        assert torch.equal(ref[1], got[1])
        for (w_ref, a_ref), (w_got, a_got) in zip(ref[3], got[3]):
            assert torch.equal(w_ref, w_got) and a_ref == a_got, name    # the window: a selection, exact
        tol = 1e-5 if dtype == torch.float32 else 1e-12                  # the gain's sums: row order
        assert _rel(got[2][0], ref[2][0]) < tol, name


def test_adaptive_per_step_gradient_is_the_documented_rule_in_float64():
    """Each step's gradient is c_n σ'(U - θ) 1[|U - θ| < B_n] with B_n, c_n from the step's strided rows:
    a dense snnTorch loop given, per step, a fixed surrogate with that step's window and gain agrees."""
    torch.manual_seed(3)
    T, B, N = 7, 150, 23
    x = (torch.randn(T, B, N, dtype=torch.float64) * 0.6 + 0.25)
    neuron = sps.SparseLeaky(beta=0.85)
    neuron.double()
    seen = []
    grad_fn = _step_kernels.windowed_grad

    def spy(sg, new, d_spk, d_mem, threshold=None):
        g = grad_fn(sg, new, d_spk, d_mem, threshold)
        shift = new if threshold is None else new - threshold
        seen.append((shift.detach().clone(), sg.last_window.clone(), sg.last_gain.clone()))
        return g
    _step_kernels.windowed_grad = spy
    try:
        xi = x.clone().requires_grad_(True)
        mem, total = neuron.init_leaky(), 0
        for t in range(T):
            spk, mem = neuron(xi[t], mem)
            total = total + (spk * torch.arange(N)).sum() + 0.2 * (mem ** 2).sum()
        total.backward()
    finally:
        _step_kernels.windowed_grad = grad_fn
    seen = seen[::-1]                               # the backward runs from the last step to the first
    assert len(seen) == T
    stride = -(-B // STEP_WINDOW_ROWS)
    for shift, window, gain in seen:
        sample = shift[::stride]
        assert torch.equal(window, quantile_window(sample, neuron.surrogate.active_fraction))
        assert torch.allclose(gain, mass_gain(neuron.surrogate, sample, window), rtol=1e-13, atol=0)
    # the dense twin: snnTorch's Leaky, its surrogate swapped per step for the frozen rule of that step
    dense = snn.Leaky(beta=0.85)
    rules = [neuron.surrogate.with_window(w, gain=c) for _, w, c in seen]
    xd = x.clone().requires_grad_(True)
    mem, total = dense.init_leaky(), 0
    for t in range(T):
        dense.spike_grad = rules[t]
        spk, mem = dense(xd[t], mem)
        total = total + (spk * torch.arange(N)).sum() + 0.2 * (mem ** 2).sum()
    total.backward()
    assert _rel(xi.grad, xd.grad) < 1e-12


def test_learnable_beta_threshold_and_conv_shapes_keep_snntorch_parity():
    torch.manual_seed(4)
    for mode in ("subtract", "zero", "none"):
        kw = dict(beta=torch.full((3, 4, 4), 0.875), threshold=torch.rand(3, 4, 4) + 0.5, learn_beta=True,
                  learn_threshold=True, reset_mechanism=mode)
        dense = snn.Leaky(spike_grad=sparse_atan(bth=0.6), **kw)
        sparse = sps.SparseLeaky(spike_grad=sparse_atan(bth=0.6), **kw)
        x = torch.randn(6, 5, 3, 4, 4) * 0.8 + 0.3
        out = []
        for net in (dense, sparse):
            xi = x.clone().requires_grad_(True)
            mem, total, mems = net.init_leaky(), 0, []
            for t in range(6):
                spk, mem = net(xi[t], mem)
                mems.append(mem)
                total = total + spk.sum() + 0.3 * (mem ** 2).sum()
            total.backward()
            out.append([torch.stack(mems), xi.grad, net.beta.grad, net.threshold.grad])
        assert torch.equal(out[0][0], out[1][0])
        for a, b in zip(out[0][1:], out[1][1:]):
            assert _rel(b, a) < 1e-5, mode


def test_the_kernels_are_skipped_where_they_do_not_apply():
    assert not _step_kernels.usable("reference", torch.zeros(2, 2))
    assert not _step_kernels.usable("auto", torch.zeros(2, 2, dtype=torch.float16))
    assert not _step_kernels.usable("auto", torch.zeros(()))
    x = torch.zeros(4, 6)
    assert _step_kernels.forward(x, x, torch.ones(3), torch.ones(()), 0, False) is None   # not per feature
    assert _step_kernels.windowed_grad(sparse_atan(), x, x, None, torch.ones(3)) is None
    assert _step_kernels.forward(x, x, torch.ones((), dtype=torch.float64), torch.ones(()), 0, False) is None
    assert _step_kernels.forward(x, x, torch.ones(1, 6), torch.ones(6), 0, False) is not None
    sg = sparse_atan(bth=0.3).with_window(0.3, gain=torch.full((6,), 2.0))        # a frozen copy: PyTorch path
    assert _step_kernels.windowed_grad(sg, x, x, None) is None
