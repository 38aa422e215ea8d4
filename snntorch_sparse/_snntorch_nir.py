"""snnTorch's own NIR exporter, given a sparse model, hands it to :mod:`snntorch_sparse.nir`.

``snntorch.export_nir.export_to_nir`` knows snnTorch's modules only: on a
converted model it printed "module not implemented" and failed with an
``AttributeError``. When ``snntorch.export_nir`` is imported (now, or later:
importing it pulls in ``nir`` and ``nirtorch``, so this package does not do it
itself), two of its names are wrapped:

* ``export_to_nir``: a model holding sparse multi-step layers is exported by
  :func:`snntorch_sparse.nir.export_to_nir` (the equivalent snnTorch graph);
  other models go to snnTorch's function unchanged.
* ``_extract_snntorch_module`` (which snnTorch's function looks up per module,
  so this also covers an ``export_to_nir`` imported before this package): a
  sparse multi-step layer raises a ``TypeError`` pointing to
  :mod:`snntorch_sparse.nir`.
"""
from __future__ import annotations

import importlib.abc
import sys

_TARGET = "snntorch.export_nir"
_MESSAGE = ("snnTorch's export_nir.export_to_nir cannot export the snntorch_sparse layer {name} (a "
            "multi-step layer that takes the whole [T, B, ...] sequence). Use "
            "snntorch_sparse.nir.export_to_nir(model, x), which writes the equivalent snnTorch graph "
            "(or snntorch_sparse.desparsify(model) first)")


def _is_sparse(model) -> bool:
    import torch
    return isinstance(model, torch.nn.Module) and any(getattr(m, "multi_step", False) for m in model.modules())


def _patch(module) -> None:
    if getattr(module, "_snntorch_sparse_patched", False):
        return
    original_export, original_extract = module.export_to_nir, module._extract_snntorch_module

    def export_to_nir(model, sample_data, *args, **kwargs):
        if _is_sparse(model):
            from .nir import export_to_nir as sparse_export
            return sparse_export(model, sample_data, *args, **kwargs)
        return original_export(model, sample_data, *args, **kwargs)

    def _extract_snntorch_module(m):
        if getattr(m, "multi_step", False):
            raise TypeError(_MESSAGE.format(name=type(m).__name__))
        return original_extract(m)

    export_to_nir.__doc__ = original_export.__doc__
    export_to_nir.__wrapped__ = original_export
    module.export_to_nir = export_to_nir
    module._extract_snntorch_module = _extract_snntorch_module
    module._snntorch_sparse_patched = True


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patches ``snntorch.export_nir`` right after it is first imported."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _patch(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)

        loader.exec_module = exec_and_patch
        return spec


def install() -> None:
    """Patch ``snntorch.export_nir`` now if it is imported, else when it is (idempotent)."""
    if _TARGET in sys.modules:
        _patch(sys.modules[_TARGET])
    elif not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())
