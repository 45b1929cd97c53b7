// Argument checking and preparation shared by the CPU and CUDA glue: one
// place that turns the op's tensors into the raw kernel arguments (args.h).
// The Python layer (scorekern/ops.py) checks the same things first, with
// the user's argument names; these checks keep direct torch.ops callers safe.
#pragma once

#include <optional>
#include <tuple>

#include <ATen/core/Tensor.h>

#include "scorekern/args.h"
#include "scorekern/mixture.h"

namespace scorekern {

struct RowShape {
  int64_t rows, cols;
};

// A row is x[i] flattened; a 1-D tensor is one row. Requires x.dim() >= 1.
RowShape row_shape(const at::Tensor& x, const char* op);

// The kernel dtype of a floating tensor (float32/64, float16, bfloat16).
DType kernel_dtype(const at::Tensor& x, const char* op);

// The stream position of (seed, offset), both 64-bit (DESIGN §2).
StreamPos stream_pos(int64_t seed, int64_t offset);

// Checks row ids: int64, shape [rows], on x's device, contiguous; on the CPU
// also that each lies in [0, 2^32). Returns the data pointer or null.
const int64_t* checked_row_ids(const std::optional<at::Tensor>& row_ids, const at::Tensor& x,
                               int64_t rows, const char* op);

// The data of an elementwise op prepared for a kernel: contiguous inputs,
// contiguous outputs (the user's own when possible, else temporaries copied
// back by finish()), and the coefficients.
struct UpdateCall {
  UpdateArgs args{};
  at::Tensor x, score, noise, out, mean, row_ids;
  at::Tensor y, mask, observed_noise;  // masked updates only
  at::Tensor out_target, mean_target;  // set when a temporary stands in for them

  void finish();
};

// Checks and prepares x, score, noise, row ids, out and mean_out; the
// coefficients and stream position are set by the caller.
UpdateCall prepare_update(const at::Tensor& x, const at::Tensor& score,
                          const std::optional<at::Tensor>& noise, int64_t seed, int64_t offset,
                          const std::optional<at::Tensor>& row_ids, const at::Tensor& out,
                          const std::optional<at::Tensor>& mean_out, const char* op);

// prepare_update and the three coefficients a, b and c of the update.
UpdateCall prepare_noisy_update(const at::Tensor& x, const at::Tensor& score,
                                const std::optional<at::Tensor>& a, double a_scale,
                                const std::optional<at::Tensor>& b, double b_scale,
                                const std::optional<at::Tensor>& c, double c_scale,
                                const std::optional<at::Tensor>& noise, int64_t seed, int64_t offset,
                                const std::optional<at::Tensor>& row_ids, const at::Tensor& out,
                                const std::optional<at::Tensor>& mean_out, const char* op);

// The masked update of inpainting, checked and prepared as
// prepare_noisy_update does, plus y, mask and the observed part's noise (x's
// shape, dtype and device, apart from the outputs) and the coefficients mu
// and sigma; z₁ comes from (seed, observed_offset) with the update's row ids.
UpdateCall prepare_masked_update(
    const at::Tensor& x, const at::Tensor& score, const at::Tensor& y, const at::Tensor& mask,
    const std::optional<at::Tensor>& a, double a_scale, const std::optional<at::Tensor>& b, double b_scale,
    const std::optional<at::Tensor>& c, double c_scale, const std::optional<at::Tensor>& mu, double mu_scale,
    const std::optional<at::Tensor>& sigma, double sigma_scale, const std::optional<at::Tensor>& noise,
    const std::optional<at::Tensor>& observed_noise, int64_t seed, int64_t offset, int64_t observed_offset,
    const std::optional<at::Tensor>& row_ids, const at::Tensor& out, const std::optional<at::Tensor>& mean_out,
    const char* op);

// A coefficient `scale · values`: values, when given, are the arithmetic
// dtype of x (float32, or float64 for float64 data), contiguous, on x's
// device, with one entry per row or a single entry for all rows.
Coef checked_coef(const std::optional<at::Tensor>& values, double scale, const at::Tensor& x,
                  int64_t rows, const char* name, const char* op);

// A new contiguous tensor for an op's output. Large CPU outputs ask the
// kernel for transparent huge pages (where THP is in "madvise" mode): the
// first touch of a fresh 64 MB buffer otherwise costs more page faults than
// the op itself costs arithmetic. This is what PyTorch's
// THP_MEM_ALLOC_ENABLE=1 does for every allocation.
at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options);

// The outputs of a functional update: x' and the mean (empty when not asked
// for), contiguous, with x's shape, dtype and device.
struct UpdateOutputs {
  at::Tensor out, mean;
  bool with_mean;
  std::optional<at::Tensor> mean_out() const {
    return with_mean ? std::optional<at::Tensor>(mean) : std::nullopt;
  }
  std::tuple<at::Tensor, at::Tensor> result() const { return {out, mean}; }
};
UpdateOutputs new_update_outputs(const at::Tensor& x, bool return_mean);

// The losses' per-row sums (args.h) prepared for a kernel: the tensors
// checked against the score (same shape, dtype and device) and made
// contiguous, kept alive here while the kernel reads them.
struct RowSumCall {
  RowSumArgs args{};
  at::Tensor score, vjp, v, noise;

  // The [rows] results, in the arithmetic dtype of the score.
  at::Tensor new_sums() const;
};

RowSumCall prepare_dsm_sums(const at::Tensor& score, const std::optional<at::Tensor>& p,
                            double p_scale, const std::optional<at::Tensor>& q, double q_scale,
                            const std::optional<at::Tensor>& noise, int64_t seed, int64_t offset,
                            const std::optional<at::Tensor>& row_ids, const char* op);

RowSumCall prepare_sliced_sums(const at::Tensor& score, const at::Tensor& vjp, const at::Tensor& v,
                               bool variance_reduction, const char* op);

// The mixture scores' arguments (mixture.h) prepared for a kernel: x
// [M, d] and centres [N, d] in the arithmetic dtype (float32, float64 for
// float64 data), contiguous; log-weights [N] and bandwidths (one per query
// or one for all) likewise; the [M, d] score (when asked for) and [M] lse.
struct MixtureCall {
  MixtureArgs args{};
  at::Tensor x, centers, log_weights, bandwidth, score, lse;
  at::ScalarType out_dtype;  // the score's dtype for the caller: x's

  // The score in x's dtype (empty when not asked for).
  at::Tensor score_result() const;
};

MixtureCall prepare_mixture(const at::Tensor& x, const at::Tensor& centers,
                            const std::optional<at::Tensor>& bandwidth, double bandwidth_scale,
                            const std::optional<at::Tensor>& log_weights, bool with_score,
                            const char* op);

// The backward: the forward's call with its saved score and lse, the
// incoming gradient and the [M, d] gradient with respect to x.
struct MixtureBackCall {
  MixtureCall fwd;
  at::Tensor grad, grad_x;
  MixtureBackArgs args{};
};

MixtureBackCall prepare_mixture_backward(const at::Tensor& grad, const at::Tensor& x,
                                         const at::Tensor& centers,
                                         const std::optional<at::Tensor>& bandwidth,
                                         double bandwidth_scale,
                                         const std::optional<at::Tensor>& log_weights,
                                         const at::Tensor& score, const at::Tensor& lse,
                                         const char* op);

// The arithmetic dtype of x's kernels: float64 for float64 data, else float32.
c10::ScalarType opmath_dtype(const at::Tensor& x);

}  // namespace scorekern
