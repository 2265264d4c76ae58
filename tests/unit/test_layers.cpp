// Tests of layers.hpp and model.hpp: finite-difference gradient checks of
// Dense (plain and with fused relu/tanh), each activation and a whole Model
// through the shared checker (tests/support/gradient_check.hpp, where its
// tolerance is derived), the checker failing on wrong gradients, the fused
// layers against the unfused reference (Dense then ActivationLayer), forward
// against naive loops, spec parsing, parameter counts and seeded init.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "gradient_check.hpp"
#include "mpitrain/core/errors.hpp"
#include "mpitrain/core/rng.hpp"
#include "mpitrain/nn/activation.hpp"
#include "mpitrain/nn/dense.hpp"
#include "mpitrain/nn/layer.hpp"
#include "mpitrain/nn/loss.hpp"
#include "mpitrain/nn/model.hpp"

using namespace mpitrain;
using gradcheck::random_floats;

namespace {

// A Dense layer bound to its own arena, with non-zero biases.
struct DenseUnderTest {
  Arena arena;
  Dense dense;
  DenseUnderTest(int in, int out, std::uint64_t seed, FusedActivation act = FusedActivation::kNone)
      : dense("d", in, out, Dense::Init::kGlorot, act) {
    gradcheck::bind_to_own_arena(dense, arena, seed);
    for (int j = 0; j < out; ++j) b()[j] = static_cast<float>(0.1 * (j + 1));
  }
  float* w() { return arena.params() + arena.views()[0].offset; }
  float* b() { return arena.params() + arena.views()[1].offset; }
  float* dw() { return arena.grads() + arena.views()[0].offset; }
  float* db() { return arena.grads() + arena.views()[1].offset; }
  // Pre-activations x W + b (R, O), in double, by naive loops.
  std::vector<double> preactivations(const std::vector<float>& x, int rows) {
    const int in = dense.in_width(), out = dense.out_width();
    std::vector<double> z(static_cast<size_t>(rows) * out);
    for (int r = 0; r < rows; ++r)
      for (int j = 0; j < out; ++j) {
        double s = b()[j];
        for (int i = 0; i < in; ++i) s += static_cast<double>(x[r * in + i]) * w()[i * out + j];
        z[static_cast<size_t>(r) * out + j] = s;
      }
    return z;
  }
  // Every tensor of the check compared, with the sizes of this layer.
  void expect_complete(const gradcheck::Report& report, int rows) {
    ASSERT_EQ(report.tensors.size(), 3u);
    EXPECT_EQ(report["dx"].count, static_cast<size_t>(rows) * dense.in_width());
    EXPECT_EQ(report["d/W"].count, static_cast<size_t>(dense.in_width()) * dense.out_width());
    EXPECT_EQ(report["d/b"].count, static_cast<size_t>(dense.out_width()));
  }
};

// A Dense whose gradients are wrong on purpose (dW scaled, one dx element
// shifted), for the tests that the checker fails.
class MiscomputedDense final : public Layer {
 public:
  MiscomputedDense(DenseUnderTest& t, float dw_scale, long long dx_index, float dx_shift)
      : Layer(t.dense.in_shape(), t.dense.out_shape()), t_(t), dw_scale_(dw_scale), dx_index_(dx_index), dx_shift_(dx_shift) {}
  std::string name() const override { return "miscomputed " + t_.dense.name(); }
  void forward(const float* x, float* y, int rows) override { t_.dense.forward(x, y, rows); }
  void backward_params(const float* x, const float* y, float* dy, int rows) override {
    t_.dense.backward_params(x, y, dy, rows);
    const ParamView& w = t_.arena.views()[0];
    for (long long i = 0; i < w.size; ++i) t_.dw()[i] *= dw_scale_;
  }
  void backward_input(const float* x, const float* y, const float* dy, float* dx, int rows) override {
    t_.dense.backward_input(x, y, dy, dx, rows);
    if (dx_index_ >= 0) dx[dx_index_] += dx_shift_;
  }

