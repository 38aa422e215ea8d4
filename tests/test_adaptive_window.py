"""The default conversion trains at snnTorch's default init: adaptive windows, their gradient rule,
the starved-layer warning, drop-in conventions and the own-forward speed paths (issue 20)."""
from __future__ import annotations

import math
import pickle
import subprocess
import sys
import warnings

import pytest
import snntorch as snn
import torch
from snntorch import surrogate, utils
from torch import nn

import snntorch_sparse as sps
from snntorch_sparse.surrogate import mass_gain, quantile_window, sparse_atan, windowed_derivative
from snntorch_sparse.tutorials import tutorial5_net, tutorial6_net

BACKENDS = ["reference", "compiled"]


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def _dense_twin_with_frozen_rules(sparse_seq):
    """snnTorch's per-step model of a converted Sequential, each neuron given its layer's last rule."""
    dense = sps.desparsify(sparse_seq)
    layers = [m for m in sparse_seq.modules() if hasattr(m, "frozen_surrogate") and m.surrogate is not None]
    neurons = [m for m in dense.modules() if isinstance(m, snn.Leaky)]
    assert len(layers) == len(neurons)
    for layer, neuron in zip(layers, neurons):
        neuron.spike_grad = layer.frozen_surrogate()
    return dense


def _dense_run(dense, x):
    utils.reset(dense)
    spk, mem = [], []
    for t in range(x.shape[0]):
        s, m = dense(x[t])
        spk.append(s)
        mem.append(m)
    return torch.stack(spk), torch.stack(mem)


@pytest.mark.parametrize("backend", BACKENDS)
def test_adaptive_fc_gradients_equal_snntorch_with_the_same_rule(backend):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(30, 40), snn.Leaky(beta=0.875, init_hidden=True),
                        nn.Linear(40, 10), snn.Leaky(beta=0.875, init_hidden=True, output=True)).double()
    x = (torch.rand(20, 6, 30, dtype=torch.float64) < 0.3).double()
    sp = sps.sparsify(net, backend=backend)
    spk, mem = sp(x)
    (spk.sum() + (mem ** 2).sum()).backward()
    dense = _dense_twin_with_frozen_rules(sp)
    dspk, dmem = _dense_run(dense, x)
    assert torch.equal(spk, dspk.to(spk.dtype))
    (dspk.sum() + (dmem ** 2).sum()).backward()
    for (n1, p1), (n2, p2) in zip(sp.named_parameters(), dense.named_parameters()):
        assert _rel(p1.grad, p2.grad) < 1e-10, (n1, n2)
    assert 0.06 < sp[0].activity < 0.12          # ~8% of each neuron's entries, per neuron
    assert sp[1].activity == 1.0                  # the output layer keeps its full surrogate


@pytest.mark.parametrize("backend", BACKENDS)
def test_adaptive_conv_gradients_equal_snntorch_with_the_same_rule(backend):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.MaxPool2d(2), snn.Leaky(beta=0.5, init_hidden=True),
                        nn.Flatten(), nn.Linear(4 * 3 * 3, 5),
                        snn.Leaky(beta=0.5, init_hidden=True, output=True)).double()
    x = (torch.rand(12, 5, 1, 8, 8, dtype=torch.float64) < 0.4).double()
    sp = sps.sparsify(net, backend=backend)
    spk, mem = sp(x)
    (spk.sum() + mem.pow(2).sum()).backward()
    dense = _dense_twin_with_frozen_rules(sp)
    dspk, dmem = _dense_run(dense, x)
    (dspk.sum() + dmem.pow(2).sum()).backward()
    for (n1, p1), (n2, p2) in zip(sp.named_parameters(), dense.named_parameters()):
        assert _rel(p1.grad, p2.grad) < 1e-10, (n1, n2)


def test_fixed_bth_keeps_plain_clamped_surrogate_parity():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(16, 12), snn.Leaky(beta=0.875, init_hidden=True, spike_grad=surrogate.atan()),
                        nn.Linear(12, 4), snn.Leaky(beta=0.875, init_hidden=True, output=True)).double()
    x = (torch.rand(15, 3, 16, dtype=torch.float64) < 0.4).double()
    sp = sps.sparsify(net, bth=0.4)
    assert sp[0].bth == 0.4 and sp[0].surrogate.fixed_gain is None
    spk, mem = sp(x)
    mem.pow(2).sum().backward()
    dense = sps.desparsify(sp)
    assert dense[1].spike_grad.bth == 0.4
    _, dmem = _dense_run(dense, x)
    dmem.pow(2).sum().backward()
    for p1, p2 in zip(sp.parameters(), dense.parameters()):
        assert _rel(p1.grad, p2.grad) < 1e-10


