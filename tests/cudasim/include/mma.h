// The CUDA simulator stands in for the toolkit's mma.h (tests/cudasim/cudasim.h).
#pragma once
#include "../cudasim.h"
