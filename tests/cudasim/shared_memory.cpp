// cudasim's shared memory (see runtime.h): one region per block for its
// variables, bump-allocated with gaps between them (an access to a gap is out
// of bounds) and poisoned; with AddressSanitizer, one exact-size allocation
// per variable instead. In the race-checking build, a shadow byte per byte of
// the region feeds the race checker, which the compiler's -fsanitize=thread
// access hooks (defined at the end, in place of ThreadSanitizer's runtime)
// call for every access of instrumented code.
//
// Ordering model of the race checker: two accesses to the same byte of
// shared memory by different threads, at least one a write, race unless a
// __syncthreads lies between them, or they come from lanes of one warp with a
// __syncwarp of the whole warp between them (what the CUDA memory model
// orders; shuffles and WMMA collectives order nothing). Reads of shared
// memory that no thread of the block has written are reported as well.
#include <dlfcn.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "runtime.h"

namespace cudasim {
namespace detail {

// ---------------------------------------------------------------------------
// Shared memory: one region for the block's variables, bump-allocated with
// gaps between them (an access to a gap is out of bounds); with
// AddressSanitizer, one exact-size allocation per variable instead.

struct SharedVar {
  const char* name;
  const char* file;
  int line;
  char* begin;
  size_t size;
  bool dynamic;
};
std::vector<SharedVar> g_shared_vars;
size_t g_static_shared_bytes = 0;
char* g_dynamic_shared = nullptr;
size_t g_dynamic_shared_bytes = 0;
constexpr unsigned char kPoison = 0xff;  // NaN in every float width, -1 in every integer

#if !defined(CUDASIM_ASAN)
constexpr size_t kRegionBytes = 384 << 10;
constexpr size_t kGap = 64;
char* g_region = nullptr;
size_t g_region_used = 0;
#endif

#if defined(CUDASIM_RACECHECK)
uintptr_t g_region_lo = 0;  // the hooks' range check: [g_region_lo, + kRegionBytes)
struct Shadow {
  uint16_t var;  // index + 1 in g_shared_vars; 0: no variable here
  uint8_t written;
  uint8_t r_many_warps;
  int16_t w_tid, r_warp, r_tid;
  uint32_t w_epoch, w_gen;
  uint32_t r_epoch, r_gen, r_lanes;
  uintptr_t w_pc, r_pc;
};
std::vector<Shadow> g_shadow;
#endif

void reset_shared(size_t dynamic_bytes) {
  g_shared_vars.clear();
  g_static_shared_bytes = 0;
  g_dynamic_shared = nullptr;
  g_dynamic_shared_bytes = dynamic_bytes;
#if defined(CUDASIM_ASAN)
  // freed in free_shared
#else
  if (!g_region) {
    void* p = mmap(nullptr, kRegionBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("cudasim: cannot map shared memory");
    g_region = static_cast<char*>(p);
#if defined(CUDASIM_RACECHECK)
    g_region_lo = reinterpret_cast<uintptr_t>(g_region);
    g_shadow.resize(kRegionBytes);
#endif
  }
#if defined(CUDASIM_RACECHECK)
  std::memset(g_shadow.data(), 0, sizeof(Shadow) * std::min(kRegionBytes, g_region_used));
#endif
  g_region_used = 0;
#endif
}

#if defined(CUDASIM_ASAN)
std::vector<void*> g_shared_allocations;
void free_shared() {
  for (void* p : g_shared_allocations) std::free(p);
  g_shared_allocations.clear();
}
#else
void free_shared() {}
#endif

char* allocate_shared(size_t bytes, size_t align, const char* name, const char* file, int line, bool dynamic) {
  if (align < 16) align = 16;
  char* p = nullptr;
#if defined(CUDASIM_ASAN)
  void* q = nullptr;
  if (posix_memalign(&q, align, bytes ? bytes : 1) != 0) fault("out of host memory for shared memory");
  g_shared_allocations.push_back(q);
  p = static_cast<char*>(q);
#else
  size_t at = (g_region_used + kGap + align - 1) / align * align;
  if (at + bytes + kGap > kRegionBytes) fault("the block's shared memory outgrows the simulator's region");
  p = g_region + at;
  g_region_used = at + bytes;
#endif
  std::memset(p, kPoison, bytes);
  g_shared_vars.push_back(SharedVar{name, file, line, p, bytes, dynamic});
#if defined(CUDASIM_RACECHECK)
  const uint16_t id = static_cast<uint16_t>(g_shared_vars.size());
  for (size_t i = 0; i < bytes; ++i) g_shadow[(p - g_region) + i].var = id;
#endif
  return p;
}

std::string var_name(const SharedVar& v) {
  const char* f = std::strrchr(v.file, '/');
  return std::string(v.dynamic ? "extern __shared__ " : "__shared__ ") + v.name + " (" + (f ? f + 1 : v.file) + ":" +
         std::to_string(v.line) + ")";
}

// ---------------------------------------------------------------------------
// The race checker

#if defined(CUDASIM_RACECHECK)
std::string code_site(uintptr_t pc) {
  if (!pc) return "?";
  Dl_info info;
  if (!dladdr(reinterpret_cast<void*>(pc), &info) || !info.dli_fname) return "?";
  char cmd[1024];
  std::snprintf(cmd, sizeof cmd, "addr2line -C -f -i -e '%s' 0x%lx 2>/dev/null", info.dli_fname,
                static_cast<unsigned long>(pc - reinterpret_cast<uintptr_t>(info.dli_fbase) - 1));
  FILE* p = popen(cmd, "r");
  if (!p) return "?";
  char fn[512] = "", loc[512] = "";
  if (!std::fgets(fn, sizeof fn, p) || !std::fgets(loc, sizeof loc, p)) {
    pclose(p);
    return "?";
  }
  pclose(p);
  fn[std::strcspn(fn, "\n")] = 0;
  loc[std::strcspn(loc, "\n (")] = 0;
  const char* file = std::strrchr(loc, '/');
  std::string f = fn;
  if (f.size() > 80) f = f.substr(0, 77) + "...";
  return std::string(file ? file + 1 : loc) + " in " + f;
}

[[noreturn]] void report(const char* what, const Shadow& s, size_t byte, int other_tid, bool other_wrote,
                         uintptr_t other_pc, uintptr_t pc, bool write) {
  const SharedVar& v = g_shared_vars[s.var - 1];
  char off[64];
  std::snprintf(off, sizeof off, " at byte %zu", static_cast<size_t>(g_region + byte - v.begin));
  std::string m = std::string(what) + " on " + var_name(v) + off + ":\n    " + thread_name(*g_blk, g_cur->tid) +
                  (write ? " writes" : " reads") + " it at " + code_site(pc);
  if (other_tid >= 0) {
    m += ",\n    " + thread_name(*g_blk, other_tid) + (other_wrote ? " wrote" : " read") + " it at " +
         code_site(other_pc) + ", with no barrier between them";
  }
  fault(m);
}

inline bool ordered_in_warp(int tid, uint32_t gen, const Fiber* f, const Block& b) {
  return tid / 32 == f->warp && gen < b.warp_gen[f->warp];
}

void access_shared(uintptr_t addr, size_t n, bool write, uintptr_t pc) {
  Fiber* f = g_cur;
  if (!f || !g_blk) return;
  const Block& b = *g_blk;
  const uint32_t epoch = b.epoch, gen = b.warp_gen[f->warp];
  const size_t first = addr - g_region_lo;
  for (size_t byte = first; byte < first + n; ++byte) {
    if (byte >= kRegionBytes) fault("a shared-memory access past the simulator's region");
    Shadow& s = g_shadow[byte];
    if (s.var == 0) {
      // Between or past the block's variables: name the nearest one below.
      const SharedVar* near = nullptr;
      for (const SharedVar& v : g_shared_vars) {
        if (v.begin <= g_region + byte && (!near || v.begin > near->begin)) near = &v;
      }
      char buf[256];
      std::snprintf(buf, sizeof buf, "out-of-bounds shared-memory %s of %zu bytes at %s+%zu",
                    write ? "write" : "read", n, near ? near->name : "(start)",
                    near ? static_cast<size_t>(g_region + byte - near->begin) : byte);
      fault(std::string(buf) + ", by " + code_site(pc));
    }
    if (s.w_epoch == epoch && s.w_tid != f->tid && !ordered_in_warp(s.w_tid, s.w_gen, f, b)) {
      report(write ? "shared-memory race (write after write)" : "shared-memory race (read after write)", s, byte,
             s.w_tid, true, s.w_pc, pc, write);
    }
    if (write) {
      if (s.r_epoch == epoch) {
        const bool other_warp = s.r_many_warps || s.r_warp != f->warp;
        const bool other_lane = s.r_gen == gen && (s.r_lanes & ~(1u << f->lane)) != 0;
        if (other_warp || other_lane) {
          report("shared-memory race (write after read)", s, byte, s.r_tid == f->tid ? -1 : s.r_tid, false,
                 s.r_pc, pc, true);
        }
      }
      s.written = 1;
      s.w_tid = static_cast<int16_t>(f->tid);
      s.w_epoch = epoch;
      s.w_gen = gen;
      s.w_pc = pc;
    } else {
      if (!s.written) {
        const SharedVar& v = g_shared_vars[s.var - 1];
        char off[64];
        std::snprintf(off, sizeof off, " at byte %zu", static_cast<size_t>(g_region + byte - v.begin));
        fault("read of uninitialised shared memory (no thread of the block wrote it): " + var_name(v) + off +
              ", by " + code_site(pc));
      }
      if (s.r_epoch != epoch) {
        s.r_epoch = epoch;
        s.r_many_warps = 0;
        s.r_warp = static_cast<int16_t>(f->warp);
        s.r_gen = gen;
        s.r_lanes = 1u << f->lane;
        s.r_tid = static_cast<int16_t>(f->tid);
        s.r_pc = pc;
      } else if (s.r_warp != f->warp) {
        s.r_many_warps = 1;
        s.r_tid = static_cast<int16_t>(f->tid);
        s.r_pc = pc;
      } else if (gen > s.r_gen) {
        s.r_gen = gen;
        s.r_lanes = 1u << f->lane;
        s.r_tid = static_cast<int16_t>(f->tid);
        s.r_pc = pc;
      } else {
        s.r_lanes |= 1u << f->lane;
        if (s.r_tid != f->tid) {
          s.r_tid = static_cast<int16_t>(f->tid);
          s.r_pc = pc;
        }
      }
    }
  }
}

inline bool in_region(uintptr_t a) { return g_region_lo && a - g_region_lo < kRegionBytes; }
#endif

void* SharedSite::allocate(size_t bytes, size_t align) {
  if (!g_cur) fault(std::string("__shared__ ") + name + " used outside a kernel");
  if (block_serial != g_blk->serial) {
    g_static_shared_bytes += bytes;
    if (g_static_shared_bytes > kSharedDefault) {
      fault("static __shared__ variables of more than 48 KiB in one block (" + std::to_string(g_static_shared_bytes) +
            " bytes with " + name + ")");
    }
    if (g_static_shared_bytes + g_dynamic_shared_bytes > shared_optin_bytes()) {
      fault("static and dynamic shared memory exceed the device's " + std::to_string(shared_optin_bytes()) +
            " bytes per block");
    }
    storage = allocate_shared(bytes, align, name, file, line, false);
    block_serial = g_blk->serial;
  }
  return storage;
}

void* dynamic_shared(size_t align, const char* name, const char* file, int line) {
  if (!g_cur) fault("extern __shared__ memory used outside a kernel");
  if (!g_dynamic_shared) {
    g_dynamic_shared = allocate_shared(g_dynamic_shared_bytes, std::max<size_t>(align, 128), name, file, line, true);
  }
  return g_dynamic_shared;
}

}  // namespace detail
}  // namespace cudasim

// ---------------------------------------------------------------------------
// The compiler's -fsanitize=thread hooks (race-checking build): shared-memory
// accesses go to the checker, everything else returns at once.

#if defined(CUDASIM_RACECHECK)
using cudasim::detail::access_shared;
using cudasim::detail::in_region;

#define CUDASIM_HOOK(NAME, N, WRITE)                                                                        \
  extern "C" void NAME(void* p) {                                                                          \
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);                                                    \
    if (in_region(a)) access_shared(a, N, WRITE, reinterpret_cast<uintptr_t>(__builtin_return_address(0))); \
  }
