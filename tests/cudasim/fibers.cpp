// cudasim's fibers (see runtime.h): one per thread of the running block, each
// with its own stack (a guard page below it), switched without a system call.
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "runtime.h"

namespace cudasim {
namespace detail {

#if defined(__x86_64__)
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
void make_context(Context& c, char* stack, size_t bytes, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = bytes;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}
void swap_context(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

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

}  // namespace detail
}  // namespace cudasim
