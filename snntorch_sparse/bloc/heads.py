r"""Auxiliary classifier heads and hard-class detectors (HCDs).

Contract: a head maps a block's output spikes ``[T, B, ...]`` to class logits
``[B, C]`` (or to a sequence ``[T, B, C]``, e.g. for snnTorch's rate losses;
predictions then use the sum over time). An HCD has the same form with two
outputs, ``[easy, hard]``.

Two families of read-outs (``bloc.split(..., readout=...)``):

* **rate** (:class:`RateHead`, :class:`HardClassDetector`): a linear map of the
  firing rate :math:`r = \frac{1}{T}\sum_t S[t]` of every output neuron,
  :math:`\text{logits} = W r + b`. It sees *which* neurons fire, not *when*:
  enough for static inputs (rate- or latency-coded images).
* **time-reading** (:class:`LeakyReadout`, :class:`RecurrentReadout`): they keep
  the order of events, for sequences whose classes differ in their temporal
  pattern (speech, SHD). :func:`has_temporal_structure` decides between the two
  families when ``readout="auto"``.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["RateHead", "HardClassDetector", "TimeMean", "TimeMax", "TimeLast", "LeakyReadout",
           "RecurrentReadout", "READOUTS", "readout_factories", "temporal_structure",
           "has_temporal_structure", "logits_of"]


def _check_sequence(x, name: str, in_features: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() < 3:
        raise ValueError(f"{name} must be a block output [T, B, ...] (3 or more dims), got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if math.prod(x.shape[2:]) != in_features:
        raise ValueError(f"{name} has {math.prod(x.shape[2:])} features per step (shape {tuple(x.shape)}), "
                         f"the head was built for in_features = {in_features}")


class RateHead(nn.Module):
    """Linear read-out of time-averaged firing rates (flattened)."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        return self.fc(spikes.mean(0).flatten(1))


class HardClassDetector(RateHead):
    """2-way classifier on firing rates: output ``[B, 2]`` logits of (easy, hard)."""

    def __init__(self, in_features: int):
        super().__init__(in_features, 2)


class TimeMean(nn.Module):
    """Parameter-free head for a block that already ends in a class layer: mean over time."""

    def forward(self, out: torch.Tensor) -> torch.Tensor:
        return out.mean(0).flatten(1)


class TimeMax(nn.Module):
    r"""Parameter-free head for a block ending in a non-spiking class read-out:
    :math:`\text{logits}_c = \max_t U_c[t]` (the end-to-end read-out of the sparse-gradient paper)."""

    def forward(self, out: torch.Tensor) -> torch.Tensor:
        return out.max(0).values.flatten(1)


class TimeLast(nn.Module):
    r"""Parameter-free head for a block ending in a class read-out: :math:`\text{logits} = U[T-1]`."""

    def forward(self, out: torch.Tensor) -> torch.Tensor:
        return out[-1].flatten(1)


def _pack_bits(x: torch.Tensor) -> torch.Tensor:
    """A 0/1 tensor as packed bits (uint8, 8 entries a byte)."""
    flat = x.reshape(-1).to(torch.uint8)
    flat = torch.nn.functional.pad(flat, (0, (-flat.numel()) % 8))
    weights = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8, device=x.device)
    return (flat.view(-1, 8) * weights).sum(1, dtype=torch.uint8)


def _unpack_bits(packed: torch.Tensor, shape, dtype) -> torch.Tensor:
    shifts = torch.arange(8, dtype=torch.uint8, device=packed.device)
    bits = (packed[:, None] >> shifts) & 1
    return bits.reshape(-1)[:math.prod(shape)].view(shape).to(dtype)


