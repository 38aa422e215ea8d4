r"""Hidden spikes between sparse layers, held as their events: 4 bytes per spike, not per entry.

A fused sparse layer computes its spikes' CSR (the next sparse layer's input
events) anyway. :class:`SpikeTensor` is the ``[T, B, N]`` float spike output
that holds only that CSR: a next sparse layer reads the events as they are,
so the dense ``[T, B, N]`` float tensor (4 bytes per entry, 97.7 MiB at
``T=500, B=256, N=200``) is never written on that path. To everything else it
is the dense tensor:

* any torch operation (``spk.sum(0)``, ``nn.Linear``, indexing, printing,
  ``.numpy()``, ``torch.save``) goes through ``__torch_dispatch__``, which
  builds the dense tensor once (zeros and ones at the events) and runs the
  operation on it;
* from then on that dense tensor is the truth: writes through views,
  ``.data`` or in-place operations land in it, and the next sparse layer
  reads its events from it (as from any dense input);
* ``spk.sum()`` (all elements) is answered from the number of events without
  building it.

Autograd sees an ordinary float tensor: it requires grad, has the layer as
``grad_fn``, takes dense or :class:`~snntorch_sparse.active_grad.ActiveSetGrad`
gradients, and ``detach()`` gives a detached :class:`SpikeTensor` on the same
events (so ``.data`` writes are seen by every alias).

Under ``torch.compile`` the layers return plain dense spikes instead.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch.utils._pytree import tree_map

__all__ = ["SpikeTensor"]

aten = torch.ops.aten

# Operations that only read the input's metadata: answered on a stand-in without its values.
_METADATA_ONLY = {aten.new_empty.default, aten.new_zeros.default, aten.new_ones.default, aten.new_full.default,
                  aten.new_empty_strided.default, aten.empty_like.default, aten.zeros_like.default,
                  aten.ones_like.default, aten.full_like.default}
_ALIASES = {aten.detach.default, aten.alias.default}


class _Store:
    """What all aliases of one spike output share: the events and, once built, the dense tensor."""

    def __init__(self, rowptr: torch.Tensor, col: torch.Tensor, shape, dtype, device):
        self.rowptr, self.col = rowptr, col
        self.shape, self.dtype, self.device = tuple(shape), dtype, device
        self.dense: Optional[torch.Tensor] = None

    def materialise(self) -> torch.Tensor:
        if self.dense is None:
            from .ops import fused
            out = torch.zeros(self.shape, dtype=self.dtype, device=self.device)
            if self.col.numel():
                out.view(-1).index_fill_(0, fused.csr_to_flat(self.rowptr, self.col, self.shape[-1]), 1)
            self.dense = out
        return self.dense


class SpikeTensor(torch.Tensor):
    """``[T, B, N]`` binary spikes of a sparse layer, stored as their CSR over the ``T·B`` rows.

    ``rowptr`` (int64 ``[T·B + 1]``) and ``col`` (int32, one per spike) are the
    spike events in row-major order (:func:`snntorch_sparse.ops.fused.lif_fused_forward`'s
    spike CSR). Behaves as the dense float tensor in every operation (see the module docstring).
    """

    @staticmethod
    def __new__(cls, store: _Store, requires_grad: bool = False):
        return torch.Tensor._make_wrapper_subclass(cls, store.shape, dtype=store.dtype, device=store.device,
                                                   requires_grad=requires_grad)

    def __init__(self, store: _Store, requires_grad: bool = False):
        self._store = store

    @classmethod
    def from_csr(cls, rowptr: torch.Tensor, col: torch.Tensor, shape: Tuple[int, int, int], dtype,
                 device) -> "SpikeTensor":
        """Spikes ``[T, B, N]`` of ``dtype`` with ones exactly at the CSR's events."""
        T, B, N = shape
        if rowptr.numel() != T * B + 1 or col.dtype != torch.int32 or rowptr.dtype != torch.long:
            raise ValueError(f"SpikeTensor: need int64 rowptr [{T * B + 1}] and int32 col, got "
                             f"{rowptr.dtype} {tuple(rowptr.shape)} and {col.dtype}")
        return cls(_Store(rowptr, col, shape, dtype, device))

    def events(self) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
        """``(rowptr, col)`` of the spikes while the dense tensor was never built, else ``None``.

        Once built, the dense tensor may have been written to (``.data``, views,
        in-place operations): only it is then the truth.
        """
        s = self._store
        return None if s.dense is not None else (s.rowptr, s.col)

    def dense(self) -> torch.Tensor:
        """The plain dense tensor (built once, shared by every alias)."""
        return self._store.materialise()

    def batch_rows(self, index: torch.Tensor) -> torch.Tensor:
        """Dense ``[T, len(index), N]`` spikes of the batch entries ``index``, without building the rest.

        No boolean-mask indexing (on CUDA that reads a count back to the host): every
        event is written, those of other batch entries into one spare element dropped
        at the end.
        """
        s = self._store
        if s.dense is not None:
            return s.dense.index_select(1, index)
        from .ops import fused
        T, B, N = s.shape
        m = index.numel()
        out = torch.zeros(T * m * N + 1, dtype=s.dtype, device=s.device)
        if s.col.numel():
            flat = fused.csr_to_flat(s.rowptr, s.col, N)
            row = torch.div(flat, N, rounding_mode="floor")
            pos = torch.full((B,), -1, dtype=torch.long, device=s.device)
            pos[index] = torch.arange(m, device=s.device)
            k = pos[row % B]
            t = torch.div(row, B, rounding_mode="floor")
            target = torch.where(k >= 0, (t * m + k) * N + flat % N, T * m * N)
            out.index_fill_(0, target, 1)
        return out[:-1].view(T, m, N)

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _ALIASES and isinstance(args[0], SpikeTensor):
            return SpikeTensor(args[0]._store)  # same events, same dense tensor once built
        if func is aten.sum.default and isinstance(args[0], SpikeTensor) and args[0].events() is not None \
                and kwargs.get("dtype") is None:
            s = args[0]._store
            return torch.full((), float(s.col.numel()), dtype=s.dtype, device=s.device)  # no host-to-device copy
        if func in _METADATA_ONLY:
            def stand_in(t):
                return torch.empty((), dtype=t.dtype, device=t.device).expand(t.shape) \
                    if isinstance(t, SpikeTensor) else t
            return func(*tree_map(stand_in, args), **tree_map(stand_in, kwargs))

        def unwrap(t):
            return t.dense() if isinstance(t, SpikeTensor) else t
        out = func(*tree_map(unwrap, args), **tree_map(unwrap, kwargs))
        schema = func._schema
        if schema.arguments and schema.arguments[0].alias_info is not None \
                and schema.arguments[0].alias_info.is_write and isinstance(args[0], SpikeTensor):
            return args[0]  # in place on the spikes: the dense tensor changed, the wrapper is the result
        return out

    # torch functions go straight to dispatch (no subclass wrapping of results)
    __torch_function__ = torch._C._disabled_torch_function_impl

    # Python-level conversions that bypass dispatch: answer them from the dense tensor
    def numpy(self, *args, **kwargs):
        return self.dense().numpy(*args, **kwargs)

    def tolist(self):
        return self.dense().tolist()

    def untyped_storage(self):
        return self.dense().untyped_storage()

    def data_ptr(self):
        return self.dense().data_ptr()

    def __deepcopy__(self, memo):
        out = self.dense().clone()
        out.requires_grad_(self.requires_grad)
        return out

    def __reduce_ex__(self, protocol):
        return self.dense().__reduce_ex__(protocol)

    def __repr__(self) -> str:
        s = self._store
        return f"SpikeTensor({s.col.numel()} spikes in {list(s.shape)}, dense={self.dense()!r})"
