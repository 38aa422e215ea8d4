r"""Sparse counterparts of snnTorch's ``RSynaptic`` (recurrent second-order LIF).

snnTorch 1.0's update (``reset_delay=True``; the reset is detached, the recurrent
input is not)::

    R[t] = H(U[t-1] - θ)                           (= S[t-1] for t > 0)
    J[t] = (α·J[t-1] + I[t]) + rec(S[t-1])         synaptic current
    rec(S) = S Vᵀ + b_V                            all_to_all (``recurrent = nn.Linear(N, N)``)
           = S · V                                 one-to-one (``V`` scalar or [N])
    base[t] = β·U[t-1] + J[t]
    U[t] = base[t] - R[t]·θ | base[t] - base[t]·R[t] ("zero") | base[t] ("none")
    S[t] = H(U[t] - θ)

with ``J[-1] = syn0``, ``U[-1] = mem0``, ``S[-1] = spk0`` (zero by default; ``rec(0) = b_V``
still enters step 0, as in snnTorch). The "zero" reset zeroes the membrane only,
never ``J`` (snnTorch subtracts ``0·R`` from it).

Backward with the clamped surrogate, in reverse time, with ``a[t] = ∂L/∂base[t]``
and ``c[t] = ∂L/∂J[t]``::

    ∂L/∂S[t] = (∂L/∂S[t])_ext + c[t+1] V              all_to_all   (c[t+1]·V one-to-one)
    g[t]     = ∂L/∂S[t] · σ'(U[t] - θ)   only on the active set A_t = {|U[t] - θ| < B}
    a[t]     = (g[t] + (∂L/∂U[t])_ext + β·a[t+1]) · (1 - R[t])^{zero}
    c[t]     = (a[t] + (∂L/∂J[t])_ext) + α·c[t+1]

The recurrent term is the RLeaky one of :mod:`snntorch_sparse.recurrent` with the
synaptic adjoint ``c`` in place of ``a``: one dot product of ``c[t+1][b, :]`` with
one column ``V[:, n]`` per active ``(b, n)``, so step ``t`` costs ``|A_t|·N``
multiply-adds (``|A|·N`` in all, never the dense ``T·B·N²`` of autograd's
``c[t+1] V`` for every entry), plus ``O(B·N)`` elementwise for the two decays.
(When more than an eighth of a step's entries are active, the reference loop uses
one ``[B, N]×[N, N]`` GEMM for that step instead.) Then::

    ∂L/∂I[t] = c[t]     ∂L/∂V = Σ_t c[t]ᵀ S[t-1] (over spike events)     ∂L/∂b_V = Σ_t c[t]
    ∂L/∂α = Σ c[t]·J[t-1]     ∂L/∂β = Σ a[t]·U[t-1]     ∂L/∂θ = -Σ g - Σ a[t]·R[t] (subtract)
    ∂L/∂syn0 = α·c[0]     ∂L/∂mem0 = β·a[0]     ∂L/∂spk0 = c[0] V

Saved for the backward: the spikes (bool), the active set (int64 index + σ' per
active entry), ``V`` and the initial state; ``J`` only for a learnable ``α``, ``U``
only for a learnable ``β``.

Forward: a loop over time with one ``[B, N]×[N, N]`` GEMM per step (the same
``F.linear`` call as snnTorch's ``recurrent``, so all states are bit-identical).
Backward: the C++ kernel ``csrc/cpu/rsynaptic.cpp`` (which runs the row function of
``csrc/cuda/rsynaptic_backward.cuh``, also the CUDA body) on the compiled backend,
else the PyTorch loop :func:`_backward_loop`.
"""
from __future__ import annotations

import snntorch as snn
import torch
import torch.nn.functional as F
from torch import nn

