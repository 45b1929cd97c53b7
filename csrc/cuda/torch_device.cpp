// torch's CUDA runtime for the glue (torch_device.h): built only with CUDA.
#include "torch_device.h"

#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGraphsC10Utils.h>
#include <c10/cuda/CUDAStream.h>

#include <mutex>

namespace scorekern {
namespace cuda {

cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

void check(cudaError_t err) { C10_CUDA_CHECK(err); }

void take_captured_stream(NoiseSource& src, int64_t offset, const at::Tensor& like, const char* op) {
  if (offset != kCapturedOffset || src.tensor) return;
  TORCH_CHECK(c10::cuda::currentStreamCaptureStatusMayInitCtx() != c10::cuda::CaptureStatus::None, op,
              ": offset 2**64 - 1 marks noise drawn during CUDA graph capture, but no capture is underway");
  auto* gen = at::check_generator<at::CUDAGeneratorImpl>(
      at::cuda::detail::getDefaultCUDAGenerator(like.device().index()));
  at::PhiloxCudaState state;
  {
    std::lock_guard<std::mutex> lock(gen->mutex_);
    state = gen->philox_cuda_state(4);  // offsets advance in fours, as draw_seed_offset's
  }
  if (state.captured_) {
    src.captured_seed = state.seed_.ptr;
    src.captured_offset = state.offset_.ptr;
    src.pos = make_stream_pos(0, state.offset_intragraph_);
  } else {
    src.pos = make_stream_pos(state.seed_.val, state.offset_.val);
  }
}

}  // namespace cuda
}  // namespace scorekern
