// The CUDA simulator stands in for the toolkit's cuda_runtime.h (tests/cudasim/cudasim.h).
#pragma once
#include "../cudasim.h"
