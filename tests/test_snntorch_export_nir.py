"""Issue 21, item 5: snnTorch's own NIR exporter on a converted (sparse) model.

``snntorch.export_nir.export_to_nir(sparse_net, x)`` used to print "module not
implemented" and fail with an AttributeError. Now it exports through
``snntorch_sparse.nir`` (the equivalent snnTorch graph), whichever of the two
packages is imported first; a name bound before ``snntorch_sparse`` was
imported raises a clear ``TypeError`` pointing to ``snntorch_sparse.nir``.
"""
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("nir")
pytest.importorskip("nirtorch")

_NET = """
import torch, snntorch as snn
from torch import nn
torch.manual_seed(0)
def dense():
    return nn.Sequential(nn.Linear(10, 8), snn.Leaky(beta=0.9, init_hidden=True),
                         nn.Linear(8, 3), snn.Leaky(beta=0.9, init_hidden=True, output=True))
"""


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c",
                           textwrap.dedent(_NET) + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=300)


def test_snntorch_exporter_exports_sparse_model():
    res = _run("""
        import snntorch_sparse as sps
        import snntorch.export_nir
        from snntorch.export_nir import export_to_nir
        from snntorch_sparse.nir import import_from_nir
        net = sps.sparsify(dense(), bth=0.3)
        for sample in (torch.zeros(4, 2, 10), torch.zeros(2, 10)):
            g = snntorch.export_nir.export_to_nir(net, sample)
            assert [type(n).__name__ for n in g.nodes.values()] == ["Input", "Affine", "LIF", "Affine", "LIF",
                                                                       "Output"], g.nodes
            g = export_to_nir(net, sample)
        back = import_from_nir(g, sparse=True, bth=0.3)
        x = (torch.rand(20, 2, 10) < 0.5).float()
        assert torch.equal(back(x)[0], net(x)[0])
        # snnTorch models still go to snnTorch's own exporter
        plain = nn.Sequential(nn.Linear(10, 8), snn.Leaky(beta=torch.full((8,), 0.9),
                                                                threshold=torch.ones(8), init_hidden=True))
        g = export_to_nir(plain, torch.zeros(10))
        assert "snntorch_sparse_reset_mechanism" not in (g.metadata or {})
        print("OK")
    """)
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr[-3000:]
    assert "module not implemented" not in res.stdout + res.stderr


def test_exporter_imported_first_gives_clear_error():
    res = _run("""
        from snntorch.export_nir import export_to_nir   # bound before snntorch_sparse is imported
        import snntorch.export_nir
        import snntorch_sparse as sps
        net = sps.sparsify(dense(), bth=0.3)
        g = snntorch.export_nir.export_to_nir(net, torch.zeros(4, 2, 10))   # the module's name works
        assert len(g.nodes) == 6
        try:
            export_to_nir(net, torch.zeros(4, 2, 10))
        except TypeError as e:
            assert "snntorch_sparse.nir.export_to_nir" in str(e), e
            print("OK")
    """)
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr[-3000:]
