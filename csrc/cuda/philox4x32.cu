// The CUDA kernel of philox4x32: the block function of philox.h, one thread
// per counter (a test and reference op).
#include "../scorekern/philox4x32.h"
#include "common.cuh"

namespace scorekern {
namespace cuda {
namespace {

__global__ void philox4x32_kernel(const int64_t* __restrict__ counters, int64_t n, uint32_t k0, uint32_t k1,
                                  int64_t* __restrict__ out) {
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

}  // namespace

cudaError_t launch_philox4x32(const int64_t* counters, int64_t n, uint64_t seed, int64_t* out, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const StreamPos key = make_stream_pos(seed, 0);
  philox4x32_kernel<<<grid_for(n), kThreads, 0, stream>>>(counters, n, key.key0, key.key1, out);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace scorekern
