#include "mpitrain/nn/batch_norm.hpp"

#include <algorithm>
#include <cmath>

namespace mpitrain {

BatchNorm::BatchNorm(std::string name, Shape in)
    : Layer(in, in),
      name_(std::move(name)),
      c_(in.c),
      mean_(in.c),
      invstd_(in.c),
      sums_(2 * in.c + 1),
      coef_a_(in.c),
      coef_b_(in.c),
      coef_c_(in.c) {}

void BatchNorm::register_params(Arena& arena) {
  gamma_off_ = arena.add(name_ + "/gamma", {c_}, kNoDecayParam);
  beta_off_ = arena.add(name_ + "/beta", {c_}, kNoDecayParam);
  mean_off_ = arena.add(name_ + "/running_mean", {c_}, kStateParam);
  var_off_ = arena.add(name_ + "/running_var", {c_}, kStateParam);
}

void BatchNorm::bind(Arena& arena) {
  gamma_ = arena.params() + gamma_off_;
  beta_ = arena.params() + beta_off_;
  dgamma_ = arena.grads() + gamma_off_;
  dbeta_ = arena.grads() + beta_off_;
  running_mean_ = arena.params() + mean_off_;
  running_var_ = arena.params() + var_off_;
}

void BatchNorm::init(Rng&) {
  std::fill(gamma_, gamma_ + c_, 1.0f);
  std::fill(beta_, beta_ + c_, 0.0f);
  std::fill(running_mean_, running_mean_ + c_, 0.0f);
  std::fill(running_var_, running_var_ + c_, 1.0f);
}

void BatchNorm::sum_over_batch(int count) {
  if (pass().batch_sum) pass().batch_sum->sum(sums_.data(), count);
}

void BatchNorm::forward(const float* x, float* y, int rows) {
  const long long n = positions(rows);
  if (!pass().training) {
    for (int ch = 0; ch < c_; ++ch) {
      mean_[ch] = running_mean_[ch];
      invstd_[ch] = 1.0 / std::sqrt(static_cast<double>(running_var_[ch]) + kEps);
    }
  } else {
    std::fill(sums_.begin(), sums_.end(), 0.0);
    for (long long i = 0; i < n; ++i) {
      const float* v = x + i * c_;
      for (int ch = 0; ch < c_; ++ch) {
        sums_[ch] += v[ch];
        sums_[c_ + ch] += static_cast<double>(v[ch]) * v[ch];
      }
    }
    sums_[2 * c_] = static_cast<double>(n);
    sum_over_batch(2 * c_ + 1);  // every rank, also with no rows
    count_ = sums_[2 * c_];
    if (count_ <= 0) return;
    for (int ch = 0; ch < c_; ++ch) {
      const double mean = sums_[ch] / count_;
      const double var = std::max(sums_[c_ + ch] / count_ - mean * mean, 0.0);
      mean_[ch] = mean;
      invstd_[ch] = 1.0 / std::sqrt(var + kEps);
      const double unbiased = count_ > 1 ? var * count_ / (count_ - 1) : var;
      running_mean_[ch] = static_cast<float>((1 - kMomentum) * running_mean_[ch] + kMomentum * mean);
      running_var_[ch] = static_cast<float>((1 - kMomentum) * running_var_[ch] + kMomentum * unbiased);
    }
  }
  // y = x * a + b per channel, the coefficients in double, the pass in float (vectorised).
  for (int ch = 0; ch < c_; ++ch) {
    const double a = gamma_[ch] * invstd_[ch];
    coef_a_[ch] = static_cast<float>(a);
    coef_b_[ch] = static_cast<float>(beta_[ch] - mean_[ch] * a);
  }
  const float* __restrict a = coef_a_.data();
  const float* __restrict b = coef_b_.data();
  for (long long i = 0; i < n; ++i) {
    const float* __restrict v = x + i * c_;
    float* __restrict o = y + i * c_;
    for (int ch = 0; ch < c_; ++ch) o[ch] = v[ch] * a[ch] + b[ch];
  }
}

void BatchNorm::backward_params(const float* x, const float*, float* dy, int rows) {
  // Local sums of dy and dy * xhat per channel: the beta and gamma gradients
  // of this rank's rows (the gradient all-reduce adds the other ranks'), and
  // kept for backward_input, which needs them over the global batch.
  const long long n = positions(rows);
  std::fill(sums_.begin(), sums_.end(), 0.0);
  for (long long i = 0; i < n; ++i) {
    const float* v = x + i * c_;
    const float* g = dy + i * c_;
    for (int ch = 0; ch < c_; ++ch) {
      sums_[ch] += g[ch];
      sums_[c_ + ch] += g[ch] * (v[ch] - mean_[ch]) * invstd_[ch];
    }
  }
  for (int ch = 0; ch < c_; ++ch) {
    dbeta_[ch] += static_cast<float>(sums_[ch]);
    dgamma_[ch] += static_cast<float>(sums_[c_ + ch]);
  }
}

void BatchNorm::backward_input(const float* x, const float*, const float* dy, float* dx, int rows) {
  const long long n = positions(rows);
  if (!pass().training) {  // running statistics are constants: dx = dy * gamma / sigma
    for (long long i = 0; i < n; ++i)
      for (int ch = 0; ch < c_; ++ch)
        dx[i * c_ + ch] = static_cast<float>(dy[i * c_ + ch] * gamma_[ch] * invstd_[ch]);
    return;
  }
  // dx = gamma / sigma * (dy - mean(dy) - xhat * mean(dy * xhat)), means over the global batch,
  // = dy * a + x * b + c per channel (coefficients in double, the pass in float).
  sum_over_batch(2 * c_);
  if (count_ <= 0) return;
  std::vector<float>& ca = coef_a_;
  std::vector<float>& cb = coef_b_;
  std::vector<float>& cc = coef_c_;
  for (int ch = 0; ch < c_; ++ch) {
    const double k = gamma_[ch] * invstd_[ch], m1 = sums_[ch] / count_, m2 = sums_[c_ + ch] / count_;
    ca[ch] = static_cast<float>(k);
    cb[ch] = static_cast<float>(-k * invstd_[ch] * m2);
    cc[ch] = static_cast<float>(-k * m1 + k * invstd_[ch] * m2 * mean_[ch]);
  }
  for (long long i = 0; i < n; ++i) {
    const float* __restrict v = x + i * c_;
    const float* __restrict g = dy + i * c_;
    float* __restrict d = dx + i * c_;
    for (int ch = 0; ch < c_; ++ch) d[ch] = g[ch] * ca[ch] + v[ch] * cb[ch] + cc[ch];
  }
}

}  // namespace mpitrain
