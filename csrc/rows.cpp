#include "rows.h"

#include <c10/util/Exception.h>

namespace scorekern {

RowShape row_shape(const at::Tensor& x, const char* op) {
  TORCH_CHECK(x.dim() >= 1, op, ": x must have at least one dimension, got a 0-d tensor");
  const c10::SymInt rows = x.dim() == 1 ? c10::SymInt(1) : x.sym_size(0);
  const c10::SymInt cols = rows == 0 ? c10::SymInt(0) : x.sym_numel() / rows;
  // The stream's counter holds the row in 32 bits and the column block c/4
  // in 32 bits (DESIGN §2).
  TORCH_CHECK(cols <= (int64_t{1} << 34), op, ": a row may hold at most 2^34 elements, got ", cols);
  return RowShape{rows, cols};
}

DType kernel_dtype(const at::Tensor& x, const char* op) {
  switch (x.scalar_type()) {
    case at::kFloat: return DType::Float32;
    case at::kDouble: return DType::Float64;
    case at::kHalf: return DType::Float16;
    case at::kBFloat16: return DType::BFloat16;
    default:
      TORCH_CHECK(false, op, ": expected a float32, float64, float16 or bfloat16 tensor, got ", x.scalar_type());
  }
}

at::ScalarType opmath_dtype(const at::Tensor& x) { return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

void check_like(const at::Tensor& t, const at::Tensor& x, const char* name, const char* op, const char* like) {
  TORCH_CHECK(t.device() == x.device(), op, ": ", name, " must be on ", x.device(), " like ", like, ", got ",
              t.device());
  TORCH_CHECK(t.scalar_type() == x.scalar_type(), op, ": ", name, " must have ", like, "'s dtype ", x.scalar_type(),
              ", got ", t.scalar_type());
  TORCH_CHECK(t.sym_sizes() == x.sym_sizes(), op, ": ", name, " must have ", like, "'s shape ", x.sym_sizes(),
              ", got ", t.sym_sizes());
}

}  // namespace scorekern