 private:
  DenseUnderTest& t_;
  float dw_scale_;
  long long dx_index_;
  float dx_shift_;
};

Activation unfused(FusedActivation a) { return a == FusedActivation::kRelu ? Activation::kRelu : Activation::kTanh; }

}  // namespace

TEST(Dense, ForwardEqualsNaiveLoops) {
  const int rows = 3, in = 5, out = 4;
  DenseUnderTest t(in, out, 1);
  const auto x = random_floats(rows * in, 2);
  std::vector<float> y(rows * out);
  t.dense.forward(x.data(), y.data(), rows);
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < out; ++j) {
      double s = t.b()[j];
      for (int i = 0; i < in; ++i) s += static_cast<double>(x[r * in + i]) * t.w()[i * out + j];
      EXPECT_NEAR(y[r * out + j], s, 1e-5) << r << "," << j;
    }
}

TEST(Dense, GradientsMatchFiniteDifferences) {
  const int in = 6, out = 4;
  for (int rows : {1, 5}) {
    SCOPED_TRACE("rows " + std::to_string(rows));
    DenseUnderTest t(in, out, 3);
    const auto x = random_floats(static_cast<size_t>(rows) * in, 4);
    const auto dy = random_floats(static_cast<size_t>(rows) * out, 5);
    const gradcheck::Report report = gradcheck::check_layer(t.dense, &t.arena, x, dy, rows);
    EXPECT_TRUE(report.passed()) << report;
    t.expect_complete(report, rows);
  }
}

// The checker itself: a 5% error in dW, or one wrong element of dx, fails,
// and the report names the tensor and the element.
TEST(GradientCheck, FailsOnAScaledWeightGradient) {
  const int rows = 5, in = 6, out = 4;
  DenseUnderTest t(in, out, 3);
  MiscomputedDense broken(t, 1.05f, -1, 0.0f);
  const gradcheck::Report report = gradcheck::check_layer(broken, &t.arena, random_floats(rows * in, 4),
                                                          random_floats(rows * out, 5), rows);
  EXPECT_FALSE(report.passed());
  EXPECT_GT(report["d/W"].failures, static_cast<size_t>(in * out / 2)) << report;
  EXPECT_NEAR(report["d/W"].worst_relative_error(), 0.05 / 1.05, 0.005) << report;
  EXPECT_TRUE(report["d/b"].passed()) << report;
  EXPECT_TRUE(report["dx"].passed()) << report;
}

TEST(GradientCheck, FailsOnOneWrongInputGradientElementAndNamesIt) {
  const int rows = 5, in = 6, out = 4;
  DenseUnderTest t(in, out, 3);
  MiscomputedDense broken(t, 1.0f, 2 * in + 3, 0.1f);  // row 2, column 3
  const gradcheck::Report report = gradcheck::check_layer(broken, &t.arena, random_floats(rows * in, 4),
                                                          random_floats(rows * out, 5), rows);
  const gradcheck::Comparison& dx = report["dx"];
  EXPECT_EQ(dx.failures, 1u) << report;
  EXPECT_EQ(dx.worst.index, static_cast<size_t>(2 * in + 3));
  EXPECT_EQ(dx.index_text(dx.worst.index), "dx[2,3]");
  EXPECT_NEAR(dx.worst.analytic - dx.worst.numeric, 0.1, 0.01);
  EXPECT_TRUE(report["d/W"].passed() && report["d/b"].passed()) << report;
}

