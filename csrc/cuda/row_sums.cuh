// Per-row sums over [rows, cols] data, shared by the kernels that reduce
// rows (dsm_loss, sliced_score_terms; snr_langevin_step's norms use the
// chunk walk). Rows of up to 32 columns are summed by one thread each;
// longer rows by one block per chunk of a row, whose partial sums a second
// kernel adds in a fixed order (deterministic results) when a row has more
// than one chunk.
//
// An op supplies Terms: `using O` (its arithmetic type), `bool second`
// (whether it makes two sums) and
//   __device__ void add(int64_t row, int64_t group, O& acc0, O& acc1) const,
// which adds one group of four columns' terms.
#pragma once

#include "common.cuh"

namespace scorekern {
namespace cuda {

constexpr int64_t kChunkGroups = 1024;  // groups of four columns per block
constexpr int64_t kShortRowGroups = 8;  // rows of up to 32 columns: one thread per row

// Chunk ci of a per-row reduction cut into chunks_per_row chunks of
// chunk_groups groups each: its row and its groups [g0, g1).
struct ChunkPos {
  int64_t row, g0, g1;
};
__device__ __forceinline__ ChunkPos chunk_pos(int64_t ci, int64_t chunks_per_row, int64_t chunk_groups,
                                              int64_t groups_per_row) {
  const int64_t row = ci / chunks_per_row;
  const int64_t g0 = (ci - row * chunks_per_row) * chunk_groups;
  return ChunkPos{row, g0, g0 + chunk_groups < groups_per_row ? g0 + chunk_groups : groups_per_row};
}

// Per-row reductions cut into chunks, one block per chunk (grid-stride over
// blocks): each thread adds its groups with add(row, group, acc0, acc1), the
// block sums acc0 and (when `second`, the same in the whole grid) acc1, and
// thread 0 gets done(chunk, row, acc0, acc1).
template <typename O, typename Add, typename Done>
__device__ __forceinline__ void for_each_chunk_sum(int64_t rows, int64_t chunks_per_row, int64_t chunk_groups,
                                                   int64_t groups_per_row, bool second, O* shared, Add&& add,
                                                   Done&& done) {
  const int64_t chunks = rows * chunks_per_row;
  for (int64_t ci = blockIdx.x; ci < chunks; ci += gridDim.x) {
    const ChunkPos c = chunk_pos(ci, chunks_per_row, chunk_groups, groups_per_row);
    O acc0 = 0, acc1 = 0;
    for (int64_t g = c.g0 + threadIdx.x; g < c.g1; g += blockDim.x) add(c.row, g, acc0, acc1);
    acc0 = block_sum(acc0, shared);
    if (second) acc1 = block_sum(acc1, shared);
    if (threadIdx.x == 0) done(ci, c.row, acc0, acc1);
  }
}

struct RowSumLayout {
  int64_t rows, cols, groups_per_row, chunks_per_row;
};

inline RowSumLayout row_sum_layout(int64_t rows, int64_t cols) {
  RowSumLayout l{rows, cols, (cols + 3) / 4, 1};
  if (l.groups_per_row > kShortRowGroups) l.chunks_per_row = (l.groups_per_row + kChunkGroups - 1) / kChunkGroups;
  return l;
}

// Bytes of device memory for the partial sums (none when rows have one chunk).
inline size_t row_sums_workspace_bytes(int64_t rows, int64_t cols) {
  const RowSumLayout l = row_sum_layout(rows, cols);
  if (l.chunks_per_row <= 1) return 0;
  return 2 * sizeof(double) * static_cast<size_t>(rows * l.chunks_per_row);
}

// Short rows: one thread sums one whole row into the outputs.
template <typename Terms>
__global__ void row_sums_short_kernel(Terms terms, RowSumLayout l, typename Terms::O* __restrict__ out0,
                                      typename Terms::O* __restrict__ out1) {
  using O = typename Terms::O;
  for (int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; row < l.rows;
       row += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    O acc0 = 0, acc1 = 0;
    for (int64_t g = 0; g < l.groups_per_row; ++g) terms.add(row, g, acc0, acc1);
    out0[row] = acc0;
    if (Terms::second) out1[row] = acc1;
  }
}

// Long rows: one block sums one chunk of a row, into the outputs when the
// row has one chunk, else into partial[0 or 1][chunk] for the finish kernel.
template <typename Terms>
__global__ void row_sums_chunk_kernel(Terms terms, RowSumLayout l, typename Terms::O* __restrict__ out0,
                                      typename Terms::O* __restrict__ out1, double* __restrict__ partial) {
  using O = typename Terms::O;
  __shared__ O shared[kThreads / 32];
  const int64_t chunks = l.rows * l.chunks_per_row;
  for_each_chunk_sum(
      l.rows, l.chunks_per_row, kChunkGroups, l.groups_per_row, Terms::second, shared,
      [&](int64_t row, int64_t g, O& acc0, O& acc1) { terms.add(row, g, acc0, acc1); },
      [&](int64_t ci, int64_t row, O acc0, O acc1) {
        if (l.chunks_per_row == 1) {
          out0[row] = acc0;
          if (Terms::second) out1[row] = acc1;
        } else {
          partial[ci] = acc0;
          if (Terms::second) partial[chunks + ci] = acc1;
        }
      });
}

// Each row's chunks added in order.
template <typename O>
__global__ void row_sums_finish_kernel(const double* __restrict__ partial, RowSumLayout l, O* __restrict__ out0,
                                       O* __restrict__ out1) {
  const int64_t chunks = l.rows * l.chunks_per_row;
  for (int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; row < l.rows;
       row += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    double s0 = 0, s1 = 0;
    for (int64_t c = 0; c < l.chunks_per_row; ++c) {
      s0 += partial[row * l.chunks_per_row + c];
      if (out1) s1 += partial[chunks + row * l.chunks_per_row + c];
    }
    out0[row] = static_cast<O>(s0);
    if (out1) out1[row] = static_cast<O>(s1);
  }
}

// The sums of every row into out0 (and out1 when Terms::second), with
// row_sums_workspace_bytes(rows, cols) bytes at `partial`.
template <typename Terms>
cudaError_t launch_row_sums(const Terms& terms, int64_t rows, int64_t cols, typename Terms::O* out0,
                            typename Terms::O* out1, void* partial, cudaStream_t stream) {
  using O = typename Terms::O;
  if (rows == 0) return cudaSuccess;
  if (cols == 0) {  // empty rows sum to zero
    cudaError_t err = cudaMemsetAsync(out0, 0, sizeof(O) * rows, stream);
    if (err == cudaSuccess && Terms::second) err = cudaMemsetAsync(out1, 0, sizeof(O) * rows, stream);
    return err;
  }
  const RowSumLayout l = row_sum_layout(rows, cols);
  if (l.groups_per_row <= kShortRowGroups) {
    row_sums_short_kernel<Terms><<<grid_for(l.rows), kThreads, 0, stream>>>(terms, l, out0, out1);
    return cudaGetLastError();
  }
  const int64_t chunks = l.rows * l.chunks_per_row;
  const unsigned int blocks = static_cast<unsigned int>(chunks < 65535 * 16 ? chunks : 65535 * 16);
  double* p = static_cast<double*>(partial);
  row_sums_chunk_kernel<Terms><<<blocks, kThreads, 0, stream>>>(terms, l, out0, out1, p);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess || l.chunks_per_row == 1) return err;
  row_sums_finish_kernel<O><<<grid_for(l.rows), kThreads, 0, stream>>>(p, l, out0, Terms::second ? out1 : nullptr);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace scorekern
