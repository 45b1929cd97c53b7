// The row helpers every op's checks share (DESIGN §1, §4): a row is x[i]
// flattened and a 1-D tensor is one row; data is float32, float64, float16
// or bfloat16, computed in float32 (float64 for float64 data).
#pragma once

#include <ATen/core/Tensor.h>

#include "scorekern/args.h"

namespace scorekern {

// Symbolic under torch.compile's dynamic shapes (the meta kernels see such
// tensors); rows_int/cols_int are the concrete values a kernel takes.
struct RowShape {
  c10::SymInt rows, cols;
  int64_t rows_int() const { return rows.maybe_as_int().value_or(0); }
  int64_t cols_int() const { return cols.maybe_as_int().value_or(0); }
};

// Requires x.dim() >= 1.
RowShape row_shape(const at::Tensor& x, const char* op);

// The kernel dtype of a floating tensor.
DType kernel_dtype(const at::Tensor& x, const char* op);

// The arithmetic dtype of x's kernels: float64 for float64 data, else float32.
at::ScalarType opmath_dtype(const at::Tensor& x);

// t on x's device, with x's dtype and shape (`like` names x in the message).
void check_like(const at::Tensor& t, const at::Tensor& x, const char* name, const char* op, const char* like = "x");

}  // namespace scorekern