TEST(Dense, BackwardAccumulatesParamGradsAndOverwritesDx) {
  const int rows = 3, in = 4, out = 2;
  DenseUnderTest t(in, out, 6);
  const auto x = random_floats(rows * in, 7);
  auto g = random_floats(rows * out, 8);  // a plain Dense leaves dy unchanged
  std::vector<float> y(rows * out), dx1(rows * in), dx2(rows * in, 1e30f);
  t.dense.forward(x.data(), y.data(), rows);
  t.arena.zero_grads();
  t.dense.backward(x.data(), y.data(), g.data(), dx1.data(), rows);
  const std::vector<float> once(t.arena.grads(), t.arena.grads() + t.arena.param_count());
  t.dense.backward(x.data(), y.data(), g.data(), dx2.data(), rows);
  for (long long i = 0; i < t.arena.param_count(); ++i)
    EXPECT_NEAR(t.arena.grads()[i], 2.0f * once[static_cast<size_t>(i)], 1e-5) << i;
  EXPECT_EQ(dx1, dx2);  // dx is written, not added to
  // Without dx (first layer) the parameter gradients still accumulate.
  t.dense.backward(x.data(), y.data(), g.data(), nullptr, rows);
  EXPECT_NEAR(t.db()[0], 3.0f * once[static_cast<size_t>(t.arena.views()[1].offset)], 1e-5);
}

TEST(Dense, ZeroRowsIsANoOp) {
  DenseUnderTest t(3, 2, 9);
  std::vector<float> x(3, 1.0f), y(2, 42.0f), dy(2, 1.0f), dx(3, 42.0f);
  t.dense.forward(x.data(), y.data(), 0);
  EXPECT_EQ(y, std::vector<float>(2, 42.0f));
  t.arena.zero_grads();
  t.dense.backward(x.data(), y.data(), dy.data(), dx.data(), 0);
  for (long long i = 0; i < t.arena.param_count(); ++i) EXPECT_EQ(t.arena.grads()[i], 0.0f) << i;
  EXPECT_EQ(dx, std::vector<float>(3, 42.0f));
}

TEST(FusedDense, GradientsMatchFiniteDifferences) {
  const int rows = 5, in = 6, out = 4;
  for (FusedActivation act : {FusedActivation::kRelu, FusedActivation::kTanh}) {
    SCOPED_TRACE(activation_name(unfused(act)));
    DenseUnderTest t(in, out, 12, act);
    // A draw whose pre-activations stay clear of the ReLU kink (a perturbation
    // of 1e-3 moves them by far less than 0.02).
    std::vector<float> x;
    std::vector<double> z;
    for (std::uint64_t seed = 13;; ++seed) {
      ASSERT_LT(seed, 200u) << "no kink-free draw";
      x = random_floats(static_cast<size_t>(rows) * in, seed);
      z = t.preactivations(x, rows);
      if (std::all_of(z.begin(), z.end(), [](double v) { return std::abs(v) > 0.02; })) break;
    }
    const auto dy = random_floats(static_cast<size_t>(rows) * out, 14);
    // The check must see both sides of the ReLU (or the tanh's curvature).
    EXPECT_TRUE(std::any_of(z.begin(), z.end(), [](double v) { return v < 0; }));
    EXPECT_TRUE(std::any_of(z.begin(), z.end(), [](double v) { return v > 0; }));
    const gradcheck::Report report = gradcheck::check_layer(t.dense, &t.arena, x, dy, rows);
    EXPECT_TRUE(report.passed()) << report;
    t.expect_complete(report, rows);
  }
}

