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


# ------------------------------------------------------------------ the CUDA launcher, replayed
# csrc/cuda/neurons_launch.cu (rleaky_backward_cuda) and launch_rleaky_backward: col to int64, the
# spikes as a dense bool [T, R, N] (reset to zero), a grid of ceil(R / threads) blocks whose thread
# `t` of block `b` runs row b*threads + t (rleaky_backward_kernel), then dV and dW_in by the
# sparse_weight_grad op over the events and Σa by a sum. Replayed here block by block, thread by
# thread (also in reverse order: the rows share nothing), with the launcher's block size read
# from the header, and compared with the CPU op: a, g, a[0] bit for bit, the sums to rounding.

_LAUNCH_HARNESS = r"""
#include "rleaky_backward.cuh"
using namespace snntorch_sparse::cuda;
template <typename T>
static void grid(const int64_t* rowptr, const int64_t* col, const T* sg, const T* d_spk, int compact,
                 const T* d_mem, const T* beta, const T* wt, const T* v, const bool* spk, const T* keep0, int mode,
                 int64_t Tn, int64_t R, int64_t N, T* a, T* g, T* scratch, int64_t threads, int reverse) {
  const int64_t blocks = (R + threads - 1) / threads;
  for (int64_t bi = 0; bi < blocks; ++bi)
    for (int64_t ti = 0; ti < threads; ++ti) {
      const int64_t b = reverse ? blocks - 1 - bi : bi, t = reverse ? threads - 1 - ti : ti;
      const int64_t r = b * threads + t;  // rleaky_backward_kernel: blockIdx.x * blockDim.x + threadIdx.x
      if (r < R)
        rleaky_backward_row<T>(r, rowptr, col, sg, d_spk, compact != 0, d_mem, beta, wt, v, spk, keep0, mode, Tn,
                               R, N, a, g, scratch);
    }
}
extern "C" {
void grid_f64(const int64_t* rp, const int64_t* c, const double* sg, const double* ds, int compact, const double* dm,
              const double* b, const double* wt, const double* v, const bool* s, const double* k0, int mode,
              int64_t T, int64_t R, int64_t N, double* a, double* g, double* sc, int64_t th, int rev) {
  grid<double>(rp, c, sg, ds, compact, dm, b, wt, v, s, k0, mode, T, R, N, a, g, sc, th, rev);
}
void grid_f32(const int64_t* rp, const int64_t* c, const float* sg, const float* ds, int compact, const float* dm,
              const float* b, const float* wt, const float* v, const bool* s, const float* k0, int mode,
              int64_t T, int64_t R, int64_t N, float* a, float* g, float* sc, int64_t th, int rev) {
  grid<float>(rp, c, sg, ds, compact, dm, b, wt, v, s, k0, mode, T, R, N, a, g, sc, th, rev);
}
}
"""


def _launch_threads() -> int:
    """The block size of launch_rleaky_backward (csrc/cuda/rleaky_backward.cuh)."""
    import re
    text = (CSRC / "cuda" / "rleaky_backward.cuh").read_text()
    m = re.search(r"void launch_rleaky_backward\(.*?const int threads = (\d+);", text, re.S)
    assert m, "launch_rleaky_backward's block size not found"
    return int(m.group(1))


@pytest.fixture(scope="module")
def launch_lib(tmp_path_factory):
    if _CXX is None:
        pytest.skip("no C++ compiler")
    d = tmp_path_factory.mktemp("rleaky_launch_emu")
    src = d / "h.cpp"
    src.write_text(_LAUNCH_HARNESS)
    so = d / "h.so"
    subprocess.run([_CXX, "-O1", "-std=c++17", "-ffp-contract=off", "-shared", "-fPIC", f"-I{CSRC / 'cuda'}",
                    str(src), "-o", str(so)], check=True, capture_output=True, text=True)
    return ctypes.CDLL(str(so))


def _csr_flat(rowptr, col, n_cols):
    """neurons_launch.cu's csr_flat: row of entry k by searchsorted (right) - 1, then row*n_cols + col."""
    if col.numel() == 0:
        return torch.empty(0, dtype=torch.long)
    rows = torch.searchsorted(rowptr, torch.arange(col.numel()), right=True) - 1
    return rows * n_cols + col.long()


