// The CPU kernel of multistep_update (csrc/scorekern/multistep_update.h):
// per tile, the stream's normals (none when c = 0), then
//   mean = a·x + b·s + b₂·s₂,   x' = mean + c·z.
// out may be x (in place): each element is read before it is written. Bytes
// per element (float32): x, score and score2 read, x' written (16; 20 with
// the mean or a noise tensor). Compiled once per instruction set
// (for_each_isa.h).
#include <ATen/Parallel.h>

#include "../scorekern/multistep_update.h"
#include "isa.h"
#include "tiles.h"

#define SK_CPU_FILE "multistep_update.cpp"
#include "for_each_isa.h"

#if defined(SK_ISA)
#include "loops.h"

namespace scorekern::cpu::SK_ISA {

void multistep_update_tiles(const MultistepUpdateArgs& args, const Plan& plan, int64_t t0, int64_t t1) {
  with_dtype(args.data.dtype, [&](auto tag) {
    using T = decltype(tag);
    using O = opmath_t<T>;
    const UpdateData& d = args.data;
    const RowCoef<O> a = typed<O>(args.a), b = typed<O>(args.b), b2 = typed<O>(args.b2), c = typed<O>(args.c);
    const bool no_noise = zero_coef(args.c) && !d.noise.tensor;  // an ODE step draws none
    TileNoise<O> tile;
    for (int64_t t = t0; t < t1; ++t) {
      const Span sp = span_of(plan, t);
      const O* z = tile_normals<T>(tile, plan, sp, d.noise, no_noise);
      const int64_t base = span_base(plan, sp);
      const T* x = static_cast<const T*>(d.x) + base;
      const T* s = static_cast<const T*>(d.score) + base;
      const T* s2 = static_cast<const T*>(args.score2) + base;
      T* out = static_cast<T*>(d.out) + base;
      T* mean = d.mean ? static_cast<T*>(d.mean) + base : nullptr;
      for (int64_t r = 0; r < sp.nrows; ++r) {
        const int64_t row = sp.row0 + r;
        const O ar = a.at(row), br = b.at(row), b2r = b2.at(row), cr = c.at(row);
        for (int64_t j = r * sp.ncols, end = j + sp.ncols; j < end; ++j) {
          const O m = multistep_mean(ar, load_op(x + j), br, load_op(s + j), b2r, load_op(s2 + j));
          if (mean) store_op(mean + j, m);
          store_op(out + j, update_noisy(m, cr, z[j]));
        }
      }
    }
  });
}

}  // namespace scorekern::cpu::SK_ISA

#else  // the entry point, compiled once

namespace scorekern::cpu {

void multistep_update(const MultistepUpdateArgs& args) {
  const Plan plan = make_plan(args.data.rows, args.data.cols);
  at::parallel_for(0, plan.tiles, kGrainTiles, [&](int64_t begin, int64_t end) {
    SK_CPU_DISPATCH(multistep_update_tiles, args, plan, begin, end);
  });
}

}  // namespace scorekern::cpu

#endif
