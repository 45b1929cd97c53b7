// philox4x32: the raw Philox4x32-10 block function (philox.h) over n
// counters of four 32-bit words, held in int64.
#pragma once

#include <cstdint>

#include "config.h"

namespace scorekern {

namespace cpu { void philox4x32(const int64_t* counters, int64_t n, uint64_t seed, int64_t* out); }
#if SK_CUDA_LAUNCHERS
namespace cuda {
cudaError_t launch_philox4x32(const int64_t* counters, int64_t n, uint64_t seed, int64_t* out, cudaStream_t stream);
}
#endif

}  // namespace scorekern
