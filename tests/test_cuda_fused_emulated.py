"""The fused CUDA Linear+LIF kernels' bodies (``csrc/cuda/fused_rows.h``), run on the CPU.

Every body a CUDA thread or warp runs is host-compilable: here it is built
with the system C++ compiler (no torch headers), the warp's ballot emulated
lane after lane (``HostLanes``), and the launcher's sequence of passes
(``csrc/cuda/fused_launch.cu``) replayed pass by pass: scan, row counts,
prefix sums, ordered compaction; in the backward the active-set scatter, the
adjoint scan and the chunked dense ∂L/∂W and ∂L/∂X with their gathers.

The results are compared with the CPU kernels (``csrc/cpu/fused_lif.cpp``)
through the same op schemas: spikes, membrane, both CSR sets and ``U - θ``
bit for bit; ``h`` bit for bit; ``∂L/∂W`` and ``∂L/∂X`` to rounding (the GEMM
sums in another order). A GPU run checks the launch itself
(tests/test_cuda_parity.py).
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from snntorch_sparse.ops import compiled, fused

CSRC = Path(__file__).resolve().parent.parent / "csrc"
_CXX = next((c for c in (os.environ.get("CXX"), "c++", "g++", "clang++") if c and shutil.which(c)), None)
pytestmark = [pytest.mark.skipif(_CXX is None, reason="no C++ compiler"),
              pytest.mark.skipif(not compiled.available(), reason="compiled CPU backend unavailable")]

_HARNESS = r"""
#include "fused_rows.h"
using namespace snntorch_sparse::cuda;

// The forward launcher's passes, thread after thread. counts: [2, R];
// rowptr: [2, R + 1] (active, spikes). Returns nothing; the caller sizes the
// lists from rowptr (the device-to-host copy) and calls compact.
template <typename T>
static void fwd_scan(const T* cur, const T* beta, const T* thr, T* out, T* mem, int spikes, int64_t Tn, int64_t B,
                     int64_t N, int mode) {
  for (int64_t c = 0; c < B * N; ++c) {
    if (mode == 0) lif_fused_scan_column<T, 0>(c, cur, beta, thr, out, mem, spikes != 0, Tn, B * N, N);
    else if (mode == 1) lif_fused_scan_column<T, 1>(c, cur, beta, thr, out, mem, spikes != 0, Tn, B * N, N);
    else lif_fused_scan_column<T, 2>(c, cur, beta, thr, out, mem, spikes != 0, Tn, B * N, N);
  }
}

// The forward without a given current: time chunks of Tc steps, the membrane carried.
// cur holds the chunk's current at its own rows (the caller computed it per chunk).
template <typename T>
static void fwd_scan_chunked(const T* cur, const T* beta, const T* thr, T* out, T* mem, int64_t Tn, int64_t B,
                             int64_t N, int mode, int64_t Tc, T* carry) {
  for (int64_t t0 = 0; t0 < Tn; t0 += Tc) {
    const int64_t n_t = (t0 + Tc < Tn ? Tc : Tn - t0), off = t0 * B * N;
    for (int64_t c = 0; c < B * N; ++c) {
      if (mode == 0) lif_fused_scan_column<T, 0>(c, cur + off, beta, thr, out + off, mem + off, false, n_t, B * N, N, carry);
      else if (mode == 1) lif_fused_scan_column<T, 1>(c, cur + off, beta, thr, out + off, mem + off, false, n_t, B * N, N, carry);
      else lif_fused_scan_column<T, 2>(c, cur + off, beta, thr, out + off, mem + off, false, n_t, B * N, N, carry);
    }
  }
}

template <typename T>
static void fwd_count(const T* sh, const T* win, int64_t R, int64_t N, int64_t* act_cnt, int64_t* spk_cnt) {
  for (int64_t r = 0; r < R; ++r) count_shift_row<T>(HostLanes{}, sh + r * N, win, N, act_cnt + r, spk_cnt + r);
}

template <typename T>
static void fwd_compact(T* sh, const T* win, int64_t R, int64_t N, const int64_t* act_rp, int32_t* act_col,
                        T* act_shift, const int64_t* spk_rp, int32_t* spk_col) {
  for (int64_t r = 0; r < R; ++r)
    compact_shift_row<T>(HostLanes{}, sh + r * N, win, N, act_rp[r], act_col, act_shift, spk_rp[r], spk_col);
}

