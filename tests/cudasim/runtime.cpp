// cudasim's runtime (see cudasim.h): blocks one at a time, their threads as
// cooperative fibers, barriers and warp collectives as rendezvous, per-block
// shared memory, and (with CUDASIM_RACECHECK) a shared-memory race checker
// fed by the compiler's -fsanitize=thread access hooks, which this file
// defines in place of ThreadSanitizer's runtime.
//
// Ordering model of the race checker: two accesses to the same byte of
// shared memory by different threads, at least one a write, race unless a
// __syncthreads lies between them, or they come from lanes of one warp with a
// __syncwarp of the whole warp between them (what the CUDA memory model
// orders; shuffles and WMMA collectives order nothing). Reads of shared
// memory that no thread of the block has written are reported as well.
#include <dlfcn.h>
#include <sys/mman.h>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "cudasim.h"
#include "control.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define CUDASIM_FIBER_ANNOTATIONS 1
#endif

namespace cudasim {
namespace detail {

ThreadState* g_thread = nullptr;
BlockState* g_block = nullptr;

namespace {

// ---------------------------------------------------------------------------
// Configuration (environment, or cudasim::configure)

struct Config {
  int sm_count = 2;
  int arch = 90;
  uint64_t seed = 1;
  bool abort_on_fault = false;
  size_t stack_bytes = 256 << 10;
};

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
constexpr size_t kSharedDefault = 48 << 10;

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

std::string where_str(const std::source_location& w) {
  const char* f = w.file_name();
  if (const char* slash = std::strrchr(f, '/')) f = slash + 1;
  return std::string(f) + ":" + std::to_string(w.line());
}

bool same_site(const std::source_location& a, const std::source_location& b) {
  return a.line() == b.line() && a.column() == b.column() && std::strcmp(a.file_name(), b.file_name()) == 0;
}

// ---------------------------------------------------------------------------
// Threads, warps, the block

enum class Status { Ready, Blocked, Exited };
enum class WaitKind { None, Barrier, Warp };

// Kinds of warp collective: a shuffle or vote kind added to its base.
constexpr int kCollShuffle = 0, kCollVote = 8, kCollSyncwarp = 16, kCollWmmaLoad = 17, kCollWmmaStore = 18,
              kCollWmmaMma = 19;

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

// A fiber's saved context. On x86-64 a stack pointer, switched by
// cudasim_switch below (callee-saved registers and the FP control words, no
// system call); elsewhere ucontext's swapcontext.
#if defined(__x86_64__)
struct Context {
  void* sp = nullptr;
};
extern "C" void cudasim_switch(void** save_sp, void* next_sp);
asm(R"(
  .text
  .p2align 4
  .globl cudasim_switch
  .hidden cudasim_switch
  .type cudasim_switch, @function
cudasim_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size cudasim_switch, .-cudasim_switch
)");

// A new fiber's stack as cudasim_switch leaves one: FP control words,
// six registers, then `entry` as the return address (with a slot above so
// that entry starts with the stack aligned as after a call).
void make_context(Context& c, char* stack, size_t bytes, void (*entry)()) {
  auto* top = reinterpret_cast<uint64_t*>((reinterpret_cast<uintptr_t>(stack) + bytes) & ~uintptr_t{15});
  uint64_t* sp = top - 9;
  const uint32_t control[2] = {0x1f80u, 0x037fu};  // default MXCSR and x87 control word
  std::memcpy(sp, control, sizeof control);
  for (int i = 1; i <= 6; ++i) sp[i] = 0;
  sp[7] = reinterpret_cast<uint64_t>(entry);
  sp[8] = 0;
  c.sp = sp;
}
void swap_context(Context& from, Context& to) { cudasim_switch(&from.sp, to.sp); }
#else
struct Context {
  ucontext_t uc;
};
void make_context(Context& c, char* stack, size_t bytes, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = bytes;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}
void swap_context(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
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
#if defined(CUDASIM_FIBER_ANNOTATIONS)
const void* g_main_stack_bottom = nullptr;
size_t g_main_stack_size = 0;
#endif

// The fibers' stacks, made once (with a guard page below each) and reused.
std::vector<Fiber>& fiber_pool() {
  static std::vector<Fiber> pool(1024);
  return pool;
}

char* stack_of(Fiber& f) {
  if (!f.stack) {
    const size_t bytes = config().stack_bytes + 4096;
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("cudasim: cannot map a thread's stack");
    mprotect(p, 4096, PROT_NONE);
    f.stack = static_cast<char*>(p) + 4096;
  }
  return f.stack;
}

std::string thread_name(const Block& b, int tid) {
  const dim3 d = b.state.block_dim;
  const unsigned x = tid % d.x, y = (tid / d.x) % d.y, z = tid / (d.x * d.y);
  char buf[96];
  std::snprintf(buf, sizeof buf, "thread (%u,%u,%u) [warp %d lane %d]", x, y, z, tid / 32, tid % 32);
  return buf;
}

std::string block_name(const Block& b) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "block (%u,%u,%u)", b.state.block_idx.x, b.state.block_idx.y, b.state.block_idx.z);
  return buf;
}

std::string launch_context(bool with_thread) {
  if (!g_launch) return "";
  const LaunchSpec& s = *g_launch->spec;
  std::string r = "\n  kernel: " + (g_launch->kernel.empty() ? std::string(s.expression) : g_launch->kernel);
  const char* f = std::strrchr(s.file, '/');
  r += "\n  launched at " + std::string(f ? f + 1 : s.file) + ":" + std::to_string(s.line) + " as " + s.expression;
  char buf[160];
  std::snprintf(buf, sizeof buf, "<<<(%u,%u,%u), (%u,%u,%u), %zu>>>", s.grid.x, s.grid.y, s.grid.z, s.block.x,
                s.block.y, s.block.z, s.dynamic_shared);
  r += buf;
  if (g_blk) {
    r += "\n  in " + block_name(*g_blk);
    if (g_cur && with_thread) r += ", " + thread_name(*g_blk, g_cur->tid);
  }
  return r;
}

// ---------------------------------------------------------------------------
// Switching

void switch_to(Fiber* from, Context* from_ctx, Fiber* to, bool from_exits) {
#if defined(CUDASIM_FIBER_ANNOTATIONS)
  void** save = from_exits ? nullptr : (from ? &from->fake_stack : nullptr);
  static void* main_fake = nullptr;
  if (!from && !from_exits) save = &main_fake;
  if (to) {
    __sanitizer_start_switch_fiber(save, to->stack, config().stack_bytes);
  } else {
    __sanitizer_start_switch_fiber(save, g_main_stack_bottom, g_main_stack_size);
  }
#else
  (void)from_exits;
#endif
  g_cur = to;
  g_thread = to ? &to->state : nullptr;
  swap_context(*from_ctx, to ? to->ctx : g_main_ctx);
  // Resumed: whoever switched here set g_cur.
#if defined(CUDASIM_FIBER_ANNOTATIONS)
  __sanitizer_finish_switch_fiber(from ? from->fake_stack : main_fake, nullptr, nullptr);
#endif
}

[[noreturn]] void to_main_for_good() {
  Fiber* me = g_cur;
  Context dead;
  switch_to(me, me ? &me->ctx : &dead, nullptr, true);
  std::abort();  // a failed or finished fiber is never resumed
}

void deadlock();

// Runs some ready thread of the block (maybe the caller itself); returns when
// the caller is chosen again.
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
// Faults

[[noreturn]] void fault(const std::string& what, bool with_thread = true) {
  std::string msg = "cudasim: " + what + launch_context(with_thread);
  if (config().abort_on_fault) {
    std::fprintf(stderr, "%s\n", msg.c_str());
    std::abort();
  }
  if (g_cur) {
    if (!g_launch->failed) {
      g_launch->failed = true;
      g_launch->message = msg;
    }
    to_main_for_good();
  }
  throw std::runtime_error(msg);
}

void deadlock() {
  Block& b = *g_blk;
  std::string s = "deadlock: no thread of the block can go on";
  std::string last;
  int first = -1, count = 0;
  auto flush = [&] {
    if (count == 0) return;
    s += "\n    " + std::to_string(count) + " thread(s) from " + thread_name(b, first) + ": " + last;
    count = 0;
  };
  for (Fiber* f : b.fibers) {
    std::string w;
    if (f->status == Status::Exited) w = "exited";
    else if (f->wait == WaitKind::Barrier) w = "wait at __syncthreads, " + where_str(f->where);
    else if (f->wait == WaitKind::Warp) {
      char buf[40];
      std::snprintf(buf, sizeof buf, " (mask 0x%08x), ", f->coll_mask);
      w = std::string("wait at ") + collective_name(f->coll_kind) + buf + where_str(f->where);
    } else w = "running";
    if (w != last || f->tid != first + count) {
      flush();
      first = f->tid;
      last = w;
    }
    ++count;
  }
  flush();
  fault(s, false);  // a state of the block, not of one thread
}

// ---------------------------------------------------------------------------
// Shared memory: one region for the block's variables, bump-allocated with
// gaps between them (an access to a gap is out of bounds); with
// AddressSanitizer, one exact-size allocation per variable instead.

struct SharedVar {
  const char* name;
  const char* file;
  int line;
  char* begin;
  size_t size;
  bool dynamic;
};
std::vector<SharedVar> g_shared_vars;
size_t g_static_shared_bytes = 0;
char* g_dynamic_shared = nullptr;
size_t g_dynamic_shared_bytes = 0;
constexpr unsigned char kPoison = 0xff;  // NaN in every float width, -1 in every integer

#if !defined(CUDASIM_ASAN)
constexpr size_t kRegionBytes = 384 << 10;
constexpr size_t kGap = 64;
char* g_region = nullptr;
size_t g_region_used = 0;
#endif

#if defined(CUDASIM_RACECHECK)
uintptr_t g_region_lo = 0;  // the hooks' range check: [g_region_lo, + kRegionBytes)
struct Shadow {
  uint16_t var;  // index + 1 in g_shared_vars; 0: no variable here
  uint8_t written;
  uint8_t r_many_warps;
  int16_t w_tid, r_warp, r_tid;
  uint32_t w_epoch, w_gen;
  uint32_t r_epoch, r_gen, r_lanes;
  uintptr_t w_pc, r_pc;
};
std::vector<Shadow> g_shadow;
#endif

void reset_shared() {
  g_shared_vars.clear();
  g_static_shared_bytes = 0;
  g_dynamic_shared = nullptr;
#if defined(CUDASIM_ASAN)
  // freed in free_shared
#else
  if (!g_region) {
    void* p = mmap(nullptr, kRegionBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("cudasim: cannot map shared memory");
    g_region = static_cast<char*>(p);
#if defined(CUDASIM_RACECHECK)
    g_region_lo = reinterpret_cast<uintptr_t>(g_region);
    g_shadow.resize(kRegionBytes);
#endif
  }
#if defined(CUDASIM_RACECHECK)
  std::memset(g_shadow.data(), 0, sizeof(Shadow) * std::min(kRegionBytes, g_region_used));
#endif
  g_region_used = 0;
#endif
}

#if defined(CUDASIM_ASAN)
std::vector<void*> g_shared_allocations;
void free_shared() {
  for (void* p : g_shared_allocations) std::free(p);
  g_shared_allocations.clear();
}
#else
void free_shared() {}
#endif

char* allocate_shared(size_t bytes, size_t align, const char* name, const char* file, int line, bool dynamic) {
  if (align < 16) align = 16;
  char* p = nullptr;
#if defined(CUDASIM_ASAN)
  void* q = nullptr;
  if (posix_memalign(&q, align, bytes ? bytes : 1) != 0) fault("out of host memory for shared memory");
  g_shared_allocations.push_back(q);
  p = static_cast<char*>(q);
#else
  size_t at = (g_region_used + kGap + align - 1) / align * align;
  if (at + bytes + kGap > kRegionBytes) fault("the block's shared memory outgrows the simulator's region");
  p = g_region + at;
  g_region_used = at + bytes;
#endif
  std::memset(p, kPoison, bytes);
  g_shared_vars.push_back(SharedVar{name, file, line, p, bytes, dynamic});
#if defined(CUDASIM_RACECHECK)
  const uint16_t id = static_cast<uint16_t>(g_shared_vars.size());
  for (size_t i = 0; i < bytes; ++i) g_shadow[(p - g_region) + i].var = id;
#endif
  return p;
}

std::string var_name(const SharedVar& v) {
  const char* f = std::strrchr(v.file, '/');
  return std::string(v.dynamic ? "extern __shared__ " : "__shared__ ") + v.name + " (" + (f ? f + 1 : v.file) + ":" +
         std::to_string(v.line) + ")";
}

// ---------------------------------------------------------------------------
// The race checker

#if defined(CUDASIM_RACECHECK)
std::string code_site(uintptr_t pc) {
  if (!pc) return "?";
  Dl_info info;
  if (!dladdr(reinterpret_cast<void*>(pc), &info) || !info.dli_fname) return "?";
  char cmd[1024];
  std::snprintf(cmd, sizeof cmd, "addr2line -C -f -i -e '%s' 0x%lx 2>/dev/null", info.dli_fname,
                static_cast<unsigned long>(pc - reinterpret_cast<uintptr_t>(info.dli_fbase) - 1));
  FILE* p = popen(cmd, "r");
  if (!p) return "?";
  char fn[512] = "", loc[512] = "";
  if (!std::fgets(fn, sizeof fn, p) || !std::fgets(loc, sizeof loc, p)) {
    pclose(p);
    return "?";
  }
  pclose(p);
  fn[std::strcspn(fn, "\n")] = 0;
  loc[std::strcspn(loc, "\n (")] = 0;
  const char* file = std::strrchr(loc, '/');
  std::string f = fn;
  if (f.size() > 80) f = f.substr(0, 77) + "...";
  return std::string(file ? file + 1 : loc) + " in " + f;
}

[[noreturn]] void report(const char* what, const Shadow& s, size_t byte, int other_tid, bool other_wrote,
                         uintptr_t other_pc, uintptr_t pc, bool write) {
  const SharedVar& v = g_shared_vars[s.var - 1];
  char off[64];
  std::snprintf(off, sizeof off, " at byte %zu", static_cast<size_t>(g_region + byte - v.begin));
  std::string m = std::string(what) + " on " + var_name(v) + off + ":\n    " + thread_name(*g_blk, g_cur->tid) +
                  (write ? " writes" : " reads") + " it at " + code_site(pc);
  if (other_tid >= 0) {
    m += ",\n    " + thread_name(*g_blk, other_tid) + (other_wrote ? " wrote" : " read") + " it at " +
         code_site(other_pc) + ", with no barrier between them";
  }
  fault(m);
}

inline bool ordered_in_warp(int tid, uint32_t gen, const Fiber* f, const Block& b) {
  return tid / 32 == f->warp && gen < b.warp_gen[f->warp];
}

void access_shared(uintptr_t addr, size_t n, bool write, uintptr_t pc) {
  Fiber* f = g_cur;
  if (!f || !g_blk) return;
  const Block& b = *g_blk;
  const uint32_t epoch = b.epoch, gen = b.warp_gen[f->warp];
  const size_t first = addr - g_region_lo;
  for (size_t byte = first; byte < first + n; ++byte) {
    if (byte >= kRegionBytes) fault("a shared-memory access past the simulator's region");
    Shadow& s = g_shadow[byte];
    if (s.var == 0) {
      // Between or past the block's variables: name the nearest one below.
      const SharedVar* near = nullptr;
      for (const SharedVar& v : g_shared_vars) {
        if (v.begin <= g_region + byte && (!near || v.begin > near->begin)) near = &v;
      }
      char buf[256];
      std::snprintf(buf, sizeof buf, "out-of-bounds shared-memory %s of %zu bytes at %s+%zu",
                    write ? "write" : "read", n, near ? near->name : "(start)",
                    near ? static_cast<size_t>(g_region + byte - near->begin) : byte);
      fault(std::string(buf) + ", by " + code_site(pc));
    }
    if (s.w_epoch == epoch && s.w_tid != f->tid && !ordered_in_warp(s.w_tid, s.w_gen, f, b)) {
      report(write ? "shared-memory race (write after write)" : "shared-memory race (read after write)", s, byte,
             s.w_tid, true, s.w_pc, pc, write);
    }
    if (write) {
      if (s.r_epoch == epoch) {
        const bool other_warp = s.r_many_warps || s.r_warp != f->warp;
        const bool other_lane = s.r_gen == gen && (s.r_lanes & ~(1u << f->lane)) != 0;
        if (other_warp || other_lane) {
          report("shared-memory race (write after read)", s, byte, s.r_tid == f->tid ? -1 : s.r_tid, false,
                 s.r_pc, pc, true);
        }
      }
      s.written = 1;
      s.w_tid = static_cast<int16_t>(f->tid);
      s.w_epoch = epoch;
      s.w_gen = gen;
      s.w_pc = pc;
    } else {
      if (!s.written) {
        const SharedVar& v = g_shared_vars[s.var - 1];
        char off[64];
        std::snprintf(off, sizeof off, " at byte %zu", static_cast<size_t>(g_region + byte - v.begin));
        fault("read of uninitialised shared memory (no thread of the block wrote it): " + var_name(v) + off +
              ", by " + code_site(pc));
      }
      if (s.r_epoch != epoch) {
        s.r_epoch = epoch;
        s.r_many_warps = 0;
        s.r_warp = static_cast<int16_t>(f->warp);
        s.r_gen = gen;
        s.r_lanes = 1u << f->lane;
        s.r_tid = static_cast<int16_t>(f->tid);
        s.r_pc = pc;
      } else if (s.r_warp != f->warp) {
        s.r_many_warps = 1;
        s.r_tid = static_cast<int16_t>(f->tid);
        s.r_pc = pc;
      } else if (gen > s.r_gen) {
        s.r_gen = gen;
        s.r_lanes = 1u << f->lane;
        s.r_tid = static_cast<int16_t>(f->tid);
        s.r_pc = pc;
      } else {
        s.r_lanes |= 1u << f->lane;
        if (s.r_tid != f->tid) {
          s.r_tid = static_cast<int16_t>(f->tid);
          s.r_pc = pc;
        }
      }
    }
  }
}

inline bool in_region(uintptr_t a) { return g_region_lo && a - g_region_lo < kRegionBytes; }
#endif

// ---------------------------------------------------------------------------
// Warp collectives

Collective* find_collective(Block& b, int warp, unsigned mask) {
  for (Collective& c : b.collectives[warp]) {
    if (c.mask & mask) return &c;
  }
  return nullptr;
}

unsigned warp_lanes(const Block& b, int warp) {
  const int n = std::min(32, b.nthreads - 32 * warp);
  return n >= 32 ? 0xffffffffu : ((1u << n) - 1u);
}

void resolve(Block& b, int warp, Collective& c);

// The calling lane joins the collective of its warp over `mask` (made when
// it is the first to arrive), checked against the others; when every lane in
// the mask has arrived, the collective completes.
void arrive(Fiber* f, int kind, unsigned mask, const std::source_location& where, int size, int width,
            const void* ptr = nullptr, unsigned ldm = 0, int layout = 0) {
  Block& b = *g_blk;
  char buf[256];
  const unsigned bit = 1u << f->lane;
  if (!(mask & bit)) {
    std::snprintf(buf, sizeof buf, "%s at %s with mask 0x%08x, which leaves out the calling lane %d",
                  collective_name(kind), where_str(where).c_str(), mask, f->lane);
    fault(buf);
  }
  const unsigned lanes = warp_lanes(b, f->warp);
  if (mask & ~lanes) {
    std::snprintf(buf, sizeof buf, "%s at %s with mask 0x%08x names lanes that do not exist (block of %d threads)",
                  collective_name(kind), where_str(where).c_str(), mask, b.nthreads);
    fault(buf);
  }
  for (int l = 0; l < 32; ++l) {
    if ((mask >> l & 1u) && b.fibers[32 * f->warp + l]->status == Status::Exited) {
      std::snprintf(buf, sizeof buf, "%s at %s with mask 0x%08x names lane %d, which has exited",
                    collective_name(kind), where_str(where).c_str(), mask, l);
      fault(buf);
    }
  }
  Collective* c = find_collective(b, f->warp, mask);
  if (!c) {
    b.collectives[f->warp].push_back(Collective{kind, mask, 0, where, size, width, ptr, ldm, layout});
    c = &b.collectives[f->warp].back();
  } else {
    const bool any_site_ok = kind == kCollSyncwarp && c->kind == kCollSyncwarp;  // sm_70+: any __syncwarp matches
    if (c->mask != mask || c->kind != kind || (!any_site_ok && !same_site(c->where, where)) || c->width != width ||
        c->size != size) {
      std::snprintf(buf, sizeof buf,
                    "divergent warp collective: lane %d reaches %s (mask 0x%08x) at %s while lanes of its warp wait "
                    "at %s (mask 0x%08x) at %s",
                    f->lane, collective_name(kind), mask, where_str(where).c_str(), collective_name(c->kind),
                    c->mask, where_str(c->where).c_str());
      fault(buf);
    }
    if (c->ptr != ptr || c->ldm != ldm || c->layout != layout) {
      std::snprintf(buf, sizeof buf,
                    "%s at %s: lane %d passes pointer %p, ldm %u, layout %d; other lanes passed %p, %u, %d (the "
                    "arguments must be the same for the whole warp)",
                    collective_name(kind), where_str(where).c_str(), f->lane, ptr, ldm, layout, c->ptr, c->ldm,
                    c->layout);
      fault(buf);
    }
  }
  block_on(f, WaitKind::Warp, where);
  f->coll_kind = kind;
  f->coll_mask = mask;
  c->arrived |= bit;
  if (c->arrived == c->mask) {
    const Collective done = *c;
    auto& list = b.collectives[f->warp];
    list.erase(list.begin() + (c - list.data()));
    Collective copy = done;
    resolve(b, f->warp, copy);
  }
  schedule();
}

void resolve(Block& b, int warp, Collective& c) {
  Fiber** lanes = b.fibers.data() + 32 * warp;
  const int kind = c.kind;
  if (kind >= kCollShuffle && kind < kCollVote) {
    const int width = c.width;
    for (int l = 0; l < 32; ++l) {
      if (!(c.mask >> l & 1u)) continue;
      Fiber* f = lanes[l];
      const int seg = l & ~(width - 1);
      int src = l;
      switch (kind - kCollShuffle) {
        case kShflIdx: src = seg + (f->lane_arg & (width - 1)); break;
        case kShflUp: src = (l - seg) >= f->lane_arg ? l - f->lane_arg : l; break;
        case kShflDown: src = (l - seg) + f->lane_arg < width ? l + f->lane_arg : l; break;
        case kShflXor: {
          const int t = l ^ f->lane_arg;
          src = (t & ~(width - 1)) > seg ? l : t;  // a later segment: the caller's own value
          break;
        }
      }
      if (src < 0 || src > 31 || !(c.mask >> src & 1u)) {
        char buf[200];
        std::snprintf(buf, sizeof buf, "%s at %s: lane %d reads lane %d, which is not in the mask 0x%08x (its value "
                      "is undefined)", collective_name(kind), where_str(c.where).c_str(), l, src, c.mask);
        fault(buf);
      }
      f->out_bits = lanes[src]->in_bits;
    }
  } else if (kind >= kCollVote && kind < kCollSyncwarp) {
    unsigned ballot = 0;
    for (int l = 0; l < 32; ++l) {
      if ((c.mask >> l & 1u) && lanes[l]->in_bits) ballot |= 1u << l;
    }
    uint64_t r = ballot;
    if (kind == kCollVote + kVoteAll) r = ballot == c.mask;
    if (kind == kCollVote + kVoteAny) r = ballot != 0;
    for (int l = 0; l < 32; ++l) {
      if (c.mask >> l & 1u) lanes[l]->out_bits = r;
    }
  } else if (kind == kCollSyncwarp) {
    if (c.mask == warp_lanes(b, warp)) ++b.warp_gen[warp];  // orders memory for the whole warp
  } else if (kind == kCollWmmaMma) {
    // Gather A [m, k], B [k, n], C [m, n] from the lanes, D = A·B + C.
    const int m = c.size / 10000, n = c.size / 100 % 100, k = c.size % 100;  // see wmma_mma
    std::vector<float> A(m * k), B(k * n), C(m * n);
    const int na = m * k / 32, nb = k * n / 32, nc = m * n / 32;
    for (int l = 0; l < 32; ++l) {
      int r, col;
      for (int t = 0; t < na; ++t) {
        element_of(kUseA, m, k, l, t, r, col);
        A[r * k + col] = lanes[l]->frag_a[t];
      }
      for (int t = 0; t < nb; ++t) {
        element_of(kUseB, k, n, l, t, r, col);
        B[r * n + col] = lanes[l]->frag_b[t];
      }
      for (int t = 0; t < nc; ++t) {
        element_of(kUseC, m, n, l, t, r, col);
        C[r * n + col] = lanes[l]->frag_c[t];
      }
    }
    auto tf32 = [](float v) {  // the tensor cores read 10 mantissa bits
      uint32_t u;
      std::memcpy(&u, &v, 4);
      u &= 0xffffe000u;
      std::memcpy(&v, &u, 4);
      return v;
    };
    std::vector<float> D(m * n);
    for (int i = 0; i < m; ++i) {
      for (int j = 0; j < n; ++j) {
        double acc = C[i * n + j];
        for (int q = 0; q < k; ++q) acc += static_cast<double>(tf32(A[i * k + q])) * tf32(B[q * n + j]);
        D[i * n + j] = static_cast<float>(acc);
      }
    }
    for (int l = 0; l < 32; ++l) {
      int r, col;
      for (int t = 0; t < nc; ++t) {
        element_of(kUseC, m, n, l, t, r, col);
        lanes[l]->frag_d[t] = D[r * n + col];
      }
    }
  }
  for (int l = 0; l < 32; ++l) {
    if (c.mask >> l & 1u) make_ready(lanes[l]);
  }
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
  reset_shared();
  g_dynamic_shared_bytes = s.dynamic_shared;
  g_dynamic_shared = nullptr;
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

}  // namespace

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

void syncthreads(const std::source_location& where) { syncthreads_reduce(-1, 0, where); }

int syncthreads_reduce(int kind, int predicate, const std::source_location& where) {
  Block& b = *g_blk;
  Fiber* f = g_cur;
  if (!f) fault("__syncthreads called outside a kernel");
  if (b.exited > 0) {
    fault("__syncthreads at " + where_str(where) + " is reached after " + std::to_string(b.exited) +
          " thread(s) of the block exited: every thread of the block must reach it");
  }
  if (b.barrier_arrived == 0) {
    b.barrier_where = where;
    b.barrier_reduce = kind;
    b.barrier_acc = kind == 1 ? 1 : 0;
  } else if (!same_site(b.barrier_where, where) || b.barrier_reduce != kind) {
    fault("divergent __syncthreads: this thread waits at " + where_str(where) + ", others at " +
          where_str(b.barrier_where));
  }
  if (kind == 0) b.barrier_acc += predicate != 0;
  if (kind == 1) b.barrier_acc = b.barrier_acc && predicate;
  if (kind == 2) b.barrier_acc = b.barrier_acc || predicate;
  block_on(f, WaitKind::Barrier, where);
  if (++b.barrier_arrived == b.nthreads) {
    b.barrier_arrived = 0;
    ++b.epoch;
    const long long acc = b.barrier_acc;
    for (Fiber* t : b.fibers) {
      t->out_bits = static_cast<uint64_t>(acc);
      make_ready(t);
    }
  }
  schedule();
  return static_cast<int>(f->out_bits);
}

void syncwarp(unsigned mask, const std::source_location& where) {
  Fiber* f = g_cur;
  if (!f) fault("__syncwarp called outside a kernel");
  arrive(f, kCollSyncwarp, mask, where, 0, 32);
}

uint64_t shuffle(ShuffleKind kind, unsigned mask, uint64_t bits, int size, int lane_arg, int width,
                 const std::source_location& where) {
  Fiber* f = g_cur;
  if (!f) fault("a shuffle called outside a kernel");
  if (width < 1 || width > 32 || (width & (width - 1))) {
    fail(where, "%s with width %d: the width must be a power of two in [1, 32]", collective_name(kCollShuffle + kind),
         width);
  }
  f->in_bits = bits;
  f->lane_arg = lane_arg;
  arrive(f, kCollShuffle + kind, mask, where, size, width);
  return f->out_bits;
}

unsigned vote(VoteKind kind, unsigned mask, int predicate, const std::source_location& where) {
  Fiber* f = g_cur;
  if (!f) fault("a vote called outside a kernel");
  f->in_bits = predicate != 0;
  arrive(f, kCollVote + kind, mask, where, 0, 32);
  return static_cast<unsigned>(f->out_bits);
}

unsigned active_mask() {
  Block& b = *g_blk;
  Fiber* f = g_cur;
  unsigned m = 0;
  for (int l = 0; l < 32 && 32 * f->warp + l < b.nthreads; ++l) {
    if (b.fibers[32 * f->warp + l]->status != Status::Exited) m |= 1u << l;
  }
  return m;
}

namespace {
template <typename U>
U atomic_apply(int op, U* p, U v, U compare) {
  const U old = *p;
  switch (op) {
    case kAtomicAdd: *p = old + v; break;
    case kAtomicSub: *p = old - v; break;
    case kAtomicExch: *p = v; break;
    case kAtomicMin: *p = std::min(old, v); break;
    case kAtomicMax: *p = std::max(old, v); break;
    case kAtomicMinS: *p = static_cast<U>(std::min(static_cast<int32_t>(old), static_cast<int32_t>(v))); break;
    case kAtomicMaxS: *p = static_cast<U>(std::max(static_cast<int32_t>(old), static_cast<int32_t>(v))); break;
    case kAtomicCas: *p = old == compare ? v : old; break;
    case kAtomicAnd: *p = old & v; break;
    case kAtomicOr: *p = old | v; break;
    case kAtomicXor: *p = old ^ v; break;
    case kAtomicInc: *p = old >= v ? 0 : old + 1; break;
    case kAtomicDec: *p = (old == 0 || old > v) ? v : old - 1; break;
  }
  return old;
}
}  // namespace

// Atomics run in one thread at a time, so a plain read-modify-write is atomic
// here; on shared memory they are not race-checked.
unsigned atomic_u32(int op, unsigned* p, unsigned v, unsigned compare) { return atomic_apply(op, p, v, compare); }
unsigned long long atomic_u64(int op, unsigned long long* p, unsigned long long v, unsigned long long compare) {
  return atomic_apply(op, p, v, compare);
}
float atomic_add_f32(float* p, float v) {
  const float old = *p;
  *p = old + v;
  return old;
}
double atomic_add_f64(double* p, double v) {
  const double old = *p;
  *p = old + v;
  return old;
}

void* SharedSite::allocate(size_t bytes, size_t align) {
  if (!g_cur) fault(std::string("__shared__ ") + name + " used outside a kernel");
  if (block_serial != g_blk->serial) {
    g_static_shared_bytes += bytes;
    if (g_static_shared_bytes > kSharedDefault) {
      fault("static __shared__ variables of more than 48 KiB in one block (" + std::to_string(g_static_shared_bytes) +
            " bytes with " + name + ")");
    }
    if (g_static_shared_bytes + g_dynamic_shared_bytes > shared_optin_bytes()) {
      fault("static and dynamic shared memory exceed the device's " + std::to_string(shared_optin_bytes()) +
            " bytes per block");
    }
    storage = allocate_shared(bytes, align, name, file, line, false);
    block_serial = g_blk->serial;
  }
  return storage;
}

void* dynamic_shared(size_t align, const char* name, const char* file, int line) {
  if (!g_cur) fault("extern __shared__ memory used outside a kernel");
  if (!g_dynamic_shared) {
    g_dynamic_shared = allocate_shared(g_dynamic_shared_bytes, std::max<size_t>(align, 128), name, file, line, true);
  }
  return g_dynamic_shared;
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

void element_of(int use, int rows, int cols, int lane, int t, int& row, int& col) {
  // A seeded permutation of the tile's elements over (lane, t), one per
  // fragment kind and shape.
  struct Key {
    int use, rows, cols;
    uint64_t seed;
    bool operator==(const Key& o) const {
      return use == o.use && rows == o.rows && cols == o.cols && seed == o.seed;
    }
  };
  struct Map {
    Key key;
    std::vector<int> perm;
  };
  static std::vector<Map> maps;
  const Key key{use, rows, cols, config().seed};
  const Map* map = nullptr;
  for (const Map& m : maps) {
    if (m.key == key) map = &m;
  }
  if (!map) {
    Map m{key, std::vector<int>(rows * cols)};
    for (int i = 0; i < rows * cols; ++i) m.perm[i] = i;
    Random r{key.seed * 1000003u + static_cast<uint64_t>(use * 131 + rows * 17 + cols)};
    for (int i = rows * cols - 1; i > 0; --i) std::swap(m.perm[i], m.perm[r.below(i + 1)]);
    maps.push_back(std::move(m));
    map = &maps.back();
  }
  const int per = rows * cols / 32;
  const int e = map->perm[lane * per + t];
  row = e / cols;
  col = e % cols;
}

void wmma_memory_collective(bool store, const void* ptr, unsigned ldm, int layout, int element_size,
                            const std::source_location& where) {
  Fiber* f = g_cur;
  if (!f) fault("a WMMA operation called outside a kernel");
  const int kind = store ? kCollWmmaStore : kCollWmmaLoad;
  if (reinterpret_cast<uintptr_t>(ptr) % 32 != 0) {
    fail(where, "%s: the pointer %p is not 256-bit (32-byte) aligned", collective_name(kind), ptr);
  }
  if ((ldm * element_size) % 16 != 0) {
    fail(where, "%s: ldm %u is not a multiple of 16 bytes (%d-byte elements)", collective_name(kind), ldm,
         element_size);
  }
  arrive(f, kind, 0xffffffffu, where, element_size, 32, ptr, ldm, layout);
}

void wmma_mma(int m, int n, int k, bool, int, int, float* d, const float* a, const float* b, const float* c,
              const std::source_location& where) {
  Fiber* f = g_cur;
  if (!f) fault("wmma::mma_sync called outside a kernel");
  f->frag_a = a;
  f->frag_b = b;
  f->frag_c = c;
  f->frag_d = d;
  // The shape travels as the collective's size, checked equal across the lanes.
  arrive(f, kCollWmmaMma, 0xffffffffu, where, m * 10000 + n * 100 + k, 32, nullptr, 0, 0);
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

cudaError_t func_set_attribute(const void* kernel, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || static_cast<size_t>(value) > shared_optin_bytes()) return g_last_error = cudaErrorInvalidValue;
    g_max_dynamic_shared[kernel] = value;
  }
  return cudaSuccess;
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

// ---------------------------------------------------------------------------
// The runtime API

using cudasim::detail::config;

cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidDevice; }
cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device != 0) return cudaErrorInvalidDevice;
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; break;
    case cudaDevAttrMaxBlockDimX: *value = 1024; break;
    case cudaDevAttrMaxGridDimX: *value = 0x7fffffff; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = 48 << 10; break;
    case cudaDevAttrWarpSize: *value = 32; break;
    case cudaDevAttrMultiProcessorCount: *value = config().sm_count; break;
    case cudaDevAttrComputeCapabilityMajor: *value = config().arch / 10; break;
    case cudaDevAttrComputeCapabilityMinor: *value = config().arch % 10; break;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor: *value = 233472; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = static_cast<int>(cudasim::detail::shared_optin_bytes()); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}
cudaError_t cudaGetLastError() {
  const cudaError_t e = cudasim::detail::g_last_error;
  cudasim::detail::g_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return cudasim::detail::g_last_error; }
const char* cudaGetErrorName(cudaError_t err) {
  switch (err) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}
const char* cudaGetErrorString(cudaError_t err) { return cudaGetErrorName(err); }
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) {
  std::memset(p, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) { return cudaMemsetAsync(p, value, bytes, nullptr); }
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t) {
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  return cudaMemcpyAsync(dst, src, bytes, kind, nullptr);
}
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

