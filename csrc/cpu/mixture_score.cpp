// The CPU kernels of mixture_score and mixture_score_backward
// (csrc/scorekern/mixture_score.h), parallel over blocks of queries, each
// walking all the centres in tiles with an online softmax, so memory is
// O((M + N)·d) plus a tile per thread whatever M·N.
//
// Small d (≤ kDirectMaxDim) takes the exact form here: centres transposed to
// [d, N_pad], squared distances coordinate by coordinate, the accumulator
// summing p_j (μ_j − x) (no cancellation, however far x is from the origin),
// one query at a time over tiles held in L1 (logits, then the exponentials,
// then the sums in vec::kWidth lanes), which gcc vectorises. Larger d takes
// the expanded form on matrix products (mixture_score_expanded.cpp).
// Compiled once per instruction set (for_each_isa.h).
#include <ATen/Parallel.h>

#include <vector>

#include "../scorekern/mixture_score.h"
#include "isa.h"
#include "tiles.h"

#define SK_CPU_FILE "mixture_score.cpp"
#include "for_each_isa.h"

#if defined(SK_ISA)
#include "loops.h"

namespace scorekern::cpu::SK_ISA {
namespace {

constexpr int64_t kCentreTile = 512;

// Logits of one query against centres [j0, j0 + n) in the transposed layout
// (n a multiple of vec::kWidth; entries past N get −∞).
template <typename O, int D>
SK_INLINE void direct_logits(const O* __restrict ct, int64_t n_pad, const O* __restrict lw, int64_t N,
                             int64_t j0, int64_t n, const O* xq, O inv_h2, O* __restrict buf) {
  const int64_t valid = N - j0 < n ? N - j0 : n;
  for (int64_t j = 0; j < valid; ++j) {
    O dist = 0;
    for (int k = 0; k < D; ++k) {
      const O diff = ct[k * n_pad + j0 + j] - xq[k];
      dist += diff * diff;
    }
    buf[j] = mixture_logit(lw ? lw[j0 + j] : O(0), dist, inv_h2);
  }
  for (int64_t j = valid; j < n; ++j) buf[j] = -INFINITY;
}

template <typename O>
SK_INLINE O bandwidth_at(const MixtureArgs& a, int64_t q) {
  return typed<O>(a.bandwidth).at(q);
}

template <typename O, int D>
void direct_forward(const MixtureArgs& a, const void* centers_t, int64_t n_pad, int64_t q0, int64_t q1) {
  const O* x = static_cast<const O*>(a.x);
  const O* ct = static_cast<const O*>(centers_t);
  const O* lw = static_cast<const O*>(a.log_weights);
  O* score = static_cast<O*>(a.score);
  O* lse = static_cast<O*>(a.lse);
  alignas(64) O buf[kCentreTile];
  for (int64_t q = q0; q < q1; ++q) {
    O xq[D];
    for (int k = 0; k < D; ++k) xq[k] = x[q * D + k];
    const O h = bandwidth_at<O>(a, q), inv_h2 = O(1) / (h * h);
    OnlineSoftmax<O> st;
    st.start();
    O acc[D] = {};
    for (int64_t j0 = 0; j0 < n_pad; j0 += kCentreTile) {
      const int64_t n = n_pad - j0 < kCentreTile ? n_pad - j0 : kCentreTile;
      direct_logits<O, D>(ct, n_pad, lw, a.N, j0, n, xq, inv_h2, buf);
      const O factor = st.rescale(vec::max(buf, n));
      if (st.m == -INFINITY) continue;  // every weight so far is zero
      vec::exp_shifted(buf, n, st.m);
      st.l += vec::sum(buf, n);
      if (!score) continue;
      vec::Vec<O> lanes[D] = {};
      for (int64_t j = 0; j < n; j += vec::kWidth) {
        const vec::Vec<O> p = vec::load(buf + j);
        for (int k = 0; k < D; ++k) lanes[k] += p * (vec::load(ct + k * n_pad + j0 + j) - xq[k]);
      }
      for (int k = 0; k < D; ++k) acc[k] = acc[k] * factor + vec::horizontal_sum<O>(lanes[k]);
    }
    lse[q] = st.lse(O(0));
    if (score) {
      for (int k = 0; k < D; ++k) score[q * D + k] = acc[k] / st.l * inv_h2;
    }
  }
}

template <typename O, int D>
void direct_backward(const MixtureBackArgs& b, const void* centers_t, int64_t n_pad, int64_t q0, int64_t q1) {
  const MixtureArgs& a = b.fwd;
  const O* x = static_cast<const O*>(a.x);
  const O* ct = static_cast<const O*>(centers_t);
  const O* lw = static_cast<const O*>(a.log_weights);
  const O* score = static_cast<const O*>(a.score);
  const O* lse = static_cast<const O*>(a.lse);
  const O* grad = static_cast<const O*>(b.grad);
  O* gx = static_cast<O*>(b.grad_x);
  alignas(64) O buf[kCentreTile];
  for (int64_t q = q0; q < q1; ++q) {
    O xq[D], g[D], xm[D];  // xm = x − m = −h²·score: u_j = (μ_j − x) + xm
    const O h = bandwidth_at<O>(a, q), h2 = h * h, inv_h2 = O(1) / h2;
    for (int k = 0; k < D; ++k) {
      xq[k] = x[q * D + k];
      g[k] = grad[q * D + k];
      xm[k] = -h2 * score[q * D + k];
    }
    O acc[D] = {};
    for (int64_t j0 = 0; j0 < n_pad; j0 += kCentreTile) {
      const int64_t n = n_pad - j0 < kCentreTile ? n_pad - j0 : kCentreTile;
      direct_logits<O, D>(ct, n_pad, lw, a.N, j0, n, xq, inv_h2, buf);
      vec::exp_shifted(buf, n, lse[q]);
      vec::Vec<O> lanes[D] = {};
      for (int64_t j = 0; j < n; j += vec::kWidth) {
        vec::Vec<O> u[D], ug = {};
        for (int k = 0; k < D; ++k) {
          u[k] = vec::load(ct + k * n_pad + j0 + j) - (xq[k] - xm[k]);
          ug += u[k] * g[k];
        }
        const vec::Vec<O> wug = vec::load(buf + j) * ug;
        for (int k = 0; k < D; ++k) lanes[k] += wug * u[k];
      }
      for (int k = 0; k < D; ++k) acc[k] += vec::horizontal_sum<O>(lanes[k]);
    }
    for (int k = 0; k < D; ++k) gx[q * D + k] = (acc[k] * inv_h2 - g[k]) * inv_h2;
  }
}

#define SK_MIXTURE_DIMS(FN, O, ...)        \
  switch (d) {                             \
    case 1: FN<O, 1>(__VA_ARGS__); break;  \
    case 2: FN<O, 2>(__VA_ARGS__); break;  \
    case 3: FN<O, 3>(__VA_ARGS__); break;  \
    case 4: FN<O, 4>(__VA_ARGS__); break;  \
    case 5: FN<O, 5>(__VA_ARGS__); break;  \
    case 6: FN<O, 6>(__VA_ARGS__); break;  \
    case 7: FN<O, 7>(__VA_ARGS__); break;  \
    case 8: FN<O, 8>(__VA_ARGS__); break;  \
    default: break;                        \
  }

}  // namespace

void mixture_direct(const MixtureArgs& a, const void* centers_t, int64_t n_pad, int64_t q0, int64_t q1) {
  const int64_t d = a.d;
  if (a.float64) {
    SK_MIXTURE_DIMS(direct_forward, double, a, centers_t, n_pad, q0, q1)
  } else {
    SK_MIXTURE_DIMS(direct_forward, float, a, centers_t, n_pad, q0, q1)
  }
}

void mixture_direct_backward(const MixtureBackArgs& b, const void* centers_t, int64_t n_pad, int64_t q0,
                             int64_t q1) {
  const int64_t d = b.fwd.d;
  if (b.fwd.float64) {
    SK_MIXTURE_DIMS(direct_backward, double, b, centers_t, n_pad, q0, q1)
  } else {
    SK_MIXTURE_DIMS(direct_backward, float, b, centers_t, n_pad, q0, q1)
  }
}

#undef SK_MIXTURE_DIMS

}  // namespace scorekern::cpu::SK_ISA

