// randn and rademacher: noise shaped like `like` from the documented stream
// (DESIGN §2); only like's shape, dtype and device matter. Schemas, checks,
// registration; kernels in csrc/cpu/noise.cpp and csrc/cuda/noise.cu.
#include <ATen/core/Tensor.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include "../allocator.h"
#include "../noise_source.h"
#include "../rows.h"
#include "../scorekern/noise.h"
#include "device.h"
#if SK_BUILD_CUDA
#include "../cuda/torch_device.h"
#endif

namespace scorekern {
namespace {

template <Device kDevice>
at::Tensor fill_noise(const at::Tensor& like, int64_t seed, int64_t offset, const std::optional<at::Tensor>& row_ids,
                      NoiseKind kind, const char* op) {
  constexpr bool kIsMeta = kDevice == Device::Meta;
  const c10::DeviceGuard guard(like.device());
  const RowShape shape = row_shape(like, op);
  NoiseArgs args{kernel_dtype(like, op), kind, shape.rows_int(), shape.cols_int(), nullptr, {}};
  args.source = checked_noise(std::nullopt, seed, offset, row_ids, like, shape.rows, "noise", "like", op, kIsMeta)
                    .source;
  at::Tensor out = empty_output(like.sym_sizes(), like.options());
  if constexpr (kDevice == Device::CPU) {
    args.out = out.data_ptr();
    SK_IF_BUILD_CPU(cpu::fill_noise(args);)
  } else if constexpr (kDevice == Device::CUDA) {
    args.out = out.data_ptr();
    SK_IF_BUILD_CUDA(cuda::take_captured_stream(args.source, offset, like, op);
                     cuda::check(cuda::launch_fill_noise(args, cuda::current_stream()));)
  }
  return out;
}

template <Device kDevice>
at::Tensor randn(const at::Tensor& like, int64_t seed, int64_t offset, const std::optional<at::Tensor>& row_ids) {
  return fill_noise<kDevice>(like, seed, offset, row_ids, NoiseKind::Normal, "randn");
}

template <Device kDevice>
at::Tensor rademacher(const at::Tensor& like, int64_t seed, int64_t offset,
                      const std::optional<at::Tensor>& row_ids) {
  return fill_noise<kDevice>(like, seed, offset, row_ids, NoiseKind::Rademacher, "rademacher");
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(SK_LIBRARY, m) {
  m.def("randn(Tensor like, int seed, int offset, Tensor? row_ids) -> Tensor");
  m.def("rademacher(Tensor like, int seed, int offset, Tensor? row_ids) -> Tensor");
}

SK_IMPL_ON_DEVICES("randn", randn)
SK_IMPL_ON_DEVICES("rademacher", rademacher)

}  // namespace scorekern
