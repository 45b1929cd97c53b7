// Each op's torch entry is one function template over the device it runs
// on (the pattern of xformers' sparse24_apply<kIsMeta>): the same checks and
// output shapes for the meta kernel (torch.compile's fake tensors, opcheck),
// the CPU kernel and the CUDA glue; only the last step, running the kernel,
// differs. SK_IMPL_ON_DEVICES registers its three instantiations.
#pragma once

#include <torch/library.h>

#include "../library.h"

namespace scorekern {

enum class Device { Meta, CPU, CUDA };

}  // namespace scorekern

#if SK_BUILD_CPU
#define SK_IF_BUILD_CPU(...) __VA_ARGS__
#else
#define SK_IF_BUILD_CPU(...)
#endif
#if SK_BUILD_CUDA
#define SK_IF_BUILD_CUDA(...) __VA_ARGS__
#else
#define SK_IF_BUILD_CUDA(...)
#endif

// Registers fn<Device::Meta>, fn<Device::CPU> and fn<Device::CUDA> for op
// `name` (the last two where this build has those kernels).
#define SK_IMPL_ON_DEVICES(name, fn)                                                                   \
  TORCH_LIBRARY_IMPL(SK_LIBRARY, Meta, m) { m.impl(name, &fn<::scorekern::Device::Meta>); }           \
  SK_IF_BUILD_CPU(TORCH_LIBRARY_IMPL(SK_LIBRARY, CPU, m) { m.impl(name, &fn<::scorekern::Device::CPU>); }) \
  SK_IF_BUILD_CUDA(TORCH_LIBRARY_IMPL(SK_LIBRARY, SK_CUDA_KEY, m) {                                    \
    m.impl(name, &fn<::scorekern::Device::CUDA>);                                                      \
  })
