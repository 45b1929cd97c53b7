// CUDA kernels of the random-stream ops. One thread makes one group of four
// columns of one row: one Philox call, four values. Bytes per element: the
// output only (4 for float32), written 16 bytes at a time where aligned; the
// Philox rounds and Box–Muller are register arithmetic.
#include "common.cuh"
#include "launchers.h"

namespace scorekern {
namespace cuda {
namespace {

__global__ void philox4x32_kernel(const int64_t* __restrict__ counters, int64_t n, uint32_t k0,
                                  uint32_t k1, int64_t* __restrict__ out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t* c = counters + 4 * i;
    const Words4 w = philox4x32_10(static_cast<uint32_t>(c[0]), static_cast<uint32_t>(c[1]),
                                   static_cast<uint32_t>(c[2]), static_cast<uint32_t>(c[3]), k0, k1);
    out[4 * i] = w.w0;
    out[4 * i + 1] = w.w1;
    out[4 * i + 2] = w.w2;
    out[4 * i + 3] = w.w3;
  }
}

template <typename T, bool kVec>
__global__ void fill_noise_kernel(T* __restrict__ out, int64_t rows, int64_t cols,
                                  int64_t groups_per_row, NoiseKind kind, NoiseSource src) {
  using O = opmath_t<T>;
  src = resolved(src);
  for_each_group(rows, cols, groups_per_row, [&](const GroupPos& at, int64_t base, int n) {
    O z[4];
    stream_group(src, at.row, at.group, kind, z);
    store4<kVec>(out + base, n, z);
  });
}

}  // namespace

cudaError_t launch_philox4x32(const int64_t* counters, int64_t n, uint64_t seed, int64_t* out,
                              cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const StreamPos key = make_stream_pos(seed, 0);
  philox4x32_kernel<<<grid_for(n), kThreads, 0, stream>>>(counters, n, key.key0, key.key1, out);
  return cudaGetLastError();
}

cudaError_t launch_fill_noise(DType dtype, NoiseKind kind, int64_t rows, int64_t cols, void* out,
                              const NoiseSource& noise, cudaStream_t stream) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  const int64_t groups_per_row = (cols + 3) / 4;
  const int64_t groups = rows * groups_per_row;
  return dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* o = static_cast<T*>(out);
    if (cols % 4 == 0 && aligned4<T>(o)) {
      fill_noise_kernel<T, true><<<grid_for(groups), kThreads, 0, stream>>>(o, rows, cols, groups_per_row, kind, noise);
    } else {
      fill_noise_kernel<T, false><<<grid_for(groups), kThreads, 0, stream>>>(o, rows, cols, groups_per_row, kind, noise);
    }
    return cudaGetLastError();
  });
}

}  // namespace cuda
}  // namespace scorekern
