// The expanded form of the CPU mixture kernels (mixture_score.cpp takes it
// for d > 8): logit + ‖x‖²/2h² = ℓ + (x·μ − ‖μ‖²/2)/h², whose two products per
// tile (x·μ, then Σ p·μ) are matrix products (at::mm_out, torch's BLAS,
// single-threaded inside the parallel region); the exponentials and the
// online softmax between them are the per-instruction-set loops below. Both
// x and the centres are first moved by the centres' mean, and ‖μ‖²/2 is
// computed once. The backward recomputes the weights from the saved lse.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/full.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>

#include <algorithm>

#include "../scorekern/mixture_score.h"
#include "isa.h"
#include "tiles.h"

#if !defined(SK_ISA)  // once, before the passes of for_each_isa.h use it
namespace scorekern {
namespace cpu {

// One tile of `rows` queries × `cols` centres: s (and gs) [rows, lds] with
// lds ≥ cols rounded up to 8; per-centre ‖μ‖²/2 and log-weights (or null),
// per-row 1/h², and per-row state m, l, factor (the backward reads its
// shifted lse from m and m·g from l, and adds its row sums to factor).
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

}  // namespace cpu
}  // namespace scorekern
#endif

#define SK_CPU_FILE "mixture_score_expanded.cpp"
#include "for_each_isa.h"

#if defined(SK_ISA)
#include "loops.h"

namespace scorekern::cpu::SK_ISA {
namespace {

// The expanded form on one tile: s[r, j] holds x_r·μ_j for rows r < rows and
// centres j < cols (row stride lds); becomes p[r, j] = e^(logit − m_r).
template <typename O>
void tile_softmax(const MixtureTile& t) {
  const O* hn = static_cast<const O*>(t.half_norm);
  const O* lw = static_cast<const O*>(t.log_weights);
  const O* inv_h2 = static_cast<const O*>(t.inv_h2);
  O* m = static_cast<O*>(t.m);
  O* l = static_cast<O*>(t.l);
  O* factor = static_cast<O*>(t.factor);
  const int64_t n = (t.cols + vec::kWidth - 1) / vec::kWidth * vec::kWidth;  // s rows are padded to lds ≥ n
  for (int64_t r = 0; r < t.rows; ++r) {
    O* s = static_cast<O*>(t.s) + r * t.lds;
    const O ih = inv_h2[r];
    for (int64_t j = 0; j < t.cols; ++j) s[j] = mixture_logit_expanded(lw ? lw[j] : O(0), s[j] - hn[j], ih);
    for (int64_t j = t.cols; j < n; ++j) s[j] = -INFINITY;
    OnlineSoftmax<O> st{m[r], l[r]};
    factor[r] = st.rescale(vec::max(s, n));
    if (st.m != -INFINITY) {
      vec::exp_shifted(s, n, st.m);
      st.l += vec::sum(s, n);
    } else {
      for (int64_t j = 0; j < n; ++j) s[j] = O(0);
    }
    m[r] = st.m;
    l[r] = st.l;
  }
}

// The backward on one tile: s holds x_r·μ_j and gs holds g_r·μ_j; gs becomes
// w_rj ((μ_j − m_r)·g_r) with w = e^(logit − lse_r), and psum[r] gains its row sum.
template <typename O>
void tile_backward(const MixtureTile& t) {
  const O* hn = static_cast<const O*>(t.half_norm);
  const O* lw = static_cast<const O*>(t.log_weights);
  const O* inv_h2 = static_cast<const O*>(t.inv_h2);
  const O* lse = static_cast<const O*>(t.m);  // the shifted lse per row
  const O* mg = static_cast<const O*>(t.l);   // m_r·g_r per row
  O* psum = static_cast<O*>(t.factor);
  const int64_t n = (t.cols + vec::kWidth - 1) / vec::kWidth * vec::kWidth;
  for (int64_t r = 0; r < t.rows; ++r) {
    O* s = static_cast<O*>(t.s) + r * t.lds;
    O* gs = static_cast<O*>(t.gs) + r * t.lds;
    const O ih = inv_h2[r];
    for (int64_t j = 0; j < t.cols; ++j) s[j] = mixture_logit_expanded(lw ? lw[j] : O(0), s[j] - hn[j], ih);
    for (int64_t j = t.cols; j < n; ++j) s[j] = -INFINITY;
    vec::exp_shifted(s, n, lse[r]);
    for (int64_t j = 0; j < t.cols; ++j) gs[j] = s[j] * (gs[j] - mg[r]);
    for (int64_t j = t.cols; j < n; ++j) gs[j] = O(0);
    psum[r] += vec::sum(gs, n);
  }
}

}  // namespace

void mixture_tile_softmax(const MixtureTile& t) {
  if (t.float64) tile_softmax<double>(t);
  else tile_softmax<float>(t);
}

void mixture_tile_backward(const MixtureTile& t) {
  if (t.float64) tile_backward<double>(t);
  else tile_backward<float>(t);
}

}  // namespace scorekern::cpu::SK_ISA

