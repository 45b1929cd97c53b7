// The CPU kernel loops, written once and compiled once per instruction set:
// each kernels_<isa>.cpp sets its target and SK_CPU_NS, then includes this
// file, so every function here lives in scorekern::cpu::<isa> and the copies
// built for different instruction sets never meet at link time.
//
// The arithmetic itself comes from the shared headers (philox.h,
// noisy_update.h, numeric.h); this file only walks the data: a tile's Philox
// counters are laid out in arrays, Philox runs on SIMD lane packs, and the
// Box–Muller and update loops are plain loops that gcc vectorises.
//
// Bytes per element (float32): fill_noise writes 4; update reads x and the
// score and writes x' (12; 16 with the mean; 16 with a noise tensor);
// sum_squares reads the score (4, 8 with a noise tensor); row_sums reads the
// score (4, 8 with a noise tensor) for DSM and three tensors (12) for the
// sliced sums. On this class of
// machine generating the noise, not memory, sets the pace.
#pragma once

#ifndef SK_CPU_NS
#error "define SK_CPU_NS (the instruction-set namespace) before including kernels_impl.h"
#endif

#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

#include "../scorekern/losses.h"
#include "../scorekern/noisy_update.h"
#include "../scorekern/numeric.h"
#include "../scorekern/philox.h"
#include "kernels.h"

namespace scorekern {
namespace cpu {
namespace SK_CPU_NS {

// ---------------------------------------------------------------------------
// Lane packs for Philox (SK_CPU_AVX512 and SK_CPU_AVX2 come from the
// including file: gcc's target pragma does not define __AVX2__ and friends).
// 32-bit words are held in 64-bit lanes, so that one
// even-lane widening multiply (pmuludq) gives both halves of the product and
// nothing needs shuffling. The upper 32 bits of a lane are don't-care: the
// multiply ignores them and the final narrowing drops them.
#if defined(SK_CPU_AVX512)
constexpr int kVectorLanes = 8;
typedef uint64_t U64V __attribute__((vector_size(64)));
typedef uint32_t U32V __attribute__((vector_size(32)));
SK_INLINE U64V mul_even(U64V a, uint32_t m) {
  return (U64V)_mm512_mul_epu32((__m512i)a, _mm512_set1_epi64(m));
}
#elif defined(SK_CPU_AVX2)
constexpr int kVectorLanes = 4;
typedef uint64_t U64V __attribute__((vector_size(32)));
typedef uint32_t U32V __attribute__((vector_size(16)));
SK_INLINE U64V mul_even(U64V a, uint32_t m) {
  return (U64V)_mm256_mul_epu32((__m256i)a, _mm256_set1_epi64x(m));
}
#elif defined(__SSE2__)
constexpr int kVectorLanes = 2;
typedef uint64_t U64V __attribute__((vector_size(16)));
typedef uint32_t U32V __attribute__((vector_size(8)));
SK_INLINE U64V mul_even(U64V a, uint32_t m) {
  return (U64V)_mm_mul_epu32((__m128i)a, _mm_set1_epi64x(m));
}
#else
#define SK_SCALAR_LANES 1
#endif

#if defined(SK_SCALAR_LANES)
constexpr int kLanes = 1;
using Lanes = uint32_t;
SK_INLINE Lanes load_lanes(const uint32_t* p) { return *p; }
SK_INLINE void store_lanes(uint32_t* p, Lanes v) { *p = v; }
SK_INLINE Lanes splat(uint32_t k) { return k; }
#else
// Two vectors per pack: a Philox round is a chain of dependent multiplies,
// and two independent chains side by side keep the multiplier busy.
constexpr int kPacks = 2;
constexpr int kLanes = kPacks * kVectorLanes;
struct Lanes {
  U64V v[kPacks];
};
SK_INLINE Lanes operator^(const Lanes& a, const Lanes& b) {
  Lanes r;
  for (int p = 0; p < kPacks; ++p) r.v[p] = a.v[p] ^ b.v[p];
  return r;
}
SK_INLINE Lanes operator^(const Lanes& a, uint32_t k) {
  Lanes r;
  for (int p = 0; p < kPacks; ++p) r.v[p] = a.v[p] ^ static_cast<uint64_t>(k);
  return r;
}
SK_INLINE Lanes load_lanes(const uint32_t* ptr) {
  Lanes r;
  for (int p = 0; p < kPacks; ++p) {
    U32V t;
    std::memcpy(&t, ptr + p * kVectorLanes, sizeof t);
    r.v[p] = __builtin_convertvector(t, U64V);
  }
  return r;
}
SK_INLINE void store_lanes(uint32_t* ptr, const Lanes& l) {
  for (int p = 0; p < kPacks; ++p) {
    const U32V t = __builtin_convertvector(l.v[p], U32V);
    std::memcpy(ptr + p * kVectorLanes, &t, sizeof t);
  }
}
SK_INLINE Lanes splat(uint32_t k) {
  Lanes r;
  for (int p = 0; p < kPacks; ++p) r.v[p] = U64V{} + static_cast<uint64_t>(k);
  return r;
}
#endif

}  // namespace SK_CPU_NS
}  // namespace cpu

#if !defined(SK_SCALAR_LANES)
template <>
struct WideMul<cpu::SK_CPU_NS::Lanes> {
  using L = cpu::SK_CPU_NS::Lanes;
  SK_INLINE static void mul(const L& c, uint32_t m, L& hi, L& lo) {
    for (int p = 0; p < cpu::SK_CPU_NS::kPacks; ++p) {
      lo.v[p] = cpu::SK_CPU_NS::mul_even(c.v[p], m);
      hi.v[p] = lo.v[p] >> 32;
    }
  }
};
#endif

namespace cpu {
namespace SK_CPU_NS {

constexpr int64_t kTileGroups = kTile / 4;
static_assert(kTileGroups % kLanes == 0, "a tile's groups must fill whole lane packs");

// The noise of one tile in element order, generated from the stream: the
// Philox counters (column block, row id) of every group of four columns,
// then the words, then normals or signs.
template <typename O>
struct TileNoise {
  alignas(64) uint32_t block[kTileGroups];
  alignas(64) uint32_t row[kTileGroups];
  alignas(64) uint32_t w0[kTileGroups], w1[kTileGroups], w2[kTileGroups], w3[kTileGroups];
  alignas(64) O n0[kTileGroups], n1[kTileGroups], n2[kTileGroups], n3[kTileGroups];
  alignas(64) O grouped[kTile];  // four values per group, group after group
  alignas(64) O ordered[kTile];  // element order, when short rows leave gaps in `grouped`
  alignas(64) O squares[kTileGroups];  // per-group sums of squares (the corrector's norms)

