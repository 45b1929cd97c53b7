// The CUDA kernel of randn and rademacher (csrc/scorekern/noise.h). One
// thread makes one group of four columns of one row: one Philox call, four
// values. Bytes per element: the output only (4 for float32), written 16
// bytes at a time where aligned; the Philox rounds and Box–Muller are
// register arithmetic.
#include "../scorekern/noise.h"
#include "common.cuh"

namespace scorekern {
namespace cuda {
namespace {

template <typename T, bool kVec>
__global__ void fill_noise_kernel(T* __restrict__ out, int64_t rows, int64_t cols, int64_t groups_per_row,
                                  NoiseKind kind, NoiseSource src) {
  using O = opmath_t<T>;
  src = resolved(src);
  for_each_group(rows, cols, groups_per_row, [&](const GroupPos& at, int64_t base, int n) {
    O z[4];
    stream_group(src, at.row, at.group, kind, z);
    store4<kVec>(out + base, n, z);
  });
}

}  // namespace

cudaError_t launch_fill_noise(const NoiseArgs& a, cudaStream_t stream) {
  if (a.rows == 0 || a.cols == 0) return cudaSuccess;
  const int64_t groups_per_row = (a.cols + 3) / 4;
  const int64_t groups = a.rows * groups_per_row;
  return dispatch_dtype(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* o = static_cast<T*>(a.out);
    if (a.cols % 4 == 0 && aligned4<T>(o)) {
      fill_noise_kernel<T, true><<<grid_for(groups), kThreads, 0, stream>>>(o, a.rows, a.cols, groups_per_row, a.kind,
                                                                             a.source);
    } else {
      fill_noise_kernel<T, false><<<grid_for(groups), kThreads, 0, stream>>>(o, a.rows, a.cols, groups_per_row, a.kind,
                                                                              a.source);
    }
    return cudaGetLastError();
  });
}

}  // namespace cuda
}  // namespace scorekern
