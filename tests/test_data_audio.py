"""The SHD-style audio front end: synthetic wavs, and the real FSDD when present."""
import time

import numpy as np
import pytest
import torch

from snntorch_sparse.data import FSDD, encode_audio, fsdd_root, fsdd_spikes, input_sparsity, mel_filterbank

SR = 8000


def _chirp(seconds=1.0):
    t = np.arange(int(SR * seconds)) / SR
    return np.sin(2 * np.pi * (200 + 1500 * t) * t) * np.clip(t * 4, 0, 1)  # rising chirp with an onset


def _write_fsdd(root, digits=(0, 1, 2), indices=(0, 7, 9), seed=0):
    from scipy.io import wavfile
    rec = root / "recordings"
    rec.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for d in digits:
        for i in indices:
            t = np.arange(4000 + 400 * d) / SR
            a = np.sin(2 * np.pi * (300 + 400 * d) * t) * np.hanning(len(t)) + 0.05 * rng.standard_normal(len(t))
            wavfile.write(rec / f"{d}_tester_{i}.wav", SR, (a * 8000).astype(np.int16))
    (rec / "README.txt").write_text("not a recording")
    (rec / "notes.wav").write_bytes(b"")  # odd name: ignored, not parsed


def test_mel_filterbank_covers_band():
    fb = mel_filterbank(16)
    assert fb.shape == (16, 129) and (fb >= 0).all() and fb.max() <= 1
    assert (fb.sum(1) > 0).all()  # no empty band
    centres = fb.argmax(1)
    assert (np.diff(centres) >= 0).all()  # ordered low to high


def test_encode_shape_and_onset_spikes():
    s = encode_audio(_chirp(), num_steps=100, channels=16)
    assert s.shape == (100, 32) and s.dtype == np.float32
    assert set(np.unique(s)) <= {0.0, 1.0}
    assert 0 < s.mean() < 0.5
    assert s[:, :16].sum() > 0  # onsets give up-spikes
    assert s[0].sum() == 0  # frame 0 only sets the reference


def test_encode_silence_and_pad_crop():
    assert encode_audio(np.zeros(8000), num_steps=50).sum() == 0
    short = encode_audio(_chirp(0.3), num_steps=100, channels=8)  # ~27 frames, zero-padded
    assert short.shape == (100, 16) and short[30:].sum() == 0
    long = encode_audio(_chirp(2.0), num_steps=40, channels=8)  # cropped to 40 frames
    assert long.shape == (40, 16)
    tiny = encode_audio(np.ones(10), num_steps=5, channels=4)  # shorter than one frame
    assert tiny.shape == (5, 8)


def test_delta_controls_sparsity():
    a = _chirp() + 0.1 * np.random.default_rng(0).standard_normal(SR)
    dense, sparse = encode_audio(a, delta=0.2).mean(), encode_audio(a, delta=1.5).mean()
    assert dense > sparse


def test_synthetic_fsdd_split_labels_cache(tmp_path):
    _write_fsdd(tmp_path)
    cache = tmp_path / "cache"
    train = FSDD(tmp_path, train=True, num_steps=30, channels=8, cache_dir=cache)
    test = FSDD(tmp_path, train=False, num_steps=30, channels=8, cache_dir=cache)
    assert len(train) == 6 and len(test) == 3  # index >= 5 train, 0-4 test
    x, y = train[0]
    assert x.shape == (30, 16) and x.dtype == torch.float32 and int(y) in (0, 1, 2)
    assert sorted(test.targets.tolist()) == [0, 1, 2]
    assert len(list(cache.glob("fsdd-*.pt"))) == 2
    again = FSDD(tmp_path, train=True, num_steps=30, channels=8, cache_dir=cache)
    assert torch.equal(again.data, train.data)  # from the cache
    other = FSDD(tmp_path, train=True, num_steps=30, channels=4, cache_dir=cache)  # new settings, new entry
    assert other.data.shape == (6, 30, 8) and len(list(cache.glob("fsdd-*.pt"))) == 3
    nocache = FSDD(tmp_path, train=True, num_steps=30, channels=8, cache_dir=False)
    assert torch.equal(nocache.data, train.data)


