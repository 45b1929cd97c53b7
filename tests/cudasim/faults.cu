// Kernels with deliberate faults (and a few correct ones beside them), built
// into the simulator's library only: tests/test_cuda_sim.py runs each case
// through torch.ops.cudasim.fault_case and checks that the simulator names
// the fault (or, for the correct ones, that it stays quiet).
#include <cuda_runtime.h>
#include <mma.h>

#include <cstring>
#include <stdexcept>
#include <string>

namespace {

// Each thread writes its slot again, then reads its neighbour's: a race
// without the barrier between (whichever of the two comes first).
template <bool kBarrier>
__global__ void neighbour_kernel(float* out) {
  __shared__ float s[64];
  const int t = threadIdx.x;
  s[t] = 0.f;
  __syncthreads();
  s[t] = static_cast<float>(t);
  if (kBarrier) __syncthreads();
  out[t] = s[(t + 1) % blockDim.x];
}

// Lanes exchange through shared memory with __syncwarp between: ordered
// within a warp (kOtherWarp false), a race across warps (true).
template <bool kOtherWarp>
__global__ void syncwarp_kernel(float* out) {
  __shared__ float s[64];
  const int t = threadIdx.x;
  s[t] = 0.f;
  __syncthreads();
  s[t] = static_cast<float>(t);
  __syncwarp();
  out[t] = s[kOtherWarp ? (t + 32) % 64 : (t ^ 1)];
}

// Thread 0 reads what nobody wrote.
__global__ void uninitialised_kernel(float* out) {
  __shared__ float s[32];
  if (threadIdx.x == 0) out[0] = s[5];
}

// A read past the end of a shared array.
__global__ void out_of_bounds_kernel(float* out) {
  __shared__ float s[32];
  s[threadIdx.x] = 1.f;
  __syncthreads();
  if (threadIdx.x == 0) out[0] = s[32 + 8];
}

// Half the block waits at a barrier, the other half leaves.
__global__ void divergent_barrier_kernel(float* out) {
  if (threadIdx.x < 16) {
    __syncthreads();
    out[threadIdx.x] = 1.f;
  }
}

// Threads leave before the others reach the barrier.
__global__ void exit_before_barrier_kernel(float* out) {
  if (threadIdx.x >= 32) return;
  __syncthreads();
  out[threadIdx.x] = 1.f;
}

// A full-mask shuffle reached by half the warp.
__global__ void half_warp_shuffle_kernel(float* out) {
  float v = static_cast<float>(threadIdx.x);
  if (threadIdx.x % 32 < 16) v += __shfl_xor_sync(0xffffffffu, v, 1);
  out[threadIdx.x] = v;
}

// Even and odd lanes shuffle at two different places.
__global__ void split_shuffle_kernel(float* out) {
  float v = static_cast<float>(threadIdx.x);
  if (threadIdx.x % 2 == 0) {
    v = __shfl_down_sync(0xffffffffu, v, 1);
  } else {
    v = __shfl_down_sync(0xffffffffu, v, 1);
  }
  out[threadIdx.x] = v;
}

// Lanes 0-15 shuffle among themselves but read lane 20.
__global__ void outside_mask_kernel(float* out) {
  float v = static_cast<float>(threadIdx.x);
  if (threadIdx.x < 16) v = __shfl_sync(0x0000ffffu, v, 20);
  out[threadIdx.x] = v;
}

// Lane 5 waits at a barrier, the rest of its warp at a shuffle for lane 5.
__global__ void deadlock_kernel(float* out) {
  float v = static_cast<float>(threadIdx.x);
  if (threadIdx.x == 5) __syncthreads();
  else v = __shfl_xor_sync(0xffffffffu, v, 1);
  out[threadIdx.x] = v;
}

// Correct: a butterfly sum over the warp, and partial-width shuffles.
__global__ void warp_sum_kernel(float* out) {
  float v = static_cast<float>(threadIdx.x % 32);
#pragma unroll
  for (int d = 16; d > 0; d /= 2) v += __shfl_xor_sync(0xffffffffu, v, d);
  const float up = __shfl_up_sync(0xffffffffu, static_cast<float>(threadIdx.x), 3, 8);
  const float down = __shfl_down_sync(0xffffffffu, static_cast<float>(threadIdx.x), 3, 8);
  out[3 * threadIdx.x] = v;
  out[3 * threadIdx.x + 1] = up;
  out[3 * threadIdx.x + 2] = down;
}

__global__ void plain_kernel(float* out) { out[threadIdx.x] = 1.f; }

// Writes past the end of a 4096-float buffer (run under AddressSanitizer only).
__global__ void global_out_of_bounds_kernel(float* out) { out[4096 + threadIdx.x] = 1.f; }

__global__ void __launch_bounds__(128) bounded_kernel(float* out) { out[threadIdx.x] = 1.f; }

template <int kTag>  // one kernel per case: a kernel's attributes last for the process
__global__ void dynamic_shared_kernel(float* out) {
  extern __shared__ float dyn[];
  dyn[threadIdx.x] = 2.f;
  __syncthreads();
  out[threadIdx.x] = dyn[(threadIdx.x + 1) % blockDim.x];
}

// The element each lane holds of a 16×8 TF32 tile, written out as
// out[lane·4 + t] = x[t]: code that assumes a lane layout reads the wrong
// elements. kMisaligned loads from a pointer 4 bytes off.
template <bool kMisaligned>
__global__ void fragment_kernel(const float* tile, float* out) {
  namespace wmma = nvcuda::wmma;
  __shared__ __align__(32) float s[16 * 8 + 8];
  for (int i = threadIdx.x; i < 16 * 8 + 8; i += 32) s[i] = i < 16 * 8 ? tile[i] : 0.f;
  __syncwarp();
  wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> a;
  wmma::load_matrix_sync(a, s + (kMisaligned ? 1 : 0), 8);
  for (int t = 0; t < a.num_elements; ++t) out[threadIdx.x * a.num_elements + t] = a.x[t];
}

}  // namespace

