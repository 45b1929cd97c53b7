// cudasim: the CUDA execution model on the CPU, for g++ (test code; never in
// the wheel). With tests/cudasim/include first on the include path, the
// project's .cu files compile as they are (after rewrite.py has turned each
// launch `k<<<g, b, smem, s>>>(args)` into cudasim::launch and each
// `__shared__` declaration into a per-block allocation) and their launchers
// run on host memory.
//
// A block's threads are cooperative fibers (runtime.h): a thread runs until
// it reaches a barrier or a warp collective, then another runs. Blocks run one
// at a time, in a shuffled order; so do the threads between two barriers. What
// the programming model leaves undefined is made loud: divergent or
// mismatched collectives, a barrier not reached by every thread, bad launch
// configurations, shared memory read before it is written, shared-memory
// races between two barriers (in the race-checking build), uninitialised
// shared memory filled with NaN patterns, and WMMA fragments whose elements
// sit in a scrambled, seed-dependent order across the lanes.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <source_location>
#include <tuple>
#include <type_traits>
#include <utility>

// ---------------------------------------------------------------------------
// Qualifiers and built-in types

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __align__(n) alignas(n)
#define __launch_bounds__(...)  // checked at run time: rewrite.py passes them to kernel_entry
#define __constant__ static
#define __managed__

struct uint3 {
  unsigned int x, y, z;
};
struct int3 {
  int x, y, z;
};
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};

#include "cuda_api.h"  // cudaStream_t, cudaError_t, ..., and the runtime API the launchers call

constexpr int warpSize = 32;

namespace cudasim {
namespace detail {

// The running thread and its block (runtime.cpp sets them). Kernels read these through
// the built-in variables below.
struct ThreadState {
  uint3 thread_idx;
};
struct BlockState {
  uint3 block_idx;
  dim3 block_dim, grid_dim;
};
extern ThreadState* g_thread;
extern BlockState* g_block;

// Reports a fault of the simulated program and ends the launch (or the
// process, with CUDASIM_ABORT=1); the launch then throws.
[[noreturn]] void fail(const std::source_location& where, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));

// Barriers and warp collectives. `bits` carries a value of up to 8 bytes.
void syncthreads(const std::source_location& where);
int syncthreads_reduce(int kind, int predicate, const std::source_location& where);
void syncwarp(unsigned mask, const std::source_location& where);
enum ShuffleKind { kShflIdx, kShflUp, kShflDown, kShflXor };
uint64_t shuffle(ShuffleKind kind, unsigned mask, uint64_t bits, int size, int lane_arg, int width,
                 const std::source_location& where);
enum VoteKind { kVoteAll, kVoteAny, kVoteBallot };
unsigned vote(VoteKind kind, unsigned mask, int predicate, const std::source_location& where);
unsigned active_mask();

// Atomics: out of line (in the uninstrumented runtime), so that the race
// checker sees them as atomic accesses, not as a read and a write.
unsigned atomic_u32(int op, unsigned* p, unsigned v, unsigned compare);
unsigned long long atomic_u64(int op, unsigned long long* p, unsigned long long v, unsigned long long compare);
float atomic_add_f32(float* p, float v);
double atomic_add_f64(double* p, double v);
enum AtomicOp { kAtomicAdd, kAtomicSub, kAtomicExch, kAtomicMin, kAtomicMax, kAtomicCas, kAtomicAnd, kAtomicOr,
                kAtomicXor, kAtomicInc, kAtomicDec, kAtomicMinS, kAtomicMaxS };

// Shared memory. A `__shared__` declaration becomes a SharedSite (one per
// declaration and function instantiation) whose storage is allocated for
// each block, poisoned, and known to the race checker by name.
struct SharedSite {
  const char* name;
  const char* file;
  int line;
  uint64_t block_serial;  // the block the storage belongs to
  void* storage;
  template <typename T>
  T& get() {
    return *static_cast<T*>(allocate(sizeof(T), alignof(T) < 16 ? 16 : alignof(T)));
  }
  template <size_t kAlign, typename T>
  T& get_aligned() {
    return *static_cast<T*>(allocate(sizeof(T), kAlign < alignof(T) ? alignof(T) : kAlign));
  }
  void* allocate(size_t bytes, size_t align);
};
void* dynamic_shared(size_t align, const char* name, const char* file, int line);

// The start of every kernel: its name (for messages) and __launch_bounds__.
void kernel_entry(const char* pretty_name, long long max_threads);

// Launches: the kernel's arguments converted to its parameter types once,
// copied for every thread.
struct LaunchSpec {
  const void* kernel;
  dim3 grid, block;
  size_t dynamic_shared;
  const char* expression;
  const char* file;
  int line;
  std::function<void()> run_thread;  // one thread's call of the kernel
};
void launch(const LaunchSpec& spec);

template <typename T>
inline uint64_t to_bits(const T& v) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "a shuffled value is at most 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  return bits;
}
template <typename T>
inline T from_bits(uint64_t bits) {
  T v;
  std::memcpy(&v, &bits, sizeof(T));
  return v;
}

}  // namespace detail

