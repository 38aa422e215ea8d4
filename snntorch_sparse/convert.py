"""Swap snnTorch layers for sparse ones (:func:`sparsify`) and back (:func:`desparsify`).

snnTorch models come in two styles, and :func:`sparsify` keeps each working:

* an ``nn.Sequential`` of layers with ``init_hidden=True`` neurons, called once
  per time step. It becomes a *sequence* model, called once per sequence
  ``[T, B, ...]``: each ``nn.Linear`` + ``snn.Leaky`` pair turns into one fused
  :class:`~snntorch_sparse.SparseLinearLeaky`, other ``snn.Leaky`` neurons into
  multi-step :class:`~snntorch_sparse.SparseLeaky`, and stateless layers
  (conv, flatten, pooling, ...) are wrapped in :class:`TimeDistributed`.
  Nested ``nn.Sequential`` blocks are converted the same way, in place; any
  other module that holds a spiking neuron raises ``TypeError`` (folding time
  into the batch would give its neuron one step over the whole sequence).
  The one-line change to a training loop::

      # before: for t in range(T): spk, mem = net(x[t]); ...   (after utils.reset(net))
      net = sparsify(net)
      spk_rec, mem_rec = net(x)            # x: [T, B, ...], outputs [T, B, ...]

* any other module (a custom ``forward`` looping over time): every
  ``snn.Leaky`` becomes a single-step :class:`~snntorch_sparse.SparseLeaky`
  (one autograd node per step, :mod:`snntorch_sparse.step`); the loop is
  unchanged and the gradients are the sparse ones. Its ``nn.Linear`` and
  convolution layers compute their output once per call of the model when the
  loop feeds them the same unchanged input at every step, as snnTorch's
  tutorials do with a static image (:mod:`snntorch_sparse.reuse`).

Weights, betas (unclamped: like snnTorch, the layers clamp beta to [0, 1] in
their forward), thresholds and train/eval modes are copied; the result is a new
model, and ``model`` may have run before (graph-attached hidden state is copied
detached).
"""
from __future__ import annotations

import copy

import snntorch as snn
import torch
from torch import nn

from ._validation import as_float_param, check_backend, check_event_forward
from .layers import SparseLinearLeaky
from .neurons import SparseLeaky, resolve_surrogate
from .reuse import disable_input_reuse, enable_input_reuse
from .recurrent import SparseLinearRLeaky, SparseRLeaky, dense_rleaky_from, fuse_rleaky, sparse_rleaky_from
from .alpha import SparseAlpha, SparseLinearAlpha, dense_alpha_from, fuse_alpha, sparse_alpha_from
from .rsynaptic import (SparseLinearRSynaptic, SparseRSynaptic, dense_rsynaptic_from, fuse_rsynaptic,
                        sparse_rsynaptic_from)
from .synaptic import (SparseLinearSynaptic, SparseSynaptic, dense_synaptic_from, fuse_synaptic,
                       sparse_synaptic_from)

__all__ = ["sparsify", "desparsify", "TimeDistributed"]


class TimeDistributed(nn.Module):
    """Apply a stateless module to every time step of ``[T, B, ...]``.

    Convolutions and pooling run step by step (see :attr:`per_step`); other
    modules see time folded into the batch (``[T·B, ...]``) and unfolded after.
    Batch-norm layers therefore see statistics over all time steps.

    Args:
        module: a module without state over time (``nn.Conv2d``, ``nn.Flatten``,
            ``nn.Dropout``, an ``nn.Sequential`` of such layers, ...) that maps
            one step ``[B, ...]`` to ``[B, ...]``. :func:`sparsify` wraps the
            stateless layers of an ``nn.Sequential`` in it.

    Shape:
        input ``[T, B, ...]``, output ``[T, B, ...]`` (``module``'s output shape per step).

    Example::

        td = TimeDistributed(nn.Conv2d(1, 8, 3))
        y = td(torch.rand(25, 4, 1, 28, 28))   # [25, 4, 8, 26, 26]
    """

    multi_step = True

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expected, first = _time_major_dims(self.module)
        if x.dim() < 2 or (expected is not None and x.dim() != expected):
            want = f"{expected} dims" if expected is not None else "2 or more dims"
            raise ValueError(
                f"x must be time-major [T, B, ...] ({want} for {type(first).__name__}), got shape "
                f"{tuple(x.shape)}. A converted model takes the whole sequence in one call; a static input "
                "that snnTorch's loop feeds at every step is repeated over time first: "
                "x.unsqueeze(0).expand(num_steps, *x.shape)")
        T, B = x.shape[:2]
        if self.per_step:
            return torch.stack([self.module(x_t) for x_t in x.unbind(0)])   # unbind: one backward node
        y = self.module(x.reshape(T * B, *x.shape[2:]))
        return y.reshape(T, B, *y.shape[1:])

    @property
    def per_step(self) -> bool:
        """Convolutions and pooling run one time step at a time.

        On ``[B, C, H, W]`` blocks their working set stays in cache; folded into
        one ``[T·B, C, H, W]`` batch the same convolution ran 2x slower, forward
        and backward (tutorial 6's CSNN on 2 CPU cores). Other layers fold time
        into the batch.
        """
        m = self.module
        return type(m) in _PER_STEP or (type(m) is nn.Sequential and len(m) > 0
                                        and all(type(c) in _PER_STEP for c in m))


