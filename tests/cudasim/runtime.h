// The state the parts of cudasim's runtime share (test code): the schedule's
// configuration, the fibers that run a block's threads, the block and the
// launch, and the functions one part calls in another. The parts:
//
//   runtime.cpp        launches, blocks, the scheduler
//   reports.cpp        faults: what they say, and deadlocks
//   fibers.cpp         fibers: their stacks and the context switch
//   collectives.cpp    __syncthreads and the warp collectives (shuffles, votes, __syncwarp, WMMA)
//   shared_memory.cpp  per-block shared memory and the race checker
//   runtime_api.cpp    the CUDA runtime API and atomics
#pragma once

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#include <cstdint>
#include <mutex>
#include <source_location>
#include <string>
#include <unordered_map>
#include <vector>

#include "control.h"
#include "cudasim.h"
#include "wmma.h"

#if defined(__SANITIZE_ADDRESS__)
// AddressSanitizer learns of each switch between fibers' stacks (fibers.cpp).
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define CUDASIM_FIBER_ANNOTATIONS 1
#endif

namespace cudasim {
namespace detail {

// ---------------------------------------------------------------------------
// Configuration (environment, or cudasim::configure)

struct Config {
  int sm_count = 2;
  int arch = 90;
  uint64_t seed = 1;
  bool abort_on_fault = false;
  size_t stack_bytes = 256 << 10;
};

Config& config();
size_t shared_optin_bytes();  // the device's opt-in shared memory per block
constexpr size_t kSharedDefault = 48 << 10;  // without cudaFuncSetAttribute

// splitmix64: the schedule's random choices.
struct Random {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }
};

std::string where_str(const std::source_location& w);
bool same_site(const std::source_location& a, const std::source_location& b);

// ---------------------------------------------------------------------------
// Threads, warps, the block

enum class Status { Ready, Blocked, Exited };
enum class WaitKind { None, Barrier, Warp };

// Kinds of warp collective: a shuffle or vote kind added to its base.
constexpr int kCollShuffle = 0, kCollVote = 8, kCollSyncwarp = 16, kCollWmmaLoad = 17, kCollWmmaStore = 18,
              kCollWmmaMma = 19;

const char* collective_name(int kind);

// A fiber's saved context. On x86-64 a stack pointer, switched by
// cudasim_switch (fibers.cpp: callee-saved registers and the FP control
// words, no system call); elsewhere ucontext's swapcontext.
#if defined(__x86_64__)
struct Context {
  void* sp = nullptr;
};
#else
struct Context {
  ucontext_t uc;
};
#endif

struct Fiber {
  ThreadState state;  // what threadIdx reads
  int tid = 0, warp = 0, lane = 0;
  Status status = Status::Ready;
  WaitKind wait = WaitKind::None;
  std::source_location where;
  int coll_kind = 0;
  unsigned coll_mask = 0;
  // A collective's inputs and output.
  uint64_t in_bits = 0, out_bits = 0;
  int lane_arg = 0;
  const float* frag_a = nullptr;
  const float* frag_b = nullptr;
  const float* frag_c = nullptr;
  float* frag_d = nullptr;
  Context ctx;
  char* stack = nullptr;
#if defined(CUDASIM_FIBER_ANNOTATIONS)
  void* fake_stack = nullptr;
#endif
};

// One pending warp collective.
struct Collective {
  int kind;
  unsigned mask, arrived;
  std::source_location where;
  int size, width;  // a shuffle's value size, or a WMMA shape
  const void* ptr;
  unsigned ldm;
  int layout;
};

struct Block {
  BlockState state;
  int nthreads = 0, nwarps = 0;
  uint64_t serial = 0;  // unique per block run
  std::vector<Fiber*> fibers;
  std::vector<int> ready;  // tids of fibers ready to run
  int exited = 0;
  // __syncthreads
  int barrier_arrived = 0;
  std::source_location barrier_where;
  int barrier_reduce = 0;
  long long barrier_acc = 0;
  uint32_t epoch = 1;  // barriers passed + 1
  std::vector<std::vector<Collective>> collectives;  // per warp
  std::vector<uint32_t> warp_gen;  // per warp: whole-warp __syncwarp passed + 1
};

struct Launch {
  const LaunchSpec* spec = nullptr;
  std::string kernel;  // __PRETTY_FUNCTION__ of the kernel
  bool failed = false;
  std::string message;
  Random rng{1};
};

extern std::mutex g_launch_mutex;
extern Launch* g_launch;
extern Block* g_blk;
extern Fiber* g_cur;
extern Context g_main_ctx;
extern cudaError_t g_last_error;
extern std::unordered_map<const void*, int> g_max_dynamic_shared;
extern Stats g_stats;
extern std::vector<std::string> g_kernels_run;

std::string thread_name(const Block& b, int tid);  // reports.cpp

// fibers.cpp
std::vector<Fiber>& fiber_pool();  // the fibers, their stacks made once and reused
char* stack_of(Fiber& f);
void make_context(Context& c, char* stack, size_t bytes, void (*entry)());
void switch_to(Fiber* from, Context* from_ctx, Fiber* to, bool from_exits);
[[noreturn]] void to_main_for_good();
#if defined(CUDASIM_FIBER_ANNOTATIONS)
extern const void* g_main_stack_bottom;
extern size_t g_main_stack_size;
#endif

// runtime.cpp: the scheduler
void schedule();  // runs some ready thread of the block (maybe the caller); returns when the caller is chosen again
void make_ready(Fiber* f);
void block_on(Fiber* f, WaitKind kind, const std::source_location& where);

// reports.cpp
[[noreturn]] void fault(const std::string& what, bool with_thread = true);
[[noreturn]] void deadlock();

// collectives.cpp
void arrive(Fiber* f, int kind, unsigned mask, const std::source_location& where, int size, int width,
            const void* ptr = nullptr, unsigned ldm = 0, int layout = 0);
unsigned warp_lanes(const Block& b, int warp);

// shared_memory.cpp
void reset_shared(size_t dynamic_bytes);  // a block begins
void free_shared();  // a block ends

}  // namespace detail
}  // namespace cudasim
