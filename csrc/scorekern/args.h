// The arguments of the kernels, as raw pointers and sizes: what the torch
// glue hands to the CPU kernels and to the CUDA launchers (DESIGN §3).
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

// Inpainting's replacement of the observed entries (noisy_update.h): where
// y is set, the update writes mask·(μ·y + σ·z₁) + (1 − mask)·(a·x + b·s + c·z₂),
// z₂ the update's own noise and z₁ from `noise` here (same seed and row ids,
// its own offset). y and mask are [rows, cols] like x, of x's dtype.
struct Replacement {
  const void* y;  // null: a plain update
  const void* mask;
  Coef mu, sigma;
  NoiseSource noise;
};

// Data is [rows, cols], row-major and contiguous: a row is one sample
// flattened, and a 1-D tensor is a single row (DESIGN §1).
struct UpdateArgs {
  DType dtype;
  int64_t rows, cols;
  const void* x;
  const void* score;
  void* out;
  void* mean;  // may be null
  Coef a, b, c;
  NoiseSource noise;
  Replacement replace;  // replace.y null: none
};

// The per-row sums of the losses (losses.h), over [rows, cols] data:
//   Dsm:      sums[0] = Σ (p·score + q·z)², z from `noise`;
//   Sliced:   sums[0] = Σ v·vjp, sums[1] = Σ v·score;
//   SlicedVr: sums[0] = Σ v·vjp, sums[1] = Σ score².
enum class RowSumKind : int { Dsm, Sliced, SlicedVr };

struct RowSumArgs {
  DType dtype;
  RowSumKind kind;
  int64_t rows, cols;
  const void* score;
  const void* vjp;  // Sliced kinds
  const void* v;    // Sliced kinds
  Coef p, q;          // Dsm
  NoiseSource noise;  // Dsm
};

}  // namespace scorekern
