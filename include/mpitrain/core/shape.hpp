// The shape of one sample as layers and datasets see it: channels x height x width,
// stored channels innermost (NHWC per row: index (y*w + x)*c + ch), so a
// convolution's patches are contiguous runs of channels and a flat vector of
// n features is simply the shape n x 1 x 1. A row of the model's buffers is
// one sample of size() floats.
#pragma once
#include <string>

namespace mpitrain {

struct Shape {
  int c = 1, h = 1, w = 1;
  long long size() const { return static_cast<long long>(c) * h * w; }
  bool is_flat() const { return h == 1 && w == 1; }
  // "128" for a flat vector, "32x14x14" (CxHxW) for a map.
  std::string text() const {
    if (is_flat()) return std::to_string(c);
    return std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w);
  }
  bool operator==(const Shape&) const = default;
};

}  // namespace mpitrain
