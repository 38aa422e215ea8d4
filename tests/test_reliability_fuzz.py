"""Fuzzing with hypothesis: sparse layers (default backend) vs snnTorch's dense loop."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import dense_params, make_pair, rel_err, run_dense, run_sparse, sparse_params

LAYOUTS = ("contiguous", "transposed", "strided", "expanded")


def _with_layout(x, layout):
    """A leaf tensor and a view of it holding ``x``'s values in ``layout``."""
    T, B, n = x.shape
    if layout == "transposed":
        base = x.transpose(0, 1).contiguous().requires_grad_(True)
        return base, base.transpose(0, 1)
    if layout == "strided":
        wide = torch.zeros(T, B, 2 * n, dtype=x.dtype)
        wide[:, :, ::2] = x
        wide.requires_grad_(True)
        return wide, wide[:, :, ::2]
    if layout == "expanded":
        base = x[:, :1].clone().requires_grad_(True)
        return base, base.expand(T, B, n)
    base = x.clone().requires_grad_(True)
    return base, base


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(T=st.integers(1, 12), B=st.integers(1, 4), sizes=st.lists(st.integers(1, 9), min_size=2, max_size=4),
       density=st.sampled_from([0.0, 0.02, 0.2, 0.6, 1.0]), layout=st.sampled_from(LAYOUTS),
       beta=st.sampled_from([0.0, 0.5, 0.875, 1.0]), threshold=st.sampled_from([0.25, 1.0, 2.0]),
       bth=st.sampled_from([0.05, 0.4, 5.0]), reset=st.sampled_from(["subtract", "zero", "none"]),
       gain=st.sampled_from([1.0, 3.0, 8.0]), seed=st.integers(0, 2**16), graded=st.booleans())
def test_fuzz_sparse_vs_dense(T, B, sizes, density, layout, beta, threshold, bth, reset, gain, seed,
                              graded):
    dtype = torch.float64
    dense, sparse = make_pair(sizes, beta, threshold, bth, reset, dtype=dtype, seed=seed, gain=gain)
    g = torch.Generator().manual_seed(seed + 1)
    x = (torch.rand(T, B, sizes[0], generator=g) < density).to(dtype)
    if graded:
        x = x * torch.randn(T, B, sizes[0], generator=g, dtype=dtype)
    if layout == "expanded":
        x = x[:, :1].expand(T, B, sizes[0]).contiguous()
    xd = x.clone().requires_grad_(True)
    base, xs = _with_layout(x, layout)
    rd, rs = run_dense(dense, xd), run_sparse(sparse, xs)
    for (sd, md), (ss, ms) in zip(rd, rs):
        assert torch.equal(sd, ss)
        torch.testing.assert_close(ms, md, rtol=1e-12, atol=1e-12)
    w = torch.randn(rd[-1][0].shape, generator=g, dtype=dtype)
    ld = (rd[-1][0] * w).sum() + (rd[-1][1] * w).sum() + 0.1 * sum(s.sum() for s, _ in rd[:-1])
    ls = (rs[-1][0] * w).sum() + (rs[-1][1] * w).sum() + 0.1 * sum(s.sum() for s, _ in rs[:-1])
    gd = torch.autograd.grad(ld, dense_params(dense) + [xd], allow_unused=True)
    gs = torch.autograd.grad(ls, sparse_params(sparse) + [base], allow_unused=True)
    for a, b in zip(gs[:-1], gd[:-1]):
        b = torch.zeros_like(a) if b is None else b
        assert rel_err(a, b) < 1e-10
    gx = gd[-1]
    if layout == "transposed":
        gx = gx.transpose(0, 1)
    elif layout == "strided":
        full = torch.zeros_like(base)
        full[:, :, ::2] = gx
        gx = full
    elif layout == "expanded":
        gx = gx.sum(1, keepdim=True)
    assert rel_err(gs[-1], gx) < 1e-10
