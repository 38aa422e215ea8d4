r"""State carried from one multi-step call to the next (truncated BPTT, streaming).

The fused scans (:mod:`snntorch_sparse.ops`) start every sequence from a zero
membrane. A non-zero initial state is folded in *without changing any kernel*:
one extra time step is prepended whose current is the initial membrane itself.
From a zero state the scan computes, at that step (θ > 0, so nothing resets)::

    U[-1] = β·0 + U0 = U0                  exactly (0·β = 0, 0 + U0 = U0)

and from there on the recurrence is snnTorch's, bit for bit:
``U[0] = (β·U0 + I[0]) - H(U0 - θ)·θ`` (subtract), ``β·((1 - H(U0 - θ))·U0) + I[0]``
(zero), ``β·U0 + I[0]`` (none). The extra step's output is dropped, so no
gradient reaches its spike; the scan's adjoint at that step is exactly
``∂L/∂U0 = β·(1 - R0)^{[zero]}·h[0]``, and the ``β``/``θ`` gradients pick up the
``h[0]·U0`` and ``-h[0]·R0·θ`` terms of the first step. Autograd does the rest
(the prepended row is a ``torch.cat``). A threshold ``θ ≤ 0`` would reset the
extra step (reset by subtraction): the row is then ``U0 + θ`` so that it still
lands on ``U0`` (to rounding).

For a fused Linear layer the current is computed by :class:`EventLinear`
(one GEMM forward, bit-identical to the fused layer's GEMM forward; sparse
``∂L/∂W`` over the input's events and ``∂L/∂X`` on the upstream layer's active
set in the backward), then the neuron-only scan runs on it. That path keeps a
dense ``[T, B, N]`` gradient in the backward, which the fused path avoids; it is
taken only for calls that start from a non-zero state.

The adaptive window and the activity count of such a call include the extra
step's ``B·N`` entries (a fixed window ``bth`` is unaffected: its gradients are
exactly snnTorch's).
"""
from __future__ import annotations

import weakref
from typing import Optional

import snntorch as snn
import snntorch.utils as snn_utils
import torch
import torch.nn.functional as F

from .fused_cpu import SpikeSets, first_order_only
from .functional import ACTIVE_INDEX_ATTR, LIFConfig, _event_linear, sparse_lif
from .ops import get_backend

__all__ = ["EventLinear", "event_linear", "prepend_state", "lif_from_state", "StatefulMixin", "install_hooks"]

# Live fused layers with carried state, for snnTorch's class-wide reset_hidden / detach_hidden.
# Weak: like snnTorch's own ``instances`` list but without keeping layers alive (upstream #328).
_LIVE = weakref.WeakSet()

# Above this input density the dense input is cheaper to keep than its indices.
_DENSE_INPUT_DENSITY = 1.0 / 3.0
# event_forward=None ("auto") sums the current over the input's events up to this density (CPU).
_AUTO_EVENT_DENSITY = 0.25


