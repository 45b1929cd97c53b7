// The pieces every op's raw arguments share (DESIGN §3): storage types, a
// per-row coefficient, where noise comes from, and the data of the update
// ops. Each op's own arguments are in its header (noisy_update.h, ...).
#pragma once

#include <cstdint>

#include "philox.h"

namespace scorekern {

enum class DType : int { Float32, Float64, Float16, BFloat16 };
enum class NoiseKind : int { Normal, Rademacher };

// A per-row coefficient before typing: scale · values[row · stride]; values
// point to float for float32/16-bit data and to double for float64 data.
struct Coef {
  const void* values;
  double scale;
  int64_t stride;
};

// A typed per-row coefficient, as the kernels read it: scale · values[row ·
// stride], or the scale alone when there are no values. stride is 1 for a
// [B] tensor and 0 for one value that every row shares (a 0-d tensor on the
// device, read there to avoid a sync).
template <typename T>
struct RowCoef {
  const T* values;
  T scale;
  int64_t stride;

  SK_HD SK_INLINE T at(int64_t row) const { return values ? scale * values[row * stride] : scale; }
  SK_HD SK_INLINE bool uniform() const { return values == nullptr || stride == 0; }
};

template <typename T>
inline RowCoef<T> typed(const Coef& c) {
  return RowCoef<T>{static_cast<const T*>(c.values), static_cast<T>(c.scale), c.stride};
}

// No values and a zero scale: a coefficient that is 0 in every row (a noise
// term that draws nothing).
inline bool zero_coef(const Coef& c) { return c.values == nullptr && c.scale == 0.0; }

// Where the noise comes from: a tensor of the data's dtype, or the stream.
// Under CUDA graph capture the seed and a base offset are read on the device
// at launch (torch's graph-safe Philox state: captured_seed and
// captured_offset point to them), and pos holds the offset within the graph.
struct NoiseSource {
  const void* tensor;      // if set, used instead of the stream
  const int64_t* row_ids;  // per-row ids, or null for the row index
  StreamPos pos;
  const int64_t* captured_seed;    // null unless captured
  const int64_t* captured_offset;  // added to pos's offset
};

// The data of the update ops (noisy_update, masked_update,
// snr_langevin_step): [rows, cols], row-major and contiguous. A row is one
// sample flattened, and a 1-D tensor is a single row (DESIGN §1).
struct UpdateData {
  DType dtype;
  int64_t rows, cols;
  const void* x;
  const void* score;
  void* out;   // may be x (in place)
  void* mean;  // may be null
  NoiseSource noise;
};

}  // namespace scorekern
