// Online gradient noise scale (McCandlish, Kaplan, Amodei et al. 2018,
// arXiv:1812.06162, appendix A.1). Each step gives two gradient sizes: small
// batches (each rank's shard, or half the batch on one rank) and the big one
// (the all-reduced global batch). Since E|G_B|^2 = |G|^2 + tr(S)/B,
//   |G|^2 ~ (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small)
//   tr(S) ~ (|G_small|^2 - |G_big|^2) / (1/B_small - 1/B_big)
// With uneven shards, |G_small|^2 is the mean over ranks of each rank's
// |G_r|^2, whose expectation is |G|^2 + tr(S) * mean(1/b_r); so 1/B_small is
// the mean of 1/b_r over the ranks that had rows. (With --deterministic the
// small batches are the units, on any number of ranks.) Both estimates are
// noisy, so each gets its own bias-corrected exponential moving average, and
// B_simple = EMA(tr S) / EMA(|G|^2).
//
// The average is over samples, not steps (AdaptDL does the same): a step of
// b samples decays the average by exp(-b / W), W = --noise-window-samples,
// so every global batch averages over the same amount of data. A per-step
// decay lagged at large B (0.99 per step is ~7 epochs at B = 4096, while
// |G|^2 shrinks several-fold over training); W = 0 keeps the per-step decay
// --noise-ema-decay.
#pragma once
#include "mpitrain/io/checkpoint_file.hpp"  // NoiseScaleState

namespace mpitrain {

class NoiseScaleEstimator {
 public:
  // window_samples > 0: decay exp(-b_big / window_samples) per step; else
  // ema_decay per step.
  explicit NoiseScaleEstimator(double ema_decay, double window_samples = 0)
      : decay_(ema_decay), window_(window_samples) {}
  // small_sq_mean: mean over contributing ranks of |G_r|^2; inv_small_mean:
  // mean of 1/b_r over them; big_sq: |G_big|^2 of the b_big-row batch.
  // Steps where the two batch sizes coincide carry no information and are skipped.
  void update(double small_sq_mean, double inv_small_mean, double b_big, double big_sq);
  long long updates() const { return t_; }
  double g2() const;       // bias-corrected EMA of |G|^2 (NaN before the first update)
  double trace_s() const;  // bias-corrected EMA of tr(S)
  double b_simple() const; // trace_s / g2

  // Everything update() changes, for checkpoints: restore(state()) on an
  // estimator built with the same decay continues bit-for-bit as the original.
  // (The decay and window are configuration, not state, and are not included.)
  using State = NoiseScaleState;
  State state() const { return {t_, ema_g2_, ema_s_, decay_pow_}; }
  void restore(const State& s) {
    t_ = s.updates;
    ema_g2_ = s.ema_g2;
    ema_s_ = s.ema_s;
    decay_pow_ = s.decay_pow;
  }

 private:
  double decay_, window_;
  long long t_ = 0;
  double ema_g2_ = 0.0, ema_s_ = 0.0, decay_pow_ = 1.0;
};

}  // namespace mpitrain
