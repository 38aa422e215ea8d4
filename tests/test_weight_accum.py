"""Own-forward models: an nn.Linear called at every step with a new input gets one weight gradient per call
(snntorch_sparse._weight_accum) -- the same gradients as autograd's per-step sum, in every way of calling backward."""
from __future__ import annotations

import pytest
import snntorch as snn
import torch
import torch.nn.functional as F
from torch import nn

import snntorch_sparse as sps
from snntorch_sparse import _weight_accum
from snntorch_sparse.reuse import enable_input_reuse
from snntorch_sparse.surrogate import sparse_atan


class Net(nn.Module):
    def __init__(self, n_in=12, n_hid=9, n_out=4):
        super().__init__()
        self.fc1, self.lif1 = nn.Linear(n_in, n_hid), snn.Leaky(beta=0.8, spike_grad=sparse_atan(bth=0.6))
        self.fc2, self.lif2 = nn.Linear(n_hid, n_out), snn.Leaky(beta=0.8, spike_grad=sparse_atan(bth=0.6))

    def forward(self, x):
        mem1, mem2, out = self.lif1.init_leaky(), self.lif2.init_leaky(), []
        for t in range(x.shape[0]):
            spk1, mem1 = self.lif1(self.fc1(x[t]), mem1)
            _, mem2 = self.lif2(self.fc2(spk1), mem2)
            out.append(mem2)
        return torch.stack(out)


class Plain(nn.Module):
    """No neuron: a time loop of Linear + tanh, twice differentiable."""

    def __init__(self):
        super().__init__()
        self.fc, self.rec = nn.Linear(5, 6), nn.Linear(6, 6)

    def forward(self, x):
        h, out = torch.zeros(x.shape[1], 6, dtype=x.dtype), []
        for t in range(x.shape[0]):
            h = torch.tanh(self.fc(x[t]) + self.rec(h))
            out.append(h)
        return torch.stack(out)


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def _grads(net):
    return [p.grad.clone() for p in net.parameters()]


def test_changing_input_gradients_equal_snntorch_and_go_through_the_accumulator(monkeypatch):
    torch.manual_seed(0)
    dense = Net().double()
    sparse = sps.sparsify(dense)
    calls = []
    real = _weight_accum.linear
    monkeypatch.setattr(_weight_accum, "linear", lambda *a: calls.append(1) or real(*a))
    x = (torch.rand(7, 5, 12) < 0.4).double()
    y = torch.randint(0, 4, (5,))
    for net in (dense, sparse):
        mem = net(x)
        sum(F.cross_entropy(mem[t], y) for t in range(7)).backward()
    assert len(calls) == 14                               # both layers, every step
    for a, b in zip(_grads(dense), _grads(sparse)):
        assert _rel(b, a) < 1e-12
    # a second call accumulates on top, as autograd does
    for net in (dense, sparse):
        net(x).pow(2).sum().backward()
    for a, b in zip(_grads(dense), _grads(sparse)):
        assert _rel(b, a) < 1e-12


def test_a_backward_that_skips_the_weight_leaves_nothing_for_the_next():
    torch.manual_seed(1)
    dense = Plain().double()
    fast = Plain().double()
    fast.load_state_dict(dense.state_dict())
    enable_input_reuse(fast)
    x = torch.randn(6, 3, 5, dtype=torch.float64)
    grads = []
    for net in (dense, fast):
        xi = x.clone().requires_grad_(True)
        loss = net(xi).pow(2).sum()
        (gx,) = torch.autograd.grad(loss, xi, retain_graph=True)   # the step nodes run, the weights' do not
        loss.backward()
        grads.append([gx, xi.grad] + _grads(net))
    for a, b in zip(*grads):
        assert _rel(b, a) < 1e-12


def test_create_graph_gives_the_same_second_order_gradients():
    torch.manual_seed(2)
    dense = Plain().double()
    fast = Plain().double()
    fast.load_state_dict(dense.state_dict())
    enable_input_reuse(fast)
    x = torch.randn(5, 3, 5, dtype=torch.float64)
    out = []
    for net in (dense, fast):
        loss = net(x).pow(2).sum()
        gw = torch.autograd.grad(loss, net.fc.weight, create_graph=True)[0]
        gw.pow(2).sum().backward()                         # a gradient penalty
        out.append([gw.detach()] + _grads(net))
    for a, b in zip(*out):
        assert _rel(b, a) < 1e-12


def test_weight_hooks_fire_once_per_backward_with_the_total():
    torch.manual_seed(3)
    fast = Plain().double()
    enable_input_reuse(fast)
    seen = []
    fast.fc.weight.register_hook(lambda g: seen.append(g.clone()))
    x = torch.randn(4, 2, 5, dtype=torch.float64)
    fast(x).sum().backward()
    assert len(seen) == 1 and torch.equal(seen[0], fast.fc.weight.grad)


def test_not_used_without_grad_under_autocast_or_for_frozen_weights():
    lin = nn.Linear(3, 2)
    x = torch.randn(4, 3)
    assert _weight_accum.usable(lin, x)
    with torch.no_grad():
        assert not _weight_accum.usable(lin, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not _weight_accum.usable(lin, x)
    assert not _weight_accum.usable(lin, x.double())
    lin.weight.requires_grad_(False)
    assert not _weight_accum.usable(lin, x)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 5)])
def test_inputs_of_other_ranks(shape):
    torch.manual_seed(4)
    dense = nn.Linear(5, 4).double()
    lin = nn.Linear(5, 4).double()
    lin.load_state_dict(dense.state_dict())
    proxies = {}
    xs = [torch.randn(*shape, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    ref = sum(dense(x).pow(2).sum() for x in xs)
    ref.backward()
    got = sum(_weight_accum.linear(lin, x.detach().requires_grad_(True), proxies).pow(2).sum() for x in xs)
    got.backward()
    for a, b in zip(dense.parameters(), lin.parameters()):
        assert _rel(b.grad, a.grad) < 1e-12
