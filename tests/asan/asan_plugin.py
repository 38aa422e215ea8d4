"""pytest plugin (``-p asan_plugin``): build the compiled backend with AddressSanitizer.

Loaded before any test module imports ``snntorch_sparse.ops.compiled``: it adds
``-fsanitize=address`` to the C++ flags of :mod:`snntorch_sparse.ops._build`,
so the JIT build (in ``$SNNTORCH_SPARSE_BUILD_DIR``, set by ``run_asan.sh`` to
a directory of its own) produces an instrumented library. The ASan runtime
itself comes from ``LD_PRELOAD``.
"""
from snntorch_sparse.ops import _build

ASAN_FLAGS = ["-fsanitize=address", "-fno-omit-frame-pointer", "-g", "-O1"]
_build.CFLAGS = [f for f in _build.CFLAGS if not f.startswith("-O")] + ASAN_FLAGS


def pytest_report_header(config):
    return f"snntorch_sparse ASan build: CFLAGS={_build.CFLAGS}"
