// mixture_score: the score of a mixture of isotropic Gaussians (a kernel
// density estimate, the ideal denoiser of a training set): for x [M, d] and
// centres [N, d], score = Σ_j softmax_j(ℓ_j − ‖x − μ_j‖²/2h²)(μ_j − x)/h² in
// x's dtype and lse = log Σ_j exp(ℓ_j − ‖x − μ_j‖²/2h²) in the arithmetic
// dtype, h the bandwidth (one per query, or one for all). The score is empty
// unless with_score. mixture_score_backward applies the score's Jacobian to
// grad, from the saved score and lse. Schemas, checks, registration; kernels
// in csrc/cpu and csrc/cuda, arithmetic in csrc/scorekern/mixture_score.h.
#include <ATen/Context.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include "../coefficients.h"
#include "../rows.h"
#include "../scorekern/mixture_score.h"
#include "device.h"
#if SK_BUILD_CUDA
#include "../cuda/torch_device.h"
#endif

namespace scorekern {
namespace {

// x [M, d] and centres [N, d] in the arithmetic dtype (float32, float64 for
// float64 data), contiguous; log-weights [N] and bandwidths likewise; the
// [M, d] score (when asked for) and [M] lse.
struct MixtureCall {
  MixtureArgs args{};
  at::Tensor x, centers, log_weights, score, lse;
  at::ScalarType out_dtype;  // the score's dtype for the caller: x's

