"""The CUDA RLeaky backward body (csrc/cuda/rleaky_backward.cuh), run on the CPU and compile-checked.

The header is host-compilable: here it is built with the system C++ compiler into a tiny
shared library (no torch headers), called through ``ctypes`` row after row (every thread of
a launch, one after another) and compared with the PyTorch reference loop of
``snntorch_sparse.recurrent`` on the same inputs. With nvcc installed, the kernel and its
launcher are also compiled for sm_80 / sm_90.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from snntorch_sparse.recurrent import _backward_loop

CSRC = Path(__file__).resolve().parent.parent / "csrc"
_CXX = next((c for c in (os.environ.get("CXX"), "c++", "g++", "clang++") if c and shutil.which(c)), None)

_HARNESS = r"""
#include "rleaky_backward.cuh"
using namespace snntorch_sparse::cuda;
template <typename T>
static void run(const int64_t* rowptr, const int64_t* col, const T* sg, const T* d_spk, int compact,
                const T* d_mem, const T* beta, const T* wt, const T* v, const bool* spk, const T* keep0, int mode,
                int64_t Tn, int64_t R, int64_t N, T* a, T* g, T* scratch) {
  for (int64_t r = 0; r < R; ++r)
    rleaky_backward_row<T>(r, rowptr, col, sg, d_spk, compact != 0, d_mem, beta, wt, v, spk, keep0, mode, Tn, R, N,
                           a, g, scratch);
}
extern "C" {
void run_f64(const int64_t* rp, const int64_t* c, const double* sg, const double* ds, int compact, const double* dm,
             const double* b, const double* wt, const double* v, const bool* s, const double* k0, int mode,
             int64_t T, int64_t R, int64_t N, double* a, double* g, double* sc) {
  run<double>(rp, c, sg, ds, compact, dm, b, wt, v, s, k0, mode, T, R, N, a, g, sc);
}
void run_f32(const int64_t* rp, const int64_t* c, const float* sg, const float* ds, int compact, const float* dm,
             const float* b, const float* wt, const float* v, const bool* s, const float* k0, int mode,
             int64_t T, int64_t R, int64_t N, float* a, float* g, float* sc) {
  run<float>(rp, c, sg, ds, compact, dm, b, wt, v, s, k0, mode, T, R, N, a, g, sc);
}
}
"""


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if _CXX is None:
        pytest.skip("no C++ compiler")
    d = tmp_path_factory.mktemp("rleaky_emu")
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
@pytest.mark.parametrize("all_to_all", [True, False])
@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("N", [6, 16, 21])
def test_emulated_kernel_matches_reference(lib, dtype, mode, all_to_all, compact, N):
    g = torch.Generator().manual_seed(mode + 3 * all_to_all + 7 * N)
    T, R = 9, 4
    act_mask = torch.rand(T, R, N, generator=g) < 0.3
    act_idx = act_mask.view(-1).nonzero().squeeze(1)
    act_sg = torch.rand(act_idx.numel(), generator=g, dtype=dtype)
    d_spk = torch.randn(T, R, N, generator=g, dtype=dtype)
    d_mem = torch.randn(T, R, N, generator=g, dtype=dtype)
    beta = torch.rand(N, generator=g, dtype=dtype)
    weight = torch.randn(N, N, generator=g, dtype=dtype) if all_to_all else None
    wt = weight.t().contiguous() if all_to_all else None
    v = None if all_to_all else torch.randn(N, generator=g, dtype=dtype)
    spk = torch.rand(T, R, N, generator=g) < 0.3
    u0 = torch.randn(R, N, generator=g, dtype=dtype)
    thr = torch.full((N,), 0.5, dtype=dtype)
    bounds = torch.searchsorted(act_idx, torch.arange(T + 1) * (R * N)).tolist()
    a_ref, g_ref = _backward_loop(act_idx, act_sg, bounds, d_spk, d_mem, beta, weight, wt, v, spk, u0, thr,
                                  mode, T, R, N)
    rows = act_idx // N
    rowptr = torch.zeros(T * R + 1, dtype=torch.long)
    rowptr[1:] = torch.bincount(rows, minlength=T * R).cumsum(0)
    col = (act_idx - rows * N).contiguous()
    keep0 = (u0 - thr <= 0).to(dtype).contiguous() if mode == 1 else None
    a = torch.empty(T, R, N, dtype=dtype)
    gk = torch.empty(act_idx.numel(), dtype=dtype)
    scratch = torch.empty(R * 2 * N, dtype=dtype)
    fn = lib.run_f64 if dtype == torch.float64 else lib.run_f32
    ds_arg = d_spk.view(-1)[act_idx].contiguous() if compact else d_spk
    fn(_ptr(rowptr), _ptr(col), _ptr(act_sg), _ptr(ds_arg), ctypes.c_int(int(compact)), _ptr(d_mem), _ptr(beta),
       _ptr(wt), _ptr(v), _ptr(spk.contiguous()), _ptr(keep0), ctypes.c_int(mode), ctypes.c_int64(T), ctypes.c_int64(R),
       ctypes.c_int64(N), _ptr(a), _ptr(gk), _ptr(scratch))
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(a, a_ref, rtol=tol, atol=tol)
    torch.testing.assert_close(gk, g_ref, rtol=tol, atol=tol)
    if torch.ops.snntorch_sparse.__dict__.get("rleaky_backward") is not None or _compiled():
        from snntorch_sparse.ops.fused import flat_to_csr
        spk_csr = flat_to_csr(spk.view(-1).nonzero().squeeze(1), T * R, N) if mode == 1 else (None, None)
        a2, g2, _, _, a0, _ = torch.ops.snntorch_sparse.rleaky_backward(
            rowptr, col.to(torch.int32), act_sg, ds_arg, d_mem, beta, wt, v, *spk_csr, keep0, mode, T, R, N,
            d_spk_compact=compact)
        assert torch.equal(a, a2) and torch.equal(gk, g2)  # same arithmetic in the same order
        assert torch.equal(a0, a[0])


def _compiled() -> bool:
    from snntorch_sparse.ops import compiled
    return compiled.available() and hasattr(torch.ops.snntorch_sparse, "rleaky_backward")


def _nvcc():
    cand = shutil.which("nvcc")
    if cand:
        return cand
    home = os.environ.get("CUDA_HOME") or "/usr/local/cuda"
    path = os.path.join(home, "bin", "nvcc")
    return path if os.path.isfile(path) else None


@pytest.mark.skipif(_nvcc() is None, reason="nvcc not installed")
def test_nvcc_compiles_rleaky_kernel(tmp_path):
    src = tmp_path / "inst.cu"
    src.write_text('#include "rleaky_backward.cuh"\n'
                   "namespace k = snntorch_sparse::cuda;\n"
                   "template void k::launch_rleaky_backward<float>(const int64_t*, const int64_t*, const float*, "
                   "const float*, bool, const float*, const float*, const float*, const float*, const bool*, const float*, "
                   "int, int64_t, int64_t, int64_t, float*, float*, float*, cudaStream_t);\n"
                   "template void k::launch_rleaky_backward<double>(const int64_t*, const int64_t*, const double*, "
                   "const double*, bool, const double*, const double*, const double*, const double*, const bool*, "
                   "const double*, int, int64_t, int64_t, int64_t, double*, double*, double*, cudaStream_t);\n")
    proc = subprocess.run([_nvcc(), "-c", "-std=c++17", "-fmad=false", f"-I{CSRC / 'cuda'}",
                           "-gencode", "arch=compute_80,code=sm_80", "-gencode", "arch=compute_90,code=sm_90",
                           str(src), "-o", str(tmp_path / "inst.o")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
