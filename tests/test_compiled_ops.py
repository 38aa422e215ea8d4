"""Compiled backend (C++ CPU / CUDA kernels) against the pure-PyTorch reference.

* ``lif_scan`` and ``lif_scan_backward``: bit-identical (``torch.equal``).
* ``sparse_weight_grad`` / ``sparse_input_grad``: equal to rounding (the sums
  run in another order), ~1e-12 in float64 and ~1e-5 in float32, relative to
  the largest magnitude of the result.
* ``torch.library.opcheck`` on every op (schema, fake tensors, AOT dispatch).
* A small hypothesis fuzz with random shapes, densities and non-contiguous
  inputs.

The CUDA twins are marked ``cuda`` and skipped without a GPU. The module is
skipped when no C++ compiler is installed (the backend then falls back to the
reference); when one is, a failing build fails the tests.
"""
from __future__ import annotations

import os
import shutil

import pytest
import torch

from snntorch_sparse.ops import reference as ref

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

from snntorch_sparse.ops import compiled  # noqa: E402

_HAVE_CXX = any(shutil.which(c) for c in (os.environ.get("CXX", "c++"), "c++", "g++", "clang++"))
pytestmark = pytest.mark.skipif(not _HAVE_CXX, reason="no C++ compiler: compiled backend unavailable")

CUDA = pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs an NVIDIA GPU")])
DEVICES = ["cpu", CUDA]
DTYPES = [torch.float32, torch.float64]
MODES = [0, 1, 2]
SCAN_SHAPES = [(1, 1, 1), (1, 4, 7), (13, 1, 5), (20, 3, 17), (64, 5, 300), (7, 0, 3)]


@pytest.fixture(scope="module", autouse=True)
def _built():
    # strict: a compile error must fail the suite, not silently skip it.
    assert compiled.available(strict=True)


def ops():
    return torch.ops.snntorch_sparse


def _tol(dtype):
    return 1e-12 if dtype == torch.float64 else 1e-5


def assert_close_rel(actual, expected, dtype):
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    if expected.numel() == 0:
        return
    scale = max(1.0, expected.abs().max().item())
    err = (actual - expected).abs().max().item()
    assert err <= _tol(dtype) * scale, f"max abs error {err:.3e} (scale {scale:.3e})"


def scan_inputs(shape, dtype, device, seed=0, gain=1.5):
    g = torch.Generator().manual_seed(seed)
    T, B, N = shape
    cur = (torch.randn(T, B, N, generator=g, dtype=torch.float64) * gain + 0.3).to(dtype)
    beta = torch.rand(N, generator=g, dtype=torch.float64).to(dtype)
    if N >= 3:  # the clamp's end points
        beta[0], beta[1] = 0.0, 1.0
    thr = (torch.rand(N, generator=g, dtype=torch.float64) + 0.1).to(dtype)
    return cur.to(device), beta.to(device), thr.to(device)


def sparse_inputs(R, n_out, n_in, density, dtype, device, seed=0, values=False):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(R, n_out, generator=g, dtype=torch.float64).to(dtype)
    mask = torch.rand(R * n_in, generator=g) < density
    idx = mask.nonzero().squeeze(1)
    vals = (torch.rand(idx.numel(), generator=g, dtype=torch.float64) * 2).to(dtype) if values else None
    w = torch.randn(n_out, n_in, generator=g, dtype=torch.float64).to(dtype)
    mv = (lambda t: None if t is None else t.to(device))
    return h.to(device), idx.to(device), mv(vals), w.to(device)


def dense_weight_grad(h, idx, vals, n_in):
    x = torch.zeros(h.shape[0] * n_in, dtype=torch.float64, device=h.device)
    v = torch.ones(idx.numel(), dtype=torch.float64, device=h.device) if vals is None else vals.double()
    x.index_add_(0, idx, v)
    return (h.double().t() @ x.view(h.shape[0], n_in)).to(h.dtype)


