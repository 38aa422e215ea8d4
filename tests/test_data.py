import numpy as np
import pytest
import torch

from snntorch_sparse.data import (FSDD, digits_loaders, encode_audio, fsdd_root, fsdd_spikes, input_sparsity,
                                  load_digits_spikes)


def test_digits_latency_one_spike_per_bright_pixel():
    (xtr, ytr), (xte, yte) = load_digits_spikes(num_steps=20)
    assert xtr.shape[0] == 20 and xtr.shape[2] == 64 and len(ytr) == xtr.shape[1]
    assert set(torch.unique(xtr).tolist()) <= {0.0, 1.0}
    assert xtr.sum(0).max() <= 1  # latency code: at most one spike per pixel
    assert len(ytr) + len(yte) == 1797


def test_digits_loaders_time_major():
    train, _ = digits_loaders(batch_size=16, num_steps=10)
    x, y = next(iter(train))
    assert x.shape == (10, 16, 64) and y.shape == (16,)


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_steps"):
        load_digits_spikes(num_steps=0)
    with pytest.raises(ValueError, match="num_steps"):
        encode_audio(np.zeros(800), num_steps=0)
    with pytest.raises(ValueError, match="mono"):
        encode_audio(np.zeros((800, 2)))
    with pytest.raises(ValueError, match="signal is empty"):
        encode_audio(np.zeros(0))
    with pytest.raises(ValueError, match="root"):
        FSDD(root="/nonexistent")


def test_encode_audio_rising_tone_spikes_up_channels():
    sr = 8000
    t = np.arange(sr) / sr
    tone = np.sin(2 * np.pi * (200 + 1500 * t) * t) * np.clip(t * 4, 0, 1)  # chirp with onset
    s = encode_audio(tone, num_steps=100, channels=16)
    assert s.shape == (100, 32) and s.dtype == np.float32
    assert 0 < s.mean() < 0.5
    assert s[:, :16].sum() > 0  # onsets give up-spikes


def test_fsdd_synthetic_wavs(tmp_path):
    from scipy.io import wavfile
    rec = tmp_path / "recordings"
    rec.mkdir()
    rng = np.random.default_rng(0)
    for d in range(2):
        for i in (0, 7):
            wavfile.write(rec / f"{d}_tester_{i}.wav", 8000, (rng.standard_normal(4000) * 3000).astype(np.int16))
    train = FSDD(tmp_path, train=True, num_steps=30, channels=8, cache_dir=tmp_path / "cache")
    test = FSDD(tmp_path, train=False, num_steps=30, channels=8, cache_dir=tmp_path / "cache")
    assert len(train) == 2 and len(test) == 2
    x, y = train[0]
    assert x.shape == (30, 16) and y.item() in (0, 1)
    again = FSDD(tmp_path, train=True, num_steps=30, channels=8, cache_dir=tmp_path / "cache")
    assert torch.equal(again.data, train.data)  # from the cache


@pytest.mark.skipif(fsdd_root() is None, reason="FSDD not present")
def test_real_fsdd_subset_and_split():
    ds = FSDD(train=False, max_files=40, cache_dir=False)
    assert len(ds) == 40
    assert all(int(f.stem.split("_")[2]) < 5 for f in ds.files)
    density = input_sparsity(ds.data)
    assert 0.01 < density < 0.3
    print(f"FSDD input density {density:.4f}")
