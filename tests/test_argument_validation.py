"""Issue 21, item 6: arguments are checked when a layer is built, with clear errors."""
import pytest
import snntorch as snn
import torch
from torch import nn

import snntorch_sparse as sps
from snntorch_sparse import SparseLeaky, SparseLinearLeaky, desparsify, sparsify


def _seq():
    return nn.Sequential(nn.Linear(3, 4), snn.Leaky(beta=0.9, init_hidden=True),
                         nn.Linear(4, 2), snn.Leaky(beta=0.9, init_hidden=True, output=True))


@pytest.mark.parametrize("bad", ["yes", "auto", 0, 1, 1.0, torch.tensor(True)])
def test_event_forward_only_none_true_false(bad):
    with pytest.raises(ValueError, match="event_forward must be None"):
        SparseLinearLeaky(3, 4, beta=0.9, event_forward=bad)
    with pytest.raises(ValueError, match="event_forward must be None"):
        sparsify(_seq(), event_forward=bad)


@pytest.mark.parametrize("ok", [None, True, False])
def test_event_forward_accepted(ok):
    layer = SparseLinearLeaky(3, 4, beta=0.9, event_forward=ok)
    assert layer(torch.rand(2, 2, 3)).shape == (2, 2, 4)


@pytest.mark.parametrize("bad", ["cuda", "Compiled", "", 1])
def test_bad_backend_fails_at_construction(bad):
    for build in (lambda: SparseLinearLeaky(3, 4, beta=0.9, backend=bad),
                  lambda: SparseLeaky(beta=0.9, backend=bad, step_mode="multi"),
                  lambda: SparseLeaky(beta=0.9, backend=bad),
                  lambda: sparsify(_seq(), backend=bad)):
        with pytest.raises(ValueError, match="backend must be None or one of"):
            build()


@pytest.mark.parametrize("name", ["beta", "threshold"])
def test_column_shaped_parameter_refused(name):
    """[3, 1] holds one value per neuron but would broadcast over the batch in snnTorch."""
    value = torch.full((3, 1), 0.9 if name == "beta" else 1.0)
    kw = {"beta": 0.9, name: value}
    with pytest.raises(ValueError, match=r"has shape \(3, 1\).*broadcast over the batch"):
        SparseLinearLeaky(5, 3, **kw)
    layer = SparseLinearLeaky(5, 3, beta=0.9)
    setattr(layer, name, torch.nn.Parameter(value))   # set after construction: refused at the call
    with pytest.raises(ValueError, match=r"has shape \(3, 1\).*broadcast over the batch"):
        layer(torch.rand(4, 2, 5))
    lif = SparseLeaky(step_mode="multi", **kw)
    with pytest.raises(ValueError, match=r"has shape \(3, 1\).*broadcast over the batch"):
        lif(torch.rand(4, 2, 3))


def test_per_neuron_shapes_accepted():
    x = torch.rand(4, 2, 3)
    for beta in (torch.full((3,), 0.9), torch.full((1, 3), 0.9), 0.9, torch.tensor(0.9)):
        assert SparseLinearLeaky(3, 3, beta=beta)(x).shape == (4, 2, 3)
        assert SparseLeaky(beta=beta, step_mode="multi")(x)[0].shape == (4, 2, 3)
    # [C, H, W] neurons take [C, H, W] parameters
    beta = torch.full((2, 3, 3), 0.9)
    assert SparseLeaky(beta=beta, step_mode="multi")(torch.rand(4, 2, 2, 3, 3))[0].shape == (4, 2, 2, 3, 3)
    with pytest.raises(ValueError, match="one value per neuron"):
        SparseLeaky(beta=torch.full((2, 1, 1), 0.9), step_mode="multi")(torch.rand(4, 2, 2, 3, 3))


def test_sparsify_meta_device_model():
    """Convert a model on the meta device (shapes only), run it there, materialise it."""
    net = _seq().to("meta")
    sp = sparsify(net)
    assert all(p.device.type == "meta" for p in sp.parameters())
    spk, mem = sp(torch.empty(4, 2, 3, device="meta"))
    assert spk.shape == mem.shape == (4, 2, 2) and mem.device.type == "meta"
    real = sparsify(_seq())
    sp = sp.to_empty(device="cpu")
    sp.load_state_dict(real.state_dict())
    x = (torch.rand(4, 2, 3) < 0.5).float()
    for a, b in zip(sp(x), real(x)):
        assert torch.equal(a, b)
    assert isinstance(desparsify(sparsify(_seq().to("meta")))[1], snn.Leaky)


def test_sparsify_meta_conv_and_own_forward():
    cnet = nn.Sequential(nn.Conv2d(1, 4, 3), snn.Leaky(beta=0.9, init_hidden=True), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 5), snn.Leaky(beta=0.9, init_hidden=True, output=True)).to("meta")
    spk, mem = sparsify(cnet)(torch.empty(3, 2, 1, 8, 8, device="meta"))
    assert spk.shape == (3, 2, 5)

    class Own(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.lif = nn.Linear(3, 4), snn.Leaky(beta=0.9)

    own = sparsify(Own().to("meta"))
    assert isinstance(own.lif, SparseLeaky) and own.fc.weight.device.type == "meta"
    assert sps.SparseLeaky is SparseLeaky