struct LaunchConfig {
  dim3 grid, block;
  size_t shared;
  LaunchConfig(dim3 g, dim3 b, size_t s = 0, cudaStream_t = nullptr) : grid(g), block(b), shared(s) {}
};

template <typename... P, typename... A>
void launch(void (*kernel)(P...), const LaunchConfig& cfg, const char* expression, const char* file, int line,
            A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "a kernel launch with the wrong number of arguments");
  using Params = std::tuple<std::decay_t<P>...>;
  const Params params(std::forward<A>(args)...);
  detail::LaunchSpec spec{reinterpret_cast<const void*>(kernel), cfg.grid, cfg.block, cfg.shared, expression,
                          file, line, [&params, kernel] {
                            Params mine = params;  // each thread's own copy of the parameters
                            std::apply(kernel, mine);
                          }};
  detail::launch(spec);
}

}  // namespace cudasim

#define threadIdx (::cudasim::detail::g_thread->thread_idx)
#define blockIdx (::cudasim::detail::g_block->block_idx)
#define blockDim (::cudasim::detail::g_block->block_dim)
#define gridDim (::cudasim::detail::g_block->grid_dim)

// ---------------------------------------------------------------------------
// Barriers, shuffles, votes

inline void __syncthreads(std::source_location where = std::source_location::current()) {
  ::cudasim::detail::syncthreads(where);
}
inline int __syncthreads_count(int p, std::source_location where = std::source_location::current()) {
  return ::cudasim::detail::syncthreads_reduce(0, p, where);
}
inline int __syncthreads_and(int p, std::source_location where = std::source_location::current()) {
  return ::cudasim::detail::syncthreads_reduce(1, p, where);
}
inline int __syncthreads_or(int p, std::source_location where = std::source_location::current()) {
  return ::cudasim::detail::syncthreads_reduce(2, p, where);
}
inline void __syncwarp(unsigned mask = 0xffffffffu, std::source_location where = std::source_location::current()) {
  ::cudasim::detail::syncwarp(mask, where);
}

#define CUDASIM_SHUFFLE(NAME, KIND, ARG)                                                                   \
  template <typename T>                                                                                    \
  inline T NAME(unsigned mask, T var, ARG lane_arg, int width = 32,                                        \
                std::source_location where = std::source_location::current()) {                            \
    using namespace ::cudasim::detail;                                                                     \
    return from_bits<T>(shuffle(KIND, mask, to_bits(var), sizeof(T), static_cast<int>(lane_arg), width, where)); \
  }
CUDASIM_SHUFFLE(__shfl_sync, ::cudasim::detail::kShflIdx, int)
CUDASIM_SHUFFLE(__shfl_up_sync, ::cudasim::detail::kShflUp, unsigned)
CUDASIM_SHUFFLE(__shfl_down_sync, ::cudasim::detail::kShflDown, unsigned)
CUDASIM_SHUFFLE(__shfl_xor_sync, ::cudasim::detail::kShflXor, int)
#undef CUDASIM_SHUFFLE

inline int __all_sync(unsigned mask, int p, std::source_location where = std::source_location::current()) {
  return static_cast<int>(::cudasim::detail::vote(::cudasim::detail::kVoteAll, mask, p, where));
}
inline int __any_sync(unsigned mask, int p, std::source_location where = std::source_location::current()) {
  return static_cast<int>(::cudasim::detail::vote(::cudasim::detail::kVoteAny, mask, p, where));
}
inline unsigned __ballot_sync(unsigned mask, int p, std::source_location where = std::source_location::current()) {
  return ::cudasim::detail::vote(::cudasim::detail::kVoteBallot, mask, p, where);
}
inline unsigned __activemask() { return ::cudasim::detail::active_mask(); }

// Blocks run one after another, and a block's threads one at a time: every
// fence holds trivially (what it would order on a GPU is not simulated).
inline void __threadfence() {}
inline void __threadfence_block() {}
inline void __threadfence_system() {}

// ---------------------------------------------------------------------------
// Atomics

inline unsigned atomicAdd(unsigned* p, unsigned v) { return ::cudasim::detail::atomic_u32(0, p, v, 0); }
inline int atomicAdd(int* p, int v) {
  return static_cast<int>(::cudasim::detail::atomic_u32(0, reinterpret_cast<unsigned*>(p), static_cast<unsigned>(v), 0));
}
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  return ::cudasim::detail::atomic_u64(0, p, v, 0);
}
inline float atomicAdd(float* p, float v) { return ::cudasim::detail::atomic_add_f32(p, v); }
inline double atomicAdd(double* p, double v) { return ::cudasim::detail::atomic_add_f64(p, v); }
// atomicSub, atomicExch, atomicMin, ... on unsigned: one line each.
#define CUDASIM_ATOMIC_U32(FN, KIND) \
  inline unsigned FN(unsigned* p, unsigned v) { return ::cudasim::detail::atomic_u32(::cudasim::detail::KIND, p, v, 0); }
