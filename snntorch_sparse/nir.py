"""Export to and import from NIR, the Neuromorphic Intermediate Representation.

Sparse models are written to NIR as the equivalent dense snnTorch graph (the
sparse surrogate only changes gradients, not the function): fused
:class:`~snntorch_sparse.SparseLinearLeaky` layers become an ``Affine`` (or
``Linear``) node followed by a ``LIF`` node, exactly as snnTorch's own
exporter writes ``nn.Linear`` + ``snn.Leaky``. Needs the optional packages
``nir`` and ``nirtorch`` (``pip install snntorch-sparse[nir]``).

Example::

    from snntorch_sparse import sparsify
    from snntorch_sparse.nir import export_to_nir, import_from_nir

    net = sparsify(dense_net)                  # a sparse sequence model
    graph = export_to_nir(net, x)              # x: [T, B, in] or one step [B, in]
    nir.write("net.nir", graph)
    net2 = import_from_nir(graph, sparse=True) # same spikes as ``net``

Conventions (snnTorch's, ``dt = 1e-4``): a ``LIF`` node with time constant
``tau``, resistance ``r = tau/dt`` and ``v_leak = 0`` is ``snn.Leaky`` with
``beta = 1 - dt/tau``; if ``r·dt/tau != 1`` the input scale is folded into the
threshold. NIR's ``LIF`` resets to ``v_reset``; it has no reset-by-subtraction
and no notion of snnTorch's one-step reset delay. :func:`export_to_nir` records
each neuron's ``reset_mechanism`` in ``graph.metadata`` so that
:func:`import_from_nir` restores it; for graphs from other tools the importer
uses the ``reset_mechanism`` argument (NIR's own semantics: ``"zero"``).

Integrate-and-fire neurons (``beta = 1``, no leak) are written as NIR ``IF``
nodes with ``r = 1`` (snnTorch's exporter would write ``tau = r = inf``) and read
back as ``snn.Leaky(beta=1)``. A node whose neurons mix ``beta = 1`` with
leaky ones stays a ``LIF`` node with ``tau = r = inf`` for the non-leaky
neurons, which :func:`import_from_nir` reads as ``beta = 1``, threshold unscaled.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional

import numpy as np
import snntorch as snn
import torch
from torch import nn

from .convert import desparsify, sparsify

__all__ = ["export_to_nir", "import_from_nir", "METADATA_KEY"]

#: ``graph.metadata`` key holding ``{lif_node_name: reset_mechanism}``.
METADATA_KEY = "snntorch_sparse_reset_mechanism"
_DT = 1e-4  # snnTorch's NIR time step


def _require_nir():
    try:
        import nir  # noqa: F401
        import nirtorch  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("NIR support needs the packages 'nir' and 'nirtorch': "
                          "pip install nir nirtorch (or snntorch-sparse[nir])") from exc
    import nir
    return nir


def _is_sparse(model: nn.Module) -> bool:
    return any(getattr(m, "multi_step", False) for m in model.modules())


def _per_neuron_leaky(model: nn.Module) -> nn.Module:
    """Give every ``snn.Leaky`` per-neuron ``beta``/``threshold`` vectors.

    snnTorch 1.0's exporter writes a scalar ``beta`` as a 0-d ``LIF`` node, on
    which ``nir``'s type inference fails; the neuron's size is known from the
    preceding linear layer.
    """
    mods = list(model) if isinstance(model, nn.Sequential) else []
    width = None
    for m in mods:
        if isinstance(m, nn.Linear):
            width = m.out_features
        elif isinstance(m, (snn.Leaky, snn.Synaptic)) and width is not None:
            for name in ("alpha", "beta", "threshold") if isinstance(m, snn.Synaptic) else ("beta", "threshold"):
                v = getattr(m, name)
                if v.numel() == 1:
                    vec = v.detach().reshape(1).expand(width).clone()
                    if isinstance(v, nn.Parameter):
                        setattr(m, name, nn.Parameter(vec))
                    else:
                        m.register_buffer(name, vec)
    return model


def export_to_nir(model: nn.Module, sample_data: torch.Tensor, model_name: str = "snntorch",
                  **kwargs):
    """Write ``model`` (sparse or snnTorch) as a NIR graph.

    Args:
        model: a sparse sequence model (e.g. from :func:`~snntorch_sparse.sparsify`),
            a model with single-step :class:`~snntorch_sparse.SparseLeaky` neurons,
            or a plain snnTorch model.
        sample_data: one time step ``[B, ...]`` or one sample ``[...]``; for a sparse
            sequence model a whole sequence ``[T, B, ...]`` is accepted too (its
            first step is used). Only its shape matters.
        model_name, kwargs: passed to :func:`snntorch.export_nir.export_to_nir`.

    Returns:
        ``nir.NIRGraph``, with ``graph.metadata[METADATA_KEY]`` giving each LIF
        node's snnTorch reset mechanism.
    """
    _require_nir()
    from snntorch.export_nir import export_to_nir as _snn_export

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    sequence_model = isinstance(model, nn.Sequential) and _is_sparse(model)
    dense = desparsify(model)
    for name, m in dense.named_modules():
        if isinstance(m, snn.Alpha):
            raise NotImplementedError(f"export_to_nir: the Alpha neuron at {name!r} has no NIR primitive (NIR has "
                                      "LIF, CubaLIF, IF, ... but no alpha-kernel neuron), so it cannot be exported")
    if sequence_model and isinstance(sample_data, torch.Tensor) and sample_data.dim() >= 3:
        sample_data = sample_data[0]
    dense = _per_neuron_leaky(dense).cpu()
    resets = {name: m.reset_mechanism for name, m in dense.named_modules()
              if isinstance(m, (snn.Leaky, snn.Synaptic, snn.RLeaky, snn.RSynaptic))}
    was_training = dense.training
    dense.eval()
    sample = sample_data.detach().cpu().to(_param_dtype(dense))
    with torch.no_grad(), np.errstate(divide="ignore"):  # beta = 1: tau = dt / 0 = inf, see _integrate_and_fire
        try:
            graph = _snn_export(dense, sample, model_name=model_name, **kwargs)
        except ValueError:
            # nir's type inference wants one sample without the batch dim.
            if sample.dim() < 2:
                raise
            graph = _snn_export(dense, sample[0], model_name=model_name, **kwargs)
    dense.train(was_training)
    _integrate_and_fire(graph)
    graph.metadata = dict(graph.metadata or {})
    graph.metadata[METADATA_KEY] = {k: v for k, v in resets.items()
                                    if k in graph.nodes or f"{k}.lif" in graph.nodes}
    return graph


def _integrate_and_fire(graph) -> None:
    """``LIF`` nodes whose neurons all have ``beta = 1`` (``tau = inf``) become ``IF`` nodes, ``r = 1``."""
    nir = _require_nir()
    for name, node in list(graph.nodes.items()):
        if isinstance(node, nir.LIF) and np.all(np.isinf(np.asarray(node.tau))):
            tau, thr, reset = np.broadcast_arrays(np.asarray(node.tau), np.asarray(node.v_threshold),
                                                  np.asarray(node.v_reset))
            graph.nodes[name] = nir.IF(r=np.ones_like(thr), v_threshold=thr.copy(), v_reset=reset.copy())


def _param_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        return p.dtype
    return torch.get_default_dtype()


def _chain(graph) -> Optional[list]:
    """Node names of a graph that is one chain input -> ... -> output, else ``None``."""
    nir = _require_nir()
    succ, indeg = {}, {k: 0 for k in graph.nodes}
    for a, b in graph.edges:
        if a in succ:
            return None
        succ[a] = b
        indeg[b] = indeg.get(b, 0) + 1
    if any(v > 1 for v in indeg.values()):
        return None
    starts = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    if len(starts) != 1:
        return None
    order, k = [], starts[0]
    while k in succ:
        k = succ[k]
        order.append(k)
    if len(order) + 1 != len(graph.nodes) or not isinstance(graph.nodes[order[-1]], nir.Output):
        return None
    return order[:-1]


def _tensor(a, dtype) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a)).to(dtype)


def import_from_nir(graph, sparse: bool = False, reset_mechanism: Optional[str] = None,
                    dtype: torch.dtype = torch.float32, output_last: bool = True, spike_grad=None,
                    **sparsify_kwargs):
    """Build a model from a NIR graph.

    A chain of ``Input``, ``Affine``/``Linear``, ``LIF``/``IF``, ``Flatten`` and ``Output``
    nodes becomes an ``nn.Sequential`` of ``nn.Linear`` + ``snn.Leaky(init_hidden=True)``
    (the last neuron with ``output=True`` when ``output_last``), called once per
    time step like any snnTorch model; with ``sparse=True`` it is passed through
    :func:`~snntorch_sparse.sparsify` (``sparsify_kwargs``: ``bth``, ``spike_grad``,
    ``backend``) and becomes a sequence model ``[T, B, in] -> [T, B, out]``.
    Other graphs are handed to :func:`snntorch.import_nir.import_from_nir`
    (``sparse=True`` then swaps its neurons for single-step sparse ones).

    Args:
        reset_mechanism: for LIF nodes without a recorded mechanism (graphs not
            written by :func:`export_to_nir`); ``None`` means NIR's semantics,
            ``"zero"``.
        dtype: dtype of the created parameters.
        spike_grad: surrogate of the created neurons (NIR stores none; ``None``:
            snnTorch's default ``atan``, sparsified when ``sparse``). Note that
            snnTorch's built-in surrogates return float32 spikes: for a float64
            dense model pass a dtype-preserving one, e.g.
            :func:`~snntorch_sparse.surrogate.sparse_fast_sigmoid`.
    """
    nir = _require_nir()
    graph = _collapse_recurrent(graph)
    order = _chain(graph)
    if order is None:
        from snntorch.import_nir import import_from_nir as _snn_import
        model = _snn_import(graph)
        return sparsify(model, spike_grad=spike_grad, **sparsify_kwargs) if sparse else model

    recorded = dict((graph.metadata or {}).get(METADATA_KEY, {}) or {})
    layers = OrderedDict()
    lif_names = []
    for name in order:
        node = graph.nodes[name]
        key = name.replace(".", "_")
        if isinstance(node, nir.Affine):
            w = _tensor(node.weight, dtype)
            lin = nn.Linear(w.shape[1], w.shape[0], bias=True, dtype=dtype)
            with torch.no_grad():
                lin.weight.copy_(w)
                lin.bias.copy_(_tensor(node.bias, dtype))
            layers[key] = lin
        elif isinstance(node, nir.Linear):
            w = _tensor(node.weight, dtype)
            lin = nn.Linear(w.shape[1], w.shape[0], bias=False, dtype=dtype)
            with torch.no_grad():
                lin.weight.copy_(w)
            layers[key] = lin
        elif isinstance(node, (nir.LIF, nir.IF)):
            layers[key] = _leaky(node, str(recorded.get(name, reset_mechanism or "zero")), dtype,
                                 spike_grad)
            lif_names.append(key)
        elif isinstance(node, (nir.NIRGraph, _Recurrent)):
            layers[key] = _rleaky(node, str(recorded.get(name, reset_mechanism or "zero")), dtype, spike_grad)
            lif_names.append(key)
        elif isinstance(node, nir.CubaLIF):
            layers[key] = _synaptic(node, str(recorded.get(name, reset_mechanism or "zero")), dtype, spike_grad)
            lif_names.append(key)
        elif isinstance(node, nir.Flatten):
            layers[key] = nn.Flatten(int(node.start_dim) + 1 if node.start_dim >= 0 else int(node.start_dim),
                                     int(node.end_dim) + 1 if node.end_dim >= 0 else int(node.end_dim))
        else:
            raise NotImplementedError(f"import_from_nir: node {name!r} of type "
                                      f"{type(node).__name__} is not supported in a chain graph")
    if output_last and lif_names:
        layers[lif_names[-1]].output = True
    model = nn.Sequential(layers)
    return sparsify(model, **sparsify_kwargs) if sparse else model  # keeps each neuron's spike_grad


def _leaky(node, reset_mechanism: str, dtype: torch.dtype, spike_grad) -> snn.Leaky:
    nir = _require_nir()
    r = np.asarray(node.r, dtype=np.float64)
    if isinstance(node, nir.IF):  # v[t] = v[t-1] + r·I[t]: beta = 1, the input scale folded into θ
        beta, w_scale = np.ones_like(r), r
    else:
        if not np.allclose(np.asarray(node.v_leak), 0.0):
            raise NotImplementedError("import_from_nir: LIF nodes with v_leak != 0 are not supported")
        tau = np.asarray(node.tau, dtype=np.float64)
        no_leak = np.isinf(tau)  # beta = 1 in a node of mixed neurons (snnTorch writes tau = r = inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = r * _DT / tau
            # snnTorch writes r = tau/dt, so dt/tau = 1/r exactly (no rounding of dt).
            decay = np.where(no_leak, 0.0, np.where(np.isclose(ratio, 1.0), 1.0 / r, _DT / tau))
        beta = 1.0 - decay
        w_scale = np.where(no_leak & np.isinf(r), 1.0, ratio)
    thr = np.asarray(node.v_threshold, dtype=np.float64) / w_scale
    beta_t, thr_t = _tensor(beta, dtype), _tensor(thr, dtype)
    if beta_t.numel() > 1 and bool((beta_t == beta_t.reshape(-1)[0]).all()):
        beta_t = beta_t.reshape(-1)[0].clone()
    if thr_t.numel() > 1 and bool((thr_t == thr_t.reshape(-1)[0]).all()):
        thr_t = thr_t.reshape(-1)[0].clone()
    # snnTorch keeps beta/threshold as float32 buffers and its spikes follow
    # their dtype: move the neuron to ``dtype`` like the layers around it.
    return snn.Leaky(beta=beta_t, threshold=thr_t, init_hidden=True, spike_grad=spike_grad,
                     reset_mechanism=reset_mechanism).to(dtype)


def _synaptic(node, reset_mechanism: str, dtype: torch.dtype, spike_grad) -> snn.Synaptic:
    """A ``CubaLIF`` node as snnTorch writes it (``w_in = tau_syn/dt``, ``r = tau_mem/dt``) as ``snn.Synaptic``."""
    if not np.allclose(np.asarray(node.v_leak), 0.0):
        raise NotImplementedError("import_from_nir: CubaLIF nodes with v_leak != 0 are not supported")
    tau_syn = np.asarray(node.tau_syn, dtype=np.float64)
    tau_mem = np.asarray(node.tau_mem, dtype=np.float64)
    if not (np.allclose(np.asarray(node.w_in) * _DT / tau_syn, 1.0) and np.allclose(np.asarray(node.r) * _DT / tau_mem, 1.0)):
        raise NotImplementedError("import_from_nir: CubaLIF nodes need w_in = tau_syn/dt and r = tau_mem/dt "
                                  "(as snnTorch writes them)")
    vals = []
    for v in (1.0 - _DT / tau_syn, 1.0 - _DT / tau_mem, np.asarray(node.v_threshold, dtype=np.float64)):
        t = _tensor(v, dtype)
        if t.numel() > 1 and bool((t == t.reshape(-1)[0]).all()):
            t = t.reshape(-1)[0].clone()
        vals.append(t)
    alpha, beta, thr = vals
    return snn.Synaptic(alpha=alpha, beta=beta, threshold=thr, init_hidden=True, spike_grad=spike_grad,
                        reset_mechanism=reset_mechanism).to(dtype)


class _Recurrent:
    """A ``LIF`` node and its feedback weights (``<name>.lif`` <-> ``<name>.w_rec``), as one node."""

    def __init__(self, lif, w_rec):
        self.nodes = {"input": None, "lif": lif, "w_rec": w_rec, "output": None}


class _Graph:
    def __init__(self, nodes, edges, metadata):
        self.nodes, self.edges, self.metadata = nodes, edges, metadata


def _collapse_recurrent(graph):
    """snnTorch writes an ``RLeaky`` as nodes ``<name>.lif`` and ``<name>.w_rec`` joined in a cycle:
    make each such pair one node ``<name>`` so that the graph is a chain again."""
    pairs = {}
    for a, b in graph.edges:
        if a.endswith(".lif") and b == a[:-4] + ".w_rec" and (b, a) in graph.edges:
            pairs[a[:-4]] = (a, b)
    if not pairs:
        return graph
    rename = {}
    nodes = {}
    for k, n in graph.nodes.items():
        owner = next((p for p, ab in pairs.items() if k in ab), None)
        if owner is None:
            nodes[k] = n
        elif owner not in nodes:
            nodes[owner] = _Recurrent(graph.nodes[pairs[owner][0]], graph.nodes[pairs[owner][1]])
        if owner is not None:
            rename[k] = owner
    edges = []
    for a, b in graph.edges:
        a2, b2 = rename.get(a, a), rename.get(b, b)
        if a2 != b2:
            edges.append((a2, b2))
    return _Graph(nodes, edges, graph.metadata)


def _rleaky(sub, reset_mechanism: str, dtype: torch.dtype, spike_grad):
    """A recurrent subgraph as snnTorch writes ``RLeaky`` (``LIF`` + ``Affine``/``Linear`` feedback)
    or ``RSynaptic`` (``CubaLIF`` + feedback): ``snn.RLeaky`` / ``snn.RSynaptic``."""
    nir = _require_nir()
    lifs = [n for n in sub.nodes.values() if isinstance(n, (nir.LIF, nir.CubaLIF))]
    recs = [n for n in sub.nodes.values() if isinstance(n, (nir.Affine, nir.Linear))]
    if isinstance(sub, _Recurrent) and lifs and not recs:
        raise NotImplementedError("import_from_nir: unsupported recurrent weights")
    if len(sub.nodes) != 4 or len(lifs) != 1 or len(recs) != 1:
        raise NotImplementedError("import_from_nir: only snnTorch's RLeaky / RSynaptic subgraphs (Input, "
                                  "LIF or CubaLIF, Affine/Linear feedback, Output) are supported as nested graphs")
    if isinstance(lifs[0], nir.CubaLIF):
        syn = _synaptic(lifs[0], reset_mechanism, dtype, spike_grad)
        cls, kw = snn.RSynaptic, dict(alpha=syn.alpha, beta=syn.beta, threshold=syn.threshold)
    else:
        leaky = _leaky(lifs[0], reset_mechanism, dtype, spike_grad)
        cls, kw = snn.RLeaky, dict(beta=leaky.beta, threshold=leaky.threshold)
    w = _tensor(recs[0].weight, dtype)
    n = w.shape[0]
    diagonal = isinstance(recs[0], nir.Linear) and bool((w == torch.diag(torch.diagonal(w))).all())
    with torch.random.fork_rng(devices=[]):
        if diagonal:
            neuron = cls(all_to_all=False, V=torch.diagonal(w).clone(), init_hidden=True, spike_grad=spike_grad,
                         reset_mechanism=reset_mechanism, **kw)
        else:
            neuron = cls(linear_features=n, init_hidden=True, spike_grad=spike_grad,
                         reset_mechanism=reset_mechanism, **kw)
    neuron = neuron.to(dtype)
    if diagonal:
        neuron.recurrent.V = neuron.V
    else:
        with torch.no_grad():
            neuron.recurrent.weight.copy_(w)
            if isinstance(recs[0], nir.Affine):
                neuron.recurrent.bias.copy_(_tensor(recs[0].bias, dtype))
            else:
                neuron.recurrent.bias.zero_()
    return neuron