  // The Philox words of every group of the tile, row after row, in w0..w3;
  // returns the number of groups.
  int64_t make_words(const Span& sp, const NoiseSource& src) {
    const int64_t groups_per_row = (sp.ncols + 3) / 4;
    const uint32_t block0 = static_cast<uint32_t>(sp.col0 / 4);
    int64_t n = 0;
    for (int64_t r = 0; r < sp.nrows; ++r) {
      const int64_t index = sp.row0 + r;
      const uint32_t id = static_cast<uint32_t>(src.row_ids ? src.row_ids[index] : index);
      for (int64_t g = 0; g < groups_per_row; ++g, ++n) {
        block[n] = block0 + static_cast<uint32_t>(g);
        row[n] = id;
      }
    }
    const int64_t padded = (n + kLanes - 1) / kLanes * kLanes;
    for (int64_t i = n; i < padded; ++i) block[i] = row[i] = 0;

    const StreamPos pos = src.pos;
    for (int64_t i = 0; i < padded; i += kLanes) {
      Lanes c0 = load_lanes(block + i), c1 = load_lanes(row + i);
      Lanes c2 = splat(pos.off0), c3 = splat(pos.off1);
      philox4x32_10(c0, c1, c2, c3, pos.key0, pos.key1);
      store_lanes(w0 + i, c0);
      store_lanes(w1 + i, c1);
      store_lanes(w2 + i, c2);
      store_lanes(w3 + i, c3);
    }
    return n;
  }

