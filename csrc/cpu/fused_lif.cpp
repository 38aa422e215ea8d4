// Fused CPU kernels of the Linear+LIF layer: one pass forward, one pass backward.
//
// Sparse sets are kept in CSR form over the T*B rows of a [T, B, N] tensor
// (row r = t*B + b, time-major, the order of a coalesced COO index):
//   rowptr int64 [T*B + 1], col int32 [nnz] (+ one value per entry).
//
// lif_fused_forward: per row, the input current (given, from a GEMM, or summed
// event by event from the input's CSR: I[r] = b + sum_k x_k W^T[j_k]), the LIF
// update (same expression order as snntorch.Leaky and ops/reference.py), the
// dense spike output, and the CSR lists of the spikes and of the active set
// |U - theta| < bth[n] with U - theta per active entry -- one pass, no [T, B, N]
// temporary.
//
// lif_fused_backward: the adjoint scan h[t] = g[t] + beta h[t+1] (g non-zero on
// the active set and where dL/dU is given) runs per row and is consumed on
// the spot: db += h, dW^T[j] += x_k h for the input's events in that row,
// dX[r, j] = <h, W^T[j]> for the upstream layer's active entries in that row.
// h is never stored unless asked for (h_out). For layers of 64+ neurons the
// dW^T update is deferred over a block of rows (~256 KiB of h) and done column
// by column (DwBlock): same sums in the same order, each dW^T row touched once
// per block instead of once per event (the update is bound by L2 traffic).
//
// Parallel over batch ranges (each range walks all T steps). Per-range lists
// and dW^T copies are merged at the end in range order: deterministic for a
// given thread count.
#include <ATen/Parallel.h>
#include <ATen/Dispatch.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "../ops.h"
#include "dw_copies.h"
#include "row_kernels.h"

namespace snntorch_sparse {
namespace {

// Row length of N elements rounded up to whole 64-byte cache lines.
int64_t padded_row_length(int64_t N, at::ScalarType dtype) {
  const int64_t per_line = 64 / static_cast<int64_t>(at::elementSize(dtype));
  return (N + per_line - 1) / per_line * per_line;
}

// rows x ld elements starting on a 64-byte boundary (std::vector only
// guarantees 16): with ld = padded_row_length no row straddles a cache line
// more than it must.
template <typename T>
struct AlignedRows {
  std::vector<T> mem;
  T* data = nullptr;
  void assign(int64_t rows, int64_t ld, T value) {
    mem.assign(rows * ld + 64 / sizeof(T), value);
    data = reinterpret_cast<T*>((reinterpret_cast<uintptr_t>(mem.data()) + 63) & ~uintptr_t(63));
  }
};

// Time chunk of the forward's GEMM on CPU (densified input and current, each): small
// enough to stay in the last-level cache, large enough for full-speed GEMMs.
constexpr int64_t kCpuChunkBytes = int64_t{4} << 20;

// Batch ranges: one per thread (at most B).
std::vector<int64_t> batch_ranges(int64_t B) {
  const int64_t n = std::max<int64_t>(1, std::min<int64_t>(B, at::get_num_threads()));
  std::vector<int64_t> edges(n + 1);
  for (int64_t i = 0; i <= n; ++i) edges[i] = B * i / n;
  return edges;
}

// Growable list written without bounds checks inside a row: reserve(N) first.
template <typename V>
struct List {
  std::vector<V> data;
  int64_t size = 0;
  void reserve_more(int64_t n) {
    if (size + n > static_cast<int64_t>(data.size()))
      data.resize(std::max<int64_t>(2 * data.size(), size + n + 1024));
  }
};

void check_csr(const char* op, const char* name, const at::Tensor& rowptr, const at::Tensor& col,
               int64_t rows, int64_t cols) {
  TORCH_CHECK(rowptr.dim() == 1 && rowptr.scalar_type() == at::kLong && rowptr.numel() == rows + 1,
              op, ": ", name, "_rowptr must be int64 [", rows + 1, "], got ", rowptr.scalar_type(),
              " ", rowptr.sizes());
  TORCH_CHECK(col.dim() == 1 && col.scalar_type() == at::kInt, op, ": ", name,
              "_col must be a 1-D int32 tensor, got ", col.scalar_type(), " ", col.sizes());
  TORCH_CHECK(rowptr.is_contiguous() && col.is_contiguous(), op, ": ", name, " CSR must be contiguous");
  const int64_t* rp = rowptr.const_data_ptr<int64_t>();
  TORCH_CHECK(rp[0] == 0 && rp[rows] == col.numel(), op, ": ", name, "_rowptr must start at 0 and end at ",
              col.numel(), ", got ", rp[0], " .. ", rp[rows]);
  bool monotone = true;
  for (int64_t r = 0; r < rows; ++r) monotone &= rp[r] <= rp[r + 1];
  TORCH_CHECK(monotone, op, ": ", name, "_rowptr must be non-decreasing");
  // Range of the column indices: one unsigned max per chunk in parallel
  // (negative indices wrap to huge values), vectorised; the offending entry is
  // looked up only on failure.
  const int32_t* cp = col.const_data_ptr<int32_t>();
  const int64_t K = col.numel();
  if (K == 0) return;
  const int64_t nch = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), K / 65536 + 1));
  std::vector<uint32_t> maxes(nch, 0);
  at::parallel_for(0, nch, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const uint32_t* u = reinterpret_cast<const uint32_t*>(cp);
      uint32_t m = 0;
      for (int64_t k = K * c / nch; k < K * (c + 1) / nch; ++k) m = std::max(m, u[k]);
      maxes[c] = m;
    }
  });
  if (*std::max_element(maxes.begin(), maxes.end()) >= static_cast<uint64_t>(cols)) {
    const int32_t* bad = std::find_if(cp, cp + K, [cols](int32_t c) { return c < 0 || c >= cols; });
    TORCH_CHECK(false, op, ": ", name, "_col entry ", *bad, " out of range [0, ", cols, ")");
  }
}

