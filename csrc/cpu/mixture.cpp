// CPU implementations of the mixture scores (../scorekern/mixture.h):
// parallel over blocks of queries, each block walking all the centres in
// tiles with an online softmax, so memory is O((M + N)·d) plus a tile per
// thread whatever M·N.
//
// Small d takes the exact form (kernels.h: mixture_direct), one query at a
// time over transposed centres. Larger d takes the expanded form
// logit + ‖x‖²/2h² = ℓ + (x·μ − ‖μ‖²/2)/h², whose two products per tile (the
// dot products x·μ, then Σ p·μ) are matrix products (at::mm_out, torch's
// BLAS, single-threaded inside the parallel region); the exponentials and the
// online softmax between them are the per-ISA loops. Both x and the centres
// are first moved by the centres' mean, and ‖μ‖²/2 is computed once.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "../arguments.h"
#include "kernels.h"

namespace scorekern {
namespace {

constexpr int64_t kTileCenters = 512;  // centres per tile of the expanded form

int64_t padded8(int64_t n) { return (n + 7) / 8 * 8; }

// Queries per parallel task: whole blocks, at least four per thread.
int64_t query_block(int64_t M, int64_t max_block) {
  const int64_t threads = at::get_num_threads();
  int64_t q = (M + 4 * threads - 1) / (4 * threads);
  q = (q + 15) / 16 * 16;
  return q < 16 ? 16 : (q > max_block ? max_block : q);
}

// The centres as [d, n_pad], zero padded, for the exact form.
at::Tensor transposed_centers(const at::Tensor& centers) {
  const int64_t N = centers.size(0);
  at::Tensor ct = at::zeros({centers.size(1), padded8(N)}, centers.options());
  ct.narrow(1, 0, N).copy_(centers.t());
  return ct;
}

// The expanded form's shared inputs: x and the centres moved by the centres'
// mean, ‖μ‖²/2 per centre and 1/h² per query.
struct Expanded {
  at::Tensor xc, mc, half_norm, inv_h2, mean;
};

Expanded expanded_inputs(const MixtureCall& call) {
  Expanded e;
  e.mean = call.centers.mean(0, /*keepdim=*/true);
  e.xc = call.x.sub(e.mean);
  e.mc = call.centers.sub(e.mean);
  e.half_norm = e.mc.square().sum(1).mul_(0.5);
  const at::Tensor h = call.bandwidth.defined() ? call.bandwidth.mul(call.args.h_scale)
                                                : at::full({1}, call.args.h_scale, call.x.options());
  e.inv_h2 = h.square().reciprocal_().expand({call.args.M}).contiguous();
  return e;
}

cpu::MixtureTile tile_of(const MixtureCall& call, const Expanded& e, int64_t q0, int64_t rows, int64_t j0,
                    int64_t cols, at::Tensor& s, void* m, void* l, void* factor) {
  const size_t item = call.args.float64 ? sizeof(double) : sizeof(float);
  const char* lw = static_cast<const char*>(call.args.log_weights);
  cpu::MixtureTile t{};
  t.float64 = call.args.float64;
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

void expanded_forward(MixtureCall& call) {
  const MixtureArgs& a = call.args;
  const Expanded e = expanded_inputs(call);
  // Up to 512 queries per block: MKL packs the centre tile anew in every
  // product, so taller blocks pack it fewer times (M = 4096, d = 64: about
  // 10% faster than blocks of 128 here, though the tile then outgrows L2).
  const int64_t Q = query_block(a.M, 512);
  at::Tensor acc = at::zeros({a.M, a.d}, call.x.options());
  at::Tensor m = at::full({a.M}, -INFINITY, call.x.options());
  at::Tensor l = at::zeros({a.M}, call.x.options());
  const cpu::Kernels& k = cpu::kernels();
  const int64_t blocks = (a.M + Q - 1) / Q;
  at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    at::Tensor s = at::empty({Q, padded8(kTileCenters)}, call.x.options());
    at::Tensor factor = at::empty({Q, 1}, call.x.options());
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t q0 = b * Q, rows = std::min(Q, a.M - q0);
      at::Tensor xq = e.xc.narrow(0, q0, rows), accq = acc.narrow(0, q0, rows);
      for (int64_t j0 = 0; j0 < a.N; j0 += kTileCenters) {
        const int64_t cols = std::min(kTileCenters, a.N - j0);
        const at::Tensor mu = e.mc.narrow(0, j0, cols);
        at::Tensor st = s.narrow(0, 0, rows).narrow(1, 0, cols);
        at::mm_out(st, xq, mu.t());
        const cpu::MixtureTile t = tile_of(call, e, q0, rows, j0, cols, s, m.narrow(0, q0, rows).data_ptr(),
                                      l.narrow(0, q0, rows).data_ptr(), factor.data_ptr());
        k.mixture_tile_softmax(t);
        if (!a.score) continue;
        accq.mul_(factor.narrow(0, 0, rows));
        at::addmm_out(accq, accq, st, mu);
      }
    }
  });
  // lse = m + log l − ‖x − c̄‖²/2h²; score = (Σ p μ / l − x)/h², in moved coordinates.
  call.lse.copy_(m.add(l.log()).sub_(e.xc.square().sum(1).mul_(e.inv_h2).mul_(0.5)));
  if (a.score) call.score.copy_(acc.div(l.unsqueeze(1)).sub_(e.xc).mul_(e.inv_h2.unsqueeze(1)));
}