// ---------------------------------------------------------------------------
// The compiler's -fsanitize=thread hooks (race-checking build): shared-memory
// accesses go to the checker, everything else returns at once.

#if defined(CUDASIM_RACECHECK)
using cudasim::detail::access_shared;
using cudasim::detail::in_region;

#define CUDASIM_HOOK(NAME, N, WRITE)                                                                        \
  extern "C" void NAME(void* p) {                                                                          \
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);                                                    \
    if (in_region(a)) access_shared(a, N, WRITE, reinterpret_cast<uintptr_t>(__builtin_return_address(0))); \
  }
CUDASIM_HOOK(__tsan_read1, 1, false)
CUDASIM_HOOK(__tsan_read2, 2, false)
CUDASIM_HOOK(__tsan_read4, 4, false)
CUDASIM_HOOK(__tsan_read8, 8, false)
CUDASIM_HOOK(__tsan_read16, 16, false)
CUDASIM_HOOK(__tsan_write1, 1, true)
CUDASIM_HOOK(__tsan_write2, 2, true)
CUDASIM_HOOK(__tsan_write4, 4, true)
CUDASIM_HOOK(__tsan_write8, 8, true)
CUDASIM_HOOK(__tsan_write16, 16, true)
CUDASIM_HOOK(__tsan_unaligned_read2, 2, false)
CUDASIM_HOOK(__tsan_unaligned_read4, 4, false)
CUDASIM_HOOK(__tsan_unaligned_read8, 8, false)
CUDASIM_HOOK(__tsan_unaligned_read16, 16, false)
CUDASIM_HOOK(__tsan_unaligned_write2, 2, true)
CUDASIM_HOOK(__tsan_unaligned_write4, 4, true)
CUDASIM_HOOK(__tsan_unaligned_write8, 8, true)
CUDASIM_HOOK(__tsan_unaligned_write16, 16, true)
CUDASIM_HOOK(__tsan_volatile_read1, 1, false)
CUDASIM_HOOK(__tsan_volatile_read2, 2, false)
CUDASIM_HOOK(__tsan_volatile_read4, 4, false)
CUDASIM_HOOK(__tsan_volatile_read8, 8, false)
CUDASIM_HOOK(__tsan_volatile_write1, 1, true)
CUDASIM_HOOK(__tsan_volatile_write2, 2, true)
CUDASIM_HOOK(__tsan_volatile_write4, 4, true)
CUDASIM_HOOK(__tsan_volatile_write8, 8, true)
#undef CUDASIM_HOOK

