"""sparsify()/desparsify() on models snnTorch accepts: nested blocks, trained betas,
models after a forward pass, unsupported options, broadcast betas, train/eval mode."""
import pytest
import snntorch as snn
import torch
from snntorch import utils
from torch import nn

from snntorch_sparse import SparseLeaky, SparseLinearLeaky, TimeDistributed, desparsify, sparsify
from snntorch_sparse.surrogate import sparse_fast_sigmoid

from snntorch_sparse.checkpoint import dense_key_map

from helpers import rel_err


def _run_steps(net, x):
    utils.reset(net)
    outs = [net(x[t]) for t in range(x.shape[0])]
    if isinstance(outs[0], tuple):
        return tuple(torch.stack(o) for o in zip(*outs))
    return torch.stack(outs)


def _grads(net, spk, mem, w):
    names, params = zip(*net.named_parameters())
    return dict(zip(names, torch.autograd.grad((mem * w).sum() + (spk * w).sum(), params)))


def _assert_same_grads(sparse, gs, gd):
    """Sparse-model gradients against the dense ones, matched by parameter name."""
    key, _ = dense_key_map(sparse)
    assert len(gs) == len(gd)
    for name, g in gs.items():
        assert rel_err(g, gd[key[name]]) < 1e-10, name


# 1. nested nn.Sequential blocks -------------------------------------------------

def _nested_net(sg):
    torch.manual_seed(0)
    block = lambda i, o: nn.Sequential(nn.Linear(i, o), snn.Leaky(beta=0.9, spike_grad=sg, init_hidden=True))
    net = nn.Sequential(block(20, 30), nn.Sequential(nn.Identity(), block(30, 25)), nn.Linear(25, 5),
                        snn.Leaky(beta=0.9, spike_grad=sg, init_hidden=True, output=True)).double()
    with torch.no_grad():
        net[0][0].weight.mul_(3)
        net[1][1][0].weight.mul_(3)
    return net


def test_nested_sequential_matches_snntorch():
    sg = sparse_fast_sigmoid(slope=25, bth=0.5)
    dense = _nested_net(sg)
    sparse = sparsify(dense)
    assert isinstance(sparse[0], nn.Sequential) and isinstance(sparse[0][0], SparseLinearLeaky)
    assert isinstance(sparse[1][1][0], SparseLinearLeaky)
    assert not any(isinstance(m, TimeDistributed) and isinstance(m.module, nn.Sequential) for m in sparse.modules())
    x = (torch.rand(15, 4, 20) < 0.3).double()
    sd, md = _run_steps(dense, x)
    ss, ms = sparse(x)
    assert torch.equal(sd, ss)
    torch.testing.assert_close(ms, md, rtol=1e-12, atol=1e-12)
    w = torch.randn_like(md)
    gs, gd = _grads(sparse, ss, ms, w), _grads(dense, sd, md, w)
    for a, b in zip(gs.values(), gd.values()):  # same order: blocks keep their structure
        assert rel_err(a, b) < 1e-10
    back = desparsify(sparse)  # same structure and keys as the dense model
    assert list(back.state_dict()) == list(dense.state_dict())
    assert torch.equal(_run_steps(back, x)[0], sd)


def test_custom_module_with_neuron_inside_sequential_raises():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.lif = nn.Linear(4, 4), snn.Leaky(beta=0.9, init_hidden=True)

        def forward(self, x):
            return self.lif(self.fc(x))

    net = nn.Sequential(nn.Linear(3, 4), snn.Leaky(beta=0.9, init_hidden=True), nn.Sequential(Block()))
    with pytest.raises(TypeError, match=r"Block at '2\.0'.*Leaky at '2\.0\.lif'"):
        sparsify(net)


# 2. learnable beta trained past 1 (snnTorch clamps in its forward) ----------------

@pytest.mark.parametrize("beta", [1.05, -0.1, 0.95])
@pytest.mark.parametrize("standalone", [False, True])
def test_learned_beta_outside_unit_interval_clamped_like_snntorch(beta, standalone):
    torch.manual_seed(1)
    sg = sparse_fast_sigmoid(slope=25, bth=0.5)
    lif = lambda **kw: snn.Leaky(beta=0.9, spike_grad=sg, init_hidden=True, learn_beta=True, **kw)
    if standalone:  # nn.Linear, nn.Identity, snn.Leaky: no fusion, multi-step SparseLeaky
        dense = nn.Sequential(nn.Linear(6, 5), nn.Identity(), lif(output=True)).double()
    else:
        dense = nn.Sequential(nn.Linear(6, 5), lif(output=True)).double()
    with torch.no_grad():
        dense[-1].beta.fill_(beta)
        dense[0].weight.mul_(3)
    sparse = sparsify(dense)
    assert sparse[-1].beta.item() == pytest.approx(beta)  # the raw value is kept, as in snnTorch
    x = (torch.rand(8, 3, 6) < 0.5).double()
    sd, md = _run_steps(dense, x)
    ss, ms = sparse(x)
    torch.testing.assert_close(ms, md, rtol=1e-12, atol=1e-12)
    w = torch.randn_like(md)
    gd = _grads(dense, sd, md, w)
    assert gd[f"{len(dense) - 1}.beta"].item() != 0 or not 0 <= beta <= 1  # zero outside [0, 1], like clamp's
    _assert_same_grads(sparse, _grads(sparse, ss, ms, w), gd)