def _leaky_readout(x, weight, bias, beta: float, last: bool):
    """``(logits [B, C], selected step [B, C])`` of the leaky read-out (no autograd)."""
    cur = torch.nn.functional.linear(x, weight, bias)  # [T, B, C]
    T = cur.shape[0]
    u = torch.zeros_like(cur[0])
    if last:
        for t in range(T):
            u = beta * u + cur[t]
        return u, torch.full(u.shape, T - 1, dtype=torch.long, device=u.device)
    val, idx = None, None
    for t in range(T):
        u = beta * u + cur[t]
        if val is None:
            val, idx = u.clone(), torch.zeros(u.shape, dtype=torch.long, device=u.device)
        else:
            better = u > val  # the first maximum, as torch.max
            val = torch.where(better, u, val)
            idx = torch.where(better, torch.full_like(idx, t), idx)
    return val, idx


def _step_dtype(T: int) -> torch.dtype:
    """The smallest integer dtype that holds the steps ``0 .. T-1`` (arg-max times kept for backward)."""
    return torch.uint8 if T <= 256 else torch.int16 if T <= 32768 else torch.int64


def _current_grad(g: torch.Tensor, idx: torch.Tensor, T: int, beta: float) -> torch.Tensor:
    r""":math:`\partial L / \partial I[s] = g\, \beta^{t^* - s}` for :math:`s \le t^*`, else 0: ``[T, B, C]``."""
    steps = torch.arange(T, device=g.device).view(T, 1, 1)
    lag = (idx.long().unsqueeze(0) - steps).to(g.dtype)  # t* - s
    return g.unsqueeze(0) * beta ** lag.clamp(min=0) * (lag >= 0)


class _LeakyReadoutFn(torch.autograd.Function):
    r"""``U[t] = beta U[t-1] + x[t] W^T + b``; returns ``max_t U`` or ``U[T-1]`` ``[B, C]``.

    Saved for backward: the input as packed bits when it is 0/1 spikes (1 bit an
    entry; graded inputs are kept as they are) and the arg-max times ``[B, C]``
    (1 byte each for ``T <= 256``).
    With :math:`t^*` the selected step, the gradient :math:`g` of the logits gives
    :math:`\partial L / \partial I[s] = g\, \beta^{t^* - s}` for :math:`s \le t^*`
    (0 after), hence ``dx = dI W``, ``dW = dI^T x``, ``db = sum dI``.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, beta: float, last: bool):
        val, idx = _leaky_readout(x, weight, bias, beta, last)
        binary = bool(((x == 0) | (x == 1)).all())
        stored = _pack_bits(x) if binary else x
        ctx.save_for_backward(stored, idx.to(_step_dtype(x.shape[0])), weight)
        ctx.binary, ctx.beta, ctx.x_shape, ctx.x_dtype = binary, beta, x.shape, x.dtype
        ctx.has_bias = bias is not None
        return val

    @staticmethod
    def backward(ctx, g):
        stored, idx, weight = ctx.saved_tensors
        d_cur = _current_grad(g, idx, ctx.x_shape[0], ctx.beta)  # dL/dI[s], [T, B, C]
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dx = d_cur @ weight
        if ctx.needs_input_grad[1]:
            x = _unpack_bits(stored, ctx.x_shape, ctx.x_dtype) if ctx.binary else stored
            dw = d_cur.reshape(-1, d_cur.shape[-1]).t() @ x.reshape(-1, x.shape[-1])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = d_cur.sum((0, 1))
        return dx, dw, db, None, None


class _LeakyReadoutCEFn(torch.autograd.Function):
    r"""The leaky read-out and its mean cross-entropy in one function, which keeps no copy of the input.

    With the logits :math:`z = \max_t U[t] + m` (or :math:`U[T-1] + m`; ``m`` the
    additive class mask, 0 or :math:`-10^9`), the loss
    :math:`L = -\frac{1}{B}\sum_b \log \mathrm{softmax}(z_b)_{y_b}` has the logit
    gradient :math:`g = (\mathrm{softmax}(z) - \mathrm{onehot}(y)) / B`, known as
    soon as the forward has the logits. The weight and bias gradients
    :math:`dW = \sum_{s} dI[s]^\top x[s]`, :math:`db = \sum_s dI[s]` (``dI`` as in
    :class:`_LeakyReadoutFn`) are therefore formed in the forward, while the
    input ``x`` is at hand, and kept (``C x in_features`` values) instead of ``x``;
    the backward scales them by the incoming gradient :math:`\bar L` of the loss
    and computes ``dx = \bar L\, dI(g) W`` from ``g`` and the arg-max times.
    Saved for backward: ``g [B, C]``, the arg-max times ``[B, C]`` (1 byte each
    for ``T <= 256``), ``dW`` and ``db``; the input, 1 bit an entry in
    :class:`_LeakyReadoutFn`, is not kept.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, beta: float, last: bool, target, mask):
        val, idx = _leaky_readout(x, weight, bias, beta, last)
        logp = torch.log_softmax(val if mask is None else val + mask, 1)
        loss = torch.nn.functional.nll_loss(logp, target)
        g = logp.exp()
        g[torch.arange(len(target), device=g.device), target] -= 1.0
        g /= len(target)
        T = x.shape[0]
        dw = db = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            d_cur = _current_grad(g, idx, T, beta)
            if ctx.needs_input_grad[1]:
                dw = d_cur.reshape(-1, d_cur.shape[-1]).t() @ x.reshape(-1, x.shape[-1])
            if bias is not None and ctx.needs_input_grad[2]:
                db = d_cur.sum((0, 1))
            del d_cur
        ctx.save_for_backward(g, idx.to(_step_dtype(T)), weight, dw, db)
        ctx.beta, ctx.T = beta, T
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gl):
        g, idx, weight, dw, db = ctx.saved_tensors
        dx = None
        if ctx.needs_input_grad[0]:
            dx = _current_grad(g * gl, idx, ctx.T, ctx.beta) @ weight
        return (dx, None if dw is None else dw * gl, None if db is None else db * gl,
                None, None, None, None)