from ._activity import ActivityMonitor
from ._fused_layer import FusedLinearMixin
from ._neuron_views import SparseNeuronViews
from ._sequence import active_set, as_tensor_like, register_param, shifted, state_rows
from ._validation import (as_float_param, autocast_input, check_beta, check_features, check_reset, check_same_device,
                          check_sequence, check_threshold, check_unit, per_feature)
from .fused_cpu import dense_grad, first_order_only
from .functional import LIFConfig
from .neurons import resolve_surrogate
from .ops import get_backend
from .recurrent import _check_rleaky, _copy_recurrent, _kernel_applies, _learn_recurrent, _reduce
from .state import StatefulMixin, event_linear

__all__ = ["SparseRSynaptic", "SparseLinearRSynaptic", "rsynaptic_sequence"]

# Above this fraction of a step's entries active, the reference loop's recurrent term is one GEMM.
_DENSE_STEP_FRACTION = 1.0 / 8
# The C++ backward (per-entry dot products) runs up to this fraction of active entries overall.
_KERNEL_MAX_FRACTION = 1.0 / 8


def _inside(p: torch.Tensor, dtype) -> torch.Tensor:
    """``clamp(0, 1)``'s gradient mask (inclusive bounds, as PyTorch's clamp)."""
    return ((p >= 0) & (p <= 1)).to(dtype)