_CONV_DIMS = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3, nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3,
              nn.AvgPool1d: 1, nn.AvgPool2d: 2, nn.AvgPool3d: 3, nn.BatchNorm1d: None, nn.BatchNorm2d: 2,
              nn.BatchNorm3d: 3, nn.ConvTranspose1d: 1, nn.ConvTranspose2d: 2, nn.ConvTranspose3d: 3}


_PER_STEP = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d,
             nn.AvgPool2d, nn.AvgPool3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _time_major_dims(module: nn.Module):
    """The dims a time-major input of ``module`` must have (``[T, B, C, *spatial]``), if fixed, and its first layer."""
    first = module
    while isinstance(first, nn.Sequential) and len(first):
        first = first[0]
    spatial = _CONV_DIMS.get(type(first))
    return (None if spatial is None else spatial + 3), first


def _is_param(t) -> bool:
    return isinstance(t, nn.Parameter)


def _copy(module: nn.Module) -> nn.Module:
    """``copy.deepcopy`` that also works after a forward pass.

    snnTorch neurons keep their last membrane (``mem``, ``reset``, ...) attached to
    the autograd graph, which ``copy.deepcopy`` refuses. Such non-leaf tensors are
    copied detached; ``module`` itself is not changed.
    """
    memo = {}
    for m in module.modules():
        for v in list(vars(m).values()) + list(m._buffers.values()):
            if isinstance(v, torch.Tensor) and not v.is_leaf:
                memo[id(v)] = v.detach().clone()
    return copy.deepcopy(module, memo)


def _beta_threshold(leaky, where: str):
    """Detached copies of ``beta`` and ``threshold`` (``beta`` as a float tensor).

    ``beta`` is not checked against [0, 1]: snnTorch clamps it in its forward
    (a learnable beta may drift past 1) and so do the sparse layers.
    """
    beta = as_float_param(leaky.beta.detach().clone())
    threshold = leaky.threshold.detach().clone()
    for name, t in (("beta", beta), ("threshold", threshold)):
        if t.device.type != "meta" and not torch.isfinite(t).all():  # meta: no values
            raise ValueError(f"sparsify: {name} of the {type(leaky).__name__} at {where} contains NaN or inf")
    return beta, threshold


def _check_shape(t: torch.Tensor, name: str, where: str, n: int | None) -> None:
    """``beta``/``threshold`` must be a scalar or one value per neuron (no broadcasting over features)."""
    if t.numel() == 1:
        return
    shape = list(t.shape)
    while shape and shape[0] == 1:
        shape.pop(0)
    if n is not None:
        ok, expected = shape == [n], f"a scalar or shape [{n}] (one per output neuron)"
    else:
        ok, expected = 1 not in shape, "a scalar or one value per neuron (the full feature shape, e.g. [C, H, W])"
    if not ok:
        raise ValueError(
            f"sparsify: {name} of the snn.Leaky at {where} has shape {tuple(t.shape)}, which snnTorch "
            f"broadcasts over the neurons (e.g. per channel); the sparse layers need {expected}. "
            f"Expand it first (e.g. {name}.expand(C, H, W); a learnable {name} then becomes per-neuron) "
            "or keep this neuron in snnTorch")