template <typename T>
inline void decay_row(T* acc, const T* prev, const T* __restrict__ be, int64_t N) {
  for (int64_t i = 0; i < N; ++i) acc[i] = be[i] * prev[i];
}

// acc = beta * prev and db += acc in one pass (acc may be prev).
template <typename T>
inline void decay_row_sum(T* acc, const T* prev, const T* __restrict__ be, T* __restrict__ db, int64_t N) {
  for (int64_t i = 0; i < N; ++i) {
    const T a = be[i] * prev[i];
    acc[i] = a;
    db[i] += a;
  }
}

template <typename T>
inline void scan_row(T* __restrict__ acc, const T* __restrict__ g, const T* __restrict__ be,
                     const bool* __restrict__ spk, int64_t N) {
  if (spk != nullptr) {
    for (int64_t i = 0; i < N; ++i) {
      const T prev = acc[i] * static_cast<T>(!spk[i]);
      const T a = be[i] * prev;
      acc[i] = g[i] + a;
    }
  } else {
    for (int64_t i = 0; i < N; ++i) {
      const T a = be[i] * acc[i];
      acc[i] = g[i] + a;
    }
  }
}

template <typename T>
inline void add_row(T* __restrict__ dst, const T* __restrict__ src, int64_t N) {
  for (int64_t i = 0; i < N; ++i) dst[i] += src[i];
}

template <typename T>
inline void axpy_row(T* __restrict__ dst, T x, const T* __restrict__ src, int64_t N) {
  for (int64_t i = 0; i < N; ++i) dst[i] += x * src[i];
}

// Concatenate per-range lists into row order. cnt[r] is the number of entries
// of row r; range c holds rows (t, b) for b in [edges[c], edges[c+1]) in (t, b) order.
template <typename V>
void gather_rows(const std::vector<List<V>>& lists, const std::vector<int64_t>& edges,
                 const int64_t* rowptr, int64_t Tn, int64_t B, V* out) {
  const int64_t nr = static_cast<int64_t>(lists.size());
  at::parallel_for(0, nr, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const V* src = lists[c].data.data();
      int64_t pos = 0;
      for (int64_t t = 0; t < Tn; ++t)
        for (int64_t b = edges[c]; b < edges[c + 1]; ++b) {
          const int64_t r = t * B + b, n = rowptr[r + 1] - rowptr[r];
          std::copy(src + pos, src + pos + n, out + rowptr[r]);
          pos += n;
        }
    }
  });
}

at::Tensor prefix_rowptr(const std::vector<int64_t>& cnt, const at::TensorOptions& opts) {
  auto rowptr = at::empty({static_cast<int64_t>(cnt.size()) + 1}, opts.dtype(at::kLong));
  int64_t* rp = rowptr.mutable_data_ptr<int64_t>();
  rp[0] = 0;
  for (size_t r = 0; r < cnt.size(); ++r) rp[r + 1] = rp[r] + cnt[r];
  return rowptr;
}

}  // namespace

// ---------------------------------------------------------------- dense_to_csr

std::tuple<at::Tensor, at::Tensor, at::Tensor> dense_to_csr_cpu(const at::Tensor& x_) {
  TORCH_CHECK(x_.dim() == 2, "dense_to_csr: x must be [R, N], got ", x_.sizes());
  TORCH_CHECK(x_.size(1) < (int64_t{1} << 31), "dense_to_csr: N must fit in int32, got ", x_.size(1));
  const auto x = x_.contiguous();
  const int64_t R = x.size(0), N = x.size(1);
  std::vector<int64_t> cnt(R);
  at::Tensor rowptr, col, val;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dense_to_csr_cpu", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const int64_t nch = std::max<int64_t>(1, std::min<int64_t>(R, at::get_num_threads()));
    std::vector<List<int32_t>> cols(nch);
    std::vector<List<scalar_t>> vals(nch);
    at::parallel_for(0, nch, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        for (int64_t r = R * c / nch; r < R * (c + 1) / nch; ++r) {
          auto& lc = cols[c];
          auto& lv = vals[c];
          lc.reserve_more(N);
          lv.reserve_more(N);
          int32_t* cp = lc.data.data() + lc.size;
          scalar_t* vp = lv.data.data() + lv.size;
          const scalar_t* row = xp + r * N;
          const int64_t m = compact_nonzero<scalar_t>(row, cp, vp, N);
          cnt[r] = m;
          lc.size += m;
          lv.size += m;
        }
      }
    });
    rowptr = prefix_rowptr(cnt, x.options());
    const int64_t nnz = rowptr.const_data_ptr<int64_t>()[R];
    col = at::empty({nnz}, x.options().dtype(at::kInt));
    val = at::empty({nnz}, x.options());
    std::vector<int64_t> offset(nch + 1, 0);  // ranges are contiguous row blocks
    for (int64_t c = 0; c < nch; ++c) offset[c + 1] = offset[c] + cols[c].size;
    int32_t* col_out = col.mutable_data_ptr<int32_t>();
    scalar_t* val_out = val.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, nch, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        std::copy(cols[c].data.data(), cols[c].data.data() + cols[c].size, col_out + offset[c]);
        std::copy(vals[c].data.data(), vals[c].data.data() + vals[c].size, val_out + offset[c]);
      }
    });
  });
  return {rowptr, col, val};
}

