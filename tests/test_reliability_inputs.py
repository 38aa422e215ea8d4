"""Hostile and degenerate inputs to the fused sparse layers."""
import time

import pytest
import snntorch as snn
import torch
from torch import nn

from snntorch_sparse import SparseLeaky, SparseLinearLeaky, TimeDistributed
from snntorch_sparse.memory import saved_tensor_bytes
from snntorch_sparse.surrogate import sparse_fast_sigmoid

from helpers import dense_params, make_pair, rel_err, run_dense, run_sparse, sparse_params


def _parity(x, sizes, tol=1e-10, x_grad=True, **kw):
    """Spikes, membranes and gradients (params and input) of sparse vs snnTorch dense."""
    kw.setdefault("beta", 0.875)
    kw.setdefault("threshold", 1.0)
    kw.setdefault("bth", 0.4)
    dense, sparse = make_pair(sizes, dtype=x.dtype, **kw)
    xd = x.detach().clone().requires_grad_(x_grad)
    xs = x.detach().clone()
    if x_grad:
        xs = xs.requires_grad_(True)
    rd, rs = run_dense(dense, xd), run_sparse(sparse, xs)
    for (sd, md), (ss, ms) in zip(rd, rs):
        assert torch.equal(sd, ss)
        torch.testing.assert_close(ms, md, rtol=1e-12, atol=1e-12)
    w = torch.linspace(-1, 1, rd[-1][0].numel(), dtype=x.dtype).view_as(rd[-1][0])
    ld = (rd[-1][1] * w).sum() + (rd[-1][0] * w).sum() + sum(s.sum() for s, _ in rd[:-1]) * 0.1
    ls = (rs[-1][1] * w).sum() + (rs[-1][0] * w).sum() + sum(s.sum() for s, _ in rs[:-1]) * 0.1
    pd, ps = dense_params(dense), sparse_params(sparse)
    if x_grad:
        pd, ps = pd + [xd], ps + [xs]
    gd = torch.autograd.grad(ld, pd, allow_unused=True)
    gs = torch.autograd.grad(ls, ps, allow_unused=True)
    for a, b in zip(gs, gd):
        b = torch.zeros_like(a) if b is None else b
        assert rel_err(a, b) < tol, rel_err(a, b)
    return rs, gs, sparse


def _spikes(T, B, n, density=0.3, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, n, generator=g) < density).to(dtype)


# ----------------------------------------------------------------- graded input


@pytest.mark.parametrize("density", [0.1, 0.9])  # sparse path (indices + values) and dense path
def test_graded_input_gradient_parity(density):
    g = torch.Generator().manual_seed(3)
    mask = torch.rand(20, 3, 10, generator=g) < density
    x = torch.where(mask, torch.randn(20, 3, 10, generator=g, dtype=torch.float64),
                    torch.zeros((), dtype=torch.float64))
    _parity(x, [10, 8, 6], gain=2.0)


def test_negative_and_large_graded_input():
    x = _spikes(15, 2, 10, 0.3) * -5.0 + _spikes(15, 2, 10, 0.2, seed=4) * 7.5
    _parity(x, [10, 8], gain=1.0)


# ----------------------------------------------------------------- NaN / inf / T / B


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nonfinite_input_raises(bad):
    layer = SparseLinearLeaky(6, 4, beta=0.9)
    x = _spikes(5, 2, 6, dtype=torch.float32)
    x[2, 1, 3] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        layer(x)
    with pytest.raises(ValueError, match="NaN or inf"):
        SparseLeaky(beta=0.9, step_mode="multi")(x)


def test_zero_time_steps_raises():
    with pytest.raises(ValueError, match="T = 0"):
        SparseLinearLeaky(6, 4, beta=0.9)(torch.zeros(0, 2, 6))
    with pytest.raises(ValueError, match="T = 0"):
        SparseLeaky(beta=0.9, step_mode="multi")(torch.zeros(0, 2, 6))


def test_wrong_rank_and_features_raise():
    layer = SparseLinearLeaky(6, 4, beta=0.9)
    with pytest.raises(ValueError, match=r"\[T, B"):
        layer(torch.zeros(5, 6))
    with pytest.raises(ValueError, match="6 features"):
        layer(torch.zeros(5, 2, 7))
    with pytest.raises(TypeError, match="torch.Tensor"):
        layer([[0.0] * 6])
    with pytest.raises(TypeError, match="floating"):
        layer(torch.zeros(5, 2, 6, dtype=torch.int64))


