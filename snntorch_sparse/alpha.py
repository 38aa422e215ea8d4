r"""Sparse counterparts of snnTorch's ``Alpha`` neuron.

snnTorch 1.0's update (reset detached, ``R[t] = H(U[t-1] - θ)``, ``U[-1] = mem0``)::

    E'[t] = α·E[t-1] + I[t]                 excitatory current  (``syn_exc``)
    H'[t] = β·H[t-1] - I[t]                 inhibitory current  (``syn_inh``)
    U'[t] = τ_α·(E'[t] + H'[t])             τ_α = log α / (log β - log α) + 1
    subtract: E = E' - θ·R,     H = H' - H'·R,   U = U' - (-H[t-1])·R
    zero:     E = E' - E'·R,    H = H' - H'·R,   U = U' - U'·R
    none:     E = E',           H = H',          U = U'
    S[t] = H(U[t] - θ)

(α, β clamped to [0, 1]; snnTorch requires α > β and β < 1.) The membrane has no
recurrence of its own: the previous membrane only decides the (detached) reset.
So the sparse surrogate enters once per step, ``g[t] = ∂L/∂S[t]·σ'(U[t] - θ)`` on the
active set, and the rest of the backward is two decay scans run backwards. With
``gU[t] = g[t] + (∂L/∂U[t])_ext`` and ``e_E``, ``e_H`` the adjoints of ``E[t]``, ``H[t]``
from the later steps (``ẽ_E = e_E + (∂L/∂E[t])_ext``, likewise ``ẽ_H``)::

    u_E[t] = τ·gU + ẽ_E                 u_H[t] = τ·gU + ẽ_H·(1 - R)     (subtract)
    u_E[t] = (τ·gU + ẽ_E)·(1 - R)       u_H[t] = (τ·gU + ẽ_H)·(1 - R)   (zero)
    u_E[t] = τ·gU + ẽ_E                 u_H[t] = τ·gU + ẽ_H             (none)
    e_E[t-1] = α·u_E[t]                 e_H[t-1] = β·u_H[t] (+ gU[t]·R[t], subtract)
    ∂L/∂I = u_E - u_H      ∂L/∂α|_E = Σ u_E[t]·E[t-1]      ∂L/∂β|_H = Σ u_H[t]·H[t-1]
    ∂L/∂τ = Σ gU·(E' + H')·(1 - R)^{zero}     ∂L/∂θ = -Σ g - Σ ẽ_E·R (subtract)

``∂L/∂τ`` reaches α and β through snnTorch's own ``τ_α`` expression (autograd, outside
the scan). Cost: ``O(|A|)`` for the surrogate term and ``O(T·B·N)`` elementwise for the
scans; there is no recurrent weight. Saved for the backward: the spikes (bool), the
active set (index + σ'), and ``E``, ``H``, ``E' + H'`` only for a learnable α / β.
Backward on the compiled backend: ``csrc/cpu/alpha.cpp``, running the column function
of ``csrc/cuda/alpha_backward.cuh`` (also the CUDA body), else :func:`_backward_loop`.

snnTorch 1.0's ``Alpha(learn_alpha=True)`` fails in its constructor (it assigns the
clamped tensor over the parameter); :class:`SparseAlpha` and :class:`SparseLinearAlpha`
make ``alpha`` a parameter (its clamped value) as intended.
"""
from __future__ import annotations

import snntorch as snn
import torch
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
from .recurrent import _kernel_applies, _reduce
from .state import StatefulMixin, event_linear

__all__ = ["SparseAlpha", "SparseLinearAlpha", "alpha_sequence", "alpha_tau"]


def alpha_tau(alpha_c: torch.Tensor, beta_c: torch.Tensor) -> torch.Tensor:
    """snnTorch's ``τ_α = log α / (log β - log α) + 1`` (same expression, same rounding)."""
    return torch.log(alpha_c) / (torch.log(beta_c) - torch.log(alpha_c)) + 1


def check_alpha_beta(alpha, beta) -> None:
    """snnTorch's ``Alpha`` condition ``alpha > beta`` (both clamped to [0, 1]; it implies
    snnTorch's other one, ``beta != 1``, which keeps ``τ_α`` finite)."""
    a = torch.as_tensor(alpha, dtype=torch.float64).clamp(0, 1)
    b = torch.as_tensor(beta, dtype=torch.float64).clamp(0, 1)
    if a.device.type != "meta" and bool((a <= b).any()):
        raise ValueError(f"alpha must be greater than beta (got alpha={a.tolist()}, beta={b.tolist()})")