class _RSynapticScan(torch.autograd.Function):
    """Whole-sequence RSynaptic on ``[T, R, N]`` currents (see the module docstring)."""

    @staticmethod
    def forward(ctx, current, weight, bias, v, alpha, beta, threshold, syn0, mem0, spk0, cfg: LIFConfig):
        T, R, N = current.shape
        dtype, device = current.dtype, current.device
        alpha_c = per_feature(alpha.clamp(0, 1), N, "alpha", current)
        beta_c = per_feature(beta.clamp(0, 1), N, "beta", current)
        thr = per_feature(threshold, N, "threshold", current)
        zero = torch.zeros(R, N, dtype=dtype, device=device)
        j = zero if syn0 is None else syn0
        u = zero if mem0 is None else mem0
        s = zero if spk0 is None else spk0.to(dtype)
        syn = torch.empty_like(current)
        mem = torch.empty_like(current)
        spk = torch.empty_like(current)
        mode = cfg.reset_mode
        reset = (u - thr > 0).to(dtype)  # R[0] = H(mem0 - θ); later R[t] = S[t-1], the same comparison
        for t in range(T):
            rec = F.linear(s, weight, bias) if weight is not None else s * v
            jt = torch.mul(alpha_c, j, out=syn[t])  # (α·J + I) + rec, snnTorch's order, in place
            jt.add_(current[t]).add_(rec)
            base = torch.mul(beta_c, u, out=mem[t])  # β·U + J
            base.add_(jt)
            if mode == 0:
                base.sub_(reset * thr)
            elif mode == 1:
                base.sub_(base * reset)
            j, u = jt, base
            # a fresh (aligned) tensor as snnTorch's: the BLAS may round differently on an offset view
            s = (u - thr > 0).to(dtype)
            spk[t].copy_(s)
            reset = s
        act_idx, act_sg, bounds = active_set(mem, thr, cfg)
        needs = ctx.needs_input_grad
        ctx.save_for_backward(weight, v, alpha, beta, threshold, alpha_c, beta_c, thr, act_idx, act_sg,
                              spk.bool(), syn if needs[4] else None, mem if needs[5] else None, syn0, mem0, spk0)
        ctx.bounds, ctx.mode, ctx.shape, ctx.backend = bounds, mode, (T, R, N), cfg.backend
        ctx.set_materialize_grads(False)
        return spk, syn, mem

    @staticmethod
    @first_order_only
    def backward(ctx, d_spk, d_syn, d_mem):
        (weight, v, alpha, beta, threshold, alpha_c, beta_c, thr, act_idx, act_sg, spk_bool, syn, mem,
         j0, u0, s0) = ctx.saved_tensors
        T, R, N = ctx.shape
        mode = ctx.mode
        dtype, device = act_sg.dtype, act_sg.device
        needs = ctx.needs_input_grad
        grads = [None if g is None else dense_grad(g).reshape(T, R, N) for g in (d_spk, d_syn, d_mem)]
        wt = weight.t().contiguous() if weight is not None else None  # wt[n] = V[:, n]
        v_vec = None if weight is not None else per_feature(v, N, "V", act_sg)
        keep0 = (u0 - thr <= 0).to(dtype).contiguous() if mode == 1 and u0 is not None else None
        need_a = needs[5] or needs[8] or (needs[6] and mode == 0)
        if _kernel_ok(ctx.backend, act_sg) and act_idx.numel() <= _KERNEL_MAX_FRACTION * T * R * N:
            rows = torch.div(act_idx, N, rounding_mode="floor")
            rowptr = torch.zeros(T * R + 1, dtype=torch.long, device=device)
            rowptr[1:] = torch.bincount(rows, minlength=T * R).cumsum(0)
            a, c, g_all = torch.ops.snntorch_sparse.rsynaptic_backward(
                rowptr, act_idx - rows * N, act_sg, *grads, alpha_c, beta_c, wt, v_vec,
                spk_bool if mode == 1 else None, keep0, mode, T, R, N, need_a)
        else:
            a, c, g_all = _backward_loop(act_idx, act_sg, ctx.bounds, *grads, alpha_c, beta_c, weight, wt, v_vec,
                                         spk_bool, keep0, mode, T, R, N, need_a)
        d_cur = dw = db = dv = dalpha = dbeta = dthr = dsyn0 = dmem0 = dspk0 = None
        if needs[0]:
            d_cur = c
        if weight is not None and needs[1]:
            # Σ_t c[t]ᵀ S[t-1] over the spike events only (the fused layers' sparse dW kernel)
            ev = spk_bool[:-1].reshape(-1).nonzero().squeeze(1)
            dw = get_backend(ctx.backend, device).sparse_weight_grad(c[1:].reshape(-1, N), ev, None, N) \
                if T > 1 else torch.zeros(N, N, dtype=dtype, device=device)
            if s0 is not None:
                dw = dw + c[0].t() @ s0.to(dtype)
        if weight is not None and needs[2]:
            db = c.reshape(-1, N).sum(0)
        if weight is None and needs[3]:
            prev_s = shifted(spk_bool.to(dtype), None if s0 is None else s0.to(dtype))
            dv = _reduce((c * prev_s).sum((0, 1)), v)
        if needs[4]:
            dalpha = _reduce((c * shifted(syn, j0)).sum((0, 1)), alpha) * _inside(alpha, dtype)
        if needs[5]:
            dbeta = _reduce((a * shifted(mem, u0)).sum((0, 1)), beta) * _inside(beta, dtype)
        if needs[6]:
            dthr_n = torch.zeros(N, dtype=dtype, device=device)
            dthr_n.index_add_(0, act_idx % N, -g_all)
            if mode == 0:
                reset = shifted(spk_bool.to(dtype), None if u0 is None else (u0 - thr > 0).to(dtype))
                dthr_n = dthr_n - (a * reset).sum((0, 1))
            dthr = _reduce(dthr_n, threshold)
        if needs[7]:
            dsyn0 = alpha_c * c[0]
        if needs[8]:
            dmem0 = beta_c * a[0]
        if needs[9]:
            dspk0 = c[0] @ weight if weight is not None else c[0] * v_vec
        return d_cur, dw, db, dv, dalpha, dbeta, dthr, dsyn0, dmem0, dspk0, None


def _kernel_ok(backend, like: torch.Tensor) -> bool:
    """The compiled backward applies: CPU, or CUDA where ``rsynaptic_backward`` has a CUDA kernel
    (``csrc/cuda/neurons_launch.cu`` built); float32/64; the compiled backend builds."""
    return _kernel_applies(backend, like, "rsynaptic_backward")


