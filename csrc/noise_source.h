// Where an op's noise comes from (DESIGN §2): a noise tensor like the data,
// or the stream at (seed, offset) with optional per-row ids. The checks and
// the kernels' NoiseSource, shared by every op that draws noise.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

#include "scorekern/args.h"

namespace scorekern {

// The stream position of (seed, offset), both 64-bit words as int64.
StreamPos stream_pos(int64_t seed, int64_t offset);

// Checks row ids: int64, shape [rows], on x's device, contiguous; on the CPU
// (not for meta calls, which have no data) also that each lies in [0, 2^32). Returns the data
// pointer, or null (no ids; then at most 2^32 rows).
const int64_t* checked_row_ids(const std::optional<at::Tensor>& row_ids, const at::Tensor& x,
                               const c10::SymInt& rows, const char* op, bool meta);

// A noise source for data like `like` ([rows] rows): the stream position and
// row ids; the noise tensor (checked like `like`, made contiguous) when given.
// `meta`: a fake kernel's call, checks only (no data pointers).
struct NoiseInput {
  NoiseSource source{};
  at::Tensor tensor;  // contiguous, or undefined
};
NoiseInput checked_noise(const std::optional<at::Tensor>& noise, int64_t seed, int64_t offset,
                         const std::optional<at::Tensor>& row_ids, const at::Tensor& like, const c10::SymInt& rows,
                         const char* name, const char* like_name, const char* op, bool meta);

}  // namespace scorekern
