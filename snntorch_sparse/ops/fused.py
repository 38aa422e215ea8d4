r"""Fused kernels of the Linear+LIF layer: CPU (``csrc/cpu/fused_lif.cpp``) and CUDA (``csrc/cuda/fused_launch.cu``).

Sparse sets are CSR over the ``R = T·B`` rows of a ``[T, B, N]`` tensor, rows
in time-major order ``r = t·B + b`` (the order of a coalesced COO index)::

    rowptr: int64 [R + 1]     col: int32 [nnz]     (+ one value per entry)

* :func:`dense_to_csr` -- the non-zeros of a dense ``[R, N]`` input.
* :func:`lif_fused_forward` -- input current (given, or summed event by event
  from the input's CSR), LIF recurrence, spike output, spike CSR and active-set
  CSR with ``U - θ`` per active entry, in one pass.
* :func:`lif_fused_backward` -- the adjoint scan ``h[t] = g[t] + β h[t+1]``
  consumed row by row: ``∂L/∂b``, ``∂L/∂W`` over the input's events and
  ``∂L/∂X`` on the upstream active set; ``h`` itself is stored only on request.

The same op schemas on both devices; the dispatcher picks the kernels. On CUDA
both directions walk time in chunks of whole steps (all dense chunk buffers of
one call together at most max(8 MiB, a sixteenth of the layer's ``[T, B, N]``
float tensor); ``SNNTORCH_SPARSE_CUDA_CHUNK_MIB`` fixes it): the
forward computes the current by cuBLAS per chunk (or takes it given), scans
with the membrane carried and compacts the chunk's rows into the two sets; it
makes one small device-to-host copy (the sets' totals). The backward runs the
adjoint scan chunk by chunk from the last, the carry flowing backwards, with
each chunk's ∂L/∂W and ∂L/∂X GEMMs, so no ``[T, B, N]`` ``h`` exists
(``csrc/cuda/fused_launch.cu``). float32/float64 only; other devices and
dtypes use the four primitive ops of :mod:`snntorch_sparse.ops.compiled` /
:mod:`~snntorch_sparse.ops.reference`.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from . import compiled

__all__ = ["supported", "dense_to_csr", "lif_fused_forward", "lif_fused_backward", "csr_rows",
           "csr_to_flat", "flat_to_csr"]

_registered = {"fakes": False}


def _register_fakes() -> None:
    if _registered["fakes"]:
        return
    _registered["fakes"] = True

    @torch.library.register_fake("snntorch_sparse::dense_to_csr")
    def _(x):
        ctx = torch.library.get_ctx()
        nnz = ctx.new_dynamic_size()
        return (x.new_empty((x.shape[0] + 1,), dtype=torch.long), x.new_empty((nnz,), dtype=torch.int32),
                x.new_empty((nnz,)))

    @torch.library.register_fake("snntorch_sparse::lif_fused_forward")
    def _(current, x_rowptr, x_col, x_val, weight, bias, beta, threshold, reset_mode, bth, event, T, B, spk_out,
          mem_out, need_spike_csr, need_active, capacity=None, x_dense=None):
        ctx = torch.library.get_ctx()
        rows = T * B
        n_spk, n_act = ctx.new_dynamic_size(), ctx.new_dynamic_size()
        long, i32 = torch.long, torch.int32
        return (beta.new_empty((rows + 1 if need_spike_csr else 0,), dtype=long),
                beta.new_empty((n_spk if need_spike_csr else 0,), dtype=i32),
                beta.new_empty((rows + 1 if need_active else 0,), dtype=long),
                beta.new_empty((n_act if need_active else 0,), dtype=i32),
                beta.new_empty((n_act if need_active else 0,)))

    @torch.library.register_fake("snntorch_sparse::lif_fused_backward")
    def _(act_rowptr, act_col, act_sg, d_spk, d_mem, beta, spk, reset_mode, x_rowptr, x_col, x_val,
          weight, up_rowptr, up_col, dx_out, h_out, T, B, in_features, need_dw, need_db, d_spk_compact,
          dx_compact, x_dense=None):
        n = beta.shape[0]
        return (act_sg.new_empty((n, in_features) if need_dw else (0,)),
                act_sg.new_empty((n,) if need_db else (0,)))


_kernels = {"cpu": True}


def _has_kernel(device_type: str) -> bool:
    """The fused ops have kernels for this device type (CUDA: the library was built with nvcc).

    Asked only once the library is loaded (:func:`compiled.available`), so the answer is cached.
    """
    if device_type not in _kernels:
        _kernels[device_type] = device_type == "cuda" and torch._C._dispatch_has_kernel_for_dispatch_key(
            "snntorch_sparse::lif_fused_forward", "CUDA")
    return _kernels[device_type]


def supported(x: torch.Tensor) -> bool:
    """The fused kernels run for this tensor: CPU or CUDA, float32/float64, compiled backend built."""
    if x.device.type not in ("cpu", "cuda") or x.dtype not in (torch.float32, torch.float64):
        return False
    if not compiled.available():
        return False
    _register_fakes()
    return _has_kernel(x.device.type)


def supported_index(t: torch.Tensor) -> bool:
    """The compiled index ops (``csr_to_flat_``) run for this tensor."""
    return t.device.type in ("cpu", "cuda") and compiled.available() and _has_kernel(t.device.type)


def dense_to_csr(x2: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(rowptr, col, values)`` of the non-zeros of a dense ``[R, N]`` tensor (row-major order)."""
    return torch.ops.snntorch_sparse.dense_to_csr(x2)


