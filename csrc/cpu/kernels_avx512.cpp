// The CPU kernels built for AVX-512 (x86-64-v4). Compiled on x86-64 only; dispatch.cpp
// uses them when the running CPU has the instructions.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,bmi2"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,bmi2")
#endif

#define SK_CPU_NS avx512
#define SK_CPU_AVX512 1
#include "kernels_impl.h"
SK_DEFINE_CPU_KERNELS("avx512")

#if defined(__clang__)
#pragma clang attribute pop
#endif

#endif
