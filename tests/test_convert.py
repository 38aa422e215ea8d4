import pytest
import snntorch as snn
import torch
from snntorch import utils
from torch import nn

from snntorch_sparse import SparseLeaky, SparseLinearLeaky, TimeDistributed, desparsify, sparsify
from snntorch_sparse.surrogate import sparse_fast_sigmoid

from helpers import rel_err


def _dense_net(sg):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Flatten(),
        nn.Linear(16, 20), snn.Leaky(beta=0.875, init_hidden=True, spike_grad=sg),
        nn.Linear(20, 10), snn.Leaky(beta=0.875, init_hidden=True, spike_grad=sg),
        nn.Linear(10, 5), snn.Leaky(beta=0.875, init_hidden=True, spike_grad=sg, output=True),
    ).double()
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.mul_(3)
    return net


def _run_steps(net, x):
    utils.reset(net)
    spk, mem = [], []
    for t in range(x.shape[0]):
        s, m = net(x[t])
        spk.append(s)
        mem.append(m)
    return torch.stack(spk), torch.stack(mem)


@pytest.mark.parametrize("event_forward", [False, True])
def test_sparsify_sequential_same_function_and_gradients(event_forward):
    sg = sparse_fast_sigmoid(slope=25, bth=0.4)
    dense = _dense_net(sg)
    sparse = sparsify(dense, event_forward=event_forward)
    assert all(m.event_forward == event_forward for m in sparse if isinstance(m, SparseLinearLeaky))
    kinds = [type(m) for m in sparse]
    assert kinds == [TimeDistributed, SparseLinearLeaky, SparseLinearLeaky, SparseLinearLeaky]
    x = (torch.rand(12, 3, 4, 4) < 0.3).double()
    sd, md = _run_steps(dense, x)
    ss, ms = sparse(x)
    assert torch.equal(sd, ss)
    torch.testing.assert_close(ms, md, rtol=1e-13, atol=1e-13)
    w = torch.randn_like(md)
    gd = torch.autograd.grad((md * w).sum() + (sd * w).sum(), list(dense.parameters()))
    gs = torch.autograd.grad((ms * w).sum() + (ss * w).sum(), list(sparse.parameters()))
    for a, b in zip(gs, gd):
        assert rel_err(a, b) < 1e-10


def test_desparsify_round_trip_keeps_weights():
    sg = sparse_fast_sigmoid(slope=25, bth=0.4)
    dense = _dense_net(sg)
    back = desparsify(sparsify(dense))
    for (ka, a), (kb, b) in zip(dense.state_dict().items(), back.state_dict().items()):
        assert ka == kb and torch.equal(a, b)
    x = (torch.rand(6, 2, 4, 4) < 0.3).double()
    assert torch.equal(_run_steps(dense, x)[0], _run_steps(back, x)[0])


def test_sparsify_custom_module_keeps_step_loop():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(8, 6)
            self.lif1 = snn.Leaky(beta=0.9)

        def forward(self, x):
            mem = self.lif1.reset_mem()
            out = []
            for t in range(x.shape[0]):
                spk, mem = self.lif1(self.fc1(x[t]), mem)
                out.append(spk)
            return torch.stack(out)

    net = Net()
    snet = sparsify(net, bth=0.3)
    assert isinstance(snet.lif1, SparseLeaky) and snet.lif1.step_mode == "single"
    assert snet.lif1.bth == 0.3
    x = torch.rand(5, 2, 8)
    assert torch.equal(net(x), snet(x))
    assert isinstance(net.lif1, snn.Leaky) and not isinstance(net.lif1, SparseLeaky)  # original untouched


def test_sparsify_standalone_leaky_becomes_multistep():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), snn.Leaky(beta=0.9, init_hidden=True), nn.Flatten())
    s = sparsify(net)
    assert isinstance(s[0], TimeDistributed) and isinstance(s[1], SparseLeaky) and s[1].multi_step
    out = s(torch.rand(4, 3, 1, 6, 6))
    assert out.shape == (4, 3, 2 * 4 * 4)


def test_sparsify_errors():
    with pytest.raises(ValueError, match="init_hidden"):
        sparsify(nn.Sequential(nn.Linear(3, 3), snn.Leaky(beta=0.9)))
    with pytest.raises(TypeError, match="Lapicque"):
        sparsify(nn.Sequential(nn.Linear(3, 3), snn.Lapicque(beta=0.9, init_hidden=True)))
    with pytest.raises(TypeError, match="model"):
        sparsify("not a model")
