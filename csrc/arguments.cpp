#include "arguments.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <ATen/MemoryOverlap.h>
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

namespace scorekern {

RowShape row_shape(const at::Tensor& x, const char* op) {
  TORCH_CHECK(x.dim() >= 1, op, ": x must have at least one dimension, got a 0-d tensor");
  const int64_t rows = x.dim() == 1 ? 1 : x.size(0);
  const int64_t cols = rows == 0 ? 0 : x.numel() / rows;
  // The stream's counter holds the row in 32 bits and the column block c/4
  // in 32 bits (DESIGN §2).
  TORCH_CHECK(cols <= (int64_t{1} << 34), op, ": a row may hold at most 2^34 elements, got ",
              cols);
  return RowShape{rows, cols};
}

DType kernel_dtype(const at::Tensor& x, const char* op) {
  switch (x.scalar_type()) {
    case at::kFloat: return DType::Float32;
    case at::kDouble: return DType::Float64;
    case at::kHalf: return DType::Float16;
    case at::kBFloat16: return DType::BFloat16;
    default:
      TORCH_CHECK(false, op, ": expected a float32, float64, float16 or bfloat16 tensor, got ",
                  x.scalar_type());
  }
}

c10::ScalarType opmath_dtype(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

StreamPos stream_pos(int64_t seed, int64_t offset) {
  return make_stream_pos(static_cast<uint64_t>(seed), static_cast<uint64_t>(offset));
}

const int64_t* checked_row_ids(const std::optional<at::Tensor>& row_ids, const at::Tensor& x,
                               int64_t rows, const char* op) {
  if (!row_ids.has_value()) {
    TORCH_CHECK(rows <= (int64_t{1} << 32), op,
                ": more than 2^32 rows need explicit row_ids (the row id is a 32-bit word)");
    return nullptr;
  }
  const at::Tensor& ids = *row_ids;
  TORCH_CHECK(ids.scalar_type() == at::kLong, op, ": row_ids must be an int64 tensor, got ",
              ids.scalar_type());
  TORCH_CHECK(ids.dim() == 1 && ids.size(0) == rows, op,
              ": row_ids must have shape [", rows, "] (one id per row), got ", ids.sizes());
  TORCH_CHECK(ids.device() == x.device(), op, ": row_ids must be on ", x.device(), ", got ",
              ids.device());
  TORCH_CHECK(ids.is_contiguous(), op, ": row_ids must be contiguous");
  const int64_t* p = ids.data_ptr<int64_t>();
  if (ids.is_cpu()) {
    for (int64_t i = 0; i < rows; ++i) {
      TORCH_CHECK(p[i] >= 0 && p[i] <= int64_t{0xffffffff}, op,
                  ": row_ids must lie in [0, 2^32), got ", p[i], " at position ", i);
    }
  }
  return p;
}

Coef checked_coef(const std::optional<at::Tensor>& values, double scale, const at::Tensor& x,
                  int64_t rows, const char* name, const char* op) {
  if (!values.has_value()) return Coef{nullptr, scale, 0};
  const at::Tensor& v = *values;
  TORCH_CHECK(v.scalar_type() == opmath_dtype(x), op, ": ", name, " must be ",
              opmath_dtype(x), " for ", x.scalar_type(), " data, got ", v.scalar_type());
  TORCH_CHECK(v.device() == x.device(), op, ": ", name, " must be on ", x.device(), ", got ",
              v.device());
  TORCH_CHECK(v.numel() == 1 || (v.dim() == 1 && v.size(0) == rows), op, ": ", name,
              " must hold one value per row ([", rows, "]) or a single value, got shape ",
              v.sizes());
  TORCH_CHECK(v.is_contiguous(), op, ": ", name, " must be contiguous");
  return Coef{v.data_ptr(), scale, v.numel() == 1 ? 0 : 1};
}

namespace {

void check_like(const at::Tensor& t, const at::Tensor& x, const char* name, const char* op,
                const char* like = "x") {
  TORCH_CHECK(t.device() == x.device(), op, ": ", name, " must be on ", x.device(), " like ", like,
              ", got ", t.device());
  TORCH_CHECK(t.scalar_type() == x.scalar_type(), op, ": ", name, " must have ", like, "'s dtype ",
              x.scalar_type(), ", got ", t.scalar_type());
  TORCH_CHECK(t.sizes() == x.sizes(), op, ": ", name, " must have ", like, "'s shape ", x.sizes(),
              ", got ", t.sizes());
}

// The contiguous tensor a kernel writes for `target`: target itself when it
// is contiguous (x itself when writing in place), else a temporary.
at::Tensor writable(const at::Tensor& target, const at::Tensor& x, const at::Tensor& x_contig,
                    at::Tensor& copy_back) {
  if (target.is_contiguous()) return target;
  copy_back = target;
  if (target.is_same(x)) return x_contig;  // in place on a strided x: write its contiguous copy
  return at::empty(target.sizes(), target.options().memory_format(at::MemoryFormat::Contiguous));
}

}  // namespace

UpdateCall prepare_update(const at::Tensor& x, const at::Tensor& score,
                          const std::optional<at::Tensor>& noise, int64_t seed, int64_t offset,
                          const std::optional<at::Tensor>& row_ids, const at::Tensor& out,
                          const std::optional<at::Tensor>& mean_out, const char* op) {
  const RowShape shape = row_shape(x, op);
  UpdateCall call;
  call.args.dtype = kernel_dtype(x, op);
  call.args.rows = shape.rows;
  call.args.cols = shape.cols;
  check_like(score, x, "score", op);
  check_like(out, x, "out", op);
  if (noise.has_value()) check_like(*noise, x, "noise", op);
  if (mean_out.has_value()) check_like(*mean_out, x, "mean_out", op);

  // out may be x itself (in place) but must not partly overlap it, nor touch
  // the other inputs; mean_out must be apart from everything.
  at::assert_no_partial_overlap(out, x);
  at::assert_no_overlap(out, score);
  if (noise.has_value()) at::assert_no_overlap(out, *noise);
  if (mean_out.has_value()) {
    at::assert_no_overlap(*mean_out, x);
    at::assert_no_overlap(*mean_out, score);
    at::assert_no_overlap(*mean_out, out);
    if (noise.has_value()) at::assert_no_overlap(*mean_out, *noise);
  }

  call.x = x.contiguous();
  call.score = score.contiguous();
  if (noise.has_value()) call.noise = noise->contiguous();
  call.out = writable(out, x, call.x, call.out_target);
  if (mean_out.has_value()) call.mean = writable(*mean_out, x, call.x, call.mean_target);
  if (row_ids.has_value()) call.row_ids = *row_ids;

  call.args.x = call.x.data_ptr();
  call.args.score = call.score.data_ptr();
  call.args.out = call.out.data_ptr();
  call.args.mean = call.mean.defined() ? call.mean.data_ptr() : nullptr;
  call.args.noise.tensor = call.noise.defined() ? call.noise.data_ptr() : nullptr;
  call.args.noise.row_ids = checked_row_ids(row_ids, x, shape.rows, op);
  call.args.noise.pos = stream_pos(seed, offset);
  return call;
}

namespace {

RowSumCall prepare_row_sums(const at::Tensor& score, RowSumKind kind, const char* op) {
  const RowShape shape = row_shape(score, op);
  RowSumCall call;
  call.args.dtype = kernel_dtype(score, op);
  call.args.kind = kind;
  call.args.rows = shape.rows;
  call.args.cols = shape.cols;
  call.score = score.contiguous();
  call.args.score = call.score.data_ptr();
  return call;
}

}  // namespace

RowSumCall prepare_dsm_sums(const at::Tensor& score, const std::optional<at::Tensor>& p,
                            double p_scale, const std::optional<at::Tensor>& q, double q_scale,
                            const std::optional<at::Tensor>& noise, int64_t seed, int64_t offset,
                            const std::optional<at::Tensor>& row_ids, const char* op) {
  RowSumCall call = prepare_row_sums(score, RowSumKind::Dsm, op);
  const int64_t rows = call.args.rows;
  call.args.p = checked_coef(p, p_scale, score, rows, "p", op);
  call.args.q = checked_coef(q, q_scale, score, rows, "q", op);
  if (noise.has_value()) {
    check_like(*noise, score, "noise", op, "score");
    call.noise = noise->contiguous();
    call.args.noise.tensor = call.noise.data_ptr();
  }
  call.args.noise.row_ids = checked_row_ids(row_ids, score, rows, op);
  call.args.noise.pos = stream_pos(seed, offset);
  return call;
}

RowSumCall prepare_sliced_sums(const at::Tensor& score, const at::Tensor& vjp, const at::Tensor& v,
                               bool variance_reduction, const char* op) {
  RowSumCall call = prepare_row_sums(score, variance_reduction ? RowSumKind::SlicedVr : RowSumKind::Sliced, op);
  check_like(vjp, score, "vjp", op, "score");
  check_like(v, score, "v", op, "score");
  call.vjp = vjp.contiguous();
  call.v = v.contiguous();
  call.args.vjp = call.vjp.data_ptr();
  call.args.v = call.v.data_ptr();
  return call;
}

MixtureCall prepare_mixture(const at::Tensor& x, const at::Tensor& centers,
                            const std::optional<at::Tensor>& bandwidth, double bandwidth_scale,
                            const std::optional<at::Tensor>& log_weights, bool with_score,
                            const char* op) {
  kernel_dtype(x, op);
  TORCH_CHECK(x.dim() == 2, op, ": x must have shape [M, d], got ", x.sizes());
  TORCH_CHECK(centers.dim() == 2 && centers.size(1) == x.size(1), op,
              ": centers must have shape [N, ", x.size(1), "] like x's rows, got ", centers.sizes());
  TORCH_CHECK(centers.size(0) >= 1, op, ": centers must hold at least one centre");
  TORCH_CHECK(x.size(1) >= 1, op, ": x's rows must have at least one coordinate");
  TORCH_CHECK(centers.scalar_type() == x.scalar_type(), op, ": centers must be ", x.scalar_type(),
              " like x, got ", centers.scalar_type());
  TORCH_CHECK(centers.device() == x.device(), op, ": centers must be on ", x.device(), " like x, got ",
              centers.device());
  const at::ScalarType dt = opmath_dtype(x);
  MixtureCall call;
  call.out_dtype = x.scalar_type();
  call.x = x.to(dt).contiguous();
  call.centers = centers.to(dt).contiguous();
  MixtureArgs& a = call.args;
  a.float64 = dt == at::kDouble;
  a.M = x.size(0);
  a.N = centers.size(0);
  a.d = x.size(1);
  a.x = call.x.data_ptr();
  a.centers = call.centers.data_ptr();
  if (log_weights.has_value()) {
    const at::Tensor& lw = *log_weights;
    TORCH_CHECK(lw.dim() == 1 && lw.size(0) == a.N, op, ": log_weights must have shape [", a.N,
                "] (one per centre), got ", lw.sizes());
    TORCH_CHECK(lw.device() == x.device(), op, ": log_weights must be on ", x.device(), ", got ",
                lw.device());
    TORCH_CHECK(at::isFloatingType(lw.scalar_type()), op, ": log_weights must be floating, got ",
                lw.scalar_type());
    call.log_weights = lw.to(dt).contiguous();
    a.log_weights = call.log_weights.data_ptr();
  }
  const Coef h = checked_coef(bandwidth, bandwidth_scale, x, a.M, "bandwidth", op);
  if (bandwidth.has_value()) call.bandwidth = *bandwidth;
  a.h_values = h.values;
  a.h_scale = h.scale;
  a.h_stride = h.stride;
  const at::TensorOptions opts = call.x.options();
  if (with_score) {
    call.score = at::empty({a.M, a.d}, opts);
    a.score = call.score.data_ptr();
  }
  call.lse = at::empty({a.M}, opts);
  a.lse = call.lse.data_ptr();
  return call;
}

at::Tensor MixtureCall::score_result() const {
  return score.defined() ? score.to(out_dtype) : at::empty({0}, lse.options().dtype(out_dtype));
}

MixtureBackCall prepare_mixture_backward(const at::Tensor& grad, const at::Tensor& x,
                                         const at::Tensor& centers,
                                         const std::optional<at::Tensor>& bandwidth,
                                         double bandwidth_scale,
                                         const std::optional<at::Tensor>& log_weights,
                                         const at::Tensor& score, const at::Tensor& lse,
                                         const char* op) {
  MixtureBackCall call;
  call.fwd = prepare_mixture(x, centers, bandwidth, bandwidth_scale, log_weights, false, op);
  MixtureArgs& a = call.fwd.args;
  check_like(grad, x, "grad", op);
  check_like(score, x, "score", op);
  TORCH_CHECK(lse.dim() == 1 && lse.size(0) == a.M, op, ": lse must have shape [", a.M, "], got ",
              lse.sizes());
  TORCH_CHECK(lse.device() == x.device(), op, ": lse must be on ", x.device(), ", got ", lse.device());
  const at::ScalarType dt = call.fwd.x.scalar_type();
  call.fwd.score = score.to(dt).contiguous();
  call.fwd.lse = lse.to(dt).contiguous();
  a.score = call.fwd.score.data_ptr();
  a.lse = call.fwd.lse.data_ptr();
  call.grad = grad.to(dt).contiguous();
  call.grad_x = at::empty({a.M, a.d}, call.fwd.x.options());
  call.args.fwd = a;
  call.args.grad = call.grad.data_ptr();
  call.args.grad_x = call.grad_x.data_ptr();
  return call;
}

at::Tensor RowSumCall::new_sums() const {
  return at::empty({args.rows}, score.options().dtype(opmath_dtype(score)));
}

at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor t = at::empty(sizes, options.memory_format(at::MemoryFormat::Contiguous));
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t{1} << 21;  // 2 MiB
  if (t.is_cpu() && t.nbytes() >= 2 * kHuge) {
    const uintptr_t begin = reinterpret_cast<uintptr_t>(t.data_ptr());
    const uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1);
    const uintptr_t last = (begin + t.nbytes()) & ~(kHuge - 1);
    if (last > first) {
      // Advice only: if the kernel refuses, the pages are just small ones.
      (void)madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
    }
  }
#endif
  return t;
}

