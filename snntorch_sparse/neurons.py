r"""Per-step and multi-step sparse leaky integrate-and-fire neuron.

:class:`SparseLeaky` is an :class:`snntorch.Leaky` whose surrogate gradient is
clamped to the active window :math:`|U - \theta| < B_{th}`:

.. math::

    U[t] &= \beta U[t-1] + I[t] - R[t]\,\theta, \qquad R[t] = H(U[t-1] - \theta) \\
    S[t] &= H(U[t] - \theta), \qquad
    \frac{\partial S[t]}{\partial U[t]} = \sigma'(U[t] - \theta)\,\mathbb{1}[|U[t] - \theta| < B_{th}]

In ``step_mode="single"`` it *is* snnTorch's neuron (one call per time step,
same arguments, state and return values). In ``step_mode="multi"`` one call
takes the whole current sequence ``[T, B, ...]`` and runs the fused scan with
the sparse backward of :mod:`snntorch_sparse.functional`; each call starts
from a zero membrane, like ``snntorch.utils.reset`` before a sequence.
"""
from __future__ import annotations

import snntorch as snn
import torch

from ._validation import (as_float_param, autocast_input, check_backend, check_beta, check_param_shape, check_reset,
                          check_same_device, check_sequence, check_threshold)
from ._activity import ActivityMonitor
from ._neuron_views import SparseNeuronViews
from .functional import LIFConfig, sparse_lif
from .state import lif_from_state
from .step import leaky_step
from .surrogate import DEFAULT_ACTIVE_FRACTION, SparseSurrogate, sparse_atan, sparsify_surrogate

__all__ = ["SparseLeaky", "resolve_surrogate"]


def resolve_surrogate(spike_grad, bth, active_fraction=None) -> SparseSurrogate:
    """The layer's own sparse surrogate for a (``spike_grad``, ``bth``, ``active_fraction``) triple.

    ``None`` gives :func:`~snntorch_sparse.surrogate.sparse_atan` (snnTorch's
    default surrogate, ``atan(alpha=2)``); a dense snnTorch surrogate is
    sparsified; a sparse one keeps its window unless ``bth`` / ``active_fraction``
    is given. The result is always a new object, so layers never share the
    per-call statistics a surrogate records.
    """
    if spike_grad is None:
        return sparse_atan(bth=bth, active_fraction=DEFAULT_ACTIVE_FRACTION if active_fraction is None
                           else active_fraction)
    if isinstance(spike_grad, SparseSurrogate):
        if bth is None and active_fraction is None:
            return spike_grad.with_window(spike_grad.bth)
        return spike_grad.with_window(bth if bth is not None else (
            None if active_fraction is not None else spike_grad.bth), active_fraction)
    return sparsify_surrogate(spike_grad, bth, DEFAULT_ACTIVE_FRACTION if active_fraction is None
                              else active_fraction)


def _value(t) -> str:
    """A parameter's (mean) value for names and checks; ``"?"`` on the meta device (no data)."""
    t = torch.as_tensor(t).detach()
    return "?" if t.device.type == "meta" else f"{float(t.float().mean()):g}"


