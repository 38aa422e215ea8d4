"""Compile-check the CUDA kernels with plain nvcc (no GPU needed).

* The torch-free kernel bodies (``csrc/cuda/kernels.cuh``), every launcher
  instantiated for float32/float64, for ``sm_80`` and ``sm_90`` (a few s).
* The neuron backward bodies (``rleaky_backward.cuh``, ``rsynaptic_backward.cuh``,
  ``alpha_backward.cuh``), their launchers, likewise (no FMA in their SASS either).
* ``csrc/cuda/ops_launch.cu``, ``fused_launch.cu`` and ``neurons_launch.cu`` against
  PyTorch's headers (``slow``, ~40 s each): CPU wheels ship the c10/cuda headers but not
  one generated file, which is stubbed here.

Skipped when nvcc is not installed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

CSRC = Path(__file__).resolve().parent.parent / "csrc"


def _nvcc():
    cand = shutil.which("nvcc")
    if cand:
        return cand
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home and os.path.isfile(os.path.join(home, "bin", "nvcc")):
            return os.path.join(home, "bin", "nvcc")
    return None


NVCC = _nvcc()
pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc not installed")

_INSTANTIATIONS = """
#include "kernels.cuh"
namespace k = snntorch_sparse::cuda;
#define INST(T)                                                                               \\
  template cudaError_t k::launch_lif_scan<T>(const T*, const T*, const T*, T*, T*, int64_t,   \\
                                             int64_t, int64_t, int, int, cudaStream_t);       \\
  template cudaError_t k::launch_lif_scan_backward<T, T>(const T*, const T*, const T*, T*,    \\
                                                         int64_t, int64_t, int64_t, int, int, \\
                                                         cudaStream_t);                       \\
  template cudaError_t k::launch_lif_scan_backward<T, uint8_t>(                               \\
      const T*, const T*, const uint8_t*, T*, int64_t, int64_t, int64_t, int, int,            \\
      cudaStream_t);                                                                          \\
  template cudaError_t k::launch_weight_grad_csc<T>(const T*, const int64_t*, const T*,       \\
                                                    const int64_t*, T*, int64_t, int64_t,     \\
                                                    cudaStream_t);                            \\
  template cudaError_t k::launch_input_grad<T>(const T*, const T*, const int64_t*, T*,        \\
                                               int64_t, int64_t, int64_t, cudaStream_t);
INST(float)
INST(double)
"""

# The fused Linear+LIF kernels (fused_kernels.cuh), every launcher.
_FUSED_INSTANTIATIONS = """
#include "fused_kernels.cuh"
namespace k = snntorch_sparse::cuda;
#define INST(T)                                                                                       \\
  template cudaError_t k::launch_lif_fused_scan<T>(const T*, const T*, const T*, T*, T*, bool, int64_t, \\
                                                   int64_t, int64_t, int, cudaStream_t, T*);          \\
  template cudaError_t k::launch_lif_fused_backward_scan<T>(T*, const T*, const uint8_t*, T*, int64_t,     \\
                                                            int64_t, int64_t, int, cudaStream_t, T*,    \\
                                                            bool);                                      \\
  template cudaError_t k::launch_count_shift<T>(const T*, const T*, int64_t, int64_t, int64_t*,       \\
                                                int64_t*, cudaStream_t);                              \\
  template cudaError_t k::launch_compact_shift<T>(T*, const T*, int64_t, int64_t, const int64_t*,     \\
                                                  int32_t*, T*, const int64_t*, int32_t*, int64_t,    \\
                                                  int64_t, cudaStream_t);                             \\
  template cudaError_t k::launch_count_nonzero<T>(const T*, int64_t, int64_t, int64_t*, cudaStream_t); \\
  template cudaError_t k::launch_compact_nonzero<T>(const T*, int64_t, int64_t, const int64_t*,       \\
                                                    int32_t*, T*, cudaStream_t);                      \\
  template cudaError_t k::launch_scatter_active<T>(int64_t, int64_t, const int64_t*, const int32_t*,  \\
                                                   const T*, const T*, bool, const T*, T*, int64_t,   \\
                                                   cudaStream_t);                                     \\
  template cudaError_t k::launch_densify<T>(int64_t, int64_t, const int64_t*, const int32_t*,         \\
                                            const T*, T*, int64_t, cudaStream_t);                     \\
  template cudaError_t k::launch_dx_active<T>(int64_t, int64_t, const int64_t*, const int32_t*,       \\
                                              const T*, const T*, int64_t, bool, T*, int64_t, cudaStream_t);  \\
  template cudaError_t k::launch_gather_active<T>(int64_t, int64_t, const int64_t*, const int32_t*,   \\
                                                  const T*, bool, T*, int64_t, cudaStream_t);
