"""The CUDA scan kernels' per-thread code, run on the CPU.

``csrc/cuda/scan_columns.h`` holds the body every CUDA scan thread runs (one
``(b, n)`` column through time, chunked and double-buffered loads). It is
host-compilable, so here it is built with the system C++ compiler into a tiny
shared library (no torch headers, about a second), called through ``ctypes``
once per column, and compared bit for bit with the pure-PyTorch reference:
every reset mode, both dtypes, sequence lengths around the chunk size, in
place and out of place, float and bool spikes for the reset-to-zero adjoint.

This runs the kernels' index arithmetic and chunk boundaries without a GPU;
what it cannot check (launch configuration, coalescing, the device
intrinsics) is covered by the CUDA parity tests on a GPU machine.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from snntorch_sparse.ops import reference as ref

CSRC = Path(__file__).resolve().parent.parent / "csrc"
_CXX = next((c for c in (os.environ.get("CXX"), "c++", "g++", "clang++") if c and shutil.which(c)), None)
pytestmark = pytest.mark.skipif(_CXX is None, reason="no C++ compiler")

_HARNESS = r"""
#include "scan_columns.h"
using namespace snntorch_sparse::cuda;

template <typename T, int CHUNK>
static void scan(const T* cur, const T* beta, const T* thr, T* spk, T* mem, int64_t Tn, int64_t BN,
                 int64_t N, int mode) {
  for (int64_t c = 0; c < BN; ++c) {  // every thread of the launch, one after another
    if (mode == 0) lif_scan_column<T, 0, CHUNK>(c, cur, beta, thr, spk, mem, Tn, BN, N);
    else if (mode == 1) lif_scan_column<T, 1, CHUNK>(c, cur, beta, thr, spk, mem, Tn, BN, N);
    else lif_scan_column<T, 2, CHUNK>(c, cur, beta, thr, spk, mem, Tn, BN, N);
  }
}

template <typename T, typename S, int CHUNK>
static void scan_backward(const T* g, const T* beta, const S* spk, T* h, int64_t Tn, int64_t BN,
                          int64_t N, int mode) {
  for (int64_t c = 0; c < BN; ++c) {
    if (mode == 1) lif_scan_backward_column<T, S, true, CHUNK>(c, g, beta, spk, h, Tn, BN, N);
    else lif_scan_backward_column<T, S, false, CHUNK>(c, g, beta, nullptr, h, Tn, BN, N);
  }
}

// chunk: 1 or kScanChunk, the two instantiations the CUDA launchers use
#define SCAN(NAME, T)                                                                            \
  void NAME(const T* a, const T* b, const T* c, T* d, T* e, int64_t t, int64_t bn, int64_t n,    \
            int m, int chunk) {                                                                  \
    if (chunk == 1) scan<T, 1>(a, b, c, d, e, t, bn, n, m);                                      \
    else scan<T, kScanChunk>(a, b, c, d, e, t, bn, n, m);                                        \
  }
#define SCAN_BACKWARD(NAME, T, S)                                                                \
  void NAME(const T* g, const T* b, const S* s, T* h, int64_t t, int64_t bn, int64_t n, int m,   \
            int chunk) {                                                                         \
    if (chunk == 1) scan_backward<T, S, 1>(g, b, s, h, t, bn, n, m);                             \
    else scan_backward<T, S, kScanChunk>(g, b, s, h, t, bn, n, m);                               \
  }

