"""The RSynaptic backward body (csrc/cuda/rsynaptic_backward.cuh), run on the CPU and compile-checked.

The header is host-compilable: here it is built with the system C++ compiler into a tiny
shared library (no torch headers), called through ``ctypes`` row after row (every thread of
a launch, one after another, each with its own slice of the scratch buffer as on the device)
and compared with the PyTorch reference loop of ``snntorch_sparse.rsynaptic`` on the same
inputs, and with the C++ kernel (which runs the same row function: bit-identical). With nvcc
installed, the kernel and its launcher are also compiled for sm_80 / sm_90.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from snntorch_sparse.rsynaptic import _backward_loop

CSRC = Path(__file__).resolve().parent.parent / "csrc"
_CXX = next((c for c in (os.environ.get("CXX"), "c++", "g++", "clang++") if c and shutil.which(c)), None)

_ARGS = ("const int64_t* rp, const int64_t* c, const {T}* sg, const {T}* ds, const {T}* dy, const {T}* dm, "
         "const {T}* al, const {T}* b, const {T}* wt, const {T}* v, const bool* s, const {T}* k0, int mode, "
         "int64_t T, int64_t R, int64_t N, {T}* a, {T}* cc, {T}* g, {T}* sc")
_HARNESS = "\n".join([
    '#include "rsynaptic_backward.cuh"',
    "using namespace snntorch_sparse::cuda;",
    'extern "C" {',
    *(f"void run_{name}({_ARGS.format(T=T)}) {{\n"
      f"  for (int64_t r = 0; r < R; ++r)\n"
      f"    rsynaptic_backward_row<{T}>(r, rp, c, sg, ds, dy, dm, al, b, wt, v, s, k0, mode, T, R, N, a, cc, g,"
      f" sc + r * 3 * N);\n}}"
      for name, T in (("f64", "double"), ("f32", "float"))),
    "}",
])


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if _CXX is None:
        pytest.skip("no C++ compiler")
    d = tmp_path_factory.mktemp("rsynaptic_emu")
    src = d / "h.cpp"
    src.write_text(_HARNESS)
    so = d / "h.so"
    subprocess.run([_CXX, "-O1", "-std=c++17", "-ffp-contract=off", "-shared", "-fPIC", f"-I{CSRC / 'cuda'}",
                    str(src), "-o", str(so)], check=True, capture_output=True, text=True)
    return ctypes.CDLL(str(so))


def _ptr(t):
    return None if t is None else ctypes.c_void_p(t.data_ptr())


def _compiled() -> bool:
    from snntorch_sparse.ops import compiled
    return compiled.available() and hasattr(torch.ops.snntorch_sparse, "rsynaptic_backward")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("all_to_all", [True, False])
@pytest.mark.parametrize("with_d_syn", [True, False])
def test_emulated_kernel_matches_reference(lib, dtype, mode, all_to_all, with_d_syn):
    g = torch.Generator().manual_seed(mode + 3 * all_to_all + 7 * with_d_syn)
    T, R, N = 9, 4, 11
    act_idx = (torch.rand(T, R, N, generator=g) < 0.3).view(-1).nonzero().squeeze(1)
    act_sg = torch.rand(act_idx.numel(), generator=g, dtype=dtype)
    d_spk, d_syn, d_mem = (torch.randn(T, R, N, generator=g, dtype=dtype) for _ in range(3))
    d_syn = d_syn if with_d_syn else None
    alpha, beta = torch.rand(N, generator=g, dtype=dtype), torch.rand(N, generator=g, dtype=dtype)
    weight = torch.randn(N, N, generator=g, dtype=dtype) if all_to_all else None
    wt = weight.t().contiguous() if all_to_all else None
    v = None if all_to_all else torch.randn(N, generator=g, dtype=dtype)
    spk = (torch.rand(T, R, N, generator=g) < 0.3).contiguous()
    keep0 = (torch.rand(R, N, generator=g) < 0.7).to(dtype) if mode == 1 else None
    bounds = torch.searchsorted(act_idx, torch.arange(T + 1) * (R * N)).tolist()
    a_ref, c_ref, g_ref = _backward_loop(act_idx, act_sg, bounds, d_spk, d_syn, d_mem, alpha, beta, weight, wt, v,
                                         spk, keep0, mode, T, R, N)
    rows = act_idx // N
    rowptr = torch.zeros(T * R + 1, dtype=torch.long)
    rowptr[1:] = torch.bincount(rows, minlength=T * R).cumsum(0)
    col = (act_idx - rows * N).contiguous()
    a, c = torch.empty(T, R, N, dtype=dtype), torch.empty(T, R, N, dtype=dtype)
    gk = torch.empty(act_idx.numel(), dtype=dtype)
    scratch = torch.empty(R * 3 * N, dtype=dtype)
    fn = lib.run_f64 if dtype == torch.float64 else lib.run_f32
    fn(_ptr(rowptr), _ptr(col), _ptr(act_sg), _ptr(d_spk), _ptr(d_syn), _ptr(d_mem), _ptr(alpha), _ptr(beta),
       _ptr(wt), _ptr(v), _ptr(spk), _ptr(keep0), ctypes.c_int(mode), ctypes.c_int64(T), ctypes.c_int64(R),
       ctypes.c_int64(N), _ptr(a), _ptr(c), _ptr(gk), _ptr(scratch))
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    for got, ref in ((a, a_ref), (c, c_ref), (gk, g_ref)):
        torch.testing.assert_close(got, ref, rtol=tol, atol=tol)
    if not all_to_all:  # no dot products: the reference loop's expressions are the kernel's, in the same order
        assert torch.equal(a, a_ref) and torch.equal(c, c_ref) and torch.equal(gk, g_ref)
    if _compiled():
        a2, c2, g2 = torch.ops.snntorch_sparse.rsynaptic_backward(
            rowptr, col, act_sg, d_spk, d_syn, d_mem, alpha, beta, wt, v, spk if mode == 1 else None, keep0, mode,
            T, R, N, True)
        assert torch.equal(a, a2) and torch.equal(c, c2) and torch.equal(gk, g2)  # the same row function


def test_compiled_kernel_checks_its_arguments():
    if not _compiled():
        pytest.skip("compiled backend not built")
    op = torch.ops.snntorch_sparse.rsynaptic_backward
    z = torch.zeros(4, dtype=torch.float64)
    rowptr = torch.zeros(3, dtype=torch.long)
    empty = torch.zeros(0, dtype=torch.long)
    with pytest.raises(RuntimeError, match="exactly one of wt"):
        op(rowptr, empty, z[:0], None, None, None, z[:2], z[:2], None, None, None, None, 0, 1, 2, 2, True)
    with pytest.raises(RuntimeError, match="alpha and beta"):
        op(rowptr, empty, z[:0], None, None, None, z[:3], z[:2], None, z[:2], None, None, 0, 1, 2, 2, True)
    with pytest.raises(RuntimeError, match="reset to zero needs the spikes"):
        op(rowptr, empty, z[:0], None, None, None, z[:2], z[:2], None, z[:2], None, None, 1, 1, 2, 2, True)


def test_opcheck_rsynaptic_backward():
    if not _compiled():
        pytest.skip("compiled backend not built")
    g = torch.Generator().manual_seed(0)
    T, R, N = 5, 3, 4
    act_idx = (torch.rand(T, R, N, generator=g) < 0.4).view(-1).nonzero().squeeze(1)
    rows = act_idx // N
    rowptr = torch.zeros(T * R + 1, dtype=torch.long)
    rowptr[1:] = torch.bincount(rows, minlength=T * R).cumsum(0)
    f64 = dict(dtype=torch.float64)
    sg = torch.rand(act_idx.numel(), generator=g, **f64)
    d = torch.randn(T, R, N, generator=g, **f64)
    ab = torch.rand(N, generator=g, **f64)
    spk = torch.rand(T, R, N, generator=g) < 0.3
    op = torch.ops.snntorch_sparse.rsynaptic_backward.default
    torch.library.opcheck(op, (rowptr, act_idx - rows * N, sg, d, d, d, ab, ab, torch.randn(N, N, **f64), None,
                               spk, torch.ones(R, N, **f64), 1, T, R, N, True))
    torch.library.opcheck(op, (rowptr, act_idx - rows * N, sg, d, None, None, ab, ab, None, ab, None, None, 0,
                               T, R, N, False))


def _nvcc():
    cand = shutil.which("nvcc")
    if cand:
        return cand
    home = os.environ.get("CUDA_HOME") or "/usr/local/cuda"
    path = os.path.join(home, "bin", "nvcc")
    return path if os.path.isfile(path) else None


@pytest.mark.skipif(_nvcc() is None, reason="nvcc not installed")
def test_nvcc_compiles_rsynaptic_kernel(tmp_path):
    decl = ("template void k::launch_rsynaptic_backward<{T}>(const int64_t*, const int64_t*, const {T}*, "
            "const {T}*, const {T}*, const {T}*, const {T}*, const {T}*, const {T}*, const {T}*, const bool*, "
            "const {T}*, int, int64_t, int64_t, int64_t, {T}*, {T}*, {T}*, {T}*, cudaStream_t);\n")
    src = tmp_path / "inst.cu"
    src.write_text('#include "rsynaptic_backward.cuh"\nnamespace k = snntorch_sparse::cuda;\n'
                   + decl.format(T="float") + decl.format(T="double"))
    proc = subprocess.run([_nvcc(), "-c", "-std=c++17", "-fmad=false", f"-I{CSRC / 'cuda'}",
                           "-gencode", "arch=compute_80,code=sm_80", "-gencode", "arch=compute_90,code=sm_90",
                           str(src), "-o", str(tmp_path / "inst.o")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]


# ------------------------------------------------------------------ the CUDA launcher, replayed
# csrc/cuda/neurons_launch.cu (rsynaptic_backward_cuda) calls launch_rsynaptic_backward: a grid of
# ceil(R / threads) blocks, thread `t` of block `b` running row b*threads + t with the scratch slice
# scratch + r*3*N (rsynaptic_backward_kernel). Replayed block by block, thread by thread (and in
# reverse order: rows share nothing), with the block size read from the header; compared bit for
# bit with the CPU op.

_GRID_HARNESS = "\n".join([
    '#include "rsynaptic_backward.cuh"',
    "using namespace snntorch_sparse::cuda;",
    'extern "C" {',
    *(f"void grid_{name}({_ARGS.format(T=T)}, int64_t threads, int reverse) {{\n"
      f"  const int64_t blocks = (R + threads - 1) / threads;\n"
      f"  for (int64_t bi = 0; bi < blocks; ++bi)\n"
      f"    for (int64_t ti = 0; ti < threads; ++ti) {{\n"
      f"      const int64_t bb = reverse ? blocks - 1 - bi : bi, tt = reverse ? threads - 1 - ti : ti;\n"
      f"      const int64_t r = bb * threads + tt;\n"
      f"      if (r < R)\n"
      f"        rsynaptic_backward_row<{T}>(r, rp, c, sg, ds, dy, dm, al, b, wt, v, s, k0, mode, T, R, N, a, cc,"
      f" g, sc + r * 3 * N);\n"
      f"    }}\n}}"
      for name, T in (("f64", "double"), ("f32", "float"))),
    "}",
])


def _launch_threads() -> int:
    """The block size of launch_rsynaptic_backward (csrc/cuda/rsynaptic_backward.cuh)."""
    import re
    text = (CSRC / "cuda" / "rsynaptic_backward.cuh").read_text()
    m = re.search(r"void launch_rsynaptic_backward\(.*?const int threads = (\d+);", text, re.S)
    assert m, "launch_rsynaptic_backward's block size not found"
    return int(m.group(1))


@pytest.fixture(scope="module")
def grid_lib(tmp_path_factory):
    if _CXX is None:
        pytest.skip("no C++ compiler")
    d = tmp_path_factory.mktemp("rsynaptic_grid_emu")
    src = d / "h.cpp"
    src.write_text(_GRID_HARNESS)
    so = d / "h.so"
    subprocess.run([_CXX, "-O1", "-std=c++17", "-ffp-contract=off", "-shared", "-fPIC", f"-I{CSRC / 'cuda'}",
                    str(src), "-o", str(so)], check=True, capture_output=True, text=True)
    return ctypes.CDLL(str(so))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("all_to_all", [True, False])
@pytest.mark.parametrize("R", [3, 130])
def test_emulated_launch_matches_cpu_op(grid_lib, dtype, mode, all_to_all, R):
    if not _compiled():
        pytest.skip("compiled backend not built")
    g = torch.Generator().manual_seed(13 * mode + 5 * all_to_all + R)
    T, N = 6, 11
    act_idx = (torch.rand(T, R, N, generator=g) < 0.3).view(-1).nonzero().squeeze(1)
    rows = act_idx // N
    rowptr = torch.zeros(T * R + 1, dtype=torch.long)
    rowptr[1:] = torch.bincount(rows, minlength=T * R).cumsum(0)
    col = (act_idx - rows * N).contiguous()
    sg = torch.rand(act_idx.numel(), generator=g, dtype=dtype)
    d_spk, d_syn, d_mem = (torch.randn(T, R, N, generator=g, dtype=dtype) for _ in range(3))
    alpha, beta = torch.rand(N, generator=g, dtype=dtype), torch.rand(N, generator=g, dtype=dtype)
    wt = torch.randn(N, N, generator=g, dtype=dtype) if all_to_all else None
    v = None if all_to_all else torch.randn(N, generator=g, dtype=dtype)
    spk = (torch.rand(T, R, N, generator=g) < 0.3).contiguous() if mode == 1 else None
    keep0 = (torch.rand(R, N, generator=g) < 0.7).to(dtype) if mode == 1 else None
    a_cpu, c_cpu, g_cpu = torch.ops.snntorch_sparse.rsynaptic_backward(
        rowptr, col, sg, d_spk, d_syn, d_mem, alpha, beta, wt, v, spk, keep0, mode, T, R, N, True)
    fn = grid_lib.grid_f64 if dtype == torch.float64 else grid_lib.grid_f32
    for reverse in (0, 1):
        a, c = torch.empty(T, R, N, dtype=dtype), torch.empty(T, R, N, dtype=dtype)
        gk = torch.empty(act_idx.numel(), dtype=dtype)
        scratch = torch.empty(R * 3 * N, dtype=dtype)  # as rsynaptic_backward_cuda allocates it
        fn(_ptr(rowptr), _ptr(col), _ptr(sg), _ptr(d_spk), _ptr(d_syn), _ptr(d_mem), _ptr(alpha), _ptr(beta),
           _ptr(wt), _ptr(v), _ptr(spk), _ptr(keep0), ctypes.c_int(mode), ctypes.c_int64(T), ctypes.c_int64(R),
           ctypes.c_int64(N), _ptr(a), _ptr(c), _ptr(gk), _ptr(scratch), ctypes.c_int64(_launch_threads()),
           ctypes.c_int(reverse))
        assert torch.equal(a, a_cpu) and torch.equal(c, c_cpu) and torch.equal(gk, g_cpu)
        # each row ran in its own scratch slice: row r's last carry c[0][r] sits at r*3N + 2N
        assert torch.equal(scratch.view(R, 3, N)[:, 2], c_cpu[0])
