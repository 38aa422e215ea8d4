"""Issue 21, item 2: what the gradient of a *hidden* spike tensor holds.

Between two sparse layers, ``∂L/∂S`` of the first layer's output spikes is
computed only on that layer's active set (the entries where its surrogate is
non-zero: the only ones its backward uses) and is zero elsewhere. So
``retain_grad``, tensor hooks and ``torch.autograd.grad(loss, spikes)`` see
that restricted gradient, not the full ``∂L/∂S``; every parameter and input
gradient is exact. This test documents both facts.
"""
import pytest
import torch

from snntorch_sparse import SparseLinearLeaky


def _net(backend):
    torch.manual_seed(0)
    a = SparseLinearLeaky(20, 30, beta=0.9, bth=0.3, backend=backend, dtype=torch.float64)
    b = SparseLinearLeaky(30, 5, beta=0.9, bth=0.3, output=True, backend=backend, dtype=torch.float64)
    with torch.no_grad():
        a.fc.weight.mul_(4)
        b.fc.weight.mul_(3)
    return a, b


def _x():
    return (torch.rand(15, 4, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64) < 0.3).double()


def _full_spike_grad(backend):
    """The full ∂L/∂S: the second layer fed a copy of the spikes that carries no active set."""
    a, b = _net(backend)
    spk = a(_x()).detach().requires_grad_()
    _, mem = b(spk)
    mem.sum().backward()
    return spk.grad


@pytest.mark.parametrize("backend", ["reference", "compiled"])
def test_hidden_spike_gradient_is_restricted_to_the_active_set(backend):
    full = _full_spike_grad(backend)
    grads = {}
    for how in ("retain_grad", "hook", "autograd.grad"):   # one run each: they would add up in .grad
        a, b = _net(backend)
        spk = a(_x())
        if how == "retain_grad":
            spk.retain_grad()
        seen = []
        if how == "hook":
            spk.register_hook(lambda g: seen.append(g.clone()))
        _, mem = b(spk)
        if how == "autograd.grad":
            (grads[how],) = torch.autograd.grad(mem.sum(), spk)
            continue
        mem.sum().backward()
        grads[how] = spk.grad if how == "retain_grad" else seen[0]

    # the first layer's active set |U - θ| < bth, from its membrane
    a2, _ = _net(backend)
    a2.output = True
    _, mem_a = a2(_x())
    active = ((mem_a - a2.threshold).abs() < 0.3).detach()
    assert 0 < active.float().mean() < 0.8

    for how, g in grads.items():
        g = torch.as_tensor(g).clone()
        assert torch.allclose(g[active], full[active], rtol=1e-10, atol=1e-12), how   # exact on the active set
        assert torch.count_nonzero(g[~active]) == 0, how                              # zero off it
    assert torch.count_nonzero(full[~active]) > 0   # ... where the full ∂L/∂S is not zero


@pytest.mark.parametrize("backend", ["reference", "compiled"])
def test_parameter_gradients_are_exact(backend):
    """The restriction loses nothing the parameters need: the first layer's surrogate is zero there."""
    a, b = _net(backend)
    _, mem = b(a(_x()))
    mem.sum().backward()
    a2, b2 = _net(backend)
    spk = a2(_x())
    _, mem2 = b2(spk.detach() + (spk - spk.detach()))   # the same graph, full ∂L/∂S handed back
    mem2.sum().backward()
    for p, q in zip((*a.parameters(), *b.parameters()), (*a2.parameters(), *b2.parameters())):
        assert torch.allclose(p.grad, q.grad, rtol=1e-10, atol=1e-12)


def test_docs_say_what_hidden_spike_gradients_hold():
    from pathlib import Path

    import snntorch_sparse.active_grad as ag
    from snntorch_sparse import functional

    root = Path(__file__).resolve().parent.parent
    assert "exact gradient" not in (ag.__doc__ or "")
    for text in (ag.__doc__, functional.sparse_lif.__doc__, SparseLinearLeaky.__doc__,
                 (root / "docs" / "guide" / "backends.md").read_text(),
                 (root / "docs" / "guide" / "sparse_gradients.md").read_text()):
        flat = " ".join(text.split())
        assert "zero off the active set" in flat or "zero elsewhere" in flat, text[:80]
