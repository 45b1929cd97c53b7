// What the CUDA glue needs from torch's CUDA runtime: the current stream,
// error checks and the graph-safe state of the random stream. Declared here
// and defined in torch_device.cpp (torch's CUDA headers); the CUDA simulator
// (tests/cudasim/torch_device.cpp) defines them for CPU tensors, so that it
// compiles and runs the glue itself, unchanged.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
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

// A launch's scratch memory on like's device, from torch's caching allocator
// (stream-ordered; null for 0 bytes), held until it goes out of scope.
class Workspace {
 public:
  Workspace(size_t bytes, const at::Tensor& like)
      : memory_(bytes ? at::empty({static_cast<int64_t>(bytes)}, like.options().dtype(at::kByte)) : at::Tensor()) {}
  void* get() const { return memory_.defined() ? memory_.data_ptr() : nullptr; }

 private:
  at::Tensor memory_;
};

}  // namespace cuda
}  // namespace scorekern