def _backward_loop(act_idx, act_sg, bounds, d_spk, d_syn, d_mem, alpha_c, beta_c, weight, wt, v_vec, spk_bool,
                   keep0, mode, T, R, N, need_a=True):
    """Reference (pure PyTorch) form of the reverse-time loop: ``(a, c, g)`` (``a`` empty unless ``need_a``).

    The same expressions, in the same order, as ``csrc/cuda/rsynaptic_backward.cuh``
    except the recurrent dot products (summed here by ``torch.sum``).
    """
    dtype, device = act_sg.dtype, act_sg.device
    a = torch.empty(T, R, N, dtype=dtype, device=device) if need_a else torch.empty(0, dtype=dtype, device=device)
    c = torch.empty(T, R, N, dtype=dtype, device=device)
    a_next = torch.zeros(R, N, dtype=dtype, device=device)
    c_next = torch.zeros(R, N, dtype=dtype, device=device)
    g_all = torch.zeros(act_idx.numel(), dtype=dtype, device=device)
    d_spk_flat = None if d_spk is None else d_spk.reshape(T, R * N)
    for t in range(T - 1, -1, -1):
        du = beta_c * a_next
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
                    ds = ds + c_next.view(-1).index_select(0, loc) * v_vec.index_select(0, n_i)
                elif (e - s) > _DENSE_STEP_FRACTION * R * N:
                    ds = ds + (c_next @ weight).view(-1).index_select(0, loc)
                else:
                    ds = ds + (c_next.index_select(0, b_i) * wt.index_select(0, n_i)).sum(1)
            g = ds * act_sg[s:e]
            g_all[s:e] = g
            du.view(-1).index_put_((loc,), g, accumulate=True)
        if mode == 1:
            if t > 0:
                du = du * (~spk_bool[t - 1]).to(dtype)
            elif keep0 is not None:
                du = du * keep0
        if need_a:
            a[t] = du
        ct = du + d_syn[t] if d_syn is not None else du
        ct = ct + alpha_c * c_next
        c[t] = ct
        a_next, c_next = du, ct
    return a, c, g_all


def rsynaptic_sequence(current, weight, bias, v, alpha, beta, threshold, cfg: LIFConfig, syn0=None, mem0=None,
                       spk0=None):
    """Whole-sequence RSynaptic from the current ``[T, B, ..., N]``: ``(spk, syn, mem)``.

    ``weight``/``bias``: the all-to-all recurrent ``nn.Linear(N, N)`` (``v`` ignored),
    or ``weight=None`` and ``v`` (scalar or ``[N]``) for one-to-one connections.
    ``syn0``, ``mem0``, ``spk0``: initial states broadcastable to one step (``None``: zero).
    """
    T, N = current.shape[0], current.shape[-1]
    c3 = current.reshape(T, -1, N)
    R = c3.shape[1]
    alpha, beta, threshold = (as_tensor_like(x, current) for x in (alpha, beta, threshold))
    if v is not None:
        v = as_tensor_like(v, current)
    states = state_rows(current, R, N, syn=syn0, mem=mem0, spk=spk0)
    spk, syn, mem = _RSynapticScan.apply(c3, weight, bias, v, alpha, beta, threshold, *states, cfg)
    return spk.view(current.shape), syn.view(current.shape), mem.view(current.shape)


