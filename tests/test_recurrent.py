"""SparseRLeaky / SparseLinearRLeaky vs snnTorch's RLeaky with the same clamped surrogate."""
import pytest
import snntorch as snn
import torch
from torch import nn

import snntorch_sparse as sps
from snntorch_sparse.recurrent import SparseLinearRLeaky, SparseRLeaky
from snntorch_sparse.surrogate import sparse_fast_sigmoid

from helpers import rel_err

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


@pytest.fixture(autouse=True)
def _always_kernel(monkeypatch):
    """Small test layers have many active entries: make the compiled backend use its C++
    kernel whatever the activity (it switches to per-step GEMMs above 1/8 active)."""
    import snntorch_sparse.recurrent as rec
    monkeypatch.setattr(rec, "_KERNEL_MAX_FRACTION", 2.0)


def _dense_rleaky(reset, all_to_all, learn, dtype, n, sg, V=None):
    kw = dict(linear_features=n) if all_to_all else dict(all_to_all=False, V=V)
    lif = snn.RLeaky(beta=0.875, spike_grad=sg, reset_mechanism=reset, learn_beta=learn,
                     learn_threshold=learn, **kw)
    lif = lif.to(dtype)
    if not all_to_all:  # snnTorch's one-to-one module keeps its own reference to V
        lif.recurrent.V = lif.V
    return lif


def _run_dense(fc, lif, x, spk0=None, mem0=None):
    spk, mem = lif.reset_mem()
    if spk0 is not None:
        spk, mem = spk0, mem0
    srec, mrec = [], []
    for t in range(x.shape[0]):
        cur = fc(x[t]) if fc is not None else x[t]
        spk, mem = lif(cur, spk, mem)
        srec.append(spk)
        mrec.append(mem)
    return torch.stack(srec), torch.stack(mrec)


def _make(reset, all_to_all, learn, dtype, n_in=12, n=9, seed=0, stateful=False, backend=None):
    torch.manual_seed(seed)
    sg = sparse_fast_sigmoid(slope=25, bth=0.4)
    fc = nn.Linear(n_in, n, dtype=dtype)
    with torch.no_grad():
        fc.weight.mul_(2.5)
    V = torch.linspace(-0.6, 0.9, n, dtype=dtype) if not all_to_all else None
    dense = _dense_rleaky(reset, all_to_all, learn, dtype, n, sg, V)
    if all_to_all:
        with torch.no_grad():
            dense.recurrent.weight.mul_(2.0)
    sparse = SparseLinearRLeaky(n_in, n, beta=0.875, spike_grad=sg, reset_mechanism=reset, all_to_all=all_to_all,
                                V=V if V is not None else 1.0, learn_beta=learn, learn_threshold=learn,
                                output=True, dtype=dtype, stateful=stateful, backend=backend,
                                event_forward=False)
    with torch.no_grad():
        sparse.fc.weight.copy_(fc.weight)
        sparse.fc.bias.copy_(fc.bias)
        if all_to_all:
            sparse.recurrent.weight.copy_(dense.recurrent.weight)
            sparse.recurrent.bias.copy_(dense.recurrent.bias)
    return fc, dense, sparse


def _params(fc, lif, sparse_layer: bool):
    ps = [fc.weight, fc.bias]
    if getattr(lif, "all_to_all", True):
        ps += [lif.recurrent.weight, lif.recurrent.bias]
    else:
        ps.append(lif.V)
    for name in ("beta", "threshold"):
        p = getattr(lif, name)
        if isinstance(p, nn.Parameter):
            ps.append(p)
    return ps