INST(float)
INST(double)
// not a template: called so that its kernel is compiled
cudaError_t chunk_rowptr(int64_t n, const int64_t* a, int64_t* ar, const int64_t* s, int64_t* sr, cudaStream_t st) {
  return k::launch_chunk_rowptr(n, a, ar, s, sr, st);
}
"""


# The recurrent / alpha neuron backward bodies (rleaky_backward.cuh, rsynaptic_backward.cuh,
# alpha_backward.cuh), the launchers that neurons_launch.cu calls.
_NEURON_INSTANTIATIONS = """
#include "alpha_backward.cuh"
#include "rleaky_backward.cuh"
#include "rsynaptic_backward.cuh"
namespace k = snntorch_sparse::cuda;
#define INST(T)                                                                                            \\
  template void k::launch_rleaky_backward<T>(const int64_t*, const int64_t*, const T*, const T*, bool,       \\
                                             const T*, const T*, const T*, const T*, const bool*, const T*,  \\
                                             int, int64_t, int64_t, int64_t, T*, T*, T*, cudaStream_t);      \\
  template void k::launch_rsynaptic_backward<T>(const int64_t*, const int64_t*, const T*, const T*,          \\
                                                const T*, const T*, const T*, const T*, const T*, const T*,  \\
                                                const bool*, const T*, int, int64_t, int64_t, int64_t, T*,   \\
                                                T*, T*, T*, cudaStream_t);                                   \\
  template void k::launch_alpha_backward<T>(const T*, const T*, const T*, const T*, const T*, const T*,      \\
                                            const bool*, const T*, int, int64_t, int64_t, int64_t, T*, T*,   \\
                                            cudaStream_t);
INST(float)
INST(double)
"""

# unit -> (translation unit, kernel-name marker of the SASS functions that must have no FMA)
_UNITS = {"scan": (_INSTANTIATIONS, "lif_scan"), "fused": (_FUSED_INSTANTIATIONS, "lif_scan"),
          "neurons": (_NEURON_INSTANTIATIONS, "backward_kernel")}


def _run(cmd, timeout):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"[-6000:]
    return proc


@pytest.mark.parametrize("unit", ["scan", "fused", "neurons"])
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_kernels_compile_with_plain_nvcc(arch, unit, tmp_path):
    tu = tmp_path / "kernels_check.cu"
    text, fma_free = _UNITS[unit]
    tu.write_text(text)
    obj = tmp_path / f"kernels_{arch}.o"
    _run([NVCC, "-std=c++17", "-O3", "--fmad=false", f"-arch={arch}", "-Werror=all-warnings",
          "-I", str(CSRC / "cuda"), "-c", str(tu), "-o", str(obj)], timeout=120)
    assert obj.stat().st_size > 0
    # No FMA may appear in the scans / neuron backward bodies (bit-identity with the reference
    # and the CPU kernels, which are built with -ffp-contract=off).
    dump = shutil.which("cuobjdump") or os.path.join(os.path.dirname(NVCC), "cuobjdump")
    if os.path.isfile(dump):
        sass = subprocess.run([dump, "-sass", str(obj)], capture_output=True, text=True).stdout
        scans = [blk for blk in sass.split("Function : ") if fma_free in blk]
        assert scans, f"no {fma_free} kernels in the object"
        for blk in scans:
            assert "FFMA" not in blk and "DFMA" not in blk, blk[:200]


@pytest.mark.slow
@pytest.mark.parametrize("unit", ["ops_launch.cu", "fused_launch.cu", "neurons_launch.cu"])
def test_launch_unit_compiles_against_torch_headers(unit, tmp_path):
    torch = pytest.importorskip("torch")
    from torch.utils.cpp_extension import include_paths

    incs = include_paths()
    stub = tmp_path / "inc" / "c10" / "cuda" / "impl"
    if not any((Path(p) / "c10/cuda/impl/cuda_cmake_macros.h").is_file() for p in incs):
        stub.mkdir(parents=True)
        (stub / "cuda_cmake_macros.h").write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    cmd = [NVCC, "-std=c++20", "-O3", "--fmad=false", "-arch=sm_90", "--expt-relaxed-constexpr",
           "-Xcompiler", "-fPIC", f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
           "-D__CUDA_NO_HALF_OPERATORS__", "-D__CUDA_NO_HALF_CONVERSIONS__",
           "-D__CUDA_NO_BFLOAT16_CONVERSIONS__", "-D__CUDA_NO_HALF2_OPERATORS__",
           "-diag-suppress", "3306", "-I", str(tmp_path / "inc"), "-I", str(CSRC),
           "-I", sysconfig.get_paths()["include"]]
    for p in incs:
        cmd += ["-isystem", p]
    obj = tmp_path / "launch.o"
    _run(cmd + ["-c", str(CSRC / "cuda" / unit), "-o", str(obj)], timeout=300)
    assert obj.stat().st_size > 0