extern "C" void __tsan_read_range(void* p, unsigned long n) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (in_region(a)) access_shared(a, n, false, reinterpret_cast<uintptr_t>(__builtin_return_address(0)));
}
extern "C" void __tsan_write_range(void* p, unsigned long n) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (in_region(a)) access_shared(a, n, true, reinterpret_cast<uintptr_t>(__builtin_return_address(0)));
}
extern "C" void __tsan_init() {}
extern "C" void __tsan_func_entry(void*) {}
extern "C" void __tsan_func_exit() {}
extern "C" void __tsan_vptr_read(void**) {}
extern "C" void __tsan_vptr_update(void**, void*) {}

// Atomic builtins in instrumented code (none in the kernels so far; the
// library's own headers may use some): performed as they are.
#define CUDASIM_ATOMICS(BITS, T)                                                                          \
  extern "C" T __tsan_atomic##BITS##_load(const volatile T* a, int) { return __atomic_load_n(a, __ATOMIC_SEQ_CST); } \
  extern "C" void __tsan_atomic##BITS##_store(volatile T* a, T v, int) { __atomic_store_n(a, v, __ATOMIC_SEQ_CST); } \
  extern "C" T __tsan_atomic##BITS##_exchange(volatile T* a, T v, int) {                                  \
    return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST);                                                   \
  }                                                                                                       \
  extern "C" T __tsan_atomic##BITS##_fetch_add(volatile T* a, T v, int) {                                 \
    return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST);                                                    \
  }                                                                                                       \
  extern "C" T __tsan_atomic##BITS##_fetch_sub(volatile T* a, T v, int) {                                 \
    return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST);                                                    \
  }                                                                                                       \
  extern "C" T __tsan_atomic##BITS##_fetch_and(volatile T* a, T v, int) {                                 \
    return __atomic_fetch_and(a, v, __ATOMIC_SEQ_CST);                                                    \
  }                                                                                                       \
  extern "C" T __tsan_atomic##BITS##_fetch_or(volatile T* a, T v, int) {                                  \
    return __atomic_fetch_or(a, v, __ATOMIC_SEQ_CST);                                                     \
  }                                                                                                       \
  extern "C" T __tsan_atomic##BITS##_fetch_xor(volatile T* a, T v, int) {                                 \
    return __atomic_fetch_xor(a, v, __ATOMIC_SEQ_CST);                                                    \
  }                                                                                                       \
  extern "C" int __tsan_atomic##BITS##_compare_exchange_strong(volatile T* a, T* c, T v, int, int) {      \
    return __atomic_compare_exchange_n(a, c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                \
  }                                                                                                       \
  extern "C" int __tsan_atomic##BITS##_compare_exchange_weak(volatile T* a, T* c, T v, int, int) {        \
    return __atomic_compare_exchange_n(a, c, v, true, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                 \
  }                                                                                                       \
  extern "C" T __tsan_atomic##BITS##_compare_exchange_val(volatile T* a, T c, T v, int, int) {            \
    __atomic_compare_exchange_n(a, &c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                      \
    return c;                                                                                             \
  }
CUDASIM_ATOMICS(8, unsigned char)
CUDASIM_ATOMICS(16, unsigned short)
CUDASIM_ATOMICS(32, unsigned int)
CUDASIM_ATOMICS(64, unsigned long long)
#undef CUDASIM_ATOMICS
extern "C" void __tsan_atomic_thread_fence(int) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
extern "C" void __tsan_atomic_signal_fence(int) {}
#endif
