"""What every sparse per-step neuron (``SparseLeaky``, ``SparseSynaptic``, ``SparseRLeaky``,
``SparseRSynaptic``, ``SparseAlpha``) shares: its views of the last call's window and activity."""
from __future__ import annotations

from .surrogate import frozen_copy


class SparseNeuronViews:
    """Properties of a sparse snnTorch neuron subclass with ``step_mode``, ``surrogate`` and the
    last multi-step call's statistics ``_stats``. In single-step mode the figures are those of
    the last time step that reached a backward (kept by the surrogate); in multi-step mode those
    of the last forward. Listed before the snnTorch base class."""

    @property
    def multi_step(self) -> bool:
        """True when one call processes a whole ``[T, B, ...]`` sequence."""
        return self.step_mode == "multi"

    @property
    def bth(self):
        """The fixed window half-width, or ``None`` for the adaptive window."""
        return self.surrogate.bth

    @property
    def window(self):
        """The window half-width ``B`` of the last call (of its backward, in single-step mode)."""
        if self.step_mode == "single":
            return self.surrogate.last_window
        return self._stats.get("window")

    def frozen_surrogate(self):
        """A fixed-window copy of the surrogate with the last call's windows and gains.

        Given to the dense snnTorch neuron (``spike_grad=layer.frozen_surrogate()``), it
        reproduces exactly the gradient rule this layer used in its last call.
        """
        gain = self.surrogate.last_gain if self.step_mode == "single" else self._stats.get("gain")
        return frozen_copy(self.surrogate, self.window, gain)

    @property
    def activity(self):
        """Fraction of (t, b, n) entries in the active window in the last call."""
        if self.step_mode == "single":
            sg = self.surrogate
            return sg.last_active / sg.last_total if sg.last_total else None
        s = self._stats
        return s["active"] / s["total"] if s.get("total") else None

    def _given_or_held(self, given: dict, step: tuple) -> dict:
        """Each state in ``given`` (``{name: tensor or None}``), or, for a ``stateful`` neuron,
        the one it holds when none was given and the held one fits one step ``step``."""
        if not self.stateful:
            return given
        out = dict(given)
        for name, value in given.items():
            held = getattr(self, name)
            if value is None and tuple(held.shape) == step:
                out[name] = held
        return out
