"""Regression tests from a review: config reuse, double backward, int beta,
functional input checks, multi-step state, buffer reuse under a held storage."""
import copy

import pytest
import snntorch as snn
import torch
from torch import nn

from helpers import make_pair, run_dense
from snntorch_sparse import LIFConfig, SparseLeaky, SparseLinearLeaky, TimeDistributed, sparse_lif
from snntorch_sparse.fused_cpu import SpikeSets
from snntorch_sparse.surrogate import sparse_fast_sigmoid


def _spikes(seed, shape=(10, 4, 20), p=0.3, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < p).to(dtype)


# --- 1. one LIFConfig reused across calls ------------------------------------------------

@pytest.mark.parametrize("backend", [None, "reference"])
@pytest.mark.parametrize("event_forward", [None, True, False])
def test_reused_config_gives_fresh_config_and_dense_gradients(backend, event_forward):
    dense, sparse = make_pair([20, 30, 5], beta=0.9, threshold=1.0, bth=0.4, gain=4.0)
    sg = sparse[0].surrogate
    params = [p for layer in sparse for p in (layer.fc.weight, layer.fc.bias)]

    def net(x, cfgs):
        inp = x
        for layer, cfg in zip(sparse, cfgs):
            inp, mem = sparse_lif(inp, layer.fc.weight, layer.fc.bias, layer.beta, layer.threshold, cfg)
        return mem

    def new():
        return [LIFConfig(surrogate=sg, backend=backend, event_forward=event_forward) for _ in sparse]

    reused = new()
    net(_spikes(1), reused)                      # first batch fills nothing in the configs
    assert all(c.upstream is None and c.upstream_index is None and c.check_finite for c in reused)
    xb = _spikes(2)
    m_reused = net(xb, reused)
    g_reused = torch.autograd.grad(m_reused.pow(2).sum(), params)
    m_fresh = net(xb, new())
    g_fresh = torch.autograd.grad(m_fresh.pow(2).sum(), params)
    assert torch.equal(m_reused, m_fresh)
    for a, b in zip(g_reused, g_fresh):
        assert torch.equal(a, b)
    # and both are snnTorch's dense BPTT
    m_dense = run_dense(dense, xb)[-1][1]
    dparams = [p for fc, _ in dense for p in (fc.weight, fc.bias)]
    g_dense = torch.autograd.grad(m_dense.pow(2).sum(), dparams)
    torch.testing.assert_close(m_reused, m_dense, rtol=1e-10, atol=1e-10)
    for a, b in zip(g_reused, g_dense):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_stale_explicit_upstream_is_refused():
    layer = SparseLinearLeaky(20, 30, beta=0.9, dtype=torch.float64)
    nxt = SparseLinearLeaky(30, 5, beta=0.9, dtype=torch.float64)
    s_a = layer(_spikes(1).requires_grad_())
    s_b = layer(_spikes(2).requires_grad_())
    cfg = LIFConfig(surrogate=nxt.surrogate, upstream=getattr(s_a, "_snntorch_sparse_active"))
    with pytest.raises(ValueError, match="cfg.upstream"):
        sparse_lif(s_b, nxt.weight, nxt.bias, nxt.beta, nxt.threshold, cfg)
    cfg = LIFConfig(surrogate=nxt.surrogate, upstream=SpikeSets(7, 3))
    with pytest.raises(ValueError, match="cfg.upstream describes"):
        sparse_lif(s_b, nxt.weight, nxt.bias, nxt.beta, nxt.threshold, cfg)


# --- 2. double backward is refused --------------------------------------------------------

@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_create_graph_is_refused(backend):
    l1 = SparseLinearLeaky(20, 30, beta=0.9, dtype=torch.float64, backend=backend)
    l2 = SparseLinearLeaky(30, 5, beta=0.9, output=True, dtype=torch.float64, backend=backend)
    with torch.no_grad():
        l1.fc.weight.mul_(4)
        l2.fc.weight.mul_(4)
    mem = l2(l1(_spikes(0)))[1]
    with pytest.raises(RuntimeError, match="create_graph=True .* not supported"):
        torch.autograd.grad(mem.pow(2).sum(), l2.fc.weight, create_graph=True)
    # first order is unaffected
    mem = l2(l1(_spikes(0)))[1]
    assert torch.autograd.grad(mem.pow(2).sum(), l1.fc.weight)[0].abs().sum() > 0