# ---------------------------------------------------------------------------
# lif_scan / lif_scan_backward: bit-identical
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SCAN_SHAPES)
def test_lif_scan_bit_identical(shape, mode, dtype, device):
    cur, beta, thr = scan_inputs(shape, dtype, device, seed=sum(shape) + mode)
    spk, mem = compiled.lif_scan(cur, beta, thr, mode)
    spk_r, mem_r = ref.lif_scan(cur, beta, thr, mode)
    assert spk.dtype == dtype and mem.dtype == dtype and spk.shape == cur.shape
    assert torch.equal(mem, mem_r)
    assert torch.equal(spk, spk_r)
    if cur.numel() and mode != 2 and shape[0] > 10:
        assert spk.any(), "test inputs should make neurons spike"
    # in place: the membrane over the current, the same bits; the spikes are U - θ > 0
    for backend in (compiled, ref):
        buf = cur.clone()
        out = backend.lif_scan_(buf, beta, thr, mode)
        assert out.data_ptr() == buf.data_ptr() and torch.equal(buf, mem_r)
        assert torch.equal((buf - thr).gt_(0), spk_r)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SCAN_SHAPES)
@pytest.mark.parametrize("spk_dtype", ["same", torch.bool, torch.uint8])
def test_lif_scan_backward_bit_identical(shape, mode, dtype, device, spk_dtype):
    cur, beta, thr = scan_inputs(shape, dtype, device, seed=3 + sum(shape))
    spk, _ = ref.lif_scan(cur, beta, thr, 0)
    spk = spk if spk_dtype == "same" else spk.to(spk_dtype)
    grad = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).to(dtype)
    grad = grad.to(device)
    expected = ref.lif_scan_backward(grad, beta, spk, mode)
    assert torch.equal(compiled.lif_scan_backward(grad, beta, spk, mode), expected)
    # The raw op too (the wrapper drops spk when it is not needed).
    assert torch.equal(ops().lif_scan_backward(grad, beta, spk, mode), expected)
    for backend in (compiled, ref):  # in place: h over the gradient, the same bits
        buf = grad.clone()
        out = backend.lif_scan_backward_(buf, beta, spk, mode)
        assert out.data_ptr() == buf.data_ptr() and torch.equal(buf, expected)
    if mode != 1:
        assert torch.equal(compiled.lif_scan_backward(grad, beta, None, mode), expected)


@pytest.mark.parametrize("device", DEVICES)
def test_lif_scan_special_values(device):
    """inf / nan / signed zeros propagate exactly like the reference."""
    dtype = torch.float32
    cur = torch.tensor([[[0.0, -0.0, float("inf"), float("nan"), 2.0, -1e-45]]], dtype=dtype)
    cur = cur.repeat(4, 2, 1).to(device)
    beta = torch.tensor([0.5, 1.0, 0.0, 0.9, 0.25, 1.0], dtype=dtype, device=device)
    for thr_v in (1.0, float("inf"), -0.5):
        thr = torch.full((6,), thr_v, dtype=dtype, device=device)
        for mode in MODES:
            a = compiled.lif_scan(cur, beta, thr, mode)
            b = ref.lif_scan(cur, beta, thr, mode)
            for x, y in zip(a, b):
                assert torch.equal(x.isnan(), y.isnan())
                assert torch.equal(torch.nan_to_num(x), torch.nan_to_num(y))
                ok = ~y.isnan()  # (a NaN's sign bit carries no meaning)
                assert torch.equal(torch.signbit(x[ok]), torch.signbit(y[ok]))


@pytest.mark.parametrize("device", DEVICES)
def test_scans_zero_steps(device):
    # (The reference cannot index current[0] when T == 0.)
    cur, beta, thr = scan_inputs((0, 2, 3), torch.float32, device)
    for mode in MODES:
        spk, mem = compiled.lif_scan(cur, beta, thr, mode)
        assert spk.shape == mem.shape == (0, 2, 3)
        assert compiled.lif_scan_backward(cur, beta, spk, mode).shape == (0, 2, 3)


def test_lif_scan_non_contiguous_cpu():
    cur, beta, thr = scan_inputs((9, 6, 10), torch.float64, "cpu")
    cur_nc = cur.transpose(0, 1).contiguous().transpose(0, 1)  # same values, permuted strides
    assert not cur_nc.is_contiguous()
    beta_nc = torch.stack([beta, beta], 1)[:, 0]
    assert not beta_nc.is_contiguous()
    for mode in MODES:
        a = compiled.lif_scan(cur_nc, beta_nc, thr, mode)
        b = ref.lif_scan(cur, beta, thr, mode)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


