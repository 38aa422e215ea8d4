"""SparseRSynaptic / SparseLinearRSynaptic vs snnTorch's RSynaptic with the same clamped surrogate."""
import pytest
import snntorch as snn
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import snntorch_sparse as sps
import snntorch_sparse.rsynaptic as rs
from snntorch_sparse.functional import LIFConfig
from snntorch_sparse.rsynaptic import SparseLinearRSynaptic, SparseRSynaptic, rsynaptic_sequence
from snntorch_sparse.surrogate import sparse_fast_sigmoid

from helpers import rel_err

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


@pytest.fixture(autouse=True)
def _always_kernel(monkeypatch):
    """Small test layers have many active entries: make the compiled backend use its C++
    kernel whatever the activity (it switches to per-step GEMMs above 1/8 active)."""
    monkeypatch.setattr(rs, "_KERNEL_MAX_FRACTION", 2.0)


def _kernel_available() -> bool:
    from snntorch_sparse.ops import compiled
    return compiled.available() and rs._kernel_ok("compiled", torch.zeros(1))


def _dense(reset, all_to_all, learn, dtype, n, sg, V=None, alpha=0.75, beta=0.875):
    kw = dict(linear_features=n) if all_to_all else dict(all_to_all=False, V=V)
    lif = snn.RSynaptic(alpha=alpha, beta=beta, spike_grad=sg, reset_mechanism=reset, learn_alpha=learn,
                        learn_beta=learn, learn_threshold=learn, **kw).to(dtype)
    if not all_to_all:  # snnTorch's one-to-one module keeps its own reference to V
        lif.recurrent.V = lif.V
    return lif


def _run_dense(fc, lif, x, state=None):
    spk, syn, mem = lif.reset_mem() if state is None else state
    rec = []
    for t in range(x.shape[0]):
        spk, syn, mem = lif(fc(x[t]) if fc is not None else x[t], spk, syn, mem)
        rec.append((spk, syn, mem))
    return tuple(torch.stack(r) for r in zip(*rec))


def _make(reset, all_to_all, learn, dtype, n_in=12, n=9, seed=0, stateful=False, backend=None):
    torch.manual_seed(seed)
    sg = sparse_fast_sigmoid(slope=25, bth=0.4)
    fc = nn.Linear(n_in, n, dtype=dtype)
    with torch.no_grad():
        fc.weight.mul_(2.0)
    V = torch.linspace(-0.6, 0.9, n, dtype=dtype) if not all_to_all else None
    dense = _dense(reset, all_to_all, learn, dtype, n, sg, V)
    if all_to_all:
        with torch.no_grad():
            dense.recurrent.weight.mul_(2.0)
    sparse = SparseLinearRSynaptic(n_in, n, alpha=0.75, beta=0.875, spike_grad=sg, reset_mechanism=reset,
                                   all_to_all=all_to_all, V=V if V is not None else 1.0, learn_alpha=learn,
                                   learn_beta=learn, learn_threshold=learn, output=True, dtype=dtype,
                                   stateful=stateful, backend=backend, event_forward=False)
    with torch.no_grad():
        sparse.fc.weight.copy_(fc.weight)
        sparse.fc.bias.copy_(fc.bias)
        if all_to_all:
            sparse.recurrent.weight.copy_(dense.recurrent.weight)
            sparse.recurrent.bias.copy_(dense.recurrent.bias)
    return fc, dense, sparse


def _params(fc, lif):
    ps = [fc.weight, fc.bias]
    ps += [lif.recurrent.weight, lif.recurrent.bias] if lif.all_to_all else [lif.V]
    return ps + [p for p in (lif.alpha, lif.beta, lif.threshold) if isinstance(p, nn.Parameter)]


