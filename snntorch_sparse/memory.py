"""Counting the bytes autograd keeps for the backward pass.

:func:`saved_tensor_bytes` counts, with
:func:`torch.autograd.graph.saved_tensors_hooks`, every tensor packed for
backward inside its ``with`` block, each underlying storage once. It is the
activation memory of training on any device (parameters, which are saved by
reference, are left out by default).
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


@contextmanager
def saved_tensor_bytes(include_parameters: bool = False):
    """Context manager: ``with saved_tensor_bytes() as c: loss = model(x)`` then ``c.bytes``."""
    counter = SavedBytes()
    params = set()
    if not include_parameters:
        import gc  # noqa: F401  (parameters are identified by storage pointer below)

    def pack(t: torch.Tensor):
        if not isinstance(t, torch.Tensor) or t.device.type == "meta":
            return t
        if not include_parameters and isinstance(t, torch.nn.Parameter):
            return t
        try:
            storage = t.untyped_storage()
            key = (storage.data_ptr(), t.device)
            size = storage.nbytes()
        except (RuntimeError, NotImplementedError):
            key, size = id(t), t.numel() * t.element_size()
        if key not in counter._seen and key not in params:
            counter._seen.add(key)
            counter.bytes += size
            counter.count += 1
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield counter
