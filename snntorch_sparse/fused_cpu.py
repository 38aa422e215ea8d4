r"""Autograd function of the fused Linear+LIF layer, CPU and CUDA.

One autograd function for both devices: the ops of :mod:`snntorch_sparse.ops.fused`
have CPU kernels (``csrc/cpu/fused_lif.cpp``) and CUDA kernels
(``csrc/cuda/fused_launch.cu``) behind the same schemas; the dispatcher picks them.

Same mathematics as :class:`snntorch_sparse.functional._SparseLIF` (see its
module docstring), organised so that nothing of size ``[T, B, N]`` but the
spike output is written in the forward and nothing of that size but the
upstream input gradient in the backward:

Forward (:func:`~snntorch_sparse.ops.fused.lif_fused_forward`)::

    I = X Wᵀ + b        one GEMM over all T·B rows, or (``event_forward``)
                        summed over the input's events only
    U, S                the LIF recurrence, row by row, without storing U
    A                   CSR of the active set |U - θ| < B_th with U - θ
    spike CSR           where S = 1: the next layer's input events

Backward (:func:`~snntorch_sparse.ops.fused.lif_fused_backward`), per batch
range, reverse time, with h[t] in registers/L1 only::

    g[t] = ∂L/∂S[t] · σ' on A  (+ ∂L/∂U[t])
    h[t] = g[t] + β h[t+1]
    ∂L/∂b += h[t];  ∂L/∂W[:, j] += x · h[t] per input event (t, j);
    ∂L/∂X[t, j] = h[t] · W[:, j] on the upstream active set

Saved for the backward: ``W``, the active set (CSR: int32 column + σ' per
entry, one int64 row pointer per (t, b) row) and the input's events (CSR,
values only if not binary).
"""
from __future__ import annotations

import functools
import math
from typing import Optional

import torch

from ._validation import check_finite, per_feature
from .active_grad import ActiveSetGrad
from .ops import fused
from .spike_tensor import SpikeTensor

__all__ = ["SpikeSets", "fused_sparse_lif", "values_on_active_set"]

# Inputs denser than this are cheaper as a dense GEMM (the unfused path handles them).
_DENSE_INPUT_DENSITY = 1.0 / 3.0
# event_forward=None uses the event-driven current up to this input density
# (2 cores, N_in = 700, N = 200: 2% input -> 3x faster than MKL's GEMM; even near 25%).
_AUTO_EVENT_DENSITY = 0.25
# Above this fraction of upstream entries active, ∂L/∂X = h W is one dense GEMM
# (measured on 2 cores at N = 200: per-entry dots win up to about 25-40%).
_DENSE_DX_FRACTION = 0.25
# Per-thread dWᵀ copies above this size: the backward stores h and uses the
# column-sorted weight-gradient op instead.
_MAX_DW_COPIES_BYTES = 256 << 20


DOUBLE_BACKWARD_MESSAGE = (
    "snntorch_sparse: create_graph=True (double backward / second-order gradients) is not "
    "supported through the sparse LIF layers or sparse_lif: their backward is first-order only. "
    "Use snnTorch's dense layers (snntorch_sparse.desparsify) for higher-order gradients.")


def first_order_only(backward):
    """Decorator for a custom ``backward``: refuse ``create_graph=True``.

    The backward is a hand-written first-order formula; differentiating it again
    would silently give a wrong (partial or zero) second derivative. Autograd runs
    a custom backward with grad mode on exactly when ``create_graph=True``, so that
    is refused up front with a ``RuntimeError``. (``once_differentiable`` is not
    enough: it only errors when the incoming gradient itself requires grad, and
    then only if the later backward happens to reach its error node.)
    """
    @functools.wraps(backward)
    def wrapper(ctx, *grads):
        if torch.is_grad_enabled() and not torch.compiler.is_compiling():
            raise RuntimeError(DOUBLE_BACKWARD_MESSAGE)
        with torch.no_grad():
            return backward(ctx, *grads)
    return wrapper


