// The CUDA launchers: raw pointers, sizes and a stream, no torch header
// (DESIGN §3), so that nvcc compiles them on a machine whose PyTorch has no
// CUDA. csrc/cuda/glue.cpp checks the tensors and calls these on the current
// stream. Each returns the launch's error (cudaSuccess when fine).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "../scorekern/args.h"
#include "../scorekern/mixture.h"

namespace scorekern {
namespace cuda {

// The raw block function: n counters of four 32-bit words (held in int64).
cudaError_t launch_philox4x32(const int64_t* counters, int64_t n, uint64_t seed, int64_t* out,
                              cudaStream_t stream);

// Normal or Rademacher noise for a [rows, cols] tensor of `dtype`.
cudaError_t launch_fill_noise(DType dtype, NoiseKind kind, int64_t rows, int64_t cols, void* out,
                              const NoiseSource& noise, cudaStream_t stream);

// x' = a·x + b·score + c·z (and the mean when args.mean is set); with
// args.replace.y set, the masked update of inpainting (noisy_update.h).
cudaError_t launch_noisy_update(const UpdateArgs& args, cudaStream_t stream);

// The signal-to-noise Langevin corrector: per-row norms (z generated, not
// stored), the per-row step, then the update with z regenerated. Needs
// snr_workspace_bytes(rows, cols, dtype) bytes of device memory, 16-byte aligned.
struct SnrArgs {
  UpdateArgs update;  // its a, b and c are set by the launcher
  double snr;
  Coef alpha;
  bool batch_norms;
};
size_t snr_workspace_bytes(int64_t rows, int64_t cols, DType dtype);
cudaError_t launch_snr_langevin_step(const SnrArgs& args, void* workspace, cudaStream_t stream);

// The losses' per-row sums (RowSumArgs) into out0 (and out1 for the sliced
// kinds): [rows] arrays of the arithmetic type (float, double for float64
// data). Needs row_sums_workspace_bytes(rows, cols) bytes of device memory
// (8-byte aligned; none for rows of up to 4096 columns).
size_t row_sums_workspace_bytes(int64_t rows, int64_t cols);
cudaError_t launch_row_sums(const RowSumArgs& args, void* workspace, void* out0, void* out1,
                            cudaStream_t stream);

// The mixture scores (mixture.h): the forward writes args.fwd.score (when
// set) and args.fwd.lse; the backward reads them and the gradient and writes
// args.grad_x. d may be at most mixture_max_dim(). `tensor_cores` lets a
// float32 forward with 16 ≤ d ≤ 128 take TF32 tensor cores on sm_80 or newer;
// it then needs mixture_workspace_bytes(args.fwd, true) bytes of device
// memory (4-byte aligned; often none).
int64_t mixture_max_dim();
size_t mixture_workspace_bytes(const MixtureArgs& args, bool tensor_cores);
cudaError_t launch_mixture(const MixtureBackArgs& args, bool backward, bool tensor_cores, void* workspace,
                           cudaStream_t stream);

}  // namespace cuda
}  // namespace scorekern
