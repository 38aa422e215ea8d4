"""The fused CUDA Linear+LIF kernels' bodies (``csrc/cuda/fused_rows.h``), run on the CPU.

Every body a CUDA thread or warp runs is host-compilable: here it is built
with the system C++ compiler (no torch headers), the warp's ballot emulated
lane after lane (``HostLanes``), and the launcher's sequence of passes
(``csrc/cuda/fused_launch.cu``) replayed chunk by chunk, pass by pass. The
forward per time chunk: scan in place over the chunk's current with the
membrane carried, row counts, the chunk's row pointers continuing the
previous chunk's (the one-block kernel's slices and scan), compaction into
lists sized from a hint, and the second pass when the totals exceed it. The
backward per time chunk from the last: the active-set scatter, the adjoint
scan with its carry and the running Σ_t h, the dense ∂L/∂W, and ∂L/∂X as one
warp-reduced dot per upstream active entry.

The results are compared with the CPU kernels (``csrc/cpu/fused_lif.cpp``)
through the same op schemas: spikes, membrane, both CSR sets and ``U - θ``
bit for bit; ``h`` bit for bit; ``∂L/∂W`` and ``∂L/∂X`` to rounding (the GEMM
sums in another order). A GPU run checks the launch itself
(tests/test_cuda_parity.py, tests/test_cuda_fused.py).
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from snntorch_sparse import cost_model
from snntorch_sparse.ops import compiled, fused

CSRC = Path(__file__).resolve().parent.parent / "csrc"
_CXX = next((c for c in (os.environ.get("CXX"), "c++", "g++", "clang++") if c and shutil.which(c)), None)
pytestmark = [pytest.mark.skipif(_CXX is None, reason="no C++ compiler"),
              pytest.mark.skipif(not compiled.available(), reason="compiled CPU backend unavailable")]

_HARNESS = r"""
#include "fused_rows.h"
using namespace snntorch_sparse::cuda;

// The launchers' kernels, thread after thread (warp after warp, lanes emulated
// by HostLanes). Pointers arrive already advanced to the time chunk, as the
// launchers pass them.

// lif_fused_scan_kernel over one time chunk of n_t steps; out may be cur (in place).
template <typename T>
static void fwd_scan(const T* cur, const T* beta, const T* thr, T* out, T* mem, int spikes, int64_t n_t, int64_t B,
                     int64_t N, int mode, T* carry) {
  for (int64_t c = 0; c < B * N; ++c) {
    if (mode == 0) lif_fused_scan_column<T, 0>(c, cur, beta, thr, out, mem, spikes != 0, n_t, B * N, N, carry);
    else if (mode == 1) lif_fused_scan_column<T, 1>(c, cur, beta, thr, out, mem, spikes != 0, n_t, B * N, N, carry);
    else lif_fused_scan_column<T, 2>(c, cur, beta, thr, out, mem, spikes != 0, n_t, B * N, N, carry);
  }
}

template <typename T>
static void fwd_count(const T* sh, const T* win, int64_t R, int64_t N, int64_t* act_cnt, int64_t* spk_cnt) {
  for (int64_t r = 0; r < R; ++r) count_shift_row<T>(HostLanes{}, sh + r * N, win, N, act_cnt + r, spk_cnt + r);
}

// chunk_rowptr_kernel with P threads: phase 1 for every thread, the block's
// exclusive scan of the slice sums, phase 2 for every thread.
static void chunk_rowptr(int64_t n, int P, const int64_t* act_cnt, int64_t* act_rp, const int64_t* spk_cnt,
                         int64_t* spk_rp) {
  int64_t ea = 0, es = 0;  // exclusive prefix of the slice sums
  int64_t* starts = new int64_t[2 * P];
  for (int p = 0; p < P; ++p) {
    int64_t a = 0, s = 0;
    if (act_rp != nullptr) chunk_rowptr_sum(n, p, P, act_cnt, &a);
    if (spk_rp != nullptr) chunk_rowptr_sum(n, p, P, spk_cnt, &s);
    starts[2 * p] = ea;
    starts[2 * p + 1] = es;
    ea += a;
    es += s;
  }
  for (int p = 0; p < P; ++p) {
    if (act_rp != nullptr) chunk_rowptr_write(n, p, P, act_cnt, act_rp[0] + starts[2 * p], act_rp);
    if (spk_rp != nullptr) chunk_rowptr_write(n, p, P, spk_cnt, spk_rp[0] + starts[2 * p + 1], spk_rp);
  }
  delete[] starts;
}

