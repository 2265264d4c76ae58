#include "mpitrain/optim.hpp"

namespace mpitrain {

Sgd::Sgd(long long count, SgdOptions options)
    : options_(options), count_(count), velocity_(static_cast<size_t>(count)) {}

void Sgd::step(float* params, const float* grads, double lr) {
  const auto m = static_cast<float>(options_.momentum);
  const auto wd = static_cast<float>(options_.weight_decay);
  const auto eta = static_cast<float>(lr);
  float* v = velocity_.data();
  if (m == 0.0f) {
    for (long long i = 0; i < count_; ++i) params[i] -= eta * (grads[i] + wd * params[i]);
    return;
  }
  if (options_.nesterov) {
    for (long long i = 0; i < count_; ++i) {
      const float g = grads[i] + wd * params[i];
      v[i] = m * v[i] + g;
      params[i] -= eta * (g + m * v[i]);
    }
  } else {
    for (long long i = 0; i < count_; ++i) {
      const float g = grads[i] + wd * params[i];
      v[i] = m * v[i] + g;
      params[i] -= eta * v[i];
    }
  }
}

}  // namespace mpitrain
