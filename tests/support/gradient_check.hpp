// The one finite-difference gradient checker of the unit tests (Caffe's
// GradientChecker): every layer and loss compares its analytic gradients with
// central differences through these functions.
//
// Two levels:
// - compare_gradient: one gradient tensor against central differences of any
//   scalar objective, perturbing the values in place (float values for what
//   the library computes, double values for a double reference);
// - check_layer: a Layer's input gradient and every parameter gradient in its
//   arena, for the objective L = sum(y * dy) with a given upstream dy, so the
//   analytic gradients are exactly what backward() computes from that dy.
//
// Checking a layer (a new kind the same way, with its own sizes):
//   Arena arena;
//   Dense layer("d", 6, 4, Dense::Init::kGlorot);
//   gradcheck::bind_to_own_arena(layer, arena, /*seed=*/3);
//   const int rows = 5;
//   const gradcheck::Report report = gradcheck::check_layer(
//       layer, &arena, gradcheck::random_floats(rows * 6, 4), gradcheck::random_floats(rows * 4, 5), rows);
//   EXPECT_TRUE(report.passed()) << report;  // prints each tensor's worst element
//
// Default tolerance (float32 layers, unit roundoff u = 6e-8): with central
// differences at eps = 1e-3 the truncation error is O(eps^2) ~ 1e-6, and the
// float rounding of the objective, |L| * u / eps ~ 1e-4 * |L|, dominates (the
// step is taken from the perturbed float values, in double). So 1e-2 relative
// error, with an absolute floor of 1e-3 for gradients near zero (gradients of
// these tests are O(0.1..1)), is about 10x above the noise and far below a real
// mistake (a wrong factor, a missing term or a transposed index gives O(1)
// relative error). It resolves errors from about 2% up: a gradient scaled by
// 1.01 sits at the tolerance, one scaled by 1.02 fails nearly everywhere.
//
// Kinks (ReLU at 0, max-pool ties) make central differences meaningless; the
// caller draws inputs clear of them.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "mpitrain/core/arena.hpp"
#include "mpitrain/core/rng.hpp"
#include "mpitrain/nn/layer.hpp"

// Not mpitrain::testing: the test files say `using namespace mpitrain;`, which
// would make gtest's `testing::` ambiguous.
namespace mpitrain::gradcheck {

struct Options {
  double eps = 1e-3;  // central-difference step
  // An element passes when |analytic - numeric| <= max(absolute, relative *
  // max(|analytic|, |numeric|)); NaN never passes.
  double relative = 1e-2;
  double absolute = 1e-3;
};

// One gradient tensor compared element by element.
struct Comparison {
  struct Element {
    std::size_t index = 0;  // flat
    double analytic = 0.0, numeric = 0.0;
  };
  std::string name;                // "dx", "dense0/W", ...
  std::vector<long long> shape;    // to print a flat index as [i,j,...]
  Options options;
  std::size_t count = 0;           // elements compared
  std::size_t failures = 0;        // elements beyond tolerance
  Element worst;                   // largest |a - n| / allowed
  double worst_ratio = 0.0;        // that error over the allowed one; > 1 fails
  double largest_numeric = 0.0;    // max |numeric|: the check saw real gradients
  std::vector<Element> first_failures;  // up to kShownFailures of them

