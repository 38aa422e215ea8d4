"""Hypothesis fuzzing: SparseLinearSynaptic / SparseLinearRLeaky (both backends) vs snnTorch, whole
sequence and in chunks with carried state."""
import pytest
import snntorch as snn
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from snntorch_sparse import SparseLinearRLeaky, SparseLinearSynaptic
from snntorch_sparse.surrogate import sparse_fast_sigmoid

from helpers import rel_err


@pytest.fixture(autouse=True, scope="module")
def _always_kernel():
    import snntorch_sparse.recurrent as rec
    old, rec._KERNEL_MAX_FRACTION = rec._KERNEL_MAX_FRACTION, 2.0
    yield
    rec._KERNEL_MAX_FRACTION = old


def _chunks(T, cut):
    out, t = [], 0
    while t < T:
        c = min(cut, T - t)
        out.append((t, c))
        t += c
    return out


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["synaptic", "rleaky", "rleaky_1to1"]), T=st.integers(1, 10), B=st.integers(1, 3),
       n_in=st.integers(1, 7), n=st.integers(1, 7), reset=st.sampled_from(["subtract", "zero", "none"]),
       alpha=st.sampled_from([0.0, 0.5, 0.875, 1.0]), beta=st.sampled_from([0.0, 0.5, 0.875, 1.0]),
       threshold=st.sampled_from([0.25, 1.0, 2.0]), bth=st.sampled_from([0.05, 0.4, 5.0]),
       gain=st.sampled_from([1.0, 3.0, 8.0]), learn=st.booleans(), cut=st.integers(1, 10),
       backend=st.sampled_from(["reference", "compiled"]), seed=st.integers(0, 2 ** 16))
def test_fuzz_more_neurons(kind, T, B, n_in, n, reset, alpha, beta, threshold, bth, gain, learn, cut, backend,
                           seed):
    dtype = torch.float64
    torch.manual_seed(seed)
    sg = sparse_fast_sigmoid(slope=25, bth=bth)
    fc = nn.Linear(n_in, n, dtype=dtype)
    with torch.no_grad():
        fc.weight.mul_(gain)
    common = dict(beta=beta, threshold=threshold, spike_grad=sg, reset_mechanism=reset, learn_beta=learn,
                  learn_threshold=learn)
    if kind == "synaptic":
        dense = snn.Synaptic(alpha=alpha, learn_alpha=learn, **common).to(dtype)
        sparse = SparseLinearSynaptic(n_in, n, alpha=alpha, learn_alpha=learn, output=True, dtype=dtype,
                                      backend=backend, stateful=True, event_forward=False, **common)
    elif kind == "rleaky":
        dense = snn.RLeaky(linear_features=n, **common).to(dtype)
        with torch.no_grad():
            dense.recurrent.weight.mul_(gain)
        sparse = SparseLinearRLeaky(n_in, n, output=True, dtype=dtype, backend=backend, stateful=True, event_forward=False, **common)
        with torch.no_grad():
            sparse.recurrent.weight.copy_(dense.recurrent.weight)
            sparse.recurrent.bias.copy_(dense.recurrent.bias)
    else:
        V = torch.linspace(-1.0, 1.5, n, dtype=dtype)
        dense = snn.RLeaky(all_to_all=False, V=V, **common).to(dtype)
        dense.recurrent.V = dense.V
        sparse = SparseLinearRLeaky(n_in, n, all_to_all=False, V=V, output=True, dtype=dtype, backend=backend,
                                    stateful=True, event_forward=False, **common)
    with torch.no_grad():
        sparse.fc.weight.copy_(fc.weight)
        sparse.fc.bias.copy_(fc.bias)
        for name in ("beta", "threshold", "alpha"):
            if hasattr(dense, name) and hasattr(sparse, name):
                getattr(sparse, name).copy_(getattr(dense, name).to(dtype))
    g = torch.Generator().manual_seed(seed + 1)
    x = (torch.rand(T, B, n_in, generator=g) < 0.4).to(dtype)
    w = torch.randn(T, B, n, generator=g, dtype=dtype)
    xd, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
    # snnTorch: one loop over the whole sequence
    state = dense.reset_mem()
    spk_d, mem_d = [], []
    for t in range(T):
        out = dense(fc(xd[t]), *state)
        spk_d.append(out[0])
        mem_d.append(out[-1])
        state = out[1:] if kind == "synaptic" else out
    spk_d, mem_d = torch.stack(spk_d), torch.stack(mem_d)
    # ours: chunks of `cut` steps, state carried (no detach: whole-sequence gradients)
    spk_s, mem_s = [], []
    for t0, c in _chunks(T, cut):
        out = sparse(xs[t0:t0 + c])
        spk_s.append(out[0])
        mem_s.append(out[-1])
    spk_s, mem_s = torch.cat(spk_s), torch.cat(mem_s)
    assert torch.equal(spk_d, spk_s)
    torch.testing.assert_close(mem_s, mem_d, rtol=1e-12, atol=1e-12)
    ((spk_d * w).sum() + (mem_d * w).sum()).backward()
    ((spk_s * w).sum() + (mem_s * w).sum()).backward()
    pairs = [(sparse.fc.weight, fc.weight), (sparse.fc.bias, fc.bias), (xs, xd)]
    if kind == "rleaky":
        pairs += [(sparse.recurrent.weight, dense.recurrent.weight), (sparse.recurrent.bias, dense.recurrent.bias)]
    elif kind == "rleaky_1to1":
        pairs.append((sparse.V, dense.V))
    if learn:
        pairs += [(sparse.beta, dense.beta), (sparse.threshold, dense.threshold)]
        if kind == "synaptic":
            pairs.append((sparse.alpha, dense.alpha))
    for a, b in pairs:
        ga = a.grad if a.grad is not None else torch.zeros_like(a)
        gb = b.grad if b.grad is not None else torch.zeros_like(b)
        assert rel_err(ga, gb.reshape(ga.shape).to(ga.dtype)) < 1e-10