class SpikeSets:
    """Sparse sets a sparse layer attaches to its output spikes.

    ``active`` is the producing layer's active set (where the next layer needs
    ``∂L/∂X``), ``spikes`` where the spike tensor is 1 (the next layer's input
    events). Each is available as CSR over the ``T·B`` rows (``(rowptr, col)``)
    and as sorted flat indices; whichever form a layer stored is converted on
    demand.

    A producer with ``accepts_sparse_grad`` (a sparse layer with a ``[T, B, N]``
    output, fused or not) takes ``∂L/∂S`` as an :class:`~snntorch_sparse.active_grad.ActiveSetGrad`
    on its active set: the next layer returns its input gradient that way
    (values only where they can be non-zero, no dense ``[T, B, N]`` zero-fill
    and gather, no index tensor), built by :meth:`sparse_grad`.
    """

    def __init__(self, n: int, rows: int, active_flat=None, active_csr=None, spikes_csr=None,
                 shape=None, accepts_sparse_grad: bool = False):
        self.n, self.rows, self.shape = n, rows, shape
        self._active_flat, self._active_csr, self.spikes_csr = active_flat, active_csr, spikes_csr
        self.accepts_sparse_grad = accepts_sparse_grad

    def active_flat(self) -> Optional[torch.Tensor]:
        if self._active_flat is None and self._active_csr is not None:
            self._active_flat = fused.csr_to_flat(*self._active_csr, self.n)
        return self._active_flat

    def active_csr(self):
        if self._active_csr is None and self._active_flat is not None:
            self._active_csr = fused.flat_to_csr(self._active_flat, self.rows, self.n)
        return self._active_csr

    def takes_sparse_grad(self, shape) -> bool:
        """A consumer whose input has ``shape`` may hand ``∂L/∂S`` back via :meth:`sparse_grad`."""
        return self.accepts_sparse_grad and tuple(shape) == tuple(self.shape)

    def sparse_grad(self, values: torch.Tensor) -> ActiveSetGrad:
        """``∂L/∂S`` that is zero off the active set, from one value per active entry.

        ``values`` is in the set's order; the producing layer reads them back as
        they are (:func:`values_on_active_set`), anything else sees the dense tensor.
        """
        return ActiveSetGrad(values, self)


def values_on_active_set(d_spk: torch.Tensor, act_flat: torch.Tensor, sets: Optional[SpikeSets]) -> torch.Tensor:
    """``∂L/∂S`` at the sorted flat indices ``act_flat`` (the layer's active set ``sets``).

    ``d_spk`` is dense, sparse COO, or an :class:`ActiveSetGrad`: its values are
    taken as they are when it lives on ``sets`` (:meth:`SpikeSets.sparse_grad`),
    else it is densified first (e.g. the sum of several consumers' gradients).
    """
    vals = compact_grad_values(d_spk, sets)
    if vals is not None:
        return vals
    return dense_grad(d_spk).reshape(-1).index_select(0, act_flat)


def compact_grad_values(d_spk: torch.Tensor, sets: Optional[SpikeSets]) -> Optional[torch.Tensor]:
    """The values of ``d_spk`` per active entry of ``sets`` if it was handed over on that set, else ``None``."""
    if isinstance(d_spk, ActiveSetGrad) and sets is not None:
        return d_spk.values_on(sets)
    return None


def dense_grad(d_spk: torch.Tensor) -> torch.Tensor:
    """``d_spk`` as a plain strided tensor."""
    if isinstance(d_spk, ActiveSetGrad):
        return d_spk.dense()
    return d_spk.to_dense() if d_spk.is_sparse else d_spk


def usable(x: torch.Tensor, weight: Optional[torch.Tensor], cfg) -> bool:
    """The fused path applies: a linear layer or a neuron alone, on CPU or CUDA, compiled backend, float32/64."""
    if cfg.backend == "reference" or not fused.supported(x):
        return False
    from .ops import get_backend, compiled
    return get_backend(cfg.backend, x.device) is compiled


