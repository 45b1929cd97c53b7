// The affine noisy update every sampler step makes (DESIGN §1):
//   mean = a·x + b·s,   x' = mean + c·z,
// with per-row coefficients, and the step size of the signal-to-noise
// Langevin corrector. Shared by the CPU and CUDA kernels.
#pragma once

#include <cmath>

#include "config.h"

namespace scorekern {

// A per-row coefficient: scale · values[row · stride], or the scale alone when
// there are no values. stride is 1 for a [B] tensor and 0 for one value that
// every row shares (a 0-d tensor on the device, read there to avoid a sync).
template <typename T>
struct RowCoef {
  const T* values;
  T scale;
  int64_t stride;

  SK_HD SK_INLINE T at(int64_t row) const {
    return values ? scale * values[row * stride] : scale;
  }
  SK_HD SK_INLINE bool uniform() const { return values == nullptr || stride == 0; }
};

template <typename T>
SK_HD SK_INLINE T update_mean(T a, T x, T b, T s) {
  return a * x + b * s;
}

template <typename T>
SK_HD SK_INLINE T update_noisy(T mean, T c, T z) {
  return mean + c * z;
}

// Inpainting (Lugmayr et al. 2022; score_sde's inpainter): the observed
// entries (mask 1) take the data noised to the step's time, μ·y + σ·z₁, the
// others the update. Written as m·o + (1 − m)·u so that m = 1 gives o exactly
// (and the last, noise-free step returns y itself).
template <typename T>
SK_HD SK_INLINE T masked_blend(T mask, T observed, T updated) {
  return mask * observed + (T(1) - mask) * updated;
}

// Predictor–corrector sampling (Song et al. 2021, Algorithm 5): the Langevin
// corrector's step ε = 2α(r‖z‖/‖s‖)², and its update x + ε·s + √(2ε)·z.
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

}  // namespace scorekern