def _check_multi_step(leaky: snn.Leaky, where: str) -> None:
    """Options of ``snn.Leaky`` that the multi-step (fused) sparse layers lack."""
    g = leaky.graded_spikes_factor
    bad = [name for name, on in (
        ("inhibition=True", leaky.inhibition),
        ("state_quant", bool(leaky.state_quant)),
        ("reset_delay=False", not leaky.reset_delay),
        ("surrogate_disable=True", getattr(leaky, "surrogate_disable", False)),
        ("learn_graded_spikes_factor=True", _is_param(g)),
        ("graded_spikes_factor != 1", torch.as_tensor(g).device.type != "meta"
         and bool((torch.as_tensor(g).detach() != 1).any())))
        if on]
    if bad:
        raise ValueError(f"sparsify: the snn.Leaky at {where} uses {', '.join(bad)}, which the multi-step "
                         "sparse layers (SparseLinearLeaky, SparseLeaky(step_mode='multi')) do not "
                         "support; remove the option or keep this neuron in snnTorch")


def _single_step_options(leaky) -> dict:
    """snnTorch options a single-step SparseLeaky (or snn.Leaky) carries over unchanged."""
    g = getattr(leaky, "graded_spikes_factor", None)
    return dict(surrogate_disable=getattr(leaky, "surrogate_disable", False),
                inhibition=getattr(leaky, "inhibition", False),
                state_quant=getattr(leaky, "state_quant", False),
                reset_delay=getattr(leaky, "reset_delay", True),
                graded_spikes_factor=1.0 if g is None else g.detach().clone(),
                learn_graded_spikes_factor=_is_param(g))


def _output_full(sg, leaky, active_fraction):
    """An output neuron (``output=True``) with the default adaptive window keeps its full surrogate.

    The output layer carries the loss's own gradient and holds few neurons, so
    clamping it saves little and cost accuracy on snnTorch's tutorial CSNNs;
    with ``active_fraction=1`` every entry is inside the window (gain 1): its
    gradient is the dense surrogate's. A fixed ``bth`` or an explicit
    ``active_fraction`` applies to it as to every other neuron.
    """
    if getattr(leaky, "output", False) and sg.adaptive and active_fraction is None:
        return sg.with_window(None, 1.0)
    return sg


def _sparse_neuron(leaky: snn.Leaky, step_mode: str, bth, spike_grad, backend, where: str,
                   active_fraction=None) -> SparseLeaky:
    beta, threshold = _beta_threshold(leaky, where)
    if step_mode == "multi":
        _check_multi_step(leaky, where)
        _check_shape(beta, "beta", where, None)
        _check_shape(threshold, "threshold", where, None)
        extra = {}
    else:
        extra = _single_step_options(leaky)
    sg = _output_full(resolve_surrogate(spike_grad if spike_grad is not None else leaky.spike_grad, bth,
                                        active_fraction), leaky, active_fraction)
    new = SparseLeaky(beta=beta.clamp(0, 1), threshold=threshold, learn_beta=_is_param(leaky.beta),
                      learn_threshold=_is_param(leaky.threshold), reset_mechanism=leaky.reset_mechanism,
                      spike_grad=sg, init_hidden=leaky.init_hidden, output=leaky.output,
                      step_mode=step_mode, backend=backend, **extra)
    with torch.no_grad():
        new.beta.copy_(beta)  # unclamped, as in snnTorch; the forward clamps
    new.train(leaky.training)
    new._monitor.name = f"{where} ({new._monitor.name})"
    return new.to(leaky.beta.device)