template <typename T>
static void fwd_compact(T* sh, const T* win, int64_t R, int64_t N, const int64_t* act_rp, int32_t* act_col,
                        T* act_shift, const int64_t* spk_rp, int32_t* spk_col, int64_t act_cap, int64_t spk_cap) {
  for (int64_t r = 0; r < R; ++r)
    compact_shift_row<T>(HostLanes{}, sh + r * N, win, N, act_col != nullptr ? act_rp[r] : 0, act_col, act_shift,
                         spk_col != nullptr ? spk_rp[r] : 0, spk_col, act_cap, spk_cap);
}

template <typename T>
static void nz_count(const T* x, int64_t R, int64_t N, int64_t* cnt) {
  for (int64_t r = 0; r < R; ++r) cnt[r] = count_nonzero_row<T>(HostLanes{}, x + r * N, N);
}

template <typename T>
static void nz_compact(const T* x, int64_t R, int64_t N, const int64_t* rp, int32_t* col, T* val) {
  for (int64_t r = 0; r < R; ++r) compact_nonzero_row<T>(HostLanes{}, x + r * N, N, rp[r], col, val);
}

// scatter_active_kernel over rows [r0, r1); h holds the chunk's rows
template <typename T>
static void bwd_scatter(int64_t r0, int64_t r1, const int64_t* rp, const int32_t* col, const T* sg, const T* d_spk,
                        int compact, const T* d_mem, T* h, int64_t N) {
  for (int64_t r = r0; r < r1; ++r)
    scatter_active_row<T>(HostLanes{}, r, r0, rp, col, sg, d_spk, compact != 0, d_mem, h, N);
}

template <typename T>
static void bwd_scan(T* h, const T* beta, const uint8_t* spk, T* hsum, int64_t n_t, int64_t BN, int64_t N, int mode,
                     T* carry, int hsum_add) {
  for (int64_t c = 0; c < BN; ++c) {
    if (mode == 1) lif_scan_backward_column<T, uint8_t, true>(c, h, beta, spk, h, n_t, BN, N, hsum, carry, hsum_add != 0);
    else lif_scan_backward_column<T, uint8_t, false>(c, h, beta, nullptr, h, n_t, BN, N, hsum, carry, hsum_add != 0);
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

template <typename T>
static void bwd_dx(int64_t r0, int64_t r1, const int64_t* rp, const int32_t* col, const T* h, const T* wt, int64_t N,
                   int compact, T* out, int64_t Ni) {
  for (int64_t r = r0; r < r1; ++r) dx_active_row<T>(HostLanes{}, r, r0, rp, col, h, wt, N, compact != 0, out, Ni);
}

#define EXPORT(T, S)                                                                                            \
  void fwd_scan_##S(const T* a, const T* b, const T* c, T* d, T* e, int f, int64_t g, int64_t h, int64_t i,      \
                    int m, T* carry) { fwd_scan<T>(a, b, c, d, e, f, g, h, i, m, carry); }                       \
  void fwd_count_##S(const T* a, const T* b, int64_t c, int64_t d, int64_t* e, int64_t* f) {                     \
    fwd_count<T>(a, b, c, d, e, f); }                                                                            \
  void fwd_compact_##S(T* a, const T* b, int64_t c, int64_t d, const int64_t* e, int32_t* f, T* g,               \
                       const int64_t* h, int32_t* i, int64_t ca, int64_t cs) {                                   \
    fwd_compact<T>(a, b, c, d, e, f, g, h, i, ca, cs); }                                                         \
  void nz_count_##S(const T* a, int64_t b, int64_t c, int64_t* d) { nz_count<T>(a, b, c, d); }                   \
  void nz_compact_##S(const T* a, int64_t b, int64_t c, const int64_t* d, int32_t* e, T* f) {                    \
    nz_compact<T>(a, b, c, d, e, f); }                                                                           \
  void bwd_scatter_##S(int64_t r0, int64_t r1, const int64_t* b, const int32_t* c, const T* d, const T* e,      \
                       int f, const T* g, T* h, int64_t i) { bwd_scatter<T>(r0, r1, b, c, d, e, f, g, h, i); }   \
  void bwd_scan_##S(T* a, const T* b, const uint8_t* c, T* s, int64_t d, int64_t e, int64_t f, int m, T* carry,  \
                    int add) { bwd_scan<T>(a, b, c, s, d, e, f, m, carry, add); }                                \
  void bwd_densify_##S(int64_t a, int64_t b, const int64_t* c, const int32_t* d, const T* e, T* f, int64_t g) {  \
    bwd_densify<T>(a, b, c, d, e, f, g); }                                                                       \
  void bwd_gather_##S(int64_t a, int64_t b, const int64_t* c, const int32_t* d, const T* e, int f, T* g,         \
                      int64_t h) { bwd_gather<T>(a, b, c, d, e, f, g, h); }                                      \
  void bwd_dx_##S(int64_t a, int64_t b, const int64_t* c, const int32_t* d, const T* e, const T* wt, int64_t n,  \
                  int f, T* g, int64_t h) { bwd_dx<T>(a, b, c, d, e, wt, n, f, g, h); }

