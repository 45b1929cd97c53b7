// The CPU kernel of philox4x32: the block function of philox.h, counter by
// counter (a test and reference op; the noise kernels run Philox on lane packs).
#include <ATen/Parallel.h>

#include "../scorekern/philox.h"
#include "../scorekern/philox4x32.h"

namespace scorekern {
namespace cpu {

void philox4x32(const int64_t* counters, int64_t n, uint64_t seed, int64_t* out) {
  const StreamPos key = make_stream_pos(seed, 0);
  at::parallel_for(0, n, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t* w = counters + 4 * i;
      const Words4 r = philox4x32_10(static_cast<uint32_t>(w[0]), static_cast<uint32_t>(w[1]),
                                     static_cast<uint32_t>(w[2]), static_cast<uint32_t>(w[3]), key.key0, key.key1);
      out[4 * i] = r.w0;
      out[4 * i + 1] = r.w1;
      out[4 * i + 2] = r.w2;
      out[4 * i + 3] = r.w3;
    }
  });
}

}  // namespace cpu
}  // namespace scorekern
