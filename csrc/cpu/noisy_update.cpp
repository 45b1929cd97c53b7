// CPU implementations of the fused noisy update and of the signal-to-noise
// Langevin corrector (two passes: the norms, then the update, with the same
// noise regenerated and never stored).
#include <cmath>
#include <vector>

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "../arguments.h"
#include "../scorekern/noisy_update.h"
#include "kernels.h"

namespace scorekern {
namespace {

constexpr int64_t kGrainTiles = 16;  // about 16K elements per parallel task

void run_update(const UpdateArgs& args) {
  const cpu::Plan plan = cpu::make_plan(args.rows, args.cols);
  const cpu::Kernels& k = cpu::kernels();
  at::parallel_for(0, plan.tiles, kGrainTiles, [&](int64_t begin, int64_t end) {
    k.update(args, plan, begin, end);
  });
}

void noisy_update_out_cpu(const at::Tensor& x, const at::Tensor& score,
                          const std::optional<at::Tensor>& a, double a_scale,
                          const std::optional<at::Tensor>& b, double b_scale,
                          const std::optional<at::Tensor>& c, double c_scale,
                          const std::optional<at::Tensor>& noise, int64_t seed, int64_t offset,
                          const std::optional<at::Tensor>& row_ids, const at::Tensor& out,
                          const std::optional<at::Tensor>& mean_out) {
  UpdateCall call = prepare_noisy_update(x, score, a, a_scale, b, b_scale, c, c_scale, noise, seed, offset, row_ids,
                                         out, mean_out, "noisy_update");
  run_update(call.args);
  call.finish();
}

std::tuple<at::Tensor, at::Tensor> noisy_update_cpu(
    const at::Tensor& x, const at::Tensor& score, const std::optional<at::Tensor>& a,
    double a_scale, const std::optional<at::Tensor>& b, double b_scale,
    const std::optional<at::Tensor>& c, double c_scale, const std::optional<at::Tensor>& noise,
    int64_t seed, int64_t offset, const std::optional<at::Tensor>& row_ids, bool return_mean) {
  const UpdateOutputs o = new_update_outputs(x, return_mean);
  noisy_update_out_cpu(x, score, a, a_scale, b, b_scale, c, c_scale, noise, seed, offset, row_ids,
                       o.out, o.mean_out());
  return o.result();
}

void masked_update_out_cpu(const at::Tensor& x, const at::Tensor& score, const at::Tensor& y,
                           const at::Tensor& mask, const std::optional<at::Tensor>& a, double a_scale,
                           const std::optional<at::Tensor>& b, double b_scale,
                           const std::optional<at::Tensor>& c, double c_scale,
                           const std::optional<at::Tensor>& mu, double mu_scale,
                           const std::optional<at::Tensor>& sigma, double sigma_scale,
                           const std::optional<at::Tensor>& noise,
                           const std::optional<at::Tensor>& observed_noise, int64_t seed, int64_t offset,
                           int64_t observed_offset, const std::optional<at::Tensor>& row_ids,
                           const at::Tensor& out, const std::optional<at::Tensor>& mean_out) {
  UpdateCall call = prepare_masked_update(x, score, y, mask, a, a_scale, b, b_scale, c, c_scale, mu, mu_scale,
                                          sigma, sigma_scale, noise, observed_noise, seed, offset,
                                          observed_offset, row_ids, out, mean_out, "masked_update");
  run_update(call.args);
  call.finish();
}

std::tuple<at::Tensor, at::Tensor> masked_update_cpu(
    const at::Tensor& x, const at::Tensor& score, const at::Tensor& y, const at::Tensor& mask,
    const std::optional<at::Tensor>& a, double a_scale, const std::optional<at::Tensor>& b, double b_scale,
    const std::optional<at::Tensor>& c, double c_scale, const std::optional<at::Tensor>& mu, double mu_scale,
    const std::optional<at::Tensor>& sigma, double sigma_scale, const std::optional<at::Tensor>& noise,
    const std::optional<at::Tensor>& observed_noise, int64_t seed, int64_t offset, int64_t observed_offset,
    const std::optional<at::Tensor>& row_ids, bool return_mean) {
  const UpdateOutputs o = new_update_outputs(x, return_mean);
  masked_update_out_cpu(x, score, y, mask, a, a_scale, b, b_scale, c, c_scale, mu, mu_scale, sigma, sigma_scale,
                        noise, observed_noise, seed, offset, observed_offset, row_ids, o.out, o.mean_out());
  return o.result();
}

// b = ε and c = √(2ε) of every row into coefs[0] and coefs[1] ([2, rows]),
// computed in double and stored in the arithmetic type O of the data, from
// the rows' norms (or, with batch norms, their means).
template <typename O>
void write_snr_coefficients(const Coef& alpha, double snr, bool batch_norms, const double* score_norm,
                            const double* noise_norm, int64_t rows, O* coefs) {
  double score_mean = 0.0, noise_mean = 0.0;
  if (batch_norms) {
    for (int64_t r = 0; r < rows; ++r) {
      score_mean += score_norm[r];
      noise_mean += noise_norm[r];
    }
    score_mean /= static_cast<double>(rows);
    noise_mean /= static_cast<double>(rows);
  }
  const O* alpha_values = static_cast<const O*>(alpha.values);
  for (int64_t r = 0; r < rows; ++r) {
    const double alpha_r =
        alpha.scale * (alpha_values ? static_cast<double>(alpha_values[r * alpha.stride]) : 1.0);
    double b, c;
    snr_coefficients(alpha_r, snr, batch_norms ? noise_mean : noise_norm[r],
                     batch_norms ? score_mean : score_norm[r], b, c);
    coefs[r] = static_cast<O>(b);
    coefs[rows + r] = static_cast<O>(c);
  }
}

// The per-(row, column tile) sums of pass one. Kept per thread and reused:
// a sampler calls the corrector every step, and a fresh buffer each time
// would be zeroed and page-faulted anew.
double* sums_workspace(size_t n) {
  thread_local std::vector<double> buffer;
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

// Pass one: per-row norms of the score and of the noise; then the step of
// each row (DESIGN §1); pass two: the update with b = ε, c = √(2ε) per row.
void snr_langevin_step_out_cpu(const at::Tensor& x, const at::Tensor& score, double snr,
                               const std::optional<at::Tensor>& alpha, double alpha_scale,
                               bool batch_norms, const std::optional<at::Tensor>& noise,
                               int64_t seed, int64_t offset,
                               const std::optional<at::Tensor>& row_ids, const at::Tensor& out,
                               const std::optional<at::Tensor>& mean_out) {
  constexpr const char* op = "snr_langevin_step";
  UpdateCall call = prepare_update(x, score, noise, seed, offset, row_ids, out, mean_out, op);
  const int64_t rows = call.args.rows;
  const Coef alpha_coef = checked_coef(alpha, alpha_scale, x, rows, "alpha", op);
  if (rows == 0 || call.args.cols == 0) {
    call.finish();
    return;
  }

  const cpu::Plan plan = cpu::make_plan(rows, call.args.cols);
  const int64_t slots = rows * plan.col_tiles;
  double* score_ss = sums_workspace(2 * static_cast<size_t>(slots));
  double* noise_ss = score_ss + slots;
  const cpu::SumSquaresArgs sums{call.args.dtype, call.args.score, call.args.noise, score_ss, noise_ss};
  const cpu::Kernels& k = cpu::kernels();
  at::parallel_for(0, plan.tiles, kGrainTiles, [&](int64_t begin, int64_t end) {
    k.sum_squares(sums, plan, begin, end);
  });

  // Norms per row, summed over column tiles in a fixed order, in place:
  // row r's norm goes to slot r, which no later row still needs.
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0.0, z = 0.0;
    for (int64_t t = 0; t < plan.col_tiles; ++t) {
      s += score_ss[r * plan.col_tiles + t];
      z += noise_ss[r * plan.col_tiles + t];
    }
    score_ss[r] = std::sqrt(s);
    noise_ss[r] = std::sqrt(z);
  }

  at::Tensor coefs = at::empty({2, rows}, x.options().dtype(opmath_dtype(x)));
  if (x.scalar_type() == at::kDouble) {
    write_snr_coefficients<double>(alpha_coef, snr, batch_norms, score_ss, noise_ss, rows,
                                   coefs.data_ptr<double>());
  } else {
    write_snr_coefficients<float>(alpha_coef, snr, batch_norms, score_ss, noise_ss, rows,
                                  coefs.data_ptr<float>());
  }
  const int64_t elem = coefs.element_size();
  call.args.a = Coef{nullptr, 1.0, 0};
  call.args.b = Coef{coefs.data_ptr(), 1.0, 1};
  call.args.c = Coef{static_cast<const char*>(coefs.data_ptr()) + rows * elem, 1.0, 1};
  run_update(call.args);
  call.finish();
}

std::tuple<at::Tensor, at::Tensor> snr_langevin_step_cpu(
    const at::Tensor& x, const at::Tensor& score, double snr,
    const std::optional<at::Tensor>& alpha, double alpha_scale, bool batch_norms,
    const std::optional<at::Tensor>& noise, int64_t seed, int64_t offset,
    const std::optional<at::Tensor>& row_ids, bool return_mean) {
  const UpdateOutputs o = new_update_outputs(x, return_mean);
  snr_langevin_step_out_cpu(x, score, snr, alpha, alpha_scale, batch_norms, noise, seed, offset,
                            row_ids, o.out, o.mean_out());
  return o.result();
}

}  // namespace

TORCH_LIBRARY_IMPL(scorekern, CPU, m) {
  m.impl("noisy_update", &noisy_update_cpu);
  m.impl("noisy_update_out", &noisy_update_out_cpu);
  m.impl("masked_update", &masked_update_cpu);
  m.impl("masked_update_out", &masked_update_out_cpu);
  m.impl("snr_langevin_step", &snr_langevin_step_cpu);
  m.impl("snr_langevin_step_out", &snr_langevin_step_out_cpu);
}

}  // namespace scorekern
