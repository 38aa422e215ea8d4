"""scikit-learn digits, latency-coded; the time-major collate."""
import pytest
import torch

from snntorch_sparse.data import digits_loaders, load_digits_spikes, time_major_collate


@pytest.fixture(scope="module")
def digits10():
    return load_digits_spikes(num_steps=10)


def test_shapes_and_latency_code(digits10):
    (xtr, ytr), (xte, yte) = digits10
    assert xtr.shape[0] == 10 and xtr.shape[2] == 64 and xtr.dtype == torch.float32
    assert xtr.shape[1] == len(ytr) and xte.shape[1] == len(yte)
    assert len(ytr) + len(yte) == 1797 and abs(len(yte) / 1797 - 0.2) < 0.01
    assert set(torch.unique(xtr).tolist()) <= {0.0, 1.0}
    assert xtr.sum(0).max() <= 1  # latency code: at most one spike per pixel
    assert torch.bincount(yte, minlength=10).min() >= 35  # stratified


def test_matches_demo_inline_fallback(digits10):
    """demo.py has an inline copy used when the package is missing: same output bit for bit."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from snntorch import spikegen

    d = load_digits()
    x = torch.tensor(d.images.reshape(-1, 64) / 16.0, dtype=torch.float32)
    xtr, xte, ytr, yte = train_test_split(x, torch.tensor(d.target), test_size=0.2, random_state=0, stratify=d.target)
    ref = spikegen.latency(xtr, num_steps=10, tau=5, threshold=0.01, normalize=True, linear=True, clip=True)
    (xtr2, ytr2), (xte2, yte2) = digits10
    assert torch.equal(ref, xtr2) and torch.equal(ytr, ytr2) and torch.equal(yte, yte2)


def test_brighter_fires_earlier(digits10):
    (xtr, _), _ = digits10
    first = xtr.argmax(0).float()  # spike time per (sample, pixel)
    fired = xtr.sum(0) > 0
    assert fired.any() and first[fired].min() == 0  # the brightest pixels fire at t = 0


def test_seed_changes_split():
    (_, y0), _ = load_digits_spikes(num_steps=2, seed=0)
    (_, y1), _ = load_digits_spikes(num_steps=2, seed=1)
    assert not torch.equal(y0, y1)


def test_loaders_time_major():
    train, test = digits_loaders(batch_size=16, num_steps=10)
    x, y = next(iter(train))
    assert x.shape == (10, 16, 64) and y.shape == (16,) and x.dtype == torch.float32
    assert sum(len(yb) for _, yb in test) == 360


def test_collate_pads_variable_length():
    batch = [(torch.ones(3, 5), 1), (torch.ones(5, 5), torch.tensor(2))]
    x, y = time_major_collate(batch)
    assert x.shape == (5, 2, 5) and y.tolist() == [1, 2]
    assert x[3:, 0].sum() == 0 and x[:, 1].sum() == 25
    with pytest.raises(ValueError, match="batch"):
        time_major_collate([])


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_steps"):
        load_digits_spikes(num_steps=0)
    with pytest.raises(ValueError, match="test_size"):
        load_digits_spikes(test_size=1.5)
