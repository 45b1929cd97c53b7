// What mixture_score's two CUDA files share (mixture_score.cu: the exact
// kernels; mixture_score_tc.cu: the tensor-core forward): a query's
// bandwidth, warp sums, and the tensor-core path's entry points.
#pragma once

#include "../scorekern/mixture_score.h"
#include "common.cuh"

namespace scorekern {
namespace cuda {

template <typename O>
struct Query {
  O h2, inv_h2, lse;
};

template <typename O>
__device__ __forceinline__ Query<O> query_of(const MixtureArgs& a, int64_t q, bool backward) {
  const O* h = static_cast<const O*>(a.bandwidth.values);
  const O hq = static_cast<O>(a.bandwidth.scale) * (h ? h[q * a.bandwidth.stride] : O(1));
  Query<O> r;
  r.h2 = hq * hq;
  r.inv_h2 = O(1) / r.h2;
  r.lse = backward ? static_cast<const O*>(a.lse)[q] : O(0);
  return r;
}

template <typename O>
__device__ __forceinline__ O warp_sum(O v) {
#pragma unroll
  for (int s = 16; s > 0; s /= 2) v += __shfl_xor_sync(0xffffffffu, v, s);
  return v;
}

// The tensor-core forward (mixture_score_tc.cu), for float32 with 16 ≤ d ≤
// 128 on sm_80 or newer where `allowed`: its workspace (0 when it does not
// run or needs none), and its launch, which returns false (launching
// nothing) where it does not run.
size_t mixture_score_tc_workspace_bytes(const MixtureArgs& a, bool allowed);
bool launch_mixture_score_tc(const MixtureArgs& a, bool allowed, void* workspace, cudaStream_t stream,
                             cudaError_t& err);

}  // namespace cuda
}  // namespace scorekern
