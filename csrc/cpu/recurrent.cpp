// CPU kernel of the sparse RLeaky backward (snntorch_sparse/recurrent.py).
//
// Registered with its own TORCH_LIBRARY_FRAGMENT so that csrc/ops.cpp is left
// alone. Rows (batch entries) are independent: the recurrent weights mix the
// neurons of one row only. at::parallel_for splits the R rows into contiguous
// ranges; each range walks reverse time, step by step, over its rows (so the
// active set, d_spk and a are streamed in memory order), with the adjoint
// a[t+1] of each row as the carry:
//
//   du[n]  = beta[n] * a[t+1][n] + d_mem[t][n]
//   for each active entry k = (t, row, n):             (CSR over the T*R rows)
//     ds   = d_spk[t][n] + dot(a[t+1], V[:, n])       (all_to_all; v[n]*a[t+1][n] one-to-one)
//     g[k] = ds * sg[k];  du[n] += g[k]
//   du     *= (1 - R[t])                              (reset to zero only)
//   a[t]   = du
//
// and, from the same row while it is in L1 (each optional):
//
//   db_V        += a[t]                               (dL/db_V = sum_t a[t])
//   dV^T[j, :]  += a[t]     for each spike S[t-1][row, j] = 1     (dL/dV = sum_t a[t]^T S[t-1])
//   dW^T[j, :]  += x * a[t] for each input event (t, row, j)       (dL/dW_in = sum_t a[t]^T X[t])
//
// The last one is the input layer's weight gradient when the caller fuses
// Linear + RLeaky; then a[t] itself need not be written at all (need_a). The
// a rows of a block of steps (~256 KiB) are kept in a ring, and the dV^T and
// dW^T updates are done per block column by column (DwBlock, dw_copies.h: each
// dW^T row read and written about once per block instead of once per event;
// the same sums in the same order as one scatter per event).
//
// Cost per step and row: O(N) elementwise, N multiply-adds per active entry
// for the recurrent term (|A|·N in all, never the dense T·B·N²), N adds per
// spike of the previous step (dV) and per input event (dW_in).
//
// The dot products run four active entries at a time (a[t+1] loaded once for
// the four), each with 8 partial sums (lanes i mod 8) added pairwise at the
// end: per entry exactly the order of dot8 in the CUDA body
// (csrc/cuda/rleaky_backward.cuh), so a and g are bit-identical to it.
// Everything is built with -ffp-contract=off.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>
#include <torch/types.h>

#include <algorithm>
#include <vector>

#include "dw_copies.h"
#include "row_kernels.h"

namespace snntorch_sparse {
namespace {

// out[q] = <x, y[q]> for q < 4, each with 8 partial sums (lanes i mod 8) added pairwise at
// the end: per q exactly the operations and order of dot8 in the CUDA body
// (csrc/cuda/rleaky_backward.cuh). Four independent accumulator sets, x loaded once for
// all four (the add latency of one dot hidden behind the others).
template <typename T>
inline void dot8x4(const T* __restrict__ x, const T* __restrict__ y0, const T* __restrict__ y1,
                   const T* __restrict__ y2, const T* __restrict__ y3, int64_t n, T* out) {
  T p[4][8];
  int64_t i = 0;
#if defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    const float* fx = reinterpret_cast<const float*>(x);
    const float* f0 = reinterpret_cast<const float*>(y0);
    const float* f1 = reinterpret_cast<const float*>(y1);
    const float* f2 = reinterpret_cast<const float*>(y2);
    const float* f3 = reinterpret_cast<const float*>(y3);
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (; i + 8 <= n; i += 8) {
      const __m256 v = _mm256_loadu_ps(fx + i);
      s0 = _mm256_add_ps(s0, _mm256_mul_ps(v, _mm256_loadu_ps(f0 + i)));
      s1 = _mm256_add_ps(s1, _mm256_mul_ps(v, _mm256_loadu_ps(f1 + i)));
      s2 = _mm256_add_ps(s2, _mm256_mul_ps(v, _mm256_loadu_ps(f2 + i)));
      s3 = _mm256_add_ps(s3, _mm256_mul_ps(v, _mm256_loadu_ps(f3 + i)));
    }
    if (i == n) {  // no tail: reduce in registers, ((p0+p4)+(p1+p5)) + ((p2+p6)+(p3+p7)) as below
      const __m256 s[4] = {s0, s1, s2, s3};
      for (int q = 0; q < 4; ++q) {
        const __m128 h = _mm_add_ps(_mm256_castps256_ps128(s[q]), _mm256_extractf128_ps(s[q], 1));
        const __m128 pair = _mm_hadd_ps(h, h);  // (p0+p4)+(p1+p5), (p2+p6)+(p3+p7)
        out[q] = static_cast<T>(_mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair))));
      }
      return;
    }
    _mm256_storeu_ps(reinterpret_cast<float*>(p[0]), s0);
    _mm256_storeu_ps(reinterpret_cast<float*>(p[1]), s1);
    _mm256_storeu_ps(reinterpret_cast<float*>(p[2]), s2);
    _mm256_storeu_ps(reinterpret_cast<float*>(p[3]), s3);
  } else
