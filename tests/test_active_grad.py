"""ActiveSetGrad: the hand-over of ∂L/∂S between sparse layers behaves as its dense tensor."""
import copy
import io

import pytest
import torch

from helpers import make_pair, rel_err, run_sparse, sparse_params
from snntorch_sparse.active_grad import ActiveSetGrad


class _Sets:
    def __init__(self, flat, shape):
        self.flat, self.shape = flat, shape

    def active_flat(self):
        return self.flat


def _grad():
    vals = torch.tensor([1.5, -2.0, 3.0], dtype=torch.float64)
    sets = _Sets(torch.tensor([1, 4, 10]), (2, 3, 2))
    want = torch.zeros(2, 3, 2, dtype=torch.float64)
    want.view(-1)[torch.tensor([1, 4, 10])] = vals
    return ActiveSetGrad(vals, sets), sets, want


def test_dense_places_values_on_the_active_set():
    g, sets, want = _grad()
    assert g.shape == (2, 3, 2) and g.dtype == torch.float64 and g.device.type == "cpu"
    assert g.values_on(sets) is g.values
    assert g.values_on(_Sets(sets.flat, sets.shape)) is None  # another set: not its values
    assert torch.equal(g.dense(), want)


def test_any_operation_sees_the_dense_tensor():
    g, _, want = _grad()
    other = torch.arange(12, dtype=torch.float64).view(2, 3, 2)
    for op in (lambda t: t + other, lambda t: t * 3, lambda t: t.sum(0), lambda t: t[1, 1],
               lambda t: t.reshape(6, 2), lambda t: t.clone(), lambda t: t.to(torch.float32),
               lambda t: torch.where(t > 0, t, other)):
        got = op(g)
        assert type(got) is torch.Tensor
        assert torch.equal(got, op(want))
    assert torch.equal(torch.stack([g, g]), torch.stack([want, want]))


def test_in_place_change_is_what_a_consumer_then_reads():
    g, sets, want = _grad()
    g.mul_(2)
    assert g.values_on(sets) is None  # densified: its compact values are stale
    assert torch.equal(g.dense(), 2 * want)


def test_python_conversions_use_the_dense_tensor():
    g, _, want = _grad()
    assert (g.numpy() == want.numpy()).all()
    assert g.tolist() == want.tolist()
    assert torch.equal(copy.deepcopy(g), want)
    buf = io.BytesIO()
    torch.save({"g": g}, buf)
    buf.seek(0)
    loaded = torch.load(buf)["g"]
    assert type(loaded) is torch.Tensor and torch.equal(loaded, want)
    assert "3 active of [2, 3, 2]" in repr(g)


def test_values_must_be_one_dimensional():
    with pytest.raises(ValueError, match="values must be 1-D"):
        ActiveSetGrad(torch.zeros(2, 2), _Sets(torch.tensor([0, 1]), (2, 2)))


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("hook", ["returns_new", "in_place", "reads_only"])
def test_hooks_on_hidden_spikes_change_gradients_as_on_a_dense_tensor(backend, hook):
    """A tensor hook on the hidden spikes sees ∂L/∂S and may replace or modify it.

    Scaling ∂L/∂S1 by 3 scales the first layer's parameter gradients by 3 and
    leaves the second layer's alone, whether the hook returns a new tensor or
    changes the one it got in place; a hook that only reads changes nothing.
    """
    dtype = torch.float64
    _, sparse = make_pair([12, 16, 6], 0.875, 1.0, 0.4, dtype=dtype, backend=backend)
    g = torch.Generator().manual_seed(2)
    x = (torch.rand(20, 5, 12, generator=g) < 0.3).to(dtype)
    w = torch.randn(20, 5, 6, dtype=dtype, generator=g)

    def grads(hook_fn=None):
        recs = run_sparse(sparse, x)
        if hook_fn is not None:
            recs[0][0].register_hook(hook_fn)
        params = sparse_params(sparse)
        return torch.autograd.grad((recs[-1][1] * w).sum(), params, allow_unused=True), params

    base, params = grads()
    seen = []
    if hook == "returns_new":
        fn, scale = (lambda d: d * 3), 3.0
    elif hook == "in_place":
        def fn(d):
            seen.append(type(d))
            d.mul_(3)
            return d
        scale = 3.0
    else:
        fn, scale = (lambda d: seen.append(float(d.abs().sum())) and None), 1.0
    hooked, _ = grads(fn)
    layer0 = {id(p) for p in sparse[0].parameters()}
    for p, a, b in zip(params, base, hooked):
        if a is None:
            assert b is None
            continue
        want = a * scale if id(p) in layer0 else a
        assert rel_err(b, want) < 1e-12, (p.shape, rel_err(b, want))
    if hook == "in_place":
        assert seen == [ActiveSetGrad]  # the hook got the hand-over itself
    if hook == "reads_only":
        assert seen and seen[0] > 0