class SparseRSynaptic(SparseNeuronViews, snn.RSynaptic):
    """Drop-in :class:`snntorch.RSynaptic` with a sparse surrogate gradient.

    Takes every argument of :class:`snntorch.RSynaptic` (``all_to_all`` with
    ``linear_features``, or one-to-one ``V``; ``alpha``/``beta`` decays and their
    ``learn_*`` flags) plus ``bth``, ``active_fraction``, ``step_mode``, ``backend``
    and ``stateful`` as :class:`~snntorch_sparse.SparseLeaky`. ``step_mode="single"``:
    snnTorch's neuron, one step per call, with the sparse surrogate.
    ``step_mode="multi"`` takes the current ``[T, B, N]`` and returns ``(spk, syn, mem)``
    sequences (``spk`` alone with ``init_hidden=True`` and not ``output``), with the
    sparse recurrent backward of :mod:`snntorch_sparse.rsynaptic` (``|A_t|·N``
    multiply-adds per step for the recurrent term); ``spk=`` / ``syn=`` / ``mem=``
    give the initial state, ``stateful=True`` continues from the previous call's.
    (Convolutional recurrence, ``conv2d_channels``, runs in ``step_mode="single"`` only.)

    Example::

        lif = SparseRSynaptic(alpha=0.9, beta=0.8, linear_features=200, bth=0.2, step_mode="multi")
        spk, syn, mem = lif(torch.randn(100, 32, 200))
    """

    def __init__(self, alpha, beta, V=1.0, all_to_all=True, linear_features=None, conv2d_channels=None,
                 kernel_size=None, threshold=1.0, spike_grad=None, surrogate_disable=False, init_hidden=False,
                 inhibition=False, learn_alpha=False, learn_beta=False, learn_threshold=False,
                 learn_recurrent=True, reset_mechanism="subtract", state_quant=False, output=False,
                 reset_delay=True, bth=None, step_mode="single", backend=None, active_fraction=None,
                 stateful=False):
        if step_mode not in ("single", "multi"):
            raise ValueError(f"step_mode must be 'single' or 'multi', got {step_mode!r}")
        check_unit(alpha, "alpha")
        check_beta(beta)
        check_threshold(threshold)
        check_reset(reset_mechanism)
        alpha, beta, threshold = as_float_param(alpha), as_float_param(beta), as_float_param(threshold)
        surrogate = resolve_surrogate(spike_grad, bth, active_fraction)
        super().__init__(alpha, beta, V=V, all_to_all=all_to_all, linear_features=linear_features,
                         conv2d_channels=conv2d_channels, kernel_size=kernel_size, threshold=threshold,
                         spike_grad=surrogate, surrogate_disable=surrogate_disable, init_hidden=init_hidden,
                         inhibition=inhibition, learn_alpha=learn_alpha, learn_beta=learn_beta,
                         learn_threshold=learn_threshold, learn_recurrent=learn_recurrent,
                         reset_mechanism=reset_mechanism, state_quant=state_quant, output=output,
                         reset_delay=reset_delay)
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
            bad = [k for k, on in {"inhibition": inhibition, "state_quant": bool(state_quant),
                                   "surrogate_disable": surrogate_disable, "reset_delay=False": not reset_delay,
                                   "conv2d_channels": bool(conv2d_channels)}.items() if on]
            if bad:
                raise ValueError(f"step_mode='multi' does not support {', '.join(bad)}; "
                                 "use step_mode='single' for these features")

    def forward(self, input_, spk=None, syn=None, mem=None):
        if self.step_mode == "single":
            return super().forward(input_, spk, syn, mem)
        if self.init_hidden and (spk is not None or syn is not None or mem is not None):
            raise TypeError("When `init_hidden=True`, RSynaptic expects 1 input argument.")
        input_ = autocast_input(input_, self.beta)
        check_same_device(input_=input_, alpha=self.alpha, beta=self.beta, threshold=self.threshold)
        check_sequence(input_, "input_", min_dim=2, check_values=False)
        step = tuple(input_.shape[1:])
        given = self._given_or_held({"spk": spk, "syn": syn, "mem": mem}, step)
        track = self.stateful or any(x is not None for x in (spk, syn, mem))
        cfg = LIFConfig(surrogate=self.surrogate, reset_mode=int(self.reset_mechanism_val),
                        backend=self.backend, stats=self._stats)
        w, b, v = (self.recurrent.weight, self.recurrent.bias, None) if self.all_to_all else (None, None, self.V)
        alpha = self.alpha.to(input_.dtype) if not self.alpha.is_floating_point() else self.alpha
        spk_seq, syn_seq, mem_seq = rsynaptic_sequence(input_, w, b, v, alpha, self.beta, self.threshold, cfg,
                                                       given["syn"], given["mem"], given["spk"])
        self._stats = cfg.stats
        if self.training and spk_seq.requires_grad:
            self._monitor.update(cfg.stats["active"], cfg.stats["total"], cfg.stats.get("window"),
                                 fixed=not self.surrogate.adaptive)
        for name, seq in (("spk", spk_seq), ("syn", syn_seq), ("mem", mem_seq)):
            # graph-attached when it feeds the next call (detach_hidden() for truncated BPTT)
            setattr(self, name, seq[-1].clone() if track else seq[-1].detach().clone())
        if self.output or not self.init_hidden:
            return spk_seq, syn_seq, mem_seq
        return spk_seq

    def extra_repr(self) -> str:
        return f"step_mode={self.step_mode!r}, spike_grad={self.surrogate!r}"