// The fused layer against Dense then ActivationLayer with the same parameters:
// forward and every gradient bitwise equal for relu, equal to float rounding
// for tanh.
TEST(FusedDense, EqualsUnfusedReference) {
  const int rows = 7, in = 9, out = 6;
  for (FusedActivation act : {FusedActivation::kRelu, FusedActivation::kTanh}) {
    SCOPED_TRACE(activation_name(unfused(act)));
    DenseUnderTest fused(in, out, 15, act), plain(in, out, 15);
    ActivationLayer activation(unfused(act), out);
    auto x = random_floats(static_cast<size_t>(rows) * in, 16);
    x[0] = -0.0f;  // an exact zero input, and a pre-activation of exactly zero below
    for (int i = 0; i < in; ++i) fused.w()[i * out] = plain.w()[i * out] = 0.0f;
    fused.b()[0] = plain.b()[0] = 0.0f;
    const auto g = random_floats(static_cast<size_t>(rows) * out, 17);

    std::vector<float> y(g.size()), dy = g, dx(x.size());
    fused.dense.forward(x.data(), y.data(), rows);
    fused.arena.zero_grads();
    fused.dense.backward(x.data(), y.data(), dy.data(), dx.data(), rows);

    std::vector<float> z_ref(g.size()), y_ref(g.size()), dy_ref = g, dz_ref(g.size()), dx_ref(x.size());
    plain.dense.forward(x.data(), z_ref.data(), rows);
    activation.forward(z_ref.data(), y_ref.data(), rows);
    plain.arena.zero_grads();
    activation.backward(z_ref.data(), y_ref.data(), dy_ref.data(), dz_ref.data(), rows);
    plain.dense.backward(x.data(), z_ref.data(), dz_ref.data(), dx_ref.data(), rows);

    const long long n = fused.arena.param_count();
    const std::vector<float> grads(fused.arena.grads(), fused.arena.grads() + n);
    const std::vector<float> grads_ref(plain.arena.grads(), plain.arena.grads() + n);
    EXPECT_EQ(z_ref[0], 0.0f);
    EXPECT_GT(std::count(y_ref.begin(), y_ref.end(), 0.0f), act == FusedActivation::kRelu ? 3 : 0);
    if (act == FusedActivation::kRelu) {
      EXPECT_EQ(y, y_ref);
      EXPECT_EQ(dx, dx_ref);
      EXPECT_EQ(grads, grads_ref);
    } else {
      for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], y_ref[i], 1e-6 * (1 + std::abs(y_ref[i]))) << "y " << i;
      for (size_t i = 0; i < dx.size(); ++i) EXPECT_NEAR(dx[i], dx_ref[i], 1e-5 * (1 + std::abs(dx_ref[i]))) << "dx " << i;
      for (size_t i = 0; i < grads.size(); ++i) EXPECT_NEAR(grads[i], grads_ref[i], 1e-5 * (1 + std::abs(grads_ref[i]))) << "grad " << i;
    }
  }
}

TEST(Activation, ForwardHandValues) {
  const std::vector<float> x = {-2.0f, -1.0f, 0.5f, 1.0f, 2.5f};
  std::vector<float> y(x.size());
  ActivationLayer(Activation::kRelu, 5).forward(x.data(), y.data(), 1);
  EXPECT_EQ(y, (std::vector<float>{0.0f, 0.0f, 0.5f, 1.0f, 2.5f}));
  ActivationLayer(Activation::kTanh, 5).forward(x.data(), y.data(), 1);
  EXPECT_NEAR(y[2], 0.46211716, 1e-6);
  // GELU, tanh approximation (not the erf form: gelu(1) = 0.841345 there).
  ActivationLayer(Activation::kGelu, 5).forward(x.data(), y.data(), 1);
  EXPECT_NEAR(y[1], -0.15880801, 1e-6);
  EXPECT_NEAR(y[3], 0.84119199, 1e-6);
  EXPECT_NEAR(y[4], 2.48491573, 1e-5);
}

TEST(Activation, BackwardMatchesFiniteDifferences) {
  const int rows = 3, width = 8;
  for (Activation kind : {Activation::kRelu, Activation::kTanh, Activation::kGelu}) {
    ActivationLayer layer(kind, width);
    auto x = random_floats(rows * width, 10, 1.5);
    for (auto& v : x) v = std::copysign(0.1f + std::abs(v), v);  // keep away from the ReLU kink
    const auto dy = random_floats(rows * width, 11);
    const gradcheck::Report report = gradcheck::check_layer(layer, nullptr, x, dy, rows);
    EXPECT_TRUE(report.passed()) << activation_name(kind) << report;
    EXPECT_EQ(report["dx"].count, static_cast<size_t>(rows) * width);
  }
}

