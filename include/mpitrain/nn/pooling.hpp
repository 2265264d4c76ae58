// Pooling over the spatial dimensions of a map, per channel (channels
// innermost, nn/shape.hpp): max or average over K x K windows at a stride
// (no padding: windows that would leave the map are dropped, as in
// PyTorch's default), and global average pooling to C x 1 x 1.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "mpitrain/nn/layer.hpp"

namespace mpitrain {

class Pool2D final : public Layer {
 public:
  enum class Kind { kMax, kAvg };
  // UserError (naming `what`) when the window does not fit the input.
  Pool2D(std::string name, Kind kind, Shape in, int kernel, int stride, const std::string& what);
  std::string name() const override { return name_; }
  std::string kind() const override { return kind_ == Kind::kMax ? "maxpool" : "avgpool"; }
  void forward(const float* x, float* y, int rows) override;
  void backward_input(const float* x, const float* y, const float* dy, float* dx, int rows) override;
  double forward_flops_per_sample() const override;
  void bind(Arena&) override;  // allocates taken_

 private:
  std::string name_;
  Kind kind_;
  int k_, stride_;
  std::vector<unsigned char> taken_;  // max backward: which channels of a window found their maximum
};

// Mean over H x W per channel: C x H x W -> C x 1 x 1.
class GlobalAvgPool final : public Layer {
 public:
  GlobalAvgPool(std::string name, Shape in) : Layer(in, Shape{in.c, 1, 1}), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  std::string kind() const override { return "gap"; }
  void forward(const float* x, float* y, int rows) override;
  void backward_input(const float* x, const float* y, const float* dy, float* dx, int rows) override;
  double forward_flops_per_sample() const override { return static_cast<double>(in_shape().size()); }

 private:
  std::string name_;
};

// C x H x W -> (C*H*W) x 1 x 1: the same floats, now a flat vector (a copy;
// Dense reads a map directly, so this is only for clarity in a spec).
class Flatten final : public Layer {
 public:
  Flatten(std::string name, Shape in) : Layer(in, Shape{static_cast<int>(in.size()), 1, 1}), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  std::string kind() const override { return "flatten"; }
  void forward(const float* x, float* y, int rows) override;
  void backward_input(const float* x, const float* y, const float* dy, float* dx, int rows) override;

 private:
  std::string name_;
};

}  // namespace mpitrain
