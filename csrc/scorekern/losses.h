// The per-element terms of the training losses (DESIGN §1), shared by the CPU
// and CUDA kernels. The kernels sum them per row; the per-row combination
// (weights, ½, the mean over a row) is a few [B]-sized tensor operations in
// scorekern/ops.py, shared by the fused and the twin paths.
#pragma once

#include "config.h"

namespace scorekern {

// Denoising score matching (Vincent 2011): the residual p·s + q·z of one
// element, whose squares a row sums; ℓ = w/2 · Σ(p·s + q·z)².
template <typename T>
SK_HD SK_INLINE T dsm_residual(T p, T s, T q, T z) {
  return p * s + q * z;
}

// Sliced score matching (Song et al. 2019), one element of a row and its
// projection v: the first sum is Σ v·(Jᵀv) (the vector–Jacobian product),
// the second Σ v·s, whose square the plain loss halves, or Σ s² with
// variance reduction. Per row: Σ₀ + ½Σ₁² (plain) or Σ₀ + ½Σ₁.
template <typename T>
SK_HD SK_INLINE void sliced_terms(T v, T vjp, T s, bool variance_reduction, T& first, T& second) {
  first = v * vjp;
  second = variance_reduction ? s * s : v * s;
}

}  // namespace scorekern