class _AlphaScan(torch.autograd.Function):
    """Whole-sequence Alpha neuron on ``[T, R, N]`` currents (see the module docstring)."""

    @staticmethod
    def forward(ctx, current, alpha_c, beta_c, tau, threshold, e0, h0, mem0, cfg: LIFConfig):
        T, R, N = current.shape
        dtype, device = current.dtype, current.device
        a = per_feature(alpha_c, N, "alpha", current)
        b = per_feature(beta_c, N, "beta", current)
        ta = per_feature(tau, N, "tau_alpha", current)
        thr = per_feature(threshold, N, "threshold", current)
        zero = torch.zeros(R, N, dtype=dtype, device=device)
        e = zero if e0 is None else e0
        h = zero if h0 is None else h0
        u0 = zero if mem0 is None else mem0
        needs = ctx.needs_input_grad
        exc, inh, mem, spk = (torch.empty_like(current) for _ in range(4))
        both = torch.empty_like(current) if needs[3] else None
        mode = cfg.reset_mode
        reset = (u0 - thr > 0).to(dtype)
        r0 = reset
        for t in range(T):
            ep = torch.mul(a, e, out=exc[t])  # E' = α·E + I
            ep.add_(current[t])
            hp = torch.mul(b, h, out=inh[t])  # H' = β·H - I
            hp.sub_(current[t])
            s_sum = ep + hp
            if both is not None:
                both[t] = s_sum
            up = torch.mul(ta, s_sum, out=mem[t])  # U' = τ·(E' + H')
            if mode == 0:
                up.sub_((-h) * reset)
                ep.sub_(thr * reset)
                hp.sub_(hp * reset)
            elif mode == 1:
                ep.sub_(ep * reset)
                hp.sub_(hp * reset)
                up.sub_(up * reset)
            e, h = ep, hp
            s = (up - thr > 0).to(dtype)
            spk[t].copy_(s)
            reset = s
        act_idx, act_sg, _ = active_set(mem, thr, cfg)
        ctx.save_for_backward(a, b, ta, alpha_c, beta_c, tau, threshold, thr, act_idx, act_sg, spk.bool(), r0,
                              exc if needs[1] else None, inh if needs[2] else None, both, e0, h0)
        ctx.mode, ctx.shape, ctx.backend = mode, (T, R, N), cfg.backend
        ctx.set_materialize_grads(False)
        return spk, exc, inh, mem

    @staticmethod
    @first_order_only
    def backward(ctx, d_spk, d_exc, d_inh, d_mem):
        (a, b, ta, alpha_c, beta_c, tau, threshold, thr, act_idx, act_sg, spk_bool, r0, exc, inh, both,
         e0, h0) = ctx.saved_tensors
        T, R, N = ctx.shape
        mode = ctx.mode
        dtype, device = act_sg.dtype, act_sg.device
        needs = ctx.needs_input_grad
        d_spk, d_exc, d_inh, d_mem = (None if x is None else dense_grad(x).reshape(T, R, N)
                                      for x in (d_spk, d_exc, d_inh, d_mem))
        gu = d_mem.clone() if d_mem is not None else torch.zeros(T, R, N, dtype=dtype, device=device)
        g = d_spk.reshape(-1).index_select(0, act_idx) * act_sg if d_spk is not None else \
            torch.zeros_like(act_sg)
        gu.view(-1).index_add_(0, act_idx, g)
        if _kernel_ok(ctx.backend, gu):
            ue, uh = torch.ops.snntorch_sparse.alpha_backward(gu, d_exc, d_inh, a, b, ta, spk_bool, r0, mode,
                                                              T, R, N)
        else:
            ue, uh = _backward_loop(gu, d_exc, d_inh, a, b, ta, spk_bool, r0, mode, T, R, N)
        d_cur = da = db = dtau = dthr = de0 = dh0 = None
        if needs[0]:
            d_cur = ue - uh
        if needs[1]:
            da = _reduce((ue * shifted(exc, e0)).sum((0, 1)), alpha_c)
        if needs[2]:
            db = _reduce((uh * shifted(inh, h0)).sum((0, 1)), beta_c)
        reset = shifted(spk_bool.to(dtype), r0) if (needs[3] and mode == 1) or (needs[4] and mode == 0) else None
        if needs[3]:
            k = gu * (1 - reset) if mode == 1 else gu
            dtau = _reduce((k * both).sum((0, 1)), tau)
        if needs[4]:
            dthr_n = torch.zeros(N, dtype=dtype, device=device)
            dthr_n.index_add_(0, act_idx % N, -g)
            if mode == 0:
                e_post = torch.zeros_like(ue)  # ẽ_E[t] = α·u_E[t+1] + (∂L/∂E[t])_ext
                e_post[:-1] = a * ue[1:]
                if d_exc is not None:
                    e_post = e_post + d_exc
                dthr_n = dthr_n - (e_post * reset).sum((0, 1))
            dthr = _reduce(dthr_n, threshold)
        if needs[5]:
            de0 = a * ue[0]
        if needs[6]:
            dh0 = b * uh[0]
            if mode == 0:
                dh0 = dh0 + gu[0] * r0
        return d_cur, da, db, dtau, dthr, de0, dh0, None, None


