"""Just-in-time build of the compiled backend (``csrc/``) with ninja.

:func:`load` compiles the C++ CPU kernels -- plus the CUDA kernels when
PyTorch sees a GPU and a CUDA toolkit (``nvcc``) is installed -- into a shared
library registering the ``torch.ops.snntorch_sparse`` ops, and loads it.

The build is cached across processes by :func:`torch.utils.cpp_extension.load`
(rebuilt only when a source or a flag changes) in PyTorch's extension
directory (``$TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``) or
in ``$SNNTORCH_SPARSE_BUILD_DIR`` when set.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import torch

__all__ = ["csrc_dir", "sources", "load", "BuildError"]

_NAME = "snntorch_sparse_ops"
# No FMA contraction anywhere: lif_scan must round every multiply and add
# separately, exactly like the PyTorch reference. -fno-trapping-math changes
# no result (it only lets GCC if-convert the float compares of the scans, i.e.
# vectorise them: about 4x faster); no -ffast-math, no reassociation.
if os.name == "nt":  # MSVC
    CFLAGS = ["/O2", "/fp:precise"]
else:
    CFLAGS = ["-O3", "-ffp-contract=off", "-fno-trapping-math"]
CUDA_CFLAGS = ["-O3", "--fmad=false"]


def openmp_flags() -> List[str]:
    """``-fopenmp`` when PyTorch's CPU build uses OpenMP.

    ``at::parallel_for`` is a header template: in a translation unit compiled
    without OpenMP its ``#pragma omp parallel`` is ignored and every kernel
    runs on one thread. The library links against the ``libgomp.so.1`` that
    PyTorch has already loaded (same soname), so there is one OpenMP runtime.
    """
    if os.name == "nt":
        return ["/openmp"]
    try:
        return ["-fopenmp"] if torch.backends.openmp.is_available() else []
    except Exception:  # noqa: BLE001
        return []


def simd_flags() -> List[str]:
    """Vector-width flags for this machine's CPU (``[]``: baseline x86-64 / other ISAs).

    PyTorch's own kernels dispatch on the CPU at run time; ours are built just
    in time on the machine that runs them, so they are compiled for its vector
    unit instead: AVX2 (8 floats) where PyTorch reports AVX2 or AVX-512. No
    ``-mfma``: with ``-ffp-contract=off`` results stay bit-identical to the
    reference whatever the vector width. The flags are part of the library's
    name, so a build cache shared between different CPUs never mixes them.
    On AVX-512 CPUs ``-mavx512f`` is added too: the input-gradient dot
    products then hold a whole row of ``h`` (up to 256 floats) in registers.
    ``SNNTORCH_SPARSE_SIMD=avx2`` stops at AVX2, ``=0`` builds for the baseline ISA.
    """
    choice = os.environ.get("SNNTORCH_SPARSE_SIMD", "auto").strip().lower()
    if os.name == "nt" or choice == "0":
        return []
    try:
        cap = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001 -- older torch or a non-x86 CPU
        return []
    if cap == "AVX512" and choice != "avx2":
        return ["-mavx2", "-mavx512f", "-mprefer-vector-width=256"]
    return ["-mavx2"] if cap in ("AVX2", "AVX512") else []


class BuildError(RuntimeError):
    """The compiled backend could not be built; ``log`` holds the compiler output."""

    def __init__(self, message: str, log: str = ""):
        super().__init__(message)
        self.log = log


def csrc_dir() -> Path:
    """The kernel sources: ``snntorch_sparse/csrc`` in an installed copy, else ``<repo>/csrc``.

    Wheels and sdists carry ``csrc/`` as ``snntorch_sparse/csrc`` (copied there by
    ``setup.py``); an editable install or a checkout reads ``<repo>/csrc``.
    """
    pkg = Path(__file__).resolve().parent.parent
    for cand in (pkg / "csrc", pkg.parent / "csrc"):
        if (cand / "ops.cpp").is_file():
            return cand
    raise BuildError(f"C++ sources not found (looked for csrc/ops.cpp in {pkg} and {pkg.parent})")


def cuda_wanted() -> bool:
    """Build the CUDA kernels: a GPU is visible and nvcc is installed."""
    if os.environ.get("SNNTORCH_SPARSE_NO_CUDA", "").strip() not in ("", "0"):
        return False
    if not torch.cuda.is_available() or torch.version.cuda is None:
        return False
    from torch.utils.cpp_extension import CUDA_HOME
    return CUDA_HOME is not None and os.path.exists(os.path.join(CUDA_HOME, "bin", "nvcc"))


def sources(with_cuda: bool) -> List[str]:
    root = csrc_dir()
    srcs = [root / "ops.cpp", *sorted((root / "cpu").glob("*.cpp"))]
    if with_cuda:
        srcs += sorted((root / "cuda").glob("*.cu"))
    return [str(s) for s in srcs]


def headers_digest() -> str:
    """Short hash of every header under ``csrc/``.

    PyTorch's JIT cache notices changed sources and flags but not changed
    headers; putting their hash in the library's name makes a header change
    (or a package upgrade that only touches one) build a fresh library.
    """
    import hashlib
    h = hashlib.sha1()
    for p in sorted(csrc_dir().rglob("*.h")) + sorted(csrc_dir().rglob("*.cuh")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:8]


def load(verbose: bool = False) -> Optional[str]:
    """Build (if needed) and load the library. Raises :class:`BuildError`.

    Returns the build directory used (``None``: PyTorch's default).
    """
    from torch.utils import cpp_extension

    with_cuda = cuda_wanted()
    build_dir = os.environ.get("SNNTORCH_SPARSE_BUILD_DIR") or None
    simd = simd_flags()
    name = _NAME + ("_cuda" if with_cuda else "_cpu") + ("_avx512" if "-mavx512f" in simd else
                                                           "_avx2" if simd else "") + \
        ("_omp" if openmp_flags() else "") + "_" + headers_digest()
    if build_dir is not None:
        build_dir = os.path.join(os.path.abspath(os.path.expanduser(build_dir)), name)
        os.makedirs(build_dir, exist_ok=True)
    try:
        cpp_extension.load(
            name=name,
            sources=sources(with_cuda),
            extra_cflags=list(CFLAGS) + simd + openmp_flags(),
            extra_ldflags=[f for f in openmp_flags() if f.startswith("-f")],
            extra_cuda_cflags=list(CUDA_CFLAGS),
            extra_include_paths=[str(csrc_dir())],
            build_directory=build_dir,
            is_python_module=False,
            verbose=verbose,
        )
    except BuildError:
        raise
    except Exception as exc:  # compiler missing, compile error, ninja missing, ...
        log = str(exc)
        raise BuildError(f"building the snntorch_sparse C++{'/CUDA' if with_cuda else ''} "
                         f"extension failed: {type(exc).__name__}", log) from exc
    return build_dir
