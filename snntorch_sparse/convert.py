"""Swap snnTorch layers for sparse ones (:func:`sparsify`) and back (:func:`desparsify`).

snnTorch models come in two styles, and :func:`sparsify` keeps each working:

* an ``nn.Sequential`` of layers with ``init_hidden=True`` neurons, called once
  per time step. It becomes a *sequence* model, called once per sequence
  ``[T, B, ...]``: each ``nn.Linear`` + ``snn.Leaky`` pair turns into one fused
  :class:`~snntorch_sparse.SparseLinearLeaky`, other ``snn.Leaky`` neurons into
  multi-step :class:`~snntorch_sparse.SparseLeaky`, and stateless layers
  (conv, flatten, pooling, ...) are wrapped in :class:`TimeDistributed`.
  The one-line change to a training loop::

      # before: for t in range(T): spk, mem = net(x[t]); ...   (after utils.reset(net))
      net = sparsify(net)
      spk_rec, mem_rec = net(x)            # x: [T, B, ...], outputs [T, B, ...]

* any other module (a custom ``forward`` looping over time): every
  ``snn.Leaky`` becomes a single-step :class:`~snntorch_sparse.SparseLeaky`;
  the loop is unchanged and the gradients are the sparse ones (no fused speed-up).

Weights, betas and thresholds are copied; the result is a new model.
"""
from __future__ import annotations

import copy

import snntorch as snn
import torch
from torch import nn

from .layers import SparseLinearLeaky
from .neurons import SparseLeaky, resolve_surrogate

__all__ = ["sparsify", "desparsify", "TimeDistributed"]


class TimeDistributed(nn.Module):
    """Apply a stateless module to every time step of ``[T, B, ...]`` at once.

    Folds time into the batch (``[T·B, ...]``), applies ``module`` and unfolds.
    Note that batch-norm layers then see statistics over all time steps.
    """

    multi_step = True

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise ValueError(f"x must be time-major [T, B, ...], got shape {tuple(x.shape)}")
        T, B = x.shape[:2]
        y = self.module(x.reshape(T * B, *x.shape[2:]))
        return y.reshape(T, B, *y.shape[1:])


def _is_param(t) -> bool:
    return isinstance(t, nn.Parameter)


def _leaky_kwargs(leaky: snn.Leaky) -> dict:
    return dict(beta=leaky.beta.detach().clone(), threshold=leaky.threshold.detach().clone(),
                learn_beta=_is_param(leaky.beta), learn_threshold=_is_param(leaky.threshold),
                reset_mechanism=leaky.reset_mechanism)


def _check_supported(leaky: snn.Leaky, where: str) -> None:
    bad = [name for name, on in (("inhibition", leaky.inhibition), ("state_quant", bool(leaky.state_quant)),
                                 ("reset_delay=False", not leaky.reset_delay),
                                 ("graded_spikes_factor != 1", float(leaky.graded_spikes_factor) != 1.0))
           if on]
    if bad:
        raise ValueError(f"sparsify: the snn.Leaky at {where} uses {', '.join(bad)}, "
                         "which the fused sparse layers do not support")


def _sparse_neuron(leaky: snn.Leaky, step_mode: str, bth, spike_grad, backend) -> SparseLeaky:
    sg = resolve_surrogate(spike_grad if spike_grad is not None else leaky.spike_grad, bth)
    new = SparseLeaky(spike_grad=sg, init_hidden=leaky.init_hidden, output=leaky.output,
                      step_mode=step_mode, backend=backend, **_leaky_kwargs(leaky))
    return new.to(leaky.beta.device)


def _fuse(linear: nn.Linear, leaky: snn.Leaky, bth, spike_grad, backend,
          event_forward=None) -> SparseLinearLeaky:
    sg = resolve_surrogate(spike_grad if spike_grad is not None else leaky.spike_grad, bth)
    kw = _leaky_kwargs(leaky)
    layer = SparseLinearLeaky(linear.in_features, linear.out_features, spike_grad=sg,
                              bias=linear.bias is not None, output=leaky.output, backend=backend,
                              event_forward=event_forward, device=linear.weight.device, dtype=linear.weight.dtype, **kw)
    with torch.no_grad():
        layer.fc.weight.copy_(linear.weight)
        if linear.bias is not None:
            layer.fc.bias.copy_(linear.bias)
    return layer


