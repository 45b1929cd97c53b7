// The scorekern random stream (DESIGN §2), shared by the CPU and CUDA kernels.
//
// Philox4x32-10 (Salmon et al. 2011, "Parallel random numbers: as easy as
// 1, 2, 3"): key = the 64-bit seed (low word first); counter = (column block
// c/4, row id, offset low, offset high). One call gives the four 32-bit words
// of columns 4k..4k+3 of one row. Uniforms u = ((w >> 8) + 0.5)·2⁻²⁴ lie in
// (0, 1]; Box–Muller turns (u0, u1) and (u2, u3) into two normals each.
//
// The float normals use the polynomial log and sincos below rather than libm:
// the same code then runs on the CPU and the GPU (so the two agree to a few
// ulp), and gcc vectorises it without -ffast-math or libmvec.
#pragma once

#include <cmath>

#include "config.h"

namespace scorekern {

constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;  // golden ratio
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;  // sqrt(3) - 1

struct Words4 {
  uint32_t w0, w1, w2, w3;
};

// The one primitive Philox needs from its word type: the high and low words
// of a 32×32-bit product. Scalars use this; the CPU kernels specialise it for
// SIMD lane packs (csrc/cpu/loops.h), so the rounds are written once
// (philox_rounds.h).
template <typename W>
struct WideMul {
  SK_HD SK_INLINE static void mul(uint32_t c, uint32_t m, uint32_t& hi, uint32_t& lo) {
#if defined(__CUDA_ARCH__)
    hi = __umulhi(c, m);
    lo = c * m;
#else
    const uint64_t p = static_cast<uint64_t>(c) * m;
    hi = static_cast<uint32_t>(p >> 32);
    lo = static_cast<uint32_t>(p);
#endif
  }
};

#include "philox_rounds.h"  // philox4x32_rounds<W>, here for scalar words

SK_HD SK_INLINE Words4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                     uint32_t k0, uint32_t k1) {
  philox4x32_rounds<uint32_t>(c0, c1, c2, c3, k0, k1);
  return Words4{c0, c1, c2, c3};
}

// Where one call's noise lives in the stream: the key and the offset words.
// The column block and the row id complete the counter per element.
struct StreamPos {
  uint32_t key0, key1;   // seed, low word first
  uint32_t off0, off1;   // offset, low word first

  SK_HD SK_INLINE Words4 words(uint32_t block, uint32_t row) const {
    return philox4x32_10(block, row, off0, off1, key0, key1);
  }
};

SK_HD SK_INLINE StreamPos make_stream_pos(uint64_t seed, uint64_t offset) {
  return StreamPos{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                   static_cast<uint32_t>(offset),
                   static_cast<uint32_t>(offset >> 32)};
}

// u = ((w >> 8) + 0.5)·2⁻²⁴, evaluated in the arithmetic type. In float the
// sum rounds for w >> 8 ≥ 2²³, so u lies in (0, 1]: never 0, never above 1.
// The shift leaves 24 bits, which fit a signed int (vectorised conversion).
SK_HD SK_INLINE float uniform_from_word(uint32_t w, float) {
  return (static_cast<float>(static_cast<int32_t>(w >> 8)) + 0.5f) * 0x1p-24f;
}
SK_HD SK_INLINE double uniform_from_word(uint32_t w, double) {
  return (static_cast<double>(w >> 8) + 0.5) * 0x1p-24;
}

// Natural log of u in (0, 1] (a normal float): u = m·2^e with m in
// [√½, √2), then log(1 + (m − 1)) by the Cephes logf polynomial (≤ 2 ulp).
SK_HD SK_INLINE float log_unit(float u) {
  const uint32_t bits = float_bits(u);
  int32_t e = static_cast<int32_t>(bits >> 23) - 126;        // u = m·2^e, m in [½, 1)
  float m = bits_float((bits & 0x007fffffu) | 0x3f000000u);
  // Both arms are computed before the select so that gcc if-converts it
  // (and vectorises the loop) even under -ftrapping-math.
  const bool small = m < 0.70710678118654752f;
  const float twice = m + m;
  e = small ? e - 1 : e;
  m = (small ? twice : m) - 1.0f;
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  const float fe = static_cast<float>(e);
  y += -2.12194440e-4f * fe;  // ln 2 split in two parts for accuracy
  y += -0.5f * z;
  return (m + y) + 0.693359375f * fe;
}