# ---------------------------------------------------------------------------
# sparse_weight_grad / sparse_input_grad: equal to rounding
# ---------------------------------------------------------------------------

SPARSE_CASES = [  # R, N_out, N_in, density
    (1, 1, 1, 1.0), (1, 5, 7, 0.5), (12, 3, 40, 0.1), (200, 33, 70, 0.02), (64, 130, 9, 0.3),
    (50, 20, 30, 0.0), (6, 0, 5, 0.5), (6, 4, 0, 0.5),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("values", [False, True])
@pytest.mark.parametrize("case", SPARSE_CASES)
def test_sparse_weight_grad(case, values, dtype, device):
    R, n_out, n_in, density = case
    h, idx, vals, _ = sparse_inputs(R, n_out, n_in, density, dtype, device, seed=R + n_in,
                                    values=values)
    dw = compiled.sparse_weight_grad(h, idx, vals, n_in)
    assert dw.shape == (n_out, n_in) and dw.dtype == dtype and dw.is_contiguous()
    if n_in and n_out:
        assert_close_rel(dw, ref.sparse_weight_grad(h, idx, vals, n_in), dtype)
    assert_close_rel(dw, dense_weight_grad(h, idx, vals, n_in), dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_weight_grad_unsorted_duplicates(dtype, device):
    h, idx, _, _ = sparse_inputs(30, 17, 25, 0.2, dtype, device, seed=5)
    idx = torch.cat([idx, idx[:7], idx[3:5]])
    idx = idx[torch.randperm(idx.numel(), generator=torch.Generator().manual_seed(0)).to(device)]
    vals = torch.linspace(-1, 2, idx.numel(), dtype=dtype, device=device)
    for v in (None, vals):
        assert_close_rel(compiled.sparse_weight_grad(h, idx, v, 25), dense_weight_grad(h, idx, v, 25),
                         dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SPARSE_CASES)
def test_sparse_input_grad(case, dtype, device):
    R, n_out, n_in, density = case
    h, idx, _, w = sparse_inputs(R, n_out, n_in, density, dtype, device, seed=2 * R + n_out)
    expected = (h.double() @ w.double()).view(-1)[idx].to(dtype)
    # The raw kernel (the wrapper may switch to a dense GEMM for many indices) ...
    out = ops().sparse_input_grad(h, w, idx)
    assert out.shape == idx.shape and out.dtype == dtype
    assert_close_rel(out, expected, dtype)
    assert_close_rel(out, ref.sparse_input_grad(h, w, idx), dtype)
    # ... and the public function, on the same and on a sparser request.
    assert_close_rel(compiled.sparse_input_grad(h, w, idx), expected, dtype)
    few = idx[::40]
    assert_close_rel(compiled.sparse_input_grad(h, w, few), expected[::40], dtype)


@pytest.mark.parametrize("device", DEVICES)
def test_sparse_ops_non_contiguous(device):
    dtype = torch.float64
    h, idx, vals, w = sparse_inputs(40, 12, 30, 0.1, dtype, device, values=True)
    h_nc = h.t().contiguous().t()
    w_nc = w.t().contiguous().t()
    idx_nc = torch.stack([idx, idx], 1)[:, 0]
    vals_nc = torch.stack([vals, vals], 1)[:, 1]
    assert not (h_nc.is_contiguous() or w_nc.is_contiguous() or idx_nc.is_contiguous())
    assert_close_rel(compiled.sparse_weight_grad(h_nc, idx_nc, vals_nc, 30),
                     ref.sparse_weight_grad(h, idx, vals, 30), dtype)
    assert_close_rel(ops().sparse_input_grad(h_nc, w_nc, idx_nc), ref.sparse_input_grad(h, w, idx),
                     dtype)


def test_sparse_index_out_of_range_cpu():
    h = torch.randn(4, 3, dtype=torch.float64)
    w = torch.randn(3, 5, dtype=torch.float64)
    bad = torch.tensor([0, 20], dtype=torch.long)
    with pytest.raises(RuntimeError, match="out of range"):
        ops().sparse_weight_grad(h, bad, None, 5)
    with pytest.raises(RuntimeError, match="out of range"):
        ops().sparse_input_grad(h, w, torch.tensor([-1]))


def test_bad_arguments_cpu():
    cur = torch.randn(3, 2, 4)
    with pytest.raises(RuntimeError, match="reset_mode"):
        ops().lif_scan(cur, torch.ones(4), torch.ones(4), 3)
    with pytest.raises(RuntimeError, match="beta"):
        ops().lif_scan(cur, torch.ones(5), torch.ones(4), 0)
    with pytest.raises(RuntimeError, match="spk is required"):
        ops().lif_scan_backward(cur, torch.ones(4), None, 1)
    with pytest.raises(RuntimeError, match="float32 and float64"):
        ops().lif_scan(cur.half(), torch.ones(4).half(), torch.ones(4).half(), 0)


def test_lif_scan_inplace_rejects_non_contiguous_cpu():
    cur, beta, thr = scan_inputs((6, 3, 5), torch.float64, "cpu")
    nc = cur.permute(0, 2, 1).contiguous().permute(0, 2, 1)  # same values, not contiguous
    with pytest.raises(RuntimeError, match="lif_scan_: current must be contiguous"):
        ops().lif_scan_(nc.clone(memory_format=torch.preserve_format), beta, thr, 0)
    # the wrapper scans a non-contiguous current through the reference, still in place
    compiled.lif_scan_(nc, beta, thr, 0)
    assert torch.equal(nc, ref.lif_scan(cur, beta, thr, 0)[1])


def test_lif_scan_backward_inplace_rejects_non_contiguous_cpu():
    cur, beta, thr = scan_inputs((6, 3, 5), torch.float64, "cpu")
    nc = cur.permute(0, 2, 1).contiguous().permute(0, 2, 1)
    with pytest.raises(RuntimeError, match="lif_scan_backward_: grad must be contiguous"):
        ops().lif_scan_backward_(nc.clone(memory_format=torch.preserve_format), beta, None, 0)
    with pytest.raises(RuntimeError, match="spk is required for reset_mode 1"):
        ops().lif_scan_backward_(cur.clone(), beta, None, 1)


def test_other_dtypes_fall_back_to_reference():
    cur, beta, thr = scan_inputs((5, 2, 3), torch.bfloat16, "cpu")
    a = compiled.lif_scan(cur, beta, thr, 0)
    b = ref.lif_scan(cur, beta, thr, 0)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_beta_threshold_cast_to_input_dtype():
    cur, beta, thr = scan_inputs((6, 2, 5), torch.float64, "cpu")
    b32, t32 = beta.float(), thr.float()
    a = compiled.lif_scan(cur, b32, t32, 0)
    b = ref.lif_scan(cur, b32, t32, 0)  # promotes float32 beta to float64, exactly
    assert torch.equal(a[1], b[1])


# ---------------------------------------------------------------------------
# torch.library.opcheck: schema, fake tensor, AOT dispatch
# ---------------------------------------------------------------------------

def _opcheck_cases(device):
    dtype = torch.float64
    cur, beta, thr = scan_inputs((6, 3, 5), dtype, device)
    spk, _ = ref.lif_scan(cur, beta, thr, 0)
    h, idx, vals, w = sparse_inputs(18, 5, 7, 0.2, dtype, device, values=True)
    o = ops()
    return [
        (o.lif_scan.default, (cur, beta, thr, 0)),
        (o.lif_scan.default, (cur, beta, thr, 1)),
        (o.lif_scan_.default, (cur.clone(), beta, thr, 0)),
        (o.lif_scan_.default, (cur.clone(), beta, thr, 2)),
        (o.lif_scan_backward.default, (cur, beta, spk, 1)),
        (o.lif_scan_backward.default, (cur, beta, spk.bool(), 1)),
        (o.lif_scan_backward.default, (cur, beta, None, 0)),
        (o.lif_scan_backward_.default, (cur.clone(), beta, spk, 1)),
        (o.lif_scan_backward_.default, (cur.clone(), beta, None, 0)),
        (o.sparse_weight_grad.default, (h, idx, vals, 7)),
        (o.sparse_weight_grad.default, (h, idx, None, 7)),
        (o.sparse_input_grad.default, (h, w, idx)),
    ]


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    for op, args in _opcheck_cases(device):
        torch.library.opcheck(op, args)


def test_torch_compile_traces_ops():
    cur, beta, thr = scan_inputs((8, 2, 6), torch.float32, "cpu")

    def f(c):
        spk, mem = torch.ops.snntorch_sparse.lif_scan(c * 2, beta, thr, 0)
        return spk.sum() + mem.sum()

    compiled_f = torch.compile(f, backend="eager", fullgraph=True)
    assert torch.equal(compiled_f(cur), f(cur))


# ---------------------------------------------------------------------------
# Fuzz
# ---------------------------------------------------------------------------

def _maybe_non_contiguous(t, flag):
    if not flag or t.dim() == 0:
        return t
    # Interleave with a copy and take every other element of the last dim.
    return torch.stack([t, torch.full_like(t, 7)], -1)[..., 0]


@settings(max_examples=25, deadline=None)
@given(T=st.integers(1, 12), B=st.integers(1, 5), N=st.integers(1, 40), mode=st.sampled_from(MODES),
       f64=st.booleans(), nc=st.booleans(), gain=st.floats(0.1, 4.0), seed=st.integers(0, 2**16))
def test_fuzz_scans(T, B, N, mode, f64, nc, gain, seed):
    dtype = torch.float64 if f64 else torch.float32
    cur, beta, thr = scan_inputs((T, B, N), dtype, "cpu", seed=seed, gain=gain)
    args = [_maybe_non_contiguous(t, nc) for t in (cur, beta, thr)]
    spk, mem = compiled.lif_scan(*args, mode)
    spk_r, mem_r = ref.lif_scan(cur, beta, thr, mode)
    assert torch.equal(spk, spk_r) and torch.equal(mem, mem_r)
    grad = _maybe_non_contiguous(torch.randn(T, B, N, dtype=dtype), nc)
    assert torch.equal(compiled.lif_scan_backward(grad, args[1], _maybe_non_contiguous(spk, nc), mode),
                       ref.lif_scan_backward(grad, beta, spk, mode))


@settings(max_examples=25, deadline=None)
@given(R=st.integers(1, 60), n_out=st.integers(1, 40), n_in=st.integers(1, 50),
       density=st.sampled_from([0.0, 0.01, 0.05, 0.3, 1.0]), values=st.booleans(),
       f64=st.booleans(), nc=st.booleans(), seed=st.integers(0, 2**16))
def test_fuzz_sparse(R, n_out, n_in, density, values, f64, nc, seed):
    dtype = torch.float64 if f64 else torch.float32
    h, idx, vals, w = sparse_inputs(R, n_out, n_in, density, dtype, "cpu", seed=seed, values=values)
    hn, idxn, wn = (_maybe_non_contiguous(t, nc) for t in (h, idx, w))
    valsn = None if vals is None else _maybe_non_contiguous(vals, nc)
    assert_close_rel(compiled.sparse_weight_grad(hn, idxn, valsn, n_in),
                     dense_weight_grad(h, idx, vals, n_in), dtype)
    expected = (h.double() @ w.double()).view(-1)[idx].to(dtype)
    assert_close_rel(ops().sparse_input_grad(hn, wn, idxn), expected, dtype)
    assert_close_rel(compiled.sparse_input_grad(hn, wn, idxn), expected, dtype)


# ---------------------------------------------------------------------------
# Build plumbing
# ---------------------------------------------------------------------------

def test_build_finds_sources():
    from snntorch_sparse.ops import _build
    srcs = _build.sources(with_cuda=True)
    names = {os.path.basename(s) for s in srcs}
    assert {"ops.cpp", "lif_scan.cpp", "sparse_grad.cpp", "ops_launch.cu"} <= names
    assert all(os.path.isfile(s) for s in srcs)
    assert not any(s.endswith(".cu") for s in _build.sources(with_cuda=False))
