// The CUDA kernel of dsm_loss (csrc/scorekern/dsm_loss.h): per row, Σ (p·s +
// q·z)² with z regenerated from the stream (one Philox call per group of four
// columns) or read from a noise tensor, by row_sums.cuh's walk. Bytes per
// element (float32): the score read (4; 8 with a noise tensor).
#include "../scorekern/dsm_loss.h"
#include "common.cuh"
#include "row_sums.cuh"

namespace scorekern {
namespace cuda {
namespace {

template <bool kVec, typename T>
struct DsmTerms {
  using O = opmath_t<T>;
  static constexpr bool second = false;
  const T* score;
  const T* noise;
  RowCoef<O> p, q;
  NoiseSource src;
  int64_t cols;

  __device__ __forceinline__ void add(int64_t row, int64_t group, O& acc, O&) const {
    const int64_t col = 4 * group;
    const int64_t base = row * cols + col;
    const int n = cols - col < 4 ? static_cast<int>(cols - col) : 4;
    O s[4], z[4];
    load4<kVec>(score + base, n, s);
    if (noise) load4<kVec>(noise + base, n, z);
    else stream_group(src, row, group, NoiseKind::Normal, z);
    const O pr = p.at(row), qr = q.at(row);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const O e = dsm_residual(pr, s[j], qr, z[j]);
      if (j < n) acc += e * e;
    }
  }
};

template <typename T>
cudaError_t dsm_loss_typed(const DsmLossArgs& a, void* workspace, cudaStream_t stream) {
  using O = opmath_t<T>;
  const T* score = static_cast<const T*>(a.score);
  const T* noise = static_cast<const T*>(a.noise.tensor);
  O* out = static_cast<O*>(a.out);
  const bool vec = a.cols % 4 == 0 && aligned4<T>(score) && aligned4<T>(noise);
  if (vec) {
    const DsmTerms<true, T> terms{score, noise, typed<O>(a.p), typed<O>(a.q), a.noise, a.cols};
    return launch_row_sums(terms, a.rows, a.cols, out, out, workspace, stream);
  }
  const DsmTerms<false, T> terms{score, noise, typed<O>(a.p), typed<O>(a.q), a.noise, a.cols};
  return launch_row_sums(terms, a.rows, a.cols, out, out, workspace, stream);
}

}  // namespace

size_t dsm_loss_workspace_bytes(int64_t rows, int64_t cols) { return row_sums_workspace_bytes(rows, cols); }

cudaError_t launch_dsm_loss(const DsmLossArgs& args, void* workspace, cudaStream_t stream) {
  return dispatch_dtype(args.dtype, [&](auto tag) { return dsm_loss_typed<decltype(tag)>(args, workspace, stream); });
}

}  // namespace cuda
}  // namespace scorekern
