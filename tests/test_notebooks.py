"""The example notebooks: each is a jupytext pair (percent-format ``.py`` + ``.ipynb``).

The ``.py`` script is the source (edit it, then ``jupytext --sync examples/NAME.py``);
the tests check every notebook has its script, that both hold the same cells, and
run every script in small mode (``SNNTORCH_SPARSE_NB_SIZE=small``, each well under
a minute on two CPU cores) as a plain Python program: any error fails. Run one by
hand with e.g. ``pytest tests/test_notebooks.py -k bth_sweep``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))
PAIRED = sorted(p for p in (ROOT / "examples").glob("*.py") if "jupytext:" in p.read_text().split("\n# ---", 1)[0])

nbformat = pytest.importorskip("nbformat")


def test_notebooks_present():
    names = {p.stem for p in NOTEBOOKS}
    expected = {"tutorial_5_sparse", "tutorial_6_sparse", "tutorial_7_sparse", "spoken_digits_sparse",
                "bloc_train", "bth_sweep", "bloc_spoken_digits"}
    assert expected <= names, f"missing notebooks: {sorted(expected - names)}"


def test_every_notebook_is_a_pair():
    """No notebook without its script (the generator examples/_make_notebooks.py is gone)."""
    assert not (ROOT / "examples" / "_make_notebooks.py").exists()
    unpaired = sorted(p.name for p in NOTEBOOKS if p.with_suffix(".py") not in PAIRED)
    assert not unpaired, f"notebooks without a jupytext .py pair: {unpaired}"
    for nb in NOTEBOOKS:
        formats = nbformat.read(nb, as_version=4).metadata.get("jupytext", {}).get("formats", "")
        assert formats == "ipynb,py:percent", (nb.name, formats)


@pytest.mark.parametrize("script", PAIRED, ids=[p.stem for p in PAIRED])
def test_paired_notebooks_are_in_sync(script):
    """Each percent-format script and its .ipynb (jupytext pair) hold the same cells."""
    jupytext = pytest.importorskip("jupytext")
    from_script = jupytext.read(script)
    stored = nbformat.read(script.with_suffix(".ipynb"), as_version=4)
    strip = lambda nb: [(c.cell_type, c.source.strip()) for c in nb.cells]  # noqa: E731
    assert strip(from_script) == strip(stored), (f"{script.name} and its .ipynb differ: run "
                                                 f"`jupytext --sync {script.relative_to(ROOT)}`")


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("script", PAIRED, ids=[p.stem for p in PAIRED])
def test_script_runs_in_small_mode(script):
    pytest.importorskip("matplotlib")
    env = dict(os.environ, SNNTORCH_SPARSE_NB_SIZE="small", MPLBACKEND="Agg",
               # On small shared VMs OpenMP worker threads stall erratically (tens of ms per
               # parallel region); one thread keeps the small runs fast and their timings stable.
               OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, script.name], cwd=script.parent, env=env, capture_output=True,
                         text=True, timeout=590)
    assert res.returncode == 0, f"{script.name} failed:\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}"
    print(f"{script.name}: {time.perf_counter() - t0:.1f} s")
    if script.stem == "bloc_train":  # no warning floods (tqdm's "IProgress not found"), none hidden
        assert "IProgress" not in res.stderr and "warnings.simplefilter(\"ignore\")" not in script.read_text()
