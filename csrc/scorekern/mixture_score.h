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

#include "args.h"
#include "numeric.h"

namespace scorekern {

// Raw arguments. Data is float32 or float64 (16-bit data is converted by the
// glue); x and the outputs are [M, d], centres [N, d], all row-major.
// The bandwidth of query q is bandwidth's value at q.
struct MixtureArgs {
  bool float64;
  int64_t M, N, d;
  const void* x;
  const void* centers;
  const void* log_weights;  // [N] or null (equal weights)
  Coef bandwidth;
  void* score;  // [M, d], or null: lse only
  void* lse;    // [M]
};

struct MixtureBackArgs {
  MixtureArgs fwd;    // score and lse are the forward's outputs, read here
  const void* grad;   // [M, d], the gradient with respect to the score
  void* grad_x;       // [M, d]
};

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

namespace cpu {
void mixture_score(const MixtureArgs& args);
void mixture_score_backward(const MixtureBackArgs& args);
// The expanded form on matrix products, taken for d > 8.
void mixture_score_expanded(const MixtureArgs& args);
void mixture_score_expanded_backward(const MixtureBackArgs& args);
}  // namespace cpu
#if SK_CUDA_LAUNCHERS
namespace cuda {
// d may be at most mixture_score_max_dim(). `tensor_cores` lets a float32
// forward with 16 ≤ d ≤ 128 take TF32 tensor cores on sm_80 or newer; it
// then needs mixture_score_workspace_bytes(args, true) bytes of device
// memory (4-byte aligned; often none).
int64_t mixture_score_max_dim();
size_t mixture_score_workspace_bytes(const MixtureArgs& args, bool tensor_cores);
cudaError_t launch_mixture_score(const MixtureArgs& args, bool tensor_cores, void* workspace, cudaStream_t stream);
cudaError_t launch_mixture_score_backward(const MixtureBackArgs& args, cudaStream_t stream);
}  // namespace cuda
#endif

}  // namespace scorekern