def _fuse(linear: nn.Linear, leaky: snn.Leaky, bth, spike_grad, backend, event_forward, where: str,
          active_fraction=None) -> SparseLinearLeaky:
    _check_multi_step(leaky, where)
    beta, threshold = _beta_threshold(leaky, where)
    _check_shape(beta, "beta", where, linear.out_features)
    _check_shape(threshold, "threshold", where, linear.out_features)
    sg = _output_full(resolve_surrogate(spike_grad if spike_grad is not None else leaky.spike_grad, bth,
                                        active_fraction), leaky, active_fraction)
    with torch.random.fork_rng(devices=[]):  # the layer's own init is overwritten: leave the generator as it was
        layer = SparseLinearLeaky(linear.in_features, linear.out_features, beta=beta.clamp(0, 1),
                                  threshold=threshold, spike_grad=sg, bias=linear.bias is not None,
                                  learn_beta=_is_param(leaky.beta), learn_threshold=_is_param(leaky.threshold),
                                  reset_mechanism=leaky.reset_mechanism, output=leaky.output, backend=backend,
                                  event_forward=event_forward, device=linear.weight.device,
                                  dtype=linear.weight.dtype)
    layer._monitor.name = f"{where} ({layer._monitor.name})"
    with torch.no_grad():
        layer.fc.weight.copy_(linear.weight)
        if linear.bias is not None:
            layer.fc.bias.copy_(linear.bias)
        layer.beta.copy_(beta)  # unclamped, as in snnTorch; the forward clamps
    layer.train(leaky.training)
    return layer


# nn.Linear followed by this exact neuron type -> one fused layer; every entry
# takes (linear, neuron, bth, spike_grad, backend, event_forward, where, active_fraction).
_LINEAR_FUSERS = {
    snn.Leaky: _fuse,
    snn.Synaptic: lambda lin, n, bth, sg, be, ef, where, af: fuse_synaptic(lin, n, bth, sg, be, where, af, ef),
    snn.RLeaky: lambda lin, n, bth, sg, be, ef, where, af: fuse_rleaky(lin, n, bth, sg, be, where, af, ef),
    snn.RSynaptic: lambda lin, n, bth, sg, be, ef, where, af: fuse_rsynaptic(lin, n, bth, sg, be, where, af, ef),
    snn.Alpha: lambda lin, n, bth, sg, be, ef, where, af: fuse_alpha(lin, n, bth, sg, be, where, af, ef),
}


