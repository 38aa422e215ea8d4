"""The tutorial comparison module (small mode) and the committed results it produced."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from snntorch_sparse import tutorials

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "tutorials-cpu.json"


def test_compare_runs_and_reports_on_tutorial5_small():
    data = tutorials.load_data("tutorial5", 25, quick=True)
    r = tutorials.compare("tutorial5", seed=0, quick=True, data=data, epochs=1, log=lambda *a: None)
    for key in ("acc_dense", "acc_sparse", "hidden_activity", "step_ms_dense", "step_ms_sparse", "speedup"):
        assert r[key] is not None and r[key] >= 0, key
    assert 0.03 < r["hidden_activity"] < 0.15


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="name must be one of"):
        tutorials.load_data("tutorial9", 25, quick=True)
    with pytest.raises(SystemExit):
        tutorials.main(["--epochs", "0"])


@pytest.mark.skipif(not RESULTS.exists(), reason="no committed tutorial results")
def test_committed_results_meet_the_issue_targets_and_readme_quotes_them():
    result = json.loads(RESULTS.read_text())
    assert not result["quick"] and set(result["summary"]) == set(tutorials.TUTORIALS)
    assert tutorials.summarize(result["runs"]) == result["summary"]
    for name, s in result["summary"].items():
        assert len(s["seeds"]) == 3, name
        assert s["acc_gap_points"] <= 2.0, (name, s["acc_gap_points"])
        assert s["hidden_activity"] <= 0.10, (name, s["hidden_activity"])
    assert tutorials.readme_row(result) in (ROOT / "README.md").read_text(), (
        "README's tutorial row differs from the results file: paste tutorials.readme_row(result)")
