// The CPU kernel of masked_update (csrc/scorekern/masked_update.h): per
// tile, the two noises (z₂ for the update, z₁ for the observed entries), then
//   x' = m·(μ·y + σ·z₁) + (1 − m)·(a·x + b·s + c·z₂),  mean likewise without noise.
// out may be x (in place): each element is read before it is written. Bytes
// per element (float32): x, score, y, mask read, x' written (20; 24 with the
// mean). Compiled once per instruction set (for_each_isa.h).
#include <ATen/Parallel.h>

#include "../scorekern/masked_update.h"
#include "isa.h"
#include "tiles.h"

#define SK_CPU_FILE "masked_update.cpp"
#include "for_each_isa.h"

#if defined(SK_ISA)
#include "loops.h"

namespace scorekern::cpu::SK_ISA {

void masked_update_tiles(const MaskedUpdateArgs& args, const Plan& plan, int64_t t0, int64_t t1) {
  with_dtype(args.data.dtype, [&](auto tag) {
    using T = decltype(tag);
    using O = opmath_t<T>;
    const UpdateData& d = args.data;
    const RowCoef<O> a = typed<O>(args.a), b = typed<O>(args.b), c = typed<O>(args.c);
    const RowCoef<O> mu = typed<O>(args.mu), sigma = typed<O>(args.sigma);
    const bool no_z2 = zero_coef(args.c) && !d.noise.tensor;
    const bool no_z1 = zero_coef(args.sigma) && !args.observed.tensor;
    TileNoise<O> tile1, tile2;
    for (int64_t t = t0; t < t1; ++t) {
      const Span sp = span_of(plan, t);
      const O* z1 = tile_normals<T>(tile1, plan, sp, args.observed, no_z1);
      const O* z2 = tile_normals<T>(tile2, plan, sp, d.noise, no_z2);
      const int64_t base = span_base(plan, sp);
      const T* x = static_cast<const T*>(d.x) + base;
      const T* s = static_cast<const T*>(d.score) + base;
      const T* y = static_cast<const T*>(args.y) + base;
      const T* m = static_cast<const T*>(args.mask) + base;
      T* out = static_cast<T*>(d.out) + base;
      T* mean = d.mean ? static_cast<T*>(d.mean) + base : nullptr;
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
  });
}

}  // namespace scorekern::cpu::SK_ISA

#else  // the entry point, compiled once

namespace scorekern::cpu {

void masked_update(const MaskedUpdateArgs& args) {
  const Plan plan = make_plan(args.data.rows, args.data.cols);
  at::parallel_for(0, plan.tiles, kGrainTiles, [&](int64_t begin, int64_t end) {
    SK_CPU_DISPATCH(masked_update_tiles, args, plan, begin, end);
  });
}

}  // namespace scorekern::cpu

#endif