def test_quantile_window_holds_the_fraction_with_a_margin():
    torch.manual_seed(3)
    shift = torch.randn(200, 7, 3) * torch.rand(1, 7, 3) * 3 - 1
    w = quantile_window(shift, 0.05).reshape(7, 3)
    inside = (shift.abs() < w).sum(0)
    assert (inside >= math.ceil(0.05 * 200)).all() and (inside <= 12).all()
    # no entry sits within a relative 1e-6 of its window's edge
    gap = ((shift.abs() - w).abs() / w).amin(0)
    assert (gap > 1e-6).all()
    # ties: all equal membranes are all inside
    w_tie = quantile_window(torch.zeros(50, 4), 0.05)
    assert ((torch.zeros(50, 4).abs() < w_tie).all())


def test_mass_gain_formula_and_bounds():
    sg = sparse_atan()
    shift = torch.randn(64, 10, dtype=torch.float64) - 2
    w = quantile_window(shift, sg.active_fraction)
    c = mass_gain(sg, shift, w)
    d = sg.derivative(shift)
    expect = d.sum(0) / torch.where(shift.abs() < w, d, torch.zeros_like(d)).sum(0)
    assert torch.allclose(c, expect.clamp(1, 20))
    assert (c >= 1).all() and (c <= 1 / sg.active_fraction).all()
    g = windowed_derivative(sg, shift)
    assert torch.allclose(g, torch.where(shift.abs() < w, d, torch.zeros_like(d)) * c)
    assert sg.last_active == int((shift.abs() < w).sum())


def test_default_conversion_gives_every_layer_gradient_at_snntorch_init():
    """Tutorial 6's CSNN at snnTorch's default init: a fixed window leaves layers without gradient."""
    torch.manual_seed(0)
    net = tutorial6_net()
    x = (torch.rand(10, 8, 1, 28, 28) < 0.2).float()
    for kwargs, all_alive in (({}, True), ({"bth": 0.2}, False)):
        sp = sps.sparsify(net, **kwargs)
        spk, mem = sp(x)
        torch.nn.functional.cross_entropy(spk.sum(0) + mem.sum(0) * 1e-3, torch.arange(8) % 10).backward()
        # the conv layers (the readout's input spikes are all zero at this init, in dense BPTT too)
        convs = [m for m in sp.modules() if isinstance(m, nn.Conv2d)]
        grads = [c.weight.grad.abs().sum().item() for c in convs]
        assert all(g > 0 for g in grads) == all_alive, (kwargs, grads)


def test_starved_fixed_window_warns_once_naming_the_layer():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 10), snn.Leaky(beta=0.5, init_hidden=True),
                        nn.Linear(10, 3), snn.Leaky(beta=0.5, init_hidden=True, output=True))
    with torch.no_grad():
        net[0].weight.mul_(0.01)
    sp = sps.sparsify(net, bth=1e-3)
    x = (torch.rand(10, 4, 20) < 0.3).float()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        for _ in range(6):
            spk, mem = sp(x)
            mem.sum().backward()
    msgs = [str(w.message) for w in rec if "snntorch_sparse: the sparse layer '1'" in str(w.message)]
    assert len(msgs) == 1 and "bth=None" in msgs[0] and "SparseLinearLeaky(20->10)" in msgs[0]
    sp_default = sps.sparsify(net)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        for _ in range(6):
            spk, mem = sp_default(x)
            mem.sum().backward()
    assert not [w for w in rec if "sparse layer" in str(w.message)]