// ----------------------------------------------------------- lif_fused_forward

namespace {
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> lif_fused_forward_csr(
    const std::optional<at::Tensor>& current_, const std::optional<at::Tensor>& x_rowptr_,
    const std::optional<at::Tensor>& x_col_, const std::optional<at::Tensor>& x_val_,
    const std::optional<at::Tensor>& weight_, const std::optional<at::Tensor>& bias_,
    const at::Tensor& beta_, const at::Tensor& threshold_, int64_t reset_mode, const at::Tensor& bth_,
    bool event, int64_t T_, int64_t B_, const std::optional<at::Tensor>& spk_out_,
    const std::optional<at::Tensor>& mem_out_, bool need_spike_csr, bool need_active,
    const std::optional<at::Tensor>& capacity) {
  const char* op = "lif_fused_forward";
  TORCH_CHECK(T_ >= 0 && B_ >= 0, op, ": T and B must be >= 0, got ", T_, ", ", B_);
  TORCH_CHECK(beta_.dim() == 1, op, ": beta must be [N], got ", beta_.sizes());
  const int64_t Tn = T_, B = B_, N = beta_.numel(), R = Tn * B;
  // Without spk_out the spikes are not written densely: only their CSR (need_spike_csr).
  const bool has_spk = spk_out_.has_value() && spk_out_->defined();
  // the output's shape, dtype and device, checked like spk_out (an element-free view when there is none)
  const auto like = has_spk ? *spk_out_ : at::empty({1}, beta_.options()).expand({Tn, B, N});
  if (has_spk)
    TORCH_CHECK(spk_out_->dim() == 3 && spk_out_->is_contiguous() && spk_out_->size(0) == Tn &&
                    spk_out_->size(1) == B && spk_out_->size(2) == N,
                op, ": spk_out must be a contiguous [T, B, N] = [", Tn, ", ", B, ", ", N, "] tensor, got ",
                spk_out_->sizes());
  TORCH_CHECK(has_spk || need_spike_csr, op, ": without spk_out the spikes must be returned as CSR (need_spike_csr)");
  capacity_hint(op, capacity);  // checked only: the CPU lists grow as they fill
  check_scan_args(op, like, beta_, reset_mode);
  TORCH_CHECK(threshold_.dim() == 1 && threshold_.numel() == N &&
                  threshold_.scalar_type() == like.scalar_type(),
              op, ": threshold must be [N] of the output's dtype, got ", threshold_.scalar_type(), " ",
              threshold_.sizes());
  TORCH_CHECK(N < (int64_t{1} << 31), op, ": N must fit in int32");
  TORCH_CHECK(bth_.dim() == 1 && bth_.numel() == N && bth_.scalar_type() == like.scalar_type(), op,
              ": bth must be [N] window half-widths of the output's dtype, got ", bth_.scalar_type(), " ",
              bth_.sizes());
  const bool has_mem = mem_out_.has_value() && mem_out_->defined() && mem_out_->numel() > 0;
  if (has_mem)
    TORCH_CHECK(mem_out_->sizes() == like.sizes() && mem_out_->is_contiguous() &&
                    mem_out_->scalar_type() == like.scalar_type(),
                op, ": mem_out must be a contiguous [T, B, N] tensor of the output's dtype, got ",
                mem_out_->sizes());
  const bool has_current = current_.has_value() && current_->defined();
  at::Tensor current, wt, bias, x_rowptr, x_col, x_val;
  int64_t Ni = 0;
  if (has_current) {
    TORCH_CHECK(current_->sizes() == like.sizes() && current_->scalar_type() == like.scalar_type(),
                op, ": current must be [T, B, N] like spk_out, got ", current_->sizes());
    current = current_->contiguous();
  } else {
    TORCH_CHECK(weight_.has_value() && x_rowptr_.has_value() && x_col_.has_value(), op,
                ": without current, weight and the input CSR (x_rowptr, x_col) are required");
    TORCH_CHECK(weight_->dim() == 2 && weight_->size(0) == N &&
                    weight_->scalar_type() == like.scalar_type(),
                op, ": weight must be [N, N_in] with N = ", N, " of the output's dtype, got ",
                weight_->scalar_type(), " ", weight_->sizes());
    Ni = weight_->size(1);
    if (event) wt = weight_->t().contiguous();  // [N_in, N]: one contiguous row per input feature
    x_rowptr = x_rowptr_->contiguous();
    x_col = x_col_->contiguous();
    check_csr(op, "x", x_rowptr, x_col, R, Ni);
    if (x_val_.has_value() && x_val_->defined()) {
      TORCH_CHECK(x_val_->numel() == x_col.numel() && x_val_->scalar_type() == like.scalar_type(), op,
                  ": x_val must be [nnz] of the output's dtype, got ", x_val_->scalar_type(), " ",
                  x_val_->sizes());
      x_val = x_val_->contiguous();
    }
    if (bias_.has_value() && bias_->defined()) {
      TORCH_CHECK(bias_->numel() == N && bias_->scalar_type() == like.scalar_type(), op,
                  ": bias must be [N] of the output's dtype, got ", bias_->sizes());
      bias = bias_->contiguous();
    }
  }
  const auto beta = beta_.contiguous();
  const auto thr = threshold_.contiguous();
  const auto win = bth_.contiguous();
  if (R == 0 || N == 0) {  // nothing to scan: empty sets over R rows
    const auto zl = at::zeros({R + 1}, beta_.options().dtype(at::kLong));
    const auto ei = at::empty({0}, beta_.options().dtype(at::kInt));
    const auto el = at::empty({0}, beta_.options().dtype(at::kLong));
    return {need_spike_csr ? zl : el, ei, need_active ? zl.clone() : el, ei.clone(),
            at::empty({0}, beta_.options())};
  }
  const auto edges = batch_ranges(B);
  const int64_t nch = static_cast<int64_t>(edges.size()) - 1;
  std::vector<int64_t> spk_cnt(need_spike_csr ? R : 0), act_cnt(need_active ? R : 0);
  at::Tensor spk_rowptr, spk_col, act_rowptr, act_col, act_shift;

  AT_DISPATCH_FLOATING_TYPES(like.scalar_type(), "lif_fused_forward_cpu", [&] {
    using T = scalar_t;
    const T* cur = has_current ? current.const_data_ptr<T>() : nullptr;
    const T* wtp = wt.defined() ? wt.const_data_ptr<T>() : nullptr;
    const T* bp = bias.defined() ? bias.const_data_ptr<T>() : nullptr;
    const int64_t* xr = has_current ? nullptr : x_rowptr.const_data_ptr<int64_t>();
    const int32_t* xc = has_current ? nullptr : x_col.const_data_ptr<int32_t>();
    const T* xv = x_val.defined() ? x_val.const_data_ptr<T>() : nullptr;
    const T* be = beta.const_data_ptr<T>();
    const T* th = thr.const_data_ptr<T>();
    T* sp = has_spk ? spk_out_->mutable_data_ptr<T>() : nullptr;
    T* mp = has_mem ? mem_out_->mutable_data_ptr<T>() : nullptr;
    const T* wn = win.const_data_ptr<T>();
    std::vector<List<int32_t>> s_cols(nch), a_cols(nch);
    std::vector<List<T>> a_vals(nch);

    // Current by GEMM without a given one: time chunks of whole steps, at most kCpuChunkBytes
    // each of densified input and of current; the membranes (one per batch range) carry over.
    const bool gemm = !has_current && !event;
    const int64_t step_bytes = B * std::max(Ni, N) * static_cast<int64_t>(sizeof(T));
    const int64_t Tc = gemm ? std::max<int64_t>(1, std::min<int64_t>(Tn, kCpuChunkBytes / std::max<int64_t>(1, step_bytes)))
                            : Tn;
    at::Tensor xbuf, cbuf, wgt;
    if (gemm) {
      xbuf = at::empty({Tc * B, Ni}, beta_.options());
      cbuf = at::empty({Tc * B, N}, beta_.options());
      wgt = weight_->t();
    }
    std::vector<std::vector<T>> states(nch);
    for (int64_t c = 0; c < nch; ++c) states[c].assign((edges[c + 1] - edges[c]) * N, T(0));
    for (int64_t t0 = 0; t0 < Tn; t0 += Tc) {
    const int64_t t1 = std::min(Tn, t0 + Tc);
    const T* chunk = cur;  // current of row r at chunk + (r - r_base) * N
    int64_t r_base = 0;
    if (gemm) {
      const int64_t r0 = t0 * B, r1 = t1 * B;
      auto xcb = xbuf.narrow(0, 0, r1 - r0);
      auto ccb = cbuf.narrow(0, 0, r1 - r0);
      T* xd = xcb.mutable_data_ptr<T>();
      at::parallel_for(r0, r1, 64, [&](int64_t q0, int64_t q1) {
        for (int64_t r = q0; r < q1; ++r) {
          T* row = xd + (r - r0) * Ni;
          std::fill(row, row + Ni, T(0));
          for (int64_t k = xr[r]; k < xr[r + 1]; ++k) row[xc[k]] = xv ? xv[k] : T(1);
        }
      });
      if (bias.defined()) at::addmm_out(ccb, bias, xcb, wgt);
      else at::mm_out(ccb, xcb, wgt);
      chunk = ccb.const_data_ptr<T>();
      r_base = r0;
    }
    at::parallel_for(0, nch, 1, [&](int64_t c0, int64_t c1) {
      std::vector<T> ibuf(N), sbuf(sp ? 0 : N);  // sbuf: this row's spikes when not written densely
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t b0 = edges[c], b1 = edges[c + 1];
        std::vector<T>& state = states[c];
        for (int64_t t = t0; t < t1; ++t) {
          for (int64_t b = b0; b < b1; ++b) {
            const int64_t r = t * B + b;
            const T* I;
            if (chunk != nullptr) {
              I = chunk + (r - r_base) * N;
            } else {
              row_sum<T>(ibuf.data(), bp, wtp, xc, xv, xr[r], xr[r + 1], N);
              I = ibuf.data();
            }
            T* u = state.data() + (b - b0) * N;
            T* s = sp ? sp + r * N : sbuf.data();
            T* m = mp ? mp + r * N : nullptr;
            if (reset_mode == 0) lif_row<T, 0>(u, I, be, th, s, N);
            else if (reset_mode == 1) lif_row<T, 1>(u, I, be, th, s, N);
            else lif_row<T, 2>(u, I, be, th, s, N);
            if (m) std::copy(u, u + N, m);
            if (need_spike_csr) {
              auto& l = s_cols[c];
              l.reserve_more(N);
              const int64_t q = compact_nonzero<T>(s, l.data.data() + l.size, nullptr, N);
              l.size += q;
              spk_cnt[r] = q;
            }
            if (need_active) {
              auto& l = a_cols[c];
              auto& lv = a_vals[c];
              l.reserve_more(N);
              lv.reserve_more(N);
              const int64_t q = compact_window<T>(u, th, wn, l.data.data() + l.size,
                                                  lv.data.data() + lv.size, N);
              l.size += q;
              lv.size += q;
              act_cnt[r] = q;
            }
          }
        }
      }
    });

    }  // time chunks

    if (need_spike_csr) {
      spk_rowptr = prefix_rowptr(spk_cnt, beta_.options());
      spk_col = at::empty({spk_rowptr.const_data_ptr<int64_t>()[R]}, beta_.options().dtype(at::kInt));
      gather_rows<int32_t>(s_cols, edges, spk_rowptr.const_data_ptr<int64_t>(), Tn, B,
                           spk_col.mutable_data_ptr<int32_t>());
    }
    if (need_active) {
      act_rowptr = prefix_rowptr(act_cnt, beta_.options());
      const int64_t K = act_rowptr.const_data_ptr<int64_t>()[R];
      act_col = at::empty({K}, beta_.options().dtype(at::kInt));
      act_shift = at::empty({K}, beta_.options());
      gather_rows<int32_t>(a_cols, edges, act_rowptr.const_data_ptr<int64_t>(), Tn, B,
                           act_col.mutable_data_ptr<int32_t>());
      gather_rows<T>(a_vals, edges, act_rowptr.const_data_ptr<int64_t>(), Tn, B,
                     act_shift.mutable_data_ptr<T>());
    }
  });
  const auto empty_l = at::empty({0}, beta_.options().dtype(at::kLong));
  const auto empty_i = at::empty({0}, beta_.options().dtype(at::kInt));
  if (!need_spike_csr) spk_rowptr = empty_l, spk_col = empty_i;
  if (!need_active) act_rowptr = empty_l, act_col = empty_i, act_shift = at::empty({0}, beta_.options());
  return {spk_rowptr, spk_col, act_rowptr, act_col, act_shift};
}

}  // namespace

