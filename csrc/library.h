// The operator library's namespace. `scorekern` everywhere but in the CUDA
// simulator's build (tests/cudasim), which compiles the schemas and the CUDA
// glue a second time as `scorekern_sim` (CPU tensors, simulated kernels), so
// that both libraries can live in one process and be compared.
#pragma once

#ifndef SK_LIBRARY
#define SK_LIBRARY scorekern
#endif

// The dispatch key of the CUDA glue: CUDA, or CPU in the simulator's build.
#ifndef SK_CUDA_KEY
#define SK_CUDA_KEY CUDA
#endif
