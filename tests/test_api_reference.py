"""Issue 21, item 8: what the API reference documents (the Sphinx build itself: tests/test_docs.py)."""
from __future__ import annotations

import inspect
import sys
from pathlib import Path

import pytest

import snntorch_sparse as sps
from snntorch_sparse import bloc
from snntorch_sparse.functional import LIFConfig

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))
import _generate  # noqa: E402


def test_api_pages_cover_public_modules_only(tmp_path):
    modules = _generate.generate_api(tmp_path)
    for public in ("snntorch_sparse.nir", "snntorch_sparse.checkpoint", "snntorch_sparse.convert",
                   "snntorch_sparse.bloc", "snntorch_sparse.recurrent", "snntorch_sparse.rsynaptic",
                   "snntorch_sparse.alpha"):
        assert public in modules, public
    for internal in ("snntorch_sparse.ops", "snntorch_sparse.ops.reference", "snntorch_sparse.ops.compiled",
                     "snntorch_sparse.ops.fused", "snntorch_sparse.fused_cpu", "snntorch_sparse.active_grad"):
        assert internal not in modules, internal
    pages = " ".join(p.read_text() for p in (tmp_path / "api").glob("*.rst"))
    assert "automodule:: snntorch_sparse.nir" in pages and "automodule:: snntorch_sparse.checkpoint" in pages


def test_report_documents_its_keys(tmp_path):
    doc = inspect.getdoc(bloc.report)
    source = inspect.getsource(bloc.report)
    keys = ["accuracy_early_exit", "accuracy_all_blocks", "exit_fraction", "synops_early_exit", "synops_all_blocks",
            "synops_ratio", "macs_early_exit", "macs_all_blocks", "macs_ratio", "parameters"]
    for key in keys:
        assert f'"{key}"' in source, key       # the function returns it ...
        assert f"``{key}``" in doc, key         # ... and its docstring says so


@pytest.mark.parametrize("obj, words", [
    (bloc.conv_bn_lif, ["in_ch", "out_ch", "pool", "norm", "num_steps", "Example"]),
    (sps.TimeDistributed, ["module", "Shape", "Example"]),
    (LIFConfig, ["surrogate", "reset_mode", "readout", "backend", "event_forward", "need_mem", "stats"]),
    (sps.sparsify_surrogate, ["spike_grad", "bth", "active_fraction", "Returns", "Example"]),
    (sps.sparsify, ["Example", "[T, B, ...]", "in one call", "one step at a time"]),
    (sps.desparsify, ["once per step"]),
])
def test_docstrings_document_parameters(obj, words):
    doc = inspect.getdoc(obj) or ""
    for w in words:
        assert w in doc, f"{getattr(obj, '__name__', obj)}: {w!r} not in its docstring"


def test_sparsify_example_runs():
    """The docstring's claim: the converted nn.Sequential takes the whole sequence in one call."""
    import snntorch as snn
    import torch
    from torch import nn

    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.MaxPool2d(2), snn.Leaky(beta=0.9, init_hidden=True), nn.Flatten(),
                        nn.Linear(4 * 3 * 3, 5), snn.Leaky(beta=0.9, init_hidden=True, output=True))
    sparse = sps.sparsify(net)
    assert isinstance(sparse[0], sps.TimeDistributed) and sparse[0].per_step  # conv stack: per step inside
    spk, mem = sparse(torch.rand(7, 2, 1, 8, 8))
    assert spk.shape == mem.shape == (7, 2, 5)