def sparsify(model: nn.Module, bth: float | None = None, spike_grad=None, backend=None,
             event_forward=None, active_fraction: float | None = None) -> nn.Module:
    """Return a copy of ``model`` with sparse layers (see module docs).

    An ``nn.Sequential`` model becomes a *sequence* model: it takes the whole
    time-major sequence ``[T, B, ...]`` in one call and returns ``[T, B, ...]``
    (the last neuron's ``(spk, mem)`` if it has ``output=True``), instead of being
    called once per step; each call starts from zero membranes. Inside it, a
    ``Linear`` + ``Leaky`` pair is one fused layer over all steps, convolutions
    and pooling still run one step at a time (:class:`TimeDistributed`). A model
    with its own ``forward`` keeps its loop over time and its call signature.

    Example::

        import torch, snntorch as snn
        from torch import nn
        from snntorch_sparse import sparsify, desparsify

        net = nn.Sequential(nn.Linear(700, 200), snn.Leaky(beta=0.9, init_hidden=True),
                            nn.Linear(200, 20), snn.Leaky(beta=0.9, init_hidden=True, output=True))
        sparse = sparsify(net)                 # the copy; net is unchanged
        x = (torch.rand(100, 32, 700) < 0.02).float()
        spk, mem = sparse(x)                   # [100, 32, 20] each: all 100 steps in one call
        dense = desparsify(sparse)             # back to snnTorch, called once per step

    Nested ``nn.Sequential`` blocks are converted in place (same structure).
    A module of another kind inside an ``nn.Sequential`` that holds a spiking
    neuron raises ``TypeError`` (it would otherwise see one time step over the
    whole sequence). The hidden state of ``model`` is not needed: it can be
    converted after a forward pass. Train/eval modes are kept.

    Args:
        model: an snnTorch model.
        bth: fixed active-window half-width for every neuron. ``None`` (default):
            keep a sparse surrogate's own window, else the adaptive window, which
            holds the ``active_fraction`` of entries closest to threshold in every
            call, so no layer is left without gradient at any initialisation.
            A fixed ``bth`` gives exactly snnTorch's gradients with the same
            clamped surrogate.
        spike_grad: surrogate for every neuron (``None``: sparsify each neuron's
            own, e.g. snnTorch's default ``atan`` becomes ``sparse_atan``).
        active_fraction: target fraction of the adaptive window (``None``: the
            surrogate's own, default
            :data:`~snntorch_sparse.surrogate.DEFAULT_ACTIVE_FRACTION`).
        backend: op backend for the fused layers.
        event_forward: for the fused layers (see :class:`~snntorch_sparse.SparseLinearLeaky`):
            ``None`` (auto), ``True`` (input current summed over the input's spikes only,
            equal to the GEMM up to float rounding) or ``False`` (one GEMM, bit-exact).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    check_backend(backend)
    check_event_forward(event_forward)
    if active_fraction is not None and bth is not None:
        raise ValueError("sparsify: give bth (a fixed window) or active_fraction (the adaptive window), not both")
    opts = dict(bth=bth, spike_grad=spike_grad, backend=backend, active_fraction=active_fraction)
    if isinstance(model, nn.Sequential):
        return _sparsify_sequential(model, event_forward=event_forward, **opts)
    model = _copy(model)
    _swap_neurons(model, **opts)
    enable_input_reuse(model)
    return model


def _swap_neurons(module: nn.Module, bth, spike_grad, backend, active_fraction, prefix: str = "") -> None:
    for name, child in module.named_children():
        where = f"'{prefix}{name}'"
        if type(child) is snn.Leaky:
            new = _sparse_neuron(child, "single", bth, spike_grad, backend, where, active_fraction)
            new.mem = child.mem
            setattr(module, name, new)
        elif type(child) is snn.Synaptic:
            new = sparse_synaptic_from(child, "single", bth, spike_grad, backend, where, active_fraction)
            new.syn, new.mem = child.syn, child.mem
            setattr(module, name, new)
        elif type(child) is snn.RLeaky:
            new = sparse_rleaky_from(child, "single", bth, spike_grad, backend, where, active_fraction)
            new.spk, new.mem = child.spk, child.mem
            setattr(module, name, new)
        elif type(child) is snn.RSynaptic:
            new = sparse_rsynaptic_from(child, "single", bth, spike_grad, backend, where, active_fraction)
            new.spk, new.syn, new.mem = child.spk, child.syn, child.mem
            setattr(module, name, new)
        elif type(child) is snn.Alpha:
            new = sparse_alpha_from(child, "single", bth, spike_grad, backend, where, active_fraction)
            new.syn_exc, new.syn_inh, new.mem = child.syn_exc, child.syn_inh, child.mem
            setattr(module, name, new)
        elif isinstance(child, snn.SpikingNeuron) and not isinstance(child, (SparseLeaky, SparseSynaptic,
                                                                               SparseRLeaky, SparseRSynaptic,
                                                                               SparseAlpha)):
            _refuse_neuron(child, where)
        else:
            _swap_neurons(child, bth, spike_grad, backend, active_fraction, f"{prefix}{name}.")


# The snnTorch neuron types sparsify converts (exactly these types, not their subclasses).
_CONVERTED = (snn.Leaky, snn.Synaptic, snn.RLeaky, snn.RSynaptic, snn.Alpha)


def _refuse_neuron(m: nn.Module, where: str) -> None:
    base = next((c for c in _CONVERTED if isinstance(m, c)), None)
    kind = f"a subclass of snn.{base.__name__}" if base is not None else "an snnTorch neuron"
    names = ", ".join(f"snn.{c.__name__}" for c in _CONVERTED)
    raise TypeError(f"sparsify: {type(m).__name__} at {where} is {kind} without a sparse counterpart; "
                    f"only {names} themselves are converted (a subclass may change the "
                    "neuron's behaviour). Keep this neuron in snnTorch, or replace it by snn.Leaky first")


def _stateful_inside(module: nn.Module):
    """Path and module of the first spiking neuron / multi-step layer below ``module``."""
    for name, sub in module.named_modules():
        if name and (isinstance(sub, snn.SpikingNeuron) or getattr(sub, "multi_step", False)):
            return name, sub
    return None, None


def _sparsify_sequential(seq: nn.Sequential, bth, spike_grad, backend, event_forward=None,
                         active_fraction=None, prefix: str = "") -> nn.Sequential:
    items = list(seq.named_children())
    out = []
    i = 0
    while i < len(items):
        name, m = items[i]
        where = f"'{prefix}{name}'"
        nxt = items[i + 1][1] if i + 1 < len(items) else None
        if type(m) is nn.Sequential:  # a block: converted in place, it maps [T, B, ...] to [T, B, ...]
            out.append(_sparsify_sequential(m, bth, spike_grad, backend, event_forward, active_fraction,
                                            f"{prefix}{name}."))
        elif isinstance(m, nn.Linear) and type(nxt) in _LINEAR_FUSERS:
            nxt_where = f"'{prefix}{items[i + 1][0]}'"
            _require_hidden(nxt, nxt_where)
            out.append(_LINEAR_FUSERS[type(nxt)](m, nxt, bth, spike_grad, backend, event_forward, nxt_where,
                                                 active_fraction))
            i += 2
            continue
        elif type(m) is snn.RLeaky or isinstance(m, SparseRLeaky):
            _require_hidden(m, where)
            out.append(sparse_rleaky_from(m, "multi", bth, spike_grad, backend, where, active_fraction))
        elif type(m) is snn.Alpha or isinstance(m, SparseAlpha):
            _require_hidden(m, where)
            out.append(sparse_alpha_from(m, "multi", bth, spike_grad, backend, where, active_fraction))
        elif type(m) is snn.RSynaptic or isinstance(m, SparseRSynaptic):
            _require_hidden(m, where)
            out.append(sparse_rsynaptic_from(m, "multi", bth, spike_grad, backend, where, active_fraction))
        elif type(m) is snn.Synaptic or isinstance(m, SparseSynaptic):
            _require_hidden(m, where)
            out.append(sparse_synaptic_from(m, "multi", bth, spike_grad, backend, where, active_fraction))
        elif getattr(m, "multi_step", False):
            out.append(_copy(m))
        elif type(m) is snn.Leaky or isinstance(m, SparseLeaky):
            _require_hidden(m, where)
            out.append(_sparse_neuron(m, "multi", bth, spike_grad, backend, where, active_fraction))
        elif isinstance(m, snn.SpikingNeuron):
            _refuse_neuron(m, where)
        else:
            sub_name, sub = _stateful_inside(m)
            if sub is not None:
                raise TypeError(
                    f"sparsify: {type(m).__name__} at {where} holds the stateful {type(sub).__name__} at "
                    f"'{prefix}{name}.{sub_name}'. Inside an nn.Sequential, sparsify applies modules other "
                    "than neurons and nested nn.Sequential to all T·B rows at once, which would run this "
                    "neuron as one time step over the whole sequence. Put its layers in an nn.Sequential, "
                    "or sparsify a model whose own forward loops over time")
            if type(m) in _PER_STEP:
                # a run of convolutions / pooling: one per-step block, so each step's
                # intermediate stays in cache and only the block's output is stacked
                run = [m]
                while i + 1 < len(items) and type(items[i + 1][1]) in _PER_STEP:
                    i += 1
                    run.append(items[i][1])
                block = _copy(run[0]) if len(run) == 1 else nn.Sequential(*(_copy(r) for r in run))
                block.training = m.training
                td = TimeDistributed(block)
            else:
                td = TimeDistributed(_copy(m))
            td.training = m.training
            out.append(td)
        i += 1
    res = nn.Sequential(*out)
    res.training = seq.training
    return res


def _require_hidden(leaky: snn.Leaky, where: str) -> None:
    if not leaky.init_hidden:
        raise ValueError(f"sparsify: the snn.Leaky at {where} of the nn.Sequential must have "
                         "init_hidden=True (snnTorch's convention for layers inside nn.Sequential)")


def desparsify(model: nn.Module) -> nn.Module:
    """Inverse of :func:`sparsify`: snnTorch dense layers, called once per time step.

    The result of an ``nn.Sequential`` is again snnTorch's usual per-step model:
    call it once per step (``utils.reset`` first), not with the whole sequence::

        dense = desparsify(sparsify(net))
        snntorch.utils.reset(dense)
        out = [dense(x[t]) for t in range(x.shape[0])]   # same spikes as sparsify(net)(x)

    Fused layers become ``nn.Linear`` + ``snn.Leaky(init_hidden=True)``, multi-step
    neurons become ``snn.Leaky``; the clamped surrogate is kept so gradients
    stay those of the sparse model. A readout layer becomes a non-resetting
    ``snn.Leaky(output=True)`` whose membrane is the readout. Nested
    ``nn.Sequential`` blocks are converted in place; train/eval modes are kept.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(model, nn.Sequential):
        model = _copy(model)
        _unswap_neurons(model)
        disable_input_reuse(model)
        return model
    return _desparsify_sequential(model)