#endif
  {
    for (int q = 0; q < 4; ++q)
      for (int j = 0; j < 8; ++j) p[q][j] = T(0);
    for (; i + 8 <= n; i += 8)
      for (int j = 0; j < 8; ++j) {
        const T v = x[i + j];
        p[0][j] += v * y0[i + j];
        p[1][j] += v * y1[i + j];
        p[2][j] += v * y2[i + j];
        p[3][j] += v * y3[i + j];
      }
  }
  for (int j = 0; i < n; ++i, ++j) {
    p[0][j] += x[i] * y0[i];
    p[1][j] += x[i] * y1[i];
    p[2][j] += x[i] * y2[i];
    p[3][j] += x[i] * y3[i];
  }
  for (int q = 0; q < 4; ++q)
    out[q] = ((p[q][0] + p[q][4]) + (p[q][1] + p[q][5])) + ((p[q][2] + p[q][6]) + (p[q][3] + p[q][7]));
}

inline int64_t padded(int64_t N, int64_t elem) {
  const int64_t per_line = 64 / elem;
  return (N + per_line - 1) / per_line * per_line;
}

template <typename T>
struct Args {
  const int64_t* rowptr;
  const int32_t* col;
  const T* sg;
  const T* d_spk;  // dense [T, R, N], or one value per active entry (compact)
  bool d_spk_compact;
  const T* d_mem;
  const T* beta;
  const T* wt;  // V^T rows (wt[n] = V[:, n]), all_to_all
  const T* v;   // one-to-one
  const int64_t* spk_rowptr;  // the forward's spikes, CSR over the T*R rows
  const int32_t* spk_col;
  const T* keep0;
  int64_t mode, Tn, R, N;
  const int64_t* x_rowptr;  // input events (fused Linear): CSR over the T*R rows
  const int32_t* x_col;
  const T* x_val;
  int64_t n_in;
  T* a;   // [T, R, N] or null
  T* a0;  // [R, N] or null: a[0]
  T* g;   // [K] or null
};

// DwBlock::flush out of line: inlined into the kernel's loop nest it ran with its loop state
// spilled to the stack (a store-forwarding chain per event).
template <typename T>
__attribute__((noinline)) void flush_block(DwBlock<T>& blk, T* dwt, const T* ring, int64_t ld, int64_t slots,
                                           const int64_t* xr, const int32_t* xc, const T* xv, int64_t t_hi,
                                           int64_t t_lo, int64_t r0, int64_t r1, int64_t R, int64_t N, int64_t Ni) {
  blk.flush(dwt, ring, ld, slots, xr, xc, xv, t_hi, t_lo, r0, r1, R, N, Ni, ld);
}

