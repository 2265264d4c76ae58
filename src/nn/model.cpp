#include "mpitrain/nn/model.hpp"

#include <algorithm>
#include <charconv>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/core/rng.hpp"
#include "mpitrain/nn/dense.hpp"

namespace mpitrain {

std::vector<int> parse_model_spec(const std::string& spec) {
  std::vector<int> widths;
  size_t pos = 0;
  while (pos <= spec.size()) {
    size_t dash = spec.find('-', pos);
    if (dash == std::string::npos) dash = spec.size();
    const std::string part = spec.substr(pos, dash - pos);
    int w = 0;
    auto [ptr, ec] = std::from_chars(part.data(), part.data() + part.size(), w);
    if (part.empty() || ec != std::errc() || ptr != part.data() + part.size() || w <= 0)
      throw UserError("bad --model '" + spec + "': write layer widths joined by '-', e.g. 784-256-10");
    widths.push_back(w);
    pos = dash + 1;
  }
  if (widths.size() < 2)
    throw UserError("bad --model '" + spec + "': needs at least an input and an output width, e.g. 784-10");
  return widths;
}

Model::Model(const std::string& spec, Activation activation, int capacity_rows)
    : spec_(spec), widths_(parse_model_spec(spec)), capacity_(std::max(capacity_rows, 1)) {
  const size_t n_dense = widths_.size() - 1;
  const auto hidden_init = activation == Activation::kTanh ? Dense::Init::kGlorot : Dense::Init::kHe;
  // ReLU and tanh are fused into the hidden Dense layers (applied in place on
  // their output, one activation buffer per Dense); GELU's derivative needs
  // the pre-activation, so it stays a separate layer with its own buffer.
  const FusedActivation fused = activation == Activation::kRelu   ? FusedActivation::kRelu
                                : activation == Activation::kTanh ? FusedActivation::kTanh
                                                                  : FusedActivation::kNone;
  for (size_t i = 0; i < n_dense; ++i) {
    const bool last = i + 1 == n_dense;
    layers_.push_back(std::make_unique<Dense>("dense" + std::to_string(i), widths_[i], widths_[i + 1],
                                              last ? Dense::Init::kGlorot : hidden_init,
                                              last ? FusedActivation::kNone : fused));
    if (!last && fused == FusedActivation::kNone)
      layers_.push_back(std::make_unique<ActivationLayer>(activation, widths_[i + 1]));
  }
  for (auto& layer : layers_) {
    param_begin_.push_back(arena_.param_count());  // parameters are registered in forward order
    layer->register_params(arena_);
  }
  arena_.allocate();
  for (auto& layer : layers_) layer->bind(arena_);

  int max_width = 0;
  acts_.emplace_back(static_cast<size_t>(capacity_) * layers_.front()->in_width());
  for (auto& layer : layers_) {
    acts_.emplace_back(static_cast<size_t>(capacity_) * layer->out_width());
    max_width = std::max({max_width, layer->in_width(), layer->out_width()});
  }
  grad_a_.resize(static_cast<size_t>(capacity_) * max_width);
  grad_b_.resize(static_cast<size_t>(capacity_) * max_width);
}

void Model::init(std::uint64_t seed) {
  Rng rng(stream_key(seed, 0x696e6974 /* "init" */));
  for (auto& layer : layers_) layer->init(rng);
}

long long Model::param_count() const {
  long long n = 0;
  for (const auto& v : arena_.views()) n += v.size;
  return n;
}

double Model::forward_flops_per_sample() const {
  double f = 0;
  for (const auto& layer : layers_) f += layer->forward_flops_per_sample();
  return f;
}

double Model::train_flops_per_sample(size_t layer) const {
  return layers_[layer]->forward_flops_per_sample() * (layer == 0 ? 2.0 : 3.0);
}

double Model::train_flops_per_sample() const {
  double f = 0;
  for (size_t i = 0; i < layers_.size(); ++i) f += train_flops_per_sample(i);
  return f;
}

float* Model::forward(int rows, const float* x) {
  input_ = x ? x : acts_.front().data();
  for (size_t i = 0; i < layers_.size(); ++i)
    layers_[i]->forward(i == 0 ? input_ : acts_[i].data(), acts_[i + 1].data(), rows);
  return acts_.back().data();
}

void Model::backward(int rows, BackwardHook* hook) {
  // Reverse order of forward; gradients ping-pong between two buffers. The
  // first layer needs no input gradient.
  float* dy = grad_a_.data();
  float* dx = grad_b_.data();
  for (size_t i = layers_.size(); i-- > 0;) {
    const float* x = i == 0 ? (input_ ? input_ : acts_.front().data()) : acts_[i].data();
    layers_[i]->backward_params(x, acts_[i + 1].data(), dy, rows);
    if (hook) hook->after_layer(i, param_begin_[i]);  // this layer's gradients travel while dx is computed
    if (i > 0) layers_[i]->backward_input(x, acts_[i + 1].data(), dy, dx, rows);
    std::swap(dy, dx);
  }
}

}  // namespace mpitrain