// x_dense (the input as a dense [T*B, N_in] tensor instead of its CSR): the CPU kernels
// read events, so its CSR is taken here (CUDA's GEMMs read the dense rows themselves).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> lif_fused_forward_cpu(
    const std::optional<at::Tensor>& current, const std::optional<at::Tensor>& x_rowptr,
    const std::optional<at::Tensor>& x_col, const std::optional<at::Tensor>& x_val,
    const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& bias, const at::Tensor& beta,
    const at::Tensor& threshold, int64_t reset_mode, const at::Tensor& bth, bool event, int64_t T, int64_t B,
    const std::optional<at::Tensor>& spk_out, const std::optional<at::Tensor>& mem_out, bool need_spike_csr,
    bool need_active, const std::optional<at::Tensor>& capacity, const std::optional<at::Tensor>& x_dense) {
  const bool has_csr = x_rowptr.has_value() && x_rowptr->defined();
  const bool has_current = current.has_value() && current->defined();
  if (has_current || has_csr || !x_dense.has_value() || !x_dense->defined())
    return lif_fused_forward_csr(current, x_rowptr, x_col, x_val, weight, bias, beta, threshold, reset_mode, bth,
                                 event, T, B, spk_out, mem_out, need_spike_csr, need_active, capacity);
  TORCH_CHECK(weight.has_value() && weight->defined() && weight->dim() == 2, "lif_fused_forward: x_dense needs weight");
  const auto xd = dense_input("lif_fused_forward", x_dense, T * B, weight->size(1), beta.scalar_type(), beta.device());
  const auto [rp, col, val] = dense_to_csr_cpu(xd);
  return lif_fused_forward_csr(current, rp, col, val, weight, bias, beta, threshold, reset_mode, bth, event, T, B,
                               spk_out, mem_out, need_spike_csr, need_active, capacity);
}

