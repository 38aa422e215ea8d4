"""What every fused ``nn.Linear`` + neuron layer shares: its views of the linear part and its last call's window."""
from __future__ import annotations

import torch

from ._validation import autocast_input, check_same_device, check_sequence
from .surrogate import frozen_copy


class FusedLinearMixin:
    """Properties and the input check of a fused layer with ``fc`` (``nn.Linear``), ``surrogate``,
    ``beta``, ``threshold`` (``alpha`` where the neuron has one) and the last call's statistics ``_stats``."""

    in_features = property(lambda self: self.fc.in_features)
    out_features = property(lambda self: self.fc.out_features)
    weight = property(lambda self: self.fc.weight)
    bias = property(lambda self: self.fc.bias)

    @property
    def bth(self):
        return self.surrogate.bth

    @property
    def window(self):
        """The window half-width ``B`` of the last forward (``None`` before the first)."""
        return self._stats.get("window")

    def frozen_surrogate(self):
        """A fixed-window copy of the surrogate with the last call's windows and gains."""
        return frozen_copy(self.surrogate, self.window, self._stats.get("gain"))

    @property
    def activity(self):
        """Fraction of (t, b, n) entries in the active window in the last forward."""
        s = self._stats
        return s["active"] / s["total"] if s.get("total") else None

    def _checked_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ([T, B, ..., in_features], the weight's device and dtype; cast as ``nn.Linear`` under autocast)."""
        x = autocast_input(x, self.weight)
        check_same_device(x=x, weight=self.weight, alpha=getattr(self, "alpha", None), beta=self.beta,
                          threshold=self.threshold)
        check_sequence(x, "x", min_dim=3, features=self.in_features, check_values=False)
        if x.dtype != self.weight.dtype:
            raise TypeError(f"x has dtype {x.dtype} but the layer's weight is {self.weight.dtype}")
        return x