template <typename T>
void rleaky_backward_kernel(const Args<T>& A, bool need_dv, bool need_db, T* dv_out, T* db_out, T* dw_out) {
  const int64_t Tn = A.Tn, R = A.R, N = A.N, Ni = A.n_in;
  const int64_t nch = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), R));
  const int64_t ld = padded(N, sizeof(T));
  // Events of S[t-1] listed under row t*R + r of a[t] (none for t = 0): dV^T[j] += a[t][r]
  std::vector<int64_t> srp;
  if (need_dv) {
    srp.assign(Tn * R + 1, 0);
    std::copy(A.spk_rowptr, A.spk_rowptr + (Tn - 1) * R + 1, srp.begin() + R);
  }
  const int32_t* scol = A.spk_col;
  // dW^T updates grouped by column over a block of rows (DwBlock, ~256 KiB of a) when a column
  // has on average at least one event per block; else one scatter per event (as fused_lif.cpp).
  const int64_t block_rows = std::max<int64_t>(1, (int64_t(256) << 10) / std::max<int64_t>(1, N * int64_t(sizeof(T))));
  const double rows = double(Tn * R);
  const bool grouped_dw = dw_out != nullptr && N >= 64 && block_rows * (double(A.x_rowptr[Tn * R]) / rows) >= double(Ni);
  const bool grouped_dv = need_dv && N >= 64 && block_rows * (double(srp[Tn * R]) / rows) >= double(N);
  std::vector<std::vector<T>> dvt(need_dv ? nch : 0), dwt(dw_out ? nch : 0), dbs(need_db ? nch : 0);
  at::parallel_for(0, nch, 1, [&](int64_t c0, int64_t c1) {
    std::vector<T> zeros(N, T(0)), dot_buf(N);
    DwBlock<T> blk_dw, blk_dv;
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t r0 = R * c / nch, r1 = R * (c + 1) / nch, nb = r1 - r0;
      if (nb == 0) continue;
      T* dvl = nullptr;
      T* dwl = nullptr;
      T* dbl = nullptr;
      if (need_dv) dvt[c].assign(N * ld, T(0)), dvl = dvt[c].data();
      if (dw_out) dwt[c].assign(Ni * ld, T(0)), dwl = dwt[c].data();
      if (need_db) dbs[c].assign(N, T(0)), dbl = dbs[c].data();
      // a[t] of the range's rows in a ring of `slots` steps: row (t % slots) * nb + (r - r0), ld
      // apart. A block of t_block steps and the carry a[t_hi + 1] take distinct slots.
      const int64_t t_block = (grouped_dw || grouped_dv) ? std::max<int64_t>(1, block_rows / nb) : 1;
      const int64_t slots = t_block + 1;
      std::vector<T> ring(slots * nb * ld, T(0));
      for (int64_t t_hi = Tn - 1; t_hi >= 0; t_hi -= t_block) {
        const int64_t t_lo = std::max<int64_t>(0, t_hi - t_block + 1);
        for (int64_t t = t_hi; t >= t_lo; --t) {
          const bool has_next = t + 1 < Tn;
          for (int64_t r = r0; r < r1; ++r) {
            const int64_t row = t * R + r, base = row * N;
            T* du = ring.data() + ((t % slots) * nb + (r - r0)) * ld;
            const T* carry = has_next ? ring.data() + (((t + 1) % slots) * nb + (r - r0)) * ld : zeros.data();
            for (int64_t n = 0; n < N; ++n) du[n] = A.beta[n] * carry[n];
            if (A.d_mem != nullptr) {
              const T* dm = A.d_mem + base;
              for (int64_t n = 0; n < N; ++n) du[n] = du[n] + dm[n];
            }
            const int64_t k0 = A.rowptr[row], k1 = A.rowptr[row + 1];
            if (k1 > k0) {
              T* dot = dot_buf.data();  // dot(a[t+1], V[:, n_k]) of the row's entries
              if (has_next && A.wt != nullptr) {
                // four entries at a time; a last group of 1-3 repeats its last entry (a serial
                // dot8 is bound by its add latency: four chains cost about as much as one)
                for (int64_t k = k0; k < k1; k += 4) {
                  const T* w[4];
                  for (int q = 0; q < 4; ++q) w[q] = A.wt + int64_t(A.col[std::min(k + q, k1 - 1)]) * N;
                  T out[4];
                  dot8x4<T>(carry, w[0], w[1], w[2], w[3], N, out);
                  for (int64_t q = 0; q < 4 && k + q < k1; ++q) dot[k - k0 + q] = out[q];
                }
              }
              for (int64_t k = k0; k < k1; ++k) {
                const int64_t n = A.col[k];
                T ds = A.d_spk == nullptr ? T(0) : A.d_spk_compact ? A.d_spk[k] : A.d_spk[base + n];
                if (has_next) ds = ds + (A.wt != nullptr ? dot[k - k0] : carry[n] * A.v[n]);
                const T gk = ds * A.sg[k];
                if (A.g != nullptr) A.g[k] = gk;
                du[n] = du[n] + gk;
              }
            }
            if (A.mode == 1) {
              if (t > 0) {
                for (int64_t k = A.spk_rowptr[row - R]; k < A.spk_rowptr[row - R + 1]; ++k) du[A.spk_col[k]] = T(0);
              } else if (A.keep0 != nullptr) {
                for (int64_t n = 0; n < N; ++n) du[n] = du[n] * A.keep0[r * N + n];
              }
            }
            if (A.a != nullptr) std::copy(du, du + N, A.a + base);
            if (t == 0 && A.a0 != nullptr) std::copy(du, du + N, A.a0 + r * N);
            if (dbl != nullptr)
              for (int64_t n = 0; n < N; ++n) dbl[n] += du[n];
            if (dvl != nullptr && !grouped_dv && srp[row + 1] > srp[row])
              scatter_add_rows<T>(dvl, du, scol, nullptr, srp[row], srp[row + 1], N, ld);
            if (dwl != nullptr && !grouped_dw && A.x_rowptr[row + 1] > A.x_rowptr[row])
              scatter_add_rows<T>(dwl, du, A.x_col, A.x_val, A.x_rowptr[row], A.x_rowptr[row + 1], N, ld);
          }
        }
        if (grouped_dv && t_hi > 0)  // (step 0 has no previous spikes)
          flush_block<T>(blk_dv, dvl, ring.data(), ld, slots, srp.data(), scol, nullptr, t_hi,
                         std::max<int64_t>(t_lo, 1), r0, r1, R, N, N);
        if (grouped_dw)
          flush_block<T>(blk_dw, dwl, ring.data(), ld, slots, A.x_rowptr, A.x_col, A.x_val, t_hi, t_lo, r0, r1, R, N,
                         Ni);
      }
    }
  });
  auto merge = [&](std::vector<std::vector<T>>& copies, int64_t cols_, T* out) {
    std::vector<const T*> ptrs;
    for (const auto& cp : copies)
      if (!cp.empty()) ptrs.push_back(cp.data());
    if (ptrs.empty()) {
      std::fill(out, out + N * cols_, T(0));
      return;
    }
    merge_transposed_copies<T>(ptrs, N, cols_, ld, out);
  };
  if (need_dv) merge(dvt, N, dv_out);
  if (dw_out) merge(dwt, Ni, dw_out);
  if (need_db) {
    for (int64_t n = 0; n < N; ++n) {
      T s = T(0);
      bool first = true;
      for (const auto& d : dbs) {
        if (d.empty()) continue;
        s = first ? d[n] : s + d[n];
        first = false;
      }
      db_out[n] = s;
    }
  }
}