// ---------------------------------------------------------- lif_fused_backward

namespace {
std::tuple<at::Tensor, at::Tensor> lif_fused_backward_csr(
    const at::Tensor& act_rowptr_, const at::Tensor& act_col_, const at::Tensor& act_sg_,
    const std::optional<at::Tensor>& d_spk_, const std::optional<at::Tensor>& d_mem_,
    const at::Tensor& beta_, const std::optional<at::Tensor>& spk_, int64_t reset_mode,
    const std::optional<at::Tensor>& x_rowptr_, const std::optional<at::Tensor>& x_col_,
    const std::optional<at::Tensor>& x_val_, const std::optional<at::Tensor>& weight_,
    const std::optional<at::Tensor>& up_rowptr_, const std::optional<at::Tensor>& up_col_,
    const std::optional<at::Tensor>& dx_out_, const std::optional<at::Tensor>& h_out_,
    int64_t T_, int64_t B_, int64_t in_features, bool need_dw, bool need_db, bool d_spk_compact,
    bool dx_compact) {
  const char* op = "lif_fused_backward";
  const auto dtype = act_sg_.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, op, ": only float32 and float64, got ", dtype);
  TORCH_CHECK(T_ >= 0 && B_ >= 0, op, ": T and B must be >= 0");
  TORCH_CHECK(beta_.dim() == 1 && beta_.scalar_type() == dtype, op, ": beta must be [N] of dtype ", dtype);
  TORCH_CHECK(reset_mode >= 0 && reset_mode <= 2, op, ": reset_mode must be 0, 1 or 2, got ", reset_mode);
  const int64_t Tn = T_, B = B_, N = beta_.numel(), R = Tn * B, Ni = in_features;
  const auto act_rowptr = act_rowptr_.contiguous();
  const auto act_col = act_col_.contiguous();
  const auto act_sg = act_sg_.contiguous();
  check_csr(op, "act", act_rowptr, act_col, R, N);
  TORCH_CHECK(act_sg.numel() == act_col.numel(), op, ": act_sg must be [K] like act_col");
  auto dense_arg = [&](const std::optional<at::Tensor>& t, const char* name) -> at::Tensor {
    if (!t.has_value() || !t->defined()) return at::Tensor();
    TORCH_CHECK(t->numel() == R * N && t->scalar_type() == dtype, op, ": ", name,
                " must have T*B*N = ", R * N, " elements of dtype ", dtype, ", got ", t->scalar_type(),
                " ", t->sizes());
    return t->contiguous();
  };
  at::Tensor d_spk;
  if (d_spk_compact) {
    TORCH_CHECK(d_spk_.has_value() && d_spk_->defined() && d_spk_->numel() == act_col.numel() &&
                    d_spk_->scalar_type() == dtype, op, ": a compact d_spk must have one value per active entry (",
                act_col.numel(), ") of dtype ", dtype);
    d_spk = d_spk_->contiguous();
  } else {
    d_spk = dense_arg(d_spk_, "d_spk");
  }
  const auto d_mem = dense_arg(d_mem_, "d_mem");
  at::Tensor spk;
  if (reset_mode == 1) {
    TORCH_CHECK(spk_.has_value() && spk_->defined() && spk_->numel() == R * N, op,
                ": spk [T, B, N] is required for reset_mode 1");
    spk = spikes_as_bool(*spk_);
  }
  at::Tensor h_out;
  if (h_out_.has_value() && h_out_->defined()) {
    TORCH_CHECK(h_out_->numel() == R * N && h_out_->is_contiguous() && h_out_->scalar_type() == dtype, op,
                ": h_out must be contiguous with T*B*N elements of dtype ", dtype);
    h_out = *h_out_;
  }
  const bool need_w = need_dw || (up_rowptr_.has_value() && up_rowptr_->defined());
  at::Tensor wt, x_rowptr, x_col, x_val, up_rowptr, up_col, dx_out;
  int64_t wt_ld = N;
  if (need_w) {
    TORCH_CHECK(weight_.has_value() && weight_->defined() && weight_->dim() == 2 &&
                    weight_->size(0) == N && weight_->size(1) == Ni && weight_->scalar_type() == dtype,
                op, ": weight must be [", N, ", ", Ni, "] of dtype ", dtype);
  }
  if (up_rowptr_.has_value() && up_rowptr_->defined()) {
    // W^T [Ni, N] for the input-gradient dot products, rows padded to whole
    // 64-byte lines: the AVX-512 dots load one W^T row per entry, and a row
    // straddling cache lines costs a split load per vector.
    wt_ld = padded_row_length(N, dtype);
    wt = at::empty({Ni, wt_ld}, weight_->options());
    wt.narrow(1, 0, N).copy_(weight_->t());
  }
  if (need_dw) {
    TORCH_CHECK(x_rowptr_.has_value() && x_col_.has_value(), op, ": need_dw requires the input CSR");
    x_rowptr = x_rowptr_->contiguous();
    x_col = x_col_->contiguous();
    check_csr(op, "x", x_rowptr, x_col, R, Ni);
    if (x_val_.has_value() && x_val_->defined()) {
      TORCH_CHECK(x_val_->numel() == x_col.numel() && x_val_->scalar_type() == dtype, op,
                  ": x_val must be [nnz] of dtype ", dtype);
      x_val = x_val_->contiguous();
    }
  }
  if (up_rowptr_.has_value() && up_rowptr_->defined()) {
    TORCH_CHECK(up_col_.has_value() && dx_out_.has_value() && dx_out_->defined(), op,
                ": up_rowptr needs up_col and dx_out");
    up_rowptr = up_rowptr_->contiguous();
    up_col = up_col_->contiguous();
    check_csr(op, "up", up_rowptr, up_col, R, Ni);
    const int64_t want = dx_compact ? up_col.numel() : R * Ni;
    TORCH_CHECK(dx_out_->numel() == want && dx_out_->is_contiguous() && dx_out_->scalar_type() == dtype, op,
                ": dx_out must be contiguous with ", want, dx_compact ? " (one per upstream active entry)" :
                " (T*B*N_in)", " elements of dtype ", dtype, ", got ", dx_out_->numel());
    dx_out = *dx_out_;
  }

