"""Reuse of a layer's large CPU work buffers across training steps.

A fused layer writes a ``[T, B, N]`` spike tensor every forward and a
``[T, B, N_in]`` input gradient every backward. On CPU a fresh tensor of that
size comes from ``mmap``: every page is faulted in and zeroed by the kernel on
first touch, about 25-30 ms per 100 MB on the 2-core machines this project
measures on -- more than the sparse backward itself. snnTorch's per-step loop
never pays this: its small per-step tensors are recycled by ``malloc``.

:class:`BufferPool` keeps the last buffer of each role and hands it out again
once nothing else references its storage (the user dropped the spikes, autograd
consumed the gradient), so its pages stay mapped. A buffer still referenced
anywhere is never reused: by a tensor (any view, ``numpy()`` array or autograd
node holding one) or by a Python storage object (``out.untyped_storage()``).
CUDA tensors are not pooled (PyTorch's caching allocator already recycles them). Set ``SNNTORCH_SPARSE_REUSE_BUFFERS=0`` to
allocate fresh tensors every time; :meth:`BufferPool.clear` frees the buffers.
"""
from __future__ import annotations

import os
import sys
import threading
from typing import Dict, Tuple

import torch

__all__ = ["BufferPool", "reuse_enabled"]


def reuse_enabled() -> bool:
    return os.environ.get("SNNTORCH_SPARSE_REUSE_BUFFERS", "1").strip() not in ("0", "false", "no")


def _storage_refs(t: torch.Tensor) -> int:
    return torch._C._storage_Use_Count(t.untyped_storage()._cdata)


def _storage_py_refs(t: torch.Tensor) -> int:
    # A Python storage object the user holds (``out.untyped_storage()``) is not
    # counted by the C++ use count (PyTorch preserves it on the storage itself);
    # its Python reference count shows it.
    return sys.getrefcount(t.untyped_storage())


# References to the storage of a tensor nothing else holds: measured once, since
# the temporary storage object made to ask counts too.
_ALONE = _storage_refs(torch.empty(1))
_PY_ALONE = _storage_py_refs(torch.empty(1))


def _free(t: torch.Tensor) -> bool:
    """Nothing but the pool references ``t``'s storage (never assumed while tracing)."""
    if torch.compiler.is_compiling():
        return False
    return _storage_refs(t) == _ALONE and _storage_py_refs(t) == _PY_ALONE


class BufferPool:
    """One reusable buffer per role (``"spk"``, ``"dx"``, ...)."""

    def __init__(self):
        self._slots: Dict[str, torch.Tensor] = {}
        # The free check and the hand-out must be atomic: two threads running the
        # same module (or DataParallel replicas sharing this object) must never
        # both receive one free buffer.
        self._lock = threading.Lock()

    def __getstate__(self):  # pickling / deepcopy: buffers and lock are not state
        return {}

    def __setstate__(self, state):
        self.__init__()

    def take(self, role: str, shape: Tuple[int, ...], dtype: torch.dtype, device: torch.device,
             zero: bool = False) -> torch.Tensor:
        """A contiguous tensor of ``shape`` (zero-filled if ``zero``), reused when free."""
        if device.type != "cpu" or not reuse_enabled():
            return torch.zeros(shape, dtype=dtype, device=device) if zero else \
                torch.empty(shape, dtype=dtype, device=device)
        with self._lock:
            old = self._slots.get(role)
            if (old is not None and old.shape == shape and old.dtype == dtype and old.device == device
                    and _free(old)):
                # Hand out a fresh tensor object on the same storage: the caller's
                # references (and any autograd metadata) never touch the pooled one.
                out = old.detach()
                reused = True
            else:
                out = None
                reused = False
        if reused:
            if zero:
                out.zero_()
            return out
        buf = torch.zeros(shape, dtype=dtype, device=device) if zero else \
            torch.empty(shape, dtype=dtype, device=device)
        with self._lock:
            self._slots[role] = buf
        return buf.detach()

    def take_flat(self, role: str, numel: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """A 1-D tensor of ``numel`` elements (not initialised) on a reusable buffer of at least that size."""
        if device.type != "cpu" or not reuse_enabled():
            return torch.empty(numel, dtype=dtype, device=device)
        with self._lock:
            old = self._slots.get(role)
            if (old is not None and old.numel() >= numel and old.dtype == dtype and old.device == device
                    and _free(old)):
                return old.detach()[:numel]
        buf = torch.empty(max(numel + numel // 4, 1024), dtype=dtype, device=device)
        with self._lock:
            self._slots[role] = buf
        return buf.detach()[:numel]

    def clear(self) -> None:
        with self._lock:
            self._slots.clear()
