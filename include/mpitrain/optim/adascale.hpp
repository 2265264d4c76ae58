// AdaScale SGD (Johnson, Agarwal, Ghosh, Kavraki, "AdaScale SGD: A
// User-Friendly Algorithm for Distributed Training", ICML 2020,
// arXiv:2007.05105; fairscale.optim.AdaScale): one recipe, tuned at the
// reference batch, at any global batch B, without rescaling the rate by hand.
//
// With S = B / ref and the gradient's variance and squared mean at the
// reference batch, sigma^2 = tr(Sigma) / ref and mu^2 = |G|^2, the gain
//   r = (sigma^2 + mu^2) / (sigma^2 / S + mu^2)
//     = (tr(Sigma)/ref + |G|^2) / (tr(Sigma)/B + |G|^2)
// lies in [1, S] (in [S, 1] when B < ref): S where the gradient is pure
// noise (a batch S times larger is worth S reference steps), 1 where it is
// noise-free (a larger batch is worth nothing more). Each step is taken at
// gain x the reference schedule's rate at the scale-invariant iteration
// tau = the sum of the gains so far, and training ends when tau reaches the
// reference run's iterations: `--epochs` epochs at `--ref-batch`. Warmup and
// decay are counted in reference epochs (tau / reference steps per epoch).
//
// tr(Sigma) and |G|^2 are the online noise-scale estimator's smoothed values
// (train/noise_scale.hpp: bias-corrected averages over a window of samples;
// AdaScale's own smoothing is a per-step average with weight 1 - B/1000 x ref).
#pragma once
#include <memory>

#include "mpitrain/optim/schedule.hpp"

namespace mpitrain {

// The gain r for tr(Sigma) and |G|^2 at global batch b and reference batch
// ref. Estimates below zero (noise) count as zero; with both zero, or either
// not a number (no estimate yet), the gain is 1. Clamped to [min(1,S), max(1,S)].
double adascale_gain(double trace_s, double g2, double global_batch, double ref_batch);

class AdaScaleSchedule {
 public:
  // `options` as for LrSchedule (base_lr is the rate at ref_batch; epochs,
  // warmup and decay in reference epochs); UserError if the reference batch
  // leaves no steps.
  AdaScaleSchedule(const ScheduleOptions& options, long long train_rows, bool drop_last);

  long long reference_steps_per_epoch() const;
  double total_iterations() const;                 // the reference run's steps
  bool done(double tau) const { return tau >= total_iterations(); }
  double lr_at(double tau) const;                  // the reference schedule at iteration tau (no gain)
  // The most epochs a run at global batch b can take before tau reaches
  // the end (every gain is at least min(1, b/ref)).
  long long max_epochs(long long global_batch) const;
  const LrSchedule& reference() const { return *reference_; }

 private:
  std::unique_ptr<LrSchedule> reference_;  // at ref_batch, no scaling
  long long train_rows_;
  bool drop_last_;
};

}  // namespace mpitrain
