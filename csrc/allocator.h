// Output tensors of the ops.
#pragma once

#include <ATen/core/Tensor.h>

namespace scorekern {

// A new contiguous tensor for an op's output (symbolic sizes for the meta kernels). Large CPU outputs ask the
// kernel for transparent huge pages (where THP is in "madvise" mode): the
// first touch of a fresh 64 MB buffer otherwise costs more page faults than
// the op itself costs arithmetic. This is what PyTorch's
// THP_MEM_ALLOC_ENABLE=1 does for every allocation.
at::Tensor empty_output(c10::SymIntArrayRef sizes, const at::TensorOptions& options);

}  // namespace scorekern