@pytest.mark.parametrize("backend", ["reference", "compiled"])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("all_to_all", [True, False])
@pytest.mark.parametrize("learn", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("T,B", [(1, 2), (13, 3)])
def test_linear_rsynaptic_matches_snntorch(backend, reset, all_to_all, learn, dtype, T, B):
    fc, dense, sparse = _make(reset, all_to_all, learn, dtype, backend=backend)
    g = torch.Generator().manual_seed(5)
    x = (torch.rand(T, B, 12, generator=g) < 0.4).to(dtype)
    xd, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_d = _run_dense(fc, dense, xd)
    out_s = sparse(xs)
    for a, b in zip(out_d, out_s):
        assert torch.equal(a, b)  # spikes, synaptic current and membrane bit for bit
    w = torch.randn(3, T, B, 9, generator=g, dtype=dtype)
    sum(((o * w[i]).sum() * (1.0, 0.3, 0.5)[i] for i, o in enumerate(out_d))).backward()
    sum(((o * w[i]).sum() * (1.0, 0.3, 0.5)[i] for i, o in enumerate(out_s))).backward()
    for a, b in zip(_params(sparse.fc, sparse) + [xs], _params(fc, dense) + [xd]):
        assert a.grad is not None
        assert rel_err(a.grad, b.grad.reshape(a.shape).to(a.dtype)) < TOL[dtype], a.shape


def test_compiled_backend_runs_the_kernel(monkeypatch):
    if not _kernel_available():
        pytest.skip("compiled backend not built")
    calls = []
    real = rs._backward_loop
    monkeypatch.setattr(rs, "_backward_loop", lambda *a, **k: calls.append(1) or real(*a, **k))
    fc, dense, sparse = _make("subtract", True, True, torch.float64, backend="compiled")
    s, j, m = sparse((torch.rand(6, 2, 12) < 0.4).double())
    (s.sum() + m.sum()).backward()
    assert not calls  # the C++ kernel, not the reference loop
    sparse.backend = "reference"
    s, j, m = sparse((torch.rand(6, 2, 12) < 0.4).double())
    (s.sum() + m.sum()).backward()
    assert calls


@pytest.mark.parametrize("backend", ["reference", "compiled"])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("all_to_all", [True, False])
def test_multi_step_neuron_initial_state(backend, reset, all_to_all):
    torch.manual_seed(2)
    sg = sparse_fast_sigmoid(slope=25, bth=0.5)
    T, B, N = 10, 3, 6
    kw = dict(linear_features=N) if all_to_all else dict(all_to_all=False, V=torch.linspace(-0.5, 0.8, N))
    common = dict(alpha=0.8, beta=0.875, spike_grad=sg, reset_mechanism=reset, learn_alpha=True, learn_beta=True,
                  learn_threshold=True, **kw)
    dense = snn.RSynaptic(**common).double()
    sparse = SparseRSynaptic(step_mode="multi", backend=backend, **common).double()
    sparse.load_state_dict(dense.state_dict())
    if not all_to_all:
        dense.recurrent.V = dense.V
        sparse.recurrent.V = sparse.V
    cur = torch.randn(T, B, N, dtype=torch.float64) * 0.7
    init = [(torch.rand(B, N) < 0.5).double(), torch.randn(B, N, dtype=torch.float64) * 0.3,
            torch.randn(B, N, dtype=torch.float64) + 0.5]
    cd, cs = cur.clone().requires_grad_(), cur.clone().requires_grad_()
    init_d = [s.clone().requires_grad_() for s in init]
    init_s = [s.clone().requires_grad_() for s in init]
    out_d = _run_dense(None, dense, cd, init_d)
    out_s = sparse(cs, *init_s)
    for a, b in zip(out_d, out_s):
        assert torch.equal(a, b)
    w = torch.randn(T, B, N, dtype=torch.float64)
    sum((o * w).sum() for o in out_d).backward()
    sum((o * w).sum() for o in out_s).backward()
    pairs = [(cs, cd)] + list(zip(init_s, init_d)) + [(getattr(sparse, n), getattr(dense, n))
                                                    for n in ("alpha", "beta", "threshold")]
    if all_to_all:
        pairs += [(sparse.recurrent.weight, dense.recurrent.weight), (sparse.recurrent.bias, dense.recurrent.bias)]
    else:
        pairs.append((sparse.V, dense.V))
    for a, b in pairs:
        assert rel_err(a.grad, b.grad.to(a.grad.dtype)) < 1e-10


def test_single_step_is_snntorch():
    sg = sparse_fast_sigmoid(slope=25, bth=0.5)
    torch.manual_seed(0)
    dense = snn.RSynaptic(alpha=0.8, beta=0.875, linear_features=5, spike_grad=sg)
    sparse = SparseRSynaptic(alpha=0.8, beta=0.875, linear_features=5, spike_grad=sg)
    sparse.load_state_dict(dense.state_dict())
    assert isinstance(sparse, snn.RSynaptic)
    x = torch.randn(8, 3, 5)
    for u, v in zip(_run_dense(None, dense, x), _run_dense(None, sparse, x)):
        assert torch.equal(u, v)


@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("backend", ["reference", "compiled"])
def test_chunked_linear_rsynaptic(detach, backend):
    """Chunks with carried state = one whole sequence (and, detached, snnTorch's truncated BPTT)."""
    fc, dense, sparse = _make("subtract", True, True, torch.float64, stateful=True, backend=backend)
    x = (torch.rand(22, 3, 12) < 0.4).double()
    w = torch.randn(22, 3, 9, dtype=torch.float64)
    state = dense.reset_mem()
    total_d, total_s, t0 = 0, 0, 0
    for c in (8, 1, 13):
        out_d = _run_dense(fc, dense, x[t0:t0 + c], state)
        state = tuple(o[-1] for o in out_d)
        out_s = sparse(x[t0:t0 + c])
        for a, b in zip(out_d, out_s):
            assert torch.equal(a, b)
        ld = (out_d[0] * w[t0:t0 + c]).sum() + (out_d[2] * w[t0:t0 + c]).sum()
        ls = (out_s[0] * w[t0:t0 + c]).sum() + (out_s[2] * w[t0:t0 + c]).sum()
        if detach:
            ld.backward()
            ls.backward()
            state = tuple(s.detach() for s in state)
            sparse.detach_hidden()
        else:
            total_d, total_s = total_d + ld, total_s + ls
        t0 += c
    if not detach:
        total_d.backward()
        total_s.backward()
    for a, b in zip(_params(sparse.fc, sparse), _params(fc, dense)):
        assert rel_err(a.grad, b.grad.reshape(a.shape).to(a.dtype)) < 1e-10


def test_hidden_state_methods():
    fc, dense, sparse = _make("zero", False, False, torch.float64, stateful=True)
    x = (torch.rand(5, 2, 12) < 0.5).double()
    sparse(x)
    assert sparse.mem.abs().sum() > 0 and sparse.syn.abs().sum() > 0
    snn.RSynaptic.reset_hidden()  # snnTorch's class-wide reset reaches the fused layer
    assert sparse.mem.abs().sum() == 0 and sparse.syn.abs().sum() == 0 and sparse.spk.abs().sum() == 0
    sparse(x)
    snn.utils.reset(nn.Sequential(sparse))
    assert sparse.mem.abs().sum() == 0
    a = sparse(x)[2]
    sparse.reset_hidden()
    assert torch.equal(sparse(x)[2], a)  # fresh state again: the same sequence
    neuron = SparseRSynaptic(alpha=0.8, beta=0.5, linear_features=4, step_mode="multi", stateful=True)
    full = neuron(torch.rand(6, 2, 4) * 2)
    neuron.reset_mem()  # zeros for spk, syn and mem (snnTorch's class-wide reset_hidden keeps spk)
    x2 = torch.rand(6, 2, 4) * 2
    whole = SparseRSynaptic(alpha=0.8, beta=0.5, linear_features=4, step_mode="multi")
    whole.load_state_dict(neuron.state_dict())
    ref = whole(x2)
    parts = [neuron(x2[:2]), neuron(x2[2:])]
    for i in range(3):
        assert torch.equal(torch.cat([p[i] for p in parts]), ref[i])
    assert full[0].shape == (6, 2, 4)


@pytest.mark.parametrize("backend", ["reference", "compiled"])
def test_gradcheck_rsynaptic(backend):
    """gradcheck where the spikes are constant (no entry in the window, threshold out of reach):
    the recurrent weights still act through the initial spikes ``spk0`` at step 0."""
    sg = sparse_fast_sigmoid(slope=5, bth=1e-9)
    torch.manual_seed(0)
    N = 4
    f64 = dict(dtype=torch.float64)
    cur = (torch.randn(5, 2, N, **f64) * 0.3).requires_grad_()
    W = (torch.randn(N, N, **f64) * 0.3).requires_grad_()
    b = (torch.randn(N, **f64) * 0.1).requires_grad_()
    v = torch.randn(N, **f64, requires_grad=True)
    j0, m0 = torch.randn(2, N, **f64).requires_grad_(), torch.randn(2, N, **f64).requires_grad_()
    s0 = torch.rand(2, N, **f64).requires_grad_()
    alpha = torch.tensor(0.7, **f64, requires_grad=True)
    beta = torch.tensor([0.8, 0.5, 0.9, 0.3], **f64, requires_grad=True)
    thr = torch.tensor(50.0, **f64)
    for mode in (0, 1, 2):
        def f(c, w, bb, jj, m, s, al, be):
            cfg = LIFConfig(surrogate=sg, reset_mode=mode, backend=backend)
            _, syn, mem = rsynaptic_sequence(c, w, bb, None, al, be, thr, cfg, jj, m, s)
            return syn, mem
        assert torch.autograd.gradcheck(f, (cur, W, b, j0, m0, s0, alpha, beta))

        def g(c, vv, jj, m, s, al, be):
            cfg = LIFConfig(surrogate=sg, reset_mode=mode, backend=backend)
            return rsynaptic_sequence(c, None, None, vv, al, be, thr, cfg, jj, m, s)[1:]
        assert torch.autograd.gradcheck(g, (cur, v, j0, m0, s0, alpha, beta))


def test_dense_switch_same_gradients(monkeypatch):
    """Above 1/8 active the compiled backend uses the reference loop: same gradients as the kernel."""
    grads = []
    for frac in (2.0, 0.0):
        monkeypatch.setattr(rs, "_KERNEL_MAX_FRACTION", frac)
        monkeypatch.setattr(rs, "_DENSE_STEP_FRACTION", 0.0 if frac == 0.0 else 1.0 / 8)
        fc, dense, sparse = _make("zero", True, True, torch.float64, backend="compiled")
        x = (torch.rand(15, 3, 12, generator=torch.Generator().manual_seed(0)) < 0.4).double()
        s, j, m = sparse(x)
        (s.sum() + m.sum() + j.sum()).backward()
        grads.append([p.grad.clone() for p in sparse.parameters()])
    for a, b in zip(*grads):
        assert rel_err(a, b) < 1e-12


def test_registered_sparsify_desparsify():
    assert snn.SparseRSynaptic is SparseRSynaptic and snn.SparseLinearRSynaptic is SparseLinearRSynaptic
    torch.manual_seed(0)
    sg = sparse_fast_sigmoid(slope=25, bth=0.4)
    net = nn.Sequential(nn.Linear(10, 8),
                        snn.RSynaptic(alpha=0.8, beta=0.875, linear_features=8, init_hidden=True, spike_grad=sg),
                        nn.Linear(8, 4),
                        snn.RSynaptic(alpha=0.7, beta=0.875, all_to_all=False, V=torch.linspace(-1, 1, 4),
                                      init_hidden=True, output=True, spike_grad=sg))
    net[3].recurrent.V = net[3].V
    with torch.no_grad():
        net[0].weight.mul_(3)
        net[2].weight.mul_(3)
    s = sps.sparsify(net, event_forward=False)
    assert isinstance(s[0], SparseLinearRSynaptic) and isinstance(s[1], SparseLinearRSynaptic)
    assert s[0].all_to_all and not s[1].all_to_all
    x = (torch.rand(12, 3, 10) < 0.4).float()
    snn.utils.reset(net)
    rec = [net(x[t]) for t in range(12)]
    ss, js, ms = s(x)
    for i, out in enumerate((ss, js, ms)):
        assert torch.equal(torch.stack([r[i] for r in rec]), out)
    back = sps.desparsify(s)
    assert type(back[1]) is snn.RSynaptic and type(back[3]) is snn.RSynaptic
    assert torch.equal(back[1].recurrent.weight, net[1].recurrent.weight)
    snn.utils.reset(back)
    rec2 = [back(x[t]) for t in range(12)]
    assert torch.equal(torch.stack([r[2] for r in rec2]), ms)

    class Own(nn.Module):  # a model with its own loop: single-step neurons swapped in place
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(10, 8)
            self.lif = snn.RSynaptic(alpha=0.8, beta=0.875, linear_features=8, spike_grad=sg)

    own = sps.sparsify(Own())
    assert type(own.lif) is SparseRSynaptic and own.lif.step_mode == "single"
    assert type(sps.desparsify(own).lif) is snn.RSynaptic

    class MyRSynaptic(snn.RSynaptic):
        pass

    with pytest.raises(TypeError, match="MyRSynaptic.*subclass of snn.RSynaptic"):
        sps.sparsify(nn.Sequential(nn.Linear(3, 3), MyRSynaptic(alpha=0.5, beta=0.5, linear_features=3,
                                                                 init_hidden=True)))
    with pytest.raises(ValueError, match="RSynaptic.*inhibition"):
        sps.sparsify(nn.Sequential(nn.Linear(3, 3), snn.RSynaptic(alpha=0.5, beta=0.5, linear_features=3,
                                                                   init_hidden=True, inhibition=True)))


@pytest.mark.parametrize("all_to_all", [True, False])
def test_nir_and_checkpoint_rsynaptic(all_to_all):
    pytest.importorskip("nir")
    pytest.importorskip("nirtorch")
    from snntorch_sparse.checkpoint import (to_dense_optimizer_state, to_dense_state_dict,
                                            to_sparse_state_dict)
    from snntorch_sparse.nir import export_to_nir, import_from_nir
    torch.manual_seed(0)
    sg = sparse_fast_sigmoid(slope=25, bth=0.4)
    kw = dict(linear_features=8) if all_to_all else dict(all_to_all=False, V=torch.linspace(-0.5, 0.5, 8))
    net = nn.Sequential(nn.Linear(10, 8), snn.RSynaptic(alpha=0.8, beta=0.875, init_hidden=True, spike_grad=sg,
                                                        learn_alpha=True, **kw),
                        nn.Linear(8, 4), snn.Leaky(beta=0.875, init_hidden=True, output=True, spike_grad=sg))
    if not all_to_all:
        net[1].recurrent.V = net[1].V
    with torch.no_grad():
        net[0].weight.mul_(3)
    s = sps.sparsify(net, event_forward=False)
    d = sps.desparsify(s)
    d.load_state_dict(to_dense_state_dict(s))
    s.load_state_dict(to_sparse_state_dict(s, net.state_dict()))
    opt = torch.optim.Adam(s.parameters())
    s(torch.rand(3, 2, 10))[0].sum().backward()
    opt.step()
    torch.optim.Adam(d.parameters()).load_state_dict(to_dense_optimizer_state(s, opt.state_dict()))
    g = export_to_nir(s, torch.rand(5, 2, 10))
    back = import_from_nir(g, sparse=True, spike_grad=sg, event_forward=False)
    assert isinstance(back[0], SparseLinearRSynaptic) and back[0].all_to_all == all_to_all
    x = (torch.rand(9, 3, 10) < 0.4).float()
    a, b = s(x), back(x)
    assert torch.equal(a[0], b[0])
    torch.testing.assert_close(a[1], b[1], rtol=1e-5, atol=1e-5)


def test_argument_errors():
    with pytest.raises(ValueError, match="alpha must be in"):
        SparseLinearRSynaptic(3, 3, alpha=1.5, beta=0.5)
    with pytest.raises(ValueError, match="alpha must be in"):
        SparseRSynaptic(alpha=-0.1, beta=0.5, linear_features=3)
    with pytest.raises(ValueError, match="step_mode"):
        SparseRSynaptic(alpha=0.5, beta=0.5, linear_features=3, step_mode="many")
    with pytest.raises(ValueError, match="conv2d_channels"):
        SparseRSynaptic(alpha=0.5, beta=0.5, conv2d_channels=2, kernel_size=3, step_mode="multi")
    n = SparseRSynaptic(alpha=0.5, beta=0.5, linear_features=3, step_mode="multi", init_hidden=True)
    with pytest.raises(TypeError, match="init_hidden"):
        n(torch.rand(4, 2, 3), mem=torch.zeros(2, 3))
    layer = SparseLinearRSynaptic(3, 4, alpha=0.5, beta=0.5)
    with pytest.raises(ValueError, match="syn"):
        layer(torch.rand(5, 2, 3), syn=torch.zeros(3, 7))


@pytest.mark.filterwarnings("ignore:snntorch_sparse")
@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(all_to_all=st.booleans(), T=st.integers(1, 9), B=st.integers(1, 3), n_in=st.integers(1, 6),
       n=st.integers(1, 6), reset=st.sampled_from(["subtract", "zero", "none"]),
       alpha=st.sampled_from([0.0, 0.5, 0.875, 1.0]), beta=st.sampled_from([0.0, 0.5, 0.875, 1.0]),
       threshold=st.sampled_from([0.25, 1.0, 2.0]), bth=st.sampled_from([0.05, 0.4, 5.0]),
       gain=st.sampled_from([1.0, 3.0, 8.0]), learn=st.booleans(), cut=st.integers(1, 9),
       backend=st.sampled_from(["reference", "compiled"]), seed=st.integers(0, 2 ** 16))
def test_fuzz_rsynaptic(all_to_all, T, B, n_in, n, reset, alpha, beta, threshold, bth, gain, learn, cut, backend,
                        seed):
    """Chunks of ``cut`` steps with carried state vs snnTorch's loop over the whole sequence."""
    dtype = torch.float64
    torch.manual_seed(seed)
    sg = sparse_fast_sigmoid(slope=25, bth=bth)
    fc = nn.Linear(n_in, n, dtype=dtype)
    with torch.no_grad():
        fc.weight.mul_(gain)
    V = torch.linspace(-1.0, 1.5, n, dtype=dtype)
    common = dict(alpha=alpha, beta=beta, threshold=threshold, spike_grad=sg, reset_mechanism=reset,
                  learn_alpha=learn, learn_beta=learn, learn_threshold=learn)
    kw = dict(linear_features=n) if all_to_all else dict(all_to_all=False, V=V)
    dense = snn.RSynaptic(**common, **kw).to(dtype)
    if all_to_all:
        with torch.no_grad():
            dense.recurrent.weight.mul_(gain)
    else:
        dense.recurrent.V = dense.V
    sparse = SparseLinearRSynaptic(n_in, n, all_to_all=all_to_all, V=V, output=True, dtype=dtype, backend=backend,
                                   stateful=True, event_forward=False, **common)
    with torch.no_grad():
        sparse.fc.weight.copy_(fc.weight)
        sparse.fc.bias.copy_(fc.bias)
        if all_to_all:
            sparse.recurrent.weight.copy_(dense.recurrent.weight)
            sparse.recurrent.bias.copy_(dense.recurrent.bias)
    g = torch.Generator().manual_seed(seed + 1)
    x = (torch.rand(T, B, n_in, generator=g) < 0.4).to(dtype)
    w = torch.randn(T, B, n, generator=g, dtype=dtype)
    xd, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_d = _run_dense(fc, dense, xd)
    chunks = [sparse(xs[t0:t0 + cut]) for t0 in range(0, T, cut)]
    out_s = [torch.cat([c[i] for c in chunks]) for i in range(3)]
    assert torch.equal(out_d[0], out_s[0])
    for a, b in zip(out_d[1:], out_s[1:]):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)
    sum((o * w).sum() for o in out_d).backward()
    sum((o * w).sum() for o in out_s).backward()
    for a, b in zip(_params(sparse.fc, sparse) + [xs], _params(fc, dense) + [xd]):
        ga = a.grad if a.grad is not None else torch.zeros_like(a)
        gb = b.grad if b.grad is not None else torch.zeros_like(b)
        assert rel_err(ga, gb.reshape(ga.shape).to(ga.dtype)) < 1e-10


@pytest.mark.parametrize("kind", ["rleaky", "rsynaptic"])
def test_checkpoint_learnable_one_to_one_loads_strictly(kind):
    """snnTorch registers a learnable one-to-one ``V`` twice (``V`` and ``recurrent.V``): the key
    maps carry both, so checkpoints move between the forms with ``strict=True``."""
    from snntorch_sparse.checkpoint import to_dense_state_dict, to_sparse_state_dict
    kw = dict(all_to_all=False, V=torch.linspace(-0.5, 0.5, 6), init_hidden=True)
    neuron = snn.RLeaky(beta=0.875, **kw) if kind == "rleaky" else snn.RSynaptic(alpha=0.75, beta=0.875, **kw)
    net = nn.Sequential(nn.Linear(4, 6), neuron)
    assert "1.recurrent.V" in net.state_dict()
    s = sps.sparsify(net)
    with torch.no_grad():
        s[0].V.mul_(2)
    dense = sps.desparsify(s)
    dense.load_state_dict(to_dense_state_dict(s), strict=True)
    assert torch.equal(dense[1].V, s[0].V)
    s.load_state_dict(to_sparse_state_dict(s, net.state_dict()), strict=True)
    assert torch.equal(s[0].V, net[1].V)
