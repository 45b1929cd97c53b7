// Storage types and the arithmetic type of each (DESIGN §4): float16 and
// bfloat16 are loaded into float, computed in float and rounded back to
// nearest even; float64 is computed in double. The conversions are written
// here, bit for bit, so that the CPU kernels need no torch header and give
// the same 16-bit results as the GPU.
#pragma once

#include <cmath>

#include "config.h"

namespace scorekern {

struct Half {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};

template <typename T> struct OpMathOf { using type = float; };
template <> struct OpMathOf<double> { using type = double; };
template <typename T> using opmath_t = typename OpMathOf<T>::type;

// bfloat16 is the top half of a float: widen by shifting; narrow by rounding
// the low 16 bits to nearest even, keeping NaNs quiet.
SK_HD SK_INLINE float bf16_to_float(uint16_t h) {
  return bits_float(static_cast<uint32_t>(h) << 16);
}
SK_HD SK_INLINE uint16_t float_to_bf16(float f) {
  const uint32_t u = float_bits(f);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
  return static_cast<uint16_t>(nan ? ((u >> 16) | 0x40u) : rounded);
}

// IEEE half, widening. Normal halves: the 15 exponent/mantissa bits shifted
// into a float's position give the value times 2^-112 (exact); subnormal
// halves are m·2^-24, an exact int-to-float conversion; exponent 31 is
// infinity or NaN.
SK_HD SK_INLINE float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t rest = static_cast<uint32_t>(h & 0x7fffu);
  const float normal = bits_float(rest << 13) * 0x1p112f;
  const float subnormal = static_cast<float>(static_cast<int32_t>(rest)) * 0x1p-24f;
  const float special = bits_float((rest << 13) | 0x7f800000u);
  const float mag = rest >= 0x7c00u ? special : (rest >= 0x0400u ? normal : subnormal);
  return bits_float(sign | float_bits(mag));
}

// IEEE half, narrowing with round to nearest even. In the normal range the
// float's exponent and top mantissa bits are the half's, rebiased, after an
// integer round of the 13 dropped bits (a carry correctly bumps the
// exponent, up to infinity). Below 2^-14 the half quantum is 2^-24, the ulp
// of 0.5: adding 0.5 lets the FPU round, and the bits above 0.5 count quanta
// (1024 of them is the smallest normal half, 0x0400, as it should be).
SK_HD SK_INLINE uint16_t float_to_half(float f) {
  const uint32_t u = float_bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t abs = u & 0x7fffffffu;
  const uint32_t subnormal = float_bits(bits_float(abs) + 0.5f) - 0x3f000000u;
  uint32_t normal = ((abs + 0x0fffu + ((abs >> 13) & 1u)) >> 13) - (112u << 10);
  normal = normal > 0x7c00u ? 0x7c00u : normal;  // overflow (and infinity)
  uint32_t h = abs < 0x38800000u ? subnormal : normal;
  h = abs > 0x7f800000u ? (0x7e00u | ((abs >> 13) & 0x03ffu)) : h;  // quiet NaN
  return static_cast<uint16_t>(sign | h);
}

// Loads and stores between storage and arithmetic types.
SK_HD SK_INLINE float load_op(const float* p) { return *p; }
SK_HD SK_INLINE double load_op(const double* p) { return *p; }
SK_HD SK_INLINE float load_op(const Half* p) { return half_to_float(p->bits); }
SK_HD SK_INLINE float load_op(const BFloat16* p) { return bf16_to_float(p->bits); }

SK_HD SK_INLINE void store_op(float* p, float v) { *p = v; }
SK_HD SK_INLINE void store_op(double* p, double v) { *p = v; }
SK_HD SK_INLINE void store_op(Half* p, float v) { p->bits = float_to_half(v); }
SK_HD SK_INLINE void store_op(BFloat16* p, float v) { p->bits = float_to_bf16(v); }

// e^x for x ≤ 0, and exactly 0 below −87.3 (where float32 leaves the normal
// range). On the CPU a polynomial (Cephes' expf: about 1 ulp) that compilers
// vectorise; on the GPU the hardware exponential.
SK_HD SK_INLINE float exp_nonpositive(float x) {
#if defined(__CUDA_ARCH__)
  return __expf(x);
#else
  const float lo = -87.33654f;
  const float xc = x < lo ? lo : x;
  const float magic = 12582912.0f;  // 1.5·2²³: adding it rounds to an integer
  const float n = (xc * 1.44269504088896341f + magic) - magic;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const uint32_t scale = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  const float e = y * bits_float(scale);
  return x < lo ? 0.0f : e;
#endif
}

SK_HD SK_INLINE double exp_nonpositive(double x) { return exp(x); }

}  // namespace scorekern
