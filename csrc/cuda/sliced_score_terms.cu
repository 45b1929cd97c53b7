// The CUDA kernel of sliced_score_terms (csrc/scorekern/sliced_score_terms.h):
// per row, Σ v·vjp and Σ v·s (Σ s² with variance reduction), by
// row_sums.cuh's walk. Bytes per element (float32): three tensors read (12).
#include "../scorekern/sliced_score_terms.h"
#include "common.cuh"
#include "row_sums.cuh"

namespace scorekern {
namespace cuda {
namespace {

template <bool kVec, typename T>
struct SlicedTerms {
  using O = opmath_t<T>;
  static constexpr bool second = true;
  const T* score;
  const T* vjp;
  const T* v;
  bool variance_reduction;
  int64_t cols;

  __device__ __forceinline__ void add(int64_t row, int64_t group, O& acc0, O& acc1) const {
    const int64_t col = 4 * group;
    const int64_t base = row * cols + col;
    const int n = cols - col < 4 ? static_cast<int>(cols - col) : 4;
    O s[4], u[4], w[4];
    load4<kVec>(score + base, n, s);  // zero-filled past n, so the terms there are zero
    load4<kVec>(vjp + base, n, u);
    load4<kVec>(v + base, n, w);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      O first, second_term;
      sliced_terms(w[j], u[j], s[j], variance_reduction, first, second_term);
      acc0 += first;
      acc1 += second_term;
    }
  }
};

template <typename T>
cudaError_t sliced_typed(const SlicedScoreArgs& a, void* workspace, cudaStream_t stream) {
  using O = opmath_t<T>;
  const T* s = static_cast<const T*>(a.score);
  const T* u = static_cast<const T*>(a.vjp);
  const T* v = static_cast<const T*>(a.v);
  O* first = static_cast<O*>(a.first);
  O* second = static_cast<O*>(a.second);
  if (a.cols % 4 == 0 && aligned4<T>(s) && aligned4<T>(u) && aligned4<T>(v)) {
    return launch_row_sums(SlicedTerms<true, T>{s, u, v, a.variance_reduction, a.cols}, a.rows, a.cols, first, second,
                           workspace, stream);
  }
  return launch_row_sums(SlicedTerms<false, T>{s, u, v, a.variance_reduction, a.cols}, a.rows, a.cols, first, second,
                         workspace, stream);
}

}  // namespace

size_t sliced_score_terms_workspace_bytes(int64_t rows, int64_t cols) { return row_sums_workspace_bytes(rows, cols); }

cudaError_t launch_sliced_score_terms(const SlicedScoreArgs& args, void* workspace, cudaStream_t stream) {
  return dispatch_dtype(args.dtype, [&](auto tag) { return sliced_typed<decltype(tag)>(args, workspace, stream); });
}

}  // namespace cuda
}  // namespace scorekern
