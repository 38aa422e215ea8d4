"""Helpers shared by the whole-sequence neurons of :mod:`snntorch_sparse.rsynaptic` and
:mod:`snntorch_sparse.alpha` (internal)."""
from __future__ import annotations

import torch
from torch import nn

from ._validation import as_float_param
from .functional import LIFConfig, _active_window


def active_set(mem: torch.Tensor, thr: torch.Tensor, cfg: LIFConfig):
    """The active set of a whole-sequence membrane ``mem`` ``[T, R, N]``.

    Returns ``(act_idx, act_sg, bounds)``: the sorted flat indices with
    ``|U - θ| < B`` (the fixed or adaptive window of ``cfg.surrogate``), the
    surrogate derivative there (times the adaptive gain) and the per-step
    boundaries of ``act_idx``. Fills ``cfg.stats`` (window, gain, active, total).
    """
    T, R, N = mem.shape
    dtype = mem.dtype
    shift = (mem - thr).view(T * R, N)
    sg = cfg.surrogate
    if sg.adaptive:
        window = sg.window(shift)
        gain = sg.gain(shift, window)
    else:
        window, gain = sg.bth, sg.fixed_gain
    cfg.stats["window"], cfg.stats["gain"] = window, gain
    win = window.to(dtype).reshape(-1) if isinstance(window, torch.Tensor) else window
    act_idx = _active_window(shift.view(T, R, N), win).view(-1).nonzero().squeeze(1)
    act_sg = sg.derivative(shift.reshape(-1).index_select(0, act_idx))
    if gain is not None:
        act_sg = act_sg * torch.as_tensor(gain, dtype=dtype).reshape(-1).expand(N).index_select(0, act_idx % N)
    cfg.stats["active"], cfg.stats["total"] = act_idx.numel(), T * R * N
    bounds = torch.searchsorted(act_idx, torch.arange(T + 1, device=act_idx.device) * (R * N)).tolist()
    return act_idx, act_sg, bounds


def shifted(seq: torch.Tensor, first) -> torch.Tensor:
    """``[first, seq[0], ..., seq[T-2]]`` (``first=None``: zero)."""
    prev = torch.zeros_like(seq)
    prev[1:] = seq[:-1]
    if first is not None:
        prev[0] = first
    return prev


def as_tensor_like(x, like: torch.Tensor):
    """``x`` itself if a tensor, else a tensor of ``like``'s dtype and device."""
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=like.dtype, device=like.device)


def register_param(module: nn.Module, name: str, value, learn: bool, dtype, device) -> None:
    """``module.<name>``: an ``nn.Parameter`` if ``learn``, else a buffer (a float copy of ``value``)."""
    t = torch.as_tensor(as_float_param(value), dtype=dtype, device=device).clone()
    if learn:
        setattr(module, name, nn.Parameter(t))
    else:
        module.register_buffer(name, t)


def state_rows(current: torch.Tensor, R: int, N: int, **states):
    """Initial states (``name=tensor or None``) as ``[R, N]`` rows of one step of ``current``
    ``[T, B, ..., N]``; ``ValueError`` naming the state when it does not broadcast."""
    out = []
    for name, s in states.items():
        if s is None:
            out.append(None)
        elif s.numel() == R * N:
            out.append(s.reshape(R, N))
        else:
            try:
                out.append(s.expand(current.shape[1:]).reshape(R, N))
            except RuntimeError:
                raise ValueError(f"{name} of shape {tuple(s.shape)} does not broadcast to one step "
                                 f"{tuple(current.shape[1:])} of the input") from None
    return out
