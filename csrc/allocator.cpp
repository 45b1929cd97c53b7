#include "allocator.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <ATen/ops/empty.h>

namespace scorekern {

at::Tensor empty_output(c10::SymIntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor t = at::empty_symint(sizes, options.memory_format(at::MemoryFormat::Contiguous));
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t{1} << 21;  // 2 MiB
  if (t.is_cpu() && !t.is_meta() && t.nbytes() >= 2 * kHuge) {
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

}  // namespace scorekern