extern "C" {
SCAN(scan_f32, float)
SCAN(scan_f64, double)
SCAN_BACKWARD(scan_backward_f32, float, float)
SCAN_BACKWARD(scan_backward_f64, double, double)
SCAN_BACKWARD(scan_backward_f32_u8, float, uint8_t)
SCAN_BACKWARD(scan_backward_f64_u8, double, uint8_t)
}
"""


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    d = tmp_path_factory.mktemp("cuda_emulated")
    (d / "harness.cpp").write_text(_HARNESS)
    so = d / "harness.so"
    # -ffp-contract=off: no multiply-add contracted, as nvcc --fmad=false on the device
    cmd = [_CXX, "-std=c++17", "-O2", "-ffp-contract=off", "-Wall", "-Werror", "-shared", "-fPIC",
           "-I", str(CSRC / "cuda"), str(d / "harness.cpp"), "-o", str(so)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return ctypes.CDLL(str(so))


def _ptr(t):
    return ctypes.c_void_p(t.data_ptr()) if t is not None else ctypes.c_void_p(None)


def _suffix(dtype):
    return "f32" if dtype == torch.float32 else "f64"


def emulated_scan(lib, current, beta, thr, mode, in_place=False, chunk=16):
    T, B, N = current.shape
    cur = current.clone()
    mem = cur if in_place else torch.full_like(cur, float("nan"))  # an unwritten entry fails
    spk = None if in_place else torch.full_like(cur, float("nan"))
    getattr(lib, "scan_" + _suffix(cur.dtype))(_ptr(cur), _ptr(beta), _ptr(thr), _ptr(spk), _ptr(mem),
                                               ctypes.c_int64(T), ctypes.c_int64(B * N), ctypes.c_int64(N),
                                               ctypes.c_int(mode), ctypes.c_int(chunk))
    return spk, mem


def emulated_scan_backward(lib, grad, beta, spk, mode, in_place=False, chunk=16):
    T, B, N = grad.shape
    g = grad.clone()
    h = g if in_place else torch.full_like(g, float("nan"))
    name = "scan_backward_" + _suffix(g.dtype)
    if spk is not None and spk.dtype == torch.bool:
        spk = spk.view(torch.uint8)
        name += "_u8"
    getattr(lib, name)(_ptr(g), _ptr(beta), _ptr(spk if mode == 1 else None), _ptr(h), ctypes.c_int64(T),
                       ctypes.c_int64(B * N), ctypes.c_int64(N), ctypes.c_int(mode), ctypes.c_int(chunk))
    return h


# lengths around the chunk size (16): one partial chunk, exact chunks, a tail
LENGTHS = [1, 5, 15, 16, 17, 32, 37, 100]
DTYPES = [torch.float32, torch.float64]
# 16: the default; 1: the one-load-ahead form kept for A/B timing on a GPU
CHUNKS = [16, 1]


def _inputs(T, dtype, seed, B=3, N=7):
    g = torch.Generator().manual_seed(seed)
    current = (torch.rand(T, B, N, generator=g, dtype=dtype) * 0.8)
    beta = torch.rand(N, generator=g, dtype=dtype) * 0.3 + 0.65
    thr = torch.rand(N, generator=g, dtype=dtype) * 0.5 + 0.75
    return current, beta, thr


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("T", LENGTHS)
def test_scan_column_matches_reference_bitwise(lib, T, mode, dtype, chunk):
    current, beta, thr = _inputs(T, dtype, seed=T * 10 + mode)
    spk_ref, mem_ref = ref.lif_scan(current, beta, thr, mode)
    assert 0 < spk_ref.sum() < spk_ref.numel() or T < 5  # the cases exercise the reset
    spk, mem = emulated_scan(lib, current, beta, thr, mode, chunk=chunk)
    assert torch.equal(mem, mem_ref) and torch.equal(spk, spk_ref)
    _, mem_in_place = emulated_scan(lib, current, beta, thr, mode, in_place=True, chunk=chunk)
    assert torch.equal(mem_in_place, mem_ref)


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("spike_dtype", ["float", "bool"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("T", LENGTHS)
def test_scan_backward_column_matches_reference_bitwise(lib, T, mode, dtype, spike_dtype, chunk):
    current, beta, thr = _inputs(T, dtype, seed=T * 10 + mode + 1)
    spk, _ = ref.lif_scan(current, beta, thr, mode)
    grad = torch.randn(T, 3, 7, dtype=dtype, generator=torch.Generator().manual_seed(T))
    spikes = spk.bool() if spike_dtype == "bool" else spk
    h_ref = ref.lif_scan_backward(grad, beta, spk, mode)
    assert torch.equal(emulated_scan_backward(lib, grad, beta, spikes, mode, chunk=chunk), h_ref)
    assert torch.equal(emulated_scan_backward(lib, grad, beta, spikes, mode, in_place=True, chunk=chunk), h_ref)


def test_emulation_catches_a_wrong_chunk_boundary(lib, tmp_path):
    """The comparison above can fail: a harness built with the chunk's last step
    skipped (t < Tn - 1 instead of t < Tn in the stores) disagrees."""
    src = (CSRC / "cuda" / "scan_columns.h").read_text()
    broken = src.replace("mem[t * BN + c] = u;", "if (k != CHUNK - 1 || CHUNK == 1) mem[t * BN + c] = u;")
    assert broken != src
    (tmp_path / "scan_columns.h").write_text(broken)
    (tmp_path / "harness.cpp").write_text(_HARNESS)
    so = tmp_path / "broken.so"
    subprocess.run([_CXX, "-std=c++17", "-O2", "-ffp-contract=off", "-shared", "-fPIC", "-I", str(tmp_path),
                    str(tmp_path / "harness.cpp"), "-o", str(so)], check=True, capture_output=True, timeout=120)
    broken_lib = ctypes.CDLL(str(so))
    current, beta, thr = _inputs(37, torch.float32, seed=3)
    _, mem_ref = ref.lif_scan(current, beta, thr, 0)
    _, mem = emulated_scan(broken_lib, current, beta, thr, 0)
    assert not torch.equal(mem, mem_ref)
