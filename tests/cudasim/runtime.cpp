// cudasim's runtime (see cudasim.h): blocks one at a time, their threads as
// cooperative fibers, barriers and warp collectives as rendezvous, per-block
// shared memory, and (with CUDASIM_RACECHECK) a shared-memory race checker
// fed by the compiler's -fsanitize=thread access hooks (shared_memory.cpp).
// This file: launches, blocks, the scheduler, barriers, faults; runtime.h
// names the other parts.
#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "runtime.h"

namespace cudasim {
namespace detail {

ThreadState* g_thread = nullptr;
BlockState* g_block = nullptr;

Config& config() {
  static Config c = [] {
    Config c;
    if (const char* v = std::getenv("CUDASIM_SM_COUNT")) c.sm_count = std::max(1, std::atoi(v));
    if (const char* v = std::getenv("CUDASIM_ARCH")) c.arch = std::atoi(v);
    if (const char* v = std::getenv("CUDASIM_SCHEDULE_SEED")) c.seed = std::strtoull(v, nullptr, 0);
    if (const char* v = std::getenv("CUDASIM_ABORT")) c.abort_on_fault = std::atoi(v) != 0;
    if (const char* v = std::getenv("CUDASIM_STACK_KB")) c.stack_bytes = std::strtoull(v, nullptr, 0) << 10;
#if defined(__SANITIZE_ADDRESS__)
    c.stack_bytes = std::max<size_t>(c.stack_bytes, 1 << 20);
#endif
    return c;
  }();
  return c;
}

size_t shared_optin_bytes() {
  const int a = config().arch;
  if (a >= 90) return 232448;  // 227 KiB
  if (a == 80 || a == 87) return 166912;
  if (a >= 86) return 101376;
  return 98304;
}
std::string where_str(const std::source_location& w) {
  const char* f = w.file_name();
  if (const char* slash = std::strrchr(f, '/')) f = slash + 1;
  return std::string(f) + ":" + std::to_string(w.line());
}

bool same_site(const std::source_location& a, const std::source_location& b) {
  return a.line() == b.line() && a.column() == b.column() && std::strcmp(a.file_name(), b.file_name()) == 0;
}

const char* collective_name(int kind) {
  switch (kind) {
    case kCollShuffle + int{kShflIdx}: return "__shfl_sync";
    case kCollShuffle + int{kShflUp}: return "__shfl_up_sync";
    case kCollShuffle + int{kShflDown}: return "__shfl_down_sync";
    case kCollShuffle + int{kShflXor}: return "__shfl_xor_sync";
    case kCollVote + kVoteAll: return "__all_sync";
    case kCollVote + kVoteAny: return "__any_sync";
    case kCollVote + kVoteBallot: return "__ballot_sync";
    case kCollSyncwarp: return "__syncwarp";
    case kCollWmmaLoad: return "wmma::load_matrix_sync";
    case kCollWmmaStore: return "wmma::store_matrix_sync";
    case kCollWmmaMma: return "wmma::mma_sync";
  }
  return "?";
}

std::mutex g_launch_mutex;
Launch* g_launch = nullptr;
Block* g_blk = nullptr;
Fiber* g_cur = nullptr;
Context g_main_ctx;
uint64_t g_block_serial = 0;
uint64_t g_launch_serial = 0;
cudaError_t g_last_error = cudaSuccess;
std::unordered_map<const void*, int> g_max_dynamic_shared;
Stats g_stats;

void schedule() {
  Block& b = *g_blk;
  Fiber* me = g_cur;
  if (g_launch->failed) to_main_for_good();
  if (b.ready.empty()) {
    if (b.exited == b.nthreads) to_main_for_good();
    deadlock();
  }
  const size_t i = g_launch->rng.below(b.ready.size());
  const int tid = b.ready[i];
  b.ready[i] = b.ready.back();
  b.ready.pop_back();
  Fiber* next = b.fibers[tid];
  next->status = Status::Ready;
  next->wait = WaitKind::None;
  if (next == me) return;
  switch_to(me, &me->ctx, next, false);
  if (g_launch->failed) to_main_for_good();
}

void make_ready(Fiber* f) {
  f->status = Status::Ready;
  g_blk->ready.push_back(f->tid);
}

void block_on(Fiber* f, WaitKind kind, const std::source_location& where) {
  f->status = Status::Blocked;
  f->wait = kind;
  f->where = where;
}

// ---------------------------------------------------------------------------
// Running a launch

void thread_exits();

void fiber_main() {
#if defined(CUDASIM_FIBER_ANNOTATIONS)
  const void* bottom = nullptr;
  size_t size = 0;
  __sanitizer_finish_switch_fiber(nullptr, &bottom, &size);
  if (!g_main_stack_bottom) {
    g_main_stack_bottom = bottom;
    g_main_stack_size = size;
  }
#endif
  if (!g_launch->failed) g_launch->spec->run_thread();
  thread_exits();
}

void thread_exits() {
  Block& b = *g_blk;
  Fiber* f = g_cur;
  f->status = Status::Exited;
  ++b.exited;
  ++g_stats.threads;
  if (b.barrier_arrived > 0) {
    fault("a thread exits while " + std::to_string(b.barrier_arrived) + " thread(s) of its block wait at "
          "__syncthreads (" + where_str(b.barrier_where) + "): every thread of the block must reach it");
  }
  for (const Collective& c : b.collectives[f->warp]) {
    if (c.mask >> f->lane & 1u) {
      char buf[200];
      std::snprintf(buf, sizeof buf, "lane %d exits while lanes of its warp wait for it at %s (mask 0x%08x) at %s",
                    f->lane, collective_name(c.kind), c.mask, where_str(c.where).c_str());
      fault(buf);
    }
  }
  if (b.exited == b.nthreads) to_main_for_good();
  schedule();
  std::abort();  // an exited fiber is never chosen
}

void run_block(Launch& launch, Block& b, const dim3& idx) {
  const LaunchSpec& s = *launch.spec;
  b.state.block_idx = uint3{idx.x, idx.y, idx.z};
  b.serial = ++g_block_serial;
  b.exited = 0;
  b.barrier_arrived = 0;
  b.epoch = 1;
  b.ready.clear();
  for (auto& list : b.collectives) list.clear();
  std::fill(b.warp_gen.begin(), b.warp_gen.end(), 1u);
  reset_shared(s.dynamic_shared);
  std::vector<Fiber>& pool = fiber_pool();
  for (int t = 0; t < b.nthreads; ++t) {
    Fiber& f = pool[t];
    f.tid = t;
    f.warp = t / 32;
    f.lane = t % 32;
    f.state.thread_idx = uint3{t % s.block.x, (t / s.block.x) % s.block.y, t / (s.block.x * s.block.y)};
    f.status = Status::Ready;
    f.wait = WaitKind::None;
    char* stack = stack_of(f);
#if defined(CUDASIM_FIBER_ANNOTATIONS)
    // The frames of the stack's last fiber never returned (a fiber ends by
    // switching away), so their redzones are still poisoned: clear the part
    // of the stack that frames use.
    const size_t used = std::min<size_t>(config().stack_bytes, 128 << 10);
    __asan_unpoison_memory_region(stack + config().stack_bytes - used, used);
#endif
    make_context(f.ctx, stack, config().stack_bytes, fiber_main);
    b.fibers[t] = &f;
    b.ready.push_back(t);
  }
  g_blk = &b;
  g_block = &b.state;
  // The main context picks the first thread; threads then pass control among
  // themselves, and the last to finish (or a fault) comes back here.
  const size_t i = launch.rng.below(b.ready.size());
  const int tid = b.ready[i];
  b.ready[i] = b.ready.back();
  b.ready.pop_back();
  switch_to(nullptr, &g_main_ctx, b.fibers[tid], false);
  g_cur = nullptr;
  g_thread = nullptr;
  free_shared();
  ++g_stats.blocks;
}

bool valid(unsigned v, unsigned most) { return v >= 1 && v <= most; }

// ---------------------------------------------------------------------------
// The entry points of cudasim.h

[[noreturn]] void fail(const std::source_location& where, const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fault(std::string(buf) + " (" + where_str(where) + ")");
}

std::vector<std::string> g_kernels_run;

void kernel_entry(const char* pretty_name, long long max_threads) {
  if (g_launch->kernel.empty()) {
    g_launch->kernel = pretty_name;
    if (std::find(g_kernels_run.begin(), g_kernels_run.end(), g_launch->kernel) == g_kernels_run.end()) {
      g_kernels_run.push_back(g_launch->kernel);
    }
  }
  if (max_threads > 0 && g_blk->nthreads > max_threads) {
    fault("a block of " + std::to_string(g_blk->nthreads) + " threads exceeds the kernel's __launch_bounds__(" +
          std::to_string(max_threads) + ") (the launch fails on a GPU)");
  }
}

void launch(const LaunchSpec& spec) {
  std::lock_guard<std::mutex> lock(g_launch_mutex);
  Launch l;
  l.spec = &spec;
  l.rng = Random{config().seed * 0x9E3779B97F4A7C15ull + (++g_launch_serial)};
  g_launch = &l;
  struct Reset {
    ~Reset() {
      g_launch = nullptr;
      g_blk = nullptr;
      g_block = nullptr;
      g_cur = nullptr;
      g_thread = nullptr;
    }
  } reset;
  const dim3 g = spec.grid, bd = spec.block;
  char buf[256];
  const unsigned long long threads = static_cast<unsigned long long>(bd.x) * bd.y * bd.z;
  if (!valid(bd.x, 1024) || !valid(bd.y, 1024) || !valid(bd.z, 64) || threads > 1024) {
    std::snprintf(buf, sizeof buf, "invalid launch configuration: a block of (%u,%u,%u) threads (at most 1024, "
                  "none zero)", bd.x, bd.y, bd.z);
    fault(buf);
  }
  if (!valid(g.x, 0x7fffffffu) || !valid(g.y, 65535) || !valid(g.z, 65535)) {
    std::snprintf(buf, sizeof buf, "invalid launch configuration: a grid of (%u,%u,%u) blocks", g.x, g.y, g.z);
    fault(buf);
  }
  if (spec.dynamic_shared > kSharedDefault) {
    auto it = g_max_dynamic_shared.find(spec.kernel);
    const int allowed = it == g_max_dynamic_shared.end() ? 0 : it->second;
    if (spec.dynamic_shared > static_cast<size_t>(allowed)) {
      fault("a launch with " + std::to_string(spec.dynamic_shared) + " bytes of dynamic shared memory needs "
            "cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, >= that) first (set: " +
            std::to_string(allowed) + ")");
    }
  }
  if (spec.dynamic_shared > shared_optin_bytes()) {
    fault("a launch with " + std::to_string(spec.dynamic_shared) + " bytes of dynamic shared memory; the device "
          "allows " + std::to_string(shared_optin_bytes()));
  }
  ++g_stats.launches;
  const unsigned long long blocks = static_cast<unsigned long long>(g.x) * g.y * g.z;
  g_stats.max_blocks = std::max<long long>(g_stats.max_blocks, static_cast<long long>(blocks));
  static Block b;
  b.nthreads = static_cast<int>(threads);
  b.nwarps = (b.nthreads + 31) / 32;
  b.state.block_dim = bd;
  b.state.grid_dim = g;
  b.fibers.assign(b.nthreads, nullptr);
  b.collectives.assign(b.nwarps, {});
  b.warp_gen.assign(b.nwarps, 1u);
  std::vector<unsigned long long> order(blocks);
  for (unsigned long long i = 0; i < blocks; ++i) order[i] = i;
  for (unsigned long long i = blocks - 1; i > 0 && blocks > 1; --i) std::swap(order[i], order[l.rng.below(i + 1)]);
  for (unsigned long long i : order) {
    const dim3 idx(static_cast<unsigned>(i % g.x), static_cast<unsigned>((i / g.x) % g.y),
                   static_cast<unsigned>(i / (static_cast<unsigned long long>(g.x) * g.y)));
    run_block(l, b, idx);
    if (l.failed) {
      free_shared();
      throw std::runtime_error(l.message);
    }
  }
}

}  // namespace detail

void configure(uint64_t seed, int sm_count, int arch) {
  detail::config().seed = seed;
  if (sm_count > 0) detail::config().sm_count = sm_count;
  if (arch > 0) detail::config().arch = arch;
}
uint64_t schedule_seed() { return detail::config().seed; }
Stats stats() { return detail::g_stats; }
std::vector<std::string> kernels_run() { return detail::g_kernels_run; }

}  // namespace cudasim
