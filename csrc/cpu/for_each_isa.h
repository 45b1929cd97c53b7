// Compiles a CPU kernel file's loops once per instruction set, in the manner
// of Google Highway's foreach_target.h. The kernel file defines SK_CPU_FILE
// (its own path, as an include name), includes its headers, then this file;
// this file includes SK_CPU_FILE again once per instruction set, inside a
// target pragma and with SK_ISA naming the namespace (avx512, avx2,
// baseline) and SK_ISA_AVX512 / SK_ISA_AVX2 set for its SIMD code. The
// kernel file keeps its loops in `#if defined(SK_ISA)` (namespace
// scorekern::cpu::SK_ISA) and its entry point, which calls them through
// SK_CPU_DISPATCH (isa.h), in the `#else` part, compiled once.
//
// The headers the loops need must be included before this file (they are
// then compiled once, for the baseline), except cpu/loops.h, which is per
// instruction set and is included inside the loops.
#ifndef SK_ISA

#ifndef SK_CPU_FILE
#error "define SK_CPU_FILE (this kernel file's include name) before including cpu/for_each_isa.h"
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#define SK_ISA avx512
#define SK_ISA_AVX512 1
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,bmi2"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,bmi2")
#endif
#include SK_CPU_FILE
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#undef SK_ISA_AVX512
#undef SK_ISA

#define SK_ISA avx2
#define SK_ISA_AVX2 1
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,bmi2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi2")
#endif
#include SK_CPU_FILE
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#undef SK_ISA_AVX2
#undef SK_ISA

#endif  // x86-64

#define SK_ISA baseline
#include SK_CPU_FILE
#undef SK_ISA

#endif  // SK_ISA
