#include "mpitrain/train/goodput.hpp"

#include <algorithm>
#include <cmath>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/core/list_text.hpp"
#include "mpitrain/data/sampler.hpp"  // max_shard_rows
#include "mpitrain/optim/adascale.hpp"

namespace mpitrain {

BatchRange parse_batch_range(const std::string& text) {
  BatchRange r;
  if (!parse_integer_pair(text, r.min, r.max) || r.min < 1 || r.max < r.min)
    throw UserError("--batch-range '" + text + "' is not MIN:MAX with 1 <= MIN <= MAX: write e.g. 128:8192");
  return r;
}

std::vector<long long> batch_candidates(const BatchRange& range, int count) {
  std::vector<long long> out{range.min};
  const double ratio = static_cast<double>(range.max) / static_cast<double>(range.min);
  for (int i = 1; i + 1 < count; ++i) {
    const auto b = std::llround(static_cast<double>(range.min) * std::pow(ratio, i / (count - 1.0)));
    if (b > out.back() && b < range.max) out.push_back(b);
  }
  if (range.max > out.back()) out.push_back(range.max);
  return out;
}

double statistical_efficiency(double trace_s, double g2, double global_batch, double ref_batch) {
  return adascale_gain(trace_s, g2, global_batch, ref_batch) * ref_batch / global_batch;
}

void StepTimeModel::add(long long rows_per_rank, double compute_s, double comm_s, long long step) {
  Recent& r = by_rows_[rows_per_rank];
  if (r.compute.size() < kWindow) {
    r.compute.push_back(compute_s);
    r.comm.push_back(comm_s);
  } else {
    r.compute[r.next] = compute_s;
    r.comm[r.next] = comm_s;
    r.next = (r.next + 1) % kWindow;
  }
  r.last_step = step;
  ++steps_;
}

namespace {

double median(std::vector<double> v) {
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
  const double upper = v[mid];
  if (v.size() % 2 == 1) return upper;
  return (*std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid)) + upper) / 2;
}

}  // namespace

StepTimeModel::Fit StepTimeModel::fit(long long now) const {
  Fit f;
  // Weighted least squares of y = alpha + beta x over the median compute
  // time y per rows-per-rank x, weighted by its steps.
  double w = 0, wx = 0, wy = 0, wxx = 0, wxy = 0, comm = 0;
  size_t points = 0;
  for (const auto& [rows, r] : by_rows_) {
    if (horizon_ > 0 && now - r.last_step > horizon_) continue;
    const double x = static_cast<double>(rows), y = median(r.compute);
    const double n = static_cast<double>(r.compute.size());
    w += n, wx += n * x, wy += n * y, wxx += n * x * x, wxy += n * x * y;
    comm += n * median(r.comm);
    ++points;
  }
  if (points == 0) return f;
  f.comm = comm / w;
  const double mean_x = wx / w, mean_y = wy / w;
  if (points == 1) {  // AdaptDL's prior: half fixed, half per row
    f.alpha = mean_y / 2;
    f.beta = mean_x > 0 ? mean_y / 2 / mean_x : 0;
    return f;
  }
  const double sxx = wxx - w * mean_x * mean_x;
  f.beta = sxx > 0 ? (wxy - w * mean_x * mean_y) / sxx : 0;
  f.alpha = mean_y - f.beta * mean_x;
  if (f.beta < 0) {  // no cost per row: all of it is fixed
    f.beta = 0;
    f.alpha = mean_y;
  } else if (f.alpha < 0) {  // no fixed cost: the line through 0
    f.alpha = 0;
    f.beta = wxx > 0 ? wxy / wxx : 0;
  }
  return f;
}

GoodputChoice choose_batch(const StepTimeModel::Fit& fit, const GoodputInputs& in) {
  const auto predict = [&](long long b, double& step_s, double& eff) {
    step_s = fit.predict(max_shard_rows(b, in.ranks, in.unit_rows));
    eff = statistical_efficiency(in.trace_s, in.g2, static_cast<double>(b), in.ref_batch);
    // Samples per second x efficiency, in reference samples per second.
    return step_s > 0 ? static_cast<double>(b) * eff / step_s : 0.0;
  };
  GoodputChoice c;
  double step_s = 0, eff = 0;
  c.current_goodput = predict(in.current, step_s, eff);
  c.batch = in.current;
  c.goodput = c.current_goodput;
  c.step_s = step_s;
  c.efficiency = eff;
  c.best_batch = in.current;
  c.best_goodput = c.current_goodput;
  for (long long b : in.candidates) {
    const double g = predict(b, step_s, eff);
    if (g > c.best_goodput) {
      c.best_goodput = g;
      c.best_batch = b;
    }
  }
  if (c.best_batch != in.current && c.best_goodput > in.hysteresis * c.current_goodput) {
    c.change = true;
    c.batch = c.best_batch;
    c.goodput = predict(c.batch, c.step_s, c.efficiency);
  }
  return c;
}

std::vector<BatchChange> parse_batch_changes(const std::string& text) {
  std::vector<BatchChange> out;
  for (const auto& item : split_items(text)) {
    BatchChange c;
    const bool ok = parse_integer_pair(item, c.at_step, c.global_batch) && c.at_step > 0 && c.global_batch >= 1 &&
                    (out.empty() || c.at_step > out.back().at_step);
    if (!ok)
      throw UserError("--batch-changes '" + text + "': '" + item +
                      "' is not STEP:BATCH with STEP > 0 after the previous one and BATCH >= 1: write pairs like "
                      "200:512,400:1024 (after 200 steps B is 512)");
    out.push_back(c);
  }
  return out;
}

std::string batch_changes_text(const std::vector<BatchChange>& changes) {
  std::string out;
  for (const auto& c : changes)
    out += (out.empty() ? "" : ",") + std::to_string(c.at_step) + ":" + std::to_string(c.global_batch);
  return out;
}

}  // namespace mpitrain
