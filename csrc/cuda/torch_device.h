// What the CUDA glue needs from torch's CUDA runtime: the current stream,
// error checks and the graph-safe state of the random stream. Declared here
// and defined in torch_device.cpp (torch's CUDA headers); the CUDA simulator
// (tests/cudasim/torch_device.cpp) defines them for CPU tensors, so that it
// compiles and runs the glue itself, unchanged.
#pragma once

#include <ATen/core/Tensor.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "../scorekern/args.h"

namespace scorekern {
namespace cuda {

// The stream of the current device that torch's CUDA ops run on.
cudaStream_t current_stream();

// Throws a c10::Error naming the CUDA error unless err is cudaSuccess.
void check(cudaError_t err);

// The offset that the Python layer passes for noise drawn during CUDA graph
// capture (ops._stream; 2⁶⁴ − 1 as a word, refused as an explicit offset).
constexpr int64_t kCapturedOffset = -1;

// For src drawn at kCapturedOffset (and from no noise tensor): the default
// CUDA generator's graph-safe Philox state, as PyTorch's own dropout takes
// it. Under capture its seed and base offset are read on the device at each
// replay (common.cuh, resolved), so replays draw fresh noise, and the same
// noise as an eager run from the same state. Other sources are left as they are.
void take_captured_stream(NoiseSource& src, int64_t offset, const at::Tensor& like, const char* op);

}  // namespace cuda
}  // namespace scorekern
