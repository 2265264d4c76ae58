#include "mpitrain/core/arena.hpp"

#include <stdexcept>

namespace mpitrain {

long long Arena::add(const std::string& name, std::vector<long long> shape, ParamFlags flags) {
  if (params_.size() != 0) throw std::logic_error("Arena::add after allocate");
  long long n = 1;
  for (long long d : shape) n *= d;
  // Start each parameter on a 64-byte boundary (16 floats) for aligned BLAS access.
  count_ = (count_ + 15) / 16 * 16;
  views_.push_back(ParamView{name, std::move(shape), count_, n, flags});
  count_ += n;
  return views_.back().offset;
}

void Arena::allocate() {
  params_.resize(static_cast<size_t>(count_));
  grads_.resize(static_cast<size_t>(count_ + kStatSlots));
}

}  // namespace mpitrain
