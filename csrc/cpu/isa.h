// The instruction sets the CPU kernels are compiled for (for_each_isa.h),
// and the one in use: the best this CPU supports, unless
// SCOREKERN_CPU_CAPABILITY names a lower one (or tests call
// set_capability), in the manner of ATen's ATEN_CPU_CAPABILITY. Each op's
// kernel file dispatches on isa() itself (SK_CPU_DISPATCH): no central table.
#pragma once

namespace scorekern {
namespace cpu {

enum class Isa { Avx512, Avx2, Baseline };

Isa isa();
const char* capability();  // "avx512", "avx2" or "baseline"
// Names a capability to use; false if this CPU or build lacks it.
bool set_capability(const char* name);
const char* supported_capabilities();  // comma-separated, best first

}  // namespace cpu
}  // namespace scorekern

// Calls FN(args...) as compiled for the instruction set in use:
// cpu::avx512::FN, cpu::avx2::FN or cpu::baseline::FN (namespaces that the
// kernel file's for_each_isa.h passes defined).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SK_CPU_DISPATCH(FN, ...)                                                       \
  do {                                                                                 \
    switch (::scorekern::cpu::isa()) {                                                 \
      case ::scorekern::cpu::Isa::Avx512: ::scorekern::cpu::avx512::FN(__VA_ARGS__); break; \
      case ::scorekern::cpu::Isa::Avx2: ::scorekern::cpu::avx2::FN(__VA_ARGS__); break;     \
      default: ::scorekern::cpu::baseline::FN(__VA_ARGS__); break;                     \
    }                                                                                  \
  } while (0)
#else
#define SK_CPU_DISPATCH(FN, ...) ::scorekern::cpu::baseline::FN(__VA_ARGS__)
#endif
