// Tests of the --model layer list (nn/model_spec, nn/layer_registry) and of a
// Model built from it: the layer table (names, shapes, parameters, FLOPs) of
// the LeNet-like CNN by hand, the MLP shorthand building exactly the layer
// list it abbreviates (same names, shapes and bitwise the same init), each
// layer option, a one-line UserError naming the token and saying what to
// write for each kind of bad spec, a CNN Model running forward and backward
// on fewer rows than its capacity (the sanitizer build checks its buffers)
// with gradients matching finite differences, and the parameter flags the
// update rules go by.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "gradient_check.hpp"
#include "mpitrain/core/arena.hpp"
#include "mpitrain/core/errors.hpp"
#include "mpitrain/nn/batch_norm.hpp"
#include "mpitrain/nn/conv2d.hpp"
#include "mpitrain/nn/dense.hpp"
#include "mpitrain/nn/dropout.hpp"
#include "mpitrain/nn/loss.hpp"
#include "mpitrain/nn/model.hpp"
#include "mpitrain/nn/model_spec.hpp"
#include "mpitrain/nn/pooling.hpp"

using namespace mpitrain;
using gradcheck::random_floats;

namespace {

constexpr const char* kLeNet = "1x28x28 conv5x5:32 relu maxpool2 conv5x5:64 relu maxpool2 dense:128 relu dense:10";

std::vector<std::string> layer_names(const ModelSummary& s) {
  std::vector<std::string> n;
  for (const auto& l : s.layers) n.push_back(l.name);
  return n;
}

// The message of the UserError a spec gives; a test failure if it gives none
// or another kind of exception.
std::string spec_error(const std::string& spec) {
  try {
    build_layers(spec, Activation::kRelu);
  } catch (const UserError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "'" << spec << "': not a UserError: " << e.what();
    return {};
  }
  ADD_FAILURE() << "'" << spec << "' was accepted";
  return {};
}

const ParamView& view(const Arena& arena, const std::string& name) {
  for (const ParamView& v : arena.views())
    if (v.name == name) return v;
  throw std::out_of_range("no tensor " + name);
}

bool same_flags(const ParamFlags& a, const ParamFlags& b) {
  return a.trainable == b.trainable && a.decay == b.decay && a.trust_ratio == b.trust_ratio;
}

}  // namespace

