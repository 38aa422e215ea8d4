"""Sparse layers vs snnTorch's own dense BPTT with the same clamped surrogate.

Backends: ``reference`` (pure PyTorch), ``compiled`` (on CPU: the fused CPU
kernels) and ``compiled-generic``: the compiled primitive ops through the
device-generic autograd function, i.e. the code path CUDA runs, on CPU.
"""
import contextlib
from unittest import mock

import pytest
import torch

import snntorch_sparse.functional as functional

from helpers import dense_params, make_pair, rel_err, run_dense, run_sparse, sparse_params

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def _compare(sizes, T, B, beta, threshold, bth, reset, loss, dtype, learn_beta=False,
             learn_threshold=False, density=0.3, backend=None, x_grad=True, seed=0, device="cpu",
             event_forward=None):
    """Forward and gradients of the sparse stack vs snnTorch's.

    ``event_forward=None`` tests the layers' default (on the fused CPU path the
    input current is then summed over input events: equal to rounding);
    ``False`` the GEMM forward, bit for bit where the BLAS allows.
    """
    generic = backend == "compiled-generic"
    with (mock.patch.object(functional, "_fused_usable", lambda *a, **k: False) if generic
          else contextlib.nullcontext()):
        return _compare_on(sizes, T, B, beta, threshold, bth, reset, loss, dtype, learn_beta, learn_threshold,
                           density, "compiled" if generic else backend, x_grad, seed, device, event_forward)


def _compare_on(sizes, T, B, beta, threshold, bth, reset, loss, dtype, learn_beta, learn_threshold, density,
                backend, x_grad, seed, device, event_forward):
    dense, sparse = make_pair(sizes, beta, threshold, bth, reset, dtype=dtype, learn_beta=learn_beta,
                              learn_threshold=learn_threshold, backend=backend, seed=seed, device=device,
                              event_forward=event_forward)
    g = torch.Generator().manual_seed(seed + 1)
    x = (torch.rand(T, B, sizes[0], generator=g) < density).to(dtype).to(device)
    xd = x.clone().requires_grad_(x_grad)
    xs = x.clone().requires_grad_(x_grad)
    rd, rs = run_dense(dense, xd), run_sparse(sparse, xs)
    bitwise = event_forward is False and _blas_row_invariant(dense[0][0], x)
    for k, ((sd, md), (ss_, ms)) in enumerate(zip(rd, rs)):
        flipped = int((sd != ss_).sum())
        assert flipped == 0, f"layer {k}: {flipped} spikes differ; max |ΔU| {float((md - ms).abs().max()):.3g}"
        if bitwise:
            # The GEMM over all T·B rows rounds like the per-step GEMMs here, and
            # the scan adds no rounding of its own: bit for bit.
            assert torch.equal(md, ms), f"layer {k}: max |ΔU| {float((md - ms).abs().max()):.3g}"
        else:  # event sums, or a BLAS that splits rows differently (multi-threaded MKL, cuBLAS): rounding
            tol = 1e-13 if dtype == torch.float64 else 1e-5
            torch.testing.assert_close(ms, md, rtol=tol, atol=tol)
    w = torch.randn(rd[-1][0].shape, generator=g, dtype=dtype).to(device)
    if loss == "spk":
        ld, ls = (rd[-1][0] * w).sum(), (rs[-1][0] * w).sum()
    elif loss == "mem":
        ld, ls = (rd[-1][1] * w).sum(), (rs[-1][1] * w).sum()
    else:  # both, and hidden spikes (a spike-count regulariser)
        ld = (rd[-1][1] * w).sum() + (rd[-1][0] * w).sum() + sum(s.sum() for s, _ in rd[:-1]) * 0.1
        ls = (rs[-1][1] * w).sum() + (rs[-1][0] * w).sum() + sum(s.sum() for s, _ in rs[:-1]) * 0.1
    pd, ps = dense_params(dense), sparse_params(sparse)
    if x_grad:
        pd, ps = pd + [xd], ps + [xs]
    gd = torch.autograd.grad(ld, pd, allow_unused=True)
    gs = torch.autograd.grad(ls, ps, allow_unused=True)
    # cuBLAS rounds the T·B-row GEMM differently from per-step GEMMs (~1 ulp in U),
    # which float32 gradients then carry: allow a few ulp more there.
    tol = TOL[dtype] * (5 if device != "cpu" and dtype == torch.float32 else 1)
    for a, b in zip(gs, gd):
        b = torch.zeros_like(a) if b is None else b.reshape(a.shape).to(a.dtype)
        assert a is not None
        assert rel_err(a, b) < tol, (rel_err(a, b), a.shape)
    return sparse


BACKENDS = ["reference", "compiled", "compiled-generic"]


def _blas_row_invariant(fc, x) -> bool:
    """Does one GEMM over all T·B rows give bit-identical rows to per-step GEMMs here?"""
    with torch.no_grad():
        fused = fc(x.reshape(-1, x.shape[-1])).view(x.shape[0], x.shape[1], -1)
        return torch.equal(fused, torch.stack([fc(x[t]) for t in range(x.shape[0])]))