class SparseLinearRSynaptic(FusedLinearMixin, StatefulMixin, nn.Module):
    """``nn.Linear`` followed by ``snn.RSynaptic`` over a whole sequence, with a sparse backward.

    Arguments as :class:`~snntorch_sparse.SparseLinearRLeaky`, plus ``alpha`` and
    ``learn_alpha`` (the synaptic decay). Input ``[T, B, in]``; returns ``spk``
    ``[T, B, out]``, or ``(spk, syn, mem)`` with ``output=True`` or
    ``init_hidden=False`` (snnTorch's ``RSynaptic`` convention). ``stateful=True``
    continues each call from the previous call's final ``spk`` / ``syn`` / ``mem``
    (``layer.spk``, ``layer.syn``, ``layer.mem``); ``spk=`` / ``syn=`` / ``mem=`` give
    them explicitly. The recurrent backward costs ``|A_t|·N`` multiply-adds at step
    ``t`` (:mod:`snntorch_sparse.rsynaptic`). ``event_forward``: as
    :class:`~snntorch_sparse.SparseLinearLeaky`.
    """

    multi_step = True
    _state_names = ("spk", "syn", "mem")
    _snn_family = snn.RSynaptic

    def __init__(self, in_features: int, out_features: int, alpha, beta, V=1.0, all_to_all: bool = True,
                 threshold=1.0, spike_grad=None, bth=None, bias: bool = True, learn_alpha: bool = False,
                 learn_beta: bool = False, learn_threshold: bool = False, learn_recurrent: bool = True,
                 reset_mechanism: str = "subtract", output: bool = False, backend=None, device=None, dtype=None, *,
                 active_fraction=None, init_hidden: bool = True, stateful: bool = False, event_forward=None):
        super().__init__()
        self._init_state(stateful)
        self.event_forward = event_forward
        check_features(in_features, "in_features")
        check_features(out_features, "out_features")
        check_unit(alpha, "alpha")
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
            register_param(self, "V", V, learn_recurrent, dt, device)
        register_param(self, "alpha", alpha, learn_alpha, dt, device)
        register_param(self, "beta", beta, learn_beta, dt, device)
        register_param(self, "threshold", threshold, learn_threshold, dt, device)
        self.surrogate = resolve_surrogate(spike_grad, bth, active_fraction)
        self.output = output
        self.init_hidden = bool(init_hidden)
        self.backend = backend
        self._stats: dict = {}
        self._monitor = ActivityMonitor(f"SparseLinearRSynaptic({in_features}->{out_features})")

    def forward(self, x: torch.Tensor, spk=None, syn=None, mem=None):
        x = self._checked_input(x)
        step = (*x.shape[1:-1], self.out_features)
        spk0, syn0, mem0 = (self._initial(n, g, step) for n, g in (("spk", spk), ("syn", syn), ("mem", mem)))
        track = self.stateful or any(g is not None for g in (spk, syn, mem))
        cfg = LIFConfig(surrogate=self.surrogate, reset_mode=self.reset_mode, backend=self.backend,
                        stats=self._stats)
        current = event_linear(x, self.weight, self.bias, self.backend, self.event_forward)
        w, b, v = (self.recurrent.weight, self.recurrent.bias, None) if self.all_to_all else (None, None, self.V)
        spk_seq, syn_seq, mem_seq = rsynaptic_sequence(current, w, b, v, self.alpha, self.beta, self.threshold,
                                                       cfg, syn0, mem0, spk0)
        self._stats = cfg.stats
        if self.training and spk_seq.requires_grad:
            self._monitor.update(cfg.stats["active"], cfg.stats["total"], cfg.stats.get("window"),
                                 fixed=not self.surrogate.adaptive)
        for name, seq in (("spk", spk_seq), ("syn", syn_seq), ("mem", mem_seq)):
            self._keep(name, seq[-1], attached=track)
        if self.output or not self.init_hidden:
            return spk_seq, syn_seq, mem_seq
        return spk_seq

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"all_to_all={self.all_to_all}, reset_mechanism={self.reset_mechanism!r}, "
                f"spike_grad={self.surrogate!r}")


