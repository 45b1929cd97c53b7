// Portability macros for the header-only math shared by the CPU and CUDA
// kernels. No torch header may be included from csrc/scorekern/: nvcc must
// compile these on a machine whose PyTorch has no CUDA (DESIGN §3).
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define SK_HD __host__ __device__
#define SK_INLINE __forceinline__
#else
#define SK_HD
#define SK_INLINE inline __attribute__((always_inline))
#endif

// The CUDA launchers are declared in each op's header where CUDA is part of
// the build (nvcc, and the glue of a CUDA build).
#if defined(__CUDACC__) || defined(SCOREKERN_WITH_CUDA)
#define SK_CUDA_LAUNCHERS 1
#include <cuda_runtime_api.h>
#else
#define SK_CUDA_LAUNCHERS 0
#endif

namespace scorekern {

SK_HD SK_INLINE uint32_t float_bits(float v) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint32_t>(__float_as_uint(v));
#else
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return u;
#endif
}

SK_HD SK_INLINE float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float v;
  std::memcpy(&v, &u, sizeof v);
  return v;
#endif
}

}  // namespace scorekern