CUDASIM_HOOK(__tsan_read1, 1, false)
CUDASIM_HOOK(__tsan_read2, 2, false)
CUDASIM_HOOK(__tsan_read4, 4, false)
CUDASIM_HOOK(__tsan_read8, 8, false)
CUDASIM_HOOK(__tsan_read16, 16, false)
CUDASIM_HOOK(__tsan_write1, 1, true)
CUDASIM_HOOK(__tsan_write2, 2, true)
CUDASIM_HOOK(__tsan_write4, 4, true)
CUDASIM_HOOK(__tsan_write8, 8, true)
CUDASIM_HOOK(__tsan_write16, 16, true)
CUDASIM_HOOK(__tsan_unaligned_read2, 2, false)
CUDASIM_HOOK(__tsan_unaligned_read4, 4, false)
CUDASIM_HOOK(__tsan_unaligned_read8, 8, false)
CUDASIM_HOOK(__tsan_unaligned_read16, 16, false)
CUDASIM_HOOK(__tsan_unaligned_write2, 2, true)
CUDASIM_HOOK(__tsan_unaligned_write4, 4, true)
CUDASIM_HOOK(__tsan_unaligned_write8, 8, true)
CUDASIM_HOOK(__tsan_unaligned_write16, 16, true)
CUDASIM_HOOK(__tsan_volatile_read1, 1, false)
CUDASIM_HOOK(__tsan_volatile_read2, 2, false)
CUDASIM_HOOK(__tsan_volatile_read4, 4, false)
CUDASIM_HOOK(__tsan_volatile_read8, 8, false)
CUDASIM_HOOK(__tsan_volatile_write1, 1, true)
CUDASIM_HOOK(__tsan_volatile_write2, 2, true)
CUDASIM_HOOK(__tsan_volatile_write4, 4, true)
CUDASIM_HOOK(__tsan_volatile_write8, 8, true)
#undef CUDASIM_HOOK

