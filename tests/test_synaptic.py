"""SparseSynaptic / SparseLinearSynaptic vs snnTorch's Synaptic with the same clamped surrogate."""
import pytest
import snntorch as snn
import torch
from torch import nn

import snntorch_sparse as sps
from snntorch_sparse import SparseLinearSynaptic, SparseSynaptic
from snntorch_sparse.surrogate import sparse_fast_sigmoid

from helpers import rel_err

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def _dense_run(fc, lif, x, syn0=None, mem0=None):
    syn = lif.syn if syn0 is None else syn0
    mem = lif.mem if mem0 is None else mem0
    if syn0 is None:
        syn, mem = lif.reset_mem()
    spk_r, syn_r, mem_r = [], [], []
    for t in range(x.shape[0]):
        cur = fc(x[t]) if fc is not None else x[t]
        spk, syn, mem = lif(cur, syn, mem)
        spk_r.append(spk)
        syn_r.append(syn)
        mem_r.append(mem)
    return torch.stack(spk_r), torch.stack(syn_r), torch.stack(mem_r)


def _make(reset, learn, dtype, backend, n_in=14, n=9, seed=0, stateful=False):
    torch.manual_seed(seed)
    sg = sparse_fast_sigmoid(slope=25, bth=0.4)
    fc = nn.Linear(n_in, n, dtype=dtype)
    with torch.no_grad():
        fc.weight.mul_(2.5)
    dense = snn.Synaptic(alpha=0.75, beta=0.875, spike_grad=sg, reset_mechanism=reset,
                         learn_alpha=learn, learn_beta=learn, learn_threshold=learn).to(dtype)
    sparse = SparseLinearSynaptic(n_in, n, alpha=0.75, beta=0.875, spike_grad=sg, reset_mechanism=reset,
                                  learn_alpha=learn, learn_beta=learn, learn_threshold=learn, output=True,
                                  backend=backend, dtype=dtype, stateful=stateful, event_forward=False)
    with torch.no_grad():
        sparse.fc.weight.copy_(fc.weight)
        sparse.fc.bias.copy_(fc.bias)
    return fc, dense, sparse


def _params(fc, lif):
    ps = [fc.weight, fc.bias]
    for name in ("alpha", "beta", "threshold"):
        p = getattr(lif, name)
        if isinstance(p, nn.Parameter):
            ps.append(p)
    return ps


