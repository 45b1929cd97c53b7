// The CPU kernels built for AVX2 (x86-64-v3). Compiled on x86-64 only; dispatch.cpp
// uses them when the running CPU has the instructions.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,bmi2"))), apply_to = function)
#else
#pragma GCC target("avx2,fma,bmi2")
#endif

#define SK_CPU_NS avx2
#define SK_CPU_AVX2 1
#include "kernels_impl.h"
SK_DEFINE_CPU_KERNELS("avx2")

#if defined(__clang__)
#pragma clang attribute pop
#endif

#endif