def test_create_graph_is_refused_multi_step_neuron():
    lif = SparseLeaky(beta=0.9, step_mode="multi")
    x = (torch.randn(6, 3, 4) * 2).requires_grad_()
    spk, mem = lif(x)
    with pytest.raises(RuntimeError, match="not supported"):
        torch.autograd.grad((spk.sum() + mem.pow(2).sum()), x, create_graph=True)


# --- 3. integer-valued beta / threshold ---------------------------------------------------

@pytest.mark.parametrize("beta", [1, 0, True, torch.tensor(1), torch.tensor([1, 0, 1, 1, 0])])
def test_integer_beta_accepted_and_matches_snntorch(beta):
    torch.manual_seed(0)
    fc = nn.Linear(8, 5)
    ref = snn.Leaky(beta=beta, threshold=1, spike_grad=sparse_fast_sigmoid())
    layer = SparseLinearLeaky(8, 5, beta=beta, threshold=1, output=True)
    assert layer.beta.is_floating_point() and layer.threshold.is_floating_point()
    with torch.no_grad():
        layer.fc.weight.copy_(fc.weight)
        layer.fc.bias.copy_(fc.bias)
    x = _spikes(3, (6, 2, 8), dtype=torch.float32)
    mem = ref.reset_mem()
    mems = []
    for t in range(x.shape[0]):
        _, mem = ref(fc(x[t]), mem)
        mems.append(mem)
    torch.testing.assert_close(layer(x)[1], torch.stack(mems))
    lif = SparseLeaky(beta=beta, threshold=1, step_mode="multi", learn_beta=True)
    assert lif.beta.is_floating_point()
    torch.testing.assert_close(lif(fc(x).detach())[1], torch.stack(mems).detach())


def test_sparsify_integer_beta():
    import snntorch_sparse as sps
    net = nn.Sequential(nn.Linear(8, 5), snn.Leaky(beta=1, init_hidden=True, output=True))
    sps.sparsify(net)


@pytest.mark.parametrize("beta, exc, match", [
    (2, ValueError, r"beta must be in \[0, 1\], got 2"),
    (-1, ValueError, r"beta must be in \[0, 1\], got -1"),
    (float("nan"), ValueError, r"beta must be in \[0, 1\]"),
    ("0.9", TypeError, "beta must be a number or a tensor"),
    (torch.tensor(0.5 + 0j), TypeError, "beta must be real"),
])
def test_bad_beta_messages(beta, exc, match):
    with pytest.raises(exc, match=match):
        SparseLinearLeaky(8, 5, beta=beta)
    with pytest.raises(exc, match=match):
        SparseLeaky(beta=beta)


# --- 4. sparse_lif input checks -------------------------------------------------------------

_X = _spikes(4, (5, 3, 8), dtype=torch.float32)
_W = torch.randn(4, 8)
_B, _TH = torch.tensor(0.9), torch.tensor(1.0)
_SG = sparse_fast_sigmoid()


@pytest.mark.parametrize("args, exc, match", [
    ((_X, _W.double(), None, _B, _TH, LIFConfig(surrogate=_SG)), TypeError, "x has dtype .* weight"),
    ((_X, torch.randn(4, 7), None, _B, _TH, LIFConfig(surrogate=_SG)), ValueError, "x must have 7 features"),
    ((_X, torch.randn(4, 8, 1), None, _B, _TH, LIFConfig(surrogate=_SG)), ValueError, "weight must be a 2-D"),
    ((_X, torch.randn(0, 8), None, _B, _TH, LIFConfig(surrogate=_SG)), ValueError, "N_out >= 1"),
    ((_X, _W, torch.randn(5), _B, _TH, LIFConfig(surrogate=_SG)), ValueError, r"bias must be None or a \[4\]"),
    ((_X, _W, None, _B, _TH, LIFConfig()), ValueError, "cfg.surrogate"),
    ((_X.long(), _W, None, _B, _TH, LIFConfig(surrogate=_SG)), TypeError, "floating-point"),
    ((_X[0], _W, None, _B, _TH, LIFConfig(surrogate=_SG)), ValueError, r"time-major .* got shape \(3, 8\)"),
    ((_X, _W, None, _B, _TH, LIFConfig(surrogate=_SG, reset_mode=7)), ValueError, "cfg.reset_mode"),
    ((_X, _W, None, _B, _TH, LIFConfig(surrogate=_SG, reset_mode=7, backend="reference")),
     ValueError, "cfg.reset_mode"),
    ((_X, _W, None, _B, _TH, {"surrogate": _SG}), TypeError, "cfg must be a LIFConfig"),
    ((_X, _W, None, "0.9", _TH, LIFConfig(surrogate=_SG)), TypeError, "beta must be a float or a tensor"),
    ((_X[..., :0], None, None, _B, _TH, LIFConfig(surrogate=_SG)), ValueError, "no features"),
    ((_X, None, torch.randn(8), _B, _TH, LIFConfig(surrogate=_SG)), ValueError, "bias given without weight"),
])
def test_sparse_lif_checks(args, exc, match):
    with pytest.raises(exc, match=match):
        sparse_lif(*args)


