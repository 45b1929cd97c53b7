// The CPU kernel of snr_langevin_step (csrc/scorekern/snr_langevin_step.h),
// two passes with the same noise regenerated and never stored. Pass one: per
// (row, column tile) sums of squares of the score and the noise (whole
// groups of four straight from the Philox words: n0² + n1² = −2 ln u0, no
// sincos); then each row's ε in double; pass two: noisy_update's kernel with
// a = 1, b = ε, c = √(2ε). Bytes per element (float32): the score read twice
// and x once, x' written (16). Compiled once per instruction set.
#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

#include "../scorekern/noisy_update.h"
#include "../scorekern/snr_langevin_step.h"
#include "isa.h"
#include "tiles.h"

#if !defined(SK_ISA)  // once, before the passes of for_each_isa.h use it
namespace scorekern {
namespace cpu {

// Pass one's arguments: sums into score_ss[row · col_tiles + ct] and noise_ss[...].
struct SumSquaresArgs {
  DType dtype;
  const void* score;
  NoiseSource noise;
  double* score_ss;
  double* noise_ss;
};

}  // namespace cpu
}  // namespace scorekern
#endif

#define SK_CPU_FILE "snr_langevin_step.cpp"
#include "for_each_isa.h"

#if defined(SK_ISA)
#include "loops.h"

namespace scorekern::cpu::SK_ISA {

// Σz² of each row of a tile straight from the stream words: whole groups by
// normals4_square_sum (no sincos, no square root), a row's last partial
// group by its normals.
template <typename O>
SK_INLINE void noise_square_sums(TileNoise<O>& tile, const Span& sp, const NoiseSource& src,
                                 double* out, int64_t out_stride) {
  tile.make_words(sp, src);
  const int64_t groups_per_row = (sp.ncols + 3) / 4, full = sp.ncols / 4, rest = sp.ncols % 4;
  for (int64_t r = 0; r < sp.nrows; ++r) {
    const int64_t g0 = r * groups_per_row;
    for (int64_t g = 0; g < full; ++g) {
      const int64_t i = g0 + g;
      tile.squares[g] = normals4_square_sum(Words4{tile.w0[i], tile.w1[i], tile.w2[i], tile.w3[i]}, O{});
    }
    double total = sum_run<false, O, O>(tile.squares, full);
    if (rest) {
      const int64_t i = g0 + full;
      O z[4];
      normals4<O>(Words4{tile.w0[i], tile.w1[i], tile.w2[i], tile.w3[i]}, z[0], z[1], z[2], z[3]);
      for (int64_t j = 0; j < rest; ++j) total += static_cast<double>(z[j] * z[j]);
    }
    out[r * out_stride] = total;
  }
}

template <typename T>
void sum_squares(const SumSquaresArgs& args, const Plan& plan, int64_t t0, int64_t t1) {
  using O = opmath_t<T>;
  const T* score = static_cast<const T*>(args.score);
  const T* noise = static_cast<const T*>(args.noise.tensor);
  TileNoise<O> tile;
  for (int64_t t = t0; t < t1; ++t) {
    const Span sp = span_of(plan, t);
    const int64_t base = span_base(plan, sp);
    const int64_t slot0 = sp.row0 * plan.col_tiles + sp.col0 / kTile;  // row r adds r · col_tiles
    // A tile of several short rows draws its normals vectorised across rows
    // and sums each row; a long row sums whole groups straight from the words.
    const O* drawn = !noise && sp.nrows > 1 ? tile.make(sp, args.noise, NoiseKind::Normal) : nullptr;
    for (int64_t r = 0; r < sp.nrows; ++r) {
      const int64_t off = r * sp.ncols, slot = slot0 + r * plan.col_tiles;
      args.score_ss[slot] = sum_run<true, T, O>(score + base + off, sp.ncols);
      if (noise) args.noise_ss[slot] = sum_run<true, T, O>(noise + base + off, sp.ncols);
      if (drawn) args.noise_ss[slot] = sum_run<true, O, O>(drawn + off, sp.ncols);
    }
    if (!noise && !drawn) noise_square_sums(tile, sp, args.noise, args.noise_ss + slot0, plan.col_tiles);
  }
}

void sum_squares_tiles(const SumSquaresArgs& args, const Plan& plan, int64_t t0, int64_t t1) {
  with_dtype(args.dtype, [&](auto tag) { sum_squares<decltype(tag)>(args, plan, t0, t1); });
}

}  // namespace scorekern::cpu::SK_ISA

