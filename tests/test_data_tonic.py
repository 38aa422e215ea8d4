"""tonic loaders on small files written in the datasets' own formats (no download)."""
import gzip
import struct

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from snntorch_sparse.data import IDXLatency, nmnist_dataset, read_idx, shd_dataset, time_major_collate
from snntorch_sparse.data.tonic_datasets import nmnist_missing_files, shd_missing_files


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    """These machines are offline: a download attempt fails the test at once instead of hanging."""
    import tonic.dataset

    def refuse(self):
        raise AssertionError(f"tonic tried to download {self.url}")
    monkeypatch.setattr(tonic.dataset.Dataset, "download", refuse)


def _write_shd(root, n=6, seed=0, split="train"):
    """SHD layout: <root>/SHD/shd_<split>.h5 (+ the .zip tonic checks for) with
    spikes/times (s, float), spikes/units (channel ids), labels, extra/keys, extra/speaker."""
    rng = np.random.default_rng(seed)
    folder = root / "SHD"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"shd_{split}.h5.zip").write_bytes(b"placeholder: tonic only checks that it exists")
    with h5py.File(folder / f"shd_{split}.h5", "w") as f:
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


def _write_nmnist(root, per_class=1000, archive=True):
    """N-MNIST layout: <root>/NMNIST/Train/<digit>/*.bin (+ train.zip). tonic wants >= 10000 .bin files."""
    folder = root / "NMNIST"
    (folder).mkdir(parents=True)
    if archive:
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
    assert xb.dtype == torch.float32


def test_shd_events_land_in_their_channels(tmp_path):
    _write_shd(tmp_path, split="test")
    import h5py as h
    with h.File(tmp_path / "SHD" / "shd_test.h5") as f:
        times, units = f["spikes/times"][1], f["spikes/units"][1]
    # tonic's ToFrame(n_time_bins) bins are half-open [start, end): events at the last timestamp drop out
    kept = times < times.max()
    x, _ = shd_dataset(tmp_path, train=False, num_steps=5)[1]
    assert set(x.sum(0).nonzero().flatten().tolist()) == set(units[kept].tolist())
    counts, _ = shd_dataset(tmp_path, train=False, num_steps=5, binary=False)[1]
    assert counts.sum() == kept.sum()  # every other event counted once
    per_unit = torch.bincount(torch.as_tensor(units[kept].astype(np.int64)), minlength=700)
    assert torch.equal(counts.sum(0), per_unit.float())


def test_missing_files_raise_instead_of_downloading(tmp_path):
    with pytest.raises(ValueError, match="root=.*SHD.*shd_train.h5.zip"):
        shd_dataset(tmp_path, train=True)
    _write_shd(tmp_path, split="train")
    assert shd_missing_files(tmp_path, train=True) == []
    with pytest.raises(ValueError, match="shd_test.h5"):
        shd_dataset(tmp_path, train=False)
    with pytest.raises(ValueError, match="root=.*NMNIST.*test.zip"):
        nmnist_dataset(tmp_path, train=False)
    with pytest.raises(ValueError, match="root"):
        shd_dataset(None)


def test_nmnist_needs_archive_and_10000_files(tmp_path):
    _write_nmnist(tmp_path, per_class=3, archive=False)
    problems = nmnist_missing_files(tmp_path, train=True)
    assert len(problems) == 2 and "train.zip" in problems[0] and "30 .bin" in problems[1]
    with pytest.raises(ValueError, match="10000"):
        nmnist_dataset(tmp_path, num_steps=4)


def test_nmnist_through_tonic(tmp_path):
    _write_nmnist(tmp_path)
    ds = nmnist_dataset(tmp_path, train=True, num_steps=4)
    assert len(ds) == 10000
    x, y = ds[2500]
    assert x.shape == (4, 2 * 34 * 34) and y == 2
    assert 1 <= x.sum() <= 4  # 4 events of one pixel and polarity, binned into 4 steps
    assert len(x.sum(0).nonzero()) == 1
    # frames are [polarity, y, x] flattened: digit 2, sample 500 -> x=5, y=(500 % 30)+2=22, p=0
    (idx,) = x.sum(0).nonzero()[0].tolist()
    assert idx == 0 * 34 * 34 + 22 * 34 + 5
    xb, yb = time_major_collate([ds[0], ds[9999]])
    assert xb.shape == (4, 2, 2312) and yb.tolist() == [0, 9]


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


def test_idx_uncompressed_and_fashion_style(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 28, 28)).astype(np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte", imgs, 0x08)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(5, dtype=np.uint8), 0x08)
    raw = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    assert int.from_bytes(raw[:4], "big") == 2051
    assert np.array_equal(read_idx(tmp_path / "train-images-idx3-ubyte"), imgs)
    ds = IDXLatency(tmp_path / "train-images-idx3-ubyte", tmp_path / "train-labels-idx1-ubyte.gz", num_steps=25)
    x, y = ds[4]
    assert x.shape == (25, 784) and y == 4 and x.dtype == torch.float32
    assert x.sum(0).max() <= 1  # one spike per pixel at most
    bright, dark = int(imgs[4].argmax()), int(imgs[4].argmin())
    t = x.argmax(0)
    assert x[:, bright].sum() == 1 and (x[:, dark].sum() == 0 or t[dark] >= t[bright])
    xb, yb = next(iter(DataLoader(ds, batch_size=5, collate_fn=time_major_collate)))
    assert xb.shape == (25, 5, 784) and yb.tolist() == [0, 1, 2, 3, 4]


def test_idx_and_tonic_bad_input(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad")
    with pytest.raises(ValueError, match="not found"):
        read_idx(tmp_path / "missing")
    with pytest.raises(ValueError, match="num_steps"):
        shd_dataset(tmp_path, num_steps=0)
    with pytest.raises(ValueError, match="num_steps"):
        nmnist_dataset(tmp_path, num_steps=-3)
    _write_idx(tmp_path / "img", np.zeros((2, 3, 3), dtype=np.uint8), 0x08)
    _write_idx(tmp_path / "lab", np.zeros(3, dtype=np.uint8), 0x08)
    with pytest.raises(ValueError, match="num_steps"):
        IDXLatency(tmp_path / "img", tmp_path / "lab", num_steps=0)
    with pytest.raises(ValueError, match="labels_path"):
        IDXLatency(tmp_path / "img", tmp_path / "lab")
    with pytest.raises(ValueError, match="images_path"):
        IDXLatency(tmp_path / "lab", tmp_path / "lab")


def test_idx_empty_and_truncated_files_are_named(tmp_path):
    _write_idx(tmp_path / "img", np.zeros((0, 4, 4), dtype=np.uint8), 0x08)
    _write_idx(tmp_path / "lab", np.zeros(0, dtype=np.uint8), 0x08)
    with pytest.raises(ValueError, match="images_path holds no images"):
        IDXLatency(tmp_path / "img", tmp_path / "lab")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 3, 0, 0]))  # 3 dimensions, 2 header bytes of 12
    with pytest.raises(ValueError, match="truncated IDX header"):
        read_idx(tmp_path / "short")