def _desparsify_sequential(seq: nn.Sequential) -> nn.Sequential:
    out = []
    for m in seq:
        if type(m) is nn.Sequential:
            out.append(_desparsify_sequential(m))
        elif isinstance(m, SparseLinearLeaky):
            out += [_dense_linear(m), _dense_leaky(m, init_hidden=True, output=m.output or m.readout)]
        elif isinstance(m, SparseLinearSynaptic):
            out += [_dense_linear(m), dense_synaptic_from(m, init_hidden=True, output=m.output)]
        elif isinstance(m, SparseSynaptic):
            out.append(dense_synaptic_from(m, init_hidden=m.init_hidden, output=m.output))
        elif isinstance(m, SparseLinearRLeaky):
            out += [_dense_linear(m), dense_rleaky_from(m, init_hidden=True, output=m.output)]
        elif isinstance(m, SparseRLeaky):
            out.append(dense_rleaky_from(m, init_hidden=m.init_hidden, output=m.output))
        elif isinstance(m, SparseLinearRSynaptic):
            out += [_dense_linear(m), dense_rsynaptic_from(m, init_hidden=True, output=m.output)]
        elif isinstance(m, SparseRSynaptic):
            out.append(dense_rsynaptic_from(m, init_hidden=m.init_hidden, output=m.output))
        elif isinstance(m, SparseLinearAlpha):
            out += [_dense_linear(m), dense_alpha_from(m, init_hidden=True, output=m.output)]
        elif isinstance(m, SparseAlpha):
            out.append(dense_alpha_from(m, init_hidden=m.init_hidden, output=m.output))
        elif isinstance(m, SparseLeaky):
            out.append(_dense_leaky(m, init_hidden=m.init_hidden, output=m.output))
        elif isinstance(m, TimeDistributed):
            inner = _copy(m.module)
            out += list(inner) if type(inner) is nn.Sequential else [inner]
        else:
            out.append(_copy(m))
    res = nn.Sequential(*out)
    res.training = seq.training
    return res


