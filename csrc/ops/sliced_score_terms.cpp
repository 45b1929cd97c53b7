// sliced_score_terms: the two per-row sums of sliced score matching, Σ v·vjp
// and Σ v·score (Σ score² with variance reduction), in float32 (float64 for
// float64 data); scorekern/ops/sliced_score_terms.py combines them. Schema,
// checks, registration; kernels in csrc/cpu and csrc/cuda, arithmetic in
// csrc/scorekern/sliced_score_terms.h.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include "../rows.h"
#include "../scorekern/sliced_score_terms.h"
#include "device.h"
#if SK_BUILD_CUDA
#include "../cuda/torch_device.h"
#endif

namespace scorekern {
namespace {

template <Device kDevice>
std::tuple<at::Tensor, at::Tensor> sliced_score_terms(const at::Tensor& score, const at::Tensor& vjp,
                                                      const at::Tensor& v, bool variance_reduction) {
  constexpr const char* op = "sliced_score_terms";
  constexpr bool kIsMeta = kDevice == Device::Meta;
  const c10::DeviceGuard guard(score.device());
  const RowShape shape = row_shape(score, op);
  check_like(vjp, score, "vjp", op, "score");
  check_like(v, score, "v", op, "score");
  SlicedScoreArgs args{kernel_dtype(score, op), shape.rows_int(), shape.cols_int(), nullptr, nullptr, nullptr,
                       variance_reduction, nullptr, nullptr};
  const at::Tensor s = score.contiguous(), u = vjp.contiguous(), vc = v.contiguous();
  const auto sums = score.options().dtype(opmath_dtype(score));
  at::Tensor first = at::empty_symint({shape.rows}, sums), second = at::empty_symint({shape.rows}, sums);
  if constexpr (!kIsMeta) {
    args.score = s.data_ptr();
    args.vjp = u.data_ptr();
    args.v = vc.data_ptr();
    args.first = first.data_ptr();
    args.second = second.data_ptr();
  }
  if constexpr (kDevice == Device::CPU) {
    SK_IF_BUILD_CPU(cpu::sliced_score_terms(args);)
  } else if constexpr (kDevice == Device::CUDA) {
    SK_IF_BUILD_CUDA(
        const cuda::Workspace workspace(cuda::sliced_score_terms_workspace_bytes(args.rows, args.cols), score);
        cuda::check(cuda::launch_sliced_score_terms(args, workspace.get(), cuda::current_stream()));)
  }
  return {first, second};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(SK_LIBRARY, m) {
  m.def("sliced_score_terms(Tensor score, Tensor vjp, Tensor v, bool variance_reduction) -> (Tensor, Tensor)");
}

SK_IMPL_ON_DEVICES("sliced_score_terms", sliced_score_terms)

}  // namespace scorekern