template <typename T>
static void nz_count(const T* x, int64_t R, int64_t N, int64_t* cnt) {
  for (int64_t r = 0; r < R; ++r) cnt[r] = count_nonzero_row<T>(HostLanes{}, x + r * N, N);
}

template <typename T>
static void nz_compact(const T* x, int64_t R, int64_t N, const int64_t* rp, int32_t* col, T* val) {
  for (int64_t r = 0; r < R; ++r) compact_nonzero_row<T>(HostLanes{}, x + r * N, N, rp[r], col, val);
}

template <typename T>
static void bwd_scatter(int64_t R, const int64_t* rp, const int32_t* col, const T* sg, const T* d_spk, int compact,
                        int add, T* h, int64_t N) {
  for (int64_t r = 0; r < R; ++r) scatter_active_row<T>(HostLanes{}, r, rp, col, sg, d_spk, compact != 0, add != 0, h, N);
}

template <typename T>
static void bwd_scan(T* h, const T* beta, const uint8_t* spk, T* hsum, int64_t Tn, int64_t BN, int64_t N, int mode) {
  for (int64_t c = 0; c < BN; ++c) {
    if (mode == 1) lif_scan_backward_column<T, uint8_t, true>(c, h, beta, spk, h, Tn, BN, N, hsum);
    else lif_scan_backward_column<T, uint8_t, false>(c, h, beta, nullptr, h, Tn, BN, N, hsum);
  }
}

template <typename T>
static void bwd_densify(int64_t r0, int64_t r1, const int64_t* rp, const int32_t* col, const T* val, T* x, int64_t N) {
  for (int64_t r = r0; r < r1; ++r) densify_row<T>(HostLanes{}, r, r0, rp, col, val, x, N);
}

template <typename T>
static void bwd_gather(int64_t r0, int64_t r1, const int64_t* rp, const int32_t* col, const T* p, int compact, T* out,
                       int64_t Ni) {
  for (int64_t r = r0; r < r1; ++r) gather_active_row<T>(HostLanes{}, r, r0, rp, col, p, compact != 0, out, Ni);
}

#define EXPORT(T, S)                                                                                            \
  void fwd_scan_##S(const T* a, const T* b, const T* c, T* d, T* e, int f, int64_t g, int64_t h, int64_t i,      \
                    int m) { fwd_scan<T>(a, b, c, d, e, f, g, h, i, m); }                                        \
  void fwd_scan_chunked_##S(const T* a, const T* b, const T* c, T* d, T* e, int64_t g, int64_t h, int64_t i,     \
                            int m, int64_t tc, T* carry) { fwd_scan_chunked<T>(a, b, c, d, e, g, h, i, m, tc, carry); } \
  void fwd_count_##S(const T* a, const T* b, int64_t c, int64_t d, int64_t* e, int64_t* f) {                     \
    fwd_count<T>(a, b, c, d, e, f); }                                                                            \
  void fwd_compact_##S(T* a, const T* b, int64_t c, int64_t d, const int64_t* e, int32_t* f, T* g,               \
                       const int64_t* h, int32_t* i) { fwd_compact<T>(a, b, c, d, e, f, g, h, i); }              \
  void nz_count_##S(const T* a, int64_t b, int64_t c, int64_t* d) { nz_count<T>(a, b, c, d); }                   \
  void nz_compact_##S(const T* a, int64_t b, int64_t c, const int64_t* d, int32_t* e, T* f) {                    \
    nz_compact<T>(a, b, c, d, e, f); }                                                                           \
  void bwd_scatter_##S(int64_t a, const int64_t* b, const int32_t* c, const T* d, const T* e, int f, int g,      \
                       T* h, int64_t i) { bwd_scatter<T>(a, b, c, d, e, f, g, h, i); }                           \
  void bwd_scan_##S(T* a, const T* b, const uint8_t* c, T* s, int64_t d, int64_t e, int64_t f, int m) {          \
    bwd_scan<T>(a, b, c, s, d, e, f, m); }                                                                          \
  void bwd_densify_##S(int64_t a, int64_t b, const int64_t* c, const int32_t* d, const T* e, T* f, int64_t g) {  \
    bwd_densify<T>(a, b, c, d, e, f, g); }                                                                       \
  void bwd_gather_##S(int64_t a, int64_t b, const int64_t* c, const int32_t* d, const T* e, int f, T* g,         \
                      int64_t h) { bwd_gather<T>(a, b, c, d, e, f, g, h); }