def _dense_linear(m) -> nn.Linear:
    """The ``nn.Linear`` of a fused layer ``m`` (same weights, device, dtype, mode)."""
    lin = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None, device=m.weight.device,
                    dtype=m.weight.dtype)
    with torch.no_grad():
        lin.weight.copy_(m.weight)
        if m.bias is not None:
            lin.bias.copy_(m.bias)
    lin.train(m.training)
    return lin


def _dense_leaky(m, init_hidden: bool, output: bool) -> snn.Leaky:
    kw = dict(beta=m.beta.detach().clone(), threshold=m.threshold.detach().clone(),
              learn_beta=_is_param(m.beta), learn_threshold=_is_param(m.threshold),
              reset_mechanism=m.reset_mechanism, **_single_step_options(m))
    sg = m.surrogate
    leaky = snn.Leaky(spike_grad=sg, init_hidden=init_hidden, output=output, **kw)
    leaky.train(m.training)
    return leaky.to(m.beta.device)


def _unswap_neurons(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, SparseLeaky):
            new = _dense_leaky(child, init_hidden=child.init_hidden, output=child.output)
            new.mem = child.mem
            setattr(module, name, new)
        elif isinstance(child, SparseSynaptic):
            new = dense_synaptic_from(child, init_hidden=child.init_hidden, output=child.output)
            new.syn, new.mem = child.syn, child.mem
            setattr(module, name, new)
        elif isinstance(child, SparseRLeaky):
            new = dense_rleaky_from(child, init_hidden=child.init_hidden, output=child.output)
            new.spk, new.mem = child.spk, child.mem
            setattr(module, name, new)
        elif isinstance(child, SparseRSynaptic):
            new = dense_rsynaptic_from(child, init_hidden=child.init_hidden, output=child.output)
            new.spk, new.syn, new.mem = child.spk, child.syn, child.mem
            setattr(module, name, new)
        elif isinstance(child, SparseAlpha):
            new = dense_alpha_from(child, init_hidden=child.init_hidden, output=child.output)
            new.syn_exc, new.syn_inh, new.mem = child.syn_exc, child.syn_inh, child.mem
            setattr(module, name, new)
        else:
            _unswap_neurons(child)