class _FusedSparseLIF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, beta, threshold, cfg):
        T = x.shape[0]
        linear = weight is not None
        # a sparse layer's compact spikes: their events as they are, no dense X
        events_in = x.events() if (linear and isinstance(x, SpikeTensor)) else None
        if linear:
            n, n_in = weight.shape
            x2 = x.reshape(-1, n_in) if events_in is None else None
        else:  # neuron only: x is the current [T, B, ...], n = its features per row
            n = n_in = math.prod(x.shape[2:])
            x2 = x.reshape(T * x.shape[1], n)
            if cfg.check_finite:
                check_finite(x, "input_")
        R = x.numel() // n_in if n_in else 0
        B = R // T if T else 0
        up: Optional[SpikeSets] = cfg.upstream
        need_w = ctx.needs_input_grad[1]
        like = weight if linear else x2

        x_dense = None
        on_cuda = x.device.type == "cuda"
        unchecked = None  # the input's events, checked after the forward on CUDA
        x_gemm = None  # CUDA: the dense input itself, whose rows the op's GEMMs read
        finite_total = None
        x_csr = (None, None, None)
        if events_in is not None:  # binary by construction
            x_csr = (events_in[0], events_in[1], None)
            if need_w and x_csr[1].numel() > _DENSE_INPUT_DENSITY * max(R * n_in, 1):
                x_dense = x.dense().reshape(-1, n_in) != 0
        elif linear and _gemm_reads_dense_input(x, cfg):
            # cuBLAS reads the input's own rows, chunk by chunk, forward and backward: no event
            # list is built or saved (the tensor is the user's; saving it copies nothing)
            x_gemm = x2.contiguous()
            if cfg.check_finite and torch.compiler.is_compiling():
                check_finite(x2, "x")  # an in-graph assertion
            elif cfg.check_finite:  # NaN/inf make the sum non-finite; read after the op's own sync
                finite_total = x_gemm.detach().sum()
        elif linear:
            # The input's events are read from the tensor itself, never from the upstream
            # layer's spike CSR (up.spikes_csr): a write through ``.data`` changes the values
            # without bumping any version counter, and an exact check would cost as much as
            # this pass (tests/test_data_writes.py).
            x_csr = fused.dense_to_csr(x2)
            if on_cuda:
                # the check's device-to-host read waits for the forward's own synchronisation
                unchecked, flags = x_csr, _event_flags(x_csr[2])
            else:
                x_csr, x_dense = _input_events(x_csr, _event_flags(x_csr[2]), x2, need_w, cfg.check_finite)
        current = None
        event = cfg.event_forward
        if not linear:
            event, current = False, x2.reshape(T, B, n)
        elif x_gemm is not None:
            event = False
        elif event is None:  # auto: events while they are at most a quarter of the input (CPU)
            # CUDA: never automatic -- cuBLAS beats every event-driven form of this GEMM there
            event = not on_cuda and x_dense is None and x_csr[1].numel() <= _AUTO_EVENT_DENSITY * max(R * n_in, 1)
        if event and on_cuda:  # asked for explicitly: the CSR product, then the same kernels
            current = _csr_linear(x_csr, (R, n_in), weight, bias).view(T, B, n)
        elif (current is None and not event and not on_cuda and x2 is not None and x_gemm is None
              and x_csr[1].numel() > _DENSE_INPUT_DENSITY * max(R * n_in, 1)):
            # a dense input (over a third non-zero) is itself [T, B, N_in]: one GEMM over it
            current = cfg.pool.take("current", (R, n), x.dtype, x.device) if cfg.pool is not None else \
                torch.empty((R, n), dtype=x.dtype, device=x.device)
            if bias is None:
                torch.mm(x2, weight.t(), out=current)
            else:
                torch.addmm(bias, x2, weight.t(), out=current)
            current = current.view(T, B, n)
        # else the op computes I: from the events (CPU, event), or by GEMMs over time chunks of
        # the events densified, the membrane carried (no [T, B, N] current)

        if cfg.neuron is not None:  # computed once by sparse_lif (β clamped, θ; [N] each)
            beta_v, thr_v = cfg.neuron
        else:
            beta_v = per_feature(beta.clamp(0, 1), n, "beta", like).contiguous()
            thr_v = per_feature(threshold, n, "threshold", like).contiguous()
        pool = cfg.pool
        # spikes leave as their events (SpikeTensor) unless compiling or not [T, B, N]
        compact = x.dim() == 3 and not torch.compiler.is_compiling()
        spk = None
        if not compact:
            spk = pool.take("spk", (T, B, n), x.dtype, x.device) if pool is not None else \
                torch.empty((T, B, n), dtype=x.dtype, device=x.device)
        keep_mem = cfg.need_mem or ctx.needs_input_grad[3]
        mem = torch.empty((T, B, n), dtype=x.dtype, device=x.device) if keep_mem else None
        bth = 0.0 if cfg.readout else cfg.window
        compiling = torch.compiler.is_compiling()
        spk_rowptr, spk_col, act_rowptr, act_col, act_shift = fused.lif_fused_forward(
            current, x_csr, weight, bias, beta_v, thr_v, cfg.reset_mode, bth, spk, mem,
            need_spike_csr=compact or not cfg.readout, need_active=not cfg.readout, shape=(T, B), event=bool(event),
            capacity=None if compiling else _capacity_hint(cfg.stats.get("csr_sizes"), R * n),
            x_dense=x_gemm)
        if not compiling:
            cfg.stats["csr_sizes"] = (act_col.numel(), spk_col.numel(), R * n)
        del current
        if unchecked is not None:
            x_csr, x_dense = _input_events(unchecked, flags, x2, need_w, cfg.check_finite)
        if finite_total is not None and not math.isfinite(float(finite_total)):
            check_finite(x2, "x")  # the exact elementwise check (a finite overflow passes)
        if compact:
            spk = SpikeTensor.from_csr(spk_rowptr, spk_col, (T, B, n), x.dtype, x.device)
        if cfg.readout:
            act_rowptr = torch.zeros(R + 1, dtype=torch.long, device=x.device)
            act_sg = torch.empty(0, dtype=x.dtype, device=x.device)
        else:
            act_sg = _surrogate_in_place(act_shift, act_col, cfg.surrogate, cfg.gain)
        cfg.stats["active"] = act_col.numel()
        cfg.stats["total"] = R * n
        sets = None if cfg.readout else SpikeSets(
            n, R, active_csr=(act_rowptr, act_col), spikes_csr=(spk_rowptr, spk_col),
            shape=(T, B, n), accepts_sparse_grad=x.dim() == 3)
        cfg.stats["sets"] = sets
        ctx.sets = sets
        ctx.up = up

        if not need_w or x_dense is not None:
            x_csr = (None, None, None)
        if not need_w:
            x_gemm = None
        up_rowptr, up_col = up.active_csr() if (up is not None and ctx.needs_input_grad[0]) else (None, None)
        need_spk = cfg.reset_mode == 1 or ctx.needs_input_grad[4]
        spk_bool = None
        if need_spk and compact:
            spk_bool = torch.zeros(R * n, dtype=torch.bool, device=x.device)
            spk_bool.index_fill_(0, fused.csr_to_flat(spk_rowptr, spk_col, n), True)
            spk_bool = spk_bool.view(T, B, n)
        elif need_spk:
            spk_bool = spk != 0
        ctx.save_for_backward(weight, act_rowptr, act_col, act_sg, x_csr[0], x_csr[1], x_csr[2], x_dense,
                              up_rowptr, up_col, spk_bool, mem if ctx.needs_input_grad[3] else None,
                              beta, threshold, beta_v, thr_v, x_gemm)
        ctx.cfg = cfg
        ctx.dims = (T, B, n, n_in)
        ctx.x_shape = x.shape
        ctx.set_materialize_grads(False)
        if cfg.readout:
            ctx.mark_non_differentiable(spk)
        out_shape = (*x.shape[:-1], n) if linear else x.shape
        if mem is None:
            mem = torch.empty(0, dtype=x.dtype, device=x.device)
        else:
            mem = mem.view(out_shape)
        return (spk if compact else spk.view(out_shape)), mem

    @staticmethod
    @first_order_only
    def backward(ctx, d_spk, d_mem):
        (weight, act_rowptr, act_col, act_sg, x_rowptr, x_col, x_val, x_dense, up_rowptr, up_col, spk_bool,
         mem_kept, beta, threshold, beta_v, thr_v, x_gemm) = ctx.saved_tensors
        cfg = ctx.cfg
        T, B, n, n_in = ctx.dims
        dtype, device = act_sg.dtype, act_sg.device
        if cfg.readout:
            d_spk = None
        d_spk_compact = False
        if d_spk is not None:
            vals = compact_grad_values(d_spk, ctx.sets)
            if vals is not None:
                d_spk, d_spk_compact = vals.contiguous(), True
            else:  # dense, or e.g. the sum of several consumers' gradients
                d_spk = dense_grad(d_spk)
        if d_mem is not None and not d_mem.numel():
            d_mem = None
        need_dx = ctx.needs_input_grad[0]
        need_dw = ctx.needs_input_grad[1]
        sparse_dx = need_dx and up_rowptr is not None
        if sparse_dx and up_col.numel() > _DENSE_DX_FRACTION * T * B * n_in:
            sparse_dx = False  # most entries requested: one GEMM on h is cheaper than per-entry dots
        # CPU: per-thread dWᵀ copies (bounded); CUDA: chunked cuBLAS GEMMs over the input events
        copies = 0 if device.type == "cuda" else min(torch.get_num_threads(), max(B, 1)) * n * n_in * act_sg.element_size()
        dw_in_kernel = need_dw and (x_gemm is not None or (x_dense is None and copies <= _MAX_DW_COPIES_BYTES))
        need_h = (ctx.needs_input_grad[3] or ctx.needs_input_grad[4] or (need_dx and not sparse_dx)
                  or (need_dw and not dw_in_kernel))
        h = None
        if need_h:
            h = cfg.pool.take("h", (T, B, n), dtype, device) if cfg.pool is not None else \
                torch.empty((T, B, n), dtype=dtype, device=device)
        dx = None
        dx_compact = sparse_dx and ctx.up.takes_sparse_grad(ctx.x_shape)
        if dx_compact:
            dx = torch.empty(up_col.numel(), dtype=dtype, device=device)
        elif sparse_dx:
            shape = tuple(ctx.x_shape)
            dx = cfg.pool.take("dx", shape, dtype, device, zero=True) if cfg.pool is not None else \
                torch.zeros(shape, dtype=dtype, device=device)
        dw, db = fused.lif_fused_backward(
            (act_rowptr, act_col), act_sg, None if d_spk is None else d_spk.contiguous(),
            None if d_mem is None else d_mem.contiguous(), beta_v, spk_bool, cfg.reset_mode,
            (x_rowptr, x_col, x_val) if dw_in_kernel else None, weight,
            (up_rowptr, up_col) if sparse_dx else None, dx, h, T, B, n_in,
            need_dw=dw_in_kernel, need_db=ctx.needs_input_grad[2], d_spk_compact=d_spk_compact,
            dx_compact=dx_compact, x_dense=x_gemm if dw_in_kernel else None)
        if dx_compact:  # ∂L/∂X is zero off the upstream active set
            dx = ctx.up.sparse_grad(dx)

        dbias = db if ctx.needs_input_grad[2] else None
        if need_dx and not sparse_dx:
            dx = h.view(ctx.x_shape) if weight is None else (h.view(-1, n) @ weight).view(ctx.x_shape)
        if need_dw and x_dense is not None:
            dw = h.view(-1, n).t() @ x_dense.to(dtype)
        elif need_dw and not dw_in_kernel:
            from .ops import get_backend
            x_flat = fused.csr_to_flat(x_rowptr, x_col, n_in)
            dw = get_backend(cfg.backend, device).sparse_weight_grad(h.view(-1, n), x_flat, x_val, n_in)
        if not need_dw:
            dw = None
        dbeta = dthr = None
        if ctx.needs_input_grad[3]:
            from .functional import _reduce_to, _shift_in_time
            prev = _shift_in_time(mem_kept.view(T, B, n))
            if cfg.reset_mode == 1:
                prev = prev * (~_shift_in_time(spk_bool.view(T, B, n))).to(dtype)
            inside = ((beta >= 0) & (beta <= 1)).to(dtype)
            dbeta = _reduce_to((h * prev).sum((0, 1)), beta) * inside
        if ctx.needs_input_grad[4]:
            from .functional import _prev_reset, _reduce_to
            dthr_n = torch.zeros(n, dtype=dtype, device=device)
            if d_spk is not None and act_col.numel():
                if d_spk_compact:
                    g_spk = d_spk * act_sg
                else:
                    flat = fused.csr_to_flat(act_rowptr, act_col, n)
                    g_spk = d_spk.reshape(-1).index_select(0, flat) * act_sg
                dthr_n.index_add_(0, act_col.long(), -g_spk)
            if cfg.reset_mode == 0:
                prev_spk = _prev_reset(spk_bool.view(T, B, n), thr_v, dtype)
                dthr_n = dthr_n - (h * prev_spk).sum((0, 1))
            dthr = _reduce_to(dthr_n, threshold)
        return dx, dw, dbias, dbeta, dthr, None