#else  // the entry point, compiled once

namespace scorekern::cpu {
namespace {

// b = ε and c = √(2ε) of every row into coefs[0, rows) and coefs[rows, 2·rows),
// computed in double and stored in the arithmetic type O of the data, from
// the rows' norms (or, with batch norms, their means).
template <typename O>
void write_snr_coefficients(const Coef& alpha, double snr, bool batch_norms, const double* score_norm,
                            const double* noise_norm, int64_t rows, O* coefs) {
  double score_mean = 0.0, noise_mean = 0.0;
  if (batch_norms) {
    for (int64_t r = 0; r < rows; ++r) {
      score_mean += score_norm[r];
      noise_mean += noise_norm[r];
    }
    score_mean /= static_cast<double>(rows);
    noise_mean /= static_cast<double>(rows);
  }
  const O* alpha_values = static_cast<const O*>(alpha.values);
  for (int64_t r = 0; r < rows; ++r) {
    const double alpha_r = alpha.scale * (alpha_values ? static_cast<double>(alpha_values[r * alpha.stride]) : 1.0);
    double b, c;
    snr_coefficients(alpha_r, snr, batch_norms ? noise_mean : noise_norm[r], batch_norms ? score_mean : score_norm[r],
                     b, c);
    coefs[r] = static_cast<O>(b);
    coefs[rows + r] = static_cast<O>(c);
  }
}

// The per-(row, column tile) sums and the coefficients, kept per thread and
// reused: a sampler calls the corrector every step, and fresh buffers each
// time would be zeroed and page-faulted anew.
template <typename V>
V* workspace(std::vector<V>& buffer, size_t n) {
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

}  // namespace

void snr_langevin_step(const SnrLangevinArgs& args) {
  const UpdateData& d = args.data;
  if (d.rows == 0 || d.cols == 0) return;
  const Plan plan = make_plan(d.rows, d.cols);
  const int64_t slots = d.rows * plan.col_tiles;
  thread_local std::vector<double> sums;
  double* score_ss = workspace(sums, 2 * static_cast<size_t>(slots));
  double* noise_ss = score_ss + slots;
  const SumSquaresArgs pass_one{d.dtype, d.score, d.noise, score_ss, noise_ss};
  at::parallel_for(0, plan.tiles, kGrainTiles, [&](int64_t begin, int64_t end) {
    SK_CPU_DISPATCH(sum_squares_tiles, pass_one, plan, begin, end);
  });
  // Norms per row, summed over column tiles in a fixed order, in place: row
  // r's norm goes to slot r, which no later row still needs.
  for (int64_t r = 0; r < d.rows; ++r) {
    double s = 0.0, z = 0.0;
    for (int64_t t = 0; t < plan.col_tiles; ++t) {
      s += score_ss[r * plan.col_tiles + t];
      z += noise_ss[r * plan.col_tiles + t];
    }
    score_ss[r] = std::sqrt(s);
    noise_ss[r] = std::sqrt(z);
  }
  NoisyUpdateArgs pass_two{d, Coef{nullptr, 1.0, 0}, {}, {}};
  thread_local std::vector<double> coefs64;
  thread_local std::vector<float> coefs32;
  const void* coefs;
  size_t item;
  if (d.dtype == DType::Float64) {
    double* c = workspace(coefs64, 2 * static_cast<size_t>(d.rows));
    write_snr_coefficients(args.alpha, args.snr, args.batch_norms, score_ss, noise_ss, d.rows, c);
    coefs = c;
    item = sizeof(double);
  } else {
    float* c = workspace(coefs32, 2 * static_cast<size_t>(d.rows));
    write_snr_coefficients(args.alpha, args.snr, args.batch_norms, score_ss, noise_ss, d.rows, c);
    coefs = c;
    item = sizeof(float);
  }
  pass_two.b = Coef{coefs, 1.0, 1};
  pass_two.c = Coef{static_cast<const char*>(coefs) + d.rows * item, 1.0, 1};
  noisy_update(pass_two);
}

}  // namespace scorekern::cpu

#endif
