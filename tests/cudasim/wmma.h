// WMMA (the toolkit's mma.h) in the CUDA simulator, included by
// tests/cudasim/include/mma.h: fragments are per-thread arrays; load, store
// and mma are warp collectives. Which element of a tile a lane holds is a
// seeded permutation (element_of), so code that assumes a layout the API
// does not document fails.
#pragma once

#include "cudasim.h"

namespace nvcuda {
namespace wmma {

struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
namespace precision {
struct tf32 {};
}  // namespace precision

inline float __float_to_tf32(float f) {
  // cvt.rna.tf32.f32: round to nearest, ties away from zero, to 10 mantissa bits.
  uint32_t u = ::cudasim::detail::to_bits(f) & 0xffffffffu;
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  return ::cudasim::detail::from_bits<float>(u);
}

}  // namespace wmma
}  // namespace nvcuda

namespace cudasim {
namespace detail {

template <typename T>
struct WmmaStorage {
  using type = T;
};
template <>
struct WmmaStorage<nvcuda::wmma::precision::tf32> {
  using type = float;
};

// Rows and columns of the tile a fragment holds.
template <typename Use, int M, int N, int K>
struct WmmaShape;
template <int M, int N, int K>
struct WmmaShape<nvcuda::wmma::matrix_a, M, N, K> {
  static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct WmmaShape<nvcuda::wmma::matrix_b, M, N, K> {
  static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct WmmaShape<nvcuda::wmma::accumulator, M, N, K> {
  static constexpr int rows = M, cols = N;
};

enum WmmaUse { kUseA, kUseB, kUseC };
// The (row, column) of element t of `lane`'s fragment.
void element_of(int use, int rows, int cols, int lane, int t, int& row, int& col);
// A collective of the warp over load_matrix_sync / store_matrix_sync: checks
// that every lane passes the same pointer and stride, and the alignment.
void wmma_memory_collective(bool store, const void* ptr, unsigned ldm, int layout, int element_size,
                            const std::source_location& where);
// mma_sync: the warp's fragments gathered, multiplied and handed back.
// `tf32` truncates A and B to TF32 as the tensor cores read them.
void wmma_mma(int m, int n, int k, bool tf32, int a_layout, int b_layout, float* d, const float* a, const float* b,
              const float* c, const std::source_location& where);

template <typename L>
constexpr int layout_code() {
  return std::is_same_v<L, nvcuda::wmma::col_major> ? 1 : 0;
}

}  // namespace detail
}  // namespace cudasim

namespace nvcuda {
namespace wmma {

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  using element_type = typename ::cudasim::detail::WmmaStorage<T>::type;
  using shape = ::cudasim::detail::WmmaShape<Use, M, N, K>;
  static constexpr int num_elements = shape::rows * shape::cols / 32;
  static constexpr int use = std::is_same_v<Use, matrix_a> ? ::cudasim::detail::kUseA
                             : std::is_same_v<Use, matrix_b> ? ::cudasim::detail::kUseB
                                                             : ::cudasim::detail::kUseC;
  element_type x[num_elements];
};

template <typename Use, int M, int N, int K, typename T, typename Layout, typename V>
inline void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, const V& v) {
  for (int t = 0; t < f.num_elements; ++t) f.x[t] = static_cast<typename fragment<Use, M, N, K, T, Layout>::element_type>(v);
}

namespace detail_ {
inline int lane_now() { return static_cast<int>(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) % 32; }

// fn(t, row, column) for each element t of the calling lane's fragment F.
template <typename F, typename Fn>
inline void for_each_element(Fn&& fn) {
  const int lane = lane_now();
  for (int t = 0; t < F::num_elements; ++t) {
    int r, c;
    ::cudasim::detail::element_of(F::use, F::shape::rows, F::shape::cols, lane, t, r, c);
    fn(t, r, c);
  }
}
}  // namespace detail_

// matrix_a / matrix_b: the layout is the fragment's.
template <typename Use, int M, int N, int K, typename T, typename Layout, typename P>
inline void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const P* ptr, unsigned ldm,
                             std::source_location where = std::source_location::current()) {
  using F = fragment<Use, M, N, K, T, Layout>;
  static_assert(!std::is_void_v<Layout>, "load_matrix_sync of an accumulator needs a layout_t");
  const int layout = ::cudasim::detail::layout_code<Layout>();
  ::cudasim::detail::wmma_memory_collective(false, ptr, ldm, layout, sizeof(P), where);
  detail_::for_each_element<F>([&](int t, int r, int c) {
    f.x[t] = static_cast<typename F::element_type>(layout ? ptr[c * ldm + r] : ptr[r * ldm + c]);
  });
}

// The accumulator, with the layout in memory.
template <int M, int N, int K, typename T, typename P>
inline void load_matrix_sync(fragment<accumulator, M, N, K, T, void>& f, const P* ptr, unsigned ldm, layout_t layout,
                             std::source_location where = std::source_location::current()) {
  using F = fragment<accumulator, M, N, K, T, void>;
  ::cudasim::detail::wmma_memory_collective(false, ptr, ldm, layout, sizeof(P), where);
  detail_::for_each_element<F>([&](int t, int r, int c) {
    f.x[t] = static_cast<typename F::element_type>(layout == mem_col_major ? ptr[c * ldm + r] : ptr[r * ldm + c]);
  });
}

template <int M, int N, int K, typename T, typename P>
inline void store_matrix_sync(P* ptr, const fragment<accumulator, M, N, K, T, void>& f, unsigned ldm, layout_t layout,
                              std::source_location where = std::source_location::current()) {
  using F = fragment<accumulator, M, N, K, T, void>;
  ::cudasim::detail::wmma_memory_collective(true, ptr, ldm, layout, sizeof(P), where);
  detail_::for_each_element<F>([&](int t, int r, int c) {
    (layout == mem_col_major ? ptr[c * ldm + r] : ptr[r * ldm + c]) = static_cast<P>(f.x[t]);
  });
}

template <int M, int N, int K, typename TA, typename LA, typename TB, typename LB, typename TC>
inline void mma_sync(fragment<accumulator, M, N, K, TC, void>& d, const fragment<matrix_a, M, N, K, TA, LA>& a,
                     const fragment<matrix_b, M, N, K, TB, LB>& b, const fragment<accumulator, M, N, K, TC, void>& c,
                     std::source_location where = std::source_location::current()) {
  static_assert(std::is_same_v<TA, precision::tf32> && std::is_same_v<TB, precision::tf32> &&
                    std::is_same_v<TC, float>,
                "cudasim models the TF32 fragments (float accumulators) only");
  ::cudasim::detail::wmma_mma(M, N, K, true, ::cudasim::detail::layout_code<LA>(), ::cudasim::detail::layout_code<LB>(),
                              d.x, a.x, b.x, c.x, where);
}

}  // namespace wmma
}  // namespace nvcuda
