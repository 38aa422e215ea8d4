"""scikit-learn's bundled 8x8 handwritten digits, latency-coded like F-MNIST.

Each pixel value :math:`v \\in [0, 1]` (scaled from 0-16) fires one spike; with
``snntorch.spikegen.latency(..., linear=True, normalize=True)`` the spike time is
:math:`t = (T - 1)(1 - v)` up to the time constant: brighter pixels fire earlier,
pixels below ``threshold`` never fire.
"""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

__all__ = ["load_digits_spikes", "digits_loaders", "time_major_collate"]


def load_digits_spikes(num_steps: int = 25, seed: int = 0, test_size: float = 0.2):
    """``((x_train [T, N, 64], y_train), (x_test, y_test))``, a stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from snntorch import spikegen

    if num_steps <= 0:
        raise ValueError(f"num_steps must be > 0, got {num_steps}")
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    d = load_digits()
    x = torch.tensor(d.images.reshape(-1, 64) / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)

    def encode(v):
        return spikegen.latency(v, num_steps=num_steps, tau=5, threshold=0.01, normalize=True,
                                linear=True, clip=True)

    return (encode(xtr), ytr), (encode(xte), yte)


def time_major_collate(batch):
    """Stack ``[(x [T_i, ...], y), ...]`` into ``(x [T, B, ...], y [B])``, zero-padding to the longest T.

    Use as ``DataLoader(..., collate_fn=time_major_collate)``; samples are float32 tensors
    (or arrays) with time first, labels ints or 0-d tensors.
    """
    if len(batch) == 0:
        raise ValueError("batch must hold at least one (x, y) sample")
    xs, ys = zip(*batch)
    xs = [torch.as_tensor(x, dtype=torch.float32) for x in xs]
    if any(x.shape[1:] != xs[0].shape[1:] for x in xs):
        raise ValueError(f"batch samples differ beyond the time axis: {sorted({tuple(x.shape[1:]) for x in xs})}")
    T = max(x.shape[0] for x in xs)
    xs = [x if x.shape[0] == T else torch.cat([x, x.new_zeros(T - x.shape[0], *x.shape[1:])]) for x in xs]
    return torch.stack(xs, 1), torch.stack([torch.as_tensor(y) for y in ys])


def digits_loaders(batch_size: int = 64, num_steps: int = 25, seed: int = 0):
    """Train and test ``DataLoader`` s yielding time-major ``[T, B, 64]`` batches."""
    (xtr, ytr), (xte, yte) = load_digits_spikes(num_steps, seed)
    g = torch.Generator().manual_seed(seed)
    train = DataLoader(TensorDataset(xtr.transpose(0, 1), ytr), batch_size=batch_size, shuffle=True,
                       generator=g, collate_fn=time_major_collate)
    test = DataLoader(TensorDataset(xte.transpose(0, 1), yte), batch_size=batch_size,
                      collate_fn=time_major_collate)
    return train, test
