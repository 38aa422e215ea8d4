"""State carried across multi-step calls: chunked sequences and truncated BPTT vs snnTorch."""
import pytest
import snntorch as snn
import torch

from snntorch_sparse import SparseLeaky, SparseLinearLeaky
from snntorch_sparse.surrogate import sparse_fast_sigmoid

from helpers import dense_params, make_pair, rel_err, sparse_params

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def _dense_chunks(dense, x, chunks, detach, loss_w):
    """snnTorch's loop over the whole sequence; the loss of each chunk is backpropagated
    on its own, with the hidden state detached between chunks (truncated BPTT) or not."""
    mems = [lif.reset_mem() for _, lif in dense]
    outs, loss_total = [], 0
    t0 = 0
    for c in chunks:
        rec = []
        for t in range(t0, t0 + c):
            inp = x[t]
            for k, (fc, lif) in enumerate(dense):
                spk, mems[k] = lif(fc(inp), mems[k])
                inp = spk
            rec.append((spk, mems[-1]))
        spk = torch.stack([s for s, _ in rec])
        mem = torch.stack([m for _, m in rec])
        outs.append((spk.detach(), mem.detach()))
        loss = (spk * loss_w[t0:t0 + c]).sum() + (mem * loss_w[t0:t0 + c]).sum()
        if detach:
            loss.backward()
            mems = [m.detach() for m in mems]
        else:
            loss_total = loss_total + loss
        t0 += c
    if not detach:
        loss_total.backward()
    return outs


def _sparse_chunks(sparse, x, chunks, detach, loss_w):
    for layer in sparse:
        layer.stateful = True
        layer.reset_hidden()
    outs, loss_total, t0 = [], 0, 0
    for c in chunks:
        inp = x[t0:t0 + c]
        for layer in sparse:
            spk, mem = layer(inp)
            inp = spk
        outs.append((spk.detach(), mem.detach()))
        loss = (spk * loss_w[t0:t0 + c]).sum() + (mem * loss_w[t0:t0 + c]).sum()
        if detach:
            loss.backward()
            for layer in sparse:
                layer.detach_hidden()
        else:
            loss_total = loss_total + loss
        t0 += c
    if not detach:
        loss_total.backward()
    return outs


@pytest.mark.parametrize("backend", ["reference", "compiled"])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_chunked_linear_leaky_matches_snntorch(backend, reset, detach, dtype):
    T, B, sizes, chunks = 24, 3, [20, 12, 6], [7, 1, 10, 6]
    learn = dtype == torch.float64
    dense, sparse = make_pair(sizes, 0.875, 1.0, 0.4, reset, dtype=dtype, learn_beta=learn,
                              learn_threshold=learn, backend=backend, event_forward=False)
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(T, B, sizes[0], generator=g) < 0.3).to(dtype)
    w = torch.randn(T, B, sizes[-1], generator=g, dtype=dtype)
    xd, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
    od = _dense_chunks(dense, xd, chunks, detach, w)
    os_ = _sparse_chunks(sparse, xs, chunks, detach, w)
    for (sd, md), (ss, ms) in zip(od, os_):
        assert torch.equal(sd, ss)
        torch.testing.assert_close(ms, md, rtol=1e-13 if dtype == torch.float64 else 1e-6, atol=1e-12)
    for a, b in zip(sparse_params(sparse) + [xs], dense_params(dense) + [xd]):
        assert rel_err(a.grad, b.grad.reshape(a.shape).to(a.dtype)) < TOL[dtype], (a.shape,)


def test_chunks_without_detach_equal_whole_sequence():
    """A stateful layer fed in chunks (no detach) gives the whole-sequence outputs and gradients."""
    torch.manual_seed(0)
    sg = sparse_fast_sigmoid(slope=25, bth=0.4)
    a = SparseLinearLeaky(16, 10, beta=0.875, spike_grad=sg, output=True, event_forward=False,
                          dtype=torch.float64, learn_beta=True)
    b = SparseLinearLeaky(16, 10, beta=0.875, spike_grad=sg, output=True, event_forward=False,
                          dtype=torch.float64, learn_beta=True, stateful=True)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        a.fc.weight.mul_(3)
        b.fc.weight.copy_(a.fc.weight)
    x = (torch.rand(30, 4, 16) < 0.3).double()
    spk, mem = a(x)
    parts = [b(x[i:i + 10]) for i in range(0, 30, 10)]
    spk2 = torch.cat([p[0] for p in parts])
    mem2 = torch.cat([p[1] for p in parts])
    assert torch.equal(spk, spk2) and torch.equal(mem, mem2)
    (mem.sum() + spk.sum()).backward()
    (mem2.sum() + spk2.sum()).backward()
    for p, q in zip(a.parameters(), b.parameters()):
        assert rel_err(q.grad, p.grad) < 1e-12
    assert torch.equal(b.mem, mem2[-1].detach())


