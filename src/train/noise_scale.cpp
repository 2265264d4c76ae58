#include "mpitrain/train/noise_scale.hpp"

#include <cmath>
#include <limits>

namespace mpitrain {

void NoiseScaleEstimator::update(double small_sq_mean, double inv_small_mean, double b_big, double big_sq) {
  const double inv_big = 1.0 / b_big;
  const double gap = inv_small_mean - inv_big;  // 1/B_small - 1/B_big
  if (!(gap > 1e-12) || !std::isfinite(small_sq_mean) || !std::isfinite(big_sq)) return;
  const double b_small = 1.0 / inv_small_mean;
  const double g2 = (b_big * big_sq - b_small * small_sq_mean) / (b_big - b_small);
  const double s = (small_sq_mean - big_sq) / gap;
  const double decay = window_ > 0 ? std::exp(-b_big / window_) : decay_;
  ema_g2_ = decay * ema_g2_ + (1.0 - decay) * g2;
  ema_s_ = decay * ema_s_ + (1.0 - decay) * s;
  decay_pow_ *= decay;
  ++t_;
}

double NoiseScaleEstimator::g2() const {
  return t_ == 0 ? std::numeric_limits<double>::quiet_NaN() : ema_g2_ / (1.0 - decay_pow_);
}

double NoiseScaleEstimator::trace_s() const {
  return t_ == 0 ? std::numeric_limits<double>::quiet_NaN() : ema_s_ / (1.0 - decay_pow_);
}

double NoiseScaleEstimator::b_simple() const { return trace_s() / g2(); }

}  // namespace mpitrain