CUDASIM_ATOMIC_U32(atomicSub, kAtomicSub)
CUDASIM_ATOMIC_U32(atomicExch, kAtomicExch)
CUDASIM_ATOMIC_U32(atomicMin, kAtomicMin)
CUDASIM_ATOMIC_U32(atomicMax, kAtomicMax)
CUDASIM_ATOMIC_U32(atomicInc, kAtomicInc)
CUDASIM_ATOMIC_U32(atomicAnd, kAtomicAnd)
CUDASIM_ATOMIC_U32(atomicOr, kAtomicOr)
CUDASIM_ATOMIC_U32(atomicXor, kAtomicXor)
CUDASIM_ATOMIC_U32(atomicDec, kAtomicDec)
#undef CUDASIM_ATOMIC_U32
inline int atomicMin(int* p, int v) {
  return static_cast<int>(::cudasim::detail::atomic_u32(::cudasim::detail::kAtomicMinS, reinterpret_cast<unsigned*>(p),
                                                        static_cast<unsigned>(v), 0));
}
inline int atomicMax(int* p, int v) {
  return static_cast<int>(::cudasim::detail::atomic_u32(::cudasim::detail::kAtomicMaxS, reinterpret_cast<unsigned*>(p),
                                                        static_cast<unsigned>(v), 0));
}
inline unsigned atomicCAS(unsigned* p, unsigned compare, unsigned v) {
  return ::cudasim::detail::atomic_u32(::cudasim::detail::kAtomicCas, p, v, compare);
}
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long compare, unsigned long long v) {
  return ::cudasim::detail::atomic_u64(::cudasim::detail::kAtomicCas, p, v, compare);
}

// ---------------------------------------------------------------------------
// Intrinsics. Bit casts and integer products are exact; the fast math
// intrinsics are modelled (e.g. __expf as 2^(x·log2 e) with the product
// rounded, as ex2.approx takes it), not bit-exact with the hardware.

inline unsigned int __float_as_uint(float f) { return ::cudasim::detail::from_bits<unsigned int>(::cudasim::detail::to_bits(f)); }
inline int __float_as_int(float f) { return ::cudasim::detail::from_bits<int>(::cudasim::detail::to_bits(f)); }
inline float __uint_as_float(unsigned int u) { return ::cudasim::detail::from_bits<float>(::cudasim::detail::to_bits(u)); }
inline float __int_as_float(int u) { return ::cudasim::detail::from_bits<float>(::cudasim::detail::to_bits(u)); }
inline long long __double_as_longlong(double d) { return ::cudasim::detail::from_bits<long long>(::cudasim::detail::to_bits(d)); }
inline double __longlong_as_double(long long v) { return ::cudasim::detail::from_bits<double>(::cudasim::detail::to_bits(v)); }
inline unsigned int __umulhi(unsigned int a, unsigned int b) {
  return static_cast<unsigned int>((static_cast<uint64_t>(a) * b) >> 32);
}
inline int __mulhi(int a, int b) { return static_cast<int>((static_cast<int64_t>(a) * b) >> 32); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  return static_cast<unsigned long long>((static_cast<unsigned __int128>(a) * b) >> 64);
}
inline int __popc(unsigned int v) { return __builtin_popcount(v); }
inline int __clz(int v) { return v == 0 ? 32 : __builtin_clz(static_cast<unsigned>(v)); }
inline int __ffs(int v) { return __builtin_ffs(v); }
inline unsigned int __brev(unsigned int v) {
  unsigned int r = 0;
  for (int i = 0; i < 32; ++i) r |= ((v >> i) & 1u) << (31 - i);
  return r;
}
inline float __expf(float x) {
  return exp2f(x * 1.44269504088896341f);  // the product rounded to float, as ex2.approx takes it
}
inline float __exp10f(float x) { return exp2f(x * 3.32192809488736235f); }
inline float __logf(float x) { return log2f(x) * 0.693147180559945309f; }
inline float __log2f(float x) { return log2f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline void __sincosf(float x, float* s, float* c) {
  *s = sinf(x);
  *c = cosf(x);
}
inline float __powf(float x, float y) { return exp2f(y * log2f(x)); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }

// Cache-hinted loads and stores: plain accesses here.
template <typename T>
inline T __ldg(const T* p) { return *p; }
template <typename T>
inline T __ldcg(const T* p) { return *p; }
template <typename T>
inline T __ldca(const T* p) { return *p; }
template <typename T>
inline T __ldcs(const T* p) { return *p; }
template <typename T>
inline T __ldlu(const T* p) { return *p; }
template <typename T>
inline void __stcg(T* p, T v) { *p = v; }
template <typename T>
inline void __stcs(T* p, T v) { *p = v; }
template <typename T>
inline void __stwt(T* p, T v) { *p = v; }
