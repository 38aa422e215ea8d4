r"""The compiled CPU kernels of one per-step LIF update (``csrc/cpu/leaky_step.cpp``) and when they apply.

:class:`~snntorch_sparse.step.LeakyStep` runs its forward and the windowed
surrogate gradient of its backward through two C++ kernels when the package's
compiled backend is in use (``backend`` / ``SNNTORCH_SPARSE_BACKEND`` ``auto``
with a successful build, or ``compiled``), on contiguous float32/float64 CPU
tensors with ``beta`` and ``threshold`` scalar or one value per neuron;
otherwise it runs the same computation as PyTorch operations.

* The forward performs the PyTorch code's operations in the same order, each
  rounded on its own: membrane, spikes and ``U - θ`` are bit-identical.
* The backward computes :math:`g = \partial L/\partial U + \partial L/\partial S
  \cdot c_n\,\sigma'(U - \theta)\,\mathbb{1}[|U - \theta| < B_n]` in one pass
  (``B_n``, ``c_n``: :func:`~snntorch_sparse.surrogate.windowed_derivative`'s,
  from the same strided rows). The window is a selection, so ``B_n`` is
  bit-identical; ``σ'`` of ``sparse_atan`` / ``sparse_fast_sigmoid`` is
  evaluated with the PyTorch expression's operations (other surrogates hand
  their ``σ'`` from PyTorch); the gain's two sums over the sampled rows run in
  row order, so ``c_n`` may differ from PyTorch's ``sum`` in the last bit. The
  ``c_n`` used is the one recorded (``last_gain``, ``frozen_surrogate()``).
"""
from __future__ import annotations

import math
import os

import torch

from .surrogate import STEP_WINDOW_ROWS, SparseATan, SparseFastSigmoid

__all__ = ["usable", "forward", "windowed_grad"]

_DTYPES = (torch.float32, torch.float64)


_USABLE: dict = {}


def usable(backend, t: torch.Tensor) -> bool:
    """True when the compiled per-step kernels run for tensors like ``t`` under ``backend``."""
    if t.device.type != "cpu" or t.dtype not in _DTYPES or t.dim() == 0 or torch.compiler.is_compiling():
        return False
    key = (backend, os.environ.get("SNNTORCH_SPARSE_BACKEND"))
    ok = _USABLE.get(key)
    if ok is None:
        from .ops import get_backend
        ops = get_backend(backend, t.device)
        ok = (getattr(ops, "__name__", "").rpartition(".")[2] == "compiled"
              and hasattr(torch.ops.snntorch_sparse, "leaky_step_grad"))
        _USABLE[key] = ok
    return ok


def _as_rows(t: torch.Tensor, rows: int, feats: int) -> torch.Tensor:
    """``t`` as a contiguous ``[rows, feats]`` tensor (itself when it already is one)."""
    if t.dim() == 2 and t.is_contiguous():
        return t
    return t.contiguous().view(rows, feats)


