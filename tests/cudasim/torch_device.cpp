// The simulator's definitions of the glue's device layer
// (csrc/cuda/torch_device.h), for CPU tensors, and its controls as torch ops
// (torch.ops.cudasim.*):
//
//   configure(int seed, int sm_count, int arch)  the schedule seed (and the
//                                           SM count and compute capability, where > 0)
//   stats() -> int[]                        launches, blocks, threads, most blocks
//   kernels_run() -> str[]                  every kernel instantiation that ran
//   begin_capture(Tensor seed, Tensor offset)  noise drawn at the capture
//                                           marker reads its seed and base
//                                           offset through these int64 [1]
//                                           tensors' pointers at each launch,
//                                           as under CUDA graph capture
//   end_capture() -> int                    the offset consumed within the capture
//   fault_case(str name, Tensor out, Tensor in)  runs a kernel of faults.cu
#include "../../csrc/cuda/torch_device.h"

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <string>
#include <vector>

#include "control.h"

namespace scorekern {
namespace cuda {

namespace {
struct Capture {
  bool active = false;
  at::Tensor seed, offset;
  uint64_t intragraph = 0;
};
Capture& capture() {
  static Capture c;
  return c;
}
}  // namespace

cudaStream_t current_stream() { return nullptr; }

void check(cudaError_t err) {
  TORCH_CHECK(err == cudaSuccess, "CUDA error (simulated): ", cudaGetErrorString(err));
}

void take_captured_stream(NoiseSource& src, int64_t offset, const at::Tensor&, const char* op) {
  if (offset != kCapturedOffset || src.tensor) return;
  Capture& c = capture();
  TORCH_CHECK(c.active, op,
              ": offset 2**64 - 1 marks noise drawn during CUDA graph capture, but no capture is underway");
  src.captured_seed = c.seed.data_ptr<int64_t>();
  src.captured_offset = c.offset.data_ptr<int64_t>();
  src.pos = make_stream_pos(0, c.intragraph);
  c.intragraph += 4;  // as philox_cuda_state(4) advances
}

}  // namespace cuda
}  // namespace scorekern

void cudasim_fault_case(const char* name, float* out, const float* in);  // faults.cu

namespace {

void fault_case(c10::string_view name, const at::Tensor& out, const at::Tensor& in) {
  TORCH_CHECK(out.scalar_type() == at::kFloat && out.is_contiguous() && out.numel() >= 4096 &&
                  in.scalar_type() == at::kFloat && in.is_contiguous() && in.numel() >= 512,
              "cudasim.fault_case: out (4096) and in (512) must be contiguous float32 tensors");
  cudasim_fault_case(std::string(name).c_str(), out.data_ptr<float>(), in.data_ptr<float>());
}

void configure(int64_t seed, int64_t sm_count, int64_t arch) {
  cudasim::configure(static_cast<uint64_t>(seed), static_cast<int>(sm_count), static_cast<int>(arch));
}

std::vector<int64_t> stats() {
  const cudasim::Stats s = cudasim::stats();
  return {s.launches, s.blocks, s.threads, s.max_blocks};
}

void begin_capture(const at::Tensor& seed, const at::Tensor& offset) {
  for (const at::Tensor* t : {&seed, &offset}) {
    TORCH_CHECK(t->scalar_type() == at::kLong && t->numel() == 1 && t->is_cpu(),
                "cudasim.begin_capture: seed and offset must be int64 CPU tensors of one element");
  }
  auto& c = scorekern::cuda::capture();
  c.active = true;
  c.seed = seed;
  c.offset = offset;
  c.intragraph = 0;
}

int64_t end_capture() {
  auto& c = scorekern::cuda::capture();
  TORCH_CHECK(c.active, "cudasim.end_capture: no capture is underway");
  const uint64_t used = c.intragraph;
  c = scorekern::cuda::Capture{};
  return static_cast<int64_t>(used);
}

}  // namespace

TORCH_LIBRARY(cudasim, m) {
  m.def("configure(int seed, int sm_count, int arch=0) -> ()", &configure);
  m.def("stats() -> int[]", &stats);
  m.def("kernels_run() -> str[]", [] { return cudasim::kernels_run(); });
  m.def("begin_capture(Tensor seed, Tensor offset) -> ()", &begin_capture);
  m.def("end_capture() -> int", &end_capture);
  m.def("fault_case(str name, Tensor(a!) out, Tensor input) -> ()", &fault_case);
}
