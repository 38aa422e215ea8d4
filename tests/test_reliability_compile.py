"""torch.compile: sparse models give the same outputs and gradients compiled as eager."""
import pytest
import torch
import torch._dynamo as dynamo
from torch import nn

from snntorch_sparse import SparseLeaky, SparseLinearLeaky, TimeDistributed


def _net():
    torch.manual_seed(0)
    net = nn.Sequential(
        TimeDistributed(nn.Linear(8, 12)),
        SparseLeaky(beta=0.875, bth=0.4, step_mode="multi", init_hidden=True),
        SparseLinearLeaky(12, 16, beta=0.875, bth=0.4, learn_threshold=True),
        SparseLinearLeaky(16, 4, beta=0.875, bth=0.4),
    )
    with torch.no_grad():
        net[0].module.weight.mul_(3)
        for m in net[2:]:
            m.fc.weight.mul_(3)
    return net


def _x():
    g = torch.Generator().manual_seed(1)
    return (torch.rand(15, 3, 8, generator=g) < 0.4).float()


def _fwd_bwd(model, params, x):
    x = x.clone().requires_grad_(True)
    out = model(x)
    w = torch.linspace(-1, 1, out.shape[-1])
    loss = (out * w).sum() + out.sum()
    grads = torch.autograd.grad(loss, params + [x])
    return out.detach(), grads


@pytest.mark.parametrize("backend", ["eager", "aot_eager", "inductor"])
def test_compiled_matches_eager(backend):
    dynamo.reset()
    net = _net()
    x = _x()
    params = list(net.parameters())
    ref_out, ref_g = _fwd_bwd(net, params, x)
    assert ref_out.sum() > 0
    compiled = torch.compile(net, backend=backend)
    out, g = _fwd_bwd(compiled, params, x)
    assert torch.equal(out, ref_out)
    for a, b in zip(g, ref_g):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # a second call (new data, same shapes) reuses the compiled graphs and stays right
    x2 = (torch.rand(15, 3, 8) < 0.4).float()
    out2 = compiled(x2)
    assert torch.equal(out2, net(x2))
    dynamo.reset()


def test_validation_causes_no_graph_break():
    """The NaN/inf check is an in-graph assertion under torch.compile (no break in _validation.py)."""
    dynamo.reset()
    layer = SparseLinearLeaky(8, 6, beta=0.875)
    explanation = dynamo.explain(layer)(_x())
    files = [fs.filename for r in explanation.break_reasons for fs in r.user_stack]
    assert not any(f.endswith("_validation.py") for f in files), files
    dynamo.reset()


def test_compiled_nan_input_still_refused():
    dynamo.reset()
    layer = SparseLinearLeaky(8, 6, beta=0.875)
    compiled = torch.compile(layer, backend="aot_eager")
    x = _x()
    compiled(x)
    x[3, 1, 2] = float("nan")
    with pytest.raises((ValueError, RuntimeError), match="NaN or inf"):
        compiled(x)
    dynamo.reset()
