// The CPU kernel of noisy_update (csrc/scorekern/noisy_update.h): per tile,
// the stream's normals (none when c = 0), then mean = a·x + b·s and
// x' = mean + c·z over each run of contiguous elements. Bytes per element
// (float32): x and the score read, x' written (12; 16 with the mean or a
// noise tensor). Compiled once per instruction set (for_each_isa.h).
#include <ATen/Parallel.h>

#include "../scorekern/noisy_update.h"
#include "isa.h"
#include "tiles.h"

#define SK_CPU_FILE "noisy_update.cpp"
#include "for_each_isa.h"

#if defined(SK_ISA)
#include "loops.h"

namespace scorekern::cpu::SK_ISA {

// mean = a·x + b·s, x' = mean + c·z over n contiguous elements. In place, x
// and x' are one pointer (xo), so that every pointer can be __restrict and
// the vectoriser needs no runtime alias check.
template <bool kInPlace, bool kMean, typename T, typename Z, typename O>
SK_INLINE void update_run(const T* __restrict x, T* __restrict xo, const T* __restrict s, const Z* __restrict z,
                          T* __restrict mean, int64_t n, O a, O b, O c) {
  const T* in = kInPlace ? xo : x;
  for (int64_t i = 0; i < n; ++i) {
    const O m = update_mean(a, load_op(in + i), b, load_op(s + i));
    if (kMean) store_op(mean + i, m);
    store_op(xo + i, update_noisy(m, c, load_op(z + i)));
  }
}

// z: the tile's noise, in element order (a noise tensor's T, or drawn in O).
template <typename T, typename O, typename Z>
SK_INLINE void update_span(const NoisyUpdateArgs& args, const Plan& plan, const Span& sp, const Z* z) {
  const UpdateData& d = args.data;
  const RowCoef<O> a = typed<O>(args.a), b = typed<O>(args.b), c = typed<O>(args.c);
  const int64_t base = span_base(plan, sp);
  const T* x = static_cast<const T*>(d.x) + base;
  const T* s = static_cast<const T*>(d.score) + base;
  T* out = static_cast<T*>(d.out) + base;
  T* mean = d.mean ? static_cast<T*>(d.mean) + base : nullptr;
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

void noisy_update_tiles(const NoisyUpdateArgs& args, const Plan& plan, int64_t t0, int64_t t1) {
  with_dtype(args.data.dtype, [&](auto tag) {
    using T = decltype(tag);
    using O = opmath_t<T>;
    if (const T* noise = static_cast<const T*>(args.data.noise.tensor)) {  // read in place
      for (int64_t t = t0; t < t1; ++t) {
        const Span sp = span_of(plan, t);
        update_span<T, O>(args, plan, sp, noise + span_base(plan, sp));
      }
      return;
    }
    // c = 0 (an ODE step): c·z is zero for every finite z, so draw none.
    const bool zero = zero_coef(args.c);
    TileNoise<O> tile;
    for (int64_t t = t0; t < t1; ++t) {
      const Span sp = span_of(plan, t);
      update_span<T, O>(args, plan, sp, zero ? zero_tile<O>() : tile.make(sp, args.data.noise, NoiseKind::Normal));
    }
  });
}

}  // namespace scorekern::cpu::SK_ISA

#else  // the entry point, compiled once

namespace scorekern::cpu {

void noisy_update(const NoisyUpdateArgs& args) {
  const Plan plan = make_plan(args.data.rows, args.data.cols);
  at::parallel_for(0, plan.tiles, kGrainTiles, [&](int64_t begin, int64_t end) {
    SK_CPU_DISPATCH(noisy_update_tiles, args, plan, begin, end);
  });
}

}  // namespace scorekern::cpu

#endif