extern "C" {
EXPORT(float, f32)
EXPORT(double, f64)
}
"""


def _build(d: Path, header_dir: Path):
    (d / "harness.cpp").write_text(_HARNESS)
    so = d / "harness.so"
    cmd = [_CXX, "-std=c++17", "-O2", "-ffp-contract=off", "-Wall", "-Werror", "-shared", "-fPIC",
           "-I", str(header_dir), str(d / "harness.cpp"), "-o", str(so)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return ctypes.CDLL(str(so))


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("cuda_fused_emulated"), CSRC / "cuda")


def _p(t):
    return ctypes.c_void_p(t.data_ptr()) if t is not None else ctypes.c_void_p(None)


def _i(v):
    return ctypes.c_int64(int(v))


def _fn(lib, name, dtype):
    return getattr(lib, f"{name}_{'f32' if dtype == torch.float32 else 'f64'}")


def _exclusive(cnt):
    rp = torch.zeros(cnt.numel() + 1, dtype=torch.long)
    rp[1:] = cnt.cumsum(0)
    return rp


def emulated_forward(lib, current, beta, thr, win, mode, need_mem=True):
    """fused_launch.cu's lif_fused_forward, pass by pass."""
    T, B, N = current.shape
    R, dt = T * B, current.dtype
    out = torch.full_like(current, float("nan"))
    mem = torch.full_like(current, float("nan")) if need_mem else None
    _fn(lib, "fwd_scan", dt)(_p(current), _p(beta), _p(thr), _p(out), _p(mem), ctypes.c_int(0), _i(T), _i(B), _i(N),
                             ctypes.c_int(mode))
    cnt = torch.full((2, R), -1, dtype=torch.long)
    _fn(lib, "fwd_count", dt)(_p(out), _p(win), _i(R), _i(N), _p(cnt[0]), _p(cnt[1]))
    act_rp, spk_rp = _exclusive(cnt[0]), _exclusive(cnt[1])
    act_col = torch.full((int(act_rp[-1]),), -1, dtype=torch.int32)
    act_shift = torch.full((int(act_rp[-1]),), float("nan"), dtype=dt)
    spk_col = torch.full((int(spk_rp[-1]),), -1, dtype=torch.int32)
    _fn(lib, "fwd_compact", dt)(_p(out), _p(win), _i(R), _i(N), _p(act_rp), _p(act_col), _p(act_shift), _p(spk_rp),
                                _p(spk_col))
    return out, mem, (spk_rp, spk_col), (act_rp, act_col, act_shift)


def emulated_spikes_only(lib, current, beta, thr, mode):
    T, B, N = current.shape
    out = torch.full_like(current, float("nan"))
    _fn(lib, "fwd_scan", current.dtype)(_p(current), _p(beta), _p(thr), _p(out), _p(None), ctypes.c_int(1), _i(T),
                                        _i(B), _i(N), ctypes.c_int(mode))
    return out


def emulated_dense_to_csr(lib, x):
    R, N = x.shape
    cnt = torch.full((R,), -1, dtype=torch.long)
    _fn(lib, "nz_count", x.dtype)(_p(x), _i(R), _i(N), _p(cnt))
    rp = _exclusive(cnt)
    col = torch.full((int(rp[-1]),), -1, dtype=torch.int32)
    val = torch.full((int(rp[-1]),), float("nan"), dtype=x.dtype)
    _fn(lib, "nz_compact", x.dtype)(_p(x), _i(R), _i(N), _p(rp), _p(col), _p(val))
    return rp, col, val


