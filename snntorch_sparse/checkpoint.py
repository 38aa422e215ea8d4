"""Move checkpoints between sparse models and their snnTorch dense equivalents.

A sparse sequence model (from :func:`~snntorch_sparse.sparsify`) and the dense
model :func:`~snntorch_sparse.desparsify` makes of it hold the same numbers
under different ``state_dict`` keys: a fused layer ``k`` keeps
``k.fc.weight``, ``k.fc.bias``, ``k.beta``, ``k.threshold`` where the dense
model has ``j.weight``, ``j.bias`` (the ``nn.Linear``) and ``j+1.beta``,
``j+1.threshold`` plus snnTorch's ``j+1.graded_spikes_factor`` and
``j+1.reset_mechanism_val`` buffers (the ``snn.Leaky``); a ``TimeDistributed``
wrapper adds a ``module.`` level. These helpers rename the keys, so a
checkpoint saved by either model loads into the other with ``strict=True``::

    torch.save(sparse_net.state_dict(), "ckpt.pt")
    dense_net = desparsify(sparse_net)                     # or any same-shaped dense model
    dense_net.load_state_dict(to_dense_state_dict(sparse_net, torch.load("ckpt.pt")))
    sparse_net.load_state_dict(to_sparse_state_dict(sparse_net, dense_net.state_dict()))

Models that are not ``nn.Sequential`` (single-step :class:`~snntorch_sparse.SparseLeaky`
swapped in place) have identical keys in both forms: the maps are the identity.

Optimizer state (e.g. Adam's moments) is keyed by parameter *position*, and
the two forms order their parameters differently (a fused layer lists a
learnable ``beta``/``threshold`` before its ``fc`` weights, snnTorch after the
``nn.Linear``): :func:`to_dense_optimizer_state` and
:func:`to_sparse_optimizer_state` renumber an optimizer built as
``Optim(model.parameters())`` (one parameter group)::

    dense_opt = torch.optim.Adam(dense_net.parameters())
    dense_opt.load_state_dict(to_dense_optimizer_state(sparse_net, ckpt["optim"]))
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from ._validation import RESET_MODES
from .convert import TimeDistributed, desparsify
from .layers import SparseLinearLeaky
from .recurrent import SparseLinearRLeaky
from .rsynaptic import SparseLinearRSynaptic
from .alpha import SparseLinearAlpha
from .synaptic import SparseLinearSynaptic

__all__ = ["dense_key_map", "to_dense_state_dict", "to_sparse_state_dict",
           "to_dense_optimizer_state", "to_sparse_optimizer_state"]


def _leaky_extras(reset_mechanism: str) -> Dict[str, torch.Tensor]:
    """snnTorch ``Leaky`` buffers the fused layer does not keep, at their values
    (as ``snn.Leaky`` stores them: float32 factor 1, int64 reset code)."""
    return {"graded_spikes_factor": torch.tensor(1.0),
            "reset_mechanism_val": torch.tensor(RESET_MODES[reset_mechanism], dtype=torch.int64)}


def dense_key_map(sparse_model: nn.Module) -> Tuple[Dict[str, str], Dict[str, torch.Tensor]]:
    """``({sparse_key: dense_key}, {dense_key: value of dense-only buffers})``.

    Keys are those of ``sparse_model.state_dict()`` and of
    ``desparsify(sparse_model).state_dict()``.
    """
    mapping, extras, _ = _key_maps(sparse_model)
    return mapping, extras


def _key_maps(sparse_model: nn.Module):
    """:func:`dense_key_map` plus ``{dense_alias_key: sparse_key}``: dense keys holding the same
    tensor as another key (snnTorch's one-to-one ``recurrent.V``, the neuron's ``V`` again)."""
    keys = list(sparse_model.state_dict().keys())
    if not isinstance(sparse_model, nn.Sequential):
        return {k: k for k in keys}, {}, {}
    mapping: Dict[str, str] = {}
    extras: Dict[str, torch.Tensor] = {}
    aliases: Dict[str, str] = {}
    _map_sequential(sparse_model, "", "", keys, mapping, extras, aliases)
    return mapping, extras, aliases


def _map_sequential(seq: nn.Sequential, sparse_pre: str, dense_pre: str, keys, mapping: Dict[str, str],
                    extras: Dict[str, torch.Tensor], aliases: Dict[str, str]) -> None:
    """Fill ``mapping``/``extras`` for the modules of ``seq`` (keys under ``sparse_pre``,
    dense keys under ``dense_pre``); nested Sequentials keep their nesting in both."""
    j = 0
    for i, m in enumerate(seq):
        pre = f"{sparse_pre}{i}."
        own = [k for k in keys if k.startswith(pre)]
        if isinstance(m, (SparseLinearLeaky, SparseLinearSynaptic, SparseLinearRLeaky,
                          SparseLinearRSynaptic, SparseLinearAlpha)):  # -> nn.Linear + neuron
            for k in own:
                rest = k[len(pre):]
                if rest.startswith("fc."):
                    mapping[k] = f"{dense_pre}{j}.{rest[3:]}"
                else:
                    mapping[k] = f"{dense_pre}{j + 1}.{rest}"
            for name, v in _leaky_extras(m.reset_mechanism).items():
                extras[f"{dense_pre}{j + 1}.{name}"] = v
            if isinstance(getattr(m, "V", None), nn.Parameter):
                # snnTorch's one-to-one recurrent module registers the learnable V a second time
                aliases[f"{dense_pre}{j + 1}.recurrent.V"] = f"{pre}V"
            j += 2
            continue
        if isinstance(m, TimeDistributed):
            for k in own:
                mapping[k] = f"{dense_pre}{j}.{k[len(pre) + len('module.'):]}"
        elif isinstance(m, nn.Sequential):
            _map_sequential(m, pre, f"{dense_pre}{j}.", keys, mapping, extras, aliases)
        else:  # SparseLeaky (same keys as snn.Leaky) and any other module
            for k in own:
                mapping[k] = f"{dense_pre}{j}.{k[len(pre):]}"
        j += 1


def to_dense_state_dict(sparse_model: nn.Module,
                        state_dict: Optional[Dict[str, torch.Tensor]] = None) -> "OrderedDict[str, torch.Tensor]":
    """``state_dict`` (default: ``sparse_model``'s own) keyed for ``desparsify(sparse_model)``.

    ``sparse_model`` is the template that gives the layout; ``state_dict`` must
    have its keys (e.g. a checkpoint saved from a model of the same architecture).
    """
    sd = sparse_model.state_dict() if state_dict is None else state_dict
    mapping, extras, aliases = _key_maps(sparse_model)
    missing = [k for k in mapping if k not in sd]
    unexpected = [k for k in sd if k not in mapping]
    if missing or unexpected:
        raise KeyError(f"state_dict does not match the sparse model: missing {missing[:5]}, "
                       f"unexpected {unexpected[:5]}")
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for k, v in sd.items():
        out[mapping[k]] = v
    for k, v in extras.items():
        out[k] = v.to(device=_device_of(sd))
    for k, src in aliases.items():
        out[k] = sd[src]
    return out


def to_sparse_state_dict(sparse_model: nn.Module,
                         dense_state_dict: Dict[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """A dense model's ``state_dict`` keyed for ``sparse_model`` (the inverse map).

    The dense-only buffers are checked: a ``graded_spikes_factor`` other than 1
    or a reset mechanism different from the sparse layer's raises ``ValueError``.
    """
    mapping, extras, aliases = _key_maps(sparse_model)
    inverse = {v: k for k, v in mapping.items()}
    expected = set(inverse) | set(extras) | set(aliases)
    missing = [k for k in expected if k not in dense_state_dict]
    unexpected = [k for k in dense_state_dict if k not in expected]
    if missing or unexpected:
        raise KeyError(f"state_dict does not match the dense form of the sparse model: "
                       f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
    for k, v in extras.items():
        got = dense_state_dict[k]
        if not torch.equal(got.detach().cpu().to(v.dtype), v):
            raise ValueError(f"{k} = {got.tolist()} in the dense checkpoint, but the sparse layer "
                             f"needs {v.tolist()}")
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for k in sparse_model.state_dict().keys():
        out[k] = dense_state_dict[mapping[k]]
    return out


def _device_of(sd) -> torch.device:
    for v in sd.values():
        if isinstance(v, torch.Tensor):
            return v.device
    return torch.device("cpu")


def _param_orders(sparse_model: nn.Module):
    mapping, _ = dense_key_map(sparse_model)
    sparse_names = [n for n, _ in sparse_model.named_parameters()]
    dense_names = [n for n, _ in desparsify(sparse_model).named_parameters()]
    as_dense = [mapping[n] for n in sparse_names]
    if sorted(as_dense) != sorted(dense_names):
        raise ValueError("the sparse and dense parameter lists do not correspond")
    return as_dense, dense_names


def _renumber(optim_state: dict, src_names, dst_names) -> dict:
    groups = optim_state["param_groups"]
    if len(groups) != 1 or len(groups[0]["params"]) != len(src_names):
        raise ValueError("only optimizers built as Optim(model.parameters()) (one parameter group "
                         f"holding all {len(src_names)} parameters) can be converted")
    src_ids = list(groups[0]["params"])
    dst_pos = {n: i for i, n in enumerate(dst_names)}
    new_id = {sid: dst_pos[name] for sid, name in zip(src_ids, src_names)}
    group = dict(groups[0])
    group["params"] = list(range(len(dst_names)))
    state = {new_id[k]: v for k, v in optim_state["state"].items()}
    return {"state": state, "param_groups": [group]}


def to_dense_optimizer_state(sparse_model: nn.Module, optim_state: dict) -> dict:
    """An optimizer ``state_dict`` of ``sparse_model`` renumbered for ``desparsify(sparse_model)``."""
    as_dense, dense_names = _param_orders(sparse_model)
    return _renumber(optim_state, as_dense, dense_names)


def to_sparse_optimizer_state(sparse_model: nn.Module, optim_state: dict) -> dict:
    """The inverse of :func:`to_dense_optimizer_state`."""
    as_dense, dense_names = _param_orders(sparse_model)
    return _renumber(optim_state, dense_names, as_dense)
