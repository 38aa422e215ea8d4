"""The fused CPU path (csrc/cpu/fused_lif.cpp via snntorch_sparse.fused_cpu).

Parity against snnTorch's dense BPTT over the ways gradients reach a hidden
layer (compact COO hand-over, dense + sparse sums, two sparse consumers,
``autograd.grad`` on hidden spikes), the event-driven forward, the dense-input
and large-layer fallbacks, buffer reuse, and ``opcheck`` on the new ops.
"""
import pytest
import torch
from torch import nn

from helpers import dense_params, make_pair, rel_err, run_dense, run_sparse, sparse_params
from snntorch_sparse import SparseLinearLeaky, fused_cpu
from snntorch_sparse.active_grad import ActiveSetGrad
from snntorch_sparse.ops import compiled, fused

pytestmark = pytest.mark.skipif(not compiled.available(), reason="compiled backend not built")

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def _spikes(T, B, n, density, dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, n, generator=g) < density).to(dtype)


def _grads(loss, params):
    return torch.autograd.grad(loss, params, allow_unused=True)


def _assert_grads_close(gs, gd, dtype, tol=None):
    tol = TOL[dtype] if tol is None else tol
    for a, b in zip(gs, gd):
        b = torch.zeros_like(a) if b is None else b
        assert rel_err(a, b.reshape(a.shape)) < tol, (rel_err(a, b.reshape(a.shape)), a.shape)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_hidden_gradient_is_handed_over_on_the_active_set(dtype):
    """Between two sparse layers ∂L/∂S travels as one value per upstream active entry.

    The fused CPU path and the device-generic path (reference backend here,
    CUDA's path) both hand the hidden layer an ActiveSetGrad on its own set,
    which its backward reads without densifying; the values agree, and
    parameter gradients equal snnTorch's.
    """
    dense, sparse = make_pair([12, 16, 6], 0.875, 1.0, 0.4, dtype=dtype)
    _, ref = make_pair([12, 16, 6], 0.875, 1.0, 0.4, dtype=dtype, backend="reference")
    x = _spikes(20, 5, 12, 0.3, dtype)
    rd, rs, rr = run_dense(dense, x), run_sparse(sparse, x), run_sparse(ref, x)
    seen = {}
    rs[0][0].register_hook(lambda g: seen.__setitem__("fused", g))
    rr[0][0].register_hook(lambda g: seen.__setitem__("generic", g))
    w = torch.randn(rd[-1][0].shape, dtype=dtype, generator=torch.Generator().manual_seed(3))
    for r in (rd, rs, rr):
        (r[-1][1] * w).sum().backward()
    for name, r in (("fused", rs), ("generic", rr)):
        g = seen[name]
        sets = getattr(r[0][0], "_snntorch_sparse_active")
        assert isinstance(g, ActiveSetGrad) and g.sets is sets, name
        assert g.values.numel() == sets.active_flat().numel() and g.shape == r[0][0].shape
        assert g._dense is None, f"{name}: the producing layer densified its own hand-over"
    a, b = seen["fused"], seen["generic"]
    assert torch.equal(a.sets.active_flat(), b.sets.active_flat())
    assert rel_err(a.dense(), b.dense()) < TOL[dtype]
    _assert_grads_close([p.grad for p in sparse_params(sparse)], [p.grad for p in dense_params(dense)], dtype)


