// What a --model spec describes, before anything is allocated.
//
// Two forms:
//   "784-256-10"   shorthand: Dense layers of these widths with --activation
//                  between them (the MLP form; unchanged results and names)
//   "1x28x28 conv5x5:32 relu maxpool2 dense:128 relu dense:10"
//                  a layer list: the input shape (CxHxW, or a width), then
//                  layers by name (nn/layer_registry.hpp); a relu or tanh
//                  right after dense or conv is fused into it.
// Layers are named by kind and count: conv0, conv1, dense0, bn0, ...;
// parameters are "<layer>/<tensor>" (checkpoints depend on these names).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "mpitrain/nn/activation.hpp"
#include "mpitrain/nn/layer.hpp"

namespace mpitrain {

struct ModelLayers {
  Shape input;
  std::vector<std::unique_ptr<Layer>> layers;
};

// Builds the layers (no arena, no buffers); UserError naming the layer and
// what to write for a malformed spec, an unknown layer or a shape that does
// not fit (a kernel larger than its input, a convolution after a flat vector).
ModelLayers build_layers(const std::string& spec, Activation activation);

// One row of the header's layer table.
struct LayerSummary {
  std::string name, kind;
  Shape in, out;
  double params = 0;         // trainable parameters
  double forward_flops = 0;  // per sample
  double scratch_bytes = 0;  // per row
  double scratch_fixed = 0;  // bytes, whatever the rows
  std::string method;        // Layer::method()
};

struct ModelSummary {
  Shape input;
  std::vector<LayerSummary> layers;
  bool batch_statistics = false;  // a layer sums over the global batch (batch norm)
  Shape output() const { return layers.empty() ? input : layers.back().out; }
  double params() const;
  double activation_floats_per_row() const;  // every layer's output and the input
  double max_width() const;                  // widest activation (gradient buffers)
  double scratch_bytes_per_row() const;
  double scratch_bytes_fixed() const;
};

ModelSummary summarize(Shape input, const std::vector<std::unique_ptr<Layer>>& layers);

// FLOPs per sample of layer i in a training step: forward, the parameter
// gradient and the input gradient, each of forward's size, except that the
// first layer computes no input gradient (backward skips it).
double train_flops(double forward_flops, size_t layer);

// The table of layers the run header and `inspect --model` print: per layer
// its output shape, parameters and FLOPs per sample (forward, training step).
std::string layer_table(const ModelSummary& m);
ModelSummary summarize_model(const std::string& spec, Activation activation);

}  // namespace mpitrain
