#include "isa.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SK_CPU_X86 1
#endif

namespace scorekern {
namespace cpu {
namespace {

struct Entry {
  const char* name;
  Isa isa;
  bool (*supported)();
};

#if defined(SK_CPU_X86)
bool has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2");
}
bool has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2");
}
#endif
bool always() { return true; }

// Best first.
const Entry kEntries[] = {
#if defined(SK_CPU_X86)
    {"avx512", Isa::Avx512, &has_avx512},
    {"avx2", Isa::Avx2, &has_avx2},
#endif
    {"baseline", Isa::Baseline, &always},
};

const Entry* find(const char* name) {
  for (const Entry& e : kEntries) {
    if (std::strcmp(e.name, name) == 0) return &e;
  }
  return nullptr;
}

const Entry* choose_default() {
  const char* env = std::getenv("SCOREKERN_CPU_CAPABILITY");
  if (env && *env) {
    const Entry* e = find(env);
    if (e && e->supported()) return e;
    // An unknown or unsupported request falls through to the best available,
    // which capability() reports; the Python layer warns about the mismatch.
  }
  for (const Entry& e : kEntries) {
    if (e.supported()) return &e;
  }
  return &kEntries[sizeof kEntries / sizeof kEntries[0] - 1];
}

std::atomic<const Entry*>& current() {
  static std::atomic<const Entry*> e{choose_default()};
  return e;
}

}  // namespace

Isa isa() { return current().load(std::memory_order_relaxed)->isa; }

const char* capability() { return current().load(std::memory_order_relaxed)->name; }

bool set_capability(const char* name) {
  const Entry* e = find(name);
  if (!e || !e->supported()) return false;
  current().store(e, std::memory_order_relaxed);
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
