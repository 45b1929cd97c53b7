// sliced_score_terms: the two per-row sums of sliced score matching (Song
// et al. 2019) for a row and its projection v: Σ v·(Jᵀv) (the
// vector–Jacobian product) and Σ v·s, whose square the plain loss halves,
// or Σ s² with variance reduction. Per row: Σ₀ + ½Σ₁² (plain) or Σ₀ + ½Σ₁.
#pragma once

#include "args.h"

namespace scorekern {

// first, second: [rows] sums in the arithmetic type.
struct SlicedScoreArgs {
  DType dtype;
  int64_t rows, cols;
  const void* score;
  const void* vjp;
  const void* v;
  bool variance_reduction;
  void* first;
  void* second;
};

// The terms of one element: v·vjp, and v·s (plain) or s² (variance reduction).
template <typename T>
SK_HD SK_INLINE T sliced_first(T v, T vjp) { return v * vjp; }

template <bool kVarianceReduction, typename T>
SK_HD SK_INLINE T sliced_second(T v, T s) { return kVarianceReduction ? s * s : v * s; }

template <typename T>
SK_HD SK_INLINE void sliced_terms(T v, T vjp, T s, bool variance_reduction, T& first, T& second) {
  first = sliced_first(v, vjp);
  second = variance_reduction ? sliced_second<true>(v, s) : sliced_second<false>(v, s);
}

namespace cpu { void sliced_score_terms(const SlicedScoreArgs& args); }
#if SK_CUDA_LAUNCHERS
namespace cuda {
size_t sliced_score_terms_workspace_bytes(int64_t rows, int64_t cols);
cudaError_t launch_sliced_score_terms(const SlicedScoreArgs& args, void* workspace, cudaStream_t stream);
}
#endif

}  // namespace scorekern