extern "C" void __tsan_read_range(void* p, unsigned long n) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (in_region(a)) access_shared(a, n, false, reinterpret_cast<uintptr_t>(__builtin_return_address(0)));
}
extern "C" void __tsan_write_range(void* p, unsigned long n) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (in_region(a)) access_shared(a, n, true, reinterpret_cast<uintptr_t>(__builtin_return_address(0)));
}
extern "C" void __tsan_init() {}
extern "C" void __tsan_func_entry(void*) {}
extern "C" void __tsan_func_exit() {}
extern "C" void __tsan_vptr_read(void**) {}
extern "C" void __tsan_vptr_update(void**, void*) {}

// Atomic builtins in instrumented code (none in the kernels so far; the
// library's own headers may use some): performed as they are.
#define CUDASIM_FETCH(BITS, T, OP)                                                                        \
  extern "C" T __tsan_atomic##BITS##_fetch_##OP(volatile T* a, T v, int) {                                \
    return __atomic_fetch_##OP(a, v, __ATOMIC_SEQ_CST);                                                   \
  }
#define CUDASIM_CAS(BITS, T, NAME, WEAK)                                                                  \
  extern "C" int __tsan_atomic##BITS##_compare_exchange_##NAME(volatile T* a, T* c, T v, int, int) {      \
    return __atomic_compare_exchange_n(a, c, v, WEAK, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                \
  }