def sparsify(model: nn.Module, bth: float | None = None, spike_grad=None, backend=None,
             event_forward=None) -> nn.Module:
    """Return a copy of ``model`` with sparse layers (see module docs).

    Args:
        model: an snnTorch model.
        bth: active-window half-width for every neuron (``None``: keep a sparse
            surrogate's own window, or the package default).
        spike_grad: surrogate for every neuron (``None``: sparsify each neuron's own).
        backend: op backend for the fused layers.
        event_forward: for the fused layers (see :class:`~snntorch_sparse.SparseLinearLeaky`):
            ``None`` (auto), ``True`` (input current summed over the input's spikes only,
            equal to the GEMM up to float rounding) or ``False`` (one GEMM, bit-exact).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if isinstance(model, nn.Sequential):
        return _sparsify_sequential(model, bth, spike_grad, backend, event_forward)
    model = copy.deepcopy(model)
    _swap_neurons(model, bth, spike_grad, backend)
    return model


def _swap_neurons(module: nn.Module, bth, spike_grad, backend) -> None:
    for name, child in module.named_children():
        if type(child) is snn.Leaky:
            _check_supported(child, name)
            new = _sparse_neuron(child, "single", bth, spike_grad, backend)
            new.mem = child.mem
            setattr(module, name, new)
        else:
            _swap_neurons(child, bth, spike_grad, backend)


def _sparsify_sequential(seq: nn.Sequential, bth, spike_grad, backend, event_forward=None) -> nn.Sequential:
    mods = list(seq)
    out = []
    i = 0
    while i < len(mods):
        m = mods[i]
        nxt = mods[i + 1] if i + 1 < len(mods) else None
        if isinstance(m, nn.Linear) and isinstance(nxt, snn.Leaky) and not isinstance(nxt, SparseLeaky):
            _require_hidden(nxt, i + 1)
            _check_supported(nxt, f"index {i + 1}")
            out.append(_fuse(m, nxt, bth, spike_grad, backend, event_forward))
            i += 2
            continue
        if isinstance(m, snn.Leaky):
            _require_hidden(m, i)
            _check_supported(m, f"index {i}")
            out.append(_sparse_neuron(m, "multi", bth, spike_grad, backend))
        elif isinstance(m, snn.SpikingNeuron):
            raise TypeError(f"sparsify: {type(m).__name__} at index {i} is not supported; "
                            "only snn.Leaky neurons have sparse counterparts")
        elif getattr(m, "multi_step", False):
            out.append(copy.deepcopy(m))
        else:
            out.append(TimeDistributed(copy.deepcopy(m)))
        i += 1
    return nn.Sequential(*out)


def _require_hidden(leaky: snn.Leaky, index: int) -> None:
    if not leaky.init_hidden:
        raise ValueError(f"sparsify: the snn.Leaky at index {index} of the nn.Sequential must have "
                         "init_hidden=True (snnTorch's convention for layers inside nn.Sequential)")


def desparsify(model: nn.Module) -> nn.Module:
    """Inverse of :func:`sparsify`: snnTorch dense layers, called once per time step.

    Fused layers become ``nn.Linear`` + ``snn.Leaky(init_hidden=True)``, multi-step
    neurons become ``snn.Leaky``; the clamped surrogate is kept so gradients
    stay those of the sparse model. A readout layer becomes a non-resetting
    ``snn.Leaky(output=True)`` whose membrane is the readout.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(model, nn.Sequential):
        model = copy.deepcopy(model)
        _unswap_neurons(model)
        return model
    out = []
    for m in model:
        if isinstance(m, SparseLinearLeaky):
            lin = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None,
                            device=m.weight.device, dtype=m.weight.dtype)
            with torch.no_grad():
                lin.weight.copy_(m.weight)
                if m.bias is not None:
                    lin.bias.copy_(m.bias)
            out += [lin, _dense_leaky(m, init_hidden=True, output=m.output or m.readout)]
        elif isinstance(m, SparseLeaky):
            out.append(_dense_leaky(m, init_hidden=m.init_hidden, output=m.output))
        elif isinstance(m, TimeDistributed):
            out.append(copy.deepcopy(m.module))
        else:
            out.append(copy.deepcopy(m))
    return nn.Sequential(*out)


def _dense_leaky(m, init_hidden: bool, output: bool) -> snn.Leaky:
    kw = dict(beta=m.beta.detach().clone(), threshold=m.threshold.detach().clone(),
              learn_beta=_is_param(m.beta), learn_threshold=_is_param(m.threshold),
              reset_mechanism=m.reset_mechanism)
    sg = m.surrogate
    leaky = snn.Leaky(spike_grad=sg, init_hidden=init_hidden, output=output, **kw)
    return leaky.to(m.beta.device)


def _unswap_neurons(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, SparseLeaky):
            new = _dense_leaky(child, init_hidden=child.init_hidden, output=child.output)
            new.mem = child.mem
            setattr(module, name, new)
        else:
            _unswap_neurons(child)