class SparseLeaky(SparseNeuronViews, snn.Leaky):
    """Drop-in :class:`snntorch.Leaky` with a sparse surrogate gradient.

    Takes every argument of :class:`snntorch.Leaky`, plus:

    Args:
        spike_grad: as snnTorch's (default ``None``: the sparse form of snnTorch's
            default ``atan(alpha=2)``); any snnTorch surrogate is sparsified.
        bth: fixed half-width of the active window, or ``None`` (default) to keep
            ``spike_grad``'s own window -- the adaptive window, unless
            ``spike_grad`` is a sparse surrogate with a fixed ``bth``.
        active_fraction: target fraction of active entries of the adaptive
            window (default :data:`~snntorch_sparse.surrogate.DEFAULT_ACTIVE_FRACTION`).
        step_mode: ``"single"`` (one time step per call, as snnTorch) or
            ``"multi"`` (a whole time-major sequence ``[T, B, ...]`` per call).
        backend: ``"auto"``, ``"reference"`` or ``"compiled"`` for multi-step calls.
        stateful: multi-step only. ``False`` (default): each call starts from a zero
            membrane, or from ``mem`` passed to the call. ``True``: each call
            continues from the final membrane of the previous one (``self.mem``),
            as snnTorch's ``init_hidden=True`` neurons do, so a sequence can be
            fed in chunks; ``detach_hidden()`` between chunks gives truncated
            BPTT, ``reset_hidden()`` / ``snntorch.utils.reset`` a new sequence.

    Example::

        import torch, snntorch as snn
        from snntorch_sparse import SparseLeaky
        lif = SparseLeaky(beta=0.9, bth=0.2, step_mode="multi")
        spk, mem = lif(torch.randn(100, 32, 200))   # [T, B, N] in, [T, B, N] out
        print(lif.activity)                          # fraction of active entries
    """

    def __init__(self, beta, threshold=1.0, spike_grad=None, surrogate_disable=False,
                 init_hidden=False, inhibition=False, learn_beta=False, learn_threshold=False,
                 reset_mechanism="subtract", state_quant=False, output=False,
                 graded_spikes_factor=1.0, learn_graded_spikes_factor=False, reset_delay=True,
                 bth=None, step_mode="single", backend=None, active_fraction=None, stateful=False):
        if step_mode not in ("single", "multi"):
            raise ValueError(f"step_mode must be 'single' or 'multi', got {step_mode!r}")
        check_beta(beta)
        check_threshold(threshold)
        check_reset(reset_mechanism)
        check_backend(backend)
        # snnTorch keeps an int beta (beta=1: integrate-and-fire) as int64; here it is a float
        # (default dtype), so it can also be learned and moved with .to(dtype)
        beta, threshold = as_float_param(beta), as_float_param(threshold)
        surrogate = resolve_surrogate(spike_grad, bth, active_fraction)
        super().__init__(beta, threshold=threshold, spike_grad=surrogate,
                         surrogate_disable=surrogate_disable, init_hidden=init_hidden,
                         inhibition=inhibition, learn_beta=learn_beta,
                         learn_threshold=learn_threshold, reset_mechanism=reset_mechanism,
                         state_quant=state_quant, output=output,
                         graded_spikes_factor=graded_spikes_factor,
                         learn_graded_spikes_factor=learn_graded_spikes_factor,
                         reset_delay=reset_delay)
        self.surrogate = surrogate
        self.step_mode = step_mode
        self.backend = backend
        self.stateful = bool(stateful)
        self._stats: dict = {}
        # A single-step neuron is called once per time step: warn after ~8 sequences of 25 steps.
        self._monitor = ActivityMonitor(f"{type(self).__name__}(beta={_value(self.beta)})",
                                        patience=5 if step_mode == "multi" else 200)
        surrogate.monitor = self._monitor
        if step_mode == "multi":
            unsupported = {"inhibition": inhibition, "state_quant": bool(state_quant),
                           "surrogate_disable": surrogate_disable,
                           "reset_delay=False": not reset_delay,
                           "learn_graded_spikes_factor": learn_graded_spikes_factor,
                           "graded_spikes_factor != 1": _value(graded_spikes_factor) not in ("1", "?")}
            bad = [k for k, v in unsupported.items() if v]
            if bad:
                raise ValueError(f"step_mode='multi' does not support {', '.join(bad)}; "
                                 "use step_mode='single' for these features")

    def forward(self, input_, mem=None):
        if self.step_mode == "single":
            if not self._plain_step():
                return super().forward(input_, mem)
            return self._step(input_, mem)
        if mem is not None and self.init_hidden:
            raise TypeError("`mem` should not be passed as an argument while `init_hidden=True`")
        input_ = autocast_input(input_, self.beta)
        check_same_device(input_=input_, beta=self.beta, threshold=self.threshold)
        check_sequence(input_, "input_", min_dim=2, check_values=False)
        check_param_shape(self.beta, "beta", input_.shape[2:])
        check_param_shape(self.threshold, "threshold", input_.shape[2:])
        rv = self.reset_mechanism_val  # a buffer, without a value on the meta device: then the name decides
        reset_mode = check_reset(self.reset_mechanism) if rv.device.type == "meta" else int(rv)
        cfg = LIFConfig(surrogate=self.surrogate, reset_mode=reset_mode,
                        backend=self.backend, stats=self._stats)
        mem0 = mem
        if mem0 is None and self.stateful and tuple(self.mem.shape) == tuple(input_.shape[1:]):
            mem0 = self.mem  # continue from the previous call (zeros after reset_hidden)
        if mem0 is not None or self.stateful:
            spk, mem_seq = lif_from_state(input_, None, None, self.beta, self.threshold, cfg, mem0)
            self._stats = cfg.stats
            if self.training and spk.requires_grad:
                self._monitor.update(cfg.stats["active"], cfg.stats["total"], cfg.stats.get("window"),
                                     fixed=not self.surrogate.adaptive)
            # The final membrane, graph-attached: the next call continues from it
            # (detach_hidden() for truncated BPTT, as snnTorch)
            self.mem = mem_seq[-1].clone()
            if self.output:
                return spk, mem_seq
            if self.init_hidden:
                return spk
            return spk, mem_seq
        spk, mem_seq = sparse_lif(input_, None, None, self.beta, self.threshold, cfg)
        self._stats = cfg.stats
        if self.training and spk.requires_grad:
            self._monitor.update(cfg.stats["active"], cfg.stats["total"], cfg.stats.get("window"),
                                 fixed=not self.surrogate.adaptive)
        # The last membrane, for inspection as in snnTorch -- detached and copied: the
        # next call starts from zero anyway, so it must keep neither the autograd graph
        # nor the whole [T, B, ...] membrane alive (deepcopy / pickling a trained model).
        self.mem = mem_seq[-1].detach().clone() if mem_seq.numel() else mem_seq.detach()
        if self.output:
            return spk, mem_seq
        if self.init_hidden:
            return spk
        return spk, mem_seq

    def _plain_step(self) -> bool:
        """No snnTorch option that :class:`~snntorch_sparse.step.LeakyStep` lacks is in use."""
        g = self.graded_spikes_factor
        return (not self.inhibition and not self.state_quant and self.reset_delay
                and not getattr(self, "surrogate_disable", False) and not isinstance(g, torch.nn.Parameter)
                and g.numel() == 1 and float(g) == 1.0)

    def _step(self, input_, mem):
        """snnTorch's single-step ``Leaky.forward`` as one autograd node (same numbers, same returns)."""
        if mem is not None:
            if self.init_hidden:
                raise TypeError("`mem` should not be passed as an argument while `init_hidden=True`")
            self.mem = mem
        if self.mem.shape != input_.shape:
            self.mem = torch.zeros_like(input_, device=self.mem.device)
        spk, self.mem = leaky_step(input_, self.mem, self.beta, self.threshold, self.surrogate,
                                   int(self.reset_mechanism_val), self.backend)
        if self.output:
            return spk, self.mem
        if self.init_hidden:
            return spk
        return spk, self.mem

    def extra_repr(self) -> str:
        return f"step_mode={self.step_mode!r}, spike_grad={self.surrogate!r}"
