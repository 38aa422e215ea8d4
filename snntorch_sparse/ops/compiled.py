"""Compiled backend: C++ (CPU) and CUDA kernels of the four primitive ops.

Same functions, signatures and floating-point order as
:mod:`snntorch_sparse.ops.reference` (see its docstrings for the contract);
the kernels live in ``csrc/`` and are registered as the custom ops
``torch.ops.snntorch_sparse.{lif_scan, lif_scan_backward, sparse_weight_grad,
sparse_input_grad}`` (CPU and CUDA dispatch keys), with fake implementations
below so they trace under ``torch.compile`` and pass ``torch.library.opcheck``.

The library is built with ninja on the first :func:`available` call and
cached (see :mod:`snntorch_sparse.ops._build`). If the build fails (or
another process's build holds the build lock past
``$SNNTORCH_SPARSE_BUILD_TIMEOUT``), :func:`available` warns once and returns
``False`` (``strict=True`` raises).

* ``lif_scan`` is bit-identical to the reference (no FMA contraction).
* ``lif_scan_backward`` is bit-identical too; ``spk`` may have any dtype
  (non-zero = spike).
* ``sparse_weight_grad`` / ``sparse_input_grad`` sum in a different order
  than the reference (agreement to rounding) but deterministically: no
  atomics, on CPU or CUDA.

Dtypes other than float32/float64 (half, bfloat16) and devices other than CPU
and CUDA fall back to the reference implementation.
"""
from __future__ import annotations

import threading
import warnings
from typing import Optional, Tuple

import torch

from . import _build, reference

__all__ = ["available", "build_error", "lif_scan", "lif_scan_", "lif_scan_backward",
           "lif_scan_backward_", "sparse_weight_grad",
           "sparse_input_grad"]

_lock = threading.Lock()
_state = {"tried": False, "ok": False, "error": None, "warned": False}
_LOG_TAIL = 4000
_KERNEL_DTYPES = (torch.float32, torch.float64)
# sparse_input_grad: above this fraction of the [R, N_in] entries a dense GEMM
# plus a gather beats the per-entry dot products (measured on CPU).
_DENSE_FRACTION = reference._DENSE_FRACTION
_DEFAULT_HINT = ("To fix, install a C++ compiler (g++/clang) and ninja (`pip install ninja`), "
                 "plus the CUDA toolkit matching torch.version.cuda for GPU kernels; see the "
                 "log with `snntorch_sparse.ops.compiled.available(strict=True)`.")


def _log_tail(err: BaseException) -> str:
    log = getattr(err, "log", "") or str(err)
    return log[-_LOG_TAIL:]


def _register_fakes() -> None:
    @torch.library.register_fake("snntorch_sparse::lif_scan")
    def _(current, beta, threshold, reset_mode):
        return torch.empty_like(current, memory_format=torch.contiguous_format), \
            torch.empty_like(current, memory_format=torch.contiguous_format)

    @torch.library.register_fake("snntorch_sparse::lif_scan_")
    def _(current, beta, threshold, reset_mode):
        return None

    @torch.library.register_fake("snntorch_sparse::lif_scan_backward")
    def _(grad, beta, spk, reset_mode):
        return torch.empty_like(grad, memory_format=torch.contiguous_format)

    @torch.library.register_fake("snntorch_sparse::lif_scan_backward_")
    def _(grad, beta, spk, reset_mode):
        return None

    @torch.library.register_fake("snntorch_sparse::sparse_weight_grad")
    def _(h, x_index, x_values, in_features):
        return h.new_empty((h.shape[1], in_features))

    @torch.library.register_fake("snntorch_sparse::sparse_input_grad")
    def _(h, weight, index):
        return h.new_empty((index.shape[0],))

    @torch.library.register_fake("snntorch_sparse::rsynaptic_backward")
    def _(act_rowptr, act_col, act_sg, d_spk, d_syn, d_mem, alpha, beta, wt, v, spk, keep0, reset_mode, T, R, N,
          need_a):
        a = act_sg.new_empty((T, R, N)) if need_a else act_sg.new_empty((0,))
        return a, act_sg.new_empty((T, R, N)), act_sg.new_empty((act_sg.shape[0],))

    @torch.library.register_fake("snntorch_sparse::alpha_backward")
    def _(gu, d_e, d_h, alpha, beta, tau, spk, r0, reset_mode, T, R, N):
        return gu.new_empty((T, R, N)), gu.new_empty((T, R, N))


def build_error() -> Optional[BaseException]:
    """The exception of the last failed build (``None``: not tried or built)."""
    return _state["error"]


