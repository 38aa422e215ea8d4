r"""Sparse counterparts of snnTorch's ``RLeaky`` (recurrent LIF).

snnTorch 1.0's update (``reset_delay=True``; the reset is detached, the recurrent
input is not)::

    R[t]    = H(U[t-1] - θ)                  (= S[t-1])
    base[t] = (β·U[t-1] + I[t]) + rec(S[t-1])
    rec(S)  = S Vᵀ + b_V                     all_to_all (``recurrent = nn.Linear(N, N)``)
            = S · V                          one-to-one (``V`` scalar or [N])
    U[t]    = base[t] - R[t]·θ | base[t]·(1 - R[t]) ("zero": base - R·base) | base[t]
    S[t]    = H(U[t] - θ)

with ``U[-1] = mem0`` and ``S[-1] = spk0`` (zero by default; ``rec(0) = b_V`` still
enters step 0, as in snnTorch).

Backward with the clamped surrogate, in reverse time, ``a[t] = ∂L/∂base[t]``::

    ∂L/∂S[t] = (∂L/∂S[t])_ext + (a[t+1] V)          all_to_all   (a[t+1]·V one-to-one)
    g[t]     = ∂L/∂S[t] · σ'(U[t] - θ)   only on the active set A_t = {|U[t] - θ| < B}
    ∂L/∂U[t] = g[t] + (∂L/∂U[t])_ext + β·a[t+1]
    a[t]     = ∂L/∂U[t] · (1 - R[t])^{zero}

The recurrent term is only needed where σ' ≠ 0: per step, one dot product of
``a[t+1][b, :]`` with one column ``V[:, n]`` per active ``(b, n)``. Its cost is
``|A_t|·N`` multiply-adds at step ``t`` (``|A|·N`` in all, never the dense
``T·B·N²`` of snnTorch's autograd, which multiplies ``a[t+1]`` by ``V`` for every
entry); the rest of a step is ``O(B·N)`` elementwise. (The C++ kernel runs up to an
eighth of the entries active; above that the PyTorch loop, with one
``[B, N]×[N, N]`` GEMM for each step more than an eighth active, is cheaper.) Then::

    ∂L/∂I[t] = a[t]     ∂L/∂V = Σ_t a[t]ᵀ S[t-1]  (over spike events)   ∂L/∂b_V = Σ_t a[t]
    ∂L/∂β    = Σ a[t]·U[t-1]      ∂L/∂θ = -Σ g - Σ a[t]·R[t] (subtract)
    ∂L/∂mem0 = β·a[0]             ∂L/∂spk0 = a[0] V

Whole backward per step ``t`` (CPU kernel ``csrc/cpu/recurrent.cpp``, rows of ``a``
in L1/L2, nothing of size ``[T, B, N]`` written)::

    |A_t|·N      multiply-adds    recurrent term (dot products, four entries at a time)
    O(B·N)                        β·a[t+1] + g[t], Σ_t a[t]
    nnz(S[t-1])·N   adds          ∂L/∂V   (per spike of the previous step)
    nnz(X[t])·N     adds          ∂L/∂W_in of a fused Linear layer (per input event)

``∂L/∂S`` is read only on the active set (it is multiplied by σ', zero elsewhere).
The spikes therefore carry the active set (:class:`~snntorch_sparse.fused_cpu.SpikeSets`,
attribute ``ACTIVE_INDEX_ATTR``): a sparse next layer computes its input gradient only
there and hands it back as one value per active entry (``ActiveSetGrad``), e.g. a
readout's ``∂L/∂X = h W`` costs ``|A|·N_out`` instead of ``T·B·N·N_out``.
:class:`SparseLinearRLeaky` runs ``nn.Linear`` and the recurrence as one function
(:class:`_LinearRLeakyScan`), so that ``∂L/∂W_in = Σ_t a[t]ᵀ X[t]`` and
``∂L/∂b_in = Σ_t a[t]`` are summed inside the same kernel; ``a`` is materialised only
for ``∂L/∂X``, a learnable ``β`` / ``θ`` or a one-to-one ``V``.

Saved for the backward: the active set (CSR: int64 row pointer per ``(t, b)``, int32
column + σ' per active entry), the spikes (CSR, a few bytes per spike), the input's
events (CSR, fused Linear), ``V`` and the initial state; the membrane only for a
learnable ``β``. snnTorch keeps several float ``[B, N]`` tensors per step.

Forward: a loop over time with one ``[B, N]×[N, N]`` GEMM per step (the same
``F.linear`` call as snnTorch's ``recurrent``, so the membrane is bit-identical).
"""
from __future__ import annotations

import math

import snntorch as snn
import torch
import torch.nn.functional as F
from torch import nn

from ._activity import ActivityMonitor
from ._fused_layer import FusedLinearMixin
from ._neuron_views import SparseNeuronViews
from ._validation import (as_float_param, autocast_input, check_beta, check_features, check_reset, check_same_device,
                          check_sequence, check_threshold, per_feature)
from .fused_cpu import SpikeSets, compact_grad_values, dense_grad, first_order_only
from .ops import fused
from .ops.fused import csr_to_flat, flat_to_csr
from .functional import ACTIVE_INDEX_ATTR, LIFConfig, _active_window, _event_linear
from .neurons import resolve_surrogate
from .ops import get_backend
from .state import _AUTO_EVENT_DENSITY, _DENSE_INPUT_DENSITY, StatefulMixin, event_linear

__all__ = ["SparseRLeaky", "SparseLinearRLeaky", "rleaky_sequence", "linear_rleaky_sequence"]

# Above this fraction of a step's entries active, the recurrent term of that step is one GEMM.
_DENSE_STEP_FRACTION = 1.0 / 8
# The C++ backward (per-entry dot products) runs up to this fraction of active entries overall;
# above it the reference loop with its per-step GEMMs is cheaper.
_KERNEL_MAX_FRACTION = 1.0 / 8