def _kernel_ok(backend, like: torch.Tensor) -> bool:
    """The compiled backward applies: CPU, or CUDA where ``alpha_backward`` has a CUDA kernel
    (``csrc/cuda/neurons_launch.cu`` built); float32/64; the compiled backend builds."""
    return _kernel_applies(backend, like, "alpha_backward")


def _backward_loop(gu, d_exc, d_inh, a, b, ta, spk_bool, r0, mode, T, R, N):
    """Reference (pure PyTorch) reverse scan: ``(u_E, u_H)``; the expressions of
    ``csrc/cuda/alpha_backward.cuh`` in the same order (bit-identical to the kernel)."""
    ue, uh = torch.empty_like(gu), torch.empty_like(gu)
    e_e = torch.zeros(R, N, dtype=gu.dtype, device=gu.device)
    e_h = torch.zeros_like(e_e)
    for t in range(T - 1, -1, -1):
        eep = e_e + d_exc[t] if d_exc is not None else e_e
        ehp = e_h + d_inh[t] if d_inh is not None else e_h
        r = spk_bool[t - 1].to(gu.dtype) if t > 0 else r0
        g = gu[t]
        tg = ta * g
        if mode == 1:
            x = (tg + eep) * (1 - r)
            y = (tg + ehp) * (1 - r)
        elif mode == 0:
            x = tg + eep
            y = tg + ehp * (1 - r)
        else:
            x = tg + eep
            y = tg + ehp
        ue[t], uh[t] = x, y
        e_e = a * x
        e_h = b * y
        if mode == 0:
            e_h = e_h + g * r
    return ue, uh


def alpha_sequence(current, alpha, beta, threshold, cfg: LIFConfig, syn_exc0=None, syn_inh0=None, mem0=None):
    """Whole-sequence Alpha neuron from the current ``[T, B, ..., N]``: ``(spk, syn_exc, syn_inh, mem)``.

    ``alpha``/``beta`` are clamped to [0, 1] and give ``τ_α`` as in snnTorch (gradients
    reach them through both the decays and ``τ_α``). Initial states broadcast to one
    step (``None``: zero); ``mem0`` only decides the first reset (it gets no gradient,
    as in snnTorch).
    """
    T, N = current.shape[0], current.shape[-1]
    c3 = current.reshape(T, -1, N)
    R = c3.shape[1]
    alpha, beta, threshold = (as_tensor_like(x, current) for x in (alpha, beta, threshold))
    a_c, b_c = alpha.clamp(0, 1), beta.clamp(0, 1)
    tau = alpha_tau(a_c, b_c)
    states = state_rows(current, R, N, syn_exc=syn_exc0, syn_inh=syn_inh0, mem=mem0)
    outs = _AlphaScan.apply(c3, a_c, b_c, tau, threshold, *states, cfg)
    return tuple(o.view(current.shape) for o in outs)


def _learnable_alpha(module: nn.Module) -> None:
    """Make the (clamped) ``alpha`` buffer an ``nn.Parameter`` (what snnTorch's ``learn_alpha`` means)."""
    value = module.alpha.detach().clone()
    del module._buffers["alpha"]
    module.alpha = nn.Parameter(value)