def test_empty_batch_returns_empty_and_zero_grads():
    """Decision: B = 0 works (e.g. the last, empty shard of a dataset) and returns an empty sequence."""
    net = nn.Sequential(SparseLinearLeaky(6, 5, beta=0.9), SparseLinearLeaky(5, 3, beta=0.9, output=True))
    x = torch.zeros(7, 0, 6, requires_grad=True)
    spk, mem = net(x)
    assert spk.shape == (7, 0, 3) and mem.shape == (7, 0, 3)
    (spk.sum() + mem.sum()).backward()
    assert x.grad.shape == x.shape
    for p in net.parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) == 0
    assert net[0].activity is None or net[0].activity == 0


def test_empty_batch_multistep_neuron():
    spk, mem = SparseLeaky(beta=0.9, step_mode="multi")(torch.zeros(4, 0, 3))
    assert spk.shape == (4, 0, 3) and mem.shape == (4, 0, 3)


# ----------------------------------------------------------------- long sequences


def test_huge_T_saved_memory_far_below_dense():
    T, B, n_in, n = 10_000, 2, 16, 16
    torch.manual_seed(0)
    layer = SparseLinearLeaky(n_in, n, beta=0.875, bth=0.2)
    with torch.no_grad():
        layer.fc.weight.mul_(2)
    x = _spikes(T, B, n_in, 0.05, dtype=torch.float32)
    t0 = time.perf_counter()
    with saved_tensor_bytes() as sparse_bytes:
        spk = layer(x)
    spk.sum().backward()
    elapsed = time.perf_counter() - t0
    assert spk.shape == (T, B, n)
    assert 0.001 < layer.activity < 0.5
    # snnTorch's dense loop over a shorter sequence, scaled to T (its saved bytes grow linearly in T)
    t_short = 500
    fc, lif = nn.Linear(n_in, n), snn.Leaky(beta=0.875, spike_grad=sparse_fast_sigmoid(bth=0.2))
    with saved_tensor_bytes() as dense_bytes:
        mem = lif.reset_mem()
        for t in range(t_short):
            s, mem = lif(fc(x[t]), mem)
    dense_at_T = dense_bytes.bytes * T / t_short
    dense_floor = 2 * T * B * (n_in + n) * 4  # at least input and membrane per step in float32
    assert dense_at_T >= dense_floor / 2
    assert sparse_bytes.bytes < 0.25 * dense_at_T, (sparse_bytes.bytes, dense_at_T)
    assert elapsed < 30


# ----------------------------------------------------------------- activity extremes


def test_full_activity_huge_bth_parity():
    """bth = 1e6: every entry is active; equals dense BPTT with the same (unclamped) surrogate."""
    rs, gs, sparse = _parity(_spikes(15, 3, 10, 0.5), [10, 8, 6], bth=1e6)
    assert sparse[0].activity == 1.0


def test_all_ones_input():
    _parity(torch.ones(12, 2, 10, dtype=torch.float64), [10, 8], gain=0.5)


def test_zero_activity_tiny_bth_gives_zero_gradient():
    rs, gs, sparse = _parity(_spikes(15, 3, 10, 0.3), [10, 8, 6], bth=1e-12)
    assert sparse[0].activity < 1e-3
    x = _spikes(15, 3, 10, 0.3).requires_grad_(True)
    spk = sparse[1](sparse[0](x)[0])[0]      # a loss on spikes only: no active entry, no gradient
    grads = torch.autograd.grad((spk * 2).sum(), sparse_params(sparse) + [x], allow_unused=True)
    assert all(g is None or torch.count_nonzero(g) == 0 for g in grads)


def test_all_zero_input():
    _parity(torch.zeros(10, 3, 10, dtype=torch.float64), [10, 8])  # only the bias drives the neurons


# ----------------------------------------------------------------- thresholds


@pytest.mark.parametrize("threshold", [0.0, -0.5, 1e-6, 50.0])
def test_threshold_edges_parity(threshold):
    _parity(_spikes(15, 3, 10, 0.3), [10, 8, 6], threshold=threshold, bth=0.4)


@pytest.mark.parametrize("bth", [0.0, -0.1, float("inf"), float("nan")])
def test_invalid_bth_refused(bth):
    with pytest.raises(ValueError, match="bth"):
        SparseLinearLeaky(6, 4, beta=0.9, bth=bth)


@pytest.mark.parametrize("threshold", [float("inf"), float("nan")])
def test_nonfinite_threshold_refused(threshold):
    with pytest.raises(ValueError, match="threshold"):
        SparseLinearLeaky(6, 4, beta=0.9, threshold=threshold)


# ----------------------------------------------------------------- memory layouts


