r"""Sparse counterparts of snnTorch's ``Synaptic`` (second-order LIF).

snnTorch 1.0's update (``reset_delay=True``, reset detached)::

    R[t] = H(U[t-1] - θ)
    J[t] = α·J[t-1] + I[t]                           synaptic current
    U[t] = (β·U[t-1] + J[t]) - R[t]·θ                 "subtract"
    U[t] = (β·U[t-1] + J[t]) - (β·U[t-1] + J[t])·R[t]  "zero" (the *new* membrane is zeroed)
    U[t] =  β·U[t-1] + J[t]                          "none"
    S[t] = H(U[t] - θ)

For "subtract" and "none" the membrane recurrence *is* the LIF scan of
:mod:`snntorch_sparse.ops` with the current ``J``, and ``J`` itself is the same
scan with decay ``α`` and no reset. The whole-sequence forms here compose the two
compiled scans (bit-identical to snnTorch: the same expressions in the same
order), and the backward is::

    g[t]  = ∂L/∂S[t]·σ'(U[t] - θ)  on the active set |U - θ| < B_th  (+ ∂L/∂U[t])
    hU[t] = g[t] + β·hU[t+1]           (the sparse LIF backward, ops.lif_scan_backward)
    hJ[t] = hU[t] + ∂L/∂J[t] + α·hJ[t+1]   (the same scan with α, no reset)
    ∂L/∂I = hJ,   ∂L/∂α = Σ hJ[t]·J[t-1],   ∂L/∂β = Σ hU[t]·U[t-1]

``∂L/∂W``, ``∂L/∂b``, ``∂L/∂X`` of the fused Linear layer follow from ``hJ``
exactly as for ``Leaky`` (:class:`~snntorch_sparse.state.EventLinear`: over the
input's events and the upstream active set). "zero" (whose reset also drops the
step's own input) has no scan of its own yet: its whole-sequence form runs
snnTorch's step in a loop with the sparse surrogate (same gradients, a dense
autograd graph).

State: ``J`` and ``U`` are carried across calls with ``stateful=True`` or given
per call (``syn=``, ``mem=``), by prepending one step to each scan
(:mod:`snntorch_sparse.state`).
"""
from __future__ import annotations

import math

import snntorch as snn
import torch
from torch import nn

from ._activity import ActivityMonitor
from ._fused_layer import FusedLinearMixin
from ._neuron_views import SparseNeuronViews
from ._validation import (as_float_param, autocast_input, check_beta, check_features, check_reset, check_same_device,
                          check_sequence, check_threshold, per_feature)
from .fused_cpu import first_order_only
from .functional import LIFConfig, sparse_lif
from .neurons import resolve_surrogate
from .ops import get_backend
from .state import StatefulMixin, event_linear, lif_from_state, prepend_state

__all__ = ["SparseSynaptic", "SparseLinearSynaptic", "decay_scan", "synaptic_sequence"]


class DecayScan(torch.autograd.Function):
    """``J[t] = α·J[t-1] + I[t]`` (``J[-1] = 0``) over ``[T, B, ...]``: the LIF scan with no reset."""

    @staticmethod
    def forward(ctx, current, alpha, backend):
        ops = get_backend(backend, current.device)
        T = current.shape[0]
        n = math.prod(current.shape[2:])
        c3 = current.reshape(T, -1, n).contiguous().clone()
        alpha_v = per_feature(alpha.clamp(0, 1), n, "alpha", c3)
        zero = torch.zeros(n, dtype=c3.dtype, device=c3.device)
        syn = ops.lif_scan_(c3, alpha_v, zero, 2)
        ctx.save_for_backward(alpha, alpha_v, syn if ctx.needs_input_grad[1] else None)
        ctx.backend, ctx.shape = backend, current.shape
        ctx.set_materialize_grads(False)
        return syn.view(current.shape)

    @staticmethod
    @first_order_only
    def backward(ctx, d_syn):
        alpha, alpha_v, syn = ctx.saved_tensors
        if d_syn is None:
            return None, None, None
        ops = get_backend(ctx.backend, d_syn.device)
        T = ctx.shape[0]
        n = alpha_v.numel()
        h = ops.lif_scan_backward(d_syn.reshape(T, -1, n).contiguous(), alpha_v, None, 2)
        d_alpha = None
        if ctx.needs_input_grad[1]:
            prev = torch.zeros_like(syn)
            prev[1:] = syn[:-1]
            d_n = (h * prev).sum((0, 1))
            inside = ((alpha >= 0) & (alpha <= 1)).to(h.dtype)
            d_alpha = (d_n.sum().reshape(alpha.shape) if alpha.numel() == 1
                       else d_n.reshape(alpha.shape)).to(alpha.dtype) * inside
        return h.view(ctx.shape), d_alpha, None


