"""Backend selection for the four primitive ops.

A *backend* is a module exposing :func:`lif_scan`, :func:`lif_scan_backward`
(and their in-place forms ``lif_scan_``, ``lif_scan_backward_``),
:func:`sparse_weight_grad` and :func:`sparse_input_grad` with the signatures of
:mod:`snntorch_sparse.ops.reference`.

* ``"reference"`` -- pure PyTorch, any device.
* ``"compiled"`` -- C++ (CPU) / CUDA kernels built just in time with ninja.
* ``"auto"`` (default) -- compiled when it builds, else reference (warns once).

The default can be forced with the environment variable
``SNNTORCH_SPARSE_BACKEND`` or per layer with the ``backend=`` argument.
"""
from __future__ import annotations

import os
from types import ModuleType

import torch

from . import reference

__all__ = ["get_backend", "BACKENDS"]

BACKENDS = ("auto", "reference", "compiled")


def _default_backend() -> str:
    name = os.environ.get("SNNTORCH_SPARSE_BACKEND", "auto").strip().lower()
    if name not in BACKENDS:
        raise ValueError(
            f"SNNTORCH_SPARSE_BACKEND must be one of {BACKENDS}, got {name!r}")
    return name


def get_backend(name: str | None = None, device: torch.device | None = None) -> ModuleType:
    """Return the op module for backend ``name`` (``None``: the default).

    ``device`` is where the tensors live: devices other than CPU and CUDA
    always get the reference backend.
    """
    name = _default_backend() if name is None else name
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "reference" or (device is not None and device.type not in ("cpu", "cuda")):
        return reference
    try:
        from . import compiled  # noqa: F401  (built lazily on first import)
    except ImportError:
        if name == "compiled":
            raise
        return reference
    return compiled if compiled.available(strict=(name == "compiled")) else reference
