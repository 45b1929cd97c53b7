// Every scorekern operator's schema. The CPU and CUDA implementations are
// registered beside their kernels (csrc/cpu/*.cpp, csrc/cuda/glue.cpp); fake
// kernels and autograd formulas are registered from Python (scorekern/ops.py).
//
// The random ops take the stream position explicitly (seed, offset and
// optional per-row ids, DESIGN §2), so every op is a pure function of its
// arguments: the Python layer draws (seed, offset) from a torch.Generator.
// Per-row coefficients come as `scale · values`, with values an optional
// tensor holding one entry per row (or one for all rows), so that Python
// floats never become device tensors.
#include <torch/library.h>

#include "library.h"

TORCH_LIBRARY(SK_LIBRARY, m) {
  // The raw Philox4x32-10 block function: counter [..., 4] and the result
  // hold 32-bit words in int64; the key is the 64-bit seed, low word first.
  m.def("philox4x32(Tensor counter, int seed) -> Tensor");

  // Noise shaped like `like` from the documented stream.
  m.def("randn(Tensor like, int seed, int offset, Tensor? row_ids) -> Tensor");
  m.def("rademacher(Tensor like, int seed, int offset, Tensor? row_ids) -> Tensor");

  // x' = a·x + b·score + c·z, and the mean a·x + b·score when asked (the
  // second output is empty otherwise). z comes from `noise` when given.
  m.def(
      "noisy_update(Tensor x, Tensor score, Tensor? a, float a_scale, Tensor? b, float b_scale, "
      "Tensor? c, float c_scale, Tensor? noise, int seed, int offset, Tensor? row_ids, "
      "bool return_mean) -> (Tensor, Tensor)");
  m.def(
      "noisy_update_out(Tensor x, Tensor score, Tensor? a, float a_scale, Tensor? b, "
      "float b_scale, Tensor? c, float c_scale, Tensor? noise, int seed, int offset, "
      "Tensor? row_ids, Tensor(a!) out, Tensor(b!)? mean_out) -> ()");

  // Inpainting's masked update: x' = mask·(μ·y + σ·z₁) + (1 − mask)·(a·x +
  // b·score + c·z₂), the mean likewise without the noise. z₂ is the update's
  // noise (noise, or the stream at offset), z₁ the observed part's
  // (observed_noise, or the stream at observed_offset); the same row ids.
  m.def(
      "masked_update(Tensor x, Tensor score, Tensor y, Tensor mask, Tensor? a, float a_scale, "
      "Tensor? b, float b_scale, Tensor? c, float c_scale, Tensor? mu, float mu_scale, "
      "Tensor? sigma, float sigma_scale, Tensor? noise, Tensor? observed_noise, int seed, "
      "int offset, int observed_offset, Tensor? row_ids, bool return_mean) -> (Tensor, Tensor)");
  m.def(
      "masked_update_out(Tensor x, Tensor score, Tensor y, Tensor mask, Tensor? a, float a_scale, "
      "Tensor? b, float b_scale, Tensor? c, float c_scale, Tensor? mu, float mu_scale, "
      "Tensor? sigma, float sigma_scale, Tensor? noise, Tensor? observed_noise, int seed, "
      "int offset, int observed_offset, Tensor? row_ids, Tensor(a!) out, Tensor(b!)? mean_out) -> ()");

  // The signal-to-noise Langevin corrector: ε = 2α(snr·‖z‖/‖score‖)², with the
  // norms per row or (batch_norms) their batch means; x' = x + ε·score + √(2ε)·z.
  m.def(
      "snr_langevin_step(Tensor x, Tensor score, float snr, Tensor? alpha, float alpha_scale, "
      "bool batch_norms, Tensor? noise, int seed, int offset, Tensor? row_ids, "
      "bool return_mean) -> (Tensor, Tensor)");
  m.def(
      "snr_langevin_step_out(Tensor x, Tensor score, float snr, Tensor? alpha, "
      "float alpha_scale, bool batch_norms, Tensor? noise, int seed, int offset, "
      "Tensor? row_ids, Tensor(a!) out, Tensor(b!)? mean_out) -> ()");

  // The per-row sums of the losses (DESIGN §1), in float32 (float64 for
  // float64 data), one per row: Σ(p·score + q·z)² of denoising score
  // matching, z from `noise` or regenerated from the stream; and the sliced
  // score matching sums Σ v·vjp and Σ v·score (Σ score² with variance
  // reduction).
  m.def(
      "dsm_row_sums(Tensor score, Tensor? p, float p_scale, Tensor? q, float q_scale, "
      "Tensor? noise, int seed, int offset, Tensor? row_ids) -> Tensor");
  m.def("sliced_row_sums(Tensor score, Tensor vjp, Tensor v, bool variance_reduction) -> (Tensor, Tensor)");

  // The score of a mixture of isotropic Gaussians (a kernel density estimate,
  // the ideal denoiser of a training set): for x [M, d] and centres [N, d],
  // score = Σ_j softmax_j(ℓ_j − ‖x − μ_j‖²/2h²)(μ_j − x)/h² in x's dtype and
  // lse = log Σ_j exp(ℓ_j − ‖x − μ_j‖²/2h²) in the arithmetic dtype, h =
  // bandwidth_scale · bandwidth (one per query, or one for all). The score
  // is empty unless with_score. The backward applies the score's Jacobian
  // to grad, from the saved score and lse.
  m.def(
      "mixture_score(Tensor x, Tensor centers, Tensor? bandwidth, float bandwidth_scale, "
      "Tensor? log_weights, bool with_score) -> (Tensor, Tensor)");
  m.def(
      "mixture_score_backward(Tensor grad, Tensor x, Tensor centers, Tensor? bandwidth, "
      "float bandwidth_scale, Tensor? log_weights, Tensor score, Tensor lse) -> Tensor");
}
