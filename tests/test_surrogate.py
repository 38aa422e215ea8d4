import math

import pytest
import snntorch as snn
import snntorch.surrogate as snn_sg
import torch

import snntorch_sparse  # noqa: F401  (registers into snntorch)
from snntorch_sparse.surrogate import sparse_atan, sparse_fast_sigmoid, sparse_sigmoid, sparsify_surrogate


def _grad(fn, x):
    x = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(fn(x).sum(), x)
    return g


@pytest.mark.parametrize("sparse,dense", [
    (sparse_fast_sigmoid(slope=25, bth=0.3), snn_sg.fast_sigmoid(slope=25)),
    (sparse_atan(alpha=2.0, bth=0.3), snn_sg.atan(alpha=2.0)),
    (sparse_sigmoid(slope=25, bth=0.3), snn_sg.sigmoid(slope=25)),
    (sparsify_surrogate(snn_sg.triangular(), bth=0.3), snn_sg.triangular()),
])
def test_window_matches_snntorch_inside_zero_outside(sparse, dense):
    x = torch.linspace(-1, 1, 401, dtype=torch.float64)
    assert torch.equal(sparse(x), dense(x))  # same Heaviside forward
    gs, gd = _grad(sparse, x), _grad(dense, x)
    inside = x.abs() < 0.3
    torch.testing.assert_close(gs[inside], gd[inside], rtol=1e-12, atol=1e-15)
    assert torch.count_nonzero(gs[~inside]) == 0


def test_registered_in_snntorch_namespaces():
    assert snn.surrogate.sparse_fast_sigmoid is sparse_fast_sigmoid
    assert snn.SparseLeaky is snntorch_sparse.SparseLeaky
    assert snn.SparseLinearLeaky is snntorch_sparse.SparseLinearLeaky
    # nothing of snnTorch's own is replaced
    assert snn.Leaky.__module__.startswith("snntorch._neurons")
    assert snn_sg.fast_sigmoid.__module__ == "snntorch.surrogate"


def test_plugs_into_any_snntorch_neuron():
    lif = snn.Synaptic(alpha=0.8, beta=0.9, spike_grad=sparse_fast_sigmoid(bth=0.2))
    syn, mem = lif.reset_mem()
    x = torch.randn(4, 5, requires_grad=True)
    spk, syn, mem = lif(x, syn, mem)
    spk.sum().backward()
    assert x.grad is not None


@pytest.mark.parametrize("bad", [0, -0.1, math.inf, math.nan])
def test_bad_bth(bad):
    with pytest.raises(ValueError, match="bth"):
        sparse_fast_sigmoid(bth=bad)


def test_bad_slope():
    with pytest.raises(ValueError, match="slope"):
        sparse_fast_sigmoid(slope=-1)
    with pytest.raises(TypeError, match="spike_grad"):
        sparsify_surrogate(3.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("make", [lambda: sparse_atan(), lambda: sparse_atan(alpha=3.7),
                                  lambda: sparse_fast_sigmoid(), lambda: sparse_fast_sigmoid(slope=7.3),
                                  lambda: sparse_sigmoid(), lambda: sparsify_surrogate(snn_sg.triangular())])
def test_in_place_derivative_is_the_derivative_bit_for_bit(make, dtype):
    """derivative_ (the fused layers' σ' pass, written over U - θ) gives derivative's bits."""
    sg = make()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4096, generator=g, dtype=dtype) * 3
    x[:6] = torch.tensor([0.0, -0.0, 1e-30, -1e30, 5.0, -0.25], dtype=dtype)
    want = sg.derivative(x)
    y = x.clone()
    got = sg.derivative_(y)
    assert got.data_ptr() == y.data_ptr() and torch.equal(got, want)
