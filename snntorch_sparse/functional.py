r"""Autograd functions of the fused multi-step LIF layers.

Forward (time-major, ``T`` steps, rows ``R`` = batch, features ``N``)::

    I = X Wᵀ + b                  one GEMM over all T·R rows (linear layers)
    U = lif_scan_(I)              snnTorch Leaky recurrence, see ops.reference,
                                  U written over I (one [T, R, N] buffer)
    A = {(t, r, n): |U - θ| < B_th}   active set, kept as flat indices + σ'(U - θ)
    S = (U - θ > 0)               in the same buffer (the scan's own comparison)

Backward, given ``∂L/∂S`` (and ``∂L/∂U`` when the membrane is an output)::

    g = ∂L/∂S · σ'  on A (zero elsewhere)  [+ ∂L/∂U]
    h = lif_scan_backward_(g)     h[t] = g[t] + β h[t+1]   (= ∂L/∂I), over g
    ∂L/∂W = hᵀ X                  over X's non-zeros only (X is sparse spikes)
    ∂L/∂b = Σ_{t,r} h
    ∂L/∂X = h W                   only on the upstream layer's active set when
                                  X came from a sparse layer (handed over as an
                                  ActiveSetGrad: one value per entry of that
                                  set), else dense

What is saved for the backward: ``W``, the active set (int64 index + σ' per
active entry), the input's non-zero indices (values too if not binary; the
dense input only if more than a third of it is non-zero), plus a bool spike
tensor for reset-to-zero or a learnable threshold and the membrane for a
learnable beta. No dense float ``[T, R, N]`` tensor is kept in the default
configuration.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Optional

import torch
import torch.nn.functional as F

from ._validation import check_call_tensors, check_finite, per_feature
from .fused_cpu import SpikeSets, first_order_only, fused_sparse_lif, usable as _fused_usable, values_on_active_set
from .ops import get_backend
from .spike_tensor import SpikeTensor
from .surrogate import WINDOW_SAMPLES, WINDOW_SAMPLES_PER_NEURON

__all__ = ["LIFConfig", "sparse_lif", "ACTIVE_INDEX_ATTR"]

#: Attribute under which a sparse layer's output spikes carry a
#: :class:`~snntorch_sparse.fused_cpu.SpikeSets` (its active set and spike
#: events), so the next sparse layer computes ∂L/∂X only on that active set.
ACTIVE_INDEX_ATTR = "_snntorch_sparse_active"

# Above this input density the dense input is cheaper to keep than its indices.
_DENSE_INPUT_DENSITY = 1.0 / 3.0


@dataclass
class LIFConfig:
    """Non-tensor settings of one fused call (:func:`sparse_lif`).

    Attributes:
        surrogate: the sparse surrogate (e.g. :func:`~snntorch_sparse.sparse_fast_sigmoid`);
            ``None`` only for a readout.
        reset_mode: 0 reset by subtraction, 1 to zero, 2 none (snnTorch's ``reset_mechanism``).
        readout: non-spiking: no spikes, no active set; the membrane is the output.
        backend: ``"auto"``, ``"reference"``, ``"compiled"`` or ``None`` (the package default).
        event_forward: ``True``: the input current is summed over the input's non-zeros
            only; ``False``: one GEMM; ``None``: automatic (events on the fused CPU path
            when at most a quarter of the input is non-zero).
        upstream_index, upstream: the upstream sparse layer's active set; leave them
            ``None`` (they travel with the input spikes).
        pool: the calling layer's work-buffer pool, or ``None``.
        check_finite: raise ``ValueError`` on NaN/inf in the input.
        window, gain: set by :func:`sparse_lif` for the call (the window half-widths and
            per-neuron gains); not inputs.
        neuron: set by :func:`sparse_lif` for a fused call: ``β`` clamped to [0, 1] and ``θ``
            as ``[N]`` vectors, computed once for the window pass and the op; not an input.
        need_mem: ``False``: the membrane is not returned (an empty tensor is).
        stats: the last call's counts (``active``, ``total``, ``window``, ``gain``).

    A config may be reused for any number of calls: :func:`sparse_lif` never
    writes to it except for ``stats`` (the last call's activity counts). The
    upstream layer's sets are taken from the input tensor itself on every call;
    ``upstream`` / ``upstream_index``, when set explicitly, are checked against
    the input on every call.
    """

    surrogate: object = None        # SparseSurrogate (None in readout mode)
    reset_mode: int = 0             # 0 subtract, 1 zero, 2 none
    readout: bool = False           # non-spiking: the membrane is the output
    backend: Optional[str] = None   # None: package default
    event_forward: Optional[bool] = False  # I = X Wᵀ + b over X's non-zeros only; None: auto (fused CPU path)
    upstream_index: Optional[torch.Tensor] = None   # flat active indices of the upstream layer
    upstream: Optional[object] = None               # fused_cpu.SpikeSets of the upstream layer
    pool: Optional[object] = None                   # _buffers.BufferPool of the calling layer
    check_finite: bool = True       # NaN/inf in the input raise ValueError
    window: object = None           # this call's window half-width(s) B: float or [N] (set by sparse_lif)
    gain: Optional[torch.Tensor] = None  # this call's per-neuron gain c on σ' (adaptive window), or None
    need_mem: bool = True           # False: the membrane is not returned (an empty tensor is)
    stats: dict = field(default_factory=dict)
    neuron: Optional[tuple] = None  # this call's ([N] β clamped to [0, 1], [N] θ), set by sparse_lif


def _reduce_to(grad_n: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """Sum a per-feature ``[N]`` gradient into ``param``'s shape."""
    if param.numel() == 1:
        return grad_n.sum().reshape(param.shape).to(param.dtype)
    return grad_n.reshape(param.shape).to(param.dtype)


def _shift_in_time(x: torch.Tensor) -> torch.Tensor:
    """``y[t] = x[t-1]``, ``y[0] = 0``."""
    y = torch.zeros_like(x)
    y[1:] = x[:-1]
    return y


def _prev_reset(spk_bool: torch.Tensor, thr_v: torch.Tensor, dtype) -> torch.Tensor:
    """The reset ``R[t] = H(U[t-1] - θ)`` of each step: the spikes shifted one step,
    with ``R[0] = H(0 - θ)`` (``U[-1] = 0``: a neuron with a negative threshold
    resets at the first step, as in snnTorch and the forward scan)."""
    prev = _shift_in_time(spk_bool).to(dtype)
    if prev.shape[0]:
        prev[0] = (0 - thr_v).gt(0).to(dtype)
    return prev


def _active_window(shift: torch.Tensor, bth: float) -> torch.Tensor:
    """Bool mask ``|U - θ| < B_th`` of ``shift = U - θ``.

    Eagerly the second comparison runs in four time slices, so besides the mask
    only a quarter-size bool temporary exists at a time; a compiler fuses the
    two comparisons into one pass with no temporary (and its CPU code generator
    mishandles the sliced in-place form).
    """
    if torch.compiler.is_compiling():
        return (shift > -bth) & (shift < bth)
    window = shift > -bth
    step = max(1, -(-shift.shape[0] // 4))
    for t0 in range(0, shift.shape[0], step):
        window[t0:t0 + step] &= shift[t0:t0 + step] < bth
    return window


def _event_linear(x2: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]):
    """Event-driven ``I = X Wᵀ + b``: only X's non-zeros are touched.

    Cost ``nnz(X)·N_out`` instead of ``R·N_in·N_out``; equal to the dense GEMM up
    to float rounding (a different summation order). Also returns X's flat
    non-zero indices, which the backward needs anyway.
    """
    xc = x2.to_sparse_csr()
    wt = weight.t()
    if bias is None:
        current = torch.sparse.mm(xc, wt)
    else:
        current = torch.sparse.addmm(bias.expand(x2.shape[0], -1), xc, wt)
    crow, col = xc.crow_indices(), xc.col_indices()
    rows = torch.repeat_interleave(torch.arange(x2.shape[0], device=x2.device), crow.diff())
    return current, rows * x2.shape[1] + col


class _SparseLIF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, beta, threshold, cfg: LIFConfig):
        ops = get_backend(cfg.backend, x.device)
        T = x.shape[0]
        x_idx = None
        if weight is not None:
            n_in, n = weight.shape[1], weight.shape[0]
            x2 = x.reshape(-1, n_in)
            if cfg.event_forward:  # None ("auto") means the GEMM on this path
                current, x_idx = _event_linear(x2, weight, bias)
                current = current.view(T, -1, n)
            else:
                current = F.linear(x2, weight, bias).view(T, -1, n)
        else:
            if cfg.check_finite:
                check_finite(x, "input_")
            n = math.prod(x.shape[2:])
            current = x.reshape(T, -1, n)
        beta_v = per_feature(beta.clamp(0, 1), n, "beta", current)
        thr_v = per_feature(threshold, n, "threshold", current)
        n_rows = current.shape[1]
        rows = current.shape[0] * n_rows
        spk = None
        if weight is not None:
            # The current is ours (a GEMM output): the membrane overwrites it and the
            # spikes come later from U - θ (see below): one [T, B, N] buffer, not three.
            mem = ops.lif_scan_(current.contiguous(), beta_v, thr_v, cfg.reset_mode)
        else:  # the current is the caller's input
            spk, mem = ops.lif_scan(current.contiguous(), beta_v, thr_v, cfg.reset_mode)
        del current

        empty = torch.empty(0, dtype=torch.long, device=x.device)
        if cfg.readout or x.device.type == "meta":  # meta: shapes only, no active set
            act_idx, act_sg = empty, x.new_empty(0)
            if spk is None:
                spk = (mem - thr_v).gt_(0)  # S = (U - θ > 0), as the scan computes it
        else:
            keep_mem = cfg.need_mem or ctx.needs_input_grad[3]
            # U - θ: in place when the membrane is not an output (saves a [T, B, N] buffer)
            shift = mem.sub_(thr_v) if not keep_mem else mem - thr_v
            window = _active_window(shift, cfg.window if not isinstance(cfg.window, torch.Tensor)
                                    else cfg.window.to(shift.dtype).reshape(-1))
            act_idx = window.view(-1).nonzero().squeeze(1)
            del window
            act_sg = cfg.surrogate.derivative(shift.view(-1).index_select(0, act_idx))
            if cfg.gain is not None:
                act_sg = act_sg * cfg.gain.to(act_sg.dtype).reshape(-1).index_select(0, act_idx % n)
            if not keep_mem:
                mem = mem.new_empty(0)
            if spk is None:
                # S = (U - θ > 0) in U - θ's own buffer: the scan's comparison of the
                # same rounded difference, so the same spikes bit for bit
                spk = shift.gt_(0)
            del shift
        cfg.stats["active"] = act_idx.numel()
        cfg.stats["total"] = spk.numel()
        sets = None if cfg.readout else SpikeSets(n, rows, active_flat=act_idx, shape=(T, n_rows, n),
                                                  accepts_sparse_grad=x.dim() == 3)
        cfg.stats["sets"] = sets
        ctx.sets, ctx.up = sets, cfg.upstream

        need_w = weight is not None and ctx.needs_input_grad[1]
        x_val, x_dense = None, None
        if not need_w or x.device.type == "meta":
            if cfg.check_finite:
                check_finite(x, "x")
            x_idx = empty
        else:
            flat = x2.reshape(-1)
            if x_idx is None:
                x_idx = flat.nonzero().squeeze(1)
            vals = flat.index_select(0, x_idx)
            if cfg.check_finite:  # NaN and inf are non-zero: checking the non-zeros suffices
                check_finite(vals, "x")
            if x_idx.numel() > _DENSE_INPUT_DENSITY * max(flat.numel(), 1):
                x_idx, x_dense = empty, x2
            elif not bool((vals == 1).all()):
                x_val = vals
        need_spk = cfg.reset_mode == 1 or ctx.needs_input_grad[4]
        spk_bool = (spk != 0) if need_spk else None
        mem_kept = mem if ctx.needs_input_grad[3] else None

        ctx.save_for_backward(weight, act_idx, act_sg, x_idx, x_val, x_dense, spk_bool,
                              mem_kept, beta, threshold, beta_v, thr_v, cfg.upstream_index)
        ctx.cfg = cfg
        ctx.shape = (T, n_rows, n)
        ctx.x_shape = x.shape
        ctx.set_materialize_grads(False)
        if cfg.readout:
            ctx.mark_non_differentiable(spk)
        spk = spk.view(*x.shape[:-1], n) if weight is not None else spk.view(x.shape)
        if mem.numel() or not spk.numel():
            mem = mem.view(spk.shape)
        return spk, mem

    @staticmethod
    @first_order_only
    def backward(ctx, d_spk, d_mem):
        (weight, act_idx, act_sg, x_idx, x_val, x_dense, spk_bool, mem_kept,
         beta, threshold, beta_v, thr_v, up_idx) = ctx.saved_tensors
        cfg = ctx.cfg
        ops = get_backend(cfg.backend, act_sg.device)
        T, R, n = ctx.shape
        dtype, device = act_sg.dtype, act_sg.device

        g = torch.zeros(T * R * n, dtype=dtype, device=device)
        g_spk = None
        if d_spk is not None and not cfg.readout and act_idx.numel():
            g_spk = values_on_active_set(d_spk, act_idx, ctx.sets) * act_sg
            g.index_copy_(0, act_idx, g_spk)
        if d_mem is not None and d_mem.numel():
            g.add_(d_mem.reshape(-1))
        # h over g: g is not needed past the scan (one [T, B, N] buffer, not two)
        h = ops.lif_scan_backward_(g.view(T, R, n), beta_v, spk_bool if cfg.reset_mode == 1 else None,
                                   cfg.reset_mode)
        del g
        h2 = h.view(-1, n)

        dx = dw = db = dbeta = dthr = None
        if ctx.needs_input_grad[0]:
            if weight is None:
                dx = h.view(ctx.x_shape)
            elif up_idx is not None:
                vals = ops.sparse_input_grad(h2, weight, up_idx)
                if ctx.up is not None and ctx.up.takes_sparse_grad(ctx.x_shape):
                    dx = ctx.up.sparse_grad(vals)  # zero off the upstream active set
                else:
                    dx = torch.zeros(ctx.x_shape, dtype=dtype, device=device)
                    dx.view(-1).index_copy_(0, up_idx, vals)
            else:
                dx = (h2 @ weight).view(ctx.x_shape)
        if weight is not None and ctx.needs_input_grad[1]:
            if x_dense is not None:
                dw = h2.t() @ x_dense
            else:
                dw = ops.sparse_weight_grad(h2, x_idx, x_val, weight.shape[1])
        if ctx.needs_input_grad[2]:
            db = h2.sum(0)
        if ctx.needs_input_grad[3]:
            mem = mem_kept.view(T, R, n)
            prev = _shift_in_time(mem)
            if cfg.reset_mode == 1:
                prev = prev * (~_shift_in_time(spk_bool.view(T, R, n))).to(dtype)
            dbeta_n = (h * prev).sum((0, 1))
            inside = ((beta >= 0) & (beta <= 1)).to(dtype)
            dbeta = _reduce_to(dbeta_n, beta) * inside
        if ctx.needs_input_grad[4]:
            dthr_n = torch.zeros(n, dtype=dtype, device=device)
            if g_spk is not None:
                dthr_n.index_add_(0, act_idx % n, -g_spk)
            if cfg.reset_mode == 0:
                prev_spk = _prev_reset(spk_bool.view(T, R, n), thr_v, dtype)
                dthr_n = dthr_n - (h * prev_spk).sum((0, 1))
            dthr = _reduce_to(dthr_n, threshold)
        return dx, dw, db, dbeta, dthr, None


def _call_window(x, weight, bias, beta, threshold, cfg: LIFConfig):
    r"""The window half-widths :math:`B` and gains :math:`c` of this call: ``(window, gain)``.

    A fixed window is the surrogate's ``bth`` (a float, or one per neuron) and
    its ``fixed_gain`` (normally ``None``). An adaptive one is, per neuron, the
    ``active_fraction``-quantile of :math:`|U - \theta|` over its (t, b)
    entries (:func:`~snntorch_sparse.surrogate.quantile_window`) and the gain
    :func:`~snntorch_sparse.surrogate.mass_gain`, both measured on the
    membranes of a strided subset of the call's batch rows: the same recurrence
    run on enough rows to give at least
    :data:`~snntorch_sparse.surrogate.WINDOW_SAMPLES` entries and
    :data:`~snntorch_sparse.surrogate.WINDOW_SAMPLES_PER_NEURON` per neuron.
    Both are constants of the call: the gradient is exactly the clamped
    surrogate's with window :math:`B_n`, times :math:`c_n`. Without autograd
    the previous call's values are reused.
    """
    sg = cfg.surrogate
    if not sg.adaptive:
        return sg.bth, sg.fixed_gain
    last = cfg.stats.get("window")
    needs_grad = torch.is_grad_enabled() and any(
        isinstance(t, torch.Tensor) and t.requires_grad for t in (x, weight, bias, beta, threshold))
    n = weight.shape[0] if weight is not None else math.prod(x.shape[2:])
    if x.device.type == "meta" or (last is not None and not needs_grad and last.numel() == n):
        return (x.new_ones(n) if last is None else last), cfg.stats.get("gain")
    with torch.no_grad():
        T = x.shape[0]
        n_in = x.shape[-1] if weight is not None else n
        compact = isinstance(x, SpikeTensor) and x.events() is not None and x.dim() == 3
        rows = x.shape[1] if compact else x.numel() // max(T * n_in, 1)
        take = min(rows, max(1, -(-WINDOW_SAMPLES // max(T * n, 1)), -(-WINDOW_SAMPLES_PER_NEURON // T)))
        picked = _window_rows(rows, take, x.device, cfg.stats) if take < rows else None
        if compact:  # only the sampled rows are made dense
            x3 = x.batch_rows(picked if picked is not None else torch.arange(rows, device=x.device))
        else:
            x3 = x.detach().reshape(T, -1, n_in)
            if picked is not None:
                x3 = x3.index_select(1, picked)
        current = F.linear(x3, weight.detach(), None if bias is None else bias.detach()) \
            if weight is not None else x3
        if cfg.neuron is not None:
            beta_v, thr_v = cfg.neuron
        else:
            beta_v = per_feature(beta.detach().clamp(0, 1), n, "beta", current)
            thr_v = per_feature(threshold.detach(), n, "threshold", current)
        ops = get_backend(cfg.backend, x.device)
        _, mem = ops.lif_scan(current.contiguous(), beta_v, thr_v, cfg.reset_mode)
        shift = (mem - thr_v).reshape(mem.shape[0] * mem.shape[1], n)
        window = sg.window(shift)
        return window, sg.gain(shift, window)


def _window_rows(rows: int, take: int, device, stats: dict) -> torch.Tensor:
    """``take`` batch rows evenly spread over ``rows`` (int64), kept in the layer's ``stats``
    for the next call of the same shape (no new index tensor, no launches)."""
    key = (rows, take, str(device))
    cached = stats.get("window_rows")
    if cached is None or cached[0] != key:
        cached = (key, torch.linspace(0, rows - 1, take, device=device).long())
        stats["window_rows"] = cached
    return cached[1]


def _call_config(x: torch.Tensor, rows: int, cfg: LIFConfig) -> LIFConfig:
    """This call's own copy of ``cfg``, with the upstream sets that belong to ``x``.

    The caller's config is never modified (only its ``stats`` dict is shared), so
    one config can serve any number of calls: the upstream layer's sets come from
    the input tensor itself, every call. Explicit ``upstream`` /
    ``upstream_index`` are checked against ``x``'s shape and, when ``x`` carries
    sets of its own, must be those sets.
    """
    call = replace(cfg)  # shallow: the stats dict is the caller's
    carried = getattr(x, ACTIVE_INDEX_ATTR, None)
    if not isinstance(carried, SpikeSets) or carried.rows != rows or carried.n != x.shape[-1]:
        carried = None
    if call.upstream is not None:
        up = call.upstream
        if not isinstance(up, SpikeSets):
            raise TypeError(f"cfg.upstream must be a SpikeSets or None, got {type(up).__name__}")
        if up.rows != rows or up.n != x.shape[-1]:
            raise ValueError(f"cfg.upstream describes a [{up.rows} rows, {up.n} features] input, "
                             f"but x has shape {tuple(x.shape)}; leave cfg.upstream as None "
                             "(the sets travel with the input spikes)")
        if carried is not None and carried is not up:
            raise ValueError("cfg.upstream is not the set of spikes x carries (a stale upstream "
                             "from another call?); leave cfg.upstream as None")
    elif call.upstream_index is not None:
        idx = call.upstream_index
        if (not isinstance(idx, torch.Tensor) or idx.dim() != 1 or idx.dtype != torch.long
                or idx.device != x.device or idx.numel() > x.numel()):
            raise ValueError("cfg.upstream_index must be a 1-D int64 tensor of sorted flat indices "
                             f"into x (at most {x.numel()}, on {x.device}), got "
                             + (f"shape {tuple(idx.shape)} {idx.dtype} on {idx.device}"
                                if isinstance(idx, torch.Tensor) else type(idx).__name__))
        if (idx.numel() and x.device.type != "meta" and not torch.compiler.is_compiling()
                and (int(idx.min()) < 0 or int(idx.max()) >= x.numel())):
            raise ValueError(f"cfg.upstream_index has entries outside [0, {x.numel()})")
        call.upstream = SpikeSets(x.shape[-1], rows, active_flat=idx)
    else:
        call.upstream = carried
    return call


def _check_call(x, weight, bias, beta, threshold, cfg: LIFConfig):
    """Clear errors for a bad ``sparse_lif`` call; returns ``beta``, ``threshold`` as tensors."""
    if not isinstance(cfg, LIFConfig):
        raise TypeError(f"cfg must be a LIFConfig, got {type(cfg).__name__}")
    check_call_tensors(x, weight, bias)
    if cfg.reset_mode not in (0, 1, 2):
        raise ValueError(f"cfg.reset_mode must be 0 (subtract), 1 (zero) or 2 (none), got {cfg.reset_mode!r}")
    if not cfg.readout and (cfg.surrogate is None or not hasattr(cfg.surrogate, "bth")
                            or not hasattr(cfg.surrogate, "derivative")):
        raise ValueError("cfg.surrogate must be a sparse surrogate (e.g. "
                         "snntorch_sparse.sparse_fast_sigmoid()) for a spiking call, got "
                         f"{cfg.surrogate!r}; only readout=True calls take none")
    like = weight if weight is not None else x
    out = []
    for name, v in (("beta", beta), ("threshold", threshold)):
        if isinstance(v, torch.Tensor):
            if v.device != x.device:
                raise ValueError(f"tensors must be on one device: x on {x.device}, {name} on {v.device}")
            if v.is_complex():
                raise TypeError(f"{name} must be real, got {v.dtype}")
            if not v.is_floating_point():  # int / bool valued, as snnTorch allows
                v = v.to(like.dtype)
        elif isinstance(v, (bool, int, float)):
            v = torch.full((), float(v), dtype=like.dtype, device=x.device)  # a fill: no host-to-device copy
        else:
            raise TypeError(f"{name} must be a float or a tensor, got {type(v).__name__}")
        out.append(v)
    return out


def _autocast_gemm(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Autocast is on for ``x``'s device with a dtype narrower than the weight's."""
    dev = x.device.type
    if dev not in ("cpu", "cuda") or not torch.is_autocast_enabled(dev):
        return False
    dtype = torch.get_autocast_dtype(dev)
    return dtype.is_floating_point and torch.finfo(dtype).bits < torch.finfo(weight.dtype).bits


def sparse_lif(x: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor],
               beta: torch.Tensor, threshold: torch.Tensor, cfg: LIFConfig):
    """Fused (Linear +) LIF over a whole sequence with the sparse backward.

    Args:
        x: ``[T, B, ..., N_in]`` input spikes (linear; float32/float64, the
            weight's dtype) or ``[T, B, ...]`` current (neuron only).
        weight, bias: ``nn.Linear`` parameters (``[N_out, N_in]``, ``[N_out]``),
            or ``None`` for a neuron-only call.
        beta, threshold: floats, scalar or per-neuron tensors (``beta`` is
            clamped to [0, 1]).
        cfg: :class:`LIFConfig`; it is not modified (except ``cfg.stats``) and
            may be reused across calls.

    Returns:
        ``(spk, mem)`` with the input's leading shape and ``N_out`` features
        (``mem`` is an empty tensor when ``cfg.need_mem`` is ``False``).
        ``spk`` carries the active set for the next sparse layer.

    Gradients of hidden spikes: when ``x`` is the output spikes of a sparse
    layer, ``∂L/∂x`` is computed on that layer's active set only and is zero
    elsewhere (all that layer's backward uses). So ``retain_grad``, tensor hooks
    and ``torch.autograd.grad`` on hidden spikes see the gradient on the active
    set and zero off the active set, not the full ``∂L/∂S``; parameter and input
    gradients are exact.

    The backward is first-order only: a backward through it with
    ``create_graph=True`` (for double backward) raises a ``RuntimeError``.

    **Mixed precision.** Under ``torch.autocast`` (CUDA or CPU) with a dtype
    narrower than the weight's (bfloat16, float16), a linear call computes
    ``I = X Wᵀ + b`` exactly as ``nn.Linear`` does under autocast (operands cast
    to that dtype, the GEMM's output in it) and casts ``I`` up to the weight's
    dtype; the scan, the membrane, the window and σ' run in the weight's dtype.
    The GEMM's backward is then autocast's own (dense ``∂L/∂W``, ``∂L/∂X`` in
    that dtype), as for snnTorch's ``nn.Linear``; the neuron's backward stays
    sparse. Outside autocast nothing is cast.
    """
    beta, threshold = _check_call(x, weight, bias, beta, threshold, cfg)
    if weight is not None and _autocast_gemm(x, weight):
        # The GEMM exactly as nn.Linear runs under autocast (its dtype, cuBLAS / oneDNN),
        # the neuron in the parameters' dtype: the current is cast up before the scan.
        current = F.linear(x, weight, bias).to(weight.dtype)
        return sparse_lif(current, None, None, beta, threshold, cfg)
    rows = x.numel() // x.shape[-1] if x.shape[-1] else 0
    cfg = _call_config(x, rows, cfg)  # this call's copy: the caller's cfg is left as it is
    if weight is None:  # neuron only: ∂L/∂X = h, not restricted to an upstream set
        cfg.upstream = cfg.upstream_index = None
    fused = _fused_usable(x, weight, cfg)
    cfg.neuron = None
    if fused:  # β and θ per neuron once, for the window pass and the op
        like = weight if weight is not None else x
        n = weight.shape[0] if weight is not None else math.prod(x.shape[2:])
        cfg.neuron = (per_feature(beta.detach().clamp(0, 1), n, "beta", like),
                      per_feature(threshold.detach(), n, "threshold", like))
    if cfg.upstream is not None:
        cfg.check_finite = False  # spikes of a sparse layer: binary by construction
        if not fused:
            cfg.upstream_index = cfg.upstream.active_flat()
    if not cfg.readout:
        cfg.window, cfg.gain = _call_window(x, weight, bias, beta, threshold, cfg)
        cfg.stats["window"], cfg.stats["gain"] = cfg.window, cfg.gain
    fn = fused_sparse_lif if fused else _SparseLIF.apply
    if x.device.type in ("cpu", "cuda") and torch.is_autocast_enabled(x.device.type):
        # The scan, membrane, window and σ' stay in the parameters' dtype (the
        # GEMM of a linear call ran in the autocast dtype above).
        with torch.autocast(x.device.type, enabled=False):
            spk, mem = fn(x, weight, bias, beta, threshold, cfg)
    else:
        spk, mem = fn(x, weight, bias, beta, threshold, cfg)
    sets = cfg.stats.pop("sets", None)
    if not cfg.readout and spk.requires_grad:
        # A Python attribute, so it lives exactly as long as the spike tensor.
        setattr(spk, ACTIVE_INDEX_ATTR, sets)
    return spk, mem
