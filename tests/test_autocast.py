"""Mixed precision: under ``torch.autocast`` the fused layers' GEMM runs in bfloat16, the neuron in float32.

The precision recipe (``functional.sparse_lif``): ``I = X Wᵀ + b`` exactly as
``nn.Linear`` computes it under autocast, cast up to float32; scan, membrane,
window and σ' in float32. Checked two ways, on CPU and (where present) CUDA:

* exactly against a reference of the same recipe built from snnTorch itself:
  ``nn.Linear`` under autocast over all T·B rows at once, its output cast to
  float32, then snnTorch's per-step ``Leaky`` in float32 with the layer's
  clamped surrogate. Spikes and membranes bit for bit, gradients to float32
  rounding (the bfloat16 weight-gradient GEMM sees the same operands);
* against snnTorch run entirely under the same autocast, where snnTorch's
  membrane itself is bfloat16 (its state takes the input's dtype): spikes
  flip at the threshold, and the flipped fraction is bounded and reported.
"""
import pytest
import snntorch as snn
import torch
from torch import nn

from snntorch_sparse import SparseLinearLeaky, sparse_fast_sigmoid

from helpers import rel_err

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _layer(device, seed=0, n_in=64, n=48):
    torch.manual_seed(seed)
    layer = SparseLinearLeaky(n_in, n, beta=0.9, spike_grad=sparse_fast_sigmoid(slope=25, bth=0.5), output=True)
    with torch.no_grad():
        layer.fc.weight.mul_(3)
    return layer.to(device)


def _snntorch_twin(layer):
    fc = nn.Linear(layer.in_features, layer.out_features).to(layer.weight.device)
    with torch.no_grad():
        fc.weight.copy_(layer.weight)
        fc.bias.copy_(layer.bias)
    lif = snn.Leaky(beta=0.9, spike_grad=layer.frozen_surrogate()).to(layer.weight.device)
    return fc, lif


def _run_snntorch(fc, lif, x, cast_current):
    """snnTorch's loop. ``cast_current``: the layer's recipe -- one GEMM over all
    T·B rows (``fc`` on the whole sequence) cast to float32, then the neuron;
    else snnTorch's usual per-step ``fc`` with its output as it is."""
    mem = lif.init_leaky()
    spks, mems = [], []
    current = fc(x).float() if cast_current else None
    for t in range(x.shape[0]):
        cur = current[t] if cast_current else fc(x[t])
        spk, mem = lif(cur, mem)
        spks.append(spk)
        mems.append(mem)
    return torch.stack(spks), torch.stack(mems)


def _data(device, T=30, B=8, n_in=64):
    g = torch.Generator().manual_seed(1)
    return (torch.rand(T, B, n_in, generator=g) < 0.2).float().to(device)


@pytest.mark.parametrize("device", DEVICES)
def test_same_recipe_as_nn_linear_under_autocast_then_float32_leaky(device):
    layer = _layer(device)
    x = _data(device).requires_grad_()
    with torch.autocast(device, dtype=torch.bfloat16):
        spk, mem = layer(x)
    assert spk.dtype == mem.dtype == torch.float32
    w = torch.linspace(-1, 1, spk.numel(), device=device).view_as(spk)
    loss = (spk * w).sum() + 0.1 * mem.sum()
    g_sparse = torch.autograd.grad(loss, (layer.weight, layer.bias, x))

    fc, lif = _snntorch_twin(layer)
    x2 = x.detach().clone().requires_grad_()
    with torch.autocast(device, dtype=torch.bfloat16):
        spk_ref, mem_ref = _run_snntorch(fc, lif, x2, cast_current=True)
    assert torch.equal(spk, spk_ref) and torch.equal(mem, mem_ref)
    loss_ref = (spk_ref * w).sum() + 0.1 * mem_ref.sum()
    g_ref = torch.autograd.grad(loss_ref, (fc.weight, fc.bias, x2))
    for a, b in zip(g_sparse, g_ref):
        assert a.dtype == b.dtype == torch.float32
        assert rel_err(a, b) < 1e-5


@pytest.mark.parametrize("device", DEVICES)
def test_against_snntorch_entirely_under_autocast_flips_few_spikes(device, record_property):
    layer = _layer(device)
    x = _data(device, T=50, B=32)
    with torch.no_grad():
        with torch.autocast(device, dtype=torch.bfloat16):
            spk, _ = layer(x)
            fc, lif = _snntorch_twin(layer)
            spk_snn, mem_snn = _run_snntorch(fc, lif, x, cast_current=False)
        spk32, _ = layer(x)
    # snnTorch keeps its membrane in the input's dtype: bfloat16 under autocast
    assert mem_snn.dtype == torch.bfloat16
    flipped = (spk != spk_snn.float()).float().mean().item()
    flipped32 = (spk != spk32).float().mean().item()
    record_property("flipped_vs_snntorch_autocast", flipped)
    record_property("flipped_vs_own_float32", flipped32)
    print(f"spikes flipped: vs snnTorch under autocast {flipped:.2%}, vs our float32 {flipped32:.2%}")
    assert 0 < spk.mean() < 0.5
    assert flipped < 0.05 and flipped32 < 0.05
