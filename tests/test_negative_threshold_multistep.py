"""Issue 21, item 1: learnable negative thresholds in the multi-step layers.

snnTorch starts every neuron from ``U[-1] = 0`` and resets at the first step
when ``0 - θ > 0`` (a negative threshold). The forward scan copies that; the
backward must too: the reset term of ``∂L/∂θ`` (subtract) uses
``R[0] = H(0 - θ)``, per neuron. Checked against snnTorch's autograd and, on
the membrane (piecewise linear in θ, β, x), against finite differences, on
both backends and on the neuron-only and fused Linear+LIF paths.
"""
import pytest
import snntorch as snn
import torch

from snntorch_sparse import SparseLeaky, SparseLinearLeaky
from snntorch_sparse.surrogate import sparse_fast_sigmoid

from helpers import make_pair, rel_err, run_dense, run_sparse

BACKENDS = ["reference", "compiled"]


def _dense_leaky(beta, threshold, sg, reset):
    return snn.Leaky(beta=beta, threshold=threshold, spike_grad=sg, reset_mechanism=reset,
                     learn_beta=True, learn_threshold=True).double()


def _run_snntorch(lif, x):
    mem = lif.reset_mem()
    spks, mems = [], []
    for t in range(x.shape[0]):
        spk, mem = lif(x[t], mem)
        spks.append(spk)
        mems.append(mem)
    return torch.stack(spks), torch.stack(mems)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("threshold", [-0.2, "mixed"])
def test_neuron_multistep_matches_snntorch(backend, reset, threshold):
    torch.manual_seed(0)
    n = 6
    thr = torch.tensor([-0.2, 0.3, -0.05, 0.5, -0.4, 0.1], dtype=torch.float64) if threshold == "mixed" \
        else threshold
    sg = sparse_fast_sigmoid(slope=25, bth=0.5)
    x = torch.randn(20, 4, n, dtype=torch.float64) * 0.3
    dense = _dense_leaky(0.9, thr, sg, reset)
    sparse = SparseLeaky(beta=0.9, threshold=thr, spike_grad=sg, reset_mechanism=reset, learn_beta=True,
                         learn_threshold=True, step_mode="multi", backend=backend).double()
    w_spk, w_mem = torch.randn(20, 4, n, dtype=torch.float64), torch.randn(20, 4, n, dtype=torch.float64)
    spk_d, mem_d = _run_snntorch(dense, x)
    spk_s, mem_s = sparse(x)
    assert torch.equal(spk_d, spk_s)
    assert torch.allclose(mem_d, mem_s, rtol=0, atol=1e-12)
    if isinstance(thr, float):  # the reset at t = 0 is exercised
        assert (thr < 0) and bool(spk_d.any())
    ((spk_d * w_spk).sum() + (mem_d * w_mem).sum()).backward()
    ((spk_s * w_spk).sum() + (mem_s * w_mem).sum()).backward()
    assert rel_err(sparse.threshold.grad, dense.threshold.grad) < 1e-10
    assert rel_err(sparse.beta.grad, dense.beta.grad) < 1e-10


def test_issue_example_threshold_gradient():
    """The report's case: a scalar θ = -0.2, spikes summed."""
    torch.manual_seed(0)
    sg = sparse_fast_sigmoid(slope=25, bth=0.5)
    x = torch.randn(20, 4, 6, dtype=torch.float64) * 0.3
    for backend in BACKENDS:
        dense = snn.Leaky(beta=0.9, threshold=-0.2, learn_threshold=True, spike_grad=sg).double()
        sparse = SparseLeaky(beta=0.9, threshold=-0.2, learn_threshold=True, step_mode="multi",
                             spike_grad=sg, backend=backend).double()
        _run_snntorch(dense, x)[0].sum().backward()
        sparse(x)[0].sum().backward()
        assert rel_err(sparse.threshold.grad, dense.threshold.grad) < 1e-12, backend


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_fused_linear_matches_snntorch(backend, reset):
    torch.manual_seed(1)
    thr = torch.tensor([-0.3, 0.4, -0.1, 0.8, 0.2, -0.6, 1.0, -0.05], dtype=torch.float64)
    dense, sparse = make_pair([12, 8], beta=0.85, threshold=thr, bth=0.6, reset=reset,
                              learn_beta=True, learn_threshold=True, backend=backend)
    x = (torch.rand(15, 3, 12, dtype=torch.float64) < 0.3).to(torch.float64)
    (spk_d, mem_d), = run_dense(dense, x)
    (spk_s, mem_s), = run_sparse(sparse, x)
    assert torch.equal(spk_d, spk_s)
    w = torch.randn_like(mem_d)
    ((spk_d * w).sum() + mem_d.sum()).backward()
    ((spk_s * w).sum() + mem_s.sum()).backward()
    lif, layer = dense[0][1], sparse[0]
    assert rel_err(layer.threshold.grad, lif.threshold.grad) < 1e-10
    assert rel_err(layer.beta.grad, lif.beta.grad) < 1e-10
    assert rel_err(layer.fc.weight.grad, dense[0][0].weight.grad) < 1e-10


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("fused", [False, True])
def test_gradcheck_membrane(backend, reset, fused):
    """Finite differences on the membrane: exact where no spike flips (piecewise linear)."""
    torch.manual_seed(2)
    n = 5
    thr0 = torch.tensor([-0.25, 0.35, -0.1, 0.6, -0.5], dtype=torch.float64)
    if fused:
        layer = SparseLinearLeaky(7, n, beta=0.8, threshold=thr0, reset_mechanism=reset, learn_beta=True,
                                  learn_threshold=True, bth=0.5, output=True, backend=backend,
                                  dtype=torch.float64)
        x = (torch.rand(8, 2, 7, dtype=torch.float64) < 0.4).to(torch.float64)
    else:
        layer = SparseLeaky(beta=0.8, threshold=thr0, reset_mechanism=reset, learn_beta=True,
                            learn_threshold=True, bth=0.5, step_mode="multi", backend=backend).double()
        x = torch.randn(8, 2, n, dtype=torch.float64) * 0.4
    beta0 = torch.full((n,), 0.8, dtype=torch.float64)

    def mem_of(beta, thr):
        return torch.func.functional_call(layer, {"beta": beta, "threshold": thr}, (x,))[1]

    if layer.beta.numel() != n:  # per-neuron β for the check
        layer.beta = torch.nn.Parameter(beta0.clone())
    spk_ref = layer(x)[0].detach()
    assert bool(spk_ref.any())
    torch.autograd.gradcheck(mem_of, (beta0.clone().requires_grad_(), thr0.clone().requires_grad_()),
                             eps=1e-7, atol=1e-6, rtol=1e-5)
