r"""Fused multi-step layers: Linear + LIF over a whole sequence.

.. math::

    I[t] &= X[t] W^\top + b \\
    U[t] &= \beta U[t-1] + I[t] - \theta\,H(U[t-1] - \theta) \\
    S[t] &= H(U[t] - \theta)

One GEMM computes ``I`` for all ``T·B`` rows, one scan computes ``U`` and
``S``; the backward touches only the active set :math:`|U - \theta| < B_{th}`
and the input's spikes (see :mod:`snntorch_sparse.functional`).
"""
from __future__ import annotations

import torch
from torch import nn

from ._buffers import BufferPool
from ._validation import (as_float_param, autocast_input, check_backend, check_beta, check_event_forward,
                          check_features, check_param_shape, check_reset, check_same_device, check_sequence,
                          check_threshold)
from ._activity import ActivityMonitor
from .functional import LIFConfig, sparse_lif
from .neurons import resolve_surrogate
from .state import StatefulMixin, lif_from_state
from .surrogate import frozen_copy

__all__ = ["SparseLinearLeaky"]


class SparseLinearLeaky(StatefulMixin, nn.Module):
    """``nn.Linear`` followed by ``snn.Leaky``, fused over time, with a sparse backward.

    Args:
        in_features, out_features: as ``nn.Linear``.
        beta: membrane decay in [0, 1]; scalar or one per output neuron.
        threshold: firing threshold ``θ``; scalar or one per output neuron.
        spike_grad: surrogate (``None``: :func:`~snntorch_sparse.surrogate.sparse_atan`,
            the sparse form of snnTorch's default ``atan``; any snnTorch surrogate is sparsified).
        bth: fixed half-width of the active window, or ``None`` (default) to keep
            ``spike_grad``'s own window: the adaptive window, which holds
            ``active_fraction`` of the entries closest to threshold in every call
            (see :mod:`snntorch_sparse.surrogate`).
        active_fraction: target fraction of the adaptive window (default
            :data:`~snntorch_sparse.surrogate.DEFAULT_ACTIVE_FRACTION`).
        bias: whether the linear map has a bias.
        learn_beta, learn_threshold, reset_mechanism: as ``snn.Leaky``.
        output: if ``True`` return ``(spk, mem)``; else ``spk``.
        init_hidden: snnTorch's convention: ``True`` (default here, as in an
            ``nn.Sequential``) returns ``spk`` alone unless ``output``; ``False``
            returns ``(spk, mem)`` like a ``snn.Leaky(init_hidden=False)``.
        stateful: ``False`` (default): each call starts from a zero membrane
            (or from ``mem`` passed to the call). ``True``: each call continues
            from the final membrane of the previous one, as snnTorch's
            ``init_hidden=True`` neurons do across time steps, so a long sequence
            can be fed in chunks (truncated BPTT: call :meth:`detach_hidden`
            between chunks; :meth:`reset_hidden` or ``snntorch.utils.reset``
            starts a new sequence). The final membrane ``[B, out]`` of every call
            is in ``layer.mem``.
        surrogate_disable: like snnTorch's other neuron options ``inhibition``,
            ``state_quant``, ``graded_spikes_factor``, ``learn_graded_spikes_factor``
            and ``reset_delay``, accepted at snnTorch's default; any other value
            raises ``ValueError`` (use ``snn.Leaky`` or ``SparseLeaky`` for them).
        readout: non-spiking readout (no reset, no spikes): returns the membrane
            ``[T, B, out]``, e.g. for max-over-time logits.
        backend: ``"auto"``, ``"reference"`` or ``"compiled"``.
        event_forward: compute ``X Wᵀ`` over the input's non-zeros only
            (~1/density less arithmetic) instead of one dense GEMM. ``None``
            (default, "auto"): on the fused CPU path whenever at most a quarter
            of the input is non-zero, elsewhere (CUDA, reference backend) the
            GEMM. ``True``/``False`` force it. It equals the GEMM up to float
            rounding, which can flip a spike sitting exactly on the threshold;
            ``False`` is bit-identical to snnTorch's per-step ``nn.Linear``
            wherever the BLAS rounds rows independently of their number.

    Shape:
        input ``[T, B, in_features]`` (spikes; graded values work too),
        output ``[T, B, out_features]``.

    Gradients: every parameter and input gradient is that of dense BPTT with the
    same clamped surrogate. The gradient *of the output spikes* that the next
    sparse layer hands back is computed on this layer's active set only (zero
    elsewhere): hooks, ``retain_grad`` and ``torch.autograd.grad`` on these
    hidden spikes see that, not the full ``∂L/∂S`` (see the guide "The sparse
    gradient", "Gradients of hidden spikes").

    Example::

        layer = SparseLinearLeaky(700, 200, beta=0.9, bth=0.2)
        spk = layer(x)          # x: [T, B, 700] spikes
        print(layer.activity)   # fraction of active (t, b, n) entries
    """

    multi_step = True

    def __init__(self, in_features: int, out_features: int, beta, threshold=1.0, spike_grad=None,
                 bth=None, bias: bool = True, learn_beta: bool = False, learn_threshold: bool = False,
                 reset_mechanism: str = "subtract", output: bool = False, readout: bool = False,
                 backend=None, event_forward=None, device=None, dtype=None, *, active_fraction=None,
                 init_hidden: bool = True, surrogate_disable: bool = False, inhibition: bool = False,
                 state_quant=False, graded_spikes_factor=1.0, learn_graded_spikes_factor: bool = False,
                 reset_delay: bool = True, stateful: bool = False):
        super().__init__()
        self._init_state(stateful)
        _refuse_options(surrogate_disable=surrogate_disable, inhibition=inhibition, state_quant=state_quant,
                        graded_spikes_factor=graded_spikes_factor,
                        learn_graded_spikes_factor=learn_graded_spikes_factor, reset_delay=reset_delay)
        check_features(in_features, "in_features")
        check_features(out_features, "out_features")
        check_beta(beta)
        check_threshold(threshold)
        check_backend(backend)
        check_event_forward(event_forward)
        for name, v in (("beta", beta), ("threshold", threshold)):
            check_param_shape(v, name, (out_features,))
        beta, threshold = as_float_param(beta), as_float_param(threshold)  # 1 -> 1.0, as snnTorch accepts
        self.reset_mode = check_reset("none" if readout else reset_mechanism)
        self.reset_mechanism = "none" if readout else reset_mechanism
        self.fc = nn.Linear(in_features, out_features, bias=bias, device=device, dtype=dtype)
        beta = torch.as_tensor(beta, dtype=self.fc.weight.dtype, device=device).clone()
        threshold = torch.as_tensor(threshold, dtype=self.fc.weight.dtype, device=device).clone()
        if learn_beta:
            self.beta = nn.Parameter(beta)
        else:
            self.register_buffer("beta", beta)
        if learn_threshold:
            self.threshold = nn.Parameter(threshold)
        else:
            self.register_buffer("threshold", threshold)
        self.surrogate = None if readout else resolve_surrogate(spike_grad, bth, active_fraction)
        self.output = output
        self.init_hidden = bool(init_hidden)
        self._monitor = ActivityMonitor(f"SparseLinearLeaky({in_features}->{out_features})")
        self.readout = readout
        self.backend = backend
        self.event_forward = event_forward
        self._stats: dict = {}
        # Large CPU work buffers (spikes, input gradient) reused across steps; see _buffers.
        self._pool = BufferPool()

    @property
    def in_features(self) -> int:
        return self.fc.in_features

    @property
    def out_features(self) -> int:
        return self.fc.out_features

    @property
    def weight(self) -> nn.Parameter:
        return self.fc.weight

    @property
    def bias(self):
        return self.fc.bias

    @property
    def bth(self):
        """The fixed window half-width, ``None`` for the adaptive window (or a readout)."""
        return None if self.surrogate is None else self.surrogate.bth

    @property
    def window(self):
        """The window half-width ``B`` of the last forward (``None`` before the first, or a readout)."""
        return self._stats.get("window")

    def frozen_surrogate(self):
        """A fixed-window copy of the surrogate with the last call's windows and gains.

        Given to a dense ``snn.Leaky`` (``spike_grad=layer.frozen_surrogate()``), it
        reproduces exactly the gradient rule this layer used in its last call.
        """
        return frozen_copy(self.surrogate, self.window, self._stats.get("gain"))

    @property
    def activity(self):
        """Fraction of (t, b, n) entries in the active window in the last forward."""
        s = self._stats
        return s["active"] / s["total"] if s.get("total") else None

    def forward(self, x: torch.Tensor, mem=None):
        """``x``: ``[T, B, in]``; ``mem``: optional initial membrane ``[B, out]`` (else zero, or the carried one)."""
        x = autocast_input(x, self.weight)
        check_same_device(x=x, weight=self.weight, beta=self.beta, threshold=self.threshold)
        check_sequence(x, "x", min_dim=3, features=self.in_features, check_values=False)
        if x.dtype != self.weight.dtype:
            raise TypeError(f"x has dtype {x.dtype} but the layer's weight is {self.weight.dtype}")
        check_param_shape(self.beta, "beta", (self.out_features,))  # also a beta/threshold set after __init__
        check_param_shape(self.threshold, "threshold", (self.out_features,))
        mem0 = self._initial("mem", mem, (*x.shape[1:-1], self.out_features))
        track = self.stateful or mem is not None
        cfg = LIFConfig(surrogate=self.surrogate, reset_mode=self.reset_mode,
                        readout=self.readout, backend=self.backend,
                        event_forward=self.event_forward,
                        need_mem=self.output or self.readout or not self.init_hidden or track,
                        pool=self._pool, stats=self._stats)
        if mem0 is None:
            spk, mem = sparse_lif(x, self.weight, self.bias, self.beta, self.threshold, cfg)
        else:
            spk, mem = lif_from_state(x, self.weight, self.bias, self.beta, self.threshold, cfg, mem0)
        if track and mem.numel():
            self._keep("mem", mem[-1], attached=True)
        self._stats = cfg.stats
        if self.training and spk.requires_grad and not self.readout:
            self._monitor.update(cfg.stats["active"], cfg.stats["total"], cfg.stats.get("window"),
                                 fixed=not self.surrogate.adaptive)
        if self.readout:
            return mem
        return (spk, mem) if self.output or not self.init_hidden else spk

    def extra_repr(self) -> str:
        kind = "readout" if self.readout else f"spike_grad={self.surrogate!r}"
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"reset_mechanism={self.reset_mechanism!r}, {kind}")


def _refuse_options(**given) -> None:
    """snnTorch neuron options the fused layer lacks: accepted at their defaults, else a clear error."""
    defaults = dict(surrogate_disable=False, inhibition=False, state_quant=False, graded_spikes_factor=1.0,
                    learn_graded_spikes_factor=False, reset_delay=True)
    bad = []
    for name, value in given.items():
        if name == "graded_spikes_factor":
            ok = isinstance(value, (int, float, torch.Tensor)) and bool((torch.as_tensor(value) == 1).all())
        else:
            ok = value is defaults[name] or value == defaults[name]
        if not ok:
            bad.append(f"{name}={value!r}")
    if bad:
        raise ValueError(f"SparseLinearLeaky does not support {', '.join(bad)} (snnTorch's defaults only); "
                         "use nn.Linear + snn.Leaky, or SparseLeaky(step_mode='single'), for these options")
