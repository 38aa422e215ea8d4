// CPU kernels of one per-step LIF update (snntorch_sparse/step.py, LeakyStep):
//
//   leaky_step_forward   snnTorch's Leaky update of one time step in one pass
//                        (same operations in the same order as the PyTorch
//                        code in step.py, each rounded separately:
//                        -ffp-contract=off), bit-identical to it;
//   leaky_step_grad      the windowed surrogate gradient of one step,
//                        g = dL/dU + dL/dS * c * σ'(U - θ) * [|U - θ| < B],
//                        with, for the adaptive window, each neuron's
//                        half-width B_n and gain c_n taken from a strided
//                        subset of the rows exactly as
//                        surrogate.quantile_window / surrogate.mass_gain
//                        (selection, no arithmetic, for B_n; the gain's two
//                        sums run row by row in row order).
//
// Registered as a fragment of the snntorch_sparse library (see
// snntorch_sparse/_step_kernels.py for the Python side and the fallbacks).
#include <ATen/ATen.h>
#include <torch/library.h>
#include <ATen/Parallel.h>
#include <ATen/Dispatch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <type_traits>
#include <vector>

namespace snntorch_sparse {
namespace {

// σ'(x) of the surrogates with a closed form, written as the PyTorch
// expressions in surrogate.py evaluate them (one rounding per operation):
//   KIND 1: sparse_atan          (alpha/2) / (1 + (pi/2*alpha*x)^2)  = reciprocal(1 + y*y) * (alpha/2)
//   KIND 2: sparse_fast_sigmoid  1 / (slope*|x| + 1)^2                = reciprocal(u*u) * 1
// KIND 0: σ' is given (computed by PyTorch).
template <typename T, int KIND>
inline T derivative(T x, T p1, T p2) {
  if (KIND == 1) {
    const T y = x * p1;
    const T t = y * y + T(1);
    return (T(1) / t) * p2;
  }
  T u = p1 * std::abs(x);
  u = u + T(1);
  u = u * u;
  return (T(1) / u) * T(1);
}

// One link of the insertion chain: lq[j] keeps the smaller of (lq[j], cur[j]), cur[j] carries the larger on.
template <typename T>
inline void insert_step(T* __restrict__ lq, T* __restrict__ cur, int64_t nb) {
  for (int64_t j = 0; j < nb; ++j) {
    const T a = lq[j], v = cur[j];
    lq[j] = v < a ? v : a;
    cur[j] = v < a ? a : v;
  }
}

// The two sums of the gain over one sampled row: total += σ', kept += σ' inside the window.
template <typename T>
inline void gain_sums(const T* __restrict__ mi, const T* __restrict__ di, const T* __restrict__ w,
                      T* __restrict__ total, T* __restrict__ kept, int64_t nb) {
  for (int64_t j = 0; j < nb; ++j) {
    total[j] = total[j] + di[j];
    kept[j] = kept[j] + (mi[j] < w[j] ? di[j] : T(0));
  }
}

template <typename T, int KIND, bool TN>
void window_and_gain(const T* mem, const T* thr, const T* full, T p1, T p2, int64_t F, int64_t rows,
                     int64_t stride, int64_t k, T max_gain, T* window, T* gain) {
  const int64_t rs = (rows + stride - 1) / stride;   // rows of shift[::stride]
  const T t0 = thr[0];
  constexpr int64_t kBlock = 64;
  at::parallel_for(0, F, kBlock, [&](int64_t f0, int64_t f1) {
    std::vector<T> mag(static_cast<size_t>(kBlock * rs)), der(static_cast<size_t>(kBlock * rs));
    std::vector<T> low(static_cast<size_t>(kBlock * (std::min(k, rs) + 1)));
    T total[kBlock], kept[kBlock], w[kBlock], cur[kBlock];
    for (int64_t b0 = f0; b0 < f1; b0 += kBlock) {
      const int64_t nb = std::min(kBlock, f1 - b0);
      for (int64_t i = 0; i < rs; ++i) {          // the sampled rows of this block of features
        const T* s = mem + (i * stride) * F + b0;
        const T* tb = TN ? thr + b0 : thr;
        T* mi = mag.data() + i * nb;
        T* di = der.data() + i * nb;
        for (int64_t j = 0; j < nb; ++j) mi[j] = std::abs(s[j] - (TN ? tb[j] : t0));
        if (KIND == 0) {
          const T* d = full + (i * stride) * F + b0;
          for (int64_t j = 0; j < nb; ++j) di[j] = d[j];
        } else {
          for (int64_t j = 0; j < nb; ++j) di[j] = derivative<T, KIND>(s[j] - (TN ? tb[j] : t0), p1, p2);
        }
      }
      // B_n: a selection among the sampled |U - θ|. The k + 1 smallest of each
      // feature, kept sorted by a branch-free insertion (a min/max chain per
      // row, vectorised across the block's features); the k-th and (k+1)-th are
      // then exact copies of the entries torch.topk returns.
      if (k >= rs) {
        for (int64_t j = 0; j < nb; ++j) w[j] = mag[j];
        for (int64_t i = 1; i < rs; ++i) {
          const T* mi = mag.data() + i * nb;
          for (int64_t j = 0; j < nb; ++j) w[j] = mi[j] > w[j] ? mi[j] : w[j];
        }
        for (int64_t j = 0; j < nb; ++j) w[j] = std::nextafter(w[j], std::numeric_limits<T>::infinity());
      } else {
        std::fill(low.begin(), low.end(), std::numeric_limits<T>::infinity());
        for (int64_t i = 0; i < rs; ++i) {
          const T* mi = mag.data() + i * nb;
          for (int64_t j = 0; j < nb; ++j) cur[j] = mi[j];
          for (int64_t q = 0; q <= k; ++q) insert_step<T>(low.data() + q * kBlock, cur, nb);
        }
        const T* lv = low.data() + (k - 1) * kBlock;
        const T* ln = low.data() + k * kBlock;
        for (int64_t j = 0; j < nb; ++j) {
          const T v = lv[j], nxt = ln[j];
          const T mid = v + (nxt - v) / T(2);
          w[j] = mid > v ? mid : std::nextafter(v, std::numeric_limits<T>::infinity());
        }
      }
      for (int64_t j = 0; j < nb; ++j) {
        total[j] = T(0);
        kept[j] = T(0);
      }
      for (int64_t i = 0; i < rs; ++i)            // c_n: the two sums, row by row
        gain_sums<T>(mag.data() + i * nb, der.data() + i * nb, w, total, kept, nb);
      for (int64_t j = 0; j < nb; ++j) {
        const T kp = std::max(kept[j], std::numeric_limits<T>::min());
        const T c = total[j] / kp;
        window[b0 + j] = w[j];
        gain[b0 + j] = std::min(std::max(c, T(1)), max_gain);
      }
    }
  });
}

// One row of g = d_mem + d_spk * (gain *) [|x| < B] σ'(x); returns its active count.
template <typename T, int KIND, bool PW, bool GAIN, bool MEM, bool TN>
int64_t grad_row(const T* __restrict__ s, const T* __restrict__ tp, const T* __restrict__ full, T p1, T p2,
                 const T* __restrict__ ds, const T* __restrict__ dm, const T* __restrict__ w,
                 const T* __restrict__ gn, int64_t F, T* __restrict__ g) {
  using I = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  I active = 0;
  const T w0 = w[0];
  const T g0 = GAIN ? gn[0] : T(1);
  const T t0 = tp[0];
  for (int64_t f = 0; f < F; ++f) {
    const T x = s[f] - (TN ? tp[f] : t0);
    const bool in = std::abs(x) < (PW ? w[f] : w0);
    active += in ? I(1) : I(0);
    const T der = KIND == 0 ? full[f] : derivative<T, KIND>(x, p1, p2);
    T d = in ? der : T(0);
    if (GAIN) d = d * (PW ? gn[f] : g0);
    T v = ds[f] * d;
    if (MEM) v = dm[f] + v;
    g[f] = v;
  }
  return static_cast<int64_t>(active);
}

template <typename T, int KIND, bool PW, bool GAIN, bool MEM, bool TN>
int64_t grad_rows(const T* mem, const T* thr, const T* full, T p1, T p2, const T* d_spk, const T* d_mem,
                  const T* window, const T* gain, int64_t F, int64_t rows, T* g) {
  std::vector<int64_t> counts(static_cast<size_t>(rows), 0);
  at::parallel_for(0, rows, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t o = r * F;
      counts[r] = grad_row<T, KIND, PW, GAIN, MEM, TN>(mem + o, thr, KIND == 0 ? full + o : nullptr, p1, p2,
                                                       d_spk + o, MEM ? d_mem + o : nullptr, window, gain, F, g + o);
    }
  });
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  return total;
}