  at::Tensor score_result() const {
    return score.defined() ? score.to(out_dtype) : at::empty({0}, lse.options().dtype(out_dtype));
  }
};

template <Device kDevice>
MixtureCall mixture_check(const at::Tensor& x, const at::Tensor& centers, at::TensorList coef_values,
                          at::IntArrayRef coef_slots, at::ArrayRef<double> coef_scales,
                          const std::optional<at::Tensor>& log_weights, bool with_score, const char* op) {
  constexpr bool kIsMeta = kDevice == Device::Meta;
  kernel_dtype(x, op);
  TORCH_CHECK(x.dim() == 2, op, ": x must have shape [M, d], got ", x.sym_sizes());
  TORCH_CHECK(centers.dim() == 2 && centers.sym_size(1) == x.sym_size(1), op, ": centers must have shape [N, ",
              x.sym_size(1), "] like x's rows, got ", centers.sym_sizes());
  TORCH_CHECK(centers.sym_size(0) >= 1, op, ": centers must hold at least one centre");
  TORCH_CHECK(x.sym_size(1) >= 1, op, ": x's rows must have at least one coordinate");
  TORCH_CHECK(centers.scalar_type() == x.scalar_type(), op, ": centers must be ", x.scalar_type(), " like x, got ",
              centers.scalar_type());
  TORCH_CHECK(centers.device() == x.device(), op, ": centers must be on ", x.device(), " like x, got ",
              centers.device());
  const at::ScalarType dt = opmath_dtype(x);
  MixtureCall call;
  call.out_dtype = x.scalar_type();
  call.x = x.to(dt).contiguous();
  call.centers = centers.to(dt).contiguous();
  MixtureArgs& a = call.args;
  a.float64 = dt == at::kDouble;
  const c10::SymInt M = x.sym_size(0), N = centers.sym_size(0), d = x.sym_size(1);
  a.M = M.maybe_as_int().value_or(0);
  a.N = N.maybe_as_int().value_or(0);
  a.d = d.maybe_as_int().value_or(0);
  if (log_weights.has_value()) {
    const at::Tensor& lw = *log_weights;
    TORCH_CHECK(lw.dim() == 1 && lw.sym_size(0) == N, op, ": log_weights must have shape [", N,
                "] (one per centre), got ", lw.sym_sizes());
    TORCH_CHECK(lw.device() == x.device(), op, ": log_weights must be on ", x.device(), ", got ", lw.device());
    TORCH_CHECK(at::isFloatingType(lw.scalar_type()), op, ": log_weights must be floating, got ", lw.scalar_type());
    call.log_weights = lw.to(dt).contiguous();
  }
  a.bandwidth = checked_coefs<1>(coef_values, coef_slots, coef_scales, x, M, {"bandwidth"}, op, kIsMeta)[0];
  const at::TensorOptions opts = call.x.options();
  if (with_score) call.score = at::empty_symint({M, d}, opts);
  call.lse = at::empty_symint({M}, opts);
  if constexpr (!kIsMeta) {
    a.x = call.x.data_ptr();
    a.centers = call.centers.data_ptr();
    a.log_weights = call.log_weights.defined() ? call.log_weights.data_ptr() : nullptr;
    a.score = with_score ? call.score.data_ptr() : nullptr;
    a.lse = call.lse.data_ptr();
  }
  return call;
}

#if SK_BUILD_CUDA
void check_cuda_dim(int64_t d, const char* op) {
  TORCH_CHECK(d <= cuda::mixture_score_max_dim(), op, ": on CUDA the rows may have at most ",
              cuda::mixture_score_max_dim(), " coordinates so far, got ", d);
}
#endif

template <Device kDevice>
std::tuple<at::Tensor, at::Tensor> mixture_score(const at::Tensor& x, const at::Tensor& centers,
                                                 at::TensorList coef_values, at::IntArrayRef coef_slots,
                                                 at::ArrayRef<double> coef_scales,
                                                 const std::optional<at::Tensor>& log_weights, bool with_score) {
  constexpr const char* op = "mixture_score";
  const c10::DeviceGuard guard(x.device());
  MixtureCall call =
      mixture_check<kDevice>(x, centers, coef_values, coef_slots, coef_scales, log_weights, with_score, op);
  if constexpr (kDevice == Device::CPU) {
    SK_IF_BUILD_CPU(if (call.args.M > 0) cpu::mixture_score(call.args);)
  } else if constexpr (kDevice == Device::CUDA) {
    // TF32 tensor cores where torch's float32 matmuls may use them
    // (torch.backends.cuda.matmul, set_float32_matmul_precision), and always
    // for 16-bit data, which TF32 holds exactly.
    SK_IF_BUILD_CUDA(
        check_cuda_dim(call.args.d, op);
        const bool tensor_cores = x.scalar_type() != at::kFloat || at::globalContext().allowTF32CuBLAS();
        const cuda::Workspace workspace(cuda::mixture_score_workspace_bytes(call.args, tensor_cores), x);
        cuda::check(cuda::launch_mixture_score(call.args, tensor_cores, workspace.get(), cuda::current_stream()));)
  }
  return {call.score_result(), call.lse};
}

template <Device kDevice>
at::Tensor mixture_score_backward(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& centers,
                                  at::TensorList coef_values, at::IntArrayRef coef_slots,
                                  at::ArrayRef<double> coef_scales, const std::optional<at::Tensor>& log_weights,
                                  const at::Tensor& score, const at::Tensor& lse) {
  constexpr const char* op = "mixture_score_backward";
  constexpr bool kIsMeta = kDevice == Device::Meta;
  const c10::DeviceGuard guard(x.device());
  MixtureCall fwd = mixture_check<kDevice>(x, centers, coef_values, coef_slots, coef_scales, log_weights, false, op);
  MixtureArgs& a = fwd.args;
  check_like(grad, x, "grad", op);
  check_like(score, x, "score", op);
  TORCH_CHECK(lse.dim() == 1 && lse.sym_size(0) == x.sym_size(0), op, ": lse must have shape [", x.sym_size(0),
              "], got ", lse.sym_sizes());
  TORCH_CHECK(lse.device() == x.device(), op, ": lse must be on ", x.device(), ", got ", lse.device());
  const at::ScalarType dt = fwd.x.scalar_type();
  const at::Tensor s = score.to(dt).contiguous(), l = lse.to(dt).contiguous(), g = grad.to(dt).contiguous();
  at::Tensor grad_x = at::empty_symint(x.sym_sizes(), fwd.x.options());
  MixtureBackArgs b{a, nullptr, nullptr};
  if constexpr (!kIsMeta) {
    b.fwd.score = s.data_ptr();
    b.fwd.lse = l.data_ptr();
    b.grad = g.data_ptr();
    b.grad_x = grad_x.data_ptr();
  }
  if constexpr (kDevice == Device::CPU) {
    SK_IF_BUILD_CPU(if (a.M > 0) cpu::mixture_score_backward(b);)
  } else if constexpr (kDevice == Device::CUDA) {
    SK_IF_BUILD_CUDA(check_cuda_dim(a.d, op);
                     cuda::check(cuda::launch_mixture_score_backward(b, cuda::current_stream()));)
  }
  return grad_x.to(fwd.out_dtype);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(SK_LIBRARY, m) {
  // The bandwidth is a bundle of one coefficient (coefficients.h), one value per query or one for all.
  m.def(
      "mixture_score(Tensor x, Tensor centers, Tensor[] coef_values, int[] coef_slots, float[] coef_scales, "
      "Tensor? log_weights, bool with_score) -> (Tensor, Tensor)");
  m.def(
      "mixture_score_backward(Tensor grad, Tensor x, Tensor centers, Tensor[] coef_values, int[] coef_slots, "
      "float[] coef_scales, Tensor? log_weights, Tensor score, Tensor lse) -> Tensor");
}

SK_IMPL_ON_DEVICES("mixture_score", mixture_score)
SK_IMPL_ON_DEVICES("mixture_score_backward", mixture_score_backward)

}  // namespace scorekern
