#include "coefficients.h"

#include <c10/util/Exception.h>

#include "rows.h"

namespace scorekern {

void checked_coefs(at::TensorList values, at::IntArrayRef slots, at::ArrayRef<double> scales, const at::Tensor& x,
                   const c10::SymInt& rows, const char* const* names, size_t K, const char* op, bool meta,
                   Coef* coefs) {
  TORCH_CHECK(scales.size() == K, op, ": expected ", K, " coefficient scales, got ", scales.size());
  TORCH_CHECK(values.size() == slots.size(), op, ": ", values.size(), " coefficient tensors for ", slots.size(),
              " slots");
  for (size_t i = 0; i < K; ++i) coefs[i] = Coef{nullptr, scales[i], 0};
  for (size_t j = 0; j < values.size(); ++j) {
    const int64_t slot = slots[j];
    TORCH_CHECK(slot >= 0 && static_cast<size_t>(slot) < K && coefs[slot].values == nullptr, op,
                ": coefficient slot ", slot, " is out of range or given twice");
    const char* name = names[slot];
    const at::Tensor& v = values[j];
    TORCH_CHECK(v.scalar_type() == opmath_dtype(x), op, ": ", name, " must be ", opmath_dtype(x), " for ",
                x.scalar_type(), " data, got ", v.scalar_type());
    TORCH_CHECK(v.device() == x.device(), op, ": ", name, " must be on ", x.device(), ", got ", v.device());
    const bool single = v.sym_numel() == 1;
    TORCH_CHECK(single || (v.dim() == 1 && v.sym_size(0) == rows), op, ": ", name,
                " must hold one value per row ([", rows, "]) or a single value, got shape ", v.sym_sizes());
    TORCH_CHECK(v.is_contiguous(), op, ": ", name, " must be contiguous");
    // A meta call (the fake kernel) has no data: a non-null stand-in marks the slot as taken.
    coefs[slot] = Coef{meta ? v.unsafeGetTensorImpl() : v.data_ptr(), scales[slot], single ? 0 : 1};
  }
}

}  // namespace scorekern
