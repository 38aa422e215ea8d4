"""Just-in-time build of the compiled backend (``csrc/``) with ninja.

:func:`load` compiles the C++ CPU kernels -- plus the CUDA kernels when
PyTorch sees a GPU and a CUDA toolkit (``nvcc``) is installed -- into a shared
library registering the ``torch.ops.snntorch_sparse`` ops, and loads it.

The build is cached across processes by :func:`torch.utils.cpp_extension.load`
(rebuilt only when a source or a flag changes) in PyTorch's extension
directory (``$TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``) or
in ``$SNNTORCH_SPARSE_BUILD_DIR`` when set. A build that will actually compile
(see :func:`needs_build`) prints one line to stderr first.

PyTorch serialises builds with a lock file (``lock``) in the build directory
and waits on it without a limit, so a build killed half-way used to hang every
later first use. :func:`load` removes a stale lock (its process is gone, or --
where that cannot be told -- it is older than :data:`STALE_LOCK_SECONDS`) with
a warning, and waits on a live one at most ``$SNNTORCH_SPARSE_BUILD_TIMEOUT``
seconds (default :data:`DEFAULT_LOCK_TIMEOUT`), then raises :class:`BuildError`
(the caller falls back to the reference backend).
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Iterator, List, Optional

import torch

__all__ = ["csrc_dir", "sources", "load", "BuildError", "BuildConfigError", "library_name",
           "build_directory", "lock_timeout", "wait_for_lock"]

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

TIMEOUT_ENV = "SNNTORCH_SPARSE_BUILD_TIMEOUT"
#: Seconds to wait for another process's build (``$SNNTORCH_SPARSE_BUILD_TIMEOUT``).
DEFAULT_LOCK_TIMEOUT = 600.0
#: A lock file older than this is stale when its owner cannot be checked.
STALE_LOCK_SECONDS = 15 * 60.0
_POLL_SECONDS = 0.25


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
    """The compiled backend could not be built.

    ``log`` holds the compiler output; ``hint`` (optional) says what to do,
    replacing the default advice (install a compiler) in the fallback warning.
    """

    def __init__(self, message: str, log: str = "", hint: Optional[str] = None):
        super().__init__(message)
        self.log = log
        self.hint = hint


class BuildConfigError(ValueError):
    """A build setting (environment variable) has an invalid value."""


class _StaleLockCleared(Exception):
    """Raised inside PyTorch's lock wait after removing a stale lock: build again."""


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
    """The translation units to compile (``.cu`` files only ``with_cuda``)."""
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


def library_name(with_cuda: bool) -> str:
    """The library's name: backend, vector width, OpenMP and the headers' hash."""
    simd = simd_flags()
    width = "_avx512" if "-mavx512f" in simd else "_avx2" if simd else ""
    return (_NAME + ("_cuda" if with_cuda else "_cpu") + width
            + ("_omp" if openmp_flags() else "") + "_" + headers_digest())


def build_directory(name: str) -> str:
    """Where library ``name`` is built: ``$SNNTORCH_SPARSE_BUILD_DIR/<name>``, else PyTorch's.

    The directory is created.
    """
    root = os.environ.get("SNNTORCH_SPARSE_BUILD_DIR")
    if not root:
        from torch.utils import cpp_extension
        return cpp_extension._get_build_directory(name, verbose=False)
    path = os.path.join(os.path.abspath(os.path.expanduser(root)), name)
    os.makedirs(path, exist_ok=True)
    return path


def lock_timeout() -> float:
    """Seconds to wait for another build: ``$SNNTORCH_SPARSE_BUILD_TIMEOUT`` (default 600).

    Raises :class:`BuildConfigError` unless it is a finite number >= 0.
    """
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_LOCK_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise BuildConfigError(f"{TIMEOUT_ENV} must be a number of seconds >= 0, got {raw!r}")
    return value


def needs_build(build_dir: str, name: str, srcs: List[str], cflags: List[str]) -> bool:
    """Cheaply predict whether loading library ``name`` will compile it.

    True when the library is missing, older than a source or header, or was
    built from other source paths, flags or PyTorch (its ``build.ninja`` does
    not name them: e.g. another checkout or venv sharing the build cache) --
    the cases in which ninja rebuilds.
    """
    from torch.utils import cpp_extension
    lib = Path(build_dir) / (name + getattr(cpp_extension, "LIB_EXT", ".so"))
    recipe = Path(build_dir) / "build.ninja"
    if not (lib.is_file() and recipe.is_file()):
        return True
    text = recipe.read_text(errors="replace")
    wanted = [*srcs, str(csrc_dir()), os.path.dirname(torch.__file__), *cflags]
    if not all(w in text for w in wanted):
        return True
    root = csrc_dir()
    newest = max(Path(p).stat().st_mtime for p in
                 [*srcs, *root.rglob("*.h"), *root.rglob("*.cuh")])
    return lib.stat().st_mtime < newest


def lock_holder_alive(lock: str) -> Optional[bool]:
    """Whether a process on this machine has ``lock`` open (PyTorch keeps it open while building).

    ``True``: one has; ``False``: none has (its builder is gone); ``None``:
    cannot tell (no ``/proc``, or a process of the lock's owner is unreadable).
    Only processes of the user who owns the lock file are looked at. A build
    running on another machine over a shared file system is not seen.
    """
    proc = Path("/proc")
    if not (proc / "self" / "fd").is_dir():
        return None
    try:
        st = os.stat(lock)
    except FileNotFoundError:
        return False
    unknown = False
    for pid in proc.iterdir():
        if not pid.name.isdigit():
            continue
        try:
            if pid.stat().st_uid != st.st_uid:
                continue
            fds = os.scandir(pid / "fd")
        except PermissionError:
            unknown = True
            continue
        except OSError:  # the process exited meanwhile
            continue
        with fds:
            for fd in fds:
                try:
                    target = os.stat(fd.path)
                except OSError:
                    continue
                if (target.st_dev, target.st_ino) == (st.st_dev, st.st_ino):
                    return True
    return None if unknown else False


