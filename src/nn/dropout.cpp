#include "mpitrain/nn/dropout.hpp"

#include <cstring>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/core/rng.hpp"

namespace mpitrain {

Dropout::Dropout(std::string name, Shape in, double rate, std::uint64_t salt)
    : Layer(in, in), name_(std::move(name)), rate_(rate), salt_(salt) {
  if (!(rate >= 0.0 && rate < 1.0))
    throw UserError("dropout rate must be in [0, 1) (got " + std::to_string(rate) + "), e.g. dropout:0.5");
}

void Dropout::apply_mask(const float* in, float* out, int rows) const {
  const Pass& p = pass();
  const long long width = in_width();
  // Keep a value when its 24-bit uniform draw is at least p * 2^24.
  const auto threshold = static_cast<std::uint64_t>(rate_ * 16777216.0);
  const auto scale = static_cast<float>(1.0 / (1.0 - rate_));
  const std::uint64_t layer_key = stream_key(p.seed, 0x64726f70 /* "drop" */, salt_);
  for (int r = 0; r < rows; ++r) {
    const std::uint64_t row_key = stream_key(layer_key, static_cast<std::uint64_t>(p.step),
                                             static_cast<std::uint64_t>(p.first_row + r));
    const float* src = in + r * width;
    float* dst = out + r * width;
    for (long long j = 0; j < width; ++j) {
      const std::uint64_t u = mix64(row_key + static_cast<std::uint64_t>(j)) >> 40;
      dst[j] = u >= threshold ? src[j] * scale : 0.0f;
    }
  }
}

void Dropout::forward(const float* x, float* y, int rows) {
  if (rows == 0) return;
  if (pass().training && rate_ > 0) apply_mask(x, y, rows);
  else std::memcpy(y, x, sizeof(float) * static_cast<size_t>(rows * in_width()));
}

void Dropout::backward_input(const float*, const float*, const float* dy, float* dx, int rows) {
  if (rows == 0) return;
  if (pass().training && rate_ > 0) apply_mask(dy, dx, rows);
  else std::memcpy(dx, dy, sizeof(float) * static_cast<size_t>(rows * in_width()));
}

}  // namespace mpitrain
