"""Issue 21, item 4: integrate-and-fire neurons (beta = 1) round-trip through NIR exactly.

snnTorch's exporter writes beta = 1 as a LIF node with tau = r = inf; reading
that back gave a NaN threshold. Whole IF layers are written as NIR ``IF`` nodes
(r = 1); layers that mix beta = 1 with leaky neurons keep tau = r = inf for
those, and both read back as beta = 1 with the threshold unchanged.
"""
import numpy as np
import pytest
import snntorch as snn
import torch
from snntorch import utils
from torch import nn

nir = pytest.importorskip("nir")
pytest.importorskip("nirtorch")

from snntorch_sparse import SparseLinearLeaky, sparsify  # noqa: E402
from snntorch_sparse.nir import METADATA_KEY, export_to_nir, import_from_nir  # noqa: E402
from snntorch_sparse.surrogate import sparse_fast_sigmoid  # noqa: E402


def _net(dtype):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(10, 8), snn.Leaky(beta=1, threshold=0.75, init_hidden=True),
        nn.Linear(8, 6), snn.Leaky(beta=1.0, init_hidden=True, reset_mechanism="zero"),
        nn.Linear(6, 3), snn.Leaky(beta=torch.tensor([1.0, 0.875, 1.0]), threshold=0.25, init_hidden=True,
                                    output=True),
    ).to(dtype)
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.mul_(4)
    return sparsify(net, bth=0.3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_if_round_trip(tmp_path, dtype):
    net = _net(dtype)
    x = (torch.rand(25, 4, 10, generator=torch.Generator().manual_seed(3)) < 0.4).to(dtype)
    with np.errstate(all="raise"):  # no division by zero / NaN on the way
        graph = export_to_nir(net, x)
    kinds = {k: type(n).__name__ for k, n in graph.nodes.items()}
    assert kinds["1"] == "IF" and kinds["3"] == "IF" and kinds["5"] == "LIF"
    assert np.all(graph.nodes["1"].r == 1) and np.allclose(graph.nodes["1"].v_threshold, 0.75)
    path = tmp_path / "if.nir"
    nir.write(str(path), graph)
    graph = nir.read(str(path))
    assert dict(graph.metadata[METADATA_KEY]) == {"1": "subtract", "3": "zero", "5": "subtract"}

    spk, mem = net(x)
    assert 0.01 < float(spk.detach().mean()) < 0.9
    with np.errstate(all="raise"):
        sparse2 = import_from_nir(graph, sparse=True, bth=0.3, dtype=dtype)
        dense = import_from_nir(graph, dtype=dtype, spike_grad=sparse_fast_sigmoid(bth=0.3))
    assert all(isinstance(m, SparseLinearLeaky) for m in sparse2)
    for layer, want in zip(sparse2, ([1.0], [1.0], [1.0, 0.875, 1.0])):
        assert layer.beta.reshape(-1).tolist() == want or layer.beta.reshape(-1).unique().tolist() == want
        assert torch.isfinite(layer.threshold).all()
    assert float(sparse2[0].threshold.reshape(-1)[0]) == 0.75
    s2, m2 = sparse2(x)
    assert torch.equal(s2, spk)
    torch.testing.assert_close(m2, mem, rtol=0, atol=0)

    utils.reset(dense)
    out = [dense(x[t]) for t in range(x.shape[0])]
    assert isinstance(dense[1], snn.Leaky) and float(dense[1].beta) == 1.0
    assert torch.equal(torch.stack([o[0] for o in out]), spk)


def test_if_node_from_another_tool():
    """An ``IF`` node with r != 1: the input scale is folded into the threshold."""
    n = 4
    graph = nir.NIRGraph.from_list(
        nir.Affine(weight=np.eye(n, dtype=np.float32), bias=np.zeros(n, dtype=np.float32)),
        nir.IF(r=np.full(n, 2.0, dtype=np.float32), v_threshold=np.full(n, 1.0, dtype=np.float32)))
    model = import_from_nir(graph)
    lif = [m for m in model if isinstance(m, snn.Leaky)][0]
    assert float(lif.beta) == 1.0 and float(lif.threshold) == 0.5
    assert lif.reset_mechanism == "zero"  # NIR's IF resets to v_reset