def stale_reason(lock: str) -> Optional[str]:
    """Why ``lock`` is stale (its builder is gone, or it is too old), else ``None``."""
    try:
        age = time.time() - os.stat(lock).st_mtime
    except FileNotFoundError:
        return None
    holder = lock_holder_alive(lock)
    if holder is False:
        return "no running process holds it"
    if holder is None and age > STALE_LOCK_SECONDS:
        return f"it is {age / 60:.0f} min old"
    return None


def _remove_lock(lock: str, judged: os.stat_result) -> None:
    """Remove ``lock`` unless it was replaced since it was judged stale."""
    with contextlib.suppress(FileNotFoundError):
        now = os.stat(lock)
        if (now.st_ino, now.st_mtime_ns) == (judged.st_ino, judged.st_mtime_ns):
            os.remove(lock)


def wait_for_lock(lock: str, timeout: float) -> bool:
    """Wait until the build lock ``lock`` is gone; remove it (with a warning) if stale.

    Returns ``True`` if a stale lock was removed. Raises :class:`BuildError`
    naming the file after ``timeout`` seconds on a live lock.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            judged = os.stat(lock)
        except FileNotFoundError:
            return False
        reason = stale_reason(lock)
        if reason is not None:
            _remove_lock(lock, judged)
            warnings.warn(f"snntorch_sparse: removed the stale build lock {lock} ({reason}; "
                          "an earlier build was interrupted)", RuntimeWarning, stacklevel=2)
            return True
        if time.monotonic() >= deadline:
            raise BuildError(
                f"timed out after {timeout:g} s waiting for another build's lock file {lock}",
                hint=(f"If no other snntorch_sparse build is running, delete {lock}; "
                      f"to wait longer, set {TIMEOUT_ENV} (seconds)."))
        time.sleep(_POLL_SECONDS)


@contextlib.contextmanager
def _bounded_torch_lock_wait(timeout: float) -> Iterator[None]:
    """Make PyTorch's build-lock wait use :func:`wait_for_lock` (bounded, stale-aware).

    Covers a lock taken by another process between our check and PyTorch's
    own (whose ``FileBaton.wait`` has no limit). Callers hold a lock of their
    own (``compiled._lock``), so the swap is not raced within this package.
    """
    from torch.utils import cpp_extension
    original = getattr(cpp_extension, "FileBaton", None)
    if original is None:  # a PyTorch without it: nothing to bound
        yield
        return

    class BoundedBaton(original):
        def wait(self) -> None:
            if wait_for_lock(self.lock_file_path, timeout):
                raise _StaleLockCleared(self.lock_file_path)

    cpp_extension.FileBaton = BoundedBaton
    try:
        yield
    finally:
        cpp_extension.FileBaton = original


def announce_build(build_dir: str, with_cuda: bool) -> None:
    """Print the one line that says a build is starting (stderr)."""
    what, took = ("C++/CUDA", "a few minutes") if with_cuda else ("C++", "~30 s")
    print(f"snntorch_sparse: building the {what} kernels for this machine "
          f"(once, {took}; cached in {build_dir})", file=sys.stderr, flush=True)


def _torch_load(timeout: float, **kwargs) -> None:
    """``cpp_extension.load(**kwargs)`` with a bounded lock wait; failures become :class:`BuildError`.

    Tried once more if a stale lock was removed while waiting.
    """
    from torch.utils import cpp_extension
    try:
        for retry in (False, True):
            try:
                with _bounded_torch_lock_wait(timeout):
                    cpp_extension.load(**kwargs)
                return
            except _StaleLockCleared:
                if retry:
                    raise
    except BuildError:
        raise
    except Exception as exc:  # compiler missing, compile error, ninja missing, ...
        cuda = "/CUDA" if any(s.endswith(".cu") for s in kwargs["sources"]) else ""
        raise BuildError(f"building the snntorch_sparse C++{cuda} extension failed: "
                         f"{type(exc).__name__}", str(exc)) from exc


def load(verbose: bool = False) -> str:
    """Build (if needed) and load the library; returns the build directory.

    Raises :class:`BuildError` (build failed, or another build's lock outlived
    the timeout) and :class:`BuildConfigError` (bad ``$SNNTORCH_SPARSE_BUILD_TIMEOUT``).
    """
    timeout = lock_timeout()
    with_cuda = cuda_wanted()
    name = library_name(with_cuda)
    build_dir = build_directory(name)
    srcs = sources(with_cuda)
    cflags = list(CFLAGS) + simd_flags() + openmp_flags()
    wait_for_lock(os.path.join(build_dir, "lock"), timeout)
    if needs_build(build_dir, name, srcs, cflags):
        announce_build(build_dir, with_cuda)
    _torch_load(
        timeout,
        name=name,
        sources=srcs,
        extra_cflags=cflags,
        extra_ldflags=[f for f in openmp_flags() if f.startswith("-f")],
        extra_cuda_cflags=list(CUDA_CFLAGS),
        extra_include_paths=[str(csrc_dir())],
        build_directory=build_dir,
        is_python_module=False,
        verbose=verbose,
    )
    return build_dir