def cfg_backend(ctx):
    return getattr(ctx, "backend", None)


def _reduce(grad_n: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    if param.numel() == 1:
        return grad_n.sum().reshape(param.shape).to(param.dtype)
    return grad_n.reshape(param.shape).to(param.dtype)


def _scan_forward(ctx, current, weight, bias, v, beta, threshold, mem0, spk0, cfg: LIFConfig, learn_beta: bool):
    """The RLeaky recurrence over ``current [T, R, N]``: ``(spk, mem, saved)``.

    Sets ``ctx.mode / shape / backend / sets``; ``saved`` is the tuple of tensors the
    backward (:func:`_scan_backward`) reads, for the caller's ``save_for_backward``.
    """
    T, R, N = current.shape
    dtype = current.dtype
    beta_c = per_feature(beta.clamp(0, 1), N, "beta", current)
    thr = per_feature(threshold, N, "threshold", current)
    u = torch.zeros(R, N, dtype=dtype, device=current.device) if mem0 is None else mem0.expand(R, N)
    s = torch.zeros(R, N, dtype=dtype, device=current.device) if spk0 is None else spk0.to(dtype).expand(R, N)
    mem = torch.empty_like(current)
    spk = torch.empty_like(current)
    mode = cfg.reset_mode
    reset = (u - thr > 0).to(dtype)  # R[0] = H(mem0 - θ); later R[t] = S[t-1], the same comparison
    for t in range(T):
        rec = F.linear(s, weight, bias) if weight is not None else s * v
        base = torch.mul(beta_c, u, out=mem[t])  # ((β·U) + I) + rec, in snnTorch's order, in place
        base.add_(current[t]).add_(rec)
        if mode == 0:
            base.sub_(reset * thr)
        elif mode == 1:
            base.sub_(reset * base)
        u = base
        s = spk[t]
        s.copy_(u - thr > 0)
        reset = s
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
    # The active set as CSR over the T·R rows (int64 row pointer, int32 column): what the
    # backward kernel walks, and what the next layer reads to compute ∂L/∂S only there.
    act_rowptr, act_col = flat_to_csr(act_idx, T * R, N)
    del act_idx
    sets = SpikeSets(N, T * R, active_csr=(act_rowptr, act_col), shape=(T, R, N), accepts_sparse_grad=True)
    cfg.stats["sets"] = sets
    # The spikes as CSR too (R[t] = S[t-1] for the reset, and the events of ∂L/∂V): about 2 %
    # of the entries, so a few bytes per spike instead of one byte per entry.
    spk_rowptr, spk_col = _spike_csr(spk.view(T * R, N))
    u0 = None if mem0 is None else mem0.expand(R, N)
    s0 = None if spk0 is None else spk0.to(dtype).expand(R, N)
    saved = (weight, v, beta, threshold, beta_c, thr, act_rowptr, act_col, act_sg, spk_rowptr, spk_col,
             mem if learn_beta else None, u0, s0)
    ctx.mode, ctx.shape, ctx.backend, ctx.sets = mode, (T, R, N), cfg.backend, sets
    ctx.set_materialize_grads(False)
    return spk, mem, saved


_N_SAVED = 14  # tensors in _scan_forward's ``saved``


def _spike_csr(spk2: torch.Tensor):
    """``(rowptr int64, col int32)`` of the non-zeros of the ``[R, N]`` spike tensor."""
    if fused.supported(spk2):
        rowptr, col, _ = fused.dense_to_csr(spk2)
        return rowptr, col
    return flat_to_csr(spk2.reshape(-1).nonzero().squeeze(1), spk2.shape[0], spk2.shape[1])


class _DenseSpikes:
    """The spikes as a dense bool ``[T, R, N]`` tensor, built from their CSR on first use."""

    def __init__(self, rowptr, col, shape):
        self.rowptr, self.col, self.shape, self._dense = rowptr, col, shape, None

    def __call__(self) -> torch.Tensor:
        if self._dense is None:
            T, R, N = self.shape
            dense = torch.zeros(T * R * N, dtype=torch.bool, device=self.col.device)
            dense.index_fill_(0, csr_to_flat(self.rowptr, self.col, N), True)
            self._dense = dense.view(T, R, N)
        return self._dense


def _scan_backward(ctx, saved, needs, d_spk, d_mem, x_events=None):
    """Gradients of the recurrence (see the module docstring).

    ``needs``: which of ``(a, V, b_V, one-to-one V, β, θ, mem0, spk0)`` are wanted, ``a``
    meaning ``∂L/∂I`` as a ``[T, R, N]`` tensor. ``x_events``: ``(rowptr, col, values-or-None,
    n_in)``, the input's events of a fused Linear layer: then ``∂L/∂W_in = Σ_t a[t]ᵀ X[t]`` is
    summed in the kernel over those events, and ``a`` need not be written at all.

    Returns ``(a, dV, Σ a, dv, dβ, dθ, dmem0, dspk0, dW_in)`` (``None`` where not asked for);
    ``Σ_t a[t]`` is ``∂L/∂b_V`` and ``∂L/∂b_in`` of a fused Linear, computed when ``needs[2]``.
    """
    (weight, v, beta, threshold, beta_c, thr, act_rowptr, act_col, act_sg, spk_rowptr, spk_col, mem, u0, s0) = saved
    T, R, N = ctx.shape
    spikes = _DenseSpikes(spk_rowptr, spk_col, (T, R, N))
    mode = ctx.mode
    dtype, device = act_sg.dtype, act_sg.device
    wt = weight.t().contiguous() if weight is not None else None  # wt[n] = V[:, n]
    v_vec = None if weight is not None else per_feature(v, N, "V", act_sg)
    d_spk_vals = None
    if d_spk is not None:
        # ∂L/∂S is read on the active set only (it is multiplied by σ', zero elsewhere): the
        # next sparse layer hands it over as one value per active entry (ActiveSetGrad)
        d_spk_vals = compact_grad_values(d_spk, ctx.sets)
        d_spk = None if d_spk_vals is not None else dense_grad(d_spk).reshape(T, R, N)
    if d_mem is not None:
        d_mem = dense_grad(d_mem).reshape(T, R, N)
    keep0 = (u0 - thr <= 0).to(dtype).contiguous() if mode == 1 and u0 is not None else None
    # a = ∂L/∂base as a tensor: for ∂L/∂I and the β / θ / one-to-one-V reductions; the
    # all-to-all ∂L/∂V, Σ a, ∂L/∂θ's active part and ∂L/∂W_in come from the kernel directly.
    need_a = needs[0] or (weight is None and needs[3]) or needs[4] or (needs[5] and mode == 0)
    dw = db = dv = dbeta = dthr = dmem0 = dspk0 = dw_in = None
    g_all = None
    if _compiled_ok(ctx.backend, act_sg) and act_col.numel() <= _KERNEL_MAX_FRACTION * T * R * N:
        need_dv = weight is not None and needs[1] and T > 0
        compact = d_spk_vals is not None
        xr = xc = xv = None
        n_in = 0
        if x_events is not None:
            xr, xc, xv, n_in = x_events
        a, g_all, dw_k, db_k, a0, dw_in_k = torch.ops.snntorch_sparse.rleaky_backward(
            act_rowptr, act_col, act_sg, d_spk_vals if compact else d_spk, d_mem, beta_c, wt, v_vec,
            *((spk_rowptr, spk_col) if (mode == 1 or need_dv) else (None, None)), keep0, mode, T, R, N,
            d_spk_compact=compact, need_a=need_a, need_g=needs[5], need_dv=need_dv, need_db=needs[2],
            x_rowptr=xr, x_col=xc, x_val=xv, n_in=n_in)
        dw = dw_k if need_dv else None
        db = db_k if needs[2] else None
        dw_in = dw_in_k if x_events is not None else None
        if not need_a:
            a = None
    else:
        act_idx = csr_to_flat(act_rowptr, act_col, N)
        bounds = act_rowptr[torch.arange(T + 1, device=device) * R].tolist()
        if d_spk is None and d_spk_vals is not None:
            d_spk = torch.zeros(T, R, N, dtype=dtype, device=device)
            d_spk.view(-1).index_copy_(0, act_idx, d_spk_vals)
        a, g_all = _backward_loop(act_idx, act_sg, bounds, d_spk, d_mem, beta_c, weight, wt, v_vec,
                                  spikes() if mode == 1 else None, u0, thr, mode, T, R, N)
        a0 = a[0]
        if weight is not None and needs[1]:
            # Σ_t a[t]ᵀ S[t-1] over the spike events only (the fused layers' sparse dW kernel)
            ops = get_backend(cfg_backend(ctx), device)
            ev = csr_to_flat(spk_rowptr, spk_col, N)
            ev = ev[:int(spk_rowptr[(T - 1) * R])]  # the events of S[0..T-2]
            dw = ops.sparse_weight_grad(a[1:].reshape(-1, N), ev, None, N) if T > 1 else \
                torch.zeros(N, N, dtype=dtype, device=device)
        if needs[2]:
            db = a.view(-1, N).sum(0)
        if x_events is not None:
            xr, xc, xv, n_in = x_events
            ops = get_backend(cfg_backend(ctx), device)
            dw_in = ops.sparse_weight_grad(a.view(-1, N), csr_to_flat(xr, xc, n_in), xv, n_in)
    if dw is not None and s0 is not None:
        dw = dw + a0.t() @ s0
    if weight is None and needs[3]:
        prev_spk = torch.zeros(T, R, N, dtype=dtype, device=device)
        prev_spk[1:] = spikes()[:-1].to(dtype)
        if s0 is not None:
            prev_spk[0] = s0
        dv = _reduce((a * prev_spk).sum((0, 1)), v)
    if needs[4]:
        prev_u = torch.zeros_like(mem)
        prev_u[1:] = mem[:-1]
        if u0 is not None:
            prev_u[0] = u0
        inside = ((beta >= 0) & (beta <= 1)).to(dtype)
        dbeta = _reduce((a * prev_u).sum((0, 1)), beta) * inside
    if needs[5]:
        dthr_n = torch.zeros(N, dtype=dtype, device=device)
        dthr_n.index_add_(0, act_col.long(), -g_all)
        if mode == 0:
            reset = torch.zeros(T, R, N, dtype=dtype, device=device)
            reset[1:] = spikes()[:-1].to(dtype)
            if u0 is not None:
                reset[0] = (u0 - thr > 0).to(dtype)
            dthr_n = dthr_n - (a * reset).sum((0, 1))
        dthr = _reduce(dthr_n, threshold)
    if needs[6]:
        dmem0 = beta_c * a0
    if needs[7]:
        dspk0 = a0 @ weight if weight is not None else a0 * v_vec
    return a, dw, db, dv, dbeta, dthr, dmem0, dspk0, dw_in


class _RLeakyScan(torch.autograd.Function):
    """Whole-sequence RLeaky on ``[T, R, N]`` currents (see the module docstring)."""

    @staticmethod
    def forward(ctx, current, weight, bias, v, beta, threshold, mem0, spk0, cfg: LIFConfig):
        spk, mem, saved = _scan_forward(ctx, current, weight, bias, v, beta, threshold, mem0, spk0, cfg,
                                        learn_beta=ctx.needs_input_grad[4])
        ctx.save_for_backward(*saved)
        return spk, mem

    @staticmethod
    @first_order_only
    def backward(ctx, d_spk, d_mem):
        needs = ctx.needs_input_grad
        a, dw, db, dv, dbeta, dthr, dmem0, dspk0, _ = _scan_backward(ctx, ctx.saved_tensors, needs[:8], d_spk, d_mem)
        d_cur = a if needs[0] else None
        return d_cur, dw if needs[1] else None, db, dv, dbeta, dthr, dmem0, dspk0, None


class _LinearRLeakyScan(torch.autograd.Function):
    r"""``nn.Linear`` + RLeaky in one function: ``I = X W_inᵀ + b_in``, then the recurrence.

    The forward computes ``I`` as :class:`~snntorch_sparse.state.EventLinear` does (one GEMM,
    bit-identical to snnTorch's per-step ``nn.Linear``, or summed over the input's events) and
    keeps the input's events (CSR: int64 row pointer, int32 column, values only if not binary).
    The backward kernel then sums ``∂L/∂W_in = Σ_t a[t]ᵀ X[t]`` over those events (``N`` adds
    per event) while each row of ``a[t] = ∂L/∂I[t]`` is in L1, and ``∂L/∂b_in = Σ_t a[t]`` is
    ``∂L/∂b_V``'s sum: nothing of size ``[T, B, N]`` is written unless ``∂L/∂X``, a learnable
    ``β``/``θ`` or a one-to-one ``V`` needs ``a`` as a tensor. ``∂L/∂X = a W_in`` only on the
    upstream sparse layer's active set when ``X`` carries one (as EventLinear).
    """

    @staticmethod
    def forward(ctx, x, w_in, b_in, weight, bias, v, beta, threshold, mem0, spk0, cfg: LIFConfig, event_forward):
        T = x.shape[0]
        n_in, n = w_in.shape[1], w_in.shape[0]
        x2 = x.reshape(-1, n_in)
        R = x2.shape[0] // T if T else 0
        x_csr = fused.dense_to_csr(x2)
        nnz = x_csr[1].numel()
        if event_forward is None:  # auto: events on the CPU for sparse inputs (as EventLinear)
            event_forward = nnz <= _AUTO_EVENT_DENSITY * max(x2.numel(), 1)
        if event_forward:
            current, _ = _event_linear(x2, w_in, b_in)
        else:
            current = F.linear(x2, w_in, b_in)
        spk, mem, saved = _scan_forward(ctx, current.view(T, R, n), weight, bias, v, beta, threshold, mem0, spk0,
                                        cfg, learn_beta=ctx.needs_input_grad[6])
        del current
        x_dense = None
        x_val = x_csr[2]
        if nnz and bool((x_val == 1).all()):
            x_val = None
        x_rowptr, x_col = x_csr[0], x_csr[1]
        if nnz > _DENSE_INPUT_DENSITY * max(x2.numel(), 1):  # dense input: one GEMM for ∂L/∂W_in
            x_dense = x2 if x_val is not None else x2 != 0
            x_rowptr = x_col = x_val = None
        up = getattr(x, ACTIVE_INDEX_ATTR, None)
        up_ok = isinstance(up, SpikeSets) and up.rows == x2.shape[0] and up.n == n_in
        ctx.up = up if up_ok and ctx.needs_input_grad[0] else None
        up_csr = ctx.up.active_csr() if ctx.up is not None else (None, None)
        ctx.save_for_backward(*saved, w_in, x_rowptr, x_col, x_val, x_dense, *up_csr)
        ctx.x_shape, ctx.n_in = x.shape, n_in
        return spk, mem

    @staticmethod
    @first_order_only
    def backward(ctx, d_spk, d_mem):
        saved_all = ctx.saved_tensors
        saved = saved_all[:_N_SAVED]
        w_in, x_rowptr, x_col, x_val, x_dense, up_rowptr, up_col = saved_all[_N_SAVED:]
        needs = ctx.needs_input_grad
        n_in = ctx.n_in
        need_dx, need_dw_in, need_db_in = needs[0], needs[1], needs[2]
        dense_dw = need_dw_in and x_dense is not None
        # core needs: (a, V, b_V / Σ a, one-to-one V, β, θ, mem0, spk0)
        core = (need_dx or dense_dw, needs[3], needs[4] or need_db_in, needs[5], needs[6], needs[7], needs[8],
                needs[9])
        x_events = (x_rowptr, x_col, x_val, n_in) if need_dw_in and x_dense is None else None
        a, dw, sum_a, dv, dbeta, dthr, dmem0, dspk0, dw_in = _scan_backward(ctx, saved, core, d_spk, d_mem, x_events)
        T, R, N = ctx.shape
        if dense_dw:
            dw_in = a.view(-1, N).t() @ x_dense.to(a.dtype)
        dx = None
        if need_dx:
            h2 = a.view(-1, N)
            if up_rowptr is not None:
                ops = get_backend(cfg_backend(ctx), h2.device)
                up_idx = csr_to_flat(up_rowptr, up_col, n_in)
                vals = ops.sparse_input_grad(h2, w_in, up_idx) if up_idx.numel() else h2.new_zeros(0)
                if ctx.up.takes_sparse_grad(ctx.x_shape):
                    dx = ctx.up.sparse_grad(vals)  # ∂L/∂X is zero off the upstream active set
                else:
                    dx = torch.zeros(ctx.x_shape, dtype=h2.dtype, device=h2.device)
                    dx.view(-1).index_copy_(0, up_idx, vals)
            else:
                dx = (h2 @ w_in).view(ctx.x_shape)
        return (dx, dw_in if need_dw_in else None, sum_a if need_db_in else None, dw if needs[3] else None,
                sum_a if needs[4] else None, dv, dbeta, dthr, dmem0, dspk0, None, None)


_cuda_kernels: dict = {}


def _has_cuda_kernel(op: str) -> bool:
    """``snntorch_sparse::<op>`` has a kernel for the CUDA dispatch key: the library was built
    with nvcc (``csrc/cuda/neurons_launch.cu``), as :func:`ops.fused._has_kernel` asks for the
    fused ops. Asked once the library is loaded, so the answer is cached."""
    if op not in _cuda_kernels:
        if not hasattr(torch.ops.snntorch_sparse, op):  # library not loaded (yet): no answer to cache
            return False
        _cuda_kernels[op] = bool(torch._C._dispatch_has_kernel_for_dispatch_key(f"snntorch_sparse::{op}", "CUDA"))
    return _cuda_kernels[op]


def _kernel_applies(backend, like: torch.Tensor, op: str) -> bool:
    """The compiled backward ``op`` applies to ``like``: CPU, or CUDA where the op has a CUDA
    kernel; float32/64; and the compiled backend builds. One code path: the dispatcher picks
    the CPU or the CUDA kernel; otherwise the caller runs its PyTorch loop."""
    if backend == "reference" or like.device.type not in ("cpu", "cuda") or \
            like.dtype not in (torch.float32, torch.float64):
        return False
    from .ops import compiled
    if get_backend(backend, like.device) is not compiled:
        return False
    if not hasattr(torch.ops.snntorch_sparse, op):
        return False
    return like.device.type == "cpu" or _has_cuda_kernel(op)


def _compiled_ok(backend, like: torch.Tensor) -> bool:
    """The compiled backward applies (:func:`_kernel_applies`): CPU, or CUDA with the kernel of
    ``csrc/cuda/neurons_launch.cu`` built; float32/64; the compiled backend builds.

    (It is used when at most an eighth of the entries are active; above that the per-step
    ``[B, N]×[N, N]`` GEMM of the reference loop is cheaper than per-entry dot products.)"""
    return _kernel_applies(backend, like, "rleaky_backward")


def _backward_loop(act_idx, act_sg, bounds, d_spk, d_mem, beta_c, weight, wt, v_vec, spk_bool, u0, thr,
                   mode, T, R, N):
    """Reference (pure PyTorch) form of the reverse-time loop: ``(a, g)``."""
    dtype, device = act_sg.dtype, act_sg.device
    a = torch.empty(T, R, N, dtype=dtype, device=device)
    carry = torch.zeros(R, N, dtype=dtype, device=device)
    g_all = torch.zeros(act_idx.numel(), dtype=dtype, device=device)
    d_spk_flat = None if d_spk is None else d_spk.reshape(T, R * N)
    for t in range(T - 1, -1, -1):
        du = beta_c * carry
        if d_mem is not None:
            du = du + d_mem[t]
        s, e = bounds[t], bounds[t + 1]
        if e > s:
            loc = act_idx[s:e] - t * R * N
            ds = d_spk_flat[t].index_select(0, loc) if d_spk_flat is not None else \
                torch.zeros(e - s, dtype=dtype, device=device)
            if t + 1 < T:
                b_i = torch.div(loc, N, rounding_mode="floor")
                n_i = loc - b_i * N
                if weight is None:
                    ds = ds + carry.view(-1).index_select(0, loc) * v_vec.index_select(0, n_i)
                elif (e - s) > _DENSE_STEP_FRACTION * R * N:
                    ds = ds + (carry @ weight).view(-1).index_select(0, loc)
                else:
                    ds = ds + (carry.index_select(0, b_i) * wt.index_select(0, n_i)).sum(1)
            g = ds * act_sg[s:e]
            g_all[s:e] = g
            du.view(-1).index_put_((loc,), g, accumulate=True)
        if mode == 1:
            if t > 0:
                du = du * (~spk_bool[t - 1]).to(dtype)
            elif u0 is not None:
                du = du * (u0 - thr <= 0).to(dtype)
        a[t] = du
        carry = du
    return a, g_all


def _as_tensors(like, beta, threshold, v):
    as_t = (lambda p: p if isinstance(p, torch.Tensor) else torch.as_tensor(p, dtype=like.dtype, device=like.device))
    return as_t(beta), as_t(threshold), None if v is None else as_t(v)


def _initial_rows(state, R, N):
    return None if state is None else state.reshape(-1, N) if state.numel() == R * N else state


def _finish(spk, mem, shape, cfg: LIFConfig):
    """``(spk, mem)`` in the caller's ``shape``, the active set attached to ``spk``."""
    sets = cfg.stats.pop("sets", None)
    if len(shape) != 3:
        spk, mem = spk.view(shape), mem.view(shape)
    if spk.requires_grad and sets is not None:
        # The active set travels with the spikes: a sparse consumer computes its ∂L/∂X only there
        # (and hands it back as one value per entry when the shapes agree); exact, since the
        # backward reads ∂L/∂S only where σ' ≠ 0. A Python attribute: it lives as long as spk.
        if len(shape) != 3:
            sets.shape, sets.accepts_sparse_grad = tuple(shape), False
        setattr(spk, ACTIVE_INDEX_ATTR, sets)
    return spk, mem


def rleaky_sequence(current, weight, bias, v, beta, threshold, cfg: LIFConfig, mem0=None, spk0=None):
    """Whole-sequence RLeaky from the current ``[T, B, ..., N]``: ``(spk, mem)``.

    ``weight``/``bias``: the all-to-all recurrent ``nn.Linear(N, N)`` (``v`` ignored),
    or ``weight=None`` and ``v`` (scalar or ``[N]``) for one-to-one connections.
    """
    T = current.shape[0]
    N = current.shape[-1]
    c3 = current.reshape(T, -1, N)
    R = c3.shape[1]
    beta, threshold, v = _as_tensors(current, beta, threshold, v)
    spk, mem = _RLeakyScan.apply(c3, weight, bias, v, beta, threshold, _initial_rows(mem0, R, N),
                                 _initial_rows(spk0, R, N), cfg)
    return _finish(spk, mem, tuple(current.shape), cfg)


def _fusable(x: torch.Tensor, w_in: torch.Tensor, backend) -> bool:
    """Linear + RLeaky run as one function (:class:`_LinearRLeakyScan`): the compiled CPU kernel
    applies, the input is a non-empty floating tensor, and autocast is off."""
    return (x.dim() >= 3 and x.numel() > 0 and x.dtype == w_in.dtype and _compiled_ok(backend, x)
            and not torch.is_autocast_enabled("cpu"))


def linear_rleaky_sequence(x, w_in, b_in, weight, bias, v, beta, threshold, cfg: LIFConfig, mem0=None, spk0=None,
                           event_forward=None):
    """``nn.Linear(w_in, b_in)`` then RLeaky over ``x [T, B, ..., N_in]``: ``(spk, mem)``.

    The same values as ``rleaky_sequence(event_linear(x, w_in, b_in, ...), ...)``; on the CPU
    with the compiled backend both run in :class:`_LinearRLeakyScan`, whose backward sums
    ``∂L/∂W_in`` over the input's events inside the recurrent kernel.
    """
    if not _fusable(x, w_in, cfg.backend):
        current = event_linear(x, w_in, b_in, cfg.backend, event_forward)
        return rleaky_sequence(current, weight, bias, v, beta, threshold, cfg, mem0, spk0)
    T, N = x.shape[0], w_in.shape[0]
    shape = (*x.shape[:-1], N)
    R = math.prod(shape[1:-1])
    beta, threshold, v = _as_tensors(x, beta, threshold, v)
    spk, mem = _LinearRLeakyScan.apply(x, w_in, b_in, weight, bias, v, beta, threshold,
                                       _initial_rows(mem0, R, N), _initial_rows(spk0, R, N), cfg, event_forward)
    return _finish(spk, mem, shape, cfg)


class SparseRLeaky(SparseNeuronViews, snn.RLeaky):
    """Drop-in :class:`snntorch.RLeaky` with a sparse surrogate gradient.

    Takes every argument of :class:`snntorch.RLeaky` (``all_to_all`` with
    ``linear_features``, or one-to-one ``V``) plus ``bth``, ``active_fraction``,
    ``step_mode``, ``backend`` and ``stateful`` as :class:`~snntorch_sparse.SparseLeaky`.
    ``step_mode="multi"`` takes the current ``[T, B, N]`` and returns ``(spk, mem)``
    sequences (``spk`` alone with ``init_hidden=True`` and not ``output``), with the
    sparse recurrent backward of :mod:`snntorch_sparse.recurrent`; ``spk=`` / ``mem=``
    give the initial state, ``stateful=True`` continues from the previous call's.
    (Convolutional recurrence, ``conv2d_channels``, runs in ``step_mode="single"`` only.)
    """

    def __init__(self, beta, V=1.0, all_to_all=True, linear_features=None, conv2d_channels=None,
                 kernel_size=None, threshold=1.0, spike_grad=None, surrogate_disable=False, init_hidden=False,
                 inhibition=False, learn_beta=False, learn_threshold=False, learn_recurrent=True,
                 reset_mechanism="subtract", state_quant=False, output=False, reset_delay=True,
                 bth=None, step_mode="single", backend=None, active_fraction=None, stateful=False):
        if step_mode not in ("single", "multi"):
            raise ValueError(f"step_mode must be 'single' or 'multi', got {step_mode!r}")
        check_beta(beta)
        check_threshold(threshold)
        check_reset(reset_mechanism)
        beta, threshold = as_float_param(beta), as_float_param(threshold)
        surrogate = resolve_surrogate(spike_grad, bth, active_fraction)
        super().__init__(beta, V=V, all_to_all=all_to_all, linear_features=linear_features,
                         conv2d_channels=conv2d_channels, kernel_size=kernel_size, threshold=threshold,
                         spike_grad=surrogate, surrogate_disable=surrogate_disable, init_hidden=init_hidden,
                         inhibition=inhibition, learn_beta=learn_beta, learn_threshold=learn_threshold,
                         learn_recurrent=learn_recurrent, reset_mechanism=reset_mechanism,
                         state_quant=state_quant, output=output, reset_delay=reset_delay)
        self.surrogate = surrogate
        self.step_mode = step_mode
        self.backend = backend
        self.stateful = bool(stateful)
        self._stats: dict = {}
        self._monitor = ActivityMonitor(f"{type(self).__name__}(beta={float(self.beta.detach().mean()):g})",
                                        patience=5 if step_mode == "multi" else 200)
        surrogate.monitor = self._monitor
        if step_mode == "multi":
            bad = [k for k, on in {"inhibition": inhibition, "state_quant": bool(state_quant),
                                   "surrogate_disable": surrogate_disable, "reset_delay=False": not reset_delay,
                                   "conv2d_channels": bool(conv2d_channels)}.items() if on]
            if bad:
                raise ValueError(f"step_mode='multi' does not support {', '.join(bad)}; "
                                 "use step_mode='single' for these features")

    def _recurrent_args(self):
        if self.all_to_all:
            return self.recurrent.weight, self.recurrent.bias, None
        return None, None, self.V

    def forward(self, input_, spk=None, mem=None):
        if self.step_mode == "single":
            return super().forward(input_, spk, mem)
        if self.init_hidden and (spk is not None or mem is not None):
            raise TypeError("When `init_hidden=True`, RLeaky expects 1 input argument.")
        input_ = autocast_input(input_, self.beta)
        check_same_device(input_=input_, beta=self.beta, threshold=self.threshold)
        check_sequence(input_, "input_", min_dim=2, check_values=False)
        step = tuple(input_.shape[1:])
        if self.stateful:
            spk = spk if spk is not None or tuple(self.spk.shape) != step else self.spk
            mem = mem if mem is not None or tuple(self.mem.shape) != step else self.mem
        track = self.stateful or spk is not None or mem is not None
        cfg = LIFConfig(surrogate=self.surrogate, reset_mode=int(self.reset_mechanism_val),
                        backend=self.backend, stats=self._stats)
        w, b, v = self._recurrent_args()
        spk_seq, mem_seq = rleaky_sequence(input_, w, b, v, self.beta, self.threshold, cfg, mem, spk)
        self._stats = cfg.stats
        if self.training and spk_seq.requires_grad:
            self._monitor.update(cfg.stats["active"], cfg.stats["total"], cfg.stats.get("window"),
                                 fixed=not self.surrogate.adaptive)
        if track:
            self.spk, self.mem = spk_seq[-1].clone(), mem_seq[-1].clone()
        else:
            self.spk, self.mem = spk_seq[-1].detach().clone(), mem_seq[-1].detach().clone()
        if self.output or not self.init_hidden:
            return spk_seq, mem_seq
        return spk_seq

    def extra_repr(self) -> str:
        return f"step_mode={self.step_mode!r}, spike_grad={self.surrogate!r}"


class SparseLinearRLeaky(FusedLinearMixin, StatefulMixin, nn.Module):
    """``nn.Linear`` followed by ``snn.RLeaky`` over a whole sequence, with a sparse backward.

    Arguments as :class:`~snntorch_sparse.SparseLinearLeaky`, plus snnTorch's
    ``all_to_all`` (default ``True``: a learnable ``recurrent = nn.Linear(out, out)``),
    ``V`` (one-to-one weights when ``all_to_all=False``) and ``learn_recurrent``.
    Returns ``spk`` ``[T, B, out]``, or ``(spk, mem)`` with ``output=True`` or
    ``init_hidden=False``. ``stateful=True`` continues each call from the previous
    call's final ``spk`` / ``mem`` (``layer.spk``, ``layer.mem``). ``event_forward``: as
    :class:`~snntorch_sparse.SparseLinearLeaky` (``None``: the input current summed over the
    input's spikes on the CPU when sparse; ``False``: one GEMM, bit-identical to snnTorch).
    """

    multi_step = True
    _state_names = ("spk", "mem")
    _snn_family = snn.RLeaky

    def __init__(self, in_features: int, out_features: int, beta, V=1.0, all_to_all: bool = True,
                 threshold=1.0, spike_grad=None, bth=None, bias: bool = True, learn_beta: bool = False,
                 learn_threshold: bool = False, learn_recurrent: bool = True, reset_mechanism: str = "subtract",
                 output: bool = False, backend=None, device=None, dtype=None, *, active_fraction=None,
                 init_hidden: bool = True, stateful: bool = False, event_forward=None):
        super().__init__()
        self._init_state(stateful)
        self.event_forward = event_forward
        check_features(in_features, "in_features")
        check_features(out_features, "out_features")
        check_beta(beta)
        check_threshold(threshold)
        self.reset_mode = check_reset(reset_mechanism)
        self.reset_mechanism = reset_mechanism
        self.fc = nn.Linear(in_features, out_features, bias=bias, device=device, dtype=dtype)
        dt = self.fc.weight.dtype
        self.all_to_all = bool(all_to_all)
        if self.all_to_all:
            self.recurrent = nn.Linear(out_features, out_features, device=device, dtype=dt)
            for p in self.recurrent.parameters():
                p.requires_grad_(learn_recurrent)
        else:
            v = torch.as_tensor(as_float_param(V), dtype=dt, device=device).clone()
            if learn_recurrent:
                self.V = nn.Parameter(v)
            else:
                self.register_buffer("V", v)
        for name, value, learn in (("beta", beta, learn_beta), ("threshold", threshold, learn_threshold)):
            t = torch.as_tensor(as_float_param(value), dtype=dt, device=device).clone()
            if learn:
                setattr(self, name, nn.Parameter(t))
            else:
                self.register_buffer(name, t)
        self.surrogate = resolve_surrogate(spike_grad, bth, active_fraction)
        self.output = output
        self.init_hidden = bool(init_hidden)
        self.backend = backend
        self._stats: dict = {}
        self._monitor = ActivityMonitor(f"SparseLinearRLeaky({in_features}->{out_features})")

    def forward(self, x: torch.Tensor, spk=None, mem=None):
        x = self._checked_input(x)
        step = (*x.shape[1:-1], self.out_features)
        spk0, mem0 = self._initial("spk", spk, step), self._initial("mem", mem, step)
        track = self.stateful or spk is not None or mem is not None
        cfg = LIFConfig(surrogate=self.surrogate, reset_mode=self.reset_mode, backend=self.backend,
                        stats=self._stats)
        if self.all_to_all:
            w, b, v = self.recurrent.weight, self.recurrent.bias, None
        else:
            w, b, v = None, None, self.V
        spk_seq, mem_seq = linear_rleaky_sequence(x, self.weight, self.bias, w, b, v, self.beta, self.threshold, cfg,
                                                  mem0, spk0, self.event_forward)
        self._stats = cfg.stats
        if self.training and spk_seq.requires_grad:
            self._monitor.update(cfg.stats["active"], cfg.stats["total"], cfg.stats.get("window"),
                                 fixed=not self.surrogate.adaptive)
        self._keep("spk", spk_seq[-1], attached=track)
        self._keep("mem", mem_seq[-1], attached=track)
        if self.output or not self.init_hidden:
            return spk_seq, mem_seq
        return spk_seq

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"all_to_all={self.all_to_all}, reset_mechanism={self.reset_mechanism!r}, "
                f"spike_grad={self.surrogate!r}")


