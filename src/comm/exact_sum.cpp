#include "mpitrain/comm/exact_sum.hpp"

#include "mpitrain/comm/exact_sum_kernels.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

namespace mpitrain {
namespace {

using exact_detail::quantize_units;
using exact_detail::raise_largest;
using exact_detail::to_floats;

constexpr int kStatBits = 62 - 20;  // bits of a statistic's largest value (kMaxStatUnits = 2^20)

// The grid exponent for a largest |value| m: values become v * 2^(bits - e), m < 2^e.
int grid_exponent(double m) {
  int e = 0;
  std::frexp(m, &e);
  return e;
}

}  // namespace

ExactGradientSum::ExactGradientSum(std::vector<std::pair<long long, long long>> tensors, long long count,
                                   long long max_units)
    : tensors_(std::move(tensors)),
      count_(count),
      max_units_(max_units),
      kept_(static_cast<size_t>(max_units * count)),
      lanes_(static_cast<size_t>(max_units)),
      max_(tensors_.size()),
      sums_(static_cast<size_t>(count)) {
  std::sort(tensors_.begin(), tensors_.end());
}

void ExactGradientSum::begin(long long units, long long total_units) {
  if (units > max_units_) throw std::logic_error("ExactGradientSum: more units than planned");
  if (total_units < std::max(1LL, units) || total_units > kMaxUnits)
    throw std::logic_error("ExactGradientSum: total units out of range");
  units_ = units;
  // n values of at most 2^bits each (a value below 2^bits may round up to
  // it) sum to at most n 2^bits <= (2^w - 1) 2^(31 - w) < 2^31, w the bit
  // width of n: an int32.
  bits_ = 31 - static_cast<int>(std::bit_width(static_cast<unsigned long long>(total_units)));
  std::fill(max_.begin(), max_.end(), 0.0);
}

size_t ExactGradientSum::tensor_at(long long offset) const {
  const auto it = std::lower_bound(tensors_.begin(), tensors_.end(), std::pair<long long, long long>{offset, 0});
  if (it == tensors_.end() || it->first != offset) throw std::logic_error("ExactGradientSum: no tensor at this offset");
  return static_cast<size_t>(it - tensors_.begin());
}

void ExactGradientSum::add(long long k, long long offset, long long n) {
  raise_largest(kept_.data() + k * count_ + offset, n, max_[tensor_at(offset)]);
}

void ExactGradientSum::reduce_into(const Comm* comm, float* out, double* unit_sq) {
  const bool many = comm && comm->size() > 1;
  std::fill(unit_sq, unit_sq + units_, 0.0);
  if (many) comm->allreduce_max(max_.data(), static_cast<long long>(max_.size()));
  std::int32_t* q = sums_.data();
  long long done = 0;  // elements before this tensor (gaps between tensors are zero)
  for (size_t t = 0; t < tensors_.size(); ++t) {
    const auto [begin, n] = tensors_[t];
    std::fill(q + done, q + begin, 0);
    const double m = max_[t];
    // A non-finite tensor sums to NaN below; its norms are then not finite either.
    const double scale = std::isfinite(m) && m > 0 ? std::ldexp(1.0, bits_ - grid_exponent(m)) : 0.0;
    quantize_units(kept_.data(), count_, units_, begin, n, scale, q + begin, lanes_.data(), unit_sq);
    done = begin + n;
  }
  std::fill(q + done, q + count_, 0);
  if (many) comm->allreduce_sum(q, count_);
  done = 0;
  for (size_t t = 0; t < tensors_.size(); ++t) {
    const auto [begin, n] = tensors_[t];
    std::fill(out + done, out + begin, 0.0f);
    const double m = max_[t];
    if (!std::isfinite(m))
      std::fill(out + begin, out + begin + n, std::numeric_limits<float>::quiet_NaN());
    else if (m > 0)
      to_floats(q + begin, n, std::ldexp(1.0, grid_exponent(m) - bits_), out + begin);
    else
      std::fill(out + begin, out + begin + n, 0.0f);
    done = begin + n;
  }
  std::fill(out + done, out + count_, 0.0f);
}

ExactUnitSum::ExactUnitSum(int max_count) : max_(static_cast<size_t>(max_count)), q_(static_cast<size_t>(max_count)) {}

void ExactUnitSum::sum(const Comm* comm, const double* partials, int units, int count, double* out) {
  if (static_cast<size_t>(count) > max_.size()) {
    max_.resize(static_cast<size_t>(count));
    q_.resize(static_cast<size_t>(count));
  }
  const double inf = std::numeric_limits<double>::infinity();
  for (int k = 0; k < count; ++k) {
    double m = 0;
    for (int u = 0; u < units; ++u) {
      const double v = partials[static_cast<long long>(u) * count + k];
      m = std::isfinite(v) ? std::max(m, std::fabs(v)) : inf;
    }
    max_[static_cast<size_t>(k)] = m;
  }
  const bool many = comm && comm->size() > 1;
  if (many) comm->allreduce_max(max_.data(), count);
  for (int k = 0; k < count; ++k) {
    const double m = max_[static_cast<size_t>(k)];
    std::int64_t s = 0;
    if (std::isfinite(m) && m > 0) {
      const int e = grid_exponent(m);
      for (int u = 0; u < units; ++u)
        s += std::llrint(std::ldexp(partials[static_cast<long long>(u) * count + k], kStatBits - e));
    }
    q_[static_cast<size_t>(k)] = s;
  }
  if (many) comm->allreduce_sum(q_.data(), count);
  for (int k = 0; k < count; ++k) {
    const double m = max_[static_cast<size_t>(k)];
    const int e = std::isfinite(m) && m > 0 ? grid_exponent(m) : 0;
    out[k] = !std::isfinite(m) ? std::numeric_limits<double>::quiet_NaN()
                               : std::ldexp(static_cast<double>(q_[static_cast<size_t>(k)]), e - kStatBits);
  }
}

}  // namespace mpitrain