TEST(Model, GradientsMatchFiniteDifferencesForEachActivation) {
  const int rows = 4;
  for (Activation kind : {Activation::kRelu, Activation::kTanh, Activation::kGelu}) {
    SCOPED_TRACE(activation_name(kind));
    Model m("5-7-4-3", kind, 6);
    // Find a seed whose hidden pre-activations stay clear of the ReLU kink.
    std::vector<float> x;
    for (std::uint64_t seed = 1;; ++seed) {
      ASSERT_LT(seed, 200u) << "no kink-free draw";
      m.init(seed);
      x = random_floats(rows * 5, 1000 + seed);
      if (kind != Activation::kRelu) break;
      // ReLU is fused into the Dense layers, so recompute the hidden
      // pre-activations by naive loops from the arena views (W, b per layer).
      const std::vector<int> widths = {5, 7, 4, 3};
      const auto& v = m.arena().views();
      const float* p = m.arena().params();
      std::vector<double> a(x.begin(), x.end());
      bool clear = true;
      for (size_t k = 0; k + 2 < widths.size(); ++k) {  // hidden layers only
        const int in = widths[k], out = widths[k + 1];
        std::vector<double> z(static_cast<size_t>(rows) * out);
        for (int r = 0; r < rows; ++r)
          for (int j = 0; j < out; ++j) {
            double s = p[v[2 * k + 1].offset + j];
            for (int i = 0; i < in; ++i) s += a[static_cast<size_t>(r) * in + i] * p[v[2 * k].offset + i * out + j];
            z[static_cast<size_t>(r) * out + j] = s;
          }
        for (double& s : z) {
          clear = clear && std::abs(s) > 0.02;
          s = std::max(s, 0.0);
        }
        a.swap(z);
      }
      if (clear) break;
    }
    std::copy(x.begin(), x.end(), m.input());
    const int labels[] = {0, 2, 1, 2};
    std::vector<float> scratch(rows * 3);
    auto loss = [&] {
      return softmax_cross_entropy(m.forward(rows), labels, rows, 3, scratch.data(), 1.0f).loss;
    };
    m.arena().zero_grads();
    softmax_cross_entropy(m.forward(rows), labels, rows, 3, m.output_grad(), 1.0f);
    m.backward(rows);
    const std::vector<float> grads(m.arena().grads(), m.arena().grads() + m.arena().param_count());
    gradcheck::Report report;
    for (const ParamView& v : m.arena().views())
      report.tensors.push_back(gradcheck::compare_gradient(v.name, v.shape, m.arena().params() + v.offset,
                                                           grads.data() + v.offset, static_cast<size_t>(v.size), loss));
    EXPECT_TRUE(report.passed()) << report;
    EXPECT_EQ(report.tensors.size(), 6u);
    EXPECT_GT(report.largest_numeric(), 0.2);  // the check compared real gradients, not zeros
  }
}

TEST(Model, FusesReluAndTanhIntoDenseButNotGelu) {
  auto names = [](const Model& m) {
    std::vector<std::string> n;
    for (const auto& layer : m.layers()) n.push_back(layer->name());
    return n;
  };
  auto param_names = [](const Model& m) {
    std::vector<std::string> n;
    for (const auto& v : m.arena().views()) n.push_back(v.name);
    return n;
  };
  const std::vector<std::string> params = {"dense0/W", "dense0/b", "dense1/W", "dense1/b", "dense2/W", "dense2/b"};
  const Model relu("5-7-4-3", Activation::kRelu, 2), tanh_m("5-7-4-3", Activation::kTanh, 2),
      gelu("5-7-4-3", Activation::kGelu, 2);
  EXPECT_EQ(names(relu), (std::vector<std::string>{"dense0+relu", "dense1+relu", "dense2"}));
  EXPECT_EQ(names(tanh_m), (std::vector<std::string>{"dense0+tanh", "dense1+tanh", "dense2"}));
  EXPECT_EQ(names(gelu), (std::vector<std::string>{"dense0", "gelu", "dense1", "gelu", "dense2"}));
  // Checkpoints address parameters by these names.
  EXPECT_EQ(param_names(relu), params);
  EXPECT_EQ(param_names(tanh_m), params);
  EXPECT_EQ(param_names(gelu), params);
  EXPECT_EQ(relu.forward_flops_per_sample(), gelu.forward_flops_per_sample());
}

