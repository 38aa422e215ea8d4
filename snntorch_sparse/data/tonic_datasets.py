"""Neuromorphic datasets through tonic, and latency-coded MNIST-style IDX files.

All return time-major spike rasters: a sample is ``[T, N]`` (float32, 0/1 after
binning), a batch from :func:`~snntorch_sparse.data.time_major_collate` is ``[T, B, N]``.

Getting the data (these machines cannot download):

* **SHD** (Spiking Heidelberg Digits, 700 channels): ``tonic.datasets.SHD(save_to=root)``
  downloads ``shd_train.h5.zip``/``shd_test.h5.zip`` into ``root/SHD`` and unpacks
  them; or put both the ``.zip`` and the unpacked ``.h5`` there yourself.
  tonic 1.7 skips the download when ``root/SHD/shd_<split>.h5.zip`` is a file (no
  checksum is computed) and ``root/SHD`` holds at least one ``*.h5``; it then reads
  ``root/SHD/shd_<split>.h5`` (``spikes/times`` in s, ``spikes/units``, ``labels``,
  ``extra/keys``, ``extra/speaker``).
* **N-MNIST** (34x34 event camera, 2 polarities): ``tonic.datasets.NMNIST(save_to=root)``
  fetches ``train.zip``/``test.zip`` into ``root/NMNIST`` and unpacks ``Train/``
  and ``Test/`` (class folders ``0``..``9`` of ``.bin`` files). tonic 1.7 skips the
  download when ``root/NMNIST/<train|test>.zip`` is a file and ``root/NMNIST/<Train|Test>``
  holds at least 10,000 ``*.bin`` files (the real test split has exactly 10,000).

Offline by default: unless ``download=True``, :func:`shd_dataset` and
:func:`nmnist_dataset` check those conditions first and raise ``ValueError``
saying what is missing, instead of letting tonic start a download (which hangs
on a machine without network access).
* **MNIST / Fashion-MNIST**: the four IDX files (``train-images-idx3-ubyte[.gz]``...)
  from the datasets' pages; pass their paths to :class:`IDXLatency`.

Binning: events are counted in ``num_steps`` equal time bins
(``tonic.transforms.ToFrame(n_time_bins=num_steps)``), then clipped to 1, so
an entry is 1 when the channel emitted at least one event in that bin. Note that
``ToFrame(n_time_bins=...)`` spans each sample's own first-to-last event, so the
bin width differs between samples, and its bins are half-open, so events at a
sample's very last timestamp are dropped (usually one event; tonic 1.7 behaviour).
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .digits import time_major_collate

__all__ = ["TonicSpikes", "shd_dataset", "nmnist_dataset", "shd_missing_files", "nmnist_missing_files",
           "IDXLatency", "read_idx", "time_major_collate"]


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
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps <= 0:
        raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")
    if root is None:
        raise ValueError("root must be the folder tonic saves the dataset to (save_to), got None")
    return Path(root).expanduser()


def _missing(what: str, root: Path, problems: list) -> None:
    if problems:
        raise ValueError(f"root={str(root)!r} does not hold {what} ({'; '.join(problems)}). Put the files "
                         "there (see snntorch_sparse.data.tonic_datasets) or pass download=True "
                         "on a machine with network access.")


def shd_missing_files(root, train: bool = True) -> list:
    """What tonic 1.7 still needs under ``root`` to load SHD without downloading (empty: nothing)."""
    folder = Path(root).expanduser() / "SHD"
    name = f"shd_{'train' if train else 'test'}.h5"
    problems = []
    if not (folder / f"{name}.zip").is_file():
        problems.append(f"missing {folder / (name + '.zip')} (tonic only checks that it exists; "
                        "an empty placeholder will do)")
    if not (folder / name).is_file():
        problems.append(f"missing {folder / name}")
    return problems


def nmnist_missing_files(root, train: bool = True) -> list:
    """What tonic 1.7 still needs under ``root`` to load N-MNIST without downloading."""
    folder = Path(root).expanduser() / "NMNIST"
    archive, sub = ("train.zip", "Train") if train else ("test.zip", "Test")
    problems = []
    if not (folder / archive).is_file():
        problems.append(f"missing {folder / archive} (tonic only checks that it exists; "
                        "an empty placeholder will do)")
    n = sum(1 for _ in (folder / sub).glob("**/*.bin")) if (folder / sub).is_dir() else 0
    if n < 10000:
        problems.append(f"{folder / sub} holds {n} .bin files, tonic wants at least 10000")
    return problems


def shd_dataset(root, train: bool = True, num_steps: int = 100, binary: bool = True,
                download: bool = False) -> TonicSpikes:
    """Spiking Heidelberg Digits: samples ``[num_steps, 700]``, 20 classes.

    ``root`` is tonic's ``save_to`` (the files live in ``root/SHD``). Without
    ``download=True``, missing files raise ``ValueError`` instead of a download.
    """
    import tonic

    root = _check(num_steps, root)
    if not download:
        _missing(f"the SHD {'train' if train else 'test'} split", root, shd_missing_files(root, train))
    sensor = tonic.datasets.SHD.sensor_size
    frames = tonic.transforms.ToFrame(sensor_size=sensor, n_time_bins=num_steps)
    return TonicSpikes(tonic.datasets.SHD(save_to=str(root), train=train, transform=frames), binary)


def nmnist_dataset(root, train: bool = True, num_steps: int = 300, first_saccade_only: bool = False,
                   binary: bool = True, download: bool = False) -> TonicSpikes:
    """N-MNIST: samples ``[num_steps, 2·34·34 = 2312]`` (flattened ``[2, 34, 34]`` polarity-y-x frames), 10 classes.

    ``root`` is tonic's ``save_to`` (the files live in ``root/NMNIST``).
    ``first_saccade_only`` keeps events before 100 ms. Without ``download=True``,
    missing files raise ``ValueError`` instead of a download.
    """
    import tonic

    root = _check(num_steps, root)
    if not download:
        _missing(f"the N-MNIST {'train' if train else 'test'} split", root, nmnist_missing_files(root, train))
    sensor = tonic.datasets.NMNIST.sensor_size
    frames = tonic.transforms.ToFrame(sensor_size=sensor, n_time_bins=num_steps)
    ds = tonic.datasets.NMNIST(save_to=str(root), train=train, transform=frames,
                               first_saccade_only=first_saccade_only)
    return TonicSpikes(ds, binary)


def read_idx(path) -> np.ndarray:
    """Read an IDX file (MNIST format; gzip or not, told by content) into a numpy array.

    Header: two zero bytes, an element-type byte (0x08 = uint8 ...), the number of
    dimensions, then one big-endian uint32 per dimension; MNIST images have magic
    2051 (0x00000803: uint8, 3-D), labels 2049 (0x00000801: uint8, 1-D).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"IDX file not found: {path}")
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if data[2] not in dtypes:
        raise ValueError(f"{path}: unknown IDX element type 0x{data[2]:02x}")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header ({len(data)} bytes; {ndim} dimensions need "
                         f"{4 + 4 * ndim})")
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

        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps <= 0:
            raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3:
            raise ValueError(f"images_path must be an IDX image file (magic 2051, [N, H, W]), got shape {images.shape}")
        if labels.ndim != 1:
            raise ValueError(f"labels_path must be an IDX label file (magic 2049, [N]), got shape {labels.shape}")
        if len(images) != len(labels):
            raise ValueError(f"images_path holds {len(images)} images but labels_path {len(labels)} labels")
        if len(images) == 0:
            raise ValueError(f"images_path holds no images (shape {images.shape}); expected [N >= 1, H, W]")
        scale = 255.0 if images.dtype == np.uint8 else max(float(images.max()), 1e-12)
        x = torch.tensor(images.reshape(len(images), -1).astype(np.float32)) / scale
        self.data = spikegen.latency(x, num_steps=num_steps, tau=tau, threshold=threshold, normalize=True,
                                     linear=True, clip=True).transpose(0, 1).contiguous()  # [N, T, H·W]
        self.targets = torch.tensor(labels.astype(np.int64))

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i):
        return self.data[i], int(self.targets[i])
