#include "mpitrain/nn/batch_norm.hpp"

#include <algorithm>
#include <cmath>

namespace mpitrain {

BatchNorm::BatchNorm(std::string name, Shape in) : Layer(in, in), name_(std::move(name)), c_(in.c) {}

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
  // The per-channel buffers, here and not in the constructor: a spec is
  // summarized (its layers constructed) before the memory plan is checked,
  // and '70404044 bn' asked for 4 GB there (issue 17, a fuzz finding).
  const auto c = static_cast<size_t>(c_);
  mean_.assign(c, 0.0);
  invstd_.assign(c, 0.0);
  sums_.assign(2 * c + 1, 0.0);
  one_unit_.assign(2 * c + 1, 0.0);
  unit_sums_ = one_unit_.data();  // until the model binds its scratch
  coef_a_.assign(c, 0.0f);
  coef_b_.assign(c, 0.0f);
  coef_c_.assign(c, 0.0f);
}

void BatchNorm::init(Rng&) {
  std::fill(gamma_, gamma_ + c_, 1.0f);
  std::fill(beta_, beta_ + c_, 0.0f);
  std::fill(running_mean_, running_mean_ + c_, 0.0f);
  std::fill(running_var_, running_var_ + c_, 1.0f);
}

void BatchNorm::sum_over_batch(int count, int units) {
  if (pass().batch_sum) {
    pass().batch_sum->sum(unit_sums_, count, units);
  } else {  // this process holds the whole batch
    for (int u = 1; u < units; ++u)
      for (int k = 0; k < count; ++k) unit_sums_[k] += unit_sums_[static_cast<long long>(u) * count + k];
    if (units == 0) std::fill(unit_sums_, unit_sums_ + count, 0.0);
  }
  std::copy(unit_sums_, unit_sums_ + count, sums_.begin());
}

void BatchNorm::forward(const float* x, float* y, int rows) {
  const long long n = positions(rows);
  if (!pass().training) {
    for (int ch = 0; ch < c_; ++ch) {
      mean_[ch] = running_mean_[ch];
      invstd_[ch] = 1.0 / std::sqrt(static_cast<double>(running_var_[ch]) + kEps);
    }
  } else {
    // Per unit (or for the whole chunk): sum x, sum x^2 per channel, and the count.
    const int stride = 2 * c_ + 1;
    int k = 0;
    pass().for_units(rows, [&](int r0, int unit_rows, long long) {
      double* s = unit_sums_ + static_cast<long long>(k++) * stride;
      std::fill(s, s + stride, 0.0);
      const long long i0 = positions(r0), i1 = positions(r0 + unit_rows);
      for (long long i = i0; i < i1; ++i) {
        const float* v = x + i * c_;
        for (int ch = 0; ch < c_; ++ch) {
          s[ch] += v[ch];
          s[c_ + ch] += static_cast<double>(v[ch]) * v[ch];
        }
      }
      s[2 * c_] = static_cast<double>(i1 - i0);
    });
    sum_over_batch(stride, k);  // every rank, also with no rows
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
  // Sums of dy and dy * xhat per channel, per unit (or for the whole chunk):
  // the beta and gamma gradients of these rows (the gradient all-reduce adds
  // the other ranks'), and kept for backward_input, which needs them over the
  // global batch.
  const int stride = 2 * c_;
  const bool per_unit = pass().per_unit_grads();
  int k = 0;
  pass().for_units(rows, [&](int r0, int unit_rows, long long unit) {
    double* s = unit_sums_ + static_cast<long long>(k++) * stride;
    std::fill(s, s + stride, 0.0);
    for (long long i = positions(r0); i < positions(r0 + unit_rows); ++i) {
      const float* v = x + i * c_;
      const float* g = dy + i * c_;
      for (int ch = 0; ch < c_; ++ch) {
        s[ch] += g[ch];
        s[c_ + ch] += g[ch] * (v[ch] - mean_[ch]) * invstd_[ch];
      }
    }
    float* dbeta = per_unit ? pass().unit_sink->unit_grads(unit) + beta_off_ : dbeta_;
    float* dgamma = per_unit ? pass().unit_sink->unit_grads(unit) + gamma_off_ : dgamma_;
    for (int ch = 0; ch < c_; ++ch) {
      dbeta[ch] = (per_unit ? 0.0f : dbeta[ch]) + static_cast<float>(s[ch]);
      dgamma[ch] = (per_unit ? 0.0f : dgamma[ch]) + static_cast<float>(s[c_ + ch]);
    }
    if (per_unit) {
      pass().unit_sink->add(unit, beta_off_, c_);
      pass().unit_sink->add(unit, gamma_off_, c_);
    }
  });
  units_ = k;
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
  sum_over_batch(2 * c_, units_);
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
