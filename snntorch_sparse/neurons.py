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

from ._validation import (as_float_param, autocast_input, check_beta, check_reset, check_same_device, check_sequence,
                          check_threshold)
from .functional import LIFConfig, sparse_lif
from .surrogate import DEFAULT_BTH, SparseSurrogate, sparse_fast_sigmoid, sparsify_surrogate

__all__ = ["SparseLeaky", "resolve_surrogate"]


def resolve_surrogate(spike_grad, bth) -> SparseSurrogate:
    """The sparse surrogate for a (``spike_grad``, ``bth``) pair of arguments.

    ``None`` gives :func:`sparse_fast_sigmoid`; a dense snnTorch surrogate is
    sparsified; a sparse one is kept, re-windowed when ``bth`` is given.
    """
    if spike_grad is None:
        return sparse_fast_sigmoid(bth=DEFAULT_BTH if bth is None else bth)
    if isinstance(spike_grad, SparseSurrogate):
        return spike_grad if bth is None else sparsify_surrogate(spike_grad, bth)
    return sparsify_surrogate(spike_grad, DEFAULT_BTH if bth is None else bth)


class SparseLeaky(snn.Leaky):
    """Drop-in :class:`snntorch.Leaky` with a sparse surrogate gradient.

    Takes every argument of :class:`snntorch.Leaky`, plus:

    Args:
        bth: half-width of the active window (default
            :data:`~snntorch_sparse.surrogate.DEFAULT_BTH`, or the window of a
            sparse ``spike_grad``).
        step_mode: ``"single"`` (one time step per call, as snnTorch) or
            ``"multi"`` (a whole time-major sequence ``[T, B, ...]`` per call).
        backend: ``"auto"``, ``"reference"`` or ``"compiled"`` for multi-step calls.

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
                 bth=None, step_mode="single", backend=None):
        if step_mode not in ("single", "multi"):
            raise ValueError(f"step_mode must be 'single' or 'multi', got {step_mode!r}")
        check_beta(beta)
        check_threshold(threshold)
        check_reset(reset_mechanism)
        # snnTorch keeps an int beta (beta=1: integrate-and-fire) as int64; here it is a float
        # (default dtype), so it can also be learned and moved with .to(dtype)
        beta, threshold = as_float_param(beta), as_float_param(threshold)
        surrogate = resolve_surrogate(spike_grad, bth)
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
        self._stats: dict = {}
        if step_mode == "multi":
            unsupported = {"inhibition": inhibition, "state_quant": bool(state_quant),
                           "surrogate_disable": surrogate_disable,
                           "reset_delay=False": not reset_delay,
                           "learn_graded_spikes_factor": learn_graded_spikes_factor,
                           "graded_spikes_factor != 1": float(torch.as_tensor(graded_spikes_factor)) != 1.0}
            bad = [k for k, v in unsupported.items() if v]
            if bad:
                raise ValueError(f"step_mode='multi' does not support {', '.join(bad)}; "
                                 "use step_mode='single' for these features")

    @property
    def multi_step(self) -> bool:
        """True when one call processes a whole ``[T, B, ...]`` sequence."""
        return self.step_mode == "multi"

    @property
    def bth(self) -> float:
        return self.surrogate.bth

    @property
    def activity(self):
        """Fraction of (t, b, n) entries in the active window in the last multi-step call."""
        s = self._stats
        return s["active"] / s["total"] if s.get("total") else None

    def forward(self, input_, mem=None):
        if self.step_mode == "single":
            return super().forward(input_, mem)
        if mem is not None:
            raise ValueError("mem cannot be passed in step_mode='multi': each call starts from zero")
        input_ = autocast_input(input_, self.beta)
        check_same_device(input_=input_, beta=self.beta, threshold=self.threshold)
        check_sequence(input_, "input_", min_dim=2, check_values=False)
        cfg = LIFConfig(surrogate=self.surrogate, reset_mode=int(self.reset_mechanism_val),
                        backend=self.backend)
        spk, mem_seq = sparse_lif(input_, None, None, self.beta, self.threshold, cfg)
        self._stats = cfg.stats
        # The last membrane, for inspection as in snnTorch -- detached and copied: the
        # next call starts from zero anyway, so it must keep neither the autograd graph
        # nor the whole [T, B, ...] membrane alive (deepcopy / pickling a trained model).
        self.mem = mem_seq[-1].detach().clone() if mem_seq.numel() else mem_seq.detach()
        if self.output:
            return spk, mem_seq
        if self.init_hidden:
            return spk
        return spk, mem_seq

    def extra_repr(self) -> str:
        return f"step_mode={self.step_mode!r}, spike_grad={self.surrogate!r}"
