// The CUDA runtime API of cudasim's one simulated device (see cuda_api.h),
// and the atomics of cudasim.h.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "runtime.h"

namespace cudasim {
namespace detail {

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

cudaError_t func_set_attribute(const void* kernel, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || static_cast<size_t>(value) > shared_optin_bytes()) return g_last_error = cudaErrorInvalidValue;
    g_max_dynamic_shared[kernel] = value;
  }
  return cudaSuccess;
}

}  // namespace detail
}  // namespace cudasim

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
