// Per-row coefficients as one bundle (DESIGN §1): an op's coefficients i =
// 0..K-1 arrive as (values, slots, scales): coefficient i is scales[i] ·
// values[j] where slots[j] == i (a tensor of one value per row, or one value
// for all rows), else scales[i] alone. So a Python float never becomes a
// tensor, and the tensors among them are one Tensor[] that autograd sees.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstddef>

#include "scorekern/args.h"

namespace scorekern {

// Checks the bundle against x (rows rows) and fills coefs[0..K): values of
// x's arithmetic dtype, on x's device, contiguous, with one entry per row or
// a single entry; names[i] names coefficient i in errors. With `meta` (the
// fake kernels: no data to point at) only the checks.
void checked_coefs(at::TensorList values, at::IntArrayRef slots, at::ArrayRef<double> scales, const at::Tensor& x,
                   const c10::SymInt& rows, const char* const* names, size_t K, const char* op, bool meta, Coef* coefs);

template <size_t K>
std::array<Coef, K> checked_coefs(at::TensorList values, at::IntArrayRef slots, at::ArrayRef<double> scales,
                                  const at::Tensor& x, const c10::SymInt& rows, const std::array<const char*, K>& names,
                                  const char* op, bool meta) {
  std::array<Coef, K> coefs{};
  checked_coefs(values, slots, scales, x, rows, names.data(), K, op, meta, coefs.data());
  return coefs;
}

}  // namespace scorekern
