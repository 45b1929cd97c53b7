// The CPU kernel of randn and rademacher (csrc/scorekern/noise.h): per tile,
// the Philox words of every group of four columns on SIMD lane packs, then
// Box–Muller (or the signs) into place. Bytes per element: the output only (4
// for float32). Compiled once per instruction set (for_each_isa.h).
#include <ATen/Parallel.h>

#include "../scorekern/noise.h"
#include "isa.h"
#include "tiles.h"

#define SK_CPU_FILE "noise.cpp"
#include "for_each_isa.h"

#if defined(SK_ISA)
#include "loops.h"

namespace scorekern::cpu::SK_ISA {

void fill_noise_tiles(const NoiseArgs& args, const Plan& plan, int64_t t0, int64_t t1) {
  with_dtype(args.dtype, [&](auto tag) {
    using T = decltype(tag);
    using O = opmath_t<T>;
    T* out = static_cast<T*>(args.out);
    TileNoise<O> tile;
    for (int64_t t = t0; t < t1; ++t) {
      const Span sp = span_of(plan, t);
      const O* z = tile.make(sp, args.source, args.kind);
      T* o = out + span_base(plan, sp);
      const int64_t n = span_size(sp);
      for (int64_t i = 0; i < n; ++i) store_op(o + i, z[i]);
    }
  });
}

}  // namespace scorekern::cpu::SK_ISA

#else  // the entry point, compiled once

namespace scorekern::cpu {

void fill_noise(const NoiseArgs& args) {
  const Plan plan = make_plan(args.rows, args.cols);
  at::parallel_for(0, plan.tiles, kGrainTiles, [&](int64_t begin, int64_t end) {
    SK_CPU_DISPATCH(fill_noise_tiles, args, plan, begin, end);
  });
}

}  // namespace scorekern::cpu

#endif