# --- sparsify / desparsify (called from snntorch_sparse.convert) -------------------------------------

def _alpha_of(neuron, where: str):
    alpha = as_float_param(neuron.alpha.detach().clone())
    if not torch.isfinite(alpha).all():
        raise ValueError(f"sparsify: alpha of the {type(neuron).__name__} at {where} contains NaN or inf")
    return alpha


def _check_rsynaptic(neuron, where: str) -> None:
    try:
        _check_rleaky(neuron, where)
    except ValueError as exc:
        raise ValueError(str(exc).replace("snn.RLeaky", "snn.RSynaptic")) from None


def sparse_rsynaptic_from(neuron, step_mode: str, bth, spike_grad, backend, where: str,
                          active_fraction=None) -> SparseRSynaptic:
    """A :class:`SparseRSynaptic` with ``neuron``'s parameters and options."""
    from .convert import _beta_threshold, _check_shape, _is_param, _output_full
    beta, threshold = _beta_threshold(neuron, where)
    alpha = _alpha_of(neuron, where)
    extra = {}
    if step_mode == "multi":
        _check_rsynaptic(neuron, where)
        for name, t in (("alpha", alpha), ("beta", beta), ("threshold", threshold)):
            _check_shape(t, name, where, neuron.linear_features)
    else:
        extra = dict(surrogate_disable=getattr(neuron, "surrogate_disable", False), inhibition=neuron.inhibition,
                     state_quant=neuron.state_quant, reset_delay=neuron.reset_delay,
                     conv2d_channels=neuron.conv2d_channels, kernel_size=neuron.kernel_size)
    sg = _output_full(resolve_surrogate(spike_grad if spike_grad is not None else neuron.spike_grad, bth,
                                        active_fraction), neuron, active_fraction)
    with torch.random.fork_rng(devices=[]):
        new = SparseRSynaptic(alpha=alpha.clamp(0, 1), beta=beta.clamp(0, 1), threshold=threshold, spike_grad=sg,
                              V=neuron.V.detach().clone() if not neuron.all_to_all else 1.0,
                              all_to_all=neuron.all_to_all, linear_features=neuron.linear_features,
                              learn_alpha=_is_param(neuron.alpha), learn_beta=_is_param(neuron.beta),
                              learn_threshold=_is_param(neuron.threshold),
                              learn_recurrent=_learn_recurrent(neuron), reset_mechanism=neuron.reset_mechanism,
                              init_hidden=neuron.init_hidden, output=neuron.output, step_mode=step_mode,
                              backend=backend, **extra)
    new = new.to(neuron.beta.device)
    if neuron.all_to_all:
        new.recurrent = new.recurrent.to(neuron.recurrent.weight.dtype)
        _copy_recurrent(new, neuron)
    with torch.no_grad():  # unclamped, as in snnTorch; the forward clamps
        new.alpha.copy_(alpha)
        new.beta.copy_(beta)
    new.train(neuron.training)
    return new


