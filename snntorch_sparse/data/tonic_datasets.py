"""Neuromorphic datasets through tonic, and latency-coded MNIST-style IDX files.

All return time-major spike rasters: a sample is ``[T, N]`` (float32, 0/1 after
binning), a batch from :func:`~snntorch_sparse.data.time_major_collate` is ``[T, B, N]``.

Getting the data (these machines cannot download):

* **SHD** (Spiking Heidelberg Digits, 700 channels): ``tonic.datasets.SHD(save_to=root)``
  downloads ``shd_train.h5.zip``/``shd_test.h5.zip`` into ``root/SHD`` and unpacks
  them; or put both the ``.zip`` and the unpacked ``.h5`` there yourself
  (tonic checks that both exist).
* **N-MNIST** (34x34 event camera, 2 polarities): ``tonic.datasets.NMNIST(save_to=root)``
  fetches ``train.zip``/``test.zip`` into ``root/NMNIST`` and unpacks ``Train/``
  and ``Test/`` (class folders ``0``..``9`` of ``.bin`` files).
* **MNIST / Fashion-MNIST**: the four IDX files (``train-images-idx3-ubyte[.gz]``...)
  from the datasets' pages; pass their paths to :class:`IDXLatency`.

Binning: events are counted in ``num_steps`` equal time bins
(``tonic.transforms.ToFrame(n_time_bins=num_steps)``), then clipped to 1, so
an entry is 1 when the channel emitted at least one event in that bin.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["TonicSpikes", "shd_dataset", "nmnist_dataset", "IDXLatency", "read_idx"]


class TonicSpikes(Dataset):
    """Wrap a tonic dataset whose transform gives frames ``[T, ...]``: samples ``([T, N], label)``."""

    def __init__(self, tonic_dataset, binary: bool = True):
        self.dataset = tonic_dataset
        self.binary = binary

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        frames, target = self.dataset[i]
        x = torch.as_tensor(np.asarray(frames), dtype=torch.float32).flatten(1)
        if self.binary:
            x = x.clamp_(max=1.0)
        return x, int(target)


def _check(num_steps: int, root) -> Path:
    if not isinstance(num_steps, int) or num_steps <= 0:
        raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")
    if root is None:
        raise ValueError("root must be the folder tonic saves the dataset to (save_to)")
    return Path(root)


def shd_dataset(root, train: bool = True, num_steps: int = 100, binary: bool = True) -> TonicSpikes:
    """Spiking Heidelberg Digits: samples ``[num_steps, 700]``, 20 classes."""
    import tonic

    root = _check(num_steps, root)
    sensor = tonic.datasets.SHD.sensor_size
    frames = tonic.transforms.ToFrame(sensor_size=sensor, n_time_bins=num_steps)
    return TonicSpikes(tonic.datasets.SHD(save_to=str(root), train=train, transform=frames), binary)


def nmnist_dataset(root, train: bool = True, num_steps: int = 300, first_saccade_only: bool = False,
                   binary: bool = True) -> TonicSpikes:
    """N-MNIST: samples ``[num_steps, 2·34·34 = 2312]``, 10 classes."""
    import tonic

    root = _check(num_steps, root)
    sensor = tonic.datasets.NMNIST.sensor_size
    frames = tonic.transforms.ToFrame(sensor_size=sensor, n_time_bins=num_steps)
    ds = tonic.datasets.NMNIST(save_to=str(root), train=train, transform=frames,
                               first_saccade_only=first_saccade_only)
    return TonicSpikes(ds, binary)


def read_idx(path) -> np.ndarray:
    """Read an IDX file (MNIST format; gzip or not) into a numpy array."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"IDX file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if data[2] not in dtypes:
        raise ValueError(f"{path}: unknown IDX element type 0x{data[2]:02x}")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    arr = np.frombuffer(data, dtype=dtypes[data[2]], offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape} but holds {arr.size} elements")
    return arr.reshape(shape)


class IDXLatency(Dataset):
    """MNIST / Fashion-MNIST from IDX files, latency-coded (one spike per bright pixel).

    Samples are ``([num_steps, H·W], label)``; see :mod:`snntorch_sparse.data.digits`
    for the code (``snntorch.spikegen.latency``, brighter pixels fire earlier).
    """

    def __init__(self, images_path, labels_path, num_steps: int = 100, tau: float = 5.0,
                 threshold: float = 0.01):
        from snntorch import spikegen

        if num_steps <= 0:
            raise ValueError(f"num_steps must be > 0, got {num_steps}")
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"expected images [N, H, W] and labels [N], got {images.shape} and {labels.shape}")
        x = torch.tensor(images.reshape(len(images), -1), dtype=torch.float32) / 255.0
        self.data = spikegen.latency(x, num_steps=num_steps, tau=tau, threshold=threshold, normalize=True,
                                     linear=True, clip=True).transpose(0, 1).contiguous()  # [N, T, H·W]
        self.targets = torch.tensor(labels.astype(np.int64))

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i):
        return self.data[i], int(self.targets[i])
