// The CPU kernel of sliced_score_terms (csrc/scorekern/sliced_score_terms.h):
// per (row, column tile), Σ v·vjp and Σ v·s (Σ s² with variance reduction)
// in a fixed order of additions; each row's tiles then added in order.
// Bytes per element (float32): three tensors read (12). Compiled once per
// instruction set (for_each_isa.h).
#include <ATen/Parallel.h>

#include <vector>

#include "../scorekern/sliced_score_terms.h"
#include "isa.h"
#include "tiles.h"

#define SK_CPU_FILE "sliced_score_terms.cpp"
#include "for_each_isa.h"

#if defined(SK_ISA)
#include "loops.h"

namespace scorekern::cpu::SK_ISA {

// Sums of tiles [t0, t1) into first/second[row · col_tiles + column tile].
void sliced_score_terms_tiles(const SlicedScoreArgs& args, const Plan& plan, double* first, double* second,
                              int64_t t0, int64_t t1) {
  with_dtype(args.dtype, [&](auto tag) {
    using T = decltype(tag);
    using O = opmath_t<T>;
    const T* score = static_cast<const T*>(args.score);
    const T* vjp = static_cast<const T*>(args.vjp);
    const T* v = static_cast<const T*>(args.v);
    for (int64_t t = t0; t < t1; ++t) {
      const Span sp = span_of(plan, t);
      for (int64_t r = 0; r < sp.nrows; ++r) {
        const int64_t off = span_base(plan, sp) + r * sp.ncols;
        const int64_t slot = (sp.row0 + r) * plan.col_tiles + sp.col0 / kTile;
        const T *sr = score + off, *ur = vjp + off, *vv = v + off;
        // One pass per sum, the choice of the second term made outside the loop.
        first[slot] = sum_terms<O>(sp.ncols, [&](int64_t i) { return sliced_first(load_op(vv + i), load_op(ur + i)); });
        if (args.variance_reduction) {
          second[slot] = sum_terms<O>(sp.ncols, [&](int64_t i) {
            return sliced_second<true>(load_op(vv + i), load_op(sr + i));
          });
        } else {
          second[slot] = sum_terms<O>(sp.ncols, [&](int64_t i) {
            return sliced_second<false>(load_op(vv + i), load_op(sr + i));
          });
        }
      }
    }
  });
}

}  // namespace scorekern::cpu::SK_ISA

#else  // the entry point, compiled once

namespace scorekern::cpu {

void sliced_score_terms(const SlicedScoreArgs& args) {
  sum_rows<2>(args.dtype, args.rows, args.cols, {args.first, args.second},
              [&](const Plan& plan, const auto& sums, int64_t t0, int64_t t1) {
                SK_CPU_DISPATCH(sliced_score_terms_tiles, args, plan, sums[0], sums[1], t0, t1);
              });
}

}  // namespace scorekern::cpu

#endif
