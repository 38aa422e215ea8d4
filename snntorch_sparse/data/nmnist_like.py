"""A small N-MNIST-format dataset written from scikit-learn's digits, read with tonic.

N-MNIST cannot be downloaded offline. :func:`write_nmnist_like` moves each 8x8
digit (upscaled to 24x24) through N-MNIST's three saccades in front of a
simulated 34x34 event camera and writes one ``.bin`` file per sample in
N-MNIST's own binary format and ``Train/<label>/``, ``Test/<label>/`` layout.
:class:`NMNISTFolder` reads such a folder with tonic's N-MNIST reader
(``tonic.io.read_mnist_file``), exactly as it reads the real files.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["saccade_events", "write_nmnist_bin", "write_nmnist_like", "NMNISTFolder", "nmnist_like_frames"]


def saccade_events(img: np.ndarray, rng: np.random.Generator, size: int = 34, steps_per_saccade: int = 40,
                   saccade_us: int = 100_000, threshold: float = 0.15) -> list:
    """Events ``(x, y, t_us, p)`` of a 24x24 image moved along N-MNIST's three saccades (a triangle).

    An ON event where a pixel's log intensity rises by more than ``threshold``
    since its last event, an OFF event where it falls.
    """
    img = np.asarray(img, dtype=float)
    if img.shape != (24, 24):
        raise ValueError(f"img must have shape (24, 24), got {img.shape}")
    path = [(0, 0), (3, 3), (6, 0), (0, 0)]
    frames, times = [], []
    for k in range(3):
        (x0, y0), (x1, y1) = path[k], path[k + 1]
        for i in range(steps_per_saccade):
            a = i / steps_per_saccade
            dx, dy = int(round(x0 + a * (x1 - x0))), int(round(y0 + a * (y1 - y0)))
            frame = np.zeros((size, size))
            frame[2 + dy:26 + dy, 2 + dx:26 + dx] = img
            frames.append(frame)
            times.append(k * saccade_us + a * saccade_us)
    events = []
    ref = np.log1p(frames[0] * 4)
    for frame, t in zip(frames[1:], times[1:]):
        cur = np.log1p(frame * 4 + rng.normal(0, 0.02, frame.shape).clip(0))
        diff = cur - ref
        for pol, mask in ((1, diff > threshold), (0, diff < -threshold)):
            ys, xs = np.nonzero(mask)
            ts = t + rng.uniform(0, saccade_us / steps_per_saccade, len(xs))
            events += list(zip(xs.tolist(), ys.tolist(), ts.astype(np.int64).tolist(), [pol] * len(xs)))
            ref[mask] = cur[mask]
    events.sort(key=lambda e: e[2])
    return events


def write_nmnist_bin(path: Path, events: list) -> None:
    """N-MNIST's binary format: 40 bits per event (x 8, y 8, polarity 1, timestamp 23 bits in µs)."""
    raw = bytearray()
    for x, y, t, p in events:
        raw += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    Path(path).write_bytes(bytes(raw))


def write_nmnist_like(root, n_per_class: int, seed: int = 0) -> Path:
    """Write ``n_per_class`` train and ``max(n_per_class // 3, 5)`` test samples per digit under ``root``.

    Skipped when ``root`` already holds a dataset of this size (a marker file).
    """
    from sklearn.datasets import load_digits

    if n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class}")
    root = Path(root)
    marker = root / f"written_{n_per_class}_{seed}"
    if marker.exists():
        return root
    rng = np.random.default_rng(seed)
    digits = load_digits()
    images = np.kron(digits.images / 16.0, np.ones((3, 3)))       # 8x8 -> 24x24
    for split, n in (("Train", n_per_class), ("Test", max(n_per_class // 3, 5))):
        for label in range(10):
            folder = root / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            idx = rng.choice(np.nonzero(digits.target == label)[0], n, replace=False)
            for j, i in enumerate(idx):
                write_nmnist_bin(folder / f"{j:05d}.bin", saccade_events(images[i], rng))
    marker.touch()
    return root


class NMNISTFolder(Dataset):
    """``Train/`` or ``Test/`` of N-MNIST's folder layout (``<split>/<label>/<id>.bin``), read with tonic."""

    def __init__(self, root, train: bool = True, transform=None):
        folder = Path(root) / ("Train" if train else "Test")
        self.files = sorted(folder.glob("*/*.bin"))
        if not self.files:
            raise FileNotFoundError(f"no N-MNIST .bin files under {folder}/<label>/")
        self.targets = [int(f.parent.name) for f in self.files]
        self.transform = transform

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        import tonic
        from tonic.io import read_mnist_file
        events = read_mnist_file(str(self.files[i]), dtype=tonic.datasets.NMNIST.dtype)
        return (self.transform(events) if self.transform else events), self.targets[i]


def nmnist_like_frames(root, n_per_class: int, num_steps: int = 25, seed: int = 0):
    """``((x_train [T, N, 2, 34, 34], y_train), (x_test, y_test))``: binary frames as tutorial 7 bins them.

    Writes the dataset if needed, reads it with tonic, denoises
    (``Denoise(filter_time=10_000)``, as tutorial 7) and bins it into
    ``num_steps`` frames (``ToFrame``), clipped to spikes.
    """
    import tonic
    import tonic.transforms as tT

    write_nmnist_like(root, n_per_class, seed)
    transform = tT.Compose([tT.Denoise(filter_time=10_000),
                            tT.ToFrame(sensor_size=tonic.datasets.NMNIST.sensor_size, n_time_bins=num_steps)])
    out = []
    for train in (True, False):
        ds = NMNISTFolder(root, train=train, transform=transform)
        xs, ys = zip(*(ds[i] for i in range(len(ds))))
        x = torch.as_tensor(np.stack(xs), dtype=torch.float32).clamp(max=1).transpose(0, 1).contiguous()
        out.append((x, torch.tensor(ys)))
    return tuple(out)
