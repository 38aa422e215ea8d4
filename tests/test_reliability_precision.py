"""Precision: float32/float64 work, half precision is refused clearly, autocast is handled."""
import pytest
import torch
from torch import nn

from snntorch_sparse import SparseLeaky, SparseLinearLeaky, TimeDistributed

from helpers import dense_params, make_pair, rel_err, run_dense, run_sparse, sparse_params


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-11)])
def test_float32_and_float64_parity(dtype, tol):
    dense, sparse = make_pair([10, 8, 5], beta=0.875, threshold=1.0, bth=0.4, dtype=dtype)
    x = (torch.rand(20, 3, 10) < 0.3).to(dtype)
    rd, rs = run_dense(dense, x), run_sparse(sparse, x)
    assert rs[-1][0].dtype == dtype and rs[-1][1].dtype == dtype
    assert torch.equal(rd[-1][0], rs[-1][0])
    gd = torch.autograd.grad(rd[-1][1].sum() + rd[-1][0].sum(), dense_params(dense))
    gs = torch.autograd.grad(rs[-1][1].sum() + rs[-1][0].sum(), sparse_params(sparse))
    for a, b in zip(gs, gd):
        assert a.dtype == dtype
        assert rel_err(a, b) < tol


@pytest.mark.parametrize("half", [torch.bfloat16, torch.float16])
def test_half_inputs_refused(half):
    layer = SparseLinearLeaky(6, 4, beta=0.9)
    x = (torch.rand(5, 2, 6) < 0.5).to(half)
    with pytest.raises(TypeError, match="float32 or float64"):
        layer(x)
    lif = SparseLeaky(beta=0.9, step_mode="multi")
    with pytest.raises(TypeError, match="float32 or float64"):
        lif(x)


@pytest.mark.parametrize("half", [torch.bfloat16, torch.float16])
def test_half_model_refused(half):
    layer = SparseLinearLeaky(6, 4, beta=0.9).to(half)
    with pytest.raises(TypeError):
        layer((torch.rand(5, 2, 6) < 0.5).to(half))
    with pytest.raises(TypeError, match="dtype"):
        layer((torch.rand(5, 2, 6) < 0.5).float())


def test_mixed_dtype_refused():
    layer = SparseLinearLeaky(6, 4, beta=0.9).double()
    with pytest.raises(TypeError, match="dtype"):
        layer((torch.rand(5, 2, 6) < 0.5).float())


def _net():
    torch.manual_seed(0)
    net = nn.Sequential(SparseLinearLeaky(10, 12, beta=0.875, bth=0.4),
                        SparseLinearLeaky(12, 4, beta=0.875, bth=0.4, output=True))
    with torch.no_grad():
        for m in net:
            m.fc.weight.mul_(3)
    return net


def test_autocast_runs_the_gemm_in_bfloat16_and_the_neuron_in_float32():
    """Decision: under autocast the layers' GEMM runs in the autocast dtype, as
    snnTorch's ``nn.Linear`` does; the scan, membrane and window stay float32
    (tests/test_autocast.py checks the numbers)."""
    net = _net()
    x = (torch.rand(20, 3, 10) < 0.3).float()
    ref_spk, ref_mem = net(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        spk, mem = net(x)
    assert spk.dtype == torch.float32 and mem.dtype == torch.float32
    assert not torch.equal(mem, ref_mem)  # the bfloat16 GEMM rounds the current
    assert (mem - ref_mem).abs().max() < 0.1


def test_autocast_bfloat16_input_from_autocast_layer():
    torch.manual_seed(0)
    front = TimeDistributed(nn.Linear(10, 10))
    net = nn.Sequential(front, SparseLeaky(beta=0.875, step_mode="multi", init_hidden=True), *_net())
    x = torch.rand(20, 3, 10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        spk, mem = net(x)
    assert spk.dtype == torch.float32