def fuse_rsynaptic(linear: nn.Linear, neuron, bth, spike_grad, backend, where: str,
                   active_fraction=None, event_forward=None) -> SparseLinearRSynaptic:
    """``nn.Linear`` + ``snn.RSynaptic`` as one :class:`SparseLinearRSynaptic` (same parameters)."""
    from .convert import _beta_threshold, _check_shape, _is_param, _output_full
    _check_rsynaptic(neuron, where)
    beta, threshold = _beta_threshold(neuron, where)
    alpha = _alpha_of(neuron, where)
    for name, t in (("alpha", alpha), ("beta", beta), ("threshold", threshold)):
        _check_shape(t, name, where, linear.out_features)
    sg = _output_full(resolve_surrogate(spike_grad if spike_grad is not None else neuron.spike_grad, bth,
                                        active_fraction), neuron, active_fraction)
    with torch.random.fork_rng(devices=[]):
        layer = SparseLinearRSynaptic(linear.in_features, linear.out_features, alpha=alpha.clamp(0, 1),
                                      beta=beta.clamp(0, 1),
                                      V=neuron.V.detach().clone() if not neuron.all_to_all else 1.0,
                                      all_to_all=neuron.all_to_all, threshold=threshold, spike_grad=sg,
                                      bias=linear.bias is not None, learn_alpha=_is_param(neuron.alpha),
                                      learn_beta=_is_param(neuron.beta),
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
        layer.alpha.copy_(alpha)
        layer.beta.copy_(beta)
    if neuron.all_to_all and neuron.recurrent.bias is None:
        layer.recurrent.bias = None
    _copy_recurrent(layer, neuron)
    layer.train(neuron.training)
    return layer


def dense_rsynaptic_from(m, init_hidden: bool, output: bool) -> snn.RSynaptic:
    """The snnTorch ``RSynaptic`` of a sparse one (its clamped surrogate and recurrent weights kept)."""
    from .convert import _is_param
    extra = {}
    if isinstance(m, snn.RSynaptic):
        extra = dict(surrogate_disable=getattr(m, "surrogate_disable", False), inhibition=m.inhibition,
                     state_quant=m.state_quant, reset_delay=m.reset_delay)
    n = m.recurrent.weight.shape[0] if m.all_to_all else None
    learn_rec = (any(p.requires_grad for p in m.recurrent.parameters()) if m.all_to_all
                 else isinstance(m.V, nn.Parameter))
    with torch.random.fork_rng(devices=[]):
        neuron = snn.RSynaptic(alpha=m.alpha.detach().clone(), beta=m.beta.detach().clone(),
                               threshold=m.threshold.detach().clone(),
                               V=m.V.detach().clone() if not m.all_to_all else 1.0, all_to_all=m.all_to_all,
                               linear_features=n, spike_grad=m.surrogate, learn_alpha=_is_param(m.alpha),
                               learn_beta=_is_param(m.beta), learn_threshold=_is_param(m.threshold),
                               learn_recurrent=learn_rec, reset_mechanism=m.reset_mechanism,
                               init_hidden=init_hidden, output=output, **extra)
    neuron = neuron.to(m.beta.device)
    if m.all_to_all:
        neuron.recurrent = neuron.recurrent.to(m.recurrent.weight.dtype)
        if m.recurrent.bias is None:
            neuron.recurrent.bias = None
        _copy_recurrent(neuron, m)
    else:
        neuron.recurrent.V = neuron.V  # snnTorch's one-to-one module keeps its own reference
    neuron.train(m.training)
    return neuron