def decay_scan(current, alpha, backend=None, state0=None):
    """``J[t] = α·J[t-1] + I[t]`` from ``J[-1] = state0`` (``None``: zero); ``[T, B, ...]``."""
    alpha = torch.as_tensor(alpha, dtype=current.dtype, device=current.device) \
        if not isinstance(alpha, torch.Tensor) else alpha
    if state0 is None:
        return DecayScan.apply(current, alpha, backend)
    return DecayScan.apply(prepend_state(current, state0), alpha, backend)[1:]


def _synaptic_loop(current, alpha, beta, threshold, surrogate, reset_mode, syn0, mem0):
    """snnTorch's ``Synaptic`` step in a loop (the "zero" reset): same numbers, autograd graph."""
    a, b = alpha.clamp(0, 1), beta.clamp(0, 1)
    syn = torch.zeros_like(current[0]) if syn0 is None else syn0.expand_as(current[0])
    mem = torch.zeros_like(current[0]) if mem0 is None else mem0.expand_as(current[0])
    spks, syns, mems = [], [], []
    for t in range(current.shape[0]):
        reset = (mem - threshold > 0).to(current.dtype)
        syn = a * syn + current[t]
        pre = b * mem + syn
        if reset_mode == 1:
            mem = pre - pre * reset
        elif reset_mode == 0:
            mem = pre - reset * threshold
        else:
            mem = pre
        spks.append(surrogate(mem - threshold))
        syns.append(syn)
        mems.append(mem)
    return torch.stack(spks), torch.stack(syns), torch.stack(mems)


def synaptic_sequence(current, alpha, beta, threshold, cfg: LIFConfig, syn0=None, mem0=None, track=False):
    """Whole-sequence ``Synaptic`` from the current ``I`` ``[T, B, ...]``: ``(spk, syn, mem)``.

    ``syn0`` / ``mem0``: initial states (``None``: zero). ``track``: the caller keeps the
    final state, so the membrane is computed even where it is not an output.
    """
    if cfg.reset_mode == 1:
        return _synaptic_loop(current, alpha, beta, threshold, cfg.surrogate, 1, syn0, mem0)
    syn = decay_scan(current, alpha, cfg.backend, syn0)
    if mem0 is None and not track:
        spk, mem = sparse_lif(syn, None, None, beta, threshold, cfg)
    else:
        spk, mem = lif_from_state(syn, None, None, beta, threshold, cfg, mem0)
    return spk, syn, mem


def _as_param(module, name, value, learn, dtype=None, device=None):
    value = torch.as_tensor(value, dtype=dtype, device=device).clone() if dtype is not None \
        else torch.as_tensor(value)
    if learn:
        setattr(module, name, nn.Parameter(value))
    else:
        module.register_buffer(name, value)