def _layout(name, x):
    """(base, view_fn, ref_grad_fn): ``view_fn(base)`` has ``x``'s values and other strides;
    ``ref_grad_fn`` maps the contiguous input's gradient onto ``base``'s gradient."""
    T, B, n = x.shape
    if name == "transposed":  # [B, T, n] storage
        return x.transpose(0, 1).contiguous(), lambda b: b.transpose(0, 1), lambda g: g.transpose(0, 1)
    if name == "feature-major":  # features outermost
        return (x.permute(2, 0, 1).contiguous(), lambda b: b.permute(1, 2, 0),
                lambda g: g.permute(2, 0, 1))
    if name == "strided slice":
        wide = torch.zeros(T, 2 * B, 3 * n, dtype=x.dtype)
        wide[:, ::2, 1::3] = x

        def ref(g):
            out = torch.zeros_like(wide)
            out[:, ::2, 1::3] = g
            return out
        return wide, lambda b: b[:, ::2, 1::3], ref
    # expanded batch: stride 0 over B
    return x[:, :1].clone(), lambda b: b.expand(T, B, n), lambda g: g.sum(1, keepdim=True)


@pytest.mark.parametrize("name", ["transposed", "feature-major", "strided slice", "expanded batch"])
def test_non_contiguous_inputs_same_as_contiguous(name):
    x = _spikes(12, 3, 10, 0.3)
    base, view_fn, ref_grad_fn = _layout(name, x)
    base.requires_grad_(True)
    view = view_fn(base)
    assert not view.is_contiguous()
    ref = view.detach().contiguous().requires_grad_(True)
    _, sparse = make_pair([10, 8, 6], 0.875, 1.0, 0.4)
    outs = []
    for inp, leaf in ((ref, ref), (view, base)):
        res = run_sparse(sparse, inp)
        loss = sum((s * 1.3).sum() + m.sum() for s, m in res)
        outs.append((res, torch.autograd.grad(loss, sparse_params(sparse) + [leaf])))
    (r0, g0), (r1, g1) = outs
    assert r0[0][0].sum() > 0
    for (s0, m0), (s1, m1) in zip(r0, r1):
        assert torch.equal(s0, s1)
        torch.testing.assert_close(m1, m0, rtol=1e-13, atol=1e-13)
    for a, b in zip(g1[:-1], g0[:-1]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g1[-1], ref_grad_fn(g0[-1]), rtol=1e-12, atol=1e-12)


def test_channels_last_conv_front_end():
    """A conv front end (TimeDistributed) fed channels-last frames gives the contiguous result."""
    torch.manual_seed(0)
    net = nn.Sequential(TimeDistributed(nn.Conv2d(2, 4, 3, padding=1)),
                        TimeDistributed(nn.Flatten()),
                        SparseLinearLeaky(4 * 6 * 6, 10, beta=0.875, bth=0.4),
                        SparseLinearLeaky(10, 3, beta=0.875, readout=True)).double()
    with torch.no_grad():
        net[0].module.weight.mul_(4)
        net[2].fc.weight.mul_(5)
    frames = _spikes(8 * 3, 2, 36, 0.3).reshape(8, 3, 2, 6, 6)
    cl = frames.reshape(24, 2, 6, 6).contiguous(memory_format=torch.channels_last).reshape(8, 3, 2, 6, 6)
    assert not cl.is_contiguous()
    res = []
    for inp in (frames, cl):
        out = net(inp)
        g = torch.autograd.grad(out.sum() + (out * torch.arange(3.0, dtype=out.dtype)).sum(),
                                list(net.parameters()))
        res.append((out, g))
    assert res[0][0].abs().sum() > 0 and net[2].activity > 0
    assert torch.equal(res[0][0], res[1][0])
    for a, b in zip(res[1][1], res[0][1]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------- devices


def test_input_on_other_device_refused():
    layer = SparseLinearLeaky(6, 4, beta=0.9)
    with pytest.raises(ValueError, match="one device"):
        layer(torch.zeros(5, 2, 6, device="meta"))
    lif = SparseLeaky(beta=0.9, step_mode="multi")
    with pytest.raises(ValueError, match="one device"):
        lif(torch.zeros(5, 2, 6, device="meta"))


def test_parameters_on_other_device_refused():
    layer = SparseLinearLeaky(6, 4, beta=0.9)
    layer.threshold = torch.ones((), device="meta")
    with pytest.raises(ValueError, match="one device"):
        layer(torch.zeros(5, 2, 6))


def test_meta_model_shape_inference():
    layer = SparseLinearLeaky(6, 4, beta=0.9, device="meta")
    out = layer(torch.zeros(5, 2, 6, device="meta"))
    assert out.shape == (5, 2, 4) and out.device.type == "meta"
