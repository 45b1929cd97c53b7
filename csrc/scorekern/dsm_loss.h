// dsm_loss: the per-row sums of denoising score matching (Vincent 2011),
// Σ (p·s + q·z)² over each row, z regenerated from the stream (or read from
// a tensor). The weights, the ½ and the reductions over rows are a few
// [B]-sized tensor operations in scorekern/ops/dsm_loss.py.
#pragma once

#include "args.h"

namespace scorekern {

// out: [rows] sums in the arithmetic type (float, double for float64 data).
struct DsmLossArgs {
  DType dtype;
  int64_t rows, cols;
  const void* score;
  Coef p, q;
  NoiseSource noise;
  void* out;
};

template <typename T>
SK_HD SK_INLINE T dsm_residual(T p, T s, T q, T z) {
  return p * s + q * z;
}

namespace cpu { void dsm_loss(const DsmLossArgs& args); }
#if SK_CUDA_LAUNCHERS
namespace cuda {
// Needs dsm_loss_workspace_bytes(rows, cols) bytes (8-byte aligned; none
// for rows of up to 4096 columns).
size_t dsm_loss_workspace_bytes(int64_t rows, int64_t cols);
cudaError_t launch_dsm_loss(const DsmLossArgs& args, void* workspace, cudaStream_t stream);
}
#endif

}  // namespace scorekern
