// What the CUDA kernels of every op share: how they walk [rows, cols] data in
// groups of four columns (one Philox call each), the stream's values of a
// group, 4-element vector loads, block sums and the dtype switch. Per-row
// reductions cut into chunks are in row_sums.cuh.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "../scorekern/args.h"
#include "../scorekern/numeric.h"
#include "../scorekern/philox.h"

namespace scorekern {
namespace cuda {

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over `work` items: enough to fill the GPU
// (a few waves), never more than the work needs.
inline unsigned int grid_for(int64_t work) {
  static int sms = [] {
    int device = 0, count = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device);
    return count > 0 ? count : 80;
  }();
  const int64_t needed = (work + kThreads - 1) / kThreads;
  const int64_t cap = static_cast<int64_t>(sms) * 16;
  const int64_t blocks = needed < cap ? needed : cap;
  return static_cast<unsigned int>(blocks > 0 ? blocks : 1);
}

// Four consecutive elements, loaded or stored as one access (16 bytes for
// float32) when the caller has checked alignment.
template <typename T>
struct alignas(4 * sizeof(T)) Vec4 {
  T v[4];
};

template <typename T>
inline bool aligned4(const void* p) {
  return p == nullptr || reinterpret_cast<uintptr_t>(p) % (4 * sizeof(T)) == 0;
}

// Position of group `gi` in [rows, groups_per_row]: its row and group in row.
struct GroupPos {
  int64_t row, group;
};
__device__ __forceinline__ GroupPos group_pos(int64_t gi, int64_t rows, int64_t groups_per_row) {
  if (rows == 1) return GroupPos{0, gi};
  const int64_t row = gi / groups_per_row;
  return GroupPos{row, gi - row * groups_per_row};
}

// Every group of four columns of a [rows, cols] tensor, grid-stride: calls
// f(at, base, n) with the group's position, its first element's index and
// its number of valid columns (n < 4 only at the end of a row).
template <typename F>
__device__ __forceinline__ void for_each_group(int64_t rows, int64_t cols, int64_t groups_per_row, F&& f) {
  const int64_t groups = rows * groups_per_row;
  for (int64_t gi = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; gi < groups;
       gi += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const GroupPos at = group_pos(gi, rows, groups_per_row);
    const int64_t col = 4 * at.group;
    f(at, at.row * cols + col, cols - col < 4 ? static_cast<int>(cols - col) : 4);
  }
}

// The source with its stream position complete: under graph capture, the
// seed and base offset that this launch of the graph reads on the device.
// Kernels call it once, on their NoiseSource argument.
__device__ __forceinline__ NoiseSource resolved(NoiseSource src) {
  if (src.captured_seed) {
    const uint64_t within = (static_cast<uint64_t>(src.pos.off1) << 32) | src.pos.off0;
    src.pos = make_stream_pos(static_cast<uint64_t>(*src.captured_seed),
                              static_cast<uint64_t>(*src.captured_offset) + within);
  }
  return src;
}

__device__ __forceinline__ uint32_t row_id(const NoiseSource& src, int64_t row) {
  return static_cast<uint32_t>(src.row_ids ? src.row_ids[row] : row);
}

// The four stream values of one group in the arithmetic type O.
template <typename O>
__device__ __forceinline__ void stream_group(const NoiseSource& src, int64_t row, int64_t group,
                                             NoiseKind kind, O z[4]) {
  const Words4 w = src.pos.words(static_cast<uint32_t>(group), row_id(src, row));
  if (kind == NoiseKind::Normal) {
    normals4<O>(w, z[0], z[1], z[2], z[3]);
  } else {
    z[0] = rademacher_from_word<O>(w.w0);
    z[1] = rademacher_from_word<O>(w.w1);
    z[2] = rademacher_from_word<O>(w.w2);
    z[3] = rademacher_from_word<O>(w.w3);
  }
}

// Loads n ≤ 4 elements from p into v (as O); the vector form needs n == 4
// and alignment.
template <bool kVec, typename T, typename O>
__device__ __forceinline__ void load4(const T* __restrict__ p, int n, O v[4]) {
  if (kVec) {
    const Vec4<T> t = *reinterpret_cast<const Vec4<T>*>(p);
#pragma unroll
    for (int j = 0; j < 4; ++j) v[j] = load_op(&t.v[j]);
  } else {
#pragma unroll
    for (int j = 0; j < 4; ++j) v[j] = j < n ? load_op(p + j) : O(0);
  }
}

template <bool kVec, typename T, typename O>
__device__ __forceinline__ void store4(T* __restrict__ p, int n, const O v[4]) {
  if (kVec) {
    Vec4<T> t;
#pragma unroll
    for (int j = 0; j < 4; ++j) store_op(&t.v[j], v[j]);
    *reinterpret_cast<Vec4<T>*>(p) = t;
  } else {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if (j < n) store_op(p + j, v[j]);
    }
  }
}

// A group's normals: from a tensor, zeros (a zero coefficient draws none), or the stream.
template <bool kVec, typename T, typename O>
__device__ __forceinline__ void group_normals(const T* __restrict__ noise, int64_t base, int n, bool zero,
                                              const NoiseSource& src, const GroupPos& at, O z[4]) {
  if (noise) {
    load4<kVec>(noise + base, n, z);
  } else if (zero) {
#pragma unroll
    for (int j = 0; j < 4; ++j) z[j] = O(0);
  } else {
    stream_group(src, at.row, at.group, NoiseKind::Normal, z);
  }
}

// The sum of v over a block of kThreads threads, valid in thread 0; every
// thread of the block must call it. `shared` holds kThreads / 32 values.
template <typename O>
__device__ __forceinline__ O block_sum(O v, O* shared) {
#pragma unroll
  for (int d = 16; d > 0; d /= 2) v += __shfl_down_sync(0xffffffffu, v, d);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < static_cast<int>(blockDim.x / 32) ? shared[lane] : O(0);
#pragma unroll
    for (int d = 16; d > 0; d /= 2) v += __shfl_down_sync(0xffffffffu, v, d);
  }
  __syncthreads();
  return v;  // valid in thread 0
}

// Calls fn(dtype-typed tag) for the kernel's storage type.
template <typename Fn>
cudaError_t dispatch_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::Float32: return fn(float{});
    case DType::Float64: return fn(double{});
    case DType::Float16: return fn(Half{});
    case DType::BFloat16: return fn(BFloat16{});
  }
  return cudaErrorInvalidValue;
}

}  // namespace cuda
}  // namespace scorekern