def _gemm_reads_dense_input(x: torch.Tensor, cfg) -> bool:
    """A dense (not spike-list) input is handed to the op as itself: on CUDA, whose GEMMs read
    its rows chunk by chunk (unless an event-driven forward is asked for). The CPU's kernels
    read events, so there it becomes its CSR first."""
    return x.device.type == "cuda" and not cfg.event_forward


def _capacity_hint(last, entries: int):
    """The CUDA forward's list lengths ``(active, spikes)`` from the layer's previous sizes.

    ``last``: that call's ``(active, spikes, T·B·N)``, or ``None``; its counts
    are scaled to this call's ``entries = T·B·N``. A sixteenth more plus 4096
    entries absorbs the step-to-step drift of the adaptive window; a larger
    total costs the op a second pass over its chunks, never a wrong result.
    """
    if last is None or not last[2]:
        return None
    return tuple(min(entries, k * entries // last[2] + k * entries // (16 * last[2]) + 4096) for k in last[:2])


# Entries per piece of the σ' pass: the gain's gather (and a surrogate without an in-place
# derivative) allocates temporaries of this size. CPU: pieces that stay in cache; CUDA: few
# pieces (each is several kernel launches), 4 MiB float32 temporaries.
_SURROGATE_PIECE = {"cpu": 1 << 18, "cuda": 1 << 20}


def _surrogate_in_place(shift: torch.Tensor, col: torch.Tensor, surrogate, gain) -> torch.Tensor:
    """``σ'(U - θ)`` (times the per-neuron ``gain``) per active entry, written over ``shift``.

    Elementwise, so computed piece by piece (:data:`_SURROGATE_PIECE`), each piece in place
    by the surrogate's :meth:`~snntorch_sparse.surrogate.SparseSurrogate.derivative_`.
    """
    g = None if gain is None else gain.to(shift.dtype).reshape(-1)
    piece = _SURROGATE_PIECE.get(shift.device.type, 1 << 18)
    for k0 in range(0, shift.numel(), piece):
        part = surrogate.derivative_(shift[k0:k0 + piece])
        if g is not None:
            part.mul_(g.index_select(0, col[k0:k0 + piece]))
    return shift


def _event_flags(vals: torch.Tensor) -> torch.Tensor:
    """``[Σ vals, any(vals != 1)]`` of the input's non-zeros, on their device (no synchronisation)."""
    v = vals.detach()
    return torch.stack([v.sum(), (v != 1).any().to(v.dtype)])


def _input_events(x_csr, flags: torch.Tensor, x2: torch.Tensor, need_w: bool, finite: bool):
    """The input's events as the backward keeps them: ``(x_csr, x_dense)``.

    ``x_csr = (rowptr, col, values)`` from :func:`~snntorch_sparse.ops.fused.dense_to_csr`
    and its :func:`_event_flags`. NaN and inf are non-zero, so checking the
    non-zeros suffices (``finite``: they raise ``ValueError``). Binary spikes
    keep no values; an input denser than a third keeps the dense tensor for a
    ∂L/∂W GEMM instead (binary: 1 byte per entry). One device-to-host read.
    """
    rowptr, col, vals = x_csr
    total, not_one = flags.tolist() if vals.numel() else (0.0, 0.0)
    if finite and not math.isfinite(total):
        check_finite(vals, "x")  # the exact elementwise check (a finite overflow passes)
    binary = not not_one
    x_dense = None
    if need_w and vals.numel() > _DENSE_INPUT_DENSITY * max(x2.numel(), 1):
        x_dense = (x2 != 0) if binary else x2
    return (rowptr, col, None if binary else vals), x_dense


def _csr_linear(x_csr, shape, weight, bias):
    """``X Wᵀ + b`` from X's CSR ``(rowptr, col, values-or-None)`` (explicit ``event_forward`` on CUDA)."""
    rowptr, col, vals = x_csr
    if vals is None:
        vals = torch.ones(col.numel(), dtype=weight.dtype, device=weight.device)
    xc = torch.sparse_csr_tensor(rowptr, col.long(), vals, size=shape)
    if bias is None:
        return torch.sparse.mm(xc, weight.t())
    return torch.sparse.addmm(bias.expand(shape[0], -1), xc, weight.t())


def fused_sparse_lif(x, weight, bias, beta, threshold, cfg):
    """Apply :class:`_FusedSparseLIF`; the caller checked :func:`usable`."""
    return _FusedSparseLIF.apply(x, weight, bias, beta, threshold, cfg)