  const auto beta = beta_.contiguous();
  auto opts = act_sg.options();
  at::Tensor dw = need_dw ? at::empty({N, Ni}, opts) : at::empty({0}, opts);
  at::Tensor db = need_db ? at::empty({N}, opts) : at::empty({0}, opts);
  if (R == 0 || N == 0) {  // no rows: zero gradients
    dw.zero_();
    db.zero_();
    return {dw, db};
  }
  const auto edges = batch_ranges(B);
  const int64_t nch = static_cast<int64_t>(edges.size()) - 1;
  AT_DISPATCH_FLOATING_TYPES(dtype, "lif_fused_backward_cpu", [&] {
    using T = scalar_t;
    const int64_t* ar = act_rowptr.const_data_ptr<int64_t>();
    const int32_t* ac = act_col.const_data_ptr<int32_t>();
    const T* sg = act_sg.const_data_ptr<T>();
    const T* ds = d_spk.defined() ? d_spk.const_data_ptr<T>() : nullptr;
    const T* dm = d_mem.defined() ? d_mem.const_data_ptr<T>() : nullptr;
    const bool* sk = spk.defined() ? spk.const_data_ptr<bool>() : nullptr;
    const T* be = beta.const_data_ptr<T>();
    const T* wtp = wt.defined() ? wt.const_data_ptr<T>() : nullptr;
    const int64_t* xr = x_rowptr.defined() ? x_rowptr.const_data_ptr<int64_t>() : nullptr;
    const int32_t* xc = x_col.defined() ? x_col.const_data_ptr<int32_t>() : nullptr;
    const T* xv = x_val.defined() ? x_val.const_data_ptr<T>() : nullptr;
    const int64_t* ur = up_rowptr.defined() ? up_rowptr.const_data_ptr<int64_t>() : nullptr;
    const int32_t* uc = up_col.defined() ? up_col.const_data_ptr<int32_t>() : nullptr;
    T* dxp = dx_out.defined() ? dx_out.mutable_data_ptr<T>() : nullptr;
    T* hp = h_out.defined() ? h_out.mutable_data_ptr<T>() : nullptr;
    std::vector<AlignedRows<T>> dwt(nch);
    std::vector<std::vector<T>> dbs(nch);

    // dW in blocks of rows grouped by input column (DwBlock) when a column has
    // on average at least one event per block; else one scatter per event.
    // Blocks of ~256 KiB of h (half this machine's L2; smaller and larger
    // blocks measured the same or slower); layers narrower than one 64-float
    // tile keep the per-event scatter, which measured faster there.
    const int64_t block_rows = std::max<int64_t>(1, (int64_t(256) << 10) / std::max<int64_t>(1, N * int64_t(sizeof(T))));
    const double events_per_row = need_dw && R > 0 ? double(xr[R]) / double(R) : 0.0;
    const bool grouped_dw = need_dw && N >= 64 && block_rows * events_per_row >= double(Ni);
    // dW^T copy rows padded to whole cache lines: aligned row updates, and the
    // per-event scatter's last vector is stored unmasked (see scatter_add_rows).
    const int64_t ldw = padded_row_length(N, dtype);

    at::parallel_for(0, nch, 1, [&](int64_t c0, int64_t c1) {
      std::vector<T> g(N);
      // h state per batch row and h rows of a block, 64-byte aligned (as W^T's)
      const int64_t ld = padded_row_length(N, dtype);
      AlignedRows<T> state, h_blk;
      DwBlock<T> blk;
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t b0 = edges[c], b1 = edges[c + 1], nb = b1 - b0;
        if (need_dw) dwt[c].assign(Ni, ldw, T(0));
        if (need_db) dbs[c].assign(N, T(0));
        T* __restrict__ dwl = need_dw ? dwt[c].data : nullptr;
        T* __restrict__ dbl = need_db ? dbs[c].data() : nullptr;
        const int64_t t_block = grouped_dw ? std::max<int64_t>(1, block_rows / std::max<int64_t>(1, nb)) : Tn;
        // h row of (t, b) in time slot t % t_block: a block's t_block steps take
        // distinct slots, and h[t_hi + 1] (zero before the first block) sits in
        // the slot of the block's last step t_lo, read before it is overwritten.
        if (grouped_dw) h_blk.assign(t_block * nb, ld, T(0));
        else state.assign(nb, ld, T(0));
        for (int64_t t_hi = Tn - 1; t_hi >= 0; t_hi -= t_block) {
          const int64_t t_lo = std::max<int64_t>(0, t_hi - t_block + 1);
          for (int64_t t = t_hi; t >= t_lo; --t) {
            for (int64_t b = b0; b < b1; ++b) {
              const int64_t r = t * B + b;
              // h[t] is written to acc from h[t+1] in prev: in place in the
              // state, or (grouped dW) straight into the block's h rows.
              T* acc;
              const T* prev;
              if (grouped_dw) {
                acc = h_blk.data + ((t % t_block) * nb + (b - b0)) * ld;
                prev = h_blk.data + (((t + 1) % t_block) * nb + (b - b0)) * ld;
              } else {
                acc = state.data + (b - b0) * ld;
                prev = acc;
              }
              bool db_done = false;
              if (dm == nullptr && sk == nullptr) {
                // h[t] = g[t] + beta h[t+1] with g zero off the active set:
                // scale, then add the active entries (the same sums, commuted).
                // db takes the scaled row in the same pass and the active g's after.
                if (dbl != nullptr) {
                  decay_row_sum<T>(acc, prev, be, dbl, N);
                  db_done = true;
                } else {
                  decay_row<T>(acc, prev, be, N);
                }
                if (ds != nullptr) {
                  const T* dsr = ds + r * N;
                  for (int64_t k = ar[r]; k < ar[r + 1]; ++k) {
                    const int32_t i = ac[k];
                    const T gk = (d_spk_compact ? ds[k] : dsr[i]) * sg[k];
                    acc[i] = gk + acc[i];
                    if (db_done) dbl[i] += gk;
                  }
                }
              } else if (ds == nullptr && sk == nullptr) {
                // only dL/dU (e.g. a readout's membrane loss): g[t] = 0 + dL/dU[t],
                // h[t] = g[t] + beta h[t+1] and db += h[t] in one pass (same sums)
                const T* __restrict__ dmr = dm + r * N;
                for (int64_t i = 0; i < N; ++i) {
                  const T a = be[i] * prev[i];
                  const T v = (T(0) + dmr[i]) + a;
                  acc[i] = v;
                  if (dbl != nullptr) dbl[i] += v;
                }
                db_done = dbl != nullptr;
              } else {
                // g[t] = dL/dS * sigma' on the active set, plus dL/dU where given
                // (the reference's order: zeros, active values, then + d_mem).
                if (dm != nullptr) {
                  const T* __restrict__ dmr = dm + r * N;
                  for (int64_t i = 0; i < N; ++i) g[i] = T(0) + dmr[i];
                } else {
                  std::fill(g.begin(), g.end(), T(0));
                }
                if (ds != nullptr) {
                  for (int64_t k = ar[r]; k < ar[r + 1]; ++k) {
                    const T gs = (d_spk_compact ? ds[k] : ds[r * N + ac[k]]) * sg[k];
                    g[ac[k]] = dm != nullptr ? gs + dm[r * N + ac[k]] : gs;
                  }
                }
                // h[t] = g[t] + beta * h[t+1]  (reset to zero: h[t+1] masked by S[t])
                if (prev != acc) std::copy(prev, prev + N, acc);
                scan_row<T>(acc, g.data(), be, sk ? sk + r * N : nullptr, N);
              }
              if (hp != nullptr) std::copy(acc, acc + N, hp + r * N);
              if (dbl != nullptr && !db_done) add_row<T>(dbl, acc, N);
              if (dwl != nullptr && !grouped_dw && xr[r + 1] > xr[r])
                scatter_add_rows<T>(dwl, acc, xc, xv, xr[r], xr[r + 1], N, ldw);
              if (dxp != nullptr) {
                if (dx_compact) {
                  dot_rows<T>(acc, wtp, uc, ur[r], ur[r + 1], N, wt_ld, dxp);
                } else {
                  T* dxr = dxp + r * Ni;
                  for (int64_t k = ur[r]; k < ur[r + 1]; ++k)
                    dxr[uc[k]] = dot_row<T>(acc, wtp + static_cast<int64_t>(uc[k]) * wt_ld, N);
                }
              }
            }
          }
          if (grouped_dw) blk.flush(dwl, h_blk.data, ld, t_block, xr, xc, xv, t_hi, t_lo, b0, b1, B, N, Ni, ldw);
        }
      }
    });

    if (need_dw) {
      std::vector<const T*> copies;
      for (const auto& c : dwt) copies.push_back(c.data);
      merge_transposed_copies<T>(copies, N, Ni, ldw, dw.mutable_data_ptr<T>());
    }
    if (need_db) {
      T* out = db.mutable_data_ptr<T>();
      for (int64_t i = 0; i < N; ++i) {
        T s = dbs[0][i];
        for (int64_t c = 1; c < nch; ++c) s += dbs[c][i];
        out[i] = s;
      }
    }
  });
  return {dw, db};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> lif_fused_backward_cpu(
    const at::Tensor& act_rowptr, const at::Tensor& act_col, const at::Tensor& act_sg,
    const std::optional<at::Tensor>& d_spk, const std::optional<at::Tensor>& d_mem, const at::Tensor& beta,
    const std::optional<at::Tensor>& spk, int64_t reset_mode, const std::optional<at::Tensor>& x_rowptr,
    const std::optional<at::Tensor>& x_col, const std::optional<at::Tensor>& x_val,
    const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& up_rowptr,
    const std::optional<at::Tensor>& up_col, const std::optional<at::Tensor>& dx_out,
    const std::optional<at::Tensor>& h_out, int64_t T, int64_t B, int64_t in_features, bool need_dw, bool need_db,
    bool d_spk_compact, bool dx_compact, const std::optional<at::Tensor>& x_dense) {
  const bool has_csr = x_rowptr.has_value() && x_rowptr->defined();
  if (!need_dw || has_csr || !x_dense.has_value() || !x_dense->defined())
    return lif_fused_backward_csr(act_rowptr, act_col, act_sg, d_spk, d_mem, beta, spk, reset_mode, x_rowptr, x_col,
                                  x_val, weight, up_rowptr, up_col, dx_out, h_out, T, B, in_features, need_dw,
                                  need_db, d_spk_compact, dx_compact);
  const auto xd = dense_input("lif_fused_backward", x_dense, T * B, in_features, act_sg.scalar_type(),
                              act_sg.device());
  const auto [rp, col, val] = dense_to_csr_cpu(xd);
  return lif_fused_backward_csr(act_rowptr, act_col, act_sg, d_spk, d_mem, beta, spk, reset_mode, rp, col, val, weight,
                                up_rowptr, up_col, dx_out, h_out, T, B, in_features, need_dw, need_db, d_spk_compact,
                                dx_compact);
}

