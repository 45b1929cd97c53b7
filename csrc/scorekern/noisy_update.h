// noisy_update: the affine noisy update every sampler step makes (DESIGN §1),
//   mean = a·x + b·s,   x' = mean + c·z,
// with per-row coefficients. Its arguments, its arithmetic (shared by the
// CPU and CUDA kernels) and its two kernels' entry points.
#pragma once

#include "args.h"

namespace scorekern {

struct NoisyUpdateArgs {
  UpdateData data;
  Coef a, b, c;
};

template <typename T>
SK_HD SK_INLINE T update_mean(T a, T x, T b, T s) {
  return a * x + b * s;
}

template <typename T>
SK_HD SK_INLINE T update_noisy(T mean, T c, T z) {
  return mean + c * z;
}

namespace cpu { void noisy_update(const NoisyUpdateArgs& args); }
#if SK_CUDA_LAUNCHERS
namespace cuda { cudaError_t launch_noisy_update(const NoisyUpdateArgs& args, cudaStream_t stream); }
#endif

}  // namespace scorekern
