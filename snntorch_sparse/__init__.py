"""snntorch-sparse: sparse spiking gradient descent and BlocTrain for snnTorch.

Importing the package registers its classes into snnTorch's namespaces:
``snntorch.SparseLeaky``, ``snntorch.SparseLinearLeaky``,
``snntorch.surrogate.sparse_fast_sigmoid`` and friends; and snnTorch's NIR
exporter ``snntorch.export_nir.export_to_nir`` hands sparse models to
:func:`snntorch_sparse.nir.export_to_nir` (see :mod:`snntorch_sparse._snntorch_nir`).
"""
from __future__ import annotations

import snntorch as _snn
import snntorch.surrogate as _snn_surrogate

from . import surrogate
from .convert import desparsify, sparsify, TimeDistributed
from .functional import LIFConfig, sparse_lif
from .layers import SparseLinearLeaky
from .neurons import SparseLeaky
from .state import install_hooks as _install_state_hooks
from .synaptic import SparseLinearSynaptic, SparseSynaptic
from .recurrent import SparseLinearRLeaky, SparseRLeaky
from .rsynaptic import SparseLinearRSynaptic, SparseRSynaptic
from .alpha import SparseAlpha, SparseLinearAlpha
from .surrogate import sparse_atan, sparse_fast_sigmoid, sparse_sigmoid, sparsify_surrogate

__version__ = "0.1.0"

__all__ = [
    "SparseLeaky",
    "SparseLinearLeaky",
    "SparseSynaptic",
    "SparseLinearSynaptic",
    "SparseRLeaky",
    "SparseLinearRLeaky",
    "SparseRSynaptic",
    "SparseLinearRSynaptic",
    "SparseAlpha",
    "SparseLinearAlpha",
    "TimeDistributed",
    "sparsify",
    "desparsify",
    "sparse_lif",
    "LIFConfig",
    "surrogate",
    "sparse_fast_sigmoid",
    "sparse_atan",
    "sparse_sigmoid",
    "sparsify_surrogate",
    "register",
]


def register() -> None:
    """Expose the sparse classes and surrogates in snnTorch's namespaces (idempotent).

    Only new names are added; nothing snnTorch already defines is replaced, except
    that ``snntorch.export_nir.export_to_nir`` (when that module is imported) exports
    a model with sparse layers through :func:`snntorch_sparse.nir.export_to_nir`.
    """
    from . import _snntorch_nir
    _snntorch_nir.install()
    for name, obj in (("SparseLeaky", SparseLeaky), ("SparseLinearLeaky", SparseLinearLeaky),
                      ("SparseSynaptic", SparseSynaptic), ("SparseLinearSynaptic", SparseLinearSynaptic),
                      ("SparseRLeaky", SparseRLeaky), ("SparseLinearRLeaky", SparseLinearRLeaky),
                      ("SparseRSynaptic", SparseRSynaptic), ("SparseLinearRSynaptic", SparseLinearRSynaptic),
                      ("SparseAlpha", SparseAlpha), ("SparseLinearAlpha", SparseLinearAlpha),
                      ("sparsify", sparsify)):
        if getattr(_snn, name, obj) is obj:
            setattr(_snn, name, obj)
    for name, obj in (("sparse_fast_sigmoid", sparse_fast_sigmoid), ("sparse_atan", sparse_atan),
                      ("sparse_sigmoid", sparse_sigmoid), ("sparsify_surrogate", sparsify_surrogate)):
        if getattr(_snn_surrogate, name, obj) is obj:
            setattr(_snn_surrogate, name, obj)


register()
_install_state_hooks()
