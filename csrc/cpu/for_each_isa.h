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

// A target pragma around each pass (GCC's push_options/target, clang's
// attribute push): the pass's functions are compiled for that ISA.
#define SK_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define SK_TARGET_PUSH(isa) SK_PRAGMA(clang attribute push(__attribute__((target(isa))), apply_to = function))
#define SK_TARGET_POP SK_PRAGMA(clang attribute pop)
#else
#define SK_TARGET_PUSH(isa) SK_PRAGMA(GCC push_options) SK_PRAGMA(GCC target(isa))
#define SK_TARGET_POP SK_PRAGMA(GCC pop_options)
#endif

#define SK_ISA avx512
#define SK_ISA_AVX512 1
SK_TARGET_PUSH("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,bmi2")
#include SK_CPU_FILE
SK_TARGET_POP
#undef SK_ISA_AVX512
#undef SK_ISA

#define SK_ISA_AVX2 1
#define SK_ISA avx2
SK_TARGET_PUSH("avx2,fma,bmi2")
#include SK_CPU_FILE
SK_TARGET_POP
#undef SK_ISA
#undef SK_ISA_AVX2

#undef SK_TARGET_PUSH
#undef SK_TARGET_POP
#undef SK_PRAGMA

#endif  // x86-64

#define SK_ISA baseline
#include SK_CPU_FILE
#undef SK_ISA

#endif  // SK_ISA
