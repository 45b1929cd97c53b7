// The ten Philox4x32 rounds for any word type W with a WideMul<W> (philox.h).
// No include guard: philox.h includes this in namespace scorekern for
// scalar words, and each CPU kernel's per-instruction-set pass
// (csrc/cpu/loops.h) includes it again inside its own namespace, so that the
// rounds on SIMD lane packs are compiled for that instruction set — one
// text of the arithmetic, compiled where it is used.
// Philox4x32 with 10 rounds; the key is bumped between rounds (Random123).
// W is uint32_t, or a lane pack whose low 32 bits per lane hold the word.
template <typename W>
SK_HD SK_INLINE void philox4x32_rounds(W& c0, W& c1, W& c2, W& c3, uint32_t k0, uint32_t k1) {
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int round = 0; round < 10; ++round) {
    W hi0, lo0, hi1, lo1;
    WideMul<W>::mul(c0, kPhiloxM0, hi0, lo0);
    WideMul<W>::mul(c2, kPhiloxM1, hi1, lo1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
}