class SparseAlpha(SparseNeuronViews, snn.Alpha):
    """Drop-in :class:`snntorch.Alpha` with a sparse surrogate gradient.

    Takes every argument of :class:`snntorch.Alpha` plus ``bth``, ``active_fraction``,
    ``step_mode``, ``backend`` and ``stateful`` as :class:`~snntorch_sparse.SparseLeaky`.
    ``step_mode="single"``: snnTorch's neuron, one step per call, with the sparse
    surrogate. ``step_mode="multi"`` takes the current ``[T, B, N]`` and returns
    ``(spk, syn_exc, syn_inh, mem)`` sequences (``spk`` alone with ``init_hidden=True``
    and not ``output``); ``syn_exc=`` / ``syn_inh=`` / ``mem=`` give the initial state,
    ``stateful=True`` continues from the previous call's. ``learn_alpha=True`` works
    (snnTorch 1.0's own constructor fails on it).

    Example::

        lif = SparseAlpha(alpha=0.9, beta=0.8, bth=0.2, step_mode="multi")
        spk, syn_exc, syn_inh, mem = lif(torch.randn(100, 32, 200))
    """

    def __init__(self, alpha, beta, threshold=1.0, spike_grad=None, surrogate_disable=False, init_hidden=False,
                 inhibition=False, learn_alpha=False, learn_beta=False, learn_threshold=False,
                 reset_mechanism="zero", state_quant=False, output=False, bth=None, step_mode="single",
                 backend=None, active_fraction=None, stateful=False):
        if step_mode not in ("single", "multi"):
            raise ValueError(f"step_mode must be 'single' or 'multi', got {step_mode!r}")
        check_unit(alpha, "alpha")
        check_beta(beta)
        check_alpha_beta(alpha, beta)
        check_threshold(threshold)
        check_reset(reset_mechanism)
        alpha, beta, threshold = as_float_param(alpha), as_float_param(beta), as_float_param(threshold)
        surrogate = resolve_surrogate(spike_grad, bth, active_fraction)
        super().__init__(alpha, beta, threshold=threshold, spike_grad=surrogate, surrogate_disable=surrogate_disable,
                         init_hidden=init_hidden, inhibition=inhibition, learn_alpha=False, learn_beta=learn_beta,
                         learn_threshold=learn_threshold, reset_mechanism=reset_mechanism, state_quant=state_quant,
                         output=output)
        if learn_alpha:
            _learnable_alpha(self)
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
                                   "surrogate_disable": surrogate_disable}.items() if on]
            if bad:
                raise ValueError(f"step_mode='multi' does not support {', '.join(bad)}; "
                                 "use step_mode='single' for these features")

    def forward(self, input_, syn_exc=None, syn_inh=None, mem=None):
        if self.step_mode == "single":
            return super().forward(input_, syn_exc, syn_inh, mem)
        if self.init_hidden and (syn_exc is not None or syn_inh is not None or mem is not None):
            raise TypeError("When `init_hidden=True`, Alpha expects 1 input argument.")
        input_ = autocast_input(input_, self.beta)
        check_same_device(input_=input_, alpha=self.alpha, beta=self.beta, threshold=self.threshold)
        check_sequence(input_, "input_", min_dim=2, check_values=False)
        step = tuple(input_.shape[1:])
        given = self._given_or_held({"syn_exc": syn_exc, "syn_inh": syn_inh, "mem": mem}, step)
        track = self.stateful or any(x is not None for x in (syn_exc, syn_inh, mem))
        cfg = LIFConfig(surrogate=self.surrogate, reset_mode=int(self.reset_mechanism_val),
                        backend=self.backend, stats=self._stats)
        alpha = self.alpha.to(input_.dtype) if not self.alpha.is_floating_point() else self.alpha
        spk, exc, inh, mem_seq = alpha_sequence(input_, alpha, self.beta, self.threshold, cfg, given["syn_exc"],
                                                given["syn_inh"], given["mem"])
        self._stats = cfg.stats
        if self.training and spk.requires_grad:
            self._monitor.update(cfg.stats["active"], cfg.stats["total"], cfg.stats.get("window"),
                                 fixed=not self.surrogate.adaptive)
        for name, seq in (("syn_exc", exc), ("syn_inh", inh), ("mem", mem_seq)):
            setattr(self, name, seq[-1].clone() if track else seq[-1].detach().clone())
        if self.output or not self.init_hidden:
            return spk, exc, inh, mem_seq
        return spk

    def extra_repr(self) -> str:
        return f"step_mode={self.step_mode!r}, spike_grad={self.surrogate!r}"


