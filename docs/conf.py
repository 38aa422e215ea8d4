"""Sphinx configuration for snntorch-sparse.

Build: ``sphinx-build -W --keep-going -b html docs docs/_build/html`` (``make docs``).
``make docs`` executes the example notebooks in small mode (see
``nb_execution_mode`` below); a bare ``sphinx-build`` renders them as stored.
"""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS))

# Keep the build independent of a C++ toolchain: importing the package never
# builds the extension, but make sure autodoc never triggers it either.
os.environ.setdefault("SNNTORCH_SPARSE_BACKEND", "reference")

import snntorch_sparse  # noqa: E402

import _generate  # noqa: E402  (docs/_generate.py: benchmark tables, API pages, notebooks)

project = "snntorch-sparse"
author = "snntorch-sparse contributors"
copyright = "2025, snntorch-sparse contributors"
release = snntorch_sparse.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_nb",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints", "_templates",
                    "_generated/benchmark_results.md", "_generated/tutorial_results.md",
                    "_generated/gpu_costs.md", "_generated/more_neurons_results.md"]  # included by benchmarks.md
templates_path = []

# --- MyST / MyST-NB -------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist", "substitution"]
import _figures  # noqa: E402  (docs/_figures.py: measured figures from benchmarks/results/*.json)
myst_substitutions = _figures.substitutions(ROOT)  # {{ name }} in a page: a figure from a results file
myst_heading_anchors = 3
# `make docs` executes every example notebook in small mode (SNNTORCH_SPARSE_NB_SIZE=small), so each
# page shows its outputs and plots; a bare sphinx-build (the test suite's) renders them as stored.
nb_execution_mode = os.environ.get("SNNTORCH_SPARSE_DOCS_EXECUTE", "off")
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_merge_streams = True

# --- autodoc --------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True, "exclude-members": "forward, extra_repr"}
# Heavy or optional imports that the API pages must not require.
autodoc_mock_imports = []
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# No intersphinx: the docs must build offline (CI machines have no network).

# --- HTML -----------------------------------------------------------------
try:
    import sphinx_rtd_theme  # noqa: F401
    html_theme = "sphinx_rtd_theme"
except ImportError:  # pragma: no cover
    html_theme = "alabaster"
html_title = f"snntorch-sparse {release}"
html_static_path = ["_static"]
html_show_sourcelink = False

# Pages generated at build time (benchmark tables, API module list, notebooks).
_generate.run(ROOT, DOCS)


def _drop_missing_toc_entries(app, docname, source):
    """Leave optional pages (written separately) out of index.md's toctree while absent."""
    if docname != "index":
        return
    for page in ("guide/interop",):
        if not (DOCS / f"{page}.md").exists() and not (DOCS / f"{page}.rst").exists():
            source[0] = source[0].replace(f"\n{page}\n", "\n")
            print(f"[docs/conf] {page} not found: left out of the toctree", file=sys.stderr)


def setup(app):
    app.connect("source-read", _drop_missing_toc_entries)
