"""Issue 21, item 7: docs that cannot go stale.

* The README's "Measured" table is exactly what ``docs/_figures.py`` computes
  from the committed ``benchmarks/results/*.json`` (after new results:
  ``python docs/_figures.py --write``).
* Every ``{{ name }}`` figure a docs page quotes is one of those computed figures.
* The torch version the install instructions promise is ``pyproject.toml``'s.
* Surrogates quoted in the README and docs are real constructors / reprs.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import snntorch.surrogate as snn_surrogate

import snntorch_sparse as sps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))
import _figures  # noqa: E402

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PAGES = [p for p in PAGES if "_build" not in p.parts and "_generated" not in p.parts]


def test_readme_table_is_generated_from_results():
    readme = (ROOT / "README.md").read_text()
    table = _figures.readme_table(readme)
    assert table, "README.md lacks the measured-table markers of docs/_figures.py"
    assert table == _figures.measured_table(ROOT), (
        "README's Measured table differs from benchmarks/results/*.json: run `python docs/_figures.py --write`")


def test_h1000_figure_is_the_results_files():
    subs = _figures.substitutions(ROOT)
    assert subs["h1000_snntorch_saved"] == "2295 MiB"  # 2406469480 bytes in cpu-2cores-h1000.json
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    assert "3 GiB" not in text and "{{ h1000_snntorch_saved }}" in text


def test_docs_substitutions_resolve():
    subs = _figures.substitutions(ROOT)
    for page in PAGES:
        for name in re.findall(r"\{\{\s*(\w+)\s*\}\}", page.read_text()):
            assert name in subs, f"{page.relative_to(ROOT)} quotes {{{{ {name} }}}}, not in docs/_figures.py"


def test_torch_requirement_matches_pyproject():
    req = re.search(r'"torch>=([0-9.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    for page in PAGES:
        for found in re.findall(r"torch\s*(?:>=|≥)\s*([0-9.]+[0-9])", page.read_text()):
            assert found == req, f"{page.relative_to(ROOT)} says torch >= {found}, pyproject.toml >= {req}"


def test_quoted_surrogates_are_real():
    namespace = {k: getattr(sps, k) for k in ("sparse_atan", "sparse_fast_sigmoid", "sparse_sigmoid")}
    for page in PAGES:
        text = page.read_text()
        for name in re.findall(r"`sparse\[(\w+)\]\(", text):
            made = sps.sparsify_surrogate(getattr(snn_surrogate, name)())
            assert repr(made).startswith(f"sparse[{name}]("), (page.name, name, repr(made))
        for call in re.findall(r"(sparse_(?:atan|fast_sigmoid|sigmoid)\([^`()]*\))", text):
            if "..." in call:
                continue
            obj = eval(call, namespace)  # noqa: S307 -- our own docs
            if call == repr(obj):
                continue
            # a constructor call, not a repr: the object must at least rebuild from its repr
            assert repr(eval(repr(obj), namespace)) == repr(obj), (page.name, call)
    # the guide's claims about what sparsify makes of snnTorch's default surrogates
    assert repr(sps.sparsify_surrogate(snn_surrogate.atan())) == "sparse_atan(alpha=2.0, active_fraction=0.08)"
    assert repr(sps.sparsify_surrogate(snn_surrogate.fast_sigmoid(slope=25))).startswith(
        "sparse_fast_sigmoid(slope=25.0, ")


def test_readme_quotes_no_measurement_outside_the_table():
    """Timings, speed-ups and memory figures live in the generated table only."""
    readme = (ROOT / "README.md").read_text()
    outside = readme.replace(_figures.readme_table(readme), "")
    found = re.findall(r"\b\d+(?:\.\d+)?\s?(?:ms|MiB|GiB|GB|x)\b", outside)
    assert not found, f"README quotes measured figures outside the generated table: {found}"