#else  // the entry point, compiled once

namespace scorekern::cpu {
namespace {

constexpr int64_t kDirectMaxDim = 8;  // larger d: the expanded form

// The centres as [d, n_pad] (N rounded up to 8, zero padded).
template <typename O>
std::vector<O> transposed_centers(const MixtureArgs& a, int64_t& n_pad) {
  n_pad = (a.N + 7) / 8 * 8;
  std::vector<O> ct(static_cast<size_t>(a.d * n_pad), O(0));
  const O* c = static_cast<const O*>(a.centers);
  for (int64_t j = 0; j < a.N; ++j) {
    for (int64_t k = 0; k < a.d; ++k) ct[k * n_pad + j] = c[j * a.d + k];
  }
  return ct;
}

template <typename O, typename Fn>
void over_queries(const MixtureArgs& a, Fn fn) {
  int64_t n_pad = 0;
  const std::vector<O> ct = transposed_centers<O>(a, n_pad);
  at::parallel_for(0, a.M, 16, [&](int64_t q0, int64_t q1) { fn(ct.data(), n_pad, q0, q1); });
}

}  // namespace

void mixture_score(const MixtureArgs& a) {
  if (a.d > kDirectMaxDim) return mixture_score_expanded(a);
  auto run = [&](const void* ct, int64_t n_pad, int64_t q0, int64_t q1) {
    SK_CPU_DISPATCH(mixture_direct, a, ct, n_pad, q0, q1);
  };
  if (a.float64) over_queries<double>(a, run);
  else over_queries<float>(a, run);
}

void mixture_score_backward(const MixtureBackArgs& b) {
  if (b.fwd.d > kDirectMaxDim) return mixture_score_expanded_backward(b);
  auto run = [&](const void* ct, int64_t n_pad, int64_t q0, int64_t q1) {
    SK_CPU_DISPATCH(mixture_direct_backward, b, ct, n_pad, q0, q1);
  };
  if (b.fwd.float64) over_queries<double>(b.fwd, run);
  else over_queries<float>(b.fwd, run);
}

}  // namespace scorekern::cpu

#endif