  // The tile's noise in element order.
  const O* make(const Span& sp, const NoiseSource& src, NoiseKind kind) {
    const int64_t n = make_words(sp, src);
    const int64_t groups_per_row = (sp.ncols + 3) / 4;
    if (kind == NoiseKind::Normal) {
      // Box–Muller into four planes, then one interleaving pass: gcc
      // vectorises the planes without the shuffles of four-way strided stores.
      for (int64_t i = 0; i < n; ++i) {
        normals4<O>(Words4{w0[i], w1[i], w2[i], w3[i]}, n0[i], n1[i], n2[i], n3[i]);
      }
      for (int64_t i = 0; i < n; ++i) {
        grouped[4 * i] = n0[i];
        grouped[4 * i + 1] = n1[i];
        grouped[4 * i + 2] = n2[i];
        grouped[4 * i + 3] = n3[i];
      }
    } else {
      for (int64_t i = 0; i < n; ++i) {
        grouped[4 * i] = rademacher_from_word<O>(w0[i]);
        grouped[4 * i + 1] = rademacher_from_word<O>(w1[i]);
        grouped[4 * i + 2] = rademacher_from_word<O>(w2[i]);
        grouped[4 * i + 3] = rademacher_from_word<O>(w3[i]);
      }
    }
    if (sp.nrows == 1 || sp.ncols % 4 == 0) return grouped;
    for (int64_t r = 0; r < sp.nrows; ++r) {  // short rows: a loop, not a memcpy call per row
      const O* from = grouped + r * groups_per_row * 4;
      O* to = ordered + r * sp.ncols;
      for (int64_t j = 0; j < sp.ncols; ++j) to[j] = from[j];
    }
    return ordered;
  }
};

template <typename O>
SK_INLINE RowCoef<O> typed(const Coef& c) {
  return RowCoef<O>{static_cast<const O*>(c.values), static_cast<O>(c.scale), c.stride};
}

// ---------------------------------------------------------------------------
// randn / rademacher

template <typename T>
void fill_noise_impl(const Plan& plan, void* out_, NoiseKind kind, const NoiseSource& src,
                     int64_t t0, int64_t t1) {
  using O = opmath_t<T>;
  T* out = static_cast<T*>(out_);
  TileNoise<O> tile;
  for (int64_t t = t0; t < t1; ++t) {
    const Span sp = span_of(plan, t);
    const O* z = tile.make(sp, src, kind);
    T* o = out + span_base(plan, sp);
    const int64_t n = span_size(sp);
    for (int64_t i = 0; i < n; ++i) store_op(o + i, z[i]);
  }
}

// ---------------------------------------------------------------------------
// noisy_update: mean = a·x + b·s, x' = mean + c·z over n contiguous elements.
// In place, x and x' are one pointer (xo), so that every pointer here can be
// __restrict and the vectoriser needs no runtime alias check.

template <bool kInPlace, bool kMean, typename T, typename Z, typename O>
SK_INLINE void update_run(const T* __restrict x, T* __restrict xo, const T* __restrict s,
                          const Z* __restrict z, T* __restrict mean, int64_t n, O a, O b, O c) {
  const T* in = kInPlace ? xo : x;
  for (int64_t i = 0; i < n; ++i) {
    const O m = update_mean(a, load_op(in + i), b, load_op(s + i));
    if (kMean) store_op(mean + i, m);
    store_op(xo + i, update_noisy(m, c, load_op(z + i)));
  }
}

template <typename T, typename Z, typename O>
SK_INLINE void update_span(const UpdateArgs& args, const Plan& plan, const Span& sp, const Z* z,
                           const RowCoef<O>& a, const RowCoef<O>& b, const RowCoef<O>& c) {
  const int64_t base = span_base(plan, sp);
  const T* x = static_cast<const T*>(args.x) + base;
  const T* s = static_cast<const T*>(args.score) + base;
  T* out = static_cast<T*>(args.out) + base;
  T* mean = args.mean ? static_cast<T*>(args.mean) + base : nullptr;
  const bool inplace = static_cast<const void*>(out) == static_cast<const void*>(x);
  // With coefficients shared by all rows the whole tile is one run.
  const bool shared = a.uniform() && b.uniform() && c.uniform();
  const int64_t runs = shared ? 1 : sp.nrows;
  const int64_t len = shared ? span_size(sp) : sp.ncols;
  for (int64_t r = 0; r < runs; ++r) {
    const int64_t row = sp.row0 + r, off = r * len;
    const O ar = a.at(row), br = b.at(row), cr = c.at(row);
    T* m = mean ? mean + off : nullptr;
    if (inplace) {
      if (m) update_run<true, true>(static_cast<const T*>(nullptr), out + off, s + off, z + off, m, len, ar, br, cr);
      else update_run<true, false>(static_cast<const T*>(nullptr), out + off, s + off, z + off, m, len, ar, br, cr);
    } else {
      if (m) update_run<false, true>(x + off, out + off, s + off, z + off, m, len, ar, br, cr);
      else update_run<false, false>(x + off, out + off, s + off, z + off, m, len, ar, br, cr);
    }
  }
}

// A tile's noise as opmath values in element order: zeros (c = 0 draws
// none), a noise tensor's values, or the stream's.
template <typename O>
const O* zero_tile() {
  alignas(64) static const O zeros[kTile] = {};
  return zeros;
}

template <typename T, typename O>
const O* tile_normals(TileNoise<O>& tile, const Plan& plan, const Span& sp, const NoiseSource& src,
                      bool zero) {
  if (zero) return zero_tile<O>();
  if (src.tensor == nullptr) return tile.make(sp, src, NoiseKind::Normal);
  const T* z = static_cast<const T*>(src.tensor) + span_base(plan, sp);
  const int64_t n = span_size(sp);
  for (int64_t i = 0; i < n; ++i) tile.ordered[i] = load_op(z + i);
  return tile.ordered;
}

SK_INLINE bool zero_coef(const Coef& c) { return c.values == nullptr && c.scale == 0.0; }

// Masked updates (inpainting, noisy_update.h): per row, then per element
//   x' = m·(μ·y + σ·z₁) + (1 − m)·(a·x + b·s + c·z₂),  mean = m·μ·y + (1 − m)·(a·x + b·s).
// out may be x (in place): each element is read before it is written.
template <typename T>
void masked_update_impl(const UpdateArgs& args, const Plan& plan, int64_t t0, int64_t t1) {
  using O = opmath_t<T>;
  const Replacement& rep = args.replace;
  const RowCoef<O> a = typed<O>(args.a), b = typed<O>(args.b), c = typed<O>(args.c);
  const RowCoef<O> mu = typed<O>(rep.mu), sigma = typed<O>(rep.sigma);
  const bool no_z2 = zero_coef(args.c) && !args.noise.tensor;
  const bool no_z1 = zero_coef(rep.sigma) && !rep.noise.tensor;
  TileNoise<O> tile1, tile2;
  for (int64_t t = t0; t < t1; ++t) {
    const Span sp = span_of(plan, t);
    const O* z1 = tile_normals<T>(tile1, plan, sp, rep.noise, no_z1);
    const O* z2 = tile_normals<T>(tile2, plan, sp, args.noise, no_z2);
    const int64_t base = span_base(plan, sp);
    const T* x = static_cast<const T*>(args.x) + base;
    const T* s = static_cast<const T*>(args.score) + base;
    const T* y = static_cast<const T*>(rep.y) + base;
    const T* m = static_cast<const T*>(rep.mask) + base;
    T* out = static_cast<T*>(args.out) + base;
    T* mean = args.mean ? static_cast<T*>(args.mean) + base : nullptr;
    for (int64_t r = 0; r < sp.nrows; ++r) {
      const int64_t row = sp.row0 + r;
      const O ar = a.at(row), br = b.at(row), cr = c.at(row), mur = mu.at(row), sr = sigma.at(row);
      for (int64_t j = r * sp.ncols, end = j + sp.ncols; j < end; ++j) {
        const O mk = load_op(m + j);
        const O kept = update_mean(ar, load_op(x + j), br, load_op(s + j));
        const O data = mur * load_op(y + j);
        if (mean) store_op(mean + j, masked_blend(mk, data, kept));
        store_op(out + j, masked_blend(mk, update_noisy(data, sr, z1[j]), update_noisy(kept, cr, z2[j])));
      }
    }
  }
}

template <typename T>
void update_impl(const UpdateArgs& args, const Plan& plan, int64_t t0, int64_t t1) {
  if (args.replace.y) {
    masked_update_impl<T>(args, plan, t0, t1);
    return;
  }
  using O = opmath_t<T>;
  const RowCoef<O> a = typed<O>(args.a), b = typed<O>(args.b), c = typed<O>(args.c);
  if (args.noise.tensor) {
    const T* noise = static_cast<const T*>(args.noise.tensor);
    for (int64_t t = t0; t < t1; ++t) {
      const Span sp = span_of(plan, t);
      update_span<T>(args, plan, sp, noise + span_base(plan, sp), a, b, c);
    }
    return;
  }
  if (zero_coef(args.c)) {
    // c = 0 (an ODE step): c·z is zero for every finite z, so draw none.
    for (int64_t t = t0; t < t1; ++t) update_span<T>(args, plan, span_of(plan, t), zero_tile<O>(), a, b, c);
    return;
  }
  TileNoise<O> tile;
  for (int64_t t = t0; t < t1; ++t) {
    const Span sp = span_of(plan, t);
    update_span<T>(args, plan, sp, tile.make(sp, args.noise, NoiseKind::Normal), a, b, c);
  }
}

// ---------------------------------------------------------------------------
// Sums per (row, column tile). Sixteen independent accumulators fix the order
// of additions (the vectoriser may not reorder a float sum), so the result
// does not depend on the number of threads or the vector width. (Between
// instruction sets it may differ by rounding: the AVX2 build fuses
// multiply-adds.)

constexpr int kAccumulators = 16;

// Σ term(i) over i < n, in O, returned as double.
template <typename O, typename Term>
SK_INLINE double sum_terms(int64_t n, Term term) {
  if (n < kAccumulators) {  // short rows: one accumulator, in order
    O acc = 0;
    for (int64_t i = 0; i < n; ++i) acc += term(i);
    return static_cast<double>(acc);
  }
  O acc[kAccumulators] = {};
  int64_t i = 0;
  for (; i + kAccumulators <= n; i += kAccumulators) {
    for (int j = 0; j < kAccumulators; ++j) acc[j] += term(i + j);
  }
  for (int j = 0; i + j < n; ++j) acc[j] += term(i + j);
  double total = 0.0;
  for (int j = 0; j < kAccumulators; ++j) total += static_cast<double>(acc[j]);
  return total;
}

// Σ vᵢ² (kSquare) or Σ vᵢ over n elements, in O, returned as double.
template <bool kSquare, typename V, typename O>
SK_INLINE double sum_run(const V* __restrict p, int64_t n) {
  return sum_terms<O>(n, [p](int64_t i) {
    const O v = load_op(p + i);
    return kSquare ? v * v : v;
  });
}

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
void sum_squares_impl(const SumSquaresArgs& args, const Plan& plan, int64_t t0, int64_t t1) {
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

// ---------------------------------------------------------------------------
// The losses' per-row sums (losses.h), per (row, column tile) like the
// corrector's: sums0[row · col_tiles + tile], and sums1 for the sliced kinds.

template <typename T, typename Z, typename O>
SK_INLINE void dsm_span(const T* __restrict s, const Z* __restrict z, const Span& sp,
                        const RowCoef<O>& p, const RowCoef<O>& q, double* out, int64_t out_stride) {
  for (int64_t r = 0; r < sp.nrows; ++r) {
    const int64_t off = r * sp.ncols;
    const O pr = p.at(sp.row0 + r), qr = q.at(sp.row0 + r);
    out[r * out_stride] = sum_terms<O>(sp.ncols, [&](int64_t i) {
      const O e = dsm_residual(pr, load_op(s + off + i), qr, load_op(z + off + i));
      return e * e;
    });
  }
}

template <typename T>
void row_sums_impl(const RowSumArgs& args, const Plan& plan, double* sums0, double* sums1,
                   int64_t t0, int64_t t1) {
  using O = opmath_t<T>;
  const T* score = static_cast<const T*>(args.score);
  if (args.kind == RowSumKind::Dsm) {
    const RowCoef<O> p = typed<O>(args.p), q = typed<O>(args.q);
    const T* noise = static_cast<const T*>(args.noise.tensor);
    TileNoise<O> tile;
    for (int64_t t = t0; t < t1; ++t) {
      const Span sp = span_of(plan, t);
      const int64_t base = span_base(plan, sp);
      double* out = sums0 + sp.row0 * plan.col_tiles + sp.col0 / kTile;
      if (noise) dsm_span(score + base, noise + base, sp, p, q, out, plan.col_tiles);
      else dsm_span(score + base, tile.make(sp, args.noise, NoiseKind::Normal), sp, p, q, out, plan.col_tiles);
    }
    return;
  }
  const bool vr = args.kind == RowSumKind::SlicedVr;
  const T* vjp = static_cast<const T*>(args.vjp);
  const T* v = static_cast<const T*>(args.v);
  for (int64_t t = t0; t < t1; ++t) {
    const Span sp = span_of(plan, t);
    for (int64_t r = 0; r < sp.nrows; ++r) {
      const int64_t off = span_base(plan, sp) + r * sp.ncols;
      const int64_t slot = (sp.row0 + r) * plan.col_tiles + sp.col0 / kTile;
      const T *sr = score + off, *ur = vjp + off, *vv = v + off;
      sums0[slot] = sum_terms<O>(sp.ncols, [&](int64_t i) { return load_op(vv + i) * load_op(ur + i); });
      if (vr) {
        sums1[slot] = sum_run<true, T, O>(sr, sp.ncols);
      } else {
        sums1[slot] = sum_terms<O>(sp.ncols, [&](int64_t i) { return load_op(vv + i) * load_op(sr + i); });
      }
    }
  }
}

// ---------------------------------------------------------------------------
// The mixture scores.

#include "mixture_impl.h"

// ---------------------------------------------------------------------------
// Entry points: one switch on the dtype each.

#define SK_CPU_DISPATCH(dtype, FN, ...)                          \
  switch (dtype) {                                               \
    case DType::Float32: FN<float>(__VA_ARGS__); break;          \
    case DType::Float64: FN<double>(__VA_ARGS__); break;         \
    case DType::Float16: FN<Half>(__VA_ARGS__); break;           \
    case DType::BFloat16: FN<BFloat16>(__VA_ARGS__); break;      \
  }

inline void fill_noise(DType dtype, const Plan& plan, void* out, NoiseKind kind,
                       const NoiseSource& src, int64_t t0, int64_t t1) {
  SK_CPU_DISPATCH(dtype, fill_noise_impl, plan, out, kind, src, t0, t1)
}

inline void update(const UpdateArgs& args, const Plan& plan, int64_t t0, int64_t t1) {
  SK_CPU_DISPATCH(args.dtype, update_impl, args, plan, t0, t1)
}

inline void sum_squares(const SumSquaresArgs& args, const Plan& plan, int64_t t0, int64_t t1) {
  SK_CPU_DISPATCH(args.dtype, sum_squares_impl, args, plan, t0, t1)
}

inline void row_sums(const RowSumArgs& args, const Plan& plan, double* sums0, double* sums1,
                     int64_t t0, int64_t t1) {
  SK_CPU_DISPATCH(args.dtype, row_sums_impl, args, plan, sums0, sums1, t0, t1)
}

#undef SK_CPU_DISPATCH

const Kernels& table();

}  // namespace SK_CPU_NS
}  // namespace cpu
}  // namespace scorekern

// The table each kernels_<isa>.cpp defines (with SK_CPU_NAME, its name).
#define SK_DEFINE_CPU_KERNELS(NAME)                                                   \
  namespace scorekern {                                                               \
  namespace cpu {                                                                     \
  namespace SK_CPU_NS {                                                               \
  const Kernels& table() {                                                            \
    static const Kernels k{NAME,        &fill_noise,           &update,              \
                          &sum_squares, &row_sums,             &mixture_direct,      \
                          &mixture_direct_backward, &mixture_tile_softmax, &mixture_tile_backward}; \
    return k;                                                                         \
  }                                                                                   \
  }                                                                                   \
  }                                                                                   \
  }