void expanded_backward(MixtureBackCall& call) {
  const MixtureCall& f = call.fwd;
  const MixtureArgs& a = f.args;
  const Expanded e = expanded_inputs(f);
  const int64_t Q = query_block(a.M, 128);
  // Per query: the lse in the expanded form's shift, m − c̄ = x − c̄ + h²·score, and (m − c̄)·g.
  const at::Tensor ih2 = e.inv_h2.unsqueeze(1);
  const at::Tensor shifted = f.lse.add(e.xc.square().sum(1).mul_(e.inv_h2).mul_(0.5));
  const at::Tensor mean = e.xc.add(f.score.div(ih2));
  const at::Tensor mg = mean.mul(call.grad).sum(1);
  at::Tensor acc = at::zeros({a.M, a.d}, f.x.options());
  at::Tensor psum = at::zeros({a.M, 1}, f.x.options());
  const cpu::Kernels& k = cpu::kernels();
  const int64_t blocks = (a.M + Q - 1) / Q;
  at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    at::Tensor s = at::empty({Q, padded8(kTileCenters)}, f.x.options());
    at::Tensor gs = at::empty({Q, padded8(kTileCenters)}, f.x.options());
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t q0 = b * Q, rows = std::min(Q, a.M - q0);
      at::Tensor accq = acc.narrow(0, q0, rows);
      for (int64_t j0 = 0; j0 < a.N; j0 += kTileCenters) {
        const int64_t cols = std::min(kTileCenters, a.N - j0);
        const at::Tensor mu = e.mc.narrow(0, j0, cols);
        at::Tensor st = s.narrow(0, 0, rows).narrow(1, 0, cols);
        at::Tensor gst = gs.narrow(0, 0, rows).narrow(1, 0, cols);
        at::mm_out(st, e.xc.narrow(0, q0, rows), mu.t());
        at::mm_out(gst, call.grad.narrow(0, q0, rows), mu.t());
        cpu::MixtureTile t = tile_of(f, e, q0, rows, j0, cols, s, shifted.narrow(0, q0, rows).data_ptr(),
                                mg.narrow(0, q0, rows).data_ptr(), psum.narrow(0, q0, rows).data_ptr());
        t.gs = gs.data_ptr();
        k.mixture_tile_backward(t);
        at::addmm_out(accq, accq, gst, mu);
      }
    }
  });
  // Σ w ((μ − m)·g)(μ − m) = Σ p' μ − (Σ p') m, all in moved coordinates.
  call.grad_x.copy_(acc.sub(psum.mul(mean)).mul_(ih2).sub_(call.grad).mul_(ih2));
}

template <typename Fn>
void over_queries(int64_t M, Fn fn) {
  at::parallel_for(0, M, 16, [&](int64_t q0, int64_t q1) { fn(q0, q1); });
}

std::tuple<at::Tensor, at::Tensor> mixture_score_cpu(const at::Tensor& x, const at::Tensor& centers,
                                                     const std::optional<at::Tensor>& bandwidth,
                                                     double bandwidth_scale,
                                                     const std::optional<at::Tensor>& log_weights,
                                                     bool with_score) {
  MixtureCall call =
      prepare_mixture(x, centers, bandwidth, bandwidth_scale, log_weights, with_score, "mixture_score");
  if (call.args.M > 0) {
    if (call.args.d <= cpu::kMixtureDirectMaxDim) {
      const at::Tensor ct = transposed_centers(call.centers);
      const cpu::Kernels& k = cpu::kernels();
      over_queries(call.args.M, [&](int64_t q0, int64_t q1) {
        k.mixture_direct(call.args, ct.data_ptr(), ct.size(1), q0, q1);
      });
    } else {
      expanded_forward(call);
    }
  }
  return {call.score_result(), call.lse};
}

at::Tensor mixture_score_backward_cpu(const at::Tensor& grad, const at::Tensor& x,
                                      const at::Tensor& centers,
                                      const std::optional<at::Tensor>& bandwidth,
                                      double bandwidth_scale,
                                      const std::optional<at::Tensor>& log_weights,
                                      const at::Tensor& score, const at::Tensor& lse) {
  MixtureBackCall call = prepare_mixture_backward(grad, x, centers, bandwidth, bandwidth_scale,
                                                  log_weights, score, lse, "mixture_score_backward");
  if (call.fwd.args.M > 0) {
    if (call.fwd.args.d <= cpu::kMixtureDirectMaxDim) {
      const at::Tensor ct = transposed_centers(call.fwd.centers);
      const cpu::Kernels& k = cpu::kernels();
      over_queries(call.fwd.args.M, [&](int64_t q0, int64_t q1) {
        k.mixture_direct_backward(call.args, ct.data_ptr(), ct.size(1), q0, q1);
      });
    } else {
      expanded_backward(call);
    }
  }
  return call.grad_x.to(call.fwd.out_dtype);
}

}  // namespace

TORCH_LIBRARY_IMPL(scorekern, CPU, m) {
  m.impl("mixture_score", &mixture_score_cpu);
  m.impl("mixture_score_backward", &mixture_score_backward_cpu);
}

}  // namespace scorekern
