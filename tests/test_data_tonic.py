"""tonic loaders on small files written in the datasets' own formats (no download)."""
import gzip
import struct

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from snntorch_sparse.data import IDXLatency, nmnist_dataset, read_idx, shd_dataset, time_major_collate


def _write_shd(root, n=6, seed=0):
    """SHD layout: <root>/SHD/shd_train.h5 (+ the .zip tonic checks for) with
    spikes/times (s, float), spikes/units (channel ids), labels."""
    rng = np.random.default_rng(seed)
    folder = root / "SHD"
    folder.mkdir(parents=True)
    (folder / "shd_train.h5.zip").write_bytes(b"placeholder: tonic only checks that it exists")
    with h5py.File(folder / "shd_train.h5", "w") as f:
        vf, vi = h5py.vlen_dtype(np.float32), h5py.vlen_dtype(np.uint16)
        times = f.create_dataset("spikes/times", (n,), dtype=vf)
        units = f.create_dataset("spikes/units", (n,), dtype=vi)
        for i in range(n):
            k = 50 + 10 * i
            times[i] = np.sort(rng.uniform(0, 0.9, k)).astype(np.float32)
            units[i] = rng.integers(0, 700, k).astype(np.uint16)
        f.create_dataset("labels", data=np.arange(n) % 20)
        f.create_dataset("extra/keys", data=np.array([f"digit-{i}".encode() for i in range(20)]))
        f.create_dataset("extra/speaker", data=np.zeros(n, dtype=np.int64))


def _nmnist_bytes(events):
    """N-MNIST's 40-bit events: x (8 bit), y (8 bit), polarity (1 bit) + 23-bit timestamp (µs)."""
    out = bytearray()
    for x, y, p, t in events:
        out += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    return bytes(out)


def _write_nmnist(root, per_class=1000):
    """N-MNIST layout: <root>/NMNIST/Train/<digit>/*.bin (+ train.zip). tonic wants >= 10000 .bin files."""
    folder = root / "NMNIST"
    (folder).mkdir(parents=True)
    (folder / "train.zip").write_bytes(b"placeholder")
    for d in range(10):
        cls = folder / "Train" / str(d)
        cls.mkdir(parents=True)
        for i in range(per_class):
            ev = [(d + 3, (i % 30) + 2, i % 2, 1000 * (j + 1) + 17 * d) for j in range(4)]
            (cls / f"{i:05d}.bin").write_bytes(_nmnist_bytes(ev))


def test_shd_through_tonic(tmp_path):
    _write_shd(tmp_path)
    ds = shd_dataset(tmp_path, train=True, num_steps=20)
    assert len(ds) == 6
    x, y = ds[3]
    assert x.shape == (20, 700) and y == 3
    assert set(torch.unique(x).tolist()) <= {0.0, 1.0} and x.sum() > 0
    xb, yb = next(iter(DataLoader(ds, batch_size=4, collate_fn=time_major_collate)))
    assert xb.shape == (20, 4, 700) and yb.tolist() == [0, 1, 2, 3]


def test_nmnist_through_tonic(tmp_path):
    _write_nmnist(tmp_path)
    ds = nmnist_dataset(tmp_path, train=True, num_steps=4)
    assert len(ds) == 10000
    x, y = ds[2500]
    assert x.shape == (4, 2 * 34 * 34) and y == 2
    assert 1 <= x.sum() <= 4  # 4 events of one pixel and polarity, binned into 4 steps
    assert len(x.sum(0).nonzero()) == 1


def _write_idx(path, arr, code):
    header = struct.pack(">BBBB", 0, 0, code, arr.ndim) + b"".join(struct.pack(">I", s) for s in arr.shape)
    data = header + arr.astype(">u1" if code == 0x08 else arr.dtype).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def test_idx_latency(tmp_path):
    imgs = np.zeros((3, 4, 4), dtype=np.uint8)
    imgs[0, 0, 0], imgs[1, 1, 1], imgs[2] = 255, 128, 0
    _write_idx(tmp_path / "img.gz", imgs, 0x08)
    _write_idx(tmp_path / "lab", np.array([7, 1, 0], dtype=np.uint8), 0x08)
    assert read_idx(tmp_path / "img.gz").shape == (3, 4, 4)
    ds = IDXLatency(tmp_path / "img.gz", tmp_path / "lab", num_steps=10)
    x, y = ds[0]
    assert x.shape == (10, 16) and y == 7
    assert x[:, 0].sum() == 1 and x[:, 1:].sum() == 0  # one spike, the bright pixel
    assert ds[2][0].sum() == 0  # blank image: no spikes


def test_idx_and_tonic_bad_input(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad")
    with pytest.raises(ValueError, match="not found"):
        read_idx(tmp_path / "missing")
    with pytest.raises(ValueError, match="num_steps"):
        shd_dataset(tmp_path, num_steps=0)
