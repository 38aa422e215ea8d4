"""A warning for sparse layers that get (almost) no gradient.

A layer whose active fraction stays below :data:`ACTIVITY_FLOOR` for
``patience`` consecutive training calls gets one ``UserWarning`` naming it and
what to do. Only calls that build a graph count (training, autograd on).
"""
from __future__ import annotations

import warnings

__all__ = ["ActivityMonitor", "ACTIVITY_FLOOR"]

#: Active fraction below which a layer counts as starved of gradient.
ACTIVITY_FLOOR = 1e-3


class ActivityMonitor:
    """Counts consecutive starved calls of one layer and warns once.

    Args:
        name: how the warning names the layer (e.g. ``"'3' (SparseLinearLeaky 1024->10)"``).
        patience: consecutive starved calls before the warning (a multi-step
            layer is called once per training step; a single-step neuron once
            per time step, so give it a larger patience).
    """

    def __init__(self, name: str, patience: int = 5):
        self.name = name
        self.patience = patience
        self.starved = 0
        self.warned = False

    def update(self, active: int, total: int, window=None, fixed: bool = True) -> None:
        """Record one call's ``active`` of ``total`` entries (window ``window``)."""
        if self.warned or not total:
            return
        self.starved = self.starved + 1 if active / total < ACTIVITY_FLOOR else 0
        if self.starved < self.patience:
            return
        self.warned = True
        if fixed:
            advice = (f"its fixed window bth={window} holds almost nothing: use the adaptive window "
                      "(bth=None, the default), widen bth, or initialise the weights so the membranes "
                      "reach the threshold")
        else:
            advice = ("its membranes are (nearly) all equal, so even the adaptive window holds "
                      "almost nothing: check its input and weights")
        warnings.warn(f"snntorch_sparse: the sparse layer {self.name} had {active / total:.4%} of its "
                      f"entries active (below {ACTIVITY_FLOOR:.1%}) in {self.starved} training calls "
                      f"in a row, so it gets almost no gradient; {advice}. See the guide 'Choosing the "
                      "window'.", UserWarning, stacklevel=3)
