#include "mpitrain/nn/model_spec.hpp"

#include <algorithm>
#include <cstdio>
#include <charconv>
#include <map>
#include <sstream>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/nn/layer_registry.hpp"

namespace mpitrain {
namespace {

bool is_shorthand(const std::string& spec) {
  return !spec.empty() && std::all_of(spec.begin(), spec.end(), [](char ch) { return (ch >= '0' && ch <= '9') || ch == '-'; });
}

int positive(const std::string& part, const std::string& spec, const char* hint) {
  int w = 0;
  auto [ptr, ec] = std::from_chars(part.data(), part.data() + part.size(), w);
  if (part.empty() || ec != std::errc() || ptr != part.data() + part.size() || w <= 0)
    throw UserError("bad --model '" + printable(spec) + "': " + hint);
  return w;
}

// "784-256-10" -> widths
std::vector<int> shorthand_widths(const std::string& spec) {
  std::vector<int> widths;
  size_t pos = 0;
  while (pos <= spec.size()) {
    size_t dash = spec.find('-', pos);
    if (dash == std::string::npos) dash = spec.size();
    widths.push_back(positive(spec.substr(pos, dash - pos), spec, "write layer widths joined by '-', e.g. 784-256-10, "
                                                                  "or a layer list such as '1x28x28 conv5x5:32 relu maxpool2 dense:10'"));
    pos = dash + 1;
  }
  if (widths.size() < 2)
    throw UserError("bad --model '" + printable(spec) + "': needs at least an input and an output width, e.g. 784-10");
  return widths;
}

// "1x28x28" or "784"
Shape input_shape(const std::string& token, const std::string& spec) {
  const char* hint = "start a layer list with the input shape CxHxW (e.g. 1x28x28) or a width (e.g. 784)";
  std::vector<int> dims;
  size_t pos = 0;
  while (pos <= token.size()) {
    size_t x = token.find('x', pos);
    if (x == std::string::npos) x = token.size();
    dims.push_back(positive(token.substr(pos, x - pos), spec, hint));
    pos = x + 1;
  }
  if (dims.size() == 1) return Shape{dims[0], 1, 1};
  if (dims.size() == 3) return Shape{dims[0], dims[1], dims[2]};
  throw UserError("bad --model '" + printable(spec) + "': " + hint);
}

std::vector<std::string> layer_list_tokens(const std::string& spec, Activation activation) {
  std::vector<std::string> tokens;
  if (is_shorthand(spec)) {
    const auto widths = shorthand_widths(spec);
    tokens.push_back(std::to_string(widths[0]));
    for (size_t i = 1; i < widths.size(); ++i) {
      tokens.push_back("dense:" + std::to_string(widths[i]));
      if (i + 1 < widths.size()) tokens.push_back(activation_name(activation));
    }
    return tokens;
  }
  std::istringstream in(spec);
  for (std::string t; in >> t;) tokens.push_back(t);
  if (tokens.size() < 2)
    throw UserError("bad --model '" + printable(spec) + "': write the input shape and at least one layer, e.g. "
                    "'1x28x28 conv5x5:32 relu maxpool2 dense:10', or widths such as 784-256-10");
  return tokens;
}

}  // namespace

ModelLayers build_layers(const std::string& spec, Activation activation) {
  const std::vector<std::string> tokens = layer_list_tokens(spec, activation);
  ModelLayers m;
  m.input = input_shape(tokens[0], spec);
  std::vector<LayerToken> parsed;
  for (size_t i = 1; i < tokens.size(); ++i) parsed.push_back(parse_layer_token(tokens[i]));
  // The output layer: the last one with parameters (Glorot init for Dense).
  size_t last_weighted = parsed.size();
  for (size_t i = parsed.size(); i-- > 0;)
    if (parsed[i].kind == "dense" || parsed[i].kind == "conv") { last_weighted = i; break; }
  std::map<std::string, int> counts;
  Shape shape = m.input;
  for (size_t i = 0; i < parsed.size(); ++i) {
    const LayerToken& t = parsed[i];
    LayerContext ctx;
    ctx.in = shape;
    ctx.position = i;
    ctx.output_layer = i == last_weighted;
    ctx.what = "--model layer " + std::to_string(i + 1) + " '" + printable(t.text) + "'";
    const std::string prefix = layer_name_prefix(t.kind);
    ctx.name = prefix + std::to_string(counts[prefix]);
    if (fuses_activation(t.kind) && i + 1 < parsed.size() && parsed[i + 1].options.empty() &&
        parsed[i + 1].dims.empty() && parsed[i + 1].value.empty()) {
      if (parsed[i + 1].kind == "relu") ctx.fused = FusedActivation::kRelu;
      if (parsed[i + 1].kind == "tanh") ctx.fused = FusedActivation::kTanh;
    }
    auto layer = make_layer(t, ctx);
    ++counts[prefix];
    shape = layer->out_shape();
    m.layers.push_back(std::move(layer));
    if (ctx.fused != FusedActivation::kNone) ++i;  // the activation is part of this layer
  }
  return m;
}

double ModelSummary::params() const {
  double n = 0;
  for (const auto& l : layers) n += l.params;
  return n;
}

double ModelSummary::activation_floats_per_row() const {
  double n = static_cast<double>(input.size());
  for (const auto& l : layers) n += static_cast<double>(l.out.size());
  return n;
}

double ModelSummary::max_width() const {
  double w = static_cast<double>(input.size());
  for (const auto& l : layers) w = std::max(w, static_cast<double>(l.out.size()));
  return w;
}

double ModelSummary::scratch_bytes_fixed() const {
  double n = 0;
  for (const auto& l : layers) n += l.scratch_fixed;
  return n;
}

double ModelSummary::scratch_bytes_per_row() const {
  double n = 0;
  for (const auto& l : layers) n += l.scratch_bytes;
  return n;
}

ModelSummary summarize(Shape input, const std::vector<std::unique_ptr<Layer>>& layers) {
  ModelSummary s;
  s.input = input;
  for (const auto& layer : layers) {
    s.layers.push_back(LayerSummary{layer->name(), layer->kind(), layer->in_shape(), layer->out_shape(), layer->param_count(),
                                    layer->forward_flops_per_sample(), static_cast<double>(layer->scratch_bytes_per_row()),
                                    static_cast<double>(layer->scratch_bytes_fixed()), layer->method()});
    s.batch_statistics = s.batch_statistics || layer->uses_batch_statistics();
  }
  return s;
}

double train_flops(double forward_flops, size_t layer) { return forward_flops * (layer == 0 ? 2.0 : 3.0); }

std::string layer_table(const ModelSummary& m) {
  std::string out;
  char line[192];
  std::snprintf(line, sizeof line, "  %3s  %-14s %-12s %12s %16s %16s  %s\n", "#", "layer", "output", "params",
                "forward FLOPs", "training FLOPs", "computed as");
  out += line;
  std::snprintf(line, sizeof line, "  %3s  %-14s %-12s\n", "", "input", m.input.text().c_str());
  out += line;
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const LayerSummary& l = m.layers[i];
    std::snprintf(line, sizeof line, "  %3zu  %-14s %-12s %12.0f %16.0f %16.0f%s%s\n", i, l.name.c_str(),
                  l.out.text().c_str(), l.params, l.forward_flops, train_flops(l.forward_flops, i),
                  l.method.empty() ? "" : "  ", l.method.c_str());
    out += line;
  }
  return out;
}

ModelSummary summarize_model(const std::string& spec, Activation activation) {
  const ModelLayers m = build_layers(spec, activation);
  return summarize(m.input, m.layers);
}

}  // namespace mpitrain