@pytest.mark.parametrize("backend", ["reference", "compiled"])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("all_to_all", [True, False])
@pytest.mark.parametrize("learn", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("T,B", [(1, 2), (19, 3)])
def test_linear_rleaky_matches_snntorch(backend, reset, all_to_all, learn, dtype, T, B):
    fc, dense, sparse = _make(reset, all_to_all, learn, dtype, backend=backend)
    g = torch.Generator().manual_seed(5)
    x = (torch.rand(T, B, 12, generator=g) < 0.4).to(dtype)
    xd, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
    sd, md = _run_dense(fc, dense, xd)
    ss, ms = sparse(xs)
    assert torch.equal(sd, ss)
    assert torch.equal(md, ms)
    w = torch.randn(T, B, 9, generator=g, dtype=dtype)
    ((sd * w).sum() + 0.5 * (md * w).sum()).backward()
    ((ss * w).sum() + 0.5 * (ms * w).sum()).backward()
    for a, b in zip(_params(sparse.fc, sparse, True) + [xs], _params(fc, dense, False) + [xd]):
        assert a.grad is not None
        assert rel_err(a.grad, b.grad.reshape(a.shape).to(a.dtype)) < TOL[dtype], a.shape


@pytest.mark.parametrize("backend", ["reference", "compiled"])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("all_to_all", [True, False])
def test_multi_step_neuron_initial_state(backend, reset, all_to_all):
    torch.manual_seed(2)
    sg = sparse_fast_sigmoid(slope=25, bth=0.5)
    T, B, N = 10, 3, 6
    kw = dict(linear_features=N) if all_to_all else dict(all_to_all=False, V=torch.linspace(-0.5, 0.8, N))
    dense = snn.RLeaky(beta=0.875, spike_grad=sg, reset_mechanism=reset, learn_beta=True, learn_threshold=True,
                       **kw).double()
    sparse = SparseRLeaky(beta=0.875, spike_grad=sg, reset_mechanism=reset, learn_beta=True, learn_threshold=True,
                          step_mode="multi", backend=backend, **kw).double()
    sparse.load_state_dict(dense.state_dict())
    if not all_to_all:
        dense.recurrent.V = dense.V
        sparse.recurrent.V = sparse.V
    cur = torch.randn(T, B, N, dtype=torch.float64) * 0.7
    s0 = (torch.rand(B, N) < 0.5).double()
    m0 = torch.randn(B, N, dtype=torch.float64) + 0.5
    cd, cs = cur.clone().requires_grad_(), cur.clone().requires_grad_()
    sd0, ss0 = s0.clone().requires_grad_(), s0.clone().requires_grad_()
    md0, ms0 = m0.clone().requires_grad_(), m0.clone().requires_grad_()
    sd, md = _run_dense(None, dense, cd, sd0, md0)
    ss, ms = sparse(cs, ss0, ms0)
    assert torch.equal(sd, ss) and torch.equal(md, ms)
    w = torch.randn(T, B, N, dtype=torch.float64)
    ((sd * w).sum() + (md * w).sum()).backward()
    ((ss * w).sum() + (ms * w).sum()).backward()
    pairs = [(cs, cd), (ss0, sd0), (ms0, md0), (sparse.beta, dense.beta), (sparse.threshold, dense.threshold)]
    if all_to_all:
        pairs += [(sparse.recurrent.weight, dense.recurrent.weight), (sparse.recurrent.bias, dense.recurrent.bias)]
    else:
        pairs.append((sparse.V, dense.V))
    for a, b in pairs:
        assert rel_err(a.grad, b.grad.to(a.grad.dtype)) < 1e-10


def test_single_step_is_snntorch():
    sg = sparse_fast_sigmoid(slope=25, bth=0.5)
    torch.manual_seed(0)
    dense = snn.RLeaky(beta=0.875, linear_features=5, spike_grad=sg)
    sparse = SparseRLeaky(beta=0.875, linear_features=5, spike_grad=sg)
    sparse.load_state_dict(dense.state_dict())
    assert isinstance(sparse, snn.RLeaky)
    x = torch.randn(8, 3, 5)
    for u, v in zip(_run_dense(None, dense, x), _run_dense(None, sparse, x)):
        assert torch.equal(u, v)


@pytest.mark.parametrize("detach", [True, False])
def test_chunked_linear_rleaky(detach):
    fc, dense, sparse = _make("subtract", True, True, torch.float64, stateful=True)
    x = (torch.rand(22, 3, 12) < 0.4).double()
    w = torch.randn(22, 3, 9, dtype=torch.float64)
    spk, mem = dense.reset_mem()
    total_d, total_s, t0 = 0, 0, 0
    for c in (8, 1, 13):
        sp, me = [], []
        for t in range(t0, t0 + c):
            spk, mem = dense(fc(x[t]), spk, mem)
            sp.append(spk)
            me.append(mem)
        ld = (torch.stack(sp) * w[t0:t0 + c]).sum() + (torch.stack(me) * w[t0:t0 + c]).sum()
        ss, ms = sparse(x[t0:t0 + c])
        assert torch.equal(torch.stack(sp), ss) and torch.equal(torch.stack(me), ms)
        ls = (ss * w[t0:t0 + c]).sum() + (ms * w[t0:t0 + c]).sum()
        if detach:
            ld.backward()
            ls.backward()
            spk, mem = spk.detach(), mem.detach()
            sparse.detach_hidden()
        else:
            total_d, total_s = total_d + ld, total_s + ls
        t0 += c
    if not detach:
        total_d.backward()
        total_s.backward()
    for a, b in zip(_params(sparse.fc, sparse, True), _params(fc, dense, False)):
        assert rel_err(a.grad, b.grad.reshape(a.shape).to(a.dtype)) < 1e-10


def test_gradcheck_rleaky():
    """gradcheck where the spikes are constant (no entry in the window, threshold out of reach):
    the recurrent weights still act through the initial spikes ``spk0`` at step 0."""
    from snntorch_sparse.functional import LIFConfig
    from snntorch_sparse.recurrent import rleaky_sequence
    sg = sparse_fast_sigmoid(slope=5, bth=1e-9)
    torch.manual_seed(0)
    N = 4
    cur = (torch.randn(5, 2, N, dtype=torch.float64) * 0.3).requires_grad_()
    W = (torch.randn(N, N, dtype=torch.float64) * 0.3).requires_grad_()
    b = (torch.randn(N, dtype=torch.float64) * 0.1).requires_grad_()
    m0 = torch.randn(2, N, dtype=torch.float64).requires_grad_()
    s0 = torch.rand(2, N, dtype=torch.float64).requires_grad_()
    beta = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    for mode, backend in ((0, "reference"), (1, "reference"), (2, "reference"), (0, "compiled"), (1, "compiled")):
        def f(c, w, bb, m, s, be):
            cfg = LIFConfig(surrogate=sg, reset_mode=mode, backend=backend)
            spk, mem = rleaky_sequence(c, w, bb, None, be, torch.tensor(50.0, dtype=torch.float64), cfg, m, s)
            return mem
        assert torch.autograd.gradcheck(f, (cur, W, b, m0, s0, beta))

        def g(c, v, m, s, be):
            cfg = LIFConfig(surrogate=sg, reset_mode=mode, backend=backend)
            return rleaky_sequence(c, None, None, v, be, torch.tensor(50.0, dtype=torch.float64), cfg, m, s)[1]
        v = torch.randn(N, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(g, (cur, v, m0, s0, beta))


def test_registered_and_sparsify():
    assert snn.SparseRLeaky is SparseRLeaky and snn.SparseLinearRLeaky is SparseLinearRLeaky
    torch.manual_seed(0)
    sg = sparse_fast_sigmoid(slope=25, bth=0.4)
    net = nn.Sequential(nn.Linear(10, 8), snn.RLeaky(beta=0.875, linear_features=8, init_hidden=True, spike_grad=sg),
                        nn.Linear(8, 4), snn.Leaky(beta=0.875, init_hidden=True, output=True, spike_grad=sg))
    with torch.no_grad():
        net[0].weight.mul_(3)
    s = sps.sparsify(net, event_forward=False)
    assert isinstance(s[0], SparseLinearRLeaky)
    x = (torch.rand(12, 3, 10) < 0.4).float()
    snn.utils.reset(net)
    rec = [net(x[t]) for t in range(12)]
    sd, md = torch.stack([r[0] for r in rec]), torch.stack([r[1] for r in rec])
    ss, ms = s(x)
    assert torch.equal(sd, ss) and torch.equal(md, ms)
    back = sps.desparsify(s)
    assert type(back[1]) is snn.RLeaky
    assert torch.equal(back[1].recurrent.weight, net[1].recurrent.weight)
    net1 = nn.Sequential(nn.Linear(10, 8), snn.RLeaky(beta=0.875, all_to_all=False, V=0.5, init_hidden=True))
    s1 = sps.sparsify(net1)
    assert isinstance(s1[0], SparseLinearRLeaky) and not s1[0].all_to_all
    assert type(sps.desparsify(s1)[1]) is snn.RLeaky


def test_nir_and_checkpoint_rleaky():
    pytest.importorskip("nir")
    pytest.importorskip("nirtorch")
    from snntorch_sparse.checkpoint import to_dense_state_dict, to_sparse_state_dict
    from snntorch_sparse.nir import export_to_nir, import_from_nir
    torch.manual_seed(0)
    sg = sparse_fast_sigmoid(slope=25, bth=0.4)
    net = nn.Sequential(nn.Linear(10, 8), snn.RLeaky(beta=0.875, linear_features=8, init_hidden=True, spike_grad=sg),
                        nn.Linear(8, 4), snn.Leaky(beta=0.875, init_hidden=True, output=True, spike_grad=sg))
    with torch.no_grad():
        net[0].weight.mul_(3)
    s = sps.sparsify(net, event_forward=False)
    d = sps.desparsify(s)
    d.load_state_dict(to_dense_state_dict(s))
    s.load_state_dict(to_sparse_state_dict(s, net.state_dict()))
    g = export_to_nir(s, torch.rand(5, 2, 10))
    back = import_from_nir(g, sparse=True, spike_grad=sg, event_forward=False)
    assert isinstance(back[0], SparseLinearRLeaky)
    x = (torch.rand(9, 3, 10) < 0.4).float()
    a, b = s(x), back(x)
    assert torch.equal(a[0], b[0])
    torch.testing.assert_close(a[1], b[1], rtol=1e-5, atol=1e-5)


def test_dense_switch_same_gradients(monkeypatch):
    """Above 1/8 active the compiled backend uses per-step GEMMs: same gradients as the kernel."""
    import snntorch_sparse.recurrent as rec
    grads = []
    for frac in (2.0, 0.0):
        monkeypatch.setattr(rec, "_KERNEL_MAX_FRACTION", frac)
        fc, dense, sparse = _make("zero", True, True, torch.float64, backend="compiled")
        x = (torch.rand(15, 3, 12, generator=torch.Generator().manual_seed(0)) < 0.4).double()
        s, m = sparse(x)
        (s.sum() + m.sum()).backward()
        grads.append([p.grad.clone() for p in sparse.parameters()])
    for a, b in zip(*grads):
        assert rel_err(a, b) < 1e-12


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("density", [0.3, 0.002])
def test_wide_linear_rleaky_matches_snntorch(reset, dtype, density):
    """N >= 64: the kernel's per-block, column-grouped ∂L/∂W_in and ∂L/∂V (dense enough input and
    spikes) and its per-event scatter (a very sparse input), fused with the Linear layer."""
    n_in, n, T, B = 90, 72, 24, 5
    fc, dense, sparse = _make(reset, True, False, dtype, n_in=n_in, n=n, seed=3)
    with torch.no_grad():
        fc.weight.mul_(0.4 / density ** 0.5 / 4)
        sparse.fc.weight.copy_(fc.weight)
    g = torch.Generator().manual_seed(11)
    x = (torch.rand(T, B, n_in, generator=g) < density).to(dtype)
    sd, md = _run_dense(None, dense, fc(x))  # one GEMM over all steps, as the fused layer (same rounding)
    ss, ms = sparse(x)
    assert torch.equal(sd, ss) and torch.equal(md, ms)
    assert 0 < ss.mean() < 0.5  # the recurrent spikes and ∂L/∂V are not trivial
    w = torch.randn(T, B, n, generator=g, dtype=dtype)
    ((sd * w).sum() + 0.3 * (md * w).sum()).backward()
    ((ss * w).sum() + 0.3 * (ms * w).sum()).backward()
    for a, b in zip(_params(sparse.fc, sparse, True), _params(fc, dense, False)):
        assert rel_err(a.grad, b.grad.reshape(a.shape).to(a.dtype)) < TOL[dtype], a.shape


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("second", ["readout", "rleaky"])
def test_stack_passes_grad_on_active_set(dtype, second):
    """RLeaky -> sparse layer: the next layer computes ∂L/∂S only on RLeaky's active set and hands
    it back as one value per active entry; RLeaky -> RLeaky also passes ∂L/∂X that way from the
    fused Linear+RLeaky function. Gradients equal snnTorch's (input gradient included)."""
    from snntorch_sparse import SparseLinearLeaky
    from snntorch_sparse.active_grad import ActiveSetGrad
    T, B, n_in, n1, n2 = 16, 4, 20, 70, 7
    fc1, d1, s1 = _make("subtract", True, False, dtype, n_in=n_in, n=n1, seed=4)
    sg = s1.surrogate
    if second == "readout":
        fc2 = nn.Linear(n1, n2, dtype=dtype)
        d2 = snn.Leaky(beta=0.875, spike_grad=sg, reset_mechanism="none").to(dtype)
        s2 = SparseLinearLeaky(n1, n2, beta=0.875, spike_grad=sg, readout=True, event_forward=False, dtype=dtype)
        with torch.no_grad():
            s2.fc.weight.copy_(fc2.weight)
            s2.fc.bias.copy_(fc2.bias)
    else:
        fc2, d2, s2 = _make("subtract", True, False, dtype, n_in=n1, n=n2, seed=5)
        with torch.no_grad():
            fc2.weight.mul_(3.0)
            s2.fc.weight.copy_(fc2.weight)
    g = torch.Generator().manual_seed(6)
    x = (torch.rand(T, B, n_in, generator=g) < 0.3).to(dtype)
    xd, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
    h_d, _ = _run_dense(None, d1, fc1(xd))  # one GEMM over all steps, as the fused layers
    h_s, _ = s1(xs)
    assert torch.equal(h_d, h_s)
    seen = []
    h_s.register_hook(lambda grad: seen.append(type(grad)))
    if second == "readout":
        mem, out_d = d2.reset_mem(), []
        cur2 = fc2(h_d)
        for t in range(T):
            _, mem = d2(cur2[t], mem)
            out_d.append(mem)
        out_d = torch.stack(out_d)
        out_s = s2(h_s)  # a readout returns its membrane
    else:
        out_d, _ = _run_dense(None, d2, fc2(h_d))
        out_s, _ = s2(h_s)
    assert torch.equal(out_d, out_s)
    w = torch.randn(out_d.shape, generator=g, dtype=dtype)
    (out_d * w).sum().backward()
    (out_s * w).sum().backward()
    assert seen == [ActiveSetGrad]
    pairs = list(zip(_params(s1.fc, s1, True) + [xs], _params(fc1, d1, False) + [xd]))
    pairs += [(s2.fc.weight, fc2.weight), (s2.fc.bias, fc2.bias)]
    for a, b in pairs:
        assert rel_err(a.grad, b.grad.reshape(a.shape).to(a.dtype)) < TOL[dtype], a.shape