#else  // the entry point, compiled once

namespace scorekern::cpu {
namespace {

constexpr int64_t kCentreTile = 512;  // centres per tile

int64_t padded8(int64_t n) { return (n + 7) / 8 * 8; }

at::TensorOptions options_of(const MixtureArgs& a) {
  return at::TensorOptions().dtype(a.float64 ? at::kDouble : at::kFloat);
}

// Queries per parallel task: whole blocks, at least four per thread.
int64_t query_block(int64_t M, int64_t max_block) {
  const int64_t threads = at::get_num_threads();
  int64_t q = (M + 4 * threads - 1) / (4 * threads);
  q = (q + 15) / 16 * 16;
  return q < 16 ? 16 : (q > max_block ? max_block : q);
}

// The expanded form's shared inputs: x and the centres moved by the centres'
// mean, ‖μ‖²/2 per centre and 1/h² per query.
struct Expanded {
  at::Tensor xc, mc, half_norm, inv_h2, mean;
};

Expanded expanded_inputs(const MixtureArgs& a) {
  Expanded e;
  const at::TensorOptions opts = options_of(a);
  const at::Tensor x = at::from_blob(const_cast<void*>(a.x), {a.M, a.d}, opts);
  const at::Tensor centers = at::from_blob(const_cast<void*>(a.centers), {a.N, a.d}, opts);
  e.mean = centers.mean(0, /*keepdim=*/true);
  e.xc = x.sub(e.mean);
  e.mc = centers.sub(e.mean);
  e.half_norm = e.mc.square().sum(1).mul_(0.5);
  const Coef& bw = a.bandwidth;
  const at::Tensor h = bw.values
                           ? at::from_blob(const_cast<void*>(bw.values), {bw.stride ? a.M : 1}, opts).mul(bw.scale)
                           : at::full({1}, bw.scale, opts);
  e.inv_h2 = h.square().reciprocal_().expand({a.M}).contiguous();
  return e;
}

MixtureTile tile_of(const MixtureArgs& a, const Expanded& e, int64_t q0, int64_t rows, int64_t j0,
                    int64_t cols, at::Tensor& s, void* m, void* l, void* factor) {
  const size_t item = a.float64 ? sizeof(double) : sizeof(float);
  const char* lw = static_cast<const char*>(a.log_weights);
  MixtureTile t{};
  t.float64 = a.float64;
  t.rows = rows;
  t.cols = cols;
  t.lds = s.size(1);
  t.s = s.data_ptr();
  t.half_norm = static_cast<const char*>(e.half_norm.data_ptr()) + j0 * item;
  t.log_weights = lw ? lw + j0 * item : nullptr;
  t.inv_h2 = static_cast<const char*>(e.inv_h2.data_ptr()) + q0 * item;
  t.m = m;
  t.l = l;
  t.factor = factor;
  return t;
}

}  // namespace

void mixture_score_expanded(const MixtureArgs& a) {
  const Expanded e = expanded_inputs(a);
  const at::TensorOptions opts = options_of(a);
  // Up to 512 queries per block: MKL packs the centre tile anew in every
  // product, so taller blocks pack it fewer times (M = 4096, d = 64: about
  // 10% faster than blocks of 128 here, though the tile then outgrows L2).
  const int64_t Q = query_block(a.M, 512);
  at::Tensor acc = at::zeros({a.M, a.d}, opts);
  at::Tensor m = at::full({a.M}, -INFINITY, opts);
  at::Tensor l = at::zeros({a.M}, opts);
  const int64_t blocks = (a.M + Q - 1) / Q;
  at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    at::Tensor s = at::empty({Q, padded8(kCentreTile)}, opts);
    at::Tensor factor = at::empty({Q, 1}, opts);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t q0 = b * Q, rows = std::min(Q, a.M - q0);
      at::Tensor xq = e.xc.narrow(0, q0, rows), accq = acc.narrow(0, q0, rows);
      for (int64_t j0 = 0; j0 < a.N; j0 += kCentreTile) {
        const int64_t cols = std::min(kCentreTile, a.N - j0);
        const at::Tensor mu = e.mc.narrow(0, j0, cols);
        at::Tensor st = s.narrow(0, 0, rows).narrow(1, 0, cols);
        at::mm_out(st, xq, mu.t());
        const MixtureTile t = tile_of(a, e, q0, rows, j0, cols, s, m.narrow(0, q0, rows).data_ptr(),
                                      l.narrow(0, q0, rows).data_ptr(), factor.data_ptr());
        SK_CPU_DISPATCH(mixture_tile_softmax, t);
        if (!a.score) continue;
        accq.mul_(factor.narrow(0, 0, rows));
        at::addmm_out(accq, accq, st, mu);
      }
    }
  });
  // lse = m + log l − ‖x − c̄‖²/2h²; score = (Σ p μ / l − x)/h², in moved coordinates.
  at::from_blob(a.lse, {a.M}, opts).copy_(m.add(l.log()).sub_(e.xc.square().sum(1).mul_(e.inv_h2).mul_(0.5)));
  if (a.score) {
    at::from_blob(a.score, {a.M, a.d}, opts).copy_(acc.div(l.unsqueeze(1)).sub_(e.xc).mul_(e.inv_h2.unsqueeze(1)));
  }
}

