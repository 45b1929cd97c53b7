// The CUDA kernel of masked_update (csrc/scorekern/masked_update.h), one
// thread per group of four columns like noisy_update's: reads x, score, y
// and mask, writes x' (20 bytes per float32 element; 24 with the mean).
#include "../scorekern/masked_update.h"
#include "common.cuh"

namespace scorekern {
namespace cuda {
namespace {

template <typename O>
struct MaskedCoefs {
  RowCoef<O> a, b, c, mu, sigma;
};

template <typename T, bool kVec>
__global__ void masked_update_kernel(const T* x, const T* __restrict__ score, const T* __restrict__ y,
                                     const T* __restrict__ mask, const T* __restrict__ noise,
                                     const T* __restrict__ observed_noise, T* out, T* __restrict__ mean,
                                     int64_t rows, int64_t cols, int64_t groups_per_row,
                                     MaskedCoefs<opmath_t<T>> coefs, NoiseSource src, NoiseSource observed_src,
                                     bool zero_noise, bool zero_observed_noise) {
  using O = opmath_t<T>;
  src = resolved(src);
  observed_src = resolved(observed_src);
  for_each_group(rows, cols, groups_per_row, [&](const GroupPos& at, int64_t base, int n) {
    O xv[4], sv[4], yv[4], mv[4], z1[4], z2[4];
    load4<kVec>(x + base, n, xv);
    load4<kVec>(score + base, n, sv);
    load4<kVec>(y + base, n, yv);
    load4<kVec>(mask + base, n, mv);
    group_normals<kVec>(noise, base, n, zero_noise, src, at, z2);
    group_normals<kVec>(observed_noise, base, n, zero_observed_noise, observed_src, at, z1);
    const O a = coefs.a.at(at.row), b = coefs.b.at(at.row), c = coefs.c.at(at.row);
    const O mu_r = coefs.mu.at(at.row), sigma_r = coefs.sigma.at(at.row);
    O m[4], r[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const O kept = update_mean(a, xv[j], b, sv[j]);
      const O data = mu_r * yv[j];
      m[j] = masked_blend(mv[j], data, kept);
      r[j] = masked_blend(mv[j], update_noisy(data, sigma_r, z1[j]), update_noisy(kept, c, z2[j]));
    }
    if (mean) store4<kVec>(mean + base, n, m);
    store4<kVec>(out + base, n, r);  // out may be x (not __restrict__): read before written
  });
}

template <typename T>
cudaError_t masked_update_typed(const MaskedUpdateArgs& args, cudaStream_t stream) {
  using O = opmath_t<T>;
  const UpdateData& d = args.data;
  if (d.rows == 0 || d.cols == 0) return cudaSuccess;
  const T* x = static_cast<const T*>(d.x);
  const T* s = static_cast<const T*>(d.score);
  const T* y = static_cast<const T*>(args.y);
  const T* mask = static_cast<const T*>(args.mask);
  const T* z2 = static_cast<const T*>(d.noise.tensor);
  const T* z1 = static_cast<const T*>(args.observed.tensor);
  T* out = static_cast<T*>(d.out);
  T* mean = static_cast<T*>(d.mean);
  const int64_t groups_per_row = (d.cols + 3) / 4;
  const int64_t groups = d.rows * groups_per_row;
  const bool zero2 = z2 == nullptr && zero_coef(args.c);
  const bool zero1 = z1 == nullptr && zero_coef(args.sigma);
  const MaskedCoefs<O> coefs{typed<O>(args.a), typed<O>(args.b), typed<O>(args.c), typed<O>(args.mu),
                             typed<O>(args.sigma)};
  const bool vec = d.cols % 4 == 0 && aligned4<T>(x) && aligned4<T>(s) && aligned4<T>(y) &&
                   aligned4<T>(mask) && aligned4<T>(z1) && aligned4<T>(z2) && aligned4<T>(out) &&
                   aligned4<T>(mean);
  auto launch = [&](auto kernel) {
    kernel<<<grid_for(groups), kThreads, 0, stream>>>(x, s, y, mask, z2, z1, out, mean, d.rows, d.cols,
                                                      groups_per_row, coefs, d.noise, args.observed, zero2, zero1);
  };
  if (vec) {
    launch(masked_update_kernel<T, true>);
  } else {
    launch(masked_update_kernel<T, false>);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_masked_update(const MaskedUpdateArgs& args, cudaStream_t stream) {
  return dispatch_dtype(args.data.dtype, [&](auto tag) { return masked_update_typed<decltype(tag)>(args, stream); });
}

}  // namespace cuda
}  // namespace scorekern
