// The torch glue of the CUDA kernels: checks the tensors (arguments.cpp, as
// on the CPU), then calls the torch-free launchers on the current stream.
// Built only with CUDA (and by the CUDA simulator, tests/cudasim, on CPU
// tensors); nothing here synchronises with the host.
#include <ATen/Context.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include "../arguments.h"
#include "../library.h"
#include "launchers.h"
#include "torch_device.h"

namespace scorekern {
namespace {

using cuda::check;
using cuda::current_stream;
using cuda::take_captured_stream;

at::Tensor philox4x32_cuda(const at::Tensor& counter, int64_t seed) {
  TORCH_CHECK(counter.scalar_type() == at::kLong, "philox4x32: counter must be int64, got ",
              counter.scalar_type());
  TORCH_CHECK(counter.dim() >= 1 && counter.size(-1) == 4,
              "philox4x32: counter must have shape [..., 4], got ", counter.sizes());
  const c10::DeviceGuard guard(counter.device());
  const at::Tensor c = counter.contiguous();
  at::Tensor out = at::empty(c.sizes(), c.options());
  check(cuda::launch_philox4x32(c.data_ptr<int64_t>(), c.numel() / 4,
                                         static_cast<uint64_t>(seed), out.data_ptr<int64_t>(),
                                         current_stream()));
  return out;
}

at::Tensor noise_cuda(const at::Tensor& like, int64_t seed, int64_t offset,
                      const std::optional<at::Tensor>& row_ids, NoiseKind kind, const char* op) {
  const RowShape shape = row_shape(like, op);
  const DType dtype = kernel_dtype(like, op);
  const c10::DeviceGuard guard(like.device());
  at::Tensor out = empty_output(like.sizes(), like.options());
  NoiseSource src{nullptr, checked_row_ids(row_ids, like, shape.rows, op), stream_pos(seed, offset)};
  take_captured_stream(src, offset, like, op);
  check(cuda::launch_fill_noise(dtype, kind, shape.rows, shape.cols, out.data_ptr(), src,
                                         current_stream()));
  return out;
}

at::Tensor randn_cuda(const at::Tensor& like, int64_t seed, int64_t offset,
                      const std::optional<at::Tensor>& row_ids) {
  return noise_cuda(like, seed, offset, row_ids, NoiseKind::Normal, "randn");
}

at::Tensor rademacher_cuda(const at::Tensor& like, int64_t seed, int64_t offset,
                           const std::optional<at::Tensor>& row_ids) {
  return noise_cuda(like, seed, offset, row_ids, NoiseKind::Rademacher, "rademacher");
}

void noisy_update_out_cuda(const at::Tensor& x, const at::Tensor& score,
                           const std::optional<at::Tensor>& a, double a_scale,
                           const std::optional<at::Tensor>& b, double b_scale,
                           const std::optional<at::Tensor>& c, double c_scale,
                           const std::optional<at::Tensor>& noise, int64_t seed, int64_t offset,
                           const std::optional<at::Tensor>& row_ids, const at::Tensor& out,
                           const std::optional<at::Tensor>& mean_out) {
  constexpr const char* op = "noisy_update";
  const c10::DeviceGuard guard(x.device());
  UpdateCall call = prepare_noisy_update(x, score, a, a_scale, b, b_scale, c, c_scale, noise, seed, offset, row_ids,
                                         out, mean_out, op);
  take_captured_stream(call.args.noise, offset, x, op);
  check(cuda::launch_noisy_update(call.args, current_stream()));
  call.finish();
}

std::tuple<at::Tensor, at::Tensor> noisy_update_cuda(
    const at::Tensor& x, const at::Tensor& score, const std::optional<at::Tensor>& a,
    double a_scale, const std::optional<at::Tensor>& b, double b_scale,
    const std::optional<at::Tensor>& c, double c_scale, const std::optional<at::Tensor>& noise,
    int64_t seed, int64_t offset, const std::optional<at::Tensor>& row_ids, bool return_mean) {
  const c10::DeviceGuard guard(x.device());
  const UpdateOutputs o = new_update_outputs(x, return_mean);
  noisy_update_out_cuda(x, score, a, a_scale, b, b_scale, c, c_scale, noise, seed, offset, row_ids,
                        o.out, o.mean_out());
  return o.result();
}

void masked_update_out_cuda(const at::Tensor& x, const at::Tensor& score, const at::Tensor& y,
                            const at::Tensor& mask, const std::optional<at::Tensor>& a, double a_scale,
                            const std::optional<at::Tensor>& b, double b_scale,
                            const std::optional<at::Tensor>& c, double c_scale,
                            const std::optional<at::Tensor>& mu, double mu_scale,
                            const std::optional<at::Tensor>& sigma, double sigma_scale,
                            const std::optional<at::Tensor>& noise,
                            const std::optional<at::Tensor>& observed_noise, int64_t seed, int64_t offset,
                            int64_t observed_offset, const std::optional<at::Tensor>& row_ids,
                            const at::Tensor& out, const std::optional<at::Tensor>& mean_out) {
  const c10::DeviceGuard guard(x.device());
  UpdateCall call = prepare_masked_update(x, score, y, mask, a, a_scale, b, b_scale, c, c_scale, mu, mu_scale,
                                          sigma, sigma_scale, noise, observed_noise, seed, offset,
                                          observed_offset, row_ids, out, mean_out, "masked_update");
  // In the order the Python layer draws them: the update's noise, then the observed entries'.
  take_captured_stream(call.args.noise, offset, x, "masked_update");
  take_captured_stream(call.args.replace.noise, observed_offset, x, "masked_update");
  check(cuda::launch_noisy_update(call.args, current_stream()));
  call.finish();
}

std::tuple<at::Tensor, at::Tensor> masked_update_cuda(
    const at::Tensor& x, const at::Tensor& score, const at::Tensor& y, const at::Tensor& mask,
    const std::optional<at::Tensor>& a, double a_scale, const std::optional<at::Tensor>& b, double b_scale,
    const std::optional<at::Tensor>& c, double c_scale, const std::optional<at::Tensor>& mu, double mu_scale,
    const std::optional<at::Tensor>& sigma, double sigma_scale, const std::optional<at::Tensor>& noise,
    const std::optional<at::Tensor>& observed_noise, int64_t seed, int64_t offset, int64_t observed_offset,
    const std::optional<at::Tensor>& row_ids, bool return_mean) {
  const c10::DeviceGuard guard(x.device());
  const UpdateOutputs o = new_update_outputs(x, return_mean);
  masked_update_out_cuda(x, score, y, mask, a, a_scale, b, b_scale, c, c_scale, mu, mu_scale, sigma, sigma_scale,
                         noise, observed_noise, seed, offset, observed_offset, row_ids, o.out, o.mean_out());
  return o.result();
}

void snr_langevin_step_out_cuda(const at::Tensor& x, const at::Tensor& score, double snr,
                                const std::optional<at::Tensor>& alpha, double alpha_scale,
                                bool batch_norms, const std::optional<at::Tensor>& noise,
                                int64_t seed, int64_t offset,
                                const std::optional<at::Tensor>& row_ids, const at::Tensor& out,
                                const std::optional<at::Tensor>& mean_out) {
  constexpr const char* op = "snr_langevin_step";
  const c10::DeviceGuard guard(x.device());
  UpdateCall call = prepare_update(x, score, noise, seed, offset, row_ids, out, mean_out, op);
  take_captured_stream(call.args.noise, offset, x, op);
  cuda::SnrArgs args{call.args, snr,
                     checked_coef(alpha, alpha_scale, x, call.args.rows, "alpha", op), batch_norms};
  const size_t bytes = cuda::snr_workspace_bytes(call.args.rows, call.args.cols, call.args.dtype);
  at::Tensor workspace = at::empty({static_cast<int64_t>(bytes)}, x.options().dtype(at::kByte));
  check(cuda::launch_snr_langevin_step(args, workspace.data_ptr(), current_stream()));
  call.finish();
}

std::tuple<at::Tensor, at::Tensor> snr_langevin_step_cuda(
    const at::Tensor& x, const at::Tensor& score, double snr,
    const std::optional<at::Tensor>& alpha, double alpha_scale, bool batch_norms,
    const std::optional<at::Tensor>& noise, int64_t seed, int64_t offset,
    const std::optional<at::Tensor>& row_ids, bool return_mean) {
  const c10::DeviceGuard guard(x.device());
  const UpdateOutputs o = new_update_outputs(x, return_mean);
  snr_langevin_step_out_cuda(x, score, snr, alpha, alpha_scale, batch_norms, noise, seed, offset,
                             row_ids, o.out, o.mean_out());
  return o.result();
}

// The losses' per-row sums: the kernel writes the [rows] results directly.
void run_row_sums(const RowSumCall& call, at::Tensor& out0, at::Tensor* out1) {
  const size_t bytes = cuda::row_sums_workspace_bytes(call.args.rows, call.args.cols);
  at::Tensor workspace;
  if (bytes) workspace = at::empty({static_cast<int64_t>(bytes)}, call.score.options().dtype(at::kByte));
  check(cuda::launch_row_sums(call.args, bytes ? workspace.data_ptr() : nullptr, out0.data_ptr(),
                                       out1 ? out1->data_ptr() : nullptr, current_stream()));
}

at::Tensor dsm_row_sums_cuda(const at::Tensor& score, const std::optional<at::Tensor>& p,
                             double p_scale, const std::optional<at::Tensor>& q, double q_scale,
                             const std::optional<at::Tensor>& noise, int64_t seed, int64_t offset,
                             const std::optional<at::Tensor>& row_ids) {
  const c10::DeviceGuard guard(score.device());
  const RowSumCall call =
      prepare_dsm_sums(score, p, p_scale, q, q_scale, noise, seed, offset, row_ids, "dsm_row_sums");
  at::Tensor out = call.new_sums();
  run_row_sums(call, out, nullptr);
  return out;
}

std::tuple<at::Tensor, at::Tensor> sliced_row_sums_cuda(const at::Tensor& score, const at::Tensor& vjp,
                                                        const at::Tensor& v, bool variance_reduction) {
  const c10::DeviceGuard guard(score.device());
  const RowSumCall call = prepare_sliced_sums(score, vjp, v, variance_reduction, "sliced_row_sums");
  at::Tensor first = call.new_sums(), second = call.new_sums();
  run_row_sums(call, first, &second);
  return {first, second};
}

void check_mixture_dim(int64_t d, const char* op) {
  TORCH_CHECK(d <= cuda::mixture_max_dim(), op, ": on CUDA the rows may have at most ",
              cuda::mixture_max_dim(), " coordinates so far, got ", d);
}

std::tuple<at::Tensor, at::Tensor> mixture_score_cuda(const at::Tensor& x, const at::Tensor& centers,
                                                      const std::optional<at::Tensor>& bandwidth,
                                                      double bandwidth_scale,
                                                      const std::optional<at::Tensor>& log_weights,
                                                      bool with_score) {
  constexpr const char* op = "mixture_score";
  const c10::DeviceGuard guard(x.device());
  MixtureCall call = prepare_mixture(x, centers, bandwidth, bandwidth_scale, log_weights, with_score, op);
  check_mixture_dim(call.args.d, op);
  MixtureBackArgs args{};
  args.fwd = call.args;
  // TF32 tensor cores where torch's float32 matmuls may use them
  // (torch.backends.cuda.matmul, set_float32_matmul_precision), and always
  // for 16-bit data, which TF32 holds exactly.
  const bool tensor_cores = x.scalar_type() != at::kFloat || at::globalContext().allowTF32CuBLAS();
  const size_t bytes = cuda::mixture_workspace_bytes(args.fwd, tensor_cores);
  at::Tensor workspace;
  if (bytes) workspace = at::empty({static_cast<int64_t>(bytes)}, x.options().dtype(at::kByte));
  check(cuda::launch_mixture(args, false, tensor_cores, bytes ? workspace.data_ptr() : nullptr,
                                      current_stream()));
  return {call.score_result(), call.lse};
}

at::Tensor mixture_score_backward_cuda(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& centers,
                                       const std::optional<at::Tensor>& bandwidth, double bandwidth_scale,
                                       const std::optional<at::Tensor>& log_weights, const at::Tensor& score,
                                       const at::Tensor& lse) {
  constexpr const char* op = "mixture_score_backward";
  const c10::DeviceGuard guard(x.device());
  MixtureBackCall call =
      prepare_mixture_backward(grad, x, centers, bandwidth, bandwidth_scale, log_weights, score, lse, op);
  check_mixture_dim(call.fwd.args.d, op);
  check(cuda::launch_mixture(call.args, true, false, nullptr, current_stream()));
  return call.grad_x.to(call.fwd.out_dtype);
}

}  // namespace

TORCH_LIBRARY_IMPL(SK_LIBRARY, SK_CUDA_KEY, m) {
  m.impl("philox4x32", &philox4x32_cuda);
  m.impl("randn", &randn_cuda);
  m.impl("rademacher", &rademacher_cuda);
  m.impl("noisy_update", &noisy_update_cuda);
  m.impl("noisy_update_out", &noisy_update_out_cuda);
  m.impl("masked_update", &masked_update_cuda);
  m.impl("masked_update_out", &masked_update_out_cuda);
  m.impl("snr_langevin_step", &snr_langevin_step_cuda);
  m.impl("snr_langevin_step_out", &snr_langevin_step_out_cuda);
  m.impl("dsm_row_sums", &dsm_row_sums_cuda);
  m.impl("sliced_row_sums", &sliced_row_sums_cuda);
  m.impl("mixture_score", &mixture_score_cuda);
  m.impl("mixture_score_backward", &mixture_score_backward_cuda);
}

}  // namespace scorekern