def emulated_backward(lib, act, act_sg, d_spk, d_mem, beta, spk, mode, x_csr, weight, up, T, B, chunk_rows,
                      compact_spk=False, compact_dx=False):
    """fused_launch.cu's lif_fused_backward with row chunks of ``chunk_rows``."""
    dt = act_sg.dtype
    N = beta.numel()
    R = T * B
    h = d_mem.reshape(-1).clone() if d_mem is not None else torch.zeros(R * N, dtype=dt)
    if d_spk is not None and act[1].numel():
        _fn(lib, "bwd_scatter", dt)(_i(R), _p(act[0]), _p(act[1]), _p(act_sg), _p(d_spk.contiguous()),
                                    ctypes.c_int(int(compact_spk)), ctypes.c_int(int(d_mem is not None)), _p(h), _i(N))
    sb = spk.reshape(-1).to(torch.bool).view(torch.uint8).contiguous() if mode == 1 else None
    hsum = torch.full((B * N,), float("nan"), dtype=dt)
    _fn(lib, "bwd_scan", dt)(_p(h), _p(beta), _p(sb), _p(hsum), _i(T), _i(B * N), _i(N), ctypes.c_int(mode))
    h2 = h.view(R, N)
    db = hsum.view(B, N).sum(0)
    Ni = weight.shape[1]
    dw = torch.zeros(N, Ni, dtype=dt)
    dx = None
    if up is not None:
        dx = torch.zeros(up[1].numel() if compact_dx else R * Ni, dtype=dt)
    for r0 in range(0, R, chunk_rows):
        r1 = min(R, r0 + chunk_rows)
        xc = torch.zeros(r1 - r0, Ni, dtype=dt)
        _fn(lib, "bwd_densify", dt)(_i(r0), _i(r1), _p(x_csr[0]), _p(x_csr[1]), _p(x_csr[2]), _p(xc), _i(Ni))
        dw.addmm_(h2[r0:r1].t(), xc)
        if up is not None:
            pc = (h2[r0:r1] @ weight).contiguous()
            _fn(lib, "bwd_gather", dt)(_i(r0), _i(r1), _p(up[0]), _p(up[1]), _p(pc), ctypes.c_int(int(compact_dx)),
                                       _p(dx), _i(Ni))
    return h2, dw, db, dx


def relative_error(got, want):
    """Normwise relative error ‖got - want‖ / ‖want‖ (sums in another order differ by rounding only)."""
    return float((got - want).double().norm() / want.double().norm().clamp_min(1e-300))


def _layer(T, B, N, Ni, dtype, seed, density=0.3):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(T * B, Ni, generator=g) < density).to(dtype)
    w = (torch.randn(N, Ni, generator=g, dtype=dtype) * 0.6)
    b = torch.randn(N, generator=g, dtype=dtype) * 0.1
    beta = torch.rand(N, generator=g, dtype=dtype) * 0.3 + 0.65
    thr = torch.rand(N, generator=g, dtype=dtype) * 0.5 + 0.75
    win = torch.rand(N, generator=g, dtype=dtype) * 0.4 + 0.1
    current = torch.addmm(b, x, w.t()).view(T, B, N)
    return x, w, b, beta, thr, win, current


# N around the warp width: a partial tile, exact tiles, a tail
SHAPES = [(1, 1, 5, 3), (7, 3, 31, 9), (5, 4, 32, 33), (9, 2, 45, 64), (17, 3, 70, 40)]
DTYPES = [torch.float32, torch.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_passes_match_the_cpu_kernel_bitwise(lib, shape, mode, dtype):
    T, B, N, Ni = shape
    x, w, b, beta, thr, win, current = _layer(T, B, N, Ni, dtype, seed=sum(shape) + mode)
    spk_ref = torch.empty(T, B, N, dtype=dtype)
    mem_ref = torch.empty(T, B, N, dtype=dtype)
    s_rp, s_col, a_rp, a_col, a_shift = fused.lif_fused_forward(current, None, None, None, beta, thr, mode, win,
                                                                spk_ref, mem_ref, True, True)
    out, mem, (e_srp, e_scol), (e_arp, e_acol, e_ash) = emulated_forward(lib, current, beta, thr, win, mode)
    assert torch.equal(out, spk_ref) and torch.equal(mem, mem_ref)
    assert torch.equal(e_srp, s_rp) and torch.equal(e_scol, s_col)
    assert torch.equal(e_arp, a_rp) and torch.equal(e_acol, a_col) and torch.equal(e_ash, a_shift)
    assert 0 < a_col.numel() < T * B * N or T * B * N < 50  # the window holds some, not all
    assert torch.equal(emulated_spikes_only(lib, current, beta, thr, mode), spk_ref)


@pytest.mark.parametrize("chunk", [1, 3, 16, 17, 100])
@pytest.mark.parametrize("mode", [0, 1, 2])
def test_time_chunked_scan_with_carry_matches_the_whole_scan_bitwise(lib, mode, chunk):
    T, B, N, Ni = 37, 3, 45, 20
    for dtype in DTYPES:
        x, w, b, beta, thr, win, current = _layer(T, B, N, Ni, dtype, seed=mode * 7 + chunk)
        whole_out, whole_mem, _, _ = emulated_forward(lib, current, beta, thr, win, mode)
        out = torch.full_like(current, float("nan"))
        mem = torch.full_like(current, float("nan"))
        carry = torch.zeros(B * N, dtype=dtype)
        _fn(lib, "fwd_scan_chunked", dtype)(_p(current), _p(beta), _p(thr), _p(out), _p(mem), _i(T), _i(B), _i(N),
                                            ctypes.c_int(mode), _i(chunk), _p(carry))
        assert torch.equal(mem, whole_mem)
        assert torch.equal(carry, whole_mem[-1].reshape(-1))
        # the spike buffer still holds U - θ here (compaction turns it into spikes)
        assert torch.equal((out > 0).to(dtype), whole_out)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(6, 3, 40), (1, 1, 1), (4, 5, 33)])
