"""Counting the bytes autograd keeps for the backward pass.

:func:`saved_tensor_bytes` counts, with
:func:`torch.autograd.graph.saved_tensors_hooks`, every tensor packed for
backward inside its ``with`` block, each underlying storage once. Pass the
model(s) to leave out their parameters and buffers (saved by reference, also
through views such as ``weight.t()``): what remains is the activation memory
of training, on any device.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

__all__ = ["saved_tensor_bytes", "SavedBytes"]


class SavedBytes:
    """Result holder: ``.bytes`` total, ``.count`` distinct storages."""

    def __init__(self):
        self.bytes = 0
        self.count = 0
        self._seen = set()


def _storage_key(t: torch.Tensor):
    return (t.untyped_storage().data_ptr(), t.device)


@contextmanager
def saved_tensor_bytes(*exclude):
    """``with saved_tensor_bytes(model) as c: loss = f(model(x))`` then ``c.bytes``.

    Args:
        exclude: modules (their parameters and buffers) or tensors whose
            storages are not counted.
    """
    counter = SavedBytes()
    skip = set()
    for item in exclude:
        tensors = list(item.parameters()) + list(item.buffers()) if isinstance(item, torch.nn.Module) else [item]
        for t in tensors:
            if t.device.type != "meta":
                skip.add(_storage_key(t))

    def pack(t: torch.Tensor):
        if not isinstance(t, torch.Tensor) or t.device.type == "meta":
            return t
        try:
            key, size = _storage_key(t), t.untyped_storage().nbytes()
        except (RuntimeError, NotImplementedError):
            key, size = id(t), t.numel() * t.element_size()
        if key not in counter._seen and key not in skip:
            counter._seen.add(key)
            counter.bytes += size
            counter.count += 1
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield counter
