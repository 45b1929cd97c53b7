// multistep_update: x' = a·x + b·score + b₂·score2 + c·z in one pass, the
// noisy update with a second score term (Heun, DPM-Solver-2, DPM-Solver++
// 2M), z drawn in the kernel (or read from `noise`), and the mean when asked.
// Schemas, checks, registration; kernels in csrc/cpu and csrc/cuda,
// arithmetic in csrc/scorekern/multistep_update.h.
#include <ATen/MemoryOverlap.h>
#include <ATen/core/Tensor.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include "../coefficients.h"
#include "../noise_source.h"
#include "../rows.h"
#include "../scorekern/multistep_update.h"
#include "../update_call.h"
#include "device.h"
#if SK_BUILD_CUDA
#include "../cuda/torch_device.h"
#endif

namespace scorekern {
namespace {

template <Device kDevice>
void multistep_update_out(const at::Tensor& x, const at::Tensor& score, const at::Tensor& score2,
                          at::TensorList coef_values, at::IntArrayRef coef_slots, at::ArrayRef<double> coef_scales,
                          const std::optional<at::Tensor>& noise, int64_t seed, int64_t offset,
                          const std::optional<at::Tensor>& row_ids, const at::Tensor& out,
                          const std::optional<at::Tensor>& mean_out) {
  constexpr const char* op = "multistep_update";
  constexpr bool kIsMeta = kDevice == Device::Meta;
  const c10::DeviceGuard guard(x.device());
  UpdateCall call = prepare_update<kIsMeta>(x, score, noise, seed, offset, row_ids, out, mean_out, op);
  MultistepUpdateArgs args{};
  args.data = call.data;
  const auto c = checked_coefs<4>(coef_values, coef_slots, coef_scales, x, call.rows, {"a", "b", "b2", "c"}, op,
                                  kIsMeta);
  args.a = c[0];
  args.b = c[1];
  args.b2 = c[2];
  args.c = c[3];
  check_like(score2, x, "score2", op);
  if constexpr (!kIsMeta) {
    at::assert_no_overlap(out, score2);
    if (mean_out.has_value()) at::assert_no_overlap(*mean_out, score2);
  }
  const at::Tensor s2 = score2.contiguous();
  if constexpr (kDevice == Device::CPU) {
    args.score2 = s2.data_ptr();
    SK_IF_BUILD_CPU(cpu::multistep_update(args);)
  } else if constexpr (kDevice == Device::CUDA) {
    args.score2 = s2.data_ptr();
    SK_IF_BUILD_CUDA(cuda::take_captured_stream(args.data.noise, offset, x, op);
                     cuda::check(cuda::launch_multistep_update(args, cuda::current_stream()));)
  }
  call.finish();
}

// The functional form, on every device (meta included): new outputs, then
// multistep_update_out.
template <Device kDevice>
std::tuple<at::Tensor, at::Tensor> multistep_update(const at::Tensor& x, const at::Tensor& score,
                                                    const at::Tensor& score2, at::TensorList coef_values,
                                                    at::IntArrayRef coef_slots, at::ArrayRef<double> coef_scales,
                                                    const std::optional<at::Tensor>& noise, int64_t seed,
                                                    int64_t offset, const std::optional<at::Tensor>& row_ids,
                                                    bool return_mean) {
  const UpdateOutputs o = new_update_outputs(x, return_mean);
  multistep_update_out<kDevice>(x, score, score2, coef_values, coef_slots, coef_scales, noise, seed, offset, row_ids,
                                o.out, o.mean_out());
  return o.result();
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(SK_LIBRARY, m) {
  // a, b, b2 and c travel as one bundle (coefficients.h).
  m.def(
      "multistep_update(Tensor x, Tensor score, Tensor score2, Tensor[] coef_values, int[] coef_slots, "
      "float[] coef_scales, Tensor? noise, int seed, int offset, Tensor? row_ids, bool return_mean) "
      "-> (Tensor, Tensor)");
  m.def(
      "multistep_update_out(Tensor x, Tensor score, Tensor score2, Tensor[] coef_values, int[] coef_slots, "
      "float[] coef_scales, Tensor? noise, int seed, int offset, Tensor? row_ids, Tensor(a!) out, "
      "Tensor(b!)? mean_out) -> ()");
}

SK_IMPL_ON_DEVICES("multistep_update", multistep_update)
SK_IMPL_ON_DEVICES("multistep_update_out", multistep_update_out)

}  // namespace scorekern