def _emulated_launch(lib, rowptr, col32, sg, d_spk, d_mem, beta, wt, v, spk_rowptr, spk_col, keep0, mode, T, R, N,
                     compact, x_rowptr, x_col, x_val, n_in, reverse):
    dtype = sg.dtype
    spk_dense = None
    if mode == 1:
        spk_dense = torch.zeros(T * R * N, dtype=torch.bool)
        spk_dense.index_fill_(0, _csr_flat(spk_rowptr, spk_col, N), True)
    col = col32.long().contiguous()
    a = torch.empty(T, R, N, dtype=dtype)
    g = torch.empty(sg.numel(), dtype=dtype)
    scratch = torch.empty(R * 2 * N, dtype=dtype)
    fn = lib.grid_f64 if dtype == torch.float64 else lib.grid_f32
    fn(_ptr(rowptr), _ptr(col), _ptr(sg), _ptr(d_spk), ctypes.c_int(int(compact)), _ptr(d_mem), _ptr(beta), _ptr(wt),
       _ptr(v), _ptr(spk_dense), _ptr(keep0), ctypes.c_int(mode), ctypes.c_int64(T), ctypes.c_int64(R),
       ctypes.c_int64(N), _ptr(a), _ptr(g), _ptr(scratch), ctypes.c_int64(_launch_threads()), ctypes.c_int(reverse))
    # each row ran in its own scratch slice: row r's last carry a[0][r] sits at r*2N
    assert torch.equal(scratch.view(R, 2, N)[:, 0], a[0])
    a2 = a.view(T * R, N)
    h = torch.zeros(T * R, N, dtype=dtype)
    h[:(T - 1) * R] = a2[R:]
    swg = torch.ops.snntorch_sparse.sparse_weight_grad
    dv = swg(h, _csr_flat(spk_rowptr, spk_col, N), None, N)
    db = a2.sum(0)
    dw = swg(a2, _csr_flat(x_rowptr, x_col, n_in), x_val, n_in)
    return a, g, dv, db, a[0].clone(), dw


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("all_to_all", [True, False])
@pytest.mark.parametrize("R", [3, 130])
def test_emulated_launch_matches_cpu_op(launch_lib, dtype, mode, all_to_all, R):
    if not _compiled():
        pytest.skip("compiled backend not built")
    from snntorch_sparse.ops.fused import flat_to_csr
    g = torch.Generator().manual_seed(11 * mode + 5 * all_to_all + R)
    T, N, n_in = 6, 13, 9
    compact = mode == 2  # both d_spk forms
    act_idx = (torch.rand(T, R, N, generator=g) < 0.3).view(-1).nonzero().squeeze(1)
    rowptr, col32 = flat_to_csr(act_idx, T * R, N)
    sg = torch.rand(act_idx.numel(), generator=g, dtype=dtype)
    d_spk = torch.randn(T, R, N, generator=g, dtype=dtype)
    ds_arg = d_spk.view(-1)[act_idx].contiguous() if compact else d_spk
    d_mem = torch.randn(T, R, N, generator=g, dtype=dtype)
    beta = torch.rand(N, generator=g, dtype=dtype)
    wt = torch.randn(N, N, generator=g, dtype=dtype) if all_to_all else None
    v = None if all_to_all else torch.randn(N, generator=g, dtype=dtype)
    spk_rowptr, spk_col = flat_to_csr((torch.rand(T, R, N, generator=g) < 0.3).view(-1).nonzero().squeeze(1),
                                      T * R, N)
    keep0 = (torch.rand(R, N, generator=g) < 0.7).to(dtype) if mode == 1 else None
    x_idx = (torch.rand(T, R, n_in, generator=g) < 0.2).view(-1).nonzero().squeeze(1)
    x_rowptr, x_col = flat_to_csr(x_idx, T * R, n_in)
    x_val = torch.randn(x_idx.numel(), generator=g, dtype=dtype)
    cpu = torch.ops.snntorch_sparse.rleaky_backward(
        rowptr, col32, sg, ds_arg, d_mem, beta, wt, v, spk_rowptr, spk_col, keep0, mode, T, R, N,
        d_spk_compact=compact, need_a=True, need_g=True, need_dv=all_to_all, need_db=True,
        x_rowptr=x_rowptr, x_col=x_col, x_val=x_val, n_in=n_in)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    for reverse in (0, 1):
        a, gk, dv, db, a0, dw = _emulated_launch(launch_lib, rowptr, col32, sg, ds_arg, d_mem, beta, wt, v,
                                                 spk_rowptr, spk_col, keep0, mode, T, R, N, compact, x_rowptr,
                                                 x_col, x_val, n_in, reverse)
        assert torch.equal(a, cpu[0]) and torch.equal(gk, cpu[1]) and torch.equal(a0, cpu[4])
        if all_to_all:
            torch.testing.assert_close(dv, cpu[2], rtol=tol, atol=tol)
        torch.testing.assert_close(db, cpu[3], rtol=tol, atol=tol)
        torch.testing.assert_close(dw, cpu[5], rtol=tol, atol=tol)


def test_cuda_tensors_take_the_kernel_only_where_it_is_registered(monkeypatch):
    """RLeaky / RSynaptic / Alpha: a CUDA tensor goes to the compiled op exactly when the op has a
    kernel for the CUDA dispatch key (an nvcc build); else the PyTorch loop, as before."""
    if not _compiled():
        pytest.skip("compiled backend not built")
    import types

    import snntorch_sparse.alpha as al
    import snntorch_sparse.recurrent as rec
    import snntorch_sparse.rsynaptic as rs
    checks = ((rec._compiled_ok, "rleaky_backward"), (rs._kernel_ok, "rsynaptic_backward"),
              (al._kernel_ok, "alpha_backward"))
    like = types.SimpleNamespace(device=torch.device("cuda"), dtype=torch.float32)  # no GPU needed to ask
    registered = {op: bool(torch._C._dispatch_has_kernel_for_dispatch_key(f"snntorch_sparse::{op}", "CUDA"))
                  for _, op in checks}
    for check, op in checks:
        assert check("compiled", torch.zeros(1)) and not check("reference", torch.zeros(1))
        assert check("compiled", like) == registered[op]  # CPU-only build: False, the PyTorch loop
        assert not check("compiled", types.SimpleNamespace(device=torch.device("cuda"), dtype=torch.float16))
    monkeypatch.setattr(rec, "_cuda_kernels", {op: True for _, op in checks})  # as an nvcc build answers
    for check, op in checks:
        assert check("compiled", like) and not check("reference", like)
    monkeypatch.setattr(rec, "_cuda_kernels", {op: False for _, op in checks})
    for check, op in checks:
        assert not check("compiled", like)
