#include "update_call.h"

#include <ATen/MemoryOverlap.h>
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include "allocator.h"
#include "noise_source.h"
#include "rows.h"

namespace scorekern {
namespace {

// The contiguous tensor a kernel writes for `target`: target itself when it
// is contiguous (x itself when writing in place), else a temporary.
at::Tensor writable(const at::Tensor& target, const at::Tensor& x, const at::Tensor& x_contig, at::Tensor& copy_back) {
  if (target.is_contiguous()) return target;
  copy_back = target;
  if (target.is_same(x)) return x_contig;  // in place on a strided x: write its contiguous copy
  return at::empty_symint(target.sym_sizes(), target.options().memory_format(at::MemoryFormat::Contiguous));
}

}  // namespace

template <bool kIsMeta>
UpdateCall prepare_update(const at::Tensor& x, const at::Tensor& score, const std::optional<at::Tensor>& noise,
                          int64_t seed, int64_t offset, const std::optional<at::Tensor>& row_ids,
                          const at::Tensor& out, const std::optional<at::Tensor>& mean_out, const char* op) {
  const RowShape shape = row_shape(x, op);
  UpdateCall call;
  UpdateData& d = call.data;
  d.dtype = kernel_dtype(x, op);
  call.rows = shape.rows;
  d.rows = shape.rows_int();
  d.cols = shape.cols_int();
  check_like(score, x, "score", op);
  check_like(out, x, "out", op);
  if (mean_out.has_value()) check_like(*mean_out, x, "mean_out", op);
  NoiseInput z = checked_noise(noise, seed, offset, row_ids, x, shape.rows, "noise", "x", op, kIsMeta);
  if constexpr (!kIsMeta) {
    at::assert_no_partial_overlap(out, x);
    at::assert_no_overlap(out, score);
    if (noise.has_value()) at::assert_no_overlap(out, *noise);
    if (mean_out.has_value()) {
      at::assert_no_overlap(*mean_out, x);
      at::assert_no_overlap(*mean_out, score);
      at::assert_no_overlap(*mean_out, out);
      if (noise.has_value()) at::assert_no_overlap(*mean_out, *noise);
    }
  }
  call.x = x.contiguous();
  call.score = score.contiguous();
  call.noise = z.tensor;
  call.out = writable(out, x, call.x, call.out_target);
  if (mean_out.has_value()) call.mean = writable(*mean_out, x, call.x, call.mean_target);
  d.noise = z.source;
  if constexpr (!kIsMeta) {
    d.x = call.x.data_ptr();
    d.score = call.score.data_ptr();
    d.out = call.out.data_ptr();
    d.mean = call.mean.defined() ? call.mean.data_ptr() : nullptr;
  }
  return call;
}

template UpdateCall prepare_update<true>(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                         int64_t, int64_t, const std::optional<at::Tensor>&, const at::Tensor&,
                                         const std::optional<at::Tensor>&, const char*);
template UpdateCall prepare_update<false>(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                          int64_t, int64_t, const std::optional<at::Tensor>&, const at::Tensor&,
                                          const std::optional<at::Tensor>&, const char*);

void UpdateCall::finish() {
  if (out_target.defined()) out_target.copy_(out);
  if (mean_target.defined()) mean_target.copy_(mean);
}

UpdateOutputs new_update_outputs(const at::Tensor& x, bool return_mean) {
  return UpdateOutputs{empty_output(x.sym_sizes(), x.options()),
                       return_mean ? empty_output(x.sym_sizes(), x.options()) : at::empty({0}, x.options()),
                       return_mean};
}

}  // namespace scorekern
