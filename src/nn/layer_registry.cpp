#include "mpitrain/nn/layer_registry.hpp"

#include <cctype>
#include <charconv>
#include <functional>
#include <map>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/nn/batch_norm.hpp"
#include "mpitrain/nn/conv2d.hpp"
#include "mpitrain/nn/dense.hpp"
#include "mpitrain/nn/dropout.hpp"
#include "mpitrain/nn/pooling.hpp"

namespace mpitrain {
namespace {

int to_int(const std::string& s, const LayerContext& ctx, const std::string& what) {
  int v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size() || v <= 0)
    throw UserError(ctx.what + ": " + what + " must be a positive whole number (got '" + printable(s) + "')");
  return v;
}

std::string option(const LayerToken& t, const LayerContext& ctx, const std::string& key, const std::string& fallback,
                   std::initializer_list<const char*> allowed) {
  std::string found = fallback;
  for (const auto& [k, v] : t.options) {
    bool known = false;
    for (const char* a : allowed) known = known || k == a;
    if (!known) {
      std::string list;
      for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
      throw UserError(ctx.what + ": unknown option '" + printable(k) + "'" +
                      (list.empty() ? ": this layer takes none" : ": use " + list));
    }
    if (k == key) found = v;
  }
  return found;
}

void no_value(const LayerToken& t, const LayerContext& ctx) {
  if (!t.value.empty() || !t.dims.empty())
    throw UserError(ctx.what + ": '" + t.kind + "' takes no size or value");
}

void needs_map(const LayerContext& ctx, const char* kind) {
  if (ctx.in.is_flat())
    throw UserError(ctx.what + ": " + kind + " needs a CxHxW map but follows a flat vector (or 1x1 map) of " + ctx.in.text() +
                    ": start --model with the image shape (e.g. 1x28x28) and keep convolutions and pooling before "
                    "the dense layers");
}

// "5x5" or "5" -> (5, 5)
std::pair<int, int> kernel_dims(const LayerToken& t, const LayerContext& ctx) {
  const auto x = t.dims.find('x');
  if (x == std::string::npos) {
    const int k = to_int(t.dims, ctx, "the kernel size");
    return {k, k};
  }
  return {to_int(t.dims.substr(0, x), ctx, "the kernel height"), to_int(t.dims.substr(x + 1), ctx, "the kernel width")};
}

// algo=auto|im2col|winograd (nn/conv2d.hpp): winograd needs stride 1 and a
// square kernel of 3 to 7.
ConvAlgorithm conv_algorithm(const LayerToken& t, const LayerContext& ctx, Shape in, const Conv2DGeometry& g) {
  const std::string algo = option(t, ctx, "algo", "auto", {"stride", "pad", "algo"});
  if (algo == "auto") return auto_conv_algorithm(in, g);
  if (algo == "im2col") return ConvAlgorithm::kIm2col;
  if (algo != "winograd")
    throw UserError(ctx.what + ": algo must be auto, im2col or winograd (got '" + printable(algo) + "')");
  if (!Winograd::applies(g))
    throw UserError(ctx.what + ": algo=winograd needs stride 1 and a square kernel of 3x3 to 7x7; use algo=im2col "
                    "(or auto) for this convolution");
  return ConvAlgorithm::kWinograd;
}

std::unique_ptr<Layer> make_conv(const LayerToken& t, const LayerContext& ctx) {
  needs_map(ctx, "conv");
  if (t.dims.empty() || t.value.empty())
    throw UserError(ctx.what + ": write convKxK:CHANNELS, e.g. conv5x5:32 (options ,stride=S ,pad=same|valid|N "
                    ",algo=auto|im2col|winograd)");
  const auto [kh, kw] = kernel_dims(t, ctx);
  const int out = to_int(t.value, ctx, "the channel count");
  const int stride = to_int(option(t, ctx, "stride", "1", {"stride", "pad", "algo"}), ctx, "stride");
  const std::string pad_text = option(t, ctx, "pad", "same", {"stride", "pad", "algo"});
  int pad = -1;
  if (pad_text == "valid") pad = 0;
  else if (pad_text != "same") {
    pad = -1;
    auto [ptr, ec] = std::from_chars(pad_text.data(), pad_text.data() + pad_text.size(), pad);
    if (pad_text.empty() || ec != std::errc() || ptr != pad_text.data() + pad_text.size() || pad < 0)
      throw UserError(ctx.what + ": pad must be same, valid or a number of pixels (got '" + printable(pad_text) + "')");
  }
  const Conv2DGeometry g = conv_geometry(ctx.in, kh, kw, stride, pad, ctx.what);
  return std::make_unique<Conv2D>(ctx.name, ctx.in, out, g, ctx.fused, conv_algorithm(t, ctx, ctx.in, g));
}

std::unique_ptr<Layer> make_pool(const LayerToken& t, const LayerContext& ctx, Pool2D::Kind kind) {
  needs_map(ctx, kind == Pool2D::Kind::kMax ? "maxpool" : "avgpool");
  if (t.dims.empty() || !t.value.empty())
    throw UserError(ctx.what + ": write " + t.kind + "K for a KxK window, e.g. " + t.kind + "2 (option ,stride=S)");
  const int k = to_int(t.dims, ctx, "the window");
  const int stride = to_int(option(t, ctx, "stride", t.dims, {"stride"}), ctx, "stride");
  return std::make_unique<Pool2D>(ctx.name, kind, ctx.in, k, stride, ctx.what);
}

std::unique_ptr<Layer> make_dense(const LayerToken& t, const LayerContext& ctx) {
  if (!t.dims.empty() || t.value.empty()) throw UserError(ctx.what + ": write dense:UNITS, e.g. dense:128");
  option(t, ctx, "", "", {});
  const int out = to_int(t.value, ctx, "the unit count");
  // He init before ReLU-like units, Glorot before tanh and for the output layer (as the MLP shorthand always did).
  const bool glorot = ctx.output_layer || ctx.fused == FusedActivation::kTanh;
  return std::make_unique<Dense>(ctx.name, ctx.in, out, glorot ? Dense::Init::kGlorot : Dense::Init::kHe, ctx.fused);
}

std::unique_ptr<Layer> make_dropout(const LayerToken& t, const LayerContext& ctx) {
  if (!t.dims.empty() || t.value.empty()) throw UserError(ctx.what + ": write dropout:RATE, e.g. dropout:0.5");
  option(t, ctx, "", "", {});
  double rate = -1;
  auto [ptr, ec] = std::from_chars(t.value.data(), t.value.data() + t.value.size(), rate);
  if (ec != std::errc() || ptr != t.value.data() + t.value.size() || !(rate >= 0 && rate < 1))
    throw UserError(ctx.what + ": the dropout rate must be a number in [0, 1), e.g. dropout:0.5");
  return std::make_unique<Dropout>(ctx.name, ctx.in, rate, ctx.position);
}

std::unique_ptr<Layer> make_activation(const LayerToken& t, const LayerContext& ctx) {
  no_value(t, ctx);
  option(t, ctx, "", "", {});
  return std::make_unique<ActivationLayer>(parse_activation(t.kind), ctx.in);
}

using Maker = std::function<std::unique_ptr<Layer>(const LayerToken&, const LayerContext&)>;

struct Kind {
  Maker make;
  std::string prefix;
};

const std::map<std::string, Kind>& registry() {
  static const std::map<std::string, Kind> kinds = {
      {"conv", {make_conv, "conv"}},
      {"maxpool", {[](const LayerToken& t, const LayerContext& c) { return make_pool(t, c, Pool2D::Kind::kMax); }, "maxpool"}},
      {"avgpool", {[](const LayerToken& t, const LayerContext& c) { return make_pool(t, c, Pool2D::Kind::kAvg); }, "avgpool"}},
      {"gap", {[](const LayerToken& t, const LayerContext& c) -> std::unique_ptr<Layer> {
                 no_value(t, c);
                 option(t, c, "", "", {});
                 needs_map(c, "gap");
                 return std::make_unique<GlobalAvgPool>(c.name, c.in);
               }, "gap"}},
      {"flatten", {[](const LayerToken& t, const LayerContext& c) -> std::unique_ptr<Layer> {
                     no_value(t, c);
                     option(t, c, "", "", {});
                     return std::make_unique<Flatten>(c.name, c.in);
                   }, "flatten"}},
      {"dense", {make_dense, "dense"}},
      {"dropout", {make_dropout, "dropout"}},
      {"batchnorm", {[](const LayerToken& t, const LayerContext& c) -> std::unique_ptr<Layer> {
                       no_value(t, c);
                       option(t, c, "", "", {});
                       return std::make_unique<BatchNorm>(c.name, c.in);
                     }, "bn"}},
      {"relu", {make_activation, "relu"}},
      {"tanh", {make_activation, "tanh"}},
      {"gelu", {make_activation, "gelu"}},
  };
  return kinds;
}

std::string canonical(const std::string& kind) { return kind == "bn" ? "batchnorm" : kind; }

}  // namespace