def test_float32_forward_bitwise_where_blas_allows():
    """On this machine's BLAS the GEMM forward (event_forward=False) equals snnTorch's bit for bit."""
    dense, sparse = make_pair([64, 48], 0.875, 1.0, bth=0.4, dtype=torch.float32)
    for layer in sparse:
        layer.event_forward = False
    x = (torch.rand(30, 8, 64) < 0.2).float()
    if not _blas_row_invariant(dense[0][0], x):
        pytest.skip("this BLAS rounds a T·B-row GEMM differently from per-step GEMMs")
    (sd, md), = run_dense(dense, x)
    (ss_, ms), = run_sparse(sparse, x)
    assert torch.equal(sd, ss_) and torch.equal(md, ms)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("sizes", [[20, 16], [24, 18, 12], [30, 20, 20, 10]])
@pytest.mark.parametrize("loss", ["spk", "mem", "mixed"])
@pytest.mark.parametrize("event_forward", [None, False])
def test_stack_parity(dtype, sizes, loss, backend, event_forward):
    _compare(sizes, T=25, B=4, beta=0.875, threshold=1.0, bth=0.4, reset="subtract", loss=loss,
             dtype=dtype, backend=backend, event_forward=event_forward)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("beta,threshold,bth", [(0.5, 1.0, 0.2), (0.9375, 0.5, 0.3),
                                                  (1.0, 2.0, 1.0), (0.0, 1.0, 0.5)])
def test_neuron_settings(reset, beta, threshold, bth, backend):
    _compare([16, 12, 8], T=20, B=3, beta=beta, threshold=threshold, bth=bth, reset=reset,
             loss="mixed", dtype=torch.float64, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_paper_sized_float32(backend):
    """Paper-sized widths at low input density, float32."""
    _compare([700, 200, 200, 20], T=40, B=8, beta=0.9, threshold=1.0, bth=0.2, reset="subtract",
             loss="mixed", dtype=torch.float32, backend=backend, density=0.02)


@pytest.mark.parametrize("T,B", [(1, 1), (1, 6), (40, 1), (3, 2)])
def test_shapes_edge(T, B):
    _compare([10, 7, 5], T=T, B=B, beta=0.75, threshold=1.0, bth=0.5, reset="subtract",
             loss="mixed", dtype=torch.float64)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("learn", [(True, False), (False, True), (True, True)])
def test_learnable_beta_threshold(reset, learn, backend):
    _compare([12, 10, 6], T=15, B=3, beta=0.875, threshold=1.0, bth=0.5, reset=reset,
             loss="mixed", dtype=torch.float64, learn_beta=learn[0], learn_threshold=learn[1],
             backend=backend)


def test_full_activity_exact():
    sparse = _compare([12, 9, 6], T=10, B=2, beta=0.875, threshold=1.0, bth=1e9, reset="subtract",
                      loss="mixed", dtype=torch.float64, event_forward=False)
    assert all(layer.activity == 1.0 for layer in sparse)


def test_zero_activity_gives_zero_gradients():
    dense, sparse = make_pair([10, 8, 6], 0.875, 1.0, bth=1e-12, dtype=torch.float64)
    x = (torch.rand(10, 3, 10) < 0.3).double().requires_grad_()
    out = run_sparse(sparse, x)
    loss = out[-1][0].sum()
    grads = torch.autograd.grad(loss, sparse_params(sparse) + [x], allow_unused=True)
    assert all(layer.activity == 0.0 for layer in sparse)
    assert all(g is not None and torch.count_nonzero(g) == 0 for g in grads)


def test_input_not_requiring_grad():
    _compare([14, 9], T=12, B=3, beta=0.875, threshold=1.0, bth=0.4, reset="subtract",
             loss="spk", dtype=torch.float64, x_grad=False)


def test_graded_input():
    """Non-binary input works as a graded current (values are kept for dW)."""
    dense, sparse = make_pair([10, 8], 0.875, 1.0, bth=0.5)
    x = torch.rand(9, 3, 10, dtype=torch.float64) * (torch.rand(9, 3, 10) < 0.2)
    (sd, md), = run_dense(dense, x)
    (ss_, ms), = run_sparse(sparse, x)
    torch.testing.assert_close(ms, md, rtol=1e-13, atol=1e-13)
    gd = torch.autograd.grad((md ** 2).sum() + sd.sum(), dense_params(dense))
    gs = torch.autograd.grad((ms ** 2).sum() + ss_.sum(), sparse_params(sparse))
    for a, b in zip(gs, gd):
        assert rel_err(a, b) < 1e-10


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_event_forward_matches_dense_gemm(dtype):
    """The event-driven forward equals the GEMM forward to rounding; gradients follow."""
    dense, sparse = make_pair([40, 30, 10], 0.875, 1.0, bth=0.4, dtype=dtype)
    _, sparse_ev = make_pair([40, 30, 10], 0.875, 1.0, bth=0.4, dtype=dtype)
    for layer in sparse_ev:
        layer.event_forward = True
    x = (torch.rand(20, 4, 40) < 0.1).to(dtype)
    ra, rb = run_sparse(sparse, x), run_sparse(sparse_ev, x)
    for (sa, ma), (sb, mb) in zip(ra, rb):
        assert torch.equal(sa, sb)
        torch.testing.assert_close(mb, ma)
    ga = torch.autograd.grad(ra[-1][1].sum(), sparse_params(sparse))
    gb = torch.autograd.grad(rb[-1][1].sum(), sparse_params(sparse_ev))
    for a, b in zip(gb, ga):
        assert rel_err(a, b) < TOL[dtype] * 10