def test_fsdd_spikes_time_major_and_max_files(tmp_path):
    _write_fsdd(tmp_path)
    (xtr, ytr), (xte, yte) = fsdd_spikes(num_steps=20, channels=8, root=tmp_path, cache_dir=False, max_files=3)
    assert xtr.shape == (20, 3, 16) and xte.shape == (20, 3, 16)
    assert sorted(ytr.tolist()) == [0, 1, 2]  # max_files takes the digits round-robin
    assert 0 <= input_sparsity(xtr) <= 1


def test_env_root(tmp_path, monkeypatch):
    _write_fsdd(tmp_path)
    monkeypatch.setenv("SNNTORCH_SPARSE_FSDD", str(tmp_path))
    assert fsdd_root() == tmp_path


def test_input_sparsity():
    x = torch.zeros(4, 5)
    x[0, :2] = 1
    assert input_sparsity(x) == pytest.approx(0.1)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="num_steps"):
        encode_audio(np.zeros(800), num_steps=0)
    with pytest.raises(ValueError, match="channels"):
        encode_audio(np.zeros(800), channels=0)
    with pytest.raises(ValueError, match="delta"):
        encode_audio(np.zeros(800), delta=0)
    with pytest.raises(ValueError, match="mono"):
        encode_audio(np.zeros((800, 2)))
    with pytest.raises(ValueError, match="root"):
        FSDD(root="/nonexistent")
    with pytest.raises(ValueError, match="num_steps"):
        FSDD(root=tmp_path, num_steps=0)
    with pytest.raises(ValueError, match="max_files"):
        FSDD(root=tmp_path, max_files=0)
    with pytest.raises(ValueError, match="hop"):
        FSDD(root=tmp_path, hop=0)
    with pytest.raises(ValueError, match="nfft"):
        FSDD(root=tmp_path, nfft=1)
    (tmp_path / "recordings").mkdir()
    with pytest.raises(ValueError, match="no recordings"):
        FSDD(root=tmp_path, cache_dir=False)


@pytest.mark.skipif(fsdd_root() is None, reason="FSDD not present")
def test_real_fsdd_subset():
    t0 = time.perf_counter()
    ds = FSDD(train=False, max_files=60, cache_dir=False)
    dt = time.perf_counter() - t0
    assert len(ds) == 60 and ds.data.shape == (60, 100, 64)
    assert all(int(f.stem.split("_")[2]) < 5 for f in ds.files)
    assert torch.bincount(ds.targets, minlength=10).tolist() == [6] * 10
    density = input_sparsity(ds.data)
    assert 0.01 < density < 0.3
    assert dt < 10  # the full 3,000 files take ~5 s
    print(f"FSDD: 60 files in {dt:.2f} s, input density {density:.4f}")


def test_hop_and_nfft_reach_the_encoder(tmp_path):
    """Non-default frames (the benchmark's SHD-shaped encoding) are what encode_audio gives, cached apart."""
    _write_fsdd(tmp_path)
    cache = tmp_path / "cache"
    default = FSDD(tmp_path, train=True, num_steps=40, channels=8, cache_dir=cache)
    fine = FSDD(tmp_path, train=True, num_steps=40, channels=8, hop=20, nfft=512, cache_dir=cache)
    from snntorch_sparse.data.audio import _read_wav
    want = np.stack([encode_audio(_read_wav(f), num_steps=40, channels=8, hop=20, nfft=512) for f in fine.files])
    assert torch.equal(fine.data, torch.from_numpy(want))
    assert not torch.equal(fine.data, default.data)
    assert len(list(cache.glob("fsdd-*.pt"))) == 2
    assert "hop" not in default.settings  # default encodings keep their cache names
