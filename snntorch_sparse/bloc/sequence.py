"""Running a module over a time-major sequence ``[T, B, ...]``."""
from __future__ import annotations

import snntorch as snn
import torch
from torch import nn

__all__ = ["run_sequence", "is_multi_step", "check_time_major"]


def is_multi_step(module: nn.Module) -> bool:
    """True when ``module`` takes a whole sequence in one call.

    That is the case when it contains a multi-step module (``multi_step = True``,
    e.g. the package's fused sparse layers) and no single-step snnTorch neuron.
    """
    mods = list(module.modules())
    single = any(isinstance(m, snn.SpikingNeuron) and not getattr(m, "multi_step", False) for m in mods)
    multi = any(getattr(m, "multi_step", False) for m in mods)
    return multi and not single


def check_time_major(x, name: str, batch: int | None = None, batch_name: str = "") -> None:
    """Raise a clear error unless ``x`` is a time-major tensor ``[T, B, ...]`` (``B == batch`` if given).

    Every BlocTrain entry point indexes samples along dim 1, so a batch-major
    ``[B, T, ...]`` tensor or a label vector of another length would otherwise
    fail deep inside with an unrelated ``IndexError``.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [T, B, ...], got {type(x).__name__}")
    if x.dim() < 3:
        raise ValueError(f"{name} must be time-major with shape [T, B, ...] (3 or more dims), "
                         f"got shape {tuple(x.shape)}")
    if batch is not None and x.shape[1] != batch:
        hint = ("; it looks batch-major [B, T, ...]: swap the first two dims with .transpose(0, 1)"
                if x.shape[0] == batch else "")
        raise ValueError(f"{name} must be time-major [T, B, ...] with B = len({batch_name}) = {batch} samples "
                         f"in dim 1, got shape {tuple(x.shape)}{hint}")


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def run_sequence(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply ``module`` to every step of ``x`` (``[T, B, ...]``) and stack its outputs.

    Multi-step modules get the whole sequence in one call; otherwise hidden
    states of every nested neuron are reset (``reset_mem()``, and any ``reset_time()``
    method, e.g. :class:`~snntorch_sparse.bloc.resnet.BatchNormTT2d`) and the
    module is called once per step. A neuron returning ``(spk, mem)`` gives ``spk``.
    """
    if is_multi_step(module):
        return _first(module(x))
    for m in module.modules():
        # snntorch.utils.reset only looks at direct children: reset nested neurons too
        if isinstance(m, snn.SpikingNeuron) and hasattr(m, "reset_mem"):
            m.reset_mem()
        if hasattr(m, "reset_time"):
            m.reset_time()
    return torch.stack([_first(module(x[t])) for t in range(x.shape[0])])
