// randn and rademacher: noise from the stream (DESIGN §2), shaped like a
// [rows, cols] tensor. The arithmetic is the stream's (philox.h).
#pragma once

#include "args.h"

namespace scorekern {

struct NoiseArgs {
  DType dtype;
  NoiseKind kind;
  int64_t rows, cols;
  void* out;
  NoiseSource source;
};

namespace cpu { void fill_noise(const NoiseArgs& args); }
#if SK_CUDA_LAUNCHERS
namespace cuda { cudaError_t launch_fill_noise(const NoiseArgs& args, cudaStream_t stream); }
#endif

}  // namespace scorekern