class SparseSynaptic(SparseNeuronViews, snn.Synaptic):
    """Drop-in :class:`snntorch.Synaptic` with a sparse surrogate gradient.

    Takes every argument of :class:`snntorch.Synaptic` plus ``bth``,
    ``active_fraction``, ``step_mode``, ``backend`` and ``stateful`` as in
    :class:`~snntorch_sparse.SparseLeaky`. ``step_mode="single"``: snnTorch's
    neuron, one step per call, with the sparse surrogate. ``step_mode="multi"``:
    one call takes the current ``[T, B, ...]`` and returns ``(spk, syn, mem)``
    sequences (``spk`` alone with ``init_hidden=True`` and not ``output``), from
    zero states, or from ``syn`` / ``mem`` passed in, or (``stateful=True``) from
    the previous call's final ``self.syn`` / ``self.mem``.

    Example::

        lif = SparseSynaptic(alpha=0.8, beta=0.9, bth=0.2, step_mode="multi")
        spk, syn, mem = lif(torch.randn(100, 32, 200))
    """

    def __init__(self, alpha, beta, threshold=1.0, spike_grad=None, surrogate_disable=False,
                 init_hidden=False, inhibition=False, learn_alpha=False, learn_beta=False,
                 learn_threshold=False, reset_mechanism="subtract", state_quant=False, output=False,
                 reset_delay=True, bth=None, step_mode="single", backend=None, active_fraction=None,
                 stateful=False):
        if step_mode not in ("single", "multi"):
            raise ValueError(f"step_mode must be 'single' or 'multi', got {step_mode!r}")
        check_beta(alpha)
        check_beta(beta)
        check_threshold(threshold)
        check_reset(reset_mechanism)
        alpha, beta, threshold = as_float_param(alpha), as_float_param(beta), as_float_param(threshold)
        surrogate = resolve_surrogate(spike_grad, bth, active_fraction)
        super().__init__(alpha, beta, threshold=threshold, spike_grad=surrogate,
                         surrogate_disable=surrogate_disable, init_hidden=init_hidden,
                         inhibition=inhibition, learn_alpha=learn_alpha, learn_beta=learn_beta,
                         learn_threshold=learn_threshold, reset_mechanism=reset_mechanism,
                         state_quant=state_quant, output=output, reset_delay=reset_delay)
        self.surrogate = surrogate
        self.step_mode = step_mode
        self.backend = backend
        self.stateful = bool(stateful)
        self._stats: dict = {}
        self._monitor = ActivityMonitor(f"{type(self).__name__}(alpha={float(self.alpha.detach().mean()):g}, "
                                        f"beta={float(self.beta.detach().mean()):g})",
                                        patience=5 if step_mode == "multi" else 200)
        surrogate.monitor = self._monitor
        if step_mode == "multi":
            bad = [k for k, v in {"inhibition": inhibition, "state_quant": bool(state_quant),
                                  "surrogate_disable": surrogate_disable,
                                  "reset_delay=False": not reset_delay}.items() if v]
            if bad:
                raise ValueError(f"step_mode='multi' does not support {', '.join(bad)}; "
                                 "use step_mode='single' for these features")

    def forward(self, input_, syn=None, mem=None):
        if self.step_mode == "single":
            return super().forward(input_, syn, mem)
        if self.init_hidden and (syn is not None or mem is not None):
            raise TypeError("`mem` or `syn` should not be passed as an argument while `init_hidden=True`")
        input_ = autocast_input(input_, self.beta)
        check_same_device(input_=input_, alpha=self.alpha, beta=self.beta, threshold=self.threshold)
        check_sequence(input_, "input_", min_dim=2, check_values=False)
        step = tuple(input_.shape[1:])
        if self.stateful:
            syn = syn if syn is not None or tuple(self.syn.shape) != step else self.syn
            mem = mem if mem is not None or tuple(self.mem.shape) != step else self.mem
        track = self.stateful or syn is not None or mem is not None
        cfg = LIFConfig(surrogate=self.surrogate, reset_mode=int(self.reset_mechanism_val),
                        backend=self.backend, stats=self._stats)
        alpha = self.alpha.to(input_.dtype) if not self.alpha.is_floating_point() else self.alpha
        spk, syn_seq, mem_seq = synaptic_sequence(input_, alpha, self.beta, self.threshold, cfg, syn, mem, track)
        self._stats = cfg.stats
        if self.training and spk.requires_grad and "total" in cfg.stats:
            self._monitor.update(cfg.stats["active"], cfg.stats["total"], cfg.stats.get("window"),
                                 fixed=not self.surrogate.adaptive)
        if track:  # graph-attached: the next call continues from it (detach_hidden() for TBPTT)
            self.syn, self.mem = syn_seq[-1].clone(), mem_seq[-1].clone()
        else:
            self.syn, self.mem = syn_seq[-1].detach().clone(), mem_seq[-1].detach().clone()
        if self.output or not self.init_hidden:
            return spk, syn_seq, mem_seq
        return spk

    def extra_repr(self) -> str:
        return f"step_mode={self.step_mode!r}, spike_grad={self.surrogate!r}"


