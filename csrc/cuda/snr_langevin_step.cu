// The CUDA kernels of snr_langevin_step (csrc/scorekern/snr_langevin_step.h),
// two of them. Pass one writes, per (row, chunk), the sums of squares of the
// score and of the noise; its last block to finish (a counter in the
// workspace, zeroed by a memset) turns them into each row's b = ε and c =
// √(2ε), in a fixed order, so the result is deterministic; noisy_update's
// kernel then regenerates the same noise. Bytes per element (float32): the
// score read twice and x once, x' written (16).
#include "../scorekern/noisy_update.h"
#include "../scorekern/snr_langevin_step.h"
#include "common.cuh"
#include "row_sums.cuh"

namespace scorekern {
namespace cuda {
namespace {

struct SnrLayout {
  int64_t rows, cols, groups_per_row, chunks_per_row;
  size_t partial_bytes, coef_offset;
};

// What the last block needs to make the step sizes. alpha: scale ·
// values[row · stride] (values in the arithmetic type O, or null), widened
// to double like every other quantity here.
template <typename O>
struct SnrCoefArgs {
  double snr;
  const O* alpha_values;
  double alpha_scale;
  int64_t alpha_stride;
  bool batch_norms;
  O* coef_b;
  O* coef_c;
  unsigned int* done;  // blocks of pass one finished, zero at launch
};

SnrLayout snr_layout(int64_t rows, int64_t cols) {
  SnrLayout l{};
  l.rows = rows;
  l.cols = cols;
  l.groups_per_row = (cols + 3) / 4;
  l.chunks_per_row = l.groups_per_row <= kShortRowGroups
                         ? 1
                         : (l.groups_per_row + kChunkGroups - 1) / kChunkGroups;
  l.partial_bytes = 2 * sizeof(double) * static_cast<size_t>(rows * l.chunks_per_row);
  l.coef_offset = (l.partial_bytes + 15) / 16 * 16;
  return l;
}

// Sums of squares of one group (n ≤ 4 valid columns) of the score and noise.
template <typename T, typename O>
__device__ __forceinline__ void group_squares(const T* __restrict__ score, const T* __restrict__ noise,
                                              const NoiseSource& src, int64_t row, int64_t group,
                                              int64_t cols, O& ss, O& zz) {
  const int64_t col = 4 * group;
  const int64_t base = row * cols + col;
  const int n = cols - col < 4 ? static_cast<int>(cols - col) : 4;
  O sv[4], z[4];
  load4<false>(score + base, n, sv);
#pragma unroll
  for (int j = 0; j < 4; ++j) ss += sv[j] * sv[j];  // load4 zero-fills past n
  if (noise) {
    load4<false>(noise + base, n, z);
  } else if (n == 4) {
    // A whole group: Σz² straight from the words (no sincos, no square root).
    zz += normals4_square_sum(src.pos.words(static_cast<uint32_t>(group), row_id(src, row)), O{});
    return;
  } else {
    stream_group(src, row, group, NoiseKind::Normal, z);
  }
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    if (j < n) zz += z[j] * z[j];
  }
}

template <typename O>
__device__ void snr_coefficients_block(const double* partial, const SnrLayout& l, const SnrCoefArgs<O>& a);

// True in every thread of the block that finishes pass one last, once every
// block's partial sums are visible to it.
__device__ __forceinline__ bool last_block_done(unsigned int* done) {
  __shared__ bool last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(done, 1u) == gridDim.x - 1;
  __syncthreads();
  return last;
}

// Short rows: one thread sums one whole row.
template <typename T>
__global__ void snr_sums_short_kernel(const T* __restrict__ score, const T* __restrict__ noise,
                                      SnrLayout l, NoiseSource src, double* __restrict__ partial,
                                      SnrCoefArgs<opmath_t<T>> coefs) {
  using O = opmath_t<T>;
  src = resolved(src);
  for (int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; row < l.rows;
       row += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    O ss = 0, zz = 0;
    for (int64_t g = 0; g < l.groups_per_row; ++g) group_squares(score, noise, src, row, g, l.cols, ss, zz);
    partial[row] = ss;
    partial[l.rows + row] = zz;
  }
  if (last_block_done(coefs.done)) snr_coefficients_block(partial, l, coefs);
}

// Long rows: one block sums one chunk of kChunkGroups groups of one row.
template <typename T>
__global__ void snr_sums_chunk_kernel(const T* __restrict__ score, const T* __restrict__ noise,
                                      SnrLayout l, NoiseSource src, double* __restrict__ partial,
                                      SnrCoefArgs<opmath_t<T>> coefs) {
  using O = opmath_t<T>;
  src = resolved(src);
  __shared__ O shared[kThreads / 32];
  const int64_t chunks = l.rows * l.chunks_per_row;
  for_each_chunk_sum(
      l.rows, l.chunks_per_row, kChunkGroups, l.groups_per_row, true, shared,
      [&](int64_t row, int64_t g, O& ss, O& zz) { group_squares(score, noise, src, row, g, l.cols, ss, zz); },
      [&](int64_t ci, int64_t, O ss, O zz) {
        partial[ci] = ss;
        partial[chunks + ci] = zz;
      });
  if (last_block_done(coefs.done)) snr_coefficients_block(partial, l, coefs);
}

// One block (the last of pass one): norms per row (chunks summed in order),
// their batch means when asked, then b = ε and c = √(2ε) of every row. The
// partial sums of other blocks are read past L1 (__ldcg).
template <typename O>
__device__ void snr_coefficients_block(const double* partial, const SnrLayout& l, const SnrCoefArgs<O>& a) {
  __shared__ double shared[kThreads / 32];
  const int64_t chunks = l.rows * l.chunks_per_row;
  const bool batch_norms = a.batch_norms;
  auto norms = [&](int64_t row, double& sn, double& zn) {
    double ss = 0, zz = 0;
    for (int64_t c = 0; c < l.chunks_per_row; ++c) {
      ss += __ldcg(partial + row * l.chunks_per_row + c);
      zz += __ldcg(partial + chunks + row * l.chunks_per_row + c);
    }
    sn = sqrt(ss);
    zn = sqrt(zz);
  };
  double score_mean = 0, noise_mean = 0;
  if (batch_norms) {
    double s_local = 0, z_local = 0;
    for (int64_t row = threadIdx.x; row < l.rows; row += blockDim.x) {
      double sn, zn;
      norms(row, sn, zn);
      s_local += sn;
      z_local += zn;
    }
    s_local = block_sum(s_local, shared);
    z_local = block_sum(z_local, shared);
    __shared__ double means[2];
    if (threadIdx.x == 0) {
      means[0] = s_local / static_cast<double>(l.rows);
      means[1] = z_local / static_cast<double>(l.rows);
    }
    __syncthreads();
    score_mean = means[0];
    noise_mean = means[1];
  }
  for (int64_t row = threadIdx.x; row < l.rows; row += blockDim.x) {
    double sn = score_mean, zn = noise_mean;
    if (!batch_norms) norms(row, sn, zn);
    const double alpha =
        a.alpha_scale * (a.alpha_values ? static_cast<double>(a.alpha_values[row * a.alpha_stride]) : 1.0);
    double b, c;
    snr_coefficients(alpha, a.snr, zn, sn, b, c);
    a.coef_b[row] = static_cast<O>(b);
    a.coef_c[row] = static_cast<O>(c);
  }
}

template <typename T>
cudaError_t snr_typed(const SnrLangevinArgs& args, void* workspace, cudaStream_t stream) {
  using O = opmath_t<T>;
  const UpdateData& u = args.data;
  if (u.rows == 0 || u.cols == 0) return cudaSuccess;
  const SnrLayout l = snr_layout(u.rows, u.cols);
  double* partial = static_cast<double*>(workspace);
  O* coef_b = reinterpret_cast<O*>(static_cast<char*>(workspace) + l.coef_offset);
  O* coef_c = coef_b + u.rows;
  unsigned int* done = reinterpret_cast<unsigned int*>(coef_c + u.rows);
  const SnrCoefArgs<O> coefs{args.snr, static_cast<const O*>(args.alpha.values), args.alpha.scale, args.alpha.stride,
                             args.batch_norms, coef_b, coef_c, done};
  const T* score = static_cast<const T*>(u.score);
  const T* noise = static_cast<const T*>(u.noise.tensor);

  cudaError_t err = cudaMemsetAsync(done, 0, sizeof(unsigned int), stream);
  if (err != cudaSuccess) return err;
  if (l.groups_per_row <= kShortRowGroups) {
    snr_sums_short_kernel<T><<<grid_for(u.rows), kThreads, 0, stream>>>(score, noise, l, u.noise, partial, coefs);
  } else {
    const int64_t chunks = u.rows * l.chunks_per_row;
    const unsigned int blocks = static_cast<unsigned int>(chunks < 65535 * 16 ? chunks : 65535 * 16);
    snr_sums_chunk_kernel<T><<<blocks, kThreads, 0, stream>>>(score, noise, l, u.noise, partial, coefs);
  }
  err = cudaGetLastError();
  if (err != cudaSuccess) return err;

  // Pass two: noisy_update's kernel with a = 1, b = ε, c = √(2ε), the same noise.
  return launch_noisy_update(NoisyUpdateArgs{u, Coef{nullptr, 1.0, 0}, Coef{coef_b, 1.0, 1}, Coef{coef_c, 1.0, 1}},
                             stream);
}

}  // namespace

size_t snr_langevin_step_workspace_bytes(int64_t rows, int64_t cols, DType dtype) {
  const SnrLayout l = snr_layout(rows, cols);
  const size_t coef_size = dtype == DType::Float64 ? sizeof(double) : sizeof(float);
  return l.coef_offset + 2 * coef_size * static_cast<size_t>(rows) + sizeof(unsigned int);  // + the counter
}

cudaError_t launch_snr_langevin_step(const SnrLangevinArgs& args, void* workspace, cudaStream_t stream) {
  return dispatch_dtype(args.data.dtype,
                        [&](auto tag) { return snr_typed<decltype(tag)>(args, workspace, stream); });
}

}  // namespace cuda
}  // namespace scorekern
