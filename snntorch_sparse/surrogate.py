r"""Sparse surrogate gradients.

A sparse surrogate keeps snnTorch's spike function in the forward pass,
:math:`S = H(U - \theta)`, and clamps its surrogate derivative to a window
around the threshold:

.. math::

    \frac{\partial S}{\partial U} \approx \sigma'(U - \theta)\,
        \mathbb{1}\left[\,|U - \theta| < B\right]

Only *active* neurons (inside the window) carry gradient. The window
half-width :math:`B` is chosen in one of two ways:

* **adaptive** (``bth=None``, the default): in every call, each neuron
  :math:`n` gets its own half-width :math:`B_n`, placed so that the
  ``active_fraction`` of its entries closest to threshold -- those with the
  largest :math:`\sigma'` -- are inside (:func:`quantile_window`), and a gain
  :math:`c_n` (:func:`mass_gain`) that scales the windowed derivative to the
  neuron's whole surrogate mass. No layer is left without gradient because
  its membranes are far from threshold (as at snnTorch's default
  initialisation). :math:`B_n` and :math:`c_n` are constants of the call: the
  gradient is *exactly* :math:`c_n\,\sigma'(U - \theta)\,\mathbb{1}[|U - \theta| < B_n]`,
  which ``layer.frozen_surrogate()`` hands to a dense snnTorch neuron.
* **fixed** (``bth=0.2`` etc.): :math:`B = B_{th}` in every call; gradients
  equal snnTorch's dense BPTT with the same clamped surrogate.

With either rule the gradient of dense BPTT and of the sparse backward of
:class:`~snntorch_sparse.SparseLinearLeaky` are the same number, so these
surrogates double as the ground truth for the fused layers and plug into any
snnTorch neuron::

    import snntorch as snn
    from snntorch_sparse.surrogate import sparse_atan
    lif = snn.Leaky(beta=0.9, spike_grad=sparse_atan(bth=0.5))

The surrogates are plain module-level classes, so models holding them can be
pickled and ``torch.save``-d whole.
"""
from __future__ import annotations

import copy
import math
from typing import Callable, Optional

import torch

__all__ = [
    "SparseSurrogate",
    "SparseFastSigmoid",
    "SparseATan",
    "SparseSigmoid",
    "SparseFromSurrogate",
    "sparse_fast_sigmoid",
    "sparse_atan",
    "sparse_sigmoid",
    "sparsify_surrogate",
    "quantile_window",
    "mass_gain",
    "frozen_copy",
    "DEFAULT_SLOPE",
    "DEFAULT_BTH",
    "DEFAULT_ACTIVE_FRACTION",
    "WINDOW_SAMPLES",
    "STEP_WINDOW_ROWS",
]

#: Default steepness of :func:`sparse_fast_sigmoid` and :func:`sparse_sigmoid` (snnTorch's).
DEFAULT_SLOPE = 25.0
#: Default window: ``None``, adaptive (see :data:`DEFAULT_ACTIVE_FRACTION`).
DEFAULT_BTH = None
#: Default fraction of (t, b, n) entries an adaptive window holds.
DEFAULT_ACTIVE_FRACTION = 0.08
#: How many entries of ``|U - θ|`` a multi-step layer samples for its adaptive windows (at least).
WINDOW_SAMPLES = 65536
#: ... and at least this many per neuron.
WINDOW_SAMPLES_PER_NEURON = 128
#: A per-step call takes its adaptive window and gain from at most this many rows of its batch (strided).
STEP_WINDOW_ROWS = 64


def _rows_by_features(shift: torch.Tensor) -> torch.Tensor:
    """``|shift|`` as ``[rows, features]``: the first dim holds rows (batch, or time x batch), the rest features."""
    mag = shift.detach().abs()
    if mag.dim() < 2:
        return mag.reshape(1, -1)
    return mag.reshape(mag.shape[0], math.prod(mag.shape[1:]))