// A whole fused Model against the unfused chain (Dense, ActivationLayer, ...,
// Dense) with the same parameters: output and gradients bitwise equal for
// relu, equal to float rounding for tanh.
TEST(Model, EqualsUnfusedLayerChain) {
  const int rows = 5;
  const std::vector<int> widths = {6, 8, 5, 3};
  for (Activation kind : {Activation::kRelu, Activation::kTanh}) {
    SCOPED_TRACE(activation_name(kind));
    Model m("6-8-5-3", kind, rows);
    m.init(21);
    std::vector<std::unique_ptr<Layer>> chain;
    for (size_t k = 0; k + 1 < widths.size(); ++k) {
      chain.push_back(std::make_unique<Dense>("dense" + std::to_string(k), widths[k], widths[k + 1], Dense::Init::kHe));
      if (k + 2 < widths.size()) chain.push_back(std::make_unique<ActivationLayer>(kind, widths[k + 1]));
    }
    Arena arena;
    for (auto& layer : chain) layer->register_params(arena);
    arena.allocate();
    for (auto& layer : chain) layer->bind(arena);
    ASSERT_EQ(arena.param_count(), m.arena().param_count());
    std::copy(m.arena().params(), m.arena().params() + arena.param_count(), arena.params());

    const auto x = random_floats(rows * 6, 22);
    const int labels[] = {0, 2, 1, 2, 0};
    std::copy(x.begin(), x.end(), m.input());
    m.arena().zero_grads();
    const float* out = m.forward(rows);
    const std::vector<float> y(out, out + rows * 3);
    softmax_cross_entropy(out, labels, rows, 3, m.output_grad(), 1.0f);
    m.backward(rows);

    std::vector<std::vector<float>> acts{x};
    for (auto& layer : chain) {
      acts.emplace_back(static_cast<size_t>(rows) * layer->out_width());
      layer->forward(acts[acts.size() - 2].data(), acts.back().data(), rows);
    }
    std::vector<float> dy(rows * 3);
    softmax_cross_entropy(acts.back().data(), labels, rows, 3, dy.data(), 1.0f);
    arena.zero_grads();
    for (size_t i = chain.size(); i-- > 0;) {
      std::vector<float> dx(acts[i].size());
      chain[i]->backward(acts[i].data(), acts[i + 1].data(), dy.data(), i == 0 ? nullptr : dx.data(), rows);
      dy.swap(dx);
    }
    const long long n = arena.param_count();
    const std::vector<float> grads(m.arena().grads(), m.arena().grads() + n), grads_ref(arena.grads(), arena.grads() + n);
    EXPECT_GT(*std::max_element(grads_ref.begin(), grads_ref.end()), 0.01f);
    if (kind == Activation::kRelu) {
      EXPECT_EQ(y, acts.back());
      EXPECT_EQ(grads, grads_ref);
    } else {
      for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], acts.back()[i], 1e-6 * (1 + std::abs(y[i]))) << "y " << i;
      for (size_t i = 0; i < grads.size(); ++i) EXPECT_NEAR(grads[i], grads_ref[i], 1e-5 * (1 + std::abs(grads_ref[i]))) << "grad " << i;
    }
  }
}

TEST(Model, ForwardEqualsNaiveComposition) {
  const int rows = 2;
  Model m("3-4-2", Activation::kTanh, rows);
  m.init(5);
  const auto x = random_floats(rows * 3, 6);
  std::copy(x.begin(), x.end(), m.input());
  const float* y = m.forward(rows);
  const auto& v = m.arena().views();  // dense0/W, dense0/b, dense1/W, dense1/b
  const float* p = m.arena().params();
  for (int r = 0; r < rows; ++r) {
    double h[4];
    for (int j = 0; j < 4; ++j) {
      double s = p[v[1].offset + j];
      for (int i = 0; i < 3; ++i) s += x[r * 3 + i] * static_cast<double>(p[v[0].offset + i * 4 + j]);
      h[j] = std::tanh(s);
    }
    for (int k = 0; k < 2; ++k) {
      double s = p[v[3].offset + k];
      for (int j = 0; j < 4; ++j) s += h[j] * p[v[2].offset + j * 2 + k];
      EXPECT_NEAR(y[r * 2 + k], s, 1e-5) << r << "," << k;  // no activation after the last layer
    }
  }
}