# --- sparsify / desparsify (called from snntorch_sparse.convert) -------------------------------------

def _check_rleaky(neuron, where: str) -> None:
    bad = [name for name, on in (("inhibition=True", neuron.inhibition), ("state_quant", bool(neuron.state_quant)),
                                 ("reset_delay=False", not neuron.reset_delay),
                                 ("surrogate_disable=True", getattr(neuron, "surrogate_disable", False)),
                                 ("conv2d_channels (convolutional recurrence)", bool(neuron.conv2d_channels)))
           if on]
    if bad:
        raise ValueError(f"sparsify: the snn.RLeaky at {where} uses {', '.join(bad)}, which the multi-step "
                         "sparse layers do not support; keep this neuron in snnTorch")


def _learn_recurrent(neuron) -> bool:
    params = list(neuron.recurrent.parameters()) if neuron.all_to_all else [neuron.V]
    return any(isinstance(p, nn.Parameter) and p.requires_grad for p in params)


def _copy_recurrent(dst, src) -> None:
    with torch.no_grad():
        if src.all_to_all:
            dst.recurrent.weight.copy_(src.recurrent.weight)
            if src.recurrent.bias is not None:
                dst.recurrent.bias.copy_(src.recurrent.bias)
        else:
            dst.V.copy_(torch.as_tensor(src.V, dtype=dst.V.dtype).expand_as(dst.V)
                        if dst.V.numel() >= torch.as_tensor(src.V).numel() else src.V)