  static constexpr std::size_t kShownFailures = 5;
  bool passed() const { return failures == 0; }
  // |a - n| / max(|a|, |n|) of the worst element.
  double worst_relative_error() const {
    const double scale = std::max(std::abs(worst.analytic), std::abs(worst.numeric));
    const double diff = std::abs(worst.analytic - worst.numeric);
    return scale > 0 ? diff / scale : diff;
  }
  std::string index_text(std::size_t flat) const {
    std::vector<long long> idx(shape.size());
    long long rest = static_cast<long long>(flat);
    for (std::size_t d = shape.size(); d-- > 0;) {
      idx[d] = shape[d] > 0 ? rest % shape[d] : 0;
      rest = shape[d] > 0 ? rest / shape[d] : 0;
    }
    std::ostringstream s;
    s << name << "[";
    for (std::size_t d = 0; d < idx.size(); ++d) s << (d ? "," : "") << idx[d];
    if (idx.empty()) s << flat;
    s << "]";
    return s.str();
  }
};

inline std::ostream& operator<<(std::ostream& os, const Comparison& c) {
  const std::streamsize precision = os.precision(6);
  os << c.name << ": " << c.failures << " of " << c.count << " beyond tolerance (relative " << c.options.relative
     << ", absolute " << c.options.absolute << ", eps " << c.options.eps << "); worst " << c.index_text(c.worst.index)
     << " analytic " << c.worst.analytic << " numeric " << c.worst.numeric << " relative error "
     << c.worst_relative_error() << " (" << c.worst_ratio << "x allowed)";
  for (const auto& e : c.first_failures)
    os << "\n    " << c.index_text(e.index) << ": analytic " << e.analytic << " numeric " << e.numeric;
  os.precision(precision);
  return os;
}

// Central difference of objective() with respect to *v (float or double);
// restores *v. The step is measured from the values actually stored, so the
// rounding of v +- eps to float does not bias the quotient.
template <typename T, typename Objective>
double central_difference(T* v, Objective&& objective, double eps) {
  const T orig = *v;
  *v = static_cast<T>(orig + eps);
  const double hi = *v, f_hi = objective();
  *v = static_cast<T>(orig - eps);
  const double lo = *v, f_lo = objective();
  *v = orig;
  return (f_hi - f_lo) / (hi - lo);
}

// Compares analytic[0..n) with central differences of objective() with
// respect to values[0..n); objective() reads the values in place.
template <typename T, typename Objective>
Comparison compare_gradient(std::string name, std::vector<long long> shape, T* values, const float* analytic,
                            std::size_t n, Objective&& objective, const Options& options = {}) {
  Comparison c;
  c.name = std::move(name);
  c.shape = std::move(shape);
  c.options = options;
  c.count = n;
  for (std::size_t i = 0; i < n; ++i) {
    const double a = analytic[i], num = central_difference(values + i, objective, options.eps);
    const double allowed = std::max(options.absolute, options.relative * std::max(std::abs(a), std::abs(num)));
    const double diff = std::abs(a - num);
    const double ratio = std::isnan(diff) ? std::numeric_limits<double>::infinity() : diff == 0 ? 0.0 : diff / allowed;
    c.largest_numeric = std::max(c.largest_numeric, std::abs(num));
    if (i == 0 || ratio > c.worst_ratio) {
      c.worst = {i, a, num};
      c.worst_ratio = ratio;
    }
    if (!(diff <= allowed)) {
      ++c.failures;
      if (c.first_failures.size() < Comparison::kShownFailures) c.first_failures.push_back({i, a, num});
    }
  }
  return c;
}

// All tensors of one check; prints every tensor, the failing ones first.
struct Report {
  std::vector<Comparison> tensors;
  bool passed() const {
    return std::all_of(tensors.begin(), tensors.end(), [](const Comparison& c) { return c.passed(); });
  }
  const Comparison& operator[](const std::string& name) const {
    for (const auto& c : tensors)
      if (c.name == name) return c;
    throw std::out_of_range("gradcheck: no tensor " + name);
  }
  double largest_numeric() const {
    double m = 0.0;
    for (const auto& c : tensors) m = std::max(m, c.largest_numeric);
    return m;
  }
};

inline std::ostream& operator<<(std::ostream& os, const Report& r) {
  for (bool failing : {true, false})
    for (const auto& c : r.tensors)
      if (c.passed() != failing) os << "\n  " << c;
  return os;
}

inline double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

// n draws of scale * N(0, 1), a pure function of the seed.
inline std::vector<float> random_floats(std::size_t n, std::uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(scale * rng.normal());
  return v;
}

// Gives `layer` its parameters in `arena` (fresh, not yet allocated) and
// initialises them from `seed`.
// Also gives the layer scratch for up to kScratchRows rows (kept alive for the
// test program's lifetime: layers hold a pointer to it).
inline constexpr int kScratchRows = 64;
inline void bind_to_own_arena(Layer& layer, Arena& arena, std::uint64_t seed) {
  layer.register_params(arena);
  arena.allocate();
  layer.bind(arena);
  if (const std::size_t bytes = layer.scratch_bytes_per_row() * kScratchRows + layer.scratch_bytes_fixed(); bytes > 0) {
    static std::vector<std::vector<float>> kept;
    kept.emplace_back((bytes + sizeof(float) - 1) / sizeof(float));
    layer.bind_scratch(kept.back().data(), kScratchRows);
  }
  Rng rng(seed);
  layer.init(rng);
}

// Checks layer.backward against central differences of L = sum(y * dy),
// y = layer.forward(x): the input gradient ("dx", shape (rows, sample_shape))
// and, when `params` is given, every parameter view in it (by its arena name
// and shape; the arena must hold this layer's parameters only, as
// bind_to_own_arena makes it). sample_shape defaults to {in_width}; a layer
// with an image input passes e.g. {C, H, W} to see failures as [r,c,h,w].
inline Report check_layer(Layer& layer, Arena* params, std::vector<float> x, const std::vector<float>& dy, int rows,
                          const Options& options = {}, std::vector<long long> sample_shape = {}) {
  const std::size_t in_n = static_cast<std::size_t>(rows) * layer.in_width();
  const std::size_t out_n = static_cast<std::size_t>(rows) * layer.out_width();
  if (x.size() != in_n || dy.size() != out_n)
    throw std::invalid_argument("gradcheck::check_layer: x must have rows * in_width and dy rows * out_width floats");
  if (sample_shape.empty()) sample_shape = {layer.in_width()};
  sample_shape.insert(sample_shape.begin(), rows);

  std::vector<float> y(out_n), dx(in_n), dy_scratch = dy;  // backward may overwrite its dy
  layer.forward(x.data(), y.data(), rows);
  if (params) params->zero_grads();
  layer.backward(x.data(), y.data(), dy_scratch.data(), dx.data(), rows);
  const std::vector<float> grads =
      params ? std::vector<float>(params->grads(), params->grads() + params->param_count()) : std::vector<float>{};

  auto objective = [&] {
    layer.forward(x.data(), y.data(), rows);
    return dot(y, dy);
  };
  Report report;
  report.tensors.push_back(compare_gradient("dx", sample_shape, x.data(), dx.data(), in_n, objective, options));
  if (params)
    for (const ParamView& v : params->views())
      report.tensors.push_back(compare_gradient(v.name, v.shape, params->params() + v.offset, grads.data() + v.offset,
                                                static_cast<std::size_t>(v.size), objective, options));
  return report;
}

}  // namespace mpitrain::gradcheck