class SparseLinearSynaptic(FusedLinearMixin, StatefulMixin, nn.Module):
    """``nn.Linear`` followed by ``snn.Synaptic`` over a whole sequence, with a sparse backward.

    Arguments as :class:`~snntorch_sparse.SparseLinearLeaky`, plus ``alpha`` and
    ``learn_alpha`` (the synaptic decay). Input ``[T, B, in]``, output spikes
    ``[T, B, out]``; ``(spk, syn, mem)`` with ``output=True`` or
    ``init_hidden=False`` (snnTorch's ``Synaptic`` convention). ``stateful=True``
    continues each call from the previous call's final ``syn`` / ``mem``
    (``layer.syn``, ``layer.mem``); ``syn=`` / ``mem=`` give them explicitly.
    ``event_forward``: as :class:`~snntorch_sparse.SparseLinearLeaky` (``None``: the input
    current summed over the input's spikes on the CPU when sparse; ``False``: one GEMM,
    bit-identical to snnTorch's ``nn.Linear``).
    """

    multi_step = True
    _state_names = ("syn", "mem")
    _snn_family = snn.Synaptic

    def __init__(self, in_features: int, out_features: int, alpha, beta, threshold=1.0, spike_grad=None,
                 bth=None, bias: bool = True, learn_alpha: bool = False, learn_beta: bool = False,
                 learn_threshold: bool = False, reset_mechanism: str = "subtract", output: bool = False,
                 backend=None, device=None, dtype=None, *, active_fraction=None, init_hidden: bool = True,
                 stateful: bool = False, event_forward=None):
        super().__init__()
        self._init_state(stateful)
        self.event_forward = event_forward
        check_features(in_features, "in_features")
        check_features(out_features, "out_features")
        check_beta(alpha)
        check_beta(beta)
        check_threshold(threshold)
        self.reset_mode = check_reset(reset_mechanism)
        self.reset_mechanism = reset_mechanism
        self.fc = nn.Linear(in_features, out_features, bias=bias, device=device, dtype=dtype)
        dt = self.fc.weight.dtype
        _as_param(self, "alpha", as_float_param(alpha), learn_alpha, dt, device)
        _as_param(self, "beta", as_float_param(beta), learn_beta, dt, device)
        _as_param(self, "threshold", as_float_param(threshold), learn_threshold, dt, device)
        self.surrogate = resolve_surrogate(spike_grad, bth, active_fraction)
        self.output = output
        self.init_hidden = bool(init_hidden)
        self.backend = backend
        self._stats: dict = {}
        self._monitor = ActivityMonitor(f"SparseLinearSynaptic({in_features}->{out_features})")

    def forward(self, x: torch.Tensor, syn=None, mem=None):
        x = self._checked_input(x)
        step = (*x.shape[1:-1], self.out_features)
        syn0, mem0 = self._initial("syn", syn, step), self._initial("mem", mem, step)
        track = self.stateful or syn is not None or mem is not None
        cfg = LIFConfig(surrogate=self.surrogate, reset_mode=self.reset_mode, backend=self.backend,
                        stats=self._stats)
        current = event_linear(x, self.weight, self.bias, self.backend, self.event_forward)
        spk, syn_seq, mem_seq = synaptic_sequence(current, self.alpha, self.beta, self.threshold, cfg,
                                                  syn0, mem0, track)
        self._stats = cfg.stats
        if self.training and spk.requires_grad and "total" in cfg.stats:
            self._monitor.update(cfg.stats["active"], cfg.stats["total"], cfg.stats.get("window"),
                                 fixed=not self.surrogate.adaptive)
        self._keep("syn", syn_seq[-1], attached=track)
        self._keep("mem", mem_seq[-1], attached=track)
        if self.output or not self.init_hidden:
            return spk, syn_seq, mem_seq
        return spk

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"reset_mechanism={self.reset_mechanism!r}, spike_grad={self.surrogate!r}")


# --- sparsify / desparsify (called from snntorch_sparse.convert) -------------------------------------

def _multi_step_check(neuron, where: str) -> None:
    bad = [name for name, on in (("inhibition=True", neuron.inhibition), ("state_quant", bool(neuron.state_quant)),
                                 ("reset_delay=False", not neuron.reset_delay),
                                 ("surrogate_disable=True", getattr(neuron, "surrogate_disable", False))) if on]
    if bad:
        raise ValueError(f"sparsify: the snn.Synaptic at {where} uses {', '.join(bad)}, which the multi-step "
                         "sparse layers do not support; remove the option or keep this neuron in snnTorch")


def _alpha_of(neuron, where: str):
    alpha = as_float_param(neuron.alpha.detach().clone())
    if not torch.isfinite(alpha).all():
        raise ValueError(f"sparsify: alpha of the snn.Synaptic at {where} contains NaN or inf")
    return alpha