def sparse_rleaky_from(neuron, step_mode: str, bth, spike_grad, backend, where: str,
                       active_fraction=None) -> SparseRLeaky:
    """A :class:`SparseRLeaky` with ``neuron``'s parameters and options."""
    from .convert import _beta_threshold, _is_param, _output_full
    beta, threshold = _beta_threshold(neuron, where)
    extra = {}
    if step_mode == "multi":
        _check_rleaky(neuron, where)
    else:
        extra = dict(surrogate_disable=getattr(neuron, "surrogate_disable", False), inhibition=neuron.inhibition,
                     state_quant=neuron.state_quant, reset_delay=neuron.reset_delay,
                     conv2d_channels=neuron.conv2d_channels, kernel_size=neuron.kernel_size)
    sg = _output_full(resolve_surrogate(spike_grad if spike_grad is not None else neuron.spike_grad, bth,
                                        active_fraction), neuron, active_fraction)
    with torch.random.fork_rng(devices=[]):
        new = SparseRLeaky(beta=beta.clamp(0, 1), threshold=threshold, spike_grad=sg,
                           V=neuron.V.detach().clone() if not neuron.all_to_all else 1.0,
                           all_to_all=neuron.all_to_all, linear_features=neuron.linear_features,
                           learn_beta=_is_param(neuron.beta), learn_threshold=_is_param(neuron.threshold),
                           learn_recurrent=_learn_recurrent(neuron), reset_mechanism=neuron.reset_mechanism,
                           init_hidden=neuron.init_hidden, output=neuron.output, step_mode=step_mode,
                           backend=backend, **extra)
    new = new.to(neuron.beta.device)
    if neuron.all_to_all:
        new.recurrent = new.recurrent.to(neuron.recurrent.weight.dtype)
        _copy_recurrent(new, neuron)
    with torch.no_grad():
        new.beta.copy_(beta)
    new.train(neuron.training)
    return new


