// The CUDA kernel of multistep_update (csrc/scorekern/multistep_update.h),
// one thread per group of four columns like noisy_update's: reads x, score
// and score2, writes x' (16 bytes per float32 element; 20 with the mean or a
// noise tensor).
#include "../scorekern/multistep_update.h"
#include "common.cuh"

namespace scorekern {
namespace cuda {
namespace {

template <typename O>
struct MultistepCoefs {
  RowCoef<O> a, b, b2, c;
};

template <typename T, bool kVec>
__global__ void multistep_update_kernel(const T* x, const T* __restrict__ score, const T* __restrict__ score2,
                                        const T* __restrict__ noise, T* out, T* __restrict__ mean, int64_t rows,
                                        int64_t cols, int64_t groups_per_row, MultistepCoefs<opmath_t<T>> coefs,
                                        NoiseSource src, bool zero_noise) {
  using O = opmath_t<T>;
  src = resolved(src);
  for_each_group(rows, cols, groups_per_row, [&](const GroupPos& at, int64_t base, int n) {
    O xv[4], sv[4], s2v[4], z[4];
    load4<kVec>(x + base, n, xv);
    load4<kVec>(score + base, n, sv);
    load4<kVec>(score2 + base, n, s2v);
    group_normals<kVec>(noise, base, n, zero_noise, src, at, z);  // none drawn when c = 0 (an ODE step)
    const O a = coefs.a.at(at.row), b = coefs.b.at(at.row), b2 = coefs.b2.at(at.row), c = coefs.c.at(at.row);
    O m[4], r[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      m[j] = multistep_mean(a, xv[j], b, sv[j], b2, s2v[j]);
      r[j] = update_noisy(m[j], c, z[j]);
    }
    if (mean) store4<kVec>(mean + base, n, m);
    store4<kVec>(out + base, n, r);  // out may be x (not __restrict__): read before written
  });
}

template <typename T>
cudaError_t multistep_update_typed(const MultistepUpdateArgs& args, cudaStream_t stream) {
  using O = opmath_t<T>;
  const UpdateData& d = args.data;
  if (d.rows == 0 || d.cols == 0) return cudaSuccess;
  const T* x = static_cast<const T*>(d.x);
  const T* s = static_cast<const T*>(d.score);
  const T* s2 = static_cast<const T*>(args.score2);
  const T* z = static_cast<const T*>(d.noise.tensor);
  T* out = static_cast<T*>(d.out);
  T* mean = static_cast<T*>(d.mean);
  const int64_t groups_per_row = (d.cols + 3) / 4;
  const int64_t groups = d.rows * groups_per_row;
  const MultistepCoefs<O> coefs{typed<O>(args.a), typed<O>(args.b), typed<O>(args.b2), typed<O>(args.c)};
  const bool vec = d.cols % 4 == 0 && aligned4<T>(x) && aligned4<T>(s) && aligned4<T>(s2) && aligned4<T>(z) &&
                   aligned4<T>(out) && aligned4<T>(mean);
  const bool zero_noise = z == nullptr && zero_coef(args.c);
  auto launch = [&](auto kernel) {
    kernel<<<grid_for(groups), kThreads, 0, stream>>>(x, s, s2, z, out, mean, d.rows, d.cols, groups_per_row, coefs,
                                                      d.noise, zero_noise);
  };
  if (vec) {
    launch(multistep_update_kernel<T, true>);
  } else {
    launch(multistep_update_kernel<T, false>);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_multistep_update(const MultistepUpdateArgs& args, cudaStream_t stream) {
  return dispatch_dtype(args.data.dtype,
                        [&](auto tag) { return multistep_update_typed<decltype(tag)>(args, stream); });
}

}  // namespace cuda
}  // namespace scorekern