def test_surrogate_reprs_name_the_surrogate_and_defaults_follow_snntorch():
    net = nn.Sequential(nn.Linear(4, 3), snn.Leaky(beta=0.5, init_hidden=True, spike_grad=surrogate.fast_sigmoid(25)),
                        nn.Linear(3, 3), snn.Leaky(beta=0.5, init_hidden=True, spike_grad=surrogate.triangular()),
                        nn.Linear(3, 2), snn.Leaky(beta=0.5, init_hidden=True, output=True))
    sp = sps.sparsify(net)
    assert repr(sp[0].surrogate) == "sparse_fast_sigmoid(slope=25.0, active_fraction=0.08)"
    assert repr(sp[1].surrogate).startswith("sparse[triangular](")
    assert repr(sp[2].surrogate) == "sparse_atan(alpha=2.0, active_fraction=1.0)"    # snnTorch's default; output
    assert repr(sps.SparseLeaky(beta=0.9).surrogate).startswith("sparse_atan(alpha=2.0")
    assert repr(sps.sparse_fast_sigmoid(bth=0.3)) == "sparse_fast_sigmoid(slope=25.0, bth=0.3)"


def test_whole_converted_models_pickle_and_load_in_a_fresh_process(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 5), snn.Leaky(beta=0.5, init_hidden=True, spike_grad=surrogate.triangular()),
                        nn.Linear(5, 3), snn.Leaky(beta=0.5, init_hidden=True, output=True))
    sp = sps.sparsify(net)
    x = (torch.rand(5, 2, 6) < 0.5).float()
    spk, mem = sp(x)
    mem.sum().backward()
    pickle.loads(pickle.dumps(sp))
    path = tmp_path / "model.pt"
    torch.save(sp, path)
    torch.save(x, tmp_path / "x.pt")
    code = ("import torch, snntorch_sparse\n"
            f"m = torch.load({str(path)!r}, weights_only=False)\n"
            f"x = torch.load({str(tmp_path / 'x.pt')!r})\n"
            "s, mem = m(x); mem.sum().backward(); print(repr(m[1].surrogate), float(mem.sum()))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("sparse_atan(alpha=2.0") and abs(float(out.split()[-1]) - float(mem.sum())) < 1e-5


def test_static_input_gets_a_clear_error():
    sp = sps.sparsify(tutorial6_net())
    with pytest.raises(ValueError, match=r"time-major \[T, B, \.\.\.\] \(5 dims for Conv2d\).*unsqueeze"):
        sp(torch.rand(8, 1, 28, 28))


def test_fused_layer_takes_snntorch_keywords_or_refuses_them():
    x = (torch.rand(4, 2, 5) < 0.5).float()
    layer = sps.SparseLinearLeaky(5, 3, beta=0.9, init_hidden=False)
    out = layer(x)
    assert isinstance(out, tuple) and out[1].shape == (4, 2, 3)
    assert torch.is_tensor(sps.SparseLinearLeaky(5, 3, beta=0.9)(x))
    for kw in ({"graded_spikes_factor": 2.0}, {"reset_delay": False}, {"inhibition": True},
               {"surrogate_disable": True}, {"learn_graded_spikes_factor": True}):
        with pytest.raises(ValueError, match=list(kw)[0]):
            sps.SparseLinearLeaky(5, 3, beta=0.9, **kw)
    sps.SparseLinearLeaky(5, 3, beta=0.9, graded_spikes_factor=1.0, reset_delay=True)


def test_sparsify_leaves_the_global_generator_alone():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(50, 40), snn.Leaky(beta=0.5, init_hidden=True),
                        nn.Linear(40, 3), snn.Leaky(beta=0.5, init_hidden=True, output=True))
    state = torch.get_rng_state()
    sps.sparsify(net)
    assert torch.equal(state, torch.get_rng_state())


def test_sparsify_refuses_leaky_subclasses_and_other_neurons():
    class MyLeaky(snn.Leaky):
        pass

    class MySynaptic(snn.Synaptic):
        pass

    for neuron in (MyLeaky(beta=0.5, init_hidden=True), MySynaptic(alpha=0.5, beta=0.5, init_hidden=True),
                   snn.Lapicque(beta=0.5, init_hidden=True)):
        with pytest.raises(TypeError, match=type(neuron).__name__):
            sps.sparsify(nn.Sequential(nn.Linear(3, 3), neuron))

    class Own(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.lif = nn.Linear(3, 3), MyLeaky(beta=0.5)

    with pytest.raises(TypeError, match="MyLeaky"):
        sps.sparsify(Own())


def test_per_step_neuron_is_snntorch_bit_for_bit_with_a_fixed_window():
    torch.manual_seed(4)
    for mode in ("subtract", "zero", "none"):
        kw = dict(beta=torch.full((7,), 0.875, dtype=torch.float64), threshold=torch.linspace(-0.2, 1.2, 7).double(),
                  learn_beta=True, learn_threshold=True, reset_mechanism=mode)
        dense = snn.Leaky(spike_grad=sparse_atan(bth=0.6), **kw)
        sparse = sps.SparseLeaky(spike_grad=sparse_atan(bth=0.6), **kw)
        x = torch.randn(12, 4, 7, dtype=torch.float64) * 0.8 + 0.3
        grads = []
        for net in (dense, sparse):
            xi = x.clone().requires_grad_(True)
            mem, total, mems = net.init_leaky(), 0, []
            for t in range(12):
                spk, mem = net(xi[t], mem)
                mems.append(mem)
                total = total + (spk * torch.arange(7)).sum() + 0.3 * (mem ** 2).sum()
            total.backward()
            grads.append([xi.grad, net.beta.grad, net.threshold.grad, torch.stack(mems)])
        assert torch.equal(grads[0][3], grads[1][3])
        for a, b in zip(*grads):
            assert _rel(b, a) < 1e-12, mode


def test_own_forward_static_input_is_projected_once_with_the_same_gradients(monkeypatch):
    torch.manual_seed(5)
    dense = tutorial5_net(num_inputs=20, num_hidden=16, num_outputs=4, num_steps=6).double()
    for m in dense.modules():
        if isinstance(m, snn.Leaky):
            m.spike_grad = sparse_atan(bth=0.5)
    sparse = sps.sparsify(dense)
    calls, hooked = [], []
    sparse.fc1.register_forward_hook(lambda *a: hooked.append(1))
    linear = torch.nn.functional.linear

    def counting(x, weight, bias=None):   # fc1's products (its weight, or the per-call view of it)
        if weight is sparse.fc1.weight or weight._base is sparse.fc1.weight:
            calls.append(1)
        return linear(x, weight, bias)

    monkeypatch.setattr(torch.nn.functional, "linear", counting)
    x = torch.rand(3, 20, dtype=torch.float64)
    for net in (dense, sparse):
        _, mem = net(x)
        mem.pow(2).sum().backward()
    for p1, p2 in zip(dense.parameters(), sparse.parameters()):
        assert _rel(p2.grad, p1.grad) < 1e-10
    assert len(hooked) == 6 and len(calls) == 1    # called at every step, computed once
    assert isinstance(sparse.fc1, nn.Linear) and list(sparse.state_dict()) == list(dense.state_dict())
    back = sps.desparsify(sparse)
    assert type(back.fc1) is nn.Linear and not back._forward_pre_hooks


def test_own_forward_reuse_notices_an_input_changed_in_place():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)
            self.lif = snn.Leaky(beta=0.5, spike_grad=sparse_atan(bth=0.5))

        def forward(self, x):
            mem, out = self.lif.init_leaky(), []
            for step in range(3):
                cur = self.fc(x)
                out.append(cur)
                x.add_(1.0)                                  # the input changes between steps
                spk, mem = self.lif(cur, mem)
            return torch.stack(out)

    torch.manual_seed(6)
    dense = Net()
    sparse = sps.sparsify(dense)
    x = torch.rand(2, 4)
    assert torch.allclose(dense(x.clone()), sparse(x.clone()))


def test_output_layer_keeps_its_full_surrogate_by_default():
    net = tutorial6_net()
    sp = sps.sparsify(net)
    out = sp[-1]
    assert out.surrogate.adaptive and out.surrogate.active_fraction == 1.0
    assert sp[1].surrogate.active_fraction == sps.surrogate.DEFAULT_ACTIVE_FRACTION
    x = (torch.rand(6, 4, 1, 28, 28) < 0.3).float()
    spk, mem = sp(x)
    (spk.sum() + mem.sum()).backward()
    assert out.activity == 1.0
    # an explicit choice applies to every layer, the output too
    assert sps.sparsify(net, active_fraction=0.1)[-1].surrogate.active_fraction == 0.1
    assert sps.sparsify(net, bth=0.3)[-1].bth == 0.3
