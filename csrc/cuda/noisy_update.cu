// The CUDA kernel of noisy_update (csrc/scorekern/noisy_update.h). One thread
// per group of four columns of one row (one Philox call); per-row
// coefficients are read per thread (cached, shared by a row). Bytes per
// element (float32): x and the score read, x' written (12; 16 with the mean
// or a noise tensor). Memory bandwidth sets the pace on a GPU; the Philox
// rounds and Box–Muller are register arithmetic.
#include "../scorekern/noisy_update.h"
#include "common.cuh"

namespace scorekern {
namespace cuda {
namespace {

template <typename O>
struct Coefs {
  RowCoef<O> a, b, c;
};

template <typename T, bool kVec>
__global__ void noisy_update_kernel(const T* x, const T* __restrict__ score,
                                    const T* __restrict__ noise, T* out, T* __restrict__ mean,
                                    int64_t rows, int64_t cols, int64_t groups_per_row,
                                    Coefs<opmath_t<T>> coefs, NoiseSource src, bool zero_noise) {
  using O = opmath_t<T>;
  src = resolved(src);
  for_each_group(rows, cols, groups_per_row, [&](const GroupPos& at, int64_t base, int n) {
    O xv[4], sv[4], z[4];
    load4<kVec>(x + base, n, xv);
    load4<kVec>(score + base, n, sv);
    group_normals<kVec>(noise, base, n, zero_noise, src, at, z);  // none drawn when c = 0 (an ODE step)
    const O a = coefs.a.at(at.row), b = coefs.b.at(at.row), c = coefs.c.at(at.row);
    O m[4], r[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      m[j] = update_mean(a, xv[j], b, sv[j]);
      r[j] = update_noisy(m[j], c, z[j]);
    }
    if (mean) store4<kVec>(mean + base, n, m);
    store4<kVec>(out + base, n, r);  // out may be x (not __restrict__): read before written
  });
}

template <typename T>
cudaError_t noisy_update_typed(const NoisyUpdateArgs& args, cudaStream_t stream) {
  using O = opmath_t<T>;
  const UpdateData& d = args.data;
  if (d.rows == 0 || d.cols == 0) return cudaSuccess;
  const T* x = static_cast<const T*>(d.x);
  const T* s = static_cast<const T*>(d.score);
  const T* z = static_cast<const T*>(d.noise.tensor);
  T* out = static_cast<T*>(d.out);
  T* mean = static_cast<T*>(d.mean);
  const int64_t groups_per_row = (d.cols + 3) / 4;
  const int64_t groups = d.rows * groups_per_row;
  const Coefs<O> coefs{typed<O>(args.a), typed<O>(args.b), typed<O>(args.c)};
  const bool vec = d.cols % 4 == 0 && aligned4<T>(x) && aligned4<T>(s) && aligned4<T>(z) &&
                   aligned4<T>(out) && aligned4<T>(mean);
  const bool zero_noise = z == nullptr && zero_coef(args.c);
  if (vec) {
    noisy_update_kernel<T, true><<<grid_for(groups), kThreads, 0, stream>>>(
        x, s, z, out, mean, d.rows, d.cols, groups_per_row, coefs, d.noise, zero_noise);
  } else {
    noisy_update_kernel<T, false><<<grid_for(groups), kThreads, 0, stream>>>(
        x, s, z, out, mean, d.rows, d.cols, groups_per_row, coefs, d.noise, zero_noise);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_noisy_update(const NoisyUpdateArgs& args, cudaStream_t stream) {
  return dispatch_dtype(args.data.dtype, [&](auto tag) { return noisy_update_typed<decltype(tag)>(args, stream); });
}

}  // namespace cuda
}  // namespace scorekern