TEST(ModelSpec, LayerListTableByHand) {
  const ModelSummary s = summarize_model(kLeNet, Activation::kRelu);
  EXPECT_EQ(s.input, (Shape{1, 28, 28}));
  EXPECT_EQ(layer_names(s), (std::vector<std::string>{"conv0+relu", "maxpool0", "conv1+relu", "maxpool1", "dense0+relu",
                                                      "dense1"}));
  ASSERT_EQ(s.layers.size(), 6u);
  const std::vector<Shape> shapes = {{32, 28, 28}, {32, 14, 14}, {64, 14, 14}, {64, 7, 7}, {128, 1, 1}, {10, 1, 1}};
  const std::vector<double> params = {5 * 5 * 1 * 32 + 32, 0, 5 * 5 * 32 * 64 + 64, 0, 64 * 7 * 7 * 128 + 128,
                                      128 * 10 + 10};
  const std::vector<double> flops = {2.0 * 28 * 28 * 25 * 1 * 32, 32 * 14 * 14 * 4.0, 2.0 * 14 * 14 * 25 * 32 * 64,
                                     64 * 7 * 7 * 4.0, 2.0 * 3136 * 128, 2.0 * 128 * 10};
  // Scratch per row: an im2col convolution's cols (pixels x patch floats);
  // besides, a fixed dcols of Conv2D::kInputGradRows rows. conv1 (32 input
  // channels) runs Winograd F(4x4, 5x5) by default: no scratch per row; fixed
  // U and dU (64 points x 32 x 64), one block's V and Z planes (6 rows of 16
  // tiles, 64 points, 32 and 64 channels) and one 8x8x64 tile. Max pooling
  // keeps none (backward finds the argmax from x and y).
  const std::vector<double> scratch = {28 * 28 * 25 * 4.0, 0, 0, 0, 0, 0};
  const double g = Conv2D::kInputGradRows;
  const double wino = 4.0 * (2 * 64 * 32 * 64 + 6 * 16 * 64 * (32 + 64) + 64 * 64);
  const std::vector<double> fixed = {g * 28 * 28 * 25 * 4.0, 0, wino, 0, 0, 0};
  for (size_t i = 0; i < 6; ++i) {
    SCOPED_TRACE(s.layers[i].name);
    EXPECT_EQ(s.layers[i].out, shapes[i]);
    EXPECT_EQ(s.layers[i].params, params[i]);
    EXPECT_EQ(s.layers[i].forward_flops, flops[i]);
    EXPECT_EQ(s.layers[i].scratch_bytes, scratch[i]);
    EXPECT_EQ(s.layers[i].scratch_fixed, fixed[i]);
  }
  EXPECT_EQ(s.layers[0].method, "im2col");
  EXPECT_EQ(s.layers[1].method, "");
  EXPECT_EQ(s.layers[2].method, "winograd F(4x4,5x5)");
  EXPECT_EQ(s.layers[0].out.text(), "32x28x28");
  EXPECT_EQ(s.output(), (Shape{10, 1, 1}));
  EXPECT_EQ(s.params(), 832.0 + 51264 + 401536 + 1290);
  EXPECT_FALSE(s.batch_statistics);
  EXPECT_EQ(s.max_width(), 32.0 * 28 * 28);
  // The Model agrees with the summary, and its arena holds exactly these parameters.
  const Model m(kLeNet, Activation::kRelu, 1);
  EXPECT_EQ(m.param_count(), 454922);
  long long stored = 0;
  for (const ParamView& v : m.arena().views()) stored += v.size;
  EXPECT_EQ(stored, 454922);
  EXPECT_EQ(m.input_shape(), (Shape{1, 28, 28}));
  EXPECT_EQ(m.input_width(), 784);
  EXPECT_EQ(m.output_width(), 10);
  EXPECT_EQ(view(m.arena(), "conv1/W").shape, (std::vector<long long>{5, 5, 32, 64}));
  EXPECT_EQ(view(m.arena(), "dense0/W").shape, (std::vector<long long>{3136, 128}));
  double total = 0;
  for (double f : flops) total += f;
  EXPECT_EQ(m.forward_flops_per_sample(), total);
}

// The shorthand is the layer list it abbreviates: same layers, names,
// parameter names and shapes, and the same parameters from the same seed
// (checkpoints of earlier runs stay loadable, results stay bitwise equal).
TEST(ModelSpec, ShorthandIsTheSameAsItsLayerList) {
  for (Activation act : {Activation::kRelu, Activation::kTanh, Activation::kGelu}) {
    SCOPED_TRACE(activation_name(act));
    const std::string list = std::string("784 dense:256 ") + activation_name(act) + " dense:10";
    const ModelSummary a = summarize_model("784-256-10", act), b = summarize_model(list, Activation::kRelu);
    EXPECT_EQ(layer_names(a), layer_names(b));
    const std::vector<std::string> expected =
        act == Activation::kGelu ? std::vector<std::string>{"dense0", "gelu", "dense1"}
                                 : std::vector<std::string>{std::string("dense0+") + activation_name(act), "dense1"};
    EXPECT_EQ(layer_names(a), expected);
    EXPECT_EQ(a.input, b.input);
    for (size_t i = 0; i < std::min(a.layers.size(), b.layers.size()); ++i) {
      EXPECT_EQ(a.layers[i].out, b.layers[i].out);
      EXPECT_EQ(a.layers[i].params, b.layers[i].params);
    }
    Model ma("784-256-10", act, 2), mb(list, Activation::kRelu, 2);
    ASSERT_EQ(ma.arena().views().size(), mb.arena().views().size());
    for (size_t i = 0; i < ma.arena().views().size(); ++i) {
      EXPECT_EQ(ma.arena().views()[i].name, mb.arena().views()[i].name);
      EXPECT_EQ(ma.arena().views()[i].shape, mb.arena().views()[i].shape);
      EXPECT_EQ(ma.arena().views()[i].offset, mb.arena().views()[i].offset);
    }
    ma.init(1234);
    mb.init(1234);
    const long long n = ma.arena().param_count();
    ASSERT_EQ(n, mb.arena().param_count());
    EXPECT_EQ(std::vector<float>(ma.arena().params(), ma.arena().params() + n),
              std::vector<float>(mb.arena().params(), mb.arena().params() + n));
    EXPECT_NE(ma.arena().params()[0], 0.0f);
  }
}