extern "C" {
EXPORT(float, f32)
EXPORT(double, f64)
void chunk_rowptr_host(int64_t n, int P, const int64_t* a, int64_t* ar, const int64_t* s, int64_t* sr) {
  chunk_rowptr(n, P, a, ar, s, sr);
}
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


def _at(t, offset=0):
    """Pointer to element ``offset`` of ``t`` (``None``: a null pointer), as the launchers advance them."""
    return ctypes.c_void_p(t.data_ptr() + offset * t.element_size()) if t is not None else ctypes.c_void_p(None)


def _exclusive(cnt):
    rp = torch.zeros(cnt.numel() + 1, dtype=torch.long)
    rp[1:] = cnt.cumsum(0)
    return rp


# Entries past a list's capacity that must stay untouched (an overrun would show here).
_GUARD = 8


def emulated_forward(lib, current, beta, thr, win, mode, need_mem=True, steps=None, capacity=None, spk_out=False,
                     threads=1024):
    """fused_launch.cu's lif_fused_forward, chunk by chunk and pass by pass.

    ``current`` stands in for each chunk's GEMM output: its rows are copied into
    the chunk buffer, and U - θ is scanned over them in place (``spk_out``:
    from the current's rows into the spike output's rows instead). ``steps``:
    T_c (``None``: one chunk); ``capacity``: the lists' lengths (``None``: the
    launcher's guess). Returns ``(spikes, mem, spike CSR, active CSR, passes)``.
    """
    T, B, N = current.shape
    R, dt = T * B, current.dtype
    Tc = steps or max(T, 1)
    cur2 = current.reshape(R, N)

    def run(cap_a, cap_s):
        out = torch.full((R, N), float("nan"), dtype=dt)
        mem = torch.full((R, N), float("nan"), dtype=dt) if need_mem else None
        carry = torch.zeros(B * N, dtype=dt)
        act_rp = torch.full((R + 1,), -1, dtype=torch.long)
        spk_rp = torch.full((R + 1,), -1, dtype=torch.long)
        act_rp[0] = spk_rp[0] = 0
        act_col = torch.full((cap_a + _GUARD,), -1, dtype=torch.int32)
        act_shift = torch.full((cap_a + _GUARD,), float("nan"), dtype=dt)
        spk_col = torch.full((cap_s + _GUARD,), -1, dtype=torch.int32)
        cbuf = torch.full((Tc * B, N), float("nan"), dtype=dt)
        cnt = torch.full((2, Tc * B), -1, dtype=torch.long)
        for t0 in range(0, T, Tc):
            n_t = min(Tc, T - t0)
            r0, n = t0 * B, n_t * B
            if spk_out:
                src, dst = _at(cur2, r0 * N), _at(out, r0 * N)
            else:
                cbuf[:n] = cur2[r0:r0 + n]
                src = dst = _at(cbuf)
            _fn(lib, "fwd_scan", dt)(src, _p(beta), _p(thr), dst, _at(mem, r0 * N), ctypes.c_int(0), _i(n_t), _i(B),
                                     _i(N), ctypes.c_int(mode), _p(carry))
            _fn(lib, "fwd_count", dt)(dst, _p(win), _i(n), _i(N), _p(cnt[0]), _p(cnt[1]))
            lib.chunk_rowptr_host(_i(n), ctypes.c_int(threads), _p(cnt[0]), _at(act_rp, r0), _p(cnt[1]),
                                  _at(spk_rp, r0))
            _fn(lib, "fwd_compact", dt)(dst, _p(win), _i(n), _i(N), _at(act_rp, r0), _p(act_col), _p(act_shift),
                                        _at(spk_rp, r0), _p(spk_col), _i(cap_a), _i(cap_s))
            if not spk_out:
                out[r0:r0 + n] = cbuf[:n]
        assert (act_col[cap_a:] == -1).all() and (spk_col[cap_s:] == -1).all(), "a list was written past its capacity"
        return out, mem, act_rp, act_col, act_shift, spk_rp, spk_col

    cap_a, cap_s = capacity if capacity is not None else cost_model.first_call_lists(R * N)
    out, mem, act_rp, act_col, act_shift, spk_rp, spk_col = run(cap_a, cap_s)
    n_act, n_spk, passes = int(act_rp[R]), int(spk_rp[R]), 1
    if n_act > cap_a or n_spk > cap_s:
        out, mem, act_rp, act_col, act_shift, spk_rp, spk_col = run(n_act, n_spk)
        passes = 2
    view = (T, B, N)
    return (out.view(view), None if mem is None else mem.view(view), (spk_rp, spk_col[:n_spk]),
            (act_rp, act_col[:n_act], act_shift[:n_act]), passes)


def emulated_spikes_only(lib, current, beta, thr, mode, steps=None):
    """The forward without sets: the scan writes the spikes into spk_out, chunk by chunk."""
    T, B, N = current.shape
    Tc = steps or max(T, 1)
    out = torch.full_like(current, float("nan"))
    carry = torch.zeros(B * N, dtype=current.dtype)
    for t0 in range(0, T, Tc):
        n_t = min(Tc, T - t0)
        _fn(lib, "fwd_scan", current.dtype)(_at(current, t0 * B * N), _p(beta), _p(thr), _at(out, t0 * B * N),
                                            _p(None), ctypes.c_int(1), _i(n_t), _i(B), _i(N), ctypes.c_int(mode),
                                            _p(carry))
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


# ∂L/∂X from the chunk's h W GEMM above this fraction of upstream entries (kDxGemmFraction)
DX_GEMM_FRACTION = 0.1


def emulated_backward(lib, act, act_sg, d_spk, d_mem, beta, spk, mode, x_csr, weight, up, T, B, steps,
                      compact_spk=False, compact_dx=False, keep_h=False, dx_by_gemm=None):
    """fused_launch.cu's lif_fused_backward: time chunks of ``steps`` steps, the last first.

    Returns ``(h, dW, db, dx, hsum)``; ``h`` is assembled from the chunks'
    buffers for the comparison (``keep_h``: written in place, as into ``h_out``).
    ``dx_by_gemm``: ∂L/∂X from the chunk's h W instead of per-entry dots
    (``None``: the launcher's rule).
    """
    dt = act_sg.dtype
    N = beta.numel()
    R = T * B
    Ni = weight.shape[1]
    h_full = torch.full((R, N), float("nan"), dtype=dt)
    hbuf = torch.full((steps * B, N), float("nan"), dtype=dt)
    hsum = torch.zeros(B * N, dtype=dt)
    carry = torch.zeros(B * N, dtype=dt)
    sb = spk.reshape(-1).to(torch.bool).view(torch.uint8).contiguous() if mode == 1 else None
    dw = torch.zeros(N, Ni, dtype=dt)
    dx = None
    if up is not None:
        dx = torch.zeros(up[1].numel() if compact_dx else R * Ni, dtype=dt)
    d_mem2 = d_mem.reshape(R, N).contiguous() if d_mem is not None else None
    wt = weight.t().contiguous()
    if dx_by_gemm is None and up is not None:
        dx_by_gemm = up[1].numel() > DX_GEMM_FRACTION * R * Ni
    for k in reversed(range((T + steps - 1) // steps)):
        t0, t1 = k * steps, min(T, (k + 1) * steps)
        r0, r1 = t0 * B, t1 * B
        hc = h_full[r0:r1] if keep_h else hbuf[:r1 - r0]  # NaN until the scatter kernel fills it
        has_spk = d_spk is not None and act[1].numel()
        _fn(lib, "bwd_scatter", dt)(_i(r0), _i(r1), _p(act[0]), _p(act[1]), _p(act_sg),
                                    _p(d_spk.contiguous() if has_spk else None), ctypes.c_int(int(compact_spk)),
                                    _p(d_mem2), _p(hc), _i(N))
        _fn(lib, "bwd_scan", dt)(_p(hc), _p(beta), _at(sb, r0 * N), _p(hsum), _i(t1 - t0), _i(B * N), _i(N),
                                 ctypes.c_int(mode), _p(carry), ctypes.c_int(1))
        xc = torch.full((r1 - r0, Ni), float("nan"), dtype=dt)  # the kernel zeroes its rows itself
        _fn(lib, "bwd_densify", dt)(_i(r0), _i(r1), _p(x_csr[0]), _p(x_csr[1]), _p(x_csr[2]), _p(xc), _i(Ni))
        dw.addmm_(hc.t(), xc)
        if up is not None and not dx_by_gemm:
            _fn(lib, "bwd_dx", dt)(_i(r0), _i(r1), _p(up[0]), _p(up[1]), _p(hc), _p(wt), _i(N),
                                   ctypes.c_int(int(compact_dx)), _p(dx), _i(Ni))
        elif up is not None:
            pc = (hc @ weight).contiguous()
            _fn(lib, "bwd_gather", dt)(_i(r0), _i(r1), _p(up[0]), _p(up[1]), _p(pc), ctypes.c_int(int(compact_dx)),
                                       _p(dx), _i(Ni))
        if not keep_h:
            h_full[r0:r1] = hc
    db = hsum.view(B, N).sum(0)
    return h_full, dw, db, dx, hsum


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


def _cpu_forward(current, beta, thr, win, mode):
    T, B, N = current.shape
    spk = torch.empty(T, B, N, dtype=current.dtype)
    mem = torch.empty(T, B, N, dtype=current.dtype)
    s_rp, s_col, a_rp, a_col, a_shift = fused.lif_fused_forward(current, None, None, None, beta, thr, mode, win,
                                                                spk, mem, True, True)
    return spk, mem, (s_rp, s_col), (a_rp, a_col, a_shift)


# time chunks: one step, a ragged split, all steps (None)
STEPS = [1, 2, None]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_passes_match_the_cpu_kernel_bitwise(lib, shape, mode, dtype):
    """Every chunking, both spike destinations (the chunk buffer in place, spk_out), exact lists."""
    T, B, N, Ni = shape
    x, w, b, beta, thr, win, current = _layer(T, B, N, Ni, dtype, seed=sum(shape) + mode)
    spk_ref, mem_ref, (s_rp, s_col), (a_rp, a_col, a_shift) = _cpu_forward(current, beta, thr, win, mode)
    assert 0 < a_col.numel() < T * B * N or T * B * N < 50  # the window holds some, not all
    for steps in STEPS:
        for spk_out in (False, True):
            out, mem, (e_srp, e_scol), (e_arp, e_acol, e_ash), passes = emulated_forward(
                lib, current, beta, thr, win, mode, steps=steps, spk_out=spk_out,
                capacity=(a_col.numel(), s_col.numel()))
            assert passes == 1
            assert torch.equal(out, spk_ref) and torch.equal(mem, mem_ref)
            assert torch.equal(e_srp, s_rp) and torch.equal(e_scol, s_col)
            assert torch.equal(e_arp, a_rp) and torch.equal(e_acol, a_col) and torch.equal(e_ash, a_shift)
        assert torch.equal(emulated_spikes_only(lib, current, beta, thr, mode, steps=steps), spk_ref)


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_lists_sized_below_their_totals_take_a_second_pass_with_the_same_result(lib, mode):
    """A hint below the totals: nothing is written past the lists (checked in
    emulated_forward), the totals are still exact, and the second pass equals
    the first-time-right one; a hint above them is narrowed."""
    T, B, N, Ni = 13, 3, 45, 20
    for dtype in DTYPES:
        x, w, b, beta, thr, win, current = _layer(T, B, N, Ni, dtype, seed=5 + mode)
        spk_ref, mem_ref, (s_rp, s_col), (a_rp, a_col, a_shift) = _cpu_forward(current, beta, thr, win, mode)
        n_a, n_s = a_col.numel(), s_col.numel()
        guess = cost_model.first_call_lists(T * B * N)[0]  # the launcher's lengths without a hint
        for capacity, want_passes in (((0, 0), 2), ((n_a - 1, n_s), 2), ((n_a, n_s - 1), 2), ((n_a, n_s), 1),
                                      ((n_a + 100, n_s + 7), 1),
                                      (None, 1 if n_a <= guess and n_s <= guess // 2 else 2)):
            out, mem, (e_srp, e_scol), (e_arp, e_acol, e_ash), passes = emulated_forward(
                lib, current, beta, thr, win, mode, steps=4, capacity=capacity)
            assert passes == want_passes, capacity
            assert torch.equal(out, spk_ref) and torch.equal(mem, mem_ref)
            assert torch.equal(e_srp, s_rp) and torch.equal(e_scol, s_col)
            assert torch.equal(e_arp, a_rp) and torch.equal(e_acol, a_col) and torch.equal(e_ash, a_shift)


@pytest.mark.parametrize("threads", [1, 7, 32, 1024])
@pytest.mark.parametrize("n", [0, 1, 5, 100, 3001])
def test_chunk_row_pointers_continue_the_previous_chunk(lib, threads, n):
    """chunk_rowptr's block algorithm (slices per thread, scan of the slice sums):
    rowptr[r0 + 1 + i] = rowptr[r0] + Σ_{j ≤ i} cnt[j], both sets, any thread count."""
    g = torch.Generator().manual_seed(n * 31 + threads)
    cnt = torch.randint(0, 40, (2, max(n, 1)), generator=g, dtype=torch.long)
    r0, start_a, start_s = 3, 1234, 77
    act_rp = torch.full((r0 + n + 1 + _GUARD,), -5, dtype=torch.long)
    spk_rp = act_rp.clone()
    act_rp[r0], spk_rp[r0] = start_a, start_s
    lib.chunk_rowptr_host(_i(n), ctypes.c_int(threads), _p(cnt[0]), _at(act_rp, r0), _p(cnt[1]), _at(spk_rp, r0))
    for rp, c, start in ((act_rp, cnt[0], start_a), (spk_rp, cnt[1], start_s)):
        assert torch.equal(rp[r0 + 1:r0 + 1 + n], start + c[:n].cumsum(0))
        assert (rp[:r0] == -5).all() and (rp[r0 + 1 + n:] == -5).all()  # nothing outside the chunk's rows
        assert int(rp[r0]) == start
    # one set alone (the other not asked for)
    only = torch.full((n + 1,), -5, dtype=torch.long)
    only[0] = 0
    lib.chunk_rowptr_host(_i(n), ctypes.c_int(threads), _p(None), _p(None), _p(cnt[1]), _p(only))
    assert torch.equal(only[1:], cnt[1][:n].cumsum(0))


@pytest.mark.parametrize("chunk", [1, 3, 16, 17, 100])
@pytest.mark.parametrize("mode", [0, 1, 2])
def test_time_chunked_scan_with_carry_matches_the_whole_scan_bitwise(lib, mode, chunk):
    T, B, N, Ni = 37, 3, 45, 20
    for dtype in DTYPES:
        x, w, b, beta, thr, win, current = _layer(T, B, N, Ni, dtype, seed=mode * 7 + chunk)
        whole = emulated_forward(lib, current, beta, thr, win, mode)
        chunked = emulated_forward(lib, current, beta, thr, win, mode, steps=chunk)
        for a, b_ in zip(whole[:2], chunked[:2]):
            assert torch.equal(a, b_)
        for a, b_ in zip(whole[2] + whole[3], chunked[2] + chunked[3]):
            assert torch.equal(a, b_)


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
    hsum_whole = None
    for steps, keep_h, by_gemm in ((T, False, False), (T, True, True), (1, False, True), (1, True, False),
                                   (2, False, False), (2, True, True), (3, False, True), (3, True, False)):
        # T first: the one-chunk sums the chunked ones must reproduce
        h, dw, db, dx, hsum = emulated_backward(lib, (a_rp, a_col), act_sg, d_spk, d_mem, beta, spk, mode,
                                                (x_csr[0], x_csr[1], x_val), w, (up_rp, up_col), T, B, steps,
                                                compact_spk=compact, compact_dx=compact, keep_h=keep_h,
                                                dx_by_gemm=by_gemm)
        assert torch.equal(h.view(T, B, N), h_ref)
        if hsum_whole is None:
            hsum_whole = hsum
        assert torch.equal(hsum, hsum_whole)  # Σ_t h in the one scan's order, chunked or not
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
    _, _, _, (_, a_col, _) = _cpu_forward(current, beta, thr, win, 0)
    _, _, _, (_, e_col, _), _ = emulated_forward(broken_lib, current, beta, thr, win, 0, steps=2)
    assert not torch.equal(e_col, a_col)


def test_emulation_catches_a_lost_backward_carry(lib, tmp_path):
    """The chunked backward comparison can fail: a scan that starts every chunk
    from h = 0 (the carry ignored) disagrees with the CPU kernel."""
    src = (CSRC / "cuda" / "scan_columns.h").read_text()
    broken = src.replace("T acc = carry != nullptr ? carry[c] : T(0);", "T acc = T(0);")
    assert broken != src
    (tmp_path / "scan_columns.h").write_text(broken)
    shutil.copy(CSRC / "cuda" / "fused_rows.h", tmp_path / "fused_rows.h")
    broken_lib = _build(tmp_path, tmp_path)
    T, B, N, Ni = 6, 2, 33, 8
    dtype = torch.float64
    x, w, b, beta, thr, win, current = _layer(T, B, N, Ni, dtype, seed=3)
    spk = torch.empty(T, B, N, dtype=dtype)
    _, _, a_rp, a_col, a_shift = fused.lif_fused_forward(current, None, None, None, beta, thr, 0, win, spk, None,
                                                         False, True)
    act_sg = 1 / (1 + 25 * a_shift.abs()) ** 2
    d_mem = torch.randn(T, B, N, dtype=dtype, generator=torch.Generator().manual_seed(2))
    x_csr = fused.dense_to_csr(x)
    args = ((a_rp, a_col), act_sg, None, d_mem, beta, spk, 0, (x_csr[0], x_csr[1], None), w, None, T, B)
    whole = emulated_backward(broken_lib, *args, T)[0]
    chunked = emulated_backward(broken_lib, *args, 2)[0]
    assert not torch.equal(whole, chunked)


def test_dx_dot_is_the_shuffle_tree_sum_in_order(lib):
    """∂L/∂X per entry: lane l sums h[n] W[n, j] for n = l, l + 32, ... in order, the
    32 sums meet pairwise (l += l + 16, 8, 4, 2, 1). Checked against that sum done here in
    Python float64 arithmetic, bit for bit, and against the plain dot to rounding."""
    g = torch.Generator().manual_seed(0)
    for N in (1, 20, 31, 32, 33, 200):
        h = torch.randn(1, N, generator=g, dtype=torch.float64)
        wt = torch.randn(3, N, generator=g, dtype=torch.float64)
        rp = torch.tensor([0, 3], dtype=torch.long)
        col = torch.tensor([2, 0, 1], dtype=torch.int32)
        out = torch.full((3,), float("nan"), dtype=torch.float64)
        lib.bwd_dx_f64(_i(0), _i(1), _p(rp), _p(col), _p(h), _p(wt), _i(N), ctypes.c_int(1), _p(out), _i(3))
        for k, j in enumerate(col.tolist()):
            lanes = []
            for lane in range(32):
                s = 0.0
                for n in range(lane, N, 32):
                    s = s + float(h[0, n]) * float(wt[j, n])
                lanes.append(s)
            off = 16
            while off:
                for lane in range(off):
                    lanes[lane] = lanes[lane] + lanes[lane + off]
                off //= 2
            assert float(out[k]) == lanes[0]
            assert abs(float(out[k]) - float(h[0] @ wt[j])) <= 1e-12 * max(1.0, float((h[0].abs() @ wt[j].abs())))

