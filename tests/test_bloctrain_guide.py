"""Issue 21, item 9: the BlocTrain guide cites the original work, links its API page, lists the examples."""
from pathlib import Path

import snntorch_sparse.bloc as bloc

ROOT = Path(__file__).resolve().parent.parent
DOI = "10.3389/fnins.2021.603433"


def test_guide_cites_links_and_lists_examples():
    guide = " ".join((ROOT / "docs" / "guide" / "bloctrain.md").read_text().split())
    assert "Srinivasan" in guide and "Roy" in guide and DOI in guide
    assert "Block-Wise Conditional Training and Inference for Efficient Spike-Based Deep Learning" in guide
    assert "{mod}`snntorch_sparse.bloc`" in guide                      # the API page
    for example in ("examples/bloc_cifar10_resnet9.py", "_generated/examples/bloc_train",
                    "_generated/examples/bloc_spoken_digits"):
        assert example in guide, example
        if example.startswith("examples/"):
            assert (ROOT / example).exists()
    assert DOI in (bloc.__doc__ or "")