@pytest.mark.parametrize("backend", ["reference", "compiled"])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("learn", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("T,B", [(1, 1), (17, 4)])
def test_linear_synaptic_matches_snntorch(backend, reset, learn, dtype, T, B):
    fc, dense, sparse = _make(reset, learn, dtype, backend)
    g = torch.Generator().manual_seed(2)
    x = (torch.rand(T, B, 14, generator=g) < 0.4).to(dtype)
    xd, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
    sd, jd, md = _dense_run(fc, dense, xd)
    ss, js, ms = sparse(xs)
    assert torch.equal(sd, ss)
    if dtype == torch.float64:
        assert torch.equal(jd, js) and torch.equal(md, ms)
    else:
        torch.testing.assert_close(ms, md, rtol=1e-6, atol=1e-6)
    w = torch.randn(T, B, 9, generator=g, dtype=dtype)
    ((sd * w).sum() + (md * w).sum() + 0.3 * (jd * w).sum()).backward()
    ((ss * w).sum() + (ms * w).sum() + 0.3 * (js * w).sum()).backward()
    for a, b in zip(_params(sparse.fc, sparse) + [xs], _params(fc, dense) + [xd]):
        assert a.grad is not None
        assert rel_err(a.grad, b.grad.reshape(a.shape).to(a.dtype)) < TOL[dtype], a.shape


@pytest.mark.parametrize("backend", ["reference", "compiled"])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_multi_step_neuron_with_initial_state(backend, reset):
    """Whole-sequence SparseSynaptic from given (syn, mem), gradients to the states too."""
    torch.manual_seed(4)
    sg = sparse_fast_sigmoid(slope=25, bth=0.5)
    T, B, N = 11, 3, 6
    cur = torch.randn(T, B, N, dtype=torch.float64) * 0.6
    s0, m0 = torch.randn(B, N, dtype=torch.float64) * 0.5, torch.randn(B, N, dtype=torch.float64) + 0.5
    dense = snn.Synaptic(alpha=0.75, beta=0.875, spike_grad=sg, reset_mechanism=reset, learn_alpha=True,
                         learn_beta=True, learn_threshold=True).double()
    sparse = SparseSynaptic(alpha=0.75, beta=0.875, spike_grad=sg, reset_mechanism=reset, learn_alpha=True,
                            learn_beta=True, learn_threshold=True, step_mode="multi", backend=backend).double()
    cd, cs = cur.clone().requires_grad_(), cur.clone().requires_grad_()
    sd0, ss0 = s0.clone().requires_grad_(), s0.clone().requires_grad_()
    md0, ms0 = m0.clone().requires_grad_(), m0.clone().requires_grad_()
    sd, jd, md = _dense_run(None, dense, cd, sd0, md0)
    ss, js, ms = sparse(cs, ss0, ms0)
    assert torch.equal(sd, ss) and torch.equal(jd, js) and torch.equal(md, ms)
    w = torch.randn(T, B, N, dtype=torch.float64)
    ((sd * w).sum() + (md * w).sum()).backward()
    ((ss * w).sum() + (ms * w).sum()).backward()
    for a, b in ((cs, cd), (ss0, sd0), (ms0, md0), (sparse.alpha, dense.alpha), (sparse.beta, dense.beta),
                 (sparse.threshold, dense.threshold)):
        assert rel_err(a.grad, b.grad.to(a.grad.dtype)) < 1e-10


def test_single_step_is_snntorch():
    sg = sparse_fast_sigmoid(slope=25, bth=0.5)
    dense = snn.Synaptic(alpha=0.75, beta=0.875, spike_grad=sg).double()
    sparse = SparseSynaptic(alpha=0.75, beta=0.875, spike_grad=sg).double()
    assert isinstance(sparse, snn.Synaptic)
    x = torch.randn(8, 3, 5, dtype=torch.float64)
    a = _dense_run(None, dense, x)
    b = _dense_run(None, sparse, x)
    for u, v in zip(a, b):
        assert torch.equal(u, v)


@pytest.mark.parametrize("detach", [True, False])
def test_chunked_linear_synaptic(detach):
    """Chunks with carried (syn, mem): same outputs and (truncated-BPTT) gradients as snnTorch."""
    fc, dense, sparse = _make("subtract", True, torch.float64, None, stateful=True)
    x = (torch.rand(25, 3, 14) < 0.4).double()
    w = torch.randn(25, 3, 9, dtype=torch.float64)
    syn, mem = dense.reset_mem()
    total_d, total_s, t0 = 0, 0, 0
    for c in (9, 1, 15):
        sp, me = [], []
        for t in range(t0, t0 + c):
            s, syn, mem = dense(fc(x[t]), syn, mem)
            sp.append(s)
            me.append(mem)
        ld = (torch.stack(sp) * w[t0:t0 + c]).sum() + (torch.stack(me) * w[t0:t0 + c]).sum()
        ss, js, ms = sparse(x[t0:t0 + c])
        assert torch.equal(torch.stack(sp), ss) and torch.equal(torch.stack(me), ms)
        ls = (ss * w[t0:t0 + c]).sum() + (ms * w[t0:t0 + c]).sum()
        if detach:
            ld.backward()
            ls.backward()
            syn, mem = syn.detach(), mem.detach()
            snn.Synaptic.detach_hidden()
            assert sparse.mem.grad_fn is None
        else:
            total_d, total_s = total_d + ld, total_s + ls
        t0 += c
    if not detach:
        total_d.backward()
        total_s.backward()
    for a, b in zip(_params(sparse.fc, sparse), _params(fc, dense)):
        assert rel_err(a.grad, b.grad.reshape(a.shape).to(a.dtype)) < 1e-10


def test_registered_in_snntorch_namespace():
    assert snn.SparseSynaptic is SparseSynaptic and snn.SparseLinearSynaptic is SparseLinearSynaptic
    assert sps.SparseSynaptic is SparseSynaptic


def test_gradcheck_decay_scan():
    from snntorch_sparse.synaptic import decay_scan
    for backend in ("reference", "compiled"):
        cur = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
        alpha = torch.tensor([0.3, 0.6, 0.9], dtype=torch.float64, requires_grad=True)
        s0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda c, a, s: decay_scan(c, a, backend, s), (cur, alpha, s0))


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_sparsify_desparsify_synaptic_sequential(reset):
    """nn.Linear + snn.Synaptic fuse into SparseLinearSynaptic; a lone Synaptic becomes multi-step."""
    torch.manual_seed(0)
    sg = sparse_fast_sigmoid(slope=25, bth=0.4)
    net = nn.Sequential(nn.Linear(10, 8), snn.Synaptic(alpha=0.7, beta=0.875, spike_grad=sg, init_hidden=True,
                                                        reset_mechanism=reset),
                        nn.Linear(8, 4), snn.Leaky(beta=0.875, spike_grad=sg, init_hidden=True, output=True)).double()
    with torch.no_grad():
        net[0].weight.mul_(3)
    s = sps.sparsify(net, event_forward=False)
    assert isinstance(s[0], SparseLinearSynaptic)
    x = (torch.rand(12, 3, 10) < 0.4).double()
    snn.utils.reset(net)
    rec = [net(x[t]) for t in range(12)]
    sd = torch.stack([r[0] for r in rec])
    md = torch.stack([r[1] for r in rec])
    ss, ms = s(x)
    assert torch.equal(sd, ss) and torch.equal(md, ms)
    md.sum().backward()
    ms.sum().backward()
    assert rel_err(s[0].fc.weight.grad, net[0].weight.grad) < 1e-10
    back = sps.desparsify(s)
    assert type(back[1]) is snn.Synaptic and back[1].reset_mechanism == reset
    assert torch.equal(back[0].weight, net[0].weight)
    lone = sps.sparsify(nn.Sequential(snn.Synaptic(alpha=0.7, beta=0.9, init_hidden=True)))
    assert isinstance(lone[0], SparseSynaptic) and lone[0].multi_step


