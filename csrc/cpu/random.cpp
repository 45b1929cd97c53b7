// CPU implementations of the random-stream ops: the raw Philox block
// function, and normal and Rademacher noise laid out as DESIGN §2 says.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "../arguments.h"
#include "kernels.h"

namespace scorekern {
namespace {

// Tiles per parallel task: about 16K elements, so that small tensors stay on
// one thread.
constexpr int64_t kGrainTiles = 16;

at::Tensor philox4x32_cpu(const at::Tensor& counter, int64_t seed) {
  TORCH_CHECK(counter.scalar_type() == at::kLong, "philox4x32: counter must be int64, got ",
              counter.scalar_type());
  TORCH_CHECK(counter.dim() >= 1 && counter.size(-1) == 4,
              "philox4x32: counter must have shape [..., 4], got ", counter.sizes());
  const at::Tensor c = counter.contiguous();
  at::Tensor out = at::empty(c.sizes(), c.options());
  const int64_t* in = c.data_ptr<int64_t>();
  int64_t* o = out.data_ptr<int64_t>();
  const int64_t n = c.numel() / 4;
  for (int64_t i = 0; i < 4 * n; ++i) {
    TORCH_CHECK(in[i] >= 0 && in[i] <= int64_t{0xffffffff},
                "philox4x32: counter words must lie in [0, 2^32), got ", in[i]);
  }
  const StreamPos key = stream_pos(seed, 0);
  at::parallel_for(0, n, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t* w = in + 4 * i;
      const Words4 r = philox4x32_10(static_cast<uint32_t>(w[0]), static_cast<uint32_t>(w[1]),
                                     static_cast<uint32_t>(w[2]), static_cast<uint32_t>(w[3]),
                                     key.key0, key.key1);
      o[4 * i] = r.w0;
      o[4 * i + 1] = r.w1;
      o[4 * i + 2] = r.w2;
      o[4 * i + 3] = r.w3;
    }
  });
  return out;
}

at::Tensor noise_cpu(const at::Tensor& like, int64_t seed, int64_t offset,
                     const std::optional<at::Tensor>& row_ids, NoiseKind kind, const char* op) {
  const RowShape shape = row_shape(like, op);
  const DType dtype = kernel_dtype(like, op);
  at::Tensor out = empty_output(like.sizes(), like.options());
  const NoiseSource src{nullptr, checked_row_ids(row_ids, like, shape.rows, op),
                        stream_pos(seed, offset)};
  const cpu::Plan plan = cpu::make_plan(shape.rows, shape.cols);
  const cpu::Kernels& k = cpu::kernels();
  void* data = out.data_ptr();
  at::parallel_for(0, plan.tiles, kGrainTiles, [&](int64_t begin, int64_t end) {
    k.fill_noise(dtype, plan, data, kind, src, begin, end);
  });
  return out;
}

at::Tensor randn_cpu(const at::Tensor& like, int64_t seed, int64_t offset,
                     const std::optional<at::Tensor>& row_ids) {
  return noise_cpu(like, seed, offset, row_ids, NoiseKind::Normal, "randn");
}

at::Tensor rademacher_cpu(const at::Tensor& like, int64_t seed, int64_t offset,
                          const std::optional<at::Tensor>& row_ids) {
  return noise_cpu(like, seed, offset, row_ids, NoiseKind::Rademacher, "rademacher");
}

}  // namespace

TORCH_LIBRARY_IMPL(scorekern, CPU, m) {
  m.impl("philox4x32", &philox4x32_cpu);
  m.impl("randn", &randn_cpu);
  m.impl("rademacher", &rademacher_cpu);
}

}  // namespace scorekern
