// The CPU kernels built for the compiler's baseline (SSE2 on x86-64): what
// runs on any CPU, and the only build on other architectures.
#define SK_CPU_NS baseline
#include "kernels_impl.h"
SK_DEFINE_CPU_KERNELS("baseline")