def test_sparsify_custom_forward_synaptic():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 4)
            self.lif = snn.Synaptic(alpha=0.7, beta=0.9)

        def forward(self, x):
            syn, mem = self.lif.reset_mem()
            out = []
            for t in range(x.shape[0]):
                spk, syn, mem = self.lif(self.fc(x[t]), syn, mem)
                out.append(spk)
            return torch.stack(out)

    net = Net()
    s = sps.sparsify(net)
    assert type(s.lif) is SparseSynaptic and not s.lif.multi_step
    assert s(torch.rand(6, 2, 5)).shape == (6, 2, 4)
    assert type(sps.desparsify(s).lif) is snn.Synaptic


def test_nir_roundtrip_synaptic():
    pytest.importorskip("nir")
    pytest.importorskip("nirtorch")
    from snntorch_sparse.nir import export_to_nir, import_from_nir
    torch.manual_seed(0)
    sg = sparse_fast_sigmoid(slope=25, bth=0.4)
    net = nn.Sequential(nn.Linear(10, 8), snn.Synaptic(alpha=0.75, beta=0.875, init_hidden=True, spike_grad=sg),
                        nn.Linear(8, 4), snn.Leaky(beta=0.875, init_hidden=True, output=True, spike_grad=sg))
    with torch.no_grad():
        net[0].weight.mul_(3)
    s = sps.sparsify(net, event_forward=False)
    g = export_to_nir(s, torch.rand(5, 2, 10))
    assert type(g.nodes["1"]).__name__ == "CubaLIF"
    back = import_from_nir(g, sparse=True, spike_grad=sg, event_forward=False)
    assert isinstance(back[0], SparseLinearSynaptic)
    x = (torch.rand(9, 3, 10) < 0.4).float()
    a, b = s(x), back(x)
    assert torch.equal(a[0], b[0])
    torch.testing.assert_close(a[1], b[1], rtol=1e-5, atol=1e-5)


def test_checkpoint_keys_synaptic():
    from snntorch_sparse.checkpoint import to_dense_state_dict, to_sparse_state_dict
    net = nn.Sequential(nn.Linear(10, 8), snn.Synaptic(alpha=0.7, beta=0.875, init_hidden=True, learn_alpha=True),
                        nn.Linear(8, 4), snn.Leaky(beta=0.875, init_hidden=True, output=True))
    s = sps.sparsify(net)
    dense = sps.desparsify(s)
    dense.load_state_dict(to_dense_state_dict(s))
    s.load_state_dict(to_sparse_state_dict(s, dense.state_dict()))
    assert torch.equal(dense[1].alpha, s[0].alpha)
