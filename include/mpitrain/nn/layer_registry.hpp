// Layers are built by name from a registry: each kind of a --model layer
// list ("conv5x5:32,stride=2", "maxpool2", "dense:128", ...) has one maker
// here, which reads its token and the shape before it and returns the layer,
// or a UserError that names the token and says what to write instead.
//
// Token grammar: KIND[DIMS][:VALUE][,KEY=VALUE...], e.g.
//   conv5x5:32,stride=1,pad=same  (pad: same, valid or a number;
//                                  algo=auto|im2col|winograd, nn/conv2d.hpp)
//   maxpool2 avgpool3,stride=2    (window, stride defaults to the window)
//   dense:128 dropout:0.5 batchnorm (or bn) gap flatten relu tanh gelu
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "mpitrain/nn/activation.hpp"
#include "mpitrain/nn/layer.hpp"

namespace mpitrain {

struct LayerToken {
  std::string text;   // as written, for messages
  std::string kind;   // "conv"
  std::string dims;   // "5x5"
  std::string value;  // "32"
  std::vector<std::pair<std::string, std::string>> options;  // {"stride","2"}
};

// Splits one token; UserError if it is not of the grammar above.
LayerToken parse_layer_token(const std::string& text);

// What a maker gets besides its token.
struct LayerContext {
  Shape in;                     // output shape of the layer before
  std::string name;             // "conv0": kind and its count so far
  FusedActivation fused = FusedActivation::kNone;  // an activation token folded into this layer
  bool output_layer = false;    // the last layer with parameters (Glorot init for Dense)
  std::uint64_t position = 0;   // index in the list (dropout masks)
  std::string what;             // "--model layer 3 'conv5x5:32'", for messages
};

// Builds one layer; UserError naming ctx.what for an unknown kind or bad token.
std::unique_ptr<Layer> make_layer(const LayerToken& token, const LayerContext& ctx);
// Whether a kind takes a fused ReLU/tanh that follows it (dense, conv).
bool fuses_activation(const std::string& kind);
// The name prefix of a kind's layers ("conv", "dense", "maxpool", ...).
std::string layer_name_prefix(const std::string& kind);
// One line listing the kinds, for error messages and --help.
std::string layer_kinds_help();

}  // namespace mpitrain