TEST(ModelSpec, LayerOptions) {
  auto one = [](const std::string& spec) {
    ModelLayers m = build_layers(spec, Activation::kRelu);
    EXPECT_EQ(m.layers.size(), 1u) << spec;
    return m;
  };
  {
    const ModelLayers m = one("1x9x9 conv3x3:8,stride=2,pad=valid");
    const auto* conv = dynamic_cast<const Conv2D*>(m.layers[0].get());
    ASSERT_NE(conv, nullptr);
    EXPECT_EQ(conv->name(), "conv0");
    EXPECT_EQ(conv->out_shape(), (Shape{8, 4, 4}));
    EXPECT_EQ(conv->geometry().stride, 2);
    EXPECT_EQ(conv->geometry().pad_top, 0);
  }
  {
    const ModelLayers m = one("1x9x9 conv3x3:8,pad=1");
    const auto* conv = dynamic_cast<const Conv2D*>(m.layers[0].get());
    ASSERT_NE(conv, nullptr);
    EXPECT_EQ(conv->out_shape(), (Shape{8, 9, 9}));
    EXPECT_EQ(conv->geometry().stride, 1);
    EXPECT_EQ(conv->geometry().pad_top, 1);
    EXPECT_EQ(conv->geometry().pad_left, 1);
  }
  EXPECT_EQ(one("1x9x9 conv3x3:8,pad=3").layers[0]->out_shape(), (Shape{8, 13, 13}));
  auto algo = [&](const std::string& spec) {
    const ModelLayers m = one(spec);
    return dynamic_cast<const Conv2D&>(*m.layers[0]).algorithm();
  };
  EXPECT_EQ(algo("8x9x9 conv5x5:4"), ConvAlgorithm::kWinograd);  // auto: stride 1, square, 8 channels
  EXPECT_EQ(algo("8x9x9 conv5x5:4,algo=auto"), ConvAlgorithm::kWinograd);
  EXPECT_EQ(algo("8x9x9 conv5x5:4,algo=im2col"), ConvAlgorithm::kIm2col);
  EXPECT_EQ(algo("1x9x9 conv3x3:4"), ConvAlgorithm::kIm2col);  // auto: one input channel
  EXPECT_EQ(algo("1x9x9 conv3x3:4,algo=winograd"), ConvAlgorithm::kWinograd);
  EXPECT_EQ(algo("8x9x9 conv3x3:4,stride=2"), ConvAlgorithm::kIm2col);
  EXPECT_EQ(one("1x9x9 conv3x3:8,stride=2").layers[0]->out_shape(), (Shape{8, 5, 5}));  // same by default
  EXPECT_EQ(one("1x9x9 conv3x3:8,pad=same,stride=2").layers[0]->out_shape(), (Shape{8, 5, 5}));
  EXPECT_EQ(one("2x9x8 conv3:4").layers[0]->out_shape(), (Shape{4, 9, 8}));  // "3" is 3x3
  {
    const ModelLayers m = one("2x9x8 conv5x3:4,pad=valid");
    const auto* conv = dynamic_cast<const Conv2D*>(m.layers[0].get());
    ASSERT_NE(conv, nullptr);
    EXPECT_EQ(conv->geometry().kh, 5);
    EXPECT_EQ(conv->geometry().kw, 3);
    EXPECT_EQ(conv->out_shape(), (Shape{4, 5, 6}));
    EXPECT_EQ(conv->param_count(), 5 * 3 * 2 * 4 + 4);
  }
  {
    const ModelLayers m = one("2x9x9 avgpool3,stride=2");
    ASSERT_NE(dynamic_cast<const Pool2D*>(m.layers[0].get()), nullptr);
    EXPECT_EQ(m.layers[0]->name(), "avgpool0");
    EXPECT_EQ(m.layers[0]->out_shape(), (Shape{2, 4, 4}));
  }
  EXPECT_EQ(one("2x9x9 maxpool3").layers[0]->out_shape(), (Shape{2, 3, 3}));  // stride defaults to the window
  EXPECT_EQ(one("2x9x9 maxpool2,stride=1").layers[0]->out_shape(), (Shape{2, 8, 8}));
  for (const char* bn : {"3x4x4 bn", "3x4x4 batchnorm"}) {
    const ModelLayers m = one(bn);
    ASSERT_NE(dynamic_cast<const BatchNorm*>(m.layers[0].get()), nullptr) << bn;
    EXPECT_EQ(m.layers[0]->name(), "bn0") << bn;
    EXPECT_EQ(m.layers[0]->out_shape(), (Shape{3, 4, 4})) << bn;
    EXPECT_EQ(m.layers[0]->param_count(), 6.0) << bn;
  }
  {
    const ModelLayers m = one("3x4x5 gap");
    ASSERT_NE(dynamic_cast<const GlobalAvgPool*>(m.layers[0].get()), nullptr);
    EXPECT_EQ(m.layers[0]->name(), "gap0");
    EXPECT_EQ(m.layers[0]->out_shape(), (Shape{3, 1, 1}));
  }
  {
    const ModelLayers m = one("2x3x4 dropout:0.5");
    const auto* d = dynamic_cast<const Dropout*>(m.layers[0].get());
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->name(), "dropout0");
    EXPECT_EQ(d->rate(), 0.5);
    EXPECT_EQ(d->out_shape(), (Shape{2, 3, 4}));
  }
  {
    const ModelLayers m = one("2x3x4 flatten");
    ASSERT_NE(dynamic_cast<const Flatten*>(m.layers[0].get()), nullptr);
    EXPECT_EQ(m.layers[0]->name(), "flatten0");
    EXPECT_EQ(m.layers[0]->out_shape(), (Shape{24, 1, 1}));
  }
  // Counting per kind, fusing relu/tanh only right after conv/dense, never gelu.
  const ModelSummary s = summarize_model(
      "3x8x8 conv3x3:4 tanh bn conv3x3:4 gelu maxpool2 dropout:0.25 conv1x1:2 relu relu flatten dense:6 bn dropout:0.1 "
      "dense:2",
      Activation::kRelu);
  EXPECT_EQ(layer_names(s),
            (std::vector<std::string>{"conv0+tanh", "bn0", "conv1", "gelu", "maxpool0", "dropout0", "conv2+relu", "relu",
                                      "flatten0", "dense0", "bn1", "dropout1", "dense1"}));
  EXPECT_EQ(s.output(), (Shape{2, 1, 1}));
  EXPECT_TRUE(s.batch_statistics);
}

