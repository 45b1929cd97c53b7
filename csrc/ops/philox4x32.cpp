// philox4x32: the raw Philox4x32-10 block function. counter [..., 4] and the
// result hold 32-bit words in int64; the key is the 64-bit seed, low word
// first. Schema, checks, registration; kernels in csrc/cpu/philox4x32.cpp and
// csrc/cuda/philox4x32.cu, the rounds in csrc/scorekern/philox.h.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include "../scorekern/philox4x32.h"
#include "device.h"
#if SK_BUILD_CUDA
#include "../cuda/torch_device.h"
#endif

namespace scorekern {
namespace {

template <Device kDevice>
at::Tensor philox4x32(const at::Tensor& counter, int64_t seed) {
  TORCH_CHECK(counter.scalar_type() == at::kLong, "philox4x32: counter must be int64, got ", counter.scalar_type());
  TORCH_CHECK(counter.dim() >= 1 && counter.sym_size(-1) == 4, "philox4x32: counter must have shape [..., 4], got ",
              counter.sym_sizes());
  const c10::DeviceGuard guard(counter.device());
  const at::Tensor c = counter.contiguous();
  at::Tensor out = at::empty_symint(c.sym_sizes(), c.options());
  if constexpr (kDevice == Device::CPU) {
    const int64_t n = c.numel() / 4;
    const int64_t* in = c.data_ptr<int64_t>();
    for (int64_t i = 0; i < 4 * n; ++i) {
      TORCH_CHECK(in[i] >= 0 && in[i] <= int64_t{0xffffffff}, "philox4x32: counter words must lie in [0, 2^32), got ",
                  in[i]);
    }
    SK_IF_BUILD_CPU(cpu::philox4x32(in, n, static_cast<uint64_t>(seed), out.data_ptr<int64_t>());)
  } else if constexpr (kDevice == Device::CUDA) {
    SK_IF_BUILD_CUDA(cuda::check(cuda::launch_philox4x32(c.data_ptr<int64_t>(), c.numel() / 4,
                                                         static_cast<uint64_t>(seed), out.data_ptr<int64_t>(),
                                                         cuda::current_stream()));)
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(SK_LIBRARY, m) { m.def("philox4x32(Tensor counter, int seed) -> Tensor"); }

SK_IMPL_ON_DEVICES("philox4x32", philox4x32)

}  // namespace scorekern
