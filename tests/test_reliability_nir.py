"""NIR round trip: sparse model -> NIR graph (file) -> snnTorch / sparse model, same spikes."""
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


def _sparse_net(dtype=torch.float32):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(10, 8), snn.Leaky(beta=0.875, init_hidden=True),
        nn.Linear(8, 6), snn.Leaky(beta=0.9, threshold=0.5, init_hidden=True),
        nn.Linear(6, 3), snn.Leaky(beta=0.75, threshold=0.25, init_hidden=True, output=True,
                                    reset_mechanism="zero"),
    ).to(dtype)
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.mul_(4)
    return sparsify(net, bth=0.3)


def _x(dtype=torch.float32):
    g = torch.Generator().manual_seed(5)
    return (torch.rand(30, 4, 10, generator=g) < 0.4).to(dtype)


def _steps(net, x):
    utils.reset(net)
    out = [net(x[t]) for t in range(x.shape[0])]
    return torch.stack([o[0] for o in out]), torch.stack([o[1] for o in out])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip_through_file(tmp_path, dtype):
    net = _sparse_net(dtype)
    x = _x(dtype)
    graph = export_to_nir(net, x)
    kinds = [type(graph.nodes[k]).__name__ for k in graph.nodes]
    assert kinds.count("Affine") == 3 and kinds.count("LIF") == 3
    path = tmp_path / "net.nir"
    nir.write(str(path), graph)
    graph = nir.read(str(path))
    assert dict(graph.metadata[METADATA_KEY]) == {"1": "subtract", "3": "subtract", "5": "zero"}

    spk, mem = net(x)
    assert 0.005 < spk.mean() < 0.9

    sparse2 = import_from_nir(graph, sparse=True, bth=0.3, dtype=dtype)
    assert all(isinstance(m, SparseLinearLeaky) for m in sparse2)
    s2, m2 = sparse2(x)
    assert torch.equal(s2, spk)
    torch.testing.assert_close(m2, mem, rtol=0, atol=0)

    # snnTorch model, one call per step (snnTorch's own atan surrogate returns float32 spikes)
    dense = import_from_nir(graph, dtype=dtype, spike_grad=sparse_fast_sigmoid(bth=0.3))
    assert isinstance(dense[1], snn.Leaky)
    s3, m3 = _steps(dense, x)
    assert torch.equal(s3, spk)
    torch.testing.assert_close(m3, mem)


def test_plain_snntorch_model_and_single_step_sample():
    net = _sparse_net()
    graph = export_to_nir(net, torch.zeros(4, 10))   # one step with a batch dim
    assert METADATA_KEY in graph.metadata


def test_foreign_graph_defaults_to_nir_reset_semantics():
    net = _sparse_net()
    graph = export_to_nir(net, _x())
    graph.metadata = {}
    imported = import_from_nir(graph)
    assert [m.reset_mechanism for m in imported if isinstance(m, snn.Leaky)] == ["zero"] * 3
    imported = import_from_nir(graph, reset_mechanism="subtract")
    assert [m.reset_mechanism for m in imported if isinstance(m, snn.Leaky)] == ["subtract"] * 3