template <typename T, int KIND, bool TN>
int64_t grad_dispatch(bool pw, bool has_gain, bool has_mem, const T* mem, const T* thr, const T* full, T p1,
                      T p2, const T* d_spk, const T* d_mem, const T* window, const T* gain, int64_t F, int64_t rows,
                      T* g) {
#define SNN_GRAD(PW_, G_, M_) \
  return grad_rows<T, KIND, PW_, G_, M_, TN>(mem, thr, full, p1, p2, d_spk, d_mem, window, gain, F, rows, g)
  if (pw) {
    if (has_gain) { if (has_mem) SNN_GRAD(true, true, true); else SNN_GRAD(true, true, false); }
    if (has_mem) SNN_GRAD(true, false, true); else SNN_GRAD(true, false, false);
  }
  if (has_gain) { if (has_mem) SNN_GRAD(false, true, true); else SNN_GRAD(false, true, false); }
  if (has_mem) SNN_GRAD(false, false, true); else SNN_GRAD(false, false, false);
#undef SNN_GRAD
}

void check_2d(const char* name, const at::Tensor& t, const at::Tensor& like) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous() && t.scalar_type() == like.scalar_type()
                  && t.sizes() == like.sizes(),
              "leaky_step_grad: ", name, " must be a contiguous CPU tensor of shift's shape and dtype");
}