void check_csr_set(const char* what, const at::Tensor& rowptr, const at::Tensor& col, int64_t rows, int64_t ncols) {
  TORCH_CHECK(rowptr.scalar_type() == at::kLong && col.scalar_type() == at::kInt, "rleaky_backward: ", what,
              "_rowptr must be int64 and ", what, "_col int32");
  TORCH_CHECK(rowptr.numel() == rows + 1, "rleaky_backward: ", what, "_rowptr must have T*R+1 entries");
  const int64_t* rp = rowptr.const_data_ptr<int64_t>();
  const int32_t* cp = col.const_data_ptr<int32_t>();
  TORCH_CHECK(rp[0] == 0 && rp[rows] == col.numel(), "rleaky_backward: ", what, "_rowptr does not span ", what,
              "_col");
  bool ok = true;  // branch-free reductions (vectorised), one check each
  for (int64_t r = 0; r < rows; ++r) ok &= rp[r] <= rp[r + 1];
  TORCH_CHECK(ok, "rleaky_backward: ", what, "_rowptr decreases");
  for (int64_t k = 0; k < col.numel(); ++k) ok &= (cp[k] >= 0) & (cp[k] < ncols);
  TORCH_CHECK(ok, "rleaky_backward: ", what, "_col out of range");
}

// Returns (a [T,R,N] or empty, g [K] or empty, dV [N,N] or empty, db_V [N] or empty,
// a[0] [R,N], dW_in [N, n_in] or empty).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> rleaky_backward_cpu(
    const at::Tensor& act_rowptr, const at::Tensor& act_col, const at::Tensor& act_sg,
    const std::optional<at::Tensor>& d_spk, const std::optional<at::Tensor>& d_mem, const at::Tensor& beta,
    const std::optional<at::Tensor>& wt, const std::optional<at::Tensor>& v,
    const std::optional<at::Tensor>& spk_rowptr, const std::optional<at::Tensor>& spk_col,
    const std::optional<at::Tensor>& keep0, int64_t reset_mode, int64_t Tn, int64_t R, int64_t N,
    bool d_spk_compact, bool need_a, bool need_g, bool need_dv, bool need_db,
    const std::optional<at::Tensor>& x_rowptr, const std::optional<at::Tensor>& x_col,
    const std::optional<at::Tensor>& x_val, int64_t n_in) {
  TORCH_CHECK(act_col.numel() == act_sg.numel(), "rleaky_backward: act_col and act_sg differ in length");
  TORCH_CHECK(beta.numel() == N, "rleaky_backward: beta must have N entries");
  TORCH_CHECK(wt.has_value() != v.has_value(), "rleaky_backward: give exactly one of wt (all_to_all) and v");
  TORCH_CHECK(reset_mode >= 0 && reset_mode <= 2, "rleaky_backward: reset_mode must be 0, 1 or 2");
  const bool has_spk = spk_rowptr.has_value() && spk_rowptr->defined();
  TORCH_CHECK(has_spk == (spk_col.has_value() && spk_col->defined()), "rleaky_backward: give spk_rowptr and spk_col");
  TORCH_CHECK(reset_mode != 1 || has_spk, "rleaky_backward: reset to zero needs the spikes");
  TORCH_CHECK(!need_dv || (wt.has_value() && has_spk), "rleaky_backward: need_dv needs wt and the spikes");
  const auto dtype = act_sg.scalar_type();
  const int64_t K = act_sg.numel();
  auto contig = [&](const std::optional<at::Tensor>& x, int64_t numel, const char* name) -> at::Tensor {
    if (!x.has_value() || !x->defined()) return at::Tensor();
    TORCH_CHECK(x->numel() == numel, "rleaky_backward: ", name, " has ", x->numel(), " entries, expected ", numel);
    return x->contiguous();
  };
  at::Tensor ds = contig(d_spk, d_spk_compact ? K : Tn * R * N, "d_spk"), dm = contig(d_mem, Tn * R * N, "d_mem");
  at::Tensor w = contig(wt, N * N, "wt"), vv = contig(v, N, "v");
  at::Tensor k0 = contig(keep0, R * N, "keep0");
  for (const at::Tensor* x : {&ds, &dm, &w, &vv, &k0})
    TORCH_CHECK(!x->defined() || x->scalar_type() == dtype, "rleaky_backward: dtypes must agree");
  at::Tensor rp = act_rowptr.contiguous(), cl = act_col.contiguous(), sgc = act_sg.contiguous();
  check_csr_set("act", rp, cl, Tn * R, N);
  at::Tensor b = beta.contiguous();
  at::Tensor sr, sc;
  if (has_spk) {
    sr = spk_rowptr->contiguous();
    sc = spk_col->contiguous();
    check_csr_set("spk", sr, sc, Tn * R, N);
  }
  at::Tensor xr, xc, xv;
  const bool need_dw = x_rowptr.has_value() && x_rowptr->defined();
  if (need_dw) {
    TORCH_CHECK(x_col.has_value() && x_col->defined() && n_in >= 0, "rleaky_backward: x_rowptr needs x_col, n_in");
    xr = x_rowptr->contiguous();
    xc = x_col->contiguous();
    check_csr_set("x", xr, xc, Tn * R, n_in);
    if (x_val.has_value() && x_val->defined()) {
      TORCH_CHECK(x_val->numel() == xc.numel() && x_val->scalar_type() == dtype,
                  "rleaky_backward: x_val must be [nnz] of the gradient's dtype");
      xv = x_val->contiguous();
    }
  }
  auto opts = act_sg.options();
  at::Tensor a = need_a ? at::empty({Tn, R, N}, opts) : at::empty({0}, opts);
  at::Tensor g = need_g ? at::empty({K}, opts) : at::empty({0}, opts);
  at::Tensor dv = need_dv ? at::empty({N, N}, opts) : at::empty({0}, opts);
  at::Tensor db = need_db ? at::empty({N}, opts) : at::empty({0}, opts);
  at::Tensor a0 = at::zeros({R, N}, opts);
  at::Tensor dw = need_dw ? at::empty({N, n_in}, opts) : at::empty({0}, opts);
  if (Tn == 0 || R == 0 || N == 0) {
    dv.zero_(), db.zero_(), dw.zero_();
    return {a, g, dv, db, a0, dw};
  }
  AT_DISPATCH_FLOATING_TYPES(dtype, "rleaky_backward", [&] {
    Args<scalar_t> A{rp.const_data_ptr<int64_t>(), cl.const_data_ptr<int32_t>(), sgc.const_data_ptr<scalar_t>(),
                     ds.defined() ? ds.const_data_ptr<scalar_t>() : nullptr, d_spk_compact,
                     dm.defined() ? dm.const_data_ptr<scalar_t>() : nullptr, b.const_data_ptr<scalar_t>(),
                     w.defined() ? w.const_data_ptr<scalar_t>() : nullptr,
                     vv.defined() ? vv.const_data_ptr<scalar_t>() : nullptr,
                     has_spk ? sr.const_data_ptr<int64_t>() : nullptr, has_spk ? sc.const_data_ptr<int32_t>() : nullptr,
                     k0.defined() ? k0.const_data_ptr<scalar_t>() : nullptr, reset_mode, Tn, R, N,
                     need_dw ? xr.const_data_ptr<int64_t>() : nullptr,
                     need_dw ? xc.const_data_ptr<int32_t>() : nullptr,
                     xv.defined() ? xv.const_data_ptr<scalar_t>() : nullptr, n_in,
                     need_a ? a.mutable_data_ptr<scalar_t>() : nullptr, a0.mutable_data_ptr<scalar_t>(),
                     need_g ? g.mutable_data_ptr<scalar_t>() : nullptr};
    rleaky_backward_kernel<scalar_t>(A, need_dv, need_db, need_dv ? dv.mutable_data_ptr<scalar_t>() : nullptr,
                                     need_db ? db.mutable_data_ptr<scalar_t>() : nullptr,
                                     need_dw ? dw.mutable_data_ptr<scalar_t>() : nullptr);
  });
  return {a, g, dv, db, a0, dw};
}

}  // namespace
}  // namespace snntorch_sparse

TORCH_LIBRARY_FRAGMENT(snntorch_sparse, m) {
  m.def("rleaky_backward(Tensor act_rowptr, Tensor act_col, Tensor act_sg, Tensor? d_spk, Tensor? d_mem, "
        "Tensor beta, Tensor? wt, Tensor? v, Tensor? spk_rowptr, Tensor? spk_col, Tensor? keep0, int reset_mode, "
        "int T, int R, int N, "
        "bool d_spk_compact=False, bool need_a=True, bool need_g=True, bool need_dv=False, bool need_db=False, "
        "Tensor? x_rowptr=None, Tensor? x_col=None, Tensor? x_val=None, int n_in=0) "
        "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(snntorch_sparse, CPU, m) {
  m.impl("rleaky_backward", &snntorch_sparse::rleaky_backward_cpu);
}