class _LeakyLinear(nn.Linear):
    """The read-out's synapses: an ``nn.Linear`` (so that op counting sees them) whose forward is the leaky read-out."""

    def __init__(self, in_features: int, out_features: int, beta: float, last: bool):
        super().__init__(in_features, out_features)
        self.beta, self.last = beta, last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = (self.weight, self.bias) if self.bias is not None else (self.weight,)
        if not torch.is_grad_enabled() or not (x.requires_grad or any(p.requires_grad for p in params)):
            return _leaky_readout(x, self.weight, self.bias, self.beta, self.last)[0]  # inference: nothing to save
        return _LeakyReadoutFn.apply(x, self.weight, self.bias, self.beta, self.last)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, beta={self.beta}, reduce={'last' if self.last else 'max'}"


class LeakyReadout(nn.Module):
    r"""Non-spiking leaky read-out of a spike sequence.

    With the block's output spikes :math:`S[t]` (flattened to ``in_features``)
    and a fixed decay :math:`\beta`, the membrane of ``num_classes`` leaky
    integrators that never spike nor reset is

    .. math:: U[t] = \beta\, U[t-1] + W S[t] + b, \qquad U[-1] = 0,

    and the logits are :math:`\max_t U[t]` (``reduce="max"``) or :math:`U[T-1]`
    (``reduce="last"``). :math:`U[t] = \sum_{s \le t} \beta^{t-s} (W S[s] + b)` is a
    rate over a sliding exponential window of time constant
    :math:`-1/\ln\beta` steps (~10 for 0.9): unlike :class:`RateHead` it sees
    *when* evidence arrives. It is the non-spiking read-out of the sparse-gradient
    paper (:class:`~snntorch_sparse.SparseLinearLeaky` with ``readout=True``
    computes the same membrane); here the backward keeps only the input spikes
    as packed bits (1 bit per entry) and the arg-max times, and
    :meth:`cross_entropy` (the trainer's default loss) not even the input: it
    forms the weight gradient in the forward and keeps that, so a head adds
    little to the bytes a block keeps for training.

    ``max`` is robust to where in the sequence the evidence sits (speech with
    variable onset); ``last`` reads the end of the sequence, for inputs aligned
    to their end or when the label depends on the whole history.
    """

    def __init__(self, in_features: int, num_classes: int, beta: float = 0.9, reduce: str = "max"):
        super().__init__()
        if reduce not in ("max", "last"):
            raise ValueError(f"reduce must be 'max' or 'last', got {reduce!r}")
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be a number in [0, 1], got {beta!r}")
        self.in_features, self.num_classes, self.reduce = in_features, num_classes, reduce
        self.layer = _LeakyLinear(in_features, num_classes, float(beta), reduce == "last")

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        _check_sequence(spikes, "spikes", self.in_features)
        x = spikes.flatten(2) if spikes.dim() > 3 else spikes
        return self.layer(x.to(self.layer.weight.dtype))

    def cross_entropy(self, spikes: torch.Tensor, target: torch.Tensor, mask=None) -> torch.Tensor:
        r"""``F.cross_entropy(self(spikes) + mask, target)`` (mean over the batch), keeping no copy of ``spikes``.

        The gradient of the loss w.r.t. the logits, :math:`(\mathrm{softmax} -
        \mathrm{onehot}) / B`, is known in the forward, so the head's weight
        and bias gradients are formed there and kept (``num_classes x
        in_features`` values) in place of the input (the math is in
        ``_LeakyReadoutCEFn``). Same value and gradients as the two-step
        form; what :class:`~snntorch_sparse.bloc.BlocTrainer` uses with its
        default loss. ``mask``: ``None`` or an additive ``[num_classes]`` logit mask.
        """
        _check_sequence(spikes, "spikes", self.in_features)
        if not isinstance(target, torch.Tensor) or target.dim() != 1 or target.dtype != torch.long \
                or len(target) != spikes.shape[1]:
            raise ValueError(f"target must be int64 class indices [B] with B = {spikes.shape[1]}, got "
                             f"{tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__}"
                             f"{' ' + str(target.dtype) if isinstance(target, torch.Tensor) else ''}")
        if mask is not None and (not isinstance(mask, torch.Tensor) or mask.shape != (self.num_classes,)):
            raise ValueError(f"mask must be None or a tensor [num_classes] = [{self.num_classes}], got "
                             f"{tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__}")
        x = spikes.flatten(2) if spikes.dim() > 3 else spikes
        layer = self.layer
        x = x.to(layer.weight.dtype)
        params = (layer.weight, layer.bias) if layer.bias is not None else (layer.weight,)
        if not torch.is_grad_enabled() or not (x.requires_grad or any(p.requires_grad for p in params)):
            logits = _leaky_readout(x, layer.weight, layer.bias, layer.beta, layer.last)[0]
            return torch.nn.functional.cross_entropy(logits if mask is None else logits + mask, target)
        return _LeakyReadoutCEFn.apply(x, layer.weight, layer.bias, layer.beta, layer.last, target,
                                       None if mask is None else mask.to(layer.weight.dtype))