#define CUDASIM_ATOMICS(BITS, T)                                                                          \
  extern "C" T __tsan_atomic##BITS##_load(const volatile T* a, int) { return __atomic_load_n(a, __ATOMIC_SEQ_CST); } \
  extern "C" void __tsan_atomic##BITS##_store(volatile T* a, T v, int) { __atomic_store_n(a, v, __ATOMIC_SEQ_CST); } \
  extern "C" T __tsan_atomic##BITS##_exchange(volatile T* a, T v, int) {                                  \
    return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST);                                                   \
  }                                                                                                       \
  CUDASIM_FETCH(BITS, T, add) CUDASIM_FETCH(BITS, T, sub) CUDASIM_FETCH(BITS, T, and)                     \
  CUDASIM_FETCH(BITS, T, or) CUDASIM_FETCH(BITS, T, xor)                                                  \
  CUDASIM_CAS(BITS, T, strong, false) CUDASIM_CAS(BITS, T, weak, true)                                    \
  extern "C" T __tsan_atomic##BITS##_compare_exchange_val(volatile T* a, T c, T v, int, int) {            \
    __atomic_compare_exchange_n(a, &c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                      \
    return c;                                                                                             \
  }
CUDASIM_ATOMICS(8, unsigned char)
CUDASIM_ATOMICS(16, unsigned short)
CUDASIM_ATOMICS(32, unsigned int)
CUDASIM_ATOMICS(64, unsigned long long)
#undef CUDASIM_ATOMICS
#undef CUDASIM_CAS
#undef CUDASIM_FETCH
extern "C" void __tsan_atomic_thread_fence(int) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
extern "C" void __tsan_atomic_signal_fence(int) {}
#endif