UpdateOutputs new_update_outputs(const at::Tensor& x, bool return_mean) {
  return UpdateOutputs{empty_output(x.sizes(), x.options()),
                       return_mean ? empty_output(x.sizes(), x.options()) : at::empty({0}, x.options()),
                       return_mean};
}

UpdateCall prepare_noisy_update(const at::Tensor& x, const at::Tensor& score,
                                const std::optional<at::Tensor>& a, double a_scale,
                                const std::optional<at::Tensor>& b, double b_scale,
                                const std::optional<at::Tensor>& c, double c_scale,
                                const std::optional<at::Tensor>& noise, int64_t seed, int64_t offset,
                                const std::optional<at::Tensor>& row_ids, const at::Tensor& out,
                                const std::optional<at::Tensor>& mean_out, const char* op) {
  UpdateCall call = prepare_update(x, score, noise, seed, offset, row_ids, out, mean_out, op);
  const int64_t rows = call.args.rows;
  call.args.a = checked_coef(a, a_scale, x, rows, "a", op);
  call.args.b = checked_coef(b, b_scale, x, rows, "b", op);
  call.args.c = checked_coef(c, c_scale, x, rows, "c", op);
  return call;
}

UpdateCall prepare_masked_update(
    const at::Tensor& x, const at::Tensor& score, const at::Tensor& y, const at::Tensor& mask,
    const std::optional<at::Tensor>& a, double a_scale, const std::optional<at::Tensor>& b, double b_scale,
    const std::optional<at::Tensor>& c, double c_scale, const std::optional<at::Tensor>& mu, double mu_scale,
    const std::optional<at::Tensor>& sigma, double sigma_scale, const std::optional<at::Tensor>& noise,
    const std::optional<at::Tensor>& observed_noise, int64_t seed, int64_t offset, int64_t observed_offset,
    const std::optional<at::Tensor>& row_ids, const at::Tensor& out, const std::optional<at::Tensor>& mean_out,
    const char* op) {
  UpdateCall call = prepare_noisy_update(x, score, a, a_scale, b, b_scale, c, c_scale, noise, seed, offset, row_ids,
                                         out, mean_out, op);
  const int64_t rows = call.args.rows;
  check_like(y, x, "y", op);
  check_like(mask, x, "mask", op);
  if (observed_noise.has_value()) check_like(*observed_noise, x, "observed_noise", op);
  for (const at::Tensor* t : {&y, &mask}) {
    at::assert_no_overlap(out, *t);
    if (mean_out.has_value()) at::assert_no_overlap(*mean_out, *t);
  }
  if (observed_noise.has_value()) {
    at::assert_no_overlap(out, *observed_noise);
    if (mean_out.has_value()) at::assert_no_overlap(*mean_out, *observed_noise);
  }
  call.y = y.contiguous();
  call.mask = mask.contiguous();
  if (observed_noise.has_value()) call.observed_noise = observed_noise->contiguous();
  Replacement& r = call.args.replace;
  r.y = call.y.data_ptr();
  r.mask = call.mask.data_ptr();
  r.mu = checked_coef(mu, mu_scale, x, rows, "mu", op);
  r.sigma = checked_coef(sigma, sigma_scale, x, rows, "sigma", op);
  r.noise.tensor = call.observed_noise.defined() ? call.observed_noise.data_ptr() : nullptr;
  r.noise.row_ids = call.args.noise.row_ids;
  r.noise.pos = stream_pos(seed, observed_offset);
  return call;
}

void UpdateCall::finish() {
  if (out_target.defined()) out_target.copy_(out);
  if (mean_target.defined()) mean_target.copy_(mean);
}

}  // namespace scorekern
