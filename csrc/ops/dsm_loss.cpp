// dsm_loss: the per-row sums Σ(p·score + q·z)² of denoising score matching,
// in float32 (float64 for float64 data), z regenerated from the stream or
// read from `noise`. scorekern/ops/dsm_loss.py weights and reduces them, and
// its backward is a noisy_update of the score with the same z. Schema,
// checks, registration; kernels in csrc/cpu/dsm_loss.cpp and
// csrc/cuda/dsm_loss.cu, arithmetic in csrc/scorekern/dsm_loss.h.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include "../coefficients.h"
#include "../noise_source.h"
#include "../rows.h"
#include "../scorekern/dsm_loss.h"
#include "device.h"
#if SK_BUILD_CUDA
#include "../cuda/torch_device.h"
#endif

namespace scorekern {
namespace {

template <Device kDevice>
at::Tensor dsm_loss(const at::Tensor& score, at::TensorList coef_values, at::IntArrayRef coef_slots,
                    at::ArrayRef<double> coef_scales, const std::optional<at::Tensor>& noise, int64_t seed,
                    int64_t offset, const std::optional<at::Tensor>& row_ids) {
  constexpr const char* op = "dsm_loss";
  constexpr bool kIsMeta = kDevice == Device::Meta;
  const c10::DeviceGuard guard(score.device());
  const RowShape shape = row_shape(score, op);
  DsmLossArgs args{kernel_dtype(score, op), shape.rows_int(), shape.cols_int(), nullptr, {}, {}, {}, nullptr};
  const auto pq = checked_coefs<2>(coef_values, coef_slots, coef_scales, score, shape.rows, {"p", "q"}, op,
                                   kIsMeta);
  args.p = pq[0];
  args.q = pq[1];
  const NoiseInput z =
      checked_noise(noise, seed, offset, row_ids, score, shape.rows, "noise", "score", op, kIsMeta);
  args.noise = z.source;
  const at::Tensor s = score.contiguous();
  at::Tensor out = at::empty_symint({shape.rows}, score.options().dtype(opmath_dtype(score)));
  if constexpr (!kIsMeta) {
    args.score = s.data_ptr();
    args.out = out.data_ptr();
  }
  if constexpr (kDevice == Device::CPU) {
    SK_IF_BUILD_CPU(cpu::dsm_loss(args);)
  } else if constexpr (kDevice == Device::CUDA) {
    SK_IF_BUILD_CUDA(
        const cuda::Workspace workspace(cuda::dsm_loss_workspace_bytes(args.rows, args.cols), score);
        cuda::check(cuda::launch_dsm_loss(args, workspace.get(), cuda::current_stream()));)
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(SK_LIBRARY, m) {
  // p and q travel as one bundle (coefficients.h).
  m.def(
      "dsm_loss(Tensor score, Tensor[] coef_values, int[] coef_slots, float[] coef_scales, Tensor? noise, "
      "int seed, int offset, Tensor? row_ids) -> Tensor");
}

SK_IMPL_ON_DEVICES("dsm_loss", dsm_loss)

}  // namespace scorekern
