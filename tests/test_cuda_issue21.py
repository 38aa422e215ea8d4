"""Issue 21 items 1 and 3 on an NVIDIA GPU (the fused CUDA path shares their Python backward).

* a learnable negative threshold with reset by subtraction: ``∂L/∂θ`` includes
  the reset at t = 0 (``R[0] = H(0 - θ)``), as snnTorch's autograd on the GPU;
* a write through ``.data`` to a fused layer's spikes is seen by the next one.
"""
import pytest
import snntorch as snn
import torch

from snntorch_sparse import SparseLeaky, SparseLinearLeaky
from snntorch_sparse.surrogate import sparse_fast_sigmoid

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")]


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


@pytest.mark.parametrize("backend", ["reference", "compiled"])
def test_cuda_negative_threshold_gradient(backend):
    torch.manual_seed(0)
    sg = sparse_fast_sigmoid(slope=25, bth=0.5)
    thr = torch.tensor([-0.2, 0.3, -0.05, 0.5, -0.4, 0.1], dtype=torch.float64)
    fc = torch.nn.Linear(12, 6).double().cuda()
    dense = snn.Leaky(beta=0.9, threshold=thr, learn_threshold=True, spike_grad=sg).double().cuda()
    layer = SparseLinearLeaky(12, 6, beta=0.9, threshold=thr, learn_threshold=True, spike_grad=sg, output=True,
                              backend=backend, event_forward=False, dtype=torch.float64).cuda()
    neuron = SparseLeaky(beta=0.9, threshold=thr, learn_threshold=True, spike_grad=sg, step_mode="multi",
                         backend=backend).double().cuda()
    with torch.no_grad():
        fc.weight.mul_(3)
        layer.fc.weight.copy_(fc.weight)
        layer.fc.bias.copy_(fc.bias)
    x = (torch.rand(20, 4, 12, dtype=torch.float64, device="cuda") < 0.3).double()
    mem = dense.reset_mem()
    spks = []
    for t in range(20):
        s, mem = dense(fc(x[t]), mem)
        spks.append(s)
    torch.stack(spks).sum().backward()
    spk, _ = layer(x)
    spk.sum().backward()
    assert _rel(layer.threshold.grad, dense.threshold.grad) < 1e-10
    assert _rel(layer.fc.weight.grad, fc.weight.grad) < 1e-10
    cur = (x @ fc.weight.detach().t() + fc.bias.detach())
    neuron(cur)[0].sum().backward()
    assert _rel(neuron.threshold.grad, dense.threshold.grad) < 1e-10


@pytest.mark.parametrize("event_forward", [False, True])
def test_cuda_data_write_seen_by_next_layer(event_forward):
    torch.manual_seed(0)
    a = SparseLinearLeaky(30, 40, beta=0.9, bth=0.4, event_forward=event_forward).cuda()
    b = SparseLinearLeaky(40, 10, beta=0.9, bth=0.4, output=True, event_forward=event_forward).cuda()
    with torch.no_grad():
        a.fc.weight.mul_(4)
    x = (torch.rand(12, 3, 30, device="cuda") < 0.3).float()
    spk = a(x)
    spk.data[2:5] = 0
    spk.data[7, :, :5] = 1
    out, mem = b(spk)
    out2, mem2 = b(spk.detach().clone())
    assert torch.equal(out, out2)
    torch.testing.assert_close(mem, mem2)
