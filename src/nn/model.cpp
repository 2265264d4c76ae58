#include "mpitrain/nn/model.hpp"

#include <algorithm>

#include "mpitrain/core/clock.hpp"
#include "mpitrain/core/rng.hpp"

namespace mpitrain {

Model::Model(const std::string& spec, Activation activation, int capacity_rows)
    : spec_(spec), capacity_(std::max(capacity_rows, 1)) {
  ModelLayers built = build_layers(spec, activation);
  input_shape_ = built.input;
  layers_ = std::move(built.layers);
  for (auto& layer : layers_) {
    layer->set_pass(&pass_);
    batch_statistics_ = batch_statistics_ || layer->uses_batch_statistics();
    param_begin_.push_back(arena_.param_count());  // parameters are registered in forward order
    layer->register_params(arena_);
  }
  arena_.allocate();
  for (auto& layer : layers_) layer->bind(arena_);

  long long max_width = input_width();
  acts_.emplace_back(static_cast<size_t>(capacity_) * static_cast<size_t>(input_width()));
  for (auto& layer : layers_) {
    acts_.emplace_back(static_cast<size_t>(capacity_) * static_cast<size_t>(layer->out_width()));
    max_width = std::max({max_width, layer->in_width(), layer->out_width()});
    // Scratch in floats (64-byte aligned like every buffer), capacity rows of it.
    const size_t bytes = static_cast<size_t>(capacity_) * layer->scratch_bytes_per_row() + layer->scratch_bytes_fixed();
    const size_t floats = (bytes + sizeof(float) - 1) / sizeof(float);
    scratch_.emplace_back(floats);
    if (floats > 0) layer->bind_scratch(scratch_.back().data(), capacity_);
  }
  grad_a_.resize(static_cast<size_t>(capacity_) * static_cast<size_t>(max_width));
  grad_b_.resize(static_cast<size_t>(capacity_) * static_cast<size_t>(max_width));
}

void Model::init(std::uint64_t seed) {
  Rng rng(stream_key(seed, 0x696e6974 /* "init" */));
  for (auto& layer : layers_) layer->init(rng);
}

long long Model::param_count() const {
  long long n = 0;
  for (const auto& v : arena_.views())
    if (v.flags.trainable) n += v.size;
  return n;
}

double Model::forward_flops_per_sample() const {
  double f = 0;
  for (const auto& layer : layers_) f += layer->forward_flops_per_sample();
  return f;
}

double Model::train_flops_per_sample(size_t layer) const {
  return train_flops(layers_[layer]->forward_flops_per_sample(), layer);
}

double Model::train_flops_per_sample() const {
  double f = 0;
  for (size_t i = 0; i < layers_.size(); ++i) f += train_flops_per_sample(i);
  return f;
}

ModelSummary Model::summary() const { return summarize(input_shape_, layers_); }

void Model::set_layer_timer(std::vector<LayerSeconds>* times) {
  timer_ = times;
  for (size_t i = 0; i < layers_.size(); ++i) layers_[i]->set_gemm_clock(times ? &(*times)[i].sgemm : nullptr);
}

float* Model::forward(int rows, const float* x) {
  input_ = x ? x : acts_.front().data();
  for (size_t i = 0; i < layers_.size(); ++i) {
    const double t0 = timer_ ? now_s() : 0.0;
    layers_[i]->forward(i == 0 ? input_ : acts_[i].data(), acts_[i + 1].data(), rows);
    if (timer_) (*timer_)[i].forward += now_s() - t0;
  }
  return acts_.back().data();
}

void Model::backward(int rows, BackwardHook* hook) {
  // Reverse order of forward; gradients ping-pong between two buffers. The
  // first layer needs no input gradient.
  float* dy = grad_a_.data();
  float* dx = grad_b_.data();
  for (size_t i = layers_.size(); i-- > 0;) {
    const float* x = i == 0 ? (input_ ? input_ : acts_.front().data()) : acts_[i].data();
    const double t0 = timer_ ? now_s() : 0.0;
    layers_[i]->backward_params(x, acts_[i + 1].data(), dy, rows);
    if (hook) hook->after_layer(i, param_begin_[i]);  // this layer's gradients travel while dx is computed
    if (i > 0) layers_[i]->backward_input(x, acts_[i + 1].data(), dy, dx, rows);
    if (timer_) (*timer_)[i].backward += now_s() - t0;
    std::swap(dy, dx);
  }
}

}  // namespace mpitrain
