// cudasim's controls for the test glue (torch_device.cpp): the schedule seed
// and the simulated multiprocessor count, and what the simulator has run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cudasim {

struct Stats {
  long long launches = 0, blocks = 0, threads = 0, max_blocks = 0;
};

// seed: the order of blocks, of threads between barriers and of WMMA
// fragment elements; sm_count > 0 replaces the multiprocessor count (read by
// the launchers' grid sizing, which may cache it); arch > 0 the compute
// capability the device reports (e.g. 86: 99 KiB of shared memory per block;
// the kernels stay compiled for __CUDA_ARCH__ 900).
void configure(uint64_t seed, int sm_count, int arch);
uint64_t schedule_seed();
Stats stats();
// The __PRETTY_FUNCTION__ of every kernel (instantiation) that has run.
std::vector<std::string> kernels_run();

}  // namespace cudasim
