// The operator library: its namespace, and which kernels a build registers.
//
// `scorekern` everywhere but in the CUDA simulator's build (tests/cudasim),
// which compiles the schemas and the CUDA glue of csrc/ops a second time as
// `scorekern_sim` (SK_BUILD_CPU 0, the CUDA glue on the CPU dispatch key),
// so that both libraries live in one process and can be compared.
#pragma once

#ifndef SK_LIBRARY
#define SK_LIBRARY scorekern
#endif

// The dispatch key of the CUDA glue: CUDA, or CPU in the simulator's build.
#ifndef SK_CUDA_KEY
#define SK_CUDA_KEY CUDA
#endif

#ifndef SK_BUILD_CPU
#define SK_BUILD_CPU 1
#endif

#if defined(SCOREKERN_WITH_CUDA)
#define SK_BUILD_CUDA 1
#else
#define SK_BUILD_CUDA 0
#endif