LayerToken parse_layer_token(const std::string& text) {
  LayerToken t;
  t.text = text;
  size_t i = 0;
  while (i < text.size() && std::islower(static_cast<unsigned char>(text[i]))) ++i;
  t.kind = canonical(text.substr(0, i));
  const size_t d = i;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == 'x')) ++i;
  t.dims = text.substr(d, i - d);
  if (i < text.size() && text[i] == ':') {
    const size_t v = ++i;
    while (i < text.size() && text[i] != ',') ++i;
    t.value = text.substr(v, i - v);
  }
  while (i < text.size() && text[i] == ',') {
    const size_t o = ++i;
    while (i < text.size() && text[i] != ',') ++i;
    const std::string opt = text.substr(o, i - o);
    const auto eq = opt.find('=');
    if (eq == std::string::npos || eq == 0)
      throw UserError("--model layer '" + printable(text) + "': write options as KEY=VALUE, e.g. conv3x3:16,stride=2");
    t.options.emplace_back(opt.substr(0, eq), opt.substr(eq + 1));
  }
  if (t.kind.empty() || i != text.size())
    throw UserError("--model layer '" + printable(text) + "' is not a layer: " + layer_kinds_help());
  return t;
}

std::unique_ptr<Layer> make_layer(const LayerToken& token, const LayerContext& ctx) {
  const auto it = registry().find(token.kind);
  if (it == registry().end())
    throw UserError(ctx.what + ": unknown layer '" + printable(token.kind) + "': " + layer_kinds_help());
  return it->second.make(token, ctx);
}

bool fuses_activation(const std::string& kind) { return kind == "dense" || kind == "conv"; }

std::string layer_name_prefix(const std::string& kind) {
  const auto it = registry().find(kind);
  return it == registry().end() ? kind : it->second.prefix;
}

std::string layer_kinds_help() {
  return "use convKxK:C (options ,stride=S ,pad=same|valid|N ,algo=auto|im2col|winograd), maxpoolK, avgpoolK (option ,stride=S), gap, flatten, "
         "dense:N, dropout:P, batchnorm (or bn), relu, tanh, gelu";
}

}  // namespace mpitrain