void mixture_score_expanded_backward(const MixtureBackArgs& b) {
  const MixtureArgs& a = b.fwd;
  const Expanded e = expanded_inputs(a);
  const at::TensorOptions opts = options_of(a);
  const at::Tensor lse = at::from_blob(const_cast<void*>(a.lse), {a.M}, opts);
  const at::Tensor score = at::from_blob(const_cast<void*>(a.score), {a.M, a.d}, opts);
  const at::Tensor grad = at::from_blob(const_cast<void*>(b.grad), {a.M, a.d}, opts);
  const int64_t Q = query_block(a.M, 128);
  // Per query: the lse in the expanded form's shift, m − c̄ = x − c̄ + h²·score, and (m − c̄)·g.
  const at::Tensor ih2 = e.inv_h2.unsqueeze(1);
  const at::Tensor shifted = lse.add(e.xc.square().sum(1).mul_(e.inv_h2).mul_(0.5));
  const at::Tensor mean = e.xc.add(score.div(ih2));
  const at::Tensor mg = mean.mul(grad).sum(1);
  at::Tensor acc = at::zeros({a.M, a.d}, opts);
  at::Tensor psum = at::zeros({a.M, 1}, opts);
  const int64_t blocks = (a.M + Q - 1) / Q;
  at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    at::Tensor s = at::empty({Q, padded8(kCentreTile)}, opts);
    at::Tensor gs = at::empty({Q, padded8(kCentreTile)}, opts);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t q0 = b * Q, rows = std::min(Q, a.M - q0);
      at::Tensor accq = acc.narrow(0, q0, rows);
      for (int64_t j0 = 0; j0 < a.N; j0 += kCentreTile) {
        const int64_t cols = std::min(kCentreTile, a.N - j0);
        const at::Tensor mu = e.mc.narrow(0, j0, cols);
        at::Tensor st = s.narrow(0, 0, rows).narrow(1, 0, cols);
        at::Tensor gst = gs.narrow(0, 0, rows).narrow(1, 0, cols);
        at::mm_out(st, e.xc.narrow(0, q0, rows), mu.t());
        at::mm_out(gst, grad.narrow(0, q0, rows), mu.t());
        MixtureTile t = tile_of(a, e, q0, rows, j0, cols, s, shifted.narrow(0, q0, rows).data_ptr(),
                                mg.narrow(0, q0, rows).data_ptr(), psum.narrow(0, q0, rows).data_ptr());
        t.gs = gs.data_ptr();
        SK_CPU_DISPATCH(mixture_tile_backward, t);
        at::addmm_out(accq, accq, gst, mu);
      }
    }
  });
  // Σ w ((μ − m)·g)(μ − m) = Σ p' μ − (Σ p') m, all in moved coordinates.
  at::from_blob(b.grad_x, {a.M, a.d}, opts).copy_(acc.sub(psum.mul(mean)).mul_(ih2).sub_(grad).mul_(ih2));
}

}  // namespace scorekern::cpu

#endif