def fuse_rleaky(linear: nn.Linear, neuron, bth, spike_grad, backend, where: str,
                active_fraction=None, event_forward=None) -> SparseLinearRLeaky:
    """``nn.Linear`` + ``snn.RLeaky`` as one :class:`SparseLinearRLeaky` (same parameters)."""
    from .convert import _beta_threshold, _check_shape, _is_param, _output_full
    _check_rleaky(neuron, where)
    beta, threshold = _beta_threshold(neuron, where)
    _check_shape(beta, "beta", where, linear.out_features)
    _check_shape(threshold, "threshold", where, linear.out_features)
    sg = _output_full(resolve_surrogate(spike_grad if spike_grad is not None else neuron.spike_grad, bth,
                                        active_fraction), neuron, active_fraction)
    with torch.random.fork_rng(devices=[]):
        layer = SparseLinearRLeaky(linear.in_features, linear.out_features, beta=beta.clamp(0, 1),
                                   V=neuron.V.detach().clone() if not neuron.all_to_all else 1.0,
                                   all_to_all=neuron.all_to_all, threshold=threshold, spike_grad=sg,
                                   bias=linear.bias is not None, learn_beta=_is_param(neuron.beta),
                                   learn_threshold=_is_param(neuron.threshold),
                                   learn_recurrent=_learn_recurrent(neuron),
                                   reset_mechanism=neuron.reset_mechanism, output=neuron.output,
                                   backend=backend, device=linear.weight.device, dtype=linear.weight.dtype,
                                   event_forward=event_forward)
    layer._monitor.name = f"{where} ({layer._monitor.name})"
    with torch.no_grad():
        layer.fc.weight.copy_(linear.weight)
        if linear.bias is not None:
            layer.fc.bias.copy_(linear.bias)
        layer.beta.copy_(beta)
    if neuron.all_to_all and neuron.recurrent.bias is None:
        layer.recurrent.bias = None
    _copy_recurrent(layer, neuron)
    layer.train(neuron.training)
    return layer