TEST(Model, ParamCountAndFlops) {
  Model m("784-256-10", Activation::kRelu, 1);
  EXPECT_EQ(m.param_count(), 784LL * 256 + 256 + 256 * 10 + 10);
  EXPECT_EQ(Model("5-7-4-3", Activation::kGelu, 1).param_count(), 5 * 7 + 7 + 7 * 4 + 4 + 4 * 3 + 3);
  EXPECT_DOUBLE_EQ(m.forward_flops_per_sample(), 2.0 * (784 * 256 + 256 * 10));
  EXPECT_EQ(m.input_width(), 784);
  EXPECT_EQ(m.output_width(), 10);
}

TEST(Model, ParseSpec) {
  const ModelSummary m = summarize_model("784-256-10", Activation::kRelu);
  EXPECT_EQ(m.input, (Shape{784, 1, 1}));
  ASSERT_EQ(m.layers.size(), 2u);  // ReLU fused into dense0
  EXPECT_EQ(m.layers[0].name, "dense0+relu");
  EXPECT_EQ(m.layers[1].name, "dense1");
  EXPECT_EQ(m.output(), (Shape{10, 1, 1}));
  EXPECT_EQ(summarize_model("2-1", Activation::kRelu).output(), (Shape{1, 1, 1}));
  for (const char* bad : {"", "784", "784-", "a-10", "784-0-10", "784--10", "-784-10", "784-10x",
                          "784-+10", "784--1", "784-99999999999-10", " 784-10"})
    EXPECT_THROW(summarize_model(bad, Activation::kRelu), UserError) << "'" << bad << "'";
}

TEST(Model, InitIsDeterministicPerSeed) {
  Model a("20-30-10", Activation::kRelu, 1), b("20-30-10", Activation::kRelu, 1), c("20-30-10", Activation::kRelu, 1);
  a.init(7);
  b.init(7);
  c.init(8);
  const long long n = a.arena().param_count();
  const std::vector<float> pa(a.arena().params(), a.arena().params() + n);
  EXPECT_EQ(pa, std::vector<float>(b.arena().params(), b.arena().params() + n));
  const auto& w0 = a.arena().views()[0];
  int same = 0;
  for (long long i = w0.offset; i < w0.offset + w0.size; ++i) same += pa[static_cast<size_t>(i)] == c.arena().params()[i] ? 1 : 0;
  EXPECT_EQ(same, 0);
}

TEST(Model, InitScales) {
  // He normal before ReLU (std sqrt(2/784)); Glorot uniform for the output layer.
  Model m("784-256-10", Activation::kRelu, 1);
  m.init(3);
  const auto& v = m.arena().views();
  const float* p = m.arena().params();
  double s2 = 0.0;
  for (long long i = 0; i < v[0].size; ++i) s2 += static_cast<double>(p[v[0].offset + i]) * p[v[0].offset + i];
  EXPECT_NEAR(std::sqrt(s2 / static_cast<double>(v[0].size)), std::sqrt(2.0 / 784), 0.02 * std::sqrt(2.0 / 784));
  const double limit = std::sqrt(6.0 / (256 + 10));
  double max_abs = 0.0;
  for (long long i = 0; i < v[2].size; ++i) max_abs = std::max(max_abs, std::abs(static_cast<double>(p[v[2].offset + i])));
  EXPECT_LE(max_abs, limit);
  EXPECT_GT(max_abs, 0.95 * limit);
  for (long long i = 0; i < v[1].size; ++i) EXPECT_EQ(p[v[1].offset + i], 0.0f);  // biases start at 0
}
