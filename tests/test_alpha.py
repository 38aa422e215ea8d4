"""SparseAlpha / SparseLinearAlpha vs snnTorch's Alpha with the same clamped surrogate."""
import pytest
import snntorch as snn
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import snntorch_sparse as sps
import snntorch_sparse.alpha as al
from snntorch_sparse.alpha import SparseAlpha, SparseLinearAlpha, _learnable_alpha, alpha_sequence
from snntorch_sparse.functional import LIFConfig
from snntorch_sparse.surrogate import sparse_fast_sigmoid

from helpers import rel_err

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
A, B = 0.875, 0.75  # exact in float32 (snnTorch keeps float32 buffers until .to(dtype))


def _dense(reset, learn, dtype, sg, alpha=A, beta=B, threshold=1.0):
    lif = snn.Alpha(alpha=alpha, beta=beta, threshold=threshold, spike_grad=sg, reset_mechanism=reset,
                    learn_beta=learn, learn_threshold=learn).to(dtype)
    if learn:  # snnTorch 1.0's learn_alpha=True fails in its constructor: make it a parameter by hand
        _learnable_alpha(lif)
    return lif


def _run_dense(fc, lif, x, state=None):
    e, h, m = lif.reset_mem() if state is None else state
    rec = []
    for t in range(x.shape[0]):
        spk, e, h, m = lif(fc(x[t]) if fc is not None else x[t], e, h, m)
        rec.append((spk, e, h, m))
    return tuple(torch.stack(r) for r in zip(*rec))


def _make(reset, learn, dtype, n_in=12, n=9, seed=0, stateful=False, backend=None):
    torch.manual_seed(seed)
    sg = sparse_fast_sigmoid(slope=25, bth=0.4)
    fc = nn.Linear(n_in, n, dtype=dtype)
    with torch.no_grad():
        fc.weight.mul_(2.5)
    dense = _dense(reset, learn, dtype, sg)
    sparse = SparseLinearAlpha(n_in, n, alpha=A, beta=B, spike_grad=sg, reset_mechanism=reset, learn_alpha=learn,
                               learn_beta=learn, learn_threshold=learn, output=True, dtype=dtype, stateful=stateful,
                               backend=backend, event_forward=False)
    with torch.no_grad():
        sparse.fc.weight.copy_(fc.weight)
        sparse.fc.bias.copy_(fc.bias)
    return fc, dense, sparse


def _params(fc, lif):
    return [fc.weight, fc.bias] + [p for p in (lif.alpha, lif.beta, lif.threshold) if isinstance(p, nn.Parameter)]