template <typename T, int KIND>
void window_for(bool tn, const T* mem, const T* thr, const T* full, T p1, T p2, int64_t F, int64_t rows,
                int64_t stride, int64_t k, T max_gain, T* window, T* gain) {
  if (tn) window_and_gain<T, KIND, true>(mem, thr, full, p1, p2, F, rows, stride, k, max_gain, window, gain);
  else window_and_gain<T, KIND, false>(mem, thr, full, p1, p2, F, rows, stride, k, max_gain, window, gain);
}

template <typename T, int KIND>
int64_t grad_for(bool tn, bool pw, bool has_gain, bool has_mem, const T* mem, const T* thr, const T* full, T p1,
                 T p2, const T* d_spk, const T* d_mem, const T* window, const T* gain, int64_t F, int64_t rows,
                 T* g) {
  if (tn)
    return grad_dispatch<T, KIND, true>(pw, has_gain, has_mem, mem, thr, full, p1, p2, d_spk, d_mem, window, gain,
                                        F, rows, g);
  return grad_dispatch<T, KIND, false>(pw, has_gain, has_mem, mem, thr, full, p1, p2, d_spk, d_mem, window, gain,
                                       F, rows, g);
}

// x = mem - threshold (threshold: 1 or F values; zero when mem already is U - θ).
// Returns (g [rows, F], window [F] or the given one, gain [F] or the given one / empty, n_active).
std::tuple<at::Tensor, at::Tensor, at::Tensor, int64_t> leaky_step_grad_cpu(
    const at::Tensor& mem, const at::Tensor& threshold, const std::optional<at::Tensor>& full_, int64_t kind,
    double p1, double p2, const at::Tensor& d_spk, const std::optional<at::Tensor>& d_mem_,
    const std::optional<at::Tensor>& window_, const std::optional<at::Tensor>& gain_, int64_t stride, int64_t k,
    double max_gain) {
  TORCH_CHECK(mem.dim() == 2 && mem.device().is_cpu() && mem.is_contiguous(),
              "leaky_step_grad: mem must be a contiguous CPU [rows, features] tensor");
  TORCH_CHECK(mem.scalar_type() == at::kFloat || mem.scalar_type() == at::kDouble,
              "leaky_step_grad: float32 or float64 only");
  const int64_t rows = mem.size(0), F = mem.size(1);
  const at::Tensor th = threshold.contiguous();
  TORCH_CHECK(th.scalar_type() == mem.scalar_type() && (th.numel() == 1 || th.numel() == F),
              "leaky_step_grad: threshold must hold 1 or F values of mem's dtype");
  const bool has_full = full_.has_value() && full_->defined();
  TORCH_CHECK(has_full || kind == 1 || kind == 2, "leaky_step_grad: give full or a closed-form kind (1, 2)");
  if (has_full) check_2d("full", *full_, mem);
  check_2d("d_spk", d_spk, mem);
  const bool has_mem = d_mem_.has_value() && d_mem_->defined();
  if (has_mem) check_2d("d_mem", *d_mem_, mem);
  TORCH_CHECK(stride >= 1, "leaky_step_grad: stride must be >= 1");
  const bool adaptive = !(window_.has_value() && window_->defined());
  at::Tensor window, gain;
  if (adaptive) {
    TORCH_CHECK(rows >= 1 && k >= 1, "leaky_step_grad: the adaptive window needs rows and k >= 1");
    window = at::empty({F}, mem.options());
    gain = at::empty({F}, mem.options());
  } else {
    window = window_->contiguous();
    TORCH_CHECK(window.scalar_type() == mem.scalar_type() && (window.numel() == 1 || window.numel() == F),
                "leaky_step_grad: window must hold 1 or F values of mem's dtype");
    if (gain_.has_value() && gain_->defined()) {
      gain = gain_->contiguous();
      TORCH_CHECK(gain.scalar_type() == mem.scalar_type() && (gain.numel() == 1 || gain.numel() == F),
                  "leaky_step_grad: gain must hold 1 or F values of mem's dtype");
    }
  }
  const bool pw = window.numel() == F && F != 1;
  TORCH_CHECK(!gain.defined() || gain.numel() == 1 || F == 1 || (gain.numel() == F) == pw,
              "leaky_step_grad: window and gain must both be per neuron or both scalar");
  const bool tn = th.numel() == F && F != 1;
  at::Tensor g = at::empty_like(mem);
  int64_t n_active = 0;
  AT_DISPATCH_FLOATING_TYPES(mem.scalar_type(), "leaky_step_grad", [&] {
    using T = scalar_t;
    const T* mp = mem.const_data_ptr<T>();
    const T* tp = th.const_data_ptr<T>();
    const T* fu = has_full ? full_->const_data_ptr<T>() : nullptr;
    const T a = static_cast<T>(p1), b = static_cast<T>(p2);
    const int64_t kd = has_full ? 0 : kind;
    if (adaptive) {
      T* wp = window.mutable_data_ptr<T>();
      T* gp = gain.mutable_data_ptr<T>();
      const T mg = static_cast<T>(max_gain);
      if (kd == 0) window_for<T, 0>(tn, mp, tp, fu, a, b, F, rows, stride, k, mg, wp, gp);
      else if (kd == 1) window_for<T, 1>(tn, mp, tp, fu, a, b, F, rows, stride, k, mg, wp, gp);
      else window_for<T, 2>(tn, mp, tp, fu, a, b, F, rows, stride, k, mg, wp, gp);
    }
    const T* ds = d_spk.const_data_ptr<T>();
    const T* dm = has_mem ? d_mem_->const_data_ptr<T>() : nullptr;
    const T* wp = window.const_data_ptr<T>();
    const T* gp = gain.defined() ? gain.const_data_ptr<T>() : nullptr;
    T* gout = g.mutable_data_ptr<T>();
    if (kd == 0)
      n_active = grad_for<T, 0>(tn, pw, gp != nullptr, has_mem, mp, tp, fu, a, b, ds, dm, wp, gp, F, rows, gout);
    else if (kd == 1)
      n_active = grad_for<T, 1>(tn, pw, gp != nullptr, has_mem, mp, tp, fu, a, b, ds, dm, wp, gp, F, rows, gout);
    else
      n_active = grad_for<T, 2>(tn, pw, gp != nullptr, has_mem, mp, tp, fu, a, b, ds, dm, wp, gp, F, rows, gout);
  });
  return {g, window, gain.defined() ? gain : at::empty({0}, mem.options()), n_active};
}

