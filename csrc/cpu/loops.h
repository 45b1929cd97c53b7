// What every op's CPU loops share, compiled once per instruction set: each
// kernel file includes this inside its for_each_isa.h passes, so it has no
// include guard (once per pass, in namespace scorekern::cpu::SK_ISA):
//
// - Philox on SIMD lane packs (the rounds are philox.h's, written once for
//   any word type);
// - TileNoise and tile_normals: the stream's noise of one tile, in element
//   order, or a noise tensor's, or zeros;
// - sum_terms / sum_run: sums in a fixed order of additions.
#ifndef SK_ISA
#error "cpu/loops.h is compiled per instruction set: include it inside a kernel file's for_each_isa.h passes"
#endif

#include <cstring>

// The lane vectors never cross a function boundary (all inlined), so gcc's
// note about their calling convention does not apply.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#include "../scorekern/args.h"
#include "../scorekern/numeric.h"
#include "../scorekern/philox.h"
#include "tiles.h"

namespace scorekern {
namespace cpu {
namespace SK_ISA {

// ---------------------------------------------------------------------------
// Lane packs for Philox (SK_ISA_AVX512 and SK_ISA_AVX2 come from the
// including file: gcc's target pragma does not define __AVX2__ and friends).
// 32-bit words are held in 64-bit lanes, so that one
// even-lane widening multiply (pmuludq) gives both halves of the product and
// nothing needs shuffling. The upper 32 bits of a lane are don't-care: the
// multiply ignores them and the final narrowing drops them.
#if defined(SK_ISA_AVX512)
constexpr int kVectorLanes = 8;
typedef uint64_t U64V __attribute__((vector_size(64)));
typedef uint32_t U32V __attribute__((vector_size(32)));
SK_INLINE U64V mul_even(U64V a, uint32_t m) {
  return (U64V)_mm512_mul_epu32((__m512i)a, _mm512_set1_epi64(m));
}
#elif defined(SK_ISA_AVX2)
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

}  // namespace SK_ISA
}  // namespace cpu

#if !defined(SK_SCALAR_LANES)
template <>
struct WideMul<cpu::SK_ISA::Lanes> {
  using L = cpu::SK_ISA::Lanes;
  SK_INLINE static void mul(const L& c, uint32_t m, L& hi, L& lo) {
    for (int p = 0; p < cpu::SK_ISA::kPacks; ++p) {
      lo.v[p] = cpu::SK_ISA::mul_even(c.v[p], m);
      hi.v[p] = lo.v[p] >> 32;
    }
  }
};
#endif

namespace cpu {
namespace SK_ISA {

#include "../scorekern/philox_rounds.h"  // the rounds, compiled for this instruction set

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
      philox4x32_rounds(c0, c1, c2, c3, pos.key0, pos.key1);
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

// ---------------------------------------------------------------------------
// The noise of a tile, as the update and loss loops take it

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

// ---------------------------------------------------------------------------
// Eight values as one GCC vector (two AVX2 registers for float): maxima and
// sums that stay vector operations, which the compiler would not otherwise
// see through a select or a float reduction. n is a multiple of kWidth.

namespace vec {

constexpr int kWidth = 8;

template <typename O>
struct VecOf {
  typedef O type __attribute__((vector_size(kWidth * sizeof(O))));
};
template <typename O>
using Vec = typename VecOf<O>::type;

template <typename O>
SK_INLINE Vec<O> load(const O* p) {
  Vec<O> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename O>
SK_INLINE O horizontal_sum(Vec<O> v) {
  O s = 0;
  for (int i = 0; i < kWidth; ++i) s += v[i];
  return s;
}

template <typename O>
SK_INLINE O max(const O* __restrict v, int64_t n) {
  Vec<O> m = load(v);
  for (int64_t j = kWidth; j < n; j += kWidth) {
    const Vec<O> x = load(v + j);
    m = x > m ? x : m;
  }
  O r = m[0];
  for (int i = 1; i < kWidth; ++i) r = m[i] > r ? m[i] : r;
  return r;
}

template <typename O>
SK_INLINE O sum(const O* __restrict v, int64_t n) {
  Vec<O> s = {};
  for (int64_t j = 0; j < n; j += kWidth) s += load(v + j);
  return horizontal_sum<O>(s);
}

// v ← e^(v − shift), every v − shift ≤ 0.
template <typename O>
SK_INLINE void exp_shifted(O* __restrict v, int64_t n, O shift) {
  for (int64_t j = 0; j < n; ++j) v[j] = exp_nonpositive(v[j] - shift);
}

}  // namespace vec

}  // namespace SK_ISA
}  // namespace cpu
}  // namespace scorekern