@pytest.mark.parametrize("backend", ["reference", "compiled"])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("learn", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("T,B", [(1, 2), (17, 3)])
def test_linear_alpha_matches_snntorch(backend, reset, learn, dtype, T, B):
    fc, dense, sparse = _make(reset, learn, dtype, backend=backend)
    g = torch.Generator().manual_seed(5)
    x = (torch.rand(T, B, 12, generator=g) < 0.4).to(dtype)
    xd, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_d = _run_dense(fc, dense, xd)
    out_s = sparse(xs)
    for a, b in zip(out_d, out_s):
        assert torch.equal(a, b)  # spikes, both currents and the membrane bit for bit
    w = torch.randn(4, T, B, 9, generator=g, dtype=dtype)
    sum((o * w[i]).sum() for i, o in enumerate(out_d)).backward()
    sum((o * w[i]).sum() for i, o in enumerate(out_s)).backward()
    for a, b in zip(_params(sparse.fc, sparse) + [xs], _params(fc, dense) + [xd]):
        assert a.grad is not None
        assert rel_err(a.grad, b.grad.reshape(a.shape).to(a.dtype)) < TOL[dtype], a.shape


def test_compiled_backend_runs_the_kernel(monkeypatch):
    from snntorch_sparse.ops import compiled
    if not (compiled.available() and al._kernel_ok("compiled", torch.zeros(1))):
        pytest.skip("compiled backend not built")
    calls = []
    real = al._backward_loop
    monkeypatch.setattr(al, "_backward_loop", lambda *a, **k: calls.append(1) or real(*a, **k))
    fc, dense, sparse = _make("subtract", True, torch.float64, backend="compiled")
    out = sparse((torch.rand(6, 2, 12) < 0.4).double())
    (out[0].sum() + out[3].sum()).backward()
    assert not calls
    sparse.backend = "reference"
    out = sparse((torch.rand(6, 2, 12) < 0.4).double())
    (out[0].sum() + out[3].sum()).backward()
    assert calls


@pytest.mark.parametrize("backend", ["reference", "compiled"])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_multi_step_neuron_initial_state(backend, reset):
    torch.manual_seed(2)
    sg = sparse_fast_sigmoid(slope=25, bth=0.5)
    T, Bt, N = 10, 3, 6
    beta = torch.tensor([0.5, 0.75, 0.25, 0.625, 0.125, 0.75])
    dense = _dense(reset, True, torch.float64, sg, beta=beta, threshold=0.75)
    sparse = SparseAlpha(alpha=A, beta=beta, threshold=0.75, spike_grad=sg, reset_mechanism=reset, learn_alpha=True,
                         learn_beta=True, learn_threshold=True, step_mode="multi", backend=backend).double()
    sparse.load_state_dict(dense.state_dict())
    cur = torch.randn(T, Bt, N, dtype=torch.float64) * 2
    init = [torch.randn(Bt, N, dtype=torch.float64) * 0.5, torch.randn(Bt, N, dtype=torch.float64) * 0.5,
            torch.randn(Bt, N, dtype=torch.float64) + 0.5]
    cd, cs = cur.clone().requires_grad_(), cur.clone().requires_grad_()
    init_d = [s.clone().requires_grad_() for s in init]
    init_s = [s.clone().requires_grad_() for s in init]
    out_d = _run_dense(None, dense, cd, init_d)
    out_s = sparse(cs, *init_s)
    for a, b in zip(out_d, out_s):
        assert torch.equal(a, b)
    w = torch.randn(T, Bt, N, dtype=torch.float64)
    sum((o * w).sum() for o in out_d).backward()
    sum((o * w).sum() for o in out_s).backward()
    pairs = [(cs, cd)] + list(zip(init_s[:2], init_d[:2])) + [(getattr(sparse, n), getattr(dense, n))
                                                            for n in ("alpha", "beta", "threshold")]
    for a, b in pairs:
        assert rel_err(a.grad, b.grad.to(a.grad.dtype)) < 1e-10
    assert init_s[2].grad is None and init_d[2].grad is None  # mem0 only decides the (detached) first reset


def test_single_step_is_snntorch():
    sg = sparse_fast_sigmoid(slope=25, bth=0.5)
    dense = snn.Alpha(alpha=A, beta=B, spike_grad=sg)
    sparse = SparseAlpha(alpha=A, beta=B, spike_grad=sg)
    assert isinstance(sparse, snn.Alpha)
    x = torch.randn(8, 3, 5) * 3
    for u, v in zip(_run_dense(None, dense, x), _run_dense(None, sparse, x)):
        assert torch.equal(u, v)


@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("backend", ["reference", "compiled"])
def test_chunked_linear_alpha(detach, backend):
    fc, dense, sparse = _make("subtract", True, torch.float64, stateful=True, backend=backend)
    x = (torch.rand(22, 3, 12) < 0.4).double()
    w = torch.randn(22, 3, 9, dtype=torch.float64)
    state = dense.reset_mem()
    total_d, total_s, t0 = 0, 0, 0
    for c in (8, 1, 13):
        out_d = _run_dense(fc, dense, x[t0:t0 + c], state)
        state = tuple(o[-1] for o in out_d[1:])
        out_s = sparse(x[t0:t0 + c])
        for a, b in zip(out_d, out_s):
            assert torch.equal(a, b)
        ld = (out_d[0] * w[t0:t0 + c]).sum() + (out_d[3] * w[t0:t0 + c]).sum()
        ls = (out_s[0] * w[t0:t0 + c]).sum() + (out_s[3] * w[t0:t0 + c]).sum()
        if detach:
            ld.backward()
            ls.backward()
            state = tuple(s.detach() for s in state)
            snn.Alpha.detach_hidden()  # the class-wide method reaches the fused layer
        else:
            total_d, total_s = total_d + ld, total_s + ls
        t0 += c
    if not detach:
        total_d.backward()
        total_s.backward()
    for a, b in zip(_params(sparse.fc, sparse), _params(fc, dense)):
        assert rel_err(a.grad, b.grad.reshape(a.shape).to(a.dtype)) < 1e-10
    snn.Alpha.reset_hidden()
    assert sparse.mem.abs().sum() == 0 and sparse.syn_exc.abs().sum() == 0 and sparse.syn_inh.abs().sum() == 0


@pytest.mark.parametrize("backend", ["reference", "compiled"])
def test_gradcheck_alpha(backend):
    """gradcheck where no entry is in the window: the currents, alpha, beta (also through
    tau_alpha) and the initial currents, in every reset mode (resets from a large mem0)."""
    sg = sparse_fast_sigmoid(slope=5, bth=1e-9)
    torch.manual_seed(0)
    f64 = dict(dtype=torch.float64)
    cur = (torch.randn(5, 2, 4, **f64) * 0.3).requires_grad_()
    e0, h0 = torch.randn(2, 4, **f64).requires_grad_(), torch.randn(2, 4, **f64).requires_grad_()
    m0 = torch.tensor([[100.0, -1.0, 100.0, 0.0], [0.0, 100.0, 0.0, -5.0]], **f64)
    alpha = torch.tensor([0.9, 0.7, 0.8, 0.6], **f64, requires_grad=True)
    beta = torch.tensor(0.5, **f64, requires_grad=True)
    thr = torch.tensor(50.0, **f64)
    for mode in (0, 1, 2):
        def f(c, a, b, e, h):
            cfg = LIFConfig(surrogate=sg, reset_mode=mode, backend=backend)
            return alpha_sequence(c, a, b, thr, cfg, e, h, m0)[1:]
        assert torch.autograd.gradcheck(f, (cur, alpha, beta, e0, h0))


def test_registered_sparsify_desparsify():
    assert snn.SparseAlpha is SparseAlpha and snn.SparseLinearAlpha is SparseLinearAlpha
    torch.manual_seed(0)
    sg = sparse_fast_sigmoid(slope=25, bth=0.4)
    net = nn.Sequential(nn.Linear(10, 8), snn.Alpha(alpha=A, beta=B, init_hidden=True, spike_grad=sg),
                        nn.Linear(8, 4), snn.Leaky(beta=0.875, init_hidden=True, output=True, spike_grad=sg))
    with torch.no_grad():
        net[0].weight.mul_(4)
    s = sps.sparsify(net, event_forward=False)
    assert isinstance(s[0], SparseLinearAlpha)
    x = (torch.rand(12, 3, 10) < 0.4).float()
    snn.utils.reset(net)
    rec = [net(x[t]) for t in range(12)]
    ss, ms = s(x)
    assert torch.equal(torch.stack([r[0] for r in rec]), ss) and torch.equal(torch.stack([r[1] for r in rec]), ms)
    back = sps.desparsify(s)
    assert type(back[1]) is snn.Alpha
    snn.utils.reset(back)
    assert torch.equal(torch.stack([back(x[t])[1] for t in range(12)]), ms)
    from snntorch_sparse.checkpoint import to_dense_state_dict, to_sparse_state_dict
    back.load_state_dict(to_dense_state_dict(s))
    s.load_state_dict(to_sparse_state_dict(s, net.state_dict()))
    alone = sps.sparsify(nn.Sequential(snn.Alpha(alpha=A, beta=B, init_hidden=True, spike_grad=sg)))
    assert isinstance(alone[0], SparseAlpha) and alone[0].multi_step

    class Own(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.lif = nn.Linear(10, 8), snn.Alpha(alpha=A, beta=B, spike_grad=sg)

    own = sps.sparsify(Own())
    assert type(own.lif) is SparseAlpha and own.lif.step_mode == "single"
    assert type(sps.desparsify(own).lif) is snn.Alpha
    pytest.importorskip("nir")
    pytest.importorskip("nirtorch")
    from snntorch_sparse.nir import export_to_nir
    with pytest.raises(NotImplementedError, match="Alpha neuron at '1'.*no NIR primitive"):
        export_to_nir(s, torch.rand(5, 2, 10))


def test_argument_errors():
    with pytest.raises(ValueError, match="alpha must be greater than beta"):
        SparseLinearAlpha(3, 3, alpha=0.5, beta=0.6)
    with pytest.raises(ValueError, match="alpha must be greater than beta"):
        SparseAlpha(alpha=1.0, beta=1.0)
    with pytest.raises(ValueError, match="alpha must be in"):
        SparseLinearAlpha(3, 3, alpha=1.5, beta=0.5)
    n = SparseAlpha(alpha=A, beta=B, step_mode="multi", init_hidden=True)
    with pytest.raises(TypeError, match="init_hidden"):
        n(torch.rand(4, 2, 3), mem=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="syn_inh"):
        SparseLinearAlpha(3, 4, alpha=A, beta=B)(torch.rand(5, 2, 3), syn_inh=torch.zeros(3, 7))


@pytest.mark.filterwarnings("ignore:snntorch_sparse")
@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(T=st.integers(1, 9), Bt=st.integers(1, 3), n_in=st.integers(1, 6), n=st.integers(1, 6),
       reset=st.sampled_from(["subtract", "zero", "none"]), ab=st.sampled_from([(0.875, 0.75), (0.5, 0.25),
                                                                              (1.0, 0.5), (0.75, 0.125)]),
       threshold=st.sampled_from([0.25, 1.0, 2.0]), bth=st.sampled_from([0.05, 0.4, 5.0]),
       gain=st.sampled_from([1.0, 3.0, 8.0]), learn=st.booleans(), cut=st.integers(1, 9),
       backend=st.sampled_from(["reference", "compiled"]), seed=st.integers(0, 2 ** 16))
def test_fuzz_alpha(T, Bt, n_in, n, reset, ab, threshold, bth, gain, learn, cut, backend, seed):
    """Chunks of ``cut`` steps with carried state vs snnTorch's loop over the whole sequence."""
    dtype = torch.float64
    torch.manual_seed(seed)
    sg = sparse_fast_sigmoid(slope=25, bth=bth)
    fc = nn.Linear(n_in, n, dtype=dtype)
    with torch.no_grad():
        fc.weight.mul_(gain)
    dense = _dense(reset, learn, dtype, sg, alpha=ab[0], beta=ab[1], threshold=threshold)
    sparse = SparseLinearAlpha(n_in, n, alpha=ab[0], beta=ab[1], threshold=threshold, spike_grad=sg,
                               reset_mechanism=reset, learn_alpha=learn, learn_beta=learn, learn_threshold=learn,
                               output=True, dtype=dtype, backend=backend, stateful=True, event_forward=False)
    with torch.no_grad():
        sparse.fc.weight.copy_(fc.weight)
        sparse.fc.bias.copy_(fc.bias)
    g = torch.Generator().manual_seed(seed + 1)
    x = (torch.rand(T, Bt, n_in, generator=g) < 0.4).to(dtype)
    w = torch.randn(T, Bt, n, generator=g, dtype=dtype)
    xd, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_d = _run_dense(fc, dense, xd)
    chunks = [sparse(xs[t0:t0 + cut]) for t0 in range(0, T, cut)]
    out_s = [torch.cat([c[i] for c in chunks]) for i in range(4)]
    assert torch.equal(out_d[0], out_s[0])
    for a, b in zip(out_d[1:], out_s[1:]):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)
    sum((o * w).sum() for o in out_d).backward()
    sum((o * w).sum() for o in out_s).backward()
    for a, b in zip(_params(sparse.fc, sparse) + [xs], _params(fc, dense) + [xd]):
        ga = a.grad if a.grad is not None else torch.zeros_like(a)
        gb = b.grad if b.grad is not None else torch.zeros_like(b)
        assert rel_err(ga, gb.reshape(ga.shape).to(ga.dtype)) < 1e-10