class EventLinear(torch.autograd.Function):
    """``I = X Wᵀ + b`` over all ``T·B`` rows, with the sparse backward of the fused layers.

    Forward: one GEMM (``F.linear`` on ``[T·B, N_in]``, as the fused layer's GEMM
    forward: bit-identical to snnTorch's per-step ``nn.Linear`` where the BLAS is
    row-invariant), or with ``event_forward`` the sum over the input's non-zeros only
    (``nnz(X)·N_out`` instead of ``T·B·N_in·N_out``; equal to rounding). ``None``: events on
    the CPU when at most a quarter of the input is non-zero. Backward: ``∂L/∂W`` summed over ``X``'s non-zeros only
    (``ops.sparse_weight_grad``), ``∂L/∂X`` only on the upstream sparse layer's
    active set when ``X`` carries one (zero elsewhere, where the upstream
    surrogate is zero anyway), ``∂L/∂b = Σ h``. Saved: ``W`` and ``X``'s event
    indices (the dense ``X`` above a third non-zero).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, backend, event_forward=False):
        n_in, n = weight.shape[1], weight.shape[0]
        x2 = x.reshape(-1, n_in)
        flat = x2.reshape(-1)
        nz = None
        if event_forward is None:  # auto: events on the CPU for sparse inputs
            event_forward = False
            if x.device.type == "cpu" and x2.numel() and x.dtype in (torch.float32, torch.float64):
                nz = flat.nonzero().squeeze(1)
                event_forward = nz.numel() <= _AUTO_EVENT_DENSITY * flat.numel()
        if event_forward:
            out, nz = _event_linear(x2, weight, bias)
        else:
            out = F.linear(x2, weight, bias)
        empty = torch.empty(0, dtype=torch.long, device=x.device)
        x_idx, x_val, x_dense = empty, None, None
        if ctx.needs_input_grad[1]:
            x_idx = nz if nz is not None else flat.nonzero().squeeze(1)
            if x_idx.numel() > _DENSE_INPUT_DENSITY * max(flat.numel(), 1):
                x_idx, x_dense = empty, x2
            else:
                vals = flat.index_select(0, x_idx)
                if not bool((vals == 1).all()):
                    x_val = vals
        up = getattr(x, ACTIVE_INDEX_ATTR, None)
        up_idx = None
        if isinstance(up, SpikeSets) and up.rows == x2.shape[0] and up.n == n_in:
            up_idx = up.active_flat()
        ctx.save_for_backward(weight, x_idx, x_val, x_dense, up_idx)
        ctx.backend, ctx.x_shape, ctx.n_in = backend, x.shape, n_in
        ctx.set_materialize_grads(False)
        return out.view(*x.shape[:-1], n)

    @staticmethod
    @first_order_only
    def backward(ctx, d_out):
        weight, x_idx, x_val, x_dense, up_idx = ctx.saved_tensors
        if d_out is None:
            return None, None, None, None, None
        ops = get_backend(ctx.backend, d_out.device)
        h2 = d_out.reshape(-1, weight.shape[0]).contiguous()
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            if up_idx is not None:
                dx = torch.zeros(ctx.x_shape, dtype=h2.dtype, device=h2.device)
                if up_idx.numel():
                    dx.view(-1).index_copy_(0, up_idx, ops.sparse_input_grad(h2, weight, up_idx))
            else:
                dx = (h2 @ weight).view(ctx.x_shape)
        if ctx.needs_input_grad[1]:
            if x_dense is not None:
                dw = h2.t() @ x_dense
            else:
                dw = ops.sparse_weight_grad(h2, x_idx, x_val, ctx.n_in)
        if ctx.needs_input_grad[2]:
            db = h2.sum(0)
        return dx, dw, db, None, None


def event_linear(x, weight, bias=None, backend=None, event_forward=False):
    """:class:`EventLinear`: ``x @ weight.T + bias`` with the sparse backward."""
    return EventLinear.apply(x, weight, bias, backend, event_forward)


def prepend_state(current: torch.Tensor, state0: Optional[torch.Tensor], threshold=None,
                  reset_mode: int = 2) -> torch.Tensor:
    """``[state0', current[0], ..., current[T-1]]``: the extra first step of a carried state.

    ``state0`` broadcasts to one step of ``current``. With a threshold and reset by
    subtraction, entries whose threshold is ``≤ 0`` get ``+θ`` (the scan resets its
    extra step there).
    """
    if state0 is None:
        row = torch.zeros_like(current[:1])
    else:
        row = state0.to(current.dtype).expand(current.shape[1:]).unsqueeze(0)
        if threshold is not None and reset_mode == 0:
            thr = torch.as_tensor(threshold, dtype=current.dtype, device=current.device)
            if bool((thr <= 0).any()):
                thr_row = thr.reshape(-1) if thr.numel() > 1 else thr
                row = row + torch.where(thr_row <= 0, thr_row, torch.zeros_like(thr_row))
    return torch.cat([row, current], 0)


def lif_from_state(x, weight, bias, beta, threshold, cfg: LIFConfig, mem0: Optional[torch.Tensor]):
    """:func:`~snntorch_sparse.functional.sparse_lif` starting from the membrane ``mem0``.

    ``mem0`` (``[B, ..., N]`` or broadcastable to one step of the output) may
    require grad: ``∂L/∂mem0`` is returned by autograd. Returns ``(spk, mem)``
    of shape ``[T, B, ..., N]``; ``mem[-1]`` is the final state.
    """
    current = x if weight is None else event_linear(x, weight, bias, cfg.backend, cfg.event_forward)
    cur = prepend_state(current, mem0, threshold, cfg.reset_mode)
    call = LIFConfig(surrogate=cfg.surrogate, reset_mode=cfg.reset_mode, readout=cfg.readout,
                     backend=cfg.backend, event_forward=False, check_finite=cfg.check_finite,
                     need_mem=True, stats=cfg.stats)
    spk, mem = sparse_lif(cur, None, None, beta, threshold, call)
    return spk[1:], mem[1:]


class StatefulMixin:
    """``mem`` carried across calls, with snnTorch's hidden-state methods.

    A layer mixing this in keeps its final state in buffers named after
    :attr:`_state_names` (e.g. ``("mem",)`` or ``("syn", "mem")``); with
    ``stateful=True`` the next call starts from them (until :meth:`reset_hidden`),
    else each call starts from zero and the buffers are only for inspection.
    """

    _state_names = ("mem",)
    #: the snnTorch neuron class whose class-wide ``reset_hidden`` / ``detach_hidden`` reach this layer
    _snn_family = snn.Leaky

    def _init_state(self, stateful: bool):
        self.stateful = bool(stateful)
        _LIVE.add(self)
        for name in self._state_names:
            self.register_buffer(name, torch.zeros(0), persistent=False)

    def _initial(self, name: str, given, step_shape) -> Optional[torch.Tensor]:
        """The state a call starts from: ``given``, else the carried one (``stateful``), else ``None`` (zero)."""
        if given is not None:
            return given
        if not self.stateful:
            return None
        held = getattr(self, name)
        if held.numel() == 0 or tuple(held.shape) != tuple(step_shape):
            return None  # first call, after reset_hidden, or a new batch size: a fresh state
        return held

    def _keep(self, name: str, final: torch.Tensor, attached: bool):
        """Store the final state (graph-attached when it feeds the next call)."""
        _LIVE.add(self)  # also copies made without __init__ (deepcopy, pickling)
        setattr(self, name, final.clone() if attached else final.detach().clone())

    def reset_mem(self):
        """Zero the carried state (the next ``stateful`` call starts fresh)."""
        for name in self._state_names:
            held = getattr(self, name)
            setattr(self, name, torch.zeros_like(held))
        return tuple(getattr(self, n) for n in self._state_names) if len(self._state_names) > 1 \
            else getattr(self, self._state_names[0])

    def reset_hidden(self):
        """As snnTorch's ``reset_hidden``: zero the carried state, keeping its shape."""
        self.reset_mem()

    def detach_hidden(self):
        """As snnTorch's ``detach_hidden``: cut the carried state from the graph (truncated BPTT)."""
        for name in self._state_names:
            getattr(self, name).detach_()


def _wrap_classmethod(cls, name: str) -> None:
    """Make ``cls.<name>()`` (a class-wide snnTorch hidden-state method) also reach our fused layers."""
    orig = cls.__dict__.get(name)
    if orig is None or getattr(orig.__func__, "_snntorch_sparse", False):
        return
    func = orig.__func__

    def wrapped(klass):
        out = func(klass)
        for layer in list(_LIVE):
            if issubclass(layer._snn_family, klass):
                getattr(layer, name)()
        return out

    wrapped._snntorch_sparse = True
    wrapped.__doc__ = func.__doc__
    wrapped.__name__ = func.__name__
    setattr(cls, name, classmethod(wrapped))


def install_hooks() -> None:
    """``snn.<Neuron>.reset_hidden()`` / ``detach_hidden()`` and ``snntorch.utils.reset(net)``
    also reset / detach the carried state of this package's fused layers (idempotent)."""
    for cls in (snn.Leaky, snn.Synaptic, snn.RLeaky, snn.RSynaptic, snn.Alpha):
        for name in ("reset_hidden", "detach_hidden"):
            _wrap_classmethod(cls, name)
    if not getattr(snn_utils.reset, "_snntorch_sparse", False):
        orig = snn_utils.reset

        def reset(net):
            out = orig(net)
            for m in net.modules():
                if isinstance(m, StatefulMixin):
                    m.reset_hidden()
                    m.detach_hidden()
            return out

        reset._snntorch_sparse = True
        reset.__doc__ = orig.__doc__
        snn_utils.reset = reset