class SparseLinearAlpha(FusedLinearMixin, StatefulMixin, nn.Module):
    """``nn.Linear`` followed by ``snn.Alpha`` over a whole sequence, with a sparse backward.

    Arguments as :class:`~snntorch_sparse.SparseLinearSynaptic` (``alpha`` > ``beta``,
    ``beta`` < 1 as snnTorch requires; the default reset is snnTorch's ``"zero"``).
    Input ``[T, B, in]``; returns ``spk`` ``[T, B, out]``, or ``(spk, syn_exc, syn_inh, mem)``
    with ``output=True`` or ``init_hidden=False`` (snnTorch's ``Alpha`` convention).
    ``stateful=True`` continues each call from the previous call's final ``syn_exc`` /
    ``syn_inh`` / ``mem``; they can also be given per call. ``event_forward``: as
    :class:`~snntorch_sparse.SparseLinearLeaky`.
    """

    multi_step = True
    _state_names = ("syn_exc", "syn_inh", "mem")
    _snn_family = snn.Alpha

    def __init__(self, in_features: int, out_features: int, alpha, beta, threshold=1.0, spike_grad=None,
                 bth=None, bias: bool = True, learn_alpha: bool = False, learn_beta: bool = False,
                 learn_threshold: bool = False, reset_mechanism: str = "zero", output: bool = False, backend=None,
                 device=None, dtype=None, *, active_fraction=None, init_hidden: bool = True, stateful: bool = False,
                 event_forward=None):
        super().__init__()
        self._init_state(stateful)
        self.event_forward = event_forward
        check_features(in_features, "in_features")
        check_features(out_features, "out_features")
        check_unit(alpha, "alpha")
        check_beta(beta)
        check_alpha_beta(alpha, beta)
        check_threshold(threshold)
        self.reset_mode = check_reset(reset_mechanism)
        self.reset_mechanism = reset_mechanism
        self.fc = nn.Linear(in_features, out_features, bias=bias, device=device, dtype=dtype)
        dt = self.fc.weight.dtype
        register_param(self, "alpha", alpha, learn_alpha, dt, device)
        register_param(self, "beta", beta, learn_beta, dt, device)
        register_param(self, "threshold", threshold, learn_threshold, dt, device)
        self.surrogate = resolve_surrogate(spike_grad, bth, active_fraction)
        self.output = output
        self.init_hidden = bool(init_hidden)
        self.backend = backend
        self._stats: dict = {}
        self._monitor = ActivityMonitor(f"SparseLinearAlpha({in_features}->{out_features})")

    def forward(self, x: torch.Tensor, syn_exc=None, syn_inh=None, mem=None):
        x = self._checked_input(x)
        step = (*x.shape[1:-1], self.out_features)
        given = {"syn_exc": syn_exc, "syn_inh": syn_inh, "mem": mem}
        init = [self._initial(n, g, step) for n, g in given.items()]
        track = self.stateful or any(g is not None for g in given.values())
        cfg = LIFConfig(surrogate=self.surrogate, reset_mode=self.reset_mode, backend=self.backend,
                        stats=self._stats)
        current = event_linear(x, self.weight, self.bias, self.backend, self.event_forward)
        spk, exc, inh, mem_seq = alpha_sequence(current, self.alpha, self.beta, self.threshold, cfg, *init)
        self._stats = cfg.stats
        if self.training and spk.requires_grad:
            self._monitor.update(cfg.stats["active"], cfg.stats["total"], cfg.stats.get("window"),
                                 fixed=not self.surrogate.adaptive)
        for name, seq in (("syn_exc", exc), ("syn_inh", inh), ("mem", mem_seq)):
            self._keep(name, seq[-1], attached=track)
        if self.output or not self.init_hidden:
            return spk, exc, inh, mem_seq
        return spk

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"reset_mechanism={self.reset_mechanism!r}, spike_grad={self.surrogate!r}")


# --- sparsify / desparsify (called from snntorch_sparse.convert) -------------------------------------

def _check_alpha_multi(neuron, where: str) -> None:
    bad = [name for name, on in (("inhibition=True", neuron.inhibition), ("state_quant", bool(neuron.state_quant)),
                                 ("surrogate_disable=True", getattr(neuron, "surrogate_disable", False))) if on]
    if bad:
        raise ValueError(f"sparsify: the snn.Alpha at {where} uses {', '.join(bad)}, which the multi-step "
                         "sparse layers do not support; remove the option or keep this neuron in snnTorch")


