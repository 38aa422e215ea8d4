"""Execute every example notebook (examples/*.ipynb) in small mode; any cell error fails.

The notebooks read ``SNNTORCH_SPARSE_NB_SIZE``; here it is ``small`` so each one
runs in well under a minute on two CPU cores. Run one by hand with e.g.
``pytest tests/test_notebooks.py -k bth_sweep``.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    monkeypatch.setenv("SNNTORCH_SPARSE_NB_SIZE", "small")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # On small shared VMs OpenMP worker threads stall erratically (tens of ms per
    # parallel region); one thread keeps the small runs fast and their timings stable.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # The kernel inherits this process's environment (and so this venv's python).
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{path.name}: a cell failed:\n{exc}", pytrace=False)
    print(f"{path.name}: {time.perf_counter() - t0:.1f} s")


def test_notebooks_present():
    names = {p.stem for p in NOTEBOOKS}
    expected = {"tutorial_5_sparse", "tutorial_6_sparse", "tutorial_7_sparse", "spoken_digits_sparse",
                "bloc_train", "bth_sweep"}
    assert expected <= names, f"missing notebooks: {sorted(expected - names)}"


PAIRED = sorted((ROOT / "examples").glob("tutorial_*_sparse.py"))


@pytest.mark.parametrize("script", PAIRED, ids=[p.stem for p in PAIRED])
def test_paired_notebooks_are_in_sync(script):
    """Each percent-format script and its .ipynb (jupytext pair) hold the same cells."""
    jupytext = pytest.importorskip("jupytext")
    from_script = jupytext.read(script)
    stored = nbformat.read(script.with_suffix(".ipynb"), as_version=4)
    strip = lambda nb: [(c.cell_type, c.source.strip()) for c in nb.cells]  # noqa: E731
    assert strip(from_script) == strip(stored), (f"{script.name} and its .ipynb differ: run "
                                                 f"`jupytext --sync {script.relative_to(ROOT)}`")

