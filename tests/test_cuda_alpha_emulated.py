"""The Alpha-neuron backward body (csrc/cuda/alpha_backward.cuh), run on the CPU and compile-checked.

Built with the system C++ compiler into a tiny shared library (no torch headers) and called
through ``ctypes`` column after column (every thread of a launch, one after another), then
compared bit for bit with the PyTorch reference loop of ``snntorch_sparse.alpha`` (the same
expressions in the same order; there are no reductions) and with the C++ kernel (the same
column function). With nvcc installed, the kernel and its launcher are compiled for sm_80 / sm_90.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from snntorch_sparse.alpha import _backward_loop

CSRC = Path(__file__).resolve().parent.parent / "csrc"
_CXX = next((c for c in (os.environ.get("CXX"), "c++", "g++", "clang++") if c and shutil.which(c)), None)

_ARGS = ("const {T}* gu, const {T}* de, const {T}* dh, const {T}* a, const {T}* b, const {T}* ta, const bool* s, "
         "const {T}* r0, int mode, int64_t T, int64_t RN, int64_t N, {T}* ue, {T}* uh")
_HARNESS = "\n".join([
    '#include "alpha_backward.cuh"',
    "using namespace snntorch_sparse::cuda;",
    'extern "C" {',
    *(f"void run_{name}({_ARGS.format(T=T)}) {{\n"
      f"  for (int64_t c = 0; c < RN; ++c)\n"
      f"    alpha_backward_column<{T}>(c, gu, de, dh, a, b, ta, s, r0, mode, T, RN, N, ue, uh);\n}}"
      for name, T in (("f64", "double"), ("f32", "float"))),
    "}",
])


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if _CXX is None:
        pytest.skip("no C++ compiler")
    d = tmp_path_factory.mktemp("alpha_emu")
    src = d / "h.cpp"
    src.write_text(_HARNESS)
    so = d / "h.so"
    subprocess.run([_CXX, "-O1", "-std=c++17", "-ffp-contract=off", "-shared", "-fPIC", f"-I{CSRC / 'cuda'}",
                    str(src), "-o", str(so)], check=True, capture_output=True, text=True)
    return ctypes.CDLL(str(so))


def _ptr(t):
    return None if t is None else ctypes.c_void_p(t.data_ptr())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("with_state_grads", [True, False])
def test_emulated_kernel_matches_reference(lib, dtype, mode, with_state_grads):
    g = torch.Generator().manual_seed(mode + 3 * with_state_grads)
    T, R, N = 9, 4, 7
    gu = torch.randn(T, R, N, generator=g, dtype=dtype) * (torch.rand(T, R, N, generator=g) < 0.4)
    d_e = torch.randn(T, R, N, generator=g, dtype=dtype) if with_state_grads else None
    d_h = torch.randn(T, R, N, generator=g, dtype=dtype) if with_state_grads else None
    a, b, ta = (torch.rand(N, generator=g, dtype=dtype) for _ in range(3))
    spk = (torch.rand(T, R, N, generator=g) < 0.3).contiguous()
    r0 = (torch.rand(R, N, generator=g) < 0.5).to(dtype)
    ue_ref, uh_ref = _backward_loop(gu, d_e, d_h, a, b, ta, spk, r0, mode, T, R, N)
    ue, uh = torch.empty(T, R, N, dtype=dtype), torch.empty(T, R, N, dtype=dtype)
    fn = lib.run_f64 if dtype == torch.float64 else lib.run_f32
    fn(_ptr(gu), _ptr(d_e), _ptr(d_h), _ptr(a), _ptr(b), _ptr(ta), _ptr(spk), _ptr(r0), ctypes.c_int(mode),
       ctypes.c_int64(T), ctypes.c_int64(R * N), ctypes.c_int64(N), _ptr(ue), _ptr(uh))
    assert torch.equal(ue, ue_ref) and torch.equal(uh, uh_ref)
    from snntorch_sparse.ops import compiled
    if compiled.available() and hasattr(torch.ops.snntorch_sparse, "alpha_backward"):
        ue2, uh2 = torch.ops.snntorch_sparse.alpha_backward(gu, d_e, d_h, a, b, ta, spk, r0, mode, T, R, N)
        assert torch.equal(ue, ue2) and torch.equal(uh, uh2)


def test_opcheck_alpha_backward():
    from snntorch_sparse.ops import compiled
    if not (compiled.available() and hasattr(torch.ops.snntorch_sparse, "alpha_backward")):
        pytest.skip("compiled backend not built")
    g = torch.Generator().manual_seed(0)
    T, R, N = 5, 3, 4
    f64 = dict(dtype=torch.float64)
    d = torch.randn(T, R, N, generator=g, **f64)
    a = torch.rand(N, generator=g, **f64)
    spk = torch.rand(T, R, N, generator=g) < 0.3
    op = torch.ops.snntorch_sparse.alpha_backward.default
    torch.library.opcheck(op, (d, d, d, a, a, a, spk, torch.ones(R, N, **f64), 0, T, R, N))
    torch.library.opcheck(op, (d, None, None, a, a, a, spk, None, 1, T, R, N))


def _nvcc():
    cand = shutil.which("nvcc")
    if cand:
        return cand
    home = os.environ.get("CUDA_HOME") or "/usr/local/cuda"
    path = os.path.join(home, "bin", "nvcc")
    return path if os.path.isfile(path) else None


@pytest.mark.skipif(_nvcc() is None, reason="nvcc not installed")
def test_nvcc_compiles_alpha_kernel(tmp_path):
    decl = ("template void k::launch_alpha_backward<{T}>(const {T}*, const {T}*, const {T}*, const {T}*, "
            "const {T}*, const {T}*, const bool*, const {T}*, int, int64_t, int64_t, int64_t, {T}*, {T}*, "
            "cudaStream_t);\n")
    src = tmp_path / "inst.cu"
    src.write_text('#include "alpha_backward.cuh"\nnamespace k = snntorch_sparse::cuda;\n'
                   + decl.format(T="float") + decl.format(T="double"))
    proc = subprocess.run([_nvcc(), "-c", "-std=c++17", "-fmad=false", f"-I{CSRC / 'cuda'}",
                           "-gencode", "arch=compute_80,code=sm_80", "-gencode", "arch=compute_90,code=sm_90",
                           str(src), "-o", str(tmp_path / "inst.o")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]


# ------------------------------------------------------------------ the CUDA launcher, replayed
# csrc/cuda/neurons_launch.cu (alpha_backward_cuda) calls launch_alpha_backward: a grid of
# ceil(R*N / threads) blocks, thread `t` of block `b` running column b*threads + t
# (alpha_backward_kernel). Replayed block by block, thread by thread (and in reverse order: the
# columns share nothing), with the block size read from the header; compared bit for bit with
# the CPU op.

_GRID_HARNESS = "\n".join([
    '#include "alpha_backward.cuh"',
    "using namespace snntorch_sparse::cuda;",
    'extern "C" {',
    *(f"void grid_{name}({_ARGS.format(T=T)}, int64_t threads, int reverse) {{\n"
      f"  const int64_t blocks = (RN + threads - 1) / threads;\n"
      f"  for (int64_t bi = 0; bi < blocks; ++bi)\n"
      f"    for (int64_t ti = 0; ti < threads; ++ti) {{\n"
      f"      const int64_t bb = reverse ? blocks - 1 - bi : bi, tt = reverse ? threads - 1 - ti : ti;\n"
      f"      const int64_t c = bb * threads + tt;\n"
      f"      if (c < RN) alpha_backward_column<{T}>(c, gu, de, dh, a, b, ta, s, r0, mode, T, RN, N, ue, uh);\n"
      f"    }}\n}}"
      for name, T in (("f64", "double"), ("f32", "float"))),
    "}",
])


def _launch_threads() -> int:
    """The block size of launch_alpha_backward (csrc/cuda/alpha_backward.cuh)."""
    import re
    text = (CSRC / "cuda" / "alpha_backward.cuh").read_text()
    m = re.search(r"void launch_alpha_backward\(.*?const int threads = (\d+);", text, re.S)
    assert m, "launch_alpha_backward's block size not found"
    return int(m.group(1))


@pytest.fixture(scope="module")
def grid_lib(tmp_path_factory):
    if _CXX is None:
        pytest.skip("no C++ compiler")
    d = tmp_path_factory.mktemp("alpha_grid_emu")
    src = d / "h.cpp"
    src.write_text(_GRID_HARNESS)
    so = d / "h.so"
    subprocess.run([_CXX, "-O1", "-std=c++17", "-ffp-contract=off", "-shared", "-fPIC", f"-I{CSRC / 'cuda'}",
                    str(src), "-o", str(so)], check=True, capture_output=True, text=True)
    return ctypes.CDLL(str(so))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("R", [3, 41])  # R*N = 27 (one partial block), 369 (two blocks of 256)
def test_emulated_launch_matches_cpu_op(grid_lib, dtype, mode, R):
    from snntorch_sparse.ops import compiled
    if not (compiled.available() and hasattr(torch.ops.snntorch_sparse, "alpha_backward")):
        pytest.skip("compiled backend not built")
    g = torch.Generator().manual_seed(17 * mode + R)
    T, N = 7, 9
    gu = torch.randn(T, R, N, generator=g, dtype=dtype) * (torch.rand(T, R, N, generator=g) < 0.4)
    d_e, d_h = (torch.randn(T, R, N, generator=g, dtype=dtype) for _ in range(2))
    a, b, ta = (torch.rand(N, generator=g, dtype=dtype) for _ in range(3))
    spk = (torch.rand(T, R, N, generator=g) < 0.3).contiguous()
    r0 = (torch.rand(R, N, generator=g) < 0.5).to(dtype)
    ue_cpu, uh_cpu = torch.ops.snntorch_sparse.alpha_backward(gu, d_e, d_h, a, b, ta, spk, r0, mode, T, R, N)
    fn = grid_lib.grid_f64 if dtype == torch.float64 else grid_lib.grid_f32
    for reverse in (0, 1):
        ue, uh = torch.empty(T, R, N, dtype=dtype), torch.empty(T, R, N, dtype=dtype)
        fn(_ptr(gu), _ptr(d_e), _ptr(d_h), _ptr(a), _ptr(b), _ptr(ta), _ptr(spk), _ptr(r0), ctypes.c_int(mode),
           ctypes.c_int64(T), ctypes.c_int64(R * N), ctypes.c_int64(N), _ptr(ue), _ptr(uh),
           ctypes.c_int64(_launch_threads()), ctypes.c_int(reverse))
        assert torch.equal(ue, ue_cpu) and torch.equal(uh, uh_cpu)
