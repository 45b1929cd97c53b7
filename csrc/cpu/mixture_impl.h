// The mixture-score loops (../scorekern/mixture.h), included by
// kernels_impl.h inside scorekern::cpu::<isa>: compiled once per instruction
// set like every other CPU loop.
//
// Two walks over the centres, both one query at a time in tiles of centres:
// - the exact form for small d (≤ kMixtureDirectMaxDim): centres transposed
//   to [d, N_pad], squared distances taken coordinate by coordinate, the
//   accumulator summing p_j (μ_j − x) (no cancellation, however far x is
//   from the origin);
// - the expanded form for larger d: the glue computes a tile of x·μ with a
//   matrix product; mixture_tile_softmax turns it into p in place and
//   mixture_tile_backward into the backward's weights.
// Each loop is a plain pass over a tile held in L1 (logits, then the
// exponentials, then the sums in kLanes independent accumulators), which gcc
// vectorises.
#pragma once

// The lane vectors below never cross a function boundary (all inlined), so
// gcc's note about their calling convention does not apply.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace detail_mixture {

constexpr int kLanes = 8;
constexpr int64_t kTileCenters = 512;

// kLanes values as one GCC vector (two AVX2 registers for float): the
// maximum and the sums below stay vector operations, which the compiler
// would not otherwise see through a select or a float reduction.
template <typename O>
struct LaneVec {
  typedef O type __attribute__((vector_size(kLanes * sizeof(O))));
};
template <typename O>
using Lanes = typename LaneVec<O>::type;

