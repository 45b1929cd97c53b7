// What a fault says (see runtime.h): the names of threads and blocks, the
// launch it happened in, and the state of a deadlocked block; a fault inside
// a kernel ends the launch (its message raised by launch), outside one it
// throws at once.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "runtime.h"

namespace cudasim {
namespace detail {

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
// Faults

[[noreturn]] void fault(const std::string& what, bool with_thread) {
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

}  // namespace detail
}  // namespace cudasim