def quantile_window(shift: torch.Tensor, fraction: float) -> torch.Tensor:
    r"""Per-neuron half-widths :math:`B_n` whose windows hold a ``fraction`` of each neuron's entries.

    ``shift`` is :math:`U - \theta` as ``[rows, *features]`` (rows: the batch, or
    time x batch). For each neuron :math:`n`, with :math:`k = \lceil
    \text{fraction}\cdot\text{rows}\rceil`, :math:`B_n` lies halfway between the
    :math:`k`-th and the :math:`(k+1)`-th smallest :math:`|x_{in}|` (just above the
    :math:`k`-th on a tie), so the window holds those :math:`k` entries with a
    clear margin on both sides: a membrane that differs from the measured one by
    float rounding (another summation order) stays on its side. Returns
    ``[features]`` flattened.
    """
    mag = _rows_by_features(shift)
    rows = mag.shape[0]
    if rows == 0 or mag.shape[1] == 0:         # no entries (e.g. an empty batch): any window will do
        return torch.ones(mag.shape[1], dtype=shift.dtype, device=shift.device)
    k = min(rows, max(1, math.ceil(fraction * rows)))
    inf = torch.full((), math.inf, dtype=mag.dtype, device=mag.device)  # a fill: no host-to-device copy (sync)
    if k == rows:
        return torch.nextafter(mag.amax(0), inf)
    low = torch.topk(mag, k + 1, dim=0, largest=False, sorted=True).values
    v, nxt = low[k - 1], low[k]
    mid = v + (nxt - v) / 2
    return torch.where(mid > v, mid, torch.nextafter(v, inf))


