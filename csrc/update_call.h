// The data of the update ops (noisy_update, masked_update, snr_langevin_step)
// checked and prepared for a kernel: x, score, noise and the outputs. Each
// op's checks (csrc/ops/<op>.cpp) start here and add their coefficients.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>

#include <c10/core/SymInt.h>

#include "scorekern/args.h"

namespace scorekern {

// Contiguous inputs, contiguous outputs (the user's own when possible, else
// temporaries that finish() copies back), kept alive while a kernel runs.
struct UpdateCall {
  UpdateData data{};
  c10::SymInt rows;  // data.rows, symbolic for the meta kernels
  at::Tensor x, score, noise, out, mean;
  at::Tensor out_target, mean_target;  // set when a temporary stands in for them

  void finish();
};

// Checks x, score, noise, row ids, out and mean_out (out may be x itself but
// must not partly overlap it, nor touch the other inputs; mean_out must be
// apart from everything). For meta tensors (kIsMeta) only what their
// metadata shows: no overlap or value checks, no pointers.
template <bool kIsMeta>
UpdateCall prepare_update(const at::Tensor& x, const at::Tensor& score, const std::optional<at::Tensor>& noise,
                          int64_t seed, int64_t offset, const std::optional<at::Tensor>& row_ids,
                          const at::Tensor& out, const std::optional<at::Tensor>& mean_out, const char* op);

// The outputs of a functional update: x' and the mean (empty when not asked
// for), contiguous, with x's shape, dtype and device.
struct UpdateOutputs {
  at::Tensor out, mean;
  bool with_mean;
  std::optional<at::Tensor> mean_out() const { return with_mean ? std::optional<at::Tensor>(mean) : std::nullopt; }
  std::tuple<at::Tensor, at::Tensor> result() const { return {out, mean}; }
};
UpdateOutputs new_update_outputs(const at::Tensor& x, bool return_mean);

}  // namespace scorekern
