import pytest
import snntorch as snn
import torch
from snntorch import utils

from snntorch_sparse import LIFConfig, SparseLeaky, SparseLinearLeaky, sparse_lif
from snntorch_sparse.surrogate import sparse_fast_sigmoid

from helpers import rel_err


def _leaky_pair(reset="subtract", **kw):
    sg = sparse_fast_sigmoid(slope=25, bth=0.4)
    return (snn.Leaky(beta=0.875, spike_grad=sg, reset_mechanism=reset, **kw),
            SparseLeaky(beta=0.875, spike_grad=sg, reset_mechanism=reset, **kw))


def test_single_step_is_snntorch_leaky():
    dense, sparse = _leaky_pair()
    assert isinstance(sparse, snn.Leaky)
    cur = torch.randn(10, 4, 6) * 1.5
    md, ms = dense.reset_mem(), sparse.reset_mem()
    for t in range(10):
        sd, md = dense(cur[t], md)
        ss, ms = sparse(cur[t], ms)
        assert torch.equal(sd, ss) and torch.equal(md, ms)


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_multi_step_equals_per_step_loop(reset, dtype):
    dense, _ = _leaky_pair(reset)
    sparse = SparseLeaky(beta=0.875, spike_grad=dense.spike_grad, reset_mechanism=reset,
                         step_mode="multi")
    dense, sparse = dense.to(dtype), sparse.to(dtype)
    cur = (torch.randn(30, 3, 2, 5, dtype=dtype) * 1.5)
    cd, cs = cur.clone().requires_grad_(), cur.clone().requires_grad_()
    m = dense.reset_mem()
    sd, md = [], []
    for t in range(30):
        s, m = dense(cd[t], m)
        sd.append(s)
        md.append(m)
    sd, md = torch.stack(sd), torch.stack(md)
    ss, ms = sparse(cs)
    assert torch.equal(sd, ss) and torch.equal(md, ms)
    w = torch.randn_like(sd)
    (gd,) = torch.autograd.grad((sd * w).sum() + (md * w).sum(), cd)
    (gs,) = torch.autograd.grad((ss * w).sum() + (ms * w).sum(), cs)
    assert rel_err(gs, gd) < (1e-10 if dtype == torch.float64 else 1e-5)
    assert 0 < sparse.activity < 1


def test_init_hidden_and_utils_reset():
    lif = SparseLeaky(beta=0.9, init_hidden=True)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), lif)
    spk = net(torch.randn(2, 4))
    assert spk.shape == (2, 3) and lif.mem.shape == (2, 3)
    lif.mem = lif.mem + 1
    utils.reset(net)
    assert torch.count_nonzero(lif.mem) == 0


def test_output_flag_and_returns():
    lif = SparseLeaky(beta=0.9, init_hidden=True, output=True, step_mode="multi")
    spk, mem = lif(torch.randn(5, 2, 3))
    assert spk.shape == mem.shape == (5, 2, 3)
    assert torch.equal(lif.mem, mem[-1])


def test_learn_beta_threshold_single_step():
    lif = SparseLeaky(beta=0.9, learn_beta=True, learn_threshold=True)
    assert isinstance(lif.beta, torch.nn.Parameter) and isinstance(lif.threshold, torch.nn.Parameter)


def test_readout_mode_and_gradcheck():
    torch.manual_seed(0)
    layer = SparseLinearLeaky(6, 4, beta=0.8, readout=True, learn_beta=True).double()
    x = (torch.rand(7, 3, 6) < 0.4).double().requires_grad_()
    mem = layer(x)
    assert mem.shape == (7, 3, 4)

    def readout(x, w, b, beta):
        return sparse_lif(x, w, b, beta, layer.threshold, LIFConfig(readout=True))[1]

    assert torch.autograd.gradcheck(readout, (x, layer.fc.weight, layer.fc.bias, layer.beta))


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_gradcheck_membrane_path(reset):
    """With a membrane loss the map is piecewise linear: gradcheck holds off the spike edges."""
    torch.manual_seed(1)
    lif = SparseLeaky(beta=0.75, reset_mechanism=reset, step_mode="multi", bth=0.3).double()
    cur = (torch.randn(6, 2, 3, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda c: lif(c)[1], (cur,), eps=1e-7)


def test_multi_step_rejects_unsupported():
    with pytest.raises(ValueError, match="inhibition"):
        SparseLeaky(beta=0.9, step_mode="multi", inhibition=True)
    with pytest.raises(ValueError, match="step_mode"):
        SparseLeaky(beta=0.9, step_mode="many")