def _alpha_values(neuron, where: str):
    from .convert import _beta_threshold
    beta, threshold = _beta_threshold(neuron, where)
    alpha = as_float_param(neuron.alpha.detach().clone())
    if not torch.isfinite(alpha).all():
        raise ValueError(f"sparsify: alpha of the snn.Alpha at {where} contains NaN or inf")
    return alpha, beta, threshold


def sparse_alpha_from(neuron, step_mode: str, bth, spike_grad, backend, where: str,
                      active_fraction=None) -> SparseAlpha:
    """A :class:`SparseAlpha` with ``neuron``'s parameters and options."""
    from .convert import _check_shape, _is_param, _output_full
    alpha, beta, threshold = _alpha_values(neuron, where)
    extra = {}
    if step_mode == "multi":
        _check_alpha_multi(neuron, where)
        for name, t in (("alpha", alpha), ("beta", beta), ("threshold", threshold)):
            _check_shape(t, name, where, None)
    else:
        extra = dict(surrogate_disable=getattr(neuron, "surrogate_disable", False), inhibition=neuron.inhibition,
                     state_quant=neuron.state_quant)
    sg = _output_full(resolve_surrogate(spike_grad if spike_grad is not None else neuron.spike_grad, bth,
                                        active_fraction), neuron, active_fraction)
    new = SparseAlpha(alpha=alpha.clamp(0, 1), beta=beta.clamp(0, 1), threshold=threshold, spike_grad=sg,
                      learn_alpha=_is_param(neuron.alpha), learn_beta=_is_param(neuron.beta),
                      learn_threshold=_is_param(neuron.threshold), reset_mechanism=neuron.reset_mechanism,
                      init_hidden=neuron.init_hidden, output=neuron.output, step_mode=step_mode, backend=backend,
                      **extra)
    with torch.no_grad():  # unclamped, as in snnTorch; the forward clamps
        new.beta.copy_(beta)
    new.train(neuron.training)
    return new.to(neuron.beta.device)


def fuse_alpha(linear: nn.Linear, neuron, bth, spike_grad, backend, where: str, active_fraction=None,
               event_forward=None) -> SparseLinearAlpha:
    """``nn.Linear`` + ``snn.Alpha`` as one :class:`SparseLinearAlpha` (same parameters)."""
    from .convert import _check_shape, _is_param, _output_full
    _check_alpha_multi(neuron, where)
    alpha, beta, threshold = _alpha_values(neuron, where)
    for name, t in (("alpha", alpha), ("beta", beta), ("threshold", threshold)):
        _check_shape(t, name, where, linear.out_features)
    sg = _output_full(resolve_surrogate(spike_grad if spike_grad is not None else neuron.spike_grad, bth,
                                        active_fraction), neuron, active_fraction)
    with torch.random.fork_rng(devices=[]):
        layer = SparseLinearAlpha(linear.in_features, linear.out_features, alpha=alpha.clamp(0, 1),
                                  beta=beta.clamp(0, 1), threshold=threshold, spike_grad=sg,
                                  bias=linear.bias is not None, learn_alpha=_is_param(neuron.alpha),
                                  learn_beta=_is_param(neuron.beta), learn_threshold=_is_param(neuron.threshold),
                                  reset_mechanism=neuron.reset_mechanism, output=neuron.output, backend=backend,
                                  device=linear.weight.device, dtype=linear.weight.dtype,
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


def dense_alpha_from(m, init_hidden: bool, output: bool) -> snn.Alpha:
    """The snnTorch ``Alpha`` of a sparse one (its clamped surrogate kept; a learnable ``alpha`` stays one)."""
    from .convert import _is_param
    extra = {}
    if isinstance(m, snn.Alpha):
        extra = dict(surrogate_disable=getattr(m, "surrogate_disable", False), inhibition=m.inhibition,
                     state_quant=m.state_quant)
    neuron = snn.Alpha(alpha=m.alpha.detach().clone(), beta=m.beta.detach().clone(),
                       threshold=m.threshold.detach().clone(), spike_grad=m.surrogate, learn_alpha=False,
                       learn_beta=_is_param(m.beta), learn_threshold=_is_param(m.threshold),
                       reset_mechanism=m.reset_mechanism, init_hidden=init_hidden, output=output, **extra)
    if _is_param(m.alpha):
        _learnable_alpha(neuron)
    neuron.train(m.training)
    return neuron.to(m.beta.device)
