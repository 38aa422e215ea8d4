"""Build the Sphinx docs with warnings as errors (skipped when Sphinx is not installed)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("sphinx")
pytest.importorskip("myst_nb")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_docs_build_without_warnings(tmp_path):
    out = tmp_path / "html"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-d",
         str(tmp_path / "doctrees"), str(ROOT / "docs"), str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=280)
    assert proc.returncode == 0, f"sphinx-build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    for page in ("index.html", "api.html", "guide/sparse_gradients.html", "benchmarks.html"):
        assert (out / page).is_file(), page
    api = (out / "api.html").read_text()
    for name in ("SparseLinearLeaky", "SparseLeaky", "sparsify", "sparse_fast_sigmoid"):
        assert name in api, f"{name} missing from the API page"
