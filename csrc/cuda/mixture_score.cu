// The CUDA kernels of mixture_score and mixture_score_backward
// (csrc/scorekern/mixture_score.h): the exact float32 (float64) form, an
// online softmax per query over all centres.
// - d ≤ 8: one thread per query; the block stages tiles of kThreads centres
//   (and their log-weights) in shared memory.
// - larger d: one warp per query, the coordinates split over the lanes
//   (kPer per lane, d ≤ 32·kMaxPer); a centre's squared distance and, in the
//   backward, (μ − m)·g are warp sums.
// The backward recomputes the weights from the saved lse (no running
// maximum) and sums w ((μ − m)·g)(μ − m). The float32 forward may take the
// tensor cores instead (mixture_score_tc.cu); the backward never does.
#include "mixture_score.cuh"

namespace scorekern {
namespace cuda {
namespace {

constexpr int kMaxPer = 16;  // coordinates per lane: d ≤ 512

// One centre's step for the coordinates of a query that this thread holds
// (diff = μ − x): the forward's online softmax, acc ← acc·factor + p·diff;
// the backward's acc += w·(u·g)·u with u = μ − m = diff + xm and w from the
// saved lse. `reduce` completes u·g over the threads sharing the query.
template <bool kBackward, typename O, int N, typename Reduce>
__device__ __forceinline__ void accumulate(const O (&diff)[N], const O (&xm)[N], const O (&g)[N], O logit, O lse,
                                           OnlineSoftmax<O>& st, O (&acc)[N], Reduce&& reduce) {
  if (kBackward) {
    O u[N], ug = O(0);
#pragma unroll
    for (int k = 0; k < N; ++k) {
      u[k] = diff[k] + xm[k];
      ug += u[k] * g[k];
    }
    const O wug = exp_nonpositive(logit - lse) * reduce(ug);
#pragma unroll
    for (int k = 0; k < N; ++k) acc[k] += wug * u[k];
  } else {
    O factor;
    const O p = st.add_one(logit, factor);
#pragma unroll
    for (int k = 0; k < N; ++k) acc[k] = acc[k] * factor + p * diff[k];
  }
}

template <typename O, int D, bool kBackward>
__global__ void __launch_bounds__(kThreads) mixture_small_kernel(MixtureBackArgs b) {
  const MixtureArgs& a = b.fwd;
  __shared__ O tile[kThreads * D];
  __shared__ O tile_lw[kThreads];
  const O* centers = static_cast<const O*>(a.centers);
  const O* lw = static_cast<const O*>(a.log_weights);
  const int64_t q = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const bool active = q < a.M;
  O x[D], g[D], xm[D], acc[D];
  Query<O> qy{O(1), O(1), O(0)};
  if (active) {
    qy = query_of<O>(a, q, kBackward);
#pragma unroll
    for (int k = 0; k < D; ++k) {
      x[k] = static_cast<const O*>(a.x)[q * D + k];
      g[k] = kBackward ? static_cast<const O*>(b.grad)[q * D + k] : O(0);
      xm[k] = kBackward ? -qy.h2 * static_cast<const O*>(a.score)[q * D + k] : O(0);
    }
  }
#pragma unroll
  for (int k = 0; k < D; ++k) acc[k] = O(0);
  OnlineSoftmax<O> st;
  st.start();
  for (int64_t j0 = 0; j0 < a.N; j0 += kThreads) {
    const int n = a.N - j0 < kThreads ? static_cast<int>(a.N - j0) : kThreads;
    __syncthreads();
    for (int i = threadIdx.x; i < n * D; i += kThreads) tile[i] = centers[j0 * D + i];
    if (static_cast<int>(threadIdx.x) < n) tile_lw[threadIdx.x] = lw ? lw[j0 + threadIdx.x] : O(0);
    __syncthreads();
    if (!active) continue;
    for (int j = 0; j < n; ++j) {
      O diff[D], dist = O(0);
#pragma unroll
      for (int k = 0; k < D; ++k) {
        diff[k] = tile[j * D + k] - x[k];
        dist += diff[k] * diff[k];
      }
      accumulate<kBackward>(diff, xm, g, mixture_logit(tile_lw[j], dist, qy.inv_h2), qy.lse, st, acc,
                            [](O v) { return v; });
    }
  }
  if (!active) return;
  if (kBackward) {
    O* gx = static_cast<O*>(b.grad_x);
#pragma unroll
    for (int k = 0; k < D; ++k) gx[q * D + k] = (acc[k] * qy.inv_h2 - g[k]) * qy.inv_h2;
    return;
  }
  static_cast<O*>(a.lse)[q] = st.lse(O(0));
  if (a.score) {
    O* score = static_cast<O*>(a.score);
#pragma unroll
    for (int k = 0; k < D; ++k) score[q * D + k] = acc[k] / st.l * qy.inv_h2;
  }
}

template <typename O, int kPer, bool kBackward>
__global__ void __launch_bounds__(kThreads) mixture_warp_kernel(MixtureBackArgs b) {
  const MixtureArgs& a = b.fwd;
  const int lane = threadIdx.x % 32;
  const int64_t q = (static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x) / 32;
  if (q >= a.M) return;  // whole warps leave together
  const int64_t d = a.d;
  const O* centers = static_cast<const O*>(a.centers);
  const O* lw = static_cast<const O*>(a.log_weights);
  const Query<O> qy = query_of<O>(a, q, kBackward);
  O x[kPer], g[kPer], xm[kPer], acc[kPer];
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int64_t k = lane + 32 * i;
    const bool in = k < d;
    x[i] = in ? static_cast<const O*>(a.x)[q * d + k] : O(0);
    g[i] = in && kBackward ? static_cast<const O*>(b.grad)[q * d + k] : O(0);
    xm[i] = in && kBackward ? -qy.h2 * static_cast<const O*>(a.score)[q * d + k] : O(0);
    acc[i] = O(0);
  }
  OnlineSoftmax<O> st;
  st.start();
  for (int64_t j = 0; j < a.N; ++j) {
    O diff[kPer], dist = O(0);
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const int64_t k = lane + 32 * i;
      diff[i] = k < d ? centers[j * d + k] - x[i] : O(0);
      dist += diff[i] * diff[i];
    }
    // Coordinates past d have diff = xm = g = 0, so they add nothing.
    accumulate<kBackward>(diff, xm, g, mixture_logit(lw ? lw[j] : O(0), warp_sum(dist), qy.inv_h2), qy.lse, st,
                          acc, [](O v) { return warp_sum(v); });
  }
  if (!kBackward && lane == 0) static_cast<O*>(a.lse)[q] = st.lse(O(0));
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int64_t k = lane + 32 * i;
    if (k >= d) continue;
    if (kBackward) static_cast<O*>(b.grad_x)[q * d + k] = (acc[i] * qy.inv_h2 - g[i]) * qy.inv_h2;
    else if (a.score) static_cast<O*>(a.score)[q * d + k] = acc[i] / st.l * qy.inv_h2;
  }
}