def sparse_synaptic_from(neuron, step_mode: str, bth, spike_grad, backend, where: str,
                         active_fraction=None) -> SparseSynaptic:
    """A :class:`SparseSynaptic` with ``neuron``'s parameters and options."""
    from .convert import _beta_threshold, _check_shape, _is_param, _output_full
    beta, threshold = _beta_threshold(neuron, where)
    alpha = _alpha_of(neuron, where)
    extra = {}
    if step_mode == "multi":
        _multi_step_check(neuron, where)
        for name, t in (("alpha", alpha), ("beta", beta), ("threshold", threshold)):
            _check_shape(t, name, where, None)
    else:
        extra = dict(surrogate_disable=getattr(neuron, "surrogate_disable", False), inhibition=neuron.inhibition,
                     state_quant=neuron.state_quant, reset_delay=neuron.reset_delay)
    sg = _output_full(resolve_surrogate(spike_grad if spike_grad is not None else neuron.spike_grad, bth,
                                        active_fraction), neuron, active_fraction)
    new = SparseSynaptic(alpha=alpha.clamp(0, 1), beta=beta.clamp(0, 1), threshold=threshold, spike_grad=sg,
                         learn_alpha=_is_param(neuron.alpha), learn_beta=_is_param(neuron.beta),
                         learn_threshold=_is_param(neuron.threshold), reset_mechanism=neuron.reset_mechanism,
                         init_hidden=neuron.init_hidden, output=neuron.output, step_mode=step_mode,
                         backend=backend, **extra)
    with torch.no_grad():  # unclamped, as in snnTorch; the forward clamps
        new.alpha.copy_(alpha)
        new.beta.copy_(beta)
    new.train(neuron.training)
    return new.to(neuron.beta.device)


def fuse_synaptic(linear: nn.Linear, neuron, bth, spike_grad, backend, where: str,
                  active_fraction=None, event_forward=None) -> SparseLinearSynaptic:
    """``nn.Linear`` + ``snn.Synaptic`` as one :class:`SparseLinearSynaptic` (same parameters)."""
    from .convert import _beta_threshold, _check_shape, _is_param, _output_full
    _multi_step_check(neuron, where)
    beta, threshold = _beta_threshold(neuron, where)
    alpha = _alpha_of(neuron, where)
    for name, t in (("alpha", alpha), ("beta", beta), ("threshold", threshold)):
        _check_shape(t, name, where, linear.out_features)
    sg = _output_full(resolve_surrogate(spike_grad if spike_grad is not None else neuron.spike_grad, bth,
                                        active_fraction), neuron, active_fraction)
    with torch.random.fork_rng(devices=[]):
        layer = SparseLinearSynaptic(linear.in_features, linear.out_features, alpha=alpha.clamp(0, 1),
                                     beta=beta.clamp(0, 1), threshold=threshold, spike_grad=sg,
                                     bias=linear.bias is not None, learn_alpha=_is_param(neuron.alpha),
                                     learn_beta=_is_param(neuron.beta),
                                     learn_threshold=_is_param(neuron.threshold),
                                     reset_mechanism=neuron.reset_mechanism, output=neuron.output,
                                     backend=backend, device=linear.weight.device, dtype=linear.weight.dtype,
                                     event_forward=event_forward)
    layer._monitor.name = f"{where} ({layer._monitor.name})"
    with torch.no_grad():
        layer.fc.weight.copy_(linear.weight)
        if linear.bias is not None:
            layer.fc.bias.copy_(linear.bias)
        layer.alpha.copy_(alpha)
        layer.beta.copy_(beta)
    layer.train(neuron.training)
    return layer


def dense_synaptic_from(m, init_hidden: bool, output: bool) -> snn.Synaptic:
    """The snnTorch ``Synaptic`` of a sparse one (its clamped surrogate kept)."""
    from .convert import _is_param
    extra = {}
    if isinstance(m, snn.Synaptic):
        extra = dict(surrogate_disable=getattr(m, "surrogate_disable", False), inhibition=m.inhibition,
                     state_quant=m.state_quant, reset_delay=m.reset_delay)
    neuron = snn.Synaptic(alpha=m.alpha.detach().clone(), beta=m.beta.detach().clone(),
                          threshold=m.threshold.detach().clone(), spike_grad=m.surrogate,
                          learn_alpha=_is_param(m.alpha), learn_beta=_is_param(m.beta),
                          learn_threshold=_is_param(m.threshold), reset_mechanism=m.reset_mechanism,
                          init_hidden=init_hidden, output=output, **extra)
    neuron.train(m.training)
    return neuron.to(m.beta.device)
