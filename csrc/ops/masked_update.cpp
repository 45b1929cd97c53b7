// masked_update: inpainting's step in one pass, mask·(μ·y + σ·z₁) + (1 −
// mask)·(a·x + b·score + c·z₂), the mean likewise without the noise. z₂ is
// the update's noise (noise, or the stream at offset), z₁ the observed
// part's (observed_noise, or the stream at observed_offset), with the same
// row ids. Schemas, checks, registration; kernels in csrc/cpu and csrc/cuda,
// arithmetic in csrc/scorekern/masked_update.h.
#include <ATen/MemoryOverlap.h>
#include <ATen/core/Tensor.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include "../coefficients.h"
#include "../noise_source.h"
#include "../rows.h"
#include "../scorekern/masked_update.h"
#include "../update_call.h"
#include "device.h"
#if SK_BUILD_CUDA
#include "../cuda/torch_device.h"
#endif

namespace scorekern {
namespace {

template <Device kDevice>
void masked_update_out(const at::Tensor& x, const at::Tensor& score, const at::Tensor& y, const at::Tensor& mask,
                       at::TensorList coef_values, at::IntArrayRef coef_slots, at::ArrayRef<double> coef_scales,
                       const std::optional<at::Tensor>& noise, const std::optional<at::Tensor>& observed_noise,
                       int64_t seed, int64_t offset, int64_t observed_offset,
                       const std::optional<at::Tensor>& row_ids, const at::Tensor& out,
                       const std::optional<at::Tensor>& mean_out) {
  constexpr const char* op = "masked_update";
  constexpr bool kIsMeta = kDevice == Device::Meta;
  const c10::DeviceGuard guard(x.device());
  UpdateCall call = prepare_update<kIsMeta>(x, score, noise, seed, offset, row_ids, out, mean_out, op);
  MaskedUpdateArgs args{};
  args.data = call.data;
  const auto c = checked_coefs<5>(coef_values, coef_slots, coef_scales, x, call.rows,
                                  {"a", "b", "c", "mu", "sigma"}, op, kIsMeta);
  args.a = c[0];
  args.b = c[1];
  args.c = c[2];
  args.mu = c[3];
  args.sigma = c[4];
  check_like(y, x, "y", op);
  check_like(mask, x, "mask", op);
  NoiseInput z1 = checked_noise(observed_noise, seed, observed_offset, row_ids, x, call.rows,
                                "observed_noise", "x", op, kIsMeta);
  if constexpr (!kIsMeta) {
    for (const at::Tensor* t : {&y, &mask}) {
      at::assert_no_overlap(out, *t);
      if (mean_out.has_value()) at::assert_no_overlap(*mean_out, *t);
    }
    if (observed_noise.has_value()) {
      at::assert_no_overlap(out, *observed_noise);
      if (mean_out.has_value()) at::assert_no_overlap(*mean_out, *observed_noise);
    }
  }
  const at::Tensor yc = y.contiguous(), maskc = mask.contiguous();
  args.observed = z1.source;
  if constexpr (kDevice == Device::CPU) {
    args.y = yc.data_ptr();
    args.mask = maskc.data_ptr();
    SK_IF_BUILD_CPU(cpu::masked_update(args);)
  } else if constexpr (kDevice == Device::CUDA) {
    args.y = yc.data_ptr();
    args.mask = maskc.data_ptr();
    // In the order the Python layer draws them: the update's noise, then the observed entries'.
    SK_IF_BUILD_CUDA(cuda::take_captured_stream(args.data.noise, offset, x, op);
                     cuda::take_captured_stream(args.observed, observed_offset, x, op);
                     cuda::check(cuda::launch_masked_update(args, cuda::current_stream()));)
  }
  call.finish();
}

// The functional form, on every device (meta included): new outputs, then
// masked_update_out.
template <Device kDevice>
std::tuple<at::Tensor, at::Tensor> masked_update(
    const at::Tensor& x, const at::Tensor& score, const at::Tensor& y, const at::Tensor& mask,
    at::TensorList coef_values, at::IntArrayRef coef_slots, at::ArrayRef<double> coef_scales,
    const std::optional<at::Tensor>& noise, const std::optional<at::Tensor>& observed_noise, int64_t seed,
    int64_t offset, int64_t observed_offset, const std::optional<at::Tensor>& row_ids, bool return_mean) {
  const UpdateOutputs o = new_update_outputs(x, return_mean);
  masked_update_out<kDevice>(x, score, y, mask, coef_values, coef_slots, coef_scales, noise, observed_noise, seed,
                             offset, observed_offset, row_ids, o.out, o.mean_out());
  return o.result();
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(SK_LIBRARY, m) {
  // a, b, c, mu and sigma travel as one bundle (coefficients.h).
  m.def(
      "masked_update(Tensor x, Tensor score, Tensor y, Tensor mask, Tensor[] coef_values, int[] coef_slots, "
      "float[] coef_scales, Tensor? noise, Tensor? observed_noise, int seed, int offset, int observed_offset, "
      "Tensor? row_ids, bool return_mean) -> (Tensor, Tensor)");
  m.def(
      "masked_update_out(Tensor x, Tensor score, Tensor y, Tensor mask, Tensor[] coef_values, int[] coef_slots, "
      "float[] coef_scales, Tensor? noise, Tensor? observed_noise, int seed, int offset, int observed_offset, "
      "Tensor? row_ids, Tensor(a!) out, Tensor(b!)? mean_out) -> ()");
}

SK_IMPL_ON_DEVICES("masked_update", masked_update)
SK_IMPL_ON_DEVICES("masked_update_out", masked_update_out)

}  // namespace scorekern
