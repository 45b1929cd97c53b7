// snr_langevin_step: the Langevin corrector of predictor–corrector sampling
// (Song et al. 2021, Algorithm 5): ε = 2α(r‖z‖/‖s‖)² from per-row norms (or
// their batch means), then the update x + ε·s + √(2ε)·z with the same z.
#pragma once

#include <cmath>
#include <cstddef>

#include "args.h"

namespace scorekern {

struct SnrLangevinArgs {
  UpdateData data;
  double snr;
  Coef alpha;
  bool batch_norms;
};

template <typename T>
SK_HD SK_INLINE T snr_step_size(T alpha, T snr, T noise_norm, T score_norm) {
  const T ratio = snr * noise_norm / score_norm;
  return T(2) * alpha * ratio * ratio;
}

// The corrector as a noisy update of one row: a = 1, b = ε, c = √(2ε).
template <typename T>
SK_HD SK_INLINE void snr_coefficients(T alpha, T snr, T noise_norm, T score_norm, T& b, T& c) {
  const T eps = snr_step_size(alpha, snr, noise_norm, score_norm);
  b = eps;
  c = sqrt(T(2) * eps);
}

namespace cpu {
void snr_langevin_step(const SnrLangevinArgs& args);
}
#if SK_CUDA_LAUNCHERS
namespace cuda {
// Needs snr_langevin_step_workspace_bytes(...) bytes of device memory, 16-byte aligned.
size_t snr_langevin_step_workspace_bytes(int64_t rows, int64_t cols, DType dtype);
cudaError_t launch_snr_langevin_step(const SnrLangevinArgs& args, void* workspace, cudaStream_t stream);
}
#endif

}  // namespace scorekern
