// How the CPU kernels cut [rows, cols] data into tiles: of whole rows, or of
// parts of one long row, that never depend on the number of threads, so
// results are the same whatever the parallelism. Shared by every op's CPU
// kernel; compiled once (no instruction-set code here).
#pragma once

#include <ATen/Parallel.h>

#include <array>
#include <cstdint>
#include <vector>

#include "../scorekern/args.h"
#include "../scorekern/numeric.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>  // for cpu/loops.h's lane packs, included outside any target pragma
#endif

namespace scorekern {
namespace cpu {

constexpr int64_t kTile = 1024;      // elements per tile; a multiple of 4 and of every lane count
constexpr int64_t kGrainTiles = 16;  // tiles per parallel task: about 16K elements, small tensors on one thread

struct Plan {
  int64_t rows, cols;
  int64_t col_tiles;      // > 1 when a row is cut into several tiles
  int64_t rows_per_tile;  // > 1 when a tile holds several short rows
  int64_t tiles;
};

inline Plan make_plan(int64_t rows, int64_t cols) {
  Plan p{rows, cols, 1, 1, 0};
  if (rows == 0 || cols == 0) return p;
  if (cols > kTile) {
    p.col_tiles = (cols + kTile - 1) / kTile;
    p.tiles = rows * p.col_tiles;
  } else {
    const int64_t padded = (cols + 3) / 4 * 4;  // a row's noise uses whole groups of 4
    p.rows_per_tile = kTile / padded;
    p.tiles = (rows + p.rows_per_tile - 1) / p.rows_per_tile;
  }
  return p;
}

// One tile: rows [row0, row0 + nrows) and columns [col0, col0 + ncols) of
// each, contiguous in memory from element row0·cols + col0.
struct Span {
  int64_t row0, nrows, col0, ncols;
};

inline Span span_of(const Plan& p, int64_t t) {
  if (p.col_tiles > 1) {
    const int64_t row = t / p.col_tiles;
    const int64_t col0 = (t % p.col_tiles) * kTile;
    const int64_t ncols = p.cols - col0 < kTile ? p.cols - col0 : kTile;
    return Span{row, 1, col0, ncols};
  }
  const int64_t row0 = t * p.rows_per_tile;
  const int64_t nrows = p.rows - row0 < p.rows_per_tile ? p.rows - row0 : p.rows_per_tile;
  return Span{row0, nrows, 0, p.cols};
}

inline int64_t span_base(const Plan& p, const Span& s) { return s.row0 * p.cols + s.col0; }
inline int64_t span_size(const Span& s) { return s.nrows * s.ncols; }

// Per-row sums from per-(row, column tile) partial sums, in a fixed order.
template <typename O>
void add_tiles(const double* partial, int64_t rows, int64_t col_tiles, O* out) {
  for (int64_t r = 0; r < rows; ++r) {
    double total = 0.0;
    for (int64_t t = 0; t < col_tiles; ++t) total += partial[r * col_tiles + t];
    out[r] = static_cast<O>(total);
  }
}

// K per-row sums of [rows, cols] data into outs (float, or double when
// `dtype` is float64): tiles(plan, partial, t0, t1) adds tiles [t0, t1) of
// each sum k into partial[k][row · col_tiles + column tile], in parallel;
// then each row's tiles are added in order (the same result whatever the
// number of threads). Rows of no columns sum to zero.
template <size_t K, typename Tiles>
void sum_rows(DType dtype, int64_t rows, int64_t cols, const std::array<void*, K>& outs, Tiles&& tiles) {
  const bool f64 = dtype == DType::Float64;
  if (rows == 0) return;
  const Plan plan = make_plan(rows, cols > 0 ? cols : 1);
  const int64_t slots = rows * plan.col_tiles;
  thread_local std::vector<double> buffer;  // reused: a training step calls the loss every step
  buffer.assign(K * static_cast<size_t>(slots), 0.0);
  std::array<double*, K> partial;
  for (size_t k = 0; k < K; ++k) partial[k] = buffer.data() + k * slots;
  if (cols > 0) {
    at::parallel_for(0, plan.tiles, kGrainTiles, [&](int64_t t0, int64_t t1) { tiles(plan, partial, t0, t1); });
  }
  for (size_t k = 0; k < K; ++k) {
    if (f64) add_tiles(partial[k], rows, plan.col_tiles, static_cast<double*>(outs[k]));
    else add_tiles(partial[k], rows, plan.col_tiles, static_cast<float*>(outs[k]));
  }
}

// Calls fn(T{}) for the storage type T of `dtype`.
template <typename Fn>
inline void with_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::Float32: fn(float{}); break;
    case DType::Float64: fn(double{}); break;
    case DType::Float16: fn(Half{}); break;
    case DType::BFloat16: fn(BFloat16{}); break;
  }
}

}  // namespace cpu
}  // namespace scorekern