def _rows_features(t: torch.Tensor):
    return (t.shape[0], t.numel() // t.shape[0]) if t.dim() > 1 else (1, t.numel())


def _per_feature(p: torch.Tensor, like: torch.Tensor):
    """``p`` as 1 or F values (``like``'s features), or ``None`` when it broadcasts otherwise."""
    if p.dtype != like.dtype:
        return None
    if p.numel() == 1:
        return p.reshape(1)
    feat = list(like.shape[1:] if like.dim() > 1 else like.shape)
    shape = list(p.shape)
    while shape and shape[0] == 1:
        shape.pop(0)
    return p.reshape(-1) if shape == feat and p.dim() <= like.dim() else None


def forward(input_, mem, beta_c, threshold, reset_mode: int, need_reset: bool):
    """``(spk, new, reset, prev)`` by the kernel, or ``None`` when it does not apply.

    ``reset`` (bool) is ``None`` unless ``need_reset``; ``prev`` is ``None`` unless ``reset_mode == 1``.
    ``U - θ`` is not returned: :func:`windowed_grad` recomputes it from ``new`` (the same
    subtraction, so the same bits), which saves one buffer per step.
    """
    if mem.shape != input_.shape or mem.dtype != input_.dtype or input_.numel() == 0:
        return None
    b, th = _per_feature(beta_c, input_), _per_feature(threshold, input_)
    if b is None or th is None:
        return None
    shape = input_.shape
    rows, feats = _rows_features(input_)
    out = torch.ops.snntorch_sparse.leaky_step_forward(
        _as_rows(input_, rows, feats), _as_rows(mem, rows, feats), b, th, reset_mode, need_reset)
    if input_.dim() != 2:
        out = [o.view(shape) if o.numel() else o for o in out]
    spk, new, reset, prev = out
    return spk, new, reset if need_reset else None, prev if reset_mode == 1 else None


def _closed_form(sg):
    if type(sg) is SparseATan:
        return 1, math.pi / 2 * sg.alpha, sg.alpha / 2
    if type(sg) is SparseFastSigmoid:
        return 2, sg.slope, 1.0
    return 0, 0.0, 0.0


def windowed_grad(sg, shift: torch.Tensor, d_spk: torch.Tensor, d_mem, threshold=None):
    """``d_mem + d_spk · c σ'(x) [|x| < B]`` by the kernel (recorded on ``sg`` as
    :func:`~snntorch_sparse.surrogate.windowed_derivative` does), or ``None`` when it does not apply.

    ``x`` is ``shift``, or ``shift - threshold`` when ``threshold`` is given (``shift`` then is
    the new membrane ``U``; the subtraction is the forward's, so ``x`` has the same bits).
    """
    if shift.numel() == 0 or d_spk.dtype != shift.dtype or d_spk.shape != shift.shape or (
            d_mem is not None and (d_mem.dtype != shift.dtype or d_mem.shape != shift.shape)):
        return None
    th = torch.zeros(1, dtype=shift.dtype) if threshold is None else _per_feature(threshold, shift)
    if th is None:
        return None
    rows, feats = _rows_features(shift)
    window = gain = None
    stride, k, fraction = 1, 1, 1.0
    if sg.adaptive:
        if rows > STEP_WINDOW_ROWS:
            stride = -(-rows // STEP_WINDOW_ROWS)
        sampled = -(-rows // stride)
        fraction = sg.active_fraction
        k = min(sampled, max(1, math.ceil(fraction * sampled)))
    else:
        if sg.fixed_gain is not None:
            return None
        bth = sg.bth
        if isinstance(bth, torch.Tensor):
            if bth.numel() != feats:
                return None
            window = bth.detach().reshape(-1).to(shift.dtype)
        else:
            window = torch.tensor([float(bth)], dtype=shift.dtype)
    kind, p1, p2 = _closed_form(sg)
    full = None
    if not kind:                                  # σ' from PyTorch, on U - θ itself
        if threshold is not None:
            shift, th = shift - threshold, torch.zeros(1, dtype=shift.dtype)
        full = _as_rows(sg.derivative(shift), rows, feats)
    g, win, gn, n_active = torch.ops.snntorch_sparse.leaky_step_grad(
        _as_rows(shift, rows, feats), th, full, kind, p1, p2, _as_rows(d_spk, rows, feats),
        None if d_mem is None else _as_rows(d_mem, rows, feats), window, gain, stride, k, 1.0 / fraction)
    total = shift.numel()
    recorded = win if sg.adaptive else sg.bth
    sg.record(n_active, total, recorded)
    sg.last_gain = gn if sg.adaptive else None
    monitor = getattr(sg, "monitor", None)
    if monitor is not None:
        monitor.update(n_active, total, recorded, fixed=not sg.adaptive)
    return g if shift.dim() == 2 else g.view(shift.shape)
