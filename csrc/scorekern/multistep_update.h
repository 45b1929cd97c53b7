// multistep_update: the noisy update with a second score term,
//   mean = a·x + b·s + b₂·s₂,   x' = mean + c·z,
// what a step that combines two model outputs makes: Heun's correction and
// DPM-Solver-2 (the denoised estimates at both ends of the step), DPM-Solver++
// 2M and its SDE form (this step's and the last step's). Per-row
// coefficients, like noisy_update's.
#pragma once

#include "args.h"
#include "noisy_update.h"

namespace scorekern {

// score2 is [rows, cols] like x, of x's dtype.
struct MultistepUpdateArgs {
  UpdateData data;
  Coef a, b, b2, c;
  const void* score2;
};

// In the order the twin adds: (a·x + b·s) + b₂·s₂.
template <typename T>
SK_HD SK_INLINE T multistep_mean(T a, T x, T b, T s, T b2, T s2) {
  return update_mean(a, x, b, s) + b2 * s2;
}

namespace cpu { void multistep_update(const MultistepUpdateArgs& args); }
#if SK_CUDA_LAUNCHERS
namespace cuda { cudaError_t launch_multistep_update(const MultistepUpdateArgs& args, cudaStream_t stream); }
#endif

}  // namespace scorekern
