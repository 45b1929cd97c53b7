// The CPU kernel of dsm_loss (csrc/scorekern/dsm_loss.h): per (row, column
// tile), Σ (p·s + q·z)² with z the stream's normals of the tile (or a noise
// tensor's), in a fixed order of additions; each row's tiles then added in
// order, so the result does not depend on the number of threads. Bytes per
// element (float32): the score read (4; 8 with a noise tensor). Compiled once
// per instruction set (for_each_isa.h).
#include <ATen/Parallel.h>

#include <vector>

#include "../scorekern/dsm_loss.h"
#include "isa.h"
#include "tiles.h"

#define SK_CPU_FILE "dsm_loss.cpp"
#include "for_each_isa.h"

#if defined(SK_ISA)
#include "loops.h"

namespace scorekern::cpu::SK_ISA {

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

// Sums of tiles [t0, t1) into partial[row · col_tiles + column tile].
void dsm_loss_tiles(const DsmLossArgs& args, const Plan& plan, double* partial, int64_t t0, int64_t t1) {
  with_dtype(args.dtype, [&](auto tag) {
    using T = decltype(tag);
    using O = opmath_t<T>;
    const T* score = static_cast<const T*>(args.score);
    const RowCoef<O> p = typed<O>(args.p), q = typed<O>(args.q);
    const T* noise = static_cast<const T*>(args.noise.tensor);
    TileNoise<O> tile;
    for (int64_t t = t0; t < t1; ++t) {
      const Span sp = span_of(plan, t);
      const int64_t base = span_base(plan, sp);
      double* out = partial + sp.row0 * plan.col_tiles + sp.col0 / kTile;
      if (noise) dsm_span(score + base, noise + base, sp, p, q, out, plan.col_tiles);
      else dsm_span(score + base, tile.make(sp, args.noise, NoiseKind::Normal), sp, p, q, out, plan.col_tiles);
    }
  });
}

}  // namespace scorekern::cpu::SK_ISA

#else  // the entry point, compiled once

namespace scorekern::cpu {

void dsm_loss(const DsmLossArgs& args) {
  sum_rows<1>(args.dtype, args.rows, args.cols, {args.out},
              [&](const Plan& plan, const auto& sums, int64_t t0, int64_t t1) {
                SK_CPU_DISPATCH(dsm_loss_tiles, args, plan, sums[0], t0, t1);
              });
}

}  // namespace scorekern::cpu

#endif