@pytest.mark.parametrize("backend", [None, "reference"])
def test_sparse_lif_python_number_beta_threshold(backend):
    w = _W.clone().requires_grad_()
    s1, m1 = sparse_lif(_X, w, None, 0.9, 1, LIFConfig(surrogate=_SG, backend=backend))
    s2, m2 = sparse_lif(_X, w, None, _B, _TH, LIFConfig(surrogate=_SG, backend=backend))
    assert torch.equal(s1, s2) and torch.equal(m1, m2)


def test_layer_zero_features_refused():
    with pytest.raises(ValueError, match="in_features must be a positive int"):
        SparseLinearLeaky(0, 5, beta=0.9)
    with pytest.raises(ValueError, match="out_features must be a positive int"):
        SparseLinearLeaky(5, 0, beta=0.9)


# --- 5. multi-step SparseLeaky keeps no graph -----------------------------------------------

def test_multi_step_state_is_detached_and_deepcopy_works():
    torch.manual_seed(0)
    net = nn.Sequential(TimeDistributed(nn.Linear(8, 12)),
                        SparseLeaky(beta=0.9, init_hidden=True, step_mode="multi"),
                        SparseLinearLeaky(12, 4, beta=0.9, output=True))
    x = _spikes(5, (5, 2, 8), dtype=torch.float32)
    spk, mem = net(x)
    mem.sum().backward()
    lif = net[1]
    assert not lif.mem.requires_grad and lif.mem.grad_fn is None and lif.mem._base is None
    assert lif.mem.shape == (2, 12)
    best = copy.deepcopy(net)
    torch.testing.assert_close(best(x)[1], net(x)[1])
    # the kept membrane is the last step's, as snnTorch's self.mem
    cur = net[0](x)
    _, mem_seq = SparseLeaky(beta=0.9, step_mode="multi")(cur)
    net[1](cur)
    assert torch.equal(net[1].mem, mem_seq[-1].detach())


# --- 6. pooled spike buffer is not reused while its storage is held -------------------------

def test_held_storage_is_not_recycled():
    """Dense spike outputs come from the layer's buffer pool: one still held is never overwritten.

    (A [T, B, N] output is a SpikeTensor and never pooled; a [T, B, C, N] one is dense.)
    """
    torch.manual_seed(0)
    layer = SparseLinearLeaky(20, 30, beta=0.9)
    with torch.no_grad():
        layer.fc.weight.mul_(5)
    xa, xb = _spikes(6, (10, 4, 2, 20), dtype=torch.float32), _spikes(7, (10, 4, 2, 20), dtype=torch.float32)
    ref_a = layer(xa).detach().clone()
    st = layer(xa).untyped_storage()
    held = torch.empty(0).set_(st)[:ref_a.numel()].clone()
    b = layer(xb)
    after = torch.empty(0).set_(st)[:ref_a.numel()]
    assert torch.equal(held.view_as(ref_a), ref_a)
    assert torch.equal(after, held)
    assert st.data_ptr() != b.data_ptr()
    # once released, the buffer is recycled again
    del st, after, b
    p1 = layer(xa).data_ptr()
    assert layer(xb).data_ptr() == p1
