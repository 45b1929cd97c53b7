// The arithmetic of the mixture scores (DESIGN §1, last paragraph), shared by
// the CPU and CUDA kernels: for queries x [M, d] and centres μ [N, d] with
// log-weights ℓ and bandwidth h (per query),
//   logit_j = ℓ_j − ‖x − μ_j‖²/2h²,   w = softmax(logit),
//   score   = Σ_j w_j (μ_j − x)/h²,   lse = log Σ_j exp(logit_j).
// The kernels walk the centres in tiles and keep an online softmax per query
// (running maximum m, running sum l, accumulator Σ p_j (μ_j − x)), so that
// no [M, N] matrix exists and no exponential overflows. The backward pass is
// the score's Jacobian, J = (Cov_w(μ)/h² − I)/h², applied to the incoming
// gradient g with the weights recomputed from the saved lse:
//   gx = (Σ_j w_j ((μ_j − m)·g)(μ_j − m)/h² − g)/h²,   m = x + h²·score.
#pragma once

#include <cmath>

#include "config.h"

namespace scorekern {

// Raw arguments. Data is float32 or float64 (16-bit data is converted by the
// glue); x and the outputs are [M, d], centres [N, d], all row-major.
// Bandwidths: h_scale · h_values[q · h_stride] (h_values may be null).
struct MixtureArgs {
  bool float64;
  int64_t M, N, d;
  const void* x;
  const void* centers;
  const void* log_weights;  // [N] or null (equal weights)
  const void* h_values;
  double h_scale;
  int64_t h_stride;
  void* score;  // [M, d], or null: lse only
  void* lse;    // [M]
};

struct MixtureBackArgs {
  MixtureArgs fwd;    // score and lse are the forward's outputs, read here
  const void* grad;   // [M, d], the gradient with respect to the score
  void* grad_x;       // [M, d]
};

// e^x for x ≤ 0, and exactly 0 below −87.3 (where float32 leaves the normal
// range). On the CPU a polynomial (Cephes' expf: about 1 ulp) that compilers
// vectorise; on the GPU the hardware exponential.
SK_HD SK_INLINE float exp_nonpositive(float x) {
#if defined(__CUDA_ARCH__)
  return __expf(x);
#else
  const float lo = -87.33654f;
  const float xc = x < lo ? lo : x;
  const float magic = 12582912.0f;  // 1.5·2²³: adding it rounds to an integer
  const float n = (xc * 1.44269504088896341f + magic) - magic;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const uint32_t scale = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  const float e = y * bits_float(scale);
  return x < lo ? 0.0f : e;
#endif
}

SK_HD SK_INLINE double exp_nonpositive(double x) { return exp(x); }

// One centre's logit from its squared distance (the exact form), and from
// the dot product t = x·μ − ‖μ‖²/2 (the expanded form, logit + ‖x‖²/2h²).
template <typename T>
SK_HD SK_INLINE T mixture_logit(T log_weight, T sq_dist, T inv_h2) {
  return log_weight - T(0.5) * sq_dist * inv_h2;
}

template <typename T>
SK_HD SK_INLINE T mixture_logit_expanded(T log_weight, T dot_minus_half_norm, T inv_h2) {
  return log_weight + dot_minus_half_norm * inv_h2;
}

// The online softmax of one query: a new tile whose largest logit is
// tile_max moves the running maximum; the running sum and accumulator are
// multiplied by the returned factor before the tile's p_j = e^(logit_j − m)
// are added.
template <typename T>
struct OnlineSoftmax {
  T m, l;

  SK_HD SK_INLINE void start() {
    m = -INFINITY;
    l = T(0);
  }
  SK_HD SK_INLINE T rescale(T tile_max) {
    if (!(tile_max > m)) return T(1);
    const T factor = m == -INFINITY ? T(0) : exp_nonpositive(m - tile_max);
    m = tile_max;
    l *= factor;
    return factor;
  }
  // One centre at a time (the GPU kernels): moves the maximum, adds the
  // centre's p = e^(logit − m) to the sum and returns it with the factor for
  // the accumulator, acc = acc·factor + p·value; p = 0 while every logit so
  // far is −∞.
  SK_HD SK_INLINE T add_one(T logit, T& factor) {
    factor = rescale(logit);
    if (m == -INFINITY) return T(0);
    const T p = exp_nonpositive(logit - m);
    l += p;
    return p;
  }
  // log Σ e^logit, given the shift that the expanded form added (0 for exact).
  SK_HD SK_INLINE T lse(T shift) const { return m + log(l) - shift; }
};

}  // namespace scorekern
