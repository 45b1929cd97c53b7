// CPU implementations of the losses' per-row sums: denoising score matching
// with the noise regenerated from the stream (or read from a tensor), and the
// two sums of sliced score matching. The kernels write one partial sum per
// (row, column tile); each row's tiles are then added in a fixed order, so
// the result does not depend on the number of threads.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "../arguments.h"
#include "kernels.h"

namespace scorekern {
namespace {

constexpr int64_t kGrainTiles = 16;  // about 16K elements per parallel task

template <typename O>
void add_tiles(const double* partial, int64_t rows, int64_t col_tiles, O* out) {
  for (int64_t r = 0; r < rows; ++r) {
    double total = 0.0;
    for (int64_t t = 0; t < col_tiles; ++t) total += partial[r * col_tiles + t];
    out[r] = static_cast<O>(total);
  }
}

void finish_sums(const at::Tensor& partial, int64_t rows, int64_t col_tiles, at::Tensor& out) {
  const double* p = partial.data_ptr<double>();
  if (out.scalar_type() == at::kDouble) add_tiles(p, rows, col_tiles, out.data_ptr<double>());
  else add_tiles(p, rows, col_tiles, out.data_ptr<float>());
}

// Runs the kernel and writes the [rows] sums into out0 (and out1).
void run_row_sums(const RowSumArgs& args, at::Tensor& out0, at::Tensor* out1) {
  const cpu::Plan plan = cpu::make_plan(args.rows, args.cols);
  if (args.rows == 0) return;
  if (args.cols == 0) {  // empty rows sum to zero
    out0.zero_();
    if (out1) out1->zero_();
    return;
  }
  const int64_t slots = args.rows * plan.col_tiles;
  const at::Tensor partial = at::empty({out1 ? 2 * slots : slots}, out0.options().dtype(at::kDouble));
  double* sums0 = partial.data_ptr<double>();
  double* sums1 = out1 ? sums0 + slots : nullptr;
  const cpu::Kernels& k = cpu::kernels();
  at::parallel_for(0, plan.tiles, kGrainTiles, [&](int64_t begin, int64_t end) {
    k.row_sums(args, plan, sums0, sums1, begin, end);
  });
  finish_sums(partial.narrow(0, 0, slots), args.rows, plan.col_tiles, out0);
  if (out1) finish_sums(partial.narrow(0, slots, slots), args.rows, plan.col_tiles, *out1);
}

at::Tensor dsm_row_sums_cpu(const at::Tensor& score, const std::optional<at::Tensor>& p,
                            double p_scale, const std::optional<at::Tensor>& q, double q_scale,
                            const std::optional<at::Tensor>& noise, int64_t seed, int64_t offset,
                            const std::optional<at::Tensor>& row_ids) {
  const RowSumCall call =
      prepare_dsm_sums(score, p, p_scale, q, q_scale, noise, seed, offset, row_ids, "dsm_row_sums");
  at::Tensor out = call.new_sums();
  run_row_sums(call.args, out, nullptr);
  return out;
}

std::tuple<at::Tensor, at::Tensor> sliced_row_sums_cpu(const at::Tensor& score, const at::Tensor& vjp,
                                                       const at::Tensor& v, bool variance_reduction) {
  const RowSumCall call = prepare_sliced_sums(score, vjp, v, variance_reduction, "sliced_row_sums");
  at::Tensor first = call.new_sums(), second = call.new_sums();
  run_row_sums(call.args, first, &second);
  return {first, second};
}

}  // namespace

TORCH_LIBRARY_IMPL(scorekern, CPU, m) {
  m.impl("dsm_row_sums", &dsm_row_sums_cpu);
  m.impl("sliced_row_sums", &sliced_row_sums_cpu);
}

}  // namespace scorekern