@pytest.mark.parametrize("case", ["regulariser", "two_consumers", "autograd_grad"])
def test_gradient_routes_match_snntorch(case):
    dtype = torch.float64
    if case == "two_consumers":
        dense, sparse = make_pair([10, 14, 5], 0.875, 1.0, 0.4, dtype=dtype)
        dense_b, sparse_b = make_pair([14, 4], 0.75, 1.0, 0.4, dtype=dtype, seed=5)
    else:
        dense, sparse = make_pair([10, 14, 5], 0.875, 1.0, 0.4, dtype=dtype)
    x = _spikes(25, 4, 10, 0.3, dtype)
    rd, rs = run_dense(dense, x), run_sparse(sparse, x)
    w = torch.randn(rd[-1][1].shape, dtype=dtype, generator=torch.Generator().manual_seed(4))
    ld, ls = (rd[-1][1] * w).sum(), (rs[-1][1] * w).sum()
    pd, ps = dense_params(dense), sparse_params(sparse)
    if case == "regulariser":  # dense ∂L/∂S from a spike count plus the next layer's sparse one
        ld = ld + 0.3 * rd[0][0].sum()
        ls = ls + 0.3 * rs[0][0].sum()
    elif case == "two_consumers":  # two sparse layers read the hidden spikes: sparse + sparse
        ld = ld + (run_dense(dense_b, rd[0][0])[-1][1]).sum()
        ls = ls + (run_sparse(sparse_b, rs[0][0])[-1][1]).sum()
        pd, ps = pd + dense_params(dense_b), ps + sparse_params(sparse_b)
    if case == "autograd_grad":  # gradient w.r.t. the hidden spikes alone, then with parameters
        _, ref = make_pair([10, 14, 5], 0.875, 1.0, 0.4, dtype=dtype, backend="reference")
        rr = run_sparse(ref, x)
        lr = (rr[-1][1] * w).sum()
        (gr,) = torch.autograd.grad(lr, [rr[0][0]])
        (gs,) = torch.autograd.grad(ls, [rs[0][0]], retain_graph=True)
        # the user gets the hand-over itself: it behaves as the dense gradient under any op
        assert isinstance(gs, ActiveSetGrad) and isinstance(gr, ActiveSetGrad)
        assert rel_err(gs * 1, gr * 1) < TOL[dtype]
        _assert_grads_close(_grads(ls, ps), _grads(ld, pd), dtype)
    else:
        _assert_grads_close(_grads(ls, ps), _grads(ld, pd), dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_event_forward_matches_snntorch(dtype, reset):
    """event_forward sums the current over input events only: equal to rounding (float64: 1e-10)."""
    dense, sparse = make_pair([30, 20, 8], 0.875, 1.0, 0.4, reset=reset, dtype=dtype, seed=2)
    for layer in sparse:
        layer.event_forward = True
    x = _spikes(30, 6, 30, 0.1, dtype, seed=7)
    rd, rs = run_dense(dense, x), run_sparse(sparse, x)
    for (sd, md), (ss, ms) in zip(rd, rs):
        assert torch.equal(sd, ss)
        torch.testing.assert_close(ms, md, rtol=TOL[dtype], atol=TOL[dtype])
    w = torch.randn(rd[-1][1].shape, dtype=dtype, generator=torch.Generator().manual_seed(0))
    gd = _grads((rd[-1][1] * w).sum(), dense_params(dense))
    gs = _grads((rs[-1][1] * w).sum(), sparse_params(sparse))
    tol = TOL[dtype] * (10 if dtype == torch.float32 else 1)  # float32 currents differ by an ulp
    for a, b in zip(gs, gd):
        assert rel_err(a, b.reshape(a.shape)) < tol


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_wide_layers_match_snntorch(dtype):
    """Layer widths that take every vector path of the backward kernel.

    96 and 200 neurons: ∂L/∂W grouped by input column over blocks of rows
    (several blocks per batch range at T = 400, h written straight into the
    block's time slots), with column buckets that fill up and are added
    early (dense inputs: many events per column and block), balanced 8-float
    tiles plus a remainder; 13 neurons: the per-event scatter (one masked
    AVX-512 row, or 8-, 4- and 1-float tails); graded inputs: weighted events.
    """
    dense, sparse = make_pair([40, 96, 200, 13], 0.875, 1.0, 0.4, dtype=dtype, seed=4, gain=1.5)
    g = torch.Generator().manual_seed(5)
    x = _spikes(400, 4, 40, 0.3, dtype, seed=6) * torch.rand(400, 4, 40, dtype=dtype, generator=g)
    xd, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
    rd, rs = run_dense(dense, xd), run_sparse(sparse, xs)
    for (sd, _), (ss, _) in zip(rd, rs):
        assert torch.equal(sd, ss)
    # the 200-wide layer's input events fill its column groups (>= 1 per column and block)
    assert rs[0][0].mean() * 96 * ((256 << 10) // (200 * x.element_size())) >= 96
    assert rs[1][0].sum() > 0
    w = torch.randn(rd[-1][1].shape, dtype=dtype, generator=g)
    gd = _grads((rd[-1][1] * w).sum(), dense_params(dense) + [xd])
    gs = _grads((rs[-1][1] * w).sum(), sparse_params(sparse) + [xs])
    _assert_grads_close(gs, gd, dtype)


@pytest.mark.parametrize("width", [257, 272, 300])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_long_rows_input_gradient_matches_snntorch(width, dtype):
    """Layers wider than 256 neurons behind a fused layer: ∂L/∂X dots over rows
    too long for registers (AVX-512: streamed two entries at a time; 257, 272
    and 300 floats give a 1-float masked tail, no tail, and an odd vector count
    with a 12-float tail)."""
    dense, sparse = make_pair([30, 48, width, 7], 0.875, 1.0, 0.4, dtype=dtype, seed=8, gain=1.5)
    x = _spikes(40, 3, 30, 0.3, dtype, seed=9)
    rd, rs = run_dense(dense, x), run_sparse(sparse, x)
    for (sd, _), (ss, _) in zip(rd, rs):
        assert torch.equal(sd, ss)
    assert rs[0][0].sum() > 0 and rs[1][0].sum() > 0  # both hidden layers spike: ∂X has work
    w = torch.randn(rd[-1][1].shape, dtype=dtype, generator=torch.Generator().manual_seed(10))
    gd = _grads((rd[-1][1] * w).sum(), dense_params(dense))
    gs = _grads((rs[-1][1] * w).sum(), sparse_params(sparse))
    # float32: layer 1's ∂W sums over two layers' chains, and snnTorch's own float32
    # sums run in another order: 1.2e-5 at width 272 with either dot kernel.
    _assert_grads_close(gs, gd, dtype, tol=TOL[dtype] * (2 if dtype == torch.float32 else 1))


@pytest.mark.parametrize("graded", [False, True])
def test_dense_input_fallback(graded):
    """Inputs denser than a third go through a dense ∂L/∂W GEMM (bool kept for binary inputs)."""
    dtype = torch.float64
    dense, sparse = make_pair([9, 7], 0.875, 1.0, 0.4, dtype=dtype)
    x = _spikes(15, 3, 9, 0.7, dtype)
    if graded:
        x = x * torch.rand(x.shape, dtype=dtype, generator=torch.Generator().manual_seed(2))
    xd, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
    rd, rs = run_dense(dense, xd), run_sparse(sparse, xs)
    w = torch.randn(rd[-1][1].shape, dtype=dtype)
    gd = _grads((rd[-1][1] * w).sum(), dense_params(dense) + [xd])
    gs = _grads((rs[-1][1] * w).sum(), sparse_params(sparse) + [xs])
    _assert_grads_close(gs, gd, dtype)


def test_large_layer_weight_gradient_fallback(monkeypatch):
    """Above the per-thread dWᵀ copy budget h is stored and the column-sorted op computes ∂L/∂W."""
    monkeypatch.setattr(fused_cpu, "_MAX_DW_COPIES_BYTES", 0)
    dtype = torch.float64
    dense, sparse = make_pair([11, 9, 4], 0.875, 1.0, 0.4, dtype=dtype)
    x = _spikes(18, 4, 11, 0.3, dtype)
    rd, rs = run_dense(dense, x), run_sparse(sparse, x)
    w = torch.randn(rd[-1][1].shape, dtype=dtype)
    _assert_grads_close(_grads((rs[-1][1] * w).sum(), sparse_params(sparse)),
                        _grads((rd[-1][1] * w).sum(), dense_params(dense)), dtype)


def test_reused_spike_buffer_never_overwrites_live_spikes():
    """The spike buffer is reused only once nothing else holds it."""
    layer = SparseLinearLeaky(8, 6, beta=0.9)
    with torch.no_grad():
        layer.fc.weight.mul_(4)
    x1, x2 = _spikes(10, 3, 8, 0.4, torch.float32, 1), _spikes(10, 3, 8, 0.4, torch.float32, 2)
    s1 = layer(x1)
    keep = s1.clone()
    view = s1[3]  # a view keeps the storage alive too
    del s1
    s2 = layer(x2)
    assert torch.equal(view, keep[3])
    del view
    s3 = layer(x1)  # now the first buffer may be reused: values must be x1's again
    assert torch.equal(s3, keep)
    assert not torch.equal(s2, s3) or torch.equal(s2, keep)


def test_training_steps_reuse_buffers_without_changing_results(monkeypatch):
    def run():
        torch.manual_seed(0)
        net = nn.Sequential(SparseLinearLeaky(12, 10, beta=0.9), SparseLinearLeaky(10, 10, beta=0.9),
                            SparseLinearLeaky(10, 3, beta=0.9, readout=True))
        with torch.no_grad():
            for m in net[:2]:
                m.fc.weight.mul_(4)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        x = _spikes(16, 4, 12, 0.3, torch.float32)
        losses = []
        for _ in range(4):
            opt.zero_grad()
            loss = net(x).max(0).values.sum()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses, [p.detach().clone() for p in net.parameters()]

    monkeypatch.setenv("SNNTORCH_SPARSE_REUSE_BUFFERS", "1")
    l1, p1 = run()
    monkeypatch.setenv("SNNTORCH_SPARSE_REUSE_BUFFERS", "0")
    l0, p0 = run()
    assert l1 == l0
    for a, b in zip(p1, p0):
        assert torch.equal(a, b)


# ----------------------------------------------------------------------------- the ops themselves

def _csr_case(dtype=torch.float64, T=6, B=3, n_in=7, n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(T * B, n_in, generator=g) < 0.3).to(dtype)
    rowptr, col, vals = fused.dense_to_csr(x)
    w = torch.randn(n, n_in, dtype=dtype, generator=g)
    b = torch.randn(n, dtype=dtype, generator=g)
    beta = torch.full((n,), 0.875, dtype=dtype)
    thr = torch.ones(n, dtype=dtype)
    return x, (rowptr, col, vals), w, b, beta, thr


def test_dense_to_csr_matches_nonzero():
    x = torch.zeros(37, 45)
    x[torch.rand(37, 45) < 0.2] = 1.0
    x[0, 44] = -0.5
    x[5, 0] = float("nan")
    rowptr, col, vals = fused.dense_to_csr(x)
    nz = x.nonzero()
    assert torch.equal(torch.repeat_interleave(torch.arange(37), rowptr.diff()), nz[:, 0])
    assert torch.equal(col.long(), nz[:, 1])
    assert torch.equal(vals.nan_to_num(7.0), x[nz[:, 0], nz[:, 1]].nan_to_num(7.0))


@pytest.mark.parametrize("event", [False, True])
def test_fused_forward_equals_reference_scan(event):
    from snntorch_sparse.ops import reference
    dtype = torch.float64
    x, csr, w, b, beta, thr = _csr_case(dtype)
    T, B, n = 6, 3, w.shape[0]
    current = torch.nn.functional.linear(x, w, b).view(T, B, n)
    spk_ref, mem_ref = reference.lif_scan(current, beta, thr, 0)
    spk, mem = torch.empty(T, B, n, dtype=dtype), torch.empty(T, B, n, dtype=dtype)
    s_rp, s_col, a_rp, a_col, a_shift = fused.lif_fused_forward(
        None if event else current, (csr[0], csr[1], None), w, b, beta, thr, 0, 0.4, spk, mem, True, True)
    torch.testing.assert_close(mem, mem_ref, rtol=1e-12, atol=1e-12)
    assert torch.equal(spk, spk_ref)
    assert torch.equal(fused.csr_to_flat(s_rp, s_col, n), spk.reshape(-1).nonzero().squeeze(1))
    shift = mem.reshape(-1) - 1.0
    act = ((shift > -0.4) & (shift < 0.4)).nonzero().squeeze(1)
    assert torch.equal(fused.csr_to_flat(a_rp, a_col, n), act)
    torch.testing.assert_close(a_shift, shift[act])


def test_csr_to_flat_matches_the_row_expansion():
    flat = (torch.rand(40 * 9) < 0.3).nonzero().squeeze(1)
    rowptr, col = fused.flat_to_csr(flat, 40, 9)
    assert torch.equal(fused.csr_to_flat(rowptr, col, 9), flat)
    assert torch.equal(fused.csr_to_flat(rowptr, col, 9), fused.csr_rows(rowptr) * 9 + col.long())
    empty = torch.zeros(5, dtype=torch.long)
    assert fused.csr_to_flat(empty, torch.empty(0, dtype=torch.int32), 9).numel() == 0


def test_index_op_rejects_malformed_csr():
    rowptr, col = fused.flat_to_csr(torch.tensor([0, 3, 4, 11]), 4, 4)
    fn = torch.ops.snntorch_sparse.csr_to_flat_
    out = torch.empty(4, dtype=torch.long)
    bad = rowptr.clone()
    bad[1], bad[2] = 3, 1  # decreasing: would index past the entries
    with pytest.raises(RuntimeError, match="non-decreasing"):
        fn(bad, col, 4, out)
    short = rowptr.clone()
    short[-1] = 3  # ends before the last entry
    with pytest.raises(RuntimeError, match="start at 0 and end at 4"):
        fn(short, col, 4, out)
    with pytest.raises(RuntimeError, match="out of range|col entry"):
        fn(rowptr, col, 2, out)


def test_ops_reject_bad_arguments():
    x, csr, w, b, beta, thr = _csr_case()
    spk = torch.empty(6, 3, 5, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="x_col entry"):
        bad = csr[1].clone()
        bad[0] = 99
        fused.lif_fused_forward(None, (csr[0], bad, None), w, b, beta, thr, 0, 0.4, spk, None, True, True)
    with pytest.raises(RuntimeError, match="x_rowptr must be int64"):
        fused.lif_fused_forward(None, (csr[0][:-1], csr[1], None), w, b, beta, thr, 0, 0.4, spk, None, True, True)
    with pytest.raises(RuntimeError, match="weight must be"):
        fused.lif_fused_forward(None, (csr[0], csr[1], None), w.t(), b, beta, thr, 0, 0.4, spk, None, True, True)
    with pytest.raises(RuntimeError, match="compact d_spk"):
        rp = torch.zeros(19, dtype=torch.long)
        fused.lif_fused_backward((rp, torch.empty(0, dtype=torch.int32)), torch.empty(0, dtype=torch.float64),
                                 torch.ones(3, dtype=torch.float64), None, beta, None, 0, None, w, None, None, None,
                                 6, 3, 7, False, True, d_spk_compact=True)


def test_opcheck_fused_ops():
    x, csr, w, b, beta, thr = _csr_case()
    T, B, n = 6, 3, w.shape[0]
    ops = torch.ops.snntorch_sparse
    current = torch.nn.functional.linear(x, w, b).view(T, B, n)
    torch.library.opcheck(ops.dense_to_csr.default, (x,))
    spk, mem = torch.empty(T, B, n, dtype=x.dtype), torch.empty(T, B, n, dtype=x.dtype)
    win = torch.full((n,), 0.4, dtype=x.dtype)          # one window half-width per neuron
    torch.library.opcheck(ops.lif_fused_forward.default,
                          (current, None, None, None, None, None, beta, thr, 0, win, True, T, B, spk, mem, True, True))
    torch.library.opcheck(ops.lif_fused_forward.default,
                          (None, csr[0], csr[1], None, w, b, beta, thr, 1, win, True, T, B, spk, None, True, True))
    torch.library.opcheck(ops.lif_fused_forward.default,  # spikes as CSR only
                          (None, csr[0], csr[1], None, w, b, beta, thr, 0, win, False, T, B, None, mem, True, True))
    _, _, a_rp, a_col, a_shift = fused.lif_fused_forward(current, None, None, None, beta, thr, 0, 0.4, spk, None,
                                                          True, True)
    sg = 1.0 / (1 + a_shift.abs()) ** 2
    d_spk = torch.randn(T, B, n, dtype=x.dtype)
    up_rp, up_col = fused.flat_to_csr((torch.rand(T * B * 7) < 0.3).nonzero().squeeze(1), T * B, 7)
    dx = torch.zeros(up_col.numel(), dtype=x.dtype)
    torch.library.opcheck(ops.lif_fused_backward.default,
                          (a_rp, a_col, sg, d_spk, None, beta, None, 0, csr[0], csr[1], None, w, up_rp, up_col,
                           dx, None, T, B, 7, True, True, False, True))
    torch.library.opcheck(ops.csr_to_flat_.default, (a_rp, a_col, n, torch.empty(a_col.numel(), dtype=torch.long)))
    cap = torch.tensor([3, 2], dtype=torch.long)  # list lengths hint (CUDA); x given densely
    torch.library.opcheck(ops.lif_fused_forward.default,
                          (None, None, None, None, w, b, beta, thr, 0, win, True, T, B, None, mem, True, True, cap, x))
    torch.library.opcheck(ops.lif_fused_backward.default,
                          (a_rp, a_col, sg, d_spk, None, beta, None, 0, None, None, None, w, up_rp, up_col,
                           dx, None, T, B, 7, True, True, False, True, x))


@pytest.mark.parametrize("event", [True, False])
def test_a_dense_input_gives_what_its_event_list_gives(event):
    """x_dense (the input itself, as CUDA's GEMMs read it) instead of x_csr: on CPU the
    op takes the CSR itself; spikes, sets and gradients are the CSR call's, bit for bit."""
    x, csr, w, b, beta, thr = _csr_case(torch.float64)
    T, B, n = 6, 3, w.shape[0]
    outs = []
    for dense in (False, True):
        spk = torch.empty(T, B, n, dtype=x.dtype)
        fwd = fused.lif_fused_forward(None, None if dense else csr, w, b, beta, thr, 0, 0.4, spk, None, True, True,
                                      event=event, x_dense=x if dense else None, capacity=(1, 1))
        d_spk = torch.linspace(-1, 1, fwd[3].numel(), dtype=x.dtype)
        dw, db = fused.lif_fused_backward((fwd[2], fwd[3]), 1 / (1 + fwd[4].abs()) ** 2, d_spk, None, beta, None, 0,
                                          None if dense else csr, w, None, None, None, T, B, x.shape[1], True, True,
                                          d_spk_compact=True, x_dense=x if dense else None)
        outs.append((spk, *fwd, dw, db))
    for a, c in zip(*outs):
        assert torch.equal(a, c)


def test_bad_dense_input_and_capacity_are_named():
    x, csr, w, b, beta, thr = _csr_case(torch.float64)
    T, B, n = 6, 3, w.shape[0]
    spk = torch.empty(T, B, n, dtype=x.dtype)
    with pytest.raises(RuntimeError, match=r"x_dense must be the \[T\*B, N_in\]"):
        fused.lif_fused_forward(None, None, w, b, beta, thr, 0, 0.4, spk, None, True, True, x_dense=x[:-1])
    with pytest.raises(RuntimeError, match="x_dense must be Double"):
        fused.lif_fused_forward(None, None, w, b, beta, thr, 0, 0.4, spk, None, True, True, x_dense=x.float())
    with pytest.raises(RuntimeError, match="capacity must be >= 0"):
        fused.lif_fused_forward(None, csr, w, b, beta, thr, 0, 0.4, spk, None, True, True, capacity=(-1, 0))
    with pytest.raises(RuntimeError, match="capacity must be a CPU int64 tensor"):
        torch.ops.snntorch_sparse.lif_fused_forward(None, csr[0], csr[1], None, w, b, beta, thr, 0,
                                                    torch.full((n,), 0.4, dtype=x.dtype), True, T, B, spk, None,
                                                    True, True, torch.zeros(3, dtype=torch.long), None)


_SIMD_SCRIPT = r"""
import sys, torch
sys.path.insert(0, "tests")
from helpers import make_pair, run_sparse, sparse_params
torch.manual_seed(0)
out = {}
for dtype in (torch.float32, torch.float64):
    _, sparse = make_pair([40, 300, 24, 6], 0.875, 1.0, 0.4, dtype=dtype, seed=3)
    for layer in sparse:
        layer.event_forward = True
    x = (torch.rand(12, 5, 40, generator=torch.Generator().manual_seed(1)) < 0.2).to(dtype)
    rs = run_sparse(sparse, x)
    loss = sum((m * (k + 1)).sum() for k, (_, m) in enumerate(rs))
    grads = torch.autograd.grad(loss, sparse_params(sparse))
    out[str(dtype)] = ([s for s, _ in rs], [m for _, m in rs], list(grads))
torch.save(out, sys.argv[1])
"""


@pytest.mark.slow
def test_simd_builds_agree(tmp_path):
    """The baseline-ISA build and this machine's vector build give the same results (to rounding)."""
    import os
    import subprocess
    import sys
    script = tmp_path / "run.py"
    script.write_text(_SIMD_SCRIPT)
    results = {}
    for simd in ("0", "auto"):
        env = dict(os.environ, SNNTORCH_SPARSE_SIMD=simd)
        path = tmp_path / f"{simd}.pt"
        subprocess.run([sys.executable, str(script), str(path)], check=True, env=env,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), timeout=600)
        results[simd] = torch.load(path, weights_only=False)
    for key in results["0"]:
        (s0, m0, g0), (s1, m1, g1) = results["0"][key], results["auto"][key]
        tol = 1e-5 if "32" in key else 1e-12
        for a, b in zip(s0, s1):
            assert torch.equal(a, b)
        for a, b in zip(m0 + g0, m1 + g1):
            assert rel_err(a, b) < tol


def test_concurrent_forwards_never_share_a_buffer():
    """Two threads running one layer get their own spike buffers (the pool's check-and-take is atomic)."""
    import threading
    layer = SparseLinearLeaky(16, 12, beta=0.9)
    with torch.no_grad():
        layer.fc.weight.mul_(4)
    xs = [_spikes(20, 4, 16, 0.3, torch.float32, seed) for seed in range(2)]
    with torch.no_grad():
        expect = [layer(x).clone() for x in xs]
    errors = []

    def work(i):
        for _ in range(50):
            with torch.no_grad():
                s = layer(xs[i])
            if not torch.equal(s, expect[i]):
                errors.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@pytest.mark.parametrize("col, rowptr, match", [
    ([0, 7], [0, 1, 2], "x_col entry 7 out of range"),
    ([0, -3], [0, 1, 2], "x_col entry -3 out of range"),
    ([0, 1], [0, 2, 1, 2], "x_rowptr must be int64 \\[3\\]"),
    ([0, 1], [0, 2, 2], None),
])
def test_fused_forward_rejects_bad_event_csr(col, rowptr, match):
    """The event CSR's column range and row pointer are checked before any access."""
    T, B, N, n_in = 1, 2, 3, 5
    spk = torch.empty(T, B, N)
    csr = (torch.tensor(rowptr), torch.tensor(col, dtype=torch.int32), None)
    args = (None, csr, torch.randn(N, n_in), None, torch.full((N,), 0.9), torch.ones(N), 0, 1.0, spk, None,
            True, True)
    if match is None:
        fused.lif_fused_forward(*args)
        return
    with pytest.raises(RuntimeError, match=match):
        fused.lif_fused_forward(*args)


def test_fused_forward_rejects_decreasing_rowptr():
    spk = torch.empty(1, 2, 3)
    csr = (torch.tensor([0, 2, 1]), torch.tensor([0], dtype=torch.int32), None)
    with pytest.raises(RuntimeError, match="must start at 0 and end at 1|non-decreasing"):
        fused.lif_fused_forward(None, csr, torch.randn(3, 5), None, torch.full((3,), 0.9), torch.ones(3), 0, 1.0,
                                spk, None, True, True)
    csr = (torch.tensor([0, 2, 1, 3]), torch.tensor([0, 1, 2], dtype=torch.int32), None)
    with pytest.raises(RuntimeError, match="non-decreasing"):
        fused.lif_fused_forward(None, csr, torch.randn(3, 5), None, torch.full((3,), 0.9), torch.ones(3), 0, 1.0,
                                torch.empty(1, 3, 3), None, True, True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_layers_without_bias_match_snntorch(dtype):
    """``bias=False`` (no ∂b accumulated), loss on the last layer's membrane only (its ∂L/∂U-only scan)."""
    dense, sparse = make_pair([30, 96, 13], 0.875, 1.0, 0.4, dtype=dtype, seed=7, gain=1.5)
    for (fc, _), layer in zip(dense, sparse):
        fc.bias = None
        layer.fc.bias = None
    x = _spikes(60, 3, 30, 0.3, dtype, seed=8)
    xd, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
    rd, rs = run_dense(dense, xd), run_sparse(sparse, xs)
    for (sd, _), (ss, _) in zip(rd, rs):
        assert torch.equal(sd, ss)
    assert rs[0][0].sum() > 0
    w = torch.randn(rd[-1][1].shape, dtype=dtype, generator=torch.Generator().manual_seed(9))
    gd = _grads((rd[-1][1] * w).sum(), [fc.weight for fc, _ in dense] + [xd])
    gs = _grads((rs[-1][1] * w).sum(), [layer.fc.weight for layer in sparse] + [xs])
    _assert_grads_close(gs, gd, dtype)