def lif_fused_forward(current: Optional[torch.Tensor], x_csr, weight: Optional[torch.Tensor],
                      bias: Optional[torch.Tensor], beta: torch.Tensor, threshold: torch.Tensor,
                      reset_mode: int, bth, spk_out: Optional[torch.Tensor], mem_out: Optional[torch.Tensor],
                      need_spike_csr: bool, need_active: bool, shape: Optional[Tuple[int, int]] = None,
                      event: Optional[bool] = None, capacity: Optional[Tuple[int, int]] = None,
                      x_dense: Optional[torch.Tensor] = None):
    """Fill ``spk_out`` (and ``mem_out``); return the spike CSR and the active-set CSR.

    Args:
        current: ``[T, B, N]`` input current, or ``None`` to compute it from
            ``x_csr = (rowptr, col, values-or-None)`` and ``weight``/``bias``:
            with ``event`` (CPU only; ``None``: on CPU) summed event by event; else by GEMMs over
            time chunks of the events densified, the membrane carried between
            chunks (whole time steps; on CUDA the input's and current's chunk
            buffers together at most max(8 MiB, T·B·N·element / 16),
            ``SNNTORCH_SPARSE_CUDA_CHUNK_MIB`` fixes it; on CPU 4 MiB of each), so
            no ``[T, B, N]`` current exists.
        beta, threshold: ``[N]`` (``beta`` clamped), of the output's dtype.
        reset_mode: 0 subtract, 1 zero, 2 none.
        bth: half-width of the active window ``|U - θ| < bth``: a float, or one per
            output feature (``[N]``).
        spk_out, mem_out: contiguous ``[T, B, N]`` outputs (``mem_out`` may be
            ``None``). ``spk_out=None`` (with ``need_spike_csr`` and ``shape=(T,
            B)``): the spikes are returned as their CSR only, never written densely.
        capacity: ``(active, spikes)`` list lengths to allocate on CUDA before
            the totals are known (e.g. the layer's previous sizes with some
            slack); a smaller total costs a second pass over the chunks, never a
            wrong result. ``None``: a guess (an eighth of ``T·B·N`` active).
            The CPU grows its lists and only checks it.
        x_dense: the input as a dense ``[T·B, N_in]`` tensor instead of
            ``x_csr`` (``x_csr=None``): CUDA's GEMMs read its rows directly;
            the CPU takes its CSR first (its kernels read events).

    Returns:
        ``(spk_rowptr, spk_col, act_rowptr, act_col, act_shift)`` -- empty
        tensors for the sets not asked for; ``act_shift`` is ``U - θ`` per active entry.
    """
    x_rowptr, x_col, x_val = x_csr if x_csr is not None else (None, None, None)
    if spk_out is not None:
        T, B = spk_out.shape[0], spk_out.shape[1]
    elif shape is None:
        raise ValueError("lif_fused_forward: spk_out=None needs shape=(T, B)")
    else:
        T, B = shape
    if event is None:
        event = beta.device.type != "cuda"
    n = beta.shape[-1]
    if isinstance(bth, torch.Tensor):
        bth = bth.to(beta.dtype).reshape(-1).expand(n).contiguous() if bth.numel() == 1 else \
            bth.to(beta.dtype).reshape(-1).contiguous()
    else:
        bth = torch.full((n,), float(bth), dtype=beta.dtype, device=beta.device)
    return torch.ops.snntorch_sparse.lif_fused_forward(
        current, x_rowptr, x_col, x_val, weight, bias, beta, threshold, int(reset_mode), bth, bool(event),
        int(T), int(B),
        spk_out, mem_out, bool(need_spike_csr), bool(need_active),
        None if capacity is None else torch.tensor([int(capacity[0]), int(capacity[1])], dtype=torch.long),
        x_dense)


