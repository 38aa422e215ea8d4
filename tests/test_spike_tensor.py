"""Compact hidden spikes (SpikeTensor) and the CPU op's time-chunked GEMM forward.

A fused layer's ``[T, B, N]`` spike output holds only its events; every torch
operation sees the dense tensor, writes through any alias are seen by the next
sparse layer, and the gradients are those of dense spikes bit for bit.
"""
import copy
import io
import pickle

import pytest
import torch

from snntorch_sparse import SparseLinearLeaky
from snntorch_sparse.memory import cpu_allocation_timeline
from snntorch_sparse.ops import compiled, fused
from snntorch_sparse.spike_tensor import SpikeTensor

pytestmark = pytest.mark.skipif(not compiled.available(), reason="compiled CPU kernels not built")


def _stack(seed=0, dtype=torch.float64, sizes=(30, 40, 25)):
    torch.manual_seed(seed)
    layers = [SparseLinearLeaky(a, b, beta=0.9, init_hidden=True).to(dtype) for a, b in zip(sizes[:-1], sizes[1:])]
    with torch.no_grad():
        for l in layers:
            l.fc.weight.mul_(4)
    return layers


def _input(T=12, B=5, n=30, p=0.25, dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, n, generator=g) < p).to(dtype)


def test_hidden_output_is_compact_and_equals_the_dense_spikes():
    l1, _ = _stack()
    x = _input()
    s = l1(x)
    assert isinstance(s, SpikeTensor) and s.events() is not None
    total = s.sum()  # from the event count, without building the dense tensor
    assert s.events() is not None
    dense = s.dense()
    assert set(dense.unique().tolist()) <= {0.0, 1.0}
    assert total.item() == dense.sum().item()
    # the same spikes the layer writes densely when it cannot return events ([T, B, C, N])
    s4 = l1(x.unsqueeze(2))
    assert not isinstance(s4, SpikeTensor)
    assert torch.equal(s4.squeeze(2), dense)


def test_every_operation_sees_the_dense_tensor():
    l1, _ = _stack()
    s = l1(_input()).detach()
    d = s.dense().clone()
    assert torch.equal(s.sum(0), d.sum(0))
    assert torch.equal(s[3, 1], d[3, 1])
    assert torch.equal(s * 2 + 1, d * 2 + 1)
    assert torch.equal(torch.nn.functional.linear(s, torch.ones(3, 40, dtype=s.dtype)),
                       torch.nn.functional.linear(d, torch.ones(3, 40, dtype=s.dtype)))
    assert s.numpy().tolist() == d.tolist() == s.tolist()
    assert torch.equal(copy.deepcopy(s), d)
    buf = io.BytesIO()
    torch.save(s, buf)
    buf.seek(0)
    assert torch.equal(torch.load(buf), d)
    assert torch.equal(pickle.loads(pickle.dumps(s)), d)
    assert torch.equal(torch.zeros_like(s), torch.zeros_like(d)) and s.new_zeros(2).shape == (2,)
    assert "SpikeTensor" in repr(s)


def test_batch_rows_builds_only_the_sampled_rows():
    l1, _ = _stack()
    s = l1(_input(B=9)).detach()
    idx = torch.tensor([0, 4, 8])
    assert torch.equal(s.batch_rows(idx), s.dense().index_select(1, idx))


@pytest.mark.parametrize("how", ["data", "inplace", "view", "detach_alias"])
def test_writes_through_any_alias_reach_the_next_layer(how):
    l1, l2 = _stack()
    x = _input()
    s = l1(x)
    with torch.no_grad():
        if how == "data":
            s.data[2:5] = 1.0
        elif how == "inplace":
            s.detach().mul_(0)
        elif how == "view":
            s.detach()[0].fill_(1.0)
        else:
            a = s.detach()
            a.data.zero_()
    assert s.events() is None  # the dense tensor is now the truth
    written = s.detach().clone()
    out = l2(s)
    ref = l2(written)
    assert torch.equal(out.dense(), ref.dense())


def test_gradients_equal_those_through_dense_spikes():
    """Compact hand-over vs the same stack fed plain dense hidden spikes: same gradients bit for bit."""
    grads = []
    for compact in (True, False):
        l1, l2 = _stack()
        x = _input().requires_grad_()
        s = l1(x)
        if not compact:
            s = s * 1.0  # a plain dense tensor in the graph: the next layer reads it densely
        out = l2(s)
        (out * torch.linspace(0, 1, out.shape[-1], dtype=out.dtype)).sum().backward()
        grads.append([x.grad, l1.fc.weight.grad, l1.fc.bias.grad, l2.fc.weight.grad, l2.fc.bias.grad])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_hidden_spikes_are_never_written_densely():
    """A 2-layer step allocates no [T, B, N] float tensor for the hidden spikes.

    (Fixed windows: the adaptive window's sample of a batch this small is the whole input.)
    """
    T, B, n_in, n = 40, 32, 60, 100
    torch.manual_seed(0)
    l1 = SparseLinearLeaky(n_in, n, beta=0.9, init_hidden=True, bth=0.2).float()
    l2 = SparseLinearLeaky(n, 10, beta=0.9, init_hidden=True, bth=0.2).float()
    x = (torch.rand(T, B, n_in) < 0.05).float()

    def step():
        l2(l1(x)).sum().backward()

    step()
    allocations, _ = cpu_allocation_timeline(step)
    hidden = T * B * n * 4
    assert max(abs(b) for _, b, _ in allocations) < hidden / 4, max(abs(b) for _, b, _ in allocations)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_chunked_gemm_forward_matches_event_forward(dtype, bias):
    """event=False: GEMMs over time chunks (several at this size) with the membrane carried."""
    torch.manual_seed(0)
    T, B, n_in, n = 24, 64, 1024, 48  # 256 KiB per step of input: several 4 MiB chunks
    x = (torch.rand(T * B, n_in) < 0.05).to(dtype)
    w = (torch.randn(n, n_in) * 0.15).to(dtype)
    b = (torch.randn(n) * 0.1).to(dtype) if bias else None
    beta, thr = torch.full((n,), 0.9, dtype=dtype), torch.ones(n, dtype=dtype)
    csr = fused.dense_to_csr(x)
    csr = (csr[0], csr[1], None)
    current = torch.nn.functional.linear(x, w, b).view(T, B, n)
    ref = fused.lif_fused_forward(current, None, None, None, beta, thr, 0, 0.3, None, None, True, True,
                                  shape=(T, B))
    got = fused.lif_fused_forward(None, csr, w, b, beta, thr, 0, 0.3, None, None, True, True, shape=(T, B),
                                  event=False)
    assert ref[1].numel() > 0
    for r, g in zip(ref[:4], got[:4]):
        assert torch.equal(r, g)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(got[4], ref[4], rtol=tol, atol=tol)