template <typename T, int MODE, bool BN, bool TN>
void forward_row(const T* __restrict__ x, const T* __restrict__ m, const T* __restrict__ bp,
                 const T* __restrict__ tp, int64_t F, T* __restrict__ s, T* __restrict__ u, T* __restrict__ pv) {
  const T b0 = bp[0], t0 = tp[0];
  for (int64_t f = 0; f < F; ++f) {
    const T be = BN ? bp[f] : b0, t = TN ? tp[f] : t0;
    const T mm = m[f];
    const T rf = (mm - t) > T(0) ? T(1) : T(0);
    T v;
    if (MODE == 0) {
      v = be * mm;
      v = v + x[f];
      v = v - rf * t;
    } else if (MODE == 1) {
      const T p = (T(1) - rf) * mm;
      pv[f] = p;
      v = be * p;
      v = v + x[f];
    } else {
      v = be * mm;
      v = v + x[f];
    }
    const T q = v - t;
    u[f] = v;
    s[f] = q > T(0) ? T(1) : T(0);
  }
}

template <typename T, bool TN>
void reset_row(const T* __restrict__ m, const T* __restrict__ tp, int64_t F, bool* __restrict__ r) {
  const T t0 = tp[0];
  for (int64_t f = 0; f < F; ++f) r[f] = (m[f] - (TN ? tp[f] : t0)) > T(0);
}

