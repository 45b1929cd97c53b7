// Chooses the CPU kernels at run time: the best instruction set this CPU
// supports, unless SCOREKERN_CPU_CAPABILITY names a lower one (or tests call
// set_capability), in the manner of ATen's ATEN_CPU_CAPABILITY.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SK_CPU_X86 1
#endif

namespace scorekern {
namespace cpu {

namespace baseline { const Kernels& table(); }
#if defined(SK_CPU_X86)
namespace avx2 { const Kernels& table(); }
namespace avx512 { const Kernels& table(); }
#endif

namespace {

struct Entry {
  const char* name;
  const Kernels& (*table)();
  bool (*supported)();
};

#if defined(SK_CPU_X86)
bool has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("bmi2");
}
bool has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("bmi2");
}
#endif
bool always() { return true; }

// Best first.
const Entry kEntries[] = {
#if defined(SK_CPU_X86)
    {"avx512", &avx512::table, &has_avx512},
    {"avx2", &avx2::table, &has_avx2},
#endif
    {"baseline", &baseline::table, &always},
};

const Entry* find(const char* name) {
  for (const Entry& e : kEntries) {
    if (std::strcmp(e.name, name) == 0) return &e;
  }
  return nullptr;
}

const Kernels* choose_default() {
  const char* env = std::getenv("SCOREKERN_CPU_CAPABILITY");
  if (env && *env) {
    const Entry* e = find(env);
    if (e && e->supported()) return &e->table();
    // An unknown or unsupported request falls through to the best available,
    // which capability() reports; the Python layer warns about the mismatch.
  }
  for (const Entry& e : kEntries) {
    if (e.supported()) return &e.table();
  }
  return &baseline::table();
}

std::atomic<const Kernels*>& current() {
  static std::atomic<const Kernels*> k{choose_default()};
  return k;
}

}  // namespace

const Kernels& kernels() { return *current().load(std::memory_order_relaxed); }

const char* capability() { return kernels().name; }

bool set_capability(const char* name) {
  const Entry* e = find(name);
  if (!e || !e->supported()) return false;
  current().store(&e->table(), std::memory_order_relaxed);
  return true;
}

const char* supported_capabilities() {
  static const std::string names = [] {
    std::string s;
    for (const Entry& e : kEntries) {
      if (!e.supported()) continue;
      if (!s.empty()) s += ",";
      s += e.name;
    }
    return s;
  }();
  return names.c_str();
}

}  // namespace cpu
}  // namespace scorekern