// Every bad spec is one UserError, one line, naming the token (or the spec
// when the input shape is wrong) and saying what to write instead.
TEST(ModelSpec, BadSpecsNameTheTokenAndSayWhatToWrite) {
  struct Case {
    const char* spec;
    std::vector<const char*> says;
  };
  const std::vector<Case> cases = {
      {"1x8x8 foo:3", {"'foo:3'", "unknown layer 'foo'", "use convKxK:C"}},
      {"1x4x4 conv5x5:2,pad=valid dense:2", {"layer 1 'conv5x5:2,pad=valid'", "5x5 kernel is larger than its 1x4x4 input", "smaller kernel"}},
      {"1x4x4 conv5x5:2 dense:2", {"layer 1 'conv5x5:2'", "5x5 kernel is larger than its 1x4x4 input", "smaller kernel"}},
      {"1x8x8 maxpool2 conv3x3:4 maxpool2 conv3x5:4", {"layer 4 'conv3x5:4'", "larger than its 4x2x2 input"}},
      {"1x4x4 maxpool5", {"'maxpool5'", "5x5 window is larger than its 1x4x4 input", "smaller window"}},
      {"1x6x6 maxpool2 avgpool4", {"layer 2 'avgpool4'", "larger than its 1x3x3 input", "smaller window"}},
      {"784 dense:10 conv3x3:2", {"layer 2 'conv3x3:2'", "flat vector (or 1x1 map) of 10", "image shape (e.g. 1x28x28)"}},
      {"784 maxpool2", {"layer 1 'maxpool2'", "flat vector (or 1x1 map) of 784", "image shape (e.g. 1x28x28)"}},
      {"784 gap", {"'gap'", "flat vector", "1x28x28"}},
      {"1x8x8 conv0x3:2", {"'conv0x3:2'", "kernel height must be a positive whole number", "'0'"}},
      {"1x8x8 conv3x0:2", {"'conv3x0:2'", "kernel width must be a positive whole number"}},
      {"1x8x8 conv3x3:0", {"'conv3x3:0'", "channel count must be a positive whole number"}},
      {"1x8x8 conv3x3:4,stride=0", {"'conv3x3:4,stride=0'", "stride must be a positive whole number"}},
      {"1x8x8 conv3x3:4,pad=-1", {"'conv3x3:4,pad=-1'", "pad must be same, valid or a number"}},
      {"1x8x8 conv3x3:4,pad=full", {"'conv3x3:4,pad=full'", "pad must be same, valid or a number"}},
      {"1x8x8 conv3x3", {"'conv3x3'", "convKxK:CHANNELS, e.g. conv5x5:32"}},
      {"1x8x8 maxpool:2", {"'maxpool:2'", "write maxpoolK", "maxpool2"}},
      {"1x8x8 dropout:1.5", {"'dropout:1.5'", "in [0, 1)", "dropout:0.5"}},
      {"1x8x8 dropout:x", {"'dropout:x'", "in [0, 1)", "dropout:0.5"}},
      {"1x8x8 dropout", {"'dropout'", "dropout:RATE"}},
      {"1x8x8 dense", {"'dense'", "dense:UNITS, e.g. dense:128"}},
      {"1x8x8 conv3x3:4,foo=1", {"'conv3x3:4,foo=1'", "unknown option 'foo'", "use stride, pad, algo"}},
      {"1x8x8 conv3x3:4,algo=fft", {"'conv3x3:4,algo=fft'", "algo must be auto, im2col or winograd", "'fft'"}},
      {"1x8x8 conv3x3:4,stride=2,algo=winograd", {"'conv3x3:4,stride=2,algo=winograd'", "needs stride 1 and a square kernel", "algo=im2col"}},
      {"1x8x8 conv3x2:4,algo=winograd", {"'conv3x2:4,algo=winograd'", "needs stride 1 and a square kernel"}},
      {"1x8x8 maxpool2,pad=1", {"'maxpool2,pad=1'", "unknown option 'pad'", "use stride"}},
      {"1x8x8 dense:4,stride=2", {"'dense:4,stride=2'", "unknown option 'stride'", "takes none"}},
      {"1x8x8 relu:3", {"'relu:3'", "takes no size or value"}},
      {"1x8x8 conv3x3:4,stride", {"'conv3x3:4,stride'", "KEY=VALUE"}},
      {"1x8x8 Conv3x3:4", {"'Conv3x3:4'", "is not a layer", "use convKxK:C"}},
      {"1x28 dense:10", {"'1x28 dense:10'", "input shape CxHxW (e.g. 1x28x28)"}},
      {"0x28x28 dense:2", {"'0x28x28 dense:2'", "input shape CxHxW (e.g. 1x28x28)"}},
      {"1x28x0 dense:2", {"'1x28x0 dense:2'", "input shape CxHxW"}},
      {"conv3x3:4 dense:2", {"'conv3x3:4 dense:2'", "input shape CxHxW"}},
      {"1x28x28", {"'1x28x28'", "the input shape and at least one layer"}},
      {"784", {"'784'", "at least an input and an output width, e.g. 784-10"}},
      {"", {"bad --model ''"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string("spec '") + c.spec + "'");
    const std::string message = spec_error(c.spec);
    for (const char* part : c.says) EXPECT_NE(message.find(part), std::string::npos) << "missing '" << part << "' in: " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    // The Model reports the same error before allocating anything.
    try {
      Model m(c.spec, Activation::kRelu, 2);
      ADD_FAILURE() << "Model accepted it";
    } catch (const UserError& e) {
      EXPECT_EQ(std::string(e.what()), message);
    }
  }
}

// A CNN Model with capacity 4 runs forward and backward on 3 rows read from a
// buffer of exactly 3 rows (an address sanitizer build reports any read or
// write past it or past the model's own buffers), and gives finite outputs
// and non-zero gradients.
TEST(ModelSpec, CnnModelRunsOnFewerRowsThanCapacity) {
  for (const char* spec : {"1x8x8 conv3x3:4 relu maxpool2 bn dropout:0.5 conv3x3:6,stride=2 relu avgpool2 flatten "
                           "dense:5 relu dense:3",
                           "2x9x7 conv3x3:4,pad=valid relu conv2x3:5,pad=1 tanh maxpool3,stride=2 bn gap dense:3"}) {
    SCOPED_TRACE(spec);
    Model m(spec, Activation::kRelu, 4);
    m.init(5);
    ASSERT_EQ(m.output_width(), 3);
    const int rows = 3;
    const auto x = random_floats(static_cast<size_t>(rows) * m.input_width(), 6);
    m.pass().training = true;
    m.pass().seed = 7;
    m.pass().step = 1;
    m.arena().zero_grads();
    const float* out = m.forward(rows, x.data());
    const std::vector<float> y(out, out + rows * 3);
    for (float v : y) EXPECT_TRUE(std::isfinite(v));
    const int labels[] = {0, 2, 1};
    softmax_cross_entropy(out, labels, rows, 3, m.output_grad(), 1.0f);
    m.backward(rows);
    double norm = 0;
    for (long long i = 0; i < m.arena().param_count(); ++i) {
      EXPECT_TRUE(std::isfinite(m.arena().grads()[i])) << i;
      norm += std::abs(m.arena().grads()[i]);
    }
    EXPECT_GT(norm, 0.0);
    // Every trainable tensor got a gradient (the layers are wired in order).
    for (const ParamView& v : m.arena().views()) {
      double s = 0;
      for (long long i = 0; i < v.size; ++i) s += std::abs(m.arena().grads()[v.offset + i]);
      if (v.flags.trainable) EXPECT_GT(s, 0.0) << v.name;
      else EXPECT_EQ(s, 0.0) << v.name;
    }
    // The same rows again give the same output (no state leaks between passes
    // but the running statistics, which training output does not read).
    const float* again = m.forward(rows, x.data());
    EXPECT_EQ(std::vector<float>(again, again + rows * 3), y);
  }
}

// The whole CNN Model's parameter gradients against finite differences of the
// loss (smooth layers only: tanh, average pooling, batch norm in training).
TEST(ModelSpec, CnnModelGradientsMatchFiniteDifferences) {
  Model m("2x6x6 conv3x3:3 tanh avgpool2 bn conv3x3:4,stride=2 tanh gap dense:3", Activation::kRelu, 4);
  m.init(11);
  const int rows = 4;
  const auto x = random_floats(static_cast<size_t>(rows) * m.input_width(), 12);
  std::copy(x.begin(), x.end(), m.input());
  const int labels[] = {0, 2, 1, 2};
  std::vector<float> scratch(rows * 3);
  auto loss = [&] { return softmax_cross_entropy(m.forward(rows), labels, rows, 3, scratch.data(), 1.0f).loss; };
  m.arena().zero_grads();
  softmax_cross_entropy(m.forward(rows), labels, rows, 3, m.output_grad(), 1.0f);
  m.backward(rows);
  const std::vector<float> grads(m.arena().grads(), m.arena().grads() + m.arena().param_count());
  gradcheck::Report report;
  for (const ParamView& v : m.arena().views())
    if (v.flags.trainable)
      report.tensors.push_back(gradcheck::compare_gradient(v.name, v.shape, m.arena().params() + v.offset,
                                                           grads.data() + v.offset, static_cast<size_t>(v.size), loss));
  EXPECT_TRUE(report.passed()) << report;
  EXPECT_EQ(report.tensors.size(), 8u);  // conv0 W b, bn0 gamma beta, conv1 W b, dense0 W b
  EXPECT_GT(report.largest_numeric(), 0.1);
}

TEST(ModelSpec, UsesBatchStatisticsExactlyWithBatchNorm) {
  EXPECT_FALSE(Model(kLeNet, Activation::kRelu, 1).uses_batch_statistics());
  EXPECT_FALSE(Model("784-256-10", Activation::kRelu, 1).uses_batch_statistics());
  EXPECT_FALSE(Model("1x8x8 conv3x3:2 relu dropout:0.5 gap dense:2", Activation::kRelu, 1).uses_batch_statistics());
  EXPECT_TRUE(Model("1x8x8 conv3x3:2 bn relu gap dense:2", Activation::kRelu, 1).uses_batch_statistics());
  EXPECT_TRUE(Model("16 dense:8 batchnorm relu dense:2", Activation::kRelu, 1).uses_batch_statistics());
  EXPECT_TRUE(summarize_model("16 dense:8 bn dense:2", Activation::kRelu).batch_statistics);
  EXPECT_FALSE(summarize_model("16 dense:8 dense:2", Activation::kRelu).batch_statistics);
}

// What the update rules go by: weights decay and take a trust ratio, biases
// and batch-norm scales/shifts do not, running statistics are state that no
// optimizer touches and that param_count() does not count.
TEST(ModelSpec, ArenaFlagsAndTrainableCount) {
  const Model m("1x6x6 conv3x3:2 relu bn dense:3", Activation::kRelu, 1);
  const Arena& a = m.arena();
  std::vector<std::string> names;
  for (const ParamView& v : a.views()) names.push_back(v.name);
  EXPECT_EQ(names, (std::vector<std::string>{"conv0/W", "conv0/b", "bn0/gamma", "bn0/beta", "bn0/running_mean",
                                             "bn0/running_var", "dense0/W", "dense0/b"}));
  const ParamFlags weight{};
  for (const char* w : {"conv0/W", "dense0/W"}) EXPECT_TRUE(same_flags(view(a, w).flags, weight)) << w;
  for (const char* b : {"conv0/b", "dense0/b", "bn0/gamma", "bn0/beta"}) {
    EXPECT_TRUE(view(a, b).flags.trainable) << b;
    EXPECT_FALSE(view(a, b).flags.decay) << b;
    EXPECT_FALSE(view(a, b).flags.trust_ratio) << b;
  }
  for (const char* s : {"bn0/running_mean", "bn0/running_var"})
    EXPECT_TRUE(same_flags(view(a, s).flags, kStateParam) && !view(a, s).flags.trainable) << s;
  const long long trainable = (3 * 3 * 1 * 2 + 2) + 2 * 2 + (2 * 6 * 6 * 3 + 3);
  EXPECT_EQ(m.param_count(), trainable);
  long long stored = 0;  // the arena also holds the running statistics (and padding between tensors)
  for (const ParamView& v : a.views()) stored += v.size;
  EXPECT_EQ(stored, trainable + 2 * 2);
  EXPECT_GE(a.param_count(), stored);
  EXPECT_EQ(m.summary().params(), static_cast<double>(trainable));
  // The MLP keeps its flags too.
  const Model mlp("784-256-10", Activation::kRelu, 1);
  EXPECT_TRUE(same_flags(view(mlp.arena(), "dense1/W").flags, weight));
  EXPECT_TRUE(same_flags(view(mlp.arena(), "dense1/b").flags, kNoDecayParam));
}