template <typename O>
SK_INLINE Lanes<O> load_lanes(const O* p) {
  Lanes<O> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename O>
SK_INLINE O horizontal_sum(Lanes<O> v) {
  O s = 0;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}

template <typename O>
SK_INLINE O lane_max(const O* __restrict v, int64_t n) {
  Lanes<O> m = load_lanes(v);
  for (int64_t j = kLanes; j < n; j += kLanes) {
    const Lanes<O> x = load_lanes(v + j);
    m = x > m ? x : m;
  }
  O r = m[0];
  for (int i = 1; i < kLanes; ++i) r = m[i] > r ? m[i] : r;
  return r;
}

template <typename O>
SK_INLINE void exp_shifted(O* __restrict v, int64_t n, O shift) {
  for (int64_t j = 0; j < n; ++j) v[j] = exp_nonpositive(v[j] - shift);
}

template <typename O>
SK_INLINE O lane_sum(const O* __restrict v, int64_t n) {
  Lanes<O> s = {};
  for (int64_t j = 0; j < n; j += kLanes) s += load_lanes(v + j);
  return horizontal_sum<O>(s);
}

// Logits of one query against centres [j0, j0 + n) in the transposed layout
// (n a multiple of kLanes; entries past N get −∞).
template <typename O, int D>
SK_INLINE void direct_logits(const O* __restrict ct, int64_t n_pad, const O* __restrict lw, int64_t N,
                             int64_t j0, int64_t n, const O* xq, O inv_h2, O* __restrict buf) {
  const int64_t valid = N - j0 < n ? N - j0 : n;
  for (int64_t j = 0; j < valid; ++j) {
    O dist = 0;
    for (int k = 0; k < D; ++k) {
      const O diff = ct[k * n_pad + j0 + j] - xq[k];
      dist += diff * diff;
    }
    buf[j] = mixture_logit(lw ? lw[j0 + j] : O(0), dist, inv_h2);
  }
  for (int64_t j = valid; j < n; ++j) buf[j] = -INFINITY;
}

template <typename O>
SK_INLINE O bandwidth_at(const MixtureArgs& a, int64_t q) {
  const O* h = static_cast<const O*>(a.h_values);
  return static_cast<O>(a.h_scale) * (h ? h[q * a.h_stride] : O(1));
}

template <typename O, int D>
void direct_forward(const MixtureArgs& a, const void* centers_t, int64_t n_pad, int64_t q0, int64_t q1) {
  const O* x = static_cast<const O*>(a.x);
  const O* ct = static_cast<const O*>(centers_t);
  const O* lw = static_cast<const O*>(a.log_weights);
  O* score = static_cast<O*>(a.score);
  O* lse = static_cast<O*>(a.lse);
  alignas(64) O buf[kTileCenters];
  for (int64_t q = q0; q < q1; ++q) {
    O xq[D];
    for (int k = 0; k < D; ++k) xq[k] = x[q * D + k];
    const O h = bandwidth_at<O>(a, q), inv_h2 = O(1) / (h * h);
    OnlineSoftmax<O> st;
    st.start();
    O acc[D] = {};
    for (int64_t j0 = 0; j0 < n_pad; j0 += kTileCenters) {
      const int64_t n = n_pad - j0 < kTileCenters ? n_pad - j0 : kTileCenters;
      direct_logits<O, D>(ct, n_pad, lw, a.N, j0, n, xq, inv_h2, buf);
      const O factor = st.rescale(lane_max(buf, n));
      if (st.m == -INFINITY) continue;  // every weight so far is zero
      exp_shifted(buf, n, st.m);
      st.l += lane_sum(buf, n);
      if (!score) continue;
      Lanes<O> lanes[D] = {};
      for (int64_t j = 0; j < n; j += kLanes) {
        const Lanes<O> p = load_lanes(buf + j);
        for (int k = 0; k < D; ++k) lanes[k] += p * (load_lanes(ct + k * n_pad + j0 + j) - xq[k]);
      }
      for (int k = 0; k < D; ++k) acc[k] = acc[k] * factor + horizontal_sum<O>(lanes[k]);
    }
    lse[q] = st.lse(O(0));
    if (score) {
      for (int k = 0; k < D; ++k) score[q * D + k] = acc[k] / st.l * inv_h2;
    }
  }
}

template <typename O, int D>
void direct_backward(const MixtureBackArgs& b, const void* centers_t, int64_t n_pad, int64_t q0, int64_t q1) {
  const MixtureArgs& a = b.fwd;
  const O* x = static_cast<const O*>(a.x);
  const O* ct = static_cast<const O*>(centers_t);
  const O* lw = static_cast<const O*>(a.log_weights);
  const O* score = static_cast<const O*>(a.score);
  const O* lse = static_cast<const O*>(a.lse);
  const O* grad = static_cast<const O*>(b.grad);
  O* gx = static_cast<O*>(b.grad_x);
  alignas(64) O buf[kTileCenters];
  for (int64_t q = q0; q < q1; ++q) {
    O xq[D], g[D], xm[D];  // xm = x − m = −h²·score: u_j = (μ_j − x) + xm
    const O h = bandwidth_at<O>(a, q), h2 = h * h, inv_h2 = O(1) / h2;
    for (int k = 0; k < D; ++k) {
      xq[k] = x[q * D + k];
      g[k] = grad[q * D + k];
      xm[k] = -h2 * score[q * D + k];
    }
    O acc[D] = {};
    for (int64_t j0 = 0; j0 < n_pad; j0 += kTileCenters) {
      const int64_t n = n_pad - j0 < kTileCenters ? n_pad - j0 : kTileCenters;
      direct_logits<O, D>(ct, n_pad, lw, a.N, j0, n, xq, inv_h2, buf);
      exp_shifted(buf, n, lse[q]);
      Lanes<O> lanes[D] = {};
      for (int64_t j = 0; j < n; j += kLanes) {
        Lanes<O> u[D], ug = {};
        for (int k = 0; k < D; ++k) {
          u[k] = load_lanes(ct + k * n_pad + j0 + j) - (xq[k] - xm[k]);
          ug += u[k] * g[k];
        }
        const Lanes<O> wug = load_lanes(buf + j) * ug;
        for (int k = 0; k < D; ++k) lanes[k] += wug * u[k];
      }
      for (int k = 0; k < D; ++k) acc[k] += horizontal_sum<O>(lanes[k]);
    }
    for (int k = 0; k < D; ++k) gx[q * D + k] = (acc[k] * inv_h2 - g[k]) * inv_h2;
  }
}

#define SK_MIXTURE_DIMS(FN, O, ...)        \
  switch (d) {                             \
    case 1: FN<O, 1>(__VA_ARGS__); break;  \
    case 2: FN<O, 2>(__VA_ARGS__); break;  \
    case 3: FN<O, 3>(__VA_ARGS__); break;  \
    case 4: FN<O, 4>(__VA_ARGS__); break;  \
    case 5: FN<O, 5>(__VA_ARGS__); break;  \
    case 6: FN<O, 6>(__VA_ARGS__); break;  \
    case 7: FN<O, 7>(__VA_ARGS__); break;  \
    case 8: FN<O, 8>(__VA_ARGS__); break;  \
    default: break;                        \
  }

// The expanded form on one tile: s[r, j] holds x_r·μ_j for rows r < rows and
// centres j < cols (row stride lds); becomes p[r, j] = e^(logit − m_r).
template <typename O>
void tile_softmax(const MixtureTile& t) {
  const O* hn = static_cast<const O*>(t.half_norm);
  const O* lw = static_cast<const O*>(t.log_weights);
  const O* inv_h2 = static_cast<const O*>(t.inv_h2);
  O* m = static_cast<O*>(t.m);
  O* l = static_cast<O*>(t.l);
  O* factor = static_cast<O*>(t.factor);
  const int64_t n = (t.cols + kLanes - 1) / kLanes * kLanes;  // s rows are padded to lds ≥ n
  for (int64_t r = 0; r < t.rows; ++r) {
    O* s = static_cast<O*>(t.s) + r * t.lds;
    const O ih = inv_h2[r];
    for (int64_t j = 0; j < t.cols; ++j) s[j] = mixture_logit_expanded(lw ? lw[j] : O(0), s[j] - hn[j], ih);
    for (int64_t j = t.cols; j < n; ++j) s[j] = -INFINITY;
    OnlineSoftmax<O> st{m[r], l[r]};
    factor[r] = st.rescale(lane_max(s, n));
    if (st.m != -INFINITY) {
      exp_shifted(s, n, st.m);
      st.l += lane_sum(s, n);
    } else {
      for (int64_t j = 0; j < n; ++j) s[j] = O(0);
    }
    m[r] = st.m;
    l[r] = st.l;
  }
}

// The backward on one tile: s holds x_r·μ_j and gs holds g_r·μ_j; gs becomes
// w_rj ((μ_j − m_r)·g_r) with w = e^(logit − lse_r), and psum[r] gains its row sum.
template <typename O>
void tile_backward(const MixtureTile& t) {
  const O* hn = static_cast<const O*>(t.half_norm);
  const O* lw = static_cast<const O*>(t.log_weights);
  const O* inv_h2 = static_cast<const O*>(t.inv_h2);
  const O* lse = static_cast<const O*>(t.m);  // the shifted lse per row
  const O* mg = static_cast<const O*>(t.l);   // m_r·g_r per row
  O* psum = static_cast<O*>(t.factor);
  const int64_t n = (t.cols + kLanes - 1) / kLanes * kLanes;
  for (int64_t r = 0; r < t.rows; ++r) {
    O* s = static_cast<O*>(t.s) + r * t.lds;
    O* gs = static_cast<O*>(t.gs) + r * t.lds;
    const O ih = inv_h2[r];
    for (int64_t j = 0; j < t.cols; ++j) s[j] = mixture_logit_expanded(lw ? lw[j] : O(0), s[j] - hn[j], ih);
    for (int64_t j = t.cols; j < n; ++j) s[j] = -INFINITY;
    exp_shifted(s, n, lse[r]);
    for (int64_t j = 0; j < t.cols; ++j) gs[j] = s[j] * (gs[j] - mg[r]);
    for (int64_t j = t.cols; j < n; ++j) gs[j] = O(0);
    psum[r] += lane_sum(gs, n);
  }
}

}  // namespace detail_mixture