def mass_gain(surrogate, shift: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    r"""Per-neuron gain :math:`c_n = \sum_i \sigma'(x_{in}) / \sum_{i: |x_{in}| < B_n} \sigma'(x_{in})`.

    The ratio of neuron :math:`n`'s whole surrogate mass over its rows to the
    part inside its window, clamped to :math:`[1, 1/\text{fraction}]` (it lies
    there whenever the window holds the entries of largest :math:`\sigma'`).
    Scaling the windowed derivative by :math:`c_n` gives each neuron's sparse
    gradient the total weight of its dense surrogate, so a layer whose
    membranes all sit far from threshold learns at the pace of dense BPTT
    instead of ``fraction`` times slower (optimisers such as Adam damp updates
    of gradients below their ``eps``).
    """
    x = shift.detach()
    x = x.reshape(1, -1) if x.dim() < 2 else x.reshape(x.shape[0], math.prod(x.shape[1:]))
    full = surrogate.derivative(x)
    inside = torch.where(x.abs() < window.reshape(-1), full, 0.0)
    return mass_gain_from(full, inside, surrogate.active_fraction)


def mass_gain_from(full: torch.Tensor, inside: torch.Tensor, fraction: float) -> torch.Tensor:
    """:func:`mass_gain` from the derivative everywhere and inside the window (rows first), flattened."""
    rows = full.shape[0] if full.dim() > 1 else 1
    feats = full.numel() // rows if rows else math.prod(full.shape[1:])
    total = full.reshape(rows, feats).sum(0)
    kept = inside.reshape(rows, feats).sum(0)
    return (total / kept.clamp_min(torch.finfo(full.dtype).tiny)).clamp(1.0, 1.0 / fraction)


def frozen_copy(surrogate, window, gain):
    """A fixed-window copy of ``surrogate`` with a layer's last ``window`` and ``gain`` (see ``frozen_surrogate``)."""
    if surrogate is None or not surrogate.adaptive:
        return surrogate if surrogate is None else surrogate.with_window(surrogate.bth, gain=surrogate.fixed_gain)
    if window is None:
        raise RuntimeError("frozen_surrogate() needs a call first: the adaptive window is set per call")
    return surrogate.with_window(window, gain=gain)


def per_neuron(value, like: torch.Tensor):
    """A window or gain (float, or one value per neuron, flattened) shaped to broadcast over ``like``'s rows."""
    if not isinstance(value, torch.Tensor) or value.numel() == 1:
        return value
    feat = like.shape[1:] if like.dim() > 1 else like.shape
    if value.numel() != math.prod(feat):
        raise ValueError(f"a per-neuron window or gain has {value.numel()} values but the neuron has "
                         f"{math.prod(feat)} (membrane shape {tuple(like.shape)}, rows first)")
    return value.reshape(feat).to(like.dtype)


def windowed_derivative(sg, mem_shift: torch.Tensor) -> torch.Tensor:
    """:math:`c\\,\\sigma'(x)\\,[|x| < B]` for one per-step call (rows first), recorded on ``sg``."""
    rows = mem_shift.shape[0] if mem_shift.dim() > 1 else 1
    sample = mem_shift
    if sg.adaptive and rows > STEP_WINDOW_ROWS:   # the window and gain from a strided subset of the batch
        sample = mem_shift[::-(-rows // STEP_WINDOW_ROWS)]
    window = sg.window(sample)
    active = mem_shift.abs() < per_neuron(window, mem_shift)
    full = sg.derivative(mem_shift)
    d = torch.where(active, full, torch.zeros((), dtype=mem_shift.dtype))
    gain = None
    if sg.adaptive:
        gain = mass_gain_from(full, d, sg.active_fraction) if sample is mem_shift else \
            mass_gain(sg, sample, window)
        d = d * per_neuron(gain, mem_shift)
    elif sg.fixed_gain is not None:
        gain = sg.fixed_gain
        d = d * per_neuron(gain, mem_shift)
    n_active = int(active.sum())
    sg.record(n_active, active.numel(), window)
    sg.last_gain = gain
    monitor = getattr(sg, "monitor", None)
    if monitor is not None:
        monitor.update(n_active, active.numel(), window, fixed=not sg.adaptive)
    return d


class _SparseSpike(torch.autograd.Function):
    """Heaviside forward, windowed surrogate backward.

    The window of an adaptive surrogate is taken in the backward, from the same
    saved ``U - θ``: calls whose spikes never reach a backward (snnTorch's
    detached reset) cost no quantile.
    """

    @staticmethod
    def forward(ctx, mem_shift, surrogate):
        ctx.save_for_backward(mem_shift)
        ctx.surrogate = surrogate
        return (mem_shift > 0).to(mem_shift.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        (mem_shift,) = ctx.saved_tensors
        return grad_output * windowed_derivative(ctx.surrogate, mem_shift), None


class SparseSurrogate:
    r"""A surrogate derivative :math:`\sigma'` restricted to the window :math:`|x| < B`.

    Instances are snnTorch ``spike_grad`` callables: ``spk = sg(mem - threshold)``.
    Subclasses define :meth:`derivative` (elementwise, unmasked) and :meth:`params`.

    Args:
        bth: fixed half-width :math:`B_{th} > 0` of the window, or ``None``
            (default) for the adaptive window holding ``active_fraction`` of the
            entries in every call.
        active_fraction: target fraction of active entries of the adaptive
            window, in (0, 1]; ignored when ``bth`` is fixed.

    Attributes:
        last_window, last_active, last_total: the window, active-entry count and
            entry count of the last backward of a per-step call (what
            :class:`~snntorch_sparse.SparseLeaky` reports in single-step mode).
    """

    name = "sparse"

    def __init__(self, bth: Optional[float] = DEFAULT_BTH, active_fraction: float = DEFAULT_ACTIVE_FRACTION):
        if isinstance(bth, torch.Tensor) and bth.numel() > 1:
            if not bth.is_floating_point() or not (torch.isfinite(bth).all() and (bth > 0).all()):
                raise ValueError("bth given per neuron must hold finite numbers > 0")
            bth = bth.detach()
        elif bth is not None:
            bth = _positive("bth", bth)
        try:
            active_fraction = float(active_fraction)
        except (TypeError, ValueError):
            raise TypeError(f"active_fraction must be a number in (0, 1], got {active_fraction!r}") from None
        if not 0 < active_fraction <= 1:
            raise ValueError(f"active_fraction must be in (0, 1], got {active_fraction}")
        self.bth = bth
        self.active_fraction = active_fraction
        self.fixed_gain = None
        self.last_window = self.last_active = self.last_total = self.last_gain = None

    @property
    def adaptive(self) -> bool:
        """True when the window adapts to hold ``active_fraction`` of the entries."""
        return self.bth is None

    def derivative(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def derivative_(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`derivative` written over ``x`` (returned), bit for bit the same values.

        Subclasses whose derivative is a chain of elementwise steps override it
        to run the chain in place (no temporaries); this default copies.
        """
        return x.copy_(self.derivative(x))

    def params(self) -> dict:
        """The surrogate's own parameters (for ``repr`` and copies)."""
        return {}

    def window(self, mem_shift: torch.Tensor):
        """This call's half-width: ``bth``, or per neuron the quantile of ``|mem_shift|`` over its rows."""
        if self.bth is not None:
            return self.bth
        return quantile_window(mem_shift, self.active_fraction)

    def gain(self, mem_shift: torch.Tensor, window):
        """This call's per-neuron gain :func:`mass_gain` (adaptive window), else ``self.fixed_gain``."""
        if self.bth is not None:
            return self.fixed_gain
        return mass_gain(self, mem_shift, window)

    def with_window(self, bth: Optional[float] = DEFAULT_BTH,
                    active_fraction: Optional[float] = None, gain=None) -> "SparseSurrogate":
        """A copy with another window, same derivative.

        ``bth``: ``None`` (adaptive), a float, or one half-width per neuron; ``gain``:
        optional per-neuron factors on the windowed derivative. ``layer.frozen_surrogate()``
        uses both to give a dense snnTorch neuron exactly the rule of a layer's last call.
        """
        new = copy.copy(self)
        SparseSurrogate.__init__(new, bth, self.active_fraction if active_fraction is None else active_fraction)
        new.fixed_gain = None if gain is None else torch.as_tensor(gain).detach()
        return new

    def record(self, active: int, total: int, window: float) -> None:
        self.last_active, self.last_total, self.last_window = active, total, window

    def __call__(self, mem_shift: torch.Tensor) -> torch.Tensor:
        return _SparseSpike.apply(mem_shift, self)

    def active(self, mem_shift: torch.Tensor, window=None) -> torch.Tensor:
        """Boolean mask of the window :math:`|x| < B` (``B``: ``window``, else :meth:`window`)."""
        window = self.window(mem_shift) if window is None else window
        return mem_shift.abs() < per_neuron(window, mem_shift)

    def grad(self, mem_shift: torch.Tensor, window=None, gain=None) -> torch.Tensor:
        """Windowed derivative :math:`c\\,\\sigma'(x)\\,[|x| < B]` (dense; ``c`` = ``gain`` or 1)."""
        d = self.derivative(mem_shift)
        if gain is not None:
            d = d * per_neuron(gain, mem_shift)
        return torch.where(self.active(mem_shift, window), d, torch.zeros_like(d))

    def __repr__(self) -> str:
        args = [f"{k}={v}" for k, v in self.params().items()]
        if isinstance(self.bth, torch.Tensor):
            args.append(f"bth=<per neuron, {self.bth.numel()}>")
        else:
            args.append(f"bth={self.bth}" if self.bth is not None else f"active_fraction={self.active_fraction}")
        return f"{self.name}({', '.join(args)})"

    def __getstate__(self):
        state = dict(self.__dict__)
        state["last_window"] = state["last_active"] = state["last_total"] = state["last_gain"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)


class SparseFastSigmoid(SparseSurrogate):
    r"""Sparse form of :func:`snntorch.surrogate.fast_sigmoid`:
    :math:`\sigma'(x) = 1/(k|x| + 1)^2` on the window."""

    name = "sparse_fast_sigmoid"

    def __init__(self, slope: float = DEFAULT_SLOPE, bth=DEFAULT_BTH, active_fraction=DEFAULT_ACTIVE_FRACTION):
        super().__init__(bth, active_fraction)
        self.slope = _positive("slope", slope)

    def derivative(self, x):
        return 1.0 / (self.slope * x.abs() + 1.0) ** 2

    def derivative_(self, x):  # the same steps in place (the final 1.0 * is exact)
        return x.abs_().mul_(self.slope).add_(1.0).pow_(2).reciprocal_()

    def params(self):
        return {"slope": self.slope}


class SparseATan(SparseSurrogate):
    r"""Sparse form of :func:`snntorch.surrogate.atan` (snnTorch's default surrogate):
    :math:`\sigma'(x) = \frac{\alpha/2}{1 + (\frac{\pi}{2}\alpha x)^2}` on the window."""

    name = "sparse_atan"

    def __init__(self, alpha: float = 2.0, bth=DEFAULT_BTH, active_fraction=DEFAULT_ACTIVE_FRACTION):
        super().__init__(bth, active_fraction)
        self.alpha = _positive("alpha", alpha)

    def derivative(self, x):
        return (self.alpha / 2) / (1 + (math.pi / 2 * self.alpha * x) ** 2)

    def derivative_(self, x):  # the same steps in place: (α/2) / t is reciprocal(t) * (α/2)
        return x.mul_(math.pi / 2 * self.alpha).pow_(2).add_(1).reciprocal_().mul_(self.alpha / 2)

    def params(self):
        return {"alpha": self.alpha}


class SparseSigmoid(SparseSurrogate):
    r"""Sparse form of :func:`snntorch.surrogate.sigmoid`:
    :math:`\sigma'(x) = k\,s(kx)\,s(-kx)` with the logistic :math:`s`, on the window.

    This is snnTorch's :math:`k e^{-kx}/(e^{-kx} + 1)^2` in a form that cannot
    overflow (no ``exp`` of a large argument), so steep slopes give no NaN.
    """

    name = "sparse_sigmoid"

    def __init__(self, slope: float = DEFAULT_SLOPE, bth=DEFAULT_BTH, active_fraction=DEFAULT_ACTIVE_FRACTION):
        super().__init__(bth, active_fraction)
        self.slope = _positive("slope", slope)

    def derivative(self, x):
        z = self.slope * x
        return self.slope * torch.sigmoid(z) * torch.sigmoid(-z)

    def params(self):
        return {"slope": self.slope}


# snnTorch's surrogate factories whose closures we can rebuild by name (for pickling and repr).
_SNNTORCH_FACTORIES = ("atan", "fast_sigmoid", "sigmoid", "triangular", "spike_rate_escape",
                       "straight_through_estimator", "SSO", "LSO", "SFS", "heaviside")


def _snntorch_factory(spike_grad) -> Optional[tuple]:
    """``(factory_name, kwargs)`` for a closure made by ``snntorch.surrogate.<factory>(...)``, else None."""
    qual = getattr(spike_grad, "__qualname__", "")
    mod = getattr(spike_grad, "__module__", "")
    if not mod.startswith("snntorch.surrogate") or not qual.endswith(".<locals>.inner"):
        return None
    factory = qual.split(".")[0]
    if factory not in _SNNTORCH_FACTORIES:
        return None
    names = spike_grad.__code__.co_freevars
    cells = spike_grad.__closure__ or ()
    import snntorch.surrogate as snn_sg
    fac = getattr(snn_sg, factory, None)
    if fac is None:
        return None
    accepted = fac.__code__.co_varnames[:fac.__code__.co_argcount]
    kwargs = {n: c.cell_contents for n, c in zip(names, cells) if n in accepted}
    return factory, kwargs


class SparseFromSurrogate(SparseSurrogate):
    """Any snnTorch ``spike_grad`` made sparse; its derivative comes from its own backward.

    The derivative is taken by autograd through ``spike_grad``, so every snnTorch
    surrogate (and any user-written one) works unchanged. snnTorch's own
    factories (``surrogate.triangular(...)`` etc.) are remembered by name and
    arguments, so the surrogate pickles and prints as ``sparse[triangular](...)``.
    """

    def __init__(self, spike_grad: Callable[[torch.Tensor], torch.Tensor], bth=DEFAULT_BTH,
                 active_fraction=DEFAULT_ACTIVE_FRACTION):
        if not callable(spike_grad):
            raise TypeError(f"spike_grad must be callable, got {type(spike_grad).__name__}")
        super().__init__(bth, active_fraction)
        self.spike_grad = spike_grad
        self._factory = _snntorch_factory(spike_grad)
        base = self._factory[0] if self._factory else (
            getattr(spike_grad, "__name__", None) or type(spike_grad).__name__)
        self.name = f"sparse[{base}]"

    def derivative(self, x):
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            (d,) = torch.autograd.grad(self.spike_grad(xr).sum(), xr)
        return d

    def params(self):
        return dict(self._factory[1]) if self._factory else {}

    def __getstate__(self):
        state = super().__getstate__()
        if self._factory is not None:  # snnTorch's closures do not pickle: keep the recipe
            state["spike_grad"] = None
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if self.spike_grad is None:
            import snntorch.surrogate as snn_sg
            name, kwargs = self._factory
            self.spike_grad = getattr(snn_sg, name)(**kwargs)


def sparse_fast_sigmoid(slope: float = DEFAULT_SLOPE, bth=DEFAULT_BTH,
                        active_fraction: float = DEFAULT_ACTIVE_FRACTION) -> SparseFastSigmoid:
    r"""Sparse form of :func:`snntorch.surrogate.fast_sigmoid`.

    .. math:: \sigma'(x) = \frac{1}{(k|x| + 1)^2}\;\mathbb{1}[|x| < B]

    Args:
        slope: steepness :math:`k` (snnTorch's default 25; the sparse-gradient
            paper used 100).
        bth: fixed window half-width :math:`B_{th}`, or ``None`` for the adaptive window.
        active_fraction: the adaptive window's target fraction of active entries.
    """
    return SparseFastSigmoid(slope, bth, active_fraction)


def sparse_atan(alpha: float = 2.0, bth=DEFAULT_BTH,
                active_fraction: float = DEFAULT_ACTIVE_FRACTION) -> SparseATan:
    r"""Sparse form of :func:`snntorch.surrogate.atan` (snnTorch's default surrogate).

    .. math:: \sigma'(x) = \frac{\alpha/2}{1 + (\tfrac{\pi}{2}\alpha x)^2}\;\mathbb{1}[|x| < B]
    """
    return SparseATan(alpha, bth, active_fraction)


def sparse_sigmoid(slope: float = DEFAULT_SLOPE, bth=DEFAULT_BTH,
                   active_fraction: float = DEFAULT_ACTIVE_FRACTION) -> SparseSigmoid:
    r"""Sparse form of :func:`snntorch.surrogate.sigmoid`.

    .. math:: \sigma'(x) = \frac{k e^{-kx}}{(e^{-kx} + 1)^2}\;\mathbb{1}[|x| < B]
    """
    return SparseSigmoid(slope, bth, active_fraction)


def sparsify_surrogate(spike_grad: Callable[[torch.Tensor], torch.Tensor], bth=DEFAULT_BTH,
                       active_fraction: float = DEFAULT_ACTIVE_FRACTION) -> SparseSurrogate:
    """The sparse form of any snnTorch ``spike_grad`` (e.g. ``surrogate.triangular()``).

    snnTorch's ``atan``, ``fast_sigmoid`` and ``sigmoid`` become
    :class:`SparseATan`, :class:`SparseFastSigmoid` and :class:`SparseSigmoid`
    with the same parameter (closed-form derivatives); any other callable
    becomes a :class:`SparseFromSurrogate`. A sparse surrogate gets the new window.

    Args:
        spike_grad: a surrogate callable (an snnTorch ``spike_grad`` or a sparse surrogate).
        bth: fixed window half-width :math:`B_{th}` (a float), or ``None`` (default)
            for the adaptive window.
        active_fraction: the adaptive window's target fraction of active entries
            (default :data:`DEFAULT_ACTIVE_FRACTION`); ignored with a fixed ``bth``.

    Returns:
        A new :class:`SparseSurrogate`: ``spike_grad``'s derivative, clamped to the window.

    Example::

        from snntorch import surrogate
        sparsify_surrogate(surrogate.atan())               # sparse_atan(alpha=2.0, active_fraction=0.08)
        sparsify_surrogate(surrogate.triangular(), 0.2)    # sparse[triangular](threshold=1, bth=0.2)
    """
    if isinstance(spike_grad, SparseSurrogate):
        return spike_grad.with_window(bth, active_fraction)
    if not callable(spike_grad):
        raise TypeError(f"spike_grad must be callable, got {type(spike_grad).__name__}")
    known = _snntorch_factory(spike_grad)
    if known is not None:
        name, kw = known
        if name == "atan":
            return SparseATan(kw.get("alpha", 2.0), bth, active_fraction)
        if name == "fast_sigmoid":
            return SparseFastSigmoid(kw.get("slope", DEFAULT_SLOPE), bth, active_fraction)
        if name == "sigmoid":
            return SparseSigmoid(kw.get("slope", DEFAULT_SLOPE), bth, active_fraction)
    return SparseFromSurrogate(spike_grad, bth, active_fraction)


def _positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not (
            isinstance(value, torch.Tensor) and value.numel() == 1):
        raise TypeError(f"{name} must be a finite number > 0, got {value!r}")
    value = float(value)
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value
