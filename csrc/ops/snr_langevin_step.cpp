// snr_langevin_step: the signal-to-noise Langevin corrector, ε =
// 2α(snr·‖z‖/‖score‖)² with the norms per row or (batch_norms) their batch
// means, then x' = x + ε·score + √(2ε)·z; two passes, z regenerated and
// never stored. Schemas, checks, registration; kernels in csrc/cpu and
// csrc/cuda, arithmetic in csrc/scorekern/snr_langevin_step.h.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include "../coefficients.h"
#include "../scorekern/snr_langevin_step.h"
#include "../update_call.h"
#include "device.h"
#if SK_BUILD_CUDA
#include "../cuda/torch_device.h"
#endif

namespace scorekern {
namespace {

template <Device kDevice>
void snr_langevin_step_out(const at::Tensor& x, const at::Tensor& score, double snr, at::TensorList coef_values,
                           at::IntArrayRef coef_slots, at::ArrayRef<double> coef_scales, bool batch_norms,
                           const std::optional<at::Tensor>& noise, int64_t seed, int64_t offset,
                           const std::optional<at::Tensor>& row_ids, const at::Tensor& out,
                           const std::optional<at::Tensor>& mean_out) {
  constexpr const char* op = "snr_langevin_step";
  constexpr bool kIsMeta = kDevice == Device::Meta;
  const c10::DeviceGuard guard(x.device());
  UpdateCall call =
      prepare_update<kIsMeta>(x, score, noise, seed, offset, row_ids, out, mean_out, op);
  const auto alpha = checked_coefs<1>(coef_values, coef_slots, coef_scales, x, call.rows, {"alpha"}, op, kIsMeta);
  const SnrLangevinArgs args{call.data, snr, alpha[0], batch_norms};
  if constexpr (kDevice == Device::CPU) {
    SK_IF_BUILD_CPU(cpu::snr_langevin_step(args);)
  } else if constexpr (kDevice == Device::CUDA) {
    SK_IF_BUILD_CUDA(
        SnrLangevinArgs captured = args; cuda::take_captured_stream(captured.data.noise, offset, x, op);
        const cuda::Workspace workspace(
            cuda::snr_langevin_step_workspace_bytes(args.data.rows, args.data.cols, args.data.dtype), x);
        cuda::check(cuda::launch_snr_langevin_step(captured, workspace.get(), cuda::current_stream()));)
  }
  call.finish();
}

// The functional form, on every device (meta included): new outputs, then
// snr_langevin_step_out.
template <Device kDevice>
std::tuple<at::Tensor, at::Tensor> snr_langevin_step(const at::Tensor& x, const at::Tensor& score, double snr,
                                                     at::TensorList coef_values, at::IntArrayRef coef_slots,
                                                     at::ArrayRef<double> coef_scales, bool batch_norms,
                                                     const std::optional<at::Tensor>& noise, int64_t seed,
                                                     int64_t offset, const std::optional<at::Tensor>& row_ids,
                                                     bool return_mean) {
  const UpdateOutputs o = new_update_outputs(x, return_mean);
  snr_langevin_step_out<kDevice>(x, score, snr, coef_values, coef_slots, coef_scales, batch_norms, noise, seed,
                                 offset, row_ids, o.out, o.mean_out());
  return o.result();
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(SK_LIBRARY, m) {
  // alpha is a bundle of one coefficient (coefficients.h).
  m.def(
      "snr_langevin_step(Tensor x, Tensor score, float snr, Tensor[] coef_values, int[] coef_slots, "
      "float[] coef_scales, bool batch_norms, Tensor? noise, int seed, int offset, Tensor? row_ids, "
      "bool return_mean) -> (Tensor, Tensor)");
  m.def(
      "snr_langevin_step_out(Tensor x, Tensor score, float snr, Tensor[] coef_values, int[] coef_slots, "
      "float[] coef_scales, bool batch_norms, Tensor? noise, int seed, int offset, Tensor? row_ids, "
      "Tensor(a!) out, Tensor(b!)? mean_out) -> ()");
}

SK_IMPL_ON_DEVICES("snr_langevin_step", snr_langevin_step)
SK_IMPL_ON_DEVICES("snr_langevin_step_out", snr_langevin_step_out)

}  // namespace scorekern
