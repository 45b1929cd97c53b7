// The tensor-core forward of mixture_score (float32, 16 ≤ d ≤ 128, sm_80 or
// newer, where the caller allows TF32): the expanded form on tensor cores, as
// flash attention does it. A block of four warps owns 64 queries (16 per
// warp); per tile of 64 centres staged in shared memory, x·μ and Σ p μ are
// WMMA products (TF32 inputs, float32 accumulation), ‖μ‖²/2 and ‖x‖² are
// exact float32, the online softmax and the accumulator are per thread.
// When the queries fill too few blocks, the centres are split over blocks
// and a second kernel merges the partial softmaxes.
#include <mma.h>

#include "mixture_score.cuh"

namespace scorekern {
namespace cuda {
namespace {

// Shared memory, in floats, for kDp
// coordinates (d rounded up to kDp, the padding zero); rows padded by 4 so
// that WMMA's 32-byte alignment holds and rows fall on different banks.

constexpr int kTcWarps = 4;
constexpr int kTcThreads = 32 * kTcWarps;
constexpr int kTcRows = 16 * kTcWarps;  // queries per block
constexpr int kTcTile = 64;             // centres per tile
static_assert(kTcThreads == 2 * kTcTile, "two threads share each centre's norm");

template <int kDp>
struct TcLayout {
  static constexpr int kLd = kDp + 4;        // [*, kDp] tiles
  static constexpr int kLdS = kTcTile + 4;   // [kTcRows, kTcTile] logits and weights
  static constexpr int kX = 0;                       // queries, TF32
  static constexpr int kC = kX + kTcRows * kLd;      // centres, exact
  static constexpr int kS = kC + kTcTile * kLd;      // x·μ, then p (TF32)
  static constexpr int kPV = kS + kTcRows * kLdS;    // the tile's Σ p μ
  static constexpr int kNorm = kPV + kTcRows * kLd;  // ‖μ_j‖²/2
  static constexpr int kLw = kNorm + kTcTile;        // ℓ_j, −∞ past N
  static constexpr size_t kBytes = (kLw + kTcTile) * sizeof(float);
};

// How the forward runs on tensor cores: `splits` blocks share each query's
// centres (0: it does not run there). Workspace: the partial (m, l) and
// accumulators of every split when splits > 1.
struct TcPlan {
  int splits;
  int dp;
};

template <typename Frag>
__device__ __forceinline__ void round_tf32(Frag& f) {
#pragma unroll
  for (int t = 0; t < f.num_elements; ++t) f.x[t] = nvcuda::wmma::__float_to_tf32(f.x[t]);
}

// One warp's 16×16 block c = a·b on tensor cores, over kSteps steps of 8 along
// the inner dimension: a row-major (already TF32), b exact and rounded per
// fragment, `b_step` floats apart per step; c stored row-major.
template <typename FragB, int kSteps>
__device__ __forceinline__ void mma_block(const float* a, int lda, const float* b, int ldb, int b_step, float* c,
                                          int ldc) {
  namespace wmma = nvcuda::wmma;
  wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
  wmma::fill_fragment(acc, 0.f);
#pragma unroll
  for (int k = 0; k < kSteps; ++k) {
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa;
    FragB fb;
    wmma::load_matrix_sync(fa, a + 8 * k, lda);
    wmma::load_matrix_sync(fb, b + k * b_step, ldb);
    round_tf32(fb);
    wmma::mma_sync(acc, fa, fb, acc);
  }
  wmma::store_matrix_sync(c, acc, ldc, wmma::mem_row_major);
}

template <int kDp>
__global__ void __launch_bounds__(kTcThreads) mixture_tc_kernel(MixtureArgs a, int64_t tiles_per_split,
                                                                 float* part_ml, float* part_acc) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  namespace wmma = nvcuda::wmma;
  using L = TcLayout<kDp>;
  using ColB = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major>;
  using RowB = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
  constexpr int kCols = kDp / 2;  // accumulator columns per thread
  extern __shared__ __align__(128) float smem[];
  float* xs = smem + L::kX;
  float* cs = smem + L::kC;
  float* norms = smem + L::kNorm;
  float* lws = smem + L::kLw;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* s_w = smem + L::kS + 16 * warp * L::kLdS;
  float* pv_w = smem + L::kPV + 16 * warp * L::kLd;
  const float* xs_w = xs + 16 * warp * L::kLd;
  const int64_t d = a.d, q0 = static_cast<int64_t>(blockIdx.x) * kTcRows;
  const float* x = static_cast<const float*>(a.x);
  const float* centers = static_cast<const float*>(a.centers);
  const float* lw = static_cast<const float*>(a.log_weights);
  for (int i = threadIdx.x; i < kTcRows * kDp; i += kTcThreads) {
    const int r = i / kDp, k = i % kDp;
    xs[r * L::kLd + k] = q0 + r < a.M && k < d ? wmma::__float_to_tf32(x[(q0 + r) * d + k]) : 0.f;
  }
  // This thread's query row r (of its warp's 16) and half of the columns;
  // threads r and r + 16 hold the same row's softmax state.
  const int r = lane % 16, half = lane / 16;
  const int64_t q = q0 + 16 * warp + r;
  const bool active = q < a.M;
  const Query<float> qy = active ? query_of<float>(a, q, false) : Query<float>{1.f, 1.f, 0.f};
  OnlineSoftmax<float> st;
  st.start();
  float acc[kCols];
#pragma unroll
  for (int i = 0; i < kCols; ++i) acc[i] = 0.f;
  const int64_t tiles = (a.N + kTcTile - 1) / kTcTile;
  const int64_t t_begin = blockIdx.y * tiles_per_split;
  const int64_t t_end = t_begin + tiles_per_split < tiles ? t_begin + tiles_per_split : tiles;
  for (int64_t t = t_begin; t < t_end; ++t) {
    const int64_t j0 = t * kTcTile;
    const int n = a.N - j0 < kTcTile ? static_cast<int>(a.N - j0) : kTcTile;
    __syncthreads();  // the previous tile is consumed
    for (int i = threadIdx.x; i < kTcTile * kDp; i += kTcThreads) {
      const int j = i / kDp, k = i % kDp;
      cs[j * L::kLd + k] = j < n && k < d ? centers[(j0 + j) * d + k] : 0.f;
    }
    if (threadIdx.x < kTcTile) {
      const int j = threadIdx.x;
      lws[j] = j < n ? (lw ? lw[j0 + j] : 0.f) : -INFINITY;
    }
    __syncthreads();
    {
      const int j = threadIdx.x / 2;
      float s = 0.f;
      for (int k = threadIdx.x % 2; k < kDp; k += 2) s += cs[j * L::kLd + k] * cs[j * L::kLd + k];
      s += __shfl_xor_sync(0xffffffffu, s, 1);
      if (threadIdx.x % 2 == 0) norms[j] = 0.5f * s;
    }
    // x·μ for the warp's 16 queries and the tile's centres (μᵀ: the centre
    // rows read column-major).
#pragma unroll 1
    for (int nb = 0; nb < kTcTile / 16; ++nb) {
      mma_block<ColB, kDp / 8>(xs_w, L::kLd, cs + 16 * nb * L::kLd, L::kLd, 8, s_w + 16 * nb, L::kLdS);
    }
    __syncthreads();  // the norms are in, the products stored
    // The online softmax: logit = ℓ + (x·μ − ‖μ‖²/2)/h² (+ ‖x‖²/2h², added
    // back in the lse); the weights replace the products, rounded to TF32.
    constexpr int kHalfTile = kTcTile / 2;
    float* s_row = s_w + r * L::kLdS + half * kHalfTile;
    const float* norm_h = norms + half * kHalfTile;
    const float* lw_h = lws + half * kHalfTile;
    float tile_max = -INFINITY;
#pragma unroll 8
    for (int i = 0; i < kHalfTile; ++i) {
      tile_max = fmaxf(tile_max, mixture_logit_expanded(lw_h[i], s_row[i] - norm_h[i], qy.inv_h2));
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 16));
    const float factor = st.rescale(tile_max);
    float psum = 0.f;
#pragma unroll 8
    for (int i = 0; i < kHalfTile; ++i) {
      const float logit = mixture_logit_expanded(lw_h[i], s_row[i] - norm_h[i], qy.inv_h2);
      const float p = st.m == -INFINITY ? 0.f : exp_nonpositive(logit - st.m);
      psum += p;
      s_row[i] = wmma::__float_to_tf32(p);
    }
    st.l += psum + __shfl_xor_sync(0xffffffffu, psum, 16);
    __syncwarp();
    // Σ p μ over the tile.
#pragma unroll 1
    for (int db = 0; db < kDp / 16; ++db) {
      mma_block<RowB, kTcTile / 8>(s_w, L::kLdS, cs + 16 * db, L::kLd, 8 * L::kLd, pv_w + 16 * db, L::kLd);
    }
    __syncwarp();
    const float* pv_row = pv_w + r * L::kLd + half * kCols;
#pragma unroll
    for (int i = 0; i < kCols; ++i) acc[i] = acc[i] * factor + pv_row[i];
  }
  // ‖x‖² (exact) of the row, over both threads' columns.
  const float* xq = x + q * d;
  float xx = 0.f;
#pragma unroll
  for (int i = 0; i < kCols; ++i) {
    const int64_t k = half * kCols + i;
    const float v = active && k < d ? xq[k] : 0.f;
    xx += v * v;
  }
  xx += __shfl_xor_sync(0xffffffffu, xx, 16);
  if (!active) return;
  if (part_ml) {  // one split of several: its partial state, merged later
    const int64_t slot = static_cast<int64_t>(blockIdx.y) * a.M + q;
    if (half == 0) {
      part_ml[2 * slot] = st.m;
      part_ml[2 * slot + 1] = st.l;
    }
#pragma unroll
    for (int i = 0; i < kCols; ++i) {
      const int64_t k = half * kCols + i;
      if (k < d) part_acc[slot * d + k] = acc[i];
    }
    return;
  }
  if (half == 0) static_cast<float*>(a.lse)[q] = st.lse(0.5f * xx * qy.inv_h2);
  if (a.score) {
    float* score = static_cast<float*>(a.score) + q * d;
#pragma unroll
    for (int i = 0; i < kCols; ++i) {
      const int64_t k = half * kCols + i;
      if (k < d) score[k] = (acc[i] / st.l - xq[k]) * qy.inv_h2;
    }
  }
#endif
}

// Merges the splits' partial softmaxes: one warp per query.
__global__ void __launch_bounds__(kThreads) mixture_merge_kernel(MixtureArgs a, int splits,
                                                                  const float* part_ml,
                                                                  const float* part_acc) {
  const int lane = threadIdx.x % 32;
  const int64_t q = (static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x) / 32;
  if (q >= a.M) return;  // whole warps leave together
  const int64_t d = a.d;
  OnlineSoftmax<float> st;
  st.start();
  for (int s = 0; s < splits; ++s) st.rescale(part_ml[2 * (s * a.M + q)]);
  for (int s = 0; s < splits; ++s) {
    const float ms = part_ml[2 * (s * a.M + q)];
    if (ms != -INFINITY) st.l += exp_nonpositive(ms - st.m) * part_ml[2 * (s * a.M + q) + 1];
  }
  const Query<float> qy = query_of<float>(a, q, false);
  const float* xq = static_cast<const float*>(a.x) + q * d;
  float xx = 0.f;
  for (int64_t k = lane; k < d; k += 32) xx += xq[k] * xq[k];
  xx = warp_sum(xx);
  if (lane == 0) static_cast<float*>(a.lse)[q] = st.lse(0.5f * xx * qy.inv_h2);
  if (!a.score) return;
  for (int64_t k = lane; k < d; k += 32) {
    float acc = 0.f;
    for (int s = 0; s < splits; ++s) {
      const float ms = part_ml[2 * (s * a.M + q)];
      if (ms != -INFINITY) acc += exp_nonpositive(ms - st.m) * part_acc[(s * a.M + q) * d + k];
    }
    static_cast<float*>(a.score)[q * d + k] = (acc / st.l - xq[k]) * qy.inv_h2;
  }
}

TcPlan tc_plan(const MixtureArgs& a, bool allowed) {
  TcPlan plan{0, 0};
  if (!allowed || a.float64 || a.d < 16 || a.d > 128 || a.M == 0) return plan;
  int device = 0, major = 0, sms = 0, smem = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess ||
      major < 8) {
    return plan;
  }
  const int dp = a.d <= 16 ? 16 : a.d <= 32 ? 32 : a.d <= 64 ? 64 : 128;
  const size_t bytes = dp == 16   ? TcLayout<16>::kBytes
                       : dp == 32 ? TcLayout<32>::kBytes
                       : dp == 64 ? TcLayout<64>::kBytes
                                  : TcLayout<128>::kBytes;
  if (bytes > static_cast<size_t>(smem)) return plan;  // e.g. d > 64 on sm_86/sm_89 (99 KiB)
  plan.dp = dp;
  // Enough blocks for two per multiprocessor, each split at least 4 tiles.
  const int64_t blocks = (a.M + kTcRows - 1) / kTcRows;
  const int64_t tiles = (a.N + kTcTile - 1) / kTcTile;
  int64_t splits = (2 * static_cast<int64_t>(sms) + blocks - 1) / blocks;
  const int64_t most = tiles / 4 > 1 ? tiles / 4 : 1;
  splits = splits < most ? splits : most;
  splits = splits < 64 ? splits : 64;
  // Every split gets a tile: ceil(tiles / splits) tiles each.
  const int64_t per = (tiles + splits - 1) / splits;
  plan.splits = static_cast<int>((tiles + per - 1) / per);
  return plan;
}

