#!/usr/bin/env bash
# Build the compiled CPU backend (csrc/ops.cpp + csrc/cpu/*.cpp) with
# AddressSanitizer and run the compiled-op parity tests (and the layer tests
# that go through the compiled backend) under it.
#
#   tests/asan/run_asan.sh                 # default test selection
#   tests/asan/run_asan.sh tests/test_x.py # other pytest arguments
#
# Environment: PYTHON (default .venv/bin/python, else python3), CXX (default g++).
# Python itself is not instrumented, so the ASan runtime is LD_PRELOADed and
# leak detection is off (the interpreter "leaks" by design at exit).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON="$(command -v python3)"
CXX="${CXX:-g++}"

if [ ! -f csrc/ops.cpp ] || ! ls csrc/cpu/*.cpp >/dev/null 2>&1; then
    echo "run_asan.sh: csrc/ops.cpp or csrc/cpu/*.cpp missing: nothing to build" >&2
    exit 2
fi

LIBASAN="$("$CXX" -print-file-name=libasan.so)"
if [ ! -e "$LIBASAN" ] || [ "$LIBASAN" = "libasan.so" ]; then
    echo "run_asan.sh: libasan.so not found for $CXX (install libasan / gcc's sanitizer runtime)" >&2
    exit 2
fi

BUILD_DIR="${SNNTORCH_SPARSE_ASAN_BUILD_DIR:-$ROOT/build/asan}"
mkdir -p "$BUILD_DIR"

if [ "$#" -eq 0 ]; then
    set -- tests/test_compiled_ops.py tests/test_fused_cpu.py tests/test_parity.py tests/test_reliability_inputs.py \
           tests/test_reliability_fuzz.py
fi

export SNNTORCH_SPARSE_BUILD_DIR="$BUILD_DIR"
export SNNTORCH_SPARSE_BACKEND=compiled        # fail, don't fall back, if the build breaks
export SNNTORCH_SPARSE_NO_CUDA=1               # CPU kernels only
export PYTHONPATH="$ROOT/tests/asan${PYTHONPATH:+:$PYTHONPATH}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:halt_on_error=1:strict_string_checks=1:check_initialization_order=1:detect_stack_use_after_return=1}"
export CXX

# libstdc++ must be preloaded too: Python does not link it, and without it
# ASan's __cxa_throw interceptor finds no real __cxa_throw and aborts on the
# first C++ exception (every TORCH_CHECK that fails).
LIBSTDCXX="$("$CXX" -print-file-name=libstdc++.so)"
PRELOAD="$LIBASAN"
[ -e "$LIBSTDCXX" ] && PRELOAD="$LIBASAN:$LIBSTDCXX"

echo "run_asan.sh: preload=$PRELOAD build=$BUILD_DIR"
# Build first (outside pytest) so a compile error is shown plainly.
LD_PRELOAD="$PRELOAD" "$PYTHON" -c "
import asan_plugin  # noqa: F401  (adds -fsanitize=address)
from snntorch_sparse.ops import compiled
assert compiled.available(strict=True)
print('run_asan.sh: instrumented build OK')
"
LD_PRELOAD="$PRELOAD" exec "$PYTHON" -m pytest -p asan_plugin -q -p no:cacheprovider "$@"
