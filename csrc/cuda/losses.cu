// CUDA kernels of the losses' per-row sums (losses.h): denoising score
// matching with z regenerated from the stream or read from a tensor, and the
// two sums of sliced score matching. One thread handles a group of four
// columns of a row (one Philox call). Rows of up to 32 columns are summed by
// one thread each; longer rows by one block per chunk of a row, whose
// partial sums a second kernel adds in a fixed order (deterministic results)
// when a row has more than one chunk.
//
// Bytes per element (float32): DSM reads the score (4; 8 with a noise
// tensor); the sliced sums read three tensors (12). Nothing here has run on
// a GPU yet: the tests compile it with nvcc.
#include "common.cuh"
#include "launchers.h"
#include "../scorekern/losses.h"

namespace scorekern {
namespace cuda {
namespace {

constexpr int64_t kChunkGroups = 1024;  // groups of four columns per block
constexpr int64_t kShortRowGroups = 8;  // rows of up to 32 columns: one thread per row

struct Layout {
  int64_t rows, cols, groups_per_row, chunks_per_row;
};

Layout layout_of(int64_t rows, int64_t cols) {
  Layout l{rows, cols, (cols + 3) / 4, 1};
  if (l.groups_per_row > kShortRowGroups) l.chunks_per_row = (l.groups_per_row + kChunkGroups - 1) / kChunkGroups;
  return l;
}

template <typename T>
struct Inputs {
  using O = opmath_t<T>;
  RowSumKind kind;
  const T* score;
  const T* vjp;
  const T* v;
  const T* noise;
  RowCoef<O> p, q;
  NoiseSource src;
};

// Adds one group's terms (n ≤ 4 valid columns) to the two accumulators.
template <bool kVec, typename T, typename O>
__device__ __forceinline__ void add_group(const Inputs<T>& in, const Layout& l, int64_t row, int64_t group,
                                          O& acc0, O& acc1) {
  const int64_t col = 4 * group;
  const int64_t base = row * l.cols + col;
  const int n = l.cols - col < 4 ? static_cast<int>(l.cols - col) : 4;
  O s[4];
  load4<kVec>(in.score + base, n, s);
  if (in.kind == RowSumKind::Dsm) {
    O z[4];
    if (in.noise) load4<kVec>(in.noise + base, n, z);
    else stream_group(in.src, row, group, NoiseKind::Normal, z);
    const O p = in.p.at(row), q = in.q.at(row);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const O e = dsm_residual(p, s[j], q, z[j]);
      if (j < n) acc0 += e * e;
    }
    return;
  }
  O u[4], v[4];
  load4<kVec>(in.vjp + base, n, u);  // zero-filled past n, so the terms there are zero
  load4<kVec>(in.v + base, n, v);
  const bool vr = in.kind == RowSumKind::SlicedVr;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    O first, second;
    sliced_terms(v[j], u[j], s[j], vr, first, second);
    acc0 += first;
    acc1 += second;
  }
}

// Short rows: one thread sums one whole row into the outputs.
template <bool kVec, typename T>
__global__ void row_sums_short_kernel(Inputs<T> in, Layout l, opmath_t<T>* __restrict__ out0,
                                      opmath_t<T>* __restrict__ out1) {
  using O = opmath_t<T>;
  for (int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; row < l.rows;
       row += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    O acc0 = 0, acc1 = 0;
    for (int64_t g = 0; g < l.groups_per_row; ++g) add_group<kVec>(in, l, row, g, acc0, acc1);
    out0[row] = acc0;
    if (out1) out1[row] = acc1;
  }
}

// Long rows: one block sums one chunk of a row, into the outputs when the
// row has one chunk, else into partial[0 or 1][chunk] for finish_kernel.
template <bool kVec, typename T>
__global__ void row_sums_chunk_kernel(Inputs<T> in, Layout l, opmath_t<T>* __restrict__ out0,
                                      opmath_t<T>* __restrict__ out1, double* __restrict__ partial) {
  using O = opmath_t<T>;
  __shared__ O shared[kThreads / 32];
  const int64_t chunks = l.rows * l.chunks_per_row;
  for_each_chunk_sum(
      l.rows, l.chunks_per_row, kChunkGroups, l.groups_per_row, out1 != nullptr, shared,
      [&](int64_t row, int64_t g, O& acc0, O& acc1) { add_group<kVec>(in, l, row, g, acc0, acc1); },
      [&](int64_t ci, int64_t row, O acc0, O acc1) {
        if (l.chunks_per_row == 1) {
          out0[row] = acc0;
          if (out1) out1[row] = acc1;
        } else {
          partial[ci] = acc0;
          if (out1) partial[chunks + ci] = acc1;
        }
      });
}

// Each row's chunks added in order.
template <typename O>
__global__ void finish_kernel(const double* __restrict__ partial, Layout l, O* __restrict__ out0,
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

template <bool kVec, typename T>
cudaError_t row_sums_launch(const Inputs<T>& in, const Layout& l, opmath_t<T>* out0, opmath_t<T>* out1,
                            double* partial, cudaStream_t stream) {
  if (l.groups_per_row <= kShortRowGroups) {
    row_sums_short_kernel<kVec, T><<<grid_for(l.rows), kThreads, 0, stream>>>(in, l, out0, out1);
    return cudaGetLastError();
  }
  const int64_t chunks = l.rows * l.chunks_per_row;
  const unsigned int blocks = static_cast<unsigned int>(chunks < 65535 * 16 ? chunks : 65535 * 16);
  row_sums_chunk_kernel<kVec, T><<<blocks, kThreads, 0, stream>>>(in, l, out0, out1, partial);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess || l.chunks_per_row == 1) return err;
  finish_kernel<opmath_t<T>><<<grid_for(l.rows), kThreads, 0, stream>>>(partial, l, out0, out1);
  return cudaGetLastError();
}

template <typename T>
cudaError_t row_sums_typed(const RowSumArgs& args, void* workspace, void* out0_, void* out1_,
                           cudaStream_t stream) {
  using O = opmath_t<T>;
  O* out0 = static_cast<O*>(out0_);
  O* out1 = static_cast<O*>(out1_);
  if (args.rows == 0) return cudaSuccess;
  if (args.cols == 0) {  // empty rows sum to zero
    cudaError_t err = cudaMemsetAsync(out0, 0, sizeof(O) * args.rows, stream);
    if (err == cudaSuccess && out1) err = cudaMemsetAsync(out1, 0, sizeof(O) * args.rows, stream);
    return err;
  }
  auto typed = [](const Coef& c) {
    return RowCoef<O>{static_cast<const O*>(c.values), static_cast<O>(c.scale), c.stride};
  };
  const Inputs<T> in{args.kind,
                     static_cast<const T*>(args.score),
                     static_cast<const T*>(args.vjp),
                     static_cast<const T*>(args.v),
                     static_cast<const T*>(args.noise.tensor),
                     typed(args.p),
                     typed(args.q),
                     args.noise};
  const Layout l = layout_of(args.rows, args.cols);
  double* partial = static_cast<double*>(workspace);
  const bool vec = args.cols % 4 == 0 && aligned4<T>(in.score) && aligned4<T>(in.vjp) &&
                   aligned4<T>(in.v) && aligned4<T>(in.noise);
  return vec ? row_sums_launch<true>(in, l, out0, out1, partial, stream)
             : row_sums_launch<false>(in, l, out0, out1, partial, stream);
}

}  // namespace

size_t row_sums_workspace_bytes(int64_t rows, int64_t cols) {
  const Layout l = layout_of(rows, cols);
  if (l.chunks_per_row <= 1) return 0;
  return 2 * sizeof(double) * static_cast<size_t>(rows * l.chunks_per_row);
}

cudaError_t launch_row_sums(const RowSumArgs& args, void* workspace, void* out0, void* out1,
                            cudaStream_t stream) {
  return dispatch_dtype(args.dtype, [&](auto tag) {
    return row_sums_typed<decltype(tag)>(args, workspace, out0, out1, stream);
  });
}

}  // namespace cuda
}  // namespace scorekern
