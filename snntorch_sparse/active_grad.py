r"""``∂L/∂S`` between two sparse layers: one value per active entry, dense to everyone else.

A sparse layer's input gradient is non-zero only where the layer feeding it
is active (``∂L/∂X[t, b, j] = h[t, b] · W[:, j]`` is computed on that set
alone). :class:`ActiveSetGrad` carries those values back through autograd
without writing the ``[T, B, N]`` zeros around them and without building
index tensors:

* the producing sparse layer's backward recognises its own set
  (:meth:`ActiveSetGrad.values_on`) and reads the values as they are;
* anything else that touches the gradient (a second consumer's gradient
  summed in by autograd, a tensor hook, ``retain_grad``,
  ``torch.autograd.grad`` handing it to the user) goes through
  ``__torch_dispatch__``, which materialises the dense tensor once and runs
  the operation on it: every operation sees the same dense tensor.

That tensor is the consuming layer's ``∂L/∂S`` on the producing layer's active
set and zero off the active set: *not* the full ``∂L/∂S`` of the hidden
spikes, which is generally non-zero there too. What a hook, ``retain_grad`` or
``torch.autograd.grad(loss, spikes)`` shows of a hidden spike tensor is this
restricted gradient. It loses nothing for training: the producing layer's
surrogate is zero off its active set, so every parameter and input gradient
is exact.

This replaces a coalesced sparse COO tensor on the same set, which needed an
int64 ``[3, K]`` index tensor (24 bytes per active entry, written in every
backward) only to pass autograd's checks.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch.utils._pytree import tree_map

__all__ = ["ActiveSetGrad"]


class ActiveSetGrad(torch.Tensor):
    """A ``[T, B, N]`` gradient that is zero off a layer's active set.

    ``values[k]`` is the gradient at the ``k``-th active entry of ``sets``
    (a :class:`~snntorch_sparse.fused_cpu.SpikeSets`, entries in row-major
    order; its ``shape`` is the gradient's). Any torch operation sees the
    dense tensor (built once, on first use).
    """

    @staticmethod
    def __new__(cls, values: torch.Tensor, sets):
        return torch.Tensor._make_wrapper_subclass(cls, tuple(sets.shape), dtype=values.dtype, device=values.device)

    def __init__(self, values: torch.Tensor, sets):
        if values.dim() != 1:
            raise ValueError(f"ActiveSetGrad: values must be 1-D (one per active entry), got {tuple(values.shape)}")
        self.values = values
        self.sets = sets
        self._dense: Optional[torch.Tensor] = None

    def values_on(self, sets) -> Optional[torch.Tensor]:
        """The compact values if this gradient lives on ``sets`` and was never densified, else ``None``."""
        return self.values if self._dense is None and self.sets is sets else None

    def dense(self) -> torch.Tensor:
        """The plain dense tensor (zeros off the active set), built once."""
        if self._dense is None:
            out = torch.zeros(self.shape, dtype=self.dtype, device=self.device)
            out.view(-1).index_copy_(0, self.sets.active_flat(), self.values)
            self._dense = out
        return self._dense

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        def unwrap(t):
            return t.dense() if isinstance(t, ActiveSetGrad) else t
        return func(*tree_map(unwrap, args), **tree_map(unwrap, kwargs or {}))

    # torch functions go straight to dispatch (no subclass wrapping of results)
    __torch_function__ = torch._C._disabled_torch_function_impl

    # Python-level conversions that bypass dispatch: answer them from the dense tensor
    def numpy(self, *args, **kwargs):
        return self.dense().numpy(*args, **kwargs)

    def tolist(self):
        return self.dense().tolist()

    def __deepcopy__(self, memo):
        return self.dense().clone()

    def __reduce_ex__(self, protocol):
        return self.dense().__reduce_ex__(protocol)

    def __repr__(self) -> str:
        return f"ActiveSetGrad({self.values.numel()} active of {list(self.shape)}, dense={self.dense()!r})"