template <typename T, int MODE>
void forward_flags(bool bn, bool tn, const T* x, const T* m, const T* bp, const T* tp, int64_t F, T* s, T* u, T* p) {
  if (bn && tn) forward_row<T, MODE, true, true>(x, m, bp, tp, F, s, u, p);
  else if (bn) forward_row<T, MODE, true, false>(x, m, bp, tp, F, s, u, p);
  else if (tn) forward_row<T, MODE, false, true>(x, m, bp, tp, F, s, u, p);
  else forward_row<T, MODE, false, false>(x, m, bp, tp, F, s, u, p);
}

template <typename T>
void forward_dispatch(int64_t mode, bool bn, bool tn, const T* x, const T* m, const T* bp, const T* tp, int64_t F,
                      T* s, T* u, T* p) {
  if (mode == 0) forward_flags<T, 0>(bn, tn, x, m, bp, tp, F, s, u, p);
  else if (mode == 1) forward_flags<T, 1>(bn, tn, x, m, bp, tp, F, s, u, p);
  else forward_flags<T, 2>(bn, tn, x, m, bp, tp, F, s, u, p);
}

// snnTorch's per-step Leaky update (step.py's PyTorch code, one pass). beta
// (already clamped to [0, 1]) and threshold hold 1 or F values. Returns
// (spk, new membrane, reset R = H(mem - θ) as bool (empty unless need_reset),
// prev = (1 - R) * mem for reset-to-zero (else empty)). U - θ is not kept: the
// backward recomputes it from the new membrane (the same subtraction, the same bits).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> leaky_step_forward_cpu(
    const at::Tensor& input, const at::Tensor& mem, const at::Tensor& beta_c, const at::Tensor& threshold,
    int64_t reset_mode, bool need_reset) {
  TORCH_CHECK(input.dim() == 2 && input.device().is_cpu() && input.is_contiguous(),
              "leaky_step_forward: input must be a contiguous CPU [rows, features] tensor");
  TORCH_CHECK(input.scalar_type() == at::kFloat || input.scalar_type() == at::kDouble,
              "leaky_step_forward: float32 or float64 only");
  TORCH_CHECK(mem.sizes() == input.sizes() && mem.is_contiguous() && mem.scalar_type() == input.scalar_type(),
              "leaky_step_forward: mem must be contiguous, of input's shape and dtype");
  TORCH_CHECK(reset_mode >= 0 && reset_mode <= 2, "leaky_step_forward: reset_mode must be 0, 1 or 2");
  const int64_t rows = input.size(0), F = input.size(1);
  const at::Tensor b = beta_c.contiguous(), th = threshold.contiguous();
  TORCH_CHECK(b.scalar_type() == input.scalar_type() && th.scalar_type() == input.scalar_type()
                  && (b.numel() == 1 || b.numel() == F) && (th.numel() == 1 || th.numel() == F),
              "leaky_step_forward: beta and threshold must hold 1 or F values of input's dtype");
  at::Tensor spk = at::empty_like(input), nw = at::empty_like(input);
  at::Tensor reset = need_reset ? at::empty(input.sizes(), input.options().dtype(at::kBool))
                                : at::empty({0}, input.options().dtype(at::kBool));
  at::Tensor prev = reset_mode == 1 ? at::empty_like(input) : at::empty({0}, input.options());
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "leaky_step_forward", [&] {
    using T = scalar_t;
    const T* x = input.const_data_ptr<T>();
    const T* m = mem.const_data_ptr<T>();
    const T* bp = b.const_data_ptr<T>();
    const T* tp = th.const_data_ptr<T>();
    const bool bn = b.numel() == F && F != 1, tn = th.numel() == F && F != 1;
    T* s = spk.mutable_data_ptr<T>();
    T* u = nw.mutable_data_ptr<T>();
    bool* r = need_reset ? reset.mutable_data_ptr<bool>() : nullptr;
    T* pv = reset_mode == 1 ? prev.mutable_data_ptr<T>() : nullptr;
    auto row = [&](int64_t o) {
      T* p = pv != nullptr ? pv + o : nullptr;
      forward_dispatch<T>(reset_mode, bn, tn, x + o, m + o, bp, tp, F, s + o, u + o, p);
      if (r != nullptr) {
        if (tn) reset_row<T, true>(m + o, tp, F, r + o);
        else reset_row<T, false>(m + o, tp, F, r + o);
      }
    };
    at::parallel_for(0, rows, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) row(i * F);
    });
  });
  return {spk, nw, reset, prev};
}

}  // namespace
}  // namespace snntorch_sparse

TORCH_LIBRARY_FRAGMENT(snntorch_sparse, m) {
  m.def("leaky_step_grad(Tensor mem, Tensor threshold, Tensor? full, int kind, float p1, float p2, Tensor d_spk, "
        "Tensor? d_mem, "
        "Tensor? window, Tensor? gain, int stride, int k, float max_gain) -> (Tensor, Tensor, Tensor, int)");
  m.def("leaky_step_forward(Tensor input, Tensor mem, Tensor beta_c, Tensor threshold, int reset_mode, "
        "bool need_reset) "
        "-> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(snntorch_sparse, CPU, m) {
  m.impl("leaky_step_grad", &snntorch_sparse::leaky_step_grad_cpu);
  m.impl("leaky_step_forward", &snntorch_sparse::leaky_step_forward_cpu);
}