def available(strict: bool = False) -> bool:
    """Build and load the kernels on first call; ``True`` when they are usable.

    Args:
        strict: raise :class:`RuntimeError` (with the compiler log's tail)
            instead of warning and returning ``False`` when the build fails.

    Raises:
        snntorch_sparse.ops._build.BuildConfigError: an invalid build setting
            (e.g. ``$SNNTORCH_SPARSE_BUILD_TIMEOUT``), whatever ``strict``.
    """
    if not _state["tried"]:
        with _lock:
            if not _state["tried"]:
                try:
                    _build.load()
                    _register_fakes()
                    _state["ok"] = True
                except _build.BuildConfigError:
                    raise  # a setting to fix, not a reason to fall back
                except Exception as exc:  # noqa: BLE001 -- any failure means "unavailable"
                    _state["error"] = exc
                _state["tried"] = True
    if _state["ok"]:
        return True
    err = _state["error"]
    if strict:
        raise RuntimeError(
            "snntorch_sparse: the compiled backend could not be built "
            f"({err}). Compiler output (tail):\n{_log_tail(err)}") from err
    if not _state["warned"]:
        _state["warned"] = True
        warnings.warn(
            "snntorch_sparse: could not build the compiled C++/CUDA backend "
            f"({err}); falling back to the slower pure-PyTorch reference backend. "
            f"{getattr(err, 'hint', None) or _DEFAULT_HINT} "
            "Set SNNTORCH_SPARSE_BACKEND=reference to use the reference backend "
            "without this warning.", RuntimeWarning, stacklevel=2)
    return False


def _ops():
    if not available():
        raise RuntimeError("snntorch_sparse: the compiled backend is not available; "
                           "call snntorch_sparse.ops.compiled.available(strict=True) for the log")
    return torch.ops.snntorch_sparse


def _native(*tensors: torch.Tensor) -> bool:
    t = tensors[0]
    return t.dtype in _KERNEL_DTYPES and t.device.type in ("cpu", "cuda")


def lif_scan(current: torch.Tensor, beta: torch.Tensor, threshold: torch.Tensor,
             reset_mode: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """See :func:`snntorch_sparse.ops.reference.lif_scan` (bit-identical)."""
    if not _native(current):
        return reference.lif_scan(current, beta, threshold, reset_mode)
    dt = current.dtype
    return _ops().lif_scan(current, beta.to(dt), threshold.to(dt), int(reset_mode))


def lif_scan_(current: torch.Tensor, beta: torch.Tensor, threshold: torch.Tensor,
              reset_mode: int) -> torch.Tensor:
    """See :func:`snntorch_sparse.ops.reference.lif_scan_` (bit-identical; no second buffer)."""
    if not _native(current) or not current.is_contiguous():
        return reference.lif_scan_(current, beta, threshold, reset_mode)
    dt = current.dtype
    _ops().lif_scan_(current, beta.to(dt), threshold.to(dt), int(reset_mode))
    return current


def lif_scan_backward(grad: torch.Tensor, beta: torch.Tensor, spk: Optional[torch.Tensor],
                      reset_mode: int) -> torch.Tensor:
    """See :func:`snntorch_sparse.ops.reference.lif_scan_backward` (bit-identical).

    ``spk`` may be bool, integer or floating point (non-zero = spike); it is
    read only for ``reset_mode == 1``.
    """
    if not _native(grad):
        return reference.lif_scan_backward(grad, beta, spk, reset_mode)
    if reset_mode != 1:
        spk = None
    return _ops().lif_scan_backward(grad, beta.to(grad.dtype), spk, int(reset_mode))


def lif_scan_backward_(grad: torch.Tensor, beta: torch.Tensor, spk: Optional[torch.Tensor],
                       reset_mode: int) -> torch.Tensor:
    """See :func:`snntorch_sparse.ops.reference.lif_scan_backward_` (bit-identical; no second buffer)."""
    if not _native(grad) or not grad.is_contiguous():
        return reference.lif_scan_backward_(grad, beta, spk, reset_mode)
    if reset_mode != 1:
        spk = None
    _ops().lif_scan_backward_(grad, beta.to(grad.dtype), spk, int(reset_mode))
    return grad


def sparse_weight_grad(h: torch.Tensor, x_index: torch.Tensor, x_values: Optional[torch.Tensor],
                       in_features: int) -> torch.Tensor:
    """See :func:`snntorch_sparse.ops.reference.sparse_weight_grad`."""
    if not _native(h):
        return reference.sparse_weight_grad(h, x_index, x_values, in_features)
    if x_values is not None:
        x_values = x_values.to(h.dtype)
    return _ops().sparse_weight_grad(h, x_index.long(), x_values, int(in_features))


def sparse_input_grad(h: torch.Tensor, weight: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """See :func:`snntorch_sparse.ops.reference.sparse_input_grad`."""
    if not _native(h):
        return reference.sparse_input_grad(h, weight, index)
    index = index.long()
    if index.numel() * _DENSE_FRACTION > h.shape[0] * weight.shape[1]:
        # Many entries requested: one GEMM beats per-entry dot products.
        return (h @ weight.to(h.dtype)).view(-1).index_select(0, index)
    return _ops().sparse_input_grad(h, weight.to(h.dtype), index)
