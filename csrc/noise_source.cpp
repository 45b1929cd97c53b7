#include "noise_source.h"

#include <c10/util/Exception.h>

#include "rows.h"

namespace scorekern {

StreamPos stream_pos(int64_t seed, int64_t offset) {
  return make_stream_pos(static_cast<uint64_t>(seed), static_cast<uint64_t>(offset));
}

const int64_t* checked_row_ids(const std::optional<at::Tensor>& row_ids, const at::Tensor& x,
                               const c10::SymInt& rows, const char* op, bool meta) {
  if (!row_ids.has_value()) {
    TORCH_CHECK(rows <= (int64_t{1} << 32), op,
                ": more than 2^32 rows need explicit row_ids (the row id is a 32-bit word)");
    return nullptr;
  }
  const at::Tensor& ids = *row_ids;
  TORCH_CHECK(ids.scalar_type() == at::kLong, op, ": row_ids must be an int64 tensor, got ", ids.scalar_type());
  TORCH_CHECK(ids.dim() == 1 && ids.sym_size(0) == rows, op, ": row_ids must have shape [", rows,
              "] (one id per row), got ", ids.sym_sizes());
  TORCH_CHECK(ids.device() == x.device(), op, ": row_ids must be on ", x.device(), ", got ", ids.device());
  TORCH_CHECK(ids.is_contiguous(), op, ": row_ids must be contiguous");
  if (meta) return nullptr;
  const int64_t* p = ids.data_ptr<int64_t>();
  if (ids.is_cpu()) {
    for (int64_t i = 0, n = ids.numel(); i < n; ++i) {
      TORCH_CHECK(p[i] >= 0 && p[i] <= int64_t{0xffffffff}, op, ": row_ids must lie in [0, 2^32), got ", p[i],
                  " at position ", i);
    }
  }
  return p;
}

NoiseInput checked_noise(const std::optional<at::Tensor>& noise, int64_t seed, int64_t offset,
                         const std::optional<at::Tensor>& row_ids, const at::Tensor& like, const c10::SymInt& rows,
                         const char* name, const char* like_name, const char* op, bool meta) {
  NoiseInput in;
  if (noise.has_value()) {
    check_like(*noise, like, name, op, like_name);
    in.tensor = noise->contiguous();
    in.source.tensor = meta ? in.tensor.unsafeGetTensorImpl() : in.tensor.data_ptr();  // meta: a non-null stand-in
  }
  in.source.row_ids = checked_row_ids(row_ids, like, rows, op, meta);
  in.source.pos = stream_pos(seed, offset);
  return in;
}

}  // namespace scorekern
