"""Issue 21, item 3: a write to a sparse layer's spikes through ``.data`` is seen downstream.

``.data`` writes bump no version counter (checked below), so the next fused
layer cannot tell them from its input's version: it reads its input events
from the tensor itself on every call (never from the spike CSR the upstream
layer attached). The result must equal feeding a fresh copy of the modified
spikes, in the forward and in every gradient.
"""
import pytest
import torch

from snntorch_sparse import SparseLinearLeaky
from snntorch_sparse.functional import ACTIVE_INDEX_ATTR


def test_data_writes_bump_no_version():
    """Why a version check cannot work (if this starts failing, PyTorch changed)."""
    t = torch.zeros(4, requires_grad=True) * 1
    v = t._version
    t.data[0] = 1.0
    t.data.mul_(2)
    assert t._version == v


def _pair(backend, event_forward):
    torch.manual_seed(0)
    a = SparseLinearLeaky(30, 40, beta=0.9, bth=0.4, backend=backend, event_forward=event_forward,
                          dtype=torch.float64)
    b = SparseLinearLeaky(40, 10, beta=0.9, bth=0.4, output=True, backend=backend,
                          event_forward=event_forward, dtype=torch.float64)
    with torch.no_grad():
        a.fc.weight.mul_(4)
        b.fc.weight.mul_(3)
    return a, b


def _edit(d):
    d[2:5] = 0                      # drop spikes
    d[7, :, :5] = 1                 # add spikes
    d[9] = 1 - d[9]                 # move spikes


@pytest.mark.parametrize("backend", ["reference", "compiled"])
@pytest.mark.parametrize("event_forward", [None, True, False])
def test_data_write_seen_by_next_layer(backend, event_forward):
    x = (torch.rand(12, 3, 30, generator=torch.Generator().manual_seed(1), dtype=torch.float64) < 0.3).double()
    a, b = _pair(backend, event_forward)
    spk = a(x)
    spk = spk[0] if isinstance(spk, tuple) else spk
    assert getattr(spk, ACTIVE_INDEX_ATTR, None) is not None  # the sets travel with the tensor
    _edit(spk.data)
    out, mem = b(spk)
    (mem.sum() + out.sum()).backward()
    got = [p.grad.clone() for p in (*a.parameters(), *b.parameters())]

    a2, b2 = _pair(backend, event_forward)
    spk2 = a2(x)
    spk2 = spk2[0] if isinstance(spk2, tuple) else spk2
    fresh = spk2.detach().clone()
    _edit(fresh)
    # The same upstream gradient path, through a spike tensor that never had sets attached.
    fresh = fresh + (spk2 - spk2.detach())
    out2, mem2 = b2(fresh)
    (mem2.sum() + out2.sum()).backward()
    want = [p.grad for p in (*a2.parameters(), *b2.parameters())]
    assert torch.equal(out, out2)
    assert torch.allclose(mem, mem2, rtol=1e-12, atol=1e-12)
    for g, w in zip(got, want):
        assert torch.allclose(g, w, rtol=1e-10, atol=1e-12)