template <typename O, bool kBackward>
cudaError_t launch_typed(const MixtureBackArgs& b, cudaStream_t stream) {
  const int64_t M = b.fwd.M, d = b.fwd.d;
  const dim3 block(kThreads);
  if (d <= 8) {
    const dim3 grid(static_cast<unsigned int>((M + kThreads - 1) / kThreads));
    switch (d) {
#define SK_SMALL(D) \
  case D: mixture_small_kernel<O, D, kBackward><<<grid, block, 0, stream>>>(b); break;
      SK_SMALL(1) SK_SMALL(2) SK_SMALL(3) SK_SMALL(4) SK_SMALL(5) SK_SMALL(6) SK_SMALL(7) SK_SMALL(8)
#undef SK_SMALL
    }
    return cudaGetLastError();
  }
  const dim3 grid(static_cast<unsigned int>((M * 32 + kThreads - 1) / kThreads));
  const int64_t per = (d + 31) / 32;
  if (per <= 1) mixture_warp_kernel<O, 1, kBackward><<<grid, block, 0, stream>>>(b);
  else if (per <= 2) mixture_warp_kernel<O, 2, kBackward><<<grid, block, 0, stream>>>(b);
  else if (per <= 4) mixture_warp_kernel<O, 4, kBackward><<<grid, block, 0, stream>>>(b);
  else if (per <= 8) mixture_warp_kernel<O, 8, kBackward><<<grid, block, 0, stream>>>(b);
  else mixture_warp_kernel<O, kMaxPer, kBackward><<<grid, block, 0, stream>>>(b);
  return cudaGetLastError();
}

}  // namespace

int64_t mixture_score_max_dim() { return 32 * kMaxPer; }

size_t mixture_score_workspace_bytes(const MixtureArgs& args, bool tensor_cores) {
  return mixture_score_tc_workspace_bytes(args, tensor_cores);
}

cudaError_t launch_mixture_score(const MixtureArgs& args, bool tensor_cores, void* workspace, cudaStream_t stream) {
  if (args.M == 0) return cudaSuccess;
  if (args.d > mixture_score_max_dim()) return cudaErrorInvalidValue;
  cudaError_t err = cudaSuccess;
  if (launch_mixture_score_tc(args, tensor_cores, workspace, stream, err)) return err;
  const MixtureBackArgs b{args, nullptr, nullptr};
  return args.float64 ? launch_typed<double, false>(b, stream) : launch_typed<float, false>(b, stream);
}

cudaError_t launch_mixture_score_backward(const MixtureBackArgs& args, cudaStream_t stream) {
  if (args.fwd.M == 0) return cudaSuccess;
  if (args.fwd.d > mixture_score_max_dim()) return cudaErrorInvalidValue;
  return args.fwd.float64 ? launch_typed<double, true>(args, stream) : launch_typed<float, true>(args, stream);
}

}  // namespace cuda
}  // namespace scorekern