def test_round_trip_of_trained_beta_past_one():
    layer = SparseLinearLeaky(8, 5, beta=0.99, learn_beta=True, output=True)
    with torch.no_grad():
        layer.beta.fill_(1.06)
    again = sparsify(desparsify(nn.Sequential(layer)))
    assert again[0].beta.item() == pytest.approx(1.06)
    x = torch.rand(4, 3, 8)
    torch.testing.assert_close(again(x)[1], layer(x)[1])


def test_non_finite_beta_raises_with_path():
    net = nn.Sequential(nn.Linear(3, 4), snn.Leaky(beta=float("nan"), init_hidden=True))
    with pytest.raises(ValueError, match=r"beta of the Leaky at '1'.*NaN"):
        sparsify(net)


# 3. sparsify after a forward pass (snnTorch keeps mem attached to the graph) -----

class _TutorialNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.lif1 = nn.Linear(12, 10), snn.Leaky(beta=0.95)
        self.fc2, self.lif2 = nn.Linear(10, 4), snn.Leaky(beta=0.95)

    def forward(self, x):
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        out = []
        for t in range(x.shape[0]):
            spk1, mem1 = self.lif1(self.fc1(x[t]), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            out.append(mem2)
        return torch.stack(out)


def test_sparsify_after_forward_pass():
    torch.manual_seed(0)
    net = _TutorialNet()
    x = torch.rand(5, 2, 12)
    ref = net(x)
    mem_before = net.lif1.mem
    assert not mem_before.is_leaf
    snet = sparsify(net)
    assert net.lif1.mem is mem_before and isinstance(net.lif1, snn.Leaky)  # user's model untouched
    assert snet.lif1.mem.is_leaf and torch.equal(snet.lif1.mem, mem_before.detach())
    torch.testing.assert_close(snet(x), ref)
    desparsify(snet)  # the sparse single-step neurons now hold graph-attached state too

    seq = nn.Sequential(nn.Linear(12, 4), nn.Identity(), snn.Leaky(beta=0.9, init_hidden=True),
                        nn.Linear(4, 3), snn.Leaky(beta=0.9, init_hidden=True, output=True))
    _run_steps(seq, x)
    torch.testing.assert_close(sparsify(seq)(x)[1], _run_steps(seq, x)[1])


# 4./5. options the multi-step layers lack: errors at sparsify time ---------------

@pytest.mark.parametrize("kw,name", [(dict(surrogate_disable=True), "surrogate_disable"),
                                     (dict(learn_graded_spikes_factor=True), "learn_graded_spikes_factor"),
                                     (dict(graded_spikes_factor=2.0), "graded_spikes_factor")])
@pytest.mark.parametrize("fused", [True, False])
def test_unsupported_options_raise_at_sparsify(kw, name, fused):
    mid = [] if fused else [nn.Identity()]
    net = nn.Sequential(nn.Linear(3, 4), *mid, snn.Leaky(beta=0.9, init_hidden=True, **kw))
    with pytest.raises(ValueError, match=rf"at '{len(mid) + 1}' uses {name}"):
        sparsify(net)


def test_single_step_conversion_keeps_snntorch_options():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 4)
            self.lif = snn.Leaky(beta=0.9, learn_graded_spikes_factor=True, graded_spikes_factor=0.5)
            self.lif2 = snn.Leaky(beta=0.9, surrogate_disable=True)

    net = Net()
    s = sparsify(net)
    assert isinstance(s.lif.graded_spikes_factor, nn.Parameter) and s.lif.graded_spikes_factor.item() == 0.5
    assert s.lif2.surrogate_disable
    assert sorted(n for n, _ in s.named_parameters()) == sorted(n for n, _ in net.named_parameters())
    back = desparsify(s)
    assert isinstance(back.lif.graded_spikes_factor, nn.Parameter) and back.lif2.surrogate_disable


# 6. beta/threshold that snnTorch broadcasts (per channel) -------------------------

def test_per_channel_beta_raises_at_sparsify():
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1),
                        snn.Leaky(beta=torch.rand(4, 1, 1), init_hidden=True))
    with pytest.raises(ValueError, match=r"beta of the snn.Leaky at '1' has shape \(4, 1, 1\)"):
        sparsify(net)
    net = nn.Sequential(nn.Linear(3, 4), snn.Leaky(beta=0.9, threshold=torch.ones(4, 1), init_hidden=True))
    with pytest.raises(ValueError, match=r"threshold .* shape \(4, 1\).*\[4\]"):
        sparsify(net)


def test_per_neuron_beta_shapes_accepted():
    torch.manual_seed(0)
    beta = torch.rand(1, 4).double()
    dense = nn.Sequential(nn.Linear(3, 4), snn.Leaky(beta=beta, init_hidden=True, output=True)).double()
    x = torch.rand(6, 2, 3).double() * 2
    torch.testing.assert_close(sparsify(dense)(x)[1], _run_steps(dense, x)[1])
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), snn.Leaky(beta=torch.rand(2, 4, 4), init_hidden=True))
    xc = torch.rand(3, 2, 1, 6, 6) * 2
    assert torch.equal(sparsify(conv)(xc), _run_steps(conv, xc))


# 7. train/eval mode ---------------------------------------------------------------

@pytest.mark.parametrize("train", [True, False])
def test_train_eval_mode_kept(train):
    net = nn.Sequential(nn.Linear(12, 16), snn.Leaky(beta=0.9, init_hidden=True), nn.Dropout(0.5),
                        nn.Sequential(nn.Linear(16, 4), snn.Leaky(beta=0.9, init_hidden=True, output=True)))
    net.train(train)
    s = sparsify(net)
    assert all(m.training == train for m in s.modules())
    assert all(m.training == train for m in desparsify(s).modules())