// sin and cos of 2πu for u in [0, 1]. The reduction to f = u − q/4 with
// |f| ≤ 1/8 is exact (Sterbenz), so accuracy is that of the Cephes sinf and
// cosf polynomials on [−π/4, π/4]; the quadrant q only swaps and negates.
SK_HD SK_INLINE void sincos_2pi(float u, float& s, float& c) {
  const int32_t q = static_cast<int32_t>(4.0f * u + 0.5f);
  const float x = (u - static_cast<float>(q) * 0.25f) * 6.28318530717958647692f;
  const float z = x * x;
  const float sp = x + x * z * (-1.6666654611e-1f + z * (8.3321608736e-3f + z * -1.9515295891e-4f));
  const float cp = 1.0f - 0.5f * z +
                   z * z * (4.166664568298827e-2f + z * (-1.388731625493765e-3f + z * 2.443315711809948e-5f));
  const bool swap = q & 1;
  const float cc = swap ? sp : cp;
  const float ss = swap ? cp : sp;
  const float ncc = -cc, nss = -ss;
  c = ((q + 1) & 2) ? ncc : cc;
  s = (q & 2) ? nss : ss;
}

// Box–Muller: (r cos θ, r sin θ) with r = √(−2 ln u_r), θ = 2π u_θ.
SK_HD SK_INLINE void box_muller(float u_r, float u_t, float& n0, float& n1) {
  const float r = sqrtf(-2.0f * log_unit(u_r));
  float s, c;
  sincos_2pi(u_t, s, c);
  n0 = r * c;
  n1 = r * s;
}

// float64 normals use libm (CUDA's and glibc's log, sin and cos are within
// 1–2 ulp of each other), with the same exact quadrant reduction.
SK_HD SK_INLINE void box_muller(double u_r, double u_t, double& n0, double& n1) {
  const double r = sqrt(-2.0 * log(u_r));
  const double q = floor(4.0 * u_t + 0.5);
  const double x = (u_t - 0.25 * q) * 6.283185307179586476925;
  double s = sin(x), c = cos(x);
  const int32_t qi = static_cast<int32_t>(q);
  const double cc = (qi & 1) ? s : c;
  const double ss = (qi & 1) ? c : s;
  c = ((qi + 1) & 2) ? -cc : cc;
  s = (qi & 2) ? -ss : ss;
  n0 = r * c;
  n1 = r * s;
}

// The four normals of one Philox call, in the arithmetic type T (float or
// double): columns 4k..4k+3 get (n0, n1, n2, n3).
template <typename T>
SK_HD SK_INLINE void normals4(const Words4& w, T& n0, T& n1, T& n2, T& n3) {
  box_muller(uniform_from_word(w.w0, T{}), uniform_from_word(w.w1, T{}), n0, n1);
  box_muller(uniform_from_word(w.w2, T{}), uniform_from_word(w.w3, T{}), n2, n3);
}

// The sum of the squares of a group's four normals without computing them:
// n0² + n1² = r01²(cos²θ + sin²θ) = −2 ln u0, and likewise for (n2, n3). The
// corrector's norms need only this (equal to Σ n² up to rounding).
SK_HD SK_INLINE float normals4_square_sum(const Words4& w, float) {
  return -2.0f * (log_unit(uniform_from_word(w.w0, 0.0f)) + log_unit(uniform_from_word(w.w2, 0.0f)));
}
SK_HD SK_INLINE double normals4_square_sum(const Words4& w, double) {
  return -2.0 * (log(uniform_from_word(w.w0, 0.0)) + log(uniform_from_word(w.w2, 0.0)));
}

// A Rademacher sign: +1 where the low bit of the word is set, −1 where not.
template <typename T>
SK_HD SK_INLINE T rademacher_from_word(uint32_t w) {
  return (w & 1u) ? T(1) : T(-1);
}

}  // namespace scorekern
