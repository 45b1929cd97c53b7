// The CPU kernels, type-erased and free of torch headers. They are compiled
// once per instruction set (kernels_avx512.cpp, kernels_avx2.cpp,
// kernels_baseline.cpp, each in its own namespace) and chosen at run time
// (dispatch.cpp), so a wheel built anywhere runs on any x86-64.
//
// Data is viewed as [rows, cols], row-major and contiguous (DESIGN §1: a row
// is one sample flattened; a 1-D tensor is one row). Work is cut into tiles
// of whole rows, or of parts of one long row, that never depend on the
// number of threads: results are the same whatever the parallelism.
#pragma once

#include <cstdint>

#include "../scorekern/args.h"
#include "../scorekern/mixture.h"

namespace scorekern {
namespace cpu {

constexpr int64_t kTile = 1024;  // elements per tile; a multiple of 4 and of every lane count

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

// Per (row, column tile) sums of squares of the score and of the noise,
// written to score_ss[row · col_tiles + ct] and noise_ss[...] in double.
struct SumSquaresArgs {
  DType dtype;
  const void* score;
  NoiseSource noise;
  double* score_ss;
  double* noise_ss;
};

// The mixture scores' expanded form (mixture_impl.h) on one tile of `rows`
// queries × `cols` centres: s (and gs) [rows, lds] with lds ≥ cols rounded up
// to 8; per-centre ‖μ‖²/2 and log-weights (or null), per-row 1/h², and per-row
// state m, l, factor (the backward reads its shifted lse from m and m·g from
// l, and adds its row sums to factor).
struct MixtureTile {
  bool float64;
  int64_t rows, cols, lds;
  void* s;
  void* gs;
  const void* half_norm;
  const void* log_weights;
  const void* inv_h2;
  void* m;
  void* l;
  void* factor;
};

// The exact form's largest dimension; larger ones take the expanded form.
constexpr int64_t kMixtureDirectMaxDim = 8;

struct Kernels {
  const char* name;
  void (*fill_noise)(DType dtype, const Plan& plan, void* out, NoiseKind kind,
                     const NoiseSource& noise, int64_t tile_begin, int64_t tile_end);
  void (*update)(const UpdateArgs& args, const Plan& plan, int64_t tile_begin, int64_t tile_end);
  void (*sum_squares)(const SumSquaresArgs& args, const Plan& plan, int64_t tile_begin,
                      int64_t tile_end);
  // The losses' per-row sums into sums0 (and sums1 for the sliced kinds),
  // per (row, column tile) like sum_squares.
  void (*row_sums)(const RowSumArgs& args, const Plan& plan, double* sums0, double* sums1,
                   int64_t tile_begin, int64_t tile_end);
  // Mixture scores, exact form (d ≤ kMixtureDirectMaxDim): queries [q0, q1),
  // centres transposed to [d, n_pad] (n_pad: N rounded up to 8, zero padded).
  void (*mixture_direct)(const MixtureArgs& args, const void* centers_t, int64_t n_pad, int64_t q0,
                         int64_t q1);
  void (*mixture_direct_backward)(const MixtureBackArgs& args, const void* centers_t, int64_t n_pad,
                                  int64_t q0, int64_t q1);
  // Mixture scores, expanded form: one tile (MixtureTile).
  void (*mixture_tile_softmax)(const MixtureTile& tile);
  void (*mixture_tile_backward)(const MixtureTile& tile);
};

// The instruction sets compiled into this build, best first, and the one in use.
const Kernels& kernels();
const char* capability();
// Names a capability to use ("avx512", "avx2", "baseline"); returns false if
// this CPU or build lacks it. The default is the best the CPU supports, or
// SCOREKERN_CPU_CAPABILITY when set.
bool set_capability(const char* name);
const char* supported_capabilities();  // comma-separated, best first

}  // namespace cpu
}  // namespace scorekern
