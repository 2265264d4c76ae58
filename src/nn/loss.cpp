#include "mpitrain/nn/loss.hpp"

#include <cmath>

namespace mpitrain {

LossSums softmax_cross_entropy(const float* logits, const int* labels, int rows, int classes,
                               float* dlogits, float grad_scale) {
  LossSums sums;
  for (int r = 0; r < rows; ++r) {
    const float* z = logits + static_cast<long long>(r) * classes;
    float* dz = dlogits + static_cast<long long>(r) * classes;
    const int label = labels[r];
    int argmax = 0;
    float zmax = z[0];
    for (int k = 1; k < classes; ++k)
      if (z[k] > zmax) { zmax = z[k]; argmax = k; }
    double denom = 0.0;
    for (int k = 0; k < classes; ++k) denom += std::exp(static_cast<double>(z[k] - zmax));
    const double log_denom = std::log(denom);
    sums.loss += log_denom - static_cast<double>(z[label] - zmax);
    sums.correct += argmax == label ? 1.0 : 0.0;
    for (int k = 0; k < classes; ++k) {
      const double p = std::exp(static_cast<double>(z[k] - zmax) - log_denom);
      dz[k] = static_cast<float>((p - (k == label ? 1.0 : 0.0)) * grad_scale);
    }
  }
  return sums;
}

LossSums mean_squared_error(const float* y, const float* targets, int rows, int width, float* dy,
                            float grad_scale) {
  LossSums sums;
  const long long n = static_cast<long long>(rows) * width;
  const double inv_width = 1.0 / width;
  for (long long i = 0; i < n; ++i) {
    const double diff = static_cast<double>(y[i]) - targets[i];
    sums.loss += diff * diff * inv_width;
    dy[i] = static_cast<float>(2.0 * diff * inv_width * grad_scale);
  }
  return sums;
}

}  // namespace mpitrain