def test_default_is_fresh_state_and_reset():
    layer = SparseLinearLeaky(8, 5, beta=0.9, bth=0.4, output=True)
    x = (torch.rand(6, 2, 8) < 0.5).float() * 3
    s1, m1 = layer(x)
    s2, m2 = layer(x)
    assert torch.equal(m1, m2)  # default: every call starts from zero
    layer.stateful = True
    s3, m3 = layer(x)
    s4, m4 = layer(x)
    assert torch.equal(m3, m1) and not torch.equal(m4, m1)
    layer.reset_hidden()
    s5, m5 = layer(x)
    assert torch.equal(m5, m1)
    # a new batch size starts fresh
    s6, m6 = layer(x[:, :1])
    s7, m7 = layer(x[:, :1])
    assert not torch.equal(m7, m1[:, :1])


def test_utils_reset_and_detach_reach_fused_layers():
    import snntorch.utils as su
    net = torch.nn.Sequential(SparseLinearLeaky(8, 5, beta=0.9, bth=0.4, stateful=True),
                              SparseLeaky(beta=0.9, bth=0.4, step_mode="multi", init_hidden=True,
                                          stateful=True))
    x = (torch.rand(6, 2, 8) < 0.5).float() * 3
    net(x)
    assert net[0].mem.grad_fn is not None or not net[0].mem.requires_grad
    assert net[0].mem.abs().sum() > 0
    snn.Leaky.detach_hidden()
    assert net[0].mem.grad_fn is None and net[1].mem.grad_fn is None
    su.reset(net)
    assert net[0].mem.abs().sum() == 0 and net[1].mem.abs().sum() == 0


@pytest.mark.parametrize("backend", ["reference", "compiled"])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_explicit_initial_membrane_gradient(backend, reset):
    """``mem`` passed to a multi-step SparseLeaky: outputs and ∂L/∂mem0, ∂β, ∂θ vs snnTorch."""
    torch.manual_seed(1)
    sg = sparse_fast_sigmoid(slope=25, bth=0.5)
    T, B, N = 12, 3, 7
    cur = torch.randn(T, B, N, dtype=torch.float64) * 0.8
    m0 = torch.randn(B, N, dtype=torch.float64) + 0.6
    dense = snn.Leaky(beta=0.875, spike_grad=sg, reset_mechanism=reset, learn_beta=True,
                      learn_threshold=True).double()
    sparse = SparseLeaky(beta=0.875, spike_grad=sg, reset_mechanism=reset, learn_beta=True,
                         learn_threshold=True, step_mode="multi", backend=backend).double()
    cd, cs = cur.clone().requires_grad_(), cur.clone().requires_grad_()
    md0, ms0 = m0.clone().requires_grad_(), m0.clone().requires_grad_()
    mem = md0
    spks, mems = [], []
    for t in range(T):
        s, mem = dense(cd[t], mem)
        spks.append(s)
        mems.append(mem)
    sd, mdd = torch.stack(spks), torch.stack(mems)
    ss, mss = sparse(cs, ms0)
    assert torch.equal(sd, ss) and torch.equal(mdd, mss)
    w = torch.randn(T, B, N, dtype=torch.float64)
    ((sd * w).sum() + (mdd * w).sum()).backward()
    ((ss * w).sum() + (mss * w).sum()).backward()
    for a, b in ((cs, cd), (ms0, md0), (sparse.beta, dense.beta), (sparse.threshold, dense.threshold)):
        assert rel_err(a.grad, b.grad.to(a.grad.dtype)) < 1e-10
    assert torch.equal(sparse.mem, mss[-1].detach())


def test_deepcopied_stateful_layer_reached_by_class_wide_detach():
    import copy
    layer = copy.deepcopy(SparseLinearLeaky(8, 5, beta=0.9, bth=0.4, stateful=True))
    x = (torch.rand(6, 2, 8) < 0.5).float() * 3
    layer(x)
    assert layer.mem.requires_grad
    snn.Leaky.detach_hidden()
    assert not layer.mem.requires_grad
    snn.Leaky.reset_hidden()
    assert layer.mem.abs().sum() == 0


def test_state_dict_unchanged_by_state_buffers():
    a = SparseLinearLeaky(8, 5, beta=0.9, stateful=True)
    a((torch.rand(4, 2, 8) < 0.5).float())
    assert set(a.state_dict()) == {"fc.weight", "fc.bias", "beta", "threshold"}