// ---------------------------------------------------------------- csr_to_flat_

// out[k] = r * n_cols + col[k] for the k-th entry (row r) of a CSR set: the
// sorted flat indices of the set in a row-major [R, n_cols] tensor.
void csr_to_flat_cpu(const at::Tensor& rowptr_, const at::Tensor& col_, int64_t n_cols, at::Tensor& out) {
  const auto rowptr = rowptr_.contiguous();
  const auto col = col_.contiguous();
  TORCH_CHECK(rowptr.dim() == 1 && rowptr.scalar_type() == at::kLong && col.scalar_type() == at::kInt,
              "csr_to_flat_: rowptr must be int64 and col int32");
  const int64_t K = col.numel(), R = rowptr.numel() - 1;
  TORCH_CHECK(n_cols >= 0, "csr_to_flat_: n_cols must be >= 0, got ", n_cols);
  TORCH_CHECK(out.numel() == K && out.scalar_type() == at::kLong && out.is_contiguous(),
              "csr_to_flat_: out must be a contiguous int64 tensor of ", K, " elements, got ",
              out.scalar_type(), " ", out.sizes());
  TORCH_CHECK(R >= 0, "csr_to_flat_: rowptr must have at least one element");
  check_csr("csr_to_flat_", "", rowptr, col, R, n_cols);  // in-range writes below
  const int64_t* rp = rowptr.const_data_ptr<int64_t>();
  const int32_t* cp = col.const_data_ptr<int32_t>();
  int64_t* o = out.mutable_data_ptr<int64_t>();
  at::parallel_for(0, R, 4096, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t base = r * n_cols;
      for (int64_t k = rp[r]; k < rp[r + 1]; ++k) o[k] = base + cp[k];
    }
  });
}

}  // namespace snntorch_sparse