def test_dense_to_csr_passes_match_the_cpu_kernel_bitwise(lib, shape, dtype):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape[0] * shape[1], shape[2], generator=g, dtype=dtype)
    x[torch.rand(x.shape, generator=g) < 0.7] = 0
    ref = fused.dense_to_csr(x)
    got = emulated_dense_to_csr(lib, x)
    assert all(torch.equal(a, b) for a, b in zip(got, ref))


@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("shape", SHAPES[1:])
def test_backward_passes_match_the_cpu_kernel(lib, shape, mode, dtype, compact):
    T, B, N, Ni = shape
    x, w, b, beta, thr, win, current = _layer(T, B, N, Ni, dtype, seed=sum(shape) * 3 + mode)
    spk = torch.empty(T, B, N, dtype=dtype)
    _, _, a_rp, a_col, a_shift = fused.lif_fused_forward(current, None, None, None, beta, thr, mode, win, spk, None,
                                                         False, True)
    g = torch.Generator().manual_seed(7)
    act_sg = 1 / (1 + 25 * a_shift.abs()) ** 2
    d_spk = torch.randn(a_col.numel(), generator=g, dtype=dtype) if compact else \
        torch.randn(T, B, N, generator=g, dtype=dtype)
    d_mem = torch.randn(T, B, N, generator=g, dtype=dtype) if not compact else None
    x_csr = fused.dense_to_csr(x)
    x_val = None  # binary input: no values, as the layer saves it
    up_rp, up_col = fused.dense_to_csr((torch.rand(T * B, Ni, generator=g) < 0.2).to(dtype))[:2]
    h_ref = torch.empty(T, B, N, dtype=dtype)
    dx_ref = torch.empty(up_col.numel(), dtype=dtype) if compact else torch.zeros(T, B, Ni, dtype=dtype)
    dw_ref, db_ref = fused.lif_fused_backward((a_rp, a_col), act_sg, d_spk, d_mem, beta, spk, mode,
                                              (x_csr[0], x_csr[1], x_val), w, (up_rp, up_col), dx_ref, h_ref, T, B,
                                              Ni, need_dw=True, need_db=True, d_spk_compact=compact,
                                              dx_compact=compact)
    for chunk_rows in (1, B, 2 * B + 1, T * B):
        h, dw, db, dx = emulated_backward(lib, (a_rp, a_col), act_sg, d_spk, d_mem, beta, spk, mode,
                                          (x_csr[0], x_csr[1], x_val), w, (up_rp, up_col), T, B, chunk_rows,
                                          compact_spk=compact, compact_dx=compact)
        assert torch.equal(h.view(T, B, N), h_ref)
        tol = 1e-12 if dtype == torch.float64 else 1e-5
        for got, want in ((dw, dw_ref), (db, db_ref), (dx.view_as(dx_ref), dx_ref)):
            assert relative_error(got, want) < tol


def test_emulation_catches_a_misordered_compaction(lib, tmp_path):
    """The comparison above can fail: compaction that writes each lane at the
    count of lanes *above* it (reversed order within a tile) disagrees."""
    src = (CSRC / "cuda" / "fused_rows.h").read_text()
    broken = src.replace("act_pos + popc32(ma & lanes_below(l))", "act_pos + popc32(ma & ~lanes_below(l + 1))")
    assert broken != src
    (tmp_path / "fused_rows.h").write_text(broken)
    shutil.copy(CSRC / "cuda" / "scan_columns.h", tmp_path / "scan_columns.h")
    broken_lib = _build(tmp_path, tmp_path)
    T, B, N, Ni = 5, 4, 45, 8
    x, w, b, beta, thr, win, current = _layer(T, B, N, Ni, torch.float64, seed=1)
    spk_ref = torch.empty(T, B, N, dtype=torch.float64)
    _, _, _, a_col, _ = fused.lif_fused_forward(current, None, None, None, beta, thr, 0, win, spk_ref, None, True, True)
    _, _, _, (_, e_col, _) = emulated_forward(broken_lib, current, beta, thr, win, 0)
    assert not torch.equal(e_col, a_col)