def dense_rleaky_from(m, init_hidden: bool, output: bool) -> snn.RLeaky:
    """The snnTorch ``RLeaky`` of a sparse one (its clamped surrogate and recurrent weights kept)."""
    from .convert import _is_param
    extra = {}
    if isinstance(m, snn.RLeaky):
        extra = dict(surrogate_disable=getattr(m, "surrogate_disable", False), inhibition=m.inhibition,
                     state_quant=m.state_quant, reset_delay=m.reset_delay)
    n = m.recurrent.weight.shape[0] if m.all_to_all else None
    learn_rec = (any(p.requires_grad for p in m.recurrent.parameters()) if m.all_to_all
                 else isinstance(m.V, nn.Parameter))
    with torch.random.fork_rng(devices=[]):
        neuron = snn.RLeaky(beta=m.beta.detach().clone(), threshold=m.threshold.detach().clone(),
                            V=m.V.detach().clone() if not m.all_to_all else 1.0, all_to_all=m.all_to_all,
                            linear_features=n, spike_grad=m.surrogate, learn_beta=_is_param(m.beta),
                            learn_threshold=_is_param(m.threshold), learn_recurrent=learn_rec,
                            reset_mechanism=m.reset_mechanism, init_hidden=init_hidden, output=output, **extra)
    neuron = neuron.to(m.beta.device)
    if m.all_to_all:
        neuron.recurrent = neuron.recurrent.to(m.recurrent.weight.dtype)
        if m.recurrent.bias is None:
            neuron.recurrent.bias = None
        _copy_recurrent(neuron, m)
    neuron.train(m.training)
    return neuron
