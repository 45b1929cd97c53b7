// masked_update: inpainting's step in one pass (Lugmayr et al. 2022;
// score_sde's inpainter): the observed entries (mask 1) take the data noised
// to the step's time, μ·y + σ·z₁, the others the update a·x + b·s + c·z₂.
#pragma once

#include "args.h"
#include "noisy_update.h"

namespace scorekern {

// y and mask are [rows, cols] like x, of x's dtype. z₂ is data.noise, z₁
// `observed` (same seed and row ids, its own offset, or a tensor).
struct MaskedUpdateArgs {
  UpdateData data;
  Coef a, b, c, mu, sigma;
  const void* y;
  const void* mask;
  NoiseSource observed;
};

// Written m·o + (1 − m)·u so that m = 1 gives o exactly (and the last,
// noise-free step returns y itself).
template <typename T>
SK_HD SK_INLINE T masked_blend(T mask, T observed, T updated) {
  return mask * observed + (T(1) - mask) * updated;
}

namespace cpu { void masked_update(const MaskedUpdateArgs& args); }
#if SK_CUDA_LAUNCHERS
namespace cuda { cudaError_t launch_masked_update(const MaskedUpdateArgs& args, cudaStream_t stream); }
#endif

}  // namespace scorekern