class RecurrentReadout(nn.Module):
    r"""Small recurrent read-out (Elman network) over the spike sequence.

    .. math:: h[t] = \tanh(W_x S[t] + W_h h[t-1] + b), \quad h[-1] = 0, \qquad
              \text{logits}_c = \max_t\, (W_o h[t] + b_o)_c

    with ``hidden`` units (max over time, as :class:`LeakyReadout`: the last
    step alone reads the silence of zero-padded recordings). It can model
    order (a before b) that a leaky integrator cannot, at the price of a dense ``hidden x hidden`` product per
    step (counted by :func:`~snntorch_sparse.bloc.count_ops` as MACs and
    synaptic operations: ``h`` is not sparse) and of a backward that keeps the
    input and every ``h[t]``. The linear maps are ``nn.Linear``, so op counting
    sees them.
    """

    def __init__(self, in_features: int, num_classes: int, hidden: int = 32):
        super().__init__()
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"hidden must be an int >= 1, got {hidden!r}")
        self.in_features = in_features
        self.inp = nn.Linear(in_features, hidden)
        self.rec = nn.Linear(hidden, hidden, bias=False)
        self.out = nn.Linear(hidden, num_classes)

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        _check_sequence(spikes, "spikes", self.in_features)
        drive = self.inp(spikes.flatten(2).to(self.inp.weight.dtype))  # [T, B, hidden], one GEMM
        h = torch.tanh(drive[0])
        hs = [h]
        for t in range(1, drive.shape[0]):
            h = torch.tanh(drive[t] + self.rec(h))
            hs.append(h)
        return self.out(torch.stack(hs)).max(0).values