// Runs case `name` on `out` (at least 512 floats) and `in` (at least 512).
void cudasim_fault_case(const char* name, float* out, const float* in) {
  const std::string n = name;
  if (n == "race") neighbour_kernel<false><<<2, 64>>>(out);
  else if (n == "barrier") neighbour_kernel<true><<<2, 64>>>(out);
  else if (n == "syncwarp_lanes") syncwarp_kernel<false><<<1, 64>>>(out);
  else if (n == "syncwarp_warps") syncwarp_kernel<true><<<1, 64>>>(out);
  else if (n == "uninitialised") uninitialised_kernel<<<1, 32>>>(out);
  else if (n == "out_of_bounds") out_of_bounds_kernel<<<1, 32>>>(out);
  else if (n == "divergent_barrier") divergent_barrier_kernel<<<1, 64>>>(out);
  else if (n == "exit_before_barrier") exit_before_barrier_kernel<<<1, 64>>>(out);
  else if (n == "half_warp_shuffle") half_warp_shuffle_kernel<<<1, 32>>>(out);
  else if (n == "split_shuffle") split_shuffle_kernel<<<1, 32>>>(out);
  else if (n == "outside_mask") outside_mask_kernel<<<1, 32>>>(out);
  else if (n == "deadlock") deadlock_kernel<<<1, 32>>>(out);
  else if (n == "warp_sum") warp_sum_kernel<<<1, 64>>>(out);
  else if (n == "too_many_threads") plain_kernel<<<1, 1025>>>(out);
  else if (n == "zero_grid") plain_kernel<<<0, 32>>>(out);
  else if (n == "global_out_of_bounds") global_out_of_bounds_kernel<<<1, 32>>>(out);
  else if (n == "launch_bounds") bounded_kernel<<<1, 256>>>(out);
  else if (n == "dynamic_shared") dynamic_shared_kernel<0><<<1, 64, 64 * sizeof(float)>>>(out);
  else if (n == "dynamic_shared_over_48k") dynamic_shared_kernel<1><<<1, 64, 64 << 10>>>(out);
  else if (n == "dynamic_shared_attribute") {
    cudaFuncSetAttribute(dynamic_shared_kernel<2>, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 << 10);
    dynamic_shared_kernel<2><<<1, 64, 64 << 10>>>(out);
  } else if (n == "fragment") fragment_kernel<false><<<1, 32>>>(in, out);
  else if (n == "fragment_misaligned") fragment_kernel<true><<<1, 32>>>(in, out);
  else throw std::invalid_argument("cudasim.fault_case: no case " + n);
}