def lif_fused_backward(act, act_sg, d_spk, d_mem, beta, spk, reset_mode, x_csr, weight, up_csr, dx_out,
                       h_out, T: int, B: int, in_features: int, need_dw: bool, need_db: bool,
                       d_spk_compact: bool = False, dx_compact: bool = False,
                       x_dense: Optional[torch.Tensor] = None):
    """Sparse backward of one fused layer; returns ``(dW, db)`` (empty when not asked for).

    ``act = (rowptr, col)`` is the layer's active set with ``act_sg = σ'`` per
    entry. ``d_spk`` is ``∂L/∂S``: dense ``[T, B, N]``, or with
    ``d_spk_compact`` one value per active entry (in the set's order).
    ``dx_out`` receives ``∂L/∂X`` on the upstream active set ``up_csr =
    (rowptr, col)``: into a zeroed dense ``[T, B, N_in]`` tensor, or with
    ``dx_compact`` one value per upstream active entry. ``h_out``, when given,
    receives ``h = ∂L/∂I`` for every entry. ``x_dense`` (with ``x_csr=None``):
    the input as a dense ``[T·B, N_in]`` tensor for ``∂L/∂W`` (see
    :func:`lif_fused_forward`).
    """
    x_rowptr, x_col, x_val = x_csr if x_csr is not None else (None, None, None)
    up_rowptr, up_col = up_csr if up_csr is not None else (None, None)
    return torch.ops.snntorch_sparse.lif_fused_backward(
        act[0], act[1], act_sg, d_spk, d_mem, beta, spk, int(reset_mode), x_rowptr, x_col, x_val, weight,
        up_rowptr, up_col, dx_out, h_out, int(T), int(B), int(in_features), bool(need_dw), bool(need_db),
        bool(d_spk_compact), bool(dx_compact), x_dense)


# ----------------------------------------------------------------------------- CSR helpers

def csr_rows(rowptr: torch.Tensor) -> torch.Tensor:
    """Row index of every entry of a CSR set."""
    rows = torch.arange(rowptr.numel() - 1, device=rowptr.device)
    return torch.repeat_interleave(rows, rowptr.diff())


def csr_to_flat(rowptr: torch.Tensor, col: torch.Tensor, n_cols: int) -> torch.Tensor:
    """Flat int64 indices ``r·N + j`` (sorted) of a CSR set."""
    if supported_index(col):
        out = torch.empty(col.numel(), dtype=torch.long, device=col.device)
        torch.ops.snntorch_sparse.csr_to_flat_(rowptr, col, int(n_cols), out)
        return out
    return csr_rows(rowptr) * n_cols + col.long()


def flat_to_csr(flat: torch.Tensor, n_rows: int, n_cols: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """CSR ``(rowptr, col)`` of sorted flat indices ``r·N + j``."""
    rows = torch.div(flat, n_cols, rounding_mode="floor")
    rowptr = torch.zeros(n_rows + 1, dtype=torch.long, device=flat.device)
    rowptr[1:] = torch.bincount(rows, minlength=n_rows).cumsum(0)
    return rowptr, (flat - rows * n_cols).to(torch.int32)
