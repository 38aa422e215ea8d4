"""Compute a layer's output once when a model's own time loop feeds it the same input every step.

snnTorch's tutorials feed a static input at every time step of their own
``forward``::

    for step in range(num_steps):
        cur1 = self.fc1(x)          # the same x, the same weights: the same cur1, num_steps times
        spk1, mem1 = self.lif1(cur1, mem1)

Within one call of the model, a reusing layer returns the result it already
computed when it is called again with the *same* tensor, unchanged since
(same ``_version``), with unchanged parameters and the same autograd mode, and
when that earlier result was not modified in place. The value is identical;
autograd then sums the gradients of all steps into that one output and runs the
layer's backward once (for ``nn.Linear``: one ``∂L/∂W`` GEMM over
``Σ_t ∂L/∂I[t]`` instead of one per step), so gradients agree with the
per-step computation up to float summation order. Nothing is kept from one call
of the model to the next: the root module's forward hooks open and close the
scope.

An ``nn.Linear`` fed a *different* input at each step (spikes of the previous
layer, a rate-coded input) gets its weight gradient summed in one buffer per
call instead of once per step (:mod:`snntorch_sparse._weight_accum`).
"""
from __future__ import annotations

import torch
from torch import nn

from . import _weight_accum

__all__ = ["ReuseScope", "enable_input_reuse", "disable_input_reuse", "REUSABLE"]

#: Stateless, deterministic layers whose output depends only on their input and parameters.
REUSABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


class ReuseScope:
    """The cache of one root model, alive during one call of its ``forward``."""

    def __init__(self):
        self.active = False
        self.entries: dict = {}
        self.proxies: dict = {}

    def begin(self, module, args):
        self.active = True
        self.entries.clear()
        self.proxies = {}

    def end(self, module, args, output):
        self.active = False
        self.entries.clear()
        self.proxies = {}

    def __getstate__(self):
        return {"active": False, "entries": {}, "proxies": {}}


def _versions(module: nn.Module) -> tuple:
    return tuple(p._version for p in module.parameters(recurse=False))


def _reusing_forward(self, x):
    scope = self._reuse_scope
    if scope is None or not scope.active or not isinstance(x, torch.Tensor):
        return type(self).__mro__[2].forward(self, x)
    hit = scope.entries.get(id(self))
    grad_mode = torch.is_grad_enabled()
    if (hit is not None and hit[0] is x and hit[1] == x._version and hit[2] == _versions(self)
            and hit[3] == grad_mode and hit[4]._version == hit[5]):
        return hit[4]
    base = type(self).__mro__[2]
    if base is nn.Linear and _weight_accum.usable(self, x):
        y = _weight_accum.linear(self, x, scope.proxies)
    else:
        y = base.forward(self, x)
    scope.entries[id(self)] = (x, x._version, _versions(self), grad_mode, y, y._version)
    return y


_CLASSES: dict = {}


def _reusing_class(cls):
    """A subclass of ``cls`` with the reusing forward, printed under ``cls``'s own name."""
    if cls not in _CLASSES:
        _CLASSES[cls] = type(cls.__name__, (_ReuseMixin, cls), {"__module__": __name__,
                                                                 "__qualname__": f"_reusing_{cls.__name__}"})
        globals()[f"_reusing_{cls.__name__}"] = _CLASSES[cls]
    return _CLASSES[cls]


class _ReuseMixin:
    forward = _reusing_forward


def enable_input_reuse(model: nn.Module) -> int:
    """Make every :data:`REUSABLE` layer below ``model`` reuse its output within one call; returns how many.

    The layers keep their parameters and ``state_dict`` keys, and stay instances
    of their classes. ``model`` gets two forward hooks that scope the cache.
    """
    scope = ReuseScope()
    count = 0
    for m in model.modules():
        if type(m) in REUSABLE:
            m.__class__ = _reusing_class(type(m))
            m._reuse_scope = scope
            count += 1
    if count:
        model.register_forward_pre_hook(scope.begin)
        model.register_forward_hook(scope.end)
    return count


for _cls in REUSABLE:
    _reusing_class(_cls)


def disable_input_reuse(model: nn.Module) -> None:
    """Undo :func:`enable_input_reuse` on ``model`` (plain layer classes, no scope hooks)."""
    for m in model.modules():
        if isinstance(m, _ReuseMixin):
            m.__class__ = type(m).__mro__[2]
            del m._reuse_scope
    for hooks in (model._forward_pre_hooks, model._forward_hooks):
        for key, hook in list(hooks.items()):
            if isinstance(getattr(hook, "__self__", None), ReuseScope):
                del hooks[key]
