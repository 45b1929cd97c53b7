// noisy_update: x' = a·x + b·score + c·z in one pass (DESIGN §1), z drawn in
// the kernel (or read from `noise`), and the mean a·x + b·score when asked.
// Its schemas, its checks and their registration on every device. The
// kernels are csrc/cpu/noisy_update.cpp and csrc/cuda/noisy_update.cu, the
// arithmetic csrc/scorekern/noisy_update.h.
#include <ATen/core/Tensor.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include "../coefficients.h"
#include "../scorekern/noisy_update.h"
#include "../update_call.h"
#include "device.h"
#if SK_BUILD_CUDA
#include "../cuda/torch_device.h"
#endif

namespace scorekern {
namespace {

template <Device kDevice>
void noisy_update_out(const at::Tensor& x, const at::Tensor& score, at::TensorList coef_values,
                      at::IntArrayRef coef_slots, at::ArrayRef<double> coef_scales,
                      const std::optional<at::Tensor>& noise, int64_t seed, int64_t offset,
                      const std::optional<at::Tensor>& row_ids, const at::Tensor& out,
                      const std::optional<at::Tensor>& mean_out) {
  constexpr const char* op = "noisy_update";
  constexpr bool kIsMeta = kDevice == Device::Meta;
  const c10::DeviceGuard guard(x.device());
  UpdateCall call =
      prepare_update<kIsMeta>(x, score, noise, seed, offset, row_ids, out, mean_out, op);
  NoisyUpdateArgs args{call.data, {}, {}, {}};
  const auto c = checked_coefs<3>(coef_values, coef_slots, coef_scales, x, call.rows, {"a", "b", "c"},
                                  op, kIsMeta);
  args.a = c[0];
  args.b = c[1];
  args.c = c[2];
  if constexpr (kDevice == Device::CPU) {
    SK_IF_BUILD_CPU(cpu::noisy_update(args);)
  } else if constexpr (kDevice == Device::CUDA) {
    SK_IF_BUILD_CUDA(cuda::take_captured_stream(args.data.noise, offset, x, op);
                     cuda::check(cuda::launch_noisy_update(args, cuda::current_stream()));)
  }
  call.finish();
}

// The functional form, on every device (meta included): new outputs, then
// noisy_update_out.
template <Device kDevice>
std::tuple<at::Tensor, at::Tensor> noisy_update(const at::Tensor& x, const at::Tensor& score,
                                                at::TensorList coef_values, at::IntArrayRef coef_slots,
                                                at::ArrayRef<double> coef_scales,
                                                const std::optional<at::Tensor>& noise, int64_t seed,
                                                int64_t offset, const std::optional<at::Tensor>& row_ids,
                                                bool return_mean) {
  const UpdateOutputs o = new_update_outputs(x, return_mean);
  noisy_update_out<kDevice>(x, score, coef_values, coef_slots, coef_scales, noise, seed, offset, row_ids, o.out,
                            o.mean_out());
  return o.result();
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(SK_LIBRARY, m) {
  // a, b and c travel as one bundle (coefficients.h).
  m.def(
      "noisy_update(Tensor x, Tensor score, Tensor[] coef_values, int[] coef_slots, float[] coef_scales, "
      "Tensor? noise, int seed, int offset, Tensor? row_ids, bool return_mean) -> (Tensor, Tensor)");
  m.def(
      "noisy_update_out(Tensor x, Tensor score, Tensor[] coef_values, int[] coef_slots, float[] coef_scales, "
      "Tensor? noise, int seed, int offset, Tensor? row_ids, Tensor(a!) out, Tensor(b!)? mean_out) -> ()");
}

SK_IMPL_ON_DEVICES("noisy_update", noisy_update)
SK_IMPL_ON_DEVICES("noisy_update_out", noisy_update_out)

}  // namespace scorekern