template <int kDp>
cudaError_t launch_tc(const MixtureArgs& a, const TcPlan& plan, void* workspace, cudaStream_t stream) {
  using L = TcLayout<kDp>;
  const cudaError_t err = cudaFuncSetAttribute(mixture_tc_kernel<kDp>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(L::kBytes));
  if (err != cudaSuccess) return err;
  const int64_t tiles = (a.N + kTcTile - 1) / kTcTile;
  const int64_t per = (tiles + plan.splits - 1) / plan.splits;
  float* part_ml = plan.splits > 1 ? static_cast<float*>(workspace) : nullptr;
  float* part_acc = part_ml ? part_ml + 2 * plan.splits * a.M : nullptr;
  const dim3 grid(static_cast<unsigned int>((a.M + kTcRows - 1) / kTcRows), static_cast<unsigned int>(plan.splits));
  mixture_tc_kernel<kDp><<<grid, kTcThreads, L::kBytes, stream>>>(a, per, part_ml, part_acc);
  if (!part_ml) return cudaGetLastError();
  const dim3 merge_grid(static_cast<unsigned int>((a.M * 32 + kThreads - 1) / kThreads));
  mixture_merge_kernel<<<merge_grid, kThreads, 0, stream>>>(a, plan.splits, part_ml, part_acc);
  return cudaGetLastError();
}

}  // namespace

size_t mixture_score_tc_workspace_bytes(const MixtureArgs& args, bool allowed) {
  const TcPlan plan = tc_plan(args, allowed);
  if (plan.splits <= 1) return 0;
  return static_cast<size_t>(plan.splits) * static_cast<size_t>(args.M) * (2 + args.d) * sizeof(float);
}

bool launch_mixture_score_tc(const MixtureArgs& args, bool allowed, void* workspace, cudaStream_t stream,
                             cudaError_t& err) {
  const TcPlan plan = tc_plan(args, allowed);
  if (plan.splits == 0) return false;
  switch (plan.dp) {
    case 16: err = launch_tc<16>(args, plan, workspace, stream); break;
    case 32: err = launch_tc<32>(args, plan, workspace, stream); break;
    case 64: err = launch_tc<64>(args, plan, workspace, stream); break;
    default: err = launch_tc<128>(args, plan, workspace, stream); break;
  }
  return true;
}

}  // namespace cuda
}  // namespace scorekern
