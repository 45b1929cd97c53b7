// The CUDA simulator stands in for the toolkit's mma.h (tests/cudasim/wmma.h).
#pragma once
#include "../wmma.h"