#: ``readout`` kinds of :func:`~snntorch_sparse.bloc.split`: ``(head(f, C), hcd(f), own read-out)``.
READOUTS = {
    "rate": (RateHead, HardClassDetector, TimeMean),
    "leaky-max": (lambda f, c: LeakyReadout(f, c, reduce="max"),
                  lambda f: LeakyReadout(f, 2, reduce="max"), TimeMax),
    "leaky-last": (lambda f, c: LeakyReadout(f, c, reduce="last"),
                   lambda f: LeakyReadout(f, 2, reduce="last"), TimeLast),
    "recurrent": (lambda f, c: RecurrentReadout(f, c), lambda f: RecurrentReadout(f, 2), TimeMax),
}


def readout_factories(kind: str):
    """``(head factory, hcd factory, own read-out class)`` of a ``readout`` kind (see :data:`READOUTS`)."""
    if kind not in READOUTS:
        raise ValueError(f"readout must be 'auto' or one of {sorted(READOUTS)}, got {kind!r}")
    return READOUTS[kind]


@torch.no_grad()
def temporal_structure(x: torch.Tensor, bins: int = 4, min_spikes: int = 2) -> float:
    r"""How much the input's per-channel activity changes over time, relative to chance.

    ``x [T, B, ...]`` is cut into ``bins`` consecutive windows of
    :math:`L = \lfloor T / \text{bins} \rfloor` steps. For every (sample, channel)
    with at least ``min_spikes`` non-zero steps, let :math:`m_j` be its mean in
    window :math:`j` and :math:`s^2` its variance over all steps. If the
    channel's values were drawn independently of time (a rate code), the
    window means would vary by :math:`s^2 / L`; the ratio

    .. math:: R = \frac{\sum \mathrm{Var}_j(m_j)}{\sum s^2 / L}

    is then about 1, and much larger when activity comes in bursts (speech:
    about 4.5 on FSDD). Channels with a single spike (a latency code of a
    static value, as for the digits) carry no rate to compare and are left
    out. Returns 0 when nothing is left (e.g. ``T < 2·bins``).
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 3:
        raise ValueError(f"x must be time-major [T, B, ...], got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ValueError(f"bins must be an int >= 2, got {bins!r}")
    T = x.shape[0]
    L = T // bins
    if L < 2:
        return 0.0
    v = x[:L * bins].reshape(L * bins, -1).double()
    v = v[:, (v != 0).sum(0) >= min_spikes]
    if not v.shape[1]:
        return 0.0
    expected = (v.var(0) / L).sum()
    if expected <= 0:
        return 0.0
    return float(v.view(bins, L, -1).mean(1).var(0).sum() / expected)


def has_temporal_structure(x: torch.Tensor, threshold: float = 2.0) -> bool:
    """``temporal_structure(x) >= threshold``: the rule of ``readout="auto"``."""
    return temporal_structure(x) >= threshold


def logits_of(head_out: torch.Tensor) -> torch.Tensor:
    """Class scores ``[B, C]`` from a head's output (summing a ``[T, B, C]`` sequence)."""
    return head_out.sum(0) if head_out.dim() == 3 else head_out