inline void mixture_direct(const MixtureArgs& a, const void* centers_t, int64_t n_pad, int64_t q0, int64_t q1) {
  const int64_t d = a.d;
  if (a.float64) {
    SK_MIXTURE_DIMS(detail_mixture::direct_forward, double, a, centers_t, n_pad, q0, q1)
  } else {
    SK_MIXTURE_DIMS(detail_mixture::direct_forward, float, a, centers_t, n_pad, q0, q1)
  }
}

inline void mixture_direct_backward(const MixtureBackArgs& b, const void* centers_t, int64_t n_pad, int64_t q0,
                                    int64_t q1) {
  const int64_t d = b.fwd.d;
  if (b.fwd.float64) {
    SK_MIXTURE_DIMS(detail_mixture::direct_backward, double, b, centers_t, n_pad, q0, q1)
  } else {
    SK_MIXTURE_DIMS(detail_mixture::direct_backward, float, b, centers_t, n_pad, q0, q1)
  }
}

#undef SK_MIXTURE_DIMS

inline void mixture_tile_softmax(const MixtureTile& t) {
  if (t.float64) detail_mixture::tile_softmax<double>(t);
  else detail_mixture::tile_softmax<float>(t);
}

inline void mixture_tile_backward(const MixtureTile& t) {
  if (t.float64) detail_mixture::tile_backward<double>(t);
  else detail_mixture::tile_backward<float>(t);
}
